/* lib/proto/proto.c: frame encoding, the incremental decoder, JSON message
 * validation (HELLO/REQUEST/RESPONSE/EVENT) and per-stream flow-control
 * bookkeeping. Everything here treats its input as hostile: the bytes come
 * from a guest we do not trust, so each field is checked before use and no
 * input can make us allocate more than a bounded amount or crash.
 */
#include "proto.h"
#include "fields.h"

#include <string.h>

G_DEFINE_QUARK(kv - proto - error - quark, kv_proto_error)

/* json-glib's parser recurses once per nesting level and overflows the stack
 * on deeply nested input (1 MiB of '[' is enough). Our messages are shallow
 * (an OCI spec nests well under 20), so a generous cap costs nothing. */
#define KV_JSON_MAX_DEPTH 64
/* HELLO role/version and EVENT names are short identifiers. */
#define KV_NAME_MAX_LEN KV_METHOD_MAX_LEN
/* A decoder whose buffer grew past this releases the memory once drained, so
 * one big frame does not pin megabytes per idle connection. */
#define KV_DECODER_SHRINK_AT (256u * 1024u)
/* Payloads this big take the buffer over rather than being copied out
 * (the fuzz build lowers it so that its small inputs reach that path). */
#ifndef KV_DECODER_STEAL_MIN
#define KV_DECODER_STEAL_MIN (16u * 1024u)
#endif
#define KV_DECODER_MAX_BUFFER (2u * (KV_FRAME_HDR_LEN + KV_FRAME_MAX_PAYLOAD))

static const char *frame_type_name(guint type) {
  switch (type) {
  case KV_FRAME_HELLO:
    return "HELLO";
  case KV_FRAME_REQUEST:
    return "REQUEST";
  case KV_FRAME_RESPONSE:
    return "RESPONSE";
  case KV_FRAME_DATA:
    return "DATA";
  case KV_FRAME_CREDIT:
    return "CREDIT";
  case KV_FRAME_EOF:
    return "EOF";
  case KV_FRAME_EVENT:
    return "EVENT";
  default:
    return "unknown";
  }
}

const char *kv_frame_type_name(KvFrameType type) {
  return frame_type_name(type);
}

static gboolean type_is_json(guint type) {
  return type == KV_FRAME_HELLO || type == KV_FRAME_REQUEST || type == KV_FRAME_RESPONSE ||
         type == KV_FRAME_EVENT;
}

static gboolean type_is_known(guint type) {
  return type >= KV_FRAME_HELLO && type <= KV_FRAME_EVENT;
}

/* Control frames live on stream 0, stream frames never do. */
static gboolean check_stream(guint type, guint32 stream, GError **error) {
  gboolean control = type_is_json(type);
  if (control && stream != 0) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_STREAM,
                "%s frame on stream %u (must be 0)", frame_type_name(type), stream);
    return FALSE;
  }
  if (!control && stream == 0) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_STREAM, "%s frame on stream 0",
                frame_type_name(type));
    return FALSE;
  }
  return TRUE;
}

static gboolean check_length(guint type, gsize len, GError **error) {
  if (len > KV_FRAME_MAX_PAYLOAD) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE,
                "%s frame payload of %" G_GSIZE_FORMAT " bytes exceeds the limit of %u",
                frame_type_name(type), len, KV_FRAME_MAX_PAYLOAD);
    return FALSE;
  }
  if (type == KV_FRAME_CREDIT && len != 4) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                "CREDIT payload is %" G_GSIZE_FORMAT " bytes, must be 4", len);
    return FALSE;
  }
  if (type == KV_FRAME_EOF && len != 0) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                "EOF payload is %" G_GSIZE_FORMAT " bytes, must be empty", len);
    return FALSE;
  }
  return TRUE;
}

void kv_frame_clear(KvFrame *f) {
  if (f == NULL)
    return;
  g_clear_pointer(&f->payload, g_bytes_unref);
  memset(f, 0, sizeof *f);
}

