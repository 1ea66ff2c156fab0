// SPDX-License-Identifier: GPL-2.0
/* clat-guest show, ctx list and locate: the guest's read-only views of its
 * tables and of what the device wrote back into them. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cg.h"
#include "common.h"
#include "ctxfmt.h"
#include "glookup.h"
#include "json.h"

static void ctx_emit_json(void *arg, const struct clat_ctx *c, uint32_t svc, uint64_t gpa)
{
	struct json *j = arg;

	json_obj_open(j, NULL);
	json_u64(j, "svc", svc);
	json_u64(j, "gpa", gpa);
	ctx_json_fields(j, c);
	json_obj_close(j);
}

static void ctx_emit_text(void *arg, const struct clat_ctx *c, uint32_t svc, uint64_t gpa)
{
	(void)arg;
	printf("  gpa 0x%" PRIx64 " ", gpa);
	ctx_print(stdout, c, svc);
}

static void show_type_json(struct json *j, struct cg_walk *w)
{
	json_obj_open(j, NULL);
	cg_type_json(j, w->t);
	json_arr_open(j, "contexts");
	cg_walk(w, ctx_emit_json, j);
	json_arr_close(j);
	/* Counted on the way: after the list, a reader keys by name anyway. */
	json_u64(j, "live", w->live);
	json_u64(j, "released", w->released);
	json_obj_close(j);
}

static void show_type_text(struct cg_walk *w)
{
	cg_type_print(w->t);
	cg_walk(w, NULL, NULL);
	printf("  live %" PRIu64 " released %" PRIu64 "\n", w->live, w->released);
	if (w->live)
		cg_walk(w, ctx_emit_text, NULL);
}

int cg_show(const struct invocation *inv)
{
	struct cg_walk w = { 0 };
	struct gtables t;
	struct gmem g;
	struct json j;
	uint32_t i;
	int ret;

	ret = cg_open_tables(inv, false, &g, &t);
	if (ret)
		return ret;
	w.g = &g;
	gmem_data_scan(&g, &w.data);
	if (has_opt(inv, G_JSON)) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "mem", inv->opt[G_MEM]);
		json_u64(&j, "size", g.size);
		json_u64(&j, "bat_gpa", t.bat_gpa);
		json_u64(&j, "generation", t.hdr.generation);
		json_arr_open(&j, "types");
		for (i = 0; i < t.ntypes; i++) {
			w.t = &t.types[i];
			show_type_json(&j, &w);
		}
		json_arr_close(&j);
		json_obj_close(&j);
		json_end(&j);
	} else {
		printf("bat_gpa 0x%" PRIx64 " generation %u ntypes %u mem %s size %" PRIu64 "\n",
		       t.bat_gpa, t.hdr.generation, t.ntypes, inv->opt[G_MEM], g.size);
		for (i = 0; i < t.ntypes; i++) {
			w.t = &t.types[i];
			show_type_text(&w);
		}
	}
	gmem_data_free(&w.data);
	gtables_free(&t);
	gmem_close(&g);
	return 0;
}

/* ---- ctx list ------------------------------------------------------------ */

struct ctx_list_arg {
	struct json *j;
	uint32_t type;
};

static void ctx_list_json(void *arg, const struct clat_ctx *c, uint32_t svc, uint64_t gpa)
{
	struct ctx_list_arg *a = arg;

	json_obj_open(a->j, NULL);
	json_u64(a->j, "svc", svc);
	json_u64(a->j, "gpa", gpa);
	ctx_json_fields(a->j, c);
	json_obj_close(a->j);
}

static void ctx_list_text(void *arg, const struct clat_ctx *c, uint32_t svc, uint64_t gpa)
{
	struct ctx_list_arg *a = arg;

	printf("type %u gpa 0x%" PRIx64 " ", a->type, gpa);
	ctx_print(stdout, c, svc);
}

