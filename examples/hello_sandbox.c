/* examples/hello_sandbox.c: the smallest complete libkatavm program.
 *
 * Boots one sandbox (a VM with its own guest kernel), asks the guest agent
 * about the guest, and destroys the sandbox again. Uses only the public API.
 *
 *   cc hello_sandbox.c $(pkg-config --cflags --libs katavm) -o hello_sandbox
 *   ./hello_sandbox [ID]
 *
 * The runtime takes its settings from the environment (KATAVM_ROOT,
 * KATAVM_KERNEL, KATAVM_INITRD, KATAVM_ACCEL, ...; see katavm.h), so the same
 * binary runs against an installed image or a build tree. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <katavm/katavm.h>

/* Print a failed call's error and free it. Every fallible function returns
 * a negative katavm_code and fills `e` with a readable message. */
static int report(const char *what, int rc, katavm_error *e) {
  fprintf(stderr, "hello_sandbox: %s failed: %s (%s)\n", what, katavm_error_message(e),
          katavm_code_name(rc));
  katavm_error_free(e);
  return 1;
}

int main(int argc, char **argv) {
  katavm_runtime *rt = NULL;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc;

  if ((rc = katavm_runtime_new(&rt, &e)) < 0)
    return report("katavm_runtime_new", rc, e);

  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);   /* zero = defaults; sets struct_size */
  cfg.id = argc > 1 ? argv[1] : NULL; /* NULL: the library picks an id */
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
