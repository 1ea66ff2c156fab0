// SPDX-License-Identifier: GPL-2.0
/* clat-guest: plays the VM driver.  It builds the guest tables (BAT, CLAT,
 * context blocks) in a guest memory file, shows and walks them, and for
 * tests damages them the way a buggy or hostile guest would. */
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common.h"
#include "cmdline.h"
#include "ctxfmt.h"
#include "gagent.h"
#include "gbuild.h"
#include "gcorrupt.h"
#include "gphys.h"
#include "ggrow.h"
#include "glookup.h"
#include "gtables.h"
#include "json.h"

#define gerr(fmt, ...) fprintf(stderr, "clat-guest: " fmt "\n", ##__VA_ARGS__)

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

static const struct opt_def opt_defs[G__MAX] = {
	[G_MEM] = { "mem", "FILE", "guest memory file: file offset = GPA, except on hugetlbfs "
		    "inside a guest, where each huge page is at its guest-physical address "
		    "(from /proc/self/pagemap; needs root)" },
	[G_SIZE] = { "size", "SIZE", "guest memory size, K/M/G suffixes allowed" },
	[G_TYPE_SPEC] = { "type", "NAME:ctx=A,block=B,services=S[,...]",
			  "a service type; repeat for more (up to 4). Optional keys: levels=N "
			  "(default: smallest that fits), entries=C (512), proto=tcp|udp|any (any), "
			  "seed=X (random). A is at least 128, the context record's size" },
	[G_TYPE] = { "type", "T", "service type, by index or name (default 0)" },
	[G_LAYOUT_SEED] = { "layout-seed", "N", "seed of the page/block placement "
			    "(default: from the hash seeds)" },
	[G_FORCE] = { "force", NULL, "reuse an existing file of another size (resized)" },
	[G_BAT_GPA] = { "bat-gpa", "GPA", "guest physical address of the BAT (default on "
			"hugetlbfs: the GPA of file offset 0, where init puts it)" },
	[G_SVC] = { "svc", "S", "service number, 1..capacity" },
	[G_KIND] = { "kind", "KIND", "what to damage (see below)" },
	[G_COUNT] = { "count", "N", "number of flows" },
	[G_VM_ADDR] = { "vm-addr", "IPv4", "the VM's address" },
	[G_VM_PORT] = { "vm-port", "P", "the VM's port" },
	[G_REMOTE_ADDR] = { "remote-addr", "IPv4", "the remote peer's address" },
	[G_FIRST_PORT] = { "first-port", "X", "remote port of the first flow; flow i uses X+i" },
	[G_PROTO] = { "proto", "udp|tcp", "protocol of the flows (default udp)" },
	[G_CAPACITY] = { "capacity", "S", "the type's new capacity, in services" },
	[G_JSON] = { "json", NULL, "print JSON on stdout" },
	[G_PORT] = { "port", "NAME", "virtio-serial port name (default org.clat.0)" },
};

_Static_assert(G__MAX <= CMD_MAX_OPT_IDS, "too many option ids");

static int cmd_init(const struct invocation *inv);
static int cmd_show(const struct invocation *inv);
static int cmd_locate(const struct invocation *inv);
static int cmd_corrupt(const struct invocation *inv);
static int cmd_seed(const struct invocation *inv);
static int cmd_grow(const struct invocation *inv);
static int cmd_add_type(const struct invocation *inv);
static int cmd_ctx_list(const struct invocation *inv);
static int cmd_agent(const struct invocation *inv);

