/* lib/shim/relay.c: containers and processes in the shim.
 *
 * Clients ask for container and process operations; the shim mounts each
 * container's rootfs and volumes into the sandbox's share (it owns the
 * sandbox's host state; every path and mount operation in the share goes
 * through fs.c, which follows nothing the guest placed there) and relays
 * the requests to the agent: each is decoded as the
 * contract says (lib/proto/msg.h: container_add and the KV_RELAYED
 * methods), its stream ids mapped in the typed struct, and encoded again
 * for the agent; the agent's result is decoded and encoded again for the
 * client. Relay state is this file's own (Relay); it sits on state.h and
 * calls nothing above it. Stdio streams are relayed
 * frame by frame: each client stream id is mapped to a fresh agent stream id,
 * DATA/CREDIT/EOF are forwarded unchanged, so flow control is end to end and
 * the shim buffers at most one window per stream. A client that goes away
 * does not stall its processes: its guest-to-host streams are drained here
 * (credited back and discarded) and its stdin gets EOF.
 *
 * Output straight into the caller's pipe: a client may send, with its
 * exec/container_add request, the write ends of its stdout/stderr pipes
 * (sink_fds set in the params, SCM_RIGHTS, stdout first; the shim offers it
 * with KV_FEATURE_SINK_FDS in its HELLO). The shim then writes
 * those streams' DATA into the pipes itself, grants the agent credit as the
 * pipes take the bytes, and closes them at EOF. That takes a socket hop, a
 * process and three copies off the busiest path there is, process output
 * (bench/exec). Flow control stays end to end: the shim holds at most the
 * stream's window of bytes the pipe did not take, and enforces that
 * window on the (untrusted) agent. */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "relay.h"

/* Container directories a recovering shim takes over at most (the guest
 * could have made any number). */
#define RECOVER_MAX 4096
struct _Relay {
  Shim *s;
  guint32 next_agent_stream;
  GHashTable *routes_by_agent;  /* agent stream id -> Route* */
  GHashTable *routes_by_client; /* KvConn* -> GHashTable(client sid -> Route*) */
  GHashTable *mounts;           /* ids of the containers with a directory in the share */
  dev_t root_dev;               /* the host's / (a rootfs must not be it) */
  ino_t root_ino;
  /* KvConn* -> GHashTable of "cid/eid" -> NULL: the execs a client started
   * and has not seen exit; killed when that client goes (relay.h). */
  GHashTable *execs_by_client;
  gsize window_growth; /* window granted beyond the initial, all routes */
};

typedef struct {
  KvConn *client; /* NULL once the client has gone: drain */
  guint32 csid;
  guint32 asid;
  gboolean to_guest; /* stdin */
  /* An output stream written into the client's pipe (sink >= 0). */
  Relay *rl;
  int sink;
  GByteArray *held;  /* DATA the pipe has not taken yet (<= one window) */
  GSource *sink_src; /* waits for room in the pipe while held is not empty */
  KvWindow win;      /* what the agent may still send */
  guint32 window;    /* the window granted in all, grown as the pipe keeps up */
  gsize to_credit;   /* taken by the pipe (or discarded), not yet granted */
  gboolean eof;      /* the agent ended the stream: close once held is out */
  gboolean broken;   /* the reader is gone: discard */
} Route;

/* What all routes together may be granted beyond their initial windows:
 * four streams' worth. A reader that stops after keeping up leaves its
 * grown window held here, so the growth is shared: 50 such streams cost
 * 50 initial windows and this, not 50 times KV_STREAM_MAX_WINDOW. */
#define WINDOW_GROWTH_BUDGET (4 * (KV_STREAM_MAX_WINDOW - KV_STREAM_INITIAL_WINDOW))

static void route_free(Route *r) {
  if (r->window > KV_STREAM_INITIAL_WINDOW)
    r->rl->window_growth -= r->window - KV_STREAM_INITIAL_WINDOW;
  if (r->sink_src) {
    g_source_destroy(r->sink_src);
    g_source_unref(r->sink_src);
  }
  if (r->sink >= 0)
    close(r->sink);
  if (r->held)
    g_byte_array_unref(r->held);
  g_free(r);
}

