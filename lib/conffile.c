/* lib/conffile.c: the configuration file that the OCI runtime and the
 * containerd shim share (docs/configuration.md), a GLib key file: its
 * [runtime] group sets what the runtime setters set, and keeps the keys
 * the front ends read for themselves. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef int (*StrSetter)(katavm_runtime *, const char *, katavm_error **);

/* Keys the library applies itself. */
static const struct {
  const char *key;
  StrSetter set;
} str_keys[] = {
    {"root", katavm_runtime_set_root},     {"libvirt_uri", katavm_runtime_set_libvirt_uri},
    {"accel", katavm_runtime_set_accel},   {"kernel", katavm_runtime_set_kernel},
    {"initrd", katavm_runtime_set_initrd}, {"memory_hotplug", katavm_runtime_set_memory_hotplug},
};

/* Keys the front ends read with katavm_runtime_config_value(). */
static const char *const front_keys[] = {
    "shim",           "vcpus",           "memory_mib",         "max_vcpus",
    "max_memory_mib", "trusted_runtime", "enable_annotations", NULL,
};

static gboolean known_front_key(const char *k) {
  for (const char *const *f = front_keys; *f; f++)
    if (!strcmp(*f, k))
      return TRUE;
  return FALSE;
}

static int uint_key(GKeyFile *kf, const char *path, const char *key, guint max, guint *out,
                    katavm_error **err) {
  g_autofree char *v = g_key_file_get_value(kf, "runtime", key, NULL);
  if (!v)
    return 0;
  guint64 n;
  if (!g_ascii_string_to_unsigned(g_strstrip(v), 10, 1, max, &n, NULL))
    return kv_error_set(err, KATAVM_E_INVALID, "%s: [runtime] %s = '%s' is not a number in 1..%u",
                        path, key, v, max);
  *out = (guint)n;
  return 0;
}

int katavm_runtime_load_config(katavm_runtime *rt, const char *path, katavm_error **err) {
  if (!rt || !path)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime and path must not be NULL");
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) e = NULL;
  if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
    if (g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return kv_error_set(err, KATAVM_E_NOT_FOUND, "configuration file %s does not exist", path);
    return kv_error_set(err, KATAVM_E_INVALID, "configuration file %s: %s", path, e->message);
  }
  gsize n = 0;
  g_auto(GStrv) keys = g_key_file_get_keys(kf, "runtime", &n, NULL);
  for (gsize i = 0; keys && i < n; i++) {
    gboolean known = known_front_key(keys[i]);
    for (size_t k = 0; !known && k < G_N_ELEMENTS(str_keys); k++)
      known = !strcmp(keys[i], str_keys[k].key);
    if (!known)
      return kv_error_set(err, KATAVM_E_INVALID, "configuration file %s: unknown key [runtime] %s",
                          path, keys[i]);
  }
  for (size_t k = 0; k < G_N_ELEMENTS(str_keys); k++) {
    g_autofree char *v = g_key_file_get_string(kf, "runtime", str_keys[k].key, NULL);
    if (!v)
      continue;
    katavm_error *se = NULL;
    if (str_keys[k].set(rt, g_strstrip(v), &se) < 0) {
      int code = katavm_error_code(se);
      int rc = kv_error_set(err, code, "%s: [runtime] %s: %s", path, str_keys[k].key,
                            katavm_error_message(se));
      katavm_error_free(se);
      return rc;
    }
  }
  guint vcpus = rt->vcpus, mem = rt->memory_mib;
  int rc = uint_key(kf, path, "vcpus", 1024, &vcpus, err);
  if (!rc)
    rc = uint_key(kf, path, "memory_mib", 1024 * 1024, &mem, err);
  if (!rc)
    rc = katavm_runtime_set_defaults(rt, vcpus, mem, err);
  if (rc < 0)
    return rc;
  g_autofree char *shim = g_key_file_get_string(kf, "runtime", "shim", NULL);
  if (shim) {
    if (!g_path_is_absolute(g_strstrip(shim)))
      return kv_error_set(err, KATAVM_E_INVALID, "%s: [runtime] shim '%s' must be absolute", path,
                          shim);
    g_free(rt->shim);
    rt->shim = g_steal_pointer(&shim);
  }
  GHashTable *conf = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  for (gsize i = 0; keys && i < n; i++) {
    char *v = g_key_file_get_string(kf, "runtime", keys[i], NULL);
    if (v)
      g_hash_table_insert(conf, g_strdup(keys[i]), g_strstrip(v));
  }
  if (rt->conf)
    g_hash_table_unref(rt->conf);
  rt->conf = conf;
  return 0;
}

const char *katavm_runtime_config_value(katavm_runtime *rt, const char *key) {
  if (!rt || !rt->conf || !key)
    return NULL;
  return g_hash_table_lookup(rt->conf, key);
}
