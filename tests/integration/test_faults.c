/* tests/integration/test_faults.c: faults injected by hand, as an unlucky
 * operator or a hostile local user would (issue 15, items 3, 4, 6, 7):
 *
 * - a stopped (SIGSTOP) QEMU or shim turns into a clear KATAVM_E_TIMEOUT
 *   within seconds, for a streaming exec (its fds read EOF), a plain call,
 *   a create and a new client, without slowing the other sandboxes;
 * - every death of a VM (QEMU killed, guest poweroff, guest panic) reaches
 *   the exec client and `inspect` with its reason;
 * - an exec'd process never outlives its client: signals to the CLI reach
 *   it, a client killed or a shim killed takes it along;
 * - a second user is told "permission denied", a state root that another
 *   user controls is refused, a system file is not attached as a disk;
 * - QEMU or the shim killed (or the shim stopped) in the middle of a
 *   container add or a disk hotplug: a clear error within seconds, the
 *   sandbox usable or clearly dead, and rm takes everything away.
 *
 * Times are upper bounds, generous for a loaded machine, never benchmarks. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "helpers.h"

#define CID "c1"
/* A hung peer must turn into an error well within this. */
#define HANG_BOUND_S 30

static char *workdir;

static void work_setup(void) {
  kvt_setup();
  workdir = kvt_workdir_new("faults");
}

static void work_teardown(void) {
  kvt_teardown();
  kvt_workdir_drop(&workdir);
}

static double now_s(void) {
  return (double)g_get_monotonic_time() / G_USEC_PER_SEC;
}

static void idle_forever(JsonObject *spec, gpointer unused) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sleep");
  json_array_add_string_element(a, "100000");
  json_object_set_array_member(proc, "args", a);
}

/* A container that may power off or crash its guest: the VM's pid
 * namespace, CAP_SYS_BOOT, /proc unmasked. */
static void privileged(JsonObject *spec, gpointer unused) {
  idle_forever(spec, NULL);
  JsonObject *lin = json_object_get_object_member(spec, "linux");
  JsonArray *ns = json_object_get_array_member(lin, "namespaces");
  JsonArray *keep = json_array_new();
  for (guint i = 0; i < json_array_get_length(ns); i++) {
    JsonObject *n = json_array_get_object_element(ns, i);
    if (g_strcmp0(json_object_get_string_member(n, "type"), "pid"))
      json_array_add_object_element(keep, json_object_ref(n));
  }
  json_object_set_array_member(lin, "namespaces", keep);
  json_object_remove_member(lin, "maskedPaths");
  json_object_remove_member(lin, "readonlyPaths");
  json_object_remove_member(lin, "seccomp");
  kvt_spec_add_cap(spec, "CAP_SYS_BOOT");
}

/* A sandbox `id` with container CID running `sleep` (privileged or not). */
static katavm_sandbox *pod_up(katavm_runtime *rt, const char *id, gboolean priv) {
  katavm_sandbox *sb = kvt_create(rt, id);
  g_autofree char *dir = g_build_filename(workdir, priv ? "priv" : "bundle", NULL);
  g_autofree char *b = NULL;
  if (g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    b = g_strdup(dir);
  } else {
    b = kvt_make_rootfs(dir, TRUE);
    kvt_edit_spec(b, priv ? privileged : idle_forever, NULL);
  }
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b;
  katavm_error *e = NULL;
  int rc = katavm_container_add(sb, CID, &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add: %s", katavm_error_message(e));
  rc = katavm_container_start(sb, CID, &e);
  ck_assert_msg(rc == 0, "start: %s", katavm_error_message(e));
  return sb;
}

/* sh -c script [name]: name is the script's $0, which ps shows. */
static katavm_process *exec_named(katavm_sandbox *sb, const char *script, const char *name) {
  const char *argv[] = {"sh", "-c", script, name, NULL};
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = argv;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  int rc = katavm_exec(sb, CID, &cfg, &p, &e);
  ck_assert_msg(rc == 0, "exec: %s", katavm_error_message(e));
  katavm_process_close_stdin(p, NULL);
  return p;
}

static katavm_process *exec_start(katavm_sandbox *sb, const char *script) {
  return exec_named(sb, script, NULL);
}

/* Read fd until `want` appears (TRUE) or EOF / bound_s passes (FALSE). */
static gboolean read_until(int fd, const char *want, double bound_s, gboolean *eof) {
  GString *got = g_string_new(NULL);
  double end = now_s() + bound_s;
  gboolean found = FALSE;
  *eof = FALSE;
  while (!found && now_s() < end) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 200) <= 0)
      continue;
    char buf[4096];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r == 0) {
      *eof = TRUE;
      break;
    }
    if (r > 0)
      g_string_append_len(got, buf, r);
    found = want && strstr(got->str, want) != NULL;
  }
  g_string_free(got, TRUE);
  return found;
}

