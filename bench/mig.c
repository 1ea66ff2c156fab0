// SPDX-License-Identifier: GPL-2.0
/* Migration and rebuild, device side.
 *
 * clat: N live contexts (opened by driving N frames through clat_rx) move
 * from fn 1 to fn 2 with the library calls `clat-load migrate` makes:
 * pre-copy (full write-back, then a dirty round) while traffic runs, the
 * destination's validate + build (into STAGED pool extents: no map is
 * created, no RCU wait) before the pause, then the switchover window:
 * quiesce fn 1, copy its last dirty blocks, reload them in the staged
 * extents, commit (fn_desc, VCT[2].bat_gpa) and move the MAC.  The 2 ms that
 * migrate-out waits for frames already in flight is left out (a constant).
 * Both fns live in one loaded program: the device-side work is the same,
 * and guest memory is one file, as after the VMM's RAM copy.
 *
 * Baseline, "device register copy": the same N records in an LRU hash
 * keyed by flow (the peer design), dumped and inserted into a fresh map
 * through bpf syscalls, one entry at a time and batched.  Per-connection
 * device state is not dirty-tracked, so the whole copy falls in the pause.
 *
 * Rebuild: `guest attach` is validate + build + commit; its rate is N over
 * that time, taken from the destination's side of each run.  The pool is
 * sized for both fns at once, as a PF that receives a migration must be. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "world.h"
#include "gtables.h"
#include "shadow.h"
#include "vct.h"

#define FN_DST 2
#define DIRTY_FRAMES 1000 /* frames of traffic during each pre-copy round */
#define BATCH 4096

struct mig_run {
	double precopy_ms, prepare_ms, switch_ms, release_ms, total_ms;
	double stop_copy_ms, reload_ms; /* parts of the switchover */
	double rebuild_ms, build_ms, commit_ms;
	double copy1_ms, copyb_ms;
	uint64_t delta_blocks, contexts;
};

static double ms_since(uint64_t t0)
{
	return (now_ns() - t0) / 1e6;
}

static int traffic(struct world *w, uint32_t frames)
{
	double ns;

	return run_prog(prog_of(w, D_CLAT), frames, &ns);
}

/* clat_migrate's work, on the source's open write-back. */
static int migrate_with(struct world *w, struct mig_run *r, struct shadow_writeback *wb,
			uint64_t bat, uint64_t t0)
{
	struct clat_mac_key mk = { .vlan = 0 };
	struct clat_mac_val mv = { .fn = FN_DST };
	struct gpa_list delta = { 0 };
	struct shadow_stage st;
	uint64_t written, bytes, reloaded, t1, t2;
	struct gtables t;
	struct gmem g;
	char err[256];
	int rc;

	memcpy(mk.mac, VF_MAC, 6);
	rc = shadow_writeback_round(wb, SYNC_ALL_CLEAR, &written, &bytes, NULL);
	if (!rc)
		rc = traffic(w, DIRTY_FRAMES);
	if (!rc)
		rc = shadow_writeback_round(wb, SYNC_DIRTY, &written, &bytes, NULL);
	if (!rc)
		rc = traffic(w, DIRTY_FRAMES);
	if (rc)
		return rc;
	r->precopy_ms = ms_since(t0);
	/* Destination, before the pause: validate, build. */
	t1 = now_ns();
	rc = gmem_open(w->mem, false, &g);
	if (rc)
		return rc;
	rc = gtables_load(&g, bat, &t, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "clat-bench: failed to load guest tables: %s\n", err);
		gmem_close(&g);
		return rc;
	}
	rc = shadow_stage_build(&st, &w->m, FN_DST, w->mem, &g, &t);
	r->build_ms = ms_since(t1);
	r->prepare_ms = ms_since(t1);
	r->contexts = st.live;
	/* The switchover window. */
	t1 = now_ns();
	if (!rc)
		rc = vct_set_state(&w->m, FN, CLAT_FN_QUIESCED);
	t2 = now_ns();
	if (!rc)
		rc = shadow_writeback_round(wb, SYNC_DIRTY, &written, &bytes, &delta);
	r->stop_copy_ms = ms_since(t2);
	t2 = now_ns();
	if (!rc)
		rc = shadow_stage_reload(&st, &g, &t, delta.gpa, delta.n, &reloaded);
	r->reload_ms = ms_since(t2);
	t2 = now_ns();
	if (!rc)
		rc = shadow_stage_commit(&st, NULL);
	r->commit_ms = ms_since(t2);
	if (!rc && bpf_map_update_elem(w->m.mac_fn, &mk, &mv, BPF_ANY))
		rc = -errno;
	r->switch_ms = ms_since(t1);
	r->delta_blocks = delta.n;
	/* guest attach = validate + build + commit (the commit is in the
	 * window above, and costs the same). */
	r->rebuild_ms = r->prepare_ms + r->commit_ms;
	t1 = now_ns();
	if (!rc)
		rc = shadow_remove(&w->m, NULL, FN);
	r->release_ms = ms_since(t1);
	r->total_ms = ms_since(t0);
	shadow_stage_free(&st);
	gtables_free(&t);
	gmem_close(&g);
	gpa_list_free(&delta);
	return rc;
}

