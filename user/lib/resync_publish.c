// SPDX-License-Identifier: GPL-2.0
/* The last step of a resync: each prepared type's change made visible
 * (BAT entry, new segments, then live), the pages it claimed then owned,
 * the generation last; or, on failure, its staged extents freed. */
#include "resync_publish.h"
#include "pool.h"
#include "vct.h"

#include <errno.h>
#include <unistd.h>
#include <bpf/bpf.h>

void resync_free_staged(const struct clat_maps *m, uint32_t fn, const struct type_change *tc)
{
	struct clat_extent e;
	uint32_t k, key;

	if (tc->published || !tc->tried || pool_lock(m))
		return;
	for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
		key = clat_extent_key(fn, tc->gt.index, k);
		if ((tc->tried & (1U << k)) && !bpf_map_lookup_elem(m->pool_alloc, &key, &e) &&
		    e.state == CLAT_EXTENT_STAGED && e.owner_pid == (uint32_t)getpid())
			pool_free(m, key);
	}
	pool_unlock(m);
}

static int desc_type_update(const struct clat_maps *m, uint32_t fn, uint32_t t,
			    const struct clat_type_desc *td)
{
	struct clat_fn_desc d;

	if (bpf_map_lookup_elem(m->fn_desc, &fn, &d))
		return -errno;
	d.type[t] = *td;
	return bpf_map_update_elem(m->fn_desc, &fn, &d, BPF_ANY) ? -errno : 0;
}

/* Makes one type's change visible: its BAT entry first, then the new
 * segments' entries with seg_state unchanged (and, for a new type, still
 * no protocols: proto_mask is what makes a type visible), then the store
 * that makes them live.  On failure the old entry and descriptor are put
 * back. */
static int publish_type(const struct clat_maps *m, uint32_t fn, struct type_change *tc)
{
	const struct clat_bat_entry *e = &tc->gt.e;
	uint32_t t = tc->gt.index, key = fn * CLAT_MAX_TYPES + t, k, bits = 0;
	struct clat_type_desc old_td, td;
	struct clat_fn_desc d;
	int err;

	if (bpf_map_lookup_elem(m->fn_desc, &fn, &d))
		return -errno;
	old_td = d.type[t];
	if (bpf_map_update_elem(m->guest_types, &key, e, BPF_ANY))
		return -errno;
	td = old_td;
	for (k = tc->first_new; k < e->nsegs; k++) {
		td.seg[k] = tc->seg[k];
		bits |= 1U << k;
	}
	if (tc->added) {
		td.hash_seed = e->hash_seed;
		td.proto_mask = 0;
		td.seg_state = 0;
	}
	err = desc_type_update(m, fn, t, &td);
	if (!err) {
		/* Re-read: a fold may have taken an old segment off meanwhile. */
		if (bpf_map_lookup_elem(m->fn_desc, &fn, &d)) {
			err = -errno;
		} else {
			td = d.type[t];
			td.seg_state = (td.seg_state & CLAT_SEG_LIVE_MASK & ~bits) | bits |
				       (uint32_t)(e->nsegs - 1) << CLAT_SEG_NEWEST_SHIFT;
			td.proto_mask = e->proto_mask;
			err = desc_type_update(m, fn, t, &td);
		}
	}
	if (err) {
		desc_type_update(m, fn, t, &old_td);
		bpf_map_update_elem(m->guest_types, &key, &tc->old, BPF_ANY);
		return err;
	}
	tc->published = true;
	/* A failure here leaves the extent STAGED: the next reclaim after this
	 * process exits finds it named by fn_desc and marks it LIVE. */
	for (k = tc->first_new; k < e->nsegs; k++) {
		int e2 = pool_set_live(m, clat_extent_key(fn, t, k));

		if (e2 && !err)
			err = e2;
	}
	return err;
}

int resync_publish(const struct clat_maps *m, uint32_t fn, struct type_change *tc, uint32_t n,
		   const struct shadow_owned *owned, struct clat_guest_info *gi, uint32_t ntypes,
		   uint32_t gen)
{
	uint32_t i;
	size_t j;
	int err = 0;

	for (i = 0; !err && i < n; i++) {
		if (!tc[i].active)
			continue;
		err = publish_type(m, fn, &tc[i]);
		if (!tc[i].published)
			break;
		for (j = 0; j < tc[i].nclaims; j++) {
			uint64_t pfn, end = (tc[i].claims[j].gpa + tc[i].claims[j].len) >> PAGE_SHIFT;

			for (pfn = tc[i].claims[j].gpa >> PAGE_SHIFT; pfn < end; pfn++)
				if (pfn / 64 < owned->words)
					__atomic_fetch_or(&owned->bits[pfn / 64], 1ULL << (pfn % 64),
							  __ATOMIC_RELAXED);
		}
	}
	if (err)
		return err;
	gi->generation = gen;
	gi->ntypes = ntypes;
	if (bpf_map_update_elem(m->guests, &fn, gi, BPF_ANY))
		return -errno;
	return vct_set_generation(m, fn, gen);
}