/* Output up to EOF within bound_s: TRUE when EOF came. */
static gboolean reaches_eof(int fd, double bound_s) {
  gboolean eof = FALSE;
  read_until(fd, NULL, bound_s, &eof);
  return eof;
}

static pid_t find_pid(const char *needle) {
  g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name(d))) {
    if (!g_ascii_isdigit(n[0]))
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%s/cmdline", n);
    g_autofree char *cmd = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &cmd, &len, NULL) || len == 0)
      continue;
    for (gsize i = 0; i + 1 < len; i++)
      if (!cmd[i])
        cmd[i] = ' ';
    if (strstr(cmd, needle))
      return (pid_t)atoi(n);
  }
  return 0;
}

static pid_t qemu_pid(const char *id) {
  g_autofree char *needle = g_strdup_printf("-name guest=katavm-%s,", id);
  return find_pid(needle);
}

static pid_t shim_pid(const char *id) {
  g_autofree char *needle = g_strdup_printf("--root %s --id %s ", kvt_root(), id);
  return find_pid(needle);
}

static char *inspect_field(katavm_sandbox *sb, const char *field) {
  char *js = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_inspect(sb, &js, &e);
  ck_assert_msg(rc == 0, "inspect: %s", katavm_error_message(e));
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, js, -1, NULL));
  katavm_free(js);
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  return g_strdup(json_object_has_member(o, field) ? json_object_get_string_member(o, field) : "");
}

static void destroy(katavm_runtime *rt, const char *id) {
  katavm_error *e = NULL;
  int rc = katavm_sandbox_destroy(rt, id, &e);
  ck_assert_msg(rc == 0, "destroy %s: %s", id, katavm_error_message(e));
}

/* ---- item 3: hung peers ---- */

START_TEST(stopped_qemu_times_out) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = pod_up(rt, "hq1", FALSE);
  katavm_process *p = exec_start(sb, "while :; do echo tick; sleep 1; done");
  gboolean eof;
  ck_assert(read_until(katavm_process_stdout_fd(p), "tick", 60, &eof));
  pid_t q = qemu_pid("hq1");
  ck_assert_int_gt(q, 1);
  ck_assert_int_eq(kill(q, SIGSTOP), 0);
  double t0 = now_s();

  /* A plain call and the streaming exec both fail as timeouts. */
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  kvt_assert_error(rc, e, KATAVM_E_TIMEOUT, "QEMU");
  int code = 0;
  rc = katavm_process_wait(p, HANG_BOUND_S * 1000, &code, &e);
  kvt_assert_error(rc, e, KATAVM_E_TIMEOUT, "stopped");
  ck_assert(reaches_eof(katavm_process_stdout_fd(p), HANG_BOUND_S));
  double took = now_s() - t0;
  ck_assert_msg(took < HANG_BOUND_S, "a stopped QEMU took %.1f s to become an error", took);
  fprintf(stderr, "stopped QEMU: clear errors after %.1f s\n", took);
  katavm_process_free(p);

  /* Declared failed: the VM is gone, the reason is kept and shown. */
  g_autofree char *reason = inspect_field(sb, "stop_reason");
  ck_assert_msg(strstr(reason, "declared failed") && strstr(reason, "stopped"), "reason: %s",
                reason);
  ck_assert_int_eq(qemu_pid("hq1"), 0);
  const char *argv[] = {"true", NULL};
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = argv;
  rc = katavm_exec(sb, CID, &cfg, &p, &e);
  kvt_assert_error(rc, e, KATAVM_E_STATE, "sandbox hq1 is not running (stopped: declared failed");
  katavm_sandbox_close(sb);
  destroy(rt, "hq1");
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

