/* cli/sandbox.c: `katavm sandbox create|ls|inspect|stop|rm`. */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int sb_create(CliCtx *c, int argc, char **argv) {
  g_autofree char *name = NULL, *netns = NULL, *net = NULL;
  g_auto(GStrv) publish = NULL;
  int cpus = 0, max_cpus = 0, mem = 0, max_mem = 0;
  GOptionEntry entries[] = {
      {"name", 0, 0, G_OPTION_ARG_FILENAME, &name, "sandbox id (default: random)", "ID"},
      {"cpus", 0, 0, G_OPTION_ARG_INT, &cpus, "vCPUs at boot", "N"},
      {"max-cpus", 0, 0, G_OPTION_ARG_INT, &max_cpus, "vCPUs reserved for hotplug", "N"},
      {"memory", 0, 0, G_OPTION_ARG_INT, &mem, "memory at boot", "MiB"},
      {"max-memory", 0, 0, G_OPTION_ARG_INT, &max_mem, "memory reserved for hotplug", "MiB"},
      {"netns", 0, 0, G_OPTION_ARG_FILENAME, &netns,
       "network namespace whose interfaces the guest takes over", "PATH"},
      {"net", 0, 0, G_OPTION_ARG_STRING, &net, "network: none (default) or user (user-mode NAT)",
       "MODE"},
      {"publish", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &publish,
       "publish a guest port on the host (--net user; repeatable)", "[IP:]HOSTPORT:PORT[/tcp|udp]"},
      {NULL}};
  if (!cli_parse(&argc, &argv, "- create and boot a sandbox", entries))
    return 2;
  if (argc > 1)
    return cli_usage("unexpected argument '%s'", argv[1]);
  if (cpus < 0 || max_cpus < 0 || mem < 0 || max_mem < 0)
    return cli_usage("--cpus, --max-cpus, --memory and --max-memory must not be negative");
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = name;
  cfg.vcpus = (unsigned)cpus;
  cfg.max_vcpus = (unsigned)max_cpus;
  cfg.memory_mib = (unsigned)mem;
  cfg.max_memory_mib = (unsigned)max_mem;
  cfg.netns = netns;
  cfg.net = net;
  cfg.publish = (const char *const *)publish;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_create(c->rt, &cfg, &sb, &e) < 0)
    return cli_fail(e);
  printf("%s\n", katavm_sandbox_id(sb));
  katavm_sandbox_close(sb);
  return 0;
}

static int sb_ls(CliCtx *c, int argc, char **argv) {
  gboolean json = FALSE;
  GOptionEntry entries[] = {{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL}, {NULL}};
  if (!cli_parse(&argc, &argv, "- list sandboxes", entries))
    return 2;
  char **ids = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_list(c->rt, &ids, &e) < 0)
    return cli_fail(e);
  g_autoptr(JsonArray) arr = json_array_new();
  if (!json)
    printf("%-40s %s\n", "ID", "STATE");
  for (char **p = ids; *p; p++) {
    katavm_sandbox *sb = NULL;
    katavm_sandbox_state_t st = KATAVM_SANDBOX_UNKNOWN;
    JsonObject *o = NULL;
    if (katavm_sandbox_open(c->rt, *p, &sb, NULL) == 0) {
      katavm_sandbox_state(sb, &st, NULL);
      /* ls shows the shim's view only: no guest round trip per sandbox. */
      katavm_sandbox_close(sb);
    }
    o = json_object_new();
    json_object_set_string_member(o, "id", *p);
    json_object_set_string_member(o, "state", katavm_sandbox_state_name(st));
    if (json)
      json_array_add_object_element(arr, o);
    else {
      printf("%-40s %s\n", *p, katavm_sandbox_state_name(st));
      json_object_unref(o);
    }
  }
  katavm_strv_free(ids);
  if (json) {
    g_autoptr(JsonNode) n = json_node_new(JSON_NODE_ARRAY);
    json_node_set_array(n, arr);
    g_autofree char *s = json_to_string(n, FALSE);
    printf("%s\n", s);
  }
  return 0;
}

static int sb_inspect(CliCtx *c, int argc, char **argv) {
  gboolean json = FALSE;
  GOptionEntry entries[] = {{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL}, {NULL}};
  if (!cli_parse(&argc, &argv, "ID - show a sandbox", entries))
    return 2;
  if (argc != 2)
    return cli_usage("usage: katavm sandbox inspect ID [--json]");
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  char *out = NULL;
  if (katavm_sandbox_open(c->rt, argv[1], &sb, &e) < 0)
    return cli_fail(e);
  int r = katavm_sandbox_inspect(sb, &out, &e);
  katavm_sandbox_close(sb);
  if (r < 0)
    return cli_fail(e);
  if (json) {
    printf("%s\n", out);
  } else {
    g_autoptr(JsonParser) p = json_parser_new();
    json_parser_load_from_data(p, out, -1, NULL);
    g_autoptr(JsonGenerator) g = json_generator_new();
    json_generator_set_pretty(g, TRUE);
    json_generator_set_root(g, json_parser_get_root(p));
    g_autofree char *s = json_generator_to_data(g, NULL);
    printf("%s\n", s);
  }
  katavm_free(out);
  return 0;
}

static int sb_stop(CliCtx *c, int argc, char **argv) {
  if (argc != 2)
    return cli_usage("usage: katavm sandbox stop ID");
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_open(c->rt, argv[1], &sb, &e) < 0)
    return cli_fail(e);
  int r = katavm_sandbox_stop(sb, &e);
  katavm_sandbox_close(sb);
  return r < 0 ? cli_fail(e) : 0;
}

static int sb_rm(CliCtx *c, int argc, char **argv) {
  gboolean force = FALSE;
  GOptionEntry entries[] = {
      {"force", 'f', 0, G_OPTION_ARG_NONE, &force, "remove a running sandbox", NULL}, {NULL}};
  if (!cli_parse(&argc, &argv, "ID... - remove sandboxes", entries))
    return 2;
  if (argc < 2)
    return cli_usage("usage: katavm sandbox rm [-f] ID...");
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    katavm_error *e = NULL;
    if (!force) {
      /* Without -f only a stopped (or unreachable) sandbox is removed, as
       * `docker rm` refuses a running container. */
      katavm_sandbox *sb = NULL;
      katavm_sandbox_state_t st = KATAVM_SANDBOX_UNKNOWN;
      if (katavm_sandbox_open(c->rt, argv[i], &sb, NULL) == 0) {
        katavm_sandbox_state(sb, &st, NULL);
        katavm_sandbox_close(sb);
      }
      if (st == KATAVM_SANDBOX_RUNNING) {
        fprintf(stderr, "katavm: sandbox '%s' is running; stop it first or use -f\n", argv[i]);
        rc = 1;
        continue;
      }
    }
    if (katavm_sandbox_destroy(c->rt, argv[i], &e) < 0)
      rc = cli_fail(e);
  }
  return rc;
}

int cmd_sandbox(CliCtx *c, int argc, char **argv) {
  if (argc < 2)
    return cli_usage("usage: katavm sandbox create|ls|inspect|stop|rm ...");
  const char *sub = argv[1];
  argc--;
  argv++;
  if (!strcmp(sub, "create"))
    return sb_create(c, argc, argv);
  if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
    return sb_ls(c, argc, argv);
  if (!strcmp(sub, "inspect"))
    return sb_inspect(c, argc, argv);
  if (!strcmp(sub, "stop"))
    return sb_stop(c, argc, argv);
  if (!strcmp(sub, "rm"))
    return sb_rm(c, argc, argv);
  return cli_usage("unknown sandbox command '%s'", sub);
}
