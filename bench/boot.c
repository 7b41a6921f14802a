/* bench/boot.c: how much a katavm sandbox costs over the bare VM it runs.
 *
 *   boot [-n N] [--json]          (N rounds, default 5)
 *
 * What it measures, in one invocation so that both sides see the same
 * machine load and page cache (timings under TCG vary by +-0.7 s between
 * runs, so only figures from one run are comparable):
 *
 * - ours: wall time of katavm_sandbox_create(), which returns once the guest
 *   agent has answered its first request. That is what a caller waits for:
 *   shim start, libvirt embedded driver, domain start, guest boot, agent
 *   handshake. Then the host memory of the idle sandbox: PSS of its QEMU plus
 *   its shim after ~2 s of settling.
 * - baseline, the floor: plain qemu-system-x86_64 booting exactly the same
 *   kernel, initrd and kernel command line (copied from our QEMU's
 *   /proc/PID/cmdline), same machine type, accelerator, CPU model, memory
 *   and vCPUs, with only a virtio-serial port named io.katavm.agent.0.
 *   Timed from spawning QEMU to the first byte the agent sends (its HELLO,
 *   written as soon as a host connects), then PSS of that QEMU after the same
 *   settling time.
 *
 * - pooled (unless --no-pool): after the cold rounds, a warm pool of one VM
 *   on the same root (katavm_pool_start: docs/pool.md); each round waits
 *   for the pool to be full, then times katavm_sandbox_create() served by
 *   the pooled VM (the default shape, and 2 vCPUs / 512 MiB set by
 *   hotplug), and `katavm run --rm ROOTFS true` served by it. The pool
 *   refills in the background between samples, never during a timed
 *   create (it may during the teardown that `run --rm` waits for).
 *   Goals: pooled create <= 0.3 s, pooled run --rm true <= 0.5 s.
 *
 * The rounds alternate which side goes first, so neither one always runs on
 * the cache state or CPU frequency the other left behind. It reports
 * median/min/max, the ratio of medians (goal <= 1.15) and whether the median
 * create time meets the 3.5 s goal; it asserts nothing.
 *
 * Nothing is left behind: every sandbox created is destroyed and every QEMU
 * spawned is killed and reaped, also on failure and on SIGINT/SIGTERM (the
 * handler only sets a flag; the waits below poll it).
 *
 * Environment: as for any libkatavm program (KATAVM_ROOT, KATAVM_KERNEL,
 * KATAVM_INITRD, KATAVM_SHIM, ...); see bench/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include <katavm/katavm.h>

#include <glib.h>

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define GOAL_RATIO 1.15
#define GOAL_MEDIAN_S 3.5
#define GOAL_POOLED_S 0.3
#define GOAL_POOLED_RUN_S 0.5
/* Not a timing limit: a pool that never fills must not hang the run. */
#define POOL_HANG_GUARD_S 600
/* Idle memory is read after this long: right after the first agent byte the
 * guest is still finishing its boot and QEMU is still translating code. */
#define SETTLE_MS 2000
/* Not a timing limit: only keeps a baseline guest that never answers from
 * hanging the benchmark forever. */
#define BASE_HANG_GUARD_S 300.0
/* How often to retry connecting to the baseline's agent socket; a few ms
 * keeps the connect delay well below the boot time's noise. */
#define CONNECT_RETRY_US 2000

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* ---- what must be undone on any exit ---- */

static katavm_runtime *g_rt;
static char *g_sandbox_id; /* sandbox created and not yet destroyed */
static pid_t g_base_pid;   /* baseline QEMU spawned and not yet reaped */
static char *g_tmpdir;     /* holds the baseline socket and QEMU log */
static gboolean g_pool;    /* this run started the root's warm pool */

static int destroy_sandbox(void) {
  if (!g_sandbox_id)
    return 0;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_destroy(g_rt, g_sandbox_id, &e);
  if (rc < 0)
    fprintf(stderr, "boot: katavm_sandbox_destroy(%s): %s\n", g_sandbox_id,
            katavm_error_message(e));
  katavm_error_free(e);
  g_clear_pointer(&g_sandbox_id, g_free);
  return rc;
}

