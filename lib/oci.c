/* lib/oci.c: OCI bundles on the host: loading and validating config.json
 * (errors name the field), resolving the rootfs without letting a symlink
 * lead out of the bundle, the default spec for a plain rootfs (what
 * `runc spec` writes, plus lib/seccomp.c's filter), and the caller's
 * overrides. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "oci.h"
#include "ocispec.h"

#define CONFIG_MAX (4 * 1024 * 1024)

static const char DEFAULT_SPEC[] =
    "{\"ociVersion\":\"1.0.2\","
    "\"process\":{\"terminal\":false,\"user\":{\"uid\":0,\"gid\":0},"
    "\"args\":[\"sh\"],"
    "\"env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
    "\"TERM=xterm\",\"HOME=/root\"],\"cwd\":\"/\","
    "\"capabilities\":{"
    "\"bounding\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"effective\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"permitted\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"]},"
    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":1024}],"
    "\"noNewPrivileges\":true},"
    "\"root\":{\"path\":\"rootfs\",\"readonly\":false},"
    "\"hostname\":\"katavm\","
    "\"mounts\":["
    "{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
    "\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]},"
    "{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\","
    "\"options\":[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=0620\"]},"
    "{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":\"shm\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"mode=1777\",\"size=65536k\"]},"
    "{\"destination\":\"/dev/mqueue\",\"type\":\"mqueue\",\"source\":\"mqueue\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\"]},"
    "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\","
    "\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}],"
    "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"ipc\"},"
    "{\"type\":\"uts\"},{\"type\":\"mount\"}],"
    "\"maskedPaths\":[\"/proc/acpi\",\"/proc/asound\",\"/proc/kcore\",\"/proc/keys\","
    "\"/proc/latency_stats\",\"/proc/timer_list\",\"/proc/timer_stats\",\"/proc/sched_debug\","
    "\"/sys/firmware\",\"/proc/scsi\"],"
    "\"readonlyPaths\":[\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\","
    "\"/proc/sysrq-trigger\"]}}";

/* The spec is checked by the same parser the agent builds the container
 * from (lib/proto/ocispec.c), so host and guest apply one set of rules and
 * the caller's mistakes are named here, in the caller's terms, before a
 * sandbox is touched. Only what the host itself needs on top is checked
 * here: root.path, which the host resolves. */
KvOciSpec *kv_oci_check(JsonObject *spec, GError **error) {
  g_autoptr(GError) e = NULL;
  KvOciSpec *parsed = kv_ocispec_parse(spec, &e);
  if (parsed)
    return parsed;
  const char *msg = g_str_has_prefix(e->message, "spec: ") ? e->message + 6 : e->message;
  g_set_error(error, KV_ERROR, kv_error_code_of(e), "config.json: %s", msg);
  return NULL;
}

gboolean kv_oci_validate(JsonObject *spec, GError **error) {
  JsonNode *root = json_object_get_member(spec, "root");
  JsonNode *path = root && JSON_NODE_HOLDS_OBJECT(root)
                       ? json_object_get_member(json_node_get_object(root), "path")
                       : NULL;
  if (!root) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "config.json: root is missing");
    return FALSE;
  }
  if (!path || !JSON_NODE_HOLDS_VALUE(path) || json_node_get_value_type(path) != G_TYPE_STRING ||
      !*json_node_get_string(path)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "config.json: root.path must be a non-empty string");
    return FALSE;
  }
  g_autoptr(KvOciSpec) parsed = kv_oci_check(spec, error);
  return parsed != NULL;
}

