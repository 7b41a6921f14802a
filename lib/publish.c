/* lib/publish.c: parsing and checking "-p [IP:]HOSTPORT:PORT[/tcp|udp]". */
#include "publish.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static gboolean bad(GError **error, const char *spec, const char *why) {
  g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
              "published port '%s': %s (expected [IP:]HOSTPORT:PORT[/tcp|udp])", spec, why);
  return FALSE;
}

static gboolean port_parse(const char *s, guint *out) {
  guint64 v = 0;
  if (!*s || strlen(s) > 5)
    return FALSE;
  for (const char *p = s; *p; p++) {
    if (!g_ascii_isdigit(*p))
      return FALSE;
    v = v * 10 + (guint64)(*p - '0');
  }
  if (v < 1 || v > 65535)
    return FALSE;
  *out = (guint)v;
  return TRUE;
}

gboolean kv_publish_parse(const char *spec, KvPublish *out, GError **error) {
  memset(out, 0, sizeof *out);
  if (!spec || !*spec)
    return bad(error, spec ? spec : "", "empty");
  if (strlen(spec) > 128)
    return bad(error, "...", "longer than 128 bytes");
  g_autofree char *s = g_strdup(spec);
  char *slash = strrchr(s, '/');
  if (slash) {
    *slash = '\0';
    if (!strcmp(slash + 1, "udp"))
      out->udp = TRUE;
    else if (strcmp(slash + 1, "tcp"))
      return bad(error, spec, "the protocol must be tcp or udp");
  }
  const char *ip = "127.0.0.1";
  char *rest = s;
  if (*s == '[') {
    char *close = strchr(s, ']');
    if (!close || close[1] != ':')
      return bad(error, spec, "an IPv6 address in brackets must be followed by ':'");
    *close = '\0';
    ip = s + 1;
    rest = close + 2;
  } else {
    char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1)
      return bad(error, spec, "no host port");
    if (c2) {
      if (strchr(c2 + 1, ':'))
        return bad(error, spec, "too many ':' (an IPv6 address goes in brackets)");
      *c1 = '\0';
      ip = s;
      rest = c1 + 1;
    }
  }
  char *colon = strchr(rest, ':');
  if (!colon || strchr(colon + 1, ':'))
    return bad(error, spec, "HOSTPORT:PORT expected");
  *colon = '\0';
  if (!port_parse(rest, &out->host_port))
    return bad(error, spec, "the host port must be a number from 1 to 65535");
  if (!port_parse(colon + 1, &out->port))
    return bad(error, spec, "the guest port must be a number from 1 to 65535");
  guint8 buf[16];
  if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)
    return bad(error, spec, "the host address is not an IPv4 or IPv6 address");
  if (strchr(ip, ':'))
    return bad(error, spec, "user-mode networking publishes on IPv4 host addresses only");
  g_strlcpy(out->address, ip, sizeof out->address);
  return TRUE;
}

GArray *kv_publish_parse_all(const char *const *specs, GError **error) {
  g_autoptr(GArray) a = g_array_new(FALSE, TRUE, sizeof(KvPublish));
  for (guint i = 0; specs && specs[i]; i++) {
    KvPublish p;
    if (!kv_publish_parse(specs[i], &p, error))
      return NULL;
    for (guint j = 0; j < a->len; j++) {
      KvPublish *q = &g_array_index(a, KvPublish, j);
      if (q->udp == p.udp && q->host_port == p.host_port && !strcmp(q->address, p.address)) {
        g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                    "published port '%s': host port %s:%u/%s is published twice", specs[i],
                    p.address, p.host_port, p.udp ? "udp" : "tcp");
        return NULL;
      }
    }
    g_array_append_val(a, p);
  }
  return g_steal_pointer(&a);
}

gboolean kv_publish_check_free(const KvPublish *p, const char *spec, GError **error) {
  union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } sa = {0};
  socklen_t len;
  if (inet_pton(AF_INET, p->address, &sa.in.sin_addr) == 1) {
    sa.in.sin_family = AF_INET;
    sa.in.sin_port = htons((guint16)p->host_port);
    len = sizeof sa.in;
  } else {
    inet_pton(AF_INET6, p->address, &sa.in6.sin6_addr);
    sa.in6.sin6_family = AF_INET6;
    sa.in6.sin6_port = htons((guint16)p->host_port);
    len = sizeof sa.in6;
  }
  int fd = socket(sa.sa.sa_family, (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "published port '%s': socket: %s", spec,
                g_strerror(errno));
    return FALSE;
  }
  int one = 1;
  /* As passt binds: a port in TIME_WAIT is free. */
  if (!p->udp)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc = bind(fd, &sa.sa, len), err = errno;
  close(fd);
  if (rc == 0)
    return TRUE;
  const char *proto = p->udp ? "udp" : "tcp";
  if (err == EADDRINUSE)
    g_set_error(error, KV_ERROR, KATAVM_E_EXISTS,
                "published port '%s': host port %s:%u/%s is already in use", spec, p->address,
                p->host_port, proto);
  else if (err == EADDRNOTAVAIL)
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "published port '%s': %s is not an address of this host", spec, p->address);
  else
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "published port '%s': cannot bind %s:%u/%s: %s", spec,
                p->address, p->host_port, proto, g_strerror(err));
  return FALSE;
}
