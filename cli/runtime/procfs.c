/* cli/runtime/procfs.c: the guest's processes where `podman top` looks.
 *
 * podman (psgo) lists a container's processes by joining the mount
 * namespace of the container's host process (the pid of --pid-file) and
 * reading /proc there. For a container in a VM that process is our
 * stand-in, whose /proc is the host's: podman top would list every host
 * process. So the stand-in of a container's init moves its main thread
 * into a mount namespace of its own (a copy of the host's that receives
 * the host's mount events) and mounts there, on /proc, a small read-only
 * FUSE file system that a thread of the stand-in serves: one directory per
 * process of the container in the guest with its stat, status and cmdline,
 * and the guest's /proc/stat (its boot time, which psgo needs for start
 * times). The contents come from one exec into the container per listing
 * (sh and od of the container's image, as podman's own fallback runs ps in
 * the container), taken at most once a second. Only the main thread is in
 * that namespace: the library's threads, the server thread and what they
 * start keep the host's /proc.
 *
 * The FUSE protocol is libfuse's (its low-level API): the main thread
 * mounts with fuse_session_mount() once in its namespace (as root libfuse
 * calls mount(2) itself, no fusermount3), the server thread runs
 * fuse_session_loop(). The mount goes with the namespace, when the
 * stand-in exits.
 *
 * The guest is untrusted: its output is size-limited, parsed strictly, and
 * only ever served back as file contents; a hung exec is killed. Whatever
 * fails here leaves the stand-in as it was (podman top then shows the
 * host's /proc, as before). */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt.h"

/* Bounds on what one listing may bring from the guest. */
#define PF_MAX_OUTPUT (8 << 20)
#define PF_MAX_PROCS 4096
#define PF_MAX_PID (1u << 22)
#define PF_EXEC_TIMEOUT_S 20
#define PF_FRESH_US G_USEC_PER_SEC

/* Inodes: 1 the root, 2 its "stat", then four per pid: its directory and
 * its three files. */
#define PF_INO_STAT 2
#define PF_INO_BASE 16
#define PF_NFILES 3
static const char *const pf_files[PF_NFILES] = {"stat", "status", "cmdline"};

/* Runs in the container: for each of its processes (not this shell) one
 * line per file, "PID NAME HEX", then "stat - HEX" for /proc/stat. Hex,
 * so that no content (a cmdline's NULs, newlines) can forge a line. */
static const char pf_script[] =
    "cd /proc || exit 1\n"
    "for p in [0-9]*; do\n"
    "  [ \"$p\" = \"$$\" ] && continue\n"
    "  for f in stat status cmdline; do\n"
    "    printf '%s %s ' \"$p\" \"$f\"; od -An -v -tx1 \"$p/$f\" 2>/dev/null | tr -d ' \\n'; echo\n"
    "  done\n"
    "done\n"
    "printf 'stat - '; od -An -v -tx1 stat | tr -d ' \\n'; echo\n";

typedef struct {
  guint pid;
  GBytes *files[PF_NFILES];
} PfProc;

typedef struct {
  struct fuse_session *se;
  int go[2]; /* the main thread tells the server the mount is there */
  char *exe, *root, *config, *id;
  /* The latest listing. */
  GArray *procs; /* PfProc, sorted by pid */
  GBytes *stat;
  gint64 taken;
} Pf;

static void proc_clear(gpointer p) {
  PfProc *x = p;
  for (int i = 0; i < PF_NFILES; i++)
    g_clear_pointer(&x->files[i], g_bytes_unref);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

static GBytes *unhex(const char *s, gsize n) {
  if (n % 2)
    return NULL;
  guint8 *out = g_malloc(n / 2 + 1);
  for (gsize i = 0; i < n; i += 2) {
    int h = hexval(s[i]), l = hexval(s[i + 1]);
    if (h < 0 || l < 0) {
      g_free(out);
      return NULL;
    }
    out[i / 2] = (guint8)(h << 4 | l);
  }
  return g_bytes_new_take(out, n / 2);
}

/* Whether the first line of `text` whose first field is `key` has `n`
 * fields (blank-separated, as Go's strings.Fields counts them). */
static gboolean has_line(const char *text, const char *key, guint n) {
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit_set(*l, " \t", -1);
    const char *first = NULL;
    guint k = 0;
    for (char **x = f; *x; x++)
      if (**x) {
        if (!first)
          first = *x;
        k++;
      }
    if (first && !strcmp(first, key))
      return k == n;
  }
  return FALSE;
}

