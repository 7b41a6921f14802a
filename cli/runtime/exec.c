/* cli/runtime/exec.c: `katavm-runtime exec`: a process in a running
 * container, from an OCI process file (--process, as conmon and
 * containerd pass it) or from the command line. In the foreground this
 * process stands for it; with --detach a child does, whose pid goes in
 * --pid-file, as with runc. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"

typedef struct {
  RtState st;
  katavm_exec_config cfg;
  const char *console; /* absolute */
  const char *pid_file;
} Exec;

/* Start the process; returns the handle or NULL with *msg set. */
static katavm_process *exec_start(Rt *r, Exec *x, int *slave, char **msg) {
  katavm_error *e = NULL;
  katavm_sandbox *sb = NULL;
  katavm_process *p = NULL;
  if (x->console) {
    g_autoptr(GError) ge = NULL;
    if (!rt_console_setup(x->console, slave, &ge)) {
      *msg = g_strdup(ge->message);
      return NULL;
    }
    x->cfg.tty = 1;
  }
  if (rt_open_sandbox(r, &x->st, &sb, &e) < 0 || katavm_exec(sb, x->st.id, &x->cfg, &p, &e) < 0)
    *msg = g_strdup(katavm_error_message(e));
  katavm_error_free(e);
  katavm_sandbox_close(sb);
  return p;
}

static int relay_and_exit(Exec *x, katavm_process *p, int slave) {
  katavm_error *e = NULL;
  int status = rt_relay(p, STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, slave, &e);
  katavm_process_free(p);
  if (status < 0) {
    fprintf(stderr, "katavm-runtime: exec in %s: %s\n", x->st.id, katavm_error_message(e));
    katavm_error_free(e);
    rt_exit_like(255);
  }
  rt_exit_like(status);
}

static int detached_body(Rt *r, gpointer data, int report) {
  Exec *x = data;
  rt_block_signals();
  int slave = -1;
  g_autofree char *msg = NULL;
  katavm_process *p = exec_start(r, x, &slave, &msg);
  g_autoptr(GError) ge = NULL;
  if (p && x->pid_file && !rt_write_pid_file(x->pid_file, getpid(), &ge)) {
    msg = g_strdup_printf("pid file: %s", ge->message);
    katavm_process_signal(p, 9, NULL);
    katavm_process_free(p);
    p = NULL;
  }
  if (!p) {
    rt_child_failed(report, msg);
    return 1;
  }
  rt_child_ready(report);
  return relay_and_exit(x, p, slave);
}

/* --user UID[:GID] */
static gboolean parse_user(const char *u, katavm_exec_config *cfg) {
  g_auto(GStrv) parts = g_strsplit(u, ":", 2);
  guint64 uid = 0, gid = 0;
  if (!g_ascii_string_to_unsigned(parts[0], 10, 0, G_MAXUINT32 - 1, &uid, NULL))
    return FALSE;
  if (parts[1] && !g_ascii_string_to_unsigned(parts[1], 10, 0, G_MAXUINT32 - 1, &gid, NULL))
    return FALSE;
  cfg->set_user = 1;
  cfg->uid = (unsigned int)uid;
  cfg->gid = (unsigned int)gid;
  return TRUE;
}

