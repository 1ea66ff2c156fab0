// SPDX-License-Identifier: GPL-2.0
/* Context-path tests through BPF_PROG_TEST_RUN over the PF's context pool:
 * claims placed where the two-choice rule says (the emptier candidate
 * bucket, the tag's home slot, else the free slot lowest in lane order),
 * hits from both directions, flows sharing candidate buckets, home slots and
 * tags, release on RST and FIN/FIN/ACK (slot RELEASED, tag cleared), reuse
 * of a released slot, both candidates full (CTX_FULL, still delivered), no
 * flow without a context up to 90% load, frames that get no context, and a
 * two-CPU stress of rx and tx racing on the same new flows.  The guest
 * tables are real: built by gbuild into a temporary guest memory file,
 * validated by gtables_load and shadowed by shadow_install.  TAP out. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat_abi.h"
#include "clat.skel.h"
#include "common.h"
#include "gbuild.h"
#include "gtables.h"
#include "shadow.h"
#include "tap.h"

#define LO 1
#define FN 1
#define CAPACITY 4096
#define LOAD_CAPACITY 32768

static const uint8_t VF_MAC[6] = { 0x02, 0xc1, 0, 0, 0, 1 };
static const uint8_t WIRE_MAC[6] = { 0x02, 0xaa, 0, 0, 0, 9 };

/* ---- frames -------------------------------------------------------------- */

struct flow {
	bool v6;
	uint8_t proto;
	uint32_t vm4, remote4;       /* host order */
	uint8_t vm6[16], remote6[16];
	uint16_t vm_port, remote_port;
};

struct frame {
	uint8_t buf[256];
	uint32_t len;
};

enum { TH_FIN = 1, TH_SYN = 2, TH_RST = 4, TH_ACK = 16 };

/* Stores an already network-order value at any alignment (frame offsets
 * are not aligned, and UBSan rightly refuses misaligned stores). */
static void put_be(uint8_t *p, uint32_t v, size_t n)
{
	if (n == 2) {
		uint16_t w = (uint16_t)v;

		memcpy(p, &w, 2);
	} else {
		memcpy(p, &v, 4);
	}
}

/* dir IN: remote -> VM (clat_rx); OUT: VM -> remote (clat_tx). */
static struct frame build(const struct flow *f, int dir, uint8_t tcp_flags, uint32_t payload,
			  bool fragment)
{
	struct frame fr = { .len = 0 };
	uint8_t *p = fr.buf;
	uint32_t l4 = f->proto == IPPROTO_TCP ? 20 : 8, l3;
	uint16_t sport = htons(dir ? f->vm_port : f->remote_port);
	uint16_t dport = htons(dir ? f->remote_port : f->vm_port);

	memcpy(p, dir ? WIRE_MAC : VF_MAC, 6);
	memcpy(p + 6, dir ? VF_MAC : WIRE_MAC, 6);
	p[12] = f->v6 ? 0x86 : 0x08;
	p[13] = f->v6 ? 0xdd : 0x00;
	p += 14;
	if (f->v6) {
		l3 = 40;
		p[0] = 0x60;
		put_be(p + 4, htons(l4 + payload), 2);
		p[6] = f->proto;
		p[7] = 64;
		memcpy(p + 8, dir ? f->vm6 : f->remote6, 16);
		memcpy(p + 24, dir ? f->remote6 : f->vm6, 16);
	} else {
		uint32_t s = htonl(dir ? f->vm4 : f->remote4), d = htonl(dir ? f->remote4 : f->vm4);

		l3 = 20;
		p[0] = 0x45;
		put_be(p + 2, htons(20 + l4 + payload), 2);
		if (fragment)
			put_be(p + 6, htons(0x2000), 2); /* MF */
		p[8] = 64;
		p[9] = f->proto;
		memcpy(p + 12, &s, 4);
		memcpy(p + 16, &d, 4);
	}
	p += l3;
	put_be(p, sport, 2);
	put_be(p + 2, dport, 2);
	if (f->proto == IPPROTO_TCP) {
		put_be(p + 4, htonl(1000), 4);
		p[12] = 5 << 4;
		p[13] = tcp_flags;
	} else {
		put_be(p + 4, htons(8 + payload), 2);
	}
	fr.len = 14 + l3 + l4 + payload;
	memset(fr.buf + 14 + l3 + l4, 0xab, payload);
	return fr;
}