/* Validates a frame's header fields; writes the header into buf. */
static gboolean frame_header(GByteArray *buf, KvFrameType type, guint32 stream, gsize len,
                             GError **error) {
  if (!type_is_known(type)) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE, "unknown frame type %u",
                (guint)type);
    return FALSE;
  }
  if (!check_stream(type, stream, error) || !check_length(type, len, error))
    return FALSE;
  guint16 magic = GUINT16_TO_BE(KV_FRAME_MAGIC);
  guint8 t = type, flags = 0;
  guint32 s = GUINT32_TO_BE(stream), l = GUINT32_TO_BE((guint32)len);
  g_byte_array_append(buf, (const guint8 *)&magic, 2);
  g_byte_array_append(buf, &t, 1);
  g_byte_array_append(buf, &flags, 1);
  g_byte_array_append(buf, (const guint8 *)&s, 4);
  g_byte_array_append(buf, (const guint8 *)&l, 4);
  return TRUE;
}

GBytes *kv_frame_encode(KvFrameType type, guint32 stream, const void *data, gsize len,
                        GError **error) {
  g_return_val_if_fail(data != NULL || len == 0, NULL);

  GByteArray *buf = g_byte_array_sized_new(KV_FRAME_HDR_LEN + len);
  if (!frame_header(buf, type, stream, len, error)) {
    g_byte_array_unref(buf);
    return NULL;
  }
  if (len > 0)
    g_byte_array_append(buf, data, len);
  return g_byte_array_free_to_bytes(buf);
}

GBytes *kv_frame_encode_header(KvFrameType type, guint32 stream, gsize len, GError **error) {
  GByteArray *buf = g_byte_array_sized_new(KV_FRAME_HDR_LEN);
  if (!frame_header(buf, type, stream, len, error)) {
    g_byte_array_unref(buf);
    return NULL;
  }
  return g_byte_array_free_to_bytes(buf);
}

GBytes *kv_frame_encode_json(KvFrameType type, JsonNode *node, GError **error) {
  g_return_val_if_fail(node != NULL, NULL);

  if (!type_is_json(type)) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE, "%s frames do not carry JSON",
                frame_type_name(type));
    return NULL;
  }
  if (!JSON_NODE_HOLDS_OBJECT(node)) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                "%s payload must be a JSON object", frame_type_name(type));
    return NULL;
  }
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, node);
  gsize len = 0;
  g_autofree char *text = json_generator_to_data(gen, &len);
  return kv_frame_encode(type, 0, text, len, error);
}

guint32 kv_frame_credit(const KvFrame *f) {
  g_return_val_if_fail(f != NULL && f->payload != NULL, 0);
  gsize len = 0;
  const guint8 *p = g_bytes_get_data(f->payload, &len);
  if (f->type != KV_FRAME_CREDIT || len != 4)
    return 0;
  guint32 v;
  memcpy(&v, p, 4);
  return GUINT32_FROM_BE(v);
}

/* ---- JSON payloads ---- */

/* Cheap structural pre-check before json-glib sees the text: bounds nesting
 * (json-glib would overflow the stack), insists on one top-level object with
 * nothing after it, and refuses the extensions json-glib tolerates (comments,
 * single-quoted strings) so both sides agree on what a message is. */
static gboolean json_precheck(const char *s, gsize len, GError **error) {
  guint depth = 0;
  gboolean in_str = FALSE, esc = FALSE, started = FALSE, done = FALSE;

  for (gsize i = 0; i < len; i++) {
    char ch = s[i];
    if (in_str) {
      if (esc)
        esc = FALSE;
      else if (ch == '\\')
        esc = TRUE;
      else if (ch == '"')
        in_str = FALSE;
      continue;
    }
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
      continue;
    if (done) {
      g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                  "trailing data after the JSON object at offset %" G_GSIZE_FORMAT, i);
      return FALSE;
    }
    if (!started) {
      if (ch != '{') {
        g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                            "JSON payload is not an object");
        return FALSE;
      }
      started = TRUE;
    }
    switch (ch) {
    case '"':
      in_str = TRUE;
      break;
    case '{':
    case '[':
      if (++depth > KV_JSON_MAX_DEPTH) {
        g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                    "JSON nested deeper than %d levels", KV_JSON_MAX_DEPTH);
        return FALSE;
      }
      break;
    case '}':
    case ']':
      if (depth == 0) {
        g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                            "unbalanced JSON brackets");
        return FALSE;
      }
      if (--depth == 0)
        done = TRUE;
      break;
    case '\'':
    case '/':
      g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                  "invalid character '%c' in JSON", ch);
      return FALSE;
    default:
      break;
    }
  }
  if (!done) {
    g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                        started ? "truncated JSON object" : "JSON payload is not an object");
    return FALSE;
  }
  return TRUE;
}

