/* agent/main.c: katavm-agent, PID 1 of the guest VM.
 *
 * As init (pid 1) it boots the guest (boot.c), then serves the host over
 * the virtio-serial channel (channel.c) on one GMainLoop, and never exits:
 * shutdown and fatal errors power the VM off. Run as an ordinary process
 * it skips the boot steps and serves one connection given on the command
 * line, so the host side can be tested without a VM:
 *   katavm-agent --fd N           an inherited, connected socket
 *   katavm-agent --socket PATH    connect to a unix socket
 *   katavm-agent --port NAME      a virtio-serial port (debugging in a VM)
 */
#include "boot.h"
#include "unixsock.h"
#include "channel.h"
#include "hotplug.h"
#include "log.h"
#include "power.h"
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void on_sigio(int signo, gpointer user) {
  agent_channel_kick();
}

static void on_terminate(int signo, gpointer user) {
  agent_debug("signal %d: powering off", signo);
  agent_poweroff();
}

static gboolean start_late_boot(gpointer user) {
  agent_boot_late_start();
  return G_SOURCE_REMOVE;
}

static void on_channel_opened(gpointer user) {
  /* Low priority: whatever the host already sent is handled first. */
  g_idle_add_full(G_PRIORITY_LOW, start_late_boot, NULL, NULL);
}

static int connect_unix(const char *path) {
  g_autoptr(GError) e = NULL;
  int fd = kv_unix_connect(path, &e);
  if (fd < 0)
    agent_fatal("%s", e->message);
  return fd;
}

int main(int argc, char **argv) {
  gboolean pid1 = getpid() == 1;
  /* Before anything can start a thread: all threads inherit the mask. */
  agent_signals_block();

  const char *env_debug = g_getenv("KATAVM_DEBUG");
  gboolean debug = env_debug != NULL && *env_debug != '\0' && strcmp(env_debug, "0") != 0;
  int opt_fd = -1;
  g_autofree char *opt_socket = NULL;
  g_autofree char *opt_port = NULL;

  /* As init, argv holds whatever the kernel cmdline left over: ignore it. */
  if (!pid1) {
    GOptionEntry entries[] = {
        {"fd", 0, 0, G_OPTION_ARG_INT, &opt_fd, "serve one connection on this connected fd", "N"},
        {"socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_socket,
         "connect to this unix socket and serve it", "PATH"},
        {"port", 0, 0, G_OPTION_ARG_STRING, &opt_port,
         "serve the virtio-serial port with this name", "NAME"},
        {"debug", 0, 0, G_OPTION_ARG_NONE, &debug, "log progress to stderr", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) oc = g_option_context_new("- katavm guest agent");
    g_option_context_add_main_entries(oc, entries, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(oc, &argc, &argv, &err)) {
      g_printerr("katavm-agent: %s\n", err->message);
      return 2;
    }
    if ((opt_fd >= 0) + (opt_socket != NULL) + (opt_port != NULL) != 1) {
      g_printerr("katavm-agent: not PID 1: give one of --fd, --socket, "
                 "--port\n");
      return 2;
    }
  }

  agent_log_init(pid1, debug);
  agent_log_fix_stdio();
  agent_debug("starting (pid %d)", (int)getpid());

  if (pid1) {
    g_autoptr(GError) err = NULL;
    if (!agent_boot_early(&err))
      agent_fatal("boot: %s", err->message);
    /* The pod's containers share the guest's network namespace: its
     * loopback is theirs (127.0.0.1 between containers, as in a pod). */
    if (!agent_net_lo_up(&err))
      agent_error("%s", err->message);
    agent_debug("early boot done");
  }

  g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
  agent_signals_attach();
  agent_signal_connect(SIGIO, on_sigio, NULL);
  agent_signal_connect(SIGTERM, on_terminate, NULL);
  agent_signal_connect(SIGINT, on_terminate, NULL);
  agent_signal_connect(SIGPWR, on_terminate, NULL);

  if (opt_fd >= 0)
    agent_channel_start_fd(opt_fd);
  else if (opt_socket != NULL)
    agent_channel_start_fd(connect_unix(opt_socket));
  else
    agent_channel_start_port(opt_port != NULL ? opt_port : AGENT_CHANNEL_PORT,
                             pid1 ? on_channel_opened : NULL, NULL);

  g_main_loop_run(loop);
  /* Only test mode gets here; PID 1 leaves through agent_poweroff(). */
  return 0;
}
