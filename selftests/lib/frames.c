// SPDX-License-Identifier: GPL-2.0
/* Test frames (see frames.h). */
#include <stdio.h>
#include <string.h>

#include "frames.h"

const uint8_t MAC_HOST[6] = { 0x02, 0xc1, 0, 0, 0, 0 };
const uint8_t MAC_VF1[6] = { 0x02, 0xc1, 0, 0, 0, 1 };
const uint8_t MAC_VF2[6] = { 0x02, 0xc1, 0, 0, 0, 2 };
const uint8_t MAC_VF3[6] = { 0x02, 0xc1, 0, 0, 0, 3 };
const uint8_t MAC_VF4[6] = { 0x02, 0xc1, 0, 0, 0, 4 };
const uint8_t MAC_WIRE[6] = { 0x02, 0xaa, 0, 0, 0, 9 };
const uint8_t MAC_BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
const uint8_t MAC_MCAST4[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
const uint8_t MAC_MCAST6[6] = { 0x33, 0x33, 0, 0, 0, 1 };

void frame_put(struct frame *f, const void *p, uint32_t n)
{
	if (f->len + n > FRAME_MAX)
		n = FRAME_MAX - f->len;
	memcpy(f->buf + f->len, p, n);
	f->len += n;
}

void frame_put16(struct frame *f, uint16_t v)
{
	uint8_t b[2];

	wr16(b, v);
	frame_put(f, b, 2);
}

void frame_fill(struct frame *f, uint8_t byte, uint32_t n)
{
	if (f->len + n > FRAME_MAX)
		n = FRAME_MAX - f->len;
	memset(f->buf + f->len, byte, n);
	f->len += n;
}

void frame_mark(struct frame *f)
{
	if (f->ncut < FRAME_CUTS)
		f->cut[f->ncut++] = f->len;
}

uint16_t frame_csum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t sum = 0;

	for (; len > 1; len -= 2, b += 2)
		sum += rd16(b);
	if (len)
		sum += (uint32_t)b[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

void frame_eth(struct frame *f, const uint8_t dst[6], const uint8_t src[6], int ntags,
	       const uint16_t *vids, uint16_t proto)
{
	int i;

	frame_put(f, dst, 6);
	frame_put(f, src, 6);
	for (i = 0; i < ntags; i++) {
		frame_put16(f, i == 0 && ntags == 2 ? 0x88a8 : 0x8100);
		frame_put16(f, vids[i]);
	}
	frame_put16(f, proto);
}

void frame_ipv4(struct frame *f, uint8_t proto, uint32_t saddr, uint32_t daddr, uint32_t l4len,
		uint16_t id, uint16_t frag)
{
	uint8_t h[20] = { 0x45, 0 };

	wr16(h + 2, (uint16_t)(20 + l4len));
	wr16(h + 4, id);
	wr16(h + 6, frag);
	h[8] = 64;
	h[9] = proto;
	wr32(h + 12, saddr);
	wr32(h + 16, daddr);
	wr16(h + 10, frame_csum(h, sizeof(h)));
	frame_put(f, h, sizeof(h));
}

void frame_ipv6(struct frame *f, uint8_t next, const uint8_t saddr[16], const uint8_t daddr[16],
		uint32_t plen)
{
	uint8_t h[40] = { 0x60, 0 };

	wr16(h + 4, (uint16_t)plen);
	h[6] = next;
	h[7] = 64;
	memcpy(h + 8, saddr, 16);
	memcpy(h + 24, daddr, 16);
	frame_put(f, h, sizeof(h));
}

void frame_udp(struct frame *f, uint16_t sport, uint16_t dport, uint32_t payload)
{
	uint8_t h[8] = { 0 };

	wr16(h, sport);
	wr16(h + 2, dport);
	wr16(h + 4, (uint16_t)(8 + payload));
	frame_put(f, h, sizeof(h));
}

void frame_tcp(struct frame *f, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
	       uint8_t flags, uint16_t window)
{
	uint8_t h[20] = { 0 };

	wr16(h, sport);
	wr16(h + 2, dport);
	wr32(h + 4, seq);
	wr32(h + 8, ack);
	h[12] = 5 << 4;
	h[13] = flags;
	wr16(h + 14, window);
	frame_put(f, h, sizeof(h));
}

bool frame_from_hex(const char *hex, struct frame *f)
{
	memset(f, 0, sizeof(*f));
	for (; hex[0] && hex[1] && f->len < FRAME_MAX; hex += 2) {
		unsigned int v;

		if (sscanf(hex, "%2x", &v) != 1)
			return false;
		f->buf[f->len++] = (uint8_t)v;
	}
	return !hex[0] && f->len >= 14;
}
