// SPDX-License-Identifier: GPL-2.0
/* flowgen: drives a pinned, live XDP program (e.g. a PF's clat_rx) with one
 * named frame per flow through BPF_PROG_TEST_RUN, remote -> VM, and reports
 * the verdicts as JSON: {"sent":N,"redirected":R,"other":O}. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <bpf/bpf.h>

#include "lib/frames.h"

#define ferr(fmt, ...) fprintf(stderr, "flowgen: " fmt "\n", ##__VA_ARGS__)

#define PAYLOAD 32

struct args {
	const char *prog;
	uint8_t dst_mac[ETH_ALEN], src_mac[ETH_ALEN];
	struct in_addr vm_addr, remote_addr;
	uint64_t vm_port, first_port, count;
	uint8_t proto;
	uint8_t tcp_flags;
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: flowgen --prog PIN --dst-mac MAC --src-mac MAC --vm-addr IPv4 "
		     "--vm-port P\n               --remote-addr IPv4 --first-port X --count N "
		     "[--proto udp|tcp] [--tcp-flags F[,F...]]\n"
		     "  One BPF_PROG_TEST_RUN of the pinned XDP program per flow i (0..N-1):\n"
		     "  remote_addr:X+i -> vm_addr:P.  TCP flags: syn ack fin rst psh (default ack).\n");
}

static int parse_mac(const char *s, uint8_t mac[ETH_ALEN])
{
	unsigned int b[ETH_ALEN];
	char tail;
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return -1;
	for (i = 0; i < ETH_ALEN; i++) {
		if (b[i] > 0xff)
			return -1;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_tcp_flags(const char *s, uint8_t *out)
{
	static const struct { const char *name; uint8_t bit; } names[] = {
		{ "fin", 0x01 }, { "syn", 0x02 }, { "rst", 0x04 }, { "psh", 0x08 }, { "ack", 0x10 },
	};
	char buf[64], *tok, *save;
	size_t i;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	*out = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(tok, names[i].name))
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return -1;
		*out |= names[i].bit;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	enum { O_PROG = 256, O_DST_MAC, O_SRC_MAC, O_VM_ADDR, O_VM_PORT, O_REMOTE_ADDR,
	       O_FIRST_PORT, O_COUNT, O_PROTO, O_TCP_FLAGS };
	static const struct option opts[] = {
		{ "prog", required_argument, NULL, O_PROG },
		{ "dst-mac", required_argument, NULL, O_DST_MAC },
		{ "src-mac", required_argument, NULL, O_SRC_MAC },
		{ "vm-addr", required_argument, NULL, O_VM_ADDR },
		{ "vm-port", required_argument, NULL, O_VM_PORT },
		{ "remote-addr", required_argument, NULL, O_REMOTE_ADDR },
		{ "first-port", required_argument, NULL, O_FIRST_PORT },
		{ "count", required_argument, NULL, O_COUNT },
		{ "proto", required_argument, NULL, O_PROTO },
		{ "tcp-flags", required_argument, NULL, O_TCP_FLAGS },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned int seen = 0, required = 0xff; /* O_PROG .. O_COUNT */
	const char *bad = NULL;
	int opt;

	memset(a, 0, sizeof(*a));
	a->proto = IPPROTO_UDP;
	a->tcp_flags = 0x10; /* ack */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			exit(0);
		}
		if (opt == '?') {
			ferr("unknown option or missing value '%s'", argv[optind - 1]);
			return -1;
		}
		if (opt >= O_PROG && opt <= O_COUNT)
			seen |= 1u << (opt - O_PROG);
		switch (opt) {
		case O_PROG: a->prog = optarg; break;
		case O_DST_MAC: if (parse_mac(optarg, a->dst_mac)) bad = "dst-mac"; break;
		case O_SRC_MAC: if (parse_mac(optarg, a->src_mac)) bad = "src-mac"; break;
		case O_VM_ADDR:
			if (inet_pton(AF_INET, optarg, &a->vm_addr) != 1) bad = "vm-addr";
			break;
		case O_REMOTE_ADDR:
			if (inet_pton(AF_INET, optarg, &a->remote_addr) != 1) bad = "remote-addr";
			break;
		case O_VM_PORT: if (parse_u64(optarg, 1, 65535, &a->vm_port)) bad = "vm-port"; break;
		case O_FIRST_PORT:
			if (parse_u64(optarg, 1, 65535, &a->first_port)) bad = "first-port";
			break;
		case O_COUNT: if (parse_u64(optarg, 1, 65535, &a->count)) bad = "count"; break;
		case O_PROTO:
			if (!strcmp(optarg, "udp"))
				a->proto = IPPROTO_UDP;
			else if (!strcmp(optarg, "tcp"))
				a->proto = IPPROTO_TCP;
			else
				bad = "proto";
			break;
		case O_TCP_FLAGS: if (parse_tcp_flags(optarg, &a->tcp_flags)) bad = "tcp-flags"; break;
		}
		if (bad) {
			ferr("invalid --%s '%s'", bad, optarg);
			return -1;
		}
	}
	if (optind < argc) {
		ferr("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if ((seen & required) != required) {
		ferr("--prog, --dst-mac, --src-mac, --vm-addr, --vm-port, --remote-addr, "
		     "--first-port and --count are required");
		usage(stderr);
		return -1;
	}
	if (a->first_port + a->count - 1 > 65535) {
		ferr("invalid --count %" PRIu64 ": remote ports go past 65535", a->count);
		return -1;
	}
	return 0;
}

/* Ethernet/IPv4/UDP|TCP, remote:sport -> vm:dport, in *f. */
static void build_frame(const struct args *a, uint16_t sport, struct frame *f)
{
	uint32_t l4 = (a->proto == IPPROTO_TCP ? 20 : 8) + PAYLOAD;

	f->len = 0;
	frame_eth(f, a->dst_mac, a->src_mac, 0, NULL, ETH_P_IP);
	frame_ipv4(f, a->proto, ntohl(a->remote_addr.s_addr), ntohl(a->vm_addr.s_addr), l4, sport,
		   0);
	if (a->proto == IPPROTO_TCP)
		frame_tcp(f, sport, (uint16_t)a->vm_port, 1000, 2000, a->tcp_flags, 65535);
	else
		frame_udp(f, sport, (uint16_t)a->vm_port, PAYLOAD);
	frame_fill(f, 'x', PAYLOAD);
}

int main(int argc, char **argv)
{
	uint64_t i, redirected = 0, other = 0;
	static struct frame f;
	struct args a;
	int fd, err;

	if (parse_args(argc, argv, &a))
		return 2;
	fd = bpf_obj_get(a.prog);
	if (fd < 0) {
		ferr("failed to open pinned program %s: %s", a.prog, strerror(errno));
		return 1;
	}
	for (i = 0; i < a.count; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = f.buf, .repeat = 1);

		build_frame(&a, (uint16_t)(a.first_port + i), &f);
		opts.data_size_in = f.len;

		err = bpf_prog_test_run_opts(fd, &opts);
		if (err) {
			ferr("failed to run %s on frame %" PRIu64 ": %s", a.prog, i, strerror(errno));
			return 1;
		}
		if (opts.retval == XDP_REDIRECT)
			redirected++;
		else
			other++;
	}
	printf("{\"sent\":%" PRIu64 ",\"redirected\":%" PRIu64 ",\"other\":%" PRIu64 "}\n", a.count,
	       redirected, other);
	return 0;
}
