/* lib/shim/hotplug.c: live changes to a running sandbox.
 *
 * Each hotplug kind is an asynchronous chain of steps on the shim's one
 * main loop: the host side through lib/vmm (synchronous libvirt calls),
 * then a call to the agent (kv_call) whose reply callback runs the next
 * step: online CPUs, see the memory (polled on a timer until MemTotal
 * moved), configure the NIC, find and mount the disk. The reply to the
 * client goes out only once the guest reports the resource usable. A
 * failed step runs the chain's rollback, which undoes the host side done
 * so far, so a failed hotplug leaves the sandbox as it was.
 *
 * One hotplug runs at a time per sandbox; another request meanwhile is
 * refused with KV_E_STATE ("another hotplug is in progress"), as before:
 * a client that wants several queues them itself. A stop or destroy
 * meanwhile aborts the one under way at once (hotplug_abort: its client
 * gets KV_E_STATE) and goes on; the agent's late reply is then dropped.
 * An aborted chain does not roll back: the VM is going off, unplugging
 * would only wait on a guest that shuts down (libvirt waits up to 10 s per
 * device), and nothing of an unfinished hotplug is in state.json. */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hotplug.h"
#include "jail.h"

#define AGENT_HOTPLUG_TIMEOUT_MS 60000
#define MEMORY_SETTLE_TIMEOUT_US (90 * G_USEC_PER_SEC)
#define MEMORY_POLL_MS 100
#define MEM_BLOCK_MIB 2

typedef struct _Op Op;

struct _Hotplug {
  Shim *s;
  HotplugContainerFunc has_container;
  gpointer has_container_user;
  GPtrArray *nics;  /* KvNicInfo* attached at runtime */
  GPtrArray *disks; /* KvDiskInfo* attached at runtime */
  guint cpus_online;
  guint mem_requested_mib; /* memory above boot memory (virtio-mem or DIMMs) */
  gboolean memory_dimm;    /* hotplug by ACPI DIMMs instead of virtio-mem */
  GArray *dimm_sizes;      /* MiB of each attached DIMM, in plug order */
  Op *cur;                 /* the hotplug under way */
  Net *net;                /* the netns's interfaces, made at boot (net.c) */
};

/* The next step of a chain: the agent's reply to the call it made (result
 * NULL and error set when the call failed). */
typedef void (*OpStep)(Op *op, JsonObject *result, const GError *error);

struct _Op {
  Hotplug *h;
  Waiter *w;
  KvHotplugParams req;
  KvHotplugResult res;
  gint64 t0;
  gboolean calling;         /* a call to the agent is in flight */
  gboolean aborted;         /* hotplug_abort: the reply callback frees us */
  OpStep next;              /* runs with the reply of that call */
  const KvMethod *method;   /* ... whose result it decodes */
  void (*rollback)(Op *op); /* undoes the host side done so far */
  GSource *timer;           /* memory: the next MemTotal poll */
  /* what the steps carry on */
  char *mac, *serial;
  guint old_req, new_req, dimms_before;
  gint64 want, before_kib, expect_kib, deadline;
};

static void nic_free(gpointer p) {
  KvNicInfo *n = p;
  g_free(n->mac);
  g_free(n->tap);
  g_free(n->ifname);
  g_free(n);
}

static void disk_free(gpointer p) {
  KvDiskInfo *d = p;
  g_free(d->path);
  g_free(d->serial);
  g_free(d->device);
  g_free(d->container);
  g_free(d);
}

/* ---- the state it persists ---- */

static void describe(gpointer user, KvShimStateResult *o) {
  Hotplug *h = user;
  o->memory_hotplug = g_strdup(h->memory_dimm ? "dimm" : "virtio-mem");
  o->dimms_mib = g_array_new(FALSE, FALSE, sizeof(gint64));
  for (guint i = 0; i < h->dimm_sizes->len; i++) {
    gint64 v = g_array_index(h->dimm_sizes, guint, i);
    g_array_append_val(o->dimms_mib, v);
  }
  o->cpus_online = h->cpus_online;
  o->memory_hotplugged_mib = h->mem_requested_mib;
  /* Elements as kv_msg_clear frees them. */
  o->nics = g_ptr_array_new();
  for (guint i = 0; i < h->nics->len; i++) {
    KvNicInfo *n = h->nics->pdata[i], *c = g_new0(KvNicInfo, 1);
    c->mac = g_strdup(n->mac);
    c->tap = g_strdup(n->tap);
    c->ifname = g_strdup(n->ifname);
    g_ptr_array_add(o->nics, c);
  }
  o->disks = g_ptr_array_new();
  for (guint i = 0; i < h->disks->len; i++) {
    KvDiskInfo *d = h->disks->pdata[i], *c = g_new0(KvDiskInfo, 1);
    c->path = g_strdup(d->path);
    c->serial = g_strdup(d->serial);
    c->device = g_strdup(d->device);
    /* A plugged disk's container may be gone: it is mounted nowhere then. */
    if (d->container && (!d->plugged || h->has_container(h->has_container_user, d->container)))
      c->container = g_strdup(d->container);
    c->plugged = d->plugged;
    g_ptr_array_add(o->disks, c);
  }
}

