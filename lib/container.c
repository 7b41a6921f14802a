/* lib/container.c: containers and exec, the client side: bundle loading
 * and validation happen here, in the caller's process, so errors name the
 * caller's files; the shim mounts and relays; the agent builds the
 * container. */
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "oci.h"
#include "process-internal.h"

const char *katavm_container_state_name(katavm_container_state_t s) {
  switch (s) {
  case KATAVM_CONTAINER_CREATED:
    return "created";
  case KATAVM_CONTAINER_RUNNING:
    return "running";
  case KATAVM_CONTAINER_STOPPED:
    return "stopped";
  case KATAVM_CONTAINER_PAUSED:
    return "paused";
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

static int simple_call(katavm_sandbox *sb, const KvMethod *m, gconstpointer params, gpointer result,
                       katavm_error **err) {
  g_autoptr(GError) e = NULL;
  return kv_sandbox_rpc(sb, m, params, result, &e) ? 0 : kv_error_propagate(err, e);
}

/* Disk volumes: hot-plugged now that the container exists (its main
 * process waits for start), each mounted at its destination in the
 * container's mount namespace by the agent (disk_add). A failure detaches
 * those added before it. */
static int add_disks(katavm_sandbox *sb, const char *id, GPtrArray *disks, katavm_error **err) {
  for (guint i = 0; disks && i < disks->len; i++) {
    const KvVolume *d = disks->pdata[i];
    katavm_hotplug_request req;
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
    req.path = d->source;
    req.readonly = d->readonly;
    req.container = id;
    req.mount_path = d->destination;
    katavm_error *he = NULL;
    int rc = katavm_hotplug(sb, &req, NULL, &he);
    if (rc < 0) {
      for (guint j = 0; j < i; j++) {
        katavm_hotplug_request rm;
        katavm_hotplug_request_init(&rm, KATAVM_HOTPLUG_DISK_REMOVE);
        rm.path = ((const KvVolume *)disks->pdata[j])->source;
        katavm_hotplug(sb, &rm, NULL, NULL);
      }
      rc = kv_error_set(err, katavm_error_code(he), "disk volume %s -> %s: %s", d->source,
                        d->destination, katavm_error_message(he));
      katavm_error_free(he);
      return rc;
    }
  }
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
  if (cfg->storage_size_mib > 0) {
    if (cfg->storage_size_mib > KV_OCI_STORAGE_SIZE_MAX_MIB)
      return kv_error_set(err, KATAVM_E_INVALID, "storage_size_mib %u is out of range 1..%u",
                          cfg->storage_size_mib, KV_OCI_STORAGE_SIZE_MAX_MIB);
    if (cfg->readonly)
      return kv_error_set(err, KATAVM_E_INVALID,
                          "storage_size_mib bounds a writable layer: not with readonly");
    kv_oci_set_annotation(spec, KV_OCI_STORAGE_SIZE_ANNOTATION,
                          g_strdup_printf("%u", cfg->storage_size_mib));
  }
  g_autoptr(GPtrArray) disks = NULL;
  if (!kv_oci_add_volumes(spec, cfg->volumes, &disks, &e))
    return kv_error_propagate(err, e);
  /* The spec with the caller's overrides, read as the agent will read it. */
  g_autoptr(KvOciSpec) parsed = kv_oci_check(spec, &e);
  if (!parsed)
    return kv_error_propagate(err, e);
  /* Every bind mount is a volume: its source is the host's. */
  g_autoptr(GPtrArray) volumes = kv_oci_volumes(parsed, cfg->bundle, &e);
  if (!volumes)
    return kv_error_propagate(err, e);
  gboolean tty = parsed->process->terminal;
  KvContainerAddParams params = {
      .container_id = (char *)id,
      .spec = spec,
      .rootfs = rootfs,
      /* A bounded writable layer lives in the guest: the guest never
       * needs to write the host's rootfs then. */
      .readonly = parsed->root_readonly || parsed->storage_size_mib > 0,
      .volumes = volumes->len ? volumes : NULL,
  };
  katavm_process *p = NULL;
  if (!main_out) {
    int rc = simple_call(sb, &kv_m_shim_container_add, &params, NULL, err);
    if (rc < 0)
      return rc;
  } else {
    p = kv_process_start(sb, id, NULL, tty, TRUE, &kv_m_shim_container_add, &params,
                         &params.streams, &params.sink_fds, &e);
    if (!p)
      return kv_error_propagate(err, e);
  }
  int rc = add_disks(sb, id, disks, err);
  if (rc < 0) {
    katavm_process_free(p);
    katavm_container_remove(sb, id, 1, NULL);
    return rc;
  }
  if (main_out)
    *main_out = p;
  return 0;
}

int katavm_container_start(katavm_sandbox *sb, const char *id, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvContainerRef o = {.container_id = (char *)id};
  return simple_call(sb, &kv_m_container_start, &o, NULL, err);
}

int katavm_container_state(katavm_sandbox *sb, const char *id, katavm_container_state_t *state,
                           int *exit_code, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !state || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e)
             : kv_error_set(err, KATAVM_E_INVALID, "sandbox and state must not be NULL");
  KvContainerRef o = {.container_id = (char *)id};
  KvContainerStateResult r;
  int rc = simple_call(sb, &kv_m_container_state, &o, &r, err);
  if (rc < 0)
    return rc;
  const char *st = r.status;
  *state = !strcmp(st, KV_STATUS_CREATED)   ? KATAVM_CONTAINER_CREATED
           : !strcmp(st, KV_STATUS_RUNNING) ? KATAVM_CONTAINER_RUNNING
           : !strcmp(st, KV_STATUS_STOPPED) ? KATAVM_CONTAINER_STOPPED
           : !strcmp(st, KV_STATUS_PAUSED)  ? KATAVM_CONTAINER_PAUSED
                                            : KATAVM_CONTAINER_UNKNOWN;
  if (exit_code)
    *exit_code = (int)r.exit_code;
  kv_msg_clear(kv_m_container_state.result, &r);
  return 0;
}

int katavm_container_kill(katavm_sandbox *sb, const char *id, int signal, int all,
                          katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  if (signal <= 0 || signal >= 65)
    return kv_error_set(err, KATAVM_E_INVALID, "signal %d is out of range", signal);
  KvContainerKillParams o = {.container_id = (char *)id, .signal = signal, .all = all != 0};
  return simple_call(sb, &kv_m_container_kill, &o, NULL, err);
}

static int ref_call(katavm_sandbox *sb, const char *id, const KvMethod *m, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvContainerRef o = {.container_id = (char *)id};
  KvEmpty r;
  return simple_call(sb, m, &o, &r, err);
}

int katavm_container_pause(katavm_sandbox *sb, const char *id, katavm_error **err) {
  return ref_call(sb, id, &kv_m_container_pause, err);
}

int katavm_container_resume(katavm_sandbox *sb, const char *id, katavm_error **err) {
  return ref_call(sb, id, &kv_m_container_resume, err);
}

int katavm_container_update(katavm_sandbox *sb, const char *id, const char *resources_json,
                            katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !resources_json || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e)
             : kv_error_set(err, KATAVM_E_INVALID, "sandbox and resources must not be NULL");
  g_autoptr(JsonParser) jp = json_parser_new();
  if (!kv_json_check_text(resources_json, strlen(resources_json), &e) ||
      !json_parser_load_from_data(jp, resources_json, -1, &e))
    return kv_error_set(err, KATAVM_E_INVALID, "update: resources are malformed: %s", e->message);
  JsonNode *root = json_parser_get_root(jp);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root))
    return kv_error_set(err, KATAVM_E_INVALID, "update: resources must be a JSON object");
  /* Checked here as the agent will read it, for a clear error at once. */
  KvOciResources res;
  if (!kv_ocispec_resources_parse(json_node_get_object(root), &res, &e))
    return kv_error_propagate(err, e);
  kv_ocispec_resources_clear(&res);
  KvContainerUpdateParams o = {.container_id = (char *)id, .resources = json_node_get_object(root)};
  KvEmpty r;
  return simple_call(sb, &kv_m_container_update, &o, &r, err);
}

