/* tests/unit/test_limits.c: parsing limits on input from outside (issue 15,
 * item 6): JSON nested deeper than the bound is refused with a clear error
 * before json-glib recurses over it (a 60,000-level config.json crashed the
 * calling process), from the frame parser, from state files and from a
 * bundle's config.json; ids with non-ASCII letters get the normal invalid-id
 * error. */
#include <check.h>
#include <glib/gstdio.h>
#include <string.h>

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

int main(void) {
  Suite *s = suite_create("limits");
  TCase *tc = tcase_create("limits");
  tcase_add_test(tc, text_too_deep_is_refused);
  tcase_add_test(tc, frame_too_deep_is_refused);
  tcase_add_test(tc, files_too_deep_are_refused);
  tcase_add_test(tc, non_ascii_ids_are_invalid);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
