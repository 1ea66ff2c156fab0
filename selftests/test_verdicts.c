// SPDX-License-Identifier: GPL-2.0
/* Verdict-level unit tests of clat_rx / clat_tx through BPF_PROG_TEST_RUN.
 *
 * Each named fixture is a real frame; each test checks the XDP verdict, the
 * function the frame was counted against (the redirect target) and the
 * counters.  Output is TAP; selftests/run.sh adds up the results.
 * Devmap ports point at lo: a non-live test run never transmits.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat_abi.h"
#include "clat.skel.h"
#include "lib/dp_env.h"
#include "lib/frames.h"
#include "tap.h"

#define LO_IFINDEX 1


static const uint8_t MAC_UNKNOWN[6] = { 0x02, 0xee, 0xee, 0xee, 0xee, 0xee };
#define MAC_MCAST MAC_MCAST4
#define VLAN_VF2 100

/* Ethernet with up to two tags, then ethertype and a payload of n bytes. */
static struct frame eth(const uint8_t dst[6], int ntags, const uint16_t *vids, uint16_t proto,
			size_t payload)
{
	struct frame f = { .len = 0 };

	frame_eth(&f, dst, MAC_WIRE, ntags, vids, proto);
	frame_fill(&f, 0x5a, payload);
	return f;
}

static struct frame fixture_ipv4_udp(const uint8_t dst[6]) { return eth(dst, 0, NULL, 0x0800, 28 + 18); }
static struct frame fixture_ipv6_udp(const uint8_t dst[6]) { return eth(dst, 0, NULL, 0x86dd, 48 + 16); }
static struct frame fixture_arp_request(void) { return eth(MAC_BCAST, 0, NULL, 0x0806, 28); }

struct vt_env {
	struct clat *skel;
	int rx, tx;
};

static uint64_t stat(struct vt_env *e, uint32_t fn, enum clat_stat slot)
{
	return stat_sum(bpf_map__fd(e->skel->maps.stats), fn, slot);
}

static void reset_stats(struct vt_env *e)
{
	uint32_t fn;

	for (fn = 0; fn <= CLAT_FN_NONE; fn++)
		stats_reset(bpf_map__fd(e->skel->maps.stats), fn);
}

static void add_fn(struct vt_env *e, uint32_t fn, const uint8_t mac[6], uint16_t vlan,
		   uint32_t port_ifindex, uint32_t state)
{
	struct clat_maps m;

	maps_from_skel(e->skel, &m);
	dp_add_fn(&m, fn, mac, vlan, state, port_ifindex);
}

static int env_open(struct vt_env *e, uint32_t unknown_action)
{
	struct clat_maps m;

	e->skel = clat__open();
	if (!e->skel)
		return -errno;
	e->skel->rodata->unknown_unicast = unknown_action;
	if (clat__load(e->skel)) {
		clat__destroy(e->skel);
		return -EINVAL;
	}
	e->rx = bpf_program__fd(e->skel->progs.clat_rx);
	e->tx = bpf_program__fd(e->skel->progs.clat_tx);
	add_fn(e, 0, MAC_HOST, 0, LO_IFINDEX, CLAT_FN_ACTIVE);
	add_fn(e, 1, MAC_VF1, 0, LO_IFINDEX, CLAT_FN_ACTIVE);
	add_fn(e, 2, MAC_VF2, VLAN_VF2, LO_IFINDEX, CLAT_FN_ACTIVE);
	/* clat_tx tests enter on lo, which plays the representor of fn 1. */
	maps_from_skel(e->skel, &m);
	return dp_set_uplink(&m, LO_IFINDEX, 1);
}

/* Runs one fixture and checks verdict plus one counter that must read 1. */
static void expect(struct vt_env *e, const char *name, int prog, struct frame f, uint32_t ingress,
		   uint32_t want_verdict, uint32_t count_fn, enum clat_stat slot)
{
	uint32_t verdict = ~0u;
	int err;

	reset_stats(e);
	err = dp_run(prog, &f, ingress, &verdict);
	check(!err && verdict == want_verdict && stat(e, count_fn, slot) == 1,
	      "%s: verdict %u (want %u), fn %u slot %d = %llu (want 1)%s", name, verdict,
	      want_verdict, count_fn, slot, (unsigned long long)stat(e, count_fn, slot),
	      err ? " [test run failed]" : "");
}

