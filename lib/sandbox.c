/* lib/sandbox.c: the client side of sandboxes: create (spawn a shim and
 * wait for the guest agent), open (attach to a sandbox's shim, or recover a
 * sandbox whose shim died), state, stop, destroy, list, agent check. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "abi.h"
#include "internal.h"
#include "publish.h"
#include "proto.h"
#include "sandbox-internal.h"
#include "unixsock.h"
#include "vmm.h"

const char *katavm_sandbox_state_name(katavm_sandbox_state_t s) {
  switch (s) {
  case KATAVM_SANDBOX_CREATING:
    return "creating";
  case KATAVM_SANDBOX_RUNNING:
    return "running";
  case KATAVM_SANDBOX_STOPPED:
    return "stopped";
  default:
    return "unknown";
  }
}

static katavm_sandbox_state_t state_parse(const char *s) {
  if (!g_strcmp0(s, KV_SANDBOX_CREATING))
    return KATAVM_SANDBOX_CREATING;
  if (!g_strcmp0(s, KV_SANDBOX_RUNNING))
    return KATAVM_SANDBOX_RUNNING;
  if (!g_strcmp0(s, KV_SANDBOX_STOPPED))
    return KATAVM_SANDBOX_STOPPED;
  return KATAVM_SANDBOX_UNKNOWN;
}

static gboolean is_regular(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static gboolean ensure_dir(const char *path, GError **error) {
  if (g_mkdir_with_parents(path, 0700) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "cannot create %s: %s", path, g_strerror(errno));
    return FALSE;
  }
  return TRUE;
}

/* ---- connection to a shim ---- */

static pid_t recorded_shim_pid(const KvPaths *p);

/* Liveness of the shim (kv_conn_keepalive), while a client listens: a ping
 * every CLIENT_PING_MS; a shim that is stopped (SIGSTOP) is dead at once
 * before its HELLO (so that `sandbox ls` and open fail fast), after
 * SHIM_DEAD_MS of silence once connected; one that runs but does not answer
 * for SHIM_HUNG_MS (it may sit in a slow libvirt call) is hung. */
#define CLIENT_PING_MS 500
#define SHIM_DEAD_MS 3000
#define SHIM_HUNG_MS 30000

typedef struct {
  char *id;
  pid_t pid;
} ShimWatch;

static void shim_watch_free(gpointer p) {
  ShimWatch *w = p;
  g_free(w->id);
  g_free(w);
}

static gboolean shim_silent(KvConn *c, guint silent_ms, GString *why, gpointer user) {
  ShimWatch *w = user;
  char st = kv_proc_state(w->pid);
  if (w->pid > 0 && (st == 'T' || st == 't') &&
      (!kv_conn_is_ready(c) || silent_ms >= SHIM_DEAD_MS)) {
    g_string_append_printf(why, "the shim (pid %d) of sandbox '%s' is stopped", (int)w->pid, w->id);
    return TRUE;
  }
  if (silent_ms >= SHIM_HUNG_MS) {
    g_string_append_printf(why, "the shim (pid %d) of sandbox '%s' is hung", (int)w->pid, w->id);
    return TRUE;
  }
  return FALSE;
}

static void on_closed(KvConn *c, const GError *why, gpointer user) {
}

/* Connect to the sandbox's shim. A missing socket or a refused connection
 * means the shim is gone: KATAVM_E_STATE. */
KvConn *kv_shim_connect(const KvPaths *p, GMainContext *ctx, GError **error) {
  static const KvConnHandlers h = {.on_closed = on_closed};
  return kv_shim_connect_full(p, ctx, &h, NULL, error);
}

/* Whether something still accepts connections on the shim's socket. */
static gboolean shim_listens(const KvPaths *p) {
  g_autoptr(GError) e = NULL;
  int fd = kv_unix_connect(p->shim_sock, &e);
  if (fd >= 0) {
    close(fd);
    return TRUE;
  }
  return !g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

KvConn *kv_shim_connect_full(const KvPaths *p, GMainContext *ctx, const KvConnHandlers *h,
                             gpointer user, GError **error) {
  g_autoptr(GError) e = NULL;
  int fd = kv_unix_connect(p->shim_sock, &e);
  if (fd < 0) {
    int code = g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)           ? KATAVM_E_STATE
               : g_error_matches(e, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG) ? KATAVM_E_INVALID
                                                                              : KATAVM_E_IO;
    g_set_error(error, KV_ERROR, code, "cannot reach the shim: %s", e->message);
    return NULL;
  }
  KvConn *c = kv_conn_new(fd, "client", h, user, ctx);
  ShimWatch *w = g_new0(ShimWatch, 1);
  w->id = g_path_get_basename(p->dir);
  w->pid = recorded_shim_pid(p);
  kv_conn_keepalive(c, CLIENT_PING_MS, SHIM_DEAD_MS, shim_silent, w, shim_watch_free);
  if (!kv_conn_wait_ready(c, 10000, &e)) {
    gboolean closed = kv_conn_is_closed(c);
    kv_conn_close(c);
    kv_conn_unref(c);
    /* A shim that dies with our connection in its backlog resets it: if
     * nothing listens any more, the shim is gone, not misbehaving. */
    if (closed && !shim_listens(p)) {
      g_set_error(error, KV_ERROR, KATAVM_E_STATE, "the shim went away: %s", e->message);
      return NULL;
    }
    g_propagate_error(error, g_steal_pointer(&e));
    return NULL;
  }
  return c;
}

