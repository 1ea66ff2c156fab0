/* SPDX-License-Identifier: GPL-2.0 */
/* The migration lock of a fn: an orchestrator (clat-load libvirt migrate)
 * holds it from its first device round to the source's release.  The qemu
 * hook and 'libvirt watch' leave a locked fn alone: the orchestrator owns
 * it, and a flush or detach of theirs would write contexts into RAM that
 * has already left.  A flock(2): it goes away with the process, even on
 * SIGKILL, so a dead orchestrator never keeps the fn from its owners. */
#ifndef CLAT_MIGLOCK_H
#define CLAT_MIGLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIGLOCK_DIR "/run/clat" /* LOCKFILE_DIR */

/* The lock file of (pf, fn): MIGLOCK_DIR/migrate-<pf>-fn<N>.lock. */
int miglock_path(const char *pf, uint32_t fn, char *buf, size_t len);
/* Takes the lock (creating the file); returns its fd or -errno
 * (-EBUSY: another process holds it). */
int miglock_take(const char *pf, uint32_t fn);
/* Releases the lock and removes its file. */
void miglock_drop(const char *pf, uint32_t fn, int fd);
/* Whether another process holds the lock now. */
bool miglock_held(const char *pf, uint32_t fn);

#endif