static void rx_tests(struct vt_env *e)
{
	uint16_t vid = VLAN_VF2, vids2[2] = { VLAN_VF2, 7 }, other = 5;
	struct frame f;
	uint32_t verdict;

	expect(e, "rx known MAC redirects to fn 1", e->rx, fixture_ipv4_udp(MAC_VF1), 0,
	       XDP_REDIRECT, 1, CLAT_STAT_RX_PACKETS);
	f = fixture_ipv4_udp(MAC_VF1);
	check(stat(e, 1, CLAT_STAT_RX_BYTES) == f.len, "rx known MAC counts %u bytes", f.len);
	check(stat(e, 2, CLAT_STAT_RX_PACKETS) == 0 && stat(e, 0, CLAT_STAT_RX_PACKETS) == 0,
	      "rx known MAC is counted against no other fn");
	expect(e, "rx host MAC redirects to fn 0", e->rx, fixture_ipv4_udp(MAC_HOST), 0,
	       XDP_REDIRECT, 0, CLAT_STAT_RX_PACKETS);
	expect(e, "rx IPv6 to known MAC redirects", e->rx, fixture_ipv6_udp(MAC_VF1), 0,
	       XDP_REDIRECT, 1, CLAT_STAT_RX_PACKETS);
	expect(e, "rx unknown MAC goes to the host port", e->rx, fixture_ipv4_udp(MAC_UNKNOWN), 0,
	       XDP_REDIRECT, CLAT_FN_NONE, CLAT_STAT_PASS_UNKNOWN);
	expect(e, "rx broadcast ARP floods", e->rx, fixture_arp_request(), 0, XDP_REDIRECT,
	       CLAT_FN_NONE, CLAT_STAT_FLOOD_RX);
	expect(e, "rx IPv4 multicast floods", e->rx, fixture_ipv4_udp(MAC_MCAST), 0, XDP_REDIRECT,
	       CLAT_FN_NONE, CLAT_STAT_FLOOD_RX);
	expect(e, "rx 802.1Q VLAN 100 selects fn 2", e->rx, eth(MAC_VF2, 1, &vid, 0x0800, 46), 0,
	       XDP_REDIRECT, 2, CLAT_STAT_RX_PACKETS);
	expect(e, "rx QinQ uses the outer VLAN", e->rx, eth(MAC_VF2, 2, vids2, 0x0800, 46), 0,
	       XDP_REDIRECT, 2, CLAT_STAT_RX_PACKETS);
	expect(e, "rx fn 2 MAC untagged is unknown", e->rx, fixture_ipv4_udp(MAC_VF2), 0,
	       XDP_REDIRECT, CLAT_FN_NONE, CLAT_STAT_PASS_UNKNOWN);
	expect(e, "rx fn 1 MAC on another VLAN is unknown", e->rx,
	       eth(MAC_VF1, 1, &other, 0x0800, 46), 0, XDP_REDIRECT, CLAT_FN_NONE,
	       CLAT_STAT_PASS_UNKNOWN);
	expect(e, "rx bare Ethernet header (14 bytes) is delivered", e->rx,
	       eth(MAC_VF1, 0, NULL, 0x0800, 0), 0, XDP_REDIRECT, 1, CLAT_STAT_RX_PACKETS);

	/* Truncated inside the first and the second VLAN tag, at every byte. */
	for (uint32_t cut = 14; cut < 22; cut++) {
		char name[64];

		f = eth(MAC_VF2, 2, vids2, 0x0800, 0);
		f.len = cut;
		snprintf(name, sizeof(name), "rx QinQ truncated at %u bytes is dropped", cut);
		expect(e, name, e->rx, f, 0, XDP_DROP, CLAT_FN_NONE, CLAT_STAT_DROP_MALFORMED);
	}
	/* The kernel refuses test frames shorter than an Ethernet header, just
	 * as it pads short frames on the real path; record that precondition. */
	f = fixture_ipv4_udp(MAC_VF1);
	f.len = 13;
	check(dp_run(e->rx, &f, 0, &verdict) == -EINVAL,
	      "rx runt of 13 bytes never reaches XDP (kernel refuses it)");
}

static void state_tests(struct vt_env *e)
{
	add_fn(e, 1, MAC_VF1, 0, LO_IFINDEX, CLAT_FN_QUIESCED);
	expect(e, "rx to a QUIESCED fn is dropped and counted", e->rx, fixture_ipv4_udp(MAC_VF1),
	       0, XDP_DROP, 1, CLAT_STAT_DROP_QUIESCED);
	expect(e, "tx from a QUIESCED fn is dropped and counted", e->tx,
	       fixture_ipv4_udp(MAC_WIRE), LO_IFINDEX, XDP_DROP, 1, CLAT_STAT_DROP_QUIESCED);
	add_fn(e, 1, MAC_VF1, 0, LO_IFINDEX, CLAT_FN_FREE);
	expect(e, "rx to a FREE fn is dropped", e->rx, fixture_ipv4_udp(MAC_VF1), 0, XDP_DROP, 1,
	       CLAT_STAT_DROP_INACTIVE);
	add_fn(e, 1, MAC_VF1, 0, LO_IFINDEX, CLAT_FN_ACTIVE);
	bpf_map_delete_elem(bpf_map__fd(e->skel->maps.vf_ports), &(uint32_t){ 1 });
	expect(e, "rx to an ACTIVE fn without a port is dropped", e->rx,
	       fixture_ipv4_udp(MAC_VF1), 0, XDP_DROP, 1, CLAT_STAT_DROP_NO_PORT);
	add_fn(e, 1, MAC_VF1, 0, LO_IFINDEX, CLAT_FN_ACTIVE);
}