JsonObject *kv_oci_default_spec(void) {
  g_autoptr(JsonParser) p = json_parser_new();
  if (!json_parser_load_from_data(p, DEFAULT_SPEC, -1, NULL))
    g_error("built-in default spec does not parse");
  return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

/* Resolve root.path against the bundle. A relative root must stay inside
 * the bundle once symlinks are resolved. */
static char *resolve_rootfs(const char *bundle, const char *root_path, GError **error) {
  g_autofree char *joined = g_path_is_absolute(root_path)
                                ? g_strdup(root_path)
                                : g_build_filename(bundle, root_path, NULL);
  char real[PATH_MAX];
  if (!realpath(joined, real)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "rootfs %s: %s", joined, g_strerror(errno));
    return NULL;
  }
  if (!g_path_is_absolute(root_path)) {
    char rb[PATH_MAX];
    if (!realpath(bundle, rb)) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "bundle %s: %s", bundle, g_strerror(errno));
      return NULL;
    }
    size_t n = strlen(rb);
    if (strncmp(real, rb, n) != 0 || real[n] != '/') {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "rootfs %s resolves to %s, outside the bundle %s", joined, real, rb);
      return NULL;
    }
  }
  struct stat st;
  if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "rootfs %s is not a directory", real);
    return NULL;
  }
  /* Sharing the host's root with a guest is never what was meant. */
  if (strcmp(real, "/") == 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "rootfs %s resolves to /, the host's root directory: refusing to share it", joined);
    return NULL;
  }
  return g_strdup(real);
}

JsonObject *kv_oci_read(const char *bundle, GError **error) {
  struct stat st;
  if (stat(bundle, &st) < 0 || !S_ISDIR(st.st_mode)) {
    g_set_error(error, KV_ERROR, errno == ENOENT ? KATAVM_E_NOT_FOUND : KATAVM_E_INVALID,
                "bundle %s is not a directory", bundle);
    return NULL;
  }
  g_autofree char *cfg = g_build_filename(bundle, "config.json", NULL);
  if (stat(cfg, &st) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "bundle %s has no config.json", bundle);
    return NULL;
  }
  if (st.st_size > CONFIG_MAX) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "%s is too large", cfg);
    return NULL;
  }
  g_autofree char *text = NULL;
  gsize text_len = 0;
  g_autoptr(GError) pe = NULL;
  if (!g_file_get_contents(cfg, &text, &text_len, &pe)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "cannot read %s: %s", cfg, pe->message);
    return NULL;
  }
  /* Bounded before json-glib recurses over it on our caller's stack. */
  if (!kv_json_check_text(text, text_len, &pe)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "%s is malformed: %s", cfg, pe->message);
    return NULL;
  }
  g_autoptr(JsonParser) p = json_parser_new();
  if (!json_parser_load_from_data(p, text, (gssize)text_len, &pe)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "%s is malformed: %s", cfg, pe->message);
    return NULL;
  }
  JsonNode *r = json_parser_get_root(p);
  if (!r || !JSON_NODE_HOLDS_OBJECT(r)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "%s must hold a JSON object", cfg);
    return NULL;
  }
  return json_object_ref(json_node_get_object(r));
}

/* ---- volumes ---- */

static const char *const volume_propagations[] = {"private", "rprivate", "slave",
                                                  "rslave",  "shared",   "rshared"};

/* Whether path has a "." or ".." component. */
static gboolean has_dot_component(const char *path) {
  g_auto(GStrv) parts = g_strsplit(path, "/", -1);
  for (char **c = parts; *c; c++)
    if (!strcmp(*c, "..") || !strcmp(*c, "."))
      return TRUE;
  return FALSE;
}

/* A mount's source as a host path: as runc, a relative one is relative to
 * the bundle. */
static char *bundle_source(const char *bundle, const char *src) {
  if (g_path_is_absolute(src) || !bundle)
    return g_strdup(src);
  g_autofree char *abs_bundle = g_canonicalize_filename(bundle, NULL);
  return g_build_filename(abs_bundle, src, NULL);
}

/* One "HOST:DEST[:OPTIONS]" as a spec mount (a recursive bind, as podman
 * makes of -v). */
