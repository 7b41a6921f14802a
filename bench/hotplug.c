/* bench/hotplug.c: how long a live change to a running sandbox takes.
 *
 *   hotplug [-n N] [--json]        (N rounds, default 5)
 *
 * A caller resizing a pod waits for katavm_hotplug() to return, and it
 * returns only once the guest reports the resource usable (CPUs online,
 * MemTotal moved, disk present and mounted, NIC configured). That wait is
 * what this measures, per kind, on one sandbox (1 vCPU of max 4, 256 MiB of
 * max 1024) with a busybox container whose main process is `sleep 100000`.
 * Each round does, in this order:
 *
 *   cpus 1 -> 2, cpus 2 -> 1, memory +256 MiB, memory -256 MiB,
 *   disk add (a 32 MiB ext4 image, mounted in the container at /data),
 *   disk remove, NIC add (a tap made by the bench, 10.213.0.2/24 in the
 *   guest), NIC remove.
 *
 * For each kind it prints median/min/max of the wall time of the call
 * (request to usable) and of the elapsed_us the shim puts in the result
 * JSON (the same span without the client <-> shim hops), plus every sample
 * in round order: a vCPU is plugged only the first time (shrinking
 * offlines it, it is never unplugged), so round 1's "cpus 1 -> 2" is the
 * one real plug and later rounds only online it again.
 *
 * There is no baseline: no other stack's hotplug runs here to compare
 * against. Sanity checks, untimed: the result JSON of each CPU/memory
 * change shows the new state; in round 1 the container reads a file from
 * the mounted disk; at the end one more NIC is added, its tap moved into a
 * network namespace the bench makes, and 10.213.0.2 pinged from there. No
 * traffic leaves that namespace: the tap has no address and no IPv6 in the
 * host's namespace (so the host sends nothing into the guest either).
 *
 * Nothing is left behind: the sandbox, the tap, the namespace and the
 * temporary files (bundle, disk image) are removed on every path, also on
 * failure and on SIGINT/SIGTERM (the handler only sets a flag, checked
 * between steps; a hotplug in flight is let finish first).
 *
 * Environment: as for any libkatavm program (KATAVM_ROOT, KATAVM_KERNEL,
 * KATAVM_INITRD, KATAVM_SHIM, ...), plus KATAVM_MKROOTFS to point at
 * tests/rootfs/mkrootfs.sh when not run from this source tree. Needs root
 * (tap, namespace), ip(8), mkfs.ext4 and ping. See bench/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include <katavm/katavm.h>

#include <glib.h>

#include "common.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTAINER "c"
#define MOUNT_PATH "/data"
#define MEM_STEP_MIB 256
#define GUEST_ADDR "10.213.0.2"
#define GUEST_CIDR GUEST_ADDR "/24"
#define HOST_CIDR "10.213.0.1/24"
/* Locally fixed: one NIC at a time in a sandbox of our own. */
#define NIC_MAC "52:54:00:21:30:02"
/* The file the round-1 check reads back from the disk. */
#define DISK_TEXT "from-host\n"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* ---- what must be undone on any exit ---- */

static katavm_runtime *g_rt;
static char *g_sandbox_id;   /* created and not yet destroyed */
static char *g_tmpdir;       /* bundle, disk image */
static char g_tap[16];       /* IFNAMSIZ; empty when none made */
static char g_netns[32];     /* empty when none made */
static gboolean g_tap_in_ns; /* moved into g_netns */

static void print_err(const char *what, katavm_error *e) {
  fprintf(stderr, "hotplug: %s: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(katavm_error_code(e)));
  katavm_error_free(e);
}

/* Runs argv (no shell: names are ours, but quoting is one less thing to get
 * wrong); TRUE when it exits 0. quiet: cleanup, where "not there" is fine. */
static gboolean run(gboolean quiet, const char *const *argv) {
  int status = -1;
  g_autofree char *err_text = NULL;
  g_autoptr(GError) e = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                    NULL, NULL, NULL, &err_text, &status, &e)) {
    if (!quiet)
      fprintf(stderr, "hotplug: %s: %s\n", argv[0], e->message);
    return FALSE;
  }
  if (!g_spawn_check_wait_status(status, NULL)) {
    if (!quiet) {
      g_autofree char *cmd = g_strjoinv(" ", (char **)argv);
      fprintf(stderr, "hotplug: `%s` failed: %s", cmd,
              err_text && *err_text ? err_text : "(no message)\n");
    }
    return FALSE;
  }
  return TRUE;
}

