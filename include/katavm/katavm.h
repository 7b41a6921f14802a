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
 *   frees with katavm_error_free(). `err` may be NULL. Every such function
 *   gives KATAVM_E_INVALID for a NULL handle or a NULL required pointer;
 *   the doc blocks list the other codes.
 * - Strings returned to the caller are allocated with malloc and freed with
 *   katavm_free() unless documented otherwise.
 * - Functions are thread-safe on distinct handles; a single handle must not
 *   be used from two threads at once.
 *
 * Structs that can grow
 * - Every public config and result struct starts with `size_t struct_size`.
 *   Prepare one with its katavm_X_init() (an inline wrapper that passes
 *   sizeof as compiled into the caller to katavm_X_init_sized()): it zeroes
 *   the struct and sets struct_size. Fields are only ever added at the end.
 * - The library accepts a struct_size from the size of the first layout
 *   (libkatavm.so.1) up to its own sizeof (katavm_struct_size()). A larger
 *   struct_size, from a caller built against a newer header, is accepted
 *   when every byte past what this library knows is zero (the caller does
 *   not use the newer fields); otherwise KATAVM_E_INVALID names the struct.
 *   struct_size 0, below the first layout or above 4096 gives
 *   KATAVM_E_INVALID ("call katavm_X_init()").
 * - Result structs are written only up to the caller's struct_size.
 *
 * ABI history
 * - libkatavm.so.1 (this header): struct_size first in every config and
 *   result struct instead of trailing reserved[] arrays,
 *   katavm_guest_info_init(), katavm_struct_size(), and container state as
 *   katavm_container_state_t instead of a string. The soname moved from
 *   libkatavm.so.0 because the layout of every config struct changed: a
 *   program built against the .so.0 header passes structs without
 *   struct_size (the library would read its first pointer as a size and
 *   every field shifted), so the dynamic loader refuses to pair such a
 *   binary with this library instead of letting it be misread.
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

/* The code of an error.
 * e: an error from a failed call, or NULL.
 * Returns its negative katavm_code; 0 for NULL. */
KATAVM_API int katavm_error_code(const katavm_error *e);

/* The message of an error: one readable line naming what went wrong.
 * e: an error from a failed call, or NULL.
 * Returns a string owned by `e` (valid until katavm_error_free); "" for
 * NULL. */
KATAVM_API const char *katavm_error_message(const katavm_error *e);

/* Free an error.
 * e: an error from a failed call; NULL is allowed. */
KATAVM_API void katavm_error_free(katavm_error *e);

/* A short name for a code.
 * code: a katavm_code (any int is allowed).
 * Returns a static string, e.g. "invalid argument"; "unknown error" for a
 * code this library does not know. */
KATAVM_API const char *katavm_code_name(int code);

/* Free memory returned by this library (strings, string arrays' elements).
 * p: the pointer; NULL is allowed. */
KATAVM_API void katavm_free(void *p);

/* Free a NULL-terminated string array returned by this library, with its
 * strings.
 * v: the array; NULL is allowed. */
KATAVM_API void katavm_strv_free(char **v);

/* The library's version.
 * Returns a static string, e.g. "0.1.0". */
KATAVM_API const char *katavm_version(void);

/* The size this library knows of a public struct (its sizeof when the
 * library was built), for bindings that mirror the layouts.
 * name: the struct's name, e.g. "katavm_sandbox_config".
 * Returns the size in bytes; 0 for NULL or a name that is not a public
 * struct of this library. */
KATAVM_API size_t katavm_struct_size(const char *name);

/* ------------------------------------------------------------------ */
/* Runtime: configuration shared by the sandboxes it creates           */
/* ------------------------------------------------------------------ */

typedef struct katavm_runtime katavm_runtime;

/* Create a runtime with defaults, overridden by environment variables:
 *   KATAVM_ROOT           state directory          (default /run/katavm)
 *   KATAVM_LIBVIRT_URI    libvirt URI; empty or unset = one embedded driver
 *                         root per sandbox (qemu:///embed), no daemon needed
 *   KATAVM_ACCEL          auto | kvm | tcg         (default auto)
 *   KATAVM_KERNEL         guest kernel (ELF vmlinux) (default: installed image)
 *   KATAVM_INITRD         guest initrd (cpio)      (default: installed image)
 *   KATAVM_MEMORY_HOTPLUG auto | virtio-mem | dimm (default auto)
 *   KATAVM_SHIM           katavm-shim executable   (default: installed)
 *   KATAVM_TCG_TB_CACHE_MIB  under TCG, QEMU's translation cache in MiB,
 *                         16..4096 (default by the VM's shape: 32, 256 with
 *                         vCPU hotplug; more costs host memory as code is
 *                         translated and saves retranslation, e.g. for
 *                         network-heavy guests: docs/performance.md)
 *   (and the shared-filesystem variables of docs/storage-fs.md)
 * out: receives the runtime, freed with katavm_runtime_free().
 * Returns 0, or KATAVM_E_INVALID when an environment value is malformed
 * (the message names it). */
KATAVM_API int katavm_runtime_new(katavm_runtime **out, katavm_error **err);

/* Free a runtime. Sandboxes it created keep running, and open sandbox
 * handles stay usable for calls that take no runtime.
 * rt: the runtime; NULL is allowed. */
KATAVM_API void katavm_runtime_free(katavm_runtime *rt);

/* Set the state directory (sandbox state, sockets, logs).
 * dir: an absolute path of at most 32 characters (unix socket paths below
 * it must fit in 108 bytes); copied.
 * Returns 0 or KATAVM_E_INVALID (relative or too long). */
KATAVM_API int katavm_runtime_set_root(katavm_runtime *rt, const char *dir, katavm_error **err);

/* Set the libvirt connection used for new sandboxes.
 * uri: NULL or "" = an embedded driver per sandbox (no daemon);
 * "qemu:///system" uses libvirtd; copied.
 * Returns 0 or KATAVM_E_INVALID (rt NULL). */
KATAVM_API int katavm_runtime_set_libvirt_uri(katavm_runtime *rt, const char *uri,
                                              katavm_error **err);

/* Set the accelerator for new sandboxes.
 * accel: "auto" (KVM only where the CPU shows vmx/svm and /dev/kvm works,
 * else TCG), "kvm" or "tcg".
 * Returns 0 or KATAVM_E_INVALID (another value). */
KATAVM_API int katavm_runtime_set_accel(katavm_runtime *rt, const char *accel, katavm_error **err);

/* Set the guest kernel (an ELF vmlinux) for new sandboxes.
 * path: absolute; copied. It is checked when a sandbox is created.
 * Returns 0 or KATAVM_E_INVALID (not absolute). */
KATAVM_API int katavm_runtime_set_kernel(katavm_runtime *rt, const char *path, katavm_error **err);

