/* tests/integration/test_untrusted.c: a real shim against hostile clients.
 *
 * Any local process that can reach a sandbox's shim socket is a peer the
 * shim must not trust. One real sandbox is booted (TCG); then raw unix
 * connections to its shim socket send garbage, truncated headers, absurd
 * lengths, unknown frame types, a foreign protocol version, malformed
 * requests, and a flood of requests whose replies are never read. After
 * each, the shim must have dropped that connection (we read EOF, and its
 * server-side socket is gone) while the sandbox stays healthy: the same
 * shim process answers an agent check through the public API. Nothing may
 * be left once the sandbox is destroyed.
 *
 * Frames are built by hand (12-byte header, big-endian, see lib/proto/
 * proto.h): integration tests use the public API only, and a hostile peer
 * would not use our encoder either.
 */
#include <errno.h>
#include <json-glib/json-glib.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"
#include "proto.h" /* KV_PROTO_VERSION: the HELLO a hostile client must get right */

#define SB_ID "untrusted1"
/* From lib/proto/proto.h; this file speaks the wire format by hand. */
#define MAGIC 0x4b56u
#define T_HELLO 1
#define T_REQUEST 2
#define T_DATA 4

typedef struct {
  katavm_sandbox *sb;
  char *sock; /* ROOT/r/<12 hex of sha256(id)>/shim.sock */
  int shim_pid;
  int baseline; /* server-side sockets of the shim before a case */
} Ctx;

/* ---- raw wire helpers ---- */

static GByteArray *frame(guint8 type, guint8 flags, guint32 stream, guint32 len,
                         const void *payload, gsize n) {
  GByteArray *a = g_byte_array_new();
  guint8 h[12] = {MAGIC >> 8, MAGIC & 0xff, type, flags};
  guint32 s = GUINT32_TO_BE(stream), l = GUINT32_TO_BE(len);
  memcpy(h + 4, &s, 4);
  memcpy(h + 8, &l, 4);
  g_byte_array_append(a, h, sizeof h);
  if (n)
    g_byte_array_append(a, payload, (guint)n);
  return a;
}

static GByteArray *json_frame(guint8 type, const char *json) {
  gsize n = strlen(json);
  return frame(type, 0, 0, (guint32)n, json, n);
}

static GByteArray *hello(int proto) {
  g_autofree char *j =
      g_strdup_printf("{\"proto\":%d,\"role\":\"client\",\"version\":\"0.0.0-hostile\"}", proto);
  return json_frame(T_HELLO, j);
}

static void append(GByteArray *to, GByteArray *f) {
  g_byte_array_append(to, f->data, f->len);
  g_byte_array_unref(f);
}

static int raw_connect(const Ctx *c) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  ck_assert_uint_lt(strlen(c->sock), sizeof sa.sun_path);
  strcpy(sa.sun_path, c->sock);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s: %s", c->sock,
                g_strerror(errno));
  return fd;
}

/* Write everything; a shim that already dropped us (EPIPE/ECONNRESET) is
 * a fine outcome, so write errors end the write quietly. */
static void send_all(int fd, const guint8 *p, gsize n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= (gsize)w;
  }
}

/* Read (and discard the shim's HELLO and replies) until the shim closes.
 * TRUE on EOF or a reset (both mean dropped); FALSE if the connection is
 * still open after 10 s. */
static gboolean dropped_by_shim(int fd) {
  gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  for (;;) {
    int left = (int)((deadline - g_get_monotonic_time()) / 1000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, left) == 0)
      return FALSE;
    guint8 buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return TRUE;
    if (n < 0 && errno != EINTR && errno != EAGAIN)
      return TRUE;
  }
}

/* Server-side sockets of the shim: /proc/net/unix lists each accepted
 * connection under the listener's path, plus the listener itself. */
static int shim_sockets(const Ctx *c) {
  g_autofree char *t = NULL;
  ck_assert(g_file_get_contents("/proc/net/unix", &t, NULL, NULL));
  int n = 0;
  g_auto(GStrv) lines = g_strsplit(t, "\n", -1);
  for (char **l = lines; *l; l++)
    if (g_str_has_suffix(*l, c->sock))
      n++;
  return n;
}

/* ---- the check after each hostile connection ---- */

