/* lib/shim/lifecycle.c: the VM and the agent channel of katavm-shim.
 *
 * Boot (or, for a shim that replaces one that died, recovery: the VM runs
 * on, the state and mounts are inherited), the agent channel and its
 * reconnection, poweroff (guest shutdown, destroy after a grace period),
 * destroy (VM gone, state removed, then the shim exits) and --cleanup.
 * Calls down into the relay (agent frames, agent lost, unmount) and hotplug
 * (abort when the sandbox stops); nothing below calls it. */
#include "lifecycle.h"
#include "console.h"
#include "jail.h"
#include "unixsock.h"

#include <errno.h>
#include <glib-unix.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define POWEROFF_GRACE_MS 8000
#define SPARE_ROOT_PORTS 8

/* Liveness of the agent (kv_conn_keepalive): a ping a second. A guest that
 * stays silent AGENT_DEAD_MS while QEMU is stopped (SIGSTOP) or gone is
 * dead; while QEMU runs, silence is given AGENT_HUNG_MS, because a busy
 * guest under TCG answers late and a few agent handlers block their loop
 * for a while (waiting for a hot-plugged device to appear). Before the
 * agent's HELLO (boot) only a stopped or gone QEMU counts. Docs:
 * docs/platform.md, "Liveness". */
#define AGENT_PING_MS 1000
#define AGENT_DEAD_MS 5000
#define AGENT_HUNG_MS 30000

struct _Lifecycle {
  Shim *s;
  Relay *rl;
  Hotplug *hp;
  Vfsd *vf;
  gboolean destroy_requested; /* SIGTERM: destroy with no client waiting */
  GSource *poweroff_timer;
  GSource *poll_timer;
  GSource *reconnect_timer;
  GPtrArray *stop_waiters;    /* Waiter* answered when the VM is off */
  GPtrArray *destroy_waiters; /* Waiter* answered when all is removed */
  char *qemu_label;           /* "+UID:+GID" or NULL */
  Console *console;           /* the bounded serial console */
  GSource *log_timer;         /* keeps shim.log bounded (virtiofsd writes there too) */
  int pool_fd;                /* pooled: the keeper's pipe, else -1 */
  GSource *pool_src;
};

static void on_vfsd_lost(gpointer user, const char *why, gboolean clean);

static gboolean log_tick(gpointer unused) {
  shim_log_bound(NULL);
  return G_SOURCE_CONTINUE;
}

Lifecycle *lifecycle_new(Shim *s, Relay *rl, Hotplug *hp, Vfsd *vf) {
  Lifecycle *lc = g_new0(Lifecycle, 1);
  lc->s = s;
  lc->rl = rl;
  lc->hp = hp;
  lc->vf = vf;
  vfsd_set_lost_handler(vf, on_vfsd_lost, lc);
  lc->stop_waiters = g_ptr_array_new_with_free_func(waiter_free);
  lc->destroy_waiters = g_ptr_array_new_with_free_func(waiter_free);
  lc->console = console_new(s);
  lc->log_timer = shim_add_timeout(1000, log_tick, NULL);
  lc->pool_fd = -1;
  return lc;
}

void lifecycle_free(Lifecycle *lc) {
  if (!lc)
    return;
  shim_timer_clear(&lc->poweroff_timer);
  shim_timer_clear(&lc->poll_timer);
  shim_timer_clear(&lc->reconnect_timer);
  g_ptr_array_unref(lc->stop_waiters);
  g_ptr_array_unref(lc->destroy_waiters);
  g_free(lc->qemu_label);
  console_free(lc->console);
  shim_timer_clear(&lc->log_timer);
  shim_timer_clear(&lc->pool_src);
  if (lc->pool_fd >= 0)
    close(lc->pool_fd);
  g_free(lc);
}

/* ---- VM teardown ---- */

static void agent_drop(Lifecycle *lc) {
  Shim *s = lc->s;
  shim_timer_clear(&lc->reconnect_timer);
  relay_agent_lost(lc->rl);
  if (s->agent) {
    kv_conn_close(s->agent);
    g_clear_pointer(&s->agent, kv_conn_unref);
  }
}

/* Remove everything of this sandbox on the host. The VM must be gone. */
static gboolean remove_state(Lifecycle *lc, GError **error) {
  net_teardown(hotplug_net(lc->hp));
  hotplug_release_disks(lc->hp);
  vfsd_stop(lc->vf);
  relay_unmount_all(lc->rl);
  if (!kv_rm_rf(lc->s->p.run, error) || !kv_rm_rf(lc->s->p.dir, error))
    return FALSE;
  if (jail_enabled(lc->s))
    jail_release(lc->s);
  return TRUE;
}

/* Hard stop of the VM, tolerant of it being gone already. */
static gboolean vm_destroy(Shim *s, GError **error) {
  if (!s->vmm)
    return TRUE;
  /* A stopped QEMU cannot act on libvirt's SIGTERM: libvirt would wait its
   * full grace period before SIGKILL. */
  char st = kv_proc_state(s->qemu_pid);
  if (st == 'T' || st == 't')
    kill(s->qemu_pid, SIGKILL);
  return kv_vmm_destroy(s->vmm, s->p.domain, error);
}

static void finish_destroy(Lifecycle *lc) {
  Shim *s = lc->s;
  g_autoptr(GError) e = NULL;
  agent_drop(lc);
  gboolean ok = vm_destroy(s, &e);
  if (ok) {
    s->destroying = TRUE;
    if (s->vmm)
      g_clear_pointer(&s->vmm, kv_vmm_close);
    ok = remove_state(lc, &e);
  }
  if (!ok)
    shim_log("destroy failed: %s", e->message);
  waiters_reply_all(lc->destroy_waiters, &kv_m_shim_destroy, ok ? NULL : e);
  if (ok)
    g_main_loop_quit(s->loop);
}

