// SPDX-License-Identifier: GPL-2.0
/* Datapath fuzzing through BPF_PROG_TEST_RUN: the real clat object, real
 * guest tables (gbuild -> gtables_load -> shadow_install, as test_ctx does),
 * and frames that are built, cut at every header and mutated: VLAN stacks,
 * bogus IPv4 IHL/total length, IPv6 payload lengths and extension chains,
 * fragments, TCP flag soup.
 *
 * An oracle, written from the header formats and not from the BPF code,
 * predicts each frame's verdict, every counter it moves (so a frame counted
 * against the wrong fn, i.e. redirected to a VF whose MAC does not match,
 * shows up as a counter that moved where it must not) and, for frames that
 * reach the fn with a guest, the context outcome in the PF's context pool:
 * a hit if the flow is LIVE in one of its two candidate buckets, else a
 * claim of the emptier candidate's home slot (or its free slot lowest in
 * lane order), or FULL when both are full; that only the slot hit or
 * claimed changes, and every byte of it but the clock as a model of the
 * TCP rules says (the acknowledged window, the handshake, FIN/FIN/ACK,
 * restarts, window scale: see "the TCP model"), so a release (RELEASED,
 * tag cleared, CTX_RELEASE) is predicted, never read back; and that both
 * tag lines agree with their slots.  Eviction is off (evict_age_ns at its
 * maximum): test_ctx_attack covers it.  Some random TCP segments are
 * steered into the window the model expects, so flows get past their SYN
 * and close; an idle sweep, as the host's gc, keeps UDP flows from filling
 * the pool for good.
 *
 * Deterministic: the seed is printed, and --seed S --iterations N replays a
 * run.  Any frame that broke a rule is printed in hex; such frames belong
 * in the named fixtures of dp_frames.c (regressions), which run first, each
 * also cut at every length.  TAP out. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat_abi.h"
#include "clat.skel.h"
#include "dp_frames.h"
#include "common.h"
#include "lib/dp_env.h"
#include "tap.h"

#define LO 1
#define GUEST_FN 1
#define CAPACITY 512 /* 16 buckets: random flows fill candidates, slots get released and reused */
#define POOL_CONTEXTS 4096
#define NFN 6
static const uint32_t FNS[NFN] = { 0, 1, 2, 3, 4, CLAT_FN_NONE };
#define FI_NONE 5

/* The function table the maps are loaded with; the oracle reads this one. */
static const struct {
	const uint8_t *mac;
	uint16_t vlan;
	uint32_t state;
	bool port;
} FN_TABLE[5] = {
	{ MAC_HOST, 0, CLAT_FN_ACTIVE, true },  { MAC_VF1, 0, CLAT_FN_ACTIVE, true },
	{ MAC_VF2, 100, CLAT_FN_ACTIVE, true }, { MAC_VF3, 0, CLAT_FN_QUIESCED, true },
	{ MAC_VF4, 0, CLAT_FN_ACTIVE, false },
};

/* ---- the oracle ----------------------------------------------------------- */

struct l2 {
	const uint8_t *dst;
	uint16_t vlan, proto;
	uint32_t off;
};

static int o_l2(const struct frame *f, struct l2 *l)
{
	int i;

	if (f->len < 14)
		return -1;
	l->dst = f->buf;
	l->vlan = 0;
	l->proto = rd16(f->buf + 12);
	l->off = 14;
	for (i = 0; i < 2 && (l->proto == 0x8100 || l->proto == 0x88a8); i++) {
		if (l->off + 4 > f->len)
			return -1;
		if (i == 0)
			l->vlan = rd16(f->buf + l->off) & 0x0fff;
		l->proto = rd16(f->buf + l->off + 2);
		l->off += 4;
	}
	return 0;
}

struct oflow {
	struct clat_flow_key key;
	uint8_t flags;
	/* TCP only */
	uint32_t l4off;   /* the TCP header's offset in the frame */
	uint32_t l4len;   /* L4 bytes, as the IP header says */
	uint32_t doff;
	uint32_t seq, ack;
	uint32_t seq_len; /* payload + SYN + FIN */
	uint16_t win;
	uint8_t wscale;   /* a SYN's window scale option, O_WSCALE_NONE if none */
};

#define O_TCP_FIN 0x01
#define O_TCP_SYN 0x02
#define O_TCP_RST 0x04
#define O_TCP_PSH 0x08
#define O_TCP_ACK 0x10
#define O_WSCALE_NONE 0xff

/* RFC 7323's window scale option in a SYN's options (the bytes between
 * the fixed header and doff), walked as a bounded parser must: at most 10
 * options, EOL ends, NOP is one byte, a kind/length pair must lie within
 * doff and its 3 bytes within the frame, a length below 2 ends the walk, a
 * length is taken modulo 64 (options fit in 40 bytes); at most 14. */
static uint8_t o_wscale(const struct frame *f, uint32_t th, uint32_t doff)
{
	uint32_t p = th + 20, end = th + doff, i;

	for (i = 0; i < 10; i++) {
		if (p >= f->len || p >= end || f->buf[p] == 0)
			break;
		if (f->buf[p] == 1) {
			p++;
			continue;
		}
		if (p + 3 > f->len || p + 2 > end || f->buf[p + 1] < 2)
			break;
		if (f->buf[p] == 3 && f->buf[p + 1] == 3)
			return f->buf[p + 2] > 14 ? 14 : f->buf[p + 2];
		p += f->buf[p + 1] & 0x3f;
	}
	return O_WSCALE_NONE;
}