static void assert_healthy(Ctx *c, const char *what) {
  /* The shim let go of the connection (allow it a moment under TCG). */
  int n = 0;
  for (int i = 0; i < 100 && (n = shim_sockets(c)) != c->baseline; i++)
    g_usleep(50000);
  ck_assert_msg(n == c->baseline,
                "%s: the shim still holds the connection (%d sockets, "
                "expected %d)",
                what, n, c->baseline);
  /* Same shim process, still serving, and the guest answers. */
  ck_assert_msg(kill(c->shim_pid, 0) == 0, "%s: the shim died", what);
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(c->sb, &gi, &e);
  ck_assert_msg(rc == 0, "%s: agent check after it: %s", what, katavm_error_message(e));
  ck_assert_uint_eq(gi.cpus_online, 1);
  char *js = NULL;
  ck_assert_int_eq(katavm_sandbox_inspect(c->sb, &js, NULL), 0);
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, js, -1, NULL));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  ck_assert_int_eq(json_object_get_int_member(o, "shim_pid"), c->shim_pid);
  ck_assert_str_eq(json_object_get_string_member(o, "state"), "running");
  katavm_free(js);
}

/* Send `bytes`, optionally half-close, and require the shim to drop us. */
static void hostile(Ctx *c, const char *what, GByteArray *bytes, gboolean half_close) {
  int fd = raw_connect(c);
  send_all(fd, bytes->data, bytes->len);
  g_byte_array_unref(bytes);
  if (half_close)
    shutdown(fd, SHUT_WR); /* "then close", but still able to see EOF */
  ck_assert_msg(dropped_by_shim(fd), "%s: the shim kept the connection open", what);
  close(fd);
  assert_healthy(c, what);
}

