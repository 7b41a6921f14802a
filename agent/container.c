/* agent/container.c: the container registry, the life cycle of processes
 * and the container_* methods (see container.h).
 */
#include "container.h"
#include "boot.h"
#include "log.h"
#include "rpc.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <linux/openat2.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* container_remove: how often to look whether the processes are gone, and
 * for how long. */
#define REMOVE_POLL_MS 20
#define REMOVE_TIMEOUT_US (10 * G_USEC_PER_SEC)
/* Finished execs kept per container for late waits, oldest dropped. */
#define KEEP_FINISHED_EXECS 128

static GHashTable *containers; /* id -> AgentContainer* */

/* The protocol knows no "creating": a container being set up is created
 * as far as the host is concerned (its create has not been answered). */
static const char *const status_names[] = {"created", "created", "running", "stopped"};

AgentContainer *agent_container_lookup(const char *id, GError **error) {
  AgentContainer *ct = containers != NULL ? g_hash_table_lookup(containers, id) : NULL;
  if (ct == NULL)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND, "no container \"%s\" in this sandbox", id);
  return ct;
}

/* ---- waiters ---- */

typedef struct {
  KvConn *conn;
  guint32 id;
} Waiter;

static void waiter_free(Waiter *w) {
  kv_conn_unref(w->conn);
  g_free(w);
}

/* ---- processes ---- */

AgentProcess *agent_process_new(AgentContainer *c, const char *exec_id) {
  AgentProcess *p = g_new0(AgentProcess, 1);
  p->ref = 1;
  p->container = c;
  p->exec_id = g_strdup(exec_id);
  p->pid = -1;
  p->pty = -1;
  p->status_fd = -1;
  p->waiters = g_ptr_array_new_with_free_func((GDestroyNotify)waiter_free);
  return p;
}

AgentProcess *agent_process_ref(AgentProcess *p) {
  g_atomic_int_inc(&p->ref);
  return p;
}

static void clear_pending(AgentProcess *p) {
  p->pending = AGENT_PENDING_NONE;
  g_clear_pointer(&p->pending_conn, kv_conn_unref);
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
  clear_pending(p);
  if (p->pty >= 0)
    close(p->pty);
  g_ptr_array_unref(p->waiters);
  g_free(p->exec_id);
  g_free(p);
}

static const char *process_name(AgentProcess *p, char *buf, gsize len) {
  if (p->exec_id != NULL)
    g_snprintf(buf, len, "exec %s", p->exec_id);
  else
    g_snprintf(buf, len, "container %s", p->container != NULL ? p->container->id : "?");
  return buf;
}

static void reply_exit(AgentProcess *p, KvConn *conn, guint32 id) {
  g_autoptr(JsonObject) r = json_object_new();
  json_object_set_int_member(r, "exit_code", p->exit_code);
  json_object_set_int_member(r, "signal", p->signal);
  kv_conn_reply(conn, id, r);
}

static void forget_finished_exec(AgentContainer *ct, AgentProcess *p) {
  g_queue_push_tail(&ct->finished, g_strdup(p->exec_id));
  while (g_queue_get_length(&ct->finished) > KEEP_FINISHED_EXECS) {
    g_autofree char *old = g_queue_pop_head(&ct->finished);
    AgentProcess *q = g_hash_table_lookup(ct->execs, old);
    if (q != NULL && q->finished)
      g_hash_table_remove(ct->execs, old);
  }
}

static void container_remove_progress(AgentContainer *ct);

static void check_finished(AgentProcess *p) {
  if (p->finished || !p->exited || p->outputs_open > 0 || p->pending != AGENT_PENDING_NONE)
    return;
  p->finished = TRUE;
  char name[96];
  agent_debug("%s (pid %d) finished: exit code %d", process_name(p, name, sizeof name), (int)p->pid,
              p->exit_code);
  g_autoptr(GPtrArray) waiters = g_steal_pointer(&p->waiters);
  p->waiters = g_ptr_array_new_with_free_func((GDestroyNotify)waiter_free);
  for (guint i = 0; i < waiters->len; i++) {
    Waiter *w = waiters->pdata[i];
    reply_exit(p, w->conn, w->id);
  }
  if (p->container != NULL && p->exec_id != NULL)
    forget_finished_exec(p->container, p);
}

