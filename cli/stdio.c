/* cli/stdio.c: connecting a guest process to this terminal: stdin, stdout
 * and stderr pumped between our fds and the process handle's, raw mode and
 * window-size changes for -t, and the exit code (shell convention). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t winch;
static void on_winch(int sig) {
  winch = 1;
}

/* SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to us go to the guest process
 * (which then decides whether to exit): we stay until it has. */
static volatile sig_atomic_t forward_sig;
static void on_forward(int sig) {
  forward_sig = sig;
}
static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};

static void send_size(katavm_process *p) {
  struct winsize ws;
  if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
    katavm_process_resize(p, ws.ws_row, ws.ws_col, NULL);
}

gboolean cli_term_size(unsigned short *rows, unsigned short *cols) {
  struct winsize ws;
  if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
    *rows = ws.ws_row;
    *cols = ws.ws_col;
    return TRUE;
  }
  return FALSE;
}

/* Write all of buf to a blocking fd (our stdout/stderr). */
static void write_all(int fd, const char *buf, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, (size_t)n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    buf += w;
    n -= w;
  }
}

int cli_attach(katavm_process *p, gboolean forward_stdin, gboolean tty) {
  struct termios saved;
  gboolean raw = FALSE;
  if (tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
    struct termios t = saved;
    cfmakeraw(&t);
    raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
    struct sigaction sa = {.sa_handler = on_winch};
    sigaction(SIGWINCH, &sa, NULL);
    send_size(p);
  }
  struct sigaction fwd = {.sa_handler = on_forward}; /* no SA_RESTART: poll sees EINTR */
  for (size_t i = 0; i < G_N_ELEMENTS(forwarded); i++)
    sigaction(forwarded[i], &fwd, NULL);
  if (!forward_stdin)
    katavm_process_close_stdin(p, NULL);
  int pin = forward_stdin ? katavm_process_stdin_fd(p) : -1;
  int pout = katavm_process_stdout_fd(p), perr = katavm_process_stderr_fd(p);
  char inbuf[65536];
  size_t in_len = 0, in_off = 0;
  gboolean in_eof = !forward_stdin;
  char buf[65536];
  while (pout >= 0 || perr >= 0) {
    if (winch) {
      winch = 0;
      send_size(p);
    }
    if (forward_sig) {
      int sig = forward_sig;
      forward_sig = 0;
      katavm_process_signal(p, sig, NULL);
    }
    struct pollfd fds[4];
    int n = 0, i_stdin = -1, i_pin = -1, i_out = -1, i_err = -1;
    if (!in_eof && in_len == 0) {
      fds[n] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
      i_stdin = n++;
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
    /* Bounded: a handle whose shim was declared dead switches our fds to
     * EOF, which a poll already waiting would not see. */
    if (poll(fds, (nfds_t)n, 1000) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (i_stdin >= 0 && fds[i_stdin].revents) {
      ssize_t r = read(STDIN_FILENO, inbuf, sizeof(inbuf));
      if (r > 0) {
        in_len = (size_t)r;
        in_off = 0;
      } else if (r == 0 || errno != EINTR) {
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
    int *fdp[] = {&pout, &perr};
    int idx[] = {i_out, i_err};
    int dst[] = {STDOUT_FILENO, STDERR_FILENO};
    for (int k = 0; k < 2; k++) {
      if (idx[k] < 0 || !fds[idx[k]].revents)
        continue;
      ssize_t r = read(*fdp[k], buf, sizeof(buf));
      if (r > 0)
        write_all(dst[k], buf, r);
      else if (r == 0 || (errno != EAGAIN && errno != EINTR))
        *fdp[k] = -1;
    }
  }
  int code = 0;
  katavm_error *e = NULL;
  int rc = katavm_process_wait(p, -1, &code, &e);
  if (raw)
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  if (rc < 0) {
    cli_fail(e);
    return 125;
  }
  return code;
}
