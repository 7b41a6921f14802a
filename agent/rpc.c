/* agent/rpc.c: dispatching REQUEST frames to method handlers (see rpc.h).
 * One handler per agent method of lib/proto/msg.h; the container methods
 * live in container.c, the process ones in exec.c, hotplug in hotplug.c.
 */
#include "rpc.h"
#include "boot.h"
#include "call.h"
#include "container.h"
#include "etcfiles.h"
#include "netinfo.h"
#include "exec.h"
#include "hotplug.h"
#include "log.h"
#include "power.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef KATAVM_VERSION
#define KATAVM_VERSION "0.1.0"
#endif

/* How long shutdown waits for its reply to leave before powering off. */
#define SHUTDOWN_FLUSH_MS 2000

void agent_rpc_conn_closed(KvConn *c) {
  agent_streams_conn_closed(c);
  agent_containers_conn_closed(c);
}

/* Counts the CPUs in a kernel cpu list such as "0-3,6,8-9". */
static gint64 count_cpu_list(const char *list) {
  gint64 n = 0;
  g_auto(GStrv) parts = g_strsplit(list, ",", -1);
  for (char **p = parts; *p != NULL; p++) {
    char *s = g_strstrip(*p);
    if (*s == '\0')
      continue;
    char *end = NULL;
    guint64 lo = g_ascii_strtoull(s, &end, 10);
    guint64 hi = lo;
    if (end != NULL && *end == '-')
      hi = g_ascii_strtoull(end + 1, NULL, 10);
    if (hi >= lo)
      n += (gint64)(hi - lo + 1);
  }
  return n;
}

static gint64 cpus_online(void) {
  g_autofree char *text = NULL;
  if (!g_file_get_contents("/sys/devices/system/cpu/online", &text, NULL, NULL))
    return sysconf(_SC_NPROCESSORS_ONLN);
  return count_cpu_list(text);
}

static gint64 mem_total_kib(void) {
  g_autofree char *text = NULL;
  if (!g_file_get_contents("/proc/meminfo", &text, NULL, NULL))
    return -1;
  const char *line = strstr(text, "MemTotal:");
  if (line == NULL)
    return -1;
  return g_ascii_strtoll(line + strlen("MemTotal:"), NULL, 10);
}

static gint64 uptime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (gint64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static gboolean m_check(AgentCall *call, const KvEmpty *p, KvCheckResult *r, GError **error) {
  struct utsname u;
  if (uname(&u) != 0)
    g_strlcpy(u.release, "unknown", sizeof u.release);
  r->agent_version = g_strdup(KATAVM_VERSION);
  r->proto = KV_PROTO_VERSION;
  r->kernel = g_strdup(u.release);
  r->cpus_online = cpus_online();
  r->mem_total_kib = mem_total_kib();
  r->uptime_ms = uptime_ms();
  r->late_boot_done = agent_boot_late_done();
  return TRUE;
}

gboolean agent_seed_decode(const char *hex, guint8 *out, gsize cap, gsize *len, GError **error) {
  gsize n = hex ? strlen(hex) : 0;
  if (n < 2 * AGENT_SEED_MIN || n > 2 * cap || n % 2) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "reseed: the seed must be %d to %" G_GSIZE_FORMAT " hex digits, an even count",
                2 * AGENT_SEED_MIN, 2 * cap);
    return FALSE;
  }
  for (gsize i = 0; i < n; i += 2) {
    int hi = g_ascii_xdigit_value(hex[i]), lo = g_ascii_xdigit_value(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "reseed: the seed is not hex");
      return FALSE;
    }
    out[i / 2] = (guint8)(hi << 4 | lo);
  }
  *len = n / 2;
  return TRUE;
}

/* Credit the host's bytes to the kernel's pool and reseed the RNG now
 * rather than at its next scheduled reseed. */
static gboolean m_reseed(AgentCall *call, const KvReseedParams *p, KvEmpty *r, GError **error) {
  struct {
    struct rand_pool_info info;
    guint8 buf[AGENT_SEED_MAX];
  } req;
  gsize len = 0;
  if (!agent_seed_decode(p->seed, req.buf, sizeof req.buf, &len, error))
    return FALSE;
  req.info.entropy_count = (int)(len * 8);
  req.info.buf_size = (int)len;
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  int en = 0;
  if (fd < 0 || ioctl(fd, RNDADDENTROPY, &req.info) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
    en = errno;
  if (fd >= 0)
    close(fd);
  explicit_bzero(&req, sizeof req);
  if (en) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "reseed: /dev/urandom: %s", g_strerror(en));
    return FALSE;
  }
  return TRUE;
}

static gboolean m_shutdown(AgentCall *call, const KvEmpty *p, KvEmpty *r, GError **error) {
  /* The reply must be on its way before the VM disappears; a host that
   * stopped reading must not keep the VM alive, hence the bound. */
  g_autoptr(AgentCall) now = agent_call_defer(call);
  agent_call_complete(now, NULL, NULL);
  g_autoptr(GError) err = NULL;
  if (!kv_conn_flush(agent_call_conn(call), SHUTDOWN_FLUSH_MS, &err))
    agent_debug("shutdown reply not flushed: %s", err->message);
  agent_debug("powering off on request");
  agent_poweroff();
  return TRUE;
}

/* ---- the table ---- */

typedef gboolean (*AgentHandler)(AgentCall *call, gconstpointer params, gpointer result,
                                 GError **error);