static int clat_migrate(struct world *w, struct mig_run *r)
{
	uint32_t fn = FN;
	struct shadow_writeback wb;
	struct clat_guest_info gi;
	uint64_t t0;
	int rc;

	if (bpf_map_lookup_elem(w->m.guests, &fn, &gi))
		return -errno;
	/* The destination fn, ACTIVE on lo as attach makes it. */
	rc = vct_set_ifindex(&w->m, FN_DST, LO);
	if (!rc)
		rc = vct_set_state(&w->m, FN_DST, CLAT_FN_ACTIVE);
	if (rc)
		return rc;
	t0 = now_ns();
	/* PRE_COPY, while traffic runs; the write-back validates the tables
	 * once, as migrate-out's does. */
	rc = shadow_writeback_open(&w->m, FN, &wb);
	if (rc)
		return rc;
	rc = migrate_with(w, r, &wb, gi.bat_gpa, t0);
	shadow_writeback_close(&wb);
	return rc;
}

/* The baseline: n flow-keyed records in an LRU hash, copied to another. */
static int register_copy(struct world *w, struct mig_run *r)
{
	struct shadow_view sv;
	uint32_t i, k, n = 0, cap = w->cap;
	int src, dst1, dstb, rc = 0;
	struct clat_flow_key *keys = malloc((size_t)BATCH * sizeof(*keys));
	struct clat_ctx *vals = malloc((size_t)BATCH * sizeof(*vals));
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	uint64_t t0;

	src = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "bench_src", sizeof(*keys), sizeof(*vals), cap, NULL);
	dst1 = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "bench_dst1", sizeof(*keys), sizeof(*vals), cap, NULL);
	dstb = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "bench_dstb", sizeof(*keys), sizeof(*vals), cap, NULL);
	if (src < 0 || dst1 < 0 || dstb < 0 || !keys || !vals) {
		rc = -ENOMEM;
		goto out;
	}
	/* The same records clat holds, keyed by their flows. */
	rc = shadow_view_open(&w->m, FN_DST, 0, &sv);
	if (rc)
		goto out;
	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		if (!(sv.live & (1U << k)))
			continue;
		for (i = 0; i < sv.seg[k].n; i++) {
			const struct clat_ctx *c = &sv.seg[k].ctx[i];

			if ((c->state_word & CLAT_SLOT_STATE_MASK) != CLAT_SLOT_LIVE)
				continue;
			if (bpf_map_update_elem(src, &c->key, c, BPF_NOEXIST) == 0)
				n++;
		}
	}
	shadow_view_close(&sv);

	/* One entry at a time: next key, lookup, insert. */
	t0 = now_ns();
	{
		struct clat_flow_key k, *prev = NULL;
		struct clat_ctx c;

		while (bpf_map_get_next_key(src, prev, &k) == 0) {
			if (bpf_map_lookup_elem(src, &k, &c) || bpf_map_update_elem(dst1, &k, &c, BPF_ANY)) {
				rc = -errno;
				goto out;
			}
			prev = &keys[0];
			keys[0] = k;
		}
	}
	r->copy1_ms = ms_since(t0);

	/* Batched: BATCH entries per lookup and per update syscall. */
	t0 = now_ns();
	{
		uint64_t in = 0, out;
		bool first = true;

		for (;;) {
			uint32_t cnt = BATCH;
			int e = bpf_map_lookup_batch(src, first ? NULL : &in, &out, keys, vals, &cnt, &bo);

			e = e ? -errno : 0;
			if (e && e != -ENOENT) {
				rc = e;
				goto out;
			}
			if (cnt && bpf_map_update_batch(dstb, keys, vals, &cnt, &bo)) {
				rc = -errno;
				goto out;
			}
			if (e == -ENOENT)
				break;
			in = out;
			first = false;
		}
	}
	r->copyb_ms = ms_since(t0);
	if (r->contexts != n)
		fprintf(stderr, "clat-bench: %u records in the baseline, %llu contexts moved\n", n,
			(unsigned long long)r->contexts);
