/* agent/stream.c: stdio streams with flow control (see stream.h). */
#include "stream.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* Output pauses while more than HIGH_WATER bytes wait in the channel's
 * write queue, and resumes below LOW_WATER, checked every THROTTLE_MS. */
#define HIGH_WATER (256u * 1024u)
#define LOW_WATER (64u * 1024u)
#define THROTTLE_MS 2
/* stdin credit goes back in batches of this much (or when the queue is
 * empty), not one CREDIT per write. */
#define CREDIT_BATCH (32u * 1024u)
/* After the process exited: how long an output stream with nothing to
 * read waits for more before it is ended (see agent_stream_process_exited). */
#define EXIT_GRACE_MS 500

/* Bulk mode. Waking up, the agent normally preempts the task that made
 * it runnable: a process writing output fast is switched out after every
 * write(2) for the agent to take those bytes, and back in. Under TCG each
 * switch between two processes flushes the emulated TLB, and that cost
 * rivals the bytes' own. While output flows at BULK_BYTES per
 * BULK_PERIOD_US or more, the agent's main thread runs SCHED_BATCH, whose
 * wake-ups do not preempt: the writer fills its pipe (AGENT_PIPE_SIZE) or
 * uses up its slice, then the agent moves several frames at once. Its
 * share of the CPU stays the same (nice 0). Measured (TCG, 1 GiB of dd
 * into exec stdout): context switches per GiB 4,700 -> 1,900, +2% to +19%
 * depending on the host's phase; with 4 KiB writes +25% (bench/README.md).
 * Requests wait for the running task's slice (a few ms) meanwhile, which
 * is why the agent only does this while a stream is busy: exec of `true`
 * next to a CPU hog took ~160 ms with the agent always SCHED_BATCH
 * against ~85 ms without. BULK_IDLE_US after the last busy period it goes
 * back to SCHED_OTHER. Children never inherit it (launch.c resets it). */
#define BULK_BYTES (2u * 1024u * 1024u)
#define BULK_PERIOD_US (20 * 1000)
#define BULK_IDLE_US (100 * 1000)
#define BULK_BURST 4

static gboolean bulk_on;
static gint64 bulk_last;  /* when a period last reached BULK_BYTES */
static gint64 bulk_start; /* start of the current period */
static gsize bulk_bytes;  /* moved in the current period */

static void bulk_policy(int policy) {
  struct sched_param sp = {0};
  if (sched_setscheduler(0, policy, &sp) < 0)
    agent_debug("sched_setscheduler(%d): %s", policy, g_strerror(errno));
}

static gboolean bulk_check(gpointer unused) {
  if (g_get_monotonic_time() - bulk_last < BULK_IDLE_US)
    return G_SOURCE_CONTINUE;
  bulk_policy(SCHED_OTHER);
  bulk_on = FALSE;
  return G_SOURCE_REMOVE;
}

/* n bytes of output were just taken from a process. */
static void bulk_account(gsize n) {
  gint64 now = g_get_monotonic_time();
  if (now - bulk_start > BULK_PERIOD_US) {
    bulk_start = now;
    bulk_bytes = 0;
  }
  bulk_bytes += n;
  if (bulk_bytes < BULK_BYTES)
    return;
  bulk_last = now;
  if (bulk_on)
    return;
  bulk_policy(SCHED_BATCH);
  bulk_on = TRUE;
  g_timeout_add(BULK_IDLE_US / 1000, bulk_check, NULL);
}

/* A splice in flight for a stream; outlives the stream if need be, since
 * the conn calls back when the frame is written or dropped. */
typedef struct {
  AgentStream *s; /* NULL once the stream is gone */
} SpliceToken;

struct _AgentStream {
  KvConn *conn; /* NULL once the connection is gone: drain mode */
  guint32 id;
  gboolean output;
  gboolean pty;
  int fd;
  guint watch;
  KvWindow win;
  AgentStreamDoneFunc done;
  gpointer user;

  /* output */
  gboolean can_splice; /* a pipe: its bytes can move without a copy */
  int relay[2];        /* our pipe between fd and the channel, or -1 */
  SpliceToken *splice; /* a spliced frame is queued: relay is the conn's */
  gboolean throttled;
  gboolean exited;  /* the process exited */
  gboolean discard; /* the host sent EOF: it reads no more */
  guint grace_timer;

