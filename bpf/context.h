/* SPDX-License-Identifier: GPL-2.0 */
/* Per-connection contexts in the PF's context pool.  A flow of a service
 * type has, in each capacity segment, two candidate buckets of 32 slots
 * (clat_bucket_of); each bucket's tag line (pool_meta) says which slot, if
 * any, holds it.  Lookups try every live segment, newest first; new flows
 * go to the emptier candidate of the newest.  The slot's service number is
 * the guest-visible place of the context (clat_slot_svc), so the host can
 * write it back to guest memory; the datapath never walks guest tables. */
#ifndef CLAT_CONTEXT_H
#define CLAT_CONTEXT_H

#include "tcp.h"

#define IDX_NONE (-1)

/* How long a flow that was never answered keeps its slot against a claim
 * that finds both candidate buckets full (see evict_slot).  Set by
 * clat-load before load. */
const volatile __u64 evict_age_ns = 2000000000ULL;

/* One frame's tracking state, on clat_track's stack; global subprograms
 * get a pointer to it. */
struct flow_track {
	struct flow_info fi;
	__u64 hash;
	__u64 len;        /* frame length, for the byte counters */
	__u64 now;        /* CLOCK_TAI from the coarse clock */
	__u32 fn;
	__u32 dir;
	__u32 type;
	__u32 tag;
	__u32 rx_queue;
	__u32 released;   /* the update closed the flow and freed its slot */
	/* the newest segment, where a claim goes */
	__u32 base;
	__u32 first_bucket;
	__u32 nbuckets;
	__u32 result;     /* clat_take: enum track_result */
};

/* ---- Tag lines: 32 16-bit tags in 8 words, compared 4 at a time -------- */

#define LANES_LO 0x7fff7fff7fff7fffULL
#define LANE_ONES 0x0001000100010001ULL

/* Bit 16 * l + w of the result is set when lane l of word w equals tag:
 * slot 4 * w + l.  Exact (no carries between lanes). */
static __always_inline __u64 lanes_equal(const struct clat_bucket *m, __u32 tag)
{
	const __u64 *words = (const __u64 *)m->tag;
	__u64 pat = (__u64)tag * LANE_ONES, acc = 0, x, y;
	int w;

#pragma unroll
	for (w = 0; w < CLAT_BUCKET_SLOTS / 4; w++) {
		x = words[w] ^ pat;
		y = ~(((x & LANES_LO) + LANES_LO) | x | LANES_LO); /* bit 15 of a zero lane */
		acc |= (y >> (15 - w)) & (LANE_ONES << w);
	}
	return acc;
}

static __always_inline __u32 mask_slot(__u32 bit)
{
	return (bit & 15) * 4 + (bit >> 4);
}

static __always_inline __u32 slot_bit(__u32 slot)
{
	return (slot & 3) * 16 + (slot >> 2);
}

/* Index of the lowest set bit of a non-zero x (de Bruijn). */
static const __u8 debruijn64[64] = {
	0,  1,  48, 2,  57, 49, 28, 3,  61, 58, 50, 42, 38, 29, 17, 4,
	62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5,
	63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
	46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9,  13, 8,  7,  6,
};

static __always_inline __u32 lowest_bit(__u64 x)
{
	return debruijn64[(((x & -x) * 0x03f79d71b4cb0a89ULL) >> 58) & 63];
}