/* Set the guest initrd (cpio) for new sandboxes.
 * path: absolute; copied. It is checked when a sandbox is created.
 * Returns 0 or KATAVM_E_INVALID (not absolute). */
KATAVM_API int katavm_runtime_set_initrd(katavm_runtime *rt, const char *path, katavm_error **err);

/* Set how memory is hot-added to sandboxes created afterwards.
 * mode: "auto" (virtio-mem when QEMU offers it, else ACPI DIMMs),
 * "virtio-mem" (grows and shrinks in 2 MiB blocks) or "dimm" (whole DIMMs,
 * multiples of 128 MiB; removed last-in first-out).
 * Returns 0 or KATAVM_E_INVALID (another value). */
KATAVM_API int katavm_runtime_set_memory_hotplug(katavm_runtime *rt, const char *mode,
                                                 katavm_error **err);

/* Set the filesystem that shares the host side of sandboxes created
 * afterwards (container root filesystems, volumes) with the guest.
 * fs: "auto" (the default: "virtio-fs" where virtiofsd is installed, else
 * "9p"), "virtio-fs" (one virtiofsd per sandbox, started and supervised by
 * the sandbox's shim; creating a sandbox fails with KATAVM_E_NOT_FOUND where
 * virtiofsd is missing) or "9p" (QEMU's virtio-9p). The environment
 * variable KATAVM_SHARED_FS sets the same at katavm_runtime_new. A sandbox
 * keeps its choice for life; katavm_sandbox_inspect shows it ("shared_fs"),
 * katavm_check_host says which one this host gets. docs/storage-fs.md
 * compares them.
 * Returns 0 or KATAVM_E_INVALID (another value). */
KATAVM_API int katavm_runtime_set_shared_fs(katavm_runtime *rt, const char *fs, katavm_error **err);

/* Set the defaults used when a sandbox config leaves vcpus / memory_mib
 * at 0.
 * vcpus: 1..256. memory_mib: at least KATAVM_MIN_MEMORY_MIB.
 * Returns 0 or KATAVM_E_INVALID (out of range). */
KATAVM_API int katavm_runtime_set_defaults(katavm_runtime *rt, unsigned int vcpus,
                                           unsigned int memory_mib, katavm_error **err);

/* The state directory in use.
 * Returns a string owned by rt (valid until the next set_root or free);
 * NULL for a NULL rt. */
KATAVM_API const char *katavm_runtime_root(const katavm_runtime *rt);

/* Apply a configuration file, as the OCI runtime and the containerd shim
 * read it (docs/configuration.md): a key file with a [runtime] group whose
 * keys are root, libvirt_uri, accel, kernel, initrd, shim, memory_hotplug,
 * vcpus, memory_mib (the setters above), and keys for the front ends
 * (max_vcpus, max_memory_mib, trusted_runtime, ...) that
 * katavm_runtime_config_value() returns. Unknown groups are ignored;
 * unknown keys in [runtime] are errors.
 * path: the file.
 * Errors: KATAVM_E_NOT_FOUND (no such file), KATAVM_E_INVALID (malformed:
 * the message names the file and the line or key), or a setter's error
 * naming the key. */
KATAVM_API int katavm_runtime_load_config(katavm_runtime *rt, const char *path, katavm_error **err);
/* A [runtime] key of the loaded configuration file.
 * Returns the value (owned by rt, valid until the next load or free), or
 * NULL when no file was loaded or it does not set the key. */
KATAVM_API const char *katavm_runtime_config_value(katavm_runtime *rt, const char *key);

/* Check the host, like `kata-runtime kata-check`: KVM, libvirt, QEMU,
 * kernel, initrd, shim and state directory.
 * json_out: receives a JSON object string {"ok":bool,"accel":"kvm|tcg",
 * "accel_reason":str,"shared_fs":"virtio-fs|9p|none","shared_fs_reason":str,
 * "ksm":"on|off|absent",
 * "items":[{"name","ok","detail","fix","optional"}...]} ("optional": true
 * on an item that never makes "ok" false, e.g. KSM), freed with
 * katavm_free().
 * Returns 0 even when items fail (see "ok"); KATAVM_E_INVALID for NULL
 * arguments. */
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
  size_t struct_size;          /* set by katavm_sandbox_config_init() */
  const char *id;              /* NULL = generate a random id */
  unsigned int vcpus;          /* 0 = runtime default */
  unsigned int max_vcpus;      /* 0 = vcpus; the most vCPUs hotplug may reach */
  unsigned int memory_mib;     /* 0 = runtime default */
  unsigned int max_memory_mib; /* 0 = memory_mib; the most hotplug may reach */
  /* NULL = no network. A network namespace (/run/netns/NAME,
   * /proc/PID/ns/net): every interface there with an address (lo excepted)
   * reaches the guest through a tap in that namespace and tc redirects
   * both ways (Kata's "tcfilter"); the guest interface gets its MAC,
   * addresses, MTU, routes and static neighbours. Destroy removes the taps
   * and filters and leaves the namespace's interfaces as they were. */
  const char *netns;
  /* The network model: NULL = "none" (only lo in the guest), or tcfilter
   * when netns is set. "none": no network. "user": user-mode networking
   * (QEMU's slirp), no host setup: the guest gets 10.0.2.15/24, a default
   * route through 10.0.2.2 (the host, as the guest sees it) and the DNS
   * forwarder 10.0.2.3, reaches what a host process could through slirp's
   * NAT, and is reached from the host only through publish
   * (docs/networking.md). "user" with netns is an error. */
  const char *net;
  /* NULL-terminated list of published ports (net "user" only), each
   * "[IP:]HOSTPORT:PORT[/tcp|udp]" as in `podman run -p`: the host's
   * IPv4 IP:HOSTPORT (IP defaults to 127.0.0.1) reaches
   * the guest's PORT, over TCP unless /udp. A malformed spec, a port
   * outside 1-65535 or a host port already taken fails create with
   * KATAVM_E_INVALID / KATAVM_E_EXISTS naming it. */
  const char *const *publish;
} katavm_sandbox_config;

/* Prepare a sandbox config: zero `size` bytes of cfg and set
 * cfg->struct_size = size (all fields then mean "default"). Call it
 * through katavm_sandbox_config_init(); bindings pass the size of their
 * mirrored struct.
 * cfg: the config; NULL or a size below sizeof(size_t) does nothing. */
KATAVM_API void katavm_sandbox_config_init_sized(katavm_sandbox_config *cfg, size_t size);
/* Prepare a sandbox config before filling it (see _init_sized). */
static inline void katavm_sandbox_config_init(katavm_sandbox_config *cfg) {
  katavm_sandbox_config_init_sized(cfg, sizeof(*cfg));
}

