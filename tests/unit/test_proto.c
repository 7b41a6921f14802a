/* tests/unit/test_proto.c: the wire protocol (lib/proto). Frame codec round
 * trips, the decoder under split and batched feeds, every malformed input
 * the guest could send (each mapped to its specific error code), flow-control
 * bookkeeping, and KvConn end to end over socketpairs, including peers that
 * misbehave.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"
#include "msg.h"

/* ---- helpers ---- */

static GBytes *raw_frame(guint16 magic, guint8 type, guint8 flags, guint32 stream, guint32 len,
                         const void *payload, gsize payload_len) {
  GByteArray *a = g_byte_array_new();
  guint8 h[12] = {magic >> 8, magic & 0xff, type, flags};
  guint32 s = GUINT32_TO_BE(stream), l = GUINT32_TO_BE(len);
  memcpy(h + 4, &s, 4);
  memcpy(h + 8, &l, 4);
  g_byte_array_append(a, h, sizeof h);
  if (payload_len > 0)
    g_byte_array_append(a, payload, payload_len);
  return g_byte_array_free_to_bytes(a);
}

/* A JSON-type frame with an arbitrary (possibly invalid) text payload. */
static GBytes *text_frame(KvFrameType type, guint32 stream, const char *text) {
  gsize n = strlen(text);
  return raw_frame(KV_FRAME_MAGIC, type, 0, stream, n, text, n);
}

/* Feeds `b` whole; expects the decoder to fail with `code`. */
static void expect_decode_error(GBytes *b, int code) {
  g_autoptr(KvDecoder) d = kv_decoder_new();
  g_autoptr(GError) err = NULL;
  KvFrame f;
  gsize n = 0;
  const guint8 *p = g_bytes_get_data(b, &n);
  ck_assert(kv_decoder_feed(d, p, n, &err));
  ck_assert_int_eq(kv_decoder_next(d, &f, &err), -1);
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(g_error_matches(err, KV_PROTO_ERROR, code), "expected code %d, got %s %d: %s", code,
                g_quark_to_string(err->domain), err->code, err->message);
  ck_assert_ptr_null(f.payload);
  /* Sticky: a failed decoder stays failed. */
  g_clear_error(&err);
  ck_assert(!kv_decoder_feed(d, "x", 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, code));
  g_clear_error(&err);
  ck_assert_int_eq(kv_decoder_next(d, &f, &err), -1);
}

static void expect_json_error(KvFrameType type, const char *text, int code) {
  g_autoptr(GBytes) b = text_frame(type, 0, text);
  expect_decode_error(b, code);
}

static void expect_json_ok(KvFrameType type, const char *text) {
  g_autoptr(GBytes) b = text_frame(type, 0, text);
  g_autoptr(KvDecoder) d = kv_decoder_new();
  g_autoptr(GError) err = NULL;
  KvFrame f;
  ck_assert(kv_decoder_feed(d, g_bytes_get_data(b, NULL), g_bytes_get_size(b), &err));
  int r = kv_decoder_next(d, &f, &err);
  ck_assert_msg(r == 1, "%s rejected: %s", text, err ? err->message : "?");
  kv_frame_clear(&f);
}

/* Every frame type, encoded with the public encoders. */
static GPtrArray *sample_frames(void) {
  GPtrArray *v = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
  guint8 bin[300];
  for (guint i = 0; i < sizeof bin; i++)
    bin[i] = (guint8)(i * 7); /* includes NULs and high bytes */
  guint32 credit = GUINT32_TO_BE(4096);

  g_ptr_array_add(v, kv_hello_encode("agent", "1.2.3"));
  const char *json[] = {
      "{\"id\":1,\"method\":\"check\",\"params\":{\"a\":[1,2,{\"b\":null}]}}",
      "{\"id\":4294967295,\"method\":\"state\"}",
      "{\"id\":1,\"result\":{\"ok\":true}}",
      "{\"id\":2,\"error\":{\"code\":-5,\"message\":\"nope\"}}",
      "{\"event\":\"exited\",\"code\":0}",
  };
  KvFrameType jt[] = {KV_FRAME_REQUEST, KV_FRAME_REQUEST, KV_FRAME_RESPONSE, KV_FRAME_RESPONSE,
                      KV_FRAME_EVENT};
  for (guint i = 0; i < G_N_ELEMENTS(json); i++) {
    g_autoptr(JsonNode) n = json_from_string(json[i], NULL);
    g_ptr_array_add(v, kv_frame_encode_json(jt[i], n, NULL));
  }
  g_ptr_array_add(v, kv_frame_encode(KV_FRAME_DATA, 3, bin, sizeof bin, NULL));
  g_ptr_array_add(v, kv_frame_encode(KV_FRAME_DATA, 3, NULL, 0, NULL));
  g_ptr_array_add(v, kv_frame_encode(KV_FRAME_CREDIT, 0xffffffffu, &credit, 4, NULL));
  g_ptr_array_add(v, kv_frame_encode(KV_FRAME_EOF, 3, NULL, 0, NULL));
  for (guint i = 0; i < v->len; i++)
    ck_assert_ptr_nonnull(g_ptr_array_index(v, i));
  return v;
}

static const KvFrameType sample_types[] = {
    KV_FRAME_HELLO, KV_FRAME_REQUEST, KV_FRAME_REQUEST, KV_FRAME_RESPONSE, KV_FRAME_RESPONSE,
    KV_FRAME_EVENT, KV_FRAME_DATA,    KV_FRAME_DATA,    KV_FRAME_CREDIT,   KV_FRAME_EOF};

/* Feeds the concatenation of `frames` in pieces of `step` bytes (0 = all at
 * once) and checks each decoded frame against its encoding. */
