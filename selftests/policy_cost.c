// SPDX-License-Identifier: GPL-2.0
/* Per-packet cost of the dispatch path with and without port policy,
 * through BPF_PROG_TEST_RUN with a repeat count (ns per run, the median of
 * 7 runs of REPEAT each).  Not a test: it prints one JSON object, so the
 * cost of a change can be recorded before and after it (docs/DESIGN.md).
 *
 *   policy_cost [REPEAT]
 *
 * Every repeat runs the driver of policy_cost.bpf.o (next to this binary
 * in selftests/), which restores the frame and tail-calls the case: a
 * pushed or popped tag must not carry over into the next repeat.  The
 * driver's own cost (a tail call to an empty program) is subtracted.
 * Cases whose map does not exist in the object (an older datapath) print
 * null.  Devmap ports point at lo: a non-live run never transmits, so a
 * redirect costs its lookup, not a transmission.  clat_flood, a devmap
 * egress program, cannot be test-run (the kernel refuses BPF_XDP_DEVMAP
 * programs there): only its verified instructions are reported.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat_abi.h"
#include "clat.skel.h"
#include "lib/frames.h"

#define LO 1
#define RUNS 7

static int map_fd(struct clat *skel, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(skel->obj, name);

	return m ? bpf_map__fd(m) : -1;
}

/* A 64-byte UDP/IPv4 frame (68 tagged) in b, tagged with vid unless it
 * is 0; returns its length. */
static uint32_t frame(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], uint16_t vid)
{
	struct frame f = { .len = 0 };

	frame_eth(&f, dst, src, vid ? 1 : 0, &vid, 0x0800);
	frame_ipv4(&f, 17, 0x0a000001, 0x0a000002, 8, 0, 0x4000);
	frame_udp(&f, 12345, 9000, 0);
	frame_fill(&f, 0, (vid ? 68 : 64) - f.len);
	memcpy(b, f.buf, f.len);
	return f.len;
}

/* What the verifier walked to accept the program. */
static uint32_t verified(const struct bpf_program *p)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
		return 0;
	return info.verified_insns;
}

struct frame_tmpl {
	uint32_t len;
	uint8_t head[20];
};

static struct bpf_object *drv;
static int drive_fd, empty_fd, tmpl_fd, target_fd;
static double driver_ns;

static int driver_open(const char *self)
{
	char path[4096];
	struct bpf_program *p;
	const char *slash = strrchr(self, '/');

	snprintf(path, sizeof(path), "%.*s/selftests/policy_cost.bpf.o",
		 slash ? (int)(slash - self) : 1, slash ? self : ".");
	drv = bpf_object__open_file(path, NULL);
	if (!drv || bpf_object__load(drv)) {
		fprintf(stderr, "policy_cost: failed to load %s: %s\n", path, strerror(errno));
		return -1;
	}
	p = bpf_object__find_program_by_name(drv, "drive");
	drive_fd = bpf_program__fd(p);
	p = bpf_object__find_program_by_name(drv, "empty");
	empty_fd = bpf_program__fd(p);
	tmpl_fd = bpf_map__fd(bpf_object__find_map_by_name(drv, "tmpl"));
	target_fd = bpf_map__fd(bpf_object__find_map_by_name(drv, "target"));
	return 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double run(int prog, const uint8_t *buf, uint32_t len, uint32_t ingress, uint32_t repeat,
		  uint32_t *verdict);

/* ns per frame of prog on this frame, the driver's own cost taken off. */
static double cost(int prog, const uint8_t *buf, uint32_t len, uint32_t ingress, uint32_t repeat,
		   uint32_t *verdict)
{
	struct frame_tmpl t = { .len = len };
	uint32_t zero = 0;
	double ns;

	memcpy(t.head, buf, 18);
	bpf_map_update_elem(tmpl_fd, &zero, &t, BPF_ANY);
	bpf_map_update_elem(target_fd, &zero, &prog, BPF_ANY);
	ns = run(drive_fd, buf, len, ingress, repeat, verdict);
	return ns < 0 ? ns : ns - driver_ns;
}

static double run(int prog, const uint8_t *buf, uint32_t len, uint32_t ingress, uint32_t repeat,
		  uint32_t *verdict)
{
	struct xdp_md ctx = { .data_end = len, .ingress_ifindex = ingress };
	uint8_t out[256];
	double ns[RUNS];
	int i;

	for (i = 0; i < RUNS; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = len,
			    .data_out = out, .data_size_out = sizeof(out), .repeat = repeat,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));

		if (!ingress)
			o.ctx_in = NULL, o.ctx_size_in = 0;
		if (bpf_prog_test_run_opts(prog, &o))
			return -1;
		ns[i] = o.duration;
		*verdict = o.retval;
	}
	qsort(ns, RUNS, sizeof(ns[0]), cmp);
	return ns[RUNS / 2];
}

static void set_policy(int fd, uint32_t fn, uint16_t vlan, uint8_t spoofchk, uint32_t rate)
{
	struct clat_fn_policy p = { .vlan = vlan, .spoofchk = spoofchk, .max_rate_mbit = rate };

	if (fd >= 0)
		bpf_map_update_elem(fd, &fn, &p, BPF_ANY);
}

static void add_mac(struct clat *skel, uint32_t fn, const uint8_t mac[6], uint16_t vlan)
{
	struct clat_mac_key k = { .vlan = vlan };
	struct clat_mac_val v = { .fn = fn };

	memcpy(k.mac, mac, 6);
	bpf_map_update_elem(bpf_map__fd(skel->maps.mac_fn), &k, &v, BPF_ANY);
}

