/* lib/shim/fs.h: every host-side path and mount operation inside the
 * sandbox's share (fs.c). The guest can write the share (as root): nothing
 * it placed there is followed. Paths below the share are relative to an
 * O_PATH fd of its root and resolved with openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; mounts go onto the fd of
 * the target (open_tree + mount_setattr + move_mount). Beside relay.c;
 * uses libc, glib and the protocol's message types. */
#pragma once

#include <glib.h>

/* The share root (a host path the shim made; resolved normally) as an
 * O_PATH directory fd, or -1 with KV_E_IO. */
int shim_fs_open_share(const char *share, GError **error);

/* Bind-mount the host path `source` (a directory or a regular file,
 * resolved normally: it is the caller's, not the guest's) recursively onto
 * `rel` below the share, nosuid,nodev, read-only when asked. The
 * directories up to rel are made one component at a time and rel itself
 * is made as a directory or an empty file to match the source; a symbolic
 * link or a non-directory where a directory must be is refused (KV_E_IO,
 * the message names the share path), never followed. `what` names the
 * mount in errors ("rootfs", "volume 2 (/data)"). On failure nothing this
 * call made is left (the directories above rel excepted: the caller
 * removes those with shim_fs_remove).
 * points (KvMountPoint*, may be NULL; a directory source only): made in
 * the source first, through its detached clone, each component resolved
 * with openat2(RESOLVE_IN_ROOT) from the clone's root (a symlink in the
 * source resolves as in the container, inside the source, never out of
 * it), what is missing made (a directory, or an empty file for the last
 * component of a file point), what exists left as it is; they stay in
 * the source, as runc's mount points stay in a rootfs. */
gboolean shim_fs_bind(int share, const char *rel, const char *source, gboolean readonly,
                      const GPtrArray *points, const char *what, GError **error);

/* Unmount every mount stacked at `rel` below the share that the shim made
 * there: rel is opened without following anything, must be the root of a
 * mount whose mount point /proc/self/mountinfo gives as the share's path
 * joined with rel, and is unmounted (MNT_DETACH) through /proc/self/fd of
 * that open fd, never by path. TRUE when nothing is mounted there (any
 * more) or rel does not exist. */
gboolean shim_fs_unmount(int share, const char *rel, GError **error);

/* Remove rel below the share: an (empty) directory or a non-directory
 * entry (the placeholder of a single-file volume), resolved as above; a
 * missing rel is no error. A mount point is never removed (EBUSY). */
gboolean shim_fs_remove(int share, const char *rel, GError **error);

/* The names in directory rel below the share (opened as above), sorted;
 * an empty array when it is missing or not a plain directory. */
GPtrArray *shim_fs_list(int share, const char *rel);
