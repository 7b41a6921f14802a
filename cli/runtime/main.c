/* cli/runtime/main.c: `katavm-runtime`, an OCI runtime with runc's command
 * line (what conmon, podman, docker's and containerd's runc shims and
 * CRI-O call), running each pod in a katavm VM. Global options, error
 * reporting, the library runtime, and dispatch to one file per command. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rt.h"

#define RUNTIME_NAME "katavm-runtime"

static void log_line(Rt *r, const char *level, const char *msg) {
  if (!r->log)
    return;
  FILE *f = fopen(r->log, "ae");
  if (!f)
    return;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *ts = g_date_time_format_iso8601(now);
  if (r->log_json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "level");
    json_builder_add_string_value(b, level);
    json_builder_set_member_name(b, "msg");
    json_builder_add_string_value(b, msg);
    json_builder_set_member_name(b, "time");
    json_builder_add_string_value(b, ts);
    json_builder_end_object(b);
    g_autoptr(JsonNode) n = json_builder_get_root(b);
    g_autofree char *s = json_to_string(n, FALSE);
    fprintf(f, "%s\n", s);
  } else {
    fprintf(f, "time=\"%s\" level=%s msg=\"%s\"\n", ts, level, msg);
  }
  fclose(f);
}

int rt_error(Rt *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  fprintf(stderr, RUNTIME_NAME ": %s\n", msg);
  log_line(r, "error", msg);
  return 1;
}

int rt_fail(Rt *r, katavm_error *e) {
  int rc = rt_error(r, "%s", katavm_error_message(e));
  katavm_error_free(e);
  return rc;
}

void rt_debug(Rt *r, const char *fmt, ...) {
  if (!r->debug)
    return;
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  log_line(r, "debug", msg);
}

gboolean rt_parse(Rt *r, int *argc, char ***argv, const char *usage, const GOptionEntry *entries,
                  gboolean posix) {
  g_autoptr(GOptionContext) oc = g_option_context_new(usage);
  g_option_context_set_strict_posix(oc, posix);
  g_option_context_add_main_entries(oc, entries, NULL);
  g_autofree char *prg = g_strdup_printf(RUNTIME_NAME " %s", (*argv)[0]);
  g_set_prgname(prg);
  g_autoptr(GError) e = NULL;
  if (!g_option_context_parse(oc, argc, argv, &e)) {
    rt_error(r, "%s: %s (see `" RUNTIME_NAME " %s --help`)", (*argv)[0], e->message, (*argv)[0]);
    return FALSE;
  }
  return TRUE;
}

katavm_runtime *rt_lib(Rt *r, katavm_error **err) {
  if (r->lib)
    return r->lib;
  katavm_runtime *rt = NULL;
  if (katavm_runtime_new(&rt, err) < 0)
    return NULL;
  const char *path = r->config;
  gboolean given = path != NULL;
  if (!path)
    path = "/etc/katavm/runtime.conf";
  if (given || g_file_test(path, G_FILE_TEST_EXISTS)) {
    if (katavm_runtime_load_config(rt, path, err) < 0) {
      katavm_runtime_free(rt);
      return NULL;
    }
  }
  r->lib = rt;
  return rt;
}

static const char *USAGE =
    "usage: " RUNTIME_NAME " [global options] COMMAND [options] ARGS...\n"
    "\n"
    "An OCI runtime with runc's command line that runs every pod in its own\n"
    "katavm VM (a guest kernel of its own).\n"
    "\n"
    "global options:\n"
    "  --root DIR             state directory (default /run/katavm-runtime)\n"
    "  --log FILE             append errors (and with --debug, debug lines) here\n"
    "  --log-format text|json format of --log (default text)\n"
    "  --systemd-cgroup       accepted; cgroups are the guest's (cgroupfs semantics)\n"
    "  --config FILE          configuration (default /etc/katavm/runtime.conf;\n"
    "                         KATAVM_RUNTIME_CONFIG overrides the default)\n"
    "  --debug                debug output to the log\n"
    "  -v, --version          print the version\n"
    "  -h, --help             print this help\n"
    "\n"
    "commands:\n"
    "  create   create a container from a bundle (its init waits for start)\n"
    "  start    start a created container\n"
    "  state    print a container's state (JSON)\n"
    "  kill     send a signal to a container's init (or all its processes)\n"
    "  delete   delete a container (a pod's sandbox container: its VM)\n"
    "  exec     run a process in a running container\n"
    "  ps       list a container's host processes\n"
    "  list     list containers\n"
    "  pause    freeze a container's processes\n"
    "  resume   thaw them\n"
    "  update   change a container's resource limits\n"
    "  features print what this runtime supports (JSON)\n"
    "  spec     write a default config.json\n";

static const struct {
  const char *name;
  int (*fn)(Rt *, int, char **);
} commands[] = {
    {"create", cmd_create}, {"start", cmd_start},   {"state", cmd_state},
    {"kill", cmd_kill},     {"delete", cmd_delete}, {"exec", cmd_exec},
    {"ps", cmd_ps},         {"list", cmd_list},     {"pause", cmd_pause},
    {"resume", cmd_resume}, {"update", cmd_update}, {"features", cmd_features},
    {"spec", cmd_spec},
};

static void print_version(void) {
  printf(RUNTIME_NAME " version %s\nspec: 1.0.2\nlibkatavm: %s\n", katavm_version(),
         katavm_version());
}

/* A global option's value: "--opt VALUE" or "--opt=VALUE". */
static gboolean opt_value(int argc, char **argv, int *i, const char *name, const char **out) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  /* runc (urfave/cli) takes one or two dashes. */
  if (a[1] == '-')
    a++;
  if (strncmp(a + 1, name, n))
    return FALSE;
  if (a[1 + n] == '=') {
    *out = a + 2 + n;
    return TRUE;
  }
  if (a[1 + n] != '\0')
    return FALSE;
  if (*i + 1 >= argc) {
    *out = NULL;
    return TRUE;
  }
  *out = argv[++*i];
  return TRUE;
}

