/* agent/container.h: the containers of the sandbox (the container_*
 * methods of lib/proto/msg.h): the registry, their life cycle from create
 * to remove, and what execs into them need (exec.c, hotplug.c).
 *
 * Layers: process.h (processes, stdio, calls) below, exec.c and rpc.c
 * above. Handlers decode nothing: rpc.c hands them the decoded params of
 * the contract and answers with their result or error.
 */
#pragma once

#include "call.h"
#include "cgroup.h"
#include "launch.h"
#include "ocispec.h"
#include "process.h"
#include "rootfs.h"
#include "seccomp-profile.h"

#include <sys/types.h>

typedef enum {
  AGENT_CONTAINER_CREATING, /* init being set up: no reply yet */
  AGENT_CONTAINER_CREATED,  /* init waits for container_start */
  AGENT_CONTAINER_RUNNING,
  AGENT_CONTAINER_STOPPED, /* init exited */
} AgentContainerStatus;

typedef struct {
  char *id;
  AgentContainerStatus status;
  gboolean removing;
  gboolean paused; /* its cgroup is frozen (container_pause) */
  KvOciSpec *spec;
  AgentSeccomp *seccomp;
  char *rootfs;   /* the overlay of its writable layer when it has one */
  gboolean layer; /* a bounded writable layer (rootfs.c), dropped with it */
  char *cgroup;
  /* HOME of the main process's user from the rootfs's /etc/passwd, read
   * once at creation ("/" when it has none): execs as that user get it
   * too, as `docker exec` gets the container's, without reading the file
   * over 9p each time (~6 ms of each exec under TCG). */
  char *home;
  uid_t home_uid;
  /* The directories of the container's PATH (and of the default PATH),
   * or their deepest existing ancestors, held open: see rootfs.c. */
  AgentPathPins path_pins;
  AgentProcess *init;
  int start_fd;      /* write end of init's start pipe; -1 once used */
  GHashTable *execs; /* exec_id -> AgentProcess* (a reference) */
  GQueue finished;   /* exec ids in the order they finished */
  /* container_remove in progress */
  AgentCall *remove_call;
  guint remove_timer;
  gint64 remove_deadline;
} AgentContainer;

/* NULL with KV_E_NOT_FOUND when there is none. */
AgentContainer *agent_container_lookup(const char *id, GError **error);
/* A new process record for an exec into ct, registered as exec_id
 * (replacing a finished one). */
AgentProcess *agent_container_add_exec(AgentContainer *ct, const char *exec_id);

/* Methods. */
gboolean agent_m_container_create(AgentCall *call, const KvContainerCreateParams *p, KvPidResult *r,
                                  GError **error);
gboolean agent_m_container_start(AgentCall *call, const KvContainerRef *p, KvEmpty *r,
                                 GError **error);
gboolean agent_m_container_state(AgentCall *call, const KvContainerRef *p,
                                 KvContainerStateResult *r, GError **error);
gboolean agent_m_container_kill(AgentCall *call, const KvContainerKillParams *p, KvEmpty *r,
                                GError **error);
gboolean agent_m_container_remove(AgentCall *call, const KvContainerRemoveParams *p, KvEmpty *r,
                                  GError **error);
gboolean agent_m_container_list(AgentCall *call, const KvEmpty *p, KvContainerListResult *r,
                                GError **error);

/* The connection went away: drop its waiters. */
void agent_containers_conn_closed(KvConn *c);

/* container_pause, container_resume, container_update (agent/control.c). */
gboolean agent_m_container_pause(AgentCall *call, const KvContainerRef *p, KvEmpty *r,
                                 GError **error);
gboolean agent_m_container_resume(AgentCall *call, const KvContainerRef *p, KvEmpty *r,
                                  GError **error);
gboolean agent_m_container_update(AgentCall *call, const KvContainerUpdateParams *p, KvEmpty *r,
                                  GError **error);
gboolean agent_m_container_stats(AgentCall *call, const KvContainerRef *p,
                                 KvContainerStatsResult *r, GError **error);