Hotplug *hotplug_new(Shim *s, HotplugContainerFunc has_container, gpointer user) {
  Hotplug *h = g_new0(Hotplug, 1);
  h->s = s;
  h->has_container = has_container;
  h->has_container_user = user;
  h->dimm_sizes = g_array_new(FALSE, FALSE, sizeof(guint));
  h->nics = g_ptr_array_new_with_free_func(nic_free);
  h->disks = g_ptr_array_new_with_free_func(disk_free);
  h->cpus_online = s->cfg.vcpus;
  shim_add_describer(s, describe, h);
  h->net = net_new(s);
  return h;
}

static void op_free(Op *op);

void hotplug_release_disks(Hotplug *h) {
  for (guint i = 0; i < h->disks->len; i++)
    jail_revoke_file(h->s, ((KvDiskInfo *)h->disks->pdata[i])->path);
}

void hotplug_free(Hotplug *h) {
  if (!h)
    return;
  hotplug_abort(h, "the shim is exiting");
  g_array_unref(h->dimm_sizes);
  g_ptr_array_unref(h->nics);
  g_ptr_array_unref(h->disks);
  net_free(h->net);
  g_free(h);
}

Net *hotplug_net(Hotplug *h) {
  return h->net;
}

/* Does this host's QEMU have the virtio-mem device? (No libvirt API tells
 * QEMU's device list; asking QEMU takes about 30 ms, and only sandboxes
 * that reserve memory for hotplug ask.) */
static gboolean qemu_has_virtio_mem(void) {
  g_autofree char *qemu = g_find_program_in_path("qemu-system-x86_64");
  if (!qemu)
    return FALSE;
  const char *argv[] = {qemu,      "-nodefaults",         "-machine", "none",
                        "-device", "virtio-mem-pci,help", NULL};
  g_autofree char *out = NULL, *err = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, NULL, NULL))
    return FALSE;
  return (out && strstr(out, "requested-size")) || (err && strstr(err, "requested-size"));
}

void hotplug_choose_memory(Hotplug *h) {
  const KvSandboxConfig *cfg = &h->s->cfg;
  const char *mode = cfg->memory_hotplug ? cfg->memory_hotplug : "auto";
  if (cfg->max_memory_mib <= cfg->memory_mib)
    h->memory_dimm = FALSE;
  else if (!strcmp(mode, "dimm"))
    h->memory_dimm = TRUE;
  else if (!strcmp(mode, "virtio-mem"))
    h->memory_dimm = FALSE;
  else
    h->memory_dimm = !qemu_has_virtio_mem();
}

gboolean hotplug_memory_dimm(Hotplug *h) {
  return h->memory_dimm;
}

void hotplug_restore(Hotplug *h, const KvShimStateResult *st) {
  const KvSandboxConfig *cfg = &h->s->cfg;
  h->memory_dimm = !g_strcmp0(st->memory_hotplug, "dimm");
  for (guint i = 0; st->dimms_mib && i < st->dimms_mib->len; i++) {
    gint64 v = g_array_index(st->dimms_mib, gint64, i);
    if (v > 0 && v <= cfg->max_memory_mib) {
      guint u = (guint)v;
      g_array_append_val(h->dimm_sizes, u);
    }
  }
  if (st->cpus_online >= 1 && st->cpus_online <= cfg->max_vcpus)
    h->cpus_online = (guint)st->cpus_online;
  gint64 mem = st->memory_hotplugged_mib;
  if (mem >= 0 && mem <= (gint64)cfg->max_memory_mib - cfg->memory_mib)
    h->mem_requested_mib = (guint)mem;
  for (guint i = 0; st->nics && i < st->nics->len; i++) {
    const KvNicInfo *n = st->nics->pdata[i];
    KvNicInfo *c = g_new0(KvNicInfo, 1);
    c->mac = g_strdup(n->mac);
    c->tap = g_strdup(n->tap);
    c->ifname = g_strdup(n->ifname);
    g_ptr_array_add(h->nics, c);
  }
  for (guint i = 0; st->disks && i < st->disks->len; i++) {
    const KvDiskInfo *d = st->disks->pdata[i];
    KvDiskInfo *c = g_new0(KvDiskInfo, 1);
    c->path = g_strdup(d->path);
    c->serial = g_strdup(d->serial);
    c->device = g_strdup(d->device);
    c->container = g_strdup(d->container);
    /* States from before the field: a disk mounted nowhere was plugged. */
    c->plugged = d->plugged || !d->container;
    g_ptr_array_add(h->disks, c);
  }
  net_restore(h->net, st);
}

