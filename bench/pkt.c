// SPDX-License-Identifier: GPL-2.0
/* Per-packet cost through BPF_PROG_TEST_RUN.
 *
 * Every case runs behind the same driver program (bench.bpf.c: drive): it
 * rewrites the frame to the next connection of a shuffled working set and
 * tail-calls the case.  A case's cost is its time minus the driver's own
 * (drive tail-calling an empty program), plus the floor (an empty program
 * run directly), so every figure is comparable with the floor.  The real
 * clat_rx of .output/clat.bpf.o is tail-called with its maps filled the way
 * `clat-load guest attach` does: gbuild tables in a guest memory file,
 * validated by gtables_load and shadowed by shadow_install.
 *
 * Cases are rows of a table: add a design by adding a row (and, if it is a
 * new program, a tail-call slot). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench.h"
#include "bench_abi.h"
#include "bench.skel.h"
#include "clat.skel.h"
#include "common.h"
#include "gbuild.h"
#include "ggrow.h"
#include "gtables.h"
#include "shadow.h"

#include "world.h"

const uint8_t VF_MAC[6] = { 0x02, 0xc1, 0, 0, 0, 1 };

static const char *const design_name[] = {
	[D_FLOOR] = "floor", [D_WRAP] = "driver", [D_MAC_REDIRECT] = "mac_redirect",
	[D_CLAT] = "clat", [D_LRU] = "lru", [D_LITERAL] = "literal",
};
/* Capacity of every per-connection table: 1.5x the connections, as the
 * design tells guests to size theirs; the hot-flow cases get a fixed one. */
static uint32_t capacity_for(uint32_t conns)
{
	return conns < 2048 ? 4096 : conns + conns / 2;
}

static uint32_t levels_for(uint32_t cap)
{
	uint64_t c = PER_BLOCK;
	uint32_t l;

	for (l = 1; l < CLAT_MAX_LEVELS; l++, c *= ENTRIES)
		if (c * ENTRIES >= cap)
			break;
	return l;
}


void world_close(struct world *w)
{
	bench__destroy(w->b);
	clat__destroy(w->c);
	if (w->mem[0])
		unlink(w->mem);
	memset(w, 0, sizeof(*w));
}

static uint64_t inner_memlock(int outer, uint32_t key)
{
	uint32_t id = 0;
	uint64_t v = 0;
	int fd;

	if (bpf_map_lookup_elem(outer, &key, &id))
		return 0;
	fd = bpf_map_get_fd_by_id(id);
	if (fd >= 0) {
		v = map_memlock(fd);
		close(fd);
	}
	return v;
}

/* clat with a guest of capacity cap and the given levels (0 = none). */
static int clat_open(struct world *w, const struct bench_opts *o, bool guest)
{
	struct gbuild_type ty = { .name = "conn", .ctx_size = 256, .block_size = 4096,
				  .services = w->cap, .levels = w->levels,
				  .hash_seed = 0x5eed, .seed_set = true };
	struct gbuild_opts go = { 0 };
	struct clat_vct_entry vct = { .state = CLAT_FN_ACTIVE, .ifindex = LO };
	struct clat_mac_key mk = { .vlan = 0 };
	struct clat_mac_val mv = { .fn = FN };
	uint32_t fn = FN, lo = LO, key = clat_shadow_key(FN, 0, 0);
	uint64_t bat, live;
	struct gtables t;
	struct gmem g;
	char err[256];
	int rc;

	w->c = clat__open_and_load();
	if (!w->c)
		return -errno;
	maps_from_skel(w->c, &w->m);
	memcpy(mk.mac, VF_MAC, 6);
	if (bpf_map_update_elem(w->m.mac_fn, &mk, &mv, BPF_ANY) ||
	    bpf_map_update_elem(w->m.vct, &fn, &vct, BPF_ANY) ||
	    bpf_map_update_elem(w->m.vf_ports, &fn, &lo, BPF_ANY))
		return -errno;
	if (!guest)
		return 0;
	snprintf(w->mem, sizeof(w->mem), "%s/clat-bench-pkt.%d.mem", o->tmp, (int)getpid());
	cleanup_file(w->mem);
	unlink(w->mem);
	rc = gbuild_resolve(&ty, err, sizeof(err));
	/* Room for the segments the guest grows later (see grow_segments). */
	go.size = (gbuild_pages_needed(&ty, 1) * (w->segs > 1 ? 1 + w->segs : 1) + 16) *
		  CLAT_PAGE_SIZE;
	if (!rc)
		rc = gbuild_create(w->mem, &go, &ty, 1, &bat, err, sizeof(err));
	w->bat = bat;
	if (rc) {
		fprintf(stderr, "clat-bench: failed to build guest tables: %s\n", err);
		return rc;
	}
	w->levels = ty.levels;
	rc = gmem_open(w->mem, false, &g);
	if (rc)
		return rc;
	rc = gtables_load(&g, bat, &t, err, sizeof(err));
	if (!rc) {
		rc = shadow_install(&w->m, NULL, FN, w->mem, &g, &t, NULL, &live);
		gtables_free(&t);
	} else {
		fprintf(stderr, "clat-bench: failed to load guest tables: %s\n", err);
	}
	gmem_close(&g);
	w->mem_bytes = inner_memlock(w->m.ctxs, key) + inner_memlock(w->m.tiers, key) +
		       inner_memlock(w->m.dirty, key);
	return rc;
}

