// SPDX-License-Identifier: GPL-2.0
/* The mapped view of a fn's contexts in the pool, gc's release, folding of
 * drained segments, and the write-back of contexts into guest memory. */
#include "writeback.h"
#include "common.h"
#include "maps.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <bpf/bpf.h>

int shadow_view_open(const struct clat_maps *m, uint32_t fn, uint32_t type, struct shadow_view *v)
{
	uint32_t key = fn * CLAT_MAX_TYPES + type, k;
	struct clat_fn_desc d;
	int err;

	memset(v, 0, sizeof(*v));
	if (fn >= CLAT_MAX_FN || type >= CLAT_MAX_TYPES || bpf_map_lookup_elem(m->fn_desc, &fn, &d) ||
	    !d.type[type].proto_mask || bpf_map_lookup_elem(m->guest_types, &key, &v->e))
		return -ENOENT;
	v->td = d.type[type];
	err = pool_map(m, &v->pool);
	if (err)
		return err;
	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		const struct clat_dev_seg *sg = &v->td.seg[k];

		if (!(v->td.seg_state & (1U << k)))
			continue;
		if ((uint64_t)sg->first_bucket + sg->nbuckets > v->pool.nbuckets ||
		    (uint64_t)sg->nbuckets * CLAT_BUCKET_SLOTS < sg->size) {
			shadow_view_close(v);
			return -EINVAL;
		}
		v->seg[k] = (struct shadow_seg_view){
			.ctx = &v->pool.ctx[(size_t)sg->first_bucket * CLAT_BUCKET_SLOTS],
			.n = sg->size,
			.first_bucket = sg->first_bucket,
		};
		v->live |= 1U << k;
	}
	return 0;
}

void shadow_view_close(struct shadow_view *v)
{
	pool_unmap(&v->pool);
	memset(v->seg, 0, sizeof(v->seg));
	v->live = 0;
}

struct clat_ctx *shadow_view_ctx(const struct shadow_view *v, uint32_t svc, uint32_t *seg)
{
	uint32_t k;

	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		const struct clat_dev_seg *sg = &v->td.seg[k];

		if (!(v->live & (1U << k)) || svc <= sg->base || svc - sg->base > v->seg[k].n)
			continue;
		if (seg)
			*seg = k;
		return &v->seg[k].ctx[svc - 1 - sg->base];
	}
	return NULL;
}

static void mark_dirty(const struct pool *p, uint32_t bucket)
{
	__atomic_fetch_or(&p->dirty[bucket / 64], 1ULL << (bucket % 64), __ATOMIC_SEQ_CST);
}

