/* bench/density.c: how many idle sandboxes fit, and what each one costs.
 *
 *   density [-n N] [--settle S] [--no-baseline] [--json]
 *
 * - ours: N sandboxes (runtime defaults) created one after another, all
 *   kept alive. After S seconds of settling (default 10): the PSS of every
 *   host process of each sandbox (its shim, QEMU, virtiofsd and any
 *   process below them), summed and averaged per sandbox, split into
 *   anonymous, file-backed and shared-memory (memfd guest RAM) parts; the
 *   host's CPU use over 10 s of idling (all cores, and the sandboxes' own
 *   processes); then an agent round trip to every sandbox with all alive.
 * - baseline: N plain qemu-system-x86_64 booting the same kernel, initrd
 *   and command line (copied from our first QEMU's /proc/PID/cmdline) with
 *   only the agent's virtio-serial port, started one after another (each
 *   waited for until its agent's first byte), all kept alive, measured
 *   the same way. Ours are destroyed before the baseline starts, so the
 *   two never compete for memory.
 *
 * It asserts nothing. Everything started is removed on every path,
 * SIGINT/SIGTERM included.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <katavm/katavm.h>

#include <glib.h>

#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The goal of issue 19: at most 110 MiB per sandbox at N = 20. */
#define GOAL_PSS_MIB 110.0
#define IDLE_WINDOW_S 10
#define BASE_HANG_GUARD_S 300.0

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* ---- what must be undone on any exit ---- */

static katavm_runtime *g_rt;
static int g_n;
static char **g_ids;           /* created, not yet destroyed */
static katavm_sandbox **g_sbs; /* their open handles */
static pid_t *g_base;          /* baseline QEMUs not yet reaped */
static char *g_tmpdir;

