/* tests/unit/test_vmm.c: lib/vmm without booting anything.
 *
 * Domain XML is checked by handing it to libvirt's test driver
 * (test:///default), which parses it with the same parser as the QEMU
 * driver, and reading it back; the accelerator decision is driven through
 * kv_accel_resolve_with so that both the KVM and the TCG branch run on any
 * machine. A real boot under the embedded driver is out of scope here (the
 * integration tests do that). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "vmm.h"
#include "xml-doc.h"
#include "xmlbuild.h"

/* ---- helpers ---- */

static KvVmConfig good_config(void) {
  KvVmConfig cfg = {
      .name = "sb-1",
      .kernel = "/var/lib/katavm/vmlinux",
      .initrd = "/var/lib/katavm/initrd.cpio",
      .cmdline = "console=ttyS0 panic=-1",
      .accel = KV_ACCEL_TCG,
      .vcpus = 1,
      .max_vcpus = 4,
      .memory_mib = 256,
      .max_memory_mib = 1024,
      .agent_socket = "/run/katavm/sb-1/agent.sock",
      .shared_dir = "/run/katavm/sb-1/shared",
      .console_log = "/run/katavm/sb-1/console.log",
      .spare_root_ports = 4,
  };
  return cfg;
}

/* Expect kv_vmm_domain_xml to reject cfg with KV_VMM_ERROR_INVALID and a
 * message containing `needle`. */
static void expect_invalid(const KvVmConfig *cfg, const char *needle) {
  g_autoptr(GError) err = NULL;
  g_autofree char *xml = kv_vmm_domain_xml(cfg, &err);
  ck_assert_ptr_null(xml);
  ck_assert_ptr_nonnull(err);
  ck_assert_int_eq(err->code, KV_VMM_ERROR_INVALID);
  ck_assert_msg(strstr(err->message, needle), "message '%s' lacks '%s'", err->message, needle);
}

/* ---- accelerator ---- */

START_TEST(accel_parse_accepts_the_three_names) {
  KvAccel a = KV_ACCEL_TCG;
  ck_assert(kv_accel_parse("auto", &a, NULL));
  ck_assert_int_eq(a, KV_ACCEL_AUTO);
  ck_assert(kv_accel_parse("kvm", &a, NULL));
  ck_assert_int_eq(a, KV_ACCEL_KVM);
  ck_assert(kv_accel_parse("TCG", &a, NULL));
  ck_assert_int_eq(a, KV_ACCEL_TCG);
  for (KvAccel x = KV_ACCEL_AUTO; x <= KV_ACCEL_TCG; x++) {
    ck_assert(kv_accel_parse(kv_accel_name(x), &a, NULL));
    ck_assert_int_eq(a, x);
  }
}
END_TEST

START_TEST(accel_parse_rejects_unknown_names) {
  const char *bad[] = {"xen", "", "kvm ", NULL};
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) err = NULL;
    KvAccel a;
    ck_assert(!kv_accel_parse(bad[i], &a, &err));
    ck_assert_int_eq(err->code, KV_VMM_ERROR_INVALID);
    ck_assert_ptr_nonnull(strstr(err->message, "auto, kvm or tcg"));
  }
}
END_TEST

static const char cpuinfo_vmx[] = "processor\t: 0\nmodel name\t: Some CPU\n"
                                  "flags\t\t: fpu vme de pse tsc msr vmx sse sse2\n\n";
static const char cpuinfo_svm[] = "processor\t: 0\nflags\t\t: fpu svm lm\n\n";
/* What a PVM guest shows: no vmx/svm flag, even though "vmx" appears
 * elsewhere and as part of other flag names. */
static const char cpuinfo_none[] = "processor\t: 0\nmodel name\t: vmx svm lookalike\n"
                                   "flags\t\t: fpu vmxe svmx lm hypervisor\n\n";

START_TEST(accel_auto_is_kvm_with_flags_and_usable_dev_kvm) {
  KvAccel out = KV_ACCEL_AUTO;
  g_autofree char *reason = NULL;
  ck_assert(kv_accel_resolve_with(KV_ACCEL_AUTO, cpuinfo_vmx, TRUE, "/dev/kvm present", &out,
                                  &reason, NULL));
  ck_assert_int_eq(out, KV_ACCEL_KVM);
  ck_assert_msg(g_str_has_prefix(reason, "KVM:") && strstr(reason, "vmx"), "%s", reason);

  g_autofree char *reason2 = NULL;
  ck_assert(kv_accel_resolve_with(KV_ACCEL_KVM, cpuinfo_svm, TRUE, NULL, &out, &reason2, NULL));
  ck_assert_int_eq(out, KV_ACCEL_KVM);
  ck_assert_ptr_nonnull(strstr(reason2, "svm"));
}
END_TEST

START_TEST(accel_auto_is_tcg_on_pvm_host) {
  KvAccel out = KV_ACCEL_AUTO;
  g_autofree char *reason = NULL;
  ck_assert(kv_accel_resolve_with(KV_ACCEL_AUTO, cpuinfo_none, TRUE, "/dev/kvm present", &out,
                                  &reason, NULL));
  ck_assert_int_eq(out, KV_ACCEL_TCG);
  ck_assert_str_eq(reason, "TCG: CPU flags show no vmx/svm (nested virtualisation "
                           "unavailable); /dev/kvm present but unusable for "
                           "ordinary guests");
}
END_TEST

