/* tests/integration/test_volumes.c: volumes on a real VM: host directories
 * and single files bind-mounted into containers (API, bundle mounts, CLI),
 * rw and ro, changes seen both ways; the host-side mounts nosuid,nodev
 * (a setuid file made in the container gives no privilege from the share);
 * bad volumes refused with nothing left behind; and a guest that attacks
 * the share with symlinks (at each component the host walks, and in a
 * rename race) steers no host mount and leaves the sandbox working. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *workdir;

static void work_setup(void) {
  kvt_setup();
  workdir = kvt_workdir_new(NULL);
}

static void work_teardown(void) {
  kvt_teardown();
  kvt_workdir_drop(&workdir);
}

static char *share_of(const char *sid) {
  return g_build_filename(kvt_root(), "sandboxes", sid, "shared", NULL);
}

static char *mkdir_in(const char *name) {
  char *d = g_build_filename(workdir, name, NULL);
  ck_assert_int_eq(g_mkdir_with_parents(d, 0755), 0);
  return d;
}

static void write_file(const char *path, const char *text) {
  ck_assert(g_file_set_contents(path, text, -1, NULL));
}

static char *read_file(const char *path) {
  char *s = NULL;
  ck_assert_msg(g_file_get_contents(path, &s, NULL, NULL), "read %s", path);
  return s;
}

/* The same for DIR/NAME. */
static void write_in(const char *dir, const char *name, const char *text) {
  g_autofree char *path = g_build_filename(dir, name, NULL);
  write_file(path, text);
}

static gboolean exists_in(const char *dir, const char *name) {
  g_autofree char *path = g_build_filename(dir, name, NULL);
  return g_file_test(path, G_FILE_TEST_EXISTS);
}

static char *read_in(const char *dir, const char *name) {
  g_autofree char *path = g_build_filename(dir, name, NULL);
  return read_file(path);
}

/* The mountinfo line (the mount options and what follows) of the mount
 * whose mount point is exactly `mp`, or NULL. */
static char *mountinfo_of(const char *mp) {
  g_autofree char *m = NULL;
  ck_assert(g_file_get_contents("/proc/self/mountinfo", &m, NULL, NULL));
  g_auto(GStrv) lines = g_strsplit(m, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit(*l, " ", 7);
    if (g_strv_length(f) >= 6 && !strcmp(f[4], mp))
      return g_strdup(*l);
  }
  return NULL;
}

/* Mounts whose mount point contains needle. */
static int count_mounts_with(const char *needle) {
  g_autofree char *m = NULL;
  ck_assert(g_file_get_contents("/proc/self/mountinfo", &m, NULL, NULL));
  g_auto(GStrv) lines = g_strsplit(m, "\n", -1);
  int n = 0;
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit(*l, " ", 7);
    if (g_strv_length(f) >= 6 && strstr(f[4], needle))
      n++;
  }
  return n;
}

static katavm_sandbox *sandbox(katavm_runtime *rt, const char *id) {
  katavm_sandbox_config sc;
  katavm_sandbox_config_init(&sc);
  sc.id = id;
  sc.memory_mib = 384;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_create(rt, &sc, &sb, &e);
  ck_assert_msg(rc == 0, "create %s: %s", id, katavm_error_message(e));
  return sb;
}

static void destroy(katavm_runtime *rt, const char *id) {
  katavm_error *e = NULL;
  int rc = katavm_sandbox_destroy(rt, id, &e);
  ck_assert_msg(rc == 0, "destroy %s: %s", id, katavm_error_message(e));
}

static const char *const SLEEP[] = {"sleep", "100000", NULL};

/* Adds and starts a container idling in `sleep`; returns the add's rc and
 * leaves the error in *e (NULL e: asserts success). */
static int add_with(katavm_sandbox *sb, const char *cid, const char *rootfs, const char *bundle,
                    const char *const *volumes, katavm_error **e) {
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.rootfs = rootfs;
  cc.bundle = bundle;
  cc.argv = SLEEP;
  cc.volumes = volumes;
  katavm_error *mine = NULL;
  int rc = katavm_container_add(sb, cid, &cc, NULL, e ? e : &mine);
  if (!e)
    ck_assert_msg(rc == 0, "add %s: %s", cid, katavm_error_message(mine));
  if (rc == 0) {
    rc = katavm_container_start(sb, cid, &mine);
    ck_assert_msg(rc == 0, "start %s: %s", cid, katavm_error_message(mine));
  }
  return rc;
}

/* Nothing of container cid is left in the share or the host's mounts. */
static void assert_no_trace(const char *sid, const char *cid) {
  g_autofree char *share = share_of(sid);
  g_autofree char *dir = g_build_filename(share, "containers", cid, NULL);
  struct stat st;
  ck_assert_msg(lstat(dir, &st) < 0 && errno == ENOENT, "%s is left behind", dir);
  ck_assert_msg(count_mounts_with(dir) == 0, "a mount below %s is left behind", dir);
}

/* A bad add: fails with code and a message holding needle, leaves nothing. */
static void assert_bad_add(katavm_sandbox *sb, const char *sid, const char *rootfs,
                           const char *bundle, const char *const *volumes, int code,
                           const char *needle) {
  katavm_error *e = NULL;
  int rc = add_with(sb, "bad", rootfs, bundle, volumes, &e);
  kvt_assert_error(rc, e, code, needle);
  assert_no_trace(sid, "bad");
}

/* Runs the program at path (opened here, as root: the share's directories
 * are 0700) with arg, on the host as nobody (65534); returns its stdout. */
static char *run_as_nobody(const char *path, const char *arg) {
  int prog = open(path, O_PATH | O_CLOEXEC);
  ck_assert_msg(prog >= 0, "open %s: %s", path, g_strerror(errno));
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
      _exit(126);
    char *const argv[] = {(char *)path, (char *)arg, NULL};
    char *const envp[] = {NULL};
    syscall(SYS_execveat, prog, "", argv, envp, AT_EMPTY_PATH);
    _exit(127);
  }
  close(prog);
  close(pfd[1]);
  GString *out = g_string_new(NULL);
  char buf[256];
  ssize_t n;
  while ((n = read(pfd[0], buf, sizeof buf)) > 0)
    g_string_append_len(out, buf, n);
  close(pfd[0]);
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s as nobody: status %d", path,
                status);
  return g_string_free(out, FALSE);
}

