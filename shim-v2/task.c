/* shim-v2/task.c: containerd.task.v2.Task (containerd 1.6's
 * runtime/v2/task/shim.proto) on the public API. Requests are unpacked
 * with the descriptors protoc-c generated, answered with packed replies;
 * library errors become gRPC codes that containerd's errdefs understands
 * (NotFound, AlreadyExists, FailedPrecondition, InvalidArgument). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "github.com/containerd/cgroups/v2/stats/metrics.pb-c.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "shim.h"
#include "ttrpc.h"

typedef struct {
  int code;
  char *msg;
} Err;

static int fail(Err *e, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static int fail(Err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  e->code = code;
  e->msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  return -1;
}

static int code_of(int kcode) {
  switch (kcode) {
  case KATAVM_E_INVALID:
    return TTRPC_INVALID_ARGUMENT;
  case KATAVM_E_NOT_FOUND:
    return TTRPC_NOT_FOUND;
  case KATAVM_E_EXISTS:
    return TTRPC_ALREADY_EXISTS;
  case KATAVM_E_STATE:
    return TTRPC_FAILED_PRECONDITION;
  case KATAVM_E_UNSUPPORTED:
    return TTRPC_UNIMPLEMENTED;
  default:
    return TTRPC_UNKNOWN;
  }
}

static int kfail(Err *e, katavm_error *ke, const char *what) {
  fail(e, code_of(katavm_error_code(ke)), "%s: %s", what, katavm_error_message(ke));
  katavm_error_free(ke);
  return -1;
}

/* The reply under construction: one packed message. */
typedef struct {
  uint8_t *buf;
  size_t len;
} Out;

static void put(Out *o, const ProtobufCMessage *m) {
  if (!m) /* google.protobuf.Empty */
    return;
  o->len = protobuf_c_message_get_packed_size(m);
  o->buf = g_malloc(o->len ? o->len : 1);
  protobuf_c_message_pack(m, o->buf);
}

static void ts_set(Google__Protobuf__Timestamp *ts, gint64 us) {
  ts->seconds = us / G_USEC_PER_SEC;
  ts->nanos = (int32_t)(us % G_USEC_PER_SEC) * 1000;
}

#define PUBLISH(s, topic, name, lower, ev)                                                         \
  do {                                                                                             \
    size_t _n = containerd__events__##lower##__get_packed_size(ev);                                \
    uint8_t *_b = g_malloc(_n ? _n : 1);                                                           \
    containerd__events__##lower##__pack(ev, _b);                                                   \
    events_publish(s, topic, "containerd.events." name, _b, _n);                                   \
    g_free(_b);                                                                                    \
  } while (0)

/* Lookups, under s->lock. */
static Task *task_get(Shim *s, const char *id, Err *e) {
  Task *t = id ? g_hash_table_lookup(s->tasks, id) : NULL;
  if (!t)
    fail(e, TTRPC_NOT_FOUND, "container %s: not found", id ? id : "");
  return t;
}

static Proc *proc_get(Shim *s, const char *id, const char *exec_id, Err *e) {
  Task *t = task_get(s, id, e);
  if (!t)
    return NULL;
  if (!exec_id || !*exec_id)
    return t->init;
  Proc *p = g_hash_table_lookup(t->execs, exec_id);
  if (!p)
    fail(e, TTRPC_NOT_FOUND, "exec %s of container %s: not found", exec_id, id);
  return p;
}

static void proc_free(Proc *p) {
  if (!p)
    return;
  if (p->io)
    g_thread_join(p->io);
  katavm_process_free(p->p);
  g_mutex_clear(&p->plock);
  g_free(p->exec_id);
  g_free(p->stdin_path);
  g_free(p->stdout_path);
  g_free(p->stderr_path);
  g_free(p->spec_json);
  g_free(p);
}

static Proc *proc_new(Task *t, const char *exec_id, const char *in, const char *out,
                      const char *err, int terminal) {
  Proc *p = g_new0(Proc, 1);
  p->task = t;
  p->exec_id = exec_id ? g_strdup(exec_id) : NULL;
  p->stdin_path = g_strdup(in);
  p->stdout_path = g_strdup(out);
  p->stderr_path = g_strdup(err);
  p->terminal = terminal;
  p->status = PROC_CREATED;
  p->exit_code = -1;
  g_mutex_init(&p->plock);
  return p;
}

