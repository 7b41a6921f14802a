/* bench/exec.c: what the exec path costs over the channel it runs on.
 *
 *   exec [-n N] [--mib M] [--rounds R] [--json]
 *        (N latency pairs, default 20; M MiB per stream, default 256;
 *         R stream rounds, default 7)
 *
 * Everything a caller does with a container process travels guest process
 * -> agent -> virtio-serial -> QEMU -> shim -> caller's pipe (the shim
 * writes output into the pipe the library handed it; lib/shim/relay.c).
 * This measures that path against the parts of it we cannot make faster,
 * in one invocation so that both sides see the same machine load:
 *
 * - throughput, ours: in a sandbox (1 vCPU, 512 MiB) with a busybox
 *   container (main process `sleep 100000`), katavm_exec() of
 *   `dd if=/dev/zero bs=1M count=M` without stdin, its stdout read as fast
 *   as possible. MB/s = bytes / (exec call .. stdout EOF): what a caller
 *   streaming a process's output gets, start-up included.
 * - throughput, floor: the same bytes pushed raw through a virtio-serial
 *   port of the same guest: plain qemu-system-x86_64 with the sandbox's
 *   kernel, initrd, command line, accelerator, CPU model, memory and vCPUs
 *   (copied from our QEMU's /proc/PID/cmdline, as bench/boot.c does), the
 *   agent port plus a port io.katavm.bench.0 on its own unix socket, and
 *   katavm.bench_mib=M appended to the command line; the agent then writes
 *   M MiB of zeros to that port from a static buffer, then M MiB more made
 *   as dd makes them: each MiB read from /dev/zero, then written
 *   (agent/bench.c). MB/s of each half as it arrives here: no process, no
 *   protocol, no shim. The second half is the floor the goal is measured
 *   against: `dd if=/dev/zero` pays for clearing its buffer on every read
 *   (~0.23 s per GiB of guest time under TCG), and a floor that skips that
 *   would count the producer's own work as our overhead. The static half
 *   is printed beside it. Each floor sample is a fresh VM, since the agent
 *   writes once per boot.
 * - reference, guest pipe: the same bytes through a pipe inside the guest
 *   alone, `sh -c 'dd if=/dev/zero bs=1M count=M | dd of=/dev/null bs=1M'`
 *   exec'd in the container: MB/s = bytes / (exec call .. exit, less the
 *   median exec latency of `true`). No host path at all; it shows what a
 *   process writing into a pipe costs this guest by itself (its 64 KiB
 *   busybox pipe is smaller than the agent's 4 MiB ones). Not a goal.
 * - latency: katavm_exec() of `true` until katavm_process_wait() returns
 *   with stdout/stderr drained, against katavm_sandbox_agent_check(), the
 *   cheapest round trip through the same shim and channel (the floor).
 *
 * Stream samples alternate ours/floor (R of each) and latency samples
 * alternate exec/check, so slow drifts of a shared machine hit both. The
 * sandbox stays up (idle) while a floor VM runs; the CPU its QEMU used
 * meanwhile is reported, so that this small handicap of the floor is
 * visible. It reports median/min/max and the ratios (goal: throughput
 * ours/floor >= 0.8), and the CPU that QEMU, shim and this process used
 * while streaming, which says which of them limits the rate; it asserts
 * nothing.
 *
 * Nothing is left behind: the sandbox is destroyed, every floor QEMU killed
 * and reaped, temporary files removed, also on failure and on
 * SIGINT/SIGTERM (the handler only sets a flag; the waits below poll it).
 *
 * Environment: as for any libkatavm program (KATAVM_ROOT, KATAVM_KERNEL,
 * KATAVM_INITRD, KATAVM_SHIM, ...), plus KATAVM_MKROOTFS to point at
 * tests/rootfs/mkrootfs.sh when not run from this source tree; see
 * bench/README.md.
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

#define GOAL_RATIO 0.8
/* Stream rounds (--rounds): the floor's samples spread widely within one
 * run and the host's speed drifts within a minute, so with few rounds one
 * odd sample moves a median. */
#define STREAM_ROUNDS_DEFAULT 7
#define STREAM_ROUNDS_MAX 15
/* Untimed execs and checks first: the first ones after boot translate the
 * code path under TCG and would only measure that. */
#define WARMUP 2
#define BENCH_PORT "io.katavm.bench.0"
/* Not timing limits: they only keep a floor guest that never sends, or a
 * stream that stalls, from hanging the benchmark forever. */
