/* lib/pool.c: the client side of the warm pool (docs/pool.md): start the
 * keeper, list and remove the pool, and take a ready pooled VM for
 * katavm_sandbox_create (sandbox.c). The keeper itself is
 * lib/shim/keeper.c; the files both use are in pool.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi.h"
#include "fields.h"
#include "pool.h"
#include "proto.h"
#include "sandbox-internal.h"
#include "vmm.h"

#define KEEPER_START_TIMEOUT_MS 30000
#define POOL_DRAIN_TIMEOUT_S 120

char *kv_pool_path(const char *root, const char *name) {
  return g_build_filename(root, "pool", name, NULL);
}

static const KvField shape_fields[] = {
    KV_FIELD(KvPoolShape, "size", KV_T_U32, KV_F_REQUIRED, size, .min = 1, .max = KV_POOL_SIZE_MAX),
    KV_FIELD(KvPoolShape, "max_vcpus", KV_T_U32, KV_F_REQUIRED, max_vcpus, .min = 1, .max = 256),
    KV_FIELD(KvPoolShape, "max_memory_mib", KV_T_U32, KV_F_REQUIRED, max_memory_mib,
             .min = KATAVM_MIN_MEMORY_MIB, .max = 1024 * 1024),
    {NULL}};
static const KvMsgDesc shape_desc = {"pool.json", sizeof(KvPoolShape), shape_fields};

gboolean kv_pool_shape_load(const char *root, KvPoolShape *out, GError **error) {
  g_autofree char *path = kv_pool_path(root, "pool.json");
  g_autoptr(JsonObject) o = kv_json_file_load(path, error);
  if (!o)
    return FALSE;
  g_autoptr(GError) e = NULL;
  if (!kv_msg_decode(&shape_desc, o, out, &e)) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s: %s", path, e->message);
    return FALSE;
  }
  return TRUE;
}

gboolean kv_pool_shape_save(const char *root, const KvPoolShape *s, GError **error) {
  g_autofree char *path = kv_pool_path(root, "pool.json");
  g_autoptr(JsonObject) o = kv_msg_encode(&shape_desc, s);
  return kv_json_file_save(o, path, error);
}

gboolean kv_pool_keeper_alive(const char *root) {
  g_autofree char *path = kv_pool_path(root, "keeper.lock");
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  gboolean alive = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
  close(fd);
  return alive;
}

static pid_t keeper_pid(const char *root) {
  g_autofree char *path = kv_pool_path(root, "keeper.pid");
  g_autofree char *s = NULL;
  if (!g_file_get_contents(path, &s, NULL, NULL))
    return 0;
  gint64 v = g_ascii_strtoll(s, NULL, 10);
  return v > 1 && v <= G_MAXINT ? (pid_t)v : 0;
}

gboolean kv_pool_shim_running(const char *inst) {
  g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    if (!g_ascii_isdigit(name[0]))
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%s/cmdline", name);
    g_autofree char *cmd = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &cmd, &len, NULL) || !strstr(cmd, "katavm-shim"))
      continue;
    gboolean pooled = FALSE, inst_seen = FALSE;
    for (gsize off = 0; off < len; off += strlen(cmd + off) + 1) {
      pooled |= !strcmp(cmd + off, "--pooled");
      inst_seen |= !strcmp(cmd + off, inst);
    }
    if (pooled && inst_seen)
      return TRUE;
  }
  return FALSE;
}

/* The instance ids in ROOT/pool/vms, sorted. */
static GPtrArray *pool_vms(const char *root) {
  GPtrArray *v = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *dir = kv_pool_path(root, "vms");
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d)))
    if (kv_id_validate(name, NULL))
      g_ptr_array_add(v, g_strdup(name));
  g_ptr_array_sort(v, (GCompareFunc)(void (*)(void))g_strcmp0);
  return v;
}