/* ---- the chain ---- */

static void op_free(Op *op) {
  if (op->timer)
    shim_timer_clear(&op->timer);
  waiter_free(op->w);
  kv_msg_clear(kv_m_shim_hotplug.params, &op->req);
  kv_msg_clear(kv_m_shim_hotplug.result, &op->res);
  g_free(op->mac);
  g_free(op->serial);
  g_free(op);
}

/* The chain ends with error e (taken): undo, answer, forget. */
static void op_fail(Op *op, GError *e) {
  Hotplug *h = op->h;
  if (op->rollback)
    op->rollback(op);
  shim_log("hotplug %s failed: %s", op->req.kind, e->message);
  shim_reply_error(op->w->conn, op->w->id, e);
  g_error_free(e);
  if (h->cur == op)
    h->cur = NULL;
  op_free(op);
}

static void op_done(Op *op) {
  Hotplug *h = op->h;
  op->res.elapsed_us = g_get_monotonic_time() - op->t0;
  shim_log("hotplug %s done in %.0f ms", op->req.kind, op->res.elapsed_us / 1000.0);
  shim_state_save(h->s);
  kv_reply(op->w->conn, op->w->id, &kv_m_shim_hotplug, &op->res);
  if (h->cur == op)
    h->cur = NULL;
  op_free(op);
}

static void op_on_reply(KvConn *agent, JsonObject *result, const GError *error, gpointer user) {
  Op *op = user;
  op->calling = FALSE;
  if (op->aborted) {
    op_free(op); /* already answered */
    return;
  }
  op->next(op, result, error);
}

/* Ask the agent m(params); next runs with its reply. An agent that is not
 * there gives next the error at once. */
static void op_call(Op *op, const KvMethod *m, gconstpointer params, OpStep next) {
  g_autoptr(GError) e = NULL;
  op->next = next;
  op->method = m;
  if (!shim_agent_usable(op->h->s, &e)) {
    next(op, NULL, e);
    return;
  }
  op->calling = TRUE;
  kv_call(op->h->s->agent, m, params, AGENT_HOTPLUG_TIMEOUT_MS, op_on_reply, op);
}

/* The usual start of a step: FALSE (and the chain failed) when the call
 * failed or its result breaks the contract; else `out` holds the result. */
static gboolean op_result(Op *op, JsonObject *result, const GError *error, gpointer out) {
  if (!result) {
    /* Ours (the agent is not connected) as it is; the agent's, mapped. */
    op_fail(op, error->domain == KV_ERROR_DOMAIN ? g_error_copy(error)
                                                 : shim_agent_error(error, "guest: ", TRUE));
    return FALSE;
  }
  GError *e = NULL;
  if (!kv_result_decode(op->method, result, out, &e)) {
    e->code = KV_E_AGENT;
    g_prefix_error(&e, "guest: ");
    op_fail(op, e);
    return FALSE;
  }
  return TRUE;
}

void hotplug_abort(Hotplug *h, const char *why) {
  Op *op = h->cur;
  if (!op)
    return;
  h->cur = NULL;
  shim_timer_clear(&op->timer);
  shim_log("hotplug %s abandoned: %s", op->req.kind, why);
  g_autoptr(GError) e =
      g_error_new(KV_ERROR_DOMAIN, KV_E_STATE, "hotplug %s abandoned: %s", op->req.kind, why);
  shim_reply_error(op->w->conn, op->w->id, e);
  kv_conn_flush(op->w->conn, 2000, NULL);
  if (op->calling)
    op->aborted = TRUE; /* op_on_reply frees it */
  else
    op_free(op);
}

