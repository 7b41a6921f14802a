/* lib/shim/hotplug.c: live changes to a running sandbox. Each request is a
 * short sequence: host side through lib/vmm (libvirt), then the agent makes
 * the guest use it (online CPUs, see memory, configure the NIC, find and
 * mount the disk); the reply goes out only once the guest reports the
 * resource usable. A failed step undoes the earlier ones. One hotplug runs
 * at a time per sandbox. */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

#define AGENT_HOTPLUG_TIMEOUT_MS 60000
#define MEMORY_SETTLE_TIMEOUT_US (90 * G_USEC_PER_SEC)
#define MEM_BLOCK_MIB 2

typedef struct {
  char *mac;
  char *tap;
  char *ifname; /* the guest's name for it */
} Nic;

typedef struct {
  char *path;
  char *serial;
  char *device;
} Disk;

static void nic_free(gpointer p) {
  Nic *n = p;
  g_free(n->mac);
  g_free(n->tap);
  g_free(n->ifname);
  g_free(n);
}

static void disk_free(gpointer p) {
  Disk *d = p;
  g_free(d->path);
  g_free(d->serial);
  g_free(d->device);
  g_free(d);
}

void hotplug_init(Shim *s) {
  s->dimm_sizes = g_array_new(FALSE, FALSE, sizeof(guint));
  s->nics = g_ptr_array_new_with_free_func(nic_free);
  s->disks = g_ptr_array_new_with_free_func(disk_free);
  s->cpus_online = s->cfg.vcpus;
  s->mem_requested_mib = 0;
}

/* Does this host's QEMU have the virtio-mem device? (No libvirt API tells
 * QEMU's device list; asking QEMU takes about 30 ms, and only sandboxes
 * that reserve memory for hotplug ask.) */
static gboolean qemu_has_virtio_mem(void) {
  g_autofree char *qemu = g_find_program_in_path("qemu-system-x86_64");
  if (!qemu)
    return FALSE;
  const char *argv[] = {qemu,      "-nodefaults",         "-machine", "none",
                        "-device", "virtio-mem-pci,help", NULL};
  g_autofree char *out = NULL, *err = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, NULL, NULL))
    return FALSE;
  return (out && strstr(out, "requested-size")) || (err && strstr(err, "requested-size"));
}

void hotplug_choose_memory(Shim *s) {
  const char *mode = s->cfg.memory_hotplug ? s->cfg.memory_hotplug : "auto";
  if (s->cfg.max_memory_mib <= s->cfg.memory_mib)
    s->memory_dimm = FALSE;
  else if (!strcmp(mode, "dimm"))
    s->memory_dimm = TRUE;
  else if (!strcmp(mode, "virtio-mem"))
    s->memory_dimm = FALSE;
  else
    s->memory_dimm = !qemu_has_virtio_mem();
}

void hotplug_describe(Shim *s, JsonObject *o) {
  json_object_set_string_member(o, "memory_hotplug", s->memory_dimm ? "dimm" : "virtio-mem");
  JsonArray *dimms = json_array_new();
  for (guint i = 0; i < s->dimm_sizes->len; i++)
    json_array_add_int_element(dimms, g_array_index(s->dimm_sizes, guint, i));
  json_object_set_array_member(o, "dimms_mib", dimms);
  json_object_set_int_member(o, "cpus_online", s->cpus_online);
  json_object_set_int_member(o, "memory_hotplugged_mib", s->mem_requested_mib);
  JsonArray *nics = json_array_new();
  for (guint i = 0; i < s->nics->len; i++) {
    Nic *n = s->nics->pdata[i];
    JsonObject *j = json_object_new();
    json_object_set_string_member(j, "mac", n->mac);
    json_object_set_string_member(j, "tap", n->tap);
    if (n->ifname)
      json_object_set_string_member(j, "ifname", n->ifname);
    json_array_add_object_element(nics, j);
  }
  json_object_set_array_member(o, "nics", nics);
  JsonArray *disks = json_array_new();
  for (guint i = 0; i < s->disks->len; i++) {
    Disk *d = s->disks->pdata[i];
    JsonObject *j = json_object_new();
    json_object_set_string_member(j, "path", d->path);
    json_object_set_string_member(j, "serial", d->serial);
    if (d->device)
      json_object_set_string_member(j, "device", d->device);
    json_array_add_object_element(disks, j);
  }
  json_object_set_array_member(o, "disks", disks);
}

