/* lib/vmm/xml.c: libvirt domain XML for one sandbox VM.
 *
 * The XML is built element by element in a GString and every value that
 * comes from a caller goes through g_markup_printf_escaped, so a path with
 * quotes or ampersands cannot change the document's structure. The shape
 * (q35, direct kernel boot, virtio-serial agent channel, 9p share, spare
 * PCIe root ports, maxMemory + NUMA cell + a virtio-mem device for
 * hotplug) follows what was
 * measured to work with QEMU 7.2 / libvirt 9.0, see shared/VM-NOTES.md. */
#include "vmm.h"

#include <string.h>

#include "validate.h"

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
      !kv_check_path("shared dir", cfg->shared_dir, FALSE, error))
    return FALSE;
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

/* Append one escaped, printf-formatted line. Only the format's literal
 * text is trusted; every %s argument is escaped. */
G_GNUC_PRINTF(2, 3)
static void add(GString *xml, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *s = g_markup_vprintf_escaped(fmt, ap);
  va_end(ap);
  g_string_append(xml, s);
}

char *kv_vmm_domain_xml(const KvVmConfig *cfg, GError **error) {
  if (!check_config(cfg, error))
    return NULL;

  gboolean tcg = cfg->accel == KV_ACCEL_TCG;
  gboolean mem_hotplug = cfg->max_memory_mib > cfg->memory_mib;
  g_autoptr(GString) xml = g_string_new(NULL);

  add(xml, "<domain type='%s'>\n", tcg ? "qemu" : "kvm");
  add(xml, "  <name>%s</name>\n", cfg->name);
  if (cfg->uuid)
    add(xml, "  <uuid>%s</uuid>\n", cfg->uuid);
  guint vmem_mib = virtio_mem_size_mib(cfg);
  if (mem_hotplug)
    add(xml, "  <maxMemory slots='8' unit='MiB'>%u</maxMemory>\n", cfg->max_memory_mib);
  /* libvirt's <memory> is the total of the NUMA cells and every memory
   * device (it refuses a smaller value): boot memory plus the virtio-mem
   * region. What the guest has at boot is <currentMemory> and the cell. */
  add(xml, "  <memory unit='MiB'>%u</memory>\n", cfg->memory_mib + vmem_mib);
  add(xml, "  <currentMemory unit='MiB'>%u</currentMemory>\n", cfg->memory_mib);
  if (cfg->max_vcpus > cfg->vcpus)
    add(xml, "  <vcpu placement='static' current='%u'>%u</vcpu>\n", cfg->vcpus, cfg->max_vcpus);
  else
    add(xml, "  <vcpu placement='static'>%u</vcpu>\n", cfg->vcpus);

  add(xml,
      "  <os>\n"
      "    <type arch='x86_64' machine='q35'>hvm</type>\n"
      "    <kernel>%s</kernel>\n"
      "    <initrd>%s</initrd>\n",
      cfg->kernel, cfg->initrd);
  /* The caller's command line, untouched: what the guest needs (console,
   * hotplug onlining) is the image's business, not the VMM's. */
  if (cfg->cmdline && *cfg->cmdline)
    add(xml, "    <cmdline>%s</cmdline>\n", cfg->cmdline);
  add(xml, "  </os>\n");

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
  add(xml, "  <features>\n    <acpi/>\n");
  if (tcg)
    add(xml,
        "    <tcg>\n      <tb-cache unit='MiB'>%u</tb-cache>\n"
        "    </tcg>\n",
        cfg->max_vcpus > cfg->vcpus ? 256 : 32);
  add(xml, "  </features>\n");

  /* TCG: no CPU model at all, so QEMU's default for TCG (qemu64) is used.
   * Any model or mode ('maximum', 'qemu64', ...) makes libvirt read every
   * CPU feature back over QMP after starting QEMU: about 400 qom-get round
   * trips, 0.3-0.4 s of each start here. The Debian kernel boots the same
   * with any of them (measured). KVM: the host's CPU as is, as Kata does. */
  if (!tcg || mem_hotplug) {
    if (tcg)
      add(xml, "  <cpu>\n");
    else
      add(xml, "  <cpu mode='host-passthrough' check='none'>\n");
    if (mem_hotplug) {
      /* Memory hotplug needs a guest NUMA topology; one cell holding every
       * possible vCPU and the boot memory. */
      add(xml,
          "    <numa>\n"
          "      <cell id='0' cpus='0-%u' memory='%u' unit='MiB'/>\n"
          "    </numa>\n",
          cfg->max_vcpus - 1, cfg->memory_mib);
    }
    add(xml, "  </cpu>\n");
  }

  add(xml, "  <clock offset='utc'/>\n");
  /* A sandbox VM is never restarted in place: any exit is final, and the
   * shim hears about it through the lifecycle event. */
  add(xml, "  <on_poweroff>destroy</on_poweroff>\n"
           "  <on_reboot>destroy</on_reboot>\n"
           "  <on_crash>destroy</on_crash>\n");

  add(xml, "  <devices>\n");
  add(xml, "    <controller type='usb' model='none'/>\n");
  add(xml, "    <controller type='pci' model='pcie-root'/>\n");
  for (guint i = 0; i < cfg->spare_root_ports; i++)
    add(xml, "    <controller type='pci' model='pcie-root-port'/>\n");
  add(xml,
      "    <controller type='virtio-serial' index='0'>\n"
      "      <address type='pci' domain='0x0000' bus='0x00' "
      "slot='0x%02x' function='0x0'/>\n"
      "    </controller>\n",
      KV_VIRTIO_SERIAL_PCI_SLOT);
  if (vmem_mib > 0) {
    /* Memory hotplug is one virtio-mem device defined at boot with nothing
     * plugged: a resize then only changes <requested> (see hotplug.c), no
     * DIMM slot or PCI hotplug is involved, and the guest can give memory
     * back, which a DIMM cannot do piecemeal. The user alias ('ua-')
     * names it stably for virDomainUpdateDeviceFlags. It sits on pcie-root
     * as an integrated endpoint (it is never unplugged), so that it takes
     * none of the root ports kept free for NICs and disks. */
    add(xml,
        "    <memory model='virtio-mem'>\n"
        "      <target>\n"
        "        <size unit='MiB'>%u</size>\n"
        "        <node>0</node>\n"
        "        <block unit='MiB'>%u</block>\n"
        "        <requested unit='MiB'>0</requested>\n"
        "      </target>\n"
        "      <alias name='%s'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x00' "
        "slot='0x%02x' function='0x0'/>\n"
        "    </memory>\n",
        vmem_mib, KV_VMM_VIRTIO_MEM_BLOCK_MIB, KV_VMM_VIRTIO_MEM_ALIAS, KV_VIRTIO_MEM_PCI_SLOT);
  }
  if (cfg->shared_dir)
    add(xml,
        "    <filesystem type='mount' accessmode='passthrough'>\n"
        "      <source dir='%s'/>\n"
        "      <target dir='katavmshared'/>\n"
        "      <address type='pci' domain='0x0000' bus='0x00' "
        "slot='0x%02x' function='0x0'/>\n"
        "    </filesystem>\n",
        cfg->shared_dir, KV_SHARE_PCI_SLOT);
  add(xml,
      "    <serial type='file'>\n"
      "      <source path='%s'/>\n"
      "      <target port='0'/>\n"
      "    </serial>\n",
      cfg->console_log);
  add(xml,
      "    <console type='file'>\n"
      "      <source path='%s'/>\n"
      "      <target type='serial' port='0'/>\n"
      "    </console>\n",
      cfg->console_log);
  add(xml,
      "    <channel type='unix'>\n"
      "      <source mode='bind' path='%s'/>\n"
      "      <target type='virtio' name='io.katavm.agent.0'/>\n"
      "    </channel>\n",
      cfg->agent_socket);
  /* No balloon: memory is resized with virtio-mem/DIMMs, and a balloon
   * device costs boot time for nothing. */
  add(xml, "    <memballoon model='none'/>\n");
  add(xml, "  </devices>\n");
  if (cfg->qemu_as_root)
    add(xml, "  <seclabel type='static' model='dac' relabel='no'>\n"
             "    <label>+0:+0</label>\n"
             "  </seclabel>\n");
  add(xml, "</domain>\n");

  return g_string_free(g_steal_pointer(&xml), FALSE);
}
