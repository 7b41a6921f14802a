/* tests/integration/test_containerd.c: Debian's containerd (1.6) running
 * containers through containerd-shim-katavm-v2 (runtime
 * io.containerd.katavm.v2), in a private containerd started by this test
 * (its own root, state, sockets; the CRI plugin off; overlayfs snapshots):
 * the guest kernel, exit codes, exec with stdin and exit codes, ps,
 * pause/resume, kill, the task events containerd receives, an exit while
 * containerd is down reported after its restart (once, with its status), a shim killed
 * with SIGKILL cleaned up by `delete`, and nothing left behind. Real VMs
 * under TCG; an image written offline from the busybox rootfs. The shim
 * finds the library's configuration through KATAVM_RUNTIME_CONFIG in
 * containerd's environment. */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "helpers.h"
#include "ttrpc.h"
#include "ttrpc.pb-c.h"

#define IMAGE "docker.io/library/kvt-busybox:latest"
#define RUNTIME "io.containerd.katavm.v2"

static char *work, *sock;
static GPid containerd = 0;
static GPid events_pid = 0;
static char *events_file;

static int ctr_full(const char *stdin_data, char **out, char **err, const char *const *args) {
  g_autoptr(GPtrArray) a = g_ptr_array_new();
  g_ptr_array_add(a, "ctr");
  g_ptr_array_add(a, "-a");
  g_ptr_array_add(a, sock);
  for (const char *const *x = args; *x; x++)
    g_ptr_array_add(a, (char *)*x);
  g_ptr_array_add(a, NULL);
  g_autofree char *cmd = NULL;
  int status = -1;
  g_autoptr(GError) e = NULL;
  char *o = NULL, *er = NULL;
  gboolean ok;
  if (stdin_data) {
    /* Through a shell: ctr reads stdin from a pipe. */
    g_autoptr(GString) s = g_string_new("printf %s ");
    g_autofree char *q = g_shell_quote(stdin_data);
    g_string_append_printf(s, "%s | ", q);
    for (guint i = 0; i + 1 < a->len; i++) {
      g_autofree char *w = g_shell_quote(a->pdata[i]);
      g_string_append_printf(s, "%s ", w);
    }
    const char *sh[] = {"/bin/sh", "-c", s->str, NULL};
    ok = g_spawn_sync(NULL, (char **)sh, NULL, 0, NULL, NULL, &o, &er, &status, &e);
  } else {
    ok = g_spawn_sync(NULL, (char **)a->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &o, &er,
                      &status, &e);
  }
  ck_assert_msg(ok, "spawn ctr: %s", e ? e->message : "?");
  if (out)
    *out = o;
  else
    g_free(o);
  if (err)
    *err = er;
  else
    g_free(er);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define CTR(out, err, ...) ctr_full(NULL, out, err, (const char *const[]){__VA_ARGS__, NULL})
#define CTR_IN(in, out, err, ...) ctr_full(in, out, err, (const char *const[]){__VA_ARGS__, NULL})

static void ctr_ok(const char *const *args, char **out) {
  g_autofree char *err = NULL;
  int rc = ctr_full(NULL, out, &err, args);
  ck_assert_msg(rc == 0, "ctr %s: exit %d: %s", args[0], rc, err);
}
#define CTR_OK(out, ...) ctr_ok((const char *const[]){__VA_ARGS__, NULL}, out)

/* Processes whose command line contains all of the needles. */
static GArray *find_procs(const char *a, const char *b) {
  GArray *pids = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    int pid = atoi(name);
    if (pid <= 0)
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%s/cmdline", name);
    g_autofree char *cmd = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &cmd, &len, NULL) || len == 0)
      continue;
    for (gsize i = 0; i + 1 < len; i++)
      if (!cmd[i])
        cmd[i] = ' ';
    if (strstr(cmd, a) && (!b || strstr(cmd, b)))
      g_array_append_val(pids, pid);
  }
  return pids;
}

static int count_vms(void) {
  g_autoptr(GArray) p = find_procs("/usr/bin/qemu-system", kvt_root());
  return (int)p->len;
}

/* Our shims (of this containerd: its address is on their command line). */
static int count_shims(void) {
  g_autoptr(GArray) p = find_procs("containerd-shim-katavm-v2", sock);
  return (int)p->len;
}

/* The number of shims once short-lived invocations (start, delete) are
 * gone, bounded. */
static int shims_settled(int want) {
  int n = count_shims();
  for (int i = 0; i < 100 && n != want; i++) {
    g_usleep(100 * 1000);
    n = count_shims();
  }
  return n;
}

/* A shim exits a moment after containerd's Shutdown (it answers first). */
static void wait_no_shims(void) {
  for (int i = 0; i < 300 && count_shims() > 0; i++)
    g_usleep(100 * 1000);
  ck_assert_int_eq(count_shims(), 0);
}

static int count_work_mounts(void) {
  g_autofree char *m = NULL;
  ck_assert(g_file_get_contents("/proc/self/mounts", &m, NULL, NULL));
  int n = 0;
  g_autofree char *needle = g_strdup_printf(" %s/", work);
  for (const char *p = m; (p = strstr(p, needle)); p++)
    n++;
  return n;
}

/* As a subreaper this test inherits every orphan below containerd: the
 * shims and the QEMU processes libvirt daemonizes. It must reap them, or
 * libvirt sees a dead QEMU as alive (a zombie answers kill(pid, 0)) and a
 * destroy hangs. Its own children are waited for by whoever started them. */