START_TEST(accel_auto_is_tcg_without_dev_kvm) {
  KvAccel out = KV_ACCEL_AUTO;
  g_autofree char *reason = NULL;
  ck_assert(kv_accel_resolve_with(KV_ACCEL_AUTO, cpuinfo_vmx, FALSE,
                                  "/dev/kvm: No such file or directory", &out, &reason, NULL));
  ck_assert_int_eq(out, KV_ACCEL_TCG);
  ck_assert_msg(g_str_has_prefix(reason, "TCG:") && strstr(reason, "No such file"), "%s", reason);

  /* Unreadable cpuinfo proves nothing: TCG. */
  ck_assert(kv_accel_resolve_with(KV_ACCEL_AUTO, NULL, TRUE, NULL, &out, NULL, NULL));
  ck_assert_int_eq(out, KV_ACCEL_TCG);
}
END_TEST

START_TEST(accel_explicit_kvm_without_kvm_is_unsupported) {
  KvAccel out = KV_ACCEL_AUTO;
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_accel_resolve_with(KV_ACCEL_KVM, cpuinfo_none, TRUE, "/dev/kvm present", &out, NULL,
                                   &err));
  ck_assert_int_eq(err->code, KV_VMM_ERROR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(err->message, "no vmx/svm"));
}
END_TEST

START_TEST(accel_explicit_tcg_is_always_tcg) {
  KvAccel out = KV_ACCEL_AUTO;
  ck_assert(kv_accel_resolve_with(KV_ACCEL_TCG, cpuinfo_vmx, TRUE, NULL, &out, NULL, NULL));
  ck_assert_int_eq(out, KV_ACCEL_TCG);
  ck_assert(kv_accel_resolve(KV_ACCEL_TCG, &out, NULL, NULL));
  ck_assert_int_eq(out, KV_ACCEL_TCG);
}
END_TEST

/* On the real host the answer depends on the machine; only its shape is
 * checked. */
START_TEST(accel_resolve_auto_on_this_host_gives_a_reason) {
  KvAccel out = KV_ACCEL_AUTO;
  g_autofree char *reason = NULL;
  ck_assert(kv_accel_resolve(KV_ACCEL_AUTO, &out, &reason, NULL));
  ck_assert(out == KV_ACCEL_KVM || out == KV_ACCEL_TCG);
  ck_assert(g_str_has_prefix(reason, out == KV_ACCEL_KVM ? "KVM:" : "TCG:"));
}
END_TEST

/* ---- domain XML ---- */

START_TEST(xml_escapes_values_and_libvirt_reads_them_back) {
  KvVmConfig cfg = good_config();
  cfg.kernel = "/tmp/a&b<c'd\"e>/vmlinux";
  cfg.cmdline = "console=ttyS0 x=\"1 & 2\" <y>";
  cfg.shared_dir = "/tmp/it's & <shared>";

  g_autoptr(GError) err = NULL;
  g_autofree char *xml = kv_vmm_domain_xml(&cfg, &err);
  ck_assert_msg(xml != NULL, "%s", err ? err->message : "");
  ck_assert_ptr_nonnull(strstr(xml, "/tmp/a&amp;b&lt;c&apos;d&quot;e&gt;"));
  ck_assert_ptr_null(strstr(xml, "a&b"));

  /* Our own document parses and holds the raw values. */
  g_autoptr(GHashTable) ours = parse_doc(xml);
  ck_assert_str_eq(doc_get(ours, "kernel", 0), cfg.kernel);
  ck_assert_str_eq(doc_get(ours, "cmdline", 0), cfg.cmdline);
  ck_assert(doc_has(ours, "source@dir", cfg.shared_dir));

  /* And libvirt's parser agrees. */
  virConnectPtr conn = virConnectOpen("test:///default");
  ck_assert_ptr_nonnull(conn);
  virDomainPtr dom = virDomainDefineXML(conn, xml);
  ck_assert_msg(dom != NULL, "libvirt rejects our XML: %s\n%s", virGetLastErrorMessage(), xml);
  ck_assert_int_eq(virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_CONFIG), 1);
  ck_assert_int_eq(virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_VCPU_MAXIMUM),
                   4);
  char *back = virDomainGetXMLDesc(dom, 0);
  ck_assert_ptr_nonnull(back);
  g_autoptr(GHashTable) theirs = parse_doc(back);
  free(back);

  ck_assert_str_eq(doc_get(theirs, "domain@type", 0), "qemu");
  ck_assert_str_eq(doc_get(theirs, "type@machine", 0), "q35");
  ck_assert_str_eq(doc_get(theirs, "kernel", 0), cfg.kernel);
  ck_assert_str_eq(doc_get(theirs, "initrd", 0), cfg.initrd);
  ck_assert_str_eq(doc_get(theirs, "cmdline", 0), cfg.cmdline);
  ck_assert_str_eq(doc_get(theirs, "vcpu@current", 0), "1");
  ck_assert_str_eq(doc_get(theirs, "vcpu", 0), "4");
  /* libvirt normalises to KiB. */
  ck_assert_str_eq(doc_get(theirs, "maxMemory", 0), "1048576");
  ck_assert_str_eq(doc_get(theirs, "maxMemory@slots", 0), "8");
  /* boot memory + the virtio-mem region (libvirt counts both). */
  ck_assert_str_eq(doc_get(theirs, "memory", 0), "1048576");
  ck_assert_str_eq(doc_get(theirs, "cell@cpus", 0), "0-3");
  ck_assert_str_eq(doc_get(theirs, "cell@memory", 0), "262144");
  /* A larger TCG cache when vCPUs can be hot-added (see xml.c). */
  ck_assert_str_eq(doc_get(theirs, "tb-cache", 0), "262144");
  ck_assert(doc_has(theirs, "target@name", "io.katavm.agent.0"));
  ck_assert(doc_has(theirs, "source@path", cfg.agent_socket));
  ck_assert(doc_has(theirs, "source@dir", cfg.shared_dir));
  ck_assert(doc_has(theirs, "target@dir", "katavmshared"));
  ck_assert(doc_has(theirs, "source@path", cfg.console_log));
  ck_assert(doc_has(theirs, "controller@model", "none"));
  ck_assert(doc_has(theirs, "memballoon@model", "none"));
  /* Two virtio-serial ports (0 and the agent's 1), not QEMU's 31. */
  ck_assert(doc_has(theirs, "controller@ports", "2"));
  /* virtio-serial and the 9p share sit on pcie-root itself, so libvirt
   * adds no root port for them: every root port is a spare one. */
  ck_assert_uint_eq(doc_count(theirs, "controller@model", "pcie-root-port"), cfg.spare_root_ports);
  ck_assert_uint_eq(doc_count(theirs, "address@slot", "0x11"), 1);
  ck_assert_uint_eq(doc_count(theirs, "address@slot", "0x12"), 1);
  ck_assert_str_eq(doc_get(theirs, "on_poweroff", 0), "destroy");
  ck_assert_str_eq(doc_get(theirs, "on_reboot", 0), "destroy");
  ck_assert_str_eq(doc_get(theirs, "on_crash", 0), "destroy");
  ck_assert_ptr_null(doc_get(theirs, "graphics@type", 0));

  virDomainUndefine(dom);
  virDomainFree(dom);
  virConnectClose(conn);
}
END_TEST

