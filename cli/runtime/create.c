/* cli/runtime/create.c: `katavm-runtime create`: a container from an OCI
 * bundle, in a new sandbox VM (a pod's sandbox container, or a container
 * with no pod annotations) or in its pod's running sandbox. Leaves a host
 * process whose pid goes in --pid-file and that stands for the container's
 * init until it exits (cli/runtime/io.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

typedef struct {
  const char *id;
  char *bundle; /* absolute */
  const char *console;
  const char *pid_file;
  katavm_bundle_info bi;
} Create;

/* Whether the configuration lets annotation `name` size a pod
 * ([runtime] enable_annotations: a comma-separated list; unset = all of
 * io.katavm.cpus and io.katavm.memory_mib, empty = none). */
static gboolean annotation_enabled(Rt *r, const char *name) {
  const char *v = katavm_runtime_config_value(r->lib, "enable_annotations");
  if (!v)
    return TRUE;
  g_auto(GStrv) names = g_strsplit(v, ",", -1);
  for (char **n = names; *n; n++)
    if (!strcmp(g_strstrip(*n), name))
      return TRUE;
  return FALSE;
}

static unsigned int capped(Rt *r, const char *key, unsigned int want) {
  const char *v = katavm_runtime_config_value(r->lib, key);
  guint64 max;
  if (want && v && g_ascii_string_to_unsigned(v, 10, 1, G_MAXUINT, &max, NULL) && want > max)
    return (unsigned int)max;
  return want;
}

/* The bundle's annotations (as katavm_bundle_info_read() found them),
 * which `state` reports back. */
