/* agent/container.c: the container registry, the life cycle of containers
 * and the container_* methods (see container.h).
 */
#include "container.h"
#include "boot.h"
#include "etcfiles.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* container_remove: how often to look whether the processes are gone, and
 * for how long. */
#define REMOVE_POLL_MS 20
#define REMOVE_TIMEOUT_US (10 * G_USEC_PER_SEC)
/* Finished execs kept per container for late waits, oldest dropped. */
#define KEEP_FINISHED_EXECS 128

static GHashTable *containers; /* id -> AgentContainer* */

/* The protocol knows no "creating": a container being set up is created
 * as far as the host is concerned (its create has not been answered). */
static const char *const status_names[] = {KV_STATUS_CREATED, KV_STATUS_CREATED, KV_STATUS_RUNNING,
                                           KV_STATUS_STOPPED};

AgentContainer *agent_container_lookup(const char *id, GError **error) {
  AgentContainer *ct = containers != NULL ? g_hash_table_lookup(containers, id) : NULL;
  if (ct == NULL)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND, "no container \"%s\" in this sandbox", id);
  return ct;
}

static void container_remove_progress(AgentContainer *ct);

/* ---- what happens to the processes of a container ---- */

static void init_setup_done(AgentProcess *p, AgentPending what) {
  AgentContainer *ct = p->owner;
  if (what == AGENT_PENDING_CREATE) {
    ct->status = AGENT_CONTAINER_CREATED;
    agent_debug("container %s created (pid %d)", ct->id, (int)p->pid);
  } else if (what == AGENT_PENDING_START && ct->status == AGENT_CONTAINER_CREATED) {
    ct->status = AGENT_CONTAINER_RUNNING;
  }
}

static void init_setup_failed(AgentProcess *p, AgentPending what) {
  AgentContainer *ct = p->owner;
  if (what != AGENT_PENDING_CREATE)
    return;
  /* A container that failed to create does not exist; its cgroup goes
   * once the process has exited. */
  g_hash_table_steal(containers, ct->id);
  ct->removing = TRUE;
  ct->remove_deadline = g_get_monotonic_time() + REMOVE_TIMEOUT_US;
  container_remove_progress(ct);
}

static void init_exited(AgentProcess *p) {
  AgentContainer *ct = p->owner;
  ct->status = AGENT_CONTAINER_STOPPED;
  if (ct->start_fd >= 0) {
    close(ct->start_fd);
    ct->start_fd = -1;
  }
  if (ct->removing)
    container_remove_progress(ct);
}

static const AgentProcessOwner init_owner = {
    .setup_done = init_setup_done,
    .setup_failed = init_setup_failed,
    .exited = init_exited,
};

static void exec_setup_failed(AgentProcess *p, AgentPending what) {
  AgentContainer *ct = p->owner;
  AgentProcess *cur = g_hash_table_lookup(ct->execs, p->exec_id);
  p->owner = NULL;
  if (cur == p)
    g_hash_table_remove(ct->execs, p->exec_id);
}

static void exec_exited(AgentProcess *p) {
  AgentContainer *ct = p->owner;
  if (ct->removing)
    container_remove_progress(ct);
}

static void exec_finished(AgentProcess *p) {
  AgentContainer *ct = p->owner;
  g_queue_push_tail(&ct->finished, g_strdup(p->exec_id));
  while (g_queue_get_length(&ct->finished) > KEEP_FINISHED_EXECS) {
    g_autofree char *old = g_queue_pop_head(&ct->finished);
    AgentProcess *q = g_hash_table_lookup(ct->execs, old);
    if (q != NULL && q->finished)
      g_hash_table_remove(ct->execs, old);
  }
}

static const AgentProcessOwner exec_owner = {
    .setup_failed = exec_setup_failed,
    .exited = exec_exited,
    .finished = exec_finished,
};

AgentProcess *agent_container_add_exec(AgentContainer *ct, const char *exec_id) {
  g_autofree char *label = g_strdup_printf("exec %s in container %s", exec_id, ct->id);
  AgentProcess *p = agent_process_new(label, exec_id, &exec_owner, ct);
  g_hash_table_replace(ct->execs, g_strdup(exec_id), p);
  return p;
}

