/* lib/internal.h: host-side internals shared by libkatavm and katavm-shim:
 * errors, runtime configuration, sandbox paths and on-disk state. Not
 * installed. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "katavm/katavm.h"

G_BEGIN_DECLS

/* ---- errors ---- */
struct katavm_error {
  int code;
  char *message;
};

/* GError domain carrying a katavm_code as its code. */
#define KV_ERROR (kv_error_quark())
GQuark kv_error_quark(void);

/* Fill *err (if err) from a GError, mapping foreign domains to katavm codes;
 * returns the negative code. Consumes nothing. */
int kv_error_propagate(katavm_error **err, const GError *gerr);
/* Build a katavm_error directly; returns code. */
int kv_error_set(katavm_error **err, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Map any GError (KV_ERROR, KV_PROTO_ERROR, KV_VMM_ERROR, G_IO_ERROR,
 * G_FILE_ERROR) to a katavm_code. */
int kv_error_code_of(const GError *e);

/* ---- ids and paths ---- */
/* Valid: 1..KATAVM_ID_MAX chars of [A-Za-z0-9_.-], starting alnum, no "..". */
gboolean kv_id_validate(const char *id, GError **error);
char *kv_id_generate(void);

typedef struct {
  char *root;     /* runtime root */
  char *dir;      /* ROOT/sandboxes/ID: config.json, state.json, logs (0700);
                   * its flock(2) serialises recovery and destroy */
  char *run;      /* ROOT/r/HASH: sockets + embedded libvirt root (short) */
  char *shared;   /* DIR/shared: 9p-shared with the guest */
  char *config;   /* DIR/config.json (written by the library at create) */
  char *state;    /* DIR/state.json  (written by the shim) */
  char *console;  /* DIR/console.log */
  char *shim_log; /* DIR/shim.log */
  char *shim_sock;
  char *agent_sock;
  char *vmm_root;   /* RUN/vmm */
  char *caps_cache; /* ROOT/cache/qemu: shared QEMU capabilities cache */
  char *domain;     /* libvirt domain name */
  char *instance;   /* the VM's own id: names RUN, the domain and the shim's
                     * argv; the sandbox id unless the VM came from the pool */
} KvPaths;
/* The paths of sandbox `id`; its instance id is read from DIR/instance
 * (written for a VM taken from the warm pool: lib/pool.c), else `id`. */
void kv_paths_init(KvPaths *p, const char *root, const char *id);
/* The paths of a VM with state directory `dir` and instance id `instance`
 * (a pooled VM: dir = ROOT/pool/vms/INSTANCE). */
void kv_paths_init_dir(KvPaths *p, const char *root, const char *dir, const char *instance);
void kv_paths_clear(KvPaths *p);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KvPaths, kv_paths_clear)

/* ---- runtime ---- */
struct katavm_runtime {
  char *root;
  char *uri; /* NULL = embedded per sandbox */
  char *accel;
  char *kernel;
  char *initrd;
  char *shim;
  unsigned int vcpus;
  unsigned int memory_mib;
  char *memory_hotplug;       /* "auto" | "virtio-mem" | "dimm" */
  char *shared_fs;            /* "auto" | "virtio-fs" | "9p" */
  char *virtiofsd;            /* the virtiofsd binary (KATAVM_VIRTIOFSD) */
  char *virtiofs_cache;       /* "none" | "auto" | "always" (KATAVM_VIRTIOFS_CACHE) */
  gint64 virtiofs_timeout_ms; /* name/attribute cache time; -1 = the mode's own
                               * (KATAVM_VIRTIOFS_TIMEOUT_MS) */
  guint tb_cache_mib;         /* TCG translation cache, 0 = by the VM's shape
                               * (KATAVM_TCG_TB_CACHE_MIB; lib/vmm/xml.c) */
  GHashTable *conf;           /* [runtime] key -> value of katavm_runtime_load_config(), or NULL */
};

/* ---- the shared filesystem (lib/runtime.c) ---- */
#define KV_SHARED_FS_VIRTIOFS "virtio-fs"
#define KV_SHARED_FS_9P "9p"
#define KV_VIRTIOFSD_DEFAULT "/usr/lib/qemu/virtiofsd"
/* 9p's file server outside QEMU (QEMU's proxy backend; same package). */
#define KV_VIRTFS_PROXY_HELPER "/usr/lib/qemu/virtfs-proxy-helper"
#define KV_VIRTIOFS_CACHE_DEFAULT "auto"
/* The guest keeps names and attributes for 1 s (cache=auto's own time):
 * host-side changes show within it, and metadata work is ~3x faster than
 * with 0 (docs/storage-fs.md, "Cache mode", measured). */
