/* agent/process.c: launched processes, their setup report, exit, stdio and
 * waiters (see process.h). */
#include "process.h"
#include "log.h"
#include "rootfs.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

AgentProcess *agent_process_new(const char *label, const char *exec_id,
                                const AgentProcessOwner *ops, gpointer owner) {
  AgentProcess *p = g_new0(AgentProcess, 1);
  p->ref = 1;
  p->label = g_strdup(label);
  p->exec_id = g_strdup(exec_id);
  p->owner_ops = ops;
  p->owner = owner;
  p->pid = -1;
  p->pty = -1;
  p->status_fd = -1;
  p->waiters = g_ptr_array_new_with_free_func((GDestroyNotify)agent_call_unref);
  return p;
}

AgentProcess *agent_process_ref(AgentProcess *p) {
  g_atomic_int_inc(&p->ref);
  return p;
}

void agent_process_clear_pending(AgentProcess *p) {
  p->pending = AGENT_PENDING_NONE;
  g_clear_pointer(&p->pending_call, agent_call_unref);
}

static void close_status(AgentProcess *p) {
  if (p->status_watch != 0) {
    g_source_remove(p->status_watch);
    p->status_watch = 0;
  }
  if (p->status_fd >= 0) {
    close(p->status_fd);
    p->status_fd = -1;
  }
}

void agent_process_unref(AgentProcess *p) {
  if (p == NULL || !g_atomic_int_dec_and_test(&p->ref))
    return;
  close_status(p);
  if (p->status_buf != NULL)
    g_string_free(p->status_buf, TRUE);
  agent_process_clear_pending(p);
  if (p->pty >= 0)
    close(p->pty);
  g_ptr_array_unref(p->waiters);
  g_free(p->exec_id);
  g_free(p->label);
  g_free(p);
}

