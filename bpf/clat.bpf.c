// SPDX-License-Identifier: GPL-2.0
/* clat dispatcher: the device side of an SR-IOV NIC.
 *
 * clat_rx runs on the PF uplink: dst MAC (+VLAN) -> fn -> VCT[fn] -> VF port.
 * clat_tx runs on every representor: fn = ingress port; hairpin to a local
 * fn or send out the uplink.
 * clat_flood is the egress program of every fn's flood_ports entry: it
 * keeps a broadcast inside its VLAN.
 * clat_flood_tc (TCX ingress of a plain uplink, one vf-emu did not make):
 * XDP cannot clone, so there clat_rx passes floods to the stack and this
 * copies each to the fns of its VLAN.
 * Port policy (fn_policy, `clat-load vf set`): the sender's spoof check,
 * link state and policer in clat_tx; the receiver's link state and the
 * port VLAN's push/pop where a frame is steered to it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "clat_abi.h"
#include "parsing.h"
#include "maps.h"
#include "flow.h"
#include "context.h"
#include "policy.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by clat-load through the skeleton before load. */
const volatile __u32 unknown_unicast = CLAT_UNKNOWN_HOST;
/* The layout of the pinned maps this object expects; `clat-load upgrade`
 * reads it from the object before load and from the running program's
 * .rodata, and refuses a mismatch. */
const volatile __u32 layout_version = CLAT_MAP_LAYOUT_VERSION;
/* Set by clat-load at attach: 1 on an uplink without a host port fn 0 (not
 * made by vf-emu).  There the host stack is the PF's own: clat_rx passes
 * broadcast and multicast up (XDP_PASS) and clat_flood_tc, on the PF's TCX
 * ingress, copies them to the fns.  0 keeps every flood in flood_ports. */
const volatile __u32 plain_uplink = 0;

#define FLOOD_FLAGS (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS)

static __always_inline __u64 frame_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

/* CLOCK_TAI, coarse: the clock tick's time plus the offset clat-load keeps
 * in pf_clock.  A few ns where a full clock read costs tens; idle GC
 * needs seconds. */
static __always_inline __u64 coarse_tai(void)
{
	__u32 zero = 0;
	struct clat_clock *clk = bpf_map_lookup_elem(&pf_clock, &zero);

	return bpf_ktime_get_coarse_ns() + (clk ? clk->tai_offset_ns : 0);
}

/* The service type of fn that tracks proto, or -1. */
static __always_inline int type_of(const struct clat_fn_desc *d, __u8 proto)
{
	__u16 mask = proto == IPPROTO_TCP ? CLAT_PROTO_TCP : CLAT_PROTO_UDP;
	int t;

#pragma unroll
	for (t = 0; t < CLAT_MAX_TYPES; t++)
		if (d->type[t].proto_mask & mask)
			return t;
	return -1;
}

/* Finds the context of this frame's flow in fn's pool segments and
 * updates it, or claims a slot when the frame opens a flow.  A global
 * function: the verifier checks it once, not once per call site.  The
 * caller has parsed L2: l3_off and l3_proto say where L3 is and what. */