static void tx_tests(struct vt_env *e)
{
	struct frame f;

	expect(e, "tx to a wire MAC goes out the uplink", e->tx, fixture_ipv4_udp(MAC_WIRE),
	       LO_IFINDEX, XDP_REDIRECT, 1, CLAT_STAT_TX_PACKETS);
	expect(e, "tx to the host MAC hairpins to fn 0", e->tx, fixture_ipv4_udp(MAC_HOST),
	       LO_IFINDEX, XDP_REDIRECT, 1, CLAT_STAT_HAIRPIN_PACKETS);
	expect(e, "tx broadcast floods", e->tx, fixture_arp_request(), LO_IFINDEX, XDP_REDIRECT,
	       1, CLAT_STAT_FLOOD_TX);
	f = eth(MAC_WIRE, 1, (uint16_t[]){ 1 }, 0x0800, 0);
	f.len = 16;
	expect(e, "tx truncated VLAN tag is dropped", e->tx, f, LO_IFINDEX, XDP_DROP, 1,
	       CLAT_STAT_DROP_MALFORMED);
	bpf_map_delete_elem(bpf_map__fd(e->skel->maps.port_fn), &(uint32_t){ LO_IFINDEX });
	expect(e, "tx from a port that maps to no fn is dropped", e->tx,
	       fixture_ipv4_udp(MAC_WIRE), LO_IFINDEX, XDP_DROP, CLAT_FN_NONE,
	       CLAT_STAT_DROP_NO_FN);
}

static void set_policy(struct vt_env *e, uint32_t fn, uint16_t vlan, uint8_t spoofchk,
		       uint8_t link_state)
{
	struct clat_fn_policy p = { .vlan = vlan, .spoofchk = spoofchk, .link_state = link_state };

	bpf_map_update_elem(bpf_map__fd(e->skel->maps.fn_policy), &fn, &p, BPF_ANY);
}