typedef struct {
  katavm_runtime *rt;
  int rc;
  int code;
  char *message;
  double took;
} CreateJob;

static gpointer create_thread(gpointer user) {
  CreateJob *j = user;
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = "hq2";
  cfg.vcpus = 1;
  cfg.memory_mib = 256;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  double t0 = now_s();
  j->rc = katavm_sandbox_create(j->rt, &cfg, &sb, &e);
  j->took = now_s() - t0;
  if (j->rc < 0) {
    j->code = katavm_error_code(e);
    j->message = g_strdup(katavm_error_message(e));
    katavm_error_free(e);
  } else {
    katavm_sandbox_close(sb);
  }
  return NULL;
}

START_TEST(create_with_stopped_qemu_fails) {
  CreateJob j = {.rt = kvt_runtime()};
  GThread *t = g_thread_new("create", create_thread, &j);
  pid_t q = 0;
  for (int i = 0; i < 6000 && !(q = qemu_pid("hq2")); i++)
    g_usleep(10000);
  ck_assert_int_gt(q, 1);
  kill(q, SIGSTOP);
  g_thread_join(t);
  ck_assert_msg(j.rc < 0, "create succeeded with a stopped QEMU");
  ck_assert_msg(j.code == KATAVM_E_TIMEOUT, "code %d: %s", j.code, j.message);
  ck_assert_msg(strstr(j.message, "stopped"), "message: %s", j.message);
  /* Nothing is left, so the error must not send anyone to its files. */
  ck_assert_msg(!strstr(j.message, "console.log"), "message: %s", j.message);
  ck_assert_msg(j.took < HANG_BOUND_S + 20, "create took %.1f s to fail", j.took);
  fprintf(stderr, "create with a stopped QEMU failed after %.1f s: %s\n", j.took, j.message);
  g_free(j.message);
  katavm_runtime_free(j.rt);
  kvt_assert_clean();
}
END_TEST

START_TEST(stopped_shim_times_out_alone) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *a = pod_up(rt, "hs1", FALSE);
  katavm_sandbox *b = kvt_create(rt, "hs2");
  katavm_process *p = exec_start(a, "while :; do echo tick; sleep 1; done");
  gboolean eof;
  ck_assert(read_until(katavm_process_stdout_fd(p), "tick", 60, &eof));
  pid_t s = shim_pid("hs1");
  ck_assert_int_gt(s, 1);
  ck_assert_int_eq(kill(s, SIGSTOP), 0);
  double t0 = now_s();
  int code = 0;
  katavm_error *e = NULL;
  int rc = katavm_process_wait(p, HANG_BOUND_S * 1000, &code, &e);
  kvt_assert_error(rc, e, KATAVM_E_TIMEOUT, "is stopped");
  ck_assert(reaches_eof(katavm_process_stdout_fd(p), HANG_BOUND_S));
  double took = now_s() - t0;
  ck_assert_msg(took < HANG_BOUND_S, "a stopped shim took %.1f s to become an error", took);
  fprintf(stderr, "stopped shim: streaming exec failed after %.1f s\n", took);
  katavm_process_free(p);

  /* New clients learn it at once; the other sandbox is not slowed. */
  t0 = now_s();
  katavm_sandbox *a2 = NULL;
  rc = katavm_sandbox_open(rt, "hs1", &a2, &e);
  kvt_assert_error(rc, e, KATAVM_E_TIMEOUT, "the shim");
  g_autofree char *out = NULL;
  rc = kvt_cli(&out, NULL, "sandbox", "ls", NULL);
  ck_assert_int_eq(rc, 0);
  ck_assert_msg(strstr(out, "hs2") && strstr(out, "running") && strstr(out, "unknown"), "ls: %s",
                out);
  katavm_sandbox_state_t st;
  rc = katavm_sandbox_state(b, &st, &e);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(st, KATAVM_SANDBOX_RUNNING);
  took = now_s() - t0;
  ck_assert_msg(took < 10, "open, ls and state took %.1f s with one shim stopped", took);

  /* A shim that goes on after SIGCONT serves again. */
  kill(s, SIGCONT);
  static const char *const argv[] = {"true", NULL};
  ck_assert_int_eq(kvt_exec(a, CID, argv, NULL, NULL, NULL), 0);
  katavm_sandbox_close(a);
  katavm_sandbox_close(b);
  destroy(rt, "hs1");
  destroy(rt, "hs2");
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

