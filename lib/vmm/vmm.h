/* lib/vmm/vmm.h: the one boundary to libvirt. Nothing outside lib/vmm/
 * includes libvirt headers. Owns: domain XML (built with escaping, never by
 * pasting user input), accelerator choice, the embedded-driver root layout,
 * the libvirt event loop, domain start/stop and lifecycle events. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KV_VMM_ERROR (kv_vmm_error_quark())
GQuark kv_vmm_error_quark(void);
typedef enum {
  KV_VMM_ERROR_INVALID,     /* bad config value */
  KV_VMM_ERROR_CONNECT,     /* cannot open the libvirt URI */
  KV_VMM_ERROR_LIBVIRT,     /* a libvirt call failed (message included) */
  KV_VMM_ERROR_NOT_FOUND,   /* no such domain */
  KV_VMM_ERROR_UNSUPPORTED, /* e.g. accel=kvm without usable KVM */
  KV_VMM_ERROR_TIMEOUT,
} KvVmmError;

typedef enum { KV_ACCEL_AUTO = 0, KV_ACCEL_KVM, KV_ACCEL_TCG } KvAccel;

/* Parse "auto" | "kvm" | "tcg". */
gboolean kv_accel_parse(const char *s, KvAccel *out, GError **error);
const char *kv_accel_name(KvAccel a);
/* Resolve AUTO: KVM only when /proc/cpuinfo shows vmx or svm AND /dev/kvm
 * opens read-write and answers KVM_GET_API_VERSION; else TCG. An explicit
 * KVM request without usable KVM fails with KV_VMM_ERROR_UNSUPPORTED.
 * *reason (optional, caller frees) says why, for `katavm check`. */
gboolean kv_accel_resolve(KvAccel want, KvAccel *out, char **reason, GError **error);
/* The decision behind kv_accel_resolve, without touching the host, so that
 * both branches can be tested anywhere. `cpuinfo` is the text of
 * /proc/cpuinfo (NULL = unreadable, counts as no vmx/svm); `kvm_usable` says
 * whether /dev/kvm opened read-write and answered KVM_GET_API_VERSION == 12;
 * `kvm_detail` (optional) describes that probe for *reason, e.g.
 * "/dev/kvm: No such file or directory". */
gboolean kv_accel_resolve_with(KvAccel want, const char *cpuinfo, gboolean kvm_usable,
                               const char *kvm_detail, KvAccel *out, char **reason, GError **error);

