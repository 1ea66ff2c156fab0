// SPDX-License-Identifier: GPL-2.0
/* Device-side shadow of guest tables: build, install, remove, view, sync. */
#include "shadow.h"
#include "flatten.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

static const char *const inner_kinds[] = { "tiers", "ctx", "dirty" };

static uint32_t type_key(uint32_t fn, uint32_t t)
{
	return fn * CLAT_MAX_TYPES + t;
}

static bool seg_live(const struct clat_bat_cache *bc, uint32_t k)
{
	return bc->valid && (bc->seg_state & (1U << k));
}

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) / pg * pg;
}

int shadow_btf_from_prog(const char *dir, struct shadow_btf *b)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	struct btf *btf = NULL;
	int fd, err = 0;
	__s32 id;

	b->fd = -1;
	if (pin_path(path, sizeof(path), dir, PIN_PROG_RX))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = -errno;
	close(fd);
	if (!err && !info.btf_id)
		err = -ENOENT;
	if (!err) {
		btf = btf__load_from_kernel_by_id(info.btf_id);
		err = btf ? 0 : -errno;
	}
	if (!err) {
		b->fd = bpf_btf_get_fd_by_id(info.btf_id);
		err = b->fd < 0 ? -errno : 0;
	}
	if (!err) {
		id = btf__find_by_name_kind(btf, "__u32", BTF_KIND_TYPEDEF);
		b->u32_id = id > 0 ? (__u32)id : 0;
		id = btf__find_by_name_kind(btf, "__u64", BTF_KIND_TYPEDEF);
		b->u64_id = id > 0 ? (__u32)id : 0;
		id = btf__find_by_name_kind(btf, "clat_ctx", BTF_KIND_STRUCT);
		b->ctx_id = id > 0 ? (__u32)id : 0;
		if (!b->u32_id || !b->u64_id || !b->ctx_id)
			err = -ENOENT;
	}
	btf__free(btf);
	if (err) {
		shadow_btf_close(b);
		pr_err("failed to read BTF of the loaded programs: %s", strerror(-err));
	}
	return err;
}

void shadow_btf_close(struct shadow_btf *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

static int create_inner(const struct shadow_btf *btf, int kind, uint32_t fn, uint32_t t,
			uint32_t k, uint32_t n, struct shadow_inner *in)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_MMAPABLE | BPF_F_INNER_MAP);
	__u32 vsize = kind == INNER_CTX ? sizeof(struct clat_ctx) : sizeof(__u64);
	char name[BPF_OBJ_NAME_LEN];

	if (btf) {
		o.btf_fd = btf->fd;
		o.btf_key_type_id = btf->u32_id;
		o.btf_value_type_id = kind == INNER_CTX ? btf->ctx_id : btf->u64_id;
	}
	snprintf(name, sizeof(name), "%s%u_%u_%u", inner_kinds[kind], fn, t, k);
	in->fd[kind] = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32), vsize, n ? n : 1, &o);
	if (in->fd[kind] < 0)
		return -errno;
	in->len[kind] = page_round((size_t)(n ? n : 1) * vsize);
	in->map[kind] = mmap(NULL, in->len[kind], PROT_READ | PROT_WRITE, MAP_SHARED,
			     in->fd[kind], 0);
	if (in->map[kind] == MAP_FAILED) {
		in->map[kind] = NULL;
		return -errno;
	}
	return 0;
}

void shadow_inner_init(struct shadow_inner *in)
{
	*in = (struct shadow_inner){ .fd = { -1, -1, -1 } };
}

void shadow_inner_release(struct shadow_inner *in)
{
	int k;

	for (k = 0; k < INNER__MAX; k++) {
		if (in->map[k])
			munmap(in->map[k], in->len[k]);
		if (in->fd[k] >= 0)
			close(in->fd[k]);
	}
	shadow_inner_init(in);
}

/* Copies one context record out of guest memory once, then checks the copy:
 * the guest may rewrite its memory after gtables_load validated it, and a
 * planted CLAIMING slot would make every probe over it wait.  Anything but a
 * self-consistent LIVE or TOMBSTONE record becomes EMPTY on the device. */
