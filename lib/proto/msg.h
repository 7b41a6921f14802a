/* lib/proto/msg.h: the messages of the katavm protocol, typed.
 *
 * This is the contract between the library, the shim and the agent, in the
 * role Kata's agent.proto plays: every RPC method is one KvMethod with a
 * typed params struct and a typed result struct, each described by a table
 * of fields (name on the wire, type, offset, bounds). One decoder and one
 * encoder walk those tables, so the JSON on the wire is spelled here and
 * nowhere else: callers fill and read C structs.
 *
 * Why tables and not a generator: the messages are few and small, the
 * tables are plain C that every side compiles (the agent included) with no
 * build-time tool, and a field's wire name, type and bounds sit on one line.
 *
 * Decoding is the security boundary for what the guest sends the host (and
 * the shim's clients send it): every field is type- and range-checked, ids
 * are checked against the id rules before anything uses them in a path,
 * unknown fields are ignored (a newer peer may send more; the HELLO's
 * features say what both sides understand). Errors are GErrors in
 * KV_PROTO_ERROR with code KV_PROTO_ERROR_BAD_PAYLOAD whose message names
 * the method and the field.
 */
#pragma once

#include "fields.h"
#include "proto.h"

G_BEGIN_DECLS

/* ---- methods ---- */
typedef enum {
  KV_TO_AGENT = 1 << 0,   /* the agent answers it */
  KV_TO_SHIM = 1 << 1,    /* the shim answers it itself */
  KV_RELAYED = 1 << 2,    /* the shim passes it on to the agent as is (streams mapped) */
  KV_NO_TIMEOUT = 1 << 3, /* the reply may take as long as a process runs (wait) */
} KvMethodFlags;

typedef struct {
  const char *name;
  const KvMsgDesc *params;
  const KvMsgDesc *result;
  guint flags;
} KvMethod;

/* The method called `name`, NULL when there is none. */
const KvMethod *kv_method_lookup(const char *name);
/* Every method of the contract (for tests and fuzzing); *n gets the count. */
const KvMethod *const *kv_methods(guint *n);

/* Decode params/result of `m` with the method name in errors (code
 * KV_E_INVALID in KV_ERROR_DOMAIN, ready to be sent back as is). */
gboolean kv_params_decode(const KvMethod *m, JsonObject *params, gpointer out, GError **error);
gboolean kv_result_decode(const KvMethod *m, JsonObject *result, gpointer out, GError **error);

/* ---- features announced in HELLO ---- */
/* The shim writes output streams into pipes its client passed (SCM_RIGHTS)
 * when a request sets sink_fds. */
#define KV_FEATURE_SINK_FDS "sink_fds"

/* ---- enumerated values of string fields ---- */
/* KvContainerStateResult.status */
#define KV_STATUS_CREATED "created"
#define KV_STATUS_RUNNING "running"
#define KV_STATUS_STOPPED "stopped"
#define KV_STATUS_PAUSED "paused" /* running, its cgroup frozen */
/* KvShimStateResult.state */
#define KV_SANDBOX_CREATING "creating"
#define KV_SANDBOX_RUNNING "running"
#define KV_SANDBOX_STOPPED "stopped"
/* KvHotplugParams.kind */
#define KV_HOTPLUG_CPUS "cpus"
#define KV_HOTPLUG_MEMORY "memory"
#define KV_HOTPLUG_NIC_ADD "nic_add"
#define KV_HOTPLUG_NIC_REMOVE "nic_remove"
#define KV_HOTPLUG_DISK_ADD "disk_add"
#define KV_HOTPLUG_DISK_REMOVE "disk_remove"
/* KvHotplugParams.op (memory) */
#define KV_MEMORY_ADD "+"
#define KV_MEMORY_REMOVE "-"
#define KV_MEMORY_SET "="

/* ---- the messages ---- */

/* Stream ids of a process's stdio on the requester's connection; 0 = not
 * connected (/dev/null in the guest). For a TTY process stdout carries the
 * terminal and stderr is 0. */
typedef struct {
  guint32 stdin_id, stdout_id, stderr_id;
} KvStreams;

/* check (agent) and agent_check (shim, forwarded): {} -> */
typedef struct {
  char *agent_version;
  gint64 proto;
  char *kernel; /* uname -r */
  gint64 cpus_online;
  gint64 mem_total_kib;
  gint64 uptime_ms;
  /* The agent's late boot (modules, the shared file system) is done: what
   * a container needs waits no more (a pool marks a VM ready then). */
  gboolean late_boot_done;
} KvCheckResult;

