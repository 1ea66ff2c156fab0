// SPDX-License-Identifier: GPL-2.0
/* Growing live guest tables: plan every new page and block first (so a
 * request that does not fit writes nothing), then zero them, link them in
 * bottom-up, update the BAT entry and bump the generation last. */
#include "ggrow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SHIFT 12
#define ALLOC_TRIES 64

struct write {
	uint64_t gpa;   /* a CLAT entry */
	uint64_t value;
};

struct range {
	uint64_t gpa, len;
};

/* A page of the tree being planned: an existing one (entries read from
 * guest memory), a fresh one (all entries empty), or one of the chain of
 * fresh pages above a re-rooted tree, whose entry 0 leads down to the old
 * root. */
enum page_kind { PAGE_OLD, PAGE_FRESH, PAGE_CHAIN };

struct grow {
	struct gmem *g;
	uint64_t *used;            /* bit per guest page */
	uint64_t file_pages;
	uint64_t rng;
	uint32_t c, levels, block_pages;
	uint64_t first, end;       /* blocks to add: [first, end) */
	uint64_t chain[CLAT_MAX_LEVELS];
	uint32_t nchain;
	uint64_t old_root;
	struct write *w;
	size_t nw, capw;
	struct range *z;           /* fresh memory to zero */
	size_t nz, capz;
	uint32_t new_pages, new_blocks;
	bool aligned;              /* extent mode: runs aligned, never across a huge page */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct grow *gr, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(gr->err, gr->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool is_used(const struct grow *gr, uint64_t pfn)
{
	return gr->used[pfn / 64] & (1ULL << (pfn % 64));
}

static void mark(struct grow *gr, uint64_t gpa, uint64_t len)
{
	uint64_t pfn;

	for (pfn = gpa >> PAGE_SHIFT; pfn < (gpa + len) >> PAGE_SHIFT; pfn++)
		gr->used[pfn / 64] |= 1ULL << (pfn % 64);
}

static void unmark(struct grow *gr, uint64_t gpa, uint64_t len)
{
	uint64_t pfn;

	for (pfn = gpa >> PAGE_SHIFT; pfn < (gpa + len) >> PAGE_SHIFT; pfn++)
		gr->used[pfn / 64] &= ~(1ULL << (pfn % 64));
}

static bool run_free(const struct grow *gr, uint64_t pfn, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		if (is_used(gr, pfn + i))
			return false;
	return true;
}

static uint64_t pow2_up(uint64_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* n free pages, at a random place if one of a few tries hits, else the
 * first run after a random start.  Page 0 is never used (GPA 0 = empty).
 * In extent mode a run is aligned to n rounded up to a power of two, so
 * that it never straddles a huge page. */
static uint64_t alloc_pages(struct grow *gr, uint64_t n)
{
	uint64_t span = gr->file_pages > n ? gr->file_pages - n : 0, pfn, start, i;
	uint64_t align = gr->aligned ? pow2_up(n) : 1;
	int k;

	if (span < 1)
		return 0;
	for (k = 0; k < ALLOC_TRIES; k++) {
		pfn = (1 + splitmix64(&gr->rng) % span) & ~(align - 1);
		if (pfn && run_free(gr, pfn, n))
			goto found;
	}
	start = splitmix64(&gr->rng) % span;
	for (i = 0; i < span; i++) {
		pfn = 1 + (start + i) % span;
		if (pfn % align == 0 && run_free(gr, pfn, n))
			goto found;
	}
	return 0;
found:
	mark(gr, pfn << PAGE_SHIFT, n << PAGE_SHIFT);
	return pfn << PAGE_SHIFT;
}

static int push(void **v, size_t *n, size_t *cap, size_t size, const void *item)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		void *p = realloc(*v, c * size);

		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	memcpy((char *)*v + *n * size, item, size);
	(*n)++;
	return 0;
}

static int fresh_memory(struct grow *gr, uint64_t pages, uint64_t *gpa)
{
	struct range r;

	*gpa = alloc_pages(gr, pages);
	if (!*gpa)
		return fail(gr, "guest memory full: no free run of %" PRIu64 " pages (%" PRIu64
			    " pages in all)", pages, gr->file_pages);
	r = (struct range){ *gpa, pages << PAGE_SHIFT };
	return push((void **)&gr->z, &gr->nz, &gr->capz, sizeof(r), &r);
}

static int link_entry(struct grow *gr, uint64_t page, uint32_t o, uint64_t value)
{
	struct write w = { page + 8ULL * o, value };

	return push((void **)&gr->w, &gr->nw, &gr->capw, sizeof(w), &w);
}

/* The entry's current target and the kind of page it is. */
static uint64_t child_of(struct grow *gr, uint64_t page, enum page_kind kind, uint32_t chain_i,
			 uint32_t o, enum page_kind *ck)
{
	const uint64_t *pg;
	uint64_t v;

	*ck = PAGE_FRESH;
	if (kind == PAGE_CHAIN && o == 0) {
		if (chain_i + 1 < gr->nchain) {
			*ck = PAGE_CHAIN;
			return gr->chain[chain_i + 1];
		}
		*ck = PAGE_OLD;
		return gr->old_root;
	}
	if (kind != PAGE_OLD)
		return CLAT_GPA_NONE;
	pg = gmem_ptr(gr->g, page, CLAT_PAGE_SIZE);
	v = pg ? __atomic_load_n(&pg[o], __ATOMIC_RELAXED) : CLAT_GPA_NONE;
	*ck = v == CLAT_GPA_NONE ? PAGE_FRESH : PAGE_OLD;
	return v;
}

/* Plans the new blocks under a page at level x that covers blocks
 * [lo, lo + span * C).  Links are recorded children first. */
static int plan(struct grow *gr, uint64_t page, enum page_kind kind, uint32_t chain_i, uint32_t x,
		uint64_t lo, uint64_t span)
{
	enum page_kind ck;
	uint64_t child;
	uint32_t o;
	int err;

	for (o = 0; o < gr->c; o++) {
		uint64_t a = lo + o * span;

		if (a + span <= gr->first || a >= gr->end)
			continue;
		if (x == gr->levels) {
			err = fresh_memory(gr, gr->block_pages, &child);
			if (!err)
				err = link_entry(gr, page, o, child);
			if (err)
				return err;
			gr->new_blocks++;
			continue;
		}
		child = child_of(gr, page, kind, chain_i, o, &ck);
		if (child == CLAT_GPA_NONE) {
			err = fresh_memory(gr, 1, &child);
			if (err)
				return err;
			gr->new_pages++;
		}
		err = plan(gr, child, ck, ck == PAGE_CHAIN ? chain_i + 1 : 0, x + 1, a, span / gr->c);
		if (!err && ck != PAGE_OLD)
			err = link_entry(gr, page, o, child);
		if (err)
			return err;
	}
	return 0;
}

static int grow_init(struct grow *gr, struct gmem *g, const struct gtables *t, uint64_t seed,
		     char *err, size_t errlen)
{
	uint32_t i, k;

	memset(gr, 0, sizeof(*gr));
	gr->g = g;
	gr->err = err;
	gr->errlen = errlen;
	gr->rng = seed;
	gr->file_pages = g->size >> PAGE_SHIFT;
	gr->used = calloc(gr->file_pages / 64 + 1, sizeof(uint64_t));
	if (!gr->used)
		return -ENOMEM;
	/* Extent mode: only the extents' pages are guest memory we own. */
	if (g->next) {
		gr->aligned = true;
		memset(gr->used, 0xff, (gr->file_pages / 64 + 1) * sizeof(uint64_t));
		for (i = 0; i < g->next; i++)
			unmark(gr, g->ext[i].gpa, g->ext[i].len);
	}
	mark(gr, 0, CLAT_PAGE_SIZE);
	mark(gr, t->bat_gpa, CLAT_PAGE_SIZE);
	for (i = 0; i < t->ntypes; i++) {
		const struct gtype *gt = &t->types[i];

		for (k = 0; k < gt->npages; k++)
			mark(gr, gt->page_gpa[k], CLAT_PAGE_SIZE);
		for (k = 0; k < gt->nblocks; k++)
			mark(gr, gt->block_gpa[k], gt->e.block_size);
	}
	return 0;
}

static void grow_free(struct grow *gr)
{
	free(gr->used);
	free(gr->w);
	free(gr->z);
}

/* Everything planned fitted: zero the fresh memory, then link bottom-up. */
static void grow_write(struct grow *gr)
{
	size_t i;

	for (i = 0; i < gr->nz; i++)
		memset(gmem_ptr(gr->g, gr->z[i].gpa, gr->z[i].len), 0, gr->z[i].len);
	for (i = 0; i < gr->nw; i++)
		__atomic_store_n((uint64_t *)gmem_ptr(gr->g, gr->w[i].gpa, 8), gr->w[i].value,
				 __ATOMIC_RELEASE);
}

static struct clat_bat_hdr *bat_hdr(struct gmem *g, const struct gtables *t)
{
	return gmem_ptr(g, t->bat_gpa, CLAT_PAGE_SIZE);
}

/* Last: a device that sees the new generation sees everything before it. */
static uint32_t bump_generation(struct clat_bat_hdr *h)
{
	uint32_t gen = __atomic_load_n(&h->generation, __ATOMIC_RELAXED) + 1;

	__atomic_store_n(&h->generation, gen, __ATOMIC_RELEASE);
	return gen;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Smallest N >= from with P * C^N >= capacity, or 0 past CLAT_MAX_LEVELS. */
static uint32_t levels_for(uint32_t per_block, uint32_t c, uint32_t from, uint64_t capacity)
{
	uint64_t cap = per_block;
	uint32_t n;

	for (n = 1; n <= CLAT_MAX_LEVELS; n++) {
		cap *= c;
		if (n >= from && cap >= capacity)
			return n;
	}
	return 0;
}

int ggrow_capacity(struct gmem *g, const struct gtables *t, uint32_t type, uint32_t capacity,
		   uint64_t seed, struct ggrow_result *r, char *err, size_t errlen)
{
	const struct gtype *gt;
	struct clat_bat_entry *e;
	struct grow gr;
	uint64_t span = 1, root;
	uint32_t p, n0, n1, x, base;
	int ret;

	if (type >= t->ntypes)
		return snprintf(err, errlen, "no type %u (the BAT has %u)", type, t->ntypes), -EINVAL;
	gt = &t->types[type];
	p = gt->per_block;
	n0 = gt->e.levels;
	base = gt->nblocks * p; /* new services start on a fresh block */
	if (capacity <= base)
		return snprintf(err, errlen, "type %u (%s): capacity %u does not grow past %u, the "
				"services the existing blocks hold", type, gt->e.name, capacity,
				base), -EINVAL;
	if (capacity > CLAT_MAX_CAPACITY)
		return snprintf(err, errlen, "capacity %u is more than %u", capacity,
				CLAT_MAX_CAPACITY), -EINVAL;
	if (gt->e.nsegs >= CLAT_MAX_SEGMENTS)
		return snprintf(err, errlen, "type %u (%s) already has %u capacity segments, the "
				"most a type can have", type, gt->e.name, gt->e.nsegs), -EINVAL;
	n1 = levels_for(p, gt->e.clat_entries, n0, capacity);
	if (!n1)
		return snprintf(err, errlen, "capacity %u needs more than %u CLAT levels of %u "
				"entries", capacity, CLAT_MAX_LEVELS, gt->e.clat_entries), -EINVAL;
	ret = grow_init(&gr, g, t, seed, err, errlen);
	if (ret)
		return ret;
	gr.c = gt->e.clat_entries;
	gr.levels = n1;
	gr.block_pages = gt->e.block_size >> PAGE_SHIFT;
	gr.first = gt->nblocks;
	gr.end = div_up(capacity, p);
	gr.old_root = gt->e.clat_gpa;
	root = gt->e.clat_gpa;
	/* A re-root: fresh pages above the old root, each entry 0 leading down. */
	for (x = 0; !ret && x < n1 - n0; x++) {
		ret = fresh_memory(&gr, 1, &gr.chain[x]);
		gr.new_pages += !ret;
	}
	gr.nchain = n1 - n0;
	for (x = 1; x < n1; x++)
		span *= gr.c;
	if (!ret)
		ret = plan(&gr, gr.nchain ? gr.chain[0] : root, gr.nchain ? PAGE_CHAIN : PAGE_OLD, 0,
			   1, 0, span);
	/* The chain's links, whether or not a new block lies below entry 0. */
	for (x = 0; !ret && x < gr.nchain; x++)
		ret = link_entry(&gr, gr.chain[x], 0,
				 x + 1 < gr.nchain ? gr.chain[x + 1] : gr.old_root);
	if (!ret) {
		grow_write(&gr);
		e = (struct clat_bat_entry *)(bat_hdr(g, t) + 1) + type;
		e->seg[e->nsegs] = (struct clat_seg){ base, capacity - base };
		e->nsegs++;
		e->capacity = capacity;
		e->levels = n1;
		if (gr.nchain)
			e->clat_gpa = gr.chain[0];
		*r = (struct ggrow_result){
			.type = type, .old_capacity = gt->e.capacity, .capacity = capacity,
			.old_levels = n0, .levels = n1, .new_pages = gr.new_pages,
			.new_blocks = gr.new_blocks, .seg = e->seg[e->nsegs - 1],
			.generation = bump_generation(bat_hdr(g, t)), .clat_gpa = e->clat_gpa,
		};
	}
	grow_free(&gr);
	return ret;
}

int ggrow_add_type(struct gmem *g, const struct gtables *t, const struct gbuild_type *ty,
		   uint64_t seed, struct ggrow_result *r, char *err, size_t errlen)
{
	struct clat_bat_hdr *h = bat_hdr(g, t);
	struct clat_bat_entry *e;
	struct grow gr;
	uint64_t span = 1, root = 0;
	uint32_t x, i;
	int ret;

	if (t->ntypes >= CLAT_MAX_TYPES)
		return snprintf(err, errlen, "the BAT already has %u types, the most it can have",
				t->ntypes), -EINVAL;
	for (i = 0; i < t->ntypes; i++)
		if (!strncmp(t->types[i].e.name, ty->name, sizeof(ty->name)))
			return snprintf(err, errlen, "type %u is already named '%s'", i, ty->name),
			       -EINVAL;
	ret = grow_init(&gr, g, t, seed, err, errlen);
	if (ret)
		return ret;
	gr.c = ty->clat_entries;
	gr.levels = ty->levels;
	gr.block_pages = ty->block_size >> PAGE_SHIFT;
	gr.first = 0;
	gr.end = div_up(ty->services, ty->block_size / ty->ctx_size);
	for (x = 1; x < gr.levels; x++)
		span *= gr.c;
	ret = fresh_memory(&gr, 1, &root);
	gr.new_pages = !ret;
	if (!ret)
		ret = plan(&gr, root, PAGE_FRESH, 0, 1, 0, span);
	if (!ret) {
		grow_write(&gr);
		e = (struct clat_bat_entry *)(h + 1) + t->ntypes;
		*e = (struct clat_bat_entry){
			.clat_gpa = root, .ctx_size = ty->ctx_size, .block_size = ty->block_size,
			.levels = ty->levels, .clat_entries = ty->clat_entries,
			.capacity = ty->services, .hash_seed = ty->hash_seed,
			.proto_mask = (uint16_t)ty->proto_mask, .nsegs = 1,
			.seg = { { 0, ty->services } },
		};
		memcpy(e->name, ty->name, sizeof(e->name));
		/* The entry is complete before ntypes lets a reader see it. */
		__atomic_store_n(&h->ntypes, (uint16_t)(t->ntypes + 1), __ATOMIC_RELEASE);
		*r = (struct ggrow_result){
			.type = t->ntypes, .capacity = ty->services, .levels = ty->levels,
			.new_pages = gr.new_pages, .new_blocks = gr.new_blocks, .seg = e->seg[0],
			.generation = bump_generation(h), .clat_gpa = root,
		};
	}
	grow_free(&gr);
	return ret;
}
