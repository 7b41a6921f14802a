/* lib/container.c: containers and exec, the client side: bundle loading
 * and validation happen here, in the caller's process, so errors name the
 * caller's files; the shim mounts and relays; the agent builds the
 * container. */
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "oci.h"
#include "process-internal.h"

const char *katavm_container_state_name(katavm_container_state_t s) {
  switch (s) {
  case KATAVM_CONTAINER_CREATED:
    return "created";
  case KATAVM_CONTAINER_RUNNING:
    return "running";
  case KATAVM_CONTAINER_STOPPED:
    return "stopped";
  case KATAVM_CONTAINER_PAUSED:
    return "paused";
  default:
    return "unknown";
  }
}

static gboolean check_cid(const char *id, GError **error) {
  if (!kv_id_validate(id, error)) {
    g_prefix_error(error, "container: ");
    return FALSE;
  }
  return TRUE;
}

static int simple_call(katavm_sandbox *sb, const KvMethod *m, gconstpointer params, gpointer result,
                       katavm_error **err) {
  g_autoptr(GError) e = NULL;
  return kv_sandbox_rpc(sb, m, params, result, &e) ? 0 : kv_error_propagate(err, e);
}

/* Whether the disk at path is hot-plugged on its own in sb's VM: given to
 * a container, it stays when that goes. */
static gboolean disk_plugged(const KvShimStateResult *st, const char *path) {
  for (guint i = 0; st->disks && i < st->disks->len; i++) {
    const KvDiskInfo *d = st->disks->pdata[i];
    if (d->plugged && !strcmp(d->path, path))
      return TRUE;
  }
  return FALSE;
}

/* Disk volumes: hot-plugged now that the container exists (its main
 * process waits for start), each mounted at its destination in the
 * container's mount namespace by the agent (disk_add). A failure detaches
 * those added before it for this container (plugged ones stay). */
static int add_disks(katavm_sandbox *sb, const char *id, GPtrArray *disks, katavm_error **err) {
  if (!disks)
    return 0;
  KvShimStateResult st = {0};
  g_autoptr(GError) se = NULL;
  if (!kv_sandbox_rpc(sb, &kv_m_shim_state, NULL, &st, &se))
    return kv_error_propagate(err, se);
  int rc = 0;
  for (guint i = 0; i < disks->len && rc == 0; i++) {
    const KvVolume *d = disks->pdata[i];
    katavm_hotplug_request req;
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
    req.path = d->source;
    req.readonly = d->readonly;
    req.container = id;
    req.mount_path = d->destination;
    katavm_error *he = NULL;
    rc = katavm_hotplug(sb, &req, NULL, &he);
    if (rc < 0) {
      /* Those added for this container go; plugged ones stay attached
       * (the container's removal unmounts them). */
      for (guint j = 0; j < i; j++) {
        const char *p = ((const KvVolume *)disks->pdata[j])->source;
        if (disk_plugged(&st, p))
          continue;
        katavm_hotplug_request rm;
        katavm_hotplug_request_init(&rm, KATAVM_HOTPLUG_DISK_REMOVE);
        rm.path = p;
        katavm_hotplug(sb, &rm, NULL, NULL);
      }
      rc = kv_error_set(err, katavm_error_code(he), "disk volume %s -> %s: %s", d->source,
                        d->destination, katavm_error_message(he));
      katavm_error_free(he);
    }
  }
  kv_msg_clear(kv_m_shim_state.result, &st);
  return rc;
}

/* After the container is removed: the disk volumes it had go from the VM
 * (the guest unmounted them with the container's mount namespace; the
 * agent's disk_remove syncs first). A detach that fails is logged by the
 * shim and leaves the disk attached, listed in `inspect`, removable with
 * `katavm hotplug SB disk rm PATH` or with the sandbox. */
