/* lib/proto/conn-internal.h: the KvConn object, shared by its two layers:
 * transport.c (the fd: queued writes, splice, fd passing, reads into the
 * decoder, closing) below, and conn.c (HELLO, requests, replies, calls and
 * their timeouts) above it. The transport hands frames and its closing up
 * through the two hooks conn.c sets; it never calls conn.c by name. */
#pragma once

#include "proto.h"

G_BEGIN_DECLS

#define KV_CONN_READ_CHUNK (64u * 1024u)
/* Reads per dispatch: enough to drain a burst, few enough that one busy
 * connection cannot starve the others sharing the main context. */
#define KV_CONN_READS_PER_DISPATCH 4

typedef struct {
  KvConn *conn; /* weak: calls never outlive the conn's table */
  guint32 id;
  KvReplyFunc cb;
  gpointer user;
  GSource *timeout;
} KvCall;

/* One queued write: a whole frame, or the header of a DATA frame whose
 * payload then moves from a pipe to our fd by splice(2). */
typedef struct {
  GBytes *bytes;
  int splice_fd;     /* -1, or our own dup of the pipe's read end */
  gsize splice_left; /* payload bytes still to move from it */
  KvSpliceDoneFunc done;
  gpointer done_user;
  int fds[KV_CONN_MAX_FDS]; /* our dups, sent with the frame's first byte */
  guint n_fds;
} KvOut;

struct _KvConn {
  gint ref;
  int fd;
  gboolean not_socket;           /* send(2) refused: fall back to write(2) */
  gboolean take_fds;             /* kv_conn_accept_fds(): recvmsg keeps SCM_RIGHTS */
  gboolean gather;               /* kv_conn_gather_frames() */
  GArray *fds_in;                /* int: received, not yet taken (kv_conn_take_fd) */
  int next_fds[KV_CONN_MAX_FDS]; /* kv_conn_attach_fds(): for the next frame */
  guint n_next_fds;
  char *role;
  KvConnHandlers h;
  gpointer user;
  GMainContext *ctx;
  GSource *in_src;
  GSource *out_src; /* attached only while writes are pending */

  KvDecoder *dec;

  GQueue outq;   /* KvOut*, whole frames in send order */
  gsize out_off; /* bytes of the head already written */
  gsize pending; /* unwritten bytes in outq */

  gboolean closed;
  GError *close_error;    /* why it closed; for waiters */
  GError *deferred_error; /* a failure waiting for conn_fail_later's idle */
  char *peer_role;
  char *peer_version;

  guint32 next_id;
  GHashTable *calls;    /* id -> KvCall* */
  char **peer_features; /* what the peer announced */

  /* Liveness (kv_conn_keepalive; last_heard is kept by the transport). */
  gint64 last_heard; /* monotonic us of the last byte received */
  GSource *ka_src;
  guint ka_interval_ms, ka_dead_ms;
  KvSilenceFunc ka_judge;
  gpointer ka_user;
  GDestroyNotify ka_user_free;
  gint64 ka_last_tick;
  gboolean ka_ping_out;

  /* Set by the RPC layer (conn.c): what the transport hands up. */
  gboolean (*dispatch)(KvConn *c, const KvFrame *f, GError **error);
  void (*on_shutdown)(KvConn *c, gboolean notify);
};

/* ---- transport.c, for conn.c ---- */
/* The error a call or send on a closed conn gets. */
GError *kv_tr_closed_error(KvConn *c);
/* Queue an encoded frame (taking it); FALSE when the conn is failing. */
gboolean kv_tr_enqueue(KvConn *c, GBytes *frame, GError **error);
/* The same, failing at once on a closed conn or a NULL frame. */
gboolean kv_tr_send_bytes(KvConn *c, GBytes *frame, GError **error);
/* Write what the fd takes now; FALSE only on a hard error. */
gboolean kv_tr_try_write(KvConn *c, GError **error);
/* Close the fd and drop what is queued, then run c->on_shutdown. */
void kv_tr_shutdown(KvConn *c, GError *why, gboolean notify);
/* Start reading c->fd on c->ctx. */
void kv_tr_watch(KvConn *c);

G_END_DECLS
