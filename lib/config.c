/* lib/config.c: the sandbox configuration persisted at create time
 * (config.json), read back by the shim and by later processes. */
#include <string.h>

#include "internal.h"

void kv_config_clear(KvSandboxConfig *c) {
  g_free(c->id);
  g_free(c->uri);
  g_free(c->accel);
  g_free(c->kernel);
  g_free(c->initrd);
  g_free(c->created);
  g_free(c->memory_hotplug);
  memset(c, 0, sizeof(*c));
}

gboolean kv_config_save(const KvSandboxConfig *c, const char *path, GError **error) {
  g_autoptr(JsonObject) o = json_object_new();
  json_object_set_string_member(o, "id", c->id);
  if (c->uri)
    json_object_set_string_member(o, "libvirt_uri", c->uri);
  json_object_set_string_member(o, "accel", c->accel);
  json_object_set_string_member(o, "kernel", c->kernel);
  json_object_set_string_member(o, "initrd", c->initrd);
  json_object_set_int_member(o, "vcpus", c->vcpus);
  json_object_set_int_member(o, "max_vcpus", c->max_vcpus);
  json_object_set_int_member(o, "memory_mib", c->memory_mib);
  json_object_set_int_member(o, "max_memory_mib", c->max_memory_mib);
  json_object_set_string_member(o, "created", c->created);
  json_object_set_string_member(o, "memory_hotplug",
                                c->memory_hotplug ? c->memory_hotplug : "auto");
  return kv_json_file_save(o, path, error);
}

static const char *get_str(JsonObject *o, const char *k, gboolean required, const char *path,
                           GError **error) {
  JsonNode *n = json_object_get_member(o, k);
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
    if (required || n)
      g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s: field '%s' is missing or not a string",
                  path, k);
    return NULL;
  }
  return json_node_get_string(n);
}

static gboolean get_uint(JsonObject *o, const char *k, guint *out, const char *path,
                         GError **error) {
  JsonNode *n = json_object_get_member(o, k);
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64 ||
      json_node_get_int(n) < 0 || json_node_get_int(n) > G_MAXUINT32) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT,
                "%s: field '%s' is missing or not a non-negative integer", path, k);
    return FALSE;
  }
  *out = (guint)json_node_get_int(n);
  return TRUE;
}

gboolean kv_config_load(KvSandboxConfig *c, const char *path, GError **error) {
  memset(c, 0, sizeof(*c));
  g_autoptr(JsonObject) o = kv_json_file_load(path, error);
  if (!o) {
    if (error && *error && (*error)->domain == G_FILE_ERROR &&
        (*error)->code == G_FILE_ERROR_NOENT) {
      /* A sandbox dir without config is a corrupt sandbox, not a missing one. */
      g_clear_error(error);
      g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s is missing", path);
    }
    return FALSE;
  }
  const char *id, *accel, *kernel, *initrd, *created, *uri;
  GError *e = NULL;
  if (!(id = get_str(o, "id", TRUE, path, error)) ||
      !(accel = get_str(o, "accel", TRUE, path, error)) ||
      !(kernel = get_str(o, "kernel", TRUE, path, error)) ||
      !(initrd = get_str(o, "initrd", TRUE, path, error)) ||
      !(created = get_str(o, "created", TRUE, path, error)))
    return FALSE;
  uri = get_str(o, "libvirt_uri", FALSE, path, &e);
  if (e) {
    g_propagate_error(error, e);
    return FALSE;
  }
  const char *memhp = get_str(o, "memory_hotplug", FALSE, path, &e);
  if (e) {
    g_propagate_error(error, e);
    return FALSE;
  }
  if (!get_uint(o, "vcpus", &c->vcpus, path, error) ||
      !get_uint(o, "max_vcpus", &c->max_vcpus, path, error) ||
      !get_uint(o, "memory_mib", &c->memory_mib, path, error) ||
      !get_uint(o, "max_memory_mib", &c->max_memory_mib, path, error))
    return FALSE;
  if (!kv_id_validate(id, error))
    return FALSE;
  c->id = g_strdup(id);
  c->uri = g_strdup(uri);
  c->accel = g_strdup(accel);
  c->kernel = g_strdup(kernel);
  c->initrd = g_strdup(initrd);
  c->created = g_strdup(created);
  c->memory_hotplug = g_strdup(memhp ? memhp : "auto");
  return TRUE;
}
