/* lib/shim/fs.c: host-side path and mount operations inside the share
 * (see fs.h), the one place the shim touches paths the guest can write.
 *
 * The threat: the guest (root in it) can create, rename and remove
 * anything in the share, symlinks included, at any time, through 9p or
 * virtio-fs. A mount(2) on a path string below the share would follow a
 * symlink the guest placed at any component (e.g. containers/NEW ->
 * /etc) and mount onto the host's target, in the host's mount namespace;
 * a check followed by a mount on the same string loses a rename race.
 *
 * The design:
 * - Every path below the share is resolved from an O_PATH fd of the share
 *   root with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 *   RESOLVE_NO_MAGICLINKS): a symlink at any component fails with ELOOP,
 *   ".." or an absolute path cannot leave the share. What is found is
 *   refused, never followed.
 * - Directories are made one component at a time: mkdirat in the parent's
 *   fd, then that component opened the same way (a symlink or a file the
 *   guest put in its place is refused), and the next made below that fd.
 * - A mount is made onto the fd of its target, not a path: the host source
 *   (the caller's rootfs or volume; resolved normally, the guest cannot
 *   write above it) is cloned with open_tree(OPEN_TREE_CLONE |
 *   AT_RECURSIVE), given nosuid, nodev (and rdonly) with mount_setattr on
 *   the whole tree before it is attached anywhere, and attached with
 *   move_mount(MOVE_MOUNT_T_EMPTY_PATH) onto the target fd. Whatever the
 *   guest renames after the target was opened, the mount lands on that
 *   inode, inside the share.
 * - Unmounting: the target is opened the same way, must be the root of a
 *   mount (its mount id differs from its parent directory's) whose mount
 *   point, as /proc/self/mountinfo says, is exactly the share's path
 *   joined with rel (so it is the mount the shim made there, not one of
 *   the host's: only the shim mounts below the share), and is unmounted
 *   through /proc/self/fd/N of that fd, which names that mount and no
 *   other whatever happens to the path meanwhile. umount2 never walks the
 *   guest's path. The worst a guest can do is rename one container's
 *   mount point to another's place in the share: then a removal unmounts
 *   that one (inside the share, its own sandbox's business).
 * - Removal: unlinkat in the parent's fd, which removes the entry itself
 *   (a symlink, not its target), and rmdir of mount points fails (EBUSY).
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fields.h"
#include "msg.h"

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

#define RESOLVE_SHARE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* How many mounts stacked at one spot an unmount takes off at most. */
#define STACK_MAX 16

static int openat2_retry(int dir, const char *rel, struct open_how *how) {
  int fd;
  do
    fd = (int)syscall(SYS_openat2, dir, rel, how, sizeof *how);
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd;
}

static int openat2_share(int dir, const char *rel, int flags, mode_t mode) {
  struct open_how how = {.flags = (guint64)(flags | O_CLOEXEC | O_NOFOLLOW),
                         .mode = (flags & O_CREAT) ? mode : 0,
                         .resolve = RESOLVE_SHARE};
  return openat2_retry(dir, rel, &how);
}

/* The reason, in words, that resolving a share path failed. */
static const char *why(int e) {
  switch (e) {
  case ELOOP:
    return "a symbolic link is in the way (the host does not follow links in the share)";
  case ENOTDIR:
    return "a component that must be a directory is not one";
  case EXDEV:
    return "it leads out of the share";
  default:
    return g_strerror(e);
  }
}

/* The same, looking at what is there: O_NOFOLLOW on a symlink says
 * ENOTDIR or ELOOP, the entry itself says which it is. */
static int errno_at(int dir, const char *name, int e) {
  struct stat st;
  if ((e == ENOTDIR || e == ELOOP) && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(st.st_mode))
    return ELOOP;
  return e;
}

static gboolean fail(GError **error, int e, const char *what, const char *rel, const char *doing) {
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s: share path %s: %s: %s; refused", what, rel,
              doing, why(e));
  return FALSE;
}

int shim_fs_open_share(const char *share, GError **error) {
  int fd = open(share, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "the sandbox's share %s: %s", share,
                g_strerror(errno));
  return fd;
}

