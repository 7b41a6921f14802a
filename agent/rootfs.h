/* agent/rootfs.h: what the agent reads from a container's rootfs once, at
 * creation, so that execs need not walk the (uncached 9p) share again:
 * HOME of a user from its /etc/passwd, and pins on the PATH directories;
 * and the size-bounded writable layer a container may get over it.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* At most this many PATH directories are pinned per container. */
#define AGENT_PATH_PINS_MAX 16

typedef struct {
  int fds[AGENT_PATH_PINS_MAX]; /* O_PATH fds */
  guint n;
} AgentPathPins;

/* HOME of uid in the rootfs's /etc/passwd, "/" when it has none. */
char *agent_home_of(const char *rootfs, uid_t uid);
/* Opens (O_PATH) the directories of path (may be NULL) and of the default
 * PATH, or their deepest existing ancestors, inside rootfs: see rootfs.c. */
void agent_rootfs_pin_path(AgentPathPins *pins, const char *rootfs, const char *path);
void agent_path_pins_clear(AgentPathPins *pins);

/* Where the writable layers live: AGENT_LAYERS_DIR/<container>/ is a
 * tmpfs holding upper/, work/ and root/, the overlay the container gets as
 * its rootfs. */
#define AGENT_LAYERS_DIR "/run/katavm/layers"
/* Mounts a writable layer of size_mib MiB over `lower` (the rootfs in the
 * share) for container cid; returns the overlay's path, or NULL with an
 * error (KV_E_UNSUPPORTED: the kernel has no overlay). */
char *agent_rootfs_layer_mount(const char *cid, const char *lower, guint64 size_mib,
                               GError **error);
/* Detaches cid's layer (if it has one) and removes its directory. */
void agent_rootfs_layer_unmount(const char *cid);