/* shutdown (agent): {} -> {} then the agent syncs and powers off. */
typedef struct {
  int unused;
} KvEmpty;

/* A volume of a container: a bind mount of spec.mounts[mount] (a bind
 * mount, its destination checked as every mount's is) whose source is
 * `source`. In container_add, source is the host path (a directory or a
 * regular file) the shim bind-mounts into the share at
 * containers/<id>/volumes/<n> (n: the volume's position in the list),
 * nosuid,nodev, read-only with readonly; in container_create it is that
 * guest path, KV_GUEST_SHARED_DIR/containers/<id>/volumes/<n>, which the
 * agent binds instead of the spec's source, with the spec mount's options
 * (ro, propagation). destination repeats the spec mount's, for errors. */
typedef struct {
  gint64 mount;
  char *source;
  char *destination;
  gboolean readonly;
} KvVolume;
/* The most volumes a container may have (KATAVM_VOLUMES_MAX). */
#define KV_VOLUMES_MAX 64

/* A path in a read-only container root that the shim makes, as runc
 * does, before it shares the rootfs read-only (the guest cannot make it
 * then): the mount point of a spec mount, a disk volume or the process's
 * cwd that lands in the root itself (under no other mount's destination).
 * path is absolute, without "." or ".." components; file: an empty file
 * (a single-file volume's mount point), else a directory. Made with
 * openat2(RESOLVE_IN_ROOT) in a detached clone of the rootfs: a symlink
 * in the rootfs resolves as in the container, never outside the rootfs;
 * what exists already is left as it is. */
typedef struct {
  char *path;
  gboolean file;
} KvMountPoint;
/* Spec mounts, disk volumes and the cwd: 1024 + KV_VOLUMES_MAX + 1. */
#define KV_MOUNTPOINTS_MAX 1089

/* container_add (shim, from clients): the shim bind-mounts the host rootfs
 * and the volumes into the share, then asks the agent container_create.
 * With sink_fds the
 * request carries the write ends of the stdout/stderr pipes (stdout first,
 * one per non-zero stream; the shim announces KV_FEATURE_SINK_FDS). */
typedef struct {
  char *container_id;
  JsonObject *spec; /* OCI runtime spec (config.json), validated by lib/proto/ocispec */
  char *rootfs;     /* host path of the rootfs directory */
  gboolean readonly;
  KvStreams streams;
  gboolean sink_fds;
  GPtrArray *volumes;     /* KvVolume*, source a host path; at most KV_VOLUMES_MAX */
  GPtrArray *mountpoints; /* KvMountPoint*, with readonly only; at most KV_MOUNTPOINTS_MAX */
} KvContainerAddParams;

/* container_create (agent): sets up namespaces, mounts, pivot, cgroup
 * (v2, /sys/fs/cgroup/katavm/<id>), rlimits, caps, seccomp for the spec's
 * process, which then waits for container_start. */
typedef struct {
  char *container_id;
  JsonObject *spec;
  char *rootfs; /* guest path: KV_GUEST_SHARED_DIR/containers/<id>/rootfs */
  KvStreams streams;
  GPtrArray *volumes; /* KvVolume*, source the guest path in the share */
} KvContainerCreateParams;

typedef struct {
  gint64 pid;
} KvPidResult;

/* container_start, container_state: */
typedef struct {
  char *container_id;
} KvContainerRef;

/* container_state -> (also the elements of container_list) */
typedef struct {
  char *container_id;
  char *status; /* KV_STATUS_* */
  gint64 pid;
  gint64 exit_code; /* when stopped; -1 otherwise */
} KvContainerStateResult;

typedef struct {
  char *container_id;
  gint64 signal;
  gboolean all;
} KvContainerKillParams;

/* container_update: new limits for a running container, an OCI
 * linux.resources object (what `runc update --resources` reads). */
typedef struct {
  char *container_id;
  JsonObject *resources;
} KvContainerUpdateParams;

