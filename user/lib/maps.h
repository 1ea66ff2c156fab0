/* SPDX-License-Identifier: GPL-2.0 */
/* The dispatcher's maps: opened from a skeleton or from a PF's pins, and
 * the per-fn entries every command agrees on (MAC, VCT port, policy,
 * flood port). */
#ifndef CLAT_MAPS_H
#define CLAT_MAPS_H

#include <stddef.h>
#include <stdint.h>

#include "clat_abi.h"

/* File descriptors of the dispatcher's maps, from a fresh skeleton or from pins. */
struct clat_maps {
	int mac_fn;
	int vct;
	int vf_ports;
	int port_fn;
	int stats;
	int fn_desc;
	int pool_ctx;   /* the context pool (see pool.h) */
	int pool_meta;
	int pool_dirty;
	int pool_alloc;
	int pf_clock;
	int claim_locks;
	int guests;
	int guest_types; /* key fn * CLAT_MAX_TYPES + type */
	int fn_policy;  /* struct clat_fn_policy per fn */
	int fn_rate;    /* policer state per fn (datapath-private layout) */
	int flood_ports; /* DEVMAP of struct bpf_devmap_val: the flood domain */
	int prog_flood; /* clat_flood, for flood_ports entries (a program, pinned with the maps) */
	int lock_fd;    /* the pin dir, flocked by the pool allocator; -1 unpinned */
};

int maps_open_pinned(const char *dir, struct clat_maps *m);
/* Every map of a loaded skeleton (struct clat *), by pin name. */
struct clat;
void maps_from_skel(const struct clat *skel, struct clat_maps *m);
int maps_pin(const struct clat_maps *m, const char *dir);
void maps_close(struct clat_maps *m);
/* Sets pf_clock's offset from the coarse clock to CLOCK_TAI. */
int clock_refresh(const struct clat_maps *m);
int fn_install(const struct clat_maps *m, uint32_t fn, const uint8_t mac[6], uint16_t vlan,
	       uint32_t ifindex);
int fn_remove(const struct clat_maps *m, uint32_t fn);
int policer_reset(const struct clat_maps *m, uint32_t fn);
/* fn's flood_ports entry: its port with clat_flood, or none (ifindex 0). */
int flood_port_set(const struct clat_maps *m, uint32_t fn, uint32_t ifindex);
/* The policy of a fn that vf add, vf-emu sync or fn_install creates. */
#define CLAT_POLICY_DEFAULT ((struct clat_fn_policy){ .spoofchk = 1, .link_state = CLAT_LINK_AUTO })
int fn_macs(const struct clat_maps *m, uint32_t fn, struct clat_mac_key *keys, int max);

/* Opens the pinned maps of an attached PF (as root: -EPERM with a clear
 * message otherwise), with a clear error if it is not attached. */
int open_attached(const char *pf, const char *pin_dir_opt, char *dir, size_t len,
		  struct clat_maps *m);

#endif
