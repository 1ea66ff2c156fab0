// SPDX-License-Identifier: GPL-2.0
/* TEST ONLY: claims the running layout version but declares a vct map of
 * another size, so `clat-load upgrade --obj` must refuse it by the pinned
 * maps' shape. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "clat_abi.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 layout_version = CLAT_MAP_LAYOUT_VERSION;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct clat_vct_entry);
} vct SEC(".maps");

SEC("xdp")
int clat_rx(struct xdp_md *ctx)
{
	__u32 fn = 0;

	return bpf_map_lookup_elem(&vct, &fn) ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int clat_tx(struct xdp_md *ctx)
{
	return XDP_PASS;
}