static void print_err(const char *what, katavm_error *e) {
  fprintf(stderr, "density: %s: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(katavm_error_code(e)));
  katavm_error_free(e);
}

static void destroy_ours(void) {
  for (int i = 0; i < g_n; i++) {
    if (g_sbs && g_sbs[i]) {
      katavm_sandbox_close(g_sbs[i]);
      g_sbs[i] = NULL;
    }
    if (g_ids && g_ids[i]) {
      katavm_error *e = NULL;
      if (katavm_sandbox_destroy(g_rt, g_ids[i], &e) < 0)
        print_err(g_ids[i], e);
      g_clear_pointer(&g_ids[i], g_free);
    }
  }
}

static void kill_baseline(void) {
  for (int i = 0; g_base && i < g_n; i++)
    if (g_base[i] > 0)
      kill(g_base[i], SIGKILL);
  for (int i = 0; g_base && i < g_n; i++) {
    if (g_base[i] > 0)
      while (waitpid(g_base[i], NULL, 0) < 0 && errno == EINTR)
        ;
    g_base[i] = 0;
  }
}

static void cleanup(void) {
  kill_baseline();
  destroy_ours();
  if (g_tmpdir) {
    g_autoptr(GDir) d = g_dir_open(g_tmpdir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
      g_autofree char *p = g_build_filename(g_tmpdir, name, NULL);
      unlink(p);
    }
    rmdir(g_tmpdir);
    g_clear_pointer(&g_tmpdir, g_free);
  }
}

static gboolean sleep_s(int s) {
  for (int ms = 0; ms < s * 1000 && !interrupted; ms += 20)
    g_usleep(20 * 1000);
  return !interrupted;
}

/* ---- processes, memory and CPU ---- */

typedef struct {
  gint64 pss, anon, file, shmem; /* KiB */
} Pss;

static gint64 rollup_field(const char *text, const char *key) {
  g_autofree char *k = g_strdup_printf("\n%s:", key);
  const char *l = strstr(text, k);
  return l ? g_ascii_strtoll(l + strlen(k), NULL, 10) : 0;
}

static gboolean pss_add(pid_t pid, Pss *acc) {
  g_autofree char *path = g_strdup_printf("/proc/%d/smaps_rollup", (int)pid);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return FALSE;
  acc->pss += rollup_field(text, "Pss");
  acc->anon += rollup_field(text, "Pss_Anon");
  acc->file += rollup_field(text, "Pss_File");
  acc->shmem += rollup_field(text, "Pss_Shmem");
  return TRUE;
}

/* utime + stime of one process in clock ticks; -1 once gone. */
static gint64 proc_ticks(pid_t pid) {
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
  g_autofree char *st = NULL;
  if (!g_file_get_contents(path, &st, NULL, NULL))
    return -1;
  const char *rp = strrchr(st, ')');
  if (!rp)
    return -1;
  g_auto(GStrv) f = g_strsplit(rp + 2, " ", 16);
  if (g_strv_length(f) < 13)
    return -1;
  /* after ")": state(0) ppid(1) ... utime(11) stime(12) */
  return g_ascii_strtoll(f[11], NULL, 10) + g_ascii_strtoll(f[12], NULL, 10);
}

/* Host CPU: busy and total jiffies over all cores from /proc/stat. */
static void host_ticks(gint64 *busy, gint64 *total) {
  g_autofree char *text = NULL;
  *busy = *total = 0;
  if (!g_file_get_contents("/proc/stat", &text, NULL, NULL))
    return;
  g_auto(GStrv) f = g_strsplit_set(text, " \n", 16);
  /* "cpu  user nice system idle iowait irq softirq steal ..." */
  int k = 0;
  for (int i = 1; f[i] && k < 8; i++) {
    if (!*f[i])
      continue;
    gint64 v = g_ascii_strtoll(f[i], NULL, 10);
    *total += v;
    if (k != 3 && k != 4)
      *busy += v;
    k++;
  }
}

/* pids and everything below them (QEMU and virtiofsd may be daemonised,
 * so the caller names them too); a pid is counted once. */
static GArray *with_descendants(const pid_t *pids, guint n) {
  GArray *out = g_array_new(FALSE, FALSE, sizeof(pid_t));
  for (guint i = 0; i < n; i++)
    if (pids[i] > 0)
      g_array_append_val(out, pids[i]);
  g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(pid_t) * 2);
  DIR *d = opendir("/proc");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    pid_t pid = (pid_t)atoi(de->d_name);
    if (pid <= 0)
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
    g_autofree char *st = NULL;
    if (!g_file_get_contents(path, &st, NULL, NULL))
      continue;
    const char *rp = strrchr(st, ')');
    if (!rp || !rp[1] || !rp[2])
      continue;
    pid_t pair[2] = {pid, (pid_t)atoi(rp + 4)};
    g_array_append_vals(all, pair, 1);
  }
  if (d)
    closedir(d);
  for (gboolean grew = TRUE; grew;) {
    grew = FALSE;
    for (guint i = 0; i < all->len; i++) {
      pid_t *pair = &((pid_t *)all->data)[2 * i];
      gboolean have_child = FALSE, have_parent = FALSE;
      for (guint j = 0; j < out->len; j++) {
        pid_t q = g_array_index(out, pid_t, j);
        have_child |= q == pair[0];
        have_parent |= q == pair[1];
      }
      if (have_parent && !have_child) {
        g_array_append_val(out, pair[0]);
        grew = TRUE;
      }
    }
  }
  return out;
}

/* ---- one side's measurements ---- */

typedef struct {
  double create_total_s;
  double *create_s;
  Pss sum; /* over all processes of all N */
  Pss qemu, shim, vfsd, other;
  double host_cpu_pct;  /* busy share of all cores during the idle window */
  double procs_cpu_pct; /* the side's processes, % of one core, all N */
  double ksmd_cpu_pct;  /* the host's KSM thread, % of one core */
  guint answered;
  double *rtt_us;
} Side;

