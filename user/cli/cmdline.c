// SPDX-License-Identifier: GPL-2.0
#include "cmdline.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>

static void opt_synopsis(const struct opt_def *d, char *buf, size_t len)
{
	snprintf(buf, len, "--%s%s%s", d->name, d->arg ? " " : "", d->arg ? d->arg : "");
}

static void cmd_usage(const struct tool *t, FILE *out, const struct command *c, bool full)
{
	char syn[96];
	const int *o;

	fprintf(out, "  %s %s%s%s", t->prog, c->name, c->args ? " " : "", c->args ? c->args : "");
	for (o = c->opts; *o; o++) {
		opt_synopsis(&t->opts[*o], syn, sizeof(syn));
		fprintf(out, " [%s]", syn);
	}
	fprintf(out, "\n      %s\n", c->help);
	if (!full)
		return;
	for (o = c->opts; *o; o++) {
		opt_synopsis(&t->opts[*o], syn, sizeof(syn));
		fprintf(out, "    %-28s %s\n", syn, t->opts[*o].help);
	}
	fprintf(out, "    %-28s %s\n", "-h, --help", "show this help");
	if (t->notes)
		t->notes(out, c);
}

static void usage(const struct tool *t, FILE *out)
{
	unsigned int i;

	fprintf(out, "Usage: %s %s<command> [args] [options]\n\nCommands:\n", t->prog,
		t->global_flags ? t->global_flags : "");
	for (i = 0; i < t->ncmds; i++)
		cmd_usage(t, out, &t->cmds[i], false);
	fprintf(out, "\nRun '%s <command> --help' for the options of a command.\n", t->prog);
}

/* Matches one- or two-word command names; returns words consumed or 0. */
static int match_command(const struct tool *t, int argc, char **argv, const struct command **out)
{
	unsigned int i;

	for (i = 0; i < t->ncmds; i++) {
		const char *name = t->cmds[i].name, *sp = strchr(name, ' ');

		if (!sp && !strcmp(argv[0], name)) {
			*out = &t->cmds[i];
			return 1;
		}
		if (sp && argc > 1 && !strncmp(argv[0], name, sp - name) &&
		    argv[0][sp - name] == '\0' && !strcmp(argv[1], sp + 1)) {
			*out = &t->cmds[i];
			return 2;
		}
	}
	return 0;
}

/* Usage error; an argument the user typed is quoted. */
static int bad(const struct tool *t, const struct command *c, const char *what, const char *arg,
	       bool typed)
{
	fprintf(stderr, "%s: %s: %s %s%s%s\n", t->prog, c->name, what, typed ? "'" : "", arg,
		typed ? "'" : "");
	return -EUSAGE;
}

static int positional(const struct tool *t, const struct command *c, struct invocation *inv,
		      int *npos, const char *a)
{
	if (*npos >= c->nargs)
		return bad(t, c, "unexpected argument", a, true);
	inv->arg[(*npos)++] = a;
	return 0;
}

/* 0, 1 after --help, or -EUSAGE. */
static int parse(const struct tool *t, const struct command *c, int argc, char **argv,
		 struct invocation *inv)
{
	struct option longopts[CMD_MAX_OPTS + 2];
	int n = 0, opt, npos = 0, err;
	const int *o;

	for (o = c->opts; *o; o++)
		longopts[n++] = (struct option){ t->opts[*o].name,
						 t->opts[*o].arg ? required_argument : no_argument,
						 NULL, *o + 256 };
	longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[n] = (struct option){ 0 };

	memset(inv, 0, sizeof(*inv));
	inv->cmd = c;
	optind = 1;
	opterr = 0;
	/* Options and positional arguments may mix, as in ip(8). */
	while (optind < argc) {
		if (argv[optind][0] != '-' || !argv[optind][1]) {
			err = positional(t, c, inv, &npos, argv[optind++]);
			if (err)
				return err;
			continue;
		}
		opt = getopt_long(argc, argv, "+h", longopts, NULL);
		if (opt == -1)
			break; /* "--": the rest is positional */
		if (opt == 'h') {
			fprintf(stdout, "Usage:\n");
			cmd_usage(t, stdout, c, true);
			return 1;
		}
		if (opt == '?')
			return bad(t, c, "unknown option or missing value", argv[optind - 1], true);
		if (opt - 256 == t->repeat_id) {
			if (inv->nrep == CMD_MAX_REPEAT)
				return bad(t, c, "repeated too often:", argv[optind - 2], true);
			inv->rep[inv->nrep++] = optarg;
		}
		inv->opt[opt - 256] = optarg ? optarg : "";
	}
	for (; optind < argc; optind++) {
		err = positional(t, c, inv, &npos, argv[optind]);
		if (err)
			return err;
	}
	if (npos < c->nargs)
		return bad(t, c, "missing argument", c->args, false);
	return 0;
}

int tool_main(const struct tool *t, int argc, char **argv)
{
	const struct command *c = NULL;
	struct invocation inv;
	int words, err;

	log_set_tool(t->prog);
	/* Global flags, before the command: -q errors only, -v debug, -vv trace. */
	for (; argc > 0; argc--, argv++) {
		if (!strcmp(argv[0], "-q") || !strcmp(argv[0], "--quiet"))
			log_level = LOG_ERR;
		else if (!strcmp(argv[0], "-v") || !strcmp(argv[0], "--verbose"))
			log_level = log_level < LOG_DEBUG ? LOG_DEBUG : LOG_TRACE;
		else if (!strcmp(argv[0], "-vv"))
			log_level = LOG_TRACE;
		else
			break;
	}
	if (argc == 0) {
		usage(t, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help") || !strcmp(argv[0], "help")) {
		usage(t, stdout);
		return EXIT_OK;
	}
	words = match_command(t, argc, argv, &c);
	if (!words) {
		fprintf(stderr, "%s: unknown command '%s'\n", t->prog, argv[0]);
		usage(t, stderr);
		return EXIT_USAGE;
	}
	/* getopt sees the last command word as argv[0]. */
	err = parse(t, c, argc - words + 1, argv + words - 1, &inv);
	if (err)
		return err > 0 ? EXIT_OK : EXIT_USAGE;
	err = c->handler(&inv);
	if (err >= 0)
		return EXIT_OK;
	return err == -EUSAGE ? EXIT_USAGE : EXIT_FAIL;
}
