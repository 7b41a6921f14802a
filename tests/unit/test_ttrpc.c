/* tests/unit/test_ttrpc.c: the ttrpc framing of containerd-shim-katavm-v2
 * (shim-v2/ttrpc.c): header layout, the decoder over any split, oversized
 * frames skipped, and a server that answers an unknown method, a malformed
 * request and an oversized frame with an error and keeps serving. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <unistd.h>

#include "ttrpc.h"
#include "ttrpc.pb-c.h"

START_TEST(header_layout) {
  TtrpcHeader h = {.length = 0x01020304, .stream = 0x0a0b0c0d, .type = 1, .flags = 0x80};
  uint8_t b[TTRPC_HEADER_LEN];
  ttrpc_header_encode(&h, b);
  const uint8_t want[] = {1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 1, 0x80};
  ck_assert_mem_eq(b, want, sizeof(want));
  TtrpcHeader g;
  ttrpc_header_decode(b, &g);
  ck_assert_uint_eq(g.length, h.length);
  ck_assert_uint_eq(g.stream, h.stream);
  ck_assert_uint_eq(g.type, 1);
  ck_assert_uint_eq(g.flags, 0x80);
}
END_TEST

static size_t frame(uint8_t *out, uint32_t stream, const char *payload, uint32_t len) {
  TtrpcHeader h = {.length = len, .stream = stream, .type = TTRPC_TYPE_REQUEST};
  ttrpc_header_encode(&h, out);
  if (payload)
    memcpy(out + TTRPC_HEADER_LEN, payload, len);
  return TTRPC_HEADER_LEN + len;
}

START_TEST(decoder_splits) {
  uint8_t s[256];
  size_t n = frame(s, 1, "hello", 5);
  n += frame(s + n, 3, NULL, 0);
  n += frame(s + n, 5, "xy", 2);
  for (size_t step = 1; step <= n; step++) {
    TtrpcDecoder d;
    ttrpc_decoder_init(&d);
    int frames = 0;
    size_t off = 0;
    while (off < n) {
      size_t lim = off + step < n ? step : n - off;
      size_t used = 0;
      while (used < lim) {
        TtrpcFrame f;
        int got;
        used += ttrpc_decoder_feed(&d, s + off + used, lim - used, &f, &got);
        if (got) {
          frames++;
          if (f.h.stream == 1)
            ck_assert_mem_eq(f.payload, "hello", 5);
          if (f.h.stream == 3)
            ck_assert_uint_eq(f.h.length, 0);
          if (f.h.stream == 5)
            ck_assert_mem_eq(f.payload, "xy", 2);
          free(f.payload);
        }
      }
      off += lim;
    }
    ck_assert_int_eq(frames, 3);
    ttrpc_decoder_clear(&d);
  }
}
END_TEST

START_TEST(decoder_oversized) {
  TtrpcDecoder d;
  ttrpc_decoder_init(&d);
  uint8_t h[TTRPC_HEADER_LEN];
  TtrpcHeader hh = {.length = TTRPC_MESSAGE_MAX + 1, .stream = 7, .type = 1};
  ttrpc_header_encode(&hh, h);
  TtrpcFrame f;
  int got;
  ck_assert_uint_eq(ttrpc_decoder_feed(&d, h, sizeof(h), &f, &got), sizeof(h));
  ck_assert_int_eq(got, 0);
  uint8_t *junk = calloc(1, 65536);
  size_t left = TTRPC_MESSAGE_MAX + 1;
  while (left) {
    size_t n = left < 65536 ? left : 65536;
    ck_assert_uint_eq(ttrpc_decoder_feed(&d, junk, n, &f, &got), n);
    left -= n;
  }
  free(junk);
  ck_assert_int_eq(got, 1);
  ck_assert_int_eq(f.oversized, 1);
  ck_assert_ptr_null(f.payload);
  ck_assert_uint_eq(f.h.stream, 7);
  ttrpc_decoder_clear(&d);
}
END_TEST

static int echo(void *ctx, const char *service, const char *method, const uint8_t *payload,
                size_t len, uint8_t **resp, size_t *resp_len, char **msg) {
  if (strcmp(service, "test.Echo") || strcmp(method, "Echo")) {
    *msg = strdup("unknown method");
    return TTRPC_UNIMPLEMENTED;
  }
  *resp = malloc(len + 1);
  memcpy(*resp, payload, len);
  *resp_len = len;
  return TTRPC_OK;
}

static volatile int stop;
static void *serve(void *arg) {
  ttrpc_serve(*(int *)arg, echo, NULL, &stop);
  return NULL;
}

static Ttrpc__Response *call_raw(int fd, const uint8_t *f, size_t n, uint32_t *stream) {
  ck_assert_int_eq(write(fd, f, n), (ssize_t)n);
  uint8_t h[TTRPC_HEADER_LEN];
  ck_assert_int_eq(recv(fd, h, sizeof(h), MSG_WAITALL), (ssize_t)sizeof(h));
  TtrpcHeader hh;
  ttrpc_header_decode(h, &hh);
  ck_assert_uint_eq(hh.type, TTRPC_TYPE_RESPONSE);
  *stream = hh.stream;
  uint8_t *p = malloc(hh.length + 1);
  ck_assert_int_eq(recv(fd, p, hh.length, MSG_WAITALL), (ssize_t)hh.length);
  Ttrpc__Response *r = ttrpc__response__unpack(NULL, hh.length, p);
  free(p);
  ck_assert_ptr_nonnull(r);
  return r;
}

static Ttrpc__Response *call(int fd, uint32_t stream, const char *svc, const char *method,
                             const char *payload) {
  Ttrpc__Request rq = TTRPC__REQUEST__INIT;
  rq.service = (char *)svc;
  rq.method = (char *)method;
  rq.payload.data = (uint8_t *)payload;
  rq.payload.len = strlen(payload);
  size_t n = ttrpc__request__get_packed_size(&rq);
  uint8_t *f = malloc(TTRPC_HEADER_LEN + n);
  TtrpcHeader h = {.length = (uint32_t)n, .stream = stream, .type = TTRPC_TYPE_REQUEST};
  ttrpc_header_encode(&h, f);
  ttrpc__request__pack(&rq, f + TTRPC_HEADER_LEN);
  uint32_t got;
  Ttrpc__Response *r = call_raw(fd, f, TTRPC_HEADER_LEN + n, &got);
  ck_assert_uint_eq(got, stream);
  free(f);
  return r;
}

START_TEST(server_errors_keep_serving) {
  int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/test-ttrpc-%d.sock", (int)getpid());
  unlink(a.sun_path);
  ck_assert_int_eq(bind(lfd, (void *)&a, sizeof(a)), 0);
  ck_assert_int_eq(listen(lfd, 4), 0);
  pthread_t t;
  stop = 0;
  pthread_create(&t, NULL, serve, &lfd);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_eq(connect(fd, (void *)&a, sizeof(a)), 0);

  Ttrpc__Response *r = call(fd, 1, "test.Echo", "Echo", "ping");
  ck_assert_ptr_null(r->status);
  ck_assert_mem_eq(r->payload.data, "ping", 4);
  ttrpc__response__free_unpacked(r, NULL);

  r = call(fd, 3, "test.Echo", "Nope", "x");
  ck_assert_ptr_nonnull(r->status);
  ck_assert_int_eq(r->status->code, TTRPC_UNIMPLEMENTED);
  ttrpc__response__free_unpacked(r, NULL);

  /* A payload that is no Request protobuf (field 1 with wire type 7). */
  uint8_t bad[TTRPC_HEADER_LEN + 3];
  size_t n = frame(bad, 5, "\x0f\xff\xff", 3);
  uint32_t st;
  r = call_raw(fd, bad, n, &st);
  ck_assert_uint_eq(st, 5);
  ck_assert_int_eq(r->status->code, TTRPC_INVALID_ARGUMENT);
  ttrpc__response__free_unpacked(r, NULL);

  /* An oversized frame: its bytes are skipped, the stream gets an error. */
  size_t big = TTRPC_MESSAGE_MAX + 16;
  uint8_t *f = calloc(1, TTRPC_HEADER_LEN + big);
  TtrpcHeader hh = {.length = (uint32_t)big, .stream = 9, .type = TTRPC_TYPE_REQUEST};
  ttrpc_header_encode(&hh, f);
  r = call_raw(fd, f, TTRPC_HEADER_LEN + big, &st);
  free(f);
  ck_assert_uint_eq(st, 9);
  ck_assert_int_eq(r->status->code, TTRPC_RESOURCE_EXHAUSTED);
  ttrpc__response__free_unpacked(r, NULL);

  r = call(fd, 11, "test.Echo", "Echo", "still here");
  ck_assert_ptr_null(r->status);
  ck_assert_mem_eq(r->payload.data, "still here", 10);
  ttrpc__response__free_unpacked(r, NULL);

  close(fd);
  stop = 1;
  pthread_join(t, NULL);
  close(lfd);
  unlink(a.sun_path);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ttrpc");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, header_layout);
  tcase_add_test(tc, decoder_splits);
  tcase_add_test(tc, decoder_oversized);
  tcase_add_test(tc, server_errors_keep_serving);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
