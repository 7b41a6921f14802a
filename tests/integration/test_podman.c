/* tests/integration/test_podman.c: podman (Debian's, with conmon) running
 * containers through katavm-runtime (`--runtime`), in a private podman
 * root started by this test: the guest kernel, exit codes, a terminal with
 * resize, exec, logs, stop of a PID 1 that ignores SIGTERM, kill,
 * pause/unpause, volumes, a pod in one VM, and a published port from a
 * CNI network inside a network namespace this test creates. Real VMs
 * under TCG; an image imported from the busybox rootfs. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define IMAGE "localhost/kvt-busybox"

static char *work, *conf, *netns, *loopdev;
/* PODMAN_NS through `nsenter --net` (the host's mount namespace, so a warm
 * pool can serve it) instead of `ip netns exec` (a mount namespace of its
 * own). */
static gboolean ns_nsenter;

static const char *guest_release(void) {
  return g_getenv("KATAVM_TEST_KERNEL_RELEASE");
}

/* podman's argv with the private root and our runtime; `extra` after. */
static GPtrArray *podman_argv(gboolean in_netns, const char *const *args) {
  GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
  if (in_netns && ns_nsenter) {
    g_ptr_array_add(a, g_strdup("nsenter"));
    g_ptr_array_add(a, g_strdup_printf("--net=/run/netns/%s", netns));
  } else if (in_netns) {
    g_ptr_array_add(a, g_strdup("ip"));
    g_ptr_array_add(a, g_strdup("netns"));
    g_ptr_array_add(a, g_strdup("exec"));
    g_ptr_array_add(a, g_strdup(netns));
  }
  const char *pre[] = {"podman",
                       "--root",
                       NULL,
                       "--runroot",
                       NULL,
                       "--tmpdir",
                       NULL,
                       "--cgroup-manager",
                       "cgroupfs",
                       "--events-backend",
                       "file",
                       "--storage-driver",
                       "overlay",
                       "--network-config-dir",
                       NULL,
                       "--runtime",
                       g_getenv("KATAVM_RUNTIME"),
                       "--runtime-flag",
                       NULL};
  g_autofree char *root = g_build_filename(work, "root", NULL);
  g_autofree char *run = g_build_filename(work, "run", NULL);
  g_autofree char *tmp = g_build_filename(work, "tmp", NULL);
  g_autofree char *cni = g_build_filename(work, "cni", NULL);
  g_autofree char *flag = g_strdup_printf("config=%s", conf);
  pre[2] = root;
  pre[4] = run;
  pre[6] = tmp;
  pre[14] = cni;
  pre[18] = flag;
  for (size_t i = 0; i < G_N_ELEMENTS(pre); i++)
    g_ptr_array_add(a, g_strdup(pre[i]));
  for (const char *const *x = args; *x; x++)
    g_ptr_array_add(a, g_strdup(*x));
  g_ptr_array_add(a, NULL);
  return a;
}

