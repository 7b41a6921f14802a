/* agent/rootfs.c: what the agent reads from a container's rootfs once, at
 * creation, and the bounded writable layer over it (see rootfs.h). */
#include "rootfs.h"
#include "launch.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* HOME from the rootfs's /etc/passwd, like runc. The file is opened with
 * the rootfs as its root (openat2 RESOLVE_IN_ROOT): a symlink in the image
 * cannot make the agent read one of the guest's own files. */
static char *home_of(const char *rootfs, uid_t uid) {
  int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    return NULL;
  struct open_how how = {
      .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  int fd = (int)syscall(SYS_openat2, root, "etc/passwd", &how, sizeof how);
  close(root);
  if (fd < 0)
    return NULL;
  struct stat st;
  g_autofree char *text = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= 1024 * 1024) {
    text = g_malloc((gsize)st.st_size + 1);
    gsize got = 0;
    while (got < (gsize)st.st_size) {
      ssize_t n = read(fd, text + got, (gsize)st.st_size - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += (gsize)n;
    }
    text[got] = '\0';
  }
  close(fd);
  if (text == NULL)
    return NULL;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l != NULL; l++) {
    g_auto(GStrv) f = g_strsplit(*l, ":", 7);
    if (g_strv_length(f) >= 6 && f[2][0] != '\0' && g_ascii_strtoull(f[2], NULL, 10) == uid)
      return g_strdup(f[5]);
  }
  return NULL;
}

char *agent_home_of(const char *rootfs, uid_t uid) {
  char *home = home_of(rootfs, uid);
  if (home == NULL || *home == '\0') {
    g_free(home);
    return g_strdup("/");
  }
  return home;
}

/* openat2 calls agent_rootfs_pin_path() makes at most. */
#define AGENT_PATH_PIN_TRIES 48

/* Looking a command up by PATH costs one 9p round trip per component of
 * each directory tried: the share is mounted uncached (cache=none; Kata's
 * cache=mmap looks up the same way), so v9fs drops a directory's dentry as
 * soon as nothing uses it, and the next lookup walks it again from the
 * root. An exec of `dd` tries five directories before /bin: ~35 round
 * trips, ~12 ms of each exec under TCG. virtio-fs (the default share now)
 * keeps dentries for virtiofsd's name timeout (1 s by default) and then
 * revalidates each with a LOOKUP: a pinned directory costs one
 * revalidation instead of a walk from the root, so the pins help there
 * too, if less.
 *
 * Holding each PATH directory open (O_PATH) keeps its dentry and those of
 * its parents in the guest's dcache, so a lookup there walks only the
 * last name. Nothing else is cached: a dentry in use is what a process's
 * working directory holds too, v9fs does not revalidate either, and QEMU
 * resolves a 9p fid by its path name, so files added to or removed from a
 * pinned directory on the host are seen at once, and so is a directory
 * removed and made again. Over virtio-fs every name is cached for the
 * name timeout, pinned or not, so these host-side changes are seen within
 * it (1 s) rather than at once; a directory removed and made again on the
 * host is found anew by the next lookup after it (revalidation sees the
 * new inode), and the pin then holds the old one, uselessly, until the
 * container goes. A directory that does not exist pins its deepest
 * existing ancestor (a later mkdir there is seen). Opened with the rootfs as
 * root (openat2 RESOLVE_IN_ROOT), as an exec's lookups resolve; the
 * container's own mounts over these directories still win in its mount
 * namespace, since they are crossed at each lookup. Closed with the
 * container, and never inherited (O_CLOEXEC; launch closes the rest). */
static void pin_path_dirs(AgentPathPins *pins, int root, const char *path, guint *tries,
                          GHashTable *done) {
  g_auto(GStrv) dirs = g_strsplit(path, ":", -1);
  for (char **d = dirs; *d != NULL; d++) {
    /* Relative entries are relative to a process's cwd: not pinned. */
    if ((*d)[0] != '/')
      continue;
    g_autofree char *rel = g_strdup(*d + strspn(*d, "/"));
    /* Each try walks over 9p: a PATH of many deep, missing directories
     * must not hold up the create. A directory already pinned (or an
     * ancestor two missing directories share) is not opened again. */
    while (rel[0] != '\0' && pins->n < AGENT_PATH_PINS_MAX && !g_hash_table_contains(done, rel) &&
           (*tries)++ < AGENT_PATH_PIN_TRIES) {
      g_hash_table_add(done, g_strdup(rel));
      struct open_how how = {
          .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
      };
      int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
      if (fd >= 0) {
        pins->fds[pins->n++] = fd;
        break;
      }
      if (errno != ENOENT && errno != ENOTDIR)
        break;
      char *slash = strrchr(rel, '/');
      if (slash == NULL)
        break; /* the root itself is the container's root: in use */
      *slash = '\0';
    }
  }
}

