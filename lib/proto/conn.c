/* lib/proto/conn.c: KvConn, one framed protocol connection driven by a
 * GMainContext: the upper half, RPC. It runs the HELLO handshake, hands
 * requests and stream frames to the owner's handlers, matches responses to
 * pending calls and times them out. The fd itself is transport.c's. A peer
 * that misbehaves gets its connection closed (on_closed with the reason),
 * never the process. */
#include "conn-internal.h"
#include "msg.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>

/* Error code we answer with when nobody handles requests. */
#define KV_CONN_NO_HANDLER_CODE KV_E_UNSUPPORTED

static void call_free(KvCall *call) {
  if (call->timeout != NULL) {
    g_source_destroy(call->timeout);
    g_source_unref(call->timeout);
  }
  g_free(call);
}

/* ---- writing ---- */

/* ---- closing ---- */

/* ---- reading and dispatch ---- */

static void deliver_reply(KvConn *c, KvResponse *resp) {
  KvCall *call = NULL;
  if (!g_hash_table_steal_extended(c->calls, GUINT_TO_POINTER(resp->id), NULL, (gpointer *)&call)) {
    /* Late (after a timeout) or bogus: harmless, the id is not reused. */
    g_debug("katavm: ignoring response to unknown request id %u", resp->id);
    return;
  }
  if (call->cb != NULL) {
    if (resp->result != NULL) {
      call->cb(c, resp->result, NULL, call->user);
    } else {
      g_autoptr(GError) err = g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE, "%d: %s",
                                          resp->err_code, resp->err_message);
      call->cb(c, NULL, err, call->user);
    }
  }
  call_free(call);
}

/* Returns FALSE when the frame is a protocol violation (error set). */
static gboolean dispatch_frame(KvConn *c, const KvFrame *f, GError **error) {
  if (c->peer_role == NULL && f->type != KV_FRAME_HELLO) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE, "peer sent a %s frame before HELLO",
                kv_frame_type_name(f->type));
    return FALSE;
  }

  switch (f->type) {
  case KV_FRAME_HELLO: {
    if (c->peer_role != NULL) {
      g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE,
                          "peer sent a second HELLO");
      return FALSE;
    }
    g_autofree char *role = NULL, *version = NULL;
    g_auto(GStrv) features = NULL;
    if (!kv_hello_parse_full(f->payload, &role, &version, &features, error))
      return FALSE;
    c->peer_features = g_steal_pointer(&features);
    c->peer_version = g_steal_pointer(&version);
    c->peer_role = g_steal_pointer(&role);
    return TRUE;
  }
  case KV_FRAME_REQUEST: {
    KvRequest req;
    if (!kv_request_parse(f->payload, &req, error))
      return FALSE;
    if (!strcmp(req.method, kv_m_ping.name))
      kv_conn_reply(c, req.id, NULL); /* liveness: answered by the loop itself */
    else if (c->h.on_request != NULL)
      c->h.on_request(c, req.id, req.method, req.params, c->user);
    else
      kv_conn_reply_error(c, req.id, KV_CONN_NO_HANDLER_CODE, "no request handler on this side");
    kv_request_clear(&req);
    return TRUE;
  }
  case KV_FRAME_RESPONSE: {
    KvResponse resp;
    if (!kv_response_parse(f->payload, &resp, error))
      return FALSE;
    deliver_reply(c, &resp);
    kv_response_clear(&resp);
    return TRUE;
  }
  default:
    if (c->h.on_frame != NULL)
      c->h.on_frame(c, f, c->user);
    return TRUE;
  }
}

/* The transport closed (kv_tr_shutdown): fail every pending call, then
 * tell the owner. */