__noinline int clat_track(struct xdp_md *ctx, __u32 fn, __u32 dir, __u32 l3_off, __u32 l3_proto)
{
	struct hdr_cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };
	const struct clat_type_desc *td;
	const struct clat_fn_desc *d;
	struct clat_vct_entry *v;
	struct flow_track tr;
	__u32 seg_state, newest;
	int t, idx, r;
	__u64 off;

	if (fn >= CLAT_MAX_FN) /* for the verifier: fn_stats() and the map keys */
		return 0;
	v = bpf_map_lookup_elem(&vct, &fn);
	if (!v || !v->bat_gpa)
		return 0; /* no guest tables: dispatch only */
	/* A global function's arguments carry no bounds: the verifier needs
	 * one before l3_off moves a packet pointer.  parse_l2 never exceeds it. */
	off = l3_off;
	barrier_var(off); /* one register, checked and then added: not two copies */
	if (off > L2_MAX_LEN)
		return 0;
	c.pos += off;
	d = bpf_map_lookup_elem(&fn_desc, &fn);
	if (!d || parse_flow(&c, l3_proto, dir, &tr.fi) != FLOW_OK ||
	    (t = type_of(d, tr.fi.key.proto)) < 0) {
		count(fn_stats(fn), CLAT_STAT_CTX_SKIP, 1);
		return 0;
	}
	td = &d->type[t & (CLAT_MAX_TYPES - 1)];
	/* One load: resync publishes a segment with a single store. */
	seg_state = *(volatile __u32 *)&td->seg_state;
	tr.hash = clat_flow_hash(td->hash_seed, &tr.fi.key);
	tr.tag = clat_tag_of(tr.hash);
	tr.fn = fn;
	tr.dir = dir & 1; /* index of packets[]/bytes[]: tell the verifier it is 0 or 1 */
	tr.type = t;
	tr.len = frame_len(ctx);
	tr.rx_queue = ctx->rx_queue_index;
	tr.now = coarse_tai();
	tr.released = 0;
	idx = clat_find(&tr, seg_state);
	if (idx != IDX_NONE) {
		clat_update(idx, &tr);
		r = TRACK_HIT;
	} else if (tr.fi.key.proto == IPPROTO_UDP ||
		   (tr.fi.tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN) {
		/* A flow opens with a TCP SYN or any UDP datagram.  TCP picked
		 * up mid-stream gets no context (like nf_conntrack_tcp_loose=0). */
		newest = (seg_state >> CLAT_SEG_NEWEST_SHIFT) & (CLAT_MAX_SEGMENTS - 1);
		tr.base = td->seg[newest].base;
		tr.first_bucket = td->seg[newest].first_bucket;
		tr.nbuckets = seg_state & (1U << newest) ? td->seg[newest].nbuckets : 0;
		r = claim(&tr, seg_state);
	} else {
		r = TRACK_MISS;
	}
	{
		struct clat_stats *s = fn_stats(fn);

		count(s, r, 1);
		if (r == TRACK_EVICT) /* a claim too */
			count(s, CLAT_STAT_CTX_CLAIM, 1);
		if (tr.released)
			count(s, CLAT_STAT_CTX_RELEASE, 1);
	}
	return 0;
}

/* Tracks the frame in fn's contexts, claiming a slot if it opens a flow. */
static __always_inline void track(struct xdp_md *ctx, __u32 fn, __u32 dir,
				  const struct l2_info *l2)
{
	clat_track(ctx, fn, dir, l2->l3_off, l2->proto);
}

static __always_inline struct clat_mac_val *lookup_mac(const __u8 *mac, __u16 vlan)
{
	struct clat_mac_key key = { .vlan = vlan };

	__builtin_memcpy(key.mac, mac, ETH_ALEN);
	return bpf_map_lookup_elem(&mac_fn, &key);
}

/* Redirect to an ACTIVE fn's port, counting into (slot, slot+1) of the
 * stats of count_fn: packets then bytes.  The frame enters fn's VM, so it
 * updates fn's context in the IN direction.  vlan is the frame's VLAN
 * (the sender's port VLAN, or its outer tag), tagged whether it carries
 * that tag now: a fn with a port VLAN gets it untagged, any other fn
 * tagged with it. */
static __always_inline int deliver(struct xdp_md *ctx, const struct l2_info *l2, __u32 fn,
				   __u32 count_fn, enum clat_stat pkt_slot, __u16 vlan, int tagged)
{
	struct clat_stats *s = fn_stats(count_fn);
	struct clat_vct_entry *e = bpf_map_lookup_elem(&vct, &fn);
	const struct clat_fn_policy *p = policy_of(fn);
	struct l2_info out = *l2;
	int ret, want_tag;

	if (!e || e->state == CLAT_FN_FREE) {
		count(s, CLAT_STAT_DROP_INACTIVE, 1);
		return XDP_DROP;
	}
	if (e->state == CLAT_FN_QUIESCED) {
		count(fn_stats(fn), CLAT_STAT_DROP_QUIESCED, 1);
		return XDP_DROP;
	}
	if (!p) /* for the verifier: an ACTIVE fn is inside fn_policy */
		return XDP_DROP;
	if (p->link_state == CLAT_LINK_DISABLE) {
		count(fn_stats(fn), CLAT_STAT_DROP_LINK_DOWN, 1);
		return XDP_DROP;
	}
	want_tag = !p->vlan && vlan;
	if (tagged != want_tag) {
		if (tagged ? vlan_pop(ctx) : vlan_push(ctx, vlan)) {
			count(s, CLAT_STAT_DROP_MALFORMED, 1);
			return XDP_DROP;
		}
		out.l3_off = tagged ? out.l3_off - VLAN_HLEN : out.l3_off + VLAN_HLEN;
	}
	/* The low bits of flags are the verdict when the slot is empty. */
	ret = bpf_redirect_map(&vf_ports, fn, XDP_DROP);
	if (ret == XDP_DROP) {
		count(s, CLAT_STAT_DROP_NO_PORT, 1);
		return ret;
	}
	count(s, pkt_slot, 1);
	count(s, pkt_slot + 1, frame_len(ctx));
	track(ctx, fn, CLAT_DIR_IN, &out);
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
		if (plain_uplink)
			return XDP_PASS; /* clat_flood_tc copies it to the fns */
		return bpf_redirect_map(&flood_ports, 0, FLOOD_FLAGS);
	}
	mv = lookup_mac(l2.eth->h_dest, l2.vlan);
	if (!mv)
		return unknown_unicast_verdict();
	return deliver(ctx, &l2, mv->fn, mv->fn, CLAT_STAT_RX_PACKETS, l2.vlan, l2.vlan != 0);
}

