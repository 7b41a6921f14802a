/* lib/proto/msg.c: the field tables of every message (the contract), the
 * method table, and typed calls and replies on a KvConn. */
#include "msg.h"

#include <string.h>

/* ---- the tables ---- */

#define FIELD KV_FIELD
#define MSG(T, label, ...)                                                                         \
  static const KvField T##_fields[] = {__VA_ARGS__, {NULL}};                                       \
  static const KvMsgDesc T##_desc = {label, sizeof(T), T##_fields}

#define REQ KV_F_REQUIRED
#define NE KV_F_NONEMPTY
#define OMIT KV_F_OMIT
#define SIGNAL_MAX 64 /* SIGRTMAX on Linux */

static const KvField KvEmpty_fields[] = {{NULL}};
static const KvMsgDesc KvEmpty_desc = {"empty", sizeof(KvEmpty), KvEmpty_fields};

MSG(KvStreams, "streams", FIELD(KvStreams, "stdin", KV_T_U32, 0, stdin_id),
    FIELD(KvStreams, "stdout", KV_T_U32, 0, stdout_id),
    FIELD(KvStreams, "stderr", KV_T_U32, 0, stderr_id));

MSG(KvCheckResult, "check result",
    FIELD(KvCheckResult, "agent_version", KV_T_STR, 0, agent_version),
    FIELD(KvCheckResult, "proto", KV_T_INT, 0, proto),
    FIELD(KvCheckResult, "kernel", KV_T_STR, 0, kernel),
    FIELD(KvCheckResult, "cpus_online", KV_T_INT, 0, cpus_online, .def = -1),
    FIELD(KvCheckResult, "mem_total_kib", KV_T_INT, 0, mem_total_kib, .def = -1),
    FIELD(KvCheckResult, "uptime_ms", KV_T_INT, 0, uptime_ms, .def = -1),
    FIELD(KvCheckResult, "late_boot_done", KV_T_BOOL, 0, late_boot_done));

#define PATH_MAX_LEN 4096
MSG(KvVolume, "volume", FIELD(KvVolume, "mount", KV_T_INT, REQ, mount, 0, 1023),
    FIELD(KvVolume, "source", KV_T_STR, REQ | NE, source, .max = PATH_MAX_LEN),
    FIELD(KvVolume, "destination", KV_T_STR, REQ | NE, destination, .max = PATH_MAX_LEN),
    FIELD(KvVolume, "readonly", KV_T_BOOL, 0, readonly));

MSG(KvMountPoint, "mount point",
    FIELD(KvMountPoint, "path", KV_T_STR, REQ | NE, path, .max = PATH_MAX_LEN),
    FIELD(KvMountPoint, "file", KV_T_BOOL, 0, file));

MSG(KvContainerAddParams, "container_add",
    FIELD(KvContainerAddParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvContainerAddParams, "spec", KV_T_OBJECT, REQ, spec),
    FIELD(KvContainerAddParams, "rootfs", KV_T_STR, REQ | NE, rootfs),
    FIELD(KvContainerAddParams, "readonly", KV_T_BOOL, 0, readonly),
    FIELD(KvContainerAddParams, "streams", KV_T_STRUCT, 0, streams, .sub = &KvStreams_desc),
    FIELD(KvContainerAddParams, "sink_fds", KV_T_BOOL, OMIT, sink_fds),
    FIELD(KvContainerAddParams, "volumes", KV_T_LIST, 0, volumes, .max = KV_VOLUMES_MAX,
          .sub = &KvVolume_desc),
    FIELD(KvContainerAddParams, "mountpoints", KV_T_LIST, 0, mountpoints, .max = KV_MOUNTPOINTS_MAX,
          .sub = &KvMountPoint_desc));

