// SPDX-License-Identifier: GPL-2.0
/* Logging (see log.h). */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int log_level = LOG_INFO;
static const char *tool;

void log_set_tool(const char *name)
{
	tool = name;
}

const char *log_tool(void)
{
	return tool ? tool : program_invocation_short_name;
}

bool log_enabled(int level)
{
	return level <= log_level;
}

void log_msg(int level, const char *fmt, ...)
{
	int saved = errno; /* callers print strerror(errno) after logging */
	va_list ap;

	if (!log_enabled(level))
		return;
	if (level == LOG_ERR)
		fprintf(stderr, "%s: ", log_tool());
	else if (level == LOG_WARN)
		fprintf(stderr, "%s: warning: ", log_tool());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	errno = saved;
}
