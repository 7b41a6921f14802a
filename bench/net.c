/* bench/net.c: what a sandbox's network costs over the VM and the host.
 *
 *   net [-n ROUNDS] [--mib M]      (default 3 rounds, a 16 MiB download)
 *
 * In one run, so that every side sees the same machine load, against the
 * same busybox httpd serving a file of M MiB (throughput: one download per
 * round) and a 3-byte file (request/response latency: 10 fresh-connection
 * GETs per round), from the bench process:
 *
 * From a network namespace `client`, joined to `pod` by veth pairs:
 * - sandbox: a katavm sandbox created in pod (tcfilter: tap + tc mirred),
 *   httpd in its container;
 * - VMM floor: a plain QEMU booting the same kernel and initrd (plus an
 *   appended cpio with busybox and a script, rdinit=), its virtio-net on
 *   a tap on a bridge in pod with the veth, httpd as the guest's init;
 * - host floor: httpd as a plain process in pod.
 * From the host's namespace, through 127.0.0.1 (user-mode networking):
 * - user: a katavm sandbox with net "user" (QEMU's slirp) and -p;
 * - slirp floor: a plain QEMU with -netdev user,hostfwd=;
 * - passt: a plain QEMU with -netdev stream to a passt process (-t).
 *
 * Rounds alternate the order of the sides. Prints medians (min..max), the
 * ratios of the sandbox against both floors and of user mode against
 * slirp and passt, and the load average; asserts nothing. Everything it
 * makes (namespaces, sandboxes, QEMUs, passt, httpd) is removed at the end,
 * also on failure. Needs root, ip, cpio, busybox (static) and passt.
 * Environment: as for any libkatavm program (bench/README.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <katavm/katavm.h>

#include <glib.h>

#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_SIDES 6
#define LAT_PER_ROUND 10
#define READY_TIMEOUT_S 300

static char ns_cli[32], ns_pod[32], tmpdir[64], sb_tc[32], sb_user[32];
static katavm_runtime *rt;
static pid_t kids[8];
static int n_kids;
static int cli_fd = -1; /* the client namespace */

static int sh(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static int sh(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  int status = -1;
  g_autofree char *err = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err,
                    &status, NULL))
    return -1;
  if (!g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "net: `%s` failed: %s", cmd, err ? err : "");
    return -1;
  }
  return 0;
}

static void cleanup(void) {
  for (int i = 0; i < n_kids; i++)
    if (kids[i] > 0) {
      kill(-kids[i], SIGKILL);
      kill(kids[i], SIGKILL);
      waitpid(kids[i], NULL, 0);
    }
  n_kids = 0;
  if (rt) {
    katavm_sandbox_destroy(rt, sb_tc, NULL);
    katavm_sandbox_destroy(rt, sb_user, NULL);
    katavm_runtime_free(rt);
    rt = NULL;
  }
  if (*ns_cli)
    sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; ip link del kvbntap 2>/dev/null;"
       " rm -rf %s %s.passt.sock; true",
       ns_cli, ns_pod, tmpdir, tmpdir);
}

static void on_signal(int sig) {
  (void)sig;
  cleanup();
  _exit(130);
}

static pid_t spawn(const char *const *argv, const char *log) {
  double t0;
  pid_t pid = spawn_qemu("net", argv, log, &t0);
  if (pid > 0)
    kids[n_kids++] = pid;
  return pid;
}

/* ---- the client ---- */

typedef struct {
  int fd, err;
} SockIn;

static gpointer sock_thread(gpointer p) {
  SockIn *s = p;
  if (setns(cli_fd, CLONE_NEWNET) < 0) {
    s->err = errno;
    return NULL;
  }
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return NULL;
}

/* A TCP socket in the client namespace (in_client) or here. */
static int client_socket(gboolean in_client) {
  if (!in_client)
    return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SockIn s = {.fd = -1};
  g_thread_join(g_thread_new("net-client", sock_thread, &s));
  return s.fd;
}

