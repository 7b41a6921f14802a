/* cli/runtime/io.c: the host process that stands for a guest process, as a
 * runc container's init stands on the host for the container: container
 * managers wait for its pid, signal it, read its stdio and take its exit
 * status. Here it relays all of those to the guest process through the
 * library, and sends the pty of --console-socket as runc does. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "rt.h"

/* What a guest process's stand-in relays: every catchable signal but the
 * synchronous faults, which must stay deliverable to this process. */
static void relay_set(sigset_t *set) {
  sigemptyset(set);
  for (int s = 1; s < 32; s++)
    if (s != SIGKILL && s != SIGSTOP && s != SIGSEGV && s != SIGBUS && s != SIGFPE && s != SIGILL &&
        s != SIGTRAP && s != SIGSYS)
      sigaddset(set, s);
}

void rt_block_signals(void) {
  sigset_t set;
  relay_set(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
}

void rt_exit_like(int status) {
  fflush(NULL);
  if (status > 128 && status <= 128 + 64) {
    int sig = status - 128;
    /* Die of the same signal, so a waiting manager sees what it would
     * see for a runc container; no core dump of this process. */
    if (sig != SIGCHLD && sig != SIGCONT && sig != SIGURG && sig != SIGWINCH && sig != SIGSTOP &&
        sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU) {
      struct rlimit no_core = {0, 0};
      setrlimit(RLIMIT_CORE, &no_core);
      signal(sig, SIG_DFL);
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, sig);
      sigprocmask(SIG_UNBLOCK, &one, NULL);
      raise(sig);
    }
  }
  _exit(status & 0xff);
}

static gboolean write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pf = {.fd = fd, .events = POLLOUT};
      poll(&pf, 1, -1);
      continue;
    }
    if (w <= 0)
      return FALSE;
    buf += w;
    n -= (size_t)w;
  }
  return TRUE;
}

static void on_signal(katavm_process *p, int tty, int sig) {
  if (sig == SIGWINCH) {
    struct winsize ws;
    if (tty >= 0 && ioctl(tty, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
      katavm_process_resize(p, ws.ws_row, ws.ws_col, NULL);
    return;
  }
  if (sig == SIGCHLD || sig == SIGPIPE || sig == SIGURG)
    return;
  /* A process that already exited cannot be signalled: not an error. */
  katavm_process_signal(p, sig, NULL);
}

int rt_relay(katavm_process *p, int in, int out, int err_fd, int tty, katavm_error **err) {
  if (tty >= 0)
    in = out = tty;
  sigset_t set;
  relay_set(&set);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  int pin = katavm_process_stdin_fd(p);
  int pout = katavm_process_stdout_fd(p), perr = katavm_process_stderr_fd(p);
  gboolean in_eof = in < 0 || pin < 0;
  if (in_eof)
    katavm_process_close_stdin(p, NULL);
  char inbuf[65536], buf[65536];
  size_t in_len = 0, in_off = 0;
  gboolean exited = FALSE;
  int code = 0;
  gint64 drain_until = 0;
  for (;;) {
    if (!exited) {
      katavm_error *we = NULL;
      int rc = katavm_process_wait(p, 0, &code, &we);
      if (rc == 0) {
        exited = TRUE;
        /* Output still in flight comes within moments; a background
         * child holding the pipes open must not keep us here. */
        drain_until = g_get_monotonic_time() + G_USEC_PER_SEC;
      } else if (katavm_error_code(we) != KATAVM_E_TIMEOUT) {
        if (err)
          *err = we;
        else
          katavm_error_free(we);
        code = -1;
        break;
      } else {
        katavm_error_free(we);
      }
    }
    if (exited && ((pout < 0 && perr < 0) || g_get_monotonic_time() > drain_until))
      break;
    struct pollfd fds[5];
    int n = 0, i_in = -1, i_pin = -1, i_out = -1, i_err = -1, i_sig = -1;
    if (!in_eof && in_len == 0 && !exited) {
      fds[n] = (struct pollfd){.fd = in, .events = POLLIN};
      i_in = n++;
    }
    if (pin >= 0 && in_len > 0) {
      fds[n] = (struct pollfd){.fd = pin, .events = POLLOUT};
      i_pin = n++;
    }
    if (pout >= 0) {
      fds[n] = (struct pollfd){.fd = pout, .events = POLLIN};
      i_out = n++;
    }
    if (perr >= 0) {
      fds[n] = (struct pollfd){.fd = perr, .events = POLLIN};
      i_err = n++;
    }
    if (sfd >= 0) {
      fds[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
      i_sig = n++;
    }
    /* Wake up now and then to see whether the process exited while its
     * output stays open. */
    if (poll(fds, (nfds_t)n, exited ? 100 : 250) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (i_sig >= 0 && fds[i_sig].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
        on_signal(p, tty, (int)si.ssi_signo);
    }
    if (i_in >= 0 && fds[i_in].revents) {
      ssize_t r = read(in, inbuf, sizeof inbuf);
      if (r > 0) {
        in_len = (size_t)r;
        in_off = 0;
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        /* A pty whose other side closed reads EIO: that is its EOF. */
        in_eof = TRUE;
        katavm_process_close_stdin(p, NULL);
        pin = -1;
      }
    }
    if (i_pin >= 0 && fds[i_pin].revents) {
      ssize_t w = write(pin, inbuf + in_off, in_len - in_off);
      if (w > 0) {
        in_off += (size_t)w;
        if (in_off == in_len)
          in_len = in_off = 0;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        in_len = in_off = 0;
        in_eof = TRUE;
        pin = -1;
      }
    }
    int *src[] = {&pout, &perr};
    int idx[] = {i_out, i_err};
    int dst[] = {out, err_fd};
    for (int k = 0; k < 2; k++) {
      if (idx[k] < 0 || !fds[idx[k]].revents)
        continue;
      ssize_t r = read(*src[k], buf, sizeof buf);
      if (r > 0) {
        if (dst[k] >= 0)
          write_all(dst[k], buf, (size_t)r);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        *src[k] = -1;
      }
    }
  }
  if (sfd >= 0)
    close(sfd);
  return code;
}

gboolean rt_console_setup(const char *path, int *slave_out, GError **error) {
  int master = -1, slave = -1;
  if (openpty(&master, &slave, NULL, NULL, NULL) < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "openpty: %s", g_strerror(errno));
    return FALSE;
  }
  fcntl(master, F_SETFD, FD_CLOEXEC);
  fcntl(slave, F_SETFD, FD_CLOEXEC);
  /* The guest's pty does the terminal work; ours passes bytes as they are. */
  struct termios t;
  if (tcgetattr(slave, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(slave, TCSANOW, &t);
  }
  /* As the session leader's controlling terminal, a resize by the
   * manager (TIOCSWINSZ on the master) reaches us as SIGWINCH. */
  ioctl(slave, TIOCSCTTY, 0);
  char name[64] = "";
  ptsname_r(master, name, sizeof name);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "console socket path %s is too long", path);
    goto fail;
  }
  strcpy(sa.sun_path, path);
  if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "console socket %s: %s", path,
                g_strerror(errno));
    goto fail;
  }
  /* runc's utils.SendFd: the pty's name as the payload, the master as
   * SCM_RIGHTS. */
  struct iovec iov = {.iov_base = name, .iov_len = strlen(name)};
  char ctl[CMSG_SPACE(sizeof(int))];
  memset(ctl, 0, sizeof ctl);
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &master, sizeof(int));
  if (sendmsg(s, &msg, MSG_NOSIGNAL) < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "sending the console to %s: %s", path,
                g_strerror(errno));
    goto fail;
  }
  close(s);
  close(master);
  *slave_out = slave;
  return TRUE;
