/* lib/vmm/xml.c: libvirt domain XML for one sandbox VM, and the device
 * XML of hotplug (devxml.h).
 *
 * Every caller value is checked first (validate.c) and written through the
 * escaping builder (xmlbuild.c), so a path with quotes or ampersands cannot
 * change the document's structure. The shape (q35, direct kernel boot,
 * virtio-serial agent channel, 9p share, spare PCIe root ports, maxMemory +
 * NUMA cell + a virtio-mem device for hotplug) is what works with QEMU 7.2
 * / libvirt 9.0, see docs/platform.md. */
#include "vmm.h"

#include <string.h>

#include "devxml.h"
#include "validate.h"
#include "xmlbuild.h"

/* sun_path is 108 bytes including the terminating NUL. */
#define KV_UNIX_PATH_MAX 107

/* Slots on pcie-root for the devices that live as long as the VM: the
 * virtio-mem device, the virtio-serial controller and the 9p share. They
 * are integrated endpoints there, never unplugged, so they take none of
 * the root ports kept free for NICs and disks (libvirt would otherwise put
 * each on a root port of its own) and the guest has two bridges less to
 * set up at boot. libvirt fills pcie-root from slot 1 upwards with root
 * ports (8 functions per slot, so at most 3 slots for our 24 ports) and
 * keeps 0x1f for the ICH9 LPC/SATA/SMBus functions; 0x10-0x12 stay clear
 * of both. */
#define KV_VIRTIO_MEM_PCI_SLOT 0x10
#define KV_VIRTIO_SERIAL_PCI_SLOT 0x11
#define KV_SHARE_PCI_SLOT 0x12

/* Size of the virtio-mem region: whatever max_memory_mib adds to the boot
 * memory, rounded down to whole blocks (QEMU refuses a size that is not a
 * multiple of the block size). 0 = no memory hotplug. */
static guint virtio_mem_size_mib(const KvVmConfig *cfg) {
  if (cfg->max_memory_mib <= cfg->memory_mib || cfg->memory_dimm)
    return 0;
  guint extra = cfg->max_memory_mib - cfg->memory_mib;
  return extra - extra % KV_VMM_VIRTIO_MEM_BLOCK_MIB;
}

static gboolean check_config(const KvVmConfig *cfg, GError **error) {
  if (!cfg) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "no VM configuration given");
    return FALSE;
  }
  if (!kv_check_domain_name(cfg->name, error))
    return FALSE;
  if (cfg->uuid && !g_uuid_string_is_valid(cfg->uuid)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "uuid '%s' is not a valid UUID",
                cfg->uuid);
    return FALSE;
  }
  if (!kv_check_path("kernel", cfg->kernel, TRUE, error) ||
      !kv_check_path("initrd", cfg->initrd, TRUE, error) ||
      !kv_check_path("agent socket", cfg->agent_socket, TRUE, error) ||
      !kv_check_path("console log", cfg->console_log, TRUE, error) ||
      !kv_check_path("shared dir", cfg->shared_dir, FALSE, error) ||
      !kv_check_path("virtio-fs socket", cfg->virtiofs_socket, FALSE, error) ||
      !kv_check_path("9p proxy socket", cfg->ninep_proxy_socket, FALSE, error) ||
      !kv_check_path("console socket", cfg->console_socket, FALSE, error))
    return FALSE;
  if (cfg->console_socket && strlen(cfg->console_socket) > KV_UNIX_PATH_MAX) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "console socket path '%s' is longer than the %d bytes a unix socket address "
                "can hold",
                cfg->console_socket, KV_UNIX_PATH_MAX);
    return FALSE;
  }
  if (cfg->virtiofs_socket && strlen(cfg->virtiofs_socket) > KV_UNIX_PATH_MAX) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "virtio-fs socket path '%s' is %zu bytes, longer than the %d a "
                "unix socket address can hold",
                cfg->virtiofs_socket, strlen(cfg->virtiofs_socket), KV_UNIX_PATH_MAX);
    return FALSE;
  }
  if (cfg->ninep_proxy_socket && (strlen(cfg->ninep_proxy_socket) > KV_UNIX_PATH_MAX ||
                                  strchr(cfg->ninep_proxy_socket, ','))) {
    /* A comma would end QEMU's -fsdev option value. */
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "9p proxy socket path '%s' is longer than the %d bytes a unix socket address "
                "can hold, or has a comma",
                cfg->ninep_proxy_socket, KV_UNIX_PATH_MAX);
    return FALSE;
  }
  if (strlen(cfg->agent_socket) > KV_UNIX_PATH_MAX) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "agent socket path '%s' is %zu bytes, longer than the %d a "
                "unix socket address can hold",
                cfg->agent_socket, strlen(cfg->agent_socket), KV_UNIX_PATH_MAX);
    return FALSE;
  }
  if (cfg->accel != KV_ACCEL_KVM && cfg->accel != KV_ACCEL_TCG) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "accelerator '%s' is not resolved (resolve auto to kvm or tcg "
                "first)",
                kv_accel_name(cfg->accel));
    return FALSE;
  }
  if (cfg->vcpus < 1) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "vcpus must be at least 1");
    return FALSE;
  }
  if (cfg->max_vcpus < cfg->vcpus) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "max_vcpus (%u) is below vcpus (%u)",
                cfg->max_vcpus, cfg->vcpus);
    return FALSE;
  }
  if (cfg->memory_mib < 64) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "memory %u MiB is below the minimum of 64 MiB", cfg->memory_mib);
    return FALSE;
  }
  if (cfg->max_memory_mib < cfg->memory_mib) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "max_memory_mib (%u) is below memory_mib (%u)", cfg->max_memory_mib,
                cfg->memory_mib);
    return FALSE;
  }
  /* q35 has 32 slots on pcie-root; libvirt needs a few for itself. */
  if (cfg->spare_root_ports > 24) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "spare_root_ports %u is more than 24",
                cfg->spare_root_ports);
    return FALSE;
  }
  return TRUE;
}

