/* agent/cgroup.h: cgroup v2 in the guest, one cgroup per container.
 *
 * Layout: /sys/fs/cgroup/katavm/<container id>. The agent itself stays in
 * the root cgroup, so a container's memory limit can never make the kernel
 * pick the agent: an OOM kill inside a container kills only the offending
 * process of that container (memory.oom.group stays 0). The "katavm" level
 * holds no processes, as cgroup v2 requires of a cgroup that hands
 * controllers down.
 */
#pragma once

#include "msg.h"
#include "ocispec.h"

#include <glib.h>

#define AGENT_CGROUP_ROOT "/sys/fs/cgroup"

/* Creates the container's cgroup and applies the limits of r. Returns its
 * path, or NULL with an error naming the file and value that failed. */
char *agent_cgroup_create(const char *id, const KvOciResources *r, GError **error);
/* cgroup.procs of path, opened for writing: a child process joins the
 * cgroup by writing "0" to it, before it forks the container's process. */
int agent_cgroup_open_procs(const char *path, GError **error);
/* Sends sig to every process in the cgroup (SIGKILL through cgroup.kill,
 * which also catches processes forked meanwhile). */
gboolean agent_cgroup_signal_all(const char *path, int sig, GError **error);
/* Whether any process is left in the cgroup. */
gboolean agent_cgroup_populated(const char *path);
/* Applies new limits to an existing cgroup (container_update). */
gboolean agent_cgroup_update(const char *path, const KvOciResources *r, GError **error);
/* Freezes (or thaws) every process of the cgroup through cgroup.freeze and
 * waits, bounded, until cgroup.events reports it done. */
gboolean agent_cgroup_freeze(const char *path, gboolean frozen, GError **error);
/* The cgroup's figures (cpu.stat, memory.*, pids.*) into r: -1 for what
 * the kernel does not offer and for "max". */
void agent_cgroup_stats(const char *path, KvContainerStatsResult *r);
/* Removes the (empty) cgroup. */
gboolean agent_cgroup_remove(const char *path, GError **error);