static JsonArray *strv_json(const char *const *v) {
  JsonArray *a = json_array_new();
  for (; *v; v++)
    json_array_add_string_element(a, *v);
  return a;
}

/* Append the mounts of the JSON array mounts_json to spec and let the
 * container idle in `sleep`. */
static void add_mounts(JsonObject *spec, gpointer mounts_json) {
  JsonArray *ms = json_object_get_array_member(spec, "mounts");
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, mounts_json, -1, NULL));
  JsonArray *add = json_node_get_array(json_parser_get_root(p));
  for (guint i = 0; i < json_array_get_length(add); i++)
    json_array_add_element(ms, json_node_copy(json_array_get_element(add, i)));
  JsonObject *proc = json_object_get_object_member(spec, "process");
  json_object_set_array_member(proc, "args", strv_json(SLEEP));
}

/* The same with a read-only root and a cwd that is not in the rootfs. */
static void ro_root_mounts(JsonObject *spec, gpointer mounts_json) {
  add_mounts(spec, mounts_json);
  json_object_set_boolean_member(json_object_get_object_member(spec, "root"), "readonly", TRUE);
  json_object_set_string_member(json_object_get_object_member(spec, "process"), "cwd", "/new/cwd");
}

static void bundle_mounts(JsonObject *spec, gpointer ro_dir) {
  g_autofree char *js =
      g_strdup_printf("[{\"destination\":\"/bdata\",\"type\":\"bind\",\"source\":\"vol\","
                      "\"options\":[\"rbind\",\"rw\"]},"
                      "{\"destination\":\"/bro\",\"source\":\"%s\",\"options\":[\"bind\",\"ro\"]},"
                      "{\"destination\":\"/bfile\",\"type\":\"bind\",\"source\":\"file.txt\","
                      "\"options\":[\"bind\",\"rprivate\"]}]",
                      (const char *)ro_dir);
  add_mounts(spec, js);
}

static void root_path_slash(JsonObject *spec, gpointer unused) {
  json_object_set_string_member(json_object_get_object_member(spec, "root"), "path", "/");
}