#define FLOOR_HANG_GUARD_S 300.0
#define STALL_GUARD_S 120.0
#define CONNECT_RETRY_US 2000
/* Large reads: the reader must never be what limits either side. */
#define READ_BUF (1024 * 1024)

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* ---- what must be undone on any exit ---- */

static katavm_runtime *g_rt;
static char *g_sandbox_id; /* sandbox created and not yet destroyed */
static pid_t g_floor_pid;  /* floor QEMU spawned and not yet reaped */
static char *g_tmpdir;     /* rootfs bundle, floor sockets and QEMU log */

static void print_err(const char *what, katavm_error *e) {
  fprintf(stderr, "exec: %s: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(katavm_error_code(e)));
  katavm_error_free(e);
}

static void destroy_sandbox(void) {
  if (!g_sandbox_id)
    return;
  katavm_error *e = NULL;
  if (katavm_sandbox_destroy(g_rt, g_sandbox_id, &e) < 0)
    print_err("katavm_sandbox_destroy", e);
  g_clear_pointer(&g_sandbox_id, g_free);
}

static void kill_floor(void) {
  if (g_floor_pid <= 0)
    return;
  kill(g_floor_pid, SIGKILL);
  while (waitpid(g_floor_pid, NULL, 0) < 0 && errno == EINTR)
    ;
  g_floor_pid = 0;
}

static void cleanup(void) {
  kill_floor();
  /* The sandbox before the files: its rootfs is bind-mounted from them. */
  destroy_sandbox();
  if (g_tmpdir) {
    /* Only our own directory, made by g_dir_make_tmp; rm -rf because the
     * busybox rootfs is a tree of hundreds of symlinks. */
    const char *argv[] = {"rm", "-rf", "--one-file-system", g_tmpdir, NULL};
    g_autoptr(GError) e = NULL;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL,
                      &e))
      fprintf(stderr, "exec: cannot remove %s: %s\n", g_tmpdir, e->message);
    g_clear_pointer(&g_tmpdir, g_free);
  }
}

/* ---- small helpers ---- */

/* CPU seconds (user + system) a process has used so far, -1 if unknown:
 * fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the
 * command name, which may itself contain spaces. */
static double cpu_s(pid_t pid) {
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return -1;
  const char *p = strrchr(text, ')');
  if (!p)
    return -1;
  g_auto(GStrv) f = g_strsplit(p + 2, " ", 0);
  /* f[0] is field 3 (state): utime is field 14, stime 15. */
  if (g_strv_length(f) < 13)
    return -1;
  double ticks = g_ascii_strtod(f[11], NULL) + g_ascii_strtod(f[12], NULL);
  return ticks / (double)sysconf(_SC_CLK_TCK);
}

/* A writable busybox bundle under g_tmpdir (writable like the tests': the
 * spec's default read-only root would do for dd, but the bundle is the one
 * everything else in tests/ uses). */
static char *make_bundle(void) {
  g_autofree char *script = mkrootfs_path();
  char *dir = g_build_filename(g_tmpdir, "bundle", NULL);
  const char *argv[] = {script, "--bundle", "--writable", dir, NULL};
  int status = -1;
  g_autofree char *err_text = NULL;
  g_autoptr(GError) e = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                    &err_text, &status, &e)) {
    fprintf(stderr, "exec: %s: %s (set KATAVM_MKROOTFS)\n", script, e->message);
    g_free(dir);
    return NULL;
  }
  if (!g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "exec: %s failed: %s\n", script, err_text);
    g_free(dir);
    return NULL;
  }
  return dir;
}

/* ---- reading a guest process's output ---- */

typedef struct {
  guint64 out_bytes;
  double first_byte_s; /* since the start given to drain(); -1: no byte */
  double eof_s;        /* stdout EOF */
  GString *err;        /* stderr, for error messages */
} Drained;

/* Reads stdout (counting, discarding) and stderr of `p` until both are at
 * EOF. Polls the interrupt flag every 100 ms. FALSE when interrupted or a
 * read fails. */