typedef struct {
  const char *name;         /* domain name, [A-Za-z0-9_.-]+ */
  const char *uuid;         /* optional, NULL = libvirt picks */
  const char *kernel;       /* ELF vmlinux (PVH) or bzImage */
  const char *initrd;       /* cpio */
  const char *cmdline;      /* kernel command line */
  KvAccel accel;            /* resolved: KVM or TCG (not AUTO) */
  guint vcpus;              /* online at boot */
  guint max_vcpus;          /* >= vcpus; reserved for hotplug */
  guint memory_mib;         /* boot memory */
  guint max_memory_mib;     /* >= memory_mib; > memory_mib enables maxMemory */
  const char *agent_socket; /* unix socket QEMU binds for the agent channel */
  const char *shared_dir;   /* host dir shared over 9p, tag "katavmshared" */
  /* virtio-fs instead of 9p: the vhost-user socket of the virtiofsd the
   * caller started on the shared dir (the shim starts and supervises it,
   * lib/shim/vfsd.c); same tag. Guest RAM then comes from a shared memfd
   * (vhost-user maps it into virtiofsd), hot-added memory included. When
   * set, shared_dir is only informational and may be NULL. */
  const char *virtiofs_socket;
  /* 9p through QEMU's proxy backend instead of passthrough: the socket of
   * the virtfs-proxy-helper the caller started on the shared dir (the
   * shim, lib/shim/vfsd.c). That helper does the share's file I/O with
   * the privileges it needs; QEMU only relays 9p messages, so it can run
   * unprivileged in a private mount namespace. Same tag; libvirt has no
   * element for it, so it goes in as <qemu:commandline> (-fsdev proxy +
   * virtio-9p-pci at the share's slot). Ignored when virtiofs_socket is
   * set. */
  const char *ninep_proxy_socket;
  const char *console_log; /* serial console log file */
  guint spare_root_ports;  /* pcie-root-port controllers for hotplug */
  /* Run QEMU as root without relabelling (a DAC seclabel): a libvirtd
   * (qemu:///system) would otherwise run it as libvirt-qemu, which cannot
   * reach the runtime's 0700 state directories. The embedded driver is
   * configured for this in its qemu.conf instead. */
  gboolean qemu_as_root;
  /* Memory hotplug by ACPI DIMMs instead of the virtio-mem device (for
   * QEMU or guests without virtio-mem): no virtio-mem region at boot. */
  gboolean memory_dimm;
  /* When set (and qemu_as_root is not), QEMU runs as this DAC label,
   * "+UID:+GID" (libvirt's static DAC seclabel), relabel='no': libvirt
   * chowns nothing, so everything QEMU opens by path must be reachable by
   * that uid (see lib/shim/jail.c). */
  const char *qemu_label;
  /* When set, the serial console is this unix socket (libvirt binds it,
   * the caller reads it and bounds what it keeps) instead of console_log. */
  const char *console_socket;
  /* TCG: the translation cache in MiB; 0 = by the shape (32 MiB, 256 with
   * vCPU hotplug). */
  guint tb_cache_mib;
} KvVmConfig;

/* Build domain XML (q35, PVH kernel boot, virtio-serial agent channel named
 * "io.katavm.agent.0", 9p or virtio-fs share, serial console to file, spare root ports,
 * <tcg><tb-cache> under TCG). Returns NULL with KV_VMM_ERROR_INVALID when a
 * required field is missing or inconsistent. */
char *kv_vmm_domain_xml(const KvVmConfig *cfg, GError **error);

/* Embedded-driver root: create ROOT/etc/qemu.conf (user/group +0,
 * remember_owner=0, security_driver none) and point ROOT/cache/qemu at the
 * shared capabilities cache dir `caps_cache` (symlink; created if missing)
 * so that opening a fresh root does not re-probe QEMU, and drop the
 * "cpu-unavailable-features" flag from the cached capabilities, which makes
 * libvirt read the guest CPU back with ~400 QMP calls instead of 2 (see
 * embed.c). Returns the URI
 * "qemu:///embed?root=ROOT" (caller frees). */
char *kv_vmm_embed_prepare(const char *root, const char *caps_cache, GError **error);
/* The same; mount_ns TRUE keeps libvirt's private mount namespace (and
 * /dev) for QEMU, which only a share that is not 9p allows. */
char *kv_vmm_embed_prepare_ns(const char *root, const char *caps_cache, gboolean mount_ns,
                              GError **error);

typedef struct _KvVmm KvVmm;

/* Domain lifecycle notifications, delivered from the libvirt event thread. */
typedef enum {
  KV_VM_EVENT_STOPPED, /* shut off (guest poweroff, destroy, crash) */
  KV_VM_EVENT_CRASHED,
} KvVmEvent;
typedef void (*KvVmEventFunc)(KvVmm *vmm, const char *domain, KvVmEvent ev, gpointer user);

/* Open a connection (registers libvirt's default event implementation once
 * per process and runs it on a dedicated thread). */
KvVmm *kv_vmm_open(const char *uri, GError **error);
void kv_vmm_close(KvVmm *vmm);
void kv_vmm_set_event_handler(KvVmm *vmm, KvVmEventFunc cb, gpointer user);
/* Why the last domain that stopped on this connection stopped, as libvirt's
 * lifecycle event detail says (for the shim's stop reason). */