gboolean kv_json_check_text(const char *s, gsize len, GError **error) {
  if (len == 0 || !g_utf8_validate_len(s, len, NULL)) {
    g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                        len == 0 ? "empty JSON text" : "JSON text is not valid UTF-8");
    return FALSE;
  }
  return json_precheck(s, len, error);
}

JsonNode *kv_json_parse_object(GBytes *payload, GError **error) {
  g_return_val_if_fail(payload != NULL, NULL);
  gsize len = 0;
  const char *s = g_bytes_get_data(payload, &len);

  if (len > KV_FRAME_MAX_PAYLOAD) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE,
                "JSON payload of %" G_GSIZE_FORMAT " bytes is too large", len);
    return NULL;
  }
  /* Also rejects embedded NUL bytes, which json-glib would cut at. */
  if (len == 0 || !g_utf8_validate_len(s, len, NULL)) {
    g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                        len == 0 ? "empty JSON payload" : "JSON payload is not valid UTF-8");
    return NULL;
  }
  if (!json_precheck(s, len, error))
    return NULL;

  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  g_autoptr(GError) local = NULL;
  if (!json_parser_load_from_data(parser, s, (gssize)len, &local)) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD, "invalid JSON: %s",
                local->message);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                        "JSON payload is not an object");
    return NULL;
  }
  return json_node_copy(root);
}

/* ---- envelopes: through the field-table kit (fields.h) ---- */

/* Decodes an envelope; a mismatch is a protocol violation of the frame. */
static gboolean envelope_decode(const KvMsgDesc *d, JsonObject *o, gpointer out, GError **error) {
  g_autoptr(GError) e = NULL;
  if (kv_msg_decode(d, o, out, &e))
    return TRUE;
  g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD, e->message);
  return FALSE;
}

typedef struct {
  gint64 id;
  char *method;
  JsonObject *params;
} RequestEnv;
static const KvField request_fields[] = {
    KV_FIELD(RequestEnv, "id", KV_T_INT, KV_F_REQUIRED, id, 0, G_MAXUINT32),
    KV_FIELD(RequestEnv, "method", KV_T_STR, KV_F_REQUIRED | KV_F_NONEMPTY, method,
             .max = KV_METHOD_MAX_LEN),
    /* absent (or null) params: {} */
    KV_FIELD(RequestEnv, "params", KV_T_OBJECT, 0, params),
    {NULL}};
static const KvMsgDesc request_desc = {"request", sizeof(RequestEnv), request_fields};

typedef struct {
  gint64 id;
  JsonObject *result;
  JsonObject *error;
} ResponseEnv;
static const KvField response_fields[] = {
    KV_FIELD(ResponseEnv, "id", KV_T_INT, KV_F_REQUIRED, id, 0, G_MAXUINT32),
    KV_FIELD(ResponseEnv, "result", KV_T_OBJECT, 0, result),
    KV_FIELD(ResponseEnv, "error", KV_T_OBJECT, 0, error),
    {NULL}};
static const KvMsgDesc response_desc = {"response", sizeof(ResponseEnv), response_fields};

typedef struct {
  gint64 code;
  char *message;
} ErrorEnv;
static const KvField error_fields[] = {
    KV_FIELD(ErrorEnv, "code", KV_T_INT, KV_F_REQUIRED, code, G_MININT, G_MAXINT),
    KV_FIELD(ErrorEnv, "message", KV_T_STR, KV_F_REQUIRED, message),
    {NULL}};
static const KvMsgDesc error_desc = {"response: error", sizeof(ErrorEnv), error_fields};