gboolean kv_result_check(const KvMethod *m, JsonObject *result, gpointer out, GError **error) {
  g_autoptr(GError) e = NULL;
  if (kv_result_decode(m, result, out, &e))
    return TRUE;
  g_set_error(error, KV_ERROR, KATAVM_E_PROTOCOL,
              "the shim's answer does not match the protocol: %s", e->message);
  return FALSE;
}

gboolean kv_sandbox_rpc(katavm_sandbox *sb, const KvMethod *m, gconstpointer params,
                        gpointer result, GError **error) {
  return kv_sandbox_rpc_timeout(sb, m, params, result, 0, error);
}

gboolean kv_sandbox_rpc_timeout(katavm_sandbox *sb, const KvMethod *m, gconstpointer params,
                                gpointer result, guint timeout_ms, GError **error) {
  if (!sb->conn || kv_conn_is_closed(sb->conn)) {
    if (sb->conn) {
      kv_conn_unref(sb->conn);
      sb->conn = NULL;
    }
    sb->conn = kv_shim_connect(&sb->paths, sb->ctx, error);
    if (!sb->conn)
      return FALSE;
  }
  g_autoptr(JsonObject) o = kv_msg_encode(m->params, params);
  if (m->flags & KV_NO_TIMEOUT)
    timeout_ms = 0;
  else if (timeout_ms == 0)
    timeout_ms = KV_CALL_TIMEOUT_MS;
  g_autoptr(JsonObject) r = kv_conn_call_sync(sb->conn, m->name, o, timeout_ms, error);
  if (!r) {
    /* The connection itself broke mid-call ("peer closed the connection"):
     * say whose end it was and what comes next. */
    if (error && *error && g_error_matches(*error, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED))
      g_prefix_error(error,
                     "the shim of sandbox '%s' went away during %s (it exited, was killed or "
                     "crashed; the next call recovers the sandbox): ",
                     sb->id, m->name);
    return FALSE;
  }
  return !result || kv_result_check(m, r, result, error);
}

static katavm_sandbox *sb_new(const char *root, const char *id) {
  katavm_sandbox *sb = g_new0(katavm_sandbox, 1);
  sb->id = g_strdup(id);
  kv_paths_init(&sb->paths, root, id);
  sb->ctx = g_main_context_new();
  return sb;
}

void katavm_sandbox_close(katavm_sandbox *sb) {
  if (!sb)
    return;
  if (sb->conn) {
    kv_conn_close(sb->conn);
    kv_conn_unref(sb->conn);
  }
  /* Drain sources the closed connection left on our private context. */
  while (g_main_context_iteration(sb->ctx, FALSE))
    ;
  g_main_context_unref(sb->ctx);
  kv_paths_clear(&sb->paths);
  g_free(sb->id);
  g_free(sb);
}

const char *katavm_sandbox_id(const katavm_sandbox *sb) {
  return sb ? sb->id : NULL;
}

/* ---- shim processes ---- */

static gboolean keep_ticking(gpointer unused) {
  return G_SOURCE_CONTINUE;
}

/* The shim pid recorded in state.json, 0 if none. */
static pid_t recorded_shim_pid(const KvPaths *p) {
  /* Only the pid, so that a state file damaged elsewhere still names its
   * shim for destroy. */
  g_autoptr(JsonObject) st = kv_json_file_load(p->state, NULL);
  KvStatePid sp;
  if (!st || !kv_msg_decode(&kv_state_pid_desc, st, &sp, NULL))
    return 0;
  return sp.shim_pid > 0 && sp.shim_pid <= G_MAXINT ? (pid_t)sp.shim_pid : 0;
}

/* The shim pid recorded in state.json, if that process is still a
 * katavm-shim for this id (pids get reused). 0 otherwise. */
static pid_t live_shim_pid(const KvPaths *p, const char *id) {
  pid_t pid = recorded_shim_pid(p);
  if (pid <= 0)
    return 0;
  g_autofree char *path = g_strdup_printf("/proc/%d/cmdline", (int)pid);
  g_autofree char *cmd = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &cmd, &len, NULL))
    return 0;
  /* argv is NUL separated: look for "katavm-shim" in argv[0] and the id. */
  gboolean is_shim = strstr(cmd, "katavm-shim") != NULL, has_id = FALSE;
  for (gsize off = 0; off < len; off += strlen(cmd + off) + 1)
    if (strcmp(cmd + off, id) == 0 || strcmp(cmd + off, p->instance) == 0)
      has_id = TRUE;
  return (is_shim && has_id) ? pid : 0;
}