void hotplug_restore(Shim *s, JsonObject *st) {
  s->memory_dimm = !g_strcmp0(kv_json_str(st, "memory_hotplug", ""), "dimm");
  JsonNode *dn = json_object_get_member(st, "dimms_mib");
  JsonArray *da = dn && JSON_NODE_HOLDS_ARRAY(dn) ? json_node_get_array(dn) : NULL;
  for (guint i = 0; da && i < json_array_get_length(da); i++) {
    JsonNode *e = json_array_get_element(da, i);
    if (JSON_NODE_HOLDS_VALUE(e) && json_node_get_value_type(e) == G_TYPE_INT64 &&
        json_node_get_int(e) > 0 && json_node_get_int(e) <= s->cfg.max_memory_mib) {
      guint v = (guint)json_node_get_int(e);
      g_array_append_val(s->dimm_sizes, v);
    }
  }
  gint64 cpus = kv_json_int(st, "cpus_online", 0);
  if (cpus >= 1 && cpus <= s->cfg.max_vcpus)
    s->cpus_online = (guint)cpus;
  gint64 mem = kv_json_int(st, "memory_hotplugged_mib", 0);
  if (mem >= 0 && mem <= (gint64)s->cfg.max_memory_mib - s->cfg.memory_mib)
    s->mem_requested_mib = (guint)mem;
  JsonNode *n = json_object_get_member(st, "nics");
  JsonArray *a = n && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
  for (guint i = 0; a && i < json_array_get_length(a); i++) {
    JsonNode *e = json_array_get_element(a, i);
    JsonObject *o = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    const char *mac = kv_json_str(o, "mac", NULL), *tap = kv_json_str(o, "tap", NULL);
    if (mac && tap) {
      Nic *nic = g_new0(Nic, 1);
      nic->mac = g_strdup(mac);
      nic->tap = g_strdup(tap);
      nic->ifname = g_strdup(kv_json_str(o, "ifname", NULL));
      g_ptr_array_add(s->nics, nic);
    }
  }
  n = json_object_get_member(st, "disks");
  a = n && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
  for (guint i = 0; a && i < json_array_get_length(a); i++) {
    JsonNode *e = json_array_get_element(a, i);
    JsonObject *o = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    const char *path = kv_json_str(o, "path", NULL), *serial = kv_json_str(o, "serial", NULL);
    if (path && serial) {
      Disk *d = g_new0(Disk, 1);
      d->path = g_strdup(path);
      d->serial = g_strdup(serial);
      d->device = g_strdup(kv_json_str(o, "device", NULL));
      g_ptr_array_add(s->disks, d);
    }
  }
}

static JsonObject *agent_call(Shim *s, const char *method, JsonObject *params, GError **error) {
  if (!s->agent || !kv_conn_is_ready(s->agent)) {
    g_set_error(error, KV_ERROR, KATAVM_E_AGENT, "the guest agent is not connected");
    return NULL;
  }
  g_autoptr(GError) e = NULL;
  JsonObject *r = kv_conn_call_sync(s->agent, method, params, AGENT_HOTPLUG_TIMEOUT_MS, &e);
  if (!r) {
    int code = kv_remote_error_code(e);
    g_set_error(error, KV_ERROR,
                (code < 0 && code >= KATAVM_E_CORRUPT)                       ? code
                : g_error_matches(e, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT) ? KATAVM_E_TIMEOUT
                                                                             : KATAVM_E_AGENT,
                "guest: %s", kv_remote_error_message(e));
  }
  return r;
}

static gint64 guest_mem_kib(Shim *s, GError **error) {
  g_autoptr(JsonObject) r = agent_call(s, KV_M_AGENT_CHECK, NULL, error);
  return r ? kv_json_int(r, "mem_total_kib", -1) : -1;
}

/* ---- CPUs ---- */