typedef enum katavm_sandbox_state_t {
  KATAVM_SANDBOX_UNKNOWN = 0, /* shim unreachable; destroy cleans it up */
  KATAVM_SANDBOX_CREATING,
  KATAVM_SANDBOX_RUNNING,
  KATAVM_SANDBOX_STOPPED, /* guest powered off; destroy removes it */
} katavm_sandbox_state_t;

/* The name of a sandbox state.
 * Returns a static string: "unknown", "creating", "running", "stopped";
 * "unknown" for a value outside the enum. */
KATAVM_API const char *katavm_sandbox_state_name(katavm_sandbox_state_t s);

typedef struct katavm_sandbox katavm_sandbox;

/* Create and boot a sandbox; returns once the guest agent has answered.
 * The sandbox runs under its own katavm-shim process and outlives the
 * caller. On failure nothing is left behind (no VM, no shim, no state).
 * cfg: prepared with katavm_sandbox_config_init(); read during the call.
 * out: receives the handle, closed with katavm_sandbox_close().
 * Errors: KATAVM_E_INVALID (struct_size, bad id, memory below
 * KATAVM_MIN_MEMORY_MIB, max below boot value, more than 256 vCPUs or
 * 1 TiB, netns not a network namespace or without an interface that has an
 * address, unknown net, "user" with netns, publish malformed or without
 * "user"; a state root writable by group or others), KATAVM_E_EXISTS (id in
 * use, a published host port taken), KATAVM_E_NOT_FOUND (kernel, initrd,
 * shim or netns missing), KATAVM_E_UNSUPPORTED (accel "kvm" without KVM),
 * KATAVM_E_IO (also "permission denied": a state root that another user
 * owns), KATAVM_E_VMM (libvirt unreachable, QEMU failed), KATAVM_E_AGENT /
 * KATAVM_E_TIMEOUT (guest did not come up: the message quotes the last
 * console lines; a QEMU that is stopped (SIGSTOP) or gone fails the create
 * within about 5 s with KATAVM_E_TIMEOUT).
 * Warm pool: when a keeper runs for the runtime's root
 * (katavm_pool_start) and the request fits its shape (vcpus and max_vcpus
 * within the pool's max vCPUs, memory from the runtime's boot memory up to
 * the pool's max memory, max_memory_mib within it, no netns, net and
 * publish, the runtime's kernel, initrd and settings unchanged), a ready
 * pooled VM becomes this sandbox: new id, its own state and shared
 * directory, its guest RNG reseeded from the host's, vCPUs and memory set
 * by hotplug (max vCPUs and max memory are then the pool's). Otherwise,
 * or with no ready VM, the sandbox is booted as above. */
KATAVM_API int katavm_sandbox_create(katavm_runtime *rt, const katavm_sandbox_config *cfg,
                                     katavm_sandbox **out, katavm_error **err);

/* Attach to an existing sandbox by id (from any process). A sandbox whose
 * shim died is recovered (a new shim reattaches to the running VM); one
 * recovery at a time per sandbox, whatever the number of callers: the
 * others wait for it (at most 120 s) and then use the recovered shim.
 * out: receives the handle, closed with katavm_sandbox_close().
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND (no such sandbox),
 * KATAVM_E_CORRUPT (state unreadable), KATAVM_E_STATE (its shim is gone
 * and recovery failed; the sandbox, its VM and its state are kept, and
 * katavm_sandbox_destroy() removes them), KATAVM_E_TIMEOUT (another
 * recovery did not finish in time, or the shim did not answer: a stopped
 * (SIGSTOP) shim is reported within about a second, a hung one within
 * 30 s), KATAVM_E_IO ("permission denied": the caller may not access the
 * sandbox or its state root is another user's), KATAVM_E_INVALID (a state
 * root writable by group or others),
 * KATAVM_E_PROTOCOL / KATAVM_E_AGENT (the shim misbehaved). */
KATAVM_API int katavm_sandbox_open(katavm_runtime *rt, const char *id, katavm_sandbox **out,
                                   katavm_error **err);

/* Release a handle; the sandbox keeps running.
 * sb: the handle; NULL is allowed. */
KATAVM_API void katavm_sandbox_close(katavm_sandbox *sb);

/* The sandbox id.
 * Returns a string owned by sb; NULL for a NULL sb. */
KATAVM_API const char *katavm_sandbox_id(const katavm_sandbox *sb);

/* The current state as the shim sees it.
 * state: receives it; KATAVM_SANDBOX_UNKNOWN (and 0) when the shim is
 * unreachable.
 * Errors: KATAVM_E_INVALID, KATAVM_E_IO, KATAVM_E_PROTOCOL,
 * KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_sandbox_state(katavm_sandbox *sb, katavm_sandbox_state_t *state,
                                    katavm_error **err);

/* Power the guest off; the sandbox stays listed as stopped until
 * destroyed. Stopping a stopped sandbox is not an error.
 * Errors: KATAVM_E_STATE (shim gone), KATAVM_E_VMM, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_sandbox_stop(katavm_sandbox *sb, katavm_error **err);

/* Destroy the sandbox with this id: VM, shim, mounts and state are removed.
 * Works whether the shim is alive, dead or the state is corrupt. Handles
 * still open on it fail afterwards with KATAVM_E_STATE.
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND, KATAVM_E_IO
 * (state could not be removed), KATAVM_E_VMM. */
KATAVM_API int katavm_sandbox_destroy(katavm_runtime *rt, const char *id, katavm_error **err);

/* The ids of all sandboxes under the runtime's root (no shim is asked).
 * ids_out: receives a sorted NULL-terminated array, freed with
 * katavm_strv_free().
 * Errors: KATAVM_E_INVALID (also: root writable by group or others),
 * KATAVM_E_IO (root unreadable, or another user's: "permission denied"). */
KATAVM_API int katavm_sandbox_list(katavm_runtime *rt, char ***ids_out, katavm_error **err);

/* What the guest agent reports about the guest (a result struct). */
typedef struct katavm_guest_info {
  size_t struct_size; /* set by katavm_guest_info_init() */
  char agent_version[32];
  char kernel_release[96];
  unsigned int proto_version;
  unsigned int cpus_online;
  uint64_t mem_total_kib;
  uint64_t uptime_ms;
  uint64_t round_trip_us; /* measured by the library for this call */
} katavm_guest_info;

/* Prepare a guest info struct: zero `size` bytes of info and set
 * info->struct_size = size. Call it through katavm_guest_info_init().
 * info: the struct; NULL or a size below sizeof(size_t) does nothing. */
KATAVM_API void katavm_guest_info_init_sized(katavm_guest_info *info, size_t size);
/* Prepare a guest info struct before passing it (see _init_sized). */
static inline void katavm_guest_info_init(katavm_guest_info *info) {
  katavm_guest_info_init_sized(info, sizeof(*info));
}