/* Snapshot of a table's keys or values, safe to walk while removing
 * (glib 2.74 has no g_hash_table_get_values_as_ptr_array). */
static GPtrArray *snapshot(GHashTable *t, gboolean keys) {
  GPtrArray *a = g_ptr_array_new();
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, t);
  while (g_hash_table_iter_next(&it, &k, &v))
    g_ptr_array_add(a, keys ? k : v);
  return a;
}

Relay *relay_new(Shim *s) {
  Relay *rl = g_new0(Relay, 1);
  rl->s = s;
  rl->next_agent_stream = 1;
  struct stat root;
  if (stat("/", &root) == 0) {
    rl->root_dev = root.st_dev;
    rl->root_ino = root.st_ino;
  }
  rl->routes_by_agent = g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify)route_free);
  rl->routes_by_client =
      g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify)g_hash_table_unref);
  rl->mounts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  /* A recovering shim inherits the mounts of the one that died: every
   * container directory in the share (listed without following links;
   * what a guest put there is unmounted and removed as carefully as ours
   * are, fs.c). */
  int share = shim_fs_open_share(s->p.shared, NULL);
  if (share >= 0) {
    g_autoptr(GPtrArray) names = shim_fs_list(share, "containers");
    for (guint i = 0; i < names->len && g_hash_table_size(rl->mounts) < RECOVER_MAX; i++)
      if (kv_id_valid(names->pdata[i], NULL, NULL))
        g_hash_table_add(rl->mounts, g_strdup(names->pdata[i]));
    close(share);
  }
  rl->execs_by_client = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                              (GDestroyNotify)g_hash_table_unref);
  return rl;
}

void relay_free(Relay *rl) {
  if (!rl)
    return;
  g_hash_table_unref(rl->routes_by_client);
  g_hash_table_unref(rl->routes_by_agent);
  g_hash_table_unref(rl->mounts);
  g_hash_table_unref(rl->execs_by_client);
  g_free(rl);
}

gboolean relay_has_container(Relay *rl, const char *cid) {
  return cid && g_hash_table_contains(rl->mounts, cid);
}

static void route_remove(Relay *rl, Route *r) {
  if (r->client) {
    GHashTable *t = g_hash_table_lookup(rl->routes_by_client, r->client);
    if (t)
      g_hash_table_remove(t, GUINT_TO_POINTER(r->csid));
  }
  g_hash_table_remove(rl->routes_by_agent, GUINT_TO_POINTER(r->asid));
}

static Route *route_add(Relay *rl, KvConn *client, guint32 csid, gboolean to_guest) {
  GHashTable *t = g_hash_table_lookup(rl->routes_by_client, client);
  if (!t) {
    t = g_hash_table_new(NULL, NULL);
    g_hash_table_insert(rl->routes_by_client, client, t);
  }
  if (g_hash_table_contains(t, GUINT_TO_POINTER(csid)))
    return NULL;
  Route *r = g_new0(Route, 1);
  r->rl = rl;
  r->sink = -1;
  r->client = client;
  r->csid = csid;
  /* Agent stream ids are never reused while the shim lives (u32 wraps after
   * four billion streams; skip 0 and ids still in use). */
  do {
    r->asid = rl->next_agent_stream++;
  } while (r->asid == 0 || g_hash_table_contains(rl->routes_by_agent, GUINT_TO_POINTER(r->asid)));
  r->to_guest = to_guest;
  g_hash_table_insert(t, GUINT_TO_POINTER(csid), r);
  g_hash_table_insert(rl->routes_by_agent, GUINT_TO_POINTER(r->asid), r);
  return r;
}

static void send_frame(KvConn *c, KvFrameType type, guint32 stream, GBytes *payload) {
  gsize len = 0;
  const void *data = payload ? g_bytes_get_data(payload, &len) : NULL;
  kv_conn_send(c, type, stream, data, len, NULL);
}

/* ---- output into the client's pipe ---- */

/* Credit goes back in batches of KV_OUTPUT_CREDIT_BATCH, or at once when
 * the pipe took all there was (a small window must not wait for a batch).
 * Once the window has grown to KV_STREAM_MAX_WINDOW, a quarter of it is
 * the batch either way: each CREDIT costs the guest an interrupt and a
 * wake-up of its agent, and a quarter of 8 MiB still leaves the agent 6
 * MiB to send meanwhile (bench/exec, TCG: ours +10% in alternating runs). */
