/* lib/config.c: the sandbox configuration persisted at create time
 * (config.json), read back by the shim and by later processes. */
#include <string.h>

#include "internal.h"
#include "msg.h"

void kv_config_clear(KvSandboxConfig *c) {
  g_free(c->id);
  g_free(c->uri);
  g_free(c->accel);
  g_free(c->kernel);
  g_free(c->initrd);
  g_free(c->created);
  g_free(c->memory_hotplug);
  g_free(c->netns);
  g_free(c->shared_fs);
  g_free(c->virtiofsd);
  g_free(c->virtiofs_cache);
  g_free(c->net);
  g_strfreev(c->publish);
  memset(c, 0, sizeof(*c));
}

/* config.json, through the contract's table kit: one set of checks for
 * every JSON document the host reads. */
static const KvField config_fields[] = {
    KV_FIELD(KvSandboxConfig, "id", KV_T_ID, KV_F_REQUIRED, id),
    KV_FIELD(KvSandboxConfig, "libvirt_uri", KV_T_STR, 0, uri),
    KV_FIELD(KvSandboxConfig, "accel", KV_T_STR, KV_F_REQUIRED | KV_F_NONEMPTY, accel),
    KV_FIELD(KvSandboxConfig, "kernel", KV_T_STR, KV_F_REQUIRED | KV_F_NONEMPTY, kernel),
    KV_FIELD(KvSandboxConfig, "initrd", KV_T_STR, KV_F_REQUIRED | KV_F_NONEMPTY, initrd),
    KV_FIELD(KvSandboxConfig, "vcpus", KV_T_U32, KV_F_REQUIRED, vcpus),
    KV_FIELD(KvSandboxConfig, "max_vcpus", KV_T_U32, KV_F_REQUIRED, max_vcpus),
    KV_FIELD(KvSandboxConfig, "memory_mib", KV_T_U32, KV_F_REQUIRED, memory_mib),
    KV_FIELD(KvSandboxConfig, "max_memory_mib", KV_T_U32, KV_F_REQUIRED, max_memory_mib),
    KV_FIELD(KvSandboxConfig, "created", KV_T_STR, KV_F_REQUIRED, created),
    KV_FIELD(KvSandboxConfig, "memory_hotplug", KV_T_STR, 0, memory_hotplug),
    KV_FIELD(KvSandboxConfig, "netns", KV_T_STR, KV_F_NONEMPTY, netns, .max = 4096),
    KV_FIELD(KvSandboxConfig, "shared_fs", KV_T_STR, KV_F_NONEMPTY, shared_fs, .max = 16),
    KV_FIELD(KvSandboxConfig, "virtiofsd", KV_T_STR, KV_F_NONEMPTY, virtiofsd, .max = 4096),
    KV_FIELD(KvSandboxConfig, "virtiofs_cache", KV_T_STR, KV_F_NONEMPTY, virtiofs_cache, .max = 16),
    KV_FIELD(KvSandboxConfig, "virtiofs_timeout_ms", KV_T_INT, KV_F_OMIT, virtiofs_timeout_ms,
             .min = -1, .max = KV_VIRTIOFS_TIMEOUT_MS_MAX, .def = KV_VIRTIOFS_TIMEOUT_MS_DEFAULT),
    KV_FIELD(KvSandboxConfig, "net", KV_T_STR, KV_F_NONEMPTY, net, .max = 16),
    KV_FIELD(KvSandboxConfig, "publish", KV_T_STRV, 0, publish),
    KV_FIELD(KvSandboxConfig, "tb_cache_mib", KV_T_U32, KV_F_OMIT, tb_cache_mib,
             .max = KV_TB_CACHE_MIB_MAX),
    {NULL}};
static const KvMsgDesc config_desc = {"config.json", sizeof(KvSandboxConfig), config_fields};
G_STATIC_ASSERT(sizeof(((KvSandboxConfig *)0)->vcpus) == sizeof(guint32));

gboolean kv_config_save(const KvSandboxConfig *c, const char *path, GError **error) {
  KvSandboxConfig out = *c;
  if (!out.memory_hotplug)
    out.memory_hotplug = "auto";
  g_autoptr(JsonObject) o = kv_msg_encode(&config_desc, &out);
  return kv_json_file_save(o, path, error);
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
  g_autoptr(GError) e = NULL;
  if (!kv_msg_decode(&config_desc, o, c, &e)) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s: %s", path, e->message);
    return FALSE;
  }
  if (!c->memory_hotplug)
    c->memory_hotplug = g_strdup("auto");
  /* Configs from before virtio-fs: 9p. */
  if (!c->shared_fs)
    c->shared_fs = g_strdup(KV_SHARED_FS_9P);
  if (g_strcmp0(c->shared_fs, KV_SHARED_FS_9P) && g_strcmp0(c->shared_fs, KV_SHARED_FS_VIRTIOFS)) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s: shared_fs '%s' is not virtio-fs or 9p",
                path, c->shared_fs);
    kv_config_clear(c);
    return FALSE;
  }
  if (!c->virtiofsd)
    c->virtiofsd = g_strdup(KV_VIRTIOFSD_DEFAULT);
  if (!c->virtiofs_cache)
    c->virtiofs_cache = g_strdup(KV_VIRTIOFS_CACHE_DEFAULT);
  if (!kv_virtiofs_cache_valid(c->virtiofs_cache)) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT,
                "%s: virtiofs_cache '%s' is not none, auto or always", path, c->virtiofs_cache);
    kv_config_clear(c);
    return FALSE;
  }
  return TRUE;
}