/* <address type='pci'> of an integrated endpoint on pcie-root. */
static void pcie_root_address(KvXml *x, guint slot) {
  kv_xml_open(x, "address", "type", "pci", "domain", "0x0000", "bus", "0x00", NULL);
  kv_xml_attr(x, "slot", "0x%02x", slot);
  kv_xml_attr(x, "function", "0x0");
  kv_xml_close(x);
}

/* <name unit='MiB'>mib</name> */
static void mib_element(KvXml *x, const char *name, guint mib) {
  kv_xml_open(x, name, "unit", "MiB", NULL);
  kv_xml_text(x, "%u", mib);
  kv_xml_close(x);
}

char *kv_vmm_domain_xml(const KvVmConfig *cfg, GError **error) {
  if (!check_config(cfg, error))
    return NULL;

  gboolean tcg = cfg->accel == KV_ACCEL_TCG;
  gboolean mem_hotplug = cfg->max_memory_mib > cfg->memory_mib;
  g_autoptr(KvXml) x = kv_xml_new();

  gboolean proxy9p = !cfg->virtiofs_socket && cfg->ninep_proxy_socket;
  kv_xml_open(x, "domain", "type", tcg ? "qemu" : "kvm", "xmlns:qemu",
              proxy9p ? "http://libvirt.org/schemas/domain/qemu/1.0" : NULL, NULL);
  kv_xml_leaf(x, "name", "%s", cfg->name);
  if (cfg->uuid)
    kv_xml_leaf(x, "uuid", "%s", cfg->uuid);
  guint vmem_mib = virtio_mem_size_mib(cfg);
  if (mem_hotplug) {
    kv_xml_open(x, "maxMemory", "slots", "8", "unit", "MiB", NULL);
    kv_xml_text(x, "%u", cfg->max_memory_mib);
    kv_xml_close(x);
  }
  /* libvirt's <memory> is the total of the NUMA cells and every memory
   * device (it refuses a smaller value): boot memory plus the virtio-mem
   * region. What the guest has at boot is <currentMemory> and the cell. */
  mib_element(x, "memory", cfg->memory_mib + vmem_mib);
  mib_element(x, "currentMemory", cfg->memory_mib);
  /* virtio-fs: virtiofsd (a vhost-user backend) reads and writes guest
   * buffers directly, so every byte of guest RAM must be a shared mapping
   * it can map: a memfd, shared. libvirt applies this to the boot memory
   * and to memory devices (the virtio-mem region, hot-added DIMMs), so
   * memory hotplug works the same (tests/integration/test_hotplug.c). */
  if (cfg->virtiofs_socket) {
    kv_xml_open(x, "memoryBacking", NULL);
    kv_xml_empty(x, "source", "type", "memfd", NULL);
    kv_xml_empty(x, "access", "mode", "shared", NULL);
    kv_xml_close(x);
  }
  kv_xml_open(x, "vcpu", "placement", "static", NULL);
  if (cfg->max_vcpus > cfg->vcpus) {
    kv_xml_attr(x, "current", "%u", cfg->vcpus);
    kv_xml_text(x, "%u", cfg->max_vcpus);
  } else {
    kv_xml_text(x, "%u", cfg->vcpus);
  }
  kv_xml_close(x);

  kv_xml_open(x, "os", NULL);
  kv_xml_open(x, "type", "arch", "x86_64", "machine", "q35", NULL);
  kv_xml_text(x, "hvm");
  kv_xml_close(x);
  kv_xml_leaf(x, "kernel", "%s", cfg->kernel);
  kv_xml_leaf(x, "initrd", "%s", cfg->initrd);
  /* The caller's command line, untouched: what the guest needs (console,
   * hotplug onlining) is the image's business, not the VMM's. */
  if (cfg->cmdline && *cfg->cmdline)
    kv_xml_leaf(x, "cmdline", "%s", cfg->cmdline);
  kv_xml_close(x); /* os */

  /* ACPI always: q35 without it does not boot (acpi=off: no boot within
   * 90 s) and vCPU/memory hotplug are ACPI events. The TCG translation cache
   * defaults to 1 GiB of address space; 32 MiB cut resident memory by
   * ~15 MiB per VM and is plenty for a kernel plus one agent.
   * But not with vCPU hotplug: QEMU splits the cache into regions (at most
   * 8 per possible vCPU, at least 2 MiB each), a running vCPU takes a new
   * region whenever its own fills, and a hotplugged vCPU's thread must find
   * a free one or QEMU aborts (tcg/region.c, "tcg_region_initial_alloc__
   * locked: assertion failed"; QEMU 7.2 flushes the cache only when a
   * running vCPU runs out). Booting the Debian kernel alone generates
   * ~50 MiB of code, so with 32 MiB every vCPU hotplug killed the VM. 256
   * MiB leaves most regions free after boot and still bounds the cache;
   * memory is only used as code is generated. */
  kv_xml_open(x, "features", NULL);
  kv_xml_empty(x, "acpi", NULL);
  if (tcg) {
    kv_xml_open(x, "tcg", NULL);
    mib_element(x, "tb-cache",
                cfg->tb_cache_mib             ? cfg->tb_cache_mib
                : cfg->max_vcpus > cfg->vcpus ? 256
                                              : 32);
    kv_xml_close(x);
  }
  kv_xml_close(x); /* features */

  /* TCG: no CPU model at all, so QEMU's default for TCG (qemu64) is used.
   * Any model or mode ('maximum', 'qemu64', ...) makes libvirt read every
   * CPU feature back over QMP after starting QEMU: about 400 qom-get round
   * trips, 0.3-0.4 s of each start here. The Debian kernel boots the same
   * with any of them (measured). KVM: the host's CPU as is, as Kata does. */
  if (!tcg || mem_hotplug) {
    if (tcg)
      kv_xml_open(x, "cpu", NULL);
    else
      kv_xml_open(x, "cpu", "mode", "host-passthrough", "check", "none", NULL);
    if (mem_hotplug) {
      /* Memory hotplug needs a guest NUMA topology; one cell holding every
       * possible vCPU and the boot memory. */
      kv_xml_open(x, "numa", NULL);
      kv_xml_open(x, "cell", "id", "0", NULL);
      kv_xml_attr(x, "cpus", "0-%u", cfg->max_vcpus - 1);
      kv_xml_attr(x, "memory", "%u", cfg->memory_mib);
      kv_xml_attr(x, "unit", "MiB");
      kv_xml_close(x);
      kv_xml_close(x); /* numa */
    }
    kv_xml_close(x); /* cpu */
  }

  kv_xml_empty(x, "clock", "offset", "utc", NULL);
  /* A sandbox VM is never restarted in place: any exit is final, and the
   * shim hears about it through the lifecycle event. */
  kv_xml_leaf(x, "on_poweroff", "destroy");
  kv_xml_leaf(x, "on_reboot", "destroy");
  kv_xml_leaf(x, "on_crash", "destroy");

  kv_xml_open(x, "devices", NULL);
  kv_xml_empty(x, "controller", "type", "usb", "model", "none", NULL);
  kv_xml_empty(x, "controller", "type", "pci", "model", "pcie-root", NULL);
  for (guint i = 0; i < cfg->spare_root_ports; i++)
    kv_xml_empty(x, "controller", "type", "pci", "model", "pcie-root-port", NULL);
  /* ports='2': port 0 (reserved for a console) and the agent's port 1.
   * QEMU's default of 31 ports gives the device 64 virtqueues, each an
   * ioeventfd that the main loop polls on every iteration, also on every
   * network packet: 80 eventfds in all were 22 with this
   * (docs/networking.md, "Performance (tcfilter)"). */
  kv_xml_open(x, "controller", "type", "virtio-serial", "index", "0", "ports", "2", NULL);
  pcie_root_address(x, KV_VIRTIO_SERIAL_PCI_SLOT);
  kv_xml_close(x);
  if (vmem_mib > 0) {
    /* Memory hotplug is one virtio-mem device defined at boot with nothing
     * plugged: a resize then only changes <requested> (see hotplug.c), no
     * DIMM slot or PCI hotplug is involved, and the guest can give memory
     * back, which a DIMM cannot do piecemeal. The user alias ('ua-')
     * names it stably for virDomainUpdateDeviceFlags. It sits on pcie-root
     * as an integrated endpoint (it is never unplugged), so that it takes
     * none of the root ports kept free for NICs and disks. */
    kv_xml_open(x, "memory", "model", "virtio-mem", NULL);
    kv_xml_open(x, "target", NULL);
    mib_element(x, "size", vmem_mib);
    kv_xml_leaf(x, "node", "0");
    mib_element(x, "block", KV_VMM_VIRTIO_MEM_BLOCK_MIB);
    mib_element(x, "requested", 0);
    kv_xml_close(x); /* target */
    kv_xml_empty(x, "alias", "name", KV_VMM_VIRTIO_MEM_ALIAS, NULL);
    pcie_root_address(x, KV_VIRTIO_MEM_PCI_SLOT);
    kv_xml_close(x); /* memory */
  }
  if (cfg->virtiofs_socket) {
    /* virtio-fs with a virtiofsd started by the caller (libvirt >= 8.0:
     * <source socket>): libvirt neither starts nor watches it. queue 1024:
     * the request queue size Kata and libvirt's examples use. */
    kv_xml_open(x, "filesystem", "type", "mount", NULL);
    kv_xml_empty(x, "driver", "type", "virtiofs", "queue", "1024", NULL);
    kv_xml_empty(x, "source", "socket", cfg->virtiofs_socket, NULL);
    kv_xml_empty(x, "target", "dir", "katavmshared", NULL);
    pcie_root_address(x, KV_SHARE_PCI_SLOT);
    kv_xml_close(x);
  } else if (cfg->shared_dir && !proxy9p) {
    kv_xml_open(x, "filesystem", "type", "mount", "accessmode", "passthrough", NULL);
    kv_xml_empty(x, "source", "dir", cfg->shared_dir, NULL);
    kv_xml_empty(x, "target", "dir", "katavmshared", NULL);
    pcie_root_address(x, KV_SHARE_PCI_SLOT);
    kv_xml_close(x);
  }
  if (cfg->console_socket) {
    kv_xml_open(x, "serial", "type", "unix", NULL);
    kv_xml_empty(x, "source", "mode", "bind", "path", cfg->console_socket, NULL);
  } else {
    kv_xml_open(x, "serial", "type", "file", NULL);
    kv_xml_empty(x, "source", "path", cfg->console_log, NULL);
  }
  kv_xml_empty(x, "target", "port", "0", NULL);
  kv_xml_close(x);
  if (cfg->console_socket) {
    kv_xml_open(x, "console", "type", "unix", NULL);
    kv_xml_empty(x, "source", "mode", "bind", "path", cfg->console_socket, NULL);
  } else {
    kv_xml_open(x, "console", "type", "file", NULL);
    kv_xml_empty(x, "source", "path", cfg->console_log, NULL);
  }
  kv_xml_empty(x, "target", "type", "serial", "port", "0", NULL);
  kv_xml_close(x);
  kv_xml_open(x, "channel", "type", "unix", NULL);
  kv_xml_empty(x, "source", "mode", "bind", "path", cfg->agent_socket, NULL);
  kv_xml_empty(x, "target", "type", "virtio", "name", "io.katavm.agent.0", NULL);
  kv_xml_close(x);
  /* No balloon: memory is resized with virtio-mem/DIMMs, and a balloon
   * device costs boot time for nothing. */
  kv_xml_empty(x, "memballoon", "model", "none", NULL);
  kv_xml_close(x); /* devices */
  if (cfg->qemu_as_root) {
    kv_xml_open(x, "seclabel", "type", "static", "model", "dac", "relabel", "no", NULL);
    kv_xml_leaf(x, "label", "+0:+0");
    kv_xml_close(x);
  } else if (cfg->qemu_label) {
    /* relabel='no': libvirt chowns nothing to this uid (lib/shim/jail.c). */
    kv_xml_open(x, "seclabel", "type", "static", "model", "dac", "relabel", "no", NULL);
    kv_xml_leaf(x, "label", "%s", cfg->qemu_label);
    kv_xml_close(x);
  }
  if (proxy9p) {
    /* After every device libvirt places (QEMU realises -device in order),
     * at the slot the share always has: nothing else of ours asks for it. */
    kv_xml_open(x, "qemu:commandline", NULL);
    kv_xml_empty(x, "qemu:arg", "value", "-fsdev", NULL);
    g_autofree char *fsdev =
        g_strdup_printf("proxy,id=fskatavm,socket=%s", cfg->ninep_proxy_socket);
    kv_xml_empty(x, "qemu:arg", "value", fsdev, NULL);
    kv_xml_empty(x, "qemu:arg", "value", "-device", NULL);
    g_autofree char *dev =
        g_strdup_printf("virtio-9p-pci,fsdev=fskatavm,mount_tag=katavmshared,bus=pcie.0,addr=0x%x",
                        KV_SHARE_PCI_SLOT);
    kv_xml_empty(x, "qemu:arg", "value", dev, NULL);
    kv_xml_close(x);
  }
  kv_xml_close(x); /* domain */

  return kv_xml_finish(g_steal_pointer(&x), error);
}

