/* SPDX-License-Identifier: GPL-2.0 */
/* The benchmark's parts (per-packet, migration and rebuild, live path), as
 * the driver (bench.c) calls them.  Every part prints one JSON object on
 * stdout; bench/run.sh gathers them into results.json.  What the parts
 * share is in util.h. */
#ifndef CLAT_BENCH_H
#define CLAT_BENCH_H

#include <stdbool.h>
#include <stdint.h>

struct bench_opts {
	bool quick;      /* reduced sizes and runs, for the smoke test */
	int runs;        /* timed runs per figure; the median is reported */
	const char *tmp; /* where guest memory files go */
};

int bench_pkt(const struct bench_opts *o);
int bench_mig(const struct bench_opts *o);
int bench_live(int argc, char **argv, const struct bench_opts *o);

#endif