static const struct command commands[] = {
	{ "init", cmd_init, NULL, 0,
	  { G_MEM, G_SIZE, G_TYPE_SPEC, G_LAYOUT_SEED, G_FORCE, G_JSON },
	  "build a BAT, CLAT pages and context blocks scattered over guest memory" },
	{ "show", cmd_show, NULL, 0, { G_MEM, G_BAT_GPA, G_JSON },
	  "validate the tables, then show each type and its live contexts" },
	{ "ctx list", cmd_ctx_list, NULL, 0, { G_MEM, G_BAT_GPA, G_TYPE, G_JSON },
	  "list the live contexts (all types, or --type T) with what the device wrote" },
	{ "agent", cmd_agent, NULL, 0, { G_MEM, G_PORT },
	  "inside a VM: answer the host's {\"req\":\"bat\"} on a virtio-serial port with the "
	  "BAT GPA, generation and type count, read afresh each time" },
	{ "locate", cmd_locate, NULL, 0, { G_MEM, G_BAT_GPA, G_TYPE, G_SVC, G_JSON },
	  "walk BAT -> CLAT levels -> block for one service, printing every GPA visited" },
	{ "corrupt", cmd_corrupt, NULL, 0, { G_MEM, G_BAT_GPA, G_KIND, G_TYPE },
	  "testing aid: damage valid tables in place like a buggy or hostile guest" },
	{ "seed", cmd_seed, NULL, 0,
	  { G_MEM, G_BAT_GPA, G_TYPE, G_COUNT, G_VM_ADDR, G_VM_PORT, G_REMOTE_ADDR, G_FIRST_PORT,
	    G_PROTO, G_JSON },
	  "testing aid: pre-populate LIVE contexts for N flows at the slots the datapath "
	  "would pick" },
	{ "grow", cmd_grow, NULL, 0,
	  { G_MEM, G_BAT_GPA, G_TYPE, G_CAPACITY, G_LAYOUT_SEED, G_JSON },
	  "grow a type of live tables like a driver: new blocks and pages, a new level if "
	  "needed, one new capacity segment, generation + 1; live contexts never move" },
	{ "add-type", cmd_add_type, NULL, 0,
	  { G_MEM, G_BAT_GPA, G_TYPE_SPEC, G_LAYOUT_SEED, G_JSON },
	  "add a service type to live tables (--type NAME:ctx=A,block=B,services=S[,...]), "
	  "generation + 1" },
};

static void corrupt_notes(FILE *out, const struct command *c)
{
	unsigned int i;

	if (strcmp(c->name, "corrupt"))
		return;
	fprintf(out, "  Kinds:");
	for (i = 0; gbuild_corrupt_kinds[i]; i++)
		fprintf(out, " %s", gbuild_corrupt_kinds[i]);
	fputc('\n', out);
}

static const struct tool clat_guest = {
	.prog = "clat-guest",
	.opts = opt_defs,
	.cmds = commands,
	.ncmds = ARRAY_SIZE(commands),
	.repeat_id = G_TYPE_SPEC,
	.notes = corrupt_notes,
	.global_flags = "[-v|-q] ",
};

static int require(const struct invocation *inv, enum gopt o)
{
	if (has_opt(inv, o))
		return 0;
	gerr("%s: --%s is required", inv->cmd->name, opt_defs[o].name);
	return -EUSAGE;
}

static int parse_u64_opt(const char *s, const char *what, uint64_t min, uint64_t max,
			 uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		gerr("invalid --%s '%s': expected an integer %" PRIu64 "..%" PRIu64, what, s, min,
		     max);
		return -EUSAGE;
	}
	*out = v;
	return 0;
}

/* ---- Shared pieces ------------------------------------------------------- */

static const char *proto_mask_name(uint16_t mask)
{
	switch (mask) {
	case CLAT_PROTO_TCP: return "tcp";
	case CLAT_PROTO_UDP: return "udp";
	case CLAT_PROTO_TCP | CLAT_PROTO_UDP: return "any";
	default: return "invalid";
	}
}

static void type_json_fields(struct json *j, const struct gtype *t)
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

static void type_print(const struct gtype *t)
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
	if (has_opt(inv, G_BAT_GPA))
		return parse_u64_opt(inv->opt[G_BAT_GPA], "bat-gpa", 0, UINT64_MAX, bat);
	if (g->next) {
		*bat = gmem_gpa_of(g, 0);
		return 0;
	}
	gerr("%s: --bat-gpa is required (it has a default only for a file on hugetlbfs in "
	     "the guest)", inv->cmd->name);
	return -EUSAGE;
}