static gboolean op_error(Op *op, KvCode code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static gboolean op_error(Op *op, KvCode code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  GError *e = g_error_new_valist(KV_ERROR_DOMAIN, code, fmt, ap);
  va_end(ap);
  op_fail(op, e);
  return FALSE;
}

/* ---- CPUs ---- */

static void cpus_set_done(Op *op, JsonObject *result, const GError *error) {
  Hotplug *h = op->h;
  KvCpusResult r;
  if (!op_result(op, result, error, &r))
    return; /* plugged-but-offline vCPUs are harmless: no rollback */
  h->cpus_online = r.cpus_online < 0 ? (guint)op->want : (guint)r.cpus_online;
  if (h->cpus_online != (guint)op->want) {
    op_error(op, KV_E_AGENT, "the guest reports %u CPUs online, not %" G_GINT64_FORMAT,
             h->cpus_online, op->want);
    return;
  }
  op->res.cpus_online = h->cpus_online;
  op_done(op);
}

static void cpus_start(Op *op) {
  Hotplug *h = op->h;
  Shim *s = h->s;
  op->want = op->req.cpus;
  if (op->want < 1 || op->want > s->cfg.max_vcpus) {
    op_error(op, KV_E_INVALID,
             "%" G_GINT64_FORMAT " vCPUs requested; this sandbox allows 1..%u "
             "(max vCPUs given at create)",
             op->want, s->cfg.max_vcpus);
    return;
  }
  guint plugged = kv_vmm_get_vcpus(s->vmm, s->p.domain, NULL);
  /* Grow by plugging; shrink only by offlining in the guest: vCPU unplug
   * through libvirt crashed QEMU 7.2 under TCG (double free, see
   * VM-NOTES.md), so plugged vCPUs stay plugged. */
  GError *e = NULL;
  if ((guint)op->want > plugged && !kv_vmm_set_vcpus(s->vmm, s->p.domain, (guint)op->want, &e)) {
    op_fail(op, e);
    return;
  }
  KvCpusSetParams p = {.online = op->want};
  op_call(op, &kv_m_cpus_set, &p, cpus_set_done);
}

/* ---- memory ---- */

static char *dimm_alias(guint index) {
  return g_strdup_printf("ua-katavm-dimm%u", index);
}

/* DIMMs go in whole: growing plugs one DIMM of the difference; shrinking
 * unplugs the most recent DIMMs, which must add up to the difference. */
static gboolean dimm_resize(Hotplug *h, guint from, guint to, GError **error) {
  Shim *s = h->s;
  if (to > from) {
    if (h->dimm_sizes->len >= 8) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                  "all 8 DIMM slots are in use; remove memory first");
      return FALSE;
    }
    g_autofree char *alias = dimm_alias(h->dimm_sizes->len);
    if (!kv_vmm_attach_dimm(s->vmm, s->p.domain, to - from, alias, error))
      return FALSE;
    guint sz = to - from;
    g_array_append_val(h->dimm_sizes, sz);
    return TRUE;
  }
  guint sum = 0, n = 0;
  while (sum < from - to && n < h->dimm_sizes->len)
    sum += g_array_index(h->dimm_sizes, guint, h->dimm_sizes->len - 1 - n++);
  if (sum != from - to) {
    GString *sizes = g_string_new(NULL);
    for (guint i = h->dimm_sizes->len; i > 0; i--)
      g_string_append_printf(sizes, "%s%u", sizes->len ? ", " : "",
                             g_array_index(h->dimm_sizes, guint, i - 1));
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "DIMM memory is removed in whole DIMMs, newest first (%s MiB)", sizes->str);
    g_string_free(sizes, TRUE);
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    g_autofree char *alias = dimm_alias(h->dimm_sizes->len - 1);
    if (!kv_vmm_detach_dimm(s->vmm, s->p.domain, alias, error))
      return FALSE;
    g_array_set_size(h->dimm_sizes, h->dimm_sizes->len - 1);
  }
  return TRUE;
}

static void memory_rollback(Op *op) {
  Hotplug *h = op->h;
  g_autoptr(GError) re = NULL;
  if (h->memory_dimm ? (h->dimm_sizes->len != op->dimms_before &&
                        !dimm_resize(h, op->new_req, op->old_req, &re))
                     : !kv_vmm_set_memory_requested(h->s->vmm, h->s->p.domain, op->old_req, &re))
    shim_log("memory rollback: %s", re ? re->message : "?");
}

/* MemTotal out of a check result; FALSE (chain failed) without one. */
static gboolean memory_of(Op *op, JsonObject *result, const GError *error, gint64 *kib) {
  KvCheckResult r;
  if (!op_result(op, result, error, &r))
    return FALSE;
  *kib = r.mem_total_kib;
  kv_msg_clear(kv_m_check.result, &r);
  if (*kib < 0)
    return op_error(op, KV_E_AGENT, "guest: the agent did not report its memory");
  return TRUE;
}

