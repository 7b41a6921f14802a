/* lib/bundle.c: what a container manager's OCI bundle says about its pod
 * (which container starts the VM and which join it, the pod's network
 * namespace, trust and size annotations), read once here for the OCI
 * runtime and the containerd shim alike; and the public id check and
 * default spec those front ends need. */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi.h"
#include "internal.h"
#include "oci.h"

/* Annotations, CRI-O's first, then containerd CRI's. */
#define A_CRIO_TYPE "io.kubernetes.cri-o.ContainerType"
#define A_CRIO_SANDBOX "io.kubernetes.cri-o.SandboxID"
#define A_CRIO_TRUSTED "io.kubernetes.cri-o.TrustedSandbox"
#define A_CRI_TYPE "io.kubernetes.cri.container-type"
#define A_CRI_SANDBOX "io.kubernetes.cri.sandbox-id"
#define A_CRI_UNTRUSTED "io.kubernetes.cri.untrusted-workload"
#define A_CPUS "io.katavm.cpus"
#define A_MEMORY "io.katavm.memory_mib"

int katavm_id_check(const char *id, const char *what, katavm_error **err) {
  g_autoptr(GError) e = NULL;
  if (!kv_id_valid(id, what ? what : "id", &e))
    return kv_error_propagate(err, e);
  return 0;
}

int katavm_oci_default_spec(char **json_out, katavm_error **err) {
  if (!json_out)
    return kv_error_set(err, KATAVM_E_INVALID, "json_out must not be NULL");
  g_autoptr(JsonObject) spec = kv_oci_default_spec();
  g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), spec);
  g_autoptr(JsonGenerator) g = json_generator_new();
  json_generator_set_pretty(g, TRUE);
  json_generator_set_indent(g, 2);
  json_generator_set_root(g, n);
  g_autofree char *s = json_generator_to_data(g, NULL);
  *json_out = strdup(s);
  return 0;
}

static const char *annotation(JsonObject *ann, const char *key) {
  if (!ann || !json_object_has_member(ann, key))
    return NULL;
  JsonNode *n = json_object_get_member(ann, key);
  return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
             ? json_node_get_string(n)
             : NULL;
}

static gboolean size_annotation(JsonObject *ann, const char *key, guint max, guint *out,
                                GError **error) {
  const char *v = annotation(ann, key);
  if (!v)
    return TRUE;
  guint64 n = 0;
  g_autoptr(GError) pe = NULL;
  if (!g_ascii_string_to_unsigned(v, 10, 1, max, &n, &pe)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "annotation %s: '%s' is not a number in 1..%u",
                key, v, max);
    return FALSE;
  }
  *out = (guint)n;
  return TRUE;
}

/* Whether the network namespace at `path` has an interface other than lo
 * with an address. Entered from this thread and left again. */
static gboolean netns_configured(const char *path, gboolean *out, GError **error) {
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    g_set_error(error, KV_ERROR, errno == ENOENT ? KATAVM_E_NOT_FOUND : KATAVM_E_IO,
                "network namespace %s: %s", path, g_strerror(errno));
    return FALSE;
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0 || setns(target, CLONE_NEWNET) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "%s is not a network namespace: %s", path,
                g_strerror(errno));
    if (self >= 0)
      close(self);
    close(target);
    return FALSE;
  }
  struct ifaddrs *ifa = NULL;
  int rc = getifaddrs(&ifa);
  int saved = errno;
  if (setns(self, CLONE_NEWNET) < 0)
    g_error("cannot return to this thread's network namespace: %s", g_strerror(errno));
  close(self);
  close(target);
  if (rc < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "interfaces of %s: %s", path, g_strerror(saved));
    return FALSE;
  }
  *out = FALSE;
  for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
    if (i->ifa_addr && !(i->ifa_flags & IFF_LOOPBACK) &&
        (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
      *out = TRUE;
  freeifaddrs(ifa);
  return TRUE;
}

static gboolean read_netns(JsonObject *spec, katavm_bundle_info *bi, GError **error) {
  JsonObject *linux_ =
      json_object_has_member(spec, "linux") ? json_object_get_object_member(spec, "linux") : NULL;
  JsonArray *ns = linux_ && json_object_has_member(linux_, "namespaces")
                      ? json_object_get_array_member(linux_, "namespaces")
                      : NULL;
  for (guint i = 0; ns && i < json_array_get_length(ns); i++) {
    JsonObject *o = json_array_get_object_element(ns, i);
    if (!o || g_strcmp0(json_object_get_string_member_with_default(o, "type", NULL), "network"))
      continue;
    const char *path = json_object_get_string_member_with_default(o, "path", NULL);
    if (!path || !*path)
      return TRUE; /* a new, empty namespace: no network */
    if (!g_path_is_absolute(path)) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "spec: linux.namespaces[%u].path '%s' must be absolute", i, path);
      return FALSE;
    }
    gboolean configured = FALSE;
    if (!netns_configured(path, &configured, error))
      return FALSE;
    bi->netns = strdup(path);
    bi->netns_configured = configured;
    return TRUE;
  }
  return TRUE;
}

