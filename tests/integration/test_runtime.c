/* tests/integration/test_runtime.c: katavm-runtime, driven as conmon and
 * containerd's runc shim drive runc: create with a pid file (the host
 * process that stands for the container's init is waited for here, as a
 * subreaper like conmon), start, state, kill, exec (foreground, detached,
 * --process, --console-socket), delete, pods from CRI-O annotations, and
 * bad input. Real VMs under TCG. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "helpers.h"

static char *work;

static char *state_root(void) {
  return g_strdup_printf("%s-rtstate", kvt_root());
}

/* As a subreaper (like conmon) this test inherits every orphan below it:
 * the sandboxes' shims and the QEMU processes libvirt daemonizes. Like
 * conmon, it must reap them, or libvirt in the shim sees a dead QEMU as
 * alive (a zombie answers kill(pid, 0)). Stand-ins are left to
 * wait_stand_in(). */
static volatile gboolean reaping;

static void reap_orphans(void) {
  g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    pid_t pid = (pid_t)atoi(name);
    if (pid <= 0)
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *stat = NULL;
    if (!g_file_get_contents(path, &stat, NULL, NULL))
      continue;
    char comm[64] = "", st = 0;
    int ppid = 0;
    /* Only the orphans: our own children (system(), g_spawn) are waited for
     * by whoever started them. */
    if (sscanf(stat, "%*d (%63[^)]) %c %d", comm, &st, &ppid) == 3 && ppid == getpid() &&
        st == 'Z' && (g_str_has_prefix(comm, "katavm-shim") || g_str_has_prefix(comm, "qemu-")))
      waitpid(pid, NULL, WNOHANG);
  }
}

static gpointer reaper(gpointer unused) {
  while (reaping) {
    reap_orphans();
    g_usleep(100 * 1000);
  }
  return NULL;
}

/* Run katavm-runtime with argv (NULL-terminated after --root), stdio from
 * in_fd (or /dev/null) and to files out/err (or /dev/null). Returns its exit
 * status (128+N for a signal). */
static int rt_run_fds(int in_fd, const char *out, const char *err, const char *const *args) {
  const char *bin = g_getenv("KATAVM_RUNTIME");
  ck_assert_msg(bin != NULL, "KATAVM_RUNTIME not set");
  g_autofree char *root = state_root();
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_ptr_array_add(argv, (char *)bin);
  g_ptr_array_add(argv, "--root");
  g_ptr_array_add(argv, root);
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add(argv, (char *)*a);
  g_ptr_array_add(argv, NULL);
  g_setenv("KATAVM_ROOT", kvt_root(), TRUE);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
    int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    int e = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    execv(bin, (char **)argv->pdata);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define RT(...) rt_run_fds(-1, NULL, NULL, (const char *const[]){__VA_ARGS__, NULL})

/* Run and capture stdout and stderr. */
static int rt_capture(char **out, char **err, const char *const *args) {
  g_autofree char *o = g_build_filename(work, "cap.out", NULL);
  g_autofree char *e = g_build_filename(work, "cap.err", NULL);
  unlink(o);
  unlink(e);
  int rc = rt_run_fds(-1, o, e, args);
  if (out)
    g_file_get_contents(o, out, NULL, NULL);
  if (err)
    g_file_get_contents(e, err, NULL, NULL);
  return rc;
}

#define RTC(out, err, ...) rt_capture(out, err, (const char *const[]){__VA_ARGS__, NULL})

/* Run and assert success, showing its stderr otherwise. */
static void rt_ok(const char *const *args) {
  g_autofree char *err = NULL;
  int rc = rt_capture(NULL, &err, args);
  ck_assert_msg(rc == 0, "katavm-runtime %s %s: exit %d: %s", args[0], args[1] ? args[1] : "", rc,
                err);
}

#define RT_OK(...) rt_ok((const char *const[]){__VA_ARGS__, NULL})

static pid_t read_pid(const char *path) {
  g_autofree char *text = NULL;
  ck_assert_msg(g_file_get_contents(path, &text, NULL, NULL), "no pid file %s", path);
  return (pid_t)atoi(text);
}

/* Wait for the stand-in (our child now: we are a subreaper). */
static int wait_stand_in(pid_t pid, int *sig) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    ck_assert_msg(errno == EINTR, "waitpid %d: %s", pid, g_strerror(errno));
  *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *status_of(const char *id) {
  char *out = NULL;
  int rc = RTC(&out, NULL, "state", id);
  ck_assert_int_eq(rc, 0);
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, out, -1, NULL));
  g_free(out);
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  return g_strdup(json_object_get_string_member(o, "status"));
}

