/* lib/proto/transport.c: the bottom half of KvConn: the fd. Writes are
 * queued so that no caller blocks on a slow or stuck peer (whole frames,
 * spliced DATA payloads, fds passed with SCM_RIGHTS); reads go straight
 * into the decoder (with gathering for peers that write big frames in small
 * pieces) and complete frames go up through c->dispatch. */
#include "conn-internal.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* splice */
#endif
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void out_free(KvOut *o) {
  g_bytes_unref(o->bytes);
  if (o->splice_fd >= 0)
    close(o->splice_fd);
  for (guint i = 0; i < o->n_fds; i++)
    close(o->fds[i]);
  if (o->done != NULL)
    o->done(o->done_user);
  g_free(o);
}

GError *kv_tr_closed_error(KvConn *c) {
  /* A peer declared dead (kv_conn_keepalive) is a timeout for every call. */
  if (c->close_error != NULL &&
      (g_error_matches(c->close_error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED) ||
       g_error_matches(c->close_error, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT)))
    return g_error_copy(c->close_error);
  if (c->close_error != NULL)
    return g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "connection closed: %s",
                       c->close_error->message);
  return g_error_new_literal(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "connection closed");
}

/* Writes the start of o's frame with its fds attached as SCM_RIGHTS, so
 * that they arrive with the frame's first byte. Our dups are closed once
 * sent (the kernel holds the files until the peer takes them). */
static ssize_t conn_write_fds(KvConn *c, KvOut *o, const guint8 *p, gsize n) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * KV_CONN_MAX_FDS)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
  struct msghdr m = {.msg_iov = &iov,
                     .msg_iovlen = 1,
                     .msg_control = ctl.buf,
                     .msg_controllen = CMSG_SPACE(sizeof(int) * o->n_fds)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * o->n_fds);
  memcpy(CMSG_DATA(cm), o->fds, sizeof(int) * o->n_fds);
  ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
  if (r > 0) {
    for (guint i = 0; i < o->n_fds; i++)
      close(o->fds[i]);
    o->n_fds = 0;
  }
  return r;
}

static ssize_t conn_write(KvConn *c, const guint8 *p, gsize n) {
  if (!c->not_socket) {
    /* MSG_NOSIGNAL: a vanished peer must give us EPIPE, not kill the
     * process with SIGPIPE. */
    ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0 || errno != ENOTSOCK)
      return r;
    c->not_socket = TRUE; /* char device (virtio-serial): no SIGPIPE there */
  }
  return write(c->fd, p, n);
}

/* Moves what it can of o's spliced payload. Returns -1 with error on a
 * hard error, 0 when the fd is full, 1 when the payload is all written. */
static int conn_splice(KvConn *c, KvOut *o, GError **error) {
  while (o->splice_left > 0) {
    ssize_t r =
        splice(o->splice_fd, NULL, c->fd, NULL, o->splice_left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (r > 0) {
      o->splice_left -= (gsize)r;
      c->pending -= (gsize)r;
      continue;
    }
    int e = r < 0 ? errno : 0;
    if (e == EINTR)
      continue;
    int avail = 0;
    if (e == EAGAIN && ioctl(o->splice_fd, FIONREAD, &avail) == 0 && avail > 0)
      return 0; /* our fd is full; the writer source calls again */
    /* The pipe ran dry under a frame header that promised more: the frame
     * cannot be completed, so the connection cannot go on. */
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED,
                "splice to peer failed with %" G_GSIZE_FORMAT " bytes of a DATA frame left: %s",
                o->splice_left, e == 0 || e == EAGAIN ? "the pipe ran dry" : g_strerror(e));
    return -1;
  }
  return 1;
}

/* Writes as much of the queue as the fd takes without blocking. Returns
 * FALSE with error only on a hard I/O error. */
