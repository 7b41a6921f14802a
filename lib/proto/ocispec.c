/* lib/proto/ocispec.c: OCI runtime spec parsing and validation (see
 * ocispec.h), with the one kit of JSON accessors whose errors name the
 * field. */
#include "ocispec.h"

#include <linux/capability.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>

/* ---- JSON access with errors that name the field ---- */

/* A member that is absent or JSON null counts as absent. */
static JsonNode *member(JsonObject *o, const char *name) {
  JsonNode *n = o != NULL ? json_object_get_member(o, name) : NULL;
  return n != NULL && !JSON_NODE_HOLDS_NULL(n) ? n : NULL;
}

static gboolean invalid(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean invalid(GError **error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, KV_ERROR_DOMAIN, KV_E_INVALID, msg);
  return FALSE;
}

static gboolean node_is(JsonNode *n, GType t) {
  return n != NULL && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == t;
}

/* Integers above G_MAXINT64 (RLIM_INFINITY written out as
 * 18446744073709551615) reach us as doubles from some json-glib versions;
 * others (1.6) hand them over wrapped into a negative gint64: see
 * get_u64. */
static gboolean node_to_int(JsonNode *n, gint64 *i, guint64 *u, gboolean *is_unsigned) {
  if (node_is(n, G_TYPE_INT64)) {
    *i = json_node_get_int(n);
    *is_unsigned = FALSE;
    return TRUE;
  }
  if (node_is(n, G_TYPE_DOUBLE)) {
    double d = json_node_get_double(n);
    if (d >= 9223372036854775808.0 && d <= 18446744073709551616.0) {
      *u = d >= 18446744073709551615.0 ? G_MAXUINT64 : (guint64)d;
      *is_unsigned = TRUE;
      return TRUE;
    }
  }
  return FALSE;
}

static gboolean get_int(JsonObject *o, const char *name, const char *path, gint64 min, gint64 max,
                        gboolean required, gint64 *out, GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL) {
    if (required)
      return invalid(error, "%s.%s is required", path, name);
    return TRUE;
  }
  gint64 i = 0;
  guint64 u = 0;
  gboolean uns = FALSE;
  if (!node_to_int(n, &i, &u, &uns) || uns || i < min || i > max)
    return invalid(error, "%s.%s must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                   path, name, min, max);
  *out = i;
  return TRUE;
}

/* Unsigned integers up to max. Where max is 2^64-1 (rlimits, seccomp
 * masks) a negative gint64 is taken as the u64 it wraps: json-glib 1.6
 * parses 18446744073709551615 (RLIM_INFINITY, as podman writes it) as -1,
 * so "-1" cannot be told from it and means the same. Values json-glib
 * hands over as doubles are exact for the masks people write. */
static gboolean get_u64(JsonObject *o, const char *name, const char *path, guint64 max,
                        gboolean required, guint64 *out, GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL && !required)
    return TRUE;
  gint64 i = 0;
  guint64 u = 0;
  gboolean uns = FALSE;
  if (n == NULL)
    return invalid(error, "%s.%s is required", path, name);
  if (!node_to_int(n, &i, &u, &uns) || (!uns && i < 0 && max != G_MAXUINT64) ||
      (uns ? u : (guint64)i) > max)
    return invalid(error, "%s.%s must be an integer from 0 to %" G_GUINT64_FORMAT, path, name, max);
  *out = uns ? u : (guint64)i;
  return TRUE;
}

static gboolean get_bool(JsonObject *o, const char *name, const char *path, gboolean *out,
                         GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL)
    return TRUE;
  if (!node_is(n, G_TYPE_BOOLEAN))
    return invalid(error, "%s.%s must be a boolean", path, name);
  *out = json_node_get_boolean(n);
  return TRUE;
}

/* Strings must be valid UTF-8 without NUL (json-glib guarantees both) and
 * non-empty when `nonempty`. */
static gboolean get_string(JsonObject *o, const char *name, const char *path, gboolean required,
                           const char **out, GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL) {
    if (required)
      return invalid(error, "%s.%s is required", path, name);
    *out = NULL;
    return TRUE;
  }
  if (!node_is(n, G_TYPE_STRING))
    return invalid(error, "%s.%s must be a string", path, name);
  *out = json_node_get_string(n);
  return TRUE;
}

static gboolean get_object(JsonObject *o, const char *name, const char *path, JsonObject **out,
                           GError **error) {
  JsonNode *n = member(o, name);
  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT(n))
    return invalid(error, "%s.%s must be an object", path, name);
  *out = json_node_get_object(n);
  return TRUE;
}

static gboolean get_array(JsonObject *o, const char *name, const char *path, JsonArray **out,
                          GError **error) {
  JsonNode *n = member(o, name);
  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY(n))
    return invalid(error, "%s.%s must be an array", path, name);
  *out = json_node_get_array(n);
  return TRUE;
}

/* A string array; absent = *out NULL. */
static gboolean get_strv(JsonObject *o, const char *name, const char *path, char ***out,
                         GError **error) {
  JsonArray *a = NULL;
  *out = NULL;
  if (!get_array(o, name, path, &a, error))
    return FALSE;
  if (a == NULL)
    return TRUE;
  guint n = json_array_get_length(a);
  g_auto(GStrv) v = g_new0(char *, n + 1);
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (!node_is(e, G_TYPE_STRING))
      return invalid(error, "%s.%s[%u] must be a string", path, name, i);
    v[i] = g_strdup(json_node_get_string(e));
  }
  *out = g_steal_pointer(&v);
  return TRUE;
}