/* The last `max` bytes of file `path` ("" when unreadable). */
static char *file_tail(const char *path, gsize max) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return g_strdup("");
  off_t end = lseek(fd, 0, SEEK_END);
  off_t from = end > (off_t)max ? end - (off_t)max : 0;
  char *buf = g_malloc0(max + 1);
  ssize_t n = pread(fd, buf, max, from);
  close(fd);
  if (n < 0)
    n = 0;
  buf[n] = 0;
  /* Guest output: keep it printable. */
  for (ssize_t i = 0; i < n; i++)
    if (buf[i] == 0 || ((unsigned char)buf[i] < 0x20 && buf[i] != '\n') ||
        (unsigned char)buf[i] >= 0x7f)
      buf[i] = buf[i] == '\r' ? '\n' : '?';
  return buf;
}

/* The last `n` non-empty lines of text, joined with " | ". */
static char *last_lines(const char *text, guint n) {
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GPtrArray) keep = g_ptr_array_new();
  for (gint i = (gint)g_strv_length(lines) - 1; i >= 0 && keep->len < n; i--) {
    char *l = g_strstrip(lines[i]);
    if (*l)
      g_ptr_array_insert(keep, 0, l);
  }
  g_ptr_array_add(keep, NULL);
  return g_strjoinv(" | ", (char **)keep->pdata);
}

char *lifecycle_console_tail(Lifecycle *lc) {
  console_drain(lc->console);
  g_autofree char *t = console_tail(lc->console, 4096);
  return last_lines(t, 8);
}

/* Why the VM went off by itself: a panic on the console, then what
 * libvirt and QEMU's own log say. */
static char *vm_off_reason(Lifecycle *lc) {
  Shim *s = lc->s;
  console_drain(lc->console);
  g_autofree char *console = console_tail(lc->console, 16384);
  const char *panic = g_strrstr(console, "Kernel panic");
  if (panic) {
    g_autofree char *line = g_strndup(panic, strcspn(panic, "\n"));
    g_autofree char *tail = last_lines(panic, 6);
    return g_strdup_printf("guest kernel panic: %s (last console lines: %s)", g_strstrip(line),
                           tail);
  }
  KvVmStopCause cause = s->vmm ? kv_vmm_stop_cause(s->vmm) : KV_VM_STOP_UNKNOWN;
  g_autofree char *qlog_path = g_build_filename(s->p.vmm_root, "log", "qemu", NULL);
  g_autofree char *qlog_file = g_strdup_printf("%s/%s.log", qlog_path, s->p.domain);
  g_autofree char *qlog = file_tail(qlog_file, 4096);
  const char *term = g_strrstr(qlog, "terminating on signal");
  g_autofree char *qline = term ? g_strndup(term, strcspn(term, "\n")) : NULL;
  switch (cause) {
  case KV_VM_STOP_SHUTDOWN:
    return g_strdup("the guest powered off (or reset)");
  case KV_VM_STOP_CRASHED:
    return g_strdup("the guest crashed");
  case KV_VM_STOP_DESTROYED:
    return g_strdup("the VM was destroyed outside katavm");
  default:
    if (qline)
      return g_strdup_printf("QEMU (pid %d) exited: %s", s->qemu_pid, qline);
    return g_strdup_printf("QEMU (pid %d) died unexpectedly (killed by SIGKILL, or crashed)",
                           s->qemu_pid);
  }
}

/* The VM is off (guest poweroff, crash, or our destroy). */
static void vm_is_off(Lifecycle *lc) {
  Shim *s = lc->s;
  if (!s->stop_reason && g_strcmp0(s->state, KV_SANDBOX_STOPPED) != 0) {
    s->stop_reason = s->powering_off ? g_strdup("stopped on request") : vm_off_reason(lc);
    shim_log("stop reason: %s", s->stop_reason);
  }
  shim_timer_clear(&lc->poweroff_timer);
  shim_timer_clear(&lc->poll_timer);
  hotplug_abort(lc->hp, "the VM is off");
  s->powering_off = FALSE;
  if (g_strcmp0(s->state, KV_SANDBOX_STOPPED) != 0)
    shim_log("VM is off");
  s->state = KV_SANDBOX_STOPPED;
  s->qemu_pid = 0;
  agent_drop(lc);
  shim_state_save(s);
  waiters_reply_all(lc->stop_waiters, &kv_m_shim_stop, NULL);
  /* A pooled VM that went off (QEMU died, the guest panicked) can serve
   * no one: it removes itself, and the keeper boots another. */
  if (s->pooled && !lc->destroy_waiters->len && !lc->destroy_requested)
    shim_log("a pooled VM that is off serves no one: removing it");
  if (lc->destroy_waiters->len || lc->destroy_requested || s->pooled)
    finish_destroy(lc);
}

static gboolean poweroff_timeout(gpointer user) {
  Lifecycle *lc = user;
  shim_timer_clear(&lc->poweroff_timer);
  shim_log("guest did not power off in %d ms; destroying the VM", POWEROFF_GRACE_MS);
  g_autoptr(GError) e = NULL;
  if (!vm_destroy(lc->s, &e))
    shim_log("destroy: %s", e->message);
  vm_is_off(lc);
  return G_SOURCE_REMOVE;
}

