/* agent/rpc.h: the methods the agent answers (names and result shapes are
 * defined in lib/proto/proto.h, the contract with the host).
 */
#pragma once

#include "proto.h"

/* Error codes in RESPONSE frames, JSON-RPC style where one fits. */
#define AGENT_ERR_UNKNOWN_METHOD (-32601)
#define AGENT_ERR_INVALID_PARAMS (-32602)
#define AGENT_ERR_INTERNAL (-32603)

/* Answers one REQUEST: always exactly one reply (result or error). */
void agent_rpc_handle(KvConn *c, guint32 id, const char *method,
                      JsonObject *params);