/* An absolute path without "." or ".." components: the agent joins these
 * to the container root and must not be led outside it by them. */
static gboolean check_abs_path(const char *p, const char *what, GError **error) {
  if (p == NULL || p[0] != '/')
    return invalid(error, "%s must be an absolute path (got \"%s\")", what, p != NULL ? p : "");
  g_auto(GStrv) parts = g_strsplit(p, "/", -1);
  for (char **s = parts; *s != NULL; s++) {
    if (strcmp(*s, "..") == 0 || strcmp(*s, ".") == 0)
      return invalid(error, "%s must not contain \".\" or \"..\" (got \"%s\")", what, p);
  }
  if (strlen(p) >= 4096)
    return invalid(error, "%s is too long", what);
  return TRUE;
}

/* ---- environment ---- */

const char *kv_ocispec_env_get(char *const *env, const char *name) {
  gsize len = strlen(name);
  for (char *const *e = env; e != NULL && *e != NULL; e++) {
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
      return *e + len + 1;
  }
  return NULL;
}

/* ---- process ---- */

static const char *const cap_names[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};
G_STATIC_ASSERT(G_N_ELEMENTS(cap_names) == CAP_LAST_CAP + 1);

static const char *const cap_set_names[KV_OCI_CAPS_N] = {"bounding", "effective", "permitted",
                                                         "inheritable", "ambient"};

static gboolean parse_caps(JsonObject *caps, const char *path, guint64 out[KV_OCI_CAPS_N],
                           GError **error) {
  for (int s = 0; s < KV_OCI_CAPS_N; s++) {
    g_auto(GStrv) names = NULL;
    if (!get_strv(caps, cap_set_names[s], path, &names, error))
      return FALSE;
    out[s] = 0;
    for (char **n = names; n != NULL && *n != NULL; n++) {
      /* Docker and podman write "CAP_X"; some tools write "x". */
      g_autofree char *up = g_ascii_strup(*n, -1);
      g_autofree char *full =
          g_str_has_prefix(up, "CAP_") ? g_strdup(up) : g_strconcat("CAP_", up, NULL);
      int found = -1;
      for (gsize i = 0; i < G_N_ELEMENTS(cap_names); i++) {
        if (strcmp(cap_names[i], full) == 0) {
          found = (int)i;
          break;
        }
      }
      if (found < 0)
        return invalid(error, "%s.%s: unknown capability \"%s\"", path, cap_set_names[s], *n);
      out[s] |= G_GUINT64_CONSTANT(1) << found;
    }
  }
  return TRUE;
}

static const struct {
  const char *name;
  int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

static gboolean parse_rlimits(JsonArray *a, const char *path, GArray *out, GError **error) {
  guint n = json_array_get_length(a);
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element(a, i);
    g_autofree char *epath = g_strdup_printf("%s[%u]", path, i);
    if (!JSON_NODE_HOLDS_OBJECT(e))
      return invalid(error, "%s must be an object", epath);
    JsonObject *o = json_node_get_object(e);
    const char *type = NULL;
    if (!get_string(o, "type", epath, TRUE, &type, error))
      return FALSE;
    int res = -1;
    for (gsize k = 0; k < G_N_ELEMENTS(rlimit_names); k++) {
      if (strcmp(rlimit_names[k].name, type) == 0)
        res = rlimit_names[k].resource;
    }
    if (res < 0)
      return invalid(error, "%s.type: unknown rlimit \"%s\"", epath, type);
    guint64 soft = 0, hard = 0;
    if (!get_u64(o, "soft", epath, G_MAXUINT64, TRUE, &soft, error) ||
        !get_u64(o, "hard", epath, G_MAXUINT64, TRUE, &hard, error))
      return FALSE;
    if (soft > hard)
      return invalid(
          error, "%s: soft limit %" G_GUINT64_FORMAT " is above the hard limit %" G_GUINT64_FORMAT,
          epath, soft, hard);
    KvOciRlimit r = {res, {(rlim_t)soft, (rlim_t)hard}};
    /* A later entry for the same resource wins, as with setrlimit. */
    g_array_append_val(out, r);
  }
  return TRUE;
}

void kv_ocispec_process_free(KvOciProcess *p) {
  if (p == NULL)
    return;
  g_strfreev(p->args);
  g_strfreev(p->env);
  g_free(p->cwd);
  g_clear_pointer(&p->groups, g_array_unref);
  g_clear_pointer(&p->rlimits, g_array_unref);
  g_free(p);
}

