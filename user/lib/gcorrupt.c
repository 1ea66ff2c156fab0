// SPDX-License-Identifier: GPL-2.0
/* Damages valid guest tables in place the way a buggy or hostile guest
 * would, for tests: each kind breaks one rule gtables_load enforces. */
#include "gcorrupt.h"
#include "gbuild.h"
#include "glookup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *const gbuild_corrupt_kinds[] = {
	"gpa-out-of-range", "misaligned", "cycle", "shared-page", "too-many-levels",
	"ctx-not-dividing", "bad-magic", "bad-version", "truncated", "capacity-mismatch",
	"bad-ctx-state", "ctx-selfcheck", "shared-new-block", NULL,
};

struct corrupt {
	struct gmem *g;
	struct gtables t;
	struct gtype *gt;
	char *msg;
	size_t msglen;
};

/* Rewrites one 64-bit CLAT entry, logging old -> new. */
static int poke_entry(struct corrupt *c, uint32_t level, uint64_t entry_gpa, uint64_t v)
{
	uint64_t *p = gmem_ptr(c->g, entry_gpa, sizeof(*p));

	snprintf(c->msg, c->msglen, "type %u (%s): level %u entry at GPA 0x%" PRIx64
		 ": 0x%" PRIx64 " -> 0x%" PRIx64, c->gt->index, c->gt->e.name, level, entry_gpa,
		 *p, v);
	*p = v;
	return 0;
}

static struct clat_bat_entry *bat_entry(struct corrupt *c)
{
	return gmem_ptr(c->g, c->gt->entry_gpa, sizeof(struct clat_bat_entry));
}

static struct clat_ctx *ctx_of(struct corrupt *c, uint32_t svc)
{
	return gmem_ptr(c->g, gtype_ctx_gpa(c->gt, svc), sizeof(struct clat_ctx));
}

static int corrupt_walk(struct corrupt *c, const char *kind)
{
	struct gtype *gt = c->gt;
	uint32_t n = gt->e.levels;
	struct gtype_path a, b;

	gtype_path(gt, 1, &a);
	if (!strcmp(kind, "gpa-out-of-range")) {
		gtype_path(gt, gt->e.capacity, &b);
		return poke_entry(c, n, b.entry_gpa[n - 1], c->g->size);
	}
	if (!strcmp(kind, "shared-new-block")) {
		/* The last block (after a grow: a new one) aliases the first. */
		gtype_path(gt, gt->e.capacity, &b);
		return poke_entry(c, n, b.entry_gpa[n - 1], a.block_gpa);
	}
	if (!strcmp(kind, "misaligned"))
		return poke_entry(c, n, a.entry_gpa[n - 1], a.block_gpa + 8);
	if (!strcmp(kind, "cycle")) {
		/* Back to the level-1 page: from level 2 if that is not the last
		 * level, else level 1 points at itself. */
		if (n >= 3)
			return poke_entry(c, 2, a.entry_gpa[1], gt->page_gpa[0]);
		return poke_entry(c, 1, a.entry_gpa[0], gt->page_gpa[0]);
	}
	/* shared-page: two entries, one block; or a block that is a CLAT page. */
	if (gt->nblocks >= 2) {
		gtype_path(gt, gt->per_block + 1, &b);
		return poke_entry(c, n, b.entry_gpa[n - 1], a.block_gpa);
	}
	return poke_entry(c, n, a.entry_gpa[n - 1], gt->page_gpa[0]);
}

static int corrupt_bat(struct corrupt *c, const char *kind)
{
	struct clat_bat_hdr *h = gmem_ptr(c->g, c->t.bat_gpa, sizeof(*h));
	struct clat_bat_entry *e = bat_entry(c);
	uint32_t a;

	if (!strcmp(kind, "bad-magic")) {
		snprintf(c->msg, c->msglen, "BAT at GPA 0x%" PRIx64 ": magic 0x%08x -> 0xdeadbeef",
			 c->t.bat_gpa, h->magic);
		h->magic = 0xdeadbeef;
	} else if (!strcmp(kind, "bad-version")) {
		/* The version before: tables left by an older clat. */
		snprintf(c->msg, c->msglen, "BAT at GPA 0x%" PRIx64 ": version %u -> %u",
			 c->t.bat_gpa, h->version, CLAT_BAT_VERSION - 1);
		h->version = CLAT_BAT_VERSION - 1;
	} else if (!strcmp(kind, "too-many-levels")) {
		snprintf(c->msg, c->msglen, "type %u (%s): levels %u -> %u", c->gt->index,
			 e->name, e->levels, CLAT_MAX_LEVELS + 1);
		e->levels = CLAT_MAX_LEVELS + 1;
	} else if (!strcmp(kind, "ctx-not-dividing")) {
		for (a = e->ctx_size + 8; e->block_size % a == 0; a += 8)
			;
		snprintf(c->msg, c->msglen, "type %u (%s): ctx_size %u -> %u (block size %u)",
			 c->gt->index, e->name, e->ctx_size, a, e->block_size);
		e->ctx_size = a;
	} else { /* capacity-mismatch */
		uint64_t more = (uint64_t)c->gt->e.capacity + c->gt->per_block;
		uint64_t lim = c->gt->per_block;
		uint32_t cap = e->capacity, x;

		for (x = 0; x < e->levels; x++)
			lim *= e->clat_entries;
		/* One more block than the tables hold (an entry is missing), or
		 * one fewer (an entry is extra) when the tables are full. */
		if (more <= lim && more <= UINT32_MAX)
			e->capacity = (uint32_t)more;
		else if (cap > c->gt->per_block) {
			struct clat_seg *last = &e->seg[e->nsegs - 1];

			e->capacity = cap - c->gt->per_block;
			/* Keep the segments inside: the walk is what must fail. */
			if (last->base + last->size > e->capacity && last->size > c->gt->per_block)
				last->size -= c->gt->per_block;
		} else
			return gbuild_say(c->msg, c->msglen, "capacity-mismatch needs a type with room "
					  "for one more block or more than one block");
		snprintf(c->msg, c->msglen, "type %u (%s): capacity %u -> %u", c->gt->index,
			 e->name, cap, e->capacity);
	}
	return 0;
}