START_TEST(volumes_end_to_end) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *rootfs_dir = g_build_filename(workdir, "rootfs", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rootfs_dir, FALSE);
  g_autofree char *rw = mkdir_in("rw");
  g_autofree char *ro = mkdir_in("ro");
  g_autofree char *single = g_build_filename(workdir, "single.conf", NULL);
  g_autofree char *ro_file = g_build_filename(ro, "r.txt", NULL);
  write_file(ro_file, "read only\n");
  write_file(single, "one file\n");
  /* A host binary for the setuid check (the container's busybox drops
   * privileges on its own, which would prove nothing). */
  g_autofree char *id_src = g_build_filename(rw, "id.orig", NULL);
  {
    g_autofree char *bin = NULL;
    gsize len = 0;
    ck_assert(g_file_get_contents("/usr/bin/id", &bin, &len, NULL));
    ck_assert(g_file_set_contents(id_src, bin, (gssize)len, NULL));
    ck_assert_int_eq(chmod(id_src, 0755), 0);
  }
  katavm_sandbox *sb = sandbox(rt, "vol");
  g_autofree char *share = share_of("vol");

  g_autofree char *v_rw = g_strdup_printf("%s:/data", rw);
  g_autofree char *v_ro = g_strdup_printf("%s:/ro:ro", ro);
  g_autofree char *v_file = g_strdup_printf("%s:/etc/single.conf", single);
  add_with(sb, "c1", rootfs, NULL, ARGV(v_rw, v_ro, v_file), NULL);

  /* rw: the container's write lands on the host, the host's shows inside. */
  ck_assert_int_eq(
      kvt_exec(sb, "c1", ARGV("sh", "-c", "echo from-guest > /data/g"), NULL, NULL, NULL), 0);
  g_autofree char *g = read_in(rw, "g");
  ck_assert_str_eq(g, "from-guest\n");
  write_in(rw, "h", "from-host\n");
  g_autofree char *h = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("cat", "/data/h"), NULL, &h, NULL), 0);
  ck_assert_str_eq(h, "from-host\n");

  /* ro: readable, a write fails with EROFS. */
  g_autofree char *r = NULL, *rerr = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("cat", "/ro/r.txt"), NULL, &r, NULL), 0);
  ck_assert_str_eq(r, "read only\n");
  int rc = kvt_exec(sb, "c1", ARGV("sh", "-c", "echo x > /ro/new"), NULL, NULL, &rerr);
  ck_assert_int_ne(rc, 0);
  ck_assert_msg(strstr(rerr, "Read-only file system"), "ro write said: %s", rerr);
  ck_assert(!exists_in(ro, "new"));

  /* A single file, both ways. */
  g_autofree char *one = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("cat", "/etc/single.conf"), NULL, &one, NULL), 0);
  ck_assert_str_eq(one, "one file\n");
  ck_assert_int_eq(
      kvt_exec(sb, "c1", ARGV("sh", "-c", "echo more >> /etc/single.conf"), NULL, NULL, NULL), 0);
  g_autofree char *single_now = read_file(single);
  ck_assert_str_eq(single_now, "one file\nmore\n");

  /* The host-side mounts in the share are nosuid,nodev (ro for ro). */
  g_autofree char *mp_rootfs = g_build_filename(share, "containers/c1/rootfs", NULL);
  g_autofree char *mp_rw = g_build_filename(share, "containers/c1/volumes/0", NULL);
  g_autofree char *mp_ro = g_build_filename(share, "containers/c1/volumes/1", NULL);
  g_autofree char *mp_file = g_build_filename(share, "containers/c1/volumes/2", NULL);
  const char *mps[] = {mp_rootfs, mp_rw, mp_ro, mp_file};
  for (gsize i = 0; i < G_N_ELEMENTS(mps); i++) {
    g_autofree char *line = mountinfo_of(mps[i]);
    ck_assert_msg(line, "no host mount at %s", mps[i]);
    g_auto(GStrv) f = g_strsplit(line, " ", 7);
    ck_assert_msg(strstr(f[5], "nosuid") && strstr(f[5], "nodev"), "%s: options %s", mps[i], f[5]);
    ck_assert_msg((i == 2) == (strncmp(f[5], "ro", 2) == 0), "%s: options %s", mps[i], f[5]);
  }

  /* setuid: a setuid-root copy made in the container through the volume
   * keeps its bit on the host file, and gives nobody no privilege when run
   * from the share's host path (nosuid). */
  ck_assert_int_eq(kvt_exec(sb, "c1",
                            ARGV("sh", "-c",
                                 "cp /data/id.orig /data/id && chown 0:0 /data/id && "
                                 "chmod 4755 /data/id"),
                            NULL, NULL, NULL),
                   0);
  struct stat st;
  g_autofree char *id_host = g_build_filename(rw, "id", NULL);
  ck_assert_int_eq(stat(id_host, &st), 0);
  ck_assert_msg((st.st_mode & S_ISUID) && st.st_uid == 0, "mode %o uid %d", st.st_mode,
                (int)st.st_uid);
  g_autofree char *id_share = g_build_filename(mp_rw, "id", NULL);
  g_autofree char *euid = run_as_nobody(id_share, "-u");
  ck_assert_str_eq(euid, "65534\n");
  /* The control: the very file at its source path (a file system without
   * nosuid) does raise nobody to root, so nosuid is what stopped it
   * above. What a guest can do to host files it is given: docs/storage.md. */
  g_autofree char *euid_src = run_as_nobody(id_host, "-u");
  ck_assert_str_eq(euid_src, "0\n");
  ck_assert_int_eq(unlink(id_host), 0);

  /* The same through a bundle's mounts: a relative source (relative to
   * the bundle), an absolute ro one, a single file. */
  g_autofree char *bdir = g_build_filename(workdir, "bundle", NULL);
  g_autofree char *b = kvt_make_rootfs(bdir, TRUE);
  kvt_edit_spec(b, bundle_mounts, ro);
  g_autofree char *bvol = g_build_filename(b, "vol", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(bvol, 0755), 0);
  write_in(b, "file.txt", "bundle file\n");
  add_with(sb, "c2", NULL, b, NULL, NULL);
  ck_assert_int_eq(
      kvt_exec(sb, "c2", ARGV("sh", "-c", "echo bundled > /bdata/f"), NULL, NULL, NULL), 0);
  g_autofree char *bf = read_in(bvol, "f");
  ck_assert_str_eq(bf, "bundled\n");
  g_autofree char *berr = NULL, *bfile = NULL;
  ck_assert_int_ne(kvt_exec(sb, "c2", ARGV("sh", "-c", "echo x > /bro/y"), NULL, NULL, &berr), 0);
  ck_assert_msg(strstr(berr, "Read-only file system"), "bundle ro write said: %s", berr);
  ck_assert_int_eq(kvt_exec(sb, "c2", ARGV("cat", "/bfile"), NULL, &bfile, NULL), 0);
  ck_assert_str_eq(bfile, "bundle file\n");

  /* Bad input: clear errors naming the volume, nothing left behind. */
  g_autofree char *missing = g_strdup_printf("%s/nope:/x", workdir);
  assert_bad_add(sb, "vol", rootfs, NULL, ARGV(missing), KATAVM_E_INVALID, "nope");
  g_autofree char *rel = g_strdup_printf("%s:data", rw);
  assert_bad_add(sb, "vol", rootfs, NULL, ARGV(rel), KATAVM_E_INVALID, "must be an absolute path");
  g_autofree char *dots = g_strdup_printf("%s:/a/../../etc", rw);
  assert_bad_add(sb, "vol", rootfs, NULL, ARGV(dots), KATAVM_E_INVALID, "\"..\"");
  g_autofree char *opt = g_strdup_printf("%s:/x:bogus", rw);
  assert_bad_add(sb, "vol", rootfs, NULL, ARGV(opt), KATAVM_E_INVALID, "bogus");
  g_autofree char *fifo = g_build_filename(workdir, "fifo", NULL);
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  g_autofree char *vfifo = g_strdup_printf("%s:/x", fifo);
  assert_bad_add(sb, "vol", rootfs, NULL, ARGV(vfifo), KATAVM_E_INVALID,
                 "neither a directory nor a regular file");
  /* A source inside the share (guest-writable): refused by the shim. */
  g_autofree char *vshare = g_strdup_printf("%s/containers/c1/rootfs:/x", share);
  assert_bad_add(sb, "vol", rootfs, NULL, ARGV(vshare), KATAVM_E_INVALID,
                 "inside the sandbox's share");
  g_autofree char *vroot = g_strdup("/:/host");
  assert_bad_add(sb, "vol", rootfs, NULL, ARGV(vroot), KATAVM_E_INVALID, "root directory");
  {
    const char *many[KATAVM_VOLUMES_MAX + 2];
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0; i <= KATAVM_VOLUMES_MAX; i++) {
      many[i] = g_strdup_printf("%s:/v%d", rw, i);
      g_ptr_array_add(keep, (char *)many[i]);
    }
    many[KATAVM_VOLUMES_MAX + 1] = NULL;
    assert_bad_add(sb, "vol", rootfs, NULL, many, KATAVM_E_INVALID, "at most 64");
  }
  /* The issue 15 item 1 cases: an empty rootfs (the CLI once bind-mounted
   * its cwd) and a bundle whose root.path is "/". */
  assert_bad_add(sb, "vol", "", NULL, NULL, KATAVM_E_INVALID, "absolute");
  g_autofree char *err = NULL;
  rc = kvt_cli(NULL, &err, "container", "add", "vol", "bad", "", NULL);
  ck_assert_msg(rc != 0 && strstr(err, "empty"), "empty rootfs via the CLI: %d %s", rc, err);
  assert_no_trace("vol", "bad");
  g_autofree char *rootb = g_build_filename(workdir, "rootbundle", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(rootb, 0755), 0);
  {
    g_autofree char *cfg = g_build_filename(b, "config.json", NULL);
    g_autofree char *text = read_file(cfg);
    write_in(rootb, "config.json", text);
    kvt_edit_spec(rootb, root_path_slash, NULL);
  }
  assert_bad_add(sb, "vol", NULL, rootb, NULL, KATAVM_E_INVALID, "host's root");

  /* The CLI: container add -v. */
  g_autofree char *cli_vol = g_strdup_printf("%s:/cli", rw);
  g_clear_pointer(&err, g_free);
  rc = kvt_cli(NULL, &err, "container", "add", "-v", cli_vol, "vol", "c3", rootfs, "--", "sleep",
               "100000", NULL);
  ck_assert_msg(rc == 0, "container add -v: %s", err);
  g_clear_pointer(&err, g_free);
  rc = kvt_cli(NULL, &err, "container", "start", "vol", "c3", NULL);
  ck_assert_msg(rc == 0, "container start: %s", err);
  g_autofree char *c3 = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c3", ARGV("cat", "/cli/h"), NULL, &c3, NULL), 0);
  ck_assert_str_eq(c3, "from-host\n");

  /* Removal unmounts a container's volumes and removes its directory. */
  ck_assert_int_eq(katavm_container_remove(sb, "c1", 1, NULL), 0);
  assert_no_trace("vol", "c1");
  /* The others stay mounted until the sandbox goes. */
  ck_assert_int_gt(count_mounts_with("containers/c2/volumes"), 0);
  katavm_sandbox_close(sb);
  destroy(rt, "vol");
  ck_assert_int_eq(count_mounts_with(share), 0);
  /* The host files are the user's: still there. */
  ck_assert(exists_in(rw, "g"));
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(cli_run_volume) {
  g_autofree char *rootfs_dir = g_build_filename(workdir, "rootfs", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rootfs_dir, FALSE);
  g_autofree char *rw = mkdir_in("rw");
  g_autofree char *ro = mkdir_in("ro");
  g_autofree char *v1 = g_strdup_printf("%s:/data", rw);
  g_autofree char *v2 = g_strdup_printf("%s:/ro:ro", ro);
  g_autofree char *err = NULL;
  int rc = kvt_cli(NULL, &err, "run", "--rm", "-v", v1, "-v", v2, rootfs, "--", "sh", "-c",
                   "echo cli > /data/c; echo x > /ro/y", NULL);
  ck_assert_msg(rc == 1, "run -v gave %d: %s", rc, err);
  ck_assert_msg(strstr(err, "Read-only file system"), "ro write said: %s", err);
  g_autofree char *c = read_in(rw, "c");
  ck_assert_str_eq(c, "cli\n");
  kvt_assert_clean();
}
END_TEST

