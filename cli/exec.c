/* cli/exec.c: `katavm exec`, a process in a running container, its stdio
 * on this terminal and its exit code as ours. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* SANDBOX[/CONTAINER]; without a container the sandbox's only container. */
static int resolve_target(CliCtx *c, const char *target, katavm_sandbox **sb, char **container) {
  const char *slash = strchr(target, '/');
  g_autofree char *sid = slash ? g_strndup(target, (gsize)(slash - target)) : g_strdup(target);
  katavm_error *e = NULL;
  if (katavm_sandbox_open(c->rt, sid, sb, &e) < 0)
    return cli_fail(e);
  if (slash) {
    *container = g_strdup(slash + 1);
    return 0;
  }
  char **ids = NULL;
  if (katavm_container_list(*sb, &ids, &e) < 0) {
    katavm_sandbox_close(*sb);
    return cli_fail(e);
  }
  int n = 0;
  while (ids[n])
    n++;
  if (n != 1) {
    fprintf(stderr, "katavm: sandbox '%s' has %d containers; name one as %s/CONTAINER\n", sid, n,
            sid);
    katavm_strv_free(ids);
    katavm_sandbox_close(*sb);
    return 1;
  }
  *container = g_strdup(ids[0]);
  katavm_strv_free(ids);
  return 0;
}

int cmd_exec(CliCtx *c, int argc, char **argv) {
  gboolean interactive = FALSE, tty = FALSE;
  g_auto(GStrv) env = NULL;
  g_autofree char *cwd = NULL, *user = NULL;
  GOptionEntry entries[] = {
      {"interactive", 'i', 0, G_OPTION_ARG_NONE, &interactive, "keep stdin open", NULL},
      {"tty", 't', 0, G_OPTION_ARG_NONE, &tty, "allocate a terminal", NULL},
      {"env", 'e', 0, G_OPTION_ARG_STRING_ARRAY, &env, "set a variable", "K=V"},
      {"workdir", 'w', 0, G_OPTION_ARG_STRING, &cwd, "working directory", "DIR"},
      {"user", 'u', 0, G_OPTION_ARG_STRING, &user, "user", "UID[:GID]"},
      {NULL}};
  if (!cli_parse_posix(&argc, &argv, "SANDBOX[/CONTAINER] -- CMD...", entries, TRUE))
    return 2;
  int i = 1;
  if (i < argc && !strcmp(argv[i], "--"))
    i++;
  if (i >= argc)
    return cli_usage("usage: katavm exec [-i] [-t] [-e K=V] [-w DIR] [-u UID[:GID]] "
                     "SANDBOX[/CONTAINER] -- CMD...");
  const char *target = argv[i++];
  if (i < argc && !strcmp(argv[i], "--"))
    i++;
  if (i >= argc)
    return cli_usage("exec: no command given");
  for (char **e = env; e && *e; e++)
    if (!strchr(*e, '='))
      return cli_usage("exec: -e '%s' is not K=V", *e);
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = (const char *const *)argv + i;
  cfg.env = (const char *const *)env;
  cfg.cwd = cwd;
  cfg.tty = tty;
  cfg.no_stdin = !interactive;
  if (tty)
    cli_term_size(&cfg.rows, &cfg.cols);
  if (user) {
    char *end = NULL;
    unsigned long uid = strtoul(user, &end, 10), gid = uid;
    if (end == user || (*end && *end != ':'))
      return cli_usage("exec: -u '%s' is not UID[:GID]", user);
    if (*end == ':') {
      char *e2 = NULL;
      gid = strtoul(end + 1, &e2, 10);
      if (e2 == end + 1 || *e2)
        return cli_usage("exec: -u '%s' is not UID[:GID]", user);
    }
    cfg.set_user = 1;
    cfg.uid = (unsigned)uid;
    cfg.gid = (unsigned)gid;
  }
  katavm_sandbox *sb = NULL;
  g_autofree char *container = NULL;
  int rc = resolve_target(c, target, &sb, &container);
  if (rc)
    return rc == 1 ? 125 : rc;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  if (katavm_exec(sb, container, &cfg, &p, &e) < 0) {
    katavm_sandbox_close(sb);
    cli_fail(e);
    return 125;
  }
  rc = cli_attach(p, interactive, tty);
  katavm_process_free(p);
  katavm_sandbox_close(sb);
  return rc;
}