int katavm_container_wait(katavm_sandbox *sb, const char *id, int *exit_code, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvProcessRef o = {.container_id = (char *)id};
  KvWaitResult r;
  int rc = simple_call(sb, &kv_m_wait, &o, &r, err);
  if (rc < 0)
    return rc;
  if (exit_code)
    *exit_code = (int)r.exit_code;
  return 0;
}

int katavm_container_remove(katavm_sandbox *sb, const char *id, int force, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!sb || !check_cid(id, &e))
    return e ? kv_error_propagate(err, e) : kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  KvContainerRemoveParams o = {.container_id = (char *)id, .force = force != 0};
  return simple_call(sb, &kv_m_container_remove, &o, NULL, err);
}

int katavm_container_list(katavm_sandbox *sb, char ***ids_out, katavm_error **err) {
  if (!sb || !ids_out)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and ids_out must not be NULL");
  KvContainerListResult r;
  int rc = simple_call(sb, &kv_m_container_list, NULL, &r, err);
  if (rc < 0)
    return rc;
  guint n = r.containers ? r.containers->len : 0;
  char **v = calloc(n + 1, sizeof(char *));
  for (guint i = 0; i < n; i++)
    v[i] = strdup(((KvContainerStateResult *)r.containers->pdata[i])->container_id);
  kv_msg_clear(kv_m_container_list.result, &r);
  *ids_out = v;
  return 0;
}

