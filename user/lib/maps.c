// SPDX-License-Identifier: GPL-2.0
/* Function (VF) table updates shared by attach, vf add/del and status. */
#include "maps.h"
#include "common.h"
#include "vct.h"

#include <fcntl.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "clat.skel.h"

static const struct {
	const char *name;
	size_t off;
} pinned_maps[] = {
	{ PIN_MAP_MAC_FN, offsetof(struct clat_maps, mac_fn) },
	{ PIN_MAP_VCT, offsetof(struct clat_maps, vct) },
	{ PIN_MAP_VF_PORTS, offsetof(struct clat_maps, vf_ports) },
	{ PIN_MAP_PORT_FN, offsetof(struct clat_maps, port_fn) },
	{ PIN_MAP_STATS, offsetof(struct clat_maps, stats) },
	{ PIN_MAP_FN_DESC, offsetof(struct clat_maps, fn_desc) },
	{ PIN_MAP_POOL_CTX, offsetof(struct clat_maps, pool_ctx) },
	{ PIN_MAP_POOL_META, offsetof(struct clat_maps, pool_meta) },
	{ PIN_MAP_POOL_DIRTY, offsetof(struct clat_maps, pool_dirty) },
	{ PIN_MAP_POOL_ALLOC, offsetof(struct clat_maps, pool_alloc) },
	{ PIN_MAP_CLOCK, offsetof(struct clat_maps, pf_clock) },
	{ PIN_MAP_CLAIM_LOCKS, offsetof(struct clat_maps, claim_locks) },
	{ PIN_MAP_GUESTS, offsetof(struct clat_maps, guests) },
	{ PIN_MAP_GUEST_TYPES, offsetof(struct clat_maps, guest_types) },
	{ PIN_MAP_FN_POLICY, offsetof(struct clat_maps, fn_policy) },
	{ PIN_MAP_FN_RATE, offsetof(struct clat_maps, fn_rate) },
	{ PIN_MAP_FLOOD_PORTS, offsetof(struct clat_maps, flood_ports) },
	{ PIN_PROG_FLOOD, offsetof(struct clat_maps, prog_flood) },
};

#define MAP_FD(m, i) (*(int *)((char *)(m) + pinned_maps[i].off))

void maps_from_skel(const struct clat *skel, struct clat_maps *m)
{
	*m = (struct clat_maps){
		.mac_fn = bpf_map__fd(skel->maps.mac_fn),
		.vct = bpf_map__fd(skel->maps.vct),
		.vf_ports = bpf_map__fd(skel->maps.vf_ports),
		.port_fn = bpf_map__fd(skel->maps.port_fn),
		.stats = bpf_map__fd(skel->maps.stats),
		.fn_desc = bpf_map__fd(skel->maps.fn_desc),
		.pool_ctx = bpf_map__fd(skel->maps.pool_ctx),
		.pool_meta = bpf_map__fd(skel->maps.pool_meta),
		.pool_dirty = bpf_map__fd(skel->maps.pool_dirty),
		.pool_alloc = bpf_map__fd(skel->maps.pool_alloc),
		.pf_clock = bpf_map__fd(skel->maps.pf_clock),
		.claim_locks = bpf_map__fd(skel->maps.claim_locks),
		.guests = bpf_map__fd(skel->maps.guests),
		.guest_types = bpf_map__fd(skel->maps.guest_types),
		.fn_policy = bpf_map__fd(skel->maps.fn_policy),
		.fn_rate = bpf_map__fd(skel->maps.fn_rate),
		.flood_ports = bpf_map__fd(skel->maps.flood_ports),
		.prog_flood = bpf_program__fd(skel->progs.clat_flood),
		.lock_fd = -1,
	};
}

int maps_pin(const struct clat_maps *m, const char *dir)
{
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pinned_maps); i++) {
		if (pin_path(path, sizeof(path), dir, pinned_maps[i].name) ||
		    bpf_obj_pin(MAP_FD(m, i), path)) {
			int err = -errno;

			pr_err("failed to pin %s: %s", path, strerror(-err));
			return err;
		}
	}
	return 0;
}