static JsonObject *volume_mount(const char *vol, gboolean *disk, GError **error) {
  g_auto(GStrv) f = g_strsplit(vol, ":", 4);
  guint n = g_strv_length(f);
  if (n < 2 || n > 3 || !*f[0] || !*f[1]) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "volume '%s': give it as HOST:DEST[:OPTIONS] (no ':' in the paths)", vol);
    return NULL;
  }
  if (!g_path_is_absolute(f[0])) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "volume '%s': the host path '%s' must be absolute", vol, f[0]);
    return NULL;
  }
  if (!g_path_is_absolute(f[1])) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "volume '%s': the destination '%s' must be an absolute path", vol, f[1]);
    return NULL;
  }
  if (has_dot_component(f[1])) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "volume '%s': the destination '%s' must not contain \".\" or \"..\"", vol, f[1]);
    return NULL;
  }
  JsonArray *opts = json_array_new();
  json_array_add_string_element(opts, "rbind");
  const char *prop = NULL, *mode = NULL;
  g_auto(GStrv) o = n == 3 ? g_strsplit(f[2], ",", -1) : g_new0(char *, 1);
  for (char **x = o; *x; x++) {
    gboolean is_prop = FALSE;
    for (gsize i = 0; i < G_N_ELEMENTS(volume_propagations); i++)
      is_prop = is_prop || !strcmp(*x, volume_propagations[i]);
    if ((!strcmp(*x, "ro") || !strcmp(*x, "rw")) && !mode) {
      mode = *x;
    } else if (!strcmp(*x, "disk") && !*disk) {
      *disk = TRUE;
    } else if (is_prop && !prop) {
      prop = *x;
    } else {
      json_array_unref(opts);
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "volume '%s': option '%s' is unknown or given twice (ro or rw, disk, and one "
                  "of private, rprivate, slave, rslave, shared, rshared)",
                  vol, *x);
      return NULL;
    }
  }
  /* A block device is a disk volume: hot-plugged, its file system mounted
   * in the guest (an image file says so with the disk option). */
  struct stat st;
  if (stat(f[0], &st) == 0 && S_ISBLK(st.st_mode))
    *disk = TRUE;
  if (*disk && prop) {
    json_array_unref(opts);
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "volume '%s': a disk volume takes no propagation option", vol);
    return NULL;
  }
  json_array_add_string_element(opts, mode ? mode : "rw");
  json_array_add_string_element(opts, prop ? prop : "rprivate");
  JsonObject *m = json_object_new();
  json_object_set_string_member(m, "destination", f[1]);
  json_object_set_string_member(m, "type", "bind");
  json_object_set_string_member(m, "source", f[0]);
  json_object_set_array_member(m, "options", opts);
  return m;
}

static void volume_free(KvVolume *v);

gboolean kv_oci_add_volumes(JsonObject *spec, const char *const *volumes, GError **error) {
  guint n = 0;
  for (const char *const *v = volumes; v && *v; v++)
    n++;
  if (n > KV_VOLUMES_MAX) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "%u volumes given: a container may have at most %u", n, KV_VOLUMES_MAX);
    return FALSE;
  }
  if (n == 0)
    return TRUE;
  g_autoptr(GPtrArray) ms = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
  for (const char *const *v = volumes; *v; v++) {
    gboolean disk = FALSE;
    JsonObject *m = volume_mount(*v, &disk, error);
    if (!m)
      return FALSE;
    /* kv_oci_take_disks takes it out of the spec again. */
    if (disk)
      json_array_add_string_element(json_object_get_array_member(m, "options"), KV_OCI_DISK_OPTION);
    g_ptr_array_add(ms, m);
  }
  JsonNode *node = json_object_get_member(spec, "mounts");
  if (!node || JSON_NODE_HOLDS_NULL(node)) {
    json_object_set_array_member(spec, "mounts", json_array_new());
    node = json_object_get_member(spec, "mounts");
  }
  if (!JSON_NODE_HOLDS_ARRAY(node)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "config.json: mounts must be an array");
    return FALSE;
  }
  JsonArray *a = json_node_get_array(node);
  for (guint i = 0; i < ms->len; i++)
    json_array_add_object_element(a, json_object_ref(ms->pdata[i]));
  return TRUE;
}

/* A mount's options as they bear on a disk: whether it is a bind mount
 * (as lib/proto/ocispec.c reads it), read-only, marked as a disk. */
static void disk_traits(JsonObject *m, gboolean *bind, gboolean *ro, gboolean *marked) {
  const char *type =
      json_object_has_member(m, "type") && JSON_NODE_HOLDS_VALUE(json_object_get_member(m, "type"))
          ? json_object_get_string_member(m, "type")
          : NULL;
  *bind = !type || !*type || !strcmp(type, "none") || !strcmp(type, "bind");
  *ro = *marked = FALSE;
  JsonNode *on = json_object_get_member(m, "options");
  if (!on || !JSON_NODE_HOLDS_ARRAY(on))
    return;
  JsonArray *o = json_node_get_array(on);
  for (guint i = 0; i < json_array_get_length(o); i++) {
    JsonNode *x = json_array_get_element(o, i);
    const char *s = JSON_NODE_HOLDS_VALUE(x) ? json_node_get_string(x) : NULL;
    if (!s)
      continue;
    *bind = *bind || !strcmp(s, "bind") || !strcmp(s, "rbind");
    if (!strcmp(s, "ro"))
      *ro = TRUE;
    else if (!strcmp(s, "rw"))
      *ro = FALSE;
    *marked = *marked || !strcmp(s, KV_OCI_DISK_OPTION);
  }
}

