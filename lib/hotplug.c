/* lib/hotplug.c: katavm_hotplug, the client side: argument checks that
 * need no sandbox, then one "hotplug" request to the shim, which drives
 * libvirt and the agent and rolls back on failure. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi.h"
#include "sandbox-internal.h"

/* Hotplug can wait for the guest to online memory or find a device. */
#define HOTPLUG_TIMEOUT_MS 120000

/* Directories whose files are the host's own, never a guest's disk. */
static const char *const system_dirs[] = {"/etc",   "/usr",  "/bin",  "/sbin", "/lib", "/lib32",
                                          "/lib64", "/boot", "/proc", "/sys",  "/run", NULL};

/* What a disk given for attaching must be (docs/platform.md, "Disks"): a
 * regular file or a block device. Read-write additionally: not a file of
 * the host's system directories (/etc/passwd is no disk), a non-empty image
 * whose size is a multiple of 512 bytes (a sector), and a block device
 * nobody has mounted or opened exclusively. Read-only attaches skip those
 * checks: the guest cannot change the file. */
static gboolean disk_check(const char *path, gboolean readonly, GError **error) {
  g_autofree char *real = realpath(path, NULL);
  struct stat st;
  if (!real || stat(real, &st) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "disk %s: %s", path, g_strerror(errno));
    return FALSE;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "disk %s is neither a regular image file nor a block device", path);
    return FALSE;
  }
  if (readonly)
    return TRUE;
  for (const char *const *d = system_dirs; *d; d++) {
    size_t n = strlen(*d);
    if (!strncmp(real, *d, n) && real[n] == '/') {
      g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                  "disk %s is a host system file (%s is under %s): refusing to attach it "
                  "read-write; attach it read-only if that is meant",
                  path, real, *d);
      return FALSE;
    }
  }
  if (S_ISREG(st.st_mode) && (st.st_size == 0 || st.st_size % 512 != 0)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "disk %s is %lld bytes, not a whole number of 512-byte sectors: not a disk "
                "image; refusing to attach it read-write",
                path, (long long)st.st_size);
    return FALSE;
  }
  if (S_ISBLK(st.st_mode)) {
    /* O_EXCL on a block device fails with EBUSY while it is mounted or
     * held (LVM, md, another VM). */
    int fd = open(real, O_RDONLY | O_EXCL | O_CLOEXEC);
    if (fd < 0 && errno == EBUSY) {
      g_set_error(error, KV_ERROR, KATAVM_E_STATE,
                  "disk %s is in use on the host (mounted or held): refusing to attach it "
                  "read-write",
                  path);
      return FALSE;
    }
    if (fd >= 0)
      close(fd);
  }
  return TRUE;
}

static const char *kind_name(katavm_hotplug_kind k) {
  switch (k) {
  case KATAVM_HOTPLUG_CPUS:
    return KV_HOTPLUG_CPUS;
  case KATAVM_HOTPLUG_MEMORY:
    return KV_HOTPLUG_MEMORY;
  case KATAVM_HOTPLUG_NIC_ADD:
    return KV_HOTPLUG_NIC_ADD;
  case KATAVM_HOTPLUG_NIC_REMOVE:
    return KV_HOTPLUG_NIC_REMOVE;
  case KATAVM_HOTPLUG_DISK_ADD:
    return KV_HOTPLUG_DISK_ADD;
  case KATAVM_HOTPLUG_DISK_REMOVE:
    return KV_HOTPLUG_DISK_REMOVE;
  default:
    return NULL;
  }
}

