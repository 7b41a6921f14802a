/* cli/runtime/query.c: `state`, `list` and `ps`: what a container manager
 * reads back about its containers, in runc's formats. */
#include <stdio.h>
#include <string.h>

#include "rt.h"

static void add_state(JsonBuilder *b, Rt *r, const RtState *s) {
  pid_t pid;
  const char *status = rt_status(r, s, &pid);
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "ociVersion");
  json_builder_add_string_value(b, "1.0.2");
  json_builder_set_member_name(b, "id");
  json_builder_add_string_value(b, s->id);
  json_builder_set_member_name(b, "pid");
  json_builder_add_int_value(b, pid);
  json_builder_set_member_name(b, "status");
  json_builder_add_string_value(b, status);
  json_builder_set_member_name(b, "bundle");
  json_builder_add_string_value(b, s->bundle);
  json_builder_set_member_name(b, "rootfs");
  g_autofree char *rootfs = g_build_filename(s->bundle, "rootfs", NULL);
  json_builder_add_string_value(b, rootfs);
  json_builder_set_member_name(b, "created");
  json_builder_add_string_value(b, s->created);
  json_builder_set_member_name(b, "owner");
  json_builder_add_string_value(b, "");
  json_builder_set_member_name(b, "sandbox");
  json_builder_add_string_value(b, s->sandbox);
  if (s->annotations) {
    json_builder_set_member_name(b, "annotations");
    json_builder_add_value(b, json_node_init_object(json_node_alloc(), s->annotations));
  }
  json_builder_end_object(b);
}

static void print_json(JsonBuilder *b) {
  g_autoptr(JsonNode) n = json_builder_get_root(b);
  g_autoptr(JsonGenerator) g = json_generator_new();
  json_generator_set_pretty(g, TRUE);
  json_generator_set_indent(g, 2);
  json_generator_set_root(g, n);
  g_autofree char *text = json_generator_to_data(g, NULL);
  printf("%s\n", text);
}

int cmd_state(Rt *r, int argc, char **argv) {
  GOptionEntry entries[] = {{NULL}};
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    return 1;
  if (argc < 2)
    return rt_error(r, "state: expected a container id");
  RtState s;
  g_autoptr(GError) e = NULL;
  if (!rt_state_load(r, argv[1], &s, &e))
    return rt_error(r, "%s", e->message);
  g_autoptr(JsonBuilder) b = json_builder_new();
  add_state(b, r, &s);
  print_json(b);
  rt_state_clear(&s);
  return 0;
}

int cmd_list(Rt *r, int argc, char **argv) {
  char *format = NULL;
  gboolean quiet = FALSE;
  GOptionEntry entries[] = {
      {"format", 'f', 0, G_OPTION_ARG_STRING, &format, "table or json", "FORMAT"},
      {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "ids only", NULL},
      {NULL}};
  if (!rt_parse(r, &argc, &argv, "", entries, FALSE))
    return 1;
  g_autofree char *fmt = format;
  if (fmt && strcmp(fmt, "table") && strcmp(fmt, "json"))
    return rt_error(r, "list: --format '%s': expected table or json", fmt);
  g_auto(GStrv) ids = rt_state_list(r);
  gboolean json = fmt && !strcmp(fmt, "json");
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_array(b);
  if (!json && !quiet)
    printf("%-64s  %-8s  %-8s  %s\n", "ID", "PID", "STATUS", "BUNDLE");
  for (char **id = ids; *id; id++) {
    RtState s;
    if (!rt_state_load(r, *id, &s, NULL))
      continue;
    if (json) {
      add_state(b, r, &s);
    } else if (quiet) {
      printf("%s\n", s.id);
    } else {
      pid_t pid;
      const char *status = rt_status(r, &s, &pid);
      printf("%-64s  %-8d  %-8s  %s\n", s.id, pid, status, s.bundle);
    }
    rt_state_clear(&s);
  }
  json_builder_end_array(b);
  if (json)
    print_json(b);
  return 0;
}

int cmd_ps(Rt *r, int argc, char **argv) {
  char *format = NULL;
  GOptionEntry entries[] = {
      {"format", 'f', 0, G_OPTION_ARG_STRING, &format, "table or json", "FORMAT"}, {NULL}};
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    return 1;
  g_autofree char *fmt = format;
  if (fmt && strcmp(fmt, "table") && strcmp(fmt, "json"))
    return rt_error(r, "ps: --format '%s': expected table or json", fmt);
  if (argc < 2)
    return rt_error(r, "ps: expected a container id");
  RtState s;
  g_autoptr(GError) e = NULL;
  if (!rt_state_load(r, argv[1], &s, &e))
    return rt_error(r, "%s", e->message);
  /* The host processes of a container are the ones that stand for its
   * guest processes; the guest's own pids are not host pids. */
  pid_t pid;
  const char *status = rt_status(r, &s, &pid);
  gboolean json = fmt && !strcmp(fmt, "json");
  if (json) {
    if (pid > 0 && strcmp(status, "stopped"))
      printf("[%d]\n", pid);
    else
      printf("[]\n");
  } else {
    printf("PID   STATUS\n");
    if (pid > 0)
      printf("%-5d %s\n", pid, status);
  }
  rt_state_clear(&s);
  return 0;
}