bool shadow_take_ctx(struct clat_ctx *dst, const struct clat_ctx *src, uint32_t svc,
		     uint32_t type, uint32_t fn)
{
	struct clat_ctx c;
	uint64_t st;

	memcpy(&c, src, sizeof(c));
	st = c.state_word & CLAT_SLOT_STATE_MASK;
	if ((st != CLAT_SLOT_LIVE && st != CLAT_SLOT_TOMBSTONE) || c.svc != svc || c.type != type) {
		memset(dst, 0, sizeof(*dst));
		return false;
	}
	c.fn = (__u16)fn;
	*dst = c;
	return true;
}

/* Calls visit for every service of segment k in the guest blocks that pass
 * want (NULL: all), with the context's guest address and its slot index. */
typedef int (*seg_visit_fn)(void *arg, uint32_t svc, uint64_t gpa, uint32_t slot);

/* Visits the services of block b (a block of segment k) that the segment holds. */
static int seg_block_visit(const struct gtype *gt, uint32_t k, uint32_t b, void *arg,
			   seg_visit_fn visit)
{
	const struct clat_seg *sg = &gt->e.seg[k];
	uint32_t e;
	int err;

	for (e = 0; e < gt->per_block; e++) {
		uint32_t svc = b * gt->per_block + e + 1;

		if (svc > sg->base + sg->size)
			break;
		err = visit(arg, svc, gt->block_gpa[b] + (uint64_t)e * gt->e.ctx_size,
			    svc - 1 - sg->base);
		if (err)
			return err;
	}
	return 0;
}

static int seg_for_each(const struct gtype *gt, uint32_t k, bool (*want)(void *, uint64_t, uint32_t),
			void *arg, seg_visit_fn visit)
{
	uint32_t first, end, b;
	int err;

	gseg_blocks(gt->per_block, &gt->e.seg[k], &first, &end);
	for (b = first; b < end && b < gt->nblocks; b++) {
		if (want && !want(arg, gt->block_gpa[b], b - first))
			continue;
		err = seg_block_visit(gt, k, b, arg, visit);
		if (err)
			return err;
	}
	return 0;
}

struct load_arg {
	const struct gmem *g;
	const struct gmem_data *data;
	const struct gtype *gt;
	uint32_t fn;
	struct clat_ctx *dst;
	uint64_t *live;
};

