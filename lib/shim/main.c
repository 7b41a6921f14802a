/* lib/shim/main.c: katavm-shim, the per-sandbox supervisor.
 *
 * One shim per sandbox owns the libvirt connection (for the embedded driver:
 * the one process allowed to hold the sandbox's root, with an event loop so
 * guest poweroff and device events are seen), the agent channel, and the
 * sandbox's state on disk. Clients (libkatavm in any process) talk to it over
 * a unix socket with the same framed protocol the agent speaks.
 *
 * Modes:
 *   --create   boot the VM, wait for the agent, report on --ready-fd, serve
 *   --recover  reattach to a running VM whose previous shim died, serve
 *   --cleanup  destroy the VM if any, remove all state, exit
 * On any failure before "ready" the shim leaves nothing behind: no VM and no
 * state directory. */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"
#include "sandbox-internal.h"
#include "vmm.h"
#include "shim.h"

#define POWEROFF_GRACE_MS 8000
#define SPARE_ROOT_PORTS 8

/* The shim's own main context. libvirt's default event implementation
 * (GLib based since libvirt 6) iterates the global default context on its
 * event thread; our sources must not live there or that thread would
 * dispatch them behind the main thread's back. */
GMainContext *shim_ctx;

static GSource *add_timeout(guint ms, GSourceFunc fn, gpointer data) {
  GSource *src = g_timeout_source_new(ms);
  g_source_set_callback(src, fn, data, NULL);
  g_source_attach(src, shim_ctx);
  return src;
}

static void timer_clear(GSource **src) {
  if (*src) {
    g_source_destroy(*src);
    g_source_unref(*src);
    *src = NULL;
  }
}

void waiter_free(gpointer p) {
  Waiter *w = p;
  kv_conn_unref(w->conn);
  g_free(w);
}

Waiter *waiter_new(KvConn *c, guint32 id) {
  Waiter *w = g_new0(Waiter, 1);
  w->conn = kv_conn_ref(c);
  w->id = id;
  return w;
}

void shim_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *m = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *ts = g_date_time_format(now, "%H:%M:%S.%f");
  fprintf(stderr, "%s katavm-shim[%d]: %s\n", ts, getpid(), m);
}

/* ---- state file ---- */

static JsonObject *state_object(Shim *s) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, "id", s->id);
  json_object_set_string_member(o, "state", s->state);
  json_object_set_int_member(o, "shim_pid", getpid());
  json_object_set_int_member(o, "qemu_pid", s->qemu_pid);
  json_object_set_string_member(o, "accel", kv_accel_name(s->accel));
  json_object_set_string_member(o, "libvirt_uri", s->uri ? s->uri : "");
  json_object_set_int_member(o, "vcpus", s->cfg.vcpus);
  json_object_set_int_member(o, "max_vcpus", s->cfg.max_vcpus);
  json_object_set_int_member(o, "memory_mib", s->cfg.memory_mib);
  json_object_set_int_member(o, "max_memory_mib", s->cfg.max_memory_mib);
  json_object_set_string_member(o, "created", s->cfg.created);
  json_object_set_string_member(o, "console_log", s->p.console);
  if (s->nics)
    hotplug_describe(s, o);
  return o;
}

void state_save(Shim *s) {
  if (s->destroying)
    return;
  g_autoptr(JsonObject) o = state_object(s);
  g_autoptr(GError) e = NULL;
  if (!kv_json_file_save(o, s->p.state, &e))
    shim_log("cannot save state: %s", e->message);
}

/* ---- VM teardown ---- */

static void reply_all(GPtrArray *waiters, const GError *e) {
  for (guint i = 0; i < waiters->len; i++) {
    Waiter *w = waiters->pdata[i];
    if (e)
      kv_conn_reply_error(w->conn, w->id, kv_error_code_of(e), e->message);
    else {
      g_autoptr(JsonObject) r = json_object_new();
      kv_conn_reply(w->conn, w->id, r);
    }
    kv_conn_flush(w->conn, 2000, NULL);
  }
  g_ptr_array_set_size(waiters, 0);
}