/* Whether process `pid` (a thread group) has exited: gone, or a zombie
 * whose threads have all finished (its leader turns zombie while the other
 * threads may still be closing the files they share). */
static gboolean proc_exited(pid_t pid) {
  g_autofree char *dir = g_strdup_printf("/proc/%d/task", (int)pid);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  if (!d)
    return TRUE;
  const char *tid;
  while ((tid = g_dir_read_name(d))) {
    g_autofree char *path = g_strdup_printf("%s/%s/stat", dir, tid);
    g_autofree char *st = NULL;
    if (!g_file_get_contents(path, &st, NULL, NULL))
      continue;
    /* "TID (COMM) STATE ...": COMM may hold anything, the last ')' ends it. */
    const char *rp = strrchr(st, ')');
    if (rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X')
      return FALSE;
  }
  return TRUE;
}

/* A shim killed a moment ago may still hold its files, the embedded
 * driver's pid file among them, after its command line is gone (which is
 * all live_shim_pid sees): wait (bounded) for it to finish exiting before
 * a new shim opens the root. A pid reused by another program is not
 * waited for. */
static void wait_shim_exited(const KvPaths *p, guint timeout_ms) {
  pid_t pid = recorded_shim_pid(p);
  if (pid <= 0)
    return;
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
  g_autofree char *st = NULL;
  if (!g_file_get_contents(path, &st, NULL, NULL) || !strstr(st, " (katavm-shim) "))
    return;
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  while (!proc_exited(pid) && g_get_monotonic_time() < deadline)
    g_usleep(10000);
}

static gboolean run_shim_mode(katavm_runtime *rt, const KvPaths *p, const char *id,
                              const char *mode, guint timeout_ms, GError **error) {
  int rd = -1;
  if (!kv_shim_spawn(rt->shim, rt->root, id, mode, p->shim_log, &rd, error))
    return FALSE;
  gboolean ok = kv_shim_wait_ready(rd, timeout_ms, error);
  close(rd);
  return ok;
}

/* ---- the sandbox lock ---- */

/* Take the sandbox's lock, an flock(2) on its state directory, waiting at
 * most timeout_ms for another client (any process or thread: each open is
 * a lock of its own) to release it. Whoever recovers or destroys a sandbox
 * holds it, so that one shim at most is started for it at a time: the
 * embedded driver admits one process per root, and a second shim that
 * starts while another recovers would fail and fight over the same state.
 * The directory itself, not a file in it, so that taking the lock creates
 * nothing that a destroy under way would have to remove. The lock is on
 * the open description: O_CLOEXEC keeps it out of the shim (which would
 * otherwise hold it as long as it runs), and the kernel drops it when the
 * holder dies. Returns the fd to close(2), or -1: KATAVM_E_NOT_FOUND once
 * the sandbox is gone (removed while we waited), KATAVM_E_TIMEOUT. */
static int sandbox_lock(const KvPaths *p, const char *id, guint timeout_ms, GError **error) {
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  int fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int en = errno;
    if (en == ENOENT)
      g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "no sandbox with id '%s'", id);
    else
      g_set_error(error, KV_ERROR, KATAVM_E_IO, "cannot open %s: %s", p->dir, g_strerror(en));
    return -1;
  }
  while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int en = errno;
    if (en != EWOULDBLOCK && en != EINTR) {
      close(fd);
      g_set_error(error, KV_ERROR, KATAVM_E_IO, "cannot lock %s: %s", p->dir, g_strerror(en));
      return -1;
    }
    if (g_get_monotonic_time() > deadline) {
      close(fd);
      g_set_error(error, KV_ERROR, KATAVM_E_TIMEOUT,
                  "sandbox '%s' is busy: another client has been recovering or removing it for "
                  "more than %u s",
                  id, timeout_ms / 1000);
      return -1;
    }
    g_usleep(20000);
  }
  /* A destroy that held the lock before us removed the directory: what we
   * hold then is a lock on nothing. */
  struct stat held, now;
  if (fstat(fd, &held) < 0 || lstat(p->dir, &now) < 0 || held.st_dev != now.st_dev ||
      held.st_ino != now.st_ino || held.st_nlink == 0) {
    close(fd);
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "no sandbox with id '%s'", id);
    return -1;
  }
  return fd;
}

/* The shim of sandbox `id` did not answer: under the sandbox's lock, connect
 * to the shim that another client recovered while we waited, or start one in
 * --recover mode and wait for it to report. A recovery that fails leaves the
 * VM and the state in place for `katavm sandbox rm -f`. */