static int load_one(void *arg, uint32_t svc, uint64_t gpa, uint32_t slot)
{
	struct load_arg *a = arg;
	const struct clat_ctx *src = gmem_ptr(a->g, gpa, sizeof(*src));

	if (!src)
		return -EFAULT; /* validated before: the file shrank */
	if (a->live && (src->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_EMPTY)
		return 0;
	if (shadow_take_ctx(&a->dst[slot], src, svc, a->gt->index, a->fn) && a->live)
		*a->live += (a->dst[slot].state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE;
	return 0;
}

/* Blocks in holes of a sparse file hold only EMPTY contexts: skipped unread. */
static bool not_hole(void *arg, uint64_t gpa, uint32_t local)
{
	struct load_arg *a = arg;

	(void)local;
	return !gmem_data_hole(a->data, gpa, a->gt->e.block_size);
}

static int pin_inner(const char *dir, const struct shadow_inner *in, uint32_t fn, uint32_t t,
		     uint32_t seg, bool pin)
{
	char name[64], path[PATH_MAX];
	int k, err = 0;

	for (k = 0; k < INNER__MAX; k++) {
		snprintf(name, sizeof(name), PIN_INNER_FMT, inner_kinds[k], fn, t, seg);
		if (pin_path(path, sizeof(path), dir, name))
			return -ENAMETOOLONG;
		/* A pin left by an interrupted attach is replaced, not an error. */
		if (unlink(path) < 0 && errno != ENOENT && !err)
			err = -errno;
		if (pin && bpf_obj_pin(in->fd[k], path))
			return -errno;
	}
	return err;
}

void shadow_fill_bat_cache(const struct gtype *gt, struct clat_bat_cache *bc,
			   struct clat_dev_seg seg[CLAT_MAX_SEGMENTS])
{
	uint32_t k;

	*bc = (struct clat_bat_cache){
		.valid = 1,
		.ctx_size = gt->e.ctx_size,
		.per_block = gt->per_block,
		.clat_entries = gt->e.clat_entries,
		.hash_seed = gt->e.hash_seed,
		.probe_window = gt->e.probe_window,
		.proto_mask = gt->e.proto_mask,
		.seg_state = ((1U << gt->e.nsegs) - 1) |
			     ((uint32_t)(gt->e.nsegs - 1) << CLAT_SEG_NEWEST_SHIFT),
		.capacity = gt->e.capacity,
		.clat_gpa = gt->e.clat_gpa,
		.levels = gt->e.levels,
	};
	for (k = 0; k < gt->e.nsegs; k++) {
		uint32_t first, end;

		gseg_blocks(gt->per_block, &gt->e.seg[k], &first, &end);
		seg[k] = (struct clat_dev_seg){
			.base = gt->e.seg[k].base,
			.size = gt->e.seg[k].size,
			.levels = gt->e.levels,
			.nblocks = end - first,
		};
	}
}

int shadow_seg_create(uint32_t fn, uint32_t t, uint32_t k, const struct seg_tiers *st,
		      uint32_t c, uint32_t nblocks, uint32_t per_block, const struct shadow_btf *btf,
		      struct shadow_inner *in)
{
	uint64_t ntiers = (uint64_t)st->npages * c, i;
	uint64_t *tiers;
	int err;

	err = create_inner(btf, INNER_TIERS, fn, t, k, (uint32_t)ntiers, in);
	if (!err)
		err = create_inner(btf, INNER_CTX, fn, t, k, nblocks * per_block, in);
	if (!err)
		err = create_inner(btf, INNER_DIRTY, fn, t, k, nblocks, in);
	if (err) {
		pr_err("failed to create device maps for fn %u type %u segment %u: %s", fn, t, k,
		       strerror(-err));
		return err;
	}
	tiers = in->map[INNER_TIERS];
	for (i = 0; i < ntiers; i++)
		tiers[i] = st->tiers[i];
	return 0;
}

int shadow_seg_build(uint32_t fn, const struct gmem *g, const struct gtype *gt, uint32_t k,
		     const struct shadow_btf *btf, struct shadow_inner *in, uint64_t *live)
{
	struct gmem_data data;
	struct seg_tiers st;
	uint32_t first, end;
	int err;

	gseg_blocks(gt->per_block, &gt->e.seg[k], &first, &end);
	err = gtype_seg_flatten(gt, k, &st);
	if (err)
		return err;
	err = shadow_seg_create(fn, gt->index, k, &st, gt->e.clat_entries, end - first, gt->per_block,
			 btf, in);
	seg_tiers_free(&st);
	if (!err)
		err = gmem_data_scan(g, &data);
	if (!err) {
		struct load_arg a = { g, &data, gt, fn, in->map[INNER_CTX], live };

		err = seg_for_each(gt, k, not_hole, &a, load_one);
		gmem_data_free(&data);
	}
	return err;
}

int shadow_seg_plug(const struct clat_maps *m, const char *dir, uint32_t fn, uint32_t t,
		    uint32_t k, const struct clat_dev_seg *sg, const struct shadow_inner *in)
{
	uint32_t key = clat_shadow_key(fn, t, k);
	int err = 0;

	if (bpf_map_update_elem(m->segs, &key, sg, BPF_ANY) ||
	    bpf_map_update_elem(m->tiers, &key, &in->fd[INNER_TIERS], BPF_ANY) ||
	    bpf_map_update_elem(m->ctxs, &key, &in->fd[INNER_CTX], BPF_ANY) ||
	    bpf_map_update_elem(m->dirty, &key, &in->fd[INNER_DIRTY], BPF_ANY))
		err = -errno;
	if (!err && dir)
		err = pin_inner(dir, in, fn, t, k, true);
	if (err)
		pr_err("failed to install device maps for fn %u type %u segment %u: %s", fn, t, k,
		       strerror(-err));
	return err;
}

/* Plugs one type's inner maps into fn's slots.  Each map-in-map update waits
 * for an RCU grace period, so this runs before a migration's pause; the
 * datapath ignores the slots until VCT[fn].bat_gpa is set. */
static int plug_type(const struct clat_maps *m, uint32_t fn, uint32_t t,
		     const struct clat_bat_cache *bc, const struct clat_dev_seg *seg,
		     const struct shadow_inner *in)
{
	uint32_t key = type_key(fn, t), k;
	int err = 0;

	for (k = 0; !err && k < CLAT_MAX_SEGMENTS; k++)
		if (seg_live(bc, k))
			err = shadow_seg_plug(m, NULL, fn, t, k, &seg[k], &in[k]);
	if (!err && bpf_map_update_elem(m->bat_cache, &key, bc, BPF_ANY)) {
		err = -errno;
		pr_err("failed to install the BAT cache of fn %u type %u: %s", fn, t,
		       strerror(-err));
	}
	return err;
}

void shadow_seg_unplug(const struct clat_maps *m, const char *dir, uint32_t fn, uint32_t t,
		       uint32_t k)
{
	uint32_t key = clat_shadow_key(fn, t, k);
	struct shadow_inner none = {};

	bpf_map_update_elem(m->segs, &key, &(struct clat_dev_seg){}, BPF_ANY);
	bpf_map_delete_elem(m->tiers, &key);
	bpf_map_delete_elem(m->ctxs, &key);
	bpf_map_delete_elem(m->dirty, &key);
	if (dir)
		pin_inner(dir, &none, fn, t, k, false);
}

static void remove_type(const struct clat_maps *m, const char *dir, uint32_t fn, uint32_t t)
{
	struct clat_bat_cache zero = {};
	uint32_t key = type_key(fn, t), k;

	bpf_map_update_elem(m->bat_cache, &key, &zero, BPF_ANY);
	for (k = 0; k < CLAT_MAX_SEGMENTS; k++)
		shadow_seg_unplug(m, dir, fn, t, k);
}

/* ---- Page ownership ------------------------------------------------------ */

static void own(uint64_t *bits, uint64_t gpa, uint64_t len)
{
	uint64_t pfn;

	for (pfn = gpa / CLAT_PAGE_SIZE; pfn < (gpa + len) / CLAT_PAGE_SIZE; pfn++)
		bits[pfn / 64] |= 1ULL << (pfn % 64);
}

static int owned_build(uint32_t fn, const struct gmem *g, const struct gtables *t,
		       struct shadow_owned *o)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
	char name[BPF_OBJ_NAME_LEN];
	uint32_t i, k;

	o->words = g->size / CLAT_PAGE_SIZE / 64 + 1;
	snprintf(name, sizeof(name), "owned%u", fn);
	o->fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32), sizeof(__u64),
			       (__u32)o->words, &opts);
	if (o->fd < 0)
		return -errno;
	o->len = page_round(o->words * sizeof(__u64));
	o->bits = mmap(NULL, o->len, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
	if (o->bits == MAP_FAILED) {
		o->bits = NULL;
		return -errno;
	}
	own(o->bits, t->bat_gpa, CLAT_PAGE_SIZE);
	for (i = 0; i < t->ntypes; i++) {
		const struct gtype *gt = &t->types[i];

		for (k = 0; k < gt->npages; k++)
			own(o->bits, gt->page_gpa[k], CLAT_PAGE_SIZE);
		for (k = 0; k < gt->nblocks; k++)
			own(o->bits, gt->block_gpa[k], gt->e.block_size);
	}
	return 0;
}

