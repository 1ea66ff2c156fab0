/* SPDX-License-Identifier: GPL-2.0 */
/* What the C context tests share: frames of named flows, a guest of one
 * type shadowed into a sized pool on fn FN (BPF_PROG_TEST_RUN on a loaded
 * skeleton), and the placement rule computed from the ABI, to check where
 * the datapath put a flow.  The environment itself is lib/dp_env.h, the
 * frames lib/frames.h.  Header-only: the TAP counters are per test. */
#ifndef CLAT_CTX_ENV_H
#define CLAT_CTX_ENV_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat_abi.h"
#include "clat.skel.h"
#include "common.h"
#include "../tap.h"
#include "dp_env.h"
#include "frames.h"

#define LO 1
#define FN 1

/* evict_age_ns for the next env_open; negative: the program's default. */
static long long ctx_env_evict_age = -1;

#define VF_MAC MAC_VF1
#define WIRE_MAC MAC_WIRE

/* ---- frames -------------------------------------------------------------- */

struct flow {
	bool v6;
	uint8_t proto;
	uint32_t vm4, remote4;       /* host order */
	uint8_t vm6[16], remote6[16];
	uint16_t vm_port, remote_port;
};

/* Stores an already network-order value at any alignment (frame offsets
 * are not aligned, and UBSan rightly refuses misaligned stores). */
static inline void put_be(uint8_t *p, uint32_t v, size_t n)
{
	if (n == 2) {
		uint16_t w = (uint16_t)v;

		memcpy(p, &w, 2);
	} else {
		memcpy(p, &v, 4);
	}
}

/* dir IN: remote -> VM (clat_rx); OUT: VM -> remote (clat_tx). */
static inline struct frame build(const struct flow *f, int dir, uint8_t tcp_flags, uint32_t payload,
			  bool fragment)
{
	struct frame fr = { .len = 0 };
	uint32_t l4 = (f->proto == IPPROTO_TCP ? 20 : 8) + payload;
	uint16_t sport = dir ? f->vm_port : f->remote_port;
	uint16_t dport = dir ? f->remote_port : f->vm_port;

	frame_eth(&fr, dir ? WIRE_MAC : VF_MAC, dir ? VF_MAC : WIRE_MAC, 0, NULL,
		  f->v6 ? 0x86dd : 0x0800);
	if (f->v6)
		frame_ipv6(&fr, f->proto, dir ? f->vm6 : f->remote6, dir ? f->remote6 : f->vm6, l4);
	else
		frame_ipv4(&fr, f->proto, dir ? f->vm4 : f->remote4, dir ? f->remote4 : f->vm4, l4,
			   0, fragment ? 0x2000 /* MF */ : 0);
	if (f->proto == IPPROTO_TCP) {
		/* Each side's sequence starts at its ISN; every later segment
		 * sits where the other side acknowledged (ISN + 1), in the
		 * window the datapath checks RSTs and FINs against. */
		uint32_t isn = dir ? 5000 : 1000, peer = dir ? 1000 : 5000;

		frame_tcp(&fr, sport, dport, tcp_flags & TH_SYN ? isn : isn + 1,
			  tcp_flags & TH_ACK ? peer + 1 : 0, tcp_flags, 65535);
	} else {
		frame_udp(&fr, sport, dport, payload);
	}
	frame_fill(&fr, 0xab, payload);
	return fr;
}

static inline struct flow tcp4(uint16_t remote_port)
{
	return (struct flow){ .proto = IPPROTO_TCP, .vm4 = 0xc6120a0a, .remote4 = 0xc6120a01,
			      .vm_port = 80, .remote_port = remote_port };
}

static inline struct flow udp4(uint16_t remote_port)
{
	struct flow f = tcp4(remote_port);

	f.proto = IPPROTO_UDP;
	return f;
}

/* Out parameter, zeroed first: the hash reads the padding too, and a
 * struct returned by value need not carry zeroed padding. */
static inline void key_of(const struct flow *f, struct clat_flow_key *out)
{
	struct clat_flow_key k;
	uint32_t a;

	memset(&k, 0, sizeof(k));
	if (f->v6) {
		memcpy(k.vm_addr, f->vm6, 16);
		memcpy(k.remote_addr, f->remote6, 16);
	} else {
		k.vm_addr[10] = k.vm_addr[11] = k.remote_addr[10] = k.remote_addr[11] = 0xff;
		a = htonl(f->vm4);
		memcpy(k.vm_addr + 12, &a, 4);
		a = htonl(f->remote4);
		memcpy(k.remote_addr + 12, &a, 4);
	}
	k.vm_port = htons(f->vm_port);
	k.remote_port = htons(f->remote_port);
	k.proto = f->proto;
	memcpy(out, &k, sizeof(k));
}

