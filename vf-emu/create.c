// SPDX-License-Identifier: GPL-2.0
/* vf-emu create: builds an emulated SR-IOV NIC (see vfemu.h for the
 * topology), rolled back whole on failure; the PF alias is written last. */
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

/* ---- create ----------------------------------------------------------- */

struct create {
	const char *pf;
	int numvfs;
	char wire_netns[VFEMU_NETNS_MAX];
	char wire_port[IF_NAMESIZE];
	char vm_prefix[VFEMU_NETNS_MAX];
	int own_wire;
	int vm_tap;
	int prog_fd;
	struct nl host;
	struct errctx err;
	/* Undo log: host-ns veth ends (deleting one removes its peer) and
	 * namespaces we created, undone in reverse order. */
	int nlinks;
	char links[2 + VFEMU_MAX_VFS][IF_NAMESIZE];
	int nns;
	char ns[1 + VFEMU_MAX_VFS][VFEMU_NETNS_MAX];
};

static void rollback(struct create *c)
{
	while (c->nlinks > 0)
		nl_link_del_name(&c->host, c->links[--c->nlinks]);
	while (c->nns > 0)
		netns_del(c->ns[--c->nns]);
}

static int check_absent(struct create *c, const char *name)
{
	struct nl_link l;
	int ret = nl_link_get(&c->host, name, &l);

	if (ret == 0)
		return ve_fail_reason(&c->err, -EEXIST, "interface already exists",
				   "create %s: %s", c->pf, name);
	if (ret != -ENODEV)
		return ve_fail(&c->err, ret, "look up interface %s", name);
	return 0;
}

static int check_names(struct create *c, const struct vfemu_create_opts *o)
{
	const char *pf = c->pf;
	int n;

	if (!ve_valid_ifname(pf, VFEMU_MAX_PF_NAME))
		return ve_fail_reason(&c->err, -EINVAL,
				   "PF name must be 1..12 characters of [A-Za-z0-9_.-]",
				   "create '%s'", pf);
	if (c->numvfs < 1 || c->numvfs > VFEMU_MAX_VFS)
		return ve_fail_reason(&c->err, -EINVAL, "numvfs must be 1..64",
				   "create %s with %d VFs", pf, c->numvfs);

	n = snprintf(c->wire_netns, sizeof(c->wire_netns), "%s", o && o->wire_netns ? o->wire_netns : "");
	if (!n)
		snprintf(c->wire_netns, sizeof(c->wire_netns), "%s-wire", pf);
	if (n >= (int)sizeof(c->wire_netns) || !netns_valid_name(c->wire_netns))
		return ve_fail_reason(&c->err, -EINVAL,
				   "must be 1..63 characters of [A-Za-z0-9_.-]",
				   "use wire netns name '%s'", c->wire_netns);

	n = snprintf(c->wire_port, sizeof(c->wire_port), "%s", o && o->wire_port ? o->wire_port : pf);
	if (n >= (int)sizeof(c->wire_port) || !ve_valid_ifname(c->wire_port, IF_NAMESIZE - 1))
		return ve_fail_reason(&c->err, -EINVAL,
				   "must be 1..15 characters of [A-Za-z0-9_.-]",
				   "use wire port name '%s'", c->wire_port);

	n = snprintf(c->vm_prefix, sizeof(c->vm_prefix), "%s", o && o->vm_netns_prefix ? o->vm_netns_prefix : "");
	if (!n)
		snprintf(c->vm_prefix, sizeof(c->vm_prefix), "%s-vm", pf);
	/* Room for up to two digits of the VF index. */
	if (n > VFEMU_NETNS_MAX - 3 || !netns_valid_name(c->vm_prefix))
		return ve_fail_reason(&c->err, -EINVAL,
				   "must be 1..61 characters of [A-Za-z0-9_.-]",
				   "use VM netns prefix '%s'", c->vm_prefix);
	return 0;
}

/* Refuse up front anything that would collide, so that the common failure
 * modes never need a rollback. */
static int check_free(struct create *c)
{
	char name[VFEMU_NETNS_MAX];
	int ret;

	ret = check_absent(c, c->pf);
	if (!ret) {
		ve_hostrep_name(c->pf, name);
		ret = check_absent(c, name);
	}
	if (!ret) {
		ve_hostdev_name(c->pf, name);
		ret = check_absent(c, name);
	}
	for (int i = 0; !ret && i < c->numvfs; i++) {
		ve_rep_name(c->pf, i, name);
		ret = check_absent(c, name);
	}
	if (ret)
		return ret;
	for (int i = 0; !c->vm_tap && i < c->numvfs; i++) {
		ve_vm_ns_name(c->vm_prefix, i, name);
		if (!strcmp(name, c->wire_netns))
			return ve_fail_reason(&c->err, -EINVAL, "same as the wire netns",
					   "use VM netns %s", name);
		if (netns_exists(name))
			return ve_fail_reason(&c->err, -EEXIST, "netns already exists",
					   "create %s: %s", c->pf, name);
	}
	return 0;
}

