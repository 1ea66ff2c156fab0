/* SPDX-License-Identifier: GPL-2.0 */
/* A per-packet test world (bench/world.c): the bench skeleton (driver,
 * peers) and, for the clat rows, a clat skeleton whose context pool is
 * sized for the case, with a guest's shadow installed the way
 * `clat-load guest attach` does.  Used by pkt.c and mig.c. */
#ifndef CLAT_BENCH_WORLD_H
#define CLAT_BENCH_WORLD_H

#include "bench.h"
#include "util.h"
#include "bench.skel.h"
#include "clat.skel.h"
#include "common.h"
#include "lib/frames.h"

#define FN 1
#define LO 1
#define PER_BLOCK 32   /* A = 128 (struct clat_ctx), B = 4 KiB: one bucket per block */
#define ENTRIES 512

#define VF_MAC MAC_VF1 /* lib/frames.h */

enum design { D_FLOOR, D_WRAP, D_MAC_REDIRECT, D_CLAT, D_LRU, D_LITERAL };

struct pkt_case {
	enum design d;
	uint32_t conns;   /* working set: live connections, visited in random order */
	uint32_t cap_pct; /* capacity, % of the connections: 150 (the old sizing) or 110 (90% load) */
	uint32_t segs;    /* clat: capacity segments, the connections in the oldest; 0 = 1 */
	uint32_t nfns;    /* clat: guests the pool must hold at once (mig: 2); 0 = 1 */
};

struct world {
	struct bench *b;
	struct clat *c;
	struct clat_maps m;
	char mem[256];
	uint32_t conns, cap, levels, segs;
	uint64_t bat;
	uint64_t pool_contexts; /* the PF's pool, as sized for the case */
	uint64_t mem_bytes;     /* device-side bytes of the per-connection state */
};

int world_open(struct world *w, const struct pkt_case *pc, const struct bench_opts *o);
void world_close(struct world *w);
/* fd of the program a case runs: the floor itself or the driver. */
int prog_of(struct world *w, enum design d);
/* ns per run of prog over repeat runs, as the kernel timed them. */
int run_prog(int prog, uint32_t repeat, double *ns);

#endif