MSG(KvContainerCreateParams, "container_create",
    FIELD(KvContainerCreateParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvContainerCreateParams, "spec", KV_T_OBJECT, REQ, spec),
    FIELD(KvContainerCreateParams, "rootfs", KV_T_STR, NE, rootfs),
    FIELD(KvContainerCreateParams, "streams", KV_T_STRUCT, 0, streams, .sub = &KvStreams_desc),
    FIELD(KvContainerCreateParams, "volumes", KV_T_LIST, 0, volumes, .max = KV_VOLUMES_MAX,
          .sub = &KvVolume_desc));

MSG(KvPidResult, "pid result", FIELD(KvPidResult, "pid", KV_T_INT, 0, pid, .def = -1));

MSG(KvContainerRef, "container", FIELD(KvContainerRef, "container_id", KV_T_ID, REQ, container_id));

MSG(KvContainerStateResult, "container_state result",
    FIELD(KvContainerStateResult, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvContainerStateResult, "status", KV_T_STR, REQ | NE, status),
    FIELD(KvContainerStateResult, "pid", KV_T_INT, OMIT, pid, .def = -1),
    FIELD(KvContainerStateResult, "exit_code", KV_T_INT, OMIT, exit_code, .def = -1));

MSG(KvContainerKillParams, "container_kill",
    FIELD(KvContainerKillParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvContainerKillParams, "signal", KV_T_INT, REQ, signal, 1, SIGNAL_MAX),
    FIELD(KvContainerKillParams, "all", KV_T_BOOL, 0, all));

MSG(KvContainerUpdateParams, "container_update",
    FIELD(KvContainerUpdateParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvContainerUpdateParams, "resources", KV_T_OBJECT, REQ, resources));

/* Every figure: -1 (absent, or "max" for a limit) up to G_MAXINT64. */
#define STAT(f) FIELD(KvContainerStatsResult, #f, KV_T_INT, 0, f, -1, G_MAXINT64, .def = -1)
MSG(KvContainerStatsResult, "container_stats result", STAT(cpu_usage_usec), STAT(cpu_user_usec),
    STAT(cpu_system_usec), STAT(cpu_nr_periods), STAT(cpu_nr_throttled), STAT(cpu_throttled_usec),
    STAT(cpu_max_quota), STAT(cpu_max_period), STAT(memory_current), STAT(memory_max),
    STAT(memory_swap_current), STAT(memory_swap_max), STAT(memory_anon), STAT(memory_file),
    STAT(memory_kernel_stack), STAT(memory_slab), STAT(memory_sock), STAT(memory_shmem),
    STAT(memory_file_mapped), STAT(memory_active_anon), STAT(memory_inactive_anon),
    STAT(memory_active_file), STAT(memory_inactive_file), STAT(memory_pgfault),
    STAT(memory_pgmajfault), STAT(memory_events_low), STAT(memory_events_high),
    STAT(memory_events_max), STAT(memory_events_oom), STAT(memory_events_oom_kill),
    STAT(pids_current), STAT(pids_max));
#undef STAT

MSG(KvContainerRemoveParams, "container_remove",
    FIELD(KvContainerRemoveParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvContainerRemoveParams, "force", KV_T_BOOL, 0, force));

MSG(KvContainerListResult, "container_list result",
    FIELD(KvContainerListResult, "containers", KV_T_LIST, 0, containers,
          .sub = &KvContainerStateResult_desc));

MSG(KvExecParams, "exec", FIELD(KvExecParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvExecParams, "exec_id", KV_T_ID, REQ, exec_id),
    FIELD(KvExecParams, "process", KV_T_OBJECT, REQ, process),
    FIELD(KvExecParams, "streams", KV_T_STRUCT, 0, streams, .sub = &KvStreams_desc),
    FIELD(KvExecParams, "sink_fds", KV_T_BOOL, OMIT, sink_fds));

MSG(KvProcessRef, "wait", FIELD(KvProcessRef, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvProcessRef, "exec_id", KV_T_ID, 0, exec_id));

MSG(KvWaitResult, "wait result", FIELD(KvWaitResult, "exit_code", KV_T_INT, REQ, exit_code),
    FIELD(KvWaitResult, "signal", KV_T_INT, 0, signal));

