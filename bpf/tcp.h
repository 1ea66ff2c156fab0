/* SPDX-License-Identifier: GPL-2.0 */
/* TCP run state of a context, as the frames of both directions move it.
 *
 * A segment counts (moves the state, the tracked sequence, a FIN or a RST)
 * only when its sequence lies in the window that the other side, the one
 * it is sent to, acknowledged and advertised: [ack, ack + window).  That
 * anchor moves only with the other side's own in-window segments, so a
 * blind peer cannot walk it: it must guess a sequence inside the real
 * window, as an endpoint's own RFC 5961 checks demand. */
#ifndef CLAT_TCP_H
#define CLAT_TCP_H

/* ceil(log2(x)) for 1 <= x < 2^32, branch-free: a branch per step would
 * fork the verifier's paths through everything after it. */
static __always_inline __u32 log2_up(__u64 x)
{
	__u64 v = (x - 1) + ((x - 1) >> 63); /* x - 1, and 0 for x = 0 */

	v |= v >> 1;
	v |= v >> 2;
	v |= v >> 4;
	v |= v >> 8;
	v |= v >> 16;
	v = v - ((v >> 1) & 0x55555555ULL);
	v = (v & 0x33333333ULL) + ((v >> 2) & 0x33333333ULL);
	v = (v + (v >> 4)) & 0x0f0f0f0fULL;
	return (__u32)((v * 0x01010101ULL) >> 24) & 63;
}

static __always_inline __u32 nibble(__u8 v, __u32 d)
{
	return d ? v >> 4 : v & 15;
}

static __always_inline __u8 set_nibble(__u8 v, __u32 d, __u32 n)
{
	return d ? (v & 0x0f) | (n << 4) : (v & 0xf0) | (n & 15);
}

/* The segment from dir lies in what the other side acknowledged and
 * advertised.  Before the other side acknowledged anything (it sent only
 * its SYN), only a segment that acknowledges exactly that SYN is. */
static __always_inline int in_window(const struct clat_ctx *c, const struct flow_info *fi,
				     __u32 dir)
{
	__u32 other = (dir & 1) ^ 1, w = nibble(c->wlog, other);

	if (w)
		return fi->seq - c->ack_last[other] < 1U << (CLAT_TCP_WLOG_BASE + w - 1);
	return (fi->tcp_flags & TCPF_ACK) && c->seq_next[other] && fi->ack == c->seq_next[other];
}

/* What an in-window segment from dir tells of its own side: the sequence
 * it reached, what it acknowledged, and the window it advertised. */
static __always_inline void learn(struct clat_ctx *c, const struct flow_info *fi, __u32 dir)
{
	__u32 scale = nibble(c->wscale, dir), w;

	dir &= 1;
	if (fi->tcp_flags & TCPF_SYN) { /* a SYN's own window is never scaled */
		scale = fi->wscale == TCP_WSCALE_NONE ? 0 : fi->wscale;
		c->wscale = set_nibble(c->wscale, dir, scale);
		scale = 0;
	}
	if (fi->seq_len)
		c->seq_next[dir] = fi->seq + fi->seq_len;
	if (!(fi->tcp_flags & TCPF_ACK))
		return;
	c->ack_last[dir] = fi->ack;
	w = log2_up((__u64)fi->win << scale);
	w = w < CLAT_TCP_WLOG_BASE ? 1 : w - CLAT_TCP_WLOG_BASE + 1;
	c->wlog = set_nibble(c->wlog, dir, w > 15 ? 15 : w);
}

/* Returns 1 when the connection is over. */
static __always_inline int tcp_update(struct clat_ctx *c, const struct flow_info *fi, __u32 dir,
				      __u64 now)
{
	__u8 flags = fi->tcp_flags, st = c->tcp_state;
	int in;

	if ((flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN && st >= CLAT_TCP_FIN_WAIT) {
		/* The 5-tuple is reused by a new connection: start over in place. */
		c->fin_mask = 0;
		c->initiator = dir;
		c->first_seen_ns = now;
		c->wlog = 0;
		c->seq_next[0] = c->seq_next[1] = 0;
		st = CLAT_TCP_SYN_SENT;
	}
	/* The opening SYN (and its retransmits) has nothing to be checked
	 * against yet: it is what the window will be anchored to. */
	in = in_window(c, fi, dir) ||
	     ((flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN && st == CLAT_TCP_SYN_SENT &&
	      dir == c->initiator);
	if (!in)
		return 0;
	if (flags & TCPF_RST) {
		c->tcp_state = CLAT_TCP_CLOSED;
		return 1;
	}
	if (st == CLAT_TCP_SYN_SENT && (flags & (TCPF_SYN | TCPF_ACK)) == (TCPF_SYN | TCPF_ACK) &&
	    dir != c->initiator)
		st = CLAT_TCP_SYN_RECV;
	else if (st == CLAT_TCP_SYN_RECV && (flags & (TCPF_SYN | TCPF_ACK)) == TCPF_ACK &&
		 dir == c->initiator)
		st = CLAT_TCP_ESTABLISHED;
	if (flags & TCPF_FIN) {
		c->fin_mask |= 1 << (dir & 1);
		c->last_fin_dir = dir;
		st = c->fin_mask == 3 ? CLAT_TCP_LAST_ACK : CLAT_TCP_FIN_WAIT;
	} else if (st == CLAT_TCP_LAST_ACK && (flags & TCPF_ACK) && dir != c->last_fin_dir) {
		st = CLAT_TCP_CLOSED;
	}
	c->tcp_state = st;
	learn(c, fi, dir);
	return st == CLAT_TCP_CLOSED;
}

#endif