static void row(const char *name, double ns, uint32_t verdict, int *first)
{
	printf("%s\n  \"%s\": ", *first ? "" : ",", name);
	*first = 0;
	if (ns < 0)
		printf("null");
	else
		printf("{ \"ns\": %.1f, \"verdict\": %u }", ns, verdict);
}

/* Arguments are evaluated in no set order: the cost first, then its verdict. */
#define ROW(name, expr) do { double ns_ = (expr); row(name, ns_, verdict, &first); } while (0)

int main(int argc, char **argv)
{
	uint32_t repeat = argc > 1 ? (uint32_t)atoi(argv[1]) : 1000000, fn, verdict = 0;
	uint32_t uplink = CLAT_UPLINK_SLOT, lo = LO;
	struct clat_port_val pv = { .fn = 1 };
	struct clat *skel;
	int rx, tx, pol, first = 1;
	uint8_t buf[128];
	uint32_t len;

	skel = clat__open_and_load();
	if (!skel) {
		fprintf(stderr, "policy_cost: failed to load clat: %s\n", strerror(errno));
		return 1;
	}
	rx = bpf_program__fd(skel->progs.clat_rx);
	tx = bpf_program__fd(skel->progs.clat_tx);
	pol = map_fd(skel, "fn_policy");
	for (fn = 0; fn < 3; fn++) {
		struct clat_vct_entry v = { .state = CLAT_FN_ACTIVE, .ifindex = LO };

		bpf_map_update_elem(bpf_map__fd(skel->maps.vct), &fn, &v, BPF_ANY);
		bpf_map_update_elem(bpf_map__fd(skel->maps.vf_ports), &fn, &lo, BPF_ANY);
	}
	bpf_map_update_elem(bpf_map__fd(skel->maps.vf_ports), &uplink, &lo, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(skel->maps.port_fn), &lo, &pv, BPF_ANY);
	add_mac(skel, 1, MAC_VF1, 0);
	add_mac(skel, 2, MAC_VF2, 0);

	if (driver_open(argv[0]))
		return 1;
	/* Warm-up: the first runs of a fresh program are not representative. */
	len = frame(buf, MAC_VF1, MAC_WIRE, 0);
	cost(rx, buf, len, 0, 1000, &verdict);
	len = frame(buf, MAC_WIRE, MAC_VF1, 0);
	cost(tx, buf, len, LO, 1000, &verdict);
	cost(empty_fd, buf, len, LO, repeat, &verdict);
	driver_ns = cost(empty_fd, buf, len, LO, repeat, &verdict);
	printf("{");
	/* Policy off (no map, or an all-zero entry: spoofchk off). */
	len = frame(buf, MAC_VF1, MAC_WIRE, 0);
	ROW("rx_unicast_no_policy", cost(rx, buf, len, 0, repeat, &verdict));
	len = frame(buf, MAC_WIRE, MAC_VF1, 0);
	ROW("tx_uplink_no_policy", cost(tx, buf, len, LO, repeat, &verdict));
	len = frame(buf, MAC_VF2, MAC_VF1, 0);
	ROW("tx_hairpin_no_policy", cost(tx, buf, len, LO, repeat, &verdict));

	/* The default of a new fn: spoofchk on. */
	set_policy(pol, 1, 0, 1, 0);
	set_policy(pol, 2, 0, 1, 0);
	len = frame(buf, MAC_VF1, MAC_WIRE, 0);
	ROW("rx_unicast_default", pol < 0 ? -1 : cost(rx, buf, len, 0, repeat, &verdict));
	len = frame(buf, MAC_WIRE, MAC_VF1, 0);
	ROW("tx_uplink_default", pol < 0 ? -1 : cost(tx, buf, len, LO, repeat, &verdict));
	len = frame(buf, MAC_VF2, MAC_VF1, 0);
	ROW("tx_hairpin_default", pol < 0 ? -1 : cost(tx, buf, len, LO, repeat, &verdict));
	len = frame(buf, MAC_WIRE, MAC_VF2, 0);
	ROW("tx_spoofed_drop", pol < 0 ? -1 : cost(tx, buf, len, LO, repeat, &verdict));

	/* Port VLAN 10: pop on the way in, push on the way out. */
	if (pol >= 0) {
		struct clat_mac_key k = { .vlan = 0 };

		memcpy(k.mac, MAC_VF1, 6);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.mac_fn), &k);
		add_mac(skel, 1, MAC_VF1, 10);
		set_policy(pol, 1, 10, 1, 0);
	}
	len = frame(buf, MAC_VF1, MAC_WIRE, 10);
	ROW("rx_unicast_port_vlan_pop",
	    pol < 0 ? -1 : cost(rx, buf, len, 0, repeat, &verdict));
	len = frame(buf, MAC_WIRE, MAC_VF1, 0);
	ROW("tx_uplink_port_vlan_push",
	    pol < 0 ? -1 : cost(tx, buf, len, LO, repeat, &verdict));
	/* A policer far above what a test run sends: every frame passes. */
	set_policy(pol, 1, 10, 1, 100000);
	ROW("tx_uplink_port_vlan_rate",
	    pol < 0 ? -1 : cost(tx, buf, len, LO, repeat, &verdict));
	printf(",\n  \"verified_insns\": { \"clat_rx\": %u, \"clat_tx\": %u",
	       verified(skel->progs.clat_rx), verified(skel->progs.clat_tx));
	{
		struct bpf_program *p = bpf_object__find_program_by_name(skel->obj, "clat_flood");

		if (p)
			printf(", \"clat_flood\": %u", verified(p));
	}
	printf(" },\n  \"driver_ns\": %.1f\n}\n", driver_ns);
	clat__destroy(skel);
	bpf_object__close(drv);
	return 0;
}