void agent_process_wait(AgentProcess *p, KvConn *conn, guint32 id) {
  if (p->finished) {
    reply_exit(p, conn, id);
    return;
  }
  Waiter *w = g_new0(Waiter, 1);
  w->conn = kv_conn_ref(conn);
  w->id = id;
  g_ptr_array_add(p->waiters, w);
}

void agent_process_on_stream_done(AgentStream *s, gpointer user) {
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

void agent_process_attach_stream(AgentProcess *p, int slot, AgentStream *s) {
  p->streams[slot] = s;
  if (slot > 0)
    p->outputs_open++;
  agent_process_ref(p); /* released by on_stream_done */
}

void agent_process_abort_streams(AgentProcess *p) {
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
  char name[96];
  agent_debug("%s (pid %d) exited: %d", process_name(p, name, sizeof name), (int)pid, p->exit_code);
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
  AgentContainer *ct = p->container;
  if (ct != NULL && ct->init == p) {
    ct->status = AGENT_CONTAINER_STOPPED;
    if (ct->start_fd >= 0) {
      close(ct->start_fd);
      ct->start_fd = -1;
    }
  }
  check_finished(p);
  if (ct != NULL && ct->removing)
    container_remove_progress(ct);
  agent_process_unref(p);
}

/* The setup of p failed: message from the child. */
static void setup_failed(AgentProcess *p, const char *msg) {
  AgentContainer *ct = p->container;
  g_autoptr(GError) err = NULL;
  if (p->pending == AGENT_PENDING_EXEC)
    err = g_error_new(KV_ERROR_DOMAIN, KV_E_IO, "exec %s in container %s: %s", p->exec_id,
                      ct != NULL ? ct->id : "?", msg);
  else
    err = g_error_new(KV_ERROR_DOMAIN, KV_E_IO, "container %s: %s", ct != NULL ? ct->id : "?", msg);
  agent_debug("%s", err->message);
  if (p->pending_conn != NULL)
    agent_rpc_reply_error(p->pending_conn, p->pending_id, err);
  AgentPending what = p->pending;
  clear_pending(p);
  /* Nobody will read the output of a process that never ran. */
  agent_process_abort_streams(p);
  if (ct == NULL)
    return;
  if (what == AGENT_PENDING_EXEC) {
    AgentProcess *cur = g_hash_table_lookup(ct->execs, p->exec_id);
    if (cur == p)
      g_hash_table_remove(ct->execs, p->exec_id);
    p->container = NULL;
  } else if (what == AGENT_PENDING_CREATE) {
    /* A container that failed to create does not exist; its cgroup goes
     * once the process has exited. */
    g_hash_table_steal(containers, ct->id);
    ct->removing = TRUE;
    ct->remove_deadline = g_get_monotonic_time() + REMOVE_TIMEOUT_US;
    container_remove_progress(ct);
  }
}

static void setup_succeeded(AgentProcess *p, gboolean ready) {
  AgentContainer *ct = p->container;
  KvConn *conn = p->pending_conn;
  guint32 id = p->pending_id;
  switch (p->pending) {
  case AGENT_PENDING_CREATE:
    if (!ready)
      return;
    ct->status = AGENT_CONTAINER_CREATED;
    {
      g_autoptr(JsonObject) r = json_object_new();
      json_object_set_int_member(r, "pid", p->pid);
      kv_conn_reply(conn, id, r);
    }
    agent_debug("container %s created (pid %d)", ct->id, (int)p->pid);
    clear_pending(p);
    break;
  case AGENT_PENDING_START:
    if (ready)
      return;
    if (ct != NULL && ct->status == AGENT_CONTAINER_CREATED)
      ct->status = AGENT_CONTAINER_RUNNING;
    kv_conn_reply(conn, id, NULL);
    clear_pending(p);
    break;
  case AGENT_PENDING_EXEC:
    if (ready)
      return;
    {
      g_autoptr(JsonObject) r = json_object_new();
      json_object_set_int_member(r, "pid", p->pid);
      kv_conn_reply(conn, id, r);
    }
    clear_pending(p);
    break;
  default:
    break;
  }
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
                            KvConn *conn, guint32 id) {
  p->pid = pid;
  agent_child_watch(pid, on_process_exit, agent_process_ref(p));
  p->status_fd = status_fd;
  p->status_buf = g_string_new(NULL);
  g_unix_set_fd_nonblocking(status_fd, TRUE, NULL);
  p->status_watch =
      g_unix_fd_add(status_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_status, agent_process_ref(p));
  p->pending = pending;
  p->pending_conn = kv_conn_ref(conn);
  p->pending_id = id;
}

/* ---- containers ---- */

static void container_free(AgentContainer *ct) {
  if (ct->remove_timer != 0)
    g_source_remove(ct->remove_timer);
  g_clear_pointer(&ct->remove_conn, kv_conn_unref);
  if (ct->start_fd >= 0)
    close(ct->start_fd);
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init(&it, ct->execs);
  while (g_hash_table_iter_next(&it, NULL, &v))
    ((AgentProcess *)v)->container = NULL;
  g_hash_table_unref(ct->execs);
  g_queue_clear_full(&ct->finished, g_free);
  if (ct->init != NULL) {
    ct->init->container = NULL;
    agent_process_unref(ct->init);
  }
  for (guint i = 0; i < ct->n_path_pins; i++)
    close(ct->path_pins[i]);
  kv_ocispec_free(ct->spec);
  agent_seccomp_free(ct->seccomp);
  g_free(ct->rootfs);
  g_free(ct->home);
  g_free(ct->cgroup);
  g_free(ct->id);
  g_free(ct);
}

static gboolean remove_poll(gpointer user) {
  AgentContainer *ct = user;
  ct->remove_timer = 0;
  container_remove_progress(ct);
  return G_SOURCE_REMOVE;
}

/* Removal goes on until the main process was reaped and the cgroup is
 * empty; then the cgroup is removed (the mounts went with the mount
 * namespace, when its last process exited) and the container freed. */
static void container_remove_progress(AgentContainer *ct) {
  gboolean init_gone = ct->init == NULL || ct->init->pid < 0 || ct->init->exited;
  gboolean empty = ct->cgroup == NULL || !agent_cgroup_populated(ct->cgroup);
  if (!init_gone || !empty) {
    if (g_get_monotonic_time() > ct->remove_deadline) {
      g_autoptr(GError) err =
          g_error_new(KV_ERROR_DOMAIN, KV_E_IO,
                      "container %s: its processes did not exit after SIGKILL", ct->id);
      agent_error("%s", err->message);
      if (ct->remove_conn != NULL)
        agent_rpc_reply_error(ct->remove_conn, ct->remove_id, err);
      g_clear_pointer(&ct->remove_conn, kv_conn_unref);
      ct->removing = FALSE;
      return;
    }
    if (ct->remove_timer == 0)
      ct->remove_timer = g_timeout_add(REMOVE_POLL_MS, remove_poll, ct);
    return;
  }
  if (ct->remove_timer != 0) {
    g_source_remove(ct->remove_timer);
    ct->remove_timer = 0;
  }
  if (ct->cgroup != NULL) {
    g_autoptr(GError) err = NULL;
    if (!agent_cgroup_remove(ct->cgroup, &err))
      agent_error("%s", err->message);
  }
  agent_debug("container %s removed", ct->id);
  if (ct->remove_conn != NULL)
    kv_conn_reply(ct->remove_conn, ct->remove_id, NULL);
  /* Failed creates were taken out of the table already. */
  if (containers != NULL && g_hash_table_lookup(containers, ct->id) == ct)
    g_hash_table_steal(containers, ct->id);
  container_free(ct);
}

static JsonObject *container_state(AgentContainer *ct) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, "id", ct->id);
  json_object_set_string_member(o, "status", status_names[ct->status]);
  json_object_set_int_member(o, "pid", ct->init != NULL ? ct->init->pid : 0);
  if (ct->status == AGENT_CONTAINER_STOPPED && ct->init != NULL)
    json_object_set_int_member(o, "exit_code", ct->init->exit_code);
  return o;
}

