/* agent/hotplug.h: the hotplug methods of lib/proto/msg.h (cpus_set,
 * nic_config, nic_remove, disk_add, disk_remove). Above container.h (a
 * disk is mounted into a container); rpc.c dispatches here. */
#pragma once

#include "call.h"

gboolean agent_m_cpus_set(AgentCall *call, const KvCpusSetParams *params, KvCpusResult *r,
                          GError **error);
gboolean agent_m_nic_config(AgentCall *call, const KvNicConfigParams *params, KvNicConfigResult *r,
                            GError **error);
gboolean agent_m_nic_remove(AgentCall *call, const KvNicRemoveParams *params, KvEmpty *r,
                            GError **error);
gboolean agent_m_disk_add(AgentCall *call, const KvDiskAddParams *params, KvDiskAddResult *r,
                          GError **error);
gboolean agent_m_disk_remove(AgentCall *call, const KvDiskRemoveParams *params, KvEmpty *r,
                             GError **error);

/* Brings the guest's loopback interface up (the kernel leaves it down). */
gboolean agent_net_lo_up(GError **error);