/* Round trip to the guest agent (through the shim).
 * info: prepared with katavm_guest_info_init(); filled up to its
 * struct_size on success, untouched on failure.
 * Errors: KATAVM_E_INVALID (struct_size), KATAVM_E_STATE (not running,
 * shim gone), KATAVM_E_AGENT, KATAVM_E_PROTOCOL, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_sandbox_agent_check(katavm_sandbox *sb, katavm_guest_info *info,
                                          katavm_error **err);

/* Everything known about the sandbox.
 * json_out: receives a JSON object string {"id","state","shim_pid",
 * "vcpus","max_vcpus","memory_mib","max_memory_mib","accel","created",
 * "shared_fs" ("virtio-fs" or "9p"), "virtiofsd_pid" (virtio-fs, while it
 * runs), "error" (why the sandbox stopped when it did not stop by request,
 * e.g. its virtiofsd died), "stop_reason" (once stopped: "stopped on
 * request", "the guest powered off (or reset)", "guest kernel panic: <line>
 * (last console lines: ...)", "QEMU (pid N) died unexpectedly ...",
 * "declared failed: no answer from the agent ..."), "guest":{...} (when
 * running)}, freed with katavm_free().
 * Errors: KATAVM_E_INVALID, KATAVM_E_STATE (shim gone), KATAVM_E_PROTOCOL,
 * KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_sandbox_inspect(katavm_sandbox *sb, char **json_out, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Containers                                                           */
/* ------------------------------------------------------------------ */

/* Container ids follow the sandbox id rules (KATAVM_ID_MAX, no "/" or ".."). */

typedef struct katavm_process katavm_process;

typedef struct katavm_container_config {
  size_t struct_size; /* set by katavm_container_config_init() */
  /* Either an OCI bundle directory (config.json + its root.path) ... */
  const char *bundle;
  /* ... or a plain rootfs directory, for which a default spec is made, like
   * `runc spec` writes (sh, namespaces pid/ipc/uts/mount, default mounts,
   * masked and read-only /proc paths, noNewPrivileges, and only the
   * capabilities AUDIT_WRITE, KILL and NET_BIND_SERVICE), plus a default
   * seccomp filter like the container engines' (an allow list: mount,
   * unshare, setns, keyctl, bpf, module and clock calls and clone with
   * namespace flags fail with EPERM; README.md "Containers"). */
  const char *rootfs;
  /* Overrides of the spec's process (NULL = keep the spec's). argv and env
   * are NULL-terminated. */
  const char *const *argv;
  const char *const *env;
  const char *cwd;
  const char *hostname;
  int tty;      /* 1 = the main process gets a pty */
  int readonly; /* 1 = read-only root (or the spec's root.readonly) */
  /* Volumes: host files and directories bind-mounted into the container,
   * NULL-terminated, each "HOST:DEST[:OPTIONS]" as `podman run -v` takes
   * them. HOST: an absolute host path, a directory or a single file (read
   * by the library with the caller's view of the file system). DEST: an
   * absolute path in the container without "." or ".." components; its
   * mount point is made inside the container's rootfs. OPTIONS: comma
   * separated, any of "ro" / "rw" (default rw) and one propagation of
   * "private", "rprivate" (default), "slave", "rslave", "shared",
   * "rshared" (as in OCI mount options), and "disk". A disk volume (HOST a
   * block device, or an image file with the "disk" option) is not shared:
   * it is hot-plugged into the sandbox as a virtio-blk disk once the
   * container exists, and the guest mounts its file system (ext4, xfs,
   * btrfs, vfat) at DEST before the main process starts; it is detached
   * when the container is removed. A disk already hot-plugged on its own
   * (katavm_hotplug() DISK_ADD without a container) is mounted instead,
   * and stays attached when the container goes; KATAVM_E_EXISTS when it
   * is mounted in another running container or is another container's
   * disk volume. A bundle names disks in its mounts: a bind mount of a
   * block device, or one with the option "x-katavm.disk" (an image
   * file). At most KATAVM_VOLUMES_MAX in
   * all, the bundle's host bind mounts included. They are mounted after
   * the spec's own mounts. Writes in the container land on the host path;
   * host-side changes show in the container. On the host the volume is
   * mounted nosuid,nodev (and read-only for "ro") into the sandbox's
   * share (docs/storage.md). Why strings and not an array of structs:
   * the CLI, podman and docker spell volumes this way, the options field
   * grows without a new struct layout, and bindings mirror it as a plain
   * string array; a HOST or DEST with ':' in it cannot be given here (give
   * it in a bundle's mounts instead). NULL = none. */
  const char *const *volumes;
  /* The size in MiB of the container's writable layer; 0 = none (the
   * container writes into its rootfs on the host, which a rootfs-filling
   * container fills). With a size the rootfs is shared read-only and the
   * container's writes go to a layer of that size in the guest: an overlay
   * over the rootfs whose upper directory is a tmpfs in guest memory.
   * Writing past the size fails with ENOSPC in the container; nothing of
   * it reaches the host's rootfs or the host filesystem that holds it; it
   * is gone with the container. What the layer holds counts against the
   * sandbox's memory (katavm_sandbox_config.memory_mib), so size both
   * together. 1..1048576; not with readonly. A bundle may ask the same
   * with the annotation "io.katavm.storage_size_mib" (this field wins).
   * See docs/storage.md. */
  unsigned int storage_size_mib;
} katavm_container_config;

/* The most volumes one container may have (config volumes and the
 * bundle's host bind mounts together). */
#define KATAVM_VOLUMES_MAX 64

/* Prepare a container config: zero `size` bytes of cfg and set
 * cfg->struct_size = size. Call it through katavm_container_config_init().
 * cfg: the config; NULL or a size below sizeof(size_t) does nothing. */
KATAVM_API void katavm_container_config_init_sized(katavm_container_config *cfg, size_t size);
/* Prepare a container config before filling it (see _init_sized). */
static inline void katavm_container_config_init(katavm_container_config *cfg) {
  katavm_container_config_init_sized(cfg, sizeof(*cfg));
}

typedef enum katavm_container_state_t {
  KATAVM_CONTAINER_UNKNOWN = 0, /* the shim reported a state this library does not know */
  KATAVM_CONTAINER_CREATED,     /* created; the main process waits for start */
  KATAVM_CONTAINER_RUNNING,
  KATAVM_CONTAINER_STOPPED, /* the main process exited */
  KATAVM_CONTAINER_PAUSED,  /* running, its processes frozen (katavm_container_pause) */
} katavm_container_state_t;

/* The name of a container state.
 * Returns a static string: "unknown", "created", "running", "stopped",
 * "paused";
 * "unknown" for a value outside the enum. */