/* ---- a guest that attacks the share ---- */

/* The attacker: root in the guest's PID namespace with every capability,
 * so /proc/1/root is the agent's root and KV_GUEST_SHARED_DIR, the share,
 * is writable from it: what a compromised guest kernel or agent can do
 * anyway. */
static void attacker_spec(JsonObject *spec, gpointer unused) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  json_object_remove_member(proc, "capabilities");
  json_object_set_boolean_member(proc, "noNewPrivileges", FALSE);
  json_object_set_array_member(proc, "args", strv_json(SLEEP));
  JsonArray *ns =
      json_object_get_array_member(json_object_get_object_member(spec, "linux"), "namespaces");
  for (guint i = json_array_get_length(ns); i-- > 0;) {
    JsonObject *o = json_array_get_object_element(ns, i);
    if (strcmp(json_object_get_string_member(o, "type"), "pid") == 0)
      json_array_remove_element(ns, i);
  }
}

#define GSHARE "/proc/1/root/run/katavm/shared"

static void guest_sh(katavm_sandbox *sb, const char *script) {
  g_autofree char *err = NULL;
  int rc = kvt_exec(sb, "evil", ARGV("sh", "-c", script), NULL, NULL, &err);
  ck_assert_msg(rc == 0, "attacker script '%s' failed (%d): %s", script, rc, err);
}

static char *listing(const char *dir) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  ck_assert(d);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *n;
  while ((n = g_dir_read_name(d)))
    g_ptr_array_add(names, g_strdup(n));
  g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
  g_ptr_array_add(names, NULL);
  return g_strjoinv(",", (char **)names->pdata);
}

/* The attack's target: unchanged, nothing mounted on or below it. */
static void assert_target_intact(const char *target, const char *before) {
  g_autofree char *now = listing(target);
  ck_assert_str_eq(now, before);
  ck_assert_msg(count_mounts_with(target) == 0, "a host mount appeared at %s", target);
}