bool shadow_view_release(struct shadow_view *v, uint32_t k, uint32_t i)
{
	struct clat_ctx *c = &v->seg[k].ctx[i];
	uint64_t sw = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE);
	uint64_t rel = (sw & ~CLAT_SLOT_STATE_MASK) | CLAT_SLOT_RELEASED;
	uint32_t b = v->seg[k].first_bucket + i / CLAT_BUCKET_SLOTS;

	if ((sw & CLAT_SLOT_STATE_MASK) != CLAT_SLOT_LIVE ||
	    !__atomic_compare_exchange_n(&c->state_word, &sw, rel, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return false;
	/* Released first, then the tag: no claim takes a slot still LIVE. */
	__atomic_store_n(&v->pool.meta[b].tag[i % CLAT_BUCKET_SLOTS], CLAT_TAG_FREE,
			 __ATOMIC_RELEASE);
	mark_dirty(&v->pool, b);
	return true;
}

static bool seg_drained(const struct shadow_view *v, uint32_t k)
{
	uint32_t i;

	for (i = 0; i < v->seg[k].n; i++) {
		uint64_t st = __atomic_load_n(&v->seg[k].ctx[i].state_word, __ATOMIC_ACQUIRE) &
			      CLAT_SLOT_STATE_MASK;

		if (st == CLAT_SLOT_LIVE || st == CLAT_SLOT_CLAIMING)
			return false;
	}
	return true;
}

int shadow_fold(const struct clat_maps *m, uint32_t fn, uint32_t *folded)
{
	uint32_t t, k, newest, gone[CLAT_MAX_TYPES] = { 0 }, any = 0;
	struct clat_fn_desc d;
	struct shadow_view v;
	int err;

	*folded = 0;
	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		if (shadow_view_open(m, fn, t, &v))
			continue;
		newest = (v.td.seg_state >> CLAT_SEG_NEWEST_SHIFT) & (CLAT_MAX_SEGMENTS - 1);
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++)
			if (k != newest && (v.live & (1U << k)) && seg_drained(&v, k))
				gone[t] |= 1U << k;
		any |= gone[t];
		shadow_view_close(&v);
	}
	if (!any)
		return 0;
	/* Only the live bits change: a datapath run that reads the old word
	 * or the new one finds the same segments' entries either way. */
	if (bpf_map_lookup_elem(m->fn_desc, &fn, &d))
		return -errno;
	for (t = 0; t < CLAT_MAX_TYPES; t++)
		d.type[t].seg_state &= ~gone[t];
	if (bpf_map_update_elem(m->fn_desc, &fn, &d, BPF_ANY))
		return -errno;
	err = pool_quiesce();
	if (!err)
		err = pool_lock(m);
	if (err)
		return err; /* the next reclaim frees them */
	for (t = 0; t < CLAT_MAX_TYPES; t++)
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++)
			if (gone[t] & (1U << k)) {
				pool_free(m, clat_extent_key(fn, t, k));
				(*folded)++;
			}
	pool_unlock(m);
	return 0;
}

/* ---- Write-back ------------------------------------------------------------ */

/* A CLAIMING slot settles within a few stores of another CPU. */
static uint64_t settled_state(const struct clat_ctx *c)
{
	uint64_t sw = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE);
	int i;

	for (i = 0; i < 100000 && (sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_CLAIMING; i++)
		sw = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE);
	return sw;
}

void gpa_list_free(struct gpa_list *l)
{
	free(l->gpa);
	free(l->len);
	*l = (struct gpa_list){ 0 };
}

static int add_block(struct gpa_list *l, uint64_t gpa, uint32_t len)
{
	if (!l || (l->n && l->gpa[l->n - 1] == gpa))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		uint64_t *v = realloc(l->gpa, cap * sizeof(*v));
		uint32_t *w;

		if (!v)
			return -ENOMEM;
		l->gpa = v;
		w = realloc(l->len, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		l->len = w;
		l->cap = cap;
	}
	l->gpa[l->n] = gpa;
	l->len[l->n++] = len;
	return 0;
}

struct sync_arg {
	const struct gmem *g;
	const struct gtype *gt;
	const struct shadow_seg_view *sv;
	uint32_t base;
	uint64_t *written, *bytes;
	struct gpa_list *blocks;
};

/* Copies the LIVE and RELEASED contexts of local bucket j to guest memory. */
static int sync_bucket(const struct sync_arg *a, uint32_t j)
{
	uint32_t i, end = (j + 1) * CLAT_BUCKET_SLOTS, p = a->gt->per_block;

	for (i = j * CLAT_BUCKET_SLOTS; i < end && i < a->sv->n; i++) {
		uint32_t svc = a->base + 1 + i, b = (svc - 1) / p;
		uint64_t sw = settled_state(&a->sv->ctx[i]) & CLAT_SLOT_STATE_MASK;
		struct clat_ctx *dst;

		if (sw == CLAT_SLOT_EMPTY || sw == CLAT_SLOT_CLAIMING || b >= a->gt->nblocks)
			continue;
		dst = gmem_ptr(a->g, a->gt->block_gpa[b] + (uint64_t)((svc - 1) % p) *
					     a->gt->e.ctx_size, sizeof(*dst));
		if (!dst)
			return -EFAULT;
		memcpy(dst, &a->sv->ctx[i], sizeof(*dst));
		(*a->written)++;
		*a->bytes += sizeof(*dst);
		if (add_block(a->blocks, a->gt->block_gpa[b], a->gt->e.block_size))
			return -ENOMEM;
	}
	return 0;
}

