/* tests/unit/test_vmm_hotplug.c: lib/vmm hotplug without booting anything.
 *
 * The virtio-mem device in the domain XML is checked by defining the XML on
 * libvirt's test driver (test:///default, the same parser as the QEMU
 * driver) and reading it back. The hotplug calls run against a domain
 * started on the test driver: it supports live vCPU changes and live XML,
 * but no device attach/detach/update, so for those we check argument
 * validation (which never reaches libvirt), the lookups in the live XML
 * (NOT_FOUND for what was never attached) and that libvirt's refusal comes
 * back as KV_VMM_ERROR_LIBVIRT. Real hotplug against QEMU needs a booted
 * VM and is checked outside the unit tests. */
#include <check.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "devxml.h"
#include "livexml.h"
#include "vmm.h"
#include "xml-doc.h"
#include "xmlbuild.h"

/* ---- helpers ---- */

static KvVmConfig hotplug_config(void) {
  KvVmConfig cfg = {
      .name = "hp-1",
      .kernel = "/var/lib/katavm/vmlinux",
      .initrd = "/var/lib/katavm/initrd.cpio",
      .cmdline = "console=ttyS0 panic=-1 memhp_default_state=online",
      .accel = KV_ACCEL_TCG,
      .vcpus = 1,
      .max_vcpus = 4,
      .memory_mib = 256,
      .max_memory_mib = 1024,
      .agent_socket = "/run/katavm/hp-1/agent.sock",
      .shared_dir = "/run/katavm/hp-1/shared",
      .console_log = "/run/katavm/hp-1/console.log",
      .spare_root_ports = 4,
  };
  return cfg;
}

/* Define cfg's XML on a fresh test-driver connection and return libvirt's
 * own rendering of it, parsed. */
static GHashTable *define_and_read_back(const KvVmConfig *cfg) {
  g_autoptr(GError) err = NULL;
  g_autofree char *xml = kv_vmm_domain_xml(cfg, &err);
  ck_assert_msg(xml != NULL, "%s", err ? err->message : "");

  virConnectPtr conn = virConnectOpen("test:///default");
  ck_assert_ptr_nonnull(conn);
  virDomainPtr dom = virDomainDefineXML(conn, xml);
  ck_assert_msg(dom != NULL, "libvirt rejects our XML: %s\n%s", virGetLastErrorMessage(), xml);
  char *back = virDomainGetXMLDesc(dom, 0);
  ck_assert_ptr_nonnull(back);
  GHashTable *doc = parse_doc(back);
  free(back);
  virDomainUndefine(dom);
  virDomainFree(dom);
  virConnectClose(conn);
  return doc;
}

/* err is read after the call: arguments have no evaluation order. */
static void expect_error(gboolean ok, GError **errp, int code, const char *needle) {
  GError *err = *errp;
  ck_assert_msg(!ok, "call succeeded, expected error %d", code);
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(err->domain == KV_VMM_ERROR && err->code == code, "error %d (%s), expected %d",
                err->code, err->message, code);
  ck_assert_msg(strstr(err->message, needle), "message '%s' lacks '%s'", err->message, needle);
}

/* A test-driver connection with the hotplug config's domain running. */
static KvVmm *open_with_domain(const KvVmConfig *cfg) {
  g_autoptr(GError) err = NULL;
  KvVmm *vmm = kv_vmm_open("test:///default", &err);
  ck_assert_msg(vmm != NULL, "%s", err ? err->message : "");
  ck_assert_msg(kv_vmm_start(vmm, cfg, &err), "%s", err ? err->message : "");
  return vmm;
}

/* ---- domain XML ---- */

