/* shim-v2/mounts.c: the rootfs as containerd hands it over: a list of
 * mounts (an overlay from the overlayfs snapshotter, a bind mount from the
 * native one) made on the host at BUNDLE/rootfs, which the library then
 * shares into the guest. */
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "shim.h"

static const struct {
  const char *name;
  unsigned long set, clear;
} flags[] = {
    {"ro", MS_RDONLY, 0},           {"rw", 0, MS_RDONLY},       {"bind", MS_BIND, 0},
    {"rbind", MS_BIND | MS_REC, 0}, {"nosuid", MS_NOSUID, 0},   {"suid", 0, MS_NOSUID},
    {"nodev", MS_NODEV, 0},         {"dev", 0, MS_NODEV},       {"noexec", MS_NOEXEC, 0},
    {"exec", 0, MS_NOEXEC},         {"noatime", MS_NOATIME, 0}, {"relatime", MS_RELATIME, 0},
};

gboolean mounts_apply(Containerd__Types__Mount *const *mounts, size_t n, const char *target,
                      GError **error) {
  if (n == 0)
    return TRUE;
  if (n > 1) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                "rootfs: %zu mounts given, only one (an overlay or bind mount) is supported", n);
    return FALSE;
  }
  const Containerd__Types__Mount *m = mounts[0];
  if (g_mkdir_with_parents(target, 0711) < 0) {
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "rootfs: cannot create %s: %s",
                target, g_strerror(errno));
    return FALSE;
  }
  unsigned long fl = 0;
  g_autoptr(GString) data = g_string_new(NULL);
  for (size_t i = 0; i < m->n_options; i++) {
    const char *o = m->options[i];
    gboolean known = FALSE;
    for (size_t k = 0; k < G_N_ELEMENTS(flags); k++)
      if (!strcmp(o, flags[k].name)) {
        fl = (fl | flags[k].set) & ~flags[k].clear;
        known = TRUE;
      }
    if (!known) {
      if (data->len)
        g_string_append_c(data, ',');
      g_string_append(data, o);
    }
  }
  const char *type = m->type && *m->type ? m->type : "bind";
  if (!strcmp(type, "bind"))
    fl |= MS_BIND;
  if (!m->source || !*m->source) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "rootfs: mount of type %s has no source",
                type);
    return FALSE;
  }
  gboolean bind = (fl & MS_BIND) != 0;
  unsigned long first = bind ? fl & (MS_BIND | MS_REC) : fl;
  if (mount(m->source, target, bind ? NULL : type, first, !bind && data->len ? data->str : NULL) <
      0) {
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                "rootfs: mount %s (%s, options %s) on %s: %s", m->source, type,
                data->len ? data->str : "none", target, g_strerror(errno));
    return FALSE;
  }
  unsigned long rest = fl & ~(MS_BIND | MS_REC);
  if (bind && rest && mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | rest, NULL) < 0) {
    int e = errno;
    umount2(target, MNT_DETACH);
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "rootfs: remount %s: %s", target,
                g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

void mounts_remove(const char *target) {
  if (umount2(target, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    shim_log("unmount %s: %s", target, g_strerror(errno));
}
