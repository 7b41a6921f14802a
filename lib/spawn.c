/* lib/spawn.c: starting katavm-shim detached from the caller, and the
 * readiness pipe through which it reports "OK" or "ERR <code> <message>". */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "sandbox-internal.h"

/* The shim becomes a grandchild in its own session, so it is not killed with
 * the caller's terminal or process group and is not the caller's zombie. */
gboolean kv_shim_spawn(const char *shim, const char *root, const char *id, const char *mode,
                       const char *log_path, int *ready_rd, GError **error) {
  const char *argv[] = {shim, mode, "--root", root, "--id", id, "--ready-fd", "3", NULL};
  return kv_shim_spawn_argv(argv, log_path, -1, ready_rd, error);
}

gboolean kv_shim_spawn_argv(const char *const *argv, const char *log_path, int keep_fd,
                            int *ready_rd, GError **error) {
  const char *shim = argv[0];
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "pipe: %s", g_strerror(errno));
    return FALSE;
  }
  /* Everything the child needs is prepared before fork: after fork in a
   * threaded caller only async-signal-safe calls are allowed. */
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "fork: %s", g_strerror(e));
    return FALSE;
  }
  if (pid == 0) {
    setsid();
    pid_t gc = fork();
    if (gc != 0)
      _exit(gc < 0 ? 1 : 0);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0)
      log = null;
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    dup2(p[1], 3);
    if (keep_fd >= 0) {
      dup2(keep_fd, 4); /* the pool keeper's pipe (docs/pool.md) */
      close_range(5, ~0U, 0);
    } else {
      close_range(4, ~0U, 0);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execv(shim, (char *const *)argv);
    dprintf(3, "ERR %d cannot execute %s: %s\n", KATAVM_E_NOT_FOUND, shim, strerror(errno));
    _exit(127);
  }
  close(p[1]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  *ready_rd = p[0];
  return TRUE;
}

gboolean kv_shim_wait_ready(int fd, guint timeout_ms, GError **error) {
  char buf[4096];
  size_t len = 0;
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  for (;;) {
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;
    if (left <= 0) {
      g_set_error(error, KV_ERROR, KATAVM_E_TIMEOUT, "the sandbox did not become ready within %u s",
                  timeout_ms / 1000);
      return FALSE;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)MIN(left, 1000));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || len + (size_t)n >= sizeof(buf) - 1 || memchr(buf + len, '\n', (size_t)n)) {
      if (n > 0)
        len += (size_t)n;
      break;
    }
    len += (size_t)n;
  }
  buf[len] = '\0';
  {
    /* Wait for EOF: a serving shim closes the pipe right after "OK"; a
     * failed or finished one holds it until it exits, so the caller never
     * returns while it is still alive. */
    char sink[256];
    for (;;) {
      gint64 left = (deadline - g_get_monotonic_time()) / 1000;
      struct pollfd pfd = {.fd = fd, .events = POLLIN};
      if (left <= 0 || poll(&pfd, 1, (int)MIN(left, 1000)) < 0 ||
          (pfd.revents && read(fd, sink, sizeof(sink)) <= 0))
        break;
    }
  }
  char *nl = strchr(buf, '\n');
  if (nl)
    *nl = '\0';
  if (strcmp(buf, "OK") == 0)
    return TRUE;
  int code = KATAVM_E_IO;
  const char *msg = "the shim exited without reporting (see its shim.log)";
  if (strncmp(buf, "ERR ", 4) == 0) {
    char *end = NULL;
    long c = strtol(buf + 4, &end, 10);
    if (end && *end == ' ' && c < 0 && c >= KATAVM_E_CORRUPT) {
      code = (int)c;
      msg = end + 1;
    }
  }
  g_set_error(error, KV_ERROR, code, "%s", msg);
  return FALSE;
}

void kv_shim_report(int fd, const GError *e, gboolean final) {
  if (fd < 0)
    return;
  if (!e && final) {
    dprintf(fd, "OK\n");
  } else if (!e) {
    dprintf(fd, "OK\n");
    close(fd);
  } else {
    /* Left open on purpose: the reader sees EOF only once this process has
     * exited, so a failed create returns with no shim left. */
    dprintf(fd, "ERR %d %s\n", kv_error_code_of(e), e->message);
  }
}
