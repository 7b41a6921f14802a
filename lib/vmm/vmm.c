/* lib/vmm/vmm.c: the libvirt connection: event loop, errors, domain
 * start/stop/query and lifecycle events.
 *
 * libvirt needs an event loop in the process that holds a connection: the
 * embedded driver dispatches QEMU monitor events through it, and without one
 * a guest poweroff leaves QEMU paused with its RAM held. We register
 * libvirt's default implementation once per process and run it on a thread
 * of its own for the life of the process (libvirt offers no way to
 * unregister it). */
#include "vmm.h"
#include "vmm-internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

G_DEFINE_QUARK(kv - vmm - error - quark, kv_vmm_error)

struct _KvVmm {
  gint refs; /* one for the caller, one for the registered callback */
  virConnectPtr conn;
  char *uri;        /* as opened (or as libvirt reports it, for NULL) */
  char *pid_dir;    /* where QEMU pid files live; NULL = unknown (remote) */
  int lifecycle_id; /* -1 when not registered */

  GMutex lock; /* guards the fields below, written from any thread */
  gboolean closed;
  KvVmEventFunc cb;
  gpointer cb_user;
  KvVmStopCause stop_cause;
};

static void vmm_unref(KvVmm *vmm) {
  if (!g_atomic_int_dec_and_test(&vmm->refs))
    return;
  g_mutex_clear(&vmm->lock);
  g_free(vmm->uri);
  g_free(vmm->pid_dir);
  g_free(vmm);
}

/* ---- process-wide setup ---- */

/* libvirt's default error handler prints every error to stderr, including
 * ones we expect and handle (a domain already gone). We report errors
 * through GError instead. */
static void quiet_error(void *user, virErrorPtr err) {
}

static gpointer event_thread(gpointer data) {
  for (;;) {
    if (virEventRunDefaultImpl() < 0) {
      /* Never spin on a persistent failure. */
      g_usleep(100 * 1000);
    }
  }
  return NULL;
}

static gpointer init_once(gpointer data) {
  if (virInitialize() < 0)
    return GINT_TO_POINTER(FALSE);
  virSetErrorFunc(NULL, quiet_error);
  if (virEventRegisterDefaultImpl() < 0)
    return GINT_TO_POINTER(FALSE);
  g_thread_unref(g_thread_new("kv-libvirt-events", event_thread, NULL));
  return GINT_TO_POINTER(TRUE);
}

static gboolean ensure_init(GError **error) {
  static GOnce once = G_ONCE_INIT;
  if (!GPOINTER_TO_INT(g_once(&once, init_once, NULL))) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_CONNECT,
                "cannot initialise libvirt's event loop: %s", virGetLastErrorMessage());
    return FALSE;
  }
  return TRUE;
}

/* The thread-local last libvirt error, as a GError with our context. Read
 * right after the failed call: any later libvirt call resets it. */
void kv_vmm_set_libvirt_error(GError **error, KvVmmError code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *what = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, KV_VMM_ERROR, code, "%s: %s", what, virGetLastErrorMessage());
}

static int last_error_code(void) {
  virErrorPtr e = virGetLastError();
  return e ? e->code : VIR_ERR_OK;
}

/* ---- pid files ---- */

/* A URI that reaches libvirt over the network ("qemu+tcp://host/...",
 * "qemu://host/...") rather than in-process or over a local socket. */
static gboolean uri_is_remote(const char *uri) {
  g_autoptr(GUri) u = g_uri_parse(uri, G_URI_FLAGS_ENCODED_QUERY, NULL);
  if (!u)
    return FALSE;
  const char *host = g_uri_get_host(u);
  return strchr(g_uri_get_scheme(u), '+') != NULL || (host && *host);
}

/* Where the QEMU driver keeps NAME.pid (libvirt's stateDir): ROOT/run/qemu
 * for the embedded driver, /run/libvirt/qemu for qemu:///system,
 * $XDG_RUNTIME_DIR/libvirt/qemu/run for qemu:///session. Remote or other
 * URIs give NULL: a pid on another host means nothing to us. */
