/* SPDX-License-Identifier: GPL-2.0 */
/* Lookups through the flattened tiers of validated tables (glookup.c). */
#ifndef CLAT_GLOOKUP_H
#define CLAT_GLOOKUP_H

#include <stdint.h>

#include "gtables.h"

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

#endif
