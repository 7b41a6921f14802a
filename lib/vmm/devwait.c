/* lib/vmm/devwait.c: detach a device and wait until the guest has let it
 * go.
 *
 * On q35 the removal is asynchronous: libvirt asks QEMU, QEMU asks the
 * guest through ACPI, and only the guest's eject completes it; libvirt
 * then sends DEVICE_REMOVED. We wait for that event, and also look at the
 * live XML now and then in case the event never reaches us. */
#include "devwait.h"

#include <libvirt/virterror.h>

#include "livexml.h"
#include "vmm-internal.h"

/* How long a detach waits for the guest to release the device. Measured
 * removals take 0.1-0.2 s under TCG; a guest that has not answered in 10 s
 * is busy or broken. */
#define KV_DETACH_TIMEOUT_MS 10000
/* Between two looks at the live XML while waiting, in case the removal
 * event is missed (an event loop that is not running, a remote driver). */
#define KV_DETACH_POLL_MS 200

/* Shared between a detach call and the event callbacks it registered; the
 * callbacks run on the libvirt event thread and may outlive the call until
 * libvirt calls their free function. */
typedef struct {
  gint refs;
  GMutex lock;
  GCond cond;
  char *alias;
  gboolean removed;
  gboolean failed;
} Removal;

static void removal_unref(gpointer data) {
  Removal *r = data;
  if (!g_atomic_int_dec_and_test(&r->refs))
    return;
  g_mutex_clear(&r->lock);
  g_cond_clear(&r->cond);
  g_free(r->alias);
  g_free(r);
}

static void removal_note(Removal *r, const char *alias, gboolean failed) {
  if (!alias || !g_str_equal(alias, r->alias))
    return;
  g_mutex_lock(&r->lock);
  if (failed)
    r->failed = TRUE;
  else
    r->removed = TRUE;
  g_cond_broadcast(&r->cond);
  g_mutex_unlock(&r->lock);
}

static void on_device_removed(virConnectPtr conn, virDomainPtr dom, const char *alias,
                              void *opaque) {
  removal_note(opaque, alias, FALSE);
}

static void on_device_removal_failed(virConnectPtr conn, virDomainPtr dom, const char *alias,
                                     void *opaque) {
  removal_note(opaque, alias, TRUE);
}

/* Is a device with this alias still in the live XML? Errors count as
 * "still there": the caller then simply waits on. */
static gboolean alias_present(virDomainPtr dom, const char *alias) {
  KvXNode *devices = NULL;
  g_autoptr(KvXNode) root = kv_live_devices(dom, &devices, NULL);
  if (!root) {
    virResetLastError();
    return TRUE;
  }
  return kv_live_find_alias(devices, NULL, alias) != NULL;
}

gboolean kv_detach_and_wait(virDomainPtr dom, const char *alias, const char *what, GError **error) {
  virConnectPtr conn = virDomainGetConnect(dom);
  Removal *r = g_new0(Removal, 1);
  r->refs = 1;
  g_mutex_init(&r->lock);
  g_cond_init(&r->cond);
  r->alias = g_strdup(alias);

  /* Registered before the detach request, so the event cannot slip by. */
  g_atomic_int_inc(&r->refs);
  int removed_id = virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                                    VIR_DOMAIN_EVENT_CALLBACK(on_device_removed), r,
                                                    removal_unref);
  if (removed_id < 0) {
    removal_unref(r);
    virResetLastError();
  }
  g_atomic_int_inc(&r->refs);
  int failed_id = virConnectDomainEventRegisterAny(
      conn, dom, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
      VIR_DOMAIN_EVENT_CALLBACK(on_device_removal_failed), r, removal_unref);
  if (failed_id < 0) {
    removal_unref(r);
    virResetLastError();
  }

  gboolean ok = FALSE;
  /* By alias, because that is the one form libvirt documents as
   * asynchronous: the plain detach waits up to 5 s itself and then returns
   * success while the device may still be there. */
  if (virDomainDetachDeviceAlias(dom, alias, VIR_DOMAIN_AFFECT_LIVE) < 0) {
    kv_vmm_set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot detach %s from domain '%s'", what,
                             virDomainGetName(dom));
    goto out;
  }

  gint64 start = g_get_monotonic_time();
  gint64 deadline = start + (gint64)KV_DETACH_TIMEOUT_MS * 1000;
  gint64 next_poll = start + (gint64)KV_DETACH_POLL_MS * 1000;
  for (;;) {
    g_mutex_lock(&r->lock);
    if (!r->removed && !r->failed)
      g_cond_wait_until(&r->cond, &r->lock, MIN(next_poll, deadline));
    gboolean removed = r->removed, failed = r->failed;
    g_mutex_unlock(&r->lock);

    if (removed) {
      ok = TRUE;
      break;
    }
    if (failed) {
      g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_LIBVIRT,
                  "the guest of domain '%s' refused to release %s", virDomainGetName(dom), what);
      break;
    }
    gint64 now = g_get_monotonic_time();
    if (now >= next_poll) {
      /* A VM that stops meanwhile takes the device with it, but the caller
       * should hear that the VM is gone rather than wait for a timeout. */
      if (virDomainIsActive(dom) != 1) {
        virResetLastError();
        g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_NOT_FOUND,
                    "domain '%s' stopped while %s was being detached", virDomainGetName(dom), what);
        break;
      }
      if (!alias_present(dom, alias)) {
        ok = TRUE;
        break;
      }
      next_poll = now + (gint64)KV_DETACH_POLL_MS * 1000;
    }
    if (now >= deadline) {
      g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_TIMEOUT,
                  "%s of domain '%s' is still present %d s after the detach "
                  "request: the guest has not released it (it may still go "
                  "later)",
                  what, virDomainGetName(dom), KV_DETACH_TIMEOUT_MS / 1000);
      break;
    }
  }
  g_debug("detach of %s (%s) took %.3f s", what, alias, (g_get_monotonic_time() - start) / 1e6);

out:
  if (removed_id >= 0 && virConnectDomainEventDeregisterAny(conn, removed_id) < 0)
    virResetLastError();
  if (failed_id >= 0 && virConnectDomainEventDeregisterAny(conn, failed_id) < 0)
    virResetLastError();
  removal_unref(r);
  return ok;
}
