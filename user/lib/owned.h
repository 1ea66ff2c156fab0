/* SPDX-License-Identifier: GPL-2.0 */
/* Page ownership of an attached guest's tables (owned.c). */
#ifndef CLAT_OWNED_H
#define CLAT_OWNED_H

#include <stddef.h>
#include <stdint.h>

#include "gtables.h"

/* Which guest pages the attached tables own, a bit per 4 KiB page: a
 * resync checks new pages and blocks against it instead of walking the
 * old tables again.  Pinned as PIN_OWNED_FMT, never read by the datapath. */
struct shadow_owned {
	int fd;
	uint64_t *bits;
	size_t words, len;
};

/* Builds the map for the validated tables t; pins it as fd in dir (fd -1:
 * unpins); opens a pinned one. */
int shadow_owned_build(uint32_t fn, const struct gmem *g, const struct gtables *t,
		       struct shadow_owned *o);
int shadow_owned_pin(const char *dir, uint32_t fn, int fd);
int shadow_owned_open(const char *dir, uint32_t fn, struct shadow_owned *o);
void shadow_owned_close(struct shadow_owned *o);

#endif