static struct flow tcp4(uint16_t remote_port)
{
	return (struct flow){ .proto = IPPROTO_TCP, .vm4 = 0xc6120a0a, .remote4 = 0xc6120a01,
			      .vm_port = 80, .remote_port = remote_port };
}

static struct flow udp4(uint16_t remote_port)
{
	struct flow f = tcp4(remote_port);

	f.proto = IPPROTO_UDP;
	return f;
}

/* Out parameter, zeroed first: the hash reads the padding too, and a
 * struct returned by value need not carry zeroed padding. */
static void key_of(const struct flow *f, struct clat_flow_key *out)
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

struct env {
	struct clat *skel;
	struct clat_maps m;
	struct shadow_view v;
	struct clat_dev_seg sg;   /* the newest (only) segment */
	char mem[64];
	uint32_t seed;
};

static int run(struct env *e, const struct frame *fr, int dir, uint32_t *verdict)
{
	struct xdp_md ctx_in = { .data_end = fr->len, .ingress_ifindex = LO };
	uint8_t out[512];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = fr->buf, .data_size_in = fr->len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

	if (dir) {
		o.ctx_in = &ctx_in;
		o.ctx_size_in = sizeof(ctx_in);
	}
	if (bpf_prog_test_run_opts(bpf_program__fd(dir ? e->skel->progs.clat_tx
						      : e->skel->progs.clat_rx), &o))
		return -errno;
	*verdict = o.retval;
	return 0;
}

static uint64_t stat_of(struct env *e, enum clat_stat slot)
{
	return stat_sum(e->m.stats, FN, slot);
}

static void reset_stats(struct env *e)
{
	stats_reset(e->m.stats, FN);
}

/* The pool sized as clat-load's attach does (size_pool): a skeleton from
 * clat__open_and_load would get the placeholder pool of one bucket. */
static int load_sized(struct env *e, uint32_t contexts)
{
	uint32_t buckets = contexts / CLAT_BUCKET_SLOTS;
	int err;

	e->skel = clat__open();
	if (!e->skel)
		return -errno;
	if (bpf_map__set_max_entries(e->skel->maps.pool_ctx, contexts) ||
	    bpf_map__set_max_entries(e->skel->maps.pool_meta, buckets) ||
	    bpf_map__set_max_entries(e->skel->maps.pool_dirty, (buckets + 63) / 64))
		return -EINVAL;
	err = clat__load(e->skel);
	if (err)
		return err;
	maps_from_skel(e->skel, &e->m);
	return clock_refresh(&e->m);
}

/* A guest with one type of capacity services (one segment) on fn FN, in a
 * pool with room to spare around it. */
static int env_open(struct env *e, uint32_t capacity)
{
	struct gbuild_type ty = { .name = "conn", .ctx_size = 128, .block_size = 4096,
				  .services = capacity, .hash_seed = 0x5eed, .seed_set = true };
	struct gbuild_opts go = { .size = ((uint64_t)capacity * 256 + (8 << 20)) & ~4095ULL };
	struct clat_vct_entry vct = { .state = CLAT_FN_ACTIVE, .ifindex = LO };
	struct clat_mac_key mk = { .vlan = 0 };
	struct clat_mac_val mv = { .fn = FN };
	struct clat_port_val pv = { .fn = FN };
	uint32_t fn = FN, lo = LO, uplink = CLAT_UPLINK_SLOT, newest;
	char err[256];
	struct gtables t;
	uint64_t bat, live;
	struct gmem g;
	int rc;

	memset(e, 0, sizeof(*e));
	snprintf(e->mem, sizeof(e->mem), "/tmp/clat-test-ctx.%d", (int)getpid());
	unlink(e->mem);
	rc = gbuild_create(e->mem, &go, &ty, 1, &bat, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "gbuild: %s\n", err);
		return rc;
	}
	e->seed = ty.hash_seed;
	rc = load_sized(e, (capacity + 31) / 32 * 32 + 64 * CLAT_BUCKET_SLOTS);
	if (rc)
		return rc;
	memcpy(mk.mac, VF_MAC, 6);
	bpf_map_update_elem(e->m.mac_fn, &mk, &mv, BPF_ANY);
	bpf_map_update_elem(e->m.vct, &fn, &vct, BPF_ANY);
	bpf_map_update_elem(e->m.vf_ports, &fn, &lo, BPF_ANY);
	bpf_map_update_elem(e->m.vf_ports, &uplink, &lo, BPF_ANY);
	bpf_map_update_elem(e->m.port_fn, &lo, &pv, BPF_ANY);
	rc = gmem_open(e->mem, false, &g);
	if (rc)
		return rc;
	rc = gtables_load(&g, bat, &t, err, sizeof(err));
	if (!rc) {
		rc = shadow_install(&e->m, NULL, FN, e->mem, &g, &t, &live);
		gtables_free(&t);
	} else {
		fprintf(stderr, "gtables: %s\n", err);
	}
	gmem_close(&g);
	if (!rc)
		rc = shadow_view_open(&e->m, FN, 0, &e->v);
	if (rc)
		return rc;
	newest = (e->v.td.seg_state >> CLAT_SEG_NEWEST_SHIFT) & (CLAT_MAX_SEGMENTS - 1);
	e->sg = e->v.td.seg[newest];
	if (e->v.td.seg_state != (1U | newest << CLAT_SEG_NEWEST_SHIFT) || e->sg.size != capacity ||
	    e->sg.nbuckets != clat_seg_buckets(capacity)) {
		fprintf(stderr, "unexpected device segments: state %#x, size %u, %u buckets\n",
			e->v.td.seg_state, e->sg.size, e->sg.nbuckets);
		return -EINVAL;
	}
	return 0;
}

