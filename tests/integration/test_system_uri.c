/* tests/integration/test_system_uri.c: a sandbox through libvirtd
 * (qemu:///system) instead of the embedded driver. The test starts
 * virtlogd and libvirtd itself when none runs (no systemd here) and stops
 * what it started. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

static gboolean started_daemons;

static gboolean libvirtd_up(void) {
  return system("virsh -c qemu:///system version > /dev/null 2>&1") == 0;
}

static gboolean started_virtlogd;

static void daemons_setup(void) {
  kvt_setup();
  /* QEMU's stdio goes through virtlogd under libvirtd: a libvirtd started
   * by a package's init script may run without it. */
  if (!g_file_test("/run/libvirt/virtlogd-sock", G_FILE_TEST_EXISTS)) {
    ck_assert_int_eq(system("virtlogd -d"), 0);
    started_virtlogd = TRUE;
    for (int i = 0; i < 50 && !g_file_test("/run/libvirt/virtlogd-sock", G_FILE_TEST_EXISTS); i++)
      g_usleep(100000);
  }
  if (libvirtd_up())
    return;
  ck_assert_int_eq(system("libvirtd -d"), 0);
  started_daemons = TRUE;
  for (int i = 0; i < 100 && !libvirtd_up(); i++)
    g_usleep(100000);
  ck_assert_msg(libvirtd_up(), "libvirtd did not come up");
}

static void daemons_teardown(void) {
  kvt_teardown();
  int rc = 0;
  if (started_daemons)
    rc |= system("pkill -x libvirtd");
  if (started_virtlogd)
    rc |= system("pkill -x virtlogd");
  (void)rc;
}

START_TEST(sandbox_through_libvirtd) {
  katavm_runtime *rt = kvt_runtime();
  ck_assert_int_eq(katavm_runtime_set_libvirt_uri(rt, "qemu:///system", NULL), 0);
  katavm_sandbox *sb = kvt_create(rt, "sys1");
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  ck_assert_msg(rc == 0, "agent check: %s", katavm_error_message(e));
  ck_assert_uint_eq(gi.cpus_online, 1);
  g_autofree char *list = NULL;
  ck_assert(
      g_spawn_command_line_sync("virsh -c qemu:///system list --name", &list, NULL, NULL, NULL));
  ck_assert_msg(strstr(list, "katavm-sys1"), "libvirtd does not list the domain: %s", list);
  katavm_sandbox_close(sb);
  rc = katavm_sandbox_destroy(rt, "sys1", &e);
  ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
  g_clear_pointer(&list, g_free);
  ck_assert(g_spawn_command_line_sync("virsh -c qemu:///system list --all --name", &list, NULL,
                                      NULL, NULL));
  ck_assert_msg(!strstr(list, "katavm-sys1"), "domain left behind: %s", list);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("system-uri");
  TCase *t = tcase_create("libvirtd");
  tcase_add_unchecked_fixture(t, daemons_setup, daemons_teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, sandbox_through_libvirtd);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_VERBOSE);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
