/* lib/process.c: process handles: a guest process's stdio as file
 * descriptors the caller can poll.
 *
 * Each handle has its own connection to the shim and its own I/O thread,
 * which pumps the caller's stdin out to the guest with per-stream flow
 * control. Output does not pass through here: the write ends of the
 * caller's stdout/stderr pipes go to the shim with the request (SCM_RIGHTS,
 * the request's sink_fds), and the shim writes the guest's output into them and grants
 * credit only for bytes a pipe accepted (lib/shim/relay.c), so memory stays
 * bounded by the stream window whatever the guest writes and however slowly
 * the caller reads. The DATA path below serves a shim that does not
 * confirm it took the fds (one older than this library). Calls from the
 * caller's thread are handed to the I/O thread and waited for. */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "process-internal.h"
#include "proto.h"
#include "sandbox-internal.h"

#define CHUNK (64 * 1024)
/* Output pipes handed to the caller: a reader that takes big gulps should
 * not be held to 64 KiB (the default) per wake-up. Best effort. */
#define CALLER_PIPE_SIZE (1024 * 1024)

enum { SID_IN = 1, SID_OUT = 2, SID_ERR = 3 };

typedef struct {
  int ours;   /* our end; -1 when closed */
  int theirs; /* the caller's end; -1 when not connected */
  guint32 sid;
  KvWindow win;
  gsize consumed;  /* accepted by the pipe, not yet granted back */
  GByteArray *buf; /* guest bytes not yet accepted by the pipe */
  gboolean eof;    /* guest sent EOF */
  gboolean broken; /* caller closed its read end: discard */
  GSource *src;
} Pipe;

struct katavm_process {
  GMainContext *ctx;
  GMainLoop *loop;
  GThread *thread;
  KvConn *conn;
  char *container;
  char *exec_id; /* NULL for a container's main process */
  gboolean tty;
  Pipe in, out, err;
  GMutex lock;
  GCond cond;
  gboolean exited;
  int exit_code;
  int fail_code; /* set when waiting can no longer succeed */
  char *fail_message;
};

/* ---- I/O thread side ---- */

static void pipe_close_ours(Pipe *pp) {
  if (pp->src) {
    g_source_destroy(pp->src);
    g_source_unref(pp->src);
    pp->src = NULL;
  }
  if (pp->ours >= 0) {
    close(pp->ours);
    pp->ours = -1;
  }
}

static void grant(katavm_process *p, Pipe *pp, gsize n) {
  pp->consumed += n;
  if (pp->consumed < KV_OUTPUT_CREDIT_BATCH && pp->buf->len > 0)
    return;
  guint32 g = kv_window_grant(&pp->win, (guint32)pp->consumed);
  pp->consumed = 0;
  if (g)
    kv_conn_send_credit(p->conn, pp->sid, g, NULL);
}

static gboolean pump_out(katavm_process *p, Pipe *pp);

static gboolean on_out_writable(int fd, GIOCondition cond, gpointer user) {
  katavm_process *p = user;
  Pipe *pp = fd == p->out.ours ? &p->out : &p->err;
  g_source_unref(pp->src);
  pp->src = NULL;
  pump_out(p, pp);
  return G_SOURCE_REMOVE;
}

