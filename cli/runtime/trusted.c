/* cli/runtime/trusted.c: trusted workloads on the host. With a trusted
 * runtime configured ([runtime] trusted_runtime = /usr/bin/runc), a
 * container annotated trusted (io.kubernetes.cri-o.TrustedSandbox=true),
 * or a member of a pod whose sandbox container is, is handed to that
 * runtime with the same command line: its state lives under
 * ROOT/.trusted (that runtime's --root) and ROOT/ID/trusted, which holds
 * that runtime's path, marks it for every later command. Everything else
 * runs in a VM. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt.h"

static char *marker(Rt *r, const char *id) {
  return g_build_filename(r->root, id, "trusted", NULL);
}

gboolean rt_is_trusted(Rt *r, const char *id) {
  if (katavm_id_check(id, NULL, NULL) < 0)
    return FALSE;
  g_autofree char *m = marker(r, id);
  struct stat st;
  return lstat(m, &st) == 0 && S_ISREG(st.st_mode);
}

/* The trusted runtime's argv: its path, our global options that it knows,
 * its own --root, then the command line we were given. */
static char **trusted_argv(Rt *r, const char *bin) {
  GPtrArray *a = g_ptr_array_new();
  g_ptr_array_add(a, g_strdup(bin));
  g_ptr_array_add(a, g_strdup("--root"));
  g_ptr_array_add(a, g_build_filename(r->root, ".trusted", NULL));
  if (r->log) {
    g_ptr_array_add(a, g_strdup("--log"));
    g_ptr_array_add(a, g_strdup(r->log));
    g_ptr_array_add(a, g_strdup("--log-format"));
    g_ptr_array_add(a, g_strdup(r->log_json ? "json" : "text"));
  }
  if (r->debug)
    g_ptr_array_add(a, g_strdup("--debug"));
  for (int i = 0; i < r->cmd_argc; i++)
    g_ptr_array_add(a, g_strdup(r->cmd_argv[i]));
  g_ptr_array_add(a, NULL);
  return (char **)g_ptr_array_free(a, FALSE);
}

static const char *trusted_bin(Rt *r, katavm_error **err) {
  katavm_runtime *lib = rt_lib(r, err);
  if (!lib)
    return NULL;
  const char *bin = katavm_runtime_config_value(lib, "trusted_runtime");
  if (!bin && err)
    *err = NULL;
  return bin;
}

/* The runtime a trusted container was created with (its marker holds the
 * path: later calls may come without our configuration). */
static char *recorded_bin(Rt *r, const char *id) {
  g_autofree char *m = marker(r, id);
  char *bin = NULL;
  if (!g_file_get_contents(m, &bin, NULL, NULL))
    return NULL;
  g_strstrip(bin);
  if (!g_path_is_absolute(bin) || access(bin, X_OK) < 0) {
    g_free(bin);
    return NULL;
  }
  return bin;
}

/* Run the trusted runtime and wait for it; its exit status. */
static int run_trusted(Rt *r, const char *bin) {
  g_auto(GStrv) argv = trusted_argv(r, bin);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return rt_error(r, "fork: %s", g_strerror(errno));
  if (pid == 0) {
    execv(bin, argv);
    fprintf(stderr, "katavm-runtime: cannot run the trusted runtime %s: %s\n", bin,
            g_strerror(errno));
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

void rt_trusted_exec(Rt *r, const char *id) {
  g_autofree char *bin = recorded_bin(r, id);
  if (!bin) {
    rt_error(r, "container %s runs on a trusted runtime that is no longer there", id);
    _exit(1);
  }
  g_auto(GStrv) argv = trusted_argv(r, bin);
  fflush(NULL);
  execv(bin, argv);
  rt_error(r, "cannot run the trusted runtime %s: %s", bin, g_strerror(errno));
  _exit(1);
}

int rt_trusted_create(Rt *r, const char *id, const katavm_bundle_info *bi, gboolean *handled) {
  *handled = FALSE;
  gboolean trusted = bi->trusted == 1;
  /* A pod's members follow their sandbox. */
  if (bi->role == KATAVM_ROLE_MEMBER)
    trusted = rt_is_trusted(r, bi->sandbox_id);
  if (!trusted)
    return 0;
  katavm_error *e = NULL;
  const char *bin = trusted_bin(r, &e);
  if (!bin) {
    /* Without a trusted runtime every container runs in a VM. */
    katavm_error_free(e);
    return 0;
  }
  *handled = TRUE;
  g_autofree char *dir = rt_state_dir(r, id);
  if (g_mkdir_with_parents(r->root, 0700) < 0 || mkdir(dir, 0700) < 0)
    return errno == EEXIST ? rt_error(r, "container with id %s already exists", id)
                           : rt_error(r, "cannot create %s: %s", dir, g_strerror(errno));
  g_autofree char *m = marker(r, id);
  g_autoptr(GError) ge = NULL;
  if (!g_file_set_contents(m, bin, -1, &ge)) {
    rmdir(dir);
    return rt_error(r, "%s: %s", m, ge->message);
  }
  int rc = run_trusted(r, bin);
  if (rc != 0)
    rt_state_remove(r, id);
  return rc;
}

int rt_trusted_delete(Rt *r, const char *id) {
  g_autofree char *bin = recorded_bin(r, id);
  if (!bin)
    return rt_error(r, "container %s runs on a trusted runtime that is no longer there", id);
  int rc = run_trusted(r, bin);
  if (rc == 0) {
    rt_state_remove(r, id);
    /* The trusted runtime's root goes with its last container. */
    g_autofree char *troot = g_build_filename(r->root, ".trusted", NULL);
    rmdir(troot);
  }
  return rc;
}