static int o_l4(const struct frame *f, uint32_t off, uint8_t proto, uint32_t l4len, int dir,
		struct oflow *o)
{
	uint16_t s, d;

	if (proto == IPPROTO_TCP) {
		uint32_t doff;

		if (off + 20 > f->len)
			return -1;
		doff = (f->buf[off + 12] >> 4) * 4u;
		if (doff < 20 || doff > l4len)
			return -1;
		o->flags = f->buf[off + 13];
		o->l4off = off;
		o->l4len = l4len;
		o->doff = doff;
		o->seq = rd32(f->buf + off + 4);
		o->ack = rd32(f->buf + off + 8);
		o->seq_len = l4len - doff + !!(o->flags & O_TCP_SYN) + !!(o->flags & O_TCP_FIN);
		o->win = rd16(f->buf + off + 14);
		o->wscale = o->flags & O_TCP_SYN ? o_wscale(f, off, doff) : O_WSCALE_NONE;
	} else if (proto == IPPROTO_UDP) {
		if (off + 8 > f->len)
			return -1;
	} else {
		return -1;
	}
	memcpy(&s, f->buf + off, 2);
	memcpy(&d, f->buf + off + 2, 2);
	o->key.proto = proto;
	o->key.vm_port = dir == CLAT_DIR_IN ? d : s;
	o->key.remote_port = dir == CLAT_DIR_IN ? s : d;
	return 0;
}

/* 0 and o filled if the frame carries a trackable TCP/UDP flow. */
static int o_flow(const struct frame *f, const struct l2 *l, int dir, struct oflow *o)
{
	uint32_t off = l->off, i;

	memset(o, 0, sizeof(*o));
	if (l->proto == 0x0800) {
		uint32_t hl, tot;
		const uint8_t *ip = f->buf + off;

		if (off + 20 > f->len)
			return -1;
		hl = (ip[0] & 15) * 4u;
		tot = rd16(ip + 2);
		/* A total length past the frame: no context. */
		if (hl < 20 || tot < hl || off + tot > f->len || (rd16(ip + 6) & 0x3fff))
			return -1;
		o->key.vm_addr[10] = o->key.vm_addr[11] = 0xff;
		o->key.remote_addr[10] = o->key.remote_addr[11] = 0xff;
		memcpy(o->key.vm_addr + 12, ip + (dir == CLAT_DIR_IN ? 16 : 12), 4);
		memcpy(o->key.remote_addr + 12, ip + (dir == CLAT_DIR_IN ? 12 : 16), 4);
		return o_l4(f, off + hl, ip[9], tot - hl, dir, o);
	}
	if (l->proto == 0x86dd) {
		const uint8_t *ip = f->buf + off;
		uint32_t plen;
		uint8_t next;

		if (off + 40 > f->len)
			return -1;
		memcpy(o->key.vm_addr, ip + (dir == CLAT_DIR_IN ? 24 : 8), 16);
		memcpy(o->key.remote_addr, ip + (dir == CLAT_DIR_IN ? 8 : 24), 16);
		plen = rd16(ip + 4);
		next = ip[6];
		off += 40;
		for (i = 0; i < 4 && (next == 0 || next == 43 || next == 60); i++) {
			uint32_t olen;

			if (off + 2 > f->len)
				return -1;
			olen = (f->buf[off + 1] + 1) * 8u;
			if (olen > plen)
				return -1;
			plen -= olen;
			next = f->buf[off];
			off += olen;
		}
		return o_l4(f, off, next, plen, dir, o);
	}
	return -1;
}

/* ---- environment ---------------------------------------------------------- */

/* The counters as last read (one env per run). */
static int ncpu;
static uint64_t seen_stats[NFN][CLAT_STAT__MAX];

static int env_open(struct env *e)
{
	/* No eviction: the oracle does not model it (test_ctx_attack does). */
	const uint64_t no_evict = UINT64_MAX;
	uint32_t fn;
	int rc;

	ncpu = libbpf_num_possible_cpus();
	rc = dp_env_load(e, POOL_CONTEXTS, &no_evict);
	for (fn = 0; !rc && fn < 5; fn++)
		rc = dp_add_fn(&e->m, fn, FN_TABLE[fn].mac, FN_TABLE[fn].vlan, FN_TABLE[fn].state,
			       FN_TABLE[fn].port ? LO : 0);
	if (!rc)
		rc = dp_set_uplink(&e->m, LO, GUEST_FN);
	if (!rc)
		rc = dp_env_guest(e, GUEST_FN, "fuzz-dp", CAPACITY, 0xf022, 4 << 20);
	return rc;
}

static void read_stats(struct env *e, uint64_t out[NFN][CLAT_STAT__MAX])
{
	struct clat_stats v[ncpu];
	int i, c, s;

	for (i = 0; i < NFN; i++) {
		memset(out[i], 0, sizeof(out[i]));
		if (bpf_map_lookup_elem(e->m.stats, &FNS[i], v))
			continue;
		for (c = 0; c < ncpu; c++)
			for (s = 0; s < CLAT_STAT__MAX; s++)
				out[i][s] += v[c].slot[s];
	}
}