static void sink_credit(Route *r, gsize n, gboolean all) {
  r->to_credit += n;
  gboolean grown = r->window >= KV_STREAM_MAX_WINDOW;
  gsize batch = grown ? KV_STREAM_MAX_WINDOW / 4 : KV_OUTPUT_CREDIT_BATCH;
  if (!r->rl->s->agent || r->to_credit == 0 || (r->to_credit < batch && (!all || grown)))
    return;
  guint32 g = kv_window_grant(&r->win, (guint32)r->to_credit);
  r->to_credit = 0;
  if (g)
    kv_conn_send_credit(r->rl->s->agent, r->asid, g, NULL);
}

static void sink_flush(Route *r);

static gboolean on_sink_writable(int fd, GIOCondition cond, gpointer user) {
  Route *r = user;
  g_clear_pointer(&r->sink_src, g_source_unref);
  sink_flush(r);
  return G_SOURCE_REMOVE;
}

/* Writes `len` bytes into the pipe as far as it takes them; returns how
 * many it took. A reader that went away (EPIPE) or any other error makes
 * the route discard from then on: the guest process must not block. */
static gsize sink_write(Route *r, const guint8 *data, gsize len) {
  gsize done = 0;
  while (done < len && !r->broken) {
    ssize_t n = write(r->sink, data + done, len - done);
    if (n > 0)
      done += (gsize)n;
    else if (n < 0 && errno == EINTR)
      continue;
    else if (n < 0 && errno == EAGAIN)
      break;
    else
      r->broken = TRUE;
  }
  return done;
}

/* Moves held bytes into the pipe, credits the agent for them, waits for
 * room when the pipe is full, and ends the stream once EOF came and
 * everything is out. May remove (free) the route. */
static void sink_flush(Route *r) {
  if (r->held->len > 0) {
    gsize n = sink_write(r, r->held->data, r->held->len);
    g_byte_array_remove_range(r->held, 0, (guint)n);
    if (r->broken) {
      n += r->held->len;
      g_byte_array_set_size(r->held, 0);
    }
    sink_credit(r, n, r->held->len == 0);
  }
  if (r->held->len > 0) {
    if (!r->sink_src) {
      r->sink_src = g_unix_fd_source_new(r->sink, G_IO_OUT | G_IO_ERR);
      g_source_set_callback(r->sink_src, G_SOURCE_FUNC(on_sink_writable), r, NULL);
      g_source_attach(r->sink_src, shim_ctx);
    }
    return;
  }
  if (r->eof)
    route_remove(r->rl, r); /* closes the pipe: the caller reads EOF */
}

static void sink_data(Route *r, GBytes *payload) {
  gsize len = 0;
  const guint8 *data = g_bytes_get_data(payload, &len);
  g_autoptr(GError) e = NULL;
  if (!kv_window_on_data(&r->win, len, &e)) {
    /* The agent ignored flow control: end this stream rather than hold
     * whatever it sends. */
    shim_log("agent stream %u: %s; closing it", r->asid, e->message);
    route_remove(r->rl, r);
    return;
  }
  gsize took = 0;
  if (r->held->len == 0 && !r->broken)
    took = sink_write(r, data, len); /* the usual case: no copy here */
  if (r->broken) {
    sink_credit(r, len, TRUE);
    return;
  }
  /* The pipe took the whole frame at once: its reader keeps up, and the
   * credit round trip through QEMU, not the reader, is what would make the
   * guest wait. Grow this stream's window by what it just took, up to
   * KV_STREAM_MAX_WINDOW, by granting that much on top. A reader that is
   * slow from the start never gets more than the initial window held for
   * it here; one that stops later at most the grown one. Measured (TCG,
   * bench/exec, 256 MiB): with the agent's bulk bursts, ours/floor 0.61 and
   * 0.67 before, 0.74-0.87 after, in alternating runs. */
  if (took == len && r->window < KV_STREAM_MAX_WINDOW &&
      r->rl->window_growth < WINDOW_GROWTH_BUDGET) {
    gsize grow = MIN(len, (gsize)(KV_STREAM_MAX_WINDOW - r->window));
    grow = MIN(grow, WINDOW_GROWTH_BUDGET - r->rl->window_growth);
    r->window += (guint32)grow;
    r->rl->window_growth += grow;
    r->to_credit += grow;
  }
  g_byte_array_append(r->held, data + took, (guint)(len - took));
  sink_credit(r, took, r->held->len == 0);
  sink_flush(r);
}