static void agent_drop(Shim *s) {
  timer_clear(&s->reconnect_timer);
  relay_agent_lost(s);
  if (s->agent) {
    kv_conn_close(s->agent);
    g_clear_pointer(&s->agent, kv_conn_unref);
  }
}

/* Remove everything of this sandbox on the host. The VM must be gone. */
static gboolean remove_state(Shim *s, GError **error) {
  relay_unmount_all(s);
  return kv_rm_rf(s->p.run, error) && kv_rm_rf(s->p.dir, error);
}

/* Hard stop of the VM, tolerant of it being gone already. */
static gboolean vm_destroy(Shim *s, GError **error) {
  if (!s->vmm)
    return TRUE;
  return kv_vmm_destroy(s->vmm, s->p.domain, error);
}

static void finish_destroy(Shim *s) {
  g_autoptr(GError) e = NULL;
  agent_drop(s);
  gboolean ok = vm_destroy(s, &e);
  if (ok) {
    s->destroying = TRUE;
    if (s->vmm)
      g_clear_pointer(&s->vmm, kv_vmm_close);
    ok = remove_state(s, &e);
  }
  if (!ok)
    shim_log("destroy failed: %s", e->message);
  reply_all(s->destroy_waiters, ok ? NULL : e);
  if (ok)
    g_main_loop_quit(s->loop);
}

/* The VM is off (guest poweroff, crash, or our destroy). */
static void vm_is_off(Shim *s) {
  timer_clear(&s->poweroff_timer);
  timer_clear(&s->poll_timer);
  s->powering_off = FALSE;
  if (g_strcmp0(s->state, "stopped") != 0)
    shim_log("VM is off");
  s->state = "stopped";
  s->qemu_pid = 0;
  agent_drop(s);
  state_save(s);
  reply_all(s->stop_waiters, NULL);
  if (s->destroy_waiters->len || s->destroy_requested)
    finish_destroy(s);
}

static gboolean poweroff_timeout(gpointer user) {
  Shim *s = user;
  timer_clear(&s->poweroff_timer);
  shim_log("guest did not power off in %d ms; destroying the VM", POWEROFF_GRACE_MS);
  g_autoptr(GError) e = NULL;
  if (!vm_destroy(s, &e))
    shim_log("destroy: %s", e->message);
  vm_is_off(s);
  return G_SOURCE_REMOVE;
}