/* ---- environment ---------------------------------------------------------- */

/* dir IN through clat_rx; OUT through clat_tx, entering on lo (fn FN's port). */
static inline int run(struct env *e, const struct frame *fr, int dir, uint32_t *verdict)
{
	return dp_run(bpf_program__fd(dir ? e->skel->progs.clat_tx : e->skel->progs.clat_rx), fr,
		      dir ? LO : 0, verdict);
}

static inline uint64_t stat_of(struct env *e, enum clat_stat slot)
{
	return stat_sum(e->m.stats, FN, slot);
}

static inline void reset_stats(struct env *e)
{
	stats_reset(e->m.stats, FN);
}

/* A guest with one type of capacity services (one segment) on fn FN, in a
 * pool with room to spare around it (lib/dp_env.h). */
static inline int env_open(struct env *e, uint32_t capacity)
{
	uint64_t age = (uint64_t)ctx_env_evict_age;
	int rc;

	rc = dp_env_load(e, (capacity + 31) / 32 * 32 + 64 * CLAT_BUCKET_SLOTS,
			 ctx_env_evict_age >= 0 ? &age : NULL);
	if (!rc)
		rc = dp_add_fn(&e->m, FN, VF_MAC, 0, CLAT_FN_ACTIVE, LO);
	if (!rc)
		rc = dp_set_uplink(&e->m, LO, FN);
	if (!rc)
		rc = dp_env_guest(e, FN, "test-ctx", capacity, 0x5eed,
				  ((uint64_t)capacity * 256 + (8 << 20)) & ~4095ULL);
	return rc;
}

static inline void env_close(struct env *e)
{
	dp_env_close(e);
}

/* ---- where a flow lives: the placement rule, from the ABI ---------------- */

static inline uint64_t hash_of(struct env *e, const struct flow *f)
{
	struct clat_flow_key k;

	key_of(f, &k);
	return clat_flow_hash(e->seed, &k);
}

/* Candidate c (0 or 1) of f, as a pool bucket. */
static inline uint32_t cand(struct env *e, const struct flow *f, uint32_t c)
{
	return e->sg.first_bucket + clat_bucket_of(hash_of(e, f), c, e->sg.nbuckets);
}

static inline uint16_t tag_of(struct env *e, const struct flow *f)
{
	return clat_tag_of(hash_of(e, f));
}

static inline uint16_t meta_tag(struct env *e, uint32_t idx)
{
	return e->v.pool.meta[idx / CLAT_BUCKET_SLOTS].tag[idx % CLAT_BUCKET_SLOTS];
}

static inline uint32_t state_at(struct env *e, uint32_t idx)
{
	return pool_at(e, idx)->state_word & CLAT_SLOT_STATE_MASK;
}

static inline bool slot_free(struct env *e, uint32_t idx)
{
	uint32_t st = state_at(e, idx);

	return svc_at(e, idx) - e->sg.base <= e->sg.size &&
	       (st == CLAT_SLOT_EMPTY || st == CLAT_SLOT_RELEASED);
}

static inline uint32_t nfree(struct env *e, uint32_t b)
{
	uint32_t s, n = 0;

	for (s = 0; s < CLAT_BUCKET_SLOTS; s++)
		n += slot_free(e, b * CLAT_BUCKET_SLOTS + s);
	return n;
}

/* Pool index of f's LIVE context in either candidate, or -1. */
static inline int where(struct env *e, const struct flow *f)
{
	uint64_t live = (uint64_t)tag_of(e, f) << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_LIVE;
	struct clat_flow_key k;
	uint32_t c, s, idx;

	key_of(f, &k);
	for (c = 0; c < 2; c++)
		for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
			idx = cand(e, f, c) * CLAT_BUCKET_SLOTS + s;
			if (pool_at(e, idx)->state_word == live &&
			    !memcmp(&pool_at(e, idx)->key, &k, sizeof(k)))
				return (int)idx;
		}
	return -1;
}

/* Pool index a claim of f takes now: the emptier candidate (ties:
 * candidate 0), its home slot (tag & 31) if free, else its free slot
 * lowest in lane order.  -1 if both candidates are full. */
