/* lib/oci.h: OCI runtime spec handling on the host (see oci.c). */
#pragma once

#include "internal.h"
#include "ocispec.h"

G_BEGIN_DECLS

/* config.json as loaded: root.path (which the host resolves) and all the agent
 * reads; errors name the field. */
gboolean kv_oci_validate(JsonObject *spec, GError **error);
/* The spec as the agent will read it (lib/proto/ocispec.c), or NULL with
 * KATAVM_E_INVALID naming the field. */
KvOciSpec *kv_oci_check(JsonObject *spec, GError **error);
/* The default spec for a plain rootfs, like `runc spec`. */
JsonObject *kv_oci_default_spec(void);
/* The default seccomp profile (linux.seccomp) of a container from a plain
 * rootfs (lib/seccomp.c). */
JsonObject *kv_oci_default_seccomp(void);
/* bundle/config.json parsed, not yet validated: KATAVM_E_NOT_FOUND when
 * the bundle is missing, KATAVM_E_INVALID when it has no config.json or
 * that is not a JSON object, too deep or too large. */
JsonObject *kv_oci_read(const char *bundle, GError **error);
/* Load bundle/config.json (bundle != NULL) or make the default spec for
 * `rootfs`; validate it and resolve the rootfs to a real directory path
 * (*rootfs_out). All failures are KATAVM_E_INVALID with a clear message. */
JsonObject *kv_oci_load(const char *bundle, const char *rootfs, char **rootfs_out, GError **error);
/* Apply caller overrides (NULL / 0 = keep the spec's). */
/* The OCI process object of an exec: args, env (NULL: the container's),
 * cwd (NULL: the container's), user (when set_user), terminal and its
 * consoleSize. */
JsonObject *kv_oci_process_new(const char *const *argv, const char *const *env, const char *cwd,
                               gboolean set_user, guint uid, guint gid, gboolean terminal,
                               guint rows, guint cols);
/* Namespace paths in linux.namespaces name host namespaces (a pod's
 * network namespace, or those of the process standing for its sandbox
 * container), which a container in a VM cannot join: drop them. The
 * container then shares the VM's network with its pod and gets ipc, uts
 * and pid namespaces of its own in the guest. */
void kv_oci_pod_namespaces(JsonObject *spec);
/* Set annotations[key] = value (taken) in spec, making the object when
 * there is none. */
void kv_oci_set_annotation(JsonObject *spec, const char *key, char *value);
void kv_oci_override(JsonObject *spec, const char *const *argv, const char *const *env,
                     const char *cwd, const char *hostname, int tty, int readonly);

/* Append each "HOST:DEST[:OPTIONS]" of volumes (NULL-terminated, may be
 * NULL) to spec.mounts as a recursive bind mount; errors name the volume.
 * A disk volume (HOST a block device, or the option "disk") gets the
 * option KV_OCI_DISK_OPTION, for kv_oci_take_disks. */
gboolean kv_oci_add_volumes(JsonObject *spec, const char *const *volumes, GError **error);
/* The mount option that makes a bind mount of an image file a disk
 * volume (a bind mount of a block device is one without it). */
#define KV_OCI_DISK_OPTION "x-katavm.disk"
/* Take the disk volumes out of spec.mounts: each bind mount whose source
 * (relative: to `bundle`) is a block device, and each with the option
 * KV_OCI_DISK_OPTION (its source a block device or an image file). They
 * go to *disks (KvVolume*: source the real host path; NULL when none), to
 * be hot-plugged and their file systems mounted at their destinations in
 * the guest once the container exists. KATAVM_E_INVALID names the mount
 * whose disk is missing or of another kind, or whose destination is not
 * absolute or holds "." or "..". */
gboolean kv_oci_take_disks(JsonObject *spec, const char *bundle, GPtrArray **disks, GError **error);
/* The volumes of a checked spec: every bind mount, its source a host path
 * (relative: to `bundle`) resolved to a real directory or regular file.
 * A GPtrArray of KvVolume* (freeing them), or NULL with KATAVM_E_INVALID
 * naming the mount. */
GPtrArray *kv_oci_volumes(const KvOciSpec *parsed, const char *bundle, GError **error);
/* The mount points that a read-only root must already hold (the shim
 * makes them in the rootfs before sharing it read-only, as runc does:
 * KvMountPoint): the destination of each spec mount, of each disk volume
 * (KvVolume* of kv_oci_take_disks, may be NULL) and the process's cwd,
 * each one that lands in the root itself, under no earlier mount's
 * destination; a file for a bind of a regular file (volumes: of
 * kv_oci_volumes), else a directory. A GPtrArray freeing its elements. */
GPtrArray *kv_oci_mountpoints(const KvOciSpec *parsed, const GPtrArray *volumes,
                              const GPtrArray *disks);

G_END_DECLS
