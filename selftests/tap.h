/* SPDX-License-Identifier: GPL-2.0 */
/* TAP output and per-CPU counter helpers shared by the C selftests;
 * selftests/run.sh adds the results up. */
#ifndef CLAT_TAP_H
#define CLAT_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat_abi.h"

static int tests_run, tests_failed;

__attribute__((format(printf, 2, 3)))
static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	tests_run++;
	tests_failed += !ok;
	printf("%s %d - ", ok ? "ok" : "not ok", tests_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Prints the plan last; the exit status says whether anything failed. */
static inline int tap_done(void)
{
	printf("1..%d\n", tests_run);
	return tests_failed ? 1 : 0;
}

/* One counter of fn, summed over every CPU. */
static inline uint64_t stat_sum(int stats_fd, uint32_t fn, enum clat_stat slot)
{
	int ncpu = libbpf_num_possible_cpus(), c;
	struct clat_stats *v = calloc(ncpu, sizeof(*v));
	uint64_t sum = 0;

	if (v && !bpf_map_lookup_elem(stats_fd, &fn, v))
		for (c = 0; c < ncpu; c++)
			sum += v[c].slot[slot];
	free(v);
	return sum;
}

static inline void stats_reset(int stats_fd, uint32_t fn)
{
	int ncpu = libbpf_num_possible_cpus();
	struct clat_stats *zero = calloc(ncpu, sizeof(*zero));

	if (zero)
		bpf_map_update_elem(stats_fd, &fn, zero, BPF_ANY);
	free(zero);
}

#endif
