/* tests/integration/test_container.c: the pod model on a real VM: several
 * containers from OCI bundles in one sandbox, isolation between them, exec
 * with exact exit codes and stdin, seccomp and memory limits, many
 * concurrent execs and clients, flow control, bad input, and cleanup of
 * containers and their host bind mounts with the sandbox. */
#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

static void set_hostname(JsonObject *spec, gpointer name) {
  json_object_set_string_member(spec, "hostname", name);
  /* The main process idles so that execs find the container running. */
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sleep");
  json_array_add_string_element(a, "100000");
  json_object_set_array_member(proc, "args", a);
}

static void add_seccomp_deny_mkdir(JsonObject *spec, gpointer unknown) {
  set_hostname(spec, "sc");
  JsonObject *linux_ = json_object_get_object_member(spec, "linux");
  g_autoptr(JsonParser) p = json_parser_new();
  g_autofree char *js = g_strdup_printf(
      "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
      "\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"%s],\"action\":\"SCMP_ACT_ERRNO\","
      "\"errnoRet\":1}]}",
      unknown ? ",\"no_such_syscall_x\"" : "");
  ck_assert(json_parser_load_from_data(p, js, -1, NULL));
  json_object_set_member(linux_, "seccomp", json_node_copy(json_parser_get_root(p)));
}

static void add_memory_limit(JsonObject *spec, gpointer unused) {
  set_hostname(spec, "mem");
  JsonObject *linux_ = json_object_get_object_member(spec, "linux");
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(
      p, "{\"memory\":{\"limit\":33554432,\"swap\":33554432},\"pids\":{\"limit\":64}}", -1, NULL));
  json_object_set_member(linux_, "resources", json_node_copy(json_parser_get_root(p)));
}

/* Idles like set_hostname's, in the VM's PID namespace. */
static void vm_pid_ns(JsonObject *spec, gpointer unused) {
  set_hostname(spec, "gamma");
  JsonArray *ns =
      json_object_get_array_member(json_object_get_object_member(spec, "linux"), "namespaces");
  for (guint i = json_array_get_length(ns); i-- > 0;) {
    JsonObject *o = json_array_get_object_element(ns, i);
    if (strcmp(json_object_get_string_member(o, "type"), "pid") == 0)
      json_array_remove_element(ns, i);
  }
}

/* Reads fd to end of file; returns the byte count. */
static gpointer drain_fd(gpointer data) {
  int fd = GPOINTER_TO_INT(data);
  char buf[65536];
  gsize total = 0;
  for (;;) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 60000) <= 0)
      break;
    ssize_t r = read(fd, buf, sizeof buf);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
      break;
    if (r > 0)
      total += (gsize)r;
  }
  return GSIZE_TO_POINTER(total);
}

static char *bundle(const char *name, void (*edit)(JsonObject *, gpointer), gpointer user) {
  g_autofree char *dir = g_build_filename(workdir, name, NULL);
  char *b = kvt_make_rootfs(dir, TRUE);
  if (edit)
    kvt_edit_spec(b, edit, user);
  return b;
}

static void add(katavm_sandbox *sb, const char *id, const char *b) {
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b;
  katavm_error *e = NULL;
  int rc = katavm_container_add(sb, id, &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add %s: %s", id, katavm_error_message(e));
  rc = katavm_container_start(sb, id, &e);
  ck_assert_msg(rc == 0, "start %s: %s", id, katavm_error_message(e));
}

static int count_host_mounts(const char *needle) {
  g_autofree char *m = NULL;
  ck_assert(g_file_get_contents("/proc/self/mountinfo", &m, NULL, NULL));
  int n = 0;
  for (char *p = m; (p = strstr(p, needle)); p++)
    n++;
  return n;
}

/* A "Key:   N kB" line of /proc/PID/status, in KiB. */
static long status_kib(int pid, const char *key) {
  g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
  g_autofree char *st = NULL;
  ck_assert(g_file_get_contents(path, &st, NULL, NULL));
  const char *line = strstr(st, key);
  ck_assert_msg(line != NULL, "%s has no %s", path, key);
  return strtol(line + strlen(key), NULL, 10);
}

/* Reset VmHWM (the peak RSS) to the current RSS. */
static void reset_peak(int pid) {
  g_autofree char *path = g_strdup_printf("/proc/%d/clear_refs", pid);
  FILE *f = fopen(path, "w");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fputs("5", f);
  fclose(f);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* An exec of `dd if=/dev/zero bs=1M count=mib` in cid, without stdin. */
static katavm_process *exec_zeros(katavm_sandbox *sb, const char *cid, int mib) {
  g_autofree char *count = g_strdup_printf("count=%d", mib);
  katavm_exec_config xc;
  katavm_exec_config_init(&xc);
  xc.argv = ARGV("dd", "if=/dev/zero", "bs=1M", count);
  xc.no_stdin = 1;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  int rc = katavm_exec(sb, cid, &xc, &p, &e);
  ck_assert_msg(rc == 0, "exec dd in %s: %s", cid, katavm_error_message(e));
  return p;
}

/* 64 MiB of dd through exec stdout, read by this process: slowly (20 ms
 * per 64 KiB read) for the first slow_mib MiB, with one 3 s pause after
 * stall_mib MiB (0: none). All of it must arrive, and neither the shim's
 * nor this process's peak RSS may grow by 16 MiB: each holds at most one
 * stream window (KV_STREAM_MAX_WINDOW at most) of what the reader did not
 * take, not the tens of MiB the guest could produce meanwhile. */
static void stream_bounded(katavm_sandbox *sb, int shim_pid, int slow_mib, int stall_mib) {
  reset_peak(shim_pid);
  reset_peak(getpid());
  long shim_before = status_kib(shim_pid, "VmRSS:");
  long self_before = status_kib(getpid(), "VmRSS:");
  katavm_process *p = exec_zeros(sb, "plain", 64);
  int fd = katavm_process_stdout_fd(p);
  gsize total = 0;
  gboolean stalled = FALSE;
  char buf[65536];
  for (;;) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    ck_assert_int_gt(poll(&pf, 1, 60000), 0);
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r == 0)
      break;
    if (r < 0 && errno == EAGAIN)
      continue;
    ck_assert_int_gt(r, 0);
    total += (gsize)r;
    if (total < (gsize)slow_mib << 20)
      g_usleep(20000);
    if (stall_mib > 0 && !stalled && total >= (gsize)stall_mib << 20) {
      stalled = TRUE;
      g_usleep(3 * G_USEC_PER_SEC);
    }
  }
  int code = -1;
  ck_assert_int_eq(katavm_process_wait(p, 60000, &code, NULL), 0);
  ck_assert_int_eq(code, 0);
  ck_assert_uint_eq(total, 64u * 1024 * 1024);
  long shim_peak = status_kib(shim_pid, "VmHWM:");
  long self_peak = status_kib(getpid(), "VmHWM:");
  ck_assert_msg(shim_peak - shim_before < 16 * 1024,
                "shim peak RSS grew by %ld KiB while streaming (slow %d, stall %d)",
                shim_peak - shim_before, slow_mib, stall_mib);
  ck_assert_msg(self_peak - self_before < 16 * 1024,
                "client peak RSS grew by %ld KiB while streaming (slow %d, stall %d)",
                self_peak - self_before, slow_mib, stall_mib);
  katavm_process_free(p);
}