static int podman_full(gboolean in_netns, char **out, char **err, const char *const *args) {
  g_autoptr(GPtrArray) a = podman_argv(in_netns, args);
  int status = -1;
  g_autoptr(GError) e = NULL;
  char *o = NULL, *er = NULL;
  gboolean ok = g_spawn_sync(NULL, (char **)a->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &o,
                             &er, &status, &e);
  ck_assert_msg(ok, "spawn podman: %s", e ? e->message : "?");
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

#define PODMAN(out, err, ...) podman_full(FALSE, out, err, (const char *const[]){__VA_ARGS__, NULL})
#define PODMAN_NS(out, err, ...)                                                                   \
  podman_full(TRUE, out, err, (const char *const[]){__VA_ARGS__, NULL})

static void podman_ok(const char *const *args, char **out) {
  g_autofree char *err = NULL;
  int rc = podman_full(FALSE, out, &err, args);
  ck_assert_msg(rc == 0, "podman %s: exit %d: %s", args[0], rc, err);
}

#define PODMAN_OK(out, ...) podman_ok((const char *const[]){__VA_ARGS__, NULL}, out)

static void setup(void) {
  kvt_setup();
  work = kvt_workdir_new("podman");
  /* The runtime's configuration: this suite's root, kernel, initrd and
   * shim (podman does not pass our environment on to every call). */
  conf = g_build_filename(work, "runtime.conf", NULL);
  g_autofree char *text = g_strdup_printf("[runtime]\nroot = %s\nkernel = %s\ninitrd = %s\n"
                                          "shim = %s\n",
                                          kvt_root(), g_getenv("KATAVM_KERNEL"),
                                          g_getenv("KATAVM_INITRD"), g_getenv("KATAVM_SHIM"));
  ck_assert(g_file_set_contents(conf, text, -1, NULL));
  g_autofree char *rootfs_dir = g_build_filename(work, "img", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rootfs_dir, FALSE);
  g_autoptr(GPtrArray) imp = podman_argv(FALSE, (const char *const[]){"import", "-", IMAGE, NULL});
  g_autofree char *joined = g_strjoinv(" ", (char **)imp->pdata);
  g_autofree char *cmd = g_strdup_printf("tar -C %s -c . | %s >/dev/null", rootfs, joined);
  ck_assert_msg(system(cmd) == 0, "%s", cmd);
  netns = g_strdup_printf("kvt-pm-%d", getpid());
}

static void teardown(void) {
  PODMAN(NULL, NULL, "rm", "-af", "-t", "0");
  PODMAN(NULL, NULL, "pod", "rm", "-af", "-t", "0");
  g_autofree char *root = g_build_filename(work, "root", NULL);
  g_autofree char *run = g_build_filename(work, "run", NULL);
  /* podman's overlay mounts go with its root. */
  g_autofree char *cmd = g_strdup_printf(
      "ip netns del %s 2>/dev/null; grep -o ' %s[^ ]*\\| %s[^ ]*' /proc/self/mounts | "
      "sort -r | xargs -r -n1 umount -l 2>/dev/null",
      netns, root, run);
  int rc = system(cmd);
  (void)rc;
  kvt_loop_drop(&loopdev);
  kvt_workdir_drop(&work);
  g_clear_pointer(&conf, g_free);
  g_clear_pointer(&netns, g_free);
  kvt_teardown();
}

START_TEST(run_exit_logs) {
  char *out = NULL;
  PODMAN_OK(&out, "run", "--rm", "--network", "none", IMAGE, "uname", "-r");
  ck_assert_msg(strstr(out, guest_release()), "not the guest's kernel: %s", out);
  g_free(out);
  ck_assert_int_eq(
      PODMAN(NULL, NULL, "run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 7"), 7);
  /* A PID 1 that ignores SIGTERM: podman stop kills it after its timeout. */
  PODMAN_OK(NULL, "run", "-d", "--name", "stubborn", "--network", "none", IMAGE, "sh", "-c",
            "trap '' TERM; echo ready; while true; do sleep 1; done");
  PODMAN_OK(NULL, "exec", "stubborn", "true");
  PODMAN_OK(&out, "logs", "stubborn");
  ck_assert_msg(strstr(out, "ready"), "logs: %s", out);
  g_free(out);
  PODMAN_OK(&out, "exec", "stubborn", "sh", "-c", "echo exec-ok; uname -r");
  ck_assert_msg(strstr(out, "exec-ok") && strstr(out, guest_release()), "exec: %s", out);
  g_free(out);
  ck_assert_int_eq(PODMAN(NULL, NULL, "exec", "stubborn", "sh", "-c", "exit 5"), 5);
  PODMAN_OK(NULL, "pause", "stubborn");
  PODMAN_OK(&out, "inspect", "--format", "{{.State.Status}}", "stubborn");
  ck_assert_msg(strstr(out, "paused"), "state: %s", out);
  g_free(out);
  PODMAN_OK(NULL, "unpause", "stubborn");
  gint64 t0 = g_get_monotonic_time();
  PODMAN_OK(NULL, "stop", "-t", "2", "stubborn");
  gint64 took = g_get_monotonic_time() - t0;
  /* Killed after the timeout, not before (a generous bound on a hang). */
  ck_assert_msg(took >= 2 * G_USEC_PER_SEC && took < 120 * G_USEC_PER_SEC,
                "stop took %" G_GINT64_FORMAT " us", took);
  PODMAN_OK(&out, "inspect", "--format", "{{.State.ExitCode}}", "stubborn");
  ck_assert_msg(strstr(out, "137"), "exit code after stop: %s", out);
  g_free(out);
  PODMAN_OK(NULL, "rm", "stubborn");
  /* podman kill */
  PODMAN_OK(NULL, "run", "-d", "--name", "victim", "--network", "none", IMAGE, "sleep", "600");
  PODMAN_OK(NULL, "kill", "victim");
  PODMAN_OK(NULL, "wait", "victim");
  PODMAN_OK(NULL, "rm", "victim");
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

/* Read from fd until needle shows (bounded). */
static gboolean read_until(int fd, const char *needle, GString *acc) {
  gint64 end = g_get_monotonic_time() + 180 * G_USEC_PER_SEC;
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

/* Drive `podman ARGS` (a shell on a terminal) through a pty: at the
 * prompt run `cmd` and read each of `want` (NULL-terminated), resize the
 * terminal to rows x cols and see the shell follow (stty size), then
 * `exit code` and check podman's exit status. */
static void drive_terminal(const char *const *args, const char *cmd, const char *const *want,
                           unsigned short rows, unsigned short cols, int code) {
  g_autoptr(GPtrArray) a = podman_argv(FALSE, args);
  int master = -1;
  struct winsize ws = {.ws_row = 24, .ws_col = 80};
  pid_t pid = forkpty(&master, NULL, NULL, &ws);
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    execvp("podman", (char **)a->pdata);
    _exit(127);
  }
  g_autoptr(GString) acc = g_string_new(NULL);
  /* The shell's prompt shows once the VM runs it. */
  ck_assert_msg(read_until(master, "#", acc), "no prompt: %s", acc->str);
  ck_assert(write(master, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
  for (const char *const *w = want; *w; w++)
    ck_assert_msg(read_until(master, *w, acc), "no '%s' in: %s", *w, acc->str);
  struct winsize big = {.ws_row = rows, .ws_col = cols};
  ck_assert_int_eq(ioctl(master, TIOCSWINSZ, &big), 0);
  kill(pid, SIGWINCH);
  g_usleep(G_USEC_PER_SEC);
  g_autofree char *c2 = g_strdup_printf("stty size; exit %d\n", code);
  ck_assert(write(master, c2, strlen(c2)) == (ssize_t)strlen(c2));
  g_autofree char *size = g_strdup_printf("%u %u", rows, cols);
  ck_assert_msg(read_until(master, size, acc), "size not followed: %s", acc->str);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == code, "podman %s -it: status %d",
                args[0], status);
  close(master);
}

START_TEST(terminal) {
  drive_terminal(
      (const char *const[]){"run", "-it", "--rm", "--network", "none", IMAGE, "sh", NULL},
      "echo $((6*7))-answer\n", (const char *const[]){"42-answer", NULL}, 41, 123, 3);
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

/* podman exec -it through conmon (--console-socket, --detach): a terminal
 * in a running container, with resize and the exec's exit status. */
START_TEST(exec_terminal) {
  PODMAN_OK(NULL, "run", "-d", "--name", "box", "--network", "none", IMAGE, "sleep", "1000");
  drive_terminal((const char *const[]){"exec", "-it", "box", "sh", NULL},
                 "echo $((6*7))-exec; tty\n", (const char *const[]){"42-exec", "/dev/pts/", NULL},
                 37, 111, 4);
  /* The container outlives its exec. */
  char *out = NULL;
  PODMAN_OK(&out, "inspect", "--format", "{{.State.Status}}", "box");
  ck_assert_msg(strstr(out, "running"), "state after exec -it: %s", out);
  g_free(out);
  PODMAN_OK(NULL, "rm", "-f", "-t", "0", "box");
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

/* The pid that podman top's output (columns split by blanks) gives in
 * column `col` on the line that shows `cmd`; 0 when none does. */
static guint64 top_pid(const char *out, guint col, const char *cmd) {
  guint64 pid = 0;
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (!strstr(*l, cmd))
      continue;
    g_auto(GStrv) f = g_strsplit_set(g_strstrip(*l), " \t", -1);
    guint k = 0;
    for (char **x = f; *x; x++)
      if (**x && k++ == col)
        g_ascii_string_to_unsigned(*x, 10, 1, G_MAXINT, &pid, NULL);
  }
  return pid;
}

/* podman top: the guest's processes, with the guest's pids (a young PID
 * namespace's: small numbers, not the host stand-in's), and nothing of
 * the host (the stand-in runs katavm-runtime there, under conmon). Plain
 * `podman top` reads /proc where the container's host process is (psgo);
 * with ps(1) options podman runs ps in the container. */
START_TEST(top) {
  PODMAN_OK(NULL, "run", "-d", "--name", "topped", "--network", "none", IMAGE, "sleep", "1000");
  char *out = NULL;
  PODMAN_OK(&out, "inspect", "--format", "{{.State.Pid}}", "topped");
  guint64 host_pid = g_ascii_strtoull(out, NULL, 10);
  g_free(out);
  ck_assert_uint_gt(host_pid, 0);
  const char *const forms[][4] = {
      {"top", "topped", NULL},             /* USER PID PPID ... COMMAND */
      {"top", "topped", "pid", "args"},    /* psgo descriptors */
      {"top", "topped", "-o", "pid,args"}, /* ps(1) in the container */
  };
  const guint col[] = {1, 0, 0};
  guint64 guest_pid = 0;
  for (gsize i = 0; i < G_N_ELEMENTS(forms); i++) {
    const char *args[5] = {forms[i][0], forms[i][1], forms[i][2], forms[i][3], NULL};
    podman_ok(args, &out);
    guint64 pid = top_pid(out, col[i], "sleep 1000");
    ck_assert_msg(pid > 0 && pid < 10 && pid != host_pid,
                  "podman top %s: no sleep 1000 with a guest pid: %s", args[2] ? args[2] : "", out);
    ck_assert_msg(!strstr(out, "katavm-runtime") && !strstr(out, "conmon"),
                  "podman top shows host processes: %s", out);
    g_free(out);
    guest_pid = guest_pid ? guest_pid : pid;
  }
  /* That /proc itself, through the stand-in's root: its listing, a
   * process's cmdline, the guest's /proc/stat, and what it refuses. */
  g_autofree char *fs = g_strdup_printf("/proc/%" G_GUINT64_FORMAT "/root/proc", host_pid);
  g_autofree char *guest = g_strdup_printf("%" G_GUINT64_FORMAT, guest_pid);
  g_autoptr(GDir) d = g_dir_open(fs, 0, NULL);
  ck_assert_msg(d, "cannot list %s", fs);
  gboolean has_stat = FALSE, has_guest = FALSE;
  for (const char *n; (n = g_dir_read_name(d));) {
    has_stat |= !strcmp(n, "stat");
    has_guest |= !strcmp(n, guest);
  }
  ck_assert_msg(has_stat && has_guest, "%s lists no stat or no %s", fs, guest);
  g_autofree char *cmdline = g_build_filename(fs, guest, "cmdline", NULL);
  g_autofree char *stat = g_build_filename(fs, "stat", NULL);
  g_autofree char *ns = g_build_filename(fs, guest, "ns", "pid", NULL);
  g_autofree char *none = g_build_filename(fs, "999999", NULL);
  char *text = NULL;
  gsize len = 0;
  ck_assert(g_file_get_contents(cmdline, &text, &len, NULL));
  static const char argv[] = {'s', 'l', 'e', 'e', 'p', 0, '1', '0', '0', '0', 0};
  ck_assert_msg(len == sizeof argv && !memcmp(text, argv, len), "%s: %s", cmdline, text);
  g_free(text);
  ck_assert(g_file_get_contents(stat, &text, NULL, NULL));
  ck_assert_msg(strstr(text, "\nbtime "), "%s: %s", stat, text);
  g_free(text);
  struct stat st;
  ck_assert(open(cmdline, O_WRONLY) < 0 && errno == EACCES);
  ck_assert(lstat(ns, &st) < 0 && errno == EACCES);
  ck_assert(lstat(none, &st) < 0 && errno == ENOENT);
  PODMAN_OK(NULL, "rm", "-f", "-t", "0", "topped");
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

START_TEST(volumes) {
  g_autofree char *dir = g_build_filename(work, "vol", NULL);
  g_mkdir_with_parents(dir, 0755);
  g_autofree char *hf = g_build_filename(work, "hostfile", NULL);
  g_autofree char *h = g_build_filename(dir, "from-host", NULL);
  ck_assert(g_file_set_contents(hf, "file-content\n", -1, NULL));
  ck_assert(g_file_set_contents(h, "host-wrote\n", -1, NULL));
  g_autofree char *v1 = g_strdup_printf("%s:/data", dir);
  g_autofree char *v2 = g_strdup_printf("%s:/etc/x:ro", hf);
  char *out = NULL, *err = NULL;
  int rc =
      PODMAN(&out, &err, "run", "--rm", "--network", "none", "-v", v1, "-v", v2, IMAGE, "sh", "-c",
             "cat /data/from-host; echo ctr-wrote > /data/from-ctr; cat /etc/x; "
             "echo no > /etc/x");
  ck_assert_msg(rc != 0, "writing the read-only file succeeded: %s", out);
  ck_assert_msg(strstr(out, "host-wrote") && strstr(out, "file-content"), "out: %s", out);
  ck_assert_msg(strstr(err, "Read-only file system"), "err: %s", err);
  g_free(out);
  g_free(err);
  g_autofree char *c = g_build_filename(dir, "from-ctr", NULL);
  g_autofree char *text = NULL;
  ck_assert(g_file_get_contents(c, &text, NULL, NULL));
  ck_assert_str_eq(text, "ctr-wrote\n");
  /* A block device as a volume: podman's bind mount of it reaches the
   * runtime in the bundle, and the disk's file system is mounted. */
  g_autofree char *img = g_build_filename(work, "disk.img", NULL);
  loopdev = kvt_disk_image(img, 32, "on-disk", TRUE);
  g_autofree char *v3 = g_strdup_printf("%s:/db", loopdev);
  rc = PODMAN(&out, &err, "run", "--rm", "--network", "none", "-v", v3, IMAGE, "sh", "-c",
              "cat /db/hello.txt && grep ' /db ' /proc/mounts && echo ctr > /db/w.txt");
  ck_assert_msg(rc == 0 && g_str_has_prefix(out, "on-disk\n") && strstr(out, " /db ext4 rw"),
                "podman -v %s: exit %d: %s %s", v3, rc, out, err);
  g_free(out);
  g_free(err);
  g_autofree char *dbg = g_strdup_printf("debugfs -R 'cat /w.txt' %s", loopdev);
  g_autofree char *w = NULL;
  ck_assert(g_spawn_command_line_sync(dbg, &w, NULL, NULL, NULL));
  ck_assert_msg(strstr(w, "ctr"), "the device holds: %s", w);
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

START_TEST(pod) {
  PODMAN_OK(NULL, "pod", "create", "--name", "kvpod", "--network", "none");
  PODMAN_OK(NULL, "run", "-d", "--pod", "kvpod", "--name", "srv", IMAGE, "sh", "-c",
            "mkdir /www; echo pod-page > /www/index.html; httpd -f -p 8080 -h /www");
  char *out = NULL;
  /* The other member reaches it on 127.0.0.1: one network for the pod. */
  gboolean fetched = FALSE;
  for (int i = 0; i < 60 && !fetched; i++) {
    g_clear_pointer(&out, g_free);
    fetched = PODMAN(&out, NULL, "run", "--rm", "--pod", "kvpod", IMAGE, "wget", "-qO-",
                     "http://127.0.0.1:8080/") == 0 &&
              strstr(out, "pod-page");
  }
  ck_assert_msg(fetched, "no page from the pod's other container: %s", out);
  g_free(out);
  /* The pod's ipc and uts namespaces too, as in Kubernetes: the same
   * namespaces (the links name them by inode), the same hostname, and a
   * POSIX shared-memory object one member makes is the other's. */
  const char *show = "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname";
  char *a = NULL, *b = NULL;
  PODMAN_OK(&a, "exec", "srv", "sh", "-c", show);
  PODMAN_OK(NULL, "exec", "srv", "sh", "-c", "echo shared-ipc > /dev/shm/kvt-obj");
  PODMAN_OK(&b, "run", "--rm", "--pod", "kvpod", IMAGE, "sh", "-c",
            "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname; "
            "cat /dev/shm/kvt-obj");
  ck_assert_msg(strstr(a, "ipc:[") && strstr(a, "uts:["), "namespaces: %s", a);
  ck_assert_msg(g_str_has_prefix(b, a), "namespaces or hostname differ: srv\n%s\nother\n%s", a, b);
  ck_assert_msg(strstr(b + strlen(a), "shared-ipc"), "shm object not shared: %s", b);
  g_free(a);
  g_free(b);
  /* The infra container, the server and the client: one VM. */
  PODMAN_OK(NULL, "exec", "srv", "true");
  ck_assert_int_eq(kvt_count_vms(), 1);
  PODMAN_OK(NULL, "pod", "rm", "-f", "kvpod");
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

/* Names under /run/netns. */
static GHashTable *netns_names(void) {
  GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GDir) d = g_dir_open("/run/netns", 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name(d)))
    g_hash_table_add(h, g_strdup(n));
  return h;
}

/* How many sandboxes of the root were served by the warm pool. */
static int pooled_sandboxes(void) {
  g_autofree char *dir = g_build_filename(kvt_root(), "sandboxes", NULL);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *n;
  int count = 0;
  while (d && (n = g_dir_read_name(d))) {
    g_autofree char *inst = g_build_filename(dir, n, "instance", NULL);
    count += g_file_test(inst, G_FILE_TEST_IS_REGULAR);
  }
  return count;
}

/* podman run -d -p 127.0.0.1:PORT:80 httpd in its CNI bridge network,
 * fetch the page, and *pooled: whether the pod came from the warm pool. */
static void serve_published(const char *name, int port, const char *vol, gboolean *pooled) {
  g_autofree char *pub = g_strdup_printf("127.0.0.1:%d:80", port);
  char *err = NULL;
  int rc = PODMAN_NS(NULL, &err, "run", "-d", "--name", name, "-p", pub, "-v", vol, IMAGE, "httpd",
                     "-f", "-p", "80", "-h", "/www");
  ck_assert_msg(rc == 0, "podman run -p %s: %s", pub, err);
  g_free(err);
  *pooled = pooled_sandboxes() > 0;
  g_autofree char *fetch = g_strdup_printf(
      "ip netns exec %s wget -qO- -T 10 http://127.0.0.1:%d/ 2>/dev/null", netns, port);
  g_autofree char *got = NULL;
  for (int i = 0; i < 60; i++) {
    g_clear_pointer(&got, g_free);
    g_spawn_command_line_sync(fetch, &got, NULL, NULL, NULL);
    if (got && strstr(got, "published-from-vm"))
      break;
    g_usleep(500 * 1000);
  }
  if (!got || !strstr(got, "published-from-vm")) {
    g_autofree char *logs = NULL;
    g_autofree char *cmd = g_strdup_printf("tail -n 40 %s/sandboxes/*/shim.log", kvt_root());
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &logs, NULL,
                 NULL, NULL);
    g_autofree char *ps = NULL, *plog = NULL, *plerr = NULL;
    PODMAN_NS(&ps, NULL, "ps", "-a");
    PODMAN_NS(&plog, &plerr, "logs", name);
    ck_abort_msg("no page on published port %d: %s\nshim logs:\n%s\nps:\n%s\nlogs:\n%s%s", port,
                 got, logs, ps, plog, plerr);
  }
  ck_assert_int_eq(PODMAN_NS(NULL, NULL, "rm", "-f", "-t", "0", name), 0);
}

START_TEST(published_port) {
  /* podman run inside `ip netns exec` leaves its container's netns file
   * behind after `podman rm` (unmounted, not unlinked): take it away. */
  g_autoptr(GHashTable) before = netns_names();
  /* podman, its CNI bridge and iptables live in a namespace of our own. */
  g_autofree char *cmd =
      g_strdup_printf("ip netns add %s && ip netns exec %s ip link set lo up", netns, netns);
  ck_assert(system(cmd) == 0);
  g_autofree char *www = g_build_filename(work, "www", NULL);
  g_mkdir_with_parents(www, 0755);
  g_autofree char *page = g_build_filename(www, "index.html", NULL);
  ck_assert(g_file_set_contents(page, "published-from-vm\n", -1, NULL));
  g_autofree char *vol = g_strdup_printf("%s:/www:ro", www);
  /* A warm pool of the runtime's root runs. podman under `ip netns exec`
   * mounts its overlays in a mount namespace of its own, which the pooled
   * VM's shim cannot see: that pod boots cold. */
  katavm_runtime *rt = kvt_runtime();
  kvt_pool_start(rt, 1, 1, 256);
  g_autofree char *x = kvt_pool_wait_ready(rt);
  gboolean pooled = TRUE;
  serve_published("web", 18080, vol, &pooled);
  ck_assert_msg(!pooled, "a pod of another mount namespace came from the pool");
  g_autofree char *still = kvt_pool_ready_vm(rt);
  ck_assert_msg(!g_strcmp0(still, x), "pooled VM %s was used or lost (%s)", x, still);
  /* In the pool's mount namespace, the pod (its CNI network namespace
   * included) is served by the pooled VM. */
  ns_nsenter = TRUE;
  serve_published("web2", 18081, vol, &pooled);
  ns_nsenter = FALSE;
  ck_assert_msg(pooled, "the pod in podman's CNI network was not served by pooled VM %s", x);
  katavm_error *e = NULL;
  ck_assert_msg(katavm_pool_remove(rt, &e) == 0, "pool rm: %s", katavm_error_message(e));
  katavm_runtime_free(rt);
  g_autoptr(GHashTable) after = netns_names();
  GHashTableIter it;
  gpointer name;
  g_hash_table_iter_init(&it, after);
  while (g_hash_table_iter_next(&it, &name, NULL))
    if (!g_hash_table_contains(before, name) && g_str_has_prefix(name, "netns-")) {
      g_autofree char *path = g_build_filename("/run/netns", name, NULL);
      umount2(path, MNT_DETACH);
      unlink(path);
    }
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_assert_clean();
}
END_TEST

int main(void) {
  Suite *s = suite_create("podman");
  TCase *t = tcase_create("podman");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, run_exit_logs);
  tcase_add_test(t, terminal);
  tcase_add_test(t, volumes);
  tcase_add_test(t, published_port);
  suite_add_tcase(s, t);
  /* One case each (CK_RUN_CASE=exec picks one). */
  TCase *x = tcase_create("exec");
  tcase_add_checked_fixture(x, setup, teardown);
  tcase_set_timeout(x, 900);
  tcase_add_test(x, exec_terminal);
  tcase_add_test(x, top);
  suite_add_tcase(s, x);
  TCase *pc = tcase_create("pod");
  tcase_add_checked_fixture(pc, setup, teardown);
  tcase_set_timeout(pc, 900);
  tcase_add_test(pc, pod);
  suite_add_tcase(s, pc);
  return kvt_run_suite(s);
}