static KvConn *connect_or_recover(katavm_runtime *rt, const KvPaths *p, const char *id,
                                  GMainContext *ctx, GError **error) {
  int lk = sandbox_lock(p, id, KV_LOCK_TIMEOUT_MS, error);
  if (lk < 0)
    return NULL;
  g_autoptr(GError) e = NULL;
  KvConn *c = kv_shim_connect(p, ctx, &e);
  if (!c && e->code == KATAVM_E_STATE && live_shim_pid(p, id) == 0) {
    g_clear_error(&e);
    wait_shim_exited(p, 5000);
    if (run_shim_mode(rt, p, id, "--recover", KV_CALL_TIMEOUT_MS, &e))
      c = kv_shim_connect(p, ctx, &e);
    if (!c)
      g_set_error(error, KV_ERROR,
                  g_error_matches(e, KV_ERROR, KATAVM_E_TIMEOUT) ? KATAVM_E_TIMEOUT
                                                                 : KATAVM_E_STATE,
                  "the shim of sandbox '%s' is gone and recovery failed (remove it with "
                  "`katavm sandbox rm -f %s`): %s",
                  id, id, e->message);
  } else if (!c) {
    g_propagate_error(error, g_steal_pointer(&e));
  }
  close(lk);
  return c;
}

/* Tear down whatever exists of sandbox `id`, whatever state it is in.
 * Only removes the state once the VM is known gone, so a failure never
 * leaves an untracked QEMU. */
static gboolean teardown(katavm_runtime *rt, const KvPaths *p, const char *id, GError **error) {
  g_autoptr(GError) e = NULL;
  gboolean vm_gone = FALSE;
  GMainContext *ctx = g_main_context_new();
  KvConn *c = kv_shim_connect(p, ctx, &e);
  if (c) {
    g_autoptr(JsonObject) r =
        kv_conn_call_sync(c, kv_m_shim_destroy.name, NULL, KV_CALL_TIMEOUT_MS, &e);
    if (r) {
      vm_gone = TRUE;
      /* The shim exits right after replying; wait for its socket to close
       * so that callers see no shim once destroy returns. */
      GSource *tick = g_timeout_source_new(100); /* bounds each wait */
      g_source_set_callback(tick, keep_ticking, NULL, NULL);
      g_source_attach(tick, ctx);
      gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
      while (!kv_conn_is_closed(c) && g_get_monotonic_time() < deadline)
        g_main_context_iteration(ctx, TRUE);
      g_source_destroy(tick);
      g_source_unref(tick);
    }
    kv_conn_close(c);
    kv_conn_unref(c);
  }
  while (g_main_context_iteration(ctx, FALSE))
    ;
  g_main_context_unref(ctx);

  pid_t pid = live_shim_pid(p, id);
  if (pid > 0) {
    /* A shim that did not answer destroy is hung: the embedded driver
     * allows one process per root, so it must go before cleanup opens it. */
    kill(pid, SIGKILL);
    for (int i = 0; i < 100 && !proc_exited(pid); i++)
      g_usleep(20000);
  }
  if (!vm_gone) {
    g_clear_error(&e);
    /* A shim killed a moment ago (by us or anyone) may still hold the root. */
    wait_shim_exited(p, 5000);
    if (!run_shim_mode(rt, p, id, "--cleanup", KV_CALL_TIMEOUT_MS, &e)) {
      g_propagate_prefixed_error(error, g_steal_pointer(&e), "cannot destroy sandbox '%s': ", id);
      return FALSE;
    }
  }
  g_autoptr(GError) rmerr = NULL;
  if (!kv_rm_rf(p->run, &rmerr) || !kv_rm_rf(p->dir, &rmerr)) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO,
                "sandbox '%s' stopped but its state could not be removed: %s", id,
                rmerr ? rmerr->message : "unknown error");
    return FALSE;
  }
  return TRUE;
}

/* ---- the state root ---- */

/* Whoever can write the state root can hide sandboxes from us or fake
 * them (a state.json naming any pid for destroy to kill, a shim socket
 * that answers in the shim's name): refuse a root, or its sandboxes
 * directory, that another user owns or that group or others may write.
 * A missing one is fine (create makes it, 0700). */
static gboolean root_dir_check(const char *dir, GError **error) {
  struct stat st;
  if (lstat(dir, &st) < 0) {
    if (errno == ENOENT)
      return TRUE;
    int e = errno;
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "%scannot access the state root %s: %s",
                e == EACCES ? "permission denied: " : "", dir, g_strerror(e));
    return FALSE;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "the state root %s is not a directory", dir);
    return FALSE;
  }
  if (st.st_uid != geteuid()) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO,
                "permission denied: the state root %s belongs to uid %u, not to you (uid %u); "
                "refusing a root that another user controls",
                dir, (unsigned)st.st_uid, (unsigned)geteuid());
    return FALSE;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "the state root %s is writable by %s (mode %04o): other users could hide or "
                "fake sandboxes there; make it 0700",
                dir, (st.st_mode & S_IWOTH) ? "others" : "its group",
                (unsigned)(st.st_mode & 07777));
    return FALSE;
  }
  return TRUE;
}