/* HOME from the rootfs's /etc/passwd, like runc. The file is opened with
 * the rootfs as its root (openat2 RESOLVE_IN_ROOT): a symlink in the image
 * cannot make the agent read one of the guest's own files. */
static char *home_of(const char *rootfs, uid_t uid) {
  int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    return NULL;
  struct open_how how = {
      .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  int fd = (int)syscall(SYS_openat2, root, "etc/passwd", &how, sizeof how);
  close(root);
  if (fd < 0)
    return NULL;
  struct stat st;
  g_autofree char *text = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= 1024 * 1024) {
    text = g_malloc((gsize)st.st_size + 1);
    gsize got = 0;
    while (got < (gsize)st.st_size) {
      ssize_t n = read(fd, text + got, (gsize)st.st_size - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += (gsize)n;
    }
    text[got] = '\0';
  }
  close(fd);
  if (text == NULL)
    return NULL;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l != NULL; l++) {
    g_auto(GStrv) f = g_strsplit(*l, ":", 7);
    if (g_strv_length(f) >= 6 && f[2][0] != '\0' && g_ascii_strtoull(f[2], NULL, 10) == uid)
      return g_strdup(f[5]);
  }
  return NULL;
}

/* openat2 calls pin_container_path() makes at most. */
#define AGENT_PATH_PIN_TRIES 48

