/* tests/integration/test_recovery.c: a sandbox whose shim is killed is
 * recovered by exactly one new shim, however many clients find it dead at
 * once (issue 15: parallel recoveries fought over the embedded libvirt root
 * and deleted the state of a running VM), and a recovery that fails leaves
 * the VM and the state for destroy to remove. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

#define SB_ID "recov1"
#define CID "c1"
#define ROUNDS 20

static char *workdir;

static void work_setup(void) {
  kvt_setup();
  workdir = kvt_workdir_new("recovery");
}

static void work_teardown(void) {
  kvt_teardown();
  kvt_workdir_drop(&workdir);
}

static void idle_forever(JsonObject *spec, gpointer unused) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sleep");
  json_array_add_string_element(a, "100000");
  json_object_set_array_member(proc, "args", a);
}

static JsonObject *parse_obj(const char *js) {
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, js, -1, NULL));
  return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

typedef struct {
  gint64 shim;
  gint64 qemu;
} Pids;

static Pids inspect_pids(katavm_sandbox *sb) {
  char *js = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_inspect(sb, &js, &e);
  ck_assert_msg(rc == 0, "inspect: %s", katavm_error_message(e));
  g_autoptr(JsonObject) o = parse_obj(js);
  katavm_free(js);
  ck_assert_str_eq(json_object_get_string_member(o, "state"), "running");
  Pids p = {json_object_get_int_member(o, "shim_pid"), json_object_get_int_member(o, "qemu_pid")};
  ck_assert_int_gt(p.shim, 1);
  ck_assert_int_gt(p.qemu, 1);
  return p;
}

static Pids open_inspect(katavm_runtime *rt) {
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, SB_ID, &sb, &e);
  ck_assert_msg(rc == 0, "open: %s", katavm_error_message(e));
  Pids p = inspect_pids(sb);
  katavm_sandbox_close(sb);
  return p;
}

/* Wait until a killed process has exited: gone, or a zombie whose threads
 * have all finished (the leader turns zombie first; the files, the embedded
 * driver's pid file among them, go with the last thread). */