/* GET path from ip:port; the body's byte count, or -1. */
static gint64 http_get(gboolean in_client, const char *ip, guint port, const char *path) {
  int fd = client_socket(in_client);
  if (fd < 0)
    return -1;
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((guint16)port)};
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  g_autofree char *req = g_strdup_printf("GET %s HTTP/1.0\r\n\r\n", path);
  if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
    close(fd);
    return -1;
  }
  static char buf[256 * 1024];
  gint64 body = -1;
  GString *head = g_string_new(NULL);
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    if (body < 0) {
      g_string_append_len(head, buf, n);
      char *e = strstr(head->str, "\r\n\r\n");
      if (e) {
        if (!g_str_has_prefix(head->str, "HTTP/1.") || !strstr(head->str, " 200 "))
          break;
        body = (gint64)head->len - (e + 4 - head->str);
      }
    } else {
      body += n;
    }
  }
  g_string_free(head, TRUE);
  close(fd);
  return n < 0 ? -1 : body;
}

/* ---- the sides ---- */

typedef struct {
  const char *name;
  gboolean in_client;
  const char *ip;
  guint port;
  double mbps[64], lat_ms[64 * LAT_PER_ROUND];
  guint n_mbps, n_lat;
} Side;

static gboolean wait_ready(Side *s) {
  double t0 = now_s();
  while (now_s() - t0 < READY_TIMEOUT_S) {
    if (http_get(s->in_client, s->ip, s->port, "/small") == 3)
      return TRUE;
    g_usleep(G_USEC_PER_SEC / 2);
  }
  fprintf(stderr, "net: %s (%s:%u) never answered\n", s->name, s->ip, s->port);
  return FALSE;
}

static gboolean measure(Side *s, guint mib) {
  double t0 = now_s();
  gint64 got = http_get(s->in_client, s->ip, s->port, "/big");
  double dt = now_s() - t0;
  if (got != (gint64)mib * 1024 * 1024) {
    fprintf(stderr, "net: %s: download got %" G_GINT64_FORMAT " bytes\n", s->name, got);
    return FALSE;
  }
  s->mbps[s->n_mbps++] = (double)got / dt / 1e6;
  for (int i = 0; i < LAT_PER_ROUND; i++) {
    t0 = now_s();
    if (http_get(s->in_client, s->ip, s->port, "/small") != 3)
      return FALSE;
    s->lat_ms[s->n_lat++] = (now_s() - t0) * 1e3;
  }
  return TRUE;
}

static char *www_cmd(guint mib) {
  /* From the container's /dev/shm (tmpfs), as the floors serve from
   * memory: its /tmp is the rootfs, shared from the host. */
  return g_strdup_printf("W=/dev/shm/www; mkdir -p $W && dd if=/dev/zero of=$W/big bs=1M count=%u "
                         "2>/dev/null && echo hi > $W/small && exec httpd -f -p 80 -h $W",
                         mib);
}

static gboolean sandbox_up(const char *id, const char *netns, const char *publish,
                           const char *rootfs, guint mib, QemuArgs *qa) {
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.memory_mib = 256;
  cfg.netns = netns;
  const char *pub[] = {publish, NULL};
  if (publish) {
    cfg.net = "user";
    cfg.publish = pub;
  }
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_create(rt, &cfg, &sb, &e) < 0) {
    fprintf(stderr, "net: create %s: %s\n", id, katavm_error_message(e));
    return FALSE;
  }
  g_autofree char *cmd = www_cmd(mib);
  const char *argv[] = {"sh", "-c", cmd, NULL};
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.rootfs = rootfs;
  cc.argv = argv;
  katavm_process *p = NULL;
  gboolean ok =
      katavm_container_add(sb, id, &cc, &p, &e) == 0 && katavm_container_start(sb, id, &e) == 0;
  if (!ok)
    fprintf(stderr, "net: container in %s: %s\n", id, katavm_error_message(e));
  katavm_process_free(p);
  if (ok && qa) {
    char *js = NULL;
    gint64 qpid = 0;
    ok = katavm_sandbox_inspect(sb, &js, &e) == 0 && json_top_int(js, "qemu_pid", &qpid) &&
         qemu_args_read((pid_t)qpid, qa);
    katavm_free(js);
  }
  katavm_sandbox_close(sb);
  return ok;
}