/* ---- the TCP model -------------------------------------------------------- *
 *
 * Written from the rules, not from bpf/tcp.h.  A segment from dir counts
 * only when it is in the window the other side acknowledged and advertised:
 * seq in [ack_last[other], ack_last[other] + window(other)).  Before the
 * other side acknowledged anything (window 0), only a segment with ACK
 * whose ack is exactly seq_next[other] (nonzero) counts; and the
 * initiator's pure SYN while SYN_SENT always counts.  A pure SYN on a
 * context in FIN_WAIT or later first restarts it in place.  A counted RST
 * closes the flow; so does, in LAST_ACK, an ACK from the side that did not
 * send the last FIN.  A counted segment teaches its own side: seq_next
 * (when it consumes sequence space), a SYN's window scale (its own window
 * unscaled), and with ACK, ack_last and the window it advertised. */

enum m_close { M_OPEN, M_CLOSE_RST, M_CLOSE_LAST_ACK };

struct m_step {
	bool in;       /* the segment counted */
	bool restart;  /* a SYN restarted a closing context */
	int close;     /* enum m_close */
};

static uint32_t m_nibble(uint8_t v, int d)
{
	return d ? v >> 4 : v & 15;
}

static void m_set_nibble(uint8_t *v, int d, uint32_t n)
{
	*v = d ? (uint8_t)((*v & 0x0f) | n << 4) : (uint8_t)((*v & 0xf0) | n);
}

/* What side d advertised: 0 before it acknowledged anything, else 4 KiB
 * doubled n - 1 times. */
static uint32_t m_window(uint8_t wlog, int d)
{
	uint32_t n = m_nibble(wlog, d);

	return n ? 4096u << (n - 1) : 0;
}

/* The nibble of an advertised window of w bytes: w rounded up to 2^k,
 * 4 KiB and below 1, 64 MiB and above 15. */
static uint32_t m_window_nibble(uint64_t w)
{
	uint32_t k = 0;

	while ((1ULL << k) < w)
		k++;
	return k <= 12 ? 1 : k - 11 > 15 ? 15 : k - 11;
}

static struct m_step m_tcp(struct clat_ctx *c, const struct oflow *fl, int dir)
{
	uint8_t flags = fl->flags, st = c->tcp_state;
	bool pure_syn = (flags & (O_TCP_SYN | O_TCP_ACK)) == O_TCP_SYN;
	struct m_step r = { 0 };
	int other = !dir;
	uint32_t w, scale;

	if (pure_syn && st >= CLAT_TCP_FIN_WAIT) {
		c->fin_mask = 0;
		c->initiator = (uint8_t)dir;
		c->wlog = 0;
		c->seq_next[0] = c->seq_next[1] = 0;
		st = CLAT_TCP_SYN_SENT;
		r.restart = true;
	}
	w = m_window(c->wlog, other);
	if (w)
		r.in = fl->seq - c->ack_last[other] < w;
	else
		r.in = (flags & O_TCP_ACK) && c->seq_next[other] && fl->ack == c->seq_next[other];
	if (pure_syn && st == CLAT_TCP_SYN_SENT && dir == c->initiator)
		r.in = true;
	if (!r.in)
		return r;
	if (flags & O_TCP_RST) {
		c->tcp_state = CLAT_TCP_CLOSED;
		r.close = M_CLOSE_RST;
		return r;
	}
	if (st == CLAT_TCP_SYN_SENT && dir != c->initiator &&
	    (flags & (O_TCP_SYN | O_TCP_ACK)) == (O_TCP_SYN | O_TCP_ACK))
		st = CLAT_TCP_SYN_RECV;
	else if (st == CLAT_TCP_SYN_RECV && dir == c->initiator &&
		 (flags & (O_TCP_SYN | O_TCP_ACK)) == O_TCP_ACK)
		st = CLAT_TCP_ESTABLISHED;
	if (flags & O_TCP_FIN) {
		c->fin_mask |= 1 << dir;
		c->last_fin_dir = (uint8_t)dir;
		st = c->fin_mask == 3 ? CLAT_TCP_LAST_ACK : CLAT_TCP_FIN_WAIT;
	} else if (st == CLAT_TCP_LAST_ACK && (flags & O_TCP_ACK) && dir != c->last_fin_dir) {
		st = CLAT_TCP_CLOSED;
		r.close = M_CLOSE_LAST_ACK;
	}
	c->tcp_state = st;
	/* What the segment tells of its own side. */
	scale = m_nibble(c->wscale, dir);
	if (flags & O_TCP_SYN) {
		m_set_nibble(&c->wscale, dir, fl->wscale == O_WSCALE_NONE ? 0 : fl->wscale);
		scale = 0;
	}
	if (fl->seq_len)
		c->seq_next[dir] = fl->seq + fl->seq_len;
	if (flags & O_TCP_ACK) {
		c->ack_last[dir] = fl->ack;
		m_set_nibble(&c->wlog, dir, m_window_nibble((uint64_t)fl->win << scale));
	}
	return r;
}

/* ---- one frame: predict, run, compare ------------------------------------- */

struct outcome {
	uint32_t verdict;
	int64_t d[NFN][CLAT_STAT__MAX]; /* expected counter moves */
	/* context prediction for the guest fn */
	bool tracked;
	int dir;
	struct oflow fl;
	int result;     /* enum clat_stat CTX_* */
	uint32_t idx;   /* pool index hit or claimed */
	uint16_t tag;
	uint32_t nb;    /* distinct candidate buckets: 1 or 2 */
	uint32_t b[2];  /* pool buckets */
	struct clat_ctx before[2][CLAT_BUCKET_SLOTS];
	struct clat_bucket meta[2];
	/* a hit or a claim: the record after the frame (times aside) */
	struct clat_ctx expect;
	struct m_step step; /* what the TCP model made of the segment */
	bool released;      /* the flow closed: RELEASED, tag cleared, CTX_RELEASE */
	bool fresh;         /* claimed or restarted: first_seen_ns is the frame's time */
};

