/* lib/shim/console.h: the guest's serial console and the shim's own log,
 * both bounded (console.c). The guest writes its console as fast as the
 * serial device goes (5.7 MB in 10 s measured); libvirt's file chardev and
 * <log> cannot cap a file, so the console is a unix socket that libvirt
 * creates and passes to QEMU, and the shim copies what arrives into
 * console.log, rotated to console.log.1 at CONSOLE_LOG_MAX: at most twice
 * that on disk. A shim that is slow to read makes the guest's serial
 * output wait (the socket fills), never the host's disk. Beside
 * lifecycle.c, which owns one. */
#pragma once

#include "state.h"

#define CONSOLE_LOG_MAX (1024 * 1024)

typedef struct _Console Console;

Console *console_new(Shim *s);
void console_free(Console *c);
/* The socket libvirt binds for the serial device (under the run dir). */
const char *console_socket(Console *c);
/* Connect to it (after the domain started, or on recovery) and copy from
 * the main loop. */
gboolean console_attach(Console *c, GError **error);
/* Read what is already there (before the console's tail is quoted). */
void console_drain(Console *c);
/* The last `n` bytes of the console (console.log.1's end first when
 * console.log is shorter). */
char *console_tail(Console *c, gsize n);