static int owned_pin(const char *dir, uint32_t fn, int fd)
{
	char name[64], path[PATH_MAX];

	snprintf(name, sizeof(name), PIN_OWNED_FMT, fn);
	if (pin_path(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return fd >= 0 && bpf_obj_pin(fd, path) ? -errno : 0;
}

int shadow_owned_open(const char *dir, uint32_t fn, struct shadow_owned *o)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char name[64], path[PATH_MAX];

	*o = (struct shadow_owned){ .fd = -1 };
	snprintf(name, sizeof(name), PIN_OWNED_FMT, fn);
	if (pin_path(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	o->fd = bpf_obj_get(path);
	if (o->fd < 0 || bpf_obj_get_info_by_fd(o->fd, &info, &ilen)) {
		shadow_owned_close(o);
		return -ENOENT;
	}
	o->words = info.max_entries;
	o->len = page_round(o->words * sizeof(__u64));
	o->bits = mmap(NULL, o->len, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
	if (o->bits == MAP_FAILED) {
		o->bits = NULL;
		shadow_owned_close(o);
		return -errno;
	}
	return 0;
}

void shadow_owned_close(struct shadow_owned *o)
{
	if (o->bits)
		munmap(o->bits, o->len);
	if (o->fd >= 0)
		close(o->fd);
	*o = (struct shadow_owned){ .fd = -1 };
}

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

static void stage_init(struct shadow_stage *st)
{
	uint32_t i, k;

	memset(st, 0, sizeof(*st));
	st->owned = (struct shadow_owned){ .fd = -1 };
	for (i = 0; i < CLAT_MAX_TYPES; i++)
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++)
			shadow_inner_init(&st->in[i][k]);
}

int shadow_stage_build(struct shadow_stage *st, uint32_t fn, const char *mem_path,
		       const struct gmem *g, const struct gtables *t, const struct shadow_btf *btf)
{
	uint32_t i, k;
	int err = 0;

	stage_init(st);
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
	err = owned_build(fn, g, t, &st->owned);
	if (err)
		pr_err("failed to create the page-ownership map of fn %u: %s", fn, strerror(-err));
	for (i = 0; !err && i < t->ntypes; i++) {
		st->type_index[i] = t->types[i].index;
		shadow_fill_bat_cache(&t->types[i], &st->bc[i], st->seg[i]);
		for (k = 0; !err && k < t->types[i].e.nsegs; k++)
			err = shadow_seg_build(fn, g, &t->types[i], k, btf, &st->in[i][k],
					       &st->live);
	}
	if (!err)
		err = index_blocks(st, t);
	if (err)
		shadow_stage_free(st);
	return err;
}

int shadow_stage_reload(struct shadow_stage *st, const struct gmem *g, const struct gtables *t,
			const uint64_t *blocks, size_t n, uint64_t *reloaded)
{
	size_t j;
	int err = 0;

	*reloaded = 0;
	for (j = 0; !err && j < n; j++) {
		const struct shadow_block *sb = find_block(st, blocks[j]);
		struct load_arg a;

		if (!sb || sb->type >= t->ntypes)
			continue; /* not a block of these tables: nothing to re-read */
		a = (struct load_arg){ g, NULL, &t->types[sb->type], st->fn,
				       st->in[sb->type][sb->seg].map[INNER_CTX], NULL };
		err = seg_block_visit(a.gt, sb->seg, sb->block, &a, load_one);
		*reloaded += !err;
	}
	return err;
}

int shadow_stage_plug(struct shadow_stage *st, const struct clat_maps *m)
{
	uint32_t i;
	int err = 0;

	for (i = 0; !err && i < st->ntypes; i++)
		err = plug_type(m, st->fn, st->type_index[i], &st->bc[i], st->seg[i], st->in[i]);
	if (err)
		shadow_remove(m, NULL, st->fn);
	st->plugged = !err;
	return err;
}

int shadow_stage_commit(struct shadow_stage *st, const struct clat_maps *m, const char *dir)
{
	struct clat_vct_entry v = {};
	uint32_t i, k, fn = st->fn;
	int err = st->plugged ? 0 : shadow_stage_plug(st, m);

	for (i = 0; !err && dir && i < st->ntypes; i++)
		for (k = 0; !err && k < CLAT_MAX_SEGMENTS; k++)
			if (seg_live(&st->bc[i], k))
				err = pin_inner(dir, &st->in[i][k], fn, st->type_index[i], k, true);
	if (!err && dir)
		err = owned_pin(dir, fn, st->owned.fd);
	if (!err && bpf_map_update_elem(m->guests, &fn, &st->gi, BPF_ANY))
		err = -errno;
	/* The switch: once VCT[fn] names the BAT, the datapath tracks flows. */
	if (!err && bpf_map_lookup_elem(m->vct, &fn, &v))
		err = -errno;
	if (!err) {
		v.bat_gpa = st->gi.bat_gpa;
		v.generation = st->gi.generation;
		if (bpf_map_update_elem(m->vct, &fn, &v, BPF_ANY))
			err = -errno;
	}
	if (err)
		shadow_remove(m, dir, fn);
	return err;
}

void shadow_stage_free(struct shadow_stage *st)
{
	uint32_t i, k;

	for (i = 0; i < CLAT_MAX_TYPES; i++)
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++)
			shadow_inner_release(&st->in[i][k]);
	shadow_owned_close(&st->owned);
	free(st->blocks);
	st->blocks = NULL;
}

int shadow_install(const struct clat_maps *m, const char *dir, uint32_t fn,
		   const char *mem_path, const struct gmem *g, const struct gtables *t,
		   const struct shadow_btf *btf, uint64_t *live)
{
	struct shadow_stage st;
	int err = shadow_stage_build(&st, fn, mem_path, g, t, btf);

	*live = st.live;
	if (!err)
		err = shadow_stage_commit(&st, m, dir);
	shadow_stage_free(&st);
	return err;
}

int shadow_remove(const struct clat_maps *m, const char *dir, uint32_t fn)
{
	struct clat_vct_entry v = {};
	uint32_t t;

	if (fn >= CLAT_MAX_FN)
		return -ERANGE;
	if (bpf_map_lookup_elem(m->vct, &fn, &v) == 0 && v.bat_gpa) {
		v.bat_gpa = 0;
		v.generation = 0;
		if (bpf_map_update_elem(m->vct, &fn, &v, BPF_ANY))
			return -errno;
	}
	for (t = 0; t < CLAT_MAX_TYPES; t++)
		remove_type(m, dir, fn, t);
	if (dir)
		owned_pin(dir, fn, -1);
	if (bpf_map_update_elem(m->guests, &fn, &(struct clat_guest_info){}, BPF_ANY))
		return -errno;
	return 0;
}

static int inner_fd(int outer, uint32_t key)
{
	__u32 id;

	int fd;

	if (bpf_map_lookup_elem(outer, &key, &id))
		return -errno;
	fd = bpf_map_get_fd_by_id(id);
	return fd < 0 ? -errno : fd;
}

static void *map_inner(int outer, uint32_t key, size_t elem, uint32_t *n, size_t *len)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	void *p = NULL;
	int fd = inner_fd(outer, key);

	if (fd < 0)
		return NULL;
	if (!bpf_obj_get_info_by_fd(fd, &info, &ilen)) {
		*n = info.max_entries;
		*len = page_round((size_t)info.max_entries * elem);
		p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			p = NULL;
	}
	close(fd);
	return p;
}

int shadow_view_open(const struct clat_maps *m, uint32_t fn, uint32_t type, struct shadow_view *v)
{
	uint32_t key = type_key(fn, type), k, nctx, ndirty;

	memset(v, 0, sizeof(*v));
	if (fn >= CLAT_MAX_FN || type >= CLAT_MAX_TYPES ||
	    bpf_map_lookup_elem(m->bat_cache, &key, &v->bc) || !v->bc.valid || !v->bc.per_block)
		return -ENOENT;
	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		struct shadow_seg_view *sv = &v->seg[k];

		if (!seg_live(&v->bc, k))
			continue;
		key = clat_shadow_key(fn, type, k);
		if (bpf_map_lookup_elem(m->segs, &key, &v->dseg[k])) {
			shadow_view_close(v);
			return -ENOENT;
		}
		sv->ctx = map_inner(m->ctxs, key, sizeof(struct clat_ctx), &nctx, &sv->ctx_len);
		sv->dirty = map_inner(m->dirty, key, sizeof(__u64), &ndirty, &sv->dirty_len);
		if (!sv->ctx || !sv->dirty || nctx < v->dseg[k].size ||
		    (uint64_t)ndirty * v->bc.per_block < v->dseg[k].size) {
			shadow_view_close(v);
			return -ENOENT;
		}
		sv->n = v->dseg[k].size;
		v->live |= 1U << k;
	}
	return 0;
}

