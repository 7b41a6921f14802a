/* lib/shim/shim.h: the shim's state, shared by its files: main.c (VM and
 * agent lifecycle, client sessions) and relay.c (containers, processes and
 * the stream relay between clients and the agent). */
#pragma once

#include <glib.h>

#include "internal.h"
#include "proto.h"
#include "vmm.h"

typedef struct {
  char *id;
  char *root;
  KvPaths p;
  KvSandboxConfig cfg;
  KvAccel accel;
  char *uri;
  KvVmm *vmm;
  KvConn *agent;
  GMainLoop *loop;
  int listen_fd;
  GPtrArray *clients; /* KvConn* */
  const char *state;  /* "creating" | "running" | "stopped" */
  int qemu_pid;
  gboolean powering_off;
  gboolean destroying;
  gboolean destroy_requested; /* SIGTERM: destroy with no client waiting */
  GSource *poweroff_timer;
  GSource *poll_timer;
  GSource *reconnect_timer;
  GPtrArray *stop_waiters;    /* Waiter* answered when the VM is off */
  GPtrArray *destroy_waiters; /* Waiter* answered when all is removed */
  /* relay.c */
  guint32 next_agent_stream;
  GHashTable *routes_by_agent;  /* agent stream id -> Route* */
  GHashTable *routes_by_client; /* KvConn* -> GHashTable(client sid -> Route*) */
  GHashTable *mounts;           /* container id -> host mount point */
  gsize window_growth;          /* window granted beyond the initial, all routes */
  /* hotplug.c */
  GPtrArray *nics;  /* Nic* attached at runtime */
  GPtrArray *disks; /* Disk* attached at runtime */
  guint cpus_online;
  guint mem_requested_mib; /* memory above boot memory (virtio-mem or DIMMs) */
  gboolean memory_dimm;    /* hotplug by ACPI DIMMs instead of virtio-mem */
  GArray *dimm_sizes;      /* MiB of each attached DIMM, in plug order */
  gboolean hotplug_busy;
} Shim;

typedef struct {
  KvConn *conn;
  guint32 id;
} Waiter;

extern GMainContext *shim_ctx;
void shim_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
Waiter *waiter_new(KvConn *c, guint32 id);
void waiter_free(gpointer p);

void state_save(Shim *s);
/* Stop the VM (guest poweroff, destroy after a grace period), then answer
 * stop/destroy waiters. */
void begin_poweroff(Shim *s);

/* hotplug.c */
void hotplug_init(Shim *s);
/* Decide virtio-mem or DIMMs for a new VM (config "auto" probes QEMU). */
void hotplug_choose_memory(Shim *s);
void hotplug_request(Shim *s, KvConn *client, guint32 id, JsonObject *params);
/* Add current CPUs, memory and devices to a state object. */
void hotplug_describe(Shim *s, JsonObject *o);
/* Take over the devices a previous shim recorded (see hotplug_describe). */
void hotplug_restore(Shim *s, JsonObject *state);

/* relay.c */
void relay_init(Shim *s);
/* TRUE when `method` is a container/process method (then it is handled). */
gboolean relay_request(Shim *s, KvConn *client, guint32 id, const char *method, JsonObject *params);
void relay_client_frame(Shim *s, KvConn *client, const KvFrame *f);
void relay_client_closed(Shim *s, KvConn *client);
void relay_agent_frame(Shim *s, const KvFrame *f);
/* The agent channel is gone: end every stream towards clients. */
void relay_agent_lost(Shim *s);
/* Unmount every container rootfs (sandbox teardown). */
void relay_unmount_all(Shim *s);
