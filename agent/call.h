/* agent/call.h: one request of the host, from its dispatch (rpc.c) to its
 * one reply.
 *
 * A handler gets the call with its decoded params and fills the method's
 * result struct, or fails with a GError in KV_ERROR_DOMAIN: the dispatcher
 * replies. A method that answers later (a create waits for the setup
 * report, a wait for the exit) takes a reference with agent_call_defer()
 * and completes it when the answer is known. agent_call_complete() is the
 * only place a reply leaves the agent: it encodes the method's result
 * struct (lib/proto/msg.h) or the error, once per call.
 */
#pragma once

#include "msg.h"

typedef struct _AgentCall AgentCall;

/* m may be NULL for a method the agent does not know (only errors then). */
AgentCall *agent_call_new(KvConn *c, guint32 id, const KvMethod *m);
AgentCall *agent_call_ref(AgentCall *call);
/* A deferred call whose last reference goes without an answer is answered
 * with KV_E_AGENT, so that no request of a live connection hangs. */
void agent_call_unref(AgentCall *call);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AgentCall, agent_call_unref)

KvConn *agent_call_conn(const AgentCall *call);
const KvMethod *agent_call_method(const AgentCall *call);
const char *agent_call_name(const AgentCall *call);

/* The handler answers later: returns a new reference to complete it with;
 * the dispatcher then sends nothing on success. */
AgentCall *agent_call_defer(AgentCall *call);
gboolean agent_call_is_deferred(const AgentCall *call);
gboolean agent_call_is_done(const AgentCall *call);

/* Replies: with error when it is set (its code when in KV_ERROR_DOMAIN,
 * KV_E_IO otherwise), else with result, the method's result struct (NULL:
 * all defaults). Only the first completion of a call is sent. */
void agent_call_complete(AgentCall *call, gconstpointer result, const GError *error);
