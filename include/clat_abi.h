/* SPDX-License-Identifier: GPL-2.0 */
/* The one ABI shared by the BPF datapath and userspace.
 *
 * Every struct here is a pinned map key or value, so its layout is what
 * `bpftool map dump` prints and what a hot upgrade must keep.  Only
 * <linux/types.h> is included so the same file compiles for BPF and for
 * userspace; every padding byte is explicit and every size is asserted.
 */
#ifndef CLAT_ABI_H
#define CLAT_ABI_H

#ifndef __VMLINUX_H__ /* BPF side: vmlinux.h already has the types */
#include <linux/types.h>
#endif

/* Bumped whenever a pinned map's key or value layout changes. */
#define CLAT_MAP_LAYOUT_VERSION 4

enum clat_limits {
	CLAT_MAX_FN = 256,             /* function numbers 0..255; fn 0 is the PF's own host port */
	CLAT_FN_NONE = CLAT_MAX_FN,    /* stats slot for frames that belong to no fn */
	CLAT_UPLINK_SLOT = CLAT_MAX_FN,/* vf_ports slot of the PF uplink (used by clat_tx) */
	CLAT_MAX_PORTS = 1024,         /* port_fn: representor ifindex -> fn */
	CLAT_MAX_MACS = 4096,          /* mac_fn entries */
	CLAT_MAX_TYPES = 4,            /* service types per BAT */
	CLAT_MAX_LEVELS = 4,           /* CLAT levels N */
	CLAT_MAX_CLAT_ENTRIES = 512,   /* C: 4 KiB page / 8-byte GPA */
	CLAT_MAX_CAPACITY = 1 << 28,   /* services per type: 32-bit device indexes stay far from overflow */
	CLAT_MAX_SEGMENTS = 4,         /* capacity segments per type (a power of two) */
	/* Pool extents: one per fn, type and segment (clat_extent_key) */
	CLAT_MAX_EXTENTS = CLAT_MAX_FN * CLAT_MAX_TYPES * CLAT_MAX_SEGMENTS,
	CLAT_BUCKET_SLOTS = 32,        /* contexts per bucket: one tag line */
	CLAT_BUCKET_CHOICES = 2,       /* candidate buckets per flow and segment */
	CLAT_POOL_DEFAULT = 1 << 18,   /* pool contexts when attach is not told (32 MiB) */
	CLAT_POOL_MAX = 1 << 25,       /* 4 GiB of contexts: far beyond any test or bench */
	CLAT_CLAIM_STRIPES = 1024,     /* claim locks (map claim_locks), picked by flow tag */
};

/* VCT entry state, as in a paused/running VF. */
enum clat_fn_state {
	CLAT_FN_FREE = 0,
	CLAT_FN_ACTIVE = 1,
	CLAT_FN_QUIESCED = 2, /* frames are dropped and counted, like a paused VF */
};

/* What clat_rx does with unicast whose dst MAC maps to no fn. */
enum clat_unknown_action {
	CLAT_UNKNOWN_HOST = 0, /* redirect to fn 0 (host port); XDP_PASS if fn 0 has no port */
	CLAT_UNKNOWN_PASS = 1, /* XDP_PASS on the PF itself */
	CLAT_UNKNOWN_DROP = 2,
};

