// SPDX-License-Identifier: GPL-2.0
/* Where the builder puts each table object (the BAT, CLAT pages, blocks) in
 * guest memory: scattered in a seeded pseudo-random order with random gaps,
 * like a guest allocator would leave them, so that nothing downstream can
 * get away with assuming the tables are contiguous; in extent mode aligned
 * so that none straddles a huge page. */
#include "glayout.h"
#include "gphys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

void bgeom_of(const struct gbuild_type *t, struct bgeom *g)
{
	uint64_t span = 1;
	uint32_t x;

	memset(g, 0, sizeof(*g));
	g->nblocks = div_up(t->services, t->block_size / t->ctx_size);
	for (x = t->levels; x-- > 0;) {
		g->need[x] = div_up(g->nblocks, span);
		span *= t->clat_entries;
	}
	for (x = 0; x < t->levels; x++) {
		g->pages[x] = x ? g->need[x - 1] : 1;
		g->start[x] = g->npages;
		g->npages += g->pages[x];
	}
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t *obj_slot(struct layout *ly, uint64_t id, uint64_t *pages)
{
	unsigned int t;

	*pages = 1;
	if (id == 0)
		return &ly->bat_gpa;
	for (t = 0; t < ly->ntypes; t++) {
		uint64_t i = id - ly->base[t];

		if (id >= ly->base[t + 1])
			continue;
		if (i < ly->geo[t].npages)
			return &ly->page_gpa[t][i];
		*pages = ly->block_pages[t];
		return &ly->block_gpa[t][i - ly->geo[t].npages];
	}
	return NULL;
}

void layout_free(struct layout *ly)
{
	unsigned int t;

	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		free(ly->page_gpa[t]);
		free(ly->block_gpa[t]);
	}
}

