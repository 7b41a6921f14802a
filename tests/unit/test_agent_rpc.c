/* tests/unit/test_agent_rpc.c: the agent's RPC dispatch (agent/rpc.c)
 * driven over a socketpair, a KvConn on each end on one GMainContext, as
 * the shim drives it over virtio-serial: answers, unknown methods, params
 * of the wrong type, missing and invalid ids, unknown containers. No VM,
 * no root: nothing here launches a process. */
#include <check.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msg.h"
#include "rpc.h"

typedef struct {
  KvConn *agent, *host;
  gboolean agent_closed;
} Pair;

static void agent_on_request(KvConn *c, guint32 id, const char *method, JsonObject *params,
                             gpointer user) {
  agent_rpc_handle(c, id, method, params);
}

static void agent_on_closed(KvConn *c, const GError *why, gpointer user) {
  Pair *p = user;
  p->agent_closed = TRUE;
  agent_rpc_conn_closed(c);
}

static void pair_open(Pair *p) {
  int fds[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  static const KvConnHandlers agent_h = {.on_request = agent_on_request,
                                         .on_closed = agent_on_closed};
  static const KvConnHandlers host_h = {0};
  *p = (Pair){0};
  p->agent = kv_conn_new(fds[0], "agent", &agent_h, p, NULL);
  p->host = kv_conn_new(fds[1], "shim", &host_h, p, NULL);
  g_autoptr(GError) err = NULL;
  ck_assert_msg(kv_conn_wait_ready(p->host, 5000, &err), "%s", err ? err->message : "");
}

static void pair_close(Pair *p) {
  kv_conn_close(p->host);
  kv_conn_unref(p->host);
  kv_conn_close(p->agent);
  kv_conn_unref(p->agent);
}

static JsonObject *parse(const char *json) {
  g_autoptr(GBytes) b = g_bytes_new(json, strlen(json));
  g_autoptr(GError) e = NULL;
  JsonNode *n = kv_json_parse_object(b, &e);
  ck_assert_msg(n != NULL, "%s: %s", json, e ? e->message : "");
  JsonObject *o = json_object_ref(json_node_get_object(n));
  json_node_unref(n);
  return o;
}

/* Calls method with params (JSON text, NULL = {}); returns the result, or
 * NULL with *code and *msg set to the agent's error. */
static JsonObject *call(Pair *p, const char *method, const char *params, int *code, char **msg) {
  g_autoptr(JsonObject) o = params != NULL ? parse(params) : NULL;
  g_autoptr(GError) err = NULL;
  JsonObject *r = kv_conn_call_sync(p->host, method, o, 5000, &err);
  *code = 0;
  if (msg != NULL)
    *msg = NULL;
  if (r == NULL) {
    ck_assert_msg(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE), "%s: %s", method,
                  err->message);
    *code = kv_remote_error_code(err);
    if (msg != NULL)
      *msg = g_strdup(kv_remote_error_message(err));
  }
  return r;
}

/* Expects an error with code whose message contains needle. */
static void expect_error(Pair *p, const char *method, const char *params, int code,
                         const char *needle) {
  int got = 0;
  g_autofree char *msg = NULL;
  g_autoptr(JsonObject) r = call(p, method, params, &got, &msg);
  ck_assert_msg(r == NULL, "%s %s: answered", method, params ? params : "{}");
  ck_assert_msg(got == code, "%s %s: code %d, want %d (%s)", method, params ? params : "{}", got,
                code, msg);
  ck_assert_msg(strstr(msg, needle) != NULL, "%s %s: \"%s\" lacks \"%s\"", method,
                params ? params : "{}", msg, needle);
}

START_TEST(test_check) {
  Pair p;
  pair_open(&p);
  int code = 0;
  g_autoptr(JsonObject) r = call(&p, "check", NULL, &code, NULL);
  ck_assert_ptr_nonnull(r);
  KvCheckResult res;
  g_autoptr(GError) err = NULL;
  ck_assert_msg(kv_result_decode(&kv_m_check, r, &res, &err), "%s", err ? err->message : "");
  ck_assert_ptr_nonnull(res.agent_version);
  ck_assert_int_eq(res.proto, KV_PROTO_VERSION);
  ck_assert_ptr_nonnull(res.kernel);
  ck_assert_int_gt(res.cpus_online, 0);
  ck_assert_int_gt(res.mem_total_kib, 0);
  ck_assert_int_ge(res.uptime_ms, 0);
  kv_msg_clear(kv_m_check.result, &res);
  pair_close(&p);
}
END_TEST

/* reseed: only what is wrong with a seed (the success path credits the
 * kernel's pool: it runs in every guest at boot, not on this host). */
