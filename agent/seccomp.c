/* agent/seccomp.c: compiling OCI seccomp profiles (see seccomp-profile.h,
 * named so as not to shadow libseccomp's <seccomp.h> on the include path).
 */
#include "seccomp-profile.h"
#include "msg.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct _AgentSeccomp {
  struct sock_filter *insns;
  unsigned short len;
  unsigned int flags; /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
};

void agent_seccomp_free(AgentSeccomp *s) {
  if (s == NULL)
    return;
  g_free(s->insns);
  g_free(s);
}

static gboolean bad(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean bad(GError **error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "seccomp: %s", msg);
  return FALSE;
}

static JsonNode *member(JsonObject *o, const char *name) {
  JsonNode *n = json_object_get_member(o, name);
  return n != NULL && !JSON_NODE_HOLDS_NULL(n) ? n : NULL;
}

static gboolean get_string(JsonObject *o, const char *name, const char *path, const char **out,
                           GError **error) {
  JsonNode *n = member(o, name);
  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
    return bad(error, "%s.%s must be a string", path, name);
  *out = json_node_get_string(n);
  return TRUE;
}

/* Unsigned integers up to 2^64-1 (json-glib hands values above G_MAXINT64
 * over as doubles, which is exact for the masks people write there). */
static gboolean get_u64(JsonObject *o, const char *name, const char *path, guint64 max,
                        guint64 *out, GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL)
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64 &&
      json_node_get_int(n) >= 0 && (guint64)json_node_get_int(n) <= max) {
    *out = (guint64)json_node_get_int(n);
    return TRUE;
  }
  if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_DOUBLE &&
      max == G_MAXUINT64) {
    double d = json_node_get_double(n);
    if (d >= 0 && d <= 18446744073709551615.0) {
      *out = d >= 18446744073709551615.0 ? G_MAXUINT64 : (guint64)d;
      return TRUE;
    }
  }
  return bad(error, "%s.%s must be an integer from 0 to %" G_GUINT64_FORMAT, path, name, max);
}

static gboolean get_array(JsonObject *o, const char *name, const char *path, JsonArray **out,
                          GError **error) {
  JsonNode *n = member(o, name);
  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY(n))
    return bad(error, "%s.%s must be an array", path, name);
  *out = json_node_get_array(n);
  return TRUE;
}

/* action name + errnoRet -> libseccomp action. */
static gboolean parse_action(const char *name, gboolean has_ret, guint32 ret, const char *path,
                             guint32 *out, GError **error) {
  if (name == NULL)
    return bad(error, "%s is required", path);
  if (strcmp(name, "SCMP_ACT_ALLOW") == 0)
    *out = SCMP_ACT_ALLOW;
  else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
    *out = SCMP_ACT_ERRNO(has_ret ? ret : EPERM);
  else if (strcmp(name, "SCMP_ACT_KILL") == 0 || strcmp(name, "SCMP_ACT_KILL_THREAD") == 0)
    *out = SCMP_ACT_KILL_THREAD;
  else if (strcmp(name, "SCMP_ACT_KILL_PROCESS") == 0)
    *out = SCMP_ACT_KILL_PROCESS;
  else if (strcmp(name, "SCMP_ACT_TRAP") == 0)
    *out = SCMP_ACT_TRAP;
  else if (strcmp(name, "SCMP_ACT_TRACE") == 0)
    *out = SCMP_ACT_TRACE(has_ret ? ret : EPERM);
  else if (strcmp(name, "SCMP_ACT_LOG") == 0)
    *out = SCMP_ACT_LOG;
  else if (strcmp(name, "SCMP_ACT_NOTIFY") == 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED,
                "seccomp: %s: SCMP_ACT_NOTIFY is not supported in the guest "
                "(no listener)",
                path);
    return FALSE;
  } else
    return bad(error, "%s: unknown action \"%s\"", path, name);
  return TRUE;
}

