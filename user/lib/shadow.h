/* SPDX-License-Identifier: GPL-2.0 */
/* The device-side shadow of a guest's tables: each (type, segment) of the
 * guest gets an extent of the PF's context pool, filled from guest memory;
 * fn_desc[fn] says where they are, guest_types[fn, type] keeps the BAT
 * entry they were validated from, and VCT[fn].bat_gpa is the switch that
 * turns tracking on.  The host keeps the CLAT tiers (in guest memory and
 * in gtables): the datapath never walks them. */
#ifndef CLAT_SHADOW_H
#define CLAT_SHADOW_H

#include "common.h"
#include "gtables.h"
#include "pool.h"

/* Which guest pages the attached tables own, a bit per 4 KiB page: a
 * resync checks new pages and blocks against it instead of walking the
 * old tables again.  Pinned as PIN_OWNED_FMT, never read by the datapath. */
struct shadow_owned {
	int fd;
	uint64_t *bits;
	size_t words, len;
};

/* Builds the map for the validated tables t; pins it as fd in dir (fd -1:
 * unpins); opens a pinned one. */
int shadow_owned_build(uint32_t fn, const struct gmem *g, const struct gtables *t,
		       struct shadow_owned *o);
int shadow_owned_pin(const char *dir, uint32_t fn, int fd);
int shadow_owned_open(const char *dir, uint32_t fn, struct shadow_owned *o);
void shadow_owned_close(struct shadow_owned *o);

/* A staged block: where it is in the tables the stage was built from. */
struct shadow_block {
	uint64_t gpa;
	uint32_t block;  /* index into the type's block_gpa[] */
	uint16_t type;   /* index into gtables.types[] */
	uint16_t seg;
};

/* A shadow built into STAGED pool extents, not yet visible: the slow part
 * runs before a migration's switchover, and the switch itself is a few
 * map updates, with no map creation and no RCU wait. */
struct shadow_stage {
	const struct clat_maps *m;
	uint32_t fn;
	uint32_t ntypes;
	struct clat_fn_desc desc;
	struct clat_bat_entry entry[CLAT_MAX_TYPES];  /* by BAT type index */
	struct clat_guest_info gi;
	struct shadow_owned owned;
	struct pool pool;
	struct shadow_block *blocks; /* [block_mask + 1]: by GPA, for the reload */
	size_t block_mask;
	uint64_t live;
	uint64_t folded;             /* drained segments left off the device */
	bool committed;
};

int shadow_stage_build(struct shadow_stage *st, const struct clat_maps *m, uint32_t fn,
		       const char *mem_path, const struct gmem *g, const struct gtables *t);
/* Re-reads the contexts of the listed blocks (GPAs, any order) from t, the
 * tables st was built from: O(n).  GPAs that are no block of t are
 * skipped; *reloaded counts the blocks re-read. */
int shadow_stage_reload(struct shadow_stage *st, const struct gmem *g, const struct gtables *t,
			const uint64_t *blocks, size_t n, uint64_t *reloaded);
/* Publishes: pins the page-ownership map, records the guest, writes
 * fn_desc and flips VCT[fn].bat_gpa. */
int shadow_stage_commit(struct shadow_stage *st, const char *dir);
/* Frees what an uncommitted stage holds, its extents included. */
void shadow_stage_free(struct shadow_stage *st);

int shadow_install(const struct clat_maps *m, const char *dir, uint32_t fn,
		   const char *mem_path, const struct gmem *g, const struct gtables *t,
		   uint64_t *live);

/* Opens guest memory at mem_path, validates the tables at bat_gpa and
 * installs them for fn: the whole of a guest attach, for programs that
 * build their own world (tests, the bench).  err gets the validator's
 * message on failure. */
int shadow_install_file(const struct clat_maps *m, const char *dir, uint32_t fn,
			const char *mem_path, uint64_t bat_gpa, char *err, size_t errlen,
			uint64_t *live);

/* fn is not tracking but holds device state of an attach or a migration
 * that died before it finished: fn_desc entries or pool extents. */
bool shadow_leftovers(const struct clat_maps *m, uint32_t fn);
/* Turns tracking off for fn and frees its extents (no sync). */
int shadow_remove(const struct clat_maps *m, const char *dir, uint32_t fn);