/* container_stats: the container's cgroup v2 figures in the guest
 * (/sys/fs/cgroup/katavm/<id>), read from cpu.stat, memory.current,
 * memory.max, memory.swap.*, memory.stat, memory.events, pids.current and
 * pids.max (and cpu.max, the CFS quota). A figure whose file or key the guest kernel lacks is -1;
 * the limits memory_max, memory_swap_max and pids_max are -1 for "max" (unlimited) too. Answered
 * for a created, running or stopped container (its cgroup stays until container_remove), so an OOM
 * kill of the main process can still be read after it exited. */
typedef struct {
  gint64 cpu_usage_usec, cpu_user_usec, cpu_system_usec;
  gint64 cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec;
  gint64 cpu_max_quota, cpu_max_period; /* cpu.max: quota -1 for "max" */
  gint64 memory_current, memory_max, memory_swap_current, memory_swap_max;
  gint64 memory_anon, memory_file, memory_kernel_stack, memory_slab, memory_sock, memory_shmem;
  gint64 memory_file_mapped, memory_active_anon, memory_inactive_anon, memory_active_file;
  gint64 memory_inactive_file, memory_pgfault, memory_pgmajfault;
  /* memory.events: how often the limits were hit; oom_kill counts the
   * processes the kernel's OOM killer killed in the cgroup. */
  gint64 memory_events_low, memory_events_high, memory_events_max, memory_events_oom,
      memory_events_oom_kill;
  gint64 pids_current, pids_max;
} KvContainerStatsResult;

/* container_remove: kills (force) or requires stopped, then frees
 * everything of it in the guest (mounts, cgroup); the shim unmounts the
 * rootfs. */
typedef struct {
  char *container_id;
  gboolean force;
} KvContainerRemoveParams;

typedef struct {
  GPtrArray *containers; /* of KvContainerStateResult* */
} KvContainerListResult;

/* exec: joins the container's namespaces and cgroup. A missing executable
 * is not an RPC error: the process exits 127 with a message on stderr. */
typedef struct {
  char *container_id;
  char *exec_id;
  JsonObject *process; /* OCI process object (args, env, cwd, user, terminal, consoleSize) */
  KvStreams streams;
  gboolean sink_fds; /* client -> shim only; as in container_add */
} KvExecParams;

/* wait, signal, resize: exec_id NULL = the container's main process. */
typedef struct {
  char *container_id;
  char *exec_id;
} KvProcessRef;

/* wait -> when it has exited (the reply is delayed until then). exit_code
 * follows shell convention: 128+signal for a death by signal. */
typedef struct {
  gint64 exit_code;
  gint64 signal;
} KvWaitResult;

typedef struct {
  char *container_id;
  char *exec_id;
  gint64 signal;
} KvSignalParams;

typedef struct {
  char *container_id;
  char *exec_id;
  gint64 rows, cols;
} KvResizeParams;

/* reseed (agent): host random bytes, hex (64-512 digits: 32-256 bytes),
 * that the agent adds to the guest kernel's entropy pool (RNDADDENTROPY,
 * credited) before forcing a reseed of its RNG (RNDRESEEDCRNG). The shim
 * sends it once the agent answered at boot, so that a guest's RNG never
 * depends only on what it could gather itself (no RDRAND under TCG's
 * default CPU), and a VM taken from a warm pool does not share its RNG
 * state with anything before it was taken. */
typedef struct {
  char *seed;
} KvReseedParams;

/* adopt (shim): a pooled VM (docs/pool.md) becomes sandbox `id`: the shim
 * checks `netns` (when given) as a create does (NOT_FOUND, INVALID: it
 * stays pooled), moves its state directory to ROOT/sandboxes/ID (failing
 * with EXISTS when that id is taken: it stays pooled), stops watching the
 * pool keeper, connects the namespace's interfaces (tcfilter taps, the
 * guest's addresses and routes), gives the guest its names (hostname =
 * id) and reseeds the guest's RNG from the host's. A failure after the
 * move leaves sandbox `id` for the caller to destroy. With netns_fd the
 * request carries (SCM_RIGHTS) an fd of that namespace as the caller
 * opened the path: the caller's mount namespace may see a mount there
 * that the shim's does not (podman under `ip netns exec`). */
typedef struct {
  char *id;
  char *netns; /* absolute path of a network namespace, or NULL */
  gboolean netns_fd;
  char *net;      /* "user" (QEMU's user-mode NIC is added now), or NULL */
  char **publish; /* with net "user": "[IP:]HOSTPORT:PORT[/tcp|udp]" */
} KvAdoptParams;