/* ---- faults at the worst moments: during container add and hotplug ----
 *
 * QEMU is stopped first, so that the call sticks where it waits for the
 * guest (the shim has mounted the container's rootfs into the share and
 * asked the agent; or it has given QEMU's uid the disk image and asked
 * libvirt to attach it); then QEMU or the shim is killed (-9), or (for the
 * shim) stopped too. The call must end with a clear error within seconds,
 * the sandbox must answer every later command (or refuse it clearly), and
 * sandbox rm must take away everything, the half-made mounts included. */

typedef struct {
  katavm_sandbox *sb;
  gboolean hotplug;
  const char *path;
  int rc;
  int code;
  char *message;
  double took;
} CallJob;

static gpointer call_thread(gpointer user) {
  CallJob *j = user;
  katavm_error *e = NULL;
  double t0 = now_s();
  if (j->hotplug) {
    katavm_hotplug_request req;
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
    req.path = j->path;
    j->rc = katavm_hotplug(j->sb, &req, NULL, &e);
  } else {
    katavm_container_config cc;
    katavm_container_config_init(&cc);
    cc.rootfs = j->path;
    cc.argv = (const char *const[]){"sleep", "100000", NULL};
    j->rc = katavm_container_add(j->sb, "c2", &cc, NULL, &e);
  }
  j->took = now_s() - t0;
  j->code = j->rc < 0 ? katavm_error_code(e) : 0;
  j->message = g_strdup(j->rc < 0 ? katavm_error_message(e) : "");
  katavm_error_free(e);
  return NULL;
}

/* Whether the shim has bind-mounted c2's rootfs into the share. */
static gboolean c2_mounted(void) {
  g_autofree char *mi = NULL;
  ck_assert(g_file_get_contents("/proc/self/mountinfo", &mi, NULL, NULL));
  return strstr(mi, "/containers/c2/rootfs ") != NULL;
}

static gboolean image_granted(const char *path) {
  return getxattr(path, "system.posix_acl_access", NULL, 0) > 0;
}