void agent_rootfs_pin_path(AgentPathPins *pins, const char *rootfs, const char *path) {
  int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    return;
  guint tries = 0;
  g_autoptr(GHashTable) done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  if (path != NULL)
    pin_path_dirs(pins, root, path, &tries, done);
  /* An exec whose environment names no PATH searches the default one. */
  pin_path_dirs(pins, root, AGENT_DEFAULT_PATH, &tries, done);
  close(root);
}

void agent_path_pins_clear(AgentPathPins *pins) {
  for (guint i = 0; i < pins->n; i++)
    close(pins->fds[i]);
  pins->n = 0;
}

/* ---- the bounded writable layer ----
 *
 * A container whose spec asks for one (KvOciSpec.storage_size_mib) writes
 * into a tmpfs of that size in the guest, as the upper directory of an
 * overlay whose lower directory is the rootfs in the share: the host's
 * rootfs is only read (the shim shares it read-only), and what the
 * container writes costs guest memory, at most the bound, never host disk.
 * A write past the bound fails with ENOSPC in the container. The layer
 * lives as long as the container: its mounts are detached when the agent
 * forgets the container, and the tmpfs is freed with the last mount
 * namespace that holds it. */

static char *layer_dir(const char *cid) {
  return g_build_filename(AGENT_LAYERS_DIR, cid, NULL);
}

static gboolean layer_fail(GError **error, const char *what, const char *path) {
  int e = errno;
  g_set_error(error, KV_ERROR_DOMAIN, e == ENODEV ? KV_E_UNSUPPORTED : KV_E_IO, "%s %s: %s", what,
              path, g_strerror(e));
  return FALSE;
}

char *agent_rootfs_layer_mount(const char *cid, const char *lower, guint64 size_mib,
                               GError **error) {
  g_autofree char *dir = layer_dir(cid);
  g_autofree char *upper = g_build_filename(dir, "upper", NULL);
  g_autofree char *work = g_build_filename(dir, "work", NULL);
  g_autofree char *root = g_build_filename(dir, "root", NULL);
  g_autofree char *opts = g_strdup_printf("size=%" G_GUINT64_FORMAT "m,mode=0700", size_mib);
  if (g_mkdir_with_parents(dir, 0700) < 0) {
    layer_fail(error, "writable layer: cannot create", dir);
    return NULL;
  }
  if (mount("katavm-layer", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
    layer_fail(error, "writable layer: cannot mount a tmpfs on", dir);
    rmdir(dir);
    return NULL;
  }
  /* The upper directory becomes the container's root directory: the
   * rootfs's own mode and owner, not the tmpfs's. */
  struct stat st = {0};
  gboolean ok = stat(lower, &st) == 0 || layer_fail(error, "writable layer: rootfs", lower);
  ok = ok && (mkdir(upper, st.st_mode & 07777) == 0 || layer_fail(error, "cannot create", upper));
  ok = ok && (chown(upper, st.st_uid, st.st_gid) == 0 || layer_fail(error, "cannot chown", upper));
  ok = ok && (mkdir(work, 0700) == 0 || layer_fail(error, "cannot create", work));
  ok = ok && (mkdir(root, 0755) == 0 || layer_fail(error, "cannot create", root));
  if (ok) {
    /* Under virtio-fs the rootfs (a bind mount of its own on the host) is
     * a submount, an automount point in the guest until something opens
     * it; overlayfs does not cross one ("filesystem ... not supported").
     * Opening the directory mounts it; the fd keeps it until the overlay
     * holds it. */
    int held = open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g_autofree char *ovl =
        g_strdup_printf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    ok = held >= 0 || layer_fail(error, "writable layer: cannot open", lower);
    ok = ok && (mount("katavm-rootfs", root, "overlay", 0, ovl) == 0 ||
                layer_fail(error, "writable layer: cannot mount an overlay on", root));
    if (held >= 0)
      close(held);
  }
  if (!ok) {
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    return NULL;
  }
  return g_steal_pointer(&root);
}

void agent_rootfs_layer_unmount(const char *cid) {
  g_autofree char *dir = layer_dir(cid);
  g_autofree char *root = g_build_filename(dir, "root", NULL);
  if (umount2(root, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    agent_error("writable layer of %s: unmounting %s: %s", cid, root, g_strerror(errno));
  if (umount2(dir, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    agent_error("writable layer of %s: unmounting %s: %s", cid, dir, g_strerror(errno));
  rmdir(dir);
}