static void decode_all(GPtrArray *frames, gsize step) {
  g_autoptr(GByteArray) all = g_byte_array_new();
  for (guint i = 0; i < frames->len; i++) {
    GBytes *b = g_ptr_array_index(frames, i);
    g_byte_array_append(all, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
  }
  g_autoptr(KvDecoder) d = kv_decoder_new();
  guint got = 0;
  gsize off = 0;
  while (off < all->len || got < frames->len) {
    gsize n = step == 0 ? all->len - off : MIN(step, all->len - off);
    g_autoptr(GError) err = NULL;
    ck_assert(kv_decoder_feed(d, all->data + off, n, &err));
    off += n;
    KvFrame f;
    int r;
    while ((r = kv_decoder_next(d, &f, &err)) == 1) {
      ck_assert_uint_lt(got, frames->len);
      GBytes *want = g_ptr_array_index(frames, got);
      const guint8 *w = g_bytes_get_data(want, NULL);
      ck_assert_int_eq(f.type, sample_types[got]);
      ck_assert_int_eq(f.flags, 0);
      guint32 s;
      memcpy(&s, w + 4, 4);
      ck_assert_uint_eq(f.stream, GUINT32_FROM_BE(s));
      ck_assert_uint_eq(g_bytes_get_size(f.payload), g_bytes_get_size(want) - KV_FRAME_HDR_LEN);
      if (g_bytes_get_size(f.payload) > 0)
        ck_assert(memcmp(g_bytes_get_data(f.payload, NULL), w + 12, g_bytes_get_size(f.payload)) ==
                  0);
      kv_frame_clear(&f);
      got++;
    }
    ck_assert_msg(r == 0, "decode error: %s", err ? err->message : "?");
    if (off == all->len)
      break;
  }
  ck_assert_uint_eq(got, frames->len);
}

/* ---- codec ---- */

START_TEST(test_roundtrip_every_type_one_feed) {
  g_autoptr(GPtrArray) v = sample_frames();
  decode_all(v, 0);
}
END_TEST

START_TEST(test_roundtrip_byte_by_byte) {
  g_autoptr(GPtrArray) v = sample_frames();
  decode_all(v, 1);
}
END_TEST

START_TEST(test_roundtrip_odd_splits) {
  g_autoptr(GPtrArray) v = sample_frames();
  for (gsize step = 2; step < 40; step += 3)
    decode_all(v, step);
}
END_TEST

START_TEST(test_many_frames_one_feed) {
  g_autoptr(GByteArray) all = g_byte_array_new();
  for (guint i = 0; i < 1000; i++) {
    g_autoptr(GBytes) b = kv_frame_encode(KV_FRAME_DATA, i + 1, &i, sizeof i, NULL);
    g_byte_array_append(all, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
  }
  g_autoptr(KvDecoder) d = kv_decoder_new();
  ck_assert(kv_decoder_feed(d, all->data, all->len, NULL));
  KvFrame f;
  for (guint i = 0; i < 1000; i++) {
    ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
    ck_assert_uint_eq(f.stream, i + 1);
    ck_assert(memcmp(g_bytes_get_data(f.payload, NULL), &i, sizeof i) == 0);
    kv_frame_clear(&f);
  }
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 0);
}
END_TEST

START_TEST(test_max_payload_roundtrip) {
  g_autofree guint8 *big = g_malloc0(KV_FRAME_MAX_PAYLOAD);
  big[KV_FRAME_MAX_PAYLOAD - 1] = 0x5a;
  g_autoptr(GBytes) b = kv_frame_encode(KV_FRAME_DATA, 9, big, KV_FRAME_MAX_PAYLOAD, NULL);
  ck_assert_ptr_nonnull(b);
  g_autoptr(KvDecoder) d = kv_decoder_new();
  KvFrame f;
  ck_assert(kv_decoder_feed(d, g_bytes_get_data(b, NULL), g_bytes_get_size(b), NULL));
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
  ck_assert_uint_eq(g_bytes_get_size(f.payload), KV_FRAME_MAX_PAYLOAD);
  kv_frame_clear(&f);
}
END_TEST

START_TEST(test_encode_rejects_invalid) {
  g_autoptr(GError) err = NULL;
  guint8 x[5] = {0};
  g_autofree guint8 *big = g_malloc0(KV_FRAME_MAX_PAYLOAD + 1);

  ck_assert_ptr_null(kv_frame_encode(KV_FRAME_DATA, 1, big, KV_FRAME_MAX_PAYLOAD + 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE));
  g_clear_error(&err);
  ck_assert_ptr_null(kv_frame_encode(KV_FRAME_DATA, 0, x, 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_STREAM));
  g_clear_error(&err);
  ck_assert_ptr_null(kv_frame_encode(KV_FRAME_REQUEST, 1, "{}", 2, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_STREAM));
  g_clear_error(&err);
  ck_assert_ptr_null(kv_frame_encode(KV_FRAME_CREDIT, 1, x, 3, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD));
  g_clear_error(&err);
  ck_assert_ptr_null(kv_frame_encode(KV_FRAME_EOF, 1, x, 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD));
  g_clear_error(&err);
  ck_assert_ptr_null(kv_frame_encode(9, 1, x, 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE));
  g_clear_error(&err);
  g_autoptr(JsonNode) arr = json_from_string("[1]", NULL);
  ck_assert_ptr_null(kv_frame_encode_json(KV_FRAME_EVENT, arr, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD));
  g_clear_error(&err);
  g_autoptr(JsonNode) obj = json_from_string("{}", NULL);
  ck_assert_ptr_null(kv_frame_encode_json(KV_FRAME_DATA, obj, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE));
}
END_TEST

START_TEST(test_credit_value) {
  guint32 be = GUINT32_TO_BE(123456);
  g_autoptr(GBytes) b = kv_frame_encode(KV_FRAME_CREDIT, 7, &be, 4, NULL);
  g_autoptr(KvDecoder) d = kv_decoder_new();
  KvFrame f;
  ck_assert(kv_decoder_feed(d, g_bytes_get_data(b, NULL), g_bytes_get_size(b), NULL));
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
  ck_assert_uint_eq(kv_frame_credit(&f), 123456);
  kv_frame_clear(&f);
}
END_TEST

/* ---- malformed headers ---- */

START_TEST(test_bad_magic) {
  g_autoptr(GBytes) b = raw_frame(0x4b57, KV_FRAME_DATA, 0, 1, 0, NULL, 0);
  expect_decode_error(b, KV_PROTO_ERROR_BAD_MAGIC);
}
END_TEST

START_TEST(test_unknown_type) {
  g_autoptr(GBytes) b0 = raw_frame(KV_FRAME_MAGIC, 0, 0, 1, 0, NULL, 0);
  expect_decode_error(b0, KV_PROTO_ERROR_BAD_TYPE);
  g_autoptr(GBytes) b8 = raw_frame(KV_FRAME_MAGIC, 8, 0, 1, 0, NULL, 0);
  expect_decode_error(b8, KV_PROTO_ERROR_BAD_TYPE);
  g_autoptr(GBytes) bff = raw_frame(KV_FRAME_MAGIC, 0xff, 0, 0, 0, NULL, 0);
  expect_decode_error(bff, KV_PROTO_ERROR_BAD_TYPE);
}
END_TEST

START_TEST(test_nonzero_flags) {
  g_autoptr(GBytes) b = raw_frame(KV_FRAME_MAGIC, KV_FRAME_DATA, 0x80, 1, 1, "x", 1);
  expect_decode_error(b, KV_PROTO_ERROR_BAD_FLAGS);
}
END_TEST

START_TEST(test_oversize_rejected_from_header_alone) {
  /* Only the 12 header bytes: the verdict must not wait for 4 GiB. */
  g_autoptr(GBytes) b =
      raw_frame(KV_FRAME_MAGIC, KV_FRAME_DATA, 0, 1, KV_FRAME_MAX_PAYLOAD + 1, NULL, 0);
  ck_assert_uint_eq(g_bytes_get_size(b), KV_FRAME_HDR_LEN);
  expect_decode_error(b, KV_PROTO_ERROR_TOO_LARGE);
  g_autoptr(GBytes) b2 = raw_frame(KV_FRAME_MAGIC, KV_FRAME_REQUEST, 0, 0, 0xffffffffu, NULL, 0);
  expect_decode_error(b2, KV_PROTO_ERROR_TOO_LARGE);
}
END_TEST

START_TEST(test_stream_frames_on_stream_zero) {
  guint32 c = 0;
  g_autoptr(GBytes) d = raw_frame(KV_FRAME_MAGIC, KV_FRAME_DATA, 0, 0, 1, "x", 1);
  expect_decode_error(d, KV_PROTO_ERROR_BAD_STREAM);
  g_autoptr(GBytes) cr = raw_frame(KV_FRAME_MAGIC, KV_FRAME_CREDIT, 0, 0, 4, &c, 4);
  expect_decode_error(cr, KV_PROTO_ERROR_BAD_STREAM);
  g_autoptr(GBytes) e = raw_frame(KV_FRAME_MAGIC, KV_FRAME_EOF, 0, 0, 0, NULL, 0);
  expect_decode_error(e, KV_PROTO_ERROR_BAD_STREAM);
}
END_TEST

START_TEST(test_control_frames_on_nonzero_stream) {
  KvFrameType t[] = {KV_FRAME_HELLO, KV_FRAME_REQUEST, KV_FRAME_RESPONSE, KV_FRAME_EVENT};
  for (guint i = 0; i < G_N_ELEMENTS(t); i++) {
    g_autoptr(GBytes) b = text_frame(t[i], 5, "{}");
    expect_decode_error(b, KV_PROTO_ERROR_BAD_STREAM);
  }
}
END_TEST

START_TEST(test_credit_must_be_four_bytes) {
  g_autoptr(GBytes) b3 = raw_frame(KV_FRAME_MAGIC, KV_FRAME_CREDIT, 0, 1, 3, "abc", 3);
  expect_decode_error(b3, KV_PROTO_ERROR_BAD_PAYLOAD);
  g_autoptr(GBytes) b5 = raw_frame(KV_FRAME_MAGIC, KV_FRAME_CREDIT, 0, 1, 5, "abcde", 5);
  expect_decode_error(b5, KV_PROTO_ERROR_BAD_PAYLOAD);
  g_autoptr(GBytes) b0 = raw_frame(KV_FRAME_MAGIC, KV_FRAME_CREDIT, 0, 1, 0, NULL, 0);
  expect_decode_error(b0, KV_PROTO_ERROR_BAD_PAYLOAD);
}
END_TEST

START_TEST(test_eof_must_be_empty) {
  g_autoptr(GBytes) b = raw_frame(KV_FRAME_MAGIC, KV_FRAME_EOF, 0, 1, 1, "x", 1);
  expect_decode_error(b, KV_PROTO_ERROR_BAD_PAYLOAD);
}
END_TEST

START_TEST(test_feed_bound) {
  /* A caller that feeds without draining hits the documented bound. */
  g_autoptr(KvDecoder) d = kv_decoder_new();
  g_autoptr(GError) err = NULL;
  g_autofree guint8 *chunk = g_malloc0(1024 * 1024);
  gboolean ok = TRUE;
  for (int i = 0; i < 3 && ok; i++)
    ok = kv_decoder_feed(d, chunk, 1024 * 1024, &err);
  ck_assert(!ok);
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE));
}
END_TEST

START_TEST(test_truncated_frame_waits) {
  g_autoptr(GBytes) b = kv_frame_encode(KV_FRAME_DATA, 1, "hello", 5, NULL);
  g_autoptr(KvDecoder) d = kv_decoder_new();
  KvFrame f;
  ck_assert(kv_decoder_feed(d, g_bytes_get_data(b, NULL), 14, NULL));
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 0);
  ck_assert(kv_decoder_feed(d, (const guint8 *)g_bytes_get_data(b, NULL) + 14, 3, NULL));
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
  kv_frame_clear(&f);
}
END_TEST

/* ---- malformed JSON messages ---- */

START_TEST(test_json_not_an_object) {
  const char *bad[] = {
      "[1]",   "1",   "\"x\"",   "null",    "",           "{",  "{\"a\":1",
      "{} {}", "{}x", "{'a':1}", "/*c*/{}", "{\"a\":1,}", "}{", "{\"a\":\"\xff\"}"};
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    expect_json_error(KV_FRAME_EVENT, bad[i], KV_PROTO_ERROR_BAD_PAYLOAD);
    expect_json_error(KV_FRAME_REQUEST, bad[i], KV_PROTO_ERROR_BAD_PAYLOAD);
  }
  /* Embedded NUL. */
  static const char with_nul[] = "{\"event\":\"a\0b\"}";
  g_autoptr(GBytes) nul = raw_frame(KV_FRAME_MAGIC, KV_FRAME_EVENT, 0, 0, sizeof with_nul - 1,
                                    with_nul, sizeof with_nul - 1);
  expect_decode_error(nul, KV_PROTO_ERROR_BAD_PAYLOAD);
}
END_TEST

