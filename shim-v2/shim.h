/* shim-v2/shim.h: what the files of containerd-shim-katavm-v2 share.
 *
 * One shim serves one pod: the sandbox (the VM) and its member containers,
 * each a Task. A Task's processes (the init and its execs) are Procs; each
 * started Proc has a thread that pumps its stdio FIFOs and reaps it. The
 * public API is used from several threads: every call on the sandbox handle
 * holds Shim.lock, every call on a process handle holds its Proc.plock. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "github.com/containerd/containerd/api/types/mount.pb-c.h"
#include "katavm/katavm.h"

typedef struct Task Task;

typedef enum { PROC_CREATED = 1, PROC_RUNNING, PROC_STOPPED } ProcStatus;

typedef struct {
  Task *task;
  char *exec_id; /* NULL for the init */
  char *stdin_path, *stdout_path, *stderr_path;
  int terminal;
  char *spec_json; /* an exec's OCI process, until it starts */
  katavm_process *p;
  GMutex plock;
  ProcStatus status;
  int exit_code;
  gint64 exited_at_us;
  gboolean close_stdin; /* CloseIO asked for it */
  GThread *io;
} Proc;

struct Task {
  char *id;
  char *bundle;
  char *rootfs;        /* BUNDLE/rootfs when the shim mounted it, else NULL */
  gboolean is_sandbox; /* it created the sandbox: deleting it tears the VM down */
  gboolean paused;
  guint64 oom_kills; /* the guest's memory.events oom_kill count last seen */
  Proc *init;
  GHashTable *execs; /* exec id -> Proc */
};

typedef struct {
  char *ns, *address, *publish_binary, *id, *bundle;
  gboolean debug;
  char *socket_path;
  katavm_runtime *rt;
  GMutex lock;
  GCond exited; /* broadcast when a Proc stops */
  katavm_sandbox *sb;
  GHashTable *tasks; /* id -> Task */
  volatile int stop;
} Shim;

extern Shim *shim_global;

void shim_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* The library runtime, configured on first use from the runtime options'
 * ConfigPath (config_path, may be NULL), KATAVM_RUNTIME_CONFIG or
 * /etc/katavm/runtime.conf, the first that is set. */
katavm_runtime *shim_runtime(const char *config_path, katavm_error **err);

/* task.c: the ttrpc handler of containerd.task.v2.Task. */
int task_handle(void *ctx, const char *service, const char *method, const uint8_t *payload,
                size_t len, uint8_t **resp, size_t *resp_len, char **msg);

/* task.c: publish TaskOOM when the container's OOM kill count in the guest
 * grew (call with s->lock held); the thread that checks every running
 * container each second. */
void task_oom_check(Shim *s, Task *t);
void task_oom_watch_start(Shim *s);

/* stdio.c: open the Proc's FIFOs and start its pump-and-reap thread. */
gboolean proc_io_start(Shim *s, Proc *pr, GError **error);

/* events.c: publish an event (a packed message of `type_name`, e.g.
 * "containerd.events.TaskExit") on topic through the publish binary, in
 * order, from a thread of its own. */
void events_publish(Shim *s, const char *topic, const char *type_name, uint8_t *packed, size_t len);
void events_flush(void);

/* mounts.c: mount the rootfs mounts of a Create at target; unmount. */
gboolean mounts_apply(Containerd__Types__Mount *const *mounts, size_t n, const char *target,
                      GError **error);
void mounts_remove(const char *target);
