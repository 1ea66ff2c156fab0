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

char LICENSE[] SEC("license") = "GPL";

/* Set by clat-load through the skeleton before load. */
const volatile __u32 unknown_unicast = CLAT_UNKNOWN_HOST;

#define FLOOD_FLAGS (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS)

static __always_inline __u64 frame_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

static __always_inline struct clat_mac_val *lookup_mac(struct l2_info *l2)
{
	struct clat_mac_key key = { .vlan = l2->vlan };

	__builtin_memcpy(key.mac, l2->eth->h_dest, ETH_ALEN);
	return bpf_map_lookup_elem(&mac_fn, &key);
}

/* Redirect to an ACTIVE fn's port, counting into (slot, slot+1) of the
 * stats of count_fn: packets then bytes. */
static __always_inline int deliver(struct xdp_md *ctx, __u32 fn, __u32 count_fn,
				   enum clat_stat pkt_slot)
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
	return deliver(ctx, mv->fn, mv->fn, CLAT_STAT_RX_PACKETS);
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
	if (mv && mv->fn != fn)
		return deliver(ctx, mv->fn, fn, CLAT_STAT_HAIRPIN_PACKETS);

	ret = bpf_redirect_map(&vf_ports, CLAT_UPLINK_SLOT, XDP_DROP);
	if (ret == XDP_DROP) {
		count(s, CLAT_STAT_DROP_NO_PORT, 1);
		return ret;
	}
	count(s, CLAT_STAT_TX_PACKETS, 1);
	count(s, CLAT_STAT_TX_BYTES, frame_len(ctx));
	return ret;
}
