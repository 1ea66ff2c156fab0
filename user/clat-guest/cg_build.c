// SPDX-License-Identifier: GPL-2.0
/* clat-guest init and corrupt: build tables in guest memory like a driver,
 * and damage them like a buggy or hostile guest (for tests). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cg.h"
#include "common.h"
#include "gbuild.h"
#include "gcorrupt.h"
#include "json.h"

static int init_args(const struct invocation *inv, struct gbuild_opts *o, struct gbuild_type *types)
{
	char err[256];
	unsigned int i;

	memset(o, 0, sizeof(*o));
	if (!inv->nrep) {
		pr_err("init: at least one --type is required");
		return -EUSAGE;
	}
	o->size = opt_u64(inv, G_SIZE);
	if (o->size % CLAT_PAGE_SIZE) {
		pr_err("invalid --size '%s': expected a non-zero multiple of %u (K/M/G suffixes)",
		       inv->opt[G_SIZE], CLAT_PAGE_SIZE);
		return -EUSAGE;
	}
	o->layout_seed_set = has_opt(inv, G_LAYOUT_SEED);
	o->layout_seed = opt_u64(inv, G_LAYOUT_SEED);
	o->force = has_opt(inv, G_FORCE);
	for (i = 0; i < inv->nrep; i++) {
		if (gbuild_parse_type(inv->rep[i], &types[i], err, sizeof(err)) ||
		    gbuild_resolve(&types[i], err, sizeof(err))) {
			pr_err("invalid --type '%s': %s", inv->rep[i], err);
			return -EUSAGE;
		}
	}
	return 0;
}

static void init_report(const struct invocation *inv, const struct gtables *t, uint64_t size)
{
	struct json j;
	uint32_t i;

	if (!has_opt(inv, G_JSON)) {
		printf("bat_gpa 0x%" PRIx64 "\n", t->bat_gpa);
		for (i = 0; i < t->ntypes; i++)
			cg_type_print(&t->types[i]);
		return;
	}
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "mem", inv->opt[G_MEM]);
	json_u64(&j, "size", size);
	json_u64(&j, "bat_gpa", t->bat_gpa);
	json_u64(&j, "generation", t->hdr.generation);
	json_arr_open(&j, "types");
	for (i = 0; i < t->ntypes; i++) {
		json_obj_open(&j, NULL);
		cg_type_json(&j, &t->types[i]);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

int cg_init(const struct invocation *inv)
{
	struct gbuild_type types[CLAT_MAX_TYPES];
	struct gbuild_opts o;
	struct gtables t;
	struct gmem g;
	uint64_t bat;
	char err[512];
	int ret;

	ret = init_args(inv, &o, types);
	if (ret)
		return ret;
	ret = gbuild_create(inv->opt[G_MEM], &o, types, inv->nrep, &bat, err, sizeof(err));
	if (ret) {
		pr_err("failed to build guest tables in %s: %s", inv->opt[G_MEM], err);
		return ret == -EINVAL ? -EUSAGE : ret;
	}
	/* Read back through the validator: what we print is what a host sees. */
	ret = gmem_open(inv->opt[G_MEM], false, &g);
	if (ret)
		return ret;
	ret = gtables_load(&g, bat, &t, err, sizeof(err));
	if (ret) {
		pr_err("failed to validate the tables just built in %s: %s", inv->opt[G_MEM], err);
	} else {
		init_report(inv, &t, g.size);
		gtables_free(&t);
	}
	gmem_close(&g);
	return ret;
}


static void corrupt_report(const struct invocation *inv, const struct gtype *gt,
			   const char *msg)
{
	struct json j;

	if (!has_opt(inv, G_JSON)) {
		pr_info("corrupted (%s): %s", inv->opt[G_KIND], msg);
		return;
	}
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "kind", inv->opt[G_KIND]);
	if (has_opt(inv, G_TYPE))
		json_u64(&j, "type", gt->index);
	json_str(&j, "what", msg);
	json_obj_close(&j);
	json_end(&j);
}

static int corrupt_type(const struct invocation *inv, struct gmem *g, const struct gtables *t,
			const struct gtype *gt, void *arg)
{
	char msg[512];
	int ret;

	(void)arg;
	/* --kind is required and one of gbuild_corrupt_kinds (the engine's enum). */
	ret = gbuild_corrupt(g, t->bat_gpa, inv->opt[G_KIND],
			     has_opt(inv, G_TYPE) ? (int)gt->index : -1, msg, sizeof(msg));
	if (ret)
		pr_err("failed to corrupt (%s): %s", inv->opt[G_KIND], msg);
	else
		corrupt_report(inv, gt, msg);
	return ret;
}

int cg_corrupt(const struct invocation *inv)
{
	return cg_on_type(inv, true, corrupt_type, NULL);
}