static void kill_baseline(void) {
  if (g_base_pid <= 0)
    return;
  kill(g_base_pid, SIGKILL);
  while (waitpid(g_base_pid, NULL, 0) < 0 && errno == EINTR)
    ;
  g_base_pid = 0;
}

static void remove_rootfs(void);

static void cleanup(void) {
  kill_baseline();
  destroy_sandbox();
  if (g_pool) {
    katavm_error *e = NULL;
    if (katavm_pool_remove(g_rt, &e) < 0)
      fprintf(stderr, "boot: katavm_pool_remove: %s\n", katavm_error_message(e));
    katavm_error_free(e);
    g_pool = FALSE;
  }
  if (g_tmpdir) {
    g_autofree char *sock = g_build_filename(g_tmpdir, "agent.sock", NULL);
    g_autofree char *log = g_build_filename(g_tmpdir, "qemu.log", NULL);
    unlink(sock);
    unlink(log);
    remove_rootfs();
    rmdir(g_tmpdir);
    g_clear_pointer(&g_tmpdir, g_free);
  }
}

/* ---- small helpers ---- */

/* Sleep ms milliseconds in short steps so that Ctrl-C is seen promptly.
 * Returns FALSE when interrupted. */
static gboolean sleep_ms(int ms) {
  for (int slept = 0; slept < ms && !interrupted; slept += 20)
    g_usleep(20 * 1000);
  return !interrupted;
}

/* Proportional set size of a process in KiB: shared pages (the mapped
 * vmlinux, libraries) count divided by their sharers, so the sum over
 * sandboxes is what they really cost. -1 when unreadable. */
static gint64 pss_kib(pid_t pid) {
  g_autofree char *path = g_strdup_printf("/proc/%d/smaps_rollup", (int)pid);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return -1;
  const char *l = strstr(text, "\nPss:");
  if (!l)
    return -1;
  return g_ascii_strtoll(l + 5, NULL, 10);
}

/* ---- one round of ours ---- */

typedef struct {
  double boot_s;
  gint64 qemu_pss, shim_pss;
} OursResult;