MSG(KvSignalParams, "signal", FIELD(KvSignalParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvSignalParams, "exec_id", KV_T_ID, 0, exec_id),
    FIELD(KvSignalParams, "signal", KV_T_INT, REQ, signal, 1, SIGNAL_MAX));

MSG(KvResizeParams, "resize", FIELD(KvResizeParams, "container_id", KV_T_ID, REQ, container_id),
    FIELD(KvResizeParams, "exec_id", KV_T_ID, 0, exec_id),
    FIELD(KvResizeParams, "rows", KV_T_INT, REQ, rows, 1, G_MAXUINT16),
    FIELD(KvResizeParams, "cols", KV_T_INT, REQ, cols, 1, G_MAXUINT16));

#define RESEED_HEX_MAX 512
MSG(KvReseedParams, "reseed",
    FIELD(KvReseedParams, "seed", KV_T_STR, REQ | NE, seed, .max = RESEED_HEX_MAX));

MSG(KvAdoptParams, "adopt", FIELD(KvAdoptParams, "id", KV_T_ID, REQ, id),
    FIELD(KvAdoptParams, "netns", KV_T_STR, NE, netns, .max = PATH_MAX_LEN),
    FIELD(KvAdoptParams, "netns_fd", KV_T_BOOL, OMIT, netns_fd),
    FIELD(KvAdoptParams, "net", KV_T_STR, NE, net, .max = 16),
    FIELD(KvAdoptParams, "publish", KV_T_STRV, 0, publish, .max = 64));

MSG(KvCpusSetParams, "cpus_set", FIELD(KvCpusSetParams, "online", KV_T_INT, REQ, online, 1, 1024));
MSG(KvCpusResult, "cpus_set result",
    FIELD(KvCpusResult, "cpus_online", KV_T_INT, 0, cpus_online, .def = -1));

#define ADDR_MAX 64 /* longer than any IPv6 CIDR */
MSG(KvRoute, "route", FIELD(KvRoute, "dst", KV_T_STR, REQ | NE, dst, .max = ADDR_MAX),
    FIELD(KvRoute, "gateway", KV_T_STR, NE, gateway, .max = ADDR_MAX),
    FIELD(KvRoute, "metric", KV_T_INT, OMIT, metric, 0, G_MAXUINT32));
MSG(KvNeighbour, "neighbour",
    FIELD(KvNeighbour, "address", KV_T_STR, REQ | NE, address, .max = ADDR_MAX),
    FIELD(KvNeighbour, "mac", KV_T_STR, REQ | NE, mac, .max = 17));
MSG(KvNicConfigParams, "nic_config", FIELD(KvNicConfigParams, "mac", KV_T_STR, REQ | NE, mac),
    FIELD(KvNicConfigParams, "mtu", KV_T_INT, 0, mtu, 68, 65535, .def = 1500),
    FIELD(KvNicConfigParams, "addresses", KV_T_STRV, 0, addresses),
    FIELD(KvNicConfigParams, "gateway", KV_T_STR, NE, gateway),
    FIELD(KvNicConfigParams, "routes", KV_T_LIST, 0, routes, .sub = &KvRoute_desc),
    FIELD(KvNicConfigParams, "neighbours", KV_T_LIST, 0, neighbours, .sub = &KvNeighbour_desc));
MSG(KvNicConfigResult, "nic_config result",
    FIELD(KvNicConfigResult, "ifname", KV_T_STR, 0, ifname));
MSG(KvNicRemoveParams, "nic_remove", FIELD(KvNicRemoveParams, "mac", KV_T_STR, REQ | NE, mac));
MSG(KvNetIfaceInfo, "interface", FIELD(KvNetIfaceInfo, "name", KV_T_STR, REQ | NE, name, .max = 15),
    FIELD(KvNetIfaceInfo, "mac", KV_T_STR, 0, mac, .max = 64),
    FIELD(KvNetIfaceInfo, "mtu", KV_T_INT, 0, mtu, 0, G_MAXUINT32),
    FIELD(KvNetIfaceInfo, "state", KV_T_STR, REQ | NE, state, .max = 8),
    FIELD(KvNetIfaceInfo, "carrier", KV_T_BOOL, 0, carrier),
    FIELD(KvNetIfaceInfo, "addresses", KV_T_STRV, 0, addresses, .max = ADDR_MAX));