static void fault_during(const char *id, gboolean hotplug, const char *victim, int sig) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = pod_up(rt, id, FALSE);
  g_autofree char *rdir = g_build_filename(workdir, "plainroot", NULL);
  g_autofree char *rootfs = g_file_test(rdir, G_FILE_TEST_IS_DIR) ? g_build_filename(rdir, NULL)
                                                                  : kvt_make_rootfs(rdir, FALSE);
  g_autofree char *img = g_build_filename(workdir, "fault.img", NULL);
  g_autofree char *mk =
      g_strdup_printf("rm -f %s && truncate -s 16M %s && chmod 600 %s", img, img, img);
  ck_assert_int_eq(system(mk), 0);
  pid_t q = qemu_pid(id), sh = shim_pid(id);
  ck_assert_int_gt(q, 1);
  ck_assert_int_gt(sh, 1);

  ck_assert_int_eq(kill(q, SIGSTOP), 0);
  CallJob j = {.sb = sb, .hotplug = hotplug, .path = hotplug ? img : rootfs};
  GThread *t = g_thread_new("call", call_thread, &j);
  /* The moment: the shim is half-way (mounted, or granted) and waits. */
  gboolean reached = FALSE;
  for (int i = 0; i < 3000 && !reached; i++) {
    reached = hotplug ? image_granted(img) : c2_mounted();
    if (!reached)
      g_usleep(10000);
  }
  ck_assert_msg(reached, "%s: the call never reached the guest", id);
  g_usleep(300000);
  double t0 = now_s();
  pid_t v = !strcmp(victim, "qemu") ? q : sh;
  ck_assert_int_eq(kill(v, sig), 0);
  g_thread_join(t);
  double after = now_s() - t0;
  fprintf(stderr, "%s: %s during %s (%s): %.1f s after the fault, code %d: %s\n", id,
          sig == SIGKILL ? "kill -9" : "SIGSTOP", hotplug ? "hotplug" : "container add", victim,
          after, j.code, j.message);
  ck_assert_msg(j.rc < 0, "%s: the call succeeded", id);
  /* Each says what happened to whom: QEMU's death (as the VM's stop, or
   * as libvirt's lost monitor while it attached the disk), the shim gone,
   * or the shim stopped. */
  if (v == q)
    ck_assert_msg((j.code == KATAVM_E_STATE && strstr(j.message, "QEMU (pid")) ||
                      (j.code == KATAVM_E_VMM && strstr(j.message, "monitor")),
                  "%s: code %d: %s", id, j.code, j.message);
  else if (sig == SIGKILL)
    ck_assert_msg(j.code == KATAVM_E_AGENT && strstr(j.message, "the shim of sandbox") &&
                      strstr(j.message, "went away"),
                  "%s: code %d: %s", id, j.code, j.message);
  else
    ck_assert_msg(j.code == KATAVM_E_TIMEOUT && strstr(j.message, "is stopped"), "%s: code %d: %s",
                  id, j.code, j.message);
  ck_assert_msg(after < HANG_BOUND_S + 10, "%s: the call ended %.1f s after the fault", id, after);
  g_free(j.message);

  /* Every later command works or fails clearly, within seconds. */
  if (v == sh && sig == SIGSTOP)
    kill(sh, SIGCONT);
  if (v == sh)
    kill(q, SIGCONT);
  t0 = now_s();
  katavm_sandbox *again = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, id, &again, &e);
  if (rc == 0) {
    char **ids = NULL;
    rc = katavm_container_list(again, &ids, &e);
    /* A QEMU that died inside a libvirt job (the attach) reaches the shim
     * once libvirt gives the job up: until then the agent is "not
     * connected"; then the sandbox is stopped, with QEMU's death as the
     * reason. */
    while (rc < 0 && v == q && katavm_error_code(e) == KATAVM_E_AGENT &&
           strstr(katavm_error_message(e), "agent is not connected") &&
           now_s() - t0 < HANG_BOUND_S) {
      katavm_error_free(e);
      e = NULL;
      g_usleep(500000);
      rc = katavm_container_list(again, &ids, &e);
    }
    if (rc == 0) {
      ck_assert_msg(v == sh, "%s: the containers of a dead VM listed", id);
      katavm_strv_free(ids);
      static const char *const argv[] = {"true", NULL};
      /* The shim and the VM go on: c1 still serves. */
      ck_assert_int_eq(kvt_exec(again, CID, argv, NULL, NULL, NULL), 0);
    } else {
      ck_assert_msg(katavm_error_code(e) == KATAVM_E_STATE &&
                        strstr(katavm_error_message(e), "QEMU"),
                    "%s: list: %s", id, katavm_error_message(e));
      katavm_error_free(e);
    }
    katavm_sandbox_close(again);
  } else {
    ck_assert_msg(strlen(katavm_error_message(e)) > 10, "%s: open: %s", id,
                  katavm_error_message(e));
    katavm_error_free(e);
  }
  double took = now_s() - t0;
  ck_assert_msg(took < HANG_BOUND_S, "%s: the next commands took %.1f s", id, took);
  kill(q, SIGCONT);
  katavm_sandbox_close(sb);
  destroy(rt, id);
  ck_assert_msg(!c2_mounted(), "%s: c2's rootfs still mounted after rm", id);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}

START_TEST(qemu_killed_during_container_add) {
  fault_during("fm1", FALSE, "qemu", SIGKILL);
}
END_TEST

START_TEST(shim_killed_during_container_add) {
  fault_during("fm2", FALSE, "shim", SIGKILL);
}
END_TEST

START_TEST(shim_stopped_during_container_add) {
  fault_during("fm3", FALSE, "shim", SIGSTOP);
}
END_TEST

START_TEST(qemu_killed_during_hotplug) {
  fault_during("fm4", TRUE, "qemu", SIGKILL);
}
END_TEST

START_TEST(shim_killed_during_hotplug) {
  fault_during("fm5", TRUE, "shim", SIGKILL);
}
END_TEST

/* ---- item 7: deaths with reasons ---- */

/* Kill the VM as `how` says while an exec streams; the exec's error and
 * inspect must say why it stopped. */
