/* SPDX-License-Identifier: GPL-2.0 */
/* Per-connection contexts in guest-owned tables, reached through the slot
 * design: in a capacity segment [base + 1, base + size],
 * svc = base + 1 + (hash(seed, key) + p) mod size for p in the probe window,
 * each candidate found by walking the segment's CLAT tiers, the stored key
 * compared.  Lookups probe every live segment, newest first; new flows go to
 * the newest.  The device keeps no per-flow state of its own. */
#ifndef CLAT_CONTEXT_H
#define CLAT_CONTEXT_H

#define PROBE_NONE 0xffffffffU
/* Bound on re-reads while another CPU finishes claiming a slot.  It has
 * only a few stores left, but a vCPU can be descheduled between them. */
#define CLAIM_SETTLE_READS (1 << 16)
/* How far a RST's sequence may be from the next expected one. */
#define RST_SEQ_SLACK (1U << 20)

struct guest_view {
	const struct clat_bat_cache *b;
	void *tiers;     /* of the segment being probed */
	void *ctxs;
	void *dirty;
	__u32 base;      /* the segment: services base + 1 .. base + size */
	__u32 size;
	__u32 levels;
	__u32 hash;
	__u32 type;
	__u32 fn;
};

struct slot {
	struct clat_ctx *ctx;
	__u32 svc;
	__u32 block;
	__u32 idx;   /* in the segment's context array */
	__u32 p;
};

/* Starts the loads of a context's cache lines without waiting for them:
 * a hit reads or writes all of them.  A 136-byte record spans at most
 * three 64-byte lines, and these fields lie 64 bytes apart. */
_Static_assert(__builtin_offsetof(struct clat_ctx, seq_next) == 64 &&
	       __builtin_offsetof(struct clat_ctx, drops) == 128 &&
	       sizeof(struct clat_ctx) <= 136, "touch_ctx: one load per cache line");

static __always_inline void touch_ctx(struct clat_ctx *c)
{
	(void)*(volatile __u64 *)&c->state_word;
	(void)*(volatile __u32 *)&c->seq_next[0];
	(void)*(volatile __u64 *)&c->drops;
}

/* The walk itself: offsets from the shared arithmetic, one tier per level.
 * The loader numbers blocks by position (gtables walk_type, seg_flatten),
 * so the walk lands on context svc - 1 - base: that context's lines are
 * loaded first, in parallel with the walk's dependent tier loads rather
 * than after them.  The walk still decides which context it is; the
 * early pointer is not kept, as one more maybe-NULL pointer live across
 * the walk costs the verifier its budget. */
static __always_inline struct clat_ctx *walk(const struct guest_view *g, struct slot *s)
{
	const struct clat_bat_cache *b = g->b;
	__u32 page = 0, idx, guess = s->svc - 1 - g->base;
	struct clat_ctx *early = bpf_map_lookup_elem(g->ctxs, &guess);
	struct clat_loc loc;
	__u64 *ent;
	int l;

	if (early)
		touch_ctx(early);
	if (clat_locate(s->svc, b->per_block, b->clat_entries, g->levels, &loc))
		return NULL;
#pragma unroll
	for (l = 0; l < CLAT_MAX_LEVELS; l++) {
		if (l >= g->levels)
			break;
		idx = page * b->clat_entries + loc.offset[l];
		ent = bpf_map_lookup_elem(g->tiers, &idx);
		if (!ent || *ent == CLAT_TIER_NONE)
			return NULL;
		page = (__u32)*ent;
	}
	s->block = page; /* the segment's own block index */
	s->idx = page * b->per_block + loc.element;
	return bpf_map_lookup_elem(g->ctxs, &s->idx);
}

static __always_inline int probe_slot(const struct guest_view *g, __u32 p, struct slot *s)
{
	s->p = p;
	s->svc = clat_probe_svc(g->hash, p, g->base, g->size);
	s->ctx = walk(g, s);
	return s->ctx ? 0 : -1;
}

static __always_inline __u64 read_state(struct clat_ctx *c)
{
	return *(volatile __u64 *)&c->state_word;
}

static __always_inline __u32 slot_state(__u64 sw)
{
	return sw & CLAT_SLOT_STATE_MASK;
}

static __always_inline __u32 slot_hash(__u64 sw)
{
	return sw >> CLAT_SLOT_HASH_SHIFT;
}

