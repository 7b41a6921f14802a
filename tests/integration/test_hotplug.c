/* tests/integration/test_hotplug.c: live changes to a running sandbox on a
 * real VM: vCPUs (grow by plugging, shrink by offlining), virtio-mem memory
 * (grow, use, shrink), a disk hot-added and mounted into a running
 * container then detached with its writes on the host, a NIC answering ping
 * from a network namespace made by the test, and bad requests that leave
 * the sandbox unchanged and healthy. */
#include <errno.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define WORK "/tmp/kvt-hp"
#define NETNS "kvtns-hp"
#define TAP "kvtap-hp"

static void sh(const char *cmd) {
  int rc = system(cmd);
  ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

static void setup(void) {
  kvt_setup();
  int rc = system("rm -rf " WORK "; ip netns del " NETNS " 2>/dev/null; ip link del " TAP
                  " 2>/dev/null");
  (void)rc;
  ck_assert_int_eq(g_mkdir_with_parents(WORK, 0755), 0);
}

static void teardown(void) {
  kvt_teardown();
  int rc =
      system("ip netns del " NETNS " 2>/dev/null; ip link del " TAP " 2>/dev/null; rm -rf " WORK);
  (void)rc;
}

static void idle_main(JsonObject *spec, gpointer unused) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sleep");
  json_array_add_string_element(a, "100000");
  json_object_set_array_member(proc, "args", a);
}

static katavm_sandbox *pod(katavm_runtime *rt, const char *id) {
  g_autofree char *b = kvt_make_rootfs(WORK "/bundle", TRUE);
  kvt_edit_spec(b, idle_main, NULL);
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.max_vcpus = 4;
  cfg.memory_mib = 256;
  cfg.max_memory_mib = 1024;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
  ck_assert_msg(rc == 0, "create: %s", katavm_error_message(e));
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b;
  rc = katavm_container_add(sb, "c", &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add: %s", katavm_error_message(e));
  ck_assert_int_eq(katavm_container_start(sb, "c", NULL), 0);
  return sb;
}

static void hotplug_ok(katavm_sandbox *sb, katavm_hotplug_request *req) {
  katavm_error *e = NULL;
  int rc = katavm_hotplug(sb, req, NULL, &e);
  ck_assert_msg(rc == 0, "hotplug kind %d: %s", req->kind, katavm_error_message(e));
}

static int nproc(katavm_sandbox *sb) {
  g_autofree char *out = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c", ARGV("nproc"), NULL, &out, NULL), 0);
  return atoi(out);
}

static guint64 mem_total(katavm_sandbox *sb) {
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  ck_assert_int_eq(katavm_sandbox_agent_check(sb, &gi, NULL), 0);
  return gi.mem_total_kib;
}

START_TEST(cpus_and_memory) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *sb = pod(rt, "hp1");
  katavm_hotplug_request req;
  ck_assert_int_eq(nproc(sb), 1);

  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_CPUS);
  req.cpus = 3;
  hotplug_ok(sb, &req);
  ck_assert_int_eq(nproc(sb), 3);

  guint64 before = mem_total(sb);
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
  req.memory_op = KATAVM_MEMORY_ADD;
  req.memory_mib = 256;
  hotplug_ok(sb, &req);
  guint64 grown = mem_total(sb);
  ck_assert_msg(grown > before + 240 * 1024 && grown < before + 260 * 1024,
                "MemTotal %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB", before, grown);
  /* A container process can allocate and touch 300 MiB now. */
  ck_assert_int_eq(kvt_exec(sb, "c",
                            ARGV("dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"), NULL,
                            NULL, NULL),
                   0);

  /* Bad requests: clear errors, nothing changes. */
  katavm_error *e = NULL;
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_CPUS);
  req.cpus = 5;
  int rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "1..4");
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
  req.memory_op = KATAVM_MEMORY_ADD;
  req.memory_mib = 1024;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "256..1024");
  req.memory_mib = 3;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "multiple");
  ck_assert_int_eq(nproc(sb), 3);
  ck_assert_uint_eq(mem_total(sb) / 1024, grown / 1024);

  /* Shrink back: CPUs offlined, memory returned. */
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_CPUS);
  req.cpus = 1;
  hotplug_ok(sb, &req);
  ck_assert_int_eq(nproc(sb), 1);
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
  req.memory_op = KATAVM_MEMORY_REMOVE;
  req.memory_mib = 256;
  hotplug_ok(sb, &req);
  guint64 shrunk = mem_total(sb);
  ck_assert_msg(shrunk < before + 8 * 1024 && shrunk + 8 * 1024 > before,
                "MemTotal after shrink %" G_GUINT64_FORMAT " KiB, at boot %" G_GUINT64_FORMAT,
                shrunk, before);

  /* inspect shows the guest's view. */
  char *js = NULL;
  ck_assert_int_eq(katavm_sandbox_inspect(sb, &js, NULL), 0);
  ck_assert_msg(strstr(js, "\"cpus_online\":1"), "inspect: %s", js);
  katavm_free(js);

  /* Hotplug on a stopped sandbox. */
  ck_assert_int_eq(katavm_sandbox_stop(sb, NULL), 0);
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_CPUS);
  req.cpus = 2;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_STATE, "not running");
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "hp1", NULL), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

