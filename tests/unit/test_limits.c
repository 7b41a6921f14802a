/* tests/unit/test_limits.c: parsing limits on input from outside (issue 15,
 * item 6): JSON nested deeper than the bound is refused with a clear error
 * before json-glib recurses over it (a 60,000-level config.json crashed the
 * calling process), from the frame parser, from state files and from a
 * bundle's config.json; ids with non-ASCII letters get the normal invalid-id
 * error. And liveness (item 3): a peer whose loop answers pings stays, one
 * that stopped is declared dead with a timeout, pending calls included. */
#include <check.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "oci.h"
#include "proto.h"

#define DEEP 60000

/* {"ociVersion":"1.0.2","root":{"path":"rootfs"},"x":[[[...]]]} */
static char *deep_json(guint levels) {
  GString *s = g_string_new("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"x\":");
  for (guint i = 0; i < levels; i++)
    g_string_append_c(s, '[');
  for (guint i = 0; i < levels; i++)
    g_string_append_c(s, ']');
  g_string_append_c(s, '}');
  return g_string_free(s, FALSE);
}

START_TEST(text_too_deep_is_refused) {
  g_autofree char *deep = deep_json(DEEP);
  g_autoptr(GError) e = NULL;
  ck_assert(!kv_json_check_text(deep, strlen(deep), &e));
  ck_assert_msg(strstr(e->message, "nested deeper than"), "%s", e->message);
  g_clear_error(&e);
  g_autofree char *ok = deep_json(60);
  ck_assert_msg(kv_json_check_text(ok, strlen(ok), &e), "%s", e ? e->message : "");
  /* Inside strings brackets are text. */
  const char *str = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}";
  ck_assert(kv_json_check_text(str, strlen(str), NULL));
  ck_assert(!kv_json_check_text("{\"a\":1} x", 9, NULL));
  ck_assert(!kv_json_check_text("\xff{}", 3, NULL));
}
END_TEST

START_TEST(frame_too_deep_is_refused) {
  g_autofree char *deep = deep_json(DEEP / 100);
  g_autoptr(GBytes) b = g_bytes_new(deep, strlen(deep));
  g_autoptr(GError) e = NULL;
  ck_assert_ptr_null(kv_json_parse_object(b, &e));
  ck_assert_msg(strstr(e->message, "nested deeper than"), "%s", e->message);
}
END_TEST

START_TEST(files_too_deep_are_refused) {
  g_autofree char *dir = g_dir_make_tmp("kvt-limits-XXXXXX", NULL);
  ck_assert_ptr_nonnull(dir);
  g_autofree char *deep = deep_json(DEEP);
  g_autofree char *state = g_build_filename(dir, "state.json", NULL);
  ck_assert(g_file_set_contents(state, deep, -1, NULL));
  g_autoptr(GError) e = NULL;
  ck_assert_ptr_null(kv_json_file_load(state, &e));
  ck_assert_int_eq(e->code, KATAVM_E_CORRUPT);
  ck_assert_msg(strstr(e->message, "nested deeper than"), "%s", e->message);
  g_clear_error(&e);

  /* A bundle whose config.json nests 60,000 levels (300 KB with spaces). */
  g_autofree char *rootfs = g_build_filename(dir, "rootfs", NULL);
  ck_assert_int_eq(g_mkdir(rootfs, 0700), 0);
  g_autofree char *cfg = g_build_filename(dir, "config.json", NULL);
  GString *big = g_string_new(NULL);
  for (const char *c = deep; *c; c++) {
    g_string_append_c(big, *c);
    if (*c == '[' || *c == ']')
      g_string_append(big, "  ");
  }
  ck_assert(g_file_set_contents(cfg, big->str, -1, NULL));
  g_string_free(big, TRUE);
  char *real = NULL;
  JsonObject *spec = kv_oci_load(dir, NULL, &real, &e);
  ck_assert_ptr_null(spec);
  ck_assert_int_eq(e->code, KATAVM_E_INVALID);
  ck_assert_msg(strstr(e->message, "config.json") && strstr(e->message, "nested deeper than"), "%s",
                e->message);
  g_free(real);
  g_unlink(cfg);
  g_unlink(state);
  g_rmdir(rootfs);
  g_rmdir(dir);
}
END_TEST