/* Looking a command up by PATH costs one 9p round trip per component of
 * each directory tried: the share is mounted uncached (cache=none; Kata's
 * cache=mmap looks up the same way), so v9fs drops a directory's dentry as
 * soon as nothing uses it, and the next lookup walks it again from the
 * root. An exec of `dd` tries five directories before /bin: ~35 round
 * trips, ~12 ms of each exec under TCG.
 *
 * Holding each PATH directory open (O_PATH) keeps its dentry and those of
 * its parents in the guest's dcache, so a lookup there walks only the
 * last name. Nothing else is cached: a dentry in use is what a process's
 * working directory holds too, v9fs does not revalidate either, and QEMU
 * resolves a 9p fid by its path name, so files added to or removed from a
 * pinned directory on the host are seen at once, and so is a directory
 * removed and made again. A directory that does not exist pins its deepest
 * existing ancestor (a later mkdir there is seen). Opened with the rootfs as
 * root (openat2 RESOLVE_IN_ROOT), as an exec's lookups resolve; the
 * container's own mounts over these directories still win in its mount
 * namespace, since they are crossed at each lookup. Closed with the
 * container, and never inherited (O_CLOEXEC; launch closes the rest). */
static void pin_path_dirs(AgentContainer *ct, int root, const char *path, guint *tries,
                          GHashTable *done) {
  g_auto(GStrv) dirs = g_strsplit(path, ":", -1);
  for (char **d = dirs; *d != NULL; d++) {
    /* Relative entries are relative to a process's cwd: not pinned. */
    if ((*d)[0] != '/')
      continue;
    g_autofree char *rel = g_strdup(*d + strspn(*d, "/"));
    /* Each try walks over 9p: a PATH of many deep, missing directories
     * must not hold up the create. A directory already pinned (or an
     * ancestor two missing directories share) is not opened again. */
    while (rel[0] != '\0' && ct->n_path_pins < AGENT_PATH_PINS_MAX &&
           !g_hash_table_contains(done, rel) && (*tries)++ < AGENT_PATH_PIN_TRIES) {
      g_hash_table_add(done, g_strdup(rel));
      struct open_how how = {
          .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
      };
      int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
      if (fd >= 0) {
        ct->path_pins[ct->n_path_pins++] = fd;
        break;
      }
      if (errno != ENOENT && errno != ENOTDIR)
        break;
      char *slash = strrchr(rel, '/');
      if (slash == NULL)
        break; /* the root itself is the container's root: in use */
      *slash = '\0';
    }
  }
}