/* Copies a context out of guest memory once and keeps it only if it is a
 * self-consistent LIVE or RELEASED record of svc; else dst becomes EMPTY.
 * A LIVE record must sit in one of its flow's candidate buckets (nbuckets
 * of the segment, bucket b); *tag receives its tag, 0 if not LIVE. */
bool shadow_take_ctx(struct clat_ctx *dst, const struct clat_ctx *src, uint32_t svc,
		     uint32_t type, uint32_t fn, uint32_t seed, uint32_t nbuckets, uint32_t b,
		     uint16_t *tag);

/* Fills segment k of BAT entry e (type index type, P = per_block) into a
 * fresh STAGED extent (key clat_extent_key(fn, type, k)), reading each
 * block of contexts at block_gpa(arg, global block index); blocks in holes
 * of data (may be NULL) are not read.  sg receives the device segment;
 * *live counts the LIVE contexts taken, *read the records read. */
typedef uint64_t (*shadow_gpa_fn)(const void *arg, uint32_t block);
int shadow_seg_fill(const struct clat_maps *m, const struct pool *p, uint32_t fn,
		    const struct gmem *g, const struct gmem_data *data,
		    const struct clat_bat_entry *e, uint32_t type, uint32_t per_block, uint32_t k,
		    shadow_gpa_fn block_gpa, const void *arg, struct clat_dev_seg *sg,
		    uint64_t *live, uint64_t *read);

/* One segment of a view: ctx[i] holds service base + 1 + i. */
struct shadow_seg_view {
	struct clat_ctx *ctx;
	uint32_t n;             /* the segment's size */
	uint32_t first_bucket;
};

/* Mapped view of one type's contexts (read-write, shared with the datapath). */
struct shadow_view {
	struct clat_type_desc td;
	struct clat_bat_entry e;  /* what the guest's tables were validated as */
	uint32_t live;            /* bit k: segment k is live on the device */
	struct shadow_seg_view seg[CLAT_MAX_SEGMENTS];
	struct pool pool;
};

/* -ENOENT if fn has no guest of that type. */
int shadow_view_open(const struct clat_maps *m, uint32_t fn, uint32_t type, struct shadow_view *v);
void shadow_view_close(struct shadow_view *v);
/* The context of svc, or NULL; *seg receives its segment. */
struct clat_ctx *shadow_view_ctx(const struct shadow_view *v, uint32_t svc, uint32_t *seg);
/* LIVE -> RELEASED if still LIVE (loses cleanly to the datapath), its tag
 * cleared and its bucket marked for write-back.  For gc. */
bool shadow_view_release(struct shadow_view *v, uint32_t k, uint32_t i);
/* Segments whose contexts are all gone come off the device (not the
 * newest, which takes new flows).  *folded counts them. */
int shadow_fold(const struct clat_maps *m, uint32_t fn, uint32_t *folded);

/* Service number of slot i of segment k. */
static inline uint32_t shadow_seg_svc(const struct shadow_view *v, uint32_t k, uint32_t i)
{
	return v->td.seg[k].base + 1 + i;
}

enum sync_mode {
	SYNC_ALL,       /* every bucket; dirty marks untouched */
	SYNC_ALL_CLEAR, /* every bucket, clearing dirty marks: a pre-copy's first round */
	SYNC_DIRTY,     /* only buckets marked dirty, clearing the marks */
};

/* Block GPAs and their sizes (len[i] is gpa[i]'s block size). */
struct gpa_list {
	uint64_t *gpa;
	uint32_t *len;
	size_t n, cap;
};

void gpa_list_free(struct gpa_list *l);

/* An open write-back of fn's contexts into its guest memory.  The guest
 * tables are validated once, when it opens (the costly part: every context
 * is checked); each round after that checks only that the guest and the
 * device still serve that generation, and copies what its mode asks for.
 * A migration opens it for the pre-copy, while the VM runs, so that the
 * stop-copy inside the pause costs O(dirty words + dirty buckets). */
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
 * the guest blocks the round wrote (consecutive repeats dropped). */
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