static gboolean parse_op(const char *name, const char *path, enum scmp_compare *out,
                         GError **error) {
  static const struct {
    const char *name;
    enum scmp_compare op;
  } ops[] = {
      {"SCMP_CMP_NE", SCMP_CMP_NE},
      {"SCMP_CMP_LT", SCMP_CMP_LT},
      {"SCMP_CMP_LE", SCMP_CMP_LE},
      {"SCMP_CMP_EQ", SCMP_CMP_EQ},
      {"SCMP_CMP_GE", SCMP_CMP_GE},
      {"SCMP_CMP_GT", SCMP_CMP_GT},
      {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
  };
  for (gsize i = 0; name != NULL && i < G_N_ELEMENTS(ops); i++) {
    if (strcmp(ops[i].name, name) == 0) {
      *out = ops[i].op;
      return TRUE;
    }
  }
  return bad(error, "%s: unknown operator \"%s\"", path, name != NULL ? name : "(missing)");
}

static gboolean parse_args(JsonArray *a, const char *path, GArray *out, GError **error) {
  guint n = json_array_get_length(a);
  if (n > 6)
    return bad(error, "%s has more than 6 conditions", path);
  for (guint i = 0; i < n; i++) {
    g_autofree char *p = g_strdup_printf("%s[%u]", path, i);
    JsonNode *e = json_array_get_element(a, i);
    if (!JSON_NODE_HOLDS_OBJECT(e))
      return bad(error, "%s must be an object", p);
    JsonObject *o = json_node_get_object(e);
    guint64 index = 0, value = 0, two = 0;
    const char *op = NULL;
    if (member(o, "index") == NULL)
      return bad(error, "%s.index is required", p);
    if (!get_u64(o, "index", p, 5, &index, error) ||
        !get_u64(o, "value", p, G_MAXUINT64, &value, error) ||
        !get_u64(o, "valueTwo", p, G_MAXUINT64, &two, error) || !get_string(o, "op", p, &op, error))
      return FALSE;
    struct scmp_arg_cmp c = {.arg = (unsigned)index, .datum_a = value, .datum_b = two};
    if (!parse_op(op, p, &c.op, error))
      return FALSE;
    g_array_append_val(out, c);
  }
  return TRUE;
}

static gboolean add_architectures(scmp_filter_ctx ctx, JsonArray *a, GError **error) {
  for (guint i = 0; a != NULL && i < json_array_get_length(a); i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING)
      return bad(error, "architectures[%u] must be a string", i);
    const char *name = json_node_get_string(e);
    /* "SCMP_ARCH_X86_64" -> "x86_64", the name libseccomp resolves. */
    const char *bare = g_str_has_prefix(name, "SCMP_ARCH_") ? name + strlen("SCMP_ARCH_") : name;
    g_autofree char *lower = g_ascii_strdown(bare, -1);
    uint32_t arch = seccomp_arch_resolve_name(lower);
    if (arch == 0)
      return bad(error, "unknown architecture \"%s\"", name);
    int rc = seccomp_arch_add(ctx, arch);
    if (rc < 0 && rc != -EEXIST)
      return bad(error, "architecture \"%s\": %s", name, g_strerror(-rc));
  }
  return TRUE;
}

static gboolean parse_flags(JsonArray *a, unsigned int *out, GError **error) {
  for (guint i = 0; a != NULL && i < json_array_get_length(a); i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING)
      return bad(error, "flags[%u] must be a string", i);
    const char *f = json_node_get_string(e);
    if (strcmp(f, "SECCOMP_FILTER_FLAG_LOG") == 0)
      *out |= SECCOMP_FILTER_FLAG_LOG;
    else if (strcmp(f, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
      *out |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    else if (strcmp(f, "SECCOMP_FILTER_FLAG_TSYNC") == 0)
      ; /* the process is single-threaded when it installs the filter */
    else
      return bad(error, "unknown flag \"%s\"", f);
  }
  return TRUE;
}

/* One entry of "syscalls": {names, action, errnoRet, args}. */
static gboolean add_rule(scmp_filter_ctx ctx, JsonObject *o, guint idx, guint32 def_action,
                         GError **error) {
  g_autofree char *path = g_strdup_printf("syscalls[%u]", idx);
  const char *action_name = NULL;
  JsonArray *names = NULL, *args = NULL;
  guint64 ret = 0;
  if (!get_string(o, "action", path, &action_name, error) ||
      !get_array(o, "names", path, &names, error) || !get_array(o, "args", path, &args, error) ||
      !get_u64(o, "errnoRet", path, G_MAXUINT16, &ret, error))
    return FALSE;
  g_autofree char *apath = g_strdup_printf("%s.action", path);
  guint32 action = 0;
  if (!parse_action(action_name, member(o, "errnoRet") != NULL, (guint32)ret, apath, &action,
                    error))
    return FALSE;
  /* The single-name form of old specs. */
  const char *single = NULL;
  if (!get_string(o, "name", path, &single, error))
    return FALSE;
  if ((names == NULL || json_array_get_length(names) == 0) && single == NULL)
    return bad(error, "%s.names must be a non-empty array of syscall names", path);

  g_autoptr(GArray) conds = g_array_new(FALSE, FALSE, sizeof(struct scmp_arg_cmp));
  g_autofree char *argpath = g_strdup_printf("%s.args", path);
  if (args != NULL && !parse_args(args, argpath, conds, error))
    return FALSE;

  guint n = names != NULL ? json_array_get_length(names) : 0;
  for (guint i = 0; i < n + (single != NULL); i++) {
    const char *name = single;
    if (i < n) {
      JsonNode *e = json_array_get_element(names, i);
      if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING)
        return bad(error, "%s.names[%u] must be a string", path, i);
      name = json_node_get_string(e);
    }
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
      return bad(error, "unknown syscall \"%s\" (%s)", name, path);
    /* libseccomp refuses a rule that repeats the default action; it
     * changes nothing anyway. */
    if (action == def_action)
      continue;
    int rc = seccomp_rule_add_array(ctx, action, nr, conds->len,
                                    (const struct scmp_arg_cmp *)conds->data);
    /* Negative numbers are syscalls libseccomp knows for some other
     * architecture only (Docker's profile lists such): nothing to filter
     * on this one. */
    if (rc < 0 && nr < 0)
      continue;
    /* A second rule for the same syscall: the first one stands, as in
     * runc. */
    if (rc == -EEXIST)
      continue;
    if (rc < 0)
      return bad(error, "%s: cannot add a rule for \"%s\": %s", path, name, g_strerror(-rc));
  }
  return TRUE;
}

