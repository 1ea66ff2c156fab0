// SPDX-License-Identifier: GPL-2.0
/* clat dispatcher: the device side of an SR-IOV NIC.
 *
 * clat_rx runs on the PF uplink: dst MAC (+VLAN) -> fn -> VCT[fn] -> VF port.
 * clat_tx runs on every representor: fn = ingress port; hairpin to a local
 * fn or send out the uplink.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "clat_abi.h"
#include "parsing.h"
#include "maps.h"
#include "flow.h"
#include "context.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by clat-load through the skeleton before load. */
const volatile __u32 unknown_unicast = CLAT_UNKNOWN_HOST;
/* The layout of the pinned maps this object expects; `clat-load upgrade`
 * reads it from the object before load and from the running program's
 * .rodata, and refuses a mismatch. */
const volatile __u32 layout_version = CLAT_MAP_LAYOUT_VERSION;

#define FLOOD_FLAGS (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS)

static __always_inline __u64 frame_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

/* The service type that tracks this protocol; its segments are looked up
 * per probe pass (see find). */
static __always_inline int guest_view_of(__u32 fn, __u8 proto, struct guest_view *g)
{
	__u16 mask = proto == IPPROTO_TCP ? CLAT_PROTO_TCP : CLAT_PROTO_UDP;
	__u32 t, key;

#pragma unroll
	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		key = fn * CLAT_MAX_TYPES + t;
		g->b = bpf_map_lookup_elem(&bat_cache, &key);
		if (g->b && g->b->valid && (g->b->proto_mask & mask))
			break;
		g->b = NULL;
	}
	if (!g->b || !(g->b->seg_state & CLAT_SEG_LIVE_MASK) || !g->b->per_block)
		return -1;
	g->type = t;
	g->fn = fn;
	return 0;
}

/* Parses the frame's flow from its L3 header on and sets up the probe
 * state; -1 if the frame gets no context. */
static __always_inline int track_begin(struct xdp_md *ctx, __u32 fn, __u32 dir, __u32 l3_off,
				       __u32 l3_proto, struct flow_info *fi, struct slot_probe *pr)
{
	struct hdr_cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };

	/* A global function's arguments carry no bounds: the verifier needs
	 * one before l3_off moves a packet pointer.  parse_l2 never exceeds it. */
	if (l3_off > L2_MAX_LEN)
		return -1;
	c.pos += l3_off;
	if (parse_flow(&c, l3_proto, dir, fi) != FLOW_OK || guest_view_of(fn, fi->key.proto, &pr->g))
		return -1;
	pr->g.hash = clat_flow_hash(pr->g.b->hash_seed, &fi->key);
	pr->fi = fi;
	pr->fn = fn;
	pr->dir = dir;
	pr->now = bpf_ktime_get_tai_ns();
	pr->won = 0;
	pr->released = 0;
	pr->len = frame_len(ctx);
	pr->rx_queue = ctx->rx_queue_index;
	return 0;
}

static __always_inline void track_count(__u32 fn, int r, const struct slot_probe *pr)
{
	struct clat_stats *s = fn_stats(fn);

	count(s, r, 1);
	if (pr->released)
		count(s, CLAT_STAT_CTX_RELEASE, 1);
}

/* Finds the context of this frame's flow in fn's guest tables and updates
 * it.  Returns 0, or a claim request (see claim_req) when the flow has no
 * context yet and this frame may open it.  A global function: the verifier
 * checks it once, not once per call site.  The caller has parsed L2: l3_off
 * and l3_proto say where the L3 header is and what it is. */