/* What psgo indexes without checking (and would crash podman on): a stat
 * with "PID (comm)" and at least 21 fields after it, a status with Uid:
 * and Gid: lines of four ids each. A process whose files are otherwise
 * (one that went away while it was read, or a guest's invention) is left
 * out of the listing. */
static gboolean psgo_safe(const PfProc *x) {
  gsize len;
  const char *st = g_bytes_get_data(x->files[0], &len);
  g_autofree char *stat = g_strndup(st, len);
  const char *open = strchr(stat, '('), *close = strrchr(stat, ')');
  char head[16];
  snprintf(head, sizeof head, "%u ", x->pid);
  if (!open || !close || close < open || (gsize)(open - stat) != strlen(head) ||
      strncmp(stat, head, strlen(head)))
    return FALSE;
  g_auto(GStrv) rest = g_strsplit_set(close + 1, " \t\n", -1);
  guint fields = 0;
  for (char **r = rest; *r; r++)
    if (**r)
      fields++;
  if (fields < 21)
    return FALSE;
  const char *su = g_bytes_get_data(x->files[1], &len);
  g_autofree char *status = g_strndup(su, len);
  return has_line(status, "Uid:", 5) && has_line(status, "Gid:", 5);
}

static gint by_pid(gconstpointer a, gconstpointer b) {
  guint x = ((const PfProc *)a)->pid, y = ((const PfProc *)b)->pid;
  return x < y ? -1 : x > y;
}

/* Parse the script's output into a new listing; lines that do not parse
 * are skipped, and a process without its stat is left out. */
static void parse_listing(Pf *pf, const char *out, gsize len) {
  GArray *procs = g_array_new(FALSE, TRUE, sizeof(PfProc));
  g_array_set_clear_func(procs, proc_clear);
  GBytes *stat = NULL;
  GHashTable *index = g_hash_table_new(g_direct_hash, g_direct_equal);
  const char *p = out, *end = out + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', end - p);
    const char *le = nl ? nl : end;
    const char *sp1 = memchr(p, ' ', le - p);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', le - sp1 - 1) : NULL;
    if (sp2) {
      g_autofree char *pid_s = g_strndup(p, sp1 - p);
      g_autofree char *name = g_strndup(sp1 + 1, sp2 - sp1 - 1);
      GBytes *data = unhex(sp2 + 1, le - sp2 - 1);
      guint64 pid = 0;
      int k = -1;
      for (int i = 0; i < PF_NFILES; i++)
        if (!strcmp(name, pf_files[i]))
          k = i;
      if (data && !strcmp(pid_s, "stat") && !strcmp(name, "-")) {
        g_clear_pointer(&stat, g_bytes_unref);
        stat = g_steal_pointer(&data);
      } else if (data && k >= 0 &&
                 g_ascii_string_to_unsigned(pid_s, 10, 1, PF_MAX_PID, &pid, NULL)) {
        gpointer at = g_hash_table_lookup(index, GUINT_TO_POINTER(pid));
        if (!at && procs->len < PF_MAX_PROCS) {
          PfProc x = {.pid = (guint)pid};
          g_array_append_val(procs, x);
          at = GUINT_TO_POINTER(procs->len);
          g_hash_table_insert(index, GUINT_TO_POINTER(pid), at);
        }
        if (at) {
          PfProc *x = &g_array_index(procs, PfProc, GPOINTER_TO_UINT(at) - 1);
          g_clear_pointer(&x->files[k], g_bytes_unref);
          x->files[k] = g_steal_pointer(&data);
        }
      }
      g_clear_pointer(&data, g_bytes_unref);
    }
    p = le + 1;
  }
  g_hash_table_destroy(index);
  for (guint i = 0; i < procs->len; i++)
    for (int k = 0; k < PF_NFILES; k++) {
      PfProc *x = &g_array_index(procs, PfProc, i);
      if (!x->files[k])
        x->files[k] = g_bytes_new(NULL, 0);
    }
  for (guint i = procs->len; i-- > 0;)
    if (!psgo_safe(&g_array_index(procs, PfProc, i)))
      g_array_remove_index(procs, i);
  g_array_sort(procs, by_pid);
  g_clear_pointer(&pf->procs, g_array_unref);
  g_clear_pointer(&pf->stat, g_bytes_unref);
  pf->procs = procs;
  pf->stat = stat ? stat : g_bytes_new(NULL, 0);
}

/* One exec into the container (katavm-runtime exec, run from this thread,
 * which is in the host's mount namespace), bounded in time and size. */