/* One segment.  A bucket's mark is cleared before its copy, so a write
 * racing with the copy marks it again.  Marks are found a word (64
 * buckets) at a time: a stop-copy reads the few set words, not the
 * buckets. */
static int sync_seg(const struct pool *p, enum sync_mode mode, struct sync_arg *a)
{
	uint32_t first = a->sv->first_bucket, nb = clat_seg_buckets(a->sv->n), b, w;
	int err = 0;

	if (mode == SYNC_ALL || mode == SYNC_ALL_CLEAR) {
		for (b = first; mode == SYNC_ALL_CLEAR && b < first + nb; b++)
			__atomic_fetch_and(&p->dirty[b / 64], ~(1ULL << (b % 64)), __ATOMIC_SEQ_CST);
		for (b = 0; !err && b < nb; b++)
			err = sync_bucket(a, b);
		return err;
	}
	for (w = first / 64; !err && w <= (first + nb - 1) / 64; w++) {
		uint64_t mine = ~0ULL, got;

		if (w == first / 64)
			mine &= ~0ULL << (first % 64);
		if (w == (first + nb - 1) / 64 && (first + nb) % 64)
			mine &= ~0ULL >> (64 - (first + nb) % 64);
		if (!(__atomic_load_n(&p->dirty[w], __ATOMIC_RELAXED) & mine))
			continue;
		got = __atomic_fetch_and(&p->dirty[w], ~mine, __ATOMIC_SEQ_CST) & mine;
		while (!err && got) {
			b = w * 64 + (uint32_t)__builtin_ctzll(got);
			got &= got - 1;
			err = sync_bucket(a, b - first);
		}
	}
	return err;
}

/* The device's live segments must be some of the guest's, unchanged. */
static bool view_matches(const struct shadow_view *v, const struct gtype *gt)
{
	uint32_t k;

	if (v->e.ctx_size != gt->e.ctx_size || v->e.block_size != gt->e.block_size)
		return false;
	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		if (!(v->live & (1U << k)))
			continue;
		if (k >= gt->e.nsegs || v->td.seg[k].base != gt->e.seg[k].base ||
		    v->td.seg[k].size != gt->e.seg[k].size)
			return false;
	}
	return true;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Maps the guest's data writable now, one call per extent, so that a
 * migration's stop-copy, inside the pause, takes no page fault: under
 * virtualization a fault costs microseconds.  Holes stay holes. */
static void prefault_write(const struct gmem *g)
{
	struct gmem_data d;
	uint64_t i;

	if (gmem_data_scan(g, &d))
		return;
	for (i = 0; !d.all_data && i < d.n; i++)
		madvise(g->base + d.ext[i][0], d.ext[i][1] - d.ext[i][0], MADV_POPULATE_WRITE);
	gmem_data_free(&d);
}

