/* agent/exec.c: stdio plumbing of processes, and the exec, wait, signal
 * and resize methods (see container.h).
 */
#include "container.h"
#include "log.h"
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* ---- stdio ---- */

gboolean agent_stdio_parse_ids(JsonObject *params, guint32 ids[3], GError **error) {
  static const char *const names[3] = {"stdin", "stdout", "stderr"};
  ids[0] = ids[1] = ids[2] = 0;
  JsonNode *n = json_object_get_member(params, "streams");
  if (n == NULL || JSON_NODE_HOLDS_NULL(n))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT(n)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "params.streams must be an object");
    return FALSE;
  }
  JsonObject *o = json_node_get_object(n);
  for (int i = 0; i < 3; i++) {
    if (!agent_json_get_u32(o, names[i], "params.streams", &ids[i], error))
      return FALSE;
  }
  return TRUE;
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
    AgentStream *s = agent_stream_new_input(conn, ids[0], io->ours[0], terminal,
                                            agent_process_on_stream_done, p);
    io->ours[0] = -1;
    agent_process_attach_stream(p, 0, s);
  }
  for (int i = 1; i < 3; i++) {
    /* A terminal's output is read even when nobody asked for it (id 0):
     * the process would block on a full pty otherwise. */
    gboolean want = terminal ? i == 1 : io->ours[i] >= 0;
    if (!want)
      continue;
    AgentStream *s = agent_stream_new_output(conn, ids[i], io->ours[i], terminal,
                                             agent_process_on_stream_done, p);
    io->ours[i] = -1;
    agent_process_attach_stream(p, i, s);
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

/* ---- exec ---- */

/* The namespaces to join, in the order setns wants them: the mount
 * namespace last, since it changes our root. */
static const struct {
  int flag;
  const char *name;
} ns_order[] = {
    {CLONE_NEWIPC, "ipc"}, {CLONE_NEWUTS, "uts"}, {CLONE_NEWCGROUP, "cgroup"},
    {CLONE_NEWPID, "pid"}, {CLONE_NEWNS, "mnt"},
};

static void close_ns(AgentLaunch *l) {
  for (int i = 0; i < l->n_ns; i++)
    close(l->ns_fds[i]);
  l->n_ns = 0;
}

static gboolean open_ns(AgentContainer *ct, AgentLaunch *l, GError **error) {
  for (gsize i = 0; i < G_N_ELEMENTS(ns_order); i++) {
    if (!(ct->spec->namespaces & ns_order[i].flag))
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%d/ns/%s", (int)ct->init->pid, ns_order[i].name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      close_ns(l);
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is not running (%s: %s)",
                  ct->id, path, g_strerror(e));
      return FALSE;
    }
    l->ns_fds[l->n_ns] = fd;
    l->ns_types[l->n_ns] = ns_order[i].flag;
    l->n_ns++;
  }
  return TRUE;
}

