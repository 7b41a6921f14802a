/* tests/integration/test_jail.c: who QEMU runs as. Under virtio-fs (the
 * default) QEMU is an unprivileged uid of its own with no capabilities,
 * libvirt's seccomp sandbox and a private mount namespace, and still boots,
 * serves a container from the share and a hot-plugged disk the user keeps
 * private (0600), as an image file and as a block device; over 9p the same,
 * with virtfs-proxy-helper doing the share's file I/O. */
#include <errno.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "helpers.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})
/* Per build tree (beside its test root): two trees may run this at once. */
static char WORK[128], IMG[160];
/* lib/shim/jail.h */
#define QEMU_UID_BASE 2100000000u

static void rm_work(void) {
  g_autofree char *cmd = g_strdup_printf("rm -rf %s", WORK);
  int rc = system(cmd);
  (void)rc;
}

static void setup(void) {
  kvt_setup();
  g_snprintf(WORK, sizeof WORK, "%s-jail", kvt_root());
  g_snprintf(IMG, sizeof IMG, "%s/d.img", WORK);
  rm_work();
  ck_assert_int_eq(g_mkdir_with_parents(WORK, 0755), 0);
}

static void teardown(void) {
  kvt_teardown();
  rm_work();
}

static void idle_main(JsonObject *spec, gpointer unused) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sleep");
  json_array_add_string_element(a, "100000");
  json_object_set_array_member(proc, "args", a);
}

/* idle_main, and CAP_CHOWN in every capability set. */
static void idle_chown(JsonObject *spec, gpointer unused) {
  idle_main(spec, NULL);
  kvt_spec_add_cap(spec, "CAP_CHOWN");
}

static pid_t qemu_pid(const char *id, char **shared_fs) {
  g_autofree char *out = NULL, *err = NULL;
  int rc = kvt_cli(&out, &err, "sandbox", "inspect", id, "--json", NULL);
  ck_assert_msg(rc == 0, "inspect: %s", err);
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, out, -1, NULL));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  if (shared_fs)
    *shared_fs = g_strdup(json_object_get_string_member(o, "shared_fs"));
  return (pid_t)json_object_get_int_member(o, "qemu_pid");
}

/* The value of "Key:" in /proc/PID/status, first field. */
static char *status_field(pid_t pid, const char *key) {
  g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
  g_autofree char *text = NULL;
  ck_assert(g_file_get_contents(path, &text, NULL, NULL));
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (g_str_has_prefix(*l, key) && (*l)[strlen(key)] == ':') {
      g_auto(GStrv) f = g_strsplit_set(*l + strlen(key) + 1, " \t", -1);
      for (char **x = f; *x; x++)
        if (**x)
          return g_strdup(*x);
    }
  }
  ck_abort_msg("no %s in %s", key, path);
  return NULL;
}

static gboolean same_ns(pid_t pid, const char *ns) {
  g_autofree char *a = g_strdup_printf("/proc/%d/ns/%s", (int)pid, ns);
  g_autofree char *b = g_strdup_printf("/proc/self/ns/%s", ns);
  struct stat sa, sb;
  ck_assert_int_eq(stat(a, &sa), 0);
  ck_assert_int_eq(stat(b, &sb), 0);
  return sa.st_ino == sb.st_ino;
}

