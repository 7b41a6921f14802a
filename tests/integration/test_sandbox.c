/* tests/integration/test_sandbox.c: sandbox lifecycle on real VMs under
 * TCG: create, agent round trip, inspect from a second process, survival of
 * the creator's exit, shim death and recovery, stop, destroy; and bad input
 * that must fail clearly and leave nothing behind. */
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "helpers.h"
#include "proto.h" /* KV_PROTO_VERSION */

static JsonObject *parse_obj(const char *s) {
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert_msg(json_parser_load_from_data(p, s, -1, NULL), "not JSON: %s", s);
  JsonNode *root = json_parser_get_root(p);
  ck_assert(JSON_NODE_HOLDS_OBJECT(root));
  return json_object_ref(json_node_get_object(root));
}

static const char *kernel_release_of_image(void) {
  /* The image is built from the newest installed kernel; the guest must
   * report exactly that release. */
  const char *k = g_getenv("KATAVM_TEST_KERNEL_RELEASE");
  return k;
}

START_TEST(create_check_inspect_destroy) {
  katavm_runtime *rt = kvt_runtime();
  int fds_before = kvt_count_fds();
  katavm_sandbox *sb = kvt_create(rt, "life1");
  ck_assert_str_eq(katavm_sandbox_id(sb), "life1");

  katavm_guest_info gi;

  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  ck_assert_msg(rc == 0, "agent check: %s", katavm_error_message(e));
  ck_assert_uint_eq(gi.cpus_online, 1);
  ck_assert_uint_eq(gi.proto_version, KV_PROTO_VERSION);
  /* 256 MiB guest: MemTotal is a bit less than that, far more than half. */
  ck_assert_uint_gt(gi.mem_total_kib, 160 * 1024);
  ck_assert_uint_le(gi.mem_total_kib, 256 * 1024);
  ck_assert_uint_gt(gi.uptime_ms, 0);
  ck_assert_msg(strlen(gi.kernel_release) > 0, "no kernel release");
  const char *want = kernel_release_of_image();
  if (want)
    ck_assert_str_eq(gi.kernel_release, want);

  katavm_sandbox_state_t st;
  ck_assert_int_eq(katavm_sandbox_state(sb, &st, NULL), 0);
  ck_assert_int_eq(st, KATAVM_SANDBOX_RUNNING);

  /* A second process sees it running, with the guest's details. */
  g_autofree char *out = NULL, *err = NULL;
  int status = kvt_cli(&out, &err, "sandbox", "inspect", "life1", "--json", NULL);
  ck_assert_msg(status == 0, "inspect failed: %s", err);
  g_autoptr(JsonObject) o = parse_obj(out);
  ck_assert_str_eq(json_object_get_string_member(o, "state"), "running");
  ck_assert_str_eq(json_object_get_string_member(o, "id"), "life1");
  ck_assert(json_object_has_member(o, "guest"));
  JsonObject *g = json_object_get_object_member(o, "guest");
  ck_assert_str_eq(json_object_get_string_member(g, "kernel"), gi.kernel_release);
  ck_assert_int_eq(json_object_get_int_member(g, "cpus_online"), 1);
  ck_assert_int_gt(json_object_get_int_member(o, "qemu_pid"), 1);
  ck_assert_int_eq(kill((pid_t)json_object_get_int_member(o, "qemu_pid"), 0), 0);

  /* ls lists it. */
  g_autofree char *ls = NULL;
  ck_assert_int_eq(kvt_cli(&ls, NULL, "sandbox", "ls", "--json", NULL), 0);
  ck_assert_msg(strstr(ls, "\"life1\"") && strstr(ls, "running"), "ls: %s", ls);

  /* A duplicate id is refused and the original keeps running. */
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = "life1";
  katavm_sandbox *dup = NULL;
  rc = katavm_sandbox_create(rt, &cfg, &dup, &e);
  kvt_assert_error(rc, e, KATAVM_E_EXISTS, "life1");
  e = NULL;
  ck_assert_int_eq(katavm_sandbox_agent_check(sb, &gi, NULL), 0);

  katavm_sandbox_close(sb);
  rc = katavm_sandbox_destroy(rt, "life1", &e);
  ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
  kvt_assert_clean();
  ck_assert_int_eq(kvt_count_fds(), fds_before);
  /* Destroying again: not found. */
  rc = katavm_sandbox_destroy(rt, "life1", &e);
  kvt_assert_error(rc, e, KATAVM_E_NOT_FOUND, "life1");
  katavm_runtime_free(rt);
}
END_TEST

