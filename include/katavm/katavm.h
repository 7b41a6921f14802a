/* katavm.h: the public API of libkatavm, the only installed header.
 *
 * libkatavm runs each pod ("sandbox") in its own lightweight VM with its own
 * guest kernel. A per-sandbox supervisor process (katavm-shim) owns the VM and
 * the channel to the guest agent, so a sandbox outlives the process that
 * created it and several processes may use it at once.
 *
 * Conventions
 * - Every object is an opaque handle with a _free / _close function.
 * - Every fallible function returns 0 on success or a negative katavm_code
 *   on failure. When `err` is not NULL it then receives a katavm_error that
 *   the caller reads with katavm_error_code()/katavm_error_message() and
 *   frees with katavm_error_free(). `err` may be NULL.
 * - Strings returned to the caller are allocated with malloc and freed with
 *   katavm_free() unless documented otherwise.
 * - Functions are thread-safe on distinct handles; a single handle must not
 *   be used from two threads at once.
 */
#ifndef KATAVM_KATAVM_H
#define KATAVM_KATAVM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KATAVM_BUILDING_LIB)
#define KATAVM_API __attribute__((visibility("default")))
#else
#define KATAVM_API
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

typedef enum katavm_code {
  KATAVM_OK = 0,
  KATAVM_E_INVALID = -1,      /* an argument is malformed or out of range */
  KATAVM_E_NOT_FOUND = -2,    /* no such sandbox, file, ... */
  KATAVM_E_EXISTS = -3,       /* id already in use */
  KATAVM_E_IO = -4,           /* host I/O or system call failure */
  KATAVM_E_VMM = -5,          /* libvirt / QEMU failure (start, stop, connect) */
  KATAVM_E_AGENT = -6,        /* guest agent failed, misbehaved or went away */
  KATAVM_E_PROTOCOL = -7,     /* malformed or incompatible protocol data */
  KATAVM_E_STATE = -8,        /* operation not valid in the current state */
  KATAVM_E_TIMEOUT = -9,      /* an operation did not finish in time */
  KATAVM_E_UNSUPPORTED = -10, /* e.g. accel "kvm" on a host without KVM */
  KATAVM_E_CORRUPT = -11,     /* on-disk sandbox state is unreadable */
} katavm_code;

typedef struct katavm_error katavm_error;

/* The code of `e` (a negative katavm_code). */
KATAVM_API int katavm_error_code(const katavm_error *e);
/* A readable, one-line message naming what went wrong. Owned by `e`. */
KATAVM_API const char *katavm_error_message(const katavm_error *e);
/* Free `e`; NULL is allowed. */
KATAVM_API void katavm_error_free(katavm_error *e);
/* A short name for a code, e.g. "invalid argument". Static string. */
KATAVM_API const char *katavm_code_name(int code);
/* Free memory returned by this library (strings, string arrays' elements). */
KATAVM_API void katavm_free(void *p);
/* Free a NULL-terminated string array returned by this library. */
KATAVM_API void katavm_strv_free(char **v);
/* Library version, e.g. "0.1.0". Static string. */
KATAVM_API const char *katavm_version(void);

/* ------------------------------------------------------------------ */
/* Runtime: configuration shared by the sandboxes it creates           */
/* ------------------------------------------------------------------ */

typedef struct katavm_runtime katavm_runtime;

/* Create a runtime with defaults, overridden by environment variables:
 *   KATAVM_ROOT         state directory          (default /run/katavm)
 *   KATAVM_LIBVIRT_URI  libvirt URI; empty or unset = one embedded driver
 *                       root per sandbox (qemu:///embed), no daemon needed
 *   KATAVM_ACCEL        auto | kvm | tcg         (default auto)
 *   KATAVM_KERNEL       guest kernel (ELF vmlinux) (default: installed image)
 *   KATAVM_INITRD       guest initrd (cpio)      (default: installed image)
 *   KATAVM_SHIM         katavm-shim executable   (default: installed)
 * Returns 0, or KATAVM_E_INVALID when an environment value is malformed. */
KATAVM_API int katavm_runtime_new(katavm_runtime **out, katavm_error **err);
KATAVM_API void katavm_runtime_free(katavm_runtime *rt);

/* Setters: each copies its argument. Paths must be absolute.
 * Return KATAVM_E_INVALID naming the bad value. */