START_TEST(test_json_deep_nesting) {
  /* json-glib itself would overflow the stack on this. */
  g_autoptr(GString) s = g_string_new("{\"event\":\"x\",\"a\":");
  for (int i = 0; i < 500000; i++)
    g_string_append_c(s, '[');
  for (int i = 0; i < 500000; i++)
    g_string_append_c(s, ']');
  g_string_append_c(s, '}');
  expect_json_error(KV_FRAME_EVENT, s->str, KV_PROTO_ERROR_BAD_PAYLOAD);

  g_autoptr(GString) ok = g_string_new("{\"event\":\"x\",\"a\":");
  for (int i = 0; i < 40; i++)
    g_string_append(ok, "{\"b\":");
  g_string_append(ok, "1");
  for (int i = 0; i < 40; i++)
    g_string_append_c(ok, '}');
  g_string_append(ok, ",\"s\":\"[[[[{{{{\\\"\"}");
  expect_json_ok(KV_FRAME_EVENT, ok->str);
}
END_TEST

START_TEST(test_request_id_checks) {
  const char *bad[] = {
      "{\"method\":\"m\"}",
      "{\"id\":\"1\",\"method\":\"m\"}",
      "{\"id\":1.5,\"method\":\"m\"}",
      "{\"id\":1.0,\"method\":\"m\"}",
      "{\"id\":-1,\"method\":\"m\"}",
      "{\"id\":4294967296,\"method\":\"m\"}",
      "{\"id\":18446744073709551621,\"method\":\"m\"}",
      "{\"id\":true,\"method\":\"m\"}",
      "{\"id\":null,\"method\":\"m\"}",
  };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
    expect_json_error(KV_FRAME_REQUEST, bad[i], KV_PROTO_ERROR_BAD_PAYLOAD);
  expect_json_ok(KV_FRAME_REQUEST, "{\"id\":0,\"method\":\"m\"}");
  expect_json_ok(KV_FRAME_REQUEST, "{\"id\":4294967295,\"method\":\"m\"}");
}
END_TEST

START_TEST(test_request_method_checks) {
  g_autofree char *m64 = g_strnfill(64, 'm');
  g_autofree char *m65 = g_strnfill(65, 'm');
  g_autofree char *ok = g_strdup_printf("{\"id\":1,\"method\":\"%s\"}", m64);
  g_autofree char *long_ = g_strdup_printf("{\"id\":1,\"method\":\"%s\"}", m65);
  const char *bad[] = {
      "{\"id\":1}",
      "{\"id\":1,\"method\":5}",
      "{\"id\":1,\"method\":\"\"}",
      "{\"id\":1,\"method\":null}",
      "{\"id\":1,\"method\":[\"m\"]}",
      long_,
      "{\"id\":1,\"method\":\"m\",\"params\":[1]}",
      "{\"id\":1,\"method\":\"m\",\"params\":\"p\"}",
  };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
    expect_json_error(KV_FRAME_REQUEST, bad[i], KV_PROTO_ERROR_BAD_PAYLOAD);
  expect_json_ok(KV_FRAME_REQUEST, ok);

  g_autoptr(GBytes) p = g_bytes_new_static("{\"id\":7,\"method\":\"x\"}", 21);
  KvRequest r;
  ck_assert(kv_request_parse(p, &r, NULL));
  ck_assert_uint_eq(r.id, 7);
  ck_assert_str_eq(r.method, "x");
  ck_assert_ptr_nonnull(r.params);
  ck_assert_uint_eq(json_object_get_size(r.params), 0);
  kv_request_clear(&r);
}
END_TEST

START_TEST(test_response_checks) {
  const char *bad[] = {
      "{\"id\":1}",
      "{\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":\"m\"}}",
      "{\"id\":1,\"result\":5}",
      "{\"id\":1,\"result\":null}",
      "{\"id\":1,\"error\":\"boom\"}",
      "{\"id\":1,\"error\":{\"message\":\"m\"}}",
      "{\"id\":1,\"error\":{\"code\":\"1\",\"message\":\"m\"}}",
      "{\"id\":1,\"error\":{\"code\":4294967296,\"message\":\"m\"}}",
      "{\"id\":1,\"error\":{\"code\":1}}",
      "{\"id\":-3,\"result\":{}}",
      "{\"result\":{}}",
  };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
    expect_json_error(KV_FRAME_RESPONSE, bad[i], KV_PROTO_ERROR_BAD_PAYLOAD);

  const char *e = "{\"id\":9,\"error\":{\"code\":-2,\"message\":\"gone\"}}";
  g_autoptr(GBytes) p = g_bytes_new_static(e, strlen(e));
  KvResponse r;
  ck_assert(kv_response_parse(p, &r, NULL));
  ck_assert_uint_eq(r.id, 9);
  ck_assert_ptr_null(r.result);
  ck_assert_int_eq(r.err_code, -2);
  ck_assert_str_eq(r.err_message, "gone");
  kv_response_clear(&r);
}
END_TEST

START_TEST(test_hello_checks) {
  expect_json_error(KV_FRAME_HELLO, "{\"proto\":3,\"role\":\"agent\",\"version\":\"9.0\"}",
                    KV_PROTO_ERROR_VERSION);
  expect_json_error(KV_FRAME_HELLO, "{\"proto\":0,\"role\":\"agent\",\"version\":\"9.0\"}",
                    KV_PROTO_ERROR_VERSION);
  expect_json_error(KV_FRAME_HELLO, "{\"role\":\"agent\",\"version\":\"1\"}",
                    KV_PROTO_ERROR_VERSION);
  expect_json_error(KV_FRAME_HELLO, "{\"proto\":\"1\",\"role\":\"agent\",\"version\":\"1\"}",
                    KV_PROTO_ERROR_VERSION);
  expect_json_error(KV_FRAME_HELLO, "{\"proto\":2,\"version\":\"1\"}", KV_PROTO_ERROR_BAD_PAYLOAD);
  expect_json_error(KV_FRAME_HELLO, "{\"proto\":2,\"role\":\"agent\"}", KV_PROTO_ERROR_BAD_PAYLOAD);
  expect_json_error(KV_FRAME_HELLO, "[1]", KV_PROTO_ERROR_BAD_PAYLOAD);

  const char *v2 = "{\"proto\":3,\"role\":\"agent\",\"version\":\"9.0\"}";
  g_autoptr(GBytes) p = g_bytes_new_static(v2, strlen(v2));
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_hello_parse(p, NULL, NULL, &err));
  ck_assert(strstr(err->message, "protocol version mismatch") != NULL);
  ck_assert(strstr(err->message, "3") != NULL);
  ck_assert(strstr(err->message, "9.0") != NULL);

  g_autoptr(GBytes) h = kv_hello_encode("shim", NULL);
  gsize n = 0;
  const guint8 *hp = g_bytes_get_data(h, &n);
  g_autoptr(GBytes) payload = g_bytes_new(hp + 12, n - 12);
  g_autofree char *role = NULL, *version = NULL;
  ck_assert(kv_hello_parse(payload, &role, &version, NULL));
  ck_assert_str_eq(role, "shim");
  ck_assert_str_ne(version, "");
}
END_TEST

START_TEST(test_event_checks) {
  expect_json_error(KV_FRAME_EVENT, "{\"code\":1}", KV_PROTO_ERROR_BAD_PAYLOAD);
  expect_json_error(KV_FRAME_EVENT, "{\"event\":\"\"}", KV_PROTO_ERROR_BAD_PAYLOAD);
  expect_json_error(KV_FRAME_EVENT, "{\"event\":3}", KV_PROTO_ERROR_BAD_PAYLOAD);
  expect_json_ok(KV_FRAME_EVENT, "{\"event\":\"oom\",\"pid\":3}");
}
END_TEST

/* ---- flow control and remote errors ---- */

START_TEST(test_window) {
  KvWindow w;
  g_autoptr(GError) err = NULL;
  KvWindow in;
  kv_window_init(&in, TRUE);
  ck_assert_uint_eq(in.recv_avail, KV_STDIN_INITIAL_WINDOW);
  ck_assert_uint_eq(in.send_avail, KV_STDIN_INITIAL_WINDOW);
  kv_window_init(&w, FALSE);
  ck_assert_uint_eq(w.recv_avail, KV_STREAM_INITIAL_WINDOW);
  ck_assert_uint_eq(w.send_avail, KV_STREAM_INITIAL_WINDOW);

  ck_assert(kv_window_on_data(&w, KV_STREAM_INITIAL_WINDOW - 10, NULL));
  ck_assert(kv_window_on_data(&w, 10, NULL));
  ck_assert(!kv_window_on_data(&w, 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW));
  g_clear_error(&err);
  ck_assert_uint_eq(kv_window_grant(&w, 100), 100);
  ck_assert(kv_window_on_data(&w, 100, NULL));
  ck_assert_uint_eq(w.recv_avail, 0);
  ck_assert_uint_eq(kv_window_grant(&w, G_MAXUINT32), G_MAXUINT32);
  ck_assert_uint_eq(kv_window_grant(&w, 5), 0); /* clamped at u32 */

  ck_assert(kv_window_on_send(&w, KV_STREAM_INITIAL_WINDOW, NULL));
  ck_assert(!kv_window_on_send(&w, 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW));
  g_clear_error(&err);
  ck_assert(kv_window_on_credit(&w, 50, NULL));
  ck_assert_uint_eq(w.send_avail, 50);
  ck_assert(!kv_window_on_credit(&w, G_MAXUINT32, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW));
  ck_assert_uint_eq(w.send_avail, 50);
}
END_TEST