/* Per-fn counter slots.  Names in user/clat-load/status.c (stat_names) must follow this order. */
enum clat_stat {
	CLAT_STAT_RX_PACKETS,      /* wire -> fn, unicast redirected */
	CLAT_STAT_RX_BYTES,
	CLAT_STAT_TX_PACKETS,      /* fn -> uplink */
	CLAT_STAT_TX_BYTES,
	CLAT_STAT_HAIRPIN_PACKETS, /* fn -> another local fn */
	CLAT_STAT_HAIRPIN_BYTES,
	CLAT_STAT_FLOOD_RX,        /* broadcast/multicast from the wire, flooded */
	CLAT_STAT_FLOOD_TX,        /* broadcast/multicast from a fn, flooded */
	CLAT_STAT_PASS_UNKNOWN,    /* unknown unicast handed to the host */
	CLAT_STAT_DROP_UNKNOWN,    /* unknown unicast dropped by policy */
	CLAT_STAT_DROP_MALFORMED,  /* runt or truncated header */
	CLAT_STAT_DROP_QUIESCED,   /* fn is QUIESCED */
	CLAT_STAT_DROP_INACTIVE,   /* fn is FREE or out of range */
	CLAT_STAT_DROP_NO_PORT,    /* fn ACTIVE but no devmap port */
	CLAT_STAT_DROP_NO_FN,      /* clat_tx on an ifindex that maps to no fn */
	CLAT_STAT_CTX_HIT,         /* frame found its context */
	CLAT_STAT_CTX_CLAIM,       /* first frame of a flow claimed a slot */
	CLAT_STAT_CTX_RELEASE,     /* FIN from both sides or RST: slot released, tag cleared */
	CLAT_STAT_CTX_FULL,        /* both candidate buckets full: delivered without a context */
	CLAT_STAT_CTX_MISS,        /* TCP mid-stream with no context: delivered without */
	CLAT_STAT_CTX_SKIP,        /* fragment, non-TCP/UDP or no service type: no context */
	CLAT_STAT_CTX_BUSY,        /* every free slot was taken by racing claims meanwhile */
	CLAT_STAT_DROP_SPOOF,      /* from a VF: source MAC or VLAN not the fn's (spoofchk) */
	CLAT_STAT_DROP_LINK_DOWN,  /* to or from a fn whose link state is disable */
	CLAT_STAT_DROP_RATE,       /* from a VF over its max-rate */
	CLAT_STAT_CTX_EVICT,       /* a claim took the slot of a flow never answered */
	CLAT_STAT__MAX,
};

/* mac_fn key: destination MAC plus the outer VLAN ID (0 = untagged). */
struct clat_mac_key {
	__u8 mac[6];
	__u16 vlan;
};

struct clat_mac_val {
	__u32 fn;
};

/* VCT: one entry per function number. */
struct clat_vct_entry {
	__u64 bat_gpa;     /* guest physical address of the BAT; 0 = no guest tables */
	__u32 state;       /* enum clat_fn_state */
	__u32 generation;  /* BAT generation the device shadow was built from */
	__u32 ifindex;     /* representor of this fn */
	__u32 pad;
};

struct clat_port_val {
	__u32 fn;
};

/* Per-VF port policy, the knobs of `ip link set PF vf N ...` (map
 * fn_policy, key fn).  Written by clat-load vf add/set. */
enum clat_link_state {
	CLAT_LINK_AUTO = 0,    /* follows the PF */
	CLAT_LINK_ENABLE = 1,  /* up whatever the PF does */
	CLAT_LINK_DISABLE = 2, /* down: frames to and from the VF are dropped */
};

struct clat_fn_policy {
	__u16 vlan;           /* port VLAN: the VM sees untagged frames; 0 = none */
	__u8 spoofchk;        /* 1: a VF's frames must carry one of its MACs and its VLAN */
	__u8 trust;           /* 1: the VF may have MACs beyond its first */
	__u8 link_state;      /* enum clat_link_state */
	__u8 pad[3];
	__u32 max_rate_mbit;  /* per-VF policer on frames from the VF; 0 = none */
	__u32 pad2;
};

/* Room for new counters without a layout change; a power of two so the
 * datapath can bound a computed slot with a mask. */
#define CLAT_STAT_SLOTS 32

struct clat_stats {
	__u64 slot[CLAT_STAT_SLOTS];
};

/* ---- Guest table ABI: lives in guest memory, little-endian ---------------- */