START_TEST(test_reseed_validation) {
  Pair p;
  pair_open(&p);
  expect_error(&p, "reseed", NULL, KV_E_INVALID, "seed");
  expect_error(&p, "reseed", "{\"seed\":\"\"}", KV_E_INVALID, "seed");
  expect_error(&p, "reseed", "{\"seed\":\"abcd\"}", KV_E_INVALID, "64 to 512 hex digits");
  g_autofree char *odd = g_strnfill(65, 'a');
  g_autofree char *odd_js = g_strdup_printf("{\"seed\":\"%s\"}", odd);
  expect_error(&p, "reseed", odd_js, KV_E_INVALID, "even count");
  g_autofree char *bad = g_strnfill(64, 'g');
  g_autofree char *bad_js = g_strdup_printf("{\"seed\":\"%s\"}", bad);
  expect_error(&p, "reseed", bad_js, KV_E_INVALID, "not hex");
  g_autofree char *big = g_strnfill(514, 'a');
  g_autofree char *big_js = g_strdup_printf("{\"seed\":\"%s\"}", big);
  expect_error(&p, "reseed", big_js, KV_E_INVALID, "seed");
  pair_close(&p);
  guint8 out[AGENT_SEED_MAX];
  gsize len = 0;
  g_autofree char *zeros = g_strnfill(62, '0');
  g_autofree char *ok = g_strdup_printf("%sfF", zeros);
  ck_assert(agent_seed_decode(ok, out, sizeof out, &len, NULL));
  ck_assert_int_eq(len, 32);
  ck_assert_int_eq(out[31], 0xff);
  ck_assert_int_eq(out[0], 0);
}
END_TEST

START_TEST(test_unknown_method) {
  Pair p;
  pair_open(&p);
  expect_error(&p, "frobnicate", NULL, KV_E_UNSUPPORTED, "unknown method \"frobnicate\" (agent ");
  /* Methods of the contract that the shim answers are not the agent's. */
  expect_error(&p, "state", NULL, KV_E_UNSUPPORTED, "unknown method \"state\"");
  expect_error(&p, "container_add", "{\"container_id\":\"a\"}", KV_E_UNSUPPORTED, "container_add");
  /* The connection goes on. */
  int code = 0;
  g_autoptr(JsonObject) r = call(&p, "container_list", NULL, &code, NULL);
  ck_assert_ptr_nonnull(r);
  pair_close(&p);
}
END_TEST

START_TEST(test_container_ids) {
  Pair p;
  pair_open(&p);
  expect_error(&p, "container_state", NULL, KV_E_INVALID,
               "container_state: container_id is missing");
  expect_error(&p, "container_state", "{\"container_id\":null}", KV_E_INVALID, "id is missing");
  expect_error(&p, "container_state", "{\"container_id\":5}", KV_E_INVALID,
               "container_state: container_id must be a string");
  expect_error(&p, "container_state", "{\"container_id\":\"\"}", KV_E_INVALID,
               "container_id is empty");
  expect_error(&p, "container_state", "{\"container_id\":\"../etc\"}", KV_E_INVALID,
               "container_id '../etc'");
  expect_error(&p, "container_state", "{\"container_id\":\"a/b\"}", KV_E_INVALID, "contains '/'");
  expect_error(&p, "container_state", "{\"container_id\":\"-x\"}", KV_E_INVALID,
               "must start with a letter or digit");
  g_autofree char *longid = g_strnfill(65, 'a');
  g_autofree char *params = g_strdup_printf("{\"container_id\":\"%s\"}", longid);
  expect_error(&p, "container_state", params, KV_E_INVALID, "the limit is 64");

  expect_error(&p, "container_state", "{\"container_id\":\"nope\"}", KV_E_NOT_FOUND,
               "no container \"nope\" in this sandbox");
  expect_error(&p, "container_start", "{\"container_id\":\"nope\"}", KV_E_NOT_FOUND, "nope");
  expect_error(&p, "container_remove", "{\"container_id\":\"nope\",\"force\":true}", KV_E_NOT_FOUND,
               "nope");
  expect_error(&p, "container_kill", "{\"container_id\":\"nope\",\"signal\":9}", KV_E_NOT_FOUND,
               "nope");
  expect_error(&p, "wait", "{\"container_id\":\"nope\"}", KV_E_NOT_FOUND, "nope");
  expect_error(&p, "wait", "{\"container_id\":\"nope\",\"exec_id\":\"e1\"}", KV_E_NOT_FOUND,
               "nope");
  expect_error(&p, "signal", "{\"container_id\":\"nope\",\"signal\":15}", KV_E_NOT_FOUND, "nope");
  expect_error(&p, "resize", "{\"container_id\":\"nope\",\"rows\":24,\"cols\":80}", KV_E_NOT_FOUND,
               "nope");
  expect_error(&p, "exec",
               "{\"container_id\":\"nope\",\"exec_id\":\"e1\",\"process\":{\"args\":[\"sh\"]}}",
               KV_E_NOT_FOUND, "nope");

  /* exec and wait name their ids too. */
  expect_error(&p, "exec", "{\"container_id\":\"c\",\"process\":{\"args\":[\"sh\"]}}", KV_E_INVALID,
               "exec: exec_id is missing");
  expect_error(&p, "exec", "{\"container_id\":\"c\",\"exec_id\":\"..\",\"process\":{}}",
               KV_E_INVALID, "exec_id");
  expect_error(&p, "wait", "{}", KV_E_INVALID, "wait: container_id is missing");
  expect_error(&p, "wait", "{\"container_id\":\"c\",\"exec_id\":7}", KV_E_INVALID,
               "exec_id must be a string");
  pair_close(&p);
}
END_TEST

