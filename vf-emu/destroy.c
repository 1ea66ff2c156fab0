// SPDX-License-Identifier: GPL-2.0
/* vf-emu destroy: removes an emulated PF, its VFs, namespaces and spares. */
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

/* ---- destroy ---------------------------------------------------------- */

static int del_link_if(struct nl *nl, const char *name, const char *type,
		       const char *pf, struct errctx *e)
{
	struct nl_link l;
	char owner[IF_NAMESIZE];
	int ret = nl_link_get(nl, name, &l);

	if (ret == -ENODEV)
		return 0;
	if (ret)
		return ve_fail(e, ret, "look up %s", name);
	/* Only delete what carries our own alias: never someone else's link. */
	if (!ve_alias_is(l.alias, type) || ve_alias_get(l.alias, "pf", owner, sizeof(owner)) ||
	    strcmp(owner, pf))
		return 0;
	ret = nl_link_del(nl, l.ifindex);
	if (ret && ret != -ENODEV)
		return ve_fail(e, ret, "delete %s", name);
	return 0;
}

static int del_ns(const char *ns, struct errctx *e)
{
	int ret = netns_del(ns);

	if (ret && ret != -ENOENT)
		return ve_fail(e, ret, "delete netns %s", ns);
	return 0;
}

static int count_non_lo(const struct nl_link *l, void *data)
{
	if (strcmp(l->name, "lo"))
		++*(int *)data;
	return 0;
}

/* The wire ns goes only if we created it and nothing but lo is left. */
static int del_wire_ns(const struct pf_state *st, struct errctx *e)
{
	struct nl wire;
	int others = 0, ret;

	if (!st->own_wire || !netns_exists(st->wire_netns))
		return 0;
	ret = nl_open(&wire, st->wire_netns);
	if (ret)
		return ve_fail(e, ret, "enter netns %s", st->wire_netns);
	ret = nl_link_dump(&wire, count_non_lo, &others);
	nl_close(&wire);
	if (ret)
		return ve_fail(e, ret, "list links in netns %s", st->wire_netns);
	if (others) {
		fprintf(stderr, "vf-emu: keeping netns %s: %d interface(s) besides lo remain\n",
			st->wire_netns, others);
		return 0;
	}
	return del_ns(st->wire_netns, e);
}

struct spare_list {
	const char *pf;
	int n;
	char names[VFEMU_MAX_VFS * 4][IF_NAMESIZE];
};

static int list_spare(const struct nl_link *l, void *data)
{
	struct spare_list *sl = data;
	struct vfemu_tap t;

	if (ve_spare_of(l, sl->pf, &t) && sl->n < (int)(sizeof(sl->names) / sizeof(sl->names[0])))
		snprintf(sl->names[sl->n++], IF_NAMESIZE, "%s", t.name);
	return 0;
}

/* Every spare tap of pf (collected first: deleting during a dump would
 * disturb it). */
static int del_spares(struct nl *host, const char *pf, struct errctx *e)
{
	struct spare_list *sl = calloc(1, sizeof(*sl));
	int ret;

	if (!sl)
		return ve_fail(e, -ENOMEM, "list the spare taps of %s", pf);
	sl->pf = pf;
	ret = nl_link_dump(host, list_spare, sl);
	if (ret)
		ve_fail(e, ret, "list the spare taps of %s", pf);
	for (int i = 0; !ret && i < sl->n; i++)
		ret = del_link_if(host, sl->names[i], "tap", pf, e);
	free(sl);
	return ret;
}

static int do_destroy(struct nl *host, const char *pf, struct errctx *e)
{
	char name[VFEMU_NETNS_MAX];
	struct nl_link l;
	struct pf_state st;
	int ret, first = 0;

	ret = ve_load_pf(host, pf, &l, &st);
	if (ret == -ENODEV)
		return 0; /* idempotent */
	if (ret)
		return ve_load_pf_err(host, "destroy", pf, &l, &st, e);

	/* VFs first, PF last: the PF alias holds the state, so an interrupted
	 * destroy can be completed by running it again. */
	for (int i = 0; i < st.numvfs; i++) {
		/* Best effort over all VFs; report the first failure. */
		struct errctx tmp;

		ve_rep_name(pf, i, name);
		ret = del_link_if(host, name, "vf", pf, first ? &tmp : e);
		if (ret && !first)
			first = ret;
		if (st.vm_tap)
			continue; /* a tap PF made no VM namespaces: never delete one */
		ve_vm_ns_name(st.vm_prefix, i, name);
		ret = del_ns(name, first ? &tmp : e);
		if (ret && !first)
			first = ret;
	}
	if (!first)
		first = del_spares(host, pf, e);
	if (first)
		return first;
	ve_hostrep_name(pf, name);
	ret = del_link_if(host, name, "hostport", pf, e);
	if (ret)
		return ret;
	ret = nl_link_del(host, l.ifindex); /* also removes the wire port */
	if (ret && ret != -ENODEV)
		return ve_fail(e, ret, "delete %s", pf);
	return del_wire_ns(&st, e);
}

int vfemu_destroy(const char *pf)
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	if (!ve_valid_ifname(pf, VFEMU_MAX_PF_NAME))
		return 0; /* cannot exist as a vf-emu PF */
	ret = nl_open(&host, NULL);
	if (ret)
		return ve_report(&e, ve_fail(&e, ret, "open rtnetlink socket"));
	ret = do_destroy(&host, pf, &e);
	nl_close(&host);
	return ve_report(&e, ret);
}
