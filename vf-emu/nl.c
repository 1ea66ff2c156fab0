// SPDX-License-Identifier: GPL-2.0
/* Minimal rtnetlink helpers over libmnl (see nl.h). */
#define _GNU_SOURCE
#include "nl.h"
#include "netns.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Large enough for one dump batch of full link messages (kernel fills up
 * to ~32k per recv when the buffer allows it). */
#define NL_RECV_BUF (64 * 1024)
#define NL_SEND_BUF 4096

static int open_here(struct nl *nl)
{
	nl->sk = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sk)
		return -errno;
	if (mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		int ret = -errno;

		mnl_socket_close(nl->sk);
		nl->sk = NULL;
		return ret;
	}
	nl->portid = mnl_socket_get_portid(nl->sk);
	nl->seq = (unsigned int)time(NULL);
	return 0;
}

static int open_cb(void *arg)
{
	return open_here(arg);
}

int nl_open(struct nl *nl, const char *ns)
{
	memset(nl, 0, sizeof(*nl));
	if (!ns || !*ns)
		return open_here(nl);
	return netns_run(ns, open_cb, nl);
}

void nl_close(struct nl *nl)
{
	if (nl->sk)
		mnl_socket_close(nl->sk);
	nl->sk = NULL;
}

/* Send one request and consume replies until the ack / NLMSG_DONE. */
static int nl_talk(struct nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char *buf;
	ssize_t n;
	int ret;

	nlh->nlmsg_seq = ++nl->seq;
	/* Careful: NLM_F_DUMP's bits overlap NLM_F_EXCL/NLM_F_REPLACE, which
	 * mean something else on RTM_NEW*; only GET requests can be dumps. */
	if ((nlh->nlmsg_type != RTM_GETLINK && nlh->nlmsg_type != RTM_GETADDR) ||
	    (nlh->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP)
		nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(nl->sk, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	buf = malloc(NL_RECV_BUF);
	if (!buf)
		return -ENOMEM;
	do {
		n = mnl_socket_recvfrom(nl->sk, buf, NL_RECV_BUF);
		if (n < 0) {
			ret = -errno;
			break;
		}
		/* mnl_cb_run returns MNL_CB_ERROR with errno set from the ack. */
		ret = mnl_cb_run(buf, n, nlh->nlmsg_seq, nl->portid, cb, data);
		if (ret == MNL_CB_ERROR)
			ret = errno ? -errno : -EIO;
	} while (ret == MNL_CB_OK);
	free(buf);
	return ret < 0 ? ret : 0;
}

static struct nlmsghdr *link_msg(char *buf, int type, int flags, int ifindex)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;

	/* libmnl does not zero attribute padding: start from a clean buffer. */
	memset(buf, 0, NL_SEND_BUF);
	nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = ifindex;
	return nlh;
}

/* ---- parsing ---------------------------------------------------------- */

static void parse_linkinfo(const struct nlattr *nest, struct nl_link *l)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, nest) {
		if (mnl_attr_get_type(a) == IFLA_INFO_KIND)
			strncpy(l->kind, mnl_attr_get_str(a), sizeof(l->kind) - 1);
	}
}

static void parse_xdp(const struct nlattr *nest, struct nl_link *l)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, nest) {
		if (mnl_attr_get_type(a) == IFLA_XDP_ATTACHED)
			l->xdp_attached = mnl_attr_get_u8(a);
	}
}

static void parse_link(const struct nlmsghdr *nlh, struct nl_link *l)
{
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;

	memset(l, 0, sizeof(*l));
	l->ifindex = ifm->ifi_index;
	l->flags = ifm->ifi_flags;
	mnl_attr_for_each(a, nlh, sizeof(*ifm)) {
		switch (mnl_attr_get_type(a)) {
		case IFLA_IFNAME:
			strncpy(l->name, mnl_attr_get_str(a), sizeof(l->name) - 1);
			break;
		case IFLA_IFALIAS:
			strncpy(l->alias, mnl_attr_get_str(a), sizeof(l->alias) - 1);
			break;
		case IFLA_ADDRESS:
			if (mnl_attr_get_payload_len(a) == 6) {
				memcpy(l->mac, mnl_attr_get_payload(a), 6);
				l->has_mac = 1;
			}
			break;
		case IFLA_LINK:
			l->link = (int)mnl_attr_get_u32(a);
			break;
		case IFLA_LINKINFO:
			parse_linkinfo(a, l);
			break;
		case IFLA_XDP:
			parse_xdp(a, l);
			break;
		}
	}
}

static int get_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWLINK)
		parse_link(nlh, data);
	return MNL_CB_OK;
}

int nl_link_get(struct nl *nl, const char *name, struct nl_link *out)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_GETLINK, 0, 0);

	if (strlen(name) >= IF_NAMESIZE)
		return -ENODEV;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	/* Skip statistics: we never use them and they bloat the reply. */
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(out, 0, sizeof(*out));
	return nl_talk(nl, nlh, get_cb, out);
}