void shadow_view_close(struct shadow_view *v)
{
	uint32_t k;

	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		if (v->seg[k].ctx)
			munmap(v->seg[k].ctx, v->seg[k].ctx_len);
		if (v->seg[k].dirty)
			munmap(v->seg[k].dirty, v->seg[k].dirty_len);
		v->seg[k] = (struct shadow_seg_view){};
	}
	v->live = 0;
}

struct clat_ctx *shadow_view_ctx(const struct shadow_view *v, uint32_t svc, uint64_t **dirty)
{
	uint32_t k, i;

	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		if (!(v->live & (1U << k)) || svc <= v->dseg[k].base ||
		    svc - v->dseg[k].base > v->seg[k].n)
			continue;
		i = svc - 1 - v->dseg[k].base;
		if (dirty)
			*dirty = &v->seg[k].dirty[i / v->bc.per_block];
		return &v->seg[k].ctx[i];
	}
	return NULL;
}

/* A CLAIMING slot settles within a few stores of another CPU. */
static uint64_t settled_state(const struct clat_ctx *c)
{
	uint64_t sw = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE);
	int i;

	for (i = 0; i < 100000 && (sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_CLAIMING; i++)
		sw = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE);
	return sw;
}

static int add_block(struct gpa_list *l, uint64_t gpa)
{
	if (!l)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		uint64_t *v = realloc(l->gpa, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->gpa = v;
		l->cap = cap;
	}
	l->gpa[l->n++] = gpa;
	return 0;
}