START_TEST(test_remote_error_helpers) {
  g_autoptr(GError) r =
      g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE, "%d: %s", -17, "no such: thing");
  ck_assert_int_eq(kv_remote_error_code(r), -17);
  ck_assert_str_eq(kv_remote_error_message(r), "no such: thing");
  g_autoptr(GError) o = g_error_new_literal(KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED, "5: x");
  ck_assert_int_eq(kv_remote_error_code(o), 0);
  ck_assert_str_eq(kv_remote_error_message(o), "5: x");
  ck_assert_int_eq(kv_remote_error_code(NULL), 0);
}
END_TEST

/* ---- KvConn ---- */

typedef struct {
  int closed_calls;
  GError *closed_why;
  int requests;
  guint32 last_id;
  char *last_method;
  int frames;
  KvFrameType last_type;
  guint32 last_stream;
  GByteArray *data;
  char *last_event;
  /* behaviour */
  gboolean reply_error;
  gboolean no_reply;
  gboolean close_on_request;
  const char *ignore_method; /* never answer this one */
  KvConn *nested_peer;       /* call this conn synchronously from on_request */
} Peer;

static void peer_clear(Peer *p) {
  g_clear_error(&p->closed_why);
  g_clear_pointer(&p->last_method, g_free);
  g_clear_pointer(&p->last_event, g_free);
  if (p->data)
    g_byte_array_unref(p->data);
}

static void on_request(KvConn *c, guint32 id, const char *method, JsonObject *params,
                       gpointer user) {
  Peer *p = user;
  p->requests++;
  p->last_id = id;
  g_free(p->last_method);
  p->last_method = g_strdup(method);
  if (p->close_on_request) {
    kv_conn_close(c);
    return;
  }
  if (p->no_reply || g_strcmp0(method, p->ignore_method) == 0)
    return;
  if (p->reply_error) {
    kv_conn_reply_error(c, id, 2, "no such thing");
    return;
  }
  g_autoptr(JsonObject) res = json_object_new();
  json_object_set_string_member(res, "echo", method);
  if (json_object_has_member(params, "n"))
    json_object_set_int_member(res, "n", json_object_get_int_member(params, "n") + 1);
  if (p->nested_peer != NULL) {
    /* Re-entrant: a blocking call to the peer from inside our handler. */
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) inner = kv_conn_call_sync(c, "inner", NULL, 5000, &err);
    ck_assert_msg(inner != NULL, "nested call: %s", err ? err->message : "?");
    json_object_set_string_member(res, "inner", json_object_get_string_member(inner, "echo"));
  }
  kv_conn_reply(c, id, res);
}

static void on_frame(G_GNUC_UNUSED KvConn *c, const KvFrame *f, gpointer user) {
  Peer *p = user;
  p->frames++;
  p->last_type = f->type;
  p->last_stream = f->stream;
  if (f->type == KV_FRAME_DATA) {
    if (p->data == NULL)
      p->data = g_byte_array_new();
    g_byte_array_append(p->data, g_bytes_get_data(f->payload, NULL), g_bytes_get_size(f->payload));
  }
  if (f->type == KV_FRAME_EVENT) {
    g_free(p->last_event);
    kv_event_parse(f->payload, &p->last_event, NULL, NULL);
  }
}

static void on_closed(G_GNUC_UNUSED KvConn *c, const GError *why, gpointer user) {
  Peer *p = user;
  p->closed_calls++;
  ck_assert_ptr_nonnull(why);
  g_clear_error(&p->closed_why);
  p->closed_why = g_error_copy(why);
}

static const KvConnHandlers handlers = {on_request, on_frame, on_closed};

static gboolean set_flag(gpointer p) {
  *(gboolean *)p = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the default context until *cond or the deadline. */
#define PUMP_UNTIL(expr, ms)                                                                       \
  do {                                                                                             \
    gboolean expired_ = FALSE;                                                                     \
    guint t_ = g_timeout_add(ms, set_flag, &expired_);                                             \
    while (!(expr) && !expired_)                                                                   \
      g_main_context_iteration(NULL, TRUE);                                                        \
    if (!expired_)                                                                                 \
      g_source_remove(t_);                                                                         \
    ck_assert_msg((expr), "timed out waiting for " #expr);                                         \
  } while (0)

static void pump_for(guint ms) {
  gboolean expired = FALSE;
  g_timeout_add(ms, set_flag, &expired);
  while (!expired)
    g_main_context_iteration(NULL, TRUE);
}

static void make_pair(int fds[2]) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
}

static void raw_write(int fd, GBytes *b) {
  gsize n = 0;
  const guint8 *p = g_bytes_get_data(b, &n);
  ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

START_TEST(test_conn_hello_exchange) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "agent", &handlers, &pb, NULL);
  ck_assert(!kv_conn_is_ready(a));
  ck_assert_ptr_null(kv_conn_peer_role(a));
  g_autoptr(GError) err = NULL;
  ck_assert_msg(kv_conn_wait_ready(a, 2000, &err), "%s", err ? err->message : "");
  PUMP_UNTIL(kv_conn_is_ready(b), 2000);
  ck_assert_str_eq(kv_conn_peer_role(a), "agent");
  ck_assert_str_eq(kv_conn_peer_role(b), "shim");
  ck_assert_ptr_nonnull(kv_conn_peer_version(a));
  ck_assert(!kv_conn_is_closed(a));
  ck_assert_int_eq(pa.closed_calls, 0);
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

START_TEST(test_hello_features) {
  /* Features travel in HELLO; a peer that announces none has none. */
  static const char *const shim_features[] = {KV_FEATURE_SINK_FDS, "x-later", NULL};
  KvConnHandlers with = {.features = shim_features}, without = {0};
  int fds[2];
  make_pair(fds);
  g_autoptr(KvConn) a = kv_conn_new(fds[0], "client", &without, NULL, NULL);
  g_autoptr(KvConn) b = kv_conn_new(fds[1], "shim", &with, NULL, NULL);
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_conn_peer_has_feature(a, KV_FEATURE_SINK_FDS));
  ck_assert_msg(kv_conn_wait_ready(a, 2000, &err), "%s", err ? err->message : "");
  ck_assert_msg(kv_conn_wait_ready(b, 2000, &err), "%s", err ? err->message : "");
  ck_assert(kv_conn_peer_has_feature(a, KV_FEATURE_SINK_FDS));
  ck_assert(kv_conn_peer_has_feature(a, "x-later"));
  ck_assert(!kv_conn_peer_has_feature(a, "x-other"));
  ck_assert(!kv_conn_peer_has_feature(b, KV_FEATURE_SINK_FDS));

  /* Malformed lists are refused by the decoder. */
  static const char *const bad[] = {
      "{\"proto\":2,\"role\":\"shim\",\"version\":\"1\",\"features\":\"sink_fds\"}",
      "{\"proto\":2,\"role\":\"shim\",\"version\":\"1\",\"features\":[1]}",
      "{\"proto\":2,\"role\":\"shim\",\"version\":\"1\",\"features\":[\"\"]}",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GBytes) pl = g_bytes_new_static(bad[i], strlen(bad[i]));
    g_autoptr(GError) e = NULL;
    ck_assert_msg(!kv_hello_parse(pl, NULL, NULL, &e), "accepted %s", bad[i]);
    ck_assert(strstr(e->message, "features"));
  }
}
END_TEST

START_TEST(test_conn_request_answered) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "client", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "shim", &handlers, &pb, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(JsonObject) params = json_object_new();
  json_object_set_int_member(params, "n", 41);
  for (int i = 0; i < 3; i++) {
    g_autoptr(JsonObject) res = kv_conn_call_sync(a, kv_m_shim_state.name, params, 2000, &err);
    ck_assert_msg(res != NULL, "%s", err ? err->message : "");
    ck_assert_str_eq(json_object_get_string_member(res, "echo"), "state");
    ck_assert_int_eq(json_object_get_int_member(res, "n"), 42);
    ck_assert_uint_eq(pb.last_id, (guint32)i + 1); /* ids count from 1 */
  }
  ck_assert_int_eq(pb.requests, 3);

  /* No request handler: the peer still gets an answer. */
  KvConnHandlers none = {0};
  int fds2[2];
  make_pair(fds2);
  g_autoptr(KvConn) c = kv_conn_new(fds2[0], "client", &handlers, &pa, NULL);
  g_autoptr(KvConn) d G_GNUC_UNUSED = kv_conn_new(fds2[1], "shim", &none, NULL, NULL);
  g_autoptr(GError) err2 = NULL;
  ck_assert_ptr_null(kv_conn_call_sync(c, "x", NULL, 2000, &err2));
  ck_assert(g_error_matches(err2, KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE));
  ck_assert_int_eq(kv_remote_error_code(err2), KV_E_UNSUPPORTED);
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

