/* lib/vmm/hotplug.c: live hotplug on a running sandbox domain, the policy
 * per device kind: vCPUs, virtio-mem memory, ACPI DIMMs, virtio NICs and
 * disks.
 *
 * What works on q35 under TCG with QEMU 7.2 / libvirt 9.0, and what must be
 * avoided, is in docs/platform.md ("Hotplug on q35 under TCG"): vCPU add
 * works and vCPU removal crashes QEMU, so vCPUs only grow; memory is one
 * virtio-mem device defined at boot (xml.c) whose requested size we move;
 * NICs and disks are PCIe hotplug onto the spare root ports, and their
 * removal is asynchronous (the guest has to release the device), so detach
 * waits for libvirt's DEVICE_REMOVED event.
 *
 * The state we need (which targets are taken, which alias a MAC or serial
 * belongs to, the virtio-mem sizes) is read from the live XML each time
 * (livexml.c); caller values are checked in validate.c, and the device XML
 * is written by xml.c next to the domain XML. */
#include "vmm.h"
#include "vmm-internal.h"
#include "devwait.h"
#include "devxml.h"
#include "livexml.h"
#include "validate.h"
#include "xmlbuild.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#define vmm_conn kv_vmm_conn

/* virDomainFree resets libvirt's last error: every error below is taken
 * into a GError before the domain goes out of scope. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(virDomain, virDomainFree)

#define set_libvirt_error kv_vmm_set_libvirt_error

/* The running domain `name`, or NULL with NOT_FOUND (absent or shut off)
 * or LIBVIRT (the lookup itself failed). */
static virDomainPtr get_domain(KvVmm *vmm, const char *name, GError **error) {
  if (!vmm || !vmm_conn(vmm)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "no libvirt connection");
    return NULL;
  }
  if (!name || !*name) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "domain name is missing");
    return NULL;
  }
  virDomainPtr dom = virDomainLookupByName(vmm_conn(vmm), name);
  if (!dom) {
    virErrorPtr e = virGetLastError();
    if (e && e->code == VIR_ERR_NO_DOMAIN) {
      g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_NOT_FOUND, "no domain '%s'", name);
      virResetLastError();
    } else {
      set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot look up domain '%s'", name);
    }
    return NULL;
  }
  /* Everything here is LIVE: on a defined but stopped domain libvirt
   * would answer with a less helpful "domain is not running". */
  if (virDomainIsActive(dom) != 1) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_NOT_FOUND, "domain '%s' is not running", name);
    virResetLastError();
    virDomainFree(dom);
    return NULL;
  }
  return dom;
}

/* ---- vCPUs ---- */

guint kv_vmm_get_vcpus(KvVmm *vmm, const char *name, GError **error) {
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return 0;
  int n = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE);
  if (n < 1)
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot read the vCPU count of domain '%s'",
                      name);
  return n < 1 ? 0 : (guint)n;
}

gboolean kv_vmm_set_vcpus(KvVmm *vmm, const char *name, guint n, GError **error) {
  if (n < 1) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "vCPU count must be at least 1");
    return FALSE;
  }
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;

  int cur = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE);
  int max = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_VCPU_MAXIMUM);
  if (cur < 1 || max < 1) {
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot read the vCPU counts of domain '%s'",
                      name);
    return FALSE;
  }
  if (n > (guint)max) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "domain '%s' can have at most %d vCPUs (max_vcpus), not %u", name, max, n);
    return FALSE;
  }
  /* Growing only. Unplugging a vCPU is broken with QEMU 7.2 under TCG
   * (docs/platform.md, "Hotplug on q35 under TCG"): libvirt times out after 5 s
   * and the next hotplug crashed QEMU with "double free or corruption".
   * Callers shrink by offlining CPUs in the guest; they stay plugged. */
  if (n < (guint)cur) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "domain '%s' has %d vCPUs plugged; unplugging vCPUs is not "
                "supported (it crashes QEMU under TCG): offline them in the "
                "guest instead",
                name, cur);
    return FALSE;
  }
  if (n == (guint)cur)
    return TRUE;
  if (virDomainSetVcpusFlags(dom, n, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot plug vCPUs into domain '%s' (%d -> %u)",
                      name, cur, n);
    return FALSE;
  }
  return TRUE;
}