MSG(KvNetRouteInfo, "route info",
    FIELD(KvNetRouteInfo, "dst", KV_T_STR, REQ | NE, dst, .max = ADDR_MAX),
    FIELD(KvNetRouteInfo, "gateway", KV_T_STR, NE, gateway, .max = ADDR_MAX),
    FIELD(KvNetRouteInfo, "dev", KV_T_STR, NE, dev, .max = 15),
    FIELD(KvNetRouteInfo, "metric", KV_T_INT, OMIT, metric, 0, G_MAXUINT32));
MSG(KvNetInfoResult, "net_info result",
    FIELD(KvNetInfoResult, "interfaces", KV_T_LIST, 0, interfaces, .sub = &KvNetIfaceInfo_desc),
    FIELD(KvNetInfoResult, "routes", KV_T_LIST, 0, routes, .sub = &KvNetRouteInfo_desc));
MSG(KvNetNamesParams, "net_names",
    FIELD(KvNetNamesParams, "hostname", KV_T_STR, REQ | NE, hostname, .max = 64),
    FIELD(KvNetNamesParams, "address", KV_T_STR, NE, address, .max = ADDR_MAX),
    FIELD(KvNetNamesParams, "nameservers", KV_T_STRV, 0, nameservers, .max = ADDR_MAX),
    FIELD(KvNetNamesParams, "search", KV_T_STRV, 0, search, .max = 253),
    FIELD(KvNetNamesParams, "options", KV_T_STRV, 0, options, .max = 64));

/* A virtio-blk serial holds 20 bytes. */
#define SERIAL_MAX 20
MSG(KvDiskAddParams, "disk_add",
    FIELD(KvDiskAddParams, "serial", KV_T_STR, REQ | NE, serial, .max = SERIAL_MAX),
    FIELD(KvDiskAddParams, "readonly", KV_T_BOOL, 0, readonly),
    FIELD(KvDiskAddParams, "container_id", KV_T_ID, 0, container_id),
    FIELD(KvDiskAddParams, "path", KV_T_STR, NE, path));
MSG(KvDiskAddResult, "disk_add result", FIELD(KvDiskAddResult, "device", KV_T_STR, 0, device));
MSG(KvDiskRemoveParams, "disk_remove",
    FIELD(KvDiskRemoveParams, "serial", KV_T_STR, REQ | NE, serial, .max = SERIAL_MAX));

MSG(KvNicInfo, "nic", FIELD(KvNicInfo, "mac", KV_T_STR, REQ | NE, mac),
    FIELD(KvNicInfo, "tap", KV_T_STR, REQ | NE, tap),
    FIELD(KvNicInfo, "ifname", KV_T_STR, 0, ifname));
MSG(KvDiskInfo, "disk", FIELD(KvDiskInfo, "path", KV_T_STR, REQ | NE, path),
    FIELD(KvDiskInfo, "serial", KV_T_STR, REQ | NE, serial),
    FIELD(KvDiskInfo, "device", KV_T_STR, 0, device),
    FIELD(KvDiskInfo, "container", KV_T_ID, 0, container),
    FIELD(KvDiskInfo, "plugged", KV_T_BOOL, 0, plugged));
MSG(KvNetTap, "net tap", FIELD(KvNetTap, "tap", KV_T_STR, REQ | NE, tap, .max = 15),
    FIELD(KvNetTap, "link", KV_T_STR, REQ | NE, link, .max = 15),
    FIELD(KvNetTap, "mac", KV_T_STR, 0, mac, .max = 17),
    FIELD(KvNetTap, "qdisc", KV_T_BOOL, 0, qdisc));

