/* SPDX-License-Identifier: GPL-2.0 */
/* The device's contexts back in guest memory: a mapped view of a fn's
 * shadow, write-back rounds (full or dirty-only, for sync, detach and
 * migration), and the fold of drained segments (writeback.c). */
#ifndef CLAT_WRITEBACK_H
#define CLAT_WRITEBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gtables.h"
#include "maps.h"
#include "pool.h"

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