KvOciProcess *kv_ocispec_process_parse(JsonObject *o, const KvOciProcess *defaults,
                                       const char *what, GError **error) {
  g_autoptr(KvOciProcess) p = g_new0(KvOciProcess, 1);
  p->groups = g_array_new(FALSE, FALSE, sizeof(gid_t));
  p->rlimits = g_array_new(FALSE, FALSE, sizeof(KvOciRlimit));
  if (defaults != NULL) {
    p->env = g_strdupv(defaults->env);
    p->cwd = g_strdup(defaults->cwd);
    p->uid = defaults->uid;
    p->gid = defaults->gid;
    g_array_append_vals(p->groups, defaults->groups->data, defaults->groups->len);
    p->has_caps = defaults->has_caps;
    memcpy(p->caps, defaults->caps, sizeof p->caps);
    p->no_new_privileges = defaults->no_new_privileges;
    g_array_append_vals(p->rlimits, defaults->rlimits->data, defaults->rlimits->len);
    p->has_oom_score_adj = defaults->has_oom_score_adj;
    p->oom_score_adj = defaults->oom_score_adj;
  }

  if (!get_strv(o, "args", what, &p->args, error))
    return NULL;
  if (p->args == NULL || p->args[0] == NULL || p->args[0][0] == '\0') {
    invalid(error, "%s.args must be a non-empty array of strings", what);
    return NULL;
  }
  JsonNode *env = member(o, "env");
  if (env != NULL) {
    g_clear_pointer(&p->env, g_strfreev);
    if (!get_strv(o, "env", what, &p->env, error))
      return NULL;
    for (char **e = p->env; *e != NULL; e++) {
      if (strchr(*e, '=') == NULL || **e == '=') {
        invalid(error, "%s.env: \"%s\" is not of the form NAME=VALUE", what, *e);
        return NULL;
      }
    }
  }
  if (p->env == NULL)
    p->env = g_new0(char *, 1);

  const char *cwd = NULL;
  if (!get_string(o, "cwd", what, FALSE, &cwd, error))
    return NULL;
  if (cwd != NULL) {
    g_autofree char *cwd_what = g_strdup_printf("%s.cwd", what);
    if (cwd[0] != '/' || strlen(cwd) >= 4096) {
      invalid(error, "%s must be an absolute path (got \"%s\")", cwd_what, cwd);
      return NULL;
    }
    g_free(p->cwd);
    p->cwd = g_strdup(cwd);
  }
  if (p->cwd == NULL)
    p->cwd = g_strdup("/");

  gboolean terminal = FALSE;
  if (!get_bool(o, "terminal", what, &terminal, error))
    return NULL;
  p->terminal = terminal;
  JsonObject *cs = NULL;
  g_autofree char *cs_path = g_strdup_printf("%s.consoleSize", what);
  if (!get_object(o, "consoleSize", what, &cs, error))
    return NULL;
  if (cs != NULL) {
    gint64 h = 0, w = 0;
    if (!get_int(cs, "height", cs_path, 0, G_MAXUINT16, FALSE, &h, error) ||
        !get_int(cs, "width", cs_path, 0, G_MAXUINT16, FALSE, &w, error))
      return NULL;
    p->rows = (guint16)h;
    p->cols = (guint16)w;
  }

  JsonObject *user = NULL;
  g_autofree char *user_path = g_strdup_printf("%s.user", what);
  if (!get_object(o, "user", what, &user, error))
    return NULL;
  if (user != NULL) {
    gint64 uid = p->uid, gid = p->gid;
    if (!get_int(user, "uid", user_path, 0, G_MAXUINT32 - 1, FALSE, &uid, error) ||
        !get_int(user, "gid", user_path, 0, G_MAXUINT32 - 1, FALSE, &gid, error))
      return NULL;
    p->uid = (uid_t)uid;
    p->gid = (gid_t)gid;
    JsonArray *ag = NULL;
    if (!get_array(user, "additionalGids", user_path, &ag, error))
      return NULL;
    if (ag != NULL) {
      g_array_set_size(p->groups, 0);
      guint n = json_array_get_length(ag);
      if (n > 65536) {
        invalid(error, "%s.additionalGids has too many entries", user_path);
        return NULL;
      }
      for (guint i = 0; i < n; i++) {
        JsonNode *e = json_array_get_element(ag, i);
        if (!node_is(e, G_TYPE_INT64) || json_node_get_int(e) < 0 ||
            json_node_get_int(e) >= G_MAXUINT32) {
          invalid(error, "%s.additionalGids[%u] must be a gid", user_path, i);
          return NULL;
        }
        gid_t g = (gid_t)json_node_get_int(e);
        g_array_append_val(p->groups, g);
      }
    }
    const char *username = NULL;
    if (!get_string(user, "username", user_path, FALSE, &username, error))
      return NULL;
    /* OCI Linux processes name users by number; a name would need the
     * container's /etc/passwd, which the host resolves. */
    if (username != NULL && *username != '\0' && member(user, "uid") == NULL) {
      invalid(error, "%s.username is not supported on Linux: give uid/gid", user_path);
      return NULL;
    }
  }

  JsonObject *caps = NULL;
  g_autofree char *caps_path = g_strdup_printf("%s.capabilities", what);
  if (!get_object(o, "capabilities", what, &caps, error))
    return NULL;
  if (caps != NULL) {
    if (!parse_caps(caps, caps_path, p->caps, error))
      return NULL;
    p->has_caps = TRUE;
  }

  gboolean nnp = p->no_new_privileges;
  if (!get_bool(o, "noNewPrivileges", what, &nnp, error))
    return NULL;
  p->no_new_privileges = nnp;

  JsonArray *rl = NULL;
  g_autofree char *rl_path = g_strdup_printf("%s.rlimits", what);
  if (!get_array(o, "rlimits", what, &rl, error))
    return NULL;
  if (rl != NULL) {
    g_array_set_size(p->rlimits, 0);
    if (!parse_rlimits(rl, rl_path, p->rlimits, error))
      return NULL;
  }

  if (member(o, "oomScoreAdj") != NULL) {
    gint64 v = 0;
    if (!get_int(o, "oomScoreAdj", what, -1000, 1000, TRUE, &v, error))
      return NULL;
    p->has_oom_score_adj = TRUE;
    p->oom_score_adj = (int)v;
  }
  return g_steal_pointer(&p);
}