static void death_case(const char *id, const char *how, const char *want) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = pod_up(rt, id, TRUE);
  katavm_process *p = exec_start(sb, "while :; do echo tick; sleep 1; done");
  gboolean eof;
  ck_assert(read_until(katavm_process_stdout_fd(p), "tick", 60, &eof));
  if (!strcmp(how, "kill")) {
    ck_assert_int_eq(kill(qemu_pid(id), SIGKILL), 0);
  } else {
    /* Waited for: a handle freed early would kill it (item 4). */
    katavm_process *k = exec_start(sb, how);
    katavm_process_wait(k, HANG_BOUND_S * 1000, NULL, NULL);
    katavm_process_free(k);
  }
  ck_assert(reaches_eof(katavm_process_stdout_fd(p), HANG_BOUND_S));
  int code = 0;
  katavm_error *e = NULL;
  int rc = katavm_process_wait(p, HANG_BOUND_S * 1000, &code, &e);
  g_autofree char *stopped = g_strdup_printf("sandbox %s stopped: %s", id, want);
  kvt_assert_error(rc, e, KATAVM_E_STATE, stopped);
  katavm_process_free(p);
  g_autofree char *reason = inspect_field(sb, "stop_reason");
  ck_assert_msg(strstr(reason, want), "stop_reason '%s' lacks '%s'", reason, want);
  fprintf(stderr, "%s: %s\n", how, reason);
  katavm_sandbox_close(sb);
  destroy(rt, id);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}

START_TEST(qemu_killed_has_reason) {
  death_case("dq1", "kill", "QEMU");
}
END_TEST

START_TEST(guest_poweroff_has_reason) {
  death_case("dq2", "poweroff -f", "the guest powered off");
}
END_TEST

START_TEST(guest_panic_has_reason) {
  death_case("dq3", "echo c > /proc/sysrq-trigger", "guest kernel panic: Kernel panic");
}
END_TEST

/* lib/shim/console.h */
#define CONSOLE_LOG_MAX (1024 * 1024)

static off_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The container's main process (the privileged one: execs get the
 * default capabilities, without CAP_MKNOD) floods the serial console
 * (ttyS0 = 4:64) through a node it makes in its /dev. */
static void flooder(JsonObject *spec, gpointer unused) {
  privileged(spec, NULL);
  kvt_spec_add_cap(spec, "CAP_MKNOD");
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sh");
  json_array_add_string_element(a, "-c");
  json_array_add_string_element(a, "mknod /dev/ttyS0 c 4 64 && while :; do "
                                   "echo 'flood flood flood flood flood flood flood flood'; "
                                   "done > /dev/ttyS0; sleep 100000");
  json_object_set_array_member(proc, "args", a);
}

/* A guest that floods its serial console fills at most console.log and
 * console.log.1, each under the cap, and the sandbox still answers. */