static void pin_container_path(AgentContainer *ct) {
  int root = open(ct->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    return;
  const char *path = kv_ocispec_env_get(ct->spec->process->env, "PATH");
  guint tries = 0;
  g_autoptr(GHashTable) done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  if (path != NULL)
    pin_path_dirs(ct, root, path, &tries, done);
  /* An exec whose environment names no PATH searches the default one. */
  pin_path_dirs(ct, root, AGENT_DEFAULT_PATH, &tries, done);
  close(root);
  agent_debug("container %s: %u PATH directories pinned", ct->id, ct->n_path_pins);
}

char *agent_home_of(const char *rootfs, uid_t uid) {
  char *home = home_of(rootfs, uid);
  if (home == NULL || *home == '\0') {
    g_free(home);
    return g_strdup("/");
  }
  return home;
}

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

/* The agent must reap what it launches even when it is not PID 1 (the
 * test mode): orphaned grandchildren come to a subreaper. */
static void ensure_reaper(void) {
  static gboolean done;
  if (!done && getpid() != 1)
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  done = TRUE;
}

static char **resolve_bind_sources(const KvOciSpec *spec, const char *rootfs) {
  /* Relative sources are relative to the bundle, the rootfs's parent, as
   * OCI puts it; absolute ones are guest paths (the host shares them). */
  g_autofree char *bundle = g_path_get_dirname(rootfs);
  char **out = g_new0(char *, spec->mounts->len + 1);
  for (guint i = 0; i < spec->mounts->len; i++) {
    const KvOciMount *m = g_ptr_array_index(spec->mounts, i);
    if (!m->bind)
      out[i] = g_strdup("");
    else if (g_path_is_absolute(m->source))
      out[i] = g_strdup(m->source);
    else
      out[i] = g_build_filename(bundle, m->source, NULL);
  }
  return out;
}

static gboolean create_container(KvConn *c, guint32 id, JsonObject *params, GError **error) {
  const char *cid = agent_json_get_id(params, "id", error);
  if (cid == NULL)
    return FALSE;
  if (containers != NULL && g_hash_table_contains(containers, cid)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS,
                "a container \"%s\" already exists in this sandbox", cid);
    return FALSE;
  }
  JsonNode *spec_node = json_object_get_member(params, "spec");
  if (spec_node == NULL || !JSON_NODE_HOLDS_OBJECT(spec_node)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "params.spec must be an OCI runtime spec object");
    return FALSE;
  }
  g_autoptr(KvOciSpec) spec = kv_ocispec_parse(json_node_get_object(spec_node), error);
  if (spec == NULL)
    return FALSE;

  const char *rootfs_param = NULL;
  if (!agent_json_get_opt_string(params, "rootfs", &rootfs_param, error))
    return FALSE;
  g_autofree char *rootfs =
      rootfs_param != NULL && *rootfs_param != '\0'
          ? g_strdup(rootfs_param)
          : g_build_filename(KV_GUEST_SHARED_DIR, "containers", cid, "rootfs", NULL);
  if (!g_path_is_absolute(rootfs)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "params.rootfs must be an absolute guest path");
    return FALSE;
  }
  struct stat st;
  if (stat(rootfs, &st) < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND, "rootfs %s: %s", rootfs, g_strerror(e));
    return FALSE;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "rootfs %s is not a directory", rootfs);
    return FALSE;
  }

  g_autoptr(AgentSeccomp) seccomp = NULL;
  if (spec->seccomp != NULL) {
    seccomp = agent_seccomp_compile(spec->seccomp, error);
    if (seccomp == NULL)
      return FALSE;
  }

  guint32 ids[3];
  if (!agent_stdio_parse_ids(params, ids, error) || !agent_streams_check_free(c, ids, 3, error))
    return FALSE;

  /* From here on every failure undoes what was made before it. */
  g_autofree char *cgroup = agent_cgroup_create(cid, &spec->resources, error);
  if (cgroup == NULL)
    return FALSE;
  int procs = agent_cgroup_open_procs(cgroup, error);
  if (procs < 0) {
    agent_cgroup_remove(cgroup, NULL);
    return FALSE;
  }
  int start[2] = {-1, -1};
  if (pipe2(start, O_CLOEXEC) < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "pipe: %s", g_strerror(e));
    close(procs);
    agent_cgroup_remove(cgroup, NULL);
    return FALSE;
  }
  AgentStdio io;
  if (!agent_stdio_prepare(spec->process, ids, &io, error)) {
    close(procs);
    close(start[0]);
    close(start[1]);
    agent_cgroup_remove(cgroup, NULL);
    return FALSE;
  }

  g_autofree char *home = kv_ocispec_env_get(spec->process->env, "HOME") == NULL
                              ? agent_home_of(rootfs, spec->process->uid)
                              : NULL;
  g_auto(GStrv) envp = agent_process_envp(spec->process, rootfs, home, spec->process->uid);
  g_auto(GStrv) sources = resolve_bind_sources(spec, rootfs);
  g_autofree int *trees = g_new0(int, spec->mounts->len + 1);
  AgentLaunch l = {
      .unshare_flags = spec->namespaces,
      .rootfs = rootfs,
      .spec = spec,
      .mount_sources = sources,
      .mount_trees = trees,
      .start_fd = start[0],
      .cgroup_procs_fd = procs,
      .stdio = {io.child[0], io.child[1], io.child[2]},
      .terminal = spec->process->terminal,
      .proc = spec->process,
      .envp = envp,
      .path_env = kv_ocispec_env_get(spec->process->env, "PATH"),
      .seccomp = seccomp,
      .last_cap = agent_launch_last_cap(),
  };
  ensure_reaper();
  int status_fd = -1;
  pid_t pid = agent_launch(&l, &status_fd, error);
  close(procs);
  close(start[0]);
  if (pid < 0) {
    g_prefix_error(error, "container %s: ", cid);
    close(start[1]);
    agent_stdio_clear(&io);
    agent_cgroup_remove(cgroup, NULL);
    return FALSE;
  }

  AgentContainer *ct = g_new0(AgentContainer, 1);
  ct->id = g_strdup(cid);
  ct->status = AGENT_CONTAINER_CREATING;
  ct->rootfs = g_steal_pointer(&rootfs);
  ct->cgroup = g_steal_pointer(&cgroup);
  ct->home = g_steal_pointer(&home);
  ct->home_uid = spec->process->uid;
  ct->start_fd = start[1];
  ct->execs =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)agent_process_unref);
  g_queue_init(&ct->finished);
  ct->init = agent_process_new(ct, NULL);
  ct->spec = g_steal_pointer(&spec);
  ct->seccomp = g_steal_pointer(&seccomp);
  if (containers == NULL)
    containers = g_hash_table_new(g_str_hash, g_str_equal);
  g_hash_table_insert(containers, ct->id, ct);
  pin_container_path(ct);
  agent_stdio_attach(&io, ct->init, c, ids, ct->spec->process->terminal);
  agent_stdio_clear(&io);
  agent_process_launched(ct->init, pid, status_fd, AGENT_PENDING_CREATE, c, id);
  return TRUE;
}

