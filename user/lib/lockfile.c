// SPDX-License-Identifier: GPL-2.0
/* Lock files that their holder removes (see lockfile.h). */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int lockfile_take(const char *path, bool wait)
{
	struct stat held, named;
	int fd, err, tries;

	/* A holder that lets go removes its file and, when it was the last,
	 * the directory: both may vanish under us, so start again then. */
	for (tries = 0; tries < 1000; tries++) {
		if (mkdir(LOCKFILE_DIR, 0755) && errno != EEXIST)
			return -errno;
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0)
			return -errno;
		while (flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB)) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			if (err == -EINTR)
				continue;
			close(fd);
			return err;
		}
		/* The holder before us may have removed the file we locked. */
		if (!fstat(fd, &held) && !stat(path, &named) && held.st_dev == named.st_dev &&
		    held.st_ino == named.st_ino)
			return fd;
		close(fd);
	}
	return -EAGAIN;
}

void lockfile_drop(const char *path, int fd)
{
	if (fd < 0)
		return;
	unlink(path); /* while still holding it: a waiter then retries */
	close(fd);
	rmdir(LOCKFILE_DIR); /* only succeeds once no lock file is left */
}

bool lockfile_held(const char *path)
{
	bool held;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return false;
	held = flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK;
	close(fd); /* drops the shared lock if it was taken */
	return held;
}
