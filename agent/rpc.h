/* agent/rpc.h: the top of the agent's request handling. One table maps
 * each agent method of the contract (lib/proto/msg.h) to its handler; the
 * dispatcher looks the method up, decodes its params with the contract,
 * calls the handler and replies once with its result or error (call.h).
 */
#pragma once

#include "msg.h"

/* Answers one REQUEST: always exactly one reply (result or error), now or,
 * for the methods that answer later, once the answer is known. */
void agent_rpc_handle(KvConn *c, guint32 id, const char *method, JsonObject *params);
/* The host connection c went away: forget what was bound to it (streams,
 * waiting requests). */
void agent_rpc_conn_closed(KvConn *c);

/* reseed: the host's seed is 32 to 256 bytes. */
#define AGENT_SEED_MIN 32
#define AGENT_SEED_MAX 256
/* Decode a reseed seed (hex, AGENT_SEED_MIN..cap bytes) into out; *len
 * receives the byte count. KV_E_INVALID names what is wrong. */
gboolean agent_seed_decode(const char *hex, guint8 *out, gsize cap, gsize *len, GError **error);