typedef struct {
  gint64 proto;
  char *role, *version;
  char **features;
} HelloEnv;
static const KvField hello_fields[] = {
    KV_FIELD(HelloEnv, "role", KV_T_STR, KV_F_REQUIRED | KV_F_NONEMPTY, role,
             .max = KV_NAME_MAX_LEN),
    KV_FIELD(HelloEnv, "version", KV_T_STR, KV_F_REQUIRED | KV_F_NONEMPTY, version,
             .max = KV_NAME_MAX_LEN),
    /* optional: a peer that sends none offers none */
    KV_FIELD(HelloEnv, "features", KV_T_STRV, 0, features, .max = KV_NAME_MAX_LEN),
    {NULL}};
static const KvMsgDesc hello_desc = {"HELLO", sizeof(HelloEnv), hello_fields};

typedef struct {
  char *event;
} EventEnv;
static const KvField event_fields[] = {KV_FIELD(EventEnv, "event", KV_T_STR,
                                                KV_F_REQUIRED | KV_F_NONEMPTY, event,
                                                .max = KV_NAME_MAX_LEN),
                                       {NULL}};
static const KvMsgDesc event_desc = {"event", sizeof(EventEnv), event_fields};

static GBytes *envelope_encode(KvFrameType type, const KvMsgDesc *d, gconstpointer env,
                               GError **error) {
  g_autoptr(JsonObject) o = kv_msg_encode(d, env);
  g_autoptr(JsonNode) n = json_node_new(JSON_NODE_OBJECT);
  json_node_set_object(n, o);
  return kv_frame_encode_json(type, n, error);
}

GBytes *kv_request_encode(guint32 id, const char *method, JsonObject *params, GError **error) {
  g_autoptr(JsonObject) empty = params == NULL ? json_object_new() : NULL;
  RequestEnv r = {.id = id, .method = (char *)method, .params = params ? params : empty};
  return envelope_encode(KV_FRAME_REQUEST, &request_desc, &r, error);
}

GBytes *kv_response_encode(guint32 id, JsonObject *result, GError **error) {
  g_autoptr(JsonObject) empty = result == NULL ? json_object_new() : NULL;
  ResponseEnv r = {.id = id, .result = result ? result : empty};
  return envelope_encode(KV_FRAME_RESPONSE, &response_desc, &r, error);
}

GBytes *kv_response_encode_error(guint32 id, int code, const char *message, GError **error) {
  ErrorEnv e = {.code = code, .message = (char *)message};
  g_autoptr(JsonObject) eo = kv_msg_encode(&error_desc, &e);
  ResponseEnv r = {.id = id, .error = eo};
  return envelope_encode(KV_FRAME_RESPONSE, &response_desc, &r, error);
}

gboolean kv_request_parse(GBytes *payload, KvRequest *out, GError **error) {
  g_return_val_if_fail(out != NULL, FALSE);
  memset(out, 0, sizeof *out);
  g_autoptr(JsonNode) root = kv_json_parse_object(payload, error);
  if (root == NULL)
    return FALSE;
  RequestEnv r;
  if (!envelope_decode(&request_desc, json_node_get_object(root), &r, error))
    return FALSE;
  out->id = (guint32)r.id;
  out->method = g_steal_pointer(&r.method);
  out->params = r.params != NULL ? g_steal_pointer(&r.params) : json_object_new();
  return TRUE;
}

void kv_request_clear(KvRequest *r) {
  if (r == NULL)
    return;
  g_clear_pointer(&r->method, g_free);
  g_clear_pointer(&r->params, json_object_unref);
  r->id = 0;
}

gboolean kv_response_parse(GBytes *payload, KvResponse *out, GError **error) {
  g_return_val_if_fail(out != NULL, FALSE);
  memset(out, 0, sizeof *out);
  g_autoptr(JsonNode) root = kv_json_parse_object(payload, error);
  if (root == NULL)
    return FALSE;
  ResponseEnv r;
  if (!envelope_decode(&response_desc, json_node_get_object(root), &r, error))
    return FALSE;
  if ((r.result == NULL) == (r.error == NULL)) {
    kv_msg_clear(&response_desc, &r);
    g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                        "response must carry exactly one of result and error");
    return FALSE;
  }
  out->id = (guint32)r.id;
  if (r.result != NULL) {
    out->result = g_steal_pointer(&r.result);
    return TRUE;
  }
  ErrorEnv e;
  gboolean ok = envelope_decode(&error_desc, r.error, &e, error);
  kv_msg_clear(&response_desc, &r);
  if (!ok) {
    out->id = 0;
    return FALSE;
  }
  out->err_code = (int)e.code;
  out->err_message = g_steal_pointer(&e.message);
  return TRUE;
}