/* The same kernel and initrd, with busybox and an init script appended. */
static char *floor_initrd(const QemuArgs *qa, guint mib) {
  g_autofree char *dir = g_build_filename(tmpdir, "extra", NULL);
  g_autofree char *out = g_build_filename(tmpdir, "floor-initrd.cpio", NULL);
  g_autofree char *init = g_build_filename(dir, "bench-init", NULL);
  g_autofree char *script = g_strdup_printf(
      "#!/bin/busybox sh\n"
      "/bin/busybox --install -s /bin\n"
      "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n"
      "M=/lib/modules/$(uname -r)/kernel\n"
      "for m in drivers/virtio/virtio_ring drivers/virtio/virtio "
      "drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci_legacy_dev "
      "drivers/virtio/virtio_pci net/core/failover drivers/net/net_failover "
      "drivers/net/virtio_net; do insmod $M/$m.ko 2>/dev/null; done\n"
      "sleep 1; ip link set lo up; ip addr add $bench_ip dev eth0; ip link set eth0 up\n"
      "[ -n \"$bench_gw\" ] && ip route add default via $bench_gw\n"
      "if [ -n \"$bench_cg\" ]; then mkdir -p /sys/fs/cgroup; mount -t cgroup2 none "
      "/sys/fs/cgroup; "
      "echo +memory +pids +cpu > /sys/fs/cgroup/cgroup.subtree_control; mkdir /sys/fs/cgroup/c1; "
      "echo $$ > /sys/fs/cgroup/c1/cgroup.procs; fi\n"
      "mkdir -p /tmp/www; dd if=/dev/zero of=/tmp/www/big bs=1M count=%u 2>/dev/null\n"
      "echo hi > /tmp/www/small; if [ -n \"$bench_ns\" ]; then unshare -f -p -m -u -i httpd -f -p "
      "80 -h /tmp/www & else httpd -p 80 -h /tmp/www; fi\n"
      "while true; do sleep 3600; done\n",
      mib);
  if (sh("mkdir -p %s/bin %s/proc %s/sys && cp /bin/busybox %s/bin/busybox", dir, dir, dir, dir) <
          0 ||
      !g_file_set_contents(init, script, -1, NULL) || chmod(init, 0755) < 0 ||
      sh("cd %s && find . | cpio -o -H newc 2>/dev/null > ../extra.cpio && cat %s ../extra.cpio > "
         "%s",
         dir, qa->initrd, out) < 0)
    return NULL;
  return g_steal_pointer(&out);
}

static pid_t floor_qemu(const QemuArgs *qa, const char *initrd, const char *append_extra,
                        const char *netdev, const char *name) {
  const char *more = g_getenv("BENCH_NET_FLOOR_APPEND");
  g_autofree char *append =
      g_strdup_printf("%s rdinit=/bench-init %s %s", qa->append, append_extra, more ? more : "");
  g_autofree char *log = g_strdup_printf("%s/%s.log", tmpdir, name);
  const char *argv[] = {qa->qemu,
                        "-machine",
                        "q35",
                        "-accel",
                        qa->accel,
                        "-cpu",
                        qa->cpu,
                        "-m",
                        qa->mem,
                        "-smp",
                        qa->smp,
                        "-nodefaults",
                        "-no-user-config",
                        "-display",
                        "none",
                        "-serial",
                        "file:/dev/null",
                        "-kernel",
                        qa->kernel,
                        "-initrd",
                        initrd,
                        "-append",
                        append,
                        "-netdev",
                        netdev,
                        "-device",
                        "virtio-net-pci,netdev=n0,mac=52:54:00:b0:00:01",
                        NULL};
  /* BENCH_NET_FLOOR_ARGS: extra QEMU arguments for the floors, to try one
   * of the sandbox's settings on the floor. */
  const char *extra = g_getenv("BENCH_NET_FLOOR_ARGS");
  if (extra && *extra) {
    g_auto(GStrv) ex = g_strsplit_set(extra, " ", -1);
    g_autoptr(GPtrArray) all = g_ptr_array_new();
    for (guint i = 0; argv[i]; i++)
      g_ptr_array_add(all, (gpointer)argv[i]);
    for (guint i = 0; ex[i]; i++)
      if (*ex[i])
        g_ptr_array_add(all, ex[i]);
    g_ptr_array_add(all, NULL);
    return spawn((const char *const *)all->pdata, log);
  }
  return spawn(argv, log);
}

