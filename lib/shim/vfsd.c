/* lib/shim/vfsd.c: the sandbox's virtiofsd (see vfsd.h).
 *
 * Why the shim starts it and not libvirt (<binary> under <filesystem>):
 * libvirt would own the process (its pid file under the embedded root),
 * start it with options of its own choosing (the C virtiofsd then raises
 * RLIMIT_NOFILE to ~1M, which fails here without CAP_SYS_RESOURCE) and
 * tell nobody when it dies, while the guest's requests on the share would
 * simply hang. Started here, the daemon's options are ours, its death is
 * an event on a pidfd in the shim's main loop (the sandbox then stops with
 * an error that says so), and a shim that replaces a dead one adopts it by
 * pid the way it adopts the VM. libvirt only connects QEMU to the socket
 * (<source socket>, libvirt >= 8.0). */
#include "vfsd.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOCKET_WAIT_MS 15000
#define STOP_GRACE_MS 2000

struct _Vfsd {
  Shim *s;
  VfsdKind kind;
  char *sock;
  pid_t pid;      /* 0: none */
  int pidfd;      /* -1: none */
  gboolean child; /* ours to reap (started by this shim) */
  GSource *watch; /* pidfd readable = the daemon exited */
  VfsdLostFunc lost;
  gpointer lost_user;
};

