// SPDX-License-Identifier: GPL-2.0
/* The checks of one BAT entry, before any walk of its CLAT: name, fields,
 * capacity segments, and a capacity whose tables fit in guest memory.
 * gtables_load makes them for every type; a resync for a grown or new one.
 * Everything is checked on a copy of the entry (see gtables.c). */
#include "gentry.h"
#include "gload.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int check_name(struct loader *l, const struct gtype *gt)
{
	const char *name = gt->e.name;
	size_t i;

	if (!memchr(name, 0, sizeof(gt->e.name)))
		return gload_fail(l, gt, "BAT entry at GPA 0x%" PRIx64 ": name is not NUL-terminated "
				  "within %zu bytes", gt->entry_gpa, sizeof(gt->e.name));
	/* Names end up in messages and JSON: keep terminals safe. */
	for (i = 0; name[i]; i++)
		if (name[i] < 0x20 || name[i] > 0x7e)
			return gload_fail(l, gt, "BAT entry at GPA 0x%" PRIx64 ": name byte %zu is not "
					  "printable (0x%02x)", gt->entry_gpa, i, (unsigned char)name[i]);
	return 0;
}

int gload_check_entry(struct loader *l, struct gtype *gt)
{
	const struct clat_bat_entry *e = &gt->e;
	uint64_t cap_max;
	uint32_t x;
	int err;

	err = check_name(l, gt);
	if (err)
		return err;
	if (e->levels > CLAT_MAX_LEVELS)
		return gload_fail(l, gt, "too many levels: %u (at most %u)", e->levels, CLAT_MAX_LEVELS);
	if (e->levels < 1)
		return gload_fail(l, gt, "levels 0: at least one CLAT level is needed");
	if (e->clat_entries < 1 || e->clat_entries > CLAT_MAX_CLAT_ENTRIES)
		return gload_fail(l, gt, "clat_entries C=%u out of range 1..%u", e->clat_entries,
				  CLAT_MAX_CLAT_ENTRIES);
	if (e->ctx_size < sizeof(struct clat_ctx) || e->ctx_size % 8)
		return gload_fail(l, gt, "context size A=%u must be a multiple of 8 and at least %zu",
				  e->ctx_size, sizeof(struct clat_ctx));
	if (e->block_size % e->ctx_size)
		return gload_fail(l, gt, "context size A=%u does not divide block size B=%u",
				  e->ctx_size, e->block_size);
	if (!e->block_size || e->block_size % CLAT_PAGE_SIZE || e->block_size > MAX_BLOCK_SIZE)
		return gload_fail(l, gt, "block size B=%u must be a non-zero multiple of %u up to %u",
				  e->block_size, CLAT_PAGE_SIZE, MAX_BLOCK_SIZE);
	/* Was version 2's probe window: zero keeps the field free for reuse. */
	if (e->pad1)
		return gload_fail(l, gt, "BAT entry at GPA 0x%" PRIx64 ": pad1 is 0x%x, must be 0",
				  gt->entry_gpa, e->pad1);
	gt->per_block = e->block_size / e->ctx_size;
	/* P <= 2^21 / 128 and C^N <= 2^36: no overflow. */
	cap_max = gt->per_block;
	for (x = 0; x < e->levels; x++)
		cap_max *= e->clat_entries;
	/* The device indexes contexts, tiers and blocks with 32 bits: keep
	 * blocks * P (and the tier count) far below 2^32. */
	if (cap_max > CLAT_MAX_CAPACITY)
		cap_max = CLAT_MAX_CAPACITY;
	if (e->capacity < 1 || e->capacity > cap_max)
		return gload_fail(l, gt, "capacity %u out of range 1..%" PRIu64 " (P=%u x C=%u ^ N=%u, "
				  "at most %u)", e->capacity, cap_max, gt->per_block, e->clat_entries,
				  e->levels, CLAT_MAX_CAPACITY);
	if (!e->proto_mask || e->proto_mask & ~(CLAT_PROTO_TCP | CLAT_PROTO_UDP))
		return gload_fail(l, gt, "proto_mask 0x%x: must be a non-empty set of tcp (0x%x) and "
				  "udp (0x%x)", e->proto_mask, CLAT_PROTO_TCP, CLAT_PROTO_UDP);
	return gtype_check_segments(gt, l->err, l->errlen) ? -EINVAL : 0;
}

int gtype_check_segments(const struct gtype *gt, char *err, size_t errlen)
{
	const struct clat_bat_entry *e = &gt->e;
	uint64_t end = 0;
	uint32_t k;

#define SEG_FAIL(...) (snprintf(err, errlen, "type %u (%s): " __VA_ARGS__), -EINVAL)
	if (e->nsegs < 1 || e->nsegs > CLAT_MAX_SEGMENTS)
		return SEG_FAIL("nsegs %u out of range 1..%u", gt->index, e->name, e->nsegs,
				CLAT_MAX_SEGMENTS);
	for (k = 0; k < e->nsegs; k++) {
		const struct clat_seg *sg = &e->seg[k];

		if (!sg->size)
			return SEG_FAIL("segment %u is empty", gt->index, e->name, k);
		if (sg->base % gt->per_block)
			return SEG_FAIL("segment %u base %u is not a multiple of P=%u", gt->index,
					e->name, k, sg->base, gt->per_block);
		if (sg->base < end)
			return SEG_FAIL("segment %u [%u, %" PRIu64 "] overlaps or precedes the "
					"segment before it", gt->index, e->name, k, sg->base + 1,
					(uint64_t)sg->base + sg->size);
		end = (uint64_t)sg->base + sg->size;
		if (end > e->capacity)
			return SEG_FAIL("segment %u ends at service %" PRIu64 ", past capacity %u",
					gt->index, e->name, k, end, e->capacity);
	}
	for (; k < CLAT_MAX_SEGMENTS; k++)
		if (e->seg[k].base || e->seg[k].size)
			return SEG_FAIL("segment %u is set but nsegs is %u", gt->index, e->name, k,
					e->nsegs);
#undef SEG_FAIL
	return 0;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

int gtype_check_entry(const struct gmem *g, struct gtype *gt, char *err, size_t errlen)
{
	struct loader l = { .g = g, .err = err, .errlen = errlen };
	struct geom geo;
	int ret = gload_check_entry(&l, gt);

	return ret ? ret : gload_geometry(&l, gt, &geo);
}

/* What the capacity implies, and a first bound on it: the tables must fit in
 * guest memory, which also bounds every allocation below. */
int gload_geometry(struct loader *l, const struct gtype *gt, struct geom *geo)
{
	uint32_t n = gt->e.levels, c = gt->e.clat_entries, x;
	uint64_t span = 1, bytes;

	memset(geo, 0, sizeof(*geo));
	geo->nblocks = div_up(gt->e.capacity, gt->per_block);
	for (x = n; x-- > 0;) {
		geo->need[x] = div_up(geo->nblocks, span);
		span *= c;
	}
	for (x = 0; x < n; x++) {
		geo->pages[x] = x ? geo->need[x - 1] : 1;
		geo->npages += geo->pages[x];
	}
	bytes = geo->nblocks * gt->e.block_size + geo->npages * CLAT_PAGE_SIZE;
	if (bytes > l->g->size)
		return gload_fail(l, gt, "capacity %u needs %" PRIu64 " blocks and %" PRIu64 " CLAT pages "
				  "(%" PRIu64 " bytes), more than guest memory (size 0x%" PRIx64 ")",
				  gt->e.capacity, geo->nblocks, geo->npages, bytes, l->g->size);
	return 0;
}