/* Fallback for a missed lifecycle event: poll the domain while powering off. */
static gboolean poweroff_poll(gpointer user) {
  Shim *s = user;
  if (s->vmm && !kv_vmm_is_running(s->vmm, s->p.domain)) {
    timer_clear(&s->poll_timer);
    vm_is_off(s);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static void on_shutdown_reply(KvConn *c, JsonObject *result, const GError *e, gpointer user) {
  /* Nothing to do: the lifecycle event (or the poll) reports the VM off. A
   * failed shutdown request is covered by the grace timer. */
}

void begin_poweroff(Shim *s) {
  if (g_strcmp0(s->state, "stopped") == 0) {
    vm_is_off(s);
    return;
  }
  if (s->powering_off)
    return;
  s->powering_off = TRUE;
  if (s->agent && kv_conn_is_ready(s->agent))
    kv_conn_call(s->agent, KV_M_AGENT_SHUTDOWN, NULL, 3000, on_shutdown_reply, s);
  s->poweroff_timer = add_timeout(POWEROFF_GRACE_MS, poweroff_timeout, s);
  s->poll_timer = add_timeout(100, poweroff_poll, s);
}

/* ---- libvirt events (from the libvirt event thread) ---- */

static gboolean vm_event_main(gpointer user) {
  Shim *s = user;
  if (s->vmm && !kv_vmm_is_running(s->vmm, s->p.domain))
    vm_is_off(s);
  return G_SOURCE_REMOVE;
}

static void on_vm_event(KvVmm *vmm, const char *domain, KvVmEvent ev, gpointer user) {
  Shim *s = user;
  if (g_strcmp0(domain, s->p.domain) != 0)
    return;
  g_main_context_invoke(shim_ctx, vm_event_main, s);
}

/* ---- agent channel ---- */

static void agent_connect_later(Shim *s);

static void on_agent_closed(KvConn *c, const GError *why, gpointer user) {
  Shim *s = user;
  shim_log("agent channel closed: %s", why ? why->message : "EOF");
  if (c != s->agent)
    return;
  relay_agent_lost(s);
  g_clear_pointer(&s->agent, kv_conn_unref);
  /* A live VM whose agent dropped the channel (restart, or a protocol
   * violation): reconnect, the agent reopens its port. */
  if (!g_strcmp0(s->state, "running") && !s->powering_off)
    agent_connect_later(s);
}

static void on_agent_request(KvConn *c, guint32 id, const char *method, JsonObject *params,
                             gpointer user) {
  kv_conn_reply_error(c, id, KATAVM_E_INVALID, "the host serves no requests");
}

static void on_agent_frame(KvConn *c, const KvFrame *f, gpointer user) {
  relay_agent_frame(user, f);
}

static int connect_unix(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static KvConn *agent_open(Shim *s, guint timeout_ms, GError **error) {
  static const KvConnHandlers h = {
      .on_request = on_agent_request, .on_frame = on_agent_frame, .on_closed = on_agent_closed};
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  int fd;
  /* QEMU creates the listening socket shortly after the domain starts. */
  while ((fd = connect_unix(s->p.agent_sock)) < 0) {
    if (g_get_monotonic_time() > deadline) {
      g_set_error(error, KV_ERROR, KATAVM_E_AGENT, "cannot connect to the agent socket %s: %s",
                  s->p.agent_sock, g_strerror(errno));
      return NULL;
    }
    g_usleep(10000);
  }
  KvConn *c = kv_conn_new(fd, "shim", &h, s, NULL);
  /* Process output comes in 1 MiB frames that QEMU writes page by page:
   * read them in big gulps, not a wake-up per page. */
  kv_conn_gather_frames(c);
  return c;
}

static gboolean agent_reconnect(gpointer user) {
  Shim *s = user;
  timer_clear(&s->reconnect_timer);
  if (s->agent || g_strcmp0(s->state, "running"))
    return G_SOURCE_REMOVE;
  g_autoptr(GError) e = NULL;
  s->agent = agent_open(s, 1000, &e);
  if (!s->agent) {
    shim_log("agent reconnect: %s", e->message);
    agent_connect_later(s);
  }
  return G_SOURCE_REMOVE;
}

static void agent_connect_later(Shim *s) {
  if (!s->reconnect_timer)
    s->reconnect_timer = add_timeout(500, agent_reconnect, s);
}

/* ---- client requests ---- */

static void on_agent_check_reply(KvConn *agent, JsonObject *result, const GError *e,
                                 gpointer user) {
  Waiter *w = user;
  if (result)
    kv_conn_reply(w->conn, w->id, result);
  else
    kv_conn_reply_error(w->conn, w->id, KATAVM_E_AGENT, e->message);
  waiter_free(w);
}

static void on_client_request(KvConn *c, guint32 id, const char *method, JsonObject *params,
                              gpointer user) {
  Shim *s = user;
  if (relay_request(s, c, id, method, params))
    return;
  if (!strcmp(method, KV_M_SHIM_STATE)) {
    g_autoptr(JsonObject) o = state_object(s);
    kv_conn_reply(c, id, o);
  } else if (!strcmp(method, KV_M_SHIM_AGENT_CHECK)) {
    if (g_strcmp0(s->state, "running") || s->powering_off)
      kv_conn_reply_error(c, id, KATAVM_E_STATE, "sandbox is not running");
    else if (!s->agent || !kv_conn_is_ready(s->agent))
      kv_conn_reply_error(c, id, KATAVM_E_AGENT, "the guest agent is not connected");
    else
      kv_conn_call(s->agent, KV_M_AGENT_CHECK, NULL, KV_CALL_TIMEOUT_MS, on_agent_check_reply,
                   waiter_new(c, id));
  } else if (!strcmp(method, KV_M_SHIM_HOTPLUG)) {
    hotplug_request(s, c, id, params);
  } else if (!strcmp(method, KV_M_SHIM_STOP)) {
    g_ptr_array_add(s->stop_waiters, waiter_new(c, id));
    /* A hotplug in progress (it waits on the agent in a nested loop) still
     * uses the VM: it powers off when that is done (hotplug.c). */
    if (!s->hotplug_busy)
      begin_poweroff(s);
  } else if (!strcmp(method, KV_M_SHIM_DESTROY)) {
    g_ptr_array_add(s->destroy_waiters, waiter_new(c, id));
    if (!s->hotplug_busy)
      begin_poweroff(s);
  } else {
    g_autofree char *m = g_strdup_printf("unknown method '%s'", method);
    kv_conn_reply_error(c, id, KATAVM_E_INVALID, m);
  }
}

static void on_client_frame(KvConn *c, const KvFrame *f, gpointer user) {
  relay_client_frame(user, c, f);
}

static void on_client_closed(KvConn *c, const GError *why, gpointer user) {
  Shim *s = user;
  if (why && !g_error_matches(why, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED))
    shim_log("client dropped: %s", why->message);
  relay_client_closed(s, c);
  if (g_ptr_array_remove_fast(s->clients, c))
    kv_conn_unref(c);
}

static gboolean on_accept(int fd, GIOCondition cond, gpointer user) {
  Shim *s = user;
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return G_SOURCE_CONTINUE;
  static const KvConnHandlers h = {
      .on_request = on_client_request, .on_frame = on_client_frame, .on_closed = on_client_closed};
  KvConn *conn = kv_conn_new(c, "shim", &h, s, NULL);
  /* Clients hand us the write ends of their output pipes (relay.c). */
  kv_conn_accept_fds(conn);
  g_ptr_array_add(s->clients, conn);
  return G_SOURCE_CONTINUE;
}

static gboolean listen_start(Shim *s, GError **error) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(s->p.shim_sock) >= sizeof(sa.sun_path)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "socket path %s is too long", s->p.shim_sock);
    return FALSE;
  }
  strcpy(sa.sun_path, s->p.shim_sock);
  unlink(s->p.shim_sock);
  s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      chmod(s->p.shim_sock, 0600) < 0 || listen(s->listen_fd, 64) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "cannot listen on %s: %s", s->p.shim_sock,
                g_strerror(errno));
    return FALSE;
  }
  GSource *src = g_unix_fd_source_new(s->listen_fd, G_IO_IN);
  g_source_set_callback(src, (GSourceFunc)(void (*)(void))on_accept, s, NULL);
  g_source_attach(src, shim_ctx);
  g_source_unref(src);
  return TRUE;
}

