/* lib/container.c: containers and exec, the client side: bundle loading
 * and validation happen here, in the caller's process, so errors name the
 * caller's files; the shim mounts and relays; the agent builds the
 * container. */
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "oci.h"
#include "process-internal.h"

#define KV_M_SHIM_CONTAINER_ADD "container_add"

const char *katavm_container_state_name(katavm_container_state_t s) {
  switch (s) {
  case KATAVM_CONTAINER_CREATED:
    return "created";
  case KATAVM_CONTAINER_RUNNING:
    return "running";
  case KATAVM_CONTAINER_STOPPED:
    return "stopped";
  default:
    return "unknown";
  }
}

static gboolean check_cid(const char *id, GError **error) {
  if (!kv_id_validate(id, error)) {
    g_prefix_error(error, "container: ");
    return FALSE;
  }
  return TRUE;
}

static int simple_call(katavm_sandbox *sb, const char *method, JsonObject *params, guint timeout_ms,
                       JsonObject **out, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  JsonObject *r = kv_sandbox_call(sb, method, params, timeout_ms, &e);
  if (!r)
    return kv_error_propagate(err, e);
  if (out)
    *out = r;
  else
    json_object_unref(r);
  return 0;
}

int katavm_container_add(katavm_sandbox *sb, const char *id, const katavm_container_config *cfg,
                         katavm_process **main_out, katavm_error **err) {
  if (!sb || !cfg)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and config must not be NULL");
  katavm_container_config cfg_copy;
  int abi_rc = kv_abi_copy_in(KV_ABI_CONTAINER_CONFIG, cfg, &cfg_copy, sizeof cfg_copy, err);
  if (abi_rc < 0)
    return abi_rc;
  cfg = &cfg_copy;
  if (!!cfg->bundle == !!cfg->rootfs)
    return kv_error_set(err, KATAVM_E_INVALID, "give either a bundle or a rootfs");
  g_autoptr(GError) e = NULL;
  if (!check_cid(id, &e))
    return kv_error_propagate(err, e);
  g_autofree char *rootfs = NULL;
  g_autoptr(JsonObject) spec = kv_oci_load(cfg->bundle, cfg->rootfs, &rootfs, &e);
  if (!spec)
    return kv_error_propagate(err, e);
  kv_oci_override(spec, cfg->argv, cfg->env, cfg->cwd, cfg->hostname, cfg->tty, cfg->readonly);
  JsonObject *proc = json_object_get_object_member(spec, "process");
  gboolean tty = json_object_get_boolean_member_with_default(proc, "terminal", FALSE);
  g_autoptr(JsonObject) params = json_object_new();
  json_object_set_string_member(params, "id", id);
  json_object_set_object_member(params, "spec", json_object_ref(spec));
  json_object_set_string_member(params, "rootfs", rootfs);
  json_object_set_boolean_member(
      params, "readonly",
      json_object_get_boolean_member_with_default(json_object_get_object_member(spec, "root"),
                                                  "readonly", FALSE));
  if (!main_out) {
    JsonObject *streams = json_object_new();
    json_object_set_int_member(streams, "stdin", 0);
    json_object_set_int_member(streams, "stdout", 0);
    json_object_set_int_member(streams, "stderr", 0);
    json_object_set_object_member(params, "streams", streams);
    return simple_call(sb, KV_M_SHIM_CONTAINER_ADD, params, KV_CALL_TIMEOUT_MS, NULL, err);
  }
  katavm_process *p =
      kv_process_start(sb, id, NULL, tty, TRUE, KV_M_SHIM_CONTAINER_ADD, params, &e);
  if (!p)
    return kv_error_propagate(err, e);
  *main_out = p;
  return 0;
}

static JsonObject *id_params(const char *key, const char *id) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, key, id);
  return o;
}

int katavm_container_start(katavm_sandbox *sb, const char *id, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  g_autoptr(JsonObject) o = id_params("id", id);
  return simple_call(sb, KV_M_CONTAINER_START, o, KV_CALL_TIMEOUT_MS, NULL, err);
}

int katavm_container_state(katavm_sandbox *sb, const char *id, katavm_container_state_t *state,
                           int *exit_code, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !state || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e)
             : kv_error_set(err, KATAVM_E_INVALID, "sandbox and state must not be NULL");
  g_autoptr(JsonObject) o = id_params("id", id);
  JsonObject *r = NULL;
  int rc = simple_call(sb, KV_M_CONTAINER_STATE, o, KV_CALL_TIMEOUT_MS, &r, err);
  if (rc < 0)
    return rc;
  const char *st = kv_json_str(r, "status", "");
  *state = !strcmp(st, "created")   ? KATAVM_CONTAINER_CREATED
           : !strcmp(st, "running") ? KATAVM_CONTAINER_RUNNING
           : !strcmp(st, "stopped") ? KATAVM_CONTAINER_STOPPED
                                    : KATAVM_CONTAINER_UNKNOWN;
  if (exit_code)
    *exit_code = (int)kv_json_int(r, "exit_code", -1);
  json_object_unref(r);
  return 0;
}

