/* agent/process.h: the bottom layer of containers and execs: a process the
 * agent launched, its setup report, its exit, its stdio streams and the
 * calls waiting for it.
 *
 * A process is finished, and its exit reported to waiters, once it has
 * exited AND its stdout/stderr streams sent EOF: the host gets every byte
 * before the exit code. This file knows nothing of containers: whoever
 * owns a process (container.c) learns what happens to it through
 * AgentProcessOwner.
 */
#pragma once

#include "call.h"
#include "ocispec.h"
#include "stream.h"

#include <sys/types.h>

typedef struct _AgentProcess AgentProcess;

/* What the setup report of a process answers (launch.h). */
typedef enum {
  AGENT_PENDING_NONE,
  AGENT_PENDING_CREATE, /* "R": complete with {"pid"} */
  AGENT_PENDING_START,  /* end of file: complete with {} */
  AGENT_PENDING_EXEC,   /* end of file: complete with {"pid"} */
} AgentPending;

/* Callbacks of the owner, all optional. */
typedef struct {
  /* The setup report answered `what` (before the pending call is
   * completed): e.g. a created container's status changes. */
  void (*setup_done)(AgentProcess *p, AgentPending what);
  /* The setup failed; the pending call got the error. */
  void (*setup_failed)(AgentProcess *p, AgentPending what);
  /* It exited (its waiters are answered already if it finished). */
  void (*exited)(AgentProcess *p);
  /* It finished: waiters answered. */
  void (*finished)(AgentProcess *p);
} AgentProcessOwner;

struct _AgentProcess {
  gint ref;
  char *label;   /* "container web", "exec e1 in container web": for messages */
  char *exec_id; /* NULL for a container's main process */
  const AgentProcessOwner *owner_ops;
  gpointer owner; /* the owner's data; NULL once it is gone */
  pid_t pid;
  gboolean exited;
  int exit_code; /* shell convention: 128+N for signal N */
  int signal;
  gboolean finished; /* exited and all output sent */
  int pty;           /* our dup of the pty master, for resize; -1 */
  AgentStream *streams[3];
  guint outputs_open;
  GPtrArray *waiters; /* AgentCall* (deferred wait calls), answered once finished */

  /* setup report (launch.h) */
  int status_fd;
  guint status_watch;
  GString *status_buf;
  AgentPending pending;
  AgentCall *pending_call; /* a deferred reference */
};

AgentProcess *agent_process_new(const char *label, const char *exec_id,
                                const AgentProcessOwner *ops, gpointer owner);
AgentProcess *agent_process_ref(AgentProcess *p);
void agent_process_unref(AgentProcess *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AgentProcess, agent_process_unref)

/* After agent_launch succeeded: watch the pid and the status socket, and
 * complete `call` (deferred here) as `pending` says. */
void agent_process_launched(AgentProcess *p, pid_t pid, int status_fd, AgentPending pending,
                            AgentCall *call);
/* The pending call is answered some other way: drop it. */
void agent_process_clear_pending(AgentProcess *p);
/* A wait on p: fills result and returns TRUE when p is finished, else
 * defers call until it is (FALSE). */
gboolean agent_process_wait(AgentProcess *p, AgentCall *call, KvWaitResult *result);
/* The connection c went away: forget the waiters that came over it. */
void agent_process_drop_waiters(AgentProcess *p, KvConn *c);

/* ---- stdio: the child's ends and ours ---- */
typedef struct {
  int child[3];
  int ours[3]; /* stdin write end, stdout/stderr read ends; -1 unused */
} AgentStdio;

void agent_stdio_ids(const KvStreams *s, guint32 ids[3]);
gboolean agent_stdio_prepare(const KvOciProcess *proc, const guint32 ids[3], AgentStdio *io,
                             GError **error);
/* Turns our ends into streams of p on conn. With a terminal the streams
 * start without an fd: the process sends its pty master once it has one
 * (launch.h). */
void agent_stdio_attach(AgentStdio *io, AgentProcess *p, KvConn *conn, const guint32 ids[3],
                        gboolean terminal);
/* Closes whatever is left (the child's ends after the launch). */
void agent_stdio_clear(AgentStdio *io);

/* The environment a process starts with: env plus HOME when env has none:
 * home_of_uid when the process runs as uid (the container's cached HOME,
 * may be NULL), else from the rootfs's /etc/passwd ("/" when not there). */
char **agent_process_envp(const KvOciProcess *proc, const char *rootfs, const char *home_of_uid,
                          uid_t uid);