START_TEST(symlink_attacks) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *rootfs_dir = g_build_filename(workdir, "rootfs", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rootfs_dir, FALSE);
  g_autofree char *evil_dir = g_build_filename(workdir, "evil", NULL);
  g_autofree char *evil = kvt_make_rootfs(evil_dir, TRUE);
  kvt_edit_spec(evil, attacker_spec, NULL);
  g_autofree char *target = mkdir_in("target");
  write_in(target, "precious", "host data\n");
  g_autofree char *vol = mkdir_in("vol");
  g_autofree char *before = listing(target);
  katavm_sandbox *sb = sandbox(rt, "att");
  add_with(sb, "evil", NULL, evil, NULL, NULL);
  /* The attacker reaches the share. */
  guest_sh(sb, "test -d " GSHARE "/containers/evil/rootfs");

  g_autofree char *v = g_strdup_printf("%s:/data", vol);
  struct {
    const char *cid, *script, *needle;
  } cases[] = {
      /* The attack: the container directory itself. */
      {"new1", "ln -s %s " GSHARE "/containers/new1", "symbolic link"},
      {"new2", "mkdir " GSHARE "/containers/new2 && ln -s %s " GSHARE "/containers/new2/rootfs",
       "symbolic link"},
      {"new3", "mkdir " GSHARE "/containers/new3 && ln -s %s " GSHARE "/containers/new3/volumes",
       "symbolic link"},
      {"new4",
       "mkdir -p " GSHARE "/containers/new4/volumes && ln -s %s " GSHARE
       "/containers/new4/volumes/0",
       "symbolic link"},
      /* The share's own containers directory. */
      {"new5", "mv " GSHARE "/containers " GSHARE "/c.real && ln -s %s " GSHARE "/containers",
       "symbolic link"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *script = g_strdup_printf(cases[i].script, target);
    guest_sh(sb, script);
    katavm_error *e = NULL;
    int rc = add_with(sb, cases[i].cid, rootfs, NULL, ARGV(v), &e);
    kvt_assert_error(rc, e, KATAVM_E_IO, cases[i].needle);
    assert_target_intact(target, before);
    if (i == 4)
      guest_sh(sb, "rm " GSHARE "/containers && mv " GSHARE "/c.real " GSHARE "/containers");
    /* Nothing of the failed add is left, what the guest placed there
     * included (the shim removes the entry itself, never what it points
     * to). */
    assert_no_trace("att", cases[i].cid);
    /* Whatever the guest left there is gone or harmless; the sandbox
     * works: a normal add with a volume succeeds. */
    g_autofree char *ok = g_strdup_printf("ok%zu", i);
    add_with(sb, ok, rootfs, NULL, ARGV(v), NULL);
    g_autofree char *out = NULL;
    ck_assert_int_eq(
        kvt_exec(sb, ok, ARGV("sh", "-c", "echo ok > /data/ok && cat /data/ok"), NULL, &out, NULL),
        0);
    ck_assert_str_eq(out, "ok\n");
    ck_assert_int_eq(katavm_container_remove(sb, ok, 1, NULL), 0);
    assert_no_trace("att", ok);
  }

  /* A rename race: the guest swaps containers/race between a directory
   * and a symlink to the target as fast as it can while the host adds that
   * container again and again. Each add fails cleanly or succeeds inside
   * the share; the target never sees a mount. */
  g_autofree char *race =
      g_strdup_printf("cd " GSHARE "/containers && mkdir d && ln -s %s l && "
                      "(while [ ! -e /stop ]; do mv d race; mv race d; mv l race; mv race l; done) "
                      ">/dev/null 2>&1 </dev/null &",
                      target);
  guest_sh(sb, race);
  int ok = 0, failed = 0;
  for (int i = 0; i < 12; i++) {
    katavm_error *e = NULL;
    int rc = add_with(sb, "race", rootfs, NULL, ARGV(v), &e);
    assert_target_intact(target, before);
    if (rc == 0) {
      ok++;
      ck_assert_int_eq(katavm_container_remove(sb, "race", 1, NULL), 0);
    } else {
      failed++;
      ck_assert_msg(katavm_error_message(e) && *katavm_error_message(e), "no error message");
    }
    katavm_error_free(e);
  }
  /* No rm -r: a mount of ours could be below what the guest moved. */
  guest_sh(sb,
           "touch /stop; sleep 1; cd " GSHARE "/containers && rm -f l race; rmdir d race; true");
  fprintf(stderr, "race: %d adds succeeded, %d failed cleanly\n", ok, failed);
  assert_target_intact(target, before);
  add_with(sb, "after", rootfs, NULL, ARGV(v), NULL);
  g_autofree char *out = NULL;
  ck_assert_int_eq(kvt_exec(sb, "after", ARGV("cat", "/data/ok"), NULL, &out, NULL), 0);
  ck_assert_str_eq(out, "ok\n");

  katavm_sandbox_close(sb);
  destroy(rt, "att");
  assert_target_intact(target, before);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static pid_t shim_pid(katavm_sandbox *sb) {
  char *js = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_inspect(sb, &js, &e);
  ck_assert_msg(rc == 0, "inspect: %s", katavm_error_message(e));
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, js, -1, NULL));
  katavm_free(js);
  pid_t pid =
      (pid_t)json_object_get_int_member(json_node_get_object(json_parser_get_root(p)), "shim_pid");
  ck_assert_int_gt(pid, 1);
  return pid;
}

static void kill_shim(katavm_sandbox *sb) {
  pid_t pid = shim_pid(sb);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  /* Not our child: wait for /proc to let it go. */
  for (int i = 0; i < 3000 && kill(pid, 0) == 0; i++)
    g_usleep(10000);
  ck_assert_int_ne(kill(pid, 0), 0);
}

/* A shim that dies leaves its volume mounts: the recovering shim takes
 * them over (a removal unmounts them), and a destroy after another crash
 * removes them too. */
START_TEST(crash_cleanup) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *rootfs_dir = g_build_filename(workdir, "rootfs", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rootfs_dir, FALSE);
  g_autofree char *rw = mkdir_in("rw");
  write_in(rw, "f", "kept\n");
  g_autofree char *v = g_strdup_printf("%s:/data", rw);
  katavm_sandbox *sb = sandbox(rt, "crash");
  add_with(sb, "c1", rootfs, NULL, ARGV(v), NULL);
  add_with(sb, "c2", rootfs, NULL, ARGV(v), NULL);
  kill_shim(sb);
  katavm_sandbox_close(sb);
  sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, "crash", &sb, &e);
  ck_assert_msg(rc == 0, "open after the crash: %s", katavm_error_message(e));
  g_autofree char *out = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("cat", "/data/f"), NULL, &out, NULL), 0);
  ck_assert_str_eq(out, "kept\n");
  ck_assert_int_eq(katavm_container_remove(sb, "c1", 1, NULL), 0);
  assert_no_trace("crash", "c1");
  ck_assert_int_gt(count_mounts_with("containers/c2/volumes/0"), 0);
  kill_shim(sb);
  katavm_sandbox_close(sb);
  destroy(rt, "crash");
  g_autofree char *share = share_of("crash");
  ck_assert_int_eq(count_mounts_with(share), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static void sh_ok(const char *cmd) {
  int status = -1;
  g_autofree char *err = NULL;
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  ck_assert(g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL, NULL, &err, &status, NULL));
  ck_assert_msg(g_spawn_check_wait_status(status, NULL), "%s: %s", cmd, err);
}