/* The fds a request with sink_fds carries: one per output stream it names
 * (stdout first), taken off the client's conn as soon as the request is
 * decoded, so that a request that fails early cannot leave them to be
 * handed to the conn's next request. -1: none (or not sent). */
typedef struct {
  int fd[2]; /* stdout, stderr */
} SinkFds;

static void sink_fds_take(KvConn *client, gboolean sink_fds, const KvStreams *st, SinkFds *sf) {
  sf->fd[0] = sf->fd[1] = -1;
  if (!sink_fds || !st)
    return;
  if (st->stdout_id)
    sf->fd[0] = kv_conn_take_fd(client);
  if (st->stderr_id)
    sf->fd[1] = kv_conn_take_fd(client);
}

static void sink_fds_close(SinkFds *sf) {
  for (int i = 0; i < 2; i++)
    if (sf->fd[i] >= 0)
      close(sf->fd[i]);
  sf->fd[0] = sf->fd[1] = -1;
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(SinkFds, sink_fds_close)

/* A request too malformed to say which streams it names: whatever fds it
 * carried are on the conn, and none of them may go to the next request. */
static void sink_fds_drop_all(KvConn *client) {
  int fd;
  while ((fd = kv_conn_take_fd(client)) >= 0)
    close(fd);
}

/* Attaches the pipe the client sent for this route (*fd, then ours: -1).
 * FALSE when it sent none or something else than the write end of a
 * pipe. */
static gboolean sink_attach(Route *r, int *fdp, const char *name, GError **error) {
  int fd = *fdp;
  *fdp = -1;
  struct stat st;
  int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || fl < 0 ||
      (fl & O_ACCMODE) != O_WRONLY || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    if (fd >= 0)
      close(fd);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "streams.%s: sink_fds is set but the request did not carry "
                "the write end of a pipe for it",
                name);
    return FALSE;
  }
  r->sink = fd;
  r->held = g_byte_array_new();
  kv_window_init(&r->win, FALSE);
  r->window = KV_STREAM_INITIAL_WINDOW;
  return TRUE;
}

/* ---- requests ---- */

typedef struct {
  Relay *rl;
  Waiter *w;
  const KvMethod *m;        /* what the agent is asked */
  const KvMethod *client_m; /* what the client asked (container_add or m) */
  char *container;          /* container_add: unmounted if the create fails;
                               container_remove: unmounted once it succeeds */
  GPtrArray *routes;        /* Route* created for this request (undone on error) */
  gboolean sinks;           /* its output goes into the client's pipes */
  char *exec_key;           /* exec, wait of an exec: "cid/eid" */
} Pending;

static void pending_free(Pending *p) {
  waiter_free(p->w);
  g_free(p->container);
  g_free(p->exec_key);
  if (p->routes)
    g_ptr_array_unref(p->routes);
  g_free(p);
}

/* Unmount and remove everything of a container in the share: its volumes,
 * its rootfs, its directory (fs.c: nothing the guest placed is followed).
 * Safe on a container that is only half there. */
static void unmount_container(Relay *rl, const char *cid) {
  g_autoptr(GError) e = NULL;
  int share = shim_fs_open_share(rl->s->p.shared, &e);
  if (share < 0) {
    shim_log("container %s: %s", cid, e->message);
    g_hash_table_remove(rl->mounts, cid);
    return;
  }
  g_autofree char *dir = g_strdup_printf("containers/%s", cid);
  g_autofree char *vdir = g_strdup_printf("%s/volumes", dir);
  g_autoptr(GPtrArray) vols = shim_fs_list(share, vdir);
  g_autofree char *rootfs = g_strdup_printf("%s/rootfs", dir);
  for (guint i = 0; i <= vols->len; i++) {
    g_autofree char *rel =
        i < vols->len ? g_strdup_printf("%s/%s", vdir, (char *)vols->pdata[i]) : g_strdup(rootfs);
    if (!shim_fs_unmount(share, rel, &e) || !shim_fs_remove(share, rel, &e)) {
      shim_log("container %s: %s", cid, e->message);
      g_clear_error(&e);
    }
  }
  if (!shim_fs_remove(share, vdir, &e) || !shim_fs_remove(share, dir, &e))
    shim_log("container %s: %s", cid, e->message);
  close(share);
  g_hash_table_remove(rl->mounts, cid);
}

