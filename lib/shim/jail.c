/* lib/shim/jail.c: an unprivileged QEMU per sandbox (see jail.h).
 *
 * libvirt's DAC seclabel (<seclabel type='static' model='dac'
 * relabel='no'>) makes libvirt start QEMU as "+UID:+GID" with every
 * capability dropped; relabel='no' keeps libvirt from chowning anything:
 * the kernel and initrd are shared by every sandbox and must never become
 * writable by one QEMU. What QEMU still opens by path: the kernel and initrd
 * (world-readable image files), libvirt's per-domain dir under the embedded
 * root (master-key.aes), and the virtiofsd socket. Everything else reaches
 * it as a file descriptor from libvirt (monitor, agent channel and console
 * sockets, taps), except hot-plugged image files: libvirt 9.0 does not pass
 * an <source fdgroup> on hotplug (QEMU then finds no fdset), so those get
 * an ACL entry for the uid while attached. */
#include "jail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <unistd.h>

gboolean jail_enabled(Shim *s) {
  /* Both shares are served by a daemon of the shim's (lib/shim/vfsd.h):
   * QEMU never touches the share's files. */
  return s->cfg.uri == NULL;
}

static char *claims_dir(Shim *s) {
  return g_build_filename(s->p.root, "uids", NULL);
}

static gboolean fail_errno(GError **error, const char *what, const char *path) {
  int e = errno;
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s '%s': %s", what, path, g_strerror(e));
  return FALSE;
}

/* A claim whose sandbox has no state dir any more was left by a shim that
 * died between the VM's end and its cleanup: free to take. */
static gboolean claim_stale(Shim *s, const char *owner) {
  if (!kv_id_validate(owner, NULL))
    return TRUE;
  g_autofree char *dir = g_build_filename(s->p.root, "sandboxes", owner, NULL);
  g_autofree char *pooled = g_build_filename(s->p.root, "pool", "vms", owner, NULL);
  return !g_file_test(dir, G_FILE_TEST_IS_DIR) && !g_file_test(pooled, G_FILE_TEST_IS_DIR);
}

static gboolean claim_uid(Shim *s, guint32 *uid, GError **error) {
  g_autofree char *dir = claims_dir(s);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return fail_errno(error, "cannot create", dir);
  guint start = g_str_hash(s->id) % JAIL_UID_COUNT;
  for (guint i = 0; i < JAIL_UID_COUNT; i++) {
    guint32 u = JAIL_UID_BASE + (start + i) % JAIL_UID_COUNT;
    g_autofree char *path = g_strdup_printf("%s/%u", dir, u);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      gboolean ok = write(fd, s->id, strlen(s->id)) == (ssize_t)strlen(s->id);
      close(fd);
      if (!ok) {
        unlink(path);
        return fail_errno(error, "cannot write", path);
      }
      *uid = u;
      return TRUE;
    }
    if (errno != EEXIST)
      return fail_errno(error, "cannot create", path);
    g_autofree char *owner = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &owner, &len, NULL))
      continue;
    if (!g_strcmp0(owner, s->id)) {
      *uid = u;
      return TRUE;
    }
    if (claim_stale(s, owner) && unlink(path) == 0)
      i--; /* retry this uid */
  }
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "no free QEMU uid in %u-%u", JAIL_UID_BASE,
              JAIL_UID_BASE + JAIL_UID_COUNT - 1);
  return FALSE;
}

/* Add o+x to a directory of ours (a path component QEMU must cross). */
static gboolean traversable(const char *path, GError **error) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return fail_errno(error, "cannot stat", path);
  if (!S_ISDIR(st.st_mode) || (st.st_mode & S_IXOTH))
    return TRUE;
  if (st.st_uid != geteuid()) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO,
                "'%s' is not ours and not traversable: the unprivileged QEMU cannot reach its "
                "files below it",
                path);
    return FALSE;
  }
  if (chmod(path, (st.st_mode & 07777) | S_IXOTH) < 0)
    return fail_errno(error, "cannot chmod", path);
  return TRUE;
}

static gboolean group_dir(const char *path, guint32 gid, GError **error) {
  if (mkdir(path, 0710) < 0 && errno != EEXIST)
    return fail_errno(error, "cannot create", path);
  if (chown(path, geteuid(), gid) < 0 || chmod(path, 0710) < 0)
    return fail_errno(error, "cannot give QEMU", path);
  return TRUE;
}