/* A disk image as a volume at container creation (issue 14, item 4): the
 * disk is hot-plugged and its file system mounted at the destination
 * before the main process starts; writes land in the image. */
START_TEST(disk_volume) {
  g_autofree char *rootfs_dir = g_build_filename(workdir, "rootfs", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rootfs_dir, FALSE);
  g_autofree char *cmd = g_strdup_printf(
      "cd %s && mkdir -p disk-src && echo on-disk > disk-src/hello.txt && truncate -s 32M "
      "disk.img && mkfs.ext4 -q -F -d disk-src disk.img",
      workdir);
  sh_ok(cmd);
  g_autofree char *img = g_build_filename(workdir, "disk.img", NULL);
  g_autofree char *v = g_strdup_printf("%s:/db:disk", img);
  g_autofree char *out = NULL, *err = NULL;
  int rc =
      kvt_cli(&out, &err, "run", "--rm", "-v", v, rootfs, "--", "sh", "-c",
              "cat /db/hello.txt && echo written > /db/w.txt && grep ' /db ' /proc/mounts", NULL);
  ck_assert_msg(rc == 0, "run -v IMG:/db:disk gave %d: %s", rc, err);
  ck_assert_msg(g_str_has_prefix(out, "on-disk\n") && strstr(out, " /db ext4 "), "out: %s", out);
  g_autofree char *w = NULL;
  g_autofree char *dbg = g_strdup_printf("debugfs -R 'cat /w.txt' %s", img);
  ck_assert(g_spawn_command_line_sync(dbg, &w, NULL, NULL, NULL));
  ck_assert_msg(strstr(w, "written"), "the image holds: %s", w);
  /* Removing the container detaches its disk: inspect lists it no more,
   * and the same image can be the disk volume of the next container. */
  const char *sb = "diskvol";
  g_clear_pointer(&err, g_free);
  ck_assert_msg(kvt_cli(NULL, &err, "sandbox", "create", "--name", sb, NULL) == 0, "%s", err);
  g_clear_pointer(&err, g_free);
  ck_assert_msg(kvt_cli(NULL, &err, "container", "add", "-v", v, sb, "c1", rootfs, "--", "sleep",
                        "100000", NULL) == 0,
                "%s", err);
  ck_assert_int_eq(kvt_cli(NULL, NULL, "container", "start", sb, "c1", NULL), 0);
  g_autofree char *insp = NULL;
  ck_assert_int_eq(kvt_cli(&insp, NULL, "sandbox", "inspect", sb, "--json", NULL), 0);
  ck_assert_msg(strstr(insp, img) && strstr(insp, "\"container\":\"c1\""),
                "the disk of c1 is not listed: %s", insp);
  ck_assert_int_eq(kvt_cli(NULL, NULL, "container", "rm", "-f", sb, "c1", NULL), 0);
  g_clear_pointer(&insp, g_free);
  ck_assert_int_eq(kvt_cli(&insp, NULL, "sandbox", "inspect", sb, "--json", NULL), 0);
  ck_assert_msg(!strstr(insp, img), "the disk is still attached after container rm: %s", insp);
  g_clear_pointer(&err, g_free);
  ck_assert_msg(kvt_cli(NULL, &err, "container", "add", "-v", v, sb, "c2", rootfs, "--", "sleep",
                        "100000", NULL) == 0,
                "the disk cannot be given again: %s", err);
  ck_assert_int_eq(kvt_cli(NULL, NULL, "container", "start", sb, "c2", NULL), 0);
  g_clear_pointer(&out, g_free);
  ck_assert_int_eq(kvt_cli(&out, NULL, "exec", "diskvol/c2", "--", "cat", "/db/w.txt", NULL), 0);
  ck_assert_msg(strstr(out, "written"), "c2 reads: %s", out);
  /* c2's disk volume is c2's: not another container's. */
  g_clear_pointer(&err, g_free);
  ck_assert_int_ne(
      kvt_cli(NULL, &err, "container", "add", "-v", v, sb, "c3", rootfs, "--", "true", NULL), 0);
  ck_assert_msg(strstr(err, "disk volume of container c2"), "c2's disk given again: %s", err);
  /* A disk hot-plugged on its own is given to a container as a volume,
   * and stays attached when the container goes, for the next one. */
  g_autofree char *img2 = g_build_filename(workdir, "plugged.img", NULL);
  kvt_disk_image(img2, 32, "plugged", FALSE);
  g_clear_pointer(&err, g_free);
  ck_assert_msg(kvt_cli(NULL, &err, "hotplug", sb, "disk", "add", img2, NULL) == 0, "%s", err);
  g_autofree char *v2 = g_strdup_printf("%s:/p:disk", img2);
  for (int round = 0; round < 2; round++) {
    const char *cid = round ? "c5" : "c4";
    g_clear_pointer(&err, g_free);
    ck_assert_msg(kvt_cli(NULL, &err, "container", "add", "-v", v2, sb, cid, rootfs, "--", "sleep",
                          "100000", NULL) == 0,
                  "the plugged disk as a volume of %s: %s", cid, err);
    ck_assert_int_eq(kvt_cli(NULL, NULL, "container", "start", sb, cid, NULL), 0);
    g_autofree char *ref = g_strdup_printf("diskvol/%s", cid);
    g_clear_pointer(&out, g_free);
    ck_assert_int_eq(
        kvt_cli(&out, NULL, "exec", ref, "--", "sh", "-c",
                round ? "cat /p/hello.txt /p/r0" : "cat /p/hello.txt && echo r0 > /p/r0", NULL),
        0);
    ck_assert_str_eq(out, round ? "plugged\nr0\n" : "plugged\n");
    if (!round) {
      /* Mounted in c4, which runs: not given to another container. */
      g_clear_pointer(&err, g_free);
      ck_assert_int_ne(
          kvt_cli(NULL, &err, "container", "add", "-v", v2, sb, "c6", rootfs, "--", "true", NULL),
          0);
      ck_assert_msg(strstr(err, "mounted in container c4"), "a mounted disk given again: %s", err);
    }
    ck_assert_int_eq(kvt_cli(NULL, NULL, "container", "rm", "-f", sb, cid, NULL), 0);
    g_clear_pointer(&insp, g_free);
    ck_assert_int_eq(kvt_cli(&insp, NULL, "sandbox", "inspect", sb, "--json", NULL), 0);
    ck_assert_msg(strstr(insp, img2), "the plugged disk went with %s: %s", cid, insp);
  }
  ck_assert_int_eq(kvt_cli(NULL, NULL, "sandbox", "rm", "-f", sb, NULL), 0);
  /* Not a disk: clear error, nothing left. */
  g_autofree char *bad = g_strdup_printf("%s/nope.img:/db:disk", workdir);
  g_clear_pointer(&err, g_free);
  rc = kvt_cli(NULL, &err, "run", "--rm", "-v", bad, rootfs, "--", "true", NULL);
  ck_assert_msg(rc != 0 && strstr(err, "nope.img"), "bad disk: %d %s", rc, err);
  kvt_assert_clean();
}
END_TEST

