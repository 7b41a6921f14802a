/* agent/call.c: requests and their one reply (see call.h). */
#include "call.h"
#include "log.h"

struct _AgentCall {
  gint ref;
  KvConn *conn;
  guint32 id;
  const KvMethod *method;
  gboolean deferred;
  gboolean done;
};

AgentCall *agent_call_new(KvConn *c, guint32 id, const KvMethod *m) {
  AgentCall *call = g_new0(AgentCall, 1);
  call->ref = 1;
  call->conn = kv_conn_ref(c);
  call->id = id;
  call->method = m;
  return call;
}

AgentCall *agent_call_ref(AgentCall *call) {
  call->ref++;
  return call;
}

void agent_call_unref(AgentCall *call) {
  if (call == NULL || --call->ref > 0)
    return;
  if (call->deferred && !call->done && !kv_conn_is_closed(call->conn)) {
    g_autoptr(GError) err = g_error_new(KV_ERROR_DOMAIN, KV_E_AGENT,
                                        "%s: the agent dropped the request", agent_call_name(call));
    agent_error("%s", err->message);
    agent_call_complete(call, NULL, err);
  }
  kv_conn_unref(call->conn);
  g_free(call);
}

KvConn *agent_call_conn(const AgentCall *call) {
  return call->conn;
}

const KvMethod *agent_call_method(const AgentCall *call) {
  return call->method;
}

const char *agent_call_name(const AgentCall *call) {
  return call->method != NULL ? call->method->name : "?";
}

AgentCall *agent_call_defer(AgentCall *call) {
  call->deferred = TRUE;
  return agent_call_ref(call);
}

gboolean agent_call_is_deferred(const AgentCall *call) {
  return call->deferred;
}

gboolean agent_call_is_done(const AgentCall *call) {
  return call->done;
}

void agent_call_complete(AgentCall *call, gconstpointer result, const GError *error) {
  if (call->done)
    return;
  call->done = TRUE;
  if (error != NULL)
    kv_reply_gerror(call->conn, call->id, error, KV_E_IO);
  else if (call->method != NULL)
    kv_reply(call->conn, call->id, call->method, result);
  else
    kv_conn_reply(call->conn, call->id, NULL);
}