static void set_args(JsonObject *spec, gpointer data) {
  JsonArray *a = json_array_new();
  for (const char *const *s = data; *s; s++)
    json_array_add_string_element(a, *s);
  json_object_set_array_member(json_object_get_object_member(spec, "process"), "args", a);
}

static char *bundle_with(const char *name, const char *const *args) {
  g_autofree char *dir = g_build_filename(work, name, NULL);
  char *b = kvt_make_rootfs(dir, TRUE);
  kvt_edit_spec(b, set_args, (gpointer)args);
  return b;
}

static GThread *reaper_thread;

static void drop_state_root(void) {
  g_autofree char *root = state_root();
  g_autofree char *cmd = g_strdup_printf("rm -rf %s", root);
  int rc = system(cmd);
  (void)rc;
}

static void setup(void) {
  kvt_setup();
  /* A failed test skips its teardown: start from nothing. */
  drop_state_root();
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  reaping = TRUE;
  reaper_thread = g_thread_new("reaper", reaper, NULL);
  work = kvt_workdir_new("runtime");
}

static void teardown(void) {
  drop_state_root();
  kvt_workdir_drop(&work);
  kvt_teardown();
  reaping = FALSE;
  g_thread_join(reaper_thread);
}

static void assert_no_state(void) {
  g_autofree char *root = state_root();
  g_autoptr(GDir) d = g_dir_open(root, 0, NULL);
  const char *n = d ? g_dir_read_name(d) : NULL;
  ck_assert_msg(n == NULL, "state of %s left under %s", n, root);
}

START_TEST(lifecycle) {
  const char *args[] = {"sh", "-c", "uname -r; read line; echo got:$line; echo to-err >&2; exit 7",
                        NULL};
  g_autofree char *b = bundle_with("b", args);
  g_autofree char *pidf = g_build_filename(work, "pid", NULL);
  g_autofree char *out = g_build_filename(work, "out", NULL);
  g_autofree char *err = g_build_filename(work, "err", NULL);
  int in[2];
  ck_assert_int_eq(pipe(in), 0);
  int rc =
      rt_run_fds(in[0], out, err,
                 (const char *const[]){"create", "--bundle", b, "--pid-file", pidf, "c1", NULL});
  close(in[0]);
  g_autofree char *e1 = NULL;
  g_file_get_contents(err, &e1, NULL, NULL);
  ck_assert_msg(rc == 0, "create: %d: %s", rc, e1);
  pid_t pid = read_pid(pidf);
  ck_assert_int_gt(pid, 0);
  g_autofree char *s1 = status_of("c1");
  ck_assert_str_eq(s1, "created");
  /* A second container with the same id. */
  char *dup_err = NULL;
  rc = RTC(NULL, &dup_err, "create", "--bundle", b, "c1");
  ck_assert_int_eq(rc, 1);
  ck_assert_msg(strstr(dup_err, "already exists"), "%s", dup_err);
  g_free(dup_err);
  RT_OK("start", "c1");
  g_autofree char *s2 = status_of("c1");
  ck_assert_str_eq(s2, "running");
  /* start twice: it is not in the created state any more */
  ck_assert_int_eq(RT("start", "c1"), 1);
  /* delete of a running container without --force is an error */
  ck_assert_int_eq(RT("delete", "c1"), 1);
  ck_assert(write(in[1], "hello\n", 6) == 6);
  close(in[1]);
  int sig = 0;
  int code = wait_stand_in(pid, &sig);
  ck_assert_int_eq(sig, 0);
  ck_assert_int_eq(code, 7);
  g_autofree char *o = NULL, *e = NULL;
  g_file_get_contents(out, &o, NULL, NULL);
  g_file_get_contents(err, &e, NULL, NULL);
  g_autofree char *host = NULL;
  g_file_get_contents("/proc/sys/kernel/osrelease", &host, NULL, NULL);
  ck_assert_msg(strstr(o, "got:hello"), "stdout: %s", o);
  ck_assert_msg(strstr(e, "to-err"), "stderr: %s", e);
  ck_assert_msg(!strstr(o, g_strstrip(host)), "stdout shows the host's kernel: %s", o);
  ck_assert_msg(strstr(o, g_getenv("KATAVM_TEST_KERNEL_RELEASE")), "not the guest kernel: %s", o);
  g_autofree char *s3 = status_of("c1");
  ck_assert_str_eq(s3, "stopped");
  RT_OK("delete", "c1");
  ck_assert_int_eq(RT("state", "c1"), 1);
  assert_no_state();
  kvt_assert_clean();
}
END_TEST