static void env_close(struct env *e)
{
	shadow_view_close(&e->v);
	clat__destroy(e->skel);
	unlink(e->mem);
}

/* ---- where a flow lives: the placement rule, from the ABI ---------------- */

static uint64_t hash_of(struct env *e, const struct flow *f)
{
	struct clat_flow_key k;

	key_of(f, &k);
	return clat_flow_hash(e->seed, &k);
}

/* Candidate c (0 or 1) of f, as a pool bucket. */
static uint32_t cand(struct env *e, const struct flow *f, uint32_t c)
{
	return e->sg.first_bucket + clat_bucket_of(hash_of(e, f), c, e->sg.nbuckets);
}

static uint16_t tag_of(struct env *e, const struct flow *f)
{
	return clat_tag_of(hash_of(e, f));
}

static struct clat_ctx *pool_at(struct env *e, uint32_t idx)
{
	return &e->v.pool.ctx[idx];
}

static uint16_t meta_tag(struct env *e, uint32_t idx)
{
	return e->v.pool.meta[idx / CLAT_BUCKET_SLOTS].tag[idx % CLAT_BUCKET_SLOTS];
}

static uint32_t state_at(struct env *e, uint32_t idx)
{
	return pool_at(e, idx)->state_word & CLAT_SLOT_STATE_MASK;
}

static uint32_t svc_at(struct env *e, uint32_t idx)
{
	return clat_slot_svc(e->sg.base, idx / CLAT_BUCKET_SLOTS - e->sg.first_bucket,
			     idx % CLAT_BUCKET_SLOTS);
}

/* The order in which a claim tries a bucket's free slots after the home
 * slot: lane order (bpf/context.h slot_bit), slots 0, 4, .., 28, 1, 5, .. */
static uint32_t slot_rank(uint32_t s)
{
	return (s & 3) * 16 + (s >> 2);
}

static bool slot_free(struct env *e, uint32_t idx)
{
	uint32_t st = state_at(e, idx);

	return svc_at(e, idx) - e->sg.base <= e->sg.size &&
	       (st == CLAT_SLOT_EMPTY || st == CLAT_SLOT_RELEASED);
}

static uint32_t nfree(struct env *e, uint32_t b)
{
	uint32_t s, n = 0;

	for (s = 0; s < CLAT_BUCKET_SLOTS; s++)
		n += slot_free(e, b * CLAT_BUCKET_SLOTS + s);
	return n;
}

/* Pool index of f's LIVE context in either candidate, or -1. */
static int where(struct env *e, const struct flow *f)
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
static int predict_claim(struct env *e, const struct flow *f)
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

/* Every slot of bucket b: a LIVE slot's tag line entry is its tag, a free
 * one's is FREE, one past the segment's end is FENCE. */
static bool tags_consistent(struct env *e, uint32_t b)
{
	uint32_t s, idx;

	for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
		idx = b * CLAT_BUCKET_SLOTS + s;
		if (svc_at(e, idx) - e->sg.base > e->sg.size) {
			if (meta_tag(e, idx) != CLAT_TAG_FENCE)
				return false;
		} else if (state_at(e, idx) == CLAT_SLOT_LIVE) {
			if (meta_tag(e, idx) != pool_at(e, idx)->state_word >> CLAT_SLOT_TAG_SHIFT)
				return false;
		} else if (meta_tag(e, idx) != CLAT_TAG_FREE) {
			return false;
		}
	}
	return true;
}