static int pidfd_open_(pid_t pid) {
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static void describe(gpointer user, KvShimStateResult *out) {
  Vfsd *v = user;
  if (v->s->cfg.shared_fs)
    out->shared_fs = g_strdup(v->s->cfg.shared_fs);
  out->virtiofsd_pid = v->pid;
}

Vfsd *vfsd_new(Shim *s) {
  Vfsd *v = g_new0(Vfsd, 1);
  v->s = s;
  v->pidfd = -1;
  /* Embedded driver only: a libvirtd (qemu:///system) runs 9p itself. */
  if (!g_strcmp0(s->cfg.shared_fs, KV_SHARED_FS_VIRTIOFS))
    v->kind = VFSD_VIRTIOFS;
  else if (s->cfg.uri == NULL)
    v->kind = VFSD_9P_PROXY;
  v->sock = g_build_filename(s->p.run, v->kind == VFSD_9P_PROXY ? "9p.sock" : "vfs.sock", NULL);
  shim_add_describer(s, describe, v);
  return v;
}

static void unwatch(Vfsd *v) {
  shim_timer_clear(&v->watch);
}

static void forget(Vfsd *v) {
  unwatch(v);
  if (v->pidfd >= 0)
    close(v->pidfd);
  v->pidfd = -1;
  v->pid = 0;
  v->child = FALSE;
}

void vfsd_free(Vfsd *v) {
  if (!v)
    return;
  /* The daemon outlives the shim on purpose (like the VM): only forget it. */
  forget(v);
  g_free(v->sock);
  g_free(v);
}

void vfsd_set_lost_handler(Vfsd *v, VfsdLostFunc fn, gpointer user) {
  v->lost = fn;
  v->lost_user = user;
}

gboolean vfsd_enabled(Vfsd *v) {
  return v->kind != VFSD_NONE;
}

VfsdKind vfsd_kind(Vfsd *v) {
  return v->kind;
}

const char *vfsd_name(Vfsd *v) {
  return v->kind == VFSD_9P_PROXY ? "virtfs-proxy-helper" : "virtiofsd";
}

const char *vfsd_socket(Vfsd *v) {
  return v->sock;
}

/* How the daemon ended, reaping it when it is our child. */
static char *reap(Vfsd *v, gboolean *clean) {
  *clean = FALSE;
  if (!v->child)
    return g_strdup_printf("(pid %d) exited", v->pid);
  siginfo_t si = {0};
  if (waitid(P_PIDFD, v->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
    return g_strdup_printf("(pid %d) exited", v->pid);
  if (si.si_code == CLD_EXITED) {
    /* virtfs-proxy-helper ends with a status of its own when QEMU hangs
     * up; only a signal is a death there. */
    *clean = si.si_status == 0 || v->kind == VFSD_9P_PROXY;
    return g_strdup_printf("(pid %d) exited with status %d", v->pid, si.si_status);
  }
  return g_strdup_printf("(pid %d) was killed by signal %d (%s)", v->pid, si.si_status,
                         g_strsignal(si.si_status));
}

static gboolean on_daemon_exit(gint fd, GIOCondition cond, gpointer user) {
  Vfsd *v = user;
  gboolean clean = FALSE;
  g_autofree char *why = reap(v, &clean);
  /* The source is freed by returning REMOVE: drop our reference only. */
  g_source_unref(v->watch);
  v->watch = NULL;
  forget(v);
  shim_state_save(v->s);
  if (v->lost)
    v->lost(v->lost_user, why, clean);
  return G_SOURCE_REMOVE;
}

static void watch(Vfsd *v) {
  unwatch(v);
  v->watch = g_unix_fd_source_new(v->pidfd, G_IO_IN);
  g_source_set_callback(v->watch, G_SOURCE_FUNC(on_daemon_exit), v, NULL);
  g_source_attach(v->watch, shim_ctx);
}

/* The share, bound onto itself, nosuid and nodev on the host side (a
 * setuid file or device node the guest makes there gives nothing on the
 * host; the guest applies its own mount flags), a peer group of its own
 * (private first: never a peer of the mount it lives on) and shared, so
 * that virtiofsd's namespace (a slave copy) sees later mounts below it. */
static gboolean share_prepare(Vfsd *v, GError **error) {
  const char *dir = v->s->p.shared;
  /* The share itself is the shim's (below the 0700 sandbox dir); what
   * the guest controls is below it. Refuse anything but a directory. */
  int fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "share %s: %s", dir, g_strerror(e));
    return FALSE;
  }
  char proc[64];
  g_snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  struct {
    const char *src;
    unsigned long flags;
    const char *what;
  } steps[] = {
      {proc, MS_BIND, "bind"},
      {NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, "remount nosuid,nodev"},
      {NULL, MS_PRIVATE, "make private"},
      {NULL, MS_SHARED, "make shared"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(steps); i++) {
    if (mount(steps[i].src, dir, NULL, steps[i].flags, NULL) < 0) {
      int e = errno;
      close(fd);
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "share %s: %s: %s", dir, steps[i].what,
                  g_strerror(e));
      if (i > 0)
        umount2(dir, MNT_DETACH);
      return FALSE;
    }
  }
  close(fd);
  return TRUE;
}

/* virtiofsd's command line. */
static GStrv virtiofsd_argv(Vfsd *v) {
  Shim *s = v->s;
  /* RLIMIT_NOFILE: virtiofsd keeps an O_PATH fd per inode the guest has
   * looked up, and by default raises the limit to ~1M, which needs
   * CAP_SYS_RESOURCE (absent here): raise the soft limit to the hard one,
   * which anyone may. */
  struct rlimit rl = {0};
  getrlimit(RLIMIT_NOFILE, &rl);
  /* cache=MODE, and the name/attribute timeout (docs/storage-fs.md):
   * 1 s by default. */
  char *a_cache = s->cfg.virtiofs_timeout_ms < 0
                      ? g_strdup_printf("cache=%s", s->cfg.virtiofs_cache)
                      : g_strdup_printf("cache=%s,timeout=%" G_GINT64_FORMAT ".%03d",
                                        s->cfg.virtiofs_cache, s->cfg.virtiofs_timeout_ms / 1000,
                                        (int)(s->cfg.virtiofs_timeout_ms % 1000));
  /* sandbox=namespace: pivot_root into the share in new mount, pid and net
   * namespaces; the C virtiofsd always applies its seccomp filter and
   * drops the capabilities it does not need. No xattrs (the guest would
   * write trusted.* / security.* on host files), no locks passed to the
   * host. announce_submounts: the container rootfs and volumes bound
   * under the share are other filesystems; the guest gets a submount (its
   * own st_dev) for each, so inode numbers of different host filesystems
   * never meet in one guest superblock. */
  GPtrArray *a = g_ptr_array_new();
  g_ptr_array_add(a, g_strdup(s->cfg.virtiofsd));
  g_ptr_array_add(a, g_strdup_printf("--socket-path=%s", v->sock));
  g_ptr_array_add(a, g_strdup("-o"));
  g_ptr_array_add(a, g_strdup_printf("source=%s", s->p.shared));
  g_ptr_array_add(a, g_strdup("-o"));
  g_ptr_array_add(a, a_cache);
  static const char *const fixed[] = {"sandbox=namespace", "no_xattr",           "no_posix_lock",
                                      "no_flock",          "announce_submounts", "log_level=warn"};
  for (gsize i = 0; i < G_N_ELEMENTS(fixed); i++) {
    g_ptr_array_add(a, g_strdup("-o"));
    g_ptr_array_add(a, g_strdup(fixed[i]));
  }
  g_ptr_array_add(
      a, g_strdup_printf("--rlimit-nofile=%llu",
                         (unsigned long long)(rl.rlim_max == RLIM_INFINITY ? 0 : rl.rlim_max)));
  g_ptr_array_add(a, NULL);
  return (GStrv)g_ptr_array_free(a, FALSE);
}

/* virtfs-proxy-helper's: in the foreground (-n: the shim's child, its
 * messages on stderr in the shim's log), chrooted into the share (it does
 * that itself, and keeps only the capabilities file I/O for any owner
 * needs: chown, dac_override, fowner, fsetid, setuid, setgid, mknod),
 * serving one QEMU on a named socket owned by QEMU's uid. It stays in the
 * host's mount namespace, so the bind mounts the shim adds below the
 * share later reach it without propagation. */
static GStrv proxy_argv(Vfsd *v) {
  Shim *s = v->s;
  g_autofree char *uid = g_strdup_printf("%u", s->qemu_uid);
  const char *const argv[] = {
      KV_VIRTFS_PROXY_HELPER, "-n", "-p", s->p.shared, "-s", v->sock, "-u", uid, "-g", uid, NULL};
  return g_strdupv((char **)argv);
}

/* Between fork and exec of virtfs-proxy-helper (async-signal-safe calls
 * only): a network and an IPC namespace of its own (it needs neither; its
 * socket is a path, which crosses network namespaces) and no_new_privs. It
 * stays in the host's mount namespace on purpose (see proxy_argv). A
 * failure here fails its exec: the start then reports it. */
static void proxy_confine(gpointer unused) {
  if (unshare(CLONE_NEWNET | CLONE_NEWIPC) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    _exit(126);
}

gboolean vfsd_start(Vfsd *v, GError **error) {
  Shim *s = v->s;
  if (v->kind == VFSD_9P_PROXY && !s->qemu_uid) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "9p proxy: QEMU has no uid of its own");
    return FALSE;
  }
  if (!share_prepare(v, error))
    return FALSE;
  unlink(v->sock);
  g_auto(GStrv) argv = v->kind == VFSD_9P_PROXY ? proxy_argv(v) : virtiofsd_argv(v);
  GPid pid = 0;
  if (!g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                     v->kind == VFSD_9P_PROXY ? proxy_confine : NULL, NULL, &pid, error)) {
    g_prefix_error(error, "cannot start %s %s: ", vfsd_name(v), argv[0]);
    return FALSE;
  }
  v->pid = pid;
  v->child = TRUE;
  v->pidfd = pidfd_open_(pid);
  if (v->pidfd < 0) {
    int e = errno;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    forget(v);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "pidfd_open(%s): %s", vfsd_name(v), g_strerror(e));
    return FALSE;
  }
  g_autofree char *line = g_strjoinv(" ", argv);
  shim_log("%s pid %d: %s", vfsd_name(v), pid, line);
  gint64 deadline = g_get_monotonic_time() + SOCKET_WAIT_MS * 1000;
  for (;;) {
    struct stat st;
    if (stat(v->sock, &st) == 0 && S_ISSOCK(st.st_mode))
      break;
    struct pollfd pfd = {.fd = v->pidfd, .events = POLLIN};
    if (poll(&pfd, 1, 10) > 0) {
      gboolean clean;
      g_autofree char *why = reap(v, &clean);
      forget(v);
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO,
                  "%s %s before its socket appeared (its messages are in %s)", vfsd_name(v), why,
                  s->p.shim_log);
      return FALSE;
    }
    if (g_get_monotonic_time() > deadline) {
      vfsd_stop(v);
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_TIMEOUT, "%s made no socket %s within %d ms",
                  vfsd_name(v), v->sock, SOCKET_WAIT_MS);
      return FALSE;
    }
  }
  watch(v);
  shim_state_save(s);
  return TRUE;
}

