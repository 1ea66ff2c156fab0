/* SPDX-License-Identifier: GPL-2.0 */
/* The checks of one BAT entry (gentry.c). */
#ifndef CLAT_GENTRY_H
#define CLAT_GENTRY_H

#include <stddef.h>

#include "gtables.h"

/* The checks gtables_load makes of one BAT entry (gt->e and gt->index set),
 * before any walk: fields, segments, and a capacity that fits guest memory.
 * Sets gt->per_block. */
int gtype_check_entry(const struct gmem *g, struct gtype *gt, char *err, size_t errlen);

/* Checks the entry's capacity segments; one message into err. */
int gtype_check_segments(const struct gtype *t, char *err, size_t errlen);

#endif