START_TEST(non_ascii_ids_are_invalid) {
  const char *bad[] = {"h\xc3\xa9llo", "\xc3\xa9t\xc3\xa9", "caf\xc3\xa9", "a\xff"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) e = NULL;
    ck_assert(!kv_id_validate(bad[i], &e));
    ck_assert_int_eq(e->code, KATAVM_E_INVALID);
    ck_assert_msg(strstr(e->message, "allowed are letters, digits") ||
                      strstr(e->message, "must start"),
                  "%s", e->message);
    ck_assert_msg(g_utf8_validate(e->message, -1, NULL), "message is not UTF-8");
  }
}
END_TEST

/* ---- liveness ---- */

typedef struct {
  gboolean closed;
  GError *why;
} Closed;

static void on_closed(KvConn *c, const GError *why, gpointer user) {
  Closed *cl = user;
  cl->closed = TRUE;
  cl->why = g_error_copy(why);
}

static void on_reply(KvConn *c, JsonObject *result, const GError *e, gpointer user) {
  GError **out = user;
  *out = e ? g_error_copy(e) : g_error_new_literal(G_IO_ERROR, G_IO_ERROR_FAILED, "answered");
}

/* a on ctx_a with a keepalive, b on ctx_b; b's loop runs only while
 * b_alive. Iterates for at most ms. */
static void spin(GMainContext *ca, GMainContext *cb, gboolean b_alive, guint ms, gboolean *until) {
  gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
  while (g_get_monotonic_time() < end && !(until && *until)) {
    g_main_context_iteration(ca, FALSE);
    if (b_alive)
      g_main_context_iteration(cb, FALSE);
    g_usleep(1000);
  }
}

static gboolean judge_after_700(KvConn *c, guint silent_ms, GString *why, gpointer user) {
  (*(int *)user)++;
  if (silent_ms < 700)
    return FALSE;
  g_string_append(why, "judged dead");
  return TRUE;
}

START_TEST(keepalive_declares_a_stopped_peer_dead) {
  for (int with_judge = 0; with_judge < 2; with_judge++) {
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    GMainContext *ca = g_main_context_new(), *cb = g_main_context_new();
    Closed cl = {0};
    KvConnHandlers ha = {.on_closed = on_closed};
    KvConn *a = kv_conn_new(fds[0], "client", &ha, &cl, ca);
    KvConn *b = kv_conn_new(fds[1], "shim", NULL, NULL, cb);
    int judged = 0;
    kv_conn_keepalive(a, 100, 400, with_judge ? judge_after_700 : NULL, &judged, NULL);
    spin(ca, cb, TRUE, 200, NULL);
    ck_assert(kv_conn_is_ready(a));
    /* b's loop answers pings: a second and a half of it is fine. */
    spin(ca, cb, TRUE, 1500, NULL);
    ck_assert_msg(!cl.closed, "a live peer was declared dead: %s", cl.why ? cl.why->message : "");
    /* b stops (its loop no longer runs): a call pending then fails too. */
    GError *reply = NULL;
    kv_conn_call(a, "container_list", NULL, 0, on_reply, &reply);
    gint64 t0 = g_get_monotonic_time();
    spin(ca, cb, FALSE, 5000, &cl.closed);
    guint took = (guint)((g_get_monotonic_time() - t0) / 1000);
    ck_assert_msg(cl.closed, "a stopped peer was not declared dead");
    ck_assert(g_error_matches(cl.why, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT));
    ck_assert_msg(strstr(cl.why->message, "no answer from the shim"), "%s", cl.why->message);
    ck_assert_msg(took >= (with_judge ? 600u : 300u) && took < 3000, "declared dead after %u ms",
                  took);
    if (with_judge) {
      ck_assert_int_gt(judged, 0);
      ck_assert_msg(strstr(cl.why->message, "judged dead"), "%s", cl.why->message);
    }
    spin(ca, cb, FALSE, 50, NULL);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(g_error_matches(reply, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT), "%s",
                  reply->message);
    g_error_free(reply);
    g_clear_error(&cl.why);
    kv_conn_unref(a);
    kv_conn_unref(b);
    while (g_main_context_iteration(ca, FALSE) || g_main_context_iteration(cb, FALSE))
      ;
    g_main_context_unref(ca);
    g_main_context_unref(cb);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("limits");
  TCase *tc = tcase_create("limits");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, text_too_deep_is_refused);
  tcase_add_test(tc, frame_too_deep_is_refused);
  tcase_add_test(tc, files_too_deep_are_refused);
  tcase_add_test(tc, non_ascii_ids_are_invalid);
  tcase_add_test(tc, keepalive_declares_a_stopped_peer_dead);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
