/* tests/integration/test_net_user.c: user-mode networking (net "user",
 * QEMU's slirp) on a real VM. `katavm run --net=user -p 127.0.0.1:P:80
 * ROOTFS -- httpd ...` answers on 127.0.0.1:P from the host; a /udp
 * publish delivers datagrams to the guest's port; the guest gets slirp's
 * 10.0.2.15/24 and default route. After destroy, and after a killed shim
 * and `sandbox rm -f`, the host ports are free again and no QEMU is left.
 * Bad modes and -p specs fail clearly and leave nothing behind.
 *
 * Only 127.0.0.1 is used: the host talks to its own loopback, the guest
 * answers through slirp; no packet leaves the machine. Host ports are
 * picked free by the test (bind to port 0), never fixed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define PAGE "hello-from-user-mode"

static char *work;

static void setup(void) {
  kvt_setup();
  work = kvt_workdir_new("net-user");
}

static void teardown(void) {
  kvt_teardown();
  kvt_workdir_drop(&work);
}

/* Can 127.0.0.1:port be bound (nobody holds it)? */
static gboolean port_is_free(guint port, gboolean udp) {
  int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                          .sin_port = htons((guint16)port)};
  gboolean ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* With retries while the guest's httpd comes up (slirp accepts on the
 * host side first and closes when the guest refuses). */
static char *fetch(guint port) {
  for (int i = 0; i < 120; i++) {
    char *r = kvt_http_get_local(port);
    if (r && strstr(r, PAGE))
      return r;
    g_free(r);
    g_usleep(G_USEC_PER_SEC);
  }
  return NULL;
}

static char *rootfs_with_page(void) {
  g_autofree char *dir = g_build_filename(work, "rootfs", NULL);
  char *r = kvt_make_rootfs(dir, FALSE);
  g_autofree char *www = g_build_filename(r, "www", NULL);
  g_autofree char *index = g_build_filename(www, "index.html", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(www, 0755), 0);
  ck_assert(g_file_set_contents(index, PAGE "\n", -1, NULL));
  /* A mount point for the generated resolv.conf (images have one). */
  g_autofree char *resolv = g_build_filename(r, "etc", "resolv.conf", NULL);
  ck_assert(g_file_set_contents(resolv, "# the image's\n", -1, NULL));
  return r;
}

/* `katavm run` in the background; its pid. */
static GPid spawn_cli(const char *const *args) {
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_ptr_array_add(argv, (char *)g_getenv("KATAVM_CLI"));
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add(argv, (char *)args[i]);
  g_ptr_array_add(argv, NULL);
  g_setenv("KATAVM_ROOT", kvt_root(), TRUE);
  GPid pid = 0;
  g_autoptr(GError) e = NULL;
  ck_assert_msg(g_spawn_async(NULL, (char **)argv->pdata, NULL,
                              G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                                  G_SPAWN_STDERR_TO_DEV_NULL,
                              NULL, NULL, &pid, &e),
                "spawn katavm run: %s", e ? e->message : "?");
  return pid;
}

static guint64 udp_noports(const char *id) {
  g_autofree char *target = g_strdup_printf("%s/%s", id, id);
  g_autofree char *out = NULL, *err = NULL;
  int rc = kvt_cli(&out, &err, "exec", target, "--", "cat", "/proc/net/snmp", NULL);
  ck_assert_msg(rc == 0, "exec cat /proc/net/snmp: %s", err);
  /* "Udp: InDatagrams NoPorts ..." then the values. */
  char *hdr = strstr(out, "\nUdp: ");
  ck_assert_ptr_nonnull(hdr);
  char *vals = strstr(hdr + 1, "\nUdp: ");
  ck_assert_ptr_nonnull(vals);
  g_auto(GStrv) f = g_strsplit(vals + 6, " ", 3); /* InDatagrams, NoPorts, rest */
  ck_assert_ptr_nonnull(f[0]);
  ck_assert_ptr_nonnull(f[1]);
  return g_ascii_strtoull(f[1], NULL, 10);
}

static void send_udp(guint port, int count) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                          .sin_port = htons((guint16)port)};
  for (int i = 0; i < count; i++)
    ck_assert_int_eq(sendto(fd, "ping", 4, 0, (struct sockaddr *)&a, sizeof a), 4);
  close(fd);
}