static void task_free(Task *t) {
  proc_free(t->init);
  g_hash_table_destroy(t->execs);
  g_free(t->id);
  g_free(t->bundle);
  g_free(t->rootfs);
  g_free(t);
}

/* The runtime options' ConfigPath (runtimeoptions.v1.Options, field 2),
 * read without its generated code: a string field of a flat message. */
static char *options_config_path(const Google__Protobuf__Any *o) {
  if (!o || !o->value.len)
    return NULL;
  const uint8_t *p = o->value.data, *end = p + o->value.len;
  while (p < end) {
    uint64_t key = 0, len = 0;
    int sh = 0;
    while (p < end && sh < 64) {
      key |= (uint64_t)(*p & 0x7f) << sh;
      sh += 7;
      if (!(*p++ & 0x80))
        break;
    }
    if ((key & 7) != 2)
      return NULL;
    sh = 0;
    while (p < end && sh < 64) {
      len |= (uint64_t)(*p & 0x7f) << sh;
      sh += 7;
      if (!(*p++ & 0x80))
        break;
    }
    if (len > (uint64_t)(end - p))
      return NULL;
    if ((key >> 3) == 2)
      return g_strndup((const char *)p, (gsize)len);
    p += len;
  }
  return NULL;
}

/* A [runtime] key of the configuration that is a positive number; 0 when
 * unset or not one (katavm_runtime_load_config checked the file). */
static unsigned int config_uint(Shim *s, const char *key) {
  const char *v = katavm_runtime_config_value(s->rt, key);
  guint64 n = 0;
  if (!v || !g_ascii_string_to_unsigned(v, 10, 1, G_MAXUINT, &n, NULL))
    return 0;
  return (unsigned int)n;
}

static int do_create(Shim *s, const Containerd__Task__V2__CreateTaskRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  if (katavm_id_check(r->id, "container id", &ke) < 0)
    return kfail(e, ke, "create");
  if (!r->bundle || r->bundle[0] != '/')
    return fail(e, TTRPC_INVALID_ARGUMENT, "create %s: bundle must be an absolute path", r->id);
  if (r->checkpoint && *r->checkpoint)
    return fail(e, TTRPC_UNIMPLEMENTED, "create %s: checkpoint/restore is not supported", r->id);
  g_autofree char *config_path = options_config_path(r->options);
  if (!shim_runtime(config_path, &ke))
    return kfail(e, ke, "runtime configuration");
  katavm_bundle_info bi;
  katavm_bundle_info_init(&bi);
  if (katavm_bundle_info_read(r->bundle, &bi, &ke) < 0)
    return kfail(e, ke, "create");
  Task *t = g_new0(Task, 1);
  t->id = g_strdup(r->id);
  t->bundle = g_strdup(r->bundle);
  t->execs = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)proc_free);
  t->init = proc_new(t, NULL, r->stdin, r->stdout, r->stderr, r->terminal);
  g_mutex_lock(&s->lock);
  gboolean created_vm = FALSE;
  int rc = -1;
  g_autoptr(GError) ge = NULL;
  if (g_hash_table_contains(s->tasks, r->id)) {
    fail(e, TTRPC_ALREADY_EXISTS, "container %s: already exists", r->id);
    goto out;
  }
  if (r->n_rootfs) {
    t->rootfs = g_build_filename(r->bundle, "rootfs", NULL);
    if (!mounts_apply(r->rootfs, r->n_rootfs, t->rootfs, &ge)) {
      g_clear_pointer(&t->rootfs, g_free);
      fail(e, TTRPC_INVALID_ARGUMENT, "create %s: %s", r->id, ge->message);
      goto out;
    }
  }
  if (bi.role == KATAVM_ROLE_MEMBER) {
    if (!s->sb && katavm_sandbox_open(s->rt, bi.sandbox_id, &s->sb, &ke) < 0) {
      if (katavm_error_code(ke) == KATAVM_E_NOT_FOUND) {
        katavm_error_free(ke);
        fail(e, TTRPC_NOT_FOUND,
             "create %s: its pod's sandbox %s does not exist (annotation "
             "io.kubernetes.cri.sandbox-id)",
             r->id, bi.sandbox_id);
      } else {
        kfail(e, ke, "create: open the pod's sandbox");
      }
      goto out;
    }
  } else {
    if (s->sb) {
      fail(e, TTRPC_FAILED_PRECONDITION,
           "create %s: this shim already serves sandbox %s; a second sandbox needs its own shim",
           r->id, katavm_sandbox_id(s->sb));
      goto out;
    }
    katavm_sandbox_config sc;
    katavm_sandbox_config_init(&sc);
    sc.id = r->id;
    /* max_vcpus / max_memory_mib cap what the pod's annotations or
     * resources ask, and are what Update may hot-plug the VM up to. */
    sc.max_vcpus = config_uint(s, "max_vcpus");
    sc.max_memory_mib = config_uint(s, "max_memory_mib");
    sc.vcpus = sc.max_vcpus ? MIN(bi.vcpus, sc.max_vcpus) : bi.vcpus;
    sc.memory_mib = sc.max_memory_mib ? MIN(bi.memory_mib, sc.max_memory_mib) : bi.memory_mib;
    if (sc.memory_mib && sc.memory_mib < KATAVM_MIN_MEMORY_MIB)
      sc.memory_mib = KATAVM_MIN_MEMORY_MIB;
    sc.netns = bi.netns_configured ? bi.netns : NULL;
    if (katavm_sandbox_create(s->rt, &sc, &s->sb, &ke) < 0) {
      kfail(e, ke, "create: sandbox");
      goto out;
    }
    created_vm = TRUE;
  }
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = r->bundle;
  cc.tty = r->terminal;
  if (katavm_container_add(s->sb, r->id, &cc, &t->init->p, &ke) < 0) {
    kfail(e, ke, "create: container");
    goto out;
  }
  if (!proc_io_start(s, t->init, &ge)) {
    katavm_container_remove(s->sb, r->id, 1, NULL);
    fail(e, TTRPC_INVALID_ARGUMENT, "create %s: %s", r->id, ge->message);
    goto out;
  }
  t->is_sandbox = created_vm;
  g_hash_table_insert(s->tasks, t->id, t);
  rc = 0;
