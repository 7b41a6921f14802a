/* lib/proto/ocispec.h: the parts of an OCI runtime spec (config.json) that
 * katavm acts on, parsed and validated into plain C structures: one parser
 * with one set of rules for every side (the guest agent parses the spec it
 * is sent with this; the host can validate with the same code).
 *
 * Everything is checked here before anything acts on it: in the agent, on
 * the main loop before any fork (the process that sets a container up
 * cannot report a malformed field nearly as clearly, and it must not
 * allocate). Errors are GErrors in KV_ERROR_DOMAIN (KV_E_INVALID, or
 * KV_E_UNSUPPORTED for what the guest cannot do) whose message names the
 * field as a JSON path ("spec: process.args must be a non-empty array of
 * strings"). The agent trusts none of what the host validated.
 *
 * glib, json-glib and Linux headers only: libseccomp resolves the names of
 * linux.seccomp in the agent (agent/seccomp.c), from KvOciSeccomp.
 */
#pragma once

#include "msg.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/resource.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Capability sets, in the order of KvOciProcess.caps. */
enum {
  KV_OCI_CAPS_BOUNDING,
  KV_OCI_CAPS_EFFECTIVE,
  KV_OCI_CAPS_PERMITTED,
  KV_OCI_CAPS_INHERITABLE,
  KV_OCI_CAPS_AMBIENT,
  KV_OCI_CAPS_N
};

typedef struct {
  int resource;
  struct rlimit limit;
} KvOciRlimit;

typedef struct {
  char **args; /* non-empty */
  char **env;  /* "K=V" strings, may be empty */
  char *cwd;   /* absolute */
  uid_t uid;
  gid_t gid;
  GArray *groups; /* gid_t: additionalGids */
  gboolean terminal;
  guint16 rows, cols; /* consoleSize; 0 = leave the pty's default */
  gboolean has_caps;  /* FALSE: keep all (root's full set) */
  guint64 caps[KV_OCI_CAPS_N];
  gboolean no_new_privileges;
  GArray *rlimits; /* KvOciRlimit */
  gboolean has_oom_score_adj;
  int oom_score_adj;
} KvOciProcess;

typedef struct {
  char *destination; /* absolute, no ".." */
  char *type;        /* "bind" for bind mounts */
  char *source;
  unsigned long flags;       /* MS_* to set */
  unsigned long propagation; /* MS_PRIVATE, MS_SLAVE, ... | MS_REC, or 0 */
  gboolean bind;
  gboolean recursive; /* rbind */
  char *data;         /* options that are not flags, comma separated */
} KvOciMount;

typedef struct {
  char *path; /* absolute */
  char type;  /* 'c', 'b', 'p' */
  guint32 major, minor;
  guint32 mode; /* permission bits */
  uid_t uid;
  gid_t gid;
} KvOciDevice;

/* linux.resources, what cgroup v2 in the guest applies. -1 = not set. */
typedef struct {
  gint64 memory_limit;
  gint64 memory_reservation;
  gint64 memory_swap;
  gint64 cpu_shares;
  gint64 cpu_quota;
  gint64 cpu_period;
  char *cpuset_cpus; /* NULL = not set */
  char *cpuset_mems;
  gint64 pids_limit;
} KvOciResources;

/* linux.seccomp, read and shape-checked; the names in it (actions,
 * operators, syscalls, architectures, flags) are resolved by whoever
 * compiles it. */
typedef struct {
  guint index; /* 0..5 */
  guint64 value, value_two;
  char *op; /* "SCMP_CMP_EQ", ... */
} KvOciSeccompArg;

typedef struct {
  char **names; /* non-empty (the single "name" of old specs folded in) */
  char *action; /* "SCMP_ACT_ERRNO", ... */
  gboolean has_errno_ret;
  guint32 errno_ret; /* 0..65535 */
  GPtrArray *args;   /* KvOciSeccompArg*, at most 6 */
} KvOciSeccompRule;

typedef struct {
  char *default_action;
  gboolean has_default_errno_ret;
  guint32 default_errno_ret;
  char **architectures; /* may be NULL */
  char **flags;         /* may be NULL */
  GPtrArray *syscalls;  /* KvOciSeccompRule* */
} KvOciSeccomp;

typedef struct {
  KvOciProcess *process;
  gboolean root_readonly;
  char *hostname;     /* NULL = not set */
  int namespaces;     /* CLONE_NEW* flags to create (CLONE_NEWNS always) */
  GPtrArray *mounts;  /* KvOciMount* */
  GPtrArray *devices; /* KvOciDevice* */
  char **masked_paths;
  char **readonly_paths;
  char **sysctl;                    /* key, value, key, value, ... */
  unsigned long rootfs_propagation; /* MS_* | MS_REC, 0 = rprivate */
  KvOciResources resources;
  KvOciSeccomp *seccomp; /* linux.seccomp or NULL */
  /* annotations[KV_OCI_STORAGE_SIZE_ANNOTATION]: the size of the
   * container's writable layer in MiB (a tmpfs in the guest over the
   * shared rootfs, agent/rootfs.c); 0 = none, writes reach the rootfs. */
  guint64 storage_size_mib;
} KvOciSpec;

#define KV_OCI_STORAGE_SIZE_ANNOTATION "io.katavm.storage_size_mib"
#define KV_OCI_STORAGE_SIZE_MAX_MIB (1024u * 1024u)

/* Parses an OCI process object. defaults (may be NULL): an exec takes
 * whatever its process object leaves out (env, cwd, user, capabilities,
 * rlimits, noNewPrivileges) from the container's process. `what` prefixes
 * errors ("spec: process" or "exec: process"). */
KvOciProcess *kv_ocispec_process_parse(JsonObject *o, const KvOciProcess *defaults,
                                       const char *what, GError **error);
void kv_ocispec_process_free(KvOciProcess *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvOciProcess, kv_ocispec_process_free)

KvOciSpec *kv_ocispec_parse(JsonObject *spec, GError **error);
void kv_ocispec_free(KvOciSpec *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvOciSpec, kv_ocispec_free)

/* linux.resources alone (container_update); `out` is set to "not set"
 * (-1, NULL) first. Free its strings with kv_ocispec_resources_clear(). */
gboolean kv_ocispec_resources_parse(JsonObject *r, KvOciResources *out, GError **error);
void kv_ocispec_resources_clear(KvOciResources *r);

/* The value of NAME in a "K=V" environment, or NULL. */
const char *kv_ocispec_env_get(char *const *env, const char *name);

/* linux.seccomp alone (`what` prefixes errors, "spec: linux.seccomp"). */
KvOciSeccomp *kv_ocispec_seccomp_parse(JsonObject *o, const char *what, GError **error);
void kv_ocispec_seccomp_free(KvOciSeccomp *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvOciSeccomp, kv_ocispec_seccomp_free)

G_END_DECLS