/* A handler with its typed params and result, called through AgentHandler. */
#define HANDLER(fn, P, R)                                                                          \
  static gboolean fn##_entry(AgentCall *call, gconstpointer p, gpointer r, GError **e) {           \
    const P *params = p;                                                                           \
    R *result = r;                                                                                 \
    return fn(call, params, result, e);                                                            \
  }

HANDLER(m_check, KvEmpty, KvCheckResult)
HANDLER(m_shutdown, KvEmpty, KvEmpty)
HANDLER(m_reseed, KvReseedParams, KvEmpty)
HANDLER(agent_m_container_create, KvContainerCreateParams, KvPidResult)
HANDLER(agent_m_container_start, KvContainerRef, KvEmpty)
HANDLER(agent_m_container_state, KvContainerRef, KvContainerStateResult)
HANDLER(agent_m_container_kill, KvContainerKillParams, KvEmpty)
HANDLER(agent_m_container_remove, KvContainerRemoveParams, KvEmpty)
HANDLER(agent_m_container_list, KvEmpty, KvContainerListResult)
HANDLER(agent_m_exec, KvExecParams, KvPidResult)
HANDLER(agent_m_wait, KvProcessRef, KvWaitResult)
HANDLER(agent_m_signal, KvSignalParams, KvEmpty)
HANDLER(agent_m_resize, KvResizeParams, KvEmpty)
HANDLER(agent_m_cpus_set, KvCpusSetParams, KvCpusResult)
HANDLER(agent_m_nic_config, KvNicConfigParams, KvNicConfigResult)
HANDLER(agent_m_nic_remove, KvNicRemoveParams, KvEmpty)
HANDLER(agent_m_net_names, KvNetNamesParams, KvEmpty)
HANDLER(agent_m_net_info, KvEmpty, KvNetInfoResult)
HANDLER(agent_m_disk_add, KvDiskAddParams, KvDiskAddResult)
HANDLER(agent_m_disk_remove, KvDiskRemoveParams, KvEmpty)
HANDLER(agent_m_container_pause, KvContainerRef, KvEmpty)
HANDLER(agent_m_container_resume, KvContainerRef, KvEmpty)
HANDLER(agent_m_container_update, KvContainerUpdateParams, KvEmpty)
HANDLER(agent_m_container_stats, KvContainerRef, KvContainerStatsResult)

static const struct {
  const KvMethod *method;
  AgentHandler handler;
} methods[] = {
    {&kv_m_check, m_check_entry},
    {&kv_m_shutdown, m_shutdown_entry},
    {&kv_m_reseed, m_reseed_entry},
    {&kv_m_container_create, agent_m_container_create_entry},
    {&kv_m_container_start, agent_m_container_start_entry},
    {&kv_m_container_state, agent_m_container_state_entry},
    {&kv_m_container_kill, agent_m_container_kill_entry},
    {&kv_m_container_pause, agent_m_container_pause_entry},
    {&kv_m_container_resume, agent_m_container_resume_entry},
    {&kv_m_container_update, agent_m_container_update_entry},
    {&kv_m_container_stats, agent_m_container_stats_entry},
    {&kv_m_container_remove, agent_m_container_remove_entry},
    {&kv_m_container_list, agent_m_container_list_entry},
    {&kv_m_exec, agent_m_exec_entry},
    {&kv_m_wait, agent_m_wait_entry},
    {&kv_m_signal, agent_m_signal_entry},
    {&kv_m_resize, agent_m_resize_entry},
    {&kv_m_cpus_set, agent_m_cpus_set_entry},
    {&kv_m_nic_config, agent_m_nic_config_entry},
    {&kv_m_nic_remove, agent_m_nic_remove_entry},
    {&kv_m_net_names, agent_m_net_names_entry},
    {&kv_m_net_info, agent_m_net_info_entry},
    {&kv_m_disk_add, agent_m_disk_add_entry},
    {&kv_m_disk_remove, agent_m_disk_remove_entry},
};

static AgentHandler handler_of(const KvMethod *m) {
  for (gsize i = 0; m != NULL && i < G_N_ELEMENTS(methods); i++) {
    if (methods[i].method == m)
      return methods[i].handler;
  }
  return NULL;
}

void agent_rpc_handle(KvConn *c, guint32 id, const char *method, JsonObject *params) {
  const KvMethod *m = kv_method_lookup(method);
  AgentHandler handler = handler_of(m);
  g_autoptr(AgentCall) call = agent_call_new(c, id, handler != NULL ? m : NULL);
  g_autoptr(GError) err = NULL;
  if (handler == NULL) {
    g_set_error(&err, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED, "unknown method \"%s\" (agent %s)", method,
                KATAVM_VERSION);
    agent_call_complete(call, NULL, err);
    return;
  }
  g_autofree gpointer in = g_malloc0(m->params->size);
  if (!kv_params_decode(m, params, in, &err)) {
    agent_debug("%s", err->message);
    agent_call_complete(call, NULL, err);
    return;
  }
  g_autofree gpointer out = g_malloc0(m->result->size);
  gboolean ok = handler(call, in, out, &err);
  if (!ok) {
    if (err == NULL)
      g_set_error(&err, KV_ERROR_DOMAIN, KV_E_AGENT, "%s failed", m->name);
    agent_call_complete(call, NULL, err);
  } else if (!agent_call_is_deferred(call)) {
    agent_call_complete(call, out, NULL);
  }
  kv_msg_clear(m->result, out);
  kv_msg_clear(m->params, in);
}