START_TEST(xml_without_hotplug_or_share_is_minimal) {
  KvVmConfig cfg = good_config();
  cfg.max_vcpus = cfg.vcpus = 2;
  cfg.max_memory_mib = cfg.memory_mib;
  cfg.shared_dir = NULL;
  cfg.spare_root_ports = 0;
  cfg.accel = KV_ACCEL_KVM;

  g_autofree char *xml = kv_vmm_domain_xml(&cfg, NULL);
  ck_assert_ptr_nonnull(xml);
  g_autoptr(GHashTable) doc = parse_doc(xml);
  ck_assert_str_eq(doc_get(doc, "domain@type", 0), "kvm");
  ck_assert_ptr_null(doc_get(doc, "maxMemory", 0));
  ck_assert_ptr_null(doc_get(doc, "cell@cpus", 0));
  ck_assert_ptr_null(doc_get(doc, "vcpu@current", 0));
  ck_assert_str_eq(doc_get(doc, "vcpu", 0), "2");
  ck_assert_ptr_null(doc_get(doc, "filesystem@type", 0));
  ck_assert_ptr_null(doc_get(doc, "tb-cache", 0));
  ck_assert_str_eq(doc_get(doc, "cpu@mode", 0), "host-passthrough");
  ck_assert_uint_eq(doc_count(doc, "controller@model", "pcie-root-port"), 0);
  /* ACPI under KVM too: q35 does not boot without it. */
  ck_assert_ptr_nonnull(strstr(xml, "<acpi/>"));
}
END_TEST

START_TEST(xml_virtiofs_share_has_shared_memory_and_socket) {
  KvVmConfig cfg = good_config();
  cfg.virtiofs_socket = "/run/katavm/r/0123/vfs.sock";

  g_autoptr(GError) err = NULL;
  g_autofree char *xml = kv_vmm_domain_xml(&cfg, &err);
  ck_assert_msg(xml != NULL, "%s", err ? err->message : "");
  virConnectPtr conn = virConnectOpen("test:///default");
  ck_assert_ptr_nonnull(conn);
  virDomainPtr dom = virDomainDefineXML(conn, xml);
  ck_assert_msg(dom != NULL, "libvirt rejects our XML: %s\n%s", virGetLastErrorMessage(), xml);
  char *back = virDomainGetXMLDesc(dom, 0);
  ck_assert_ptr_nonnull(back);
  g_autoptr(GHashTable) theirs = parse_doc(back);
  free(back);
  /* Guest RAM a vhost-user daemon can map, with the virtio-mem region. */
  ck_assert_str_eq(doc_get(theirs, "source@type", 0), "memfd");
  ck_assert_str_eq(doc_get(theirs, "access@mode", 0), "shared");
  ck_assert_str_eq(doc_get(theirs, "memory@model", 0), "virtio-mem");
  /* virtio-fs on the caller's socket, no 9p source dir. */
  ck_assert_str_eq(doc_get(theirs, "driver@type", 0), "virtiofs");
  ck_assert_str_eq(doc_get(theirs, "driver@queue", 0), "1024");
  ck_assert(doc_has(theirs, "source@socket", cfg.virtiofs_socket));
  ck_assert(doc_has(theirs, "target@dir", "katavmshared"));
  ck_assert(!doc_has(theirs, "source@dir", cfg.shared_dir));
  ck_assert_uint_eq(doc_count(theirs, "address@slot", "0x12"), 1);
  virDomainUndefine(dom);
  virDomainFree(dom);
  virConnectClose(conn);

  /* 9p: no shared memory backing. */
  cfg.virtiofs_socket = NULL;
  g_autofree char *p9 = kv_vmm_domain_xml(&cfg, NULL);
  ck_assert_ptr_null(strstr(p9, "memoryBacking"));
  ck_assert_ptr_null(strstr(p9, "virtiofs"));

  /* A relative or too long socket path is refused by name. */
  cfg.virtiofs_socket = "vfs.sock";
  g_autoptr(GError) e1 = NULL;
  ck_assert_ptr_null(kv_vmm_domain_xml(&cfg, &e1));
  ck_assert_msg(strstr(e1->message, "virtio-fs socket"), "%s", e1->message);
  g_autofree char *longp = g_strdup_printf("/%0200d", 0);
  cfg.virtiofs_socket = longp;
  g_autoptr(GError) e2 = NULL;
  ck_assert_ptr_null(kv_vmm_domain_xml(&cfg, &e2));
  ck_assert_msg(strstr(e2->message, "virtio-fs socket path"), "%s", e2->message);
}
END_TEST

