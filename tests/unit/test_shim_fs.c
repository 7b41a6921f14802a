/* tests/unit/test_shim_fs.c: lib/shim/fs.c without a VM: the host-side
 * operations inside a share that "the guest" (this test, playing it)
 * has filled with symlinks and files where directories should be. Each
 * refusal names the share path, the symlink's target is untouched and
 * nothing is mounted there; what fs.c mounts is nosuid,nodev (ro when
 * asked), a single file onto a file; unmount and remove take off only what
 * is at the share path, never what a link points to. Needs root (mounts,
 * in a private mount namespace of its own). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fields.h"
#include "msg.h"
#include "shim/fs.h"

static char *tmp, *share, *target, *src, *src_file;
static int sfd = -1;

static char *at(const char *base, const char *rel) {
  return g_build_filename(base, rel, NULL);
}

static void put(const char *path, const char *text) {
  ck_assert(g_file_set_contents(path, text, -1, NULL));
}

/* The options field of the mountinfo line whose mount point is mp, or NULL. */
static char *mount_opts(const char *mp) {
  g_autofree char *m = NULL;
  ck_assert(g_file_get_contents("/proc/self/mountinfo", &m, NULL, NULL));
  g_auto(GStrv) lines = g_strsplit(m, "\n", -1);
  char *found = NULL;
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit(*l, " ", 7);
    if (g_strv_length(f) >= 6 && !strcmp(f[4], mp)) {
      g_free(found);
      found = g_strdup(f[5]); /* the last one: the top of a stack */
    }
  }
  return found;
}

static int mounts_below(const char *dir) {
  g_autofree char *m = NULL;
  ck_assert(g_file_get_contents("/proc/self/mountinfo", &m, NULL, NULL));
  g_auto(GStrv) lines = g_strsplit(m, "\n", -1);
  int n = 0;
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit(*l, " ", 7);
    if (g_strv_length(f) >= 6 && g_str_has_prefix(f[4], dir))
      n++;
  }
  return n;
}

static void target_intact(void) {
  g_autoptr(GDir) d = g_dir_open(target, 0, NULL);
  ck_assert(d);
  const char *n = g_dir_read_name(d);
  ck_assert_str_eq(n, "precious");
  ck_assert_ptr_null(g_dir_read_name(d));
  ck_assert_int_eq(mounts_below(target), 0);
}

static void setup(void) {
  tmp = g_dir_make_tmp("kvt-fs-XXXXXX", NULL);
  ck_assert(tmp);
  share = at(tmp, "share");
  target = at(tmp, "target");
  src = at(tmp, "src");
  src_file = at(tmp, "file.conf");
  ck_assert_int_eq(g_mkdir(share, 0755), 0);
  ck_assert_int_eq(g_mkdir(target, 0755), 0);
  ck_assert_int_eq(g_mkdir(src, 0755), 0);
  g_autofree char *p = at(target, "precious");
  put(p, "host data\n");
  g_autofree char *s1 = at(src, "hello");
  put(s1, "hi\n");
  put(src_file, "one file\n");
  g_autofree char *c = at(share, "containers");
  ck_assert_int_eq(g_mkdir(c, 0755), 0);
  g_autoptr(GError) e = NULL;
  sfd = shim_fs_open_share(share, &e);
  ck_assert_msg(sfd >= 0, "%s", e ? e->message : "?");
}

static void teardown(void) {
  close(sfd);
  /* Whatever a failed test left mounted goes with the namespace; the
   * files are ours. */
  umount2(share, MNT_DETACH);
  g_autofree char *cmd = g_strdup_printf("rm -rf --one-file-system %s", tmp);
  ck_assert_int_eq(system(cmd), 0);
  g_clear_pointer(&tmp, g_free);
  g_clear_pointer(&share, g_free);
  g_clear_pointer(&target, g_free);
  g_clear_pointer(&src, g_free);
  g_clear_pointer(&src_file, g_free);
}

static void guest_symlink(const char *rel, const char *to) {
  g_autofree char *p = at(share, rel);
  ck_assert_msg(symlink(to, p) == 0, "symlink %s: %s", p, g_strerror(errno));
}

static void guest_mkdir(const char *rel) {
  g_autofree char *p = at(share, rel);
  ck_assert_int_eq(g_mkdir_with_parents(p, 0755), 0);
}

