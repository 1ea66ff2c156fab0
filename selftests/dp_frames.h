/* SPDX-License-Identifier: GPL-2.0 */
/* Frames for fuzz_datapath (see dp_frames.c). */
#ifndef CLAT_DP_FRAMES_H
#define CLAT_DP_FRAMES_H

#include <stdbool.h>
#include <stdint.h>

#define FMAX 320

static const uint8_t MAC_HOST[6] = { 0x02, 0xc1, 0, 0, 0, 0 };
static const uint8_t MAC_VF1[6] = { 0x02, 0xc1, 0, 0, 0, 1 };
static const uint8_t MAC_VF2[6] = { 0x02, 0xc1, 0, 0, 0, 2 }; /* on VLAN 100 */
static const uint8_t MAC_VF3[6] = { 0x02, 0xc1, 0, 0, 0, 3 }; /* QUIESCED */
static const uint8_t MAC_VF4[6] = { 0x02, 0xc1, 0, 0, 0, 4 }; /* ACTIVE, no port */
static const uint8_t MAC_WIRE[6] = { 0x02, 0xaa, 0, 0, 0, 9 };
static const uint8_t MAC_BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t MAC_MCAST[6] = { 0x33, 0x33, 0, 0, 0, 1 };

struct frame {
	uint8_t b[FMAX];
	uint32_t len;
	uint32_t cut[24]; /* header boundaries, for truncation */
	int ncut;
};

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

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
bool dp_from_hex(const char *hex, struct frame *f);

#endif