#define CLAT_BAT_MAGIC 0x5441424cU /* "LBAT" */
#define CLAT_BAT_VERSION 3 /* 3: bucketed placement, 128-byte context record */
#define CLAT_PAGE_SIZE 4096        /* CLAT pages, blocks and the BAT are page aligned */
#define CLAT_GPA_NONE 0            /* an empty CLAT entry; GPA 0 is never a table */

enum clat_proto_mask {
	CLAT_PROTO_TCP = 1,
	CLAT_PROTO_UDP = 2,
};

/* At bat_gpa: the header, then ntypes entries. */
struct clat_bat_hdr {
	__u32 magic;
	__u16 version;
	__u16 ntypes;
	__u32 generation; /* bumped by the guest whenever it changes its tables */
	__u32 pad;
};

/* A capacity segment: services base+1 .. base+size, in buckets of
 * CLAT_BUCKET_SLOTS services (the last one may be short).  Growing the
 * capacity appends a segment, so a live context never moves and never
 * changes its service number.  base is a multiple of P: a block belongs to
 * one segment at most.  Which slots a flow may occupy: clat_bucket_of(). */
struct clat_seg {
	__u32 base;
	__u32 size;
};

struct clat_bat_entry {
	__u64 clat_gpa;      /* first-level CLAT page */
	__u32 ctx_size;      /* A: bytes per context */
	__u32 block_size;    /* B: bytes per block; A divides B */
	__u32 levels;        /* N: 1..CLAT_MAX_LEVELS */
	__u32 clat_entries;  /* C: entries per CLAT page, 1..512 */
	__u32 capacity;      /* services 1..capacity are backed by blocks */
	__u32 hash_seed;     /* chosen by the guest, secret from remote peers */
	__u16 pad1;
	__u16 proto_mask;    /* enum clat_proto_mask: flows this type tracks */
	char name[16];       /* NUL-padded */
	__u16 nsegs;         /* 1..CLAT_MAX_SEGMENTS; seg[nsegs - 1] takes new flows */
	__u16 pad0;
	struct clat_seg seg[CLAT_MAX_SEGMENTS]; /* ascending, disjoint, within capacity */
	__u32 pad[2];
};

/* A CLAT page is CLAT_PAGE_SIZE bytes of __u64 GPAs, of which the first C
 * are used: level n < N entries point at level n+1 pages, level N entries
 * at context blocks. */

/* ---- Context record: one per service number ------------------------------ */

enum clat_slot_state {
	CLAT_SLOT_EMPTY = 0,     /* never used */
	CLAT_SLOT_CLAIMING = 1,  /* a CPU won the slot and is writing the key */
	CLAT_SLOT_LIVE = 2,
	CLAT_SLOT_RELEASED = 3,  /* the flow closed: free for a claim, kept for the guest to read */
};

/* state_word: enum clat_slot_state | tag << CLAT_SLOT_TAG_SHIFT.  The tag
 * in the word makes a release's CAS fail on a slot re-claimed meanwhile. */
#define CLAT_SLOT_STATE_MASK 0xffULL
#define CLAT_SLOT_TAG_SHIFT 32

enum clat_tcp_state {
	CLAT_TCP_NONE = 0, /* UDP */
	CLAT_TCP_SYN_SENT,
	CLAT_TCP_SYN_RECV,
	CLAT_TCP_ESTABLISHED,
	CLAT_TCP_FIN_WAIT,  /* FIN from one side */
	CLAT_TCP_LAST_ACK,  /* FIN from both sides, waiting for the last ACK */
	CLAT_TCP_CLOSED,
};

/* Directions, as seen from the VM. */
enum clat_dir {
	CLAT_DIR_IN = 0,  /* wire/other VF -> VM (clat_rx, hairpin target) */
	CLAT_DIR_OUT = 1, /* VM -> wire/other VF (clat_tx) */
};

/* Canonical flow key: both directions of a flow give the same key.
 * IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). */