/* Flattened tiers of the literal design, blocks in order: page p's entries
 * at [p * C, p * C + C), as clat's shadow lays them out. */
static uint32_t lit_pages(uint32_t nblocks, uint32_t levels)
{
	uint64_t per = 1, pages = 0;
	uint32_t x;

	for (x = 0; x < levels; x++) {
		pages += (nblocks + per * ENTRIES - 1) / (per * ENTRIES);
		per *= ENTRIES;
	}
	return pages;
}

static int lit_fill(struct world *w, uint32_t nblocks)
{
	uint32_t npages = lit_pages(nblocks, w->levels), used = 1, b, x, page, idx;
	uint64_t *tiers = malloc((size_t)npages * ENTRIES * sizeof(*tiers));
	uint32_t *keys, n = npages * ENTRIES;
	int fd = bpf_map__fd(w->b->maps.lit_tiers), rc = 0;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	keys = malloc((size_t)n * sizeof(*keys));
	if (!tiers || !keys) {
		free(tiers);
		free(keys);
		return -ENOMEM;
	}
	for (x = 0; x < n; x++)
		tiers[x] = CLAT_TIER_NONE;
	for (b = 0; b < nblocks; b++) {
		uint32_t off[CLAT_MAX_LEVELS], q = b;

		for (x = w->levels; x-- > 0;) {
			off[x] = q % ENTRIES;
			q /= ENTRIES;
		}
		for (page = 0, x = 0; x + 1 < w->levels; x++) {
			idx = page * ENTRIES + off[x];
			if (tiers[idx] == CLAT_TIER_NONE)
				tiers[idx] = used++;
			page = tiers[idx];
		}
		tiers[page * ENTRIES + off[w->levels - 1]] = b;
	}
	for (x = 0; x < n; x++)
		keys[x] = x;
	if (bpf_map_update_batch(fd, keys, tiers, &n, &bo))
		rc = -errno;
	free(tiers);
	free(keys);
	return rc;
}

/* Grows w's guest by one segment of half its capacity so far, with the
 * library call behind clat-guest grow; *t gets the grown tables. */
static int grow_once(struct world *w, struct gmem *g, struct gtables *t)
{
	struct ggrow_result gr;
	char err[256];
	int rc = gtables_load(g, w->bat, t, err, sizeof(err));

	if (!rc) {
		rc = ggrow_capacity(g, t, 0, w->cap + w->cap / 2, w->cap, &gr, err, sizeof(err));
		gtables_free(t);
	}
	if (!rc) {
		w->cap = gr.capacity;
		w->levels = gr.levels;
		rc = gtables_load(g, w->bat, t, err, sizeof(err));
	}
	if (rc)
		fprintf(stderr, "clat-bench: failed to grow guest tables: %s\n", err);
	return rc;
}

/* The cost of segments: every connection is opened (one pass of the
 * working set) while the guest has one segment; it then grows segs - 1
 * times and is attached again from guest memory.  Lookups probe segments
 * newest first, so each finds the newer, empty segments before its
 * context in the oldest. */