START_TEST(test_conn_remote_error) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {.reply_error = TRUE};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "agent", &handlers, &pb, NULL);
  g_autoptr(GError) err = NULL;
  ck_assert_ptr_null(kv_conn_call_sync(a, "check", NULL, 2000, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE));
  ck_assert_int_eq(kv_remote_error_code(err), 2);
  ck_assert_str_eq(kv_remote_error_message(err), "no such thing");
  ck_assert_str_eq(err->message, "2: no such thing");
  ck_assert(!kv_conn_is_closed(a)); /* a remote error is not fatal */
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

typedef struct {
  int calls;
  GError *error;
  JsonObject *result;
  gboolean unref_conn; /* drop the last user ref from inside the callback */
} Reply;

static void on_reply(KvConn *c, JsonObject *result, const GError *error, gpointer user) {
  Reply *r = user;
  r->calls++;
  if (error)
    r->error = g_error_copy(error);
  if (result)
    r->result = json_object_ref(result);
  if (r->unref_conn)
    kv_conn_unref(c);
}

START_TEST(test_conn_pending_call_fails_on_peer_close) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {.close_on_request = TRUE};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  KvConn *b = kv_conn_new(fds[1], "agent", &handlers, &pb, NULL);
  Reply r1 = {0}, r2 = {0};
  kv_conn_call(a, "one", NULL, 0, on_reply, &r1);
  kv_conn_call(a, "two", NULL, 0, on_reply, &r2);
  PUMP_UNTIL(r1.calls > 0 && r2.calls > 0, 2000);
  ck_assert_int_eq(r1.calls, 1);
  ck_assert_int_eq(r2.calls, 1);
  ck_assert(g_error_matches(r1.error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED));
  ck_assert(g_error_matches(r2.error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED));
  ck_assert(kv_conn_is_closed(a));
  ck_assert_int_eq(pa.closed_calls, 1);
  ck_assert(g_error_matches(pa.closed_why, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED));
  /* Explicit close does not report itself. */
  ck_assert_int_eq(pb.closed_calls, 0);

  /* Calls on a closed conn still get exactly one (deferred) callback. */
  Reply r3 = {0};
  kv_conn_call(a, "three", NULL, 0, on_reply, &r3);
  ck_assert_int_eq(r3.calls, 0);
  PUMP_UNTIL(r3.calls > 0, 2000);
  pump_for(20);
  ck_assert_int_eq(r3.calls, 1);
  ck_assert(g_error_matches(r3.error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED));
  ck_assert_int_eq(pa.closed_calls, 1);
  kv_conn_unref(b);
  g_clear_error(&r1.error);
  g_clear_error(&r2.error);
  g_clear_error(&r3.error);
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

START_TEST(test_conn_local_close_fails_pending) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0};
  KvConn *a = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  Reply r = {0};
  kv_conn_call(a, "x", NULL, 0, on_reply, &r);
  kv_conn_close(a);
  ck_assert_int_eq(r.calls, 1);
  ck_assert(g_error_matches(r.error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED));
  ck_assert_int_eq(pa.closed_calls, 0);
  ck_assert(!kv_conn_send(a, KV_FRAME_DATA, 1, "x", 1, NULL));
  kv_conn_unref(a);
  /* Our fd is closed: the other end sees EOF after our HELLO. */
  char buf[256];
  ssize_t n;
  while ((n = read(fds[1], buf, sizeof buf)) > 0)
    ;
  ck_assert_int_eq(n, 0);
  close(fds[1]);
  g_clear_error(&r.error);
  peer_clear(&pa);
}
END_TEST

START_TEST(test_conn_unref_inside_callback) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {.ignore_method = "y"};
  KvConn *a = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "agent", &handlers, &pb, NULL);
  Reply r = {.unref_conn = TRUE};
  Reply r2 = {0};
  kv_conn_call(a, "x", NULL, 2000, on_reply, &r);
  kv_conn_call(a, "y", NULL, 0, on_reply, &r2);
  /* The first reply drops the only reference; the second call must still
   * get its one callback (CLOSED) and nothing may touch freed memory. */
  PUMP_UNTIL(r.calls == 1 && r2.calls == 1, 2000);
  ck_assert_ptr_nonnull(r.result);
  ck_assert(g_error_matches(r2.error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED));
  ck_assert_int_eq(pa.closed_calls, 0);
  PUMP_UNTIL(kv_conn_is_closed(b), 2000); /* b sees EOF */
  ck_assert_int_eq(pb.closed_calls, 1);
  json_object_unref(r.result);
  g_clear_error(&r2.error);
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

static void unref_on_closed(KvConn *c, G_GNUC_UNUSED const GError *why, gpointer user) {
  int *n = user;
  (*n)++;
  kv_conn_unref(c);
}

START_TEST(test_conn_unref_in_on_closed) {
  int fds[2];
  make_pair(fds);
  int n = 0;
  KvConnHandlers h = {.on_closed = unref_on_closed};
  kv_conn_new(fds[0], "shim", &h, &n, NULL); /* owned by its on_closed */
  close(fds[1]);
  PUMP_UNTIL(n == 1, 2000);
  pump_for(20);
  ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(test_conn_garbage_peer) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  Reply r = {0};
  kv_conn_call(a, "x", NULL, 0, on_reply, &r);
  const char junk[] = "GET / HTTP/1.1\r\nHost: evil\r\n\r\n";
  ck_assert_int_eq(write(fds[1], junk, sizeof junk - 1), (ssize_t)sizeof junk - 1);
  PUMP_UNTIL(pa.closed_calls > 0, 2000);
  ck_assert_int_eq(pa.closed_calls, 1);
  ck_assert(g_error_matches(pa.closed_why, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_MAGIC));
  ck_assert_int_eq(r.calls, 1);
  ck_assert(g_error_matches(r.error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED));
  ck_assert(kv_conn_is_closed(a));
  /* More garbage after close changes nothing. */
  (void)!send(fds[1], junk, sizeof junk - 1, MSG_NOSIGNAL);
  pump_for(20);
  ck_assert_int_eq(pa.closed_calls, 1);

  /* Random garbage after a valid HELLO, many seeds: never a crash. */
  for (guint seed = 1; seed <= 50; seed++) {
    int f2[2];
    make_pair(f2);
    Peer p = {0};
    KvConn *c = kv_conn_new(f2[0], "shim", &handlers, &p, NULL);
    g_autoptr(GBytes) hello = kv_hello_encode("agent", "x");
    raw_write(f2[1], hello);
    GRand *rand = g_rand_new_with_seed(seed);
    guint8 buf[4096];
    for (guint i = 0; i < sizeof buf; i++)
      buf[i] = (guint8)g_rand_int(rand);
    /* Sometimes a plausible header so the payload checks run too. */
    if (seed % 2 == 0) {
      buf[0] = 0x4b;
      buf[1] = 0x56;
      buf[2] = (guint8)(1 + seed % 7);
      buf[3] = 0;
    }
    g_rand_free(rand);
    ck_assert_int_eq(write(f2[1], buf, sizeof buf), (ssize_t)sizeof buf);
    close(f2[1]);
    PUMP_UNTIL(p.closed_calls > 0, 2000);
    ck_assert_int_eq(p.closed_calls, 1);
    kv_conn_unref(c);
    peer_clear(&p);
  }
  g_clear_error(&r.error);
  peer_clear(&pa);
}
END_TEST

START_TEST(test_conn_version_mismatch) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(GBytes) hello =
      text_frame(KV_FRAME_HELLO, 0, "{\"proto\":3,\"role\":\"agent\",\"version\":\"2.0.0\"}");
  raw_write(fds[1], hello);
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_conn_wait_ready(a, 2000, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_VERSION));
  ck_assert_msg(strstr(err->message, "protocol version mismatch") &&
                    strstr(err->message, "2.0.0") && strstr(err->message, "speaks 2"),
                "unclear message: %s", err->message);
  ck_assert_int_eq(pa.closed_calls, 1);
  ck_assert(g_error_matches(pa.closed_why, KV_PROTO_ERROR, KV_PROTO_ERROR_VERSION));
  ck_assert(!kv_conn_is_ready(a));
  close(fds[1]);
  peer_clear(&pa);
}
END_TEST

static void expect_closed_by(GBytes *first, GBytes *second, int code) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  raw_write(fds[1], first);
  if (second)
    raw_write(fds[1], second);
  PUMP_UNTIL(pa.closed_calls > 0, 2000);
  ck_assert_msg(g_error_matches(pa.closed_why, KV_PROTO_ERROR, code), "expected %d, got %d: %s",
                code, pa.closed_why->code, pa.closed_why->message);
  close(fds[1]);
  peer_clear(&pa);
}

START_TEST(test_conn_frame_before_hello) {
  g_autoptr(GBytes) data = kv_frame_encode(KV_FRAME_DATA, 1, "x", 1, NULL);
  expect_closed_by(data, NULL, KV_PROTO_ERROR_BAD_TYPE);
  g_autoptr(GBytes) req = text_frame(KV_FRAME_REQUEST, 0, "{\"id\":1,\"method\":\"m\"}");
  expect_closed_by(req, NULL, KV_PROTO_ERROR_BAD_TYPE);
}
END_TEST

START_TEST(test_conn_second_hello) {
  g_autoptr(GBytes) hello = kv_hello_encode("agent", "1");
  expect_closed_by(hello, hello, KV_PROTO_ERROR_BAD_TYPE);
}
END_TEST