KATAVM_API const char *katavm_container_state_name(katavm_container_state_t s);

/* Create a container in the sandbox from a bundle or rootfs. Namespace
 * paths in the bundle's linux.namespaces name host namespaces, which a
 * container in a VM cannot join: they are ignored (the container shares
 * the VM's network with its pod, and gets ipc, uts and pid namespaces of
 * its own in the guest; a pod's network namespace is given at sandbox
 * creation, katavm_sandbox_config.netns). The rootfs is
 * bind-mounted (not copied) into the sandbox's share, and so is each
 * volume: cfg->volumes and every bind mount of the bundle's config.json
 * (its source a host path, relative ones relative to the bundle, as runc
 * takes them); mounts of other types (proc, sysfs, tmpfs, devpts, mqueue,
 * cgroup, cgroup2) are made in the guest. The agent creates
 * namespaces, mounts, cgroup, capabilities and seccomp from the spec; the
 * main process waits for katavm_container_start().
 * id: the container id. cfg: prepared with katavm_container_config_init(),
 * exactly one of bundle / rootfs set; read during the call.
 * main_out: NULL = the main process's stdio goes to /dev/null; else it
 * receives a process handle whose fds carry the main process's stdio
 * (freed with katavm_process_free()).
 * Errors: KATAVM_E_INVALID (struct_size, bad id, both or neither of
 * bundle/rootfs, malformed config.json: the message names the field,
 * rootfs missing, empty, "/" or a symlink escaping the bundle, unknown
 * seccomp syscall; a volume whose source is missing or neither a directory
 * nor a regular file, whose destination is relative or has "." or ".."
 * components, with an unknown option, or more than KATAVM_VOLUMES_MAX:
 * the message names the volume), KATAVM_E_IO (the share could not take a
 * volume or the rootfs, e.g. a symlink or a non-directory where the host
 * makes its mount point: refused, never followed), KATAVM_E_NOT_FOUND
 * (bundle missing), KATAVM_E_EXISTS (id in
 * use), KATAVM_E_STATE (sandbox not running), KATAVM_E_AGENT,
 * KATAVM_E_TIMEOUT. Nothing is left behind on failure. */
KATAVM_API int katavm_container_add(katavm_sandbox *sb, const char *id,
                                    const katavm_container_config *cfg, katavm_process **main_out,
                                    katavm_error **err);

/* Start the main process of a created container.
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND (no such
 * container), KATAVM_E_STATE (not in state created), KATAVM_E_AGENT. */
KATAVM_API int katavm_container_start(katavm_sandbox *sb, const char *id, katavm_error **err);

/* The state of a container.
 * state: receives it. exit_code (optional): receives the main process's
 * exit status (shell convention) once stopped, else -1.
 * Errors: KATAVM_E_INVALID (bad id, state NULL), KATAVM_E_NOT_FOUND (no
 * such container), KATAVM_E_STATE (sandbox not running), KATAVM_E_AGENT. */
KATAVM_API int katavm_container_state(katavm_sandbox *sb, const char *id,
                                      katavm_container_state_t *state, int *exit_code,
                                      katavm_error **err);

/* Send a signal to the container's main process.
 * signal: 1..64. all: nonzero = every process of the container.
 * Errors: KATAVM_E_INVALID (bad id, signal out of range),
 * KATAVM_E_NOT_FOUND, KATAVM_E_STATE (not running), KATAVM_E_AGENT. */
KATAVM_API int katavm_container_kill(katavm_sandbox *sb, const char *id, int signal, int all,
                                     katavm_error **err);

/* Freeze every process of a running container (cgroup v2's freezer in the
 * guest); katavm_container_resume() thaws them. The state is
 * KATAVM_CONTAINER_PAUSED meanwhile; signals (SIGKILL included) still
 * reach frozen processes.
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND, KATAVM_E_STATE (not
 * running, already paused / not paused), KATAVM_E_TIMEOUT (not frozen within
 * 5 s), KATAVM_E_AGENT. */
KATAVM_API int katavm_container_pause(katavm_sandbox *sb, const char *id, katavm_error **err);
/* Thaw a paused container (see katavm_container_pause()). */
KATAVM_API int katavm_container_resume(katavm_sandbox *sb, const char *id, katavm_error **err);

/* New resource limits for a running container.
 * resources_json: an OCI runtime-spec linux.resources object as JSON
 * (memory.limit/reservation/swap, cpu.shares/quota/period/cpus/mems,
 * pids.limit): what it sets is applied to the container's cgroup in the
 * guest, what it leaves out stays. When a raised memory limit or CPU quota
 * makes the pod need more than the VM has, the VM grows first by hotplug
 * (katavm_hotplug()): memory to the sum of the memory limits of the
 * sandbox's live containers plus 64 MiB for the guest's kernel and agent,
 * vCPUs to the sum of their quotas (quota / period, rounded up), within
 * the max vCPUs / memory given at create. The VM never shrinks here.
 * Errors: KATAVM_E_INVALID (bad id, malformed JSON or field: the message
 * names it; a pod that would need more than the max vCPUs / memory: the
 * message names the figures, and neither the VM nor the limits change),
 * KATAVM_E_NOT_FOUND, KATAVM_E_STATE (not running), KATAVM_E_UNSUPPORTED
 * (a controller the guest lacks), KATAVM_E_AGENT, or the hotplug's errors
 * (KATAVM_E_VMM, KATAVM_E_TIMEOUT). */
KATAVM_API int katavm_container_update(katavm_sandbox *sb, const char *id,
                                       const char *resources_json, katavm_error **err);

/* The figures of a container's cgroup (v2) in the guest, as
 * katavm_container_get_stats() reads them (a result struct). A figure the
 * guest kernel does not offer is 0; a limit that is "max" in the guest is
 * KATAVM_STATS_UNLIMITED. */
#define KATAVM_STATS_UNLIMITED UINT64_MAX
typedef struct katavm_container_stats {
  size_t struct_size; /* set by katavm_container_stats_init() */
  /* cpu.stat, microseconds of CPU time and CFS throttling */
  uint64_t cpu_usage_usec, cpu_user_usec, cpu_system_usec;
  uint64_t cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec;
  /* bytes: memory.current, memory.max (KATAVM_STATS_UNLIMITED when
   * unlimited), memory.swap.current, memory.swap.max */
  uint64_t memory_usage, memory_limit, swap_usage, swap_limit;
  /* memory.stat, bytes (pgfault, pgmajfault: counts) */
  uint64_t memory_anon, memory_file, memory_kernel_stack, memory_slab, memory_sock;
  uint64_t memory_shmem, memory_file_mapped, memory_active_anon, memory_inactive_anon;
  uint64_t memory_active_file, memory_inactive_file, memory_pgfault, memory_pgmajfault;
  /* memory.events: how often memory.low/high/max were hit, OOM events and
   * the processes the guest's OOM killer killed in the container
   * (oom_kill grows by one per kill: watch it to see OOM kills). */
  uint64_t memory_events_low, memory_events_high, memory_events_max;
  uint64_t memory_events_oom, memory_events_oom_kill;
  /* pids.current, pids.max (KATAVM_STATS_UNLIMITED when unlimited) */
  uint64_t pids_current, pids_limit;
  /* cpu.max: the CFS quota per period in microseconds (quota
   * KATAVM_STATS_UNLIMITED when unlimited) */
  uint64_t cpu_quota_usec, cpu_period_usec;
} katavm_container_stats;