/* Create (or adopt) the wire netns and make sure the wire port name is free
 * in it. */
static int setup_wire_ns(struct create *c)
{
	struct nl wire;
	struct nl_link l;
	int ret;

	if (!netns_exists(c->wire_netns)) {
		ret = netns_add(c->wire_netns);
		if (ret == 0) {
			c->own_wire = 1;
			snprintf(c->ns[c->nns++], VFEMU_NETNS_MAX, "%s", c->wire_netns);
		} else if (ret != -EEXIST) {
			return ve_fail(&c->err, ret, "create netns %s", c->wire_netns);
		}
	}
	ret = nl_open(&wire, c->wire_netns);
	if (ret)
		return ve_fail(&c->err, ret, "enter netns %s", c->wire_netns);
	ret = nl_link_get(&wire, c->wire_port, &l);
	nl_close(&wire);
	if (ret == 0)
		return ve_fail_reason(&c->err, -EEXIST, "interface already exists",
				   "create %s: %s in netns %s", c->pf, c->wire_port,
				   c->wire_netns);
	if (ret != -ENODEV)
		return ve_fail(&c->err, ret, "look up %s in netns %s", c->wire_port, c->wire_netns);
	return 0;
}

/* veth <name> (host ns) <-> <peer> (netns peer_ns, or host ns if NULL). */
static int make_veth(struct create *c, const char *name, const uint8_t *mac,
		     const char *peer, const char *peer_ns, const uint8_t *peer_mac)
{
	int nsfd = -1, ret;

	if (peer_ns) {
		nsfd = netns_open(peer_ns);
		if (nsfd < 0)
			return ve_fail(&c->err, nsfd, "open netns %s", peer_ns);
	}
	ret = nl_veth_create(&c->host, name, mac, peer, nsfd, peer_mac);
	if (nsfd >= 0)
		close(nsfd);
	if (ret)
		return ve_fail(&c->err, ret, "create veth %s <-> %s%s%s", name, peer,
			    peer_ns ? " in netns " : "", peer_ns ? peer_ns : "");
	snprintf(c->links[c->nlinks++], IF_NAMESIZE, "%s", name);
	return 0;
}

/* A frame that an XDP program redirects loses the skb's CHECKSUM_PARTIAL
 * state, so the stack must put full checksums in what it sends towards
 * clat, or every TCP segment arrives with a bad checksum.  Software
 * checksums also turn TSO off, which keeps frames within the MTU. */
static int tx_csum_off(void *arg)
{
	struct ethtool_value ev = { .cmd = ETHTOOL_STXCSUM, .data = 0 };
	struct ifreq ifr = { 0 };
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", (const char *)arg);
	ifr.ifr_data = (void *)&ev;
	if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Bring up (and optionally alias / attach XDP to) a link reached via nl. */
static int finish_link(struct create *c, struct nl *nl, const char *name,
		       const char *ns, const char *alias, int xdp)
{
	struct nl_link l;
	const char *in = ns ? " in netns " : "", *nsn = ns ? ns : "";
	int ret;

	ret = nl_link_get(nl, name, &l);
	if (ret)
		return ve_fail(&c->err, ret, "look up %s%s%s", name, in, nsn);
	if (alias) {
		ret = nl_link_set_alias(nl, l.ifindex, alias);
		if (ret)
			return ve_fail(&c->err, ret, "set alias of %s", name);
	}
	if (xdp) {
		ret = nl_link_set_xdp(nl, l.ifindex, c->prog_fd, XDP_FLAGS_DRV_MODE);
		if (ret)
			return ve_fail(&c->err, ret, "attach XDP to %s%s%s", name, in, nsn);
		ret = ns ? netns_run(ns, tx_csum_off, (void *)name) : tx_csum_off((void *)name);
		if (ret)
			return ve_fail(&c->err, ret, "turn off tx checksum offload on %s%s%s", name, in,
				    nsn);
	}
	ret = nl_link_set_up(nl, l.ifindex);
	if (ret)
		return ve_fail(&c->err, ret, "set %s%s%s up", name, in, nsn);
	return 0;
}

static int create_wire(struct create *c)
{
	struct nl wire;
	int ret;

	ret = make_veth(c, c->pf, NULL, c->wire_port, c->wire_netns, NULL);
	if (ret)
		return ret;
	ret = nl_open(&wire, c->wire_netns);
	if (ret)
		return ve_fail(&c->err, ret, "enter netns %s", c->wire_netns);
	/* lo of an adopted wire ns is the owner's business. */
	ret = c->own_wire ? finish_link(c, &wire, "lo", c->wire_netns, NULL, 0) : 0;
	if (!ret)
		ret = finish_link(c, &wire, c->wire_port, c->wire_netns, NULL, 1);
	nl_close(&wire);
	return ret;
}

static int create_host_port(struct create *c)
{
	char rep[IF_NAMESIZE], dev[IF_NAMESIZE], alias[NL_ALIAS_MAX];
	uint8_t mac[6];
	int ret;

	ve_hostrep_name(c->pf, rep);
	ve_hostdev_name(c->pf, dev);
	ve_fn_mac(c->pf, 0, mac);
	ret = make_veth(c, rep, NULL, dev, NULL, mac);
	if (ret)
		return ret;
	ret = finish_link(c, &c->host, dev, NULL, NULL, 1);
	if (ret)
		return ret;
	snprintf(alias, sizeof(alias), ALIAS_TAG " hostport pf=%s", c->pf);
	return finish_link(c, &c->host, rep, NULL, alias, 0);
}

/* VF i of a --vm tap PF: a persistent tap <pf>r<i> for a VMM to open. */
static int create_tap_vf(struct create *c, int i)
{
	char rep[IF_NAMESIZE], pci[16], alias[NL_ALIAS_MAX], macs[18];
	uint8_t mac[6];
	int ret;

	ve_rep_name(c->pf, i, rep);
	ve_vf_pci(c->pf, i, pci, sizeof(pci));
	ve_fn_mac(c->pf, i + 1, mac);
	vfemu_format_mac(mac, macs);
	ret = tap_create(rep);
	if (ret)
		return ve_fail(&c->err, ret, "create tap %s", rep);
	snprintf(c->links[c->nlinks++], IF_NAMESIZE, "%s", rep);
	snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d kind=tap mac=%s pci=%s", c->pf,
		 i, macs, pci);
	return finish_link(c, &c->host, rep, NULL, alias, 0);
}