static void refused(const char *rel, const char *source, const char *needle) {
  g_autoptr(GError) e = NULL;
  ck_assert(!shim_fs_bind(sfd, rel, source, FALSE, NULL, "rootfs", &e));
  ck_assert_int_eq(e->code, KV_E_IO);
  ck_assert_msg(strstr(e->message, needle), "'%s' does not mention '%s'", e->message, needle);
  target_intact();
  ck_assert_int_eq(mounts_below(share), 0);
}

START_TEST(symlinks_refused) {
  /* At each component the host walks. */
  guest_symlink("containers/a", target);
  refused("containers/a/rootfs", src, "symbolic link");
  guest_mkdir("containers/b");
  guest_symlink("containers/b/rootfs", target);
  refused("containers/b/rootfs", src, "symbolic link");
  guest_mkdir("containers/c");
  guest_symlink("containers/c/volumes", target);
  refused("containers/c/volumes/0", src, "symbolic link");
  guest_mkdir("containers/d/volumes");
  guest_symlink("containers/d/volumes/0", target);
  refused("containers/d/volumes/0", src, "symbolic link");
  /* A file volume's mount point: a symlink, or a directory, in its place. */
  g_autofree char *tfile = at(target, "precious");
  guest_symlink("containers/d/volumes/1", tfile);
  refused("containers/d/volumes/1", src_file, "other than a regular file");
  guest_mkdir("containers/d/volumes/2");
  refused("containers/d/volumes/2", src_file, "other than a regular file");
  /* A file where a directory must be. */
  g_autofree char *f = at(share, "containers/e");
  put(f, "x");
  refused("containers/e/rootfs", src, "not one");
  /* ".." never leaves the share. */
  refused("containers/../../target/x", src, "out of the share");
  /* The share's own containers directory. */
  g_autofree char *c = at(share, "containers");
  g_autofree char *c2 = at(share, "c.real");
  ck_assert_int_eq(rename(c, c2), 0);
  guest_symlink("containers", target);
  refused("containers/f/rootfs", src, "symbolic link");
  /* Removing what the guest placed removes the links, not their targets. */
  g_autoptr(GError) e = NULL;
  ck_assert(shim_fs_remove(sfd, "containers", &e));
  ck_assert(shim_fs_unmount(sfd, "c.real/a/rootfs", &e));
  ck_assert(shim_fs_remove(sfd, "c.real/a", &e));
  ck_assert(shim_fs_remove(sfd, "c.real/d/volumes/1", &e));
  target_intact();
  struct stat st;
  ck_assert_int_eq(lstat(c, &st), -1);
}
END_TEST