/* An OCI process object given as JSON text, checked as the agent will read
 * it (what it leaves out comes from the container there). */
static JsonObject *oci_process(const char *json, gboolean *tty, GError **error) {
  g_autoptr(JsonParser) jp = json_parser_new();
  g_autoptr(GError) pe = NULL;
  if (!kv_json_check_text(json, strlen(json), &pe) ||
      !json_parser_load_from_data(jp, json, -1, &pe)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "exec: process is malformed: %s", pe->message);
    return NULL;
  }
  JsonNode *r = json_parser_get_root(jp);
  if (!r || !JSON_NODE_HOLDS_OBJECT(r)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "exec: process must be a JSON object");
    return NULL;
  }
  JsonObject *o = json_node_get_object(r);
  g_autoptr(KvOciProcess) parsed = kv_ocispec_process_parse(o, NULL, "exec: process", error);
  if (!parsed)
    return NULL;
  *tty = parsed->terminal;
  return json_object_ref(o);
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
  g_autoptr(JsonObject) proc = NULL;
  gboolean tty = cfg->tty != 0;
  if (cfg->oci_process) {
    proc = oci_process(cfg->oci_process, &tty, &e);
    if (!proc)
      return kv_error_propagate(err, e);
  } else {
    if (!cfg->argv || !cfg->argv[0] || !*cfg->argv[0])
      return kv_error_set(err, KATAVM_E_INVALID, "exec: argv must name a command");
    if (cfg->cwd && !g_path_is_absolute(cfg->cwd))
      return kv_error_set(err, KATAVM_E_INVALID, "exec: cwd '%s' must be absolute", cfg->cwd);
    proc = kv_oci_process_new(cfg->argv, cfg->env, cfg->cwd, cfg->set_user, cfg->uid, cfg->gid, tty,
                              cfg->rows ? cfg->rows : 24, cfg->cols ? cfg->cols : 80);
  }
  g_autofree char *exec_id = kv_id_generate();
  KvExecParams params = {.container_id = (char *)container_id, .exec_id = exec_id, .process = proc};
  katavm_process *p = kv_process_start(sb, container_id, exec_id, tty, !cfg->no_stdin, &kv_m_exec,
                                       &params, &params.streams, &params.sink_fds, &e);
  if (!p)
    return kv_error_propagate(err, e);
  *out = p;
  return 0;
}
