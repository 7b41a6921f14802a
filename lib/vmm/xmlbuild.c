/* lib/vmm/xmlbuild.c: an escaping XML writer on a GString. */
#include "xmlbuild.h"

#include <stdarg.h>

#include "vmm.h"

typedef enum {
  OPEN_TAG, /* "<name attrs" written, not yet ">" */
  TEXT,     /* text written */
  CHILDREN, /* child elements written */
} State;

typedef struct {
  char *name;
  State state;
} Open;

struct KvXml {
  GString *out;
  GArray *stack; /* Open */
  char *broken;  /* why the document cannot be finished, or NULL */
};

KvXml *kv_xml_new(void) {
  KvXml *x = g_new0(KvXml, 1);
  x->out = g_string_new(NULL);
  x->stack = g_array_new(FALSE, FALSE, sizeof(Open));
  return x;
}

void kv_xml_free(KvXml *x) {
  if (!x)
    return;
  for (guint i = 0; i < x->stack->len; i++)
    g_free(g_array_index(x->stack, Open, i).name);
  g_array_unref(x->stack);
  if (x->out)
    g_string_free(x->out, TRUE);
  g_free(x->broken);
  g_free(x);
}

static void set_broken(KvXml *x, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void set_broken(KvXml *x, const char *fmt, ...) {
  if (x->broken)
    return;
  va_list ap;
  va_start(ap, fmt);
  x->broken = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_critical("XML builder: %s", x->broken);
}

/* ASCII name characters, and any non-ASCII byte: GMarkup accepts non-ASCII
 * names in parsed XML and they cannot break markup. */
static gboolean name_ok(const char *name) {
  if (!name || !*name || g_ascii_isdigit(*name) || *name == '-' || *name == '.')
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!((guchar)*p >= 0x80 || g_ascii_isalnum(*p) || *p == '_' || *p == '-' || *p == '.' ||
          *p == ':'))
      return FALSE;
  return TRUE;
}

static Open *top(KvXml *x) {
  return x->stack->len ? &g_array_index(x->stack, Open, x->stack->len - 1) : NULL;
}

static void indent(KvXml *x) {
  for (guint i = 0; i < x->stack->len; i++)
    g_string_append(x->out, "  ");
}

static void append_escaped(GString *out, const char *s) {
  g_autofree char *e = g_markup_escape_text(s, -1);
  g_string_append(out, e);
}

static void add_attr(KvXml *x, const char *name, const char *value) {
  Open *o = top(x);
  if (!o || o->state != OPEN_TAG) {
    set_broken(x, "attribute '%s' after the element's content", name);
    return;
  }
  if (!name_ok(name)) {
    set_broken(x, "invalid attribute name '%s'", name);
    return;
  }
  g_string_append_printf(x->out, " %s='", name);
  append_escaped(x->out, value);
  g_string_append_c(x->out, '\'');
}

static void open_va(KvXml *x, const char *name, va_list ap) {
  if (x->broken)
    return;
  if (!name_ok(name)) {
    set_broken(x, "invalid element name '%s'", name ? name : "(null)");
    return;
  }
  Open *parent = top(x);
  if (parent && parent->state == OPEN_TAG)
    g_string_append(x->out, ">\n");
  if (parent)
    parent->state = CHILDREN;
  indent(x);
  g_string_append_printf(x->out, "<%s", name);
  Open o = {g_strdup(name), OPEN_TAG};
  g_array_append_val(x->stack, o);
  const char *attr;
  while ((attr = va_arg(ap, const char *))) {
    const char *value = va_arg(ap, const char *);
    if (value)
      add_attr(x, attr, value);
  }
}

void kv_xml_open(KvXml *x, const char *name, ...) {
  va_list ap;
  va_start(ap, name);
  open_va(x, name, ap);
  va_end(ap);
}

void kv_xml_attr(KvXml *x, const char *name, const char *fmt, ...) {
  if (x->broken)
    return;
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *value = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  add_attr(x, name, value);
}

static void text_va(KvXml *x, const char *fmt, va_list ap) {
  if (x->broken)
    return;
  Open *o = top(x);
  if (!o || o->state == CHILDREN) {
    set_broken(x, "text outside an element or after child elements");
    return;
  }
  if (o->state == OPEN_TAG)
    g_string_append_c(x->out, '>');
  o->state = TEXT;
  g_autofree char *text = g_strdup_vprintf(fmt, ap);
  append_escaped(x->out, text);
}

void kv_xml_text(KvXml *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  text_va(x, fmt, ap);
  va_end(ap);
}

void kv_xml_close(KvXml *x) {
  if (x->broken)
    return;
  if (!x->stack->len) {
    set_broken(x, "close without an open element");
    return;
  }
  Open o = *top(x);
  g_array_set_size(x->stack, x->stack->len - 1);
  if (o.state == OPEN_TAG) {
    g_string_append(x->out, "/>\n");
  } else {
    if (o.state == CHILDREN)
      indent(x);
    g_string_append_printf(x->out, "</%s>\n", o.name);
  }
  g_free(o.name);
}

void kv_xml_empty(KvXml *x, const char *name, ...) {
  va_list ap;
  va_start(ap, name);
  open_va(x, name, ap);
  va_end(ap);
  kv_xml_close(x);
}

void kv_xml_leaf(KvXml *x, const char *name, const char *fmt, ...) {
  kv_xml_open(x, name, NULL);
  va_list ap;
  va_start(ap, fmt);
  text_va(x, fmt, ap);
  va_end(ap);
  kv_xml_close(x);
}

char *kv_xml_finish(KvXml *x, GError **error) {
  if (!x->broken && x->stack->len)
    x->broken = g_strdup_printf("element '%s' is not closed", top(x)->name);
  if (x->broken) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "cannot build XML: %s", x->broken);
    kv_xml_free(x);
    return NULL;
  }
  char *doc = g_string_free(g_steal_pointer(&x->out), FALSE);
  kv_xml_free(x);
  return doc;
}