/* Fallback for a missed lifecycle event: poll the domain while powering off. */
static gboolean poweroff_poll(gpointer user) {
  Lifecycle *lc = user;
  Shim *s = lc->s;
  if (s->vmm && !kv_vmm_is_running(s->vmm, s->p.domain)) {
    shim_timer_clear(&lc->poll_timer);
    vm_is_off(lc);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static void on_shutdown_reply(KvConn *c, JsonObject *result, const GError *e, gpointer user) {
  /* Nothing to do: the lifecycle event (or the poll) reports the VM off. A
   * failed shutdown request is covered by the grace timer. */
}

/* Stop the VM (guest poweroff, destroy after a grace period), then answer
 * stop/destroy waiters. A hotplug under way fails now. */
static void begin_poweroff(Lifecycle *lc) {
  Shim *s = lc->s;
  hotplug_abort(lc->hp, "the sandbox is stopping");
  if (g_strcmp0(s->state, KV_SANDBOX_STOPPED) == 0) {
    vm_is_off(lc);
    return;
  }
  if (s->powering_off)
    return;
  s->powering_off = TRUE;
  if (s->agent && kv_conn_is_ready(s->agent))
    kv_call(s->agent, &kv_m_shutdown, NULL, 3000, on_shutdown_reply, lc);
  lc->poweroff_timer = shim_add_timeout(POWEROFF_GRACE_MS, poweroff_timeout, lc);
  lc->poll_timer = shim_add_timeout(100, poweroff_poll, lc);
}

void lifecycle_stop(Lifecycle *lc, KvConn *c, guint32 id) {
  g_ptr_array_add(lc->stop_waiters, waiter_new(c, id));
  begin_poweroff(lc);
}

void lifecycle_destroy(Lifecycle *lc, KvConn *c, guint32 id) {
  g_ptr_array_add(lc->destroy_waiters, waiter_new(c, id));
  begin_poweroff(lc);
}

void lifecycle_terminate(Lifecycle *lc) {
  shim_log("signal received: destroying the sandbox");
  lc->destroy_requested = TRUE;
  begin_poweroff(lc);
}

/* The daemon serving the share (virtiofsd, virtfs-proxy-helper) ended.
 * With the VM gone (it goes when QEMU closes the socket) or a stop under
 * way this is expected. Otherwise the guest's share is dead and every
 * request on it would hang in the guest: stop the VM and say why in the
 * state, so that callers get an error that names the cause instead of a
 * hang. */
typedef struct {
  Lifecycle *lc;
  char *why;
  int ticks;
} VfsdRecheck;

/* How long a clean virtiofsd exit waits for the VM's own stop (libvirt
 * sees a guest poweroff or QEMU's end late on a loaded host). */
#define VFSD_RECHECK_S 15

static gboolean vfsd_recheck(gpointer data) {
  VfsdRecheck *r = data;
  Shim *s = r->lc->s;
  gboolean vm_on = !s->powering_off && !s->destroying && !g_strcmp0(s->state, KV_SANDBOX_RUNNING) &&
                   s->vmm && kv_vmm_is_running(s->vmm, s->p.domain);
  if (vm_on && ++r->ticks < VFSD_RECHECK_S)
    return G_SOURCE_CONTINUE;
  on_vfsd_lost(r->lc, r->why, FALSE);
  g_free(r->why);
  g_free(r);
  return G_SOURCE_REMOVE;
}

static void on_vfsd_lost(gpointer user, const char *why, gboolean clean) {
  Lifecycle *lc = user;
  Shim *s = lc->s;
  if (clean && !s->powering_off && !s->destroying) {
    /* A clean exit follows QEMU's end, which libvirt may not have seen
     * yet: let the VM's own stop event tell why; look again each second
     * for a while. */
    shim_log("%s %s; waiting for the VM's stop event", vfsd_name(lc->vf), why);
    VfsdRecheck *r = g_new0(VfsdRecheck, 1);
    r->lc = lc;
    r->why = g_strdup(why);
    GSource *t = g_timeout_source_new_seconds(1);
    g_source_set_callback(t, vfsd_recheck, r, NULL);
    g_source_attach(t, shim_ctx);
    g_source_unref(t);
    return;
  }
  if (s->powering_off || s->destroying || g_strcmp0(s->state, KV_SANDBOX_RUNNING)) {
    shim_log("%s %s", vfsd_name(lc->vf), why);
    return;
  }
  if (s->vmm && !kv_vmm_is_running(s->vmm, s->p.domain)) {
    shim_log("%s %s after the VM", vfsd_name(lc->vf), why);
    vm_is_off(lc);
    return;
  }
  g_free(s->error);
  s->error = g_strdup_printf("%s %s: the sandbox's shared filesystem is gone, so the VM "
                             "was stopped",
                             vfsd_name(lc->vf), why);
  shim_log("%s", s->error);
  /* The reason every client's error gives (vm_is_off keeps a set one). */
  g_free(s->stop_reason);
  s->stop_reason = g_strdup(s->error);
  g_autoptr(GError) e = NULL;
  if (!vm_destroy(s, &e))
    shim_log("destroy: %s", e->message);
  vm_is_off(lc);
}

/* ---- libvirt events (from the libvirt event thread) ---- */

static gboolean vm_event_main(gpointer user) {
  Lifecycle *lc = user;
  Shim *s = lc->s;
  if (s->vmm && !kv_vmm_is_running(s->vmm, s->p.domain))
    vm_is_off(lc);
  return G_SOURCE_REMOVE;
}

static void on_vm_event(KvVmm *vmm, const char *domain, KvVmEvent ev, gpointer user) {
  Lifecycle *lc = user;
  if (g_strcmp0(domain, lc->s->p.domain) != 0)
    return;
  g_main_context_invoke(shim_ctx, vm_event_main, lc);
}

/* ---- agent channel ---- */

static void agent_connect_later(Lifecycle *lc);

static gboolean agent_silent(KvConn *c, guint silent_ms, GString *why, gpointer user) {
  Lifecycle *lc = user;
  Shim *s = lc->s;
  if (s->powering_off || s->qemu_pid <= 0)
    return FALSE; /* a guest shutting down goes quiet; the VM events say when it is off */
  char st = kv_proc_state(s->qemu_pid);
  if (silent_ms >= 2 * AGENT_PING_MS && kv_conn_is_ready(c))
    shim_log("the agent has been silent for %u ms (QEMU state %c)", silent_ms, st ? st : '-');
  if (silent_ms >= AGENT_DEAD_MS && (st == 'T' || st == 't')) {
    g_string_append_printf(why, "QEMU (pid %d) is stopped", s->qemu_pid);
    return TRUE;
  }
  if (silent_ms >= AGENT_DEAD_MS && (st == 0 || st == 'Z' || st == 'X')) {
    g_string_append_printf(why, "QEMU (pid %d) is gone", s->qemu_pid);
    return TRUE;
  }
  if (silent_ms >= AGENT_HUNG_MS && kv_conn_is_ready(c)) {
    g_string_append_printf(why, "QEMU (pid %d) runs but the guest is hung", s->qemu_pid);
    return TRUE;
  }
  return FALSE;
}

/* The agent was declared dead (kv_conn_keepalive) while the sandbox ran:
 * the sandbox is declared failed. Its VM is killed (a guest that comes
 * back after SIGCONT would find its channel gone and its processes'
 * clients answered), the state becomes stopped with the reason. */
static void declare_failed(Lifecycle *lc, const char *why) {
  Shim *s = lc->s;
  shim_log("declaring the sandbox failed: %s", why);
  g_free(s->stop_reason);
  s->stop_reason = g_strdup_printf("declared failed: %s", why);
  if (s->qemu_pid > 0 && kv_proc_state(s->qemu_pid) != 0)
    kill(s->qemu_pid, SIGKILL);
  g_autoptr(GError) e = NULL;
  if (!vm_destroy(s, &e))
    shim_log("destroy: %s", e->message);
  vm_is_off(lc);
}

static void on_agent_closed(KvConn *c, const GError *why, gpointer user) {
  Lifecycle *lc = user;
  Shim *s = lc->s;
  shim_log("agent channel closed: %s", why ? why->message : "EOF");
  if (c != s->agent)
    return;
  relay_agent_lost(lc->rl);
  g_clear_pointer(&s->agent, kv_conn_unref);
  if (g_error_matches(why, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT) &&
      !g_strcmp0(s->state, KV_SANDBOX_RUNNING) && !s->powering_off) {
    declare_failed(lc, why->message);
    return;
  }
  /* A live VM whose agent dropped the channel (restart, or a protocol
   * violation): reconnect, the agent reopens its port. */
  if (!g_strcmp0(s->state, KV_SANDBOX_RUNNING) && !s->powering_off)
    agent_connect_later(lc);
}

static void on_agent_request(KvConn *c, guint32 id, const char *method, JsonObject *params,
                             gpointer user) {
  g_autoptr(GError) e = g_error_new(KV_ERROR_DOMAIN, KV_E_INVALID, "the host serves no requests");
  shim_reply_error(c, id, e);
}

static void on_agent_frame(KvConn *c, const KvFrame *f, gpointer user) {
  Lifecycle *lc = user;
  relay_agent_frame(lc->rl, f);
}

static KvConn *agent_open(Lifecycle *lc, guint timeout_ms, GError **error) {
  static const KvConnHandlers h = {
      .on_request = on_agent_request, .on_frame = on_agent_frame, .on_closed = on_agent_closed};
  Shim *s = lc->s;
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  int fd;
  /* QEMU creates the listening socket shortly after the domain starts. */
  for (;;) {
    g_autoptr(GError) e = NULL;
    fd = kv_unix_connect(s->p.agent_sock, &e);
    if (fd >= 0)
      break;
    if (g_get_monotonic_time() > deadline) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_AGENT, "the agent socket: %s", e->message);
      return NULL;
    }
    g_usleep(10000);
  }
  KvConn *c = kv_conn_new(fd, "shim", &h, lc, NULL);
  kv_conn_keepalive(c, AGENT_PING_MS, AGENT_DEAD_MS, agent_silent, lc, NULL);
  /* Process output comes in 1 MiB frames that QEMU writes page by page:
   * read them in big gulps, not a wake-up per page. */
  kv_conn_gather_frames(c);
  return c;
}

