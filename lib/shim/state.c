/* lib/shim/state.c: the bottom layer of katavm-shim (see state.h): the
 * sandbox's shared state, state.json through the contract's
 * KvShimStateResult table, waiters, the log. Calls nothing above it. */
#include "state.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

GMainContext *shim_ctx;

typedef struct {
  ShimDescribeFunc fn;
  gpointer user;
} Describer;

static char *shim_log_path;

void shim_init(Shim *s, const char *root, const char *id) {
  memset(s, 0, sizeof(*s));
  s->id = g_strdup(id);
  kv_paths_init(&s->p, root, id);
  s->state = KV_SANDBOX_CREATING;
  s->describers = g_ptr_array_new_with_free_func(g_free);
  g_free(shim_log_path);
  shim_log_path = g_strdup(s->p.shim_log);
}

void shim_init_pooled(Shim *s, const char *root, const char *instance) {
  shim_init(s, root, instance);
  kv_paths_clear(&s->p);
  g_autofree char *dir = g_build_filename(root, "pool", "vms", instance, NULL);
  kv_paths_init_dir(&s->p, root, dir, instance);
  s->pooled = TRUE;
  g_free(shim_log_path);
  shim_log_path = g_strdup(s->p.shim_log);
}

void shim_set_identity(Shim *s, const char *id, KvPaths *p) {
  if (!s->old_paths)
    s->old_paths = g_ptr_array_new();
  KvPaths *old = g_new(KvPaths, 1);
  *old = s->p;
  g_ptr_array_add(s->old_paths, old);
  s->p = *p;
  memset(p, 0, sizeof(*p));
  g_free(s->id);
  s->id = g_strdup(id);
  s->pooled = FALSE;
  g_free(shim_log_path);
  shim_log_path = g_strdup(s->p.shim_log);
}

void shim_clear(Shim *s) {
  for (guint i = 0; s->old_paths && i < s->old_paths->len; i++) {
    kv_paths_clear(s->old_paths->pdata[i]);
    g_free(s->old_paths->pdata[i]);
  }
  g_clear_pointer(&s->old_paths, g_ptr_array_unref);
  g_free(s->id);
  g_free(s->uri);
  g_free(s->error);
  kv_config_clear(&s->cfg);
  kv_paths_clear(&s->p);
  g_clear_pointer(&s->describers, g_ptr_array_unref);
  g_clear_pointer(&s->stop_reason, g_free);
  if (s->loop)
    g_main_loop_unref(s->loop);
  s->loop = NULL;
}

void shim_log_bound(const char *path) {
  if (!path)
    path = shim_log_path;
  struct stat st, log;
  if (!path || fstat(STDERR_FILENO, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < SHIM_LOG_MAX)
    return;
  /* Only our own log file (not a terminal or a caller's file). */
  if (lstat(path, &log) < 0 || log.st_ino != st.st_ino || log.st_dev != st.st_dev)
    return;
  g_autofree char *old = g_strdup_printf("%s.1", path);
  g_autofree char *tmp = g_strdup_printf("%s.1.tmp", path);
  int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (in >= 0 && out >= 0) {
    /* The newest SHIM_LOG_MAX bytes go to shim.log.1. */
    off_t off = st.st_size > SHIM_LOG_MAX ? st.st_size - SHIM_LOG_MAX : 0;
    char buf[65536];
    ssize_t r;
    while ((r = pread(in, buf, sizeof(buf), off)) > 0 && write(out, buf, (size_t)r) == r)
      off += r;
    if (rename(tmp, old) < 0)
      (void)unlink(tmp);
  }
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  (void)ftruncate(STDERR_FILENO, 0);
}

void shim_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *m = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *ts = g_date_time_format(now, "%H:%M:%S.%f");
  fprintf(stderr, "%s katavm-shim[%d]: %s\n", ts, getpid(), m);
  shim_log_bound(shim_log_path);
}

GSource *shim_add_timeout(guint ms, GSourceFunc fn, gpointer data) {
  GSource *src = g_timeout_source_new(ms);
  g_source_set_callback(src, fn, data, NULL);
  g_source_attach(src, shim_ctx);
  return src;
}

void shim_timer_clear(GSource **src) {
  if (*src) {
    g_source_destroy(*src);
    g_source_unref(*src);
    *src = NULL;
  }
}

/* ---- state ---- */

void shim_add_describer(Shim *s, ShimDescribeFunc fn, gpointer user) {
  Describer *d = g_new0(Describer, 1);
  d->fn = fn;
  d->user = user;
  g_ptr_array_add(s->describers, d);
}

void shim_describe(Shim *s, KvShimStateResult *out) {
  memset(out, 0, sizeof(*out));
  out->id = g_strdup(s->id);
  out->state = g_strdup(s->state);
  out->shim_pid = getpid();
  out->qemu_pid = s->qemu_pid;
  out->accel = g_strdup(kv_accel_name(s->accel));
  out->libvirt_uri = g_strdup(s->uri ? s->uri : "");
  out->vcpus = s->cfg.vcpus;
  out->max_vcpus = s->cfg.max_vcpus;
  out->memory_mib = s->cfg.memory_mib;
  out->max_memory_mib = s->cfg.max_memory_mib;
  out->created = g_strdup(s->cfg.created);
  out->console_log = g_strdup(s->p.console);
  out->error = g_strdup(s->error);
  out->stop_reason = g_strdup(s->stop_reason);
  for (guint i = 0; i < s->describers->len; i++) {
    Describer *d = s->describers->pdata[i];
    d->fn(d->user, out);
  }
}

