/* tests/fuzz/fuzz_decoder.c: libFuzzer target for the frame decoder and the
 * JSON message parsers, the code that reads what an untrusted guest sends.
 *
 * Input layout: byte 0 selects the mode and seeds the split sizes.
 *   odd  -> the rest is one JSON payload, run through every message parser
 *           (reaches JSON corner cases without first finding a valid header);
 *   even -> the rest is a byte stream fed to a decoder in pseudo-random
 *           pieces; every frame that comes out is parsed with the helpers.
 * Beyond "no crash, no leak, no UB", it checks invariants: frames decode the
 * same however the stream is split, a decoded frame re-encodes to exactly the
 * bytes it came from, and a JSON frame the decoder accepted parses again.
 * A third run cuts DATA frames (kv_decoder_split_data, as the shim reads
 * the agent): the same bytes per stream in the same order, the same error.
 * Every JSON object that parses is also decoded as the params and the
 * result of every method of the typed contract (lib/proto/msg.c): a
 * decode that succeeds must re-encode to an object that decodes again to
 * the same encoding, and a failure must be a KV_E_INVALID naming it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "proto.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* A g_return_if_fail tripping on hostile input is a bug: make it a crash. */
  g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return 0;
}

static char *encode_string(const KvMsgDesc *d, gconstpointer m) {
  g_autoptr(JsonObject) o = kv_msg_encode(d, m);
  g_autoptr(JsonNode) n = json_node_new(JSON_NODE_OBJECT);
  json_node_set_object(n, o);
  return json_to_string(n, FALSE);
}

/* Decodes o with the table d; a success must survive a round trip. */
static void typed_decode(const KvMsgDesc *d, JsonObject *o) {
  gpointer m = g_malloc0(d->size);
  g_autoptr(GError) e = NULL;
  gboolean ok = kv_msg_decode(d, o, m, &e);
  CHECK(ok != (e != NULL));
  if (!ok) {
    CHECK(e->domain == KV_ERROR_DOMAIN && e->code == KV_E_INVALID && e->message[0]);
    g_free(m);
    return;
  }
  g_autofree char *once = encode_string(d, m);
  g_autoptr(JsonObject) back = kv_msg_encode(d, m);
  gpointer m2 = g_malloc0(d->size);
  g_autoptr(GError) e2 = NULL;
  CHECK(kv_msg_decode(d, back, m2, &e2));
  g_autofree char *twice = encode_string(d, m2);
  CHECK(strcmp(once, twice) == 0);
  kv_msg_clear(d, m);
  kv_msg_clear(d, m2);
  g_free(m);
  g_free(m2);
}

static void typed_all(JsonObject *o) {
  guint n = 0;
  const KvMethod *const *ms = kv_methods(&n);
  for (guint i = 0; i < n; i++) {
    typed_decode(ms[i]->params, o);
    typed_decode(ms[i]->result, o);
  }
}

/* Runs every parser on one payload; returns whether the parser matching
 * `type` accepted it (any parser for type 0). */
static gboolean parse_all(GBytes *payload, KvFrameType type) {
  gboolean ok_type = FALSE;

  g_autoptr(GError) e0 = NULL;
  g_autoptr(JsonNode) n = kv_json_parse_object(payload, &e0);
  CHECK((n != NULL) != (e0 != NULL));
  CHECK(n == NULL || JSON_NODE_HOLDS_OBJECT(n));
  CHECK(e0 == NULL || e0->domain == KV_PROTO_ERROR);
  if (n != NULL)
    typed_all(json_node_get_object(n));

  KvRequest req;
  g_autoptr(GError) e1 = NULL;
  gboolean ok = kv_request_parse(payload, &req, &e1);
  CHECK(ok != (e1 != NULL));
  if (ok) {
    CHECK(n != NULL);
    CHECK(req.method != NULL && req.method[0] != '\0');
    CHECK(strlen(req.method) <= KV_METHOD_MAX_LEN);
    CHECK(req.params != NULL);
    const KvMethod *m = kv_method_lookup(req.method);
    if (m != NULL)
      typed_decode(m->params, req.params);
    ok_type |= type == KV_FRAME_REQUEST;
  }
  kv_request_clear(&req);

  KvResponse resp;
  g_autoptr(GError) e2 = NULL;
  ok = kv_response_parse(payload, &resp, &e2);
  CHECK(ok != (e2 != NULL));
  if (ok) {
    CHECK((resp.result != NULL) != (resp.err_message != NULL));
    ok_type |= type == KV_FRAME_RESPONSE;
  }
  kv_response_clear(&resp);

  g_autofree char *role = NULL, *version = NULL;
  g_auto(GStrv) features = NULL;
  g_autoptr(GError) e3 = NULL;
  ok = kv_hello_parse_full(payload, &role, &version, &features, &e3);
  CHECK(ok != (e3 != NULL));
  if (ok) {
    CHECK(role != NULL && version != NULL && features != NULL);
    CHECK(g_strv_length(features) <= KV_HELLO_MAX_FEATURES);
    ok_type |= type == KV_FRAME_HELLO;
  }

  g_autofree char *ev = NULL;
  JsonObject *fields = NULL;
  g_autoptr(GError) e4 = NULL;
  ok = kv_event_parse(payload, &ev, &fields, &e4);
  CHECK(ok != (e4 != NULL));
  if (ok) {
    CHECK(ev != NULL && fields != NULL);
    json_object_unref(fields);
    ok_type |= type == KV_FRAME_EVENT;
  }
  return ok_type || type == 0;
}