/* ---- memory (virtio-mem) ---- */

/* The virtio-mem device among `devices`: ours by alias, else the first one
 * (a domain not built by xml.c). NULL with NOT_FOUND when there is none. */
static KvXNode *find_virtio_mem(KvXNode *devices, const char *name, GError **error) {
  KvXNode *first = NULL;
  for (guint i = 0; i < devices->children->len; i++) {
    KvXNode *d = g_ptr_array_index(devices->children, i);
    if (!g_str_equal(d->name, "memory") || g_strcmp0(kv_xnode_attr(d, "model"), "virtio-mem") != 0)
      continue;
    if (g_strcmp0(kv_xnode_child_attr(d, "alias", "name"), KV_VMM_VIRTIO_MEM_ALIAS) == 0)
      return d;
    if (!first)
      first = d;
  }
  if (!first)
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_NOT_FOUND,
                "domain '%s' has no virtio-mem device (memory hotplug needs "
                "max_memory_mib above memory_mib at start)",
                name);
  return first;
}

/* Size element `field` ("size", "block", "requested", "current") of the
 * domain's virtio-mem device, in KiB. A missing <current> is 0: libvirt
 * leaves it out until QEMU reports a size change. */
static gboolean get_virtio_mem_kib(KvVmm *vmm, const char *name, const char *field, guint64 *kib,
                                   GError **error) {
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;
  KvXNode *devices = NULL;
  g_autoptr(KvXNode) root = kv_live_devices(dom, &devices, error);
  if (!root)
    return FALSE;
  KvXNode *mem = find_virtio_mem(devices, name, error);
  if (!mem)
    return FALSE;
  KvXNode *n = kv_xnode_child(kv_xnode_child(mem, "target"), field);
  if (!n && g_str_equal(field, "current")) {
    *kib = 0;
    return TRUE;
  }
  if (!kv_xnode_size_kib(n, kib)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                "virtio-mem device of domain '%s' has no readable <%s>", name, field);
    return FALSE;
  }
  return TRUE;
}

guint64 kv_vmm_get_memory_requested(KvVmm *vmm, const char *name, GError **error) {
  guint64 kib = 0;
  return get_virtio_mem_kib(vmm, name, "requested", &kib, error) ? kib / 1024 : 0;
}

guint64 kv_vmm_get_memory_plugged(KvVmm *vmm, const char *name, GError **error) {
  guint64 kib = 0;
  return get_virtio_mem_kib(vmm, name, "current", &kib, error) ? kib / 1024 : 0;
}

gboolean kv_vmm_set_memory_requested(KvVmm *vmm, const char *name, guint requested_mib,
                                     GError **error) {
  if (requested_mib % KV_VMM_VIRTIO_MEM_BLOCK_MIB) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "requested memory %u MiB is not a multiple of the %d MiB "
                "virtio-mem block",
                requested_mib, KV_VMM_VIRTIO_MEM_BLOCK_MIB);
    return FALSE;
  }
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;

  KvXNode *devices = NULL;
  g_autoptr(KvXNode) root = kv_live_devices(dom, &devices, error);
  if (!root)
    return FALSE;
  KvXNode *mem = find_virtio_mem(devices, name, error);
  if (!mem)
    return FALSE;
  KvXNode *target = kv_xnode_child(mem, "target");
  KvXNode *requested = kv_xnode_child(target, "requested");
  guint64 size_kib = 0, block_kib = 0;
  if (!requested || !kv_xnode_size_kib(kv_xnode_child(target, "size"), &size_kib) ||
      !kv_xnode_size_kib(kv_xnode_child(target, "block"), &block_kib) || block_kib == 0) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                "virtio-mem device of domain '%s' lacks <size>, <block> or "
                "<requested>",
                name);
    return FALSE;
  }
  guint64 want_kib = (guint64)requested_mib * 1024;
  if (want_kib > size_kib || want_kib % block_kib) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "requested memory %u MiB does not fit domain '%s''s "
                "virtio-mem region of %" G_GUINT64_FORMAT " MiB in blocks of %" G_GUINT64_FORMAT
                " KiB",
                requested_mib, name, size_kib / 1024, block_kib);
    return FALSE;
  }

  /* What `virsh update-memory-device --requested-size` does: the live
   * element as libvirt wrote it (alias, address, sizes), with only
   * <requested> changed; libvirt refuses any other difference. */
  g_autofree char *want = g_strdup_printf("%" G_GUINT64_FORMAT, want_kib);
  kv_xnode_set_text(requested, want);
  kv_xnode_set_attr(requested, "unit", "KiB");
  KvXml *x = kv_xml_new();
  kv_xnode_write(x, mem);
  g_autofree char *xml = kv_xml_finish(x, error);
  if (!xml)
    return FALSE;
  if (virDomainUpdateDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT,
                      "cannot set the requested virtio-mem size of domain "
                      "'%s' to %u MiB",
                      name, requested_mib);
    return FALSE;
  }
  return TRUE;
}