/* ---- mounts ---- */

static const struct {
  const char *name;
  gboolean clear;
  unsigned long flag;
} mount_flags[] = {
    {"ro", FALSE, MS_RDONLY},
    {"rw", TRUE, MS_RDONLY},
    {"nosuid", FALSE, MS_NOSUID},
    {"suid", TRUE, MS_NOSUID},
    {"nodev", FALSE, MS_NODEV},
    {"dev", TRUE, MS_NODEV},
    {"noexec", FALSE, MS_NOEXEC},
    {"exec", TRUE, MS_NOEXEC},
    {"sync", FALSE, MS_SYNCHRONOUS},
    {"async", TRUE, MS_SYNCHRONOUS},
    {"dirsync", FALSE, MS_DIRSYNC},
    {"mand", FALSE, MS_MANDLOCK},
    {"nomand", TRUE, MS_MANDLOCK},
    {"noatime", FALSE, MS_NOATIME},
    {"atime", TRUE, MS_NOATIME},
    {"nodiratime", FALSE, MS_NODIRATIME},
    {"diratime", TRUE, MS_NODIRATIME},
    {"relatime", FALSE, MS_RELATIME},
    {"norelatime", TRUE, MS_RELATIME},
    {"strictatime", FALSE, MS_STRICTATIME},
    {"nostrictatime", TRUE, MS_STRICTATIME},
};

static const struct {
  const char *name;
  unsigned long flags;
} propagation_flags[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

static gboolean lookup_propagation(const char *name, unsigned long *out) {
  for (gsize i = 0; i < G_N_ELEMENTS(propagation_flags); i++) {
    if (strcmp(propagation_flags[i].name, name) == 0) {
      *out = propagation_flags[i].flags;
      return TRUE;
    }
  }
  return FALSE;
}

static void mount_free(KvOciMount *m) {
  g_free(m->destination);
  g_free(m->type);
  g_free(m->source);
  g_free(m->data);
  g_free(m);
}

static const char *const mount_types[] = {"bind",   "proc",   "sysfs",   "tmpfs", "devpts",
                                          "mqueue", "cgroup", "cgroup2", "ramfs"};

static KvOciMount *parse_mount(JsonObject *o, const char *path, GError **error) {
  const char *dest = NULL, *type = NULL, *source = NULL;
  g_auto(GStrv) options = NULL;
  if (!get_string(o, "destination", path, TRUE, &dest, error) ||
      !get_string(o, "type", path, FALSE, &type, error) ||
      !get_string(o, "source", path, FALSE, &source, error) ||
      !get_strv(o, "options", path, &options, error))
    return NULL;
  g_autofree char *dest_what = g_strdup_printf("%s.destination", path);
  if (!check_abs_path(dest, dest_what, error))
    return NULL;

  KvOciMount *m = g_new0(KvOciMount, 1);
  m->destination = g_strdup(dest);
  m->source = g_strdup(source);
  g_autoptr(GString) data = g_string_new(NULL);
  for (char **opt = options; opt != NULL && *opt != NULL; opt++) {
    gboolean known = FALSE;
    for (gsize i = 0; i < G_N_ELEMENTS(mount_flags); i++) {
      if (strcmp(mount_flags[i].name, *opt) == 0) {
        if (mount_flags[i].clear)
          m->flags &= ~mount_flags[i].flag;
        else
          m->flags |= mount_flags[i].flag;
        known = TRUE;
        break;
      }
    }
    if (known || strcmp(*opt, "defaults") == 0)
      continue;
    if (strcmp(*opt, "bind") == 0 || strcmp(*opt, "rbind") == 0) {
      m->bind = TRUE;
      m->recursive = m->recursive || strcmp(*opt, "rbind") == 0;
      continue;
    }
    unsigned long prop = 0;
    if (lookup_propagation(*opt, &prop)) {
      m->propagation = prop;
      continue;
    }
    /* Options of runtimes the guest has no use for. */
    if (strcmp(*opt, "tmpcopyup") == 0 || strcmp(*opt, "remount") == 0 ||
        strcmp(*opt, "nosymfollow") == 0 || strcmp(*opt, "idmap") == 0)
      continue;
    if (strchr(*opt, ',') != NULL) {
      mount_free(m);
      invalid(error, "%s.options: \"%s\" contains a comma", path, *opt);
      return NULL;
    }
    /* Anything else is file-system data (mode=, size=, newinstance, ...):
     * the kernel is the judge of it. */
    if (data->len > 0)
      g_string_append_c(data, ',');
    g_string_append(data, *opt);
  }
  if (type == NULL || *type == '\0' || strcmp(type, "none") == 0)
    type = "bind";
  if (strcmp(type, "bind") == 0)
    m->bind = TRUE;
  if (m->bind) {
    type = "bind";
    if (source == NULL || *source == '\0') {
      mount_free(m);
      invalid(error, "%s.source is required for a bind mount", path);
      return NULL;
    }
  }
  gboolean type_ok = FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS(mount_types); i++)
    type_ok = type_ok || strcmp(mount_types[i], type) == 0;
  if (!type_ok) {
    mount_free(m);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED,
                "%s.type \"%s\" is not supported in the guest (bind, proc, "
                "sysfs, tmpfs, devpts, mqueue, cgroup, cgroup2, ramfs)",
                path, type);
    return NULL;
  }
  m->type = g_strdup(type);
  m->data = data->len > 0 ? g_strdup(data->str) : NULL;
  return m;
}