static void conn_on_shutdown(KvConn *c, gboolean notify) {
  if (c->ka_src != NULL) {
    g_source_destroy(c->ka_src);
    g_clear_pointer(&c->ka_src, g_source_unref);
  }
  /* Steal the table first: a reply callback may start new calls (which
   * fail at once, the conn being closed) or drop its conn reference. */
  GHashTable *calls = c->calls;
  c->calls = g_hash_table_new(g_direct_hash, g_direct_equal);
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init(&it, calls);
  while (g_hash_table_iter_next(&it, NULL, &value)) {
    KvCall *call = value;
    g_hash_table_iter_steal(&it);
    g_autoptr(GError) err = kv_tr_closed_error(c);
    if (call->cb != NULL)
      call->cb(c, NULL, err, call->user);
    call_free(call);
  }
  g_hash_table_unref(calls);

  if (notify && c->h.on_closed != NULL)
    c->h.on_closed(c, c->close_error, c->user);
}

/* ---- public API ---- */

KvConn *kv_conn_new(int fd, const char *role, const KvConnHandlers *h, gpointer user,
                    GMainContext *ctx) {
  g_return_val_if_fail(fd >= 0, NULL);
  g_return_val_if_fail(role != NULL, NULL);

  KvConn *c = g_new0(KvConn, 1);
  c->ref = 1;
  c->fd = fd;
  c->role = g_strdup(role);
  if (h != NULL)
    c->h = *h;
  c->user = user;
  c->ctx = ctx != NULL ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
  c->dec = kv_decoder_new();
  g_queue_init(&c->outq);
  c->next_id = 1;
  c->calls = g_hash_table_new(g_direct_hash, g_direct_equal);
  c->dispatch = dispatch_frame;
  c->on_shutdown = conn_on_shutdown;
  c->last_heard = g_get_monotonic_time();

  g_autoptr(GError) err = NULL;
  if (!g_unix_set_fd_nonblocking(fd, TRUE, &err)) {
    /* Keep the object usable (callers expect non-NULL); it is just dead. */
    kv_tr_shutdown(c,
                   g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED,
                               "cannot make fd non-blocking: %s", err->message),
                   FALSE);
    return c;
  }

  kv_tr_watch(c);

  kv_tr_enqueue(c, kv_hello_encode_full(role, NULL, h != NULL ? h->features : NULL), NULL);
  return c;
}

KvConn *kv_conn_ref(KvConn *c) {
  g_return_val_if_fail(c != NULL, NULL);
  g_atomic_int_inc(&c->ref);
  return c;
}

void kv_conn_unref(KvConn *c) {
  if (c == NULL || !g_atomic_int_dec_and_test(&c->ref))
    return;
  if (!c->closed) {
    /* Closing runs reply callbacks, which may take references of their own
     * (a deferred failed call holds one): revive the object for the
     * duration and only free it if nobody kept it. */
    g_atomic_int_set(&c->ref, 1);
    kv_conn_close(c);
    if (!g_atomic_int_dec_and_test(&c->ref))
      return;
  }
  g_hash_table_unref(c->calls);
  if (c->ka_user_free != NULL)
    c->ka_user_free(c->ka_user);
  if (c->fds_in != NULL)
    g_array_unref(c->fds_in);
  g_clear_error(&c->close_error);
  g_clear_error(&c->deferred_error);
  g_main_context_unref(c->ctx);
  g_free(c->role);
  g_free(c->peer_role);
  g_free(c->peer_version);
  g_strfreev(c->peer_features);
  g_free(c);
}

const char *kv_conn_peer_role(KvConn *c) {
  g_return_val_if_fail(c != NULL, NULL);
  return c->peer_role;
}

const char *kv_conn_peer_version(KvConn *c) {
  g_return_val_if_fail(c != NULL, NULL);
  return c->peer_version;
}

gboolean kv_conn_is_ready(KvConn *c) {
  g_return_val_if_fail(c != NULL, FALSE);
  return c->peer_role != NULL && !c->closed;
}

gboolean kv_conn_peer_has_feature(KvConn *c, const char *feature) {
  g_return_val_if_fail(c != NULL && feature != NULL, FALSE);
  return c->peer_features != NULL &&
         g_strv_contains((const char *const *)c->peer_features, feature);
}

