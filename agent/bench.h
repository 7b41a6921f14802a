/* agent/bench.h: the guest half of bench/exec's throughput floor.
 *
 * bench/exec compares how fast a process's stdout reaches a library caller
 * with how fast the same guest can push bytes through a bare virtio-serial
 * port, no protocol, no shim. That floor needs a writer inside the guest
 * that is not a container process: the agent itself, asked for by the
 * kernel command line word katavm.bench_mib=N (never present in a
 * sandbox's command line, so a sandbox does nothing here).
 */
#pragma once

#include <glib.h>

/* The virtio-serial port the floor's bytes go out on. */
#define AGENT_BENCH_PORT "io.katavm.bench.0"

/* Reads /proc/cmdline; with katavm.bench_mib=N starts a thread that waits
 * for a host on AGENT_BENCH_PORT, writes N MiB of zeros to it in 1 MiB
 * writes from a static buffer, then N MiB more each read from /dev/zero
 * first (as dd does), and closes it. Without that word it does nothing. Returns at once.
 * Call once the late modules are loaded. */
void agent_bench_start(void);
