/* SPDX-License-Identifier: GPL-2.0 */
/* Test frames, built in one place for every C test and the benchmark:
 * Ethernet with VLAN tags, IPv4 (checksummed here), IPv6, TCP and UDP
 * headers appended to a struct frame, plus the MAC addresses the tests give
 * the host, the VFs and the wire.  Values are in host order; the builders
 * store them in network order at any alignment (frame offsets are not
 * aligned, and UBSan rightly refuses misaligned stores). */
#ifndef CLAT_TEST_FRAMES_H
#define CLAT_TEST_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX 320
#define FRAME_CUTS 24

struct frame {
	uint8_t buf[FRAME_MAX];
	uint32_t len;
	uint32_t cut[FRAME_CUTS]; /* header boundaries, for truncation (fuzzers) */
	int ncut;
};

extern const uint8_t MAC_HOST[6];  /* fn 0 */
extern const uint8_t MAC_VF1[6];
extern const uint8_t MAC_VF2[6];
extern const uint8_t MAC_VF3[6];
extern const uint8_t MAC_VF4[6];
extern const uint8_t MAC_WIRE[6];  /* a station behind the uplink */
extern const uint8_t MAC_BCAST[6];
extern const uint8_t MAC_MCAST4[6]; /* 01:00:5e:00:00:01 */
extern const uint8_t MAC_MCAST6[6]; /* 33:33:00:00:00:01 */

enum { TH_FIN = 1, TH_SYN = 2, TH_RST = 4, TH_PSH = 8, TH_ACK = 16 };

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)(v >> 16));
	wr16(p + 2, (uint16_t)v);
}

/* Appends n bytes (cut at FRAME_MAX). */
void frame_put(struct frame *f, const void *p, uint32_t n);
void frame_put16(struct frame *f, uint16_t v);
void frame_fill(struct frame *f, uint8_t byte, uint32_t n);
/* Records the current length as a header boundary. */
void frame_mark(struct frame *f);

/* The Internet checksum (RFC 1071) of len bytes. */
uint16_t frame_csum(const void *p, size_t len);

/* dst, src, ntags tags (two: an 802.1ad outer tag, then 802.1Q), proto. */
void frame_eth(struct frame *f, const uint8_t dst[6], const uint8_t src[6], int ntags,
	       const uint16_t *vids, uint16_t proto);
/* A 20-byte IPv4 header carrying l4len bytes, its checksum filled in.
 * frag is the flags/fragment-offset word (0x2000: more fragments). */
void frame_ipv4(struct frame *f, uint8_t proto, uint32_t saddr, uint32_t daddr, uint32_t l4len,
		uint16_t id, uint16_t frag);
/* A 40-byte IPv6 header, no extension header. */
void frame_ipv6(struct frame *f, uint8_t next, const uint8_t saddr[16], const uint8_t daddr[16],
		uint32_t plen);
void frame_udp(struct frame *f, uint16_t sport, uint16_t dport, uint32_t payload);
/* A 20-byte TCP header (no options, checksum left 0). */
void frame_tcp(struct frame *f, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
	       uint8_t flags, uint16_t window);

/* A frame from hex digits; false on a bad digit or fewer than 14 bytes. */
bool frame_from_hex(const char *hex, struct frame *f);

#endif
