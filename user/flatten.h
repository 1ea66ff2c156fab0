/* SPDX-License-Identifier: GPL-2.0 */
/* Flattened tiers of one capacity segment: only the CLAT pages on the paths
 * to the segment's blocks, numbered depth-first (page 0 is the root), with
 * last-level entries holding the segment's own block index.
 *
 * Obsolete since map layout 4: the device no longer walks CLAT tiers, and
 * resync keeps only the new blocks' GPAs.  The one remaining user is
 * gtype_seg_flatten() in gtables.c, which nothing calls: remove it, this
 * file, flatten.c and `flatten` in the Makefile (LIB_OBJS, FUZZ_LIB)
 * together. */
#ifndef CLAT_FLATTEN_H
#define CLAT_FLATTEN_H

#include <stdint.h>

/* Reads entry o of page `page` (a handle the source chose) at level x
 * (1-based).  Sets *child to the next level's page handle, or at the last
 * level to the global block index.  Returns 0, or -errno to stop. */
typedef int (*tier_entry_fn)(void *ctx, uint64_t page, uint32_t level, uint32_t o,
			     uint64_t *child);

struct seg_tiers {
	uint32_t *tiers;   /* [npages * C] */
	uint32_t npages;
	uint32_t cap;      /* pages allocated */
	uint64_t reads;    /* entries read from the source */
};

/* Flattens the blocks [first, end) of a tree of `levels` levels of C
 * entries rooted at `root`.  Only entries whose span meets the range are
 * read.  out is freed on failure. */
int seg_flatten(tier_entry_fn entry, void *ctx, uint64_t root, uint32_t levels, uint32_t c,
		uint32_t first, uint32_t end, struct seg_tiers *out);
void seg_tiers_free(struct seg_tiers *st);
/* Appends a page of c empty entries; *idx is its index. */
int seg_tiers_add_page(struct seg_tiers *st, uint32_t c, uint32_t *idx);

#endif
