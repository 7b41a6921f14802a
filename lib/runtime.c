/* lib/runtime.c: katavm_runtime, the configuration a caller sets once and
 * every sandbox it creates inherits. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "vmm.h"

static int set_path(char **slot, const char *what, const char *path, katavm_error **err) {
  if (!path || !g_path_is_absolute(path))
    return kv_error_set(err, KATAVM_E_INVALID, "%s path '%s' must be absolute", what,
                        path ? path : "(null)");
  g_free(*slot);
  *slot = g_canonicalize_filename(path, NULL);
  return 0;
}

gboolean kv_virtiofs_cache_valid(const char *s) {
  static const char *const modes[] = {"none", "auto", "always", NULL};
  return s && g_strv_contains(modes, s);
}

static gboolean shared_fs_known(const char *fs) {
  static const char *const kinds[] = {"auto", KV_SHARED_FS_VIRTIOFS, KV_SHARED_FS_9P, NULL};
  return fs && g_strv_contains(kinds, fs);
}

int katavm_runtime_new(katavm_runtime **out, katavm_error **err) {
  if (!out)
    return kv_error_set(err, KATAVM_E_INVALID, "out is NULL");
  katavm_runtime *rt = g_new0(katavm_runtime, 1);
  rt->root = g_strdup("/run/katavm");
  rt->accel = g_strdup("auto");
  rt->kernel = g_strdup(KATAVM_DEFAULT_KERNEL);
  rt->initrd = g_strdup(KATAVM_DEFAULT_INITRD);
  rt->shim = g_strdup(KATAVM_DEFAULT_SHIM);
  rt->vcpus = 1;
  rt->memory_mib = 256;
  rt->memory_hotplug = g_strdup("auto");
  rt->shared_fs = g_strdup("auto");
  rt->virtiofsd = g_strdup(KV_VIRTIOFSD_DEFAULT);
  rt->virtiofs_cache = g_strdup(KV_VIRTIOFS_CACHE_DEFAULT);
  rt->virtiofs_timeout_ms = KV_VIRTIOFS_TIMEOUT_MS_DEFAULT;
  const char *v;
  int rc = 0;
  if (!rc && (v = g_getenv("KATAVM_ROOT")) && *v)
    rc = katavm_runtime_set_root(rt, v, err);
  if (!rc && (v = g_getenv("KATAVM_LIBVIRT_URI")))
    rc = katavm_runtime_set_libvirt_uri(rt, v, err);
  if (!rc && (v = g_getenv("KATAVM_ACCEL")) && *v)
    rc = katavm_runtime_set_accel(rt, v, err);
  if (!rc && (v = g_getenv("KATAVM_KERNEL")) && *v)
    rc = katavm_runtime_set_kernel(rt, v, err);
  if (!rc && (v = g_getenv("KATAVM_INITRD")) && *v)
    rc = katavm_runtime_set_initrd(rt, v, err);
  if (!rc && (v = g_getenv("KATAVM_MEMORY_HOTPLUG")) && *v)
    rc = katavm_runtime_set_memory_hotplug(rt, v, err);
  if (!rc && (v = g_getenv("KATAVM_SHIM")) && *v)
    rc = set_path(&rt->shim, "shim", v, err);
  if (!rc && (v = g_getenv("KATAVM_SHARED_FS")) && *v) {
    if (shared_fs_known(v))
      rc = katavm_runtime_set_shared_fs(rt, v, err);
    else
      rc = kv_error_set(err, KATAVM_E_INVALID,
                        "KATAVM_SHARED_FS: shared filesystem '%s' is not auto, virtio-fs or 9p", v);
  }
  if (!rc && (v = g_getenv("KATAVM_VIRTIOFSD")) && *v)
    rc = set_path(&rt->virtiofsd, "KATAVM_VIRTIOFSD: virtiofsd", v, err);
  if (!rc && (v = g_getenv("KATAVM_TCG_TB_CACHE_MIB")) && *v) {
    guint64 n = 0;
    if (g_ascii_string_to_unsigned(v, 10, KV_TB_CACHE_MIB_MIN, KV_TB_CACHE_MIB_MAX, &n, NULL))
      rt->tb_cache_mib = (guint)n;
    else
      rc = kv_error_set(err, KATAVM_E_INVALID,
                        "KATAVM_TCG_TB_CACHE_MIB: '%s' is not a size in MiB from %d to %d", v,
                        KV_TB_CACHE_MIB_MIN, KV_TB_CACHE_MIB_MAX);
  }
  if (!rc && (v = g_getenv("KATAVM_VIRTIOFS_CACHE")) && *v) {
    if (kv_virtiofs_cache_valid(v)) {
      g_free(rt->virtiofs_cache);
      rt->virtiofs_cache = g_strdup(v);
    } else {
      rc = kv_error_set(err, KATAVM_E_INVALID,
                        "KATAVM_VIRTIOFS_CACHE: virtio-fs cache mode '%s' is not none, auto or "
                        "always",
                        v);
    }
  }
  if (!rc && (v = g_getenv("KATAVM_VIRTIOFS_TIMEOUT_MS")) && *v) {
    gint64 ms = 0;
    if (!strcmp(v, "default"))
      rt->virtiofs_timeout_ms = -1;
    else if (g_ascii_string_to_signed(v, 10, 0, KV_VIRTIOFS_TIMEOUT_MS_MAX, &ms, NULL))
      rt->virtiofs_timeout_ms = ms;
    else
      rc = kv_error_set(err, KATAVM_E_INVALID,
                        "KATAVM_VIRTIOFS_TIMEOUT_MS: '%s' is not 0..%d milliseconds or 'default'",
                        v, KV_VIRTIOFS_TIMEOUT_MS_MAX);
  }
  if (rc) {
    katavm_runtime_free(rt);
    return rc;
  }
  *out = rt;
  return 0;
}

void katavm_runtime_free(katavm_runtime *rt) {
  if (!rt)
    return;
  g_free(rt->root);
  g_free(rt->uri);
  g_free(rt->accel);
  g_free(rt->kernel);
  g_free(rt->initrd);
  g_free(rt->shim);
  g_free(rt->memory_hotplug);
  g_free(rt->shared_fs);
  g_free(rt->virtiofsd);
  g_free(rt->virtiofs_cache);
  if (rt->conf)
    g_hash_table_unref(rt->conf);
  g_free(rt);
}

int katavm_runtime_set_root(katavm_runtime *rt, const char *dir, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  /* Sockets nest below ROOT/r/<12 hex>/vmm/...: keep room under 108 bytes. */
  if (dir && strlen(dir) > 32)
    return kv_error_set(err, KATAVM_E_INVALID,
                        "root '%s' is longer than 32 characters; unix socket "
                        "paths below it would exceed 108 bytes",
                        dir);
  return set_path(&rt->root, "root", dir, err);
}

