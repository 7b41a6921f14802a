/* agent/etcfiles.h: the container's /etc/resolv.conf, /etc/hosts and
 * /etc/hostname. The host says what the sandbox's names are (net_names);
 * for each container the agent writes the three files into guest-local
 * tmpfs (/run/katavm/etc/CONTAINER) and adds bind mounts of them to the
 * container's spec, for each path the spec does not mount itself and the
 * rootfs has as a regular file: the rootfs, the caller's directory, is
 * never written. Before net_names nothing is added (the agent's own
 * tests run without a network). */
#pragma once

#include "call.h"
#include "ocispec.h"

gboolean agent_m_net_names(AgentCall *call, const KvNetNamesParams *params, KvEmpty *r,
                           GError **error);
/* Before the container's launch: write its files and append the mounts. */
gboolean agent_etcfiles_prepare(const char *cid, const char *rootfs, KvOciSpec *spec,
                                GError **error);
/* The container is gone: remove its files. */
void agent_etcfiles_forget(const char *cid);