typedef struct {
  guint frames;
  int err_code; /* -1 = no error */
  guint32 hash; /* over types, streams and payloads, to compare runs */
  /* DATA stream of the item hashed last (0: none), so that consecutive
   * DATA on one stream hash alike however they were cut. */
  guint32 data_stream;
  /* deep runs: the input ends inside a DATA frame, whose first bytes a
   * cutting decoder hands out and a whole-frame one never does. */
  gboolean ends_in_data;
} Outcome;

static guint32 mix(guint32 h, const void *p, gsize n) {
  const guint8 *b = p;
  for (gsize i = 0; i < n; i++)
    h = (h ^ b[i]) * 16777619u;
  return h;
}

/* Decodes `data` fed in pieces whose sizes come from `seed` (0 = one feed),
 * checking each frame. */
static Outcome decode_stream(const uint8_t *data, size_t size, guint32 seed, gboolean deep,
                             gsize split_min) {
  Outcome o = {0, -1, 2166136261u, 0, FALSE};
  g_autoptr(KvDecoder) d = kv_decoder_new();
  kv_decoder_split_data(d, split_min);
  size_t off = 0, pos = 0; /* pos: where the next frame starts in data */
  guint32 rng = seed;

  while (off < size) {
    size_t n = size - off;
    if (seed != 0) {
      rng = rng * 1103515245u + 12345u;
      n = MIN(n, 1 + (rng >> 16) % 97);
    }
    g_autoptr(GError) err = NULL;
    if (!kv_decoder_feed(d, data + off, n, &err)) {
      CHECK(err != NULL && err->domain == KV_PROTO_ERROR);
      o.err_code = err->code;
      return o;
    }
    off += n;
    for (;;) {
      KvFrame f;
      int r = kv_decoder_next(d, &f, &err);
      if (r == 0) {
        CHECK(err == NULL);
        break;
      }
      if (r < 0) {
        CHECK(err != NULL && err->domain == KV_PROTO_ERROR);
        CHECK(f.payload == NULL);
        o.err_code = err->code;
        /* Sticky failure. */
        g_autoptr(GError) again = NULL;
        CHECK(kv_decoder_next(d, &f, &again) == -1 && again != NULL);
        return o;
      }
      CHECK(r == 1 && f.payload != NULL && f.flags == 0);
      gsize plen = g_bytes_get_size(f.payload);
      CHECK(plen <= KV_FRAME_MAX_PAYLOAD);
      o.frames++;
      if (f.type != KV_FRAME_DATA || f.stream != o.data_stream) {
        o.hash = mix(o.hash, &f.type, sizeof f.type);
        o.hash = mix(o.hash, &f.stream, sizeof f.stream);
      }
      o.data_stream = f.type == KV_FRAME_DATA ? f.stream : 0;
      o.hash = mix(o.hash, g_bytes_get_data(f.payload, NULL), plen);

      if (deep) {
        /* Re-encoding gives back the original bytes. */
        g_autoptr(GError) eerr = NULL;
        g_autoptr(GBytes) re =
            kv_frame_encode(f.type, f.stream, g_bytes_get_data(f.payload, NULL), plen, &eerr);
        CHECK(re != NULL);
        CHECK(g_bytes_get_size(re) == KV_FRAME_HDR_LEN + plen);
        CHECK(pos + KV_FRAME_HDR_LEN + plen <= size);
        CHECK(memcmp(g_bytes_get_data(re, NULL), data + pos, KV_FRAME_HDR_LEN + plen) == 0);
        if (f.type == KV_FRAME_CREDIT)
          (void)kv_frame_credit(&f);
        if (f.type == KV_FRAME_HELLO || f.type == KV_FRAME_REQUEST || f.type == KV_FRAME_RESPONSE ||
            f.type == KV_FRAME_EVENT)
          CHECK(parse_all(f.payload, f.type));
      }
      pos += KV_FRAME_HDR_LEN + plen;
      kv_frame_clear(&f);
    }
  }
  o.ends_in_data = deep && size - pos >= KV_FRAME_HDR_LEN && data[pos + 2] == KV_FRAME_DATA;
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  guint8 mode = data[0];
  data++;
  size--;

  if (mode & 1) {
    g_autoptr(GBytes) payload = g_bytes_new(data, size);
    parse_all(payload, 0);
    return 0;
  }

  /* One feed, then random splits: the outcome must not depend on how the
   * bytes arrived. */
  Outcome whole = decode_stream(data, size, 0, TRUE, 0);
  Outcome split = decode_stream(data, size, 1u + mode, FALSE, 0);
  CHECK(whole.frames == split.frames);
  CHECK(whole.err_code == split.err_code);
  CHECK(whole.hash == split.hash);
  /* Cut-through DATA: more frames perhaps, the same bytes and outcome. */
  Outcome cut = decode_stream(data, size, 1u + mode, FALSE, 1u + mode % 64);
  CHECK(cut.frames >= whole.frames);
  CHECK(cut.err_code == whole.err_code);
  CHECK(cut.hash == whole.hash || whole.ends_in_data);
  return 0;
}