/* Container `cid` of `sb` from `bundle`, started. */
static void start_bundle(katavm_sandbox *sb, const char *cid, const char *bundle) {
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = bundle;
  katavm_error *e = NULL;
  int rc = katavm_container_add(sb, cid, &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add %s: %s", cid, katavm_error_message(e));
  ck_assert_int_eq(katavm_container_start(sb, cid, NULL), 0);
}

/* QEMU (pid q) as both shares run it: a uid (and gid) of the per-sandbox
 * range, no capabilities, no_new_privs, its seccomp filter, a mount
 * namespace of its own. Returns the uid as text. */
static char *assert_qemu_confined(pid_t q) {
  ck_assert_int_gt(q, 1);
  char *uid = status_field(q, "Uid");
  g_autofree char *gid = status_field(q, "Gid");
  guint64 u = g_ascii_strtoull(uid, NULL, 10);
  ck_assert_msg(u >= QEMU_UID_BASE && u < QEMU_UID_BASE + 65536, "QEMU runs as uid %s", uid);
  ck_assert_str_eq(gid, uid);
  g_autofree char *capeff = status_field(q, "CapEff");
  g_autofree char *capprm = status_field(q, "CapPrm");
  ck_assert_str_eq(capeff, "0000000000000000");
  ck_assert_str_eq(capprm, "0000000000000000");
  g_autofree char *nnp = status_field(q, "NoNewPrivs");
  ck_assert_str_eq(nnp, "1");
  g_autofree char *seccomp = status_field(q, "Seccomp");
  ck_assert_str_eq(seccomp, "2"); /* filter mode: QEMU's -sandbox */
  g_autofree char *cmdpath = g_strdup_printf("/proc/%d/cmdline", (int)q);
  g_autofree char *cmdline = NULL;
  gsize n = 0;
  ck_assert(g_file_get_contents(cmdpath, &cmdline, &n, NULL));
  for (gsize i = 0; i + 1 < n; i++)
    if (!cmdline[i])
      cmdline[i] = ' ';
  ck_assert_msg(strstr(cmdline, "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny"),
                "cmdline: %s", cmdline);
  ck_assert_msg(!same_ns(q, "mnt"), "QEMU shares the host's mount namespace");
  return uid;
}

START_TEST(qemu_unprivileged_under_virtiofs) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *bundle_dir = g_build_filename(WORK, "bundle", NULL);
  g_autofree char *b = kvt_make_rootfs(bundle_dir, TRUE);
  kvt_edit_spec(b, idle_main, NULL);
  katavm_sandbox *sb = kvt_create(rt, "jl1");
  start_bundle(sb, "c", b);
  katavm_error *e = NULL;
  int rc;

  g_autofree char *fs = NULL;
  pid_t q = qemu_pid("jl1", &fs);
  ck_assert_str_eq(fs, "virtio-fs");
  g_autofree char *uid = assert_qemu_confined(q);

  /* The container runs from the share (virtiofsd, root, does the I/O). */
  g_autofree char *out = NULL;
  ck_assert_int_eq(
      kvt_exec(sb, "c", ARGV("sh", "-c", "echo ok > /tmp/f && cat /tmp/f"), NULL, &out, NULL), 0);
  ck_assert_str_eq(out, "ok\n");

  /* A private image (0600, root's) still attaches read-write: the shim gives
   * QEMU's uid an ACL entry while it is attached, and takes it back. */
  g_autofree char *mk = g_strdup_printf("truncate -s 16M %s && chmod 600 %s", IMG, IMG);
  ck_assert_int_eq(system(mk), 0);
  katavm_hotplug_request req;
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
  req.path = IMG;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  ck_assert_msg(rc == 0, "disk add: %s", katavm_error_message(e));
  ck_assert_int_gt(getxattr(IMG, "system.posix_acl_access", NULL, 0), 0);
  ck_assert_int_eq(kvt_exec(sb, "c",
                            ARGV("sh", "-c",
                                 "for d in /sys/block/vd*; do echo $d; done | grep -q vd && "
                                 "dd if=/dev/zero of=/dev/$(ls /sys/block | grep vd | head -1) "
                                 "bs=4k count=1 conv=fsync 2>/dev/null"),
                            NULL, NULL, NULL),
                   0);
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_REMOVE);
  req.path = IMG;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  ck_assert_msg(rc == 0, "disk rm: %s", katavm_error_message(e));
  ck_assert_int_lt(getxattr(IMG, "system.posix_acl_access", NULL, 0), 0);
  ck_assert_int_eq(errno, ENODATA);
  struct stat st;
  ck_assert_int_eq(stat(IMG, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);

  /* A block device (a loop device over a 0600 image) as well: the ACL
   * entry is on the device node, which libvirt copies with its ACL into
   * QEMU's private /dev. */
  {
    g_autofree char *loop = NULL;
    g_autofree char *losetup = g_strdup_printf("losetup -f --show %s", IMG);
    ck_assert(g_spawn_command_line_sync(losetup, &loop, NULL, NULL, NULL));
    g_strstrip(loop);
    g_clear_pointer(&out, g_free);
    ck_assert_msg(g_str_has_prefix(loop, "/dev/loop"), "losetup: '%s'", loop);
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
    req.path = loop;
    rc = katavm_hotplug(sb, &req, NULL, &e);
    g_autofree char *detach = g_strdup_printf("losetup -d %s", loop);
    if (rc != 0)
      ck_assert_int_eq(system(detach), 0);
    ck_assert_msg(rc == 0, "disk add %s: %s", loop, katavm_error_message(e));
    ck_assert_int_gt(getxattr(loop, "system.posix_acl_access", NULL, 0), 0);
    ck_assert_int_eq(kvt_exec(sb, "c",
                              ARGV("sh", "-c",
                                   "d=$(ls /sys/block | grep vd | head -1) && "
                                   "echo block-ok | dd of=/dev/$d bs=4k conv=sync,fsync "
                                   "2>/dev/null && dd if=/dev/$d bs=8 count=1 2>/dev/null"),
                              NULL, &out, NULL),
                     0);
    ck_assert_str_eq(out, "block-ok");
    g_clear_pointer(&out, g_free);
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_REMOVE);
    req.path = loop;
    rc = katavm_hotplug(sb, &req, NULL, &e);
    ck_assert_msg(rc == 0, "disk rm %s: %s", loop, katavm_error_message(e));
    ck_assert_int_lt(getxattr(loop, "system.posix_acl_access", NULL, 0), 0);
    ck_assert_int_eq(system(detach), 0);
  }

  /* Attached at destroy: the ACL goes with the VM; so does the uid. */
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
  req.path = IMG;
  req.readonly = 1;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  ck_assert_msg(rc == 0, "disk add ro: %s", katavm_error_message(e));
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "jl1", NULL), 0);
  ck_assert_int_lt(getxattr(IMG, "system.posix_acl_access", NULL, 0), 0);
  g_autofree char *claim = g_strdup_printf("%s/uids/%s", kvt_root(), uid);
  ck_assert_msg(!g_file_test(claim, G_FILE_TEST_EXISTS), "%s left behind", claim);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

