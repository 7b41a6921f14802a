/* tests/integration/test_engines.c: docker and containerd driving
 * katavm-runtime as their runc: a dockerd started by this test (its own
 * data root, exec root, socket and containerd, no iptables, no bridge)
 * with a `katavm` runtime entry, and a containerd of its own with `ctr run
 * --runc-binary`. Both run a container in a VM under TCG. The image is the
 * busybox rootfs, imported into a private podman root and saved. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define IMAGE "localhost/kvt-busybox:latest"

static char *work, *conf, *image_tar;

static int sh(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static int sh(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Run a command line; its stdout (stderr appended on failure). */
static int capture(char **out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int capture(char **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_autofree char *o = NULL, *e = NULL;
  int st = -1;
  g_autoptr(GError) err = NULL;
  ck_assert_msg(g_spawn_command_line_sync(cmd, &o, &e, &st, &err), "%s: %s", cmd,
                err ? err->message : "?");
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  *out = g_strdup_printf("%s%s%s", o ? o : "", rc ? "\nstderr: " : "", rc && e ? e : "");
  return rc;
}

/* Wait (bounded) until a unix socket answers `probe`. */
static void wait_ready(const char *probe) {
  for (int i = 0; i < 600; i++) {
    if (sh("%s >/dev/null 2>&1", probe) == 0)
      return;
    g_usleep(100 * 1000);
  }
  ck_abort_msg("not ready: %s", probe);
}

/* Unmount everything below a directory (overlays of the engines). */
static void umount_below(const char *dir) {
  sh("grep -o ' %s[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null", dir);
}

static void setup(void) {
  kvt_setup();
  work = kvt_workdir_new("engines");
  conf = g_build_filename(work, "runtime.conf", NULL);
  g_autofree char *text = g_strdup_printf("[runtime]\nroot = %s\nkernel = %s\ninitrd = %s\n"
                                          "shim = %s\n",
                                          kvt_root(), g_getenv("KATAVM_KERNEL"),
                                          g_getenv("KATAVM_INITRD"), g_getenv("KATAVM_SHIM"));
  ck_assert(g_file_set_contents(conf, text, -1, NULL));
  /* The image, from the busybox rootfs through a private podman root. */
  g_autofree char *img = g_build_filename(work, "img", NULL);
  g_autofree char *rootfs = kvt_make_rootfs(img, FALSE);
  image_tar = g_build_filename(work, "image.tar", NULL);
  ck_assert_int_eq(sh("P='podman --root %s/pm --runroot %s/pmrun --tmpdir %s --storage-driver "
                      "overlay --cgroup-manager cgroupfs --events-backend file'; "
                      "tar -C %s -c . | $P import - %s >/dev/null && $P save -o %s %s "
                      ">/dev/null 2>&1",
                      work, work, work, rootfs, IMAGE, image_tar, IMAGE),
                   0);
}

static void teardown(void) {
  sh("podman --root %s/pm --runroot %s/pmrun --storage-driver overlay rmi -af >/dev/null 2>&1",
     work, work);
  umount_below(work);
  kvt_workdir_drop(&work);
  g_clear_pointer(&conf, g_free);
  g_clear_pointer(&image_tar, g_free);
  kvt_teardown();
}

START_TEST(docker) {
  g_autofree char *sock = g_build_filename(work, "docker.sock", NULL);
  g_autofree char *pidf = g_build_filename(work, "docker.pid", NULL);
  /* dockerd starts its own containerd below its exec root. */
  ck_assert_int_eq(
      sh("cd / && KATAVM_RUNTIME_CONFIG=%s setsid dockerd --data-root %s/dk --exec-root %s/dkx "
         "--pidfile %s -H unix://%s --iptables=false --ip6tables=false --bridge=none "
         "--ip-forward=false --ip-masq=false --userland-proxy=false --storage-driver overlay2 "
         "--add-runtime katavm=%s >%s/dockerd.log 2>&1 &",
         conf, work, work, pidf, sock, g_getenv("KATAVM_RUNTIME"), work),
      0);
  g_autofree char *probe = g_strdup_printf("docker -H unix://%s version", sock);
  wait_ready(probe);
  ck_assert_int_eq(sh("docker -H unix://%s load -i %s >/dev/null", sock, image_tar), 0);
  char *out = NULL;
  int rc = capture(&out, "docker -H unix://%s run --runtime katavm --rm --network none %s uname -r",
                   sock, IMAGE);
  ck_assert_msg(rc == 0 && strstr(out, g_getenv("KATAVM_TEST_KERNEL_RELEASE")),
                "docker run in a VM: rc %d: %s", rc, out);
  g_free(out);
  rc = capture(&out,
               "docker -H unix://%s run --runtime katavm --rm --network none %s sh -c 'exit 9'",
               sock, IMAGE);
  ck_assert_msg(rc == 9, "exit code %d: %s", rc, out);
  g_free(out);
  g_autofree char *pid = NULL;
  ck_assert(g_file_get_contents(pidf, &pid, NULL, NULL));
  kill(atoi(pid), SIGTERM);
  for (int i = 0; i < 300 && kill(atoi(pid), 0) == 0; i++)
    g_usleep(100 * 1000);
  ck_assert_msg(kill(atoi(pid), 0) != 0, "dockerd did not exit");
  kvt_assert_clean();
}
END_TEST

START_TEST(containerd_runc_binary) {
  g_autofree char *cfg = g_build_filename(work, "containerd.toml", NULL);
  g_autofree char *sock = g_build_filename(work, "containerd.sock", NULL);
  g_autofree char *text =
      g_strdup_printf("version = 2\nroot = \"%s/ctd\"\nstate = \"%s/ctds\"\n"
                      "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
                      "[grpc]\n  address = \"%s\"\n[ttrpc]\n  address = \"%s.ttrpc\"\n",
                      work, work, sock, sock);
  ck_assert(g_file_set_contents(cfg, text, -1, NULL));
  g_autofree char *pidf = g_build_filename(work, "containerd.pid", NULL);
  ck_assert_int_eq(sh("cd / && KATAVM_RUNTIME_CONFIG=%s setsid containerd --config %s "
                      ">%s/containerd.log 2>&1 & echo $! > %s",
                      conf, cfg, work, pidf),
                   0);
  g_autofree char *probe = g_strdup_printf("ctr --address %s version", sock);
  wait_ready(probe);
  ck_assert_int_eq(sh("ctr --address %s image import %s >/dev/null", sock, image_tar), 0);
  char *out = NULL;
  int rc = capture(&out, "ctr --address %s run --rm --runc-binary %s %s kvt1 uname -r", sock,
                   g_getenv("KATAVM_RUNTIME"), IMAGE);
  ck_assert_msg(rc == 0 && strstr(out, g_getenv("KATAVM_TEST_KERNEL_RELEASE")),
                "ctr run in a VM: rc %d: %s", rc, out);
  g_free(out);
  rc = capture(&out, "ctr --address %s run --rm --runc-binary %s %s kvt2 sh -c 'exit 4'", sock,
               g_getenv("KATAVM_RUNTIME"), IMAGE);
  ck_assert_msg(rc == 4, "exit code %d: %s", rc, out);
  g_free(out);
  g_autofree char *pid = NULL;
  ck_assert(g_file_get_contents(pidf, &pid, NULL, NULL));
  kill(atoi(pid), SIGTERM);
  for (int i = 0; i < 300 && kill(atoi(pid), 0) == 0; i++)
    g_usleep(100 * 1000);
  ck_assert_msg(kill(atoi(pid), 0) != 0, "containerd did not exit");
  kvt_assert_clean();
}
END_TEST

int main(void) {
  Suite *s = suite_create("engines");
  TCase *t = tcase_create("engines");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, docker);
  tcase_add_test(t, containerd_runc_binary);
  suite_add_tcase(s, t);
  return kvt_run_suite(s);
}