static void memory_settle(Op *op, JsonObject *result, const GError *error);

static gboolean memory_poll(gpointer user) {
  Op *op = user;
  g_clear_pointer(&op->timer, g_source_unref);
  op_call(op, &kv_m_check, NULL, memory_settle);
  return G_SOURCE_REMOVE;
}

/* Usable = the guest's MemTotal moved by the change (virtio-mem blocks are
 * onlined by the guest kernel: memhp_default_state=online). Polled. */
static void memory_settle(Op *op, JsonObject *result, const GError *error) {
  gint64 now_kib;
  if (!memory_of(op, result, error, &now_kib))
    return;
  /* Within 8 MiB: the kernel keeps some of each block for its struct pages.
   * With virtio-mem also the device's plugged size (libvirt's <current>,
   * from QEMU's size-change event) at the request: the guest offlines a
   * block before it asks the device to unplug it, and puts it back online
   * when the device refuses (to retry later), so MemTotal alone can read
   * "released" a moment before 128 MiB come back (seen under ASan in CI:
   * MemTotal 128 MiB above the request once the op had said done). */
  gboolean total_ok =
      ABS(now_kib - op->expect_kib) <= 8 * 1024 + ABS(op->expect_kib - op->before_kib) / 32;
  gboolean settled = total_ok;
  guint64 plugged = 0;
  if (total_ok && !op->h->memory_dimm) {
    g_autoptr(GError) pe = NULL;
    plugged = kv_vmm_get_memory_plugged(op->h->s->vmm, op->h->s->p.domain, &pe);
    settled = !pe && plugged == op->new_req;
  }
  if (settled) {
    op->rollback = NULL;
    op->h->mem_requested_mib = op->new_req;
    op->res.mem_total_kib = now_kib;
    op->res.memory_mib = op->want;
    op_done(op);
    return;
  }
  if (g_get_monotonic_time() > op->deadline) {
    const char *verb = op->new_req > op->old_req ? "online" : "release";
    if (total_ok)
      op_error(op, KV_E_TIMEOUT,
               "the guest did not %s the memory: MemTotal is as asked, but its virtio-mem device "
               "holds %" G_GUINT64_FORMAT " MiB, not %u",
               verb, plugged, op->new_req);
    else
      op_error(op, KV_E_TIMEOUT,
               "the guest did not %s the memory: MemTotal %" G_GINT64_FORMAT
               " KiB, expected about %" G_GINT64_FORMAT " KiB",
               verb, now_kib, op->expect_kib);
    return;
  }
  op->timer = shim_add_timeout(MEMORY_POLL_MS, memory_poll, op);
}

static void memory_resize(Op *op, JsonObject *result, const GError *error) {
  Hotplug *h = op->h;
  Shim *s = h->s;
  if (!memory_of(op, result, error, &op->before_kib))
    return;
  op->dimms_before = h->dimm_sizes->len;
  GError *e = NULL;
  if (!(h->memory_dimm ? dimm_resize(h, op->old_req, op->new_req, &e)
                       : kv_vmm_set_memory_requested(s->vmm, s->p.domain, op->new_req, &e))) {
    op_fail(op, e);
    return;
  }
  op->rollback = memory_rollback;
  op->expect_kib = op->before_kib + ((gint64)op->new_req - (gint64)op->old_req) * 1024;
  op->deadline = g_get_monotonic_time() + MEMORY_SETTLE_TIMEOUT_US;
  op_call(op, &kv_m_check, NULL, memory_settle);
}