START_TEST(bind_and_unmount) {
  g_autoptr(GError) e = NULL;
  ck_assert_msg(shim_fs_bind(sfd, "containers/x/rootfs", src, FALSE, NULL, "rootfs", &e), "%s",
                e ? e->message : "");
  ck_assert_msg(shim_fs_bind(sfd, "containers/x/volumes/0", src, TRUE, NULL, "volume 0", &e), "%s",
                e ? e->message : "");
  ck_assert_msg(shim_fs_bind(sfd, "containers/x/volumes/1", src_file, FALSE, NULL, "volume 1", &e),
                "%s", e ? e->message : "");
  g_autofree char *mp0 = at(share, "containers/x/rootfs");
  g_autofree char *mp1 = at(share, "containers/x/volumes/0");
  g_autofree char *mp2 = at(share, "containers/x/volumes/1");
  const char *mps[] = {mp0, mp1, mp2};
  for (int i = 0; i < 3; i++) {
    g_autofree char *o = mount_opts(mps[i]);
    ck_assert_msg(o && strstr(o, "nosuid") && strstr(o, "nodev"), "%s: %s", mps[i], o);
    ck_assert_int_eq(i == 1, g_str_has_prefix(o, "ro"));
  }
  g_autofree char *hello = at(mp0, "hello");
  g_autofree char *text = NULL;
  ck_assert(g_file_get_contents(hello, &text, NULL, NULL));
  ck_assert_str_eq(text, "hi\n");
  g_autofree char *ftext = NULL;
  ck_assert(g_file_get_contents(mp2, &ftext, NULL, NULL));
  ck_assert_str_eq(ftext, "one file\n");
  /* A mount point is never removed. */
  ck_assert(!shim_fs_remove(sfd, "containers/x/rootfs", &e));
  g_clear_error(&e);
  /* The guest moves a container's directory away and puts a symlink to
   * the target in its place: the unmount finds no mount of ours there and
   * touches nothing. */
  g_autofree char *x = at(share, "containers/x");
  g_autofree char *y = at(share, "containers/y");
  ck_assert_int_eq(rename(x, y), 0);
  guest_symlink("containers/x", target);
  ck_assert(shim_fs_unmount(sfd, "containers/x/rootfs", &e));
  target_intact();
  ck_assert_int_eq(mounts_below(share), 3);
  /* Where it moved to, the mounts are found and taken off. */
  const char *rels[] = {"containers/y/rootfs", "containers/y/volumes/0", "containers/y/volumes/1"};
  for (int i = 0; i < 3; i++) {
    ck_assert_msg(shim_fs_unmount(sfd, rels[i], &e), "%s", e ? e->message : "");
    ck_assert_msg(shim_fs_remove(sfd, rels[i], &e), "%s", e ? e->message : "");
  }
  ck_assert_int_eq(mounts_below(share), 0);
  ck_assert(shim_fs_remove(sfd, "containers/y/volumes", &e));
  ck_assert(shim_fs_remove(sfd, "containers/y", &e));
  ck_assert(shim_fs_remove(sfd, "containers/x", &e));
  target_intact();
  /* The sources are the host's: untouched. */
  ck_assert(g_file_test(hello, G_FILE_TEST_EXISTS) == FALSE);
  g_autofree char *src_hello = at(src, "hello");
  ck_assert(g_file_test(src_hello, G_FILE_TEST_EXISTS));
  /* Stacked mounts at one point all come off. */
  ck_assert(shim_fs_bind(sfd, "containers/z/rootfs", src, FALSE, NULL, "rootfs", &e));
  ck_assert(shim_fs_bind(sfd, "containers/z/rootfs", src, FALSE, NULL, "rootfs", &e));
  ck_assert_int_eq(mounts_below(share), 2);
  ck_assert(shim_fs_unmount(sfd, "containers/z/rootfs", &e));
  ck_assert_int_eq(mounts_below(share), 0);
  /* A source that is not there or not a directory or file. */
  g_autofree char *nope = at(tmp, "nope");
  ck_assert(!shim_fs_bind(sfd, "containers/z/volumes/0", nope, FALSE, NULL, "volume 0", &e));
  ck_assert(strstr(e->message, "nope") && strstr(e->message, "volume 0"));
  g_clear_error(&e);
  g_autofree char *fifo = at(tmp, "fifo");
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  ck_assert(!shim_fs_bind(sfd, "containers/z/volumes/0", fifo, FALSE, NULL, "volume 0", &e));
  ck_assert(strstr(e->message, "neither a directory nor a regular file"));
  g_autofree char *v0 = at(share, "containers/z/volumes/0");
  ck_assert(!g_file_test(v0, G_FILE_TEST_EXISTS));
}
END_TEST

static KvMountPoint *point(const char *path, gboolean file) {
  KvMountPoint *m = g_new0(KvMountPoint, 1);
  m->path = g_strdup(path);
  m->file = file;
  return m;
}

static void point_free(KvMountPoint *m) {
  g_free(m->path);
  g_free(m);
}

/* A read-only root's mount points are made in the source, through its
 * clone, before it is shared: missing directories and files are made,
 * what exists stays, a symlink resolves inside the source (an absolute
 * one as in the container) and never reaches out of it; a path with "..",
 * a file where a directory must be, or a symlink that leads nowhere inside
 * the source is refused, naming the mount point. */