/* ---- a raw client of the shim (the protocol by hand, as a buggy or
 * hostile embedder would speak it) ---- */

static void raw_frame(int fd, guint8 type, const char *json, const int *fds, int n_fds) {
  guint32 len = (guint32)strlen(json);
  guint8 hdr[12] = {0x4b, 0x56, type, 0, 0, 0, 0, 0};
  guint32 be = GUINT32_TO_BE(len);
  memcpy(hdr + 8, &be, 4);
  struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)json, len}};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } ctl;
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
  if (n_fds > 0) {
    memset(&ctl, 0, sizeof ctl);
    m.msg_control = ctl.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
  }
  ck_assert_int_eq(sendmsg(fd, &m, MSG_NOSIGNAL), (ssize_t)(sizeof hdr + len));
}

/* Reads frames until the RESPONSE; returns its JSON text. */
static char *raw_response(int fd) {
  for (;;) {
    guint8 hdr[12];
    ck_assert_int_eq(recv(fd, hdr, sizeof hdr, MSG_WAITALL), (ssize_t)sizeof hdr);
    guint32 len;
    memcpy(&len, hdr + 8, 4);
    len = GUINT32_FROM_BE(len);
    ck_assert_uint_le(len, 1 << 20);
    char *body = g_malloc0(len + 1);
    ck_assert_int_eq(recv(fd, body, len, MSG_WAITALL), (ssize_t)len);
    if (hdr[2] == 3 /* RESPONSE */)
      return body;
    g_free(body);
  }
}

/* A connection to a sandbox's shim, HELLO sent. */
static int raw_connect(const char *sandbox) {
  g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, sandbox, -1);
  hash[12] = '\0';
  g_autofree char *path = g_build_filename(kvt_root(), "r", hash, "shim.sock", NULL);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
  strcpy(sa.sun_path, path);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  raw_frame(fd, 1, "{\"proto\":2,\"role\":\"test\",\"version\":\"0\"}", NULL, 0);
  return fd;
}

/* On conn fd: an exec of `true` in `cid` that claims sink fds (the write
 * ends of its output pipes, see lib/shim/relay.c) and sends `fds` with it;
 * returns the shim's answer. */
static char *raw_exec_with_sinks(int fd, const char *cid, const int *fds, int n_fds) {
  g_autofree char *req =
      g_strdup_printf("{\"id\":7,\"method\":\"exec\",\"params\":{\"container_id\":\"%s\","
                      "\"exec_id\":\"raw1\",\"process\":{\"args\":[\"true\"]},"
                      "\"streams\":{\"stdout\":2,\"stderr\":3},\"sink_fds\":true}}",
                      cid);
  raw_frame(fd, 2, req, fds, n_fds);
  return raw_response(fd);
}