static gboolean drain(katavm_process *p, double t0, char *buf, Drained *d) {
  int fds[2] = {katavm_process_stdout_fd(p), katavm_process_stderr_fd(p)};
  d->out_bytes = 0;
  d->first_byte_s = d->eof_s = -1;
  double last_data = now_s();
  while (fds[0] >= 0 || fds[1] >= 0) {
    if (interrupted)
      return FALSE;
    struct pollfd pf[2];
    int map[2], n = 0;
    for (int k = 0; k < 2; k++)
      if (fds[k] >= 0) {
        pf[n] = (struct pollfd){.fd = fds[k], .events = POLLIN};
        map[n++] = k;
      }
    int r = poll(pf, n, 100);
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "exec: poll: %s\n", g_strerror(errno));
      return FALSE;
    }
    if (r <= 0) {
      if (now_s() - last_data > STALL_GUARD_S) {
        fprintf(stderr, "exec: no output for %.0f s\n", STALL_GUARD_S);
        return FALSE;
      }
      continue;
    }
    for (int i = 0; i < n; i++) {
      if (!pf[i].revents)
        continue;
      int k = map[i];
      /* Drain what is there before polling again: one poll per read would
       * cost a system call per 64 KiB for nothing. */
      for (;;) {
        ssize_t got = read(fds[k], buf, READ_BUF);
        if (got > 0) {
          last_data = now_s();
          if (k == 0) {
            if (d->out_bytes == 0)
              d->first_byte_s = last_data - t0;
            d->out_bytes += (guint64)got;
          } else if (d->err->len < 4096) {
            g_string_append_len(d->err, buf, got);
          }
          continue;
        }
        if (got < 0 && errno == EINTR)
          continue;
        if (got < 0 && errno == EAGAIN)
          break;
        if (got < 0) {
          fprintf(stderr, "exec: read: %s\n", g_strerror(errno));
          return FALSE;
        }
        /* EOF. The fds belong to the handle: not ours to close. */
        if (k == 0)
          d->eof_s = now_s() - t0;
        fds[k] = -1;
        break;
      }
    }
  }
  return TRUE;
}

/* Runs argv in container "c" and reads its output to the end. *total_s is
 * exec call .. process exit known (after both streams ended). */
static gboolean run_exec(katavm_sandbox *sb, const char *const *argv, char *buf, Drained *d,
                         double *total_s, int *exit_code) {
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = argv;
  cfg.no_stdin = 1;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  double t0 = now_s();
  if (katavm_exec(sb, "c", &cfg, &p, &e) < 0) {
    print_err("katavm_exec", e);
    return FALSE;
  }
  gboolean ok = drain(p, t0, buf, d);
  if (ok) {
    /* Both streams ended, so the exit status is on its way or there. */
    if (katavm_process_wait(p, 60000, exit_code, &e) < 0) {
      print_err("katavm_process_wait", e);
      ok = FALSE;
    }
    *total_s = now_s() - t0;
  }
  if (!ok && !interrupted)
    katavm_process_signal(p, SIGKILL, NULL);
  katavm_process_free(p);
  return ok;
}

/* ---- throughput, ours ---- */

typedef struct {
  double mbps;       /* bytes / (exec call .. stdout EOF) */
  double mbps_first; /* bytes / (first byte .. stdout EOF) */
  double start_s;    /* exec call .. first byte */
  /* CPU used meanwhile, in % of one core: where the time goes (QEMU runs
   * the one vCPU, so ~100% there means the guest is the limit). */
  double qemu_pct, shim_pct, self_pct;
} StreamResult;

/* pids: {QEMU, shim}; our own share (our reads of the pipe; output does not
 * pass the library's I/O thread) is read from /proc/self. */
static gboolean stream_ours(katavm_sandbox *sb, guint mib, const pid_t pids[2], char *buf,
                            StreamResult *r) {
  g_autofree char *count = g_strdup_printf("count=%u", mib);
  const char *argv[] = {"dd", "if=/dev/zero", "bs=1M", count, NULL};
  Drained d = {.err = g_string_new(NULL)};
  double total_s = 0;
  int code = -1;
  double q0 = cpu_s(pids[0]), s0 = cpu_s(pids[1]), m0 = cpu_s(getpid());
  gboolean ok = run_exec(sb, argv, buf, &d, &total_s, &code);
  double q1 = cpu_s(pids[0]), s1 = cpu_s(pids[1]), m1 = cpu_s(getpid());
  guint64 want = (guint64)mib << 20;
  if (ok && (code != 0 || d.out_bytes != want)) {
    fprintf(stderr,
            "exec: dd exited %d after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes: %s\n",
            code, d.out_bytes, want, d.err->str);
    ok = FALSE;
  }
  if (ok) {
    r->mbps = want / d.eof_s / 1e6;
    r->mbps_first = want / (d.eof_s - d.first_byte_s) / 1e6;
    r->start_s = d.first_byte_s;
    r->qemu_pct = q0 >= 0 && q1 >= 0 ? 100 * (q1 - q0) / total_s : -1;
    r->shim_pct = s0 >= 0 && s1 >= 0 ? 100 * (s1 - s0) / total_s : -1;
    r->self_pct = m0 >= 0 && m1 >= 0 ? 100 * (m1 - m0) / total_s : -1;
  }
  g_string_free(d.err, TRUE);
  return ok;
}