static gboolean on_term(gpointer user) {
  Shim *s = user;
  shim_log("signal received: destroying the sandbox");
  s->destroy_requested = TRUE;
  if (!s->hotplug_busy)
    begin_poweroff(s);
  return G_SOURCE_CONTINUE;
}

/* ---- startup ---- */

static gboolean vmm_connect(Shim *s, GError **error) {
  shim_log("opening libvirt");
  if (s->cfg.uri) {
    s->uri = g_strdup(s->cfg.uri);
  } else {
    s->uri = kv_vmm_embed_prepare(s->p.vmm_root, s->p.caps_cache, error);
    if (!s->uri)
      return FALSE;
  }
  s->vmm = kv_vmm_open(s->uri, error);
  if (!s->vmm)
    return FALSE;
  kv_vmm_set_event_handler(s->vmm, on_vm_event, s);
  return TRUE;
}

static gboolean boot(Shim *s, gboolean recover, GError **error) {
  if (!vmm_connect(s, error))
    return FALSE;
  if (!listen_start(s, error))
    return FALSE;
  if (!recover) {
    hotplug_choose_memory(s);
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
        .console_log = s->p.console,
        .spare_root_ports = SPARE_ROOT_PORTS,
        .qemu_as_root = s->cfg.uri != NULL,
        .memory_dimm = s->memory_dimm,
    };
    shim_log("starting domain");
    if (!kv_vmm_start(s->vmm, &vc, error))
      return FALSE;
    shim_log("domain started");
  } else {
    /* A fresh open of an embedded root reconnects to QEMU asynchronously. */
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!kv_vmm_is_running(s->vmm, s->p.domain)) {
      if (g_get_monotonic_time() > deadline) {
        g_set_error(error, KV_ERROR, KATAVM_E_STATE, "the VM of sandbox '%s' is not running",
                    s->id);
        return FALSE;
      }
      g_usleep(50000);
    }
  }
  s->qemu_pid = kv_vmm_qemu_pid(s->vmm, s->p.domain);
  s->agent = agent_open(s, 10000, error);
  if (!s->agent)
    return FALSE;
  shim_log("agent channel connected");
  if (!kv_conn_wait_ready(s->agent, KV_BOOT_TIMEOUT_MS, error)) {
    g_prefix_error(error, "the guest agent did not come up (console log: %s): ", s->p.console);
    return FALSE;
  }
  shim_log("agent said hello");
  g_autoptr(JsonObject) r =
      kv_conn_call_sync(s->agent, KV_M_AGENT_CHECK, NULL, KV_CALL_TIMEOUT_MS, error);
  if (!r)
    return FALSE;
  s->state = "running";
  state_save(s);
  shim_log("sandbox %s running (qemu pid %d, accel %s, agent %s, guest uptime %" G_GINT64_FORMAT
           " ms)",
           s->id, s->qemu_pid, kv_accel_name(s->accel), kv_json_str(r, "agent_version", "?"),
           kv_json_int(r, "uptime_ms", -1));
  return TRUE;
}