START_TEST(xml_defines_virtio_mem_device_with_nothing_requested) {
  KvVmConfig cfg = hotplug_config();
  g_autoptr(GHashTable) doc = define_and_read_back(&cfg);

  /* libvirt normalises to KiB. The total (<memory>) holds boot memory
   * plus the virtio-mem region; the guest boots with the NUMA cell. */
  ck_assert_str_eq(doc_get(doc, "maxMemory", 0), "1048576");
  ck_assert_str_eq(doc_get(doc, "memory", 0), "1048576");
  ck_assert_str_eq(doc_get(doc, "currentMemory", 0), "262144");
  ck_assert_str_eq(doc_get(doc, "cell@memory", 0), "262144");

  ck_assert_uint_eq(doc_count(doc, "memory@model", "virtio-mem"), 1);
  ck_assert_str_eq(doc_get(doc, "size", 0), "786432");
  ck_assert_str_eq(doc_get(doc, "size@unit", 0), "KiB");
  ck_assert_str_eq(doc_get(doc, "node", 0), "0");
  ck_assert_str_eq(doc_get(doc, "block", 0), "2048");
  ck_assert_str_eq(doc_get(doc, "requested", 0), "0");
  /* The user alias survives, so resizes can name the device. */
  ck_assert_uint_eq(doc_count(doc, "alias@name", KV_VMM_VIRTIO_MEM_ALIAS), 1);

  /* On pcie-root itself, beside virtio-serial and the 9p share: every
   * root port stays free for NICs and disks. */
  ck_assert_uint_eq(doc_count(doc, "address@bus", "0x00"), cfg.shared_dir ? 3 : 2);
  ck_assert_uint_eq(doc_count(doc, "address@slot", "0x10"), 1);
  ck_assert_uint_eq(doc_count(doc, "controller@model", "pcie-root-port"), cfg.spare_root_ports);

  /* vCPU hotplug needs a TCG cache that is not filled by the boot. */
  ck_assert_str_eq(doc_get(doc, "tb-cache", 0), "262144");
}
END_TEST

START_TEST(xml_virtio_mem_size_is_whole_blocks) {
  KvVmConfig cfg = hotplug_config();

  /* 769 MiB more than boot memory: 768 MiB of 2 MiB blocks. */
  cfg.max_memory_mib = 256 + 769;
  g_autoptr(GHashTable) odd = define_and_read_back(&cfg);
  ck_assert_str_eq(doc_get(odd, "size", 0), "786432");
  ck_assert_str_eq(doc_get(odd, "maxMemory", 0), "1049600");
  ck_assert_str_eq(doc_get(odd, "memory", 0), "1048576");

  /* Less than a block more: hotplug-ready (maxMemory, NUMA) but no
   * virtio-mem device. */
  cfg.max_memory_mib = 257;
  g_autoptr(GHashTable) tiny = define_and_read_back(&cfg);
  ck_assert_uint_eq(doc_count(tiny, "memory@model", "virtio-mem"), 0);
  ck_assert_str_eq(doc_get(tiny, "memory", 0), "262144");
  ck_assert_str_eq(doc_get(tiny, "maxMemory", 0), "263168");

  /* No memory and no vCPU hotplug: no device, the small TCG cache. */
  cfg.max_memory_mib = cfg.memory_mib;
  cfg.max_vcpus = cfg.vcpus;
  g_autoptr(GHashTable) none = define_and_read_back(&cfg);
  ck_assert_uint_eq(doc_count(none, "memory@model", "virtio-mem"), 0);
  ck_assert_ptr_null(doc_get(none, "maxMemory", 0));
  ck_assert_str_eq(doc_get(none, "tb-cache", 0), "32768");

  /* A size given (KATAVM_TCG_TB_CACHE_MIB) wins over the shape's. */
  cfg.tb_cache_mib = 512;
  g_autoptr(GHashTable) given = define_and_read_back(&cfg);
  ck_assert_str_eq(doc_get(given, "tb-cache", 0), "524288");
}
END_TEST

/* ---- argument validation (never reaches libvirt) ---- */