static gboolean agent_reconnect(gpointer user) {
  Lifecycle *lc = user;
  Shim *s = lc->s;
  shim_timer_clear(&lc->reconnect_timer);
  if (s->agent || g_strcmp0(s->state, KV_SANDBOX_RUNNING))
    return G_SOURCE_REMOVE;
  g_autoptr(GError) e = NULL;
  s->agent = agent_open(lc, 1000, &e);
  if (!s->agent) {
    shim_log("agent reconnect: %s", e->message);
    agent_connect_later(lc);
  }
  return G_SOURCE_REMOVE;
}

static void agent_connect_later(Lifecycle *lc) {
  if (!lc->reconnect_timer)
    lc->reconnect_timer = shim_add_timeout(500, agent_reconnect, lc);
}

/* ---- startup ---- */

/* While libvirt starts QEMU (virDomainCreateXML waits for its monitor, as
 * long as it takes), a QEMU that is stopped (SIGSTOP) would hold the create
 * forever: a thread watches it and kills it after AGENT_DEAD_MS stopped,
 * so that the start fails. */
typedef struct {
  char *needle; /* in QEMU's command line: "guest=<domain>," */
  gint done;
  int pid;
  gint killed;
} StartWatch;

static int find_cmdline(const char *needle) {
  g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name(d))) {
    if (!g_ascii_isdigit(n[0]))
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%s/cmdline", n);
    g_autofree char *cmd = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &cmd, &len, NULL) || len == 0)
      continue;
    for (gsize i = 0; i + 1 < len; i++)
      if (!cmd[i])
        cmd[i] = ' ';
    if (strstr(cmd, needle))
      return atoi(n);
  }
  return 0;
}

