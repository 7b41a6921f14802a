/* lib/pool.h: the warm pool's files (docs/pool.md), shared by the library
 * (lib/pool.c: start, list, remove, take) and the keeper
 * (lib/shim/keeper.c). Not installed.
 *
 *   ROOT/pool/pool.json       the shape: size, max vCPUs, max memory
 *   ROOT/pool/template.json   the config every pooled VM boots with
 *   ROOT/pool/keeper.lock     flock(2)ed by the running keeper
 *   ROOT/pool/keeper.pid      its pid
 *   ROOT/pool/keeper.log      its stdout/stderr
 *   ROOT/pool/vms/INST/       one pooled VM's state dir (as ROOT/sandboxes/ID);
 *                             INST/ready once its shim reported OK */
#pragma once

#include "internal.h"

G_BEGIN_DECLS

#define KV_POOL_SIZE_MAX 64
/* What a TCG QEMU costs beside its guest's RAM (docs/performance.md). */
#define KV_POOL_QEMU_OVERHEAD_MIB 100

typedef struct {
  guint32 size, max_vcpus, max_memory_mib;
} KvPoolShape;

char *kv_pool_path(const char *root, const char *name); /* ROOT/pool/NAME (NULL: ROOT/pool) */
gboolean kv_pool_shape_load(const char *root, KvPoolShape *out, GError **error);
gboolean kv_pool_shape_save(const char *root, const KvPoolShape *s, GError **error);
/* Whether a keeper holds ROOT/pool/keeper.lock (a probe: it may take the
 * lock for an instant). */
gboolean kv_pool_keeper_alive(const char *root);
/* Whether a pooled shim for instance `inst` runs (its argv names
 * "--pooled" and the instance; a booting VM has no state.json yet). */
gboolean kv_pool_shim_running(const char *inst);
/* kv_pool_take (the library's create): internal.h. */

G_END_DECLS