gboolean kv_conn_is_closed(KvConn *c) {
  g_return_val_if_fail(c != NULL, TRUE);
  return c->closed;
}

static gboolean conn_send_json(KvConn *c, KvFrameType type, JsonBuilder *b, GError **error) {
  g_autoptr(JsonNode) node = json_builder_get_root(b);
  return kv_tr_send_bytes(c, kv_frame_encode_json(type, node, error), error);
}

/* A call that fails before reaching the wire still reports through its
 * callback, but from the main loop: callers must never see the callback run
 * inside kv_conn_call() itself. */
typedef struct {
  KvConn *c;
  KvReplyFunc cb;
  gpointer user;
  GError *error;
} KvFailedCall;

static void failed_call_free(gpointer p) {
  KvFailedCall *fc = p;
  kv_conn_unref(fc->c);
  g_clear_error(&fc->error);
  g_free(fc);
}

static gboolean failed_call_dispatch(gpointer p) {
  KvFailedCall *fc = p;
  if (fc->cb != NULL)
    fc->cb(fc->c, NULL, fc->error, fc->user);
  return G_SOURCE_REMOVE;
}

static void fail_call_later(KvConn *c, KvReplyFunc cb, gpointer user, GError *error) {
  KvFailedCall *fc = g_new0(KvFailedCall, 1);
  fc->c = kv_conn_ref(c);
  fc->cb = cb;
  fc->user = user;
  fc->error = error;
  g_autoptr(GSource) src = g_idle_source_new();
  g_source_set_callback(src, failed_call_dispatch, fc, failed_call_free);
  g_source_set_name(src, "katavm-conn-failed-call");
  g_source_attach(src, c->ctx);
}

static gboolean call_timed_out(gpointer p) {
  KvCall *call = p;
  KvConn *c = call->conn;
  g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);

  g_hash_table_steal(c->calls, GUINT_TO_POINTER(call->id));
  /* We are inside this source's dispatch; glib keeps it alive until we
   * return, so dropping our reference here is safe. */
  g_clear_pointer(&call->timeout, g_source_unref);
  g_autoptr(GError) err =
      g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT, "request %u timed out", call->id);
  if (call->cb != NULL)
    call->cb(c, NULL, err, call->user);
  call_free(call);
  return G_SOURCE_REMOVE;
}

void kv_conn_call(KvConn *c, const char *method, JsonObject *params, guint timeout_ms,
                  KvReplyFunc cb, gpointer user) {
  g_return_if_fail(c != NULL && method != NULL);

  if (c->closed) {
    fail_call_later(c, cb, user, kv_tr_closed_error(c));
    return;
  }

  /* Skip 0 and ids still in flight after a wrap-around. */
  guint32 id;
  do {
    id = c->next_id++;
  } while (id == 0 || g_hash_table_contains(c->calls, GUINT_TO_POINTER(id)));

  GError *err = NULL;
  GBytes *frame = kv_request_encode(id, method, params, &err);
  if (frame == NULL) {
    fail_call_later(c, cb, user, err);
    return;
  }

  KvCall *call = g_new0(KvCall, 1);
  call->conn = c;
  call->id = id;
  call->cb = cb;
  call->user = user;
  if (timeout_ms > 0) {
    call->timeout = g_timeout_source_new(timeout_ms);
    g_source_set_callback(call->timeout, call_timed_out, call, NULL);
    g_source_set_name(call->timeout, "katavm-conn-call-timeout");
    g_source_attach(call->timeout, c->ctx);
  }
  g_hash_table_insert(c->calls, GUINT_TO_POINTER(id), call);
  /* On overflow the conn is failing; the call then fails with it. */
  kv_tr_enqueue(c, frame, NULL);
}

typedef struct {
  gboolean done;
  JsonObject *result;
  GError *error;
} KvSyncCall;

