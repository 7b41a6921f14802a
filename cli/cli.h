/* cli/cli.h: what the katavm command files share: the runtime built from
 * global options and the one place errors are printed. Public API only. */
#pragma once

#include <glib.h>

#include "katavm/katavm.h"

typedef struct {
  katavm_runtime *rt;
} CliCtx;

/* Print "katavm: <message>" for a failed library call; returns 1. */
int cli_fail(katavm_error *e);
/* Print a usage error; returns 2. */
int cli_usage(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Parse options of a subcommand; argv[0] is the subcommand name. Returns
 * FALSE (after printing) on bad usage. */
gboolean cli_parse(int *argc, char ***argv, const char *usage, const GOptionEntry *entries);
gboolean cli_parse_posix(int *argc, char ***argv, const char *usage, const GOptionEntry *entries,
                         gboolean posix);

/* Pump this terminal <-> the process until its output ends; returns its
 * exit code (125 when the runtime failed). */
int cli_attach(katavm_process *p, gboolean forward_stdin, gboolean tty);
gboolean cli_term_size(unsigned short *rows, unsigned short *cols);

int cmd_container(CliCtx *c, int argc, char **argv);
int cmd_exec(CliCtx *c, int argc, char **argv);
int cmd_run(CliCtx *c, int argc, char **argv);
int cmd_hotplug(CliCtx *c, int argc, char **argv);
int cmd_check(CliCtx *c, int argc, char **argv);
int cmd_image(CliCtx *c, int argc, char **argv);
int cmd_sandbox(CliCtx *c, int argc, char **argv);
int cmd_pool(CliCtx *c, int argc, char **argv);