typedef enum {
  KV_VM_STOP_UNKNOWN = 0,
  KV_VM_STOP_SHUTDOWN,  /* the guest powered off (or reset: QEMU runs -no-reboot) */
  KV_VM_STOP_DESTROYED, /* virDomainDestroy */
  KV_VM_STOP_CRASHED,   /* the guest crashed (panic device) */
  KV_VM_STOP_FAILED,    /* QEMU itself died: killed or crashed */
} KvVmStopCause;
KvVmStopCause kv_vmm_stop_cause(KvVmm *vmm);

/* Start a transient domain from cfg. */
gboolean kv_vmm_start(KvVmm *vmm, const KvVmConfig *cfg, GError **error);
/* TRUE when the domain exists and is running (or paused). */
gboolean kv_vmm_is_running(KvVmm *vmm, const char *name);
/* PID of the domain's QEMU, 0 if unknown. */
int kv_vmm_qemu_pid(KvVmm *vmm, const char *name);
/* Wait up to timeout_ms for the domain to be gone / shut off. */
gboolean kv_vmm_wait_stopped(KvVmm *vmm, const char *name, guint timeout_ms);
/* Hard stop (virDomainDestroy). Not-found is success. */
gboolean kv_vmm_destroy(KvVmm *vmm, const char *name, GError **error);
/* Names of active domains on this connection. */
char **kv_vmm_list(KvVmm *vmm, GError **error);

/* ---- live hotplug (hotplug.c) ----
 *
 * All of these act on a running domain of this connection, change only its
 * live state (a sandbox domain is transient), and fail with
 * KV_VMM_ERROR_NOT_FOUND when the domain does not exist, KV_VMM_ERROR_INVALID
 * for a bad argument (checked before libvirt is asked) and
 * KV_VMM_ERROR_LIBVIRT when libvirt refuses. */

/* The virtio-mem device kv_vmm_domain_xml defines when max_memory_mib >
 * memory_mib: its user alias and block size (the granularity of every
 * size below). */
#define KV_VMM_VIRTIO_MEM_ALIAS "ua-virtiomem0"
#define KV_VMM_VIRTIO_MEM_BLOCK_MIB 2

/* Plug vCPUs up to n in total (<= the domain's max_vcpus). New vCPUs
 * appear offline in the guest, which must online them
 * (/sys/devices/system/cpu/cpuN/online). Growing only: n below the current
 * count fails with KV_VMM_ERROR_INVALID, because unplugging a vCPU crashes
 * QEMU 7.2 under TCG; shrink by offlining in the guest. n equal to the
 * current count succeeds without doing anything. */
gboolean kv_vmm_set_vcpus(KvVmm *vmm, const char *name, guint n, GError **error);
/* Plugged (live current) vCPU count, online in the guest or not; 0 with
 * *error set on failure. */
guint kv_vmm_get_vcpus(KvVmm *vmm, const char *name, GError **error);

/* Ask the guest to have requested_mib of the virtio-mem region plugged (a
 * multiple of KV_VMM_VIRTIO_MEM_BLOCK_MIB, at most the region's size; 0
 * gives everything back). Returns once QEMU has the new request; the guest
 * driver plugs or unplugs asynchronously, and with memhp_default_state=online
 * (or auto_online_blocks = online) onlines it itself. Watch progress with
 * kv_vmm_get_memory_plugged. KV_VMM_ERROR_NOT_FOUND when the domain has no
 * virtio-mem device (it was started with max_memory_mib == memory_mib). */
gboolean kv_vmm_set_memory_requested(KvVmm *vmm, const char *name, guint requested_mib,
                                     GError **error);
/* The virtio-mem device's requested size and the size the guest has
 * actually plugged (libvirt's <current>), in MiB. On failure 0 with *error
 * set: pass a GError to tell a failure from 0. */
guint64 kv_vmm_get_memory_requested(KvVmm *vmm, const char *name, GError **error);
guint64 kv_vmm_get_memory_plugged(KvVmm *vmm, const char *name, GError **error);

