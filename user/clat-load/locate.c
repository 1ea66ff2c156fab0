// SPDX-License-Identifier: GPL-2.0
/* clat-load locate: where service number S lives, by the offset arithmetic
 * alone (clat_locate(), the same function the datapath runs).  Needs no
 * tables and no privileges: it answers "which entry at each CLAT level, which
 * element of the block" for a given geometry, as in the patent's examples. */
#include <inttypes.h>

#include "cli.h"
#include "common.h"
#include "json.h"

struct locate_args {
	uint32_t svc, ctx_size, block_size, levels, clat_entries;
};

static int locate_args(const struct invocation *inv, struct locate_args *a)
{
	uint64_t cap;
	uint32_t x;

	/* Required, typed and parsed (sizes with K/M/G) by the engine; the
	 * geometry's own rules below. */
	a->svc = opt_u32(inv, OPT_SVC);
	a->ctx_size = opt_u32(inv, OPT_CTX_SIZE);
	a->block_size = opt_u32(inv, OPT_BLOCK_SIZE);
	a->levels = opt_u32(inv, OPT_LEVELS);
	a->clat_entries = opt_u32_or(inv, OPT_CLAT_ENTRIES, CLAT_MAX_CLAT_ENTRIES);
	if (!a->ctx_size || !a->block_size || a->block_size % a->ctx_size) {
		pr_err("invalid --ctx-size %u: must be non-zero and divide --block-size %u",
		       a->ctx_size, a->block_size);
		return -EUSAGE;
	}
	if (a->levels < 1 || a->levels > CLAT_MAX_LEVELS) {
		pr_err("invalid --levels %u: expected 1..%u", a->levels, CLAT_MAX_LEVELS);
		return -EUSAGE;
	}
	if (a->clat_entries < 1 || a->clat_entries > CLAT_MAX_CLAT_ENTRIES) {
		pr_err("invalid --clat-entries %u: expected 1..%u", a->clat_entries,
		       CLAT_MAX_CLAT_ENTRIES);
		return -EUSAGE;
	}
	/* P * C^N can pass 2^64 (P up to 2^32, C^N up to 2^36): saturate. */
	cap = a->block_size / a->ctx_size;
	for (x = 0; x < a->levels; x++)
		cap = cap > UINT64_MAX / a->clat_entries ? UINT64_MAX : cap * a->clat_entries;
	if (a->svc < 1 || a->svc > cap) {
		pr_err("invalid --svc %u: %u level(s) of %u entries with %u contexts per block "
		       "hold services 1..%" PRIu64, a->svc, a->levels, a->clat_entries,
		       a->block_size / a->ctx_size, cap);
		return -EUSAGE;
	}
	return 0;
}

int cmd_locate(const struct invocation *inv)
{
	struct locate_args a;
	struct clat_loc loc;
	struct json j;
	uint32_t x;
	int err;

	err = locate_args(inv, &a);
	if (err)
		return err;
	if (clat_locate(a.svc, a.block_size / a.ctx_size, a.clat_entries, a.levels, &loc)) {
		pr_err("invalid --svc %u: beyond the tables", a.svc); /* checked above */
		return -EUSAGE;
	}
	if (!has_opt(inv, OPT_JSON)) {
		printf("svc %u\n", a.svc);
		for (x = 0; x < a.levels; x++)
			printf("level %u offset %u\n", x + 1, loc.offset[x]);
		printf("element %u\n", loc.element + 1);
		return 0;
	}
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_u64(&j, "svc", a.svc);
	json_arr_open(&j, "offsets");
	for (x = 0; x < a.levels; x++)
		json_u64(&j, NULL, loc.offset[x]);
	json_arr_close(&j);
	json_u64(&j, "element", loc.element + 1);
	json_obj_close(&j);
	json_end(&j);
	return 0;
}