static int corrupt_ctx(struct corrupt *c, const char *kind)
{
	uint32_t svc = c->gt->e.capacity / 2 + 1;
	struct clat_ctx *x = ctx_of(c, svc);
	uint64_t gpa = gtype_ctx_gpa(c->gt, svc);

	if (!strcmp(kind, "bad-ctx-state")) {
		snprintf(c->msg, c->msglen, "type %u (%s): context of svc %u at GPA 0x%" PRIx64
			 ": state word 0x%" PRIx64 " -> 0x7", c->gt->index, c->gt->e.name, svc, gpa,
			 (uint64_t)x->state_word);
		x->state_word = 7;
		return 0;
	}
	snprintf(c->msg, c->msglen, "type %u (%s): context of svc %u at GPA 0x%" PRIx64
		 ": made LIVE with svc field %u", c->gt->index, c->gt->e.name, svc, gpa, svc + 1);
	x->state_word = CLAT_SLOT_LIVE | (0x5eedULL << CLAT_SLOT_TAG_SHIFT);
	x->svc = svc + 1;
	x->type = (uint16_t)c->gt->index;
	return 0;
}

static int corrupt_truncate(struct corrupt *c)
{
	/* Cut the file at the BAT: its header now ends past the end. */
	uint64_t size = c->t.bat_gpa;

	if (ftruncate(c->g->fd, (off_t)size) < 0) {
		int e = errno;

		gbuild_say(c->msg, c->msglen, "ftruncate: %s", strerror(e));
		return -e;
	}
	snprintf(c->msg, c->msglen, "guest memory truncated from %" PRIu64 " to %" PRIu64
		 " bytes, at the BAT (GPA 0x%" PRIx64 ")", c->g->size, size, c->t.bat_gpa);
	return 0;
}

static bool kind_fits(const char *kind, const struct gtype *gt)
{
	if (!strcmp(kind, "cycle"))
		return gt->e.levels >= 2;
	return true;
}

int gbuild_corrupt(struct gmem *g, uint64_t bat_gpa, const char *kind, int type, char *msg,
		   size_t msglen)
{
	struct corrupt c = { .g = g, .msg = msg, .msglen = msglen };
	char err[512];
	unsigned int i;
	int ret;

	for (i = 0; gbuild_corrupt_kinds[i] && strcmp(gbuild_corrupt_kinds[i], kind); i++)
		;
	if (!gbuild_corrupt_kinds[i])
		return gbuild_say(msg, msglen, "unknown kind '%s'", kind);
	if (!g->writable)
		return gbuild_say(msg, msglen, "guest memory is read-only"), -EBADF;
	ret = gtables_load(g, bat_gpa, &c.t, err, sizeof(err));
	if (ret)
		return gbuild_say(msg, msglen, "the tables are not valid to begin with: %s", err), -EIO;
	if (type >= (int)c.t.ntypes) {
		gtables_free(&c.t);
		return gbuild_say(msg, msglen, "no type %d: the BAT has %u", type, c.t.ntypes);
	}
	for (i = type < 0 ? 0 : (unsigned int)type; i < c.t.ntypes; i++)
		if (kind_fits(kind, &c.t.types[i]) || type >= 0)
			break;
	if (i == c.t.ntypes || !kind_fits(kind, &c.t.types[i])) {
		gtables_free(&c.t);
		return gbuild_say(msg, msglen, "%s needs a type with at least 2 levels", kind), -ENOTSUP;
	}
	c.gt = &c.t.types[i];
	if (!strcmp(kind, "truncated"))
		ret = corrupt_truncate(&c);
	else if (!strcmp(kind, "bad-ctx-state") || !strcmp(kind, "ctx-selfcheck"))
		ret = corrupt_ctx(&c, kind);
	else if (!strcmp(kind, "gpa-out-of-range") || !strcmp(kind, "misaligned") ||
		 !strcmp(kind, "cycle") || !strcmp(kind, "shared-page") ||
		 !strcmp(kind, "shared-new-block"))
		ret = corrupt_walk(&c, kind);
	else
		ret = corrupt_bat(&c, kind);
	gtables_free(&c.t);
	return ret;
}
