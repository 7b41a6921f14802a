/* agent/bench.c: the guest half of bench/exec's throughput floor (see
 * bench.h): with katavm.bench_mib=N on the kernel command line, write N MiB
 * of zeros to the virtio-serial port io.katavm.bench.0 twice, as fast as
 * the guest can, then close it. The host side times each half.
 *
 *  1. From a static buffer: the port's cost alone.
 *  2. Made the way the exec side's `dd if=/dev/zero bs=1M` makes them:
 *     read(2) 1 MiB from /dev/zero, write(2) it. The producer's own work
 *     (the kernel clearing dd's buffer) is then on both sides of the
 *     comparison; it is the floor bench/exec compares against.
 *
 * It runs in its own thread because the writes block for as long as the
 * host drains them (seconds under TCG), and the agent's main loop must
 * keep serving the agent channel meanwhile.
 */
#include "bench.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PORTS_SYSFS "/sys/class/virtio-ports"
#define CMDLINE_KEY "katavm.bench_mib="
/* One write's worth, dd's bs=1M. The driver takes at most 32 KiB per
 * write() (virtio_console caps each buffer), so a write is short and is
 * finished by the loop below, as dd's is. */
#define CHUNK (1024 * 1024)
/* Bounds on N: more than 64 GiB is a typo, not a benchmark. */
#define MAX_MIB (64u * 1024)
/* How often to look again for the port and for a host. Neither can be
 * waited on: the port appears via sysfs, and poll() on a port without a
 * host returns POLLHUP at once (see channel.c). 10 ms is far below a
 * boot's noise and costs nothing measurable. */
#define RETRY_US (10 * 1000)
/* Give up when the host never shows up, so a misconfigured bench VM does
 * not spin forever; the bench kills the VM long before this. */
#define WAIT_LIMIT_US (600 * G_USEC_PER_SEC)

/* N from "katavm.bench_mib=N" in /proc/cmdline, 0 when absent or bad. */
static guint bench_mib_from_cmdline(void) {
  g_autofree char *cmdline = NULL;
  if (!g_file_get_contents("/proc/cmdline", &cmdline, NULL, NULL))
    return 0;
  g_auto(GStrv) words = g_strsplit_set(g_strstrip(cmdline), " \t", -1);
  for (char **w = words; *w != NULL; w++) {
    if (!g_str_has_prefix(*w, CMDLINE_KEY))
      continue;
    const char *v = *w + strlen(CMDLINE_KEY);
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n == 0 || n > MAX_MIB) {
      agent_error("bench: ignoring %s (want 1..%u)", *w, MAX_MIB);
      return 0;
    }
    return (guint)n;
  }
  return 0;
}

/* "/dev/vportNpM" of the port named `name`, or NULL when not there yet.
 * The same lookup as channel.c's, which is private to the channel: the
 * number varies with the device layout, so only the name identifies it. */
static char *find_port(const char *name) {
  g_autoptr(GDir) dir = g_dir_open(PORTS_SYSFS, 0, NULL);
  if (dir == NULL)
    return NULL;
  const char *entry;
  while ((entry = g_dir_read_name(dir)) != NULL) {
    g_autofree char *attr = g_build_filename(PORTS_SYSFS, entry, "name", NULL);
    g_autofree char *value = NULL;
    if (!g_file_get_contents(attr, &value, NULL, NULL) || strcmp(g_strchomp(value), name) != 0)
      continue;
    char *dev = g_build_filename("/dev", entry, NULL);
    if (access(dev, F_OK) == 0)
      return dev;
    /* devtmpfs may lag behind sysfs: make the node from its dev number. */
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

/* Blocks until a host is connected to the port: poll() stops reporting
 * POLLHUP then. FALSE on a port error or after WAIT_LIMIT_US. */
static gboolean wait_for_host(int fd, const char *dev) {
  gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT_US;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r = poll(&p, 1, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 || (p.revents & (POLLERR | POLLNVAL))) {
      agent_error("bench: poll %s: %s", dev, r < 0 ? g_strerror(errno) : "port error");
      return FALSE;
    }
    if (!(p.revents & POLLHUP))
      return TRUE;
    if (g_get_monotonic_time() > deadline) {
      agent_error("bench: no host on %s", dev);
      return FALSE;
    }
    g_usleep(RETRY_US);
  }
}

/* Writes total bytes of zeros to fd in CHUNK writes: from buf as it is
 * when zero < 0, else each chunk read from /dev/zero (fd zero) into buf
 * first, as dd does. FALSE when the host went away or a read failed. */
static gboolean write_zeros(int fd, const char *dev, char *buf, guint64 total, int zero) {
  guint64 sent = 0;
  while (sent < total) {
    gsize want = MIN((guint64)CHUNK, total - sent);
    gsize off = 0;
    while (zero >= 0 && off < want) {
      ssize_t n = read(zero, buf + off, want - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        agent_error("bench: read /dev/zero: %s", n < 0 ? g_strerror(errno) : "end of file");
        return FALSE;
      }
      off += (gsize)n;
    }
    off = 0;
    while (off < want) {
      ssize_t n = write(fd, buf + off, want - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        /* The host went away mid-stream: nothing to retry for. */
        agent_error("bench: write %s after %" G_GUINT64_FORMAT " bytes: %s", dev, sent + off,
                    n < 0 ? g_strerror(errno) : "0 bytes");
        return FALSE;
      }
      off += (gsize)n;
    }
    sent += want;
  }
  return TRUE;
}

static gpointer bench_thread(gpointer data) {
  guint mib = GPOINTER_TO_UINT(data);
  gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT_US;
  g_autofree char *dev = NULL;
  while ((dev = find_port(AGENT_BENCH_PORT)) == NULL) {
    if (g_get_monotonic_time() > deadline) {
      agent_error("bench: no virtio-serial port named %s", AGENT_BENCH_PORT);
      return NULL;
    }
    g_usleep(RETRY_US);
  }
  /* Blocking: each write then waits for free buffers instead of spinning
   * on EAGAIN, which would steal the one vCPU from the kernel's own work
   * of handing buffers to the device. */
  int fd = open(dev, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    agent_error("bench: open %s: %s", dev, g_strerror(errno));
    return NULL;
  }
  if (!wait_for_host(fd, dev)) {
    close(fd);
    return NULL;
  }

  g_autofree char *buf = g_malloc0(CHUNK);
  int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
  if (zero < 0) {
    agent_error("bench: open /dev/zero: %s", g_strerror(errno));
    close(fd);
    return NULL;
  }
  guint64 total = (guint64)mib * 1024 * 1024;
  gboolean ok = write_zeros(fd, dev, buf, total, -1) && write_zeros(fd, dev, buf, total, zero);
  close(zero);
  /* Buffers already queued stay with the device and still reach the host:
   * the kernel discards only unread input on close. */
  close(fd);
  if (ok)
    agent_debug("bench: wrote 2 x %u MiB to %s", mib, dev);
  return NULL;
}

void agent_bench_start(void) {
  guint mib = bench_mib_from_cmdline();
  if (mib == 0)
    return;
  g_thread_unref(g_thread_new("bench", bench_thread, GUINT_TO_POINTER(mib)));
}
