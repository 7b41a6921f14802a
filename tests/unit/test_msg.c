/* tests/unit/test_msg.c: the typed contract (lib/proto/msg.c): every field
 * type decodes and encodes, and malformed messages are refused with the
 * method and field named. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"

static JsonObject *parse(const char *json) {
  g_autoptr(GError) e = NULL;
  g_autoptr(GBytes) b = g_bytes_new(json, strlen(json));
  JsonNode *n = kv_json_parse_object(b, &e);
  ck_assert_msg(n, "%s: %s", json, e ? e->message : "");
  JsonObject *o = json_object_ref(json_node_get_object(n));
  json_node_unref(n);
  return o;
}

/* Decodes json as m's params and returns the error message (NULL when it
 * decoded). */
static char *params_error(const KvMethod *m, const char *json) {
  g_autoptr(JsonObject) o = parse(json);
  gpointer out = g_malloc0(m->params->size);
  g_autoptr(GError) e = NULL;
  gboolean ok = kv_params_decode(m, o, out, &e);
  kv_msg_clear(m->params, out);
  g_free(out);
  if (ok)
    return NULL;
  ck_assert(e->domain == KV_ERROR_DOMAIN && e->code == KV_E_INVALID);
  return g_strdup(e->message);
}

START_TEST(test_exec_roundtrip) {
  KvExecParams p = {0};
  p.container_id = "web";
  p.exec_id = "e1";
  p.process = parse("{\"args\":[\"sh\"]}");
  p.streams.stdin_id = 1;
  p.streams.stdout_id = 4294967295u;
  g_autoptr(JsonObject) o = kv_msg_encode(kv_m_exec.params, &p);
  json_object_unref(p.process);
  KvExecParams q;
  g_autoptr(GError) e = NULL;
  ck_assert(kv_params_decode(&kv_m_exec, o, &q, &e));
  ck_assert_str_eq(q.container_id, "web");
  ck_assert_str_eq(q.exec_id, "e1");
  ck_assert_uint_eq(q.streams.stdin_id, 1);
  ck_assert_uint_eq(q.streams.stdout_id, 4294967295u);
  ck_assert_uint_eq(q.streams.stderr_id, 0);
  ck_assert(json_object_has_member(q.process, "args"));
  ck_assert(!q.sink_fds);
  kv_msg_clear(kv_m_exec.params, &q);
  ck_assert_ptr_null(q.container_id);
}
END_TEST

