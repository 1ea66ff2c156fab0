// SPDX-License-Identifier: GPL-2.0
/* libFuzzer target for gtables_load(): the guest tables are untrusted, so
 * whatever bytes a guest leaves in its memory, loading them must neither
 * crash nor accept tables that point outside guest memory or overlap.
 *
 * Input: [8-byte bat_gpa, little-endian][guest memory bytes].  The memory is
 * zero-padded up to a multiple of CLAT_PAGE_SIZE and lives in a heap buffer
 * of exactly that size, so ASan sees any read past its end.  gtables_load()
 * only uses g->fd for SEEK_DATA/SEEK_HOLE, and fd -1 there means "all data".
 *
 * When the load succeeds, every invariant the device relies on is checked
 * and a violation abort()s: that is a validator hole, not a harness bug.
 *
 * Build and run: make fuzz [FUZZ_SECONDS=60], or selftests/fuzz.sh SECONDS. */
#include "glookup.h"
#include "gtables.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Larger guests only slow the fuzzer down. */
#define FUZZ_MAX_MEM (4ULL << 20)
/* Walk every service up to this capacity, else a sample. */
#define FUZZ_ALL_SVCS 65536

#define hole(...)                                                                   \
	do {                                                                        \
		fprintf(stderr, "fuzz_gtables: validator hole: " __VA_ARGS__);      \
		fputc('\n', stderr);                                                \
		abort();                                                            \
	} while (0)

static void own(uint64_t *bm, const struct gmem *g, uint64_t gpa, uint64_t len, const char *what,
		uint32_t ti, uint32_t idx)
{
	uint64_t pfn;

	if (gpa % CLAT_PAGE_SIZE || len % CLAT_PAGE_SIZE || !len)
		hole("type %u %s %u at 0x%llx len 0x%llx: misaligned", ti, what, idx,
		     (unsigned long long)gpa, (unsigned long long)len);
	if (gpa == 0 || gpa > g->size || len > g->size - gpa)
		hole("type %u %s %u at 0x%llx len 0x%llx: outside memory of 0x%llx", ti, what,
		     idx, (unsigned long long)gpa, (unsigned long long)len,
		     (unsigned long long)g->size);
	for (pfn = gpa / CLAT_PAGE_SIZE; pfn < (gpa + len) / CLAT_PAGE_SIZE; pfn++) {
		if (bm[pfn / 64] & (1ULL << (pfn % 64)))
			hole("type %u %s %u at 0x%llx: page 0x%llx already owned", ti, what, idx,
			     (unsigned long long)gpa, (unsigned long long)pfn * CLAT_PAGE_SIZE);
		bm[pfn / 64] |= 1ULL << (pfn % 64);
	}
}

static void check_svc(const struct gmem *g, const struct gtype *t, uint32_t svc)
{
	uint32_t block, element;
	struct gtype_path path;
	uint64_t gpa;
	uint32_t x;

	if (gtype_walk(t, svc, &block, &element))
		hole("type %u: svc %u of capacity %u does not walk", t->index, svc,
		     t->e.capacity);
	if (block != (svc - 1) / t->per_block || element != (svc - 1) % t->per_block)
		hole("type %u: svc %u walks to block %u element %u, expected %u/%u", t->index,
		     svc, block, element, (svc - 1) / t->per_block, (svc - 1) % t->per_block);
	gpa = gtype_ctx_gpa(t, svc);
	if (!gpa || gpa > g->size || t->e.ctx_size > g->size - gpa)
		hole("type %u: svc %u context at 0x%llx (+%u) outside memory of 0x%llx",
		     t->index, svc, (unsigned long long)gpa, t->e.ctx_size,
		     (unsigned long long)g->size);
	if (gpa < t->block_gpa[block] ||
	    gpa + t->e.ctx_size > t->block_gpa[block] + t->e.block_size)
		hole("type %u: svc %u context at 0x%llx outside its block at 0x%llx", t->index,
		     svc, (unsigned long long)gpa, (unsigned long long)t->block_gpa[block]);
	if (gtype_path(t, svc, &path))
		hole("type %u: svc %u walks but has no path", t->index, svc);
	if (path.ctx_gpa != gpa)
		hole("type %u: svc %u path ctx 0x%llx != walk ctx 0x%llx", t->index, svc,
		     (unsigned long long)path.ctx_gpa, (unsigned long long)gpa);
	for (x = 0; x < t->e.levels; x++)
		if (path.entry_gpa[x] < path.page_gpa[x] ||
		    path.entry_gpa[x] + 8 > path.page_gpa[x] + CLAT_PAGE_SIZE ||
		    path.entry_gpa[x] + 8 > g->size)
			hole("type %u: svc %u level %u entry at 0x%llx outside its page 0x%llx",
			     t->index, svc, x + 1, (unsigned long long)path.entry_gpa[x],
			     (unsigned long long)path.page_gpa[x]);
}