/* 9p through QEMU's proxy backend: no <filesystem> (libvirt would run a
 * passthrough 9p in QEMU), the -fsdev proxy and the virtio-9p-pci device
 * at the share's slot as QEMU arguments, which libvirt accepts. */
START_TEST(xml_9p_proxy_share_is_qemu_args) {
  KvVmConfig cfg = good_config();
  cfg.ninep_proxy_socket = "/run/katavm/r/0123/9p.sock";
  g_autoptr(GError) err = NULL;
  g_autofree char *xml = kv_vmm_domain_xml(&cfg, &err);
  ck_assert_msg(xml != NULL, "%s", err ? err->message : "");
  g_autoptr(GHashTable) doc = parse_doc(xml);
  ck_assert_str_eq(doc_get(doc, "domain@xmlns:qemu", 0),
                   "http://libvirt.org/schemas/domain/qemu/1.0");
  ck_assert_ptr_null(doc_get(doc, "filesystem@type", 0));
  ck_assert_ptr_null(strstr(xml, "memoryBacking"));
  ck_assert(doc_has(doc, "qemu:arg@value", "-fsdev"));
  ck_assert(doc_has(doc, "qemu:arg@value", "proxy,id=fskatavm,socket=/run/katavm/r/0123/9p.sock"));
  ck_assert(doc_has(doc, "qemu:arg@value", "-device"));
  ck_assert(doc_has(doc, "qemu:arg@value",
                    "virtio-9p-pci,fsdev=fskatavm,mount_tag=katavmshared,bus=pcie.0,addr=0x12"));
  /* Nothing of libvirt's own sits at the share's slot. */
  ck_assert_uint_eq(doc_count(doc, "address@slot", "0x12"), 0);
  virConnectPtr conn = virConnectOpen("test:///default");
  ck_assert_ptr_nonnull(conn);
  virDomainPtr dom = virDomainDefineXML(conn, xml);
  ck_assert_msg(dom != NULL, "libvirt rejects our XML: %s\n%s", virGetLastErrorMessage(), xml);
  virDomainUndefine(dom);
  virDomainFree(dom);
  virConnectClose(conn);

  /* virtio-fs wins when both are given. */
  cfg.virtiofs_socket = "/run/katavm/r/0123/vfs.sock";
  g_autofree char *vfs = kv_vmm_domain_xml(&cfg, NULL);
  ck_assert_ptr_null(strstr(vfs, "qemu:commandline"));
  cfg.virtiofs_socket = NULL;

  /* A comma would end QEMU's option value: refused by name. */
  cfg.ninep_proxy_socket = "/run/a,b/9p.sock";
  g_autoptr(GError) e1 = NULL;
  ck_assert_ptr_null(kv_vmm_domain_xml(&cfg, &e1));
  ck_assert_msg(strstr(e1->message, "9p proxy socket path"), "%s", e1->message);
  cfg.ninep_proxy_socket = "9p.sock";
  g_autoptr(GError) e2 = NULL;
  ck_assert_ptr_null(kv_vmm_domain_xml(&cfg, &e2));
  ck_assert_msg(strstr(e2->message, "9p proxy socket"), "%s", e2->message);
}
END_TEST

START_TEST(xml_rejects_invalid_configs_clearly) {
  KvVmConfig cfg;

  cfg = good_config();
  cfg.name = NULL;
  expect_invalid(&cfg, "name is missing");
  cfg.name = "a b";
  expect_invalid(&cfg, "invalid character ' '");
  cfg.name = "x/../y";
  expect_invalid(&cfg, "invalid character '/'");
  cfg.name = "<x>";
  expect_invalid(&cfg, "invalid character '<'");

  cfg = good_config();
  cfg.uuid = "not-a-uuid";
  expect_invalid(&cfg, "not a valid UUID");

  cfg = good_config();
  cfg.kernel = NULL;
  expect_invalid(&cfg, "kernel is missing");
  cfg = good_config();
  cfg.initrd = "initrd.cpio";
  expect_invalid(&cfg, "initrd 'initrd.cpio' is not an absolute path");
  cfg = good_config();
  cfg.agent_socket = "";
  expect_invalid(&cfg, "agent socket is missing");
  cfg = good_config();
  cfg.console_log = NULL;
  expect_invalid(&cfg, "console log is missing");
  cfg = good_config();
  cfg.shared_dir = "shared";
  expect_invalid(&cfg, "shared dir 'shared' is not an absolute path");

  cfg = good_config();
  g_autofree char *long_sock = g_strnfill(120, 'a');
  long_sock[0] = '/';
  cfg.agent_socket = long_sock;
  expect_invalid(&cfg, "longer than the 107");

  cfg = good_config();
  cfg.accel = KV_ACCEL_AUTO;
  expect_invalid(&cfg, "not resolved");

  cfg = good_config();
  cfg.vcpus = 0;
  expect_invalid(&cfg, "vcpus must be at least 1");
  cfg = good_config();
  cfg.vcpus = 4;
  cfg.max_vcpus = 2;
  expect_invalid(&cfg, "max_vcpus (2) is below vcpus (4)");
  cfg = good_config();
  cfg.memory_mib = 32;
  expect_invalid(&cfg, "below the minimum of 64 MiB");
  cfg = good_config();
  cfg.max_memory_mib = 128;
  expect_invalid(&cfg, "max_memory_mib (128) is below memory_mib (256)");

  g_autoptr(GError) err = NULL;
  ck_assert_ptr_null(kv_vmm_domain_xml(NULL, &err));
  ck_assert_int_eq(err->code, KV_VMM_ERROR_INVALID);
}
END_TEST

