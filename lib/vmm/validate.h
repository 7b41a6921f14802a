/* lib/vmm/validate.h: checks of caller-supplied values before they reach
 * libvirt or an XML document (domain name, paths, tap, MAC, disk serial,
 * DIMM alias, MTU). Each sets KV_VMM_ERROR_INVALID with a message naming
 * the value and what is allowed. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A libvirt domain name: [A-Za-z0-9_.-]+, not "." or "..". */
gboolean kv_check_domain_name(const char *name, GError **error);
/* An absolute path; NULL counts as not absolute. `what` names it. */
gboolean kv_check_abs_path(const char *what, const char *path, GError **error);
/* An absolute path, or NULL/"" when not `required`. */
gboolean kv_check_path(const char *what, const char *path, gboolean required, GError **error);
/* A Linux interface name we accept for a tap: 1-15 of [A-Za-z0-9_.-]. */
gboolean kv_check_tap(const char *tap, GError **error);
/* A unicast MAC address "xx:xx:xx:xx:xx:xx". */
gboolean kv_check_mac(const char *mac, GError **error);
/* A virtio-blk serial: 1-20 of [A-Za-z0-9_-]. */
gboolean kv_check_serial(const char *serial, GError **error);
/* A DIMM's user alias: "ua-" and then [A-Za-z0-9_-], 40 bytes at most. */
gboolean kv_check_dimm_alias(const char *alias, GError **error);
/* A NIC MTU: 0 (the default) or 68-65535. */
gboolean kv_check_mtu(guint mtu, GError **error);

G_END_DECLS
