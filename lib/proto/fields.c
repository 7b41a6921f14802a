/* lib/proto/fields.c: the decoder and encoder of field tables (fields.h). */
#include "fields.h"

#include <string.h>

G_DEFINE_QUARK(katavm - code - error - quark, kv_code_error)

/* ---- ids ---- */

gboolean kv_id_valid(const char *id, const char *what, GError **error) {
  what = what ? what : "id";
  if (!id || !*id) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "%s is empty", what);
    return FALSE;
  }
  size_t n = strlen(id);
  if (n > KV_ID_MAX) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "%s '%.20s...' is %zu characters long; the limit is %u", what, id, n, KV_ID_MAX);
    return FALSE;
  }
  if (strstr(id, "..")) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "%s '%s' contains '..'", what, id);
    return FALSE;
  }
  if (!g_ascii_isalnum(id[0])) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "%s '%s' must start with a letter or digit",
                what, id);
    return FALSE;
  }
  for (const char *p = id; *p; p++) {
    if (g_ascii_isalnum(*p) || *p == '_' || *p == '-' || *p == '.')
      continue;
    if (*p == '/')
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "%s '%s' contains '/'", what, id);
    else
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                  "%s contains character 0x%02x; allowed are letters, digits, '_', '-' and '.'",
                  what, (unsigned char)*p);
    return FALSE;
  }
  return TRUE;
}

/* ---- decoder ---- */

#define AT(m, off, T) ((T *)((guint8 *)(m) + (off)))
#define AT_C(m, off, T) (*(T const *)((const guint8 *)(m) + (off)))

static gboolean bad(GError **error, const char *where, const char *field, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);
static gboolean bad(GError **error, const char *where, const char *field, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "%s: %s%s%s", where, field,
              msg[0] == '[' ? "" : " ", msg);
  return FALSE;
}

static gboolean is_value(JsonNode *n, GType t) {
  return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == t;
}

static void range_of(const KvField *f, gint64 *lo, gint64 *hi) {
  if (f->min == 0 && f->max == 0) {
    *lo = f->type == KV_T_U32 ? 0 : G_MININT64;
    *hi = f->type == KV_T_U32 ? G_MAXUINT32 : G_MAXINT64;
  } else {
    *lo = f->min;
    *hi = f->max;
  }
}

static gboolean decode_fields(const KvMsgDesc *d, JsonObject *o, gpointer out, const char *where,
                              GError **error);

static void list_elem_free(gpointer p, gpointer desc) {
  kv_msg_clear(desc, p);
  g_free(p);
}

static void free_list(GPtrArray *a, const KvMsgDesc *sub) {
  if (!a)
    return;
  for (guint i = 0; i < a->len; i++)
    list_elem_free(a->pdata[i], (gpointer)sub);
  g_ptr_array_unref(a);
}