START_TEST(test_conn_bad_frame_after_hello) {
  g_autoptr(GBytes) hello = kv_hello_encode("agent", "1");
  g_autoptr(GBytes) big = raw_frame(KV_FRAME_MAGIC, KV_FRAME_DATA, 0, 1, 0x7fffffff, NULL, 0);
  expect_closed_by(hello, big, KV_PROTO_ERROR_TOO_LARGE);
  g_autoptr(GBytes) resp =
      text_frame(KV_FRAME_RESPONSE, 0, "{\"id\":1,\"result\":{},\"error\":{}}");
  expect_closed_by(hello, resp, KV_PROTO_ERROR_BAD_PAYLOAD);
}
END_TEST

START_TEST(test_conn_unknown_response_ignored) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(GBytes) hello = kv_hello_encode("agent", "1");
  g_autoptr(GBytes) resp = text_frame(KV_FRAME_RESPONSE, 0, "{\"id\":999,\"result\":{}}");
  g_autoptr(GBytes) ev = text_frame(KV_FRAME_EVENT, 0, "{\"event\":\"after\"}");
  raw_write(fds[1], hello);
  raw_write(fds[1], resp);
  raw_write(fds[1], ev);
  PUMP_UNTIL(pa.last_event != NULL, 2000);
  ck_assert_str_eq(pa.last_event, "after");
  ck_assert(kv_conn_is_ready(a));
  ck_assert_int_eq(pa.closed_calls, 0);
  close(fds[1]);
  peer_clear(&pa);
}
END_TEST

START_TEST(test_conn_call_timeout) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {.no_reply = TRUE};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "agent", &handlers, &pb, NULL);
  g_autoptr(GError) err = NULL;
  gint64 t0 = g_get_monotonic_time();
  ck_assert_ptr_null(kv_conn_call_sync(a, "slow", NULL, 100, &err));
  gint64 ms = (g_get_monotonic_time() - t0) / 1000;
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT));
  ck_assert_int_ge(ms, 90);
  ck_assert_int_lt(ms, 2000);
  /* The late answer is dropped quietly and the conn keeps working. */
  kv_conn_reply(b, pb.last_id, NULL);
  pb.no_reply = FALSE;
  g_autoptr(GError) err2 = NULL;
  g_autoptr(JsonObject) res = kv_conn_call_sync(a, "fast", NULL, 2000, &err2);
  ck_assert_msg(res != NULL, "%s", err2 ? err2->message : "");
  ck_assert_str_eq(json_object_get_string_member(res, "echo"), "fast");
  ck_assert_int_eq(pa.closed_calls, 0);
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

START_TEST(test_conn_wait_ready_timeout) {
  int fds[2];
  make_pair(fds);
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, NULL, NULL);
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_conn_wait_ready(a, 50, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT));
  close(fds[1]);
}
END_TEST

START_TEST(test_conn_streams_and_events) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "agent", &handlers, &pb, NULL);
  ck_assert(kv_conn_wait_ready(a, 2000, NULL));

  /* A full-size DATA frame plus small ones; bytes arrive intact. */
  g_autofree guint8 *big = g_malloc(KV_FRAME_MAX_PAYLOAD);
  for (guint i = 0; i < KV_FRAME_MAX_PAYLOAD; i++)
    big[i] = (guint8)(i ^ (i >> 8));
  ck_assert(kv_conn_send(a, KV_FRAME_DATA, 3, big, KV_FRAME_MAX_PAYLOAD, NULL));
  ck_assert(kv_conn_send(a, KV_FRAME_DATA, 3, "tail", 4, NULL));
  PUMP_UNTIL(pb.data && pb.data->len == KV_FRAME_MAX_PAYLOAD + 4, 5000);
  ck_assert(memcmp(pb.data->data, big, KV_FRAME_MAX_PAYLOAD) == 0);
  ck_assert(memcmp(pb.data->data + KV_FRAME_MAX_PAYLOAD, "tail", 4) == 0);
  ck_assert_uint_eq(kv_conn_pending(a), 0);

  ck_assert(kv_conn_send_credit(a, 3, 777, NULL));
  PUMP_UNTIL(pb.last_type == KV_FRAME_CREDIT, 2000);
  ck_assert(kv_conn_send(a, KV_FRAME_EOF, 3, NULL, 0, NULL));
  PUMP_UNTIL(pb.last_type == KV_FRAME_EOF, 2000);
  ck_assert_uint_eq(pb.last_stream, 3);

  g_autoptr(JsonObject) fields = json_object_new();
  json_object_set_int_member(fields, "status", 0);
  json_object_set_string_member(fields, "event", "spoofed");
  kv_conn_send_event(b, "exited", fields);
  PUMP_UNTIL(pa.last_event != NULL, 2000);
  ck_assert_str_eq(pa.last_event, "exited");

  /* Invalid sends are refused locally and do not close anything. */
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_conn_send(a, KV_FRAME_DATA, 0, "x", 1, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_STREAM));
  g_clear_error(&err);
  ck_assert(!kv_conn_send(a, KV_FRAME_HELLO, 0, "{}", 2, &err));
  ck_assert(!kv_conn_is_closed(a));
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

static gpointer drain_fd(gpointer p) {
  char buf[65536];
  while (read(GPOINTER_TO_INT(p), buf, sizeof buf) > 0)
    ;
  return NULL;
}

START_TEST(test_conn_backpressure_and_flush) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  /* The raw peer never reads: our queue fills and kv_conn_pending says so. */
  g_autofree guint8 *chunk = g_malloc0(64 * 1024);
  for (int i = 0; i < 64 && kv_conn_pending(a) == 0; i++)
    ck_assert(kv_conn_send(a, KV_FRAME_DATA, 1, chunk, 64 * 1024, NULL));
  ck_assert_uint_gt(kv_conn_pending(a), 0);
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_conn_flush(a, 50, &err));
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT));

  /* Once the peer drains, flush completes. */
  GThread *reader = g_thread_new("drain", drain_fd, GINT_TO_POINTER(fds[1]));
  g_clear_error(&err);
  ck_assert_msg(kv_conn_flush(a, 5000, &err), "%s", err ? err->message : "");
  ck_assert_uint_eq(kv_conn_pending(a), 0);
  kv_conn_close(a);
  g_thread_join(reader);
  close(fds[1]);
  peer_clear(&pa);
}
END_TEST

START_TEST(test_conn_write_queue_cap) {
  /* A peer that never reads cannot make our queue grow without bound. */
  int fds[2];
  make_pair(fds);
  Peer pa = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autofree guint8 *chunk = g_malloc0(KV_FRAME_MAX_PAYLOAD);
  g_autoptr(GError) err = NULL;
  guint sent = 0;
  while (kv_conn_send(a, KV_FRAME_DATA, 1, chunk, KV_FRAME_MAX_PAYLOAD, &err))
    ck_assert_uint_lt(++sent, 200);
  ck_assert(g_error_matches(err, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW));
  ck_assert_uint_le(kv_conn_pending(a), KV_CONN_MAX_PENDING);
  ck_assert_uint_ge(sent, KV_CONN_MAX_PENDING / KV_FRAME_MAX_PAYLOAD - 1);
  ck_assert_int_eq(pa.closed_calls, 0); /* never from inside the send */
  PUMP_UNTIL(pa.closed_calls == 1, 2000);
  ck_assert(g_error_matches(pa.closed_why, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW));
  ck_assert_uint_eq(kv_conn_pending(a), 0);
  close(fds[1]);
  peer_clear(&pa);
}
END_TEST

START_TEST(test_conn_nested_call_sync_in_handler) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {0};
  g_autoptr(KvConn) a G_GNUC_UNUSED = kv_conn_new(fds[0], "shim", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "agent", &handlers, &pb, NULL);
  pb.nested_peer = a; /* b's handler calls back into a, blocking */
  g_autoptr(GError) err = NULL;
  g_autoptr(JsonObject) res = kv_conn_call_sync(a, "outer", NULL, 5000, &err);
  ck_assert_msg(res != NULL, "%s", err ? err->message : "");
  ck_assert_str_eq(json_object_get_string_member(res, "echo"), "outer");
  ck_assert_str_eq(json_object_get_string_member(res, "inner"), "inner");
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

/* call_sync from a worker thread that owns its own context. */
static gpointer thread_caller(gpointer p) {
  int fd = GPOINTER_TO_INT(p);
  g_autoptr(GMainContext) ctx = g_main_context_new();
  g_main_context_push_thread_default(ctx);
  Peer pa = {0};
  KvConn *a = kv_conn_new(fd, "client", &handlers, &pa, NULL);
  g_autoptr(GError) err = NULL;
  JsonObject *res = NULL;
  if (kv_conn_wait_ready(a, 5000, &err))
    res = kv_conn_call_sync(a, "threaded", NULL, 5000, &err);
  kv_conn_unref(a);
  g_main_context_pop_thread_default(ctx);
  peer_clear(&pa);
  return res;
}

START_TEST(test_conn_call_sync_other_thread_context) {
  int fds[2];
  make_pair(fds);
  Peer pb = {0};
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "shim", &handlers, &pb, NULL);
  GThread *t = g_thread_new("caller", thread_caller, GINT_TO_POINTER(fds[0]));
  PUMP_UNTIL(pb.requests == 1, 5000);
  g_autoptr(JsonObject) res = g_thread_join(t);
  ck_assert_ptr_nonnull(res);
  ck_assert_str_eq(json_object_get_string_member(res, "echo"), "threaded");
  peer_clear(&pb);
}
END_TEST