START_TEST(run_publishes_a_port_on_the_host) {
  g_autofree char *rootfs = rootfs_with_page();
  guint tport = kvt_free_port(FALSE), uport = kvt_free_port(TRUE);
  g_autofree char *tpub = g_strdup_printf("127.0.0.1:%u:80", tport);
  g_autofree char *upub = g_strdup_printf("%u:5999/udp", uport);
  GPid run = spawn_cli((const char *const[]){"run", "--name", "user1", "--net=user", "-p", tpub,
                                             "-p", upub, rootfs, "--", "httpd", "-f", "-p", "80",
                                             "-h", "/www", NULL});
  g_autofree char *page = fetch(tport);
  ck_assert_msg(page, "no answer from 127.0.0.1:%u", tport);
  ck_assert_msg(strstr(page, "200 OK"), "%s", page);

  /* The guest's network is slirp's, configured by the agent. */
  g_autofree char *out = NULL, *err = NULL;
  int rc = kvt_cli(&out, &err, "exec", "user1/user1", "--", "ip", "addr", NULL);
  ck_assert_msg(rc == 0, "exec ip addr: %s", err);
  ck_assert_msg(strstr(out, "inet 10.0.2.15/24"), "%s", out);
  g_free(out);
  out = NULL;
  rc = kvt_cli(&out, &err, "exec", "user1/user1", "--", "ip", "route", NULL);
  ck_assert_msg(rc == 0 && strstr(out, "default via 10.0.2.2"), "%s", out);

  /* Names: slirp's DNS forwarder; the hostname at slirp's address. */
  g_free(out);
  out = NULL;
  rc = kvt_cli(&out, &err, "exec", "user1/user1", "--", "cat", "/etc/resolv.conf", "/etc/hosts",
               NULL);
  ck_assert_msg(rc == 0 && strstr(out, "nameserver 10.0.2.3\n") && strstr(out, "\n10.0.2.15\t"),
                "%s", out);

  g_autofree char *insp = NULL;
  rc = kvt_cli(&insp, &err, "sandbox", "inspect", "user1", "--json", NULL);
  ck_assert_msg(rc == 0 && strstr(insp, "\"10.0.2.15/24\"") && strstr(insp, "\"state\":\"up\"") &&
                    strstr(insp, "\"gateway\":\"10.0.2.2\""),
                "inspect: %s", insp);

  /* UDP: datagrams to the published port reach the guest's port 5999
   * (nobody listens there: the guest's UDP NoPorts counter counts them). */
  guint64 before = udp_noports("user1");
  send_udp(uport, 3);
  guint64 after = before;
  for (int i = 0; i < 60 && after < before + 3; i++) {
    g_usleep(G_USEC_PER_SEC / 2);
    after = udp_noports("user1");
  }
  ck_assert_msg(after >= before + 3, "UDP NoPorts %lu -> %lu", (unsigned long)before,
                (unsigned long)after);

  ck_assert(!port_is_free(tport, FALSE));
  rc = kvt_cli(NULL, &err, "sandbox", "rm", "-f", "user1", NULL);
  ck_assert_msg(rc == 0, "rm: %s", err);
  int status = 0;
  ck_assert_int_eq(waitpid(run, &status, 0), run);
  ck_assert_msg(port_is_free(tport, FALSE), "tcp port %u still taken after rm", tport);
  ck_assert_msg(port_is_free(uport, TRUE), "udp port %u still taken after rm", uport);
  kvt_assert_clean();
}
END_TEST

static int shim_pid_of(const char *id) {
  g_autofree char *needle = g_strdup_printf("--id %s", id);
  for (int tries = 0; tries < 2; tries++) {
    g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
    const char *name;
    while ((name = g_dir_read_name(d))) {
      if (!g_ascii_isdigit(*name))
        continue;
      g_autofree char *path = g_build_filename("/proc", name, "cmdline", NULL);
      g_autofree char *cmd = NULL;
      gsize len = 0;
      if (!g_file_get_contents(path, &cmd, &len, NULL))
        continue;
      for (gsize i = 0; i + 1 < len; i++)
        if (!cmd[i])
          cmd[i] = ' ';
      if (strstr(cmd, "katavm-shim") && strstr(cmd, kvt_root()) && strstr(cmd, needle))
        return atoi(name);
    }
  }
  return 0;
}