static volatile gboolean reaping;
static GThread *reaper_thread;

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
    if (sscanf(stat, "%*d (%63[^)]) %c %d", comm, &st, &ppid) == 3 && ppid == getpid() &&
        st == 'Z' &&
        (g_str_has_prefix(comm, "katavm-shim") || g_str_has_prefix(comm, "qemu-") ||
         g_str_has_prefix(comm, "containerd-shim") || g_str_has_prefix(comm, "virtiofsd")))
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

/* What a test that failed half-way left (Check runs no teardown after a
 * failure): containerd, shims and mounts under the work dir. */
static void drop_leftovers(const char *dir) {
  g_autofree char *cfg = g_strdup_printf("%s/config.toml", dir);
  g_autoptr(GArray) cd = find_procs("containerd --config", cfg);
  for (guint i = 0; i < cd->len; i++)
    kill(g_array_index(cd, int, i), SIGKILL);
  g_autofree char *addr = g_strdup_printf("%s/c.sock", dir);
  g_autoptr(GArray) sh = find_procs("ctr -a", addr);
  for (guint i = 0; i < sh->len; i++)
    kill(g_array_index(sh, int, i), SIGKILL);
  g_autoptr(GArray) shims = find_procs("containerd-shim-katavm-v2", addr);
  for (guint i = 0; i < shims->len; i++)
    kill(g_array_index(shims, int, i), SIGKILL);
  kvt_sweep();
  g_autofree char *cmd = g_strdup_printf(
      "grep -o ' %s/[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null", dir);
  int rc = system(cmd);
  (void)rc;
}

static void start_containerd(void);
static void start_events(void);

static void setup(void) {
  kvt_setup();
  /* Shims re-parent to us when containerd is gone: reap them. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  reaping = TRUE;
  reaper_thread = g_thread_new("reaper", reaper, NULL);
  g_autofree char *old = g_strdup_printf("%s-work-containerd", kvt_root());
  drop_leftovers(old);
  work = kvt_workdir_new("containerd");
  sock = g_build_filename(work, "c.sock", NULL);
  g_autofree char *bin = g_build_filename(work, "bin", NULL);
  g_autofree char *link = g_build_filename(bin, "containerd-shim-katavm-v2", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(bin, 0755), 0);
  ck_assert_int_eq(symlink(g_getenv("KATAVM_SHIM_V2"), link), 0);
  g_autofree char *conf = g_build_filename(work, "katavm.conf", NULL);
  g_autofree char *ktext = g_strdup_printf("[runtime]\nroot = %s\nkernel = %s\ninitrd = %s\n"
                                           "shim = %s\n",
                                           kvt_root(), g_getenv("KATAVM_KERNEL"),
                                           g_getenv("KATAVM_INITRD"), g_getenv("KATAVM_SHIM"));
  ck_assert(g_file_set_contents(conf, ktext, -1, NULL));
  g_autofree char *toml = g_build_filename(work, "config.toml", NULL);
  g_autofree char *ctext = g_strdup_printf(
      "version = 2\nroot = \"%s/root\"\nstate = \"%s/state\"\n"
      "disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\","
      " \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\","
      " \"io.containerd.snapshotter.v1.aufs\", \"io.containerd.tracing.processor.v1.otlp\","
      " \"io.containerd.internal.v1.tracing\"]\n"
      "[grpc]\n  address = \"%s\"\n[ttrpc]\n  address = \"%s.ttrpc\"\n"
      "[debug]\n  address = \"%s.debug\"\n  level = \"debug\"\n",
      work, work, sock, sock, sock);
  ck_assert(g_file_set_contents(toml, ctext, -1, NULL));
  start_containerd();
  /* The image, written offline from the busybox rootfs. */
  g_autofree char *tar = g_build_filename(work, "image.tar", NULL);
  g_autofree char *mk = g_strdup_printf("%s/tests/rootfs/mkociimage.sh %s %s",
                                        g_getenv("KATAVM_SOURCE_DIR"), IMAGE, tar);
  ck_assert_msg(system(mk) == 0, "%s", mk);
  CTR_OK(NULL, "image", "import", tar);
  events_file = g_build_filename(work, "events.txt", NULL);
  start_events();
}

/* containerd (config.toml and katavm.conf in the work dir), with the shim
 * first on PATH and the configuration for it; returns once it answers. */
static void start_containerd(void) {
  g_autofree char *bin = g_build_filename(work, "bin", NULL);
  g_autofree char *conf = g_build_filename(work, "katavm.conf", NULL);
  g_autofree char *toml = g_build_filename(work, "config.toml", NULL);
  g_auto(GStrv) env = g_get_environ();
  g_autofree char *path = g_strdup_printf("%s:%s", bin, g_getenv("PATH"));
  env = g_environ_setenv(env, "PATH", path, TRUE);
  env = g_environ_setenv(env, "KATAVM_RUNTIME_CONFIG", conf, TRUE);
  g_autofree char *log = g_build_filename(work, "containerd.log", NULL);
  g_autofree char *cmd = g_strdup_printf("exec containerd --config %s >>%s 2>&1", toml, log);
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  g_autoptr(GError) e = NULL;
  ck_assert_msg(g_spawn_async(NULL, (char **)argv, env, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                              &containerd, &e),
                "containerd: %s", e ? e->message : "?");
  int up = 0;
  for (int i = 0; i < 300 && !up; i++) {
    up = CTR(NULL, NULL, "version") == 0;
    if (!up)
      g_usleep(100 * 1000);
  }
  ck_assert_msg(up, "containerd did not come up (log %s)", log);
}

