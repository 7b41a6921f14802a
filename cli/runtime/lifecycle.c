/* cli/runtime/lifecycle.c: `start`, `kill` and `delete`, and the status of a
 * container as `state`, `list` and `delete` see it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt.h"

/* Load the container named by the one argument left after options. */
static gboolean load_one(Rt *r, int argc, char **argv, RtState *s, int *rc) {
  if (argc < 2) {
    *rc = rt_error(r, "%s: expected a container id", argv[0]);
    return FALSE;
  }
  g_autoptr(GError) e = NULL;
  if (!rt_state_load(r, argv[1], s, &e)) {
    *rc = rt_error(r, "%s", e->message);
    return FALSE;
  }
  return TRUE;
}

const char *rt_status(Rt *r, const RtState *s, pid_t *pid_out) {
  *pid_out = 0;
  if (!rt_pid_alive(s->pid, s->pid_start))
    return "stopped";
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (rt_open_sandbox(r, s, &sb, &e) < 0) {
    katavm_error_free(e);
    return "stopped";
  }
  katavm_container_state_t st = KATAVM_CONTAINER_UNKNOWN;
  int rc = katavm_container_state(sb, s->id, &st, NULL, &e);
  katavm_sandbox_close(sb);
  if (rc < 0) {
    katavm_error_free(e);
    return "stopped";
  }
  if (st == KATAVM_CONTAINER_STOPPED)
    return "stopped";
  *pid_out = s->pid;
  return st == KATAVM_CONTAINER_CREATED  ? "created"
         : st == KATAVM_CONTAINER_PAUSED ? "paused"
                                         : "running";
}

int cmd_start(Rt *r, int argc, char **argv) {
  GOptionEntry entries[] = {{NULL}};
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    return 1;
  RtState s;
  int rc = 1;
  if (!load_one(r, argc, argv, &s, &rc))
    return rc;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (rt_open_sandbox(r, &s, &sb, &e) < 0 || katavm_container_start(sb, s.id, &e) < 0)
    rc = rt_fail(r, e);
  else
    rc = 0;
  katavm_sandbox_close(sb);
  rt_state_clear(&s);
  return rc;
}

int cmd_kill(Rt *r, int argc, char **argv) {
  gboolean all = FALSE;
  GOptionEntry entries[] = {
      {"all", 'a', 0, G_OPTION_ARG_NONE, &all, "signal every process of the container", NULL},
      {NULL}};
  if (!rt_parse(r, &argc, &argv, "ID [SIGNAL]", entries, FALSE))
    return 1;
  int sig = SIGTERM;
  if (argc > 2 && (sig = rt_parse_signal(argv[2])) < 0)
    return rt_error(r, "kill: unknown signal '%s'", argv[2]);
  RtState s;
  int rc = 1;
  if (!load_one(r, argc, argv, &s, &rc))
    return rc;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  pid_t pid;
  const char *status = rt_status(r, &s, &pid);
  if (!strcmp(status, "stopped")) {
    rc = rt_error(r, "container %s is not running", s.id);
  } else if (rt_open_sandbox(r, &s, &sb, &e) < 0) {
    rc = rt_fail(r, e);
  } else if (!strcmp(status, "created")) {
    /* Nothing runs yet: the init that waits for start goes, as a killed
     * runc init would; the stand-in then exits. */
    rc = katavm_container_remove(sb, s.id, 1, &e) < 0 ? rt_fail(r, e) : 0;
  } else {
    rc = katavm_container_kill(sb, s.id, sig, all, &e) < 0 ? rt_fail(r, e) : 0;
  }
  katavm_sandbox_close(sb);
  rt_state_clear(&s);
  return rc;
}

/* Wait (bounded) for the stand-in to exit; then it must go. */
static void reap_stand_in(const RtState *s) {
  for (int i = 0; i < 200 && rt_pid_alive(s->pid, s->pid_start); i++)
    g_usleep(50 * 1000);
  if (rt_pid_alive(s->pid, s->pid_start))
    kill(s->pid, SIGKILL);
}

int cmd_delete(Rt *r, int argc, char **argv) {
  gboolean force = FALSE;
  GOptionEntry entries[] = {
      {"force", 'f', 0, G_OPTION_ARG_NONE, &force, "kill a running container first", NULL}, {NULL}};
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    return 1;
  if (argc < 2)
    return rt_error(r, "delete: expected a container id");
  if (rt_is_trusted(r, argv[1]))
    return rt_trusted_delete(r, argv[1]);
  RtState s;
  g_autoptr(GError) ge = NULL;
  if (!rt_state_load(r, argv[1], &s, &ge)) {
    if (force && g_error_matches(ge, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
      return 0;
    return rt_error(r, "%s", ge->message);
  }
  pid_t pid;
  const char *status = rt_status(r, &s, &pid);
  int rc = 0;
  if (!strcmp(status, "running") && !force) {
    rc = rt_error(r, "cannot delete container %s that is not stopped: %s (use --force)", s.id,
                  status);
    goto out;
  }
  katavm_error *e = NULL;
  katavm_runtime *lib = rt_lib(r, &e);
  if (!lib) {
    rc = rt_fail(r, e);
    goto out;
  }
  if (s.is_sandbox) {
    /* The pod's sandbox container: its VM, and every member with it. */
    if (katavm_sandbox_destroy(lib, s.sandbox, &e) < 0 &&
        katavm_error_code(e) != KATAVM_E_NOT_FOUND) {
      rc = rt_fail(r, e);
      goto out;
    }
    katavm_error_free(e);
  } else {
    katavm_sandbox *sb = NULL;
    if (katavm_sandbox_open(lib, s.sandbox, &sb, &e) == 0) {
      if (katavm_container_remove(sb, s.id, 1, &e) < 0 &&
          katavm_error_code(e) != KATAVM_E_NOT_FOUND) {
        katavm_sandbox_close(sb);
        rc = rt_fail(r, e);
        goto out;
      }
      katavm_sandbox_close(sb);
    }
    /* A sandbox that is gone took the container with it. */
    katavm_error_free(e);
  }
  reap_stand_in(&s);
  rt_state_remove(r, s.id);
out:
  rt_state_clear(&s);
  return rc;
}