/* Spliced DATA frames: payload moved from a pipe, in queue order with
 * ordinary frames; done runs once written; the conn holds its own dup of
 * the pipe; a pipe that runs dry under a frame header closes the conn. */
static void count_done(gpointer user) {
  (*(int *)user)++;
}

static void fill_pipe(int fd, guint8 seed, gsize n) {
  g_autofree guint8 *buf = g_malloc(n);
  for (gsize i = 0; i < n; i++)
    buf[i] = (guint8)(seed + i * 7);
  ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
}

START_TEST(test_conn_spliced_data) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {0};
  g_autoptr(KvConn) a = kv_conn_new(fds[0], "agent", &handlers, &pa, NULL);
  g_autoptr(KvConn) b G_GNUC_UNUSED = kv_conn_new(fds[1], "shim", &handlers, &pb, NULL);
  ck_assert(kv_conn_wait_ready(a, 2000, NULL));

  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  const gsize n1 = 900000, n2 = 5; /* more than a socket buffer takes */
  int done = 0;
  g_autoptr(GError) err = NULL;
  ck_assert(kv_conn_send(a, KV_FRAME_DATA, 9, "ab", 2, NULL));
  ck_assert_int_eq(fcntl(p[1], F_SETPIPE_SZ, 1024 * 1024), 1024 * 1024);
  fill_pipe(p[1], 1, n1);
  ck_assert_msg(kv_conn_send_spliced(a, 9, p[0], n1, count_done, &done, &err), "%s",
                err ? err->message : "");
  ck_assert_uint_ge(kv_conn_pending(a), 1);
  PUMP_UNTIL(done == 1, 5000);
  fill_pipe(p[1], 3, n2);
  ck_assert(kv_conn_send_spliced(a, 9, p[0], n2, count_done, &done, NULL));
  ck_assert(kv_conn_send(a, KV_FRAME_EOF, 9, NULL, 0, NULL));
  close(p[0]); /* the conn has its own */
  PUMP_UNTIL(pb.last_type == KV_FRAME_EOF, 5000);
  ck_assert_int_eq(done, 2);
  ck_assert_uint_eq(kv_conn_pending(a), 0);
  ck_assert_int_eq(pb.frames, 4);
  ck_assert_uint_eq(pb.data->len, 2 + n1 + n2);
  ck_assert_int_eq(memcmp(pb.data->data, "ab", 2), 0);
  for (gsize i = 0; i < n1; i++)
    ck_assert_uint_eq(pb.data->data[2 + i], (guint8)(1 + i * 7));
  for (gsize i = 0; i < n2; i++)
    ck_assert_uint_eq(pb.data->data[2 + n1 + i], (guint8)(3 + i * 7));

  /* Invalid sizes are refused and done never runs for them. */
  ck_assert(!kv_conn_send_spliced(a, 9, p[1], 0, count_done, &done, NULL));
  ck_assert(!kv_conn_send_spliced(a, 9, p[1], KV_FRAME_MAX_PAYLOAD + 1, count_done, &done, NULL));
  ck_assert(!kv_conn_send_spliced(a, 0, p[1], 1, count_done, &done, NULL));
  ck_assert_int_eq(done, 2);

  /* A header promising more than the pipe will ever hold: the frame cannot
   * be completed, so the conn closes (and done still runs). */
  int q[2];
  ck_assert_int_eq(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
  fill_pipe(q[1], 0, 10);
  close(q[1]);
  ck_assert(kv_conn_send_spliced(a, 9, q[0], 20, count_done, &done, NULL));
  close(q[0]);
  PUMP_UNTIL(kv_conn_is_closed(a), 5000);
  ck_assert_int_eq(done, 3);
  ck_assert_ptr_nonnull(strstr(pa.closed_why->message, "ran dry"));
  close(p[1]);
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

/* Cut-through: an incomplete DATA frame comes out in pieces of at least
 * min_piece bytes, the rest after it, with the same bytes in order; other
 * frames still come out whole only. */
START_TEST(test_decoder_split_data) {
  g_autoptr(KvDecoder) d = kv_decoder_new();
  kv_decoder_split_data(d, 100);
  guint8 payload[1000];
  for (gsize i = 0; i < sizeof payload; i++)
    payload[i] = (guint8)(i * 13);
  g_autoptr(GBytes) data = kv_frame_encode(KV_FRAME_DATA, 5, payload, sizeof payload, NULL);
  g_autoptr(GBytes) ev = text_frame(KV_FRAME_EVENT, 0, "{\"event\":\"x\"}");
  const guint8 *p = g_bytes_get_data(data, NULL);
  gsize fed = 0;
  g_autoptr(GByteArray) got = g_byte_array_new();
  KvFrame f;
  /* Header + 50 bytes: below min_piece, nothing yet. */
  ck_assert(kv_decoder_feed(d, p, KV_FRAME_HDR_LEN + 50, NULL));
  fed = KV_FRAME_HDR_LEN + 50;
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 0);
  ck_assert_uint_eq(kv_decoder_missing(d), sizeof payload - 50);
  /* 150 more: 200 bytes come out as one DATA frame. */
  ck_assert(kv_decoder_feed(d, p + fed, 150, NULL));
  fed += 150;
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
  ck_assert_int_eq(f.type, KV_FRAME_DATA);
  ck_assert_uint_eq(f.stream, 5);
  ck_assert_uint_eq(g_bytes_get_size(f.payload), 200);
  g_byte_array_append(got, g_bytes_get_data(f.payload, NULL), 200);
  kv_frame_clear(&f);
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 0);
  ck_assert_uint_eq(kv_decoder_missing(d), sizeof payload - 200);
  /* The rest plus a whole EVENT in one feed. */
  gsize total = g_bytes_get_size(data);
  ck_assert(kv_decoder_feed(d, p + fed, total - fed, NULL));
  ck_assert(kv_decoder_feed(d, g_bytes_get_data(ev, NULL), g_bytes_get_size(ev), NULL));
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
  ck_assert_int_eq(f.type, KV_FRAME_DATA);
  ck_assert_uint_eq(f.stream, 5);
  g_byte_array_append(got, g_bytes_get_data(f.payload, NULL), g_bytes_get_size(f.payload));
  kv_frame_clear(&f);
  ck_assert_uint_eq(got->len, sizeof payload);
  ck_assert_int_eq(memcmp(got->data, payload, sizeof payload), 0);
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
  ck_assert_int_eq(f.type, KV_FRAME_EVENT);
  kv_frame_clear(&f);
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 0);
  ck_assert_uint_eq(kv_decoder_missing(d), 0);

  /* A JSON frame is never cut, however much of it is there. */
  g_autoptr(GString) big = g_string_new("{\"event\":\"x\",\"pad\":\"");
  for (int i = 0; i < 500; i++)
    g_string_append_c(big, 'a');
  g_string_append(big, "\"}");
  g_autoptr(GBytes) bigev = text_frame(KV_FRAME_EVENT, 0, big->str);
  gsize n = g_bytes_get_size(bigev);
  ck_assert(kv_decoder_feed(d, g_bytes_get_data(bigev, NULL), n - 1, NULL));
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 0);
  ck_assert_uint_eq(kv_decoder_missing(d), 1);
  ck_assert(kv_decoder_feed(d, (const guint8 *)g_bytes_get_data(bigev, NULL) + n - 1, 1, NULL));
  ck_assert_int_eq(kv_decoder_next(d, &f, NULL), 1);
  ck_assert_int_eq(f.type, KV_FRAME_EVENT);
  kv_frame_clear(&f);
}
END_TEST

static int count_open_fds(void) {
  int n = 0;
  g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
  while (dir && g_dir_read_name(dir))
    n++;
  return n;
}

/* Fds sent with a frame arrive with it, oldest first, and work; a peer that
 * sends more than we hold gets its conn closed; a conn that does not take
 * fds never holds any. */
