/* agent/seccomp.c: compiling OCI seccomp profiles (see seccomp-profile.h,
 * named so as not to shadow libseccomp's <seccomp.h> on the include path).
 */
#include "seccomp-profile.h"

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
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "spec: linux.seccomp: %s", msg);
  return FALSE;
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
                "spec: linux.seccomp: %s: SCMP_ACT_NOTIFY is not supported in the guest "
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

static gboolean build_conds(const KvOciSeccompRule *r, const char *path, GArray *out,
                            GError **error) {
  for (guint i = 0; i < r->args->len; i++) {
    const KvOciSeccompArg *a = r->args->pdata[i];
    g_autofree char *p = g_strdup_printf("%s.args[%u]", path, i);
    struct scmp_arg_cmp c = {.arg = a->index, .datum_a = a->value, .datum_b = a->value_two};
    if (!parse_op(a->op, p, &c.op, error))
      return FALSE;
    g_array_append_val(out, c);
  }
  return TRUE;
}

static gboolean add_architectures(scmp_filter_ctx ctx, char **archs, GError **error) {
  for (char **a = archs; a != NULL && *a != NULL; a++) {
    const char *name = *a;
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

static gboolean parse_flags(char **flags, unsigned int *out, GError **error) {
  for (char **p = flags; p != NULL && *p != NULL; p++) {
    const char *f = *p;
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

/* One entry of "syscalls". */
static gboolean add_rule(scmp_filter_ctx ctx, const KvOciSeccompRule *r, guint idx,
                         guint32 def_action, GError **error) {
  g_autofree char *path = g_strdup_printf("syscalls[%u]", idx);
  g_autofree char *apath = g_strdup_printf("%s.action", path);
  guint32 action = 0;
  if (!parse_action(r->action, r->has_errno_ret, r->errno_ret, apath, &action, error))
    return FALSE;
  g_autoptr(GArray) conds = g_array_new(FALSE, FALSE, sizeof(struct scmp_arg_cmp));
  if (!build_conds(r, path, conds, error))
    return FALSE;
  for (char **n = r->names; *n != NULL; n++) {
    const char *name = *n;
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

AgentSeccomp *agent_seccomp_compile(const KvOciSeccomp *profile, GError **error) {
  const char *def_name = profile->default_action;
  guint32 def_action = 0;
  if (!parse_action(def_name, profile->has_default_errno_ret, profile->default_errno_ret,
                    "defaultAction", &def_action, error))
    return NULL;

  g_autoptr(AgentSeccomp) s = g_new0(AgentSeccomp, 1);
  if (!parse_flags(profile->flags, &s->flags, error))
    return NULL;

  scmp_filter_ctx ctx = seccomp_init(def_action);
  if (ctx == NULL) {
    bad(error, "cannot initialise a filter with defaultAction %s", def_name);
    return NULL;
  }
  gboolean ok = add_architectures(ctx, profile->architectures, error);
  for (guint i = 0; ok && i < profile->syscalls->len; i++)
    ok = add_rule(ctx, profile->syscalls->pdata[i], i, def_action, error);

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
