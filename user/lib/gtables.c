// SPDX-License-Identifier: GPL-2.0
/* Validation and flattening of a guest's BAT/CLAT/blocks.
 *
 * This plays the IOMMU: the tables live in guest memory and the guest may be
 * buggy or hostile, so every GPA is checked (aligned, inside the file, owned
 * by exactly one table) before the device shadow is built from it.  Each
 * value is read from guest memory exactly once, into a local, so a guest
 * that rewrites its tables while we look cannot make two checks disagree.
 *
 * Cost is linear in the size of the tables: overlaps are found with a bitmap
 * of guest pages (one bit per 4 KiB page), not by comparing ranges pairwise.
 */
#include "gtables.h"
#include "gentry.h"
#include "gload.h"
#include "glookup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What already owns a guest page, for error messages. */
enum owner_kind { OWN_NONE, OWN_BAT, OWN_PAGE, OWN_BLOCK };

struct owner {
	enum owner_kind kind;
	uint32_t type;
	uint32_t level;   /* OWN_PAGE */
	uint32_t index;   /* page or block index */
	uint64_t gpa;
	uint64_t len;
};

/* NUL-terminated within the field and printable: safe to put in a message. */
static bool name_ok(const char name[16])
{
	size_t i;

	for (i = 0; i < 16 && name[i]; i++)
		if (name[i] < 0x20 || name[i] > 0x7e)
			return false;
	return i < 16;
}

static void vmsg(char *buf, size_t len, const struct gtype *gt, const char *fmt, va_list ap)
{
	size_t n = 0;

	if (!buf || !len)
		return;
	buf[0] = '\0';
	if (gt) {
		if (name_ok(gt->e.name) && gt->e.name[0])
			n = (size_t)snprintf(buf, len, "type %u (%s): ", gt->index, gt->e.name);
		else
			n = (size_t)snprintf(buf, len, "type %u: ", gt->index);
		if (n >= len)
			return;
	}
	vsnprintf(buf + n, len - n, fmt, ap);
}