static int fi_of(uint32_t fn)
{
	return fn == CLAT_FN_NONE ? FI_NONE : (int)fn;
}

static void predict_update(struct outcome *o, const struct frame *f)
{
	struct clat_ctx *x = &o->expect;

	x->rx_queue = 0;
	memset(&o->step, 0, sizeof(o->step));
	if (o->fl.key.proto == IPPROTO_TCP)
		o->step = m_tcp(x, &o->fl, o->dir);
	o->released = o->step.close != M_OPEN;
	o->fresh = o->result == CLAT_STAT_CTX_CLAIM || o->step.restart;
	x->packets[o->dir]++;
	x->bytes[o->dir] += f->len;
	x->state_word = (uint64_t)o->tag << CLAT_SLOT_TAG_SHIFT |
			(o->released ? CLAT_SLOT_RELEASED : CLAT_SLOT_LIVE);
}

/* The placement design: the flow is found if it is LIVE (with its tag) in
 * either candidate bucket; else a frame that may open a flow claims the
 * emptier candidate (ties: candidate 0), its home slot (tag & 31) if free,
 * else its free slot lowest in lane order; FULL if neither has a free slot.
 * Free: EMPTY or RELEASED, within the segment. */
static void predict_ctx(struct env *e, struct outcome *o, const struct frame *f, int dir)
{
	struct clat_flow_key k = o->fl.key;
	uint64_t h = clat_flow_hash(e->seed, &k), live;
	bool may_claim = k.proto == IPPROTO_UDP || (o->fl.flags & 0x12) == 0x02;
	uint32_t j, s, nfree[2] = { 0 }, pick, home, best = CLAT_BUCKET_SLOTS;

	o->tracked = true;
	o->dir = dir;
	o->result = -1;
	o->tag = clat_tag_of(h);
	live = (uint64_t)o->tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_LIVE;
	o->b[0] = e->sg.first_bucket + clat_bucket_of(h, 0, e->sg.nbuckets);
	o->b[1] = e->sg.first_bucket + clat_bucket_of(h, 1, e->sg.nbuckets);
	o->nb = o->b[1] == o->b[0] ? 1 : 2;
	for (j = 0; j < o->nb; j++) {
		memcpy(o->before[j], pool_at(e, o->b[j] * CLAT_BUCKET_SLOTS), sizeof(o->before[j]));
		o->meta[j] = e->v.pool.meta[o->b[j]];
	}
	for (j = 0; j < o->nb; j++)
		for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
			const struct clat_ctx *c = &o->before[j][s];
			uint32_t st = c->state_word & CLAT_SLOT_STATE_MASK;

			if (c->state_word == live && !memcmp(&c->key, &k, sizeof(k))) {
				o->result = CLAT_STAT_CTX_HIT;
				o->idx = o->b[j] * CLAT_BUCKET_SLOTS + s;
				o->expect = *c;
				predict_update(o, f);
				return;
			}
			if ((st == CLAT_SLOT_EMPTY || st == CLAT_SLOT_RELEASED) &&
			    svc_at(e, o->b[j] * CLAT_BUCKET_SLOTS + s) - e->sg.base <= e->sg.size)
				nfree[j]++;
		}
	if (!may_claim) {
		o->result = CLAT_STAT_CTX_MISS;
		return;
	}
	if (!nfree[0] && !nfree[1]) {
		o->result = CLAT_STAT_CTX_FULL;
		return;
	}
	pick = nfree[1] > nfree[0] ? 1 : 0;
	home = o->tag & (CLAT_BUCKET_SLOTS - 1);
	for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
		uint32_t st = o->before[pick][s].state_word & CLAT_SLOT_STATE_MASK;

		if ((st != CLAT_SLOT_EMPTY && st != CLAT_SLOT_RELEASED) ||
		    svc_at(e, o->b[pick] * CLAT_BUCKET_SLOTS + s) - e->sg.base > e->sg.size)
			continue;
		if (s == home) {
			best = s;
			break;
		}
		if (best == CLAT_BUCKET_SLOTS || slot_rank(s) < slot_rank(best))
			best = s;
	}
	o->result = CLAT_STAT_CTX_CLAIM;
	o->idx = o->b[pick] * CLAT_BUCKET_SLOTS + best;
	/* A claimed record starts blank but for who owns it, where it lives,
	 * whom it tracks and who opened it. */
	memset(&o->expect, 0, sizeof(o->expect));
	o->expect.key = k;
	o->expect.tcp_state = k.proto == IPPROTO_TCP ? CLAT_TCP_SYN_SENT : CLAT_TCP_NONE;
	o->expect.initiator = (uint8_t)dir;
	o->expect.fn = GUEST_FN;
	o->expect.type = 0;
	o->expect.svc = svc_at(e, o->idx);
	predict_update(o, f);
}

static void track(struct env *e, struct outcome *o, const struct frame *f, uint32_t fn, int dir)
{
	struct l2 l;

	if (fn != GUEST_FN)
		return;
	if (o_l2(f, &l) || o_flow(f, &l, dir, &o->fl)) {
		o->d[fi_of(fn)][CLAT_STAT_CTX_SKIP]++;
		return;
	}
	predict_ctx(e, o, f, dir);
	o->d[fi_of(fn)][o->result]++;
	if (o->released)
		o->d[fi_of(fn)][CLAT_STAT_CTX_RELEASE]++;
}