static gboolean exec_process(KvConn *c, guint32 id, JsonObject *params, GError **error) {
  const char *cid = agent_json_get_id(params, "container", error);
  AgentContainer *ct = cid != NULL ? agent_container_lookup(cid, error) : NULL;
  if (ct == NULL)
    return FALSE;
  const char *eid = agent_json_get_id(params, "exec_id", error);
  if (eid == NULL)
    return FALSE;
  if (ct->removing || ct->init->exited ||
      (ct->status != AGENT_CONTAINER_CREATED && ct->status != AGENT_CONTAINER_RUNNING)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is not running (%s)", cid,
                ct->removing                             ? "being removed"
                : ct->status == AGENT_CONTAINER_CREATING ? "being created"
                                                         : "stopped");
    return FALSE;
  }
  AgentProcess *old = g_hash_table_lookup(ct->execs, eid);
  if (old != NULL && !old->finished) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS,
                "container %s already runs a process with exec_id \"%s\"", cid, eid);
    return FALSE;
  }
  JsonNode *pn = json_object_get_member(params, "process");
  if (pn == NULL || !JSON_NODE_HOLDS_OBJECT(pn)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "params.process must be an OCI process object");
    return FALSE;
  }
  g_autoptr(KvOciProcess) proc =
      kv_ocispec_process_parse(json_node_get_object(pn), ct->spec->process, "exec: process", error);
  if (proc == NULL)
    return FALSE;
  guint32 ids[3];
  if (!agent_stdio_parse_ids(params, ids, error) || !agent_streams_check_free(c, ids, 3, error))
    return FALSE;

  AgentLaunch l = {.cgroup_procs_fd = -1, .start_fd = -1};
  if (!open_ns(ct, &l, error))
    return FALSE;
  l.cgroup_procs_fd = agent_cgroup_open_procs(ct->cgroup, error);
  if (l.cgroup_procs_fd < 0) {
    close_ns(&l);
    return FALSE;
  }
  AgentStdio io;
  if (!agent_stdio_prepare(proc, ids, &io, error)) {
    close_ns(&l);
    close(l.cgroup_procs_fd);
    return FALSE;
  }
  g_auto(GStrv) envp = agent_process_envp(proc, ct->rootfs, ct->home, ct->home_uid);
  for (int i = 0; i < 3; i++)
    l.stdio[i] = io.child[i];
  l.terminal = proc->terminal;
  l.proc = proc;
  l.envp = envp;
  l.path_env = kv_ocispec_env_get(proc->env, "PATH");
  l.seccomp = ct->seccomp;
  l.last_cap = agent_launch_last_cap();
  int status_fd = -1;
  pid_t pid = agent_launch(&l, &status_fd, error);
  close_ns(&l);
  close(l.cgroup_procs_fd);
  if (pid < 0) {
    g_prefix_error(error, "exec %s in container %s: ", eid, cid);
    agent_stdio_clear(&io);
    return FALSE;
  }
  AgentProcess *p = agent_process_new(ct, eid);
  g_hash_table_replace(ct->execs, g_strdup(eid), p);
  agent_stdio_attach(&io, p, c, ids, proc->terminal);
  agent_stdio_clear(&io);
  agent_process_launched(p, pid, status_fd, AGENT_PENDING_EXEC, c, id);
  agent_debug("exec %s in %s: pid %d", eid, cid, (int)pid);
  return TRUE;
}

void agent_m_exec(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  if (!exec_process(c, id, params, &err))
    agent_rpc_reply_error(c, id, err);
}

/* ---- wait, signal, resize ---- */

/* The process named by params (container, exec_id or absent). */
static AgentProcess *find_process(JsonObject *params, GError **error) {
  const char *cid = agent_json_get_id(params, "container", error);
  AgentContainer *ct = cid != NULL ? agent_container_lookup(cid, error) : NULL;
  if (ct == NULL)
    return NULL;
  JsonNode *n = json_object_get_member(params, "exec_id");
  if (n == NULL || JSON_NODE_HOLDS_NULL(n))
    return ct->init;
  const char *eid = agent_json_get_id(params, "exec_id", error);
  if (eid == NULL)
    return NULL;
  AgentProcess *p = g_hash_table_lookup(ct->execs, eid);
  if (p == NULL)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND,
                "no process with exec_id \"%s\" in container %s", eid, cid);
  return p;
}

void agent_m_wait(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  AgentProcess *p = find_process(params, &err);
  if (p == NULL) {
    agent_rpc_reply_error(c, id, err);
    return;
  }
  agent_process_wait(p, c, id);
}

void agent_m_signal(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  AgentProcess *p = find_process(params, &err);
  gint64 sig = 0;
  if (p == NULL || !agent_json_get_int(params, "signal", 1, SIGRTMAX, TRUE, &sig, &err)) {
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (p->exited || p->pid <= 0) {
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_STATE, "the process has already exited");
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (kill(p->pid, (int)sig) < 0 && errno != ESRCH) {
    int e = errno;
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_IO, "kill: %s", g_strerror(e));
    agent_rpc_reply_error(c, id, err);
    return;
  }
  kv_conn_reply(c, id, NULL);
}

void agent_m_resize(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  AgentProcess *p = find_process(params, &err);
  gint64 rows = 0, cols = 0;
  if (p == NULL || !agent_json_get_int(params, "rows", 1, G_MAXUINT16, TRUE, &rows, &err) ||
      !agent_json_get_int(params, "cols", 1, G_MAXUINT16, TRUE, &cols, &err)) {
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (p->pty < 0) {
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_STATE,
                p->exited ? "the process has already exited" : "the process has no terminal");
    agent_rpc_reply_error(c, id, err);
    return;
  }
  /* The kernel sends SIGWINCH to the terminal's foreground group. */
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(p->pty, TIOCSWINSZ, &ws) < 0) {
    int e = errno;
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_IO, "resize: %s", g_strerror(e));
    agent_rpc_reply_error(c, id, err);
    return;
  }
  kv_conn_reply(c, id, NULL);
}
