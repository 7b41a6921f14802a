/* agent/log.c: where the agent's messages go (see log.h), including
 * glib's own g_warning()/g_debug() output. Safe to call from any thread:
 * each message is one write(2).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Kernel log priorities (<N> prefix for /dev/kmsg). */
#define KMSG_ERR 3
#define KMSG_DEBUG 7

static int kmsg_fd = -1;
static gboolean is_pid1;
static gboolean debug_on;

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* nowhere left to report it */
    buf += n;
    len -= (size_t)n;
  }
}

static void log_message(int prio, gboolean console, const char *fmt, va_list ap) {
  int saved_errno = errno;
  char msg[1024];
  char line[1100];
  vsnprintf(msg, sizeof msg, fmt, ap);

  if (kmsg_fd >= 0 && prio <= KMSG_ERR) {
    int n = snprintf(line, sizeof line, "<%d>" AGENT_LOG_NAME ": %s\n", prio, msg);
    write_all(kmsg_fd, line, MIN((size_t)n, sizeof line - 1));
  }
  /* Before /dev is mounted there is no kmsg: the console is all we have. */
  if (console || (kmsg_fd < 0 && prio <= KMSG_ERR)) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    int n = snprintf(line, sizeof line, "[%5ld.%03ld] " AGENT_LOG_NAME ": %s\n", (long)ts.tv_sec,
                     ts.tv_nsec / 1000000, msg);
    write_all(STDERR_FILENO, line, MIN((size_t)n, sizeof line - 1));
  }
  errno = saved_errno;
}

void agent_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_message(KMSG_ERR, debug_on, fmt, ap);
  va_end(ap);
}

void agent_debug(const char *fmt, ...) {
  if (!debug_on)
    return;
  va_list ap;
  va_start(ap, fmt);
  log_message(KMSG_DEBUG, TRUE, fmt, ap);
  va_end(ap);
}

void agent_log_fatal(const char *fmt, va_list ap) {
  log_message(KMSG_ERR, TRUE, fmt, ap);
}

static GLogWriterOutput glib_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                                    gpointer user) {
  const char *msg = "(no message)";
  int len = -1; /* NUL-terminated unless the field says otherwise */
  for (gsize i = 0; i < n_fields; i++) {
    if (g_strcmp0(fields[i].key, "MESSAGE") == 0) {
      msg = fields[i].value;
      len = fields[i].length < 0 ? -1 : (int)MIN(fields[i].length, 1000);
      break;
    }
  }
  if (len < 0)
    len = (int)MIN(strlen(msg), 1000);
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    agent_error("%.*s", len, msg);
  else
    agent_debug("%.*s", len, msg);
  return G_LOG_WRITER_HANDLED;
}

void agent_log_init(gboolean pid1, gboolean debug) {
  is_pid1 = pid1;
  debug_on = debug;
  g_log_set_writer_func(glib_writer, NULL, NULL);
}

void agent_log_fix_stdio(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0)
      continue;
    int n = open("/dev/console", O_RDWR | O_NOCTTY);
    if (n < 0)
      n = open("/dev/null", O_RDWR);
    if (n >= 0 && n != fd) {
      dup2(n, fd);
      close(n);
    }
  }
}

void agent_log_open_kmsg(void) {
  if (kmsg_fd < 0)
    kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
}

gboolean agent_is_pid1(void) {
  return is_pid1;
}

gboolean agent_debug_enabled(void) {
  return debug_on;
}