struct clat_flow_key {
	__u8 vm_addr[16];
	__u8 remote_addr[16];
	__be16 vm_port;
	__be16 remote_port;
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad[3];
};

/* 128 bytes, so A = 128 fits 32 contexts in a 4 KiB block.  The first
 * 64-byte line holds what a lookup compares and the packet counters; the
 * second, the rest of what every frame writes. */
struct clat_ctx {
	__u64 state_word;         /* enum clat_slot_state | tag << 32; CAS target */
	struct clat_flow_key key;
	__u64 packets[2];         /* per enum clat_dir */
	/* line 2 */
	__u64 bytes[2];
	__u32 seq_next[2];        /* next expected TCP sequence, per direction */
	__u32 ack_last[2];        /* last TCP ack, per direction */
	/* timer state: CLOCK_TAI, comparable across hosts after a migration;
	 * last_seen_ns comes from a coarse clock (a tick, not a nanosecond) */
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	/* run state */
	__u8 tcp_state;           /* enum clat_tcp_state */
	__u8 fin_mask;            /* bit per enum clat_dir that sent a FIN */
	__u8 initiator;           /* enum clat_dir of the first frame */
	__u8 last_fin_dir;
	/* self-check: who owns this context and where it lives */
	__u16 fn;
	__u16 type;
	__u32 svc;
	__u16 rx_queue;           /* last ingress queue */
	__u8 wscale;              /* TCP window scale of each direction: nibble per enum clat_dir */
	__u8 wlog;                /* TCP window each direction advertised: clat_ctx_window() */
};

/* wlog's nibble d is 0 while direction d has acknowledged nothing, else
 * the window it advertised (scaled) rounded up to a power of two,
 * 2^(CLAT_TCP_WLOG_BASE + n - 1), n in 1..15 (4 KiB to 64 MiB). */
#define CLAT_TCP_WLOG_BASE 12

static inline __u32 clat_ctx_window(const struct clat_ctx *c, __u32 dir)
{
	__u32 n = dir ? c->wlog >> 4 : c->wlog & 15;

	return n ? 1U << (CLAT_TCP_WLOG_BASE + n - 1) : 0;
}

/* ---- Device context memory: the pool ------------------------------------ */

/* Per-bucket metadata (map pool_meta, parallel to the pool's buckets): one
 * tag per slot, so one cache line says which slot, if any, holds a flow. */
enum clat_tag {
	CLAT_TAG_FREE = 0,       /* the slot may be claimed */
	CLAT_TAG_FENCE = 0xffff, /* past the segment's last service: never used */
};

struct clat_bucket {
	__u16 tag[CLAT_BUCKET_SLOTS];
};

/* One capacity segment on the device: services base + 1 .. base + size
 * live in the pool's buckets [first_bucket, first_bucket + nbuckets). */
struct clat_dev_seg {
	__u32 base;
	__u32 size;
	__u32 first_bucket;
	__u32 nbuckets;
};

/* seg_state: bit k set = device segment k is live; bits 8..15 = the newest,
 * which takes new flows.  One aligned store publishes a new segment after
 * its entry and its extent are in place. */
#define CLAT_SEG_LIVE_MASK ((1U << CLAT_MAX_SEGMENTS) - 1)
#define CLAT_SEG_NEWEST_SHIFT 8

/* What the datapath needs of one service type: everything inline, so a
 * lookup is one descriptor read, then the pool. */
struct clat_type_desc {
	__u32 seg_state;
	__u32 hash_seed;
	__u16 proto_mask;    /* 0: no such type */
	__u16 pad0;
	__u32 pad1;
	struct clat_dev_seg seg[CLAT_MAX_SEGMENTS];
};

/* Map fn_desc, one per fn. */
struct clat_fn_desc {
	struct clat_type_desc type[CLAT_MAX_TYPES];
};

