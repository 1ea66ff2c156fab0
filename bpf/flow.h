/* SPDX-License-Identifier: GPL-2.0 */
/* L3/L4 parsing into the canonical flow key (VM side first). */
#ifndef CLAT_FLOW_H
#define CLAT_FLOW_H

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_HOPOPTS 0
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_DSTOPTS 60
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define CLAT_MAX_EXT_HDRS 4
#define TCP_MAX_OPTS 10    /* options walked in a SYN, looking for the window scale */
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_WINDOW 3
#define TCP_WSCALE_NONE 0xff

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

enum flow_parse {
	FLOW_OK = 0,
	FLOW_SKIP = 1, /* fragment, other protocol, or truncated: no context */
};

struct flow_info {
	struct clat_flow_key key;
	__u32 seq;
	__u32 ack;
	__u32 seq_len;  /* payload + SYN + FIN: sequence space consumed */
	__u16 win;      /* the window field, unscaled */
	__u8 tcp_flags;
	__u8 wscale;    /* a SYN's window scale option, TCP_WSCALE_NONE if none */
};

static __always_inline void map_v4(__u8 *dst, __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

/* The window scale option of a SYN (RFC 7323), or TCP_WSCALE_NONE.  Only
 * SYNs carry it, so only a flow's first frames pay for the walk. */
static __always_inline __u8 syn_wscale(const struct hdr_cursor *c, const struct tcphdr *th,
				       __u32 doff)
{
	const __u8 *o = (const __u8 *)(th + 1), *end = (const __u8 *)th + doff;
	__u32 i;

	for (i = 0; i < TCP_MAX_OPTS; i++) {
		if (o + 1 > (const __u8 *)c->end || o >= end || o[0] == TCPOPT_EOL)
			break;
		if (o[0] == TCPOPT_NOP) {
			o++;
			continue;
		}
		if (o + 3 > (const __u8 *)c->end || o + 2 > end || o[1] < 2)
			break;
		if (o[0] == TCPOPT_WINDOW && o[1] == 3)
			return o[2] > 14 ? 14 : o[2]; /* RFC 7323: at most 14 */
		o += o[1] & 0x3f; /* options fit in 40 bytes: the mask bounds o for the verifier */
	}
	return TCP_WSCALE_NONE;
}

/* Fills key ports and the TCP fields; l4_len is the L4 bytes from the IP header. */
static __always_inline int parse_l4(struct hdr_cursor *c, __u8 proto, __u32 l4_len, __u32 dir,
				    struct flow_info *fi)
{
	__be16 sport, dport;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = c->pos;
		__u32 doff;

		if ((void *)(th + 1) > c->end)
			return FLOW_SKIP;
		doff = th->doff * 4;
		if (doff < sizeof(*th) || doff > l4_len)
			return FLOW_SKIP;
		sport = th->source;
		dport = th->dest;
		fi->tcp_flags = ((__u8 *)th)[13];
		fi->seq = bpf_ntohl(th->seq);
		fi->ack = bpf_ntohl(th->ack_seq);
		fi->seq_len = l4_len - doff + !!(fi->tcp_flags & TCPF_SYN) +
			      !!(fi->tcp_flags & TCPF_FIN);
		fi->win = bpf_ntohs(th->window);
		fi->wscale = fi->tcp_flags & TCPF_SYN ? syn_wscale(c, th, doff) : TCP_WSCALE_NONE;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = c->pos;

		if ((void *)(uh + 1) > c->end)
			return FLOW_SKIP;
		sport = uh->source;
		dport = uh->dest;
	} else {
		return FLOW_SKIP;
	}
	fi->key.proto = proto;
	fi->key.vm_port = dir == CLAT_DIR_IN ? dport : sport;
	fi->key.remote_port = dir == CLAT_DIR_IN ? sport : dport;
	return FLOW_OK;
}

static __always_inline int parse_ipv4(struct hdr_cursor *c, __u32 dir, struct flow_info *fi)
{
	struct iphdr *iph = c->pos;
	__u32 hlen, tot;

	if ((void *)(iph + 1) > c->end)
		return FLOW_SKIP;
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	/* A length beyond the frame would claim sequence space no byte
	 * carries: such a frame gets no context. */
	if (hlen < sizeof(*iph) || tot < hlen || (void *)iph + tot > c->end)
		return FLOW_SKIP;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return FLOW_SKIP;
	map_v4(fi->key.vm_addr, dir == CLAT_DIR_IN ? iph->daddr : iph->saddr);
	map_v4(fi->key.remote_addr, dir == CLAT_DIR_IN ? iph->saddr : iph->daddr);
	c->pos += hlen;
	return parse_l4(c, iph->protocol, tot - hlen, dir, fi);
}

static __always_inline int parse_ipv6(struct hdr_cursor *c, __u32 dir, struct flow_info *fi)
{
	struct ipv6hdr *ip6 = c->pos;
	__u32 len;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > c->end)
		return FLOW_SKIP;
	__builtin_memcpy(fi->key.vm_addr, dir == CLAT_DIR_IN ? &ip6->daddr : &ip6->saddr, 16);
	__builtin_memcpy(fi->key.remote_addr, dir == CLAT_DIR_IN ? &ip6->saddr : &ip6->daddr, 16);
	len = bpf_ntohs(ip6->payload_len);
	next = ip6->nexthdr;
	c->pos = ip6 + 1;
	/* Bounded walk of the extension headers clat can skip; a fragment
	 * header means no L4 ports in this frame. */
#pragma unroll
	for (i = 0; i < CLAT_MAX_EXT_HDRS; i++) {
		struct ipv6_opt_hdr *oh = c->pos;
		__u32 olen;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS)
			break;
		if ((void *)(oh + 1) > c->end)
			return FLOW_SKIP;
		olen = (oh->hdrlen + 1) * 8;
		if (olen > len)
			return FLOW_SKIP;
		len -= olen;
		next = oh->nexthdr;
		c->pos += olen;
	}
	return parse_l4(c, next, len, dir, fi);
}

/* FLOW_OK with fi filled, or FLOW_SKIP. */
static __always_inline int parse_flow(struct hdr_cursor *c, __u16 l3proto, __u32 dir,
				      struct flow_info *fi)
{
	__builtin_memset(fi, 0, sizeof(*fi));
	if (l3proto == ETH_P_IP)
		return parse_ipv4(c, dir, fi);
	if (l3proto == ETH_P_IPV6)
		return parse_ipv6(c, dir, fi);
	return FLOW_SKIP;
}

#endif