START_TEST(mount_points) {
  g_autofree char *run = at(src, "run");
  ck_assert_int_eq(g_mkdir(run, 0755), 0);
  g_autofree char *var = at(src, "var");
  ck_assert_int_eq(g_mkdir(var, 0755), 0);
  g_autofree char *vrun = at(src, "var/run");
  ck_assert_int_eq(symlink("/run", vrun), 0);
  g_autofree char *out = at(src, "out");
  ck_assert_int_eq(symlink(target, out), 0);
  g_autoptr(GPtrArray) pts = g_ptr_array_new_with_free_func((GDestroyNotify)point_free);
  g_ptr_array_add(pts, point("/data/db", FALSE));
  g_ptr_array_add(pts, point("/etc/app.conf", TRUE));
  g_ptr_array_add(pts, point("/var/run/secrets", FALSE));
  g_ptr_array_add(pts, point("/hello", FALSE)); /* a file already: left */
  g_autoptr(GError) e = NULL;
  mode_t old_mask = umask(077); /* the modes made do not follow it */
  ck_assert_msg(shim_fs_bind(sfd, "containers/p/rootfs", src, TRUE, pts, "rootfs", &e), "%s",
                e ? e->message : "");
  umask(old_mask);
  g_autofree char *db = at(src, "data/db");
  g_autofree char *conf = at(src, "etc/app.conf");
  g_autofree char *sec = at(src, "run/secrets");
  g_autofree char *hello = at(src, "hello");
  ck_assert(g_file_test(db, G_FILE_TEST_IS_DIR));
  ck_assert(g_file_test(conf, G_FILE_TEST_IS_REGULAR));
  ck_assert(g_file_test(sec, G_FILE_TEST_IS_DIR));
  ck_assert(g_file_test(hello, G_FILE_TEST_IS_REGULAR));
  struct stat st;
  ck_assert_int_eq(stat(db, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0755);
  g_autofree char *data = at(src, "data");
  ck_assert_int_eq(stat(data, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0755);
  ck_assert_int_eq(stat(conf, &st), 0);
  ck_assert_uint_eq(st.st_mode & 07777, 0644);
  target_intact();
  /* Seen through the share, read-only. */
  g_autofree char *mp = at(share, "containers/p/rootfs");
  g_autofree char *o = mount_opts(mp);
  ck_assert_msg(o && g_str_has_prefix(o, "ro"), "%s", o);
  g_autofree char *shared_db = at(mp, "data/db");
  ck_assert(g_file_test(shared_db, G_FILE_TEST_IS_DIR));
  ck_assert(shim_fs_unmount(sfd, "containers/p/rootfs", &e));
  g_autoptr(GPtrArray) bad = g_ptr_array_new_with_free_func((GDestroyNotify)point_free);
  g_ptr_array_add(bad, point("/data/../../x", FALSE));
  ck_assert(!shim_fs_bind(sfd, "containers/q/rootfs", src, TRUE, bad, "rootfs", &e));
  ck_assert_msg(strstr(e->message, "mount point /data/../../x"), "%s", e->message);
  g_clear_error(&e);
  g_ptr_array_set_size(bad, 0);
  g_ptr_array_add(bad, point("/hello/sub", FALSE));
  ck_assert(!shim_fs_bind(sfd, "containers/q/rootfs", src, TRUE, bad, "rootfs", &e));
  ck_assert_msg(strstr(e->message, "mount point /hello/sub") &&
                    strstr(e->message, "must be a directory"),
                "%s", e->message);
  g_clear_error(&e);
  /* /out -> TARGET (absolute) resolves to SRC/TARGET, which is not there:
   * refused, and the host's TARGET gets nothing. */
  g_ptr_array_set_size(bad, 0);
  g_ptr_array_add(bad, point("/out/evil", FALSE));
  ck_assert(!shim_fs_bind(sfd, "containers/q/rootfs", src, TRUE, bad, "rootfs", &e));
  ck_assert_msg(strstr(e->message, "mount point /out/evil"), "%s", e->message);
  target_intact();
  ck_assert_int_eq(mounts_below(share), 0);
}
END_TEST

START_TEST(listing) {
  guest_mkdir("containers/b1");
  guest_mkdir("containers/a1");
  guest_symlink("containers/l", target);
  g_autoptr(GPtrArray) n = shim_fs_list(sfd, "containers");
  ck_assert_int_eq(n->len, 3);
  ck_assert_str_eq(n->pdata[0], "a1");
  ck_assert_str_eq(n->pdata[2], "l");
  /* A listing through a symlink is empty, not the target's. */
  g_autoptr(GPtrArray) m = shim_fs_list(sfd, "containers/l");
  ck_assert_int_eq(m->len, 0);
}
END_TEST

int main(void) {
  /* Our mounts stay in a namespace of our own. */
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    fprintf(stderr, "test_shim_fs needs root: %s\n", g_strerror(errno));
    return 1;
  }
  Suite *s = suite_create("shim_fs");
  TCase *t = tcase_create("fs");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, symlinks_refused);
  tcase_add_test(t, bind_and_unmount);
  tcase_add_test(t, mount_points);
  tcase_add_test(t, listing);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_VERBOSE);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