/* Map pool_alloc, key clat_extent_key(): who owns which part of the pool.
 * Kept pinned so a restarted or concurrent clat-load sees it, under the
 * pin dir's flock. */
enum clat_extent_state {
	CLAT_EXTENT_FREE = 0,
	CLAT_EXTENT_STAGED = 1,  /* being filled by owner_pid; not yet in fn_desc */
	CLAT_EXTENT_LIVE = 2,    /* in fn_desc, or about to be */
};

struct clat_extent {
	__u32 first_bucket;
	__u32 nbuckets;
	__u32 state;          /* enum clat_extent_state */
	__u32 owner_pid;      /* STAGED: the process filling it */
	__u64 owner_start;    /* its start time (clock ticks after boot): a reused PID is not it */
};

/* Map pf_clock: what turns the datapath's coarse monotonic clock into
 * CLOCK_TAI; clat-load sets it at attach and refreshes it on gc. */
struct clat_clock {
	__u64 tai_offset_ns;
};

/* Where a guest's tables came from, for sync/detach (userspace only). */
struct clat_guest_info {
	__u64 bat_gpa;
	__u64 mem_size;
	__u32 generation;
	__u32 ntypes;
	__u64 mem_dev;      /* st_dev and st_ino of the file at attach: every */
	__u64 mem_ino;      /* reopen by path must find the same file */
	char mem_path[240];
};

_Static_assert(sizeof(struct clat_bat_hdr) == 16, "clat_bat_hdr layout");
_Static_assert(sizeof(struct clat_seg) == 8, "clat_seg layout");
_Static_assert(sizeof(struct clat_bat_entry) == 96, "clat_bat_entry layout");
_Static_assert(sizeof(struct clat_dev_seg) == 16, "clat_dev_seg layout");
_Static_assert(sizeof(struct clat_flow_key) == 40, "clat_flow_key layout");
_Static_assert(sizeof(struct clat_ctx) == 128, "clat_ctx layout");
_Static_assert(__builtin_offsetof(struct clat_ctx, bytes) == 64, "clat_ctx: hot line first");
_Static_assert(sizeof(struct clat_bucket) == 64, "clat_bucket: one cache line");
_Static_assert(sizeof(struct clat_type_desc) == 80, "clat_type_desc layout");
_Static_assert(sizeof(struct clat_fn_desc) == 320, "clat_fn_desc layout");
_Static_assert(sizeof(struct clat_extent) == 24, "clat_extent layout");
_Static_assert(sizeof(struct clat_clock) == 8, "clat_clock layout");
_Static_assert((CLAT_MAX_SEGMENTS & (CLAT_MAX_SEGMENTS - 1)) == 0, "segments: power of two");
_Static_assert(sizeof(struct clat_guest_info) == 280, "clat_guest_info layout");
_Static_assert(sizeof(struct clat_mac_key) == 8, "clat_mac_key layout");
_Static_assert(sizeof(struct clat_mac_val) == 4, "clat_mac_val layout");
_Static_assert(sizeof(struct clat_vct_entry) == 24, "clat_vct_entry layout");
_Static_assert(sizeof(struct clat_port_val) == 4, "clat_port_val layout");
_Static_assert(sizeof(struct clat_fn_policy) == 16, "clat_fn_policy layout");
_Static_assert(sizeof(struct clat_stats) == 8 * CLAT_STAT_SLOTS, "clat_stats layout");
_Static_assert(CLAT_STAT__MAX <= CLAT_STAT_SLOTS, "stats slots exhausted");

/* ---- Arithmetic shared by the datapath, the loader and the guest -------- */

/* Where service number svc lives: the entry offset at each level (0-based,
 * offset[0] = level 1) and the element within the block (0-based; the
 * patent's m = element + 1).  With i = svc - 1 and P = per_block:
 *   element = i mod P;  offset at level x = (i / (P * C^(N-x))) mod C.
 * Returns 0, or -1 if svc is 0 or beyond what N levels of C entries hold. */
