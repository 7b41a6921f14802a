/* examples/c/hello_sandbox.c: the smallest complete libkatavm program.
 *
 * Boots one sandbox (a VM with its own guest kernel), asks the guest agent
 * about the guest, adds a container from ROOTFS (a directory, e.g. one made
 * by tests/rootfs/mkrootfs.sh), runs `uname -r` in it, and destroys the
 * sandbox again. Uses only the public API.
 *
 *   cc hello_sandbox.c $(pkg-config --cflags --libs katavm) -o hello_sandbox
 *   ./hello_sandbox ROOTFS [ID]
 *
 * The runtime takes its settings from the environment (KATAVM_ROOT,
 * KATAVM_KERNEL, KATAVM_INITRD, KATAVM_ACCEL, ...; see katavm.h), so the same
 * binary runs against an installed image or a build tree. */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <katavm/katavm.h>

/* Print a failed call's error and free it. Every fallible function returns
 * a negative katavm_code and fills `e` with a readable message. */
static int report(const char *what, int rc, katavm_error *e) {
  fprintf(stderr, "hello_sandbox: %s failed: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(rc));
  katavm_error_free(e);
  return 1;
}

/* Add container "hello" from rootfs, start it, exec `uname -r` in it and
 * print what it wrote. Returns 0 or 1. */
static int hello_container(katavm_sandbox *sb, const char *rootfs) {
  katavm_error *e = NULL;
  int rc;
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.rootfs = rootfs; /* shared into the VM, not copied */
  const char *const idle[] = {"sleep", "1000000", NULL};
  cc.argv = idle; /* the main process idles; we exec beside it */
  if ((rc = katavm_container_add(sb, "hello", &cc, NULL, &e)) < 0)
    return report("katavm_container_add", rc, e);
  if ((rc = katavm_container_start(sb, "hello", &e)) < 0)
    return report("katavm_container_start", rc, e);

  katavm_exec_config xc;
  katavm_exec_config_init(&xc);
  const char *const uname[] = {"uname", "-r", NULL};
  xc.argv = uname;
  xc.no_stdin = 1;
  katavm_process *p = NULL;
  if ((rc = katavm_exec(sb, "hello", &xc, &p, &e)) < 0)
    return report("katavm_exec", rc, e);
  /* The output fds are non-blocking pipes: wait with poll, read to EOF. */
  char buf[256];
  size_t len = 0;
  struct pollfd pfd = {.fd = katavm_process_stdout_fd(p), .events = POLLIN};
  for (;;) {
    if (poll(&pfd, 1, -1) < 0)
      break;
    ssize_t n = read(pfd.fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  int code = -1;
  if ((rc = katavm_process_wait(p, -1, &code, &e)) < 0) {
    katavm_process_free(p);
    return report("katavm_process_wait", rc, e);
  }
  katavm_process_free(p);
  printf("container uname -r: %s", buf);
  printf("exit status    %d\n", code);
  return code == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  katavm_runtime *rt = NULL;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc;

  if ((rc = katavm_runtime_new(&rt, &e)) < 0)
    return report("katavm_runtime_new", rc, e);

  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg); /* zero = defaults; sets struct_size */
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: hello_sandbox ROOTFS [ID]\n");
    katavm_runtime_free(rt);
    return 2;
  }
  cfg.id = argc > 2 ? argv[2] : NULL; /* NULL: the library picks an id */
  cfg.vcpus = 1;
  cfg.memory_mib = 256;

  /* Returns once the guest agent answered; the VM runs under its own
   * katavm-shim and would outlive this process unless destroyed. */
  if ((rc = katavm_sandbox_create(rt, &cfg, &sb, &e)) < 0) {
    report("katavm_sandbox_create", rc, e); /* nothing was left behind */
    katavm_runtime_free(rt);
    return 1;
  }
  printf("sandbox %s is running (root %s)\n", katavm_sandbox_id(sb), katavm_runtime_root(rt));

  int status = 0;
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  if ((rc = katavm_sandbox_agent_check(sb, &gi, &e)) < 0) {
    status = report("katavm_sandbox_agent_check", rc, e);
  } else {
    printf("guest kernel   %s\n", gi.kernel_release);
    printf("agent version  %s (protocol %u)\n", gi.agent_version, gi.proto_version);
    printf("cpus online    %u\n", gi.cpus_online);
    printf("memory         %" PRIu64 " KiB\n", gi.mem_total_kib);
    printf("guest uptime   %" PRIu64 " ms\n", gi.uptime_ms);
    printf("round trip     %" PRIu64 " us\n", gi.round_trip_us);
    status = hello_container(sb, argv[1]);
  }

  /* Destroy even when the check failed: a sandbox is a whole VM. Copy the
   * id first; it belongs to the handle we close. */
  char id[KATAVM_ID_MAX + 1];
  snprintf(id, sizeof(id), "%s", katavm_sandbox_id(sb));
  katavm_sandbox_close(sb);
  if ((rc = katavm_sandbox_destroy(rt, id, &e)) < 0)
    status = report("katavm_sandbox_destroy", rc, e);
  else
    printf("sandbox %s destroyed\n", id);

  katavm_runtime_free(rt);
  return status;
}
