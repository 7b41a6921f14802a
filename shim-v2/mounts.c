/* shim-v2/mounts.c: the rootfs as containerd hands it over: a list of
 * mounts (an overlay from the overlayfs snapshotter, a bind mount from the
 * native one) made on the host at BUNDLE/rootfs, which the library then
 * shares into the guest; and, for a read-only root, the mount points of
 * the spec's mounts that the image lacks. */
#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

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

static int open_beneath(int dir, const char *name) {
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                         .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, dir, name, &how, sizeof how);
}

/* One mount point below root (an O_PATH fd of the rootfs): missing
 * directories on the way are made, a symlink or a non-directory on the way
 * stops the walk (the guest's agent resolves those inside the container),
 * the last component is made a file or a directory when absent. */
static void make_point(int root, const char *dest, gboolean file) {
  g_auto(GStrv) parts = g_strsplit(dest, "/", -1);
  int dir = dup(root);
  guint n = g_strv_length(parts);
  for (guint i = 0; i < n && dir >= 0; i++) {
    const char *c = parts[i];
    if (!*c || !strcmp(c, "."))
      continue;
    if (!strcmp(c, ".."))
      break;
    gboolean last = TRUE;
    for (guint j = i + 1; j < n; j++)
      if (*parts[j] && strcmp(parts[j], "."))
        last = FALSE;
    struct stat st;
    if (fstatat(dir, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno != ENOENT)
        break;
      if (last && file) {
        int fd = openat(dir, c, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0)
          close(fd);
        break;
      }
      if (mkdirat(dir, c, 0755) < 0 && errno != EEXIST)
        break;
    } else if (last || !S_ISDIR(st.st_mode)) {
      break;
    }
    int next = open_beneath(dir, c);
    close(dir);
    dir = next;
  }
  if (dir >= 0)
    close(dir);
}

void mounts_make_points(const char *bundle, const char *rootfs) {
  g_autofree char *path = g_build_filename(bundle, "config.json", NULL);
  g_autoptr(JsonParser) jp = json_parser_new();
  if (!json_parser_load_from_file(jp, path, NULL) ||
      !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(jp)))
    return; /* the library reports a bad spec */
  JsonObject *spec = json_node_get_object(json_parser_get_root(jp));
  JsonObject *root = json_object_get_object_member(spec, "root");
  if (!root || !json_object_get_boolean_member_with_default(root, "readonly", FALSE) ||
      !json_object_has_member(spec, "mounts") ||
      !JSON_NODE_HOLDS_ARRAY(json_object_get_member(spec, "mounts")))
    return;
  int rfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0)
    return;
  JsonArray *ms = json_object_get_array_member(spec, "mounts");
  for (guint i = 0; i < json_array_get_length(ms); i++) {
    JsonNode *mn = json_array_get_element(ms, i);
    if (!JSON_NODE_HOLDS_OBJECT(mn))
      continue;
    JsonObject *m = json_node_get_object(mn);
    const char *dest = json_object_get_string_member_with_default(m, "destination", NULL);
    const char *type = json_object_get_string_member_with_default(m, "type", "");
    const char *source = json_object_get_string_member_with_default(m, "source", NULL);
    if (!dest || *dest != '/')
      continue;
    gboolean bind = !strcmp(type, "bind");
    JsonNode *on = json_object_get_member(m, "options");
    if (on && JSON_NODE_HOLDS_ARRAY(on)) {
      JsonArray *oa = json_node_get_array(on);
      for (guint k = 0; k < json_array_get_length(oa); k++) {
        const char *o = json_array_get_string_element(oa, k);
        if (o && (!strcmp(o, "bind") || !strcmp(o, "rbind")))
          bind = TRUE;
      }
    }
    /* A bind mount of a file needs a file to mount on. */
    gboolean file = bind && source && !g_file_test(source, G_FILE_TEST_IS_DIR);
    make_point(rfd, dest, file);
  }
  close(rfd);
}
