/* lib/shim/main.c: katavm-shim, the per-sandbox supervisor.
 *
 * One shim per sandbox owns the libvirt connection (for the embedded driver:
 * the one process allowed to hold the sandbox's root, with an event loop so
 * guest poweroff and device events are seen), the agent channel, and the
 * sandbox's state on disk. Clients (libkatavm in any process) talk to it over
 * a unix socket with the same framed protocol the agent speaks.
 *
 * Modes:
 *   --create   boot the VM, wait for the agent, report on --ready-fd, serve
 *   --recover  reattach to a running VM whose previous shim died, serve
 *   --cleanup  destroy the VM if any, remove all state, exit (with
 *              --pooled: of a pooled VM whose shim died, for the keeper)
 *   --create --pooled --pool-fd FD   boot a warm-pool VM (docs/pool.md):
 *              state in ROOT/pool/vms/ID; EOF on FD before an adopt
 *              destroys it
 *   --pool-keeper  the pool's keeper (keeper.c): no --id
 * On any failure before "ready" a create leaves nothing behind: no VM and no
 * state directory. A recover that fails leaves everything as it found it
 * (the VM may still run): `katavm sandbox rm -f` removes it.
 *
 * This file parses the arguments, wires the layers (state.h says which) and
 * runs the main loop. */
#include <fcntl.h>
#include <glib-unix.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>

#include "clients.h"
#include "keeper.h"
#include "sandbox-internal.h"

static gboolean on_term(gpointer user) {
  lifecycle_terminate(user);
  return G_SOURCE_CONTINUE;
}

static gboolean has_container(gpointer user, const char *cid) {
  return relay_has_container(user, cid);
}

