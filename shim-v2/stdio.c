/* shim-v2/stdio.c: a process's stdio as containerd hands it over (FIFO
 * paths; with a terminal the stdout FIFO carries the pty stream) pumped
 * to and from the process's fds (non-blocking pipes of the library) with
 * flow control: at most one buffer in flight per direction, so a slow
 * reader holds the process back instead of growing the shim. When its
 * output is done the thread reaps the process, records the exit and
 * publishes TaskExit. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "shim.h"

#define PUMP_BUF 65536

typedef struct {
  int from, to;     /* -1 when closed / absent */
  gboolean eof;     /* `from` read EOF */
  gboolean discard; /* no FIFO: read and drop */
  char buf[PUMP_BUF];
  size_t have, off;
} Pump;

static int open_fifo(const char *path, int flags, GError **error) {
  if (!path || !*path)
    return -1;
  /* Non-blocking, so that the open never waits for the other end. The
   * stdin FIFO is read-only: it reads EOF once its writer came and went
   * (poll reports no hang-up before a writer was there); output FIFOs are
   * opened read-write, so that writing never fails for want of a reader
   * that has not opened yet. */
  int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "open FIFO %s: %s", path,
                g_strerror(errno));
  return fd;
}

/* One step of a pump; returns FALSE when it is finished. */
static void pump_step(Pump *p, short rev_from, short rev_to) {
  if (p->have == p->off && !p->eof && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
    ssize_t n = read(p->from, p->buf, sizeof(p->buf));
    if (n > 0) {
      p->have = (size_t)n;
      p->off = 0;
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      p->eof = TRUE;
    }
    if (p->discard)
      p->have = p->off = 0;
  }
  if (p->have > p->off && p->to >= 0 && (rev_to & (POLLOUT | POLLERR | POLLHUP))) {
    ssize_t n = write(p->to, p->buf + p->off, p->have - p->off);
    if (n > 0)
      p->off += (size_t)n;
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
      p->have = p->off = 0; /* the reader is gone: drop */
  }
  if (p->have == p->off)
    p->have = p->off = 0;
}

static void publish_exit(Shim *s, Proc *pr) {
  Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = pr->exited_at_us / G_USEC_PER_SEC;
  ts.nanos = (int32_t)(pr->exited_at_us % G_USEC_PER_SEC) * 1000;
  ev.container_id = pr->task->id;
  ev.id = pr->exec_id ? pr->exec_id : pr->task->id;
  ev.pid = (uint32_t)getpid();
  ev.exit_status = (uint32_t)pr->exit_code;
  ev.exited_at = &ts;
  size_t n = containerd__events__task_exit__get_packed_size(&ev);
  uint8_t *b = g_malloc(n);
  containerd__events__task_exit__pack(&ev, b);
  events_publish(s, "/tasks/exit", "containerd.events.TaskExit", b, n);
  g_free(b);
}

typedef struct {
  Shim *s;
  Proc *pr;
  int fin, fout, ferr;
} IoArgs;

static gpointer io_thread(gpointer data) {
  IoArgs *a = data;
  Shim *s = a->s;
  Proc *pr = a->pr;
  Pump in = {.from = a->fin, .to = katavm_process_stdin_fd(pr->p)};
  Pump out = {.from = katavm_process_stdout_fd(pr->p), .to = a->fout};
  Pump err = {.from = katavm_process_stderr_fd(pr->p), .to = a->ferr};
  out.discard = out.to < 0;
  err.discard = err.to < 0;
  if (in.from < 0 && in.to >= 0) {
    g_mutex_lock(&pr->plock);
    katavm_process_close_stdin(pr->p, NULL);
    g_mutex_unlock(&pr->plock);
    in.to = -1;
  }
  out.eof = out.from < 0;
  err.eof = err.from < 0;
  int code = -1;
  for (;;) {
    struct pollfd fds[6];
    int idx[6] = {-1, -1, -1, -1, -1, -1}, n = 0;
    Pump *ps[3] = {&in, &out, &err};
    for (int i = 0; i < 3; i++) {
      Pump *p = ps[i];
      if (p->from < 0 || (p->to < 0 && !p->discard))
        continue;
      if (p->have == p->off && !p->eof) {
        idx[i * 2] = n;
        fds[n++] = (struct pollfd){.fd = p->from, .events = POLLIN};
      } else if (p->have > p->off) {
        idx[i * 2 + 1] = n;
        fds[n++] = (struct pollfd){.fd = p->to, .events = POLLOUT};
      }
    }
    int r = n ? poll(fds, (nfds_t)n, 200) : 0;
    if (r < 0 && errno != EINTR)
      break;
    for (int i = 0; i < 3 && r > 0; i++) {
      short rf = idx[i * 2] >= 0 ? fds[idx[i * 2]].revents : 0;
      short rt = idx[i * 2 + 1] >= 0 ? fds[idx[i * 2 + 1]].revents : 0;
      pump_step(ps[i], rf, rt);
    }
    if (in.to >= 0 && (pr->close_stdin || in.eof) && in.have == in.off) {
      g_mutex_lock(&pr->plock);
      katavm_process_close_stdin(pr->p, NULL);
      g_mutex_unlock(&pr->plock);
      in.to = -1;
    }
    gboolean done = out.eof && out.have == out.off && err.eof && err.have == err.off;
    if (!done && n)
      continue;
    g_mutex_lock(&pr->plock);
    katavm_error *e = NULL;
    int rc = katavm_process_wait(pr->p, done ? 200 : 0, &code, &e);
    g_mutex_unlock(&pr->plock);
    if (rc == 0)
      break;
    int ec = katavm_error_code(e);
    if (ec != KATAVM_E_TIMEOUT || !strstr(katavm_error_message(e), "did not exit within")) {
      shim_log("process %s/%s: %s", pr->task->id, pr->exec_id ? pr->exec_id : "init",
               katavm_error_message(e));
      katavm_error_free(e);
      code = 255;
      break;
    }
    katavm_error_free(e);
    if (!done)
      g_usleep(100000);
  }
  if (a->fin >= 0)
    close(a->fin);
  if (a->fout >= 0)
    close(a->fout);
  if (a->ferr >= 0)
    close(a->ferr);
  g_mutex_lock(&s->lock);
  if (!pr->exec_id) /* an OOM kill of the init: its TaskOOM goes before TaskExit */
    task_oom_check(s, pr->task);
  pr->status = PROC_STOPPED;
  pr->exit_code = code;
  pr->exited_at_us = g_get_real_time();
  g_cond_broadcast(&s->exited);
  g_mutex_unlock(&s->lock);
  publish_exit(s, pr);
  g_free(a);
  return NULL;
}

gboolean proc_io_start(Shim *s, Proc *pr, GError **error) {
  IoArgs *a = g_new0(IoArgs, 1);
  a->s = s;
  a->pr = pr;
  a->fin = a->fout = a->ferr = -1;
  if ((pr->stdin_path && *pr->stdin_path &&
       (a->fin = open_fifo(pr->stdin_path, O_RDONLY, error)) < 0) ||
      (pr->stdout_path && *pr->stdout_path &&
       (a->fout = open_fifo(pr->stdout_path, O_RDWR, error)) < 0) ||
      (pr->stderr_path && *pr->stderr_path && !pr->terminal &&
       (a->ferr = open_fifo(pr->stderr_path, O_RDWR, error)) < 0)) {
    if (a->fin >= 0)
      close(a->fin);
    if (a->fout >= 0)
      close(a->fout);
    g_free(a);
    return FALSE;
  }
  pr->io = g_thread_new("io", io_thread, a);
  return TRUE;
}
