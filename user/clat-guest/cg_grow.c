// SPDX-License-Identifier: GPL-2.0
/* clat-guest grow and add-type: change live tables like a driver, one new
 * generation each; live contexts never move. */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cg.h"
#include "common.h"
#include "gbuild.h"
#include "ggrow.h"
#include "json.h"

static void grow_report(const struct invocation *inv, const char *what,
			const struct ggrow_result *r)
{
	struct json j;

	if (!has_opt(inv, G_JSON)) {
		printf("%s type %u: capacity %u -> %u, levels %u -> %u, segment [%u, %" PRIu64 "], "
		       "%u new pages, %u new blocks, generation %u\n", what, r->type,
		       r->old_capacity, r->capacity, r->old_levels, r->levels, r->seg.base + 1,
		       (uint64_t)r->seg.base + r->seg.size, r->new_pages, r->new_blocks,
		       r->generation);
		return;
	}
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_u64(&j, "type", r->type);
	json_u64(&j, "old_capacity", r->old_capacity);
	json_u64(&j, "capacity", r->capacity);
	json_u64(&j, "old_levels", r->old_levels);
	json_u64(&j, "levels", r->levels);
	json_u64(&j, "clat_gpa", r->clat_gpa);
	json_obj_open(&j, "segment");
	json_u64(&j, "first_svc", (uint64_t)r->seg.base + 1);
	json_u64(&j, "last_svc", (uint64_t)r->seg.base + r->seg.size);
	json_obj_close(&j);
	json_u64(&j, "new_pages", r->new_pages);
	json_u64(&j, "new_blocks", r->new_blocks);
	json_u64(&j, "generation", r->generation);
	json_obj_close(&j);
	json_end(&j);
}

/* The placement seed: --layout-seed, or else a fresh one each time. */
static uint64_t layout_seed(const struct invocation *inv)
{
	struct timespec ts;

	if (has_opt(inv, G_LAYOUT_SEED))
		return opt_u64(inv, G_LAYOUT_SEED);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
}

static int grow_type(const struct invocation *inv, struct gmem *g, const struct gtables *t,
		     const struct gtype *gt, void *arg)
{
	struct ggrow_result r;
	char err[512];
	int ret;

	ret = ggrow_capacity(g, t, gt->index, opt_u32(inv, G_CAPACITY), *(uint64_t *)arg, &r, err,
			     sizeof(err));
	if (ret)
		pr_err("failed to grow type %u (%s) in %s: %s", gt->index, gt->e.name,
		       inv->opt[G_MEM], err);
	else
		grow_report(inv, "grew", &r);
	return ret == -EINVAL ? -EUSAGE : ret;
}

int cg_grow(const struct invocation *inv)
{
	uint64_t seed = layout_seed(inv);

	return cg_on_type(inv, true, grow_type, &seed);
}

int cg_add_type(const struct invocation *inv)
{
	struct gbuild_type ty;
	struct ggrow_result r;
	struct gtables t;
	struct gmem g;
	uint64_t seed;
	char err[512];
	int ret = 0;

	if (inv->nrep != 1) {
		pr_err("add-type: exactly one --type NAME:ctx=A,block=B,services=S[,...] is required");
		return -EUSAGE;
	}
	if (gbuild_parse_type(inv->rep[0], &ty, err, sizeof(err)) ||
	    gbuild_resolve(&ty, err, sizeof(err))) {
		pr_err("invalid --type '%s': %s", inv->rep[0], err);
		return -EUSAGE;
	}
	seed = layout_seed(inv);
	ret = cg_open_tables(inv, true, &g, &t);
	if (ret)
		return ret;
	ret = ggrow_add_type(&g, &t, &ty, seed, &r, err, sizeof(err));
	if (ret)
		pr_err("failed to add type '%s' in %s: %s", ty.name, inv->opt[G_MEM], err);
	else
		grow_report(inv, "added", &r);
	gtables_free(&t);
	gmem_close(&g);
	return ret == -EINVAL ? -EUSAGE : ret;
}

