/* lib/shim/hotplug.h: live changes to a running sandbox (hotplug.c).
 * Above state.h; knows nothing of lifecycle, clients or the relay: what it
 * needs of them comes in through callbacks and calls from above. */
#pragma once

#include "net.h"
#include "state.h"

typedef struct _Hotplug Hotplug;

/* Does the sandbox have a container of that id (a disk may be mounted
 * into it)? Registered by the layer that knows (main.c wires the relay). */
typedef gboolean (*HotplugContainerFunc)(gpointer user, const char *cid);

/* Registers its part of state.json with s (CPUs, memory, devices). */
Hotplug *hotplug_new(Shim *s, HotplugContainerFunc has_container, gpointer user);
void hotplug_free(Hotplug *h);
/* Decide virtio-mem or DIMMs for a new VM (config "auto" probes QEMU). */
void hotplug_choose_memory(Hotplug *h);
gboolean hotplug_memory_dimm(Hotplug *h);
/* Take over the devices a previous shim recorded in its state. */
void hotplug_restore(Hotplug *h, const KvShimStateResult *st);
/* Start one hotplug; the reply goes out when its chain ends. One runs at
 * a time: another request meanwhile is refused with KV_E_STATE. */
void hotplug_request(Hotplug *h, KvConn *client, guint32 id, JsonObject *params);
/* The sandbox is stopping: fail the hotplug under way (KV_E_STATE), now. */
void hotplug_abort(Hotplug *h, const char *why);
/* The sandbox's network (net.h), whose state comes back with hotplug_restore. */
Net *hotplug_net(Hotplug *h);
/* The VM is gone: take back QEMU's access to the disks still attached. */
void hotplug_release_disks(Hotplug *h);