int maps_open_pinned(const char *dir, struct clat_maps *m)
{
	char path[PATH_MAX];
	size_t i;
	int err;

	for (i = 0; i < ARRAY_SIZE(pinned_maps); i++)
		MAP_FD(m, i) = -1;
	/* A dir that is a link, or not root's, is nobody's pins to trust; the
	 * checked fd is also what the pool allocator locks. */
	{
		struct pin_dir pd;

		err = pin_dir_open(dir, false, &pd);
		if (err)
			return err;
		m->lock_fd = pd.fd;
		pd.fd = -1;
		pin_dir_close(&pd);
	}
	for (i = 0; i < ARRAY_SIZE(pinned_maps); i++) {
		err = pin_path(path, sizeof(path), dir, pinned_maps[i].name);
		if (!err) {
			MAP_FD(m, i) = bpf_obj_get(path);
			err = MAP_FD(m, i) < 0 ? -errno : 0;
		}
		if (err) {
			maps_close(m);
			return err;
		}
	}
	return 0;
}

void maps_close(struct clat_maps *m)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pinned_maps); i++) {
		if (MAP_FD(m, i) >= 0)
			close(MAP_FD(m, i));
		MAP_FD(m, i) = -1;
	}
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
}

/* Every MAC key that maps to fn; returns the count or -errno. */
int fn_macs(const struct clat_maps *m, uint32_t fn, struct clat_mac_key *keys, int max)
{
	struct clat_mac_key key, next, *prev = NULL;
	struct clat_mac_val val;
	int n = 0;

	while (bpf_map_get_next_key(m->mac_fn, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->mac_fn, &key, &val) == 0 && val.fn == fn && n < max)
			keys[n++] = key;
	}
	return n;
}

static int remove_macs(const struct clat_maps *m, uint32_t fn)
{
	struct clat_mac_key keys[64];
	int n, i;

	/* Collect first: deleting while walking a hash map restarts the walk. */
	n = fn_macs(m, fn, keys, ARRAY_SIZE(keys));
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(m->mac_fn, &keys[i]);
	return 0;
}

int flood_port_set(const struct clat_maps *m, uint32_t fn, uint32_t ifindex)
{
	struct bpf_devmap_val v = { .ifindex = ifindex, .bpf_prog.fd = m->prog_flood };

	if (!ifindex)
		return bpf_map_delete_elem(m->flood_ports, &fn) && errno != ENOENT ? -errno : 0;
	return bpf_map_update_elem(m->flood_ports, &fn, &v, BPF_ANY) ? -errno : 0;
}

/* Whether key maps to fn already. */
static bool mac_is(const struct clat_maps *m, const struct clat_mac_key *key, uint32_t fn)
{
	struct clat_mac_val v;

	return bpf_map_lookup_elem(m->mac_fn, key, &v) == 0 && v.fn == fn;
}

/* The MAC entry is written last: until then no frame can reach the fn, and a
 * failure part-way leaves it FREE.  A new fn gets the default policy
 * (spoofchk on); an installed one keeps its policy, and keeps its MACs when
 * mac is one of them (a re-attach must not drop a trusted VF's extra MACs).
 * Under a port VLAN the MAC is keyed with it, whatever vlan says. */