START_TEST(nic_arguments_are_validated) {
  KvVmm *vmm = kv_vmm_open("test:///default", NULL);
  ck_assert_ptr_nonnull(vmm);
  const char *mac = "52:54:00:12:34:56";

  /* 16 characters are one too many: IFNAMSIZ counts the NUL. */
  const char *bad_taps[] = {"",          "tap/0", "tap 0", "tap0;rm", "..", "a-name-of-16-chr",
                            "t\xc3\xa4p"};
  for (gsize i = 0; i < G_N_ELEMENTS(bad_taps); i++) {
    g_autoptr(GError) err = NULL;
    expect_error(kv_vmm_attach_nic(vmm, "test", bad_taps[i], mac, 0, &err), &err,
                 KV_VMM_ERROR_INVALID, "tap device name");
  }
  g_autoptr(GError) nulltap = NULL;
  expect_error(kv_vmm_attach_nic(vmm, "test", NULL, mac, 0, &nulltap), &nulltap,
               KV_VMM_ERROR_INVALID, "(null)");

  const char *bad_macs[] = {"",
                            "52:54:00:12:34",
                            "52:54:00:12:34:56:78",
                            "52-54-00-12-34-56",
                            "52:54:00:12:34:5g",
                            "5:254:00:12:34:56",
                            "52:54:00:12:34:56 ",
                            "52:54:00:12:34:5'"};
  for (gsize i = 0; i < G_N_ELEMENTS(bad_macs); i++) {
    g_autoptr(GError) err = NULL;
    expect_error(kv_vmm_attach_nic(vmm, "test", "tap0", bad_macs[i], 0, &err), &err,
                 KV_VMM_ERROR_INVALID, "MAC address");
    g_autoptr(GError) err2 = NULL;
    expect_error(kv_vmm_detach_nic(vmm, "test", bad_macs[i], &err2), &err2, KV_VMM_ERROR_INVALID,
                 "MAC address");
  }
  g_autoptr(GError) mcast = NULL;
  expect_error(kv_vmm_attach_nic(vmm, "test", "tap0", "01:00:5e:00:00:01", 0, &mcast), &mcast,
               KV_VMM_ERROR_INVALID, "multicast");
  g_autoptr(GError) mtu = NULL;
  expect_error(kv_vmm_attach_nic(vmm, "test", "tap0", mac, 67, &mtu), &mtu, KV_VMM_ERROR_INVALID,
               "MTU 67");
  g_autoptr(GError) mtu2 = NULL;
  expect_error(kv_vmm_attach_nic(vmm, "test", "tap0", mac, 65536, &mtu2), &mtu2,
               KV_VMM_ERROR_INVALID, "MTU 65536");
  kv_vmm_close(vmm);
}
END_TEST

START_TEST(disk_arguments_are_validated) {
  KvVmm *vmm = kv_vmm_open("test:///default", NULL);
  ck_assert_ptr_nonnull(vmm);

  char tmpl[] = "/tmp/kv-hp-XXXXXX";
  int fd = mkstemp(tmpl);
  ck_assert_int_ge(fd, 0);
  close(fd);

  const char *bad_serials[] = {"", "a-serial-of-21-chars-", "with space", "a/b", "x'y", "ser.ial"};
  for (gsize i = 0; i < G_N_ELEMENTS(bad_serials); i++) {
    g_autoptr(GError) err = NULL;
    expect_error(kv_vmm_attach_disk(vmm, "test", tmpl, bad_serials[i], FALSE, NULL, &err), &err,
                 KV_VMM_ERROR_INVALID, "disk serial");
    g_autoptr(GError) err2 = NULL;
    expect_error(kv_vmm_detach_disk(vmm, "test", bad_serials[i], &err2), &err2,
                 KV_VMM_ERROR_INVALID, "disk serial");
  }

  struct {
    const char *path, *needle;
  } bad_paths[] = {
      {NULL, "not an absolute path"},
      {"disk.raw", "not an absolute path"},
      {"/nonexistent/kv-hp/disk.raw", "No such file or directory"},
      {"/tmp", "neither a regular file nor a block device"},
      {"/dev/null", "neither a regular file nor a block device"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_paths); i++) {
    g_autoptr(GError) err = NULL;
    expect_error(kv_vmm_attach_disk(vmm, "test", bad_paths[i].path, "s1", FALSE, NULL, &err), &err,
                 KV_VMM_ERROR_INVALID, bad_paths[i].needle);
  }
  unlink(tmpl);
  kv_vmm_close(vmm);
}
END_TEST

START_TEST(counts_are_validated) {
  KvVmm *vmm = kv_vmm_open("test:///default", NULL);
  ck_assert_ptr_nonnull(vmm);
  g_autoptr(GError) err = NULL;
  expect_error(kv_vmm_set_vcpus(vmm, "test", 0, &err), &err, KV_VMM_ERROR_INVALID, "at least 1");
  g_autoptr(GError) err2 = NULL;
  expect_error(kv_vmm_set_memory_requested(vmm, "test", 3, &err2), &err2, KV_VMM_ERROR_INVALID,
               "multiple of the 2 MiB");
  kv_vmm_close(vmm);
}
END_TEST