/* A pidfd of `pid` if it is this sandbox's daemon (its command line
 * names our socket: "--socket-path=SOCK" or "-s SOCK"; checked after the
 * pidfd is taken, so a pid reused later cannot be mistaken for it), else
 * -1. */
static int recorded_pidfd(Vfsd *v, gint64 pid) {
  if (pid <= 0 || pid > G_MAXINT32)
    return -1;
  int fd = pidfd_open_((pid_t)pid);
  if (fd < 0)
    return -1;
  g_autofree char *path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/cmdline", pid);
  g_autofree char *cmd = NULL;
  gsize len = 0;
  g_autofree char *want = g_strdup_printf("--socket-path=%s", v->sock);
  gboolean ours = FALSE;
  if (g_file_get_contents(path, &cmd, &len, NULL))
    for (gsize off = 0; off < len; off += strlen(cmd + off) + 1)
      if (!strcmp(cmd + off, want) || !strcmp(cmd + off, v->sock))
        ours = TRUE;
  if (!ours) {
    close(fd);
    return -1;
  }
  return fd;
}

gboolean vfsd_adopt(Vfsd *v, const KvShimStateResult *old, GError **error) {
  forget(v);
  int fd = old ? recorded_pidfd(v, old->virtiofsd_pid) : -1;
  if (fd < 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE,
                "the %s of sandbox '%s' (pid %" G_GINT64_FORMAT
                ") is gone: its shared filesystem cannot be recovered",
                vfsd_name(v), v->s->id, old ? old->virtiofsd_pid : 0);
    return FALSE;
  }
  v->pid = (pid_t)old->virtiofsd_pid;
  v->pidfd = fd;
  v->child = FALSE;
  watch(v);
  shim_log("adopted %s pid %d", vfsd_name(v), v->pid);
  return TRUE;
}

