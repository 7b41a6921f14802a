/* agent/boot.c: the PID 1 boot sequence (see boot.h). */
#include "boot.h"
#include "bench.h"
#include "log.h"
#include "modules.h"
#include "mounts.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  AgentBootFunc func;
  gpointer user;
} Waiter;

static gboolean late_started;
static gboolean late_done;
static gboolean shared_mounted;
static GSList *waiters; /* Waiter*, in reverse order of registration */

gboolean agent_boot_early(GError **error) {
  umask(0022);
  if (chdir("/") < 0)
    agent_debug("chdir /: %s", g_strerror(errno));
  /* The kernel gives init a bare environment; children need a PATH. */
  g_setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", TRUE);

  if (!agent_mounts_setup(error))
    return FALSE;
  agent_log_open_kmsg();
  /* Ctrl-Alt-Del becomes SIGINT to us instead of an instant reboot. */
  reboot(RB_DISABLE_CAD);

  /* Failures are logged per module; a missing channel driver shows up as
   * "no virtio-serial port" a little later, with the VM powered off. */
  g_autoptr(GError) err = NULL;
  agent_modules_load_list(AGENT_MODULES_EARLY, &err);
  return TRUE;
}

static gboolean late_finished(gpointer data) {
  late_done = TRUE;
  shared_mounted = GPOINTER_TO_INT(data) > 0;
  agent_debug("late boot done (share %s)", shared_mounted ? "mounted" : "absent");
  GSList *list = g_slist_reverse(g_steal_pointer(&waiters));
  for (GSList *l = list; l != NULL; l = l->next) {
    Waiter *w = l->data;
    w->func(w->user);
  }
  g_slist_free_full(list, g_free);
  return G_SOURCE_REMOVE;
}

static gpointer late_thread(gpointer unused) {
  g_autoptr(GError) err = NULL;
  agent_modules_load_list(AGENT_MODULES_LATE, NULL);
  /* Only acts with katavm.bench_mib= on the kernel command line (bench/exec's
   * floor VM); its own thread, so the share mount below is not held up. */
  agent_bench_start();
  int r = agent_mount_shared(&err);
  if (r < 0)
    agent_error("%s", err->message);
  g_main_context_invoke(NULL, late_finished, GINT_TO_POINTER(r));
  return NULL;
}

void agent_boot_late_start(void) {
  if (late_started)
    return;
  late_started = TRUE;
  /* A thread, not main-loop work: loading a module takes tens of ms under
   * TCG, and the host's first requests must not wait behind them. */
  g_thread_unref(g_thread_new("late-boot", late_thread, NULL));
}

void agent_boot_when_late_done(AgentBootFunc func, gpointer user) {
  if (late_done) {
    func(user);
    return;
  }
  Waiter *w = g_new0(Waiter, 1);
  w->func = func;
  w->user = user;
  waiters = g_slist_prepend(waiters, w);
}

gboolean agent_boot_late_done(void) {
  return late_done;
}

gboolean agent_boot_shared_mounted(void) {
  return shared_mounted;
}
