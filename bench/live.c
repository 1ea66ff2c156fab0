// SPDX-License-Identifier: GPL-2.0
/* Live path: the project's traffic generator.
 *
 * BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES runs `gen` in the wire
 * namespace; it stamps each frame with the next VF MAC and connection and
 * redirects it into the wire port.  Whatever sits behind the port (clat_rx
 * on the PF, a Linux bridge, a macvlan's lower device) forwards it to the
 * VM ports, where `sink` counts and drops.  Delivered Mpps = frames counted
 * by the sinks / time the generator ran.
 *
 *   clat-bench live --wire NS:DEV --sink NS:DEV[:skb]... --mac MAC...
 *                   [--pass NS:DEV]... [--frames N] [--conns K] [--runs R]
 *
 * --pass attaches XDP_PASS where redirected frames must enter the stack
 * (a bridge port, a macvlan's lower device): a veth drops them otherwise.
 * Programs it attaches are detached again before it exits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench.h"
#include "bench_abi.h"
#include "util.h"
#include "bench.skel.h"
#include "common.h"

#define MAX_PORTS 70

struct port {
	char ns[64], dev[IF_NAMESIZE];
	uint32_t flags;
	int ifindex;
	bool attached;
};

static int enter_ns(const char *ns)
{
	char path[128];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET))
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc)
		fprintf(stderr, "clat-bench: failed to enter netns %s: %s\n", ns, strerror(-rc));
	return rc;
}

static int parse_port(const char *s, struct port *p)
{
	char buf[160], *dev, *mode;

	snprintf(buf, sizeof(buf), "%s", s);
	dev = strchr(buf, ':');
	if (!dev)
		return -EINVAL;
	*dev++ = 0;
	mode = strchr(dev, ':');
	if (mode)
		*mode++ = 0;
	snprintf(p->ns, sizeof(p->ns), "%s", buf);
	snprintf(p->dev, sizeof(p->dev), "%s", dev);
	p->flags = mode && !strcmp(mode, "skb") ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	return 0;
}

static int attach(int home, struct port *p, int prog)
{
	int rc = enter_ns(p->ns);

	if (!rc) {
		p->ifindex = if_nametoindex(p->dev);
		if (!p->ifindex)
			rc = -ENODEV;
		else if (bpf_xdp_attach(p->ifindex, prog, p->flags, NULL))
			rc = -errno;
		else
			p->attached = true;
		if (rc)
			fprintf(stderr, "clat-bench: failed to attach XDP to %s in %s: %s\n", p->dev,
				p->ns, strerror(-rc));
	}
	setns(home, CLONE_NEWNET);
	return rc;
}

static void detach(int home, struct port *p)
{
	if (p->attached && !enter_ns(p->ns))
		bpf_xdp_detach(p->ifindex, p->flags, NULL);
	setns(home, CLONE_NEWNET);
}

static uint64_t sink_total(struct bench *b)
{
	int ncpu = libbpf_num_possible_cpus(), c;
	uint64_t *v = calloc(ncpu, sizeof(*v)), sum = 0;
	uint32_t zero = 0;

	if (v && !bpf_map_lookup_elem(bpf_map__fd(b->maps.sink_count), &zero, v))
		for (c = 0; c < ncpu; c++)
			sum += v[c];
	free(v);
	return sum;
}

static void sink_reset(struct bench *b)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v = calloc(ncpu, sizeof(*v));
	uint32_t zero = 0;

	if (v)
		bpf_map_update_elem(bpf_map__fd(b->maps.sink_count), &zero, v, BPF_ANY);
	free(v);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: clat-bench live --wire NS:DEV --sink NS:DEV[:skb]... --mac MAC...\n"
		   "                       [--pass NS:DEV]... [--frames N] [--conns K] [--runs R]\n"
		   "Sends N UDP frames over K connections from the wire port, round-robin over\n"
		   "the MACs; prints {\"sent\", \"delivered\", \"mpps\"} as JSON.\n");
}

int bench_live(int argc, char **argv, const struct bench_opts *o)
{
	struct port wire = { 0 }, ports[MAX_PORTS];
	uint8_t macs[64][6];
	int nports = 0, npass = 0, nmacs = 0, runs = o->runs, i, rc = 0, home = -1;
	uint32_t frames = 1000000, conns = 1024;
	struct bench *b = NULL;
	double mpps[99], dl[99];
	uint64_t sent = 0;

	memset(ports, 0, sizeof(ports));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!v)
			goto bad;
		i++;
		if (!strcmp(a, "--wire") && !parse_port(v, &wire))
			continue;
		if ((!strcmp(a, "--sink") || !strcmp(a, "--pass")) && nports < MAX_PORTS &&
		    !parse_port(v, &ports[nports])) {
			/* Pass ports first in the array is not needed: remember the kind. */
			ports[nports].attached = false;
			if (!strcmp(a, "--pass")) {
				npass++;
				ports[nports].ifindex = -1; /* marks a pass port until attached */
			}
			nports++;
			continue;
		}
		if (!strcmp(a, "--mac") && nmacs < 64 && !parse_mac(v, macs[nmacs])) {
			nmacs++;
			continue;
		}
		if (!strcmp(a, "--frames") && (frames = strtoul(v, NULL, 0)) > 0)
			continue;
		if (!strcmp(a, "--conns") && (conns = strtoul(v, NULL, 0)) > 0)
			continue;
		if (!strcmp(a, "--runs") && (runs = atoi(v)) > 0 && runs < 99)
			continue;
