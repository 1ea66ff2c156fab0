// SPDX-License-Identifier: GPL-2.0
/* The per-fn migration lock (see miglock.h). */
#include "miglock.h"
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int miglock_path(const char *pf, uint32_t fn, char *buf, size_t len)
{
	/* pf is an interface name: no '/', never "." or "..". */
	if (!pf[0] || pf[0] == '.' || strchr(pf, '/'))
		return -EINVAL;
	if ((size_t)snprintf(buf, len, MIGLOCK_DIR "/migrate-%s-fn%u.lock", pf, fn) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int miglock_take(const char *pf, uint32_t fn)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	char path[256];
	int fd, i;

	fd = miglock_path(pf, fn, path, sizeof(path));
	/* A checker holds a shared lock for a moment: retry briefly. */
	for (i = 0; !fd && i < 100; i++) {
		fd = lockfile_take(path, false);
		if (fd != -EBUSY)
			return fd;
		nanosleep(&ts, NULL);
	}
	return fd;
}

void miglock_drop(const char *pf, uint32_t fn, int fd)
{
	char path[256];

	if (fd >= 0 && !miglock_path(pf, fn, path, sizeof(path)))
		lockfile_drop(path, fd);
	else if (fd >= 0)
		close(fd);
}

bool miglock_held(const char *pf, uint32_t fn)
{
	char path[256];

	return !miglock_path(pf, fn, path, sizeof(path)) && lockfile_held(path);
}
