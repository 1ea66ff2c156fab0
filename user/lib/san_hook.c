// SPDX-License-Identifier: GPL-2.0
/* Linked into every program of a SANITIZE=1 build only.  gcc's UBSan runtime
 * prints its reports to stderr whatever log_path says, so a report from a
 * command that a test expects to fail would pass unseen.  UBSan calls this
 * hook for every report: it appends one line to $CLAT_SAN_DIR/ubsan.<pid>,
 * next to ASan's log_path files, where selftests/run.sh looks for them. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void __ubsan_get_current_report_data(const char **kind, const char **msg, const char **file,
				     unsigned int *line, unsigned int *col, char **addr);
void __ubsan_on_report(void);

void __ubsan_on_report(void)
{
	const char *kind = "?", *msg = "?", *file = "?", *dir = getenv("CLAT_SAN_DIR");
	unsigned int line = 0, col = 0;
	char *addr = NULL, path[512], buf[1024];
	int fd, n;

	if (!dir)
		return;
	__ubsan_get_current_report_data(&kind, &msg, &file, &line, &col, &addr);
	snprintf(path, sizeof(path), "%s/ubsan.%d", dir, (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "UBSan: %s:%u:%u: %s: %s\n", file, line, col, kind, msg);
	if (n > 0 && write(fd, buf, (size_t)n) < 0)
		n = 0; /* nothing more to do from inside a report */
	close(fd);
}
