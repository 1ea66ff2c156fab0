// SPDX-License-Identifier: GPL-2.0
/* port_move: a function's port moves to another interface of this host (a
 * VM's new tap after a one-host hand-over, where a tap has a single reader).
 * The fn keeps its MACs, policy, state and contexts; only where its frames
 * leave and where clat_tx sees them change. */
#include "common.h"
#include "vct.h"
#include "port.h"
#include "maps.h"

#include <limits.h>
#include <unistd.h>
#include <bpf/bpf.h>

static int tx_link_path(char *path, size_t len, const char *dir, unsigned int ifindex)
{
	char name[32];

	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, ifindex);
	return pin_path(path, len, dir, name);
}

/* clat_tx on ifindex, in the PF's attach mode, pinned like attach pins it.
 * *made says whether this call made the link (and so must undo it). */
static int tx_link_add(const struct clat_maps *m, const char *dir, unsigned int ifindex,
		       bool *made)
{
	uint32_t uplink = CLAT_UPLINK_SLOT, pf_ifindex = 0, flags;
	char path[PATH_MAX], name[32];
	int prog_fd, err;

	*made = false;
	err = tx_link_path(path, sizeof(path), dir, ifindex);
	if (err)
		return err;
	if (access(path, F_OK) == 0)
		return 0; /* a rerun after a partial move: the link is there */
	if (bpf_map_lookup_elem(m->vf_ports, &uplink, &pf_ifindex))
		return -errno;
	err = attached_xdp_flags(pf_ifindex, &flags);
	if (err) {
		pr_err("failed to read the XDP mode of the PF (ifindex %u): %s", pf_ifindex,
		       strerror(-err));
		return err;
	}
	err = pin_path(path, sizeof(path), dir, PIN_PROG_TX);
	if (err)
		return err;
	prog_fd = bpf_obj_get(path);
	if (prog_fd < 0) {
		err = -errno;
		pr_err("failed to open %s: %s", path, strerror(-err));
		return err;
	}
	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, ifindex);
	err = xdp_link_pin(prog_fd, ifindex, flags, dir, name);
	close(prog_fd);
	if (err)
		pr_err("failed to attach clat_tx to ifindex %u: %s", ifindex, strerror(-err));
	else
		*made = true;
	return err;
}

static void tx_link_del(const char *dir, unsigned int ifindex)
{
	char path[PATH_MAX];

	if (!tx_link_path(path, sizeof(path), dir, ifindex) && unlink(path) < 0 && errno != ENOENT)
		pr_err("failed to detach clat_tx from ifindex %u: %s", ifindex, strerror(errno));
}

int port_move(const struct clat_maps *m, const char *dir, uint32_t fn, unsigned int ifindex)
{
	uint32_t uplink = CLAT_UPLINK_SLOT, pf_ifindex = 0;
	struct clat_port_val owner, pv = { .fn = fn };
	struct clat_vct_entry e = {};
	unsigned int old;
	bool made;
	int err;

	if (fn >= CLAT_MAX_FN || !ifindex)
		return -EINVAL;
	if (bpf_map_lookup_elem(m->vct, &fn, &e) || e.state == CLAT_FN_FREE) {
		pr_err("failed to move fn %u's port: fn %u is not in use", fn, fn);
		return -ENOENT;
	}
	old = e.ifindex;
	if (old == ifindex)
		return 0;
	if (bpf_map_lookup_elem(m->vf_ports, &uplink, &pf_ifindex) == 0 && pf_ifindex == ifindex) {
		pr_err("failed to move fn %u's port: ifindex %u is the PF uplink", fn, ifindex);
		return -EINVAL;
	}
	if (bpf_map_lookup_elem(m->port_fn, &ifindex, &owner) == 0 && owner.fn != fn) {
		pr_err("failed to move fn %u's port: ifindex %u belongs to fn %u", fn, ifindex,
		       owner.fn);
		return -EBUSY;
	}

	/* clat_tx first: the new port's frames are classified from the moment
	 * the fn's frames go there. */
	err = tx_link_add(m, dir, ifindex, &made);
	if (err)
		return err;
	if (bpf_map_update_elem(m->port_fn, &ifindex, &pv, BPF_ANY) ||
	    bpf_map_update_elem(m->vf_ports, &fn, &ifindex, BPF_ANY))
		err = -errno;
	if (!err)
		err = flood_port_set(m, fn, ifindex);
	if (!err)
		err = vct_set_ifindex(m, fn, ifindex);
	if (err) {
		/* Back to the old port, everywhere: nothing changed. */
		pr_err("failed to move fn %u's port to ifindex %u: %s", fn, ifindex, strerror(-err));
		bpf_map_update_elem(m->vf_ports, &fn, &old, BPF_ANY);
		flood_port_set(m, fn, old);
		vct_set_ifindex(m, fn, old);
		bpf_map_delete_elem(m->port_fn, &ifindex);
		if (made)
			tx_link_del(dir, ifindex);
		return err;
	}
	/* Committed: the old port belongs to no fn now. */
	if (old) {
		bpf_map_delete_elem(m->port_fn, &old);
		tx_link_del(dir, old);
	}
	return 0;
}