void relay_unmount_all(Relay *rl) {
  g_autoptr(GPtrArray) ids = snapshot(rl->mounts, TRUE);
  for (guint i = 0; i < ids->len; i++) {
    g_autofree char *id = g_strdup(ids->pdata[i]);
    unmount_container(rl, id);
  }
}

static void pending_undo(Pending *p) {
  for (guint i = 0; i < p->routes->len; i++)
    route_remove(p->rl, p->routes->pdata[i]);
  g_ptr_array_set_size(p->routes, 0);
  if (p->m == &kv_m_container_create && p->container)
    unmount_container(p->rl, p->container);
}

/* An exec belongs to the client connection that started it: it is killed
 * when that connection closes before the client saw it exit (a client
 * killed, or a handle freed early). Docs: docs/platform.md, "Execs". */
static void exec_owner_note(Relay *rl, KvConn *client, const char *key, gboolean started) {
  if (kv_conn_is_closed(client))
    started = FALSE; /* gone already: relay_client_closed has run */
  GHashTable *t = g_hash_table_lookup(rl->execs_by_client, client);
  if (started && !t) {
    t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert(rl->execs_by_client, client, t);
  }
  if (started)
    g_hash_table_add(t, g_strdup(key));
  else if (t)
    g_hash_table_remove(t, key);
}

static void on_orphan_killed(KvConn *agent, JsonObject *result, const GError *err, gpointer user) {
  g_autofree char *key = user;
  if (err && kv_remote_error_code(err) != KV_E_NOT_FOUND)
    shim_log("killing exec %s of a client that went: %s", key, err->message);
}

/* The client went: kill the execs it started and did not see exit. */
static void exec_orphans_kill(Relay *rl, KvConn *client) {
  GHashTable *t = g_hash_table_lookup(rl->execs_by_client, client);
  if (!t)
    return;
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init(&it, t);
  while (g_hash_table_iter_next(&it, &k, NULL)) {
    const char *key = k, *slash = strchr(key, '/');
    if (!slash || !rl->s->agent)
      continue;
    g_autofree char *cid = g_strndup(key, (gsize)(slash - key));
    shim_log("the client of exec %s went without waiting: killing the process", key);
    KvSignalParams sp = {.container_id = cid, .exec_id = (char *)slash + 1, .signal = SIGKILL};
    kv_call(rl->s->agent, &kv_m_signal, &sp, KV_CALL_TIMEOUT_MS, on_orphan_killed, g_strdup(key));
  }
  g_hash_table_remove(rl->execs_by_client, client);
}

static void on_agent_reply(KvConn *agent, JsonObject *result, const GError *err, gpointer user) {
  Pending *p = user;
  g_autoptr(GError) e = NULL;
  gpointer out = g_malloc0(p->m->result->size);
  if (!result) {
    /* The channel's loss is answered with the sandbox's fate, once known. */
    pending_undo(p);
    shim_reply_agent_error(p->rl->s, p->w->conn, p->w->id, err, NULL);
  } else if (!kv_result_decode(p->m, result, out, &e)) {
    g_prefix_error(&e, "the guest agent sent a malformed reply: ");
    pending_undo(p);
    shim_reply_error(p->w->conn, p->w->id, e);
  } else {
    if (p->m == &kv_m_container_remove && p->container)
      unmount_container(p->rl, p->container);
    if (p->exec_key)
      exec_owner_note(p->rl, p->w->conn, p->exec_key, p->m == &kv_m_exec);
    /* The client's method has the result of the agent's (container_add:
     * container_create's). */
    /* That the shim took the pipes is said once, by KV_FEATURE_SINK_FDS in
     * its HELLO (clients.c), not in each reply. */
    kv_reply(p->w->conn, p->w->id, p->client_m, out);
  }
  kv_msg_clear(p->m->result, out);
  g_free(out);
  pending_free(p);
}