/* The loop device bundle_disks set up (detached in its teardown). */
static char *loopdev;

static void loop_teardown(void) {
  kvt_loop_drop(&loopdev);
}

/* Disks named by a bundle's mounts (issue 14, item 4, for the OCI runtime
 * and the containerd shim, which hand over bundles): a bind mount of a
 * block device, and one of an image file marked x-katavm.disk, are
 * hot-plugged and their file systems mounted at the destinations; the
 * other mounts of the spec stay as they were. With a read-only root, the
 * mount points missing from the rootfs are made in it first. */
START_TEST(bundle_disks) {
  g_autofree char *blk_img = g_build_filename(workdir, "blk.img", NULL);
  loopdev = kvt_disk_image(blk_img, 32, "on-blk", TRUE);
  g_autofree char *img = g_build_filename(workdir, "img.img", NULL);
  kvt_disk_image(img, 32, "on-img", FALSE);

  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = sandbox(rt, "bdisk");
  g_autofree char *bdir = g_build_filename(workdir, "bundle", NULL);
  g_autofree char *b = kvt_make_rootfs(bdir, TRUE);
  g_autofree char *bimg = g_build_filename(b, "img.img", NULL);
  ck_assert_int_eq(rename(img, bimg), 0);
  g_autofree char *mounts =
      g_strdup_printf("[{\"destination\":\"/blk\",\"type\":\"bind\",\"source\":\"%s\","
                      "\"options\":[\"bind\",\"rw\"]},"
                      "{\"destination\":\"/img\",\"source\":\"img.img\","
                      "\"options\":[\"rbind\",\"ro\",\"x-katavm.disk\"]},"
                      "{\"destination\":\"/scratch\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}]",
                      loopdev);
  kvt_edit_spec(b, add_mounts, mounts);
  add_with(sb, "c1", NULL, b, NULL, NULL);
  g_autofree char *out = NULL, *err = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1",
                            ARGV("sh", "-c",
                                 "cat /blk/hello.txt /img/hello.txt && echo written > /blk/w.txt "
                                 "&& grep -E ' /(blk|img|scratch) ' /proc/mounts"),
                            NULL, &out, &err),
                   0);
  ck_assert_msg(g_str_has_prefix(out, "on-blk\non-img\n"), "out: %s err: %s", out, err);
  ck_assert_msg(strstr(out, " /blk ext4 rw") && strstr(out, " /img ext4 ro") &&
                    strstr(out, " /scratch tmpfs "),
                "mounts: %s", out);
  g_clear_pointer(&err, g_free);
  ck_assert_int_ne(kvt_exec(sb, "c1", ARGV("sh", "-c", "echo x > /img/y"), NULL, NULL, &err), 0);
  ck_assert_msg(strstr(err, "Read-only file system"), "ro disk write said: %s", err);
  /* Removing the container detaches both disks; the write is on the
   * device. */
  katavm_error *e = NULL;
  ck_assert_msg(katavm_container_remove(sb, "c1", 1, &e) == 0, "rm: %s", katavm_error_message(e));
  g_autofree char *insp = NULL;
  ck_assert_int_eq(kvt_cli(&insp, NULL, "sandbox", "inspect", "bdisk", "--json", NULL), 0);
  ck_assert_msg(!strstr(insp, loopdev) && !strstr(insp, "img.img"), "disks still attached: %s",
                insp);
  g_autofree char *w = NULL;
  g_autofree char *dbg = g_strdup_printf("debugfs -R 'cat /w.txt' %s", loopdev);
  ck_assert(g_spawn_command_line_sync(dbg, &w, NULL, NULL, NULL));
  ck_assert_msg(strstr(w, "written"), "the device holds: %s", w);

  /* Bad input: the option on a directory, on a missing file, on a mount
   * of another type, a disk at a relative destination. */
  g_autofree char *dir = mkdir_in("notadisk");
  struct {
    const char *mount, *needle;
  } bad[] = {
      {"{\"destination\":\"/d\",\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"bind\","
       "\"x-katavm.disk\"]}",
       "neither a block device nor an image file"},
      {"{\"destination\":\"/d\",\"type\":\"bind\",\"source\":\"%s/none.img\",\"options\":["
       "\"bind\",\"x-katavm.disk\"]}",
       "none.img: No such file"},
      {"{\"destination\":\"/d\",\"type\":\"tmpfs\",\"source\":\"%s\",\"options\":["
       "\"x-katavm.disk\"]}",
       "not type tmpfs"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *one = g_strdup_printf(bad[i].mount, dir);
    g_autofree char *arr = g_strdup_printf("[%s]", one);
    g_autofree char *bd = g_strdup_printf("%s/bad%zu", workdir, i);
    g_autofree char *bb = kvt_make_rootfs(bd, TRUE);
    kvt_edit_spec(bb, add_mounts, arr);
    assert_bad_add(sb, "bdisk", NULL, bb, NULL, KATAVM_E_INVALID, bad[i].needle);
  }
  g_autofree char *relb = g_strdup_printf("%s/badrel", workdir);
  g_autofree char *rb = kvt_make_rootfs(relb, TRUE);
  g_autofree char *rel = g_strdup_printf(
      "[{\"destination\":\"data\",\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"bind\"]}]",
      loopdev);
  kvt_edit_spec(rb, add_mounts, rel);
  assert_bad_add(sb, "bdisk", NULL, rb, NULL, KATAVM_E_INVALID, "absolute path");
  g_clear_pointer(&insp, g_free);
  ck_assert_int_eq(kvt_cli(&insp, NULL, "sandbox", "inspect", "bdisk", "--json", NULL), 0);
  ck_assert_msg(!strstr(insp, loopdev), "a refused disk is attached: %s", insp);
  /* The sandbox works on. */
  add_with(sb, "c2", NULL, b, NULL, NULL);
  g_clear_pointer(&out, g_free);
  ck_assert_int_eq(kvt_exec(sb, "c2", ARGV("cat", "/blk/w.txt"), NULL, &out, NULL), 0);
  ck_assert_str_eq(out, "written\n");

  /* A read-only root (shared read-only: the guest cannot make a mount
   * point in it): the destinations of a volume, a single-file volume, a
   * tmpfs and a disk, and the cwd, none of them in the rootfs, are made in
   * it on the host before it is shared, as runc makes them. */
  g_autofree char *rodir = g_build_filename(workdir, "robundle", NULL);
  g_autofree char *rob = kvt_make_rootfs(rodir, TRUE);
  g_autofree char *roimg = g_build_filename(rob, "ro.img", NULL);
  kvt_disk_image(roimg, 32, "on-ro", FALSE);
  g_autofree char *rovol = mkdir_in("rovol");
  write_in(rovol, "v.txt", "vol\n");
  g_autofree char *roconf = g_build_filename(workdir, "ro.conf", NULL);
  write_file(roconf, "conf\n");
  g_autofree char *romounts =
      g_strdup_printf("[{\"destination\":\"/new/vol\",\"type\":\"bind\",\"source\":\"%s\","
                      "\"options\":[\"rbind\",\"rw\"]},"
                      "{\"destination\":\"/etc/new.conf\",\"type\":\"bind\",\"source\":\"%s\","
                      "\"options\":[\"bind\",\"ro\"]},"
                      "{\"destination\":\"/new/tmp\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"},"
                      "{\"destination\":\"/new/tmp/sub\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"},"
                      "{\"destination\":\"/newdisk\",\"type\":\"bind\",\"source\":\"ro.img\","
                      "\"options\":[\"bind\",\"x-katavm.disk\"]}]",
                      rovol, roconf);
  kvt_edit_spec(rob, ro_root_mounts, romounts);
  add_with(sb, "c3", NULL, rob, NULL, NULL);
  g_clear_pointer(&out, g_free);
  g_clear_pointer(&err, g_free);
  ck_assert_int_eq(kvt_exec(sb, "c3",
                            ARGV("sh", "-c",
                                 "pwd; cat /new/vol/v.txt /etc/new.conf /newdisk/hello.txt && "
                                 "echo w > /new/vol/w && echo t > /new/tmp/sub/t && "
                                 "echo d > /newdisk/d && cat /new/tmp/sub/t /newdisk/d; "
                                 "touch /rootw 2>&1 || true"),
                            NULL, &out, &err),
                   0);
  ck_assert_msg(g_str_has_prefix(out, "/new/cwd\nvol\nconf\non-ro\nt\nd\n") &&
                    strstr(out, "Read-only file system"),
                "read-only root: out %s err %s", out, err);
  g_autofree char *rootfs_ro = g_build_filename(rob, "rootfs", NULL);
  g_autofree char *w_host = read_in(rovol, "w");
  ck_assert_str_eq(w_host, "w\n");
  const char *made_dirs[] = {"new/vol", "new/tmp", "new/cwd", "newdisk"};
  for (gsize i = 0; i < G_N_ELEMENTS(made_dirs); i++) {
    g_autofree char *d = g_build_filename(rootfs_ro, made_dirs[i], NULL);
    ck_assert_msg(g_file_test(d, G_FILE_TEST_IS_DIR), "%s was not made", d);
  }
  g_autofree char *conf_mp = g_build_filename(rootfs_ro, "etc/new.conf", NULL);
  ck_assert(g_file_test(conf_mp, G_FILE_TEST_IS_REGULAR));
  /* In the tmpfs, not the rootfs; and nothing else was written there. */
  g_autofree char *sub = g_build_filename(rootfs_ro, "new/tmp/sub", NULL);
  ck_assert(!g_file_test(sub, G_FILE_TEST_EXISTS));
  g_autofree char *rootw = g_build_filename(rootfs_ro, "rootw", NULL);
  ck_assert(!g_file_test(rootw, G_FILE_TEST_EXISTS));
  ck_assert_msg(katavm_container_remove(sb, "c3", 1, &e) == 0, "rm c3: %s",
                katavm_error_message(e));
  katavm_sandbox_close(sb);
  destroy(rt, "bdisk");
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("volumes");
  TCase *t = tcase_create("volumes");
  tcase_add_checked_fixture(t, work_setup, work_teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, volumes_end_to_end);
  tcase_add_test(t, symlink_attacks);
  tcase_add_test(t, cli_run_volume);
  tcase_add_test(t, crash_cleanup);
  tcase_add_test(t, disk_volume);
  suite_add_tcase(s, t);
  TCase *bt = tcase_create("bundle_disks");
  tcase_add_checked_fixture(bt, work_setup, work_teardown);
  tcase_add_checked_fixture(bt, NULL, loop_teardown);
  tcase_set_timeout(bt, 900);
  tcase_add_test(bt, bundle_disks);
  suite_add_tcase(s, bt);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