static JsonObject *do_cpus(Shim *s, JsonObject *req, GError **error) {
  gint64 want = kv_json_int(req, "cpus", 0);
  if (want < 1 || want > s->cfg.max_vcpus) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "%" G_GINT64_FORMAT " vCPUs requested; this sandbox allows 1..%u "
                "(max vCPUs given at create)",
                want, s->cfg.max_vcpus);
    return NULL;
  }
  guint plugged = kv_vmm_get_vcpus(s->vmm, s->p.domain, NULL);
  /* Grow by plugging; shrink only by offlining in the guest: vCPU unplug
   * through libvirt crashed QEMU 7.2 under TCG (double free, see
   * VM-NOTES.md), so plugged vCPUs stay plugged. */
  if ((guint)want > plugged && !kv_vmm_set_vcpus(s->vmm, s->p.domain, (guint)want, error))
    return NULL;
  g_autoptr(JsonObject) p = json_object_new();
  json_object_set_int_member(p, "online", want);
  JsonObject *r = agent_call(s, KV_M_CPUS_SET, p, error);
  if (!r)
    return NULL; /* plugged-but-offline vCPUs are harmless: no rollback */
  s->cpus_online = (guint)kv_json_int(r, "cpus_online", want);
  if (s->cpus_online != (guint)want) {
    g_set_error(error, KV_ERROR, KATAVM_E_AGENT,
                "the guest reports %u CPUs online, not %" G_GINT64_FORMAT, s->cpus_online, want);
    json_object_unref(r);
    return NULL;
  }
  return r;
}

/* ---- memory ---- */

static char *dimm_alias(guint index) {
  return g_strdup_printf("ua-katavm-dimm%u", index);
}

/* DIMMs go in whole: growing plugs one DIMM of the difference; shrinking
 * unplugs the most recent DIMMs, which must add up to the difference. */
static gboolean dimm_resize(Shim *s, guint from, guint to, GError **error) {
  if (to > from) {
    if (s->dimm_sizes->len >= 8) {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "all 8 DIMM slots are in use; remove memory first");
      return FALSE;
    }
    g_autofree char *alias = dimm_alias(s->dimm_sizes->len);
    if (!kv_vmm_attach_dimm(s->vmm, s->p.domain, to - from, alias, error))
      return FALSE;
    guint sz = to - from;
    g_array_append_val(s->dimm_sizes, sz);
    return TRUE;
  }
  guint sum = 0, n = 0;
  while (sum < from - to && n < s->dimm_sizes->len)
    sum += g_array_index(s->dimm_sizes, guint, s->dimm_sizes->len - 1 - n++);
  if (sum != from - to) {
    GString *sizes = g_string_new(NULL);
    for (guint i = s->dimm_sizes->len; i > 0; i--)
      g_string_append_printf(sizes, "%s%u", sizes->len ? ", " : "",
                             g_array_index(s->dimm_sizes, guint, i - 1));
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "DIMM memory is removed in whole DIMMs, newest first (%s MiB)", sizes->str);
    g_string_free(sizes, TRUE);
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    g_autofree char *alias = dimm_alias(s->dimm_sizes->len - 1);
    if (!kv_vmm_detach_dimm(s->vmm, s->p.domain, alias, error))
      return FALSE;
    g_array_set_size(s->dimm_sizes, s->dimm_sizes->len - 1);
  }
  return TRUE;
}

