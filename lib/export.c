/* lib/export.c: the shared library's own translation unit. Everything else
 * comes from the katavm_core archive; only katavm_* symbols are exported
 * (see katavm.map). */
#include "katavm/katavm.h"

KATAVM_API const char *katavm_version(void) {
  return KATAVM_VERSION;
}
