/* agent/power.h: ending the VM. As PID 1 the agent must never exit (that
 * panics the kernel); it syncs and powers the VM off instead. Outside a VM
 * (test mode) the same requests just end the process.
 */
#pragma once

#include <glib.h>

G_NORETURN void agent_poweroff(void);
/* Logs to kmsg and the console, then powers the VM off (PID 1) or exits. */
G_NORETURN void agent_fatal(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
