// SPDX-License-Identifier: GPL-2.0
/* Frames for fuzz_datapath: a deterministic PRNG, a generator of
 * Ethernet/VLAN/IPv4/IPv6/TCP/UDP frames with bogus lengths, extension
 * chains, fragments and flag soup, truncation at header boundaries and bit
 * flips, and the named fixtures (regressions) in hex.  The header bytes are
 * appended with lib/frames.h; the values here are deliberately random. */
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include "dp_frames.h"

/* ---- deterministic PRNG (xorshift64*) ------------------------------------- */

static uint64_t rng;

void dp_seed(uint64_t seed)
{
	rng = seed;
}

uint32_t dp_rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 32);
}

static uint32_t below(uint32_t n) { return n ? dp_rnd() % n : 0; }
bool dp_chance(uint32_t pct)
{
	return below(100) < pct;
}

/* ---- frame building ------------------------------------------------------- */

#define put frame_put
#define put16 frame_put16
#define mark frame_mark

static void put_rand(struct frame *f, uint32_t n)
{
	while (n-- && f->len < FRAME_MAX)
		f->buf[f->len++] = (uint8_t)dp_rnd();
}

static const uint8_t *pick_dst(void)
{
	static const uint8_t *pool[] = { MAC_HOST, MAC_VF1, MAC_VF1, MAC_VF1, MAC_VF2, MAC_VF3,
					 MAC_VF4, MAC_WIRE, MAC_BCAST, MAC_MCAST6 };
	return pool[below(sizeof(pool) / sizeof(pool[0]))];
}

static void build_l4(struct frame *f, uint8_t proto, uint32_t payload)
{
	uint16_t sport = (uint16_t)(40000 + below(24)), dport = dp_chance(50) ? 80 : 53;
	static const uint8_t flags[] = { 0x02, 0x12, 0x10, 0x11, 0x04, 0x14, 0x18, 0x01 };

	if (dp_chance(50)) { /* either side may be the VM's */
		uint16_t t = sport;
		sport = dport;
		dport = t;
	}
	put16(f, sport);
	put16(f, dport);
	if (proto == IPPROTO_TCP) {
		uint8_t doff = dp_chance(90) ? 5 : (uint8_t)below(16);

		put16(f, (uint16_t)dp_rnd());
		put16(f, (uint16_t)dp_rnd());
		put16(f, (uint16_t)dp_rnd());
		put16(f, (uint16_t)dp_rnd());
		put(f, (uint8_t[]){ (uint8_t)(doff << 4),
				    dp_chance(80) ? flags[below(sizeof(flags))] : (uint8_t)dp_rnd() }, 2);
		put16(f, 65535);
		put16(f, 0);
		put16(f, 0);
		if (doff > 5)
			put_rand(f, below((doff - 5) * 4 + 1));
	} else {
		put16(f, (uint16_t)(8 + payload));
		put16(f, 0);
	}
	mark(f);
	put_rand(f, payload);
}

static uint8_t pick_proto(void)
{
	uint32_t r = below(10);

	return r < 5 ? IPPROTO_TCP : r < 8 ? IPPROTO_UDP : r < 9 ? 1 : (uint8_t)dp_rnd();
}

static void build_ipv4(struct frame *f)
{
	uint8_t proto = pick_proto(), ihl = dp_chance(85) ? 5 : (uint8_t)below(16);
	uint32_t payload = below(64), l4 = proto == IPPROTO_TCP ? 20 : 8;
	uint32_t start = f->len, tot = ihl * 4 + l4 + payload;
	uint16_t frag = dp_chance(85) ? 0x4000 : (uint16_t)(dp_chance(50) ? 0x2000 : dp_rnd());
	uint8_t vm = dp_chance(90) ? 10 : (uint8_t)dp_rnd();

	if (dp_chance(15))
		tot = dp_chance(50) ? below(80) : (uint16_t)dp_rnd();
	put(f, (uint8_t[]){ (uint8_t)(0x40 | ihl), 0 }, 2);
	put16(f, (uint16_t)tot);
	put16(f, (uint16_t)dp_rnd());
	put16(f, frag);
	put(f, (uint8_t[]){ 64, proto, 0, 0 }, 4);
	if (dp_chance(50)) {
		put(f, (uint8_t[]){ 198, 18, 10, 1 }, 4);
		put(f, (uint8_t[]){ 198, 18, 10, vm }, 4);
	} else {
		put(f, (uint8_t[]){ 198, 18, 10, vm }, 4);
		put(f, (uint8_t[]){ 198, 18, 10, 1 }, 4);
	}
	while (f->len < start + ihl * 4 && f->len < FRAME_MAX)
		f->buf[f->len++] = 1; /* options: NOPs */
	mark(f);
	build_l4(f, proto, payload);
}