__noinline int clat_track(struct xdp_md *ctx, __u32 fn, __u32 dir, __u32 l3_off, __u32 l3_proto)
{
	struct clat_vct_entry *v;
	struct flow_info fi;
	struct slot_probe pr;
	int r;

	if (fn >= CLAT_MAX_FN)
		return 0;
	v = bpf_map_lookup_elem(&vct, &fn);
	if (!v || !v->bat_gpa)
		return 0; /* no guest tables: dispatch only */
	dir &= 1; /* index of packets[]/bytes[]: tell the verifier it is 0 or 1 */
	if (track_begin(ctx, fn, dir, l3_off, l3_proto, &fi, &pr)) {
		count(fn_stats(fn), CLAT_STAT_CTX_SKIP, 1);
		return 0;
	}
	r = find(&pr);
	/* A flow opens with a TCP SYN or any UDP datagram.  TCP picked up
	 * mid-stream gets no context (like nf_conntrack_tcp_loose=0). */
	if (r == TRACK_MISS &&
	    (fi.key.proto == IPPROTO_UDP || (fi.tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN)) {
		if (!(pr.seg_state & (1U << pr.newest)))
			r = TRACK_SKIP;
		else if (pr.free_p == PROBE_NONE)
			r = TRACK_FULL;
		else
			return claim_req(&pr);
	}
	track_count(fn, r, &pr);
	return 0;
}

/* Claims a slot for the flow clat_track did not find, from the free
 * position it saw on.  A global function of its own, called after
 * clat_track returns: the verifier checks the claim once rather than once
 * for every way the find passes end, and the two probe states never share
 * one stack.  The frame is parsed again: only a flow's first frame pays. */
__noinline int clat_claim(struct xdp_md *ctx, __u32 fn, __u32 l3_off, __u32 l3_proto, __u32 req)
{
	struct flow_info fi;
	struct slot_probe pr;
	int r;

	if (fn >= CLAT_MAX_FN) /* for the verifier: fn_stats() and the map keys */
		return 0;
	if (track_begin(ctx, fn, claim_req_dir(req), l3_off, l3_proto, &fi, &pr) ||
	    pr.g.type != claim_req_type(req)) {
		count(fn_stats(fn), CLAT_STAT_CTX_SKIP, 1);
		return 0;
	}
	pr.seg_state = claim_req_seg_state(req);
	pr.newest = (pr.seg_state >> CLAT_SEG_NEWEST_SHIFT) & (CLAT_MAX_SEGMENTS - 1);
	pr.free_p = claim_req_free_p(req);
	r = claim(&pr);
	track_count(fn, r, &pr);
	return 0;
}

/* Tracks the frame in fn's contexts, claiming a slot if it opens a flow. */
static __always_inline void track(struct xdp_md *ctx, __u32 fn, __u32 dir,
				  const struct l2_info *l2)
{
	int req = clat_track(ctx, fn, dir, l2->l3_off, l2->proto);

	if (req > 0)
		clat_claim(ctx, fn, l2->l3_off, l2->proto, req);
}

static __always_inline struct clat_mac_val *lookup_mac(struct l2_info *l2)
{
	struct clat_mac_key key = { .vlan = l2->vlan };

	__builtin_memcpy(key.mac, l2->eth->h_dest, ETH_ALEN);
	return bpf_map_lookup_elem(&mac_fn, &key);
}

/* Redirect to an ACTIVE fn's port, counting into (slot, slot+1) of the
 * stats of count_fn: packets then bytes.  The frame enters fn's VM, so it
 * updates fn's context in the IN direction. */
static __always_inline int deliver(struct xdp_md *ctx, const struct l2_info *l2, __u32 fn,
				   __u32 count_fn, enum clat_stat pkt_slot)
{
	struct clat_stats *s = fn_stats(count_fn);
	struct clat_vct_entry *e = bpf_map_lookup_elem(&vct, &fn);
	int ret;

	if (!e || e->state == CLAT_FN_FREE) {
		count(s, CLAT_STAT_DROP_INACTIVE, 1);
		return XDP_DROP;
	}
	if (e->state == CLAT_FN_QUIESCED) {
		count(fn_stats(fn), CLAT_STAT_DROP_QUIESCED, 1);
		return XDP_DROP;
	}
	/* The low bits of flags are the verdict when the slot is empty. */
	ret = bpf_redirect_map(&vf_ports, fn, XDP_DROP);
	if (ret == XDP_DROP) {
		count(s, CLAT_STAT_DROP_NO_PORT, 1);
		return ret;
	}
	count(s, pkt_slot, 1);
	count(s, pkt_slot + 1, frame_len(ctx));
	track(ctx, fn, CLAT_DIR_IN, l2);
	return ret;
}

static __always_inline int unknown_unicast_verdict(void)
{
	struct clat_stats *s = fn_stats(CLAT_FN_NONE);

	if (unknown_unicast == CLAT_UNKNOWN_DROP) {
		count(s, CLAT_STAT_DROP_UNKNOWN, 1);
		return XDP_DROP;
	}
	count(s, CLAT_STAT_PASS_UNKNOWN, 1);
	if (unknown_unicast == CLAT_UNKNOWN_PASS)
		return XDP_PASS;
	return bpf_redirect_map(&vf_ports, 0, XDP_PASS);
}

SEC("xdp")
int clat_rx(struct xdp_md *ctx)
{
	struct hdr_cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };
	struct clat_mac_val *mv;
	struct l2_info l2;

	if (parse_l2(&c, &l2) < 0) {
		count(fn_stats(CLAT_FN_NONE), CLAT_STAT_DROP_MALFORMED, 1);
		return XDP_DROP;
	}
	if (is_multicast_mac(l2.eth->h_dest)) {
		/* The uplink slot is the ingress, so it is excluded. */
		count(fn_stats(CLAT_FN_NONE), CLAT_STAT_FLOOD_RX, 1);
		return bpf_redirect_map(&vf_ports, 0, FLOOD_FLAGS);
	}
	mv = lookup_mac(&l2);
	if (!mv)
		return unknown_unicast_verdict();
	return deliver(ctx, &l2, mv->fn, mv->fn, CLAT_STAT_RX_PACKETS);
}