out:
  if (rc < 0) {
    if (created_vm) {
      katavm_sandbox_close(s->sb);
      s->sb = NULL;
      katavm_sandbox_destroy(s->rt, r->id, NULL);
    }
    if (t->rootfs)
      mounts_remove(t->rootfs);
  }
  g_mutex_unlock(&s->lock);
  katavm_bundle_info_clear(&bi);
  if (rc < 0) {
    task_free(t);
    return -1;
  }
  Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
  Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
  io.stdin = r->stdin;
  io.stdout = r->stdout;
  io.stderr = r->stderr;
  io.terminal = r->terminal;
  ev.container_id = r->id;
  ev.bundle = r->bundle;
  ev.n_rootfs = r->n_rootfs;
  ev.rootfs = r->rootfs;
  ev.io = &io;
  ev.pid = (uint32_t)getpid();
  PUBLISH(s, "/tasks/create", "TaskCreate", task_create, &ev);
  Containerd__Task__V2__CreateTaskResponse resp = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
  resp.pid = (uint32_t)getpid();
  put(o, &resp.base);
  return 0;
}

static int do_start(Shim *s, const Containerd__Task__V2__StartRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  g_autoptr(GError) ge = NULL;
  g_mutex_lock(&s->lock);
  Proc *p = proc_get(s, r->id, r->exec_id, e);
  int rc = -1;
  if (!p)
    goto out;
  if (p->status != PROC_CREATED) {
    fail(e, TTRPC_FAILED_PRECONDITION, "start %s: not in state created", r->id);
    goto out;
  }
  if (!p->exec_id) {
    if (katavm_container_start(s->sb, r->id, &ke) < 0) {
      kfail(e, ke, "start");
      goto out;
    }
  } else {
    katavm_exec_config xc;
    katavm_exec_config_init(&xc);
    xc.oci_process = p->spec_json;
    xc.no_stdin = !p->stdin_path || !*p->stdin_path;
    if (katavm_exec(s->sb, r->id, &xc, &p->p, &ke) < 0) {
      kfail(e, ke, "exec");
      goto out;
    }
    if (!proc_io_start(s, p, &ge)) {
      katavm_process_free(p->p);
      p->p = NULL;
      fail(e, TTRPC_INVALID_ARGUMENT, "exec %s: %s", p->exec_id, ge->message);
      goto out;
    }
  }
  if (p->status == PROC_CREATED)
    p->status = PROC_RUNNING;
  rc = 0;
out:
  g_mutex_unlock(&s->lock);
  if (rc < 0)
    return -1;
  if (p->exec_id) {
    Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
    ev.container_id = r->id;
    ev.exec_id = r->exec_id;
    ev.pid = (uint32_t)getpid();
    PUBLISH(s, "/tasks/exec-started", "TaskExecStarted", task_exec_started, &ev);
  } else {
    Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
    ev.container_id = r->id;
    ev.pid = (uint32_t)getpid();
    PUBLISH(s, "/tasks/start", "TaskStart", task_start, &ev);
  }
  Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
  resp.pid = (uint32_t)getpid();
  put(o, &resp.base);
  return 0;
}

