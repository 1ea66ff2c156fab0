/* SPDX-License-Identifier: GPL-2.0 */
/* Maps of the dispatcher.  All are pinned by clat-load under
 * /sys/fs/bpf/clat/<pf>/ and typed through BTF, except the DEVMAP whose
 * kernel type rejects BTF key/value ids. */
#ifndef CLAT_MAPS_H
#define CLAT_MAPS_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CLAT_MAX_MACS);
	__type(key, struct clat_mac_key);
	__type(value, struct clat_mac_val);
} mac_fn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_FN);
	__type(key, __u32);
	__type(value, struct clat_vct_entry);
} vct SEC(".maps");

/* fn -> egress ifindex; slot CLAT_UPLINK_SLOT holds the PF uplink.  Only
 * ACTIVE fns are present, so a broadcast flood reaches exactly them. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, CLAT_MAX_FN + 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} vf_ports SEC(".maps");

/* Representor ifindex -> fn, for clat_tx. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CLAT_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct clat_port_val);
} port_fn SEC(".maps");

/* Slot CLAT_FN_NONE counts frames that belong to no fn. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLAT_MAX_FN + 1);
	__type(key, __u32);
	__type(value, struct clat_stats);
} stats SEC(".maps");

/* ---- Device-side shadow of the guest tables: key fn * CLAT_MAX_TYPES + type */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_FN * CLAT_MAX_TYPES);
	__type(key, __u32);
	__type(value, struct clat_bat_cache);
} bat_cache SEC(".maps");

/* Capacity segments, as the datapath reads them; key clat_shadow_key(). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_SHADOWS);
	__type(key, __u32);
	__type(value, struct clat_dev_seg);
} clat_segs SEC(".maps");

/* Per-CPU scratch record: a fresh context is built here, off the 512-byte
 * BPF stack, then copied into the claimed slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clat_ctx);
} ctx_scratch SEC(".maps");

/* Inner maps are sized per guest; BPF_F_INNER_MAP lets their max_entries
 * differ from the template, BPF_F_MMAPABLE lets clat-load fill and flush
 * them without a syscall per entry.  Userspace must use the same flags. */
/* Values are __u64 because array elements are 8-byte strided anyway, and
 * mmap then sees a plain array. */
struct tier_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct ctx_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clat_ctx);
};

/* One word per context block, set when the datapath writes the block. */
struct dirty_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CLAT_MAX_SHADOWS);
	__type(key, __u32);
	__array(values, struct tier_array);
} clat_tiers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CLAT_MAX_SHADOWS);
	__type(key, __u32);
	__array(values, struct ctx_array);
} clat_ctxs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CLAT_MAX_SHADOWS);
	__type(key, __u32);
	__array(values, struct dirty_array);
} clat_dirty SEC(".maps");

/* Where each fn's guest tables came from; written and read by clat-load only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_FN);
	__type(key, __u32);
	__type(value, struct clat_guest_info);
} guests SEC(".maps");

static __always_inline struct clat_stats *fn_stats(__u32 fn)
{
	return bpf_map_lookup_elem(&stats, &fn);
}

static __always_inline void count(struct clat_stats *s, enum clat_stat slot, __u64 n)
{
	/* Only a failed lookup leaves s NULL; the array covers every fn.  The
	 * mask bounds a computed slot for the verifier. */
	if (s)
		s->slot[slot & (CLAT_STAT_SLOTS - 1)] += n; /* per-CPU: no atomics */
}

#endif
