/* agent/log.h: logging for the guest agent.
 *
 * The agent is quiet: errors go to the kernel log (/dev/kmsg), which with
 * "quiet loglevel=0" stays off the serial console but shows in dmesg; fatal
 * errors also go to the console so that a VM that powers itself off says
 * why. KATAVM_DEBUG=1 in the environment (a kernel cmdline word, passed to
 * init) adds timestamped progress lines on the console.
 */
#pragma once

#include <glib.h>

#define AGENT_LOG_NAME "katavm-agent"

/* pid1: whether we run as the VM's init (mounts, modules, power-off). */
void agent_log_init(gboolean pid1, gboolean debug);
/* Once /dev is mounted: route errors to the kernel log. */
void agent_log_open_kmsg(void);
/* Make sure fds 0-2 are open, so that nothing we open later lands on them
 * and gets written to by stray stdio. */
void agent_log_fix_stdio(void);

gboolean agent_is_pid1(void);
gboolean agent_debug_enabled(void);

void agent_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void agent_debug(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* An error to kmsg and the console, whatever the debug setting: the last
 * words of agent_fatal() (power.h). */
void agent_log_fatal(const char *fmt, va_list ap) G_GNUC_PRINTF(1, 0);
