// SPDX-License-Identifier: GPL-2.0
/* Spare persistent taps of a VF (vfemu_tap_add / vfemu_tap_del). */
#define _GNU_SOURCE
#include "pfstate.h"
#include "netns.h"
#include "tap.h"

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

int ve_spare_of(const struct nl_link *l, const char *pf, struct vfemu_tap *t)
{
	char buf[24]; /* a PF name or a MAC */

	if (!ve_alias_is(l->alias, "tap") || ve_alias_get(l->alias, "pf", buf, sizeof(buf)) ||
	    strcmp(buf, pf))
		return 0;
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", l->name);
	t->ifindex = l->ifindex;
	if (ve_alias_get_int(l->alias, "vf", 0, VFEMU_MAX_VFS - 1, &t->vf))
		t->vf = -1;
	if (ve_alias_get(l->alias, "mac", buf, sizeof(buf)) || vfemu_parse_mac(buf, t->mac))
		memset(t->mac, 0, 6);
	return 1;
}

/* ---- spare taps ------------------------------------------------------- */

static int do_tap_add(struct nl *host, const char *pf, int vf, const char *name,
		      struct errctx *e)
{
	char alias[NL_ALIAS_MAX], macs[18];
	struct nl_link l;
	struct pf_state st;
	struct vfemu_vf v;
	int ret;

	ret = ve_load_pf_err(host, "add a tap to", pf, &l, &st, e);
	if (ret)
		return ret;
	if (vf < 0 || vf >= st.numvfs)
		return ve_fail_reason(e, -EINVAL, "no such VF", "add a tap for VF %d of %s", vf, pf);
	if (!ve_valid_ifname(name, IF_NAMESIZE - 1))
		return ve_fail_reason(e, -EINVAL, "must be 1..15 characters of [A-Za-z0-9_.-]",
				   "use tap name '%s'", name);
	ret = ve_query_vf(host, pf, vf, &v, e);
	if (ret)
		return ret;
	ret = nl_link_get(host, name, &l);
	if (ret == 0)
		return ve_fail_reason(e, -EEXIST, "interface already exists", "add tap %s", name);
	if (ret != -ENODEV)
		return ve_fail(e, ret, "look up interface %s", name);
	ret = tap_create(name);
	if (ret)
		return ve_fail(e, ret, "create tap %s", name);
	vfemu_format_mac(v.mac, macs);
	snprintf(alias, sizeof(alias), ALIAS_TAG " tap pf=%s vf=%d mac=%s", pf, vf, macs);
	ret = nl_link_get(host, name, &l);
	if (!ret)
		ret = nl_link_set_alias(host, l.ifindex, alias);
	if (!ret)
		ret = nl_link_set_up(host, l.ifindex);
	if (ret) {
		nl_link_del_name(host, name);
		return ve_fail(e, ret, "set up tap %s", name);
	}
	return 0;
}

int vfemu_tap_add(const char *pf, int vf, const char *name)
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	ret = ve_host_open(pf, &host, &e);
	if (ret)
		return ve_report(&e, ret);
	ret = do_tap_add(&host, pf, vf, name, &e);
	nl_close(&host);
	return ve_report(&e, ret);
}

int vfemu_tap_del(const char *pf, const char *name)
{
	struct errctx e = { 0 };
	struct vfemu_tap t;
	struct nl_link l;
	struct nl host;
	int ret;

	if (!ve_valid_ifname(pf, VFEMU_MAX_PF_NAME) || !ve_valid_ifname(name, IF_NAMESIZE - 1))
		return ve_report(&e, ve_fail_reason(&e, -EINVAL, "not a valid interface name",
					      "delete tap '%s' of '%s'", name, pf));
	ret = nl_open(&host, NULL);
	if (ret)
		return ve_report(&e, ve_fail(&e, ret, "open rtnetlink socket"));
	ret = nl_link_get(&host, name, &l);
	if (ret == -ENODEV)
		ret = 0; /* already gone */
	else if (ret)
		ve_fail(&e, ret, "look up %s", name);
	else if (!ve_spare_of(&l, pf, &t))
		ret = ve_fail_reason(&e, -EPERM, "it is not a spare tap of that PF (no clat-emu tap alias)",
				  "delete %s", name);
	else if ((ret = nl_link_del(&host, l.ifindex)) && ret != -ENODEV)
		ve_fail(&e, ret, "delete tap %s", name);
	else
		ret = 0;
	nl_close(&host);
	return ve_report(&e, ret);
}