gboolean jail_prepare(Shim *s, guint32 *uid, GError **error) {
  if (!claim_uid(s, uid, error))
    return FALSE;
  g_autofree char *r = g_path_get_dirname(s->p.run);
  /* Every ancestor of the run dir: "/", "/run", the state root, ROOT/r. */
  g_autofree char *walk = g_strdup(r);
  GPtrArray *chain = g_ptr_array_new_with_free_func(g_free);
  while (strlen(walk) > 1) {
    g_ptr_array_add(chain, g_strdup(walk));
    char *d = g_path_get_dirname(walk);
    g_free(walk);
    walk = d;
  }
  gboolean ok = TRUE;
  for (guint i = chain->len; ok && i-- > 0;)
    ok = traversable(chain->pdata[i], error);
  g_ptr_array_unref(chain);
  g_autofree char *lib = g_build_filename(s->p.vmm_root, "lib", NULL);
  return ok && group_dir(s->p.run, *uid, error) && group_dir(s->p.vmm_root, *uid, error) &&
         group_dir(lib, *uid, error);
}

gboolean jail_give(Shim *s, guint32 uid, const char *path, GError **error) {
  if (lchown(path, uid, uid) < 0)
    return fail_errno(error, "cannot give QEMU", path);
  return TRUE;
}

void jail_release(Shim *s) {
  g_autofree char *dir = claims_dir(s);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *owner = NULL;
    if (g_file_get_contents(path, &owner, NULL, NULL) && !g_strcmp0(owner, s->id))
      unlink(path);
  }
}

void jail_rename(Shim *s, const char *old_owner) {
  g_autofree char *dir = claims_dir(s);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *owner = NULL;
    if (!g_file_get_contents(path, &owner, NULL, NULL) || g_strcmp0(owner, old_owner))
      continue;
    /* Written beside and renamed over: the claim never reads as free. */
    g_autoptr(GError) e = NULL;
    if (!g_file_set_contents_full(path, s->id, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, &e))
      shim_log("cannot hand QEMU uid claim %s to %s: %s", name, s->id, e->message);
  }
}

/* Add (perms != 0) or remove (perms == 0) the ACL entry of `uid`. */
static gboolean acl_user(const char *path, guint32 uid, acl_perm_t perms, GError **error) {
  /* The caller's own path (not the guest's): a symlink to the image is
   * followed, as QEMU follows it. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return fail_errno(error, "cannot open", path);
  acl_t acl = acl_get_fd(fd);
  gboolean ok = acl != NULL;
  acl_entry_t entry = NULL, found = NULL, mask = NULL;
  guint named = 0;
  for (int w = ACL_FIRST_ENTRY; ok && acl_get_entry(acl, w, &entry) == 1; w = ACL_NEXT_ENTRY) {
    acl_tag_t tag;
    if (acl_get_tag_type(entry, &tag) < 0)
      continue;
    if (tag == ACL_MASK)
      mask = entry;
    if (tag == ACL_USER || tag == ACL_GROUP)
      named++;
    if (tag == ACL_USER) {
      uid_t *q = acl_get_qualifier(entry);
      if (q && *q == uid)
        found = entry;
      acl_free(q);
    }
  }
  if (ok && found && acl_delete_entry(acl, found) < 0)
    ok = FALSE;
  /* The last named entry gone: drop the mask too, so that the file is back
   * to a plain mode (the mask shows as its group bits). */
  gboolean plain = ok && !perms && named <= (found ? 1u : 0u);
  if (plain && mask && acl_delete_entry(acl, mask) < 0)
    ok = FALSE;
  if (ok && perms) {
    acl_permset_t ps;
    uid_t u = uid;
    ok = acl_create_entry(&acl, &entry) == 0 && acl_set_tag_type(entry, ACL_USER) == 0 &&
         acl_set_qualifier(entry, &u) == 0 && acl_get_permset(entry, &ps) == 0 &&
         acl_clear_perms(ps) == 0 && acl_add_perm(ps, perms) == 0;
  }
  if (ok)
    ok = (plain || acl_calc_mask(&acl) == 0) && acl_set_fd(fd, acl) == 0;
  if (!ok)
    fail_errno(error, "cannot set an ACL for the QEMU uid on", path);
  if (acl)
    acl_free(acl);
  close(fd);
  return ok;
}

gboolean jail_grant_file(Shim *s, const char *path, gboolean readonly, GError **error) {
  if (!s->qemu_uid)
    return TRUE;
  g_autoptr(GError) local = NULL;
  if (acl_user(path, s->qemu_uid, readonly ? ACL_READ : ACL_READ | ACL_WRITE, &local))
    return TRUE;
  /* No ACLs there (read-only or ACL-less filesystem): fine when others
   * already have the access QEMU needs. */
  struct stat st;
  mode_t need = readonly ? S_IROTH : S_IROTH | S_IWOTH;
  if (stat(path, &st) == 0 && (st.st_mode & need) == need)
    return TRUE;
  g_propagate_error(error, g_steal_pointer(&local));
  return FALSE;
}

void jail_revoke_file(Shim *s, const char *path) {
  g_autoptr(GError) e = NULL;
  if (s->qemu_uid && !acl_user(path, s->qemu_uid, 0, &e))
    shim_log("%s", e->message);
}
