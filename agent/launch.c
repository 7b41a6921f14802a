/* agent/launch.c: the two forks and everything the container process does
 * before execve (see launch.h). Code below `---- child ----` runs after
 * fork: system calls, snprintf into stack buffers, no allocation, no glib.
 */
#include "launch.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* ---- child ---- */

static int report_fd = -1;

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= (size_t)w;
  }
}

/* Reports "E<message>[: strerror(errno)]" and exits. */
static G_NORETURN void vdie(gboolean with_errno, const char *fmt, va_list ap) {
  int e = errno;
  char buf[1024];
  buf[0] = 'E';
  int n = vsnprintf(buf + 1, sizeof buf - 1, fmt, ap);
  if (n < 0)
    n = 0;
  size_t len = MIN((size_t)n + 1, sizeof buf - 1);
  if (with_errno)
    len += (size_t)snprintf(buf + len, sizeof buf - len, ": %s", strerror(e));
  write_all(report_fd, buf, MIN(len, sizeof buf - 1));
  _exit(1);
}

static G_NORETURN void die_errno(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void die_errno(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vdie(TRUE, fmt, ap);
}

/* mkdir -p inside the (chrooted) root; the last component a file when
 * `file`. Symlinks resolve inside the chroot. */
static int make_path(const char *path, gboolean file, mode_t mode) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  struct stat st;
  if (stat(buf, &st) == 0)
    return 0;
  if (file) {
    int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, mode);
    if (fd < 0)
      return -1;
    close(fd);
    return 0;
  }
  return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* Flags a bind remount must carry over so as not to clear them. */
static unsigned long mount_flags_of(const char *path) {
  struct statvfs sv;
  if (statvfs(path, &sv) < 0)
    return 0;
  unsigned long f = 0;
  if (sv.f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME)
    f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME)
    f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME)
    f |= MS_RELATIME;
  if (sv.f_flag & ST_RDONLY)
    f |= MS_RDONLY;
  return f;
}