static void refresh(Pf *pf) {
  const char *argv[12];
  int n = 0;
  argv[n++] = pf->exe;
  argv[n++] = "--root";
  argv[n++] = pf->root;
  if (pf->config) {
    argv[n++] = "--config";
    argv[n++] = pf->config;
  }
  argv[n++] = "exec";
  argv[n++] = pf->id;
  argv[n++] = "sh";
  argv[n++] = "-c";
  argv[n++] = pf_script;
  argv[n] = NULL;
  GPid pid;
  int out = -1;
  GString *acc = g_string_new(NULL);
  if (g_spawn_async_with_pipes("/", (char **)argv, NULL,
                               G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL |
                                   G_SPAWN_STDIN_FROM_DEV_NULL,
                               NULL, NULL, &pid, NULL, &out, NULL, NULL)) {
    gint64 deadline = g_get_monotonic_time() + PF_EXEC_TIMEOUT_S * G_USEC_PER_SEC;
    gboolean killed = FALSE;
    for (;;) {
      gint64 left = (deadline - g_get_monotonic_time()) / 1000;
      if (left <= 0 || acc->len > PF_MAX_OUTPUT) {
        kill(pid, SIGKILL);
        killed = TRUE;
        break;
      }
      struct pollfd pfd = {.fd = out, .events = POLLIN};
      int r = poll(&pfd, 1, (int)MIN(left, 1000));
      if (r < 0 && errno != EINTR)
        break;
      if (r <= 0)
        continue;
      char buf[65536];
      ssize_t got = read(out, buf, sizeof buf);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        break;
      g_string_append_len(acc, buf, got);
    }
    close(out);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    if (killed)
      g_string_truncate(acc, 0);
  }
  parse_listing(pf, acc->str, acc->len);
  g_string_free(acc, TRUE);
  pf->taken = g_get_monotonic_time();
}

static void ensure_listing(Pf *pf, gboolean fresh) {
  if (!pf->procs || (fresh && g_get_monotonic_time() - pf->taken > PF_FRESH_US))
    refresh(pf);
}

static PfProc *find_pid(Pf *pf, guint pid) {
  if (!pf->procs)
    return NULL;
  PfProc key = {.pid = pid};
  guint at;
  if (!g_array_binary_search(pf->procs, &key, by_pid, &at))
    return NULL;
  return &g_array_index(pf->procs, PfProc, at);
}

/* What an inode is: the root, /stat, a pid's directory (file < 0) or one
 * of its files; NULL contents when it names nothing (any more). */
static gboolean node(Pf *pf, guint64 ino, gboolean *dir, GBytes **data) {
  *data = NULL;
  *dir = FALSE;
  if (ino == FUSE_ROOT_ID) {
    *dir = TRUE;
    return TRUE;
  }
  if (ino == PF_INO_STAT) {
    ensure_listing(pf, FALSE);
    *data = pf->stat;
    return TRUE;
  }
  if (ino < PF_INO_BASE)
    return FALSE;
  guint64 pid = (ino - PF_INO_BASE) / (PF_NFILES + 1);
  int k = (int)((ino - PF_INO_BASE) % (PF_NFILES + 1)) - 1;
  PfProc *x = pid <= PF_MAX_PID ? find_pid(pf, (guint)pid) : NULL;
  if (!x)
    return FALSE;
  if (k < 0)
    *dir = TRUE;
  else
    *data = x->files[k];
  return TRUE;
}

static guint64 pid_ino(guint pid, int k) {
  return PF_INO_BASE + (guint64)pid * (PF_NFILES + 1) + (guint64)(k + 1);
}

static void attr_of(struct stat *a, guint64 ino, gboolean dir, GBytes *data) {
  memset(a, 0, sizeof *a);
  a->st_ino = ino;
  a->st_mode = dir ? S_IFDIR | 0555 : S_IFREG | 0444;
  a->st_nlink = dir ? 2 : 1;
  a->st_size = data ? (off_t)g_bytes_get_size(data) : 0;
  a->st_blksize = 4096;
  a->st_blocks = (a->st_size + 511) / 512;
  a->st_atime = a->st_mtime = a->st_ctime = g_get_real_time() / G_USEC_PER_SEC;
}

/* A directory's entries, as opendir found them. */
typedef struct {
  guint64 ino;
  mode_t mode;
  char name[16];
} PfEnt;

static void add_ent(GArray *a, guint64 ino, mode_t mode, const char *name) {
  PfEnt e = {.ino = ino, .mode = mode};
  g_strlcpy(e.name, name, sizeof e.name);
  g_array_append_val(a, e);
}

