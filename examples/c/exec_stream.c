/* examples/c/exec_stream.c: a streaming exec, driven by poll(2) on the
 * process's file descriptors.
 *
 * Boots a sandbox, adds a container from ROOTFS, and runs CMD in it like
 * `katavm exec -i`: this program's stdin is copied to the process's stdin
 * (then closed: the process reads EOF), the process's stdout and stderr are
 * copied to this program's stdout and stderr as they arrive, and the exit
 * status is the process's. At the end it prints how many bytes went each
 * way to stderr. The sandbox is destroyed whatever happens.
 *
 *   cc exec_stream.c $(pkg-config --cflags --libs katavm) -o exec_stream
 *   head -c 5M /dev/urandom | ./exec_stream ROOTFS -- md5sum
 *
 * The three process fds are non-blocking pipes owned by the process handle;
 * the library moves bytes between them and the guest with flow control, so
 * memory stays bounded however fast either side is. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <katavm/katavm.h>

static int report(const char *what, int rc, katavm_error *e) {
  fprintf(stderr, "exec_stream: %s failed: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(rc));
  katavm_error_free(e);
  return 125;
}

/* Write all of buf to a blocking or non-blocking fd (waiting with poll). */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EAGAIN) {
      struct pollfd w = {.fd = fd, .events = POLLOUT};
      poll(&w, 1, -1);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Pump until stdout and stderr reach EOF. Returns 0, or -1 on an I/O error. */
static int pump(katavm_process *p, uint64_t counts[3]) {
  enum { IN, OUT, ERR };
  int in_fd = katavm_process_stdin_fd(p);
  int src[3] = {STDIN_FILENO, katavm_process_stdout_fd(p), katavm_process_stderr_fd(p)};
  int dst[3] = {in_fd, STDOUT_FILENO, STDERR_FILENO};
  int open_[3] = {in_fd >= 0, 1, src[ERR] >= 0};
  char buf[65536];
  /* Our stdin may be a terminal or a file: non-blocking so that one read
   * never stalls the output side. */
  fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
  while (open_[OUT] || open_[ERR]) {
    struct pollfd pf[3];
    for (int i = 0; i < 3; i++)
      pf[i] = (struct pollfd){.fd = open_[i] ? src[i] : -1, .events = POLLIN};
    if (poll(pf, 3, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    for (int i = 0; i < 3; i++) {
      if (!open_[i] || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t n = read(src[i], buf, sizeof buf);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (n <= 0) {
        open_[i] = 0;
        if (i == IN)
          katavm_process_close_stdin(p, NULL); /* the guest reads EOF */
        continue;
      }
      if (write_all(dst[i], buf, (size_t)n) < 0) {
        if (i != IN)
          return -1;
        /* The process closed its stdin: stop feeding it. */
        open_[IN] = 0;
        katavm_process_close_stdin(p, NULL);
        continue;
      }
      counts[i] += (uint64_t)n;
    }
  }
  if (open_[IN])
    katavm_process_close_stdin(p, NULL);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0) {
    fprintf(stderr, "usage: exec_stream ROOTFS -- CMD [ARG...]\n");
    return 2;
  }
  /* A process that stops reading its stdin must not kill us. */
  signal(SIGPIPE, SIG_IGN);
  katavm_runtime *rt = NULL;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc;
  if ((rc = katavm_runtime_new(&rt, &e)) < 0)
    return report("katavm_runtime_new", rc, e);
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.memory_mib = 256;
  if ((rc = katavm_sandbox_create(rt, &cfg, &sb, &e)) < 0) {
    katavm_runtime_free(rt);
    return report("katavm_sandbox_create", rc, e);
  }
  char id[KATAVM_ID_MAX + 1];
  snprintf(id, sizeof id, "%s", katavm_sandbox_id(sb));

  int status = 125;
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.rootfs = argv[1];
  const char *const idle[] = {"sleep", "1000000", NULL};
  cc.argv = idle;
  katavm_process *p = NULL;
  katavm_exec_config xc;
  katavm_exec_config_init(&xc);
  xc.argv = (const char *const *)&argv[3];
  if ((rc = katavm_container_add(sb, "stream", &cc, NULL, &e)) < 0 ||
      (rc = katavm_container_start(sb, "stream", &e)) < 0 ||
      (rc = katavm_exec(sb, "stream", &xc, &p, &e)) < 0) {
    status = report("creating the container or the exec", rc, e);
  } else {
    uint64_t counts[3] = {0, 0, 0};
    int code = -1;
    if (pump(p, counts) < 0)
      fprintf(stderr, "exec_stream: I/O error: %s\n", strerror(errno));
    if ((rc = katavm_process_wait(p, -1, &code, &e)) < 0)
      status = report("katavm_process_wait", rc, e);
    else
      status = code;
    fprintf(stderr,
            "exec_stream: stdin %" PRIu64 " bytes, stdout %" PRIu64 " bytes, stderr %" PRIu64
            " bytes, exit status %d\n",
            counts[0], counts[1], counts[2], code);
  }
  katavm_process_free(p);
  katavm_sandbox_close(sb);
  if ((rc = katavm_sandbox_destroy(rt, id, &e)) < 0)
    status = report("katavm_sandbox_destroy", rc, e);
  katavm_runtime_free(rt);
  return status;
}