static void wait_dead(pid_t pid) {
  g_autofree char *dir = g_strdup_printf("/proc/%d/task", (int)pid);
  for (int i = 0; i < 500; i++) {
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    if (!d)
      return;
    gboolean live = FALSE;
    const char *tid;
    while ((tid = g_dir_read_name(d))) {
      g_autofree char *path = g_strdup_printf("%s/%s/stat", dir, tid);
      g_autofree char *st = NULL;
      const char *rp = g_file_get_contents(path, &st, NULL, NULL) ? strrchr(st, ')') : NULL;
      if (rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X')
        live = TRUE;
    }
    if (!live)
      return;
    g_usleep(10000);
  }
  ck_abort_msg("process %d did not die", (int)pid);
}

static int count_shims(void) {
  g_autofree char *needle = g_strdup_printf("--root %s --id %s ", kvt_root(), SB_ID);
  return kvt_count_procs(needle);
}

static int count_qemus(void) {
  return kvt_count_procs("-name guest=katavm-" SB_ID ",");
}

/* ---- parallel clients (threads: no ck_assert off the main thread) ---- */

enum { CLIENT_CHECK, CLIENT_EXEC };

typedef struct {
  katavm_runtime *rt;
  int kind;
  gint *go; /* spin until set: all clients start at once */
  gboolean ok;
  int exit_code;
  char *what;
} Client;

static void client_fail(Client *c, const char *step, katavm_error *e) {
  c->what = g_strdup_printf("%s: %s (%s)", step, katavm_error_message(e),
                            katavm_code_name(katavm_error_code(e)));
  katavm_error_free(e);
}

/* Read the process's stdout and stderr to EOF, then its exit code. */
static gboolean client_exec_true(Client *c, katavm_sandbox *sb) {
  static const char *const argv[] = {"true", NULL};
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = argv;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  if (katavm_exec(sb, CID, &cfg, &p, &e) < 0) {
    client_fail(c, "exec", e);
    return FALSE;
  }
  katavm_process_close_stdin(p, NULL);
  int fds[2] = {katavm_process_stdout_fd(p), katavm_process_stderr_fd(p)};
  GString *err = g_string_new(NULL);
  char buf[4096];
  gboolean ok = TRUE;
  while (ok && (fds[0] >= 0 || fds[1] >= 0)) {
    for (int k = 0; k < 2; k++) {
      if (fds[k] < 0)
        continue;
      struct pollfd pf = {.fd = fds[k], .events = POLLIN};
      if (poll(&pf, 1, 10) < 0 && errno != EINTR) {
        ok = FALSE;
        break;
      }
      if (!pf.revents)
        continue;
      ssize_t r = read(fds[k], buf, sizeof buf);
      if (r > 0 && k == 1)
        g_string_append_len(err, buf, r);
      else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        fds[k] = -1;
    }
  }
  int code = -1;
  if (katavm_process_wait(p, 120000, &code, &e) < 0) {
    client_fail(c, "wait", e);
    ok = FALSE;
  } else if (code != 0) {
    c->what = g_strdup_printf("exec true exited %d: %s", code, err->str);
    ok = FALSE;
  }
  c->exit_code = code;
  g_string_free(err, TRUE);
  katavm_process_free(p);
  return ok;
}

static gpointer client_main(gpointer data) {
  Client *c = data;
  while (!g_atomic_int_get(c->go))
    g_usleep(100);
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_open(c->rt, SB_ID, &sb, &e) < 0) {
    client_fail(c, "open", e);
    return NULL;
  }
  if (c->kind == CLIENT_CHECK) {
    katavm_guest_info gi;
    katavm_guest_info_init(&gi);
    char *js = NULL;
    if (katavm_sandbox_agent_check(sb, &gi, &e) < 0)
      client_fail(c, "agent check", e);
    else if (katavm_sandbox_inspect(sb, &js, &e) < 0)
      client_fail(c, "inspect", e);
    else
      c->ok = TRUE;
    katavm_free(js);
  } else {
    c->ok = client_exec_true(c, sb);
  }
  katavm_sandbox_close(sb);
  return NULL;
}

/* A CLI client in a process of its own. */
static GSubprocess *cli_inspect_start(void) {
  const char *cli = g_getenv("KATAVM_CLI");
  const char *argv[] = {cli, "--root", kvt_root(), "sandbox", "inspect", SB_ID, "--json", NULL};
  GError *e = NULL;
  GSubprocess *sp = g_subprocess_newv(
      argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &e);
  ck_assert_msg(sp, "katavm: %s", e ? e->message : "?");
  return sp;
}

static void cli_inspect_finish(GSubprocess *sp, int round) {
  g_autofree char *err = NULL;
  g_autoptr(GError) e = NULL;
  ck_assert(g_subprocess_communicate_utf8(sp, NULL, NULL, NULL, &err, &e));
  ck_assert_msg(g_subprocess_get_if_exited(sp) && g_subprocess_get_exit_status(sp) == 0,
                "round %d: katavm sandbox inspect failed: %s", round, err);
  g_object_unref(sp);
}

