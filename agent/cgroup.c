/* agent/cgroup.c: per-container cgroups (see cgroup.h). */
#include "cgroup.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PARENT AGENT_CGROUP_ROOT "/katavm"

/* Controllers handed down to containers, where the kernel has them. */
static const char *const wanted[] = {"cpu", "memory", "pids", "cpuset"};

static gboolean initialised;
static gboolean enabled[G_N_ELEMENTS(wanted)];

static gboolean write_file(const char *dir, const char *file, const char *value, GError **error) {
  g_autofree char *path = g_build_filename(dir, file, NULL);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cgroup: open %s: %s", path, g_strerror(e));
    return FALSE;
  }
  ssize_t n = write(fd, value, strlen(value));
  int e = errno;
  close(fd);
  if (n != (ssize_t)strlen(value)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cgroup: writing \"%s\" to %s: %s", value, path,
                n < 0 ? g_strerror(e) : "short write");
    return FALSE;
  }
  return TRUE;
}

static gboolean controller_enabled(const char *name) {
  for (gsize i = 0; i < G_N_ELEMENTS(wanted); i++) {
    if (strcmp(wanted[i], name) == 0)
      return enabled[i];
  }
  return FALSE;
}

/* Enables the controllers once, at the root and at the katavm level. A
 * controller the kernel lacks only matters to a container that asks for
 * one of its limits (checked at create). */
static gboolean init_hierarchy(GError **error) {
  if (initialised)
    return TRUE;
  g_autofree char *available = NULL;
  if (!g_file_get_contents(AGENT_CGROUP_ROOT "/cgroup.controllers", &available, NULL, NULL)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO,
                "cgroup: cgroup2 is not mounted at " AGENT_CGROUP_ROOT);
    return FALSE;
  }
  g_auto(GStrv) have = g_strsplit_set(g_strstrip(available), " \n", -1);
  if (mkdir(PARENT, 0755) < 0 && errno != EEXIST) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cgroup: mkdir %s: %s", PARENT, g_strerror(e));
    return FALSE;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(wanted); i++) {
    if (!g_strv_contains((const char *const *)have, wanted[i]))
      continue;
    g_autofree char *plus = g_strconcat("+", wanted[i], NULL);
    g_autoptr(GError) err = NULL;
    if (!write_file(AGENT_CGROUP_ROOT, "cgroup.subtree_control", plus, &err) ||
        !write_file(PARENT, "cgroup.subtree_control", plus, &err)) {
      agent_error("%s", err->message);
      continue;
    }
    enabled[i] = TRUE;
  }
  initialised = TRUE;
  return TRUE;
}

static gboolean need(const char *controller, const char *what, GError **error) {
  if (controller_enabled(controller))
    return TRUE;
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED,
              "cgroup: %s needs the %s controller, which the guest kernel "
              "does not offer",
              what, controller);
  return FALSE;
}

static gboolean apply(const char *dir, const KvOciResources *r, GError **error) {
  char buf[64];
  if (r->memory_limit > 0 || r->memory_reservation > 0 || r->memory_swap > 0) {
    if (!need("memory", "linux.resources.memory", error))
      return FALSE;
  }
  if (r->memory_limit > 0) {
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, r->memory_limit);
    if (!write_file(dir, "memory.max", buf, error))
      return FALSE;
  }
  if (r->memory_reservation > 0) {
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, r->memory_reservation);
    if (!write_file(dir, "memory.low", buf, error))
      return FALSE;
  }
  /* OCI's swap is memory+swap (cgroup v1); v2 limits swap alone. Without
   * swap in the guest the file may be missing: nothing to limit then. */
  if (r->memory_swap > 0 && r->memory_limit > 0 && r->memory_swap >= r->memory_limit) {
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, r->memory_swap - r->memory_limit);
    g_autofree char *f = g_build_filename(dir, "memory.swap.max", NULL);
    if (access(f, F_OK) == 0 && !write_file(dir, "memory.swap.max", buf, error))
      return FALSE;
  }

  if (r->cpu_quota > 0 || r->cpu_period > 0) {
    if (!need("cpu", "linux.resources.cpu.quota", error))
      return FALSE;
    char quota[32] = "max";
    if (r->cpu_quota > 0)
      g_snprintf(quota, sizeof quota, "%" G_GINT64_FORMAT, r->cpu_quota);
    g_snprintf(buf, sizeof buf, "%s %" G_GINT64_FORMAT, quota,
               r->cpu_period > 0 ? r->cpu_period : 100000);
    if (!write_file(dir, "cpu.max", buf, error))
      return FALSE;
  }
  if (r->cpu_shares > 0) {
    if (!need("cpu", "linux.resources.cpu.shares", error))
      return FALSE;
    /* runc's mapping of v1 shares [2, 262144] onto v2 weight [1, 10000]. */
    gint64 shares = CLAMP(r->cpu_shares, 2, 262144);
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, 1 + ((shares - 2) * 9999) / 262142);
    if (!write_file(dir, "cpu.weight", buf, error))
      return FALSE;
  }
  if (r->cpuset_cpus != NULL || r->cpuset_mems != NULL) {
    if (!need("cpuset", "linux.resources.cpu.cpus/mems", error))
      return FALSE;
    if (r->cpuset_cpus != NULL && !write_file(dir, "cpuset.cpus", r->cpuset_cpus, error))
      return FALSE;
    if (r->cpuset_mems != NULL && !write_file(dir, "cpuset.mems", r->cpuset_mems, error))
      return FALSE;
  }
  if (r->pids_limit != -1) {
    if (!need("pids", "linux.resources.pids", error))
      return FALSE;
    if (r->pids_limit > 0)
      g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, r->pids_limit);
    else
      g_strlcpy(buf, "max", sizeof buf); /* 0 and below: unlimited (runc) */
    if (!write_file(dir, "pids.max", buf, error))
      return FALSE;
  }
  return TRUE;
}