int shadow_writeback_open(const struct clat_maps *m, uint32_t fn, struct shadow_writeback *wb)
{
	char err_msg[256];
	uint32_t i;
	int err;

	memset(wb, 0, sizeof(*wb));
	wb->m = m;
	wb->fn = fn;
	if (fn >= CLAT_MAX_FN || bpf_map_lookup_elem(m->guests, &fn, &wb->gi) || !wb->gi.bat_gpa) {
		pr_err("fn %u has no guest tables attached", fn);
		return -ENOENT;
	}
	err = gmem_reopen(&wb->gi, true, &wb->g);
	if (err)
		return err;
	err = gtables_load(&wb->g, wb->gi.bat_gpa, &wb->t, err_msg, sizeof(err_msg));
	if (err) {
		pr_err("failed to sync fn %u: guest tables in %s are no longer valid: %s", fn,
		       wb->gi.mem_path, err_msg);
		gmem_close(&wb->g);
		return err;
	}
	wb->loaded = true;
	prefault_write(&wb->g);
	test_stall("sync_validated"); /* tests shrink the file here */
	if (wb->t.hdr.generation != wb->gi.generation) {
		pr_err("failed to sync fn %u: guest tables changed (generation %u, attached %u); "
		       "run 'guest resync' first", fn, wb->t.hdr.generation, wb->gi.generation);
		err = -ESTALE;
	}
	for (i = 0; !err && i < wb->t.ntypes; i++) {
		err = shadow_view_open(m, fn, wb->t.types[i].index, &wb->v[i]);
		if (!err && !view_matches(&wb->v[i], &wb->t.types[i]))
			err = -ESTALE;
		if (err)
			pr_err("failed to sync fn %u type %u: %s", fn, wb->t.types[i].index,
			       strerror(-err));
	}
	if (err)
		shadow_writeback_close(wb);
	return err;
}

/* What the tables were validated as must still be what the guest and the
 * device serve: one read of the BAT header and one map lookup. */
int shadow_writeback_check(const struct shadow_writeback *wb)
{
	const struct clat_bat_hdr *h = gmem_ptr(&wb->g, wb->gi.bat_gpa, sizeof(*h));
	struct clat_guest_info gi = {};
	uint32_t fn = wb->fn;

	if (bpf_map_lookup_elem(wb->m->guests, &fn, &gi) || gi.bat_gpa != wb->gi.bat_gpa ||
	    gi.generation != wb->gi.generation) {
		pr_err("failed to sync fn %u: its guest tables were detached or resynced meanwhile",
		       fn);
		return -ESTALE;
	}
	if (h && h->generation != wb->gi.generation) {
		pr_err("failed to sync fn %u: guest tables changed (generation %u, attached %u); "
		       "run 'guest resync' first", fn, h->generation, wb->gi.generation);
		return -ESTALE;
	}
	return 0;
}

int shadow_writeback_round(struct shadow_writeback *wb, enum sync_mode mode, uint64_t *written,
			   uint64_t *bytes, struct gpa_list *blocks)
{
	uint32_t i, k;
	int err;

	*written = *bytes = 0;
	err = shadow_writeback_check(wb);
	for (i = 0; !err && i < wb->t.ntypes; i++) {
		const struct gtype *gt = &wb->t.types[i];

		for (k = 0; !err && k < CLAT_MAX_SEGMENTS; k++) {
			struct sync_arg a = { &wb->g, gt, &wb->v[i].seg[k], wb->v[i].td.seg[k].base,
					      written, bytes, blocks };

			if (wb->v[i].live & (1U << k))
				err = sync_seg(&wb->v[i].pool, mode, &a);
		}
		if (err)
			pr_err("failed to sync fn %u type %u: %s", wb->fn, gt->index,
			       strerror(-err));
	}
	if (gmem_shrunk(&wb->g)) { /* some accesses landed on a zero page */
		pr_err("failed to sync fn %u: guest memory %s shrank while being written", wb->fn,
		       wb->gi.mem_path);
		err = -EIO;
	}
	return err;
}

void shadow_writeback_close(struct shadow_writeback *wb)
{
	uint32_t i;

	for (i = 0; i < CLAT_MAX_TYPES; i++)
		shadow_view_close(&wb->v[i]);
	if (wb->loaded) {
		gtables_free(&wb->t);
		gmem_close(&wb->g);
	}
	wb->loaded = false;
}

int shadow_sync(const struct clat_maps *m, uint32_t fn, enum sync_mode mode, uint64_t *written,
		uint64_t *bytes, struct gpa_list *blocks)
{
	struct shadow_writeback wb;
	int err;

	*written = *bytes = 0;
	err = shadow_writeback_open(m, fn, &wb);
	if (err)
		return err;
	err = shadow_writeback_round(&wb, mode, written, bytes, blocks);
	shadow_writeback_close(&wb);
	return err;
}