/* Port policy (fn_policy): clat_tx enters on lo as fn 1. */
static void port_policy_tests(struct vt_env *e)
{
	uint16_t ten = 10, twenty = 20;
	struct frame f;
	uint32_t verdict;
	uint8_t out[512];

	set_policy(e, 1, 0, 1, CLAT_LINK_AUTO);
	f = fixture_ipv4_udp(MAC_WIRE);
	memcpy(f.buf + 6, MAC_VF1, 6);
	expect(e, "spoofchk: tx with fn 1's own MAC goes out", e->tx, f, LO_IFINDEX, XDP_REDIRECT,
	       1, CLAT_STAT_TX_PACKETS);
	memcpy(f.buf + 6, MAC_HOST, 6);
	expect(e, "spoofchk: tx with fn 0's MAC is dropped", e->tx, f, LO_IFINDEX, XDP_DROP, 1,
	       CLAT_STAT_DROP_SPOOF);
	f = eth(MAC_VF2, 1, &twenty, 0x0800, 46);
	memcpy(f.buf + 6, MAC_VF1, 6);
	expect(e, "spoofchk: tx tagged with a VLAN fn 1's MAC is not under is dropped", e->tx, f,
	       LO_IFINDEX, XDP_DROP, 1, CLAT_STAT_DROP_SPOOF);

	/* fn 1 behind port VLAN 10: its MAC keyed with 10. */
	bpf_map_delete_elem(bpf_map__fd(e->skel->maps.mac_fn),
			    &(struct clat_mac_key){ .mac = { 0x02, 0xc1, 0, 0, 0, 1 } });
	add_fn(e, 1, MAC_VF1, 10, LO_IFINDEX, CLAT_FN_ACTIVE);
	set_policy(e, 1, 10, 1, CLAT_LINK_AUTO);
	f = eth(MAC_VF1, 1, &ten, 0x0800, 46);
	expect(e, "port VLAN: rx tagged 10 reaches fn 1", e->rx, f, 0, XDP_REDIRECT, 1,
	       CLAT_STAT_RX_PACKETS);
	{
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.buf, .data_size_in = f.len,
			    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

		check(!bpf_prog_test_run_opts(e->rx, &o) && o.data_size_out == f.len - 4 &&
			      out[12] == 0x08 && out[13] == 0x00 && !memcmp(out, MAC_VF1, 6),
		      "port VLAN: rx pops the tag (%u -> %u bytes)", f.len, o.data_size_out);
	}
	f = fixture_ipv4_udp(MAC_WIRE);
	memcpy(f.buf + 6, MAC_VF1, 6);
	expect(e, "port VLAN: untagged tx from fn 1 goes out", e->tx, f, LO_IFINDEX,
	       XDP_REDIRECT, 1, CLAT_STAT_TX_PACKETS);
	{
		struct xdp_md ctx = { .data_end = f.len, .ingress_ifindex = LO_IFINDEX };
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.buf, .data_size_in = f.len,
			    .data_out = out, .data_size_out = sizeof(out), .repeat = 1,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));

		check(!bpf_prog_test_run_opts(e->tx, &o) && o.data_size_out == f.len + 4 &&
			      out[12] == 0x81 && out[13] == 0x00 && out[15] == 10 &&
			      out[16] == 0x08 && !memcmp(out + 6, MAC_VF1, 6),
		      "port VLAN: tx pushes tag 10 (%u -> %u bytes)", f.len, o.data_size_out);
	}
	f = eth(MAC_WIRE, 1, &twenty, 0x0800, 46);
	memcpy(f.buf + 6, MAC_VF1, 6);
	expect(e, "port VLAN: a tag of the VM's own is a spoof", e->tx, f, LO_IFINDEX, XDP_DROP,
	       1, CLAT_STAT_DROP_SPOOF);
	f = fixture_ipv4_udp(MAC_VF2);
	memcpy(f.buf + 6, MAC_VF1, 6);
	expect(e, "port VLAN: no hairpin to a MAC of another VLAN", e->tx, f, LO_IFINDEX,
	       XDP_REDIRECT, 1, CLAT_STAT_TX_PACKETS);

	set_policy(e, 1, 10, 1, CLAT_LINK_DISABLE);
	f = eth(MAC_VF1, 1, &ten, 0x0800, 46);
	expect(e, "link disable: rx to fn 1 is dropped", e->rx, f, 0, XDP_DROP, 1,
	       CLAT_STAT_DROP_LINK_DOWN);
	f = fixture_ipv4_udp(MAC_WIRE);
	memcpy(f.buf + 6, MAC_VF1, 6);
	expect(e, "link disable: tx from fn 1 is dropped", e->tx, f, LO_IFINDEX, XDP_DROP, 1,
	       CLAT_STAT_DROP_LINK_DOWN);
	(void)verdict;

	bpf_map_delete_elem(bpf_map__fd(e->skel->maps.mac_fn),
			    &(struct clat_mac_key){ .mac = { 0x02, 0xc1, 0, 0, 0, 1 }, .vlan = 10 });
	add_fn(e, 1, MAC_VF1, 0, LO_IFINDEX, CLAT_FN_ACTIVE);
	set_policy(e, 1, 0, 0, CLAT_LINK_AUTO);
}

static void policy_tests(void)
{
	struct vt_env e;

	if (env_open(&e, CLAT_UNKNOWN_PASS)) {
		check(false, "load with --unknown-unicast pass");
		return;
	}
	expect(&e, "policy pass: unknown MAC is XDP_PASS", e.rx, fixture_ipv4_udp(MAC_UNKNOWN), 0,
	       XDP_PASS, CLAT_FN_NONE, CLAT_STAT_PASS_UNKNOWN);
	clat__destroy(e.skel);
	if (env_open(&e, CLAT_UNKNOWN_DROP)) {
		check(false, "load with --unknown-unicast drop");
		return;
	}
	expect(&e, "policy drop: unknown MAC is dropped", e.rx, fixture_ipv4_udp(MAC_UNKNOWN), 0,
	       XDP_DROP, CLAT_FN_NONE, CLAT_STAT_DROP_UNKNOWN);
	clat__destroy(e.skel);
}

int main(void)
{
	struct vt_env e;
	uint32_t zero = 0;
	int err;

	if (geteuid() != 0) {
		fprintf(stderr, "test_verdicts: must run as root\n");
		return 1;
	}
	err = env_open(&e, CLAT_UNKNOWN_HOST);
	if (err) {
		fprintf(stderr, "test_verdicts: failed to load clat: %s\n", strerror(-err));
		printf("not ok 1 - load clat BPF object\n");
		return 1;
	}
	rx_tests(&e);
	state_tests(&e);
	bpf_map_delete_elem(bpf_map__fd(e.skel->maps.vf_ports), &zero);
	expect(&e, "rx unknown MAC without a host port is XDP_PASS", e.rx,
	       fixture_ipv4_udp(MAC_UNKNOWN), 0, XDP_PASS, CLAT_FN_NONE, CLAT_STAT_PASS_UNKNOWN);
	add_fn(&e, 0, MAC_HOST, 0, LO_IFINDEX, CLAT_FN_ACTIVE);
	port_policy_tests(&e);
	tx_tests(&e);
	clat__destroy(e.skel);
	policy_tests();
	return tap_done();
}