void kv_response_clear(KvResponse *r) {
  if (r == NULL)
    return;
  g_clear_pointer(&r->result, json_object_unref);
  g_clear_pointer(&r->err_message, g_free);
  r->id = 0;
  r->err_code = 0;
}

gboolean kv_hello_parse(GBytes *payload, char **role, char **version, GError **error) {
  return kv_hello_parse_full(payload, role, version, NULL, error);
}

gboolean kv_hello_parse_full(GBytes *payload, char **role, char **version, char ***features,
                             GError **error) {
  g_autoptr(JsonNode) root = kv_json_parse_object(payload, error);
  if (root == NULL)
    return FALSE;
  JsonObject *o = json_node_get_object(root);

  /* The version is checked before anything else, so a future protocol that
   * changes the rest of HELLO is still told apart clearly. */
  JsonNode *pn = json_object_get_member(o, "proto");
  if (pn == NULL || !JSON_NODE_HOLDS_VALUE(pn) || json_node_get_value_type(pn) != G_TYPE_INT64) {
    g_set_error_literal(error, KV_PROTO_ERROR, KV_PROTO_ERROR_VERSION,
                        "peer HELLO carries no protocol version "
                        "(\"proto\" must be an integer)");
    return FALSE;
  }
  gint64 proto = json_node_get_int(pn);
  if (proto != KV_PROTO_VERSION) {
    JsonNode *vn = json_object_get_member(o, "version");
    const char *pv = NULL;
    if (vn != NULL && JSON_NODE_HOLDS_VALUE(vn) && json_node_get_value_type(vn) == G_TYPE_STRING)
      pv = json_node_get_string(vn);
    g_autofree char *vdesc =
        pv != NULL ? g_strdup_printf(" (peer katavm %.*s)", 64, pv) : g_strdup("");
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_VERSION,
                "protocol version mismatch: peer speaks katavm protocol "
                "%" G_GINT64_FORMAT "%s, this side speaks %d; use matching "
                "host and guest builds",
                proto, vdesc, KV_PROTO_VERSION);
    return FALSE;
  }

  HelloEnv h;
  if (!envelope_decode(&hello_desc, o, &h, error))
    return FALSE;
  guint nf = h.features != NULL ? g_strv_length(h.features) : 0;
  for (guint i = 0; i < nf; i++) {
    if (nf > KV_HELLO_MAX_FEATURES || h.features[i][0] == '\0') {
      kv_msg_clear(&hello_desc, &h);
      g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_PAYLOAD,
                  "HELLO: features must be at most %u names of 1..%u characters",
                  KV_HELLO_MAX_FEATURES, KV_NAME_MAX_LEN);
      return FALSE;
    }
  }
  if (role != NULL)
    *role = g_steal_pointer(&h.role);
  if (version != NULL)
    *version = g_steal_pointer(&h.version);
  if (features != NULL)
    *features = h.features != NULL ? g_steal_pointer(&h.features) : g_new0(char *, 1);
  kv_msg_clear(&hello_desc, &h);
  return TRUE;
}

GBytes *kv_hello_encode(const char *role, const char *version) {
  return kv_hello_encode_full(role, version, NULL);
}