static gboolean root_check(const char *root, GError **error) {
  g_autofree char *sbs = g_build_filename(root, "sandboxes", NULL);
  return root_dir_check(root, error) && root_dir_check(sbs, error);
}

gboolean kv_root_check(const char *root, GError **error) {
  return root_check(root, error);
}

/* The sandbox's state directory exists: NOT_FOUND when it does not, a
 * permission error when we may not look. */
static gboolean sandbox_dir_check(const KvPaths *p, const char *id, GError **error) {
  struct stat st;
  if (stat(p->dir, &st) == 0 && S_ISDIR(st.st_mode))
    return TRUE;
  if (errno == EACCES)
    g_set_error(error, KV_ERROR, KATAVM_E_IO,
                "permission denied: you may not access sandbox '%s' (%s)", id, p->dir);
  else
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND, "no sandbox with id '%s'", id);
  return FALSE;
}

/* ---- the warm pool ---- */

/* Serve sandbox `id` (config c) from the pool of rt's root: 1 = served
 * (*out set), 0 = not (boot it), -1 = error (the id is taken). */
static int from_pool(katavm_runtime *rt, const KvSandboxConfig *c, const char *id,
                     katavm_sandbox **out, GError **error) {
  guint boot_mib = 0;
  int rc = kv_pool_take(rt->root, c, id, &boot_mib, error);
  if (rc <= 0)
    return rc;
  katavm_sandbox *sb = sb_new(rt->root, id);
  g_autoptr(GError) e = NULL;
  sb->conn = rc == 1 ? kv_shim_connect(&sb->paths, sb->ctx, &e) : NULL;
  gboolean ok = sb->conn != NULL;
  /* The request's size, by hotplug from the pool's 1 vCPU and boot memory. */
  if (ok && c->vcpus > 1) {
    katavm_hotplug_request r;
    katavm_hotplug_request_init(&r, KATAVM_HOTPLUG_CPUS);
    r.cpus = c->vcpus;
    katavm_error *he = NULL;
    ok = katavm_hotplug(sb, &r, NULL, &he) == 0;
    katavm_error_free(he);
  }
  if (ok && c->memory_mib > boot_mib) {
    katavm_hotplug_request r;
    katavm_hotplug_request_init(&r, KATAVM_HOTPLUG_MEMORY);
    r.memory_op = KATAVM_MEMORY_SET;
    r.memory_mib = c->memory_mib;
    katavm_error *he = NULL;
    ok = katavm_hotplug(sb, &r, NULL, &he) == 0;
    katavm_error_free(he);
  }
  if (!ok) {
    /* The VM is this sandbox's already: remove it, and boot one instead. */
    katavm_sandbox_close(sb);
    katavm_error *de = NULL;
    katavm_sandbox_destroy(rt, id, &de);
    katavm_error_free(de);
    return 0;
  }
  *out = sb;
  return 1;
}

/* ---- public API ---- */