/* The pid of the kernel's ksmd thread, 0 if none. */
static pid_t ksmd_pid(void) {
  DIR *d = opendir("/proc");
  struct dirent *de;
  pid_t found = 0;
  while (!found && d && (de = readdir(d))) {
    pid_t pid = (pid_t)atoi(de->d_name);
    if (pid <= 0)
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%d/comm", (int)pid);
    g_autofree char *comm = NULL;
    if (g_file_get_contents(path, &comm, NULL, NULL) && !strcmp(g_strstrip(comm), "ksmd"))
      found = pid;
  }
  if (d)
    closedir(d);
  return found;
}

/* Idle CPU of the given processes and of the host over IDLE_WINDOW_S. */
static gboolean idle_cpu(GArray *pids, Side *s) {
  gint64 b0, t0, b1, t1, p0 = 0, p1 = 0;
  pid_t ksmd = ksmd_pid();
  gint64 k0 = ksmd ? proc_ticks(ksmd) : 0;
  host_ticks(&b0, &t0);
  for (guint i = 0; i < pids->len; i++)
    p0 += MAX(0, proc_ticks(g_array_index(pids, pid_t, i)));
  if (!sleep_s(IDLE_WINDOW_S))
    return FALSE;
  host_ticks(&b1, &t1);
  for (guint i = 0; i < pids->len; i++)
    p1 += MAX(0, proc_ticks(g_array_index(pids, pid_t, i)));
  long hz = sysconf(_SC_CLK_TCK);
  s->host_cpu_pct = t1 > t0 ? 100.0 * (b1 - b0) / (t1 - t0) : 0;
  s->procs_cpu_pct = 100.0 * (p1 - p0) / hz / IDLE_WINDOW_S;
  s->ksmd_cpu_pct = ksmd ? 100.0 * (proc_ticks(ksmd) - k0) / hz / IDLE_WINDOW_S : 0;
  return TRUE;
}

static gboolean run_ours(int n, int settle, QemuArgs *args, Side *s) {
  g_autofree pid_t *qemu = g_new0(pid_t, n), *shim = g_new0(pid_t, n), *vfsd = g_new0(pid_t, n);
  double t_all = now_s();
  for (int i = 0; i < n && !interrupted; i++) {
    katavm_sandbox_config cfg;
    katavm_sandbox_config_init(&cfg);
    g_autofree char *id = g_strdup_printf("bench-dens-%d-%d", (int)getpid(), i);
    cfg.id = id;
    katavm_error *e = NULL;
    double t0 = now_s();
    if (katavm_sandbox_create(g_rt, &cfg, &g_sbs[i], &e) < 0) {
      print_err("katavm_sandbox_create", e);
      return FALSE;
    }
    s->create_s[i] = now_s() - t0;
    g_ids[i] = g_strdup(id);
    char *js = NULL;
    if (katavm_sandbox_inspect(g_sbs[i], &js, &e) < 0) {
      print_err("katavm_sandbox_inspect", e);
      return FALSE;
    }
    gint64 q = 0, sh = 0, v = 0;
    json_top_int(js, "qemu_pid", &q);
    json_top_int(js, "shim_pid", &sh);
    json_top_int(js, "virtiofsd_pid", &v);
    katavm_free(js);
    qemu[i] = (pid_t)q;
    shim[i] = (pid_t)sh;
    vfsd[i] = (pid_t)v;
    if (i == 0 && !qemu_args_read(qemu[0], args))
      return FALSE;
    fprintf(stderr, "  ours %d/%d created in %.2f s\n", i + 1, n, s->create_s[i]);
  }
  s->create_total_s = now_s() - t_all;
  if (interrupted || !sleep_s(settle))
    return FALSE;

  g_autoptr(GArray) every = g_array_new(FALSE, FALSE, sizeof(pid_t));
  for (int i = 0; i < n; i++) {
    pid_t top[3] = {shim[i], qemu[i], vfsd[i]};
    g_autoptr(GArray) mine = with_descendants(top, 3);
    for (guint j = 0; j < mine->len; j++) {
      pid_t p = g_array_index(mine, pid_t, j);
      Pss *part = p == qemu[i]   ? &s->qemu
                  : p == shim[i] ? &s->shim
                  : p == vfsd[i] ? &s->vfsd
                                 : &s->other;
      pss_add(p, part);
      pss_add(p, &s->sum);
      g_array_append_val(every, p);
    }
  }
  if (!idle_cpu(every, s))
    return FALSE;
  for (int i = 0; i < n && !interrupted; i++) {
    katavm_guest_info gi = {.struct_size = sizeof gi};
    katavm_error *e = NULL;
    if (katavm_sandbox_agent_check(g_sbs[i], &gi, &e) < 0) {
      print_err(g_ids[i], e);
      continue;
    }
    s->rtt_us[s->answered++] = (double)gi.round_trip_us;
  }
  return !interrupted;
}