static void detach_disks_of(katavm_sandbox *sb, const char *id) {
  g_autoptr(GError) e = NULL;
  KvShimStateResult st;
  if (!kv_sandbox_rpc(sb, &kv_m_shim_state, NULL, &st, &e))
    return;
  for (guint i = 0; st.disks && i < st.disks->len; i++) {
    const KvDiskInfo *d = st.disks->pdata[i];
    if (d->plugged || g_strcmp0(d->container, id))
      continue;
    katavm_hotplug_request rm;
    katavm_hotplug_request_init(&rm, KATAVM_HOTPLUG_DISK_REMOVE);
    rm.path = d->path;
    katavm_hotplug(sb, &rm, NULL, NULL);
  }
  kv_msg_clear(kv_m_shim_state.result, &st);
}

int katavm_container_add(katavm_sandbox *sb, const char *id, const katavm_container_config *cfg,
                         katavm_process **main_out, katavm_error **err) {
  if (!sb || !cfg)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and config must not be NULL");
  katavm_container_config cfg_copy;
  int abi_rc = kv_abi_copy_in(KV_ABI_CONTAINER_CONFIG, cfg, &cfg_copy, sizeof cfg_copy, err);
  if (abi_rc < 0)
    return abi_rc;
  cfg = &cfg_copy;
  if (!!cfg->bundle == !!cfg->rootfs)
    return kv_error_set(err, KATAVM_E_INVALID, "give either a bundle or a rootfs");
  g_autoptr(GError) e = NULL;
  if (!check_cid(id, &e))
    return kv_error_propagate(err, e);
  g_autofree char *rootfs = NULL;
  g_autoptr(JsonObject) spec = kv_oci_load(cfg->bundle, cfg->rootfs, &rootfs, &e);
  if (!spec)
    return kv_error_propagate(err, e);
  kv_oci_override(spec, cfg->argv, cfg->env, cfg->cwd, cfg->hostname, cfg->tty, cfg->readonly);
  if (cfg->storage_size_mib > 0) {
    if (cfg->storage_size_mib > KV_OCI_STORAGE_SIZE_MAX_MIB)
      return kv_error_set(err, KATAVM_E_INVALID, "storage_size_mib %u is out of range 1..%u",
                          cfg->storage_size_mib, KV_OCI_STORAGE_SIZE_MAX_MIB);
    if (cfg->readonly)
      return kv_error_set(err, KATAVM_E_INVALID,
                          "storage_size_mib bounds a writable layer: not with readonly");
    kv_oci_set_annotation(spec, KV_OCI_STORAGE_SIZE_ANNOTATION,
                          g_strdup_printf("%u", cfg->storage_size_mib));
  }
  g_autoptr(GPtrArray) disks = NULL;
  if (!kv_oci_add_volumes(spec, cfg->volumes, &e) ||
      !kv_oci_take_disks(spec, cfg->bundle, &disks, &e))
    return kv_error_propagate(err, e);
  /* The spec with the caller's overrides, read as the agent will read it. */
  g_autoptr(KvOciSpec) parsed = kv_oci_check(spec, &e);
  if (!parsed)
    return kv_error_propagate(err, e);
  /* Every bind mount is a volume: its source is the host's. */
  g_autoptr(GPtrArray) volumes = kv_oci_volumes(parsed, cfg->bundle, &e);
  if (!volumes)
    return kv_error_propagate(err, e);
  gboolean tty = parsed->process->terminal;
  /* A read-only root is shared read-only: its mount points are made on
   * the host first (with a guest-side writable layer, the guest makes
   * them in that layer). */
  g_autoptr(GPtrArray) points = parsed->root_readonly && parsed->storage_size_mib == 0
                                    ? kv_oci_mountpoints(parsed, volumes, disks)
                                    : NULL;
  KvContainerAddParams params = {
      .container_id = (char *)id,
      .spec = spec,
      .rootfs = rootfs,
      /* A bounded writable layer lives in the guest: the guest never
       * needs to write the host's rootfs then. */
      .readonly = parsed->root_readonly || parsed->storage_size_mib > 0,
      .volumes = volumes->len ? volumes : NULL,
      .mountpoints = points && points->len ? points : NULL,
  };
  katavm_process *p = NULL;
  if (!main_out) {
    int rc = simple_call(sb, &kv_m_shim_container_add, &params, NULL, err);
    if (rc < 0)
      return rc;
  } else {
    p = kv_process_start(sb, id, NULL, tty, TRUE, &kv_m_shim_container_add, &params,
                         &params.streams, &params.sink_fds, &e);
    if (!p)
      return kv_error_propagate(err, e);
  }
  int rc = add_disks(sb, id, disks, err);
  if (rc < 0) {
    katavm_process_free(p);
    katavm_container_remove(sb, id, 1, NULL);
    return rc;
  }
  if (main_out)
    *main_out = p;
  return 0;
}