static JsonObject *do_memory(Shim *s, JsonObject *req, GError **error) {
  const char *op = kv_json_str(req, "op", "");
  gint64 mib = kv_json_int(req, "mib", -1);
  guint boot = s->cfg.memory_mib, max = s->cfg.max_memory_mib;
  guint block = s->memory_dimm ? KV_VMM_DIMM_BLOCK_MIB : MEM_BLOCK_MIB;
  if (mib < 0 || mib % block) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "memory %" G_GINT64_FORMAT " MiB is not a multiple of the %u MiB block size%s", mib,
                block, s->memory_dimm ? " (DIMM hotplug)" : "");
    return NULL;
  }
  if (max <= boot) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "this sandbox was created without --max-memory above its %u MiB", boot);
    return NULL;
  }
  gint64 total = boot + s->mem_requested_mib;
  gint64 want = !strcmp(op, "+")   ? total + mib
                : !strcmp(op, "-") ? total - mib
                : !strcmp(op, "=") ? mib
                                   : -1;
  if (want < 0 && strcmp(op, "+") && strcmp(op, "-") && strcmp(op, "=")) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "memory op must be +, - or =");
    return NULL;
  }
  if (want < boot || want > max) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "memory %" G_GINT64_FORMAT
                " MiB is outside %u..%u MiB (boot .. max given at create)",
                want, boot, max);
    return NULL;
  }
  guint old_req = s->mem_requested_mib, new_req = (guint)(want - boot);
  gint64 before = guest_mem_kib(s, error);
  if (before < 0)
    return NULL;
  guint dimms_before = s->dimm_sizes->len;
  if (!(s->memory_dimm ? dimm_resize(s, old_req, new_req, error)
                       : kv_vmm_set_memory_requested(s->vmm, s->p.domain, new_req, error)))
    return NULL;
  /* Usable = the guest's MemTotal moved by the change (virtio-mem blocks are
   * onlined by the guest kernel: memhp_default_state=online). */
  gint64 expect = before + ((gint64)new_req - (gint64)old_req) * 1024;
  gint64 deadline = g_get_monotonic_time() + MEMORY_SETTLE_TIMEOUT_US;
  gint64 now_kib = before;
  for (;;) {
    now_kib = guest_mem_kib(s, error);
    if (now_kib < 0)
      break;
    /* Within 8 MiB: the kernel keeps some of each block for its struct pages. */
    if (ABS(now_kib - expect) <= 8 * 1024 + ABS(expect - before) / 32)
      break;
    if (g_get_monotonic_time() > deadline) {
      g_set_error(error, KV_ERROR, KATAVM_E_TIMEOUT,
                  "the guest did not %s the memory: MemTotal %" G_GINT64_FORMAT
                  " KiB, expected about %" G_GINT64_FORMAT " KiB",
                  new_req > old_req ? "online" : "release", now_kib, expect);
      break;
    }
    g_usleep(100000);
  }
  if (now_kib < 0 || (error && *error)) {
    g_autoptr(GError) re = NULL;
    if (s->memory_dimm
            ? (s->dimm_sizes->len != dimms_before && !dimm_resize(s, new_req, old_req, &re))
            : !kv_vmm_set_memory_requested(s->vmm, s->p.domain, old_req, &re))
      shim_log("memory rollback: %s", re ? re->message : "?");
    return NULL;
  }
  s->mem_requested_mib = new_req;
  JsonObject *r = json_object_new();
  json_object_set_int_member(r, "mem_total_kib", now_kib);
  json_object_set_int_member(r, "memory_mib", want);
  return r;
}

/* ---- NICs ---- */

static gboolean tap_up(const char *tap, GError **error) {
  /* libvirt leaves an unmanaged tap down (VM-NOTES). */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr = {0};
  g_strlcpy(ifr.ifr_name, tap, sizeof(ifr.ifr_name));
  gboolean ok = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags |= IFF_UP;
    ok = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  if (!ok)
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "cannot bring tap %s up: %s", tap, g_strerror(errno));
  if (fd >= 0)
    close(fd);
  return ok;
}

static Nic *find_nic(Shim *s, const char *mac, guint *idx) {
  for (guint i = 0; i < s->nics->len; i++) {
    Nic *n = s->nics->pdata[i];
    if (!g_ascii_strcasecmp(n->mac, mac)) {
      if (idx)
        *idx = i;
      return n;
    }
  }
  return NULL;
}

