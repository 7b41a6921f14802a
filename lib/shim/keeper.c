/* lib/shim/keeper.c: the warm pool's keeper (docs/pool.md).
 *
 * One per state root, holding flock(ROOT/pool/keeper.lock) for as long as
 * it lives. It boots pooled VMs one at a time (two cores: parallel boots
 * only slow each other down) until ROOT/pool/vms holds the pool's size,
 * and boots another whenever one is taken (its directory moves to
 * ROOT/sandboxes). Each pooled shim inherits the read end of one pipe
 * whose write end only the keeper holds: when the keeper ends, however
 * (SIGTERM from `katavm pool rm`, SIGKILL, a crash), every VM still in the
 * pool sees EOF and destroys itself. Hence no signal handler here: the
 * default action of SIGTERM is the shutdown. */
#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "msg.h"
#include "pool.h"
#include "proto.h"
#include "sandbox-internal.h"

#define BACKOFF_MAX_S 60

static void keeper_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void keeper_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *m = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *ts = g_date_time_format(now, "%H:%M:%S.%f");
  fprintf(stderr, "%s keeper: %s\n", ts, m);
  fflush(stderr);
}

static guint count_vms(const char *vms) {
  guint n = 0;
  g_autoptr(GDir) d = g_dir_open(vms, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d)))
    n += kv_id_validate(name, NULL);
  return n;
}

static char *new_instance(void) {
  guint8 b[8];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
    for (gsize i = 0; i < sizeof b; i++)
      b[i] = (guint8)g_random_int();
  GString *s = g_string_new("p-");
  for (gsize i = 0; i < sizeof b; i++)
    g_string_append_printf(s, "%02x", b[i]);
  return g_string_free(s, FALSE);
}

/* Destroy a pooled VM that booted but cannot serve (waits for its end). */
static void kill_pooled(const KvPaths *p) {
  GMainContext *ctx = g_main_context_new();
  KvConn *c = kv_shim_connect(p, ctx, NULL);
  if (c) {
    g_autoptr(JsonObject) r =
        kv_conn_call_sync(c, kv_m_shim_destroy.name, NULL, KV_CALL_TIMEOUT_MS, NULL);
    kv_conn_close(c);
    kv_conn_unref(c);
  }
  while (g_main_context_iteration(ctx, FALSE))
    ;
  g_main_context_unref(ctx);
}

/* Remove the pooled VMs whose shim died (kill -9, a crash): what such a
 * shim left (its QEMU, virtiofsd, the uid claim, the state) goes through
 * `katavm-shim --cleanup --pooled`, then whatever files remain. A VM
 * whose shim runs but whose VM went off removes itself (lifecycle.c).
 * Called only between boots: the keeper boots one VM at a time, so a VM
 * without a shim here is never one that is still starting. A taker holds
 * the directory's lock while it adopts; such a VM is left alone. */
static void sweep_dead(const char *root, const char *shim, const char *vms) {
  g_autoptr(GDir) d = g_dir_open(vms, 0, NULL);
  g_autoptr(GPtrArray) dead = g_ptr_array_new_with_free_func(g_free);
  const char *name;
  while (d && (name = g_dir_read_name(d)))
    if (kv_id_validate(name, NULL) && !kv_pool_shim_running(name))
      g_ptr_array_add(dead, g_strdup(name));
  for (guint i = 0; i < dead->len; i++) {
    const char *inst = dead->pdata[i];
    g_autofree char *dir = g_build_filename(vms, inst, NULL);
    int lk = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lk < 0)
      continue; /* taken meanwhile */
    if (flock(lk, LOCK_EX | LOCK_NB) < 0 || kv_pool_shim_running(inst)) {
      close(lk);
      continue;
    }
    keeper_log("pooled VM %s has no shim: removing what it left", inst);
    const char *argv[] = {shim, "--cleanup", "--pooled", "--root", root, "--id", inst, NULL};
    g_autoptr(GError) e = NULL;
    gint status = 0;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                      &status, &e) ||
        !g_spawn_check_wait_status(status, &e))
      keeper_log("cleanup of %s: %s", inst, e->message);
    g_auto(KvPaths) p;
    kv_paths_init_dir(&p, root, dir, inst);
    g_clear_error(&e);
    if (!kv_rm_rf(p.run, &e) || !kv_rm_rf(p.dir, &e))
      keeper_log("cannot remove %s: %s", inst, e->message);
    close(lk);
  }
}

