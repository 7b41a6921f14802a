/* lib/vmm/livexml.h: reading a running domain's live XML.
 *
 * State that hotplug needs (taken disk targets, the alias a MAC or serial
 * belongs to, virtio-mem sizes) is read from libvirt's live XML each time
 * rather than remembered, so that a process that reconnects to a running
 * VM sees what the one that started it sees. The XML is small and
 * well-formed: GMarkup parses it into this minimal DOM. */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

#include "xmlbuild.h"

G_BEGIN_DECLS

typedef struct KvXNode KvXNode;
struct KvXNode {
  char *name;
  char **attr_names;
  char **attr_values;
  GString *text;
  GPtrArray *children; /* KvXNode*, owned */
  KvXNode *parent;
};

void kv_xnode_free(KvXNode *n);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvXNode, kv_xnode_free)

/* A synthetic root whose one child is the document element; NULL with
 * KV_VMM_ERROR_LIBVIRT when the XML does not parse. */
KvXNode *kv_xnode_parse(const char *xml, GError **error);

/* The lookups are NULL-safe in `n`, so that they chain:
 * kv_xnode_child(kv_xnode_child(dev, "target"), "size"). */
const char *kv_xnode_attr(const KvXNode *n, const char *attr);
/* First child element called `name`, or NULL. */
KvXNode *kv_xnode_child(const KvXNode *n, const char *name);
/* Attribute `attr` of child `child`, e.g. <mac address=...>. */
const char *kv_xnode_child_attr(const KvXNode *n, const char *child, const char *attr);
/* Element text without surrounding white space (caller frees). */
char *kv_xnode_text(const KvXNode *n);
/* A libvirt size element (<size unit='KiB'>N</size>) in KiB; FALSE for a
 * missing element or a unit we do not know. */
gboolean kv_xnode_size_kib(const KvXNode *n, guint64 *kib);

/* Change an element before writing it back. */
void kv_xnode_set_text(KvXNode *n, const char *text);
void kv_xnode_set_attr(KvXNode *n, const char *attr, const char *value);
/* Write n and its subtree: children, or the text of a leaf. */
void kv_xnode_write(KvXml *x, const KvXNode *n);

/* The live XML of dom, parsed (free with kv_xnode_free); *devices is its
 * <devices> element (the tree owns it). */
KvXNode *kv_live_devices(virDomainPtr dom, KvXNode **devices, GError **error);
/* The device among `devices` whose <alias name> is `alias`, of element
 * `element` (NULL = any), or NULL. */
KvXNode *kv_live_find_alias(KvXNode *devices, const char *element, const char *alias);

G_END_DECLS