#define KV_VIRTIOFS_TIMEOUT_MS_DEFAULT 1000
#define KV_VIRTIOFS_TIMEOUT_MS_MAX 86400000
/* KATAVM_TCG_TB_CACHE_MIB's range (QEMU wants at least a few MiB per
 * possible vCPU; beyond 4 GiB is no cache bound at all). */
#define KV_TB_CACHE_MIB_MIN 16
#define KV_TB_CACHE_MIB_MAX 4096
/* Whether s is one of virtiofsd's cache modes (none, auto, always). */
gboolean kv_virtiofs_cache_valid(const char *s);
/* Resolve the runtime's shared_fs for this host: "auto" is virtio-fs where
 * rt->virtiofsd is an executable, else 9p; "virtio-fs" without virtiofsd
 * fails (KATAVM_E_NOT_FOUND). *reason (optional, caller frees) says why,
 * for `katavm check`. Returns KV_SHARED_FS_* or NULL. */
const char *kv_shared_fs_resolve(const katavm_runtime *rt, char **reason, GError **error);

/* ---- persisted sandbox config (written at create, read by the shim) ---- */
typedef struct {
  char *id;
  char *uri; /* NULL = embedded */
  char *accel;
  char *kernel;
  char *initrd;
  guint vcpus, max_vcpus, memory_mib, max_memory_mib;
  char *created;
  char *memory_hotplug;       /* "auto" | "virtio-mem" | "dimm"; NULL = auto */
  char *netns;                /* NULL = no network (lib/shim/net.c) */
  char *shared_fs;            /* KV_SHARED_FS_*, resolved at create; NULL = 9p (older configs) */
  char *virtiofsd;            /* virtio-fs: the daemon's binary */
  char *virtiofs_cache;       /* virtio-fs: its cache mode */
  gint64 virtiofs_timeout_ms; /* virtio-fs: its name/attribute timeout, -1 = the mode's */
  char *net;                  /* NULL/"none" | "tcfilter" (netns) | "user" (QEMU user-mode NAT) */
  char **publish;             /* net "user": "[IP:]HOSTPORT:PORT[/proto]" (publish.h) */
  guint tb_cache_mib;         /* TCG translation cache; 0 = by the VM's shape */
} KvSandboxConfig;
gboolean kv_config_save(const KvSandboxConfig *c, const char *path, GError **error);
gboolean kv_config_load(KvSandboxConfig *c, const char *path, GError **error);
void kv_config_clear(KvSandboxConfig *c);

/* ---- the warm pool (lib/pool.c, pool.h) ---- */
/* Take a ready pooled VM as sandbox `id` when `want` (the sandbox's config
 * as a cold boot would write it) fits the pool: 1 = taken (the sandbox's
 * state is at ROOT/sandboxes/ID, its vCPUs and memory still the pool's
 * boot values: *boot_mib gets that memory; the netns of `want`, if any,
 * is connected), 0 = not taken (cold boot), -1 = error (KATAVM_E_EXISTS:
 * the id is taken; NOT_FOUND, INVALID: want's netns is none to use),
 * 2 = sandbox `id` exists but its take failed: destroy it, boot cold. */
int kv_pool_take(const char *root, const KvSandboxConfig *want, const char *id, guint *boot_mib,
                 GError **error);

/* ---- JSON file helpers (size-capped, atomic write) ---- */
JsonObject *kv_json_file_load(const char *path, GError **error);
gboolean kv_json_file_save(JsonObject *obj, const char *path, GError **error);
char *kv_json_to_string(JsonObject *obj);
/* Reading JSON: lib/proto/fields.h (tables), never field by field. */

/* A JSON array of the strings of a NULL-terminated vector (NULL = empty). */
JsonArray *kv_json_strv(const char *const *v);

/* Remove a directory tree without crossing mount points; unmounts anything
 * mounted below it first (lazy). Missing = success. */
gboolean kv_rm_rf(const char *path, GError **error);
/* Unmount every mount at or below `path` (deepest first). */
void kv_umount_below(const char *path);

/* The state letter of process `pid` as /proc shows it (R, S, D, T for
 * stopped, t for traced, Z...), 0 when there is no such process. */
char kv_proc_state(int pid);
/* The session id of process `pid` (a zombie's too), 0 when unreadable. */
int kv_proc_session(int pid);

/* Kernel command line for the guest (fast boot options: docs/platform.md, "Boot"). */
char *kv_guest_cmdline(void);

/* Timeouts (ms). Generous: TCG under load is slow. */
#define KV_BOOT_TIMEOUT_MS 180000
#define KV_CALL_TIMEOUT_MS 60000
/* How long a client waits for a sandbox's lock (recovery, destroy) that
 * another client holds: longer than a recovery's own wait for its shim. */
#define KV_LOCK_TIMEOUT_MS 120000

G_END_DECLS