/* Make and open (O_PATH) each directory of rel below dir; -1 with the
 * error set. */
static int mkdirs(int dir, const char *rel, const char *what, GError **error) {
  int cur = fcntl(dir, F_DUPFD_CLOEXEC, 0);
  g_auto(GStrv) parts = g_strsplit(rel, "/", -1);
  GString *done = g_string_new(NULL);
  for (char **p = parts; cur >= 0 && *p; p++) {
    if (!**p)
      continue;
    if (done->len)
      g_string_append_c(done, '/');
    g_string_append(done, *p);
    if (!strcmp(*p, ".") || !strcmp(*p, "..")) {
      fail(error, EXDEV, what, done->str, "making a directory");
      close(cur);
      cur = -1;
      break;
    }
    if (mkdirat(cur, *p, 0755) < 0 && errno != EEXIST) {
      fail(error, errno, what, done->str, "making a directory");
      close(cur);
      cur = -1;
      break;
    }
    int next = openat2_share(cur, *p, O_PATH | O_DIRECTORY, 0);
    int e = next < 0 ? errno_at(cur, *p, errno) : 0;
    close(cur);
    cur = next;
    if (cur < 0)
      fail(error, e, what, done->str, "opening a directory");
  }
  g_string_free(done, TRUE);
  return cur;
}

/* rel split into its parent's fd (made as needed with make) and its last
 * name. */
static int open_parent(int share, const char *rel, gboolean make, const char *what, char **base,
                       GError **error) {
  g_autofree char *dir = g_path_get_dirname(rel);
  *base = g_path_get_basename(rel);
  if (!**base || !strcmp(*base, ".") || !strcmp(*base, "..") || !strcmp(*base, "/")) {
    fail(error, EXDEV, what, rel, "resolving");
    return -1;
  }
  if (!strcmp(dir, "."))
    return fcntl(share, F_DUPFD_CLOEXEC, 0);
  if (make)
    return mkdirs(share, dir, what, error);
  int fd = openat2_share(share, dir, O_PATH | O_DIRECTORY, 0);
  if (fd < 0)
    fail(error, errno == ENOTDIR ? ELOOP : errno, what, dir, "opening a directory");
  return fd;
}

/* path below tree, resolved as the container will see it: symlinks are
 * followed, but within tree (RESOLVE_IN_ROOT), never out of it. */
