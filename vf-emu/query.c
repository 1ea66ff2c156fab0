// SPDX-License-Identifier: GPL-2.0
/* vf-emu query: an emulated PF, its VFs and spare taps, read back from
 * their aliases and links (clat-load discovers VFs through vfemu_query). */
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

/* ---- query ------------------------------------------------------------ */

/* Fill the VM-side view of a VF: the VF end is the representor's veth peer,
 * whose ifindex (IFLA_LINK) is valid inside the VM netns. */
static void query_vf_end(struct vfemu_vf *v, int peer_ifindex)
{
	struct nl vm;
	struct nl_link l;
	int ret;

	if (!v->netns[0] || !netns_exists(v->netns) || nl_open(&vm, v->netns)) {
		v->netns[0] = '\0'; /* released / gone */
		return;
	}
	ret = peer_ifindex > 0 ? nl_link_get_index(&vm, peer_ifindex, &l) : -ENODEV;
	if (ret)
		ret = nl_link_get(&vm, "eth0", &l);
	if (!ret && l.has_mac)
		memcpy(v->mac, l.mac, 6);
	nl_close(&vm);
}

int ve_query_vf(struct nl *host, const char *pf, int i, struct vfemu_vf *v,
		    struct errctx *e)
{
	struct nl_link l;
	char buf[VFEMU_NETNS_MAX];
	int ret;

	memset(v, 0, sizeof(*v));
	v->vf = i;
	v->fn = i + 1;
	ve_rep_name(pf, i, v->rep);
	ret = nl_link_get(host, v->rep, &l);
	if (ret)
		return ve_fail(e, ret, "find representor %s of VF %d", v->rep, i);
	if (ve_alias_is(l.alias, "vf") && !ve_alias_get(l.alias, "kind", buf, sizeof(buf)) &&
	    !strcmp(buf, "tap")) {
		if (ve_alias_get(l.alias, "pf", buf, sizeof(buf)) || strcmp(buf, pf) ||
		    ve_alias_get(l.alias, "mac", buf, sizeof(buf)) || vfemu_parse_mac(buf, v->mac))
			return ve_fail_reason(e, -EBADMSG, "missing or corrupt clat-emu alias",
					   "parse state of %s", v->rep);
		if (ve_alias_get(l.alias, "pci", v->pci, sizeof(v->pci)))
			ve_vf_pci(pf, i, v->pci, sizeof(v->pci));
		v->tap = 1;
		v->rep_ifindex = l.ifindex;
		return 0;
	}
	if (!ve_alias_is(l.alias, "vf") || ve_alias_get(l.alias, "pf", buf, sizeof(buf)) ||
	    strcmp(buf, pf) || ve_alias_get(l.alias, "netns", v->netns, sizeof(v->netns)))
		return ve_fail_reason(e, -EBADMSG, "missing or corrupt clat-emu alias",
				   "parse state of %s", v->rep);
	if (ve_alias_get(l.alias, "pci", v->pci, sizeof(v->pci)))
		ve_vf_pci(pf, i, v->pci, sizeof(v->pci));
	v->rep_ifindex = l.ifindex;
	query_vf_end(v, l.link);
	return 0;
}

static int query_host_port(struct nl *host, struct vfemu_pf *out, struct errctx *e)
{
	struct nl_link l;
	int ret;

	ve_hostrep_name(out->pf, out->host_rep);
	ve_hostdev_name(out->pf, out->host_dev);
	ret = nl_link_get(host, out->host_rep, &l);
	if (ret)
		return ve_fail(e, ret, "find host-port representor %s", out->host_rep);
	out->host_rep_ifindex = l.ifindex;
	ret = nl_link_get(host, out->host_dev, &l);
	if (ret)
		return ve_fail(e, ret, "find host port %s", out->host_dev);
	memcpy(out->host_mac, l.mac, 6);
	return 0;
}

/* Spare taps of a PF: links whose alias is "clat-emu tap pf=<pf> ...". */
struct spare_walk {
	const char *pf;
	struct vfemu_pf *out;
};

static int collect_spare(const struct nl_link *l, void *data)
{
	struct spare_walk *w = data;
	struct vfemu_tap t;

	if (ve_spare_of(l, w->pf, &t) && w->out->ntaps < VFEMU_MAX_TAPS)
		w->out->taps[w->out->ntaps++] = t;
	return 0;
}

static int do_query(struct nl *host, const char *pf, struct vfemu_pf *out, struct errctx *e)
{
	struct nl_link l;
	struct pf_state st;
	int ret;

	ret = ve_load_pf_err(host, "query", pf, &l, &st, e);
	if (ret)
		return ret;
	snprintf(out->pf, sizeof(out->pf), "%s", pf);
	out->pf_ifindex = l.ifindex;
	snprintf(out->wire_netns, sizeof(out->wire_netns), "%s", st.wire_netns);
	snprintf(out->wire_port, sizeof(out->wire_port), "%s", st.wire_port);
	out->numvfs = st.numvfs;
	out->vm_tap = st.vm_tap;
	ret = query_host_port(host, out, e);
	for (int i = 0; !ret && i < st.numvfs; i++)
		ret = ve_query_vf(host, pf, i, &out->vfs[i], e);
	if (!ret) {
		struct spare_walk w = { .pf = pf, .out = out };

		ret = nl_link_dump(host, collect_spare, &w);
		if (ret)
			ve_fail(e, ret, "list the spare taps of %s", pf);
	}
	return ret;
}

int vfemu_query(const char *pf, struct vfemu_pf *out)
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!ve_valid_ifname(pf, VFEMU_MAX_PF_NAME)) {
		ret = ve_fail_reason(&e, -ENODEV, "not a valid vf-emu PF name", "query '%s'", pf);
		return ve_report(&e, ret);
	}
	ret = nl_open(&host, NULL);
	if (ret)
		return ve_report(&e, ve_fail(&e, ret, "open rtnetlink socket"));
	ret = do_query(&host, pf, out, &e);
	nl_close(&host);
	return ve_report(&e, ret);
}
