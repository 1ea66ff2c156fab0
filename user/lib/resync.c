// SPDX-License-Identifier: GPL-2.0
/* Incremental shadow sync (see resync.h). */
#include "resync.h"
#include "common.h"
#include "gentry.h"
#include "maps.h"
#include "owned.h"
#include "pool.h"
#include "resync_publish.h"
#include "vct.h"
#include "writeback.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <bpf/bpf.h>

#define MSG_LEN 512

struct rwalk {
	const struct gmem *g;
	const struct shadow_owned *owned;
	uint64_t *fresh;        /* bit per page claimed by this resync */
	struct type_change *tc; /* the type being walked */
	struct gtype *gt;       /* the new BAT entry */
	uint32_t c;             /* entries per CLAT page */
	uint32_t n1, d;         /* new levels; levels added above the old root */
	uint64_t old_root;
	uint64_t nb0, nb1;      /* the new blocks */
	uint64_t *block_gpa;    /* [nb1 - nb0]: GPAs of the new blocks */
	struct resync_report *r;
	char *err;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct rwalk *w, const char *fmt, ...)
{
	size_t n = (size_t)snprintf(w->err, MSG_LEN, "type %u (%s): ", w->gt->index,
				    w->gt->e.name);
	va_list ap;

	va_start(ap, fmt);
	if (n < MSG_LEN)
		vsnprintf(w->err + n, MSG_LEN - n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool bit(const uint64_t *bits, uint64_t words, uint64_t pfn)
{
	return pfn / 64 < words && (bits[pfn / 64] & (1ULL << (pfn % 64)));
}

static bool was_owned(const struct rwalk *w, uint64_t pfn)
{
	return bit(w->owned->bits, w->owned->words, pfn);
}

static uint64_t fresh_words(const struct gmem *g)
{
	return g->size / CLAT_PAGE_SIZE / 64 + 1;
}

static int add_claim(struct type_change *tc, uint64_t gpa, uint64_t len)
{
	if (tc->nclaims == tc->cap) {
		size_t cap = tc->cap ? tc->cap * 2 : 64;
		struct claim *c = realloc(tc->claims, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		tc->claims = c;
		tc->cap = cap;
	}
	tc->claims[tc->nclaims++] = (struct claim){ gpa, len };
	return 0;
}

/* A new page or block: aligned, inside guest memory, owned by nothing. */
static int claim_fresh(struct rwalk *w, const char *where, uint64_t gpa, uint64_t len)
{
	uint64_t pfn, words = fresh_words(w->g);

	if (gpa % CLAT_PAGE_SIZE)
		return fail(w, "%s: misaligned (not a multiple of %u)", where, CLAT_PAGE_SIZE);
	if (!gmem_ptr(w->g, gpa, len))
		return fail(w, "%s: outside guest memory (size 0x%" PRIx64 ")", where, w->g->size);
	for (pfn = gpa >> PAGE_SHIFT; pfn < (gpa + len) >> PAGE_SHIFT; pfn++) {
		if (bit(w->fresh, words, pfn))
			return fail(w, "%s: page 0x%" PRIx64 " is already used by this change "
				    "(a cycle or a shared page)", where, pfn << PAGE_SHIFT);
		if (was_owned(w, pfn))
			return fail(w, "%s: page 0x%" PRIx64 " already belongs to the attached "
				    "tables", where, pfn << PAGE_SHIFT);
	}
	for (pfn = gpa >> PAGE_SHIFT; pfn < (gpa + len) >> PAGE_SHIFT; pfn++)
		w->fresh[pfn / 64] |= 1ULL << (pfn % 64);
	return add_claim(w->tc, gpa, len);
}

/* Page at level x covering blocks [lo, lo + span * C).  Entries wholly
 * below the new blocks are the old tables' and are not read; every entry
 * that reaches a new block must be there, so the walk finds the GPA of
 * every block in [nb0, nb1). */
static int walk(struct rwalk *w, uint64_t page, uint32_t x, uint64_t lo, uint64_t span)
{
	const uint64_t *pg = gmem_ptr(w->g, page, CLAT_PAGE_SIZE);
	uint32_t c = w->c, o;
	char where[128];
	int err = 0;

	if (!pg)
		return fail(w, "level %u page at GPA 0x%" PRIx64 ": outside guest memory", x, page);
	for (o = 0; !err && o < c; o++) {
		uint64_t a = lo + o * span, v;

		if (a + span <= w->nb0)
			continue;
		v = __atomic_load_n(&pg[o], __ATOMIC_RELAXED);
		w->r->entries_read++;
		snprintf(where, sizeof(where), "level %u page at GPA 0x%" PRIx64 " entry %u -> 0x%"
			 PRIx64, x, page, o, v);
		if (a >= w->nb1) {
			if (v != CLAT_GPA_NONE)
				return fail(w, "%s: capacity mismatch: extra entry, capacity %u needs "
					    "none there", where, w->gt->e.capacity);
			continue;
		}
		if (v == CLAT_GPA_NONE)
			return fail(w, "%s: capacity mismatch: the entry is empty, capacity %u "
				    "needs it", where, w->gt->e.capacity);
		if (x == w->n1) {
			err = claim_fresh(w, where, v, w->gt->e.block_size);
			if (err)
				return err;
			w->block_gpa[a - w->nb0] = v;
			w->r->blocks_new++;
			continue;
		}
		if (a >= w->nb0 || x < w->d) {
			/* A new page, or a page of the chain above a re-rooted tree. */
			err = claim_fresh(w, where, v, CLAT_PAGE_SIZE);
			w->r->pages_new += !err;
		} else if (x == w->d) {
			if (v != w->old_root)
				err = fail(w, "%s: re-root: entry %u must lead to the old level-1 page "
					   "at GPA 0x%" PRIx64, where, o, w->old_root);
		} else if (v % CLAT_PAGE_SIZE || !gmem_ptr(w->g, v, CLAT_PAGE_SIZE) ||
			   !was_owned(w, v >> PAGE_SHIFT) ||
			   bit(w->fresh, fresh_words(w->g), v >> PAGE_SHIFT)) {
			err = fail(w, "%s: an existing entry must point at a page of the attached "
				   "tables", where);
		}
		if (!err)
			err = walk(w, v, x + 1, a, span / c);
	}
	return err;
}

/* shadow_seg_fill's block lookup: new blocks only (a new segment starts at
 * or after nb0, checked before any fill). */
static uint64_t new_block_gpa(const void *arg, uint32_t b)
{
	const struct rwalk *w = arg;

	return b >= w->nb0 && b < w->nb1 ? w->block_gpa[b - w->nb0] : CLAT_GPA_NONE;
}

/* Contexts in new blocks are checked like a full attach checks them, and a
 * bad one fails the resync (a fill would only leave it EMPTY). */
static int check_contexts(struct rwalk *w, uint32_t k)
{
	const struct clat_seg *sg = &w->gt->e.seg[k];
	uint32_t p = w->gt->per_block, i;

	for (i = 0; i < sg->size; i++) {
		uint32_t svc = sg->base + 1 + i, b = (svc - 1) / p;
		uint64_t bgpa = new_block_gpa(w, b);
		uint64_t gpa = bgpa + (uint64_t)((svc - 1) % p) * w->gt->e.ctx_size;
		const struct clat_ctx *src;
		struct clat_ctx c;
		uint64_t st;

		if (bgpa == CLAT_GPA_NONE)
			return fail(w, "new segment %u: the walk does not reach block %u (svc %u)", k,
				    b, svc);
		src = gmem_ptr(w->g, gpa, sizeof(*src));
		if (!src)
			return fail(w, "context of svc %u at GPA 0x%" PRIx64 ": outside guest memory",
				    svc, gpa);
		memcpy(&c, src, sizeof(c));
		w->r->contexts_read++;
		st = c.state_word & CLAT_SLOT_STATE_MASK;
		if (st == CLAT_SLOT_EMPTY)
			continue;
		if (st != CLAT_SLOT_LIVE && st != CLAT_SLOT_RELEASED)
			return fail(w, "context of svc %u at GPA 0x%" PRIx64 ": slot state %" PRIu64
				    " in a new block", svc, gpa, st);
		if (c.svc != svc || c.type != w->gt->index)
			return fail(w, "context of svc %u at GPA 0x%" PRIx64 " claims svc %u type %u",
				    svc, gpa, c.svc, c.type);
	}
	return 0;
}

/* Checks each new segment's contexts, then fills a STAGED pool extent for
 * it from the walk's blocks.  Nothing is visible yet. */
static int build_segments(struct rwalk *w, const struct clat_maps *m, const struct pool *pool,
			  struct type_change *tc, uint32_t fn)
{
	const struct clat_bat_entry *e = &tc->gt.e;
	uint32_t k, first, end;
	uint64_t live, read;
	int err = 0;

	for (k = tc->first_new; k < e->nsegs; k++) {
		gseg_blocks(tc->gt.per_block, &e->seg[k], &first, &end);
		if (first < w->nb0)
			return fail(w, "new segment %u (services %u..%" PRIu64 ") reaches into blocks "
				    "that existed before: new services start at %" PRIu64, k,
				    e->seg[k].base + 1, (uint64_t)e->seg[k].base + e->seg[k].size,
				    w->nb0 * tc->gt.per_block + 1);
		err = check_contexts(w, k);
		if (err)
			return err;
	}
	for (k = tc->first_new; !err && k < e->nsegs; k++) {
		live = read = 0;
		tc->tried |= 1U << k;
		err = shadow_seg_fill(m, pool, fn, w->g, NULL, e, tc->gt.index, tc->gt.per_block, k,
				      new_block_gpa, w, &tc->seg[k], &live, &read);
		if (err) {
			snprintf(w->err, MSG_LEN, "type %u (%s): new segment %u: %s", tc->gt.index,
				 e->name, k, err == -ENOSPC ? "no room in the context pool" :
				 strerror(-err));
			break;
		}
		w->r->live += live;
		w->r->segments_added++;
	}
	return err;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* What may change in a type the device already shadows: only segments
 * appended, with the capacity, levels and root that come with them.  The
 * segments already shadowed are the old entry's: some may have been folded
 * off the device since, so the live bits do not count them. */
static int check_growth(struct rwalk *w, struct type_change *tc,
			const struct clat_type_desc *td)
{
	const struct clat_bat_entry *e = &tc->gt.e, *old = &tc->old;
	uint32_t n = old->nsegs, k;

	if (e->ctx_size != old->ctx_size || e->block_size != old->block_size ||
	    e->clat_entries != old->clat_entries || e->hash_seed != old->hash_seed ||
	    e->proto_mask != old->proto_mask)
		return fail(w, "context size, block size, entries per page, hash seed or protocols "
			    "changed: a live type only grows (detach and attach again to change "
			    "them)");
	if (!td->proto_mask)
		return fail(w, "the type was shadowed but is not on the device: detach and attach "
			    "again");
	if (n > CLAT_MAX_SEGMENTS)
		return fail(w, "%u capacity segments recorded for the device: detach and attach "
			    "again", n);
	if (e->nsegs < n)
		return fail(w, "%u capacity segments, the device shadowed %u: a segment is never "
			    "removed", e->nsegs, n);
	for (k = 0; k < n; k++) {
		bool live = td->seg_state & (1U << k);
		uint32_t base = live ? td->seg[k].base : old->seg[k].base;
		uint32_t size = live ? td->seg[k].size : old->seg[k].size;

		if (base != e->seg[k].base || size != e->seg[k].size)
			return fail(w, "segment %u is services %u..%" PRIu64 " in the BAT but %u..%"
				    PRIu64 " %s: a %s segment never changes", k, e->seg[k].base + 1,
				    (uint64_t)e->seg[k].base + e->seg[k].size, base + 1,
				    (uint64_t)base + size, live ? "on the device" : "when shadowed",
				    live ? "live" : "shadowed");
	}
	tc->first_new = n;
	if (e->nsegs == n) {
		if (e->capacity != old->capacity || e->levels != old->levels ||
		    e->clat_gpa != old->clat_gpa)
			return fail(w, "capacity, levels or root changed without a new segment");
		return 0;
	}
	if (e->capacity <= old->capacity || e->levels < old->levels)
		return fail(w, "a new segment, but capacity %u -> %u and levels %u -> %u do not "
			    "grow", old->capacity, e->capacity, old->levels, e->levels);
	if (e->levels == old->levels && e->clat_gpa != old->clat_gpa)
		return fail(w, "clat_gpa moved from 0x%" PRIx64 " to 0x%" PRIx64 " without a new "
			    "level", (uint64_t)old->clat_gpa, (uint64_t)e->clat_gpa);
	w->d = e->levels - old->levels;
	w->old_root = old->clat_gpa;
	w->nb0 = div_up(old->capacity, tc->gt.per_block);
	tc->active = true;
	return 0;
}

static int prepare_type(struct rwalk *w, const struct clat_maps *m, const struct pool *pool,
			uint32_t fn, const struct clat_fn_desc *desc, struct type_change *tc)
{
	uint32_t key = fn * CLAT_MAX_TYPES + tc->gt.index, x;
	uint64_t span = 1;
	char where[64];
	int err;

	err = gtype_check_entry(w->g, &tc->gt, w->err, MSG_LEN);
	if (err)
		return err;
	if (bpf_map_lookup_elem(m->guest_types, &key, &tc->old))
		return -errno;
	w->gt = &tc->gt;
	w->tc = tc;
	w->n1 = tc->gt.e.levels;
	if (tc->old.nsegs) {
		err = check_growth(w, tc, &desc->type[tc->gt.index]);
		if (err || !tc->active)
			return err;
	} else {
		if (desc->type[tc->gt.index].proto_mask)
			return fail(w, "a new type in the BAT, but the device already serves one "
				    "there: detach and attach again");
		tc->active = tc->added = true;
		tc->first_new = 0;
		w->d = w->n1;
	}
	w->c = tc->gt.e.clat_entries;
	w->nb1 = div_up(tc->gt.e.capacity, tc->gt.per_block);
	w->block_gpa = calloc(w->nb1 - w->nb0, sizeof(uint64_t));
	if (!w->block_gpa)
		return -ENOMEM;
	snprintf(where, sizeof(where), "clat_gpa 0x%" PRIx64, (uint64_t)tc->gt.e.clat_gpa);
	if (w->d) {
		err = claim_fresh(w, where, tc->gt.e.clat_gpa, CLAT_PAGE_SIZE);
		w->r->pages_new += !err;
	}
	for (x = 1; x < w->n1; x++)
		span *= w->c;
	if (!err)
		err = walk(w, tc->gt.e.clat_gpa, 1, 0, span);
	if (!err)
		err = build_segments(w, m, pool, tc, fn);
	free(w->block_gpa);
	w->block_gpa = NULL;
	w->r->types_grown += !err && !tc->added;
	w->r->types_added += !err && tc->added;
	return err;
}

static int read_bat(const struct gmem *g, uint64_t bat_gpa, struct clat_bat_hdr *h,
		    struct clat_bat_entry *e, char *err)
{
	const void *p = gmem_ptr(g, bat_gpa, sizeof(*h));

	if (!p)
		return snprintf(err, MSG_LEN, "BAT at GPA 0x%" PRIx64 ": outside guest memory",
				bat_gpa), -EINVAL;
	memcpy(h, p, sizeof(*h));
	if (h->magic != CLAT_BAT_MAGIC || h->version != CLAT_BAT_VERSION ||
	    h->ntypes < 1 || h->ntypes > CLAT_MAX_TYPES)
		return snprintf(err, MSG_LEN, "BAT at GPA 0x%" PRIx64 ": bad magic, version or "
				"ntypes (0x%08x, %u, %u)", bat_gpa, h->magic, h->version,
				h->ntypes), -EINVAL;
	p = gmem_ptr(g, bat_gpa + sizeof(*h), (uint64_t)h->ntypes * sizeof(*e));
	if (!p)
		return snprintf(err, MSG_LEN, "BAT at GPA 0x%" PRIx64 ": entries past guest memory",
				bat_gpa), -EINVAL;
	memcpy(e, p, h->ntypes * sizeof(*e));
	return 0;
}

int guest_resync(const struct clat_maps *m, const char *dir, uint32_t fn,
		 struct resync_report *r)
{
	struct type_change tc[CLAT_MAX_TYPES];
	struct clat_bat_entry e[CLAT_MAX_TYPES];
	struct clat_guest_info gi = {};
	struct shadow_owned owned = { .fd = -1 };
	struct clat_fn_desc desc;
	struct pool pool = {};
	struct clat_bat_hdr h;
	struct rwalk w = {};
	char msg[MSG_LEN] = "";
	struct gmem g;
	uint32_t i, folded = 0;
	int err;

	memset(r, 0, sizeof(*r));
	memset(tc, 0, sizeof(tc));
	if (fn >= CLAT_MAX_FN || bpf_map_lookup_elem(m->guests, &fn, &gi) || !gi.bat_gpa) {
		pr_err("fn %u has no guest tables attached", fn);
		return -ENOENT;
	}
	r->gen_from = r->gen_to = gi.generation;
	err = gmem_reopen(&gi, false, &g);
	if (err)
		return err;
	err = read_bat(&g, gi.bat_gpa, &h, e, msg);
	if (!err && h.generation == gi.generation)
		goto out; /* nothing changed */
	r->gen_to = h.generation;
	if (!err && h.ntypes < gi.ntypes) {
		snprintf(msg, sizeof(msg), "the BAT has %u types, the device serves %u: a live "
			 "type is never removed", h.ntypes, gi.ntypes);
		err = -EINVAL;
	}
	if (!err && shadow_owned_open(dir, fn, &owned)) {
		snprintf(msg, sizeof(msg), "no page-ownership map for fn %u (attached by an older "
			 "clat-load?): detach and attach again", fn);
		err = -ENOENT;
	}
	if (!err && bpf_map_lookup_elem(m->fn_desc, &fn, &desc))
		err = -errno;
	if (!err)
		err = pool_map(m, &pool);
	w = (struct rwalk){ .g = &g, .owned = &owned, .r = r, .err = msg };
	w.fresh = err ? NULL : calloc(fresh_words(&g), sizeof(uint64_t));
	if (!err && !w.fresh)
		err = -ENOMEM;
	for (i = 0; !err && i < h.ntypes; i++) {
		tc[i].gt.index = i;
		tc[i].gt.e = e[i];
		w.nb0 = w.d = 0;
		w.old_root = 0;
		err = prepare_type(&w, m, &pool, fn, &desc, &tc[i]);
	}
	if (!err)
		err = resync_publish(m, fn, tc, h.ntypes, w.owned, &gi, h.ntypes, h.generation);
	/* All or nothing: what was staged and not published goes back. */
	for (i = 0; i < CLAT_MAX_TYPES; i++)
		resync_free_staged(m, fn, &tc[i]);
	/* A guest that grew stops paying for the segments it drained. */
	if (!err && shadow_fold(m, fn, &folded))
		pr_err("fn %u: resynced, but folding drained segments failed; the next gc or "
		       "resync tries again", fn);
	r->segments_folded = folded;
out:
	if (err && msg[0])
		pr_err("failed to resync fn %u from %s (generation %u -> %u): %s; the device keeps "
		       "serving generation %u", fn, gi.mem_path, r->gen_from, r->gen_to, msg,
		       r->gen_from);
	else if (err)
		pr_err("failed to resync fn %u: %s", fn, strerror(-err));
	for (i = 0; i < CLAT_MAX_TYPES; i++)
		free(tc[i].claims);
	free(w.fresh);
	pool_unmap(&pool);
	shadow_owned_close(&owned);
	gmem_close(&g);
	return err;
}

/* The BAT's generation, read with one pread: polled every second or so for
 * every attached guest, so no mapping of the whole file. */
static int bat_generation(const char *path, uint64_t bat_gpa, uint32_t *gen)
{
	struct clat_bat_hdr h = { 0 };
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, &h, sizeof(h), (off_t)bat_gpa) != (ssize_t)sizeof(h))
		err = -EIO;
	close(fd);
	*gen = h.generation;
	return err ? err : (h.magic == CLAT_BAT_MAGIC ? 0 : -EINVAL);
}

int guest_resync_changed(const struct clat_maps *m, const char *dir, uint32_t *resynced)
{
	struct clat_guest_info gi;
	struct resync_report r;
	uint32_t fn, gen = 0;
	int err, first = 0;

	*resynced = 0;
	for (fn = 0; fn < CLAT_MAX_FN; fn++) {
		if (bpf_map_lookup_elem(m->guests, &fn, &gi) || !gi.bat_gpa ||
		    bat_generation(gi.mem_path, gi.bat_gpa, &gen) || gen == gi.generation)
			continue;
		err = guest_resync(m, dir, fn, &r);
		if (!err) {
			pr_info("fn %u: resynced generation %u -> %u: %u segments and %u types "
				"added, %u segments folded, %" PRIu64 " CLAT entries read", fn,
				r.gen_from, r.gen_to, r.segments_added, r.types_added,
				r.segments_folded, r.entries_read);
			(*resynced)++;
		} else if (!first) {
			first = err;
		}
	}
	return first;
}
