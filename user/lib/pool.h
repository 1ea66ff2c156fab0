/* SPDX-License-Identifier: GPL-2.0 */
/* The PF's context pool: one mmapable array of contexts, a tag line per
 * bucket and a dirty bit per bucket, shared by every fn; and the
 * allocator that hands each (fn, type, segment) a contiguous extent.
 *
 * The allocator's state is the pinned map pool_alloc, changed only under
 * an flock on the PF's pin dir, so concurrent or restarted clat-load
 * processes agree on it.  An extent is STAGED (owned by a live process,
 * not yet in fn_desc) or LIVE (in fn_desc).  A STAGED extent whose owner
 * died, and a LIVE one that fn_desc no longer names, is reclaimed by the
 * next allocation: a crash at any step leaks nothing. */
#ifndef CLAT_POOL_H
#define CLAT_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "clat_abi.h"

struct clat_maps;

/* The pool, mapped read-write (shared with the datapath). */
struct pool {
	uint32_t nbuckets;
	struct clat_ctx *ctx;        /* [nbuckets * CLAT_BUCKET_SLOTS] */
	struct clat_bucket *meta;    /* [nbuckets] */
	uint64_t *dirty;             /* [(nbuckets + 63) / 64] bits */
	size_t ctx_len, meta_len, dirty_len;
};

int pool_map(const struct clat_maps *m, struct pool *p);
void pool_unmap(struct pool *p);

/* Takes and drops the allocator lock (a no-op for maps without a pin dir). */
int pool_lock(const struct clat_maps *m);
void pool_unlock(const struct clat_maps *m);

/* Under the lock: a STAGED extent of nbuckets for key (clat_extent_key),
 * owned by this process; its buckets' tags are reset to FREE and their
 * dirty bits cleared.  -ENOSPC with "context memory: N free, M needed". */
int pool_alloc_locked(const struct clat_maps *m, const struct pool *p, uint32_t key,
		      uint32_t nbuckets, uint32_t *first_bucket);
/* STAGED -> LIVE, once fn_desc names the extent. */
int pool_set_live(const struct clat_maps *m, uint32_t key);
/* Frees the extents of key; the caller has taken them out of fn_desc and
 * waited for the datapath (pool_quiesce). */
int pool_free(const struct clat_maps *m, uint32_t key);
/* Frees every STAGED extent of dead owners and every LIVE extent that
 * fn_desc does not name; returns the number freed or -errno. */
int pool_reclaim_locked(const struct clat_maps *m);
/* The same, taking the lock itself. */
int pool_reclaim(const struct clat_maps *m);

/* Waits until no datapath run still uses what was just unpublished (an
 * RCU grace period): before an extent is handed to someone else. */
int pool_quiesce(void);

struct pool_usage {
	uint32_t nbuckets, free_buckets, largest_free;
	uint32_t fn_buckets[CLAT_MAX_FN];
	uint32_t staged_buckets;
};

int pool_usage(const struct clat_maps *m, struct pool_usage *u);

#endif