START_TEST(dimm_arguments_are_validated) {
  KvVmm *vmm = kv_vmm_open("test:///default", NULL);
  ck_assert_ptr_nonnull(vmm);
  g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;
  expect_error(kv_vmm_attach_dimm(vmm, "test", 100, "ua-d0", &e1), &e1, KV_VMM_ERROR_INVALID,
               "multiple of 128");
  expect_error(kv_vmm_attach_dimm(vmm, "test", 128, "d0", &e2), &e2, KV_VMM_ERROR_INVALID, "alias");
  expect_error(kv_vmm_detach_dimm(vmm, "test", "ua-'x", &e3), &e3, KV_VMM_ERROR_INVALID, "alias");
  kv_vmm_close(vmm);
}
END_TEST

START_TEST(xml_dimm_mode_has_no_virtio_mem) {
  KvVmConfig cfg = hotplug_config();
  cfg.memory_dimm = TRUE;
  g_autoptr(GHashTable) doc = define_and_read_back(&cfg);
  /* Room for DIMMs up to max memory; nothing plugged at boot. */
  ck_assert_str_eq(doc_get(doc, "maxMemory", 0), "1048576");
  ck_assert_str_eq(doc_get(doc, "memory", 0), "262144");
  ck_assert_uint_eq(doc_count(doc, "memory@model", "virtio-mem"), 0);
}
END_TEST

/* ---- against a running test-driver domain ---- */

START_TEST(missing_domain_is_not_found) {
  KvVmm *vmm = kv_vmm_open("test:///default", NULL);
  ck_assert_ptr_nonnull(vmm);
  const char *n = "no-such-domain";
  GError *err = NULL;

  ck_assert_uint_eq(kv_vmm_get_vcpus(vmm, n, &err), 0);
  expect_error(FALSE, &err, KV_VMM_ERROR_NOT_FOUND, "no domain 'no-such");
  g_clear_error(&err);
  expect_error(kv_vmm_set_vcpus(vmm, n, 2, &err), &err, KV_VMM_ERROR_NOT_FOUND, n);
  g_clear_error(&err);
  ck_assert_uint_eq(kv_vmm_get_memory_plugged(vmm, n, &err), 0);
  expect_error(FALSE, &err, KV_VMM_ERROR_NOT_FOUND, n);
  g_clear_error(&err);
  expect_error(kv_vmm_detach_nic(vmm, n, "52:54:00:12:34:56", &err), &err, KV_VMM_ERROR_NOT_FOUND,
               n);
  g_clear_error(&err);
  expect_error(kv_vmm_detach_disk(vmm, n, "s1", &err), &err, KV_VMM_ERROR_NOT_FOUND, n);
  g_clear_error(&err);

  /* A defined domain that is not running counts as missing too. */
  ck_assert(kv_vmm_destroy(vmm, "test", NULL));
  expect_error(kv_vmm_set_vcpus(vmm, "test", 2, &err), &err, KV_VMM_ERROR_NOT_FOUND,
               "is not running");
  g_clear_error(&err);
  kv_vmm_close(vmm);
}
END_TEST

START_TEST(vcpus_only_grow) {
  KvVmConfig cfg = hotplug_config();
  KvVmm *vmm = open_with_domain(&cfg);
  GError *err = NULL;

  ck_assert_uint_eq(kv_vmm_get_vcpus(vmm, cfg.name, &err), 1);
  ck_assert_msg(kv_vmm_set_vcpus(vmm, cfg.name, 3, &err), "%s", err ? err->message : "");
  ck_assert_uint_eq(kv_vmm_get_vcpus(vmm, cfg.name, NULL), 3);
  /* Same count: nothing to do. */
  ck_assert(kv_vmm_set_vcpus(vmm, cfg.name, 3, NULL));

  /* Unplug would crash QEMU under TCG: refused, the count unchanged. */
  expect_error(kv_vmm_set_vcpus(vmm, cfg.name, 2, &err), &err, KV_VMM_ERROR_INVALID,
               "offline them in the guest");
  g_clear_error(&err);
  expect_error(kv_vmm_set_vcpus(vmm, cfg.name, 5, &err), &err, KV_VMM_ERROR_INVALID, "at most 4");
  g_clear_error(&err);
  ck_assert_uint_eq(kv_vmm_get_vcpus(vmm, cfg.name, NULL), 3);

  ck_assert(kv_vmm_set_vcpus(vmm, cfg.name, 4, NULL));
  ck_assert_uint_eq(kv_vmm_get_vcpus(vmm, cfg.name, NULL), 4);
  kv_vmm_destroy(vmm, cfg.name, NULL);
  kv_vmm_close(vmm);
}
END_TEST

