/* lib/vmm/devxml.h: the device XML that hotplug hands to libvirt, written
 * by xml.c with the escaping builder. The values are the caller's, checked
 * by the hotplug entry points before (validate.h); these functions only
 * write them. NULL with *error set if the builder fails. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A virtio NIC on the existing tap `tap` (not managed by libvirt); mtu 0 =
 * the default. */
char *kv_nic_xml(const char *tap, const char *mac, guint mtu, GError **error);
/* A virtio NIC with user-mode networking (kv_vmm_attach_user_nic). */
char *kv_user_nic_xml(const char *mac, GError **error);
/* A raw virtio disk: a block device (`block`) or an image file at `path`,
 * with QEMU cache mode `cache`, libvirt target `target` and the serial the
 * guest sees. */
char *kv_disk_xml(const char *path, gboolean block, const char *cache, const char *target,
                  const char *serial, gboolean readonly, GError **error);
/* An ACPI DIMM of size_mib on NUMA node 0, named by the user alias `alias`. */
char *kv_dimm_xml(guint size_mib, const char *alias, GError **error);

G_END_DECLS