/* ---- containers ---- */

static void container_free(AgentContainer *ct) {
  if (ct->remove_timer != 0)
    g_source_remove(ct->remove_timer);
  g_clear_pointer(&ct->remove_call, agent_call_unref);
  if (ct->start_fd >= 0)
    close(ct->start_fd);
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init(&it, ct->execs);
  while (g_hash_table_iter_next(&it, NULL, &v))
    ((AgentProcess *)v)->owner = NULL;
  g_hash_table_unref(ct->execs);
  g_queue_clear_full(&ct->finished, g_free);
  if (ct->init != NULL) {
    ct->init->owner = NULL;
    agent_process_unref(ct->init);
  }
  agent_path_pins_clear(&ct->path_pins);
  if (ct->layer)
    agent_rootfs_layer_unmount(ct->id);
  kv_ocispec_free(ct->spec);
  agent_seccomp_free(ct->seccomp);
  g_free(ct->rootfs);
  g_free(ct->home);
  g_free(ct->cgroup);
  g_free(ct->id);
  g_free(ct);
}

static gboolean remove_poll(gpointer user) {
  AgentContainer *ct = user;
  ct->remove_timer = 0;
  container_remove_progress(ct);
  return G_SOURCE_REMOVE;
}

/* Removal goes on until the main process was reaped and the cgroup is
 * empty; then the cgroup is removed (the mounts went with the mount
 * namespace, when its last process exited) and the container freed. */
static void container_remove_progress(AgentContainer *ct) {
  gboolean init_gone = ct->init == NULL || ct->init->pid < 0 || ct->init->exited;
  gboolean empty = ct->cgroup == NULL || !agent_cgroup_populated(ct->cgroup);
  if (!init_gone || !empty) {
    if (g_get_monotonic_time() > ct->remove_deadline) {
      g_autoptr(GError) err =
          g_error_new(KV_ERROR_DOMAIN, KV_E_IO,
                      "container %s: its processes did not exit after SIGKILL", ct->id);
      agent_error("%s", err->message);
      if (ct->remove_call != NULL)
        agent_call_complete(ct->remove_call, NULL, err);
      g_clear_pointer(&ct->remove_call, agent_call_unref);
      ct->removing = FALSE;
      return;
    }
    if (ct->remove_timer == 0)
      ct->remove_timer = g_timeout_add(REMOVE_POLL_MS, remove_poll, ct);
    return;
  }
  if (ct->remove_timer != 0) {
    g_source_remove(ct->remove_timer);
    ct->remove_timer = 0;
  }
  if (ct->cgroup != NULL) {
    g_autoptr(GError) err = NULL;
    if (!agent_cgroup_remove(ct->cgroup, &err))
      agent_error("%s", err->message);
  }
  agent_debug("container %s removed", ct->id);
  if (ct->remove_call != NULL)
    agent_call_complete(ct->remove_call, NULL, NULL);
  /* Failed creates were taken out of the table already. */
  if (containers != NULL && g_hash_table_lookup(containers, ct->id) == ct)
    g_hash_table_steal(containers, ct->id);
  container_free(ct);
}

static void container_state(AgentContainer *ct, KvContainerStateResult *r) {
  r->container_id = g_strdup(ct->id);
  r->status =
      g_strdup(ct->paused && ct->status == AGENT_CONTAINER_RUNNING ? KV_STATUS_PAUSED
                                                                   : status_names[ct->status]);
  r->pid = ct->init != NULL ? ct->init->pid : 0;
  r->exit_code =
      ct->status == AGENT_CONTAINER_STOPPED && ct->init != NULL ? ct->init->exit_code : -1;
}

/* ---- create ---- */

/* The agent must reap what it launches even when it is not PID 1 (the
 * test mode): orphaned grandchildren come to a subreaper. */
static void ensure_reaper(void) {
  static gboolean done;
  if (!done && getpid() != 1)
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  done = TRUE;
}

static void volume_free(KvVolume *v) {
  g_free(v->source);
  g_free(v->destination);
  g_free(v);
}

