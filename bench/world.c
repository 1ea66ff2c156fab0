// SPDX-License-Identifier: GPL-2.0
/* The per-packet test world shared by pkt.c and mig.c (see world.h).
 *
 * clat's maps are filled the way `clat-load attach` and `guest attach` do:
 * the pool is sized before load by lib/dp_env.c (the skeleton's own
 * placeholder holds 32 contexts), the clock set, the VCT written through
 * its module (vct.h), gbuild tables written to a guest memory file,
 * validated by gtables_load and shadowed by shadow_install. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench_abi.h"
#include "lib/dp_env.h"
#include "lib/frames.h"
#include "vct.h"
#include "gbuild.h"
#include "ggrow.h"
#include "gtables.h"
#include "shadow.h"
#include "world.h"

/* Extra connections, past the working set, that open a flow in each new
 * segment of a grown guest (so no segment is drained and folded). */
#define SEG_KEYS CLAT_MAX_SEGMENTS

static uint32_t capacity_for(uint32_t conns, uint32_t pct)
{
	uint64_t c = (uint64_t)conns * (pct ? pct : 150) / 100;

	return conns < 2048 ? 4096 : (uint32_t)c;
}

/* Levels of the literal peer's walk (and of the guest tables gbuild picks). */
static uint32_t levels_for(uint32_t cap)
{
	uint64_t c = PER_BLOCK;
	uint32_t l;

	for (l = 1; l < CLAT_MAX_LEVELS; l++, c *= ENTRIES)
		if (c * ENTRIES >= cap)
			break;
	return l;
}

/* fn ACTIVE on lo with VF_MAC, through the VCT module as `clat-load
 * attach` makes it (vf_ports and flood_ports follow the state). */
static int fn_up(const struct clat_maps *m)
{
	struct clat_mac_key mk = { .vlan = 0 };
	struct clat_mac_val mv = { .fn = FN };
	int rc;

	rc = vct_set_ifindex(m, FN, LO);
	if (!rc)
		rc = vct_set_state(m, FN, CLAT_FN_ACTIVE);
	memcpy(mk.mac, VF_MAC, 6);
	if (!rc && bpf_map_update_elem(m->mac_fn, &mk, &mv, BPF_ANY))
		rc = -errno;
	return rc;
}

void world_close(struct world *w)
{
	bench__destroy(w->b);
	clat__destroy(w->c);
	if (w->mem[0])
		unlink(w->mem);
	memset(w, 0, sizeof(*w));
}

/* Device bytes fn's contexts take: its extents (128-byte contexts, a
 * 64-byte tag line and a dirty bit per bucket). */
static uint64_t extent_bytes(struct world *w, uint32_t fn)
{
	struct clat_fn_desc d;
	uint64_t nb = 0;
	uint32_t t, k;

	if (bpf_map_lookup_elem(w->m.fn_desc, &fn, &d))
		return 0;
	for (t = 0; t < CLAT_MAX_TYPES; t++)
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++)
			if (d.type[t].seg_state & (1U << k))
				nb += d.type[t].seg[k].nbuckets;
	return nb * (CLAT_BUCKET_SLOTS * sizeof(struct clat_ctx) + sizeof(struct clat_bucket)) +
	       nb / 8;
}

/* Contexts the pool needs: every fn's segments, each rounded to buckets. */
static uint64_t pool_for(uint32_t cap, uint32_t segs, uint32_t nfns)
{
	uint64_t c = cap, total = cap;
	uint32_t k;

	for (k = 1; k < segs; k++) {
		total += c / 2 + CLAT_BUCKET_SLOTS;
		c += c / 2;
	}
	total = (total + CLAT_BUCKET_SLOTS * CLAT_MAX_SEGMENTS) * (nfns ? nfns : 1);
	return (total + 2047) / 2048 * 2048;
}

/* clat with a guest (or none: mac_redirect) of capacity w->cap. */
static int clat_open(struct world *w, const struct pkt_case *pc, const struct bench_opts *o,
		     bool guest)
{
	struct gbuild_type ty = { .name = "conn", .ctx_size = sizeof(struct clat_ctx),
				  .block_size = 4096, .services = w->cap,
				  .hash_seed = 0x5eed, .seed_set = true };
	struct gbuild_opts go = { 0 };
	uint64_t bat = 0;
	char err[256];
	int rc;

	w->pool_contexts = guest ? pool_for(w->cap, w->segs, pc->nfns) : CLAT_BUCKET_SLOTS * 64;
	w->c = dp_load_sized(w->pool_contexts, NULL);
	if (!w->c)
		return -errno;
	maps_from_skel(w->c, &w->m);
	rc = fn_up(&w->m);
	if (rc || !guest)
		return rc;
	snprintf(w->mem, sizeof(w->mem), "%s/clat-bench-pkt.%d.mem", o->tmp, (int)getpid());
	cleanup_file(w->mem);
	rc = gbuild_resolve(&ty, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "clat-bench: failed to build guest tables: %s\n", err);
		return rc;
	}
	/* Room for the segments the guest grows later (see grow_segments). */
	go.size = (gbuild_pages_needed(&ty, 1) * (w->segs > 1 ? 1 + w->segs : 1) + 16) *
		  CLAT_PAGE_SIZE;
	rc = dp_guest_file(&w->m, FN, w->mem, &ty, &go, &bat);
	w->bat = bat;
	w->levels = ty.levels;
	w->mem_bytes = extent_bytes(w, FN);
	return rc;
}

/* Flattened tiers of the literal design, blocks in order: page p's entries
 * at [p * C, p * C + C). */
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
	uint32_t *tiers = malloc((size_t)npages * ENTRIES * sizeof(*tiers));
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