/* cpus_set (agent): online present CPUs up to that count, offline the rest
 * (never CPU 0); returns when done. */
typedef struct {
  gint64 online;
} KvCpusSetParams;
typedef struct {
  gint64 cpus_online;
} KvCpusResult;

/* A route of a NIC (nic_config): to dst (CIDR; "0.0.0.0/0" and "::/0" are
 * the default routes) through gateway, or on-link when gateway is NULL. */
typedef struct {
  char *dst;
  char *gateway;
  gint64 metric; /* 0 = the kernel's default */
} KvRoute;
/* A static (permanent) neighbour entry of a NIC. */
typedef struct {
  char *address; /* IPv4 or IPv6 */
  char *mac;
} KvNeighbour;

/* nic_config (agent): waits (bounded) for the interface with that MAC, sets
 * MTU, addresses (without duplicate address detection), brings it up, adds
 * the default route if gateway is given, then the routes (on-link ones
 * first) and the static neighbours. */
typedef struct {
  char *mac;
  gint64 mtu;
  char **addresses; /* CIDR */
  char *gateway;
  GPtrArray *routes;     /* KvRoute* */
  GPtrArray *neighbours; /* KvNeighbour* */
} KvNicConfigParams;
typedef struct {
  char *ifname;
} KvNicConfigResult;

/* net_names (agent): what the container's /etc/resolv.conf, /etc/hosts
 * and /etc/hostname say when its spec does not mount its own (agent
 * etcfiles.c); sent once the network is up. hostname also becomes the
 * guest's. */
typedef struct {
  char *hostname;     /* the default (a spec's hostname wins) */
  char *address;      /* the pod's first address, for /etc/hosts; NULL = none */
  char **nameservers; /* IPv4/IPv6 literals */
  char **search;      /* search domains */
  char **options;     /* resolv.conf options, e.g. "ndots:5" */
} KvNetNamesParams;

/* net_info (agent, relayed): the guest's interfaces and routes as its
 * kernel has them (netlink), for `katavm sandbox inspect`. */
typedef struct {
  char *name, *mac;
  gint64 mtu;
  char *state;      /* "up" | "down" (administrative) */
  gboolean carrier; /* lower layer up */
  char **addresses; /* CIDR, link-local ones included */
} KvNetIfaceInfo;
typedef struct {
  char *dst;     /* CIDR; "0.0.0.0/0", "::/0" for the defaults */
  char *gateway; /* NULL = on-link */
  char *dev;
  gint64 metric;
} KvNetRouteInfo;
typedef struct {
  GPtrArray *interfaces; /* KvNetIfaceInfo* */
  GPtrArray *routes;     /* KvNetRouteInfo*, main table */
} KvNetInfoResult;

/* nic_remove (agent): down + flush. */
typedef struct {
  char *mac;
} KvNicRemoveParams;

/* disk_add (agent): waits (bounded) for the virtio-blk disk whose
 * /sys/block/X/serial matches; mounts it into the container at path. */
typedef struct {
  char *serial;
  gboolean readonly;
  char *container_id; /* NULL: not mounted */
  char *path;
} KvDiskAddParams;
typedef struct {
  char *device; /* /dev/vdX */
} KvDiskAddResult;

/* disk_remove (agent): unmounts it. */
typedef struct {
  char *serial;
} KvDiskRemoveParams;

/* A hot-added NIC or disk, as the shim's state lists it. */
typedef struct {
  char *mac, *tap, *ifname;
} KvNicInfo;
typedef struct {
  char *path, *serial, *device;
  char *container;  /* the container it is mounted in, or NULL */
  gboolean plugged; /* hot-plugged on its own (no container): it stays when
                       the container it is then given to goes; otherwise it
                       is that container's disk volume, detached with it */
} KvDiskInfo;
/* A tap the shim made for an interface of the sandbox's network namespace
 * (config netns): the tap, redirected both ways by tc to the namespace's
 * interface `link` (which keeps its MAC, the guest's). */
typedef struct {
  char *tap, *link, *mac;
  gboolean qdisc; /* the ingress qdisc on link is ours (teardown removes it) */
} KvNetTap;