/* Each volume names a bind mount of the spec; checked before anything is
 * made. */
static gboolean check_volumes(const KvOciSpec *spec, GPtrArray *volumes, GError **error) {
  for (guint i = 0; volumes != NULL && i < volumes->len; i++) {
    const KvVolume *v = g_ptr_array_index(volumes, i);
    const KvOciMount *m = v->mount < (gint64)spec->mounts->len
                              ? g_ptr_array_index(spec->mounts, (guint)v->mount)
                              : NULL;
    if (m == NULL || !m->bind || !g_path_is_absolute(v->source)) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                  "container_create: volumes[%u] (%s) does not name a bind mount of the spec "
                  "with an absolute guest source",
                  i, v->destination);
      return FALSE;
    }
  }
  return TRUE;
}

static char **resolve_bind_sources(const KvOciSpec *spec, const char *rootfs, GPtrArray *volumes) {
  /* A volume's source is where the host shared it (the shim gives the
   * guest path); other relative sources are relative to the bundle, the
   * rootfs's parent, as OCI puts it; absolute ones are guest paths. */
  g_autofree char *bundle = g_path_get_dirname(rootfs);
  char **out = g_new0(char *, spec->mounts->len + 1);
  for (guint i = 0; i < spec->mounts->len; i++) {
    const KvOciMount *m = g_ptr_array_index(spec->mounts, i);
    if (!m->bind)
      out[i] = g_strdup("");
    else if (g_path_is_absolute(m->source))
      out[i] = g_strdup(m->source);
    else
      out[i] = g_build_filename(bundle, m->source, NULL);
  }
  for (guint i = 0; volumes != NULL && i < volumes->len; i++) {
    const KvVolume *v = g_ptr_array_index(volumes, i);
    g_free(out[v->mount]);
    out[v->mount] = g_strdup(v->source);
  }
  return out;
}

/* A create whose params are checked, run now or once the late boot steps
 * are done (the share the rootfs is on is mounted by them). */
typedef struct {
  AgentCall *call;
  char *id;
  KvOciSpec *spec;
  AgentSeccomp *seccomp;
  char *rootfs;
  char *layer;        /* the writable layer's overlay (rootfs.c), or NULL */
  GPtrArray *volumes; /* KvVolume* (the params', stolen) */
  guint32 ids[3];
  char *pod_sandbox; /* the pod's sandbox container, from the annotations, or NULL */
} CreatePlan;