int katavm_container_start(katavm_sandbox *sb, const char *id, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvContainerRef o = {.container_id = (char *)id};
  return simple_call(sb, &kv_m_container_start, &o, NULL, err);
}

int katavm_container_state(katavm_sandbox *sb, const char *id, katavm_container_state_t *state,
                           int *exit_code, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !state || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e)
             : kv_error_set(err, KATAVM_E_INVALID, "sandbox and state must not be NULL");
  KvContainerRef o = {.container_id = (char *)id};
  KvContainerStateResult r;
  int rc = simple_call(sb, &kv_m_container_state, &o, &r, err);
  if (rc < 0)
    return rc;
  const char *st = r.status;
  *state = !strcmp(st, KV_STATUS_CREATED)   ? KATAVM_CONTAINER_CREATED
           : !strcmp(st, KV_STATUS_RUNNING) ? KATAVM_CONTAINER_RUNNING
           : !strcmp(st, KV_STATUS_STOPPED) ? KATAVM_CONTAINER_STOPPED
           : !strcmp(st, KV_STATUS_PAUSED)  ? KATAVM_CONTAINER_PAUSED
                                            : KATAVM_CONTAINER_UNKNOWN;
  if (exit_code)
    *exit_code = (int)r.exit_code;
  kv_msg_clear(kv_m_container_state.result, &r);
  return 0;
}

int katavm_container_kill(katavm_sandbox *sb, const char *id, int signal, int all,
                          katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  if (signal <= 0 || signal >= 65)
    return kv_error_set(err, KATAVM_E_INVALID, "signal %d is out of range", signal);
  KvContainerKillParams o = {.container_id = (char *)id, .signal = signal, .all = all != 0};
  return simple_call(sb, &kv_m_container_kill, &o, NULL, err);
}

static int ref_call(katavm_sandbox *sb, const char *id, const KvMethod *m, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvContainerRef o = {.container_id = (char *)id};
  KvEmpty r;
  return simple_call(sb, m, &o, &r, err);
}

int katavm_container_pause(katavm_sandbox *sb, const char *id, katavm_error **err) {
  return ref_call(sb, id, &kv_m_container_pause, err);
}

int katavm_container_resume(katavm_sandbox *sb, const char *id, katavm_error **err) {
  return ref_call(sb, id, &kv_m_container_resume, err);
}

/* Guest memory a pod's VM keeps beyond its containers' memory limits: the
 * guest kernel and the agent (about 48 MiB, docs/performance.md). */
#define GUEST_RESERVE_MIB 64u
#define MIB (G_GINT64_CONSTANT(1) << 20)

/* What one container's limits ask of the VM: memory limit in bytes (0:
 * none) and whole vCPUs (quota / period rounded up; 0: none). */
typedef struct {
  gint64 memory;
  gint64 cpus;
} Ask;

/* The figures come from the guest: each is capped, and so is every sum
 * (each term at most the cap, so no sum overflows). */