int katavm_hotplug(katavm_sandbox *sb, const katavm_hotplug_request *req, char **result_json,
                   katavm_error **err) {
  if (!sb || !req)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and request must not be NULL");
  katavm_hotplug_request req_copy;
  int abi_rc = kv_abi_copy_in(KV_ABI_HOTPLUG_REQUEST, req, &req_copy, sizeof req_copy, err);
  if (abi_rc < 0)
    return abi_rc;
  req = &req_copy;
  const char *kind = kind_name(req->kind);
  if (!kind)
    return kv_error_set(err, KATAVM_E_INVALID, "unknown hotplug kind %d", (int)req->kind);
  KvHotplugParams o = {.kind = (char *)kind};
  switch (req->kind) {
  case KATAVM_HOTPLUG_CPUS:
    if (req->cpus < 1)
      return kv_error_set(err, KATAVM_E_INVALID, "cpus must be at least 1");
    o.cpus = req->cpus;
    break;
  case KATAVM_HOTPLUG_MEMORY: {
    const char *op = req->memory_op == KATAVM_MEMORY_ADD      ? KV_MEMORY_ADD
                     : req->memory_op == KATAVM_MEMORY_REMOVE ? KV_MEMORY_REMOVE
                     : req->memory_op == KATAVM_MEMORY_SET    ? KV_MEMORY_SET
                                                              : NULL;
    if (!op)
      return kv_error_set(err, KATAVM_E_INVALID, "memory_op must be add, remove or set");
    if (req->memory_mib % 2)
      return kv_error_set(err, KATAVM_E_INVALID,
                          "memory %u MiB is not a multiple of the 2 MiB block size",
                          req->memory_mib);
    o.op = (char *)op;
    o.mib = req->memory_mib;
    break;
  }
  case KATAVM_HOTPLUG_NIC_ADD:
  case KATAVM_HOTPLUG_NIC_REMOVE:
    if (req->kind == KATAVM_HOTPLUG_NIC_ADD && !req->tap && !req->netns_iface)
      return kv_error_set(err, KATAVM_E_INVALID,
                          "nic add needs a tap device or an interface of the netns");
    if (req->kind == KATAVM_HOTPLUG_NIC_ADD && req->netns_iface &&
        (req->tap || req->mac || req->mtu || req->addresses || req->gateway))
      return kv_error_set(err, KATAVM_E_INVALID,
                          "nic add of netns interface '%s' takes its MAC, MTU and addresses "
                          "from it: no tap, mac, mtu, addresses or gateway",
                          req->netns_iface);
    o.netns_iface = (char *)req->netns_iface;
    if (req->kind == KATAVM_HOTPLUG_NIC_REMOVE && !req->mac)
      return kv_error_set(err, KATAVM_E_INVALID, "nic remove needs the MAC");
    o.tap = (char *)req->tap;
    o.mac = (char *)req->mac;
    o.mtu = req->mtu;
    o.addresses = (char **)req->addresses;
    o.gateway = (char *)req->gateway;
    break;
  case KATAVM_HOTPLUG_DISK_ADD:
  case KATAVM_HOTPLUG_DISK_REMOVE:
    if (!req->path || !g_path_is_absolute(req->path))
      return kv_error_set(err, KATAVM_E_INVALID, "disk path '%s' must be absolute",
                          req->path ? req->path : "(null)");
    if (!!req->container != !!req->mount_path)
      return kv_error_set(err, KATAVM_E_INVALID, "a disk mount needs both a container and a path");
    if (req->mount_path && !g_path_is_absolute(req->mount_path))
      return kv_error_set(err, KATAVM_E_INVALID, "mount path '%s' must be absolute",
                          req->mount_path);
    if (req->container && !kv_id_validate(req->container, NULL))
      return kv_error_set(err, KATAVM_E_INVALID, "container id '%s' is invalid", req->container);
    if (req->kind == KATAVM_HOTPLUG_DISK_ADD) {
      g_autoptr(GError) de = NULL;
      if (!disk_check(req->path, req->readonly != 0, &de))
        return kv_error_propagate(err, de);
    }
    o.path = (char *)req->path;
    o.readonly = req->readonly != 0;
    o.container_id = (char *)req->container;
    o.mount_path = (char *)req->mount_path;
    break;
  }
  g_autoptr(GError) e = NULL;
  KvHotplugResult r;
  if (!kv_sandbox_rpc_timeout(sb, &kv_m_shim_hotplug, &o, &r, HOTPLUG_TIMEOUT_MS, &e))
    return kv_error_propagate(err, e);
  if (result_json) {
    g_autoptr(JsonObject) j = kv_msg_encode(kv_m_shim_hotplug.result, &r);
    g_autofree char *s = kv_json_to_string(j);
    *result_json = strdup(s);
  }
  kv_msg_clear(kv_m_shim_hotplug.result, &r);
  return 0;
}
