/* bench/common.c: see common.h. */
#include "common.h"

#include <json-glib/json-glib.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

double now_s(void) {
  return g_get_monotonic_time() / 1e6;
}

char *loadavg(void) {
  g_autofree char *text = NULL;
  if (!g_file_get_contents("/proc/loadavg", &text, NULL, NULL))
    return g_strdup("?");
  g_auto(GStrv) f = g_strsplit(g_strstrip(text), " ", 4);
  return g_strv_length(f) >= 3 ? g_strdup_printf("%s %s %s", f[0], f[1], f[2]) : g_strdup(text);
}

int nproc(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    return CPU_COUNT(&set);
  return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

char *mkrootfs_path(void) {
  const char *env = g_getenv("KATAVM_MKROOTFS");
  if (env && *env)
    return g_strdup(env);
  g_autofree char *dir = g_path_get_dirname(__FILE__);
  return g_build_filename(dir, "..", "tests", "rootfs", "mkrootfs.sh", NULL);
}

void qemu_args_clear(QemuArgs *a) {
  g_free(a->qemu);
  g_free(a->kernel);
  g_free(a->initrd);
  g_free(a->append);
  g_free(a->accel);
  g_free(a->cpu);
  g_free(a->mem);
  g_free(a->smp);
  memset(a, 0, sizeof *a);
}

gboolean qemu_args_read(pid_t pid, QemuArgs *a) {
  g_autofree char *path = g_strdup_printf("/proc/%d/cmdline", (int)pid);
  g_autofree char *buf = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &buf, &len, NULL) || len == 0) {
    fprintf(stderr, "bench: cannot read %s\n", path);
    return FALSE;
  }
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  for (gsize i = 0; i < len; i += strlen(buf + i) + 1)
    g_ptr_array_add(argv, buf + i);
  a->qemu = g_strdup(argv->pdata[0]);
  struct {
    const char *opt;
    char **dst;
  } want[] = {
      {"-kernel", &a->kernel}, {"-initrd", &a->initrd}, {"-append", &a->append},
      {"-accel", &a->accel},   {"-cpu", &a->cpu},       {"-m", &a->mem},
      {"-smp", &a->smp},
  };
  for (guint i = 0; i + 1 < argv->len; i++)
    for (gsize w = 0; w < G_N_ELEMENTS(want); w++)
      if (!strcmp(argv->pdata[i], want[w].opt) && !*want[w].dst)
        *want[w].dst = g_strdup(argv->pdata[i + 1]);
  if (!a->kernel || !a->initrd || !a->append) {
    fprintf(stderr, "exec: QEMU %d has no -kernel/-initrd/-append\n", (int)pid);
    return FALSE;
  }
  if (!a->accel)
    a->accel = g_strdup("tcg,tb-size=32");
  if (!a->cpu)
    a->cpu = g_strdup("max");
  if (!a->mem)
    a->mem = g_strdup("512");
  if (!a->smp)
    a->smp = g_strdup("1");
  return TRUE;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

Stats stats(const double *v, guint n) {
  g_autofree double *s = g_memdup2(v, n * sizeof *v);
  qsort(s, n, sizeof *s, cmp_double);
  Stats st = {.min = s[0], .max = s[n - 1]};
  st.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return st;
}

void json_str(GString *o, const char *s) {
  g_string_append_c(o, '"');
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      g_string_append_printf(o, "\\%c", c);
    else if (c < 0x20)
      g_string_append_printf(o, "\\u%04x", c);
    else
      g_string_append_c(o, c);
  }
  g_string_append_c(o, '"');
}

static JsonNode *json_top(const char *js, const char *key, JsonParser *p) {
  if (!js || !json_parser_load_from_data(p, js, -1, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root(p);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root))
    return NULL;
  return json_object_get_member(json_node_get_object(root), key);
}

gboolean json_top_int(const char *js, const char *key, gint64 *out) {
  g_autoptr(JsonParser) p = json_parser_new();
  JsonNode *n = json_top(js, key, p);
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int(n);
  return TRUE;
}