gboolean kv_oci_take_disks(JsonObject *spec, const char *bundle, GPtrArray **disks,
                           GError **error) {
  *disks = NULL;
  JsonNode *node = json_object_get_member(spec, "mounts");
  if (!node || !JSON_NODE_HOLDS_ARRAY(node))
    return TRUE; /* kv_oci_check names what is wrong with it */
  JsonArray *a = json_node_get_array(node);
  g_autoptr(GPtrArray) ds = g_ptr_array_new_with_free_func((GDestroyNotify)volume_free);
  for (guint i = 0; i < json_array_get_length(a);) {
    JsonNode *mn = json_array_get_element(a, i);
    JsonObject *m = JSON_NODE_HOLDS_OBJECT(mn) ? json_node_get_object(mn) : NULL;
    JsonNode *sn = m ? json_object_get_member(m, "source") : NULL;
    JsonNode *dn = m ? json_object_get_member(m, "destination") : NULL;
    const char *src = sn && JSON_NODE_HOLDS_VALUE(sn) ? json_node_get_string(sn) : NULL;
    const char *dst = dn && JSON_NODE_HOLDS_VALUE(dn) ? json_node_get_string(dn) : NULL;
    gboolean bind = FALSE, ro = FALSE, marked = FALSE;
    if (m)
      disk_traits(m, &bind, &ro, &marked);
    if (!src || !*src || !dst || (!bind && !marked)) {
      i++;
      continue;
    }
    g_autofree char *joined = bundle_source(bundle, src);
    char real[PATH_MAX];
    struct stat st;
    gboolean found = g_path_is_absolute(joined) && realpath(joined, real) && stat(real, &st) == 0;
    int serr = found ? 0 : g_path_is_absolute(joined) ? errno : EINVAL;
    if (!marked && !(found && S_ISBLK(st.st_mode))) {
      i++;
      continue; /* a bind mount of a directory or file: a shared volume */
    }
    if (!bind) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "mount %s -> %s: the option %s is for bind mounts (type bind), not type %s", src,
                  dst, KV_OCI_DISK_OPTION, json_object_get_string_member(m, "type"));
      return FALSE;
    }
    if (!found) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "disk volume %s -> %s: the disk %s: %s", src,
                  dst, joined, serr == EINVAL ? "not an absolute host path" : g_strerror(serr));
      return FALSE;
    }
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "disk volume %s -> %s: the disk %s is neither a block device nor an image file",
                  src, dst, real);
      return FALSE;
    }
    if (!g_path_is_absolute(dst) || has_dot_component(dst) || !strcmp(dst, "/")) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "disk volume %s -> %s: the destination must be an absolute path below / "
                  "without \".\" or \"..\"",
                  src, dst);
      return FALSE;
    }
    if (ds->len >= KV_VOLUMES_MAX) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "more than %u disk volumes: a container may have at most %u", KV_VOLUMES_MAX,
                  KV_VOLUMES_MAX);
      return FALSE;
    }
    KvVolume *d = g_new0(KvVolume, 1);
    d->source = g_strdup(real);
    d->destination = g_strdup(dst);
    d->readonly = ro;
    g_ptr_array_add(ds, d);
    json_array_remove_element(a, i);
  }
  if (ds->len)
    *disks = g_steal_pointer(&ds);
  return TRUE;
}

static void volume_free(KvVolume *v) {
  g_free(v->source);
  g_free(v->destination);
  g_free(v);
}

