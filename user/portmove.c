// SPDX-License-Identifier: GPL-2.0
/* Moving a fn's port to another interface of this host: the hand-over of a
 * VM to a new VMM on its own tap (a tap has a single reader).  The new port
 * is complete (clat_tx attached, port_fn) before the fn points at it, and the
 * old one is dropped last, so frames see either port, never none. */
#include "portmove.h"
#include "common.h"

#include <limits.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <linux/if_link.h>

static int tx_link(const char *dir, unsigned int ifindex, uint32_t flags)
{
	char name[32], path[PATH_MAX];
	int fd, err;

	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, ifindex);
	if (pin_path(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd >= 0) { /* a rerun after a kill: attached already */
		close(fd);
		return 0;
	}
	if (pin_path(path, sizeof(path), dir, PIN_PROG_TX))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0) {
		err = -errno;
		pr_err("failed to open %s: %s", path, strerror(-err));
		return err;
	}
	err = xdp_link_pin(fd, ifindex, flags, dir, name);
	close(fd);
	return err;
}

int port_move(const struct clat_maps *m, const char *dir, uint32_t fn, unsigned int ifindex)
{
	struct clat_port_val pv = { .fn = fn }, owner;
	struct clat_vct_entry e = {};
	char name[32], path[PATH_MAX];
	uint32_t flags = XDP_FLAGS_DRV_MODE, old;
	int err;

	if (bpf_map_lookup_elem(m->vct, &fn, &e) || e.state == CLAT_FN_FREE) {
		pr_err("failed to move fn %u's port: fn %u is not in use", fn, fn);
		return -ENOENT;
	}
	if (bpf_map_lookup_elem(m->port_fn, &ifindex, &owner) == 0 && owner.fn != fn) {
		pr_err("failed to move fn %u's port: ifindex %u belongs to fn %u", fn, ifindex,
		       owner.fn);
		return -EBUSY;
	}
	old = e.ifindex;
	if (old == ifindex)
		return 0;
	/* The new port gets clat_tx in the mode the old one has. */
	if (old)
		attached_xdp_flags(old, &flags);
	err = tx_link(dir, ifindex, flags);
	if (!err && bpf_map_update_elem(m->port_fn, &ifindex, &pv, BPF_ANY))
		err = -errno;
	if (err) {
		pr_err("failed to set up ifindex %u as fn %u's port: %s", ifindex, fn, strerror(-err));
		return err;
	}
	/* A paused fn has no vf_ports/flood_ports entry; resuming it adds one
	 * for VCT.ifindex. */
	e.ifindex = ifindex;
	if (e.state == CLAT_FN_ACTIVE &&
	    (bpf_map_update_elem(m->vf_ports, &fn, &ifindex, BPF_ANY) ||
	     flood_port_set(m, fn, ifindex)))
		err = -errno;
	if (!err && bpf_map_update_elem(m->vct, &fn, &e, BPF_ANY))
		err = -errno;
	if (err) {
		pr_err("failed to point fn %u at ifindex %u: %s", fn, ifindex, strerror(-err));
		return err;
	}
	if (old) {
		bpf_map_delete_elem(m->port_fn, &old);
		snprintf(name, sizeof(name), PIN_LINK_TX_FMT, old);
		if (!pin_path(path, sizeof(path), dir, name))
			unlink(path); /* the old port's clat_tx goes with its pin */
	}
	return 0;
}

int fn_set_state(const struct clat_maps *m, uint32_t fn, uint32_t state)
{
	struct clat_vct_entry e;

	if (bpf_map_lookup_elem(m->vct, &fn, &e))
		return -errno;
	e.state = state;
	if (bpf_map_update_elem(m->vct, &fn, &e, BPF_ANY))
		return -errno;
	/* Floods reach exactly the ports in flood_ports: a paused fn gets none. */
	if (state == CLAT_FN_QUIESCED) {
		bpf_map_delete_elem(m->vf_ports, &fn);
		return flood_port_set(m, fn, 0);
	}
	if (bpf_map_update_elem(m->vf_ports, &fn, &e.ifindex, BPF_ANY))
		return -errno;
	return flood_port_set(m, fn, e.ifindex);
}
