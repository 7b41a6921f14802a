/* tests/integration/test_net_bridge.c: sandboxes in network namespaces
 * that the test builds (every address lives inside them) on real VMs.
 * - Two sandboxes in namespaces A and B, whose veths end on one bridge in
 *   a third namespace, fetch each other's httpd page by address.
 * - An interface added to A's namespace after create is hot-plugged by
 *   name (--netns-iface): a client namespace reaches the sandbox through
 *   it; removing the NIC removes its tap and redirect.
 * - Their containers ask for network namespaces of their own and get the
 *   pod's.
 * - A veth that disappears while the sandbox runs: the sandbox keeps
 *   working, inspect succeeds and names the vanished interface
 *   (net_warnings), destroy succeeds, and no tap or qdisc is left.
 *
 * `ip` builds the namespaces (test set-up); the product uses only libnl. */
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static char work[64], nsa[32], nsb[32], nsbr[32], nscli[32];
static char va[16], vb[16], vabr[16], vbbr[16], vx[16], vy[16];
static char path_a[64], path_b[64];

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
  int pid = (int)getpid(), p = pid % 1000000;
  g_snprintf(work, sizeof work, "/tmp/kvt-netbr-%d", pid);
  g_snprintf(nsa, sizeof nsa, "kvta-%d", pid);
  g_snprintf(nsb, sizeof nsb, "kvtb-%d", pid);
  g_snprintf(nsbr, sizeof nsbr, "kvtbr-%d", pid);
  g_snprintf(nscli, sizeof nscli, "kvtcl-%d", pid);
  g_snprintf(va, sizeof va, "kva%d", p);
  g_snprintf(vb, sizeof vb, "kvb%d", p);
  g_snprintf(vabr, sizeof vabr, "kvA%d", p);
  g_snprintf(vbbr, sizeof vbbr, "kvB%d", p);
  g_snprintf(vx, sizeof vx, "kvx%d", p);
  g_snprintf(vy, sizeof vy, "kvy%d", p);
  g_snprintf(path_a, sizeof path_a, "/run/netns/%s", nsa);
  g_snprintf(path_b, sizeof path_b, "/run/netns/%s", nsb);
}

static void drop_all(void) {
  shf(NULL, "ip netns del %s; ip netns del %s; ip netns del %s; ip netns del %s; rm -rf %s", nsa,
      nsb, nsbr, nscli, work);
}

static void setup(void) {
  kvt_setup();
  drop_all();
  ck_assert_int_eq(g_mkdir_with_parents(work, 0755), 0);
  SH("ip netns add %s && ip netns add %s && ip netns add %s && ip netns add %s", nsa, nsb, nsbr,
     nscli);
  SH("ip -n %s link add br0 type bridge && ip -n %s link set br0 up", nsbr, nsbr);
  SH("ip link add %s netns %s type veth peer name %s netns %s && "
     "ip link add %s netns %s type veth peer name %s netns %s",
     va, nsa, vabr, nsbr, vb, nsb, vbbr, nsbr);
  SH("ip -n %s link set %s master br0 up && ip -n %s link set %s master br0 up", nsbr, vabr, nsbr,
     vbbr);
  SH("ip -n %s addr add 10.79.0.1/24 dev %s && ip -n %s link set %s up && "
     "ip -n %s addr add 10.79.0.2/24 dev %s && ip -n %s link set %s up",
     nsa, va, nsa, va, nsb, vb, nsb, vb);
}

static void teardown(void) {
  kvt_teardown();
  drop_all();
}

static void assert_no_tap(const char *ns) {
  g_autofree char *here = NULL, *there = NULL;
  ck_assert_int_eq(shf(&here, "ip -o link show"), 0);
  ck_assert_msg(!strstr(here, ": kvn"), "a tap is left in the host namespace:\n%s", here);
  ck_assert_int_eq(shf(&there, "ip -n %s -o link show", ns), 0);
  ck_assert_msg(!strstr(there, ": kvn"), "a tap is left in %s:\n%s", ns, there);
}

