/* lib/shim/jail.h: who QEMU runs as (jail.c). QEMU never touches the
 * share's files (virtiofsd or virtfs-proxy-helper serve them), so it runs
 * as a uid of its own per sandbox, with no capabilities. Beside
 * lifecycle.c, which asks it before the VM starts and after it is gone. */
#pragma once

#include "state.h"

/* First uid (and gid) of the range QEMU processes run as, and its size:
 * no passwd entries are needed (libvirt takes "+UID:+GID"). */
#define JAIL_UID_BASE 2100000000u
#define JAIL_UID_COUNT 65536u

/* Whether this sandbox's QEMU runs unprivileged (the embedded driver;
 * a libvirtd's qemu.conf decides for its own). */
gboolean jail_enabled(Shim *s);
/* Claim this sandbox's uid (idempotent: a recovering shim finds its own
 * claim again) and make what QEMU opens by path reachable by that uid
 * only: the run dir (and the embedded root below it) group-owned by it,
 * mode 0710; the state root and ROOT/r traversable (o+x, never readable).
 * Sets *uid. */
gboolean jail_prepare(Shim *s, guint32 *uid, GError **error);
/* Give QEMU a socket or file the shim made (the share daemon's socket). */
gboolean jail_give(Shim *s, guint32 uid, const char *path, GError **error);
/* Release the claim (the VM is gone). */
void jail_release(Shim *s);
/* Adopt (pool): the claims of `old_owner` now belong to s->id. */
void jail_rename(Shim *s, const char *old_owner);
/* Let this sandbox's QEMU open a hot-plugged image file: a POSIX ACL entry
 * for its uid (r, or rw), which jail_revoke_file() removes again. No-op when
 * QEMU runs as root. The file's directories must let others traverse. */
gboolean jail_grant_file(Shim *s, const char *path, gboolean readonly, GError **error);
void jail_revoke_file(Shim *s, const char *path);