static void do_create(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  if (!create_container(c, id, params, &err))
    agent_rpc_reply_error(c, id, err);
}

typedef struct {
  KvConn *conn;
  guint32 id;
  JsonObject *params;
} DeferredCreate;

static void deferred_create(gpointer user) {
  DeferredCreate *d = user;
  do_create(d->conn, d->id, d->params);
  kv_conn_unref(d->conn);
  json_object_unref(d->params);
  g_free(d);
}

void agent_m_container_create(KvConn *c, guint32 id, JsonObject *params) {
  /* The rootfs is on the 9p share, which the late boot steps mount: a
   * create that comes in before waits for them. */
  if (!agent_is_pid1()) {
    do_create(c, id, params);
    return;
  }
  DeferredCreate *d = g_new0(DeferredCreate, 1);
  d->conn = kv_conn_ref(c);
  d->id = id;
  d->params = json_object_ref(params);
  agent_boot_when_late_done(deferred_create, d);
}

void agent_m_container_start(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  const char *cid = agent_json_get_id(params, "id", &err);
  AgentContainer *ct = cid != NULL ? agent_container_lookup(cid, &err) : NULL;
  if (ct == NULL) {
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (ct->status != AGENT_CONTAINER_CREATED || ct->removing || ct->start_fd < 0 ||
      ct->init->pending != AGENT_PENDING_NONE) {
    g_set_error(
        &err, KV_ERROR_DOMAIN, KV_E_STATE, "container %s cannot be started: it is %s%s", cid,
        ct->status == AGENT_CONTAINER_CREATING ? "still being created" : status_names[ct->status],
        ct->removing ? " and being removed" : "");
    agent_rpc_reply_error(c, id, err);
    return;
  }
  /* The reply waits for execve (end of file on the status socket). */
  AgentProcess *p = ct->init;
  p->pending = AGENT_PENDING_START;
  p->pending_conn = kv_conn_ref(c);
  p->pending_id = id;
  char go = 1;
  ssize_t n;
  do
    n = write(ct->start_fd, &go, 1);
  while (n < 0 && errno == EINTR);
  close(ct->start_fd);
  ct->start_fd = -1;
  if (n != 1) {
    clear_pending(p);
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_STATE, "container %s: its process is gone", cid);
    agent_rpc_reply_error(c, id, err);
    return;
  }
  /* The status socket may have hit end of file already if the process died
   * meanwhile; then nothing else will answer. */
  if (p->status_fd < 0) {
    clear_pending(p);
    kv_conn_reply(c, id, NULL);
  }
}

void agent_m_container_state(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  const char *cid = agent_json_get_id(params, "id", &err);
  AgentContainer *ct = cid != NULL ? agent_container_lookup(cid, &err) : NULL;
  if (ct == NULL) {
    agent_rpc_reply_error(c, id, err);
    return;
  }
  g_autoptr(JsonObject) r = container_state(ct);
  kv_conn_reply(c, id, r);
}