/* The guest's own view of what the device wrote back into its memory. */
int cg_ctx_list(const struct invocation *inv)
{
	struct cg_walk w = { 0 };
	struct ctx_list_arg a = { 0 };
	const struct gtype *only = NULL;
	struct gtables t;
	struct gmem g;
	struct json j;
	uint64_t live = 0;
	uint32_t i;
	int ret;

	ret = cg_open_tables(inv, false, &g, &t);
	if (ret)
		return ret;
	if (has_opt(inv, G_TYPE)) {
		ret = cg_pick_type(inv, &t, &only);
		if (ret)
			goto out;
	}
	w.g = &g;
	gmem_data_scan(&g, &w.data);
	a.j = &j;
	if (has_opt(inv, G_JSON)) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "mem", inv->opt[G_MEM]);
		json_u64(&j, "bat_gpa", t.bat_gpa);
		json_u64(&j, "generation", t.hdr.generation);
		json_arr_open(&j, "contexts");
	}
	for (i = 0; i < t.ntypes; i++) {
		if (only && only != &t.types[i])
			continue;
		w.t = &t.types[i];
		a.type = i;
		cg_walk(&w, has_opt(inv, G_JSON) ? ctx_list_json : ctx_list_text, &a);
		live += w.live;
	}
	if (has_opt(inv, G_JSON)) {
		json_arr_close(&j);
		json_u64(&j, "live", live);
		json_obj_close(&j);
		json_end(&j);
	} else {
		printf("%" PRIu64 " live contexts\n", live);
	}
	gmem_data_free(&w.data);
out:
	gtables_free(&t);
	gmem_close(&g);
	return ret;
}


static void locate_print(const struct invocation *inv, const struct gtype *t, uint32_t svc,
			 const struct gtype_path *p)
{
	struct json j;
	uint32_t x;

	if (!has_opt(inv, G_JSON)) {
		printf("svc %u type %u (%s)\n", svc, t->index, t->e.name);
		printf("bat_entry_gpa 0x%" PRIx64 "\n", t->entry_gpa);
		for (x = 0; x < t->e.levels; x++)
			printf("level %u page_gpa 0x%" PRIx64 " offset %u entry_gpa 0x%" PRIx64
			       " value 0x%" PRIx64 "\n", x + 1, p->page_gpa[x], p->offset[x],
			       p->entry_gpa[x], p->value[x]);
		printf("block %u block_gpa 0x%" PRIx64 " element %u ctx_gpa 0x%" PRIx64 "\n",
		       p->block, p->block_gpa, p->element + 1, p->ctx_gpa);
		return;
	}
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_u64(&j, "svc", svc);
	json_u64(&j, "type", t->index);
	json_u64(&j, "bat_entry_gpa", t->entry_gpa);
	json_arr_open(&j, "levels");
	for (x = 0; x < t->e.levels; x++) {
		json_obj_open(&j, NULL);
		json_u64(&j, "level", x + 1);
		json_u64(&j, "page_gpa", p->page_gpa[x]);
		json_u64(&j, "offset", p->offset[x]);
		json_u64(&j, "entry_gpa", p->entry_gpa[x]);
		json_u64(&j, "value", p->value[x]);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_u64(&j, "block", p->block);
	json_u64(&j, "block_gpa", p->block_gpa);
	json_u64(&j, "element", p->element + 1);
	json_u64(&j, "ctx_gpa", p->ctx_gpa);
	json_obj_close(&j);
	json_end(&j);
}

static int locate_type(const struct invocation *inv, struct gmem *g, const struct gtables *t,
		       const struct gtype *gt, void *arg)
{
	uint32_t svc = opt_u32(inv, G_SVC);
	struct gtype_path path;

	(void)g, (void)t, (void)arg;
	if (svc > gt->e.capacity) {
		pr_err("invalid --svc %u: type %u (%s) holds services 1..%u", svc, gt->index,
		       gt->e.name, gt->e.capacity);
		return -EUSAGE;
	}
	if (gtype_path(gt, svc, &path)) {
		pr_err("failed to locate svc %u: the walk found no block", svc);
		return -EIO;
	}
	locate_print(inv, gt, svc, &path);
	return 0;
}

int cg_locate(const struct invocation *inv)
{
	return cg_on_type(inv, false, locate_type, NULL);
}