static int do_state(Shim *s, const Containerd__Task__V2__StateRequest *r, Out *o, Err *e) {
  g_mutex_lock(&s->lock);
  Proc *p = proc_get(s, r->id, r->exec_id, e);
  if (!p) {
    g_mutex_unlock(&s->lock);
    return -1;
  }
  Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  resp.id = r->id;
  resp.exec_id = r->exec_id;
  resp.bundle = p->task->bundle;
  resp.pid = (uint32_t)getpid();
  resp.stdin = p->stdin_path;
  resp.stdout = p->stdout_path;
  resp.stderr = p->stderr_path;
  resp.terminal = p->terminal;
  switch (p->status) {
  case PROC_CREATED:
    resp.status = CONTAINERD__V1__TYPES__STATUS__CREATED;
    break;
  case PROC_RUNNING:
    resp.status = p->task->paused && !p->exec_id ? CONTAINERD__V1__TYPES__STATUS__PAUSED
                                                 : CONTAINERD__V1__TYPES__STATUS__RUNNING;
    break;
  case PROC_STOPPED:
    resp.status = CONTAINERD__V1__TYPES__STATUS__STOPPED;
    resp.exit_status = (uint32_t)p->exit_code;
    ts_set(&ts, p->exited_at_us);
    resp.exited_at = &ts;
    break;
  }
  put(o, &resp.base);
  g_mutex_unlock(&s->lock);
  return 0;
}

static int do_kill(Shim *s, const Containerd__Task__V2__KillRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  g_mutex_lock(&s->lock);
  Proc *p = proc_get(s, r->id, r->exec_id, e);
  int rc = -1;
  if (!p)
    goto out;
  if (p->status == PROC_STOPPED) {
    fail(e, TTRPC_NOT_FOUND, "kill %s: process already finished", r->id);
    goto out;
  }
  if (!p->exec_id) {
    rc = katavm_container_kill(s->sb, r->id, (int)r->signal, r->all, &ke);
  } else if (p->p) {
    g_mutex_lock(&p->plock);
    rc = katavm_process_signal(p->p, (int)r->signal, &ke);
    g_mutex_unlock(&p->plock);
  } else {
    fail(e, TTRPC_FAILED_PRECONDITION, "kill: exec %s was not started", p->exec_id);
    goto out;
  }
  if (rc < 0) {
    int kc = katavm_error_code(ke);
    if (kc == KATAVM_E_STATE || kc == KATAVM_E_NOT_FOUND) {
      katavm_error_free(ke);
      fail(e, TTRPC_NOT_FOUND, "kill %s: process already finished", r->id);
    } else {
      kfail(e, ke, "kill");
    }
    goto out;
  }
  put(o, NULL);
out:
  g_mutex_unlock(&s->lock);
  return rc < 0 ? -1 : 0;
}

