/* tests/integration/test_sharedfs.c: the sandbox's shared filesystem on a
 * real VM: virtio-fs by default (inspect says so, one virtiofsd per
 * sandbox while it lives and none after destroy or after a shim crash and
 * `rm -f`), host-side changes to a container's rootfs seen in the
 * container, a killed virtiofsd stops the sandbox with an error that names
 * it (no hang), 9p on request and as the fallback without virtiofsd, and
 * bad values of KATAVM_SHARED_FS and the setter. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static char *workdir;

static void work_setup(void) {
  kvt_setup();
  workdir = kvt_workdir_new(NULL);
}

static void work_teardown(void) {
  kvt_teardown();
  kvt_workdir_drop(&workdir);
}

/* A member of `katavm sandbox inspect`'s document (caller frees), NULL
 * when absent. */
static JsonNode *inspect_member(katavm_sandbox *sb, const char *name) {
  char *js = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_inspect(sb, &js, &e);
  ck_assert_msg(rc == 0, "inspect: %s", katavm_error_message(e));
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, js, -1, NULL));
  katavm_free(js);
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  JsonNode *n = json_object_get_member(o, name);
  return n ? json_node_copy(n) : NULL;
}

static char *inspect_str(katavm_sandbox *sb, const char *name) {
  g_autoptr(JsonNode) n = inspect_member(sb, name);
  return n ? g_strdup(json_node_get_string(n)) : NULL;
}

static gint64 inspect_int(katavm_sandbox *sb, const char *name) {
  g_autoptr(JsonNode) n = inspect_member(sb, name);
  return n ? json_node_get_int(n) : 0;
}

/* virtiofsd processes of this test root (their command line names the
 * socket below it). */
static int count_virtiofsd(void) {
  g_autofree char *needle = g_strdup_printf("--socket-path=%s/", kvt_root());
  return kvt_count_procs(needle);
}

static char *cat_in(katavm_sandbox *sb, const char *cid, const char *path);

/* Host-side changes reach the guest within virtio-fs's name and attribute
 * timeout (1 s by default; docs/storage-fs.md, "Cache mode"): poll, with a
 * generous bound on a hang. */
static void await_in(katavm_sandbox *sb, const char *cid, const char *path, const char *want) {
  g_autofree char *got = NULL;
  for (int i = 0; i < 120; i++) {
    g_free(got);
    got = cat_in(sb, cid, path);
    if (!strcmp(got, want))
      return;
    g_usleep(250000);
  }
  ck_assert_msg(FALSE, "%s in the container is '%s', on the host '%s'", path, got, want);
}