static __always_inline __u32 popcount64(__u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

/* ---- Slots ---------------------------------------------------------------- */

static __always_inline __u64 read_state(struct clat_ctx *c)
{
	return *(volatile __u64 *)&c->state_word;
}

static __always_inline __u64 live_word(__u32 tag)
{
	return (__u64)tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_LIVE;
}

static __always_inline int key_eq(const struct clat_flow_key *a, const struct clat_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

static __always_inline int slot_holds(__u32 idx, __u32 tag, const struct clat_flow_key *key)
{
	struct clat_ctx *c = bpf_map_lookup_elem(&pool_ctx, &idx);

	/* A slot being claimed or released is no one's yet (or any more). */
	return c && read_state(c) == live_word(tag) && key_eq(&c->key, key);
}

/* The pool index of the LIVE slot of bucket that holds key (tag tag),
 * other than skip; IDX_NONE if none.  All 32 tags are compared four at a
 * time, then the key of each match.  A global function: verified once. */
__noinline int clat_bucket_find(__u32 bucket, __u32 tag, const struct clat_flow_key *key,
				int skip)
{
	struct clat_bucket *m = bpf_map_lookup_elem(&pool_meta, &bucket);
	__u32 idx, i;
	__u64 cand;

	if (!m || !key) /* key: for the verifier, a global function's pointer may be NULL */
		return IDX_NONE;
	cand = lanes_equal(m, tag);
	/* Tags collide in a bucket about once in 2000 lookups, twice almost
	 * never: the bound is for the verifier. */
	for (i = 0; i < CLAT_BUCKET_SLOTS && cand; i++) {
		idx = bucket * CLAT_BUCKET_SLOTS + mask_slot(lowest_bit(cand));
		cand &= cand - 1;
		if ((int)idx != skip && slot_holds(idx, tag, key))
			return idx;
	}
	return IDX_NONE;
}

/* Marks the bucket for the next write-back, after every store to it.  A
 * write-back clears the mark (an atomic and, a full barrier) and then
 * copies the bucket, so every store must be visible before the mark is
 * read: callers end their stores with a fully ordered atomic (see
 * update_ctx).  Then a mark seen set needs no atomic: a write-back that
 * clears it after our read copies our stores, and one that cleared it
 * before our read left it set by a later writer, so the next round copies
 * the bucket.  Most frames see it set and skip a locked write. */
static __always_inline void mark_dirty(__u32 bucket)
{
	__u32 word = bucket / 64;
	__u64 *d = bpf_map_lookup_elem(&pool_dirty, &word), bit = 1ULL << (bucket & 63);

	if (d && !(*(volatile __u64 *)d & bit))
		__sync_fetch_and_or(d, bit);
}

static __always_inline void set_tag(__u32 idx, __u16 tag)
{
	__u32 bucket = idx / CLAT_BUCKET_SLOTS;
	struct clat_bucket *m = bpf_map_lookup_elem(&pool_meta, &bucket);

	if (m)
		*(volatile __u16 *)&m->tag[idx & (CLAT_BUCKET_SLOTS - 1)] = tag;
}

/* LIVE -> RELEASED, then the tag is cleared: no claim can take the slot
 * before it is released, and only the CPU whose CAS won clears it. */
static __always_inline int release_slot(struct clat_ctx *c, __u32 idx, __u32 tag)
{
	__u64 live = live_word(tag);

	if (__sync_val_compare_and_swap(&c->state_word, live,
					(live & ~CLAT_SLOT_STATE_MASK) | CLAT_SLOT_RELEASED) != live)
		return 0;
	set_tag(idx, CLAT_TAG_FREE);
	mark_dirty(idx / CLAT_BUCKET_SLOTS);
	return 1;
}

/* Updates the context at idx; sets tr->released if the flow closed.  The
 * byte counter goes last, with a fetching atomic add: it is fully ordered,
 * which puts every store above it before mark_dirty's read.  A global
 * function: the hit and the claim share one verified copy. */
__noinline int clat_update(__u32 idx, struct flow_track *tr)
{
	struct clat_ctx *c = bpf_map_lookup_elem(&pool_ctx, &idx);
	__u64 fence;
	__u32 dir;

	if (!c || !tr)
		return 0;
	dir = tr->dir;
	c->last_seen_ns = tr->now;
	c->rx_queue = tr->rx_queue;
	if (tr->fi.key.proto == IPPROTO_TCP && tcp_update(c, &tr->fi, dir, tr->now))
		tr->released = release_slot(c, idx, tr->tag);
	/* Constant indexes per branch: a loaded dir carries no bound the
	 * verifier could use.  One direction of a flow arrives on one queue
	 * (RSS), so its packet counter has one writer; the byte counter's
	 * atomic add is the fence mark_dirty needs. */
	if (dir == CLAT_DIR_OUT) {
		c->packets[CLAT_DIR_OUT]++;
		fence = __sync_fetch_and_add(&c->bytes[CLAT_DIR_OUT], tr->len);
	} else {
		c->packets[CLAT_DIR_IN]++;
		fence = __sync_fetch_and_add(&c->bytes[CLAT_DIR_IN], tr->len);
	}
	barrier_var(fence); /* a used result makes it BPF_FETCH, fully ordered */
	mark_dirty(idx / CLAT_BUCKET_SLOTS);
	return 0;
}

enum track_result {
	TRACK_HIT = CLAT_STAT_CTX_HIT,
	TRACK_CLAIM = CLAT_STAT_CTX_CLAIM,
	TRACK_FULL = CLAT_STAT_CTX_FULL,
	TRACK_MISS = CLAT_STAT_CTX_MISS,
	TRACK_SKIP = CLAT_STAT_CTX_SKIP,
	TRACK_BUSY = CLAT_STAT_CTX_BUSY,
	TRACK_EVICT = CLAT_STAT_CTX_EVICT, /* a claim that took over an unanswered flow's slot */
};

#define BUCKET_NONE 0xffffffffU

/* The flow's slot in any live segment, or IDX_NONE.  A claim puts a flow
 * in its home slot (tag mod 32) when that is free, so the home tags of
 * both candidates of every live segment are read first: the tag lines are
 * small (64 bytes per 32 contexts) and mostly cached, and their loads are
 * independent.  A home tag that matches names the one context line to
 * read: a flow at home costs one context miss, like a hash table's entry.
 * Then every tag of each candidate (clat_bucket_find) for a flow that is
 * not at home.  A flow lives in one segment at most (a claim first looks
 * everywhere), so the order does not matter.  Unrolled: no loop callback.
 * A global function, verified once for its two callers (a frame, and a
 * claim looking again under its lock); seg_state is what the caller read. */
__noinline int clat_find(const struct flow_track *tr, __u32 seg_state)
{
	const struct clat_type_desc *td;
	const struct clat_fn_desc *d;
	__u32 newest = (seg_state >> CLAT_SEG_NEWEST_SHIFT) & (CLAT_MAX_SEGMENTS - 1);
	__u32 home, b[CLAT_MAX_SEGMENTS][2], i, c, k, idx;
	__u32 at_home = 0; /* bit 2 * i + c: that candidate's home tag is the flow's */
	const struct clat_dev_seg *sg;
	struct clat_bucket *m;
	struct clat_ctx *ctx;
	__u64 live;
	int found;

	if (!tr) /* for the verifier: a global function's pointer may be NULL */
		return IDX_NONE;
	home = tr->tag & (CLAT_BUCKET_SLOTS - 1);
	live = live_word(tr->tag);
	d = bpf_map_lookup_elem(&fn_desc, &tr->fn);
	if (!d)
		return IDX_NONE;
	td = &d->type[tr->type & (CLAT_MAX_TYPES - 1)];
#pragma unroll
	for (i = 0; i < CLAT_MAX_SEGMENTS; i++) {
		k = (newest - i) & (CLAT_MAX_SEGMENTS - 1);
		sg = &td->seg[k];
#pragma unroll
		for (c = 0; c < 2; c++) {
			b[i][c] = BUCKET_NONE;
			if (!(seg_state & (1U << k)) || !sg->nbuckets)
				continue;
			b[i][c] = sg->first_bucket + clat_bucket_of(tr->hash, c, sg->nbuckets);
			m = bpf_map_lookup_elem(&pool_meta, &b[i][c]);
			if (m && *(volatile __u16 *)&m->tag[home] == tr->tag)
				at_home |= 1U << (2 * i + c);
		}
	}
#pragma unroll
	for (i = 0; i < CLAT_MAX_SEGMENTS; i++)
#pragma unroll
		for (c = 0; c < 2; c++) {
			if (!(at_home & (1U << (2 * i + c))))
				continue;
			idx = b[i][c] * CLAT_BUCKET_SLOTS + home;
			ctx = bpf_map_lookup_elem(&pool_ctx, &idx);
			if (ctx && read_state(ctx) == live && key_eq(&ctx->key, &tr->fi.key))
				return idx;
		}
#pragma unroll
	for (i = 0; i < CLAT_MAX_SEGMENTS; i++)
#pragma unroll
		for (c = 0; c < 2; c++) {
			if (b[i][c] == BUCKET_NONE || (c && b[i][1] == b[i][0]))
				continue;
			found = clat_bucket_find(b[i][c], tr->tag, &tr->fi.key,
						 b[i][c] * CLAT_BUCKET_SLOTS + home);
			if (found != IDX_NONE)
				return found;
		}
	return IDX_NONE;
}

/* Free slots of a bucket, as lanes_equal bits. */
static __always_inline __u64 free_lanes(__u32 bucket)
{
	struct clat_bucket *m = bpf_map_lookup_elem(&pool_meta, &bucket);

	return m ? lanes_equal(m, CLAT_TAG_FREE) : 0;
}

static __always_inline void init_ctx(struct clat_ctx *c, const struct flow_track *tr, __u32 svc)
{
	__builtin_memset((__u8 *)c + sizeof(c->state_word), 0, sizeof(*c) - sizeof(c->state_word));
	c->key = tr->fi.key;
	c->tcp_state = tr->fi.key.proto == IPPROTO_TCP ? CLAT_TCP_SYN_SENT : CLAT_TCP_NONE;
	c->initiator = tr->dir;
	c->fn = tr->fn;
	c->type = tr->type;
	c->svc = svc;
	c->first_seen_ns = tr->now;
}

/* Fills a slot won by a claim (state CLAIMING) and makes it the flow's.
 * The CAS orders the record's stores before LIVE; the tag goes last, so a
 * lookup that matches it finds the record whole. */
static __always_inline void publish(struct clat_ctx *c, const struct flow_track *tr,
				    __u32 bucket, __u32 slot)
{
	__u64 claiming = (__u64)tr->tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_CLAIMING;

	init_ctx(c, tr, clat_slot_svc(tr->base, bucket - tr->first_bucket, slot));
	__sync_val_compare_and_swap(&c->state_word, claiming, live_word(tr->tag));
	set_tag(bucket * CLAT_BUCKET_SLOTS + slot, tr->tag);
}

/* Takes a free slot of bucket (its free lanes in cand), home slot first.
 * Returns the pool index, or IDX_NONE if racing claims took them all. */
static __always_inline int take_slot(__u32 bucket, __u64 cand, const struct flow_track *tr)
{
	__u64 claiming = (__u64)tr->tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_CLAIMING, sw;
	__u32 home = slot_bit(tr->tag & (CLAT_BUCKET_SLOTS - 1)), bit, slot, idx, i;
	struct clat_ctx *c;

	for (i = 0; i < CLAT_BUCKET_SLOTS && cand; i++) {
		bit = (cand >> home) & 1 ? home : lowest_bit(cand);
		cand &= ~(1ULL << (bit & 63));
		slot = mask_slot(bit);
		idx = bucket * CLAT_BUCKET_SLOTS + slot;
		c = bpf_map_lookup_elem(&pool_ctx, &idx);
		if (!c)
			return IDX_NONE;
		sw = read_state(c);
		if ((sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_CLAIMING ||
		    (sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE ||
		    __sync_val_compare_and_swap(&c->state_word, sw, claiming) != sw)
			continue;
		publish(c, tr, bucket, slot);
		return idx;
	}
	return IDX_NONE;
}

/* Claims of one flow serialize on a stripe of claim locks, picked by its
 * tag: the second CPU to miss a new flow finds, under the lock, the slot
 * the first one published, so a flow never takes two slots and no frame
 * is counted into a copy that is then dropped.  Only a flow's first frames
 * come here; the hit path takes no lock.  XDP runs with preemption off, so
 * a holder finishes within a few hundred ns; a waiter gives up after
 * CLAIM_SPINS tries (a preempted vCPU) and counts the frame as busy. */
#define CLAIM_SPINS (1 << 12)

struct claim_spin {
	__u64 *lock;
	int got;
};

static long claim_spin_cb(__u32 i, struct claim_spin *a)
{
	if (__sync_val_compare_and_swap(a->lock, 0, 1) != 0)
		return 0;
	a->got = 1;
	return 1;
}

static __always_inline __u64 *claim_lock(__u32 tag)
{
	__u32 stripe = tag & (CLAT_CLAIM_STRIPES - 1);
	__u64 *lock = bpf_map_lookup_elem(&claim_locks, &stripe);
	struct claim_spin a = { lock, 0 };

	if (!lock)
		return NULL;
	if (__sync_val_compare_and_swap(lock, 0, 1) == 0)
		return lock;
	bpf_loop(CLAIM_SPINS, claim_spin_cb, &a, 0);
	return a.got ? lock : NULL;
}

static __always_inline void claim_unlock(__u64 *lock)
{
	__sync_val_compare_and_swap(lock, 1, 0); /* fully ordered: our slot's tag is out */
}

/* A flood of flows that are never answered must not keep the flows a VM
 * opens from getting contexts: when both candidates are full, a slot whose
 * flow got no reply and was last seen more than evict_age_ns ago may be
 * taken over.  A few slots of each bucket are looked at, spread by tag. */
#define EVICT_LOOKS 4

static __always_inline int evictable(const struct clat_ctx *c, __u64 sw, __u64 now)
{
	__u32 replies = c->initiator ? c->packets[CLAT_DIR_IN] : c->packets[CLAT_DIR_OUT];

	return (sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE && !replies &&
	       now >= c->last_seen_ns && now - c->last_seen_ns >= evict_age_ns;
}

static __always_inline int evict_slot(__u32 bucket, const struct flow_track *tr)
{
	__u64 claiming = (__u64)tr->tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_CLAIMING, sw;
	__u32 j, slot, idx;
	struct clat_ctx *c;

#pragma unroll
	for (j = 0; j < EVICT_LOOKS; j++) {
		slot = (tr->tag + j * 11) & (CLAT_BUCKET_SLOTS - 1);
		idx = bucket * CLAT_BUCKET_SLOTS + slot;
		c = bpf_map_lookup_elem(&pool_ctx, &idx);
		if (!c)
			return IDX_NONE;
		sw = read_state(c);
		if (!evictable(c, sw, tr->now) ||
		    __sync_val_compare_and_swap(&c->state_word, sw, claiming) != sw)
			continue;
		publish(c, tr, bucket, slot);
		return idx;
	}
	return IDX_NONE;
}

/* Under the claim lock: a slot for the flow in the emptier of its two
 * candidate buckets of the newest segment, or an unanswered flow's slot
 * when both are full.  Returns the pool index or IDX_NONE, and sets
 * tr->result.  A global function: only a flow's first frame comes here. */
__noinline int clat_take(struct flow_track *tr)
{
	__u32 b0, b1, pick;
	__u64 f0, f1;
	int idx;

	if (!tr) /* for the verifier: a global function's pointer may be NULL */
		return IDX_NONE;
	tr->result = TRACK_CLAIM;
	b0 = tr->first_bucket + clat_bucket_of(tr->hash, 0, tr->nbuckets);
	b1 = tr->first_bucket + clat_bucket_of(tr->hash, 1, tr->nbuckets);
	f0 = free_lanes(b0);
	f1 = b1 == b0 ? 0 : free_lanes(b1);
	pick = popcount64(f1) > popcount64(f0) ? 1 : 0;
	idx = take_slot(pick ? b1 : b0, pick ? f1 : f0, tr);
	if (idx == IDX_NONE && (pick ? f0 : f1))
		idx = take_slot(pick ? b0 : b1, pick ? f0 : f1, tr);
	if (idx != IDX_NONE || f0 || f1) {
		if (idx == IDX_NONE) /* racing claims took every free slot */
			tr->result = TRACK_BUSY;
		return idx;
	}
	idx = evict_slot(b0, tr);
	if (idx == IDX_NONE && b1 != b0)
		idx = evict_slot(b1, tr);
	tr->result = idx == IDX_NONE ? TRACK_FULL : TRACK_EVICT;
	return idx;
}

/* A frame that opens a flow find() missed: under the flow's claim lock,
 * look again (another CPU may have claimed it meanwhile), else take a
 * slot; then count the frame in it.  Inline in clat_track, so that the
 * deepest call chain stays within the 512-byte stack. */
static __always_inline int claim(struct flow_track *tr, __u32 seg_state)
{
	__u64 *lock;
	int idx;

	if (!tr->nbuckets)
		return TRACK_SKIP;
	lock = claim_lock(tr->tag);
	if (!lock)
		return TRACK_BUSY;
	idx = clat_find(tr, seg_state);
	if (idx != IDX_NONE) {
		claim_unlock(lock);
		clat_update(idx, tr);
		return TRACK_HIT;
	}
	idx = clat_take(tr);
	claim_unlock(lock);
	if (idx != IDX_NONE)
		clat_update(idx, tr);
	return tr->result;
}

#endif