out:
	free(keys);
	free(vals);
	if (src >= 0)
		close(src);
	if (dst1 >= 0)
		close(dst1);
	if (dstb >= 0)
		close(dstb);
	return rc;
}

static void stat_out(const char *key, struct mig_run *runs, int n, size_t off, bool last)
{
	double v[99];

	for (int i = 0; i < n; i++)
		v[i] = *(double *)((char *)&runs[i] + off);
	json_stat(stdout, key, v, n);
	printf("%s", last ? "" : ", ");
}

#define F(x) offsetof(struct mig_run, x)

int bench_mig(const struct bench_opts *o)
{
	static const uint32_t full[] = { 1024, 65536, 1 << 20 }, quick[] = { 1024, 16384 };
	const uint32_t *sizes = o->quick ? quick : full;
	int nsizes = o->quick ? 2 : 3, runs = o->runs > 5 ? 5 : o->runs, s, i, rc = 0;
	struct mig_run r[5];

	libbpf_set_print(NULL);
	printf("{\"sizes\": [\n");
	for (s = 0; s < nsizes && !rc; s++) {
		struct pkt_case pc = { D_CLAT, sizes[s], 150, 1, 2 };
		struct world w;
		double ns;

		memset(r, 0, sizeof(r));
		for (i = 0; i < runs && !rc; i++) {
			fprintf(stderr, "bench mig: %u contexts, run %d\n", sizes[s], i + 1);
			rc = world_open(&w, &pc, o);
			/* One pass over the working set opens every connection. */
			if (!rc)
				rc = run_prog(prog_of(&w, D_CLAT), sizes[s], &ns);
			if (!rc)
				rc = clat_migrate(&w, &r[i]);
			if (!rc)
				rc = register_copy(&w, &r[i]);
			if (rc)
				fprintf(stderr, "clat-bench: failed to migrate %u contexts: %s\n", sizes[s],
					strerror(-rc));
			world_close(&w);
		}
		if (rc)
			break;
		printf("  {\"conns\": %u, \"contexts\": %llu, \"delta_blocks\": %llu, "
		       "\"dirty_frames\": %d, ", sizes[s], (unsigned long long)r[0].contexts,
		       (unsigned long long)r[0].delta_blocks, DIRTY_FRAMES);
		stat_out("precopy_ms", r, runs, F(precopy_ms), false);
		stat_out("prepare_ms", r, runs, F(prepare_ms), false);
		stat_out("switchover_ms", r, runs, F(switch_ms), false);
		stat_out("stop_copy_ms", r, runs, F(stop_copy_ms), false);
		stat_out("reload_ms", r, runs, F(reload_ms), false);
		stat_out("release_ms", r, runs, F(release_ms), false);
		stat_out("total_ms", r, runs, F(total_ms), false);
		stat_out("build_ms", r, runs, F(build_ms), false);
		stat_out("commit_ms", r, runs, F(commit_ms), false);
		stat_out("rebuild_ms", r, runs, F(rebuild_ms), false);
		stat_out("copy_one_ms", r, runs, F(copy1_ms), false);
		stat_out("copy_batch_ms", r, runs, F(copyb_ms), false);
		{
			double v[5];

			for (i = 0; i < runs; i++)
				v[i] = r[i].contexts / (r[i].rebuild_ms / 1e3);
			json_stat(stdout, "rebuild_ctx_per_s", v, runs);
		}
		printf("}%s\n", s + 1 < nsizes ? "," : "");
	}
	printf("]}\n");
	return rc;
}