SEC("xdp")
int clat_tx(struct xdp_md *ctx)
{
	struct hdr_cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };
	__u32 ifindex = ctx->ingress_ifindex;
	struct clat_port_val *pv;
	struct clat_vct_entry *e;
	struct clat_mac_val *mv;
	struct clat_stats *s;
	struct l2_info l2;
	__u32 fn;
	int ret;

	pv = bpf_map_lookup_elem(&port_fn, &ifindex);
	if (!pv) {
		count(fn_stats(CLAT_FN_NONE), CLAT_STAT_DROP_NO_FN, 1);
		return XDP_DROP;
	}
	fn = pv->fn;
	s = fn_stats(fn);
	e = bpf_map_lookup_elem(&vct, &fn);
	if (!e || e->state == CLAT_FN_FREE) {
		count(s, CLAT_STAT_DROP_INACTIVE, 1);
		return XDP_DROP;
	}
	if (e->state == CLAT_FN_QUIESCED) {
		count(s, CLAT_STAT_DROP_QUIESCED, 1);
		return XDP_DROP;
	}
	if (parse_l2(&c, &l2) < 0) {
		count(s, CLAT_STAT_DROP_MALFORMED, 1);
		return XDP_DROP;
	}
	if (is_multicast_mac(l2.eth->h_dest)) {
		/* Uplink plus every other ACTIVE fn; the ingress port is excluded. */
		count(s, CLAT_STAT_FLOOD_TX, 1);
		return bpf_redirect_map(&vf_ports, 0, FLOOD_FLAGS);
	}
	mv = lookup_mac(&l2);
	if (mv && mv->fn != fn) {
		ret = deliver(ctx, &l2, mv->fn, fn, CLAT_STAT_HAIRPIN_PACKETS);
		if (ret == XDP_REDIRECT)
			track(ctx, fn, CLAT_DIR_OUT, &l2);
		return ret;
	}

	ret = bpf_redirect_map(&vf_ports, CLAT_UPLINK_SLOT, XDP_DROP);
	if (ret == XDP_DROP) {
		count(s, CLAT_STAT_DROP_NO_PORT, 1);
		return ret;
	}
	count(s, CLAT_STAT_TX_PACKETS, 1);
	count(s, CLAT_STAT_TX_BYTES, frame_len(ctx));
	track(ctx, fn, CLAT_DIR_OUT, &l2);
	return ret;
}
