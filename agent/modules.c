/* agent/modules.c: loading kernel modules without kmod (see modules.h).
 * The image has no modprobe, no modules.dep and no udev: the lists are the
 * whole story, and loading is one syscall per module.
 */
#include "modules.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

gboolean agent_module_load(const char *ko_path, GError **error) {
  int fd = open(ko_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "open module %s: %s", ko_path,
                g_strerror(e));
    return FALSE;
  }
  /* finit_module lets the kernel read the file itself: no copy through
   * our memory. */
  long r = syscall(SYS_finit_module, fd, "", 0);
  int e = errno;
  close(fd);
  if (r != 0 && e == ENOSYS) {
    /* Kernels without finit_module: hand over the image in memory. */
    g_autofree char *image = NULL;
    gsize len = 0;
    if (!g_file_get_contents(ko_path, &image, &len, error))
      return FALSE;
    r = syscall(SYS_init_module, image, (unsigned long)len, "");
    e = errno;
  }
  if (r != 0 && e != EEXIST) {
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "load module %s: %s", ko_path,
                g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

gboolean agent_modules_load_list(const char *list_path, GError **error) {
  g_autofree char *text = NULL;
  g_autoptr(GError) err = NULL;
  if (!g_file_get_contents(list_path, &text, NULL, &err)) {
    if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      agent_debug("no module list %s", list_path);
      return TRUE;
    }
    g_propagate_error(error, g_steal_pointer(&err));
    return FALSE;
  }

  GError *first = NULL;
  guint n = 0;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l != NULL; l++) {
    char *path = g_strstrip(*l);
    if (*path == '\0' || *path == '#')
      continue;
    g_autoptr(GError) one = NULL;
    if (agent_module_load(path, &one)) {
      n++;
      continue;
    }
    agent_error("%s", one->message);
    if (first == NULL)
      first = g_steal_pointer(&one);
  }
  agent_debug("%s: %u modules loaded", list_path, n);
  if (first != NULL) {
    g_propagate_error(error, first);
    return FALSE;
  }
  return TRUE;
}