static int grow_segments(struct world *w)
{
	uint64_t written, bytes, live;
	struct gtables t;
	struct gmem g;
	double ns;
	uint32_t k;
	int rc;

	w->mem_bytes = 0; /* memory is measured on the one-segment rows */
	rc = run_prog(prog_of(w, D_CLAT), w->conns, &ns);
	if (!rc)
		rc = shadow_sync(&w->m, FN, SYNC_ALL, &written, &bytes, NULL);
	if (!rc)
		rc = gmem_open(w->mem, true, &g);
	if (rc)
		return rc;
	for (k = 1; !rc && k < w->segs; k++) {
		rc = grow_once(w, &g, &t);
		if (!rc && k + 1 < w->segs)
			gtables_free(&t); /* the last one's tables are attached */
	}
	if (!rc) {
		rc = shadow_remove(&w->m, NULL, FN);
		if (!rc)
			rc = shadow_install(&w->m, NULL, FN, w->mem, &g, &t, NULL, &live);
		if (!rc && !live)
			rc = -EPROTO; /* the connections must come back from guest memory */
		gtables_free(&t);
	}
	gmem_close(&g);
	return rc;
}

int world_open(struct world *w, const struct pkt_case *pc, const struct bench_opts *o)
{
	struct clat_mac_key mk = { .vlan = 0 };
	struct clat_mac_val mv = { .fn = FN };
	struct clat_vct_entry vct = { .state = CLAT_FN_ACTIVE, .ifindex = LO };
	uint32_t fn = FN, lo = LO, nblocks, slot, i, n;
	struct bench_key *k;
	int rc, fd;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	memset(w, 0, sizeof(*w));
	w->conns = pc->conns;
	w->cap = capacity_for(pc->conns);
	w->levels = pc->levels ? pc->levels : levels_for(w->cap);
	w->segs = pc->segs ? pc->segs : 1;
	nblocks = (w->cap + PER_BLOCK - 1) / PER_BLOCK;
	w->b = bench__open();
	if (!w->b)
		return -errno;
	bpf_map__set_max_entries(w->b->maps.keys, w->conns);
	bpf_map__set_max_entries(w->b->maps.lru, w->cap);
	bpf_map__set_max_entries(w->b->maps.flow_svc, w->cap);
	bpf_map__set_max_entries(w->b->maps.lit_tiers, lit_pages(nblocks, w->levels) * ENTRIES);
	bpf_map__set_max_entries(w->b->maps.lit_ctxs, nblocks * PER_BLOCK);
	rc = bench__load(w->b);
	if (rc)
		return rc;
	w->b->data->nkeys = w->conns;
	w->b->bss->lit_capacity = w->cap;
	w->b->bss->lit_per_block = PER_BLOCK;
	w->b->bss->lit_entries = ENTRIES;
	w->b->bss->lit_levels = w->levels;

	k = calloc(w->conns, sizeof(*k));
	uint32_t *idx = calloc(w->conns, sizeof(*idx));
	if (!k || !idx) {
		free(k);
		free(idx);
		return -ENOMEM;
	}
	gen_keys(k, w->conns);
	for (i = 0; i < w->conns; i++)
		idx[i] = i;
	n = w->conns;
	rc = bpf_map_update_batch(bpf_map__fd(w->b->maps.keys), idx, k, &n, &bo) ? -errno : 0;
	free(k);
	free(idx);
	if (rc)
		return rc;

	memcpy(mk.mac, VF_MAC, 6);
	if (bpf_map_update_elem(bpf_map__fd(w->b->maps.p_mac), &mk, &mv, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(w->b->maps.p_vct), &fn, &vct, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(w->b->maps.p_ports), &fn, &lo, BPF_ANY))
		return -errno;

	fd = bpf_map__fd(w->b->maps.targets);
	slot = T_EMPTY;
	i = bpf_program__fd(w->b->progs.floor_pass);
	if (bpf_map_update_elem(fd, &slot, &i, BPF_ANY))
		return -errno;
	switch (pc->d) {
	case D_MAC_REDIRECT:
	case D_CLAT:
		rc = clat_open(w, o, pc->d == D_CLAT);
		if (rc)
			return rc;
		slot = T_CLAT_RX;
		i = bpf_program__fd(w->c->progs.clat_rx);
		break;
	case D_LRU:
		slot = T_LRU;
		i = bpf_program__fd(w->b->progs.peer_lru);
		w->mem_bytes = map_memlock(bpf_map__fd(w->b->maps.lru));
		break;
	case D_LITERAL:
		rc = lit_fill(w, nblocks);
		if (rc)
			return rc;
		slot = T_LITERAL;
		i = bpf_program__fd(w->b->progs.peer_literal);
		w->mem_bytes = map_memlock(bpf_map__fd(w->b->maps.flow_svc)) +
			       map_memlock(bpf_map__fd(w->b->maps.lit_tiers)) +
			       map_memlock(bpf_map__fd(w->b->maps.lit_ctxs));
		break;
	default:
		return 0;
	}
	if (bpf_map_update_elem(fd, &slot, &i, BPF_ANY))
		return -errno;
	w->b->bss->target = slot;
	return pc->d == D_CLAT && w->segs > 1 ? grow_segments(w) : 0;
}