static gboolean decode_field(const KvField *f, JsonNode *n, gpointer out, const char *where,
                             GError **error) {
  gint64 lo, hi;
  switch (f->type) {
  case KV_T_BOOL:
    if (!n) {
      *AT(out, f->offset, gboolean) = f->def != 0;
      return TRUE;
    }
    if (!is_value(n, G_TYPE_BOOLEAN))
      return bad(error, where, f->name, "must be a boolean");
    *AT(out, f->offset, gboolean) = json_node_get_boolean(n);
    return TRUE;
  case KV_T_INT:
  case KV_T_U32: {
    gint64 v = f->def;
    if (n) {
      if (!is_value(n, G_TYPE_INT64))
        return bad(error, where, f->name, "must be an integer");
      v = json_node_get_int(n);
      range_of(f, &lo, &hi);
      if (v < lo || v > hi)
        return bad(error, where, f->name,
                   "is %" G_GINT64_FORMAT "; allowed are %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT,
                   v, lo, hi);
    }
    if (f->type == KV_T_U32)
      *AT(out, f->offset, guint32) = (guint32)v;
    else
      *AT(out, f->offset, gint64) = v;
    return TRUE;
  }
  case KV_T_STR:
  case KV_T_ID: {
    if (!n)
      return TRUE;
    if (!is_value(n, G_TYPE_STRING))
      return bad(error, where, f->name, "must be a string");
    const char *v = json_node_get_string(n);
    if ((f->flags & KV_F_NONEMPTY) && !*v)
      return bad(error, where, f->name, "must not be empty");
    if (f->max > 0 && strlen(v) > (gsize)f->max)
      return bad(error, where, f->name, "is longer than %" G_GINT64_FORMAT " bytes", f->max);
    if (f->type == KV_T_ID) {
      g_autoptr(GError) e = NULL;
      if (!kv_id_valid(v, f->name, &e)) {
        g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "%s: %s", where, e->message);
        return FALSE;
      }
    }
    *AT(out, f->offset, char *) = g_strdup(v);
    return TRUE;
  }
  case KV_T_STRV: {
    if (!n)
      return TRUE;
    if (!JSON_NODE_HOLDS_ARRAY(n))
      return bad(error, where, f->name, "must be an array of strings");
    JsonArray *a = json_node_get_array(n);
    guint len = json_array_get_length(a);
    if ((f->flags & KV_F_NONEMPTY) && len == 0)
      return bad(error, where, f->name, "must not be empty");
    char **v = g_new0(char *, len + 1);
    for (guint i = 0; i < len; i++) {
      JsonNode *el = json_array_get_element(a, i);
      if (!is_value(el, G_TYPE_STRING)) {
        g_strfreev(v);
        return bad(error, where, f->name, "[%u] must be a string", i);
      }
      if (f->max > 0 && strlen(json_node_get_string(el)) > (gsize)f->max) {
        g_strfreev(v);
        return bad(error, where, f->name, "[%u] is longer than %" G_GINT64_FORMAT " bytes", i,
                   f->max);
      }
      v[i] = g_strdup(json_node_get_string(el));
    }
    *AT(out, f->offset, char **) = v;
    return TRUE;
  }
  case KV_T_INTV: {
    if (!n)
      return TRUE;
    if (!JSON_NODE_HOLDS_ARRAY(n))
      return bad(error, where, f->name, "must be an array of integers");
    JsonArray *a = json_node_get_array(n);
    range_of(f, &lo, &hi);
    GArray *v = g_array_new(FALSE, FALSE, sizeof(gint64));
    for (guint i = 0; i < json_array_get_length(a); i++) {
      JsonNode *el = json_array_get_element(a, i);
      gint64 x = is_value(el, G_TYPE_INT64) ? json_node_get_int(el) : lo - 1;
      if (!is_value(el, G_TYPE_INT64) || x < lo || x > hi) {
        g_array_unref(v);
        return bad(error, where, f->name,
                   "[%u] must be an integer in %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT, i, lo, hi);
      }
      g_array_append_val(v, x);
    }
    *AT(out, f->offset, GArray *) = v;
    return TRUE;
  }
  case KV_T_OBJECT:
    if (!n)
      return TRUE;
    if (!JSON_NODE_HOLDS_OBJECT(n))
      return bad(error, where, f->name, "must be an object");
    *AT(out, f->offset, JsonObject *) = json_object_ref(json_node_get_object(n));
    return TRUE;
  case KV_T_STRUCT: {
    if (n && !JSON_NODE_HOLDS_OBJECT(n))
      return bad(error, where, f->name, "must be an object");
    g_autofree char *w = g_strdup_printf("%s: %s", where, f->name);
    return decode_fields(f->sub, n ? json_node_get_object(n) : NULL, AT(out, f->offset, guint8), w,
                         error);
  }
  case KV_T_LIST: {
    if (!n)
      return TRUE;
    if (!JSON_NODE_HOLDS_ARRAY(n))
      return bad(error, where, f->name, "must be an array of objects");
    JsonArray *a = json_node_get_array(n);
    if (f->max > 0 && json_array_get_length(a) > (guint64)f->max)
      return bad(error, where, f->name,
                 "has %u elements, more than the %" G_GINT64_FORMAT " allowed",
                 json_array_get_length(a), f->max);
    GPtrArray *v = g_ptr_array_new();
    for (guint i = 0; i < json_array_get_length(a); i++) {
      JsonNode *el = json_array_get_element(a, i);
      if (!JSON_NODE_HOLDS_OBJECT(el)) {
        free_list(v, f->sub);
        return bad(error, where, f->name, "[%u] must be an object", i);
      }
      gpointer m = g_malloc0(f->sub->size);
      g_autofree char *w = g_strdup_printf("%s: %s[%u]", where, f->name, i);
      if (!decode_fields(f->sub, json_node_get_object(el), m, w, error)) {
        list_elem_free(m, (gpointer)f->sub); /* what it decoded before the bad field */
        free_list(v, f->sub);
        return FALSE;
      }
      g_ptr_array_add(v, m);
    }
    *AT(out, f->offset, GPtrArray *) = v;
    return TRUE;
  }
  }
  return bad(error, where, f->name, "has an unknown type in the contract");
}

static gboolean decode_fields(const KvMsgDesc *d, JsonObject *o, gpointer out, const char *where,
                              GError **error) {
  for (const KvField *f = d->fields; f->name; f++) {
    JsonNode *n = o ? json_object_get_member(o, f->name) : NULL;
    /* null counts as absent, as in JSON-RPC and protobuf's JSON mapping. */
    if (n && JSON_NODE_HOLDS_NULL(n))
      n = NULL;
    if (!n && (f->flags & KV_F_REQUIRED))
      return bad(error, where, f->name, "is missing");
    if (!decode_field(f, n, out, where, error))
      return FALSE;
  }
  return TRUE;
}