int katavm_runtime_set_libvirt_uri(katavm_runtime *rt, const char *uri, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  g_free(rt->uri);
  rt->uri = (uri && *uri) ? g_strdup(uri) : NULL;
  return 0;
}

int katavm_runtime_set_accel(katavm_runtime *rt, const char *accel, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  KvAccel a;
  g_autoptr(GError) e = NULL;
  if (!kv_accel_parse(accel, &a, &e))
    return kv_error_propagate(err, e);
  g_free(rt->accel);
  rt->accel = g_strdup(kv_accel_name(a));
  return 0;
}

int katavm_runtime_set_kernel(katavm_runtime *rt, const char *path, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  return set_path(&rt->kernel, "kernel", path, err);
}

int katavm_runtime_set_initrd(katavm_runtime *rt, const char *path, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  return set_path(&rt->initrd, "initrd", path, err);
}

int katavm_runtime_set_memory_hotplug(katavm_runtime *rt, const char *mode, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  static const char *const modes[] = {"auto", "virtio-mem", "dimm", NULL};
  if (!mode || !g_strv_contains(modes, mode))
    return kv_error_set(err, KATAVM_E_INVALID,
                        "memory hotplug mode '%s' is not auto, virtio-mem or dimm",
                        mode ? mode : "(null)");
  g_free(rt->memory_hotplug);
  rt->memory_hotplug = g_strdup(mode);
  return 0;
}