/* In a root without a QEMU capabilities cache, libvirt first probes QEMU:
 * a QEMU that daemonizes and is then killed, beside the shim that reaps its
 * daemonized children. The probe must neither lose libvirt its own child
 * nor stall the create, and nothing of it may stay behind. */
/* Each file of the capabilities cache with its modification time. */
static char *caps_stamp(const char *dir) {
  GString *out = g_string_new(NULL);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name(d))) {
    g_autofree char *f = g_build_filename(dir, n, NULL);
    struct stat st;
    if (stat(f, &st) == 0)
      g_string_append_printf(out, "%s@%lld.%09ld ", n, (long long)st.st_mtim.tv_sec,
                             st.st_mtim.tv_nsec);
  }
  return g_string_free(out, FALSE);
}

START_TEST(fresh_root_probes_qemu) {
  g_autofree char *cache = g_build_filename(kvt_root(), "cache", "qemu", NULL);
  g_autofree char *rm = g_strdup_printf("rm -rf '%s'", cache);
  ck_assert_int_eq(system(rm), 0);
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, "probe1");
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  ck_assert_msg(rc == 0, "agent check: %s", katavm_error_message(e));
  katavm_sandbox_close(sb);
  rc = katavm_sandbox_destroy(rt, "probe1", &e);
  ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
  kvt_assert_clean();
  g_autofree char *caps = g_build_filename(cache, "capabilities", NULL);
  ck_assert_msg(g_file_test(caps, G_FILE_TEST_IS_DIR), "no capabilities cache at %s", caps);
  /* Later creates use that probe: each shim's driver reads the host's
   * CPUID on the same CPU (lib/vmm/vmm.c, pin_lowest_cpu), so the cache is
   * never found outdated and rewritten (it was, for one create in two on
   * this 2-CPU machine, when the shim opened on the other CPU). The
   * create after the probe rewrites the file once, to drop a flag
   * (lib/vmm/embed.c, trim_caps_file); from then on it stays as it is. */
  g_autofree char *before = NULL;
  for (int i = 0; i < 3; i++) {
    katavm_sandbox *again = kvt_create(rt, "probe2");
    katavm_sandbox_close(again);
    rc = katavm_sandbox_destroy(rt, "probe2", &e);
    ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
    g_autofree char *after = caps_stamp(caps);
    ck_assert_msg(*after, "no capabilities file in %s", caps);
    if (before)
      ck_assert_msg(!strcmp(before, after), "QEMU was probed again: %s became %s", before, after);
    g_free(before);
    before = g_steal_pointer(&after);
  }
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(survives_creator_and_shim_death) {
  /* The creator is a CLI process that exits right after create. */
  g_autofree char *out = NULL, *err = NULL;
  int status = kvt_cli(&out, &err, "sandbox", "create", "--name", "orphan1", "--cpus", "1",
                       "--memory", "192", NULL);
  ck_assert_msg(status == 0, "create: %s", err);
  ck_assert_str_eq(g_strstrip(out), "orphan1");

  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, "orphan1", &sb, &e);
  ck_assert_msg(rc == 0, "open: %s", katavm_error_message(e));
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  ck_assert_int_eq(katavm_sandbox_agent_check(sb, &gi, NULL), 0);
  char *js = NULL;
  ck_assert_int_eq(katavm_sandbox_inspect(sb, &js, NULL), 0);
  g_autoptr(JsonObject) o = parse_obj(js);
  katavm_free(js);
  pid_t shim = (pid_t)json_object_get_int_member(o, "shim_pid");
  pid_t qemu = (pid_t)json_object_get_int_member(o, "qemu_pid");
  ck_assert_int_gt(shim, 1);
  ck_assert_int_gt(qemu, 1);
  katavm_sandbox_close(sb);

  /* Kill the shim: QEMU lives on, and opening the sandbox recovers it with
   * a new shim attached to the same VM. */
  ck_assert_int_eq(kill(shim, SIGKILL), 0);
  for (int i = 0; i < 100 && kill(shim, 0) == 0; i++)
    g_usleep(20000);
  ck_assert_int_eq(kill(qemu, 0), 0);
  rc = katavm_sandbox_open(rt, "orphan1", &sb, &e);
  ck_assert_msg(rc == 0, "recover: %s", katavm_error_message(e));
  rc = katavm_sandbox_agent_check(sb, &gi, &e);
  ck_assert_msg(rc == 0, "agent after recover: %s", katavm_error_message(e));
  ck_assert_int_eq(gi.cpus_online, 1);
  js = NULL;
  ck_assert_int_eq(katavm_sandbox_inspect(sb, &js, NULL), 0);
  g_autoptr(JsonObject) o2 = parse_obj(js);
  katavm_free(js);
  ck_assert_int_ne(json_object_get_int_member(o2, "shim_pid"), shim);
  ck_assert_int_eq(json_object_get_int_member(o2, "qemu_pid"), qemu);
  shim = (pid_t)json_object_get_int_member(o2, "shim_pid");
  katavm_sandbox_close(sb);

  /* Kill the new shim too; destroy must still remove the VM. */
  ck_assert_int_eq(kill(shim, SIGKILL), 0);
  for (int i = 0; i < 100 && kill(shim, 0) == 0; i++)
    g_usleep(20000);
  rc = katavm_sandbox_destroy(rt, "orphan1", &e);
  ck_assert_msg(rc == 0, "destroy after shim death: %s", katavm_error_message(e));
  ck_assert_int_ne(kill(qemu, 0), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(stop_then_remove) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = kvt_create(rt, NULL);
  g_autofree char *id = g_strdup(katavm_sandbox_id(sb));
  ck_assert_int_eq(strlen(id), 16);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_stop(sb, &e);
  ck_assert_msg(rc == 0, "stop: %s", katavm_error_message(e));
  katavm_sandbox_state_t st;
  ck_assert_int_eq(katavm_sandbox_state(sb, &st, NULL), 0);
  ck_assert_int_eq(st, KATAVM_SANDBOX_STOPPED);
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  rc = katavm_sandbox_agent_check(sb, &gi, &e);
  kvt_assert_error(rc, e, KATAVM_E_STATE, "not running");
  /* No QEMU is left for a stopped sandbox. */
  g_autofree char *needle = g_strdup_printf("qemu-system-x86_64 -name guest=katavm-%s", id);
  ck_assert_int_eq(kvt_count_procs(needle), 0);
  katavm_sandbox_close(sb);
  /* rm without -f removes a stopped sandbox. */
  g_autofree char *err = NULL;
  ck_assert_msg(kvt_cli(NULL, &err, "sandbox", "rm", id, NULL) == 0, "rm: %s", err);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(bad_ids_rejected) {
  katavm_runtime *rt = kvt_runtime();
  const char *bad[] = {"a/b",
                       "..",
                       "x..y",
                       "",
                       "-lead",
                       "sp ace",
                       "0123456789012345678901234567890123456789012345678901234567890123456789"};
  const char *why[] = {"'/'", "'..'", "'..'", "empty", "start", "0x20", "limit is 64"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    katavm_sandbox_config cfg;
    katavm_sandbox_config_init(&cfg);
    cfg.id = bad[i];
    katavm_sandbox *sb = NULL;
    katavm_error *e = NULL;
    int rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
    kvt_assert_error(rc, e, KATAVM_E_INVALID, why[i]);
    ck_assert_ptr_null(sb);
    rc = katavm_sandbox_open(rt, bad[i], &sb, &e);
    kvt_assert_error(rc, e, KATAVM_E_INVALID, why[i]);
    rc = katavm_sandbox_destroy(rt, bad[i], &e);
    kvt_assert_error(rc, e, KATAVM_E_INVALID, why[i]);
  }
  /* The CLI says the same and exits non-zero. */
  g_autofree char *err = NULL;
  ck_assert_int_eq(kvt_cli(NULL, &err, "sandbox", "create", "--name", "../x", NULL), 1);
  ck_assert_msg(strstr(err, "'..'"), "cli error: %s", err);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(bad_resources_rejected) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox_config cfg;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  katavm_sandbox_config_init(&cfg);
  cfg.id = "small";
  cfg.memory_mib = 64;
  int rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "minimum of 128 MiB");
  cfg.memory_mib = 256;
  cfg.max_memory_mib = 128;
  rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "max memory");
  cfg.max_memory_mib = 0;
  cfg.vcpus = 2;
  cfg.max_vcpus = 1;
  rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "max vCPUs");
  cfg.max_vcpus = 0;
  /* A config that skipped katavm_sandbox_config_init(). */
  cfg.struct_size = 0;
  rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "call katavm_sandbox_config_init()");
  cfg.struct_size = sizeof cfg;

  /* Missing kernel / initrd. */
  katavm_runtime *rt2 = kvt_runtime();
  ck_assert_int_eq(katavm_runtime_set_kernel(rt2, "/nonexistent/vmlinux", NULL), 0);
  rc = katavm_sandbox_create(rt2, &cfg, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_NOT_FOUND, "/nonexistent/vmlinux");
  katavm_runtime_free(rt2);
  rt2 = kvt_runtime();
  ck_assert_int_eq(katavm_runtime_set_initrd(rt2, "/nonexistent/initrd", NULL), 0);
  rc = katavm_sandbox_create(rt2, &cfg, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_NOT_FOUND, "/nonexistent/initrd");
  katavm_runtime_free(rt2);
  /* Relative paths are refused by the setters. */
  rt2 = kvt_runtime();
  rc = katavm_runtime_set_kernel(rt2, "vmlinux", &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "absolute");
  rc = katavm_runtime_set_accel(rt2, "xen", &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "xen");
  katavm_runtime_free(rt2);

  /* An unreachable libvirt URI: the shim reports it, nothing stays. */
  rt2 = kvt_runtime();
  ck_assert_int_eq(katavm_runtime_set_libvirt_uri(
                       rt2, "qemu+unix:///system?socket=/nonexistent/libvirt-sock", NULL),
                   0);
  rc = katavm_sandbox_create(rt2, &cfg, &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_VMM, "nonexistent");
  katavm_runtime_free(rt2);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(corrupt_state_cleaned) {
  katavm_runtime *rt = kvt_runtime();
  /* A state dir with garbage and no VM. */
  g_autofree char *dir = g_build_filename(kvt_root(), "sandboxes", "junk", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
  g_autofree char *cfgp = g_build_filename(dir, "config.json", NULL);
  ck_assert(g_file_set_contents(cfgp, "{\"id\": 7, garbage", -1, NULL));
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, "junk", &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_CORRUPT, "config.json");
  g_autofree char *err = NULL;
  ck_assert_int_eq(kvt_cli(NULL, &err, "sandbox", "inspect", "junk", NULL), 1);
  ck_assert_msg(strstr(err, "config.json"), "cli: %s", err);
  rc = katavm_sandbox_destroy(rt, "junk", &e);
  ck_assert_msg(rc == 0, "destroy junk: %s", katavm_error_message(e));

  /* A live sandbox whose config got corrupted: open says so, destroy still
   * removes the VM. */
  sb = kvt_create(rt, "corrupt2");
  katavm_sandbox_close(sb);
  g_autofree char *cfg2 =
      g_build_filename(kvt_root(), "sandboxes", "corrupt2", "config.json", NULL);
  ck_assert(g_file_set_contents(cfg2, "\x01\x02 not json", -1, NULL));
  rc = katavm_sandbox_open(rt, "corrupt2", &sb, &e);
  kvt_assert_error(rc, e, KATAVM_E_CORRUPT, "config.json");
  rc = katavm_sandbox_destroy(rt, "corrupt2", &e);
  ck_assert_msg(rc == 0, "destroy corrupt2: %s", katavm_error_message(e));
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(check_reports_accel) {
  g_autofree char *out = NULL, *err = NULL;
  int status = kvt_cli(&out, &err, "check", NULL);
  ck_assert_msg(status == 0, "check failed: %s%s", out, err);
  g_autofree char *cpuinfo = NULL;
  ck_assert(g_file_get_contents("/proc/cpuinfo", &cpuinfo, NULL, NULL));
  gboolean hw = strstr(cpuinfo, " vmx") || strstr(cpuinfo, " svm");
  if (!hw)
    ck_assert_msg(strstr(out, "accelerator: tcg") && strstr(out, "vmx"), "check output: %s", out);
  g_autofree char *js = NULL;
  ck_assert_int_eq(kvt_cli(&js, NULL, "check", "--json", NULL), 0);
  g_autoptr(JsonObject) o = parse_obj(js);
  ck_assert(json_object_get_boolean_member(o, "ok"));
  /* KSM is reported, and never fails the check. */
  const char *ksm = json_object_get_string_member(o, "ksm");
  ck_assert_msg(!g_strcmp0(ksm, "on") || !g_strcmp0(ksm, "off") || !g_strcmp0(ksm, "absent"),
                "ksm: %s", ksm);
  ck_assert_msg(strstr(out, " ksm "), "check output: %s", out);
}
END_TEST

/* Every sandbox's guest RNG is seeded from the host at boot (the agent's
 * reseed): two sandboxes read different bytes from /dev/urandom first
 * thing, and have different boot ids. */
START_TEST(guest_rng_fresh) {
  g_autofree char *dir = kvt_workdir_new("rng");
  g_autofree char *rootfs = kvt_make_rootfs(dir, FALSE);
  const char *script = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; "
                       "cat /proc/sys/kernel/random/boot_id";
  g_autofree char *a = NULL, *b = NULL, *ea = NULL, *eb = NULL;
  ck_assert_msg(kvt_cli(&a, &ea, "run", "--rm", rootfs, "/bin/sh", "-c", script, NULL) == 0, "%s",
                ea);
  ck_assert_msg(kvt_cli(&b, &eb, "run", "--rm", rootfs, "/bin/sh", "-c", script, NULL) == 0, "%s",
                eb);
  g_auto(GStrv) la = g_strsplit(a, "\n", -1), lb = g_strsplit(b, "\n", -1);
  ck_assert_msg(g_strv_length(la) >= 2 && g_strv_length(lb) >= 2, "output: %s / %s", a, b);
  ck_assert_int_eq(strlen(la[0]), 64);
  ck_assert_int_eq(strlen(la[1]), 36);
  ck_assert_msg(strcmp(la[0], lb[0]) != 0, "same random bytes: %s", la[0]);
  ck_assert_msg(strcmp(la[1], lb[1]) != 0, "same boot id: %s", la[1]);
  kvt_workdir_drop(&dir);
  kvt_assert_clean();
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("sandbox");
  TCase *t = tcase_create("lifecycle");
  tcase_add_checked_fixture(t, kvt_setup, kvt_teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, check_reports_accel);
  tcase_add_test(t, bad_ids_rejected);
  tcase_add_test(t, bad_resources_rejected);
  tcase_add_test(t, fresh_root_probes_qemu);
  tcase_add_test(t, create_check_inspect_destroy);
  tcase_add_test(t, survives_creator_and_shim_death);
  tcase_add_test(t, stop_then_remove);
  tcase_add_test(t, corrupt_state_cleaned);
  tcase_add_test(t, guest_rng_fresh);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