/* deliver(): redirect to an ACTIVE fn's port; counters into count_fn. */
static void deliver(struct env *e, struct outcome *o, const struct frame *f, uint32_t fn,
		    uint32_t count_fn, int pkt_slot)
{
	if (fn >= 5 || FN_TABLE[fn].state == CLAT_FN_FREE) {
		o->d[fi_of(count_fn)][CLAT_STAT_DROP_INACTIVE]++;
		o->verdict = XDP_DROP;
	} else if (FN_TABLE[fn].state == CLAT_FN_QUIESCED) {
		o->d[fi_of(fn)][CLAT_STAT_DROP_QUIESCED]++;
		o->verdict = XDP_DROP;
	} else if (!FN_TABLE[fn].port) {
		o->d[fi_of(count_fn)][CLAT_STAT_DROP_NO_PORT]++;
		o->verdict = XDP_DROP;
	} else {
		o->d[fi_of(count_fn)][pkt_slot]++;
		o->d[fi_of(count_fn)][pkt_slot + 1] += f->len;
		o->verdict = XDP_REDIRECT;
		track(e, o, f, fn, CLAT_DIR_IN);
	}
}

static int lookup_fn(const struct l2 *l)
{
	int fn;

	for (fn = 0; fn < 5; fn++)
		if (!memcmp(l->dst, FN_TABLE[fn].mac, 6) && l->vlan == FN_TABLE[fn].vlan)
			return fn;
	return -1;
}

static void predict(struct env *e, struct outcome *o, const struct frame *f, bool tx)
{
	struct l2 l;
	int fn;

	memset(o, 0, sizeof(*o));
	if (o_l2(f, &l)) {
		o->d[tx ? GUEST_FN : FI_NONE][CLAT_STAT_DROP_MALFORMED]++;
		o->verdict = XDP_DROP;
		return;
	}
	if (l.dst[0] & 1) {
		o->d[tx ? GUEST_FN : FI_NONE][tx ? CLAT_STAT_FLOOD_TX : CLAT_STAT_FLOOD_RX]++;
		o->verdict = XDP_REDIRECT;
		return;
	}
	fn = lookup_fn(&l);
	if (!tx) {
		if (fn < 0) {
			o->d[FI_NONE][CLAT_STAT_PASS_UNKNOWN]++;
			o->verdict = XDP_REDIRECT; /* to fn 0, the host port */
		} else {
			deliver(e, o, f, fn, fn, CLAT_STAT_RX_PACKETS);
		}
		return;
	}
	if (fn >= 0 && fn != GUEST_FN) {
		deliver(e, o, f, fn, GUEST_FN, CLAT_STAT_HAIRPIN_PACKETS);
		if (o->verdict == XDP_REDIRECT)
			track(e, o, f, GUEST_FN, CLAT_DIR_OUT);
		return;
	}
	o->d[GUEST_FN][CLAT_STAT_TX_PACKETS]++;
	o->d[GUEST_FN][CLAT_STAT_TX_BYTES] += f->len;
	o->verdict = XDP_REDIRECT;
	track(e, o, f, GUEST_FN, CLAT_DIR_OUT);
}

struct tally {
	uint64_t frames, aborted, verdict_bad, counter_bad, ctx_bad, delivered_guest;
	uint64_t outcome[CLAT_STAT__MAX];
	uint64_t released, rel_rst, rel_last_ack;
	uint64_t tcp_in, tcp_out, restarts; /* TCP hits: counted, not counted; restarts */
	uint64_t steered;
	int shown;
};

static void show(struct tally *t, const char *why, const char *name, const struct frame *f,
		 bool tx)
{
	uint32_t i;

	if (t->shown++ >= 8)
		return;
	printf("# VIOLATION (%s) %s frame '%s', %u bytes:\n# ", why, tx ? "clat_tx" : "clat_rx",
	       name, f->len);
	for (i = 0; i < f->len; i++)
		printf("%02x%s", f->buf[i], i + 1 < f->len && (i + 1) % 32 == 0 ? "\n# " : "");
	printf("\n");
}

/* The candidate buckets after the frame, against the prediction: NULL,
 * or what differs. */
