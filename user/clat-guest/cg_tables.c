// SPDX-License-Identifier: GPL-2.0
/* clat-guest: what its commands share (see cg.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cg.h"
#include "common.h"
#include "gphys.h"
#include "json.h"
#include "parse.h"

static const char *proto_mask_name(uint16_t mask)
{
	switch (mask) {
	case CLAT_PROTO_TCP: return "tcp";
	case CLAT_PROTO_UDP: return "udp";
	case CLAT_PROTO_TCP | CLAT_PROTO_UDP: return "any";
	default: return "invalid";
	}
}

void cg_type_json(struct json *j, const struct gtype *t)
{
	uint32_t k;

	json_u64(j, "type", t->index);
	json_str(j, "name", t->e.name);
	json_u64(j, "ctx_size", t->e.ctx_size);
	json_u64(j, "block_size", t->e.block_size);
	json_u64(j, "levels", t->e.levels);
	json_u64(j, "clat_entries", t->e.clat_entries);
	json_u64(j, "capacity", t->e.capacity);
	json_u64(j, "per_block", t->per_block);
	json_u64(j, "blocks", t->nblocks);
	json_u64(j, "pages", t->npages);
	json_u64(j, "clat_gpa", t->e.clat_gpa);
	json_str(j, "proto", proto_mask_name(t->e.proto_mask));
	json_u64(j, "hash_seed", t->e.hash_seed);
	json_arr_open(j, "segments");
	for (k = 0; k < t->e.nsegs; k++) {
		json_obj_open(j, NULL);
		json_u64(j, "first_svc", (uint64_t)t->e.seg[k].base + 1);
		json_u64(j, "last_svc", (uint64_t)t->e.seg[k].base + t->e.seg[k].size);
		json_obj_close(j);
	}
	json_arr_close(j);
}

void cg_type_print(const struct gtype *t)
{
	uint32_t k;

	printf("type %u %s: ctx_size %u block_size %u per_block %u levels %u clat_entries %u "
	       "capacity %u blocks %u pages %u clat_gpa 0x%" PRIx64 " proto %s hash_seed 0x%08x\n",
	       t->index, t->e.name, t->e.ctx_size, t->e.block_size, t->per_block, t->e.levels,
	       t->e.clat_entries, t->e.capacity, t->nblocks, t->npages, (uint64_t)t->e.clat_gpa,
	       proto_mask_name(t->e.proto_mask), t->e.hash_seed);
	for (k = 0; k < t->e.nsegs; k++)
		printf("  segment %u: services %u..%" PRIu64 "%s\n", k, t->e.seg[k].base + 1,
		       (uint64_t)t->e.seg[k].base + t->e.seg[k].size,
		       k + 1 == t->e.nsegs ? " (new flows)" : "");
}

/* --bat-gpa, or in extent mode (hugetlbfs in the guest) the GPA of file
 * offset 0, where init puts the BAT. */
static int bat_gpa_of(const struct invocation *inv, const struct gmem *g, uint64_t *bat)
{
	if (has_opt(inv, G_BAT_GPA)) {
		*bat = opt_u64(inv, G_BAT_GPA);
		return 0;
	}
	if (g->next) {
		*bat = gmem_gpa_of(g, 0);
		return 0;
	}
	pr_err("%s: --bat-gpa is required (it has a default only for a file on hugetlbfs in "
	     "the guest)", inv->cmd->name);
	return -EUSAGE;
}

int cg_open_tables(const struct invocation *inv, bool writable, struct gmem *g,
		   struct gtables *t)
{
	uint64_t bat = 0;
	char err[512];
	int ret;

	ret = gmem_open(inv->opt[G_MEM], writable, g);
	if (ret)
		return ret;
	ret = bat_gpa_of(inv, g, &bat);
	if (!ret) {
		ret = gtables_load(g, bat, t, err, sizeof(err));
		if (ret)
			pr_err("failed to validate guest tables in %s (BAT at GPA 0x%" PRIx64 "): %s",
			     inv->opt[G_MEM], bat, err);
	}
	if (ret)
		gmem_close(g);
	return ret;
}

int cg_pick_type(const struct invocation *inv, const struct gtables *t,
		 const struct gtype **out)
{
	const char *s = inv->opt[G_TYPE];
	uint64_t v;
	uint32_t i;

	if (!s) {
		*out = &t->types[0];
		return 0;
	}
	if (!parse_num(s, strlen(s), false, UINT32_MAX, &v)) {
		if (v < t->ntypes) {
			*out = &t->types[v];
			return 0;
		}
		pr_err("invalid --type '%s': the BAT has %u types (0..%u)", s, t->ntypes,
		     t->ntypes - 1);
		return -EUSAGE;
	}
	for (i = 0; i < t->ntypes; i++) {
		if (!strcmp(t->types[i].e.name, s)) {
			*out = &t->types[i];
			return 0;
		}
	}
	pr_err("invalid --type '%s': no type of that name or index in the BAT", s);
	return -EUSAGE;
}



int cg_on_type(const struct invocation *inv, bool writable, cg_type_fn *fn, void *arg)
{
	const struct gtype *gt;
	struct gtables t;
	struct gmem g;
	int ret;

	ret = cg_open_tables(inv, writable, &g, &t);
	if (ret)
		return ret;
	ret = cg_pick_type(inv, &t, &gt);
	if (!ret)
		ret = fn(inv, &g, &t, gt, arg);
	gtables_free(&t);
	gmem_close(&g);
	return ret;
}

void cg_walk(struct cg_walk *w, cg_ctx_fn *fn, void *arg)
{
	const struct gtype *t = w->t;
	uint32_t b, e, svc;
	struct clat_ctx c;

	w->live = w->released = 0;
	for (b = 0; b < t->nblocks; b++) {
		if (gmem_data_hole(&w->data, t->block_gpa[b], t->e.block_size))
			continue;
		for (e = 0; e < t->per_block; e++) {
			uint64_t gpa = t->block_gpa[b] + (uint64_t)e * t->e.ctx_size;
			const void *p = gmem_ptr(w->g, gpa, sizeof(c));
			uint64_t state;

			svc = b * t->per_block + e + 1;
			if (svc > t->e.capacity || !p)
				break;
			memcpy(&c, p, sizeof(c));
			state = c.state_word & CLAT_SLOT_STATE_MASK;
			w->released += state == CLAT_SLOT_RELEASED;
			if (state != CLAT_SLOT_LIVE)
				continue;
			w->live++;
			if (fn)
				fn(arg, &c, svc, gpa);
		}
	}
}

