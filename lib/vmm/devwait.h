/* lib/vmm/devwait.h: detaching a hot-plugged device synchronously. */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

G_BEGIN_DECLS

/* Detach the device `alias` of the running domain dom (`what` names it in
 * messages, e.g. "NIC with MAC ...") and wait until it is gone. Fails with
 * KV_VMM_ERROR_LIBVIRT when libvirt refuses or the guest refuses to
 * release it, KV_VMM_ERROR_NOT_FOUND when the domain stops meanwhile and
 * KV_VMM_ERROR_TIMEOUT when the guest has not released it in time. */
gboolean kv_detach_and_wait(virDomainPtr dom, const char *alias, const char *what, GError **error);

G_END_DECLS