#define ASK_MEMORY_MAX (G_GINT64_CONSTANT(1) << 50) /* 1 PiB */
#define ASK_CPUS_MAX G_GINT64_CONSTANT(1 << 20)

static gint64 cpus_of(gint64 quota, gint64 period) {
  if (quota <= 0)
    return 0;
  if (period <= 0)
    period = 100000; /* cgroup v2's default period */
  return MIN(quota / period + (quota % period != 0), ASK_CPUS_MAX);
}

/* The VM resize that new limits `res` of container id need: the sum of
 * the memory limits of the pod's live containers (id's new one in place
 * of its old) plus GUEST_RESERVE_MIB, and the sum of their CPU quotas in
 * whole vCPUs, against what the VM has now (boot memory plus hot-plugged,
 * vCPUs online). What is short is hot-plugged, within the max vCPUs and
 * max memory given at create; beyond them is KATAVM_E_INVALID naming the
 * figures, and nothing changes. Only limits that raise the sums count; the
 * VM never shrinks here. */
static int pod_fit(katavm_sandbox *sb, const char *id, const KvOciResources *res,
                   katavm_error **err) {
  gboolean want_mem = res->memory_limit > 0, want_cpu = res->cpu_quota > 0;
  if (!want_mem && !want_cpu)
    return 0;
  g_autoptr(GError) e = NULL;
  KvContainerListResult list;
  if (!kv_sandbox_rpc(sb, &kv_m_container_list, NULL, &list, &e))
    return kv_error_propagate(err, e);
  gint64 mem_sum = 0, cpu_sum = 0, mem_before = 0, cpu_before = 0;
  gboolean found = FALSE;
  for (guint i = 0; list.containers && i < list.containers->len; i++) {
    const KvContainerStateResult *c = list.containers->pdata[i];
    gboolean self = !strcmp(c->container_id, id);
    found |= self;
    if (!self && !strcmp(c->status, KV_STATUS_STOPPED))
      continue; /* holds no memory, uses no CPU */
    KvContainerRef ref = {.container_id = c->container_id};
    KvContainerStatsResult st;
    if (!kv_sandbox_rpc(sb, &kv_m_container_stats, &ref, &st, &e)) {
      int code = kv_error_code_of(e);
      if (code == KATAVM_E_NOT_FOUND || code == KATAVM_E_STATE) { /* gone, or being created */
        g_clear_error(&e);
        continue;
      }
      kv_msg_clear(kv_m_container_list.result, &list);
      return kv_error_propagate(err, e);
    }
    Ask a = {.memory = CLAMP(st.memory_max, 0, ASK_MEMORY_MAX),
             .cpus = cpus_of(st.cpu_max_quota, st.cpu_max_period)};
    mem_before = MIN(mem_before + a.memory, ASK_MEMORY_MAX);
    cpu_before = MIN(cpu_before + a.cpus, ASK_CPUS_MAX);
    if (self && want_mem)
      a.memory = MIN(res->memory_limit, ASK_MEMORY_MAX);
    if (self && want_cpu)
      a.cpus = cpus_of(res->cpu_quota, res->cpu_period > 0 ? res->cpu_period : st.cpu_max_period);
    mem_sum = MIN(mem_sum + a.memory, ASK_MEMORY_MAX);
    cpu_sum = MIN(cpu_sum + a.cpus, ASK_CPUS_MAX);
  }
  /* Only a raise grows the VM (or is refused): limits that ask no more
   * than before apply as they did, even in a VM smaller than its limits. */
  want_mem = want_mem && mem_sum > mem_before;
  want_cpu = want_cpu && cpu_sum > cpu_before;
  kv_msg_clear(kv_m_container_list.result, &list);
  if (!found)
    return kv_error_set(err, KATAVM_E_NOT_FOUND, "update: container %s: not found", id);
  KvShimStateResult vm;
  if (!kv_sandbox_rpc(sb, &kv_m_shim_state, NULL, &vm, &e))
    return kv_error_propagate(err, e);
  gint64 have_mib = vm.memory_mib + MAX(vm.memory_hotplugged_mib, 0);
  gint64 limits_mib = (mem_sum + MIB - 1) / MIB;
  gint64 need_mib = limits_mib + GUEST_RESERVE_MIB;
  gboolean dimm = !g_strcmp0(vm.memory_hotplug, "dimm");
  gint64 set_mib = 0, set_cpus = 0;
  int rc = 0;
  if (want_mem && need_mib > have_mib) {
    /* Whole blocks above the boot memory: 2 MiB (virtio-mem) or 128 MiB
     * DIMMs. */
    gint64 block = dimm ? 128 : 2;
    set_mib = vm.memory_mib + ((need_mib - vm.memory_mib + block - 1) / block) * block;
    if (set_mib > vm.max_memory_mib)
      rc = kv_error_set(err, KATAVM_E_INVALID,
                        "update %s: the pod's memory limits need %" G_GINT64_FORMAT
                        " MiB (its containers' limits, %" G_GINT64_FORMAT " MiB, plus %u MiB for "
                        "the guest), beyond the sandbox's max memory of %" G_GINT64_FORMAT
                        " MiB (max_memory_mib); the limits are unchanged",
                        id, set_mib, limits_mib, GUEST_RESERVE_MIB, vm.max_memory_mib);
  }
  if (!rc && want_cpu && cpu_sum > vm.cpus_online) {
    set_cpus = cpu_sum;
    if (set_cpus > vm.max_vcpus)
      rc = kv_error_set(err, KATAVM_E_INVALID,
                        "update %s: the pod's CPU quotas need %" G_GINT64_FORMAT
                        " vCPUs, beyond the sandbox's max of %" G_GINT64_FORMAT
                        " (max_vcpus); the limits are unchanged",
                        id, set_cpus, vm.max_vcpus);
  }
  kv_msg_clear(kv_m_shim_state.result, &vm);
  if (rc < 0)
    return rc;
  katavm_error *he = NULL;
  if (set_mib) {
    katavm_hotplug_request req;
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
    req.memory_op = KATAVM_MEMORY_SET;
    req.memory_mib = (unsigned int)set_mib;
    if (katavm_hotplug(sb, &req, NULL, &he) < 0)
      goto failed;
  }
  if (set_cpus) {
    katavm_hotplug_request req;
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_CPUS);
    req.cpus = (unsigned int)set_cpus;
    if (katavm_hotplug(sb, &req, NULL, &he) < 0)
      goto failed;
  }
  return 0;