static int open_in_root(int tree, const char *path, int flags) {
  struct open_how how = {.flags = (guint64)(flags | O_CLOEXEC),
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return openat2_retry(tree, path, &how);
}

static gboolean point_fail(GError **error, const char *what, const char *path, const char *doing,
                           int e) {
  g_set_error(error, KV_ERROR_DOMAIN, e == EINVAL ? KV_E_INVALID : KV_E_IO,
              "%s: mount point %s in the read-only root: %s: %s", what, path, doing,
              e == ENOTDIR ? "a component that must be a directory is not one" : g_strerror(e));
  return FALSE;
}

/* Make the missing components of one mount point below tree. */
static gboolean make_point(int tree, const KvMountPoint *mp, const char *what, GError **error) {
  if (!g_path_is_absolute(mp->path))
    return point_fail(error, what, mp->path, "checking the path", EINVAL);
  g_auto(GStrv) parts = g_strsplit(mp->path + 1, "/", -1);
  guint n = 0;
  for (char **p = parts; *p; p++) {
    if (!strcmp(*p, ".") || !strcmp(*p, ".."))
      return point_fail(error, what, mp->path, "checking the path", EINVAL);
    if (**p)
      n++;
  }
  GString *prefix = g_string_new(NULL);
  int parent = fcntl(tree, F_DUPFD_CLOEXEC, 0);
  gboolean ok = parent >= 0;
  guint k = 0;
  for (char **p = parts; ok && *p; p++) {
    if (!**p)
      continue;
    gboolean last = ++k == n;
    if (prefix->len)
      g_string_append_c(prefix, '/');
    g_string_append(prefix, *p);
    int fd = open_in_root(tree, prefix->str, O_PATH | (last ? 0 : O_DIRECTORY));
    if (fd < 0 && errno == ENOENT) {
      /* Missing: made in the directory the prefix so far resolved to. A
       * dangling symlink says EEXIST here: left as it is when last, in the
       * way of a directory otherwise. */
      int r = last && mp->file
                  ? openat(parent, *p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)
                  : mkdirat(parent, *p, 0755);
      if (r < 0 && errno != EEXIST) {
        const char *doing = last && mp->file ? "making the file" : "making a directory";
        ok = point_fail(error, what, mp->path, doing, errno);
        break;
      }
      /* The modes runc gives them, whatever the shim's umask. */
      if (r >= 0 && last && mp->file) {
        (void)fchmod(r, 0644);
        close(r);
      } else if (r == 0) {
        int d = openat(parent, *p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d >= 0) {
          (void)fchmod(d, 0755);
          close(d);
        }
      }
      if (last)
        break;
      fd = open_in_root(tree, prefix->str, O_PATH | O_DIRECTORY);
    }
    if (fd < 0) {
      ok = point_fail(error, what, mp->path, "resolving", errno == ENOENT ? ENOTDIR : errno);
      break;
    }
    close(parent);
    parent = fd;
  }
  if (parent >= 0)
    close(parent);
  g_string_free(prefix, TRUE);
  return ok;
}

gboolean shim_fs_bind(int share, const char *rel, const char *source, gboolean readonly,
                      const GPtrArray *points, const char *what, GError **error) {
  int src = open_tree(AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (src < 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s: cannot open the source %s: %s", what, source,
                g_strerror(errno));
    return FALSE;
  }
  struct stat st;
  if (fstat(src, &st) < 0 || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "%s: the source %s is neither a directory nor a regular file", what, source);
    close(src);
    return FALSE;
  }
  gboolean dir = S_ISDIR(st.st_mode);
  /* In the detached clone, before it is read-only: nothing the guest does
   * reaches it, and what is made lands in the source itself. */
  for (guint i = 0; dir && points && i < points->len; i++) {
    if (!make_point(src, points->pdata[i], what, error)) {
      close(src);
      return FALSE;
    }
  }
  /* Before the tree is attached anywhere: no moment in which the share
   * holds a setuid-capable or device-capable copy of it. */
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                        (readonly ? MOUNT_ATTR_RDONLY : 0)};
  if (mount_setattr(src, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s: setting nosuid,nodev%s on %s: %s", what,
                readonly ? ",ro" : "", source, g_strerror(errno));
    close(src);
    return FALSE;
  }
  g_autofree char *base = NULL;
  int parent = open_parent(share, rel, TRUE, what, &base, error);
  if (parent < 0) {
    close(src);
    return FALSE;
  }
  gboolean made = FALSE;
  int target = -1;
  if (dir) {
    if (mkdirat(parent, base, 0755) == 0)
      made = TRUE;
    else if (errno != EEXIST)
      fail(error, errno, what, rel, "making the mount point");
    if (made || errno == EEXIST) {
      target = openat2_share(parent, base, O_PATH | O_DIRECTORY, 0);
      if (target < 0)
        fail(error, errno_at(parent, base, errno), what, rel, "opening the mount point");
    }
  } else {
    /* A single file is mounted onto a file: made here, empty, exclusively
     * (O_EXCL does not follow a symlink put there meanwhile). */
    target = openat2_share(parent, base, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (target >= 0) {
      made = TRUE;
    } else if (errno == EEXIST) {
      target = openat2_share(parent, base, O_PATH, 0);
      struct stat ts;
      if (target >= 0 && (fstat(target, &ts) < 0 || !S_ISREG(ts.st_mode))) {
        close(target);
        target = -1;
        g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO,
                    "%s: share path %s: something other than a regular file is in the way of "
                    "the mount point; refused",
                    what, rel);
      } else if (target < 0) {
        fail(error, errno_at(parent, base, errno), what, rel, "opening the mount point");
      }
    } else {
      fail(error, errno, what, rel, "making the mount point");
    }
  }
  gboolean ok = FALSE;
  if (target >= 0) {
    if (move_mount(src, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) == 0)
      ok = TRUE;
    else
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s: mounting %s at share path %s: %s", what,
                  source, rel, g_strerror(errno));
    close(target);
  }
  if (!ok && made)
    unlinkat(parent, base, dir ? AT_REMOVEDIR : 0);
  close(parent);
  close(src);
  return ok;
}

