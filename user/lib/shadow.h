/* SPDX-License-Identifier: GPL-2.0 */
/* The device-side shadow of a guest's tables: each (type, segment) of the
 * guest gets an extent of the PF's context pool, filled from guest memory;
 * fn_desc[fn] says where they are, guest_types[fn, type] keeps the BAT
 * entry they were validated from, and VCT[fn].bat_gpa is the switch that
 * turns tracking on.  The host keeps the CLAT tiers (in guest memory and
 * in gtables): the datapath never walks them. */
#ifndef CLAT_SHADOW_H
#define CLAT_SHADOW_H

#include "gtables.h"
#include "maps.h"
#include "owned.h"
#include "pool.h"

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

/* -EBUSY and *other when a fn other than fn has id's file attached. */
int guest_mem_user(const struct clat_maps *m, uint32_t fn, const struct gmem_id *id,
		   uint32_t *other);

#endif