/* The sandbox SB_ID with the container CID running; its shim and QEMU. */
static Pids pod_up(katavm_runtime *rt) {
  katavm_sandbox *sb = kvt_create(rt, SB_ID);
  g_autofree char *dir = g_build_filename(workdir, "bundle", NULL);
  g_autofree char *b = kvt_make_rootfs(dir, TRUE);
  kvt_edit_spec(b, idle_forever, NULL);
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b;
  katavm_error *e = NULL;
  int rc = katavm_container_add(sb, CID, &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add: %s", katavm_error_message(e));
  rc = katavm_container_start(sb, CID, &e);
  ck_assert_msg(rc == 0, "start: %s", katavm_error_message(e));
  Pids first = inspect_pids(sb);
  katavm_sandbox_close(sb);
  return first;
}

START_TEST(parallel_recovery) {
  katavm_runtime *rt = kvt_runtime();
  Pids first = pod_up(rt);
  katavm_error *e = NULL;
  int rc;

  gint64 t0 = g_get_monotonic_time();
  for (int round = 0; round < ROUNDS; round++) {
    Pids before = open_inspect(rt);
    ck_assert_int_eq(before.qemu, first.qemu);
    /* The clients start at once, while the shim may still be exiting (as
     * a `kill -9` followed by commands does). */
    ck_assert_int_eq(kill((pid_t)before.shim, SIGKILL), 0);

    /* 3 to 6 clients in threads (every other one execs through its own
     * handle), and in odd rounds two CLI processes besides. */
    int n = 3 + round % 4;
    gint go = 0;
    Client clients[6] = {0};
    GThread *threads[6];
    for (int i = 0; i < n; i++) {
      clients[i] = (Client){.rt = rt, .kind = i % 2 ? CLIENT_EXEC : CLIENT_CHECK, .go = &go};
      threads[i] = g_thread_new("client", client_main, &clients[i]);
    }
    GSubprocess *cli[2] = {NULL, NULL};
    g_atomic_int_set(&go, 1);
    if (round % 2)
      for (int i = 0; i < 2; i++)
        cli[i] = cli_inspect_start();
    for (int i = 0; i < n; i++)
      g_thread_join(threads[i]);
    for (int i = 0; i < 2; i++)
      if (cli[i])
        cli_inspect_finish(cli[i], round);
    for (int i = 0; i < n; i++) {
      ck_assert_msg(clients[i].ok, "round %d, client %d: %s", round, i, clients[i].what);
      if (clients[i].kind == CLIENT_EXEC)
        ck_assert_int_eq(clients[i].exit_code, 0);
      g_free(clients[i].what);
    }

    /* One new shim, on the same VM. */
    ck_assert_int_eq(count_shims(), 1);
    ck_assert_int_eq(count_qemus(), 1);
    Pids after = open_inspect(rt);
    ck_assert_int_ne(after.shim, before.shim);
    wait_dead((pid_t)before.shim);
    ck_assert_int_eq(after.qemu, first.qemu);
    ck_assert_int_eq(kill((pid_t)after.shim, 0), 0);
    /* Bound on a hang, not a timing assertion. */
    ck_assert_msg(g_get_monotonic_time() - t0 < 600 * G_USEC_PER_SEC, "rounds take too long");
  }
  fprintf(stderr, "%d recovery rounds took %.1f s\n", ROUNDS,
          (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);

  rc = katavm_sandbox_destroy(rt, SB_ID, &e);
  ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
  ck_assert_int_ne(kill((pid_t)first.qemu, 0), 0);
  ck_assert_int_eq(count_qemus(), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static gpointer destroy_main(gpointer data) {
  Client *c = data;
  while (!g_atomic_int_get(c->go))
    g_usleep(100);
  katavm_error *e = NULL;
  if (katavm_sandbox_destroy(c->rt, SB_ID, &e) < 0)
    client_fail(c, "destroy", e);
  else
    c->ok = TRUE;
  return NULL;
}

/* Openers that find the shim dead race a destroy: whichever gets the lock
 * first, no recovery may start a shim for a sandbox once it is removed,
 * and nothing is left. */
START_TEST(recovery_races_destroy) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, SB_ID);
  Pids first = inspect_pids(sb);
  katavm_sandbox_close(sb);
  ck_assert_int_eq(kill((pid_t)first.shim, SIGKILL), 0);
  gint go = 0;
  Client clients[5] = {0};
  GThread *threads[5];
  for (int i = 0; i < 5; i++) {
    clients[i] = (Client){.rt = rt, .kind = CLIENT_CHECK, .go = &go};
    threads[i] = g_thread_new("client", i == 2 ? destroy_main : client_main, &clients[i]);
  }
  g_atomic_int_set(&go, 1);
  for (int i = 0; i < 5; i++)
    g_thread_join(threads[i]);
  ck_assert_msg(clients[2].ok, "%s", clients[2].what);
  for (int i = 0; i < 5; i++)
    g_free(clients[i].what);
  ck_assert_int_ne(kill((pid_t)first.qemu, 0), 0);
  ck_assert_int_eq(count_qemus(), 0);
  ck_assert_int_eq(count_shims(), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

/* Hold the embedded driver's pid file (libvirt locks it with fcntl) so that
 * a recovering shim cannot open the sandbox's libvirt root. */
static int hold_driver_pid(void) {
  g_autofree char *rdir = g_build_filename(kvt_root(), "r", NULL);
  g_autoptr(GDir) d = g_dir_open(rdir, 0, NULL);
  const char *name = d ? g_dir_read_name(d) : NULL;
  ck_assert_msg(name, "no run dir under %s", rdir);
  g_autofree char *path = g_build_filename(rdir, name, "v", "run", "qemu", "driver.pid", NULL);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  ck_assert_msg(fd >= 0, "open %s: %s", path, g_strerror(errno));
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(fd, F_SETLK, &fl) < 0) {
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    fcntl(fd, F_GETLK, &q);
    g_autofree char *cp = g_strdup_printf("/proc/%d/cmdline", (int)q.l_pid);
    g_autofree char *cmd = NULL;
    gsize n = 0;
    g_file_get_contents(cp, &cmd, &n, NULL);
    for (gsize i = 0; i + 1 < n; i++)
      if (!cmd[i])
        cmd[i] = ' ';
    ck_abort_msg("lock %s: %s (held by %d: %s)", path, g_strerror(errno), (int)q.l_pid,
                 cmd ? cmd : "?");
  }
  return fd;
}

START_TEST(failed_recovery_keeps_state) {
  katavm_runtime *rt = kvt_runtime();
  Pids first = pod_up(rt);
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc;
  ck_assert_int_eq(kill((pid_t)first.shim, SIGKILL), 0);
  wait_dead((pid_t)first.shim);

  /* Recovery cannot get libvirt: every client fails clearly, and nothing
   * of the sandbox goes. */
  int lock = hold_driver_pid();
  for (int i = 0; i < 2; i++) {
    sb = NULL;
    rc = katavm_sandbox_open(rt, SB_ID, &sb, &e);
    kvt_assert_error(rc, e, KATAVM_E_STATE, "recovery failed");
    ck_assert_ptr_null(sb);
  }
  close(lock);
  g_autofree char *state = g_strdup_printf("%s/sandboxes/%s/config.json", kvt_root(), SB_ID);
  ck_assert(g_file_test(state, G_FILE_TEST_IS_REGULAR));
  char **ids = NULL;
  ck_assert_int_eq(katavm_sandbox_list(rt, &ids, NULL), 0);
  ck_assert(ids[0] && !strcmp(ids[0], SB_ID));
  katavm_strv_free(ids);
  ck_assert_int_eq(kill((pid_t)first.qemu, 0), 0);
  ck_assert_int_eq(count_shims(), 0);

  /* With libvirt free again, the next open recovers the same VM, and the
   * container's root is still mounted: exec finds its programs. */
  rc = katavm_sandbox_open(rt, SB_ID, &sb, &e);
  ck_assert_msg(rc == 0, "open: %s", katavm_error_message(e));
  Pids after = inspect_pids(sb);
  ck_assert_int_eq(after.qemu, first.qemu);
  static const char *const argv[] = {"true", NULL};
  ck_assert_int_eq(kvt_exec(sb, CID, argv, NULL, NULL, NULL), 0);
  katavm_sandbox_close(sb);

  /* A failed recovery again, then destroy removes everything, QEMU too. */
  ck_assert_int_eq(kill((pid_t)after.shim, SIGKILL), 0);
  wait_dead((pid_t)after.shim);
  lock = hold_driver_pid();
  rc = katavm_sandbox_open(rt, SB_ID, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_STATE, "recovery failed");
  close(lock);
  rc = katavm_sandbox_destroy(rt, SB_ID, &e);
  ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
  ck_assert_int_ne(kill((pid_t)first.qemu, 0), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("recovery");
  TCase *t = tcase_create("recovery");
  tcase_add_checked_fixture(t, work_setup, work_teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, parallel_recovery);
  tcase_add_test(t, failed_recovery_keeps_state);
  tcase_add_test(t, recovery_races_destroy);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
