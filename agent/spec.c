/* agent/spec.c: leftover JSON helpers (see spec.h). */
#include "spec.h"
#include "msg.h"

#include <linux/capability.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>

/* ---- JSON access with errors that name the field ---- */

/* A member that is absent or JSON null counts as absent. */
static JsonNode *member(JsonObject *o, const char *name) {
  JsonNode *n = o != NULL ? json_object_get_member(o, name) : NULL;
  return n != NULL && !JSON_NODE_HOLDS_NULL(n) ? n : NULL;
}

static gboolean invalid(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static gboolean invalid(GError **error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, KV_ERROR_DOMAIN, KV_E_INVALID, msg);
  return FALSE;
}

static gboolean node_is(JsonNode *n, GType t) {
  return n != NULL && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == t;
}

/* Integers above G_MAXINT64 (RLIM_INFINITY written out as
 * 18446744073709551615) reach us as doubles. */
static gboolean node_to_int(JsonNode *n, gint64 *i, guint64 *u, gboolean *is_unsigned) {
  if (node_is(n, G_TYPE_INT64)) {
    *i = json_node_get_int(n);
    *is_unsigned = FALSE;
    return TRUE;
  }
  if (node_is(n, G_TYPE_DOUBLE)) {
    double d = json_node_get_double(n);
    if (d >= 9223372036854775808.0 && d <= 18446744073709551616.0) {
      *u = d >= 18446744073709551615.0 ? G_MAXUINT64 : (guint64)d;
      *is_unsigned = TRUE;
      return TRUE;
    }
  }
  return FALSE;
}

static gboolean get_int(JsonObject *o, const char *name, const char *path, gint64 min, gint64 max,
                        gboolean required, gint64 *out, GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL) {
    if (required)
      return invalid(error, "%s.%s is required", path, name);
    return TRUE;
  }
  gint64 i = 0;
  guint64 u = 0;
  gboolean uns = FALSE;
  if (!node_to_int(n, &i, &u, &uns) || uns || i < min || i > max)
    return invalid(error, "%s.%s must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                   path, name, min, max);
  *out = i;
  return TRUE;
}

static gboolean get_bool(JsonObject *o, const char *name, const char *path, gboolean *out,
                         GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL)
    return TRUE;
  if (!node_is(n, G_TYPE_BOOLEAN))
    return invalid(error, "%s.%s must be a boolean", path, name);
  *out = json_node_get_boolean(n);
  return TRUE;
}

/* Strings must be valid UTF-8 without NUL (json-glib guarantees both) and
 * non-empty when `nonempty`. */
static gboolean get_string(JsonObject *o, const char *name, const char *path, gboolean required,
                           const char **out, GError **error) {
  JsonNode *n = member(o, name);
  if (n == NULL) {
    if (required)
      return invalid(error, "%s.%s is required", path, name);
    *out = NULL;
    return TRUE;
  }
  if (!node_is(n, G_TYPE_STRING))
    return invalid(error, "%s.%s must be a string", path, name);
  *out = json_node_get_string(n);
  return TRUE;
}

/* ---- shared helpers ---- */

gboolean agent_json_get_u32(JsonObject *o, const char *name, const char *what, guint32 *out,
                            GError **error) {
  gint64 v = 0;
  if (!get_int(o, name, what, 0, G_MAXUINT32, FALSE, &v, error))
    return FALSE;
  *out = (guint32)v;
  return TRUE;
}

const char *agent_json_get_id(JsonObject *o, const char *name, GError **error) {
  const char *id = NULL;
  if (!get_string(o, name, "params", TRUE, &id, error))
    return NULL;
  gsize len = strlen(id);
  gboolean ok = len > 0 && len <= 64 && id[0] != '.' && id[0] != '-';
  for (const char *p = id; ok && *p != '\0'; p++)
    ok = g_ascii_isalnum(*p) || *p == '_' || *p == '.' || *p == '-';
  if (!ok) {
    invalid(error,
            "params.%s \"%s\" is not a valid id (1-64 letters, digits, "
            "'_', '.', '-', not starting with '.' or '-')",
            name, id);
    return NULL;
  }
  return id;
}

gboolean agent_json_get_opt_string(JsonObject *o, const char *name, const char **out,
                                   GError **error) {
  return get_string(o, name, "params", FALSE, out, error);
}

gboolean agent_json_get_opt_bool(JsonObject *o, const char *name, gboolean *out, GError **error) {
  return get_bool(o, name, "params", out, error);
}

gboolean agent_json_get_int(JsonObject *o, const char *name, gint64 min, gint64 max,
                            gboolean required, gint64 *out, GError **error) {
  return get_int(o, name, "params", min, max, required, out, error);
}
