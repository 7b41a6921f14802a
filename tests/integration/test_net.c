/* tests/integration/test_net.c: a sandbox in a network namespace (Kata's
 * "tcfilter" model) on a real VM. Namespaces "client" and "pod" joined by a
 * veth pair, both made by the test (every address lives inside them): a
 * sandbox created in pod runs busybox httpd in a container, and wget from
 * client fetches the page over IPv4 and IPv6; the container sees the pod's
 * addresses, MAC, default routes and static neighbour. Destroy (and, after
 * a crashed shim, `sandbox rm`) leaves pod's veth as it was: no tap, no
 * qdisc, no filter. Bad namespaces fail clearly and leave nothing behind.
 *
 * `ip` builds the namespaces (test set-up); the product uses only libnl. */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define PAGE "hello-from-the-pod"

/* Unique per test run: namespaces and links are host-wide. */
static char work[64], pod[32], client[32], empty[32], vpod[16], vcli[16], vempty[16];
static char vpod2[16], vcli2[16]; /* a second interface of pod */
static char pod_path[64];

static int shf(char **out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int shf(char **out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *cmd = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  int status = -1;
  g_autofree char *o = NULL, *err = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &o, &err, &status,
                    NULL))
    return -1;
  if (out)
    *out = g_steal_pointer(&o);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define SH(...) ck_assert_msg(shf(NULL, __VA_ARGS__) == 0, "set-up command failed")

static void names(void) {
  int pid = (int)getpid();
  g_snprintf(work, sizeof work, "/tmp/kvt-net-%d", pid);
  g_snprintf(pod, sizeof pod, "kvtpod-%d", pid);
  g_snprintf(client, sizeof client, "kvtcli-%d", pid);
  g_snprintf(empty, sizeof empty, "kvtempty-%d", pid);
  g_snprintf(vpod, sizeof vpod, "kvp%d", pid % 1000000);
  g_snprintf(vcli, sizeof vcli, "kvc%d", pid % 1000000);
  g_snprintf(vempty, sizeof vempty, "kve%d", pid % 1000000);
  g_snprintf(vpod2, sizeof vpod2, "kvq%d", pid % 1000000);
  g_snprintf(vcli2, sizeof vcli2, "kvd%d", pid % 1000000);
  g_snprintf(pod_path, sizeof pod_path, "/run/netns/%s", pod);
}

static void drop_all(void) {
  /* Deleting a namespace deletes its links (and a veth's peer). */
  shf(NULL, "ip netns del %s; ip netns del %s; ip netns del %s; rm -rf %s /etc/netns/%s", pod,
      client, empty, work, pod);
}

static void setup(void) {
  kvt_setup();
  drop_all();
  ck_assert_int_eq(g_mkdir_with_parents(work, 0755), 0);
  SH("ip netns add %s && ip netns add %s", pod, client);
  SH("ip link add %s netns %s type veth peer name %s netns %s", vpod, pod, vcli, client);
  SH("ip -n %s link set lo up && ip -n %s addr add 10.77.0.1/24 dev %s && "
     "ip -n %s addr add fd00::1/64 dev %s nodad && ip -n %s link set %s up",
     client, client, vcli, client, vcli, client, vcli);
  SH("ip -n %s link set lo up && ip -n %s addr add 10.77.0.2/24 dev %s && "
     "ip -n %s addr add fd00::2/64 dev %s nodad && ip -n %s link set %s mtu 1400 up && "
     "ip -n %s route add default via 10.77.0.1 && ip -n %s -6 route add default via fd00::1 && "
     "ip -n %s neigh add 10.77.0.9 lladdr 02:00:00:00:77:09 dev %s nud permanent",
     pod, pod, vpod, pod, vpod, pod, vpod, pod, pod, pod, vpod);
  /* The namespace's own resolv.conf, as `ip netns exec` would use it. */
  SH("mkdir -p /etc/netns/%s && printf 'nameserver 10.77.0.53\\nnameserver 127.0.0.53\\n"
     "search pod.test\\noptions ndots:2\\n' > /etc/netns/%s/resolv.conf",
     pod, pod);
  SH("ip link add %s netns %s type veth peer name %s netns %s && "
     "ip -n %s addr add 10.78.0.1/24 dev %s && ip -n %s link set %s up && "
     "ip -n %s addr add 10.78.0.2/24 dev %s && ip -n %s link set %s up",
     vpod2, pod, vcli2, client, client, vcli2, client, vcli2, pod, vpod2, pod, vpod2);
}