/* A hard error: reported at once. */
__attribute__((format(printf, 3, 4)))
int gload_fail(struct loader *l, const struct gtype *gt, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(l->err, l->errlen, gt, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A soft error: the entry is not followed and the walk goes on, so that an
 * overlap found later (which explains garbage read from a shared page) is
 * reported instead.  Only the first one is kept. */
__attribute__((format(printf, 3, 4)))
static void defer(struct loader *l, const struct gtype *gt, const char *fmt, ...)
{
	va_list ap;

	if (l->deferred[0])
		return;
	va_start(ap, fmt);
	vmsg(l->deferred, sizeof(l->deferred), gt, fmt, ap);
	va_end(ap);
}

/* ---- Page ownership ------------------------------------------------------ */

static bool page_owned(const struct loader *l, uint64_t pfn)
{
	return l->owned[pfn / 64] & (1ULL << (pfn % 64));
}

static void own_range(struct loader *l, uint64_t gpa, uint64_t len)
{
	uint64_t pfn;

	for (pfn = gpa >> PAGE_SHIFT; pfn < (gpa + len) >> PAGE_SHIFT; pfn++)
		l->owned[pfn / 64] |= 1ULL << (pfn % 64);
}

/* First already-owned page of [gpa, gpa + len), or UINT64_MAX. */
static uint64_t first_owned(const struct loader *l, uint64_t gpa, uint64_t len)
{
	uint64_t pfn;

	for (pfn = gpa >> PAGE_SHIFT; pfn < (gpa + len) >> PAGE_SHIFT; pfn++)
		if (page_owned(l, pfn))
			return pfn << PAGE_SHIFT;
	return UINT64_MAX;
}

static bool in_range(uint64_t x, uint64_t start, uint64_t len)
{
	return x >= start && x - start < len;
}

/* Slow path, only on error: which table owns the page at gpa. */
static struct owner find_owner(const struct loader *l, uint64_t gpa)
{
	const struct gtables *t = l->t;
	uint32_t ti, i;

	if (in_range(gpa, t->bat_gpa, CLAT_PAGE_SIZE))
		return (struct owner){ OWN_BAT, 0, 0, 0, t->bat_gpa, CLAT_PAGE_SIZE };
	for (ti = 0; ti < t->ntypes; ti++) {
		const struct gtype *gt = &t->types[ti];

		for (i = 0; gt->page_gpa && i < gt->npages; i++)
			if (in_range(gpa, gt->page_gpa[i], CLAT_PAGE_SIZE))
				return (struct owner){ OWN_PAGE, ti, l->wi[ti].level[i], i,
						       gt->page_gpa[i], CLAT_PAGE_SIZE };
		for (i = 0; gt->block_gpa && i < gt->nblocks; i++)
			if (in_range(gpa, gt->block_gpa[i], gt->e.block_size))
				return (struct owner){ OWN_BLOCK, ti, 0, i, gt->block_gpa[i],
						       gt->e.block_size };
	}
	return (struct owner){ OWN_NONE, 0, 0, 0, gpa, 0 };
}

static void owner_name(const struct loader *l, const struct owner *o, char *buf, size_t len)
{
	const struct gtype *gt = &l->t->types[o->type];

	switch (o->kind) {
	case OWN_BAT:
		snprintf(buf, len, "the BAT page at GPA 0x%" PRIx64, o->gpa);
		break;
	case OWN_PAGE:
		snprintf(buf, len, "type %u (%s) level %u CLAT page at GPA 0x%" PRIx64, o->type,
			 gt->e.name, o->level, o->gpa);
		break;
	case OWN_BLOCK:
		snprintf(buf, len, "type %u (%s) block %u at GPA 0x%" PRIx64 " (%" PRIu64 " bytes)",
			 o->type, gt->e.name, o->index, o->gpa, o->len);
		break;
	default:
		snprintf(buf, len, "another table");
	}
}

/* Claims [gpa, gpa+len) for a CLAT page (is_page) or a block of type gt.
 * where names the entry that points there, for the message. */
static int claim(struct loader *l, const struct gtype *gt, const char *where, uint64_t gpa,
		 uint64_t len, bool is_page)
{
	uint64_t hit = first_owned(l, gpa, len);
	struct owner o;
	char other[160];

	if (hit == UINT64_MAX) {
		own_range(l, gpa, len);
		return 0;
	}
	o = find_owner(l, hit);
	if (is_page && o.kind == OWN_PAGE && o.type == gt->index && o.gpa == gpa)
		return gload_fail(l, gt, "%s: cycle: page at GPA 0x%" PRIx64
				  " already visited (as the level %u page %u)", where, gpa, o.level,
				  o.index);
	owner_name(l, &o, other, sizeof(other));
	if (o.gpa == gpa)
		return gload_fail(l, gt, "%s: shared page: the %s at GPA 0x%" PRIx64 " is also %s", where,
				  is_page ? "CLAT page" : "block", gpa, other);
	return gload_fail(l, gt, "%s: the %s [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps %s", where,
		    is_page ? "CLAT page" : "block", gpa, gpa + len, other);
}

/* Aligned and inside guest memory; otherwise a deferred error and false. */
static bool gpa_usable(struct loader *l, const struct gtype *gt, const char *where, uint64_t gpa,
		       uint64_t len)
{
	if (gpa % CLAT_PAGE_SIZE) {
		defer(l, gt, "%s: misaligned (not a multiple of %u)", where, CLAT_PAGE_SIZE);
		return false;
	}
	if (!gmem_ptr(l->g, gpa, len)) {
		defer(l, gt, "%s: outside guest memory (size 0x%" PRIx64 ")", where, l->g->size);
		return false;
	}
	return true;
}

/* ---- BAT ----------------------------------------------------------------- */

static int load_bat(struct loader *l, uint64_t bat_gpa)
{
	struct gtables *t = l->t;
	const void *p;
	uint32_t i;

	if (bat_gpa == CLAT_GPA_NONE)
		return gload_fail(l, NULL, "BAT at GPA 0: GPA 0 is never a table");
	if (bat_gpa % CLAT_PAGE_SIZE)
		return gload_fail(l, NULL, "BAT at GPA 0x%" PRIx64 ": misaligned (not a multiple of %u)",
				  bat_gpa, CLAT_PAGE_SIZE);
	p = gmem_ptr(l->g, bat_gpa, sizeof(t->hdr));
	if (!p)
		return gload_fail(l, NULL, "BAT at GPA 0x%" PRIx64 ": truncated: header ends past guest "
				  "memory (size 0x%" PRIx64 ")", bat_gpa, l->g->size);
	memcpy(&t->hdr, p, sizeof(t->hdr));
	if (t->hdr.magic != CLAT_BAT_MAGIC)
		return gload_fail(l, NULL, "BAT at GPA 0x%" PRIx64 ": bad magic 0x%08x (expected 0x%08x)",
				  bat_gpa, t->hdr.magic, CLAT_BAT_MAGIC);
	/* One version only: an older BAT places flows differently (and its
	 * contexts have another layout), so reading it would misplace them. */
	if (t->hdr.version != CLAT_BAT_VERSION)
		return gload_fail(l, NULL, "BAT at GPA 0x%" PRIx64 ": BAT version %u is not supported "
				  "(this clat reads version %u): rebuild the guest tables", bat_gpa,
				  t->hdr.version, CLAT_BAT_VERSION);
	if (t->hdr.ntypes < 1 || t->hdr.ntypes > CLAT_MAX_TYPES)
		return gload_fail(l, NULL, "BAT at GPA 0x%" PRIx64 ": ntypes %u out of range 1..%u",
				  bat_gpa, t->hdr.ntypes, CLAT_MAX_TYPES);
	p = gmem_ptr(l->g, bat_gpa + sizeof(t->hdr),
		     (uint64_t)t->hdr.ntypes * sizeof(struct clat_bat_entry));
	if (!p)
		return gload_fail(l, NULL, "BAT at GPA 0x%" PRIx64 ": truncated: %u entries end past "
				  "guest memory (size 0x%" PRIx64 ")", bat_gpa, t->hdr.ntypes, l->g->size);
	t->ntypes = t->hdr.ntypes;
	for (i = 0; i < t->ntypes; i++) {
		struct gtype *gt = &t->types[i];

		gt->index = i;
		gt->entry_gpa = bat_gpa + sizeof(t->hdr) + (uint64_t)i * sizeof(gt->e);
		memcpy(&gt->e, (const uint8_t *)p + (size_t)i * sizeof(gt->e), sizeof(gt->e));
	}
	own_range(l, bat_gpa, CLAT_PAGE_SIZE);
	return 0;
}

static int alloc_type(struct gtype *gt, struct walk_info *wi)
{
	uint64_t ntiers = wi->geo.npages * gt->e.clat_entries;

	gt->page_gpa = calloc(wi->geo.npages, sizeof(*gt->page_gpa));
	gt->tiers = malloc(ntiers * sizeof(*gt->tiers));
	gt->block_gpa = calloc(wi->geo.nblocks, sizeof(*gt->block_gpa));
	wi->level = calloc(wi->geo.npages, sizeof(*wi->level));
	wi->local = calloc(wi->geo.npages, sizeof(*wi->local));
	if (!gt->page_gpa || !gt->tiers || !gt->block_gpa || !wi->level || !wi->local)
		return -ENOMEM;
	memset(gt->tiers, 0xff, ntiers * sizeof(*gt->tiers)); /* CLAT_TIER_NONE */
	return 0;
}

/* ---- CLAT walk ----------------------------------------------------------- */

static int push_page(struct loader *l, struct gtype *gt, const char *where, uint64_t gpa,
		     uint32_t level, uint64_t local, uint32_t *idx)
{
	struct walk_info *wi = &l->wi[gt->index];
	int err;

	if (!gpa_usable(l, gt, where, gpa, CLAT_PAGE_SIZE))
		return 1;
	err = claim(l, gt, where, gpa, CLAT_PAGE_SIZE, true);
	if (err)
		return err;
	/* Cannot happen once the capacity check let the entry through; kept so a
	 * logic slip can never write past the arrays. */
	if (gt->npages >= wi->geo.npages)
		return gload_fail(l, gt, "%s: more CLAT pages than capacity %u needs", where,
				  gt->e.capacity);
	*idx = gt->npages++;
	gt->page_gpa[*idx] = gpa;
	wi->level[*idx] = (uint8_t)level;
	wi->local[*idx] = (uint32_t)local;
	return 0;
}

static int push_block(struct loader *l, struct gtype *gt, const char *where, uint64_t gpa,
		      uint32_t *idx)
{
	int err;

	if (!gpa_usable(l, gt, where, gpa, gt->e.block_size))
		return 1;
	err = claim(l, gt, where, gpa, gt->e.block_size, false);
	if (err)
		return err;
	if (gt->nblocks >= l->wi[gt->index].geo.nblocks)
		return gload_fail(l, gt, "%s: more blocks than capacity %u needs", where, gt->e.capacity);
	*idx = gt->nblocks++;
	gt->block_gpa[*idx] = gpa;
	return 0;
}

/* One CLAT page: every entry the capacity needs must be set, every other
 * entry must be empty. */
static int walk_page(struct loader *l, struct gtype *gt, uint32_t p)
{
	struct walk_info *wi = &l->wi[gt->index];
	uint32_t c = gt->e.clat_entries, level = wi->level[p], o, idx;
	uint64_t page = gt->page_gpa[p];
	const uint64_t *pg = gmem_ptr(l->g, page, CLAT_PAGE_SIZE);
	char where[128];
	int err;

	/* Checked when it was listed; NULL now means the file shrank since. */
	if (!pg)
		return gload_fail(l, gt, "level %u page at GPA 0x%" PRIx64 ": no longer inside guest "
				  "memory (it shrank)", level, page);
	for (o = 0; o < c; o++) {
		uint64_t j = (uint64_t)wi->local[p] * c + o;
		uint64_t v = __atomic_load_n(&pg[o], __ATOMIC_RELAXED);
		bool wanted = j < wi->geo.need[level - 1];

		if (v == CLAT_GPA_NONE) {
			if (wanted)
				defer(l, gt, "level %u page at GPA 0x%" PRIx64 " entry %u is empty: "
				      "capacity mismatch: capacity %u needs %" PRIu64 " entries at "
				      "level %u", level, page, o, gt->e.capacity,
				      wi->geo.need[level - 1], level);
			continue;
		}
		if (!wanted) {
			defer(l, gt, "level %u page at GPA 0x%" PRIx64 " entry %u -> 0x%" PRIx64
			      ": capacity mismatch: extra entry, capacity %u needs only %" PRIu64
			      " entries at level %u", level, page, o, v, gt->e.capacity,
			      wi->geo.need[level - 1], level);
			continue;
		}
		snprintf(where, sizeof(where), "level %u page at GPA 0x%" PRIx64 " entry %u -> 0x%"
			 PRIx64, level, page, o, v);
		if (level < gt->e.levels)
			err = push_page(l, gt, where, v, level + 1, j, &idx);
		else
			err = push_block(l, gt, where, v, &idx);
		if (err < 0)
			return err;
		if (err == 0)
			gt->tiers[(uint64_t)p * c + o] = idx;
	}
	return 0;
}

/* Breadth-first from the level-1 page: pages are numbered in the order they
 * are reached, which is (level, offset) order, and blocks likewise, so block
 * b holds services b*P+1 .. b*P+P. */
static int walk_type(struct loader *l, struct gtype *gt)
{
	char where[64];
	uint32_t p, idx;
	int err;

	snprintf(where, sizeof(where), "clat_gpa 0x%" PRIx64, (uint64_t)gt->e.clat_gpa);
	if (gt->e.clat_gpa == CLAT_GPA_NONE)
		return gload_fail(l, gt, "%s: no first-level CLAT page", where);
	err = push_page(l, gt, where, gt->e.clat_gpa, 1, 0, &idx);
	if (err)
		return err < 0 ? err : 0;
	for (p = 0; p < gt->npages; p++) {
		err = walk_page(l, gt, p);
		if (err)
			return err;
	}
	return 0;
}

/* The flattened tiers must give block (svc - 1) / P for every service: true
 * by construction for dense tables, checked so the device never disagrees
 * with the guest. */
static int check_numbering(struct loader *l, const struct gtype *gt)
{
	const struct geom *geo = &l->wi[gt->index].geo;
	uint32_t b, block, element;

	if (gt->npages != geo->npages || gt->nblocks != geo->nblocks)
		return gload_fail(l, gt, "found %u pages and %u blocks, capacity %u needs %" PRIu64
				  " and %" PRIu64, gt->npages, gt->nblocks, gt->e.capacity,
				  geo->npages, geo->nblocks);
	for (b = 0; b < gt->nblocks; b++) {
		uint32_t svc = b * gt->per_block + 1;

		if (gtype_walk(gt, svc, &block, &element) || block != b || element != 0)
			return gload_fail(l, gt, "svc %u does not walk to block %u at GPA 0x%" PRIx64,
					  svc, b, gt->block_gpa[b]);
	}
	return 0;
}

static int check_contexts(struct loader *l, const struct gtype *gt)
{
	uint32_t a = gt->e.ctx_size, per = gt->per_block, b, e;

	for (b = 0; b < gt->nblocks; b++) {
		const uint8_t *blk = gmem_ptr(l->g, gt->block_gpa[b], gt->e.block_size);
		uint32_t first = b * per + 1;
		uint32_t n = gt->e.capacity - first + 1 < per ? gt->e.capacity - first + 1 : per;

		if (gmem_data_hole(&l->data, gt->block_gpa[b], gt->e.block_size))
			continue; /* zeroes: every slot EMPTY */
		if (!blk)
			return gload_fail(l, gt, "block %u at GPA 0x%" PRIx64 ": no longer inside guest "
					  "memory (it shrank)", b, gt->block_gpa[b]);
		for (e = 0; e < n; e++) {
			const struct clat_ctx *c = (const void *)(blk + (size_t)e * a);
			uint64_t sw = __atomic_load_n(&c->state_word, __ATOMIC_RELAXED);
			uint32_t state = (uint32_t)(sw & CLAT_SLOT_STATE_MASK), svc = first + e;
			uint64_t gpa = gt->block_gpa[b] + (uint64_t)e * a;
			uint32_t csvc;
			uint16_t ctype;

			if (state == CLAT_SLOT_EMPTY)
				continue;
			if (state == CLAT_SLOT_CLAIMING)
				return gload_fail(l, gt, "context of svc %u at GPA 0x%" PRIx64 ": slot state "
						  "CLAIMING: a claim was in flight when the tables were "
						  "saved", svc, gpa);
			if (state != CLAT_SLOT_LIVE && state != CLAT_SLOT_RELEASED)
				return gload_fail(l, gt, "context of svc %u at GPA 0x%" PRIx64 ": invalid "
						  "slot state %u", svc, gpa, state);
			csvc = __atomic_load_n(&c->svc, __ATOMIC_RELAXED);
			ctype = __atomic_load_n(&c->type, __ATOMIC_RELAXED);
			if (csvc != svc)
				return gload_fail(l, gt, "context of svc %u at GPA 0x%" PRIx64 " claims "
						  "svc %u", svc, gpa, csvc);
			if (ctype != gt->index)
				return gload_fail(l, gt, "context of svc %u at GPA 0x%" PRIx64 " claims "
						  "type %u", svc, gpa, ctype);
		}
	}
	return 0;
}

static int load_types(struct loader *l)
{
	struct gtables *t = l->t;
	uint32_t i;
	int err = 0;

	for (i = 0; i < t->ntypes; i++) {
		struct gtype *gt = &t->types[i];

		err = gload_check_entry(l, gt);
		if (!err)
			err = gload_geometry(l, gt, &l->wi[i].geo);
		if (!err)
			err = alloc_type(gt, &l->wi[i]);
		if (err == -ENOMEM) {
			gload_fail(l, gt, "out of memory for %" PRIu64 " CLAT pages and %" PRIu64
				   " blocks", l->wi[i].geo.npages, l->wi[i].geo.nblocks);
			return -ENOMEM;
		}
		if (!err)
			err = walk_type(l, gt);
		if (err)
			return err;
	}
	/* Soft errors wait until every type is walked: an overlap with a later
	 * type is the better explanation of what was found. */
	if (l->deferred[0]) {
		snprintf(l->err, l->errlen, "%s", l->deferred);
		return -EINVAL;
	}
	gmem_data_scan(l->g, &l->data);
	for (i = 0; i < t->ntypes; i++) {
		err = check_numbering(l, &t->types[i]);
		if (!err)
			err = check_contexts(l, &t->types[i]);
		if (err)
			break;
	}
	gmem_data_free(&l->data);
	return err;
}

int gtables_load(const struct gmem *g, uint64_t bat_gpa, struct gtables *t, char *err,
		 size_t errlen)
{
	struct loader l = { .g = g, .t = t, .err = err, .errlen = errlen };
	uint64_t words = ((g->size >> PAGE_SHIFT) + 63) / 64;
	uint32_t i;
	int ret;

	memset(t, 0, sizeof(*t));
	t->bat_gpa = bat_gpa;
	if (err && errlen)
		err[0] = '\0';
	l.owned = calloc(words ? words : 1, sizeof(*l.owned));
	if (!l.owned) {
		snprintf(err, errlen, "out of memory for the page map of 0x%" PRIx64 " bytes",
			 g->size);
		return -ENOMEM;
	}
	ret = load_bat(&l, bat_gpa);
	if (!ret)
		ret = load_types(&l);
	for (i = 0; i < CLAT_MAX_TYPES; i++) {
		free(l.wi[i].level);
		free(l.wi[i].local);
	}
	free(l.owned);
	if (ret)
		gtables_free(t);
	return ret;
}

void gtables_free(struct gtables *t)
{
	uint32_t i;

	for (i = 0; i < CLAT_MAX_TYPES; i++) {
		free(t->types[i].page_gpa);
		free(t->types[i].tiers);
		free(t->types[i].block_gpa);
	}
	memset(t, 0, sizeof(*t));
}