static GArray *list_dir(Pf *pf, guint64 ino) {
  GArray *a = g_array_new(FALSE, FALSE, sizeof(PfEnt));
  add_ent(a, ino, S_IFDIR, ".");
  add_ent(a, FUSE_ROOT_ID, S_IFDIR, "..");
  if (ino == FUSE_ROOT_ID) {
    add_ent(a, PF_INO_STAT, S_IFREG, "stat");
    for (guint i = 0; pf->procs && i < pf->procs->len; i++) {
      guint pid = g_array_index(pf->procs, PfProc, i).pid;
      char name[16];
      snprintf(name, sizeof name, "%u", pid);
      add_ent(a, pid_ino(pid, -1), S_IFDIR, name);
    }
  } else {
    guint pid = (guint)((ino - PF_INO_BASE) / (PF_NFILES + 1));
    for (int k = 0; k < PF_NFILES; k++)
      add_ent(a, pid_ino(pid, k), S_IFREG, pf_files[k]);
  }
  return a;
}

static void pf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  Pf *pf = fuse_req_userdata(req);
  gboolean dir;
  GBytes *data;
  guint64 ino = 0, pid = 0;
  if (parent == FUSE_ROOT_ID) {
    if (!strcmp(name, "stat"))
      ino = PF_INO_STAT;
    else if (g_ascii_string_to_unsigned(name, 10, 1, PF_MAX_PID, &pid, NULL)) {
      ensure_listing(pf, FALSE);
      if (find_pid(pf, (guint)pid))
        ino = pid_ino((guint)pid, -1);
    }
  } else if (node(pf, parent, &dir, &data) && dir) {
    guint p = (guint)((parent - PF_INO_BASE) / (PF_NFILES + 1));
    for (int k = 0; k < PF_NFILES; k++)
      if (!strcmp(name, pf_files[k]))
        ino = pid_ino(p, k);
    /* psgo reads ns/pid and takes a permission error for "unknown". */
    if (!strcmp(name, "ns")) {
      fuse_reply_err(req, EACCES);
      return;
    }
  }
  if (!ino || !node(pf, ino, &dir, &data)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  /* No timeouts: the kernel asks again, the listing decides. */
  struct fuse_entry_param e = {.ino = ino};
  attr_of(&e.attr, ino, dir, data);
  fuse_reply_entry(req, &e);
}

static void pf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  gboolean dir;
  GBytes *data;
  if (!node(fuse_req_userdata(req), ino, &dir, &data)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat a;
  attr_of(&a, ino, dir, data);
  fuse_reply_attr(req, &a, 0);
}

/* fh: a file's contents (GBytes) or a directory's entries (GArray of
 * PfEnt), taken at open. */
static void pf_open_common(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                           gboolean want_dir) {
  Pf *pf = fuse_req_userdata(req);
  gboolean dir;
  GBytes *data;
  /* A listing of the root is what a `podman top` starts with. */
  if (want_dir && ino == FUSE_ROOT_ID)
    ensure_listing(pf, TRUE);
  if (!node(pf, ino, &dir, &data)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (dir != want_dir) {
    fuse_reply_err(req, dir ? EISDIR : ENOTDIR);
    return;
  }
  if (!dir && (fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EACCES);
    return;
  }
  fi->direct_io = !dir;
  fi->fh = (guint64)(guintptr)(dir ? (gpointer)list_dir(pf, ino) : (gpointer)g_bytes_ref(data));
  if (fuse_reply_open(req, fi) < 0) { /* interrupted: no release follows */
    if (dir)
      g_array_unref((GArray *)(guintptr)fi->fh);
    else
      g_bytes_unref((GBytes *)(guintptr)fi->fh);
  }
}

static void pf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  pf_open_common(req, ino, fi, FALSE);
}

static void pf_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  pf_open_common(req, ino, fi, TRUE);
}

static void pf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi) {
  gsize len;
  const guint8 *p = g_bytes_get_data((GBytes *)(guintptr)fi->fh, &len);
  gsize at = off >= 0 && (guint64)off < len ? (gsize)off : len;
  fuse_reply_buf(req, (const char *)p + at, MIN(len - at, size));
}

/* The entries from index `off` on that fit in `size` bytes, each with the
 * index of the next. */
static void pf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi) {
  GArray *a = (GArray *)(guintptr)fi->fh;
  g_autofree char *buf = g_malloc(size);
  size_t used = 0;
  for (guint i = off >= 0 ? (guint)MIN((guint64)off, a->len) : a->len; i < a->len; i++) {
    const PfEnt *e = &g_array_index(a, PfEnt, i);
    struct stat st = {.st_ino = e->ino, .st_mode = e->mode};
    size_t rec = fuse_add_direntry(req, buf + used, size - used, e->name, &st, i + 1);
    if (rec > size - used)
      break;
    used += rec;
  }
  fuse_reply_buf(req, buf, used);
}