/* ACPI DIMM memory hotplug (the fallback without virtio-mem; the domain
 * must have been started with memory_dimm). size_mib is a multiple of
 * KV_VMM_DIMM_BLOCK_MIB (the guest's memory block size on x86); `alias`
 * ("ua-" + [A-Za-z0-9_-]) names the DIMM for detach. The guest onlines a
 * new DIMM itself with memhp_default_state=online. Detach asks the guest to
 * offline and eject it and returns once libvirt reports it removed
 * (KV_VMM_ERROR_TIMEOUT after 10 s, e.g. when the guest cannot offline). */
#define KV_VMM_DIMM_BLOCK_MIB 128
gboolean kv_vmm_attach_dimm(KvVmm *vmm, const char *name, guint size_mib, const char *alias,
                            GError **error);
gboolean kv_vmm_detach_dimm(KvVmm *vmm, const char *name, const char *alias, GError **error);

/* Hotplug a virtio NIC backed by the existing tap device `tap`
 * ([A-Za-z0-9_.-]{1,15}, not managed by libvirt: libvirt neither creates
 * nor configures it and leaves it down, so the caller brings it up).
 * `mac` is a unicast "xx:xx:xx:xx:xx:xx" and identifies the NIC for detach;
 * it must not already be in use in the domain. mtu 0 = the default. */
gboolean kv_vmm_attach_nic(KvVmm *vmm, const char *name, const char *tap, const char *mac,
                           guint mtu, GError **error);
/* Unplug the NIC with this MAC; returns once libvirt reports it removed
 * (KV_VMM_ERROR_TIMEOUT after 10 s). KV_VMM_ERROR_NOT_FOUND when the domain
 * has no NIC with that MAC. */
gboolean kv_vmm_detach_nic(KvVmm *vmm, const char *name, const char *mac, GError **error);

/* A port published by user-mode networking: `address` (an IPv4 literal)
 * port `host_port` on the host reaches the guest's `port`. */
typedef struct {
  gboolean udp;
  const char *address;
  guint host_port, port;
} KvVmmPortForward;
/* The guest side of user-mode networking (QEMU's slirp): the guest's
 * address, the gateway (the host as the guest sees it) and the DNS
 * forwarder. */
#define KV_VMM_USER_GUEST_CIDR "10.0.2.15/24"
#define KV_VMM_USER_GATEWAY "10.0.2.2"
#define KV_VMM_USER_DNS "10.0.2.3"
/* Hotplug a virtio NIC with user-mode networking (libvirt's <interface
 * type='user'>, QEMU's slirp: no host setup, no process of its own) and
 * publish the n `ports` on the host through QEMU's hostfwd (a monitor
 * command: libvirt 9.0 has no port forwarding for slirp, and rejects the
 * passt backend). A port that cannot be forwarded (taken) fails with
 * KV_VMM_ERROR_LIBVIRT naming it; the NIC then stays (the caller destroys
 * the domain). */
gboolean kv_vmm_attach_user_nic(KvVmm *vmm, const char *name, const char *mac,
                                const KvVmmPortForward *ports, guint n, GError **error);

/* Hotplug a virtio disk: `path` is an absolute path to a raw image file or
 * a block device. `serial` ([A-Za-z0-9_-]{1,20}, unique in the domain) is
 * what the guest sees (/sys/block/vdX/serial, /dev/disk/by-id/virtio-SERIAL)
 * and identifies the disk for detach: the guest's vdX name does not follow
 * libvirt's target name. *target_out (optional, caller frees) receives the
 * libvirt target name chosen (vda, vdb, ...). */
gboolean kv_vmm_attach_disk(KvVmm *vmm, const char *name, const char *path, const char *serial,
                            gboolean readonly, char **target_out, GError **error);
/* Unplug the disk with this serial, waiting like kv_vmm_detach_nic. */
gboolean kv_vmm_detach_disk(KvVmm *vmm, const char *name, const char *serial, GError **error);

G_END_DECLS
