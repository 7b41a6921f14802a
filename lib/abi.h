/* lib/abi.h: the size rules of the public config and result structs (see
 * "Structs that can grow" in katavm.h), in one place. Not installed. */
#pragma once

#include <stddef.h>

#include "katavm/katavm.h"

typedef enum {
  KV_ABI_SANDBOX_CONFIG,
  KV_ABI_GUEST_INFO,
  KV_ABI_CONTAINER_CONFIG,
  KV_ABI_EXEC_CONFIG,
  KV_ABI_HOTPLUG_REQUEST,
  KV_ABI_BUNDLE_INFO,
  KV_ABI_CONTAINER_STATS,
  KV_ABI_POOL_CONFIG,
  KV_ABI_N_STRUCTS
} KvAbiStruct;

/* Check the struct_size of the caller's config `in` and copy what this
 * library knows of it into `local` (local_size = the library's sizeof;
 * fields past a smaller struct_size read as zero). Returns 0, or
 * KATAVM_E_INVALID naming the struct and filling *err. Use the copy, never
 * `in`, afterwards. */
int kv_abi_copy_in(KvAbiStruct s, const void *in, void *local, size_t local_size,
                   katavm_error **err);

/* Check the struct_size of the caller's result struct `out` (same rules as
 * for a config). Returns 0 or KATAVM_E_INVALID. */
int kv_abi_check_out(KvAbiStruct s, const void *out, katavm_error **err);

/* Write a full library-size result `local` into the caller's `out`, up to
 * out's struct_size (which stays as the caller set it). Call after a
 * successful kv_abi_check_out(). */
void kv_abi_copy_out(KvAbiStruct s, void *out, const void *local, size_t local_size);
