/* SPDX-License-Identifier: GPL-2.0 */
/* Minimal rtnetlink helpers over libmnl.  Every function returns 0 (or a
 * positive value where documented) on success and -errno on failure, the
 * errno being the one from the kernel's netlink ack. */
#ifndef VFEMU_NL_H
#define VFEMU_NL_H

#include <net/if.h>
#include <stdint.h>

#define NL_ALIAS_MAX 256 /* IFALIASZ */

struct mnl_socket;

struct nl {
	struct mnl_socket *sk;
	unsigned int portid;
	unsigned int seq;
};

struct nl_link {
	int ifindex;
	char name[IF_NAMESIZE];
	char alias[NL_ALIAS_MAX];   /* "" when unset */
	char kind[16];              /* IFLA_INFO_KIND, "" if none */
	uint8_t mac[6];
	int has_mac;
	int link;                   /* IFLA_LINK: for veth the peer's ifindex (in the peer's netns) */
	unsigned int flags;         /* IFF_* */
	uint32_t xdp_attached;      /* XDP_ATTACHED_* */
};

/* Open a socket in the current netns, or (ns != NULL && *ns) in the named
 * netns: the socket stays bound to the netns it was created in. */
int nl_open(struct nl *nl, const char *ns);
void nl_close(struct nl *nl);

int nl_link_get(struct nl *nl, const char *name, struct nl_link *out); /* -ENODEV if absent */
int nl_link_get_index(struct nl *nl, int ifindex, struct nl_link *out);
/* Calls cb for every link; a non-zero return from cb stops the walk and is
 * returned. */
int nl_link_dump(struct nl *nl, int (*cb)(const struct nl_link *l, void *data), void *data);

/* veth pair; peer_nsfd < 0 keeps the peer in the socket's netns, macs may
 * be NULL for a random address. */
int nl_veth_create(struct nl *nl, const char *name, const uint8_t *mac,
		   const char *peer, int peer_nsfd, const uint8_t *peer_mac);
int nl_link_del(struct nl *nl, int ifindex);
int nl_link_del_name(struct nl *nl, const char *name);
int nl_link_set_up(struct nl *nl, int ifindex);
int nl_link_set_mac(struct nl *nl, int ifindex, const uint8_t mac[6]);
int nl_link_set_alias(struct nl *nl, int ifindex, const char *alias);
/* Moves a link into the netns nsfd, renamed to newname (NULL keeps it). */
int nl_link_set_netns(struct nl *nl, int ifindex, int nsfd, const char *newname);
/* prog_fd < 0 detaches. flags: XDP_FLAGS_* (e.g. XDP_FLAGS_DRV_MODE). */
int nl_link_set_xdp(struct nl *nl, int ifindex, int prog_fd, uint32_t flags);

/* Interface addresses, so a VM's configuration can follow it to a new VF. */
struct nl_addr {
	int family;          /* AF_INET or AF_INET6 */
	int prefixlen;
	uint8_t addr[16];
};

int nl_addr_dump(struct nl *nl, int ifindex, int (*cb)(const struct nl_addr *a, void *data),
		 void *data);
int nl_addr_add(struct nl *nl, int ifindex, const struct nl_addr *a);

#endif
