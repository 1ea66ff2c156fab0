// SPDX-License-Identifier: GPL-2.0
/* Per-packet cost through BPF_PROG_TEST_RUN.
 *
 * Every case runs behind the same driver program (bench.bpf.c: drive): it
 * rewrites the frame to the next connection of a shuffled working set and
 * tail-calls the case.  A case's cost is its time minus the driver's own
 * (drive tail-calling an empty program), plus the floor (an empty program
 * run directly), so every figure is comparable with the floor.  The real
 * clat_rx of .output/clat.bpf.o is tail-called with its maps filled the way
 * `clat-load attach` and `guest attach` do (bench/world.c).
 *
 * Cases are rows of a table: add a design by adding a row (and, if it is a
 * new program, a tail-call slot). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench_abi.h"
#include "lib/dp_env.h"
#include "world.h"

static const char *const design_name[] = {
	[D_FLOOR] = "floor", [D_WRAP] = "driver", [D_MAC_REDIRECT] = "mac_redirect",
	[D_CLAT] = "clat", [D_LRU] = "lru", [D_LITERAL] = "literal",
};
struct result {
	const struct pkt_case *pc;
	uint32_t levels, cap;
	uint64_t pool_contexts;
	double ns[99];
	int n;
	uint64_t hits, misses, mem_bytes, lru_entries;
	int64_t no_ctx_flows; /* clat: flows that found no context in a pass over all; -1 unknown */
	uint64_t ctx_full, ctx_busy;
};

static uint64_t stat_sum(struct world *w, enum clat_stat slot)
{
	int ncpu = libbpf_num_possible_cpus(), c;
	struct clat_stats *v = calloc(ncpu, sizeof(*v));
	uint32_t fn = FN;
	uint64_t sum = 0;

	if (v && !bpf_map_lookup_elem(w->m.stats, &fn, v))
		for (c = 0; c < ncpu; c++)
			sum += v[c].slot[slot];
	free(v);
	return sum;
}

static int measure(struct world *w, const struct pkt_case *pc, const struct bench_opts *o,
		   struct result *r)
{
	uint32_t repeat = o->quick ? 20000 : 200000;
	uint64_t before = 0;
	double ns;
	int i, rc, prog = prog_of(w, pc->d);

	if (repeat < w->conns)
		repeat = w->conns;
	/* Warm-up: two passes over the working set open every connection
	 * (UDP claims on its first frame) and settle the caches. */
	for (i = 0; i < 2; i++) {
		rc = run_prog(prog, w->conns > 1000 ? w->conns : 1000, &ns);
		if (rc)
			return rc;
	}
	if (pc->d == D_CLAT)
		before = stat_sum(w, CLAT_STAT_CTX_HIT);
	memset(w->b->bss->cnt, 0, sizeof(w->b->bss->cnt));
	for (i = 0; i < o->runs; i++) {
		rc = run_prog(prog, repeat, &r->ns[i]);
		if (rc)
			return rc;
	}
	r->n = o->runs;
	r->levels = w->levels;
	r->cap = w->cap;
	r->pool_contexts = w->pool_contexts;
	r->mem_bytes = w->mem_bytes;
	r->no_ctx_flows = -1;
	if (pc->d == D_CLAT) {
		r->hits = stat_sum(w, CLAT_STAT_CTX_HIT) - before;
		r->misses = (uint64_t)repeat * o->runs - r->hits;
		/* One pass visits every connection once, wherever it starts:
		 * each frame that does not hit is a flow without a context. */
		before = stat_sum(w, CLAT_STAT_CTX_HIT);
		rc = run_prog(prog, w->conns, &ns);
		if (rc)
			return rc;
		r->no_ctx_flows = (int64_t)w->conns - (int64_t)(stat_sum(w, CLAT_STAT_CTX_HIT) - before);
		r->ctx_full = stat_sum(w, CLAT_STAT_CTX_FULL);
		r->ctx_busy = stat_sum(w, CLAT_STAT_CTX_BUSY);
	} else if (pc->d == D_LRU || pc->d == D_LITERAL) {
		r->hits = w->b->bss->cnt[CNT_HIT];
		r->misses = w->b->bss->cnt[CNT_INSERT] + w->b->bss->cnt[CNT_FAIL];
		r->lru_entries = w->cap;
	}
	return 0;
}