START_TEST(test_refusals) {
  static const struct {
    const KvMethod *m;
    const char *json, *want;
  } cases[] = {
      {&kv_m_container_start, "{}", "is missing"},
      {&kv_m_container_start, "{\"container_id\":5}", "must be a string"},
      {&kv_m_container_start, "{\"container_id\":\"../x\"}", "contains '..'"},
      {&kv_m_container_start, "{\"container_id\":\"a/b\"}", "contains '/'"},
      {&kv_m_container_start, "{\"container_id\":\"\"}", "is empty"},
      {&kv_m_container_kill, "{\"container_id\":\"a\",\"signal\":0}", "allowed are 1..64"},
      {&kv_m_container_kill, "{\"container_id\":\"a\",\"signal\":9,\"all\":1}",
       "must be a boolean"},
      {&kv_m_exec, "{\"container_id\":\"a\",\"exec_id\":\"b\",\"process\":[]}",
       "must be an object"},
      {&kv_m_exec,
       "{\"container_id\":\"a\",\"exec_id\":\"b\",\"process\":{},\"streams\":{\"stdin\":-1}}",
       "streams: stdin is -1"},
      {&kv_m_exec,
       "{\"container_id\":\"a\",\"exec_id\":\"b\",\"process\":{},\"streams\":{\"stdin\":4294967296}"
       "}",
       "allowed are 0..4294967295"},
      {&kv_m_nic_config, "{\"mac\":\"m\",\"addresses\":[\"a\",1]}",
       "addresses[1] must be a string"},
      {&kv_m_resize, "{\"container_id\":\"a\",\"rows\":0,\"cols\":1}", "rows is 0"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *msg = params_error(cases[i].m, cases[i].json);
    ck_assert_msg(msg, "%s %s was accepted", cases[i].m->name, cases[i].json);
    ck_assert_msg(strstr(msg, cases[i].want), "%s: '%s' lacks '%s'", cases[i].json, msg,
                  cases[i].want);
    ck_assert_msg(strstr(msg, cases[i].m->name), "'%s' does not name the method", msg);
  }
  /* null is absent; unknown fields are ignored. */
  ck_assert_ptr_null(params_error(&kv_m_wait, "{\"container_id\":\"a\",\"exec_id\":null,\"x\":1}"));
}
END_TEST

START_TEST(test_lists) {
  g_autoptr(JsonObject) o =
      parse("{\"containers\":[{\"container_id\":\"a\",\"status\":\"running\",\"pid\":7},"
            "{\"container_id\":\"b\",\"status\":\"stopped\",\"exit_code\":3}]}");
  KvContainerListResult r;
  g_autoptr(GError) e = NULL;
  ck_assert(kv_result_decode(&kv_m_container_list, o, &r, &e));
  ck_assert_uint_eq(r.containers->len, 2);
  KvContainerStateResult *b = r.containers->pdata[1];
  ck_assert_str_eq(b->container_id, "b");
  ck_assert_int_eq(b->exit_code, 3);
  ck_assert_int_eq(b->pid, -1);
  g_autoptr(JsonObject) back = kv_msg_encode(kv_m_container_list.result, &r);
  kv_msg_clear(kv_m_container_list.result, &r);
  ck_assert(kv_result_decode(&kv_m_container_list, back, &r, &e));
  ck_assert_str_eq(((KvContainerStateResult *)r.containers->pdata[0])->status, "running");
  kv_msg_clear(kv_m_container_list.result, &r);

  g_autoptr(JsonObject) bad =
      parse("{\"containers\":[{\"container_id\":\"a\",\"status\":\"x\"},{\"container_id\":1}]}");
  ck_assert(!kv_result_decode(&kv_m_container_list, bad, &r, &e));
  ck_assert_msg(strstr(e->message, "containers[1]"), "%s", e->message);
  ck_assert_ptr_null(r.containers);

  g_autoptr(JsonObject) st = parse("{\"id\":\"s\",\"state\":\"running\",\"dimms_mib\":[128,256],"
                                   "\"nics\":[{\"mac\":\"m\",\"tap\":\"t\"}]}");
  KvShimStateResult s;
  g_clear_error(&e);
  ck_assert(kv_result_decode(&kv_m_shim_state, st, &s, &e));
  ck_assert_uint_eq(s.dimms_mib->len, 2);
  ck_assert_int_eq(g_array_index(s.dimms_mib, gint64, 1), 256);
  ck_assert_str_eq(((KvNicInfo *)s.nics->pdata[0])->tap, "t");
  ck_assert_ptr_null(s.disks);
  kv_msg_clear(kv_m_shim_state.result, &s);

  /* An element that fails after some of its fields decoded frees them
   * (found by fuzz_decoder: a leak). */
  g_autoptr(JsonObject) half = parse("{\"id\":\"s\",\"state\":\"running\","
                                     "\"disks\":[{\"path\":\"/x\",\"serial\":7}]}");
  g_clear_error(&e);
  ck_assert(!kv_result_decode(&kv_m_shim_state, half, &s, &e));
  ck_assert_msg(strstr(e->message, "disks[0]: serial must be a string"), "%s", e->message);
}
END_TEST

START_TEST(test_methods) {
  ck_assert_ptr_eq(kv_method_lookup("exec"), &kv_m_exec);
  ck_assert_ptr_eq(kv_method_lookup("container_add"), &kv_m_shim_container_add);
  ck_assert_ptr_null(kv_method_lookup("nope"));
  ck_assert_ptr_null(kv_method_lookup(NULL));
  ck_assert(kv_m_wait.flags & KV_NO_TIMEOUT);
  ck_assert(kv_id_valid("a.b-c_9", NULL, NULL));
  char long_id[KV_ID_MAX + 2];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = 0;
  ck_assert(!kv_id_valid(long_id, NULL, NULL));
  long_id[KV_ID_MAX] = 0;
  ck_assert(kv_id_valid(long_id, NULL, NULL));
  ck_assert(!kv_id_valid("-a", NULL, NULL));
  ck_assert(!kv_id_valid("a b", NULL, NULL));
}
END_TEST

/* ---- docs/protocol.md lists the contract as the tables define it ---- */

static const char *type_name(KvFieldType t) {
  switch (t) {
  case KV_T_BOOL:
    return "bool";
  case KV_T_INT:
    return "int";
  case KV_T_U32:
    return "u32";
  case KV_T_STR:
    return "string";
  case KV_T_ID:
    return "id";
  case KV_T_STRV:
    return "[string]";
  case KV_T_OBJECT:
    return "object";
  case KV_T_STRUCT:
    return "object:";
  case KV_T_LIST:
    return "[object]:";
  case KV_T_INTV:
    return "[int]";
  }
  return "?";
}

static void describe_fields(GString *out, const KvMsgDesc *d, const char *indent) {
  if (!d->fields[0].name) {
    g_string_append_printf(out, "%s- none\n", indent);
    return;
  }
  for (const KvField *f = d->fields; f->name; f++) {
    g_string_append_printf(out, "%s- `%s` %s", indent, f->name, type_name(f->type));
    if (f->flags & KV_F_REQUIRED)
      g_string_append(out, ", required");
    if ((f->type == KV_T_INT || f->type == KV_T_U32 || f->type == KV_T_INTV) && (f->min || f->max))
      g_string_append_printf(out, ", %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT, f->min, f->max);
    if ((f->type == KV_T_STR || f->type == KV_T_STRV) && f->max)
      g_string_append_printf(out, ", at most %" G_GINT64_FORMAT " bytes", f->max);
    if (f->def)
      g_string_append_printf(out, ", default %" G_GINT64_FORMAT, f->def);
    if (f->flags & KV_F_OMIT)
      g_string_append(out, ", left out when default");
    g_string_append_c(out, '\n');
    if (f->sub) {
      g_autofree char *deeper = g_strconcat(indent, "  ", NULL);
      describe_fields(out, f->sub, deeper);
    }
  }
}

/* The method reference of docs/protocol.md, as the tables say it. */
static char *describe_contract(void) {
  GString *out = g_string_new("");
  guint n = 0;
  const KvMethod *const *ms = kv_methods(&n);
  for (guint i = 0; i < n; i++) {
    const KvMethod *m = ms[i];
    g_string_append_printf(out, "### %s\n\nAnswered by the %s%s%s.\n\nParams:\n\n", m->name,
                           (m->flags & KV_TO_AGENT) ? "agent" : "shim",
                           (m->flags & KV_RELAYED) ? "; the shim relays it" : "",
                           (m->flags & KV_NO_TIMEOUT) ? "; no timeout" : "");
    describe_fields(out, m->params, "");
    g_string_append(out, "\nResult:\n\n");
    describe_fields(out, m->result, "");
    g_string_append_c(out, '\n');
  }
  return g_string_free(out, FALSE);
}

START_TEST(test_docs_in_sync) {
  const char *src = g_getenv("KATAVM_SOURCE_DIR");
  ck_assert_msg(src && *src, "KATAVM_SOURCE_DIR is not set");
  g_autofree char *path = g_build_filename(src, "docs", "protocol.md", NULL);
  g_autofree char *doc = NULL;
  ck_assert_msg(g_file_get_contents(path, &doc, NULL, NULL), "cannot read %s", path);
  g_autofree char *want = describe_contract();
  ck_assert_msg(strstr(doc, want),
                "%s does not list the contract as lib/proto/msg.c defines it; regenerate its "
                "method reference with `test_msg --describe`",
                path);
}
END_TEST

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--describe")) {
    g_autofree char *d = describe_contract();
    fputs(d, stdout);
    return 0;
  }
  Suite *s = suite_create("msg");
  TCase *tc = tcase_create("msg");
  tcase_add_test(tc, test_exec_roundtrip);
  tcase_add_test(tc, test_refusals);
  tcase_add_test(tc, test_lists);
  tcase_add_test(tc, test_methods);
  tcase_add_test(tc, test_docs_in_sync);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