static void sync_reply(G_GNUC_UNUSED KvConn *c, JsonObject *result, const GError *error,
                       gpointer user) {
  KvSyncCall *s = user;
  s->done = TRUE;
  if (result != NULL)
    s->result = json_object_ref(result);
  else
    s->error = error != NULL
                   ? g_error_copy(error)
                   : g_error_new_literal(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "no reply");
}

JsonObject *kv_conn_call_sync(KvConn *c, const char *method, JsonObject *params, guint timeout_ms,
                              GError **error) {
  g_return_val_if_fail(c != NULL && method != NULL, NULL);
  g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);
  KvSyncCall s = {0};

  kv_conn_call(c, method, params, timeout_ms, sync_reply, &s);
  /* The callback is guaranteed (reply, timeout, close or deferred failure),
   * all of it delivered through c->ctx. */
  while (!s.done)
    g_main_context_iteration(c->ctx, TRUE);
  if (s.error != NULL) {
    g_propagate_error(error, s.error);
    return NULL;
  }
  return s.result;
}

static gboolean flag_timeout(gpointer p) {
  *(gboolean *)p = TRUE;
  return G_SOURCE_REMOVE;
}

gboolean kv_conn_wait_ready(KvConn *c, guint timeout_ms, GError **error) {
  g_return_val_if_fail(c != NULL, FALSE);
  g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);
  gboolean timed_out = FALSE;
  GSource *t = NULL;

  if (timeout_ms > 0 && c->peer_role == NULL && !c->closed) {
    t = g_timeout_source_new(timeout_ms);
    g_source_set_callback(t, flag_timeout, &timed_out, NULL);
    g_source_attach(t, c->ctx);
  }
  while (c->peer_role == NULL && !c->closed && !timed_out)
    g_main_context_iteration(c->ctx, TRUE);
  if (t != NULL) {
    g_source_destroy(t);
    g_source_unref(t);
  }

  if (c->closed) {
    g_propagate_error(error, g_error_copy(c->close_error));
    return FALSE;
  }
  if (c->peer_role == NULL) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT, "no HELLO from peer within %u ms",
                timeout_ms);
    return FALSE;
  }
  return TRUE;
}

void kv_conn_reply(KvConn *c, guint32 id, JsonObject *result) {
  g_return_if_fail(c != NULL);
  g_autoptr(GError) err = NULL;
  GBytes *frame = kv_response_encode(id, result, &err);
  if (frame == NULL || !kv_tr_send_bytes(c, frame, &err)) {
    g_debug("katavm: reply %u not sent: %s", id, err != NULL ? err->message : "?");
    /* Too large a result must not leave the peer waiting forever. */
    if (g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE))
      kv_conn_reply_error(c, id, KV_E_PROTOCOL, err->message);
  }
}

void kv_conn_reply_error(KvConn *c, guint32 id, int code, const char *msg) {
  g_return_if_fail(c != NULL);
  if (msg == NULL)
    msg = "";
  /* Keep the error frame itself well under the size limit. */
  g_autofree char *trimmed = g_utf8_make_valid(msg, MIN(strlen(msg), KV_FRAME_MAX_PAYLOAD / 2));

  g_autoptr(GError) err = NULL;
  GBytes *frame = kv_response_encode_error(id, code, trimmed, &err);
  if (frame == NULL || !kv_tr_send_bytes(c, frame, &err))
    g_debug("katavm: error reply %u not sent: %s", id, err != NULL ? err->message : "?");
}

void kv_conn_send_event(KvConn *c, const char *event, JsonObject *fields) {
  g_return_if_fail(c != NULL && event != NULL);
  g_autoptr(JsonBuilder) b = json_builder_new_immutable();
  json_builder_begin_object(b);
  if (fields != NULL) {
    JsonObjectIter it;
    const char *name;
    JsonNode *node;
    json_object_iter_init(&it, fields);
    while (json_object_iter_next(&it, &name, &node)) {
      if (g_strcmp0(name, "event") == 0)
        continue;
      json_builder_set_member_name(b, name);
      json_builder_add_value(b, json_node_copy(node));
    }
  }
  json_builder_set_member_name(b, "event");
  json_builder_add_string_value(b, event);
  json_builder_end_object(b);

  g_autoptr(GError) err = NULL;
  if (!conn_send_json(c, KV_FRAME_EVENT, b, &err))
    g_debug("katavm: event %s not sent: %s", event, err != NULL ? err->message : "?");
}