/* ---- devices ---- */

static KvOciDevice *parse_device(JsonObject *o, const char *path, GError **error) {
  const char *dpath = NULL, *type = NULL;
  if (!get_string(o, "path", path, TRUE, &dpath, error) ||
      !get_string(o, "type", path, TRUE, &type, error))
    return NULL;
  g_autofree char *pwhat = g_strdup_printf("%s.path", path);
  if (!check_abs_path(dpath, pwhat, error))
    return NULL;
  if (strcmp(type, "c") != 0 && strcmp(type, "u") != 0 && strcmp(type, "b") != 0 &&
      strcmp(type, "p") != 0) {
    invalid(error, "%s.type must be one of c, u, b, p (got \"%s\")", path, type);
    return NULL;
  }
  gint64 major = 0, minor = 0, mode = 0666, uid = 0, gid = 0;
  gboolean need_num = type[0] != 'p';
  if (!get_int(o, "major", path, 0, 0xfff, need_num, &major, error) ||
      !get_int(o, "minor", path, 0, 0xfffff, need_num, &minor, error) ||
      !get_int(o, "fileMode", path, 0, 07777, FALSE, &mode, error) ||
      !get_int(o, "uid", path, 0, G_MAXUINT32 - 1, FALSE, &uid, error) ||
      !get_int(o, "gid", path, 0, G_MAXUINT32 - 1, FALSE, &gid, error))
    return NULL;
  KvOciDevice *d = g_new0(KvOciDevice, 1);
  d->path = g_strdup(dpath);
  d->type = type[0] == 'u' ? 'c' : type[0];
  d->major = (guint32)major;
  d->minor = (guint32)minor;
  d->mode = (guint32)mode;
  d->uid = (uid_t)uid;
  d->gid = (gid_t)gid;
  return d;
}

static void device_free(KvOciDevice *d) {
  g_free(d->path);
  g_free(d);
}

/* ---- resources ---- */

static gboolean parse_resources(JsonObject *r, KvOciResources *out, GError **error) {
  JsonObject *mem = NULL, *cpu = NULL, *pids = NULL;
  if (!get_object(r, "memory", "spec: linux.resources", &mem, error) ||
      !get_object(r, "cpu", "spec: linux.resources", &cpu, error) ||
      !get_object(r, "pids", "spec: linux.resources", &pids, error))
    return FALSE;
  const char *mp = "spec: linux.resources.memory";
  if (mem != NULL &&
      (!get_int(mem, "limit", mp, -1, G_MAXINT64, FALSE, &out->memory_limit, error) ||
       !get_int(mem, "reservation", mp, -1, G_MAXINT64, FALSE, &out->memory_reservation, error) ||
       !get_int(mem, "swap", mp, -1, G_MAXINT64, FALSE, &out->memory_swap, error)))
    return FALSE;
  if (out->memory_limit == 0)
    out->memory_limit = -1; /* 0 means "not set" in runc */
  /* The smallest limit a container can start under in the guest; below it
   * the init process is killed before it runs anything. */
  if (out->memory_limit > 0 && out->memory_limit < 4 * 1024 * 1024)
    return invalid(error, "%s.limit %" G_GINT64_FORMAT " is below the minimum of 4 MiB", mp,
                   out->memory_limit);
  const char *cp = "spec: linux.resources.cpu";
  if (cpu != NULL) {
    const char *cpus = NULL, *mems = NULL;
    if (!get_int(cpu, "shares", cp, 0, 262144, FALSE, &out->cpu_shares, error) ||
        !get_int(cpu, "quota", cp, -1, G_MAXINT64, FALSE, &out->cpu_quota, error) ||
        !get_int(cpu, "period", cp, 0, 1000000, FALSE, &out->cpu_period, error) ||
        !get_string(cpu, "cpus", cp, FALSE, &cpus, error) ||
        !get_string(cpu, "mems", cp, FALSE, &mems, error))
      return FALSE;
    if (out->cpu_period == 0)
      out->cpu_period = -1;
    if (out->cpu_period > 0 && out->cpu_period < 1000)
      return invalid(error, "%s.period must be at least 1000 (us)", cp);
    if (out->cpu_quota == 0)
      out->cpu_quota = -1;
    if (out->cpu_quota > 0 && out->cpu_quota < 1000)
      return invalid(error, "%s.quota must be at least 1000 (us)", cp);
    if (out->cpu_shares == 0)
      out->cpu_shares = -1;
    for (int i = 0; i < 2; i++) {
      const char *v = i == 0 ? cpus : mems;
      if (v == NULL || *v == '\0')
        continue;
      for (const char *c = v; *c != '\0'; c++) {
        if (!g_ascii_isdigit(*c) && *c != ',' && *c != '-')
          return invalid(error, "%s.%s \"%s\" is not a CPU list", cp, i == 0 ? "cpus" : "mems", v);
      }
      if (i == 0)
        out->cpuset_cpus = g_strdup(v);
      else
        out->cpuset_mems = g_strdup(v);
    }
  }
  if (pids != NULL && !get_int(pids, "limit", "spec: linux.resources.pids", G_MININT64, G_MAXINT64,
                               FALSE, &out->pids_limit, error))
    return FALSE;
  return TRUE;
}