int cmd_exec(Rt *r, int argc, char **argv) {
  char *process = NULL, *pid_file = NULL, *console = NULL, *cwd = NULL, *user = NULL;
  char **env = NULL, **caps = NULL;
  gboolean detach = FALSE, tty = FALSE, no_new_privs = FALSE;
  char *label = NULL, *apparmor = NULL;
  int preserve_fds = 0;
  GOptionEntry entries[] = {
      {"process", 'p', 0, G_OPTION_ARG_FILENAME, &process, "OCI process JSON file", "FILE"},
      {"detach", 'd', 0, G_OPTION_ARG_NONE, &detach, "leave a process standing for it", NULL},
      {"pid-file", 0, 0, G_OPTION_ARG_FILENAME, &pid_file, "write its host pid here", "FILE"},
      {"tty", 't', 0, G_OPTION_ARG_NONE, &tty, "allocate a pty", NULL},
      {"console-socket", 0, 0, G_OPTION_ARG_FILENAME, &console, "receives the pty master", "SOCK"},
      {"cwd", 0, 0, G_OPTION_ARG_STRING, &cwd, "working directory", "DIR"},
      {"env", 'e', 0, G_OPTION_ARG_STRING_ARRAY, &env, "K=V", "K=V"},
      {"user", 'u', 0, G_OPTION_ARG_STRING, &user, "UID[:GID]", "UID[:GID]"},
      {"cap", 'c', 0, G_OPTION_ARG_STRING_ARRAY, &caps, "accepted", "CAP"},
      {"no-new-privs", 0, 0, G_OPTION_ARG_NONE, &no_new_privs, "accepted", NULL},
      {"process-label", 0, 0, G_OPTION_ARG_STRING, &label, "accepted", "L"},
      {"apparmor", 'a', 0, G_OPTION_ARG_STRING, &apparmor, "accepted", "P"},
      {"preserve-fds", 0, 0, G_OPTION_ARG_INT, &preserve_fds, "accepted", "N"},
      {NULL}};
  int rc = 1;
  Exec x = {0};
  g_autofree char *json = NULL, *here = g_get_current_dir();
  g_autofree char *abs_console = NULL, *abs_pid = NULL;
  g_autoptr(GError) ge = NULL;
  g_autofree char *msg = NULL;
  int slave = -1;
  katavm_process *p = NULL;
  katavm_exec_config_init(&x.cfg);
  if (!rt_parse(r, &argc, &argv, "ID [COMMAND [ARG...]]", entries, TRUE))
    goto out;
  if (argc < 2) {
    rc = rt_error(r, "exec: expected a container id");
    goto out;
  }
  if (!rt_state_load(r, argv[1], &x.st, &ge)) {
    rc = rt_error(r, "%s", ge->message);
    goto out;
  }
  if (process) {
    if (!g_file_get_contents(process, &json, NULL, &ge)) {
      rc = rt_error(r, "exec: --process %s: %s", process, ge->message);
      goto out;
    }
    x.cfg.oci_process = json;
  } else {
    if (argc < 3) {
      rc = rt_error(r, "exec: give a command or --process FILE");
      goto out;
    }
    x.cfg.argv = (const char *const *)argv + 2;
    x.cfg.env = (const char *const *)env;
    x.cfg.cwd = cwd;
    x.cfg.tty = tty;
    if (user && !parse_user(user, &x.cfg)) {
      rc = rt_error(r, "exec: --user '%s': expected UID[:GID]", user);
      goto out;
    }
  }
  if (console)
    x.console = abs_console = g_canonicalize_filename(console, here);
  if (pid_file)
    x.pid_file = abs_pid = g_canonicalize_filename(pid_file, here);
  if (detach) {
    pid_t pid = rt_spawn_child(r, detached_body, &x, x.console != NULL, &ge);
    rc = pid < 0 ? rt_error(r, "%s", ge->message) : 0;
    goto out;
  }
  /* In the foreground: this process stands for it. Signals are blocked
   * before the library starts its threads, so that they reach the relay. */
  rt_block_signals();
  if (x.console)
    setsid();
  p = exec_start(r, &x, &slave, &msg);
  if (!p) {
    rc = rt_error(r, "%s", msg);
    goto out;
  }
  if (x.pid_file && !rt_write_pid_file(x.pid_file, getpid(), &ge))
    rt_error(r, "pid file %s: %s", x.pid_file, ge->message);
  relay_and_exit(&x, p, slave);
out:
  rt_state_clear(&x.st);
  g_free(process);
  g_free(pid_file);
  g_free(console);
  g_free(cwd);
  g_free(user);
  g_free(label);
  g_free(apparmor);
  g_strfreev(env);
  g_strfreev(caps);
  return rc;
}
