/* SPDX-License-Identifier: GPL-2.0 */
/* Logging for every tool and for the library they share: levels, and the
 * running tool's name (set by tool_main(); the program's own name before
 * that), so that a message of the library reads "clat-guest: ..." in
 * clat-guest and "clat-load: ..." in clat-load.  Logs go to stderr, data to
 * stdout.  -q keeps errors only; -v adds debug, -vv trace (libbpf's debug). */
#ifndef CLAT_LOG_H
#define CLAT_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_ERR,   /* "<tool>: failed to X: <reason>" */
	LOG_WARN,  /* "<tool>: warning: ..." */
	LOG_INFO,  /* what a command did, bare (the default level) */
	LOG_DEBUG, /* -v */
	LOG_TRACE, /* -vv */
};

extern int log_level;

void log_set_tool(const char *name);
const char *log_tool(void);
bool log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_err(fmt, ...) log_msg(LOG_ERR, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) log_msg(LOG_WARN, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) log_msg(LOG_INFO, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) log_msg(LOG_DEBUG, fmt, ##__VA_ARGS__)

#endif
