/* cli/runtime/rt.h: what the katavm-runtime command files share: global
 * options, the library runtime they configure, error reporting in runc's
 * manner (stderr and the --log file, text or JSON), the runtime's own
 * per-container state under --root, and the process that stands for a
 * guest process on the host. Public API only. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#include "katavm/katavm.h"

typedef struct {
  char *root; /* --root: the runtime's state (one dir per container) */
  char *log;  /* --log FILE, or NULL */
  gboolean log_json;
  gboolean debug;
  char *config; /* --config FILE / KATAVM_RUNTIME_CONFIG, or NULL */
  katavm_runtime *lib;
  /* The command and its arguments as given (for the trusted runtime). */
  int cmd_argc;
  char **cmd_argv;
  /* Commands on one container hand a trusted one over (trusted.c). */
  gboolean dispatch;
} Rt;

/* Report an error (stderr, and the --log file); returns 1, the exit
 * status of a failed command. */
int rt_error(Rt *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* rt_error() with a library error's message (consumed). */
int rt_fail(Rt *r, katavm_error *e);
void rt_debug(Rt *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Parse a command's options (argv[0] is the command); posix: stop at the
 * first argument. Returns FALSE after reporting bad usage. */
gboolean rt_parse(Rt *r, int *argc, char ***argv, const char *usage, const GOptionEntry *entries,
                  gboolean posix);

/* The library runtime, configured from the config file on first use. */
katavm_runtime *rt_lib(Rt *r, katavm_error **err);

/* One container's record under ROOT/ID/state.json. */
typedef struct {
  char *id;
  char *bundle;
  char *sandbox;       /* the sandbox (VM) it runs in */
  gboolean is_sandbox; /* it started that sandbox: deleting it tears the VM down */
  pid_t pid;           /* the host process that stands for its init */
  guint64 pid_start;   /* that process's start time (/proc/PID/stat), against pid reuse */
  char *created;       /* RFC 3339 */
  /* The configuration file create used (absolute), or NULL: later commands
   * use it too, since managers pass runtime flags to some calls only. */
  char *config;
  JsonObject *annotations;
} RtState;

void rt_state_clear(RtState *s);
char *rt_state_dir(Rt *r, const char *id);
/* Load ROOT/ID/state.json; FALSE with a runc-like message when absent. */
gboolean rt_state_load(Rt *r, const char *id, RtState *s, GError **error);
gboolean rt_state_save(Rt *r, const RtState *s, GError **error);
/* Remove ROOT/ID and what is in it. */
void rt_state_remove(Rt *r, const char *id);
/* The ids under ROOT, sorted. */
char **rt_state_list(Rt *r);

/* Start time of a process (field 22 of /proc/PID/stat), 0 if gone. */
guint64 rt_pid_start(pid_t pid);
/* Whether the recorded host process still runs (same pid and start). */
gboolean rt_pid_alive(pid_t pid, guint64 start);
/* Write a pid file as runc does (a temporary file renamed into place). */
gboolean rt_write_pid_file(const char *path, pid_t pid, GError **error);

/* Open the container's sandbox. */
int rt_open_sandbox(Rt *r, const RtState *s, katavm_sandbox **out, katavm_error **err);

/* The container's OCI status ("created", "running", "stopped") from its
 * stand-in and the guest; *pid_out: the stand-in's pid, 0 once stopped. */
const char *rt_status(Rt *r, const RtState *s, pid_t *pid_out);

/* Parse a signal given as a name (KILL, SIGKILL) or a number. */
int rt_parse_signal(const char *s);

/* The host process for a guest process (cli/runtime/io.c).
 * Standing for a container's init or an exec'd process: relays its stdio
 * between our fds (in/out/err, or one pty end in `tty`) and the process
 * handle, forwards every catchable signal it gets to the guest process,
 * follows the pty's window size, and returns the guest process's exit
 * status (shell convention), or -1 with *err when the guest went away.
 * Signals must have been blocked with rt_block_signals() before the
 * library started any thread. */
int rt_relay(katavm_process *p, int in, int out, int err_fd, int tty, katavm_error **err);
void rt_block_signals(void);
/* Exit as the guest process did: by re-raising its signal (without a core
 * dump) when it died by one, else with its status. */
void rt_exit_like(int status) G_GNUC_NORETURN;

/* A pty for --console-socket: its master goes over the unix socket at
 * `path` (SCM_RIGHTS, as runc sends it); *slave_out keeps our end, raw.
 * rows/cols: the pty's initial size (0 = leave). */
gboolean rt_console_setup(const char *path, int *slave_out, GError **error);

/* A child that will stand for a guest process: fork, and in the child run
 * `body`, which reports readiness through rt_child_ready() (or failure
 * through rt_child_failed()) and then relays until the process exits.
 * The parent waits for that report: returns the child's pid once ready,
 * or -1 with the child's error message in *error. */
typedef int (*RtChildBody)(Rt *r, gpointer data, int report_fd);
pid_t rt_spawn_child(Rt *r, RtChildBody body, gpointer data, gboolean new_session, GError **error);
void rt_child_ready(int report_fd);
void rt_child_failed(int report_fd, const char *msg);

/* Trusted workloads (cli/runtime/trusted.c). */
gboolean rt_is_trusted(Rt *r, const char *id);
/* Replace this process by the trusted runtime with our command line. */
void rt_trusted_exec(Rt *r, const char *id) G_GNUC_NORETURN;
/* create: *handled = TRUE when the bundle goes to the trusted runtime;
 * then its exit status. */
int rt_trusted_create(Rt *r, const char *id, const katavm_bundle_info *bi, gboolean *handled);
int rt_trusted_delete(Rt *r, const char *id);

/* cli/runtime/procfs.c: in the stand-in of container `id`'s init, before
 * it relays: move the calling (main) thread into a mount namespace of its
 * own whose /proc shows the container's processes in the guest, which is
 * where `podman top` (psgo) reads them. Best effort: on failure nothing
 * changes (a debug message says why). */
void rt_procfs_serve(Rt *r, const char *id);

int cmd_create(Rt *r, int argc, char **argv);
int cmd_start(Rt *r, int argc, char **argv);
int cmd_state(Rt *r, int argc, char **argv);
int cmd_list(Rt *r, int argc, char **argv);
int cmd_kill(Rt *r, int argc, char **argv);
int cmd_delete(Rt *r, int argc, char **argv);
int cmd_exec(Rt *r, int argc, char **argv);
int cmd_ps(Rt *r, int argc, char **argv);
int cmd_pause(Rt *r, int argc, char **argv);
int cmd_resume(Rt *r, int argc, char **argv);
int cmd_update(Rt *r, int argc, char **argv);
int cmd_features(Rt *r, int argc, char **argv);
int cmd_spec(Rt *r, int argc, char **argv);