/* Boot baseline QEMU i and wait for its agent's first byte. */
static gboolean start_baseline(int i, const QemuArgs *a, double *boot_s) {
  g_autofree char *sock = g_strdup_printf("%s/a%d.sock", g_tmpdir, i);
  g_autofree char *log = g_strdup_printf("%s/q%d.log", g_tmpdir, i);
  g_autofree char *chardev = g_strdup_printf("socket,id=a,path=%s,server=on,wait=off", sock);
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
    fprintf(stderr, "density: socket path too long: %s\n", sock);
    return FALSE;
  }
  strcpy(sa.sun_path, sock);
  double t0 = 0;
  g_base[i] = spawn_qemu("density", argv, log, &t0);
  if (g_base[i] < 0) {
    g_base[i] = 0;
    return FALSE;
  }
  int fd = -1;
  while (!interrupted && now_s() - t0 < BASE_HANG_GUARD_S) {
    int status;
    if (waitpid(g_base[i], &status, WNOHANG) == g_base[i]) {
      g_base[i] = 0;
      fprintf(stderr, "density: baseline QEMU %d exited early (status 0x%x), see %s\n", i, status,
              log);
      break;
    }
    if (fd < 0) {
      fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0)
        break;
      if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        fd = -1;
        g_usleep(2000);
        continue;
      }
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 20) > 0) {
      char byte;
      gboolean got = read(fd, &byte, 1) == 1;
      close(fd);
      *boot_s = now_s() - t0;
      return got;
    }
  }
  if (fd >= 0)
    close(fd);
  return FALSE;
}

static gboolean run_baseline(int n, int settle, const QemuArgs *a, Side *s) {
  double t_all = now_s();
  for (int i = 0; i < n && !interrupted; i++) {
    if (!start_baseline(i, a, &s->create_s[i]))
      return FALSE;
    fprintf(stderr, "  baseline %d/%d booted in %.2f s\n", i + 1, n, s->create_s[i]);
  }
  s->create_total_s = now_s() - t_all;
  if (interrupted || !sleep_s(settle))
    return FALSE;
  g_autoptr(GArray) every = with_descendants(g_base, n);
  for (guint j = 0; j < every->len; j++) {
    pss_add(g_array_index(every, pid_t, j), &s->sum);
    pss_add(g_array_index(every, pid_t, j), &s->qemu);
  }
  return idle_cpu(every, s);
}

/* ---- output ---- */

static void json_pss(GString *j, const char *name, const Pss *p, int n) {
  g_string_append_printf(j,
                         "\"%s\":{\"pss_kib\":%.0f,\"anon_kib\":%.0f,\"file_kib\":%.0f,"
                         "\"shmem_kib\":%.0f}",
                         name, (double)p->pss / n, (double)p->anon / n, (double)p->file / n,
                         (double)p->shmem / n);
}

static void print_pss(const char *label, const Pss *p, int n) {
  const double m = 1.0 / 1024 / n;
  printf("  %-28s %8.1f %8.1f %8.1f %8.1f\n", label, p->pss * m, p->anon * m, p->file * m,
         p->shmem * m);
}

