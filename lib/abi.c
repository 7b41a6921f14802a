/* lib/abi.c: public structs that can grow: their _init functions, the one
 * check of a caller's struct_size against the sizes this library knows,
 * and katavm_struct_size() for bindings that mirror the layouts. */
#include <string.h>

#include "abi.h"
#include "internal.h"

/* The end of `field`: the smallest struct_size that holds it. */
#define KV_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Above this a struct_size is garbage (an uninitialised struct), not a
 * newer layout: its tail is never read. */
#define KV_ABI_SIZE_MAX 4096u

typedef struct {
  const char *name;
  size_t size;     /* this library's sizeof */
  size_t min_size; /* the first layout (libkatavm.so.1): end of its last field */
} KvAbiInfo;

/* When a field is added to a struct, its min_size stays at the last field
 * of the first layout: callers built against the older header keep
 * working. */
static const KvAbiInfo abi_info[KV_ABI_N_STRUCTS] = {
    [KV_ABI_SANDBOX_CONFIG] = {"katavm_sandbox_config", sizeof(katavm_sandbox_config),
                               KV_END(katavm_sandbox_config, max_memory_mib)},
    [KV_ABI_GUEST_INFO] = {"katavm_guest_info", sizeof(katavm_guest_info),
                           KV_END(katavm_guest_info, round_trip_us)},
    [KV_ABI_CONTAINER_CONFIG] = {"katavm_container_config", sizeof(katavm_container_config),
                                 KV_END(katavm_container_config, readonly)},
    [KV_ABI_EXEC_CONFIG] = {"katavm_exec_config", sizeof(katavm_exec_config),
                            KV_END(katavm_exec_config, no_stdin)},
    [KV_ABI_HOTPLUG_REQUEST] = {"katavm_hotplug_request", sizeof(katavm_hotplug_request),
                                KV_END(katavm_hotplug_request, mount_path)},
    [KV_ABI_BUNDLE_INFO] = {"katavm_bundle_info", sizeof(katavm_bundle_info),
                            KV_END(katavm_bundle_info, memory_annotated)},
    [KV_ABI_CONTAINER_STATS] = {"katavm_container_stats", sizeof(katavm_container_stats),
                                KV_END(katavm_container_stats, cpu_period_usec)},
    [KV_ABI_POOL_CONFIG] = {"katavm_pool_config", sizeof(katavm_pool_config),
                            KV_END(katavm_pool_config, max_memory_mib)},
};

size_t katavm_struct_size(const char *name) {
  if (!name)
    return 0;
  for (size_t i = 0; i < G_N_ELEMENTS(abi_info); i++)
    if (!strcmp(abi_info[i].name, name))
      return abi_info[i].size;
  return 0;
}

static int check_size(const KvAbiInfo *t, const void *p, katavm_error **err) {
  size_t n;
  memcpy(&n, p, sizeof n); /* struct_size is the first member of each */
  if (n == 0)
    return kv_error_set(err, KATAVM_E_INVALID, "%s: struct_size is 0: call %s_init() first",
                        t->name, t->name);
  if (n < t->min_size)
    return kv_error_set(err, KATAVM_E_INVALID,
                        "%s: struct_size %zu is below the smallest layout (%zu bytes): call "
                        "%s_init() first",
                        t->name, n, t->min_size, t->name);
  if (n > KV_ABI_SIZE_MAX)
    return kv_error_set(err, KATAVM_E_INVALID,
                        "%s: struct_size %zu is implausibly large: call %s_init() first", t->name,
                        n, t->name);
  const unsigned char *b = p;
  for (size_t i = t->size; i < n; i++)
    if (b[i])
      return kv_error_set(err, KATAVM_E_INVALID,
                          "%s: struct_size %zu is larger than this library's %zu and byte %zu "
                          "past it is set: a field of a newer libkatavm that this one does "
                          "not support",
                          t->name, n, t->size, i);
  return 0;
}

int kv_abi_copy_in(KvAbiStruct s, const void *in, void *local, size_t local_size,
                   katavm_error **err) {
  const KvAbiInfo *t = &abi_info[s];
  g_return_val_if_fail(local_size == t->size, KATAVM_E_INVALID);
  int rc = check_size(t, in, err);
  if (rc < 0)
    return rc;
  size_t n;
  memcpy(&n, in, sizeof n);
  memset(local, 0, local_size);
  memcpy(local, in, MIN(n, local_size));
  return 0;
}

int kv_abi_check_out(KvAbiStruct s, const void *out, katavm_error **err) {
  return check_size(&abi_info[s], out, err);
}

void kv_abi_copy_out(KvAbiStruct s, void *out, const void *local, size_t local_size) {
  g_return_if_fail(local_size == abi_info[s].size);
  size_t n;
  memcpy(&n, out, sizeof n);
  n = MIN(n, local_size);
  /* Everything after struct_size; the caller's struct_size stays. */
  if (n > sizeof n)
    memcpy((unsigned char *)out + sizeof n, (const unsigned char *)local + sizeof n, n - sizeof n);
}

/* ---- _init functions: zero the caller's struct, as large as the caller
 * says it is, and record that size ---- */

static gboolean init_sized(void *p, size_t size) {
  if (!p || size < sizeof(size_t))
    return FALSE;
  memset(p, 0, size);
  memcpy(p, &size, sizeof size);
  return TRUE;
}

void katavm_sandbox_config_init_sized(katavm_sandbox_config *cfg, size_t size) {
  init_sized(cfg, size);
}

void katavm_guest_info_init_sized(katavm_guest_info *info, size_t size) {
  init_sized(info, size);
}

void katavm_container_config_init_sized(katavm_container_config *cfg, size_t size) {
  init_sized(cfg, size);
}

void katavm_exec_config_init_sized(katavm_exec_config *cfg, size_t size) {
  init_sized(cfg, size);
}

void katavm_bundle_info_init_sized(katavm_bundle_info *info, size_t size) {
  init_sized(info, size);
}

void katavm_container_stats_init_sized(katavm_container_stats *st, size_t size) {
  init_sized(st, size);
}

void katavm_pool_config_init_sized(katavm_pool_config *cfg, size_t size) {
  init_sized(cfg, size);
}

void katavm_hotplug_request_init_sized(katavm_hotplug_request *req, size_t size,
                                       katavm_hotplug_kind kind) {
  /* kind sits right after struct_size in every layout */
  if (init_sized(req, size) && size >= KV_END(katavm_hotplug_request, kind))
    req->kind = kind;
}