/* linux.resources: CPUs from quota/period, memory from the limit. */
static void read_resources(JsonObject *spec, katavm_bundle_info *bi) {
  g_autoptr(GError) e = NULL;
  g_autoptr(KvOciSpec) s = kv_oci_check(spec, &e);
  if (!s)
    return; /* katavm_container_add reports what is malformed */
  const KvOciResources *r = &s->resources;
  if (!bi->vcpus && r->cpu_quota > 0 && r->cpu_period > 0)
    bi->vcpus = (guint)MIN((r->cpu_quota + r->cpu_period - 1) / r->cpu_period, 1024);
  if (!bi->memory_mib && r->memory_limit > 0)
    bi->memory_mib = (guint)MIN((r->memory_limit + (1 << 20) - 1) >> 20, G_MAXUINT);
}

int katavm_bundle_info_read(const char *bundle, katavm_bundle_info *info, katavm_error **err) {
  if (!bundle || !info)
    return kv_error_set(err, KATAVM_E_INVALID, "bundle and info must not be NULL");
  int rc = kv_abi_check_out(KV_ABI_BUNDLE_INFO, info, err);
  if (rc < 0)
    return rc;
  g_autoptr(GError) e = NULL;
  g_autoptr(JsonObject) spec = kv_oci_read(bundle, &e);
  if (!spec)
    return kv_error_propagate(err, e);
  JsonObject *ann = NULL;
  if (json_object_has_member(spec, "annotations")) {
    JsonNode *n = json_object_get_member(spec, "annotations");
    if (!JSON_NODE_HOLDS_OBJECT(n))
      return kv_error_set(err, KATAVM_E_INVALID, "spec: annotations must be an object");
    ann = json_node_get_object(n);
  }
  katavm_bundle_info bi = {.struct_size = sizeof bi, .role = KATAVM_ROLE_SANDBOX, .trusted = -1};
  const char *type = annotation(ann, A_CRIO_TYPE);
  if (!type)
    type = annotation(ann, A_CRI_TYPE);
  if (type && !strcmp(type, "container")) {
    const char *sid = annotation(ann, A_CRIO_SANDBOX);
    if (!sid)
      sid = annotation(ann, A_CRI_SANDBOX);
    if (!sid || !*sid)
      return kv_error_set(err, KATAVM_E_INVALID,
                          "annotation %s=container without %s or %s: which pod does the "
                          "container belong to?",
                          annotation(ann, A_CRIO_TYPE) ? A_CRIO_TYPE : A_CRI_TYPE, A_CRIO_SANDBOX,
                          A_CRI_SANDBOX);
    if (!kv_id_valid(sid, "sandbox id (annotation)", &e))
      return kv_error_propagate(err, e);
    bi.role = KATAVM_ROLE_MEMBER;
    bi.sandbox_id = strdup(sid);
  } else if (type && strcmp(type, "sandbox")) {
    return kv_error_set(err, KATAVM_E_INVALID,
                        "annotation container type '%s' is neither 'sandbox' nor 'container'",
                        type);
  }
  const char *t = annotation(ann, A_CRIO_TRUSTED);
  if (t)
    bi.trusted = !g_ascii_strcasecmp(t, "true");
  const char *u = annotation(ann, A_CRI_UNTRUSTED);
  if (u && !g_ascii_strcasecmp(u, "true"))
    bi.trusted = 0;
  bi.vcpus_annotated = annotation(ann, A_CPUS) != NULL;
  bi.memory_annotated = annotation(ann, A_MEMORY) != NULL;
  if (!size_annotation(ann, A_CPUS, 1024, &bi.vcpus, &e) ||
      !size_annotation(ann, A_MEMORY, 1024 * 1024, &bi.memory_mib, &e) ||
      !read_netns(spec, &bi, &e)) {
    katavm_bundle_info_clear(&bi);
    return kv_error_propagate(err, e);
  }
  read_resources(spec, &bi);
  g_autoptr(JsonObject) none = json_object_new();
  g_autoptr(JsonNode) an = json_node_init_object(json_node_alloc(), ann ? ann : none);
  g_autofree char *atext = json_to_string(an, FALSE);
  bi.annotations = strdup(atext);
  kv_abi_copy_out(KV_ABI_BUNDLE_INFO, info, &bi, sizeof bi);
  return 0;
}

void katavm_bundle_info_clear(katavm_bundle_info *info) {
  if (!info || info->struct_size < sizeof(size_t))
    return;
  free(info->sandbox_id);
  free(info->netns);
  info->sandbox_id = NULL;
  info->netns = NULL;
  if (info->struct_size >= offsetof(katavm_bundle_info, annotations) + sizeof(char *)) {
    free(info->annotations);
    info->annotations = NULL;
  }
}
