/* lib/sandbox-internal.h: pieces shared by the library's sandbox client and
 * the shim: spawning the shim and its readiness report. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* mode: "--create", "--recover" or "--cleanup". */
gboolean kv_shim_spawn(const char *shim, const char *root, const char *id, const char *mode,
                       const char *log_path, int *ready_rd, GError **error);
/* The same with the whole argv (argv[0]: the shim's path; it must name
 * --ready-fd 3); keep_fd >= 0 is passed on as fd 4. */
gboolean kv_shim_spawn_argv(const char *const *argv, const char *log_path, int keep_fd,
                            int *ready_rd, GError **error);
/* Read the shim's one-line report; the error carries the shim's katavm code. */
gboolean kv_shim_wait_ready(int fd, guint timeout_ms, GError **error);
/* Shim side: write "OK" (e == NULL) or "ERR <code> <message>". A serving
 * shim's "OK" closes fd; otherwise (final, or an error) fd stays open until
 * the process exits, which is what the reader waits for. */
void kv_shim_report(int fd, const GError *e, gboolean final);

/* ---- client side (lib/) ---- */
#include "internal.h"
#include "msg.h"
#include "proto.h"

struct katavm_sandbox {
  char *id;
  KvPaths paths;
  GMainContext *ctx; /* private: the handle's connection lives here */
  KvConn *conn;
};

/* The state root and ROOT/sandboxes are ours and not writable by others. */
gboolean kv_root_check(const char *root, GError **error);

/* Connect to a sandbox's shim and wait for its HELLO. KATAVM_E_STATE when
 * the shim is gone. */
KvConn *kv_shim_connect(const KvPaths *p, GMainContext *ctx, GError **error);
KvConn *kv_shim_connect_full(const KvPaths *p, GMainContext *ctx, const KvConnHandlers *h,
                             gpointer user, GError **error);
/* Blocking request of method m with the params struct `params` (NULL:
 * defaults) on the handle's connection (reconnects if needed); the result
 * is decoded into the result struct `result` (NULL: not read; clear it with
 * kv_msg_clear(m->result, ...)). An answer that does not match the contract
 * is KATAVM_E_PROTOCOL. */
gboolean kv_sandbox_rpc(katavm_sandbox *sb, const KvMethod *m, gconstpointer params,
                        gpointer result, GError **error);
/* The same with a timeout of its own (0: the method's default). */
gboolean kv_sandbox_rpc_timeout(katavm_sandbox *sb, const KvMethod *m, gconstpointer params,
                                gpointer result, guint timeout_ms, GError **error);
/* A result that must match m's result table: decoded into `out`, or FALSE
 * with KATAVM_E_PROTOCOL. */
gboolean kv_result_check(const KvMethod *m, JsonObject *result, gpointer out, GError **error);

G_END_DECLS
