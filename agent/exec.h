/* agent/exec.h: processes in an existing container and the methods that
 * name a process (container + exec_id, or the main process): exec, wait,
 * signal, resize. Above container.h and process.h; rpc.c dispatches here.
 */
#pragma once

#include "call.h"
#include "container.h"

gboolean agent_m_exec(AgentCall *call, const KvExecParams *params, KvPidResult *r, GError **error);
/* Answers at once for a finished process, else once it has finished. */
gboolean agent_m_wait(AgentCall *call, const KvProcessRef *params, KvWaitResult *r, GError **error);
gboolean agent_m_signal(AgentCall *call, const KvSignalParams *params, KvEmpty *r, GError **error);
gboolean agent_m_resize(AgentCall *call, const KvResizeParams *params, KvEmpty *r, GError **error);