/* Prepare a stats struct: zero `size` bytes of st and set st->struct_size
 * = size. Call it through katavm_container_stats_init().
 * st: the struct; NULL or a size below sizeof(size_t) does nothing. */
KATAVM_API void katavm_container_stats_init_sized(katavm_container_stats *st, size_t size);
/* Prepare a stats struct before passing it (see _init_sized). */
static inline void katavm_container_stats_init(katavm_container_stats *st) {
  katavm_container_stats_init_sized(st, sizeof(*st));
}

/* Read the container's cgroup figures in the guest (CPU, memory, OOM
 * events, pids), as `runc events --stats` and containerd's Stats report
 * them. Works for a created, running, paused or stopped container (its
 * cgroup lives until katavm_container_remove()), so an OOM kill of the
 * main process can be read after it exited.
 * st: prepared with katavm_container_stats_init(); filled up to its
 * struct_size on success, untouched on failure.
 * Errors: KATAVM_E_INVALID (bad id, struct_size), KATAVM_E_NOT_FOUND (no
 * such container), KATAVM_E_STATE (being created, sandbox not running),
 * KATAVM_E_AGENT, KATAVM_E_PROTOCOL, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_container_get_stats(katavm_sandbox *sb, const char *id,
                                          katavm_container_stats *st, katavm_error **err);

/* Block until the container's main process exits (no timeout).
 * exit_code (optional): receives its status in shell convention (128+N
 * for a death by signal N).
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND, KATAVM_E_AGENT
 * (the guest went away). */
KATAVM_API int katavm_container_wait(katavm_sandbox *sb, const char *id, int *exit_code,
                                     katavm_error **err);

/* Remove a container and unmount its rootfs and volumes; its disk volumes
 * are then detached from the VM, except disks hot-plugged on their own
 * before, which stay attached, unmounted (a detach that fails leaves the disk
 * attached, listed by katavm_sandbox_inspect with its container, removable
 * by KATAVM_HOTPLUG_DISK_REMOVE or with the sandbox).
 * force: nonzero = kill it first; else only a stopped container is removed.
 * Errors: KATAVM_E_INVALID (bad id), KATAVM_E_NOT_FOUND, KATAVM_E_STATE
 * (not stopped and not forced, or being created or removed),
 * KATAVM_E_AGENT, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_container_remove(katavm_sandbox *sb, const char *id, int force,
                                       katavm_error **err);

/* The ids of the sandbox's containers.
 * ids_out: receives a NULL-terminated array, freed with katavm_strv_free().
 * Errors: KATAVM_E_INVALID, KATAVM_E_STATE (sandbox not running),
 * KATAVM_E_AGENT. */
KATAVM_API int katavm_container_list(katavm_sandbox *sb, char ***ids_out, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Processes                                                            */
/* ------------------------------------------------------------------ */

typedef struct katavm_exec_config {
  size_t struct_size;      /* set by katavm_exec_config_init() */
  const char *const *argv; /* NULL-terminated, required */
  const char *const *env;  /* NULL-terminated "K=V"; NULL = container's */
  const char *cwd;         /* NULL = container's; else absolute */
  int set_user;            /* 1 = run as uid/gid below */
  unsigned int uid, gid;
  int tty;                   /* 1 = allocate a pty; stdout carries it */
  unsigned short rows, cols; /* initial pty size (0 = 24x80) */
  int no_stdin;              /* 1 = stdin is /dev/null in the guest */
  /* NULL, or an OCI runtime-spec "process" object as JSON (what `runc exec
   * --process FILE` and containerd's Exec carry). When set, the process's
   * args, env, cwd, user, terminal, consoleSize, capabilities and rlimits
   * come from it (what it leaves out comes from the container), and argv,
   * env, cwd, set_user/uid/gid, tty, rows and cols above are ignored. */
  const char *oci_process;
} katavm_exec_config;

/* Prepare an exec config: zero `size` bytes of cfg and set
 * cfg->struct_size = size. Call it through katavm_exec_config_init().
 * cfg: the config; NULL or a size below sizeof(size_t) does nothing. */
KATAVM_API void katavm_exec_config_init_sized(katavm_exec_config *cfg, size_t size);
/* Prepare an exec config before filling it (see _init_sized). */
static inline void katavm_exec_config_init(katavm_exec_config *cfg) {
  katavm_exec_config_init_sized(cfg, sizeof(*cfg));
}

/* Run a process in a running container (joining its namespaces and
 * cgroup). Its stdio is streamed with flow control through file
 * descriptors of the returned handle. A command missing in the rootfs is
 * not an error here: the process exits 127 with a message on stderr.
 * container_id: the container. cfg: prepared with
 * katavm_exec_config_init(); read during the call.
 * out: receives the handle, freed with katavm_process_free().
 * The process belongs to the handle: when the handle's connection to the
 * shim closes before the process was seen to exit (katavm_process_free()
 * early, the calling process killed), or the shim dies, the process is
 * killed (SIGKILL) in the guest; nothing exec'd runs on unowned.
 * Errors: KATAVM_E_INVALID (struct_size, bad id, empty argv, relative
 * cwd), KATAVM_E_NOT_FOUND (no such container), KATAVM_E_STATE (container
 * or sandbox not running: "sandbox X is not running (stopped: <reason>)"),
 * KATAVM_E_IO,
 * KATAVM_E_AGENT, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_exec(katavm_sandbox *sb, const char *container_id,
                           const katavm_exec_config *cfg, katavm_process **out, katavm_error **err);

/* The caller's ends of the process's stdio, owned by the handle: write to
 * stdin_fd, read stdout_fd / stderr_fd until EOF. They are non-blocking
 * pipes.
 * Returns the fd, or -1 when not connected (stdin with no_stdin or after
 * katavm_process_close_stdin, stderr of a TTY process) or p is NULL. */
KATAVM_API int katavm_process_stdin_fd(katavm_process *p);
KATAVM_API int katavm_process_stdout_fd(katavm_process *p);
KATAVM_API int katavm_process_stderr_fd(katavm_process *p);

/* Close stdin: the guest process reads EOF. Closing it twice is not an
 * error.
 * Returns 0 or KATAVM_E_INVALID (p NULL). */
KATAVM_API int katavm_process_close_stdin(katavm_process *p, katavm_error **err);

/* Block until the process exits.
 * timeout_ms: < 0 = forever. exit_code (optional): receives its status in
 * shell convention (128+N for signal N).
 * Errors: KATAVM_E_INVALID, KATAVM_E_TIMEOUT (still running after
 * timeout_ms; or the shim or the guest stopped answering: a stopped QEMU
 * or shim within about 5 s, a hung one within 30 s; the stdout/stderr fds
 * then read EOF, a poll already waiting on them sees it when called
 * again), KATAVM_E_STATE ("sandbox X stopped: <reason>": the VM died,
 * see katavm_sandbox_inspect), KATAVM_E_AGENT (the connection went
 * away). */
KATAVM_API int katavm_process_wait(katavm_process *p, int timeout_ms, int *exit_code,
                                   katavm_error **err);

/* Send a signal to the process.
 * signal: 1..64.
 * Errors: KATAVM_E_INVALID (signal out of range), KATAVM_E_NOT_FOUND /
 * KATAVM_E_STATE (already exited), KATAVM_E_AGENT. */
KATAVM_API int katavm_process_signal(katavm_process *p, int signal, katavm_error **err);

/* Resize the process's pty.
 * rows, cols: the new size, both nonzero.
 * Errors: KATAVM_E_INVALID (zero size), KATAVM_E_STATE (no TTY),
 * KATAVM_E_AGENT. */
KATAVM_API int katavm_process_resize(katavm_process *p, unsigned short rows, unsigned short cols,
                                     katavm_error **err);

/* Release the handle and its fds; a still-running process is killed (see
 * katavm_exec).
 * p: the handle; NULL is allowed. */
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
  size_t struct_size; /* set by katavm_hotplug_request_init() */
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
  /* DISK_ADD: a host image file or block device; readonly; optionally
   * mounted in `container` at `mount_path` (see below). Read-write refuses
   * (KATAVM_E_INVALID) host system files (under /etc, /usr, /bin, /sbin,
   * /lib*, /boot, /proc, /sys), files that are empty or not a whole number
   * of 512-byte sectors, and (KATAVM_E_STATE) block devices in use on the
   * host; read-only attaches any regular file or block device.
   * Also for DISK_ADD: optionally mounted in
   * `container` at `mount_path` (fstype auto-detected by the guest).
   * DISK_REMOVE: path. */
  const char *path;
  int readonly;
  const char *container;
  const char *mount_path;
  /* NIC_ADD instead of tap: an interface of the sandbox's network
   * namespace (its netns) by name, wired as at create: a tap in that
   * namespace with tc redirects both ways, the guest interface with the
   * interface's MAC, addresses, MTU, routes and static neighbours (mac,
   * mtu, addresses and gateway must be unset). NIC_REMOVE of its MAC also
   * removes the tap and redirects. */
  const char *netns_iface;
} katavm_hotplug_request;