static int do_delete(Shim *s, const Containerd__Task__V2__DeleteRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  g_mutex_lock(&s->lock);
  Proc *p = proc_get(s, r->id, r->exec_id, e);
  if (!p) {
    g_mutex_unlock(&s->lock);
    return -1;
  }
  Task *t = p->task;
  if (p->exec_id) {
    if (p->status == PROC_RUNNING) {
      g_mutex_unlock(&s->lock);
      return fail(e, TTRPC_FAILED_PRECONDITION, "delete: exec %s is running", p->exec_id);
    }
  } else {
    if (p->status == PROC_RUNNING) {
      g_mutex_unlock(&s->lock);
      return fail(e, TTRPC_FAILED_PRECONDITION, "delete: container %s is running", r->id);
    }
    if (katavm_container_remove(s->sb, r->id, 1, &ke) < 0 &&
        katavm_error_code(ke) != KATAVM_E_NOT_FOUND && katavm_error_code(ke) != KATAVM_E_STATE) {
      shim_log("delete %s: %s", r->id, katavm_error_message(ke));
    }
    katavm_error_free(ke);
    ke = NULL;
  }
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  resp.pid = (uint32_t)getpid();
  resp.exit_status = p->status == PROC_STOPPED ? (uint32_t)p->exit_code : 137;
  ts_set(&ts, p->status == PROC_STOPPED ? p->exited_at_us : g_get_real_time());
  resp.exited_at = &ts;
  put(o, &resp.base);
  Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
  ev.container_id = r->id;
  ev.id = p->exec_id ? p->exec_id : r->id;
  ev.pid = resp.pid;
  ev.exit_status = resp.exit_status;
  ev.exited_at = &ts;
  gboolean is_exec = p->exec_id != NULL;
  PUBLISH(s, "/tasks/delete", "TaskDelete", task_delete, &ev);
  if (is_exec) {
    /* Drop the handle under the lock, join the pump outside it. */
    g_hash_table_steal(t->execs, p->exec_id);
    g_mutex_unlock(&s->lock);
    proc_free(p);
    return 0;
  }
  g_hash_table_steal(s->tasks, t->id);
  if (t->is_sandbox) {
    /* The pumps are done (the init stopped); drop the process handles
     * before the VM goes, so that no client of its shim is left. */
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, t->execs);
    while (g_hash_table_iter_next(&it, &k, &v))
      if (((Proc *)v)->status != PROC_RUNNING) /* a running one's pump needs s->lock */
        g_hash_table_iter_remove(&it);
    if (t->init->io)
      g_thread_join(t->init->io);
    t->init->io = NULL;
    katavm_process_free(t->init->p);
    t->init->p = NULL;
    katavm_sandbox_close(s->sb);
    s->sb = NULL;
    if (katavm_sandbox_destroy(s->rt, t->id, &ke) < 0) {
      shim_log("delete %s: destroy the sandbox: %s", t->id, katavm_error_message(ke));
      katavm_error_free(ke);
    }
  }
  if (t->rootfs)
    mounts_remove(t->rootfs);
  g_mutex_unlock(&s->lock);
  task_free(t);
  return 0;
}

static int do_exec(Shim *s, const Containerd__Task__V2__ExecProcessRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  if (katavm_id_check(r->exec_id, "exec id", &ke) < 0)
    return kfail(e, ke, "exec");
  if (!r->spec || !r->spec->value.len)
    return fail(e, TTRPC_INVALID_ARGUMENT, "exec %s: no process spec", r->exec_id);
  g_autofree char *json = g_strndup((const char *)r->spec->value.data, r->spec->value.len);
  g_mutex_lock(&s->lock);
  Task *t = task_get(s, r->id, e);
  if (!t) {
    g_mutex_unlock(&s->lock);
    return -1;
  }
  if (g_hash_table_contains(t->execs, r->exec_id)) {
    g_mutex_unlock(&s->lock);
    return fail(e, TTRPC_ALREADY_EXISTS, "exec %s: already exists", r->exec_id);
  }
  Proc *p = proc_new(t, r->exec_id, r->stdin, r->stdout, r->stderr, r->terminal);
  p->spec_json = g_steal_pointer(&json);
  g_hash_table_insert(t->execs, p->exec_id, p);
  g_mutex_unlock(&s->lock);
  Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
  ev.container_id = r->id;
  ev.exec_id = r->exec_id;
  PUBLISH(s, "/tasks/exec-added", "TaskExecAdded", task_exec_added, &ev);
  put(o, NULL);
  return 0;
}

static int do_resize(Shim *s, const Containerd__Task__V2__ResizePtyRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  g_mutex_lock(&s->lock);
  Proc *p = proc_get(s, r->id, r->exec_id, e);
  if (!p || !p->p) {
    g_mutex_unlock(&s->lock);
    return p ? fail(e, TTRPC_FAILED_PRECONDITION, "resize: process not started") : -1;
  }
  if (!r->width || !r->height) { /* an unsized terminal (0x0): nothing to follow */
    g_mutex_unlock(&s->lock);
    put(o, NULL);
    return 0;
  }
  g_mutex_lock(&p->plock);
  g_mutex_unlock(&s->lock);
  int rc = katavm_process_resize(p->p, (unsigned short)r->height, (unsigned short)r->width, &ke);
  g_mutex_unlock(&p->plock);
  if (rc < 0)
    return kfail(e, ke, "resize");
  put(o, NULL);
  return 0;
}

