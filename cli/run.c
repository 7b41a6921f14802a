/* cli/run.c: `katavm run`: a sandbox, a container from a rootfs or bundle,
 * CMD streamed here, its exit code ours; --rm removes the sandbox after. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_run(CliCtx *c, int argc, char **argv) {
  gboolean interactive = FALSE, tty = FALSE, rm = FALSE;
  g_autofree char *name = NULL, *netns = NULL, *net = NULL;
  g_auto(GStrv) volumes = NULL, publish = NULL;
  int cpus = 0, mem = 0, max_cpus = 0, max_mem = 0, storage = 0;
  GOptionEntry entries[] = {
      {"name", 0, 0, G_OPTION_ARG_FILENAME, &name, "sandbox id", "ID"},
      {"cpus", 0, 0, G_OPTION_ARG_INT, &cpus, "vCPUs", "N"},
      {"max-cpus", 0, 0, G_OPTION_ARG_INT, &max_cpus, "vCPUs reserved for hotplug", "N"},
      {"memory", 0, 0, G_OPTION_ARG_INT, &mem, "memory", "MiB"},
      {"max-memory", 0, 0, G_OPTION_ARG_INT, &max_mem, "memory reserved for hotplug", "MiB"},
      {"netns", 0, 0, G_OPTION_ARG_FILENAME, &netns,
       "network namespace whose interfaces the guest takes over", "PATH"},
      {"net", 0, 0, G_OPTION_ARG_STRING, &net, "network: none (default) or user (user-mode NAT)",
       "MODE"},
      {"publish", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &publish,
       "publish a guest port on the host (--net user; repeatable)", "[IP:]HOSTPORT:PORT[/tcp|udp]"},
      {"rm", 0, 0, G_OPTION_ARG_NONE, &rm, "remove the sandbox when CMD exits", NULL},
      {"interactive", 'i', 0, G_OPTION_ARG_NONE, &interactive, "keep stdin open", NULL},
      {"tty", 't', 0, G_OPTION_ARG_NONE, &tty, "allocate a terminal", NULL},
      {"volume", 'v', 0, G_OPTION_ARG_STRING_ARRAY, &volumes,
       "bind-mount a host file or directory into the container (repeatable)", "HOST:DEST[:ro]"},
      {"storage-size", 0, 0, G_OPTION_ARG_INT, &storage,
       "the container writes into a layer of this size in the guest, not into the rootfs", "MIB"},
      {NULL}};
  if (!cli_parse_posix(&argc, &argv, "ROOTFS_OR_BUNDLE -- CMD...", entries, TRUE))
    return 2;
  int i = 1;
  if (i < argc && !strcmp(argv[i], "--"))
    i++;
  if (i >= argc)
    return cli_usage(
        "usage: katavm run [options] [-v HOST:DEST[:ro]]... ROOTFS_OR_BUNDLE -- CMD...");
  if (cpus < 0 || mem < 0 || max_cpus < 0 || max_mem < 0 || storage < 0)
    return cli_usage("run: sizes must not be negative");
  if (!*argv[i]) {
    fprintf(stderr, "katavm: run: the rootfs or bundle path is empty\n");
    return 125;
  }
  g_autofree char *path = g_canonicalize_filename(argv[i++], NULL);
  if (i < argc && !strcmp(argv[i], "--"))
    i++;
  g_autofree char *cfgjson = g_build_filename(path, "config.json", NULL);
  gboolean bundle = g_file_test(cfgjson, G_FILE_TEST_EXISTS);
  if (!bundle && !g_file_test(path, G_FILE_TEST_IS_DIR)) {
    fprintf(stderr, "katavm: %s is neither a bundle nor a rootfs directory\n", path);
    return 125;
  }
  katavm_sandbox_config sc;
  katavm_sandbox_config_init(&sc);
  sc.id = name;
  sc.vcpus = (unsigned)cpus;
  sc.memory_mib = (unsigned)mem;
  sc.max_vcpus = (unsigned)max_cpus;
  sc.max_memory_mib = (unsigned)max_mem;
  sc.netns = netns;
  sc.net = net;
  sc.publish = (const char *const *)publish;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_create(c->rt, &sc, &sb, &e) < 0) {
    cli_fail(e);
    return 125;
  }
  g_autofree char *sid = g_strdup(katavm_sandbox_id(sb));
  /* The first container takes the sandbox's id, as in Kata. */
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  if (bundle)
    cc.bundle = path;
  else
    cc.rootfs = path;
  cc.argv = i < argc ? (const char *const *)argv + i : NULL;
  cc.tty = tty;
  cc.volumes = (const char *const *)volumes;
  cc.storage_size_mib = (unsigned)storage;
  katavm_process *p = NULL;
  int rc = 125;
  if (katavm_container_add(sb, sid, &cc, &p, &e) < 0 || katavm_container_start(sb, sid, &e) < 0) {
    cli_fail(e);
  } else {
    rc = cli_attach(p, interactive, tty);
  }
  katavm_process_free(p);
  katavm_sandbox_close(sb);
  if (rm) {
    e = NULL;
    if (katavm_sandbox_destroy(c->rt, sid, &e) < 0) {
      cli_fail(e);
      if (rc == 0)
        rc = 125;
    }
  } else {
    fprintf(stderr, "katavm: sandbox %s keeps running (katavm sandbox rm -f %s)\n", sid, sid);
  }
  return rc;
}