/* Plug every vCPU the pool allows and offline all but one in the guest:
 * a take then only onlines them (~0.1 s) instead of waiting for the
 * guest to see a plugged vCPU (~0.8 s under TCG). */
static gboolean preplug_vcpus(KvConn *c, guint max_vcpus, GError **error) {
  const guint steps[] = {max_vcpus, 1};
  for (gsize i = 0; max_vcpus > 1 && i < G_N_ELEMENTS(steps); i++) {
    KvHotplugParams hp = {.kind = KV_HOTPLUG_CPUS, .cpus = steps[i]};
    g_autoptr(JsonObject) o = kv_msg_encode(kv_m_shim_hotplug.params, &hp);
    g_autoptr(JsonObject) r =
        kv_conn_call_sync(c, kv_m_shim_hotplug.name, o, KV_CALL_TIMEOUT_MS, error);
    if (!r) {
      g_prefix_error(error, "plugging the pool's %u vCPUs: ", max_vcpus);
      return FALSE;
    }
  }
  return TRUE;
}

/* Not a timing limit: a late boot that never ends must not keep a VM out
 * of the pool (a container then waits for it in the guest as on a cold
 * boot). */
#define LATE_BOOT_GUARD_US (30 * G_USEC_PER_SEC)

/* Wait until the guest's late boot (modules, the shared file system) is
 * done: it runs on after agent-ready for about 0.3 s of vCPU under TCG,
 * and a take in that time had its first container wait for it
 * (docs/pool.md). */
static gboolean wait_late_boot(KvConn *c, const char *inst, GError **error) {
  gint64 deadline = g_get_monotonic_time() + LATE_BOOT_GUARD_US;
  for (;;) {
    g_autoptr(JsonObject) o = kv_msg_encode(kv_m_shim_agent_check.params, &(KvEmpty){0});
    g_autoptr(JsonObject) r =
        kv_conn_call_sync(c, kv_m_shim_agent_check.name, o, KV_CALL_TIMEOUT_MS, error);
    KvCheckResult cr;
    if (!r || !kv_result_decode(&kv_m_shim_agent_check, r, &cr, error)) {
      g_prefix_error(error, "waiting for the guest's late boot: ");
      return FALSE;
    }
    gboolean done = cr.late_boot_done;
    kv_msg_clear(kv_m_shim_agent_check.result, &cr);
    if (done)
      return TRUE;
    if (g_get_monotonic_time() > deadline) {
      keeper_log("the guest's late boot of %s is not done after %d s: ready all the same", inst,
                 (int)(LATE_BOOT_GUARD_US / G_USEC_PER_SEC));
      return TRUE;
    }
    g_usleep(20000);
  }
}

/* What a booted pooled VM needs before it is ready, over one connection
 * to its shim. */
static gboolean prepare_pooled(const KvPaths *p, guint max_vcpus, GError **error) {
  GMainContext *ctx = g_main_context_new();
  KvConn *c = kv_shim_connect(p, ctx, error);
  gboolean ok = c && preplug_vcpus(c, max_vcpus, error) && wait_late_boot(c, p->instance, error);
  if (c) {
    kv_conn_close(c);
    kv_conn_unref(c);
  }
  while (g_main_context_iteration(ctx, FALSE))
    ;
  g_main_context_unref(ctx);
  return ok;
}

/* Boot one pooled VM to agent-ready; it is "ready" once its shim said OK,
 * its vCPUs are plugged and the guest's late boot is done. */