START_TEST(console_flood_is_capped) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, "cq1");
  g_autofree char *dir = g_build_filename(workdir, "flood", NULL);
  g_autofree char *b = kvt_make_rootfs(dir, TRUE);
  kvt_edit_spec(b, flooder, NULL);
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b;
  katavm_error *e = NULL;
  int rc = katavm_container_add(sb, CID, &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add: %s", katavm_error_message(e));
  rc = katavm_container_start(sb, CID, &e);
  ck_assert_msg(rc == 0, "start: %s", katavm_error_message(e));
  g_autofree char *log = g_build_filename(kvt_root(), "sandboxes", "cq1", "console.log", NULL);
  g_autofree char *old = g_strdup_printf("%s.1", log);
  /* Until it rotated at least twice (console.log.1 replaced): the guest
   * then wrote well over the cap; never a file over it. */
  ino_t first = 0;
  gboolean twice = FALSE;
  for (int i = 0; i < 2400 && !twice; i++) { /* a hang bound, not a timing */
    g_usleep(100000);
    ck_assert_int_le(file_size(log), CONSOLE_LOG_MAX);
    ck_assert_int_le(file_size(old), CONSOLE_LOG_MAX);
    struct stat st;
    if (stat(old, &st) == 0) {
      if (!first)
        first = st.st_ino;
      else if (st.st_ino != first)
        twice = TRUE;
    }
  }
  ck_assert_msg(twice, "the console did not rotate twice in 240 s (log %lld bytes)",
                (long long)file_size(log));
  g_autofree char *out = NULL;
  ck_assert_int_eq(
      kvt_exec(sb, CID, (const char *const[]){"echo", "alive", NULL}, NULL, &out, NULL), 0);
  ck_assert_str_eq(out, "alive\n");
  ck_assert_int_le(file_size(log), CONSOLE_LOG_MAX);
  ck_assert_int_le(file_size(old), CONSOLE_LOG_MAX);
  katavm_sandbox_close(sb);
  destroy(rt, "cq1");
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

/* ---- item 4: execs die with their client ---- */

#define BUSY "while :; do :; done"

static int busy_loops(katavm_sandbox *sb) {
  static const char *const argv[] = {"ps", NULL};
  g_autofree char *out = NULL;
  ck_assert_int_eq(kvt_exec(sb, CID, argv, NULL, &out, NULL), 0);
  int n = 0;
  for (const char *s = out; (s = strstr(s, "busyloop")); s++)
    n++;
  return n;
}

static int wait_no_busy_loops(katavm_sandbox *sb) {
  int n = 0;
  for (int i = 0; i < 100 && (n = busy_loops(sb)) > 0; i++)
    g_usleep(100000);
  return n;
}

static GPid cli_exec_busy(const char *id) {
  g_autofree char *target = g_strdup_printf("%s/%s", id, CID);
  const char *argv[] = {g_getenv("KATAVM_CLI"), "exec",     target, "--", "sh", "-c",
                        "while :; do :; done",  "busyloop", NULL};
  GPid pid = 0;
  g_autoptr(GError) ge = NULL;
  ck_assert_msg(
      g_spawn_async(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, &ge),
      "spawn: %s", ge ? ge->message : "?");
  return pid;
}

START_TEST(exec_dies_with_its_client) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = pod_up(rt, "ex1", FALSE);
  const int sigs[] = {SIGTERM, SIGINT, SIGKILL};
  for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++) {
    GPid cli = cli_exec_busy("ex1");
    int n = 0;
    for (int k = 0; k < 200 && (n = busy_loops(sb)) == 0; k++)
      g_usleep(100000);
    ck_assert_int_eq(n, 1);
    kill(cli, sigs[i]);
    int status = 0;
    waitpid(cli, &status, 0);
    ck_assert_msg(wait_no_busy_loops(sb) == 0, "the exec outlived its CLI after signal %d",
                  sigs[i]);
    /* SIGTERM/SIGINT went to the process: the CLI reports its death. */
    if (sigs[i] != SIGKILL)
      ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 128 + sigs[i], "status %d", status);
  }
  /* A handle freed before its process exited takes it along. */
  katavm_process *p = exec_named(sb, BUSY, "busyloop");
  ck_assert_int_eq(busy_loops(sb), 1);
  katavm_process_free(p);
  ck_assert_int_eq(wait_no_busy_loops(sb), 0);
  /* So does a shim killed under it (the next call recovers the sandbox). */
  p = exec_named(sb, BUSY, "busyloop");
  ck_assert_int_eq(busy_loops(sb), 1);
  ck_assert_int_eq(kill(shim_pid("ex1"), SIGKILL), 0);
  katavm_process_free(p);
  katavm_sandbox_close(sb);
  katavm_sandbox *again = NULL;
  katavm_error *e = NULL;
  for (int i = 0; i < 50 && katavm_sandbox_open(rt, "ex1", &again, &e) < 0; i++) {
    katavm_error_free(e);
    e = NULL;
    g_usleep(100000);
  }
  ck_assert_ptr_nonnull(again);
  ck_assert_int_eq(wait_no_busy_loops(again), 0);

  /* item 6: a system file is no disk; read-write needs an image. */
  katavm_hotplug_request hr;
  katavm_hotplug_request_init(&hr, KATAVM_HOTPLUG_DISK_ADD);
  hr.path = "/etc/passwd";
  int rc = katavm_hotplug(again, &hr, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "host system file");
  g_autofree char *odd = g_build_filename(workdir, "odd.img", NULL);
  ck_assert(g_file_set_contents(odd, "not a disk", -1, NULL));
  hr.path = odd;
  rc = katavm_hotplug(again, &hr, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "512-byte sectors");
  hr.path = "/dev/null";
  rc = katavm_hotplug(again, &hr, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "neither a regular image file nor a block device");
  katavm_sandbox_close(again);
  destroy(rt, "ex1");
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

/* ---- item 6: other users ---- */

#define OTHER_USER "kvtfault"

