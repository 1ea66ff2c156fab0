// SPDX-License-Identifier: GPL-2.0
/* vf add / vf del: manage functions by hand, for a real SR-IOV NIC where
 * nothing comes from vf-emu. */
#include "cli.h"
#include "common.h"

#include <dirent.h>
#include <limits.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>

int open_attached(const char *pf, const char *pin_dir_opt, char *dir, size_t len,
		  struct clat_maps *m)
{
	int err = pin_dir_for(pf, pin_dir_opt, dir, len);

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

static int parse_fn(const struct invocation *inv, uint32_t *fn)
{
	if (!has_opt(inv, OPT_FN)) {
		pr_err("%s: missing --fn", inv->cmd->name);
		return -EUSAGE;
	}
	return parse_u32(inv->opt[OPT_FN], "--fn", CLAT_MAX_FN - 1, fn);
}

static int parse_port(const struct invocation *inv, unsigned int *ifindex)
{
	uint32_t v;
	int err;

	if (has_opt(inv, OPT_IFINDEX) == has_opt(inv, OPT_DEV)) {
		pr_err("vf add: give exactly one of --ifindex and --dev");
		return -EUSAGE;
	}
	if (has_opt(inv, OPT_DEV))
		return resolve_ifindex(inv->opt[OPT_DEV], ifindex);
	err = parse_u32(inv->opt[OPT_IFINDEX], "--ifindex", INT32_MAX, &v);
	if (err)
		return err;
	if (!if_indextoname(v, (char[IF_NAMESIZE]){ 0 })) {
		pr_err("failed to find interface with ifindex %u: %s", v, strerror(errno));
		return -ENODEV;
	}
	*ifindex = v;
	return 0;
}

/* clat_tx links whose representor belongs to no fn: what a vf add killed
 * between its link and its map updates leaves.  vf del removes them. */
static void reap_tx_links(const struct clat_maps *m, const char *dir)
{
	char path[PATH_MAX];
	struct clat_port_val pv;
	struct dirent *de;
	unsigned int ifindex;
	char tail;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, PIN_LINK_TX_FMT "%c", &ifindex, &tail) != 1 ||
		    bpf_map_lookup_elem(m->port_fn, &ifindex, &pv) == 0)
			continue;
		if (!pin_path(path, sizeof(path), dir, de->d_name) && unlink(path) == 0)
			pr_info("removed the clat_tx link of ifindex %u, which belongs to no fn",
				ifindex);
	}
	closedir(d);
}

int cmd_vf_add(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	char dir[PATH_MAX], path[PATH_MAX];
	unsigned int ifindex, pf_ifindex;
	struct clat_port_val owner;
	struct clat_maps m;
	uint32_t fn, vlan = 0, flags;
	uint8_t mac[6];
	int err, prog_fd;

	err = parse_fn(inv, &fn);
	if (!err && !has_opt(inv, OPT_MAC)) {
		pr_err("vf add: missing --mac");
		err = -EUSAGE;
	}
	if (!err)
		err = parse_mac(inv->opt[OPT_MAC], mac);
	if (!err && has_opt(inv, OPT_VLAN))
		err = parse_u32(inv->opt[OPT_VLAN], "--vlan", 4094, &vlan);
	if (!err)
		err = require_root();
	if (!err)
		err = parse_port(inv, &ifindex);
	if (!err)
		err = resolve_ifindex(pf, &pf_ifindex);
	if (err)
		return err;
	if (ifindex == pf_ifindex) {
		pr_err("vf add: the PF uplink cannot be a function's port");
		return -EUSAGE;
	}
	err = open_attached(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	if (bpf_map_lookup_elem(m.port_fn, &ifindex, &owner) == 0 && owner.fn != fn) {
		pr_err("failed to add fn %u: ifindex %u already belongs to fn %u", fn, ifindex,
		       owner.fn);
		err = -EBUSY;
		goto out;
	}
	err = attached_xdp_flags(pf_ifindex, &flags);
	prog_fd = err ? -1 : (pin_path(path, sizeof(path), dir, PIN_PROG_TX) ? -1 : bpf_obj_get(path));
	if (!err && prog_fd < 0) {
		err = -errno;
		pr_err("failed to open %s: %s", path, strerror(-err));
	}
	if (!err) {
		err = port_install(&m, prog_fd, flags, dir, fn, mac, (uint16_t)vlan, ifindex);
		close(prog_fd);
	}
	if (!err)
		pr_info("fn %u: %s vlan %u -> ifindex %u", fn, inv->opt[OPT_MAC], vlan, ifindex);
out:
	maps_close(&m);
	return err;
}

int cmd_vf_del(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	char dir[PATH_MAX], name[32], path[PATH_MAX];
	struct clat_vct_entry e = {};
	struct clat_maps m;
	uint32_t fn;
	int err;

	err = parse_fn(inv, &fn);
	if (!err)
		err = require_root();
	if (!err)
		err = open_attached(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	bpf_map_lookup_elem(m.vct, &fn, &e);
	if (e.state == CLAT_FN_FREE) {
		reap_tx_links(&m, dir);
		pr_info("fn %u is not in use on %s; nothing to do", fn, pf);
		goto out;
	}
	/* The link goes first: a del killed in between is still ACTIVE, so
	 * its rerun finds the ifindex again (the VCT entry holds it). */
	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, e.ifindex);
	if (!pin_path(path, sizeof(path), dir, name) && unlink(path) < 0 && errno != ENOENT) {
		err = -errno;
		pr_err("failed to detach clat_tx from ifindex %u: %s", e.ifindex, strerror(-err));
		goto out;
	}
	err = fn_remove(&m, fn);
	if (err) {
		pr_err("failed to remove fn %u: %s", fn, strerror(-err));
		goto out;
	}
	reap_tx_links(&m, dir);
	pr_info("fn %u removed from %s", fn, pf);
out:
	maps_close(&m);
	return err;
}
