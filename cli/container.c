/* cli/container.c: `katavm container add|start|ls|rm|kill|stats`. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The container's cgroup figures as one JSON object; "max" limits are
 * null. */
static int print_stats(katavm_sandbox *sb, const char *id, katavm_error **e) {
  katavm_container_stats st;
  katavm_container_stats_init(&st);
  if (katavm_container_get_stats(sb, id, &st, e) < 0)
    return -1;
  const struct {
    const char *name;
    uint64_t v;
    gboolean is_limit;
  } f[] = {
      {"cpu_usage_usec", st.cpu_usage_usec, FALSE},
      {"cpu_user_usec", st.cpu_user_usec, FALSE},
      {"cpu_system_usec", st.cpu_system_usec, FALSE},
      {"cpu_nr_throttled", st.cpu_nr_throttled, FALSE},
      {"cpu_throttled_usec", st.cpu_throttled_usec, FALSE},
      {"cpu_quota_usec", st.cpu_quota_usec, TRUE},
      {"cpu_period_usec", st.cpu_period_usec, FALSE},
      {"memory_usage", st.memory_usage, FALSE},
      {"memory_limit", st.memory_limit, TRUE},
      {"memory_anon", st.memory_anon, FALSE},
      {"memory_file", st.memory_file, FALSE},
      {"swap_usage", st.swap_usage, FALSE},
      {"swap_limit", st.swap_limit, TRUE},
      {"memory_events_max", st.memory_events_max, FALSE},
      {"memory_events_oom", st.memory_events_oom, FALSE},
      {"memory_events_oom_kill", st.memory_events_oom_kill, FALSE},
      {"pids_current", st.pids_current, FALSE},
      {"pids_limit", st.pids_limit, TRUE},
  };
  printf("{");
  for (size_t i = 0; i < G_N_ELEMENTS(f); i++) {
    if (f[i].is_limit && f[i].v == KATAVM_STATS_UNLIMITED)
      printf("%s\"%s\":null", i ? "," : "", f[i].name);
    else
      printf("%s\"%s\":%" G_GUINT64_FORMAT, i ? "," : "", f[i].name, f[i].v);
  }
  printf("}\n");
  return 0;
}

static int open_sb(CliCtx *c, const char *id, katavm_sandbox **sb) {
  katavm_error *e = NULL;
  return katavm_sandbox_open(c->rt, id, sb, &e) < 0 ? cli_fail(e) : 0;
}

int cmd_container(CliCtx *c, int argc, char **argv) {
  const char *usage = "usage: katavm container add [-v HOST:DEST[:ro]]... [--storage-size MIB] "
                      "SANDBOX ID "
                      "BUNDLE_OR_ROOTFS [-- CMD...] |"
                      " start|rm [-f]|kill [-s SIG]|stats SANDBOX ID | ls SANDBOX";
  if (argc < 3)
    return cli_usage("%s", usage);
  const char *sub = argv[1];
  argc--;
  argv++;
  gboolean force = FALSE;
  int sig = SIGTERM;
  g_auto(GStrv) volumes = NULL;
  int storage = 0;
  GOptionEntry entries[] = {
      {"force", 'f', 0, G_OPTION_ARG_NONE, &force, "kill a running container first", NULL},
      {"signal", 's', 0, G_OPTION_ARG_INT, &sig, "signal number (kill)", "SIG"},
      {"volume", 'v', 0, G_OPTION_ARG_STRING_ARRAY, &volumes,
       "add: bind-mount a host file or directory into the container (repeatable)",
       "HOST:DEST[:ro]"},
      {"storage-size", 0, 0, G_OPTION_ARG_INT, &storage,
       "add: the container writes into a layer of this size in the guest, not into the rootfs",
       "MIB"},
      {NULL}};
  if (!cli_parse_posix(&argc, &argv, "", entries, TRUE))
    return 2;
  if (storage < 0)
    return cli_usage("container add: --storage-size must not be negative");
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc;
  if (!strcmp(sub, "ls")) {
    if ((rc = open_sb(c, argv[1], &sb)))
      return rc;
    char **ids = NULL;
    if (katavm_container_list(sb, &ids, &e) < 0) {
      katavm_sandbox_close(sb);
      return cli_fail(e);
    }
    printf("%-40s %s\n", "ID", "STATUS");
    for (char **p = ids; *p; p++) {
      katavm_container_state_t st = KATAVM_CONTAINER_UNKNOWN;
      katavm_container_state(sb, *p, &st, NULL, NULL);
      printf("%-40s %s\n", *p, katavm_container_state_name(st));
    }
    katavm_strv_free(ids);
    katavm_sandbox_close(sb);
    return 0;
  }
  if (argc < 3)
    return cli_usage("%s", usage);
  if ((rc = open_sb(c, argv[1], &sb)))
    return rc;
  const char *id = argv[2];
  if (!strcmp(sub, "add")) {
    if (argc < 4) {
      katavm_sandbox_close(sb);
      return cli_usage("%s", usage);
    }
    if (!*argv[3]) {
      katavm_sandbox_close(sb);
      fprintf(stderr, "katavm: container add: the bundle or rootfs path is empty\n");
      return 1;
    }
    g_autofree char *path = g_canonicalize_filename(argv[3], NULL);
    g_autofree char *cfgjson = g_build_filename(path, "config.json", NULL);
    katavm_container_config cc;
    katavm_container_config_init(&cc);
    if (g_file_test(cfgjson, G_FILE_TEST_EXISTS) || !g_file_test(path, G_FILE_TEST_IS_DIR))
      cc.bundle = path;
    else
      cc.rootfs = path;
    int i = 4;
    if (i < argc && !strcmp(argv[i], "--"))
      i++;
    cc.argv = i < argc ? (const char *const *)argv + i : NULL;
    cc.volumes = (const char *const *)volumes;
    cc.storage_size_mib = (unsigned)storage;
    rc = katavm_container_add(sb, id, &cc, NULL, &e);
  } else if (!strcmp(sub, "start")) {
    rc = katavm_container_start(sb, id, &e);
  } else if (!strcmp(sub, "rm")) {
    rc = katavm_container_remove(sb, id, force, &e);
  } else if (!strcmp(sub, "kill")) {
    rc = katavm_container_kill(sb, id, sig, 0, &e);
  } else if (!strcmp(sub, "stats")) {
    rc = print_stats(sb, id, &e);
  } else {
    katavm_sandbox_close(sb);
    return cli_usage("%s", usage);
  }
  katavm_sandbox_close(sb);
  return rc < 0 ? cli_fail(e) : 0;
}