GPtrArray *kv_oci_volumes(const KvOciSpec *parsed, const char *bundle, GError **error) {
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)volume_free);
  for (guint i = 0; i < parsed->mounts->len; i++) {
    const KvOciMount *m = parsed->mounts->pdata[i];
    if (!m->bind)
      continue;
    if (out->len >= KV_VOLUMES_MAX) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "more than %u volumes (host bind mounts and -v volumes together): a container "
                  "may have at most %u",
                  KV_VOLUMES_MAX, KV_VOLUMES_MAX);
      return NULL;
    }
    g_autofree char *joined = bundle_source(bundle, m->source);
    char real[PATH_MAX];
    struct stat st;
    if (!g_path_is_absolute(joined) || !realpath(joined, real) || stat(real, &st) < 0) {
      int e = g_path_is_absolute(joined) ? errno : EINVAL;
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "volume %s -> %s: source %s: %s", joined,
                  m->destination, joined,
                  e == EINVAL ? "must be an absolute host path" : g_strerror(e));
      return NULL;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "volume %s -> %s: source %s is neither a directory nor a regular file", joined,
                  m->destination, real);
      return NULL;
    }
    if (strcmp(real, "/") == 0) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "volume %s -> %s: the source is the host's root directory: refusing to share "
                  "it",
                  joined, m->destination);
      return NULL;
    }
    KvVolume *v = g_new0(KvVolume, 1);
    v->mount = i;
    v->source = g_strdup(real);
    v->destination = g_strdup(m->destination);
    v->readonly = (m->flags & MS_RDONLY) != 0;
    g_ptr_array_add(out, v);
  }
  return g_steal_pointer(&out);
}

/* Whether path is dir or below it. */
static gboolean path_under(const char *path, const char *dir) {
  gsize n = strlen(dir);
  if (n == 1 && dir[0] == '/')
    return TRUE;
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static void mountpoint_free(KvMountPoint *m) {
  g_free(m->path);
  g_free(m);
}

/* path lands in the root itself: under none of the first n spec mounts. */
static void add_point(GPtrArray *out, const KvOciSpec *parsed, guint n, const char *path,
                      gboolean file) {
  for (guint j = 0; j < n; j++) {
    if (path_under(path, ((const KvOciMount *)parsed->mounts->pdata[j])->destination))
      return;
  }
  for (guint j = 0; j < out->len; j++) {
    if (strcmp(((KvMountPoint *)out->pdata[j])->path, path) == 0)
      return;
  }
  KvMountPoint *m = g_new0(KvMountPoint, 1);
  m->path = g_strdup(path);
  m->file = file;
  g_ptr_array_add(out, m);
}

GPtrArray *kv_oci_mountpoints(const KvOciSpec *parsed, const GPtrArray *volumes,
                              const GPtrArray *disks) {
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)mountpoint_free);
  for (guint i = 0; i < parsed->mounts->len; i++) {
    const KvOciMount *m = parsed->mounts->pdata[i];
    gboolean file = FALSE;
    for (guint v = 0; m->bind && volumes && v < volumes->len; v++) {
      const KvVolume *vol = volumes->pdata[v];
      struct stat st;
      if (vol->mount == (gint64)i && stat(vol->source, &st) == 0)
        file = S_ISREG(st.st_mode);
    }
    add_point(out, parsed, i, m->destination, file);
  }
  /* Disks are mounted after every spec mount. */
  for (guint d = 0; disks && d < disks->len; d++)
    add_point(out, parsed, parsed->mounts->len, ((const KvVolume *)disks->pdata[d])->destination,
              FALSE);
  if (parsed->process && parsed->process->cwd && strcmp(parsed->process->cwd, "/") != 0)
    add_point(out, parsed, parsed->mounts->len, parsed->process->cwd, FALSE);
  return out;
}

JsonObject *kv_oci_load(const char *bundle, const char *rootfs, char **rootfs_out, GError **error) {
  g_autoptr(JsonObject) spec = NULL;
  g_autofree char *real = NULL;
  if (bundle) {
    spec = kv_oci_read(bundle, error);
    if (!spec)
      return NULL;
    kv_oci_pod_namespaces(spec);
    if (!kv_oci_validate(spec, error))
      return NULL;
    real = resolve_rootfs(
        bundle, json_object_get_string_member(json_object_get_object_member(spec, "root"), "path"),
        error);
  } else {
    spec = kv_oci_default_spec();
    /* `runc spec` writes none; a container made from a plain rootfs gets
     * the engines' kind of filter all the same (lib/seccomp.c). */
    json_object_set_object_member(json_object_get_object_member(spec, "linux"), "seccomp",
                                  kv_oci_default_seccomp());
    if (!rootfs || !g_path_is_absolute(rootfs)) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "rootfs '%s' must be an absolute path",
                  rootfs ? rootfs : "(null)");
      return NULL;
    }
    real = resolve_rootfs("/", rootfs, error);
  }
  if (!real)
    return NULL;
  *rootfs_out = g_steal_pointer(&real);
  return g_steal_pointer(&spec);
}