KATAVM_API int katavm_runtime_set_root(katavm_runtime *rt, const char *dir, katavm_error **err);
/* uri NULL or "" = embedded driver per sandbox. "qemu:///system" uses
 * libvirtd. */
KATAVM_API int katavm_runtime_set_libvirt_uri(katavm_runtime *rt, const char *uri,
                                              katavm_error **err);
/* accel: "auto" (KVM only where the CPU shows vmx/svm and /dev/kvm works,
 * else TCG), "kvm" or "tcg". */
KATAVM_API int katavm_runtime_set_accel(katavm_runtime *rt, const char *accel, katavm_error **err);
KATAVM_API int katavm_runtime_set_kernel(katavm_runtime *rt, const char *path, katavm_error **err);
KATAVM_API int katavm_runtime_set_initrd(katavm_runtime *rt, const char *path, katavm_error **err);
/* How memory is hot-added: "auto" (virtio-mem when QEMU offers it, else
 * ACPI DIMMs), "virtio-mem" (grows and shrinks in 2 MiB blocks) or "dimm"
 * (whole DIMMs, multiples of 128 MiB; removed last-in first-out). Also
 * KATAVM_MEMORY_HOTPLUG. Takes effect for sandboxes created afterwards. */
KATAVM_API int katavm_runtime_set_memory_hotplug(katavm_runtime *rt, const char *mode,
                                                 katavm_error **err);
/* Defaults used when a sandbox config leaves vcpus / memory at 0.
 * vcpus 1..256, memory_mib >= KATAVM_MIN_MEMORY_MIB. */
KATAVM_API int katavm_runtime_set_defaults(katavm_runtime *rt, unsigned int vcpus,
                                           unsigned int memory_mib, katavm_error **err);
/* The state directory in use. Owned by rt. */
KATAVM_API const char *katavm_runtime_root(const katavm_runtime *rt);

/* Host check, like `kata-runtime kata-check`: a JSON object string
 * {"ok":bool,"accel":"kvm|tcg","accel_reason":str,"items":[{"name","ok",
 * "detail","fix"}...]} describing KVM, libvirt, QEMU, kernel and image.
 * Returns 0 even when items fail (see "ok"); negative only on internal
 * failure. *json_out freed with katavm_free(). */