static const char *ctx_ok(struct env *e, const struct outcome *o)
{
	uint32_t j, s, idx;

	for (j = 0; j < o->nb; j++) {
		if (!tags_consistent(e, o->b[j]))
			return "a tag line disagrees with its slots";
		for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
			const struct clat_ctx *b = &o->before[j][s];
			const struct clat_ctx *a;
			struct clat_ctx x, y;
			bool ours;

			idx = o->b[j] * CLAT_BUCKET_SLOTS + s;
			a = pool_at(e, idx);
			ours = (o->result == CLAT_STAT_CTX_HIT || o->result == CLAT_STAT_CTX_CLAIM) &&
			       idx == o->idx;
			if (!ours) {
				/* Slots that are not ours keep every byte and their tag. */
				if (memcmp(a, b, sizeof(*a)))
					return "a slot the frame did not hit or claim changed";
				if (e->v.pool.meta[o->b[j]].tag[s] != o->meta[j].tag[s])
					return "the tag of a slot the frame did not hit or claim changed";
				continue;
			}
			if (shadow_view_ctx(&e->v, a->svc, NULL) != a)
				return "the record's svc is not where it lives";
			/* Released: RELEASED with the tag kept in the word, the tag
			 * line's entry cleared; else LIVE and tagged. */
			if (a->state_word != o->expect.state_word)
				return o->released ? "not released as predicted" : "released or not LIVE";
			if (e->v.pool.meta[o->b[j]].tag[s] != (o->released ? CLAT_TAG_FREE : o->tag))
				return "tag line entry";
			/* Every other byte as the model says, the clock aside. */
			x = o->expect;
			y = *a;
			x.first_seen_ns = y.first_seen_ns = x.last_seen_ns = y.last_seen_ns = 0;
			if (memcmp(&x, &y, sizeof(x))) {
				static char why[320];

				snprintf(why, sizeof(why),
					 "record: state %u/%u fin %u/%u init %u/%u lastfin %u/%u "
					 "seq_next %x,%x/%x,%x ack_last %x,%x/%x,%x wscale %02x/%02x "
					 "wlog %02x/%02x pk %llu,%llu/%llu,%llu (predicted/got)",
					 x.tcp_state, y.tcp_state, x.fin_mask, y.fin_mask, x.initiator,
					 y.initiator, x.last_fin_dir, y.last_fin_dir, x.seq_next[0],
					 x.seq_next[1], y.seq_next[0], y.seq_next[1], x.ack_last[0],
					 x.ack_last[1], y.ack_last[0], y.ack_last[1], x.wscale, y.wscale,
					 x.wlog, y.wlog, (unsigned long long)x.packets[0],
					 (unsigned long long)x.packets[1], (unsigned long long)y.packets[0],
					 (unsigned long long)y.packets[1]);
				return why;
			}
			/* A claim or a restart stamps first_seen with the frame's
			 * time, which last_seen also gets; the clock never goes back. */
			if (o->fresh ? a->first_seen_ns != a->last_seen_ns
				     : a->first_seen_ns != b->first_seen_ns)
				return "first_seen_ns";
			if (o->result == CLAT_STAT_CTX_HIT && a->last_seen_ns < b->last_seen_ns)
				return "last_seen_ns went back";
		}
	}
	return NULL;
}

static void one(struct env *e, struct tally *t, const char *name, const struct frame *f, bool tx)
{
	struct xdp_md ctx_in = { .data_end = f->len, .ingress_ifindex = LO };
	uint8_t out[FRAME_MAX + 64];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f->buf, .data_size_in = f->len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	uint64_t after[NFN][CLAT_STAT__MAX];
	static struct outcome o;
	const char *why;
	bool bad = false;
	int i, s;

	predict(e, &o, f, tx);
	if (tx) {
		opts.ctx_in = &ctx_in;
		opts.ctx_size_in = sizeof(ctx_in);
	}
	t->frames++;
	if (bpf_prog_test_run_opts(bpf_program__fd(tx ? e->skel->progs.clat_tx
						       : e->skel->progs.clat_rx), &opts)) {
		t->verdict_bad++;
		show(t, strerror(errno), name, f, tx);
		return;
	}
	if (opts.retval == XDP_ABORTED) {
		t->aborted++;
		show(t, "XDP_ABORTED", name, f, tx);
	}
	if (opts.retval != o.verdict) {
		t->verdict_bad++;
		show(t, "verdict", name, f, tx);
	}
	read_stats(e, after);
	for (i = 0; i < NFN; i++)
		for (s = 0; s < CLAT_STAT__MAX; s++)
			bad |= (int64_t)(after[i][s] - seen_stats[i][s]) != o.d[i][s];
	if (bad) {
		t->counter_bad++;
		show(t, "counters: a counter moved that the oracle did not predict", name, f, tx);
	}
	if (o.tracked) {
		t->delivered_guest++;
		t->outcome[o.result]++;
		if (o.result == CLAT_STAT_CTX_HIT && o.fl.key.proto == IPPROTO_TCP) {
			t->tcp_in += o.step.in;
			t->tcp_out += !o.step.in;
			t->restarts += o.step.restart;
		}
		t->released += o.released;
		t->rel_rst += o.step.close == M_CLOSE_RST;
		t->rel_last_ack += o.step.close == M_CLOSE_LAST_ACK;
		why = ctx_ok(e, &o);
		if (why) {
			t->ctx_bad++;
			show(t, why, name, f, tx);
		}
	} else if (o.d[GUEST_FN][CLAT_STAT_CTX_SKIP]) {
		t->delivered_guest++;
		t->outcome[CLAT_STAT_CTX_SKIP]++;
	}
	memcpy(seen_stats, after, sizeof(after));
}

/* ---- steering: random segments that the model says count ---------------- *
 *
 * Random sequence numbers almost never land in a window, so without help
 * no random flow would get past its SYN and nothing but a SYN|RST would
 * ever release a context.  Some TCP frames that will reach the guest fn
 * are rewritten from the model's view of their context (the pool's record,
 * which every frame checks against the model): flags that move the state
 * machine on towards a FIN/FIN/ACK close or a RST, a sequence in the
 * acknowledged window (or on its edges, one in and one out), the ack the
 * other side expects, a window field of any size; and SYNs get a window
 * scale option.  The frame is rewritten in place, its lengths untouched:
 * the oracle then predicts it from its bytes like any other. */
#define STEER_PCT 60

static uint32_t rnd_below(uint32_t n)
{
	return n ? dp_rnd() % n : 0;
}

/* A SYN without options gets NOP, window scale (0..15: above 14 is taken
 * as 14) in its first 4 payload bytes: doff 5 -> 6, lengths kept. */