/* ---- namespaces ---- */

static gboolean parse_namespaces(JsonArray *a, int *flags, GError **error) {
  static const struct {
    const char *name;
    int flag;
  } kinds[] = {
      {"pid", CLONE_NEWPID},  {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},
      {"mount", CLONE_NEWNS}, {"cgroup", CLONE_NEWCGROUP},
  };
  guint n = json_array_get_length(a);
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element(a, i);
    g_autofree char *path = g_strdup_printf("spec: linux.namespaces[%u]", i);
    if (!JSON_NODE_HOLDS_OBJECT(e))
      return invalid(error, "%s must be an object", path);
    JsonObject *o = json_node_get_object(e);
    const char *type = NULL, *nspath = NULL;
    if (!get_string(o, "type", path, TRUE, &type, error) ||
        !get_string(o, "path", path, FALSE, &nspath, error))
      return FALSE;
    /* Containers of a sandbox share the VM's network: a runtime's netns
     * (new or by path) lives on the host side of the VM. */
    if (strcmp(type, "network") == 0)
      continue;
    int flag = 0;
    for (gsize k = 0; k < G_N_ELEMENTS(kinds); k++) {
      if (strcmp(kinds[k].name, type) == 0)
        flag = kinds[k].flag;
    }
    if (flag == 0) {
      if (strcmp(type, "user") == 0 || strcmp(type, "time") == 0) {
        g_set_error(error, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED,
                    "%s: %s namespaces are not supported in the guest", path, type);
        return FALSE;
      }
      return invalid(error, "%s.type: unknown namespace \"%s\"", path, type);
    }
    if (nspath != NULL && *nspath != '\0') {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED,
                  "%s: joining a %s namespace by path (\"%s\") is not "
                  "supported in the guest",
                  path, type, nspath);
      return FALSE;
    }
    *flags |= flag;
  }
  return TRUE;
}

/* ---- seccomp ---- */

static void seccomp_arg_free(KvOciSeccompArg *a) {
  g_free(a->op);
  g_free(a);
}

static void seccomp_rule_free(KvOciSeccompRule *r) {
  g_strfreev(r->names);
  g_free(r->action);
  g_clear_pointer(&r->args, g_ptr_array_unref);
  g_free(r);
}

void kv_ocispec_seccomp_free(KvOciSeccomp *s) {
  if (s == NULL)
    return;
  g_free(s->default_action);
  g_strfreev(s->architectures);
  g_strfreev(s->flags);
  g_clear_pointer(&s->syscalls, g_ptr_array_unref);
  g_free(s);
}

static gboolean parse_seccomp_args(JsonArray *a, const char *path, GPtrArray *out, GError **error) {
  guint n = json_array_get_length(a);
  if (n > 6)
    return invalid(error, "%s has more than 6 conditions", path);
  for (guint i = 0; i < n; i++) {
    g_autofree char *p = g_strdup_printf("%s[%u]", path, i);
    JsonNode *e = json_array_get_element(a, i);
    if (!JSON_NODE_HOLDS_OBJECT(e))
      return invalid(error, "%s must be an object", p);
    JsonObject *o = json_node_get_object(e);
    guint64 index = 0, value = 0, two = 0;
    const char *op = NULL;
    if (!get_u64(o, "index", p, 5, TRUE, &index, error) ||
        !get_u64(o, "value", p, G_MAXUINT64, FALSE, &value, error) ||
        !get_u64(o, "valueTwo", p, G_MAXUINT64, FALSE, &two, error) ||
        !get_string(o, "op", p, TRUE, &op, error))
      return FALSE;
    KvOciSeccompArg *arg = g_new0(KvOciSeccompArg, 1);
    arg->index = (guint)index;
    arg->value = value;
    arg->value_two = two;
    arg->op = g_strdup(op);
    g_ptr_array_add(out, arg);
  }
  return TRUE;
}

/* One entry of "syscalls": {names, action, errnoRet, args}. */
static KvOciSeccompRule *parse_seccomp_rule(JsonObject *o, const char *path, GError **error) {
  const char *action = NULL, *single = NULL;
  g_auto(GStrv) names = NULL;
  JsonArray *args = NULL;
  guint64 ret = 0;
  if (!get_string(o, "action", path, TRUE, &action, error) ||
      !get_strv(o, "names", path, &names, error) ||
      !get_string(o, "name", path, FALSE, &single, error) ||
      !get_array(o, "args", path, &args, error) ||
      !get_u64(o, "errnoRet", path, G_MAXUINT16, FALSE, &ret, error))
    return NULL;
  if ((names == NULL || names[0] == NULL) && single == NULL) {
    invalid(error, "%s.names must be a non-empty array of syscall names", path);
    return NULL;
  }
  KvOciSeccompRule *r = g_new0(KvOciSeccompRule, 1);
  r->args = g_ptr_array_new_with_free_func((GDestroyNotify)seccomp_arg_free);
  g_autofree char *argpath = g_strdup_printf("%s.args", path);
  if (args != NULL && !parse_seccomp_args(args, argpath, r->args, error)) {
    seccomp_rule_free(r);
    return NULL;
  }
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  if (names != NULL)
    g_strv_builder_addv(b, (const char **)names);
  if (single != NULL)
    g_strv_builder_add(b, single);
  r->names = g_strv_builder_end(b);
  r->action = g_strdup(action);
  r->has_errno_ret = member(o, "errnoRet") != NULL;
  r->errno_ret = (guint32)ret;
  return r;
}