int layout_place(struct layout *ly, uint64_t file_pages, uint64_t seed)
{
	uint64_t nobj = ly->base[ly->ntypes], used = 0, slack, left, pos = 1, i, maxgap, pages;
	uint32_t *perm;

	perm = malloc(nobj * sizeof(*perm));
	if (!perm)
		return -ENOMEM;
	for (i = 0; i < nobj; i++) {
		obj_slot(ly, i, &pages);
		used += pages;
		perm[i] = (uint32_t)i;
	}
	for (i = nobj - 1; i > 0; i--) { /* Fisher-Yates */
		uint64_t j = splitmix64(&seed) % (i + 1);
		uint32_t tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	/* Page 0 is never used: GPA 0 means "empty". */
	slack = left = file_pages - 1 - used;
	maxgap = 2 * slack / (nobj + 1);
	for (i = 0; i < nobj; i++) {
		uint64_t gap, *slot = obj_slot(ly, perm[i], &pages);

		if (maxgap)
			gap = splitmix64(&seed) % (maxgap + 1);
		else
			gap = splitmix64(&seed) % (nobj + 1) < slack;
		gap = gap < left ? gap : left;
		left -= gap;
		pos += gap;
		*slot = pos << PAGE_SHIFT;
		pos += pages;
	}
	free(perm);
	return 0;
}

/* The power of two at or above n. */
static uint64_t pow2_up(uint64_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static uint32_t *perm_by_align;
static struct layout *sort_ly;

static int by_align(const void *a, const void *b)
{
	uint64_t pa, pb;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	obj_slot(sort_ly, x, &pa);
	obj_slot(sort_ly, y, &pb);
	pa = pow2_up(pa);
	pb = pow2_up(pb);
	if (pa != pb)
		return pa < pb ? -1 : 1;
	/* Equal alignment: keep the shuffled order (rank in perm_by_align). */
	return perm_by_align[x] < perm_by_align[y] ? -1 : perm_by_align[x] > perm_by_align[y];
}

/* Extent mode: file offsets, later turned into GPAs huge page by huge page.
 * The BAT is object 0 at offset 0 (so a later command finds it without
 * being told); every other object is aligned to its size rounded up to a
 * power of two, so none straddles a huge page.  Shuffled, then sorted by
 * alignment (stable on the shuffle): the only waste is that rounding and
 * at most one alignment step per size class.  No gaps: the huge pages
 * themselves are scattered over guest memory. */
int layout_place_aligned(struct layout *ly, uint64_t file_pages, uint64_t seed)
{
	uint64_t nobj = ly->base[ly->ntypes], pos = 1, i, pages;
	uint32_t *perm, *rank;

	perm = malloc(nobj * sizeof(*perm));
	rank = malloc(nobj * sizeof(*rank));
	if (!perm || !rank) {
		free(perm);
		free(rank);
		return -ENOMEM;
	}
	ly->bat_gpa = 0;
	for (i = 0; i < nobj; i++)
		perm[i] = (uint32_t)i;
	for (i = nobj - 1; i > 1; i--) { /* Fisher-Yates over objects 1.. */
		uint64_t j = 1 + splitmix64(&seed) % i;
		uint32_t tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	for (i = 0; i < nobj; i++)
		rank[perm[i]] = (uint32_t)i;
	perm_by_align = rank;
	sort_ly = ly;
	qsort(perm + 1, nobj - 1, sizeof(*perm), by_align);
	for (i = 1; i < nobj; i++) {
		uint64_t *slot = obj_slot(ly, perm[i], &pages), align = pow2_up(pages);

		pos = (pos + align - 1) & ~(align - 1);
		if (pos + pages > file_pages)
			break;
		*slot = pos << PAGE_SHIFT;
		pos += pages;
	}
	free(perm);
	free(rank);
	return i < nobj ? -ENOSPC : 0;
}

int layout_init(struct layout *ly, const struct gbuild_type *types, unsigned int n)
{
	unsigned int t;

	memset(ly, 0, sizeof(*ly));
	ly->ntypes = n;
	ly->base[0] = 1;
	for (t = 0; t < n; t++) {
		bgeom_of(&types[t], &ly->geo[t]);
		ly->block_pages[t] = types[t].block_size >> PAGE_SHIFT;
		ly->base[t + 1] = ly->base[t] + ly->geo[t].npages + ly->geo[t].nblocks;
		ly->page_gpa[t] = calloc(ly->geo[t].npages, sizeof(uint64_t));
		ly->block_gpa[t] = calloc(ly->geo[t].nblocks, sizeof(uint64_t));
		if (!ly->page_gpa[t] || !ly->block_gpa[t])
			return -ENOMEM;
	}
	/* The permutation holds 32-bit object ids. */
	return ly->base[n] > UINT32_MAX ? -E2BIG : 0;
}

/* Holes already read as zeroes: writing zeroes there would only fill the
 * file and the page cache. */
void layout_clear(struct gmem *g, struct layout *ly)
{
	struct gmem_data d;
	uint64_t i, pages;

	gmem_data_scan(g, &d);
	for (i = 0; i < ly->base[ly->ntypes]; i++) {
		uint64_t *slot = obj_slot(ly, i, &pages), len = pages << PAGE_SHIFT;

		if (!gmem_data_hole(&d, *slot, len))
			memset(gmem_ptr(g, *slot, len), 0, len);
	}
	gmem_data_free(&d);
}

/* Extent mode: the layout was made in file offsets; the tables hold GPAs. */
void layout_to_gpa(const struct gmem *g, struct layout *ly)
{
	uint64_t i, pages;

	for (i = 0; i < ly->base[ly->ntypes]; i++) {
		uint64_t *slot = obj_slot(ly, i, &pages);

		*slot = gmem_gpa_of(g, *slot);
	}
}

uint64_t layout_default_seed(const struct gbuild_type *types, unsigned int n)
{
	uint64_t s = 0x636c6174ULL; /* "clat" */
	unsigned int t;

	for (t = 0; t < n; t++) {
		s ^= types[t].hash_seed;
		s = splitmix64(&s);
	}
	return s;
}
