// SPDX-License-Identifier: GPL-2.0
/* Depth-first flattening of the part of a CLAT that one segment needs. */
#include "flatten.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clat_abi.h"

struct flatten {
	tier_entry_fn entry;
	void *ctx;
	uint32_t levels, c, first, end;
	struct seg_tiers *out;
};

int seg_tiers_add_page(struct seg_tiers *o, uint32_t c, uint32_t *idx)
{
	if (o->npages == o->cap) {
		uint32_t cap = o->cap ? o->cap * 2 : 4;
		uint32_t *t = realloc(o->tiers, (size_t)cap * c * sizeof(*t));

		if (!t)
			return -ENOMEM;
		o->tiers = t;
		o->cap = cap;
	}
	*idx = o->npages++;
	memset(&o->tiers[(size_t)*idx * c], 0xff, c * sizeof(uint32_t)); /* CLAT_TIER_NONE */
	return 0;
}

/* Page `page` at level x covers blocks [lo, lo + span * C). */
static int visit(struct flatten *f, uint64_t page, uint32_t x, uint64_t lo, uint64_t span,
		 uint32_t *idx)
{
	uint64_t child;
	uint32_t o, sub;
	int err = seg_tiers_add_page(f->out, f->c, idx);

	for (o = 0; !err && o < f->c; o++) {
		uint64_t a = lo + o * span;

		if (a + span <= f->first || a >= f->end)
			continue; /* no block of the segment below: not read */
		f->out->reads++;
		err = f->entry(f->ctx, page, x, o, &child);
		if (err)
			break;
		if (x == f->levels) {
			if (child < f->first || child >= f->end)
				return -EINVAL; /* the source numbers blocks by position */
			f->out->tiers[(size_t)*idx * f->c + o] = (uint32_t)(child - f->first);
			continue;
		}
		err = visit(f, child, x + 1, a, span / f->c, &sub);
		if (!err)
			f->out->tiers[(size_t)*idx * f->c + o] = sub;
	}
	return err;
}

int seg_flatten(tier_entry_fn entry, void *ctx, uint64_t root, uint32_t levels, uint32_t c,
		uint32_t first, uint32_t end, struct seg_tiers *out)
{
	struct flatten f = { entry, ctx, levels, c, first, end, out };
	uint64_t span = 1;
	uint32_t x, idx;
	int err;

	memset(out, 0, sizeof(*out));
	if (!levels || levels > CLAT_MAX_LEVELS || !c || first >= end)
		return -EINVAL;
	for (x = 1; x < levels; x++)
		span *= c;
	err = visit(&f, root, 1, 0, span, &idx);
	if (err)
		seg_tiers_free(out);
	return err;
}

void seg_tiers_free(struct seg_tiers *st)
{
	free(st->tiers);
	memset(st, 0, sizeof(*st));
}