int main(int argc, char **argv) {
  g_autofree char *root = NULL, *id = NULL;
  int ready_fd = -1, pool_fd = -1;
  gboolean m_create = FALSE, m_recover = FALSE, m_cleanup = FALSE, pooled = FALSE, keeper = FALSE;
  GOptionEntry entries[] = {
      {"create", 0, 0, G_OPTION_ARG_NONE, &m_create, "boot a new sandbox", NULL},
      {"recover", 0, 0, G_OPTION_ARG_NONE, &m_recover, "reattach to a running sandbox", NULL},
      {"cleanup", 0, 0, G_OPTION_ARG_NONE, &m_cleanup, "destroy and remove a sandbox", NULL},
      {"root", 0, 0, G_OPTION_ARG_FILENAME, &root, "state directory", "DIR"},
      {"id", 0, 0, G_OPTION_ARG_STRING, &id, "sandbox id", "ID"},
      {"ready-fd", 0, 0, G_OPTION_ARG_INT, &ready_fd, "report readiness here", "FD"},
      {"pooled", 0, 0, G_OPTION_ARG_NONE, &pooled, "a warm-pool VM (with --create)", NULL},
      {"pool-fd", 0, 0, G_OPTION_ARG_INT, &pool_fd, "the pool keeper's pipe", "FD"},
      {"pool-keeper", 0, 0, G_OPTION_ARG_NONE, &keeper, "keep the warm pool of --root", NULL},
      {NULL}};
  g_autoptr(GOptionContext) oc = g_option_context_new("- katavm per-sandbox supervisor");
  g_option_context_add_main_entries(oc, entries, NULL);
  g_autoptr(GError) e = NULL;
  gboolean parsed = g_option_context_parse(oc, &argc, &argv, &e);
  if (parsed && keeper && root && !id && !m_create && !m_recover && !m_cleanup) {
    signal(SIGPIPE, SIG_IGN);
    return keeper_main(root, ready_fd);
  }
  if (!parsed || !root || !id || (m_create + m_recover + m_cleanup) != 1 || keeper ||
      (pooled && !(m_create && pool_fd >= 0) && !m_cleanup)) {
    if (!e)
      e = g_error_new(KV_ERROR, KATAVM_E_INVALID,
                      "usage: katavm-shim --create|--recover|--cleanup --root DIR --id ID "
                      "[--pooled --pool-fd FD] | --pool-keeper --root DIR "
                      "(--cleanup takes --pooled too)");
    fprintf(stderr, "katavm-shim: %s\n", e->message);
    kv_shim_report(ready_fd, e, TRUE);
    return 2;
  }
  if (!kv_id_validate(id, &e)) {
    kv_shim_report(ready_fd, e, TRUE);
    return 2;
  }
  /* The keeper's pipe stays out of what the shim starts (virtiofsd). */
  if (pooled && pool_fd >= 0 && fcntl(pool_fd, F_SETFD, FD_CLOEXEC) < 0) {
    e = g_error_new(KV_ERROR, KATAVM_E_INVALID, "--pool-fd %d is not open", pool_fd);
    kv_shim_report(ready_fd, e, TRUE);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* The QEMU that libvirt daemonizes becomes our child, so that the shim
   * reaps it at once when it exits (lifecycle.c, child_reaper). */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  lifecycle_start_reaper();

  shim_ctx = g_main_context_new();
  g_main_context_push_thread_default(shim_ctx);
  Shim s;
  if (pooled)
    shim_init_pooled(&s, root, id);
  else
    shim_init(&s, root, id);
  KvShimStateResult old = {0}; /* recover: the previous shim's last state */
  gboolean have_old = FALSE;
  s.loop = g_main_loop_new(shim_ctx, FALSE);
  gboolean have_cfg = kv_config_load(&s.cfg, s.p.config, &e);
  /* Bottom up: each layer gets only what is below it. */
  Relay *rl = relay_new(&s);
  Hotplug *hp = hotplug_new(&s, has_container, rl);
  Vfsd *vf = vfsd_new(&s);
  Lifecycle *lc = lifecycle_new(&s, rl, hp, vf);
  Clients *cl = clients_new(&s, lc, rl, hp);

  /* SIGTERM/SIGINT destroy the sandbox cleanly, also while booting. */
  static const int term_signals[] = {SIGTERM, SIGINT};
  for (size_t i = 0; i < G_N_ELEMENTS(term_signals); i++) {
    GSource *src = g_unix_signal_source_new(term_signals[i]);
    g_source_set_callback(src, on_term, lc, NULL);
    g_source_attach(src, shim_ctx);
    g_source_unref(src);
  }
  int rc = 0;
  if (m_cleanup) {
    g_clear_error(&e);
    gboolean ok = lifecycle_cleanup(lc, &e);
    if (!ok)
      shim_log("cleanup failed: %s", e->message);
    kv_shim_report(ready_fd, ok ? NULL : e, TRUE);
    rc = ok ? 0 : 1;
    goto out;
  }
  if (have_cfg && m_recover) {
    /* What the previous shim had plugged is in its last state file. */
    g_autoptr(GError) le = NULL;
    have_old = shim_state_load(&s, &old, &le);
    if (have_old)
      hotplug_restore(hp, &old);
    else
      shim_log("previous state not taken over: %s", le->message);
  }
  KvAccel want;
  /* Create listens before it boots (a socket that cannot be made fails it
   * early, before there is a VM). Recover listens only once it has the VM
   * and the agent: until then the dead shim's socket refuses connections,
   * so a client waits on the sandbox's lock (held by whoever started this
   * shim) instead of in front of a shim that may yet fail. */
  gboolean ok = have_cfg && kv_accel_parse(s.cfg.accel, &want, &e) &&
                kv_accel_resolve(want, &s.accel, NULL, &e) && lifecycle_vmm_connect(lc, &e) &&
                (m_recover || clients_listen(cl, &e)) &&
                lifecycle_boot(lc, m_recover, have_old ? &old : NULL, &e) &&
                (!m_recover || clients_listen(cl, &e));
  if (!ok) {
    shim_log("%s failed: %s", m_recover ? "recover" : "create", e->message);
    lifecycle_boot_failed(lc, m_recover);
    kv_shim_report(ready_fd, e, TRUE);
    rc = 1;
    goto out;
  }
  kv_msg_clear(kv_m_shim_state.result, &old);
  if (pooled) {
    /* Watched from now on: a keeper that died during the boot is seen at
     * the first iteration. */
    lifecycle_pool_watch(lc, pool_fd);
  }
  kv_shim_report(ready_fd, NULL, FALSE);
  /* Starting libvirt's embedded driver (QEMU capabilities, domain XML
   * parsing) leaves most of the heap free: give it back to the host
   * before idling (bench/density, docs/performance.md). */
  malloc_trim(0);
  g_main_loop_run(s.loop);
  shim_log("exiting");
out:
  kv_msg_clear(kv_m_shim_state.result, &old);
  /* What lives as long as the process, freed so that a leak checker's
   * report at exit shows real leaks only. */
  clients_free(cl);
  lifecycle_free(lc);
  vfsd_free(vf);
  hotplug_free(hp);
  relay_free(rl);
  shim_clear(&s);
  return rc;
}