static void pf_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  g_bytes_unref((GBytes *)(guintptr)fi->fh);
  fuse_reply_err(req, 0);
}

static void pf_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  g_array_unref((GArray *)(guintptr)fi->fh);
  fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops pf_ops = {
    .lookup = pf_lookup,
    .getattr = pf_getattr,
    .open = pf_open,
    .read = pf_read,
    .release = pf_release,
    .opendir = pf_opendir,
    .readdir = pf_readdir,
    .releasedir = pf_releasedir,
};

/* libfuse logs to stderr, which is the container's: keep it out of there. */
static void pf_log(enum fuse_log_level level, const char *fmt, va_list ap) {
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  g_debug("procfs: libfuse: %s", g_strchomp(msg));
}

static void pf_free(Pf *pf) {
  if (pf->se)
    fuse_session_destroy(pf->se);
  g_clear_pointer(&pf->procs, g_array_unref);
  g_clear_pointer(&pf->stat, g_bytes_unref);
  g_free(pf->exe);
  g_free(pf->root);
  g_free(pf->config);
  g_free(pf->id);
  g_free(pf);
}

/* The server thread, in the host's mount namespace. Should the loop end
 * with /proc still mounted, destroying the session closes the device,
 * which fails what the mount is asked from then on rather than hanging
 * it; fuse_session_unmount() must not be called here, where "/proc" is
 * the host's. */
static gpointer serve(gpointer data) {
  Pf *pf = data;
  char go = 0;
  while (read(pf->go[0], &go, 1) < 0 && errno == EINTR)
    ;
  close(pf->go[0]);
  if (go != 'M')
    return NULL; /* the main thread frees pf */
  int rc = fuse_session_loop(pf->se);
  g_debug("procfs: the server ends (%d)", rc);
  pf_free(pf);
  return NULL;
}

void rt_procfs_serve(Rt *r, const char *id) {
  Pf *pf = g_new0(Pf, 1);
  pf->go[0] = pf->go[1] = -1;
  pf->exe = g_file_read_link("/proc/self/exe", NULL);
  pf->root = g_strdup(r->root);
  pf->config = g_strdup(r->config);
  pf->id = g_strdup(id);
  const char *step = "exe";
  char go = 'X';
  GThread *t = NULL;
  if (!pf->exe)
    goto fail;
  fuse_set_log_func(pf_log);
  /* nosuid and nodev are libfuse's defaults; as root it mounts with
   * mount(2) itself, "fuse.katavm-procfs" from "katavm-procfs". */
  char *argv[] = {"katavm-runtime", "-o",
                  "fsname=katavm-procfs,subtype=katavm-procfs,allow_other,noexec", NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, argv);
  step = "session";
  pf->se = fuse_session_new(&args, &pf_ops, sizeof pf_ops, pf);
  fuse_opt_free_args(&args);
  if (!pf->se || pipe2(pf->go, O_CLOEXEC) < 0)
    goto fail;
  /* Started before the main thread leaves the host's mount namespace, so
   * that the server and its execs stay in it. */
  t = g_thread_try_new("procfs", serve, pf, NULL);
  step = "thread";
  if (!t)
    goto fail;
  step = "unshare";
  if (unshare(CLONE_NEWNS) < 0)
    goto fail;
  step = "rslave";
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
    goto fail;
  step = "mount";
  if (fuse_session_mount(pf->se, "/proc") < 0)
    goto fail;
  go = 'M';
  if (write(pf->go[1], &go, 1) != 1) {
    step = "start";
    go = 'X';
    fuse_session_unmount(pf->se); /* here, in our namespace */
    goto fail;
  }
  close(pf->go[1]);
  g_thread_unref(t);
  rt_debug(r, "procfs: the guest's processes of %s on /proc of pid %d", id, (int)getpid());
  return; /* pf is the server's, as long as the stand-in lives */
fail:
  rt_debug(r, "procfs: %s: %s; podman top shows the host's processes", step, g_strerror(errno));
  if (!t && pf->go[0] >= 0)
    close(pf->go[0]);
  if (pf->go[1] >= 0) {
    if (write(pf->go[1], &go, 1) != 1) {
      /* the server then sees end of file */
    }
    close(pf->go[1]);
  }
  if (t)
    g_thread_join(t);
  /* The server is gone: what is left is ours alone. */
  pf_free(pf);
}
