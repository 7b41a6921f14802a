/* lib/shim/lifecycle.h: the VM and the agent channel (lifecycle.c): boot,
 * recovery, poweroff, destroy, cleanup. Above relay.h and hotplug.h (it
 * hands them agent frames and tells them when the agent or the VM goes);
 * clients.c and main.c call it. */
#pragma once

#include "hotplug.h"
#include "relay.h"
#include "state.h"
#include "vfsd.h"

typedef struct _Lifecycle Lifecycle;

Lifecycle *lifecycle_new(Shim *s, Relay *rl, Hotplug *hp, Vfsd *vf);
void lifecycle_free(Lifecycle *lc);
/* Open libvirt (the embedded root is prepared first). */
gboolean lifecycle_vmm_connect(Lifecycle *lc, GError **error);
/* Start the VM (with virtio-fs: its virtiofsd first), or, recovering,
 * find it running (and adopt the virtiofsd recorded in `old`, the previous
 * shim's state; NULL when there was none), connect to the agent, check it;
 * the sandbox is then "running". Before the main loop runs. */
gboolean lifecycle_boot(Lifecycle *lc, gboolean recover, const KvShimStateResult *old,
                        GError **error);
/* After a failed create: leave no VM and no state behind. After a failed
 * recover: leave the VM (it may run) and all state as they are. */
void lifecycle_boot_failed(Lifecycle *lc, gboolean recover);
/* The last lines of the guest console (for errors that outlive the file). */
char *lifecycle_console_tail(Lifecycle *lc);
/* --cleanup: destroy the VM if any and remove all state. */
gboolean lifecycle_cleanup(Lifecycle *lc, GError **error);
/* Client requests: answered when the VM is off / everything is removed
 * (the shim then exits). */
void lifecycle_stop(Lifecycle *lc, KvConn *c, guint32 id);
void lifecycle_destroy(Lifecycle *lc, KvConn *c, guint32 id);
/* SIGTERM/SIGINT: destroy with no client waiting. */
void lifecycle_terminate(Lifecycle *lc);
/* A pooled VM (docs/pool.md): `fd` is the keeper's pipe. Its EOF (the
 * keeper is gone, however it ended) while still pooled destroys the VM
 * and its state, so that a dead keeper leaves no orphan VM. */
void lifecycle_pool_watch(Lifecycle *lc, int fd);
/* Client request adopt (msg.h, KvAdoptParams): the pooled VM becomes a
 * sandbox; answered once the guest's RNG is reseeded. */
void lifecycle_adopt(Lifecycle *lc, KvConn *c, guint32 id, JsonObject *params);

/* The shim's reaper of orphaned children (QEMU): see lifecycle.c. Once, at
 * start, after the shim became a child subreaper. */
void lifecycle_start_reaper(void);