char *json_top_str(const char *js, const char *key) {
  g_autoptr(JsonParser) p = json_parser_new();
  JsonNode *n = json_top(js, key, p);
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
    return NULL;
  return g_strdup(json_node_get_string(n));
}

gboolean json_top_bool(const char *js, const char *key) {
  g_autoptr(JsonParser) p = json_parser_new();
  JsonNode *n = json_top(js, key, p);
  return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_BOOLEAN &&
         json_node_get_boolean(n);
}

void json_stats(GString *o, const char *name, const double *v, guint n, const char *fmt) {
  Stats st = stats(v, n);
  g_string_append_printf(o, "\"%s\":{\"median\":", name);
  g_string_append_printf(o, fmt, st.median);
  g_string_append(o, ",\"min\":");
  g_string_append_printf(o, fmt, st.min);
  g_string_append(o, ",\"max\":");
  g_string_append_printf(o, fmt, st.max);
  g_string_append(o, ",\"samples\":[");
  for (guint i = 0; i < n; i++) {
    if (i)
      g_string_append_c(o, ',');
    g_string_append_printf(o, fmt, v[i]);
  }
  g_string_append(o, "]}");
}

pid_t spawn_qemu(const char *who, const char *const *argv, const char *log, double *t0) {
  /* The child's stdio is set up before the clock starts. */
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (devnull < 0 || logfd < 0) {
    fprintf(stderr, "%s: open %s: %s\n", who, log, g_strerror(errno));
    if (devnull >= 0)
      close(devnull);
    if (logfd >= 0)
      close(logfd);
    return -1;
  }
  pid_t parent = getpid();
  *t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    setpgid(0, 0);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(logfd, 2);
    execv(argv[0], (char **)argv);
    _exit(127);
  }
  int fork_errno = errno;
  close(devnull);
  close(logfd);
  if (pid < 0)
    fprintf(stderr, "%s: fork: %s\n", who, g_strerror(fork_errno));
  return pid;
}

void json_machine_guest(GString *o, const char *load_start, const char *load_end, const char *accel,
                        const QemuArgs *a) {
  const struct {
    const char *key, *value;
  } machine[] = {{"loadavg_start", load_start}, {"loadavg_end", load_end}, {"accel", accel}},
    guest[] = {{"qemu", a->qemu},     {"kernel", a->kernel},   {"initrd", a->initrd},
               {"append", a->append}, {"accel_arg", a->accel}, {"cpu", a->cpu},
               {"m", a->mem},         {"smp", a->smp}};
  g_string_append_printf(o, "\"machine\":{\"nproc\":%d", nproc());
  for (gsize i = 0; i < G_N_ELEMENTS(machine); i++) {
    g_string_append_printf(o, ",\"%s\":", machine[i].key);
    json_str(o, machine[i].value);
  }
  g_string_append(o, "},\"guest\":{");
  for (gsize i = 0; i < G_N_ELEMENTS(guest); i++) {
    g_string_append_printf(o, "%s\"%s\":", i ? "," : "", guest[i].key);
    json_str(o, guest[i].value);
  }
  g_string_append(o, "}");
}

void catch_stop_signals(void (*handler)(int)) {
  struct sigaction act = {.sa_handler = handler, .sa_flags = SA_RESTART};
  sigemptyset(&act.sa_mask);
  sigaction(SIGINT, &act, NULL);
  sigaction(SIGTERM, &act, NULL);
  sigaction(SIGHUP, &act, NULL);
}

void print_row(int width, const char *label, const double *v, guint n, double scale,
               const char *unit) {
  Stats st = stats(v, n);
  printf("  %-*s %9.2f %9.2f %9.2f  %s\n", width, label, st.median * scale, st.min * scale,
         st.max * scale, unit);
}

void print_samples(int width, const char *label, const double *v, guint n, double scale) {
  printf("  %-*s", width, label);
  for (guint i = 0; i < n; i++)
    printf(" %.2f", v[i] * scale);
  printf("\n");
}