char *agent_cgroup_create(const char *id, const KvOciResources *r, GError **error) {
  if (!init_hierarchy(error))
    return NULL;
  g_autofree char *dir = g_build_filename(PARENT, id, NULL);
  /* A cgroup left by an earlier container of the same id goes if empty. */
  if (mkdir(dir, 0755) < 0 && (errno != EEXIST || rmdir(dir) < 0 || mkdir(dir, 0755) < 0)) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cgroup: mkdir %s: %s", dir, g_strerror(e));
    return NULL;
  }
  if (!apply(dir, r, error)) {
    rmdir(dir);
    return NULL;
  }
  return g_steal_pointer(&dir);
}

int agent_cgroup_open_procs(const char *path, GError **error) {
  g_autofree char *f = g_build_filename(path, "cgroup.procs", NULL);
  int fd = open(f, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cgroup: open %s: %s", f, g_strerror(e));
  }
  return fd;
}

gboolean agent_cgroup_signal_all(const char *path, int sig, GError **error) {
  if (sig == SIGKILL && write_file(path, "cgroup.kill", "1", NULL))
    return TRUE;
  g_autofree char *f = g_build_filename(path, "cgroup.procs", NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) err = NULL;
  if (!g_file_get_contents(f, &text, NULL, &err)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cgroup: %s", err->message);
    return FALSE;
  }
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l != NULL; l++) {
    gint64 pid = g_ascii_strtoll(*l, NULL, 10);
    if (pid > 1)
      kill((pid_t)pid, sig); /* ESRCH: it exited meanwhile */
  }
  return TRUE;
}

gboolean agent_cgroup_update(const char *path, const KvOciResources *r, GError **error) {
  return apply(path, r, error);
}

gboolean agent_cgroup_freeze(const char *path, gboolean frozen, GError **error) {
  if (!write_file(path, "cgroup.freeze", frozen ? "1" : "0", error))
    return FALSE;
  /* Freezing completes once every task is stopped; a task in an
   * uninterruptible sleep may hold it up a moment. */
  g_autofree char *f = g_build_filename(path, "cgroup.events", NULL);
  const char *want = frozen ? "frozen 1" : "frozen 0";
  for (int i = 0; i < 500; i++) {
    g_autofree char *text = NULL;
    if (g_file_get_contents(f, &text, NULL, NULL) && strstr(text, want))
      return TRUE;
    g_usleep(10 * 1000);
  }
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_TIMEOUT, "cgroup %s: not %s within 5 s", path,
              frozen ? "frozen" : "thawed");
  return FALSE;
}

gboolean agent_cgroup_populated(const char *path) {
  g_autofree char *f = g_build_filename(path, "cgroup.events", NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(f, &text, NULL, NULL))
    return FALSE;
  return strstr(text, "populated 1") != NULL;
}

gboolean agent_cgroup_remove(const char *path, GError **error) {
  if (rmdir(path) == 0 || errno == ENOENT)
    return TRUE;
  int e = errno;
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cgroup: rmdir %s: %s", path, g_strerror(e));
  return FALSE;
}

