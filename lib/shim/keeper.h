/* lib/shim/keeper.h: `katavm-shim --pool-keeper --root DIR` (keeper.c),
 * the long-lived process that keeps a root's warm pool full (docs/pool.md).
 * Beside the per-sandbox layers: it only starts shims. */
#pragma once

/* Run the keeper of ROOT's pool (set up by katavm_pool_start: pool.h);
 * reports on ready_fd once it holds the pool's lock. Returns the exit
 * status (it runs until killed). */
int keeper_main(const char *root, int ready_fd);