static int do_close_io(Shim *s, const Containerd__Task__V2__CloseIORequest *r, Out *o, Err *e) {
  g_mutex_lock(&s->lock);
  Proc *p = proc_get(s, r->id, r->exec_id, e);
  if (p && r->stdin)
    p->close_stdin = TRUE;
  g_mutex_unlock(&s->lock);
  if (!p)
    return -1;
  put(o, NULL);
  return 0;
}

static int do_pids(Shim *s, const Containerd__Task__V2__PidsRequest *r, Out *o, Err *e) {
  g_mutex_lock(&s->lock);
  Task *t = task_get(s, r->id, e);
  if (!t) {
    g_mutex_unlock(&s->lock);
    return -1;
  }
  /* The processes run in the guest: like Kata, the shim stands for them. */
  Containerd__V1__Types__ProcessInfo pi = CONTAINERD__V1__TYPES__PROCESS_INFO__INIT;
  Containerd__V1__Types__ProcessInfo *list[1] = {&pi};
  pi.pid = (uint32_t)getpid();
  Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
  resp.n_processes = 1;
  resp.processes = list;
  put(o, &resp.base);
  g_mutex_unlock(&s->lock);
  return 0;
}

static int do_pause(Shim *s, const char *id, gboolean pause, Out *o, Err *e) {
  katavm_error *ke = NULL;
  g_mutex_lock(&s->lock);
  Task *t = task_get(s, id, e);
  int rc = -1;
  if (!t)
    goto out;
  rc = pause ? katavm_container_pause(s->sb, id, &ke) : katavm_container_resume(s->sb, id, &ke);
  if (rc < 0) {
    kfail(e, ke, pause ? "pause" : "resume");
    goto out;
  }
  t->paused = pause;
  put(o, NULL);
out:
  g_mutex_unlock(&s->lock);
  if (rc < 0)
    return -1;
  if (pause) {
    Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
    ev.container_id = (char *)id;
    PUBLISH(s, "/tasks/paused", "TaskPaused", task_paused, &ev);
  } else {
    Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
    ev.container_id = (char *)id;
    PUBLISH(s, "/tasks/resumed", "TaskResumed", task_resumed, &ev);
  }
  return 0;
}

static int do_update(Shim *s, const Containerd__Task__V2__UpdateTaskRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  if (!r->resources || !r->resources->value.len)
    return fail(e, TTRPC_INVALID_ARGUMENT, "update %s: no resources", r->id);
  g_autofree char *json =
      g_strndup((const char *)r->resources->value.data, r->resources->value.len);
  g_mutex_lock(&s->lock);
  int rc = -1;
  if (task_get(s, r->id, e)) {
    rc = katavm_container_update(s->sb, r->id, json, &ke);
    if (rc < 0)
      kfail(e, ke, "update");
  }
  g_mutex_unlock(&s->lock);
  if (rc < 0)
    return -1;
  put(o, NULL);
  return 0;
}

static int do_wait(Shim *s, const Containerd__Task__V2__WaitRequest *r, Out *o, Err *e) {
  g_mutex_lock(&s->lock);
  Proc *p = proc_get(s, r->id, r->exec_id, e);
  if (!p) {
    g_mutex_unlock(&s->lock);
    return -1;
  }
  /* Delete frees a Proc only once it stopped, and Wait returns then. */
  while (p->status != PROC_STOPPED)
    g_cond_wait(&s->exited, &s->lock);
  Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  resp.exit_status = (uint32_t)p->exit_code;
  ts_set(&ts, p->exited_at_us);
  resp.exited_at = &ts;
  put(o, &resp.base);
  g_mutex_unlock(&s->lock);
  return 0;
}

/* The container's cgroup v2 figures from the guest agent
 * (katavm_container_get_stats), as containerd's cgroups v2 Metrics. */