/* ---- reference: a pipe inside the guest ---- */

static gboolean stream_guest_pipe(katavm_sandbox *sb, guint mib, double exec_latency_s, char *buf,
                                  double *mbps) {
  g_autofree char *cmd =
      g_strdup_printf("dd if=/dev/zero bs=1M count=%u 2>/dev/null | dd of=/dev/null bs=1M "
                      "2>/dev/null",
                      mib);
  const char *argv[] = {"sh", "-c", cmd, NULL};
  Drained d = {.err = g_string_new(NULL)};
  double total_s = 0;
  int code = -1;
  gboolean ok = run_exec(sb, argv, buf, &d, &total_s, &code);
  if (ok && code != 0) {
    fprintf(stderr, "exec: guest pipe reference exited %d: %s\n", code, d.err->str);
    ok = FALSE;
  }
  if (ok)
    *mbps = ((guint64)mib << 20) / MAX(total_s - exec_latency_s, 1e-3) / 1e6;
  g_string_free(d.err, TRUE);
  return ok;
}

/* ---- throughput, floor ---- */

static void print_qemu_log(void) {
  g_autofree char *log = g_build_filename(g_tmpdir, "qemu.log", NULL);
  g_autofree char *text = NULL;
  if (g_file_get_contents(log, &text, NULL, NULL) && *text)
    fprintf(stderr, "exec: floor QEMU said:\n%s", text);
}

static gboolean sock_addr(const char *path, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa->sun_path) {
    fprintf(stderr, "exec: socket path too long: %s\n", path);
    return FALSE;
  }
  strcpy(sa->sun_path, path);
  return TRUE;
}

/* Boots a floor VM, reads 2 x `mib` MiB from its bench port, kills it.
 * The guest writes the first half from a static buffer and the second
 * reading each MiB from /dev/zero first, as dd does (agent/bench.c).
 * *mbps_static: mib MiB / (first byte .. mib-th MiB); *mbps_dd: mib MiB /
 * (mib-th MiB .. last byte); *qemu_pct: CPU its QEMU used meanwhile, in %
 * of one core. */
static gboolean stream_floor(const QemuArgs *a, guint mib, char *buf, double *mbps_static,
                             double *mbps_dd, double *qemu_pct) {
  g_autofree char *agent_sock = g_build_filename(g_tmpdir, "agent.sock", NULL);
  g_autofree char *bench_sock = g_build_filename(g_tmpdir, "bench.sock", NULL);
  g_autofree char *log = g_build_filename(g_tmpdir, "qemu.log", NULL);
  unlink(agent_sock);
  unlink(bench_sock);
  g_autofree char *agent_chr =
      g_strdup_printf("socket,id=a,path=%s,server=on,wait=off", agent_sock);
  g_autofree char *bench_chr =
      g_strdup_printf("socket,id=b,path=%s,server=on,wait=off", bench_sock);
  g_autofree char *append = g_strdup_printf("%s katavm.bench_mib=%u", a->append, mib);
  /* The agent port is there because the agent needs its channel to get
   * past boot (late modules start once it is open); nobody connects to it,
   * so the agent just waits for a host and costs nothing. */
  const char *argv[] = {
      a->qemu,
      "-machine",
      "q35",
      "-accel",
      a->accel,
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
      "-serial",
      "file:/dev/null",
      "-kernel",
      a->kernel,
      "-initrd",
      a->initrd,
      "-append",
      append,
      "-device",
      "virtio-serial-pci",
      "-chardev",
      agent_chr,
      "-device",
      "virtserialport,chardev=a,name=io.katavm.agent.0",
      "-chardev",
      bench_chr,
      "-device",
      "virtserialport,chardev=b,name=" BENCH_PORT,
      NULL,
  };
  /* The agent socket is only checked: QEMU must be able to bind it. */
  struct sockaddr_un sa;
  if (!sock_addr(agent_sock, &sa) || !sock_addr(bench_sock, &sa))
    return FALSE;

  double t0 = 0;
  pid_t pid = spawn_qemu("exec", argv, log, &t0);
  if (pid < 0)
    return FALSE;
  g_floor_pid = pid;

  guint64 half = (guint64)mib << 20, want = 2 * half, got = 0;
  double t_first = -1, t_half = -1, t_last = -1, last_data = now_s();
  double c_first = -1, c_last = -1;
  int fd = -1;
  gboolean ok = FALSE;
  while (!interrupted) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      g_floor_pid = 0;
      fprintf(stderr, "exec: floor QEMU exited early (status 0x%x)\n", status);
      print_qemu_log();
      break;
    }
    if (fd < 0) {
      if (now_s() - t0 > FLOOR_HANG_GUARD_S) {
        fprintf(stderr, "exec: floor QEMU socket never appeared\n");
        break;
      }
      fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        fprintf(stderr, "exec: socket: %s\n", g_strerror(errno));
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
    int n = poll(&pfd, 1, 100);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "exec: poll: %s\n", g_strerror(errno));
      break;
    }
    if (n <= 0) {
      /* Before the first byte the guest is still booting. */
      double guard = t_first < 0 ? FLOOR_HANG_GUARD_S : STALL_GUARD_S;
      if (now_s() - (t_first < 0 ? t0 : last_data) > guard) {
        fprintf(stderr,
                "exec: floor guest sent %" G_GUINT64_FORMAT " bytes, then nothing for %.0f s\n",
                got, guard);
        break;
      }
      continue;
    }
    /* Reads stop at the halfway mark, so that it is timed exactly. */
    guint64 upto = got < half ? half : want;
    ssize_t k = read(fd, buf, MIN((guint64)READ_BUF, upto - got));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      fprintf(stderr,
              "exec: floor stream ended after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
              " bytes%s%s\n",
              got, want, k < 0 ? ": " : "", k < 0 ? g_strerror(errno) : "");
      break;
    }
    last_data = now_s();
    if (t_first < 0) {
      t_first = last_data;
      c_first = cpu_s(pid);
    }
    got += (guint64)k;
    if (got == half)
      t_half = last_data;
    if (got == want) {
      t_last = last_data;
      c_last = cpu_s(pid);
      ok = TRUE;
      break;
    }
  }
  if (fd >= 0)
    close(fd);
  kill_floor();
  unlink(agent_sock);
  unlink(bench_sock);
  if (ok) {
    *mbps_static = half / (t_half - t_first) / 1e6;
    *mbps_dd = half / (t_last - t_half) / 1e6;
    *qemu_pct = c_first >= 0 && c_last >= 0 ? 100 * (c_last - c_first) / (t_last - t_first) : -1;
  }
  return ok;
}