static void plan_free(CreatePlan *c) {
  agent_call_unref(c->call);
  g_free(c->id);
  kv_ocispec_free(c->spec);
  agent_seccomp_free(c->seccomp);
  g_free(c->rootfs);
  g_free(c->pod_sandbox);
  if (c->layer != NULL)
    agent_rootfs_layer_unmount(c->id);
  g_free(c->layer);
  if (c->volumes != NULL)
    g_ptr_array_unref(c->volumes);
  g_free(c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CreatePlan, plan_free)

/* The sandbox container named by a pod member's annotations (CRI-O's, as
 * podman puts them on pod members, or containerd CRI's), or NULL when the
 * spec is not a member's. */
static char *pod_sandbox_of(JsonObject *spec) {
  JsonNode *n = json_object_get_member(spec, "annotations");
  if (n == NULL || !JSON_NODE_HOLDS_OBJECT(n))
    return NULL;
  JsonObject *a = json_node_get_object(n);
  static const char *const keys[][2] = {
      {"io.kubernetes.cri-o.ContainerType", "io.kubernetes.cri-o.SandboxID"},
      {"io.kubernetes.cri.container-type", "io.kubernetes.cri.sandbox-id"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
    const char *type = json_object_get_string_member_with_default(a, keys[i][0], NULL);
    const char *id = json_object_get_string_member_with_default(a, keys[i][1], NULL);
    if (type != NULL && strcmp(type, "container") == 0 && id != NULL && *id != '\0')
      return g_strdup(id);
  }
  return NULL;
}

/* Namespaces of the pod's sandbox container that a member joins. */
typedef struct {
  int fds[2];
  int types[2];
  int n;
} PodNs;

static void pod_ns_clear(PodNs *ns) {
  for (int i = 0; i < ns->n; i++)
    close(ns->fds[i]);
  ns->n = 0;
}

/* A pod's containers share its sandbox container's ipc and uts namespaces
 * besides the network, as in Kubernetes. The host spec says so with
 * namespace paths of the sandbox container's host process, which name
 * nothing in the guest (the library drops them); the pod annotations name
 * the sandbox container, whose namespaces here are joined instead, for
 * each kind the member asks for and the sandbox container has of its own.
 * A sandbox container that is not in this VM (a pod run without one)
 * leaves the member its own namespaces. */
static gboolean open_pod_ns(const char *cid, const char *sandbox, const KvOciSpec *spec, PodNs *out,
                            GError **error) {
  static const struct {
    int flag;
    const char *name;
  } kinds[] = {{CLONE_NEWIPC, "ipc"}, {CLONE_NEWUTS, "uts"}};
  out->n = 0;
  if (sandbox == NULL || strcmp(sandbox, cid) == 0)
    return TRUE;
  AgentContainer *sb = containers != NULL ? g_hash_table_lookup(containers, sandbox) : NULL;
  if (sb == NULL) {
    agent_debug("container %s: its sandbox container %s is not here: namespaces of its own", cid,
                sandbox);
    return TRUE;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(kinds); i++) {
    if (!(spec->namespaces & kinds[i].flag) || !(sb->spec->namespaces & kinds[i].flag))
      continue;
    int fd = -1;
    if (!sb->removing && sb->init != NULL && sb->init->pid > 0 && !sb->init->exited) {
      g_autofree char *path = g_strdup_printf("/proc/%d/ns/%s", (int)sb->init->pid, kinds[i].name);
      fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
      pod_ns_clear(out);
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE,
                  "container %s: its pod's sandbox container %s is not running: no %s namespace "
                  "to share",
                  cid, sandbox, kinds[i].name);
      return FALSE;
    }
    out->fds[out->n] = fd;
    out->types[out->n] = kinds[i].flag;
    out->n++;
  }
  return TRUE;
}

static gboolean create_container(CreatePlan *plan, GError **error) {
  const char *cid = plan->id;
  KvConn *c = agent_call_conn(plan->call);
  const guint32 *ids = plan->ids;
  if (containers != NULL && g_hash_table_contains(containers, cid)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS,
                "a container \"%s\" already exists in this sandbox", cid);
    return FALSE;
  }
  const char *rootfs = plan->rootfs;
  struct stat st;
  if (stat(rootfs, &st) < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND, "rootfs %s: %s", rootfs, g_strerror(e));
    return FALSE;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "rootfs %s is not a directory", rootfs);
    return FALSE;
  }
  if (!agent_streams_check_free(c, ids, 3, error))
    return FALSE;
  KvOciSpec *spec = plan->spec;
  /* The container's root is then the overlay; the share's rootfs stays
   * what bind sources relative to the bundle are found beside. */
  const char *lower = rootfs;
  if (spec->storage_size_mib > 0) {
    plan->layer = agent_rootfs_layer_mount(cid, lower, spec->storage_size_mib, error);
    if (plan->layer == NULL) {
      g_prefix_error(error, "container %s: ", cid);
      return FALSE;
    }
    rootfs = plan->layer;
  }
  if (!agent_etcfiles_prepare(cid, rootfs, spec, error))
    return FALSE;
  PodNs pod_ns;
  if (!open_pod_ns(cid, plan->pod_sandbox, spec, &pod_ns, error))
    return FALSE;

  /* From here on every failure undoes what was made before it. */
  g_autofree char *cgroup = agent_cgroup_create(cid, &spec->resources, error);
  if (cgroup == NULL) {
    pod_ns_clear(&pod_ns);
    return FALSE;
  }
  int procs = agent_cgroup_open_procs(cgroup, error);
  if (procs < 0) {
    agent_cgroup_remove(cgroup, NULL);
    pod_ns_clear(&pod_ns);
    return FALSE;
  }
  int start[2] = {-1, -1};
  if (pipe2(start, O_CLOEXEC) < 0) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "pipe: %s", g_strerror(e));
    close(procs);
    agent_cgroup_remove(cgroup, NULL);
    pod_ns_clear(&pod_ns);
    return FALSE;
  }
  AgentStdio io;
  if (!agent_stdio_prepare(spec->process, ids, &io, error)) {
    close(procs);
    close(start[0]);
    close(start[1]);
    agent_cgroup_remove(cgroup, NULL);
    pod_ns_clear(&pod_ns);
    return FALSE;
  }

  g_autofree char *home = kv_ocispec_env_get(spec->process->env, "HOME") == NULL
                              ? agent_home_of(rootfs, spec->process->uid)
                              : NULL;
  g_auto(GStrv) envp = agent_process_envp(spec->process, rootfs, home, spec->process->uid);
  g_auto(GStrv) sources = resolve_bind_sources(spec, lower, plan->volumes);
  g_autofree int *trees = g_new0(int, spec->mounts->len + 1);
  AgentLaunch l = {
      .unshare_flags = spec->namespaces,
      .rootfs = rootfs,
      .spec = spec,
      .mount_sources = sources,
      .mount_trees = trees,
      .start_fd = start[0],
      .cgroup_procs_fd = procs,
      .stdio = {io.child[0], io.child[1], io.child[2]},
      .terminal = spec->process->terminal,
      .proc = spec->process,
      .envp = envp,
      .path_env = kv_ocispec_env_get(spec->process->env, "PATH"),
      .seccomp = plan->seccomp,
      .last_cap = agent_launch_last_cap(),
  };
  for (int i = 0; i < pod_ns.n; i++) {
    l.unshare_flags &= ~pod_ns.types[i];
    l.ns_fds[i] = pod_ns.fds[i];
    l.ns_types[i] = pod_ns.types[i];
  }
  l.n_ns = pod_ns.n;
  ensure_reaper();
  int status_fd = -1;
  pid_t pid = agent_launch(&l, &status_fd, error);
  pod_ns_clear(&pod_ns);
  close(procs);
  close(start[0]);
  if (pid < 0) {
    g_prefix_error(error, "container %s: ", cid);
    close(start[1]);
    agent_stdio_clear(&io);
    agent_cgroup_remove(cgroup, NULL);
    return FALSE;
  }

  AgentContainer *ct = g_new0(AgentContainer, 1);
  ct->id = g_strdup(cid);
  ct->status = AGENT_CONTAINER_CREATING;
  ct->layer = plan->layer != NULL;
  if (ct->layer) {
    ct->rootfs = g_steal_pointer(&plan->layer);
  } else {
    ct->rootfs = g_steal_pointer(&plan->rootfs);
  }
  ct->cgroup = g_steal_pointer(&cgroup);
  ct->home = g_steal_pointer(&home);
  ct->home_uid = spec->process->uid;
  ct->start_fd = start[1];
  ct->execs =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)agent_process_unref);
  g_queue_init(&ct->finished);
  g_autofree char *label = g_strdup_printf("container %s", cid);
  ct->init = agent_process_new(label, NULL, &init_owner, ct);
  ct->spec = g_steal_pointer(&plan->spec);
  ct->seccomp = g_steal_pointer(&plan->seccomp);
  if (containers == NULL)
    containers = g_hash_table_new(g_str_hash, g_str_equal);
  g_hash_table_insert(containers, ct->id, ct);
  agent_rootfs_pin_path(&ct->path_pins, ct->rootfs,
                        kv_ocispec_env_get(ct->spec->process->env, "PATH"));
  agent_debug("container %s: %u PATH directories pinned", ct->id, ct->path_pins.n);
  agent_stdio_attach(&io, ct->init, c, ids, ct->spec->process->terminal);
  agent_stdio_clear(&io);
  agent_process_launched(ct->init, pid, status_fd, AGENT_PENDING_CREATE, plan->call);
  return TRUE;
}