/* ---- NICs ---- */

/* The <interface> with this MAC (any case), or NULL. */
static KvXNode *find_nic(KvXNode *devices, const char *mac) {
  for (guint i = 0; i < devices->children->len; i++) {
    KvXNode *d = g_ptr_array_index(devices->children, i);
    const char *m = kv_xnode_child_attr(d, "mac", "address");
    if (g_str_equal(d->name, "interface") && m && g_ascii_strcasecmp(m, mac) == 0)
      return d;
  }
  return NULL;
}

gboolean kv_vmm_attach_nic(KvVmm *vmm, const char *name, const char *tap, const char *mac,
                           guint mtu, GError **error) {
  if (!kv_check_tap(tap, error) || !kv_check_mac(mac, error) || !kv_check_mtu(mtu, error))
    return FALSE;
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;

  KvXNode *devices = NULL;
  g_autoptr(KvXNode) root = kv_live_devices(dom, &devices, error);
  if (!root)
    return FALSE;
  /* The MAC is the NIC's identity for detach: it must be unique. */
  if (find_nic(devices, mac)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "domain '%s' already has a NIC with MAC %s", name, mac);
    return FALSE;
  }

  g_autofree char *xml = kv_nic_xml(tap, mac, mtu, error);
  if (!xml)
    return FALSE;
  if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot attach NIC %s (tap %s) to domain '%s'",
                      mac, tap, name);
    return FALSE;
  }
  return TRUE;
}

gboolean kv_vmm_attach_user_nic(KvVmm *vmm, const char *name, const char *mac,
                                const KvVmmPortForward *ports, guint n, GError **error) {
  if (!kv_check_mac(mac, error))
    return FALSE;
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;
  g_autofree char *xml = kv_user_nic_xml(mac, error);
  if (!xml)
    return FALSE;
  if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT,
                      "cannot attach the user-mode NIC %s to domain '%s'", mac, name);
    return FALSE;
  }
  if (n == 0)
    return TRUE;
  /* QEMU's netdev of the NIC is "host" + its alias. */
  KvXNode *devices = NULL;
  g_autoptr(KvXNode) root = kv_live_devices(dom, &devices, error);
  if (!root)
    return FALSE;
  KvXNode *nic = find_nic(devices, mac);
  const char *alias = nic ? kv_xnode_child_attr(nic, "alias", "name") : NULL;
  if (!alias || !g_regex_match_simple("^[A-Za-z0-9_-]{1,32}$", alias, 0, 0)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                "the user-mode NIC %s of domain '%s' has no alias in the live XML", mac, name);
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    const KvVmmPortForward *p = &ports[i];
    if (!g_hostname_is_ip_address(p->address) || strchr(p->address, ':') || !p->host_port ||
        p->host_port > 65535 || !p->port || p->port > 65535) {
      g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "cannot forward %s:%u to %u",
                  p->address, p->host_port, p->port);
      return FALSE;
    }
    g_autofree char *cmd =
        g_strdup_printf("hostfwd_add host%s %s:%s:%u-:%u", alias, p->udp ? "udp" : "tcp",
                        p->address, p->host_port, p->port);
    char *out = NULL;
    if (virDomainQemuMonitorCommand(dom, cmd, &out, VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP) < 0) {
      set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot publish %s:%u/%s on domain '%s'",
                        p->address, p->host_port, p->udp ? "udp" : "tcp", name);
      return FALSE;
    }
    /* HMP answers nothing on success, a message on failure. */
    g_autofree char *msg = g_strstrip(out ? out : g_strdup(""));
    if (*msg) {
      g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                  "cannot publish %s:%u/%s (is it taken?): %s", p->address, p->host_port,
                  p->udp ? "udp" : "tcp", msg);
      return FALSE;
    }
  }
  return TRUE;
}