static void build_ipv6(struct frame *f)
{
	static const uint8_t exts[] = { 0, 43, 60, 44, 0, 60 };
	uint8_t next[8], proto = pick_proto();
	uint32_t payload = below(64), plen_at, start, n = dp_chance(50) ? 0 : below(7), i;
	uint8_t a[16] = { 0xfd, [15] = 1 }, b[16] = { 0xfd, [15] = 0x10 };

	for (i = 0; i < n; i++)
		next[i] = dp_chance(90) ? exts[below(sizeof(exts))] : (uint8_t)dp_rnd();
	next[n] = proto;
	put(f, (uint8_t[]){ 0x60, 0, 0, 0 }, 4);
	plen_at = f->len;
	put16(f, 0);
	put(f, (uint8_t[]){ next[0], 64 }, 2);
	put(f, dp_chance(50) ? a : b, 16);
	put(f, f->buf[f->len - 1] == 1 ? b : a, 16);
	mark(f);
	start = f->len;
	for (i = 0; i < n; i++) {
		uint8_t hl = dp_chance(80) ? (uint8_t)below(2) : (uint8_t)dp_rnd();
		uint32_t olen = (hl + 1) * 8u, k;

		put(f, (uint8_t[]){ next[i + 1], hl }, 2);
		for (k = 2; k < olen && f->len < FRAME_MAX; k++)
			f->buf[f->len++] = 0;
		mark(f);
	}
	build_l4(f, proto, payload);
	if (plen_at + 2 <= FRAME_MAX) {
		uint32_t plen = f->len - start;

		if (dp_chance(15))
			plen = dp_chance(50) ? below(plen + 1) : (uint16_t)dp_rnd();
		f->buf[plen_at] = (uint8_t)(plen >> 8);
		f->buf[plen_at + 1] = (uint8_t)plen;
	}
}

void dp_build(struct frame *f, bool tx)
{
	static const uint16_t tpids[] = { 0x8100, 0x88a8, 0x8100, 0x9100 };
	uint32_t i, ntags = dp_chance(70) ? 0 : below(4), r;
	const uint8_t *dst = pick_dst();

	memset(f, 0, sizeof(*f));
	put(f, dst, 6);
	put(f, tx ? MAC_VF1 : MAC_WIRE, 6);
	if (dp_chance(5))
		f->buf[below(6)] ^= (uint8_t)(1 << below(8)); /* near miss of a known MAC */
	mark(f);
	for (i = 0; i < ntags; i++) {
		put16(f, tpids[below(4)]);
		mark(f);
		put16(f, dp_chance(60) ? 100 : dp_chance(50) ? 0 : (uint16_t)dp_rnd());
		mark(f);
	}
	r = below(10);
	if (r < 4) {
		put16(f, 0x0800);
		build_ipv4(f);
	} else if (r < 8) {
		put16(f, 0x86dd);
		build_ipv6(f);
	} else if (r < 9) {
		put16(f, 0x0806);
		put_rand(f, 28);
	} else {
		put16(f, (uint16_t)dp_rnd());
		put_rand(f, below(40));
	}
}

/* Truncation at (or near) a header boundary, or byte flips. */
void dp_mutate(struct frame *f)
{
	uint32_t n, i;

	if (f->ncut && dp_chance(30)) {
		uint32_t c = f->cut[below(f->ncut)] + below(5) - 2;

		if (c < f->len)
			f->len = c;
	}
	if (dp_chance(20)) {
		n = 1 + below(4);
		for (i = 0; i < n && f->len; i++)
			f->buf[below(f->len)] ^= (uint8_t)(1 << below(8));
	}
	if (f->len < 14) /* the kernel refuses shorter test frames */
		f->len = 14;
}

/* ---- named fixtures ------------------------------------------------------ */

/* Frames that once broke a rule, or that sit on a parser edge.  Each runs
 * through clat_rx and clat_tx before any random frame. */
const struct dp_fixture dp_fixtures[] = {
	{ "ipv4-ihl-0", "02c100000001" "02aa00000009" "0800"
			"40000028000040000406000000c6120a01c6120a0a" "9c40005000000000000000005002ffff00000000" },
	{ "ipv4-totlen-below-ihl", "02c100000001" "02aa00000009" "0800"
				   "45000010000040000406000000c6120a01c6120a0a" "9c40005000000000000000005002ffff00000000" },
	{ "ipv4-ihl-15-past-end", "02c100000001" "02aa00000009" "0800"
				  "4f000028000040000406000000c6120a01c6120a0a" "9c400050" },
	{ "tcp-doff-past-totlen", "02c100000001" "02aa00000009" "0800"
				  "45000028000040000406000000c6120a01c6120a0a" "9c4000500000000000000000f002ffff00000000" },
	{ "ipv6-5-hopopts-chain", "02c100000001" "02aa00000009" "86dd"
				  "6000000000280040" "fd000000000000000000000000000001" "fd000000000000000000000000000010"
				  "0000000000000000" "0000000000000000" "0000000000000000" "0000000000000000" "0600000000000000" },
	{ "ipv6-ext-longer-than-payload", "02c100000001" "02aa00000009" "86dd"
					  "6000000000080040" "fd000000000000000000000000000001" "fd000000000000000000000000000010"
					  "06ff000000000000" "9c40005000000000000000005002ffff00000000" },
	{ "ipv6-fragment-header", "02c100000001" "02aa00000009" "86dd"
				  "60000000001c2c40" "fd000000000000000000000000000001" "fd000000000000000000000000000010"
				  "1100000100000001" "9c4000350014000000000000" },
	{ "qinq-then-third-tag", "02c100000002" "02aa00000009" "88a8" "0064" "8100" "0007" "8100" "0001" "0800"
				 "45000028000040000406000000c6120a01c6120a0a" },
	{ "vlan0-priority-tag-to-vf1", "02c100000001" "02aa00000009" "8100" "e000" "0800"
				       "4500001c000040000411000000c6120a01c6120a0a" "9c40003500080000" },
	{ "tcp-syn-rst-fin-soup", "02c100000001" "02aa00000009" "0800"
				  "45000028000040000406000000c6120a01c6120a0a" "9c4100500000000000000000503fffff00000000" },
	{ "ipv4-mf-fragment", "02c100000001" "02aa00000009" "0800"
			      "4500001c000020000411000000c6120a01c6120a0a" "9c40003500080000" },
};
const unsigned int dp_nfixtures = sizeof(dp_fixtures) / sizeof(dp_fixtures[0]);
