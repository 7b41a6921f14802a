/* cli/check.c: `katavm check`, the host capability report. */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_check(CliCtx *c, int argc, char **argv) {
  gboolean json = FALSE;
  GOptionEntry entries[] = {{"json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL}, {NULL}};
  if (!cli_parse(&argc, &argv, "- report what this host offers", entries))
    return 2;
  katavm_error *e = NULL;
  char *out = NULL;
  if (katavm_check_host(c->rt, &out, &e) < 0)
    return cli_fail(e);
  g_autoptr(JsonParser) p = json_parser_new();
  if (!json_parser_load_from_data(p, out, -1, NULL)) {
    katavm_free(out);
    fprintf(stderr, "katavm: malformed check report\n");
    return 1;
  }
  if (json)
    printf("%s\n", out);
  katavm_free(out);
  JsonObject *top = json_node_get_object(json_parser_get_root(p));
  gboolean ok = json_object_get_boolean_member(top, "ok");
  if (!json) {
    printf("accelerator: %s (%s)\n", json_object_get_string_member(top, "accel"),
           json_object_get_string_member(top, "accel_reason"));
    JsonArray *items = json_object_get_array_member(top, "items");
    for (guint i = 0; i < json_array_get_length(items); i++) {
      JsonObject *it = json_array_get_object_element(items, i);
      gboolean iok = json_object_get_boolean_member(it, "ok");
      gboolean opt =
          json_object_has_member(it, "optional") && json_object_get_boolean_member(it, "optional");
      printf("[%s] %-16s %s\n",
             iok   ? " ok "
             : opt ? "info"
                   : "FAIL",
             json_object_get_string_member(it, "name"),
             json_object_get_string_member(it, "detail"));
      if (!iok && json_object_has_member(it, "fix"))
        printf("       fix: %s\n", json_object_get_string_member(it, "fix"));
    }
    printf("%s\n",
           ok ? "this host can run katavm sandboxes" : "this host cannot run katavm sandboxes yet");
  }
  return ok ? 0 : 1;
}
