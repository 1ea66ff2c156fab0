/* SPDX-License-Identifier: GPL-2.0 */
/* The subcommand engine shared by clat-load, clat-guest and vf-emu: one table
 * of {name, handler, args, options, help} per tool generates the usage text,
 * every command's --help and its option parsing.  Options carry a type and
 * bounds: the engine parses and checks every one before the handler runs,
 * and the handler reads parsed values (opt_u32(), opt_mac(), ...). */
#ifndef CLAT_CMDLINE_H
#define CLAT_CMDLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CMD_MAX_ARGS 6
#define CMD_MAX_OPTS 16     /* options of one command */
#define CMD_MAX_OPT_IDS 64  /* option ids of one tool */
#define CMD_MAX_REPEAT 4    /* values of the tool's repeatable option */

enum opt_type {
	OT_AUTO = 0, /* a flag without arg, a string with one */
	OT_FLAG,
	OT_STR,
	OT_U32,      /* integer in min..max (max 0: UINT32_MAX) */
	OT_U64,      /* integer in min..max (max 0: UINT64_MAX) */
	OT_SIZE,     /* byte count with K/M/G suffixes, min..max (max 0: UINT64_MAX) */
	OT_MAC,      /* unicast, non-zero xx:xx:xx:xx:xx:xx */
	OT_IFNAME,   /* an interface name: 1..IFNAMSIZ-1 characters, no '/' or blank */
	OT_FN,       /* a function number, 0..the tool's fn_max */
	OT_ENUM,     /* one of values[]; opt_u32() is its index */
};

struct opt_def {
	const char *name;
	const char *arg;  /* the value's name in usage; NULL: a flag, or for OT_ENUM "a|b|c" */
	const char *help;
	enum opt_type type;
	uint64_t min, max;
	const char *const *values; /* OT_ENUM: NULL-terminated */
};

/* Typed definitions, e.g. [OPT_VLAN] = { "vlan", "VID", "...", U32(0, 4094) }. */
#define U32(lo, hi) OT_U32, (lo), (hi)
#define U64(lo, hi) OT_U64, (lo), (hi)
#define SIZE(lo, hi) OT_SIZE, (lo), (hi)
#define ENUM(...) OT_ENUM, 0, 0, (const char *const[]){ __VA_ARGS__, NULL }

/* In a command's option list: the option must be given. */
#define CMD_REQUIRED 0x10000
#define REQ(id) ((id) | CMD_REQUIRED)

struct invocation {
	const struct command *cmd;
	const char *arg[CMD_MAX_ARGS];   /* positional arguments */
	const char *opt[CMD_MAX_OPT_IDS];/* option values as typed; "" for flags that are set */
	uint64_t num[CMD_MAX_OPT_IDS];   /* numbers, fns, sizes and enum indexes, parsed */
	uint8_t mac[CMD_MAX_OPT_IDS][6]; /* MACs, parsed */
	const char *rep[CMD_MAX_REPEAT]; /* every value of the repeatable option */
	unsigned int nrep;
};

struct command {
	const char *name;                /* may be two words: "vf add" */
	int (*handler)(const struct invocation *inv);
	const char *args;                /* positional synopsis, e.g. "<pf>" */
	int nargs;
	int opts[CMD_MAX_OPTS];          /* option ids, REQ() if required, 0-terminated */
	const char *help;
};

struct tool {
	const char *prog;
	const struct opt_def *opts;      /* indexed by option id; id 0 unused */
	const struct command *cmds;
	unsigned int ncmds;
	int repeat_id;                   /* an option that may be given several times, or 0 */
	uint32_t fn_max;                 /* the bound of OT_FN */
	const char *global_flags;        /* shown in the usage line, e.g. "[-v] " */
	void (*notes)(FILE *out, const struct command *c); /* extra --help text, or NULL */
	const char *footer;              /* after the command list of --help, or NULL */
	/* Runs after parsing, before the handler (e.g. a root check), or NULL. */
	int (*prepare)(const struct invocation *inv);
};

static inline bool has_opt(const struct invocation *inv, int id)
{
	return inv->opt[id] != 0;
}

static inline const char *opt_str(const struct invocation *inv, int id)
{
	return inv->opt[id];
}

static inline uint32_t opt_u32(const struct invocation *inv, int id)
{
	return (uint32_t)inv->num[id];
}

static inline uint64_t opt_u64(const struct invocation *inv, int id)
{
	return inv->num[id];
}

/* The value, or def if the option was not given. */
static inline uint32_t opt_u32_or(const struct invocation *inv, int id, uint32_t def)
{
	return has_opt(inv, id) ? (uint32_t)inv->num[id] : def;
}

static inline uint64_t opt_u64_or(const struct invocation *inv, int id, uint64_t def)
{
	return has_opt(inv, id) ? inv->num[id] : def;
}

static inline const char *opt_str_or(const struct invocation *inv, int id, const char *def)
{
	return has_opt(inv, id) ? inv->opt[id] : def;
}

static inline const uint8_t *opt_mac(const struct invocation *inv, int id)
{
	return inv->mac[id];
}

#include "errcode.h" /* EUSAGE: bad input, exit code 2 */

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* The one mapping from a handler's result (0 or -errno) to an exit code. */
int exit_code(int err);

/* A positional argument as a u32 in min..max, checked like an option of
 * that type; what names it in the error ("VF index"). */
int arg_u32(const char *s, const char *what, uint32_t min, uint32_t max, uint32_t *out);

/* Runs argv (without the program name) against the tool's table, and maps
 * the handler's -errno to an exit code. */
int tool_main(const struct tool *t, int argc, char **argv);

#endif