KvOciSeccomp *kv_ocispec_seccomp_parse(JsonObject *o, const char *what, GError **error) {
  const char *def = NULL, *listener = NULL;
  guint64 def_ret = 0;
  g_autoptr(KvOciSeccomp) s = g_new0(KvOciSeccomp, 1);
  s->syscalls = g_ptr_array_new_with_free_func((GDestroyNotify)seccomp_rule_free);
  JsonArray *syscalls = NULL;
  if (!get_string(o, "defaultAction", what, TRUE, &def, error) ||
      !get_u64(o, "defaultErrnoRet", what, G_MAXUINT16, FALSE, &def_ret, error) ||
      !get_strv(o, "architectures", what, &s->architectures, error) ||
      !get_strv(o, "flags", what, &s->flags, error) ||
      !get_array(o, "syscalls", what, &syscalls, error) ||
      !get_string(o, "listenerPath", what, FALSE, &listener, error))
    return NULL;
  if (listener != NULL && *listener != '\0') {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED,
                "%s.listenerPath is not supported in the guest", what);
    return NULL;
  }
  s->default_action = g_strdup(def);
  s->has_default_errno_ret = member(o, "defaultErrnoRet") != NULL;
  s->default_errno_ret = (guint32)def_ret;
  for (guint i = 0; syscalls != NULL && i < json_array_get_length(syscalls); i++) {
    g_autofree char *path = g_strdup_printf("%s.syscalls[%u]", what, i);
    JsonNode *e = json_array_get_element(syscalls, i);
    if (!JSON_NODE_HOLDS_OBJECT(e)) {
      invalid(error, "%s must be an object", path);
      return NULL;
    }
    KvOciSeccompRule *r = parse_seccomp_rule(json_node_get_object(e), path, error);
    if (r == NULL)
      return NULL;
    g_ptr_array_add(s->syscalls, r);
  }
  return g_steal_pointer(&s);
}

/* ---- container ---- */

void kv_ocispec_free(KvOciSpec *s) {
  if (s == NULL)
    return;
  kv_ocispec_process_free(s->process);
  g_free(s->hostname);
  g_clear_pointer(&s->mounts, g_ptr_array_unref);
  g_clear_pointer(&s->devices, g_ptr_array_unref);
  g_strfreev(s->masked_paths);
  g_strfreev(s->readonly_paths);
  g_strfreev(s->sysctl);
  g_free(s->resources.cpuset_cpus);
  g_free(s->resources.cpuset_mems);
  kv_ocispec_seccomp_free(s->seccomp);
  g_free(s);
}

static gboolean check_paths(char **paths, const char *what, GError **error) {
  for (guint i = 0; paths != NULL && paths[i] != NULL; i++) {
    g_autofree char *w = g_strdup_printf("%s[%u]", what, i);
    if (!check_abs_path(paths[i], w, error))
      return FALSE;
  }
  return TRUE;
}

gboolean kv_ocispec_resources_parse(JsonObject *r, KvOciResources *out, GError **error) {
  *out = (KvOciResources){
      .memory_limit = -1,
      .memory_reservation = -1,
      .memory_swap = -1,
      .cpu_shares = -1,
      .cpu_quota = -1,
      .cpu_period = -1,
      .pids_limit = -1,
  };
  if (parse_resources(r, out, error))
    return TRUE;
  kv_ocispec_resources_clear(out);
  return FALSE;
}

void kv_ocispec_resources_clear(KvOciResources *r) {
  g_clear_pointer(&r->cpuset_cpus, g_free);
  g_clear_pointer(&r->cpuset_mems, g_free);
}