static gboolean wait_gone(int pidfd, int ms) {
  struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
  return poll(&pfd, 1, ms) > 0;
}

void vfsd_stop(Vfsd *v) {
  unwatch(v);
  if (v->pidfd < 0) {
    forget(v);
    return;
  }
  if (pidfd_signal(v->pidfd, SIGTERM) == 0 && !wait_gone(v->pidfd, STOP_GRACE_MS)) {
    shim_log("%s pid %d ignored SIGTERM; killing it", vfsd_name(v), v->pid);
    pidfd_signal(v->pidfd, SIGKILL);
    wait_gone(v->pidfd, STOP_GRACE_MS);
  }
  if (v->child)
    waitid(P_PIDFD, v->pidfd, &(siginfo_t){0}, WEXITED);
  forget(v);
  unlink(v->sock);
}

void vfsd_kill_recorded(Vfsd *v, const KvShimStateResult *old) {
  forget(v);
  int fd = old ? recorded_pidfd(v, old->virtiofsd_pid) : -1;
  if (fd < 0)
    return;
  v->pid = (pid_t)old->virtiofsd_pid;
  v->pidfd = fd;
  shim_log("stopping the %s a previous shim left (pid %d)", vfsd_name(v), v->pid);
  vfsd_stop(v);
}
