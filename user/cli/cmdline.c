// SPDX-License-Identifier: GPL-2.0
/* The command engine (see cmdline.h): usage from the table, getopt, then
 * every option's type, bounds and required bit checked before the handler. */
#include "cmdline.h"
#include "log.h"
#include "parse.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <string.h>

#define OPT_ID(o) ((o) & ~CMD_REQUIRED)

/* ---- Typed values -------------------------------------------------------- */

static bool is_number(enum opt_type ty)
{
	return ty == OT_U32 || ty == OT_U64 || ty == OT_SIZE || ty == OT_FN;
}

static void bounds(const struct tool *t, const struct opt_def *d, uint64_t *lo, uint64_t *hi)
{
	*lo = d->type == OT_FN ? 0 : d->min;
	*hi = d->type == OT_FN ? t->fn_max : d->max;
	if (!*hi)
		*hi = d->type == OT_U32 ? UINT32_MAX : UINT64_MAX;
}

/* "a|b|c" for usage, or "a, b or c" for an error. */
static void enum_list(const struct opt_def *d, bool prose, char *buf, size_t len)
{
	size_t n = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; d->values[i] && n < len; i++) {
		const char *sep = !i ? "" : !prose ? "|" : d->values[i + 1] ? ", " : " or ";

		n += snprintf(buf + n, len - n, "%s%s", sep, d->values[i]);
	}
}

static int bad_value(const struct opt_def *d, const char *v, const char *why)
{
	pr_err("invalid --%s '%s': %s", d->name, v, why);
	return -EUSAGE;
}

static int parse_value(const struct tool *t, const struct opt_def *d, const char *v,
		       struct invocation *inv, int id)
{
	char why[256];
	uint64_t lo, hi, n;
	const char *r;
	int i, err;

	if (is_number(d->type)) {
		bounds(t, d, &lo, &hi);
		err = parse_num(v, strlen(v), d->type == OT_SIZE, hi, &n);
		if (err || n < lo) {
			snprintf(why, sizeof(why), d->type == OT_SIZE ?
				 "expected a byte count %" PRIu64 "..%" PRIu64 " (K/M/G suffixes)" :
				 "expected an integer %" PRIu64 "..%" PRIu64, lo, hi);
			return bad_value(d, v, why);
		}
		inv->num[id] = n;
		return 0;
	}
	switch (d->type) {
	case OT_MAC:
		r = parse_mac_reason(v, inv->mac[id]);
		return r ? bad_value(d, v, r) : 0;
	case OT_IFNAME:
		if (!*v || strlen(v) >= IF_NAMESIZE || strpbrk(v, "/ \t\n") ||
		    !strcmp(v, ".") || !strcmp(v, ".."))
			return bad_value(d, v, "expected an interface name of 1..15 characters, "
					 "without '/' or blanks");
		return 0;
	case OT_ENUM:
		for (i = 0; d->values[i]; i++)
			if (!strcmp(v, d->values[i])) {
				inv->num[id] = (uint64_t)i;
				return 0;
			}
		strcpy(why, "expected ");
		enum_list(d, true, why + strlen(why), sizeof(why) - strlen(why));
		return bad_value(d, v, why);
	default:
		return 0;
	}
}

int arg_u32(const char *s, const char *what, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t n;

	if (parse_num(s, strlen(s), false, max, &n) || n < min) {
		pr_err("invalid %s '%s': expected an integer %u..%u", what, s, min, max);
		return -EUSAGE;
	}
	*out = (uint32_t)n;
	return 0;
}

int exit_code(int err)
{
	if (err >= 0)
		return EXIT_OK;
	return err == -EUSAGE ? EXIT_USAGE : EXIT_FAIL;
}

/* ---- Usage --------------------------------------------------------------- */

/* "--fn N", with full "--fn N (0..255)": the bounds a value must keep. */
static void opt_synopsis(const struct tool *t, const struct opt_def *d, bool full, char *buf,
			 size_t len)
{
	char arg[128] = "";
	uint64_t lo, hi;
	size_t n;

	if (d->arg)
		snprintf(arg, sizeof(arg), " %s", d->arg);
	else if (d->type == OT_ENUM)
		arg[0] = ' ', enum_list(d, false, arg + 1, sizeof(arg) - 1);
	n = (size_t)snprintf(buf, len, "--%s%s", d->name, arg);
	if (!full || !is_number(d->type) || n >= len)
		return;
	bounds(t, d, &lo, &hi);
	/* Bounds of the value's own, not of its C type. */
	if (hi != UINT32_MAX && hi != UINT64_MAX)
		snprintf(buf + n, len - n, " (%" PRIu64 "..%" PRIu64 ")", lo, hi);
}

static void cmd_usage(const struct tool *t, FILE *out, const struct command *c, bool full)
{
	char syn[160];
	const int *o;
	bool args = c->args && *c->args;

	fprintf(out, "  %s %s%s%s", t->prog, c->name, args ? " " : "", args ? c->args : "");
	for (o = c->opts; *o; o++) {
		opt_synopsis(t, &t->opts[OPT_ID(*o)], false, syn, sizeof(syn));
		/* Required options without brackets. */
		fprintf(out, *o & CMD_REQUIRED ? " %s" : " [%s]", syn);
	}
	fprintf(out, "\n      %s\n", c->help);
	if (!full)
		return;
	for (o = c->opts; *o; o++) {
		opt_synopsis(t, &t->opts[OPT_ID(*o)], true, syn, sizeof(syn));
		fprintf(out, "    %-28s %s%s\n", syn, t->opts[OPT_ID(*o)].help,
			*o & CMD_REQUIRED ? " (required)" : "");
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
	if (t->footer)
		fprintf(out, "%s", t->footer);
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

/* Every required option given, every value of its type and in bounds,
 * before the handler runs: a usage error changes nothing. */
static int check_opts(const struct tool *t, const struct command *c, struct invocation *inv)
{
	const int *o;
	int err;

	for (o = c->opts; *o; o++) {
		int id = OPT_ID(*o);

		if (!has_opt(inv, id)) {
			if (*o & CMD_REQUIRED) {
				pr_err("%s: --%s is required", c->name, t->opts[id].name);
				return -EUSAGE;
			}
			continue;
		}
		err = parse_value(t, &t->opts[id], inv->opt[id], inv, id);
		if (err)
			return err;
	}
	return 0;
}

/* 0, 1 after --help, or -EUSAGE. */
static int parse(const struct tool *t, const struct command *c, int argc, char **argv,
		 struct invocation *inv)
{
	struct option longopts[CMD_MAX_OPTS + 2];
	int n = 0, opt, npos = 0, err;
	const int *o;

	for (o = c->opts; *o; o++) {
		const struct opt_def *d = &t->opts[OPT_ID(*o)];
		bool flag = d->type == OT_FLAG || (d->type == OT_AUTO && !d->arg);

		longopts[n++] = (struct option){ d->name, flag ? no_argument : required_argument,
						 NULL, OPT_ID(*o) + 256 };
	}
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
	return check_opts(t, c, inv);
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
	err = t->prepare ? t->prepare(&inv) : 0;
	if (!err)
		err = c->handler(&inv);
	return exit_code(err);
}