/* One number of a cgroup file: "max" is -1, as is a file the kernel
 * lacks (a controller not enabled, no swap). */
static gint64 read_number(const char *dir, const char *file) {
  g_autofree char *path = g_build_filename(dir, file, NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return -1;
  g_strstrip(text);
  guint64 v = 0;
  if (!g_ascii_string_to_unsigned(text, 10, 0, G_MAXINT64, &v, NULL))
    return -1;
  return (gint64)v;
}

typedef struct {
  const char *key;
  gsize offset;
} StatKey;

/* The "key value" lines of a flat-keyed cgroup file into the result
 * fields the table names; keys the table lacks are skipped. */
static void read_keyed(const char *dir, const char *file, const StatKey *keys,
                       KvContainerStatsResult *r) {
  g_autofree char *path = g_build_filename(dir, file, NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l != NULL; l++) {
    char *sp = strchr(*l, ' ');
    if (sp == NULL)
      continue;
    *sp = '\0';
    guint64 v = 0;
    if (!g_ascii_string_to_unsigned(sp + 1, 10, 0, G_MAXINT64, &v, NULL))
      continue;
    for (const StatKey *k = keys; k->key != NULL; k++) {
      if (strcmp(k->key, *l) == 0) {
        G_STRUCT_MEMBER(gint64, r, k->offset) = (gint64)v;
        break;
      }
    }
  }
}

#define K(key, member)                                                                             \
  { key, G_STRUCT_OFFSET(KvContainerStatsResult, member) }
static const StatKey cpu_keys[] = {K("usage_usec", cpu_usage_usec),
                                   K("user_usec", cpu_user_usec),
                                   K("system_usec", cpu_system_usec),
                                   K("nr_periods", cpu_nr_periods),
                                   K("nr_throttled", cpu_nr_throttled),
                                   K("throttled_usec", cpu_throttled_usec),
                                   {NULL, 0}};
static const StatKey memory_keys[] = {K("anon", memory_anon),
                                      K("file", memory_file),
                                      K("kernel_stack", memory_kernel_stack),
                                      K("slab", memory_slab),
                                      K("sock", memory_sock),
                                      K("shmem", memory_shmem),
                                      K("file_mapped", memory_file_mapped),
                                      K("active_anon", memory_active_anon),
                                      K("inactive_anon", memory_inactive_anon),
                                      K("active_file", memory_active_file),
                                      K("inactive_file", memory_inactive_file),
                                      K("pgfault", memory_pgfault),
                                      K("pgmajfault", memory_pgmajfault),
                                      {NULL, 0}};
static const StatKey event_keys[] = {
    K("low", memory_events_low), K("high", memory_events_high),         K("max", memory_events_max),
    K("oom", memory_events_oom), K("oom_kill", memory_events_oom_kill), {NULL, 0}};
#undef K

void agent_cgroup_stats(const char *path, KvContainerStatsResult *r) {
  gint64 *all = (gint64 *)r;
  for (gsize i = 0; i < sizeof *r / sizeof(gint64); i++)
    all[i] = -1;
  read_keyed(path, "cpu.stat", cpu_keys, r);
  read_keyed(path, "memory.stat", memory_keys, r);
  read_keyed(path, "memory.events", event_keys, r);
  r->memory_current = read_number(path, "memory.current");
  r->memory_max = read_number(path, "memory.max");
  r->memory_swap_current = read_number(path, "memory.swap.current");
  r->memory_swap_max = read_number(path, "memory.swap.max");
  r->pids_current = read_number(path, "pids.current");
  r->pids_max = read_number(path, "pids.max");
  /* cpu.max: "QUOTA PERIOD", QUOTA "max" when unlimited */
  g_autofree char *f = g_build_filename(path, "cpu.max", NULL);
  g_autofree char *text = NULL;
  if (g_file_get_contents(f, &text, NULL, NULL)) {
    g_auto(GStrv) w = g_strsplit(g_strstrip(text), " ", 2);
    guint64 v = 0;
    if (w[0] != NULL && g_ascii_string_to_unsigned(w[0], 10, 1, G_MAXINT64, &v, NULL))
      r->cpu_max_quota = (gint64)v;
    if (w[0] != NULL && w[1] != NULL &&
        g_ascii_string_to_unsigned(w[1], 10, 1, G_MAXINT64, &v, NULL))
      r->cpu_max_period = (gint64)v;
  }
}