/* The next flow after counter *n (remote port, then VM port) that shares
 * f's candidate buckets, both in order, and, when want_home, its home slot
 * too; or, when want_tag, its tag and candidate 0 (not its candidate 1). */
static struct flow sharing_proto(struct env *e, const struct flow *f, uint8_t proto, uint32_t *n,
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

static struct flow sharing(struct env *e, const struct flow *f, uint32_t *n, bool want_home,
			   bool want_tag)
{
	return sharing_proto(e, f, f->proto, n, want_home, want_tag);
}

/* ---- single-CPU verdict tests --------------------------------------------- */

static void send_expect(struct env *e, const char *name, struct frame fr, int dir,
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
static int claim_expect(struct env *e, const char *name, const struct flow *f, int dir,
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

static void verdict_tests(struct env *e)
{
	struct flow a = tcp4(40000), b, c, d, u = udp4(5353), f6 = tcp4(40001);
	struct clat_flow_key ka;
	uint32_t n = 0, ha;
	int ia, ib, ic, id, i;
	struct frame fr;

	key_of(&a, &ka);
	ha = tag_of(e, &a) % CLAT_BUCKET_SLOTS;
	ia = claim_expect(e, "SYN claims a slot", &a, 0, build(&a, 0, TH_SYN, 0, false));
	check(ia == (int)(cand(e, &a, 0) * CLAT_BUCKET_SLOTS + ha) &&
	      pool_at(e, ia)->tcp_state == CLAT_TCP_SYN_SENT,
	      "an empty pool: candidate 0 (tie), home slot %u, SYN_SENT", ha);
	if (ia < 0)
		return;
	send_expect(e, "SYN-ACK from the VM finds the same context (tx)",
		    build(&a, 1, TH_SYN | TH_ACK, 0, false), 1, CLAT_STAT_CTX_HIT, 1);
	send_expect(e, "ACK with 100 bytes finds it (rx)", build(&a, 0, TH_ACK, 100, false), 0,
		    CLAT_STAT_CTX_HIT, 1);
	fr = build(&a, 0, TH_ACK, 100, false);
	check(pool_at(e, ia)->packets[CLAT_DIR_IN] == 2 && pool_at(e, ia)->packets[CLAT_DIR_OUT] == 1 &&
	      pool_at(e, ia)->bytes[CLAT_DIR_IN] == 54 + fr.len &&
	      pool_at(e, ia)->tcp_state == CLAT_TCP_ESTABLISHED,
	      "per-direction counters 2/1, bytes %llu, ESTABLISHED",
	      (unsigned long long)pool_at(e, ia)->bytes[CLAT_DIR_IN]);

	fr = build(&a, 1, TH_RST, 0, false);
	put_be(fr.buf + 14 + 20 + 4, htonl(1000 + 0x40000000), 4);
	send_expect(e, "a RST far outside the sender's sequence is counted but releases nothing",
		    fr, 1, CLAT_STAT_CTX_HIT, 1);
	check(stat_of(e, CLAT_STAT_CTX_RELEASE) == 0 && state_at(e, ia) == CLAT_SLOT_LIVE &&
	      meta_tag(e, ia) == tag_of(e, &a),
	      "after a spoofed RST the slot is still LIVE and tagged");
	send_expect(e, "RST releases", build(&a, 1, TH_RST, 0, false), 1, CLAT_STAT_CTX_RELEASE, 1);
	check(state_at(e, ia) == CLAT_SLOT_RELEASED && meta_tag(e, ia) == CLAT_TAG_FREE &&
	      pool_at(e, ia)->state_word >> CLAT_SLOT_TAG_SHIFT == tag_of(e, &a) &&
	      !memcmp(&pool_at(e, ia)->key, &ka, sizeof(ka)) && where(e, &a) < 0,
	      "after RST the slot is RELEASED (key kept for the guest), its tag cleared");
	send_expect(e, "TCP mid-stream of the released flow is a miss",
		    build(&a, 0, TH_ACK, 0, false), 0, CLAT_STAT_CTX_MISS, 1);
	i = claim_expect(e, "the same 5-tuple again claims", &a, 0, build(&a, 0, TH_SYN, 0, false));
	check(i == ia && pool_at(e, ia)->packets[CLAT_DIR_OUT] == 0 &&
	      pool_at(e, ia)->tcp_state == CLAT_TCP_SYN_SENT,
	      "the claim reuses the released slot, its record started afresh");

	/* b shares both of a's candidates: the emptier one is a's other. */
	b = sharing(e, &a, &n, false, false);
	ib = claim_expect(e, "a SYN sharing both candidate buckets claims",
			  &b, 0, build(&b, 0, TH_SYN, 0, false));
	check(ib >= 0 && (uint32_t)ib / CLAT_BUCKET_SLOTS == cand(e, &a, 1),
	      "it went to the emptier candidate (a's candidate 1)");
	send_expect(e, "the sharing flow is found", build(&b, 1, TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
	/* c shares both candidates and a's home slot: a tie, so candidate 0,
	 * where a holds the home slot. */
	c = sharing(e, &a, &n, true, false);
	ic = claim_expect(e, "a SYN sharing both candidates and a's home slot claims",
			  &c, 0, build(&c, 0, TH_SYN, 0, false));
	check(ic >= 0 && (uint32_t)ic / CLAT_BUCKET_SLOTS == cand(e, &a, 0) &&
	      ic % CLAT_BUCKET_SLOTS != (int)ha,
	      "it went next to a in candidate 0, off the home slot (slot %d)",
	      ic % CLAT_BUCKET_SLOTS);
	/* d has a's tag and a's candidate 0: a tag match whose key differs. */
	d = sharing(e, &a, &n, false, true);
	send_expect(e, "a SYN of a flow with a's tag in a's bucket is no hit on a",
		    build(&d, 0, TH_SYN, 0, false), 0, CLAT_STAT_CTX_CLAIM, 1);
	id = where(e, &d);
	check(id >= 0 && id != ia && pool_at(e, ia)->packets[CLAT_DIR_IN] == 1 &&
	      !memcmp(&pool_at(e, ia)->key, &ka, sizeof(ka)),
	      "the same-tag flow has its own slot (%d), a's context untouched", id);
	send_expect(e, "a frame of a is still found past the same-tag flow",
		    build(&a, 1, TH_SYN | TH_ACK, 0, false), 1, CLAT_STAT_CTX_HIT, 1);
	send_expect(e, "and one of the same-tag flow", build(&d, 1, TH_SYN | TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
	check(pool_at(e, ia)->packets[CLAT_DIR_OUT] == 1 && id >= 0 &&
	      pool_at(e, id)->packets[CLAT_DIR_OUT] == 1,
	      "each counted in its own context");

	/* FIN from both sides, then the last ACK, closes the flow. */
	send_expect(e, "FIN from the VM", build(&c, 1, TH_FIN | TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
	send_expect(e, "FIN from the wire", build(&c, 0, TH_FIN | TH_ACK, 0, false), 0,
		    CLAT_STAT_CTX_HIT, 1);
	check(ic >= 0 && pool_at(e, ic)->tcp_state == CLAT_TCP_LAST_ACK, "both FINs: LAST_ACK");
	send_expect(e, "the last ACK releases", build(&c, 1, TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_RELEASE, 1);
	check(ic >= 0 && state_at(e, ic) == CLAT_SLOT_RELEASED && meta_tag(e, ic) == CLAT_TAG_FREE &&
	      where(e, &c) < 0 && tags_consistent(e, cand(e, &a, 0)),
	      "after FIN/FIN/ACK the slot is RELEASED, its tag cleared");
	send_expect(e, "b is still found after its neighbours closed",
		    build(&b, 0, TH_ACK, 0, false), 0, CLAT_STAT_CTX_HIT, 1);
	/* Another flow with a's candidates and home slot: the candidates tie
	 * again (a and b), a holds the home slot, so the lane order brings it
	 * to c's released slot. */
	c = sharing(e, &a, &n, true, false);
	i = claim_expect(e, "a new flow sharing a's bucket and home slot claims", &c, 0,
			 build(&c, 0, TH_SYN, 0, false));
	check(i == ic, "it reuses the released slot (slot %d, released %d)",
	      i % CLAT_BUCKET_SLOTS, ic % CLAT_BUCKET_SLOTS);

	send_expect(e, "TCP mid-stream without a context is delivered, no claim",
		    build(&f6, 0, TH_ACK, 10, false), 0, CLAT_STAT_CTX_MISS, 1);
	send_expect(e, "an IPv4 fragment gets no context and is delivered",
		    build(&u, 0, 0, 10, true), 0, CLAT_STAT_CTX_SKIP, 1);
	fr = build(&u, 0, 0, 10, false);
	fr.buf[14 + 9] = 1; /* ICMP */
	send_expect(e, "a non-TCP/UDP packet gets no context and is delivered", fr, 0,
		    CLAT_STAT_CTX_SKIP, 1);

	i = claim_expect(e, "UDP from the VM claims (tx)", &u, 1, build(&u, 1, 0, 20, false));
	send_expect(e, "the UDP reply finds the same context (rx)", build(&u, 0, 0, 20, false), 0,
		    CLAT_STAT_CTX_HIT, 1);
	check(i >= 0 && pool_at(e, i)->packets[CLAT_DIR_OUT] == 1 &&
	      pool_at(e, i)->packets[CLAT_DIR_IN] == 1 && pool_at(e, i)->tcp_state == CLAT_TCP_NONE,
	      "both directions of the UDP flow count in one context");

	f6.v6 = true;
	f6.vm6[0] = 0xfd;
	f6.vm6[15] = 0x10;
	f6.remote6[0] = 0xfd;
	f6.remote6[15] = 0x01;
	claim_expect(e, "IPv6 TCP SYN claims", &f6, 0, build(&f6, 0, TH_SYN, 0, false));
	send_expect(e, "IPv6 reply finds it", build(&f6, 1, TH_SYN | TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
}

/* Capacity 64: two buckets, so 64 flows with one flow's two (distinct)
 * candidates fill both, and the flow itself finds no slot. */
static void full_tests(struct env *e)
{
	struct flow t = tcp4(50000), f[64];
	uint32_t n = 0, i, placed = 0, misplaced = 0;
	uint16_t p;
	int got;

	for (p = 50000; cand(e, &t, 0) == cand(e, &t, 1); p++)
		t = tcp4(p);
	for (i = 0; i < 64; i++) {
		struct frame fr;
		uint32_t verdict = 0;
		int want;

		f[i] = sharing_proto(e, &t, i & 1 ? IPPROTO_UDP : IPPROTO_TCP, &n, false, false);
		want = predict_claim(e, &f[i]);
		fr = build(&f[i], 0, f[i].proto == IPPROTO_TCP ? TH_SYN : 0, 0, false);
		reset_stats(e);
		if (!run(e, &fr, 0, &verdict) && verdict == XDP_REDIRECT &&
		    stat_of(e, CLAT_STAT_CTX_CLAIM) == 1)
			placed++;
		misplaced += where(e, &f[i]) != want;
	}
	check(placed == 64 && misplaced == 0 && !nfree(e, cand(e, &t, 0)) &&
	      !nfree(e, cand(e, &t, 1)) && tags_consistent(e, cand(e, &t, 0)) &&
	      tags_consistent(e, cand(e, &t, 1)),
	      "64 flows sharing both candidates all claim, each where the rule says (%u, %u "
	      "misplaced), and fill both buckets", placed, misplaced);
	send_expect(e, "a bucket that is full in both choices is reported (CTX_FULL) and the "
		    "frame is still delivered", build(&t, 0, TH_SYN, 0, false), 0,
		    CLAT_STAT_CTX_FULL, 1);
	check(where(e, &t) < 0 && stat_of(e, CLAT_STAT_CTX_CLAIM) == 0,
	      "the flow got no context and took nobody's slot");
	send_expect(e, "flows already placed are still found when both buckets are full",
		    build(&f[63], 1, f[63].proto == IPPROTO_TCP ? TH_SYN | TH_ACK : 0, 0, false),
		    1, CLAT_STAT_CTX_HIT, 1);
	for (i = 0; i < 64 && f[i].proto != IPPROTO_TCP; i++)
		;
	got = where(e, &f[i]);
	send_expect(e, "a RST frees one slot", build(&f[i], 1, TH_RST, 0, false), 1,
		    CLAT_STAT_CTX_RELEASE, 1);
	got = claim_expect(e, "now the flow claims the freed slot", &t, 0,
			   build(&t, 0, TH_SYN, 0, false)) == got ? got : -1;
	check(got >= 0, "it took exactly the released slot");
}

/* No flow goes without a context up to 90% load: capacity C, 0.9 C random
 * UDP flows, each claims where the rule says and is found again. */
static void load_test(struct env *e, uint32_t cap)
{
	uint32_t nflows = cap / 10 * 9, i, misplaced = 0, lost = 0, live = 0, rx_bad = 0;
	uint64_t r = 0x243f6a8885a308d3ULL;
	struct flow *f = calloc(nflows, sizeof(*f));

	if (!f) {
		check(false, "load test: out of memory");
		return;
	}
	reset_stats(e);
	for (i = 0; i < nflows; i++) {
		struct frame fr;
		uint32_t verdict = 0;
		int want;

		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		f[i] = udp4((uint16_t)(r >> 48 | 1));
		f[i].remote4 = 0x0a000000 | i;    /* distinct flows */
		f[i].vm_port = (uint16_t)(r >> 24);
		want = predict_claim(e, &f[i]);
		fr = build(&f[i], 0, 0, 0, false);
		if (run(e, &fr, 0, &verdict) || verdict != XDP_REDIRECT)
			rx_bad++;
		misplaced += where(e, &f[i]) != want;
	}
	for (i = 0; i < nflows; i++) {
		struct frame fr = build(&f[i], 1, 0, 0, false);
		uint32_t verdict = 0;
		int at = where(e, &f[i]);

		if (run(e, &fr, 1, &verdict) || verdict != XDP_REDIRECT)
			rx_bad++;
		lost += at < 0 || pool_at(e, at)->packets[CLAT_DIR_OUT] != 1 ||
			pool_at(e, at)->packets[CLAT_DIR_IN] != 1;
	}
	for (i = 0; i < e->sg.nbuckets * CLAT_BUCKET_SLOTS; i++)
		live += state_at(e, e->sg.first_bucket * CLAT_BUCKET_SLOTS + i) == CLAT_SLOT_LIVE;
	free(f);
	check(rx_bad == 0 && stat_of(e, CLAT_STAT_CTX_FULL) == 0 &&
	      stat_of(e, CLAT_STAT_CTX_BUSY) == 0 && stat_of(e, CLAT_STAT_CTX_CLAIM) == nflows &&
	      stat_of(e, CLAT_STAT_CTX_HIT) == nflows && lost == 0 && live == nflows,
	      "no flow goes without a context up to 90%% load: %u UDP flows in %u slots -> claims "
	      "%llu, full %llu, busy %llu, found again %llu (%u lost), %u LIVE", nflows, cap,
	      (unsigned long long)stat_of(e, CLAT_STAT_CTX_CLAIM),
	      (unsigned long long)stat_of(e, CLAT_STAT_CTX_FULL),
	      (unsigned long long)stat_of(e, CLAT_STAT_CTX_BUSY),
	      (unsigned long long)stat_of(e, CLAT_STAT_CTX_HIT), lost, live);
	check(misplaced == 0, "at 90%% load every claim took the slot the rule names (%u did not)",
	      misplaced);
}

/* ---- two-CPU stress --------------------------------------------------------- */

#define STRESS_FLOWS 2000 /* half the capacity, as guests are told to size */
#define STRESS_REPEAT 3

struct racer {
	struct env *e;
	int dir;
	int cpu;
	bool tcp;
	volatile int *gate;
	int failures;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	cpu_set_t set;
	int i, k;

	CPU_ZERO(&set);
	CPU_SET(r->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	for (i = 0; i < STRESS_FLOWS; i++) {
		struct flow f = r->tcp ? tcp4((uint16_t)(20000 + i)) : udp4((uint16_t)(20000 + i));
		struct frame fr;

		f.vm_port = r->tcp ? 443 : 53;
		fr = build(&f, r->dir, r->tcp ? TH_SYN : 0, 0, false);
		/* Both racers start each flow together. */
		__atomic_add_fetch(r->gate, 1, __ATOMIC_ACQ_REL);
		while (__atomic_load_n(r->gate, __ATOMIC_ACQUIRE) < 2 * (i + 1))
			;
		for (k = 0; k < STRESS_REPEAT; k++) {
			uint32_t verdict;

			if (run(r->e, &fr, r->dir, &verdict) || verdict != XDP_REDIRECT)
				r->failures++;
		}
	}
	return NULL;
}

static void stress(struct env *e, bool tcp)
{
	volatile int gate = 0;
	struct racer rx = { e, 0, 0, tcp, &gate, 0 }, tx = { e, 1, 1, tcp, &gate, 0 };
	uint32_t i, live = 0, dup = 0, missing = 0, inconsistent = 0;
	uint64_t pin = 0, pout = 0, busy, prel = 0;
	uint32_t released = 0;
	pthread_t a, b;
	uint8_t *seen = calloc(STRESS_FLOWS, 1);

	pthread_create(&a, NULL, race, &rx);
	pthread_create(&b, NULL, race, &tx);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	for (i = 0; i < e->v.seg[0].n; i++) {
		struct clat_ctx *c = &e->v.seg[0].ctx[i];
		uint16_t port = ntohs(c->key.remote_port);

		if (c->key.proto != (tcp ? IPPROTO_TCP : IPPROTO_UDP) ||
		    ntohs(c->key.vm_port) != (tcp ? 443 : 53))
			continue;
		if ((c->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_RELEASED) {
			/* a copy settle_copies gave up: whatever was counted in it */
			released++;
			prel += c->packets[CLAT_DIR_IN] + c->packets[CLAT_DIR_OUT];
		}
		if ((c->state_word & CLAT_SLOT_STATE_MASK) != CLAT_SLOT_LIVE)
			continue;
		live++;
		if (port >= 20000 && port < 20000 + STRESS_FLOWS && seen[port - 20000]++)
			dup++;
		pin += c->packets[CLAT_DIR_IN];
		pout += c->packets[CLAT_DIR_OUT];
	}
	for (i = 0; i < STRESS_FLOWS; i++)
		missing += !seen[i];
	free(seen);
	for (i = 0; i < e->sg.nbuckets; i++)
		inconsistent += !tags_consistent(e, e->sg.first_bucket + i);
	check(inconsistent == 0, "%s stress: every tag line agrees with its slots (%u buckets do not)",
	      tcp ? "TCP" : "UDP", inconsistent);
	check(rx.failures == 0 && tx.failures == 0, "%s stress: every frame redirected",
	      tcp ? "TCP" : "UDP");
	check(stat_of(e, CLAT_STAT_CTX_FULL) == 0, "%s stress: no flow found both candidates full (%llu)",
	      tcp ? "TCP" : "UDP", (unsigned long long)stat_of(e, CLAT_STAT_CTX_FULL));
	/* A frame that meets a claim stalled past the bound (a descheduled vCPU)
	 * is delivered without its context and counted as ctx_busy. */
	busy = stat_of(e, CLAT_STAT_CTX_BUSY);
	printf("# %s stress: %llu frames met a claim that did not settle in time\n",
	       tcp ? "TCP" : "UDP", (unsigned long long)busy);
	check(live == STRESS_FLOWS && dup == 0 && missing == 0,
	      "%s stress: %u flows raced from two CPUs -> %u contexts, %u duplicates, %u missing",
	      tcp ? "TCP" : "UDP", STRESS_FLOWS, live, dup, missing);
	printf("# %s stress: %u copies of a raced flow were released by the race, holding %llu "
	       "packets counted by the CPU that claimed them\n", tcp ? "TCP" : "UDP", released,
	       (unsigned long long)prel);
	check(pin + pout + busy == 2 * STRESS_FLOWS * STRESS_REPEAT,
	      "%s stress: counters exact under concurrency (in %llu + out %llu + busy %llu, want %u)",
	      tcp ? "TCP" : "UDP", (unsigned long long)pin, (unsigned long long)pout,
	      (unsigned long long)busy, 2 * STRESS_FLOWS * STRESS_REPEAT);
}

int main(void)
{
	struct env e;
	int err;

	if (geteuid() != 0) {
		fprintf(stderr, "test_ctx: must run as root\n");
		return 1;
	}
	err = env_open(&e, CAPACITY);
	if (err) {
		printf("not ok 1 - set up guest tables and load clat: %s\n", strerror(-err));
		return 1;
	}
	verdict_tests(&e);
	env_close(&e);
	err = env_open(&e, 64);
	if (err) {
		printf("not ok %d - set up a guest of capacity 64\n", ++tests_run);
		return 1;
	}
	full_tests(&e);
	env_close(&e);
	err = env_open(&e, LOAD_CAPACITY);
	if (err) {
		printf("not ok %d - set up a guest of capacity %u\n", ++tests_run, LOAD_CAPACITY);
		return 1;
	}
	load_test(&e, LOAD_CAPACITY);
	env_close(&e);
	for (int tcp = 0; tcp < 2; tcp++) {
		err = env_open(&e, CAPACITY);
		if (err) {
			printf("not ok %d - set up for the stress test\n", ++tests_run);
			return 1;
		}
		stress(&e, tcp);
		env_close(&e);
	}
	return tap_done();
}
