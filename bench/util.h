/* SPDX-License-Identifier: GPL-2.0 */
/* What the benchmark's parts (pkt.c, mig.c, live.c, world.c) share:
 * timing, statistics in JSON, map memory and the working set.  bench.h
 * declares the parts' entry points and options (what bench.c calls), this
 * file what the parts call; neither includes the other, and world.h (the
 * per-packet world) includes both, so the includes form no circle. */
#ifndef CLAT_BENCH_UTIL_H
#define CLAT_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "bench_abi.h"

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
void gen_keys(struct bench_key *k, uint32_t n);

#endif
