/* lib/sandbox-internal.h: pieces shared by the library's sandbox client and
 * the shim: spawning the shim and its readiness report. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* mode: "--create", "--recover" or "--cleanup". */
gboolean kv_shim_spawn(const char *shim, const char *root, const char *id,
                       const char *mode, const char *log_path, int *ready_rd,
                       GError **error);
/* Read the shim's one-line report; the error carries the shim's katavm code. */
gboolean kv_shim_wait_ready(int fd, guint timeout_ms, GError **error);
/* Shim side: write "OK" (e == NULL) or "ERR <code> <message>". A serving
 * shim's "OK" closes fd; otherwise (final, or an error) fd stays open until
 * the process exits, which is what the reader waits for. */
void kv_shim_report(int fd, const GError *e, gboolean final);

G_END_DECLS