MSG(KvShimStateResult, "state result", FIELD(KvShimStateResult, "id", KV_T_ID, REQ, id),
    FIELD(KvShimStateResult, "state", KV_T_STR, REQ | NE, state),
    FIELD(KvShimStateResult, "shim_pid", KV_T_INT, 0, shim_pid),
    FIELD(KvShimStateResult, "qemu_pid", KV_T_INT, 0, qemu_pid),
    FIELD(KvShimStateResult, "accel", KV_T_STR, 0, accel),
    FIELD(KvShimStateResult, "libvirt_uri", KV_T_STR, 0, libvirt_uri),
    FIELD(KvShimStateResult, "vcpus", KV_T_INT, 0, vcpus),
    FIELD(KvShimStateResult, "max_vcpus", KV_T_INT, 0, max_vcpus),
    FIELD(KvShimStateResult, "memory_mib", KV_T_INT, 0, memory_mib),
    FIELD(KvShimStateResult, "max_memory_mib", KV_T_INT, 0, max_memory_mib),
    FIELD(KvShimStateResult, "created", KV_T_STR, 0, created),
    FIELD(KvShimStateResult, "console_log", KV_T_STR, 0, console_log),
    FIELD(KvShimStateResult, "memory_hotplug", KV_T_STR, 0, memory_hotplug),
    FIELD(KvShimStateResult, "dimms_mib", KV_T_INTV, 0, dimms_mib, 0, G_MAXUINT32),
    FIELD(KvShimStateResult, "cpus_online", KV_T_INT, 0, cpus_online),
    FIELD(KvShimStateResult, "memory_hotplugged_mib", KV_T_INT, 0, memory_hotplugged_mib),
    FIELD(KvShimStateResult, "nics", KV_T_LIST, 0, nics, .sub = &KvNicInfo_desc),
    FIELD(KvShimStateResult, "disks", KV_T_LIST, 0, disks, .sub = &KvDiskInfo_desc),
    FIELD(KvShimStateResult, "netns", KV_T_STR, NE, netns),
    FIELD(KvShimStateResult, "net_taps", KV_T_LIST, 0, net_taps, .sub = &KvNetTap_desc),
    FIELD(KvShimStateResult, "shared_fs", KV_T_STR, NE, shared_fs, .max = 16),
    FIELD(KvShimStateResult, "virtiofsd_pid", KV_T_INT, OMIT, virtiofsd_pid, 0, G_MAXINT32),
    FIELD(KvShimStateResult, "error", KV_T_STR, NE, error, .max = 4096),
    FIELD(KvShimStateResult, "stop_reason", KV_T_STR, 0, stop_reason),
    FIELD(KvShimStateResult, "net_warnings", KV_T_STRV, 0, net_warnings, .max = 512));

MSG(KvHotplugParams, "hotplug", FIELD(KvHotplugParams, "kind", KV_T_STR, REQ | NE, kind),
    FIELD(KvHotplugParams, "cpus", KV_T_INT, OMIT, cpus),
    FIELD(KvHotplugParams, "op", KV_T_STR, 0, op), FIELD(KvHotplugParams, "mib", KV_T_INT, 0, mib),
    FIELD(KvHotplugParams, "tap", KV_T_STR, 0, tap),
    FIELD(KvHotplugParams, "mac", KV_T_STR, 0, mac),
    FIELD(KvHotplugParams, "mtu", KV_T_INT, OMIT, mtu),
    FIELD(KvHotplugParams, "addresses", KV_T_STRV, 0, addresses),
    FIELD(KvHotplugParams, "gateway", KV_T_STR, 0, gateway),
    FIELD(KvHotplugParams, "path", KV_T_STR, 0, path),
    FIELD(KvHotplugParams, "readonly", KV_T_BOOL, OMIT, readonly),
    FIELD(KvHotplugParams, "container_id", KV_T_ID, 0, container_id),
    FIELD(KvHotplugParams, "mount_path", KV_T_STR, 0, mount_path),
    FIELD(KvHotplugParams, "netns_iface", KV_T_STR, NE, netns_iface, .max = 15));