/* ---- liveness ---- */

static void ka_pong(KvConn *c, G_GNUC_UNUSED JsonObject *result, G_GNUC_UNUSED const GError *error,
                    G_GNUC_UNUSED gpointer user) {
  /* Any answer (an older peer's "unknown method" too) proves it alive; the
   * transport has already noted the bytes. */
  c->ka_ping_out = FALSE;
}

static gboolean ka_tick(gpointer p) {
  KvConn *c = p;
  if (c->closed)
    return G_SOURCE_REMOVE;
  gint64 now = g_get_monotonic_time();
  gint64 interval_us = (gint64)c->ka_interval_ms * 1000;
  if (now - c->ka_last_tick > 2 * interval_us) {
    /* Nobody listened meanwhile: what the peer said is still unread. */
    c->last_heard = MAX(c->last_heard, now);
    c->ka_ping_out = FALSE;
  }
  c->ka_last_tick = now;
  gboolean ready = c->peer_role != NULL;
  guint silent_ms = (guint)MIN((now - c->last_heard) / 1000, (gint64)G_MAXUINT);
  gboolean dead = FALSE;
  g_autoptr(GString) why = g_string_new(NULL);
  if (c->ka_judge != NULL) {
    if (silent_ms >= c->ka_interval_ms)
      dead = c->ka_judge(c, silent_ms, why, c->ka_user);
  } else {
    dead = ready && silent_ms >= c->ka_dead_ms;
  }
  if (dead) {
    g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);
    const char *peer = c->peer_role != NULL ? c->peer_role : "peer";
    kv_tr_shutdown(c,
                   g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT,
                               "no answer from the %s for %u.%u s%s%s", peer, silent_ms / 1000,
                               silent_ms % 1000 / 100, why->len ? ": " : "", why->str),
                   TRUE);
    return G_SOURCE_REMOVE; /* the shutdown dropped our source */
  }
  if (ready && !c->ka_ping_out) {
    c->ka_ping_out = TRUE;
    kv_conn_call(c, kv_m_ping.name, NULL, 0, ka_pong, NULL);
  }
  return G_SOURCE_CONTINUE;
}

void kv_conn_keepalive(KvConn *c, guint interval_ms, guint dead_ms, KvSilenceFunc judge,
                       gpointer user, GDestroyNotify user_free) {
  g_return_if_fail(c != NULL && interval_ms > 0);
  if (c->ka_user_free != NULL)
    c->ka_user_free(c->ka_user);
  c->ka_user = user;
  c->ka_user_free = user_free;
  if (c->closed)
    return;
  if (c->ka_src != NULL) {
    g_source_destroy(c->ka_src);
    g_clear_pointer(&c->ka_src, g_source_unref);
  }
  c->ka_interval_ms = interval_ms;
  c->ka_dead_ms = MAX(dead_ms, interval_ms);
  c->ka_judge = judge;
  c->ka_last_tick = g_get_monotonic_time();
  c->ka_src = g_timeout_source_new(interval_ms);
  g_source_set_callback(c->ka_src, ka_tick, c, NULL);
  g_source_set_name(c->ka_src, "katavm-conn-keepalive");
  g_source_attach(c->ka_src, c->ctx);
}

void kv_conn_fail(KvConn *c, const GError *why) {
  g_return_if_fail(c != NULL && why != NULL);
  if (c->closed)
    return;
  g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);
  kv_tr_shutdown(c, g_error_copy(why), TRUE);
}