static const struct {
  const char *name;
  guint major, minor;
} default_devices[] = {
    {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

static const struct {
  const char *target, *link;
} dev_links[] = {
    {"/proc/self/fd", "/dev/fd"},       {"/proc/self/fd/0", "/dev/stdin"},
    {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
    {"pts/ptmx", "/dev/ptmx"},          {"/proc/kcore", "/dev/core"},
};

static void make_device(const char *path, char type, guint major, guint minor, mode_t perm,
                        uid_t uid, gid_t gid) {
  mode_t kind = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", path);
  char *slash = strrchr(parent, '/');
  if (slash != NULL && slash != parent) {
    *slash = '\0';
    if (make_path(parent, FALSE, 0755) < 0)
      die_errno("device %s: mkdir %s", path, parent);
  }
  if (mknod(path, kind | perm, makedev(major, minor)) < 0 && errno != EEXIST)
    die_errno("device %s: mknod", path);
  /* mknod applies the umask; the spec's mode is meant as given. */
  if (chmod(path, perm) < 0 || chown(path, uid, gid) < 0)
    die_errno("device %s: chmod/chown", path);
}

static void spec_mount(const AgentLaunch *l, guint i) {
  const KvOciMount *m = g_ptr_array_index(l->spec->mounts, i);
  const char *dest = m->destination;
  if (m->bind) {
    int tree = l->mount_trees[i];
    struct stat st;
    if (fstat(tree, &st) < 0)
      die_errno("mount %s: stat of source %s", dest, l->mount_sources[i]);
    if (make_path(dest, !S_ISDIR(st.st_mode), 0755) < 0)
      die_errno("mount %s: creating the mount point", dest);
    if (move_mount(tree, "", AT_FDCWD, dest, MOVE_MOUNT_F_EMPTY_PATH) < 0)
      die_errno("mount %s: attaching bind mount of %s", dest, l->mount_sources[i]);
    close(tree);
    /* Bind mounts take their flags only from a remount. */
    unsigned long flags = m->flags & ~MS_REC;
    if (flags != 0 &&
        mount(NULL, dest, NULL, MS_REMOUNT | MS_BIND | flags | mount_flags_of(dest), NULL) < 0)
      die_errno("mount %s: remounting bind mount with its options", dest);
  } else {
    if (make_path(dest, FALSE, 0755) < 0)
      die_errno("mount %s: creating the mount point", dest);
    const char *type = m->type;
    /* The guest has cgroup v2 only; a spec written for v1 still gets the
     * container's hierarchy. */
    if (strcmp(type, "cgroup") == 0)
      type = "cgroup2";
    const char *source = m->source != NULL && *m->source != '\0' ? m->source : type;
    if (mount(source, dest, type, m->flags, m->data) < 0)
      die_errno("mount %s (%s%s%s)", dest, type, m->data != NULL ? ", " : "",
                m->data != NULL ? m->data : "");
  }
  if (m->propagation != 0 && mount(NULL, dest, NULL, m->propagation, NULL) < 0)
    die_errno("mount %s: setting propagation", dest);
}

static void setup_rootfs(const AgentLaunch *l) {
  const KvOciSpec *spec = l->spec;
  const char *root = l->rootfs;
  /* Nothing done in here may leak back into the agent's namespace. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    die_errno("making / private");
  if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
    die_errno("bind mounting the rootfs %s", root);

  /* Bind sources are outside the rootfs: open them before the chroot. */
  gboolean dev_tmpfs = FALSE;
  for (guint i = 0; i < spec->mounts->len; i++) {
    const KvOciMount *m = g_ptr_array_index(spec->mounts, i);
    l->mount_trees[i] = -1;
    if (strcmp(m->destination, "/dev") == 0 && !m->bind)
      dev_tmpfs = TRUE;
    if (!m->bind)
      continue;
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if (m->recursive)
      flags |= AT_RECURSIVE;
    l->mount_trees[i] = open_tree(AT_FDCWD, l->mount_sources[i], flags);
    if (l->mount_trees[i] < 0)
      die_errno("mount %s: bind source %s", m->destination, l->mount_sources[i]);
  }

  if (chdir(root) < 0)
    die_errno("chdir %s", root);
  if (mount(root, "/", NULL, MS_MOVE, NULL) < 0)
    die_errno("moving the rootfs onto /");
  if (chroot(".") < 0)
    die_errno("chroot into the rootfs");
  if (chdir("/") < 0)
    die_errno("chdir /");
  if (spec->rootfs_propagation != 0 && mount(NULL, "/", NULL, spec->rootfs_propagation, NULL) < 0)
    die_errno("setting rootfsPropagation");

  for (guint i = 0; i < spec->mounts->len; i++)
    spec_mount(l, i);

  /* A fresh /dev gets the devices every container has, as with runc. */
  if (dev_tmpfs) {
    mode_t old = umask(0);
    for (gsize i = 0; i < G_N_ELEMENTS(default_devices); i++)
      make_device(default_devices[i].name, 'c', default_devices[i].major, default_devices[i].minor,
                  0666, 0, 0);
    umask(old);
    for (gsize i = 0; i < G_N_ELEMENTS(dev_links); i++) {
      if (symlink(dev_links[i].target, dev_links[i].link) < 0 && errno != EEXIST)
        die_errno("symlink %s", dev_links[i].link);
    }
  }
  for (guint i = 0; i < spec->devices->len; i++) {
    const KvOciDevice *d = g_ptr_array_index(spec->devices, i);
    make_device(d->path, d->type, d->major, d->minor, d->mode & 07777, d->uid, d->gid);
  }

  /* Before readonlyPaths, which usually make /proc/sys read-only. */
  for (char **kv = spec->sysctl; kv != NULL && kv[0] != NULL; kv += 2) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/proc/sys/%s", kv[0]);
    for (char *c = path + strlen("/proc/sys/"); *c != '\0'; c++) {
      if (*c == '.')
        *c = '/';
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      die_errno("sysctl %s", kv[0]);
    if (write(fd, kv[1], strlen(kv[1])) < 0)
      die_errno("sysctl %s=%s", kv[0], kv[1]);
    close(fd);
  }

  if (spec->hostname != NULL && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
    die_errno("sethostname");

  for (char **p = spec->masked_paths; p != NULL && *p != NULL; p++) {
    struct stat st;
    if (stat(*p, &st) < 0) {
      if (errno == ENOENT)
        continue;
      die_errno("maskedPaths %s", *p);
    }
    int r = S_ISDIR(st.st_mode) ? mount("tmpfs", *p, "tmpfs", MS_RDONLY, "size=0")
                                : mount("/dev/null", *p, NULL, MS_BIND, NULL);
    if (r < 0)
      die_errno("maskedPaths %s", *p);
  }
  for (char **p = spec->readonly_paths; p != NULL && *p != NULL; p++) {
    if (mount(*p, *p, NULL, MS_BIND | MS_REC, NULL) < 0) {
      if (errno == ENOENT)
        continue;
      die_errno("readonlyPaths %s", *p);
    }
    if (mount(NULL, *p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | mount_flags_of(*p), NULL) < 0)
      die_errno("readonlyPaths %s: remount read-only", *p);
  }

  /* Last: everything above writes into the tree. */
  if (spec->root_readonly &&
      mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | mount_flags_of("/"), NULL) < 0)
    die_errno("remounting the root read-only");
}

/* The terminal comes from the container's own devpts instance, as with
 * runc: inside the container /dev/pts/N exists and ttyname() works. The
 * master goes to the agent as SCM_RIGHTS on a "T" over the status socket. */
static void setup_terminal(const AgentLaunch *l) {
  const KvOciProcess *p = l->proc;
  int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    die_errno("terminal: no /dev/pts/ptmx in the container (a devpts mount "
              "at /dev/pts is needed)");
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
    die_errno("terminal: unlocking the pty");
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    die_errno("terminal: opening the pty");
  if (p->rows > 0 && p->cols > 0) {
    struct winsize ws = {.ws_row = p->rows, .ws_col = p->cols};
    ioctl(master, TIOCSWINSZ, &ws);
  }
  for (int i = 0; i < 3; i++) {
    if (dup2(slave, i) < 0)
      die_errno("terminal: stdio");
  }
  close(slave);
  if (ioctl(0, TIOCSCTTY, 0) < 0)
    die_errno("terminal: making it the controlling terminal");
  /* The container's console is its main process's terminal. Best effort:
   * a read-only /dev without a console node just goes without. */
  unsigned int n = 0;
  char path[64];
  if (l->rootfs != NULL && ioctl(master, TIOCGPTN, &n) == 0) {
    snprintf(path, sizeof path, "/dev/pts/%u", n);
    if (make_path("/dev/console", TRUE, 0600) == 0)
      mount(path, "/dev/console", NULL, MS_BIND, NULL);
  }

  char t = 'T';
  struct iovec iov = {.iov_base = &t, .iov_len = 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &master, sizeof(int));
  ssize_t r;
  do
    r = sendmsg(report_fd, &msg, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r != 1)
    die_errno("terminal: handing the pty to the agent");
  close(master);
}

static void drop_bounding(const AgentLaunch *l) {
  const KvOciProcess *p = l->proc;
  for (int cap = 0; cap <= l->last_cap && cap < 64; cap++) {
    if (p->caps[KV_OCI_CAPS_BOUNDING] & (G_GUINT64_CONSTANT(1) << cap))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      die_errno("dropping capability %d from the bounding set", cap);
  }
}

static void set_caps(const AgentLaunch *l) {
  const KvOciProcess *p = l->proc;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  const guint64 *c = p->caps;
  for (int i = 0; i < 2; i++) {
    data[i].effective = (guint32)(c[KV_OCI_CAPS_EFFECTIVE] >> (32 * i));
    data[i].permitted = (guint32)(c[KV_OCI_CAPS_PERMITTED] >> (32 * i));
    data[i].inheritable = (guint32)(c[KV_OCI_CAPS_INHERITABLE] >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0)
    die_errno("setting capabilities (effective/permitted/inheritable)");
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (int cap = 0; cap <= l->last_cap && cap < 64; cap++) {
    /* runc's default spec lists ambient capabilities without inheritable
     * ones, which the kernel refuses; runc ignores that, and so do we. */
    if (c[KV_OCI_CAPS_AMBIENT] & (G_GUINT64_CONSTANT(1) << cap))
      prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
  }
}

static G_NORETURN void exec_failed(const char *file, const char *why, int code) {
  char buf[PATH_MAX + 128];
  int n = snprintf(buf, sizeof buf, "katavm: exec \"%s\": %s\n", file, why);
  write_all(STDERR_FILENO, buf, MIN((size_t)n, sizeof buf - 1));
  _exit(code);
}

/* execvpe with the container's PATH (glibc's looks at the agent's). */
static G_NORETURN void exec_process(const AgentLaunch *l) {
  char *const *argv = l->proc->args;
  const char *file = argv[0];
  if (strchr(file, '/') != NULL) {
    execve(file, argv, l->envp);
    int e = errno;
    if (e == ENOENT)
      exec_failed(file, "no such file or directory", 127);
    exec_failed(file, strerror(e), 126);
  }
  const char *path = l->path_env != NULL ? l->path_env : AGENT_DEFAULT_PATH;
  gboolean denied = FALSE;
  int other = 0;
  for (const char *p = path;; p++) {
    const char *end = strchrnul(p, ':');
    char cand[PATH_MAX];
    int n = end == p ? snprintf(cand, sizeof cand, "%s", file)
                     : snprintf(cand, sizeof cand, "%.*s/%s", (int)(end - p), p, file);
    if (n > 0 && n < (int)sizeof cand) {
      execve(cand, argv, l->envp);
      if (errno == EACCES)
        denied = TRUE;
      else if (errno != ENOENT && errno != ENOTDIR)
        other = errno;
    }
    if (*end == '\0')
      break;
    p = end;
  }
  if (other != 0)
    exec_failed(file, strerror(other), 126);
  if (denied)
    exec_failed(file, "permission denied", 126);
  exec_failed(file, "executable file not found in $PATH", 127);
}

/* Until execve the child holds copies of every fd of the agent, among
 * them other processes' pipe ends: a container waiting for its start must
 * not keep another process's stdin from reaching end of file. */
static void close_other_fds(int a, int b) {
  if (a > b) {
    int t = a;
    a = b;
    b = t;
  }
  /* a <= b; either may be -1 */
  unsigned int from = 3;
  int keep[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    if (keep[i] < (int)from)
      continue;
    if ((unsigned int)keep[i] > from)
      close_range(from, (unsigned int)keep[i] - 1, 0);
    from = (unsigned int)keep[i] + 1;
  }
  close_range(from, ~0U, 0);
}

/* PID 1 of a PID namespace ignores every signal it has no handler for, even
 * SIGKILL sent from inside (`sh -c 'kill -9 $$'` would not die). So the
 * container's main process is not PID 1: PID 1 is this small init (like
 * `docker run --init`), which forwards signals to the main process, reaps
 * orphans, and exits with the main process's status in shell convention
 * (128+N for a death by signal N). Returns in the child. */
static void become_init(void) {
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  /* Blocked across the fork: no signal is lost between fork and sigwait. */
  sigprocmask(SIG_BLOCK, &all, NULL);
  pid_t child = fork();
  if (child < 0)
    die_errno("fork");
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &none, NULL);
    return;
  }
  /* The child holds stdio and the setup report; our copies would keep the
   * host from seeing end of file. */
  close_range(0, ~0U, 0);
  prctl(PR_SET_NAME, "katavm-init", 0, 0, 0);
  for (;;) {
    int sig = 0;
    if (sigwait(&all, &sig) != 0)
      continue;
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    int st = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
      if (pid == child)
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
  }
}

static G_NORETURN void child_main(const AgentLaunch *l, int status_fd) {
  report_fd = status_fd;
  const KvOciProcess *p = l->proc;

  /* The agent blocks the signals it reads from a signalfd and ignores
   * SIGPIPE; a container process starts with neither. */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP)
      signal(sig, SIG_DFL);
  }

  if (setsid() < 0)
    die_errno("setsid");
  for (int i = 0; i < 3; i++) {
    if (dup2(l->stdio[i], i) < 0)
      die_errno("stdio");
  }
  close_other_fds(status_fd, l->start_fd);

  if (l->rootfs != NULL)
    setup_rootfs(l);
  if (l->terminal)
    setup_terminal(l);

  if (p->has_oom_score_adj) {
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    char v[16];
    int n = snprintf(v, sizeof v, "%d", p->oom_score_adj);
    if (fd < 0 || write(fd, v, (size_t)n) != n)
      die_errno("oomScoreAdj");
    close(fd);
  }
  for (guint i = 0; i < p->rlimits->len; i++) {
    const KvOciRlimit *r = &g_array_index(p->rlimits, KvOciRlimit, i);
    if (setrlimit(r->resource, &r->limit) < 0)
      die_errno("setrlimit %d", r->resource);
  }
  if (chdir(p->cwd) < 0) {
    /* runc creates the main process's cwd; an exec's must exist. */
    if (l->rootfs == NULL || errno != ENOENT || make_path(p->cwd, FALSE, 0755) < 0 ||
        chdir(p->cwd) < 0)
      die_errno("cwd %s", p->cwd);
  }

  if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    die_errno("noNewPrivileges");
  if (p->has_caps)
    drop_bounding(l);
  /* Without no_new_privs the filter needs CAP_SYS_ADMIN: install it while
   * we still have it. With it, as late as possible, so that the profile
   * need not allow what the setup does. */
  if (l->seccomp != NULL && !p->no_new_privileges) {
    int r = agent_seccomp_install(l->seccomp);
    if (r < 0) {
      errno = -r;
      die_errno("seccomp: installing the filter");
    }
  }

  if (p->has_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    die_errno("PR_SET_KEEPCAPS");
  const gid_t *groups = (const gid_t *)p->groups->data;
  if (setgroups(p->groups->len, p->groups->len > 0 ? groups : NULL) < 0)
    die_errno("setgroups");
  if (setresgid(p->gid, p->gid, p->gid) < 0)
    die_errno("setgid %u", (unsigned)p->gid);
  if (setresuid(p->uid, p->uid, p->uid) < 0)
    die_errno("setuid %u", (unsigned)p->uid);
  if (p->has_caps)
    set_caps(l);

  if (l->rootfs != NULL) {
    write_all(report_fd, "R", 1);
    char go;
    ssize_t n;
    do
      n = read(l->start_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
      _exit(0); /* removed before it was started */
  }

  if (l->rootfs != NULL && getpid() == 1)
    become_init();

  if (l->seccomp != NULL && p->no_new_privileges) {
    int r = agent_seccomp_install(l->seccomp);
    if (r < 0) {
      errno = -r;
      die_errno("seccomp: installing the filter");
    }
  }
  exec_process(l);
}

static G_NORETURN void intermediate_main(const AgentLaunch *l, int pid_fd, int status_fd) {
  report_fd = pid_fd;
  /* The agent runs SCHED_BATCH while output streams are busy (stream.c,
   * bulk mode); the container's processes get the policy every process
   * starts with. */
  struct sched_param sp = {0};
  if (sched_setscheduler(0, SCHED_OTHER, &sp) < 0)
    die_errno("resetting the scheduling policy");
  if (l->cgroup_procs_fd >= 0 && write(l->cgroup_procs_fd, "0", 1) != 1)
    die_errno("cgroup: joining the container's cgroup");
  if (l->rootfs != NULL && unshare(l->unshare_flags) < 0)
    die_errno("creating namespaces");
  for (int i = 0; i < l->n_ns; i++) {
    if (setns(l->ns_fds[i], l->ns_types[i]) < 0)
      die_errno("joining the container's namespaces (%s)", l->ns_types[i] == CLONE_NEWNS    ? "mnt"
                                                           : l->ns_types[i] == CLONE_NEWPID ? "pid"
                                                           : l->ns_types[i] == CLONE_NEWUTS ? "uts"
                                                           : l->ns_types[i] == CLONE_NEWIPC
                                                               ? "ipc"
                                                               : "cgroup");
  }
  /* An exec's process (no rootfs: nothing to wait for before execve)
   * comes from vfork(): no copy of the agent's address space to make, and
   * none to tear down again at execve (an exec of /bin/true, request to
   * exit inside the guest: ~32 -> ~25 ms under TCG). The child borrows our
   * memory until it execs or exits and changes nothing we read after it
   * (only report_fd, which this process no longer uses); its fd table,
   * signal handlers, credentials, rlimits and cwd are its own. A
   * container's first process waits for its start before execve, so it
   * gets fork(). */
  pid_t pid = l->rootfs == NULL ? vfork() : fork();
  if (pid < 0)
    die_errno("fork");
  if (pid == 0) {
    close(pid_fd);
    child_main(l, status_fd);
  }
  char msg[1 + sizeof pid];
  msg[0] = 'P';
  memcpy(msg + 1, &pid, sizeof pid);
  write_all(pid_fd, msg, sizeof msg);
  _exit(0);
}

/* ---- parent ---- */

static gboolean read_full(int fd, void *buf, size_t n, size_t *got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = read(fd, (char *)buf + *got, n - *got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return FALSE;
    *got += (size_t)r;
  }
  return TRUE;
}

pid_t agent_launch(AgentLaunch *l, int *status_fd, GError **error) {
  int pidp[2], statp[2];
  if (pipe2(pidp, O_CLOEXEC) < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "pipe: %s", g_strerror(e));
    return -1;
  }
  /* A socket, not a pipe: a terminal's master travels on it. */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, statp) < 0) {
    int e = errno;
    close(pidp[0]);
    close(pidp[1]);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "pipe: %s", g_strerror(e));
    return -1;
  }
  pid_t mid = fork();
  if (mid < 0) {
    int e = errno;
    close(pidp[0]);
    close(pidp[1]);
    close(statp[0]);
    close(statp[1]);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "fork: %s", g_strerror(e));
    return -1;
  }
  if (mid == 0) {
    close(pidp[0]);
    close(statp[0]);
    intermediate_main(l, pidp[1], statp[1]);
  }
  close(pidp[1]);
  close(statp[1]);

  /* The intermediate only joins a cgroup, namespaces and forks: waiting
   * for it blocks the main loop for a moment, and keeps the pid handover
   * free of races with the reaper. */
  char kind = 0;
  size_t got = 0;
  pid_t pid = -1;
  if (read_full(pidp[0], &kind, 1, &got) && kind == 'P' &&
      read_full(pidp[0], &pid, sizeof pid, &got)) {
    close(pidp[0]);
    *status_fd = statp[0];
    return pid;
  }
  char msg[1024] = "";
  if (kind == 'E') {
    read_full(pidp[0], msg, sizeof msg - 1, &got);
    msg[MIN(got, sizeof msg - 1)] = '\0';
  }
  close(pidp[0]);
  close(statp[0]);
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s",
              msg[0] != '\0' ? msg : "the setup process died");
  return -1;
}

int agent_launch_last_cap(void) {
  static int last = -1;
  if (last >= 0)
    return last;
  g_autofree char *text = NULL;
  if (g_file_get_contents("/proc/sys/kernel/cap_last_cap", &text, NULL, NULL))
    last = (int)g_ascii_strtoll(text, NULL, 10);
  if (last <= 0)
    last = CAP_LAST_CAP;
  return last;
}