int katavm_sandbox_create(katavm_runtime *rt, const katavm_sandbox_config *cfg,
                          katavm_sandbox **out, katavm_error **err) {
  if (!rt || !cfg || !out)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime, config and out must not be NULL");
  katavm_sandbox_config cfg_copy;
  int abi_rc = kv_abi_copy_in(KV_ABI_SANDBOX_CONFIG, cfg, &cfg_copy, sizeof cfg_copy, err);
  if (abi_rc < 0)
    return abi_rc;
  cfg = &cfg_copy;
  g_autofree char *id = cfg->id ? g_strdup(cfg->id) : kv_id_generate();
  g_autoptr(GError) e = NULL;
  if (!kv_id_validate(id, &e))
    return kv_error_propagate(err, e);
  if (!root_check(rt->root, &e))
    return kv_error_propagate(err, e);

  guint vcpus = cfg->vcpus ? cfg->vcpus : rt->vcpus;
  guint max_vcpus = cfg->max_vcpus ? cfg->max_vcpus : vcpus;
  guint mem = cfg->memory_mib ? cfg->memory_mib : rt->memory_mib;
  guint max_mem = cfg->max_memory_mib ? cfg->max_memory_mib : mem;
  if (vcpus > 256 || max_vcpus > 256)
    return kv_error_set(err, KATAVM_E_INVALID, "at most 256 vCPUs are supported");
  if (max_vcpus < vcpus)
    return kv_error_set(err, KATAVM_E_INVALID, "max vCPUs %u is below the boot vCPUs %u", max_vcpus,
                        vcpus);
  if (mem < KATAVM_MIN_MEMORY_MIB)
    return kv_error_set(err, KATAVM_E_INVALID, "memory %u MiB is below the guest minimum of %u MiB",
                        mem, KATAVM_MIN_MEMORY_MIB);
  if (max_mem < mem)
    return kv_error_set(err, KATAVM_E_INVALID, "max memory %u MiB is below the boot memory %u MiB",
                        max_mem, mem);
  if (max_mem > 1024 * 1024)
    return kv_error_set(err, KATAVM_E_INVALID, "max memory %u MiB is more than 1 TiB", max_mem);
  if (!is_regular(rt->kernel))
    return kv_error_set(err, KATAVM_E_NOT_FOUND,
                        "guest kernel %s not found (build it with `katavm "
                        "image build`)",
                        rt->kernel);
  if (!is_regular(rt->initrd))
    return kv_error_set(err, KATAVM_E_NOT_FOUND,
                        "guest initrd %s not found (build it with `katavm "
                        "image build`)",
                        rt->initrd);
  if (cfg->netns && (!*cfg->netns || !g_path_is_absolute(cfg->netns)))
    return kv_error_set(err, KATAVM_E_INVALID, "netns '%s' is not an absolute path", cfg->netns);
  const char *net = cfg->net;
  if (net && strcmp(net, "none") && strcmp(net, "user"))
    return kv_error_set(err, KATAVM_E_INVALID, "unknown network mode '%s' (none or user)", net);
  if (net && !strcmp(net, "user") && cfg->netns)
    return kv_error_set(err, KATAVM_E_INVALID,
                        "network mode 'user' and a netns (%s) exclude each other", cfg->netns);
  if (net && !strcmp(net, "none") && cfg->netns)
    return kv_error_set(err, KATAVM_E_INVALID,
                        "network mode 'none' and a netns (%s) exclude each other", cfg->netns);
  if (!net)
    net = cfg->netns ? "tcfilter" : "none";
  if (cfg->publish && cfg->publish[0] && strcmp(net, "user"))
    return kv_error_set(err, KATAVM_E_INVALID,
                        "published ports (%s) need network mode 'user' (the mode is '%s')",
                        cfg->publish[0], net);
  g_autoptr(GArray) published = kv_publish_parse_all(cfg->publish, &e);
  if (!published)
    return kv_error_propagate(err, e);
  for (guint i = 0; i < published->len; i++)
    if (!kv_publish_check_free(&g_array_index(published, KvPublish, i), cfg->publish[i], &e))
      return kv_error_propagate(err, e);
  if (access(rt->shim, X_OK) < 0)
    return kv_error_set(err, KATAVM_E_NOT_FOUND, "shim %s is not an executable", rt->shim);
  KvAccel want, accel;
  if (!kv_accel_parse(rt->accel, &want, &e) || !kv_accel_resolve(want, &accel, NULL, &e))
    return kv_error_propagate(err, e);
  const char *shared_fs = kv_shared_fs_resolve(rt, NULL, &e);
  if (!shared_fs)
    return kv_error_propagate(err, e);

  g_auto(KvPaths) p;
  kv_paths_init(&p, rt->root, id);
  g_autofree char *sbdir = g_build_filename(rt->root, "sandboxes", NULL);
  g_autofree char *rdir = g_build_filename(rt->root, "r", NULL);
  if (!ensure_dir(sbdir, &e) || !ensure_dir(rdir, &e))
    return kv_error_propagate(err, e);
  if (mkdir(p.dir, 0700) < 0) {
    if (errno == EEXIST)
      return kv_error_set(err, KATAVM_E_EXISTS, "a sandbox with id '%s' already exists", id);
    return kv_error_set(err, KATAVM_E_IO, "cannot create %s: %s", p.dir, g_strerror(errno));
  }
  /* From here on every failure removes what was made. */
  KvSandboxConfig c = {
      .id = id,
      .uri = rt->uri,
      .accel = (char *)kv_accel_name(accel),
      .kernel = rt->kernel,
      .initrd = rt->initrd,
      .vcpus = vcpus,
      .max_vcpus = max_vcpus,
      .memory_mib = mem,
      .max_memory_mib = max_mem,
      .memory_hotplug = rt->memory_hotplug,
      .netns = (char *)cfg->netns,
      .shared_fs = (char *)shared_fs,
      .virtiofsd = rt->virtiofsd,
      .virtiofs_cache = rt->virtiofs_cache,
      .tb_cache_mib = rt->tb_cache_mib,
      .virtiofs_timeout_ms = rt->virtiofs_timeout_ms,
      .net = (char *)net,
      .publish = cfg->publish && cfg->publish[0] ? (char **)cfg->publish : NULL,
  };
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *created = g_date_time_format_iso8601(now);
  c.created = created;
  /* A ready VM of the warm pool, when the request fits it (docs/pool.md):
   * the directory made above only reserved the id, the VM's own takes
   * its place. */
  rmdir(p.dir);
  int taken = from_pool(rt, &c, id, out, &e);
  if (taken != 0)
    return taken > 0 ? 0 : kv_error_propagate(err, e);
  if (mkdir(p.dir, 0700) < 0) {
    if (errno == EEXIST)
      return kv_error_set(err, KATAVM_E_EXISTS, "a sandbox with id '%s' already exists", id);
    return kv_error_set(err, KATAVM_E_IO, "cannot create %s: %s", p.dir, g_strerror(errno));
  }
  int rd = -1;
  gboolean ok = kv_rm_rf(p.run, &e) && ensure_dir(p.run, &e) && ensure_dir(p.shared, &e) &&
                kv_config_save(&c, p.config, &e) &&
                kv_shim_spawn(rt->shim, rt->root, id, "--create", p.shim_log, &rd, &e);
  if (ok) {
    ok = kv_shim_wait_ready(rd, KV_BOOT_TIMEOUT_MS, &e);
    close(rd);
  }
  if (!ok) {
    /* The shim cleans up after itself on a reported failure; teardown
     * covers a shim that crashed or timed out. */
    int code = kv_error_propagate(err, e);
    g_autoptr(GError) te = NULL;
    teardown(rt, &p, id, &te);
    return code;
  }
  katavm_sandbox *sb = sb_new(rt->root, id);
  sb->conn = kv_shim_connect(&sb->paths, sb->ctx, &e);
  if (!sb->conn) {
    katavm_sandbox_close(sb);
    return kv_error_propagate(err, e);
  }
  *out = sb;
  return 0;
}