/* A libvirt call that fails halfway (say, while it probes QEMU's
 * capabilities in a fresh root) can leave a QEMU of the sandbox's own
 * embedded root running: kill whatever still names that root. A zombie has
 * no command line and is not found again. */
static void kill_root_procs(const char *vmm_root) {
  g_autofree char *needle = g_strdup_printf("%s/", vmm_root);
  for (int i = 0; i < 50; i++) {
    int pid = find_cmdline(needle);
    if (pid <= 0)
      return;
    shim_log("killing pid %d, left behind in %s", pid, vmm_root);
    kill(pid, SIGKILL);
    g_usleep(20000);
  }
}

static gpointer start_watch(gpointer user) {
  StartWatch *w = user;
  gint64 stopped_since = 0;
  while (!g_atomic_int_get(&w->done)) {
    if (w->pid <= 0 || kv_proc_state(w->pid) == 0)
      w->pid = find_cmdline(w->needle);
    char st = kv_proc_state(w->pid);
    gint64 now = g_get_monotonic_time();
    if (w->pid > 0 && (st == 'T' || st == 't')) {
      if (!stopped_since) {
        stopped_since = now;
      } else if (now - stopped_since >= (gint64)AGENT_DEAD_MS * 1000) {
        g_atomic_int_set(&w->killed, 1);
        kill(w->pid, SIGKILL);
        break;
      }
    } else {
      stopped_since = 0;
    }
    g_usleep(200000);
  }
  return NULL;
}

gboolean lifecycle_vmm_connect(Lifecycle *lc, GError **error) {
  Shim *s = lc->s;
  shim_log("opening libvirt");
  if (s->cfg.uri) {
    s->uri = g_strdup(s->cfg.uri);
  } else {
    gboolean jailed = jail_enabled(s);
    if (jailed) {
      if (!jail_prepare(s, &s->qemu_uid, error))
        return FALSE;
      g_free(lc->qemu_label);
      lc->qemu_label = g_strdup_printf("+%u:+%u", s->qemu_uid, s->qemu_uid);
      shim_log("QEMU runs as uid %u", s->qemu_uid);
    }
    s->uri = kv_vmm_embed_prepare_ns(s->p.vmm_root, s->p.caps_cache, jailed, error);
    if (!s->uri)
      return FALSE;
  }
  s->vmm = kv_vmm_open(s->uri, error);
  if (!s->vmm)
    return FALSE;
  kv_vmm_set_event_handler(s->vmm, on_vm_event, lc);
  return TRUE;
}

/* Seed the guest's RNG from the host's (msg.h, reseed): 32 bytes of
 * getrandom(2), hex on the wire, wiped after the call. */
static gboolean agent_reseed(KvConn *agent, GError **error) {
  guint8 seed[32];
  if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "getrandom: %s", g_strerror(errno));
    return FALSE;
  }
  char hex[2 * sizeof seed + 1];
  for (gsize i = 0; i < sizeof seed; i++)
    g_snprintf(hex + 2 * i, 3, "%02x", seed[i]);
  KvReseedParams p = {.seed = hex};
  g_autoptr(JsonObject) o = kv_msg_encode(kv_m_reseed.params, &p);
  g_autoptr(JsonObject) r =
      kv_conn_call_sync(agent, kv_m_reseed.name, o, KV_CALL_TIMEOUT_MS, error);
  explicit_bzero(seed, sizeof seed);
  explicit_bzero(hex, sizeof hex);
  if (!r) {
    g_prefix_error(error, "reseeding the guest's RNG: ");
    return FALSE;
  }
  return TRUE;
}

/* The shim is a child subreaper (lifecycle_start_reaper): daemonized
 * processes that libvirt starts (QEMU itself, and the QEMU that probes
 * capabilities in a fresh root) end up its children. Otherwise their
 * zombies wait for this host's PID 1, which reaps about once a second,
 * and libvirt's destroy, polling kill(pid, 0) until QEMU is gone, waits
 * with them (~1.1 s of every removal). A thread, not the main loop: the
 * main thread may be the one waiting in libvirt meanwhile.
 *
 * A zombie is reaped here at once only when nobody else will wait for it:
 * a process in a session of its own that does not lead it, that is, the
 * grandchild of a double fork. Anything else (a child that libvirt or GLib
 * forked and will wait for, such as the session leader in the middle of
 * libvirt's double fork) is reaped here only when still unreaped after
 * 10 s: an orphan, such as the middle process of
 * QEMU's own -daemonize.
 *
 * waitid(P_ALL) reports one zombie, always the same while it stays, so the
 * children are listed from /proc: a zombie that waits for its 10 s does not
 * hide the ones behind it. */
#define ORPHAN_REAP_US (10 * G_USEC_PER_SEC)

static void reap_children(GHashTable *first_seen, pid_t own_session) {
  g_autoptr(GHashTable) now_seen = g_hash_table_new(NULL, NULL);
  g_autoptr(GDir) tasks = g_dir_open("/proc/self/task", 0, NULL);
  const char *tid;
  gint64 now = g_get_monotonic_time();
  while (tasks && (tid = g_dir_read_name(tasks))) {
    g_autofree char *path = g_strdup_printf("/proc/self/task/%s/children", tid);
    g_autofree char *list = NULL;
    if (!g_file_get_contents(path, &list, NULL, NULL))
      continue;
    g_auto(GStrv) pids = g_strsplit(g_strstrip(list), " ", -1);
    for (char **p = pids; *p; p++) {
      pid_t pid = (pid_t)atoi(*p);
      if (pid <= 0 || kv_proc_state(pid) != 'Z')
        continue;
      pid_t sid = kv_proc_session(pid);
      gboolean daemon = sid > 0 && sid != own_session && sid != pid;
      gpointer key = GINT_TO_POINTER(pid);
      gpointer at = g_hash_table_lookup(first_seen, key);
      if (!at) {
        at = g_memdup2(&now, sizeof now);
        g_hash_table_insert(first_seen, key, at);
      }
      if (daemon || now - *(gint64 *)at > ORPHAN_REAP_US) {
        waitpid(pid, NULL, WNOHANG);
        g_hash_table_remove(first_seen, key);
        continue;
      }
      g_hash_table_add(now_seen, key);
    }
  }
  /* Forget the zombies that their own parent reaped. */
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init(&it, first_seen);
  while (g_hash_table_iter_next(&it, &key, NULL))
    if (!g_hash_table_contains(now_seen, key))
      g_hash_table_iter_remove(&it);
}

