/* lib/vmm/vmm-internal.h: what the files of lib/vmm share beyond vmm.h
 * (they alone include libvirt). */
#pragma once

#include <libvirt/libvirt.h>

#include "vmm.h"

/* The libvirt connection of an open KvVmm. */
virConnectPtr kv_vmm_conn(KvVmm *vmm);
/* The thread-local last libvirt error as a GError "<what>: <libvirt's
 * message>". Call right after the failed call: later calls reset it. */
void kv_vmm_set_libvirt_error(GError **error, KvVmmError code, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