/* ---- embedded-driver root ---- */

static char *make_tmpdir(void) {
  /* Under /tmp, not $TMPDIR: embedded roots must stay short. */
  char *dir = g_strdup("/tmp/kvvmm-XXXXXX");
  ck_assert_msg(g_mkdtemp(dir) != NULL, "mkdtemp: %s", g_strerror(errno));
  return dir;
}

static void rm_rf(const char *path) {
  g_autofree char *cmd = NULL;
  g_autofree char *quoted = g_shell_quote(path);
  cmd = g_strdup_printf("rm -rf %s", quoted);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(embed_prepare_writes_conf_and_links_caps_cache) {
  g_autofree char *tmp = make_tmpdir();
  g_autofree char *root = g_build_filename(tmp, "r", NULL);
  g_autofree char *caps = g_build_filename(tmp, "caps", NULL);
  g_autoptr(GError) err = NULL;

  g_autofree char *uri = kv_vmm_embed_prepare(root, caps, &err);
  ck_assert_msg(uri != NULL, "%s", err ? err->message : "");
  g_autofree char *want_uri = g_strdup_printf("qemu:///embed?root=%s", root);
  ck_assert_str_eq(uri, want_uri);

  g_autofree char *conf = g_build_filename(root, "etc", "qemu.conf", NULL);
  g_autofree char *text = NULL;
  ck_assert(g_file_get_contents(conf, &text, NULL, NULL));
  const char *lines[] = {"user = \"+0\"\n",
                         "group = \"+0\"\n",
                         "remember_owner = 0\n",
                         "security_driver = \"none\"\n",
                         "security_default_confined = 0\n",
                         "seccomp_sandbox = 1\n",
                         "namespaces = [ ]\n"};
  for (gsize i = 0; i < G_N_ELEMENTS(lines); i++)
    ck_assert_msg(strstr(text, lines[i]), "qemu.conf lacks %s", lines[i]);

  /* The cache dir is created and ROOT/cache/qemu points at it. */
  ck_assert(g_file_test(caps, G_FILE_TEST_IS_DIR));
  g_autofree char *link = g_build_filename(root, "cache", "qemu", NULL);
  g_autofree char *target = g_file_read_link(link, NULL);
  ck_assert_ptr_nonnull(target);
  ck_assert_str_eq(target, caps);

  /* Preparing again is harmless; a link elsewhere is repointed. */
  g_autofree char *uri2 = kv_vmm_embed_prepare(root, caps, NULL);
  ck_assert_str_eq(uri2, uri);
  g_autofree char *caps2 = g_build_filename(tmp, "caps2", NULL);
  g_autofree char *uri3 = kv_vmm_embed_prepare(root, caps2, NULL);
  ck_assert_ptr_nonnull(uri3);
  g_autofree char *target2 = g_file_read_link(link, NULL);
  ck_assert_str_eq(target2, caps2);

  /* Without a shared cache the root keeps its own. */
  g_autofree char *root2 = g_build_filename(tmp, "r2", NULL);
  g_autofree char *uri4 = kv_vmm_embed_prepare(root2, NULL, NULL);
  ck_assert_ptr_nonnull(uri4);
  g_autofree char *link2 = g_build_filename(root2, "cache", "qemu", NULL);
  ck_assert(!g_file_test(link2, G_FILE_TEST_EXISTS));

  rm_rf(tmp);
}
END_TEST

/* The cached capabilities lose the flag that sends libvirt down its
 * ~400-call CPU read-back; everything else in them stays as it was. */
/* An unprivileged QEMU under virtio-fs: a DAC seclabel that relabels
 * nothing, the serial console on a socket the shim reads, and (qemu.conf)
 * libvirt's private mount namespace back. */
START_TEST(xml_unprivileged_qemu_and_console_socket) {
  KvVmConfig cfg = good_config();
  cfg.virtiofs_socket = "/run/katavm/r/0123/vfs.sock";
  cfg.qemu_label = "+2100000007:+2100000007";
  cfg.console_socket = "/run/katavm/r/0123/console.sock";
  g_autoptr(GError) err = NULL;
  g_autofree char *xml = kv_vmm_domain_xml(&cfg, &err);
  ck_assert_msg(xml != NULL, "%s", err ? err->message : "");
  virConnectPtr conn = virConnectOpen("test:///default");
  ck_assert_ptr_nonnull(conn);
  virDomainPtr dom = virDomainDefineXML(conn, xml);
  ck_assert_msg(dom != NULL, "libvirt rejects our XML: %s\n%s", virGetLastErrorMessage(), xml);
  char *back = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_SECURE);
  ck_assert_ptr_nonnull(back);
  ck_assert_msg(strstr(back, "<seclabel type='static' model='dac' relabel='no'>"), "%s", back);
  ck_assert_msg(strstr(back, "<label>+2100000007:+2100000007</label>"), "%s", back);
  ck_assert_msg(strstr(back, "<serial type='unix'>"), "%s", back);
  ck_assert_msg(strstr(back, "/run/katavm/r/0123/console.sock"), "%s", back);
  ck_assert_msg(!strstr(back, cfg.console_log), "%s", back);
  free(back);
  virDomainUndefine(dom);
  virDomainFree(dom);
  virConnectClose(conn);

  g_autofree char *tmp = make_tmpdir();
  g_autofree char *root = g_build_filename(tmp, "r", NULL);
  g_autofree char *uri = kv_vmm_embed_prepare_ns(root, NULL, TRUE, &err);
  ck_assert_msg(uri != NULL, "%s", err ? err->message : "");
  g_autofree char *conf = g_build_filename(root, "etc", "qemu.conf", NULL);
  g_autofree char *text = NULL;
  ck_assert(g_file_get_contents(conf, &text, NULL, NULL));
  ck_assert_msg(strstr(text, "namespaces = [ \"mount\" ]\n"), "%s", text);
  ck_assert_msg(strstr(text, "seccomp_sandbox = 1\n"), "%s", text);
  rm_rf(tmp);
}
END_TEST

