/* SPDX-License-Identifier: GPL-2.0 */
/* The datapath fuzzer's oracle (dp_oracle.c), written from the header
 * formats and the rules, not from the BPF code: a frame's headers as a
 * parser bounded like the datapath's reads them, the TCP model, and the
 * prediction of a frame's verdict, counter moves and context outcome on
 * the fuzzer's function table.  fuzz_datapath.c runs the frames and
 * compares; dp_frames.c makes them. */
#ifndef CLAT_DP_ORACLE_H
#define CLAT_DP_ORACLE_H

#include <stdbool.h>
#include <stdint.h>

#include "clat_abi.h"
#include "dp_frames.h"
#include "lib/dp_env.h"

#define LO 1
#define GUEST_FN 1
#define CAPACITY 512 /* 16 buckets: random flows fill candidates, slots get released and reused */
#define POOL_CONTEXTS 4096
#define NFN 6
#define FI_NONE 5
/* Counter rows: fns 0..4, then CLAT_FN_NONE (row FI_NONE). */
extern const uint32_t FNS[NFN];

/* The function table the maps are loaded with; the oracle reads this one. */
struct dp_fn {
	const uint8_t *mac;
	uint16_t vlan;
	uint32_t state;
	bool port;
};
extern const struct dp_fn FN_TABLE[5];

/* ---- headers -------------------------------------------------------------- */

struct l2 {
	const uint8_t *dst;
	uint16_t vlan, proto;
	uint32_t off;
};

/* -1 if the frame has no complete Ethernet header and tags. */
int o_l2(const struct frame *f, struct l2 *l);

struct oflow {
	struct clat_flow_key key;
	uint8_t flags;
	/* TCP only */
	uint32_t l4off;   /* the TCP header's offset in the frame */
	uint32_t l4len;   /* L4 bytes, as the IP header says */
	uint32_t doff;
	uint32_t seq, ack;
	uint32_t seq_len; /* payload + SYN + FIN */
	uint16_t win;
	uint8_t wscale;   /* a SYN's window scale option, O_WSCALE_NONE if none */
};

#define O_TCP_FIN 0x01
#define O_TCP_SYN 0x02
#define O_TCP_RST 0x04
#define O_TCP_PSH 0x08
#define O_TCP_ACK 0x10
#define O_WSCALE_NONE 0xff

/* The flow of an IPv4/IPv6 TCP/UDP frame after l2, seen from dir; -1 if
 * the datapath skips it (no flow: fragments, bad lengths, other L4). */
int o_flow(const struct frame *f, const struct l2 *l, int dir, struct oflow *o);

/* ---- the TCP model (see dp_oracle.c) -------------------------------------- */

enum m_close { M_OPEN, M_CLOSE_RST, M_CLOSE_LAST_ACK };

struct m_step {
	bool in;       /* the segment counted */
	bool restart;  /* a SYN restarted a closing context */
	int close;     /* enum m_close */
};

/* The window side d advertised, from a context's wlog: 0 before it
 * acknowledged anything, else 4 KiB doubled n - 1 times. */
uint32_t m_window(uint8_t wlog, int d);
/* Applies segment fl from dir to context c as the rules say. */
struct m_step m_tcp(struct clat_ctx *c, const struct oflow *fl, int dir);

/* ---- prediction ----------------------------------------------------------- */

struct outcome {
	uint32_t verdict;
	int64_t d[NFN][CLAT_STAT__MAX]; /* expected counter moves */
	/* context prediction for the guest fn */
	bool tracked;
	int dir;
	struct oflow fl;
	int result;     /* enum clat_stat CTX_* */
	uint32_t idx;   /* pool index hit or claimed */
	uint16_t tag;
	uint32_t nb;    /* distinct candidate buckets: 1 or 2 */
	uint32_t b[2];  /* pool buckets */
	struct clat_ctx before[2][CLAT_BUCKET_SLOTS];
	struct clat_bucket meta[2];
	/* a hit or a claim: the record after the frame (times aside) */
	struct clat_ctx expect;
	struct m_step step; /* what the TCP model made of the segment */
	bool released;      /* the flow closed: RELEASED, tag cleared, CTX_RELEASE */
	bool fresh;         /* claimed or restarted: first_seen_ns is the frame's time */
};

/* What frame f through clat_tx (tx) or clat_rx does on env e. */
void predict(struct env *e, struct outcome *o, const struct frame *f, bool tx);

#endif
