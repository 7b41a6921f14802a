/* agent/launch.h: starting a container's process, or a process in an
 * existing container, from a plan the agent prepared on its main loop.
 *
 * Two forks. The agent forks an intermediate process, which joins the
 * container's cgroup, then creates (container_create: unshare) or joins
 * (exec: setns) the namespaces, and forks the process itself: only a child
 * is born into a new or joined PID namespace. The intermediate reports that
 * child's pid and exits; the process is reparented to the agent (PID 1, or
 * a child subreaper outside a VM), whose reaper (signals.c) sees its exit.
 *
 * Root: the agent runs from the initramfs, where pivot_root(2) fails, so
 * the container root is entered switch_root style: the rootfs is bind
 * mounted onto itself, MS_MOVEd over "/" and chrooted into. A process that
 * later joins the mount namespace with setns(2) lands at the topmost mount
 * on "/", which is that rootfs. All of the spec's mounts are made after the
 * chroot, so that symlinks in the image resolve inside it; bind sources
 * outside the rootfs are opened (open_tree) before.
 *
 * Nothing after fork allocates: everything the child needs is in the plan.
 * The child reports on a CLOEXEC status socket: "T" with the master of
 * its terminal attached (SCM_RIGHTS), for a process with a TTY, whose pty
 * comes from the container's devpts; "R" once a container's process is set
 * up and waits for start; "E<message>" when a step failed (then it exits);
 * and end of file when execve succeeded. A missing
 * executable is not a setup failure: the process prints why on its stderr
 * and exits 127 (126 when it is not executable), as shells do.
 */
#pragma once

#include "seccomp-profile.h"
#include "ocispec.h"

#include <glib.h>
#include <sys/types.h>

#define AGENT_LAUNCH_MAX_NS 6

/* Where args[0] is looked for when the process's environment has no PATH. */
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct {
  /* Container init: namespaces to create; rootfs and spec set. */
  int unshare_flags;
  const char *rootfs;    /* guest path of the rootfs directory */
  const KvOciSpec *spec; /* mounts, devices, paths, hostname */
  char **mount_sources;  /* per spec mount: resolved bind source */
  int *mount_trees;      /* per spec mount: scratch, n_mounts */
  int start_fd;          /* read end: one byte = start */

  /* Exec: namespaces to join (fds of the container's init). */
  int ns_fds[AGENT_LAUNCH_MAX_NS];
  int ns_types[AGENT_LAUNCH_MAX_NS];
  int n_ns;

  /* Both. */
  int cgroup_procs_fd; /* -1 = stay in the agent's cgroup */
  int stdio[3];        /* the child's ends: pipes or /dev/null */
  gboolean terminal;   /* allocate a pty in the container for stdio */
  const KvOciProcess *proc;
  char **envp;                 /* final environment (HOME filled in) */
  const char *path_env;        /* where to look for args[0] */
  const AgentSeccomp *seccomp; /* NULL = none */
  int last_cap;                /* /proc/sys/kernel/cap_last_cap */
} AgentLaunch;

/* Forks as described above. Returns the process's pid (in the agent's PID
 * namespace) and the agent's end of its status socket, or -1 with an error from
 * the intermediate (cgroup, namespaces). Register the pid with
 * agent_child_watch() before returning to the main loop. */
pid_t agent_launch(AgentLaunch *l, int *status_fd, GError **error);

/* Highest capability number of the running kernel. */
int agent_launch_last_cap(void);