static gboolean cleanup(Shim *s, GError **error) {
  /* Without config (corrupt state) the embedded root is still where the id
   * says; with a daemon URI the config names it. */
  gboolean have_vmm_root = g_file_test(s->p.vmm_root, G_FILE_TEST_IS_DIR);
  if (s->cfg.uri || have_vmm_root) {
    if (!vmm_connect(s, error))
      return FALSE;
    /* Reconnecting to a surviving QEMU takes a moment after open. */
    for (int i = 0; i < 20 && !kv_vmm_is_running(s->vmm, s->p.domain); i++)
      g_usleep(50000);
    if (!vm_destroy(s, error))
      return FALSE;
    g_clear_pointer(&s->vmm, kv_vmm_close);
  }
  s->destroying = TRUE;
  return remove_state(s, error);
}

int main(int argc, char **argv) {
  g_autofree char *root = NULL, *id = NULL;
  int ready_fd = -1;
  gboolean m_create = FALSE, m_recover = FALSE, m_cleanup = FALSE;
  GOptionEntry entries[] = {
      {"create", 0, 0, G_OPTION_ARG_NONE, &m_create, "boot a new sandbox", NULL},
      {"recover", 0, 0, G_OPTION_ARG_NONE, &m_recover, "reattach to a running sandbox", NULL},
      {"cleanup", 0, 0, G_OPTION_ARG_NONE, &m_cleanup, "destroy and remove a sandbox", NULL},
      {"root", 0, 0, G_OPTION_ARG_FILENAME, &root, "state directory", "DIR"},
      {"id", 0, 0, G_OPTION_ARG_STRING, &id, "sandbox id", "ID"},
      {"ready-fd", 0, 0, G_OPTION_ARG_INT, &ready_fd, "report readiness here", "FD"},
      {NULL}};
  g_autoptr(GOptionContext) oc = g_option_context_new("- katavm per-sandbox supervisor");
  g_option_context_add_main_entries(oc, entries, NULL);
  g_autoptr(GError) e = NULL;
  if (!g_option_context_parse(oc, &argc, &argv, &e) || !root || !id ||
      (m_create + m_recover + m_cleanup) != 1) {
    if (!e)
      e = g_error_new(KV_ERROR, KATAVM_E_INVALID,
                      "usage: katavm-shim --create|--recover|--cleanup --root DIR --id ID");
    fprintf(stderr, "katavm-shim: %s\n", e->message);
    kv_shim_report(ready_fd, e, TRUE);
    return 2;
  }
  if (!kv_id_validate(id, &e)) {
    kv_shim_report(ready_fd, e, TRUE);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  Shim s = {.id = id, .root = root, .listen_fd = -1, .state = "creating"};
  kv_paths_init(&s.p, root, id);
  s.clients = g_ptr_array_new();
  s.stop_waiters = g_ptr_array_new_with_free_func(waiter_free);
  s.destroy_waiters = g_ptr_array_new_with_free_func(waiter_free);
  shim_ctx = g_main_context_new();
  g_main_context_push_thread_default(shim_ctx);
  s.loop = g_main_loop_new(shim_ctx, FALSE);
  relay_init(&s);

  /* SIGTERM/SIGINT destroy the sandbox cleanly, also while booting. */
  static const int term_signals[] = {SIGTERM, SIGINT};
  for (size_t i = 0; i < G_N_ELEMENTS(term_signals); i++) {
    GSource *src = g_unix_signal_source_new(term_signals[i]);
    g_source_set_callback(src, on_term, &s, NULL);
    g_source_attach(src, shim_ctx);
    g_source_unref(src);
  }
  gboolean have_cfg = kv_config_load(&s.cfg, s.p.config, &e);
  if (m_cleanup) {
    g_clear_error(&e);
    gboolean ok = cleanup(&s, &e);
    if (!ok)
      shim_log("cleanup failed: %s", e->message);
    kv_shim_report(ready_fd, ok ? NULL : e, TRUE);
    return ok ? 0 : 1;
  }
  if (have_cfg) {
    hotplug_init(&s);
    if (m_recover) {
      /* What the previous shim had plugged is in its last state file. */
      g_autoptr(JsonObject) old = kv_json_file_load(s.p.state, NULL);
      if (old)
        hotplug_restore(&s, old);
    }
  }
  KvAccel want;
  gboolean ok = have_cfg && kv_accel_parse(s.cfg.accel, &want, &e) &&
                kv_accel_resolve(want, &s.accel, NULL, &e) && boot(&s, m_recover, &e);
  if (!ok) {
    shim_log("%s failed: %s", m_recover ? "recover" : "create", e->message);
    if (!m_recover || !s.vmm || !kv_vmm_is_running(s.vmm, s.p.domain)) {
      /* Leave nothing behind: no VM, no state. */
      agent_drop(&s);
      g_autoptr(GError) ce = NULL;
      gboolean gone = vm_destroy(&s, &ce);
      g_clear_pointer(&s.vmm, kv_vmm_close);
      if (!gone || !remove_state(&s, &ce))
        shim_log("cleanup after failure: %s", ce ? ce->message : "?");
    }
    kv_shim_report(ready_fd, e, TRUE);
    return 1;
  }
  kv_shim_report(ready_fd, NULL, FALSE);
  g_main_loop_run(s.loop);
  /* Client sockets close with the process: a client that waits for EOF
   * after destroy knows the shim is gone. */
  shim_log("exiting");
  /* What lives as long as the process, freed so that a leak checker's
   * report at exit shows real leaks only. */
  g_free(s.uri);
  kv_config_clear(&s.cfg);
  kv_paths_clear(&s.p);
  g_main_loop_unref(s.loop);
  return 0;
}
