/* cli/hotplug.c: `katavm hotplug SANDBOX cpus N | memory +M|-M|=M |
 * disk add|rm PATH [--mount CONTAINER:/path] [--ro] |
 * net add --tap TAP [--mac MAC] [--ip CIDR]... [--gateway IP] [--mtu N] |
 * net add --netns-iface NAME | net rm MAC`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *USAGE_HP =
    "usage: katavm hotplug SANDBOX cpus N\n"
    "       katavm hotplug SANDBOX memory +MiB|-MiB|=MiB\n"
    "       katavm hotplug SANDBOX disk add PATH [--mount CONTAINER:/path] [--ro]\n"
    "       katavm hotplug SANDBOX disk rm PATH\n"
    "       katavm hotplug SANDBOX net add --tap TAP [--mac MAC] [--ip CIDR]... [--gateway IP] "
    "[--mtu N]\n"
    "       katavm hotplug SANDBOX net add --netns-iface NAME\n"
    "       katavm hotplug SANDBOX net rm MAC";

static gboolean parse_uint(const char *s, unsigned int *out) {
  char *end = NULL;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || v > 1u << 30)
    return FALSE;
  *out = (unsigned int)v;
  return TRUE;
}

int cmd_hotplug(CliCtx *c, int argc, char **argv) {
  g_autofree char *mount = NULL, *tap = NULL, *mac = NULL, *gw = NULL, *iface = NULL;
  g_auto(GStrv) ips = NULL;
  gboolean ro = FALSE;
  int mtu = 0;
  GOptionEntry entries[] = {{"mount", 0, 0, G_OPTION_ARG_STRING, &mount,
                             "mount the disk in a container", "CONTAINER:/path"},
                            {"ro", 0, 0, G_OPTION_ARG_NONE, &ro, "read-only disk", NULL},
                            {"tap", 0, 0, G_OPTION_ARG_STRING, &tap, "host tap device", "TAP"},
                            {"mac", 0, 0, G_OPTION_ARG_STRING, &mac, "MAC address", "MAC"},
                            {"ip", 0, 0, G_OPTION_ARG_STRING_ARRAY, &ips, "guest address", "CIDR"},
                            {"gateway", 0, 0, G_OPTION_ARG_STRING, &gw, "default gateway", "IP"},
                            {"mtu", 0, 0, G_OPTION_ARG_INT, &mtu, "MTU", "N"},
                            {"netns-iface", 0, 0, G_OPTION_ARG_STRING, &iface,
                             "an interface of the sandbox's netns (instead of --tap)", "NAME"},
                            {NULL}};
  /* "memory -256" would read as an option: memory takes none, so its
   * arguments bypass option parsing. */
  gboolean memory = argc >= 3 && !strcmp(argv[2], "memory");
  if (!memory && !cli_parse(&argc, &argv, "SANDBOX KIND ...", entries))
    return 2;
  if (argc < 4)
    return cli_usage("%s", USAGE_HP);
  const char *sid = argv[1], *kind = argv[2];
  katavm_hotplug_request req;
  g_autofree char *container = NULL;
  if (!strcmp(kind, "cpus")) {
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_CPUS);
    if (!parse_uint(argv[3], &req.cpus))
      return cli_usage("cpus: '%s' is not a number", argv[3]);
  } else if (!strcmp(kind, "memory")) {
    katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_MEMORY);
    const char *v = argv[3];
    req.memory_op = v[0] == '+'   ? KATAVM_MEMORY_ADD
                    : v[0] == '-' ? KATAVM_MEMORY_REMOVE
                    : v[0] == '=' ? KATAVM_MEMORY_SET
                                  : 0;
    if (!req.memory_op || !parse_uint(v + 1, &req.memory_mib))
      return cli_usage("memory: '%s' is not +MiB, -MiB or =MiB", v);
  } else if (!strcmp(kind, "disk") && argc >= 5) {
    gboolean add = !strcmp(argv[3], "add");
    if (!add && strcmp(argv[3], "rm"))
      return cli_usage("%s", USAGE_HP);
    katavm_hotplug_request_init(&req, add ? KATAVM_HOTPLUG_DISK_ADD : KATAVM_HOTPLUG_DISK_REMOVE);
    req.path = argv[4];
    req.readonly = ro;
    if (mount) {
      const char *colon = strchr(mount, ':');
      if (!colon || colon == mount || colon[1] != '/')
        return cli_usage("--mount '%s' is not CONTAINER:/path", mount);
      container = g_strndup(mount, (gsize)(colon - mount));
      req.container = container;
      req.mount_path = colon + 1;
    }
  } else if (!strcmp(kind, "net")) {
    if (!strcmp(argv[3], "add")) {
      katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_NIC_ADD);
      req.tap = tap;
      req.mac = mac;
      req.mtu = (unsigned)(mtu > 0 ? mtu : 0);
      req.addresses = (const char *const *)ips;
      req.gateway = gw;
      req.netns_iface = iface;
    } else if (!strcmp(argv[3], "rm") && argc >= 5) {
      katavm_hotplug_request_init(&req, KATAVM_HOTPLUG_NIC_REMOVE);
      req.mac = argv[4];
    } else {
      return cli_usage("%s", USAGE_HP);
    }
  } else {
    return cli_usage("%s", USAGE_HP);
  }
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  if (katavm_sandbox_open(c->rt, sid, &sb, &e) < 0)
    return cli_fail(e);
  char *out = NULL;
  int rc = katavm_hotplug(sb, &req, &out, &e);
  katavm_sandbox_close(sb);
  if (rc < 0)
    return cli_fail(e);
  printf("%s\n", out);
  katavm_free(out);
  return 0;
}
