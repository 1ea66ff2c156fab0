/* SPDX-License-Identifier: GPL-2.0 */
/* The validator's own state, shared by its files (gtables.c: the BAT and
 * the CLAT walk; gentry.c: the checks of one BAT entry).  Not for users of
 * the tables: they see gtables.h. */
#ifndef CLAT_GLOAD_H
#define CLAT_GLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "gtables.h"

#define PAGE_SHIFT 12
#define MAX_BLOCK_SIZE (2U << 20)
#define MSG_LEN 512

_Static_assert(CLAT_PAGE_SIZE == 1 << PAGE_SHIFT, "PAGE_SHIFT");

/* How many entries and pages the capacity implies; anything else is a
 * capacity mismatch.  Index x is level x + 1. */
struct geom {
	uint64_t nblocks;                 /* ceil(capacity / P) */
	uint64_t need[CLAT_MAX_LEVELS];   /* non-empty entries over all pages of a level */
	uint64_t pages[CLAT_MAX_LEVELS];  /* pages of a level */
	uint64_t npages;
};

/* Per-type walk bookkeeping that the device shadow does not need. */
struct walk_info {
	struct geom geo;
	uint8_t *level;   /* [npages] 1-based level of each page */
	uint32_t *local;  /* [npages] index of the page within its level */
};

struct loader {
	const struct gmem *g;
	struct gtables *t;
	struct walk_info wi[CLAT_MAX_TYPES];
	uint64_t *owned;            /* bit per guest page */
	struct gmem_data data;      /* holes: blocks there need not be read */
	char *err;
	size_t errlen;
	char deferred[MSG_LEN];     /* first soft error, see walk_type() */
};

/* A hard error: the message (prefixed with gt's type, if any) into l->err,
 * -EINVAL returned. */
__attribute__((format(printf, 3, 4)))
int gload_fail(struct loader *l, const struct gtype *gt, const char *fmt, ...);
/* The checks of gt->e (gentry.c); sets gt->per_block. */
int gload_check_entry(struct loader *l, struct gtype *gt);
/* What the capacity implies, and a first bound on it: the tables must fit in
 * guest memory, which also bounds every allocation after it. */
int gload_geometry(struct loader *l, const struct gtype *gt, struct geom *geo);

#endif
