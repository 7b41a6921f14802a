/* lib/vmm/accel.c: choosing the accelerator (KVM or TCG).
 *
 * /dev/kvm existing is not enough: on a PVM host it opens, answers the API
 * version and even creates VMs, yet ordinary guest kernels hang right after
 * decompression. Only CPU flags showing hardware virtualisation (vmx/svm)
 * tell a usable KVM apart, so `auto` needs both the flags and a working
 * /dev/kvm. The decision itself (kv_accel_resolve_with) takes its inputs as
 * arguments so tests can drive both branches on any machine. */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

gboolean kv_accel_parse(const char *s, KvAccel *out, GError **error) {
  static const struct {
    const char *name;
    KvAccel accel;
  } names[] = {
      {"auto", KV_ACCEL_AUTO},
      {"kvm", KV_ACCEL_KVM},
      {"tcg", KV_ACCEL_TCG},
  };

  for (gsize i = 0; s && i < G_N_ELEMENTS(names); i++) {
    if (g_ascii_strcasecmp(s, names[i].name) == 0) {
      *out = names[i].accel;
      return TRUE;
    }
  }
  g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
              "unknown accelerator '%s' (expected auto, kvm or tcg)", s ? s : "(null)");
  return FALSE;
}

const char *kv_accel_name(KvAccel a) {
  switch (a) {
  case KV_ACCEL_AUTO:
    return "auto";
  case KV_ACCEL_KVM:
    return "kvm";
  case KV_ACCEL_TCG:
    return "tcg";
  }
  return "unknown";
}

/* Which hardware virtualisation flag the "flags" lines of /proc/cpuinfo
 * show: "vmx", "svm" or NULL. Whole tokens only, so a hypothetical flag
 * containing "svm" as a substring does not count. */
static const char *cpuinfo_virt_flag(const char *cpuinfo) {
  if (!cpuinfo)
    return NULL;

  g_auto(GStrv) lines = g_strsplit(cpuinfo, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (!g_str_has_prefix(*l, "flags"))
      continue;
    const char *colon = strchr(*l, ':');
    if (!colon)
      continue;
    g_auto(GStrv) flags = g_strsplit_set(colon + 1, " \t", -1);
    for (char **f = flags; *f; f++) {
      if (g_str_equal(*f, "vmx"))
        return "vmx";
      if (g_str_equal(*f, "svm"))
        return "svm";
    }
  }
  return NULL;
}

gboolean kv_accel_resolve_with(KvAccel want, const char *cpuinfo, gboolean kvm_usable,
                               const char *kvm_detail, KvAccel *out, char **reason,
                               GError **error) {
  const char *flag = cpuinfo_virt_flag(cpuinfo);
  const char *detail = kvm_detail   ? kvm_detail
                       : kvm_usable ? "/dev/kvm usable"
                                    : "/dev/kvm unusable";
  g_autofree char *why = NULL;
  KvAccel got;

  if (want == KV_ACCEL_TCG) {
    got = KV_ACCEL_TCG;
    why = g_strdup("TCG: requested by configuration");
  } else if (flag && kvm_usable) {
    got = KV_ACCEL_KVM;
    why = g_strdup_printf("KVM: CPU flags show %s; %s", flag, detail);
    if (want == KV_ACCEL_KVM) {
      g_autofree char *tmp = g_steal_pointer(&why);
      why = g_strdup_printf("%s (requested by configuration)", tmp);
    }
  } else {
    /* The PVM case lands here: /dev/kvm works but no vmx/svm. Say both
     * halves so `katavm check` explains why a machine with /dev/kvm runs
     * slow. */
    if (!flag && kvm_usable)
      why = g_strdup_printf("CPU flags show no vmx/svm (nested virtualisation unavailable); "
                            "%s but unusable for ordinary guests",
                            detail);
    else if (!flag)
      why = g_strdup_printf("CPU flags show no vmx/svm (nested virtualisation unavailable); %s",
                            detail);
    else
      why = g_strdup_printf("CPU flags show %s but %s", flag, detail);

    if (want == KV_ACCEL_KVM) {
      g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_UNSUPPORTED,
                  "accelerator kvm requested but KVM is not usable: %s", why);
      return FALSE;
    }
    got = KV_ACCEL_TCG;
    g_autofree char *tmp = g_steal_pointer(&why);
    why = g_strdup_printf("TCG: %s", tmp);
  }

  *out = got;
  if (reason)
    *reason = g_steal_pointer(&why);
  return TRUE;
}

/* Probe /dev/kvm the way QEMU does before using it. Returns TRUE when it
 * opens read-write and speaks API version 12; *detail says what was seen. */
static gboolean kvm_probe(char **detail) {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *detail = g_strdup_printf("/dev/kvm: %s", g_strerror(errno));
    return FALSE;
  }
  int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  int saved = errno;
  close(fd);
  if (version < 0) {
    *detail = g_strdup_printf("/dev/kvm: KVM_GET_API_VERSION failed: %s", g_strerror(saved));
    return FALSE;
  }
  if (version != KVM_API_VERSION) {
    *detail = g_strdup_printf("/dev/kvm: API version %d, expected %d", version, KVM_API_VERSION);
    return FALSE;
  }
  *detail = g_strdup("/dev/kvm present");
  return TRUE;
}

gboolean kv_accel_resolve(KvAccel want, KvAccel *out, char **reason, GError **error) {
  if (want == KV_ACCEL_TCG)
    return kv_accel_resolve_with(want, NULL, FALSE, NULL, out, reason, error);

  g_autofree char *cpuinfo = NULL;
  /* Unreadable cpuinfo (odd sandboxes) means we cannot prove vmx/svm:
   * falling back to TCG is slow but always boots. */
  (void)g_file_get_contents("/proc/cpuinfo", &cpuinfo, NULL, NULL);

  g_autofree char *detail = NULL;
  gboolean usable = kvm_probe(&detail);
  return kv_accel_resolve_with(want, cpuinfo, usable, detail, out, reason, error);
}
