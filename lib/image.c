/* lib/image.c: katavm_image_build, running the guest image builder
 * (image/build-image.sh, installed beside the image) for a kernel release. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "internal.h"

/* Newest release under /lib/modules that also has /boot/vmlinuz-R. */
static char *newest_kernel_release(void) {
  DIR *d = opendir("/lib/modules");
  if (!d)
    return NULL;
  char *best = NULL;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    g_autofree char *k = g_strdup_printf("/boot/vmlinuz-%s", de->d_name);
    if (!g_file_test(k, G_FILE_TEST_EXISTS))
      continue;
    if (!best || strverscmp(de->d_name, best) > 0) {
      g_free(best);
      best = g_strdup(de->d_name);
    }
  }
  closedir(d);
  return best;
}

int katavm_image_build(katavm_runtime *rt, const char *kernel_release, const char *out_dir,
                       int force, katavm_error **err) {
  if (!rt)
    return kv_error_set(err, KATAVM_E_INVALID, "runtime is NULL");
  const char *builder = g_getenv("KATAVM_IMAGE_BUILDER");
  if (!builder || !*builder)
    builder = KATAVM_DEFAULT_IMAGE_BUILDER;
  const char *agent = g_getenv("KATAVM_AGENT");
  if (!agent || !*agent)
    agent = KATAVM_DEFAULT_AGENT;
  g_autofree char *rel = kernel_release ? g_strdup(kernel_release) : newest_kernel_release();
  if (!rel)
    return kv_error_set(err, KATAVM_E_NOT_FOUND,
                        "no kernel found (/boot/vmlinuz-* with modules); "
                        "apt-get install linux-image-amd64");
  if (strchr(rel, '/'))
    return kv_error_set(err, KATAVM_E_INVALID, "kernel release '%s' contains '/'", rel);
  g_autofree char *kpath = g_strdup_printf("/boot/vmlinuz-%s", rel);
  if (!g_file_test(kpath, G_FILE_TEST_EXISTS))
    return kv_error_set(err, KATAVM_E_NOT_FOUND, "kernel %s not found", kpath);
  if (!g_file_test(builder, G_FILE_TEST_IS_EXECUTABLE))
    return kv_error_set(err, KATAVM_E_NOT_FOUND, "image builder %s not found", builder);
  if (!g_file_test(agent, G_FILE_TEST_IS_EXECUTABLE))
    return kv_error_set(err, KATAVM_E_NOT_FOUND, "agent %s not found", agent);
  g_autofree char *dir = out_dir ? g_strdup(out_dir) : g_path_get_dirname(rt->kernel);
  const char *argv[] = {builder, "--kernel-release",       rel, "--agent", agent, "--out",
                        dir,     force ? "--force" : NULL, NULL};
  int status = 0;
  g_autoptr(GError) e = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL, NULL, NULL,
                    &status, &e))
    return kv_error_set(err, KATAVM_E_IO, "cannot run %s: %s", builder, e->message);
  if (!g_spawn_check_wait_status(status, NULL))
    return kv_error_set(err, KATAVM_E_IO, "image build failed (%s exited with status %d)", builder,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return 0;
}