/* Every event containerd sees, for the checks below (appended). */
static void start_events(void) {
  g_autofree char *ev = g_strdup_printf("exec ctr -a %s events >>%s 2>&1", sock, events_file);
  const char *eargv[] = {"/bin/sh", "-c", ev, NULL};
  ck_assert(g_spawn_async(NULL, (char **)eargv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                          &events_pid, NULL));
}

static void stop_pid(GPid *pid) {
  if (*pid <= 0)
    return;
  kill(*pid, SIGTERM);
  int st;
  waitpid(*pid, &st, 0);
  *pid = 0;
}

static char *task_status(const char *id);

static void teardown(void) {
  /* What a failed test left: tasks and containers go through containerd. */
  g_autofree char *out = NULL;
  if (containerd > 0 && CTR(&out, NULL, "container", "ls", "-q") == 0) {
    g_auto(GStrv) ids = g_strsplit(out, "\n", -1);
    for (char **id = ids; *id; id++) {
      if (!**id)
        continue;
      CTR(NULL, NULL, "task", "kill", "-s", "SIGKILL", *id);
      for (int i = 0; i < 300; i++) {
        g_autofree char *st = task_status(*id);
        if (!strcmp(st, "STOPPED") || !strcmp(st, "absent"))
          break;
        g_usleep(100 * 1000);
      }
      CTR(NULL, NULL, "task", "rm", "-f", *id);
      CTR(NULL, NULL, "container", "rm", *id);
    }
  }
  stop_pid(&events_pid);
  stop_pid(&containerd);
  /* Shims still running would be a leak; give the last ones a moment. */
  for (int i = 0; i < 100 && count_shims() > 0; i++)
    g_usleep(100 * 1000);
  int shims = count_shims();
  /* The sandboxes first (their shares hold the rootfs mounts), then the
   * mounts containerd and the shims made under the work dir. */
  kvt_teardown();
  int mounts = count_work_mounts();
  drop_leftovers(work);
  kvt_workdir_drop(&work);
  g_clear_pointer(&sock, g_free);
  g_clear_pointer(&events_file, g_free);
  reaping = FALSE;
  g_thread_join(reaper_thread);
  ck_assert_int_eq(shims, 0);
  ck_assert_int_eq(mounts, 0);
}

static char *task_status(const char *id) {
  g_autofree char *out = NULL;
  CTR_OK(&out, "task", "ls");
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit_set(*l, " \t", -1);
    if (f[0] && !strcmp(f[0], id)) {
      for (int i = g_strv_length(f) - 1; i >= 0; i--)
        if (*f[i])
          return g_strdup(f[i]);
    }
  }
  return g_strdup("absent");
}

/* One ttrpc call on a shim's socket: the frame (its payload a Request of
 * service/method/payload, or raw bytes when raw_len is set) and the
 * Response that comes back. */
static Ttrpc__Response *ttrpc_call(int fd, uint32_t stream, const char *method,
                                   const uint8_t *payload, size_t len, size_t raw_len) {
  uint8_t *f;
  size_t n;
  if (raw_len) {
    n = raw_len;
    f = g_malloc0(TTRPC_HEADER_LEN + n);
  } else {
    Ttrpc__Request rq = TTRPC__REQUEST__INIT;
    rq.service = "containerd.task.v2.Task";
    rq.method = (char *)method;
    rq.payload.data = (uint8_t *)payload;
    rq.payload.len = len;
    n = ttrpc__request__get_packed_size(&rq);
    f = g_malloc(TTRPC_HEADER_LEN + n);
    ttrpc__request__pack(&rq, f + TTRPC_HEADER_LEN);
  }
  TtrpcHeader h = {.length = (uint32_t)n, .stream = stream, .type = TTRPC_TYPE_REQUEST};
  ttrpc_header_encode(&h, f);
  size_t off = 0;
  while (off < TTRPC_HEADER_LEN + n) {
    ssize_t w = write(fd, f + off, TTRPC_HEADER_LEN + n - off);
    ck_assert_int_gt(w, 0);
    off += (size_t)w;
  }
  g_free(f);
  uint8_t hb[TTRPC_HEADER_LEN];
  ck_assert_int_eq(recv(fd, hb, sizeof(hb), MSG_WAITALL), (ssize_t)sizeof(hb));
  TtrpcHeader rh;
  ttrpc_header_decode(hb, &rh);
  ck_assert_uint_eq(rh.stream, stream);
  ck_assert_uint_eq(rh.type, TTRPC_TYPE_RESPONSE);
  g_autofree uint8_t *p = g_malloc(rh.length + 1);
  /* A Response of Empty with no status packs to no bytes at all (Update,
   * Kill, ...), and a recv of 0 bytes with MSG_WAITALL blocks. */
  if (rh.length)
    ck_assert_int_eq(recv(fd, p, rh.length, MSG_WAITALL), (ssize_t)rh.length);
  Ttrpc__Response *r = ttrpc__response__unpack(NULL, rh.length, p);
  ck_assert_ptr_nonnull(r);
  return r;
}

/* Bad input on the socket of the shim that runs container id: an unknown
 * method, a malformed request, an oversized frame each get an error for
 * that request, and the shim goes on serving (State answers). */