struct sync_arg {
	const struct gmem *g;
	struct shadow_seg_view *sv;
	uint64_t *written, *bytes;
};

static int sync_one(void *arg, uint32_t svc, uint64_t gpa, uint32_t slot)
{
	struct sync_arg *a = arg;
	struct clat_ctx *dst;
	uint64_t sw;

	(void)svc;
	if (slot >= a->sv->n)
		return 0;
	sw = settled_state(&a->sv->ctx[slot]);
	if ((sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_EMPTY ||
	    (sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_CLAIMING)
		return 0;
	dst = gmem_ptr(a->g, gpa, sizeof(*dst));
	if (!dst)
		return -EFAULT;
	memcpy(dst, &a->sv->ctx[slot], sizeof(*dst));
	(*a->written)++;
	*a->bytes += sizeof(*dst);
	return 0;
}

/* One segment's blocks.  A block's mark is cleared before its copy, so a
 * write racing with the copy marks it again.  Marks are read before they
 * are exchanged: a stop-copy scans every word, and most are clear. */
static int sync_seg(const struct gtype *gt, uint32_t k, enum sync_mode mode, struct sync_arg *a,
		    struct gpa_list *blocks)
{
	uint32_t first, end, b;
	int err;

	gseg_blocks(gt->per_block, &gt->e.seg[k], &first, &end);
	for (b = first; b < end && b < gt->nblocks; b++) {
		uint64_t *mark = &a->sv->dirty[b - first];
		bool was_dirty = mode != SYNC_ALL && __atomic_load_n(mark, __ATOMIC_RELAXED) &&
				 __atomic_exchange_n(mark, 0, __ATOMIC_SEQ_CST);

		if (mode == SYNC_DIRTY && !was_dirty)
			continue;
		if (mode == SYNC_DIRTY && add_block(blocks, gt->block_gpa[b]))
			return -ENOMEM;
		err = seg_block_visit(gt, k, b, a, sync_one);
		if (err)
			return err;
	}
	return 0;
}

/* The device's segments must be the guest's: same ranges, all live. */
static bool view_matches(const struct shadow_view *v, const struct gtype *gt)
{
	uint32_t k;

	if (v->bc.per_block != gt->per_block || v->live != (1U << gt->e.nsegs) - 1)
		return false;
	for (k = 0; k < gt->e.nsegs; k++)
		if (v->dseg[k].base != gt->e.seg[k].base || v->dseg[k].size != gt->e.seg[k].size)
			return false;
	return true;
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

		for (k = 0; !err && k < gt->e.nsegs; k++) {
			struct sync_arg a = { &wb->g, &wb->v[i].seg[k], written, bytes };

			err = sync_seg(gt, k, mode, &a, blocks);
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
