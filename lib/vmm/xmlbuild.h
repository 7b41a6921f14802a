/* lib/vmm/xmlbuild.h: the one way lib/vmm writes XML (domain XML, device
 * XML for hotplug, live elements written back). Every attribute value and
 * every text is escaped here, so no caller value can change a document's
 * structure. Output is indented by two spaces per level, one element per
 * line, attributes in single quotes.
 *
 * Element and attribute names are never caller data: they are literals of
 * lib/vmm or names GMarkup has parsed. A name that is not a plain XML name
 * breaks the builder and kv_xml_finish fails. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct KvXml KvXml;

KvXml *kv_xml_new(void);
void kv_xml_free(KvXml *x);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvXml, kv_xml_free)

/* Open element `name`, with attribute name/value pairs up to a NULL name
 * (a NULL value leaves that attribute out). */
void kv_xml_open(KvXml *x, const char *name, ...) G_GNUC_NULL_TERMINATED;
/* One more attribute of the element just opened (before its content). */
void kv_xml_attr(KvXml *x, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Text content of the innermost open element. */
void kv_xml_text(KvXml *x, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Close the innermost open element: <a/> when it is empty. */
void kv_xml_close(KvXml *x);

/* <name attrs.../> */
void kv_xml_empty(KvXml *x, const char *name, ...) G_GNUC_NULL_TERMINATED;
/* <name>text</name> */
void kv_xml_leaf(KvXml *x, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* The document (caller frees), or NULL with KV_VMM_ERROR_INVALID when an
 * element is still open or a name was invalid. Frees x either way. */
char *kv_xml_finish(KvXml *x, GError **error);

G_END_DECLS