/* A connection to the ttrpc socket of the shim that runs container id. */
static int shim_connect(const char *id) {
  g_autofree char *af =
      g_strdup_printf("%s/state/io.containerd.runtime.v2.task/default/%s/address", work, id);
  g_autofree char *addr = NULL;
  ck_assert_msg(g_file_get_contents(af, &addr, NULL, NULL), "no %s", af);
  ck_assert(g_str_has_prefix(addr, "unix://"));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  g_strlcpy(sa.sun_path, addr + 7, sizeof(sa.sun_path));
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

static void shim_bad_input(const char *id) {
  int fd = shim_connect(id);
  Ttrpc__Response *r = ttrpc_call(fd, 1, "NoSuchMethod", NULL, 0, 0);
  ck_assert_ptr_nonnull(r->status);
  ck_assert_int_eq(r->status->code, TTRPC_UNIMPLEMENTED);
  ck_assert_msg(strstr(r->status->message, "NoSuchMethod"), "%s", r->status->message);
  ttrpc__response__free_unpacked(r, NULL);
  const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f};
  r = ttrpc_call(fd, 3, "Create", junk, sizeof(junk), 0);
  ck_assert_ptr_nonnull(r->status);
  ck_assert_int_eq(r->status->code, TTRPC_INVALID_ARGUMENT);
  ttrpc__response__free_unpacked(r, NULL);
  r = ttrpc_call(fd, 5, NULL, NULL, 0, TTRPC_MESSAGE_MAX + 1);
  ck_assert_ptr_nonnull(r->status);
  ck_assert_int_eq(r->status->code, TTRPC_RESOURCE_EXHAUSTED);
  ttrpc__response__free_unpacked(r, NULL);
  Containerd__Task__V2__StateRequest sr = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
  sr.id = (char *)id;
  uint8_t buf[256];
  size_t n = containerd__task__v2__state_request__pack(&sr, buf);
  r = ttrpc_call(fd, 7, "State", buf, n, 0);
  ck_assert_ptr_null(r->status);
  Containerd__Task__V2__StateResponse *st =
      containerd__task__v2__state_response__unpack(NULL, r->payload.len, r->payload.data);
  ck_assert_ptr_nonnull(st);
  ck_assert_int_eq(st->status, CONTAINERD__V1__TYPES__STATUS__RUNNING);
  containerd__task__v2__state_response__free_unpacked(st, NULL);
  ttrpc__response__free_unpacked(r, NULL);
  close(fd);
}

/* Read from fd until needle shows (bounded). */
static gboolean read_until(int fd, const char *needle, GString *acc) {
  gint64 end = g_get_monotonic_time() + 300 * G_USEC_PER_SEC;
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

START_TEST(terminal) {
  const char *argv[] = {"ctr",       "-a",    sock,  "run", "--rm", "-t",
                        "--runtime", RUNTIME, IMAGE, "k7",  "sh",   NULL};
  int master = -1;
  struct winsize ws = {.ws_row = 24, .ws_col = 80};
  pid_t pid = forkpty(&master, NULL, NULL, &ws);
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    execvp("ctr", (char **)argv);
    _exit(127);
  }
  g_autoptr(GString) acc = g_string_new(NULL);
  ck_assert_msg(read_until(master, "#", acc), "no prompt: %s", acc->str);
  const char *c1 = "echo $((6*7))-answer; tty\n";
  ck_assert(write(master, c1, strlen(c1)) == (ssize_t)strlen(c1));
  ck_assert_msg(read_until(master, "42-answer", acc), "no answer: %s", acc->str);
  ck_assert_msg(read_until(master, "/dev/pts/", acc), "not a terminal: %s", acc->str);
  const char *c2 = "exit 3\n";
  ck_assert(write(master, c2, strlen(c2)) == (ssize_t)strlen(c2));
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 3, "ctr run -t status %d: %s", status,
                acc->str);
  close(master);
  ck_assert_int_eq(count_vms(), 0);
  wait_no_shims();
  kvt_assert_clean();
}
END_TEST

START_TEST(run_exit_codes) {
  char *out = NULL;
  CTR_OK(&out, "run", "--rm", "--runtime", RUNTIME, IMAGE, "k1", "uname", "-r");
  ck_assert_msg(strstr(out, g_getenv("KATAVM_TEST_KERNEL_RELEASE")), "not the guest kernel: %s",
                out);
  g_free(out);
  ck_assert_int_eq(CTR(NULL, NULL, "run", "--rm", "--runtime", RUNTIME, IMAGE, "k2", "sh", "-c",
                       "echo out; echo err >&2; exit 7"),
                   7);
  /* stdin reaches the process and its end ends it. */
  CTR_IN("through stdin\n", &out, NULL, "run", "--rm", "--runtime", RUNTIME, IMAGE, "k3", "cat");
  ck_assert_msg(strstr(out, "through stdin"), "cat: %s", out);
  g_free(out);
  ck_assert_int_eq(count_vms(), 0);
  wait_no_shims();
  kvt_assert_clean();
}
END_TEST