/* Replace the client's stream ids by fresh agent ids, one route each. */
static gboolean map_streams(Relay *rl, KvConn *client, KvStreams *st, gboolean sinks, SinkFds *sf,
                            GPtrArray *routes, GError **error) {
  guint32 *ids[] = {&st->stdin_id, &st->stdout_id, &st->stderr_id};
  static const char *names[] = {"stdin", "stdout", "stderr"};
  for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
    if (!*ids[i])
      continue;
    Route *r = route_add(rl, client, *ids[i], i == 0);
    if (!r) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "stream id %u is already in use", *ids[i]);
      return FALSE;
    }
    g_ptr_array_add(routes, r);
    *ids[i] = r->asid;
    if (sinks && i > 0 && !sink_attach(r, &sf->fd[i - 1], names[i], error))
      return FALSE;
  }
  return TRUE;
}

/* The rootfs at containers/<id>/rootfs and volume n at
 * containers/<id>/volumes/<n> in the share. */
static gboolean mount_container(Relay *rl, const KvContainerAddParams *a, GError **error) {
  const char *cid = a->container_id;
  if (!g_path_is_absolute(a->rootfs)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "container_add: rootfs must be an absolute host path");
    return FALSE;
  }
  struct stat st;
  if (lstat(a->rootfs, &st) < 0 || !S_ISDIR(st.st_mode)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "rootfs %s is not a directory", a->rootfs);
    return FALSE;
  }
  if (st.st_ino == rl->root_ino && st.st_dev == rl->root_dev) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "rootfs %s is the host's root directory: refusing to share it", a->rootfs);
    return FALSE;
  }
  guint n = a->volumes ? a->volumes->len : 0;
  for (guint i = 0; i < n; i++) {
    const KvVolume *v = a->volumes->pdata[i];
    if (!g_path_is_absolute(v->source) || !g_path_is_absolute(v->destination)) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                  "volume %u (%s -> %s): source and destination must be absolute paths", i,
                  v->source, v->destination);
      return FALSE;
    }
  }
  /* Host sources are resolved normally: they are the caller's, not the
   * guest's. Not so anything inside the share itself, which the guest
   * writes: refused as a source. */
  g_autofree char *share_real = realpath(rl->s->p.shared, NULL);
  for (guint i = 0; share_real && i <= n; i++) {
    const char *src = i < n ? ((const KvVolume *)a->volumes->pdata[i])->source : a->rootfs;
    g_autofree char *real = realpath(src, NULL);
    gsize len = strlen(share_real);
    if (real && !strncmp(real, share_real, len) && (real[len] == '/' || real[len] == '\0')) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                  "%s %s is inside the sandbox's share, which the guest can write: refusing it "
                  "as a source",
                  i < n ? "volume" : "rootfs", src);
      return FALSE;
    }
  }
  int share = shim_fs_open_share(rl->s->p.shared, error);
  if (share < 0)
    return FALSE;
  /* From here on a failure is undone by unmount_container (the caller's
   * pending_undo): the rootfs, the volumes made so far, the directories. */
  g_hash_table_add(rl->mounts, g_strdup(cid));
  g_autofree char *rel = g_strdup_printf("containers/%s/rootfs", cid);
  gboolean ok = shim_fs_bind(share, rel, a->rootfs, a->readonly,
                             a->readonly ? a->mountpoints : NULL, "rootfs", error);
  for (guint i = 0; ok && i < n; i++) {
    const KvVolume *v = a->volumes->pdata[i];
    g_autofree char *vrel = g_strdup_printf("containers/%s/volumes/%u", cid, i);
    g_autofree char *what = g_strdup_printf("volume %s -> %s", v->source, v->destination);
    ok = shim_fs_bind(share, vrel, v->source, v->readonly, NULL, what, error);
  }
  close(share);
  return ok;
}

gboolean relay_handles(const KvMethod *m) {
  return m == &kv_m_shim_container_add || (m->flags & KV_RELAYED);
}