/* The fallback without virtio-mem: ACPI DIMMs, plugged and unplugged whole. */
START_TEST(memory_by_dimms) {
  katavm_runtime *rt = kvt_runtime();
  katavm_error *e = NULL;
  int rc = katavm_runtime_set_memory_hotplug(rt, "ballooning", &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "ballooning");
  ck_assert_int_eq(katavm_runtime_set_memory_hotplug(rt, "dimm", NULL), 0);
  katavm_sandbox *sb = pod(rt, "hp3");
  char *js = NULL;
  ck_assert_int_eq(katavm_sandbox_inspect(sb, &js, NULL), 0);
  ck_assert_msg(strstr(js, "\"memory_hotplug\":\"dimm\""), "inspect: %s", js);
  katavm_free(js);
  guint64 before = mem_total(sb);
  katavm_hotplug_request req;
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
  req.memory_op = KATAVM_MEMORY_ADD;
  req.memory_mib = 100;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "128 MiB");
  req.memory_mib = 256;
  hotplug_ok(sb, &req);
  req.memory_mib = 128;
  hotplug_ok(sb, &req);
  guint64 grown = mem_total(sb);
  ck_assert_msg(grown > before + 370 * 1024 && grown < before + 390 * 1024,
                "MemTotal %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB", before, grown);
  ck_assert_int_eq(kvt_exec(sb, "c",
                            ARGV("dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"), NULL,
                            NULL, NULL),
                   0);
  /* Only whole DIMMs, newest first. */
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
  req.memory_op = KATAVM_MEMORY_REMOVE;
  req.memory_mib = 256;
  rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "whole DIMMs");
  ck_assert_uint_eq(mem_total(sb), grown);
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
  req.memory_op = KATAVM_MEMORY_SET;
  req.memory_mib = 256;
  hotplug_ok(sb, &req);
  guint64 shrunk = mem_total(sb);
  ck_assert_msg(shrunk < before + 8 * 1024 && shrunk + 8 * 1024 > before,
                "MemTotal after removing the DIMMs %" G_GUINT64_FORMAT
                " KiB, at boot %" G_GUINT64_FORMAT,
                shrunk, before);
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "hp3", NULL), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(disk_and_nic) {
  katavm_runtime *rt = kvt_runtime();
  /* An ext4 image holding a file. */
  sh("mkdir -p " WORK "/disk-src && echo from-host > " WORK "/disk-src/hello.txt && "
     "truncate -s 32M " WORK "/disk.img && mkfs.ext4 -q -F -d " WORK "/disk-src " WORK "/disk.img");
  katavm_sandbox *sb = pod(rt, "hp2");
  katavm_hotplug_request req;
  katavm_error *e = NULL;

  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
  req.path = WORK "/nope.img";
  int rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_NOT_FOUND, "nope.img");
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_REMOVE);
  req.path = WORK "/disk.img";
  rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_NOT_FOUND, "not attached");

  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_ADD);
  req.path = WORK "/disk.img";
  req.container = "c";
  req.mount_path = "/data";
  hotplug_ok(sb, &req);
  g_autofree char *hello = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c", ARGV("cat", "/data/hello.txt"), NULL, &hello, NULL), 0);
  ck_assert_str_eq(hello, "from-host\n");
  ck_assert_int_eq(
      kvt_exec(sb, "c", ARGV("sh", "-c", "echo from-guest > /data/written.txt"), NULL, NULL, NULL),
      0);
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_DISK_REMOVE);
  req.path = WORK "/disk.img";
  hotplug_ok(sb, &req);
  ck_assert_int_ne(kvt_exec(sb, "c", ARGV("cat", "/data/hello.txt"), NULL, NULL, NULL), 0);
  g_autofree char *written = NULL;
  ck_assert(g_spawn_command_line_sync("debugfs -R 'cat /written.txt' " WORK "/disk.img", &written,
                                      NULL, NULL, NULL));
  ck_assert_msg(strstr(written, "from-guest"), "host sees: %s", written);

  /* NIC: a tap attached, then moved into a namespace the test owns; the
   * guest answers ping there. Addresses only inside that namespace. */
  sh("ip tuntap add dev " TAP " mode tap");
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_NIC_REMOVE);
  req.mac = "52:54:00:aa:bb:01";
  rc = katavm_hotplug(sb, &req, NULL, &e);
  kvt_assert_error(rc, e, KATAVM_E_NOT_FOUND, "52:54:00:aa:bb:01");
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_NIC_ADD);
  req.tap = TAP;
  req.mac = "52:54:00:aa:bb:01";
  req.addresses = ARGV("10.211.0.2/24");
  hotplug_ok(sb, &req);
  sh("ip netns add " NETNS " && ip link set " TAP " netns " NETNS " && "
     "ip -n " NETNS " addr add 10.211.0.1/24 dev " TAP " && ip -n " NETNS " link set " TAP " up");
  sh("ip netns exec " NETNS " ping -c 2 -W 10 10.211.0.2 > /dev/null");
  g_autofree char *ifs = NULL;
  ck_assert_int_eq(kvt_exec(sb, "c", ARGV("cat", "/proc/net/dev"), NULL, &ifs, NULL), 0);
  katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_NIC_REMOVE);
  req.mac = "52:54:00:aa:bb:01";
  hotplug_ok(sb, &req);
  ck_assert_int_ne(system("ip netns exec " NETNS " ping -c 1 -W 2 10.211.0.2 > /dev/null 2>&1"), 0);

  katavm_guest_info gi;

  katavm_guest_info_init(&gi);
  ck_assert_int_eq(katavm_sandbox_agent_check(sb, &gi, NULL), 0);
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "hp2", NULL), 0);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("hotplug");
  TCase *t = tcase_create("live");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, cpus_and_memory);
  tcase_add_test(t, disk_and_nic);
  tcase_add_test(t, memory_by_dimms);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
