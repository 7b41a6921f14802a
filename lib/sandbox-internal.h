/* lib/sandbox-internal.h: pieces shared by the library's sandbox client and
 * the shim: spawning the shim and its readiness report. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* mode: "--create", "--recover" or "--cleanup". */
gboolean kv_shim_spawn(const char *shim, const char *root, const char *id, const char *mode,
                       const char *log_path, int *ready_rd, GError **error);
/* Read the shim's one-line report; the error carries the shim's katavm code. */
gboolean kv_shim_wait_ready(int fd, guint timeout_ms, GError **error);
/* Shim side: write "OK" (e == NULL) or "ERR <code> <message>". A serving
 * shim's "OK" closes fd; otherwise (final, or an error) fd stays open until
 * the process exits, which is what the reader waits for. */
void kv_shim_report(int fd, const GError *e, gboolean final);

/* ---- client side (lib/) ---- */
#include "internal.h"
#include "proto.h"

struct katavm_sandbox {
  char *id;
  KvPaths paths;
  GMainContext *ctx; /* private: the handle's connection lives here */
  KvConn *conn;
};

/* Connect to a sandbox's shim and wait for its HELLO. KATAVM_E_STATE when
 * the shim is gone. */
KvConn *kv_shim_connect(const KvPaths *p, GMainContext *ctx, GError **error);
KvConn *kv_shim_connect_full(const KvPaths *p, GMainContext *ctx, const KvConnHandlers *h,
                             gpointer user, GError **error);
/* Blocking request on the handle's connection (reconnects if needed). */
JsonObject *kv_sandbox_call(katavm_sandbox *sb, const char *method, JsonObject *params,
                            guint timeout_ms, GError **error);

G_END_DECLS