static int do_stats(Shim *s, const Containerd__Task__V2__StatsRequest *r, Out *o, Err *e) {
  katavm_error *ke = NULL;
  katavm_container_stats st;
  katavm_container_stats_init(&st);
  g_mutex_lock(&s->lock);
  Task *t = task_get(s, r->id, e);
  int rc = -1;
  if (t && !s->sb)
    fail(e, TTRPC_FAILED_PRECONDITION, "stats %s: the pod's sandbox is gone", r->id);
  else if (t && (rc = katavm_container_get_stats(s->sb, r->id, &st, &ke)) < 0)
    kfail(e, ke, "stats");
  g_mutex_unlock(&s->lock);
  if (rc < 0)
    return -1;
  Io__Containerd__Cgroups__V2__Metrics m = IO__CONTAINERD__CGROUPS__V2__METRICS__INIT;
  Io__Containerd__Cgroups__V2__PidsStat pids = IO__CONTAINERD__CGROUPS__V2__PIDS_STAT__INIT;
  Io__Containerd__Cgroups__V2__CPUStat cpu = IO__CONTAINERD__CGROUPS__V2__CPUSTAT__INIT;
  Io__Containerd__Cgroups__V2__MemoryStat mem = IO__CONTAINERD__CGROUPS__V2__MEMORY_STAT__INIT;
  Io__Containerd__Cgroups__V2__MemoryEvents ev = IO__CONTAINERD__CGROUPS__V2__MEMORY_EVENTS__INIT;
  /* "max" limits are UINT64_MAX, as containerd's cgroups package reports
   * them for runc. */
  pids.current = st.pids_current;
  pids.limit = st.pids_limit;
  cpu.usage_usec = st.cpu_usage_usec;
  cpu.user_usec = st.cpu_user_usec;
  cpu.system_usec = st.cpu_system_usec;
  cpu.nr_periods = st.cpu_nr_periods;
  cpu.nr_throttled = st.cpu_nr_throttled;
  cpu.throttled_usec = st.cpu_throttled_usec;
  mem.usage = st.memory_usage;
  mem.usage_limit = st.memory_limit;
  mem.swap_usage = st.swap_usage;
  mem.swap_limit = st.swap_limit;
  mem.anon = st.memory_anon;
  mem.file = st.memory_file;
  mem.kernel_stack = st.memory_kernel_stack;
  mem.slab = st.memory_slab;
  mem.sock = st.memory_sock;
  mem.shmem = st.memory_shmem;
  mem.file_mapped = st.memory_file_mapped;
  mem.inactive_anon = st.memory_inactive_anon;
  mem.active_anon = st.memory_active_anon;
  mem.inactive_file = st.memory_inactive_file;
  mem.active_file = st.memory_active_file;
  mem.pgfault = st.memory_pgfault;
  mem.pgmajfault = st.memory_pgmajfault;
  ev.low = st.memory_events_low;
  ev.high = st.memory_events_high;
  ev.max = st.memory_events_max;
  ev.oom = st.memory_events_oom;
  ev.oom_kill = st.memory_events_oom_kill;
  m.pids = &pids;
  m.cpu = &cpu;
  m.memory = &mem;
  m.memory_events = &ev;
  g_autofree uint8_t *packed = g_malloc(protobuf_c_message_get_packed_size(&m.base) + 1);
  size_t plen = protobuf_c_message_pack(&m.base, packed);
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = "io.containerd.cgroups.v2.Metrics";
  any.value.data = packed;
  any.value.len = plen;
  Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
  resp.stats = &any;
  put(o, &resp.base);
  return 0;
}

/* OOM kills in the guest become TaskOOM events: the OOM killer's count of
 * a container's cgroup (memory.events oom_kill) is read every second for
 * each running container, and once more when its init exits (before its
 * TaskExit, so that containerd's CRI marks the exit OOMKilled). Called
 * with s->lock held. */
void task_oom_check(Shim *s, Task *t) {
  if (!s->sb)
    return;
  katavm_container_stats st;
  katavm_container_stats_init(&st);
  katavm_error *ke = NULL;
  if (katavm_container_get_stats(s->sb, t->id, &st, &ke) < 0) {
    if (s->debug)
      shim_log("oom watch %s: %s", t->id, katavm_error_message(ke));
    katavm_error_free(ke);
    return;
  }
  if (st.memory_events_oom_kill <= t->oom_kills)
    return;
  shim_log("container %s: %" G_GUINT64_FORMAT " OOM kill(s) in the guest", t->id,
           st.memory_events_oom_kill - t->oom_kills);
  t->oom_kills = st.memory_events_oom_kill;
  Containerd__Events__TaskOOM ev = CONTAINERD__EVENTS__TASK_OOM__INIT;
  ev.container_id = t->id;
  PUBLISH(s, "/tasks/oom", "TaskOOM", task_oom, &ev);
}

