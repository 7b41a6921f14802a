/* tests/integration/helpers.h: what every integration test shares: a test
 * state root, running the katavm CLI as a second process, and leak checks
 * (no QEMU, shim, mount or state file may outlive a test). */
#pragma once

#include <check.h>
#include <glib.h>

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
 * stdout/stderr captured if non-NULL. */
int kvt_cli(char **out, char **err, ...) G_GNUC_NULL_TERMINATED;
/* Number of processes whose /proc/PID/cmdline contains needle. */
int kvt_count_procs(const char *needle);
/* Open fds of this process. */
int kvt_count_fds(void);
/* Shorthand: create a sandbox with id, 1 vCPU, 256 MiB; asserts success. */
katavm_sandbox *kvt_create(katavm_runtime *rt, const char *id);
/* Assert an error code and that the message mentions `needle`. */
void kvt_assert_error(int rc, katavm_error *e, int code, const char *needle);
/* Checked fixture pair: sweep before and after each test. */
void kvt_setup(void);
void kvt_teardown(void);