MSG(KvHotplugResult, "hotplug result",
    FIELD(KvHotplugResult, "cpus_online", KV_T_INT, OMIT, cpus_online, .def = -1),
    FIELD(KvHotplugResult, "mem_total_kib", KV_T_INT, OMIT, mem_total_kib, .def = -1),
    FIELD(KvHotplugResult, "memory_mib", KV_T_INT, OMIT, memory_mib, .def = -1),
    FIELD(KvHotplugResult, "mac", KV_T_STR, 0, mac),
    FIELD(KvHotplugResult, "ifname", KV_T_STR, 0, ifname),
    FIELD(KvHotplugResult, "serial", KV_T_STR, 0, serial),
    FIELD(KvHotplugResult, "device", KV_T_STR, 0, device),
    FIELD(KvHotplugResult, "elapsed_us", KV_T_INT, OMIT, elapsed_us, .def = -1));

static const KvField KvStatePid_fields[] = {
    FIELD(KvStatePid, "shim_pid", KV_T_INT, REQ, shim_pid, 2, G_MAXINT32), {NULL}};
const KvMsgDesc kv_state_pid_desc = {"state.json", sizeof(KvStatePid), KvStatePid_fields};

#define METHOD(var, name, params, result, flags)                                                   \
  const KvMethod kv_m_##var = {name, &params##_desc, &result##_desc, flags}

METHOD(ping, "ping", KvEmpty, KvEmpty, KV_TO_AGENT | KV_TO_SHIM);
METHOD(check, "check", KvEmpty, KvCheckResult, KV_TO_AGENT);
METHOD(shutdown, "shutdown", KvEmpty, KvEmpty, KV_TO_AGENT);
METHOD(container_create, "container_create", KvContainerCreateParams, KvPidResult, KV_TO_AGENT);
METHOD(container_start, "container_start", KvContainerRef, KvEmpty, KV_TO_AGENT | KV_RELAYED);
METHOD(container_state, "container_state", KvContainerRef, KvContainerStateResult,
       KV_TO_AGENT | KV_RELAYED);
METHOD(container_kill, "container_kill", KvContainerKillParams, KvEmpty, KV_TO_AGENT | KV_RELAYED);
METHOD(container_remove, "container_remove", KvContainerRemoveParams, KvEmpty,
       KV_TO_AGENT | KV_RELAYED);
METHOD(container_list, "container_list", KvEmpty, KvContainerListResult, KV_TO_AGENT | KV_RELAYED);
METHOD(exec, "exec", KvExecParams, KvPidResult, KV_TO_AGENT | KV_RELAYED);
METHOD(wait, "wait", KvProcessRef, KvWaitResult, KV_TO_AGENT | KV_RELAYED | KV_NO_TIMEOUT);
METHOD(signal, "signal", KvSignalParams, KvEmpty, KV_TO_AGENT | KV_RELAYED);
METHOD(resize, "resize", KvResizeParams, KvEmpty, KV_TO_AGENT | KV_RELAYED);
METHOD(cpus_set, "cpus_set", KvCpusSetParams, KvCpusResult, KV_TO_AGENT);
METHOD(reseed, "reseed", KvReseedParams, KvEmpty, KV_TO_AGENT);
METHOD(shim_adopt, "adopt", KvAdoptParams, KvEmpty, KV_TO_SHIM);
METHOD(nic_config, "nic_config", KvNicConfigParams, KvNicConfigResult, KV_TO_AGENT);
METHOD(nic_remove, "nic_remove", KvNicRemoveParams, KvEmpty, KV_TO_AGENT);
METHOD(net_names, "net_names", KvNetNamesParams, KvEmpty, KV_TO_AGENT);
METHOD(net_info, "net_info", KvEmpty, KvNetInfoResult, KV_TO_AGENT | KV_RELAYED);
METHOD(disk_add, "disk_add", KvDiskAddParams, KvDiskAddResult, KV_TO_AGENT);
METHOD(disk_remove, "disk_remove", KvDiskRemoveParams, KvEmpty, KV_TO_AGENT);
METHOD(shim_state, "state", KvEmpty, KvShimStateResult, KV_TO_SHIM);
METHOD(shim_agent_check, "agent_check", KvEmpty, KvCheckResult, KV_TO_SHIM);
METHOD(shim_stop, "stop", KvEmpty, KvEmpty, KV_TO_SHIM);
METHOD(shim_destroy, "destroy", KvEmpty, KvEmpty, KV_TO_SHIM);
METHOD(shim_hotplug, "hotplug", KvHotplugParams, KvHotplugResult, KV_TO_SHIM);
METHOD(shim_container_add, "container_add", KvContainerAddParams, KvPidResult, KV_TO_SHIM);
METHOD(container_pause, "container_pause", KvContainerRef, KvEmpty, KV_TO_AGENT | KV_RELAYED);
METHOD(container_resume, "container_resume", KvContainerRef, KvEmpty, KV_TO_AGENT | KV_RELAYED);
METHOD(container_update, "container_update", KvContainerUpdateParams, KvEmpty,
       KV_TO_AGENT | KV_RELAYED);