#define OOM_POLL_US (1 * G_USEC_PER_SEC)

static gpointer oom_thread(gpointer data) {
  Shim *s = data;
  while (!s->stop) {
    g_usleep(OOM_POLL_US);
    g_mutex_lock(&s->lock);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, s->tasks);
    while (g_hash_table_iter_next(&it, &k, &v)) {
      Task *t = v;
      if (t->init->status == PROC_RUNNING && !t->paused)
        task_oom_check(s, t);
    }
    g_mutex_unlock(&s->lock);
  }
  return NULL;
}

void task_oom_watch_start(Shim *s) {
  g_thread_unref(g_thread_new("oom", oom_thread, s));
}

static int do_connect(Shim *s, const Containerd__Task__V2__ConnectRequest *r, Out *o, Err *e) {
  Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
  resp.shim_pid = (uint32_t)getpid();
  resp.task_pid = (uint32_t)getpid();
  resp.version = (char *)katavm_version();
  put(o, &resp.base);
  return 0;
}

static int do_shutdown(Shim *s, const Containerd__Task__V2__ShutdownRequest *r, Out *o, Err *e) {
  g_mutex_lock(&s->lock);
  gboolean empty = g_hash_table_size(s->tasks) == 0;
  g_mutex_unlock(&s->lock);
  if (empty || r->now)
    s->stop = 1;
  put(o, NULL);
  return 0;
}

typedef int (*Fn)(Shim *, const void *, Out *, Err *);

static int do_pause_req(Shim *s, const Containerd__Task__V2__PauseRequest *r, Out *o, Err *e) {
  return do_pause(s, r->id, TRUE, o, e);
}
static int do_resume_req(Shim *s, const Containerd__Task__V2__ResumeRequest *r, Out *o, Err *e) {
  return do_pause(s, r->id, FALSE, o, e);
}

static const struct {
  const char *name;
  const ProtobufCMessageDescriptor *req;
  Fn fn;
} methods[] = {
#define M(name, lower, fn)                                                                         \
  { name, &containerd__task__v2__##lower##__descriptor, (Fn)fn }
    M("Create", create_task_request, do_create),
    M("Start", start_request, do_start),
    M("State", state_request, do_state),
    M("Kill", kill_request, do_kill),
    M("Delete", delete_request, do_delete),
    M("Exec", exec_process_request, do_exec),
    M("ResizePty", resize_pty_request, do_resize),
    M("CloseIO", close_iorequest, do_close_io),
    M("Pids", pids_request, do_pids),
    M("Pause", pause_request, do_pause_req),
    M("Resume", resume_request, do_resume_req),
    M("Update", update_task_request, do_update),
    M("Wait", wait_request, do_wait),
    M("Stats", stats_request, do_stats),
    M("Connect", connect_request, do_connect),
    M("Shutdown", shutdown_request, do_shutdown),
#undef M
};

int task_handle(void *ctx, const char *service, const char *method, const uint8_t *payload,
                size_t len, uint8_t **resp, size_t *resp_len, char **msg) {
  Shim *s = ctx;
  if (strcmp(service, "containerd.task.v2.Task") != 0) {
    *msg = g_strdup_printf("service %s is not implemented", service);
    return TTRPC_UNIMPLEMENTED;
  }
  for (size_t i = 0; i < G_N_ELEMENTS(methods); i++) {
    if (strcmp(method, methods[i].name) != 0)
      continue;
    ProtobufCMessage *req = protobuf_c_message_unpack(methods[i].req, NULL, len, payload);
    if (!req) {
      *msg = g_strdup_printf("%s: malformed request", method);
      return TTRPC_INVALID_ARGUMENT;
    }
    Out o = {0};
    Err e = {0};
    if (s->debug)
      shim_log("%s", method);
    int rc = methods[i].fn(s, req, &o, &e);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc < 0) {
      g_free(o.buf);
      if (s->debug)
        shim_log("%s: %s", method, e.msg);
      *msg = e.msg;
      return e.code ? e.code : TTRPC_UNKNOWN;
    }
    *resp = o.buf;
    *resp_len = o.len;
    return TTRPC_OK;
  }
  *msg = g_strdup_printf("method %s.%s is not implemented", service, method);
  return TTRPC_UNIMPLEMENTED;
}