static void add_container(katavm_sandbox *sb, const char *id, const char *rootfs) {
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.rootfs = rootfs;
  const char *argv[] = {"sleep", "100000", NULL};
  cc.argv = argv;
  katavm_error *e = NULL;
  int rc = katavm_container_add(sb, id, &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add %s: %s", id, katavm_error_message(e));
  rc = katavm_container_start(sb, id, &e);
  ck_assert_msg(rc == 0, "start %s: %s", id, katavm_error_message(e));
}

static char *cat_in(katavm_sandbox *sb, const char *cid, const char *path) {
  const char *argv[] = {"cat", path, NULL};
  char *out = NULL, *err = NULL;
  int rc = kvt_exec(sb, cid, argv, NULL, &out, &err);
  ck_assert_msg(rc == 0, "cat %s: rc %d: %s", path, rc, err);
  g_free(err);
  return out;
}

START_TEST(virtiofs_default_and_host_changes) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, "vfs1");
  g_autofree char *fs = inspect_str(sb, "shared_fs");
  ck_assert_str_eq(fs, "virtio-fs");
  gint64 pid = inspect_int(sb, "virtiofsd_pid");
  ck_assert_msg(pid > 0, "no virtiofsd_pid in inspect");
  ck_assert_int_eq(kill((pid_t)pid, 0), 0);
  /* One daemon for this sandbox: its parent and the child it runs in its
   * own namespaces (sandbox=namespace). */
  ck_assert_int_eq(count_virtiofsd(), 2);

  /* A second sandbox has a daemon of its own. */
  katavm_sandbox *sb2 = kvt_create(rt, "vfs2");
  gint64 pid2 = inspect_int(sb2, "virtiofsd_pid");
  ck_assert_msg(pid2 > 0 && pid2 != pid, "virtiofsd pids %" G_GINT64_FORMAT " %" G_GINT64_FORMAT,
                pid, pid2);
  ck_assert_int_eq(count_virtiofsd(), 4);
  katavm_sandbox_close(sb2);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "vfs2", NULL), 0);
  ck_assert_int_eq(count_virtiofsd(), 2);

  /* A container sees changes made on the host to its rootfs files: a
   * changed file, a new file, a removed file. */
  g_autofree char *rdir = g_build_filename(workdir, "r1", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rdir, FALSE);
  g_autofree char *hf = g_build_filename(rootfs, "hostfile", NULL);
  ck_assert(g_file_set_contents(hf, "one\n", -1, NULL));
  add_container(sb, "c1", rootfs);
  g_autofree char *o1 = cat_in(sb, "c1", "/hostfile");
  ck_assert_str_eq(o1, "one\n");
  /* Replaced (a new inode renamed over it, as editors and
   * g_file_set_contents do). */
  ck_assert(g_file_set_contents(hf, "two, longer\n", -1, NULL));
  await_in(sb, "c1", "/hostfile", "two, longer\n");
  /* Rewritten in place (same inode, same size). */
  FILE *f = fopen(hf, "r+");
  ck_assert_ptr_nonnull(f);
  fputs("TWO", f);
  fclose(f);
  await_in(sb, "c1", "/hostfile", "TWO, longer\n");
  /* A new file, then gone again. */
  g_autofree char *nf = g_build_filename(rootfs, "newfile", NULL);
  ck_assert(g_file_set_contents(nf, "new\n", -1, NULL));
  await_in(sb, "c1", "/newfile", "new\n");
  ck_assert_int_eq(unlink(nf), 0);
  const char *argv[] = {"sh", "-c", "test -e /newfile && echo there || echo gone", NULL};
  g_autofree char *gone = NULL;
  for (int i = 0; i < 120; i++) {
    g_free(gone);
    gone = NULL;
    ck_assert_int_eq(kvt_exec(sb, "c1", argv, NULL, &gone, NULL), 0);
    if (!strcmp(gone, "gone\n"))
      break;
    g_usleep(250000);
  }
  ck_assert_str_eq(gone, "gone\n");
  /* And the container's writes land on the host. */
  const char *wargv[] = {"sh", "-c", "echo from-guest > /guestfile", NULL};
  ck_assert_int_eq(kvt_exec(sb, "c1", wargv, NULL, NULL, NULL), 0);
  g_autofree char *gf = g_build_filename(rootfs, "guestfile", NULL);
  g_autofree char *gc = NULL;
  ck_assert(g_file_get_contents(gf, &gc, NULL, NULL));
  ck_assert_str_eq(gc, "from-guest\n");

  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "vfs1", NULL), 0);
  ck_assert_int_eq(count_virtiofsd(), 0);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

START_TEST(virtiofsd_killed_is_an_error) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, "vfsk");
  gint64 pid = inspect_int(sb, "virtiofsd_pid");
  ck_assert(pid > 0);
  ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
  /* The shim notices, stops the VM and says why; no request hangs. */
  g_autofree char *state = NULL;
  for (int i = 0; i < 600; i++) {
    g_free(state);
    state = inspect_str(sb, "state");
    if (!strcmp(state, "stopped"))
      break;
    g_usleep(100000);
  }
  ck_assert_str_eq(state, "stopped");
  g_autofree char *why = inspect_str(sb, "error");
  ck_assert_msg(why && strstr(why, "virtiofsd") && strstr(why, "signal 9"), "error: %s", why);
  ck_assert_int_eq(inspect_int(sb, "virtiofsd_pid"), 0);
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  kvt_assert_error(rc, e, KATAVM_E_STATE, "virtiofsd");
  ck_assert_int_eq(count_virtiofsd(), 0);
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "vfsk", NULL), 0);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

START_TEST(shim_killed_then_rm_force) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, "vfss");
  gint64 shim = inspect_int(sb, "shim_pid");
  gint64 vfsd = inspect_int(sb, "virtiofsd_pid");
  ck_assert(shim > 0 && vfsd > 0);
  katavm_sandbox_close(sb);
  ck_assert_int_eq(kill((pid_t)shim, SIGKILL), 0);
  /* The daemon outlives the shim, like the VM... */
  g_usleep(300000);
  ck_assert_int_eq(kill((pid_t)vfsd, 0), 0);
  /* ...and goes with `rm -f`, with everything else. */
  char *err = NULL;
  int rc = kvt_cli(NULL, &err, "sandbox", "rm", "-f", "vfss", NULL);
  ck_assert_msg(rc == 0, "rm -f: %s", err);
  g_free(err);
  ck_assert_int_eq(count_virtiofsd(), 0);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

START_TEST(recovery_adopts_virtiofsd) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, "vfsr");
  gint64 shim = inspect_int(sb, "shim_pid");
  gint64 vfsd = inspect_int(sb, "virtiofsd_pid");
  katavm_sandbox_close(sb);
  ck_assert_int_eq(kill((pid_t)shim, SIGKILL), 0);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, "vfsr", &sb, &e);
  ck_assert_msg(rc == 0, "open: %s", katavm_error_message(e));
  /* The new shim watches the same daemon: killing it is seen. */
  ck_assert_int_eq(inspect_int(sb, "virtiofsd_pid"), vfsd);
  ck_assert_int_ne(inspect_int(sb, "shim_pid"), shim);
  ck_assert_int_eq(kill((pid_t)vfsd, SIGKILL), 0);
  g_autofree char *why = NULL;
  for (int i = 0; i < 600 && !why; i++) {
    why = inspect_str(sb, "error");
    if (!why)
      g_usleep(100000);
  }
  ck_assert_msg(why && strstr(why, "virtiofsd"), "error: %s", why);
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "vfsr", NULL), 0);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