/* ---- device XML for hotplug ---- */

char *kv_nic_xml(const char *tap, const char *mac, guint mtu, GError **error) {
  /* type='ethernet' with managed='no': the tap is the caller's (made and
   * wired up by the network setup, e.g. tc redirect to a pod netns);
   * libvirt only opens it. */
  KvXml *x = kv_xml_new();
  kv_xml_open(x, "interface", "type", "ethernet", NULL);
  kv_xml_empty(x, "mac", "address", mac, NULL);
  kv_xml_empty(x, "target", "dev", tap, "managed", "no", NULL);
  kv_xml_empty(x, "model", "type", "virtio", NULL);
  if (mtu) {
    kv_xml_open(x, "mtu", NULL);
    kv_xml_attr(x, "size", "%u", mtu);
    kv_xml_close(x);
  }
  kv_xml_close(x);
  return kv_xml_finish(x, error);
}

char *kv_user_nic_xml(const char *mac, GError **error) {
  KvXml *x = kv_xml_new();
  kv_xml_open(x, "interface", "type", "user", NULL);
  kv_xml_empty(x, "mac", "address", mac, NULL);
  kv_xml_empty(x, "model", "type", "virtio", NULL);
  kv_xml_close(x);
  return kv_xml_finish(x, error);
}

char *kv_disk_xml(const char *path, gboolean block, const char *cache, const char *target,
                  const char *serial, gboolean readonly, GError **error) {
  KvXml *x = kv_xml_new();
  kv_xml_open(x, "disk", "type", block ? "block" : "file", "device", "disk", NULL);
  kv_xml_empty(x, "driver", "name", "qemu", "type", "raw", "cache", cache, NULL);
  kv_xml_empty(x, "source", block ? "dev" : "file", path, NULL);
  kv_xml_empty(x, "target", "dev", target, "bus", "virtio", NULL);
  kv_xml_leaf(x, "serial", "%s", serial);
  if (readonly)
    kv_xml_empty(x, "readonly", NULL);
  kv_xml_close(x);
  return kv_xml_finish(x, error);
}

char *kv_dimm_xml(guint size_mib, const char *alias, GError **error) {
  KvXml *x = kv_xml_new();
  kv_xml_open(x, "memory", "model", "dimm", NULL);
  kv_xml_open(x, "target", NULL);
  mib_element(x, "size", size_mib);
  kv_xml_leaf(x, "node", "0");
  kv_xml_close(x); /* target */
  kv_xml_empty(x, "alias", "name", alias, NULL);
  kv_xml_close(x);
  return kv_xml_finish(x, error);
}