static gboolean mnt_id_of(int fd, guint64 *id) {
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0 ||
      !(sx.stx_mask & STATX_MNT_ID))
    return FALSE;
  *id = sx.stx_mnt_id;
  return TRUE;
}

/* mountinfo's octal escapes (\040 for a space, ...) undone. */
static char *unescape(const char *s) {
  GString *o = g_string_new(NULL);
  for (; *s; s++) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
        s[3] <= '7') {
      g_string_append_c(o, (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0')));
      s += 3;
    } else {
      g_string_append_c(o, *s);
    }
  }
  return g_string_free(o, FALSE);
}

/* The mount point of mount `id` in this process's namespace, or NULL. */
static char *mount_point_of(guint64 id) {
  g_autofree char *data = NULL;
  if (!g_file_get_contents("/proc/self/mountinfo", &data, NULL, NULL))
    return NULL;
  g_auto(GStrv) lines = g_strsplit(data, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit(*l, " ", 6);
    if (g_strv_length(f) >= 5 && g_ascii_strtoull(f[0], NULL, 10) == id)
      return unescape(f[4]);
  }
  return NULL;
}

static char *fd_path(int fd) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  return g_file_read_link(link, NULL);
}

gboolean shim_fs_unmount(int share, const char *rel, GError **error) {
  g_autofree char *share_path = fd_path(share);
  if (!share_path) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "share path %s: cannot name the share", rel);
    return FALSE;
  }
  g_autofree char *want = g_build_filename(share_path, rel, NULL);
  g_autofree char *base = NULL;
  int parent = open_parent(share, rel, FALSE, "unmount", &base, NULL);
  if (parent < 0)
    return TRUE; /* nothing there the shim could have mounted */
  guint64 pid;
  gboolean ok = mnt_id_of(parent, &pid);
  for (int i = 0; ok && i < STACK_MAX; i++) {
    int fd = openat2_share(parent, base, O_PATH, 0);
    if (fd < 0)
      break; /* missing, or a symlink the guest put there: not our mount */
    guint64 id;
    if (!mnt_id_of(fd, &id) || id == pid) {
      close(fd);
      break; /* not a mount point (any more) */
    }
    g_autofree char *mp = mount_point_of(id);
    if (g_strcmp0(mp, want) != 0) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO,
                  "share path %s: the mount there has its mount point at %s, not at %s: not "
                  "unmounting it",
                  rel, mp ? mp : "(unknown)", want);
      close(fd);
      ok = FALSE;
      break;
    }
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if (umount2(link, MNT_DETACH) < 0) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "unmounting share path %s: %s", rel,
                  g_strerror(errno));
      ok = FALSE;
    }
    close(fd);
  }
  close(parent);
  return ok;
}

gboolean shim_fs_remove(int share, const char *rel, GError **error) {
  g_autofree char *base = NULL;
  int parent = open_parent(share, rel, FALSE, "remove", &base, NULL);
  if (parent < 0)
    return TRUE;
  gboolean ok = TRUE;
  if (unlinkat(parent, base, AT_REMOVEDIR) < 0 && errno != ENOENT) {
    struct stat st;
    if (errno == ENOTDIR && fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISDIR(st.st_mode)) {
      if (unlinkat(parent, base, 0) < 0 && errno != ENOENT)
        ok = FALSE;
    } else {
      ok = FALSE;
    }
    if (!ok)
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "removing share path %s: %s", rel,
                  g_strerror(errno));
  }
  close(parent);
  return ok;
}

static gint cmp_str(gconstpointer a, gconstpointer b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

GPtrArray *shim_fs_list(int share, const char *rel) {
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  int fd = openat2_share(share, rel, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0)
    return out;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return out;
  }
  struct dirent *de;
  /* A guest can fill the directory: the caller only takes valid names,
   * and this stops at a bound. */
  while ((de = readdir(d)) && out->len < 65536)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      g_ptr_array_add(out, g_strdup(de->d_name));
  closedir(d);
  g_ptr_array_sort(out, cmp_str);
  return out;
}
