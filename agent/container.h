/* agent/container.h: the containers of the sandbox and their processes
 * (the "containers and processes" methods of lib/proto/proto.h).
 *
 * container.c owns the registry, the life cycle of a process (setup
 * report, start, exit, the end of its output, waiters) and the container_*
 * methods; exec.c the stdio plumbing and the exec, wait, signal and resize
 * methods. A process is finished, and its exit reported to waiters, once
 * it has exited AND its stdout/stderr streams sent EOF: the host gets every
 * byte before the exit code.
 */
#pragma once

#include "cgroup.h"
#include "launch.h"
#include "seccomp-profile.h"
#include "spec.h"
#include "stream.h"

#include <sys/types.h>

/* At most this many PATH directories are pinned per container. */
#define AGENT_PATH_PINS_MAX 16

typedef enum {
  AGENT_CONTAINER_CREATING, /* init being set up: no reply yet */
  AGENT_CONTAINER_CREATED,  /* init waits for container_start */
  AGENT_CONTAINER_RUNNING,
  AGENT_CONTAINER_STOPPED, /* init exited */
} AgentContainerStatus;

typedef struct _AgentContainer AgentContainer;

/* What the setup report of a process answers. */
typedef enum {
  AGENT_PENDING_NONE,
  AGENT_PENDING_CREATE, /* "R": reply {"pid"} */
  AGENT_PENDING_START,  /* end of file: reply {} */
  AGENT_PENDING_EXEC,   /* end of file: reply {"pid"} */
} AgentPending;

typedef struct {
  gint ref;
  AgentContainer *container; /* NULL once the container is gone */
  char *exec_id;             /* NULL for the container's main process */
  pid_t pid;
  gboolean exited;
  int exit_code; /* shell convention: 128+N for signal N */
  int signal;
  gboolean finished; /* exited and all output sent */
  int pty;           /* our dup of the pty master, for resize; -1 */
  AgentStream *streams[3];
  guint outputs_open;
  GPtrArray *waiters; /* reply to each once finished */

  /* setup report (launch.h) */
  int status_fd;
  guint status_watch;
  GString *status_buf;
  AgentPending pending;
  KvConn *pending_conn;
  guint32 pending_id;
} AgentProcess;

struct _AgentContainer {
  char *id;
  AgentContainerStatus status;
  gboolean removing;
  KvOciSpec *spec;
  AgentSeccomp *seccomp;
  char *rootfs;
  char *cgroup;
  /* HOME of the main process's user from the rootfs's /etc/passwd, read
   * once at creation ("/" when it has none): execs as that user get it
   * too, as `docker exec` gets the container's, without reading the file
   * over 9p each time (~6 ms of each exec under TCG). */
  char *home;
  uid_t home_uid;
  /* O_PATH fds of the directories of the container's PATH (and of the
   * default PATH), or of their deepest existing ancestors: see
   * pin_path_dirs() in container.c. */
  int path_pins[AGENT_PATH_PINS_MAX];
  guint n_path_pins;
  AgentProcess *init;
  int start_fd;      /* write end of init's start pipe; -1 once used */
  GHashTable *execs; /* exec_id -> AgentProcess* (a reference) */
  GQueue finished;   /* exec ids in the order they finished */
  /* container_remove in progress */
  KvConn *remove_conn;
  guint32 remove_id;
  guint remove_timer;
  gint64 remove_deadline;
};

AgentContainer *agent_container_lookup(const char *id, GError **error);

/* Process records. */
AgentProcess *agent_process_new(AgentContainer *c, const char *exec_id);
AgentProcess *agent_process_ref(AgentProcess *p);
void agent_process_unref(AgentProcess *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AgentProcess, agent_process_unref)
/* After agent_launch succeeded: watch the pid and the status socket, and
 * reply to (conn, id) as `pending` says. */
void agent_process_launched(AgentProcess *p, pid_t pid, int status_fd, AgentPending pending,
                            KvConn *conn, guint32 id);
/* The stream is one of p's: count it. Create it with
 * agent_process_on_stream_done and p as its done callback. */
void agent_process_attach_stream(AgentProcess *p, int slot, AgentStream *s);
void agent_process_on_stream_done(AgentStream *s, gpointer user);
/* Tears down the streams of a process whose launch failed. */
void agent_process_abort_streams(AgentProcess *p);
/* Reply {"exit_code","signal"} to (conn, id) once p is finished. */
void agent_process_wait(AgentProcess *p, KvConn *conn, guint32 id);

/* stdio of a process: the child's ends and ours (exec.c). */
typedef struct {
  int child[3];
  int ours[3]; /* stdin write end, stdout/stderr read ends; -1 unused */
} AgentStdio;

gboolean agent_stdio_prepare(const KvOciProcess *proc, const guint32 ids[3], AgentStdio *io,
                             GError **error);
/* Turns our ends into streams of p on conn. With a terminal the streams
 * start without an fd: the process sends its pty master once it has one
 * (launch.h). */
void agent_stdio_attach(AgentStdio *io, AgentProcess *p, KvConn *conn, const guint32 ids[3],
                        gboolean terminal);
/* Closes whatever is left (the child's ends after the launch). */
void agent_stdio_clear(AgentStdio *io);
/* params.streams -> ids. */
gboolean agent_stdio_parse_ids(JsonObject *params, guint32 ids[3], GError **error);
/* The environment a process starts with: env plus HOME when env has none:
 * home_of_uid when the process runs as uid (the container's cached HOME,
 * may be NULL), else from the rootfs's /etc/passwd ("/" when not there). */
char **agent_process_envp(const KvOciProcess *proc, const char *rootfs, const char *home_of_uid,
                          uid_t uid);
/* HOME of uid in the rootfs's /etc/passwd, "/" when it has none. */
char *agent_home_of(const char *rootfs, uid_t uid);

/* Methods (container.c). */
void agent_m_container_create(KvConn *c, guint32 id, JsonObject *params);
void agent_m_container_start(KvConn *c, guint32 id, JsonObject *params);
void agent_m_container_state(KvConn *c, guint32 id, JsonObject *params);
void agent_m_container_kill(KvConn *c, guint32 id, JsonObject *params);
void agent_m_container_remove(KvConn *c, guint32 id, JsonObject *params);
void agent_m_container_list(KvConn *c, guint32 id, JsonObject *params);
/* Methods (exec.c). */
void agent_m_exec(KvConn *c, guint32 id, JsonObject *params);
void agent_m_wait(KvConn *c, guint32 id, JsonObject *params);
void agent_m_signal(KvConn *c, guint32 id, JsonObject *params);
void agent_m_resize(KvConn *c, guint32 id, JsonObject *params);

/* The connection went away: drop its waiters. */
void agent_containers_conn_closed(KvConn *c);