static JsonObject *read_annotations(const char *json) {
  g_autoptr(JsonParser) p = json_parser_new();
  if (!json || !json_parser_load_from_data(p, json, -1, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root(p);
  return root && JSON_NODE_HOLDS_OBJECT(root) ? json_object_ref(json_node_get_object(root)) : NULL;
}

static int create_body(Rt *r, gpointer data, int report) {
  Create *c = data;
  rt_block_signals();
  katavm_error *e = NULL;
  katavm_sandbox *sb = NULL;
  katavm_process *proc = NULL;
  gboolean created_vm = FALSE, added = FALSE;
  int slave = -1;
  g_autofree char *msg = NULL;
  g_autoptr(GError) ge = NULL;
  RtState st = {.id = (char *)c->id, .bundle = c->bundle, .sandbox = (char *)c->id};
  katavm_runtime *lib = rt_lib(r, &e);
  if (!lib)
    goto fail;
  if (c->console) {
    if (!rt_console_setup(c->console, &slave, &ge)) {
      msg = g_strdup(ge->message);
      goto fail;
    }
  }
  if (c->bi.role == KATAVM_ROLE_MEMBER) {
    st.sandbox = c->bi.sandbox_id;
    if (katavm_sandbox_open(lib, st.sandbox, &sb, &e) < 0) {
      if (katavm_error_code(e) == KATAVM_E_NOT_FOUND) {
        msg = g_strdup_printf("container %s: its pod's sandbox %s does not exist (annotation "
                              "io.kubernetes.cri-o.SandboxID / io.kubernetes.cri.sandbox-id)",
                              c->id, st.sandbox);
        katavm_error_free(e);
        e = NULL;
      }
      goto fail;
    }
  } else {
    katavm_sandbox_config sc;
    katavm_sandbox_config_init(&sc);
    sc.id = c->id;
    gboolean cpus_ok = !c->bi.vcpus_annotated || annotation_enabled(r, "io.katavm.cpus");
    gboolean mem_ok = !c->bi.memory_annotated || annotation_enabled(r, "io.katavm.memory_mib");
    sc.vcpus = cpus_ok ? capped(r, "max_vcpus", c->bi.vcpus) : 0;
    sc.memory_mib = mem_ok ? capped(r, "max_memory_mib", c->bi.memory_mib) : 0;
    /* ... and what `update` may hot-plug the VM up to (0: unset). */
    sc.max_vcpus = capped(r, "max_vcpus", G_MAXUINT) % G_MAXUINT;
    sc.max_memory_mib = capped(r, "max_memory_mib", G_MAXUINT) % G_MAXUINT;
    if (sc.memory_mib && sc.memory_mib < KATAVM_MIN_MEMORY_MIB)
      sc.memory_mib = KATAVM_MIN_MEMORY_MIB;
    sc.netns = c->bi.netns_configured ? c->bi.netns : NULL;
    if (katavm_sandbox_create(lib, &sc, &sb, &e) < 0)
      goto fail;
    created_vm = TRUE;
  }
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.bundle = c->bundle;
  cc.tty = c->console != NULL;
  if (katavm_container_add(sb, c->id, &cc, &proc, &e) < 0)
    goto fail;
  added = TRUE;
  st.is_sandbox = created_vm;
  st.annotations = read_annotations(c->bi.annotations);
  st.config = r->config;
  st.pid = getpid();
  st.pid_start = rt_pid_start(st.pid);
  GDateTime *now = g_date_time_new_now_utc();
  st.created = g_date_time_format_iso8601(now);
  g_date_time_unref(now);
  gboolean saved = rt_state_save(r, &st, &ge);
  g_free(st.created);
  st.config = NULL;
  if (st.annotations)
    json_object_unref(st.annotations);
  if (!saved || (c->pid_file && !rt_write_pid_file(c->pid_file, st.pid, &ge))) {
    msg = g_strdup_printf("%s%s", saved ? "pid file: " : "", ge->message);
    goto fail;
  }
  katavm_sandbox_close(sb);
  rt_procfs_serve(r, c->id);
  rt_child_ready(report);
  int status = rt_relay(proc, STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, slave, &e);
  katavm_process_free(proc);
  if (status < 0) {
    fprintf(stderr, "katavm-runtime: container %s: %s\n", c->id, katavm_error_message(e));
    katavm_error_free(e);
    rt_exit_like(255);
  }
  rt_exit_like(status);
fail:
  if (!msg)
    msg = g_strdup(e ? katavm_error_message(e) : "unknown error");
  katavm_error_free(e);
  katavm_process_free(proc);
  /* Only what this call added: a failed add may mean the id is taken. */
  if (sb && added && !created_vm)
    katavm_container_remove(sb, c->id, 1, NULL);
  katavm_sandbox_close(sb);
  if (created_vm)
    katavm_sandbox_destroy(lib, c->id, NULL);
  rt_child_failed(report, msg);
  return 1;
}

int cmd_create(Rt *r, int argc, char **argv) {
  char *bundle = NULL, *pid_file = NULL, *console = NULL;
  gboolean no_pivot = FALSE, no_keyring = FALSE;
  int preserve_fds = 0;
  GOptionEntry entries[] = {
      {"bundle", 'b', 0, G_OPTION_ARG_FILENAME, &bundle, "bundle directory (default .)", "DIR"},
      {"pid-file", 0, 0, G_OPTION_ARG_FILENAME, &pid_file, "write the init's host pid here",
       "FILE"},
      {"console-socket", 0, 0, G_OPTION_ARG_FILENAME, &console,
       "unix socket that receives the pty master", "SOCK"},
      {"no-pivot", 0, 0, G_OPTION_ARG_NONE, &no_pivot, "accepted (the guest pivots)", NULL},
      {"no-new-keyring", 0, 0, G_OPTION_ARG_NONE, &no_keyring, "accepted", NULL},
      {"preserve-fds", 0, 0, G_OPTION_ARG_INT, &preserve_fds, "accepted; extra fds are not passed",
       "N"},
      {NULL}};
  int rc = 1;
  Create c = {.console = NULL};
  katavm_error *e = NULL;
  g_autofree char *cwd = g_get_current_dir();
  g_autofree char *dir = NULL, *abs_pid = NULL, *abs_console = NULL;
  g_autoptr(GError) ge = NULL;
  katavm_bundle_info_init(&c.bi);
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    goto out;
  if (argc != 2) {
    rc = rt_error(r, "create: expected one container id, got %d arguments", argc - 1);
    goto out;
  }
  c.id = argv[1];
  abs_pid = pid_file ? g_canonicalize_filename(pid_file, cwd) : NULL;
  abs_console = console ? g_canonicalize_filename(console, cwd) : NULL;
  /* The stand-in works from "/": it takes absolute paths. */
  c.console = abs_console;
  c.pid_file = abs_pid;
  if (katavm_id_check(c.id, "container id", &e) < 0) {
    rc = rt_fail(r, e);
    goto out;
  }
  c.bundle = g_canonicalize_filename(bundle ? bundle : ".", cwd);
  if (katavm_bundle_info_read(c.bundle, &c.bi, &e) < 0) {
    rc = rt_fail(r, e);
    goto out;
  }
  if (!rt_lib(r, &e)) {
    rc = rt_fail(r, e);
    goto out;
  }
  gboolean handled = FALSE;
  rc = rt_trusted_create(r, c.id, &c.bi, &handled);
  if (handled)
    goto out;
  rc = 1;
  if (g_mkdir_with_parents(r->root, 0700) < 0) {
    rc = rt_error(r, "cannot create --root %s: %s", r->root, g_strerror(errno));
    goto out;
  }
  dir = rt_state_dir(r, c.id);
  if (mkdir(dir, 0700) < 0) {
    rc = errno == EEXIST ? rt_error(r, "container with id %s already exists", c.id)
                         : rt_error(r, "cannot create %s: %s", dir, g_strerror(errno));
    goto out;
  }
  pid_t pid = rt_spawn_child(r, create_body, &c, c.console != NULL, &ge);
  if (pid < 0) {
    rt_state_remove(r, c.id);
    rc = rt_error(r, "%s", ge->message);
    goto out;
  }
  rc = 0;
out:
  katavm_bundle_info_clear(&c.bi);
  g_free(c.bundle);
  g_free(bundle);
  g_free(pid_file);
  g_free(console);
  return rc;
}
