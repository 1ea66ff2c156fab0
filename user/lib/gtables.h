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

/* GPA of the context of service svc (walks the flattened tiers); 0 if svc is
 * out of range. */
uint64_t gtype_ctx_gpa(const struct gtype *t, uint32_t svc);
/* Block index and element of svc through the flattened tiers; -1 if absent. */
int gtype_walk(const struct gtype *t, uint32_t svc, uint32_t *block, uint32_t *element);

/* Every GPA the walk of svc visits, for `clat-guest locate`: at level x
 * (0-based) the page, the entry offset, the entry's own GPA and its value
 * (the next page, or at the last level the block).  0 or -1 if absent. */
struct gtype_path {
	uint64_t page_gpa[CLAT_MAX_LEVELS];
	uint32_t offset[CLAT_MAX_LEVELS];
	uint64_t entry_gpa[CLAT_MAX_LEVELS];
	uint64_t value[CLAT_MAX_LEVELS];
	uint32_t block;
	uint64_t block_gpa;
	uint32_t element;          /* 0-based; the patent's m is element + 1 */
	uint64_t ctx_gpa;
};
int gtype_path(const struct gtype *t, uint32_t svc, struct gtype_path *path);

/* The checks gtables_load makes of one BAT entry (gt->e and gt->index set),
 * before any walk: fields, segments, and a capacity that fits guest memory.
 * Sets gt->per_block. */
int gtype_check_entry(const struct gmem *g, struct gtype *gt, char *err, size_t errlen);

/* Checks the entry's capacity segments; one message into err. */
int gtype_check_segments(const struct gtype *t, char *err, size_t errlen);

/* Blocks [*first, *end) that hold segment sg's services. */
static inline void gseg_blocks(uint32_t per_block, const struct clat_seg *sg, uint32_t *first,
			       uint32_t *end)
{
	*first = sg->base / per_block;
	*end = (uint32_t)(((uint64_t)sg->base + sg->size + per_block - 1) / per_block);
}

#endif
