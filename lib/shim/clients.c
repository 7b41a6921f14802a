/* lib/shim/clients.c: the shim's clients: libkatavm in any process, over a
 * unix socket with the same framed protocol the agent speaks. Every
 * request is looked up in the contract (lib/proto/msg.h) and handed to its
 * layer: the shim's own methods here and in lifecycle.c and hotplug.c,
 * container and process methods to relay.c, which decodes and forwards
 * them. */
#include "clients.h"
#include "unixsock.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct _Clients {
  Shim *s;
  Lifecycle *lc;
  Relay *rl;
  Hotplug *hp;
  int listen_fd;
  GSource *listen_src;
  GPtrArray *conns; /* KvConn* */
};

Clients *clients_new(Shim *s, Lifecycle *lc, Relay *rl, Hotplug *hp) {
  Clients *cl = g_new0(Clients, 1);
  cl->s = s;
  cl->lc = lc;
  cl->rl = rl;
  cl->hp = hp;
  cl->listen_fd = -1;
  cl->conns = g_ptr_array_new();
  return cl;
}

void clients_free(Clients *cl) {
  if (!cl)
    return;
  /* Client sockets close with the process: a client that waits for EOF
   * after destroy knows the shim is gone. */
  if (cl->listen_src) {
    g_source_destroy(cl->listen_src);
    g_source_unref(cl->listen_src);
  }
  if (cl->listen_fd >= 0)
    close(cl->listen_fd);
  g_ptr_array_unref(cl->conns);
  g_free(cl);
}

static void on_agent_check_reply(KvConn *agent, JsonObject *result, const GError *error,
                                 gpointer user) {
  Waiter *w = user;
  g_autoptr(GError) e = NULL;
  KvCheckResult r;
  if (!result)
    e = shim_agent_error(error, NULL, TRUE);
  else if (!kv_result_decode(&kv_m_check, result, &r, &e))
    e->code = KV_E_AGENT;
  if (e) {
    shim_reply_error(w->conn, w->id, e);
  } else {
    kv_reply(w->conn, w->id, &kv_m_shim_agent_check, &r);
    kv_msg_clear(kv_m_check.result, &r);
  }
  waiter_free(w);
}

static void on_client_request(KvConn *c, guint32 id, const char *method, JsonObject *params,
                              gpointer user) {
  Clients *cl = user;
  Shim *s = cl->s;
  const KvMethod *m = kv_method_lookup(method);
  g_autoptr(GError) e = NULL;
  if (m && relay_handles(m)) {
    relay_request(cl->rl, c, id, m, params);
  } else if (m == &kv_m_shim_hotplug) {
    hotplug_request(cl->hp, c, id, params);
  } else if (m == &kv_m_shim_adopt) {
    lifecycle_adopt(cl->lc, c, id, params);
  } else if (m && (m->flags & KV_TO_SHIM) && !kv_params_decode(m, params, &(KvEmpty){0}, &e)) {
    /* The rest take no params (KvEmpty): nothing can be malformed, but
     * decode anyway, the contract may grow fields. */
    shim_reply_error(c, id, e);
  } else if (m == &kv_m_shim_state) {
    KvShimStateResult st;
    shim_describe(s, &st);
    if (!g_strcmp0(st.state, KV_SANDBOX_RUNNING))
      st.net_warnings = net_warnings(hotplug_net(cl->hp));
    kv_reply(c, id, m, &st);
    kv_msg_clear(m->result, &st);
  } else if (m == &kv_m_shim_agent_check) {
    if (!shim_agent_usable(s, &e))
      shim_reply_error(c, id, e);
    else
      kv_call(s->agent, &kv_m_check, NULL, KV_CALL_TIMEOUT_MS, on_agent_check_reply,
              waiter_new(c, id));
  } else if (m == &kv_m_shim_stop) {
    lifecycle_stop(cl->lc, c, id);
  } else if (m == &kv_m_shim_destroy) {
    lifecycle_destroy(cl->lc, c, id);
  } else {
    e = g_error_new(KV_ERROR_DOMAIN, KV_E_UNSUPPORTED, "unknown method '%s'", method);
    shim_reply_error(c, id, e);
  }
}

static void on_client_frame(KvConn *c, const KvFrame *f, gpointer user) {
  Clients *cl = user;
  relay_client_frame(cl->rl, c, f);
}

static void on_client_closed(KvConn *c, const GError *why, gpointer user) {
  Clients *cl = user;
  if (why && !g_error_matches(why, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED))
    shim_log("client dropped: %s", why->message);
  relay_client_closed(cl->rl, c);
  if (g_ptr_array_remove_fast(cl->conns, c))
    kv_conn_unref(c);
}

static gboolean on_accept(int fd, GIOCondition cond, gpointer user) {
  Clients *cl = user;
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return G_SOURCE_CONTINUE;
  /* What the shim offers its clients beyond the base protocol. */
  static const char *const features[] = {KV_FEATURE_SINK_FDS, NULL};
  static const KvConnHandlers h = {.on_request = on_client_request,
                                   .on_frame = on_client_frame,
                                   .on_closed = on_client_closed,
                                   .features = features};
  KvConn *conn = kv_conn_new(c, "shim", &h, cl, NULL);
  /* Clients hand us the write ends of their output pipes (relay.c). */
  kv_conn_accept_fds(conn);
  g_ptr_array_add(cl->conns, conn);
  return G_SOURCE_CONTINUE;
}

gboolean clients_listen(Clients *cl, GError **error) {
  const char *path = cl->s->p.shim_sock;
  g_autoptr(GError) e = NULL;
  /* 0600: only root (the owner) may drive the sandbox. */
  cl->listen_fd = kv_unix_listen(path, 0600, &e);
  if (cl->listen_fd < 0) {
    g_set_error(error, KV_ERROR_DOMAIN,
                g_error_matches(e, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG) ? KV_E_INVALID
                                                                             : KV_E_IO,
                "%s", e->message);
    return FALSE;
  }
  cl->listen_src = g_unix_fd_source_new(cl->listen_fd, G_IO_IN);
  g_source_set_callback(cl->listen_src, (GSourceFunc)(void (*)(void))on_accept, cl, NULL);
  g_source_attach(cl->listen_src, shim_ctx);
  return TRUE;
}