START_TEST(nine_p_on_request_and_as_fallback) {
  katavm_runtime *rt = kvt_runtime();
  katavm_error *e = NULL;
  ck_assert_int_eq(katavm_runtime_set_shared_fs(rt, "9p", &e), 0);
  katavm_sandbox *sb = kvt_create(rt, "p9a");
  g_autofree char *fs = inspect_str(sb, "shared_fs");
  ck_assert_str_eq(fs, "9p");
  ck_assert_int_eq(count_virtiofsd(), 0);
  g_autofree char *rdir = g_build_filename(workdir, "r9", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rdir, FALSE);
  add_container(sb, "c9", rootfs);
  g_autofree char *hf = g_build_filename(rootfs, "hostfile", NULL);
  ck_assert(g_file_set_contents(hf, "nine\n", -1, NULL));
  await_in(sb, "c9", "/hostfile", "nine\n");
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "p9a", NULL), 0);
  katavm_runtime_free(rt);

  /* auto without virtiofsd: 9p, and `katavm check` says why. */
  g_setenv("KATAVM_VIRTIOFSD", "/nonexistent/virtiofsd", TRUE);
  rt = kvt_runtime();
  char *js = NULL;
  ck_assert_int_eq(katavm_check_host(rt, &js, NULL), 0);
  ck_assert_msg(strstr(js, "\"shared_fs\":\"9p\"") && strstr(js, "/nonexistent/virtiofsd"),
                "check: %s", js);
  katavm_free(js);
  sb = kvt_create(rt, "p9b");
  g_autofree char *fs2 = inspect_str(sb, "shared_fs");
  ck_assert_str_eq(fs2, "9p");
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "p9b", NULL), 0);

  /* virtio-fs asked for without virtiofsd: a clear error, nothing made. */
  ck_assert_int_eq(katavm_runtime_set_shared_fs(rt, "virtio-fs", &e), 0);
  katavm_sandbox_config sc;
  katavm_sandbox_config_init(&sc);
  sc.id = "p9c";
  int rc = katavm_sandbox_create(rt, &sc, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_NOT_FOUND, "virtiofsd");
  g_unsetenv("KATAVM_VIRTIOFSD");
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

START_TEST(bad_values_rejected) {
  katavm_runtime *rt = kvt_runtime();
  katavm_error *e = NULL;
  const char *bad[] = {"virtiofs", "9P", "", "nfs", NULL};
  for (const char **b = bad; *b; b++) {
    int rc = katavm_runtime_set_shared_fs(rt, *b, &e);
    kvt_assert_error(rc, e, KATAVM_E_INVALID, "is not auto, virtio-fs or 9p");
    e = NULL;
  }
  int rc = katavm_runtime_set_shared_fs(rt, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "(null)");
  e = NULL;
  ck_assert_int_eq(katavm_runtime_set_shared_fs(rt, "auto", &e), 0);
  katavm_runtime_free(rt);

  g_setenv("KATAVM_SHARED_FS", "virtiofs", TRUE);
  katavm_runtime *r2 = NULL;
  rc = katavm_runtime_new(&r2, &e);
  ck_assert_msg(strstr(katavm_error_message(e), "'virtiofs'"), "%s", katavm_error_message(e));
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "KATAVM_SHARED_FS");
  e = NULL;
  ck_assert_ptr_null(r2);
  char *err = NULL;
  rc = kvt_cli(NULL, &err, "check", NULL);
  ck_assert_msg(rc != 0 && strstr(err, "KATAVM_SHARED_FS"), "check: rc %d: %s", rc, err);
  g_free(err);
  g_setenv("KATAVM_SHARED_FS", "9p", TRUE);
  ck_assert_int_eq(katavm_runtime_new(&r2, &e), 0);
  katavm_runtime_free(r2);
  g_unsetenv("KATAVM_SHARED_FS");
  kvt_assert_clean();
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("sharedfs");
  TCase *t = tcase_create("sharedfs");
  tcase_add_checked_fixture(t, work_setup, work_teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, bad_values_rejected);
  tcase_add_test(t, virtiofs_default_and_host_changes);
  tcase_add_test(t, virtiofsd_killed_is_an_error);
  tcase_add_test(t, shim_killed_then_rm_force);
  tcase_add_test(t, recovery_adopts_virtiofsd);
  tcase_add_test(t, nine_p_on_request_and_as_fallback);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
