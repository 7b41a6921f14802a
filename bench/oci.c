/* bench/oci.c: podman with katavm-runtime against podman with runc, in
 * one run, on the same image: the wall time of `podman run --rm IMAGE
 * true`, of `podman exec` into a running container, and from `podman run`
 * to the container's first output line; medians and the ratios katavm/runc.
 *
 *   KATAVM_RUNTIME=build/katavm-runtime KATAVM_RUNTIME_CONFIG=FILE \
 *     build/bench/oci [-n ROUNDS] [--json]
 *
 * FILE is katavm-runtime's configuration (kernel, initrd, shim, root). The
 * podman root is private (a temporary directory), the image imported from
 * the busybox rootfs of tests/rootfs/mkrootfs.sh. Every container gets
 * the host's rlimits (%s): podman's defaults (RLIMIT_NOFILE
 * 1048576, RLIMIT_NPROC) are more than this host's root may set (no
 * CAP_SYS_RESOURCE), which runc cannot apply.
 *
 * --pool N: then `podman run --rm IMAGE true` with katavm-runtime once more
 * while a warm pool of N VMs runs for the runtime's root (`katavm pool
 * start`, the CLI from KATAVM_CLI, with the configuration's root, kernel,
 * initrd and shim), each round waiting until a pooled VM is ready, so that
 * it measures a take and not a boot; the pool is removed at the end. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define IMAGE "localhost/kvbench-busybox"

static char *work, *podman;
/* `katavm` with the runtime's root and image (environment first), while a
 * pool it started runs; NULL otherwise. */
static char *pool_cli;
static volatile sig_atomic_t stop;

static void on_stop(int sig) {
  (void)sig;
  stop = 1;
}

/* Between steps: a Ctrl-C ends the run through exit(), and so cleanup(). */
static void check_stop(void) {
  if (stop) {
    fprintf(stderr, "oci: interrupted\n");
    exit(1);
  }
}
/* --ulimit options holding this process's own limits (see the header). */
static char *ulimits;

static int sh(const char *cmd, char **out) {
  int st = -1;
  g_autofree char *full = g_strdup_printf("/bin/sh -c '%s'", cmd);
  char *o = NULL;
  if (!g_spawn_command_line_sync(full, &o, NULL, &st, NULL))
    return -1;
  if (out)
    *out = o;
  else
    g_free(o);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Every exit, the failed ones included, takes away what podman made under
 * the private root: its containers (their VMs with them), the image, the
 * overlay mounts, the directory. */
static void cleanup(void) {
  if (pool_cli) {
    g_autofree char *rm = g_strdup_printf("%s pool rm >/dev/null 2>&1", pool_cli);
    sh(rm, NULL);
    g_clear_pointer(&pool_cli, g_free);
  }
  if (!work)
    return;
  g_autofree char *rm = g_strdup_printf("%s rm -af -t 0 >/dev/null 2>&1; %s rmi -af "
                                        ">/dev/null 2>&1",
                                        podman, podman);
  sh(rm, NULL);
  g_autofree char *clean = g_strdup_printf(
      "grep -o \" %s[^ ]*\" /proc/self/mounts | sort -r | xargs -r -n1 umount -l; rm -rf %s", work,
      work);
  sh(clean, NULL);
  g_clear_pointer(&work, g_free);
}

/* `podman run --rm IMAGE true` under runtime `rt` (its path and flags). */
static double run_true(const char *rt) {
  g_autofree char *cmd = g_strdup_printf("%s %s%s run --rm --network none %s " IMAGE " true",
                                         podman, rt ? "--runtime " : "", rt ? rt : "", ulimits);
  double t0 = now_s();
  int rc = sh(cmd, NULL);
  double t = now_s() - t0;
  if (rc != 0) {
    fprintf(stderr, "oci: %s failed (%d)\n", cmd, rc);
    exit(1);
  }
  return t;
}

/* From `podman run` to its first output line (the container's echo). */
static double first_output(const char *rt) {
  g_autofree char *cmd =
      g_strdup_printf("%s %s%s run --rm --network none %s " IMAGE " echo first-line", podman,
                      rt ? "--runtime " : "", rt ? rt : "", ulimits);
  g_autofree char *full = g_strdup_printf("/bin/sh -c '%s'", cmd);
  g_auto(GStrv) argv = NULL;
  g_shell_parse_argv(full, NULL, &argv, NULL);
  GPid pid;
  int out = -1;
  double t0 = now_s();
  if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL,
                                &out, NULL, NULL)) {
    fprintf(stderr, "oci: cannot run %s\n", cmd);
    exit(1);
  }
  char c;
  double t = -1;
  while (read(out, &c, 1) == 1)
    if (c == '\n' && t < 0)
      t = now_s() - t0;
  close(out);
  int st;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || t < 0) {
    fprintf(stderr, "oci: %s failed (status %d%s)\n", cmd, st, t < 0 ? ", no output" : "");
    exit(1);
  }
  return t;
}