int nl_link_get_index(struct nl *nl, int ifindex, struct nl_link *out)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_GETLINK, 0, ifindex);

	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(out, 0, sizeof(*out));
	return nl_talk(nl, nlh, get_cb, out);
}

struct dump_ctx {
	int (*cb)(const struct nl_link *l, void *data);
	void *data;
	int ret;
};

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *d = data;
	struct nl_link l;

	if (nlh->nlmsg_type != RTM_NEWLINK || d->ret)
		return MNL_CB_OK; /* keep draining the dump after a stop */
	parse_link(nlh, &l);
	d->ret = d->cb(&l, d->data);
	return MNL_CB_OK;
}

int nl_link_dump(struct nl *nl, int (*cb)(const struct nl_link *l, void *data), void *data)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_GETLINK, NLM_F_DUMP, 0);
	struct dump_ctx d = { cb, data, 0 };
	int ret;

	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	ret = nl_talk(nl, nlh, dump_cb, &d);
	return ret ? ret : d.ret;
}

/* ---- modification ----------------------------------------------------- */

int nl_veth_create(struct nl *nl, const char *name, const uint8_t *mac,
		   const char *peer, int peer_nsfd, const uint8_t *peer_mac)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	struct nlattr *info, *data, *peer_nest;
	struct ifinfomsg *pifm;

	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (mac)
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer_nest = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* VETH_INFO_PEER carries a full ifinfomsg followed by IFLA_* attrs. */
	pifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifm));
	pifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	if (peer_nsfd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
	if (peer_mac)
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, peer_mac);
	mnl_attr_nest_end(nlh, peer_nest);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_del(struct nl *nl, int ifindex)
{
	char buf[NL_SEND_BUF];

	return nl_talk(nl, link_msg(buf, RTM_DELLINK, 0, ifindex), NULL, NULL);
}

int nl_link_del_name(struct nl *nl, const char *name)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_DELLINK, 0, 0);

	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_set_up(struct nl *nl, int ifindex)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, 0, ifindex);
	struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);

	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_set_mac(struct nl *nl, int ifindex, const uint8_t mac[6])
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, 0, ifindex);

	mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_set_netns(struct nl *nl, int ifindex, int nsfd, const char *newname)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, 0, ifindex);

	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)nsfd);
	if (newname)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, newname);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_set_alias(struct nl *nl, int ifindex, const char *alias)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, 0, ifindex);

	if (strlen(alias) >= NL_ALIAS_MAX)
		return -ENAMETOOLONG;
	mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_set_xdp(struct nl *nl, int ifindex, int prog_fd, uint32_t flags)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh = link_msg(buf, RTM_SETLINK, 0, ifindex);
	struct nlattr *xdp = mnl_attr_nest_start(nlh, IFLA_XDP);

	mnl_attr_put_u32(nlh, IFLA_XDP_FD, (uint32_t)prog_fd);
	mnl_attr_put_u32(nlh, IFLA_XDP_FLAGS, flags);
	mnl_attr_nest_end(nlh, xdp);
	return nl_talk(nl, nlh, NULL, NULL);
}

/* ---- addresses ---------------------------------------------------------- */

struct addr_dump {
	int ifindex;
	int (*cb)(const struct nl_addr *a, void *data);
	void *data;
	int ret;
};

static int addr_attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (type <= IFA_MAX)
		tb[type] = attr;
	return MNL_CB_OK;
}

static int addr_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1] = { 0 };
	struct addr_dump *d = data;
	struct nl_addr a = { 0 };
	const struct nlattr *at;
	size_t len;

	if ((int)ifa->ifa_index != d->ifindex || ifa->ifa_scope == RT_SCOPE_LINK)
		return MNL_CB_OK; /* link-local addresses are the kernel's own */
	mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb);
	at = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (!at)
		return MNL_CB_OK;
	len = mnl_attr_get_payload_len(at);
	if (len != 4 && len != 16)
		return MNL_CB_OK;
	a.family = ifa->ifa_family;
	a.prefixlen = ifa->ifa_prefixlen;
	memcpy(a.addr, mnl_attr_get_payload(at), len);
	d->ret = d->cb(&a, d->data);
	return d->ret ? MNL_CB_STOP : MNL_CB_OK;
}

int nl_addr_dump(struct nl *nl, int ifindex, int (*cb)(const struct nl_addr *a, void *data),
		 void *data)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;
	struct addr_dump d = { ifindex, cb, data, 0 };
	int ret;

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_UNSPEC;
	ret = nl_talk(nl, nlh, addr_dump_cb, &d);
	return ret ? ret : d.ret;
}

int nl_addr_add(struct nl *nl, int ifindex, const struct nl_addr *a)
{
	char buf[NL_SEND_BUF];
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;
	size_t len = a->family == AF_INET ? 4 : 16;

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = a->family;
	ifa->ifa_prefixlen = a->prefixlen;
	ifa->ifa_index = ifindex;
	mnl_attr_put(nlh, IFA_LOCAL, len, a->addr);
	mnl_attr_put(nlh, IFA_ADDRESS, len, a->addr);
	return nl_talk(nl, nlh, NULL, NULL);
}