static gboolean boot_one(const char *root, const char *shim, const KvSandboxConfig *tmpl,
                         int pool_rd, GError **error) {
  g_autofree char *inst = new_instance();
  g_autofree char *dir = g_build_filename(root, "pool", "vms", inst, NULL);
  g_auto(KvPaths) p;
  kv_paths_init_dir(&p, root, dir, inst);
  KvSandboxConfig c = *tmpl;
  c.id = inst;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *created = g_date_time_format_iso8601(now);
  c.created = created;
  if (mkdir(p.dir, 0700) < 0 || g_mkdir_with_parents(p.shared, 0700) < 0) {
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "cannot create %s: %s", p.dir, g_strerror(errno));
    kv_rm_rf(p.dir, NULL);
    return FALSE;
  }
  gboolean ok = kv_rm_rf(p.run, error) && g_mkdir_with_parents(p.run, 0700) == 0 &&
                kv_config_save(&c, p.config, error);
  int rd = -1;
  if (ok) {
    const char *argv[] = {shim, "--create", "--pooled", "--pool-fd",  "4", "--root",
                          root, "--id",     inst,       "--ready-fd", "3", NULL};
    ok = kv_shim_spawn_argv(argv, p.shim_log, pool_rd, &rd, error);
  }
  if (ok) {
    ok = kv_shim_wait_ready(rd, KV_BOOT_TIMEOUT_MS, error);
    close(rd);
  }
  if (ok && !prepare_pooled(&p, tmpl->max_vcpus, error)) {
    /* The shim runs: it destroys the VM and its state when asked. */
    kill_pooled(&p);
    return FALSE;
  }
  if (ok) {
    g_autofree char *ready = g_build_filename(p.dir, "ready", NULL);
    int fd = open(ready, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0)
      close(fd);
    keeper_log("pooled VM %s is ready", inst);
    return TRUE;
  }
  if (error && !*error)
    g_set_error(error, KV_ERROR, KATAVM_E_IO, "cannot prepare %s", p.dir);
  /* A shim that reported a failure removed its state; this covers one that
   * never started. */
  kv_rm_rf(p.run, NULL);
  kv_rm_rf(p.dir, NULL);
  return FALSE;
}

int keeper_main(const char *root, int ready_fd) {
  g_autoptr(GError) e = NULL;
  g_autofree char *lock = kv_pool_path(root, "keeper.lock");
  int lk = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lk < 0) {
    e = g_error_new(KV_ERROR, KATAVM_E_IO, "cannot open %s: %s", lock, g_strerror(errno));
    kv_shim_report(ready_fd, e, TRUE);
    return 1;
  }
  /* A probe of kv_pool_keeper_alive may hold it shared for an instant. */
  int tries = 0;
  while (flock(lk, LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK || ++tries > 40) {
      e = g_error_new(KV_ERROR, KATAVM_E_EXISTS, "a pool keeper already runs for %s", root);
      kv_shim_report(ready_fd, e, TRUE);
      return 1;
    }
    g_usleep(50000);
  }
  KvPoolShape shape;
  KvSandboxConfig tmpl;
  g_autofree char *tpath = kv_pool_path(root, "template.json");
  if (!kv_pool_shape_load(root, &shape, &e) || !kv_config_load(&tmpl, tpath, &e)) {
    kv_shim_report(ready_fd, e, TRUE);
    return 1;
  }
  g_autofree char *pidfile = kv_pool_path(root, "keeper.pid");
  g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
  g_autofree char *shim = g_file_read_link("/proc/self/exe", &e);
  int pp[2];
  if (!shim || !g_file_set_contents(pidfile, pid, -1, &e)) {
    kv_shim_report(ready_fd, e, TRUE);
    return 1;
  }
  if (pipe2(pp, O_CLOEXEC) < 0) {
    e = g_error_new(KV_ERROR, KATAVM_E_IO, "pipe: %s", g_strerror(errno));
    kv_shim_report(ready_fd, e, TRUE);
    return 1;
  }
  /* Above the fds a spawn rearranges (0-4). */
  int pool_rd = fcntl(pp[0], F_DUPFD_CLOEXEC, 10);
  close(pp[0]);
  keeper_log("keeping %u VM(s) of up to %u vCPUs and %u MiB", shape.size, shape.max_vcpus,
             shape.max_memory_mib);
  kv_shim_report(ready_fd, NULL, FALSE);
  g_autofree char *vms = kv_pool_path(root, "vms");
  guint backoff_s = 1;
  for (guint tick = 0;; tick++) {
    if (tick % 10 == 0)
      sweep_dead(root, shim, vms);
    if (count_vms(vms) >= shape.size) {
      g_usleep(100000);
      continue;
    }
    g_clear_error(&e);
    if (boot_one(root, shim, &tmpl, pool_rd, &e)) {
      backoff_s = 1;
      continue;
    }
    keeper_log("a pooled VM failed to boot (retrying in %u s): %s", backoff_s, e->message);
    g_usleep((gulong)backoff_s * G_USEC_PER_SEC);
    backoff_s = MIN(backoff_s * 2, BACKOFF_MAX_S);
  }
  /* not reached: pp[1] stays open for as long as the keeper lives */
  return 0;
}