/* ---- latency ---- */

static gboolean latency_exec(katavm_sandbox *sb, char *buf, double *s) {
  const char *argv[] = {"true", NULL};
  Drained d = {.err = g_string_new(NULL)};
  int code = -1;
  gboolean ok = run_exec(sb, argv, buf, &d, s, &code);
  if (ok && code != 0) {
    fprintf(stderr, "exec: `true` exited %d: %s\n", code, d.err->str);
    ok = FALSE;
  }
  g_string_free(d.err, TRUE);
  return ok;
}

static gboolean latency_check(katavm_sandbox *sb, double *s) {
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  double t0 = now_s();
  if (katavm_sandbox_agent_check(sb, &gi, &e) < 0) {
    print_err("katavm_sandbox_agent_check", e);
    return FALSE;
  }
  /* Our own clock, not gi.round_trip_us: the exec side is timed the same
   * way, call to return. */
  *s = now_s() - t0;
  return TRUE;
}

/* ---- statistics and output ---- */

static gboolean parse_count(const char *s, long lo, long hi, guint *out) {
  char *end;
  errno = 0;
  long n = strtol(s, &end, 10);
  if (errno || end == s || *end || n < lo || n > hi)
    return FALSE;
  *out = (guint)n;
  return TRUE;
}

int main(int argc, char **argv) {
  guint n_lat = 20, mib = 256, rounds = STREAM_ROUNDS_DEFAULT;
  gboolean json = FALSE;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      json = TRUE;
    } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      if (!parse_count(argv[++i], 1, 10000, &n_lat)) {
        fprintf(stderr, "exec: -n wants a count from 1 to 10000\n");
        return 2;
      }
    } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
      if (!parse_count(argv[++i], 1, STREAM_ROUNDS_MAX, &rounds)) {
        fprintf(stderr, "exec: --rounds wants a count from 1 to %d\n", STREAM_ROUNDS_MAX);
        return 2;
      }
    } else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
      /* The agent's own bound on katavm.bench_mib. */
      if (!parse_count(argv[++i], 1, 65536, &mib)) {
        fprintf(stderr, "exec: --mib wants a size from 1 to 65536\n");
        return 2;
      }
    } else {
      fprintf(stderr,
              "usage: exec [-n N] [--mib M] [--rounds R] [--json]\n"
              "  exec stdout throughput (M MiB, default 256; R rounds, "
              "default %d) "
              "against a raw virtio-serial port of the same guest, and exec "
              "latency against an agent round trip (N each, default 20)\n",
              STREAM_ROUNDS_DEFAULT);
      return 2;
    }
  }

  /* SA_RESTART keeps the library's system calls from seeing EINTR; our own
   * waits poll the flag. */
  catch_stop_signals(on_signal);

  int status = 1;
  katavm_error *e = NULL;
  katavm_sandbox *sb = NULL;
  char *check = NULL, *js = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *bundle = NULL;
  g_autofree char *load_start = loadavg();
  g_autofree char *load_end = NULL;
  g_autofree char *buf = g_malloc(READ_BUF);
  QemuArgs args = {0};
  double ours[STREAM_ROUNDS_MAX], ours_first[STREAM_ROUNDS_MAX];
  double ours_start[STREAM_ROUNDS_MAX], floor_[STREAM_ROUNDS_MAX];
  double floor_static[STREAM_ROUNDS_MAX];
  double floor_qemu[STREAM_ROUNDS_MAX], gpipe[STREAM_ROUNDS_MAX];
  double ours_qemu[STREAM_ROUNDS_MAX], ours_shim[STREAM_ROUNDS_MAX];
  double ours_self[STREAM_ROUNDS_MAX];
  double *lat_exec = g_new0(double, n_lat), *lat_check = g_new0(double, n_lat);
  double idle_cpu = 0, floor_wall = 0;
  gint64 qpid = 0, spid = 0;
  g_autofree char *id = g_strdup_printf("bench-exec-%d", (int)getpid());
  katavm_sandbox_config cfg;
  katavm_container_config cc;
  const char *main_argv[] = {"sleep", "100000", NULL};

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

  g_tmpdir = g_dir_make_tmp("kvbexec-XXXXXX", NULL);
  if (!g_tmpdir) {
    fprintf(stderr, "exec: cannot make a temporary directory\n");
    goto out;
  }
  if (!(bundle = make_bundle()))
    goto out;

  /* ---- the sandbox and its container ---- */
  katavm_sandbox_config_init(&cfg);
  /* Per process: a leftover of a killed run or a concurrent bench cannot
   * collide with it. */
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.memory_mib = 512;
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
  if (katavm_container_add(sb, "c", &cc, NULL, &e) < 0) {
    print_err("katavm_container_add", e);
    goto out;
  }
  if (katavm_container_start(sb, "c", &e) < 0) {
    print_err("katavm_container_start", e);
    goto out;
  }
  if (katavm_sandbox_inspect(sb, &js, &e) < 0) {
    print_err("katavm_sandbox_inspect", e);
    goto out;
  }
  if (!json_top_int(js, "qemu_pid", &qpid) || qpid <= 0 || !json_top_int(js, "shim_pid", &spid) ||
      spid <= 0) {
    fprintf(stderr, "exec: no qemu_pid/shim_pid in inspect output: %s\n", js);
    goto out;
  }
  if (!qemu_args_read((pid_t)qpid, &args))
    goto out;

  /* ---- latency first: the sandbox is freshly booted and otherwise idle,
   * and no floor VM has run yet ---- */
  for (guint i = 0; i < WARMUP; i++) {
    double s;
    if (!latency_exec(sb, buf, &s) || !latency_check(sb, &s))
      goto out;
  }
  for (guint i = 0; i < n_lat && !interrupted; i++) {
    gboolean ok = i % 2 == 0
                      ? latency_exec(sb, buf, &lat_exec[i]) && latency_check(sb, &lat_check[i])
                      : latency_check(sb, &lat_check[i]) && latency_exec(sb, buf, &lat_exec[i]);
    if (!ok)
      goto out;
  }
  if (interrupted)
    goto out;
  if (!json)
    fprintf(stderr,
            "latency: exec `true` %.1f ms, agent check %.1f ms "
            "(medians of %u)\n",
            stats(lat_exec, n_lat).median * 1e3, stats(lat_check, n_lat).median * 1e3, n_lat);

  /* ---- throughput, alternating which side goes first ---- */
  for (guint i = 0; i < rounds && !interrupted; i++) {
    StreamResult o = {0};
    double f = 0, fs = 0, fq = -1;
    const pid_t pids[2] = {(pid_t)qpid, (pid_t)spid};
    for (int side = 0; side < 2; side++) {
      gboolean do_ours = (side == 0) == (i % 2 == 0);
      gboolean ok;
      if (do_ours) {
        ok = stream_ours(sb, mib, pids, buf, &o);
      } else {
        double c0 = cpu_s((pid_t)qpid), w0 = now_s();
        ok = stream_floor(&args, mib, buf, &fs, &f, &fq);
        double c1 = cpu_s((pid_t)qpid);
        if (c0 >= 0 && c1 >= 0) {
          idle_cpu += c1 - c0;
          floor_wall += now_s() - w0;
        }
      }
      if (!ok || interrupted)
        goto out;
    }
    if (!stream_guest_pipe(sb, mib, stats(lat_exec, n_lat).median, buf, &gpipe[i]) || interrupted)
      goto out;
    ours[i] = o.mbps;
    ours_first[i] = o.mbps_first;
    ours_start[i] = o.start_s;
    floor_[i] = f;
    floor_static[i] = fs;
    floor_qemu[i] = fq;
    ours_qemu[i] = o.qemu_pct;
    ours_shim[i] = o.shim_pct;
    ours_self[i] = o.self_pct;
    if (!json)
      fprintf(stderr,
              "stream %u/%d: ours %.1f MB/s, floor %.1f MB/s (static "
              "buffer %.1f), guest pipe %.1f MB/s\n",
              i + 1, rounds, o.mbps, f, fs, gpipe[i]);
  }
  if (interrupted)
    goto out;
  load_end = loadavg();

  /* Latency in ms from here on, for the table and the JSON alike. */
  for (guint i = 0; i < n_lat; i++) {
    lat_exec[i] *= 1e3;
    lat_check[i] *= 1e3;
  }
  Stats so = stats(ours, rounds), sf = stats(floor_, rounds);
  Stats le = stats(lat_exec, n_lat), lc = stats(lat_check, n_lat);
  double t_ratio = so.median / sf.median, l_ratio = le.median / lc.median;
  double g_ratio = so.median / stats(gpipe, rounds).median;
  double s_ratio = so.median / stats(floor_static, rounds).median;
  /* References beside the goal's ratio: ours timed from its first byte,
   * as the floor is (its boot and port set-up are not in it; exec's
   * start-up is, in the goal's ratio, and has its own figure below); and
   * the median of each round's own ratio, ours against the floor sample
   * taken next to it, which the host's drift over minutes moves less than
   * a ratio of medians. */
  double f_ratio = stats(ours_first, rounds).median / sf.median;
  double pairs[STREAM_ROUNDS_MAX];
  for (guint i = 0; i < rounds; i++)
    pairs[i] = ours[i] / floor_[i];
  double p_ratio = stats(pairs, rounds).median;
  gboolean met = t_ratio >= GOAL_RATIO;
  double idle_pct = floor_wall > 0 ? 100 * idle_cpu / floor_wall : -1;

  if (json) {
    g_autoptr(GString) j = g_string_new("{");
    g_string_append_printf(j,
                           "\"stream_mib\":%u,\"stream_rounds\":%u,"
                           "\"latency_rounds\":%u,",
                           mib, rounds, n_lat);
    json_machine_guest(j, load_start, load_end, accel, &args);
    g_string_append(j, ",\"throughput\":{");
    json_stats(j, "ours_mbps", ours, rounds, "%.1f");
    g_string_append(j, ",");
    json_stats(j, "ours_from_first_byte_mbps", ours_first, rounds, "%.1f");
    g_string_append(j, ",");
    json_stats(j, "ours_first_byte_s", ours_start, rounds, "%.3f");
    g_string_append(j, ",");
    json_stats(j, "floor_mbps", floor_, rounds, "%.1f");
    g_string_append(j, ",");
    json_stats(j, "floor_static_buffer_mbps", floor_static, rounds, "%.1f");
    g_string_append_printf(j, ",\"ratio_vs_floor_static_buffer\":%.3f,", s_ratio);
    g_string_append_printf(j, "\"ratio_from_first_byte\":%.3f,", f_ratio);
    g_string_append_printf(j, "\"ratio_median_of_rounds\":%.3f,", p_ratio);
    json_stats(j, "guest_pipe_mbps", gpipe, rounds, "%.1f");
    g_string_append_printf(j, ",\"ratio_vs_guest_pipe\":%.3f", g_ratio);
    g_string_append(j, ",\"cpu_pct\":{");
    json_stats(j, "ours_qemu", ours_qemu, rounds, "%.0f");
    g_string_append(j, ",");
    json_stats(j, "ours_shim", ours_shim, rounds, "%.0f");
    g_string_append(j, ",");
    json_stats(j, "ours_bench_process", ours_self, rounds, "%.0f");
    g_string_append(j, ",");
    json_stats(j, "floor_qemu", floor_qemu, rounds, "%.0f");
    g_string_append(j, "}");
    g_string_append_printf(j,
                           ",\"ratio\":%.3f,\"goal_ratio\":%.2f,"
                           "\"ratio_met\":%s,\"idle_sandbox_cpu_pct_during_floor\":"
                           "%.1f},\"latency\":{",
                           t_ratio, GOAL_RATIO, met ? "true" : "false", idle_pct);
    json_stats(j, "exec_true_ms", lat_exec, n_lat, "%.2f");
    g_string_append(j, ",");
    json_stats(j, "agent_check_ms", lat_check, n_lat, "%.2f");
    g_string_append_printf(j, ",\"ratio\":%.3f}}", l_ratio);
    printf("%s\n", j->str);
  } else {
    printf("katavm exec benchmark: %u MiB x %u streams (ours/floor "
           "alternating), %u latency pairs\n",
           mib, rounds, n_lat);
    printf("machine: nproc %d, loadavg %s (start) / %s (end), accel %s\n", nproc(), load_start,
           load_end, accel);
    printf("guest: %s -accel %s -cpu %s -m %s -smp %s\n", args.qemu, args.accel, args.cpu, args.mem,
           args.smp);
    printf("  kernel %s\n  initrd %s\n\n", args.kernel, args.initrd);
    printf("  %-36s %9s %9s %9s\n", "throughput (MB = 10^6 bytes)", "median", "min", "max");
    print_row(36, "ours: exec dd, call .. stdout EOF", ours, rounds, 1, "MB/s");
    print_row(36, "ours: first byte .. stdout EOF", ours_first, rounds, 1, "MB/s");
    print_row(36, "ours: exec call .. first byte", ours_start, rounds, 1e3, "ms");
    print_row(36, "floor: dd's bytes, raw port", floor_, rounds, 1, "MB/s");
    printf("  ratio ours/floor (medians)           %9.3f   goal >= %.2f: %s\n", t_ratio, GOAL_RATIO,
           met ? "met" : "NOT met");
    printf("  ratio, ours from its first byte      %9.3f   (reference)\n", f_ratio);
    printf("  ratio, median of the rounds' own     %9.3f   (reference)\n", p_ratio);
    print_row(36, "floor, static buffer (no /dev/zero)", floor_static, rounds, 1, "MB/s");
    printf("  ratio ours/static-buffer floor       %9.3f   (reference)\n", s_ratio);
    print_row(36, "reference: dd | dd inside the guest", gpipe, rounds, 1, "MB/s");
    printf("  ratio ours/guest pipe (medians)      %9.3f   (not a goal)\n", g_ratio);
    printf("  idle sandbox QEMU CPU while the floor ran: %.1f%%\n\n", idle_pct);
    printf("  %-36s %9s %9s %9s\n", "CPU while streaming (% of a core)", "median", "min", "max");
    print_row(36, "ours: QEMU", ours_qemu, rounds, 1, "%");
    print_row(36, "ours: shim", ours_shim, rounds, 1, "%");
    print_row(36, "ours: this process (the reader)", ours_self, rounds, 1, "%");
    print_row(36, "floor: QEMU", floor_qemu, rounds, 1, "%");
    printf("\n");
    printf("  %-36s %9s %9s %9s\n", "latency", "median", "min", "max");
    print_row(36, "exec `true` .. wait, drained", lat_exec, n_lat, 1, "ms");
    print_row(36, "agent check round trip (floor)", lat_check, n_lat, 1, "ms");
    printf("  ratio exec/check (medians)           %9.2f\n\n", l_ratio);
    printf("samples in round order:\n");
    print_samples(36, "ours MB/s", ours, rounds, 1);
    print_samples(36, "floor MB/s", floor_, rounds, 1);
    print_samples(36, "floor, static buffer MB/s", floor_static, rounds, 1);
    print_samples(36, "guest pipe MB/s", gpipe, rounds, 1);
    print_samples(36, "exec true ms", lat_exec, n_lat, 1);
    print_samples(36, "agent check ms", lat_check, n_lat, 1);
  }
  status = 0;

out:
  katavm_free(js);
  katavm_sandbox_close(sb);
  cleanup();
  if (interrupted) {
    fprintf(stderr, "exec: interrupted; everything started was cleaned up\n");
    status = 130;
  }
  katavm_free(check);
  qemu_args_clear(&args);
  katavm_runtime_free(g_rt);
  g_free(lat_exec);
  g_free(lat_check);
  return status;
}
