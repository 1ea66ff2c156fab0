// SPDX-License-Identifier: GPL-2.0
/* A VF's end, the emulated VM's NIC: its MAC (vfemu_set_mac), and its move
 * into a namespace and back (vfemu_assign / vfemu_release). */
#define _GNU_SOURCE
#include "pfstate.h"
#include "netns.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- set_mac ---------------------------------------------------------- */

static int do_set_mac(struct nl *host, const char *pf, int vf, const uint8_t mac[6],
		      struct errctx *e)
{
	struct nl_link l;
	struct pf_state st;
	struct vfemu_vf v;
	struct nl vm;
	int ret;

	ret = ve_load_pf_err(host, "set MAC on", pf, &l, &st, e);
	if (ret)
		return ret;
	if (vf < 0 || vf >= st.numvfs) {
		snprintf(e->reason, sizeof(e->reason), "%s has VFs 0..%d", pf, st.numvfs - 1);
		snprintf(e->what, sizeof(e->what), "set MAC of VF %d", vf);
		return -EINVAL;
	}
	ret = ve_query_vf(host, pf, vf, &v, e);
	if (ret)
		return ret;
	if (v.tap) {
		/* The VMM gives the VM's NIC this MAC; the record is all we keep. */
		char alias[NL_ALIAS_MAX], macs[18];

		vfemu_format_mac(mac, macs);
		snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d kind=tap mac=%s pci=%s",
			 pf, vf, macs, v.pci);
		ret = nl_link_set_alias(host, v.rep_ifindex, alias);
		return ret ? ve_fail(e, ret, "record the MAC of VF %d", vf) : 0;
	}
	if (!v.netns[0])
		return ve_fail_reason(e, -ENODEV, "its VM netns is gone", "set MAC of VF %d", vf);
	ret = nl_open(&vm, v.netns);
	if (ret)
		return ve_fail(e, ret, "enter netns %s", v.netns);
	ret = nl_link_get(&vm, "eth0", &l);
	if (!ret)
		ret = nl_link_set_mac(&vm, l.ifindex, mac);
	nl_close(&vm);
	if (ret)
		return ve_fail(e, ret, "set MAC of VF %d (eth0 in netns %s)", vf, v.netns);
	return 0;
}


int vfemu_set_mac(const char *pf, int vf, const uint8_t mac[6])
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	if (!mac[0] && !mac[1] && !mac[2] && !mac[3] && !mac[4] && !mac[5])
		return ve_report(&e, ve_fail_reason(&e, -EINVAL, "all-zero address", "set MAC"));
	if (mac[0] & 1)
		return ve_report(&e, ve_fail_reason(&e, -EINVAL, "multicast address", "set MAC"));
	ret = ve_host_open(pf, &host, &e);
	if (ret)
		return ve_report(&e, ret);
	ret = do_set_mac(&host, pf, vf, mac, &e);
	nl_close(&host);
	return ve_report(&e, ret);
}

/* ---- assign / release --------------------------------------------------- */

/* Moves VF vf's end from its current netns into target as eth0, re-arms its
 * XDP_PASS program (a netns move detaches it) and records the new home in
 * the representor's alias. */
static int do_move(struct nl *host, const char *pf, int vf, const char *target,
		   struct errctx *e)
{
	char alias[NL_ALIAS_MAX];
	struct nl from, to;
	struct nl_link rep, l;
	struct pf_state st;
	struct vfemu_vf v;
	int ret, nsfd, prog_fd;

	ret = ve_load_pf_err(host, "move a VF of", pf, &l, &st, e);
	if (ret)
		return ret;
	if (vf < 0 || vf >= st.numvfs)
		return ve_fail_reason(e, -EINVAL, "no such VF", "move VF %d of %s", vf, pf);
	ret = ve_query_vf(host, pf, vf, &v, e);
	if (ret)
		return ret;
	if (v.tap)
		return ve_fail_reason(e, -EOPNOTSUPP, "it is a tap that a VMM opens, not a netns end",
				   "move VF %d of %s", vf, pf);
	if (!v.netns[0])
		return ve_fail_reason(e, -ENODEV, "its namespace is gone", "move VF %d", vf);
	if (!strcmp(v.netns, target))
		return 0; /* already there */
	if (!netns_valid_name(target) || !netns_exists(target))
		return ve_fail_reason(e, -ENOENT, "no such network namespace", "move VF %d to %s",
				   vf, target);
	ret = nl_open(&to, target);
	if (ret)
		return ve_fail(e, ret, "enter netns %s", target);
	if (nl_link_get(&to, "eth0", &l) == 0) {
		nl_close(&to);
		return ve_fail_reason(e, -EEXIST, "it already has an eth0", "move VF %d to %s", vf,
				   target);
	}
	ret = nl_open(&from, v.netns);
	if (ret) {
		nl_close(&to);
		return ve_fail(e, ret, "enter netns %s", v.netns);
	}
	nsfd = netns_open(target);
	ret = nsfd < 0 ? nsfd : nl_link_get(&from, "eth0", &l);
	if (!ret)
		ret = nl_link_set_netns(&from, l.ifindex, nsfd, "eth0");
	if (nsfd >= 0)
		close(nsfd);
	nl_close(&from);
	if (ret) {
		nl_close(&to);
		return ve_fail(e, ret, "move VF %d's end from %s to %s", vf, v.netns, target);
	}
	prog_fd = ve_load_xdp_pass();
	ret = prog_fd < 0 ? prog_fd : nl_link_get(&to, "eth0", &l);
	if (!ret)
		ret = nl_link_set_xdp(&to, l.ifindex, prog_fd, XDP_FLAGS_DRV_MODE);
	if (!ret)
		ret = nl_link_set_up(&to, l.ifindex);
	if (prog_fd >= 0)
		close(prog_fd);
	nl_close(&to);
	if (ret)
		return ve_fail(e, ret, "bring up VF %d's end in %s", vf, target);
	snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d netns=%s pci=%s", pf, vf,
		 target, v.pci);
	ret = nl_link_get(host, v.rep, &rep);
	if (!ret)
		ret = nl_link_set_alias(host, rep.ifindex, alias);
	return ret ? ve_fail(e, ret, "record VF %d's namespace", vf) : 0;
}

static int move_vf(const char *pf, int vf, const char *target)
{
	struct errctx e = { 0 };
	char home[VFEMU_NETNS_MAX];
	struct nl_link l;
	struct pf_state st;
	struct nl host;
	int ret;

	ret = nl_open(&host, NULL);
	if (ret)
		return ve_report(&e, ve_fail(&e, ret, "open rtnetlink socket"));
	if (!target) {
		ret = ve_load_pf_err(&host, "release a VF of", pf, &l, &st, &e);
		if (!ret && st.vm_tap)
			ret = ve_fail_reason(&e, -EOPNOTSUPP, "its VFs are taps that a VMM opens",
					  "release a VF of %s", pf);
		ve_vm_ns_name(st.vm_prefix, vf, home);
		target = home;
	}
	if (!ret)
		ret = do_move(&host, pf, vf, target, &e);
	nl_close(&host);
	return ve_report(&e, ret);
}

int vfemu_assign(const char *pf, int vf, const char *netns)
{
	return move_vf(pf, vf, netns);
}

int vfemu_release(const char *pf, int vf)
{
	return move_vf(pf, vf, NULL);
}