/* Opens guest memory and validates the tables at the BAT. */
static int open_tables(const struct invocation *inv, bool writable, struct gmem *g,
		       struct gtables *t)
{
	uint64_t bat = 0;
	char err[512];
	int ret;

	ret = require(inv, G_MEM);
	if (!ret && has_opt(inv, G_BAT_GPA))
		ret = parse_u64_opt(inv->opt[G_BAT_GPA], "bat-gpa", 0, UINT64_MAX, &bat);
	if (ret)
		return ret;
	ret = gmem_open(inv->opt[G_MEM], writable, g);
	if (ret)
		return ret;
	ret = bat_gpa_of(inv, g, &bat);
	if (!ret) {
		ret = gtables_load(g, bat, t, err, sizeof(err));
		if (ret)
			gerr("failed to validate guest tables in %s (BAT at GPA 0x%" PRIx64 "): %s",
			     inv->opt[G_MEM], bat, err);
	}
	if (ret)
		gmem_close(g);
	return ret;
}

/* --type T: an index, or else a name. */
static int pick_type(const struct invocation *inv, const struct gtables *t, const struct gtype **out)
{
	const char *s = inv->opt[G_TYPE];
	char *end;
	unsigned long v;
	uint32_t i;

	if (!s) {
		*out = &t->types[0];
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (!errno && end != s && !*end && s[0] != '-') {
		if (v < t->ntypes) {
			*out = &t->types[v];
			return 0;
		}
		gerr("invalid --type '%s': the BAT has %u types (0..%u)", s, t->ntypes,
		     t->ntypes - 1);
		return -EUSAGE;
	}
	for (i = 0; i < t->ntypes; i++) {
		if (!strcmp(t->types[i].e.name, s)) {
			*out = &t->types[i];
			return 0;
		}
	}
	gerr("invalid --type '%s': no type of that name or index in the BAT", s);
	return -EUSAGE;
}

/* ---- init ---------------------------------------------------------------- */

static int init_args(const struct invocation *inv, struct gbuild_opts *o, struct gbuild_type *types)
{
	char err[256];
	unsigned int i;
	int ret;

	memset(o, 0, sizeof(*o));
	ret = require(inv, G_MEM);
	if (!ret)
		ret = require(inv, G_SIZE);
	if (!ret && !inv->nrep) {
		gerr("init: at least one --type is required");
		ret = -EUSAGE;
	}
	if (ret)
		return ret;
	if (gbuild_parse_size(inv->opt[G_SIZE], &o->size) || !o->size ||
	    o->size % CLAT_PAGE_SIZE) {
		gerr("invalid --size '%s': expected a non-zero multiple of %u (K/M/G suffixes)",
		     inv->opt[G_SIZE], CLAT_PAGE_SIZE);
		return -EUSAGE;
	}
	if (has_opt(inv, G_LAYOUT_SEED)) {
		ret = parse_u64_opt(inv->opt[G_LAYOUT_SEED], "layout-seed", 0, UINT64_MAX,
				    &o->layout_seed);
		if (ret)
			return ret;
		o->layout_seed_set = true;
	}
	o->force = has_opt(inv, G_FORCE);
	for (i = 0; i < inv->nrep; i++) {
		if (gbuild_parse_type(inv->rep[i], &types[i], err, sizeof(err)) ||
		    gbuild_resolve(&types[i], err, sizeof(err))) {
			gerr("invalid --type '%s': %s", inv->rep[i], err);
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
			type_print(&t->types[i]);
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
		type_json_fields(&j, &t->types[i]);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

static int cmd_init(const struct invocation *inv)
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
		gerr("failed to build guest tables in %s: %s", inv->opt[G_MEM], err);
		return ret == -EINVAL ? -EUSAGE : ret;
	}
	/* Read back through the validator: what we print is what a host sees. */
	ret = gmem_open(inv->opt[G_MEM], false, &g);
	if (ret)
		return ret;
	ret = gtables_load(&g, bat, &t, err, sizeof(err));
	if (ret) {
		gerr("failed to validate the tables just built in %s: %s", inv->opt[G_MEM], err);
	} else {
		init_report(inv, &t, g.size);
		gtables_free(&t);
	}
	gmem_close(&g);
	return ret;
}

/* ---- show ---------------------------------------------------------------- */

/* Calls fn for every LIVE context of t, counting released ones on the way.
 * Blocks in file holes are all EMPTY and are not read.  Each record is
 * copied out once: the guest may be changing it. */
struct ctx_walk {
	const struct gmem *g;
	const struct gtype *t;
	struct gmem_data data;
	uint64_t live, released;
};

static void ctx_walk(struct ctx_walk *w, void (*fn)(void *arg, const struct clat_ctx *c,
						   uint32_t svc, uint64_t gpa), void *arg)
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

static void show_type_json(struct json *j, struct ctx_walk *w)
{
	json_obj_open(j, NULL);
	type_json_fields(j, w->t);
	json_arr_open(j, "contexts");
	ctx_walk(w, ctx_emit_json, j);
	json_arr_close(j);
	/* Counted on the way: after the list, a reader keys by name anyway. */
	json_u64(j, "live", w->live);
	json_u64(j, "released", w->released);
	json_obj_close(j);
}

static void show_type_text(struct ctx_walk *w)
{
	type_print(w->t);
	ctx_walk(w, NULL, NULL);
	printf("  live %" PRIu64 " released %" PRIu64 "\n", w->live, w->released);
	if (w->live)
		ctx_walk(w, ctx_emit_text, NULL);
}

static int cmd_show(const struct invocation *inv)
{
	struct ctx_walk w = { 0 };
	struct gtables t;
	struct gmem g;
	struct json j;
	uint32_t i;
	int ret;

	ret = open_tables(inv, false, &g, &t);
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
static int cmd_ctx_list(const struct invocation *inv)
{
	struct ctx_walk w = { 0 };
	struct ctx_list_arg a = { 0 };
	const struct gtype *only = NULL;
	struct gtables t;
	struct gmem g;
	struct json j;
	uint64_t live = 0;
	uint32_t i;
	int ret;

	ret = open_tables(inv, false, &g, &t);
	if (ret)
		return ret;
	if (has_opt(inv, G_TYPE)) {
		ret = pick_type(inv, &t, &only);
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
		ctx_walk(&w, has_opt(inv, G_JSON) ? ctx_list_json : ctx_list_text, &a);
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

/* ---- agent --------------------------------------------------------------- */

static int cmd_agent(const struct invocation *inv)
{
	int ret = require(inv, G_MEM);

	if (ret)
		return ret;
	return gagent_run(inv->opt[G_MEM], has_opt(inv, G_PORT) ? inv->opt[G_PORT] : "org.clat.0");
}

/* ---- locate -------------------------------------------------------------- */

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

static int cmd_locate(const struct invocation *inv)
{
	const struct gtype *gt;
	struct gtype_path path;
	struct gtables t;
	struct gmem g;
	uint64_t svc;
	int ret;

	ret = require(inv, G_SVC);
	if (!ret)
		ret = parse_u64_opt(inv->opt[G_SVC], "svc", 1, UINT32_MAX, &svc);
	if (!ret)
		ret = open_tables(inv, false, &g, &t);
	if (ret)
		return ret;
	ret = pick_type(inv, &t, &gt);
	if (!ret && svc > gt->e.capacity) {
		gerr("invalid --svc %" PRIu64 ": type %u (%s) holds services 1..%u", svc, gt->index,
		     gt->e.name, gt->e.capacity);
		ret = -EUSAGE;
	}
	if (!ret && gtype_path(gt, (uint32_t)svc, &path)) {
		gerr("failed to locate svc %" PRIu64 ": the walk found no block", svc);
		ret = -EIO;
	}
	if (!ret)
		locate_print(inv, gt, (uint32_t)svc, &path);
	gtables_free(&t);
	gmem_close(&g);
	return ret;
}

/* ---- corrupt ------------------------------------------------------------- */

static int corrupt_args(const struct invocation *inv)
{
	unsigned int i;
	int ret = require(inv, G_KIND);

	if (ret)
		return ret;
	for (i = 0; gbuild_corrupt_kinds[i]; i++)
		if (!strcmp(gbuild_corrupt_kinds[i], inv->opt[G_KIND]))
			return 0;
	gerr("invalid --kind '%s': expected one of:", inv->opt[G_KIND]);
	for (i = 0; gbuild_corrupt_kinds[i]; i++)
		fprintf(stderr, " %s", gbuild_corrupt_kinds[i]);
	fputc('\n', stderr);
	return -EUSAGE;
}

static int cmd_corrupt(const struct invocation *inv)
{
	const struct gtype *gt;
	struct gtables t;
	struct gmem g;
	char msg[512];
	int ret;

	ret = corrupt_args(inv);
	if (!ret)
		ret = open_tables(inv, true, &g, &t);
	if (ret)
		return ret;
	ret = pick_type(inv, &t, &gt);
	if (!ret) {
		ret = gbuild_corrupt(&g, t.bat_gpa, inv->opt[G_KIND],
				     has_opt(inv, G_TYPE) ? (int)gt->index : -1, msg, sizeof(msg));
		if (ret)
			gerr("failed to corrupt (%s): %s", inv->opt[G_KIND], msg);
		else
			gerr("corrupted (%s): %s", inv->opt[G_KIND], msg);
	}
	gtables_free(&t);
	gmem_close(&g);
	return ret;
}

/* ---- seed ---------------------------------------------------------------- */

struct seed_args {
	uint64_t count, vm_port, first_port;
	uint8_t vm_addr[16], remote_addr[16];
	uint8_t proto;
};

/* IPv4 as the datapath keys it: IPv4-mapped (::ffff:a.b.c.d). */
static int parse_v4_mapped(const char *s, const char *what, uint8_t out[16])
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1) {
		gerr("invalid --%s '%s': expected an IPv4 address", what, s);
		return -EUSAGE;
	}
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, &a, 4);
	return 0;
}

static int seed_args(const struct invocation *inv, struct seed_args *a)
{
	static const enum gopt req[] = { G_COUNT, G_VM_ADDR, G_VM_PORT, G_REMOTE_ADDR,
					 G_FIRST_PORT };
	const char *proto = has_opt(inv, G_PROTO) ? inv->opt[G_PROTO] : "udp";
	size_t i;
	int ret = 0;

	for (i = 0; i < ARRAY_SIZE(req) && !ret; i++)
		ret = require(inv, req[i]);
	if (!ret)
		ret = parse_u64_opt(inv->opt[G_COUNT], "count", 1, 65535, &a->count);
	if (!ret)
		ret = parse_u64_opt(inv->opt[G_VM_PORT], "vm-port", 1, 65535, &a->vm_port);
	if (!ret)
		ret = parse_u64_opt(inv->opt[G_FIRST_PORT], "first-port", 1, 65535, &a->first_port);
	if (!ret)
		ret = parse_v4_mapped(inv->opt[G_VM_ADDR], "vm-addr", a->vm_addr);
	if (!ret)
		ret = parse_v4_mapped(inv->opt[G_REMOTE_ADDR], "remote-addr", a->remote_addr);
	if (ret)
		return ret;
	if (a->first_port + a->count - 1 > 65535) {
		gerr("invalid --count %" PRIu64 ": remote ports %" PRIu64 "..%" PRIu64
		     " go past 65535", a->count, a->first_port, a->first_port + a->count - 1);
		return -EUSAGE;
	}
	if (!strcmp(proto, "udp")) {
		a->proto = IPPROTO_UDP;
	} else if (!strcmp(proto, "tcp")) {
		a->proto = IPPROTO_TCP;
	} else {
		gerr("invalid --proto '%s': expected udp or tcp", proto);
		return -EUSAGE;
	}
	return 0;
}

/* The seed's view of one capacity segment: its buckets as the device cuts
 * them (clat_seg_buckets, clat_slot_svc), read from guest memory. */
struct seed_seg {
	const struct gmem *g;
	const struct gtype *gt;
	const struct clat_seg *sg;
	uint32_t nbuckets;
};

/* Slot s of bucket b: its context, or NULL past the segment's last service
 * (the device fences those slots: never used). */
static int seed_slot(const struct seed_seg *ss, uint32_t b, uint32_t s, uint32_t *svc,
		     struct clat_ctx **c)
{
	*svc = clat_slot_svc(ss->sg->base, b, s);
	*c = NULL;
	if (*svc - ss->sg->base > ss->sg->size)
		return 0;
	*c = gmem_ptr(ss->g, gtype_ctx_gpa(ss->gt, *svc), sizeof(**c));
	if (!*c) {
		gerr("failed to seed: svc %u of type %u has no context in guest memory", *svc,
		     ss->gt->index);
		return -EIO;
	}
	return 0;
}

/* The service of bucket b's LIVE slot that holds key with tag, matched as
 * the device matches it (whole state word, then key); *found 0 if none. */
static int seed_find(const struct seed_seg *ss, uint32_t b, uint16_t tag,
		     const struct clat_flow_key *key, uint32_t *found)
{
	uint64_t live = (uint64_t)tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_LIVE;
	struct clat_ctx *c;
	uint32_t s, svc;
	int err;

	*found = 0;
	for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
		err = seed_slot(ss, b, s, &svc, &c);
		if (err)
			return err;
		if (c && __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE) == live &&
		    !memcmp(&c->key, key, sizeof(*key))) {
			*found = svc;
			return 0;
		}
	}
	return 0;
}