START_TEST(test_conn_fd_passing) {
  (void)g_main_context_default(); /* its wakeup fd is not a leak */
  int before = count_open_fds();
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {0};
  g_autoptr(KvConn) a = kv_conn_new(fds[0], "lib", &handlers, &pa, NULL);
  g_autoptr(KvConn) b = kv_conn_new(fds[1], "shim", &handlers, &pb, NULL);
  kv_conn_accept_fds(b);
  ck_assert(kv_conn_wait_ready(a, 2000, NULL));
  PUMP_UNTIL(kv_conn_is_ready(b), 2000);

  int p1[2], p2[2];
  ck_assert_int_eq(pipe2(p1, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(p2, O_CLOEXEC), 0);
  int ends[2] = {p1[1], p2[1]};
  ck_assert(kv_conn_attach_fds(a, ends, 2, NULL));
  ck_assert(kv_conn_send(a, KV_FRAME_DATA, 3, "x", 1, NULL));
  PUMP_UNTIL(pb.frames == 1, 5000);
  int t1 = kv_conn_take_fd(b), t2 = kv_conn_take_fd(b);
  ck_assert_int_ge(t1, 0);
  ck_assert_int_ge(t2, 0);
  ck_assert_int_eq(kv_conn_take_fd(b), -1);
  ck_assert_int_eq(write(t1, "1", 1), 1);
  ck_assert_int_eq(write(t2, "2", 1), 1);
  char c = 0;
  ck_assert_int_eq(read(p1[0], &c, 1), 1);
  ck_assert_int_eq(c, '1');
  ck_assert_int_eq(read(p2[0], &c, 1), 1);
  ck_assert_int_eq(c, '2');
  close(t1);
  close(t2);

  /* More than KV_CONN_MAX_FDS with one frame is refused at once. */
  int many[KV_CONN_MAX_FDS + 1];
  for (int i = 0; i <= KV_CONN_MAX_FDS; i++)
    many[i] = p1[1];
  g_autoptr(GError) err = NULL;
  ck_assert(!kv_conn_attach_fds(a, many, KV_CONN_MAX_FDS + 1, &err));
  /* A peer that sends fds nobody takes: past KV_CONN_MAX_FDS_HELD the
   * conn closes, and every fd it held is closed with it. */
  for (int i = 0; i * KV_CONN_MAX_FDS <= KV_CONN_MAX_FDS_HELD; i++) {
    ck_assert(kv_conn_attach_fds(a, many, KV_CONN_MAX_FDS, NULL));
    ck_assert(kv_conn_send(a, KV_FRAME_DATA, 3, "y", 1, NULL));
  }
  PUMP_UNTIL(kv_conn_is_closed(b), 5000);
  ck_assert_ptr_nonnull(strstr(pb.closed_why->message, "file descriptors"));
  kv_conn_close(a);
  g_clear_pointer(&a, kv_conn_unref);
  g_clear_pointer(&b, kv_conn_unref);

  /* Without kv_conn_accept_fds the kernel discards them on our read. */
  make_pair(fds);
  Peer pc = {0}, pd = {0};
  g_autoptr(KvConn) cc = kv_conn_new(fds[0], "lib", &handlers, &pc, NULL);
  g_autoptr(KvConn) d = kv_conn_new(fds[1], "shim", &handlers, &pd, NULL);
  ck_assert(kv_conn_wait_ready(cc, 2000, NULL));
  ck_assert(kv_conn_attach_fds(cc, ends, 2, NULL));
  ck_assert(kv_conn_send(cc, KV_FRAME_DATA, 3, "z", 1, NULL));
  PUMP_UNTIL(pd.frames == 1, 5000);
  ck_assert_int_eq(kv_conn_take_fd(d), -1);
  kv_conn_close(cc);
  kv_conn_close(d);
  for (int i = 0; i < 2; i++) {
    close(p1[i]);
    close(p2[i]);
  }
  ck_assert_int_eq(count_open_fds(), before);
  peer_clear(&pa);
  peer_clear(&pb);
  peer_clear(&pc);
  peer_clear(&pd);
}
END_TEST

typedef struct {
  int fd;
  gsize len;
} SlowWriter;

/* Writes one DATA frame of w->len bytes the way QEMU does: 4 KiB at a
 * time, with short pauses. */
static gpointer slow_writer(gpointer data) {
  SlowWriter *w = data;
  g_autoptr(GBytes) hdr = kv_frame_encode_header(KV_FRAME_DATA, 7, w->len, NULL);
  raw_write(w->fd, hdr);
  guint8 page[4096];
  for (gsize off = 0; off < w->len; off += sizeof page) {
    gsize n = MIN(sizeof page, w->len - off);
    for (gsize i = 0; i < n; i++)
      page[i] = (guint8)((off + i) * 7);
    gsize done = 0;
    while (done < n) {
      ssize_t r = write(w->fd, page + done, n - done);
      ck_assert_int_gt(r, 0);
      done += (gsize)r;
    }
    if (off % (64 * 1024) == 0)
      g_usleep(200);
  }
  return NULL;
}

/* Gathering: a big DATA frame written page by page arrives complete and in
 * order, in pieces far larger than the pages, and a frame that stops
 * midway does not hold the reader beyond the timeout. */
START_TEST(test_conn_gather_frames) {
  int fds[2];
  make_pair(fds);
  Peer pa = {0}, pb = {0};
  g_autoptr(KvConn) b = kv_conn_new(fds[1], "shim", &handlers, &pb, NULL);
  ck_assert(kv_conn_gather_frames(b));
  g_autoptr(GBytes) hello = kv_hello_encode("agent", NULL);
  raw_write(fds[0], hello);
  PUMP_UNTIL(kv_conn_is_ready(b), 2000);

  SlowWriter w = {fds[0], KV_FRAME_MAX_PAYLOAD};
  GThread *t = g_thread_new("writer", slow_writer, &w);
  PUMP_UNTIL(pb.data && pb.data->len == w.len, 10000);
  g_thread_join(t);
  for (gsize i = 0; i < w.len; i++)
    ck_assert_uint_eq(pb.data->data[i], (guint8)(i * 7));
  /* 256 pages, far fewer pieces: each but the last at least
   * KV_CONN_GATHER_MIN / 2, not one per page. */
  ck_assert_int_le(pb.frames, w.len / (KV_CONN_GATHER_MIN / 2) + 1);

  /* Half a frame, then silence: what came is handed on at once (cut
   * through), and the conn waits for the rest without giving up on it. */
  g_autoptr(GBytes) hdr = kv_frame_encode_header(KV_FRAME_DATA, 7, 100000, NULL);
  raw_write(fds[0], hdr);
  guint8 part[50000] = {0};
  ck_assert_int_eq(write(fds[0], part, sizeof part), (ssize_t)sizeof part);
  PUMP_UNTIL(pb.data->len == w.len + sizeof part, 5000);
  pump_for(20);
  ck_assert(!kv_conn_is_closed(b));
  close(fds[0]);
  PUMP_UNTIL(kv_conn_is_closed(b), 5000);
  peer_clear(&pa);
  peer_clear(&pb);
}
END_TEST

static Suite *proto_suite(void) {
  Suite *s = suite_create("proto");
  TCase *codec = tcase_create("codec");
  tcase_add_test(codec, test_roundtrip_every_type_one_feed);
  tcase_add_test(codec, test_roundtrip_byte_by_byte);
  tcase_add_test(codec, test_roundtrip_odd_splits);
  tcase_add_test(codec, test_many_frames_one_feed);
  tcase_add_test(codec, test_max_payload_roundtrip);
  tcase_add_test(codec, test_encode_rejects_invalid);
  tcase_add_test(codec, test_credit_value);
  tcase_add_test(codec, test_truncated_frame_waits);
  tcase_add_test(codec, test_window);
  tcase_add_test(codec, test_decoder_split_data);
  tcase_add_test(codec, test_remote_error_helpers);
  suite_add_tcase(s, codec);

  TCase *bad = tcase_create("malformed");
  tcase_add_test(bad, test_bad_magic);
  tcase_add_test(bad, test_unknown_type);
  tcase_add_test(bad, test_nonzero_flags);
  tcase_add_test(bad, test_oversize_rejected_from_header_alone);
  tcase_add_test(bad, test_stream_frames_on_stream_zero);
  tcase_add_test(bad, test_control_frames_on_nonzero_stream);
  tcase_add_test(bad, test_credit_must_be_four_bytes);
  tcase_add_test(bad, test_eof_must_be_empty);
  tcase_add_test(bad, test_feed_bound);
  tcase_add_test(bad, test_json_not_an_object);
  tcase_add_test(bad, test_json_deep_nesting);
  tcase_add_test(bad, test_request_id_checks);
  tcase_add_test(bad, test_request_method_checks);
  tcase_add_test(bad, test_response_checks);
  tcase_add_test(bad, test_hello_checks);
  tcase_add_test(bad, test_event_checks);
  suite_add_tcase(s, bad);

  TCase *conn = tcase_create("conn");
  tcase_set_timeout(conn, 30);
  tcase_add_test(conn, test_conn_hello_exchange);
  tcase_add_test(conn, test_conn_request_answered);
  tcase_add_test(conn, test_hello_features);
  tcase_add_test(conn, test_conn_remote_error);
  tcase_add_test(conn, test_conn_pending_call_fails_on_peer_close);
  tcase_add_test(conn, test_conn_local_close_fails_pending);
  tcase_add_test(conn, test_conn_unref_inside_callback);
  tcase_add_test(conn, test_conn_unref_in_on_closed);
  tcase_add_test(conn, test_conn_garbage_peer);
  tcase_add_test(conn, test_conn_version_mismatch);
  tcase_add_test(conn, test_conn_frame_before_hello);
  tcase_add_test(conn, test_conn_second_hello);
  tcase_add_test(conn, test_conn_bad_frame_after_hello);
  tcase_add_test(conn, test_conn_unknown_response_ignored);
  tcase_add_test(conn, test_conn_call_timeout);
  tcase_add_test(conn, test_conn_wait_ready_timeout);
  tcase_add_test(conn, test_conn_streams_and_events);
  tcase_add_test(conn, test_conn_backpressure_and_flush);
  tcase_add_test(conn, test_conn_write_queue_cap);
  tcase_add_test(conn, test_conn_nested_call_sync_in_handler);
  tcase_add_test(conn, test_conn_call_sync_other_thread_context);
  tcase_add_test(conn, test_conn_spliced_data);
  tcase_add_test(conn, test_conn_fd_passing);
  tcase_add_test(conn, test_conn_gather_frames);
  suite_add_tcase(s, conn);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(proto_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