/* The rows.  Hot-flow rows (1 connection) time the path itself; the
 * working-set rows spread it over live connections in random order, with
 * every table sized 1.5x the connections (the old sizing) and clat also at
 * 1.1x (90% load); the segment rows (a guest that grew) price each extra
 * capacity segment. */
#define ROW(d, n, pct, segs) { d, n, pct, segs, 1 }

static const struct pkt_case full_cases[] = {
	ROW(D_FLOOR, 1, 150, 1),  ROW(D_WRAP, 1, 150, 1),  ROW(D_MAC_REDIRECT, 1, 150, 1),
	ROW(D_CLAT, 1, 150, 1),   ROW(D_LRU, 1, 150, 1),   ROW(D_LITERAL, 1, 150, 1),
	ROW(D_CLAT, 1024, 150, 1), ROW(D_LRU, 1024, 150, 1), ROW(D_LITERAL, 1024, 150, 1),
	ROW(D_CLAT, 65536, 150, 1), ROW(D_LRU, 65536, 150, 1), ROW(D_LITERAL, 65536, 150, 1),
	ROW(D_CLAT, 65536, 110, 1),
	ROW(D_CLAT, 1 << 20, 150, 1), ROW(D_LRU, 1 << 20, 150, 1), ROW(D_LITERAL, 1 << 20, 150, 1),
	ROW(D_CLAT, 1 << 20, 110, 1),
	ROW(D_CLAT, 65536, 150, 2), ROW(D_CLAT, 65536, 150, 3), ROW(D_CLAT, 65536, 150, 4),
};

/* QUICK: the same figures with a smaller largest working set. */
static const struct pkt_case quick_cases[] = {
	ROW(D_FLOOR, 1, 150, 1),  ROW(D_WRAP, 1, 150, 1),  ROW(D_MAC_REDIRECT, 1, 150, 1),
	ROW(D_CLAT, 1, 150, 1),   ROW(D_LRU, 1, 150, 1),   ROW(D_LITERAL, 1, 150, 1),
	ROW(D_CLAT, 1024, 150, 1), ROW(D_LRU, 1024, 150, 1), ROW(D_LITERAL, 1024, 150, 1),
	ROW(D_CLAT, 16384, 150, 1), ROW(D_LRU, 16384, 150, 1), ROW(D_LITERAL, 16384, 150, 1),
	ROW(D_CLAT, 16384, 110, 1),
	ROW(D_CLAT, 16384, 150, 2), ROW(D_CLAT, 16384, 150, 4),
};

static double med(const double *v, int n)
{
	double c[99], lo, hi;

	memcpy(c, v, n * sizeof(*v));
	return median(c, n, &lo, &hi);
}

static const struct result *find(const struct result *r, int n, enum design d, uint32_t conns)
{
	for (int i = 0; i < n; i++)
		if (r[i].pc->d == d && r[i].pc->conns == conns && r[i].pc->segs <= 1 &&
		    r[i].pc->cap_pct == 150)
			return &r[i];
	return NULL;
}

/* What the verifier walked to accept each datapath program (its budget is
 * 1M), from the kernel's bpf_prog_info of a freshly loaded clat. */
static int verified_insns(uint32_t *rx, uint32_t *tx)
{
	struct clat *c = dp_load_sized(CLAT_BUCKET_SLOTS * 64, NULL);
	struct bpf_prog_info info;
	__u32 len;
	int rc = 0;

	if (!c)
		return -errno;
	memset(&info, 0, sizeof(info));
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(bpf_program__fd(c->progs.clat_rx), &info, &len))
		rc = -errno;
	*rx = info.verified_insns;
	memset(&info, 0, sizeof(info));
	len = sizeof(info);
	if (!rc && bpf_obj_get_info_by_fd(bpf_program__fd(c->progs.clat_tx), &info, &len))
		rc = -errno;
	*tx = info.verified_insns;
	clat__destroy(c);
	return rc;
}

