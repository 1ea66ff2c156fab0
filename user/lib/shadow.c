// SPDX-License-Identifier: GPL-2.0
/* Device-side shadow of guest tables: build into pool extents, publish,
 * remove.  The view and the write-back are in writeback.c. */
#include "shadow.h"
#include "common.h"
#include "vct.h"
#include "maps.h"
#include "owned.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static uint32_t type_key(uint32_t fn, uint32_t t)
{
	return fn * CLAT_MAX_TYPES + t;
}

/* Copies one context record out of guest memory once, then checks the copy:
 * the guest may rewrite its memory after gtables_load validated it, and a
 * planted CLAIMING slot or a LIVE one outside its flow's buckets would be
 * a context the datapath can never find or free.  Anything but a
 * self-consistent LIVE or RELEASED record becomes EMPTY on the device. */
bool shadow_take_ctx(struct clat_ctx *dst, const struct clat_ctx *src, uint32_t svc,
		     uint32_t type, uint32_t fn, uint32_t seed, uint32_t nbuckets, uint32_t b,
		     uint16_t *tag)
{
	struct clat_ctx c;
	uint64_t st, h;

	memcpy(&c, src, sizeof(c));
	*tag = CLAT_TAG_FREE;
	st = c.state_word & CLAT_SLOT_STATE_MASK;
	if ((st != CLAT_SLOT_LIVE && st != CLAT_SLOT_RELEASED) || c.svc != svc || c.type != type)
		goto empty;
	c.fn = (__u16)fn;
	c.state_word = st;
	if (st == CLAT_SLOT_LIVE) {
		h = clat_flow_hash(seed, &c.key);
		if (clat_bucket_of(h, 0, nbuckets) != b && clat_bucket_of(h, 1, nbuckets) != b)
			goto empty;
		*tag = clat_tag_of(h);
		c.state_word |= (uint64_t)*tag << CLAT_SLOT_TAG_SHIFT;
	}
	*dst = c;
	return true;
empty:
	memset(dst, 0, sizeof(*dst));
	return false;
}

/* ---- Filling an extent from guest memory ------------------------------------ */

struct fill {
	const struct gmem *g;
	const struct gmem_data *data;   /* may be NULL: read every block */
	const struct clat_bat_entry *e;
	uint32_t per_block, type, fn, nbuckets;
	shadow_gpa_fn block_gpa;
	const void *arg;
	uint64_t *live, *read;
};