int katavm_sandbox_open(katavm_runtime *rt, const char *id, katavm_sandbox **out,
                        katavm_error **err) {
  if (!rt || !out)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime and out must not be NULL");
  g_autoptr(GError) e = NULL;
  if (!kv_id_validate(id, &e))
    return kv_error_propagate(err, e);
  if (!root_check(rt->root, &e))
    return kv_error_propagate(err, e);
  katavm_sandbox *sb = sb_new(rt->root, id);
  if (!sandbox_dir_check(&sb->paths, id, &e)) {
    katavm_sandbox_close(sb);
    return kv_error_propagate(err, e);
  }
  KvSandboxConfig c;
  if (!kv_config_load(&c, sb->paths.config, &e)) {
    katavm_sandbox_close(sb);
    return kv_error_propagate(err, e);
  }
  kv_config_clear(&c);
  sb->conn = kv_shim_connect(&sb->paths, sb->ctx, &e);
  if (!sb->conn && e->code == KATAVM_E_STATE) {
    /* The shim died (QEMU survives it) or is being replaced right now. */
    g_clear_error(&e);
    sb->conn = connect_or_recover(rt, &sb->paths, id, sb->ctx, &e);
  }
  if (!sb->conn) {
    katavm_sandbox_close(sb);
    return kv_error_propagate(err, e);
  }
  *out = sb;
  return 0;
}

int katavm_sandbox_state(katavm_sandbox *sb, katavm_sandbox_state_t *state, katavm_error **err) {
  if (!sb || !state)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and state must not be NULL");
  g_autoptr(GError) e = NULL;
  KvShimStateResult r;
  if (!kv_sandbox_rpc(sb, &kv_m_shim_state, NULL, &r, &e)) {
    if (e->code == KATAVM_E_STATE && e->domain == KV_ERROR) {
      *state = KATAVM_SANDBOX_UNKNOWN;
      return 0;
    }
    return kv_error_propagate(err, e);
  }
  *state = state_parse(r.state);
  kv_msg_clear(kv_m_shim_state.result, &r);
  return 0;
}

int katavm_sandbox_stop(katavm_sandbox *sb, katavm_error **err) {
  if (!sb)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox is NULL");
  g_autoptr(GError) e = NULL;
  return kv_sandbox_rpc(sb, &kv_m_shim_stop, NULL, NULL, &e) ? 0 : kv_error_propagate(err, e);
}

int katavm_sandbox_destroy(katavm_runtime *rt, const char *id, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  g_autoptr(GError) e = NULL;
  if (!kv_id_validate(id, &e))
    return kv_error_propagate(err, e);
  if (!root_check(rt->root, &e))
    return kv_error_propagate(err, e);
  g_auto(KvPaths) p;
  kv_paths_init(&p, rt->root, id);
  if (!g_file_test(p.dir, G_FILE_TEST_EXISTS) && !g_file_test(p.run, G_FILE_TEST_EXISTS) &&
      !sandbox_dir_check(&p, id, &e))
    return kv_error_propagate(err, e);
  /* Not while another client recovers it (a shim this teardown does not
   * know of yet would hold the VM) or removes it. */
  int lk = -1;
  if (g_file_test(p.dir, G_FILE_TEST_IS_DIR)) {
    lk = sandbox_lock(&p, id, KV_LOCK_TIMEOUT_MS, &e);
    if (lk < 0 && !g_error_matches(e, KV_ERROR, KATAVM_E_NOT_FOUND))
      return kv_error_propagate(err, e);
    g_clear_error(&e);
    if (lk < 0 && !g_file_test(p.run, G_FILE_TEST_EXISTS))
      return kv_error_set(err, KATAVM_E_NOT_FOUND, "no sandbox with id '%s'", id);
  }
  gboolean ok = teardown(rt, &p, id, &e);
  if (lk >= 0)
    close(lk);
  return ok ? 0 : kv_error_propagate(err, e);
}