gboolean kv_msg_decode_as(const KvMsgDesc *d, JsonObject *o, gpointer out, const char *where,
                          GError **error) {
  memset(out, 0, d->size);
  if (!decode_fields(d, o, out, where, error)) {
    kv_msg_clear(d, out);
    return FALSE;
  }
  return TRUE;
}

gboolean kv_msg_decode(const KvMsgDesc *d, JsonObject *o, gpointer out, GError **error) {
  return kv_msg_decode_as(d, o, out, d->name, error);
}

void kv_msg_clear(const KvMsgDesc *d, gpointer m) {
  if (!m)
    return;
  for (const KvField *f = d->fields; f->name; f++) {
    switch (f->type) {
    case KV_T_STR:
    case KV_T_ID:
      g_clear_pointer(AT(m, f->offset, char *), g_free);
      break;
    case KV_T_STRV:
      g_clear_pointer(AT(m, f->offset, char **), g_strfreev);
      break;
    case KV_T_INTV:
      g_clear_pointer(AT(m, f->offset, GArray *), g_array_unref);
      break;
    case KV_T_OBJECT:
      g_clear_pointer(AT(m, f->offset, JsonObject *), json_object_unref);
      break;
    case KV_T_STRUCT:
      kv_msg_clear(f->sub, AT(m, f->offset, guint8));
      break;
    case KV_T_LIST:
      free_list(*AT(m, f->offset, GPtrArray *), f->sub);
      *AT(m, f->offset, GPtrArray *) = NULL;
      break;
    default:
      break;
    }
  }
  memset(m, 0, d->size);
}

/* ---- encoder ---- */

static void encode_into(const KvMsgDesc *d, gconstpointer in, JsonObject *o) {
  for (const KvField *f = d->fields; f->name; f++) {
    switch (f->type) {
    case KV_T_BOOL:
      if (!(f->flags & KV_F_OMIT) || AT_C(in, f->offset, gboolean) != (f->def != 0))
        json_object_set_boolean_member(o, f->name, AT_C(in, f->offset, gboolean));
      break;
    case KV_T_INT:
      if (!(f->flags & KV_F_OMIT) || AT_C(in, f->offset, gint64) != f->def)
        json_object_set_int_member(o, f->name, AT_C(in, f->offset, gint64));
      break;
    case KV_T_U32:
      if (!(f->flags & KV_F_OMIT) || AT_C(in, f->offset, guint32) != f->def)
        json_object_set_int_member(o, f->name, AT_C(in, f->offset, guint32));
      break;
    case KV_T_STR:
    case KV_T_ID: {
      const char *v = AT_C(in, f->offset, char *);
      if (v)
        json_object_set_string_member(o, f->name, v);
      break;
    }
    case KV_T_STRV: {
      char *const *v = AT_C(in, f->offset, char **);
      if (!v)
        break;
      JsonArray *a = json_array_new();
      for (; *v; v++)
        json_array_add_string_element(a, *v);
      json_object_set_array_member(o, f->name, a);
      break;
    }
    case KV_T_INTV: {
      GArray *v = AT_C(in, f->offset, GArray *);
      if (!v)
        break;
      JsonArray *a = json_array_new();
      for (guint i = 0; i < v->len; i++)
        json_array_add_int_element(a, g_array_index(v, gint64, i));
      json_object_set_array_member(o, f->name, a);
      break;
    }
    case KV_T_OBJECT: {
      JsonObject *v = AT_C(in, f->offset, JsonObject *);
      if (v)
        json_object_set_object_member(o, f->name, json_object_ref(v));
      break;
    }
    case KV_T_STRUCT: {
      JsonObject *sub = json_object_new();
      encode_into(f->sub, (const guint8 *)in + f->offset, sub);
      json_object_set_object_member(o, f->name, sub);
      break;
    }
    case KV_T_LIST: {
      GPtrArray *v = AT_C(in, f->offset, GPtrArray *);
      if (!v)
        break;
      JsonArray *a = json_array_new();
      for (guint i = 0; i < v->len; i++) {
        JsonObject *el = json_object_new();
        encode_into(f->sub, v->pdata[i], el);
        json_array_add_object_element(a, el);
      }
      json_object_set_array_member(o, f->name, a);
      break;
    }
    }
  }
}

JsonObject *kv_msg_encode(const KvMsgDesc *d, gconstpointer in) {
  JsonObject *o = json_object_new();
  if (in)
    encode_into(d, in, o);
  return o;
}