void agent_m_container_list(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(JsonArray) a = json_array_new();
  if (containers != NULL) {
    g_autoptr(GList) keys = g_hash_table_get_keys(containers);
    keys = g_list_sort(keys, (GCompareFunc)strcmp);
    for (GList *k = keys; k != NULL; k = k->next) {
      AgentContainer *ct = g_hash_table_lookup(containers, k->data);
      json_array_add_object_element(a, container_state(ct));
    }
  }
  g_autoptr(JsonObject) r = json_object_new();
  json_object_set_array_member(r, "containers", g_steal_pointer(&a));
  kv_conn_reply(c, id, r);
}

static gboolean get_signal(JsonObject *params, int *sig, GError **error) {
  gint64 v = 0;
  if (!agent_json_get_int(params, "signal", 1, SIGRTMAX, TRUE, &v, error))
    return FALSE;
  *sig = (int)v;
  return TRUE;
}

void agent_m_container_kill(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  const char *cid = agent_json_get_id(params, "id", &err);
  AgentContainer *ct = cid != NULL ? agent_container_lookup(cid, &err) : NULL;
  int sig = 0;
  gboolean all = FALSE;
  if (ct == NULL || !get_signal(params, &sig, &err) ||
      !agent_json_get_opt_bool(params, "all", &all, &err)) {
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (ct->status == AGENT_CONTAINER_CREATING || (ct->status == AGENT_CONTAINER_STOPPED && !all)) {
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is not running (%s)", cid,
                ct->status == AGENT_CONTAINER_CREATING ? "being created" : "stopped");
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (all) {
    if (!agent_cgroup_signal_all(ct->cgroup, sig, &err)) {
      agent_rpc_reply_error(c, id, err);
      return;
    }
  } else if (kill(ct->init->pid, sig) < 0 && errno != ESRCH) {
    int e = errno;
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_IO, "container %s: kill: %s", cid, g_strerror(e));
    agent_rpc_reply_error(c, id, err);
    return;
  }
  kv_conn_reply(c, id, NULL);
}

void agent_m_container_remove(KvConn *c, guint32 id, JsonObject *params) {
  g_autoptr(GError) err = NULL;
  const char *cid = agent_json_get_id(params, "id", &err);
  AgentContainer *ct = cid != NULL ? agent_container_lookup(cid, &err) : NULL;
  gboolean force = FALSE;
  if (ct == NULL || !agent_json_get_opt_bool(params, "force", &force, &err)) {
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (ct->removing || ct->status == AGENT_CONTAINER_CREATING) {
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is %s", cid,
                ct->removing ? "being removed" : "still being created");
    agent_rpc_reply_error(c, id, err);
    return;
  }
  if (ct->status != AGENT_CONTAINER_STOPPED && !force) {
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_STATE,
                "container %s is %s: stop it first, or remove it with force", cid,
                status_names[ct->status]);
    agent_rpc_reply_error(c, id, err);
    return;
  }
  ct->removing = TRUE;
  ct->remove_conn = kv_conn_ref(c);
  ct->remove_id = id;
  ct->remove_deadline = g_get_monotonic_time() + REMOVE_TIMEOUT_US;
  /* Also what a stopped container left behind: without a PID namespace
   * its execs outlive the main process. */
  if (ct->init->pid > 0 && !ct->init->exited)
    kill(ct->init->pid, SIGKILL);
  agent_cgroup_signal_all(ct->cgroup, SIGKILL, NULL);
  container_remove_progress(ct);
}

void agent_containers_conn_closed(KvConn *c) {
  if (containers == NULL)
    return;
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init(&it, containers);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    AgentContainer *ct = v;
    g_autoptr(GPtrArray) procs = g_ptr_array_new();
    g_ptr_array_add(procs, ct->init);
    GHashTableIter pit;
    gpointer pv;
    g_hash_table_iter_init(&pit, ct->execs);
    while (g_hash_table_iter_next(&pit, NULL, &pv))
      g_ptr_array_add(procs, pv);
    for (guint i = 0; i < procs->len; i++) {
      AgentProcess *p = procs->pdata[i];
      for (guint w = p->waiters->len; w > 0; w--) {
        Waiter *wt = p->waiters->pdata[w - 1];
        if (wt->conn == c)
          g_ptr_array_remove_index(p->waiters, w - 1);
      }
    }
  }
}