gboolean kv_tr_try_write(KvConn *c, GError **error) {
  while (c->fd >= 0 && !g_queue_is_empty(&c->outq)) {
    KvOut *head = g_queue_peek_head(&c->outq);
    gsize len = 0;
    const guint8 *p = g_bytes_get_data(head->bytes, &len);
    if (c->out_off < len) {
      ssize_t r = head->n_fds > 0 ? conn_write_fds(c, head, p + c->out_off, len - c->out_off)
                                  : conn_write(c, p + c->out_off, len - c->out_off);
      if (r < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return TRUE;
        int e = errno;
        g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "write to peer failed: %s",
                    g_strerror(e));
        return FALSE;
      }
      c->out_off += (gsize)r;
      c->pending -= (gsize)r;
      if (c->out_off < len)
        continue;
    }
    if (head->splice_fd >= 0) {
      int r = conn_splice(c, head, error);
      if (r <= 0)
        return r == 0;
    }
    out_free(g_queue_pop_head(&c->outq));
    c->out_off = 0;
  }
  return TRUE;
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer data);

static void conn_arm_writer(KvConn *c) {
  if (c->out_src != NULL || c->closed || g_queue_is_empty(&c->outq))
    return;
  c->out_src = g_unix_fd_source_new(c->fd, G_IO_OUT);
  g_source_set_callback(c->out_src, G_SOURCE_FUNC(on_writable), c, NULL);
  g_source_set_name(c->out_src, "katavm-conn-out");
  g_source_attach(c->out_src, c->ctx);
}

static gboolean on_writable(G_GNUC_UNUSED gint fd, G_GNUC_UNUSED GIOCondition cond, gpointer data) {
  KvConn *c = data;
  g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);
  g_autoptr(GError) err = NULL;

  if (!kv_tr_try_write(c, &err)) {
    kv_tr_shutdown(c, g_steal_pointer(&err), TRUE);
    return G_SOURCE_REMOVE; /* conn_shutdown dropped out_src already */
  }
  if (g_queue_is_empty(&c->outq)) {
    g_clear_pointer(&c->out_src, g_source_unref);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean deferred_fail_dispatch(gpointer p) {
  KvConn *c = p;
  GError *why = g_steal_pointer(&c->deferred_error);
  if (why != NULL)
    kv_tr_shutdown(c, why, TRUE);
  return G_SOURCE_REMOVE;
}

/* Closes the conn (with on_closed) from the main loop rather than from the
 * caller's stack, so that a send never runs on_closed under its caller. */
static void conn_fail_later(KvConn *c, GError *why) {
  if (c->closed || c->deferred_error != NULL) {
    g_error_free(why);
    return;
  }
  c->deferred_error = why;
  g_autoptr(GSource) src = g_idle_source_new();
  g_source_set_callback(src, deferred_fail_dispatch, kv_conn_ref(c), (GDestroyNotify)kv_conn_unref);
  g_source_set_name(src, "katavm-conn-fail");
  g_source_attach(src, c->ctx);
}

static void conn_drop_next_fds(KvConn *c) {
  for (guint i = 0; i < c->n_next_fds; i++)
    close(c->next_fds[i]);
  c->n_next_fds = 0;
}

static void conn_drop_fds_in(KvConn *c) {
  if (c->fds_in == NULL)
    return;
  for (guint i = 0; i < c->fds_in->len; i++)
    close(g_array_index(c->fds_in, int, i));
  g_array_set_size(c->fds_in, 0);
}

/* Queues an encoded frame and writes right away when nothing is ahead of
 * it. Errors are left to the writer source so that callers never see
 * on_closed run inside their own send call. */
gboolean kv_tr_enqueue_out(KvConn *c, KvOut *out, GError **error) {
  gsize size = g_bytes_get_size(out->bytes) + out->splice_left;
  /* Callers pace DATA with kv_conn_pending(); this cap is the backstop for
   * a peer that floods us with requests and never reads the replies. */
  if (c->deferred_error != NULL || c->pending + size > KV_CONN_MAX_PENDING) {
    conn_drop_next_fds(c);
    out->done = NULL; /* the caller learns it from our FALSE */
    out_free(out);
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW,
                "peer is not reading: %" G_GSIZE_FORMAT " bytes queued (limit %u)", c->pending,
                KV_CONN_MAX_PENDING);
    conn_fail_later(c, g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW,
                                   "peer is not reading: more than %u bytes "
                                   "queued for it",
                                   KV_CONN_MAX_PENDING));
    return FALSE;
  }
  /* Fds attached with kv_conn_attach_fds() travel with this frame. */
  memcpy(out->fds, c->next_fds, sizeof(int) * c->n_next_fds);
  out->n_fds = c->n_next_fds;
  c->n_next_fds = 0;
  gboolean was_empty = g_queue_is_empty(&c->outq);
  c->pending += size;
  g_queue_push_tail(&c->outq, out);
  if (was_empty) {
    g_autoptr(GError) ignored = NULL;
    kv_tr_try_write(c, &ignored);
  }
  conn_arm_writer(c);
  return TRUE;
}

