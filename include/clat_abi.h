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
#define CLAT_MAP_LAYOUT_VERSION 1

enum clat_limits {
	CLAT_MAX_FN = 256,             /* function numbers 0..255; fn 0 is the PF's own host port */
	CLAT_FN_NONE = CLAT_MAX_FN,    /* stats slot for frames that belong to no fn */
	CLAT_UPLINK_SLOT = CLAT_MAX_FN,/* vf_ports slot of the PF uplink (used by clat_tx) */
	CLAT_MAX_PORTS = 1024,         /* port_fn: representor ifindex -> fn */
	CLAT_MAX_MACS = 4096,          /* mac_fn entries */
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

/* Per-fn counter slots.  Names in user/stats.c must follow this order. */
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

struct clat_stats {
	__u64 slot[CLAT_STAT__MAX];
};

_Static_assert(sizeof(struct clat_mac_key) == 8, "clat_mac_key layout");
_Static_assert(sizeof(struct clat_mac_val) == 4, "clat_mac_val layout");
_Static_assert(sizeof(struct clat_vct_entry) == 24, "clat_vct_entry layout");
_Static_assert(sizeof(struct clat_port_val) == 4, "clat_port_val layout");
_Static_assert(sizeof(struct clat_stats) == 8 * CLAT_STAT__MAX, "clat_stats layout");

#endif /* CLAT_ABI_H */