static void add_wscale(struct frame *f, const struct oflow *fl)
{
	uint32_t th = fl->l4off;

	if (fl->doff != 20 || fl->l4len < 24 || th + 24 > f->len)
		return;
	f->buf[th + 12] = (uint8_t)(0x60 | (f->buf[th + 12] & 0x0f));
	f->buf[th + 20] = 1;
	f->buf[th + 21] = 3;
	f->buf[th + 22] = 3;
	f->buf[th + 23] = (uint8_t)rnd_below(16);
}

static bool steer(struct env *e, struct frame *f, bool tx)
{
	static const uint8_t est[] = { O_TCP_ACK, O_TCP_ACK | O_TCP_PSH, O_TCP_ACK | O_TCP_FIN,
				       O_TCP_ACK | O_TCP_FIN, O_TCP_RST, O_TCP_RST | O_TCP_ACK };
	static struct outcome o;
	const struct clat_ctx *c;
	uint32_t w, seq, ack, r;
	uint8_t *th, flags;
	int dir, other;

	predict(e, &o, f, tx);
	if (!o.tracked || o.fl.key.proto != IPPROTO_TCP || !dp_chance(STEER_PCT))
		return false;
	th = f->buf + o.fl.l4off;
	if (o.result != CLAT_STAT_CTX_HIT) {
		/* A SYN that opens a flow: maybe with a window scale. */
		if ((o.fl.flags & O_TCP_SYN) && dp_chance(50))
			add_wscale(f, &o.fl);
		return true;
	}
	c = pool_at(e, o.idx);
	dir = o.dir;
	other = !dir;
	switch (c->tcp_state) {
	case CLAT_TCP_SYN_SENT:
		flags = dir != c->initiator ? O_TCP_SYN | O_TCP_ACK
					    : dp_chance(30) ? O_TCP_SYN : O_TCP_ACK;
		break;
	case CLAT_TCP_SYN_RECV:
		flags = dir == c->initiator ? O_TCP_ACK : O_TCP_SYN | O_TCP_ACK;
		break;
	case CLAT_TCP_ESTABLISHED:
		flags = est[rnd_below(sizeof(est))];
		break;
	case CLAT_TCP_FIN_WAIT:
		flags = c->fin_mask & (1 << dir) ? O_TCP_ACK : O_TCP_ACK | O_TCP_FIN;
		break;
	default: /* LAST_ACK */
		flags = dp_chance(80) ? O_TCP_ACK : O_TCP_ACK | O_TCP_FIN;
		break;
	}
	if (dp_chance(6)) /* a reset, or a new connection on the 5-tuple, anywhere */
		flags = dp_chance(50) ? O_TCP_RST | O_TCP_ACK : O_TCP_SYN;
	if (dp_chance(5))
		flags = (uint8_t)dp_rnd(); /* flag soup, in window */
	ack = dp_chance(90) ? c->seq_next[other] : dp_rnd();
	w = m_window(c->wlog, other);
	if (w) {
		r = rnd_below(20);
		seq = c->ack_last[other] + (r < 8 ? 0 : r < 16 ? rnd_below(w) : r < 18 ? w - 1 : w);
		if (r == 19)
			seq = c->ack_last[other] - 1;
	} else {
		seq = dp_chance(80) ? c->seq_next[dir] : dp_rnd();
	}
	wr32(th + 4, seq);
	wr32(th + 8, ack);
	th[13] = flags;
	r = rnd_below(10);
	if (r >= 6) { /* 65535 as built, else any window, a small one or a power of two */
		uint16_t win = (uint16_t)(r < 8 ? dp_rnd() : r < 9 ? rnd_below(4096)
						 : 1u << rnd_below(16));

		th[14] = (uint8_t)(win >> 8);
		th[15] = (uint8_t)win;
	}
	if ((flags & O_TCP_SYN) && dp_chance(50))
		add_wscale(f, &o.fl);
	return true;
}

/* The host's idle GC, by frame count: every SWEEP_EVERY random frames, each
 * context still LIVE and untouched (same state word and packet counts)
 * since the previous sweep is released as clat-guest gc releases it
 * (shadow_view_release: RELEASED, then its tag cleared).  UDP flows never
 * close: without it they would fill the candidate buckets for good within
 * seconds, and every later SYN would find them FULL.  The oracle reads
 * each frame's "before" from the pool, so it needs no word of this. */
#define SWEEP_EVERY 65536

