/* lib/process-internal.h: starting a process handle (process.c) for exec
 * and for a container's main process (container.c). */
#pragma once

#include "sandbox-internal.h"

G_BEGIN_DECLS

/* Open a connection of the handle's own, fill in the stream ids
 * (*streams) and sink_fds (*sink_fds) of the params struct `params` of m
 * (kv_m_exec or kv_m_shim_container_add) and send it on that connection. */
katavm_process *kv_process_start(katavm_sandbox *sb, const char *container, const char *exec_id,
                                 gboolean tty, gboolean with_stdin, const KvMethod *m,
                                 gpointer params, KvStreams *streams, gboolean *sink_fds,
                                 GError **error);

G_END_DECLS
