/* agent/etcfiles.c: generated /etc/resolv.conf, /etc/hosts and
 * /etc/hostname for containers (etcfiles.h). */
#include "etcfiles.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define ETC_DIR "/run/katavm/etc"

static KvNetNamesParams names; /* owned copies; hostname NULL = not told yet */

static gboolean bad(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean bad(GError **error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *m = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, KV_ERROR_DOMAIN, KV_E_INVALID, m);
  return FALSE;
}

static gboolean is_ip(const char *s) {
  guint8 b[16];
  return s && (inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1);
}

/* A word for resolv.conf: printable, no blanks (it is written as is). */
static gboolean is_word(const char *s) {
  if (!s || !*s)
    return FALSE;
  for (const char *p = s; *p; p++)
    if ((guchar)*p <= ' ' || (guchar)*p >= 0x7f || *p == '#' || *p == ';')
      return FALSE;
  return TRUE;
}

static gboolean is_hostname(const char *s) {
  if (!s || !*s || strlen(s) > 64 || *s == '-' || *s == '.')
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_')
      return FALSE;
  return TRUE;
}

gboolean agent_m_net_names(AgentCall *call, const KvNetNamesParams *p, KvEmpty *r, GError **error) {
  (void)call;
  (void)r;
  if (!is_hostname(p->hostname))
    return bad(error, "net_names: hostname '%s' is not a host name", p->hostname);
  if (p->address && !is_ip(p->address))
    return bad(error, "net_names: address '%s' is not an IP address", p->address);
  for (char **v = p->nameservers; v && *v; v++)
    if (!is_ip(*v))
      return bad(error, "net_names: nameserver '%s' is not an IP address", *v);
  for (char **v = p->search; v && *v; v++)
    if (!is_word(*v))
      return bad(error, "net_names: search domain '%s' is not one word", *v);
  for (char **v = p->options; v && *v; v++)
    if (!is_word(*v))
      return bad(error, "net_names: option '%s' is not one word", *v);
  g_free(names.hostname);
  g_free(names.address);
  g_strfreev(names.nameservers);
  g_strfreev(names.search);
  g_strfreev(names.options);
  names.hostname = g_strdup(p->hostname);
  names.address = g_strdup(p->address);
  names.nameservers = g_strdupv(p->nameservers);
  names.search = g_strdupv(p->search);
  names.options = g_strdupv(p->options);
  /* The guest's own name: a container without a UTS namespace or a
   * hostname of its own sees it. Only inside the VM (PID 1). */
  if (getpid() == 1 && sethostname(p->hostname, strlen(p->hostname)) < 0)
    agent_debug("net_names: sethostname: %s", g_strerror(errno));
  return TRUE;
}

static char *resolv_conf(void) {
  GString *s = g_string_new("# written by katavm (docs/networking.md)\n");
  if (!names.nameservers || !names.nameservers[0])
    g_string_append(s, "# this sandbox has no DNS server\n");
  for (char **v = names.nameservers; v && *v; v++)
    g_string_append_printf(s, "nameserver %s\n", *v);
  if (names.search && names.search[0]) {
    g_autofree char *j = g_strjoinv(" ", names.search);
    g_string_append_printf(s, "search %s\n", j);
  }
  if (names.options && names.options[0]) {
    g_autofree char *j = g_strjoinv(" ", names.options);
    g_string_append_printf(s, "options %s\n", j);
  }
  return g_string_free(s, FALSE);
}

static char *hosts(const char *hostname) {
  return g_strdup_printf("# written by katavm (docs/networking.md)\n"
                         "127.0.0.1\tlocalhost\n"
                         "::1\tlocalhost ip6-localhost ip6-loopback\n"
                         "%s\t%s\n",
                         names.address ? names.address : "127.0.1.1", hostname);
}

/* The spec mounts something at dest itself. */
static gboolean spec_mounts(const KvOciSpec *spec, const char *dest) {
  for (guint i = 0; i < spec->mounts->len; i++) {
    const KvOciMount *m = g_ptr_array_index(spec->mounts, i);
    if (!strcmp(m->destination, dest) || !strcmp(m->destination, "/etc"))
      return TRUE;
  }
  return FALSE;
}

/* The rootfs has a regular file at rel (not a symlink: what it points to
 * is the image's business, and a mount would follow it). */
static gboolean rootfs_has_file(const char *rootfs, const char *rel) {
  g_autofree char *path = g_build_filename(rootfs, rel, NULL);
  struct stat st;
  return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

gboolean agent_etcfiles_prepare(const char *cid, const char *rootfs, KvOciSpec *spec,
                                GError **error) {
  if (!names.hostname)
    return TRUE;
  g_autofree char *dir = g_build_filename(ETC_DIR, cid, NULL);
  if (g_mkdir_with_parents(dir, 0755) < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s: %s", dir, g_strerror(e));
    return FALSE;
  }
  const char *hostname = spec->hostname ? spec->hostname : names.hostname;
  g_autofree char *rc = resolv_conf(), *h = hosts(hostname);
  g_autofree char *hn = g_strdup_printf("%s\n", hostname);
  const struct {
    const char *dest, *name, *text;
  } files[] = {
      {"/etc/resolv.conf", "resolv.conf", rc},
      {"/etc/hosts", "hosts", h},
      {"/etc/hostname", "hostname", hn},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
    if (spec_mounts(spec, files[i].dest) || !rootfs_has_file(rootfs, files[i].dest))
      continue;
    g_autofree char *path = g_build_filename(dir, files[i].name, NULL);
    if (!g_file_set_contents(path, files[i].text, -1, error))
      return FALSE;
    chmod(path, 0644);
    KvOciMount *m = g_new0(KvOciMount, 1);
    m->destination = g_strdup(files[i].dest);
    m->type = g_strdup("bind");
    m->source = g_steal_pointer(&path);
    m->bind = TRUE;
    g_ptr_array_add(spec->mounts, m);
  }
  return TRUE;
}

void agent_etcfiles_forget(const char *cid) {
  if (!names.hostname)
    return;
  g_autofree char *dir = g_build_filename(ETC_DIR, cid, NULL);
  const char *files[] = {"resolv.conf", "hosts", "hostname"};
  for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *path = g_build_filename(dir, files[i], NULL);
    unlink(path);
  }
  rmdir(dir);
}
