/* agent/mounts.c: the filesystems the agent mounts (see mounts.h). */
#include "mounts.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

typedef struct {
  const char *source;
  const char *target;
  const char *fstype;
  unsigned long flags;
  const char *data;
  gboolean required;      /* failure is fatal */
  gboolean quiet;         /* failure is expected on some kernels: no log */
  gboolean data_optional; /* data refused (EINVAL): mount without it */
} MountSpec;

static const MountSpec early_mounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, TRUE},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, TRUE},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", TRUE},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
    {"tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    /* favordynmods: every exec moves a process into its container's
     * cgroup, and a move otherwise waits for an RCU grace period
     * (cgroup_threadgroup_rwsem); forks and exits pay a plain rwsem
     * instead, nothing on one or a few vCPUs. bench/exec, TCG, exec of
     * `true`: 52-57 ms -> 40-51 ms (medians of 20, four alternating runs).
     * Kernels before 6.0 do not know it. */
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "favordynmods",
     FALSE, TRUE, TRUE},
};

static gboolean mount_one(const MountSpec *m, GError **error) {
  if (g_mkdir_with_parents(m->target, 0755) < 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "mkdir %s: %s", m->target,
                g_strerror(e));
    return FALSE;
  }
  if (mount(m->source, m->target, m->fstype, m->flags, m->data) == 0)
    return TRUE;
  if (errno == EINVAL && m->data_optional &&
      mount(m->source, m->target, m->fstype, m->flags, NULL) == 0)
    return TRUE;
  /* EBUSY: already mounted (e.g. the kernel mounted devtmpfs itself). */
  if (errno == EBUSY)
    return TRUE;
  int e = errno;
  g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "mount %s on %s: %s", m->fstype,
              m->target, g_strerror(e));
  return FALSE;
}

gboolean agent_mounts_setup(GError **error) {
  for (gsize i = 0; i < G_N_ELEMENTS(early_mounts); i++) {
    const MountSpec *m = &early_mounts[i];
    g_autoptr(GError) err = NULL;
    if (mount_one(m, &err))
      continue;
    if (m->required) {
      g_propagate_error(error, g_steal_pointer(&err));
      return FALSE;
    }
    if (m->quiet)
      agent_debug("%s", err->message);
    else
      agent_error("%s", err->message);
  }
  return TRUE;
}

/* Whether a virtio-fs device is bound (the 6.1 kernel shows no tag in
 * sysfs; the host gives at most one share, of either kind). */
static gboolean virtiofs_present(void) {
  g_autoptr(GDir) dir = g_dir_open("/sys/bus/virtio/drivers/virtiofs", 0, NULL);
  if (dir == NULL)
    return FALSE;
  const char *name;
  while ((name = g_dir_read_name(dir)) != NULL)
    if (g_str_has_prefix(name, "virtio"))
      return TRUE;
  return FALSE;
}

/* Whether a virtio-9p device with this mount tag exists. Checked first so
 * that a VM without a share costs no failed mount and no kernel error. */
static gboolean shared_tag_present(const char *tag) {
  const char *drv = "/sys/bus/virtio/drivers/9pnet_virtio";
  g_autoptr(GDir) dir = g_dir_open(drv, 0, NULL);
  if (dir == NULL)
    return FALSE;
  const char *name;
  while ((name = g_dir_read_name(dir)) != NULL) {
    if (!g_str_has_prefix(name, "virtio"))
      continue;
    g_autofree char *path = g_build_filename(drv, name, "mount_tag", NULL);
    g_autofree char *value = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &value, &len, NULL))
      continue;
    /* The attribute is the tag, NUL-terminated, sometimes with a newline. */
    g_strchomp(value);
    if (strcmp(value, tag) == 0)
      return TRUE;
  }
  return FALSE;
}

/* Read-ahead of the virtio-fs mount: the kernel's default of 128 KiB
 * makes a sequential read one FUSE request (a guest/host round trip) per
 * 128 KiB; 1 MiB is the largest request virtiofsd takes (FUSE max_pages
 * 256). Best effort. */
#define AGENT_VIRTIOFS_READ_AHEAD_KB 1024

static void virtiofs_read_ahead(const char *dir) {
  struct stat st;
  if (stat(dir, &st) < 0)
    return;
  g_autofree char *path =
      g_strdup_printf("/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
  g_autofree char *v = g_strdup_printf("%d\n", AGENT_VIRTIOFS_READ_AHEAD_KB);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, v, strlen(v)) < 0)
    agent_debug("%s: %s", path, g_strerror(errno));
  if (fd >= 0)
    close(fd);
}

int agent_mount_shared(GError **error) {
  if (virtiofs_present()) {
    /* virtio-fs: the host's virtiofsd decides caching (its cache= mode);
     * nothing to tune here. No nosuid/nodev, as for 9p. */
    const MountSpec m = {AGENT_SHARED_TAG, AGENT_SHARED_DIR, "virtiofs", 0, NULL};
    if (!mount_one(&m, error))
      return -1;
    virtiofs_read_ahead(AGENT_SHARED_DIR);
    agent_debug("share \"%s\" mounted (virtio-fs)", AGENT_SHARED_TAG);
    return 1;
  }
  if (!shared_tag_present(AGENT_SHARED_TAG)) {
    agent_debug("no 9p share \"%s\"", AGENT_SHARED_TAG);
    return 0;
  }
  /* msize 512000 is the most the 6.1 virtio transport takes (125 pages);
   * big messages matter for throughput under TCG. No nosuid/nodev: the
   * share carries container root filesystems. */
  const MountSpec m = {AGENT_SHARED_TAG, AGENT_SHARED_DIR, "9p", 0,
                       "trans=virtio,version=9p2000.L,msize=512000"};
  if (!mount_one(&m, error))
    return -1;
  return 1;
}