int main(int argc, char **argv) {
  Rt r = {.root = g_strdup("/run/katavm-runtime")};
  const char *env_conf = g_getenv("KATAVM_RUNTIME_CONFIG");
  if (env_conf && *env_conf)
    r.config = g_strdup(env_conf);
  int i = 1, rc = 0;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    const char *a = argv[i];
    const char *v = NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(USAGE, stdout);
      goto out;
    }
    if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
      print_version();
      goto out;
    }
    if (!strcmp(a, "--debug") || !strcmp(a, "-debug")) {
      r.debug = TRUE;
      continue;
    }
    if (!strcmp(a, "--systemd-cgroup") || !strcmp(a, "-systemd-cgroup") ||
        !strcmp(a, "--rootless=false"))
      continue;
    const char *names[] = {"root", "log", "log-format", "config", "criu", "rootless"};
    size_t k = 0;
    for (; k < G_N_ELEMENTS(names); k++)
      if (opt_value(argc, argv, &i, names[k], &v))
        break;
    if (k == G_N_ELEMENTS(names)) {
      rc = rt_error(&r, "flag provided but not defined: %s (see `" RUNTIME_NAME " --help`)", a);
      goto out;
    }
    if (!v) {
      rc = rt_error(&r, "flag needs an argument: %s", a);
      goto out;
    }
    switch (k) {
    case 0:
      if (!g_path_is_absolute(v)) {
        rc = rt_error(&r, "--root '%s' must be an absolute path", v);
        goto out;
      }
      g_free(r.root);
      r.root = g_strdup(v);
      break;
    case 1:
      g_free(r.log);
      r.log = g_strdup(v);
      break;
    case 2:
      if (strcmp(v, "text") && strcmp(v, "json")) {
        rc = rt_error(&r, "--log-format '%s': expected text or json", v);
        goto out;
      }
      r.log_json = !strcmp(v, "json");
      break;
    case 3: {
      g_autofree char *cwd = g_get_current_dir();
      g_free(r.config);
      r.config = g_canonicalize_filename(v, cwd);
      break;
    }
    default: /* --criu, --rootless: accepted, not used */
      break;
    }
  }
  if (i >= argc) {
    fputs(USAGE, stderr);
    rc = 1;
    goto out;
  }
  for (size_t c = 0; c < G_N_ELEMENTS(commands); c++)
    if (!strcmp(argv[i], commands[c].name)) {
      g_autofree char *line = g_strjoinv(" ", argv);
      rt_debug(&r, "%s", line);
      /* A copy: option parsing takes the options out of argv. */
      r.cmd_argc = argc - i;
      r.cmd_argv = g_new0(char *, argc - i + 1);
      for (int k = i; k < argc; k++)
        r.cmd_argv[k - i] = g_strdup(argv[k]);
      r.dispatch =
          strcmp(argv[i], "list") && strcmp(argv[i], "create") && strcmp(argv[i], "delete");
      rc = commands[c].fn(&r, argc - i, argv + i);
      goto out;
    }
  rc = rt_error(&r, "unknown command '%s' (see `" RUNTIME_NAME " --help`)", argv[i]);
out:
  katavm_runtime_free(r.lib);
  g_free(r.root);
  g_free(r.log);
  g_free(r.config);
  g_strfreev(r.cmd_argv);
  return rc;
}