#define OWNER_HOOK(p, hook, ...)                                                                   \
  do {                                                                                             \
    if ((p)->owner != NULL && (p)->owner_ops != NULL && (p)->owner_ops->hook != NULL)              \
      (p)->owner_ops->hook((p), ##__VA_ARGS__);                                                    \
  } while (0)

static void check_finished(AgentProcess *p) {
  if (p->finished || !p->exited || p->outputs_open > 0 || p->pending != AGENT_PENDING_NONE)
    return;
  p->finished = TRUE;
  agent_debug("%s (pid %d) finished: exit code %d", p->label, (int)p->pid, p->exit_code);
  g_autoptr(GPtrArray) waiters = g_steal_pointer(&p->waiters);
  p->waiters = g_ptr_array_new_with_free_func((GDestroyNotify)agent_call_unref);
  KvWaitResult r = {.exit_code = p->exit_code, .signal = p->signal};
  for (guint i = 0; i < waiters->len; i++)
    agent_call_complete(waiters->pdata[i], &r, NULL);
  OWNER_HOOK(p, finished);
}

gboolean agent_process_wait(AgentProcess *p, AgentCall *call, KvWaitResult *result) {
  if (p->finished) {
    result->exit_code = p->exit_code;
    result->signal = p->signal;
    return TRUE;
  }
  g_ptr_array_add(p->waiters, agent_call_defer(call));
  return FALSE;
}

void agent_process_drop_waiters(AgentProcess *p, KvConn *c) {
  for (guint w = p->waiters->len; w > 0; w--) {
    if (agent_call_conn(p->waiters->pdata[w - 1]) == c)
      g_ptr_array_remove_index(p->waiters, w - 1);
  }
}

static void on_stream_done(AgentStream *s, gpointer user) {
  AgentProcess *p = user;
  for (int i = 0; i < 3; i++) {
    if (p->streams[i] != s)
      continue;
    p->streams[i] = NULL;
    if (i > 0)
      p->outputs_open--;
  }
  check_finished(p);
  agent_process_unref(p);
}

static void attach_stream(AgentProcess *p, int slot, AgentStream *s) {
  p->streams[slot] = s;
  if (slot > 0)
    p->outputs_open++;
  agent_process_ref(p); /* released by on_stream_done */
}

static void abort_streams(AgentProcess *p) {
  /* Each stream holds a reference: the last may go in this loop. */
  g_autoptr(AgentProcess) hold G_GNUC_UNUSED = agent_process_ref(p);
  for (int i = 0; i < 3; i++) {
    if (p->streams[i] == NULL)
      continue;
    agent_stream_abort(p->streams[i]);
    p->streams[i] = NULL;
    if (i > 0)
      p->outputs_open--;
    agent_process_unref(p);
  }
}

static void on_process_exit(pid_t pid, int status, gpointer user) {
  AgentProcess *p = user; /* the watch's reference */
  p->exited = TRUE;
  if (WIFSIGNALED(status)) {
    p->signal = WTERMSIG(status);
    p->exit_code = 128 + p->signal;
  } else {
    p->exit_code = WEXITSTATUS(status);
  }
  agent_debug("%s (pid %d) exited: %d", p->label, (int)pid, p->exit_code);
  for (int i = 0; i < 3; i++) {
    if (p->streams[i] != NULL)
      agent_stream_process_exited(p->streams[i]);
  }
  /* Our master dup keeps no slave open, but nothing can resize a dead
   * process's terminal either. */
  if (p->pty >= 0) {
    close(p->pty);
    p->pty = -1;
  }
  check_finished(p);
  OWNER_HOOK(p, exited);
  agent_process_unref(p);
}

/* The setup of p failed: message from the child. */
static void setup_failed(AgentProcess *p, const char *msg) {
  g_autoptr(GError) err = g_error_new(KV_ERROR_DOMAIN, KV_E_IO, "%s: %s", p->label, msg);
  agent_debug("%s", err->message);
  if (p->pending_call != NULL)
    agent_call_complete(p->pending_call, NULL, err);
  AgentPending what = p->pending;
  agent_process_clear_pending(p);
  /* Nobody will read the output of a process that never ran. */
  abort_streams(p);
  OWNER_HOOK(p, setup_failed, what);
}

static void setup_succeeded(AgentProcess *p, gboolean ready) {
  AgentPending what = p->pending;
  /* A create is answered at "R", a start or exec at execve (end of file). */
  if (what == AGENT_PENDING_NONE || (what == AGENT_PENDING_CREATE) != ready) {
    check_finished(p);
    return;
  }
  OWNER_HOOK(p, setup_done, what);
  KvPidResult r = {.pid = p->pid};
  if (p->pending_call != NULL)
    agent_call_complete(p->pending_call, what == AGENT_PENDING_START ? NULL : &r, NULL);
  agent_process_clear_pending(p);
  check_finished(p);
}

/* The process's terminal master arrived: its streams can start. */
static void set_pty(AgentProcess *p, int master) {
  if (p->pty >= 0 || p->exited) {
    close(master);
    return;
  }
  p->pty = master;
  for (int i = 0; i < 2; i++) {
    if (p->streams[i] != NULL)
      agent_stream_set_fd(p->streams[i], fcntl(master, F_DUPFD_CLOEXEC, 3));
  }
}

/* Reads the status socket: "T" (+ a pty master), "R", "E<message>" then
 * end of file, or end of file alone (execve done); see launch.h. */
static gboolean on_status(gint fd, GIOCondition cond, gpointer user) {
  AgentProcess *p = user;
  char buf[1024];
  union {
    char buf[CMSG_SPACE(4 * sizeof(int))];
    struct cmsghdr align;
  } u;
  struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  do
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN)
    return G_SOURCE_CONTINUE;
  int fds[4];
  int nfds = 0;
  for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm != NULL;
       cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < k; i++) {
      int rfd;
      memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      if (nfds < (int)G_N_ELEMENTS(fds))
        fds[nfds++] = rfd;
      else
        close(rfd);
    }
  }
  if (n > 0) {
    int used = 0;
    if (p->status_buf->len < 4096)
      g_string_append_len(p->status_buf, buf, n);
    /* Everything up to an "E" is a one-byte report. */
    while (p->status_buf->len > 0 && p->status_buf->str[0] != 'E') {
      char kind = p->status_buf->str[0];
      g_string_erase(p->status_buf, 0, 1);
      if (kind == 'T' && used < nfds)
        set_pty(p, fds[used++]);
      else if (kind == 'R')
        setup_succeeded(p, TRUE);
    }
    while (used < nfds)
      close(fds[used++]);
    return G_SOURCE_CONTINUE;
  }
  /* End of file (or an error, which means the same here). */
  p->status_watch = 0;
  close(p->status_fd);
  p->status_fd = -1;
  g_autoptr(AgentProcess) hold G_GNUC_UNUSED = p; /* the watch's reference */
  if (p->status_buf->len > 0 && p->status_buf->str[0] == 'E') {
    setup_failed(p, p->status_buf->str + 1);
  } else if (p->pending == AGENT_PENDING_CREATE) {
    /* Killed during setup, before it could say anything. */
    g_autofree char *msg = g_strdup_printf("the container process died during setup (%s)",
                                           p->exited ? "see its exit code" : "no report");
    setup_failed(p, msg);
  } else {
    setup_succeeded(p, FALSE);
  }
  return G_SOURCE_REMOVE;
}

