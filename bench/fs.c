/* bench/fs.c: a container's rootfs on each shared filesystem against the
 * VM's own floor (a guest-local tmpfs in the same container) and the host.
 *
 *   fs [-n N] [--cache LIST] [--files N] [--json]
 *      (N rounds, default 1; LIST: virtio-fs configurations to measure,
 *       comma separated, each MODE or MODE:MS with MODE none, auto or always
 *       (KATAVM_VIRTIOFS_CACHE) and MS the name/attribute timeout in ms or
 *       "default" (KATAVM_VIRTIOFS_TIMEOUT_MS; without it the library's
 *       default), default "auto"; --files: files in the tarball, default
 *       3000)
 *
 * One sandbox (1 vCPU, 1024 MiB) per configuration: virtio-fs with each
 * cache mode of LIST (KATAVM_VIRTIOFS_CACHE), then 9p. Each runs a busybox
 * container whose spec adds a tmpfs at /scratch and which has a volume (a
 * host directory beside the rootfs, `HOST:/vol` in
 * katavm_container_config.volumes). In it, the same script (written to the
 * rootfs as /fsbench.sh) runs on the rootfs (/fsb: the shared filesystem),
 * on the volume (/vol/fsb: the same shared filesystem, through the
 * volume's own bind mount in the share) and on /scratch/fsb (guest tmpfs),
 * in a rotating order per round; the host runs it with /bin/sh on a
 * directory beside the rootfs (same host filesystem as the share's).
 * Steps, each timed inside the script by /proc/uptime (10 ms ticks, read
 * by a shell builtin: no process per stamp):
 *
 * - seq_write: dd if=/dev/zero bs=1M count=256 conv=fsync
 * - seq_read: dd of that file to /dev/null, opened anew (virtio-fs
 *   cache=auto and 9p read it from the host; cache=always may serve it from
 *   the guest's page cache, which is what that mode is for)
 * - meta: 2000 small files in 10 directories with a subdirectory each:
 *   create (shell builtin echo > file), stat (ls -lR), read (one cat of all
 *   of them), rename (mv of each into another directory: 10 mv processes,
 *   2000 renames), unlink (rm -rf)
 * - tar: unpack a tarball of --files small files in 60 directories (made
 *   on the host as /bench.tar in the rootfs, copied beside DIR first, so
 *   that each place reads it from where it writes: busybox tar reads in
 *   512-byte blocks, a request each on a share), then rm -rf it.
 *
 * Printed: seconds per step for each place, MB/s for the sequential steps,
 * and each shared filesystem's ratio to the guest tmpfs, for the rootfs
 * ("root") and for the volume ("vol") (time ratio for
 * metadata, goal <= 2; throughput ratio for sequential I/O, goal >= 0.5),
 * with the load average at start and end. Asserts nothing.
 *
 * Everything is removed on every path, SIGINT/SIGTERM included: sandboxes
 * destroyed, the temporary directory removed.
 */
#include <katavm/katavm.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "common.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEQ_MIB 256

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static katavm_runtime *g_rt;
static char *g_sandbox_id;
static char *g_tmpdir;

static const char script[] = "# bench/fs: one pass of the workloads in DIR ($1), tarball $2\n"
                             "set -e\n"
                             "D=$1 T=$2\n"
                             "mark() { read now _ < /proc/uptime; }\n"
                             "rm -rf \"$D\"; mkdir -p \"$D\"; cd \"$D\"\n"
                             "mark; a=$now\n"
                             "dd if=/dev/zero of=big bs=1M count=" G_STRINGIFY(
                                 SEQ_MIB) " conv=fsync 2>/dev/null\n"
                                          "mark; echo \"seq_write $a $now\"; a=$now\n"
                                          "dd if=big of=/dev/null bs=1M 2>/dev/null\n"
                                          "mark; echo \"seq_read $a $now\"\n"
                                          "rm -f big\n"
                                          "mark; a=$now\n"
                                          "for d in 0 1 2 3 4 5 6 7 8 9; do\n"
                                          "  mkdir -p m/$d/sub\n"
                                          "  i=0\n"
                                          "  while [ $i -lt 100 ]; do\n"
                                          "    echo \"file $d $i\" > m/$d/f$i\n"
                                          "    echo \"file $d $i\" > m/$d/sub/g$i\n"
                                          "    i=$((i + 1))\n"
                                          "  done\n"
                                          "done\n"
                                          "mark; echo \"meta_create $a $now\"; a=$now\n"
                                          "ls -lR m > /dev/null\n"
                                          "mark; echo \"meta_stat $a $now\"; a=$now\n"
                                          "cat m/*/f* m/*/sub/g* > /dev/null\n"
                                          "mark; echo \"meta_read $a $now\"; a=$now\n"
                                          "for d in 0 1 2 3 4 5 6 7 8 9; do\n"
                                          "  mkdir m/$d/r\n"
                                          "  mv m/$d/f* m/$d/sub/g* m/$d/r/\n"
                                          "done\n"
                                          "mark; echo \"meta_rename $a $now\"; a=$now\n"
                                          "rm -rf m\n"
                                          "mark; echo \"meta_unlink $a $now\"\n"
                                          "cp \"$T\" ../fsb.tar\n"
                                          "mkdir x\n"
                                          "mark; a=$now\n"
                                          "tar -xf ../fsb.tar -C x\n"
                                          "mark; echo \"tar_x $a $now\"; a=$now\n"
                                          "rm -rf x\n"
                                          "mark; echo \"tar_rm $a $now\"\n"
                                          "rm -f ../fsb.tar; cd /; rm -rf \"$D\"\n";

