/* SPDX-License-Identifier: GPL-2.0 */
/* The device-side shadow of a guest's tables: per-fn inner maps (tiers,
 * contexts, dirty bits) plugged into the ARRAY_OF_MAPS slots of fn, the BAT
 * cache, and VCT[fn].bat_gpa as the switch that turns tracking on. */
#ifndef CLAT_SHADOW_H
#define CLAT_SHADOW_H

#include "common.h"
#include "gtables.h"

/* BTF of the running programs, so inner maps dump typed in bpftool. */
struct shadow_btf {
	int fd;
	__u32 u32_id;
	__u32 u64_id; /* tiers and dirty words */
	__u32 ctx_id;
};

int shadow_btf_from_prog(const char *dir, struct shadow_btf *b);
void shadow_btf_close(struct shadow_btf *b);

/* Builds and installs the shadow of t for fn; all or nothing.  dir (may be
 * NULL) receives pins of the inner maps; mem_path is recorded for sync;
 * *live counts the LIVE contexts that came from guest memory. */
int shadow_install(const struct clat_maps *m, const char *dir, uint32_t fn,
		   const char *mem_path, const struct gmem *g, const struct gtables *t,
		   const struct shadow_btf *btf, uint64_t *live);
/* One segment's inner maps: tiers, contexts, dirty words. */
enum shadow_inner_kind { INNER_TIERS, INNER_CTX, INNER_DIRTY, INNER__MAX };

struct shadow_inner {
	int fd[3];
	void *map[3];
	size_t len[3];
};

/* Which guest pages the attached tables own, a bit per 4 KiB page: a
 * resync checks new pages and blocks against it instead of walking the
 * old tables again.  Pinned as PIN_OWNED_FMT, never read by the datapath. */
struct shadow_owned {
	int fd;
	uint64_t *bits;
	size_t words, len;
};

int shadow_owned_open(const char *dir, uint32_t fn, struct shadow_owned *o);
void shadow_owned_close(struct shadow_owned *o);

/* A staged block: where it is in the tables the stage was built from. */
struct shadow_block {
	uint64_t gpa;
	uint32_t block;  /* index into the type's block_gpa[] */
	uint16_t type;   /* index into gtables.types[] */
	uint16_t seg;
};

/* The same in two steps, so that the slow build can run before a
 * migration's switchover and the switch itself is a few map updates. */
struct shadow_stage {
	uint32_t fn;
	uint32_t ntypes;
	uint32_t type_index[CLAT_MAX_TYPES];
	struct clat_bat_cache bc[CLAT_MAX_TYPES];
	struct clat_dev_seg seg[CLAT_MAX_TYPES][CLAT_MAX_SEGMENTS];
	struct shadow_inner in[CLAT_MAX_TYPES][CLAT_MAX_SEGMENTS];
	struct clat_guest_info gi;
	struct shadow_owned owned;
	struct shadow_block *blocks; /* [block_mask + 1]: by GPA, for the reload */
	size_t block_mask;
	uint64_t live;
	bool plugged;
};

int shadow_stage_build(struct shadow_stage *st, uint32_t fn, const char *mem_path,
		       const struct gmem *g, const struct gtables *t, const struct shadow_btf *btf);
/* Re-reads the contexts of the listed blocks (GPAs, any order) from t, the
 * tables st was built from: O(n).  GPAs that are no block of t
 * are skipped; *reloaded counts the blocks re-read. */
int shadow_stage_reload(struct shadow_stage *st, const struct gmem *g, const struct gtables *t,
			const uint64_t *blocks, size_t n, uint64_t *reloaded);
/* Plugs the staged maps into fn's ARRAY_OF_MAPS slots (slow: RCU grace
 * periods), still invisible to the datapath. */
int shadow_stage_plug(struct shadow_stage *st, const struct clat_maps *m);
/* Plugs if not yet done, pins, and flips VCT[fn].bat_gpa. */
int shadow_stage_commit(struct shadow_stage *st, const struct clat_maps *m, const char *dir);
void shadow_stage_free(struct shadow_stage *st);

/* Turns tracking off for fn and frees its shadow (no sync). */
int shadow_remove(const struct clat_maps *m, const char *dir, uint32_t fn);

/* Builds segment k of type gt into fresh inner maps (not yet visible). */
int shadow_seg_build(uint32_t fn, const struct gmem *g, const struct gtype *gt, uint32_t k,
		     const struct shadow_btf *btf, struct shadow_inner *in, uint64_t *live);
/* Plugs one segment's maps into its slots, writes its clat_segs entry and
 * pins the maps (dir may be NULL); the segment is live once seg_state says so. */
