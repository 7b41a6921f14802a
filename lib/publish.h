/* lib/publish.h: user-mode networking's published ports ("-p"), parsed and
 * checked once for the library (at create) and the shim (which hands them
 * to passt). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  gboolean udp;
  char address[48]; /* IPv4 or IPv6 literal, no brackets */
  guint host_port, port;
} KvPublish;

/* Parse "[IP:]HOSTPORT:PORT[/tcp|udp]" (IP defaults to 127.0.0.1; an IPv6
 * IP in brackets is parsed and refused: slirp forwards IPv4 only). KATAVM_E_INVALID naming the spec
 * and what is wrong. */
gboolean kv_publish_parse(const char *spec, KvPublish *out, GError **error);
/* Parse every spec (NULL-terminated) into a GArray of KvPublish; a host
 * address:port/proto given twice is an error. */
GArray *kv_publish_parse_all(const char *const *specs, GError **error);
/* The host port can be bound now (it is not taken and the address is this
 * host's): KATAVM_E_EXISTS when taken, KATAVM_E_INVALID when the address
 * is not local. Nothing stays bound. */
gboolean kv_publish_check_free(const KvPublish *p, const char *spec, GError **error);

G_END_DECLS