/* A 60-byte UDP/IPv4 frame to the VF; drive fills in the addresses. */
static void frame(uint8_t *buf, uint32_t *len)
{
	memset(buf, 0, 64);
	memcpy(buf, VF_MAC, 6);
	memcpy(buf + 6, (uint8_t[]){ 0x02, 0xaa, 0, 0, 0, 9 }, 6);
	buf[12] = 0x08;
	buf[14] = 0x45;
	*(uint16_t *)(buf + 16) = htons(46);
	buf[22] = 64;
	buf[23] = IPPROTO_UDP;
	*(uint16_t *)(buf + 38) = htons(26);
	*len = 60;
}

/* ns per run of prog, as the kernel timed it over repeat runs. */
int run_prog(int prog, uint32_t repeat, double *ns)
{
	uint8_t buf[64];
	uint32_t len;
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = buf, .repeat = repeat);

	frame(buf, &len);
	t.data_size_in = len;
	if (bpf_prog_test_run_opts(prog, &t))
		return -errno;
	if (t.retval != XDP_REDIRECT && t.retval != XDP_PASS)
		return -EPROTO;
	*ns = t.duration;
	return 0;
}

int prog_of(struct world *w, enum design d)
{
	return bpf_program__fd(d == D_FLOOR ? w->b->progs.floor_pass : w->b->progs.drive);
}

struct result {
	const struct pkt_case *pc;
	uint32_t levels, cap;
	double ns[99];
	int n;
	uint64_t hits, misses, mem_bytes;
};

static uint64_t stat_hits(struct world *w)
{
	int ncpu = libbpf_num_possible_cpus(), c;
	struct clat_stats *v = calloc(ncpu, sizeof(*v));
	uint32_t fn = FN;
	uint64_t sum = 0;

	if (v && !bpf_map_lookup_elem(w->m.stats, &fn, v))
		for (c = 0; c < ncpu; c++)
			sum += v[c].slot[CLAT_STAT_CTX_HIT];
	free(v);
	return sum;
}

static int measure(struct world *w, const struct pkt_case *pc, const struct bench_opts *o,
		   struct result *r)
{
	uint32_t repeat = o->quick ? 20000 : 200000;
	uint64_t before[2] = { 0 };
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
		before[0] = stat_hits(w);
	memset(w->b->bss->cnt, 0, sizeof(w->b->bss->cnt));
	for (i = 0; i < o->runs; i++) {
		rc = run_prog(prog, repeat, &r->ns[i]);
		if (rc)
			return rc;
	}
	r->n = o->runs;
	r->levels = w->levels;
	r->cap = w->cap;
	r->mem_bytes = w->mem_bytes;
	if (pc->d == D_CLAT) {
		r->hits = stat_hits(w) - before[0];
		r->misses = (uint64_t)repeat * o->runs - r->hits;
	} else if (pc->d == D_LRU || pc->d == D_LITERAL) {
		r->hits = w->b->bss->cnt[CNT_HIT];
		r->misses = w->b->bss->cnt[CNT_INSERT] + w->b->bss->cnt[CNT_FAIL];
	}
	return 0;
}

/* The rows.  Hot-flow rows (1 connection) time the path itself; the
 * working-set rows spread it over live connections in random order; the
 * segment rows (a guest that grew) price each extra capacity segment. */