static void memory_start(Op *op) {
  Hotplug *h = op->h;
  const char *opname = op->req.op ? op->req.op : "";
  gint64 mib = op->req.mib;
  guint boot = h->s->cfg.memory_mib, max = h->s->cfg.max_memory_mib;
  guint block = h->memory_dimm ? KV_VMM_DIMM_BLOCK_MIB : MEM_BLOCK_MIB;
  if (mib < 0 || mib % block) {
    op_error(op, KV_E_INVALID,
             "memory %" G_GINT64_FORMAT " MiB is not a multiple of the %u MiB block size%s", mib,
             block, h->memory_dimm ? " (DIMM hotplug)" : "");
    return;
  }
  if (max <= boot) {
    op_error(op, KV_E_INVALID, "this sandbox was created without --max-memory above its %u MiB",
             boot);
    return;
  }
  /* The wire's ops: KV_MEMORY_ADD, _REMOVE, _SET. */
  gint64 total = boot + h->mem_requested_mib;
  gint64 want = !strcmp(opname, KV_MEMORY_ADD)      ? total + mib
                : !strcmp(opname, KV_MEMORY_REMOVE) ? total - mib
                : !strcmp(opname, KV_MEMORY_SET)    ? mib
                                                    : -1;
  if (want < 0 && strcmp(opname, KV_MEMORY_ADD) && strcmp(opname, KV_MEMORY_REMOVE) &&
      strcmp(opname, KV_MEMORY_SET)) {
    op_error(op, KV_E_INVALID, "memory op must be +, - or =");
    return;
  }
  if (want < boot || want > max) {
    op_error(op, KV_E_INVALID,
             "memory %" G_GINT64_FORMAT " MiB is outside %u..%u MiB (boot .. max given at create)",
             want, boot, max);
    return;
  }
  op->want = want;
  op->old_req = h->mem_requested_mib;
  op->new_req = (guint)(want - boot);
  op_call(op, &kv_m_check, NULL, memory_resize);
}

/* ---- NICs ---- */

static gboolean tap_up(const char *tap, GError **error) {
  /* libvirt leaves an unmanaged tap down (VM-NOTES). */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr = {0};
  g_strlcpy(ifr.ifr_name, tap, sizeof(ifr.ifr_name));
  gboolean ok = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags |= IFF_UP;
    ok = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  if (!ok)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cannot bring tap %s up: %s", tap,
                g_strerror(errno));
  if (fd >= 0)
    close(fd);
  return ok;
}

static KvNicInfo *find_nic(Hotplug *h, const char *mac, guint *idx) {
  for (guint i = 0; i < h->nics->len; i++) {
    KvNicInfo *n = h->nics->pdata[i];
    if (!g_ascii_strcasecmp(n->mac, mac)) {
      if (idx)
        *idx = i;
      return n;
    }
  }
  return NULL;
}

static void nic_rollback(Op *op) {
  g_autoptr(GError) re = NULL;
  if (!kv_vmm_detach_nic(op->h->s->vmm, op->h->s->p.domain, op->mac, &re))
    shim_log("NIC rollback: %s", re->message);
}

static void nic_add_done(Op *op, JsonObject *result, const GError *error) {
  KvNicConfigResult r;
  if (!op_result(op, result, error, &r))
    return;
  op->rollback = NULL;
  KvNicInfo *n = g_new0(KvNicInfo, 1);
  n->mac = g_strdup(op->mac);
  n->tap = g_strdup(op->req.tap);
  n->ifname = g_strdup(r.ifname);
  g_ptr_array_add(op->h->nics, n);
  op->res.mac = g_strdup(op->mac);
  op->res.ifname = g_steal_pointer(&r.ifname);
  kv_msg_clear(kv_m_nic_config.result, &r);
  op_done(op);
}

static void nic_add_start(Op *op) {
  Hotplug *h = op->h;
  Shim *s = h->s;
  if (op->req.netns_iface) {
    GError *ne = NULL;
    g_autofree char *mac = NULL;
    if (!net_add_iface(h->net, op->req.netns_iface, &mac, &ne)) {
      op_fail(op, ne);
      return;
    }
    KvNicInfo *n = g_new0(KvNicInfo, 1);
    n->mac = g_strdup(mac);
    n->tap = g_strdup(op->req.netns_iface);
    g_ptr_array_add(h->nics, n);
    op->res.mac = g_steal_pointer(&mac);
    op_done(op);
    return;
  }
  const char *tap = op->req.tap;
  if (!tap || !*tap || strlen(tap) >= IFNAMSIZ || if_nametoindex(tap) == 0) {
    op_error(op, KV_E_NOT_FOUND, "tap device '%s' does not exist", tap ? tap : "");
    return;
  }
  op->mac = op->req.mac ? g_ascii_strdown(op->req.mac, -1)
                        : g_strdup_printf("52:54:00:%02x:%02x:%02x", g_random_int_range(0, 256),
                                          g_random_int_range(0, 256), g_random_int_range(0, 256));
  if (find_nic(h, op->mac, NULL)) {
    op_error(op, KV_E_EXISTS, "a NIC with MAC %s is already attached", op->mac);
    return;
  }
  gint64 mtu = op->req.mtu ? op->req.mtu : 1500;
  if (mtu < 68 || mtu > 65535) {
    op_error(op, KV_E_INVALID, "MTU %" G_GINT64_FORMAT " is out of range", mtu);
    return;
  }
  GError *e = NULL;
  if (!kv_vmm_attach_nic(s->vmm, s->p.domain, tap, op->mac, (guint)mtu, &e)) {
    op_fail(op, e);
    return;
  }
  op->rollback = nic_rollback;
  if (!tap_up(tap, &e)) {
    op_fail(op, e);
    return;
  }
  KvNicConfigParams p = {
      .mac = op->mac, .mtu = mtu, .addresses = op->req.addresses, .gateway = op->req.gateway};
  op_call(op, &kv_m_nic_config, &p, nic_add_done);
}