static void teardown(void) {
  kvt_teardown();
  drop_all();
}

/* What the product must leave as it found it: the veth's link, addresses
 * and qdiscs, and no tap anywhere. */
static char *pod_snapshot(void) {
  g_autofree char *link = NULL, *addr = NULL, *qd = NULL, *flt = NULL;
  /* Name, MAC, MTU of every link; the veth's addresses (not their DAD
   * state, nor the carrier: those change as the peer comes and goes). */
  ck_assert_int_eq(shf(&link,
                       "ip netns exec %s sh -c 'for l in /sys/class/net/*; do "
                       "echo ${l##*/} $(cat $l/address $l/mtu); done'",
                       pod),
                   0);
  ck_assert_int_eq(
      shf(&addr, "ip -n %s -o addr show dev %s | awk '{print $3, $4}' | sort", pod, vpod), 0);
  ck_assert_int_eq(
      shf(&qd, "tc -n %s qdisc show dev %s; tc -n %s qdisc show dev %s", pod, vpod, pod, vpod2), 0);
  ck_assert_int_eq(shf(&flt, "tc -n %s filter show dev %s ingress", pod, vpod), 0);
  return g_strdup_printf("%s--\n%s--\n%s--\n%s", link, addr, qd, flt);
}

static void assert_no_tap(const char *ns) {
  g_autofree char *here = NULL, *there = NULL;
  ck_assert_int_eq(shf(&here, "ip -o link show"), 0);
  ck_assert_msg(!strstr(here, ": kvn"), "a tap is left in the host namespace:\n%s", here);
  ck_assert_int_eq(shf(&there, "ip -n %s -o link show", ns), 0);
  ck_assert_msg(!strstr(there, ": kvn"), "a tap is left in %s:\n%s", ns, there);
}

static void httpd_main(JsonObject *spec, gpointer unused) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sh");
  json_array_add_string_element(a, "-c");
  json_array_add_string_element(a, "mkdir -p /tmp/www && echo " PAGE " > /tmp/www/index.html && "
                                   "exec httpd -f -p 80 -h /tmp/www");
  json_object_set_array_member(proc, "args", a);
  /* The sandbox's hostname (its id), not the image's. */
  json_object_remove_member(spec, "hostname");
}

static katavm_sandbox *create_in(katavm_runtime *rt, const char *id, const char *netns,
                                 katavm_error **e) {
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.memory_mib = 256;
  cfg.netns = netns;
  katavm_sandbox *sb = NULL;
  int rc = katavm_sandbox_create(rt, &cfg, &sb, e);
  return rc == 0 ? sb : NULL;
}

/* wget from client, with retries while the guest's httpd comes up. */
static char *fetch(const char *url) {
  for (int i = 0; i < 30; i++) {
    char *out = NULL;
    if (shf(&out, "ip netns exec %s wget -q -T 5 -O - '%s'", client, url) == 0 && strstr(out, PAGE))
      return out;
    g_free(out);
    g_usleep(G_USEC_PER_SEC);
  }
  return NULL;
}

static katavm_sandbox *pod_with_httpd(katavm_runtime *rt, const char *id) {
  g_autofree char *bdir = g_build_filename(work, "bundle", NULL);
  g_autofree char *b = kvt_make_rootfs(bdir, TRUE);
  kvt_edit_spec(b, httpd_main, NULL);
  /* Mount points for the generated names (the product never writes into
   * a rootfs; an image has these files). */
  g_autofree char *resolv = g_build_filename(b, "rootfs", "etc", "resolv.conf", NULL);
  ck_assert(g_file_set_contents(resolv, "nameserver 192.0.2.99\n", -1, NULL));
  katavm_error *e = NULL;
  katavm_sandbox *sb = create_in(rt, id, pod_path, &e);
  ck_assert_msg(sb, "create in %s: %s", pod_path, katavm_error_message(e));
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b;
  int rc = katavm_container_add(sb, "web", &cc, NULL, &e);
  ck_assert_msg(rc == 0, "add: %s", katavm_error_message(e));
  ck_assert_int_eq(katavm_container_start(sb, "web", NULL), 0);
  return sb;
}

