/* lib/shim/state.h: the bottom layer of katavm-shim.
 *
 * The shim in layers (each file calls only the ones below it; where a lower
 * layer must tell an upper one something, the upper one registers a
 * callback):
 *
 *   main.c        arguments, wiring, the main loop
 *   clients.c     the listening socket, client conns, dispatch by method
 *   lifecycle.c   boot, the agent channel, poweroff, destroy, recovery
 *   relay.c       containers, processes, the stream relay   (own state: Relay)
 *   hotplug.c     live changes, as asynchronous chains       (own state: Hotplug)
 *   vfsd.c        the sandbox's virtiofsd (virtio-fs)        (own state: Vfsd)
 *   state.c       this: the sandbox (Shim), state.json, waiters, the log
 *
 * Shim is what every layer reads: who the sandbox is, its configuration,
 * the libvirt handle and the agent channel (both owned and replaced by
 * lifecycle.c; NULL while absent) and its run state. Layers keep their own
 * state in their own structs. */
#pragma once

#include <glib.h>

#include "internal.h"
#include "msg.h"
#include "proto.h"
#include "vmm.h"

/* The shim's own main context. libvirt's default event implementation
 * (GLib based since libvirt 6) iterates the global default context on its
 * event thread; our sources must not live there or that thread would
 * dispatch them behind the main thread's back. */
extern GMainContext *shim_ctx;

typedef struct {
  char *id;
  KvPaths p;
  KvSandboxConfig cfg;
  KvAccel accel;
  char *uri;
  KvVmm *vmm;    /* lifecycle.c opens and closes it */
  KvConn *agent; /* lifecycle.c connects and drops it */
  GMainLoop *loop;
  const char *state;     /* KV_SANDBOX_* */
  int qemu_pid;          /* 0 when not running */
  gboolean powering_off; /* a stop or destroy is under way */
  gboolean destroying;   /* the state directory goes: nothing is saved any more */
  char *error;           /* why the sandbox stopped unasked, or NULL */
  GPtrArray *describers; /* Describer*: upper layers' parts of state.json */
  char *stop_reason;     /* why it stopped (KvShimStateResult.stop_reason); NULL while up */
  guint32 qemu_uid;      /* jail.c: the uid (= gid) QEMU runs as; 0: root */
  gboolean pooled;       /* a warm-pool VM not yet adopted (docs/pool.md) */
  GPtrArray *old_paths;  /* KvPaths* before an adopt: layers may still point into them */
} Shim;

/* Fill `id`, `p` and the empty state of a new Shim; shim_clear frees it. */
void shim_init(Shim *s, const char *root, const char *id);
void shim_clear(Shim *s);
/* The same for a pooled VM: state in ROOT/pool/vms/INSTANCE. */
void shim_init_pooled(Shim *s, const char *root, const char *instance);
/* Adopt: the sandbox is `id` from now on, its state directory `p` (taken
 * over; the old paths stay allocated until shim_clear). */
void shim_set_identity(Shim *s, const char *id, KvPaths *p);

void shim_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
#define SHIM_LOG_MAX (1024 * 1024)
/* Keep the shim's log (its stdout/stderr, shared with virtiofsd) under
 * SHIM_LOG_MAX: copy to shim.log.1 and truncate in place, so that every
 * process writing to it (O_APPEND) follows. Called from shim_log and a
 * timer (virtiofsd writes to it too); NULL: the path shim_init chose. */
void shim_log_bound(const char *path);

GSource *shim_add_timeout(guint ms, GSourceFunc fn, gpointer data);
void shim_timer_clear(GSource **src);

/* ---- state.json and the state reply (contract: KvShimStateResult) ----
 * A layer that has something to persist registers a describer that fills
 * its fields of the state (with memory of its own: the caller clears the
 * struct with kv_msg_clear). */
typedef void (*ShimDescribeFunc)(gpointer user, KvShimStateResult *out);
void shim_add_describer(Shim *s, ShimDescribeFunc fn, gpointer user);
/* The whole state now; clear with kv_msg_clear(kv_m_shim_state.result, out). */
void shim_describe(Shim *s, KvShimStateResult *out);
/* Write state.json (atomically); a no-op once destroying. */
void shim_state_save(Shim *s);
/* What a previous shim last wrote, decoded as the contract says. */
gboolean shim_state_load(Shim *s, KvShimStateResult *out, GError **error);

/* ---- errors ---- */
/* FALSE with KV_E_STATE when the sandbox is not running (or stopping), with
 * KV_E_AGENT when the agent channel is not up. */
gboolean shim_agent_usable(Shim *s, GError **error);
/* An error from a call to the agent, as the shim passes it on (code
 * KV_ERROR_DOMAIN): the agent's own code when it is one of ours, else
 * KV_E_TIMEOUT for a timeout when map_timeout, else KV_E_AGENT; the message
 * is the agent's (after prefix, which may be NULL). */
GError *shim_agent_error(const GError *e, const char *prefix, gboolean map_timeout);
/* Reply with e's code (any domain, mapped as kv_error_code_of does). */
void shim_reply_error(KvConn *c, guint32 id, const GError *e);
/* Reply with the error of a call to the agent that failed: when the agent
 * channel went (closed, or declared dead), wait (bounded) for the VM's fate
 * and, when the sandbox stopped, answer "sandbox X stopped: <reason>"
 * (KV_E_TIMEOUT for a peer declared dead, KV_E_STATE otherwise) instead of
 * the bare channel error. */
void shim_reply_agent_error(Shim *s, KvConn *c, guint32 id, const GError *agent_error,
                            const char *prefix);

/* ---- waiters: a client request answered later ---- */
typedef struct {
  KvConn *conn;
  guint32 id;
} Waiter;
Waiter *waiter_new(KvConn *c, guint32 id);
void waiter_free(gpointer p);
/* Answer each waiter of `waiters` (empty result of method m, or e) and
 * empty the array. */
void waiters_reply_all(GPtrArray *waiters, const KvMethod *m, const GError *e);