static const char *const steps[] = {"seq_write", "seq_read",    "meta_create", "meta_stat",
                                    "meta_read", "meta_rename", "meta_unlink", "tar_x",
                                    "tar_rm",    NULL};
#define N_STEPS 9
#define N_META 5 /* meta_* */

static void print_err(const char *what, katavm_error *e) {
  fprintf(stderr, "fs: %s: %s (%s)\n", what, katavm_error_message(e),
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

static gboolean run_sync(const char *const *argv, char **out) {
  int status = -1;
  g_autofree char *err = NULL;
  g_autoptr(GError) e = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, out, &err, &status,
                    &e)) {
    fprintf(stderr, "fs: %s: %s\n", argv[0], e->message);
    return FALSE;
  }
  if (!g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "fs: %s failed: %s\n", argv[0], err ? err : "");
    return FALSE;
  }
  return TRUE;
}

static void cleanup(void) {
  destroy_sandbox();
  if (g_tmpdir) {
    const char *argv[] = {"rm", "-rf", "--one-file-system", g_tmpdir, NULL};
    run_sync(argv, NULL);
    g_clear_pointer(&g_tmpdir, g_free);
  }
}

/* The bundle (busybox rootfs, /scratch tmpfs, main process sleeps), the
 * script and the tarball in its rootfs. */
static char *make_bundle(guint files) {
  g_autofree char *mk = mkrootfs_path();
  char *dir = g_build_filename(g_tmpdir, "bundle", NULL);
  const char *argv[] = {mk, "--bundle", "--writable", dir, NULL};
  if (!run_sync(argv, NULL)) {
    g_free(dir);
    return NULL;
  }
  g_autofree char *cfg = g_build_filename(dir, "config.json", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) e = NULL;
  if (!json_parser_load_from_file(p, cfg, &e)) {
    fprintf(stderr, "fs: %s: %s\n", cfg, e->message);
    g_free(dir);
    return NULL;
  }
  JsonObject *spec = json_node_get_object(json_parser_get_root(p));
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *args = json_array_new();
  json_array_add_string_element(args, "sleep");
  json_array_add_string_element(args, "100000");
  json_object_set_array_member(proc, "args", args);
  JsonObject *m = json_object_new();
  json_object_set_string_member(m, "destination", "/scratch");
  json_object_set_string_member(m, "type", "tmpfs");
  json_object_set_string_member(m, "source", "tmpfs");
  JsonArray *opts = json_array_new();
  json_array_add_string_element(opts, "size=600m");
  json_array_add_string_element(opts, "mode=1777");
  json_object_set_array_member(m, "options", opts);
  json_array_add_object_element(json_object_get_array_member(spec, "mounts"), m);
  g_autoptr(JsonGenerator) g = json_generator_new();
  json_generator_set_root(g, json_parser_get_root(p));
  if (!json_generator_to_file(g, cfg, &e)) {
    fprintf(stderr, "fs: %s: %s\n", cfg, e->message);
    g_free(dir);
    return NULL;
  }
  g_autofree char *sp = g_build_filename(dir, "rootfs", "fsbench.sh", NULL);
  if (!g_file_set_contents(sp, script, -1, &e)) {
    fprintf(stderr, "fs: %s: %s\n", sp, e->message);
    g_free(dir);
    return NULL;
  }
  /* The tarball: `files` files of 100-1100 bytes in 60 directories. */
  g_autofree char *src = g_build_filename(g_tmpdir, "tarsrc", NULL);
  g_autofree char *tar = g_build_filename(dir, "rootfs", "bench.tar", NULL);
  g_autofree char *mk_tar =
      g_strdup_printf("set -e; mkdir -p %s/t; cd %s/t; i=0; "
                      "while [ $i -lt %u ]; do d=d$((i %% 60)); mkdir -p $d; "
                      "head -c $((100 + (i * 37) %% 1000)) /dev/zero > $d/f$i; i=$((i + 1)); done; "
                      "cd ..; tar -cf %s t",
                      src, src, files, tar);
  const char *targv[] = {"/bin/sh", "-c", mk_tar, NULL};
  if (!run_sync(targv, NULL)) {
    g_free(dir);
    return NULL;
  }
  return dir;
}