/* container_add: the shim's own method. Mount the rootfs and volumes into
 * the share, then ask the agent container_create with their guest paths. */
static void container_add(Relay *rl, Pending *p, KvContainerAddParams *a, SinkFds *sf) {
  Shim *s = rl->s;
  g_autoptr(GError) e = NULL;
  if (g_hash_table_contains(rl->mounts, a->container_id)) {
    g_set_error(&e, KV_ERROR_DOMAIN, KV_E_EXISTS,
                "a container with id '%s' already exists in this sandbox", a->container_id);
    goto fail;
  }
  gboolean mounted = mount_container(rl, a, &e);
  if (g_hash_table_contains(rl->mounts, a->container_id))
    p->container = g_strdup(a->container_id); /* undone on failure from here on */
  if (!mounted)
    goto fail;
  if (!map_streams(rl, p->w->conn, &a->streams, a->sink_fds, sf, p->routes, &e))
    goto fail;
  {
    g_autofree char *guest =
        g_strdup_printf(KV_GUEST_SHARED_DIR "/containers/%s/rootfs", a->container_id);
    /* The agent binds each volume from its place in the share. */
    g_autoptr(GPtrArray) vols = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; a->volumes && i < a->volumes->len; i++) {
      KvVolume *v = g_memdup2(a->volumes->pdata[i], sizeof(KvVolume));
      v->source =
          g_strdup_printf(KV_GUEST_SHARED_DIR "/containers/%s/volumes/%u", a->container_id, i);
      g_ptr_array_add(paths, v->source);
      g_ptr_array_add(vols, v);
    }
    KvContainerCreateParams cp = {.container_id = a->container_id,
                                  .spec = a->spec,
                                  .rootfs = guest,
                                  .streams = a->streams,
                                  .volumes = vols->len ? vols : NULL};
    kv_call(s->agent, p->m, &cp, KV_CALL_TIMEOUT_MS, on_agent_reply, p);
    return;
  }
fail:
  pending_undo(p);
  shim_reply_error(p->w->conn, p->w->id, e);
  pending_free(p);
}

void relay_request(Relay *rl, KvConn *client, guint32 id, const KvMethod *m, JsonObject *params) {
  Shim *s = rl->s;
  g_autoptr(GError) e = NULL;
  gboolean add = m == &kv_m_shim_container_add;
  gpointer in = g_malloc0(m->params->size);
  if (!kv_params_decode(m, params, in, &e)) {
    if (add || m == &kv_m_exec)
      sink_fds_drop_all(client);
    shim_reply_error(client, id, e);
    g_free(in);
    return;
  }
  KvStreams *streams = NULL;
  gboolean sinks = FALSE;
  if (add) {
    streams = &((KvContainerAddParams *)in)->streams;
    sinks = ((KvContainerAddParams *)in)->sink_fds;
  } else if (m == &kv_m_exec) {
    KvExecParams *x = in;
    streams = &x->streams;
    sinks = x->sink_fds;
    x->sink_fds = FALSE; /* not the agent's business */
  }
  /* Whatever happens to the request, its fds are off the conn now; those
   * no route took are closed on the way out. */
  g_auto(SinkFds) sf = {{-1, -1}};
  sink_fds_take(client, sinks, streams, &sf);
  Pending *p = g_new0(Pending, 1);
  p->rl = rl;
  p->w = waiter_new(client, id);
  p->client_m = m;
  p->m = add ? &kv_m_container_create : m;
  p->routes = g_ptr_array_new();
  p->sinks = sinks;
  if (m == &kv_m_exec) {
    KvExecParams *x = in;
    p->exec_key = g_strdup_printf("%s/%s", x->container_id, x->exec_id);
  } else if (m == &kv_m_wait && ((KvProcessRef *)in)->exec_id) {
    KvProcessRef *w = in;
    p->exec_key = g_strdup_printf("%s/%s", w->container_id, w->exec_id);
  }
  if (!shim_agent_usable(s, &e)) {
    shim_reply_error(client, id, e);
    pending_free(p);
  } else if (add) {
    container_add(rl, p, in, &sf);
  } else {
    if (m == &kv_m_container_remove)
      p->container = g_strdup(((KvContainerRemoveParams *)in)->container_id);
    if (streams && !map_streams(rl, client, streams, sinks, &sf, p->routes, &e)) {
      pending_undo(p);
      shim_reply_error(client, id, e);
      pending_free(p);
    } else {
      /* kv_call: wait (KV_NO_TIMEOUT) replies only when the process exits. */
      kv_call(s->agent, m, in, KV_CALL_TIMEOUT_MS, on_agent_reply, p);
    }
  }
  kv_msg_clear(m->params, in);
  g_free(in);
}