gboolean kv_tr_enqueue(KvConn *c, GBytes *frame, GError **error) {
  KvOut *out = g_new0(KvOut, 1);
  out->bytes = frame;
  out->splice_fd = -1;
  return kv_tr_enqueue_out(c, out, error);
}

/* Decodes and dispatches every complete frame buffered. Handlers may close
 * the conn or re-enter (call_sync from a handler iterates the context, and
 * the input source may recurse); the decoder is re-read after each frame. */
static gboolean conn_drain(KvConn *c, GError **error) {
  while (!c->closed && c->dec != NULL) {
    KvFrame f;
    int r = kv_decoder_next(c->dec, &f, error);
    if (r <= 0)
      return r == 0;
    gboolean ok = c->dispatch(c, &f, error);
    kv_frame_clear(&f);
    if (!ok)
      return FALSE;
  }
  return TRUE;
}

/* The rest of the current frame (see kv_conn_gather_frames): when less
 * than `want` is there yet, first sleep KV_CONN_GATHER_WAIT_US, so that the
 * peer's writes meanwhile pile up instead of waking us one by one, then
 * read what came, without blocking. */
static ssize_t conn_read_gather(KvConn *c, guint8 *buf, gsize want) {
  int avail = 0;
  if (ioctl(c->fd, FIONREAD, &avail) == 0 && (gsize)avail < want) {
    struct timespec ts = {0, KV_CONN_GATHER_WAIT_US * 1000L};
    nanosleep(&ts, NULL);
  }
  return read(c->fd, buf, want);
}

/* One read of up to KV_CONN_READ_CHUNK into buf: read(2), or on a conn
 * that takes fds recvmsg(2), keeping what SCM_RIGHTS brought in fds_in.
 * More fds than we hold, or a truncated control message (the kernel then
 * closed the fds that did not fit), is the peer's error. */
static ssize_t conn_read(KvConn *c, guint8 *buf, GError **error) {
  if (!c->take_fds)
    return read(c->fd, buf, KV_CONN_READ_CHUNK);
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * KV_CONN_MAX_FDS)];
  } ctl;
  struct iovec iov = {.iov_base = buf, .iov_len = KV_CONN_READ_CHUNK};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t n = recvmsg(c->fd, &m, MSG_CMSG_CLOEXEC);
  if (n < 0)
    return n;
  gboolean bad = (m.msg_flags & MSG_CTRUNC) != 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    guint k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (guint i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      if (c->fds_in->len >= KV_CONN_MAX_FDS_HELD) {
        close(fd);
        bad = TRUE;
      } else {
        g_array_append_val(c->fds_in, fd);
      }
    }
  }
  if (bad) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW,
                "peer sent more file descriptors than the %u we hold", KV_CONN_MAX_FDS_HELD);
    return -1;
  }
  return n;
}

static gboolean on_readable(G_GNUC_UNUSED gint fd, G_GNUC_UNUSED GIOCondition cond, gpointer data) {
  KvConn *c = data;
  g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);
  g_autoptr(GError) err = NULL;

  gboolean gathered = FALSE;
  for (int i = 0; i < KV_CONN_READS_PER_DISPATCH && !c->closed; i++) {
    gsize missing = c->gather && !gathered ? kv_decoder_missing(c->dec) : 0;
    gboolean gather = missing >= KV_CONN_GATHER_MIN;
    gsize want = gather ? MIN(missing, (gsize)KV_CONN_GATHER_MAX) : KV_CONN_READ_CHUNK;
    /* Straight into the decoder's buffer: no copy on our side. */
    guint8 *buf = kv_decoder_prepare(c->dec, want, &err);
    if (buf == NULL)
      break;
    ssize_t n;
    if (gather) {
      gathered = TRUE;
      n = conn_read_gather(c, buf, want);
    } else {
      n = conn_read(c, buf, &err);
    }
    int read_errno = errno;
    kv_decoder_commit(c->dec, n > 0 ? (gsize)n : 0);
    errno = read_errno;
    if (err != NULL)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      int e = errno;
      err = g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "read from peer failed: %s",
                        g_strerror(e));
      break;
    }
    if (n == 0) {
      err =
          g_error_new_literal(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "peer closed the connection");
      break;
    }
    c->last_heard = g_get_monotonic_time();
    if (!conn_drain(c, &err))
      break;
    if ((gsize)n < KV_CONN_READ_CHUNK && !gathered)
      break; /* most likely drained; poll again rather than EAGAIN */
  }
  if (err != NULL)
    kv_tr_shutdown(c, g_steal_pointer(&err), TRUE);
  return G_SOURCE_CONTINUE;
}