START_TEST(embed_prepare_trims_slow_cpu_fetch_flag) {
  g_autofree char *tmp = make_tmpdir();
  g_autofree char *root = g_build_filename(tmp, "r", NULL);
  g_autofree char *caps = g_build_filename(tmp, "caps", NULL);
  g_autofree char *dir = g_build_filename(caps, "capabilities", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
  const char *before = "<qemuCaps>\n"
                       "  <flag name='kvm'/>\n"
                       "  <flag name='cpu-unavailable-features'/>\n"
                       "  <flag name='cpu-max'/>\n"
                       "</qemuCaps>\n";
  const char *after = "<qemuCaps>\n"
                      "  <flag name='kvm'/>\n"
                      "  <flag name='cpu-max'/>\n"
                      "</qemuCaps>\n";
  g_autofree char *xml = g_build_filename(dir, "abc.xml", NULL);
  g_autofree char *other = g_build_filename(dir, "notes.txt", NULL);
  ck_assert(g_file_set_contents(xml, before, -1, NULL));
  ck_assert(g_file_set_contents(other, before, -1, NULL));

  g_autoptr(GError) err = NULL;
  g_autofree char *uri = kv_vmm_embed_prepare(root, caps, &err);
  ck_assert_msg(uri != NULL, "%s", err ? err->message : "");
  g_autofree char *text = NULL;
  ck_assert(g_file_get_contents(xml, &text, NULL, NULL));
  ck_assert_str_eq(text, after);
  /* Only libvirt's .xml cache files are touched. */
  g_autofree char *text2 = NULL;
  ck_assert(g_file_get_contents(other, &text2, NULL, NULL));
  ck_assert_str_eq(text2, before);
  /* No temporary file is left beside them. */
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  int n = 0;
  while (g_dir_read_name(d) != NULL)
    n++;
  ck_assert_int_eq(n, 2);

  /* Again: nothing left to drop, nothing changes. */
  g_autofree char *uri2 = kv_vmm_embed_prepare(root, caps, NULL);
  ck_assert_ptr_nonnull(uri2);
  g_autofree char *text3 = NULL;
  ck_assert(g_file_get_contents(xml, &text3, NULL, NULL));
  ck_assert_str_eq(text3, after);

  rm_rf(tmp);
}
END_TEST

START_TEST(embed_prepare_rejects_long_and_relative_roots) {
  g_autofree char *tmp = make_tmpdir();
  g_autofree char *caps = g_build_filename(tmp, "caps", NULL);
  g_autofree char *name = g_strnfill(60, 'r');
  g_autofree char *root = g_build_filename(tmp, name, NULL);
  g_autoptr(GError) err = NULL;

  ck_assert_ptr_null(kv_vmm_embed_prepare(root, caps, &err));
  ck_assert_int_eq(err->code, KV_VMM_ERROR_INVALID);
  ck_assert_msg(strstr(err->message, root) && strstr(err->message, "unix socket path limit"), "%s",
                err->message);
  /* Nothing was created for the rejected root. */
  ck_assert(!g_file_test(root, G_FILE_TEST_EXISTS));

  g_clear_error(&err);
  ck_assert_ptr_null(kv_vmm_embed_prepare("run/katavm", caps, &err));
  ck_assert_int_eq(err->code, KV_VMM_ERROR_INVALID);
  ck_assert_ptr_nonnull(strstr(err->message, "not an absolute path"));

  rm_rf(tmp);
}
END_TEST

/* ---- connection ---- */

START_TEST(open_unreachable_uri_fails_quickly_with_connect_error) {
  const char *uris[] = {"qemu+tcp://127.0.0.1:1/system", "qemu:///nonexistent"};
  for (gsize i = 0; i < G_N_ELEMENTS(uris); i++) {
    g_autoptr(GError) err = NULL;
    gint64 t0 = g_get_monotonic_time();
    KvVmm *vmm = kv_vmm_open(uris[i], &err);
    gint64 took = g_get_monotonic_time() - t0;
    ck_assert_ptr_null(vmm);
    ck_assert_int_eq(err->code, KV_VMM_ERROR_CONNECT);
    ck_assert_msg(strstr(err->message, uris[i]), "%s", err->message);
    /* The libvirt reason follows ours. */
    ck_assert_msg(strlen(err->message) > strlen(uris[i]) + 30, "%s", err->message);
    ck_assert_msg(took < 5 * G_USEC_PER_SEC, "%s took %" G_GINT64_FORMAT " us", uris[i], took);
  }
}
END_TEST

typedef struct {
  GMutex lock;
  GCond cond;
  char *domain;
  KvVmEvent ev;
  int count;
} EventLog;

static void record_event(KvVmm *vmm, const char *domain, KvVmEvent ev, gpointer user) {
  EventLog *log = user;
  g_mutex_lock(&log->lock);
  g_free(log->domain);
  log->domain = g_strdup(domain);
  log->ev = ev;
  log->count++;
  g_cond_broadcast(&log->cond);
  g_mutex_unlock(&log->lock);
}

/* test:///default starts with one running domain, "test". */
START_TEST(test_driver_list_destroy_and_stopped_event) {
  g_autoptr(GError) err = NULL;
  KvVmm *vmm = kv_vmm_open("test:///default", &err);
  ck_assert_msg(vmm != NULL, "%s", err ? err->message : "");

  EventLog log = {0};
  g_mutex_init(&log.lock);
  g_cond_init(&log.cond);
  kv_vmm_set_event_handler(vmm, record_event, &log);

  g_auto(GStrv) names = kv_vmm_list(vmm, &err);
  ck_assert_ptr_nonnull(names);
  ck_assert(g_strv_contains((const char *const *)names, "test"));
  ck_assert(kv_vmm_is_running(vmm, "test"));
  /* Not a QEMU URI: no pid to report. */
  ck_assert_int_eq(kv_vmm_qemu_pid(vmm, "test"), 0);

  ck_assert(kv_vmm_destroy(vmm, "test", &err));
  ck_assert(!kv_vmm_is_running(vmm, "test"));
  ck_assert(kv_vmm_wait_stopped(vmm, "test", 1000));
  /* Gone already, and never existed: both success. */
  ck_assert(kv_vmm_destroy(vmm, "test", NULL));
  ck_assert(kv_vmm_destroy(vmm, "no-such-domain", NULL));
  ck_assert(!kv_vmm_is_running(vmm, "no-such-domain"));

  /* The lifecycle event arrives through the event-loop thread. */
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  g_mutex_lock(&log.lock);
  while (log.count == 0 && g_cond_wait_until(&log.cond, &log.lock, deadline))
    ;
  ck_assert_int_ge(log.count, 1);
  ck_assert_str_eq(log.domain, "test");
  ck_assert_int_eq(log.ev, KV_VM_EVENT_STOPPED);
  g_mutex_unlock(&log.lock);

  kv_vmm_close(vmm);
  g_free(log.domain);
}
END_TEST

START_TEST(test_driver_start_transient_domain) {
  g_autoptr(GError) err = NULL;
  KvVmm *vmm = kv_vmm_open("test:///default", &err);
  ck_assert_ptr_nonnull(vmm);

  KvVmConfig cfg = good_config();
  ck_assert_msg(kv_vmm_start(vmm, &cfg, &err), "%s", err ? err->message : "");
  ck_assert(kv_vmm_is_running(vmm, cfg.name));
  g_auto(GStrv) names = kv_vmm_list(vmm, NULL);
  ck_assert(g_strv_contains((const char *const *)names, cfg.name));

  /* A second domain of the same name is libvirt's error, passed on. */
  ck_assert(!kv_vmm_start(vmm, &cfg, &err));
  ck_assert_int_eq(err->code, KV_VMM_ERROR_LIBVIRT);
  ck_assert_ptr_nonnull(strstr(err->message, "cannot start domain 'sb-1': "));
  g_clear_error(&err);

  /* An invalid config never reaches libvirt. */
  cfg.vcpus = 0;
  ck_assert(!kv_vmm_start(vmm, &cfg, &err));
  ck_assert_int_eq(err->code, KV_VMM_ERROR_INVALID);

  ck_assert(kv_vmm_destroy(vmm, "sb-1", NULL));
  ck_assert(kv_vmm_wait_stopped(vmm, "sb-1", 1000));
  kv_vmm_close(vmm);
}
END_TEST

/* Opening an embedded root needs root (user "+0") and the QEMU driver
 * module; the capabilities are probed lazily, so this stays fast. */
START_TEST(embed_open_empty_root) {
  if (geteuid() != 0 || !g_file_test("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/"
                                     "libvirt_driver_qemu.so",
                                     G_FILE_TEST_EXISTS))
    return;

  g_autofree char *tmp = make_tmpdir();
  g_autofree char *root = g_build_filename(tmp, "r", NULL);
  g_autofree char *caps = g_build_filename(tmp, "caps", NULL);
  g_autoptr(GError) err = NULL;
  g_autofree char *uri = kv_vmm_embed_prepare(root, caps, &err);
  ck_assert_ptr_nonnull(uri);

  KvVmm *vmm = kv_vmm_open(uri, &err);
  ck_assert_msg(vmm != NULL, "%s", err ? err->message : "");
  g_auto(GStrv) names = kv_vmm_list(vmm, &err);
  ck_assert_ptr_nonnull(names);
  ck_assert_uint_eq(g_strv_length(names), 0);
  ck_assert(!kv_vmm_is_running(vmm, "sb-1"));
  ck_assert_int_eq(kv_vmm_qemu_pid(vmm, "sb-1"), 0);
  ck_assert(kv_vmm_destroy(vmm, "sb-1", NULL));
  kv_vmm_close(vmm);
  rm_rf(tmp);
}
END_TEST

/* ---- the XML builder ---- */

START_TEST(xmlbuild_escapes_every_value_and_indents) {
  g_autoptr(KvXml) x = kv_xml_new();
  kv_xml_open(x, "a", "p", "it's <&> \"q\"", "skipped", NULL, NULL);
  kv_xml_attr(x, "n", "%u-%s", 7u, "'&");
  kv_xml_leaf(x, "t", "%s", "</t><evil/>");
  kv_xml_empty(x, "e", "k", "v", NULL);
  kv_xml_open(x, "b", NULL);
  kv_xml_leaf(x, "c", "literal & too");
  kv_xml_close(x);
  kv_xml_close(x);
  g_autoptr(GError) err = NULL;
  g_autofree char *doc = kv_xml_finish(g_steal_pointer(&x), &err);
  ck_assert_msg(doc != NULL, "%s", err ? err->message : "");
  ck_assert_str_eq(doc, "<a p='it&apos;s &lt;&amp;&gt; &quot;q&quot;' n='7-&apos;&amp;'>\n"
                        "  <t>&lt;/t&gt;&lt;evil/&gt;</t>\n"
                        "  <e k='v'/>\n"
                        "  <b>\n"
                        "    <c>literal &amp; too</c>\n"
                        "  </b>\n"
                        "</a>\n");
  /* What we write, GMarkup reads back as the same values. */
  g_autoptr(GHashTable) back = parse_doc(doc);
  ck_assert_str_eq(doc_get(back, "a@p", 0), "it's <&> \"q\"");
  ck_assert_str_eq(doc_get(back, "t", 0), "</t><evil/>");
}
END_TEST

static void quiet_log(const char *domain, GLogLevelFlags level, const char *msg, gpointer user) {
  (*(int *)user)++;
}

START_TEST(xmlbuild_refuses_bad_names_and_unclosed_elements) {
  int criticals = 0;
  GLogFunc old = g_log_set_default_handler(quiet_log, &criticals);
  const char *bad[] = {"a b", "a'", "<a", "", "1a", "a/"};
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    KvXml *x = kv_xml_new();
    kv_xml_open(x, "ok", NULL);
    kv_xml_empty(x, bad[i], NULL);
    kv_xml_close(x);
    g_autoptr(GError) err = NULL;
    ck_assert_ptr_null(kv_xml_finish(x, &err));
    ck_assert_int_eq(err->code, KV_VMM_ERROR_INVALID);
    KvXml *y = kv_xml_new();
    kv_xml_empty(y, "ok", bad[i], "v", NULL);
    g_autoptr(GError) err2 = NULL;
    ck_assert_ptr_null(kv_xml_finish(y, &err2));
  }
  KvXml *x = kv_xml_new();
  kv_xml_open(x, "open", NULL);
  g_autoptr(GError) err = NULL;
  ck_assert_ptr_null(kv_xml_finish(x, &err));
  ck_assert_ptr_nonnull(strstr(err->message, "'open' is not closed"));
  g_log_set_default_handler(old, NULL);
  ck_assert_int_gt(criticals, 0);
}
END_TEST

