/* lib/check.c: katavm_check_host, the host capability report behind
 * `katavm check` (like `kata-runtime kata-check`): what the host offers,
 * what is missing, and how to fix it. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "vmm.h"

static gboolean add_item(JsonArray *items, const char *name, gboolean ok, const char *detail,
                         const char *fix) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, "name", name);
  json_object_set_boolean_member(o, "ok", ok);
  json_object_set_string_member(o, "detail", detail ? detail : "");
  if (!ok && fix)
    json_object_set_string_member(o, "fix", fix);
  json_array_add_object_element(items, o);
  return ok;
}

static gboolean elf_file(const char *path) {
  g_autofree char *data = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return FALSE;
  char m[4] = {0};
  size_t n = fread(m, 1, 4, f);
  fclose(f);
  return n == 4 && memcmp(m,
                          "\x7f"
                          "ELF",
                          4) == 0;
}

int katavm_check_host(katavm_runtime *rt, char **json_out, katavm_error **err) {
  if (!rt || !json_out)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime and json_out must not be NULL");
  g_autoptr(JsonObject) top = json_object_new();
  JsonArray *items = json_array_new();
  gboolean all = TRUE;

  KvAccel want = KV_ACCEL_AUTO, got = KV_ACCEL_TCG;
  g_autofree char *reason = NULL;
  g_autoptr(GError) e = NULL;
  gboolean accel_ok =
      kv_accel_parse(rt->accel, &want, &e) && kv_accel_resolve(want, &got, &reason, &e);
  all &= add_item(items, "accelerator", accel_ok, accel_ok ? reason : e->message,
                  "use accel 'auto' or 'tcg' (KATAVM_ACCEL=tcg) on hosts "
                  "without hardware virtualisation");
  json_object_set_string_member(top, "accel", accel_ok ? kv_accel_name(got) : "none");
  json_object_set_string_member(top, "accel_reason",
                                accel_ok ? (reason ? reason : "") : e->message);

  g_autofree char *qemu = g_find_program_in_path("qemu-system-x86_64");
  all &= add_item(items, "qemu", qemu != NULL, qemu ? qemu : "qemu-system-x86_64 not found in PATH",
                  "apt-get install qemu-system-x86");

  if (rt->uri) {
    g_autoptr(GError) ve = NULL;
    KvVmm *v = kv_vmm_open(rt->uri, &ve);
    g_autofree char *d = v ? g_strdup_printf("%s reachable", rt->uri) : g_strdup(ve->message);
    all &= add_item(items, "libvirt", v != NULL, d,
                    "start libvirtd (apt-get install libvirt-daemon-system) "
                    "or unset KATAVM_LIBVIRT_URI to use the embedded driver");
    if (v)
      kv_vmm_close(v);
  } else {
    gboolean drv = g_file_test("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/"
                               "libvirt_driver_qemu.so",
                               G_FILE_TEST_EXISTS);
    gboolean user = getpwnam("libvirt-qemu") != NULL;
    g_autofree char *d =
        g_strdup_printf("embedded driver (qemu:///embed, no daemon): QEMU driver %s, "
                        "libvirt-qemu user %s",
                        drv ? "present" : "missing", user ? "present" : "missing");
    all &= add_item(items, "libvirt", drv && user, d,
                    "apt-get install libvirt-daemon-driver-qemu "
                    "libvirt-daemon-system");
  }

  gboolean kok = elf_file(rt->kernel);
  g_autofree char *kd = g_strdup_printf(
      "%s%s", rt->kernel, kok ? " (ELF vmlinux, PVH boot)" : " missing or not an ELF vmlinux");
  all &= add_item(items, "kernel", kok, kd, "run `katavm image build`");
  struct stat st;
  gboolean iok = stat(rt->initrd, &st) == 0 && S_ISREG(st.st_mode);
  g_autofree char *id =
      iok ? g_strdup_printf("%s (%lld KiB)", rt->initrd, (long long)st.st_size / 1024)
          : g_strdup_printf("%s missing", rt->initrd);
  all &= add_item(items, "initrd", iok, id, "run `katavm image build`");
  gboolean sok = access(rt->shim, X_OK) == 0;
  all &=
      add_item(items, "shim", sok, rt->shim, "install katavm (cmake --install) or set KATAVM_SHIM");
  gboolean rok = g_mkdir_with_parents(rt->root, 0700) == 0 && access(rt->root, W_OK) == 0;
  all &= add_item(items, "state directory", rok, rt->root,
                  "run as root or set KATAVM_ROOT / --root to a writable dir");

  /* Not a requirement (9p is the fallback), so it never makes the host
   * fail unless virtio-fs was asked for explicitly. */
  g_autofree char *fs_reason = NULL;
  g_autoptr(GError) fe = NULL;
  const char *fs = kv_shared_fs_resolve(rt, &fs_reason, &fe);
  all &= add_item(items, "shared filesystem", fs != NULL, fs ? fs_reason : fe->message,
                  "apt-get install qemu-system-common, or KATAVM_SHARED_FS=9p");
  json_object_set_string_member(top, "shared_fs", fs ? fs : "none");
  json_object_set_string_member(top, "shared_fs_reason", fs ? fs_reason : fe->message);

  /* Optional, never a failure: KSM merges identical guest pages between
   * VMs (QEMU marks guest RAM mergeable by default), at the cost of the
   * host's ksmd scanning. It cannot merge the shared memfd that virtio-fs
   * needs for guest RAM: only private anonymous memory is mergeable. */
  g_autofree char *ksm_run = NULL;
  gboolean ksm_present = g_file_get_contents("/sys/kernel/mm/ksm/run", &ksm_run, NULL, NULL);
  gboolean ksm_on = ksm_present && ksm_run[0] == '1';
  JsonObject *ksm_item = NULL;
  add_item(items, "ksm", ksm_on,
           !ksm_present ? "the host kernel has no KSM (/sys/kernel/mm/ksm missing)"
           : ksm_on     ? "running: identical guest pages are merged (not with virtio-fs's "
                          "shared memory)"
                        : "off: identical guest pages of different VMs are not merged",
           ksm_present ? "echo 1 > /sys/kernel/mm/ksm/run (optional; helps only with "
                         "KATAVM_SHARED_FS=9p)"
                       : "a host kernel with CONFIG_KSM (optional)");
  ksm_item = json_array_get_object_element(items, json_array_get_length(items) - 1);
  json_object_set_boolean_member(ksm_item, "optional", TRUE);
  json_object_set_string_member(top, "ksm", !ksm_present ? "absent" : ksm_on ? "on" : "off");

  json_object_set_boolean_member(top, "ok", all);
  json_object_set_array_member(top, "items", items);
  g_autofree char *s = kv_json_to_string(top);
  *json_out = strdup(s);
  return 0;
}