static char *pid_dir_for_uri(const char *uri) {
  if (uri_is_remote(uri))
    return NULL;
  g_autoptr(GUri) u = g_uri_parse(uri, G_URI_FLAGS_ENCODED_QUERY, NULL);
  if (!u || !g_str_equal(g_uri_get_scheme(u), "qemu"))
    return NULL;
  const char *path = g_uri_get_path(u);

  if (g_str_equal(path, "/system"))
    return g_strdup("/run/libvirt/qemu");
  if (g_str_equal(path, "/session"))
    return g_build_filename(g_get_user_runtime_dir(), "libvirt", "qemu", "run", NULL);
  if (g_str_equal(path, "/embed") && g_uri_get_query(u)) {
    g_autoptr(GHashTable) params =
        g_uri_parse_params(g_uri_get_query(u), -1, "&", G_URI_PARAMS_NONE, NULL);
    const char *root = params ? g_hash_table_lookup(params, "root") : NULL;
    if (root)
      return g_build_filename(root, "run", "qemu", NULL);
  }
  return NULL;
}

/* ---- lifecycle events ---- */

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
  KvVmm *vmm = opaque;
  KvVmEvent ev;

  if (event == VIR_DOMAIN_EVENT_STOPPED) {
    ev = KV_VM_EVENT_STOPPED;
    KvVmStopCause cause = detail == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN    ? KV_VM_STOP_SHUTDOWN
                          : detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED ? KV_VM_STOP_DESTROYED
                          : detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED   ? KV_VM_STOP_CRASHED
                          : detail == VIR_DOMAIN_EVENT_STOPPED_FAILED    ? KV_VM_STOP_FAILED
                                                                         : KV_VM_STOP_UNKNOWN;
    g_mutex_lock(&vmm->lock);
    vmm->stop_cause = cause;
    g_mutex_unlock(&vmm->lock);
  } else if (event == VIR_DOMAIN_EVENT_CRASHED)
    ev = KV_VM_EVENT_CRASHED;
  else
    return 0;

  /* Copy the handler out so it runs without our lock held: it may well
   * call back into this KvVmm (kv_vmm_is_running, set_event_handler). */
  g_mutex_lock(&vmm->lock);
  KvVmEventFunc cb = vmm->closed ? NULL : vmm->cb;
  gpointer user = vmm->cb_user;
  g_mutex_unlock(&vmm->lock);

  if (cb)
    cb(vmm, virDomainGetName(dom), ev, user);
  return 0;
}

/* libvirt calls this once the callback is deregistered and no dispatch is
 * running any more, which is the first moment the KvVmm may be freed. */
static void lifecycle_free(void *opaque) {
  vmm_unref(opaque);
}

/* ---- connection ---- */

/* libvirt (9.0) takes the host's CPUID data when its QEMU driver starts,
 * read on whichever CPU the opening thread runs on, and re-probes QEMU's
 * capabilities (~0.8 s under TCG, one create in two here) when that data
 * differs from what the cached capabilities were probed with. It holds
 * the APIC id, which differs per CPU: an embedded driver (one per shim)
 * that started on another CPU than the last probe's probed again. The
 * opening thread runs on the lowest CPU it may use while the driver
 * starts, then gets its own set back. FALSE: left as it was. */
static gboolean pin_lowest_cpu(cpu_set_t *saved) {
  if (sched_getaffinity(0, sizeof *saved, saved) < 0)
    return FALSE;
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (CPU_ISSET(c, saved)) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      return sched_setaffinity(0, sizeof one, &one) == 0;
    }
  }
  return FALSE;
}