SEC("xdp")
int clat_tx(struct xdp_md *ctx)
{
	struct hdr_cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };
	__u32 ifindex = ctx->ingress_ifindex;
	struct clat_port_val *pv;
	struct clat_vct_entry *e;
	const struct clat_fn_policy *p;
	struct clat_mac_val *mv;
	struct clat_stats *s;
	struct l2_info l2;
	int ret, tagged;
	__u16 vlan;
	__u32 fn;

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
	/* The frame's VLAN: the port VLAN (the VM sends untagged), or its
	 * own outer tag. */
	vlan = l2.vlan;
	tagged = vlan != 0;
	p = policy_of(fn);
	if (!p) { /* for the verifier: port_fn only names fns inside fn_policy */
		count(s, CLAT_STAT_DROP_NO_FN, 1);
		return XDP_DROP;
	}
	if (p->link_state == CLAT_LINK_DISABLE) {
		count(s, CLAT_STAT_DROP_LINK_DOWN, 1);
		return XDP_DROP;
	}
	if (p->vlan) {
		/* Behind a port VLAN any tag of the VM's own is a spoof, whatever
		 * spoofchk says: the VM must not pick its VLAN. */
		if (l2.l3_off != ETH_HLEN) {
			count(s, CLAT_STAT_DROP_SPOOF, 1);
			return XDP_DROP;
		}
		vlan = p->vlan;
	}
	if (p->spoofchk) {
		/* The source MAC must be one of fn's, registered under this VLAN. */
		mv = lookup_mac(l2.eth->h_source, vlan);
		if (!mv || mv->fn != fn) {
			count(s, CLAT_STAT_DROP_SPOOF, 1);
			return XDP_DROP;
		}
	}
	if (p->max_rate_mbit && !police(fn, p->max_rate_mbit, frame_len(ctx))) {
		count(s, CLAT_STAT_DROP_RATE, 1);
		return XDP_DROP;
	}
	if (is_multicast_mac(l2.eth->h_dest)) {
		/* Uplink plus every other ACTIVE fn; the ingress port is excluded.
		 * Tagged with the VLAN, so the uplink gets it tagged and each
		 * fn's clat_flood can tell who belongs to it. */
		if (tagged != (vlan != 0) && vlan_push(ctx, vlan)) {
			count(s, CLAT_STAT_DROP_MALFORMED, 1);
			return XDP_DROP;
		}
		count(s, CLAT_STAT_FLOOD_TX, 1);
		return bpf_redirect_map(&flood_ports, 0, FLOOD_FLAGS);
	}
	/* Keyed with the sender's VLAN: no hairpin into another VLAN. */
	mv = lookup_mac(l2.eth->h_dest, vlan);
	if (mv && mv->fn != fn) {
		ret = deliver(ctx, &l2, mv->fn, fn, CLAT_STAT_HAIRPIN_PACKETS, vlan, tagged);
		if (ret == XDP_REDIRECT) {
			/* deliver() may have moved L3 by a tag: track from the
			 * frame as it leaves. */
			if (parse_l2(&(struct hdr_cursor){ (void *)(long)ctx->data,
							   (void *)(long)ctx->data_end }, &l2) == 0)
				track(ctx, fn, CLAT_DIR_OUT, &l2);
		}
		return ret;
	}

	if (tagged != (vlan != 0)) {
		if (vlan_push(ctx, vlan)) {
			count(s, CLAT_STAT_DROP_MALFORMED, 1);
			return XDP_DROP;
		}
		l2.l3_off += VLAN_HLEN;
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

/* Egress program of every fn's flood_ports entry, run once per copy of a
 * broadcast: the copy reaches fn only inside its VLAN.  A flood carries
 * its VLAN as its outer tag (clat_tx pushed a sender's port VLAN).  fn
 * with port VLAN V: only floods tagged V, popped.  fn without: only
 * untagged floods, except fn 0, the PF's host port, which like a PF sees
 * every VLAN.  A fn whose link is disabled gets none. */
SEC("xdp/devmap")
int clat_flood(struct xdp_md *ctx)
{
	struct hdr_cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };
	__u32 ifindex = ctx->egress_ifindex;
	const struct clat_fn_policy *p;
	struct clat_port_val *pv;
	struct l2_info l2;
	__u32 fn;

	if (parse_l2(&c, &l2) < 0)
		return XDP_DROP;
	pv = bpf_map_lookup_elem(&port_fn, &ifindex);
	if (!pv)
		return XDP_DROP; /* only fns' entries run this program */
	fn = pv->fn;
	p = policy_of(fn);
	if (!p) /* for the verifier: fn_policy covers every fn */
		return XDP_DROP;
	if (p->link_state == CLAT_LINK_DISABLE) {
		count(fn_stats(fn), CLAT_STAT_DROP_LINK_DOWN, 1);
		return XDP_DROP;
	}
	if (p->vlan) {
		if (l2.l3_off == ETH_HLEN || l2.vlan != p->vlan || vlan_pop(ctx))
			return XDP_DROP;
		return XDP_PASS;
	}
	return l2.vlan == 0 || fn == 0 ? XDP_PASS : XDP_DROP;
}

