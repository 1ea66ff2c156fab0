/* SPDX-License-Identifier: GPL-2.0 */
/* A resync's change of one type, prepared by resync.c and published or
 * freed by resync_publish.c. */
#ifndef CLAT_RESYNC_PUBLISH_H
#define CLAT_RESYNC_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gtables.h"
#include "maps.h"
#include "owned.h"

#define PAGE_SHIFT 12

/* A range of guest memory a resync claimed: a new CLAT page or block. */
struct claim {
	uint64_t gpa, len;
};

/* One type's change, prepared but not yet visible. */
struct type_change {
	bool active, added, published;
	struct gtype gt;                        /* the new BAT entry; per_block set */
	struct clat_bat_entry old;              /* guest_types before (zero: a new type) */
	struct clat_dev_seg seg[CLAT_MAX_SEGMENTS]; /* the new segments' device entries */
	uint32_t first_new;                     /* segments first_new.. are new */
	uint32_t tried;                         /* bit k: an extent was asked for segment k */
	struct claim *claims;                   /* pages and blocks this type claimed */
	size_t nclaims, cap;
};

/* Frees the extents a type's change staged, unless published: only those
 * this process owns (a failed allocation may have met someone else's). */
void resync_free_staged(const struct clat_maps *m, uint32_t fn, const struct type_change *tc);
/* Publishes type by type; the pages and blocks of each published type are
 * then marked in owned.  A failure part-way leaves the types already
 * published on the device, consistent, but the generation unchanged: a
 * retry finds them current and resumes with the rest. */
int resync_publish(const struct clat_maps *m, uint32_t fn, struct type_change *tc, uint32_t n,
		   const struct shadow_owned *owned, struct clat_guest_info *gi, uint32_t ntypes,
		   uint32_t gen);

#endif