static void deferred_create(gpointer user) {
  g_autoptr(CreatePlan) plan = user;
  g_autoptr(GError) err = NULL;
  if (!create_container(plan, &err))
    agent_call_complete(plan->call, NULL, err);
}

gboolean agent_m_container_create(AgentCall *call, const KvContainerCreateParams *p, KvPidResult *r,
                                  GError **error) {
  const char *cid = p->container_id;
  if (containers != NULL && g_hash_table_contains(containers, cid)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS,
                "a container \"%s\" already exists in this sandbox", cid);
    return FALSE;
  }
  g_autoptr(CreatePlan) plan = g_new0(CreatePlan, 1);
  plan->call = agent_call_defer(call);
  plan->id = g_strdup(cid);
  plan->spec = kv_ocispec_parse(p->spec, error);
  if (plan->spec == NULL)
    return FALSE;
  plan->pod_sandbox = pod_sandbox_of(p->spec);
  plan->rootfs = p->rootfs != NULL
                     ? g_strdup(p->rootfs)
                     : g_build_filename(KV_GUEST_SHARED_DIR, "containers", cid, "rootfs", NULL);
  if (!g_path_is_absolute(plan->rootfs)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "container_create: rootfs must be an absolute guest path (got \"%s\")",
                plan->rootfs);
    return FALSE;
  }
  if (!check_volumes(plan->spec, p->volumes, error))
    return FALSE;
  /* A copy: the params' list is freed with them. */
  for (guint i = 0; p->volumes != NULL && i < p->volumes->len; i++) {
    const KvVolume *v = g_ptr_array_index(p->volumes, i);
    if (plan->volumes == NULL)
      plan->volumes = g_ptr_array_new_with_free_func((GDestroyNotify)volume_free);
    KvVolume *c = g_new0(KvVolume, 1);
    c->mount = v->mount;
    c->source = g_strdup(v->source);
    c->destination = g_strdup(v->destination);
    c->readonly = v->readonly;
    g_ptr_array_add(plan->volumes, c);
  }
  if (plan->spec->seccomp != NULL) {
    plan->seccomp = agent_seccomp_compile(plan->spec->seccomp, error);
    if (plan->seccomp == NULL)
      return FALSE;
  }
  agent_stdio_ids(&p->streams, plan->ids);
  if (!agent_streams_check_free(agent_call_conn(call), plan->ids, 3, error))
    return FALSE;
  /* The rootfs is on the 9p share, which the late boot steps mount: a
   * create that comes in before waits for them. */
  if (agent_is_pid1()) {
    agent_boot_when_late_done(deferred_create, g_steal_pointer(&plan));
    return TRUE;
  }
  return create_container(plan, error);
}