gsize kv_conn_pending(KvConn *c) {
  g_return_val_if_fail(c != NULL, 0);
  return c->pending;
}

gboolean kv_tr_send_bytes(KvConn *c, GBytes *frame, GError **error) {
  if (c->closed) {
    g_clear_pointer(&frame, g_bytes_unref);
    g_propagate_error(error, kv_tr_closed_error(c));
    return FALSE;
  }
  if (frame == NULL)
    return FALSE;
  return kv_tr_enqueue(c, frame, error);
}

gboolean kv_conn_send(KvConn *c, KvFrameType type, guint32 stream, const void *data, gsize len,
                      GError **error) {
  g_return_val_if_fail(c != NULL, FALSE);
  if (c->closed) {
    g_propagate_error(error, kv_tr_closed_error(c));
    return FALSE;
  }
  if (type == KV_FRAME_HELLO) {
    g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE,
                        "HELLO is sent by KvConn itself");
    return FALSE;
  }
  return kv_tr_send_bytes(c, kv_frame_encode(type, stream, data, len, error), error);
}

gboolean kv_conn_send_spliced(KvConn *c, guint32 stream, int pipe_fd, gsize len,
                              KvSpliceDoneFunc done, gpointer user, GError **error) {
  g_return_val_if_fail(c != NULL, FALSE);
  if (c->closed) {
    g_propagate_error(error, kv_tr_closed_error(c));
    return FALSE;
  }
  if (len == 0 || len > KV_FRAME_MAX_PAYLOAD || stream == 0) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE,
                "spliced DATA frame of %" G_GSIZE_FORMAT
                " bytes on stream %u: must be 1..%u bytes on a stream",
                len, stream, KV_FRAME_MAX_PAYLOAD);
    return FALSE;
  }
  GBytes *hdr = kv_frame_encode_header(KV_FRAME_DATA, stream, len, error);
  if (hdr == NULL)
    return FALSE;
  int fd = fcntl(pipe_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    g_bytes_unref(hdr);
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED,
                "cannot keep the pipe for a spliced frame: %s", g_strerror(e));
    return FALSE;
  }
  KvOut *out = g_new0(KvOut, 1);
  out->bytes = hdr;
  out->splice_fd = fd;
  out->splice_left = len;
  out->done = done;
  out->done_user = user;
  return kv_tr_enqueue_out(c, out, error);
}

gboolean kv_conn_send_credit(KvConn *c, guint32 stream, guint32 increment, GError **error) {
  guint32 be = GUINT32_TO_BE(increment);
  return kv_conn_send(c, KV_FRAME_CREDIT, stream, &be, sizeof be, error);
}

gboolean kv_conn_flush(KvConn *c, guint timeout_ms, GError **error) {
  g_return_val_if_fail(c != NULL, FALSE);
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

  for (;;) {
    if (c->closed) {
      g_propagate_error(error, kv_tr_closed_error(c));
      return FALSE;
    }
    /* A hard error is reported here but the close itself is left to the
     * writer source, so on_closed runs from the main loop as usual. */
    if (!kv_tr_try_write(c, error))
      return FALSE;
    if (g_queue_is_empty(&c->outq))
      return TRUE;
    gint64 left = deadline - g_get_monotonic_time();
    if (left <= 0) {
      g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT,
                  "%" G_GSIZE_FORMAT " bytes still unsent after %u ms", c->pending, timeout_ms);
      return FALSE;
    }
    struct pollfd p = {.fd = c->fd, .events = POLLOUT};
    int r = poll(&p, 1, (int)MIN((left + 999) / 1000, G_MAXINT));
    if (r < 0 && errno != EINTR) {
      int e = errno;
      g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "poll failed: %s", g_strerror(e));
      return FALSE;
    }
  }
}