static const struct pkt_case full_cases[] = {
	{ D_FLOOR, 1, 0, 1 },   { D_WRAP, 1, 0, 1 },    { D_MAC_REDIRECT, 1, 0, 1 },
	{ D_CLAT, 1, 1, 1 },    { D_CLAT, 1, 2, 1 },    { D_CLAT, 1, 3, 1 },
	{ D_LRU, 1, 0, 1 },     { D_LITERAL, 1, 2, 1 },
	{ D_CLAT, 1024, 0, 1 }, { D_LRU, 1024, 0, 1 },  { D_LITERAL, 1024, 0, 1 },
	{ D_CLAT, 65536, 0, 1 }, { D_LRU, 65536, 0, 1 }, { D_LITERAL, 65536, 0, 1 },
	{ D_CLAT, 1 << 20, 0, 1 }, { D_LRU, 1 << 20, 0, 1 }, { D_LITERAL, 1 << 20, 0, 1 },
	{ D_CLAT, 1, 2, 2 }, { D_CLAT, 1, 2, 3 }, { D_CLAT, 1, 2, 4 },
	{ D_CLAT, 65536, 0, 2 }, { D_CLAT, 65536, 0, 4 },
};

/* QUICK: the same figures with a smaller largest working set. */
static const struct pkt_case quick_cases[] = {
	{ D_FLOOR, 1, 0, 1 },   { D_WRAP, 1, 0, 1 },    { D_MAC_REDIRECT, 1, 0, 1 },
	{ D_CLAT, 1, 1, 1 },    { D_CLAT, 1, 2, 1 },    { D_CLAT, 1, 3, 1 },
	{ D_LRU, 1, 0, 1 },     { D_LITERAL, 1, 2, 1 },
	{ D_CLAT, 1024, 0, 1 }, { D_LRU, 1024, 0, 1 },  { D_LITERAL, 1024, 0, 1 },
	{ D_CLAT, 16384, 0, 1 }, { D_LRU, 16384, 0, 1 }, { D_LITERAL, 16384, 0, 1 },
	{ D_CLAT, 1, 2, 2 }, { D_CLAT, 1, 2, 4 },
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
		    (conns > 1 || d != D_CLAT || r[i].levels == 2))
			return &r[i];
	return NULL;
}

int bench_pkt(const struct bench_opts *o)
{
	const struct pkt_case *cases = o->quick ? quick_cases : full_cases;
	int ncases = o->quick ? ARRAY_SIZE(quick_cases) : ARRAY_SIZE(full_cases);
	struct result *res = calloc(ncases, sizeof(*res));
	double floor_ns = 0, drv_ns = 0;
	struct world w;
	int i, j, rc = 0;

	if (!res)
		return -ENOMEM;
	libbpf_set_print(NULL);
	for (i = 0; i < ncases && !rc; i++) {
		fprintf(stderr, "bench pkt: %s, %u connections, levels %u, segments %u\n",
			design_name[cases[i].d], cases[i].conns, cases[i].levels,
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

	printf("{\"floor_ns\": %.3f, \"driver_ns\": %.3f, \"cases\": [\n", floor_ns, drv_ns);
	for (i = 0; i < ncases; i++) {
		const struct result *r = &res[i], *lru = find(res, ncases, D_LRU, cases[i].conns);
		double m = med(r->ns, r->n);

		printf("  {\"design\": \"%s\", \"conns\": %u, \"levels\": %u, \"segments\": %u, "
		       "\"capacity\": %u, ", design_name[cases[i].d], cases[i].conns,
		       cases[i].d == D_CLAT || cases[i].d == D_LITERAL ? r->levels : 0,
		       cases[i].segs ? cases[i].segs : 1, r->cap);
		json_stat(stdout, "ns", res[i].ns, r->n);
		printf(", \"mpps\": %.3f, \"x_floor\": %.3f", m > 0 ? 1000.0 / m : 0, m / floor_ns);
		if (lru && cases[i].d >= D_CLAT)
			printf(", \"x_lru\": %.3f", m / med(lru->ns, lru->n));
		if (r->hits + r->misses)
			printf(", \"hit_ratio\": %.4f", (double)r->hits / (r->hits + r->misses));
		if (r->mem_bytes && cases[i].conns > 1)
			printf(", \"bytes_per_conn\": %.1f", (double)r->mem_bytes / cases[i].conns);
		printf("}%s\n", i + 1 < ncases ? "," : "");
	}
	printf("]}\n");
	free(res);
	return 0;
}