static guint free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static gboolean setup_all(Side *sides, guint mib) {
  int pid = (int)getpid();
  g_snprintf(ns_cli, sizeof ns_cli, "kvbn-cli-%d", pid);
  g_snprintf(ns_pod, sizeof ns_pod, "kvbn-pod-%d", pid);
  g_snprintf(tmpdir, sizeof tmpdir, "/tmp/kvbn-%d", pid);
  g_snprintf(sb_tc, sizeof sb_tc, "bnet-tc-%d", pid);
  g_snprintf(sb_user, sizeof sb_user, "bnet-user-%d", pid);
  g_autofree char *rootfs = g_build_filename(tmpdir, "rootfs", NULL);
  g_autofree char *mk = mkrootfs_path();
  /* Veth a: the sandbox's (the only one with an address at its create). */
  if (sh("mkdir -p %s && %s --writable %s", tmpdir, mk, rootfs) < 0 ||
      sh("ip netns add %s && ip netns add %s && ip -n %s link set lo up && ip -n %s link set lo up",
         ns_cli, ns_pod, ns_cli, ns_pod) < 0 ||
      sh("ip link add kvbna netns %s type veth peer name kvbna netns %s && "
         "ip -n %s addr add 10.81.0.1/24 dev kvbna && ip -n %s link set kvbna up && "
         "ip -n %s addr add 10.81.0.2/24 dev kvbna && ip -n %s link set kvbna up",
         ns_cli, ns_pod, ns_cli, ns_cli, ns_pod, ns_pod) < 0)
    return FALSE;
  g_autofree char *pod_path = g_strdup_printf("/run/netns/%s", ns_pod);
  g_autofree char *cli_path = g_strdup_printf("/run/netns/%s", ns_cli);
  cli_fd = open(cli_path, O_RDONLY | O_CLOEXEC);
  QemuArgs qa = {0};
  guint uport = free_port();
  g_autofree char *pub = g_strdup_printf("127.0.0.1:%u:80", uport);
  if (cli_fd < 0 || !sandbox_up(sb_tc, pod_path, NULL, rootfs, mib, &qa) ||
      !sandbox_up(sb_user, NULL, pub, rootfs, mib, NULL))
    return FALSE;
  sides[0] = (Side){.name = "sandbox (tcfilter)", .in_client = TRUE, .ip = "10.81.0.2", .port = 80};
  sides[3] = (Side){.name = "user (katavm, slirp)", .ip = "127.0.0.1", .port = uport};

  /* The VMM floor: a tap on a bridge in pod with veth b. */
  g_autofree char *initrd = floor_initrd(&qa, mib);
  if (!initrd || sh("ip link add kvbnb netns %s type veth peer name kvbnb netns %s && "
                    "ip -n %s addr add 10.82.0.1/24 dev kvbnb && ip -n %s link set kvbnb up && "
                    "ip tuntap add dev kvbntap mode tap",
                    ns_cli, ns_pod, ns_cli, ns_cli) < 0)
    return FALSE;
  if (floor_qemu(&qa, initrd, "bench_ip=10.82.0.2/24",
                 "tap,id=n0,ifname=kvbntap,script=no,downscript=no", "vmm-floor") < 0)
    return FALSE;
  g_usleep(2 * G_USEC_PER_SEC); /* QEMU opens the tap by name here first */
  if (sh("ip link set kvbntap netns %s && ip -n %s link add br0 type bridge && "
         "ip -n %s link set kvbntap master br0 up && ip -n %s link set kvbnb master br0 up && "
         "ip -n %s link set br0 up",
         ns_pod, ns_pod, ns_pod, ns_pod, ns_pod) < 0)
    return FALSE;
  sides[1] =
      (Side){.name = "VMM floor (tap+bridge)", .in_client = TRUE, .ip = "10.82.0.2", .port = 80};

  /* The host floor: httpd in pod on veth c. */
  g_autofree char *www = g_build_filename(tmpdir, "www", NULL);
  g_autofree char *host_www = g_strdup_printf("10.83.0.2:80");
  if (sh("ip link add kvbnc netns %s type veth peer name kvbnc netns %s && "
         "ip -n %s addr add 10.83.0.1/24 dev kvbnc && ip -n %s link set kvbnc up && "
         "ip -n %s addr add 10.83.0.2/24 dev kvbnc && ip -n %s link set kvbnc up && "
         "mkdir -p %s && dd if=/dev/zero of=%s/big bs=1M count=%u 2>/dev/null && "
         "echo hi > %s/small",
         ns_cli, ns_pod, ns_cli, ns_cli, ns_pod, ns_pod, www, www, mib, www) < 0)
    return FALSE;
  const char *hargv[] = {"/usr/bin/ip",  "netns", "exec", ns_pod,
                         "/bin/busybox", "httpd", "-f",   "-p",
                         host_www,       "-h",    www,    NULL};
  g_autofree char *hlog = g_build_filename(tmpdir, "httpd.log", NULL);
  if (spawn(hargv, hlog) < 0)
    return FALSE;
  sides[2] =
      (Side){.name = "host floor (process)", .in_client = TRUE, .ip = "10.83.0.2", .port = 80};

  /* User mode floors: plain QEMU with slirp, and with passt. */
  guint sport = free_port(), pport = free_port();
  g_autofree char *slirp = g_strdup_printf("user,id=n0,hostfwd=tcp:127.0.0.1:%u-:80", sport);
  if (floor_qemu(&qa, initrd, "bench_ip=10.0.2.15/24 bench_gw=10.0.2.2", slirp, "slirp") < 0)
    return FALSE;
  sides[4] = (Side){.name = "slirp floor (plain QEMU)", .ip = "127.0.0.1", .port = sport};
  /* passt runs as nobody: its socket goes where nobody may write. */
  g_autofree char *psock = g_strdup_printf("%s.passt.sock", tmpdir);
  g_autofree char *pfw = g_strdup_printf("127.0.0.1/%u:80", pport);
  g_autofree char *plog = g_build_filename(tmpdir, "passt.log", NULL);
  const char *pargv[] = {
      "/usr/bin/passt", "-f", "-q", "-s", psock, "-a", "10.0.2.15", "-n", "24", "-g",
      "10.0.2.2",       "-t", pfw,  NULL};
  if (spawn(pargv, plog) < 0)
    return FALSE;
  for (int i = 0; i < 50 && !g_file_test(psock, G_FILE_TEST_EXISTS); i++)
    g_usleep(100000);
  g_autofree char *stream =
      g_strdup_printf("stream,id=n0,server=off,addr.type=unix,addr.path=%s", psock);
  if (floor_qemu(&qa, initrd, "bench_ip=10.0.2.15/24 bench_gw=10.0.2.2", stream, "passt") < 0)
    return FALSE;
  sides[5] = (Side){.name = "passt (plain QEMU)", .ip = "127.0.0.1", .port = pport};
  qemu_args_clear(&qa);
  for (int i = 0; i < N_SIDES; i++)
    if (!wait_ready(&sides[i]))
      return FALSE;
  return TRUE;
}