int katavm_container_kill(katavm_sandbox *sb, const char *id, int signal, int all,
                          katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  if (signal <= 0 || signal >= 65)
    return kv_error_set(err, KATAVM_E_INVALID, "signal %d is out of range", signal);
  g_autoptr(JsonObject) o = id_params("id", id);
  json_object_set_int_member(o, "signal", signal);
  json_object_set_boolean_member(o, "all", all != 0);
  return simple_call(sb, KV_M_CONTAINER_KILL, o, KV_CALL_TIMEOUT_MS, NULL, err);
}

int katavm_container_wait(katavm_sandbox *sb, const char *id, int *exit_code, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  g_autoptr(JsonObject) o = id_params("container", id);
  JsonObject *r = NULL;
  int rc = simple_call(sb, KV_M_WAIT, o, 0, &r, err);
  if (rc < 0)
    return rc;
  if (exit_code)
    *exit_code = (int)kv_json_int(r, "exit_code", -1);
  json_object_unref(r);
  return 0;
}

int katavm_container_remove(katavm_sandbox *sb, const char *id, int force, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  g_autoptr(JsonObject) o = id_params("id", id);
  json_object_set_boolean_member(o, "force", force != 0);
  return simple_call(sb, KV_M_CONTAINER_REMOVE, o, KV_CALL_TIMEOUT_MS, NULL, err);
}

int katavm_container_list(katavm_sandbox *sb, char ***ids_out, katavm_error **err) {
  if (!sb || !ids_out)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and ids_out must not be NULL");
  JsonObject *r = NULL;
  g_autoptr(JsonObject) o = json_object_new();
  int rc = simple_call(sb, KV_M_CONTAINER_LIST, o, KV_CALL_TIMEOUT_MS, &r, err);
  if (rc < 0)
    return rc;
  JsonArray *a = json_object_has_member(r, "containers")
                     ? json_object_get_array_member(r, "containers")
                     : NULL;
  guint n = a ? json_array_get_length(a) : 0;
  char **v = calloc(n + 1, sizeof(char *));
  guint k = 0;
  for (guint i = 0; i < n; i++) {
    JsonNode *el = json_array_get_element(a, i);
    if (JSON_NODE_HOLDS_OBJECT(el)) {
      const char *cid = kv_json_str(json_node_get_object(el), "id", NULL);
      if (cid)
        v[k++] = strdup(cid);
    }
  }
  json_object_unref(r);
  *ids_out = v;
  return 0;
}

int katavm_exec(katavm_sandbox *sb, const char *container_id, const katavm_exec_config *cfg,
                katavm_process **out, katavm_error **err) {
  if (!sb || !cfg || !out)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox, config and out must not be NULL");
  katavm_exec_config cfg_copy;
  int abi_rc = kv_abi_copy_in(KV_ABI_EXEC_CONFIG, cfg, &cfg_copy, sizeof cfg_copy, err);
  if (abi_rc < 0)
    return abi_rc;
  cfg = &cfg_copy;
  g_autoptr(GError) e = NULL;
  if (!check_cid(container_id, &e))
    return kv_error_propagate(err, e);
  if (!cfg->argv || !cfg->argv[0] || !*cfg->argv[0])
    return kv_error_set(err, KATAVM_E_INVALID, "exec: argv must name a command");
  if (cfg->cwd && !g_path_is_absolute(cfg->cwd))
    return kv_error_set(err, KATAVM_E_INVALID, "exec: cwd '%s' must be absolute", cfg->cwd);
  JsonObject *proc = json_object_new();
  json_object_set_array_member(proc, "args", kv_json_strv(cfg->argv));
  if (cfg->env)
    json_object_set_array_member(proc, "env", kv_json_strv(cfg->env));
  if (cfg->cwd)
    json_object_set_string_member(proc, "cwd", cfg->cwd);
  if (cfg->set_user) {
    JsonObject *u = json_object_new();
    json_object_set_int_member(u, "uid", cfg->uid);
    json_object_set_int_member(u, "gid", cfg->gid);
    json_object_set_object_member(proc, "user", u);
  }
  json_object_set_boolean_member(proc, "terminal", cfg->tty != 0);
  if (cfg->tty) {
    JsonObject *sz = json_object_new();
    json_object_set_int_member(sz, "height", cfg->rows ? cfg->rows : 24);
    json_object_set_int_member(sz, "width", cfg->cols ? cfg->cols : 80);
    json_object_set_object_member(proc, "consoleSize", sz);
  }
  g_autofree char *exec_id = kv_id_generate();
  g_autoptr(JsonObject) params = json_object_new();
  json_object_set_string_member(params, "container", container_id);
  json_object_set_string_member(params, "exec_id", exec_id);
  json_object_set_object_member(params, "process", proc);
  katavm_process *p = kv_process_start(sb, container_id, exec_id, cfg->tty != 0, !cfg->no_stdin,
                                       KV_M_EXEC, params, &e);
  if (!p)
    return kv_error_propagate(err, e);
  *out = p;
  return 0;
}
