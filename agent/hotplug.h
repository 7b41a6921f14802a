/* agent/hotplug.h: the hotplug methods of lib/proto/proto.h (cpus_set,
 * nic_config, nic_remove, disk_add, disk_remove). */
#pragma once

#include "proto.h"

void agent_m_cpus_set(KvConn *c, guint32 id, JsonObject *params);
void agent_m_nic_config(KvConn *c, guint32 id, JsonObject *params);
void agent_m_nic_remove(KvConn *c, guint32 id, JsonObject *params);
void agent_m_disk_add(KvConn *c, guint32 id, JsonObject *params);
void agent_m_disk_remove(KvConn *c, guint32 id, JsonObject *params);