void agent_process_launched(AgentProcess *p, pid_t pid, int status_fd, AgentPending pending,
                            AgentCall *call) {
  p->pid = pid;
  agent_child_watch(pid, on_process_exit, agent_process_ref(p));
  p->status_fd = status_fd;
  p->status_buf = g_string_new(NULL);
  g_unix_set_fd_nonblocking(status_fd, TRUE, NULL);
  p->status_watch =
      g_unix_fd_add(status_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_status, agent_process_ref(p));
  p->pending = pending;
  p->pending_call = agent_call_defer(call);
}

/* ---- stdio ---- */

void agent_stdio_ids(const KvStreams *s, guint32 ids[3]) {
  ids[0] = s->stdin_id;
  ids[1] = s->stdout_id;
  ids[2] = s->stderr_id;
}

static int open_null(GError **error) {
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "open /dev/null: %s", g_strerror(e));
  }
  return fd;
}

gboolean agent_stdio_prepare(const KvOciProcess *proc, const guint32 ids[3], AgentStdio *io,
                             GError **error) {
  *io = (AgentStdio){.child = {-1, -1, -1}, .ours = {-1, -1, -1}};
  for (int i = 0; i < 3 && proc->terminal; i++) {
    /* Placeholders until the process has its pty (launch.h). */
    io->child[i] = open_null(error);
    if (io->child[i] < 0) {
      agent_stdio_clear(io);
      return FALSE;
    }
  }
  if (proc->terminal)
    return TRUE;
  for (int i = 0; i < 3; i++) {
    if (ids[i] == 0) {
      io->child[i] = open_null(error);
      if (io->child[i] < 0) {
        agent_stdio_clear(io);
        return FALSE;
      }
      continue;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
      int e = errno;
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "pipe: %s", g_strerror(e));
      agent_stdio_clear(io);
      return FALSE;
    }
    /* A bigger pipe lets a fast writer hand over more per wake-up (each
     * switch between writer and agent flushes the TCG TLB) and lets the
     * agent send full 1 MiB frames, several per wake-up. Its pages exist
     * only while the host falls behind; best effort (the default size
     * works too). */
    if (i > 0 && fcntl(p[0], F_SETPIPE_SZ, AGENT_PIPE_SIZE) < 0)
      agent_debug("F_SETPIPE_SZ: %s", g_strerror(errno));
    /* stdin: the child reads p[0]; outputs: the child writes p[1]. */
    io->child[i] = i == 0 ? p[0] : p[1];
    io->ours[i] = i == 0 ? p[1] : p[0];
  }
  return TRUE;
}

void agent_stdio_attach(AgentStdio *io, AgentProcess *p, KvConn *conn, const guint32 ids[3],
                        gboolean terminal) {
  if (io->ours[0] >= 0 || (terminal && ids[0] != 0)) {
    AgentStream *s = agent_stream_new_input(conn, ids[0], io->ours[0], terminal, on_stream_done, p);
    io->ours[0] = -1;
    attach_stream(p, 0, s);
  }
  for (int i = 1; i < 3; i++) {
    /* A terminal's output is read even when nobody asked for it (id 0):
     * the process would block on a full pty otherwise. */
    gboolean want = terminal ? i == 1 : io->ours[i] >= 0;
    if (!want)
      continue;
    AgentStream *s =
        agent_stream_new_output(conn, ids[i], io->ours[i], terminal, on_stream_done, p);
    io->ours[i] = -1;
    attach_stream(p, i, s);
  }
  /* A terminal has no separate stderr; a host that opened one anyway
   * gets its end at once rather than waiting forever. */
  if (terminal && ids[2] != 0)
    kv_conn_send(conn, KV_FRAME_EOF, ids[2], NULL, 0, NULL);
}

void agent_stdio_clear(AgentStdio *io) {
  for (int i = 0; i < 3; i++) {
    if (io->child[i] >= 0)
      close(io->child[i]);
    if (io->ours[i] >= 0)
      close(io->ours[i]);
    io->child[i] = io->ours[i] = -1;
  }
}

/* ---- environment ---- */

char **agent_process_envp(const KvOciProcess *proc, const char *rootfs, const char *home_of_uid,
                          uid_t uid) {
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  g_strv_builder_addv(b, (const char **)proc->env);
  if (kv_ocispec_env_get(proc->env, "HOME") == NULL) {
    g_autofree char *looked_up = NULL;
    const char *home = home_of_uid;
    if (home == NULL || proc->uid != uid)
      home = looked_up = agent_home_of(rootfs, proc->uid);
    g_autofree char *kv = g_strconcat("HOME=", home, NULL);
    g_strv_builder_add(b, kv);
  }
  return g_strv_builder_end(b);
}