/* Move buffered guest output into the caller's pipe. */
static gboolean pump_out(katavm_process *p, Pipe *pp) {
  while (pp->buf->len && pp->ours >= 0 && !pp->broken) {
    ssize_t n = write(pp->ours, pp->buf->data, pp->buf->len);
    if (n > 0) {
      g_byte_array_remove_range(pp->buf, 0, (guint)n);
      grant(p, pp, (gsize)n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      if (!pp->src) {
        pp->src = g_unix_fd_source_new(pp->ours, G_IO_OUT);
        g_source_set_callback(pp->src, G_SOURCE_FUNC(on_out_writable), p, NULL);
        g_source_attach(pp->src, p->ctx);
      }
      return TRUE;
    } else {
      /* The caller closed its end: keep the guest process going. */
      pp->broken = TRUE;
    }
  }
  if (pp->broken && pp->buf->len) {
    gsize n = pp->buf->len;
    g_byte_array_set_size(pp->buf, 0);
    grant(p, pp, n);
  }
  if (pp->eof && pp->buf->len == 0)
    pipe_close_ours(pp);
  return TRUE;
}

static gboolean on_stdin_readable(int fd, GIOCondition cond, gpointer user);
static gboolean stdin_watch_cb(gpointer user);

static void stdin_watch(katavm_process *p) {
  Pipe *pp = &p->in;
  if (pp->src || pp->ours < 0 || pp->win.send_avail == 0 || !kv_conn_is_ready(p->conn))
    return;
  pp->src = g_unix_fd_source_new(pp->ours, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback(pp->src, G_SOURCE_FUNC(on_stdin_readable), p, NULL);
  g_source_attach(pp->src, p->ctx);
}

static gboolean on_stdin_readable(int fd, GIOCondition cond, gpointer user) {
  katavm_process *p = user;
  Pipe *pp = &p->in;
  guint8 chunk[CHUNK];
  gsize want = MIN((gsize)CHUNK, pp->win.send_avail);
  /* Back-pressure on the shim connection as well as on the window. */
  if (kv_conn_pending(p->conn) > 4 * CHUNK)
    want = 0;
  ssize_t n = want ? read(pp->ours, chunk, want) : 0;
  if (want && n > 0) {
    kv_window_on_send(&pp->win, (gsize)n, NULL);
    kv_conn_send(p->conn, KV_FRAME_DATA, pp->sid, chunk, (gsize)n, NULL);
    if (pp->win.send_avail > 0)
      return G_SOURCE_CONTINUE;
  } else if (want && n < 0 && (errno == EAGAIN || errno == EINTR)) {
    return G_SOURCE_CONTINUE;
  } else if (want) {
    /* EOF (or error) on the caller's stdin: the guest reads EOF. */
    kv_conn_send(p->conn, KV_FRAME_EOF, pp->sid, NULL, 0, NULL);
    g_source_unref(pp->src);
    pp->src = NULL;
    close(pp->ours);
    pp->ours = -1;
    return G_SOURCE_REMOVE;
  }
  /* Out of credit: wait for a CREDIT frame. A full write queue is polled. */
  g_source_unref(pp->src);
  pp->src = NULL;
  if (!want && pp->win.send_avail > 0) {
    GSource *t = g_timeout_source_new(10);
    g_source_set_callback(t, G_SOURCE_FUNC(stdin_watch_cb), p, NULL);
    g_source_attach(t, p->ctx);
    g_source_unref(t);
  }
  return G_SOURCE_REMOVE;
}

static gboolean stdin_watch_cb(gpointer user) {
  stdin_watch(user);
  return G_SOURCE_REMOVE;
}

static void fail_waiters(katavm_process *p, int code, const char *msg) {
  g_mutex_lock(&p->lock);
  if (!p->exited && !p->fail_code) {
    p->fail_code = code;
    p->fail_message = g_strdup(msg);
  }
  g_cond_broadcast(&p->cond);
  g_mutex_unlock(&p->lock);
}

static void on_frame(KvConn *c, const KvFrame *f, gpointer user) {
  katavm_process *p = user;
  Pipe *pp = f->stream == SID_OUT   ? &p->out
             : f->stream == SID_ERR ? &p->err
             : f->stream == SID_IN  ? &p->in
                                    : NULL;
  if (!pp || !pp->sid)
    return;
  gsize len = g_bytes_get_size(f->payload);
  if (pp == &p->in) {
    if (f->type == KV_FRAME_CREDIT && kv_window_on_credit(&pp->win, kv_frame_credit(f), NULL))
      stdin_watch(p);
    return;
  }
  if (f->type == KV_FRAME_DATA) {
    g_autoptr(GError) e = NULL;
    if (!kv_window_on_data(&pp->win, len, &e)) {
      /* The guest broke flow control: drop this process's connection. */
      fail_waiters(p, KATAVM_E_PROTOCOL, e->message);
      kv_conn_close(p->conn);
      pipe_close_ours(&p->out);
      pipe_close_ours(&p->err);
      return;
    }
    if (pp->ours < 0 || pp->broken) {
      grant(p, pp, len);
      return;
    }
    g_byte_array_append(pp->buf, g_bytes_get_data(f->payload, NULL), (guint)len);
    pump_out(p, pp);
  } else if (f->type == KV_FRAME_EOF) {
    pp->eof = TRUE;
    pump_out(p, pp);
  }
}

/* The caller's read end of an output pipe reads EOF from now on, whoever
 * still holds the write end (a hung shim does): the fd is switched to a
 * pipe with no writer. A poll already waiting on the old pipe sees it at
 * its next call. */
static void theirs_to_eof(Pipe *pp) {
  int fds[2];
  if (pp->theirs < 0 || pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
    return;
  close(fds[1]);
  dup3(fds[0], pp->theirs, O_CLOEXEC);
  close(fds[0]);
}

static void on_closed(KvConn *c, const GError *why, gpointer user) {
  katavm_process *p = user;
  if (why && g_error_matches(why, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT)) {
    theirs_to_eof(&p->out);
    theirs_to_eof(&p->err);
  }
  /* A shim declared dead (stopped, hung) is a timeout, as for every call. */
  fail_waiters(p,
               why && g_error_matches(why, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT)
                   ? KATAVM_E_TIMEOUT
                   : KATAVM_E_AGENT,
               why ? why->message : "connection to the shim lost");
  /* Whatever was buffered is delivered; then the caller sees EOF. */
  p->out.eof = p->err.eof = TRUE;
  pump_out(p, &p->out);
  pump_out(p, &p->err);
  if (p->in.src) {
    g_source_destroy(p->in.src);
    g_source_unref(p->in.src);
    p->in.src = NULL;
  }
}

static gpointer io_thread(gpointer user) {
  katavm_process *p = user;
  g_main_context_push_thread_default(p->ctx);
  g_main_loop_run(p->loop);
  g_main_context_pop_thread_default(p->ctx);
  return NULL;
}

/* ---- calls from the caller's thread ---- */

typedef struct {
  katavm_process *p;
  const char *method;
  JsonObject *params;
  guint timeout_ms;
  const int *fds; /* sent with the request (SCM_RIGHTS) */
  guint n_fds;
  gboolean done;
  JsonObject *result;
  GError *error;
} Call;

static void call_done(KvConn *c, JsonObject *result, const GError *e, gpointer user) {
  Call *call = user;
  katavm_process *p = call->p;
  if (result && call->n_fds) {
    /* The shim took the output pipes' write ends: only it writes them now,
     * and the caller sees EOF when it closes them. */
    pipe_close_ours(&p->out);
    pipe_close_ours(&p->err);
  }
  g_mutex_lock(&p->lock);
  call->result = result ? json_object_ref(result) : NULL;
  call->error = e ? g_error_copy(e) : NULL;
  call->done = TRUE;
  g_cond_broadcast(&p->cond);
  g_mutex_unlock(&p->lock);
}

static gboolean call_start(gpointer user) {
  Call *call = user;
  /* In this thread, right before the request: the fds go with the very
   * next frame queued on the conn. */
  g_autoptr(GError) e = NULL;
  if (call->n_fds && !kv_conn_attach_fds(call->p->conn, call->fds, call->n_fds, &e)) {
    call_done(call->p->conn, NULL, e, call);
    return G_SOURCE_REMOVE;
  }
  kv_conn_call(call->p->conn, call->method, call->params, call->timeout_ms, call_done, call);
  return G_SOURCE_REMOVE;
}

/* A call of method m with the params struct `params` on the handle's
 * conn, from the caller's thread; the result is decoded into `result`
 * (NULL: not read). */
static gboolean proc_call_fds(katavm_process *p, const KvMethod *m, gconstpointer params,
                              gpointer result, const int *fds, guint n_fds, GError **error) {
  g_autoptr(JsonObject) o = kv_msg_encode(m->params, params);
  Call call = {.p = p,
               .method = m->name,
               .params = o,
               .timeout_ms = (m->flags & KV_NO_TIMEOUT) ? 0 : KV_CALL_TIMEOUT_MS,
               .fds = fds,
               .n_fds = n_fds};
  g_main_context_invoke(p->ctx, call_start, &call);
  g_mutex_lock(&p->lock);
  while (!call.done)
    g_cond_wait(&p->cond, &p->lock);
  g_mutex_unlock(&p->lock);
  if (call.error) {
    g_propagate_error(error, call.error);
    return FALSE;
  }
  g_autoptr(JsonObject) r = call.result;
  return !result || kv_result_check(m, r, result, error);
}

static gboolean proc_call(katavm_process *p, const KvMethod *m, gconstpointer params,
                          GError **error) {
  return proc_call_fds(p, m, params, NULL, NULL, 0, error);
}

static void on_wait_reply(KvConn *c, JsonObject *result, const GError *e, gpointer user) {
  katavm_process *p = user;
  if (!result) {
    fail_waiters(p, kv_error_code_of(e), kv_remote_error_message(e));
    return;
  }
  KvWaitResult r;
  g_autoptr(GError) de = NULL;
  if (!kv_result_check(&kv_m_wait, result, &r, &de)) {
    fail_waiters(p, kv_error_code_of(de), de->message);
    return;
  }
  g_mutex_lock(&p->lock);
  p->exit_code = (int)r.exit_code;
  p->exited = TRUE;
  g_cond_broadcast(&p->cond);
  g_mutex_unlock(&p->lock);
}

static gboolean after_start(gpointer user) {
  katavm_process *p = user;
  KvProcessRef w = {.container_id = p->container, .exec_id = p->exec_id};
  kv_call(p->conn, &kv_m_wait, &w, 0, on_wait_reply, p);
  stdin_watch(p);
  return G_SOURCE_REMOVE;
}

static gboolean make_pipe(Pipe *pp, guint32 sid, gboolean to_guest, GError **error) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "pipe: %s", g_strerror(errno));
    return FALSE;
  }
  if (!to_guest)
    (void)fcntl(fds[0], F_SETPIPE_SZ, CALLER_PIPE_SIZE);
  pp->sid = sid;
  pp->ours = to_guest ? fds[0] : fds[1];
  pp->theirs = to_guest ? fds[1] : fds[0];
  return TRUE;
}

