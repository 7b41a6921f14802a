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