JsonObject *kv_oci_process_new(const char *const *argv, const char *const *env, const char *cwd,
                               gboolean set_user, guint uid, guint gid, gboolean terminal,
                               guint rows, guint cols) {
  JsonObject *proc = json_object_new();
  json_object_set_array_member(proc, "args", kv_json_strv(argv));
  if (env)
    json_object_set_array_member(proc, "env", kv_json_strv(env));
  if (cwd)
    json_object_set_string_member(proc, "cwd", cwd);
  if (set_user) {
    JsonObject *u = json_object_new();
    json_object_set_int_member(u, "uid", uid);
    json_object_set_int_member(u, "gid", gid);
    json_object_set_object_member(proc, "user", u);
  }
  json_object_set_boolean_member(proc, "terminal", terminal);
  if (terminal) {
    JsonObject *sz = json_object_new();
    json_object_set_int_member(sz, "height", rows);
    json_object_set_int_member(sz, "width", cols);
    json_object_set_object_member(proc, "consoleSize", sz);
  }
  return proc;
}

void kv_oci_pod_namespaces(JsonObject *spec) {
  JsonNode *l = json_object_get_member(spec, "linux");
  if (!l || !JSON_NODE_HOLDS_OBJECT(l))
    return;
  JsonNode *ns = json_object_get_member(json_node_get_object(l), "namespaces");
  if (!ns || !JSON_NODE_HOLDS_ARRAY(ns))
    return;
  JsonArray *a = json_node_get_array(ns);
  for (guint i = 0; i < json_array_get_length(a); i++) {
    JsonNode *e = json_array_get_element(a, i);
    if (JSON_NODE_HOLDS_OBJECT(e) && json_object_has_member(json_node_get_object(e), "path"))
      json_object_remove_member(json_node_get_object(e), "path");
  }
}

void kv_oci_set_annotation(JsonObject *spec, const char *key, char *value) {
  JsonNode *n = json_object_get_member(spec, "annotations");
  if (n == NULL || !JSON_NODE_HOLDS_OBJECT(n)) {
    json_object_set_object_member(spec, "annotations", json_object_new());
    n = json_object_get_member(spec, "annotations");
  }
  json_object_set_string_member(json_node_get_object(n), key, value);
  g_free(value);
}

void kv_oci_override(JsonObject *spec, const char *const *argv, const char *const *env,
                     const char *cwd, const char *hostname, int tty, int readonly) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  if (argv && *argv)
    json_object_set_array_member(proc, "args", kv_json_strv(argv));
  if (env) {
    /* Extra variables replace same-named ones of the spec. */
    JsonArray *old =
        json_object_has_member(proc, "env") ? json_object_get_array_member(proc, "env") : NULL;
    JsonArray *merged = json_array_new();
    for (guint i = 0; old && i < json_array_get_length(old); i++) {
      const char *kv = json_array_get_string_element(old, i);
      const char *eq = strchr(kv, '=');
      gsize klen = eq ? (gsize)(eq - kv) : strlen(kv);
      gboolean replaced = FALSE;
      for (const char *const *e = env; *e; e++)
        if (!strncmp(*e, kv, klen) && (*e)[klen] == '=')
          replaced = TRUE;
      if (!replaced)
        json_array_add_string_element(merged, kv);
    }
    for (const char *const *e = env; *e; e++)
      json_array_add_string_element(merged, *e);
    json_object_set_array_member(proc, "env", merged);
  }
  if (cwd)
    json_object_set_string_member(proc, "cwd", cwd);
  if (tty)
    json_object_set_boolean_member(proc, "terminal", TRUE);
  if (hostname)
    json_object_set_string_member(spec, "hostname", hostname);
  if (readonly)
    json_object_set_boolean_member(json_object_get_object_member(spec, "root"), "readonly", TRUE);
}