KATAVM_API int katavm_check_host(katavm_runtime *rt, char **json_out, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Sandboxes                                                            */
/* ------------------------------------------------------------------ */

/* Smallest guest memory that boots the guest kernel and agent. */
#define KATAVM_MIN_MEMORY_MIB 128u
/* Longest sandbox id. Ids match [A-Za-z0-9][A-Za-z0-9_.-]* and never
 * contain "..". */
#define KATAVM_ID_MAX 64u

typedef struct katavm_sandbox_config {
  const char *id;              /* NULL = generate a random id */
  unsigned int vcpus;          /* 0 = runtime default */
  unsigned int max_vcpus;      /* 0 = vcpus; reserved for hotplug */
  unsigned int memory_mib;     /* 0 = runtime default */
  unsigned int max_memory_mib; /* 0 = memory_mib; reserved for hotplug */
  unsigned int reserved[11];   /* must be zero */
} katavm_sandbox_config;

/* Zero `cfg`. Call before filling a config. */
KATAVM_API void katavm_sandbox_config_init(katavm_sandbox_config *cfg);

typedef enum katavm_sandbox_state_t {
  KATAVM_SANDBOX_UNKNOWN = 0, /* shim unreachable; destroy cleans it up */
  KATAVM_SANDBOX_CREATING,
  KATAVM_SANDBOX_RUNNING,
  KATAVM_SANDBOX_STOPPED, /* guest powered off; destroy removes it */
} katavm_sandbox_state_t;

/* Name of a state: "unknown", "creating", "running", "stopped". */
KATAVM_API const char *katavm_sandbox_state_name(katavm_sandbox_state_t s);

typedef struct katavm_sandbox katavm_sandbox;

/* Create and boot a sandbox; returns once the guest agent has answered.
 * The sandbox runs under its own katavm-shim process and outlives the
 * caller. On failure nothing is left behind (no VM, no shim, no state).
 * Errors: KATAVM_E_INVALID (bad id, memory below KATAVM_MIN_MEMORY_MIB,
 * max below boot value, reserved fields set), KATAVM_E_EXISTS (id in use),
 * KATAVM_E_NOT_FOUND (kernel/initrd/shim missing), KATAVM_E_VMM (libvirt
 * unreachable, QEMU failed), KATAVM_E_AGENT / KATAVM_E_TIMEOUT (guest did
 * not come up). *out is closed with katavm_sandbox_close(). */
KATAVM_API int katavm_sandbox_create(katavm_runtime *rt, const katavm_sandbox_config *cfg,
                                     katavm_sandbox **out, katavm_error **err);

/* Attach to an existing sandbox by id (from any process).
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND (no such sandbox),
 * KATAVM_E_CORRUPT (state unreadable), KATAVM_E_STATE (its shim is gone:
 * katavm_sandbox_destroy() cleans it up). */
KATAVM_API int katavm_sandbox_open(katavm_runtime *rt, const char *id, katavm_sandbox **out,
                                   katavm_error **err);

/* Release the handle (the sandbox keeps running). NULL allowed. */
KATAVM_API void katavm_sandbox_close(katavm_sandbox *sb);

/* The sandbox id. Owned by sb. */
KATAVM_API const char *katavm_sandbox_id(const katavm_sandbox *sb);

/* Current state as the shim sees it. */
KATAVM_API int katavm_sandbox_state(katavm_sandbox *sb, katavm_sandbox_state_t *state,
                                    katavm_error **err);

/* Power the guest off; the sandbox stays listed as stopped until
 * destroyed. Stopping a stopped sandbox is not an error. */
KATAVM_API int katavm_sandbox_stop(katavm_sandbox *sb, katavm_error **err);

/* Destroy the sandbox with this id: VM, shim, mounts and state are removed.
 * Works whether the shim is alive, dead or the state is corrupt.
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND. */
KATAVM_API int katavm_sandbox_destroy(katavm_runtime *rt, const char *id, katavm_error **err);

/* Ids of all sandboxes under the runtime's root, NULL-terminated; free with
 * katavm_strv_free(). */
KATAVM_API int katavm_sandbox_list(katavm_runtime *rt, char ***ids_out, katavm_error **err);

/* What the guest agent reports about the guest. */
typedef struct katavm_guest_info {
  char agent_version[32];
  char kernel_release[96];
  unsigned int proto_version;
  unsigned int cpus_online;
  uint64_t mem_total_kib;
  uint64_t uptime_ms;
  uint64_t round_trip_us; /* measured by the library for this call */
} katavm_guest_info;

/* Round trip to the guest agent (through the shim).
 * Errors: KATAVM_E_STATE (not running), KATAVM_E_AGENT, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_sandbox_agent_check(katavm_sandbox *sb, katavm_guest_info *info,
                                          katavm_error **err);

/* Everything known about the sandbox as a JSON object string:
 * {"id","state","shim_pid","vcpus","max_vcpus","memory_mib",
 *  "max_memory_mib","accel","created","guest":{...} (when running)}.
 * Free with katavm_free(). */
KATAVM_API int katavm_sandbox_inspect(katavm_sandbox *sb, char **json_out, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Containers                                                           */
/* ------------------------------------------------------------------ */

/* Container ids follow the sandbox id rules (KATAVM_ID_MAX, no "/" or ".."). */

typedef struct katavm_process katavm_process;

typedef struct katavm_container_config {
  /* Either an OCI bundle directory (config.json + its root.path) ... */
  const char *bundle;
  /* ... or a plain rootfs directory, for which a default spec is made, like
   * `runc spec` writes (sh, namespaces pid/ipc/uts/mount, default mounts). */
  const char *rootfs;
  /* Overrides of the spec's process (NULL = keep the spec's). argv and env
   * are NULL-terminated. */
  const char *const *argv;
  const char *const *env;
  const char *cwd;
  const char *hostname;
  int tty;                  /* 1 = the main process gets a pty */
  int readonly;             /* 1 = read-only root (or the spec's root.readonly) */
  unsigned int reserved[8]; /* must be zero */
} katavm_container_config;

KATAVM_API void katavm_container_config_init(katavm_container_config *cfg);

/* Create a container in the sandbox from a bundle or rootfs. The rootfs is
 * bind-mounted (not copied) into the sandbox's 9p share; the agent creates
 * namespaces, mounts, cgroup, capabilities and seccomp from the spec; the
 * main process waits for katavm_container_start().
 * main_out: NULL = the main process's stdio goes to /dev/null; else it
 * receives a process handle whose fds carry the main process's stdio.
 * Errors: KATAVM_E_INVALID (bad id, malformed config.json: the message names
 * the field, rootfs missing or a symlink escaping the bundle, unknown seccomp
 * syscall), KATAVM_E_EXISTS (id in use), KATAVM_E_STATE (sandbox not
 * running). Nothing is left behind on failure. */
KATAVM_API int katavm_container_add(katavm_sandbox *sb, const char *id,
                                    const katavm_container_config *cfg, katavm_process **main_out,
                                    katavm_error **err);
/* Start the main process of a created container. */
KATAVM_API int katavm_container_start(katavm_sandbox *sb, const char *id, katavm_error **err);
/* Status: "created", "running" or "stopped" (static string via *status).
 * exit_code (optional) is set once stopped. */
KATAVM_API int katavm_container_state(katavm_sandbox *sb, const char *id, const char **status,
                                      int *exit_code, katavm_error **err);
/* Send a signal to the container's main process (all = every process). */
KATAVM_API int katavm_container_kill(katavm_sandbox *sb, const char *id, int signal, int all,
                                     katavm_error **err);
/* Block until the main process exits; *exit_code follows shell convention
 * (128+N for a death by signal N). */
KATAVM_API int katavm_container_wait(katavm_sandbox *sb, const char *id, int *exit_code,
                                     katavm_error **err);
/* Remove the container (force: kill it first). Unmounts its rootfs. */
KATAVM_API int katavm_container_remove(katavm_sandbox *sb, const char *id, int force,
                                       katavm_error **err);
/* Ids of the sandbox's containers; free with katavm_strv_free(). */
KATAVM_API int katavm_container_list(katavm_sandbox *sb, char ***ids_out, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Processes                                                            */
/* ------------------------------------------------------------------ */

typedef struct katavm_exec_config {
  const char *const *argv; /* NULL-terminated, required */
  const char *const *env;  /* NULL-terminated "K=V"; NULL = container's */
  const char *cwd;         /* NULL = container's */
  int set_user;            /* 1 = run as uid/gid below */
  unsigned int uid, gid;
  int tty;                   /* 1 = allocate a pty; stdout carries it */
  unsigned short rows, cols; /* initial pty size (0 = 24x80) */
  int no_stdin;              /* 1 = stdin is /dev/null in the guest */
  unsigned int reserved[8];  /* must be zero */
} katavm_exec_config;

KATAVM_API void katavm_exec_config_init(katavm_exec_config *cfg);

/* Run a process in a running container (joining its namespaces and
 * cgroup). Its stdio is streamed with flow control through file
 * descriptors of the returned handle. A command missing in the rootfs is
 * not an error here: the process exits 127 with a message on stderr.
 * Errors: KATAVM_E_NOT_FOUND (no such container), KATAVM_E_STATE (container
 * not running), KATAVM_E_INVALID. */
KATAVM_API int katavm_exec(katavm_sandbox *sb, const char *container_id,
                           const katavm_exec_config *cfg, katavm_process **out, katavm_error **err);

/* The caller's ends of the process's stdio, owned by the handle: write to
 * stdin_fd, read stdout_fd / stderr_fd until EOF (-1 when not connected,
 * e.g. stderr of a TTY process). They are non-blocking pipes. */
KATAVM_API int katavm_process_stdin_fd(katavm_process *p);
KATAVM_API int katavm_process_stdout_fd(katavm_process *p);
KATAVM_API int katavm_process_stderr_fd(katavm_process *p);
/* Close stdin: the guest process reads EOF. */
KATAVM_API int katavm_process_close_stdin(katavm_process *p, katavm_error **err);
/* Block until the process exits (timeout_ms < 0 = forever);
 * *exit_code: shell convention (128+N for signal N). KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_process_wait(katavm_process *p, int timeout_ms, int *exit_code,
                                   katavm_error **err);
KATAVM_API int katavm_process_signal(katavm_process *p, int signal, katavm_error **err);
/* Resize the process's pty. KATAVM_E_STATE without a TTY. */
KATAVM_API int katavm_process_resize(katavm_process *p, unsigned short rows, unsigned short cols,
                                     katavm_error **err);
/* Release the handle; a still-running process keeps running. */
KATAVM_API void katavm_process_free(katavm_process *p);

/* ------------------------------------------------------------------ */
/* Hotplug                                                              */
/* ------------------------------------------------------------------ */

typedef enum katavm_hotplug_kind {
  KATAVM_HOTPLUG_CPUS = 1,    /* set the online vCPU count */
  KATAVM_HOTPLUG_MEMORY,      /* add / remove / set memory */
  KATAVM_HOTPLUG_NIC_ADD,     /* attach a virtio-net NIC on a host tap */
  KATAVM_HOTPLUG_NIC_REMOVE,  /* detach it (by MAC) */
  KATAVM_HOTPLUG_DISK_ADD,    /* attach a virtio-blk disk, optionally mount it */
  KATAVM_HOTPLUG_DISK_REMOVE, /* unmount and detach it (by host path) */
} katavm_hotplug_kind;

typedef enum katavm_memory_op {
  KATAVM_MEMORY_ADD = 1, /* grow by memory_mib */
  KATAVM_MEMORY_REMOVE,  /* shrink by memory_mib (not below boot memory) */
  KATAVM_MEMORY_SET,     /* total = memory_mib */
} katavm_memory_op;

/* One hotplug request; fields not used by `kind` must be 0/NULL. */
typedef struct katavm_hotplug_request {
  katavm_hotplug_kind kind;
  /* CPUS: online vCPUs wanted, 1..max vCPUs given at create. Growing plugs
   * vCPUs; shrinking offlines them in the guest (never unplugs: vCPU unplug
   * crashes QEMU 7.2 under TCG). */
  unsigned int cpus;
  /* MEMORY: op and size in MiB, a multiple of 2 (the virtio-mem block);
   * the total stays within boot memory .. max memory given at create. */
  katavm_memory_op memory_op;
  unsigned int memory_mib;
  /* NIC_ADD: an existing host tap, the MAC (NULL = generated), MTU (0 =
   * 1500), guest addresses in CIDR form ("10.1.2.3/24", NULL-terminated,
   * may be NULL) and an optional default gateway. NIC_REMOVE: mac. */
  const char *tap;
  const char *mac;
  unsigned int mtu;
  const char *const *addresses;
  const char *gateway;
  /* DISK_ADD: a host file or block device; readonly; optionally mounted in
   * `container` at `mount_path` (fstype auto-detected by the guest).
   * DISK_REMOVE: path. */
  const char *path;
  int readonly;
  const char *container;
  const char *mount_path;
  unsigned int reserved[8]; /* must be zero */
} katavm_hotplug_request;

KATAVM_API void katavm_hotplug_request_init(katavm_hotplug_request *req, katavm_hotplug_kind kind);

/* Change a running sandbox. Returns once the guest reports the resource
 * usable (CPUs online, memory in MemTotal, NIC configured, disk present
 * and mounted), or fails and rolls back, leaving the sandbox as it was.
 * *result_json (optional, free with katavm_free) describes the outcome:
 * {"cpus_online", "mem_total_kib", "mac", "ifname", "serial", "device"}.
 * Errors: KATAVM_E_INVALID (beyond max vCPUs/memory, not a block multiple,
 * bad MAC/tap/CIDR), KATAVM_E_NOT_FOUND (disk path or tap missing, detaching
 * what was never attached), KATAVM_E_STATE (sandbox not running),
 * KATAVM_E_VMM, KATAVM_E_AGENT, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_hotplug(katavm_sandbox *sb, const katavm_hotplug_request *req,
                              char **result_json, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Guest image                                                          */
/* ------------------------------------------------------------------ */

/* Build (or confirm up to date) the guest kernel + initrd for the given
 * kernel release (NULL = newest installed) into out_dir (NULL = the
 * directory of the runtime's kernel path). Runs the installed image builder.
 * Errors: KATAVM_E_NOT_FOUND (kernel or builder missing), KATAVM_E_IO. */
KATAVM_API int katavm_image_build(katavm_runtime *rt, const char *kernel_release,
                                  const char *out_dir, int force, katavm_error **err);

#ifdef __cplusplus
}
#endif
#endif /* KATAVM_KATAVM_H */