KvVmm *kv_vmm_open(const char *uri, GError **error) {
  if (!ensure_init(error))
    return NULL;

  cpu_set_t saved;
  gboolean pinned = uri && g_str_has_prefix(uri, "qemu:///embed") && pin_lowest_cpu(&saved);
  virConnectPtr conn = virConnectOpen(uri);
  if (pinned)
    sched_setaffinity(0, sizeof saved, &saved);
  if (!conn) {
    kv_vmm_set_libvirt_error(error, KV_VMM_ERROR_CONNECT, "cannot connect to libvirt at '%s'",
                             uri ? uri : "(default URI)");
    return NULL;
  }

  KvVmm *vmm = g_new0(KvVmm, 1);
  vmm->refs = 1;
  g_mutex_init(&vmm->lock);
  vmm->conn = conn;
  if (uri) {
    vmm->uri = g_strdup(uri);
  } else {
    char *actual = virConnectGetURI(conn);
    vmm->uri = g_strdup(actual ? actual : "");
    free(actual);
  }
  vmm->pid_dir = pid_dir_for_uri(vmm->uri);

  /* A remote libvirtd that dies or becomes unreachable should not leave
   * calls hanging forever. In-process drivers have no keepalive. */
  if (uri_is_remote(vmm->uri) && virConnectSetKeepAlive(conn, 5, 3) < 0)
    virResetLastError();

  g_atomic_int_inc(&vmm->refs);
  vmm->lifecycle_id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                       VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), vmm,
                                                       lifecycle_free);
  if (vmm->lifecycle_id < 0) {
    kv_vmm_set_libvirt_error(error, KV_VMM_ERROR_CONNECT,
                             "cannot subscribe to domain events on '%s'", vmm->uri);
    (void)g_atomic_int_dec_and_test(&vmm->refs); /* never registered */
    virConnectClose(conn);
    vmm_unref(vmm);
    return NULL;
  }
  return vmm;
}

void kv_vmm_close(KvVmm *vmm) {
  if (!vmm)
    return;

  g_mutex_lock(&vmm->lock);
  vmm->closed = TRUE;
  vmm->cb = NULL;
  g_mutex_unlock(&vmm->lock);

  if (vmm->lifecycle_id >= 0 &&
      virConnectDomainEventDeregisterAny(vmm->conn, vmm->lifecycle_id) < 0) {
    /* Deregistering only fails on a broken connection. The callback's
     * reference then stays: a leaked KvVmm is better than one freed under
     * a callback libvirt might still run. */
    virResetLastError();
  }
  vmm->lifecycle_id = -1;
  virConnectClose(vmm->conn);
  vmm->conn = NULL;
  vmm_unref(vmm);
}

KvVmStopCause kv_vmm_stop_cause(KvVmm *vmm) {
  g_mutex_lock(&vmm->lock);
  KvVmStopCause c = vmm->stop_cause;
  g_mutex_unlock(&vmm->lock);
  return c;
}

void kv_vmm_set_event_handler(KvVmm *vmm, KvVmEventFunc cb, gpointer user) {
  g_mutex_lock(&vmm->lock);
  vmm->cb = cb;
  vmm->cb_user = user;
  g_mutex_unlock(&vmm->lock);
}

/* ---- domains ---- */

gboolean kv_vmm_start(KvVmm *vmm, const KvVmConfig *cfg, GError **error) {
  g_autofree char *xml = kv_vmm_domain_xml(cfg, error);
  if (!xml)
    return FALSE;

  /* Transient and without AUTODESTROY: the VM is owned by whoever holds
   * the sandbox, and must survive a restart of the process that started
   * it. */
  virDomainPtr dom = virDomainCreateXML(vmm->conn, xml, 0);
  if (!dom) {
    kv_vmm_set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot start domain '%s'", cfg->name);
    return FALSE;
  }
  virDomainFree(dom);
  return TRUE;
}

/* Domain state, or -1 when the domain does not exist (or cannot be asked). */
static int domain_state(KvVmm *vmm, const char *name) {
  virDomainPtr dom = virDomainLookupByName(vmm->conn, name);
  if (!dom) {
    virResetLastError();
    return -1;
  }
  int state = -1, reason = 0;
  if (virDomainGetState(dom, &state, &reason, 0) < 0) {
    virResetLastError();
    state = -1;
  }
  virDomainFree(dom);
  return state;
}

static gboolean state_is_gone(int state) {
  return state < 0 || state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED;
}

gboolean kv_vmm_is_running(KvVmm *vmm, const char *name) {
  return !state_is_gone(domain_state(vmm, name));
}

