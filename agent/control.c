/* agent/control.c: changing a running container: freezing and thawing its
 * processes (container_pause/resume, through cgroup v2's freezer) and new
 * resource limits (container_update); its cgroup's figures
 * (container_stats). */
#include "container.h"

static AgentContainer *running(const char *cid, const char *what, GError **error) {
  AgentContainer *ct = agent_container_lookup(cid, error);
  if (ct == NULL)
    return NULL;
  if (ct->status != AGENT_CONTAINER_RUNNING || ct->removing) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "%s: container %s is not running", what, cid);
    return NULL;
  }
  return ct;
}

gboolean agent_m_container_pause(AgentCall *call, const KvContainerRef *p, KvEmpty *r,
                                 GError **error) {
  AgentContainer *ct = running(p->container_id, "container_pause", error);
  if (ct == NULL)
    return FALSE;
  if (ct->paused) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is already paused",
                p->container_id);
    return FALSE;
  }
  if (!agent_cgroup_freeze(ct->cgroup, TRUE, error)) {
    agent_cgroup_freeze(ct->cgroup, FALSE, NULL);
    return FALSE;
  }
  ct->paused = TRUE;
  return TRUE;
}

gboolean agent_m_container_resume(AgentCall *call, const KvContainerRef *p, KvEmpty *r,
                                  GError **error) {
  AgentContainer *ct = running(p->container_id, "container_resume", error);
  if (ct == NULL)
    return FALSE;
  if (!ct->paused) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is not paused", p->container_id);
    return FALSE;
  }
  if (!agent_cgroup_freeze(ct->cgroup, FALSE, error))
    return FALSE;
  ct->paused = FALSE;
  return TRUE;
}

gboolean agent_m_container_update(AgentCall *call, const KvContainerUpdateParams *p, KvEmpty *r,
                                  GError **error) {
  AgentContainer *ct = running(p->container_id, "container_update", error);
  if (ct == NULL)
    return FALSE;
  KvOciResources res;
  if (!kv_ocispec_resources_parse(p->resources, &res, error))
    return FALSE;
  gboolean ok = agent_cgroup_update(ct->cgroup, &res, error);
  kv_ocispec_resources_clear(&res);
  return ok;
}

gboolean agent_m_container_stats(AgentCall *call, const KvContainerRef *p,
                                 KvContainerStatsResult *r, GError **error) {
  AgentContainer *ct = agent_container_lookup(p->container_id, error);
  if (ct == NULL)
    return FALSE;
  if (ct->cgroup == NULL) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE,
                "container_stats: container %s is being created", p->container_id);
    return FALSE;
  }
  agent_cgroup_stats(ct->cgroup, r);
  return TRUE;
}