GBytes *kv_hello_encode_full(const char *role, const char *version, const char *const *features) {
  g_return_val_if_fail(role != NULL, NULL);
  if (version == NULL)
#ifdef KATAVM_VERSION
    version = KATAVM_VERSION;
#else
    version = "0.1.0";
#endif

  g_autoptr(JsonBuilder) b = json_builder_new_immutable();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "proto");
  json_builder_add_int_value(b, KV_PROTO_VERSION);
  json_builder_set_member_name(b, "role");
  json_builder_add_string_value(b, role);
  json_builder_set_member_name(b, "version");
  json_builder_add_string_value(b, version);
  json_builder_set_member_name(b, "features");
  json_builder_begin_array(b);
  for (guint i = 0; features != NULL && features[i] != NULL && i < KV_HELLO_MAX_FEATURES; i++)
    json_builder_add_string_value(b, features[i]);
  json_builder_end_array(b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) node = json_builder_get_root(b);
  return kv_frame_encode_json(KV_FRAME_HELLO, node, NULL);
}

gboolean kv_event_parse(GBytes *payload, char **name, JsonObject **fields, GError **error) {
  g_autoptr(JsonNode) root = kv_json_parse_object(payload, error);
  if (root == NULL)
    return FALSE;
  JsonObject *o = json_node_get_object(root);
  EventEnv ev;
  if (!envelope_decode(&event_desc, o, &ev, error))
    return FALSE;
  if (name != NULL)
    *name = g_steal_pointer(&ev.event);
  if (fields != NULL)
    *fields = json_object_ref(o);
  kv_msg_clear(&event_desc, &ev);
  return TRUE;
}

/* ---- remote errors ---- */

int kv_remote_error_code(const GError *error) {
  if (error == NULL || !g_error_matches(error, KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE))
    return 0;
  return (int)g_ascii_strtoll(error->message, NULL, 10);
}

const char *kv_remote_error_message(const GError *error) {
  if (error == NULL)
    return NULL;
  if (!g_error_matches(error, KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE))
    return error->message;
  const char *sep = strstr(error->message, ": ");
  return sep != NULL ? sep + 2 : error->message;
}

/* ---- incremental decoder ---- */

struct _KvDecoder {
  GByteArray *buf;
  gsize off;       /* bytes of buf already handed out as frames */
  GError *failed;  /* sticky: once set, every call reports it */
  gsize split_min; /* kv_decoder_split_data(); 0 = whole frames only */
  gsize committed; /* buf->len before the last kv_decoder_prepare() */
};

KvDecoder *kv_decoder_new(void) {
  KvDecoder *d = g_new0(KvDecoder, 1);
  d->buf = g_byte_array_new();
  return d;
}

void kv_decoder_free(KvDecoder *d) {
  if (d == NULL)
    return;
  g_byte_array_unref(d->buf);
  g_clear_error(&d->failed);
  g_free(d);
}

static void decoder_fail(KvDecoder *d, GError *err, GError **error) {
  d->failed = err;
  g_propagate_error(error, g_error_copy(err));
  /* The connection is dead; drop the buffered bytes now. */
  g_byte_array_set_size(d->buf, 0);
  d->off = 0;
}

guint8 *kv_decoder_prepare(KvDecoder *d, gsize len, GError **error) {
  g_return_val_if_fail(d != NULL, NULL);
  if (d->failed != NULL) {
    g_propagate_error(error, g_error_copy(d->failed));
    return NULL;
  }
  if (d->off > 0) {
    if (d->off == d->buf->len && d->buf->len > KV_DECODER_SHRINK_AT) {
      g_byte_array_unref(d->buf);
      d->buf = g_byte_array_new();
    } else {
      g_byte_array_remove_range(d->buf, 0, d->off);
    }
    d->off = 0;
  }
  if (len > KV_DECODER_MAX_BUFFER - d->buf->len) {
    decoder_fail(d,
                 g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_TOO_LARGE,
                             "decoder buffer would exceed %u bytes", KV_DECODER_MAX_BUFFER),
                 error);
    return NULL;
  }
  d->committed = d->buf->len;
  g_byte_array_set_size(d->buf, d->committed + len);
  return d->buf->data + d->committed;
}

void kv_decoder_commit(KvDecoder *d, gsize len) {
  g_return_if_fail(d != NULL);
  if (d->failed != NULL)
    return;
  g_return_if_fail(d->committed + len <= d->buf->len);
  g_byte_array_set_size(d->buf, d->committed + len);
}