failed:
  rc = kv_error_set(err, katavm_error_code(he), "update %s: growing the VM: %s", id,
                    katavm_error_message(he));
  katavm_error_free(he);
  return rc;
}

int katavm_container_update(katavm_sandbox *sb, const char *id, const char *resources_json,
                            katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !resources_json || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e)
             : kv_error_set(err, KATAVM_E_INVALID, "sandbox and resources must not be NULL");
  g_autoptr(JsonParser) jp = json_parser_new();
  if (!kv_json_check_text(resources_json, strlen(resources_json), &e) ||
      !json_parser_load_from_data(jp, resources_json, -1, &e))
    return kv_error_set(err, KATAVM_E_INVALID, "update: resources are malformed: %s", e->message);
  JsonNode *root = json_parser_get_root(jp);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root))
    return kv_error_set(err, KATAVM_E_INVALID, "update: resources must be a JSON object");
  /* Checked here as the agent will read it, for a clear error at once. */
  KvOciResources res;
  if (!kv_ocispec_resources_parse(json_node_get_object(root), &res, &e))
    return kv_error_propagate(err, e);
  /* The VM first: limits it cannot hold are refused before they apply. */
  int rc = pod_fit(sb, id, &res, err);
  kv_ocispec_resources_clear(&res);
  if (rc < 0)
    return rc;
  KvContainerUpdateParams o = {.container_id = (char *)id, .resources = json_node_get_object(root)};
  KvEmpty r;
  return simple_call(sb, &kv_m_container_update, &o, &r, err);
}