static void nic_remove_detach(Op *op, JsonObject *result, const GError *error) {
  Hotplug *h = op->h;
  if (!result)
    shim_log("guest could not release NIC %s (detaching anyway): %s", op->mac,
             kv_remote_error_message(error));
  GError *e = NULL;
  if (!kv_vmm_detach_nic(h->s->vmm, h->s->p.domain, op->mac, &e)) {
    op_fail(op, e);
    return;
  }
  guint idx;
  if (find_nic(h, op->mac, &idx))
    g_ptr_array_remove_index(h->nics, idx);
  if (net_owns_mac(h->net, op->mac))
    net_remove_mac(h->net, op->mac);
  op_done(op);
}

static void nic_remove_start(Op *op) {
  op->mac = g_strdup(op->req.mac ? op->req.mac : "");
  if (!find_nic(op->h, op->mac, NULL)) {
    op_error(op, KV_E_NOT_FOUND, "no NIC with MAC '%s' is attached", op->mac);
    return;
  }
  KvNicRemoveParams p = {.mac = op->mac};
  op_call(op, &kv_m_nic_remove, &p, nic_remove_detach);
}

/* ---- disks ---- */

static char *disk_serial(const char *path) {
  g_autofree char *h = g_compute_checksum_for_string(G_CHECKSUM_SHA256, path, -1);
  return g_strdup_printf("kv%.16s", h);
}

static KvDiskInfo *find_disk(Hotplug *h, const char *path, guint *idx) {
  for (guint i = 0; i < h->disks->len; i++) {
    KvDiskInfo *d = h->disks->pdata[i];
    if (!strcmp(d->path, path)) {
      if (idx)
        *idx = i;
      return d;
    }
  }
  return NULL;
}

static void disk_rollback(Op *op) {
  g_autoptr(GError) re = NULL;
  if (!kv_vmm_detach_disk(op->h->s->vmm, op->h->s->p.domain, op->serial, &re))
    shim_log("disk rollback: %s", re->message);
  else
    jail_revoke_file(op->h->s, op->req.path);
}

static void disk_add_done(Op *op, JsonObject *result, const GError *error) {
  KvDiskAddResult r;
  if (!op_result(op, result, error, &r))
    return;
  op->rollback = NULL;
  KvDiskInfo *d = find_disk(op->h, op->req.path, NULL);
  if (d) { /* a plugged disk given to a container */
    g_free(d->container);
    d->container = g_strdup(op->req.container_id);
  } else {
    d = g_new0(KvDiskInfo, 1);
    d->path = g_strdup(op->req.path);
    d->serial = g_strdup(op->serial);
    d->device = g_strdup(r.device);
    d->container = g_strdup(op->req.container_id);
    d->plugged = !op->req.container_id;
    g_ptr_array_add(op->h->disks, d);
  }
  op->res.serial = g_strdup(op->serial);
  op->res.device = g_steal_pointer(&r.device);
  kv_msg_clear(kv_m_disk_add.result, &r);
  op_done(op);
}