static void print_err(const char *what, katavm_error *e) {
  fprintf(stderr, "boot: %s: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(katavm_error_code(e)));
  katavm_error_free(e);
}

static gboolean run_ours(guint round, QemuArgs *args, OursResult *r) {
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  /* A unique id per process and round: a leftover from a killed run or a
   * concurrent benchmark cannot collide with it. */
  g_autofree char *id = g_strdup_printf("bench-boot-%d-%u", (int)getpid(), round);
  cfg.id = id;

  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  double t0 = now_s();
  int rc = katavm_sandbox_create(g_rt, &cfg, &sb, &e);
  r->boot_s = now_s() - t0;
  if (rc < 0) {
    print_err("katavm_sandbox_create", e);
    return FALSE;
  }
  g_sandbox_id = g_strdup(id);

  char *js = NULL;
  rc = katavm_sandbox_inspect(sb, &js, &e);
  katavm_sandbox_close(sb);
  if (rc < 0) {
    print_err("katavm_sandbox_inspect", e);
    return FALSE;
  }
  gint64 qpid = 0, spid = 0;
  gboolean ok = json_top_int(js, "qemu_pid", &qpid) && qpid > 0 &&
                json_top_int(js, "shim_pid", &spid) && spid > 0;
  if (!ok)
    fprintf(stderr, "boot: no qemu_pid/shim_pid in inspect output: %s\n", js);
  katavm_free(js);
  if (!ok)
    return FALSE;

  if (!args->kernel) {
    if (!qemu_args_read((pid_t)qpid, args))
      return FALSE;
  } else {
    /* Every round must boot what the baseline boots. */
    QemuArgs now = {0};
    if (!qemu_args_read((pid_t)qpid, &now))
      return FALSE;
    if (strcmp(now.kernel, args->kernel) || strcmp(now.initrd, args->initrd) ||
        strcmp(now.append, args->append))
      fprintf(stderr,
              "boot: warning: round %u booted a different kernel, "
              "initrd or command line than round 0\n",
              round);
    qemu_args_clear(&now);
  }

  if (!sleep_ms(SETTLE_MS))
    return FALSE;
  r->qemu_pss = pss_kib((pid_t)qpid);
  r->shim_pss = pss_kib((pid_t)spid);
  if (r->qemu_pss < 0 || r->shim_pss < 0) {
    fprintf(stderr, "boot: cannot read PSS of qemu %d / shim %d\n", (int)qpid, (int)spid);
    return FALSE;
  }
  return destroy_sandbox() == 0;
}

/* ---- one round of the baseline ---- */

typedef struct {
  double boot_s;
  gint64 pss;
} BaseResult;

static void print_qemu_log(void) {
  g_autofree char *log = g_build_filename(g_tmpdir, "qemu.log", NULL);
  g_autofree char *text = NULL;
  if (g_file_get_contents(log, &text, NULL, NULL) && *text)
    fprintf(stderr, "boot: baseline QEMU said:\n%s", text);
}

static gboolean run_baseline(const QemuArgs *a, BaseResult *r) {
  g_autofree char *sock = g_build_filename(g_tmpdir, "agent.sock", NULL);
  g_autofree char *log = g_build_filename(g_tmpdir, "qemu.log", NULL);
  unlink(sock);
  g_autofree char *chardev = g_strdup_printf("socket,id=a,path=%s,server=on,wait=off", sock);
  g_autofree char *accel = g_strdup(a->accel);
  const char *argv[] = {
      a->qemu,
      "-machine",
      "q35",
      "-accel",
      accel,
      "-cpu",
      a->cpu,
      "-m",
      a->mem,
      "-smp",
      a->smp,
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      /* The kernel's console=ttyS0 then writes to a UART as it does in ours. */
      "-serial",
      "file:/dev/null",
      "-kernel",
      a->kernel,
      "-initrd",
      a->initrd,
      "-append",
      a->append,
      "-device",
      "virtio-serial-pci",
      "-chardev",
      chardev,
      "-device",
      "virtserialport,chardev=a,name=io.katavm.agent.0",
      NULL,
  };

  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof sa.sun_path) {
    fprintf(stderr, "boot: socket path too long: %s\n", sock);
    return FALSE;
  }
  strcpy(sa.sun_path, sock);

  double t0 = 0;
  pid_t pid = spawn_qemu("boot", argv, log, &t0);
  if (pid < 0)
    return FALSE;
  g_base_pid = pid;

  /* Connect as soon as QEMU has created the socket: the agent only writes
   * its HELLO once a host is connected, so a late connect would add to the
   * measured time. */
  int fd = -1;
  gboolean got = FALSE;
  while (!interrupted && now_s() - t0 < BASE_HANG_GUARD_S) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      g_base_pid = 0;
      fprintf(stderr, "boot: baseline QEMU exited early (status 0x%x)\n", status);
      print_qemu_log();
      break;
    }
    if (fd < 0) {
      fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        fprintf(stderr, "boot: socket: %s\n", g_strerror(errno));
        break;
      }
      if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        fd = -1;
        g_usleep(CONNECT_RETRY_US);
        continue;
      }
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, 20);
    if (n > 0) {
      char byte;
      ssize_t k = read(fd, &byte, 1);
      if (k == 1) {
        r->boot_s = now_s() - t0;
        got = TRUE;
      } else {
        fprintf(stderr, "boot: baseline agent socket closed before any byte\n");
      }
      break;
    }
  }
  if (fd >= 0)
    close(fd);
  if (!got) {
    if (!interrupted && g_base_pid && now_s() - t0 >= BASE_HANG_GUARD_S)
      fprintf(stderr, "boot: baseline guest sent nothing in %.0f s\n", BASE_HANG_GUARD_S);
    kill_baseline();
    unlink(sock);
    return FALSE;
  }

  gboolean ok = sleep_ms(SETTLE_MS);
  if (ok) {
    r->pss = pss_kib(pid);
    if (r->pss < 0) {
      fprintf(stderr, "boot: cannot read PSS of baseline QEMU %d\n", (int)pid);
      ok = FALSE;
    }
  }
  kill_baseline();
  unlink(sock);
  return ok;
}