static JsonObject *do_nic_add(Shim *s, JsonObject *req, GError **error) {
  const char *tap = kv_json_str(req, "tap", NULL);
  const char *mac_in = kv_json_str(req, "mac", NULL);
  if (!tap || !*tap || strlen(tap) >= IFNAMSIZ || if_nametoindex(tap) == 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "tap device '%s' does not exist",
                tap ? tap : "");
    return NULL;
  }
  g_autofree char *mac =
      mac_in ? g_ascii_strdown(mac_in, -1)
             : g_strdup_printf("52:54:00:%02x:%02x:%02x", g_random_int_range(0, 256),
                               g_random_int_range(0, 256), g_random_int_range(0, 256));
  if (find_nic(s, mac, NULL)) {
    g_set_error(error, KV_ERROR, KATAVM_E_EXISTS, "a NIC with MAC %s is already attached", mac);
    return NULL;
  }
  gint64 mtu = kv_json_int(req, "mtu", 1500);
  if (mtu < 68 || mtu > 65535) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "MTU %" G_GINT64_FORMAT " is out of range", mtu);
    return NULL;
  }
  if (!kv_vmm_attach_nic(s->vmm, s->p.domain, tap, mac, (guint)mtu, error))
    return NULL;
  g_autoptr(JsonObject) p = json_object_new();
  json_object_set_string_member(p, "mac", mac);
  json_object_set_int_member(p, "mtu", mtu);
  if (json_object_has_member(req, "addresses"))
    json_object_set_member(p, "addresses",
                           json_node_copy(json_object_get_member(req, "addresses")));
  if (kv_json_str(req, "gateway", NULL))
    json_object_set_string_member(p, "gateway", kv_json_str(req, "gateway", NULL));
  JsonObject *r = NULL;
  if (tap_up(tap, error))
    r = agent_call(s, KV_M_NIC_CONFIG, p, error);
  if (!r) {
    g_autoptr(GError) re = NULL;
    if (!kv_vmm_detach_nic(s->vmm, s->p.domain, mac, &re))
      shim_log("NIC rollback: %s", re->message);
    return NULL;
  }
  Nic *n = g_new0(Nic, 1);
  n->mac = g_strdup(mac);
  n->tap = g_strdup(tap);
  n->ifname = g_strdup(kv_json_str(r, "ifname", NULL));
  g_ptr_array_add(s->nics, n);
  json_object_set_string_member(r, "mac", mac);
  return r;
}

static JsonObject *do_nic_remove(Shim *s, JsonObject *req, GError **error) {
  const char *mac = kv_json_str(req, "mac", "");
  guint idx;
  if (!find_nic(s, mac, &idx)) {
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "no NIC with MAC '%s' is attached", mac);
    return NULL;
  }
  g_autoptr(JsonObject) p = json_object_new();
  json_object_set_string_member(p, "mac", mac);
  g_autoptr(GError) ae = NULL;
  g_autoptr(JsonObject) ar = agent_call(s, KV_M_NIC_REMOVE, p, &ae);
  if (!ar)
    shim_log("guest could not release NIC %s (detaching anyway): %s", mac, ae->message);
  if (!kv_vmm_detach_nic(s->vmm, s->p.domain, mac, error))
    return NULL;
  g_ptr_array_remove_index(s->nics, idx);
  return json_object_new();
}

/* ---- disks ---- */

static char *disk_serial(const char *path) {
  g_autofree char *h = g_compute_checksum_for_string(G_CHECKSUM_SHA256, path, -1);
  return g_strdup_printf("kv%.16s", h);
}

static Disk *find_disk(Shim *s, const char *path, guint *idx) {
  for (guint i = 0; i < s->disks->len; i++) {
    Disk *d = s->disks->pdata[i];
    if (!strcmp(d->path, path)) {
      if (idx)
        *idx = i;
      return d;
    }
  }
  return NULL;
}