static void disk_add_start(Op *op) {
  Hotplug *h = op->h;
  Shim *s = h->s;
  const char *path = op->req.path ? op->req.path : "";
  struct stat st;
  if (!g_path_is_absolute(path) || stat(path, &st) < 0 ||
      !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
    op_error(op, KV_E_NOT_FOUND, "disk '%s' does not exist or is not a file or block device", path);
    return;
  }
  const char *container = op->req.container_id;
  if (container && !h->has_container(h->has_container_user, container)) {
    op_error(op, KV_E_NOT_FOUND, "no container '%s' in this sandbox", container);
    return;
  }
  KvDiskInfo *have = find_disk(h, path, NULL);
  if (have && (!have->plugged || !container)) {
    op_error(op, KV_E_EXISTS, "disk %s is already attached%s%s", path,
             have->plugged ? "" : " as a disk volume of container ",
             have->plugged ? "" : have->container);
    return;
  }
  if (have) {
    /* Hot-plugged before: the agent only mounts it in the container (and
     * says EXISTS while it is mounted in another one that still runs). */
    op->serial = g_strdup(have->serial);
  } else {
    op->serial = disk_serial(path);
    g_autofree char *target = NULL;
    GError *e = NULL;
    if (!jail_grant_file(s, path, op->req.readonly, &e)) {
      op_fail(op, e);
      return;
    }
    if (!kv_vmm_attach_disk(s->vmm, s->p.domain, path, op->serial, op->req.readonly, &target, &e)) {
      jail_revoke_file(s, path);
      op_fail(op, e);
      return;
    }
    op->rollback = disk_rollback;
  }
  KvDiskAddParams p = {
      .serial = op->serial,
      .readonly = op->req.readonly,
      .container_id = (char *)container,
      .path = container ? (op->req.mount_path ? op->req.mount_path : "/mnt") : NULL,
  };
  op_call(op, &kv_m_disk_add, &p, disk_add_done);
}

static void disk_remove_detach(Op *op, JsonObject *result, const GError *error) {
  Hotplug *h = op->h;
  KvEmpty r;
  if (!op_result(op, result, error, &r))
    return;
  GError *e = NULL;
  if (!kv_vmm_detach_disk(h->s->vmm, h->s->p.domain, op->serial, &e)) {
    op_fail(op, e);
    return;
  }
  jail_revoke_file(h->s, op->req.path);
  guint idx;
  if (find_disk(h, op->req.path, &idx))
    g_ptr_array_remove_index(h->disks, idx);
  op_done(op);
}

static void disk_remove_start(Op *op) {
  const char *path = op->req.path ? op->req.path : "";
  KvDiskInfo *d = find_disk(op->h, path, NULL);
  if (!d) {
    op_error(op, KV_E_NOT_FOUND, "disk '%s' is not attached", path);
    return;
  }
  op->serial = g_strdup(d->serial);
  KvDiskRemoveParams p = {.serial = op->serial};
  /* Unmounted first, so the guest has flushed it before it goes. */
  op_call(op, &kv_m_disk_remove, &p, disk_remove_detach);
}

/* ---- requests ---- */

static const struct {
  const char *kind;
  void (*start)(Op *op);
} kinds[] = {
    {KV_HOTPLUG_CPUS, cpus_start},         {KV_HOTPLUG_MEMORY, memory_start},
    {KV_HOTPLUG_NIC_ADD, nic_add_start},   {KV_HOTPLUG_NIC_REMOVE, nic_remove_start},
    {KV_HOTPLUG_DISK_ADD, disk_add_start}, {KV_HOTPLUG_DISK_REMOVE, disk_remove_start},
};

void hotplug_request(Hotplug *h, KvConn *client, guint32 id, JsonObject *params) {
  g_autoptr(GError) e = NULL;
  KvHotplugParams req;
  if (!kv_params_decode(&kv_m_shim_hotplug, params, &req, &e)) {
    shim_reply_error(client, id, e);
    return;
  }
  void (*start)(Op *) = NULL;
  for (gsize i = 0; i < G_N_ELEMENTS(kinds); i++)
    if (!strcmp(req.kind, kinds[i].kind))
      start = kinds[i].start;
  if (g_strcmp0(h->s->state, KV_SANDBOX_RUNNING) || h->s->powering_off)
    g_set_error(&e, KV_ERROR_DOMAIN, KV_E_STATE, "sandbox is not running");
  else if (h->cur)
    g_set_error(&e, KV_ERROR_DOMAIN, KV_E_STATE, "another hotplug is in progress");
  else if (!start)
    g_set_error(&e, KV_ERROR_DOMAIN, KV_E_INVALID, "unknown hotplug kind '%s'", req.kind);
  if (e) {
    if (!g_error_matches(e, KV_ERROR_DOMAIN, KV_E_STATE))
      shim_log("hotplug %s failed: %s", req.kind, e->message);
    shim_reply_error(client, id, e);
    kv_msg_clear(kv_m_shim_hotplug.params, &req);
    return;
  }
  Op *op = g_new0(Op, 1);
  op->h = h;
  op->w = waiter_new(client, id);
  op->req = req; /* taken */
  op->t0 = g_get_monotonic_time();
  /* Absent in the result: -1 (the contract's default). */
  op->res.cpus_online = op->res.mem_total_kib = op->res.memory_mib = -1;
  h->cur = op;
  start(op);
}
