/* bench/soak.c: does anything grow over many sandboxes and many execs?
 *
 *   soak [--cycles N] [--execs M]    (defaults 200 and 2000; not in CI)
 *
 * Phase 1: N times create a sandbox with a busybox container, exec `true`
 * in it, destroy it. Phase 2: one sandbox, M execs of `true` in a row.
 * Before and after each phase it prints what a leak would grow: this
 * process's fds, threads and RSS, the shim's (phase 2) fds, threads and
 * RSS, the host's mounts, the files under the state root, QEMU processes,
 * and the ratio end/start of each (the baseline is the same run's start;
 * a flat run prints 1.00 everywhere; mounts and QEMU processes are counted
 * host-wide, so other users' VMs move them). It asserts nothing; the integration tests assert the
 * leaks (kvt_assert_clean).
 *
 * Environment: as for any libkatavm program (KATAVM_ROOT, KATAVM_KERNEL,
 * KATAVM_INITRD, KATAVM_SHIM, ...), plus KATAVM_MKROOTFS; see
 * bench/README.md. */
#include <katavm/katavm.h>

#include <glib.h>

#include "common.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

typedef struct {
  double fds, threads, rss_kib;
} ProcStat;

static double count_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  double n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static ProcStat proc_stat(pid_t pid) {
  ProcStat s = {-1, -1, -1};
  if (pid <= 0)
    return s;
  g_autofree char *fd = g_strdup_printf("/proc/%d/fd", (int)pid);
  g_autofree char *task = g_strdup_printf("/proc/%d/task", (int)pid);
  g_autofree char *status = g_strdup_printf("/proc/%d/status", (int)pid);
  s.fds = count_dir(fd);
  s.threads = count_dir(task);
  g_autofree char *text = NULL;
  if (g_file_get_contents(status, &text, NULL, NULL)) {
    const char *r = strstr(text, "VmRSS:");
    if (r)
      s.rss_kib = g_ascii_strtod(r + 6, NULL);
  }
  return s;
}

static double count_lines(const char *path) {
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return -1;
  double n = 0;
  for (const char *p = text; *p; p++)
    n += *p == '\n';
  return n;
}

static double count_files(const char *dir) {
  double n = 0;
  GDir *d = g_dir_open(dir, 0, NULL);
  if (!d)
    return 0;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(dir, name, NULL);
    n++;
    if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
      n += count_files(p);
  }
  g_dir_close(d);
  return n;
}

static double count_qemus(void) {
  double n = 0;
  DIR *d = opendir("/proc");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    g_autofree char *p = g_strdup_printf("/proc/%s/comm", de->d_name);
    g_autofree char *comm = NULL;
    if (g_file_get_contents(p, &comm, NULL, NULL) && g_str_has_prefix(comm, "qemu-system"))
      n++;
  }
  if (d)
    closedir(d);
  return n;
}

typedef struct {
  ProcStat self, shim;
  double mounts, state_files, qemus;
} Snap;

static Snap snap(const char *root, pid_t shim) {
  Snap s = {.self = proc_stat(getpid()), .shim = proc_stat(shim)};
  s.mounts = count_lines("/proc/self/mounts");
  s.state_files = count_files(root);
  s.qemus = count_qemus();
  return s;
}

static void row(const char *label, double a, double b) {
  if (a < 0 || b < 0)
    printf("  %-22s %10s %10s\n", label, "-", "-");
  else
    printf("  %-22s %10.0f %10.0f   %5.2f\n", label, a, b, a > 0 ? b / a : (b > 0 ? 99.0 : 1.0));
}

static void report(const char *phase, const Snap *a, const Snap *b, double secs, guint n) {
  g_autofree char *load = loadavg();
  printf("%s: %u in %.1f s (%.3f s each), load %s\n", phase, n, secs, n ? secs / n : 0, load);
  printf("  %-22s %10s %10s   end/start\n", "", "start", "end");
  row("caller fds", a->self.fds, b->self.fds);
  row("caller threads", a->self.threads, b->self.threads);
  row("caller RSS KiB", a->self.rss_kib, b->self.rss_kib);
  row("shim fds", a->shim.fds, b->shim.fds);
  row("shim threads", a->shim.threads, b->shim.threads);
  row("shim RSS KiB", a->shim.rss_kib, b->shim.rss_kib);
  row("mounts (host)", a->mounts, b->mounts);
  row("state root files", a->state_files, b->state_files);
  row("QEMU processes (host)", a->qemus, b->qemus);
  fflush(stdout);
}

