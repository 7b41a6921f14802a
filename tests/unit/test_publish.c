/* tests/unit/test_publish.c: "-p [IP:]HOSTPORT:PORT[/tcp|udp]" parsing and
 * the taken-port check (lib/publish.c), on loopback only. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "publish.h"

START_TEST(test_parse_forms) {
  KvPublish p;
  ck_assert(kv_publish_parse("8080:80", &p, NULL));
  ck_assert_str_eq(p.address, "127.0.0.1");
  ck_assert_uint_eq(p.host_port, 8080);
  ck_assert_uint_eq(p.port, 80);
  ck_assert(!p.udp);
  ck_assert(kv_publish_parse("0.0.0.0:53:5353/udp", &p, NULL));
  ck_assert_str_eq(p.address, "0.0.0.0");
  ck_assert(p.udp);
  ck_assert(kv_publish_parse("127.0.0.1:1:65535/tcp", &p, NULL));
  ck_assert_uint_eq(p.port, 65535);
}
END_TEST

START_TEST(test_parse_errors) {
  const struct {
    const char *spec, *why;
  } bad[] = {
      {"", "empty"},
      {"80", "no host port"},
      {"0:80", "host port must be"},
      {"65536:80", "host port must be"},
      {"8080:-1", "guest port must be"},
      {"8080:80/sctp", "tcp or udp"},
      {"a.b.c.d:1:2", "not an IPv4 or IPv6"},
      {"1:2:3:4", "too many ':'"},
      {"[::1]:8080:80", "IPv4 host addresses only"},
      {"[::1:8080:80", "brackets"},
      {"8080: 80", "guest port must be"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    KvPublish p;
    GError *e = NULL;
    ck_assert_msg(!kv_publish_parse(bad[i].spec, &p, &e), "'%s' parsed", bad[i].spec);
    ck_assert_int_eq(e->code, KATAVM_E_INVALID);
    ck_assert_msg(strstr(e->message, bad[i].why), "'%s': %s", bad[i].spec, e->message);
    g_error_free(e);
  }
  GError *e = NULL;
  const char *twice[] = {"8080:80", "127.0.0.1:8080:81", NULL};
  ck_assert_ptr_null(kv_publish_parse_all(twice, &e));
  ck_assert(strstr(e->message, "published twice"));
  g_error_free(e);
  const char *both[] = {"8080:80", "8080:80/udp", NULL};
  GArray *a = kv_publish_parse_all(both, NULL);
  ck_assert_uint_eq(a->len, 2);
  g_array_unref(a);
}
END_TEST

START_TEST(test_taken_port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(fd, 1), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  g_autofree char *spec = g_strdup_printf("%u:80", ntohs(a.sin_port));
  KvPublish p;
  ck_assert(kv_publish_parse(spec, &p, NULL));
  GError *e = NULL;
  ck_assert(!kv_publish_check_free(&p, spec, &e));
  ck_assert_int_eq(e->code, KATAVM_E_EXISTS);
  ck_assert(strstr(e->message, "already in use"));
  g_clear_error(&e);
  close(fd);
  ck_assert(kv_publish_check_free(&p, spec, &e)); /* free again, and nothing stays bound */
  ck_assert(kv_publish_check_free(&p, spec, &e));
  ck_assert(kv_publish_parse("192.0.2.254:8080:80", &p, NULL));
  ck_assert(!kv_publish_check_free(&p, "192.0.2.254:8080:80", &e));
  ck_assert(strstr(e->message, "not an address of this host"));
  g_clear_error(&e);
}
END_TEST

int main(void) {
  Suite *s = suite_create("publish");
  TCase *t = tcase_create("publish");
  tcase_add_test(t, test_parse_forms);
  tcase_add_test(t, test_parse_errors);
  tcase_add_test(t, test_taken_port);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
