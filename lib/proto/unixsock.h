/* lib/proto/unixsock.h: the one place that opens the stream sockets a KvConn
 * runs on (the shim's socket for clients, the agent's channel socket for
 * the shim and for tests). This is the transport seam: a vsock address
 * would be added here, beside the unix one. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Connect a SOCK_STREAM unix socket (close-on-exec) to `path`. Returns the
 * fd, or -1 with error: G_IO_ERROR_NOT_FOUND when nothing listens there
 * (no such file, or refused), G_IO_ERROR_FILENAME_TOO_LONG for a path that
 * does not fit sun_path, G_IO_ERROR_FAILED otherwise; the message names
 * the path. */
int kv_unix_connect(const char *path, GError **error);
/* Listen on `path` (removed first if it exists) with a non-blocking,
 * close-on-exec socket whose file gets `mode`. Returns the fd, or -1 with
 * error as above; nothing is left behind on failure. */
int kv_unix_listen(const char *path, guint mode, GError **error);

G_END_DECLS
