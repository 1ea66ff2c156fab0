/* SPDX-License-Identifier: GPL-2.0 */
/* Bounds-checked header parsing for XDP.  Every helper advances a cursor and
 * fails cleanly on a short frame, so no caller can read past data_end. */
#ifndef CLAT_PARSING_H
#define CLAT_PARSING_H

#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define VLAN_VID_MASK 0x0fff
#define CLAT_MAX_VLAN_TAGS 2

struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

struct hdr_cursor {
	void *pos;
	void *end;
};

/* What the dispatcher needs from L2. */
struct l2_info {
	struct ethhdr *eth;
	__u16 vlan;   /* outer VLAN ID, 0 when untagged */
	__u16 proto;  /* host byte order, after the VLAN tags */
	__u16 l3_off; /* where the L3 header starts, at most L2_MAX_LEN */
};

#define L2_MAX_LEN (ETH_HLEN + CLAT_MAX_VLAN_TAGS * sizeof(struct vlan_tag))

static __always_inline int is_vlan_proto(__u16 proto)
{
	return proto == ETH_P_8021Q || proto == ETH_P_8021AD;
}

/* Returns 0, or -1 for a runt or a truncated VLAN tag. */
static __always_inline int parse_l2(struct hdr_cursor *c, struct l2_info *l2)
{
	struct ethhdr *eth = c->pos;
	__u16 proto;
	int i;

	if ((void *)(eth + 1) > c->end)
		return -1;
	c->pos = eth + 1;
	l2->eth = eth;
	l2->vlan = 0;
	proto = bpf_ntohs(eth->h_proto);

	/* A fixed bound keeps the loop unrollable for the verifier; a third tag
	 * is left as payload, like a NIC that only parses two. */
#pragma unroll
	for (i = 0; i < CLAT_MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag = c->pos;

		if (!is_vlan_proto(proto))
			break;
		if ((void *)(tag + 1) > c->end)
			return -1;
		if (i == 0)
			l2->vlan = bpf_ntohs(tag->tci) & VLAN_VID_MASK;
		proto = bpf_ntohs(tag->encap_proto);
		c->pos = tag + 1;
	}
	l2->proto = proto;
	l2->l3_off = ETH_HLEN + i * sizeof(struct vlan_tag); /* i tags were parsed */
	return 0;
}

static __always_inline int is_multicast_mac(const __u8 *mac)
{
	return mac[0] & 1; /* covers broadcast too */
}

#endif