int fn_install(const struct clat_maps *m, uint32_t fn, const uint8_t mac[6], uint16_t vlan,
	       uint32_t ifindex)
{
	struct clat_vct_entry e = {};
	struct clat_port_val pv = { .fn = fn };
	struct clat_mac_val mv = { .fn = fn };
	struct clat_mac_key key = { .vlan = vlan };
	struct clat_fn_policy pol = CLAT_POLICY_DEFAULT;
	bool fresh, keep_macs;
	int err;

	if (fn >= CLAT_MAX_FN)
		return -ERANGE;
	memcpy(key.mac, mac, 6);
	bpf_map_lookup_elem(m->vct, &fn, &e);
	fresh = e.state == CLAT_FN_FREE;
	if (!fresh)
		bpf_map_lookup_elem(m->fn_policy, &fn, &pol);
	if (pol.vlan)
		key.vlan = pol.vlan;
	if (e.state == CLAT_FN_ACTIVE && e.ifindex && e.ifindex != ifindex)
		bpf_map_delete_elem(m->port_fn, &e.ifindex);
	keep_macs = !fresh && e.ifindex == ifindex && mac_is(m, &key, fn);
	if (!keep_macs)
		remove_macs(m, fn);

	e.state = CLAT_FN_ACTIVE;
	e.ifindex = ifindex;
	err = 0;
	if (bpf_map_update_elem(m->port_fn, &ifindex, &pv, BPF_ANY) ||
	    bpf_map_update_elem(m->fn_policy, &fn, &pol, BPF_ANY) ||
	    bpf_map_update_elem(m->vf_ports, &fn, &ifindex, BPF_ANY))
		err = -errno;
	if (!err)
		err = flood_port_set(m, fn, ifindex);
	if (!err)
		err = vct_activate(m, fn, ifindex);
	if (!err && bpf_map_update_elem(m->mac_fn, &key, &mv, BPF_ANY))
		err = -errno;
	if (err) {
		fn_remove(m, fn);
		bpf_map_delete_elem(m->port_fn, &ifindex);
		return err;
	}
	return 0;
}

/* MAC entries go first so no new frame is steered to a half-removed fn.
 * The policy goes back to all zero, so whoever installs fn next starts
 * from the default, and the policer from a full bucket. */
int fn_remove(const struct clat_maps *m, uint32_t fn)
{
	struct clat_vct_entry e = {};
	struct clat_fn_policy pol = {};
	int err;

	if (fn >= CLAT_MAX_FN)
		return -ERANGE;
	remove_macs(m, fn);
	bpf_map_lookup_elem(m->vct, &fn, &e);
	bpf_map_delete_elem(m->vf_ports, &fn);
	flood_port_set(m, fn, 0);
	if (e.ifindex)
		bpf_map_delete_elem(m->port_fn, &e.ifindex);
	err = vct_clear(m, fn);
	if (err)
		return err;
	if (bpf_map_update_elem(m->fn_policy, &fn, &pol, BPF_ANY))
		return -errno;
	policer_reset(m, fn);
	return 0;
}

/* A full bucket: the datapath refills a bucket idle for a second or more
 * to its burst, and last_ns 0 is that long ago. */
int policer_reset(const struct clat_maps *m, uint32_t fn)
{
	/* The map value's layout is the datapath's (bpf/maps.h): a spin
	 * lock, padding, tokens, last_ns; all zero is a fresh bucket. */
	uint64_t zero[3] = {};

	return bpf_map_update_elem(m->fn_rate, &fn, zero, BPF_ANY) ? -errno : 0;
}

/* The datapath keeps time as bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC,
 * a tick's resolution) plus this offset, so contexts carry CLOCK_TAI and
 * stay comparable across hosts.  Refreshed at attach and by every gc, so
 * a stepped clock heals. */
int clock_refresh(const struct clat_maps *m)
{
	struct clat_clock c;
	struct timespec tai, mono;
	__u32 zero = 0;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_TAI, &tai);
	c.tai_offset_ns = ((__u64)tai.tv_sec - (__u64)mono.tv_sec) * 1000000000ULL +
			  (__u64)tai.tv_nsec - (__u64)mono.tv_nsec;
	return bpf_map_update_elem(m->pf_clock, &zero, &c, BPF_ANY) ? -errno : 0;
}

int open_attached(const char *pf, const char *pin_dir_opt, char *dir, size_t len,
		  struct clat_maps *m)
{
	/* The pins are root's: say so rather than fail on EACCES below. */
	int err = require_root();

	if (!err)
		err = pin_dir_for(pf, pin_dir_opt, dir, len);
	if (err)
		return err;
	err = maps_open_pinned(dir, m);
	if (err == -ENOENT)
		pr_err("clat is not attached to %s (no pins in %s); run 'clat-load attach %s'", pf,
		       dir, pf);
	else if (err)
		pr_err("failed to open pinned maps in %s: %s", dir, strerror(-err));
	return err;
}