#define RUN(quiet, ...) run(quiet, (const char *const[]){__VA_ARGS__, NULL})

static void cleanup(void) {
  /* The sandbox first: its QEMU holds the tap and its share the bundle. */
  if (g_sandbox_id) {
    katavm_error *e = NULL;
    if (katavm_sandbox_destroy(g_rt, g_sandbox_id, &e) < 0)
      print_err("katavm_sandbox_destroy", e);
    g_clear_pointer(&g_sandbox_id, g_free);
  }
  if (g_tap[0]) {
    if (g_tap_in_ns)
      RUN(TRUE, "ip", "-n", g_netns, "link", "del", g_tap);
    else
      RUN(TRUE, "ip", "link", "del", g_tap);
    g_tap[0] = '\0';
  }
  if (g_netns[0]) {
    RUN(TRUE, "ip", "netns", "del", g_netns);
    g_netns[0] = '\0';
  }
  if (g_tmpdir) {
    /* Only our own g_dir_make_tmp directory; the rootfs is a tree of
     * hundreds of symlinks. */
    RUN(FALSE, "rm", "-rf", "--one-file-system", g_tmpdir);
    g_clear_pointer(&g_tmpdir, g_free);
  }
}

/* ---- small helpers ---- */

/* Runs argv in the container, collects stdout; TRUE when it exits 0. */
static gboolean exec_capture(katavm_sandbox *sb, const char *const *argv, GString *out) {
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = argv;
  cfg.no_stdin = 1;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  if (katavm_exec(sb, CONTAINER, &cfg, &p, &e) < 0) {
    print_err("katavm_exec", e);
    return FALSE;
  }
  int fds[2] = {katavm_process_stdout_fd(p), katavm_process_stderr_fd(p)};
  char buf[4096];
  while ((fds[0] >= 0 || fds[1] >= 0) && !interrupted) {
    struct pollfd pf[2];
    int map[2], n = 0;
    for (int k = 0; k < 2; k++)
      if (fds[k] >= 0) {
        pf[n] = (struct pollfd){.fd = fds[k], .events = POLLIN};
        map[n++] = k;
      }
    if (poll(pf, n, 100) <= 0)
      continue;
    for (int i = 0; i < n; i++) {
      if (!pf[i].revents)
        continue;
      ssize_t got = read(fds[map[i]], buf, sizeof buf);
      if (got > 0 && map[i] == 0)
        g_string_append_len(out, buf, got);
      else if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
        fds[map[i]] = -1;
    }
  }
  int code = -1;
  gboolean ok = !interrupted && katavm_process_wait(p, 60000, &code, &e) == 0;
  if (!ok && !interrupted)
    print_err("katavm_process_wait", e);
  katavm_process_free(p);
  return ok && code == 0;
}

/* ---- the measured operations ---- */

enum {
  K_CPU_UP,
  K_CPU_DOWN,
  K_MEM_ADD,
  K_MEM_REMOVE,
  K_DISK_ADD,
  K_DISK_REMOVE,
  K_NIC_ADD,
  K_NIC_REMOVE,
  N_KINDS
};

static const char *const kind_label[N_KINDS] = {
    "cpus 1 -> 2",      "cpus 2 -> 1",           "memory +256 MiB",     "memory -256 MiB",
    "disk add + mount", "disk unmount + remove", "NIC add + configure", "NIC remove",
};
static const char *const kind_key[N_KINDS] = {
    "cpu_up",   "cpu_down",    "mem_add", "mem_remove",
    "disk_add", "disk_remove", "nic_add", "nic_remove",
};

typedef struct {
  double wall_ms;
  double shim_ms; /* < 0: no elapsed_us in the result */
  char *result;   /* the result JSON, for the sanity checks */
} OpResult;