static gpointer child_reaper(gpointer unused) {
  g_autoptr(GHashTable) first_seen = g_hash_table_new_full(NULL, NULL, NULL, g_free);
  pid_t own_session = getsid(0);
  for (;;) {
    siginfo_t si = {0};
    if (waitid(P_ALL, 0, &si, WEXITED | WNOWAIT) < 0) {
      if (errno == EINTR)
        continue;
      /* ECHILD: no child at the moment (a recovered shim's QEMU is not
       * its child; a new QEMU may come with a start). */
      g_usleep(500 * 1000);
      continue;
    }
    reap_children(first_seen, own_session);
    /* A zombie is still there (someone else's to reap): look again soon. */
    g_usleep(50 * 1000);
  }
  return NULL;
}

void lifecycle_start_reaper(void) {
  g_thread_unref(g_thread_new("katavm-reaper", child_reaper, NULL));
}

gboolean lifecycle_boot(Lifecycle *lc, gboolean recover, const KvShimStateResult *old,
                        GError **error) {
  Shim *s = lc->s;
  gboolean vfs = vfsd_enabled(lc->vf);
  if (!recover) {
    hotplug_choose_memory(lc->hp);
    if (!net_prepare(hotplug_net(lc->hp), error))
      return FALSE;
    if (vfs && !vfsd_start(lc->vf, error))
      return FALSE;
    if (vfs && lc->qemu_label && !jail_give(s, s->qemu_uid, vfsd_socket(lc->vf), error))
      return FALSE;
    g_autofree char *cmdline = kv_guest_cmdline();
    KvVmConfig vc = {
        .name = s->p.domain,
        .kernel = s->cfg.kernel,
        .initrd = s->cfg.initrd,
        .cmdline = cmdline,
        .accel = s->accel,
        .vcpus = s->cfg.vcpus,
        .max_vcpus = s->cfg.max_vcpus,
        .memory_mib = s->cfg.memory_mib,
        .max_memory_mib = s->cfg.max_memory_mib,
        .agent_socket = s->p.agent_sock,
        .shared_dir = s->p.shared,
        .virtiofs_socket = vfsd_kind(lc->vf) == VFSD_VIRTIOFS ? vfsd_socket(lc->vf) : NULL,
        .ninep_proxy_socket = vfsd_kind(lc->vf) == VFSD_9P_PROXY ? vfsd_socket(lc->vf) : NULL,
        .console_log = s->p.console,
        .spare_root_ports = SPARE_ROOT_PORTS,
        .qemu_as_root = s->cfg.uri != NULL,
        .memory_dimm = hotplug_memory_dimm(lc->hp),
        .qemu_label = lc->qemu_label,
        .console_socket = console_socket(lc->console),
        .tb_cache_mib = s->cfg.tb_cache_mib,
    };
    shim_log("starting domain");
    StartWatch w = {.needle = g_strdup_printf("guest=%s,", s->p.domain)};
    GThread *watch = g_thread_new("katavm-start-watch", start_watch, &w);
    gboolean started = kv_vmm_start(s->vmm, &vc, error);
    g_atomic_int_set(&w.done, 1);
    g_thread_join(watch);
    g_free(w.needle);
    if (g_atomic_int_get(&w.killed)) {
      g_clear_error(error);
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_TIMEOUT,
                  "QEMU (pid %d) was stopped (SIGSTOP) while starting; killed it after %d s", w.pid,
                  AGENT_DEAD_MS / 1000);
      if (started)
        vm_destroy(s, NULL);
      return FALSE;
    }
    if (!started)
      return FALSE;
    shim_log("domain started");
  } else {
    /* A fresh open of an embedded root reconnects to QEMU asynchronously. */
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!kv_vmm_is_running(s->vmm, s->p.domain)) {
      if (g_get_monotonic_time() > deadline) {
        g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "the VM of sandbox '%s' is not running",
                    s->id);
        return FALSE;
      }
      g_usleep(50000);
    }
    if (vfs && !vfsd_adopt(lc->vf, old, error))
      return FALSE;
  }
  s->qemu_pid = kv_vmm_qemu_pid(s->vmm, s->p.domain);
  g_autoptr(GError) cerr = NULL;
  if (!console_attach(lc->console, &cerr))
    shim_log("no console log: %s", cerr->message);
  s->agent = agent_open(lc, 10000, error);
  if (!s->agent)
    return FALSE;
  shim_log("agent channel connected");
  if (!kv_conn_wait_ready(s->agent, KV_BOOT_TIMEOUT_MS, error)) {
    /* A failed create removes the console log with the rest: quote it. */
    g_autofree char *tail = lifecycle_console_tail(lc);
    g_prefix_error(
        error, "the guest agent did not come up (last console lines: %s): ", *tail ? tail : "none");
    return FALSE;
  }
  shim_log("agent said hello");
  /* Boot waits here, before the main loop runs: not a nested loop. */
  g_autoptr(JsonObject) r =
      kv_conn_call_sync(s->agent, kv_m_check.name, NULL, KV_CALL_TIMEOUT_MS, error);
  KvCheckResult check;
  if (!r || !kv_result_decode(&kv_m_check, r, &check, error))
    return FALSE;
  if (!recover && !agent_reseed(s->agent, error)) {
    kv_msg_clear(kv_m_check.result, &check);
    return FALSE;
  }
  if (!recover && !net_attach(hotplug_net(lc->hp), error)) {
    kv_msg_clear(kv_m_check.result, &check);
    return FALSE;
  }
  s->state = KV_SANDBOX_RUNNING;
  shim_state_save(s);
  shim_log("sandbox %s running (qemu pid %d, accel %s, agent %s, guest uptime %" G_GINT64_FORMAT
           " ms)",
           s->id, s->qemu_pid, kv_accel_name(s->accel),
           check.agent_version ? check.agent_version : "?", check.uptime_ms);
  kv_msg_clear(kv_m_check.result, &check);
  return TRUE;
}

