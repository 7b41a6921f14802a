/* cli/main.c: `katavm`, the command-line front end. Parses global options,
 * builds the runtime, and dispatches to one file per command. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_fail(katavm_error *e) {
  fprintf(stderr, "katavm: %s\n", katavm_error_message(e));
  katavm_error_free(e);
  return 1;
}

int cli_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("katavm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 2;
}

gboolean cli_parse(int *argc, char ***argv, const char *usage, const GOptionEntry *entries) {
  return cli_parse_posix(argc, argv, usage, entries, FALSE);
}

gboolean cli_parse_posix(int *argc, char ***argv, const char *usage, const GOptionEntry *entries,
                         gboolean posix) {
  g_autoptr(GOptionContext) oc = g_option_context_new(usage);
  /* posix: options stop at the first argument, so a command's own options
   * (`sh -c ...`) are not taken for ours. */
  g_option_context_set_strict_posix(oc, posix);
  g_option_context_add_main_entries(oc, entries, NULL);
  g_autoptr(GError) e = NULL;
  if (!g_option_context_parse(oc, argc, argv, &e)) {
    cli_usage("%s", e->message);
    return FALSE;
  }
  return TRUE;
}

static const char *USAGE =
    "usage: katavm [--root DIR] [--libvirt-uri URI] [--accel auto|kvm|tcg]\n"
    "              [--kernel PATH] [--initrd PATH] COMMAND ...\n"
    "commands:\n"
    "  check                      report what this host offers\n"
    "  image build [--kernel-release R] [--out DIR] [--force]\n"
    "  sandbox create [--name ID] [--cpus N] [--max-cpus N] [--memory MiB] [--max-memory MiB]\n"
    "  sandbox ls [--json]\n"
    "  sandbox inspect ID [--json]\n"
    "  sandbox stop ID\n"
    "  sandbox rm [-f] ID\n"
    "  container add [-v HOST:DEST[:ro]]... SANDBOX ID BUNDLE_OR_ROOTFS [-- CMD...]\n"
    "  container start|rm [-f]|kill [-s SIG] SANDBOX ID ; container ls SANDBOX\n"
    "  exec [-i] [-t] [-e K=V] [-w DIR] [-u UID[:GID]] SANDBOX[/CONTAINER] -- CMD...\n"
    "  run [--cpus N] [--memory MiB] [--name ID] [--rm] [-i] [-t] [-v HOST:DEST[:ro]]...\n"
    "      ROOTFS_OR_BUNDLE -- CMD...\n"
    "  hotplug SANDBOX cpus N | memory +M|-M|=M | disk add|rm PATH [--mount C:/p] [--ro]\n"
    "          | net add --tap TAP [--mac MAC] [--ip CIDR] [--gateway IP] [--mtu N] | net rm MAC\n"
    "  pool start [--size N] [--cpus N] [--memory MiB] | pool ls [--json] | pool rm\n"
    "  version\n"
    "environment: KATAVM_ROOT (state dir), KATAVM_LIBVIRT_URI, KATAVM_ACCEL,\n"
    "             KATAVM_KERNEL, KATAVM_INITRD, KATAVM_SHIM, KATAVM_MEMORY_HOTPLUG,\n"
    "             KATAVM_SHARED_FS (auto|virtio-fs|9p)\n";

int main(int argc, char **argv) {
  katavm_error *e = NULL;
  CliCtx c = {0};
  if (katavm_runtime_new(&c.rt, &e) < 0)
    return cli_fail(e);
  int i = 1;
  int rc = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *o = argv[i];
    const char *v = NULL;
    if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
      fputs(USAGE, stdout);
      goto out;
    }
    static const char *with_value[] = {"--root", "--libvirt-uri", "--accel", "--kernel",
                                       "--initrd"};
    const char *name = NULL;
    for (size_t k = 0; k < G_N_ELEMENTS(with_value); k++) {
      size_t n = strlen(with_value[k]);
      if (!strncmp(o, with_value[k], n) && (o[n] == '\0' || o[n] == '=')) {
        name = with_value[k];
        v = o[n] == '=' ? o + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
      }
    }
    if (!name) {
      rc = cli_usage("unknown option '%s'\n%s", o, USAGE);
      goto out;
    }
    if (!v) {
      rc = cli_usage("option %s needs a value", name);
      goto out;
    }
    int r = 0;
    if (!strcmp(name, "--root"))
      r = katavm_runtime_set_root(c.rt, v, &e);
    else if (!strcmp(name, "--libvirt-uri"))
      r = katavm_runtime_set_libvirt_uri(c.rt, v, &e);
    else if (!strcmp(name, "--accel"))
      r = katavm_runtime_set_accel(c.rt, v, &e);
    else if (!strcmp(name, "--kernel"))
      r = katavm_runtime_set_kernel(c.rt, v, &e);
    else
      r = katavm_runtime_set_initrd(c.rt, v, &e);
    if (r < 0) {
      rc = cli_fail(e);
      goto out;
    }
  }
  if (i >= argc) {
    fputs(USAGE, stderr);
    rc = 2;
    goto out;
  }
  const char *cmd = argv[i];
  int sub_argc = argc - i;
  char **sub_argv = argv + i;
  if (!strcmp(cmd, "check"))
    rc = cmd_check(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "image"))
    rc = cmd_image(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "sandbox"))
    rc = cmd_sandbox(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "container"))
    rc = cmd_container(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "exec"))
    rc = cmd_exec(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "hotplug"))
    rc = cmd_hotplug(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "pool"))
    rc = cmd_pool(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "run"))
    rc = cmd_run(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "version"))
    printf("katavm %s\n", katavm_version());
  else
    rc = cli_usage("unknown command '%s'\n%s", cmd, USAGE);
out:
  katavm_runtime_free(c.rt);
  return rc;
}
