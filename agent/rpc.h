/* agent/rpc.h: the methods the agent answers (names and result shapes are
 * defined in lib/proto/proto.h, the contract with the host), and the error
 * codes of its RESPONSE frames.
 */
#pragma once

#include "msg.h"

/* Answers one REQUEST: always exactly one reply (result or error). */
void agent_rpc_handle(KvConn *c, guint32 id, const char *method, JsonObject *params);
/* Replies with error's message; its code when error is in KV_ERROR_DOMAIN,
 * KV_E_IO otherwise. */
void agent_rpc_reply_error(KvConn *c, guint32 id, const GError *error);
/* The host connection c went away: forget what was bound to it (streams,
 * waiting requests). */
void agent_rpc_conn_closed(KvConn *c);