static gboolean vm_ready(const char *root, const char *inst) {
  g_autofree char *path = g_build_filename(root, "pool", "vms", inst, "ready", NULL);
  return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* ---- remove ---- */

/* Stop the keeper, wait for every pooled VM to destroy itself (its shim
 * sees the keeper's pipe close), remove what a dead shim left, then
 * ROOT/pool. */
static gboolean pool_drain(const char *root, GError **error) {
  g_autofree char *pool = kv_pool_path(root, NULL);
  if (!g_file_test(pool, G_FILE_TEST_EXISTS))
    return TRUE;
  if (kv_pool_keeper_alive(root)) {
    pid_t pid = keeper_pid(root);
    if (pid > 0)
      kill(pid, SIGTERM);
    for (int i = 0; i < 300 && kv_pool_keeper_alive(root); i++)
      g_usleep(100000);
    if (kv_pool_keeper_alive(root)) {
      g_set_error(error, KV_ERROR, KATAVM_E_TIMEOUT,
                  "the pool keeper of %s (pid %d) did not stop within 30 s", root, (int)pid);
      return FALSE;
    }
  }
  gint64 deadline = g_get_monotonic_time() + POOL_DRAIN_TIMEOUT_S * G_USEC_PER_SEC;
  for (;;) {
    g_autoptr(GPtrArray) vms = pool_vms(root);
    guint alive = 0;
    const char *waiting = NULL;
    for (guint i = 0; i < vms->len; i++) {
      const char *inst = vms->pdata[i];
      if (kv_pool_shim_running(inst)) {
        alive++;
        waiting = inst;
        continue;
      }
      /* No shim: the keeper died before starting it, or the shim exited
       * mid-way. Its VM, if any, went with a shim that cleaned up; what
       * is left are files. */
      g_autofree char *dir = g_build_filename(root, "pool", "vms", inst, NULL);
      g_auto(KvPaths) p;
      kv_paths_init_dir(&p, root, dir, inst);
      if (!kv_rm_rf(p.run, error) || !kv_rm_rf(p.dir, error))
        return FALSE;
    }
    if (alive == 0)
      break;
    if (g_get_monotonic_time() > deadline) {
      g_set_error(error, KV_ERROR, KATAVM_E_TIMEOUT,
                  "pooled VM %s (and %u more) did not go within %d s after the keeper stopped",
                  waiting, alive - 1, POOL_DRAIN_TIMEOUT_S);
      return FALSE;
    }
    g_usleep(100000);
  }
  return kv_rm_rf(pool, error);
}

int katavm_pool_remove(katavm_runtime *rt, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  g_autoptr(GError) e = NULL;
  return pool_drain(rt->root, &e) ? 0 : kv_error_propagate(err, e);
}

/* ---- start ---- */

static gboolean is_regular(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static guint64 mem_available_mib(void) {
  g_autofree char *s = NULL;
  if (!g_file_get_contents("/proc/meminfo", &s, NULL, NULL))
    return 0;
  const char *l = strstr(s, "MemAvailable:");
  return l ? g_ascii_strtoull(l + strlen("MemAvailable:"), NULL, 10) / 1024 : 0;
}

int katavm_pool_start(katavm_runtime *rt, const katavm_pool_config *cfg, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  katavm_pool_config c = {.struct_size = sizeof c};
  if (cfg) {
    int rc = kv_abi_copy_in(KV_ABI_POOL_CONFIG, cfg, &c, sizeof c, err);
    if (rc < 0)
      return rc;
  }
  KvPoolShape shape = {
      .size = c.size ? c.size : 1,
      .max_vcpus = c.max_vcpus ? c.max_vcpus : 2,
      .max_memory_mib = c.max_memory_mib ? c.max_memory_mib : 1024,
  };
  if (shape.size > KV_POOL_SIZE_MAX)
    return kv_error_set(err, KATAVM_E_INVALID, "pool size %u is more than %u", shape.size,
                        KV_POOL_SIZE_MAX);
  if (shape.max_vcpus > 256)
    return kv_error_set(err, KATAVM_E_INVALID, "at most 256 vCPUs are supported (asked %u)",
                        shape.max_vcpus);
  if (shape.max_memory_mib < rt->memory_mib)
    return kv_error_set(err, KATAVM_E_INVALID,
                        "pool max memory %u MiB is below the boot memory of %u MiB",
                        shape.max_memory_mib, rt->memory_mib);
  if (shape.max_memory_mib > 1024 * 1024)
    return kv_error_set(err, KATAVM_E_INVALID, "pool max memory %u MiB is more than 1 TiB",
                        shape.max_memory_mib);
  guint64 need = (guint64)shape.size * (shape.max_memory_mib + KV_POOL_QEMU_OVERHEAD_MIB);
  guint64 avail = mem_available_mib();
  if (need > avail)
    return kv_error_set(err, KATAVM_E_INVALID,
                        "a pool of %u VMs of up to %u MiB needs %" G_GUINT64_FORMAT
                        " MiB (with %u MiB of QEMU overhead each), more than the %" G_GUINT64_FORMAT
                        " MiB the host has available (MemAvailable)",
                        shape.size, shape.max_memory_mib, need, KV_POOL_QEMU_OVERHEAD_MIB, avail);
  if (!is_regular(rt->kernel))
    return kv_error_set(err, KATAVM_E_NOT_FOUND,
                        "guest kernel %s not found (build it with `katavm image build`)",
                        rt->kernel);
  if (!is_regular(rt->initrd))
    return kv_error_set(err, KATAVM_E_NOT_FOUND,
                        "guest initrd %s not found (build it with `katavm image build`)",
                        rt->initrd);
  if (access(rt->shim, X_OK) < 0)
    return kv_error_set(err, KATAVM_E_NOT_FOUND, "shim %s is not an executable", rt->shim);
  g_autoptr(GError) e = NULL;
  KvAccel want, accel;
  if (!kv_accel_parse(rt->accel, &want, &e) || !kv_accel_resolve(want, &accel, NULL, &e))
    return kv_error_propagate(err, e);
  const char *shared_fs = kv_shared_fs_resolve(rt, NULL, &e);
  if (!shared_fs)
    return kv_error_propagate(err, e);
  if (!kv_root_check(rt->root, &e))
    return kv_error_propagate(err, e);

  g_autofree char *pool = kv_pool_path(rt->root, NULL);
  if (kv_pool_keeper_alive(rt->root))
    return kv_error_set(err, KATAVM_E_EXISTS, "a pool keeper already runs for %s (pid %d)",
                        rt->root, (int)keeper_pid(rt->root));
  /* What a keeper that was killed left (its VMs go by themselves). Only
   * a pool's own files say there is one: ROOT/pool may be anything. */
  g_autofree char *shape_file = kv_pool_path(rt->root, "pool.json");
  g_autofree char *vms = kv_pool_path(rt->root, "vms");
  if ((g_file_test(shape_file, G_FILE_TEST_EXISTS) || g_file_test(vms, G_FILE_TEST_IS_DIR)) &&
      !pool_drain(rt->root, &e))
    return kv_error_propagate(err, e);
  /* A root that is not there yet is made, as a sandbox create makes it. */
  if (g_mkdir_with_parents(rt->root, 0700) < 0)
    return kv_error_set(err, KATAVM_E_IO, "cannot create the runtime root %s: %s", rt->root,
                        g_strerror(errno));
  gboolean made = TRUE;
  if (mkdir(pool, 0700) < 0) {
    made = FALSE;
    int en = errno;
    struct stat st;
    if (en == EEXIST && (lstat(pool, &st) < 0 || !S_ISDIR(st.st_mode)))
      return kv_error_set(err, KATAVM_E_IO, "cannot create the pool directory %s: %s", pool,
                          "it exists and is not a directory");
    if (en != EEXIST)
      return kv_error_set(err, KATAVM_E_IO, "cannot create the pool directory %s: %s", pool,
                          g_strerror(en));
  }
  /* From here on a failure removes what this call made: ROOT/pool if it
   * made it, else the pool's files in it. */
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *created = g_date_time_format_iso8601(now);
  KvSandboxConfig t = {
      .id = "template",
      .uri = rt->uri,
      .accel = (char *)kv_accel_name(accel),
      .kernel = rt->kernel,
      .initrd = rt->initrd,
      .vcpus = 1,
      .max_vcpus = shape.max_vcpus,
      .memory_mib = rt->memory_mib,
      .max_memory_mib = shape.max_memory_mib,
      .memory_hotplug = rt->memory_hotplug,
      .shared_fs = (char *)shared_fs,
      .virtiofsd = rt->virtiofsd,
      .virtiofs_cache = rt->virtiofs_cache,
      .tb_cache_mib = rt->tb_cache_mib,
      .virtiofs_timeout_ms = rt->virtiofs_timeout_ms,
      .net = "none",
      .created = created,
  };
  g_autofree char *tpath = kv_pool_path(rt->root, "template.json");
  g_autofree char *log = kv_pool_path(rt->root, "keeper.log");
  gboolean ok = TRUE;
  if (mkdir(vms, 0700) < 0 && errno != EEXIST) {
    int en = errno;
    e = g_error_new(KV_ERROR, KATAVM_E_IO, "cannot create %s: %s", vms, g_strerror(en));
    ok = FALSE;
  }
  if (ok && (!kv_pool_shape_save(rt->root, &shape, &e) || !kv_config_save(&t, tpath, &e))) {
    g_prefix_error(&e, "cannot write the pool directory %s: ", pool);
    e->domain = KV_ERROR;
    e->code = KATAVM_E_IO;
    ok = FALSE;
  }
  int rd = -1;
  if (ok) {
    const char *argv[] = {rt->shim, "--pool-keeper", "--root", rt->root, "--ready-fd", "3", NULL};
    ok = kv_shim_spawn_argv(argv, log, -1, &rd, &e);
  }
  if (ok) {
    ok = kv_shim_wait_ready(rd, KEEPER_START_TIMEOUT_MS, &e);
    close(rd);
    if (!ok && g_error_matches(e, KV_ERROR, KATAVM_E_EXISTS))
      return kv_error_propagate(err, e); /* another keeper's directory */
  }
  if (!ok) {
    int code = kv_error_propagate(err, e);
    if (made) {
      kv_rm_rf(pool, NULL);
    } else {
      static const char *const files[] = {"pool.json", "template.json", "keeper.lock", "keeper.pid",
                                          "keeper.log"};
      for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *f = kv_pool_path(rt->root, files[i]);
        unlink(f);
      }
      rmdir(vms);
    }
    return code;
  }
  return 0;
}

/* ---- list ---- */

int katavm_pool_list(katavm_runtime *rt, char **json_out, katavm_error **err) {
  if (!rt || !json_out)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime and json_out must not be NULL");
  g_autoptr(JsonObject) o = json_object_new();
  gboolean running = kv_pool_keeper_alive(rt->root);
  json_object_set_boolean_member(o, "running", running);
  KvPoolShape shape;
  if (kv_pool_shape_load(rt->root, &shape, NULL)) {
    json_object_set_int_member(o, "size", shape.size);
    json_object_set_int_member(o, "max_vcpus", shape.max_vcpus);
    json_object_set_int_member(o, "max_memory_mib", shape.max_memory_mib);
  }
  if (running)
    json_object_set_int_member(o, "keeper_pid", keeper_pid(rt->root));
  JsonArray *a = json_array_new();
  g_autoptr(GPtrArray) vms = pool_vms(rt->root);
  for (guint i = 0; i < vms->len; i++) {
    JsonObject *vm = json_object_new();
    json_object_set_string_member(vm, "instance", vms->pdata[i]);
    json_object_set_boolean_member(vm, "ready", vm_ready(rt->root, vms->pdata[i]));
    json_array_add_object_element(a, vm);
  }
  json_object_set_array_member(o, "vms", a);
  g_autofree char *s = kv_json_to_string(o);
  *json_out = strdup(s);
  return 0;
}

/* ---- take (katavm_sandbox_create) ---- */

static gboolean fits(const KvSandboxConfig *w, const KvSandboxConfig *t) {
  return w->vcpus <= t->max_vcpus && w->max_vcpus <= t->max_vcpus &&
         w->memory_mib >= t->memory_mib && w->memory_mib <= t->max_memory_mib &&
         w->max_memory_mib <= t->max_memory_mib &&
         /* No network, a netns (tcfilter taps are made at the take) or
          * user mode (QEMU's NIC and its forwards are added at the take,
          * as after a cold boot). */
         (!w->net || !strcmp(w->net, "none") || !strcmp(w->net, "user") ||
          (w->netns && !strcmp(w->net, "tcfilter"))) &&
         (!(w->publish && w->publish[0]) || (w->net && !strcmp(w->net, "user"))) &&
         !g_strcmp0(w->uri, t->uri) && !g_strcmp0(w->accel, t->accel) &&
         !g_strcmp0(w->kernel, t->kernel) && !g_strcmp0(w->initrd, t->initrd) &&
         !g_strcmp0(w->memory_hotplug ? w->memory_hotplug : "auto", t->memory_hotplug) &&
         !g_strcmp0(w->shared_fs, t->shared_fs) && !g_strcmp0(w->virtiofsd, t->virtiofsd) &&
         !g_strcmp0(w->virtiofs_cache, t->virtiofs_cache) &&
         w->virtiofs_timeout_ms == t->virtiofs_timeout_ms && w->tb_cache_mib == t->tb_cache_mib;
}

/* The adopt of `inst` as `id` got as far as the move: ROOT/sandboxes/ID
 * is that VM now. */
static gboolean adopted(const char *root, const char *inst, const char *id) {
  g_autofree char *path = g_build_filename(root, "sandboxes", id, "instance", NULL);
  g_autofree char *text = NULL;
  return g_file_get_contents(path, &text, NULL, NULL) && !strcmp(text, inst);
}

/* Adopt pooled VM `inst` as sandbox `id` (with want's network namespace,
 * or its user-mode networking and published ports, or none): 1 = done, 0 = not this VM (try
 * another), -1 = an error of the request (*error), 2 = sandbox `id` exists but the adopt failed
 * after the move: the caller destroys it. */
static int adopt(const char *root, const char *inst, const char *id, const KvSandboxConfig *want,
                 GError **error) {
  const char *netns = want->netns;
  gboolean user = want->net && !strcmp(want->net, "user");
  g_autofree char *dir = g_build_filename(root, "pool", "vms", inst, NULL);
  /* One taker per VM: the others skip it. The lock is on the directory,
   * which moves with its new name; it ends with this function. */
  int lk = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (lk < 0)
    return 0;
  if (flock(lk, LOCK_EX | LOCK_NB) < 0 || !vm_ready(root, inst)) {
    close(lk);
    return 0;
  }
  g_auto(KvPaths) p;
  kv_paths_init_dir(&p, root, dir, inst);
  GMainContext *ctx = g_main_context_new();
  g_autoptr(GError) e = NULL;
  int rc = 0;
  KvConn *c = kv_shim_connect(&p, ctx, &e);
  /* The namespace as this process sees it: the shim's mount namespace may
   * not (podman under `ip netns exec` mounts it in its own). */
  int nsfd = -1;
  if (c && netns && (nsfd = open(netns, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0) {
    int en = errno;
    g_set_error(&e, KV_ERROR, en == ENOENT ? KATAVM_E_NOT_FOUND : KATAVM_E_IO,
                "network namespace %s: %s", netns,
                en == ENOENT ? "does not exist" : g_strerror(en));
    rc = -1;
  } else if (c && nsfd >= 0 && !kv_conn_attach_fds(c, &nsfd, 1, &e)) {
    rc = 0;
  } else if (c) {
    KvAdoptParams ap = {.id = (char *)id,
                        .netns = (char *)netns,
                        .netns_fd = nsfd >= 0,
                        .net = user ? "user" : NULL,
                        .publish = user ? want->publish : NULL};
    g_autoptr(JsonObject) o = kv_msg_encode(kv_m_shim_adopt.params, &ap);
    g_autoptr(JsonObject) r = kv_conn_call_sync(c, kv_m_shim_adopt.name, o, KV_CALL_TIMEOUT_MS, &e);
    int code = r ? 0 : kv_error_code_of(e);
    if (r)
      rc = 1;
    else if (adopted(root, inst, id))
      rc = 2;
    else if (code == KATAVM_E_EXISTS ||
             ((netns || user) && (code == KATAVM_E_NOT_FOUND || code == KATAVM_E_INVALID)))
      rc = -1; /* the id is taken, the namespace is not one to use, or a
                * published port is malformed */
  }
  if (nsfd >= 0)
    close(nsfd);
  if (c) {
    kv_conn_close(c);
    kv_conn_unref(c);
  }
  while (g_main_context_iteration(ctx, FALSE))
    ;
  g_main_context_unref(ctx);
  close(lk);
  if (rc < 0 && kv_error_code_of(e) == KATAVM_E_EXISTS)
    g_set_error(error, KV_ERROR, KATAVM_E_EXISTS, "a sandbox with id '%s' already exists", id);
  else if (rc < 0)
    g_propagate_error(error, g_steal_pointer(&e));
  return rc;
}

/* This process sees the mounts the keeper (and so its pooled shims and
 * virtiofsd) sees. A pooled VM's shim resolves a container's rootfs and
 * volumes in its own mount namespace, so a caller in another one (podman
 * under `ip netns exec` mounts its overlays in a namespace of its own)
 * must boot cold: its rootfs would not be there. */
static gboolean same_mount_ns(const char *root) {
  pid_t pid = keeper_pid(root);
  g_autofree char *theirs = g_strdup_printf("/proc/%d/ns/mnt", (int)pid);
  struct stat a, b;
  return pid > 0 && stat("/proc/self/ns/mnt", &a) == 0 && stat(theirs, &b) == 0 &&
         a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int kv_pool_take(const char *root, const KvSandboxConfig *want, const char *id, guint *boot_mib,
                 GError **error) {
  g_autofree char *tpath = kv_pool_path(root, "template.json");
  if (!g_file_test(tpath, G_FILE_TEST_EXISTS) || !kv_pool_keeper_alive(root) ||
      !same_mount_ns(root))
    return 0;
  KvSandboxConfig t;
  if (!kv_config_load(&t, tpath, NULL))
    return 0;
  gboolean ok = fits(want, &t);
  *boot_mib = t.memory_mib;
  kv_config_clear(&t);
  if (!ok)
    return 0;
  g_autoptr(GPtrArray) vms = pool_vms(root);
  for (guint i = 0; i < vms->len; i++) {
    int rc = adopt(root, vms->pdata[i], id, want, error);
    if (rc != 0)
      return rc;
  }
  return 0;
}