START_TEST(test_wrong_types) {
  Pair p;
  pair_open(&p);
  expect_error(&p, "container_kill", "{\"container_id\":\"c\",\"signal\":\"KILL\"}", KV_E_INVALID,
               "container_kill: signal must be an integer");
  expect_error(&p, "container_kill", "{\"container_id\":\"c\"}", KV_E_INVALID, "signal is missing");
  expect_error(&p, "container_kill", "{\"container_id\":\"c\",\"signal\":0}", KV_E_INVALID,
               "signal is 0; allowed are 1..64");
  expect_error(&p, "container_kill", "{\"container_id\":\"c\",\"signal\":9,\"all\":1}",
               KV_E_INVALID, "all must be a boolean");
  expect_error(&p, "container_remove", "{\"container_id\":\"c\",\"force\":\"yes\"}", KV_E_INVALID,
               "force must be a boolean");
  expect_error(&p, "signal", "{\"container_id\":\"c\",\"signal\":65}", KV_E_INVALID,
               "signal is 65");
  expect_error(&p, "resize", "{\"container_id\":\"c\",\"rows\":0,\"cols\":80}", KV_E_INVALID,
               "resize: rows is 0");
  expect_error(&p, "resize", "{\"container_id\":\"c\",\"rows\":24}", KV_E_INVALID,
               "cols is missing");
  expect_error(&p, "exec", "{\"container_id\":\"c\",\"exec_id\":\"e\",\"process\":[]}",
               KV_E_INVALID, "exec: process must be an object");
  expect_error(
      &p, "exec",
      "{\"container_id\":\"c\",\"exec_id\":\"e\",\"process\":{},\"streams\":{\"stdin\":-1}}",
      KV_E_INVALID, "exec: streams: stdin is -1");
  expect_error(&p, "exec",
               "{\"container_id\":\"c\",\"exec_id\":\"e\",\"process\":{},\"streams\":\"x\"}",
               KV_E_INVALID, "streams must be an object");
  expect_error(&p, "cpus_set", "{\"online\":0}", KV_E_INVALID, "cpus_set: online is 0");
  expect_error(&p, "cpus_set", "{\"online\":\"2\"}", KV_E_INVALID, "online must be an integer");
  expect_error(&p, "nic_config", "{}", KV_E_INVALID, "nic_config: mac is missing");
  expect_error(&p, "nic_config", "{\"mac\":\"52:54:00:00:00:01\",\"addresses\":[1]}", KV_E_INVALID,
               "addresses[0] must be a string");
  expect_error(&p, "nic_config", "{\"mac\":\"52:54:00:00:00:01\",\"mtu\":10}", KV_E_INVALID,
               "mtu is 10");
  expect_error(&p, "disk_add", "{\"serial\":\"\"}", KV_E_INVALID,
               "disk_add: serial must not be empty");
  expect_error(&p, "disk_add", "{\"serial\":\"s1\",\"container_id\":\"a b\"}", KV_E_INVALID,
               "container_id contains character 0x20");
  expect_error(&p, "disk_remove", "{\"serial\":\"nosuchdisk\"}", KV_E_NOT_FOUND,
               "disk nosuchdisk is not set up");
  expect_error(&p, "nic_remove", "{\"mac\":\"02:00:00:00:00:99\"}", KV_E_NOT_FOUND,
               "no network interface with MAC 02:00:00:00:00:99");
  pair_close(&p);
}
END_TEST

/* container_create checks everything it can before it touches the guest;
 * these never get as far as cgroups or namespaces. */