/* Prepare a hotplug request: zero `size` bytes of req, set
 * req->struct_size = size and req->kind = kind. Call it through
 * katavm_hotplug_request_init().
 * req: the request; NULL or a size below sizeof(size_t) does nothing. */
KATAVM_API void katavm_hotplug_request_init_sized(katavm_hotplug_request *req, size_t size,
                                                  katavm_hotplug_kind kind);
/* Prepare a hotplug request of `kind` before filling it (see _init_sized). */
static inline void katavm_hotplug_request_init(katavm_hotplug_request *req,
                                               katavm_hotplug_kind kind) {
  katavm_hotplug_request_init_sized(req, sizeof(*req), kind);
}

/* Change a running sandbox. Returns once the guest reports the resource
 * usable (CPUs online, memory in MemTotal, NIC configured, disk present
 * and mounted), or fails and rolls back, leaving the sandbox as it was.
 * req: prepared with katavm_hotplug_request_init(); read during the call.
 * result_json (optional): receives a JSON object string describing the
 * outcome: {"cpus_online", "mem_total_kib", "mac", "ifname", "serial",
 * "device"}, freed with katavm_free().
 * Errors: KATAVM_E_INVALID (struct_size, unknown kind, beyond max
 * vCPUs/memory, not a block multiple, bad MAC/tap/CIDR), KATAVM_E_NOT_FOUND
 * (disk path or tap missing, detaching what was never attached),
 * KATAVM_E_STATE (sandbox not running), KATAVM_E_UNSUPPORTED,
 * KATAVM_E_VMM, KATAVM_E_AGENT, KATAVM_E_TIMEOUT. */
