/* agent/channel.c: finding, opening and re-opening the virtio-serial port
 * and running a KvConn on it (see channel.h).
 *
 * What the virtio_console driver does that shapes this code: a port can be
 * opened by one process at a time (EBUSY otherwise); poll() reports POLLHUP
 * for as long as no host is connected, and read() returns 0 then, so a
 * disconnected port can never be waited on with poll; data left from an old
 * host session is discarded when the port is closed; a host connect or
 * disconnect raises SIGIO on a port opened with O_ASYNC.
 */
#include "channel.h"
#include "log.h"
#include "power.h"
#include "rpc.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PORTS_SYSFS "/sys/class/virtio-ports"
/* The port shows up some milliseconds after virtio_console loads (the host
 * announces it over the control queue): poll for it quickly at first, then
 * slowly until the deadline. */
#define SEARCH_INTERVAL_FAST_MS 5
#define SEARCH_INTERVAL_SLOW_MS 100
#define SEARCH_FAST_US (1 * G_USEC_PER_SEC)
#define SEARCH_TIMEOUT_US (30 * G_USEC_PER_SEC)
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

static struct {
  char *name;
  int fd;       /* port open, no host yet; -1 when closed or owned by conn */
  KvConn *conn; /* serving a host */
  guint timer;
  guint backoff_ms;
  gint64 search_started;
  gboolean exit_on_close; /* test mode */
  gboolean opened_once;
  AgentChannelOpenedFunc first_open;
  gpointer first_open_user;
} ch = {.fd = -1};

static gboolean step(gpointer unused);

static void schedule(guint ms) {
  if (ch.timer != 0)
    g_source_remove(ch.timer);
  ch.timer = g_timeout_add(ms, step, NULL);
}

static guint next_backoff(void) {
  guint ms = ch.backoff_ms;
  ch.backoff_ms = MIN(ch.backoff_ms * 2, BACKOFF_MAX_MS);
  return ms;
}

/* Returns "/dev/vportNpM" for the port named `name`, or NULL when there is
 * no such port (yet). The port number varies with the device layout. */
static char *find_port(const char *name) {
  g_autoptr(GDir) dir = g_dir_open(PORTS_SYSFS, 0, NULL);
  if (dir == NULL)
    return NULL;
  const char *entry;
  while ((entry = g_dir_read_name(dir)) != NULL) {
    g_autofree char *attr = g_build_filename(PORTS_SYSFS, entry, "name", NULL);
    g_autofree char *value = NULL;
    /* The name arrives in its own control message: empty until then. */
    if (!g_file_get_contents(attr, &value, NULL, NULL))
      continue;
    if (strcmp(g_strchomp(value), name) != 0)
      continue;

    char *dev = g_build_filename("/dev", entry, NULL);
    if (access(dev, F_OK) == 0)
      return dev;
    /* devtmpfs creates nodes from a kernel thread, a little later than
     * sysfs shows the port: make the node ourselves instead of waiting. */
    g_autofree char *dev_attr = g_build_filename(PORTS_SYSFS, entry, "dev", NULL);
    g_autofree char *devnum = NULL;
    unsigned maj = 0, min = 0;
    if (g_file_get_contents(dev_attr, &devnum, NULL, NULL) &&
        sscanf(devnum, "%u:%u", &maj, &min) == 2 &&
        (mknod(dev, S_IFCHR | 0600, makedev(maj, min)) == 0 || errno == EEXIST))
      return dev;
    g_free(dev);
    return NULL;
  }
  return NULL;
}

static void on_request(KvConn *c, guint32 id, const char *method, JsonObject *params,
                       gpointer user) {
  agent_rpc_handle(c, id, method, params);
}

static void on_frame(KvConn *c, const KvFrame *f, gpointer user) {
  agent_streams_on_frame(c, f);
}

