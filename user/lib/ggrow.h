/* SPDX-License-Identifier: GPL-2.0 */
/* Grows live guest tables the way a VM driver would: more capacity for a
 * type (new blocks and pages scattered over free guest memory, a re-rooted
 * CLAT when a level is needed, one new capacity segment) or one more
 * service type.  Existing pages and blocks never move, so every live
 * context keeps its service number.  The BAT generation is bumped last. */
#ifndef CLAT_GGROW_H
#define CLAT_GGROW_H

#include <stddef.h>
#include <stdint.h>

#include "gbuild.h"
#include "gtables.h"

struct ggrow_result {
	uint32_t type;
	uint32_t old_capacity, capacity;
	uint32_t old_levels, levels;
	uint32_t new_pages, new_blocks;
	struct clat_seg seg;       /* the segment added */
	uint32_t generation;       /* the BAT's new generation */
	uint64_t clat_gpa;         /* the (possibly new) root */
};

/* Grows type `type` of the validated tables t to `capacity` services.
 * seed places the new pages.  -EINVAL (message in err) for a request the
 * tables cannot take; nothing is written unless everything fits. */
int ggrow_capacity(struct gmem *g, const struct gtables *t, uint32_t type, uint32_t capacity,
		   uint64_t seed, struct ggrow_result *r, char *err, size_t errlen);

/* Adds a (resolved) service type after the existing ones. */
int ggrow_add_type(struct gmem *g, const struct gtables *t, const struct gbuild_type *ty,
		   uint64_t seed, struct ggrow_result *r, char *err, size_t errlen);

#endif
