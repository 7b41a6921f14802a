/* lib/vmm/vmm-internal.h: what the files of lib/vmm share beyond vmm.h
 * (they alone include libvirt). */
#pragma once

#include <libvirt/libvirt.h>

#include "vmm.h"

/* The libvirt connection of an open KvVmm. */
virConnectPtr kv_vmm_conn(KvVmm *vmm);