static gboolean fail(const char *what, katavm_error *e) {
  fprintf(stderr, "soak: %s: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(katavm_error_code(e)));
  katavm_error_free(e);
  return FALSE;
}

static char *make_bundle(const char *dir) {
  g_autofree char *script = mkrootfs_path();
  const char *argv[] = {script, "--bundle", "--writable", dir, NULL};
  int status = -1;
  g_autoptr(GError) e = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                    &status, &e) ||
      !g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "soak: %s failed (set KATAVM_MKROOTFS)\n", script);
    return NULL;
  }
  return g_strdup(dir);
}

static katavm_sandbox *pod(katavm_runtime *rt, const char *id, const char *bundle) {
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.memory_mib = 512; /* as bench/exec */
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_create(rt, &cfg, &sb, &e) < 0) {
    fail("katavm_sandbox_create", e);
    return NULL;
  }
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = bundle;
  const char *main_argv[] = {"sleep", "100000", NULL};
  cc.argv = main_argv; /* the bundle's `sh` would exit at once */
  if (katavm_container_add(sb, "c", &cc, NULL, &e) < 0 || katavm_container_start(sb, "c", &e) < 0) {
    fail("container", e);
    katavm_sandbox_close(sb);
    katavm_sandbox_destroy(rt, id, NULL);
    return NULL;
  }
  return sb;
}

static gboolean exec_true(katavm_sandbox *sb) {
  const char *argv[] = {"true", NULL};
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = argv;
  cfg.no_stdin = 1;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  if (katavm_exec(sb, "c", &cfg, &p, &e) < 0)
    return fail("katavm_exec", e);
  int code = -1;
  int rc = katavm_process_wait(p, 120000, &code, &e);
  katavm_process_free(p);
  if (rc < 0)
    return fail("katavm_process_wait", e);
  return code == 0;
}

static pid_t shim_pid(katavm_sandbox *sb) {
  char *js = NULL;
  gint64 pid = 0;
  if (katavm_sandbox_inspect(sb, &js, NULL) == 0)
    json_top_int(js, "shim_pid", &pid);
  katavm_free(js);
  return (pid_t)pid;
}

int main(int argc, char **argv) {
  guint cycles = 200, execs = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--cycles"))
      cycles = (guint)atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--execs"))
      execs = (guint)atoi(argv[i + 1]);
  }
  catch_stop_signals(on_signal);
  katavm_runtime *rt = NULL;
  katavm_error *e = NULL;
  if (katavm_runtime_new(&rt, &e) < 0)
    return fail("katavm_runtime_new", e) ? 0 : 1;
  const char *root = katavm_runtime_root(rt);
  g_autofree char *tmp = g_dir_make_tmp("katavm-soak-XXXXXX", NULL);
  g_autofree char *bdir = g_build_filename(tmp, "bundle", NULL);
  g_autofree char *bundle = make_bundle(bdir);
  int rc = 1;
  if (!bundle)
    goto out;

  /* Phase 1: create, exec, destroy. One warm-up cycle first, exec
   * included: the first create fills caches (QEMU capabilities) that stay,
   * and the first exec opens what the library keeps for later ones. */
  katavm_sandbox *sb = pod(rt, "soak-w", bundle);
  if (!sb)
    goto out;
  gboolean warm = exec_true(sb);
  katavm_sandbox_close(sb);
  katavm_sandbox_destroy(rt, "soak-w", NULL);
  if (!warm)
    goto out;
  Snap a = snap(root, 0);
  double t0 = now_s();
  guint done = 0;
  for (; done < cycles && !interrupted; done++) {
    g_autofree char *id = g_strdup_printf("soak-%u", done);
    sb = pod(rt, id, bundle);
    if (!sb)
      goto out;
    gboolean ok = exec_true(sb);
    katavm_sandbox_close(sb);
    if (katavm_sandbox_destroy(rt, id, &e) < 0) {
      fail("katavm_sandbox_destroy", e);
      goto out;
    }
    if (!ok)
      goto out;
  }
  Snap b = snap(root, 0);
  report("create/exec/destroy cycles", &a, &b, now_s() - t0, done);

  /* Phase 2: many execs into one sandbox. */
  sb = pod(rt, "soak-x", bundle);
  if (!sb)
    goto out;
  pid_t shim = shim_pid(sb);
  for (int i = 0; i < 20; i++) /* warm-up: the shim's and our pools */
    exec_true(sb);
  a = snap(root, shim);
  t0 = now_s();
  for (done = 0; done < execs && !interrupted; done++)
    if (!exec_true(sb))
      break;
  b = snap(root, shim);
  report("execs into one sandbox", &a, &b, now_s() - t0, done);
  katavm_sandbox_close(sb);
  katavm_sandbox_destroy(rt, "soak-x", NULL);
  rc = done == execs ? 0 : 1;
out:
  if (tmp) {
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmp);
    if (system(cmd) != 0)
      fprintf(stderr, "soak: cannot remove %s\n", tmp);
  }
  katavm_runtime_free(rt);
  return rc;
}