static inline int predict_claim(struct env *e, const struct flow *f)
{
	uint32_t b0 = cand(e, f, 0), b1 = cand(e, f, 1), f0 = nfree(e, b0);
	uint32_t f1 = b1 == b0 ? 0 : nfree(e, b1), b, s, home, best = CLAT_BUCKET_SLOTS;

	if (!f0 && !f1)
		return -1;
	b = f1 > f0 ? b1 : b0;
	home = tag_of(e, f) & (CLAT_BUCKET_SLOTS - 1);
	if (slot_free(e, b * CLAT_BUCKET_SLOTS + home))
		return (int)(b * CLAT_BUCKET_SLOTS + home);
	for (s = 0; s < CLAT_BUCKET_SLOTS; s++)
		if (slot_free(e, b * CLAT_BUCKET_SLOTS + s) &&
		    (best == CLAT_BUCKET_SLOTS || slot_rank(s) < slot_rank(best)))
			best = s;
	return (int)(b * CLAT_BUCKET_SLOTS + best);
}

/* The next flow after counter *n (remote port, then VM port) that shares
 * f's candidate buckets, both in order, and, when want_home, its home slot
 * too; or, when want_tag, its tag and candidate 0 (not its candidate 1). */
static inline struct flow sharing_proto(struct env *e, const struct flow *f, uint8_t proto, uint32_t *n,
				 bool want_home, bool want_tag)
{
	uint32_t b0 = cand(e, f, 0), b1 = cand(e, f, 1), home = tag_of(e, f) % CLAT_BUCKET_SLOTS;
	struct flow c = *f;

	c.proto = proto;
	for (;; (*n)++) {
		c.remote_port = (uint16_t)(*n & 0xffff);
		c.vm_port = (uint16_t)(f->vm_port + 1 + (*n >> 16));
		if (cand(e, &c, 0) != b0)
			continue;
		if (want_tag) {
			if (tag_of(e, &c) == tag_of(e, f))
				break;
			continue;
		}
		if (cand(e, &c, 1) == b1 && (!want_home || tag_of(e, &c) % CLAT_BUCKET_SLOTS == home))
			break;
	}
	(*n)++;
	return c;
}

static inline struct flow sharing(struct env *e, const struct flow *f, uint32_t *n, bool want_home,
			   bool want_tag)
{
	return sharing_proto(e, f, f->proto, n, want_home, want_tag);
}

/* ---- single-CPU verdict tests --------------------------------------------- */

static inline void send_expect(struct env *e, const char *name, struct frame fr, int dir,
			enum clat_stat slot, uint64_t want)
{
	uint32_t verdict = 0;
	int err;

	reset_stats(e);
	err = run(e, &fr, dir, &verdict);
	check(!err && verdict == XDP_REDIRECT && stat_of(e, slot) == want,
	      "%s: verdict %u, counter %d = %llu (want %llu)", name, verdict, slot,
	      (unsigned long long)stat_of(e, slot), (unsigned long long)want);
}

/* A frame that opens f; checks the claim took the predicted slot and that
 * the context there is f's, whole. */
static inline int claim_expect(struct env *e, const char *name, const struct flow *f, int dir,
			struct frame fr)
{
	int want = predict_claim(e, f), got;
	struct clat_flow_key k;
	struct clat_ctx *c;

	key_of(f, &k);
	send_expect(e, name, fr, dir, CLAT_STAT_CTX_CLAIM, 1);
	got = where(e, f);
	c = got < 0 ? NULL : pool_at(e, got);
	check(want >= 0 && got == want && c && c->svc == svc_at(e, got) && c->fn == FN &&
	      c->type == 0 && c->packets[dir] == 1 && c->packets[!dir] == 0 &&
	      c->bytes[dir] == fr.len && c->initiator == dir && c->first_seen_ns &&
	      meta_tag(e, got) == tag_of(e, f) &&
	      shadow_view_ctx(&e->v, c->svc, NULL) == c &&
	      tags_consistent(e, cand(e, f, 0)) && tags_consistent(e, cand(e, f, 1)),
	      "%s: placed at bucket %d slot %d (want %d/%d: candidates %u/%u with %u/%u free "
	      "before, home %u), svc, fn, counters and tag line right", name,
	      got / CLAT_BUCKET_SLOTS - (int)e->sg.first_bucket, got % CLAT_BUCKET_SLOTS,
	      want / CLAT_BUCKET_SLOTS - (int)e->sg.first_bucket, want % CLAT_BUCKET_SLOTS,
	      cand(e, f, 0) - e->sg.first_bucket, cand(e, f, 1) - e->sg.first_bucket,
	      nfree(e, cand(e, f, 0)) + (got >= 0 && (uint32_t)got / 32 == cand(e, f, 0)),
	      nfree(e, cand(e, f, 1)) + (got >= 0 && (uint32_t)got / 32 == cand(e, f, 1) &&
					 cand(e, f, 1) != cand(e, f, 0)),
	      tag_of(e, f) % CLAT_BUCKET_SLOTS);
	return got;
}

#endif