START_TEST(exec_ps_pause_kill) {
  char *out = NULL;
  CTR_OK(NULL, "run", "-d", "--runtime", RUNTIME, IMAGE, "k4", "sh", "-c",
         "echo started > /tmp/mark; exec sleep 1000");
  ck_assert_int_eq(count_vms(), 1);
  g_autofree char *st = task_status("k4");
  ck_assert_str_eq(st, "RUNNING");
  CTR_OK(&out, "task", "exec", "--exec-id", "e1", "k4", "sh", "-c", "cat /tmp/mark; uname -r");
  ck_assert_msg(strstr(out, "started") && strstr(out, g_getenv("KATAVM_TEST_KERNEL_RELEASE")),
                "exec: %s", out);
  g_free(out);
  ck_assert_int_eq(CTR(NULL, NULL, "task", "exec", "--exec-id", "e2", "k4", "sh", "-c", "exit 3"),
                   3);
  CTR_IN("exec stdin\n", &out, NULL, "task", "exec", "--exec-id", "e3", "k4", "cat");
  ck_assert_msg(strstr(out, "exec stdin"), "exec cat: %s", out);
  g_free(out);
  /* A missing command: exit 127 with a message, as runc gives. */
  ck_assert_int_eq(CTR(NULL, NULL, "task", "exec", "--exec-id", "e4", "k4", "/no/such/cmd"), 127);
  shim_bad_input("k4");
  CTR_OK(&out, "task", "ps", "k4");
  ck_assert_msg(strstr(out, "PID"), "ps: %s", out);
  g_free(out);
  CTR_OK(NULL, "task", "pause", "k4");
  g_free(st);
  st = task_status("k4");
  ck_assert_str_eq(st, "PAUSED");
  CTR_OK(NULL, "task", "resume", "k4");
  g_free(st);
  st = task_status("k4");
  ck_assert_str_eq(st, "RUNNING");
  CTR_OK(NULL, "task", "metrics", "k4");
  CTR_OK(NULL, "task", "kill", "k4");
  for (int i = 0; i < 600; i++) {
    g_free(st);
    st = task_status("k4");
    if (!strcmp(st, "STOPPED"))
      break;
    g_usleep(100 * 1000);
  }
  ck_assert_str_eq(st, "STOPPED");
  CTR_OK(NULL, "task", "rm", "k4");
  CTR_OK(NULL, "container", "rm", "k4");
  wait_no_shims();
  ck_assert_int_eq(count_vms(), 0);
  kvt_assert_clean();
  /* The events containerd received from the shim. */
  g_usleep(500 * 1000);
  g_autofree char *ev = NULL;
  ck_assert(g_file_get_contents(events_file, &ev, NULL, NULL));
  const char *topics[] = {"/tasks/create",       "/tasks/start",  "/tasks/exec-added",
                          "/tasks/exec-started", "/tasks/paused", "/tasks/resumed",
                          "/tasks/exit",         "/tasks/delete"};
  for (size_t i = 0; i < G_N_ELEMENTS(topics); i++)
    ck_assert_msg(strstr(ev, topics[i]), "no %s event in:\n%s", topics[i], ev);
  ck_assert_msg(strstr(ev, "\"exit_status\":143"), "no exit status 143 (SIGTERM) in:\n%s", ev);
}
END_TEST

START_TEST(killed_shim) {
  CTR_OK(NULL, "run", "-d", "--runtime", RUNTIME, IMAGE, "k5", "sleep", "1000");
  ck_assert_int_eq(count_vms(), 1);
  ck_assert_int_eq(shims_settled(1), 1);
  g_autoptr(GArray) shims = find_procs("containerd-shim-katavm-v2", sock);
  ck_assert_int_eq(shims->len, 1);
  kill(g_array_index(shims, int, 0), SIGKILL);
  /* containerd sees the shim go and runs `containerd-shim-katavm-v2 delete`:
   * the VM goes with it. */
  g_autofree char *state = g_build_filename(kvt_root(), "sandboxes", "k5", NULL);
  for (int i = 0; i < 1200 && (count_vms() > 0 || g_file_test(state, G_FILE_TEST_EXISTS)); i++)
    g_usleep(100 * 1000);
  ck_assert_int_eq(count_vms(), 0);
  ck_assert_msg(!g_file_test(state, G_FILE_TEST_EXISTS), "%s left", state);
  g_autofree char *st = task_status("k5");
  ck_assert_str_eq(st, "absent");
  CTR_OK(NULL, "container", "rm", "k5");
  kvt_assert_clean();
}
END_TEST

START_TEST(member_without_sandbox) {
  /* A pod member whose sandbox does not exist: a clear error, no VM, and
   * the shim started for it goes away. */
  g_autofree char *err = NULL;
  int rc = CTR(NULL, &err, "run", "--rm", "--runtime", RUNTIME, "--annotation",
               "io.kubernetes.cri.container-type=container", "--annotation",
               "io.kubernetes.cri.sandbox-id=no-such-pod", IMAGE, "k6", "true");
  ck_assert_int_ne(rc, 0);
  ck_assert_msg(strstr(err, "no-such-pod") && strstr(err, "does not exist"), "error: %s", err);
  ck_assert_int_eq(count_vms(), 0);
  CTR(NULL, NULL, "container", "rm", "k6");
  /* The runtime options' ConfigPath is the shim's configuration: a file
   * with an unknown key fails the create, naming the key. */
  g_autofree char *bad = g_build_filename(work, "bad.conf", NULL);
  ck_assert(g_file_set_contents(bad, "[runtime]\nno_such_key = 1\n", -1, NULL));
  g_clear_pointer(&err, g_free);
  rc = CTR(NULL, &err, "run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", bad, IMAGE,
           "k9", "true");
  ck_assert_int_ne(rc, 0);
  ck_assert_msg(strstr(err, "no_such_key"), "error: %s", err);
  ck_assert_int_eq(count_vms(), 0);
  CTR(NULL, NULL, "container", "rm", "k9");
  wait_no_shims();
  kvt_assert_clean();
}
END_TEST