/* One katavm_hotplug call, timed from request to return (= usable). */
static gboolean hotplug_timed(katavm_sandbox *sb, const katavm_hotplug_request *req,
                              const char *what, OpResult *r) {
  katavm_error *e = NULL;
  char *js = NULL;
  double t0 = now_s();
  int rc = katavm_hotplug(sb, req, &js, &e);
  r->wall_ms = (now_s() - t0) * 1e3;
  if (rc < 0) {
    print_err(what, e);
    return FALSE;
  }
  gint64 us = -1;
  r->shim_ms = json_top_int(js, "elapsed_us", &us) ? us / 1e3 : -1;
  g_free(r->result);
  r->result = g_strdup(js ? js : "{}");
  katavm_free(js);
  return TRUE;
}

static gboolean op_cpus(katavm_sandbox *sb, unsigned cpus, OpResult *r) {
  katavm_hotplug_request req;
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_CPUS);
  req.cpus = cpus;
  if (!hotplug_timed(sb, &req, "hotplug cpus", r))
    return FALSE;
  gint64 online = -1;
  if (json_top_int(r->result, "cpus_online", &online) && online != cpus) {
    fprintf(stderr, "hotplug: asked for %u CPUs, the guest has %" G_GINT64_FORMAT " online\n", cpus,
            online);
    return FALSE;
  }
  return TRUE;
}

/* expect_kib: MemTotal wanted afterwards, checked to within 8 MiB (what
 * the kernel keeps of the blocks for its own page structs). */
static gboolean op_memory(katavm_sandbox *sb, katavm_memory_op op, gint64 expect_kib, OpResult *r) {
  katavm_hotplug_request req;
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
  req.memory_op = op;
  req.memory_mib = MEM_STEP_MIB;
  if (!hotplug_timed(sb, &req, "hotplug memory", r))
    return FALSE;
  gint64 kib = -1;
  if (json_top_int(r->result, "mem_total_kib", &kib) && ABS(kib - expect_kib) > 8 * 1024) {
    fprintf(stderr,
            "hotplug: MemTotal %" G_GINT64_FORMAT " KiB, expected about %" G_GINT64_FORMAT "\n",
            kib, expect_kib);
    return FALSE;
  }
  return TRUE;
}

static gboolean op_disk(katavm_sandbox *sb, const char *path, gboolean add, OpResult *r) {
  katavm_hotplug_request req;
  katavm_hotplug_request_init(&req, add ? KATAVM_HOTPLUG_DISK_ADD : KATAVM_HOTPLUG_DISK_REMOVE);
  req.path = path;
  if (add) {
    req.container = CONTAINER;
    req.mount_path = MOUNT_PATH;
  }
  return hotplug_timed(sb, &req, add ? "hotplug disk add" : "hotplug disk remove", r);
}

static gboolean op_nic(katavm_sandbox *sb, gboolean add, OpResult *r) {
  const char *const addrs[] = {GUEST_CIDR, NULL};
  katavm_hotplug_request req;
  katavm_hotplug_request_init(&req, add ? KATAVM_HOTPLUG_NIC_ADD : KATAVM_HOTPLUG_NIC_REMOVE);
  req.mac = NIC_MAC;
  if (add) {
    req.tap = g_tap;
    req.addresses = addrs;
  }
  return hotplug_timed(sb, &req, add ? "hotplug NIC add" : "hotplug NIC remove", r);
}

/* ---- setup ---- */

static char *make_bundle(void) {
  g_autofree char *script = mkrootfs_path();
  char *dir = g_build_filename(g_tmpdir, "bundle", NULL);
  /* Writable: the disk's mount point is made in the container's root. */
  if (!RUN(FALSE, script, "--bundle", "--writable", dir)) {
    fprintf(stderr, "hotplug: (set KATAVM_MKROOTFS to mkrootfs.sh)\n");
    g_free(dir);
    return NULL;
  }
  return dir;
}