START_TEST(httpd_over_ipv4_and_ipv6) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *before = pod_snapshot();
  g_autofree char *mac = NULL;
  ck_assert_int_eq(shf(&mac, "ip netns exec %s cat /sys/class/net/%s/address", pod, vpod), 0);
  g_strstrip(mac);
  katavm_sandbox *sb = pod_with_httpd(rt, "net1");

  g_autofree char *v4 = fetch("http://10.77.0.2/");
  ck_assert_msg(v4, "wget over IPv4 from %s failed", client);
  g_autofree char *v6 = fetch("http://[fd00::2]/");
  ck_assert_msg(v6, "wget over IPv6 from %s failed", client);
  g_autofree char *second = fetch("http://10.78.0.2/");
  ck_assert_msg(second, "wget over pod's second interface failed");

  g_autofree char *addr = NULL, *route = NULL, *route6 = NULL, *neigh = NULL;
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("ip", "addr"), NULL, &addr, NULL), 0);
  ck_assert_msg(strstr(addr, "10.77.0.2/24"), "no pod IPv4 address in:\n%s", addr);
  ck_assert_msg(strstr(addr, "fd00::2/64"), "no pod IPv6 address in:\n%s", addr);
  ck_assert_msg(strstr(addr, mac), "not the pod's MAC %s in:\n%s", mac, addr);
  ck_assert_msg(strstr(addr, "mtu 1400"), "not the pod's MTU in:\n%s", addr);
  ck_assert_msg(strstr(addr, "10.78.0.2/24"), "no second interface in:\n%s", addr);
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("ip", "route"), NULL, &route, NULL), 0);
  ck_assert_msg(strstr(route, "default via 10.77.0.1"), "no default route in:\n%s", route);
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("ip", "-6", "route"), NULL, &route6, NULL), 0);
  ck_assert_msg(strstr(route6, "default via fd00::1"), "no IPv6 default route in:\n%s", route6);
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("ip", "neigh"), NULL, &neigh, NULL), 0);
  ck_assert_msg(strstr(neigh, "10.77.0.9") && strstr(neigh, "02:00:00:00:77:09"),
                "no static neighbour in:\n%s", neigh);

  /* The names: the namespace's resolv.conf (without its loopback stub
   * resolver), /etc/hosts with the pod's address for the hostname. */
  g_autofree char *rc = NULL, *hosts = NULL, *orig = NULL;
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("cat", "/etc/resolv.conf"), NULL, &rc, NULL), 0);
  ck_assert_msg(strstr(rc, "nameserver 10.77.0.53\n") && !strstr(rc, "127.0.0.53") &&
                    strstr(rc, "search pod.test\n") && strstr(rc, "options ndots:2\n"),
                "not the namespace's resolv.conf:\n%s", rc);
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("cat", "/etc/hosts"), NULL, &hosts, NULL), 0);
  ck_assert_msg(strstr(hosts, "127.0.0.1\tlocalhost") && strstr(hosts, "\n10.77.0.2\tnet1\n"),
                "/etc/hosts:\n%s", hosts);
  g_autofree char *host = NULL;
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("hostname"), NULL, &host, NULL), 0);
  ck_assert_str_eq(g_strstrip(host), "net1");
  g_autofree char *resolv = g_build_filename(work, "bundle", "rootfs", "etc", "resolv.conf", NULL);
  ck_assert(g_file_get_contents(resolv, &orig, NULL, NULL));
  ck_assert_str_eq(orig, "nameserver 192.0.2.99\n"); /* the rootfs is untouched */

  /* inspect: the guest's interfaces and routes, from its kernel. */
  g_autofree char *insp = NULL, *ierr = NULL;
  ck_assert_int_eq(kvt_cli(&insp, &ierr, "sandbox", "inspect", "net1", "--json", NULL), 0);
  g_autofree char *mac_json = g_strdup_printf("\"mac\":\"%s\"", mac);
  ck_assert_msg(strstr(insp, "\"network\":{") && strstr(insp, mac_json) &&
                    strstr(insp, "\"10.77.0.2/24\"") && strstr(insp, "\"mtu\":1400") &&
                    strstr(insp, "\"dst\":\"0.0.0.0/0\",\"gateway\":\"10.77.0.1\""),
                "inspect:\n%s", insp);

  /* The redirects are there while it runs... */
  g_autofree char *qd = NULL;
  ck_assert_int_eq(shf(&qd, "tc -n %s qdisc show dev %s", pod, vpod), 0);
  ck_assert_msg(strstr(qd, "ingress"), "no ingress qdisc on %s:\n%s", vpod, qd);

  /* ... and gone after destroy, the veth as it was. */
  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "net1", NULL), 0);
  g_autofree char *after = pod_snapshot();
  ck_assert_str_eq(after, before);
  assert_no_tap(pod);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static int shim_pid_of(const char *id) {
  g_autofree char *out = NULL;
  g_autofree char *needle = g_strdup_printf("katavm-shim.*--id %s( |$)", id);
  if (shf(&out, "pgrep -f -- '%s' | head -1", needle) != 0 || !out || !*out)
    return 0;
  return atoi(out);
}