void lifecycle_boot_failed(Lifecycle *lc, gboolean recover) {
  Shim *s = lc->s;
  if (recover) {
    /* Whatever failed (libvirt busy or not reachable, the agent silent, the
     * VM gone), this shim does not know that the VM is gone for good, and
     * its state and mounts are the sandbox's, not this shim's: leave them
     * all for `katavm sandbox rm -f` (--cleanup), which finds and removes
     * everything, QEMU included. */
    shim_log("recovery failed: the VM and the sandbox's state are left in place");
    agent_drop(lc);
    g_clear_pointer(&s->vmm, kv_vmm_close);
    return;
  }
  /* Leave nothing behind: no VM, no state. */
  agent_drop(lc);
  g_autoptr(GError) ce = NULL;
  gboolean gone = vm_destroy(s, &ce);
  g_clear_pointer(&s->vmm, kv_vmm_close);
  if (!s->cfg.uri)
    kill_root_procs(s->p.vmm_root);
  if (!gone || !remove_state(lc, &ce))
    shim_log("cleanup after failure: %s", ce ? ce->message : "?");
}

gboolean lifecycle_cleanup(Lifecycle *lc, GError **error) {
  Shim *s = lc->s;
  /* Without config (corrupt state) the embedded root is still where the id
   * says; with a daemon URI the config names it. */
  gboolean have_vmm_root = g_file_test(s->p.vmm_root, G_FILE_TEST_IS_DIR);
  /* A virtiofsd a dead shim left goes with the VM (it would exit once QEMU
   * closes its socket; it is not waited for). */
  KvShimStateResult old;
  g_autoptr(GError) le = NULL;
  if (shim_state_load(s, &old, &le)) {
    vfsd_kill_recorded(lc->vf, &old);
    kv_msg_clear(kv_m_shim_state.result, &old);
  }
  if (s->cfg.uri || have_vmm_root) {
    if (!lifecycle_vmm_connect(lc, error))
      return FALSE;
    /* Reconnecting to a surviving QEMU takes a moment after open. */
    for (int i = 0; i < 20 && !kv_vmm_is_running(s->vmm, s->p.domain); i++)
      g_usleep(50000);
    if (!vm_destroy(s, error))
      return FALSE;
    g_clear_pointer(&s->vmm, kv_vmm_close);
  }
  s->destroying = TRUE;
  return remove_state(lc, error);
}

/* ---- the warm pool (docs/pool.md) ---- */

static void pool_unwatch(Lifecycle *lc) {
  shim_timer_clear(&lc->pool_src);
  if (lc->pool_fd >= 0)
    close(lc->pool_fd);
  lc->pool_fd = -1;
}

static gboolean on_keeper_gone(gint fd, GIOCondition cond, gpointer user) {
  Lifecycle *lc = user;
  char buf[64];
  /* The keeper never writes: anything readable is its end. */
  if ((cond & G_IO_IN) && read(fd, buf, sizeof buf) > 0)
    return G_SOURCE_CONTINUE;
  g_source_unref(lc->pool_src);
  lc->pool_src = NULL;
  close(lc->pool_fd);
  lc->pool_fd = -1;
  if (lc->s->pooled) {
    shim_log("the pool keeper is gone: destroying this pooled VM");
    lifecycle_terminate(lc);
  }
  return G_SOURCE_REMOVE;
}

