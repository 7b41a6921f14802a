/* agent/exec.c: the exec, wait, signal and resize methods (see exec.h). */
#include "exec.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

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

gboolean agent_m_exec(AgentCall *call, const KvExecParams *params, KvPidResult *r, GError **error) {
  KvConn *c = agent_call_conn(call);
  const char *cid = params->container_id, *eid = params->exec_id;
  AgentContainer *ct = agent_container_lookup(cid, error);
  if (ct == NULL)
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
  g_autoptr(KvOciProcess) proc =
      kv_ocispec_process_parse(params->process, ct->spec->process, "exec: process", error);
  if (proc == NULL)
    return FALSE;
  guint32 ids[3];
  agent_stdio_ids(&params->streams, ids);
  if (!agent_streams_check_free(c, ids, 3, error))
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
  AgentProcess *p = agent_container_add_exec(ct, eid);
  agent_stdio_attach(&io, p, c, ids, proc->terminal);
  agent_stdio_clear(&io);
  agent_process_launched(p, pid, status_fd, AGENT_PENDING_EXEC, call);
  agent_debug("exec %s in %s: pid %d", eid, cid, (int)pid);
  return TRUE;
}

/* ---- wait, signal, resize ---- */

/* The process named by (container, exec_id or NULL). */
static AgentProcess *find_process(const char *cid, const char *eid, GError **error) {
  AgentContainer *ct = agent_container_lookup(cid, error);
  if (ct == NULL)
    return NULL;
  if (eid == NULL)
    return ct->init;
  AgentProcess *p = g_hash_table_lookup(ct->execs, eid);
  if (p == NULL)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND,
                "no process with exec_id \"%s\" in container %s", eid, cid);
  return p;
}

gboolean agent_m_wait(AgentCall *call, const KvProcessRef *params, KvWaitResult *r,
                      GError **error) {
  AgentProcess *p = find_process(params->container_id, params->exec_id, error);
  if (p == NULL)
    return FALSE;
  agent_process_wait(p, call, r);
  return TRUE;
}

gboolean agent_m_signal(AgentCall *call, const KvSignalParams *params, KvEmpty *r, GError **error) {
  AgentProcess *p = find_process(params->container_id, params->exec_id, error);
  if (p == NULL)
    return FALSE;
  if (params->signal > SIGRTMAX) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "signal: signal is %d; allowed are 1..%d",
                (int)params->signal, SIGRTMAX);
    return FALSE;
  }
  if (p->exited || p->pid <= 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "the process has already exited");
    return FALSE;
  }
  if (kill(p->pid, (int)params->signal) < 0 && errno != ESRCH) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "kill: %s", g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

gboolean agent_m_resize(AgentCall *call, const KvResizeParams *params, KvEmpty *r, GError **error) {
  AgentProcess *p = find_process(params->container_id, params->exec_id, error);
  if (p == NULL)
    return FALSE;
  if (p->pty < 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE,
                p->exited ? "the process has already exited" : "the process has no terminal");
    return FALSE;
  }
  /* The kernel sends SIGWINCH to the terminal's foreground group. */
  struct winsize ws = {.ws_row = (unsigned short)params->rows,
                       .ws_col = (unsigned short)params->cols};
  if (ioctl(p->pty, TIOCSWINSZ, &ws) < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "resize: %s", g_strerror(e));
    return FALSE;
  }
  return TRUE;
}