START_TEST(pod_with_containers) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *b1 = bundle("b1", set_hostname, "alpha");
  g_autofree char *b2 = bundle("b2", set_hostname, "beta");
  katavm_sandbox_config scfg;
  katavm_sandbox_config_init(&scfg);
  scfg.id = "pod1";
  scfg.memory_mib = 512;
  scfg.vcpus = 2;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_create(rt, &scfg, &sb, &e);
  ck_assert_msg(rc == 0, "create: %s", katavm_error_message(e));
  add(sb, "c1", b1);
  add(sb, "c2", b2);

  /* The pod's containers share one network namespace with its loopback up,
   * as in Kubernetes: c2 fetches a page that c1 serves on 127.0.0.1. */
  {
    g_autofree char *lo = NULL;
    ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("ip", "link", "show", "lo"), NULL, &lo, NULL), 0);
    ck_assert_msg(strstr(lo, "UP"), "lo is not up in the guest: %s", lo);
    ck_assert_int_eq(kvt_exec(sb, "c1",
                              ARGV("sh", "-c",
                                   "mkdir -p /dev/shm/www && echo from-c1 > /dev/shm/www/index.html"
                                   " && httpd -p 127.0.0.1:18081 -h /dev/shm/www"),
                              NULL, NULL, NULL),
                     0);
    g_autofree char *page = NULL, *werr = NULL;
    int rc = kvt_exec(sb, "c2", ARGV("wget", "-q", "-O", "-", "http://127.0.0.1:18081/"), NULL,
                      &page, &werr);
    ck_assert_msg(rc == 0, "wget from c2: %d %s", rc, werr);
    ck_assert_str_eq(page, "from-c1\n");
    /* c1's processes are counted further down. */
    ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("killall", "httpd"), NULL, NULL, NULL), 0);
  }

  /* HOME comes from the rootfs's /etc/passwd when the environment has
   * none: for the container's user (read once, at creation), for another
   * user (read for the exec), and not at all when the exec sets it. */
  {
    katavm_exec_config hc;
    katavm_exec_config_init(&hc);
    hc.argv = ARGV("sh", "-c", "echo $HOME");
    hc.no_stdin = 1;
    const char *const want_home[] = {"/root\n", "/nonexistent\n", "/x\n"};
    for (int i = 0; i < 3; i++) {
      hc.set_user = i == 1;
      hc.uid = hc.gid = i == 1 ? 65534 : 0;
      hc.env = i == 2 ? ARGV("PATH=/bin", "HOME=/x") : NULL;
      katavm_process *hp = NULL;
      katavm_error *he = NULL;
      ck_assert_msg(katavm_exec(sb, "c1", &hc, &hp, &he) == 0, "exec: %s",
                    katavm_error_message(he));
      g_autofree char *home = NULL;
      ck_assert_int_eq(kvt_drain(hp, &home, NULL), 0);
      ck_assert_str_eq(home, want_home[i]);
      katavm_process_free(hp);
    }
  }

  /* The agent holds c1's PATH directories open so that lookups there walk
   * only the last name over 9p (pin_path_dirs() in agent/container.c).
   * What the host changes in the rootfs is still seen (at once over 9p,
   * within virtio-fs's 1 s name timeout: polled, with a bound on a hang):
   * a command added to a directory that did not exist at creation (the
   * busybox rootfs has no /usr/local), the PATH's order, removals, and a
   * pinned directory that is replaced. */
  {
    g_autofree char *root = g_build_filename(b1, "rootfs", NULL);
    g_autofree char *lbin = g_build_filename(root, "usr/local/bin", NULL);
    g_autofree char *lsbin = g_build_filename(root, "usr/local/sbin", NULL);
    g_autofree char *c_lbin = g_build_filename(lbin, "kvt-cmd", NULL);
    g_autofree char *c_lsbin = g_build_filename(lsbin, "kvt-cmd", NULL);
    g_autofree char *c_usrbin = g_build_filename(root, "usr/bin/kvt-cmd", NULL);
    g_autofree char *usrbin = g_build_filename(root, "usr/bin", NULL);
    g_autofree char *usrbin_old = g_build_filename(root, "usr/bin.old", NULL);
    struct {
      const char *make, *text; /* script to add first, or NULL */
      const char *drop;        /* file to remove first, or NULL */
      int code;
      const char *out;
    } steps[] = {
        {NULL, NULL, NULL, 127, ""},
        {c_lbin, "#!/bin/sh\necho local-bin\n", NULL, 0, "local-bin\n"},
        {c_lsbin, "#!/bin/sh\necho local-sbin\n", NULL, 0, "local-sbin\n"},
        {NULL, NULL, c_lsbin, 0, "local-bin\n"},
        {c_usrbin, "#!/bin/sh\necho usr-bin\n", c_lbin, 0, "usr-bin\n"},
        {NULL, NULL, c_usrbin, 127, ""},
    };
    ck_assert_int_eq(g_mkdir_with_parents(lbin, 0755), 0);
    ck_assert_int_eq(g_mkdir_with_parents(lsbin, 0755), 0);
    for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
      if (steps[i].make != NULL) {
        ck_assert(g_file_set_contents(steps[i].make, steps[i].text, -1, NULL));
        ck_assert_int_eq(chmod(steps[i].make, 0755), 0);
      }
      if (steps[i].drop != NULL)
        ck_assert_int_eq(unlink(steps[i].drop), 0);
      g_autofree char *out = NULL;
      int code = -1;
      for (int tries = 0; tries < 120; tries++) {
        g_clear_pointer(&out, g_free);
        code = kvt_exec(sb, "c1", ARGV("kvt-cmd"), NULL, &out, NULL);
        if (code == steps[i].code && strcmp(out, steps[i].out) == 0)
          break;
        g_usleep(250000);
      }
      ck_assert_msg(code == steps[i].code && strcmp(out, steps[i].out) == 0,
                    "step %u: exit %d, stdout \"%s\"", i, code, out);
    }
    /* /usr/bin replaced on the host (moved away, made again with one
     * command): the new directory's command runs, the old one's do not. */
    ck_assert_int_eq(rename(usrbin, usrbin_old), 0);
    ck_assert_int_eq(g_mkdir_with_parents(usrbin, 0755), 0);
    ck_assert(g_file_set_contents(c_usrbin, "#!/bin/sh\necho new-usr-bin\n", -1, NULL));
    ck_assert_int_eq(chmod(c_usrbin, 0755), 0);
    g_autofree char *out = NULL;
    for (int tries = 0; tries < 120; tries++) {
      g_clear_pointer(&out, g_free);
      if (kvt_exec(sb, "c1", ARGV("kvt-cmd"), NULL, &out, NULL) == 0 &&
          !strcmp(out, "new-usr-bin\n"))
        break;
      g_usleep(250000);
    }
    ck_assert_str_eq(out, "new-usr-bin\n");
    g_clear_pointer(&out, g_free);
    ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("sh", "-c", "ls /usr/bin"), NULL, &out, NULL), 0);
    ck_assert_str_eq(out, "kvt-cmd\n");
    /* Put back as it was (the busybox applets under /usr/bin). */
    ck_assert_int_eq(unlink(c_usrbin), 0);
    ck_assert_int_eq(rmdir(usrbin), 0);
    ck_assert_int_eq(rename(usrbin_old, usrbin), 0);
    for (int tries = 0; tries < 120; tries++) {
      g_clear_pointer(&out, g_free);
      if (kvt_exec(sb, "c1", ARGV("which", "env"), NULL, &out, NULL) == 0 &&
          !strcmp(out, "/usr/bin/env\n"))
        break;
      g_usleep(250000);
    }
    ck_assert_str_eq(out, "/usr/bin/env\n");
  }

  /* Hostnames differ (UTS namespaces). */
  g_autofree char *h1 = NULL, *h2 = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("hostname"), NULL, &h1, NULL), 0);
  ck_assert_int_eq(kvt_exec(sb, "c2", ARGV("hostname"), NULL, &h2, NULL), 0);
  ck_assert_str_eq(g_strstrip(h1), "alpha");
  ck_assert_str_eq(g_strstrip(h2), "beta");

  /* Bulk mode (agent/stream.c): while output streams fast, the agent runs
   * SCHED_BATCH (policy 3 in field 41 of stat), and what it forks then
   * still gets SCHED_OTHER (0). c3 has no PID namespace of its own, so its
   * /proc/1 is the agent. dd streams (drained by a thread) while c3 execs
   * read both policies. */
  g_autofree char *b3 = bundle("b3", vm_pid_ns, NULL);
  {
    /* Its /etc/passwd is an absolute symlink: the agent must resolve it
     * inside the rootfs, as the container does, for HOME. */
    g_autofree char *real = g_build_filename(b3, "rootfs", "etc", "passwd.real", NULL);
    g_autofree char *link = g_build_filename(b3, "rootfs", "etc", "passwd", NULL);
    ck_assert(g_file_set_contents(real, "root:x:0:0:root:/in-root:/bin/sh\n", -1, NULL));
    ck_assert_int_eq(unlink(link), 0);
    ck_assert_int_eq(symlink("/etc/passwd.real", link), 0);
  }
  add(sb, "c3", b3);
  {
    g_autofree char *home = NULL;
    ck_assert_int_eq(kvt_exec(sb, "c3", ARGV("sh", "-c", "echo $HOME"), NULL, &home, NULL), 0);
    ck_assert_str_eq(home, "/in-root\n");
  }
  {
    katavm_process *dp = exec_zeros(sb, "c1", 4096);
    GThread *drain = g_thread_new("drain", drain_fd, GINT_TO_POINTER(katavm_process_stdout_fd(dp)));
    /* Three sightings: the second and third were forked after the first
     * had seen bulk mode on (the stream never pauses meanwhile). */
    int seen_batch = 0;
    for (int i = 0; i < 30 && seen_batch < 3; i++) {
      g_autofree char *pol = NULL;
      ck_assert_int_eq(kvt_exec(sb, "c3",
                                ARGV("cut", "-d", " ", "-f41", "/proc/1/stat", "/proc/self/stat"),
                                NULL, &pol, NULL),
                       0);
      g_auto(GStrv) v = g_strsplit(pol, "\n", -1);
      ck_assert_msg(g_strv_length(v) == 3 && strcmp(v[1], "0") == 0,
                    "exec'd process's policy (agent's, own): %s", pol);
      seen_batch += strcmp(v[0], "3") == 0;
    }
    ck_assert_msg(seen_batch == 3,
                  "the agent ran SCHED_BATCH in %d of 30 "
                  "execs while dd streamed",
                  seen_batch);
    ck_assert_int_eq(katavm_process_signal(dp, SIGKILL, NULL), 0);
    ck_assert_uint_gt(GPOINTER_TO_SIZE(g_thread_join(drain)), 0);
    int code = -1;
    ck_assert_int_eq(katavm_process_wait(dp, 60000, &code, NULL), 0);
    ck_assert_int_eq(code, 137);
    katavm_process_free(dp);
    /* 100 ms after the stream stopped the agent is SCHED_OTHER again. */
    g_usleep(500 * 1000);
    g_autofree char *after = NULL;
    ck_assert_int_eq(
        kvt_exec(sb, "c3", ARGV("cut", "-d", " ", "-f41", "/proc/1/stat"), NULL, &after, NULL), 0);
    ck_assert_str_eq(after, "0\n");
  }

  /* The guest's cgroup2 favours moving processes between cgroups (every
   * exec does), agent/mounts.c. */
  {
    g_autofree char *mounts = NULL;
    ck_assert_int_eq(
        kvt_exec(sb, "c3", ARGV("grep", "^cgroup2 ", "/proc/1/mounts"), NULL, &mounts, NULL), 0);
    ck_assert_msg(strstr(mounts, "favordynmods") != NULL, "cgroup2 mount: %s", mounts);
  }

  /* Large stdout and stderr at once come through byte for byte: several
   * windows' worth on each stream, so many spliced frames of either
   * interleave on the channel. */
  g_autofree char *seq_out = NULL, *seq_err = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1",
                            ARGV("sh", "-c", "seq 1 400000 & seq 400001 700000 >&2; wait"), NULL,
                            &seq_out, &seq_err),
                   0);
  g_autoptr(GString) want_out = g_string_new(NULL);
  g_autoptr(GString) want_err = g_string_new(NULL);
  for (int i = 1; i <= 700000; i++)
    g_string_append_printf(i <= 400000 ? want_out : want_err, "%d\n", i);
  ck_assert_uint_eq(strlen(seq_out), want_out->len);
  ck_assert_uint_eq(strlen(seq_err), want_err->len);
  ck_assert(strcmp(seq_out, want_out->str) == 0);
  ck_assert(strcmp(seq_err, want_err->str) == 0);

  /* A file written in one container's rootfs is not in the other. */
  ck_assert_int_eq(
      kvt_exec(sb, "c1", ARGV("sh", "-c", "echo secret > /root-only-c1"), NULL, NULL, NULL), 0);
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("cat", "/root-only-c1"), NULL, NULL, NULL), 0);
  g_autofree char *cerr = NULL;
  ck_assert_int_ne(kvt_exec(sb, "c2", ARGV("cat", "/root-only-c1"), NULL, NULL, &cerr), 0);
  /* ...and it did land in c1's rootfs on the host (a bind mount, no copy). */
  g_autofree char *hostfile = g_build_filename(b1, "rootfs", "root-only-c1", NULL);
  ck_assert(g_file_test(hostfile, G_FILE_TEST_EXISTS));

  /* PID namespace: ps sees the container's own processes only. */
  g_autofree char *ps = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("ps", "-o", "pid,comm"), NULL, &ps, NULL), 0);
  /* Exactly: the header, the container's init, its main process, ps. */
  ck_assert_msg(strstr(ps, "sleep") && !strstr(ps, "katavm-agent") &&
                    g_regex_match_simple("^\\s*1\\s+katavm-init", ps, G_REGEX_MULTILINE, 0),
                "ps in c1: %s", ps);
  g_auto(GStrv) lines = g_strsplit(g_strstrip(ps), "\n", -1);
  ck_assert_msg(g_strv_length(lines) == 4, "ps in c1 sees more than its own: %s", ps);

  /* Exit codes as shells report them; stdin piped through. */
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("sh", "-c", "exit 7"), NULL, NULL, NULL), 7);
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("sh", "-c", "kill -9 $$"), NULL, NULL, NULL), 137);
  g_autofree char *nf = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("/no/such/cmd"), NULL, NULL, &nf), 127);
  ck_assert_msg(strstr(nf, "/no/such/cmd"), "127 message: %s", nf);
  g_autofree char *cat = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c2", ARGV("cat"), "hi\n", &cat, NULL), 0);
  ck_assert_str_eq(cat, "hi\n");

  /* A TTY: the process sees a terminal of the size asked, and resizes. */
  {
    katavm_exec_config tc;
    katavm_exec_config_init(&tc);
    tc.argv = ARGV("sh", "-c", "tty; stty size; read x; stty size");
    tc.tty = 1;
    tc.rows = 30;
    tc.cols = 100;
    katavm_process *tp = NULL;
    rc = katavm_exec(sb, "c1", &tc, &tp, &e);
    ck_assert_msg(rc == 0, "tty exec: %s", katavm_error_message(e));
    ck_assert_int_eq(katavm_process_stderr_fd(tp), -1);
    /* Let the first stty run before resizing. */
    GString *seen = g_string_new(NULL);
    int ofd = katavm_process_stdout_fd(tp);
    char tb[4096];
    while (!strstr(seen->str, "30 100")) {
      struct pollfd pf = {.fd = ofd, .events = POLLIN};
      ck_assert_int_gt(poll(&pf, 1, 60000), 0);
      ssize_t r = read(ofd, tb, sizeof(tb));
      ck_assert_msg(r > 0 || errno == EAGAIN, "tty output ended early: %s", seen->str);
      if (r > 0)
        g_string_append_len(seen, tb, r);
    }
    ck_assert_int_eq(katavm_process_resize(tp, 40, 120, NULL), 0);
    int ifd = katavm_process_stdin_fd(tp);
    ck_assert_int_eq(write(ifd, "\n", 1), 1);
    g_autofree char *rest = NULL;
    ck_assert_int_eq(kvt_drain(tp, &rest, NULL), 0);
    g_string_append(seen, rest);
    ck_assert_msg(strstr(seen->str, "/dev/pts/") && strstr(seen->str, "40 120"), "tty output: %s",
                  seen->str);
    g_string_free(seen, TRUE);
    katavm_process_free(tp);
    /* resize without a terminal is refused */
    katavm_exec_config nc;
    katavm_exec_config_init(&nc);
    nc.argv = ARGV("true");
    ck_assert_int_eq(katavm_exec(sb, "c1", &nc, &tp, NULL), 0);
    rc = katavm_process_resize(tp, 10, 10, &e);
    kvt_assert_error(rc, e, KATAVM_E_STATE, "terminal");
    e = NULL;
    kvt_drain(tp, NULL, NULL);
    katavm_process_free(tp);
  }

  /* Duplicate container id. */
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b1;
  rc = katavm_container_add(sb, "c1", &cc, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_EXISTS, "c1");

  /* Two CLI clients exec at the same time. */
  g_autofree char *cli = g_strdup(g_getenv("KATAVM_CLI"));
  g_autofree char *cmd =
      g_strdup_printf("KATAVM_ROOT=%s %s exec pod1/c1 -- sh -c 'sleep 1; echo one' > %s/o1 & "
                      "KATAVM_ROOT=%s %s exec pod1/c2 -- sh -c 'sleep 1; echo two' > %s/o2 & wait",
                      kvt_root(), cli, workdir, kvt_root(), cli, workdir);
  ck_assert_int_eq(system(cmd), 0);
  g_autofree char *o1p = g_build_filename(workdir, "o1", NULL),
                  *o2p = g_build_filename(workdir, "o2", NULL);
  g_autofree char *o1 = NULL, *o2 = NULL;
  ck_assert(g_file_get_contents(o1p, &o1, NULL, NULL));
  ck_assert(g_file_get_contents(o2p, &o2, NULL, NULL));
  ck_assert_str_eq(o1, "one\n");
  ck_assert_str_eq(o2, "two\n");

  /* 50 concurrent execs, each with its own output and exit code. */
  katavm_process *ps50[50];
  for (int i = 0; i < 50; i++) {
    g_autofree char *script = g_strdup_printf("echo out-%d; exit %d", i, i % 7);
    katavm_exec_config xc;
    katavm_exec_config_init(&xc);
    const char *argv[] = {"sh", "-c", script, NULL};
    xc.argv = argv;
    xc.no_stdin = 1;
    rc = katavm_exec(sb, i % 2 ? "c1" : "c2", &xc, &ps50[i], &e);
    ck_assert_msg(rc == 0, "exec %d: %s", i, katavm_error_message(e));
  }
  for (int i = 0; i < 50; i++) {
    g_autofree char *out = NULL;
    int code = kvt_drain(ps50[i], &out, NULL);
    g_autofree char *want = g_strdup_printf("out-%d\n", i);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(code, i % 7);
    katavm_process_free(ps50[i]);
  }

  /* A client that disconnects mid-stream disturbs nobody. */
  katavm_exec_config xc;
  katavm_exec_config_init(&xc);
  xc.argv = ARGV("sh", "-c", "while true; do echo spam; done");
  xc.no_stdin = 1;
  katavm_process *spam = NULL;
  ck_assert_int_eq(katavm_exec(sb, "c1", &xc, &spam, NULL), 0);
  g_usleep(300000);
  katavm_process_free(spam);
  g_autofree char *after = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c1", ARGV("echo", "still-here"), NULL, &after, NULL), 0);
  ck_assert_str_eq(after, "still-here\n");
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  ck_assert_int_eq(katavm_sandbox_agent_check(sb, &gi, NULL), 0);

  /* The shim takes only the write ends of pipes for a caller's output:
   * none at all, a regular file or a read end is refused by name. Each
   * refused request's fds go with it: the good request that follows on
   * the same connection gets its own pipes, not a leftover. */
  int conn = raw_connect("pod1");
  int pp[2];
  ck_assert_int_eq(pipe(pp), 0);
  g_autofree char *fpath = g_build_filename(workdir, "not-a-pipe", NULL);
  int file = open(fpath, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ck_assert_int_ge(file, 0);
  int read_ends[2] = {pp[0], pp[0]};
  int files[2] = {file, file};
  const struct {
    const int *fds;
    int n;
  } bad[] = {{NULL, 0}, {files, 2}, {read_ends, 2}};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *resp = raw_exec_with_sinks(conn, "c1", bad[i].fds, bad[i].n);
    ck_assert_msg(strstr(resp, "\"error\"") && strstr(resp, "streams.stdout") &&
                      strstr(resp, "write end of a pipe"),
                  "case %zu: %s", i, resp);
  }
  close(file);
  /* Right: the output arrives in our pipe, which the shim then closes. */
  int outp[2], errp[2];
  ck_assert_int_eq(pipe(outp), 0);
  ck_assert_int_eq(pipe(errp), 0);
  int sinks[2] = {outp[1], errp[1]};
  {
    g_autofree char *resp = raw_exec_with_sinks(conn, "c1", sinks, 2);
    ck_assert_msg(strstr(resp, "\"result\""), "%s", resp);
  }
  close(conn);
  close(outp[1]);
  close(errp[1]);
  char c;
  for (int k = 0; k < 2; k++) {
    /* A guard against hanging forever, not a time limit. */
    struct pollfd pf = {.fd = k ? errp[0] : outp[0], .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 120000), 1);
    ck_assert_int_eq(read(pf.fd, &c, 1), 0); /* `true`: EOF, no bytes */
  }
  close(outp[0]);
  close(errp[0]);
  close(pp[0]);
  close(pp[1]);

  /* Remove one container; exec into it fails clearly. */
  rc = katavm_container_remove(sb, "c2", 1, &e);
  ck_assert_msg(rc == 0, "remove c2: %s", katavm_error_message(e));
  katavm_process *p = NULL;
  xc.argv = ARGV("true");
  rc = katavm_exec(sb, "c2", &xc, &p, &e);
  ck_assert_int_lt(rc, 0);
  katavm_error_free(e);
  e = NULL;

  /* Destroying the sandbox kills c1 and unmounts every bind mount. */
  ck_assert_int_gt(count_host_mounts(kvt_root()), 0);
  katavm_sandbox_close(sb);
  rc = katavm_sandbox_destroy(rt, "pod1", &e);
  ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
  ck_assert_int_eq(count_host_mounts(kvt_root()), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

/* Total bytes of the regular files under dir (the host's view). */
static guint64 tree_bytes(const char *dir) {
  g_autofree char *cmd = g_strdup_printf("find %s -type f -printf '%%s\\n'", dir);
  g_autofree char *out = NULL;
  ck_assert(g_spawn_command_line_sync(cmd, &out, NULL, NULL, NULL));
  guint64 total = 0;
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
  for (char **l = lines; *l; l++)
    total += g_ascii_strtoull(*l, NULL, 10);
  return total;
}

/* A container from a plain rootfs (not a bundle), its main process idle. */
static void add_rootfs(katavm_sandbox *sb, const char *id, const char *rootfs,
                       unsigned storage_mib) {
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.rootfs = rootfs;
  cc.argv = ARGV("sleep", "100000");
  cc.storage_size_mib = storage_mib;
  katavm_error *e = NULL;
  int rc = katavm_container_add(sb, id, &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add %s: %s", id, katavm_error_message(e));
  rc = katavm_container_start(sb, id, &e);
  ck_assert_msg(rc == 0, "start %s: %s", id, katavm_error_message(e));
}

/* The value of a "Name:\tvalue" line of /proc/PID/status text. */
static char *status_line(const char *text, const char *name) {
  g_autofree char *key = g_strdup_printf("\n%s:\t", name);
  const char *p = strstr(text, key);
  ck_assert_msg(p != NULL, "no %s in %s", name, text);
  p += strlen(key);
  return g_strndup(p, strcspn(p, "\n"));
}

START_TEST(limits_seccomp_and_bad_bundles) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *plain = bundle("plain", set_hostname, "plain");
  g_autofree char *sc = bundle("sc", add_seccomp_deny_mkdir, NULL);
  g_autofree char *mem = bundle("mem", add_memory_limit, NULL);
  katavm_sandbox_config scfg;
  katavm_sandbox_config_init(&scfg);
  scfg.id = "pod2";
  scfg.memory_mib = 512;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_create(rt, &scfg, &sb, &e);
  ck_assert_msg(rc == 0, "create: %s", katavm_error_message(e));
  add(sb, "plain", plain);
  add(sb, "sc", sc);
  add(sb, "mem", mem);

  /* A container from a plain rootfs gets what `runc spec` gives (only
   * AUDIT_WRITE, KILL and NET_BIND_SERVICE: bits 29, 5 and 10; no new
   * privileges; /proc masked) plus the default seccomp filter, and the
   * pod's lo is up. unshare -U needs no capability, so it is the filter
   * that refuses it: the bundle's container, without a filter, may. */
  g_autofree char *rdir = g_build_filename(workdir, "plainroot", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(rdir, FALSE);
  add_rootfs(sb, "dflt", rootfs, 0);
  {
    g_autofree char *st = NULL;
    ck_assert_int_eq(kvt_exec(sb, "dflt", ARGV("cat", "/proc/self/status"), NULL, &st, NULL), 0);
    const char *want[][2] = {{"CapEff", "0000000020000420"},
                             {"CapPrm", "0000000020000420"},
                             {"CapBnd", "0000000020000420"},
                             {"CapInh", "0000000000000000"},
                             {"CapAmb", "0000000000000000"},
                             {"NoNewPrivs", "1"},
                             {"Seccomp", "2"}};
    for (gsize i = 0; i < G_N_ELEMENTS(want); i++) {
      g_autofree char *v = status_line(st, want[i][0]);
      ck_assert_msg(!strcmp(v, want[i][1]), "%s: %s, want %s", want[i][0], v, want[i][1]);
    }
    g_autofree char *uerr = NULL;
    ck_assert_int_ne(kvt_exec(sb, "dflt", ARGV("unshare", "-U", "true"), NULL, NULL, &uerr), 0);
    ck_assert_msg(strstr(uerr, "Operation not permitted"), "unshare -U in dflt: %s", uerr);
    g_autofree char *perr = NULL;
    ck_assert_msg(kvt_exec(sb, "plain", ARGV("unshare", "-U", "true"), NULL, NULL, &perr) == 0,
                  "unshare -U without a filter: %s", perr);
    /* Calls the filter allows still work: a thread (clone without
     * namespace flags), a fork, a file. */
    ck_assert_int_eq(kvt_exec(sb, "dflt",
                              ARGV("sh", "-c", "(echo sub) | cat >/tmp/f && test -s /tmp/f"), NULL,
                              NULL, NULL),
                     0);
    g_autofree char *masked = NULL, *lo = NULL;
    ck_assert_int_eq(kvt_exec(sb, "dflt", ARGV("sh", "-c", "cat /proc/keys /proc/timer_list"), NULL,
                              &masked, NULL),
                     0);
    ck_assert_str_eq(masked, "");
    ck_assert_int_eq(kvt_exec(sb, "dflt", ARGV("ip", "link", "show", "lo"), NULL, &lo, NULL), 0);
    ck_assert_msg(strstr(lo, "UP"), "lo is not up: %s", lo);
  }

  /* A bounded writable layer: writes past 8 MiB fail with ENOSPC in the
   * container and never reach the host's rootfs, which is only read. */
  g_autofree char *sdir = g_build_filename(workdir, "smallroot", NULL);
  g_autofree char *small = kvt_make_rootfs(sdir, FALSE);
  guint64 host_before = tree_bytes(small);
  add_rootfs(sb, "small", small, 8);
  {
    g_autofree char *derr = NULL, *size = NULL, *cat = NULL;
    ck_assert_int_ne(kvt_exec(sb, "small",
                              ARGV("dd", "if=/dev/zero", "of=/fill", "bs=1M", "count=16"), NULL,
                              NULL, &derr),
                     0);
    ck_assert_msg(strstr(derr, "No space left on device"), "dd past the layer: %s", derr);
    ck_assert_int_eq(kvt_exec(sb, "small", ARGV("stat", "-c", "%s", "/fill"), NULL, &size, NULL),
                     0);
    ck_assert_uint_le(g_ascii_strtoull(size, NULL, 10), 8u << 20);
    /* The layer is the container's root: changes over the rootfs's files
     * show to later execs; freed space can be written again. */
    ck_assert_int_eq(kvt_exec(sb, "small",
                              ARGV("sh", "-c",
                                   "rm /fill && echo layered > /etc/motd && rm /bin/vi && "
                                   "cat /etc/motd && test ! -e /bin/vi"),
                              NULL, &cat, NULL),
                     0);
    ck_assert_str_eq(cat, "layered\n");
    g_autofree char *fill = g_build_filename(small, "fill", NULL);
    g_autofree char *motd = g_build_filename(small, "etc/motd", NULL);
    g_autofree char *vi = g_build_filename(small, "bin/vi", NULL);
    ck_assert(!g_file_test(fill, G_FILE_TEST_EXISTS));
    ck_assert(!g_file_test(motd, G_FILE_TEST_EXISTS));
    ck_assert(g_file_test(vi, G_FILE_TEST_EXISTS | G_FILE_TEST_IS_SYMLINK));
    ck_assert_uint_eq(tree_bytes(small), host_before);
    /* The shim shares this rootfs read-only: not even the guest's kernel
     * can write it. */
    g_autofree char *mi = NULL;
    ck_assert(g_file_get_contents("/proc/self/mountinfo", &mi, NULL, NULL));
    g_auto(GStrv) lines = g_strsplit(mi, "\n", -1);
    int seen = 0;
    for (char **l = lines; *l; l++) {
      g_auto(GStrv) f = g_strsplit(*l, " ", 7);
      if (g_strv_length(f) < 6 || !g_str_has_suffix(f[4], "/containers/small/rootfs"))
        continue;
      seen++;
      ck_assert_msg(g_str_has_prefix(f[5], "ro"), "small's rootfs is shared %s", f[5]);
    }
    ck_assert_int_eq(seen, 1);
  }

  /* seccomp: mkdir is EPERM where the profile says so, and only there. */
  g_autofree char *err = NULL;
  ck_assert_int_ne(kvt_exec(sb, "sc", ARGV("mkdir", "/tmp/x"), NULL, NULL, &err), 0);
  ck_assert_msg(strstr(err, "Operation not permitted"), "mkdir in sc: %s", err);
  ck_assert_int_eq(kvt_exec(sb, "plain", ARGV("mkdir", "/tmp/x"), NULL, NULL, NULL), 0);

  /* 32 MiB limit: allocating 64 MiB is OOM-killed; the sandbox lives on. */
  ck_assert_int_eq(kvt_exec(sb, "mem",
                            ARGV("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"), NULL,
                            NULL, NULL),
                   137);
  ck_assert_int_eq(kvt_exec(sb, "mem", ARGV("true"), NULL, NULL, NULL), 0);
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  ck_assert_int_eq(katavm_sandbox_agent_check(sb, &gi, NULL), 0);

  /* Flow control: 64 MiB through stdout while we read slowly. The guest
   * produces far faster than we read for the first 8 MiB (about 3 s), so
   * without end-to-end credit the shim or this process would have to hold
   * tens of MiB; with it their peak memory stays near the start. */
  char *js = NULL;
  ck_assert_int_eq(katavm_sandbox_inspect(sb, &js, NULL), 0);
  g_autoptr(JsonParser) jp = json_parser_new();
  ck_assert(json_parser_load_from_data(jp, js, -1, NULL));
  katavm_free(js);
  int shim_pid =
      (int)json_object_get_int_member(json_node_get_object(json_parser_get_root(jp)), "shim_pid");
  stream_bounded(sb, shim_pid, 8, 0);
  /* A reader that keeps up at first lets the shim grow the stream's window
   * (up to KV_STREAM_MAX_WINDOW, 8 MiB); when it then stops for 3 s, what
   * the shim holds for it is bounded by that grown window. */
  stream_bounded(sb, shim_pid, 0, 24);

  /* Bad input: each a clear error; nothing left in the sandbox. */
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  g_autofree char *nocfg = g_build_filename(workdir, "nocfg", NULL);
  g_mkdir_with_parents(nocfg, 0755);
  cc.bundle = nocfg;
  rc = katavm_container_add(sb, "bad1", &cc, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "config.json");

  g_autofree char *malformed = bundle("malformed", NULL, NULL);
  g_autofree char *mcfg = g_build_filename(malformed, "config.json", NULL);
  ck_assert(g_file_set_contents(
      mcfg, "{\"process\":{\"args\":\"sh\"},\"root\":{\"path\":\"rootfs\"}}", -1, NULL));
  cc.bundle = malformed;
  rc = katavm_container_add(sb, "bad2", &cc, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "process.args");

  g_autofree char *norootfs = bundle("norootfs", NULL, NULL);
  g_autofree char *nr = g_build_filename(norootfs, "rootfs", NULL);
  g_autofree char *rmcmd = g_strdup_printf("rm -rf %s", nr);
  ck_assert_int_eq(system(rmcmd), 0);
  cc.bundle = norootfs;
  rc = katavm_container_add(sb, "bad3", &cc, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "rootfs");

  ck_assert_int_eq(symlink("/etc", nr), 0);
  rc = katavm_container_add(sb, "bad4", &cc, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "outside the bundle");

  /* The layer's bound: in range, and not on a read-only root. */
  katavm_container_config bc;
  katavm_container_config_init(&bc);
  bc.rootfs = small;
  bc.storage_size_mib = 2u << 20;
  rc = katavm_container_add(sb, "bad6", &bc, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "storage_size_mib 2097152 is out of range");
  bc.storage_size_mib = 8;
  bc.readonly = 1;
  rc = katavm_container_add(sb, "bad7", &bc, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "not with readonly");

  g_autofree char *unk = bundle("unk", add_seccomp_deny_mkdir, "unknown");
  cc.bundle = unk;
  rc = katavm_container_add(sb, "bad5", &cc, NULL, &e);
  ck_assert_int_lt(rc, 0);
  ck_assert_msg(strstr(katavm_error_message(e), "no_such_syscall_x"), "unknown syscall: %s",
                katavm_error_message(e));
  katavm_error_free(e);
  e = NULL;

  /* Exec into a stopped container. */
  ck_assert_int_eq(katavm_container_kill(sb, "plain", SIGKILL, 0, NULL), 0);
  int ec = 0;
  ck_assert_int_eq(katavm_container_wait(sb, "plain", &ec, NULL), 0);
  ck_assert_int_eq(ec, 137);
  katavm_exec_config tc;
  katavm_exec_config_init(&tc);
  tc.argv = ARGV("true");
  katavm_process *p = NULL;
  rc = katavm_exec(sb, "plain", &tc, &p, &e);
  kvt_assert_error(rc, e, KATAVM_E_STATE, "plain");

  char **ids = NULL;
  ck_assert_int_eq(katavm_container_list(sb, &ids, NULL), 0);
  ck_assert_int_eq(g_strv_length(ids), 5);
  katavm_strv_free(ids);
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "pod2", NULL), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(cli_run) {
  g_autofree char *dir = g_build_filename(workdir, "rootfs", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(dir, FALSE);
  g_autofree char *out = NULL, *err = NULL;
  int rc = kvt_cli(NULL, &err, "run", "--rm", rootfs, "--", "sh", "-c", "exit 7", NULL);
  ck_assert_msg(rc == 7, "run exit 7 gave %d: %s", rc, err);
  g_clear_pointer(&err, g_free);
  rc = kvt_cli(NULL, &err, "run", "--rm", rootfs, "--", "sh", "-c", "kill -9 $$", NULL);
  ck_assert_msg(rc == 137, "run kill -9 gave %d: %s", rc, err);
  g_clear_pointer(&err, g_free);
  rc = kvt_cli_stdin("hi\n", &out, &err, "run", "--rm", "-i", rootfs, "--", "cat", NULL);
  ck_assert_msg(rc == 0, "run cat gave %d: %s", rc, err);
  ck_assert_str_eq(out, "hi\n");
  g_clear_pointer(&out, g_free);
  g_clear_pointer(&err, g_free);
  /* --storage-size: a 4 MiB layer takes 4 MiB of an 8 MiB write; the
   * host's rootfs gets none of it. */
  rc = kvt_cli(&out, &err, "run", "--rm", "--storage-size", "4", rootfs, "--", "sh", "-c",
               "dd if=/dev/zero of=/f bs=1M count=8 2>/dev/null; echo $?; stat -c %s /f", NULL);
  ck_assert_msg(rc == 0, "run --storage-size gave %d: %s", rc, err);
  ck_assert_str_eq(out, "1\n4194304\n");
  g_autofree char *f = g_build_filename(rootfs, "f", NULL);
  ck_assert(!g_file_test(f, G_FILE_TEST_EXISTS));
  kvt_assert_clean();
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("container");
  TCase *t = tcase_create("pod");
  tcase_add_checked_fixture(t, work_setup, work_teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, pod_with_containers);
  tcase_add_test(t, limits_seccomp_and_bad_bundles);
  tcase_add_test(t, cli_run);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
