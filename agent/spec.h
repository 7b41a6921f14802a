/* agent/spec.h: the parts of an OCI runtime spec (config.json) the agent
 * acts on, parsed and validated into plain C structures.
 *
 * Everything is checked here, on the main loop, before any fork: the
 * process that sets a container up cannot report a malformed field nearly
 * as clearly, and it must not allocate. Error messages name the field as a
 * JSON path ("spec: process.args must be a non-empty array of strings").
 * The host validated the spec too; the agent trusts none of it anyway.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/resource.h>
#include <sys/types.h>

/* Capability sets, in the order of AgentProcessSpec.caps. */
enum {
  AGENT_CAPS_BOUNDING,
  AGENT_CAPS_EFFECTIVE,
  AGENT_CAPS_PERMITTED,
  AGENT_CAPS_INHERITABLE,
  AGENT_CAPS_AMBIENT,
  AGENT_CAPS_N
};

typedef struct {
  int resource;
  struct rlimit limit;
} AgentRlimit;

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
  guint64 caps[AGENT_CAPS_N];
  gboolean no_new_privileges;
  GArray *rlimits; /* AgentRlimit */
  gboolean has_oom_score_adj;
  int oom_score_adj;
} AgentProcessSpec;

typedef struct {
  char *destination; /* absolute, no ".." */
  char *type;        /* "bind" for bind mounts */
  char *source;
  unsigned long flags;       /* MS_* to set */
  unsigned long propagation; /* MS_PRIVATE, MS_SLAVE, ... | MS_REC, or 0 */
  gboolean bind;
  gboolean recursive; /* rbind */
  char *data;         /* options that are not flags, comma separated */
} AgentMount;

typedef struct {
  char *path; /* absolute */
  char type;  /* 'c', 'b', 'p' */
  guint32 major, minor;
  guint32 mode; /* permission bits */
  uid_t uid;
  gid_t gid;
} AgentDevice;

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
} AgentResources;

typedef struct {
  AgentProcessSpec *process;
  gboolean root_readonly;
  char *hostname;     /* NULL = not set */
  int namespaces;     /* CLONE_NEW* flags to create (CLONE_NEWNS always) */
  GPtrArray *mounts;  /* AgentMount* */
  GPtrArray *devices; /* AgentDevice* */
  char **masked_paths;
  char **readonly_paths;
  char **sysctl;                    /* key, value, key, value, ... */
  unsigned long rootfs_propagation; /* MS_* | MS_REC, 0 = rprivate */
  AgentResources resources;
  JsonObject *seccomp; /* linux.seccomp (a reference) or NULL */
} AgentContainerSpec;

/* Parses an OCI process object. defaults (may be NULL): an exec takes
 * whatever its process object leaves out (env, cwd, user, capabilities,
 * rlimits, noNewPrivileges) from the container's process. `what` prefixes
 * errors ("spec: process" or "exec: process"). */
AgentProcessSpec *agent_process_spec_parse(JsonObject *o, const AgentProcessSpec *defaults,
                                           const char *what, GError **error);
void agent_process_spec_free(AgentProcessSpec *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AgentProcessSpec, agent_process_spec_free)

AgentContainerSpec *agent_container_spec_parse(JsonObject *spec, GError **error);
void agent_container_spec_free(AgentContainerSpec *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AgentContainerSpec, agent_container_spec_free)

/* The value of NAME in a "K=V" environment, or NULL. */
const char *agent_env_get(char *const *env, const char *name);

/* Validation helpers shared by the RPC handlers. */
/* Reads an optional u32 member (absent = 0). */
gboolean agent_json_get_u32(JsonObject *o, const char *name, const char *what, guint32 *out,
                            GError **error);
/* Reads a required string member that is a valid id (container or exec
 * id: 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'). */
const char *agent_json_get_id(JsonObject *o, const char *name, GError **error);
/* Optional string member: NULL when absent, error when not a string. */
gboolean agent_json_get_opt_string(JsonObject *o, const char *name, const char **out,
                                   GError **error);
gboolean agent_json_get_opt_bool(JsonObject *o, const char *name, gboolean *out, GError **error);
gboolean agent_json_get_int(JsonObject *o, const char *name, gint64 min, gint64 max,
                            gboolean required, gint64 *out, GError **error);
