/* agent/seccomp-profile.h: the seccomp profile of a container (linux.seccomp of
 * its OCI spec), compiled with libseccomp into a BPF program.
 *
 * Compiling happens in the agent, on the main loop, when the container is
 * created: a profile naming an unknown syscall, action or architecture is
 * an RPC error there and then. The process being set up only installs the
 * finished program with one system call, right before execve, without
 * calling into libseccomp (it must not allocate after fork).
 */
#pragma once

#include "ocispec.h"

typedef struct _AgentSeccomp AgentSeccomp;

/* Returns the compiled profile (read by lib/proto/ocispec.c), or NULL with
 * a KV_ERROR_DOMAIN error naming what is wrong ('spec: linux.seccomp:
 * unknown syscall "foo" (syscalls[3])'). */
AgentSeccomp *agent_seccomp_compile(const KvOciSeccomp *profile, GError **error);
void agent_seccomp_free(AgentSeccomp *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AgentSeccomp, agent_seccomp_free)

/* Installs the filter on the calling thread. Async-signal-safe (after
 * fork). Needs no_new_privs or CAP_SYS_ADMIN. Returns 0 or -errno. */
int agent_seccomp_install(const AgentSeccomp *s);
