/* lib/vmm/validate.c: checks of caller-supplied values.
 *
 * Every value that ends up in libvirt XML or names a host object is
 * checked here first, with a message that says what is allowed; libvirt's
 * own refusals come later and are less clear. The XML builder escapes
 * everything anyway: these checks are about meaning, not markup. */
#include "validate.h"

#include <string.h>

#include "vmm.h"

static gboolean chars_ok(const char *s, const char *extra) {
  for (const char *p = s; *p; p++)
    if (!g_ascii_isalnum(*p) && !strchr(extra, *p))
      return FALSE;
  return TRUE;
}

gboolean kv_check_domain_name(const char *name, GError **error) {
  if (!name || !*name) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "domain name is missing");
    return FALSE;
  }
  for (const char *p = name; *p; p++) {
    if (!g_ascii_isalnum(*p) && *p != '_' && *p != '.' && *p != '-') {
      g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                  "domain name '%s' has invalid character '%c' "
                  "(allowed: A-Z a-z 0-9 _ . -)",
                  name, g_ascii_isprint(*p) ? *p : '?');
      return FALSE;
    }
  }
  /* "." and ".." would be odd pid-file and log names under libvirt's
   * state directories. */
  if (g_str_equal(name, ".") || g_str_equal(name, "..")) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "domain name '%s' is not allowed", name);
    return FALSE;
  }
  return TRUE;
}

gboolean kv_check_abs_path(const char *what, const char *path, GError **error) {
  /* libvirt resolves relative paths against its own working directory
   * (the daemon's, for qemu:///system), never the caller's. */
  if (!path || !g_path_is_absolute(path)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "%s '%s' is not an absolute path", what,
                path ? path : "(null)");
    return FALSE;
  }
  return TRUE;
}

gboolean kv_check_path(const char *what, const char *path, gboolean required, GError **error) {
  if (!path || !*path) {
    if (!required)
      return TRUE;
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "%s is missing", what);
    return FALSE;
  }
  return kv_check_abs_path(what, path, error);
}

/* IFNAMSIZ (16) with the NUL, no '/' or blanks; we allow only the portable
 * characters. */
gboolean kv_check_tap(const char *tap, GError **error) {
  if (!tap || !*tap || strlen(tap) > 15 || !chars_ok(tap, "_.-") || g_str_equal(tap, ".") ||
      g_str_equal(tap, "..")) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "tap device name '%s' is invalid (1-15 of A-Z a-z 0-9 _ . -)",
                tap ? tap : "(null)");
    return FALSE;
  }
  return TRUE;
}

/* Unicast, because libvirt refuses a multicast MAC for a NIC with a less
 * clear message. */
gboolean kv_check_mac(const char *mac, GError **error) {
  gboolean ok = mac && strlen(mac) == 17;
  for (int i = 0; ok && i < 17; i++)
    ok = i % 3 == 2 ? mac[i] == ':' : g_ascii_isxdigit(mac[i]);
  if (!ok) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "MAC address '%s' is invalid (expected xx:xx:xx:xx:xx:xx in "
                "hex)",
                mac ? mac : "(null)");
    return FALSE;
  }
  if (g_ascii_xdigit_value(mac[1]) & 1) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "MAC address '%s' is a multicast address; a NIC needs a "
                "unicast one",
                mac);
    return FALSE;
  }
  return TRUE;
}

/* virtio-blk carries at most 20 bytes of serial (VIRTIO_BLK_ID_BYTES). */
gboolean kv_check_serial(const char *serial, GError **error) {
  if (!serial || !*serial || strlen(serial) > 20 || !chars_ok(serial, "_-")) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "disk serial '%s' is invalid (1-20 of A-Z a-z 0-9 _ -)",
                serial ? serial : "(null)");
    return FALSE;
  }
  return TRUE;
}

/* libvirt accepts a user-chosen alias only with the "ua-" prefix. */
gboolean kv_check_dimm_alias(const char *alias, GError **error) {
  if (!alias || !g_str_has_prefix(alias, "ua-") || strlen(alias) > 40 ||
      !chars_ok(alias + 3, "_-") || !alias[3]) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "DIMM alias '%s' is invalid (ua- and then A-Z a-z 0-9 _ -)",
                alias ? alias : "(null)");
    return FALSE;
  }
  return TRUE;
}

/* 68 is IPv4's minimum; 65535 the most a virtio-net device takes. */
gboolean kv_check_mtu(guint mtu, GError **error) {
  if (mtu != 0 && (mtu < 68 || mtu > 65535)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "MTU %u is out of range (68-65535, or 0 for the default)", mtu);
    return FALSE;
  }
  return TRUE;
}