START_TEST(pod_one_shim_one_vm) {
  /* A pod as CRI annotates it: the sandbox container starts the VM and the
   * pod's shim; a member (its sandbox id annotated) gets the same shim and
   * runs in the same VM. */
  CTR_OK(NULL, "run", "-d", "--runtime", RUNTIME, "--annotation",
         "io.kubernetes.cri.container-type=sandbox", IMAGE, "pod1", "sleep", "1000");
  ck_assert_int_eq(count_vms(), 1);
  ck_assert_int_eq(shims_settled(1), 1);
  char *out = NULL;
  CTR_OK(&out, "run", "--rm", "--runtime", RUNTIME, "--annotation",
         "io.kubernetes.cri.container-type=container", "--annotation",
         "io.kubernetes.cri.sandbox-id=pod1", IMAGE, "m1", "sh", "-c",
         "echo member-$(uname -r); exit 0");
  ck_assert_msg(strstr(out, "member-") && strstr(out, g_getenv("KATAVM_TEST_KERNEL_RELEASE")),
                "member: %s", out);
  g_free(out);
  ck_assert_int_eq(count_vms(), 1);
  ck_assert_int_eq(shims_settled(1), 1);
  ck_assert_int_eq(CTR(NULL, NULL, "run", "--rm", "--runtime", RUNTIME, "--annotation",
                       "io.kubernetes.cri.container-type=container", "--annotation",
                       "io.kubernetes.cri.sandbox-id=pod1", IMAGE, "m2", "sh", "-c", "exit 9"),
                   9);
  ck_assert_int_eq(count_vms(), 1);
  CTR_OK(NULL, "task", "kill", "-s", "SIGKILL", "pod1");
  g_autofree char *st = NULL;
  for (int i = 0; i < 600; i++) {
    g_free(st);
    st = task_status("pod1");
    if (!strcmp(st, "STOPPED"))
      break;
    g_usleep(100 * 1000);
  }
  ck_assert_str_eq(st, "STOPPED");
  CTR_OK(NULL, "task", "rm", "pod1");
  CTR_OK(NULL, "container", "rm", "pod1");
  wait_no_shims();
  ck_assert_int_eq(count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

START_TEST(killed_qemu) {
  /* The VM dies under a running container: containerd gets the task's
   * exit, and removing it cleans up the sandbox. */
  CTR_OK(NULL, "run", "-d", "--runtime", RUNTIME, IMAGE, "k8", "sleep", "1000");
  g_autoptr(GArray) vms = find_procs("/usr/bin/qemu-system", kvt_root());
  ck_assert_int_eq(vms->len, 1);
  kill(g_array_index(vms, int, 0), SIGKILL);
  g_autofree char *st = NULL;
  for (int i = 0; i < 1200; i++) {
    g_free(st);
    st = task_status("k8");
    if (!strcmp(st, "STOPPED"))
      break;
    g_usleep(100 * 1000);
  }
  ck_assert_str_eq(st, "STOPPED");
  CTR_OK(NULL, "task", "rm", "k8");
  CTR_OK(NULL, "container", "rm", "k8");
  wait_no_shims();
  ck_assert_int_eq(count_vms(), 0);
  kvt_assert_clean();
  g_usleep(500 * 1000);
  g_autofree char *ev = NULL;
  ck_assert(g_file_get_contents(events_file, &ev, NULL, NULL));
  ck_assert_msg(strstr(ev, "/tasks/exit {\"container_id\":\"k8\""), "no exit of k8 in:\n%s", ev);
}
END_TEST

/* Task.Update as containerd sends it (ctr 1.6 has no `task update`; CRI's
 * UpdateContainerResources ends here): the OCI LinuxResources as JSON in
 * an Any. Returns the error message, NULL on success. */
static char *task_update(const char *id, const char *resources_json) {
  int fd = shim_connect(id);
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
  any.value.data = (uint8_t *)resources_json;
  any.value.len = strlen(resources_json);
  Containerd__Task__V2__UpdateTaskRequest ur = CONTAINERD__TASK__V2__UPDATE_TASK_REQUEST__INIT;
  ur.id = (char *)id;
  ur.resources = &any;
  g_autofree uint8_t *buf =
      g_malloc(containerd__task__v2__update_task_request__get_packed_size(&ur));
  size_t n = containerd__task__v2__update_task_request__pack(&ur, buf);
  Ttrpc__Response *r = ttrpc_call(fd, 1, "Update", buf, n, 0);
  char *msg = r->status && r->status->code ? g_strdup(r->status->message) : NULL;
  ttrpc__response__free_unpacked(r, NULL);
  close(fd);
  return msg;
}

/* A number after "key": in JSON text (the first one after `after`, when
 * given); -1 when absent. */
static gint64 json_number(const char *text, const char *after, const char *key) {
  const char *p = after ? strstr(text, after) : text;
  g_autofree char *k = g_strdup_printf("\"%s\":", key);
  p = p ? strstr(p, k) : NULL;
  if (!p)
    return -1;
  return g_ascii_strtoll(p + strlen(k), NULL, 10);
}

/* The guest's MemTotal (kB), read in container id. */
static gint64 guest_mem_total(const char *id, const char *exec_id) {
  g_autofree char *out = NULL;
  CTR_OK(&out, "task", "exec", "--exec-id", exec_id, id, "sed", "-n", "s/^MemTotal: *//p",
         "/proc/meminfo");
  return g_ascii_strtoll(out, NULL, 10);
}

static gboolean events_have(const char *needle) {
  for (int i = 0; i < 300; i++) {
    g_autofree char *ev = NULL;
    if (g_file_get_contents(events_file, &ev, NULL, NULL) && strstr(ev, needle))
      return TRUE;
    g_usleep(100 * 1000);
  }
  return FALSE;
}

/* A container that exits while containerd is down: containerd, started
 * again, finds its shim (the shim outlives containerd), sees the task
 * stopped, and `ctr task delete` gives the exit status; no second TaskExit
 * is published for it afterwards. */
START_TEST(exit_while_containerd_is_down) {
  CTR_OK(NULL, "run", "-d", "--runtime", RUNTIME, IMAGE, "r1", "sh", "-c", "sleep 3; exit 5");
  g_autofree char *st0 = task_status("r1");
  ck_assert_str_eq(st0, "RUNNING");
  stop_pid(&events_pid);
  stop_pid(&containerd);
  /* The shim and its VM live on while the container exits. */
  ck_assert_int_eq(count_shims(), 1);
  g_usleep(8 * G_USEC_PER_SEC);
  ck_assert_int_eq(count_shims(), 1);
  start_containerd();
  start_events();
  g_autofree char *st = task_status("r1");
  ck_assert_msg(!strcmp(st, "STOPPED"), "r1 after containerd's restart: %s", st);
  CTR_OK(NULL, "task", "delete", "r1");
  /* The delete carries the status the shim kept (TaskDelete's
   * exit_status). */
  ck_assert_msg(events_have("/tasks/delete {\"container_id\":\"r1\""), "no TaskDelete of r1");
  g_autofree char *dl = NULL;
  ck_assert(g_file_get_contents(events_file, &dl, NULL, NULL));
  const char *del = strstr(dl, "/tasks/delete {\"container_id\":\"r1\"");
  const char *eol = del ? strchr(del, '\n') : NULL;
  g_autofree char *line = del ? g_strndup(del, eol ? (gsize)(eol - del) : strlen(del)) : NULL;
  ck_assert_msg(line && strstr(line, "\"exit_status\":5"), "TaskDelete of r1: %s", line);
  CTR_OK(NULL, "container", "rm", "r1");
  wait_no_shims();
  /* At most the one exit: nothing new after the restart says r1 exited
   * twice. */
  g_usleep(G_USEC_PER_SEC);
  g_autofree char *ev = NULL;
  ck_assert(g_file_get_contents(events_file, &ev, NULL, NULL));
  const char *needle = "/tasks/exit {\"container_id\":\"r1\"";
  int n = 0;
  for (const char *p = ev; (p = strstr(p, needle)); p++)
    n++;
  ck_assert_msg(n <= 1, "%d TaskExit events for r1:\n%s", n, ev);
  ck_assert_int_eq(count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

START_TEST(metrics_update_oom) {
  /* A pod whose VM may grow to 2 vCPUs and 1024 MiB (the configuration's
   * max_vcpus / max_memory_mib), sized 128 MiB by its 100 MiB limit. */
  g_autofree char *conf = g_build_filename(work, "katavm-max.conf", NULL);
  g_autofree char *ktext = g_strdup_printf("[runtime]\nroot = %s\nkernel = %s\ninitrd = %s\n"
                                           "shim = %s\nmax_vcpus = 2\nmax_memory_mib = 1024\n",
                                           kvt_root(), g_getenv("KATAVM_KERNEL"),
                                           g_getenv("KATAVM_INITRD"), g_getenv("KATAVM_SHIM"));
  ck_assert(g_file_set_contents(conf, ktext, -1, NULL));
  CTR_OK(NULL, "run", "-d", "--runtime", RUNTIME, "--runtime-config-path", conf, "--memory-limit",
         "104857600", "--annotation", "io.kubernetes.cri.container-type=sandbox", IMAGE, "k10",
         "sh", "-c", "exec sleep 1000");
  ck_assert_int_eq(count_vms(), 1);
  /* ctr task metrics: the container's cgroup figures from the guest. */
  g_autofree char *m = NULL;
  CTR_OK(&m, "task", "metrics", "--format", "json", "k10");
  g_autofree char *mj = g_strdelimit(g_strdup(m), " \n\t", ' ');
  g_autoptr(GString) compact = g_string_new(NULL);
  for (const char *c = mj; *c; c++)
    if (*c != ' ')
      g_string_append_c(compact, *c);
  ck_assert_msg(json_number(compact->str, "\"memory\":", "usage_limit") == 104857600, "metrics: %s",
                m);
  ck_assert_msg(json_number(compact->str, "\"memory\":", "usage") > 0, "metrics: %s", m);
  ck_assert_msg(json_number(compact->str, "\"pids\":", "current") >= 1, "metrics: %s", m);
  ck_assert_msg(json_number(compact->str, "\"cpu\":", "usage_usec") > 0, "metrics: %s", m);
  /* Update raising the limit beyond the VM's memory: the VM grows (the
   * limits plus the guest's reserve), the guest sees it. */
  gint64 before = guest_mem_total("k10", "m1");
  g_autofree char *uerr = task_update("k10", "{\"memory\":{\"limit\":402653184}}");
  ck_assert_msg(!uerr, "update: %s", uerr);
  gint64 after = guest_mem_total("k10", "m2");
  ck_assert_msg(after > before + 256 * 1024 && after > 384 * 1024,
                "MemTotal %" G_GINT64_FORMAT " kB -> %" G_GINT64_FORMAT " kB", before, after);
  g_clear_pointer(&m, g_free);
  CTR_OK(&m, "task", "metrics", "--format", "json", "k10");
  ck_assert_msg(strstr(m, "402653184"), "metrics after update: %s", m);
  /* A CPU quota of two CPUs: a second vCPU comes online. */
  uerr = task_update("k10", "{\"cpu\":{\"quota\":200000,\"period\":100000}}");
  ck_assert_msg(!uerr, "update cpu: %s", uerr);
  g_autofree char *nproc = NULL;
  CTR_OK(&nproc, "task", "exec", "--exec-id", "m4", "k10", "grep", "-c", "^processor",
         "/proc/cpuinfo");
  ck_assert_msg(atoi(nproc) == 2, "processors: %s", nproc);
  /* Beyond the max: a clear error, the limit stays. */
  uerr = task_update("k10", "{\"memory\":{\"limit\":2147483648}}");
  ck_assert_msg(uerr && strstr(uerr, "max memory") && strstr(uerr, "1024"), "update: %s",
                uerr ? uerr : "(succeeded)");
  g_free(uerr);
  uerr = task_update("k10", "{\"cpu\":{\"quota\":400000,\"period\":100000}}");
  ck_assert_msg(uerr && strstr(uerr, "max"), "update: %s", uerr ? uerr : "(succeeded)");
  g_clear_pointer(&m, g_free);
  CTR_OK(&m, "task", "metrics", "--format", "json", "k10");
  ck_assert_msg(strstr(m, "402653184"), "metrics after a refused update: %s", m);
  /* OOM kills in a member of the pod with a 32 MiB limit: of an exec (seen
   * by the shim's watch while the container runs) and of the init (its
   * TaskOOM before its TaskExit). */
  const char *hog = "a=xxxxxxxxxxxxxxxx; while :; do a=$a$a; done";
  CTR_OK(NULL, "run", "-d", "--runtime", RUNTIME, "--memory-limit", "33554432", "--annotation",
         "io.kubernetes.cri.container-type=container", "--annotation",
         "io.kubernetes.cri.sandbox-id=k10", IMAGE, "k11", "sleep", "1000");
  ck_assert_int_eq(CTR(NULL, NULL, "task", "exec", "--exec-id", "h1", "k11", "sh", "-c", hog), 137);
  ck_assert_msg(events_have("/tasks/oom {\"container_id\":\"k11\"}"), "no TaskOOM of k11");
  g_clear_pointer(&m, g_free);
  CTR_OK(&m, "task", "metrics", "--format", "json", "k11");
  ck_assert_msg(strstr(m, "\"oom_kill\": 1"), "metrics of k11: %s", m);
  ck_assert_int_eq(CTR(NULL, NULL, "run", "--rm", "--runtime", RUNTIME, "--memory-limit",
                       "33554432", "--annotation", "io.kubernetes.cri.container-type=container",
                       "--annotation", "io.kubernetes.cri.sandbox-id=k10", IMAGE, "k12", "sh", "-c",
                       hog),
                   137);
  ck_assert_msg(events_have("/tasks/oom {\"container_id\":\"k12\"}"), "no TaskOOM of k12");
  /* Events reach `ctr events` a moment after ctr run returned. */
  ck_assert_msg(events_have("/tasks/exit {\"container_id\":\"k12\""), "no TaskExit of k12");
  g_autofree char *ev = NULL;
  ck_assert(g_file_get_contents(events_file, &ev, NULL, NULL));
  const char *oom_at = strstr(ev, "/tasks/oom {\"container_id\":\"k12\"}");
  const char *exit_at = strstr(ev, "/tasks/exit {\"container_id\":\"k12\"");
  ck_assert_msg(oom_at && exit_at && oom_at < exit_at,
                "TaskOOM of k12 not before its TaskExit:\n%s", ev);
  ck_assert_int_eq(count_vms(), 1);
  CTR_OK(NULL, "task", "kill", "-s", "SIGKILL", "k11");
  CTR_OK(NULL, "task", "kill", "-s", "SIGKILL", "k10");
  g_autofree char *st = NULL;
  for (int i = 0; i < 600; i++) {
    g_free(st);
    st = task_status("k10");
    g_autofree char *st11 = task_status("k11");
    if (!strcmp(st, "STOPPED") && !strcmp(st11, "STOPPED"))
      break;
    g_usleep(100 * 1000);
  }
  ck_assert_str_eq(st, "STOPPED");
  CTR_OK(NULL, "task", "rm", "k11");
  CTR_OK(NULL, "container", "rm", "k11");
  CTR_OK(NULL, "task", "rm", "k10");
  CTR_OK(NULL, "container", "rm", "k10");
  wait_no_shims();
  ck_assert_int_eq(count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

int main(void) {
  Suite *s = suite_create("containerd");
  TCase *t = tcase_create("containerd");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, run_exit_codes);
  tcase_add_test(t, exec_ps_pause_kill);
  tcase_add_test(t, terminal);
  tcase_add_test(t, pod_one_shim_one_vm);
  tcase_add_test(t, killed_shim);
  tcase_add_test(t, killed_qemu);
  tcase_add_test(t, member_without_sandbox);
  tcase_add_test(t, exit_while_containerd_is_down);
  suite_add_tcase(s, t);
  /* Stats, Update and OOM (CK_RUN_CASE=resources runs them alone). */
  TCase *r = tcase_create("resources");
  tcase_add_checked_fixture(r, setup, teardown);
  tcase_set_timeout(r, 900);
  tcase_add_test(r, metrics_update_oom);
  suite_add_tcase(s, r);
  return kvt_run_suite(s);
}