static Suite *vmm_suite(void) {
  Suite *s = suite_create("vmm");

  TCase *accel = tcase_create("accel");
  tcase_add_test(accel, accel_parse_accepts_the_three_names);
  tcase_add_test(accel, accel_parse_rejects_unknown_names);
  tcase_add_test(accel, accel_auto_is_kvm_with_flags_and_usable_dev_kvm);
  tcase_add_test(accel, accel_auto_is_tcg_on_pvm_host);
  tcase_add_test(accel, accel_auto_is_tcg_without_dev_kvm);
  tcase_add_test(accel, accel_explicit_kvm_without_kvm_is_unsupported);
  tcase_add_test(accel, accel_explicit_tcg_is_always_tcg);
  tcase_add_test(accel, accel_resolve_auto_on_this_host_gives_a_reason);
  suite_add_tcase(s, accel);

  TCase *xml = tcase_create("xml");
  tcase_add_test(xml, xml_escapes_values_and_libvirt_reads_them_back);
  tcase_add_test(xml, xml_without_hotplug_or_share_is_minimal);
  tcase_add_test(xml, xml_rejects_invalid_configs_clearly);
  tcase_add_test(xml, xml_virtiofs_share_has_shared_memory_and_socket);
  tcase_add_test(xml, xml_9p_proxy_share_is_qemu_args);
  tcase_add_test(xml, xml_unprivileged_qemu_and_console_socket);
  tcase_add_test(xml, xmlbuild_escapes_every_value_and_indents);
  tcase_add_test(xml, xmlbuild_refuses_bad_names_and_unclosed_elements);
  suite_add_tcase(s, xml);

  TCase *embed = tcase_create("embed");
  tcase_add_test(embed, embed_prepare_writes_conf_and_links_caps_cache);
  tcase_add_test(embed, embed_prepare_trims_slow_cpu_fetch_flag);
  tcase_add_test(embed, embed_prepare_rejects_long_and_relative_roots);
  suite_add_tcase(s, embed);

  TCase *conn = tcase_create("connection");
  tcase_set_timeout(conn, 30);
  tcase_add_test(conn, open_unreachable_uri_fails_quickly_with_connect_error);
  tcase_add_test(conn, test_driver_list_destroy_and_stopped_event);
  tcase_add_test(conn, test_driver_start_transient_domain);
  tcase_add_test(conn, embed_open_empty_root);
  suite_add_tcase(s, conn);

  return s;
}

int main(void) {
  SRunner *sr = srunner_create(vmm_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