/* Detach a device found in the live XML by its alias (NIC and disk). */
static gboolean detach_node(virDomainPtr dom, const char *name, KvXNode *node, const char *what,
                            GError **error) {
  const char *alias = kv_xnode_child_attr(node, "alias", "name");
  if (!alias) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                "%s of domain '%s' has no alias in the live XML", what, name);
    return FALSE;
  }
  return kv_detach_and_wait(dom, alias, what, error);
}

/* Look a device up in the live XML with `find` and detach it; `what`
 * names it in errors ("NIC 52:54:...", "disk 'x'"). */
static gboolean detach_found(KvVmm *vmm, const char *name,
                             KvXNode *(*find)(KvXNode *devices, const char *key), const char *key,
                             const char *what, GError **error) {
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;
  KvXNode *devices = NULL;
  g_autoptr(KvXNode) root = kv_live_devices(dom, &devices, error);
  if (!root)
    return FALSE;
  KvXNode *node = find(devices, key);
  if (!node) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_NOT_FOUND, "domain '%s' has no %s", name, what);
    return FALSE;
  }
  return detach_node(dom, name, node, what, error);
}

gboolean kv_vmm_detach_nic(KvVmm *vmm, const char *name, const char *mac, GError **error) {
  if (!kv_check_mac(mac, error))
    return FALSE;
  g_autofree char *what = g_strdup_printf("NIC with MAC %s", mac);
  return detach_found(vmm, name, find_nic, mac, what, error);
}

/* ---- disks ---- */

/* libvirt's disk names: vda..vdz, vdaa..vdzz, ... (index 0 = vda). */
static char *disk_target_name(guint idx) {
  char rev[8];
  int n = 0;
  gint64 i = idx;
  do {
    rev[n++] = 'a' + i % 26;
    i = i / 26 - 1;
  } while (i >= 0 && n < (int)sizeof(rev));
  GString *s = g_string_new("vd");
  while (n > 0)
    g_string_append_c(s, rev[--n]);
  return g_string_free(s, FALSE);
}

/* The <disk> with this serial, or NULL. */
static KvXNode *find_disk(KvXNode *devices, const char *serial) {
  for (guint i = 0; i < devices->children->len; i++) {
    KvXNode *d = g_ptr_array_index(devices->children, i);
    if (!g_str_equal(d->name, "disk"))
      continue;
    g_autofree char *s = kv_xnode_text(kv_xnode_child(d, "serial"));
    if (s && g_str_equal(s, serial))
      return d;
  }
  return NULL;
}

/* The first vdX no disk of the domain uses. Two concurrent attaches could
 * pick the same name; libvirt then refuses the second, so callers
 * serialise hotplug per domain (the shim does). */
static char *free_disk_target(KvXNode *devices) {
  g_autoptr(GHashTable) used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < devices->children->len; i++) {
    KvXNode *d = g_ptr_array_index(devices->children, i);
    const char *dev = kv_xnode_child_attr(d, "target", "dev");
    if (g_str_equal(d->name, "disk") && dev)
      g_hash_table_add(used, g_strdup(dev));
  }
  /* 26 + 26*26 names: far more than there are root ports to plug into. */
  for (guint idx = 0; idx < 26 + 26 * 26; idx++) {
    g_autofree char *t = disk_target_name(idx);
    if (!g_hash_table_contains(used, t))
      return g_steal_pointer(&t);
  }
  return NULL;
}

