/* agent/netinfo.h: net_info, the guest's interfaces and routes read by
 * netlink (libnl) for `katavm sandbox inspect`. rpc.c dispatches here. */
#pragma once

#include "call.h"

gboolean agent_m_net_info(AgentCall *call, const KvEmpty *params, KvNetInfoResult *r,
                          GError **error);
