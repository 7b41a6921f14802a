/* bench/common.h: what the benchmarks share: clocks, machine state,
 * reading the library's JSON answers, the QEMU command line of a sandbox
 * (for the plain-QEMU baselines), and median/min/max statistics. */
#pragma once

#include <glib.h>
#include <sys/types.h>

double now_s(void);
/* "1 5 15" minute load averages, or "?". */
char *loadavg(void);
/* CPUs this process may run on, like nproc(1). */
int nproc(void);
/* Top-level members of a JSON object text (katavm_*_inspect and friends). */
gboolean json_top_int(const char *js, const char *key, gint64 *out);
char *json_top_str(const char *js, const char *key);
gboolean json_top_bool(const char *js, const char *key);
/* Append s to o as a JSON string literal. */
void json_str(GString *o, const char *s);
/* tests/rootfs/mkrootfs.sh (KATAVM_MKROOTFS overrides). */
char *mkrootfs_path(void);

/* What a plain QEMU needs to boot the same guest as a sandbox's QEMU. */
typedef struct {
  char *qemu, *kernel, *initrd, *append, *accel, *cpu, *mem, *smp;
} QemuArgs;
gboolean qemu_args_read(pid_t pid, QemuArgs *a);
void qemu_args_clear(QemuArgs *a);
/* Append "machine":{nproc,loadavg_start,loadavg_end,accel} and
 * "guest":{qemu,kernel,initrd,append,accel_arg,cpu,m,smp} (no comma
 * around them). */
void json_machine_guest(GString *o, const char *load_start, const char *load_end, const char *accel,
                        const QemuArgs *a);

/* Start a baseline QEMU: argv[0] is the binary; stdin/stdout /dev/null,
 * stderr to log. The child dies with us (PR_SET_PDEATHSIG) and has its
 * own process group, so a terminal's Ctrl-C reaches only us. *t0 is the
 * clock just before the fork. Returns the pid, or -1 after printing why
 * (prefixed with who). */
pid_t spawn_qemu(const char *who, const char *const *argv, const char *log, double *t0);

/* SIGINT/SIGTERM/SIGHUP call handler (which should only set a flag),
 * with SA_RESTART: the library's system calls must not see EINTR in the
 * middle of a call; the benches check the flag between steps. */
void catch_stop_signals(void (*handler)(int));

typedef struct {
  double median, min, max;
} Stats;
Stats stats(const double *v, guint n);
/* Append "name":{"median","min","max","samples"} with printf format fmt. */
void json_stats(GString *o, const char *name, const double *v, guint n, const char *fmt);
/* "  LABEL  median min max  UNIT" and "  LABEL  v1 v2 ...", values times
 * scale, the label padded to width. */
void print_row(int width, const char *label, const double *v, guint n, double scale,
               const char *unit);
void print_samples(int width, const char *label, const double *v, guint n, double scale);