bad:
		fprintf(stderr, "clat-bench live: bad or missing value for '%s'\n", a);
		usage(stderr);
		return 2;
	}
	if (!wire.dev[0] || !nmacs || nports == npass) {
		fprintf(stderr, "clat-bench live: --wire, --sink and --mac are required\n");
		usage(stderr);
		return 2;
	}
	libbpf_set_print(NULL);
	home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	b = bench__open();
	if (home < 0 || !b) {
		rc = -errno;
		goto out;
	}
	bpf_map__set_max_entries(b->maps.keys, conns);
	rc = bench__load(b);
	if (rc)
		goto out;
	{
		struct bench_key *k = calloc(conns, sizeof(*k));
		uint32_t j;

		if (!k) {
			rc = -ENOMEM;
			goto out;
		}
		gen_keys(k, conns);
		for (j = 0; j < conns && !rc; j++)
			if (bpf_map_update_elem(bpf_map__fd(b->maps.keys), &j, &k[j], BPF_ANY))
				rc = -errno;
		free(k);
		for (j = 0; j < (uint32_t)nmacs && !rc; j++) {
			struct clat_mac_key mk = { 0 };

			memcpy(mk.mac, macs[j], 6);
			if (bpf_map_update_elem(bpf_map__fd(b->maps.gen_macs), &j, &mk, BPF_ANY))
				rc = -errno;
		}
		if (rc)
			goto out;
	}
	b->data->nkeys = conns;
	b->data->gen_nmacs = nmacs;
	for (i = 0; i < nports && !rc; i++) {
		bool pass = ports[i].ifindex == -1;

		rc = attach(home, &ports[i], bpf_program__fd(pass ? b->progs.floor_pass : b->progs.sink));
	}
	if (rc)
		goto out;
	rc = enter_ns(wire.ns);
	if (rc)
		goto out;
	b->bss->gen_ifindex = if_nametoindex(wire.dev);
	if (!b->bss->gen_ifindex) {
		rc = -ENODEV;
		fprintf(stderr, "clat-bench: no device %s in netns %s\n", wire.dev, wire.ns);
		goto out;
	}
	for (i = 0; i < runs; i++) {
		uint8_t buf[64] = { 0 };
		uint64_t t0, dt, got;
		LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = buf, .data_size_in = 60,
			    .repeat = frames, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

		/* Source MAC, IPv4/UDP headers; gen writes MAC, addresses, ports. */
		memcpy(buf + 6, (uint8_t[]){ 0x02, 0xaa, 0, 0, 0, 9 }, 6);
		buf[12] = 0x08;
		buf[14] = 0x45;
		buf[17] = 46;
		buf[22] = 64;
		buf[23] = 17;
		buf[39] = 26;
		sink_reset(b);
		b->bss->seq = 0;
		t0 = now_ns();
		if (bpf_prog_test_run_opts(bpf_program__fd(b->progs.gen), &t)) {
			rc = -errno;
			fprintf(stderr, "clat-bench: failed to run the generator: %s\n", strerror(-rc));
			goto out;
		}
		dt = now_ns() - t0;
		usleep(100000); /* let the receiving NAPI polls drain */
		got = sink_total(b);
		sent = frames;
		dl[i] = (double)got / frames;
		mpps[i] = got * 1e3 / dt;
	}
	printf("{\"sent\": %llu, ", (unsigned long long)sent);
	json_stat(stdout, "delivered_ratio", dl, runs);
	printf(", ");
	json_stat(stdout, "mpps", mpps, runs);
	printf("}\n");
out:
	if (home >= 0) {
		setns(home, CLONE_NEWNET);
		for (i = 0; i < nports; i++)
			detach(home, &ports[i]);
		close(home);
	}
	bench__destroy(b);
	if (rc)
		fprintf(stderr, "clat-bench live: %s\n", strerror(-rc));
	return rc ? 1 : 0;
}