KATAVM_API int katavm_hotplug(katavm_sandbox *sb, const katavm_hotplug_request *req,
                              char **result_json, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Guest image                                                          */
/* ------------------------------------------------------------------ */

/* Build (or confirm up to date) the guest kernel + initrd by running the
 * installed image builder (KATAVM_IMAGE_BUILDER overrides it, KATAVM_AGENT
 * the agent it packs).
 * kernel_release: e.g. "6.1.0-18-amd64"; NULL = newest in /boot.
 * out_dir: NULL = the directory of the runtime's kernel path.
 * force: nonzero = rebuild even when up to date.
 * Errors: KATAVM_E_INVALID (release contains '/'), KATAVM_E_NOT_FOUND
 * (kernel, builder or agent missing), KATAVM_E_IO (the build failed). */
KATAVM_API int katavm_image_build(katavm_runtime *rt, const char *kernel_release,
                                  const char *out_dir, int force, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Container managers                                                   */
/* ------------------------------------------------------------------ */

/* Check an id (sandbox or container) against the id rules (KATAVM_ID_MAX,
 * [A-Za-z0-9][A-Za-z0-9_.-]*, no ".."), before it touches a path.
 * what: names the id in the message ("container id"); NULL = "id".
 * Returns 0, or KATAVM_E_INVALID with a message naming what is wrong. */
KATAVM_API int katavm_id_check(const char *id, const char *what, katavm_error **err);

typedef enum katavm_bundle_role {
  KATAVM_ROLE_SANDBOX = 1, /* the container starts a sandbox (a new VM) */
  KATAVM_ROLE_MEMBER,      /* the container joins the sandbox sandbox_id */
} katavm_bundle_role;

/* What an OCI bundle, as a container manager writes it, says about the
 * container's pod. Read by katavm_bundle_info_read(); owned strings are
 * freed by katavm_bundle_info_clear(). */
typedef struct katavm_bundle_info {
  size_t struct_size; /* set by katavm_bundle_info_init() */
  /* KATAVM_ROLE_SANDBOX when the annotations say so
   * (io.kubernetes.cri-o.ContainerType=sandbox,
   * io.kubernetes.cri.container-type=sandbox) or say nothing;
   * KATAVM_ROLE_MEMBER for ContainerType=container with a sandbox id
   * (io.kubernetes.cri-o.SandboxID, io.kubernetes.cri.sandbox-id). */
  katavm_bundle_role role;
  char *sandbox_id; /* a member's sandbox; NULL for a sandbox */
  /* The spec's network namespace (linux.namespaces network path), NULL
   * when it has none. netns_configured: 1 when that namespace holds an
   * interface other than lo with an address (then it is the sandbox's
   * network: katavm_sandbox_config.netns); 0 = lo only (no network). */
  char *netns;
  int netns_configured;
  /* 1 = annotated trusted (io.kubernetes.cri-o.TrustedSandbox=true),
   * 0 = annotated untrusted (TrustedSandbox=false,
   * io.kubernetes.cri.untrusted-workload=true), -1 = not annotated. */
  int trusted;
  /* The pod's size: io.katavm.cpus / io.katavm.memory_mib annotations, else
   * the spec's linux.resources (CPU quota/period rounded up, memory limit
   * rounded up to MiB); 0 = not given (runtime default). */
  unsigned int vcpus;
  unsigned int memory_mib;
  /* The spec's annotations as a JSON object text ("{}" when it has none),
   * for the OCI state a runtime reports. */
  char *annotations;
  /* 1 when vcpus / memory_mib above came from an io.katavm.* annotation
   * (which a runtime's configuration may disallow), 0 when from
   * linux.resources or not given. */
  int vcpus_annotated;
  int memory_annotated;
} katavm_bundle_info;

/* Prepare a bundle info: zero `size` bytes and set struct_size = size.
 * Call it through katavm_bundle_info_init(). */
KATAVM_API void katavm_bundle_info_init_sized(katavm_bundle_info *info, size_t size);
/* Prepare a bundle info before reading into it (see _init_sized). */
static inline void katavm_bundle_info_init(katavm_bundle_info *info) {
  katavm_bundle_info_init_sized(info, sizeof(*info));
}

/* Read bundle/config.json's annotations, namespaces and resources.
 * info: prepared with katavm_bundle_info_init(); filled up to its
 * struct_size on success (clear it with katavm_bundle_info_clear()).
 * Errors: KATAVM_E_INVALID (struct_size, malformed config.json or
 * annotations: the message names the field, a member without a sandbox
 * id, an annotated size that is not a number, no config.json),
 * KATAVM_E_NOT_FOUND (bundle or netns path missing). */
KATAVM_API int katavm_bundle_info_read(const char *bundle, katavm_bundle_info *info,
                                       katavm_error **err);
/* Free the strings of a bundle info and zero them; NULL is allowed. */
KATAVM_API void katavm_bundle_info_clear(katavm_bundle_info *info);

/* The default OCI spec for a rootfs directory "rootfs" (what `runc spec`
 * writes, with katavm's defaults).
 * json_out: receives pretty-printed JSON, freed with katavm_free().
 * Errors: KATAVM_E_INVALID (NULL json_out). */
KATAVM_API int katavm_oci_default_spec(char **json_out, katavm_error **err);

/* ------------------------------------------------------------------ */
/* Warm pool (docs/pool.md)                                            */
/* ------------------------------------------------------------------ */

/* The shape of a runtime root's warm pool: VMs booted ahead, agent-ready,
 * each with 1 vCPU of at most max_vcpus and the runtime's memory of at
 * most max_memory_mib, from which katavm_sandbox_create() takes one when
 * the request fits (see there). */
typedef struct katavm_pool_config {
  size_t struct_size; /* set by katavm_pool_config_init() */
  /* VMs kept ready; 0 = 1. At most 64. */
  unsigned int size;
  /* vCPUs a pooled VM can be given (hotplug); 0 = 2. At most 256. */
  unsigned int max_vcpus;
  /* Memory a pooled VM can be given, MiB; 0 = 1024. At least the
   * runtime's boot memory (katavm_runtime_set_memory). */
  unsigned int max_memory_mib;
  /* new fields are only ever appended */
} katavm_pool_config;

/* Prepare a pool config: zero `size` bytes and set struct_size = size.
 * Call it through katavm_pool_config_init(). */
KATAVM_API void katavm_pool_config_init_sized(katavm_pool_config *cfg, size_t size);
/* Prepare a pool config before filling it (see _init_sized). */
static inline void katavm_pool_config_init(katavm_pool_config *cfg) {
  katavm_pool_config_init_sized(cfg, sizeof(*cfg));
}

/* Start the warm pool of the runtime's root: a keeper process (it
 * outlives the caller) that boots VMs one at a time in the background up
 * to cfg->size and refills the pool whenever one is taken. Returns once
 * the keeper runs, before any VM is ready. The VMs use the runtime's
 * kernel, initrd, accelerator, libvirt URI and shared file system as they
 * are now. If the keeper dies, however, its VMs destroy themselves.
 * cfg: NULL = all defaults.
 * Errors: KATAVM_E_INVALID (struct_size, a size or shape out of range,
 * size * (max memory + QEMU's overhead) beyond the host's MemAvailable:
 * the message names both), KATAVM_E_EXISTS (a keeper already runs for
 * this root), KATAVM_E_IO (ROOT/pool cannot be created or written: the
 * message names the path), KATAVM_E_NOT_FOUND (kernel, initrd or shim
 * missing). On an error nothing is left behind. */
KATAVM_API int katavm_pool_start(katavm_runtime *rt, const katavm_pool_config *cfg,
                                 katavm_error **err);

/* The pool of the runtime's root as JSON: {"running": bool (a keeper
 * runs), "keeper_pid": int, "size": int, "max_vcpus": int,
 * "max_memory_mib": int, "vms": [{"instance": str, "ready": bool}]};
 * {"running": false, "vms": []} when there is no pool.
 * json_out: receives it, freed with katavm_free().
 * Errors: KATAVM_E_INVALID (NULL argument), KATAVM_E_IO. */
KATAVM_API int katavm_pool_list(katavm_runtime *rt, char **json_out, katavm_error **err);

/* Stop the pool: the keeper ends, every pooled (not yet taken) VM is
 * destroyed and ROOT/pool removed; sandboxes already taken from the pool
 * are not touched. Returns once nothing of the pool is left. No pool is
 * not an error.
 * Errors: KATAVM_E_TIMEOUT (a pooled VM did not go within 120 s; the
 * message names it), KATAVM_E_IO. */
KATAVM_API int katavm_pool_remove(katavm_runtime *rt, katavm_error **err);

#ifdef __cplusplus
}
#endif
#endif /* KATAVM_KATAVM_H */