/* ---- the other methods ---- */

gboolean agent_m_container_start(AgentCall *call, const KvContainerRef *p, KvEmpty *r,
                                 GError **error) {
  const char *cid = p->container_id;
  AgentContainer *ct = agent_container_lookup(cid, error);
  if (ct == NULL)
    return FALSE;
  if (ct->status != AGENT_CONTAINER_CREATED || ct->removing || ct->start_fd < 0 ||
      ct->init->pending != AGENT_PENDING_NONE) {
    g_set_error(
        error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s cannot be started: it is %s%s", cid,
        ct->status == AGENT_CONTAINER_CREATING ? "still being created" : status_names[ct->status],
        ct->removing ? " and being removed" : "");
    return FALSE;
  }
  /* The reply waits for execve (end of file on the status socket). */
  AgentProcess *init = ct->init;
  init->pending = AGENT_PENDING_START;
  init->pending_call = agent_call_defer(call);
  char go = 1;
  ssize_t n;
  do
    n = write(ct->start_fd, &go, 1);
  while (n < 0 && errno == EINTR);
  close(ct->start_fd);
  ct->start_fd = -1;
  if (n != 1) {
    agent_process_clear_pending(init);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s: its process is gone", cid);
    return FALSE;
  }
  /* The status socket may have hit end of file already if the process died
   * meanwhile; then nothing else will answer. */
  if (init->status_fd < 0) {
    agent_call_complete(init->pending_call, NULL, NULL);
    agent_process_clear_pending(init);
  }
  return TRUE;
}

