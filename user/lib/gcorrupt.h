/* SPDX-License-Identifier: GPL-2.0 */
/* Damaged guest tables, on purpose, for tests (gcorrupt.c). */
#ifndef CLAT_GCORRUPT_H
#define CLAT_GCORRUPT_H

#include <stddef.h>

#include "gtables.h"

/* Damages valid tables in place the way a buggy or hostile guest would.
 * type < 0 picks the first type the kind applies to.  msg says what changed.
 * "truncated" shrinks the file: g must not be dereferenced afterwards. */
extern const char *const gbuild_corrupt_kinds[]; /* NULL-terminated */
int gbuild_corrupt(struct gmem *g, uint64_t bat_gpa, const char *kind, int type, char *msg,
		   size_t msglen);

#endif