START_TEST(virtio_mem_sizes_from_live_xml) {
  KvVmConfig cfg = hotplug_config();
  KvVmm *vmm = open_with_domain(&cfg);
  GError *err = NULL;

  ck_assert_uint_eq(kv_vmm_get_memory_requested(vmm, cfg.name, &err), 0);
  ck_assert_ptr_null(err);
  /* No <current> until QEMU reports a size: nothing plugged. */
  ck_assert_uint_eq(kv_vmm_get_memory_plugged(vmm, cfg.name, &err), 0);
  ck_assert_ptr_null(err);

  /* More than the region (768 MiB) is refused before libvirt is asked. */
  expect_error(kv_vmm_set_memory_requested(vmm, cfg.name, 770, &err), &err, KV_VMM_ERROR_INVALID,
               "768 MiB");
  g_clear_error(&err);

  /* The test driver cannot update devices: libvirt's refusal is passed
   * on. (Against QEMU this is the resize; see hotplug.c.) */
  if (!kv_vmm_set_memory_requested(vmm, cfg.name, 256, &err)) {
    expect_error(FALSE, &err, KV_VMM_ERROR_LIBVIRT, "virtio-mem size");
    g_clear_error(&err);
  } else {
    ck_assert_uint_eq(kv_vmm_get_memory_requested(vmm, cfg.name, NULL), 256);
  }
  kv_vmm_destroy(vmm, cfg.name, NULL);

  /* A domain without memory hotplug has no virtio-mem device. */
  cfg.max_memory_mib = cfg.memory_mib;
  kv_vmm_close(vmm);
  vmm = open_with_domain(&cfg);
  ck_assert_uint_eq(kv_vmm_get_memory_requested(vmm, cfg.name, &err), 0);
  expect_error(FALSE, &err, KV_VMM_ERROR_NOT_FOUND, "no virtio-mem device");
  g_clear_error(&err);
  expect_error(kv_vmm_set_memory_requested(vmm, cfg.name, 2, &err), &err, KV_VMM_ERROR_NOT_FOUND,
               "no virtio-mem device");
  g_clear_error(&err);
  kv_vmm_destroy(vmm, cfg.name, NULL);
  kv_vmm_close(vmm);
}
END_TEST

START_TEST(detach_of_unknown_devices_is_not_found) {
  KvVmConfig cfg = hotplug_config();
  KvVmm *vmm = open_with_domain(&cfg);
  GError *err = NULL;

  expect_error(kv_vmm_detach_nic(vmm, cfg.name, "52:54:00:12:34:56", &err), &err,
               KV_VMM_ERROR_NOT_FOUND, "domain 'hp-1' has no NIC with MAC 52:54:00:12:34:56");
  g_clear_error(&err);
  expect_error(kv_vmm_detach_disk(vmm, cfg.name, "data-1", &err), &err, KV_VMM_ERROR_NOT_FOUND,
               "domain 'hp-1' has no disk with serial 'data-1'");
  g_clear_error(&err);
  kv_vmm_destroy(vmm, cfg.name, NULL);
  kv_vmm_close(vmm);
}
END_TEST

/* The test driver has no attach: what comes back is libvirt's refusal with
 * our context, not a crash or a false success. */
START_TEST(attach_refused_by_driver_is_libvirt_error) {
  KvVmConfig cfg = hotplug_config();
  KvVmm *vmm = open_with_domain(&cfg);
  GError *err = NULL;

  char tmpl[] = "/tmp/kv-hp-XXXXXX";
  int fd = mkstemp(tmpl);
  ck_assert_int_ge(fd, 0);
  close(fd);

  if (!kv_vmm_attach_nic(vmm, cfg.name, "kvtap0", "52:54:00:12:34:56", 1400, &err)) {
    expect_error(FALSE, &err, KV_VMM_ERROR_LIBVIRT,
                 "cannot attach NIC 52:54:00:12:34:56 (tap kvtap0)");
    g_clear_error(&err);
  }
  char *target = NULL;
  if (!kv_vmm_attach_disk(vmm, cfg.name, tmpl, "data-1", TRUE, &target, &err)) {
    expect_error(FALSE, &err, KV_VMM_ERROR_LIBVIRT, "serial data-1");
    ck_assert_ptr_null(target);
    g_clear_error(&err);
  } else {
    ck_assert_str_eq(target, "vda");
  }
  g_free(target);
  unlink(tmpl);
  kv_vmm_destroy(vmm, cfg.name, NULL);
  kv_vmm_close(vmm);
}
END_TEST