gboolean kv_decoder_feed(KvDecoder *d, const void *data, gsize len, GError **error) {
  g_return_val_if_fail(d != NULL, FALSE);
  g_return_val_if_fail(data != NULL || len == 0, FALSE);
  if (len == 0) {
    if (d->failed == NULL)
      return TRUE;
    g_propagate_error(error, g_error_copy(d->failed));
    return FALSE;
  }
  guint8 *p = kv_decoder_prepare(d, len, error);
  if (p == NULL)
    return FALSE;
  memcpy(p, data, len);
  kv_decoder_commit(d, len);
  return TRUE;
}

/* The payload [at, at + len) of buf as GBytes. When it is the last thing
 * buffered (a frame the reader gathered exactly, a cut DATA piece), the
 * buffer itself becomes the payload's storage and the decoder starts a new
 * one: no copy of the bytes. Otherwise they are copied. */
static GBytes *take_payload(KvDecoder *d, gsize at, gsize len) {
  if (len < KV_DECODER_STEAL_MIN || at + len != d->buf->len)
    return g_bytes_new(d->buf->data + at, len);
  GBytes *all = g_byte_array_free_to_bytes(d->buf);
  GBytes *payload = g_bytes_new_from_bytes(all, at, len);
  g_bytes_unref(all);
  d->buf = g_byte_array_new();
  d->off = 0;
  return payload;
}

static gboolean validate_payload(guint type, GBytes *payload, GError **error) {
  switch (type) {
  case KV_FRAME_HELLO:
    return kv_hello_parse(payload, NULL, NULL, error);
  case KV_FRAME_REQUEST: {
    KvRequest r;
    gboolean ok = kv_request_parse(payload, &r, error);
    kv_request_clear(&r);
    return ok;
  }
  case KV_FRAME_RESPONSE: {
    KvResponse r;
    gboolean ok = kv_response_parse(payload, &r, error);
    kv_response_clear(&r);
    return ok;
  }
  case KV_FRAME_EVENT:
    return kv_event_parse(payload, NULL, NULL, error);
  default:
    return TRUE; /* DATA is opaque; CREDIT/EOF sizes checked with the header */
  }
}

void kv_decoder_split_data(KvDecoder *d, gsize min_piece) {
  g_return_if_fail(d != NULL);
  d->split_min = min_piece == 0 ? 0 : MAX(min_piece, (gsize)KV_FRAME_HDR_LEN);
}

gsize kv_decoder_missing(KvDecoder *d) {
  g_return_val_if_fail(d != NULL, 0);
  gsize avail = d->buf->len - d->off;
  if (d->failed != NULL || avail < KV_FRAME_HDR_LEN)
    return 0;
  guint32 len;
  memcpy(&len, d->buf->data + d->off + 8, 4);
  len = GUINT32_FROM_BE(len);
  if (len > KV_FRAME_MAX_PAYLOAD)
    return 0; /* kv_decoder_next refuses it */
  gsize whole = KV_FRAME_HDR_LEN + (gsize)len;
  return whole > avail ? whole - avail : 0;
}