int shadow_seg_plug(const struct clat_maps *m, const char *dir, uint32_t fn, uint32_t t,
		    uint32_t k, const struct clat_dev_seg *sg, const struct shadow_inner *in);
/* Creates one segment's inner maps (nblocks blocks of per_block contexts)
 * and fills its tiers from st. */
struct seg_tiers;
int shadow_seg_create(uint32_t fn, uint32_t t, uint32_t k, const struct seg_tiers *st, uint32_t c,
		      uint32_t nblocks, uint32_t per_block, const struct shadow_btf *btf,
		      struct shadow_inner *in);
/* Copies a context out of guest memory once and keeps it only if it is a
 * self-consistent LIVE or TOMBSTONE record of svc; else dst becomes EMPTY. */
bool shadow_take_ctx(struct clat_ctx *dst, const struct clat_ctx *src, uint32_t svc,
		     uint32_t type, uint32_t fn);
/* Takes segment k of fn's type t out of its slots and unpins it. */
void shadow_seg_unplug(const struct clat_maps *m, const char *dir, uint32_t fn, uint32_t t,
		       uint32_t k);
void shadow_inner_init(struct shadow_inner *in);
void shadow_inner_release(struct shadow_inner *in);
/* The BAT cache and segments of a validated type: every segment live, the
 * last the newest. */
void shadow_fill_bat_cache(const struct gtype *gt, struct clat_bat_cache *bc,
			   struct clat_dev_seg seg[CLAT_MAX_SEGMENTS]);

/* One segment of a view: slot i holds service base + 1 + i. */
struct shadow_seg_view {
	struct clat_ctx *ctx;   /* [n] */
	uint64_t *dirty;        /* [blocks]: non-zero once the datapath wrote the block */
	uint32_t n;             /* the segment's size */
	size_t ctx_len, dirty_len;
};

/* Mapped view of one type's contexts (read-write, shared with the datapath). */
struct shadow_view {
	struct clat_bat_cache bc;
	struct clat_dev_seg dseg[CLAT_MAX_SEGMENTS];
	uint32_t live;          /* bit k: segment k is live */
	struct shadow_seg_view seg[CLAT_MAX_SEGMENTS];
};

/* -ENOENT if fn has no guest of that type. */
int shadow_view_open(const struct clat_maps *m, uint32_t fn, uint32_t type, struct shadow_view *v);
void shadow_view_close(struct shadow_view *v);
/* The context of svc and its block's dirty word, or NULL. */
struct clat_ctx *shadow_view_ctx(const struct shadow_view *v, uint32_t svc, uint64_t **dirty);

/* Service number of slot i of segment k. */
static inline uint32_t shadow_seg_svc(const struct shadow_view *v, uint32_t k, uint32_t i)
{
	return v->dseg[k].base + 1 + i;
}

enum sync_mode {
	SYNC_ALL,       /* every block; dirty marks untouched */
	SYNC_ALL_CLEAR, /* every block, clearing dirty marks: a pre-copy's first round */
	SYNC_DIRTY,     /* only blocks marked dirty, clearing the marks */
};

struct gpa_list {
	uint64_t *gpa;
	size_t n, cap;
};

/* An open write-back of fn's contexts into its guest memory.  The guest
 * tables are validated once, when it opens (the costly part: every context
 * is checked); each round after that checks only that the guest and the
 * device still serve that generation, and copies what its mode asks for.
 * A migration opens it for the pre-copy, while the VM runs, so that the
 * stop-copy inside the pause costs O(blocks scanned + dirty blocks copied). */
struct shadow_writeback {
	const struct clat_maps *m;
	uint32_t fn;
	struct clat_guest_info gi;
	struct gmem g;
	struct gtables t;
	struct shadow_view v[CLAT_MAX_TYPES]; /* v[i] is t.types[i] */
	bool loaded;
};

int shadow_writeback_open(const struct clat_maps *m, uint32_t fn, struct shadow_writeback *wb);
/* Counts the contexts written; blocks (may be NULL) collects the GPAs of
 * the blocks a SYNC_DIRTY round copied. */
int shadow_writeback_round(struct shadow_writeback *wb, enum sync_mode mode, uint64_t *written,
			   uint64_t *bytes, struct gpa_list *blocks);
void shadow_writeback_close(struct shadow_writeback *wb);
/* -ESTALE (message printed) if the guest changed its tables or the device
 * detached or resynced them since the open; every round checks it first. */
int shadow_writeback_check(const struct shadow_writeback *wb);

/* One round on a write-back of its own: open, round, close. */
int shadow_sync(const struct clat_maps *m, uint32_t fn, enum sync_mode mode, uint64_t *written,
		uint64_t *bytes, struct gpa_list *blocks);

#endif