/* The device's lane order of a bucket's slots (context.h slot_bit): its
 * "lowest free slot" is the lowest in this order, not the lowest number. */
static uint32_t slot_rank(uint32_t s)
{
	return (s & 3) * 16 + (s >> 2);
}

/* Free slots of bucket b (EMPTY or RELEASED: the ones whose tag the device
 * keeps FREE), and the one a claim takes: the tag's home slot if free, else
 * the free slot lowest in lane order. */
static int seed_free(const struct seed_seg *ss, uint32_t b, uint16_t tag, uint32_t *nfree,
		     uint32_t *pick)
{
	uint32_t home = tag & (CLAT_BUCKET_SLOTS - 1), s, svc, best = CLAT_BUCKET_SLOTS;
	struct clat_ctx *c;
	uint64_t state;
	int err;

	*nfree = 0;
	for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
		err = seed_slot(ss, b, s, &svc, &c);
		if (err)
			return err;
		if (!c)
			continue;
		state = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE) & CLAT_SLOT_STATE_MASK;
		if (state != CLAT_SLOT_EMPTY && state != CLAT_SLOT_RELEASED)
			continue;
		(*nfree)++;
		if (best == CLAT_BUCKET_SLOTS || s == home ||
		    (best != home && slot_rank(s) < slot_rank(best)))
			best = s;
	}
	*pick = best;
	return 0;
}

