// SPDX-License-Identifier: GPL-2.0
/* Lookups through the flattened tiers of validated tables: where a
 * service's context is, and every GPA the walk to it visits. */
#include "glookup.h"

#include <string.h>

int gtype_path(const struct gtype *t, uint32_t svc, struct gtype_path *path)
{
	struct clat_loc loc;
	uint32_t p = 0, v = CLAT_TIER_NONE, x;

	memset(path, 0, sizeof(*path));
	if (!t->tiers || svc == 0 || svc > t->e.capacity ||
	    clat_locate(svc, t->per_block, t->e.clat_entries, t->e.levels, &loc))
		return -1;
	for (x = 0; x < t->e.levels; x++) {
		if (p >= t->npages)
			return -1;
		v = t->tiers[(uint64_t)p * t->e.clat_entries + loc.offset[x]];
		if (v == CLAT_TIER_NONE)
			return -1;
		path->page_gpa[x] = t->page_gpa[p];
		path->offset[x] = loc.offset[x];
		path->entry_gpa[x] = t->page_gpa[p] + 8ULL * loc.offset[x];
		if (x + 1 < t->e.levels) {
			if (v >= t->npages)
				return -1;
			path->value[x] = t->page_gpa[v];
		}
		p = v;
	}
	if (v >= t->nblocks)
		return -1;
	path->value[t->e.levels - 1] = t->block_gpa[v];
	path->block = v;
	path->block_gpa = t->block_gpa[v];
	path->element = loc.element;
	path->ctx_gpa = path->block_gpa + (uint64_t)loc.element * t->e.ctx_size;
	return 0;
}

/* The short forms of gtype_path: one walk, in one place. */
int gtype_walk(const struct gtype *t, uint32_t svc, uint32_t *block, uint32_t *element)
{
	struct gtype_path path;

	if (gtype_path(t, svc, &path))
		return -1;
	*block = path.block;
	*element = path.element;
	return 0;
}

uint64_t gtype_ctx_gpa(const struct gtype *t, uint32_t svc)
{
	struct gtype_path path;

	return gtype_path(t, svc, &path) ? 0 : path.ctx_gpa;
}