int kv_vmm_qemu_pid(KvVmm *vmm, const char *name) {
  if (!vmm->pid_dir || !kv_vmm_is_running(vmm, name))
    return 0;

  g_autofree char *file = g_strdup_printf("%s/%s.pid", vmm->pid_dir, name);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(file, &text, NULL, NULL))
    return 0;

  char *end = NULL;
  gint64 pid = g_ascii_strtoll(g_strstrip(text), &end, 10);
  if (!end || *end || pid <= 1 || pid > G_MAXINT)
    return 0;
  /* A stale file of a VM that died with its driver names no process, or
   * someone else's. */
  if (kill((pid_t)pid, 0) < 0 && errno != EPERM)
    return 0;
  return (int)pid;
}

gboolean kv_vmm_wait_stopped(KvVmm *vmm, const char *name, guint timeout_ms) {
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  for (;;) {
    if (state_is_gone(domain_state(vmm, name)))
      return TRUE;
    if (g_get_monotonic_time() >= deadline)
      return FALSE;
    g_usleep(50 * 1000);
  }
}

/* How long destroy keeps retrying while the driver is still busy with the
 * domain (reconnecting after a fresh open, or in the middle of another job
 * such as a hotplug). */
#define KV_DESTROY_RETRY_MS 15000

gboolean kv_vmm_destroy(KvVmm *vmm, const char *name, GError **error) {
  gint64 deadline = g_get_monotonic_time() + KV_DESTROY_RETRY_MS * 1000;

  for (;;) {
    virDomainPtr dom = virDomainLookupByName(vmm->conn, name);
    if (!dom) {
      if (last_error_code() == VIR_ERR_NO_DOMAIN) {
        virResetLastError();
        return TRUE;
      }
      kv_vmm_set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot look up domain '%s'", name);
      return FALSE;
    }

    int state = -1, reason = 0;
    if (virDomainGetState(dom, &state, &reason, 0) == 0 && state_is_gone(state)) {
      virDomainFree(dom);
      return TRUE;
    }
    virResetLastError();

    int rc = virDomainDestroy(dom);
    /* Take the error before virDomainFree, which resets it. */
    int code = last_error_code();
    g_autofree char *msg = g_strdup(virGetLastErrorMessage());
    virDomainFree(dom);
    if (rc == 0 || code == VIR_ERR_NO_DOMAIN)
      return TRUE;

    /* Right after a fresh open of an embedded root, the driver is still
     * reconnecting to the QEMU it found, holding the domain's job: destroy
     * then fails with "operation is not valid" or a job timeout although
     * the domain is running. Wait and retry until it settles. */
    gboolean transient = code == VIR_ERR_OPERATION_INVALID || code == VIR_ERR_OPERATION_TIMEOUT ||
                         code == VIR_ERR_OPERATION_FAILED || code == VIR_ERR_SYSTEM_ERROR;
    if (!transient || g_get_monotonic_time() >= deadline) {
      g_set_error(error, KV_VMM_ERROR, transient ? KV_VMM_ERROR_TIMEOUT : KV_VMM_ERROR_LIBVIRT,
                  "cannot destroy domain '%s': %s", name, msg);
      return FALSE;
    }
    g_debug("destroy of '%s' not possible yet (%s), retrying", name, msg);
    g_usleep(100 * 1000);
  }
}

char **kv_vmm_list(KvVmm *vmm, GError **error) {
  virDomainPtr *doms = NULL;
  int n = virConnectListAllDomains(vmm->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) {
    kv_vmm_set_libvirt_error(error, KV_VMM_ERROR_LIBVIRT, "cannot list domains");
    return NULL;
  }

  g_autoptr(GStrvBuilder) names = g_strv_builder_new();
  for (int i = 0; i < n; i++) {
    const char *name = virDomainGetName(doms[i]);
    if (name)
      g_strv_builder_add(names, name);
    virDomainFree(doms[i]);
  }
  free(doms);
  return g_strv_builder_end(names);
}

virConnectPtr kv_vmm_conn(KvVmm *vmm) {
  return vmm->conn;
}
