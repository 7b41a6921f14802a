/* lib/shim/console.c: the bounded serial console and shim log (see
 * console.h). */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unixsock.h"

struct _Console {
  Shim *s;
  char *sock;
  char *rotated; /* console.log.1 */
  int fd;        /* the socket, -1 when not attached */
  int log;       /* console.log, O_APPEND */
  off_t size;
  GSource *watch;
};

Console *console_new(Shim *s) {
  Console *c = g_new0(Console, 1);
  c->s = s;
  c->sock = g_build_filename(s->p.run, "console.sock", NULL);
  c->rotated = g_strdup_printf("%s.1", s->p.console);
  c->fd = -1;
  c->log = -1;
  return c;
}

static void detach(Console *c) {
  shim_timer_clear(&c->watch);
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  if (c->log >= 0)
    close(c->log);
  c->log = -1;
}

void console_free(Console *c) {
  if (!c)
    return;
  detach(c);
  g_free(c->sock);
  g_free(c->rotated);
  g_free(c);
}

const char *console_socket(Console *c) {
  return c->sock;
}

static gboolean open_log(Console *c) {
  c->log = open(c->s->p.console, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (c->log < 0) {
    shim_log("cannot open %s: %s", c->s->p.console, g_strerror(errno));
    return FALSE;
  }
  struct stat st;
  c->size = fstat(c->log, &st) == 0 ? st.st_size : 0;
  return TRUE;
}

static void rotate(Console *c) {
  if (c->log >= 0)
    close(c->log);
  c->log = -1;
  if (rename(c->s->p.console, c->rotated) < 0)
    (void)unlink(c->s->p.console);
  open_log(c);
}

static void put(Console *c, const char *buf, size_t n) {
  while (n > 0 && c->log >= 0) {
    size_t room = c->size < CONSOLE_LOG_MAX ? (size_t)(CONSOLE_LOG_MAX - c->size) : 0;
    if (room == 0) {
      rotate(c);
      continue;
    }
    size_t k = MIN(n, room);
    ssize_t w = write(c->log, buf, k);
    if (w <= 0)
      return; /* disk full or gone: drop, never block the loop */
    c->size += w;
    buf += w;
    n -= (size_t)w;
  }
}

/* Read what is there without blocking; FALSE at EOF or error. */
static gboolean pump(Console *c) {
  char buf[65536];
  for (int rounds = 0; rounds < 16; rounds++) {
    ssize_t r = read(c->fd, buf, sizeof(buf));
    if (r > 0) {
      put(c, buf, (size_t)r);
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      return TRUE;
    return FALSE;
  }
  return TRUE;
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer user) {
  Console *c = user;
  if (pump(c))
    return G_SOURCE_CONTINUE;
  /* QEMU closed it: the VM is going. Keep the log, stop watching. */
  g_source_unref(c->watch);
  c->watch = NULL;
  close(c->fd);
  c->fd = -1;
  return G_SOURCE_REMOVE;
}

gboolean console_attach(Console *c, GError **error) {
  detach(c);
  c->fd = kv_unix_connect(c->sock, error);
  if (c->fd < 0) {
    g_prefix_error(error, "console: ");
    return FALSE;
  }
  g_unix_set_fd_nonblocking(c->fd, TRUE, NULL);
  if (!open_log(c)) {
    detach(c);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cannot open console log %s", c->s->p.console);
    return FALSE;
  }
  c->watch = g_unix_fd_source_new(c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback(c->watch, (GSourceFunc)(void (*)(void))on_readable, c, NULL);
  g_source_attach(c->watch, shim_ctx);
  return TRUE;
}

void console_drain(Console *c) {
  if (c->fd >= 0)
    (void)pump(c);
}

static char *tail_of(const char *path, gsize n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return g_strdup("");
  struct stat st;
  off_t off = fstat(fd, &st) == 0 && st.st_size > (off_t)n ? st.st_size - (off_t)n : 0;
  char *buf = g_malloc0(n + 1);
  ssize_t r = pread(fd, buf, n, off);
  close(fd);
  buf[r > 0 ? r : 0] = '\0';
  /* NUL bytes from the guest would cut the text short: make them visible. */
  for (ssize_t i = 0; i < r; i++)
    if (!buf[i])
      buf[i] = ' ';
  return buf;
}

char *console_tail(Console *c, gsize n) {
  g_autofree char *cur = tail_of(c->s->p.console, n);
  gsize have = strlen(cur);
  if (have >= n)
    return g_steal_pointer(&cur);
  g_autofree char *old = tail_of(c->rotated, n - have);
  return g_strconcat(old, cur, NULL);
}