/* The container's own cgroup at /sys/fs/cgroup, as container managers'
 * specs mount it. */
static void cgroup_mount(JsonObject *spec, gpointer unused) {
  JsonObject *m = json_object_new();
  json_object_set_string_member(m, "destination", "/sys/fs/cgroup");
  json_object_set_string_member(m, "type", "cgroup");
  json_object_set_string_member(m, "source", "cgroup");
  json_array_add_object_element(json_object_get_array_member(spec, "mounts"), m);
  JsonObject *ns = json_object_new();
  json_object_set_string_member(ns, "type", "cgroup");
  json_array_add_object_element(
      json_object_get_array_member(json_object_get_object_member(spec, "linux"), "namespaces"), ns);
}

START_TEST(kill_and_exec) {
  const char *args[] = {"sleep", "600", NULL};
  g_autofree char *b = bundle_with("b", args);
  kvt_edit_spec(b, cgroup_mount, NULL);
  g_autofree char *pidf = g_build_filename(work, "pid", NULL);
  RT_OK("create", "--bundle", b, "--pid-file", pidf, "k1");
  pid_t pid = read_pid(pidf);
  RT_OK("start", "k1");
  /* exec in the foreground: stdout and the exit code come back */
  char *out = NULL;
  int rc = RTC(&out, NULL, "exec", "k1", "sh", "-c", "echo exec-out; exit 3");
  ck_assert_int_eq(rc, 3);
  ck_assert_msg(strstr(out, "exec-out"), "%s", out);
  g_free(out);
  /* exec from an OCI process file, detached, with a pid file */
  g_autofree char *proc = g_build_filename(work, "process.json", NULL);
  ck_assert(g_file_set_contents(
      proc, "{\"args\":[\"sh\",\"-c\",\"exit 5\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}}",
      -1, NULL));
  g_autofree char *xpidf = g_build_filename(work, "xpid", NULL);
  RT_OK("exec", "--process", proc, "--detach", "--pid-file", xpidf, "k1");
  int sig = 0;
  ck_assert_int_eq(wait_stand_in(read_pid(xpidf), &sig), 5);
  /* pause freezes the container, resume thaws it */
  RT_OK("pause", "k1");
  g_autofree char *ps = status_of("k1");
  ck_assert_str_eq(ps, "paused");
  ck_assert_int_eq(RT("pause", "k1"), 1); /* already paused */
  RT_OK("resume", "k1");
  g_autofree char *rs = status_of("k1");
  ck_assert_str_eq(rs, "running");
  /* update: a new memory limit reaches the container's cgroup */
  RT_OK("update", "--memory", "67108864", "k1");
  rc = RTC(&out, NULL, "exec", "k1", "sh", "-c", "cat /sys/fs/cgroup/memory.max");
  ck_assert_int_eq(rc, 0);
  ck_assert_msg(strstr(out, "67108864"), "memory.max: %s", out);
  g_free(out);
  g_autofree char *res = g_build_filename(work, "res.json", NULL);
  ck_assert(g_file_set_contents(res, "{\"pids\":{\"limit\":99}}", -1, NULL));
  RT_OK("update", "--resources", res, "k1");
  rc = RTC(&out, NULL, "exec", "k1", "cat", "/sys/fs/cgroup/pids.max");
  ck_assert_msg(rc == 0 && strstr(out, "99"), "pids.max: %s", out);
  g_free(out);
  ck_assert(g_file_set_contents(res, "{\"memory\":{\"limit\":\"lots\"}}", -1, NULL));
  char *uerr = NULL;
  ck_assert_int_eq(RTC(NULL, &uerr, "update", "--resources", res, "k1"), 1);
  ck_assert_msg(strstr(uerr, "memory"), "%s", uerr);
  g_free(uerr);
  /* a signal by name reaches the init; the stand-in dies of it */
  RT_OK("kill", "k1", "KILL");
  int code = wait_stand_in(pid, &sig);
  ck_assert_msg(sig == SIGKILL, "stand-in exit %d signal %d", code, sig);
  g_autofree char *st = status_of("k1");
  ck_assert_str_eq(st, "stopped");
  /* bad signal */
  ck_assert_int_eq(RT("kill", "k1", "NOSUCHSIG"), 1);
  RT_OK("delete", "k1");
  assert_no_state();
  kvt_assert_clean();
}
END_TEST