static katavm_process *proc_new(void) {
  katavm_process *p = g_new0(katavm_process, 1);
  p->in.ours = p->in.theirs = p->out.ours = p->out.theirs = -1;
  p->err.ours = p->err.theirs = -1;
  kv_window_init(&p->in.win, TRUE);
  kv_window_init(&p->out.win, FALSE);
  kv_window_init(&p->err.win, FALSE);
  p->out.buf = g_byte_array_new();
  p->err.buf = g_byte_array_new();
  p->in.buf = g_byte_array_new();
  g_mutex_init(&p->lock);
  g_cond_init(&p->cond);
  p->ctx = g_main_context_new();
  p->loop = g_main_loop_new(p->ctx, FALSE);
  return p;
}

static gboolean quit_loop(gpointer user) {
  g_main_loop_quit(user);
  return G_SOURCE_REMOVE;
}

void katavm_process_free(katavm_process *p) {
  if (!p)
    return;
  if (p->thread) {
    g_main_context_invoke(p->ctx, quit_loop, p->loop);
    g_thread_join(p->thread);
  }
  if (p->conn) {
    kv_conn_close(p->conn);
    kv_conn_unref(p->conn);
  }
  Pipe *pipes[] = {&p->in, &p->out, &p->err};
  for (size_t i = 0; i < G_N_ELEMENTS(pipes); i++) {
    pipe_close_ours(pipes[i]);
    if (pipes[i]->theirs >= 0)
      close(pipes[i]->theirs);
    g_byte_array_unref(pipes[i]->buf);
  }
  while (g_main_context_iteration(p->ctx, FALSE))
    ;
  g_main_loop_unref(p->loop);
  g_main_context_unref(p->ctx);
  g_mutex_clear(&p->lock);
  g_cond_clear(&p->cond);
  g_free(p->container);
  g_free(p->exec_id);
  g_free(p->fail_message);
  g_free(p);
}

