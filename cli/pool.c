/* cli/pool.c: `katavm pool start|ls|rm`: the warm pool of the --root
 * (docs/pool.md). */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int pool_start(CliCtx *c, int argc, char **argv) {
  int size = 0, cpus = 0, mem = 0;
  GOptionEntry entries[] = {
      {"size", 0, 0, G_OPTION_ARG_INT, &size, "VMs kept ready (default 1)", "N"},
      {"cpus", 0, 0, G_OPTION_ARG_INT, &cpus, "most vCPUs a pooled VM can get (default 2)", "N"},
      {"memory", 0, 0, G_OPTION_ARG_INT, &mem, "most memory a pooled VM can get (default 1024)",
       "MiB"},
      {NULL}};
  if (!cli_parse(&argc, &argv, "- start the warm pool's keeper", entries))
    return 2;
  if (argc > 1)
    return cli_usage("unexpected argument '%s'", argv[1]);
  if (size < 0 || cpus < 0 || mem < 0)
    return cli_usage("--size, --cpus and --memory must not be negative");
  katavm_pool_config cfg;
  katavm_pool_config_init(&cfg);
  cfg.size = (unsigned)size;
  cfg.max_vcpus = (unsigned)cpus;
  cfg.max_memory_mib = (unsigned)mem;
  katavm_error *e = NULL;
  if (katavm_pool_start(c->rt, &cfg, &e) < 0)
    return cli_fail(e);
  return 0;
}

static int pool_ls(CliCtx *c, int argc, char **argv) {
  gboolean json = FALSE;
  GOptionEntry entries[] = {{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL}, {NULL}};
  if (!cli_parse(&argc, &argv, "- list the pooled VMs", entries))
    return 2;
  if (argc > 1)
    return cli_usage("unexpected argument '%s'", argv[1]);
  char *out = NULL;
  katavm_error *e = NULL;
  if (katavm_pool_list(c->rt, &out, &e) < 0)
    return cli_fail(e);
  if (json) {
    printf("%s\n", out);
    katavm_free(out);
    return 0;
  }
  g_autoptr(JsonParser) jp = json_parser_new();
  gboolean ok = json_parser_load_from_data(jp, out, -1, NULL);
  katavm_free(out);
  JsonObject *o = ok ? json_node_get_object(json_parser_get_root(jp)) : NULL;
  if (!o)
    return cli_usage("the library's pool list is not JSON");
  if (!json_object_get_boolean_member_with_default(o, "running", FALSE))
    printf("no pool keeper runs\n");
  else
    printf("keeper pid %" G_GINT64_FORMAT ": %" G_GINT64_FORMAT " VM(s) of up to %" G_GINT64_FORMAT
           " vCPUs and %" G_GINT64_FORMAT " MiB\n",
           json_object_get_int_member_with_default(o, "keeper_pid", 0),
           json_object_get_int_member_with_default(o, "size", 0),
           json_object_get_int_member_with_default(o, "max_vcpus", 0),
           json_object_get_int_member_with_default(o, "max_memory_mib", 0));
  JsonArray *vms = json_object_get_array_member(o, "vms");
  for (guint i = 0; vms && i < json_array_get_length(vms); i++) {
    JsonObject *vm = json_array_get_object_element(vms, i);
    printf("%-24s %s\n", json_object_get_string_member_with_default(vm, "instance", "?"),
           json_object_get_boolean_member_with_default(vm, "ready", FALSE) ? "ready" : "booting");
  }
  return 0;
}

static int pool_rm(CliCtx *c, int argc, char **argv) {
  GOptionEntry entries[] = {{NULL}};
  if (!cli_parse(&argc, &argv, "- stop the pool and destroy its VMs", entries))
    return 2;
  if (argc > 1)
    return cli_usage("unexpected argument '%s'", argv[1]);
  katavm_error *e = NULL;
  if (katavm_pool_remove(c->rt, &e) < 0)
    return cli_fail(e);
  return 0;
}

int cmd_pool(CliCtx *c, int argc, char **argv) {
  if (argc < 2)
    return cli_usage("usage: katavm pool start|ls|rm");
  if (!strcmp(argv[1], "start"))
    return pool_start(c, argc - 1, argv + 1);
  if (!strcmp(argv[1], "ls"))
    return pool_ls(c, argc - 1, argv + 1);
  if (!strcmp(argv[1], "rm"))
    return pool_rm(c, argc - 1, argv + 1);
  return cli_usage("unknown pool command '%s' (start, ls or rm)", argv[1]);
}
