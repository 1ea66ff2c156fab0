/* SPDX-License-Identifier: GPL-2.0 */
/* The benchmark driver: shared helpers of its parts (per-packet, migration
 * and rebuild, live path).  Every part prints one JSON object on stdout;
 * bench/run.sh gathers them into results.json. */
#ifndef CLAT_BENCH_H
#define CLAT_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct bench_opts {
	bool quick;      /* reduced sizes and runs, for the smoke test */
	int runs;        /* timed runs per figure; the median is reported */
	const char *tmp; /* where guest memory files go */
};

uint64_t now_ns(void);
/* Sorts v and returns the median; *lo and *hi get the extremes. */
double median(double *v, int n, double *lo, double *hi);
/* "memlock:" of a map fd, from /proc/self/fdinfo; 0 if unknown. */
uint64_t map_memlock(int fd);
/* Registers a file to remove at exit, also on SIGINT/SIGTERM. */
void cleanup_file(const char *path);
/* A JSON figure: {"median": m, "min": lo, "max": hi, "runs": n}. */
void json_stat(FILE *out, const char *key, double *v, int n);
/* Fills n distinct connections in random (fixed-seed) order. */
struct bench_key;
void gen_keys(struct bench_key *k, uint32_t n);

int bench_pkt(const struct bench_opts *o);
int bench_mig(const struct bench_opts *o);
int bench_live(int argc, char **argv, const struct bench_opts *o);

#endif
