/* agent/rpc.c: dispatching REQUEST frames to method handlers. One handler
 * per method of the agent in lib/proto/proto.h; the container and process
 * methods live in container.c and exec.c.
 */
#include "rpc.h"
#include "container.h"
#include "hotplug.h"
#include "log.h"
#include "power.h"
#include "stream.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef KATAVM_VERSION
#define KATAVM_VERSION "0.1.0"
#endif

/* How long shutdown waits for its reply to leave before powering off. */
#define SHUTDOWN_FLUSH_MS 2000

typedef void (*AgentMethodFunc)(KvConn *c, guint32 id, JsonObject *params);

void agent_rpc_reply_error(KvConn *c, guint32 id, const GError *error) {
  kv_reply_gerror(c, id, error, KV_E_IO);
}

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

static void m_check(KvConn *c, guint32 id, JsonObject *params) {
  struct utsname u;
  if (uname(&u) != 0)
    g_strlcpy(u.release, "unknown", sizeof u.release);

  g_autoptr(JsonObject) r = json_object_new();
  json_object_set_string_member(r, "agent_version", KATAVM_VERSION);
  json_object_set_int_member(r, "proto", KV_PROTO_VERSION);
  json_object_set_string_member(r, "kernel", u.release);
  json_object_set_int_member(r, "cpus_online", cpus_online());
  json_object_set_int_member(r, "mem_total_kib", mem_total_kib());
  json_object_set_int_member(r, "uptime_ms", uptime_ms());
  kv_conn_reply(c, id, r);
}

static void m_shutdown(KvConn *c, guint32 id, JsonObject *params) {
  kv_conn_reply(c, id, NULL);
  /* The reply must be on its way before the VM disappears; a host that
   * stopped reading must not keep the VM alive, hence the bound. */
  g_autoptr(GError) err = NULL;
  if (!kv_conn_flush(c, SHUTDOWN_FLUSH_MS, &err))
    agent_debug("shutdown reply not flushed: %s", err->message);
  agent_debug("powering off on request");
  agent_poweroff();
}

static const struct {
  const char *name;
  AgentMethodFunc func;
} methods[] = {
    {KV_M_AGENT_CHECK, m_check},
    {KV_M_AGENT_SHUTDOWN, m_shutdown},
    {KV_M_CONTAINER_CREATE, agent_m_container_create},
    {KV_M_CONTAINER_START, agent_m_container_start},
    {KV_M_CONTAINER_STATE, agent_m_container_state},
    {KV_M_CONTAINER_KILL, agent_m_container_kill},
    {KV_M_CONTAINER_REMOVE, agent_m_container_remove},
    {KV_M_CONTAINER_LIST, agent_m_container_list},
    {KV_M_EXEC, agent_m_exec},
    {KV_M_WAIT, agent_m_wait},
    {KV_M_SIGNAL, agent_m_signal},
    {KV_M_RESIZE, agent_m_resize},
    {KV_M_CPUS_SET, agent_m_cpus_set},
    {KV_M_NIC_CONFIG, agent_m_nic_config},
    {KV_M_NIC_REMOVE, agent_m_nic_remove},
    {KV_M_DISK_ADD, agent_m_disk_add},
    {KV_M_DISK_REMOVE, agent_m_disk_remove},
};

void agent_rpc_handle(KvConn *c, guint32 id, const char *method, JsonObject *params) {
  for (gsize i = 0; i < G_N_ELEMENTS(methods); i++) {
    if (strcmp(methods[i].name, method) == 0) {
      methods[i].func(c, id, params);
      return;
    }
  }
  g_autofree char *msg =
      g_strdup_printf("unknown method \"%s\" (agent %s)", method, KATAVM_VERSION);
  kv_conn_reply_error(c, id, KV_E_UNSUPPORTED, msg);
}