static JsonObject *do_disk_add(Shim *s, JsonObject *req, GError **error) {
  const char *path = kv_json_str(req, "path", "");
  struct stat st;
  if (!g_path_is_absolute(path) || stat(path, &st) < 0 ||
      !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND,
                "disk '%s' does not exist or is not a file or block device", path);
    return NULL;
  }
  if (find_disk(s, path, NULL)) {
    g_set_error(error, KV_ERROR, KATAVM_E_EXISTS, "disk %s is already attached", path);
    return NULL;
  }
  const char *container = kv_json_str(req, "container", NULL);
  if (container && !g_hash_table_contains(s->mounts, container)) {
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "no container '%s' in this sandbox",
                container);
    return NULL;
  }
  g_autofree char *serial = disk_serial(path);
  gboolean ro = kv_json_bool(req, "readonly", FALSE);
  g_autofree char *target = NULL;
  if (!kv_vmm_attach_disk(s->vmm, s->p.domain, path, serial, ro, &target, error))
    return NULL;
  g_autoptr(JsonObject) p = json_object_new();
  json_object_set_string_member(p, "serial", serial);
  json_object_set_boolean_member(p, "readonly", ro);
  if (container) {
    json_object_set_string_member(p, "container", container);
    json_object_set_string_member(p, "path", kv_json_str(req, "mount_path", "/mnt"));
  }
  JsonObject *r = agent_call(s, KV_M_DISK_ADD, p, error);
  if (!r) {
    g_autoptr(GError) re = NULL;
    if (!kv_vmm_detach_disk(s->vmm, s->p.domain, serial, &re))
      shim_log("disk rollback: %s", re->message);
    return NULL;
  }
  Disk *d = g_new0(Disk, 1);
  d->path = g_strdup(path);
  d->serial = g_strdup(serial);
  d->device = g_strdup(kv_json_str(r, "device", NULL));
  g_ptr_array_add(s->disks, d);
  json_object_set_string_member(r, "serial", serial);
  return r;
}

static JsonObject *do_disk_remove(Shim *s, JsonObject *req, GError **error) {
  const char *path = kv_json_str(req, "path", "");
  guint idx;
  Disk *d = find_disk(s, path, &idx);
  if (!d) {
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "disk '%s' is not attached", path);
    return NULL;
  }
  g_autoptr(JsonObject) p = json_object_new();
  json_object_set_string_member(p, "serial", d->serial);
  /* Unmounted first, so the guest has flushed it before it goes. */
  g_autoptr(JsonObject) ar = agent_call(s, KV_M_DISK_REMOVE, p, error);
  if (!ar)
    return NULL;
  if (!kv_vmm_detach_disk(s->vmm, s->p.domain, d->serial, error))
    return NULL;
  g_ptr_array_remove_index(s->disks, idx);
  return json_object_new();
}

void hotplug_request(Shim *s, KvConn *client, guint32 id, JsonObject *params) {
  g_autoptr(GError) e = NULL;
  JsonObject *r = NULL;
  const char *kind = kv_json_str(params, "kind", "");
  if (g_strcmp0(s->state, "running") || s->powering_off) {
    kv_conn_reply_error(client, id, KATAVM_E_STATE, "sandbox is not running");
    return;
  }
  if (s->hotplug_busy) {
    kv_conn_reply_error(client, id, KATAVM_E_STATE, "another hotplug is in progress");
    return;
  }
  s->hotplug_busy = TRUE;
  gint64 t0 = g_get_monotonic_time();
  if (!strcmp(kind, "cpus"))
    r = do_cpus(s, params, &e);
  else if (!strcmp(kind, "memory"))
    r = do_memory(s, params, &e);
  else if (!strcmp(kind, "nic_add"))
    r = do_nic_add(s, params, &e);
  else if (!strcmp(kind, "nic_remove"))
    r = do_nic_remove(s, params, &e);
  else if (!strcmp(kind, "disk_add"))
    r = do_disk_add(s, params, &e);
  else if (!strcmp(kind, "disk_remove"))
    r = do_disk_remove(s, params, &e);
  else
    g_set_error(&e, KV_ERROR, KATAVM_E_INVALID, "unknown hotplug kind '%s'", kind);
  s->hotplug_busy = FALSE;
  if (!r) {
    shim_log("hotplug %s failed: %s", kind, e->message);
    kv_conn_reply_error(client, id, kv_error_code_of(e), e->message);
  } else {
    json_object_set_int_member(r, "elapsed_us", g_get_monotonic_time() - t0);
    shim_log("hotplug %s done in %.0f ms", kind, (g_get_monotonic_time() - t0) / 1000.0);
    state_save(s);
    kv_conn_reply(client, id, r);
    json_object_unref(r);
  }
  /* Stop or destroy asked for while we were busy. */
  if (s->stop_waiters->len || s->destroy_waiters->len || s->destroy_requested)
    begin_poweroff(s);
}