METHOD(container_stats, "container_stats", KvContainerRef, KvContainerStatsResult,
       KV_TO_AGENT | KV_RELAYED);

static const KvMethod *const all_methods[] = {
    &kv_m_ping,
    &kv_m_check,
    &kv_m_shutdown,
    &kv_m_container_create,
    &kv_m_container_start,
    &kv_m_container_state,
    &kv_m_container_kill,
    &kv_m_container_remove,
    &kv_m_container_list,
    &kv_m_exec,
    &kv_m_wait,
    &kv_m_signal,
    &kv_m_resize,
    &kv_m_cpus_set,
    &kv_m_nic_config,
    &kv_m_nic_remove,
    &kv_m_net_names,
    &kv_m_net_info,
    &kv_m_disk_add,
    &kv_m_disk_remove,
    &kv_m_shim_state,
    &kv_m_shim_agent_check,
    &kv_m_shim_stop,
    &kv_m_shim_destroy,
    &kv_m_shim_hotplug,
    &kv_m_shim_container_add,
    &kv_m_container_pause,
    &kv_m_container_resume,
    &kv_m_container_update,
    &kv_m_reseed,
    &kv_m_container_stats,
    &kv_m_shim_adopt,
};

const KvMethod *kv_method_lookup(const char *name) {
  for (gsize i = 0; name && i < G_N_ELEMENTS(all_methods); i++)
    if (!strcmp(all_methods[i]->name, name))
      return all_methods[i];
  return NULL;
}

const KvMethod *const *kv_methods(guint *n) {
  *n = G_N_ELEMENTS(all_methods);
  return all_methods;
}

gboolean kv_params_decode(const KvMethod *m, JsonObject *params, gpointer out, GError **error) {
  return kv_msg_decode_as(m->params, params, out, m->name, error);
}

gboolean kv_result_decode(const KvMethod *m, JsonObject *result, gpointer out, GError **error) {
  g_autofree char *where = g_strdup_printf("%s result", m->name);
  return kv_msg_decode_as(m->result, result, out, where, error);
}

/* ---- typed calls ---- */

void kv_call(KvConn *c, const KvMethod *m, gconstpointer params, guint timeout_ms, KvReplyFunc cb,
             gpointer user) {
  g_autoptr(JsonObject) o = kv_msg_encode(m->params, params);
  kv_conn_call(c, m->name, o, (m->flags & KV_NO_TIMEOUT) ? 0 : timeout_ms, cb, user);
}

void kv_reply(KvConn *c, guint32 id, const KvMethod *m, gconstpointer result) {
  g_autoptr(JsonObject) o = kv_msg_encode(m->result, result);
  kv_conn_reply(c, id, o);
}

void kv_reply_gerror(KvConn *c, guint32 id, const GError *error, KvCode fallback) {
  int code = error->domain == KV_ERROR_DOMAIN && error->code < 0 && error->code >= KV_E_MIN
                 ? error->code
                 : (int)fallback;
  kv_conn_reply_error(c, id, code, error->message);
}