struct settle_wait {
	struct clat_ctx *c;
	__u64 sw;
};

static long settle_cb(__u32 i, struct settle_wait *w)
{
	w->sw = read_state(w->c);
	return slot_state(w->sw) != CLAT_SLOT_CLAIMING;
}

/* Waits (boundedly) for a CLAIMING slot to become LIVE. */
static __always_inline __u64 settle(struct clat_ctx *c, __u64 sw)
{
	struct settle_wait w = { c, sw };

	if (slot_state(sw) == CLAT_SLOT_CLAIMING)
		bpf_loop(CLAIM_SETTLE_READS, settle_cb, &w, 0);
	return w.sw;
}

static __always_inline int key_eq(const struct clat_flow_key *a, const struct clat_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* 1 if the occupant of s (state sw) is our flow, 0 if not, -1 if it never
 * settled. */
static __always_inline int occupant_is(struct slot *s, __u64 sw, const struct guest_view *g,
				       const struct clat_flow_key *key)
{
	__u32 st = slot_state(sw);

	if ((st != CLAT_SLOT_LIVE && st != CLAT_SLOT_CLAIMING) || slot_hash(sw) != g->hash)
		return 0;
	sw = settle(s->ctx, sw);
	if (slot_state(sw) == CLAT_SLOT_CLAIMING)
		return -1;
	return slot_state(sw) == CLAT_SLOT_LIVE && key_eq(&s->ctx->key, key);
}

static __always_inline void init_ctx(struct clat_ctx *c, const struct flow_info *fi, __u32 fn,
				     const struct guest_view *g, __u32 svc, __u32 dir, __u64 now)
{
	__u32 zero = 0;
	struct clat_ctx *fresh = bpf_map_lookup_elem(&ctx_scratch, &zero);

	if (!fresh) /* cannot happen for a 1-entry array; the verifier needs it */
		return;
	__builtin_memset(fresh, 0, sizeof(*fresh));
	fresh->key = fi->key;
	fresh->tcp_state = fi->key.proto == IPPROTO_TCP ? CLAT_TCP_SYN_SENT : CLAT_TCP_NONE;
	fresh->initiator = dir;
	fresh->fn = fn;
	fresh->type = g->type;
	fresh->svc = svc;
	fresh->first_seen_ns = now;
	/* Everything but the state word, which the claimer owns. */
	__builtin_memcpy((__u8 *)c + sizeof(c->state_word), (__u8 *)fresh + sizeof(fresh->state_word),
			 sizeof(*c) - sizeof(c->state_word));
}

/* TCP run state; returns 1 when the connection is over. */
static __always_inline int tcp_update(struct clat_ctx *c, const struct flow_info *fi, __u32 dir,
				      __u64 now)
{
	__u8 flags = fi->tcp_flags, st = c->tcp_state;

	if (flags & TCPF_RST) {
		/* Only a RST near where its sender's sequence is closes the flow,
		 * so a blind spoofer must guess within 2 MiB of 4 GiB.  A sender
		 * that has sent nothing yet (a port's RST to a SYN) has no
		 * sequence here to check against. */
		__u32 next = c->seq_next[dir & 1];

		if (next && fi->seq - next + RST_SEQ_SLACK > 2 * RST_SEQ_SLACK)
			return 0;
		c->tcp_state = CLAT_TCP_CLOSED;
		return 1;
	}
	if ((flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN && st >= CLAT_TCP_FIN_WAIT) {
		/* The 5-tuple is reused by a new connection: start over in place. */
		c->fin_mask = 0;
		c->initiator = dir;
		c->first_seen_ns = now;
		st = CLAT_TCP_SYN_SENT;
	} else if (st == CLAT_TCP_SYN_SENT && (flags & (TCPF_SYN | TCPF_ACK)) == (TCPF_SYN | TCPF_ACK) &&
		   dir != c->initiator) {
		st = CLAT_TCP_SYN_RECV;
	} else if (st == CLAT_TCP_SYN_RECV && (flags & (TCPF_SYN | TCPF_ACK)) == TCPF_ACK &&
		   dir == c->initiator) {
		st = CLAT_TCP_ESTABLISHED;
	}
	if (flags & TCPF_FIN) {
		c->fin_mask |= 1 << dir;
		c->last_fin_dir = dir;
		st = c->fin_mask == 3 ? CLAT_TCP_LAST_ACK : CLAT_TCP_FIN_WAIT;
	} else if (st == CLAT_TCP_LAST_ACK && (flags & TCPF_ACK) && dir != c->last_fin_dir) {
		st = CLAT_TCP_CLOSED;
	}
	c->tcp_state = st;
	dir &= 1;
	if (fi->seq_len)
		c->seq_next[dir] = fi->seq + fi->seq_len;
	if (flags & TCPF_ACK)
		c->ack_last[dir] = fi->ack;
	return st == CLAT_TCP_CLOSED;
}

/* Marks a block for the next write-back, after every store to it.  A sync
 * clears the mark (an atomic exchange, a full barrier) and then copies the
 * block, so every store must be visible before the mark is read: callers
 * end their stores with a fully ordered atomic (see update_ctx).  Then a
 * mark seen set needs no atomic OR: a sync that clears it after our read
 * copies our stores, and one that cleared it before our read left the mark
 * set by a later writer, so the next round copies the block.  Most frames
 * see it set, and skip a locked write to a line that may be cold. */
static __always_inline void mark_dirty(const struct guest_view *g, __u32 block)
{
	__u64 *dirty = bpf_map_lookup_elem(g->dirty, &block);

	if (dirty && !*(volatile __u64 *)dirty)
		__sync_fetch_and_or(dirty, 1);
}

/* Updates the context; returns 1 if the flow closed and the slot was freed.
 * The byte counter goes last, with a fetching atomic add: it is fully
 * ordered, which puts every store above it before mark_dirty's read. */
static __always_inline int update_ctx(const struct guest_view *g, struct slot *s,
				      const struct flow_info *fi, __u32 dir, __u64 len,
				      __u32 rx_queue, __u64 now)
{
	struct clat_ctx *c = s->ctx;
	int released = 0;
	__u64 fence;

	c->last_seen_ns = now;
	c->rx_queue = rx_queue;
	if (fi->key.proto == IPPROTO_TCP && tcp_update(c, fi, dir, now)) {
		__u64 live = ((__u64)g->hash << CLAT_SLOT_HASH_SHIFT) | CLAT_SLOT_LIVE;

		released = __sync_val_compare_and_swap(&c->state_word, live,
						       (live & ~CLAT_SLOT_STATE_MASK) |
							       CLAT_SLOT_TOMBSTONE) == live;
	}
	/* Constant indexes per branch: a loaded dir carries no bound the
	 * verifier could use. */
	if (dir == CLAT_DIR_OUT) {
		__sync_fetch_and_add(&c->packets[CLAT_DIR_OUT], 1);
		fence = __sync_fetch_and_add(&c->bytes[CLAT_DIR_OUT], len);
	} else {
		__sync_fetch_and_add(&c->packets[CLAT_DIR_IN], 1);
		fence = __sync_fetch_and_add(&c->bytes[CLAT_DIR_IN], len);
	}
	barrier_var(fence); /* a used result makes it BPF_FETCH, fully ordered */
	mark_dirty(g, s->block);
	return released;
}

enum track_result {
	TRACK_HIT = CLAT_STAT_CTX_HIT,
	TRACK_CLAIM = CLAT_STAT_CTX_CLAIM,
	TRACK_FULL = CLAT_STAT_CTX_FULL,
	TRACK_MISS = CLAT_STAT_CTX_MISS,
	TRACK_SKIP = CLAT_STAT_CTX_SKIP,
	TRACK_BUSY = CLAT_STAT_CTX_BUSY,
};

/* State of one probe pass.  The passes run under bpf_loop() so that the
 * verifier checks one window position, not every path through 32 of them. */
struct slot_probe {
	struct guest_view g;
	const struct flow_info *fi;
	__u64 now;
	__u32 fn;
	__u32 dir;
	__u32 free_p;  /* first EMPTY or TOMBSTONE position of the newest segment */
	__u32 from;    /* claim: first position to try */
	__u32 won;     /* yield: the position we claimed */
	__u32 won_svc;
	__u64 len;     /* frame length, for the byte counters */
	__u32 rx_queue;
	__u32 seg_state;   /* bat_cache seg_state, read once per frame */
	__u32 newest;
	/* find: the positions probed inline, then find_cb's offset (callback j
	 * probes scan position j + skip).  One field for both: with one more
	 * u32 here the stack layout made the verifier's states differ and the
	 * programs went past its 1M-instruction budget. */
	__u32 skip;
	__u32 done_seg;    /* find: the segment whose scan met an EMPTY slot */
	__u32 cur_seg;     /* the segment pr->g points at */
	__u32 s_seg;       /* the segment pr->s was walked in, PROBE_NONE if none */
	__u32 hit_seg;     /* where the flow's context is (TRACK_HIT, TRACK_CLAIM) */
	__u32 hit_svc;
	int result;
	int released;  /* the update closed the flow and freed the slot */
	struct slot s;
};

/* Probe p of the segment pr->g points at, into pr->s.  Linear probing
 * mostly stays in one block: when svc follows the last walked one in the
 * same block, its context is the next array element and the tier walk
 * (one map lookup per level) is skipped. */
static __always_inline int probe_next(struct slot_probe *pr, __u32 p)
{
	struct slot *s = &pr->s;
	__u32 svc = clat_probe_svc(pr->g.hash, p, pr->g.base, pr->g.size);

	if (pr->s_seg == pr->cur_seg && svc == s->svc + 1 && (svc - 1) % pr->g.b->per_block) {
		s->idx++;
		s->ctx = bpf_map_lookup_elem(pr->g.ctxs, &s->idx);
	} else {
		s->svc = svc;
		s->ctx = walk(&pr->g, s);
	}
	s->p = p;
	s->svc = svc;
	pr->s_seg = s->ctx ? pr->cur_seg : PROBE_NONE;
	return s->ctx ? 0 : -1;
}

/* The passes find the flow's slot and update it there.  Context pointers
 * cannot leave a bpf_loop callback (the verifier forgets their type in the
 * caller's frame), so a slot found by claim or yield is walked to again by
 * update_hit. */
static __always_inline void found_at(struct slot_probe *pr, __u32 svc, int result)
{
	pr->hit_seg = pr->cur_seg;
	pr->hit_svc = svc;
	pr->result = result;
}

/* An occupied slot ends the pass if it holds our flow or never settled;
 * otherwise the pass goes on. */
static __always_inline long join_occupant(struct slot_probe *pr, __u64 sw)
{
	int r = occupant_is(&pr->s, sw, &pr->g, &pr->fi->key);

	if (r > 0)
		found_at(pr, pr->s.svc, TRACK_HIT);
	else if (r < 0)
		pr->result = TRACK_BUSY;
	return r != 0;
}

/* claim: take the first free slot from pr->from on, or join the flow if a
 * racing CPU claimed it first. */
static long claim_cb(__u32 i, struct slot_probe *pr)
{
	__u64 claiming = ((__u64)pr->g.hash << CLAT_SLOT_HASH_SHIFT) | CLAT_SLOT_CLAIMING;
	__u32 p = pr->from + i;
	__u64 sw;
	__u32 st;

	if (p >= pr->g.b->probe_window)
		return 1;
	if (probe_next(pr, p)) {
		pr->result = TRACK_SKIP;
		return 1;
	}
	sw = read_state(pr->s.ctx);
	st = slot_state(sw);
	if (st == CLAT_SLOT_EMPTY || st == CLAT_SLOT_TOMBSTONE) {
		if (__sync_val_compare_and_swap(&pr->s.ctx->state_word, sw, claiming) == sw) {
			init_ctx(pr->s.ctx, pr->fi, pr->fn, &pr->g, pr->s.svc, pr->dir, pr->now);
			/* The CAS orders the key stores before LIVE. */
			__sync_val_compare_and_swap(&pr->s.ctx->state_word, claiming,
						    (claiming & ~CLAT_SLOT_STATE_MASK) | CLAT_SLOT_LIVE);
			found_at(pr, pr->s.svc, TRACK_CLAIM);
			pr->won = p;
			pr->won_svc = pr->s.svc;
			return 1;
		}
		sw = read_state(pr->s.ctx); /* lost the race: who won? */
	}
	return join_occupant(pr, sw);
}

static __always_inline void release_slot(const struct guest_view *g, struct slot *s)
{
	__u64 live = ((__u64)g->hash << CLAT_SLOT_HASH_SHIFT) | CLAT_SLOT_LIVE;

	__sync_val_compare_and_swap(&s->ctx->state_word, live,
				    (live & ~CLAT_SLOT_STATE_MASK) | CLAT_SLOT_TOMBSTONE);
	mark_dirty(g, s->block);
}

/* yield: racing claimers of one flow can win two slots when a tombstone
 * appears between their scans.  Each winner scans the whole window after
 * going LIVE; the lowest position keeps the flow and any higher copy goes
 * back to TOMBSTONE, whoever sees it first. */
static long yield_cb(__u32 p, struct slot_probe *pr)
{
	struct slot o, ours;

	if (p == pr->won)
		return 0;
	if (probe_slot(&pr->g, p, &o) || slot_state(read_state(o.ctx)) == CLAT_SLOT_EMPTY)
		return 1; /* no key lies beyond an EMPTY slot */
	if (occupant_is(&o, read_state(o.ctx), &pr->g, &pr->fi->key) != 1)
		return 0;
	if (p > pr->won) {
		release_slot(&pr->g, &o);
		return 0;
	}
	ours.svc = pr->won_svc;
	ours.ctx = walk(&pr->g, &ours);
	if (ours.ctx)
		release_slot(&pr->g, &ours);
	found_at(pr, o.svc, TRACK_HIT);
	return 1;
}

static __always_inline __u32 window_of(const struct guest_view *g)
{
	__u32 w = g->b->probe_window;

	return w > CLAT_MAX_PROBE ? CLAT_MAX_PROBE : w;
}

/* Points the view at device segment k; -1 if its maps are missing. */
static __always_inline int view_segment(struct guest_view *g, __u32 k)
{
	__u32 key = clat_shadow_key(g->fn, g->type, k);
	const struct clat_dev_seg *sg = bpf_map_lookup_elem(&clat_segs, &key);

	if (!sg)
		return -1;

	g->base = sg->base;
	g->size = sg->size;
	g->levels = sg->levels;
	g->tiers = bpf_map_lookup_elem(&clat_tiers, &key);
	g->ctxs = bpf_map_lookup_elem(&clat_ctxs, &key);
	g->dirty = bpf_map_lookup_elem(&clat_dirty, &key);
	return g->size && g->tiers && g->ctxs && g->dirty ? 0 : -1;
}

/* What an occupied or free slot at position p of the i-th newest segment
 * means for find; returns 1 when the pass ends.  A hit is only recorded:
 * find_first updates it through pr->s, after the loop update_hit walks to
 * it again. */
static __always_inline long find_at(struct slot_probe *pr, __u32 i, __u32 p)
{
	__u64 sw = read_state(pr->s.ctx);
	__u32 st = slot_state(sw);

	if (st == CLAT_SLOT_EMPTY || st == CLAT_SLOT_TOMBSTONE) {
		if (i == 0 && pr->free_p == PROBE_NONE)
			pr->free_p = p;
		if (st == CLAT_SLOT_EMPTY)
			pr->done_seg = i;
		return 0;
	}
	return join_occupant(pr, sw);
}

static __always_inline __u32 seg_of(const struct slot_probe *pr, __u32 i)
{
	return (pr->newest - i) & (CLAT_MAX_SEGMENTS - 1);
}

/* Nibble v: the number of trailing zero bits of v (4 for v = 0). */
#define CTZ4_TABLE 0x0102010301020104ULL

/* The scan position of the first probe of the first live segment from the
 * x-th newest on (x <= CLAT_MAX_SEGMENTS); past the last segment if there
 * is none, which ends the scan.  Branch-free: a branch per segment would
 * fork the verifier's paths, each with the whole loop to check again. */
static __always_inline __u32 scan_next_seg(const struct slot_probe *pr, __u32 x)
{
	__u32 s = pr->seg_state, n = pr->newest, by_age, rest;

	_Static_assert(CLAT_MAX_SEGMENTS == 4, "scan_next_seg: segments in one nibble");
	/* Bit a: the a-th newest segment is live. */
	by_age = ((s >> (n & 3)) & 1) | ((s >> ((n - 1) & 3)) & 1) << 1 |
		 ((s >> ((n - 2) & 3)) & 1) << 2 | ((s >> ((n - 3) & 3)) & 1) << 3;
	rest = (by_age >> (x & 7)) & 15;
	return (x + (__u32)((CTZ4_TABLE >> (rest * 4)) & 15)) * window_of(&pr->g);
}

/* Makes the callback after the one at scan position q probe position to. */
static __always_inline void scan_skip_to(struct slot_probe *pr, __u32 q, __u32 to)
{
	pr->skip += to - (q + 1);
}

/* find: scan every live segment for the key, newest first.  Callback j
 * probes scan position q = j + pr->skip: probe q mod w of the (q / w)-th
 * newest segment.  A segment's scan ends at its first EMPTY slot, beyond
 * which no key lies because inserts take the first free position; skip
 * then grows so that the next callback probes the next live segment: an
 * empty newer segment costs one probe, a missing one at most one callback.
 * One flat loop rather than one per segment: the verifier checks every
 * bpf_loop call site on its own, and four of them overflow its budget. */
static long find_cb(__u32 j, struct slot_probe *pr)
{
	__u32 w = window_of(&pr->g), q = j + pr->skip, i = q / w, p = q - i * w, k;
	long end;

	if (i >= CLAT_MAX_SEGMENTS)
		return 1;
	k = seg_of(pr, i);
	/* Viewed again every pass: map pointers the verifier must trust cannot
	 * be carried from one callback to the next. */
	if (pr->done_seg == i || !(pr->seg_state & (1U << k)) || view_segment(&pr->g, k)) {
		scan_skip_to(pr, q, scan_next_seg(pr, i + 1));
		return 0;
	}
	pr->cur_seg = k;
	if (probe_next(pr, p)) {
		pr->result = TRACK_SKIP; /* the tables do not back this svc */
		return 1;
	}
	/* No update here: one more copy of it per callback made the verifier
	 * explore it once per loop state, past its budget. */
	end = find_at(pr, i, p);
	if (pr->done_seg == i)
		scan_skip_to(pr, q, scan_next_seg(pr, i + 1));
	return end;
}

/* Walks again to the context a claim or a yield found and updates it, if
 * it still holds the flow (it can be released and reused in between). */
static __always_inline int update_hit(struct slot_probe *pr)
{
	struct slot s = { .svc = pr->hit_svc };

	if (view_segment(&pr->g, pr->hit_seg))
		return TRACK_SKIP;
	s.ctx = walk(&pr->g, &s);
	if (!s.ctx || slot_state(read_state(s.ctx)) != CLAT_SLOT_LIVE ||
	    !key_eq(&s.ctx->key, &pr->fi->key))
		return TRACK_BUSY;
	pr->released = update_ctx(&pr->g, &s, pr->fi, pr->dir, pr->len, pr->rx_queue, pr->now);
	return pr->result;
}

/* Positions of the newest segment probed inline, before the loop: two
 * thirds of the flows live at probe 0 and most of the rest at probe 1,
 * usually in the same block (see probe_next). */
#define FIND_INLINE 2

/* The first positions of the newest segment, and the first of the next
 * live one if the newest ends at an EMPTY slot (a guest that grew), inline:
 * a hit there needs neither the loop nor a second walk.  Returns 1 when the
 * frame is done (a hit, updated, or a slot that never settled); otherwise
 * find_cb goes on from scan position pr->skip. */
static __always_inline int find_first(struct slot_probe *pr)
{
	__u32 p, i;

	pr->skip = 0;
	if (!(pr->seg_state & (1U << pr->newest)) || view_segment(&pr->g, pr->newest))
		return 0;
	pr->cur_seg = pr->newest;
#pragma unroll
	for (p = 0; p < FIND_INLINE; p++) {
		if (p >= window_of(&pr->g) || pr->done_seg == 0)
			break;
		if (probe_next(pr, p))
			return 0; /* find_cb repeats it and reports the skip */
		pr->skip = p + 1;
		if (find_at(pr, 0, p))
			goto done;
	}
	if (pr->done_seg != 0)
		return 0;
	/* The newest segment's scan met an EMPTY slot: the flow, if any, is
	 * older than the last growth.  The next live segment's first position
	 * is probed inline too. */
	pr->skip = scan_next_seg(pr, 1);
	i = pr->skip / window_of(&pr->g);
	if (i >= CLAT_MAX_SEGMENTS || view_segment(&pr->g, seg_of(pr, i)))
		return 0;
	pr->cur_seg = seg_of(pr, i);
	if (probe_next(pr, 0))
		return 0;
	pr->skip++;
	if (!find_at(pr, i, 0))
		return 0;
done:
	if (pr->result == TRACK_HIT)
		pr->released = update_ctx(&pr->g, &pr->s, pr->fi, pr->dir, pr->len, pr->rx_queue,
					  pr->now);
	return 1;
}

/* Finds the flow's context in every live segment, newest first, and
 * updates it: TRACK_HIT, or TRACK_MISS with pr->free_p set for a claim. */
static __always_inline int find(struct slot_probe *pr)
{
	/* One load: resync publishes a segment with a single store. */
	pr->seg_state = *(volatile __u32 *)&pr->g.b->seg_state;
	pr->newest = (pr->seg_state >> CLAT_SEG_NEWEST_SHIFT) & (CLAT_MAX_SEGMENTS - 1);
	pr->free_p = PROBE_NONE;
	pr->done_seg = PROBE_NONE;
	pr->cur_seg = PROBE_NONE;
	pr->s_seg = PROBE_NONE;
	pr->result = TRACK_MISS;
	if (find_first(pr))
		return pr->result;
	bpf_loop(window_of(&pr->g) * CLAT_MAX_SEGMENTS - pr->skip, find_cb, pr, 0);
	if (pr->result == TRACK_HIT)
		return update_hit(pr);
	return pr->result;
}

/* What a claim needs from the find that missed, packed into clat_track's
 * return value (a global function takes five arguments): the find's
 * seg_state, its first free position in the newest segment, the direction
 * and the type.  Positive, so 0 can mean "nothing to claim". */
#define CLAIM_REQ_FLAG (1 << 30)
#define CLAIM_REQ_DIR_SHIFT 5
#define CLAIM_REQ_TYPE_SHIFT 6
#define CLAIM_REQ_SEG_SHIFT 8
_Static_assert(CLAT_MAX_PROBE <= 1 << CLAIM_REQ_DIR_SHIFT, "claim_req: free position bits");
_Static_assert(CLAT_MAX_TYPES <= 1 << (CLAIM_REQ_SEG_SHIFT - CLAIM_REQ_TYPE_SHIFT),
	       "claim_req: type bits");

static __always_inline int claim_req(const struct slot_probe *pr)
{
	return CLAIM_REQ_FLAG | (pr->seg_state & 0xffff) << CLAIM_REQ_SEG_SHIFT |
	       pr->g.type << CLAIM_REQ_TYPE_SHIFT | (pr->dir & 1) << CLAIM_REQ_DIR_SHIFT |
	       (pr->free_p & (CLAT_MAX_PROBE - 1));
}

static __always_inline __u32 claim_req_free_p(__u32 req)
{
	return req & (CLAT_MAX_PROBE - 1);
}

static __always_inline __u32 claim_req_dir(__u32 req)
{
	return (req >> CLAIM_REQ_DIR_SHIFT) & 1;
}

static __always_inline __u32 claim_req_type(__u32 req)
{
	return (req >> CLAIM_REQ_TYPE_SHIFT) & (CLAT_MAX_TYPES - 1);
}

static __always_inline __u32 claim_req_seg_state(__u32 req)
{
	return (req >> CLAIM_REQ_SEG_SHIFT) & 0xffff;
}

/* After find missed: claims the first free slot of the newest segment from
 * pr->free_p on, resolves a duplicate claim and updates the context. */
static __always_inline int claim(struct slot_probe *pr)
{
	if (!(pr->seg_state & (1U << pr->newest)) || view_segment(&pr->g, pr->newest))
		return TRACK_SKIP;
	pr->cur_seg = pr->newest;
	pr->s_seg = PROBE_NONE;
	pr->from = pr->free_p;
	pr->result = TRACK_FULL;
	bpf_loop(window_of(&pr->g), claim_cb, pr, 0);
	if (pr->result == TRACK_CLAIM)
		bpf_loop(window_of(&pr->g), yield_cb, pr, 0);
	if (pr->result == TRACK_HIT || pr->result == TRACK_CLAIM)
		return update_hit(pr);
	return pr->result;
}

#endif