AgentSeccomp *agent_seccomp_compile(JsonObject *profile, GError **error) {
  const char *def_name = NULL, *listener = NULL;
  guint64 def_ret = 0;
  JsonArray *archs = NULL, *flags = NULL, *syscalls = NULL;
  if (!get_string(profile, "defaultAction", "linux.seccomp", &def_name, error) ||
      !get_u64(profile, "defaultErrnoRet", "linux.seccomp", G_MAXUINT16, &def_ret, error) ||
      !get_array(profile, "architectures", "linux.seccomp", &archs, error) ||
      !get_array(profile, "flags", "linux.seccomp", &flags, error) ||
      !get_array(profile, "syscalls", "linux.seccomp", &syscalls, error) ||
      !get_string(profile, "listenerPath", "linux.seccomp", &listener, error))
    return NULL;
  if (listener != NULL && *listener != '\0') {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_UNSUPPORTED,
                "seccomp: listenerPath is not supported in the guest");
    return NULL;
  }
  guint32 def_action = 0;
  if (!parse_action(def_name, member(profile, "defaultErrnoRet") != NULL, (guint32)def_ret,
                    "defaultAction", &def_action, error))
    return NULL;

  g_autoptr(AgentSeccomp) s = g_new0(AgentSeccomp, 1);
  if (!parse_flags(flags, &s->flags, error))
    return NULL;

  scmp_filter_ctx ctx = seccomp_init(def_action);
  if (ctx == NULL) {
    bad(error, "cannot initialise a filter with defaultAction %s", def_name);
    return NULL;
  }
  gboolean ok = add_architectures(ctx, archs, error);
  for (guint i = 0; ok && syscalls != NULL && i < json_array_get_length(syscalls); i++) {
    JsonNode *e = json_array_get_element(syscalls, i);
    if (!JSON_NODE_HOLDS_OBJECT(e)) {
      ok = bad(error, "syscalls[%u] must be an object", i);
      break;
    }
    ok = add_rule(ctx, json_node_get_object(e), i, def_action, error);
  }

  /* libseccomp 2.5 exports BPF only to a file descriptor. */
  int fd = -1;
  if (ok) {
    fd = memfd_create("katavm-seccomp", MFD_CLOEXEC);
    int rc = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
    if (rc < 0)
      ok = bad(error, "cannot generate the filter: %s", g_strerror(-rc));
  }
  seccomp_release(ctx);
  if (!ok) {
    if (fd >= 0)
      close(fd);
    return NULL;
  }

  off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % sizeof(struct sock_filter) != 0 ||
      size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    close(fd);
    bad(error,
        "the profile compiles to %lld bytes of BPF, more than the "
        "kernel takes (%d instructions)",
        (long long)size, BPF_MAXINSNS);
    return NULL;
  }
  s->insns = g_malloc(size);
  ssize_t got = pread(fd, s->insns, size, 0);
  close(fd);
  if (got != size) {
    bad(error, "cannot read the generated filter back");
    return NULL;
  }
  s->len = (unsigned short)(size / sizeof(struct sock_filter));
  return g_steal_pointer(&s);
}

int agent_seccomp_install(const AgentSeccomp *s) {
  struct sock_fprog prog = {.len = s->len, .filter = s->insns};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->flags, &prog) == 0)
    return 0;
  return -errno;
}