/* Slot i of the segment (service base + 1 + i) into dst, its tag into *tag. */
static int fill_slot(const struct fill *f, uint32_t base, uint32_t i, struct clat_ctx *dst,
		     uint16_t *tag)
{
	uint32_t svc = base + 1 + i, blk = (svc - 1) / f->per_block;
	uint64_t bgpa = f->block_gpa(f->arg, blk);
	uint64_t gpa = bgpa + (uint64_t)((svc - 1) % f->per_block) * f->e->ctx_size;
	const struct clat_ctx *src;

	*tag = CLAT_TAG_FREE;
	/* Blocks in holes of a sparse file hold only EMPTY contexts: not read
	 * (reading would make the kernel allocate and zero page cache). */
	if (f->data && gmem_data_hole(f->data, bgpa, f->e->block_size)) {
		memset(dst, 0, sizeof(*dst));
		return 0;
	}
	src = gmem_ptr(f->g, gpa, sizeof(*src));
	if (!src)
		return -EFAULT; /* validated before: the file shrank */
	(*f->read)++;
	if ((src->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_EMPTY) {
		memset(dst, 0, sizeof(*dst));
		return 0;
	}
	if (shadow_take_ctx(dst, src, svc, f->type, f->fn, f->e->hash_seed, f->nbuckets,
			    i / CLAT_BUCKET_SLOTS, tag))
		*f->live += *tag != CLAT_TAG_FREE;
	return 0;
}

/* The contexts of one guest block that lie in the segment, [first, end)
 * of the extent's slots, taken from guest memory.  The extent was zeroed:
 * only what is not EMPTY in the guest is written. */
static int fill_block(const struct fill *f, const struct pool *p, const struct clat_dev_seg *sg,
		      uint32_t first, uint32_t end)
{
	uint32_t svc = sg->base + 1 + first, e0 = (svc - 1) % f->per_block, i;
	uint64_t bgpa = f->block_gpa(f->arg, (svc - 1) / f->per_block);
	const uint8_t *src;

	/* Blocks in holes of a sparse file hold only EMPTY contexts: not read
	 * (reading would make the kernel allocate and zero page cache). */
	if (f->data && gmem_data_hole(f->data, bgpa, f->e->block_size))
		return 0;
	src = gmem_ptr(f->g, bgpa + (uint64_t)e0 * f->e->ctx_size,
		       (uint64_t)(end - first - 1) * f->e->ctx_size + sizeof(struct clat_ctx));
	if (!src)
		return -EFAULT; /* validated before: the file shrank */
	*f->read += end - first;
	for (i = first; i < end; i++, src += f->e->ctx_size) {
		const struct clat_ctx *c = (const struct clat_ctx *)src;
		uint32_t b = sg->first_bucket + i / CLAT_BUCKET_SLOTS;
		uint16_t tag;

		if ((c->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_EMPTY)
			continue;
		if (shadow_take_ctx(&p->ctx[(size_t)sg->first_bucket * CLAT_BUCKET_SLOTS + i], c,
				    sg->base + 1 + i, f->type, f->fn, f->e->hash_seed, f->nbuckets,
				    i / CLAT_BUCKET_SLOTS, &tag) && tag != CLAT_TAG_FREE) {
			p->meta[b].tag[i % CLAT_BUCKET_SLOTS] = tag;
			(*f->live)++;
		}
	}
	return 0;
}

/* The extent is zeroed in one pass (a reused one holds another fn's
 * contexts), the slots past the segment fenced, then the guest's blocks
 * are read one at a time. */
static int fill_extent(const struct fill *f, const struct pool *p, const struct clat_dev_seg *sg)
{
	uint32_t n = sg->nbuckets * CLAT_BUCKET_SLOTS, i, end;
	int err = 0;

	memset(&p->ctx[(size_t)sg->first_bucket * CLAT_BUCKET_SLOTS], 0,
	       (size_t)n * sizeof(struct clat_ctx));
	for (i = sg->size; i < n; i++)
		p->meta[sg->first_bucket + i / CLAT_BUCKET_SLOTS].tag[i % CLAT_BUCKET_SLOTS] =
			CLAT_TAG_FENCE;
	for (i = 0; !err && i < sg->size; i = end) {
		uint32_t e0 = (sg->base + i) % f->per_block;

		end = i + (f->per_block - e0);
		if (end > sg->size)
			end = sg->size;
		err = fill_block(f, p, sg, i, end);
	}
	return err;
}

int shadow_seg_fill(const struct clat_maps *m, const struct pool *p, uint32_t fn,
		    const struct gmem *g, const struct gmem_data *data,
		    const struct clat_bat_entry *e, uint32_t type, uint32_t per_block, uint32_t k,
		    shadow_gpa_fn block_gpa, const void *arg, struct clat_dev_seg *sg,
		    uint64_t *live, uint64_t *read)
{
	struct fill f = { g, data, e, per_block, type, fn, 0, block_gpa, arg, live, read };
	uint32_t key = clat_extent_key(fn, type, k);
	int err;

	*sg = (struct clat_dev_seg){ .base = e->seg[k].base, .size = e->seg[k].size,
				     .nbuckets = clat_seg_buckets(e->seg[k].size) };
	f.nbuckets = sg->nbuckets;
	err = pool_lock(m);
	if (err)
		return err;
	err = pool_reclaim_locked(m);
	if (err >= 0)
		err = pool_alloc_locked(m, p, key, sg->nbuckets, &sg->first_bucket);
	pool_unlock(m);
	test_stall("pool_staged"); /* crash tests: an extent STAGED by a process that dies */
	if (!err)
		err = fill_extent(&f, p, sg);
	return err;
}

/* ---- Block index, for a migration's reload -------------------------------- */

/* Slot of a block GPA in the index (a power-of-two table, linear probes). */
static size_t block_slot(uint64_t gpa, size_t mask)
{
	return (size_t)(((gpa / CLAT_PAGE_SIZE) * 0x9e3779b97f4a7c15ULL) >> 20) & mask;
}

/* Every staged block by GPA, built before a migration's pause so that the
 * reload inside it costs O(delta), whatever the table size: a hash table at
 * most half full, so a lookup is about one cache miss. */
static int index_blocks(struct shadow_stage *st, const struct gtables *t)
{
	uint32_t i, k, b, first, end;
	size_t n = 0, size = 16, j;

	for (i = 0; i < t->ntypes; i++)
		n += t->types[i].nblocks;
	while (size < 2 * n)
		size *= 2;
	st->blocks = calloc(size, sizeof(*st->blocks));
	if (!st->blocks)
		return -ENOMEM;
	st->block_mask = size - 1;
	for (i = 0; i < t->ntypes; i++) {
		const struct gtype *gt = &t->types[i];

		for (k = 0; k < gt->e.nsegs; k++) {
			gseg_blocks(gt->per_block, &gt->e.seg[k], &first, &end);
			for (b = first; b < end && b < gt->nblocks; b++) {
				/* GPA 0 is never a block (CLAT_GPA_NONE): it marks a free slot. */
				for (j = block_slot(gt->block_gpa[b], st->block_mask); st->blocks[j].gpa;)
					j = (j + 1) & st->block_mask;
				st->blocks[j] = (struct shadow_block){
					.gpa = gt->block_gpa[b], .block = b, .type = i, .seg = k
				};
			}
		}
	}
	return 0;
}

static const struct shadow_block *find_block(const struct shadow_stage *st, uint64_t gpa)
{
	size_t j;

	if (!st->blocks || gpa == CLAT_GPA_NONE)
		return NULL;
	for (j = block_slot(gpa, st->block_mask); st->blocks[j].gpa; j = (j + 1) & st->block_mask)
		if (st->blocks[j].gpa == gpa)
			return &st->blocks[j];
	return NULL;
}

/* ---- Stage, commit, remove -------------------------------------------------- */

static uint64_t gtype_block_gpa(const void *arg, uint32_t b)
{
	const struct gtype *gt = arg;

	return b < gt->nblocks ? gt->block_gpa[b] : CLAT_GPA_NONE;
}

/* Frees extents of fn: those of a stage that never went live (staged_only),
 * or every LIVE one after the datapath stopped seeing them. */
static void free_extents(const struct clat_maps *m, uint32_t fn, bool staged_only)
{
	uint32_t t, k, key;
	struct clat_extent e;

	if (pool_lock(m))
		return;
	for (t = 0; t < CLAT_MAX_TYPES; t++)
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
			key = clat_extent_key(fn, t, k);
			if (bpf_map_lookup_elem(m->pool_alloc, &key, &e))
				continue;
			if (staged_only ? e.state == CLAT_EXTENT_STAGED &&
						  e.owner_pid == (uint32_t)getpid()
					: e.state == CLAT_EXTENT_LIVE)
				pool_free(m, key);
		}
	if (!staged_only) /* what crashed processes left goes too */
		pool_reclaim_locked(m);
	pool_unlock(m);
}

static int stage_type(struct shadow_stage *st, const struct gmem *g, const struct gmem_data *data,
		      const struct gtype *gt)
{
	struct clat_type_desc *td = &st->desc.type[gt->index];
	uint32_t k, newest = gt->e.nsegs - 1, live = 0;
	uint64_t read = 0;
	int err = 0;

	st->entry[gt->index] = gt->e;
	td->hash_seed = gt->e.hash_seed;
	td->proto_mask = gt->e.proto_mask;
	for (k = 0; !err && k < gt->e.nsegs; k++) {
		uint64_t before = st->live;

		err = shadow_seg_fill(st->m, &st->pool, st->fn, g, data, &gt->e, gt->index,
				      gt->per_block, k, gtype_block_gpa, gt, &td->seg[k], &st->live,
				      &read);
		if (err)
			break;
		/* A drained older segment stays off the device: no lookup pays
		 * for it.  It was never published, so it is freed at once. */
		if (k != newest && st->live == before) {
			pool_lock(st->m);
			pool_free(st->m, clat_extent_key(st->fn, gt->index, k));
			pool_unlock(st->m);
			td->seg[k] = (struct clat_dev_seg){};
			st->folded++;
			continue;
		}
		live |= 1U << k;
	}
	td->seg_state = live | newest << CLAT_SEG_NEWEST_SHIFT;
	return err;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Faults in the parts of guest memory that hold data, in one call per
 * extent: taken one 4 KiB page at a time, a fault costs microseconds
 * under virtualization and dominated the rebuild.  Holes stay holes (a
 * sparse guest pins no memory), and a failure is only slower. */
static void prefault(const struct gmem *g, const struct gmem_data *d)
{
	uint64_t i;

	if (d->all_data) {
		madvise(g->base, g->size, MADV_POPULATE_READ);
		return;
	}
	for (i = 0; i < d->n; i++)
		madvise(g->base + d->ext[i][0], d->ext[i][1] - d->ext[i][0], MADV_POPULATE_READ);
}

int shadow_stage_build(struct shadow_stage *st, const struct clat_maps *m, uint32_t fn,
		       const char *mem_path, const struct gmem *g, const struct gtables *t)
{
	struct gmem_data data = { 0 };
	uint32_t i;
	int err;

	memset(st, 0, sizeof(*st));
	st->owned = (struct shadow_owned){ .fd = -1 };
	st->m = m;
	if (fn >= CLAT_MAX_FN)
		return -ERANGE;
	if (strlen(mem_path) >= sizeof(st->gi.mem_path)) {
		pr_err("guest memory path too long (max %zu): %s", sizeof(st->gi.mem_path) - 1,
		       mem_path);
		return -ENAMETOOLONG;
	}
	st->fn = fn;
	st->ntypes = t->ntypes;
	st->gi = (struct clat_guest_info){
		.bat_gpa = t->bat_gpa,
		.mem_size = g->size,
		.generation = t->hdr.generation,
		.ntypes = t->ntypes,
	};
	memcpy(st->gi.mem_path, mem_path, strlen(mem_path));
	/* Every later reopen by path must find this same file. */
	st->gi.mem_dev = g->dev;
	st->gi.mem_ino = g->ino;
	err = shadow_owned_build(fn, g, t, &st->owned);
	if (err)
		pr_err("failed to create the page-ownership map of fn %u: %s", fn, strerror(-err));
	if (!err)
		err = pool_map(m, &st->pool);
	if (!err)
		err = gmem_data_scan(g, &data);
	if (!err)
		prefault(g, &data);
	for (i = 0; !err && i < t->ntypes; i++)
		err = stage_type(st, g, &data, &t->types[i]);
	gmem_data_free(&data);
	if (!err)
		err = index_blocks(st, t);
	if (err)
		shadow_stage_free(st);
	return err;
}

int shadow_stage_reload(struct shadow_stage *st, const struct gmem *g, const struct gtables *t,
			const uint64_t *blocks, size_t n, uint64_t *reloaded)
{
	uint64_t live = 0, read = 0;
	size_t j;
	int err = 0;

	*reloaded = 0;
	for (j = 0; !err && j < n; j++) {
		const struct shadow_block *sb = find_block(st, blocks[j]);
		const struct gtype *gt;
		const struct clat_dev_seg *sg;
		uint32_t svc, lo, hi, i;

		if (!sb || sb->type >= t->ntypes)
			continue; /* not a block of these tables: nothing to re-read */
		gt = &t->types[sb->type];
		sg = &st->desc.type[gt->index].seg[sb->seg];
		if (!(st->desc.type[gt->index].seg_state & (1U << sb->seg)))
			continue; /* folded: drained, and no new flow goes there */
		lo = sb->block * gt->per_block + 1;
		hi = lo + gt->per_block - 1;
		for (svc = lo; !err && svc <= hi; svc++) {
			struct fill f = { g, NULL, &gt->e, gt->per_block, gt->index, st->fn,
					  sg->nbuckets, gtype_block_gpa, gt, &live, &read };
			size_t idx;

			if (svc <= sg->base || svc > sg->base + sg->size)
				continue;
			i = svc - 1 - sg->base;
			idx = (size_t)sg->first_bucket * CLAT_BUCKET_SLOTS + i;
			err = fill_slot(&f, sg->base, i, &st->pool.ctx[idx],
					&st->pool.meta[sg->first_bucket + i / CLAT_BUCKET_SLOTS]
						 .tag[i % CLAT_BUCKET_SLOTS]);
		}
		*reloaded += !err;
	}
	return err;
}

int shadow_stage_commit(struct shadow_stage *st, const char *dir)
{
	const struct clat_maps *m = st->m;
	uint32_t t, k, key, fn = st->fn;
	int err = 0;

	for (t = 0; !err && t < CLAT_MAX_TYPES; t++) {
		key = type_key(fn, t);
		if (bpf_map_update_elem(m->guest_types, &key, &st->entry[t], BPF_ANY))
			err = -errno;
	}
	if (!err && dir)
		err = shadow_owned_pin(dir, fn, st->owned.fd);
	if (!err && bpf_map_update_elem(m->guests, &fn, &st->gi, BPF_ANY))
		err = -errno;
	if (!err && bpf_map_update_elem(m->fn_desc, &fn, &st->desc, BPF_ANY))
		err = -errno;
	if (!err)
		test_stall("pool_published"); /* in fn_desc, still STAGED */
	for (t = 0; !err && t < CLAT_MAX_TYPES; t++)
		for (k = 0; !err && k < CLAT_MAX_SEGMENTS; k++)
			if (st->desc.type[t].seg_state & (1U << k))
				err = pool_set_live(m, clat_extent_key(fn, t, k));
	/* The switch: once VCT[fn] names the BAT, the datapath tracks flows. */
	if (!err)
		err = vct_set_tables(m, fn, st->gi.bat_gpa, st->gi.generation);
	if (err) {
		pr_err("failed to install the shadow of fn %u: %s", fn, strerror(-err));
		shadow_remove(m, dir, fn);
		return err;
	}
	st->committed = true;
	return 0;
}

void shadow_stage_free(struct shadow_stage *st)
{
	if (st->m && !st->committed)
		free_extents(st->m, st->fn, true);
	pool_unmap(&st->pool);
	shadow_owned_close(&st->owned);
	free(st->blocks);
	st->blocks = NULL;
	st->m = NULL;
}

int shadow_install(const struct clat_maps *m, const char *dir, uint32_t fn,
		   const char *mem_path, const struct gmem *g, const struct gtables *t,
		   uint64_t *live)
{
	struct shadow_stage st;
	int err = shadow_stage_build(&st, m, fn, mem_path, g, t);

	*live = st.live;
	if (!err)
		err = shadow_stage_commit(&st, dir);
	shadow_stage_free(&st);
	return err;
}

int shadow_install_file(const struct clat_maps *m, const char *dir, uint32_t fn,
			const char *mem_path, uint64_t bat_gpa, char *err, size_t errlen,
			uint64_t *live)
{
	struct gtables t;
	struct gmem g;
	int rc = gmem_open(mem_path, false, &g);

	*live = 0;
	if (rc)
		return rc;
	rc = gtables_load(&g, bat_gpa, &t, err, errlen);
	if (!rc) {
		rc = shadow_install(m, dir, fn, mem_path, &g, &t, live);
		gtables_free(&t);
	}
	gmem_close(&g);
	return rc;
}

bool shadow_leftovers(const struct clat_maps *m, uint32_t fn)
{
	struct clat_fn_desc d = {};
	struct clat_extent e;
	uint32_t t, k, key;

	bpf_map_lookup_elem(m->fn_desc, &fn, &d);
	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		if (d.type[t].proto_mask || d.type[t].seg_state)
			return true;
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
			key = clat_extent_key(fn, t, k);
			if (!bpf_map_lookup_elem(m->pool_alloc, &key, &e) &&
			    e.state != CLAT_EXTENT_FREE)
				return true;
		}
	}
	return false;
}

