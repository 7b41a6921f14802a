/* agent/power.c: powering the VM off (see power.h). */
#include "power.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/reboot.h>
#include <unistd.h>

void agent_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  agent_log_fatal(fmt, ap);
  va_end(ap);
  if (agent_is_pid1())
    agent_poweroff();
  _exit(1);
}

void agent_poweroff(void) {
  if (!agent_is_pid1())
    exit(0);

  sync();
  reboot(RB_POWER_OFF);
  agent_error("power off failed: %s; trying reboot", g_strerror(errno));
  /* With -no-reboot (libvirt <on_reboot>destroy</on_reboot>) a reboot ends
   * the VM just as well. */
  reboot(RB_AUTOBOOT);
  agent_error("reboot failed: %s", g_strerror(errno));
  for (;;)
    pause();
}