/* ---- the live XML DOM ---- */

/* A virtio-mem device as libvirt renders it live. */
static const char live_domain[] =
    "<domain type='qemu' id='1'>\n"
    "  <devices>\n"
    "    <interface type='ethernet'>\n"
    "      <mac address='52:54:00:aa:bb:cc'/>\n"
    "      <alias name='net0'/>\n"
    "    </interface>\n"
    "    <memory model='virtio-mem'>\n"
    "      <target>\n"
    "        <size unit='KiB'>786432</size>\n"
    "        <node>0</node>\n"
    "        <block unit='KiB'>2048</block>\n"
    "        <requested unit='KiB'>0</requested>\n"
    "        <current unit='KiB'>0</current>\n"
    "      </target>\n"
    "      <alias name='ua-virtiomem0'/>\n"
    "      <address type='pci' domain='0x0000' bus='0x00' slot='0x10' function='0x0'/>\n"
    "    </memory>\n"
    "  </devices>\n"
    "</domain>\n";

START_TEST(livexml_finds_devices_reads_sizes_and_writes_back) {
  g_autoptr(GError) err = NULL;
  g_autoptr(KvXNode) root = kv_xnode_parse(live_domain, &err);
  ck_assert_msg(root != NULL, "%s", err ? err->message : "");
  KvXNode *devices = kv_xnode_child(kv_xnode_child(root, "domain"), "devices");
  ck_assert_ptr_nonnull(devices);
  KvXNode *nic = kv_live_find_alias(devices, NULL, "net0");
  ck_assert_ptr_nonnull(nic);
  ck_assert_str_eq(kv_xnode_child_attr(nic, "mac", "address"), "52:54:00:aa:bb:cc");
  ck_assert_ptr_null(kv_live_find_alias(devices, "memory", "net0"));
  KvXNode *mem = kv_live_find_alias(devices, "memory", KV_VMM_VIRTIO_MEM_ALIAS);
  ck_assert_ptr_nonnull(mem);

  KvXNode *target = kv_xnode_child(mem, "target");
  guint64 kib = 0;
  ck_assert(kv_xnode_size_kib(kv_xnode_child(target, "size"), &kib));
  ck_assert_uint_eq(kib, 786432);
  ck_assert(!kv_xnode_size_kib(kv_xnode_child(target, "absent"), &kib));

  /* Only <requested> changes; the rest is written back as parsed. */
  KvXNode *req = kv_xnode_child(target, "requested");
  kv_xnode_set_text(req, "262144");
  kv_xnode_set_attr(req, "unit", "KiB");
  kv_xnode_set_attr(req, "x", "a'b");
  KvXml *x = kv_xml_new();
  kv_xnode_write(x, mem);
  g_autofree char *xml = kv_xml_finish(x, &err);
  ck_assert_msg(xml != NULL, "%s", err ? err->message : "");
  ck_assert_str_eq(xml, "<memory model='virtio-mem'>\n"
                        "  <target>\n"
                        "    <size unit='KiB'>786432</size>\n"
                        "    <node>0</node>\n"
                        "    <block unit='KiB'>2048</block>\n"
                        "    <requested unit='KiB' x='a&apos;b'>262144</requested>\n"
                        "    <current unit='KiB'>0</current>\n"
                        "  </target>\n"
                        "  <alias name='ua-virtiomem0'/>\n"
                        "  <address type='pci' domain='0x0000' bus='0x00' slot='0x10' "
                        "function='0x0'/>\n"
                        "</memory>\n");

  g_autoptr(GError) bad = NULL;
  ck_assert_ptr_null(kv_xnode_parse("<domain><devices></domain>", &bad));
  ck_assert_int_eq(bad->code, KV_VMM_ERROR_LIBVIRT);
}
END_TEST

