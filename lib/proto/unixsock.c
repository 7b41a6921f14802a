/* lib/proto/unixsock.c: unix stream sockets for KvConn (see unixsock.h). */
#include "unixsock.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static gboolean make_addr(const char *path, struct sockaddr_un *sa, GError **error) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path == NULL || strlen(path) >= sizeof sa->sun_path) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
                "socket path %s is longer than the %zu bytes a unix socket address holds",
                path ? path : "(null)", sizeof sa->sun_path - 1);
    return FALSE;
  }
  memcpy(sa->sun_path, path, strlen(path) + 1);
  return TRUE;
}

int kv_unix_connect(const char *path, GError **error) {
  struct sockaddr_un sa;
  if (!make_addr(path, &sa, error))
    return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "socket: %s", g_strerror(errno));
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    g_set_error(error, G_IO_ERROR,
                (e == ENOENT || e == ECONNREFUSED) ? G_IO_ERROR_NOT_FOUND : G_IO_ERROR_FAILED,
                "cannot connect to %s: %s", path, g_strerror(e));
    return -1;
  }
  return fd;
}

int kv_unix_listen(const char *path, guint mode, GError **error) {
  struct sockaddr_un sa;
  if (!make_addr(path, &sa, error))
    return -1;
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "socket: %s", g_strerror(errno));
    return -1;
  }
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, mode) < 0 ||
      listen(fd, 64) < 0) {
    int e = errno;
    close(fd);
    unlink(path);
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot listen on %s: %s", path,
                g_strerror(e));
    return -1;
  }
  return fd;
}
