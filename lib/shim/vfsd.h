/* lib/shim/vfsd.h: the daemon that serves the sandbox's share (vfsd.c):
 * virtiofsd under virtio-fs, virtfs-proxy-helper under 9p (QEMU's proxy
 * backend: the helper does the file I/O, so QEMU runs unprivileged as
 * under virtio-fs). One daemon per sandbox, started before the VM,
 * supervised by the shim (also across a shim restart: the daemon outlives
 * a dead shim, like the VM, and the next shim adopts it by pid), stopped at
 * destroy. Above state.h, beside relay and hotplug; lifecycle.c drives it.
 *
 * Before the daemon starts, the share is bound onto itself and made a
 * shared mount: virtiofsd runs in a mount namespace of its own
 * (sandbox=namespace), a slave of that peer group, so that the bind mounts
 * the shim adds under the share later (container rootfs, volumes) reach
 * it. The self-bind lives below the sandbox's directory and goes with it
 * (kv_rm_rf unmounts below). */
#pragma once

#include "state.h"

typedef struct _Vfsd Vfsd;

typedef enum {
  VFSD_NONE,     /* 9p served by a libvirtd's own QEMU (qemu:///system) */
  VFSD_VIRTIOFS, /* virtiofsd; QEMU connects over vhost-user */
  VFSD_9P_PROXY, /* virtfs-proxy-helper; QEMU's -fsdev proxy connects */
} VfsdKind;

/* The daemon exited while the shim watched it (any cause: a crash, a kill,
 * QEMU gone). `why` says how it ended. */
/* why: how it ended; clean: it exited with status 0, as it does once QEMU
 * (its one client) has closed the socket. */
typedef void (*VfsdLostFunc)(gpointer user, const char *why, gboolean clean);

/* Registers its part of state.json with s (shared_fs, virtiofsd_pid). */
Vfsd *vfsd_new(Shim *s);
void vfsd_free(Vfsd *v);
void vfsd_set_lost_handler(Vfsd *v, VfsdLostFunc fn, gpointer user);
/* Whether this sandbox's share has a daemon of ours (kind != NONE). */
gboolean vfsd_enabled(Vfsd *v);
VfsdKind vfsd_kind(Vfsd *v);
/* "virtiofsd" or "virtfs-proxy-helper", for messages. */
const char *vfsd_name(Vfsd *v);
/* The socket QEMU connects to (RUN/vfs.sock, RUN/9p.sock). */
const char *vfsd_socket(Vfsd *v);
/* Make the share a shared mount, start the daemon on it and wait for its
 * socket (the proxy helper's is made for s->qemu_uid, which must be set).
 * On failure nothing is left running (the self-bind goes with the
 * sandbox's directory). */
gboolean vfsd_start(Vfsd *v, GError **error);
/* Recovery: watch the daemon a previous shim started (its pid from the
 * old state). FALSE when that process is gone or is not this sandbox's
 * virtiofsd. */
gboolean vfsd_adopt(Vfsd *v, const KvShimStateResult *old, GError **error);
/* Stop watching, end the daemon (SIGTERM, SIGKILL after 2 s) and wait for
 * it. Safe when none runs. */
void vfsd_stop(Vfsd *v);
/* --cleanup: end the daemon a dead shim recorded in `old`, if it is still
 * this sandbox's virtiofsd. */
void vfsd_kill_recorded(Vfsd *v, const KvShimStateResult *old);
