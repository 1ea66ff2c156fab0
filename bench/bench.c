// SPDX-License-Identifier: GPL-2.0
/* clat-bench: the benchmark driver behind `make bench` (bench/run.sh).
 *
 *   clat-bench pkt  [--quick] [--runs N]   per-packet cost, BPF_PROG_TEST_RUN
 *   clat-bench mig  [--quick] [--runs N]   migration, rebuild and memory
 *   clat-bench live ...                    live-path generator (see live.c)
 *
 * Each prints one JSON object on stdout; logs go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: clat-bench pkt|mig [--quick] [--runs N] [--tmp DIR]\n"
		   "       clat-bench live --help\n"
		   "Prints one JSON object of figures on stdout (see docs/PERFORMANCE.md).\n");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .runs = 5, .tmp = "/tmp" };
	const char *cmd;
	int i;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "live"))
		return bench_live(argc - 1, argv + 1, &o);
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o.quick = true;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			o.runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--tmp") && i + 1 < argc) {
			o.tmp = argv[++i];
		} else if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "clat-bench: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (o.runs < 1 || o.runs > 99) {
		fprintf(stderr, "clat-bench: --runs must be 1..99\n");
		return 2;
	}
	if (!strcmp(cmd, "pkt"))
		return bench_pkt(&o) ? 1 : 0;
	if (!strcmp(cmd, "mig"))
		return bench_mig(&o) ? 1 : 0;
	fprintf(stderr, "clat-bench: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