/* Ready VMs of the pool (`katavm pool ls --json`: {"running", "vms":
 * [{"instance", "ready"}]}), -1 when no keeper runs. */
static int pool_ready(void) {
  g_autofree char *cmd = g_strdup_printf("%s pool ls --json", pool_cli);
  g_autofree char *out = NULL;
  if (sh(cmd, &out) != 0 || !out || !json_top_bool(out, "running"))
    return -1;
  g_autoptr(GRegex) re = g_regex_new("\"ready\"\\s*:\\s*true", 0, 0, NULL);
  g_autoptr(GMatchInfo) m = NULL;
  int ready = 0;
  for (g_regex_match(re, out, 0, &m); g_match_info_matches(m); g_match_info_next(m, NULL))
    ready++;
  return ready;
}

/* Wait (bounded) until the pool has a ready VM. */
static void pool_wait(void) {
  for (int i = 0; i < 600; i++) {
    check_stop();
    int n = pool_ready();
    if (n < 0) {
      fprintf(stderr, "oci: the pool's keeper is gone\n");
      exit(1);
    }
    if (n > 0)
      return;
    g_usleep(200 * 1000);
  }
  fprintf(stderr, "oci: no pooled VM became ready within 120 s\n");
  exit(1);
}

/* Start the pool of the runtime's root, as read from its configuration. */
static void pool_start(const char *conf, int size) {
  const char *cli = g_getenv("KATAVM_CLI");
  if (!cli) {
    fprintf(stderr, "oci: --pool needs KATAVM_CLI (the katavm command)\n");
    exit(2);
  }
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) e = NULL;
  if (!g_key_file_load_from_file(kf, conf, G_KEY_FILE_NONE, &e)) {
    fprintf(stderr, "oci: %s: %s\n", conf, e->message);
    exit(1);
  }
  GString *c = g_string_new(NULL);
  static const char *const keys[][2] = {{"root", "KATAVM_ROOT"},
                                        {"kernel", "KATAVM_KERNEL"},
                                        {"initrd", "KATAVM_INITRD"},
                                        {"shim", "KATAVM_SHIM"}};
  for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
    g_autofree char *v = g_key_file_get_string(kf, "runtime", keys[i][0], NULL);
    if (v)
      g_string_append_printf(c, "%s=%s ", keys[i][1], g_strstrip(v));
  }
  g_string_append(c, cli);
  pool_cli = g_string_free(c, FALSE);
  g_autofree char *start = g_strdup_printf("%s pool start --size %d", pool_cli, size);
  if (sh(start, NULL) != 0) {
    fprintf(stderr, "oci: %s failed\n", start);
    g_clear_pointer(&pool_cli, g_free);
    exit(1);
  }
}

static double exec_true(const char *name) {
  g_autofree char *cmd = g_strdup_printf("%s exec %s true", podman, name);
  double t0 = now_s();
  if (sh(cmd, NULL) != 0) {
    fprintf(stderr, "oci: %s failed\n", cmd);
    exit(1);
  }
  return now_s() - t0;
}

