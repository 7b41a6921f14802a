/* cli/runtime/state.c: the runtime's record of each container under
 * --root (ROOT/ID/state.json, written atomically), pid files, the host
 * processes that stand for guest processes, and signal names. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

void rt_state_clear(RtState *s) {
  g_free(s->id);
  g_free(s->bundle);
  g_free(s->sandbox);
  g_free(s->created);
  g_free(s->config);
  if (s->annotations)
    json_object_unref(s->annotations);
  memset(s, 0, sizeof(*s));
}

char *rt_state_dir(Rt *r, const char *id) {
  return g_build_filename(r->root, id, NULL);
}

gboolean rt_state_load(Rt *r, const char *id, RtState *s, GError **error) {
  memset(s, 0, sizeof(*s));
  katavm_error *ke = NULL;
  if (katavm_id_check(id, "container id", &ke) < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s", katavm_error_message(ke));
    katavm_error_free(ke);
    return FALSE;
  }
  if (r->dispatch && rt_is_trusted(r, id))
    rt_trusted_exec(r, id);
  g_autofree char *dir = rt_state_dir(r, id);
  g_autofree char *path = g_build_filename(dir, "state.json", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) pe = NULL;
  if (!json_parser_load_from_file(p, path, &pe)) {
    if (g_error_matches(pe, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "container %s does not exist", id);
    else
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "state of container %s: %s", id,
                  pe->message);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root(p);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "state of container %s is corrupt", id);
    return FALSE;
  }
  JsonObject *o = json_node_get_object(root);
  s->id = g_strdup(id);
  s->bundle = g_strdup(json_object_get_string_member_with_default(o, "bundle", ""));
  s->sandbox = g_strdup(json_object_get_string_member_with_default(o, "sandbox", ""));
  s->is_sandbox = json_object_get_boolean_member_with_default(o, "is_sandbox", FALSE);
  s->pid = (pid_t)json_object_get_int_member_with_default(o, "pid", 0);
  s->pid_start = (guint64)json_object_get_int_member_with_default(o, "pid_start", 0);
  s->created = g_strdup(json_object_get_string_member_with_default(o, "created", ""));
  const char *conf = json_object_get_string_member_with_default(o, "config", NULL);
  s->config = conf && g_path_is_absolute(conf) ? g_strdup(conf) : NULL;
  /* Without --config of its own, a command uses create's, before the
   * library runtime is first made. */
  if (!r->config && !r->lib && s->config)
    r->config = g_strdup(s->config);
  if (json_object_has_member(o, "annotations") &&
      JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, "annotations")))
    s->annotations = json_object_ref(json_object_get_object_member(o, "annotations"));
  if (katavm_id_check(s->sandbox, "sandbox id", &ke) < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "state of container %s: %s", id,
                katavm_error_message(ke));
    katavm_error_free(ke);
    rt_state_clear(s);
    return FALSE;
  }
  return TRUE;
}

gboolean rt_state_save(Rt *r, const RtState *s, GError **error) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "id");
  json_builder_add_string_value(b, s->id);
  json_builder_set_member_name(b, "bundle");
  json_builder_add_string_value(b, s->bundle);
  json_builder_set_member_name(b, "sandbox");
  json_builder_add_string_value(b, s->sandbox);
  json_builder_set_member_name(b, "is_sandbox");
  json_builder_add_boolean_value(b, s->is_sandbox);
  json_builder_set_member_name(b, "pid");
  json_builder_add_int_value(b, s->pid);
  json_builder_set_member_name(b, "pid_start");
  json_builder_add_int_value(b, (gint64)s->pid_start);
  json_builder_set_member_name(b, "created");
  json_builder_add_string_value(b, s->created);
  if (s->config) {
    json_builder_set_member_name(b, "config");
    json_builder_add_string_value(b, s->config);
  }
  if (s->annotations) {
    json_builder_set_member_name(b, "annotations");
    JsonNode *a = json_node_init_object(json_node_alloc(), s->annotations);
    json_builder_add_value(b, a);
  }
  json_builder_end_object(b);
  g_autoptr(JsonNode) n = json_builder_get_root(b);
  g_autofree char *text = json_to_string(n, FALSE);
  g_autofree char *dir = rt_state_dir(r, s->id);
  g_autofree char *path = g_build_filename(dir, "state.json", NULL);
  return g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

void rt_state_remove(Rt *r, const char *id) {
  g_autofree char *dir = rt_state_dir(r, id);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd >= 0) {
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d)))
      unlinkat(dfd, name, 0);
    close(dfd);
  }
  rmdir(dir);
}

static gint cmp_str(gconstpointer a, gconstpointer b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

char **rt_state_list(Rt *r) {
  GPtrArray *ids = g_ptr_array_new();
  g_autoptr(GDir) d = g_dir_open(r->root, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    if (katavm_id_check(name, NULL, NULL) < 0)
      continue;
    g_autofree char *st = g_build_filename(r->root, name, "state.json", NULL);
    if (g_file_test(st, G_FILE_TEST_IS_REGULAR))
      g_ptr_array_add(ids, g_strdup(name));
  }
  g_ptr_array_sort(ids, cmp_str);
  g_ptr_array_add(ids, NULL);
  return (char **)g_ptr_array_free(ids, FALSE);
}

guint64 rt_pid_start(pid_t pid) {
  if (pid <= 0)
    return 0;
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return 0;
  /* After the command name in parentheses (which may hold spaces). */
  char *p = strrchr(text, ')');
  if (!p)
    return 0;
  g_auto(GStrv) f = g_strsplit(p + 2, " ", 0);
  /* f[0] is field 3 (state); the start time is field 22. */
  if (g_strv_length(f) < 20 || f[0][0] == 'Z')
    return 0;
  return g_ascii_strtoull(f[19], NULL, 10);
}

gboolean rt_pid_alive(pid_t pid, guint64 start) {
  return pid > 0 && start && rt_pid_start(pid) == start;
}

gboolean rt_write_pid_file(const char *path, pid_t pid, GError **error) {
  g_autofree char *text = g_strdup_printf("%d", pid);
  /* runc writes a temporary file beside it and renames it into place, so
   * a reader never sees a partial pid. */
  return g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
}

int rt_open_sandbox(Rt *r, const RtState *s, katavm_sandbox **out, katavm_error **err) {
  katavm_runtime *lib = rt_lib(r, err);
  if (!lib)
    return -1;
  return katavm_sandbox_open(lib, s->sandbox, out, err);
}

static const struct {
  const char *name;
  int sig;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

int rt_parse_signal(const char *s) {
  if (!s || !*s)
    return -1;
  guint64 n;
  if (g_ascii_string_to_unsigned(s, 10, 1, 64, &n, NULL))
    return (int)n;
  const char *name = g_ascii_strncasecmp(s, "SIG", 3) ? s : s + 3;
  for (size_t i = 0; i < G_N_ELEMENTS(signals); i++)
    if (!g_ascii_strcasecmp(name, signals[i].name))
      return signals[i].sig;
  if (!g_ascii_strncasecmp(name, "RTMIN+", 6) &&
      g_ascii_string_to_unsigned(name + 6, 10, 0, (guint64)(SIGRTMAX - SIGRTMIN), &n, NULL))
    return SIGRTMIN + (int)n;
  return -1;
}