/* 9p through QEMU's proxy backend: QEMU is as confined as under virtio-fs,
 * and virtfs-proxy-helper (root, chrooted into the share, only the
 * capabilities file I/O for any owner needs) does the share's file I/O
 * with the guest's owners, for the rootfs and for a volume bound in
 * after boot. */
START_TEST(qemu_unprivileged_under_9p) {
  katavm_runtime *rt = kvt_runtime();
  ck_assert_int_eq(katavm_runtime_set_shared_fs(rt, "9p", NULL), 0);
  g_autofree char *bundle_dir = g_build_filename(WORK, "bundle9", NULL);
  g_autofree char *b = kvt_make_rootfs(bundle_dir, TRUE);
  kvt_edit_spec(b, idle_chown, NULL);
  katavm_sandbox *sb = kvt_create(rt, "jl2");
  g_autofree char *fs = NULL;
  pid_t q = qemu_pid("jl2", &fs);
  ck_assert_str_eq(fs, "9p");
  g_autofree char *uid = assert_qemu_confined(q);

  /* The helper: root, its root directory the share, a small capability
   * set (not root's full one). */
  g_autofree char *share = g_strdup_printf("%s/sandboxes/jl2/shared", kvt_root());
  pid_t h = kvt_find_proc("virtfs-proxy-helper", share);
  ck_assert_msg(h > 0, "no virtfs-proxy-helper serving %s", share);
  g_autofree char *huid = status_field(h, "Uid");
  ck_assert_str_eq(huid, "0");
  g_autofree char *hcap = status_field(h, "CapEff");
  guint64 caps = g_ascii_strtoull(hcap, NULL, 16);
  ck_assert_msg(caps != 0 && !(caps & (1ull << 21)) && !(caps & (1ull << 12)),
                "helper CapEff %s (want file capabilities only: no SYS_ADMIN, NET_ADMIN)", hcap);
  g_autofree char *hnnp = status_field(h, "NoNewPrivs");
  ck_assert_str_eq(hnnp, "1");
  ck_assert_msg(!same_ns(h, "net"), "the helper shares the host's network namespace");
  ck_assert_msg(same_ns(h, "mnt"), "the helper must see the shim's later bind mounts");
  g_autofree char *hroot_link = g_strdup_printf("/proc/%d/root", (int)h);
  g_autofree char *hroot = g_file_read_link(hroot_link, NULL);
  ck_assert_msg(hroot && g_str_has_suffix(hroot, "/jl2/shared"), "helper root %s",
                hroot ? hroot : "?");

  /* The rootfs: written with the guest's owners (chown works: the helper
   * does it), seen on the host. */
  start_bundle(sb, "c", b);
  katavm_error *e = NULL;
  int rc;
  ck_assert_int_eq(kvt_exec(sb, "c", ARGV("sh", "-c", "echo nine > /f9 && chown 1234:567 /f9"),
                            NULL, NULL, NULL),
                   0);
  g_autofree char *f9 = g_build_filename(b, "rootfs", "f9", NULL);
  g_autofree char *got = NULL;
  ck_assert(g_file_get_contents(f9, &got, NULL, NULL));
  ck_assert_str_eq(got, "nine\n");
  struct stat st;
  ck_assert_int_eq(stat(f9, &st), 0);
  ck_assert_int_eq(st.st_uid, 1234);
  ck_assert_int_eq(st.st_gid, 567);

  /* A second container with a volume: both bound into the share after
   * boot, and the helper (in the host's mount namespace) serves them. */
  g_autofree char *vol = g_build_filename(WORK, "vol9", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(vol, 0755), 0);
  g_autofree char *hostfile = g_build_filename(vol, "from-host", NULL);
  ck_assert(g_file_set_contents(hostfile, "host\n", -1, NULL));
  g_autofree char *rootfs2 = g_build_filename(WORK, "rootfs9b", NULL);
  g_autofree char *r2 = kvt_make_rootfs(rootfs2, FALSE);
  g_autofree char *spec = g_strdup_printf("%s:/vol", vol);
  const char *vols[] = {spec, NULL};
  katavm_container_config c2;
  katavm_container_config_init(&c2);
  c2.rootfs = r2;
  c2.argv = ARGV("sleep", "100000");
  c2.volumes = vols;
  rc = katavm_container_add(sb, "d", &c2, NULL, &e);
  ck_assert_msg(rc == 0, "add d: %s", katavm_error_message(e));
  ck_assert_int_eq(katavm_container_start(sb, "d", NULL), 0);
  g_autofree char *out = NULL;
  ck_assert_int_eq(kvt_exec(sb, "d",
                            ARGV("sh", "-c", "cat /vol/from-host && echo guest > /vol/from-guest"),
                            NULL, &out, NULL),
                   0);
  ck_assert_str_eq(out, "host\n");
  g_autofree char *fromguest = g_build_filename(vol, "from-guest", NULL);
  g_clear_pointer(&got, g_free);
  ck_assert(g_file_get_contents(fromguest, &got, NULL, NULL));
  ck_assert_str_eq(got, "guest\n");

  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "jl2", NULL), 0);
  ck_assert_int_eq(kill(h, 0), -1);
  g_autofree char *claim = g_strdup_printf("%s/uids/%s", kvt_root(), uid);
  ck_assert_msg(!g_file_test(claim, G_FILE_TEST_EXISTS), "%s left behind", claim);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("jail");
  TCase *t = tcase_create("qemu");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, qemu_unprivileged_under_virtiofs);
  tcase_add_test(t, qemu_unprivileged_under_9p);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