/* Opens connection `key` of the keys map (past the working set) with one
 * frame, then puts the driver back on the working set. */
static int open_extra(struct world *w, uint32_t key)
{
	uint32_t nkeys = w->b->data->nkeys;
	double ns;
	int rc;

	w->b->data->nkeys = key + 1;
	w->b->bss->seq = key;
	rc = run_prog(prog_of(w, D_CLAT), 1, &ns);
	w->b->data->nkeys = nkeys;
	w->b->bss->seq = 0;
	return rc;
}

/* The cost of segments: every connection of the working set is opened
 * while the guest has one segment; it then grows segs - 1 times, and is
 * attached again from guest memory after each growth, when one more
 * connection opens in the new segment (a segment with no live context
 * would be folded away, and cost nothing).  Lookups probe segments newest
 * first, so each finds segs - 1 newer segments before its context in the
 * oldest. */
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
	for (k = 1; !rc && k < w->segs; k++) {
		rc = shadow_sync(&w->m, FN, SYNC_ALL, &written, &bytes, NULL);
		if (!rc)
			rc = gmem_open(w->mem, true, &g);
		if (rc)
			break;
		rc = grow_once(w, &g, &t);
		if (!rc) {
			rc = shadow_remove(&w->m, NULL, FN);
			if (!rc)
				rc = shadow_install(&w->m, NULL, FN, w->mem, &g, &t, &live);
			if (!rc && live < w->conns)
				rc = -EPROTO; /* the connections must come back from guest memory */
			gtables_free(&t);
		}
		gmem_close(&g);
		if (!rc)
			rc = open_extra(w, w->conns + k - 1);
	}
	return rc;
}

int world_open(struct world *w, const struct pkt_case *pc, const struct bench_opts *o)
{
	struct clat_maps bm = { .lock_fd = -1, .prog_flood = -1 };
	uint32_t nblocks, slot, i, n, nk;
	bool lru = pc->d == D_LRU, lit = pc->d == D_LITERAL;
	struct bench_key *k;
	uint32_t *idx;
	int rc, fd;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	memset(w, 0, sizeof(*w));
	w->conns = pc->conns;
	w->cap = capacity_for(pc->conns, pc->cap_pct);
	w->levels = levels_for(w->cap);
	w->segs = pc->segs ? pc->segs : 1;
	nblocks = (w->cap + PER_BLOCK - 1) / PER_BLOCK;
	nk = w->conns + SEG_KEYS;
	w->b = bench__open();
	if (!w->b)
		return -errno;
	/* Only the design under test gets its tables at full size. */
	bpf_map__set_max_entries(w->b->maps.keys, nk);
	bpf_map__set_max_entries(w->b->maps.lru, lru ? w->cap : 1);
	bpf_map__set_max_entries(w->b->maps.flow_svc, lit ? w->cap : 1);
	bpf_map__set_max_entries(w->b->maps.lit_tiers,
				 lit ? lit_pages(nblocks, w->levels) * ENTRIES : 1);
	bpf_map__set_max_entries(w->b->maps.lit_ctxs, lit ? nblocks * PER_BLOCK : 1);
	rc = bench__load(w->b);
	if (rc)
		return rc;
	w->b->data->nkeys = w->conns;
	w->b->bss->lit_capacity = w->cap;
	w->b->bss->lit_per_block = PER_BLOCK;
	w->b->bss->lit_entries = ENTRIES;
	w->b->bss->lit_levels = w->levels;

	k = calloc(nk, sizeof(*k));
	idx = calloc(nk, sizeof(*idx));
	if (!k || !idx) {
		free(k);
		free(idx);
		return -ENOMEM;
	}
	gen_keys(k, nk);
	for (i = 0; i < nk; i++)
		idx[i] = i;
	n = nk;
	rc = bpf_map_update_batch(bpf_map__fd(w->b->maps.keys), idx, k, &n, &bo) ? -errno : 0;
	free(k);
	free(idx);
	if (rc)
		return rc;

	/* The peers' dispatch maps (bpf/maps.h's, in the bench object). */
	bm.pf_clock = bpf_map__fd(w->b->maps.pf_clock);
	bm.mac_fn = bpf_map__fd(w->b->maps.mac_fn);
	bm.vct = bpf_map__fd(w->b->maps.vct);
	bm.vf_ports = bpf_map__fd(w->b->maps.vf_ports);
	bm.flood_ports = bpf_map__fd(w->b->maps.flood_ports);
	rc = fn_up(&bm);
	if (!rc)
		rc = clock_refresh(&bm);
	if (rc)
		return rc;

	fd = bpf_map__fd(w->b->maps.targets);
	slot = T_EMPTY;
	i = bpf_program__fd(w->b->progs.floor_pass);
	if (bpf_map_update_elem(fd, &slot, &i, BPF_ANY))
		return -errno;
	switch (pc->d) {
	case D_MAC_REDIRECT:
	case D_CLAT:
		rc = clat_open(w, pc, o, pc->d == D_CLAT);
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

int run_prog(int prog, uint32_t repeat, double *ns)
{
	struct frame f = { .len = 0 };
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = f.buf, .repeat = repeat);

	/* A 60-byte UDP/IPv4 frame to the VF; drive fills in the addresses. */
	frame_eth(&f, VF_MAC, MAC_WIRE, 0, NULL, 0x0800);
	frame_ipv4(&f, IPPROTO_UDP, 0, 0, 8 + 18, 0, 0);
	frame_udp(&f, 0, 0, 18);
	frame_fill(&f, 0, 18);
	t.data_size_in = f.len;
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
