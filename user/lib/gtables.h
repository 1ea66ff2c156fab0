/* SPDX-License-Identifier: GPL-2.0 */
/* Guest tables (BAT/CLAT/blocks) in guest memory (gmem.h), shared by
 * clat-load and clat-guest.  Everything read from guest memory is
 * untrusted: gtables_load() validates the tables the way an IOMMU would
 * before anything else looks at them. */
#ifndef CLAT_GTABLES_H
#define CLAT_GTABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "clat_abi.h"
#include "gmem.h"

/* An empty entry of the flattened tiers.  Userspace only since map layout
 * 4: the device no longer walks tiers, but the host still flattens the
 * guest's CLAT to check it and to find blocks. */
#define CLAT_TIER_NONE 0xffffffffU

/* One validated service type, with its CLAT flattened:
 * page 0 is the level-1 page; tiers[p * C + o] is the next page index (or at
 * the last level the block index), CLAT_TIER_NONE when the entry is empty. */
struct gtype {
	uint32_t index;
	struct clat_bat_entry e;   /* copy of the BAT entry */
	uint64_t entry_gpa;        /* where that BAT entry lives */
	uint32_t per_block;        /* P = B / A */
	uint32_t npages;
	uint64_t *page_gpa;        /* [npages] */
	uint32_t *tiers;           /* [npages * C] */
	uint32_t nblocks;
	uint64_t *block_gpa;       /* [nblocks]; block b holds services b*P+1 .. b*P+P */
};

struct gtables {
	uint64_t bat_gpa;
	struct clat_bat_hdr hdr;
	uint32_t ntypes;
	struct gtype types[CLAT_MAX_TYPES];
};

/* Validates and flattens the tables at bat_gpa.  On failure returns -EINVAL
 * (or -errno) and writes one message naming the bad entry and its GPA into
 * err, e.g. "type 0 (conn): level 2 page at GPA 0x5000 entry 3 -> 0x9000000:
 * outside guest memory (size 0x100000)".  Nothing is allocated on failure. */
int gtables_load(const struct gmem *g, uint64_t bat_gpa, struct gtables *t, char *err,
		 size_t errlen);
void gtables_free(struct gtables *t);

/* Blocks [*first, *end) that hold segment sg's services. */
static inline void gseg_blocks(uint32_t per_block, const struct clat_seg *sg, uint32_t *first,
			       uint32_t *end)
{
	*first = sg->base / per_block;
	*end = (uint32_t)(((uint64_t)sg->base + sg->size + per_block - 1) / per_block);
}

#endif
