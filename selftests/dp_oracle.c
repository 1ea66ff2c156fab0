// SPDX-License-Identifier: GPL-2.0
/* The datapath fuzzer's oracle (see dp_oracle.h). */
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_link.h>

#include "dp_oracle.h"

const uint32_t FNS[NFN] = { 0, 1, 2, 3, 4, CLAT_FN_NONE };

const struct dp_fn FN_TABLE[5] = {
	{ MAC_HOST, 0, CLAT_FN_ACTIVE, true },  { MAC_VF1, 0, CLAT_FN_ACTIVE, true },
	{ MAC_VF2, 100, CLAT_FN_ACTIVE, true }, { MAC_VF3, 0, CLAT_FN_QUIESCED, true },
	{ MAC_VF4, 0, CLAT_FN_ACTIVE, false },
};

/* ---- the oracle ----------------------------------------------------------- */


int o_l2(const struct frame *f, struct l2 *l)
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
int o_flow(const struct frame *f, const struct l2 *l, int dir, struct oflow *o)
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
uint32_t m_window(uint8_t wlog, int d)
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

struct m_step m_tcp(struct clat_ctx *c, const struct oflow *fl, int dir)
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

void predict(struct env *e, struct outcome *o, const struct frame *f, bool tx)
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