static int create_vf(struct create *c, int i)
{
	char ns[VFEMU_NETNS_MAX], rep[IF_NAMESIZE], pci[16], alias[NL_ALIAS_MAX];
	struct nl vm;
	uint8_t mac[6];
	int ret;

	ve_vm_ns_name(c->vm_prefix, i, ns);
	ve_rep_name(c->pf, i, rep);
	ve_vf_pci(c->pf, i, pci, sizeof(pci));
	ve_fn_mac(c->pf, i + 1, mac);

	ret = netns_add(ns);
	if (ret)
		return ve_fail(&c->err, ret, "create netns %s", ns);
	snprintf(c->ns[c->nns++], VFEMU_NETNS_MAX, "%s", ns);
	ret = make_veth(c, rep, NULL, "eth0", ns, mac);
	if (ret)
		return ret;

	ret = nl_open(&vm, ns);
	if (ret)
		return ve_fail(&c->err, ret, "enter netns %s", ns);
	ret = finish_link(c, &vm, "lo", ns, NULL, 0);
	if (!ret)
		ret = finish_link(c, &vm, "eth0", ns, NULL, 1);
	nl_close(&vm);
	if (ret)
		return ret;

	snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d netns=%s pci=%s",
		 c->pf, i, ns, pci);
	return finish_link(c, &c->host, rep, NULL, alias, 0);
}

/* The PF alias is the commit record: written last, so a PF without it was
 * never completely created. */
static int commit_pf(struct create *c)
{
	char alias[NL_ALIAS_MAX];

	snprintf(alias, sizeof(alias),
		 ALIAS_TAG " pf wire_netns=%s wire_port=%s vm_prefix=%s numvfs=%d own_wire=%d vm=%s",
		 c->wire_netns, c->wire_port, c->vm_prefix, c->numvfs, c->own_wire,
		 c->vm_tap ? "tap" : "netns");
	return finish_link(c, &c->host, c->pf, NULL, alias, 0);
}

static int do_create(struct create *c, const struct vfemu_create_opts *opts)
{
	int ret;

	ret = check_names(c, opts);
	if (ret)
		return ret;
	ret = nl_open(&c->host, NULL);
	if (ret)
		return ve_fail(&c->err, ret, "open rtnetlink socket");
	ret = check_free(c);
	if (ret)
		return ret;
	c->prog_fd = ve_load_xdp_pass();
	if (c->prog_fd < 0)
		return ve_fail(&c->err, c->prog_fd, "load XDP_PASS program");

	ret = setup_wire_ns(c);
	if (!ret)
		ret = create_wire(c);
	if (!ret)
		ret = create_host_port(c);
	for (int i = 0; !ret && i < c->numvfs; i++)
		ret = c->vm_tap ? create_tap_vf(c, i) : create_vf(c, i);
	if (!ret)
		ret = commit_pf(c);
	if (ret)
		rollback(c);
	return ret;
}

int vfemu_create(const char *pf, int numvfs, const struct vfemu_create_opts *opts)
{
	struct create *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		fprintf(stderr, "vf-emu: failed to allocate memory: %s\n", strerror(ENOMEM));
		return -ENOMEM;
	}
	c->pf = pf;
	c->numvfs = numvfs;
	c->vm_tap = opts && opts->vm_tap;
	c->prog_fd = -1;
	ret = do_create(c, opts);
	if (c->prog_fd >= 0)
		close(c->prog_fd);
	nl_close(&c->host);
	ve_report(&c->err, ret);
	free(c);
	return ret;
}