static uint64_t sweep(struct env *e)
{
	static struct {
		uint64_t sw, pk;
	} seen[CAPACITY];
	uint64_t n = 0, pk;
	uint32_t i, k;

	for (i = 0; i < e->sg.size && i < CAPACITY; i++) {
		struct clat_ctx *c = shadow_view_ctx(&e->v, e->sg.base + 1 + i, &k);

		if (!c)
			continue;
		pk = c->packets[0] + c->packets[1];
		if ((c->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE &&
		    c->state_word == seen[i].sw && pk == seen[i].pk)
			n += shadow_view_release(&e->v, k, e->sg.base + i - e->v.td.seg[k].base);
		seen[i].sw = c->state_word;
		seen[i].pk = pk;
	}
	return n;
}

static void truncations(struct env *e, struct tally *t)
{
	struct frame f;
	uint32_t i, n, len;
	char name[64];

	for (i = 0; i < dp_nfixtures; i++)
		for (n = 0; n < 2; n++) {
			if (!frame_from_hex(dp_fixtures[i].hex, &f)) {
				t->verdict_bad++;
				printf("# fixture %s does not parse\n", dp_fixtures[i].name);
				continue;
			}
			one(e, t, dp_fixtures[i].name, &f, n);
			for (len = f.len - 1; len >= 14; len--) {
				f.len = len;
				snprintf(name, sizeof(name), "%s cut at %u", dp_fixtures[i].name, len);
				one(e, t, name, &f, n);
			}
		}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *what, const struct tally *t)
{
	check(t->aborted == 0, "%s: %llu frames, none XDP_ABORTED (%llu)", what,
	      (unsigned long long)t->frames, (unsigned long long)t->aborted);
	check(t->verdict_bad == 0, "%s: every verdict as predicted (%llu wrong)", what,
	      (unsigned long long)t->verdict_bad);
	check(t->counter_bad == 0,
	      "%s: every counter move as predicted, so no frame went to a fn whose MAC/VLAN does "
	      "not match (%llu wrong)", what, (unsigned long long)t->counter_bad);
	check(t->ctx_bad == 0,
	      "%s: contexts as predicted: %llu frames reached the guest fn: hit %llu, claim %llu, "
	      "full %llu, miss %llu, skip %llu; TCP hits in window %llu, out of window %llu, "
	      "restarts %llu; released %llu (RST %llu, last ACK %llu); steered %llu (%llu wrong)",
	      what, (unsigned long long)t->delivered_guest,
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_HIT],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_CLAIM],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_FULL],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_MISS],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_SKIP], (unsigned long long)t->tcp_in,
	      (unsigned long long)t->tcp_out, (unsigned long long)t->restarts,
	      (unsigned long long)t->released, (unsigned long long)t->rel_rst,
	      (unsigned long long)t->rel_last_ack, (unsigned long long)t->steered,
	      (unsigned long long)t->ctx_bad);
}

int main(int argc, char **argv)
{
	double seconds = 20, start;
	uint64_t iterations = 0, seed = 0, i, live_pk = 0, hits_claims, swept = 0;
	struct tally fx = { 0 }, rn = { 0 };
	struct env e;
	int opt, err;

	while ((opt = getopt(argc, argv, "s:n:S:-:")) != -1) {
		const char *v = optarg;

		if (opt == '-') { /* --seconds=X style, and --seconds X */
			char *eq = strchr(optarg, '=');

			if (eq) {
				*eq = 0;
				v = eq + 1;
			} else if (optind < argc) {
				v = argv[optind++];
			}
			opt = !strcmp(optarg, "seconds") ? 's' : !strcmp(optarg, "iterations") ? 'n'
			      : !strcmp(optarg, "seed") ? 'S' : '?';
		}
		if (opt == 's')
			seconds = strtod(v, NULL);
		else if (opt == 'n')
			iterations = strtoull(v, NULL, 0);
		else if (opt == 'S')
			seed = strtoull(v, NULL, 0);
		else {
			fprintf(stderr, "usage: fuzz_datapath [--seconds S] [--iterations N] [--seed X]\n");
			return 2;
		}
	}
	if (geteuid() != 0) {
		fprintf(stderr, "fuzz_datapath: must run as root\n");
		return 1;
	}
	if (!seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid();
		seed |= 1;
	}
	err = env_open(&e);
	if (err) {
		printf("not ok 1 - set up guest tables and load clat: %s\n", strerror(-err));
		unlink(e.mem);
		return 1;
	}
	read_stats(&e, seen_stats);
	truncations(&e, &fx);
	report("named fixtures, cut at every byte", &fx);

	printf("# seed 0x%llx (replay: fuzz_datapath --seed 0x%llx --iterations N)\n",
	       (unsigned long long)seed, (unsigned long long)seed);
	dp_seed(seed);
	start = now_s();
	for (i = 0; iterations ? i < iterations : now_s() - start < seconds; i++) {
		struct frame f;
		bool tx = dp_chance(35);
		char name[48];

		dp_build(&f, tx);
		dp_mutate(&f);
		rn.steered += steer(&e, &f, tx);
		if (i && i % SWEEP_EVERY == 0)
			swept += sweep(&e);
		snprintf(name, sizeof(name), "seed 0x%llx #%llu", (unsigned long long)seed,
			 (unsigned long long)i);
		one(&e, &rn, name, &f, tx);
	}
	printf("# idle sweeps released %llu contexts\n", (unsigned long long)swept);
	report("random frames", &rn);

	/* Every packet a context ever counted came from a hit or a claim, and a
	 * context loses its counts only when a claim reuses its released slot. */
	hits_claims = fx.outcome[CLAT_STAT_CTX_HIT] + fx.outcome[CLAT_STAT_CTX_CLAIM] +
		      rn.outcome[CLAT_STAT_CTX_HIT] + rn.outcome[CLAT_STAT_CTX_CLAIM];
	for (i = 0; i < e.sg.size; i++) {
		const struct clat_ctx *c = shadow_view_ctx(&e.v, e.sg.base + 1 + (uint32_t)i, NULL);

		if (c && (c->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE)
			live_pk += c->packets[0] + c->packets[1];
	}
	check(live_pk <= hits_claims && seen_stats[GUEST_FN][CLAT_STAT_CTX_HIT] +
	      seen_stats[GUEST_FN][CLAT_STAT_CTX_CLAIM] == hits_claims &&
	      seen_stats[GUEST_FN][CLAT_STAT_CTX_BUSY] == 0,
	      "context totals: live contexts hold %llu packets <= %llu hits+claims, no ctx_busy",
	      (unsigned long long)live_pk, (unsigned long long)hits_claims);
	dp_env_close(&e);
	return tap_done();
}