static double med(const double *v, guint n) {
  return stats(v, n).median;
}

int main(int argc, char **argv) {
  guint rounds = 3, mib = 16;
  for (int i = 1; i < argc; i++) {
    int v = i + 1 < argc ? atoi(argv[i + 1]) : 0;
    if (!strcmp(argv[i], "-n") && v > 0) {
      rounds = (guint)MIN(v, 64);
      i++;
    } else if (!strcmp(argv[i], "--mib") && v > 0) {
      mib = (guint)MIN(v, 1024);
      i++;
    } else {
      fprintf(stderr, "usage: net [-n ROUNDS] [--mib M]\n");
      return 2;
    }
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  katavm_error *e = NULL;
  if (katavm_runtime_new(&rt, &e) < 0) {
    fprintf(stderr, "net: %s\n", katavm_error_message(e));
    return 1;
  }
  g_autofree char *load0 = loadavg();
  static Side sides[N_SIDES];
  gboolean ok = setup_all(sides, mib);
  const char *hold = g_getenv("KVBN_DEBUG_HOLD");
  if (ok && hold) {
    fprintf(stderr, "net: held (%s, %s) until %s is removed\n", ns_cli, ns_pod, hold);
    while (g_file_test(hold, G_FILE_TEST_EXISTS))
      g_usleep(G_USEC_PER_SEC / 2);
  }
  for (guint r = 0; ok && r < rounds; r++)
    for (int k = 0; ok && k < N_SIDES; k++)
      ok = measure(&sides[(k + r) % N_SIDES], mib);
  g_autofree char *load1 = loadavg();
  if (!ok && g_getenv("KVBN_DEBUG_KEEP")) {
    fprintf(stderr, "net: kept for debugging (%s, %s); press enter\n", ns_cli, ns_pod);
    getchar();
  }
  cleanup();
  if (!ok) {
    fprintf(stderr, "net: failed (everything it made is removed)\n");
    return 1;
  }
  printf("net: %u rounds, %u MiB download, %d latency GETs per round; nproc %d, load %s -> %s\n",
         rounds, mib, LAT_PER_ROUND, nproc(), load0, load1);
  /* The sandboxes' TCG translation cache (the floors have QEMU's own, 1
   * GiB of address space): the main lever measured against the VMM floor. */
  const char *tb = g_getenv("KATAVM_TCG_TB_CACHE_MIB");
  printf("  sandbox TCG translation cache: %s\n",
         tb && *tb ? tb : "the library's default (32 MiB; KATAVM_TCG_TB_CACHE_MIB)");
  printf("  %-26s %28s %30s\n", "side", "throughput MB/s med (min..max)",
         "latency ms med (min..max)");
  for (int k = 0; k < N_SIDES; k++) {
    Stats t = stats(sides[k].mbps, sides[k].n_mbps), l = stats(sides[k].lat_ms, sides[k].n_lat);
    printf("  %-26s %10.1f (%6.1f..%6.1f) %12.2f (%6.2f..%7.2f)\n", sides[k].name, t.median, t.min,
           t.max, l.median, l.min, l.max);
  }
  double st = med(sides[0].mbps, sides[0].n_mbps), sl = med(sides[0].lat_ms, sides[0].n_lat);
  double vt = med(sides[1].mbps, sides[1].n_mbps), vl = med(sides[1].lat_ms, sides[1].n_lat);
  double ht = med(sides[2].mbps, sides[2].n_mbps), hl = med(sides[2].lat_ms, sides[2].n_lat);
  double ut = med(sides[3].mbps, sides[3].n_mbps), ul = med(sides[3].lat_ms, sides[3].n_lat);
  double lt = med(sides[4].mbps, sides[4].n_mbps), ll = med(sides[4].lat_ms, sides[4].n_lat);
  double pt = med(sides[5].mbps, sides[5].n_mbps), pl = med(sides[5].lat_ms, sides[5].n_lat);
  printf("  sandbox / VMM floor:  throughput %.2f (goal >= 0.9), latency %.2fx (goal <= 1.2)\n",
         st / vt, sl / vl);
  printf("  sandbox / host floor: throughput %.2f, latency %.2fx\n", st / ht, sl / hl);
  printf("  user / slirp floor:   throughput %.2f, latency %.2fx\n", ut / lt, ul / ll);
  printf("  user / passt:         throughput %.2f, latency %.2fx\n", ut / pt, ul / pl);
  return 0;
}