int katavm_sandbox_list(katavm_runtime *rt, char ***ids_out, katavm_error **err) {
  if (!rt || !ids_out)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime and ids_out must not be NULL");
  g_autoptr(GError) re = NULL;
  if (!root_check(rt->root, &re))
    return kv_error_propagate(err, re);
  g_autofree char *dir = g_build_filename(rt->root, "sandboxes", NULL);
  GPtrArray *ids = g_ptr_array_new();
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)))
      if (kv_id_validate(de->d_name, NULL))
        g_ptr_array_add(ids, strdup(de->d_name));
    closedir(d);
  } else if (errno != ENOENT) {
    int e = errno;
    g_ptr_array_free(ids, TRUE);
    return kv_error_set(err, KATAVM_E_IO, "cannot read %s: %s", dir, g_strerror(e));
  }
  /* malloc'd so that katavm_strv_free (free) matches. */
  char **v = calloc(ids->len + 1, sizeof(char *));
  for (guint i = 0; i < ids->len; i++)
    v[i] = ids->pdata[i];
  g_ptr_array_free(ids, TRUE);
  qsort(v, g_strv_length(v), sizeof(char *), (int (*)(const void *, const void *))g_strcmp0);
  *ids_out = v;
  return 0;
}

int katavm_sandbox_agent_check(katavm_sandbox *sb, katavm_guest_info *info, katavm_error **err) {
  if (!sb || !info)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and info must not be NULL");
  int abi_rc = kv_abi_check_out(KV_ABI_GUEST_INFO, info, err);
  if (abi_rc < 0)
    return abi_rc;
  g_autoptr(GError) e = NULL;
  gint64 t0 = g_get_monotonic_time();
  KvCheckResult r;
  if (!kv_sandbox_rpc(sb, &kv_m_shim_agent_check, NULL, &r, &e))
    return kv_error_propagate(err, e);
  katavm_guest_info gi = {.struct_size = sizeof gi};
  gi.round_trip_us = (uint64_t)(g_get_monotonic_time() - t0);
  g_strlcpy(gi.agent_version, r.agent_version ? r.agent_version : "", sizeof(gi.agent_version));
  g_strlcpy(gi.kernel_release, r.kernel ? r.kernel : "", sizeof(gi.kernel_release));
  gi.proto_version = (unsigned)MAX(r.proto, 0);
  gi.cpus_online = (unsigned)MAX(r.cpus_online, 0);
  gi.mem_total_kib = (uint64_t)MAX(r.mem_total_kib, 0);
  gi.uptime_ms = (uint64_t)MAX(r.uptime_ms, 0);
  kv_msg_clear(kv_m_shim_agent_check.result, &r);
  kv_abi_copy_out(KV_ABI_GUEST_INFO, info, &gi, sizeof gi);
  return 0;
}

int katavm_sandbox_inspect(katavm_sandbox *sb, char **json_out, katavm_error **err) {
  if (!sb || !json_out)
    return kv_error_set(err, KATAVM_E_INVALID, "sandbox and json_out must not be NULL");
  g_autoptr(GError) e = NULL;
  KvShimStateResult st;
  if (!kv_sandbox_rpc(sb, &kv_m_shim_state, NULL, &st, &e))
    return kv_error_propagate(err, e);
  /* The inspect document is the shim's state, re-encoded from the
   * contract's table (what the shim sent that the contract does not know
   * is not passed on), plus the guest's view. */
  g_autoptr(JsonObject) r = kv_msg_encode(kv_m_shim_state.result, &st);
  if (!g_strcmp0(st.state, KV_SANDBOX_RUNNING)) {
    g_autoptr(GError) ge = NULL;
    KvCheckResult g;
    if (kv_sandbox_rpc(sb, &kv_m_shim_agent_check, NULL, &g, &ge)) {
      json_object_set_object_member(r, "guest", kv_msg_encode(kv_m_shim_agent_check.result, &g));
      kv_msg_clear(kv_m_shim_agent_check.result, &g);
    } else {
      json_object_set_string_member(r, "guest_error", ge->message);
    }
    /* The guest's network, as its kernel has it. */
    g_autoptr(GError) ne = NULL;
    KvNetInfoResult ni;
    if (kv_sandbox_rpc(sb, &kv_m_net_info, NULL, &ni, &ne)) {
      json_object_set_object_member(r, "network", kv_msg_encode(kv_m_net_info.result, &ni));
      kv_msg_clear(kv_m_net_info.result, &ni);
    } else {
      json_object_set_string_member(r, "network_error", ne->message);
    }
  }
  kv_msg_clear(kv_m_shim_state.result, &st);
  g_autofree char *s = kv_json_to_string(r);
  *json_out = strdup(s);
  return 0;
}
