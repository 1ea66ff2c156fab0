/* SPDX-License-Identifier: GPL-2.0 */
/* clat-guest's command layer: the option ids of its table (clat-guest.c)
 * and what its command files share (cg_tables.c): opening and validating
 * the tables at the BAT, picking a type, printing one, walking its live
 * contexts.  The commands: cg_build.c (init, corrupt), cg_view.c (show,
 * ctx list, locate), cg_seed.c (seed), cg_grow.c (grow, add-type). */
#ifndef CLAT_CG_H
#define CLAT_CG_H

#include <stdbool.h>
#include <stdint.h>

#include "cmdline.h"
#include "gtables.h"

struct json;

enum gopt {
	G_NONE = 0,
	G_MEM,
	G_SIZE,
	G_TYPE_SPEC,  /* --type NAME:ctx=..., repeatable (init) */
	G_TYPE,       /* --type T, an index or a name */
	G_LAYOUT_SEED,
	G_FORCE,
	G_BAT_GPA,
	G_SVC,
	G_KIND,
	G_COUNT,
	G_VM_ADDR,
	G_VM_PORT,
	G_REMOTE_ADDR,
	G_FIRST_PORT,
	G_PROTO,
	G_CAPACITY,
	G_JSON,
	G_PORT,
	G__MAX,
};

int cg_init(const struct invocation *inv);
int cg_corrupt(const struct invocation *inv);
int cg_show(const struct invocation *inv);
int cg_ctx_list(const struct invocation *inv);
int cg_locate(const struct invocation *inv);
int cg_seed(const struct invocation *inv);
int cg_grow(const struct invocation *inv);
int cg_add_type(const struct invocation *inv);

/* Shared pieces (cg_tables.c). */
void cg_type_json(struct json *j, const struct gtype *t);
void cg_type_print(const struct gtype *t);
/* Opens --mem and validates the tables at the BAT (--bat-gpa, or its
 * default on hugetlbfs in a guest). */
int cg_open_tables(const struct invocation *inv, bool writable, struct gmem *g,
		   struct gtables *t);
/* --type T: an index, or else a name; type 0 without it. */
int cg_pick_type(const struct invocation *inv, const struct gtables *t,
		 const struct gtype **out);

/* The frame of a command on one type: opens the tables, picks --type, runs
 * fn on them, closes them; fn's result, or the opening's error. */
typedef int cg_type_fn(const struct invocation *inv, struct gmem *g, const struct gtables *t,
		       const struct gtype *gt, void *arg);
int cg_on_type(const struct invocation *inv, bool writable, cg_type_fn *fn, void *arg);

/* Calls fn for every LIVE context of t, counting released ones on the way.
 * Blocks in file holes are all EMPTY and are not read.  Each record is
 * copied out once: the guest may be changing it. */
struct cg_walk {
	const struct gmem *g;
	const struct gtype *t;
	struct gmem_data data;
	uint64_t live, released;
};
typedef void cg_ctx_fn(void *arg, const struct clat_ctx *c, uint32_t svc, uint64_t gpa);
void cg_walk(struct cg_walk *w, cg_ctx_fn *fn, void *arg);

#endif
