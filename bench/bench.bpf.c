// SPDX-License-Identifier: GPL-2.0
/* Benchmark programs: the driver that feeds every per-packet case, the
 * floor, the two peer designs (LRU hash, the patent's literal flow table),
 * and the live-path traffic generator and counting sink.
 *
 * The peers parse the frame with clat's own parsers, do the same dispatch
 * on the same maps (bpf/maps.h: MAC hash -> VCT array -> DEVMAP redirect ->
 * per-CPU counters) and the same context update as clat_update() on the
 * same 128-byte struct clat_ctx (coarse clock, TCP state, fetching atomic
 * counters), so the only difference left is how the context is found.  The
 * peers do not mark a dirty bit: they have no write-back to feed.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "clat_abi.h"
#include "../bpf/parsing.h"
#include "../bpf/maps.h"
#include "../bpf/flow.h"
#include "../bpf/tcp.h"
#include "bench_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by userspace between runs (test runs are single-CPU, so plain
 * read-modify-write on these is safe). */
__u32 nkeys = 1;
__u32 target;
__u64 seq;
__u64 cnt[CNT__MAX];
__u32 lit_next;                   /* last service number handed out */
__u32 lit_capacity, lit_per_block, lit_entries, lit_levels;
__u32 gen_ifindex;                /* live generator: where frames go */
__u32 gen_nmacs = 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized to the working set */
	__type(key, __u32);
	__type(value, struct bench_key);
} keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, T__MAX);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} targets SEC(".maps");

/* ---- the driver ----------------------------------------------------------- */

#define IP_OFF ETH_HLEN
#define L4_OFF (ETH_HLEN + 20)

/* Rewrites the frame to the next connection of a shuffled working set and
 * tail-calls the case under test.  BPF_PROG_TEST_RUN keeps packet changes
 * across repeats, so every repeat writes all the fields it varies. */
SEC("xdp")
int drive(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + IP_OFF;
	struct udphdr *uh = data + L4_OFF;
	struct bench_key *k;
	__u32 i = seq++ % nkeys;

	k = bpf_map_lookup_elem(&keys, &i);
	if (!k || (void *)(uh + 1) > end)
		return XDP_ABORTED;
	ip->saddr = k->remote4;
	ip->daddr = k->vm4;
	uh->source = k->remote_port;
	uh->dest = k->vm_port;
	bpf_tail_call(ctx, &targets, target);
	return XDP_ABORTED;
}

SEC("xdp")
int floor_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* ---- peer dispatch: what clat_rx does before its context work ------------- */
/* The maps are bpf/maps.h's own (mac_fn, vct, vf_ports, stats, pf_clock):
 * this object has its copies, filled by the bench like clat-load fills
 * clat's. */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clat_ctx);
} p_scratch SEC(".maps");

/* clat_rx's clock: the coarse clock plus pf_clock's offset to TAI. */
static __always_inline __u64 coarse_tai(void)
{
	__u32 zero = 0;
	struct clat_clock *clk = bpf_map_lookup_elem(&pf_clock, &zero);

	return bpf_ktime_get_coarse_ns() + (clk ? clk->tai_offset_ns : 0);
}

/* XDP_REDIRECT with the frame's flow in fi, or another verdict. */
static __always_inline int peer_dispatch(struct xdp_md *ctx, struct flow_info *fi, __u32 *fn)
{
	struct hdr_cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };
	struct clat_mac_key mk = {};
	struct clat_vct_entry *e;
	struct clat_mac_val *mv;
	struct clat_stats *s;
	struct l2_info l2;
	int ret;

	if (parse_l2(&c, &l2) < 0)
		return XDP_DROP;
	mk.vlan = l2.vlan;
	__builtin_memcpy(mk.mac, l2.eth->h_dest, ETH_ALEN);
	mv = bpf_map_lookup_elem(&mac_fn, &mk);
	if (!mv)
		return XDP_PASS;
	*fn = mv->fn;
	e = bpf_map_lookup_elem(&vct, fn);
	if (!e || e->state != CLAT_FN_ACTIVE)
		return XDP_DROP;
	ret = bpf_redirect_map(&vf_ports, *fn, XDP_DROP);
	s = bpf_map_lookup_elem(&stats, fn);
	if (s) {
		s->slot[CLAT_STAT_RX_PACKETS]++;
		s->slot[CLAT_STAT_RX_BYTES] += ctx->data_end - ctx->data;
	}
	if (parse_flow(&c, l2.proto, CLAT_DIR_IN, fi) != FLOW_OK)
		return XDP_DROP;
	return ret;
}

/* A fresh context, built off the stack like clat's init_ctx(). */
static __always_inline struct clat_ctx *fresh_ctx(const struct flow_info *fi, __u32 fn, __u32 svc,
						  __u64 now)
{
	__u32 zero = 0;
	struct clat_ctx *f = bpf_map_lookup_elem(&p_scratch, &zero);

	if (!f)
		return NULL;
	__builtin_memset(f, 0, sizeof(*f));
	f->state_word = CLAT_SLOT_LIVE;
	f->key = fi->key;
	f->tcp_state = fi->key.proto == IPPROTO_TCP ? CLAT_TCP_SYN_SENT : CLAT_TCP_NONE;
	f->initiator = CLAT_DIR_IN;
	f->fn = fn;
	f->svc = svc;
	f->first_seen_ns = now;
	return f;
}

/* clat_update() on a context the peer found: the same stores, the same
 * TCP state machine, the same fetching (fully ordered) atomics. */