static void on_closed(KvConn *c, const GError *why, gpointer user) {
  gboolean had_host = kv_conn_peer_role(c) != NULL;

  if (why != NULL && !g_error_matches(why, KV_PROTO_ERROR, KV_PROTO_ERROR_CLOSED))
    agent_error("host connection dropped: %s", why->message);
  else
    agent_debug("host disconnected");

  /* Streams and waiting requests of this host session end with it. */
  agent_rpc_conn_closed(c);
  /* The conn holds its own reference while it notifies us. */
  g_clear_pointer(&ch.conn, kv_conn_unref);
  if (ch.exit_on_close)
    agent_poweroff();

  /* A session that got as far as HELLO ended normally: retry soon. One
   * that died before (garbage, an instant close) makes us back off more. */
  if (had_host)
    ch.backoff_ms = BACKOFF_MIN_MS;
  ch.search_started = g_get_monotonic_time();
  schedule(next_backoff());
}

static void serve(int fd) {
  static const KvConnHandlers handlers = {
      .on_request = on_request,
      .on_frame = on_frame,
      .on_closed = on_closed,
  };
  /* kv_conn_new queues our HELLO and writes it at once: this is the
   * agent's first byte on the wire. */
  ch.conn = kv_conn_new(fd, "agent", &handlers, NULL, NULL);
  agent_debug("serving host on the agent channel");
}

/* Opens the port; FALSE when it is not there (yet) or cannot be opened,
 * with a retry scheduled. */
static gboolean open_port(void) {
  g_autofree char *dev = find_port(ch.name);
  if (dev == NULL) {
    gint64 searching = g_get_monotonic_time() - ch.search_started;
    if (searching > SEARCH_TIMEOUT_US)
      agent_fatal("no virtio-serial port named \"%s\": is the agent "
                  "channel configured?",
                  ch.name);
    schedule(searching < SEARCH_FAST_US ? SEARCH_INTERVAL_FAST_MS : SEARCH_INTERVAL_SLOW_MS);
    return FALSE;
  }
  int fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    agent_error("open %s: %s", dev, g_strerror(errno));
    schedule(next_backoff());
    return FALSE;
  }
  /* Ask for SIGIO on host connect/disconnect (see agent_channel_kick). */
  if (fcntl(fd, F_SETOWN, getpid()) < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC) < 0)
    agent_debug("no SIGIO on %s: %s", dev, g_strerror(errno));
  ch.fd = fd;
  agent_debug("opened %s", dev);
  return TRUE;
}

/* With the port open: serve if a host is connected, else wait. */
static void check_host(void) {
  struct pollfd p = {.fd = ch.fd, .events = POLLIN | POLLOUT};
  int r;
  do
    r = poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);

  if (r < 0 || (p.revents & (POLLERR | POLLNVAL))) {
    /* Port unplugged under us: look for it again. */
    close(ch.fd);
    ch.fd = -1;
    schedule(next_backoff());
    return;
  }
  if (p.revents & POLLHUP) {
    schedule(next_backoff());
    return;
  }
  int fd = ch.fd;
  ch.fd = -1;
  /* SIGIO on every incoming chunk would be wasted work from here on. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_ASYNC);
  if (ch.timer != 0) {
    g_source_remove(ch.timer);
    ch.timer = 0;
  }
  serve(fd);
}

static gboolean step(gpointer unused) {
  ch.timer = 0;
  if (ch.conn != NULL)
    return G_SOURCE_REMOVE;
  if (ch.fd < 0) {
    if (!open_port())
      return G_SOURCE_REMOVE;
    check_host();
    if (!ch.opened_once) {
      ch.opened_once = TRUE;
      if (ch.first_open != NULL)
        ch.first_open(ch.first_open_user);
    }
    return G_SOURCE_REMOVE;
  }
  check_host();
  return G_SOURCE_REMOVE;
}

void agent_channel_start_port(const char *name, AgentChannelOpenedFunc first_open, gpointer user) {
  g_return_if_fail(ch.name == NULL);
  ch.name = g_strdup(name);
  ch.backoff_ms = BACKOFF_MIN_MS;
  ch.search_started = g_get_monotonic_time();
  ch.first_open = first_open;
  ch.first_open_user = user;
  step(NULL);
}

void agent_channel_start_fd(int fd) {
  g_return_if_fail(ch.name == NULL && ch.conn == NULL);
  ch.exit_on_close = TRUE;
  serve(fd);
}

void agent_channel_kick(void) {
  if (ch.conn == NULL && ch.fd >= 0)
    check_host();
}

KvConn *agent_channel_conn(void) {
  if (ch.conn != NULL && kv_conn_is_ready(ch.conn))
    return ch.conn;
  return NULL;
}