static char *make_disk(void) {
  g_autofree char *src = g_build_filename(g_tmpdir, "disk-src", NULL);
  g_autofree char *hello = g_build_filename(src, "hello.txt", NULL);
  char *img = g_build_filename(g_tmpdir, "disk.img", NULL);
  if (g_mkdir_with_parents(src, 0755) < 0 || !g_file_set_contents(hello, DISK_TEXT, -1, NULL) ||
      !RUN(FALSE, "truncate", "-s", "32M", img) ||
      !RUN(FALSE, "mkfs.ext4", "-q", "-F", "-d", src, img)) {
    fprintf(stderr, "hotplug: cannot make the ext4 image %s\n", img);
    g_free(img);
    return NULL;
  }
  return img;
}

static gboolean make_tap(void) {
  g_snprintf(g_tap, sizeof g_tap, "kvbtap%d", (int)getpid() % 10000000);
  if (!RUN(FALSE, "ip", "tuntap", "add", "dev", g_tap, "mode", "tap")) {
    g_tap[0] = '\0';
    return FALSE;
  }
  /* The shim brings the tap up in our namespace; without IPv6 the host
   * sends no DAD, router or multicast-listener packets into the guest
   * through it, and answers none: the timed rounds carry no traffic. */
  g_autofree char *sysctl = g_strdup_printf("/proc/sys/net/ipv6/conf/%s/disable_ipv6", g_tap);
  if (g_file_test("/proc/sys/net/ipv6", G_FILE_TEST_IS_DIR)) {
    /* A plain write: g_file_set_contents would rename a temporary file
     * over it, which procfs refuses. */
    FILE *f = fopen(sysctl, "w");
    gboolean ok = f && fputs("1", f) >= 0;
    if (f && fclose(f) != 0)
      ok = FALSE;
    if (!ok)
      fprintf(stderr, "hotplug: warning: cannot disable IPv6 on %s\n", g_tap);
  }
  return TRUE;
}

/* The untimed end-of-run NIC check: the tap moves into a namespace of our
 * own, gets the host address there, and the guest must answer a ping. */
static gboolean nic_ping_check(katavm_sandbox *sb, gboolean *ping_ok) {
  OpResult r = {0};
  gboolean ok = op_nic(sb, TRUE, &r);
  g_free(r.result);
  if (!ok)
    return FALSE;
  g_snprintf(g_netns, sizeof g_netns, "kvbns-%d", (int)getpid());
  if (!RUN(FALSE, "ip", "netns", "add", g_netns)) {
    g_netns[0] = '\0';
    return FALSE;
  }
  if (!RUN(FALSE, "ip", "link", "set", g_tap, "netns", g_netns))
    return FALSE;
  g_tap_in_ns = TRUE;
  if (!RUN(FALSE, "ip", "-n", g_netns, "addr", "add", HOST_CIDR, "dev", g_tap) ||
      !RUN(FALSE, "ip", "-n", g_netns, "link", "set", g_tap, "up"))
    return FALSE;
  /* Two tries, 10 s each, as the integration test does: the first may go
   * to ARP resolution on a slow TCG guest. */
  *ping_ok = RUN(FALSE, "ip", "netns", "exec", g_netns, "ping", "-c", "2", "-W", "10", GUEST_ADDR);
  r = (OpResult){0};
  ok = op_nic(sb, FALSE, &r);
  g_free(r.result);
  return ok;
}

/* ---- statistics and output ---- */

/* Whether every sample of a kind has a shim time. */
static gboolean all_shim(const double *v, guint n) {
  for (guint i = 0; i < n; i++)
    if (v[i] < 0)
      return FALSE;
  return TRUE;
}