int kv_decoder_next(KvDecoder *d, KvFrame *out, GError **error) {
  g_return_val_if_fail(d != NULL && out != NULL, -1);
  memset(out, 0, sizeof *out);

  if (d->failed != NULL) {
    g_propagate_error(error, g_error_copy(d->failed));
    return -1;
  }
  gsize avail = d->buf->len - d->off;
  if (avail < KV_FRAME_HDR_LEN)
    return 0;

  /* The header is validated in full before waiting for the payload, so a
   * bogus length is refused without buffering anything behind it. */
  const guint8 *h = d->buf->data + d->off;
  guint16 magic = (guint16)((h[0] << 8) | h[1]);
  guint8 type = h[2], flags = h[3];
  guint32 stream, len;
  memcpy(&stream, h + 4, 4);
  memcpy(&len, h + 8, 4);
  stream = GUINT32_FROM_BE(stream);
  len = GUINT32_FROM_BE(len);

  GError *err = NULL;
  if (magic != KV_FRAME_MAGIC)
    err = g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_MAGIC,
                      "bad frame magic 0x%04x (expected 0x%04x)", magic, KV_FRAME_MAGIC);
  else if (!type_is_known(type))
    err = g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_TYPE, "unknown frame type %u", type);
  else if (flags != 0)
    err = g_error_new(KV_PROTO_ERROR, KV_PROTO_ERROR_BAD_FLAGS,
                      "%s frame with reserved flags 0x%02x set", frame_type_name(type), flags);
  else
    (void)(check_stream(type, stream, &err) && check_length(type, len, &err));
  if (err != NULL) {
    decoder_fail(d, err, error);
    return -1;
  }

  if (avail - KV_FRAME_HDR_LEN < len) {
    gsize have = avail - KV_FRAME_HDR_LEN;
    if (type != KV_FRAME_DATA || d->split_min == 0 || have < d->split_min)
      return 0;
    /* Hand out what is here as a DATA frame of its own and leave a header
     * for the rest right behind it, over bytes already copied out
     * (have >= split_min >= KV_FRAME_HDR_LEN: no overlap with h). */
    guint8 rest[KV_FRAME_HDR_LEN];
    guint32 rest_len = GUINT32_TO_BE(len - (guint32)have);
    memcpy(rest, h, 8);
    memcpy(rest + 8, &rest_len, 4);
    out->type = type;
    out->stream = stream;
    /* The piece ends where the buffer does; the rest's header then starts
     * the next bytes (a new buffer when the payload took this one). */
    gsize at = d->off + KV_FRAME_HDR_LEN;
    out->payload = take_payload(d, at, have);
    if (d->buf->len == 0) {
      g_byte_array_append(d->buf, rest, sizeof rest);
    } else {
      memcpy(d->buf->data + at + have - KV_FRAME_HDR_LEN, rest, sizeof rest);
      d->off = at + have - KV_FRAME_HDR_LEN;
    }
    return 1;
  }

  gsize at = d->off + KV_FRAME_HDR_LEN;
  d->off = at + len;
  GBytes *payload = take_payload(d, at, len);

  if (!validate_payload(type, payload, &err)) {
    g_bytes_unref(payload);
    g_prefix_error(&err, "%s frame: ", frame_type_name(type));
    decoder_fail(d, err, error);
    return -1;
  }
  out->type = type;
  out->flags = flags;
  out->stream = stream;
  out->payload = payload;
  return 1;
}

/* ---- flow control ---- */

void kv_window_init(KvWindow *w, gboolean to_guest) {
  g_return_if_fail(w != NULL);
  guint32 n = to_guest ? KV_STDIN_INITIAL_WINDOW : KV_STREAM_INITIAL_WINDOW;
  w->recv_avail = n;
  w->send_avail = n;
}

gboolean kv_window_on_data(KvWindow *w, gsize len, GError **error) {
  g_return_val_if_fail(w != NULL, FALSE);
  if (len > w->recv_avail) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW,
                "peer sent %" G_GSIZE_FORMAT " DATA bytes with only %u bytes of window left", len,
                w->recv_avail);
    return FALSE;
  }
  w->recv_avail -= (guint32)len;
  return TRUE;
}

guint32 kv_window_grant(KvWindow *w, guint32 n) {
  g_return_val_if_fail(w != NULL, 0);
  /* Never promise more than fits the peer's u32 counter. */
  guint32 room = G_MAXUINT32 - w->recv_avail;
  if (n > room)
    n = room;
  w->recv_avail += n;
  return n;
}

gboolean kv_window_on_credit(KvWindow *w, guint32 n, GError **error) {
  g_return_val_if_fail(w != NULL, FALSE);
  if (n > G_MAXUINT32 - w->send_avail) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW,
                "CREDIT of %u would overflow the send window of %u", n, w->send_avail);
    return FALSE;
  }
  w->send_avail += n;
  return TRUE;
}

gboolean kv_window_on_send(KvWindow *w, gsize len, GError **error) {
  g_return_val_if_fail(w != NULL, FALSE);
  if (len > w->send_avail) {
    g_set_error(error, KV_PROTO_ERROR, KV_PROTO_ERROR_FLOW,
                "%" G_GSIZE_FORMAT " DATA bytes exceed the send window of %u", len, w->send_avail);
    return FALSE;
  }
  w->send_avail -= (guint32)len;
  return TRUE;
}