START_TEST(rm_after_a_shim_crash_frees_the_ports) {
  guint tport = kvt_free_port(FALSE);
  g_autofree char *tpub = g_strdup_printf("127.0.0.1:%u:80", tport);
  g_autofree char *out = NULL, *err = NULL;
  int rc = kvt_cli(&out, &err, "sandbox", "create", "--name", "user2", "--net", "user", "-p", tpub,
                   NULL);
  ck_assert_msg(rc == 0, "create: %s", err);
  ck_assert(!port_is_free(tport, FALSE));
  int pid = shim_pid_of("user2");
  ck_assert_int_gt(pid, 0);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
    g_usleep(20000);
  rc = kvt_cli(NULL, &err, "sandbox", "rm", "-f", "user2", NULL);
  ck_assert_msg(rc == 0, "rm: %s", err);
  ck_assert_msg(port_is_free(tport, FALSE), "tcp port %u still taken after rm", tport);
  kvt_assert_clean();
}
END_TEST

/* A failing CLI call: exit status non-zero, stderr names `needle`, no
 * sandbox left. */
static void assert_refused(const char *needle, const char *const *args) {
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_ptr_array_add(argv, (char *)g_getenv("KATAVM_CLI"));
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add(argv, (char *)args[i]);
  g_ptr_array_add(argv, NULL);
  g_setenv("KATAVM_ROOT", kvt_root(), TRUE);
  g_autofree char *err = NULL;
  int status = -1;
  ck_assert(
      g_spawn_sync(NULL, (char **)argv->pdata, NULL, 0, NULL, NULL, NULL, &err, &status, NULL));
  ck_assert_msg(!g_spawn_check_wait_status(status, NULL), "%s %s succeeded", args[0], args[1]);
  ck_assert_msg(strstr(err, needle), "expected '%s' in: %s", needle, err);
  kvt_assert_clean();
}

START_TEST(bad_modes_and_ports_are_refused) {
  g_autofree char *rootfs = rootfs_with_page();
  assert_refused("unknown network mode 'slirp'",
                 (const char *const[]){"sandbox", "create", "--net", "slirp", NULL});
  assert_refused("unknown network mode 'bogus'",
                 (const char *const[]){"run", "--net=bogus", rootfs, "--", "true", NULL});
  assert_refused("need network mode 'user'",
                 (const char *const[]){"sandbox", "create", "-p", "8080:80", NULL});
  assert_refused("exclude each other", (const char *const[]){"sandbox", "create", "--net", "user",
                                                             "--netns", "/proc/self/ns/net", NULL});
  assert_refused("'127.0.0.1:99999:80': the host port must be a number from 1 to 65535",
                 (const char *const[]){"sandbox", "create", "--net", "user", "-p",
                                       "127.0.0.1:99999:80", NULL});
  assert_refused("'8080:0': the guest port must be",
                 (const char *const[]){"sandbox", "create", "--net", "user", "-p", "8080:0", NULL});
  assert_refused("'80': no host port",
                 (const char *const[]){"sandbox", "create", "--net", "user", "-p", "80", NULL});
  assert_refused(
      "the protocol must be tcp or udp",
      (const char *const[]){"sandbox", "create", "--net", "user", "-p", "8080:80/sctp", NULL});
  assert_refused(
      "'300.1.1.1:8080:80': the host address is not",
      (const char *const[]){"sandbox", "create", "--net", "user", "-p", "300.1.1.1:8080:80", NULL});
  assert_refused(
      "IPv4 host addresses only",
      (const char *const[]){"sandbox", "create", "--net", "user", "-p", "[::1]:8080:80", NULL});
  assert_refused("published twice", (const char *const[]){"sandbox", "create", "--net", "user",
                                                          "-p", "8080:80", "-p", "8080:81", NULL});
  /* A host port that is taken. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(fd, 1), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  g_autofree char *taken = g_strdup_printf("%u:80", ntohs(a.sin_port));
  g_autofree char *msg =
      g_strdup_printf("host port 127.0.0.1:%u/tcp is already in use", ntohs(a.sin_port));
  assert_refused(
      msg, (const char *const[]){"run", "--net", "user", "-p", taken, rootfs, "--", "true", NULL});
  close(fd);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("net_user");
  TCase *t = tcase_create("user");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, bad_modes_and_ports_are_refused);
  tcase_add_test(t, run_publishes_a_port_on_the_host);
  tcase_add_test(t, rm_after_a_shim_crash_frees_the_ports);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
