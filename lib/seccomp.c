/* lib/seccomp.c: the default seccomp profile of a container made from a
 * plain rootfs (a bundle's container gets its bundle's linux.seccomp, or
 * none). The same idea as the profiles Docker, Podman and containerd ship:
 * an allow list of the system calls ordinary programs make, everything else
 * EPERM. It is written for the capabilities such a container has (those of
 * `runc spec`: AUDIT_WRITE, KILL, NET_BIND_SERVICE), so the calls those
 * profiles allow only with CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_TIME,
 * CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYSLOG and the like (mount, unshare,
 * setns, bpf, keyctl, add_key, perf_event_open, init_module, reboot, kexec,
 * settimeofday, ...) are not on it at all; neither is io_uring, which
 * containerd and Docker took off theirs. The guest kernel is the first
 * wall around a container, this filter narrows what reaches it.
 *
 * Names are the kernel's; the agent skips a name that this architecture
 * has no such call for (the list is written for x86_64 and aarch64 both),
 * and the filter covers the native architecture only: a 32-bit call on
 * x86_64 is refused. */
#include <string.h>

#include "oci.h"

static const char *const allowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2", "execve",
    "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat", "fcntl", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs",
    "fsync", "ftruncate", "futex", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer", "getpeername",
    "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid",
    "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "gettid",
    "gettimeofday", "getuid", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "ioprio_get", "ioprio_set", "io_setup", "io_submit", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat",
    "listen", "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise",
    "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
    "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl", "pread64", "preadv", "preadv2",
    "prlimit64", "process_mrelease", "pselect6", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsuid",
    "setgid", "setgroups", "setitimer", "setpgid", "setpriority", "setregid", "setresgid",
    "setresuid", "setreuid", "setrlimit", "set_robust_list", "setsid", "setsockopt",
    "set_tid_address", "setuid", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "socket", "socketpair", "splice", "stat", "statfs",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill",
    "truncate", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork",
    "vmsplice", "wait4", "waitid", "write", "writev",
    /* x86_64's own */
    "arch_prctl", "modify_ldt",
    /* Safe since Linux 4.8 (a tracer can no longer skip the filter), and
     * bounded by the usual ptrace access checks; Docker allows them too. */
    "ptrace", "process_vm_readv", "process_vm_writev"};

/* The namespace flags of clone(2), refused as unshare and setns are: the
 * others need CAP_SYS_ADMIN anyway, and a user namespace (which needs no
 * capability) is the usual first step of an attack on the kernel. */
#define CLONE_NS_FLAGS 0x7E020000ULL /* NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */

static JsonObject *rule(const char *const *names, gsize n, const char *action) {
  JsonObject *r = json_object_new();
  JsonArray *a = json_array_new();
  for (gsize i = 0; i < n; i++)
    json_array_add_string_element(a, names[i]);
  json_object_set_array_member(r, "names", a);
  json_object_set_string_member(r, "action", action);
  return r;
}

static JsonObject *arg(guint index, guint64 value, guint64 value_two, const char *op) {
  JsonObject *o = json_object_new();
  json_object_set_int_member(o, "index", index);
  json_object_set_int_member(o, "value", (gint64)value);
  if (value_two)
    json_object_set_int_member(o, "valueTwo", (gint64)value_two);
  json_object_set_string_member(o, "op", op);
  return o;
}

JsonObject *kv_oci_default_seccomp(void) {
  JsonObject *p = json_object_new();
  json_object_set_string_member(p, "defaultAction", "SCMP_ACT_ERRNO");
  json_object_set_int_member(p, "defaultErrnoRet", 1 /* EPERM */);
  JsonArray *rules = json_array_new();
  json_array_add_object_element(rules, rule(allowed, G_N_ELEMENTS(allowed), "SCMP_ACT_ALLOW"));

  /* clone without namespace flags (x86_64 and aarch64 take them first). */
  static const char *const clone_name[] = {"clone"};
  JsonObject *c = rule(clone_name, 1, "SCMP_ACT_ALLOW");
  JsonArray *cargs = json_array_new();
  json_array_add_object_element(cargs, arg(0, CLONE_NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ"));
  json_object_set_array_member(c, "args", cargs);
  json_array_add_object_element(rules, c);

  /* clone3 passes its flags in memory, where a filter cannot look: ENOSYS
   * makes the C library fall back to clone, which is checked above. */
  static const char *const clone3_name[] = {"clone3"};
  JsonObject *c3 = rule(clone3_name, 1, "SCMP_ACT_ERRNO");
  json_object_set_int_member(c3, "errnoRet", 38 /* ENOSYS */);
  json_array_add_object_element(rules, c3);

  /* personality: only the harmless personas (Linux, 32-bit uname, the
   * query), as in the engines' profiles. */
  static const guint64 personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
  for (gsize i = 0; i < G_N_ELEMENTS(personas); i++) {
    static const char *const pers_name[] = {"personality"};
    JsonObject *r = rule(pers_name, 1, "SCMP_ACT_ALLOW");
    JsonArray *a = json_array_new();
    json_array_add_object_element(a, arg(0, personas[i], 0, "SCMP_CMP_EQ"));
    json_object_set_array_member(r, "args", a);
    json_array_add_object_element(rules, r);
  }
  json_object_set_array_member(p, "syscalls", rules);
  return p;
}
