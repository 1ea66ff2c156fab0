/* SPDX-License-Identifier: GPL-2.0 */
/* Per-VF port policy: 802.1Q push and pop for a port VLAN, and the max-rate
 * policer.  The checks themselves (spoofchk, link state) are a compare each
 * and live in clat.bpf.c where the frame is steered. */
#ifndef CLAT_POLICY_H
#define CLAT_POLICY_H

#define VLAN_HLEN 4

/* The policy of fn: an array slot, so only an fn outside the array (never
 * written by clat-load) has none. */
static __always_inline const struct clat_fn_policy *policy_of(__u32 fn)
{
	return bpf_map_lookup_elem(&fn_policy, &fn);
}

/* Removes the outer VLAN tag: the two MACs move up by 4 bytes.  Returns 0
 * or -1 (no tag room: the caller drops). */
static __always_inline int vlan_pop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 macs[3];

	if (data + ETH_HLEN + VLAN_HLEN > end)
		return -1;
	__builtin_memcpy(macs, data, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, VLAN_HLEN))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* For the verifier: adjust_head invalidated every packet pointer. */
	if (data + sizeof(macs) > end)
		return -1;
	__builtin_memcpy(data, macs, sizeof(macs));
	return 0;
}

/* Inserts an 802.1Q tag with vid after the MACs.  Returns 0 or -1. */
static __always_inline int vlan_push(struct xdp_md *ctx, __u16 vid)
{
	void *data, *end;
	__u32 macs[3];
	__be16 *hdr;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(macs) > end)
		return -1;
	__builtin_memcpy(macs, data, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, -VLAN_HLEN))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* For the verifier: the new head is unchecked packet memory. */
	if (data + sizeof(macs) + 2 * sizeof(*hdr) > end)
		return -1;
	__builtin_memcpy(data, macs, sizeof(macs));
	/* TPID then TCI where the ethertype was; the old ethertype follows
	 * at offset 16, already in place. */
	hdr = data + sizeof(macs);
	hdr[0] = bpf_htons(ETH_P_8021Q);
	hdr[1] = bpf_htons(vid & VLAN_VID_MASK); /* TCI: priority 0 */
	return 0;
}

/* Burst of a policer: 20 ms of its rate, at least two full frames; in the
 * bucket's units (1/8000 byte). */
static __always_inline __u64 police_burst(__u32 rate_mbit)
{
	__u64 b = (__u64)rate_mbit * 2500; /* bytes in 20 ms: Mbit/s * 1e6 / 8 * 0.02 */

	return (b < 3028 ? 3028 : b) * 8000;
}

/* Token bucket of fn: 1 if a frame of len bytes may pass (and takes its
 * tokens), 0 if it is over the rate. */
static __always_inline int police(__u32 fn, __u32 rate_mbit, __u64 len)
{
	struct clat_rate_state *r = bpf_map_lookup_elem(&fn_rate, &fn);
	__u64 now = bpf_ktime_get_ns(), burst = police_burst(rate_mbit), elapsed, tokens;
	int ok;

	if (!r)
		return 1; /* for the verifier: fn_rate covers every fn */
	len *= 8000;
	bpf_spin_lock(&r->lock);
	elapsed = now - r->last_ns;
	/* A second refills any bucket (and a fresh one starts full); the cap
	 * keeps elapsed * rate far from overflow. */
	if (elapsed > 1000000000ULL)
		elapsed = 1000000000ULL;
	tokens = r->tokens + elapsed * rate_mbit; /* ns * Mbit/s = 1/8000 byte */
	if (tokens > burst)
		tokens = burst;
	ok = tokens >= len;
	if (ok)
		tokens -= len;
	r->tokens = tokens;
	r->last_ns = now;
	bpf_spin_unlock(&r->lock);
	return ok;
}

#endif