static void seed_seg_init(struct seed_seg *ss, const struct gmem *g, const struct gtype *gt,
			  uint32_t k)
{
	ss->g = g;
	ss->gt = gt;
	ss->sg = &gt->e.seg[k];
	ss->nbuckets = clat_seg_buckets(ss->sg->size);
}

/* Places one flow like the datapath's find-then-claim (bpf/context.h), so
 * that either side finds what the other placed: the lookup tries both
 * candidate buckets of every segment, newest first; the insert goes to the
 * emptier candidate of the newest segment (ties: candidate 0). */
static int seed_one(const struct gmem *g, const struct gtype *gt, const struct clat_flow_key *key,
		    uint64_t now)
{
	uint64_t h = clat_flow_hash(gt->e.hash_seed, key);
	uint16_t tag = clat_tag_of(h);
	char vm[INET_ADDRSTRLEN], rem[INET_ADDRSTRLEN];
	uint32_t b[2], nfree[2] = { 0 }, pick[2] = { 0 }, found = 0, k, i, svc;
	struct seed_seg ss;
	struct clat_ctx *dst;
	int err = 0;

	inet_ntop(AF_INET, key->vm_addr + 12, vm, sizeof(vm));
	inet_ntop(AF_INET, key->remote_addr + 12, rem, sizeof(rem));
	for (k = gt->e.nsegs; !found && k-- > 0;) {
		seed_seg_init(&ss, g, gt, k);
		b[0] = clat_bucket_of(h, 0, ss.nbuckets);
		b[1] = clat_bucket_of(h, 1, ss.nbuckets);
		err = seed_find(&ss, b[0], tag, key, &found);
		if (!err && !found && b[1] != b[0])
			err = seed_find(&ss, b[1], tag, key, &found);
		if (err)
			return err;
	}
	if (found) {
		gerr("failed to seed flow %s:%u <-> %s:%u: already present at svc %u", vm,
		     ntohs(key->vm_port), rem, ntohs(key->remote_port), found);
		return -EEXIST;
	}
	seed_seg_init(&ss, g, gt, gt->e.nsegs - 1);
	b[0] = clat_bucket_of(h, 0, ss.nbuckets);
	b[1] = clat_bucket_of(h, 1, ss.nbuckets);
	err = seed_free(&ss, b[0], tag, &nfree[0], &pick[0]);
	if (!err && b[1] != b[0])
		err = seed_free(&ss, b[1], tag, &nfree[1], &pick[1]);
	if (err)
		return err;
	if (!nfree[0] && !nfree[1]) {
		gerr("failed to seed flow %s:%u <-> %s:%u: both candidate buckets (svc %u.. and "
		     "svc %u..) of segment %u are full", vm, ntohs(key->vm_port), rem,
		     ntohs(key->remote_port), clat_slot_svc(ss.sg->base, b[0], 0),
		     clat_slot_svc(ss.sg->base, b[1], 0), gt->e.nsegs - 1);
		return -ENOSPC;
	}
	i = nfree[1] > nfree[0];
	err = seed_slot(&ss, b[i], pick[i], &svc, &dst);
	if (err)
		return err;
	/* Everything but the state word, then LIVE|tag last. */
	memset((uint8_t *)dst + sizeof(dst->state_word), 0, sizeof(*dst) - sizeof(dst->state_word));
	dst->key = *key;
	dst->tcp_state = key->proto == IPPROTO_TCP ? CLAT_TCP_ESTABLISHED : CLAT_TCP_NONE;
	dst->type = (uint16_t)gt->index;
	dst->svc = svc;
	dst->first_seen_ns = dst->last_seen_ns = now;
	__atomic_store_n(&dst->state_word, (uint64_t)tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_LIVE,
			 __ATOMIC_RELEASE);
	return 0;
}

