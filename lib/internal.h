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
} KvPaths;
void kv_paths_init(KvPaths *p, const char *root, const char *id);
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
  char *memory_hotplug; /* "auto" | "virtio-mem" | "dimm" */
  GHashTable *conf;     /* [runtime] key -> value of katavm_runtime_load_config(), or NULL */
};

/* ---- persisted sandbox config (written at create, read by the shim) ---- */
typedef struct {
  char *id;
  char *uri; /* NULL = embedded */
  char *accel;
  char *kernel;
  char *initrd;
  guint vcpus, max_vcpus, memory_mib, max_memory_mib;
  char *created;
  char *memory_hotplug; /* "auto" | "virtio-mem" | "dimm"; NULL = auto */
  char *netns;          /* NULL = no network (lib/shim/net.c) */
} KvSandboxConfig;
gboolean kv_config_save(const KvSandboxConfig *c, const char *path, GError **error);
gboolean kv_config_load(KvSandboxConfig *c, const char *path, GError **error);
void kv_config_clear(KvSandboxConfig *c);

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

/* Kernel command line for the guest (fast boot options: docs/platform.md, "Boot"). */
char *kv_guest_cmdline(void);

/* Timeouts (ms). Generous: TCG under load is slow. */
#define KV_BOOT_TIMEOUT_MS 180000
#define KV_CALL_TIMEOUT_MS 60000
/* How long a client waits for a sandbox's lock (recovery, destroy) that
 * another client holds: longer than a recovery's own wait for its shim. */
#define KV_LOCK_TIMEOUT_MS 120000

G_END_DECLS