static void check_tables(const struct gmem *g, const struct gtables *t)
{
	uint64_t words = (g->size / CLAT_PAGE_SIZE + 63) / 64;
	uint64_t *bm = calloc(words ? words : 1, sizeof(*bm));
	uint32_t ti, i, svc;

	if (!bm)
		abort();
	if (t->ntypes < 1 || t->ntypes > CLAT_MAX_TYPES)
		hole("ntypes %u", t->ntypes);
	if (t->hdr.version != CLAT_BAT_VERSION)
		hole("BAT version %u accepted", t->hdr.version);
	own(bm, g, t->bat_gpa, CLAT_PAGE_SIZE, "BAT", 0, 0);
	for (ti = 0; ti < t->ntypes; ti++) {
		const struct gtype *gt = &t->types[ti];
		const struct clat_bat_entry *e = &gt->e;

		if (!e->levels || e->levels > CLAT_MAX_LEVELS || !e->clat_entries ||
		    e->clat_entries > CLAT_MAX_CLAT_ENTRIES || e->ctx_size < sizeof(struct clat_ctx) ||
		    !e->block_size || e->block_size % e->ctx_size || !e->capacity ||
		    e->capacity > CLAT_MAX_CAPACITY || gt->per_block != e->block_size / e->ctx_size)
			hole("type %u: bad geometry accepted", ti);
		if (e->pad1)
			hole("type %u: pad1 0x%x accepted", ti, e->pad1);
		if ((uint64_t)gt->nblocks * gt->per_block < e->capacity ||
		    (uint64_t)(gt->nblocks - 1) * gt->per_block >= e->capacity)
			hole("type %u: %u blocks of %u for capacity %u", ti, gt->nblocks,
			     gt->per_block, e->capacity);
		if (!gt->npages || gt->page_gpa[0] != e->clat_gpa)
			hole("type %u: page 0 is not clat_gpa", ti);
		for (i = 0; i < gt->npages; i++)
			own(bm, g, gt->page_gpa[i], CLAT_PAGE_SIZE, "page", ti, i);
		for (i = 0; i < gt->nblocks; i++)
			own(bm, g, gt->block_gpa[i], e->block_size, "block", ti, i);
		for (i = 0; i < gt->npages * e->clat_entries; i++)
			if (gt->tiers[i] != CLAT_TIER_NONE && gt->tiers[i] >= gt->npages &&
			    gt->tiers[i] >= gt->nblocks)
				hole("type %u: tier %u -> %u out of range", ti, i, gt->tiers[i]);
		if (e->capacity <= FUZZ_ALL_SVCS) {
			for (svc = 1; svc <= e->capacity; svc++)
				check_svc(g, gt, svc);
		} else {
			check_svc(g, gt, 1);
			check_svc(g, gt, e->capacity / 2 + 1);
			check_svc(g, gt, e->capacity);
		}
		if (gtype_ctx_gpa(gt, 0) || (e->capacity < UINT32_MAX &&
					     gtype_ctx_gpa(gt, e->capacity + 1)))
			hole("type %u: svc 0 or capacity + 1 has a context", ti);
	}
	free(bm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gtables t;
	struct gmem g;
	uint64_t bat_gpa, mem;
	char err[512];
	int ret;

	if (size < 8)
		return 0;
	memcpy(&bat_gpa, data, 8); /* x86/arm64: little-endian */
	data += 8;
	size -= 8;
	mem = (size + CLAT_PAGE_SIZE - 1) / CLAT_PAGE_SIZE * CLAT_PAGE_SIZE;
	if (mem == 0 || mem > FUZZ_MAX_MEM)
		return 0;

	memset(&g, 0, sizeof(g));
	g.fd = -1;
	g.size = g.map_len = mem;
	g.base = malloc(mem);
	if (!g.base)
		return 0;
	memcpy(g.base, data, size);
	memset(g.base + size, 0, mem - size);

	ret = gtables_load(&g, bat_gpa, &t, err, sizeof(err));
	if (ret == 0) {
		check_tables(&g, &t);
		gtables_free(&t);
	} else {
		if (ret != -EINVAL && ret != -ENOMEM)
			hole("unexpected error %d: %s", ret, err);
		if (!err[0] || !memchr(err, 0, sizeof(err)))
			hole("error %d without a message", ret);
		/* Nothing is allocated on failure. */
		for (uint32_t i = 0; i < CLAT_MAX_TYPES; i++)
			if (t.types[i].page_gpa || t.types[i].tiers || t.types[i].block_gpa)
				hole("failed load left allocations behind");
	}
	free(g.base);
	return 0;
}