int main(int argc, char **argv) {
  int n = 20, settle = 10;
  gboolean json = FALSE, baseline = TRUE;
  for (int i = 1; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--json")) {
      json = TRUE;
    } else if (!strcmp(argv[i], "--no-baseline")) {
      baseline = FALSE;
    } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 500) {
        fprintf(stderr, "density: -n wants a count from 1 to 500\n");
        return 2;
      }
      n = (int)v;
    } else if (!strcmp(argv[i], "--settle") && i + 1 < argc) {
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 600) {
        fprintf(stderr, "density: --settle wants seconds from 0 to 600\n");
        return 2;
      }
      settle = (int)v;
    } else {
      fprintf(stderr, "usage: density [-n N] [--settle S] [--no-baseline] [--json]\n"
                      "  N idle sandboxes (default 20) against N plain QEMUs, PSS per sandbox,\n"
                      "  idle CPU, create time, agent round trip; S s settling (default 10)\n");
      return 2;
    }
  }
  catch_stop_signals(on_signal);
  g_n = n;
  g_ids = g_new0(char *, n);
  g_sbs = g_new0(katavm_sandbox *, n);
  g_base = g_new0(pid_t, n);
  Side ours = {.create_s = g_new0(double, n), .rtt_us = g_new0(double, n)};
  Side base = {.create_s = g_new0(double, n), .rtt_us = g_new0(double, n)};
  QemuArgs args = {0};
  int status = 1;
  katavm_error *e = NULL;
  char *check = NULL;
  g_autofree char *accel = NULL, *ksm = NULL;
  g_autofree char *load_start = loadavg(), *load_mid = NULL, *load_end = NULL;
  g_autofree char *ksm_run = NULL;

  if (katavm_runtime_new(&g_rt, &e) < 0) {
    print_err("katavm_runtime_new", e);
    goto out;
  }
  if (katavm_check_host(g_rt, &check, &e) < 0) {
    print_err("katavm_check_host", e);
    goto out;
  }
  accel = json_top_str(check, "accel");
  g_file_get_contents("/sys/kernel/mm/ksm/run", &ksm_run, NULL, NULL);
  ksm = g_strdup(ksm_run && ksm_run[0] == '1' ? "on" : "off");
  g_tmpdir = g_dir_make_tmp("kvdens-XXXXXX", NULL);
  if (!g_tmpdir) {
    fprintf(stderr, "density: cannot make a temporary directory\n");
    goto out;
  }
  if (!run_ours(n, settle, &args, &ours))
    goto out;
  load_mid = loadavg();
  destroy_ours();
  if (baseline && !run_baseline(n, settle, &args, &base))
    goto out;
  kill_baseline();
  load_end = loadavg();

  Stats rtt = ours.answered ? stats(ours.rtt_us, ours.answered) : (Stats){0};
  double avg = ours.sum.pss / 1024.0 / n;
  if (json) {
    g_autoptr(GString) j = g_string_new("{");
    g_string_append_printf(j, "\"n\":%d,\"settle_s\":%d,\"ksm\":\"%s\",", n, settle, ksm);
    json_machine_guest(j, load_start, load_end ? load_end : "?", accel ? accel : "?", &args);
    g_string_append(j, ",\"ours\":{");
    json_pss(j, "per_sandbox", &ours.sum, n);
    g_string_append_c(j, ',');
    json_pss(j, "qemu", &ours.qemu, n);
    g_string_append_c(j, ',');
    json_pss(j, "shim", &ours.shim, n);
    g_string_append_c(j, ',');
    json_pss(j, "virtiofsd", &ours.vfsd, n);
    g_string_append_c(j, ',');
    json_pss(j, "other", &ours.other, n);
    g_string_append_printf(j, ",\"create_total_s\":%.2f,", ours.create_total_s);
    json_stats(j, "create_s", ours.create_s, n, "%.3f");
    g_string_append_printf(j,
                           ",\"host_cpu_pct\":%.1f,\"procs_cpu_pct\":%.1f,\"ksmd_cpu_pct\":%.1f,"
                           "\"answered\":%u",
                           ours.host_cpu_pct, ours.procs_cpu_pct, ours.ksmd_cpu_pct, ours.answered);
    if (ours.answered) {
      g_string_append_c(j, ',');
      json_stats(j, "agent_rtt_us", ours.rtt_us, ours.answered, "%.0f");
    }
    g_string_append(j, "}");
    if (baseline) {
      g_string_append(j, ",\"baseline\":{");
      json_pss(j, "per_vm", &base.sum, n);
      g_string_append_printf(j, ",\"create_total_s\":%.2f,", base.create_total_s);
      json_stats(j, "boot_s", base.create_s, n, "%.3f");
      g_string_append_printf(j, ",\"host_cpu_pct\":%.1f,\"procs_cpu_pct\":%.1f}", base.host_cpu_pct,
                             base.procs_cpu_pct);
      g_string_append_printf(j, ",\"ratio_pss\":%.3f", (double)ours.sum.pss / base.sum.pss);
    }
    g_string_append_printf(j, ",\"goal_pss_mib\":%.0f,\"goal_met\":%s}", GOAL_PSS_MIB,
                           avg <= GOAL_PSS_MIB ? "true" : "false");
    printf("%s\n", j->str);
  } else {
    printf("katavm density benchmark: %d idle sandboxes, then %d plain QEMUs\n", n,
           baseline ? n : 0);
    printf("machine: nproc %d, loadavg %s (start) / %s (ours done) / %s (end), accel %s, KSM %s\n",
           nproc(), load_start, load_mid, load_end ? load_end : "?", accel ? accel : "?", ksm);
    printf("guest: -m %s -smp %s, append %s\n\n", args.mem, args.smp, args.append);
    printf("  PSS per sandbox, MiB (%2d s settled) %8s %8s %8s %8s\n", settle, "pss", "anon",
           "file", "shmem");
    print_pss("ours: all processes", &ours.sum, n);
    print_pss("  qemu", &ours.qemu, n);
    print_pss("  shim", &ours.shim, n);
    print_pss("  virtiofsd", &ours.vfsd, n);
    print_pss("  other (children)", &ours.other, n);
    if (baseline) {
      print_pss("baseline: plain QEMU", &base.sum, n);
      printf("  ratio ours/baseline          %8.3f\n", (double)ours.sum.pss / base.sum.pss);
    }
    printf("  goal <= %.0f MiB per sandbox (at N=20): %s\n\n", GOAL_PSS_MIB,
           avg <= GOAL_PSS_MIB ? "met" : "NOT met");
    printf("  idle CPU over %d s: host %.1f%% of all cores, sandboxes %.1f%% of one core",
           IDLE_WINDOW_S, ours.host_cpu_pct, ours.procs_cpu_pct);
    if (baseline)
      printf("; baseline: host %.1f%%, QEMUs %.1f%%", base.host_cpu_pct, base.procs_cpu_pct);
    printf("\n  ksmd (the host's KSM thread) during ours' idle window: %.1f%% of one core",
           ours.ksmd_cpu_pct);
    printf("\n  create: %d sandboxes in %.1f s (median %.2f s)", n, ours.create_total_s,
           stats(ours.create_s, n).median);
    if (baseline)
      printf("; baseline %.1f s (median %.2f s)", base.create_total_s,
             stats(base.create_s, n).median);
    printf("\n  agent check with all alive: %u/%d answered, round trip median %.0f us, max %.0f "
           "us\n",
           ours.answered, n, rtt.median, rtt.max);
  }
  status = ours.answered == (guint)n ? 0 : 1;

out:
  cleanup();
  if (interrupted) {
    fprintf(stderr, "density: interrupted; everything started was cleaned up\n");
    status = 130;
  }
  katavm_free(check);
  qemu_args_clear(&args);
  katavm_runtime_free(g_rt);
  g_free(ours.create_s);
  g_free(ours.rtt_us);
  g_free(base.create_s);
  g_free(base.rtt_us);
  g_free(g_ids);
  g_free(g_sbs);
  g_free(g_base);
  return status;
}