/* cache='none' (O_DIRECT: no second copy of the data in the host's page
 * cache, and writes reach the device when the guest flushes) wherever the
 * file system allows O_DIRECT; tmpfs and some others do not, and QEMU would
 * then fail to open the disk, so those get 'writeback'. */
static const char *disk_cache_mode(const char *path, gboolean readonly) {
  int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
  if (fd < 0 && errno == EINVAL)
    return "writeback";
  if (fd >= 0)
    close(fd);
  return "none";
}

gboolean kv_vmm_attach_disk(KvVmm *vmm, const char *name, const char *path, const char *serial,
                            gboolean readonly, char **target_out, GError **error) {
  if (!kv_check_serial(serial, error))
    return FALSE;
  if (!kv_check_abs_path("disk path", path, error))
    return FALSE;
  struct stat st;
  if (stat(path, &st) < 0) {
    int e = errno;
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "disk path '%s': %s", path,
                g_strerror(e));
    return FALSE;
  }
  gboolean block = S_ISBLK(st.st_mode);
  if (!block && !S_ISREG(st.st_mode)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "disk path '%s' is neither a regular file nor a block device", path);
    return FALSE;
  }

  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;

  KvXNode *devices = NULL;
  g_autoptr(KvXNode) root = kv_live_devices(dom, &devices, error);
  if (!root)
    return FALSE;
  /* The serial is the disk's identity in the guest and for detach. */
  if (find_disk(devices, serial)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "domain '%s' already has a disk with serial '%s'", name, serial);
    return FALSE;
  }
  g_autofree char *target = free_disk_target(devices);
  if (!target) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                "domain '%s' has no free disk target name", name);
    return FALSE;
  }

  g_autofree char *xml =
      kv_disk_xml(path, block, disk_cache_mode(path, readonly), target, serial, readonly, error);
  if (!xml)
    return FALSE;
  if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT,
                      "cannot attach disk '%s' (serial %s) to domain '%s'", path, serial, name);
    return FALSE;
  }
  if (target_out)
    *target_out = g_steal_pointer(&target);
  return TRUE;
}

gboolean kv_vmm_detach_disk(KvVmm *vmm, const char *name, const char *serial, GError **error) {
  if (!kv_check_serial(serial, error))
    return FALSE;
  g_autofree char *what = g_strdup_printf("disk with serial '%s'", serial);
  return detach_found(vmm, name, find_disk, serial, what, error);
}

/* ---- ACPI DIMMs (memory hotplug without virtio-mem) ---- */

gboolean kv_vmm_attach_dimm(KvVmm *vmm, const char *name, guint size_mib, const char *alias,
                            GError **error) {
  if (!kv_check_dimm_alias(alias, error))
    return FALSE;
  if (size_mib == 0 || size_mib % KV_VMM_DIMM_BLOCK_MIB) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "DIMM size %u MiB is not a multiple of %u MiB", size_mib, KV_VMM_DIMM_BLOCK_MIB);
    return FALSE;
  }
  g_autoptr(virDomain) dom = get_domain(vmm, name, error);
  if (!dom)
    return FALSE;
  g_autofree char *xml = kv_dimm_xml(size_mib, alias, error);
  if (!xml)
    return FALSE;
  if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot attach a %u MiB DIMM to domain '%s'",
                      size_mib, name);
    return FALSE;
  }
  return TRUE;
}

static KvXNode *find_dimm(KvXNode *devices, const char *alias) {
  return kv_live_find_alias(devices, "memory", alias);
}

gboolean kv_vmm_detach_dimm(KvVmm *vmm, const char *name, const char *alias, GError **error) {
  if (!kv_check_dimm_alias(alias, error))
    return FALSE;
  g_autofree char *what = g_strdup_printf("DIMM '%s'", alias);
  return detach_found(vmm, name, find_dimm, alias, what, error);
}
