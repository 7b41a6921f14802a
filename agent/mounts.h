/* agent/mounts.h: the guest's filesystems: the API filesystems PID 1 needs
 * (proc, sys, dev, ...) and the host share (virtio-fs, or virtio-9p).
 */
#pragma once

#include <glib.h>

/* Tag (virtio-fs or 9p) the host exports its shared directory under, and where it goes. */
#define AGENT_SHARED_TAG "katavmshared"
#define AGENT_SHARED_DIR "/run/katavm/shared"

/* Mounts proc, sysfs, devtmpfs, devpts, /dev/shm, /run, /tmp and cgroup2.
 * Fails only when proc, sysfs or /dev cannot be mounted (nothing works
 * without them); the rest are logged and skipped. */
gboolean agent_mounts_setup(GError **error);

/* Mounts the share AGENT_SHARED_TAG (virtio-fs when a virtio-fs device is
 * bound, else 9p) at AGENT_SHARED_DIR. Returns 1 when
 * mounted, 0 when the VM has no such share (not an error), -1 on error. */
int agent_mount_shared(GError **error);