int shadow_remove(const struct clat_maps *m, const char *dir, uint32_t fn)
{
	struct clat_bat_entry none = {};
	struct clat_vct_entry v = {};
	uint32_t t, key;
	int err;

	if (fn >= CLAT_MAX_FN)
		return -ERANGE;
	if (bpf_map_lookup_elem(m->vct, &fn, &v) == 0 && v.bat_gpa) {
		err = vct_set_tables(m, fn, 0, 0);
		if (err)
			return err;
	}
	if (bpf_map_update_elem(m->fn_desc, &fn, &(struct clat_fn_desc){}, BPF_ANY))
		return -errno;
	test_stall("pool_unpublished"); /* out of fn_desc, still LIVE */
	/* No frame may still be using the extents when they are handed on. */
	err = pool_quiesce();
	if (err)
		return err;
	free_extents(m, fn, false);
	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		key = type_key(fn, t);
		bpf_map_update_elem(m->guest_types, &key, &none, BPF_ANY);
	}
	if (dir)
		shadow_owned_pin(dir, fn, -1);
	if (bpf_map_update_elem(m->guests, &fn, &(struct clat_guest_info){}, BPF_ANY))
		return -errno;
	return 0;
}

int guest_mem_user(const struct clat_maps *m, uint32_t fn, const struct gmem_id *id,
		   uint32_t *other)
{
	uint32_t k;

	for (k = 0; k < CLAT_MAX_FN; k++) {
		struct clat_guest_info gi = {};

		if (k == fn || bpf_map_lookup_elem(m->guests, &k, &gi) || !gi.bat_gpa)
			continue;
		if (gi.mem_dev == id->dev && gi.mem_ino == id->ino) {
			*other = k;
			return -EBUSY;
		}
	}
	return 0;
}