/* ---- `katavm run --rm ROOTFS true`: the CLI's whole path ---- */

/* The katavm CLI: KATAVM_CLI, else ../katavm beside this program (the
 * build tree's layout). */
static char *cli_path(void) {
  const char *env = g_getenv("KATAVM_CLI");
  if (env && *env)
    return g_strdup(env);
  g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
  g_autofree char *dir = self ? g_path_get_dirname(self) : NULL;
  return dir ? g_build_filename(dir, "..", "katavm", NULL) : NULL;
}

/* A busybox rootfs under the temporary directory, made once. */
static char *make_rootfs(void) {
  g_autofree char *script = mkrootfs_path();
  char *dir = g_build_filename(g_tmpdir, "rootfs", NULL);
  const char *argv[] = {script, dir, NULL};
  int status = -1;
  g_autofree char *err_text = NULL;
  g_autoptr(GError) e = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                    &err_text, &status, &e) ||
      !g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "boot: %s failed (set KATAVM_MKROOTFS): %s\n", script,
            e ? e->message : err_text);
    g_free(dir);
    return NULL;
  }
  return dir;
}

/* Wall time of one `katavm run --rm ROOTFS true` until it exits 0. */
static gboolean run_cli_true(const char *cli, const char *rootfs, double *wall_s) {
  const char *argv[] = {cli, "run", "--rm", rootfs, "true", NULL};
  int status = -1;
  g_autofree char *err_text = NULL;
  g_autoptr(GError) e = NULL;
  double t0 = now_s();
  gboolean ok = g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                             NULL, &err_text, &status, &e);
  *wall_s = now_s() - t0;
  if (!ok || !g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "boot: %s run --rm %s true failed: %s\n", cli, rootfs,
            e ? e->message : err_text);
    return FALSE;
  }
  return TRUE;
}