struct clat_loc {
	__u32 offset[CLAT_MAX_LEVELS];
	__u32 element;
};

static inline int clat_locate(__u64 svc, __u32 per_block, __u32 clat_entries, __u32 levels,
			      struct clat_loc *loc)
{
	__u64 q;
	int k;

	if (svc == 0 || per_block == 0 || clat_entries == 0 || levels == 0 ||
	    levels > CLAT_MAX_LEVELS)
		return -1;
	q = (svc - 1) / per_block;
	loc->element = (__u32)((svc - 1) % per_block);
	/* Fixed trip count, last level first, so the BPF verifier sees a bound. */
	for (k = CLAT_MAX_LEVELS - 1; k >= 0; k--) {
		if ((__u32)k >= levels) {
			loc->offset[k] = 0;
			continue;
		}
		loc->offset[k] = (__u32)(q % clat_entries);
		q /= clat_entries;
	}
	return q == 0 ? 0 : -1;
}

static inline __u64 clat_mix(__u64 h, __u64 v)
{
	h ^= v;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 29);
}

/* Keyed hash of a flow key (seeded by the guest's secret per-type seed).
 * Only the bytes that carry information: an IPv4 key's mapping prefix is
 * the same for every flow, so it is left out. */
static inline __u64 clat_flow_hash(__u32 seed, const struct clat_flow_key *key)
{
	const __u32 *w = (const __u32 *)key;
	const __u64 *q = (const __u64 *)key;
	__u64 h = 0x9e3779b97f4a7c15ULL ^ seed;

	/* w[8]: both ports; w[9]: proto and padding (always 0). */
	if ((q[0] | q[2]) == 0 && w[2] == w[6] && w[2] == 0xffff0000U) {
		h = clat_mix(h, (__u64)w[3] << 32 | w[7]);
	} else {
		h = clat_mix(h, q[0]);
		h = clat_mix(h, q[1]);
		h = clat_mix(h, q[2]);
		h = clat_mix(h, q[3]);
	}
	h = clat_mix(h, (__u64)w[8] << 32 | w[9]);
	/* Final avalanche: keys that differ only in a few bits (sequential
	 * ports) must still spread over every bucket. */
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

/* The flow's tag: 1..0xfffe, never CLAT_TAG_FREE or CLAT_TAG_FENCE.  From
 * its own remix of the hash, so flows that share a bucket (and so share
 * the hash bits that picked it) still differ in their tags. */
static inline __u16 clat_tag_of(__u64 h)
{
	__u32 t = (__u32)((h * 0x9e3779b97f4a7c15ULL) >> 48);

	return (__u16)(t % 0xfffeU + 1);
}

/* Candidate bucket c (0 or 1) of a flow in a segment of nbuckets: a
 * multiply-shift of one half of the hash (no division). */
static inline __u32 clat_bucket_of(__u64 h, __u32 c, __u32 nbuckets)
{
	__u32 x = c ? (__u32)(h >> 32) : (__u32)h;

	return (__u32)(((__u64)x * nbuckets) >> 32);
}

/* Buckets that hold `size` services. */
static inline __u32 clat_seg_buckets(__u32 size)
{
	return (size + CLAT_BUCKET_SLOTS - 1) / CLAT_BUCKET_SLOTS;
}

/* Service number of slot s of bucket b of the segment at base. */
static inline __u32 clat_slot_svc(__u32 base, __u32 b, __u32 s)
{
	return base + 1 + b * CLAT_BUCKET_SLOTS + s;
}

/* Pool-extent key of fn's type t, device segment k. */
static inline __u32 clat_extent_key(__u32 fn, __u32 t, __u32 k)
{
	return (fn * CLAT_MAX_TYPES + t) * CLAT_MAX_SEGMENTS + k;
}

#endif /* CLAT_ABI_H */
