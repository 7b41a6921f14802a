/* agent/signals.c: signalfd dispatch and the PID 1 reaper (see signals.h). */
#include "signals.h"
#include "log.h"
#include "power.h"

#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  AgentChildFunc func;
  gpointer user;
} ChildWatch;

typedef struct {
  int signo;
  AgentSignalFunc func;
  gpointer user;
} SignalHandler;

static const int handled_signals[] = {SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGHUP, SIGIO};

static sigset_t handled_set;
static sigset_t original_set;
static int signal_fd = -1;
static GHashTable *child_watches; /* pid -> ChildWatch* */
static SignalHandler handlers[G_N_ELEMENTS(handled_signals)];

void agent_signals_block(void) {
  sigemptyset(&handled_set);
  for (gsize i = 0; i < G_N_ELEMENTS(handled_signals); i++)
    sigaddset(&handled_set, handled_signals[i]);
  sigprocmask(SIG_BLOCK, &handled_set, &original_set);
}

void agent_signals_reset_in_child(void) {
  sigprocmask(SIG_SETMASK, &original_set, NULL);
}

static void reap_children(void) {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR)
      continue;
    if (pid <= 0)
      return; /* 0: none exited yet; ECHILD: no children at all */
    ChildWatch *w = NULL;
    if (child_watches != NULL &&
        g_hash_table_steal_extended(child_watches, GINT_TO_POINTER(pid), NULL, (gpointer *)&w)) {
      w->func(pid, status, w->user);
      g_free(w);
    }
  }
}

static gboolean on_signalfd(gint fd, GIOCondition cond, gpointer user) {
  struct signalfd_siginfo si;
  for (;;) {
    ssize_t n = read(fd, &si, sizeof si);
    if (n < 0 && errno == EINTR)
      continue;
    if (n != (ssize_t)sizeof si)
      break; /* EAGAIN: drained */
    int signo = (int)si.ssi_signo;
    /* Standard signals coalesce: one SIGCHLD may stand for many exits,
     * hence the reaper loops until waitpid has nothing left. */
    if (signo == SIGCHLD) {
      reap_children();
      continue;
    }
    gboolean taken = FALSE;
    for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++) {
      if (handlers[i].func != NULL && handlers[i].signo == signo) {
        handlers[i].func(signo, handlers[i].user);
        taken = TRUE;
        break;
      }
    }
    if (!taken)
      agent_debug("ignoring signal %d", signo);
  }
  return G_SOURCE_CONTINUE;
}

void agent_signals_attach(void) {
  g_return_if_fail(signal_fd < 0);
  signal_fd = signalfd(-1, &handled_set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0)
    agent_fatal("signalfd: %s", g_strerror(errno));
  g_unix_fd_add(signal_fd, G_IO_IN, on_signalfd, NULL);
  /* Children may have exited before we listened. */
  reap_children();
}

void agent_signal_connect(int signo, AgentSignalFunc func, gpointer user) {
  g_return_if_fail(signo != SIGCHLD && sigismember(&handled_set, signo) == 1);
  SignalHandler *slot = NULL;
  for (gsize i = 0; i < G_N_ELEMENTS(handlers); i++) {
    if (handlers[i].func != NULL && handlers[i].signo == signo) {
      slot = &handlers[i];
      break;
    }
    if (handlers[i].func == NULL && slot == NULL)
      slot = &handlers[i];
  }
  if (slot != NULL)
    *slot = (SignalHandler){signo, func, user};
}

void agent_child_watch(pid_t pid, AgentChildFunc func, gpointer user) {
  g_return_if_fail(pid > 0 && func != NULL);
  if (child_watches == NULL)
    child_watches = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
  ChildWatch *w = g_new0(ChildWatch, 1);
  w->func = func;
  w->user = user;
  g_hash_table_replace(child_watches, GINT_TO_POINTER(pid), w);
}