static int cmd_seed(const struct invocation *inv)
{
	const struct gtype *gt;
	struct seed_args a = { 0 };
	struct clat_flow_key key;
	struct timespec ts;
	struct gtables t;
	struct json j;
	struct gmem g;
	uint64_t i, n = 0;
	int ret;

	ret = seed_args(inv, &a);
	if (!ret)
		ret = open_tables(inv, true, &g, &t);
	if (ret)
		return ret;
	ret = pick_type(inv, &t, &gt);
	if (!ret && !(gt->e.proto_mask & (a.proto == IPPROTO_TCP ? CLAT_PROTO_TCP : CLAT_PROTO_UDP))) {
		gerr("failed to seed: type %u (%s) does not track %s flows", gt->index, gt->e.name,
		     a.proto == IPPROTO_TCP ? "tcp" : "udp");
		ret = -EUSAGE;
	}
	clock_gettime(CLOCK_TAI, &ts);
	memset(&key, 0, sizeof(key));
	memcpy(key.vm_addr, a.vm_addr, 16);
	memcpy(key.remote_addr, a.remote_addr, 16);
	key.vm_port = htons((uint16_t)a.vm_port);
	key.proto = a.proto;
	for (i = 0; !ret && i < a.count; i++) {
		key.remote_port = htons((uint16_t)(a.first_port + i));
		ret = seed_one(&g, gt, &key, (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec);
		n += !ret;
	}
	if (ret && n)
		gerr("seeded %" PRIu64 " of %" PRIu64 " flows before the failure", n, a.count);
	if (!ret && has_opt(inv, G_JSON)) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_u64(&j, "seeded", n);
		json_obj_close(&j);
		json_end(&j);
	} else if (!ret) {
		printf("seeded %" PRIu64 " contexts in type %u (%s)\n", n, gt->index, gt->e.name);
	}
	gtables_free(&t);
	gmem_close(&g);
	return ret;
}

