/* agent/rootfs.c: what the agent reads from a container's rootfs once, at
 * creation (see rootfs.h). */
#include "rootfs.h"
#include "launch.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
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