START_TEST(rm_after_a_shim_crash_removes_the_taps) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *before = pod_snapshot();
  katavm_error *e = NULL;
  katavm_sandbox *sb = create_in(rt, "net2", pod_path, &e);
  ck_assert_msg(sb, "create in %s: %s", pod_path, katavm_error_message(e));
  katavm_sandbox_close(sb);
  int pid = shim_pid_of("net2");
  ck_assert_int_gt(pid, 0);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
    g_usleep(20000);
  g_autofree char *out = NULL, *err = NULL;
  int rc = kvt_cli(&out, &err, "sandbox", "rm", "-f", "net2", NULL);
  ck_assert_msg(rc == 0, "sandbox rm: %s", err);
  g_autofree char *after = pod_snapshot();
  ck_assert_str_eq(after, before);
  assert_no_tap(pod);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(bad_namespaces) {
  katavm_runtime *rt = kvt_runtime();
  katavm_error *e = NULL;
  /* No such path. */
  g_autofree char *missing = g_strdup_printf("/run/netns/kvt-missing-%d", (int)getpid());
  ck_assert_ptr_null(create_in(rt, "bad1", missing, &e));
  kvt_assert_error(katavm_error_code(e), e, KATAVM_E_NOT_FOUND, missing);
  /* A file that is no network namespace (also through the CLI). */
  g_autofree char *file = g_build_filename(work, "not-a-netns", NULL);
  ck_assert(g_file_set_contents(file, "x", -1, NULL));
  e = NULL;
  ck_assert_ptr_null(create_in(rt, "bad2", file, &e));
  kvt_assert_error(katavm_error_code(e), e, KATAVM_E_INVALID, "is not a network namespace");
  g_autofree char *out = NULL, *err = NULL;
  ck_assert_int_ne(kvt_cli(&out, &err, "sandbox", "create", "--name", "bad3", "--netns",
                           "/proc/self/ns/uts", NULL),
                   0);
  ck_assert_msg(strstr(err, "/proc/self/ns/uts is not a network namespace"), "CLI said: %s", err);
  /* A namespace whose only interfaces have no address (lo excepted). */
  SH("ip netns add %s && ip link add %s netns %s type veth peer name %sx netns %s && "
     "ip -n %s link set %s up && ip -n %s link set %sx up",
     empty, vempty, empty, vempty, empty, empty, vempty, empty, vempty);
  g_autofree char *empty_path = g_strdup_printf("/run/netns/%s", empty);
  e = NULL;
  ck_assert_ptr_null(create_in(rt, "bad4", empty_path, &e));
  kvt_assert_error(katavm_error_code(e), e, KATAVM_E_INVALID, "has no interface with an address");
  g_autofree char *qd = NULL;
  ck_assert_int_eq(shf(&qd, "tc -n %s qdisc show dev %s", empty, vempty), 0);
  ck_assert_msg(!strstr(qd, "ingress"), "a qdisc is left on %s:\n%s", vempty, qd);
  assert_no_tap(empty);
  assert_no_tap(pod);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

/* A pod with a netns served by the warm pool: the taps are made at the
 * take, the pod is as a cold one (addresses, MAC, names, hostname = id),
 * and the namespace is as it was after. A namespace that is none to use
 * gets the cold create's error, and the pooled VM stays pooled. */
START_TEST(pooled_pod_in_netns) {
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *before = pod_snapshot();
  kvt_pool_start(rt, 1, 1, 256);
  g_autofree char *x = kvt_pool_wait_ready(rt);
  katavm_error *e = NULL;
  g_autofree char *missing = g_strdup_printf("/run/netns/kvt-missing-%d", (int)getpid());
  ck_assert_ptr_null(create_in(rt, "pbad1", missing, &e));
  kvt_assert_error(katavm_error_code(e), e, KATAVM_E_NOT_FOUND, missing);
  e = NULL;
  ck_assert_ptr_null(create_in(rt, "pbad2", "/proc/self/ns/uts", &e));
  kvt_assert_error(katavm_error_code(e), e, KATAVM_E_INVALID, "is not a network namespace");
  SH("ip netns add %s && ip link add %s netns %s type veth peer name %sx netns %s && "
     "ip -n %s link set %s up",
     empty, vempty, empty, vempty, empty, empty, vempty);
  g_autofree char *empty_path = g_strdup_printf("/run/netns/%s", empty);
  e = NULL;
  ck_assert_ptr_null(create_in(rt, "pbad3", empty_path, &e));
  kvt_assert_error(katavm_error_code(e), e, KATAVM_E_INVALID, "has no interface with an address");
  g_autofree char *still = kvt_pool_ready_vm(rt);
  ck_assert_msg(!g_strcmp0(still, x), "pooled VM %s is not ready after refused takes (%s)", x,
                still);
  g_autofree char *sbs = g_build_filename(kvt_root(), "sandboxes", NULL);
  g_autoptr(GDir) d = g_dir_open(sbs, 0, NULL);
  ck_assert_msg(!d || !g_dir_read_name(d), "a refused take left a sandbox in %s", sbs);

  katavm_sandbox *sb = pod_with_httpd(rt, "net3");
  g_autofree char *inst = kvt_instance_of("net3");
  ck_assert_msg(!g_strcmp0(inst, x), "net3 was not served by pooled VM %s (instance %s)", x, inst);
  g_autofree char *v4 = fetch("http://10.77.0.2/");
  ck_assert_msg(v4, "wget over IPv4 from %s into the pooled pod failed", client);
  g_autofree char *mac = NULL, *addr = NULL, *host = NULL, *hosts = NULL;
  ck_assert_int_eq(shf(&mac, "ip netns exec %s cat /sys/class/net/%s/address", pod, vpod), 0);
  g_strstrip(mac);
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("ip", "addr"), NULL, &addr, NULL), 0);
  ck_assert_msg(strstr(addr, "10.77.0.2/24") && strstr(addr, mac) && strstr(addr, "10.78.0.2/24"),
                "not the pod's addresses and MAC %s in:\n%s", mac, addr);
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("hostname"), NULL, &host, NULL), 0);
  ck_assert_str_eq(g_strstrip(host), "net3");
  ck_assert_int_eq(kvt_exec(sb, "web", ARGV("cat", "/etc/hosts"), NULL, &hosts, NULL), 0);
  ck_assert_msg(strstr(hosts, "\n10.77.0.2\tnet3\n"), "/etc/hosts:\n%s", hosts);

  katavm_sandbox_close(sb);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "net3", NULL), 0);
  g_autofree char *after = pod_snapshot();
  ck_assert_str_eq(after, before);
  assert_no_tap(pod);
  e = NULL;
  ck_assert_msg(katavm_pool_remove(rt, &e) == 0, "pool rm: %s", katavm_error_message(e));
  assert_no_tap(empty);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("net");
  TCase *t = tcase_create("tcfilter");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, bad_namespaces);
  tcase_add_test(t, httpd_over_ipv4_and_ipv6);
  tcase_add_test(t, rm_after_a_shim_crash_removes_the_taps);
  tcase_add_test(t, pooled_pod_in_netns);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  names(); /* of this process: a failed test's leftovers go in the next set-up */
  int rc = kvt_run_suite(suite());
  drop_all();
  return rc;
}