static __always_inline void touch(struct clat_ctx *c, struct xdp_md *ctx,
				  const struct flow_info *fi, __u64 now)
{
	__u64 fence;

	c->last_seen_ns = now;
	c->rx_queue = ctx->rx_queue_index;
	if (fi->key.proto == IPPROTO_TCP && tcp_update(c, fi, CLAT_DIR_IN, now))
		c->state_word = CLAT_SLOT_RELEASED;
	__sync_fetch_and_add(&c->packets[CLAT_DIR_IN], 1);
	fence = __sync_fetch_and_add(&c->bytes[CLAT_DIR_IN], ctx->data_end - ctx->data);
	barrier_var(fence);
}

/* ---- peer: Cilium/Katran-style LRU hash keyed by the flow ---------------- */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1); /* resized */
	__type(key, struct clat_flow_key);
	__type(value, struct clat_ctx);
} lru SEC(".maps");

SEC("xdp")
int peer_lru(struct xdp_md *ctx)
{
	__u64 now = coarse_tai();
	struct flow_info fi;
	struct clat_ctx *c, *f;
	__u32 fn = 0;
	int ret = peer_dispatch(ctx, &fi, &fn);

	if (ret != XDP_REDIRECT)
		return ret;
	c = bpf_map_lookup_elem(&lru, &fi.key);
	if (c) {
		cnt[CNT_HIT]++;
	} else {
		f = fresh_ctx(&fi, fn, 0, now);
		if (!f || bpf_map_update_elem(&lru, &fi.key, f, BPF_NOEXIST))
			cnt[CNT_FAIL]++;
		else
			cnt[CNT_INSERT]++;
		c = bpf_map_lookup_elem(&lru, &fi.key);
		if (!c)
			return ret;
	}
	touch(c, ctx, &fi, now);
	return ret;
}

/* ---- ablation: the patent's letter --------------------------------------- */
/* A flow hash gives a sequentially allocated service number, then a CLAT
 * walk over flattened tiers reaches the context: what clat did before the
 * walk moved to the host.  Plain global arrays stand in for the tiers. */

#define LIT_TIER_NONE 0xffffffffU

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized */
	__type(key, struct clat_flow_key);
	__type(value, __u32);
} flow_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized */
	__type(key, __u32);
	__type(value, __u32);
} lit_tiers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized */
	__type(key, __u32);
	__type(value, struct clat_ctx);
} lit_ctxs SEC(".maps");

static __always_inline struct clat_ctx *lit_walk(__u32 svc)
{
	struct clat_loc loc;
	__u32 page = 0, idx, *ent;
	int l;

	if (clat_locate(svc, lit_per_block, lit_entries, lit_levels, &loc))
		return NULL;
#pragma unroll
	for (l = 0; l < CLAT_MAX_LEVELS; l++) {
		if (l >= lit_levels)
			break;
		idx = page * lit_entries + loc.offset[l];
		ent = bpf_map_lookup_elem(&lit_tiers, &idx);
		if (!ent || *ent == LIT_TIER_NONE)
			return NULL;
		page = *ent;
	}
	idx = page * lit_per_block + loc.element;
	return bpf_map_lookup_elem(&lit_ctxs, &idx);
}

SEC("xdp")
int peer_literal(struct xdp_md *ctx)
{
	__u64 now = coarse_tai();
	struct flow_info fi;
	struct clat_ctx *c, *f;
	__u32 fn = 0, svc, *sp;
	int ret = peer_dispatch(ctx, &fi, &fn);

	if (ret != XDP_REDIRECT)
		return ret;
	sp = bpf_map_lookup_elem(&flow_svc, &fi.key);
	if (sp) {
		svc = *sp;
		cnt[CNT_HIT]++;
		c = lit_walk(svc);
		if (c)
			touch(c, ctx, &fi, now);
		return ret;
	}
	svc = ++lit_next; /* single-CPU test runs; a real device would need an atomic */
	if (svc > lit_capacity || bpf_map_update_elem(&flow_svc, &fi.key, &svc, BPF_NOEXIST)) {
		cnt[CNT_FAIL]++;
		return ret;
	}
	cnt[CNT_INSERT]++;
	c = lit_walk(svc);
	f = fresh_ctx(&fi, fn, svc, now);
	if (c && f) {
		__builtin_memcpy(c, f, sizeof(*c));
		touch(c, ctx, &fi, now);
	}
	return ret;
}

/* ---- live path ------------------------------------------------------------ */

/* Destination MACs for the generator, one per VF; frame i goes to
 * gen_macs[i % gen_nmacs] and takes connection i % nkeys. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct clat_mac_key);
} gen_macs SEC(".maps");

/* A bridge validates IPv4 headers (br_netfilter is built in), so live
 * frames carry a correct header checksum. */
static __always_inline void ip_checksum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;
	int i;

	ip->check = 0;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = ~sum;
}

/* Runs under BPF_F_TEST_XDP_LIVE_FRAMES: rewrites and sends each frame into
 * the wire port, from where the peer device (clat_rx's PF, a bridge port or
 * a macvlan's lower device) receives it. */
SEC("xdp")
int gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + IP_OFF;
	struct udphdr *uh = data + L4_OFF;
	struct clat_mac_key *m;
	struct bench_key *k;
	__u64 n = seq++;
	__u32 i = n % gen_nmacs, j = n % nkeys;

	m = bpf_map_lookup_elem(&gen_macs, &i);
	k = bpf_map_lookup_elem(&keys, &j);
	if (!m || !k || (void *)(uh + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, m->mac, ETH_ALEN);
	ip->saddr = k->remote4;
	ip->daddr = k->vm4;
	uh->source = k->remote_port;
	uh->dest = k->vm_port;
	ip_checksum(ip);
	return bpf_redirect(gen_ifindex, 0);
}

/* On every receiving VM port: count and drop. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&sink_count, &zero);

	if (c)
		(*c)++;
	return XDP_DROP;
}