/* ---- grow, add-type ------------------------------------------------------ */

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
static int layout_seed(const struct invocation *inv, uint64_t *seed)
{
	struct timespec ts;

	if (has_opt(inv, G_LAYOUT_SEED))
		return parse_u64_opt(inv->opt[G_LAYOUT_SEED], "layout-seed", 0, UINT64_MAX, seed);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	*seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
	return 0;
}

static int cmd_grow(const struct invocation *inv)
{
	struct ggrow_result r;
	const struct gtype *gt;
	uint64_t cap, seed;
	struct gtables t;
	struct gmem g;
	char err[512];
	int ret;

	ret = require(inv, G_CAPACITY);
	if (!ret)
		ret = parse_u64_opt(inv->opt[G_CAPACITY], "capacity", 1, CLAT_MAX_CAPACITY, &cap);
	if (!ret)
		ret = layout_seed(inv, &seed);
	if (!ret)
		ret = open_tables(inv, true, &g, &t);
	if (ret)
		return ret;
	ret = pick_type(inv, &t, &gt);
	if (!ret) {
		ret = ggrow_capacity(&g, &t, gt->index, (uint32_t)cap, seed, &r, err, sizeof(err));
		if (ret)
			gerr("failed to grow type %u (%s) in %s: %s", gt->index, gt->e.name,
			     inv->opt[G_MEM], err);
		else
			grow_report(inv, "grew", &r);
	}
	gtables_free(&t);
	gmem_close(&g);
	return ret == -EINVAL ? -EUSAGE : ret;
}

