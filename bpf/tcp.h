/* SPDX-License-Identifier: GPL-2.0 */
/* TCP run state of a context, as the frames of both directions move it. */
#ifndef CLAT_TCP_H
#define CLAT_TCP_H

/* How far a RST's sequence may be from the next expected one. */
#define RST_SEQ_SLACK (1U << 20)

/* Returns 1 when the connection is over. */
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

#endif
