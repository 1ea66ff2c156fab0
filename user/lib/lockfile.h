/* SPDX-License-Identifier: GPL-2.0 */
/* Lock files under /run/clat: a flock(2) on a file that its holder removes
 * when it lets go, so that nothing is left behind once no one holds it.
 * Removing a lock file races with a process that opened it just before: the
 * taker therefore checks, once it holds the lock, that the path still names
 * the file it locked, and starts again if not.  The lock dies with its
 * holder (SIGKILL included); the file of a killed holder stays until the
 * next taker removes it on release. */
#ifndef CLAT_LOCKFILE_H
#define CLAT_LOCKFILE_H

#include <stdbool.h>

#define LOCKFILE_DIR "/run/clat"

/* Takes the lock on path (created 0600 in LOCKFILE_DIR if needed): waits for
 * it when wait, else gives up at once with -EBUSY.  Returns the fd. */
int lockfile_take(const char *path, bool wait);
/* Removes path and releases the lock; fd < 0 is a no-op. */
void lockfile_drop(const char *path, int fd);
/* Whether another process holds the lock on path now. */
bool lockfile_held(const char *path);

#endif