int main(int argc, char **argv) {
  int rounds = 5, pool = 0;
  gboolean json = FALSE;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-n") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--pool") && i + 1 < argc)
      pool = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json"))
      json = TRUE;
    else {
      fprintf(stderr, "usage: %s [-n ROUNDS] [--pool SIZE] [--json]\n", argv[0]);
      return 2;
    }
  }
  if (pool < 0) {
    fprintf(stderr, "oci: --pool SIZE must be positive\n");
    return 2;
  }
  const char *rt = g_getenv("KATAVM_RUNTIME");
  const char *conf = g_getenv("KATAVM_RUNTIME_CONFIG");
  if (!rt || !conf || rounds < 1) {
    fprintf(stderr, "oci: set KATAVM_RUNTIME and KATAVM_RUNTIME_CONFIG (see the header)\n");
    return 2;
  }
  work = g_dir_make_tmp("kvbench-oci-XXXXXX", NULL);
  if (!work) {
    fprintf(stderr, "oci: cannot make a temporary directory\n");
    return 1;
  }
  podman = g_strdup_printf("podman --root %s/root --runroot %s/run --tmpdir %s "
                           "--cgroup-manager cgroupfs --events-backend file --storage-driver "
                           "overlay",
                           work, work, work);
  atexit(cleanup);
  catch_stop_signals(on_stop);
  ulimits = g_strdup("--ulimit nofile=1024:1024 --ulimit nproc=4096:4096");
  g_autofree char *mk = mkrootfs_path();
  g_autofree char *imp = g_strdup_printf(
      "%s %s/img >/dev/null && tar -C %s/img -c . | %s import - " IMAGE " >/dev/null", mk, work,
      work, podman);
  if (sh(imp, NULL) != 0) {
    fprintf(stderr, "oci: cannot import the image\n");
    return 1;
  }
  g_autofree char *load0 = loadavg();
  /* The runtimes: ours with its configuration, and runc (podman's default
   * on Debian is crun: name runc). */
  g_autofree char *katavm_rt = g_strdup_printf("%s --runtime-flag config=%s", rt, conf);
  const char *runc = "/usr/bin/runc";
  double *kr = g_new0(double, rounds), *rr = g_new0(double, rounds);
  double *kf = g_new0(double, rounds), *rf = g_new0(double, rounds);
  double *ke = g_new0(double, rounds), *re = g_new0(double, rounds);
  /* Interleaved, so drift of this shared machine hits both alike. */
  for (int i = 0; i < rounds; i++) {
    check_stop();
    kr[i] = run_true(katavm_rt);
    rr[i] = run_true(runc);
    kf[i] = first_output(katavm_rt);
    rf[i] = first_output(runc);
  }
  g_autofree char *start_k = g_strdup_printf(
      "%s --runtime %s run -d --name kvb-k --network none %s " IMAGE " sleep 100000 >/dev/null",
      podman, katavm_rt, ulimits);
  g_autofree char *start_r = g_strdup_printf(
      "%s --runtime %s run -d --name kvb-r --network none %s " IMAGE " sleep 100000 >/dev/null",
      podman, runc, ulimits);
  if (sh(start_k, NULL) != 0 || sh(start_r, NULL) != 0) {
    fprintf(stderr, "oci: cannot start the exec targets\n");
    return 1;
  }
  for (int i = 0; i < rounds; i++) {
    check_stop();
    ke[i] = exec_true("kvb-k");
    re[i] = exec_true("kvb-r");
  }
  /* With a warm pool: the same run, each taking a ready VM. */
  double *kp = g_new0(double, rounds);
  if (pool > 0) {
    pool_start(conf, pool);
    for (int i = 0; i < rounds; i++) {
      pool_wait();
      kp[i] = run_true(katavm_rt);
    }
  }
  g_autofree char *load1 = loadavg();
  cleanup();
  Stats skr = stats(kr, rounds), srr = stats(rr, rounds), skf = stats(kf, rounds),
        srf = stats(rf, rounds), ske = stats(ke, rounds), sre = stats(re, rounds);
  if (json) {
    GString *o = g_string_new("{");
    json_stats(o, "run_true_katavm_s", kr, rounds, "%.3f");
    g_string_append_c(o, ',');
    json_stats(o, "run_true_runc_s", rr, rounds, "%.3f");
    g_string_append_c(o, ',');
    json_stats(o, "first_output_katavm_s", kf, rounds, "%.3f");
    g_string_append_c(o, ',');
    json_stats(o, "first_output_runc_s", rf, rounds, "%.3f");
    g_string_append_c(o, ',');
    json_stats(o, "exec_katavm_s", ke, rounds, "%.3f");
    g_string_append_c(o, ',');
    json_stats(o, "exec_runc_s", re, rounds, "%.3f");
    if (pool > 0) {
      g_string_append_c(o, ',');
      json_stats(o, "run_true_katavm_pooled_s", kp, rounds, "%.3f");
      g_string_append_printf(o, ",\"ratio_run_pooled\":%.2f,\"pool_size\":%d",
                             stats(kp, rounds).median / srr.median, pool);
    }
    g_string_append_printf(o,
                           ",\"ratio_run\":%.2f,\"ratio_first_output\":%.2f,\"ratio_exec\":%.2f,"
                           "\"loadavg_start\":\"%s\",\"loadavg_end\":\"%s\"}",
                           skr.median / srr.median, skf.median / srf.median,
                           ske.median / sre.median, load0, load1);
    printf("%s\n", o->str);
    g_string_free(o, TRUE);
  } else {
    printf("podman + katavm-runtime vs podman + runc, %d rounds (load %s -> %s)\n", rounds, load0,
           load1);
    printf("  %-30s %8s %8s %8s\n", "", "median", "min", "max");
    print_row(30, "run --rm true, katavm", kr, rounds, 1, "s");
    print_row(30, "run --rm true, runc", rr, rounds, 1, "s");
    print_row(30, "run to first output, katavm", kf, rounds, 1, "s");
    print_row(30, "run to first output, runc", rf, rounds, 1, "s");
    print_row(30, "exec true, katavm", ke, rounds, 1, "s");
    print_row(30, "exec true, runc", re, rounds, 1, "s");
    if (pool > 0)
      print_row(30, "run --rm true, katavm pooled", kp, rounds, 1, "s");
    printf("  ratios katavm/runc: run %.2f (katavm %.2f s slower), first output %.2f, exec %.2f\n",
           skr.median / srr.median, skr.median - srr.median, skf.median / srf.median,
           ske.median / sre.median);
    if (pool > 0) {
      Stats skp = stats(kp, rounds);
      printf("  with a warm pool of %d: run %.2f (katavm %.2f s slower than runc)\n", pool,
             skp.median / srr.median, skp.median - srr.median);
    }
  }
  return 0;
}