/* ---- stream frames ---- */

void relay_client_frame(Relay *rl, KvConn *client, const KvFrame *f) {
  if (f->type == KV_FRAME_EVENT)
    return;
  GHashTable *t = g_hash_table_lookup(rl->routes_by_client, client);
  Route *r = t ? g_hash_table_lookup(t, GUINT_TO_POINTER(f->stream)) : NULL;
  if (!r || !rl->s->agent)
    return; /* a stream that ended or never existed: drop */
  send_frame(rl->s->agent, f->type, r->asid, f->payload);
  if (f->type == KV_FRAME_EOF && r->to_guest)
    route_remove(rl, r);
}

void relay_agent_frame(Relay *rl, const KvFrame *f) {
  if (f->type == KV_FRAME_EVENT)
    return;
  Route *r = g_hash_table_lookup(rl->routes_by_agent, GUINT_TO_POINTER(f->stream));
  if (!r)
    return;
  if (r->sink >= 0) {
    if (f->type == KV_FRAME_DATA && g_bytes_get_size(f->payload)) {
      sink_data(r, f->payload);
    } else if (f->type == KV_FRAME_EOF) {
      r->eof = TRUE;
      sink_flush(r);
    }
    return;
  }
  if (!r->client) {
    /* The client left: keep the process running by draining its output. */
    if (f->type == KV_FRAME_DATA && g_bytes_get_size(f->payload))
      kv_conn_send_credit(rl->s->agent, r->asid, (guint32)g_bytes_get_size(f->payload), NULL);
    else if (f->type == KV_FRAME_EOF)
      route_remove(rl, r);
    return;
  }
  send_frame(r->client, f->type, r->csid, f->payload);
  if (f->type == KV_FRAME_EOF && !r->to_guest)
    route_remove(rl, r);
}

void relay_client_closed(Relay *rl, KvConn *client) {
  exec_orphans_kill(rl, client);
  GHashTable *t = g_hash_table_lookup(rl->routes_by_client, client);
  if (!t)
    return;
  g_autoptr(GPtrArray) rs = snapshot(t, FALSE);
  for (guint i = 0; i < rs->len; i++) {
    Route *r = rs->pdata[i];
    if (r->to_guest) {
      if (rl->s->agent)
        kv_conn_send(rl->s->agent, KV_FRAME_EOF, r->asid, NULL, 0, NULL);
      route_remove(rl, r);
    } else if (r->sink >= 0) {
      /* Its pipe may still have a reader: the output goes on into it. */
      g_hash_table_remove(t, GUINT_TO_POINTER(r->csid));
      r->client = NULL;
    } else {
      r->client = NULL;
      /* Whatever window the client had left unconsumed is granted again so
       * a blocked writer in the guest moves on. */
      if (rl->s->agent)
        kv_conn_send_credit(rl->s->agent, r->asid, KV_STREAM_INITIAL_WINDOW, NULL);
    }
  }
  g_hash_table_remove(rl->routes_by_client, client);
}

void relay_agent_lost(Relay *rl) {
  g_autoptr(GPtrArray) rs = snapshot(rl->routes_by_agent, FALSE);
  for (guint i = 0; i < rs->len; i++) {
    Route *r = rs->pdata[i];
    if (r->sink >= 0) {
      /* One last try for what is held; the pipe then ends (EOF). */
      if (r->held->len > 0 && !r->broken)
        sink_write(r, r->held->data, r->held->len);
    } else if (r->client && !r->to_guest) {
      kv_conn_send(r->client, KV_FRAME_EOF, r->csid, NULL, 0, NULL);
    }
    route_remove(rl, r);
  }
}