/* Receive the pty master that runc-style runtimes send. */
static int recv_master(int lfd) {
  int c = accept(lfd, NULL, NULL);
  ck_assert_int_ge(c, 0);
  char name[128];
  char ctl[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  ssize_t n = recvmsg(c, &msg, 0);
  ck_assert_int_gt(n, 0);
  ck_assert_msg(!strncmp(name, "/dev/pts/", 9), "pty name '%.*s'", (int)n, name);
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  ck_assert(cm && cm->cmsg_type == SCM_RIGHTS);
  int fd;
  memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  close(c);
  return fd;
}

/* Read from the master until `needle` shows (bounded). */
static gboolean read_until(int fd, const char *needle, GString *acc) {
  gint64 end = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;
  while (g_get_monotonic_time() < end) {
    if (strstr(acc->str, needle))
      return TRUE;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 1000) <= 0)
      continue;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      return strstr(acc->str, needle) != NULL;
    g_string_append_len(acc, buf, n);
  }
  return FALSE;
}

START_TEST(console_socket) {
  const char *args[] = {"sh", NULL};
  g_autofree char *b = bundle_with("b", args);
  g_autofree char *sock = g_build_filename(work, "console.sock", NULL);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  g_strlcpy(sa.sun_path, sock, sizeof sa.sun_path);
  ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(lfd, 1), 0);
  g_autofree char *pidf = g_build_filename(work, "pid", NULL);
  RT_OK("create", "--bundle", b, "--console-socket", sock, "--pid-file", pidf, "t1");
  int master = recv_master(lfd);
  RT_OK("start", "t1");
  struct winsize ws = {.ws_row = 33, .ws_col = 111};
  ck_assert_int_eq(ioctl(master, TIOCSWINSZ, &ws), 0);
  g_usleep(500 * 1000);
  const char *cmd = "echo $((6*7))-answer; stty size\n";
  ck_assert(write(master, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
  g_autoptr(GString) acc = g_string_new(NULL);
  ck_assert_msg(read_until(master, "42-answer", acc), "no answer: %s", acc->str);
  ck_assert_msg(read_until(master, "33 111", acc), "size not followed: %s", acc->str);
  ck_assert(write(master, "exit 4\n", 7) == 7);
  int sig = 0;
  ck_assert_int_eq(wait_stand_in(read_pid(pidf), &sig), 4);
  close(master);
  close(lfd);
  RT_OK("delete", "t1");
  kvt_assert_clean();
}
END_TEST

static void crio_member(JsonObject *spec, gpointer sandbox) {
  JsonObject *a = json_object_new();
  json_object_set_string_member(a, "io.kubernetes.cri-o.ContainerType", "container");
  json_object_set_string_member(a, "io.kubernetes.cri-o.SandboxID", sandbox);
  json_object_set_object_member(spec, "annotations", a);
}

static void crio_sandbox(JsonObject *spec, gpointer unused) {
  JsonObject *a = json_object_new();
  json_object_set_string_member(a, "io.kubernetes.cri-o.ContainerType", "sandbox");
  /* The pod's size from katavm's annotations. */
  json_object_set_string_member(a, "io.katavm.cpus", "2");
  json_object_set_object_member(spec, "annotations", a);
}

START_TEST(pod) {
  const char *args[] = {"sleep", "600", NULL};
  g_autofree char *infra = bundle_with("infra", args);
  kvt_edit_spec(infra, crio_sandbox, NULL);
  g_autofree char *m = bundle_with("member", args);
  kvt_edit_spec(m, crio_member, "pod1");
  g_autofree char *orphan = bundle_with("orphan", args);
  kvt_edit_spec(orphan, crio_member, "nopod");
  /* A member whose pod does not exist: clear error, nothing left. */
  char *err = NULL;
  int rc = RTC(NULL, &err, "create", "--bundle", orphan, "o1");
  ck_assert_int_eq(rc, 1);
  ck_assert_msg(strstr(err, "nopod") && strstr(err, "does not exist"), "%s", err);
  g_free(err);
  assert_no_state();
  RT_OK("create", "--bundle", infra, "pod1");
  RT_OK("start", "pod1");
  RT_OK("create", "--bundle", m, "m1");
  RT_OK("start", "m1");
  /* One VM for the pod. */
  ck_assert_int_eq(kvt_count_vms(), 1);
  char *out = NULL;
  rc = RTC(&out, NULL, "exec", "m1", "sh", "-c", "echo member-in-vm; nproc");
  ck_assert_int_eq(rc, 0);
  ck_assert_msg(strstr(out, "member-in-vm\n2"), "the pod's VM has not 2 vCPUs: %s", out);
  g_free(out);
  /* Deleting the member leaves the pod running. */
  RT_OK("delete", "--force", "m1");
  g_autofree char *st = status_of("pod1");
  ck_assert_str_eq(st, "running");
  RT_OK("delete", "--force", "pod1");
  /* delete --force of what no longer exists is not an error */
  RT_OK("delete", "--force", "pod1");
  assert_no_state();
  kvt_assert_clean();
}
END_TEST

START_TEST(bad_input) {
  char *err = NULL;
  ck_assert_int_eq(RTC(NULL, &err, "frobnicate"), 1);
  ck_assert_msg(strstr(err, "unknown command 'frobnicate'"), "%s", err);
  g_clear_pointer(&err, g_free);
  ck_assert_int_eq(RTC(NULL, &err, "create", "--no-such-flag", "x"), 1);
  ck_assert_msg(strstr(err, "no-such-flag"), "%s", err);
  g_clear_pointer(&err, g_free);
  g_autofree char *missing = g_build_filename(work, "missing", NULL);
  ck_assert_int_eq(RTC(NULL, &err, "create", "--bundle", missing, "x"), 1);
  ck_assert_msg(strstr(err, "missing"), "%s", err);
  g_clear_pointer(&err, g_free);
  g_autofree char *empty = g_build_filename(work, "empty", NULL);
  g_mkdir_with_parents(empty, 0755);
  ck_assert_int_eq(RTC(NULL, &err, "create", "--bundle", empty, "x"), 1);
  ck_assert_msg(strstr(err, "config.json"), "%s", err);
  g_clear_pointer(&err, g_free);
  ck_assert_int_eq(RTC(NULL, &err, "create", "--bundle", empty, "../evil"), 1);
  ck_assert_msg(strstr(err, "container id"), "%s", err);
  g_clear_pointer(&err, g_free);
  ck_assert_int_eq(RTC(NULL, &err, "start", "nosuch"), 1);
  ck_assert_msg(strstr(err, "does not exist"), "%s", err);
  g_clear_pointer(&err, g_free);
  /* Logged as JSON for conmon to read back. */
  g_autofree char *log = g_build_filename(work, "log.json", NULL);
  ck_assert_int_eq(RT("--log", log, "--log-format", "json", "kill", "nosuch"), 1);
  g_autofree char *text = NULL;
  ck_assert(g_file_get_contents(log, &text, NULL, NULL));
  ck_assert_msg(strstr(text, "\"level\":\"error\"") && strstr(text, "nosuch"), "%s", text);
  assert_no_state();
  kvt_assert_clean();
}
END_TEST

static void missing_bind(JsonObject *spec, gpointer src) {
  JsonObject *m = json_object_new();
  json_object_set_string_member(m, "destination", "/data");
  json_object_set_string_member(m, "type", "bind");
  json_object_set_string_member(m, "source", src);
  JsonArray *o = json_array_new();
  json_array_add_string_element(o, "rbind");
  json_object_set_array_member(m, "options", o);
  json_array_add_object_element(json_object_get_array_member(spec, "mounts"), m);
}

/* A bind mount whose source does not exist: an error naming it, and no VM,
 * shim or state left (the sandbox made for it goes again). */
START_TEST(missing_volume) {
  const char *args[] = {"true", NULL};
  g_autofree char *b = bundle_with("b", args);
  g_autofree char *src = g_build_filename(work, "no-such-dir", NULL);
  kvt_edit_spec(b, missing_bind, src);
  char *err = NULL;
  ck_assert_int_eq(RTC(NULL, &err, "create", "--bundle", b, "mv1"), 1);
  ck_assert_msg(strstr(err, "no-such-dir"), "%s", err);
  g_free(err);
  assert_no_state();
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

/* QEMU dies under a running container: its stand-in says so and exits
 * (255), it does not hang. */
START_TEST(vm_dies) {
  const char *args[] = {"sleep", "600", NULL};
  g_autofree char *b = bundle_with("b", args);
  g_autofree char *pidf = g_build_filename(work, "pid", NULL);
  g_autofree char *err = g_build_filename(work, "err", NULL);
  int rc =
      rt_run_fds(-1, NULL, err,
                 (const char *const[]){"create", "--bundle", b, "--pid-file", pidf, "vd1", NULL});
  ck_assert_int_eq(rc, 0);
  pid_t pid = read_pid(pidf);
  RT_OK("start", "vd1");
  g_autofree char *cmd =
      g_strdup_printf("pkill -9 -f 'qemu-system.*guest=katavm-vd1,.*%s'", kvt_root());
  int k = system(cmd);
  (void)k;
  int sig = 0;
  int code = wait_stand_in(pid, &sig);
  ck_assert_msg(code == 255, "stand-in exit %d (signal %d)", code, sig);
  g_autofree char *text = NULL;
  g_file_get_contents(err, &text, NULL, NULL);
  ck_assert_msg(text && strstr(text, "container vd1"), "no message: %s", text);
  g_autofree char *st = status_of("vd1");
  ck_assert_str_eq(st, "stopped");
  RT_OK("delete", "vd1");
  assert_no_state();
  kvt_assert_clean();
}
END_TEST

START_TEST(misc_commands) {
  char *out = NULL;
  ck_assert_int_eq(RTC(&out, NULL, "features"), 0);
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert_msg(json_parser_load_from_data(p, out, -1, NULL), "features: %s", out);
  g_clear_pointer(&out, g_free);
  ck_assert_int_eq(RTC(&out, NULL, "--version"), 0);
  ck_assert_msg(strstr(out, "katavm-runtime version"), "%s", out);
  g_clear_pointer(&out, g_free);
  g_autofree char *sd = g_build_filename(work, "spec", NULL);
  g_mkdir_with_parents(sd, 0755);
  RT_OK("spec", "--bundle", sd);
  g_autofree char *cfg = g_build_filename(sd, "config.json", NULL);
  ck_assert(g_file_test(cfg, G_FILE_TEST_IS_REGULAR));
  ck_assert_int_eq(RT("spec", "--bundle", sd), 1); /* exists */
  ck_assert_int_eq(RTC(&out, NULL, "list", "--format", "json"), 0);
  ck_assert_msg(strstr(out, "[") != NULL, "%s", out);
  g_free(out);
}
END_TEST

static void trusted_annotation(JsonObject *spec, gpointer value) {
  JsonObject *a = json_object_new();
  json_object_set_string_member(a, "io.kubernetes.cri-o.TrustedSandbox", value);
  json_object_set_object_member(spec, "annotations", a);
}

/* Run a bundle to its end: create (output to a file), start, wait for the
 * process that stands for it; returns what it printed. */
static char *run_bundle(const char *conf, const char *bundle, const char *id, int *code) {
  g_autofree char *pidf = g_strdup_printf("%s/%s.pid", work, id);
  g_autofree char *out = g_strdup_printf("%s/%s.out", work, id);
  g_autofree char *err = g_strdup_printf("%s/%s.err", work, id);
  int rc = rt_run_fds(-1, out, err,
                      (const char *const[]){"--config", conf, "create", "--bundle", bundle,
                                            "--pid-file", pidf, id, NULL});
  g_autofree char *etext = NULL;
  g_file_get_contents(err, &etext, NULL, NULL);
  ck_assert_msg(rc == 0, "create %s: %s", id, etext);
  pid_t pid = read_pid(pidf);
  RT_OK("start", id);
  int sig = 0;
  *code = wait_stand_in(pid, &sig);
  RT_OK("delete", id);
  char *text = NULL;
  g_file_get_contents(out, &text, NULL, NULL);
  return text;
}

START_TEST(trusted_dispatch) {
  g_autofree char *conf = g_build_filename(work, "trusted.conf", NULL);
  ck_assert(g_file_set_contents(conf, "[runtime]\ntrusted_runtime = /usr/bin/runc\n", -1, NULL));
  const char *args[] = {"sh", "-c", "uname -r; exit 6", NULL};
  g_autofree char *tb = bundle_with("trusted", args);
  kvt_edit_spec(tb, trusted_annotation, "true");
  g_autofree char *vb = bundle_with("untrusted", args);
  kvt_edit_spec(vb, trusted_annotation, "false");
  g_autofree char *host = NULL;
  g_file_get_contents("/proc/sys/kernel/osrelease", &host, NULL, NULL);
  g_strstrip(host);
  int code = -1;
  /* Trusted: runc, on the host's kernel. */
  g_autofree char *t = run_bundle(conf, tb, "tr1", &code);
  ck_assert_int_eq(code, 6);
  ck_assert_msg(t && strstr(t, host), "trusted container not on the host kernel: %s", t);
  /* Untrusted, in the same runtime: a VM. */
  g_autofree char *u = run_bundle(conf, vb, "un1", &code);
  ck_assert_int_eq(code, 6);
  ck_assert_msg(u && strstr(u, g_getenv("KATAVM_TEST_KERNEL_RELEASE")) && !strstr(u, host),
                "untrusted container not in a VM: %s", u);
  assert_no_state();
  kvt_assert_clean();
}
END_TEST

static void memory_limit_100m(JsonObject *spec, gpointer unused) {
  JsonObject *lx = json_object_get_object_member(spec, "linux");
  JsonObject *res = json_object_new();
  JsonObject *mem = json_object_new();
  json_object_set_int_member(mem, "limit", 100 << 20);
  json_object_set_object_member(res, "memory", mem);
  json_object_set_object_member(lx, "resources", res);
}

/* The guest's MemTotal in kB, read in container id. */
static gint64 guest_mem_total(const char *id) {
  char *out = NULL;
  int rc = RTC(&out, NULL, "exec", id, "sed", "-n", "s/^MemTotal: *//p", "/proc/meminfo");
  ck_assert_int_eq(rc, 0);
  gint64 kb = g_ascii_strtoll(out, NULL, 10);
  g_free(out);
  return kb;
}

START_TEST(update_resizes_vm) {
  /* A pod sized 128 MiB by its 100 MiB limit, which may grow to 2 vCPUs
   * and 1024 MiB (max_vcpus / max_memory_mib of the configuration). */
  g_autofree char *conf = g_build_filename(work, "max.conf", NULL);
  ck_assert(
      g_file_set_contents(conf, "[runtime]\nmax_vcpus = 2\nmax_memory_mib = 1024\n", -1, NULL));
  const char *args[] = {"sleep", "600", NULL};
  g_autofree char *b = bundle_with("b", args);
  kvt_edit_spec(b, memory_limit_100m, NULL);
  g_autofree char *pidf = g_build_filename(work, "pid", NULL);
  g_autofree char *err = g_build_filename(work, "err", NULL);
  int rc = rt_run_fds(-1, NULL, err,
                      (const char *const[]){"--config", conf, "create", "--bundle", b, "--pid-file",
                                            pidf, "u1", NULL});
  g_autofree char *etext = NULL;
  g_file_get_contents(err, &etext, NULL, NULL);
  ck_assert_msg(rc == 0, "create: %s", etext);
  pid_t pid = read_pid(pidf);
  RT_OK("start", "u1");
  gint64 before = guest_mem_total("u1");
  /* update --resources raising the limit beyond the VM's memory: the VM
   * grows (the limits plus the guest's reserve), the guest sees it. */
  g_autofree char *res = g_build_filename(work, "res.json", NULL);
  ck_assert(g_file_set_contents(res, "{\"memory\":{\"limit\":402653184}}", -1, NULL));
  RT_OK("update", "--resources", res, "u1");
  gint64 after = guest_mem_total("u1");
  ck_assert_msg(after > before + 256 * 1024 && after > 384 * 1024,
                "MemTotal %" G_GINT64_FORMAT " kB -> %" G_GINT64_FORMAT " kB", before, after);
  /* A quota of 2 CPUs: a second vCPU. */
  RT_OK("update", "--cpu-quota", "200000", "--cpu-period", "100000", "u1");
  char *out = NULL;
  ck_assert_int_eq(RTC(&out, NULL, "exec", "u1", "grep", "-c", "^processor", "/proc/cpuinfo"), 0);
  ck_assert_msg(atoi(out) == 2, "processors: %s", out);
  g_free(out);
  /* Beyond the max: exit 1 with a clear error; the VM stays as it was. */
  char *uerr = NULL;
  ck_assert_int_eq(RTC(NULL, &uerr, "update", "--memory", "2147483648", "u1"), 1);
  ck_assert_msg(strstr(uerr, "max memory") && strstr(uerr, "1024"), "%s", uerr);
  g_free(uerr);
  ck_assert_int_eq(guest_mem_total("u1"), after);
  /* The limit asked before applies again, though the VM holds no more. */
  RT_OK("update", "--resources", res, "u1");
  /* The limits as the guest's cgroup has them (`katavm container stats`). */
  g_autofree char *cli =
      g_strdup_printf("%s --root %s container stats u1 u1", g_getenv("KATAVM_CLI"), kvt_root());
  const char *sh[] = {"/bin/sh", "-c", cli, NULL};
  g_autofree char *stats = NULL;
  int st = -1;
  ck_assert(g_spawn_sync(NULL, (char **)sh, NULL, 0, NULL, NULL, &stats, NULL, &st, NULL));
  ck_assert_msg(st == 0 && strstr(stats, "\"memory_limit\":402653184") &&
                    strstr(stats, "\"cpu_quota_usec\":200000") &&
                    strstr(stats, "\"memory_events_oom_kill\":0"),
                "stats: %s", stats);
  RT_OK("kill", "u1", "KILL");
  int sig = 0;
  wait_stand_in(pid, &sig);
  ck_assert_int_eq(sig, SIGKILL);
  RT_OK("delete", "u1");
  assert_no_state();
  kvt_assert_clean();
}
END_TEST

int main(void) {
  Suite *s = suite_create("runtime");
  TCase *t = tcase_create("runtime");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, lifecycle);
  tcase_add_test(t, kill_and_exec);
  tcase_add_test(t, console_socket);
  tcase_add_test(t, pod);
  tcase_add_test(t, bad_input);
  tcase_add_test(t, misc_commands);
  tcase_add_test(t, trusted_dispatch);
  tcase_add_test(t, missing_volume);
  tcase_add_test(t, vm_dies);
  suite_add_tcase(s, t);
  /* VM resize by update (CK_RUN_CASE=resize runs it alone). */
  TCase *u = tcase_create("resize");
  tcase_add_checked_fixture(u, setup, teardown);
  tcase_set_timeout(u, 900);
  tcase_add_test(u, update_resizes_vm);
  suite_add_tcase(s, u);
  return kvt_run_suite(s);
}