void kv_conn_close(KvConn *c) {
  g_return_if_fail(c != NULL);
  if (c->closed)
    return;
  /* A last reply queued just before close usually fits the socket buffer;
   * give it that one chance. */
  g_autoptr(GError) ignored = NULL;
  kv_tr_try_write(c, &ignored);
  kv_tr_shutdown(
      c, g_error_new_literal(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "connection closed locally"),
      FALSE);
}

void kv_conn_accept_fds(KvConn *c) {
  g_return_if_fail(c != NULL);
  c->take_fds = TRUE;
  if (c->fds_in == NULL)
    c->fds_in = g_array_new(FALSE, FALSE, sizeof(int));
}

int kv_conn_take_fd(KvConn *c) {
  g_return_val_if_fail(c != NULL, -1);
  if (c->fds_in == NULL || c->fds_in->len == 0)
    return -1;
  int fd = g_array_index(c->fds_in, int, 0);
  g_array_remove_index(c->fds_in, 0);
  return fd;
}

gboolean kv_conn_attach_fds(KvConn *c, const int *fds, guint n, GError **error) {
  g_return_val_if_fail(c != NULL, FALSE);
  if (c->closed) {
    g_propagate_error(error, kv_tr_closed_error(c));
    return FALSE;
  }
  if (c->n_next_fds + n > KV_CONN_MAX_FDS) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE,
                "at most %u file descriptors go with one frame", KV_CONN_MAX_FDS);
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
      int e = errno;
      conn_drop_next_fds(c);
      g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED,
                  "cannot duplicate fd %d to send it: %s", fds[i], g_strerror(e));
      return FALSE;
    }
    c->next_fds[c->n_next_fds++] = d;
  }
  return TRUE;
}

gboolean kv_conn_gather_frames(KvConn *c) {
  g_return_val_if_fail(c != NULL, FALSE);
  int avail = 0;
  if (c->closed || ioctl(c->fd, FIONREAD, &avail) < 0)
    return FALSE; /* FIONREAD is what it needs */
  if (!c->gather)
    kv_decoder_split_data(c->dec, KV_CONN_GATHER_MIN / 2);
  c->gather = TRUE;
  return TRUE;
}

void kv_tr_shutdown(KvConn *c, GError *why, gboolean notify) {
  if (c->closed) {
    g_clear_error(&why);
    return;
  }
  g_autoptr(KvConn) hold G_GNUC_UNUSED = kv_conn_ref(c);
  c->closed = TRUE;
  c->close_error =
      why != NULL ? why
                  : g_error_new_literal(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "connection closed");

  if (c->in_src != NULL) {
    g_source_destroy(c->in_src);
    g_clear_pointer(&c->in_src, g_source_unref);
  }
  if (c->out_src != NULL) {
    g_source_destroy(c->out_src);
    g_clear_pointer(&c->out_src, g_source_unref);
  }
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
  g_queue_clear_full(&c->outq, (GDestroyNotify)out_free);
  conn_drop_next_fds(c);
  conn_drop_fds_in(c);
  c->out_off = 0;
  c->pending = 0;
  g_clear_pointer(&c->dec, kv_decoder_free);

  if (c->on_shutdown != NULL)
    c->on_shutdown(c, notify);
}

void kv_tr_watch(KvConn *c) {
  c->in_src = g_unix_fd_source_new(c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback(c->in_src, G_SOURCE_FUNC(on_readable), c, NULL);
  g_source_set_name(c->in_src, "katavm-conn-in");
  /* A handler may call kv_conn_call_sync() on this very conn; the reply can
   * only arrive if this source may dispatch again inside that iteration. */
  g_source_set_can_recurse(c->in_src, TRUE);
  g_source_attach(c->in_src, c->ctx);
}
