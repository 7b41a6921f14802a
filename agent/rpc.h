/* agent/rpc.h: the methods the agent answers (names and result shapes are
 * defined in lib/proto/proto.h, the contract with the host), and the error
 * codes of its RESPONSE frames.
 */
#pragma once

#include "proto.h"

/* Error codes in RESPONSE frames, JSON-RPC style where one fits. */
#define AGENT_ERR_UNKNOWN_METHOD (-32601)
#define AGENT_ERR_INVALID_PARAMS (-32602)
#define AGENT_ERR_INTERNAL (-32603)

/* Errors of the container and process methods. The codes are the public
 * katavm_error codes of include/katavm/katavm.h (the agent must not include
 * host headers, hence the copy): the shim passes codes in that range on to
 * its clients unchanged, so a caller sees "no such container" as
 * KATAVM_E_NOT_FOUND without any mapping table in between. */
#define AGENT_ERROR (agent_error_quark())
GQuark agent_error_quark(void);
typedef enum {
  AGENT_E_INVALID = -1,     /* malformed params or spec (message names it) */
  AGENT_E_NOT_FOUND = -2,   /* no such container / process / rootfs */
  AGENT_E_EXISTS = -3,      /* id or stream id already in use */
  AGENT_E_IO = -4,          /* a system call in the guest failed */
  AGENT_E_STATE = -8,       /* e.g. exec in a stopped container */
  AGENT_E_UNSUPPORTED = -10 /* e.g. user namespaces */
} AgentErrorCode;

/* Answers one REQUEST: always exactly one reply (result or error). */
void agent_rpc_handle(KvConn *c, guint32 id, const char *method, JsonObject *params);
/* Replies with error's message; its code when error is in AGENT_ERROR,
 * AGENT_E_IO otherwise. */
void agent_rpc_reply_error(KvConn *c, guint32 id, const GError *error);
/* The host connection c went away: forget what was bound to it (streams,
 * waiting requests). */
void agent_rpc_conn_closed(KvConn *c);