/* A figure of the agent: -1 (absent) is 0 for the caller, or "unlimited"
 * for a limit. */
static uint64_t figure(gint64 v) {
  return v < 0 ? 0 : (uint64_t)v;
}
static uint64_t limit(gint64 v) {
  return v < 0 ? KATAVM_STATS_UNLIMITED : (uint64_t)v;
}

int katavm_container_get_stats(katavm_sandbox *sb, const char *id, katavm_container_stats *st,
                               katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !st || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e)
             : kv_error_set(err, KATAVM_E_INVALID, "sandbox and stats must not be NULL");
  int rc = kv_abi_check_out(KV_ABI_CONTAINER_STATS, st, err);
  if (rc < 0)
    return rc;
  KvContainerRef o = {.container_id = (char *)id};
  KvContainerStatsResult r;
  rc = simple_call(sb, &kv_m_container_stats, &o, &r, err);
  if (rc < 0)
    return rc;
  katavm_container_stats l = {.struct_size = sizeof l};
  l.cpu_usage_usec = figure(r.cpu_usage_usec);
  l.cpu_user_usec = figure(r.cpu_user_usec);
  l.cpu_system_usec = figure(r.cpu_system_usec);
  l.cpu_nr_periods = figure(r.cpu_nr_periods);
  l.cpu_nr_throttled = figure(r.cpu_nr_throttled);
  l.cpu_throttled_usec = figure(r.cpu_throttled_usec);
  l.memory_usage = figure(r.memory_current);
  l.memory_limit = limit(r.memory_max);
  l.swap_usage = figure(r.memory_swap_current);
  l.swap_limit = limit(r.memory_swap_max);
  l.memory_anon = figure(r.memory_anon);
  l.memory_file = figure(r.memory_file);
  l.memory_kernel_stack = figure(r.memory_kernel_stack);
  l.memory_slab = figure(r.memory_slab);
  l.memory_sock = figure(r.memory_sock);
  l.memory_shmem = figure(r.memory_shmem);
  l.memory_file_mapped = figure(r.memory_file_mapped);
  l.memory_active_anon = figure(r.memory_active_anon);
  l.memory_inactive_anon = figure(r.memory_inactive_anon);
  l.memory_active_file = figure(r.memory_active_file);
  l.memory_inactive_file = figure(r.memory_inactive_file);
  l.memory_pgfault = figure(r.memory_pgfault);
  l.memory_pgmajfault = figure(r.memory_pgmajfault);
  l.memory_events_low = figure(r.memory_events_low);
  l.memory_events_high = figure(r.memory_events_high);
  l.memory_events_max = figure(r.memory_events_max);
  l.memory_events_oom = figure(r.memory_events_oom);
  l.memory_events_oom_kill = figure(r.memory_events_oom_kill);
  l.pids_current = figure(r.pids_current);
  l.pids_limit = limit(r.pids_max);
  l.cpu_quota_usec = limit(r.cpu_max_quota);
  l.cpu_period_usec = figure(r.cpu_max_period);
  kv_abi_copy_out(KV_ABI_CONTAINER_STATS, st, &l, sizeof l);
  return 0;
}

int katavm_container_wait(katavm_sandbox *sb, const char *id, int *exit_code, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvProcessRef o = {.container_id = (char *)id};
  KvWaitResult r;
  int rc = simple_call(sb, &kv_m_wait, &o, &r, err);
  if (rc < 0)
    return rc;
  if (exit_code)
    *exit_code = (int)r.exit_code;
  return 0;
}

