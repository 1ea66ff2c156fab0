/* SPDX-License-Identifier: GPL-2.0 */
/* Frames for fuzz_datapath (see dp_frames.c). */
#ifndef CLAT_DP_FRAMES_H
#define CLAT_DP_FRAMES_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/frames.h"

/* Deterministic: the same seed gives the same frames. */
void dp_seed(uint64_t seed);
uint32_t dp_rnd(void);
bool dp_chance(uint32_t pct);
/* A random frame from the wire (rx) or from fn 1's VF (tx). */
void dp_build(struct frame *f, bool tx);
/* Cut near a header boundary and/or flip bits; never below 14 bytes. */
void dp_mutate(struct frame *f);

/* Frames that once broke a rule, or that sit on a parser edge. */
struct dp_fixture {
	const char *name;
	const char *hex;
};
extern const struct dp_fixture dp_fixtures[];
extern const unsigned int dp_nfixtures;

#endif