  /* input */
  GQueue chunks; /* GBytes*, the head partly written from head_off */
  gsize head_off;
  guint32 written; /* written since the last CREDIT */
  gboolean eof;    /* host sent EOF */
  gboolean broken; /* the process closed its end: drop what comes */
};

static GHashTable *by_conn; /* KvConn* -> GHashTable(id -> AgentStream*) */
static GList *orphans;      /* AgentStream* whose connection went away */
static GList *throttled;    /* AgentStream* paused on the channel queue */
static guint throttle_timer;
static guint8 chunk_buf[AGENT_STREAM_CHUNK];

static void out_update(AgentStream *s);
static void in_update(AgentStream *s);

static GHashTable *conn_table(KvConn *c, gboolean create) {
  if (by_conn == NULL) {
    if (!create)
      return NULL;
    by_conn = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                    (GDestroyNotify)g_hash_table_unref);
  }
  GHashTable *t = g_hash_table_lookup(by_conn, c);
  if (t == NULL && create) {
    t = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_hash_table_insert(by_conn, c, t);
  }
  return t;
}

static AgentStream *lookup(KvConn *c, guint32 id) {
  GHashTable *t = conn_table(c, FALSE);
  return t != NULL ? g_hash_table_lookup(t, GUINT_TO_POINTER(id)) : NULL;
}

gboolean agent_streams_check_free(KvConn *c, const guint32 *ids, gsize n, GError **error) {
  for (gsize i = 0; i < n; i++) {
    if (ids[i] == 0)
      continue;
    for (gsize j = 0; j < i; j++) {
      if (ids[j] == ids[i]) {
        g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "streams: stream id %u is given twice",
                    ids[i]);
        return FALSE;
      }
    }
    if (lookup(c, ids[i]) != NULL) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS, "streams: stream id %u is already in use",
                  ids[i]);
      return FALSE;
    }
  }
  return TRUE;
}

/* Output from a pipe goes to the channel by splice(2): one copy in the
 * guest (the process's write into the pipe) instead of three (pipe -> our
 * buffer -> frame -> port); under TCG each copy is dear. A pty master is
 * not a pipe and is read.
 *
 * The bytes move in two steps, process pipe -> relay pipe -> port, because
 * the port's splice (virtio_console, Linux 6.1) sizes its scatterlist by
 * the pipe's occupancy but fills it only for what is asked: a splice of
 * less than the whole pipe hands the device zero-length buffers, and QEMU
 * then stops the whole virtio-serial device ("zero sized buffers are not
 * allowed"). The relay holds exactly one frame's payload, all of which
 * goes; moving pipe buffers between pipes copies nothing. */