KvOciSpec *kv_ocispec_parse(JsonObject *spec, GError **error) {
  g_autoptr(KvOciSpec) s = g_new0(KvOciSpec, 1);
  s->mounts = g_ptr_array_new_with_free_func((GDestroyNotify)mount_free);
  s->devices = g_ptr_array_new_with_free_func((GDestroyNotify)device_free);
  s->resources = (KvOciResources){
      .memory_limit = -1,
      .memory_reservation = -1,
      .memory_swap = -1,
      .cpu_shares = -1,
      .cpu_quota = -1,
      .cpu_period = -1,
      .pids_limit = -1,
  };

  JsonObject *process = NULL;
  if (!get_object(spec, "process", "spec", &process, error))
    return NULL;
  if (process == NULL) {
    invalid(error, "spec: process is required");
    return NULL;
  }
  s->process = kv_ocispec_process_parse(process, NULL, "spec: process", error);
  if (s->process == NULL)
    return NULL;

  JsonObject *root = NULL;
  if (!get_object(spec, "root", "spec", &root, error))
    return NULL;
  if (root != NULL && !get_bool(root, "readonly", "spec: root", &s->root_readonly, error))
    return NULL;

  const char *hostname = NULL;
  if (!get_string(spec, "hostname", "spec", FALSE, &hostname, error))
    return NULL;
  if (hostname != NULL && *hostname != '\0') {
    if (strlen(hostname) > 64) {
      invalid(error, "spec: hostname is longer than 64 bytes");
      return NULL;
    }
    s->hostname = g_strdup(hostname);
  }

  JsonObject *ann = NULL;
  const char *size = NULL;
  if (!get_object(spec, "annotations", "spec", &ann, error) ||
      (ann != NULL &&
       !get_string(ann, KV_OCI_STORAGE_SIZE_ANNOTATION, "spec: annotations", FALSE, &size, error)))
    return NULL;
  if (size != NULL) {
    guint64 mib = 0;
    if (!g_ascii_string_to_unsigned(size, 10, 1, KV_OCI_STORAGE_SIZE_MAX_MIB, &mib, NULL)) {
      invalid(error,
              "spec: annotations." KV_OCI_STORAGE_SIZE_ANNOTATION
              ": '%s' is not a size in MiB in 1..%u",
              size, KV_OCI_STORAGE_SIZE_MAX_MIB);
      return NULL;
    }
    if (s->root_readonly) {
      invalid(error, "spec: annotations." KV_OCI_STORAGE_SIZE_ANNOTATION
                     ": a read-only root (root.readonly) has no writable layer to bound");
      return NULL;
    }
    s->storage_size_mib = mib;
  }

  JsonArray *mounts = NULL;
  if (!get_array(spec, "mounts", "spec", &mounts, error))
    return NULL;
  for (guint i = 0; mounts != NULL && i < json_array_get_length(mounts); i++) {
    JsonNode *e = json_array_get_element(mounts, i);
    g_autofree char *path = g_strdup_printf("spec: mounts[%u]", i);
    if (!JSON_NODE_HOLDS_OBJECT(e)) {
      invalid(error, "%s must be an object", path);
      return NULL;
    }
    KvOciMount *m = parse_mount(json_node_get_object(e), path, error);
    if (m == NULL)
      return NULL;
    g_ptr_array_add(s->mounts, m);
  }

  JsonObject *lnx = NULL;
  if (!get_object(spec, "linux", "spec", &lnx, error))
    return NULL;
  s->namespaces = CLONE_NEWNS;
  if (lnx != NULL) {
    JsonArray *ns = NULL;
    if (!get_array(lnx, "namespaces", "spec: linux", &ns, error))
      return NULL;
    if (ns != NULL && !parse_namespaces(ns, &s->namespaces, error))
      return NULL;

    JsonArray *devs = NULL;
    if (!get_array(lnx, "devices", "spec: linux", &devs, error))
      return NULL;
    for (guint i = 0; devs != NULL && i < json_array_get_length(devs); i++) {
      JsonNode *e = json_array_get_element(devs, i);
      g_autofree char *path = g_strdup_printf("spec: linux.devices[%u]", i);
      if (!JSON_NODE_HOLDS_OBJECT(e)) {
        invalid(error, "%s must be an object", path);
        return NULL;
      }
      KvOciDevice *d = parse_device(json_node_get_object(e), path, error);
      if (d == NULL)
        return NULL;
      g_ptr_array_add(s->devices, d);
    }

    if (!get_strv(lnx, "maskedPaths", "spec: linux", &s->masked_paths, error) ||
        !check_paths(s->masked_paths, "spec: linux.maskedPaths", error) ||
        !get_strv(lnx, "readonlyPaths", "spec: linux", &s->readonly_paths, error) ||
        !check_paths(s->readonly_paths, "spec: linux.readonlyPaths", error))
      return NULL;

    JsonObject *sysctl = NULL;
    if (!get_object(lnx, "sysctl", "spec: linux", &sysctl, error))
      return NULL;
    if (sysctl != NULL) {
      g_autoptr(GPtrArray) kv = g_ptr_array_new();
      g_autoptr(GList) keys = json_object_get_members(sysctl);
      for (GList *k = keys; k != NULL; k = k->next) {
        const char *key = k->data, *val = NULL;
        if (!get_string(sysctl, key, "spec: linux.sysctl", TRUE, &val, error))
          return NULL;
        if (*key == '\0' || strstr(key, "..") != NULL || key[0] == '.' || key[0] == '/') {
          invalid(error, "spec: linux.sysctl: \"%s\" is not a sysctl name", key);
          return NULL;
        }
        g_ptr_array_add(kv, g_strdup(key));
        g_ptr_array_add(kv, g_strdup(val));
      }
      g_ptr_array_add(kv, NULL);
      s->sysctl = (char **)g_ptr_array_steal(kv, NULL);
    }

    const char *prop = NULL;
    if (!get_string(lnx, "rootfsPropagation", "spec: linux", FALSE, &prop, error))
      return NULL;
    if (prop != NULL && *prop != '\0' && !lookup_propagation(prop, &s->rootfs_propagation)) {
      invalid(error, "spec: linux.rootfsPropagation: unknown value \"%s\"", prop);
      return NULL;
    }

    JsonObject *res = NULL;
    if (!get_object(lnx, "resources", "spec: linux", &res, error))
      return NULL;
    if (res != NULL && !parse_resources(res, &s->resources, error))
      return NULL;

    JsonObject *seccomp = NULL;
    if (!get_object(lnx, "seccomp", "spec: linux", &seccomp, error))
      return NULL;
    if (seccomp != NULL) {
      s->seccomp = kv_ocispec_seccomp_parse(seccomp, "spec: linux.seccomp", error);
      if (s->seccomp == NULL)
        return NULL;
    }
  }

  if (s->hostname != NULL && !(s->namespaces & CLONE_NEWUTS)) {
    invalid(error, "spec: hostname needs a new UTS namespace "
                   "(linux.namespaces has no \"uts\")");
    return NULL;
  }
  return g_steal_pointer(&s);
}
