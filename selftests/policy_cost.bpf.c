// SPDX-License-Identifier: GPL-2.0
/* Driver for policy_cost: BPF_PROG_TEST_RUN keeps a frame's changes from
 * one repeat to the next, so a pushed or popped VLAN tag would change the
 * case after its first repeat.  drive restores the frame (its length and
 * its first 18 bytes) and tail-calls the program under test; its own cost
 * is measured by tail-calling `empty` and subtracted. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct frame_tmpl {
	__u32 len;
	__u8 head[20]; /* 18 used: MACs, a tag or an ethertype, and 2 more */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct frame_tmpl);
} tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} target SEC(".maps");

SEC("xdp")
int drive(struct xdp_md *ctx)
{
	struct frame_tmpl *t;
	void *data, *end;
	__u32 zero = 0;
	int delta;

	t = bpf_map_lookup_elem(&tmpl, &zero);
	if (!t)
		return XDP_ABORTED;
	/* The length through a helper: a scalar, never a packet pointer. */
	delta = (int)bpf_xdp_get_buff_len(ctx) - (int)t->len;
	if (delta && bpf_xdp_adjust_head(ctx, delta))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + 18 > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, t->head, 18);
	bpf_tail_call(ctx, &target, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}