fail:
  if (s >= 0)
    close(s);
  close(master);
  close(slave);
  return FALSE;
}

void rt_child_ready(int report_fd) {
  write_all(report_fd, "O", 1);
  close(report_fd);
}

void rt_child_failed(int report_fd, const char *msg) {
  write_all(report_fd, "E", 1);
  write_all(report_fd, msg, strlen(msg));
  close(report_fd);
}

/* Close what this process inherited beyond stdio and `keep`. */
static void close_inherited(int keep) {
  g_autoptr(GDir) d = g_dir_open("/proc/self/fd", 0, NULL);
  GArray *fds = g_array_new(FALSE, FALSE, sizeof(int));
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    int fd = atoi(name);
    if (fd > 2 && fd != keep)
      g_array_append_val(fds, fd);
  }
  g_clear_pointer(&d, g_dir_close);
  for (guint i = 0; i < fds->len; i++)
    close(g_array_index(fds, int, i));
  g_array_free(fds, TRUE);
}

pid_t rt_spawn_child(Rt *r, RtChildBody body, gpointer data, gboolean new_session, GError **error) {
  int rep[2];
  if (pipe2(rep, O_CLOEXEC) < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "pipe: %s", g_strerror(errno));
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "fork: %s", g_strerror(errno));
    close(rep[0]);
    close(rep[1]);
    return -1;
  }
  if (pid == 0) {
    close(rep[0]);
    close_inherited(rep[1]);
    if (new_session)
      setsid();
    if (chdir("/") < 0) {
      /* never fails for "/" in practice; keep going */
    }
    _exit(body(r, data, rep[1]));
  }
  close(rep[1]);
  GString *msg = g_string_new(NULL);
  char buf[4096];
  for (;;) {
    ssize_t n = read(rep[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    g_string_append_len(msg, buf, n);
  }
  close(rep[0]);
  if (msg->len > 0 && msg->str[0] == 'O') {
    g_string_free(msg, TRUE);
    return pid;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (msg->len > 1)
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s", msg->str + 1);
  else
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "the process standing for the container died while it was set up (status %d)",
                status);
  g_string_free(msg, TRUE);
  return -1;
}