void lifecycle_pool_watch(Lifecycle *lc, int fd) {
  lc->pool_fd = fd;
  lc->pool_src = g_unix_fd_source_new(fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback(lc->pool_src, (GSourceFunc)(void (*)(void))on_keeper_gone, lc, NULL);
  g_source_attach(lc->pool_src, shim_ctx);
}

typedef struct {
  Lifecycle *lc;
  KvConn *conn;
  guint32 id;
} AdoptWait;

static void on_adopt_reseeded(KvConn *agent, JsonObject *result, const GError *error,
                              gpointer user) {
  AdoptWait *w = user;
  if (!result) {
    /* The sandbox is this client's now, but its RNG is not fresh: fail the
     * take, the library destroys it. */
    g_autoptr(GError) e = shim_agent_error(error, "reseeding the guest's RNG: ", TRUE);
    shim_reply_error(w->conn, w->id, e);
  } else {
    kv_reply(w->conn, w->id, &kv_m_shim_adopt, NULL);
  }
  kv_conn_unref(w->conn);
  g_free(w);
}

void lifecycle_adopt(Lifecycle *lc, KvConn *c, guint32 id, JsonObject *params) {
  Shim *s = lc->s;
  g_autoptr(GError) e = NULL;
  KvAdoptParams p = {0};
  if (!kv_params_decode(&kv_m_shim_adopt, params, &p, &e)) {
    shim_reply_error(c, id, e);
    return;
  }
  if (!s->pooled || lc->pool_fd < 0) {
    e = g_error_new(KV_ERROR_DOMAIN, KV_E_STATE, "sandbox %s is not a pooled VM", s->id);
  } else if (!shim_agent_usable(s, &e)) {
    /* not running, or stopping (the keeper went) */
  } else {
    Net *net = hotplug_net(lc->hp);
    g_autofree char *new_dir = g_build_filename(s->p.root, "sandboxes", p.id, NULL);
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *old_id = g_strdup(s->cfg.id);
    g_autofree char *old_created = g_strdup(s->cfg.created);
    g_autofree char *old_net = g_strdup(s->cfg.net);
    g_free(s->cfg.id);
    s->cfg.id = g_strdup(p.id);
    g_free(s->cfg.created);
    s->cfg.created = g_date_time_format_iso8601(now);
    if (p.netns) {
      /* As a cold create with a netns: Kata's tcfilter model. The
       * client's fd of it, when it sent one, is what counts. */
      if (p.netns_fd) {
        int fd = kv_conn_take_fd(c);
        if (fd < 0)
          shim_log("adopt: netns_fd set but no fd came; using the path %s", p.netns);
        else
          net_hold(net, fd);
      }
      g_free(s->cfg.netns);
      s->cfg.netns = g_strdup(p.netns);
      g_free(s->cfg.net);
      s->cfg.net = g_strdup("tcfilter");
    }
    gboolean user = !p.netns && !g_strcmp0(p.net, "user");
    if (user) {
      /* As a cold create with net "user": QEMU's NIC and its forwards are
       * added after the boot there too (net.c, user_attach). */
      g_free(s->cfg.net);
      s->cfg.net = g_strdup("user");
      g_strfreev(s->cfg.publish);
      s->cfg.publish = g_strdupv(p.publish);
    } else if (p.net && g_strcmp0(p.net, "none")) {
      e = g_error_new(KV_ERROR_DOMAIN, KV_E_INVALID, "adopt: net '%s' is not none or user", p.net);
    }
    /* The namespace is checked first (it is the caller's input), then the
     * config with the new id (atomic write), then the directory under its
     * new name: the id is this sandbox's, or taken (EXISTS). */
    g_autofree char *inst = g_build_filename(s->p.dir, "instance", NULL);
    gboolean ok = !e && ((!p.netns && !user) || net_prepare(net, &e)) &&
                  g_file_set_contents_full(inst, s->p.instance, -1, G_FILE_SET_CONTENTS_CONSISTENT,
                                           0600, &e) &&
                  kv_config_save(&s->cfg, s->p.config, &e);
    if (ok && renameat2(AT_FDCWD, s->p.dir, AT_FDCWD, new_dir, RENAME_NOREPLACE) < 0) {
      int en = errno;
      g_clear_error(&e);
      e = g_error_new(KV_ERROR_DOMAIN, en == EEXIST ? KV_E_EXISTS : KV_E_IO,
                      en == EEXIST ? "a sandbox with id '%s' already exists"
                                   : "cannot adopt as sandbox '%s': %s",
                      p.id, g_strerror(en));
      ok = FALSE;
    }
    if (!ok) {
      /* Still pooled, as it was booted. */
      g_free(s->cfg.id);
      s->cfg.id = g_steal_pointer(&old_id);
      g_free(s->cfg.created);
      s->cfg.created = g_steal_pointer(&old_created);
      g_free(s->cfg.net);
      s->cfg.net = g_steal_pointer(&old_net);
      g_clear_pointer(&s->cfg.netns, g_free);
      g_clear_pointer(&s->cfg.publish, g_strfreev);
      net_forget(net);
      g_autoptr(GError) re = NULL;
      if (!kv_config_save(&s->cfg, s->p.config, &re))
        shim_log("cannot restore the pooled config: %s", re->message);
      unlink(inst);
    } else {
      g_autofree char *was = g_strdup(s->id);
      /* The keeper's mark; a sandbox has no use for it. */
      g_autofree char *ready = g_build_filename(new_dir, "ready", NULL);
      unlink(ready);
      KvPaths np;
      kv_paths_init(&np, s->p.root, p.id);
      shim_set_identity(s, p.id, &np);
      if (jail_enabled(s))
        jail_rename(s, was);
      pool_unwatch(lc);
      shim_state_save(s);
      shim_log("adopted: pooled VM %s is sandbox %s", was, s->id);
      /* Its network (taps for the netns' interfaces) and its names: the
       * pooled boot told the guest the instance id as its hostname. The
       * agent calls wait here (as a NIC hotplug does). */
      /* The reseed: 32 bytes of the host's RNG, as at boot. */
      guint8 seed[32];
      if (!net_attach(net, &e)) {
        shim_state_save(s);
        g_prefix_error(&e, "sandbox '%s' from the pool: ", s->id);
      } else if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        e = g_error_new(KV_ERROR_DOMAIN, KV_E_IO, "getrandom: %s", g_strerror(errno));
      } else {
        char hex[2 * sizeof seed + 1];
        for (gsize i = 0; i < sizeof seed; i++)
          g_snprintf(hex + 2 * i, 3, "%02x", seed[i]);
        KvReseedParams rp = {.seed = hex};
        AdoptWait *w = g_new0(AdoptWait, 1);
        w->lc = lc;
        w->conn = kv_conn_ref(c);
        w->id = id;
        kv_call(s->agent, &kv_m_reseed, &rp, KV_CALL_TIMEOUT_MS, on_adopt_reseeded, w);
        explicit_bzero(seed, sizeof seed);
        explicit_bzero(hex, sizeof hex);
        kv_msg_clear(kv_m_shim_adopt.params, &p);
        return;
      }
    }
  }
  kv_msg_clear(kv_m_shim_adopt.params, &p);
  shim_reply_error(c, id, e);
}