void shim_state_save(Shim *s) {
  if (s->destroying)
    return;
  KvShimStateResult st;
  shim_describe(s, &st);
  g_autoptr(JsonObject) o = kv_msg_encode(kv_m_shim_state.result, &st);
  kv_msg_clear(kv_m_shim_state.result, &st);
  g_autoptr(GError) e = NULL;
  if (!kv_json_file_save(o, s->p.state, &e))
    shim_log("cannot save state: %s", e->message);
}

gboolean shim_state_load(Shim *s, KvShimStateResult *out, GError **error) {
  memset(out, 0, sizeof(*out));
  g_autoptr(JsonObject) o = kv_json_file_load(s->p.state, error);
  if (!o)
    return FALSE;
  return kv_result_decode(&kv_m_shim_state, o, out, error);
}

/* ---- errors ---- */

gboolean shim_agent_usable(Shim *s, GError **error) {
  if (g_strcmp0(s->state, KV_SANDBOX_RUNNING) || s->powering_off) {
    if (s->stop_reason)
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "sandbox %s is not running (stopped: %s)",
                  s->id, s->stop_reason);
    else if (s->error)
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "sandbox %s is not running: %s", s->id,
                  s->error);
    else
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "sandbox %s is not running", s->id);
    return FALSE;
  }
  if (!s->agent || !kv_conn_is_ready(s->agent)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_AGENT, "the guest agent is not connected");
    return FALSE;
  }
  return TRUE;
}

GError *shim_agent_error(const GError *e, const char *prefix, gboolean map_timeout) {
  int code = kv_remote_error_code(e);
  if (!(code < 0 && code >= KV_E_MIN))
    code = map_timeout && g_error_matches(e, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT) ? KV_E_TIMEOUT
                                                                                     : KV_E_AGENT;
  return g_error_new(KV_ERROR_DOMAIN, code, "%s%s", prefix ? prefix : "",
                     kv_remote_error_message(e));
}

void shim_reply_error(KvConn *c, guint32 id, const GError *e) {
  kv_reply_gerror(c, id, e, kv_error_code_of(e));
}

typedef struct {
  Shim *s;
  KvConn *conn;
  guint32 id;
  GError *e; /* what to answer if the sandbox does not stop */
  gboolean timeout;
  gint64 deadline;
} LostReply;

/* How long an answer waits for the VM's fate after the agent channel went:
 * libvirt reports the VM off 0.3-2 s after a guest poweroff on an idle
 * machine, more under load; a channel dropped by a live guest is
 * reconnected within a second (and the wait ends then). */
#define AGENT_LOST_WAIT_US (15 * G_USEC_PER_SEC)

static gboolean lost_reply_try(gpointer user) {
  LostReply *r = user;
  Shim *s = r->s;
  gboolean stopped = !g_strcmp0(s->state, KV_SANDBOX_STOPPED) && s->stop_reason;
  gboolean back = s->agent && kv_conn_is_ready(s->agent);
  if (!stopped && !back && g_get_monotonic_time() < r->deadline)
    return G_SOURCE_CONTINUE;
  if (stopped) {
    g_autoptr(GError) e = g_error_new(KV_ERROR_DOMAIN, r->timeout ? KV_E_TIMEOUT : KV_E_STATE,
                                      "sandbox %s stopped: %s", s->id, s->stop_reason);
    shim_reply_error(r->conn, r->id, e);
  } else {
    shim_reply_error(r->conn, r->id, r->e);
  }
  kv_conn_unref(r->conn);
  g_error_free(r->e);
  g_free(r);
  return G_SOURCE_REMOVE;
}

void shim_reply_agent_error(Shim *s, KvConn *c, guint32 id, const GError *agent_error,
                            const char *prefix) {
  GError *e = shim_agent_error(agent_error, prefix, TRUE);
  gboolean lost = g_error_matches(agent_error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED) ||
                  g_error_matches(agent_error, KV_PROTO_ERROR, KV_PROTO_ERROR_TIMEOUT);
  if (!lost || kv_conn_is_closed(c)) {
    shim_reply_error(c, id, e);
    g_error_free(e);
    return;
  }
  LostReply *r = g_new0(LostReply, 1);
  r->s = s;
  r->conn = kv_conn_ref(c);
  r->id = id;
  r->e = e;
  r->timeout = e->code == KV_E_TIMEOUT;
  r->deadline = g_get_monotonic_time() + AGENT_LOST_WAIT_US;
  GSource *src = shim_add_timeout(50, lost_reply_try, r);
  g_source_unref(src);
}

/* ---- waiters ---- */

Waiter *waiter_new(KvConn *c, guint32 id) {
  Waiter *w = g_new0(Waiter, 1);
  w->conn = kv_conn_ref(c);
  w->id = id;
  return w;
}

void waiter_free(gpointer p) {
  Waiter *w = p;
  kv_conn_unref(w->conn);
  g_free(w);
}

void waiters_reply_all(GPtrArray *waiters, const KvMethod *m, const GError *e) {
  for (guint i = 0; i < waiters->len; i++) {
    Waiter *w = waiters->pdata[i];
    if (e)
      shim_reply_error(w->conn, w->id, e);
    else
      kv_reply(w->conn, w->id, m, NULL);
    kv_conn_flush(w->conn, 2000, NULL);
  }
  g_ptr_array_set_size(waiters, 0);
}
