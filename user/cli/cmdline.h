/* SPDX-License-Identifier: GPL-2.0 */
/* The subcommand engine shared by clat-load and clat-guest: one table of
 * {name, handler, args, options, help} per tool generates the usage text,
 * every command's --help and its option parsing. */
#ifndef CLAT_CMDLINE_H
#define CLAT_CMDLINE_H

#include <stdbool.h>
#include <stdio.h>

#define CMD_MAX_ARGS 4
#define CMD_MAX_OPTS 16     /* options of one command */
#define CMD_MAX_OPT_IDS 64  /* option ids of one tool */
#define CMD_MAX_REPEAT 4    /* values of the tool's repeatable option */

struct opt_def {
	const char *name;
	const char *arg;  /* NULL for a flag */
	const char *help;
};

struct invocation {
	const struct command *cmd;
	const char *arg[CMD_MAX_ARGS];   /* positional arguments */
	const char *opt[CMD_MAX_OPT_IDS];/* option values; "" for flags that are set */
	const char *rep[CMD_MAX_REPEAT]; /* every value of the repeatable option */
	unsigned int nrep;
};

struct command {
	const char *name;                /* may be two words: "vf add" */
	int (*handler)(const struct invocation *inv);
	const char *args;                /* positional synopsis, e.g. "<pf>" */
	int nargs;
	int opts[CMD_MAX_OPTS];          /* option ids, 0-terminated */
	const char *help;
};

struct tool {
	const char *prog;
	const struct opt_def *opts;      /* indexed by option id; id 0 unused */
	const struct command *cmds;
	unsigned int ncmds;
	int repeat_id;                   /* an option that may be given several times, or 0 */
	const char *global_flags;        /* shown in the usage line, e.g. "[-v] " */
	void (*notes)(FILE *out, const struct command *c); /* extra --help text, or NULL */
};

static inline bool has_opt(const struct invocation *inv, int id)
{
	return inv->opt[id] != 0;
}

#include "errcode.h" /* EUSAGE: bad input, exit code 2 */

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Runs argv (without the program name) against the tool's table, and maps
 * the handler's -errno to an exit code. */
int tool_main(const struct tool *t, int argc, char **argv);

#endif