/* Start a process: `m` is kv_m_exec or kv_m_shim_container_add; params
 * get the stream ids added. On success the process is running (exec) or
 * created (container), with its wait pending. */
katavm_process *kv_process_start(katavm_sandbox *sb, const char *container, const char *exec_id,
                                 gboolean tty, gboolean with_stdin, const KvMethod *m,
                                 gpointer params, KvStreams *streams, gboolean *sink_fds,
                                 GError **error) {
  katavm_process *p = proc_new();
  p->container = g_strdup(container);
  p->exec_id = g_strdup(exec_id);
  p->tty = tty;
  static const KvConnHandlers h = {.on_frame = on_frame, .on_closed = on_closed};
  if ((with_stdin && !make_pipe(&p->in, SID_IN, TRUE, error)) ||
      !make_pipe(&p->out, SID_OUT, FALSE, error) ||
      (!tty && !make_pipe(&p->err, SID_ERR, FALSE, error)) ||
      !(p->conn = kv_shim_connect_full(&sb->paths, p->ctx, &h, p, error))) {
    katavm_process_free(p);
    return NULL;
  }
  streams->stdin_id = p->in.sid;
  streams->stdout_id = p->out.sid;
  streams->stderr_id = p->err.sid;
  /* A shim that offers it writes our output straight into the caller's
   * pipes; with another, the I/O thread pumps DATA into them. */
  int sinks[2];
  guint n_sinks = 0;
  if (kv_conn_peer_has_feature(p->conn, KV_FEATURE_SINK_FDS)) {
    sinks[n_sinks++] = p->out.ours;
    if (p->err.ours >= 0)
      sinks[n_sinks++] = p->err.ours;
    *sink_fds = TRUE;
  }
  p->thread = g_thread_new("katavm-process", io_thread, p);
  KvPidResult r;
  if (!proc_call_fds(p, m, params, &r, sinks, n_sinks, error)) {
    katavm_process_free(p);
    return NULL;
  }

  g_main_context_invoke(p->ctx, after_start, p);
  return p;
}