static void check_splice(AgentStream *s) {
  struct stat st;
  s->can_splice =
      s->output && !s->pty && s->fd >= 0 && fstat(s->fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

static void relay_close(AgentStream *s) {
  for (int i = 0; i < 2; i++) {
    if (s->relay[i] >= 0)
      close(s->relay[i]);
    s->relay[i] = -1;
  }
}

static gboolean relay_open(AgentStream *s) {
  if (s->relay[0] >= 0)
    return TRUE;
  if (pipe2(s->relay, O_CLOEXEC | O_NONBLOCK) < 0) {
    agent_debug("stream %u: relay pipe: %s", s->id, g_strerror(errno));
    s->relay[0] = s->relay[1] = -1;
    return FALSE;
  }
  if (fcntl(s->relay[0], F_SETPIPE_SZ, AGENT_RELAY_PIPE_SIZE) < 0)
    agent_debug("stream %u: relay F_SETPIPE_SZ: %s", s->id, g_strerror(errno));
  return TRUE;
}

static AgentStream *stream_new(KvConn *c, guint32 id, int fd, gboolean output, gboolean pty,
                               AgentStreamDoneFunc done, gpointer user) {
  static gboolean sigpipe_ignored;
  if (!sigpipe_ignored) {
    /* A process that closed its stdin must cost us EPIPE, not a signal
     * (PID 1 is immune to it anyway, the test mode is not). */
    signal(SIGPIPE, SIG_IGN);
    sigpipe_ignored = TRUE;
  }
  AgentStream *s = g_new0(AgentStream, 1);
  /* Id 0: an output nobody asked for (a pty's output with stdout 0) is
   * still drained, so that the process does not block on it. */
  s->conn = id != 0 ? kv_conn_ref(c) : NULL;
  s->id = id;
  s->fd = fd;
  s->output = output;
  s->pty = pty;
  s->done = done;
  s->user = user;
  s->relay[0] = s->relay[1] = -1;
  kv_window_init(&s->win, !output);
  g_queue_init(&s->chunks);
  if (fd >= 0)
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
  check_splice(s);
  if (s->conn != NULL)
    g_hash_table_insert(conn_table(c, TRUE), GUINT_TO_POINTER(id), s);
  else
    orphans = g_list_prepend(orphans, s);
  return s;
}

static void unwatch(AgentStream *s) {
  if (s->watch != 0) {
    g_source_remove(s->watch);
    s->watch = 0;
  }
}

/* Detaches s from everything and frees it; done runs last, if asked. */
static void stream_finish(AgentStream *s, gboolean call_done) {
  unwatch(s);
  if (s->grace_timer != 0)
    g_source_remove(s->grace_timer);
  if (s->throttled)
    throttled = g_list_remove(throttled, s);
  if (s->splice != NULL)
    s->splice->s = NULL;
  relay_close(s);
  if (s->fd >= 0)
    close(s->fd);
  g_queue_clear_full(&s->chunks, (GDestroyNotify)g_bytes_unref);
  if (s->conn != NULL) {
    GHashTable *t = conn_table(s->conn, FALSE);
    if (t != NULL)
      g_hash_table_remove(t, GUINT_TO_POINTER(s->id));
    g_clear_pointer(&s->conn, kv_conn_unref);
  } else {
    orphans = g_list_remove(orphans, s);
  }
  if (call_done && s->done != NULL)
    s->done(s, s->user);
  g_free(s);
}

/* ---- output ---- */

static void out_end(AgentStream *s, gboolean call_done) {
  if (s->conn != NULL && !kv_conn_is_closed(s->conn))
    kv_conn_send(s->conn, KV_FRAME_EOF, s->id, NULL, 0, NULL);
  stream_finish(s, call_done);
}

static gboolean throttle_check(gpointer unused) {
  GList *keep = NULL;
  GList *list = g_steal_pointer(&throttled);
  for (GList *l = list; l != NULL; l = l->next) {
    AgentStream *s = l->data;
    if (s->conn != NULL && kv_conn_pending(s->conn) > LOW_WATER) {
      keep = g_list_prepend(keep, s);
      continue;
    }
    s->throttled = FALSE;
    out_update(s);
  }
  g_list_free(list);
  throttled = keep;
  if (throttled != NULL)
    return G_SOURCE_CONTINUE;
  throttle_timer = 0;
  return G_SOURCE_REMOVE;
}

static void throttle(AgentStream *s) {
  s->throttled = TRUE;
  throttled = g_list_prepend(throttled, s);
  unwatch(s);
  if (throttle_timer == 0)
    throttle_timer = g_timeout_add(THROTTLE_MS, throttle_check, NULL);
}

static void on_splice_done(gpointer data) {
  SpliceToken *t = data;
  AgentStream *s = t->s;
  g_free(t);
  if (s == NULL)
    return;
  s->splice = NULL;
  /* A frame the conn dropped (closed) leaves its bytes in the relay; the
   * relay must hold nothing but the next frame. */
  int left = 0;
  if (ioctl(s->relay[0], FIONREAD, &left) < 0 || left != 0)
    relay_close(s);
  out_update(s);
}

/* Moves what the process wrote (within the window) into the relay and
 * queues it as one spliced frame. Returns FALSE when the stream ended
 * (s is freed); *got is 0 when nothing was there, -1 when splicing is not
 * possible and the caller should read instead. */
static gboolean out_splice(AgentStream *s, gssize *got) {
  *got = 0;
  if (!relay_open(s)) {
    *got = -1;
    return TRUE;
  }
  gsize room = MIN(s->win.send_avail, KV_FRAME_MAX_PAYLOAD);
  ssize_t n;
  do
    n = splice(s->fd, NULL, s->relay[1], NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN)
    return TRUE;
  if (n < 0) {
    agent_debug("stream %u: splice: %s; reading instead", s->id, g_strerror(errno));
    s->can_splice = FALSE;
    *got = -1;
    return TRUE;
  }
  if (n == 0) {
    out_end(s, TRUE);
    return FALSE;
  }
  SpliceToken *t = g_new0(SpliceToken, 1);
  t->s = s;
  s->splice = t; /* before the send: a frame written at once calls back */
  kv_window_on_send(&s->win, (gsize)n, NULL);
  *got = n;
  bulk_account((gsize)n);
  g_autoptr(GError) err = NULL;
  if (!kv_conn_send_spliced(s->conn, s->id, s->relay[0], (gsize)n, on_splice_done, t, &err)) {
    /* The conn is closing: its on_closed turns us into drain mode. */
    agent_debug("stream %u: %s", s->id, err->message);
    s->splice = NULL;
    g_free(t);
    relay_close(s);
  }
  return TRUE;
}

/* One read of at most one chunk (or one spliced frame), within the window.
 * Returns FALSE when the stream ended (s is freed). *got: bytes taken. */
static gboolean out_read_once(AgentStream *s, gssize *got) {
  gboolean draining = s->conn == NULL || s->discard || kv_conn_is_closed(s->conn);
  gsize room = draining ? sizeof chunk_buf : MIN(s->win.send_avail, sizeof chunk_buf);
  *got = 0;
  if (room == 0 || s->splice != NULL)
    return TRUE;
  if (!draining && s->can_splice) {
    if (!out_splice(s, got))
      return FALSE;
    if (*got >= 0)
      return TRUE;
    *got = 0;
  }
  ssize_t n;
  do
    n = read(s->fd, chunk_buf, room);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN)
    return TRUE;
  /* A pty master reads EIO once no slave is open any more: its EOF. */
  if (n <= 0) {
    if (n < 0 && !(s->pty && errno == EIO))
      agent_debug("stream %u: read: %s", s->id, g_strerror(errno));
    out_end(s, TRUE);
    return FALSE;
  }
  *got = n;
  if (!draining) {
    g_autoptr(GError) err = NULL;
    kv_window_on_send(&s->win, (gsize)n, NULL);
    if (!kv_conn_send(s->conn, KV_FRAME_DATA, s->id, chunk_buf, (gsize)n, &err))
      agent_debug("stream %u: %s", s->id, err->message);
  }
  return TRUE;
}

static gboolean on_out_ready(gint fd, GIOCondition cond, gpointer data) {
  AgentStream *s = data;
  /* One chunk per dispatch keeps many busy streams fair to each other.
   * In bulk mode a spliced stream moves up to BULK_BURST frames per
   * dispatch while each goes out at once: a turn of the main loop per
   * frame is dear under TCG (the agent ran ~0.3 s of user time per GiB). */
  guint burst = bulk_on ? BULK_BURST : 1;
  for (guint i = 0; i < burst; i++) {
    gssize got = 0;
    if (!out_read_once(s, &got))
      return G_SOURCE_REMOVE;
    if (s->splice != NULL) {
      /* The pipe is the conn's until the frame is out; on_splice_done
       * re-arms. Its bytes wait in the pipe, not in our memory. */
      s->watch = 0;
      return G_SOURCE_REMOVE;
    }
    if (s->conn != NULL && !s->discard && kv_conn_pending(s->conn) > HIGH_WATER) {
      s->watch = 0;
      throttle(s);
      return G_SOURCE_REMOVE;
    }
    if (s->conn != NULL && !s->discard && s->win.send_avail == 0) {
      s->watch = 0;
      return G_SOURCE_REMOVE; /* CREDIT re-arms */
    }
    if (got <= 0 || !s->can_splice)
      break;
  }
  return G_SOURCE_CONTINUE;
}

static void out_update(AgentStream *s) {
  gboolean want = s->fd >= 0 && !s->throttled && s->splice == NULL &&
                  (s->conn == NULL || s->discard || s->win.send_avail > 0);
  if (want && s->watch == 0)
    s->watch = g_unix_fd_add(s->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_out_ready, s);
  else if (!want)
    unwatch(s);
}

AgentStream *agent_stream_new_output(KvConn *c, guint32 id, int fd, gboolean pty,
                                     AgentStreamDoneFunc done, gpointer user) {
  AgentStream *s = stream_new(c, id, fd, TRUE, pty, done, user);
  out_update(s);
  return s;
}

/* The process is gone but the stream did not reach end of file: someone
 * else holds the write end. Once the pipe is empty and the host is not
 * the one holding things up, end it. */
static gboolean on_grace(gpointer data) {
  AgentStream *s = data;
  gboolean waiting_on_host = s->throttled || s->splice != NULL ||
                             (s->conn != NULL && !s->discard && s->win.send_avail == 0);
  if (waiting_on_host)
    return G_SOURCE_CONTINUE;
  gssize got = 0;
  if (!out_read_once(s, &got))
    return G_SOURCE_REMOVE; /* reached end of file after all */
  if (got > 0)
    return G_SOURCE_CONTINUE;
  agent_debug("stream %u: ending it %d ms after its process exited (still "
              "held open by another process)",
              s->id, EXIT_GRACE_MS);
  s->grace_timer = 0;
  out_end(s, TRUE);
  return G_SOURCE_REMOVE;
}

/* ---- input ---- */

static void in_credit(AgentStream *s, gboolean force) {
  if (s->written == 0 || (!force && s->written < CREDIT_BATCH))
    return;
  guint32 n = kv_window_grant(&s->win, s->written);
  s->written = 0;
  if (n > 0 && s->conn != NULL)
    kv_conn_send_credit(s->conn, s->id, n, NULL);
}

/* Drops what is queued, crediting it: the host must not stall on a
 * stream whose reader is gone. */
static void in_drop_queue(AgentStream *s) {
  GBytes *b;
  while ((b = g_queue_pop_head(&s->chunks)) != NULL) {
    s->written += (guint32)(g_bytes_get_size(b) - s->head_off);
    s->head_off = 0;
    g_bytes_unref(b);
  }
  in_credit(s, TRUE);
}

static void in_close(AgentStream *s, gboolean call_done) {
  in_drop_queue(s);
  if (s->pty && s->fd >= 0 && !s->broken) {
    /* Closing our dup of the master would not end the slave's input: the
     * output side holds another. A line-mode terminal reads EOF on VEOF. */
    struct termios t;
    if (tcgetattr(s->fd, &t) == 0 && (t.c_lflag & ICANON)) {
      char c = (char)t.c_cc[VEOF];
      if (write(s->fd, &c, 1) < 0)
        agent_debug("stream %u: VEOF: %s", s->id, g_strerror(errno));
    }
  }
  stream_finish(s, call_done);
}

static gboolean on_in_ready(gint fd, GIOCondition cond, gpointer data) {
  AgentStream *s = data;
  GBytes *b;
  while ((b = g_queue_peek_head(&s->chunks)) != NULL) {
    gsize len = 0;
    const guint8 *p = g_bytes_get_data(b, &len);
    ssize_t n;
    do
      n = write(s->fd, p + s->head_off, len - s->head_off);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
      break;
    if (n < 0) {
      /* EPIPE: the process closed its stdin (or exited). */
      agent_debug("stream %u: write: %s", s->id, g_strerror(errno));
      s->broken = TRUE;
      in_drop_queue(s);
      break;
    }
    s->written += (guint32)n;
    s->head_off += (gsize)n;
    if (s->head_off == len) {
      g_bytes_unref(g_queue_pop_head(&s->chunks));
      s->head_off = 0;
    }
  }
  in_credit(s, g_queue_is_empty(&s->chunks));
  if (g_queue_is_empty(&s->chunks)) {
    s->watch = 0;
    if (s->eof)
      in_close(s, TRUE);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static void in_update(AgentStream *s) {
  if (s->fd >= 0 && !g_queue_is_empty(&s->chunks) && s->watch == 0)
    s->watch = g_unix_fd_add(s->fd, G_IO_OUT | G_IO_ERR, on_in_ready, s);
}

AgentStream *agent_stream_new_input(KvConn *c, guint32 id, int fd, gboolean pty,
                                    AgentStreamDoneFunc done, gpointer user) {
  return stream_new(c, id, fd, FALSE, pty, done, user);
}

static void in_data(AgentStream *s, GBytes *payload) {
  gsize len = g_bytes_get_size(payload);
  g_autoptr(GError) err = NULL;
  if (!kv_window_on_data(&s->win, len, &err)) {
    /* The host broke the protocol; keep the agent's memory bounded. */
    agent_error("stream %u: %s: data dropped", s->id, err->message);
    return;
  }
  if (s->eof) {
    agent_error("stream %u: DATA after EOF dropped", s->id);
    return;
  }
  if (s->broken) {
    s->written += (guint32)len;
    in_credit(s, TRUE);
    return;
  }
  if (len == 0)
    return;
  g_queue_push_tail(&s->chunks, g_bytes_ref(payload));
  in_update(s);
}

/* ---- common ---- */

void agent_stream_process_exited(AgentStream *s) {
  if (!s->output) {
    s->broken = TRUE; /* no VEOF for a terminal nobody reads any more */
    in_close(s, TRUE);
    return;
  }
  s->exited = TRUE;
  if (s->fd < 0) {
    out_end(s, TRUE); /* never connected: nothing can come */
    return;
  }
  if (s->grace_timer == 0)
    s->grace_timer = g_timeout_add(EXIT_GRACE_MS, on_grace, s);
}

void agent_stream_set_fd(AgentStream *s, int fd) {
  g_return_if_fail(s->fd < 0 && fd >= 0);
  s->fd = fd;
  g_unix_set_fd_nonblocking(fd, TRUE, NULL);
  check_splice(s);
  if (s->output)
    out_update(s);
  else if (s->eof && g_queue_is_empty(&s->chunks))
    in_close(s, TRUE);
  else
    in_update(s);
}

void agent_stream_abort(AgentStream *s) {
  s->broken = TRUE;
  stream_finish(s, FALSE);
}

void agent_streams_on_frame(KvConn *c, const KvFrame *f) {
  if (f->type == KV_FRAME_EVENT)
    return;
  AgentStream *s = lookup(c, f->stream);
  if (s == NULL) {
    /* Streams end on our side first (EOF sent, process gone): late CREDIT
     * and DATA for them are normal. */
    return;
  }
  switch (f->type) {
  case KV_FRAME_DATA:
    if (s->output)
      agent_debug("stream %u: DATA from the host on an output stream", s->id);
    else
      in_data(s, f->payload);
    break;
  case KV_FRAME_CREDIT:
    if (!s->output)
      break;
    {
      g_autoptr(GError) err = NULL;
      if (!kv_window_on_credit(&s->win, kv_frame_credit(f), &err))
        agent_error("stream %u: %s", s->id, err->message);
    }
    out_update(s);
    break;
  case KV_FRAME_EOF:
    if (s->output) {
      /* The host will read no more: drain so the process does not block. */
      s->discard = TRUE;
      out_update(s);
    } else {
      s->eof = TRUE;
      /* Without an fd yet (a pty on its way) the EOF waits for it. */
      if (s->fd >= 0 && g_queue_is_empty(&s->chunks))
        in_close(s, TRUE);
    }
    break;
  default:
    break;
  }
}

void agent_streams_conn_closed(KvConn *c) {
  GHashTable *t = conn_table(c, FALSE);
  if (t == NULL)
    return;
  g_hash_table_steal(by_conn, c);
  g_autoptr(GList) list = g_hash_table_get_values(t);
  g_hash_table_unref(t);
  for (GList *l = list; l != NULL; l = l->next) {
    AgentStream *s = l->data;
    g_clear_pointer(&s->conn, kv_conn_unref);
    orphans = g_list_prepend(orphans, s);
    if (s->output) {
      if (s->throttled) {
        throttled = g_list_remove(throttled, s);
        s->throttled = FALSE;
      }
      out_update(s);
    } else {
      in_close(s, TRUE);
    }
  }
}
