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

/* The flood domain: the uplink (slot CLAT_UPLINK_SLOT, no program) and
 * every ACTIVE fn's port, each with clat_flood as its egress program,
 * which drops the copies that leave the frame's VLAN and pops the tag for
 * a port VLAN.  Unicast goes through vf_ports and never runs it. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, CLAT_MAX_FN + 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct bpf_devmap_val));
} flood_ports SEC(".maps");

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

/* Per-VF port policy (clat-load vf set), key fn.  All zero is a fn
 * without policy: no port VLAN, no spoof check, link auto, no policer. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_FN);
	__type(key, __u32);
	__type(value, struct clat_fn_policy);
} fn_policy SEC(".maps");

/* Policer state of a fn with a max-rate: a token bucket in units of
 * 1/8000 byte, so a refill of elapsed_ns * rate_mbit needs no division and
 * loses no fraction.  Datapath-private (userspace never reads it); a
 * spin lock because one VF's frames arrive on every CPU. */
struct clat_rate_state {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 tokens;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_FN);
	__type(key, __u32);
	__type(value, struct clat_rate_state);
} fn_rate SEC(".maps");

/* ---- Context memory: one pool per PF -------------------------------------
 * The pool maps are sized at attach (--pool-contexts): the max_entries
 * here are placeholders that clat-load replaces before load.  Mmapable, so
 * clat-load fills and flushes them in place, without a syscall per entry. */

/* Where each fn's service types live in the pool. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_FN);
	__type(key, __u32);
	__type(value, struct clat_fn_desc);
} fn_desc SEC(".maps");

/* The contexts: bucket b holds slots [b * 32, b * 32 + 32). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, CLAT_BUCKET_SLOTS);
	__type(key, __u32);
	__type(value, struct clat_ctx);
} pool_ctx SEC(".maps");

/* One tag line per bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clat_bucket);
} pool_meta SEC(".maps");

/* Dirty bits, one per bucket: the write-back finds what changed by
 * scanning words, not buckets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pool_dirty SEC(".maps");

/* Who owns which extent of the pool; read and written by clat-load only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_EXTENTS);
	__type(key, __u32);
	__type(value, struct clat_extent);
} pool_alloc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clat_clock);
} pf_clock SEC(".maps");

/* Claim locks: a word per stripe, 1 while a CPU claims a flow of that
 * stripe (bpf/context.h).  Pinned, so an old and a new program share them
 * during a hot upgrade. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_CLAIM_STRIPES);
	__type(key, __u32);
	__type(value, __u64);
} claim_locks SEC(".maps");

/* The BAT entry each (fn, type) shadow was validated from, key
 * fn * CLAT_MAX_TYPES + type: what a resync checks growth against.
 * clat-load only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLAT_MAX_FN * CLAT_MAX_TYPES);
	__type(key, __u32);
	__type(value, struct clat_bat_entry);
} guest_types SEC(".maps");

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
