// SPDX-License-Identifier: GPL-2.0
/* The per-fn migration lock (see miglock.h). */
#include "miglock.h"

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
	int fd, err, i;

	err = miglock_path(pf, fn, path, sizeof(path));
	if (err)
		return err;
	if (mkdir(MIGLOCK_DIR, 0755) && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* A checker holds a shared lock for a moment: retry briefly. */
	for (i = 0; i < 100; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return fd;
		if (errno != EWOULDBLOCK)
			break;
		nanosleep(&ts, NULL);
	}
	err = errno == EWOULDBLOCK ? -EBUSY : -errno;
	close(fd);
	return err;
}

void miglock_drop(int fd)
{
	if (fd >= 0)
		close(fd);
}

bool miglock_held(const char *pf, uint32_t fn)
{
	char path[256];
	bool held;
	int fd;

	if (miglock_path(pf, fn, path, sizeof(path)))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	held = flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK;
	close(fd); /* drops the shared lock if it was taken */
	return held;
}