gboolean agent_m_container_state(AgentCall *call, const KvContainerRef *p,
                                 KvContainerStateResult *r, GError **error) {
  AgentContainer *ct = agent_container_lookup(p->container_id, error);
  if (ct == NULL)
    return FALSE;
  container_state(ct, r);
  return TRUE;
}

gboolean agent_m_container_list(AgentCall *call, const KvEmpty *p, KvContainerListResult *r,
                                GError **error) {
  r->containers = g_ptr_array_new();
  if (containers == NULL)
    return TRUE;
  g_autoptr(GList) keys = g_hash_table_get_keys(containers);
  keys = g_list_sort(keys, (GCompareFunc)strcmp);
  for (GList *k = keys; k != NULL; k = k->next) {
    KvContainerStateResult *st = g_new0(KvContainerStateResult, 1);
    container_state(g_hash_table_lookup(containers, k->data), st);
    g_ptr_array_add(r->containers, st);
  }
  return TRUE;
}

gboolean agent_m_container_kill(AgentCall *call, const KvContainerKillParams *p, KvEmpty *r,
                                GError **error) {
  const char *cid = p->container_id;
  AgentContainer *ct = agent_container_lookup(cid, error);
  if (ct == NULL)
    return FALSE;
  int sig = (int)p->signal;
  if (sig > SIGRTMAX) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "container_kill: signal is %d; allowed are 1..%d", sig, SIGRTMAX);
    return FALSE;
  }
  if (ct->status == AGENT_CONTAINER_CREATING ||
      (ct->status == AGENT_CONTAINER_STOPPED && !p->all)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is not running (%s)", cid,
                ct->status == AGENT_CONTAINER_CREATING ? "being created" : "stopped");
    return FALSE;
  }
  if (p->all)
    return agent_cgroup_signal_all(ct->cgroup, sig, error);
  if (kill(ct->init->pid, sig) < 0 && errno != ESRCH) {
    int e = errno;
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "container %s: kill: %s", cid, g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

gboolean agent_m_container_remove(AgentCall *call, const KvContainerRemoveParams *p, KvEmpty *r,
                                  GError **error) {
  const char *cid = p->container_id;
  AgentContainer *ct = agent_container_lookup(cid, error);
  if (ct == NULL)
    return FALSE;
  if (ct->removing || ct->status == AGENT_CONTAINER_CREATING) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE, "container %s is %s", cid,
                ct->removing ? "being removed" : "still being created");
    return FALSE;
  }
  if (ct->status != AGENT_CONTAINER_STOPPED && !p->force) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_STATE,
                "container %s is %s: stop it first, or remove it with force", cid,
                status_names[ct->status]);
    return FALSE;
  }
  ct->removing = TRUE;
  agent_etcfiles_forget(cid);
  ct->remove_call = agent_call_defer(call);
  ct->remove_deadline = g_get_monotonic_time() + REMOVE_TIMEOUT_US;
  /* Also what a stopped container left behind: without a PID namespace
   * its execs outlive the main process. */
  if (ct->init->pid > 0 && !ct->init->exited)
    kill(ct->init->pid, SIGKILL);
  agent_cgroup_signal_all(ct->cgroup, SIGKILL, NULL);
  container_remove_progress(ct);
  return TRUE;
}

void agent_containers_conn_closed(KvConn *c) {
  if (containers == NULL)
    return;
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init(&it, containers);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    AgentContainer *ct = v;
    agent_process_drop_waiters(ct->init, c);
    GHashTableIter pit;
    gpointer pv;
    g_hash_table_iter_init(&pit, ct->execs);
    while (g_hash_table_iter_next(&pit, NULL, &pv)) {
      AgentProcess *p = pv;
      agent_process_drop_waiters(p, c);
      /* The host side went (its shim died): whoever exec'd this process is
       * gone with it, and a new shim cannot reattach its stdio. It must
       * not run on unowned; a container's main process does. */
      if (!p->exited && p->pid > 0) {
        agent_debug("channel closed: killing %s (pid %d)", p->label, (int)p->pid);
        kill(-p->pid, SIGKILL); /* its session's group (launch.c: setsid) */
        kill(p->pid, SIGKILL);
      }
    }
  }
}
