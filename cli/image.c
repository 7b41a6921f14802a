/* cli/image.c: `katavm image build`, the guest kernel + initrd builder. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_image(CliCtx *c, int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "build") != 0)
    return cli_usage("usage: katavm image build [--kernel-release R] [--out DIR] [--force]");
  g_autofree char *rel = NULL, *out = NULL;
  gboolean force = FALSE;
  GOptionEntry entries[] = {
      {"kernel-release", 0, 0, G_OPTION_ARG_STRING, &rel, "kernel release (default: newest)", "R"},
      {"out", 0, 0, G_OPTION_ARG_FILENAME, &out,
       "output dir (default: beside the runtime's kernel)", "DIR"},
      {"force", 0, 0, G_OPTION_ARG_NONE, &force, "rebuild even when up to date", NULL},
      {NULL}};
  argc--;
  argv++;
  if (!cli_parse(&argc, &argv, "- build the guest image", entries))
    return 2;
  katavm_error *e = NULL;
  if (katavm_image_build(c->rt, rel, out, force, &e) < 0)
    return cli_fail(e);
  return 0;
}