/* Parse the script's "step start end" lines into secs[N_STEPS]. */
static gboolean parse_times(const char *out, double *secs) {
  for (int i = 0; i < N_STEPS; i++)
    secs[i] = -1;
  g_auto(GStrv) lines = g_strsplit(out ? out : "", "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit(*l, " ", -1);
    if (g_strv_length(f) != 3)
      continue;
    for (int i = 0; i < N_STEPS; i++)
      if (!strcmp(f[0], steps[i]))
        secs[i] = g_ascii_strtod(f[2], NULL) - g_ascii_strtod(f[1], NULL);
  }
  for (int i = 0; i < N_STEPS; i++)
    if (secs[i] < 0) {
      fprintf(stderr, "fs: no time for %s in the script's output:\n%s\n", steps[i], out);
      return FALSE;
    }
  return TRUE;
}

/* Run the script in container "c" on dir; stdout collected. */
static gboolean run_guest(katavm_sandbox *sb, const char *dir, double *secs) {
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  const char *argv[] = {"sh", "/fsbench.sh", dir, "/bench.tar", NULL};
  cfg.argv = argv;
  cfg.no_stdin = 1;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  if (katavm_exec(sb, "c", &cfg, &p, &e) < 0) {
    print_err("katavm_exec", e);
    return FALSE;
  }
  GString *out = g_string_new(NULL), *err = g_string_new(NULL);
  struct pollfd fds[2] = {{.fd = katavm_process_stdout_fd(p), .events = POLLIN},
                          {.fd = katavm_process_stderr_fd(p), .events = POLLIN}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0 && !interrupted) {
    if (poll(fds, 2, 100) < 0 && errno != EINTR)
      break;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        g_string_append_len(i ? err : out, buf, n);
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  int code = -1;
  gboolean ok = !interrupted && katavm_process_wait(p, 60000, &code, &e) == 0;
  if (!ok && !interrupted)
    print_err("katavm_process_wait", e);
  if (ok && code != 0) {
    fprintf(stderr, "fs: the script on %s exited %d: %s\n", dir, code, err->str);
    ok = FALSE;
  }
  if (!ok)
    katavm_process_signal(p, SIGKILL, NULL);
  katavm_process_free(p);
  ok = ok && parse_times(out->str, secs);
  g_string_free(out, TRUE);
  g_string_free(err, TRUE);
  return ok;
}

static gboolean run_host(const char *bundle, double *secs) {
  g_autofree char *dir = g_build_filename(g_tmpdir, "hostfsb", NULL);
  g_autofree char *sp = g_build_filename(bundle, "rootfs", "fsbench.sh", NULL);
  g_autofree char *tar = g_build_filename(bundle, "rootfs", "bench.tar", NULL);
  const char *argv[] = {"/bin/sh", sp, dir, tar, NULL};
  g_autofree char *out = NULL;
  return run_sync(argv, &out) && parse_times(out, secs);
}

typedef struct {
  char *label;    /* "virtio-fs cache=auto", "9p" */
  const char *fs; /* for the setter */
  const char *cache;
  const char *timeout;    /* KATAVM_VIRTIOFS_TIMEOUT_MS, or NULL */
  GArray *share[N_STEPS]; /* double seconds per round: the rootfs */
  GArray *vol[N_STEPS];   /* the volume */
  GArray *tmpfs[N_STEPS];
} Config;

static gboolean measure(Config *c, const char *bundle, const char *voldir, guint rounds) {
  katavm_error *e = NULL;
  if (c->cache)
    g_setenv("KATAVM_VIRTIOFS_CACHE", c->cache, TRUE);
  if (c->timeout)
    g_setenv("KATAVM_VIRTIOFS_TIMEOUT_MS", c->timeout, TRUE);
  katavm_runtime *rt = NULL;
  if (katavm_runtime_new(&rt, &e) < 0) {
    print_err("katavm_runtime_new", e);
    return FALSE;
  }
  g_unsetenv("KATAVM_VIRTIOFS_CACHE");
  g_unsetenv("KATAVM_VIRTIOFS_TIMEOUT_MS");
  if (katavm_runtime_set_shared_fs(rt, c->fs, &e) < 0) {
    print_err("katavm_runtime_set_shared_fs", e);
    katavm_runtime_free(rt);
    return FALSE;
  }
  katavm_runtime_free(g_rt);
  g_rt = rt;
  g_sandbox_id = g_strdup_printf("fsb%d", (int)getpid());
  katavm_sandbox_config sc;
  katavm_sandbox_config_init(&sc);
  sc.id = g_sandbox_id;
  sc.vcpus = 1;
  sc.memory_mib = 1024;
  katavm_sandbox *sb = NULL;
  if (katavm_sandbox_create(g_rt, &sc, &sb, &e) < 0) {
    print_err("katavm_sandbox_create", e);
    g_clear_pointer(&g_sandbox_id, g_free);
    return FALSE;
  }
  char *js = NULL;
  g_autofree char *fs = NULL;
  if (katavm_sandbox_inspect(sb, &js, NULL) == 0) {
    fs = json_top_str(js, "shared_fs");
    katavm_free(js);
  }
  gboolean ok = g_strcmp0(fs, c->fs) == 0;
  if (!ok)
    fprintf(stderr, "fs: the sandbox's shared_fs is %s, not %s\n", fs, c->fs);
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = bundle;
  g_autofree char *vol = g_strdup_printf("%s:/vol", voldir);
  const char *vols[] = {vol, NULL};
  cc.volumes = vols;
  if (ok && (katavm_container_add(sb, "c", &cc, NULL, &e) < 0 ||
             katavm_container_start(sb, "c", &e) < 0)) {
    print_err("container", e);
    ok = FALSE;
  }
  static const char *const places[] = {"/fsb", "/vol/fsb", "/scratch/fsb"};
  for (guint r = 0; ok && r < rounds && !interrupted; r++) {
    double t[3][N_STEPS];
    /* Rotate which place goes first (round 0: rootfs, volume, tmpfs). */
    for (guint k = 0; ok && k < 3; k++) {
      guint pl = (r + k) % 3;
      ok = run_guest(sb, places[pl], t[pl]);
    }
    for (int i = 0; ok && i < N_STEPS; i++) {
      g_array_append_val(c->share[i], t[0][i]);
      g_array_append_val(c->vol[i], t[1][i]);
      g_array_append_val(c->tmpfs[i], t[2][i]);
    }
  }
  katavm_sandbox_close(sb);
  destroy_sandbox();
  return ok && !interrupted;
}

static double med(GArray *a) {
  return a->len ? stats((double *)a->data, a->len).median : -1;
}

static double meta_sum(GArray **v) {
  double s = 0;
  for (int i = 2; i < 2 + N_META; i++)
    s += med(v[i]);
  return s;
}

static double tar_sum(GArray **v) {
  return med(v[7]) + med(v[8]);
}

int main(int argc, char **argv) {
  guint rounds = 1, files = 3000;
  gboolean json = FALSE;
  const char *caches = "auto";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      rounds = (guint)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--cache") && i + 1 < argc) {
      caches = argv[++i];
    } else if (!strcmp(argv[i], "--files") && i + 1 < argc) {
      files = (guint)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--json")) {
      json = TRUE;
    } else {
      fprintf(stderr, "usage: fs [-n N] [--cache none,auto,always] [--files N] [--json]\n");
      return 2;
    }
  }
  if (rounds < 1 || rounds > 100 || files < 1 || files > 100000) {
    fprintf(stderr, "fs: -n is 1..100, --files 1..100000\n");
    return 2;
  }
  g_auto(GStrv) cl = g_strsplit(caches, ",", -1);
  guint ncl = g_strv_length(cl);
  char **modes = g_new0(char *, ncl + 1), **timeouts = g_new0(char *, ncl + 1);
  for (guint i = 0; i < ncl; i++) {
    char *colon = strchr(cl[i], ':');
    modes[i] = g_strndup(cl[i], colon ? (gsize)(colon - cl[i]) : strlen(cl[i]));
    timeouts[i] = colon ? g_strdup(colon + 1) : NULL;
    if (strcmp(modes[i], "none") && strcmp(modes[i], "auto") && strcmp(modes[i], "always")) {
      fprintf(stderr, "fs: cache mode '%s' is not none, auto or always\n", modes[i]);
      return 2;
    }
  }
  catch_stop_signals(on_signal);
  katavm_error *e = NULL;
  if (katavm_runtime_new(&g_rt, &e) < 0) {
    print_err("katavm_runtime_new", e);
    return 1;
  }
  g_autoptr(GError) ge = NULL;
  g_tmpdir = g_dir_make_tmp("katavm-bench-fs-XXXXXX", &ge);
  if (!g_tmpdir) {
    fprintf(stderr, "fs: %s\n", ge->message);
    return 1;
  }
  g_autofree char *load0 = loadavg();
  g_autofree char *bundle = make_bundle(files);
  g_autofree char *voldir = g_build_filename(g_tmpdir, "vol", NULL);
  int rc = bundle && g_mkdir(voldir, 0755) == 0 ? 0 : 1;

  guint nc = g_strv_length(cl) + 1;
  Config *cfgs = g_new0(Config, nc);
  for (guint i = 0; i < nc; i++) {
    Config *c = &cfgs[i];
    gboolean p9 = i == nc - 1;
    c->fs = p9 ? "9p" : "virtio-fs";
    c->cache = p9 ? NULL : modes[i];
    c->timeout = p9 ? NULL : timeouts[i];
    c->label = p9            ? g_strdup("9p")
               : timeouts[i] ? g_strdup_printf("vfs %s t=%s", modes[i], timeouts[i])
                             : g_strdup_printf("virtio-fs cache=%s", modes[i]);
    for (int s = 0; s < N_STEPS; s++) {
      c->share[s] = g_array_new(FALSE, FALSE, sizeof(double));
      c->vol[s] = g_array_new(FALSE, FALSE, sizeof(double));
      c->tmpfs[s] = g_array_new(FALSE, FALSE, sizeof(double));
    }
  }
  GArray *host[N_STEPS];
  for (int s = 0; s < N_STEPS; s++)
    host[s] = g_array_new(FALSE, FALSE, sizeof(double));
  for (guint r = 0; rc == 0 && r < rounds && !interrupted; r++) {
    double h[N_STEPS];
    if (!run_host(bundle, h)) {
      rc = 1;
      break;
    }
    for (int s = 0; s < N_STEPS; s++)
      g_array_append_val(host[s], h[s]);
  }
  for (guint i = 0; rc == 0 && i < nc && !interrupted; i++) {
    if (!json)
      fprintf(stderr, "fs: measuring %s ...\n", cfgs[i].label);
    if (!measure(&cfgs[i], bundle, voldir, rounds))
      rc = 1;
  }
  g_autofree char *load1 = loadavg();
  cleanup();
  katavm_runtime_free(g_rt);
  if (interrupted)
    return 130;
  if (rc == 0 && json) {
    GString *o = g_string_new("{\"bench\":\"fs\",\"rounds\":");
    g_string_append_printf(o, "%u,\"files\":%u,\"seq_mib\":%d,\"loadavg_start\":", rounds, files,
                           SEQ_MIB);
    json_str(o, load0);
    g_string_append(o, ",\"loadavg_end\":");
    json_str(o, load1);
    g_string_append(o, ",\"host\":{");
    for (int s = 0; s < N_STEPS; s++)
      g_string_append_printf(o, "%s\"%s\":%.3f", s ? "," : "", steps[s], med(host[s]));
    g_string_append(o, "},\"configs\":[");
    for (guint i = 0; i < nc; i++) {
      g_string_append_printf(o, "%s{\"label\":", i ? "," : "");
      json_str(o, cfgs[i].label);
      g_string_append(o, ",\"share\":{");
      for (int s = 0; s < N_STEPS; s++)
        g_string_append_printf(o, "%s\"%s\":%.3f", s ? "," : "", steps[s], med(cfgs[i].share[s]));
      g_string_append(o, "},\"volume\":{");
      for (int s = 0; s < N_STEPS; s++)
        g_string_append_printf(o, "%s\"%s\":%.3f", s ? "," : "", steps[s], med(cfgs[i].vol[s]));
      g_string_append(o, "},\"tmpfs\":{");
      for (int s = 0; s < N_STEPS; s++)
        g_string_append_printf(o, "%s\"%s\":%.3f", s ? "," : "", steps[s], med(cfgs[i].tmpfs[s]));
      g_string_append(o, "}}");
    }
    g_string_append(o, "]}");
    printf("%s\n", o->str);
    g_string_free(o, TRUE);
  } else if (rc == 0) {
    printf("fs: %u round(s), medians in seconds; %d MiB sequential, 2000-file metadata, "
           "%u-file tarball\n",
           rounds, SEQ_MIB, files);
    printf("load average: start %s, end %s\n", load0, load1);
    /* Per configuration: its rootfs, its volume, the guest tmpfs, and
     * the rootfs's and the volume's ratio to the tmpfs. */
    printf("%-12s %9s", "step", "host");
    for (guint i = 0; i < nc; i++)
      printf(" | %-22s %8s %8s %6s %6s", cfgs[i].label, "vol", "tmpfs", "r.root", "r.vol");
    printf("\n");
    for (int s = 0; s < N_STEPS; s++) {
      printf("%-12s %9.2f", steps[s], med(host[s]));
      for (guint i = 0; i < nc; i++) {
        double sh = med(cfgs[i].share[s]), vo = med(cfgs[i].vol[s]), tm = med(cfgs[i].tmpfs[s]);
        printf(" | %-22.2f %8.2f %8.2f %6.2f %6.2f", sh, vo, tm, tm > 0 ? sh / tm : 0,
               tm > 0 ? vo / tm : 0);
      }
      printf("\n");
    }
    printf("%-12s %9.2f", "meta total", meta_sum(host));
    for (guint i = 0; i < nc; i++) {
      double sh = meta_sum(cfgs[i].share), vo = meta_sum(cfgs[i].vol), tm = meta_sum(cfgs[i].tmpfs);
      printf(" | %-22.2f %8.2f %8.2f %6.2f %6.2f", sh, vo, tm, sh / tm, vo / tm);
    }
    printf("   (time ratio share/tmpfs; goal <= 2)\n");
    printf("%-12s %9.2f", "tar total", tar_sum(host));
    for (guint i = 0; i < nc; i++) {
      double sh = tar_sum(cfgs[i].share), vo = tar_sum(cfgs[i].vol), tm = tar_sum(cfgs[i].tmpfs);
      printf(" | %-22.2f %8.2f %8.2f %6.2f %6.2f", sh, vo, tm, sh / tm, vo / tm);
    }
    printf("   (time ratio share/tmpfs; goal <= 2)\n");
    for (int s = 0; s < 2; s++) {
      printf("%-12s %9.0f", s ? "read MB/s" : "write MB/s", SEQ_MIB * 1.048576 / med(host[s]));
      for (guint i = 0; i < nc; i++) {
        double sh = SEQ_MIB * 1.048576 / med(cfgs[i].share[s]);
        double vo = SEQ_MIB * 1.048576 / med(cfgs[i].vol[s]);
        double tm = SEQ_MIB * 1.048576 / med(cfgs[i].tmpfs[s]);
        printf(" | %-22.0f %8.0f %8.0f %6.2f %6.2f", sh, vo, tm, sh / tm, vo / tm);
      }
      printf("   (throughput ratio share/tmpfs; goal >= 0.5)\n");
    }
  }
  for (guint i = 0; i < nc; i++) {
    g_free(cfgs[i].label);
    for (int s = 0; s < N_STEPS; s++) {
      g_array_unref(cfgs[i].share[s]);
      g_array_unref(cfgs[i].vol[s]);
      g_array_unref(cfgs[i].tmpfs[s]);
    }
  }
  g_free(cfgs);
  for (guint i = 0; i < ncl; i++)
    g_free(timeouts[i]);
  g_free(timeouts);
  g_strfreev(modes);
  for (int s = 0; s < N_STEPS; s++)
    g_array_unref(host[s]);
  return rc;
}