static void httpd_main(JsonObject *spec, gpointer page) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonArray *a = json_array_new();
  json_array_add_string_element(a, "sh");
  json_array_add_string_element(a, "-c");
  g_autofree char *cmd = g_strdup_printf(
      "mkdir -p /tmp/www && echo %s > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www",
      (const char *)page);
  json_array_add_string_element(a, cmd);
  json_object_set_array_member(proc, "args", a);
  /* A container asking for a network namespace of its own (as runc's
   * default spec does) gets the pod's, like a Kubernetes pod's containers:
   * the fetches below go through it. */
  JsonObject *lx = json_object_get_object_member(spec, "linux");
  JsonArray *ns = json_object_get_array_member(lx, "namespaces");
  JsonObject *net = json_object_new();
  json_object_set_string_member(net, "type", "network");
  json_array_add_object_element(ns, net);
}

static katavm_sandbox *sandbox_with_httpd(katavm_runtime *rt, const char *id, const char *netns,
                                          const char *page) {
  g_autofree char *bdir = g_build_filename(work, id, NULL);
  g_autofree char *b = kvt_make_rootfs(bdir, TRUE);
  kvt_edit_spec(b, httpd_main, (gpointer)page);
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.memory_mib = 256;
  cfg.netns = netns;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  ck_assert_msg(katavm_sandbox_create(rt, &cfg, &sb, &e) == 0, "create %s in %s: %s", id, netns,
                katavm_error_message(e));
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = b;
  ck_assert_msg(katavm_container_add(sb, "web", &cc, NULL, &e) == 0, "add: %s",
                katavm_error_message(e));
  ck_assert_int_eq(katavm_container_start(sb, "web", NULL), 0);
  return sb;
}

/* wget from inside a sandbox's container, with retries. */
static gboolean fetch_from(katavm_sandbox *sb, const char *url, const char *page) {
  for (int i = 0; i < 30; i++) {
    g_autofree char *out = NULL;
    if (kvt_exec(sb, "web", ARGV("wget", "-q", "-O", "-", url), NULL, &out, NULL) == 0 &&
        strstr(out, page))
      return TRUE;
    g_usleep(G_USEC_PER_SEC);
  }
  return FALSE;
}

static gboolean fetch_in_ns(const char *ns, const char *url, const char *page) {
  for (int i = 0; i < 30; i++) {
    g_autofree char *out = NULL;
    if (shf(&out, "ip netns exec %s wget -q -T 5 -O - '%s'", ns, url) == 0 && strstr(out, page))
      return TRUE;
    g_usleep(G_USEC_PER_SEC);
  }
  return FALSE;
}