/* Open-coded iterator over fns (kfuncs of this kernel; the libbpf headers
 * here predate bpf_for): the verifier walks the body a few times, not 256. */
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __weak __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __weak __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __weak __ksym;

#define for_each_num(i, start, end)                                                        \
	for (struct bpf_iter_num ___it __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))), \
	     *___p __attribute__((unused)) =                                                  \
		     (bpf_iter_num_new(&___it, (start), (end)), (void)bpf_iter_num_destroy,   \
		      (void *)0);                                                             \
	     ({                                                                               \
		     int *___t = bpf_iter_num_next(&___it);                                   \
		     (___t && ((i) = *___t, (i) >= (start) && (i) < (end)));                  \
	     });)

#define TC_ACT_OK 0

/* TCX ingress of a plain uplink, for the broadcast and multicast clat_rx
 * passed to the stack: a copy to every ACTIVE fn of the frame's VLAN, by
 * clat_flood's rules (port VLAN V: only copies tagged V, popped; no port
 * VLAN: only untagged copies, fn 0 every VLAN; link disabled: none), then
 * the original goes on to the host stack as it arrived.  The stack has
 * moved the outer tag into the skb's metadata by now, so vlan_pop/push
 * are the kernel's helpers: the original is tagged again after each
 * popped copy.  A QUIESCED or FREE fn gets nothing, like flood_ports. */
SEC("tc")
int clat_flood_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u16 vlan = 0, tci = 0;
	__be16 vproto = 0;
	int fn;

	if ((void *)(eth + 1) > end || !is_multicast_mac(eth->h_dest))
		return TC_ACT_OK;
	if (skb->vlan_present) {
		tci = skb->vlan_tci;
		vlan = tci & VLAN_VID_MASK;
		vproto = skb->vlan_proto;
	}
	for_each_num(fn, 0, CLAT_MAX_FN) {
		struct clat_vct_entry *v = bpf_map_lookup_elem(&vct, &fn);
		const struct clat_fn_policy *p = policy_of(fn);

		if (!v || !p || v->state != CLAT_FN_ACTIVE || !v->ifindex)
			continue;
		if (p->link_state == CLAT_LINK_DISABLE) {
			count(fn_stats(fn), CLAT_STAT_DROP_LINK_DOWN, 1);
			continue;
		}
		if (!p->vlan) {
			if (!vlan || fn == 0)
				bpf_clone_redirect(skb, v->ifindex, 0);
			continue;
		}
		if (vlan != p->vlan)
			continue;
		if (bpf_skb_vlan_pop(skb)) {
			count(fn_stats(fn), CLAT_STAT_DROP_MALFORMED, 1);
			continue;
		}
		bpf_clone_redirect(skb, v->ifindex, 0);
		if (bpf_skb_vlan_push(skb, vproto, tci))
			return 2; /* TC_ACT_SHOT: the host must not see it untagged */
	}
	return TC_ACT_OK;
}