int main(int argc, char **argv) {
  int rounds = 5;
  gboolean json = FALSE;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      json = TRUE;
    } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      char *end;
      long n = strtol(argv[++i], &end, 10);
      if (*end || n < 1 || n > 1000) {
        fprintf(stderr, "hotplug: -n wants a count from 1 to 1000\n");
        return 2;
      }
      rounds = (int)n;
    } else {
      fprintf(stderr, "usage: hotplug [-n N] [--json]\n"
                      "  times CPU, memory, disk and NIC hotplug on one "
                      "sandbox, N rounds (default 5)\n");
      return 2;
    }
  }

  /* SA_RESTART: the library's system calls must not see EINTR mid-call;
   * the flag is checked between steps. */
  catch_stop_signals(on_signal);

  int status = 1;
  katavm_error *e = NULL;
  katavm_sandbox *sb = NULL;
  char *check = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *bundle = NULL;
  g_autofree char *disk = NULL;
  g_autofree char *load_start = loadavg();
  g_autofree char *load_end = NULL;
  g_autofree char *id = g_strdup_printf("bench-hotplug-%d", (int)getpid());
  double *wall[N_KINDS], *shim[N_KINDS];
  for (int k = 0; k < N_KINDS; k++) {
    wall[k] = g_new0(double, rounds);
    shim[k] = g_new0(double, rounds);
  }
  OpResult r = {0};
  gboolean ping_ok = FALSE;
  katavm_sandbox_config cfg;
  katavm_container_config cc;
  const char *main_argv[] = {"sleep", "100000", NULL};
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  gint64 boot_kib = 0;

  if (katavm_runtime_new(&g_rt, &e) < 0) {
    print_err("katavm_runtime_new", e);
    goto out;
  }
  if (katavm_check_host(g_rt, &check, &e) < 0) {
    print_err("katavm_check_host", e);
    goto out;
  }
  accel = json_top_str(check, "accel");
  if (!accel)
    accel = g_strdup("?");

  g_tmpdir = g_dir_make_tmp("kvbhp-XXXXXX", NULL);
  if (!g_tmpdir) {
    fprintf(stderr, "hotplug: cannot make a temporary directory\n");
    goto out;
  }
  if (!(bundle = make_bundle()) || !(disk = make_disk()) || !make_tap())
    goto out;

  katavm_sandbox_config_init(&cfg);
  /* Per process: a leftover of a killed run or a concurrent bench cannot
   * collide with it. */
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.max_vcpus = 4;
  cfg.memory_mib = 256;
  cfg.max_memory_mib = 1024;
  if (!json)
    fprintf(stderr, "creating sandbox %s\n", id);
  if (katavm_sandbox_create(g_rt, &cfg, &sb, &e) < 0) {
    print_err("katavm_sandbox_create", e);
    goto out;
  }
  g_sandbox_id = g_strdup(id);
  katavm_container_config_init(&cc);
  cc.bundle = bundle;
  cc.argv = main_argv;
  if (katavm_container_add(sb, CONTAINER, &cc, NULL, &e) < 0) {
    print_err("katavm_container_add", e);
    goto out;
  }
  if (katavm_container_start(sb, CONTAINER, &e) < 0) {
    print_err("katavm_container_start", e);
    goto out;
  }
  if (katavm_sandbox_agent_check(sb, &gi, &e) < 0) {
    print_err("katavm_sandbox_agent_check", e);
    goto out;
  }
  boot_kib = (gint64)gi.mem_total_kib;

  for (int i = 0; i < rounds && !interrupted; i++) {
#define STEP(kind, call)                                                                           \
  do {                                                                                             \
    if (interrupted || !(call))                                                                    \
      goto out;                                                                                    \
    wall[kind][i] = r.wall_ms;                                                                     \
    shim[kind][i] = r.shim_ms;                                                                     \
  } while (0)
    STEP(K_CPU_UP, op_cpus(sb, 2, &r));
    STEP(K_CPU_DOWN, op_cpus(sb, 1, &r));
    STEP(K_MEM_ADD, op_memory(sb, KATAVM_MEMORY_ADD, boot_kib + MEM_STEP_MIB * 1024, &r));
    STEP(K_MEM_REMOVE, op_memory(sb, KATAVM_MEMORY_REMOVE, boot_kib, &r));
    STEP(K_DISK_ADD, op_disk(sb, disk, TRUE, &r));
    if (i == 0) {
      /* Usable means mounted where the container sees it. */
      g_autoptr(GString) out = g_string_new(NULL);
      if (!exec_capture(sb, (const char *const[]){"cat", MOUNT_PATH "/hello.txt", NULL}, out) ||
          strcmp(out->str, DISK_TEXT)) {
        fprintf(stderr,
                "hotplug: the container cannot read the disk "
                "(got \"%s\")\n",
                out->str);
        goto out;
      }
    }
    STEP(K_DISK_REMOVE, op_disk(sb, disk, FALSE, &r));
    STEP(K_NIC_ADD, op_nic(sb, TRUE, &r));
    STEP(K_NIC_REMOVE, op_nic(sb, FALSE, &r));
#undef STEP
    if (!json) {
      fprintf(stderr, "round %d/%d:", i + 1, rounds);
      for (int k = 0; k < N_KINDS; k++)
        fprintf(stderr, " %s %.0f", kind_key[k], wall[k][i]);
      fprintf(stderr, " (ms)\n");
    }
  }
  if (interrupted || !nic_ping_check(sb, &ping_ok))
    goto out;
  load_end = loadavg();

  if (json) {
    g_autoptr(GString) j = g_string_new("{");
    g_string_append_printf(j,
                           "\"rounds\":%d,\"machine\":{\"nproc\":%d,"
                           "\"loadavg_start\":",
                           rounds, nproc());
    json_str(j, load_start);
    g_string_append(j, ",\"loadavg_end\":");
    json_str(j, load_end);
    g_string_append(j, ",\"accel\":");
    json_str(j, accel);
    g_string_append(j, "},\"sandbox\":{\"vcpus\":1,\"max_vcpus\":4,"
                       "\"memory_mib\":256,\"max_memory_mib\":1024},"
                       "\"unit\":\"ms\",\"kinds\":{");
    for (int k = 0; k < N_KINDS; k++) {
      g_string_append_printf(j, "%s\"%s\":{", k ? "," : "", kind_key[k]);
      json_stats(j, "wall", wall[k], rounds, "%.1f");
      if (all_shim(shim[k], rounds)) {
        g_string_append_c(j, ',');
        json_stats(j, "shim", shim[k], rounds, "%.1f");
      }
      g_string_append_c(j, '}');
    }
    g_string_append_printf(j, "},\"nic_ping_ok\":%s}", ping_ok ? "true" : "false");
    printf("%s\n", j->str);
  } else {
    printf("katavm hotplug benchmark: %d rounds on one sandbox "
           "(1 of max 4 vCPUs, 256 of max 1024 MiB)\n",
           rounds);
    printf("machine: nproc %d, loadavg %s (start) / %s (end), accel %s\n\n", nproc(), load_start,
           load_end, accel);
    printf("  %-24s %27s   %27s\n", "", "request .. usable (wall)", "shim elapsed_us");
    printf("  %-24s %9s %8s %8s   %9s %8s %8s\n", "ms", "median", "min", "max", "median", "min",
           "max");
    for (int k = 0; k < N_KINDS; k++) {
      Stats w = stats(wall[k], rounds);
      printf("  %-24s %9.1f %8.1f %8.1f", kind_label[k], w.median, w.min, w.max);
      if (all_shim(shim[k], rounds)) {
        Stats s = stats(shim[k], rounds);
        printf("   %9.1f %8.1f %8.1f\n", s.median, s.min, s.max);
      } else {
        printf("   %9s\n", "-");
      }
    }
    printf("\n  NIC sanity ping from a namespace: %s\n\n", ping_ok ? "answered" : "NO ANSWER");
    printf("wall samples in round order (ms; round 1's cpus 1 -> 2 is the "
           "only real vCPU plug):\n");
    for (int k = 0; k < N_KINDS; k++) {
      printf("  %-24s", kind_label[k]);
      for (int i = 0; i < rounds; i++)
        printf(" %.0f", wall[k][i]);
      printf("\n");
    }
  }
  /* A ping that went unanswered is a broken NIC path, not a timing. */
  status = ping_ok ? 0 : 1;

out:
  g_free(r.result);
  katavm_sandbox_close(sb);
  cleanup();
  if (interrupted) {
    fprintf(stderr, "hotplug: interrupted; everything started was cleaned up\n");
    status = 130;
  }
  katavm_free(check);
  katavm_runtime_free(g_rt);
  for (int k = 0; k < N_KINDS; k++) {
    g_free(wall[k]);
    g_free(shim[k]);
  }
  return status;
}