START_TEST(device_xml_is_escaped_and_complete) {
  g_autoptr(GError) err = NULL;
  g_autofree char *nic = kv_nic_xml("tap0", "52:54:00:12:34:56", 1400, &err);
  ck_assert_msg(nic != NULL, "%s", err ? err->message : "");
  ck_assert_str_eq(nic, "<interface type='ethernet'>\n"
                        "  <mac address='52:54:00:12:34:56'/>\n"
                        "  <target dev='tap0' managed='no'/>\n"
                        "  <model type='virtio'/>\n"
                        "  <mtu size='1400'/>\n"
                        "</interface>\n");
  g_autofree char *nic0 = kv_nic_xml("tap0", "52:54:00:12:34:56", 0, NULL);
  ck_assert_ptr_null(strstr(nic0, "mtu"));

  /* Paths are the one free-form value: quotes and markup stay text. */
  g_autofree char *disk =
      kv_disk_xml("/tmp/a'b&<c>.raw", FALSE, "none", "vdb", "data-1", TRUE, &err);
  ck_assert_msg(disk != NULL, "%s", err ? err->message : "");
  ck_assert_str_eq(disk, "<disk type='file' device='disk'>\n"
                         "  <driver name='qemu' type='raw' cache='none'/>\n"
                         "  <source file='/tmp/a&apos;b&amp;&lt;c&gt;.raw'/>\n"
                         "  <target dev='vdb' bus='virtio'/>\n"
                         "  <serial>data-1</serial>\n"
                         "  <readonly/>\n"
                         "</disk>\n");
  g_autofree char *blk = kv_disk_xml("/dev/sdz", TRUE, "writeback", "vda", "s", FALSE, NULL);
  g_autoptr(GHashTable) doc = parse_doc(blk);
  ck_assert_str_eq(doc_get(doc, "disk@type", 0), "block");
  ck_assert_str_eq(doc_get(doc, "source@dev", 0), "/dev/sdz");
  ck_assert_str_eq(doc_get(doc, "driver@cache", 0), "writeback");
  ck_assert_ptr_null(strstr(blk, "readonly"));

  g_autofree char *dimm = kv_dimm_xml(256, "ua-d0", &err);
  ck_assert_msg(dimm != NULL, "%s", err ? err->message : "");
  g_autoptr(GHashTable) ddoc = parse_doc(dimm);
  ck_assert_str_eq(doc_get(ddoc, "memory@model", 0), "dimm");
  ck_assert_str_eq(doc_get(ddoc, "size", 0), "256");
  ck_assert_str_eq(doc_get(ddoc, "size@unit", 0), "MiB");
  ck_assert_str_eq(doc_get(ddoc, "node", 0), "0");
  ck_assert_str_eq(doc_get(ddoc, "alias@name", 0), "ua-d0");
}
END_TEST

static Suite *hotplug_suite(void) {
  Suite *s = suite_create("vmm-hotplug");

  TCase *xml = tcase_create("xml");
  tcase_add_test(xml, xml_defines_virtio_mem_device_with_nothing_requested);
  tcase_add_test(xml, xml_virtio_mem_size_is_whole_blocks);
  tcase_add_test(xml, xml_dimm_mode_has_no_virtio_mem);
  tcase_add_test(xml, livexml_finds_devices_reads_sizes_and_writes_back);
  tcase_add_test(xml, device_xml_is_escaped_and_complete);
  suite_add_tcase(s, xml);

  TCase *args = tcase_create("arguments");
  tcase_add_test(args, nic_arguments_are_validated);
  tcase_add_test(args, disk_arguments_are_validated);
  tcase_add_test(args, counts_are_validated);
  tcase_add_test(args, dimm_arguments_are_validated);
  suite_add_tcase(s, args);

  TCase *live = tcase_create("test-driver");
  tcase_set_timeout(live, 30);
  tcase_add_test(live, missing_domain_is_not_found);
  tcase_add_test(live, vcpus_only_grow);
  tcase_add_test(live, virtio_mem_sizes_from_live_xml);
  tcase_add_test(live, detach_of_unknown_devices_is_not_found);
  tcase_add_test(live, attach_refused_by_driver_is_libvirt_error);
  suite_add_tcase(s, live);

  return s;
}

int main(void) {
  SRunner *sr = srunner_create(hotplug_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
