/* agent/boot.h: bringing the guest up as PID 1.
 *
 * Early (before the channel): API filesystems, kernel log, the modules of
 * the agent channel. Late (in a thread, once the channel is open, so the
 * first byte to the host is not held up by them): the other modules and
 * the 9p share.
 */
#pragma once

#include <glib.h>

typedef void (*AgentBootFunc)(gpointer user);

/* Fails only when the VM cannot work at all (no /proc, /sys or /dev). */
gboolean agent_boot_early(GError **error);
/* Starts the late steps; returns at once. Safe to call more than once. */
void agent_boot_late_start(void);
/* Runs func on the main loop once the late steps are done (at once when
 * they are): whatever needs the share, a NIC or a disk waits on this. */
void agent_boot_when_late_done(AgentBootFunc func, gpointer user);
/* Whether the late steps are done (the check result says it). */
gboolean agent_boot_late_done(void);
/* After the late steps: whether the host share is at AGENT_SHARED_DIR. */
gboolean agent_boot_shared_mounted(void);