static int run_as_other(const char *root, char **err) {
  g_autofree char *env_root = g_strdup_printf("KATAVM_ROOT=%s", root);
  const char *argv[] = {"setpriv",
                        "--reuid=" OTHER_USER,
                        "--regid=" OTHER_USER,
                        "--init-groups",
                        "env",
                        env_root,
                        g_getenv("KATAVM_CLI"),
                        "sandbox",
                        "inspect",
                        "nosuch",
                        NULL};
  int status = -1;
  g_autoptr(GError) ge = NULL;
  ck_assert_msg(g_spawn_sync("/", (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, err,
                             &status, &ge),
                "setpriv: %s", ge ? ge->message : "?");
  return status;
}

static int cli_with_root(const char *root, char **err) {
  g_autofree char *env_root = g_strdup_printf("KATAVM_ROOT=%s", root);
  const char *argv[] = {"env", env_root, g_getenv("KATAVM_CLI"), "sandbox", "ls", NULL};
  int status = -1;
  ck_assert(g_spawn_sync("/", (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, err,
                         &status, NULL));
  return status;
}

START_TEST(other_users_are_refused) {
  ck_assert_int_eq(
      system("userdel " OTHER_USER " 2>/dev/null; useradd -M -s /usr/sbin/nologin " OTHER_USER), 0);
  /* The test root is root's, 0700: another user is told so. */
  g_autofree char *err = NULL;
  int st = run_as_other(kvt_root(), &err);
  ck_assert_int_ne(st, 0);
  ck_assert_msg(strstr(err, "permission denied") && !strstr(err, "no sandbox"), "other user: %s",
                err);
  /* A root another user owns, or one others may write, is refused. */
  /* Short: roots are limited to 32 characters (socket paths). */
  g_autofree char *alien = g_strdup_printf("/tmp/kvtf-a%d", (int)getpid());
  ck_assert_int_eq(g_mkdir_with_parents(alien, 0700), 0);
  g_autofree char *chown_cmd = g_strdup_printf("chown %s %s", OTHER_USER, alien);
  ck_assert_int_eq(system(chown_cmd), 0);
  g_clear_pointer(&err, g_free);
  st = cli_with_root(alien, &err);
  ck_assert_int_ne(st, 0);
  ck_assert_msg(strstr(err, "belongs to uid"), "alien root: %s", err);
  g_autofree char *open_root = g_strdup_printf("/tmp/kvtf-o%d", (int)getpid());
  ck_assert_int_eq(g_mkdir_with_parents(open_root, 0700), 0);
  ck_assert_int_eq(chmod(open_root, 01777), 0);
  g_clear_pointer(&err, g_free);
  st = cli_with_root(open_root, &err);
  ck_assert_int_ne(st, 0);
  ck_assert_msg(strstr(err, "writable by others"), "open root: %s", err);
  ck_assert_int_eq(system("userdel " OTHER_USER), 0);
  ck_assert_int_eq(g_rmdir(alien), 0);
  ck_assert_int_eq(g_rmdir(open_root), 0);
  kvt_assert_clean();
}
END_TEST

int main(void) {
  Suite *s = suite_create("faults");
  TCase *tc = tcase_create("faults");
  tcase_set_timeout(tc, 600);
  tcase_add_checked_fixture(tc, work_setup, work_teardown);
  tcase_add_test(tc, other_users_are_refused);
  tcase_add_test(tc, stopped_qemu_times_out);
  tcase_add_test(tc, create_with_stopped_qemu_fails);
  tcase_add_test(tc, stopped_shim_times_out_alone);
  tcase_add_test(tc, qemu_killed_has_reason);
  tcase_add_test(tc, guest_poweroff_has_reason);
  tcase_add_test(tc, guest_panic_has_reason);
  tcase_add_test(tc, console_flood_is_capped);
  tcase_add_test(tc, exec_dies_with_its_client);
  tcase_add_test(tc, qemu_killed_during_container_add);
  tcase_add_test(tc, shim_killed_during_container_add);
  tcase_add_test(tc, shim_stopped_during_container_add);
  tcase_add_test(tc, qemu_killed_during_hotplug);
  tcase_add_test(tc, shim_killed_during_hotplug);
  suite_add_tcase(s, tc);
  return kvt_run_suite(s);
}
