/* lib/vmm/livexml.c: the live domain XML as a minimal DOM, so that devices
 * can be found by their children (a NIC by <mac>, a disk by <serial>) and
 * the virtio-mem element can be written back with one child changed. */
#include "livexml.h"

#include <stdlib.h>

#include "vmm-internal.h"

void kv_xnode_free(KvXNode *n) {
  if (!n)
    return;
  g_free(n->name);
  g_strfreev(n->attr_names);
  g_strfreev(n->attr_values);
  g_string_free(n->text, TRUE);
  g_ptr_array_unref(n->children);
  g_free(n);
}

static KvXNode *xnode_new(const char *name, KvXNode *parent) {
  KvXNode *n = g_new0(KvXNode, 1);
  n->name = g_strdup(name);
  n->text = g_string_new(NULL);
  n->children = g_ptr_array_new_with_free_func((GDestroyNotify)kv_xnode_free);
  n->parent = parent;
  if (parent)
    g_ptr_array_add(parent->children, n);
  return n;
}

static void xml_start(GMarkupParseContext *ctx, const char *name, const char **attrs,
                      const char **vals, gpointer user, GError **error) {
  KvXNode **cur = user;
  KvXNode *n = xnode_new(name, *cur);
  n->attr_names = g_strdupv((char **)attrs);
  n->attr_values = g_strdupv((char **)vals);
  *cur = n;
}

static void xml_end(GMarkupParseContext *ctx, const char *name, gpointer user, GError **error) {
  KvXNode **cur = user;
  *cur = (*cur)->parent;
}

static void xml_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer user,
                     GError **error) {
  KvXNode **cur = user;
  g_string_append_len((*cur)->text, text, len);
}

KvXNode *kv_xnode_parse(const char *xml, GError **error) {
  static const GMarkupParser parser = {xml_start, xml_end, xml_text, NULL, NULL};
  g_autoptr(KvXNode) root = xnode_new("", NULL);
  KvXNode *cur = root;
  g_autoptr(GError) local = NULL;
  GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &cur, NULL);
  gboolean ok = g_markup_parse_context_parse(ctx, xml, -1, &local) &&
                g_markup_parse_context_end_parse(ctx, &local);
  g_markup_parse_context_free(ctx);
  if (!ok) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT, "cannot parse libvirt's domain XML: %s",
                local->message);
    return NULL;
  }
  return g_steal_pointer(&root);
}

const char *kv_xnode_attr(const KvXNode *n, const char *attr) {
  for (guint i = 0; n && n->attr_names && n->attr_names[i]; i++)
    if (g_str_equal(n->attr_names[i], attr))
      return n->attr_values[i];
  return NULL;
}

KvXNode *kv_xnode_child(const KvXNode *n, const char *name) {
  for (guint i = 0; n && i < n->children->len; i++) {
    KvXNode *c = g_ptr_array_index(n->children, i);
    if (g_str_equal(c->name, name))
      return c;
  }
  return NULL;
}

const char *kv_xnode_child_attr(const KvXNode *n, const char *child, const char *attr) {
  return kv_xnode_attr(kv_xnode_child(n, child), attr);
}

char *kv_xnode_text(const KvXNode *n) {
  return n ? g_strstrip(g_strdup(n->text->str)) : NULL;
}

/* libvirt writes KiB itself; the other units are here for XML that was
 * written by hand. */
gboolean kv_xnode_size_kib(const KvXNode *n, guint64 *kib) {
  static const struct {
    const char *unit;
    guint64 mul, div;
  } units[] = {
      {"b", 1, 1024},        {"bytes", 1, 1024},      {"k", 1, 1},      {"KiB", 1, 1},
      {"KB", 1000, 1024},    {"M", 1024, 1},          {"MiB", 1024, 1}, {"MB", 1000000, 1024},
      {"G", 1024 * 1024, 1}, {"GiB", 1024 * 1024, 1},
  };
  g_autofree char *text = kv_xnode_text(n);
  guint64 v;
  if (!text || !g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT64 / 1048576, &v, NULL))
    return FALSE;
  const char *unit = kv_xnode_attr(n, "unit");
  if (!unit)
    unit = "KiB";
  for (gsize i = 0; i < G_N_ELEMENTS(units); i++) {
    if (g_str_equal(units[i].unit, unit)) {
      *kib = v * units[i].mul / units[i].div;
      return TRUE;
    }
  }
  return FALSE;
}

void kv_xnode_set_text(KvXNode *n, const char *text) {
  g_string_assign(n->text, text);
}

void kv_xnode_set_attr(KvXNode *n, const char *attr, const char *value) {
  guint len = n->attr_names ? g_strv_length(n->attr_names) : 0;
  for (guint i = 0; i < len; i++) {
    if (g_str_equal(n->attr_names[i], attr)) {
      g_free(n->attr_values[i]);
      n->attr_values[i] = g_strdup(value);
      return;
    }
  }
  n->attr_names = g_renew(char *, n->attr_names, len + 2);
  n->attr_values = g_renew(char *, n->attr_values, len + 2);
  n->attr_names[len] = g_strdup(attr);
  n->attr_values[len] = g_strdup(value);
  n->attr_names[len + 1] = n->attr_values[len + 1] = NULL;
}

/* The white space between child elements is layout and is left out; the
 * builder indents anew. */
void kv_xnode_write(KvXml *x, const KvXNode *n) {
  kv_xml_open(x, n->name, NULL);
  for (guint i = 0; n->attr_names && n->attr_names[i]; i++)
    kv_xml_attr(x, n->attr_names[i], "%s", n->attr_values[i]);
  if (n->children->len == 0 && n->text->len)
    kv_xml_text(x, "%s", n->text->str);
  for (guint i = 0; i < n->children->len; i++)
    kv_xnode_write(x, g_ptr_array_index(n->children, i));
  kv_xml_close(x);
}

KvXNode *kv_live_devices(virDomainPtr dom, KvXNode **devices, GError **error) {
  char *xml = virDomainGetXMLDesc(dom, 0);
  if (!xml) {
    kv_vmm_set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot read the live XML of domain '%s'",
                             virDomainGetName(dom));
    return NULL;
  }
  KvXNode *root = kv_xnode_parse(xml, error);
  free(xml);
  if (!root)
    return NULL;
  *devices = kv_xnode_child(kv_xnode_child(root, "domain"), "devices");
  if (!*devices) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                "live XML of domain '%s' has no <devices>", virDomainGetName(dom));
    kv_xnode_free(root);
    return NULL;
  }
  return root;
}

KvXNode *kv_live_find_alias(KvXNode *devices, const char *element, const char *alias) {
  for (guint i = 0; i < devices->children->len; i++) {
    KvXNode *d = g_ptr_array_index(devices->children, i);
    const char *a = kv_xnode_child_attr(d, "alias", "name");
    if ((!element || g_str_equal(d->name, element)) && a && g_str_equal(a, alias))
      return d;
  }
  return NULL;
}