int katavm_container_remove(katavm_sandbox *sb, const char *id, int force, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvContainerRemoveParams o = {.container_id = (char *)id, .force = force != 0};
  int rc = simple_call(sb, &kv_m_container_remove, &o, NULL, err);
  if (rc == 0)
    detach_disks_of(sb, id);
  return rc;
}

int katavm_container_list(katavm_sandbox *sb, char ***ids_out, katavm_error **err) {
  if (!sb || !ids_out)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and ids_out must not be NULL");
  KvContainerListResult r;
  int rc = simple_call(sb, &kv_m_container_list, NULL, &r, err);
  if (rc < 0)
    return rc;
  guint n = r.containers ? r.containers->len : 0;
  char **v = calloc(n + 1, sizeof(char *));
  for (guint i = 0; i < n; i++)
    v[i] = strdup(((KvContainerStateResult *)r.containers->pdata[i])->container_id);
  kv_msg_clear(kv_m_container_list.result, &r);
  *ids_out = v;
  return 0;
}

/* An OCI process object given as JSON text, checked as the agent will read
 * it (what it leaves out comes from the container there). */
static JsonObject *oci_process(const char *json, gboolean *tty, GError **error) {
  g_autoptr(JsonParser) jp = json_parser_new();
  g_autoptr(GError) pe = NULL;
  if (!kv_json_check_text(json, strlen(json), &pe) ||
      !json_parser_load_from_data(jp, json, -1, &pe)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "exec: process is malformed: %s", pe->message);
    return NULL;
  }
  JsonNode *r = json_parser_get_root(jp);
  if (!r || !JSON_NODE_HOLDS_OBJECT(r)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "exec: process must be a JSON object");
    return NULL;
  }
  JsonObject *o = json_node_get_object(r);
  g_autoptr(KvOciProcess) parsed = kv_ocispec_process_parse(o, NULL, "exec: process", error);
  if (!parsed)
    return NULL;
  *tty = parsed->terminal;
  return json_object_ref(o);
}

int katavm_exec(katavm_sandbox *sb, const char *container_id, const katavm_exec_config *cfg,
                katavm_process **out, katavm_error **err) {
  if (!sb || !cfg || !out)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox, config and out must not be NULL");
  katavm_exec_config cfg_copy;
  int abi_rc = kv_abi_copy_in(KV_ABI_EXEC_CONFIG, cfg, &cfg_copy, sizeof cfg_copy, err);
  if (abi_rc < 0)
    return abi_rc;
  cfg = &cfg_copy;
  g_autoptr(GError) e = NULL;
  if (!check_cid(container_id, &e))
    return kv_error_propagate(err, e);
  g_autoptr(JsonObject) proc = NULL;
  gboolean tty = cfg->tty != 0;
  if (cfg->oci_process) {
    proc = oci_process(cfg->oci_process, &tty, &e);
    if (!proc)
      return kv_error_propagate(err, e);
  } else {
    if (!cfg->argv || !cfg->argv[0] || !*cfg->argv[0])
      return kv_error_set(err, KATAVM_E_INVALID, "exec: argv must name a command");
    if (cfg->cwd && !g_path_is_absolute(cfg->cwd))
      return kv_error_set(err, KATAVM_E_INVALID, "exec: cwd '%s' must be absolute", cfg->cwd);
    proc = kv_oci_process_new(cfg->argv, cfg->env, cfg->cwd, cfg->set_user, cfg->uid, cfg->gid, tty,
                              cfg->rows ? cfg->rows : 24, cfg->cols ? cfg->cols : 80);
  }
  g_autofree char *exec_id = kv_id_generate();
  KvExecParams params = {.container_id = (char *)container_id, .exec_id = exec_id, .process = proc};
  katavm_process *p = kv_process_start(sb, container_id, exec_id, tty, !cfg->no_stdin, &kv_m_exec,
                                       &params, &params.streams, &params.sink_fds, &e);
  if (!p)
    return kv_error_propagate(err, e);
  *out = p;
  return 0;
}