/* state (shim) -> ; also what the shim keeps in state.json. */
typedef struct {
  char *id;
  char *state; /* KV_SANDBOX_* */
  gint64 shim_pid, qemu_pid;
  char *accel; /* "kvm" | "tcg" */
  char *libvirt_uri;
  gint64 vcpus, max_vcpus;
  gint64 memory_mib, max_memory_mib;
  char *created; /* ISO 8601 */
  char *console_log;
  char *memory_hotplug; /* "virtio-mem" | "dimm" */
  GArray *dimms_mib;    /* gint64 */
  gint64 cpus_online;
  gint64 memory_hotplugged_mib;
  GPtrArray *nics;      /* KvNicInfo* */
  GPtrArray *disks;     /* KvDiskInfo* */
  char *netns;          /* the network namespace the taps live in */
  GPtrArray *net_taps;  /* KvNetTap*, recorded before each is made */
  char *shared_fs;      /* "virtio-fs" | "9p" */
  gint64 virtiofsd_pid; /* virtio-fs: the sandbox's virtiofsd, 0 when none runs */
  char *error;          /* why the sandbox stopped unasked (e.g. virtiofsd died) */
  /* Why the sandbox stopped (state "stopped"): "stopped on request", "the
   * guest powered off", "guest kernel panic: <line>", "QEMU (pid N) died:
   * ...", "declared failed: <the liveness error>"; NULL while it runs. */
  char *stop_reason;
  /* Only in answers to `state` (never in state.json): what is wrong with
   * the sandbox's network now, e.g. an interface of its namespace that was
   * deleted while the sandbox ran (each a sentence naming it). */
  char **net_warnings;
} KvShimStateResult;

/* hotplug (shim): one katavm_hotplug_request. */
typedef struct {
  char *kind; /* KV_HOTPLUG_* */
  gint64 cpus;
  char *op; /* memory: KV_MEMORY_* */
  gint64 mib;
  char *tap;
  char *mac;
  gint64 mtu;
  char **addresses;
  char *gateway;
  char *path;
  gboolean readonly;
  char *container_id;
  char *mount_path;
  char *netns_iface; /* nic_add: an interface of the netns instead of tap */
} KvHotplugParams;
/* -> what the kind reports (absent fields: NULL / -1). */
typedef struct {
  gint64 cpus_online;
  gint64 mem_total_kib;
  gint64 memory_mib;
  char *mac;
  char *ifname;
  char *serial;
  char *device;
  gint64 elapsed_us;
} KvHotplugResult;

/* Only the shim's pid out of its state.json (KvShimStateResult), for a
 * destroy that must find the shim even when the rest is damaged. */
typedef struct {
  gint64 shim_pid;
} KvStatePid;
extern const KvMsgDesc kv_state_pid_desc;

/* ping (every KvConn answers it itself, lib/proto/conn.c): {} -> {}. The
 * liveness probe of kv_conn_keepalive, between clients and the shim and
 * between the shim and the agent. */

/* The methods. */
extern const KvMethod kv_m_ping, kv_m_check, kv_m_shutdown, kv_m_container_create,
    kv_m_container_start, kv_m_container_state, kv_m_container_kill, kv_m_container_remove,
    kv_m_container_list, kv_m_exec, kv_m_wait, kv_m_signal, kv_m_resize, kv_m_cpus_set,
    kv_m_nic_config, kv_m_nic_remove, kv_m_net_names, kv_m_net_info, kv_m_disk_add,
    kv_m_disk_remove, kv_m_shim_state, kv_m_shim_agent_check, kv_m_shim_stop, kv_m_shim_destroy,
    kv_m_shim_hotplug, kv_m_shim_container_add, kv_m_container_pause, kv_m_container_resume,
    kv_m_container_update, kv_m_reseed, kv_m_container_stats, kv_m_shim_adopt;

/* Typed calls and replies over a KvConn. params is the method's params
 * struct (NULL: all defaults). The reply callback gets the raw result;
 * decode it with kv_result_decode(m, ...). */
void kv_call(KvConn *c, const KvMethod *m, gconstpointer params, guint timeout_ms, KvReplyFunc cb,
             gpointer user);
/* Reply to request `id` of method m with the result struct `result` (NULL:
 * an empty object). */
void kv_reply(KvConn *c, guint32 id, const KvMethod *m, gconstpointer result);
/* Reply with error's message and code: its code when error is in
 * KV_ERROR_DOMAIN, `fallback` otherwise. */
void kv_reply_gerror(KvConn *c, guint32 id, const GError *error, KvCode fallback);

G_END_DECLS