int katavm_runtime_set_shared_fs(katavm_runtime *rt, const char *fs, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  if (!shared_fs_known(fs))
    return kv_error_set(err, KATAVM_E_INVALID,
                        "shared filesystem '%s' is not auto, virtio-fs or 9p", fs ? fs : "(null)");
  g_free(rt->shared_fs);
  rt->shared_fs = g_strdup(fs);
  return 0;
}

const char *kv_shared_fs_resolve(const katavm_runtime *rt, char **reason, GError **error) {
  gboolean have = access(rt->virtiofsd, X_OK) == 0;
  const char *got = NULL;
  char *why = NULL;
  if (!g_strcmp0(rt->shared_fs, KV_SHARED_FS_9P)) {
    got = KV_SHARED_FS_9P;
    why = g_strdup("9p, as configured");
  } else if (have) {
    got = KV_SHARED_FS_VIRTIOFS;
    why = g_strdup_printf("virtio-fs (%s, one per sandbox)%s", rt->virtiofsd,
                          g_strcmp0(rt->shared_fs, "auto") ? ", as configured"
                                                           : ": auto, virtiofsd is present");
  } else if (!g_strcmp0(rt->shared_fs, "auto")) {
    got = KV_SHARED_FS_9P;
    why = g_strdup_printf("9p: auto, and virtiofsd %s is missing (apt-get install "
                          "qemu-system-common for virtio-fs)",
                          rt->virtiofsd);
  } else {
    g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND,
                "shared filesystem virtio-fs needs virtiofsd, and %s is not an executable "
                "(apt-get install qemu-system-common, or use 9p)",
                rt->virtiofsd);
    return NULL;
  }
  if (!g_strcmp0(got, KV_SHARED_FS_9P) && !rt->uri) {
    /* The embedded driver serves 9p through QEMU's proxy backend, so that
     * QEMU runs unprivileged (lib/shim/vfsd.c). */
    if (access(KV_VIRTFS_PROXY_HELPER, X_OK) != 0) {
      g_free(why);
      g_set_error(error, KV_ERROR, KATAVM_E_NOT_FOUND,
                  "shared filesystem 9p needs %s, which is not an executable (apt-get install "
                  "qemu-system-common)",
                  KV_VIRTFS_PROXY_HELPER);
      return NULL;
    }
    char *more = g_strdup_printf("%s (QEMU's proxy backend: %s, one per sandbox)", why,
                                 KV_VIRTFS_PROXY_HELPER);
    g_free(why);
    why = more;
  }
  if (reason)
    *reason = why;
  else
    g_free(why);
  return got;
}

int katavm_runtime_set_defaults(katavm_runtime *rt, unsigned int vcpus, unsigned int memory_mib,
                                katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  if (vcpus < 1 || vcpus > 256)
    return kv_error_set(err, KATAVM_E_INVALID, "vcpus %u is not in 1..256", vcpus);
  if (memory_mib < KATAVM_MIN_MEMORY_MIB)
    return kv_error_set(err, KATAVM_E_INVALID, "memory %u MiB is below the guest minimum of %u MiB",
                        memory_mib, KATAVM_MIN_MEMORY_MIB);
  rt->vcpus = vcpus;
  rt->memory_mib = memory_mib;
  return 0;
}

const char *katavm_runtime_root(const katavm_runtime *rt) {
  return rt ? rt->root : NULL;
}