static void remove_rootfs(void) {
  if (!g_tmpdir)
    return;
  g_autofree char *dir = g_build_filename(g_tmpdir, "rootfs", NULL);
  if (!g_file_test(dir, G_FILE_TEST_EXISTS))
    return;
  const char *argv[] = {"rm", "-rf", "--one-file-system", dir, NULL};
  g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* ---- the warm pool ---- */

static gboolean pool_running(void) {
  char *js = NULL;
  katavm_error *e = NULL;
  if (katavm_pool_list(g_rt, &js, &e) < 0) {
    katavm_error_free(e);
    return FALSE;
  }
  gboolean r = json_top_bool(js, "running");
  katavm_free(js);
  return r;
}

/* Wait until the pool holds a ready VM and boots nothing (so that no
 * refill competes with what is timed next). */
static gboolean pool_wait_full(void) {
  double t0 = now_s();
  while (!interrupted && now_s() - t0 < POOL_HANG_GUARD_S) {
    char *js = NULL;
    katavm_error *e = NULL;
    if (katavm_pool_list(g_rt, &js, &e) < 0) {
      print_err("katavm_pool_list", e);
      return FALSE;
    }
    gboolean full = strstr(js, "\"ready\":true") && !strstr(js, "\"ready\":false");
    katavm_free(js);
    if (full)
      return TRUE;
    sleep_ms(50);
  }
  if (!interrupted)
    fprintf(stderr, "boot: the pool did not fill within %d s\n", POOL_HANG_GUARD_S);
  return FALSE;
}

/* One pooled create (vcpus/mem 0: the runtime's defaults), destroyed
 * after; FALSE also when the pool did not serve it. */
static gboolean run_pooled(guint round, unsigned vcpus, unsigned mem, double *secs) {
  if (!pool_wait_full())
    return FALSE;
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  g_autofree char *id = g_strdup_printf("bench-pool-%d-%u-%u", (int)getpid(), round, vcpus);
  cfg.id = id;
  cfg.vcpus = vcpus;
  cfg.memory_mib = mem;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  double t0 = now_s();
  int rc = katavm_sandbox_create(g_rt, &cfg, &sb, &e);
  *secs = now_s() - t0;
  if (rc < 0) {
    print_err("katavm_sandbox_create (pooled)", e);
    return FALSE;
  }
  g_sandbox_id = g_strdup(id);
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  rc = katavm_sandbox_agent_check(sb, &gi, &e);
  katavm_sandbox_close(sb);
  if (rc < 0) {
    print_err("katavm_sandbox_agent_check (pooled)", e);
    return FALSE;
  }
  if (vcpus && gi.cpus_online != vcpus) {
    fprintf(stderr, "boot: pooled sandbox has %u vCPUs online, asked %u\n", gi.cpus_online, vcpus);
    return FALSE;
  }
  /* Served by the pool: its state names the pooled VM it was. */
  g_autofree char *root = g_strdup(katavm_runtime_root(g_rt));
  g_autofree char *inst = g_build_filename(root, "sandboxes", id, "instance", NULL);
  if (!g_file_test(inst, G_FILE_TEST_EXISTS)) {
    fprintf(stderr, "boot: sandbox %s was booted cold, not taken from the pool\n", id);
    return FALSE;
  }
  return destroy_sandbox() == 0;
}

/* ---- statistics and output ---- */

int main(int argc, char **argv) {
  int rounds = 5;
  gboolean json = FALSE, pool = TRUE;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      json = TRUE;
    } else if (!strcmp(argv[i], "--no-pool")) {
      pool = FALSE;
    } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      char *end;
      long n = strtol(argv[++i], &end, 10);
      if (*end || n < 1 || n > 1000) {
        fprintf(stderr, "boot: -n wants a count from 1 to 1000\n");
        return 2;
      }
      rounds = (int)n;
    } else {
      fprintf(stderr, "usage: boot [-n N] [--json] [--no-pool]\n"
                      "  times katavm_sandbox_create() against plain QEMU "
                      "booting the same guest, N rounds (default 5), and served\n"
                      "  by a warm pool (unless --no-pool)\n");
      return 2;
    }
  }

  /* No SA_RESTART needed for our own waits (they poll the flag), but keep
   * the library's system calls from seeing EINTR in the middle of a create. */
  catch_stop_signals(on_signal);

  int status = 1;
  katavm_error *e = NULL;
  char *check = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *load_start = loadavg();
  g_autofree char *load_end = NULL;
  QemuArgs args = {0};
  double *ours_s = g_new0(double, rounds), *base_s = g_new0(double, rounds);
  double *ours_q = g_new0(double, rounds), *ours_sh = g_new0(double, rounds);
  double *ours_t = g_new0(double, rounds), *base_q = g_new0(double, rounds);
  double *run_s = g_new0(double, rounds);
  double *pool_s = g_new0(double, rounds), *pool_hp_s = g_new0(double, rounds);
  double *pool_run_s = g_new0(double, rounds);
  g_autofree char *cli = cli_path(), *rootfs = NULL;

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
  if (!json_top_bool(check, "ok"))
    fprintf(stderr, "boot: warning: katavm_check_host reports problems: %s\n", check);

  g_tmpdir = g_dir_make_tmp("kvboot-XXXXXX", NULL);
  if (!g_tmpdir) {
    fprintf(stderr, "boot: cannot make a temporary directory\n");
    goto out;
  }

  rootfs = make_rootfs();
  if (!rootfs || !cli)
    goto out;
  if (pool_running()) {
    fprintf(stderr,
            "boot: a warm pool runs on %s: cold boots would be served by it; stop it "
            "(katavm pool rm) or use another KATAVM_ROOT\n",
            katavm_runtime_root(g_rt));
    goto out;
  }

  for (int i = 0; i < rounds && !interrupted; i++) {
    OursResult o = {0};
    BaseResult b = {0};
    /* Ours goes first in round 0 because the baseline needs its command
     * line; after that the order alternates. */
    gboolean ours_first = i % 2 == 0;
    gboolean ok;
    if (ours_first)
      ok = run_ours(i, &args, &o) && !interrupted && run_baseline(&args, &b);
    else
      ok = run_baseline(&args, &b) && !interrupted && run_ours(i, &args, &o);
    /* The CLI's whole path, after both: a sandbox, a container, exit. */
    ok = ok && !interrupted && run_cli_true(cli, rootfs, &run_s[i]);
    if (!ok || interrupted)
      goto out;
    ours_s[i] = o.boot_s;
    ours_q[i] = o.qemu_pss;
    ours_sh[i] = o.shim_pss;
    ours_t[i] = o.qemu_pss + o.shim_pss;
    base_s[i] = b.boot_s;
    base_q[i] = b.pss;
    if (!json)
      fprintf(stderr, "round %d/%d: ours %.2f s, baseline %.2f s, run --rm true %.2f s\n", i + 1,
              rounds, o.boot_s, b.boot_s, run_s[i]);
  }
  if (pool && !interrupted) {
    katavm_pool_config pc;
    katavm_pool_config_init(&pc);
    pc.size = 1;
    pc.max_vcpus = 2;
    pc.max_memory_mib = 1024;
    if (katavm_pool_start(g_rt, &pc, &e) < 0) {
      print_err("katavm_pool_start", e);
      goto out;
    }
    g_pool = TRUE;
    for (int i = 0; i < rounds && !interrupted; i++) {
      gboolean ok = run_pooled(i, 0, 0, &pool_s[i]) && run_pooled(i, 2, 512, &pool_hp_s[i]) &&
                    pool_wait_full() && run_cli_true(cli, rootfs, &pool_run_s[i]);
      if (!ok || interrupted)
        goto out;
      if (!json)
        fprintf(stderr,
                "pooled round %d/%d: create %.3f s, with hotplug %.3f s, run --rm true "
                "%.2f s\n",
                i + 1, rounds, pool_s[i], pool_hp_s[i], pool_run_s[i]);
    }
  }
  load_end = loadavg();

  Stats so = stats(ours_s, rounds), sb = stats(base_s, rounds);
  double ratio = so.median / sb.median;
  gboolean ratio_met = ratio <= GOAL_RATIO, median_met = so.median <= GOAL_MEDIAN_S;
  const double mib = 1.0 / 1024;

  if (json) {
    g_autoptr(GString) j = g_string_new("{");
    g_string_append_printf(j, "\"rounds\":%d,", rounds);
    json_machine_guest(j, load_start, load_end, accel, &args);
    g_string_append(j, ",\"ours\":{");
    json_stats(j, "boot_s", ours_s, rounds, "%.3f");
    g_string_append(j, ",");
    json_stats(j, "qemu_pss_kib", ours_q, rounds, "%.0f");
    g_string_append(j, ",");
    json_stats(j, "shim_pss_kib", ours_sh, rounds, "%.0f");
    g_string_append(j, ",");
    json_stats(j, "total_pss_kib", ours_t, rounds, "%.0f");
    g_string_append(j, "},\"baseline\":{");
    json_stats(j, "boot_s", base_s, rounds, "%.3f");
    g_string_append(j, ",");
    json_stats(j, "qemu_pss_kib", base_q, rounds, "%.0f");
    g_string_append(j, "},\"run_rm_true\":{");
    json_stats(j, "wall_s", run_s, rounds, "%.3f");
    if (pool) {
      g_string_append(j, "},\"pooled\":{");
      json_stats(j, "create_s", pool_s, rounds, "%.3f");
      g_string_append(j, ",");
      json_stats(j, "create_hotplug_s", pool_hp_s, rounds, "%.3f");
      g_string_append(j, ",");
      json_stats(j, "run_rm_true_s", pool_run_s, rounds, "%.3f");
      g_string_append_printf(j, ",\"goal_create_s\":%.1f,\"goal_run_rm_true_s\":%.1f",
                             GOAL_POOLED_S, GOAL_POOLED_RUN_S);
    }
    g_string_append_printf(j,
                           "},\"ratio\":%.3f,\"goal_ratio\":%.2f,"
                           "\"ratio_met\":%s,\"goal_median_s\":%.1f,"
                           "\"median_met\":%s}",
                           ratio, GOAL_RATIO, ratio_met ? "true" : "false", GOAL_MEDIAN_S,
                           median_met ? "true" : "false");
    printf("%s\n", j->str);
  } else {
    printf("katavm boot benchmark: %d rounds, ours and baseline alternating\n", rounds);
    printf("machine: nproc %d, loadavg %s (start) / %s (end), accel %s\n", nproc(), load_start,
           load_end, accel);
    printf("guest: %s -accel %s -cpu %s -m %s -smp %s\n", args.qemu, args.accel, args.cpu, args.mem,
           args.smp);
    printf("  kernel %s\n  initrd %s\n  append %s\n\n", args.kernel, args.initrd, args.append);
    printf("  %-32s %9s %9s %9s\n", "boot to agent ready", "median", "min", "max");
    print_row(32, "ours (katavm_sandbox_create)", ours_s, rounds, 1, "s");
    print_row(32, "baseline (plain QEMU, 1st byte)", base_s, rounds, 1, "s");
    printf("  ratio ours/baseline (medians)    %9.3f   goal <= %.2f: %s\n", ratio, GOAL_RATIO,
           ratio_met ? "met" : "NOT met");
    printf("  ours median                      %9.2f s goal <= %.1f s: %s\n", so.median,
           GOAL_MEDIAN_S, median_met ? "met" : "NOT met");
    print_row(32, "katavm run --rm ROOTFS true", run_s, rounds, 1, "s (wall, to exit)");
    if (pool) {
      printf("\n  %-32s %9s %9s %9s\n", "warm pool (1 VM, 1-2 vCPUs)", "median", "min", "max");
      print_row(32, "pooled create to agent ready", pool_s, rounds, 1, "s");
      print_row(32, "pooled create, 2 vCPU 512 MiB", pool_hp_s, rounds, 1, "s (hotplug)");
      print_row(32, "pooled run --rm ROOTFS true", pool_run_s, rounds, 1, "s (wall, to exit)");
      double pm = stats(pool_s, rounds).median, prm = stats(pool_run_s, rounds).median;
      printf("  pooled create median             %9.3f s goal <= %.1f s: %s\n", pm, GOAL_POOLED_S,
             pm <= GOAL_POOLED_S ? "met" : "NOT met");
      printf("  pooled run --rm true median      %9.3f s goal <= %.1f s: %s\n", prm,
             GOAL_POOLED_RUN_S, prm <= GOAL_POOLED_RUN_S ? "met" : "NOT met");
      printf("  pooled / cold create (medians)   %9.3f\n", pm / so.median);
    }
    printf("\n");
    printf("  %-32s %9s %9s %9s\n", "idle PSS after 2 s", "median", "min", "max");
    print_row(32, "ours: qemu", ours_q, rounds, mib, "MiB");
    print_row(32, "ours: shim", ours_sh, rounds, mib, "MiB");
    print_row(32, "ours: qemu + shim", ours_t, rounds, mib, "MiB");
    print_row(32, "baseline: qemu", base_q, rounds, mib, "MiB");
    printf("  %-32s %9.2f            MiB (medians)\n\n", "ours - baseline",
           (stats(ours_t, rounds).median - stats(base_q, rounds).median) * mib);
    printf("samples in round order:\n");
    print_samples(32, "ours boot s", ours_s, rounds, 1);
    print_samples(32, "baseline boot s", base_s, rounds, 1);
    print_samples(32, "run --rm true s", run_s, rounds, 1);
    if (pool) {
      print_samples(32, "pooled create s", pool_s, rounds, 1);
      print_samples(32, "pooled create+hotplug s", pool_hp_s, rounds, 1);
      print_samples(32, "pooled run --rm true s", pool_run_s, rounds, 1);
    }
    print_samples(32, "ours qemu+shim PSS MiB", ours_t, rounds, mib);
    print_samples(32, "baseline PSS MiB", base_q, rounds, mib);
  }
  status = 0;

out:
  cleanup();
  if (interrupted) {
    fprintf(stderr, "boot: interrupted; everything started was cleaned up\n");
    status = 130;
  }
  katavm_free(check);
  qemu_args_clear(&args);
  katavm_runtime_free(g_rt);
  g_free(ours_s);
  g_free(base_s);
  g_free(ours_q);
  g_free(ours_sh);
  g_free(ours_t);
  g_free(base_q);
  g_free(run_s);
  g_free(pool_s);
  g_free(pool_hp_s);
  g_free(pool_run_s);
  return status;
}