START_TEST(test_create_validation) {
  Pair p;
  pair_open(&p);
  expect_error(&p, "container_create", "{\"container_id\":\"c1\"}", KV_E_INVALID,
               "container_create: spec is missing");
  expect_error(&p, "container_create", "{\"container_id\":\"c1\",\"spec\":\"{}\"}", KV_E_INVALID,
               "container_create: spec must be an object");
  expect_error(&p, "container_create", "{\"spec\":{}}", KV_E_INVALID,
               "container_create: container_id is missing");
  expect_error(&p, "container_create", "{\"container_id\":\"c1\",\"spec\":{}}", KV_E_INVALID,
               "spec: process is required");
  expect_error(&p, "container_create",
               "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[]}}}", KV_E_INVALID,
               "spec: process.args must be a non-empty array");
  expect_error(&p, "container_create",
               "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[\"sh\"]},\"linux\":{"
               "\"namespaces\":[{\"type\":\"user\"}]}}}",
               KV_E_UNSUPPORTED, "user namespaces are not supported");
  expect_error(
      &p, "container_create",
      "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[\"sh\"]},\"linux\":{\"seccomp\":"
      "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"no_such_call\"],"
      "\"action\":\"SCMP_ACT_ERRNO\"}]}}}}",
      KV_E_INVALID, "unknown syscall \"no_such_call\"");
  expect_error(
      &p, "container_create",
      "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[\"sh\"]}},\"rootfs\":\"rel/dir\"}",
      KV_E_INVALID, "rootfs must be an absolute guest path");
  expect_error(
      &p, "container_create",
      "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[\"sh\"]}},\"rootfs\":\"\"}",
      KV_E_INVALID, "rootfs must not be empty");
  expect_error(&p, "container_create",
               "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[\"sh\"]}},\"streams\":{"
               "\"stdout\":3,\"stderr\":3}}",
               KV_E_INVALID, "stream id 3 is given twice");
  expect_error(&p, "container_create",
               "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[\"sh\"]}},\"streams\":{"
               "\"stdout\":true}}",
               KV_E_INVALID, "container_create: streams: stdout must be an integer");
  expect_error(&p, "container_create",
               "{\"container_id\":\"c1\",\"spec\":{\"process\":{\"args\":[\"sh\"]}},\"rootfs\":\"/"
               "nonexistent/"
               "katavm-test-rootfs\"}",
               KV_E_NOT_FOUND, "rootfs /nonexistent/katavm-test-rootfs");
  /* Nothing was made of any of these. */
  int code = 0;
  g_autoptr(JsonObject) r = call(&p, "container_list", NULL, &code, NULL);
  ck_assert_ptr_nonnull(r);
  KvContainerListResult list;
  g_autoptr(GError) err = NULL;
  ck_assert(kv_result_decode(&kv_m_container_list, r, &list, &err));
  ck_assert_ptr_nonnull(list.containers);
  ck_assert_uint_eq(list.containers->len, 0);
  kv_msg_clear(kv_m_container_list.result, &list);
  pair_close(&p);
}
END_TEST

/* A REQUEST without a valid id is not an RPC at all: the connection that
 * sent it is dropped, not the agent. */
START_TEST(test_request_without_id) {
  Pair p;
  pair_open(&p);
  static const char *const bad[] = {"{\"method\":\"check\"}", "{\"id\":-1,\"method\":\"check\"}",
                                    "{\"id\":\"1\",\"method\":\"check\"}"};
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    if (i > 0)
      pair_open(&p);
    ck_assert(kv_conn_send(p.host, KV_FRAME_REQUEST, 0, bad[i], strlen(bad[i]), NULL));
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!p.agent_closed && g_get_monotonic_time() < deadline)
      g_main_context_iteration(NULL, TRUE);
    ck_assert_msg(p.agent_closed, "%s: the agent's conn stayed open", bad[i]);
    pair_close(&p);
  }
  /* A new connection is served as before. */
  pair_open(&p);
  int code = 0;
  g_autoptr(JsonObject) r = call(&p, "check", NULL, &code, NULL);
  ck_assert_ptr_nonnull(r);
  pair_close(&p);
}
END_TEST

static Suite *rpc_suite(void) {
  Suite *s = suite_create("agent_rpc");
  TCase *t = tcase_create("dispatch");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, test_check);
  tcase_add_test(t, test_reseed_validation);
  tcase_add_test(t, test_unknown_method);
  tcase_add_test(t, test_container_ids);
  tcase_add_test(t, test_wrong_types);
  tcase_add_test(t, test_create_validation);
  tcase_add_test(t, test_request_without_id);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(rpc_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
