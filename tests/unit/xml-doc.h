/* tests/unit/xml-doc.h: a flat view of an XML document for assertions in
 * the vmm unit tests (domain XML as libvirt renders it back). Header-only:
 * each test is its own executable. */
#pragma once

#include <glib.h>
#include <string.h>

/* Element text and attributes of a parsed document, keyed "elem" (text)
 * and "elem@attr", each with every value seen, in document order. */
typedef struct {
  GHashTable *values; /* char* -> GPtrArray of char* */
  GPtrArray *stack;   /* element names */
} Doc;

static G_GNUC_UNUSED void doc_add(Doc *d, const char *key, const char *value) {
  GPtrArray *a = g_hash_table_lookup(d->values, key);
  if (!a) {
    a = g_ptr_array_new_with_free_func(g_free);
    g_hash_table_insert(d->values, g_strdup(key), a);
  }
  g_ptr_array_add(a, g_strdup(value));
}

static G_GNUC_UNUSED void doc_start(GMarkupParseContext *ctx, const char *name, const char **attrs,
                                    const char **vals, gpointer user, GError **error) {
  Doc *d = user;
  g_ptr_array_add(d->stack, g_strdup(name));
  for (int i = 0; attrs[i]; i++) {
    g_autofree char *key = g_strdup_printf("%s@%s", name, attrs[i]);
    doc_add(d, key, vals[i]);
  }
}

static G_GNUC_UNUSED void doc_end(GMarkupParseContext *ctx, const char *name, gpointer user,
                                  GError **error) {
  Doc *d = user;
  g_ptr_array_remove_index(d->stack, d->stack->len - 1);
}

static G_GNUC_UNUSED void doc_text(GMarkupParseContext *ctx, const char *text, gsize len,
                                   gpointer user, GError **error) {
  Doc *d = user;
  g_autofree char *t = g_strndup(text, len);
  if (d->stack->len && *g_strstrip(t))
    doc_add(d, g_ptr_array_index(d->stack, d->stack->len - 1), t);
}

/* Parse `xml` (failing the test if it is not well-formed). */
static G_GNUC_UNUSED GHashTable *parse_doc(const char *xml) {
  static G_GNUC_UNUSED const GMarkupParser p = {doc_start, doc_end, doc_text, NULL, NULL};
  Doc d = {
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref),
      g_ptr_array_new_with_free_func(g_free),
  };
  g_autoptr(GError) err = NULL;
  GMarkupParseContext *ctx = g_markup_parse_context_new(&p, 0, &d, NULL);
  gboolean ok = g_markup_parse_context_parse(ctx, xml, -1, &err) &&
                g_markup_parse_context_end_parse(ctx, &err);
  g_markup_parse_context_free(ctx);
  g_ptr_array_unref(d.stack);
  ck_assert_msg(ok, "XML does not parse: %s\n%s", err ? err->message : "", xml);
  return d.values;
}

/* The i-th value of key, or NULL. */
static G_GNUC_UNUSED const char *doc_get(GHashTable *doc, const char *key, guint i) {
  GPtrArray *a = g_hash_table_lookup(doc, key);
  return a && i < a->len ? g_ptr_array_index(a, i) : NULL;
}

static G_GNUC_UNUSED gboolean doc_has(GHashTable *doc, const char *key, const char *value) {
  GPtrArray *a = g_hash_table_lookup(doc, key);
  for (guint i = 0; a && i < a->len; i++)
    if (g_str_equal(g_ptr_array_index(a, i), value))
      return TRUE;
  return FALSE;
}

static G_GNUC_UNUSED guint doc_count(GHashTable *doc, const char *key, const char *value) {
  GPtrArray *a = g_hash_table_lookup(doc, key);
  guint n = 0;
  for (guint i = 0; a && i < a->len; i++)
    n += g_str_equal(g_ptr_array_index(a, i), value);
  return n;
}
