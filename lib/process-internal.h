/* lib/process-internal.h: starting a process handle (process.c) for exec
 * and for a container's main process (container.c). */
#pragma once

#include "sandbox-internal.h"

G_BEGIN_DECLS

/* Open a connection of the handle's own, add stream ids to `params` and
 * send `method` (KV_M_EXEC or "container_add") on it. */
katavm_process *kv_process_start(katavm_sandbox *sb, const char *container, const char *exec_id,
                                 gboolean tty, gboolean with_stdin, const char *method,
                                 JsonObject *params, GError **error);

G_END_DECLS