static int cmd_add_type(const struct invocation *inv)
{
	struct gbuild_type ty;
	struct ggrow_result r;
	struct gtables t;
	struct gmem g;
	uint64_t seed;
	char err[512];
	int ret = 0;

	if (inv->nrep != 1) {
		gerr("add-type: exactly one --type NAME:ctx=A,block=B,services=S[,...] is required");
		return -EUSAGE;
	}
	if (gbuild_parse_type(inv->rep[0], &ty, err, sizeof(err)) ||
	    gbuild_resolve(&ty, err, sizeof(err))) {
		gerr("invalid --type '%s': %s", inv->rep[0], err);
		return -EUSAGE;
	}
	ret = layout_seed(inv, &seed);
	if (!ret)
		ret = open_tables(inv, true, &g, &t);
	if (ret)
		return ret;
	ret = ggrow_add_type(&g, &t, &ty, seed, &r, err, sizeof(err));
	if (ret)
		gerr("failed to add type '%s' in %s: %s", ty.name, inv->opt[G_MEM], err);
	else
		grow_report(inv, "added", &r);
	gtables_free(&t);
	gmem_close(&g);
	return ret == -EINVAL ? -EUSAGE : ret;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	/* clat-guest plays the VM driver: inside a guest, a file on hugetlbfs
	 * is guest RAM at its guest-physical addresses. */
	gmem_guest_view(true);
	return tool_main(&clat_guest, argc - 1, argv + 1);
}
