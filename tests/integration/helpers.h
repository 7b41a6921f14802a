/* tests/integration/helpers.h: what every integration test shares: a test
 * state root, running the katavm CLI as a second process, and leak checks
 * (no QEMU, shim, mount or state file may outlive a test). */
#pragma once

#include <check.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#include "katavm/katavm.h"

/* The suite's state root (KATAVM_TEST_ROOT or /tmp/kvt). Its QEMU
 * capabilities cache is kept between tests; everything else is swept. */
const char *kvt_root(void);
/* New runtime on kvt_root() with env defaults (kernel/initrd from the build). */
katavm_runtime *kvt_runtime(void);
/* Destroy every sandbox under the root and kill strays. Used before and
 * after each test so a failed test cannot poison the next one. */
void kvt_sweep(void);
/* Assert that nothing of any sandbox remains: no process whose command line
 * mentions the root, no mount below it, no sandbox state dir. */
void kvt_assert_clean(void);
/* Run the katavm CLI with args (NULL-terminated); returns exit status,
 * stdout/stderr captured if non-NULL. out/err, here and in kvt_exec,
 * kvt_drain and kvt_cli_stdin, must be NULL or a string of the caller's,
 * which is freed first (so that one pair serves several calls). */
int kvt_cli(char **out, char **err, ...) G_GNUC_NULL_TERMINATED;
/* Number of processes whose /proc/PID/cmdline contains needle. */
int kvt_count_procs(const char *needle);
/* The one process whose command line holds a (and b, unless NULL), or 0;
 * asserts that no two do. */
pid_t kvt_find_proc(const char *a, const char *b);
/* Number of QEMU processes of this suite's sandboxes (their command line
 * names kvt_root()), whoever started them (a container manager too). */
int kvt_count_vms(void);
/* Open fds of this process. */
int kvt_count_fds(void);
/* Shorthand: create a sandbox with id, 1 vCPU, 256 MiB; asserts success. */
katavm_sandbox *kvt_create(katavm_runtime *rt, const char *id);
/* Assert an error code and that the message mentions `needle`. */
void kvt_assert_error(int rc, katavm_error *e, int code, const char *needle);
/* Checked fixture pair: sweep before and after each test. */
void kvt_setup(void);
void kvt_teardown(void);

/* Build a busybox rootfs (and, with bundle, a bundle with config.json whose
 * root.path is "rootfs") under dir with tests/rootfs/mkrootfs.sh. Returns
 * the rootfs path or the bundle dir. */
char *kvt_make_rootfs(const char *dir, gboolean bundle);
/* Run argv in a container; stdin_data (may be NULL) is written then closed.
 * Captures stdout/stderr (may be NULL) and returns the exit code; asserts
 * the API calls succeed. */
int kvt_exec(katavm_sandbox *sb, const char *cid, const char *const *argv, const char *stdin_data,
             char **out, char **err);
/* Drain a process handle's stdout/stderr to strings and wait for it. */
int kvt_drain(katavm_process *p, char **out, char **err);
/* kvt_cli with stdin data fed to the child. */
int kvt_cli_stdin(const char *stdin_data, char **out, char **err, ...) G_GNUC_NULL_TERMINATED;
/* Add cap ("CAP_...") to every set of the spec's process.capabilities. */
void kvt_spec_add_cap(JsonObject *spec, const char *cap);
/* Rewrite a bundle's config.json through a JSON edit callback. */
void kvt_edit_spec(const char *bundle, void (*edit)(JsonObject *spec, gpointer), gpointer user);

/* Runs the suite (verbose), sweeps the test root, and gives main's exit
 * status: 0 when every test passed. */
int kvt_run_suite(Suite *s);

/* A fresh, empty work directory beside the test root, named after the test
 * (kvt_root()-work-NAME, or kvt_root()-work for NULL), and its removal. */
char *kvt_workdir_new(const char *name);
void kvt_workdir_drop(char **dir);
/* An ext4 image of `mib` MiB at path holding hello.txt with `text`; with
 * loop, attached to a loop device whose path is returned (NULL without). */
char *kvt_disk_image(const char *path, guint mib, const char *text, gboolean loop);
/* Detach the loop device *dev (NULL: nothing) and clear it. */
void kvt_loop_drop(char **dev);

/* The warm pool of kvt_root(): start one (size, max vCPUs, max MiB; fails
 * the test on error), `katavm_pool_list` as an object, the first ready
 * pooled VM's instance id (or NULL), whether instance `inst` is pooled,
 * wait (bounded) for a ready one, and the pooled VM sandbox `id` was
 * served by (NULL: a cold boot). */
void kvt_pool_start(katavm_runtime *rt, unsigned size, unsigned cpus, unsigned mem);
JsonObject *kvt_pool_list(katavm_runtime *rt);
char *kvt_pool_ready_vm(katavm_runtime *rt);
gboolean kvt_pool_has(katavm_runtime *rt, const char *inst);
char *kvt_pool_wait_ready(katavm_runtime *rt);
char *kvt_instance_of(const char *id);

/* A port of 127.0.0.1 that nothing holds now (for tcp or udp). */
guint kvt_free_port(gboolean udp);
/* GET / from 127.0.0.1:port (30 s receive timeout): the whole response,
 * or NULL when nothing accepts or the request cannot be sent. */
char *kvt_http_get_local(guint port);
