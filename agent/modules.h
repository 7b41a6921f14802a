/* agent/modules.h: loading the kernel modules the image carries.
 *
 * build-image.sh writes two lists of absolute .ko paths, each already in
 * dependency order (resolved on the host with modprobe --show-depends):
 * the early list holds what the agent channel needs, the late list the
 * rest (9p, virtio-net/blk/mem, vsock).
 */
#pragma once

#include <glib.h>

#define AGENT_MODULES_EARLY "/lib/katavm/modules.early"
#define AGENT_MODULES_LATE "/lib/katavm/modules.late"

/* Loads every module of the list in order. A module that is already loaded
 * counts as loaded. Keeps going after a failure (each is logged) and then
 * returns FALSE with the first failure; a missing list file loads nothing
 * and succeeds (a kernel with everything built in). */
gboolean agent_modules_load_list(const char *list_path, GError **error);

/* Loads one module file. */
gboolean agent_module_load(const char *ko_path, GError **error);