int katavm_process_stdin_fd(katavm_process *p) {
  return p ? p->in.theirs : -1;
}
int katavm_process_stdout_fd(katavm_process *p) {
  return p ? p->out.theirs : -1;
}
int katavm_process_stderr_fd(katavm_process *p) {
  return p ? p->err.theirs : -1;
}

int katavm_process_close_stdin(katavm_process *p, katavm_error **err) {
  if (!p)
    return kv_error_set(err, KATAVM_E_INVALID, "process is NULL");
  if (p->in.theirs >= 0) {
    close(p->in.theirs);
    p->in.theirs = -1;
  }
  return 0;
}

int katavm_process_wait(katavm_process *p, int timeout_ms, int *exit_code, katavm_error **err) {
  if (!p)
    return kv_error_set(err, KATAVM_E_INVALID, "process is NULL");
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  int rc = 0;
  g_mutex_lock(&p->lock);
  while (!p->exited && !p->fail_code) {
    if (timeout_ms < 0)
      g_cond_wait(&p->cond, &p->lock);
    else if (!g_cond_wait_until(&p->cond, &p->lock, deadline))
      break;
  }
  if (p->exited) {
    if (exit_code)
      *exit_code = p->exit_code;
  } else if (p->fail_code) {
    rc = kv_error_set(err, p->fail_code, "%s", p->fail_message);
  } else {
    rc = kv_error_set(err, KATAVM_E_TIMEOUT, "the process did not exit within %d ms", timeout_ms);
  }
  g_mutex_unlock(&p->lock);
  return rc;
}

int katavm_process_signal(katavm_process *p, int signal, katavm_error **err) {
  if (!p)
    return kv_error_set(err, KATAVM_E_INVALID, "process is NULL");
  if (signal <= 0 || signal >= 65)
    return kv_error_set(err, KATAVM_E_INVALID, "signal %d is out of range", signal);
  KvSignalParams o = {.container_id = p->container, .exec_id = p->exec_id, .signal = signal};
  g_autoptr(GError) e = NULL;
  return proc_call(p, &kv_m_signal, &o, &e) ? 0 : kv_error_propagate(err, e);
}

int katavm_process_resize(katavm_process *p, unsigned short rows, unsigned short cols,
                          katavm_error **err) {
  if (!p)
    return kv_error_set(err, KATAVM_E_INVALID, "process is NULL");
  if (!p->tty)
    return kv_error_set(err, KATAVM_E_STATE, "the process has no terminal");
  if (!rows || !cols)
    return kv_error_set(err, KATAVM_E_INVALID, "terminal size %ux%u is invalid", rows, cols);
  KvResizeParams o = {
      .container_id = p->container, .exec_id = p->exec_id, .rows = rows, .cols = cols};
  g_autoptr(GError) e = NULL;
  return proc_call(p, &kv_m_resize, &o, &e) ? 0 : kv_error_propagate(err, e);
}
