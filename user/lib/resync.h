/* SPDX-License-Identifier: GPL-2.0 */
/* Incremental shadow sync: bring the device's shadow of a guest's tables
 * up to date after the guest grew them (a new capacity segment, a new CLAT
 * level, a new service type) and bumped the BAT generation.
 *
 * Only what changed is read and validated, as strictly as a full attach:
 * every new page and block must be aligned, inside guest memory and owned by
 * nothing else (checked against the pinned page-ownership map, not by
 * walking the old tables).  Each new segment gets its own extent of the
 * context pool, filled while still STAGED and published by fn_desc updates,
 * so live segments and the datapath's writes to them are never touched.
 * All or nothing: on any error the old shadow keeps serving, unchanged.
 * After a resync, older segments the guest has drained come off the device
 * (shadow_fold): a guest that grew stops paying for them. */
#ifndef CLAT_RESYNC_H
#define CLAT_RESYNC_H

#include "shadow.h"

struct resync_report {
	uint32_t gen_from, gen_to;
	uint32_t types_grown, types_added, segments_added;
	uint64_t entries_read;    /* guest CLAT entries read */
	uint64_t pages_new, blocks_new;
	uint64_t contexts_read;   /* guest context records read (new blocks only) */
	uint64_t live;            /* LIVE contexts found in new blocks */
	uint32_t segments_folded; /* drained older segments taken off the device after */
};

/* -ESTALE-free no-op when the generation did not change.  Errors are
 * printed (naming the bad entry and its GPA) and returned as -errno. */
int guest_resync(const struct clat_maps *m, const char *dir, uint32_t fn,
		 struct resync_report *r);

/* Resyncs every fn whose guest bumped its BAT generation (checked with one
 * small read per guest); *resynced counts them.  Returns the first error;
 * the other fns are still tried. */
int guest_resync_changed(const struct clat_maps *m, const char *dir, uint32_t *resynced);

#endif