int bench_pkt(const struct bench_opts *o)
{
	const struct pkt_case *cases = o->quick ? quick_cases : full_cases;
	int ncases = o->quick ? ARRAY_SIZE(quick_cases) : ARRAY_SIZE(full_cases);
	struct result *res = calloc(ncases, sizeof(*res));
	double floor_ns = 0, drv_ns = 0, mac_ns = 0;
	uint32_t vrx = 0, vtx = 0;
	struct world w;
	int i, j, rc = 0;

	if (!res)
		return -ENOMEM;
	libbpf_set_print(NULL);
	rc = verified_insns(&vrx, &vtx);
	if (rc)
		fprintf(stderr, "clat-bench: failed to load clat: %s\n", strerror(-rc));
	for (i = 0; i < ncases && !rc; i++) {
		fprintf(stderr, "bench pkt: %s, %u connections, capacity %u%%, segments %u\n",
			design_name[cases[i].d], cases[i].conns, cases[i].cap_pct,
			cases[i].segs ? cases[i].segs : 1);
		res[i].pc = &cases[i];
		rc = world_open(&w, &cases[i], o);
		if (!rc)
			rc = measure(&w, &cases[i], o, &res[i]);
		if (rc)
			fprintf(stderr, "clat-bench: failed to measure %s with %u connections: %s\n",
				design_name[cases[i].d], cases[i].conns, strerror(-rc));
		world_close(&w);
		if (cases[i].d == D_FLOOR)
			floor_ns = med(res[i].ns, res[i].n);
		if (cases[i].d == D_WRAP)
			drv_ns = med(res[i].ns, res[i].n);
	}
	if (rc) {
		free(res);
		return rc;
	}
	/* Net cost: the driver's own work out, the floor back in. */
	for (i = 0; i < ncases; i++)
		if (cases[i].d != D_FLOOR && cases[i].d != D_WRAP)
			for (j = 0; j < res[i].n; j++)
				res[i].ns[j] = res[i].ns[j] - drv_ns + floor_ns;
	for (i = 0; i < ncases; i++)
		if (cases[i].d == D_MAC_REDIRECT)
			mac_ns = med(res[i].ns, res[i].n);

	printf("{\"floor_ns\": %.3f, \"driver_ns\": %.3f, \"mac_redirect_ns\": %.3f, "
	       "\"verified_insns\": {\"clat_rx\": %u, \"clat_tx\": %u}, \"cases\": [\n",
	       floor_ns, drv_ns, mac_ns, vrx, vtx);
	for (i = 0; i < ncases; i++) {
		const struct result *r = &res[i], *lru = find(res, ncases, D_LRU, cases[i].conns);
		double m = med(r->ns, r->n);

		printf("  {\"design\": \"%s\", \"conns\": %u, \"cap_pct\": %u, \"load\": %.4f, "
		       "\"segments\": %u, \"capacity\": %u, ",
		       design_name[cases[i].d], cases[i].conns, cases[i].cap_pct,
		       r->cap ? (double)cases[i].conns / r->cap : 0, cases[i].segs ? cases[i].segs : 1,
		       r->cap);
		if (cases[i].d == D_CLAT)
			printf("\"pool_contexts\": %llu, ", (unsigned long long)r->pool_contexts);
		json_stat(stdout, "ns", res[i].ns, r->n);
		printf(", \"mpps\": %.3f, \"x_floor\": %.3f", m > 0 ? 1000.0 / m : 0, m / floor_ns);
		if (mac_ns > 0 && cases[i].d >= D_CLAT && cases[i].conns == 1)
			printf(", \"x_mac_redirect\": %.3f", m / mac_ns);
		if (lru && cases[i].d >= D_CLAT)
			printf(", \"x_lru\": %.3f", m / med(lru->ns, lru->n));
		if (r->hits + r->misses)
			printf(", \"hit_ratio\": %.4f", (double)r->hits / (r->hits + r->misses));
		if (r->no_ctx_flows >= 0)
			printf(", \"no_ctx_flows\": %lld, \"ctx_full\": %llu, \"ctx_busy\": %llu",
			       (long long)r->no_ctx_flows, (unsigned long long)r->ctx_full,
			       (unsigned long long)r->ctx_busy);
		if (r->mem_bytes && cases[i].conns > 1)
			printf(", \"bytes_per_conn\": %.1f", (double)r->mem_bytes / cases[i].conns);
		if (r->mem_bytes && r->lru_entries && cases[i].d == D_LRU)
			printf(", \"bytes_per_entry\": %.1f", (double)r->mem_bytes / r->lru_entries);
		printf("}%s\n", i + 1 < ncases ? "," : "");
	}
	printf("]}\n");
	free(res);
	return 0;
}