START_TEST(two_sandboxes_on_one_bridge_reach_each_other) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *a = sandbox_with_httpd(rt, "bra", path_a, "page-of-a");
  katavm_sandbox *b = sandbox_with_httpd(rt, "brb", path_b, "page-of-b");
  ck_assert_msg(fetch_from(b, "http://10.79.0.1/", "page-of-a"), "b cannot fetch a's page");
  ck_assert_msg(fetch_from(a, "http://10.79.0.2/", "page-of-b"), "a cannot fetch b's page");
  katavm_sandbox_close(a);
  katavm_sandbox_close(b);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "bra", NULL), 0);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "brb", NULL), 0);
  assert_no_tap(nsa);
  assert_no_tap(nsb);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(an_interface_added_later_is_hotplugged_by_name) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *a = sandbox_with_httpd(rt, "hpa", path_a, "page-of-a");
  /* A new veth in A's namespace, its peer in the client namespace. */
  SH("ip link add %s netns %s type veth peer name %s netns %s && "
     "ip -n %s addr add 10.80.0.2/24 dev %s && ip -n %s link set %s up && "
     "ip -n %s addr add 10.80.0.1/24 dev %s && ip -n %s link set %s up",
     vx, nsa, vy, nscli, nsa, vx, nsa, vx, nscli, vy, nscli, vy);
  g_autofree char *mac = NULL;
  ck_assert_int_eq(shf(&mac, "ip netns exec %s cat /sys/class/net/%s/address", nsa, vx), 0);
  g_strstrip(mac);
  g_autofree char *out = NULL, *err = NULL;
  int rc = kvt_cli(&out, &err, "hotplug", "hpa", "net", "add", "--netns-iface", vx, NULL);
  ck_assert_msg(rc == 0, "hotplug --netns-iface: %s", err);
  ck_assert_msg(strstr(out, mac), "hotplug did not report the MAC %s: %s", mac, out);
  ck_assert_msg(fetch_in_ns(nscli, "http://10.80.0.2/", "page-of-a"),
                "client cannot reach the sandbox through the hot-plugged interface");
  /* Twice, or one that does not exist: clear errors. */
  g_free(err);
  err = NULL;
  ck_assert_int_ne(kvt_cli(NULL, &err, "hotplug", "hpa", "net", "add", "--netns-iface", vx, NULL),
                   0);
  ck_assert_msg(strstr(err, "already reaches the guest"), "%s", err);
  g_free(err);
  err = NULL;
  ck_assert_int_ne(
      kvt_cli(NULL, &err, "hotplug", "hpa", "net", "add", "--netns-iface", "nosuch0", NULL), 0);
  ck_assert_msg(strstr(err, "has no interface nosuch0"), "%s", err);
  /* Removing it takes its tap and the redirect. */
  g_free(err);
  err = NULL;
  rc = kvt_cli(NULL, &err, "hotplug", "hpa", "net", "rm", mac, NULL);
  ck_assert_msg(rc == 0, "hotplug net rm: %s", err);
  g_autofree char *links = NULL, *qd = NULL;
  ck_assert_int_eq(shf(&links, "ip -n %s -o link show type tun", nsa), 0);
  g_auto(GStrv) lines = g_strsplit(g_strstrip(links), "\n", -1);
  ck_assert_msg(g_strv_length(lines) == 1, "one tap (of %s) should be left in %s:\n%s", va, nsa,
                links);
  ck_assert_int_eq(shf(&qd, "tc -n %s qdisc show dev %s", nsa, vx), 0);
  ck_assert_msg(!strstr(qd, "ingress"), "the ingress qdisc of %s is left:\n%s", vx, qd);
  katavm_sandbox_close(a);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "hpa", NULL), 0);
  assert_no_tap(nsa);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

START_TEST(a_veth_that_disappears_leaves_nothing_behind) {
  katavm_runtime *rt = kvt_runtime();
  katavm_sandbox *a = sandbox_with_httpd(rt, "gone", path_a, "page-of-a");
  SH("ip -n %s link del %s", nsa, va);
  /* The sandbox works on. */
  g_autofree char *out = NULL;
  ck_assert_int_eq(kvt_exec(a, "web", ARGV("echo", "still-here"), NULL, &out, NULL), 0);
  ck_assert_msg(strstr(out, "still-here"), "%s", out);
  g_autofree char *insp = NULL, *err = NULL;
  ck_assert_int_eq(kvt_cli(&insp, &err, "sandbox", "inspect", "gone", "--json", NULL), 0);
  ck_assert_msg(strstr(insp, "\"state\":\"running\""), "%s", insp);
  /* ... and says which interface is gone. */
  g_autofree char *want =
      g_strdup_printf("interface %s of network namespace %s is gone", va, path_a);
  ck_assert_msg(strstr(insp, "\"net_warnings\"") && strstr(insp, want), "no warning '%s' in %s",
                want, insp);
  katavm_sandbox_close(a);
  ck_assert_int_eq(katavm_sandbox_destroy(rt, "gone", NULL), 0);
  assert_no_tap(nsa);
  g_autofree char *qd = NULL;
  ck_assert_int_eq(shf(&qd, "tc -n %s qdisc show", nsa), 0);
  ck_assert_msg(!strstr(qd, "ingress"), "a qdisc is left in %s:\n%s", nsa, qd);
  kvt_assert_clean();
  katavm_runtime_free(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("net_bridge");
  TCase *t = tcase_create("bridge");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, two_sandboxes_on_one_bridge_reach_each_other);
  tcase_add_test(t, an_interface_added_later_is_hotplugged_by_name);
  tcase_add_test(t, a_veth_that_disappears_leaves_nothing_behind);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  names();
  int rc = kvt_run_suite(suite());
  drop_all();
  return rc;
}