START_TEST(hostile_clients_cannot_hurt_the_shim) {
  katavm_runtime *rt = kvt_runtime();
  Ctx c = {0};
  c.sb = kvt_create(rt, SB_ID);
  g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, SB_ID, -1);
  hash[12] = '\0';
  c.sock = g_build_filename(kvt_root(), "r", hash, "shim.sock", NULL);
  ck_assert_msg(g_file_test(c.sock, G_FILE_TEST_EXISTS), "no socket %s", c.sock);
  char *js = NULL;
  ck_assert_int_eq(katavm_sandbox_inspect(c.sb, &js, NULL), 0);
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_data(p, js, -1, NULL));
  c.shim_pid =
      (int)json_object_get_int_member(json_node_get_object(json_parser_get_root(p)), "shim_pid");
  katavm_free(js);
  ck_assert_int_gt(c.shim_pid, 1);
  c.baseline = shim_sockets(&c);
  /* The listener and our API handle's connection. */
  ck_assert_int_eq(c.baseline, 2);
  assert_healthy(&c, "baseline");

  /* 1. Garbage: not even a frame header. */
  GByteArray *g = g_byte_array_new();
  for (int i = 0; i < 4096; i++) {
    guint8 b = (guint8)(i * 131 + 7);
    g_byte_array_append(g, &b, 1);
  }
  hostile(&c, "garbage", g, FALSE);

  /* 2. Half a header, then close (half-close, to see the shim's EOF). */
  GByteArray *t = hello(KV_PROTO_VERSION);
  g_byte_array_set_size(t, 7);
  hostile(&c, "truncated header", t, TRUE);

  /* 2b. A header promising 100 bytes, 10 delivered, then close. */
  GByteArray *tp = frame(T_HELLO, 0, 0, 100, "{\"proto\":2", 10);
  hostile(&c, "truncated payload", tp, TRUE);

  /* 3. A length of 4 GiB: refused from the header, nothing buffered. */
  hostile(&c, "oversized length", frame(T_HELLO, 0, 0, 0xffffffffu, NULL, 0), FALSE);
  /* ... and one just over the 1 MiB limit, after a valid HELLO. */
  GByteArray *ov = hello(KV_PROTO_VERSION);
  append(ov, frame(T_REQUEST, 0, 0, 1024 * 1024 + 1, "{", 1));
  hostile(&c, "length just over the limit", ov, FALSE);

  /* 4. Unknown frame type, before and after HELLO; reserved flags. */
  hostile(&c, "unknown type", frame(0x7f, 0, 0, 0, NULL, 0), FALSE);
  GByteArray *ut = hello(KV_PROTO_VERSION);
  append(ut, frame(0xff, 0, 0, 0, NULL, 0));
  hostile(&c, "unknown type after HELLO", ut, FALSE);
  GByteArray *fl = hello(KV_PROTO_VERSION);
  append(fl, json_frame(T_REQUEST, "{\"id\":1,\"method\":\"state\"}"));
  fl->data[fl->len - strlen("{\"id\":1,\"method\":\"state\"}") - 9] = 0x80;
  hostile(&c, "reserved flags", fl, FALSE);

  /* 5. Protocol violations around the handshake. */
  hostile(&c, "foreign protocol version", hello(99), FALSE);
  hostile(&c, "request before HELLO", json_frame(T_REQUEST, "{\"id\":1,\"method\":\"state\"}"),
          FALSE);
  GByteArray *h2 = hello(KV_PROTO_VERSION);
  append(h2, hello(KV_PROTO_VERSION));
  hostile(&c, "second HELLO", h2, FALSE);
  GByteArray *d0 = hello(KV_PROTO_VERSION);
  append(d0, frame(T_DATA, 0, 0, 3, "abc", 3));
  hostile(&c, "DATA on stream 0", d0, FALSE);

  /* 6. A valid HELLO, then requests the shim must refuse as malformed. */
  const char *bad_requests[] = {
      "{\"id\":1,\"method\":\"state\",\"params\":[1,2,3]}",
      "{\"id\":1,\"method\":\"state\",\"params\":\"rm -rf /\"}",
      "{\"id\":-1,\"method\":\"state\"}",
      "{\"id\":1,\"method\":\"\"}",
      "[\"not\",\"an\",\"object\"]",
      "{\"id\":1,\"method\":\"state\"",
  };
  for (size_t i = 0; i < G_N_ELEMENTS(bad_requests); i++) {
    GByteArray *b = hello(KV_PROTO_VERSION);
    append(b, json_frame(T_REQUEST, bad_requests[i]));
    g_autofree char *what = g_strdup_printf("bad request %s", bad_requests[i]);
    hostile(&c, what, b, FALSE);
  }
  /* Nesting far past the 64-level limit. */
  GString *deep = g_string_new("{\"id\":1,\"method\":\"state\",\"params\":{\"a\":");
  for (int i = 0; i < 5000; i++)
    g_string_append_c(deep, '[');
  for (int i = 0; i < 5000; i++)
    g_string_append_c(deep, ']');
  g_string_append(deep, "}}");
  GByteArray *dn = hello(KV_PROTO_VERSION);
  append(dn, json_frame(T_REQUEST, deep->str));
  g_string_free(deep, TRUE);
  hostile(&c, "deeply nested params", dn, FALSE);

  /* 7. 1000 requests whose replies are never read, then close. Some are
   * agent checks, so replies arrive from the guest after we are gone. */
  GByteArray *flood = hello(KV_PROTO_VERSION);
  for (int i = 1; i <= 1000; i++) {
    g_autofree char *r = g_strdup_printf("{\"id\":%d,\"method\":\"%s\",\"params\":{}}", i,
                                         i % 100 == 0 ? "agent_check" : "state");
    append(flood, json_frame(T_REQUEST, r));
  }
  int fd = raw_connect(&c);
  send_all(fd, flood->data, flood->len);
  g_byte_array_unref(flood);
  g_usleep(200000); /* let the shim start answering into a full socket */
  close(fd);
  assert_healthy(&c, "1000 unread requests");

  /* 8. A well-behaved raw client still gets answers afterwards. */
  fd = raw_connect(&c);
  GByteArray *ok = hello(KV_PROTO_VERSION);
  append(ok, json_frame(T_REQUEST, "{\"id\":5,\"method\":\"state\"}"));
  send_all(fd, ok->data, ok->len);
  g_byte_array_unref(ok);
  shutdown(fd, SHUT_WR);
  GByteArray *got = g_byte_array_new();
  gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  while (g_get_monotonic_time() < deadline) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 1000) <= 0)
      continue;
    guint8 buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      break;
    g_byte_array_append(got, buf, (guint)n);
  }
  close(fd);
  g_byte_array_append(got, (const guint8 *)"", 1);
  ck_assert_msg(memmem(got->data, got->len, "\"id\":5", 6) &&
                    memmem(got->data, got->len, "\"running\"", 9),
                "no state reply from the shim (%u bytes)", got->len - 1);
  g_byte_array_unref(got);
  assert_healthy(&c, "well-behaved raw client");

  katavm_sandbox_close(c.sb);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_destroy(rt, SB_ID, &e);
  ck_assert_msg(rc == 0, "destroy: %s", katavm_error_message(e));
  kvt_assert_clean();
  g_free(c.sock);
  katavm_runtime_free(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("untrusted");
  TCase *t = tcase_create("hostile-clients");
  tcase_add_checked_fixture(t, kvt_setup, kvt_teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, hostile_clients_cannot_hurt_the_shim);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}
