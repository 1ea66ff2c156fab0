// SPDX-License-Identifier: GPL-2.0
/* clat-guest seed: a testing aid that pre-populates LIVE contexts for N
 * flows at the slots the datapath would pick (bpf/context.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "cg.h"
#include "common.h"
#include "glookup.h"
#include "json.h"

struct seed_args {
	uint64_t count, vm_port, first_port;
	uint8_t vm_addr[16], remote_addr[16];
	uint8_t proto;
};

/* IPv4 as the datapath keys it: IPv4-mapped (::ffff:a.b.c.d). */
static int parse_v4_mapped(const char *s, const char *what, uint8_t out[16])
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1) {
		pr_err("invalid --%s '%s': expected an IPv4 address", what, s);
		return -EUSAGE;
	}
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, &a, 4);
	return 0;
}

static int seed_args(const struct invocation *inv, struct seed_args *a)
{
	int ret;

	/* Required and bounded (1..65535) by the table; --proto is udp|tcp. */
	a->count = opt_u32(inv, G_COUNT);
	a->vm_port = opt_u32(inv, G_VM_PORT);
	a->first_port = opt_u32(inv, G_FIRST_PORT);
	a->proto = opt_u32_or(inv, G_PROTO, 0) ? IPPROTO_TCP : IPPROTO_UDP;
	ret = parse_v4_mapped(inv->opt[G_VM_ADDR], "vm-addr", a->vm_addr);
	if (!ret)
		ret = parse_v4_mapped(inv->opt[G_REMOTE_ADDR], "remote-addr", a->remote_addr);
	if (ret)
		return ret;
	if (a->first_port + a->count - 1 > 65535) {
		pr_err("invalid --count %" PRIu64 ": remote ports %" PRIu64 "..%" PRIu64
		       " go past 65535", a->count, a->first_port, a->first_port + a->count - 1);
		return -EUSAGE;
	}
	return 0;
}

/* The seed's view of one capacity segment: its buckets as the device cuts
 * them (clat_seg_buckets, clat_slot_svc), read from guest memory. */
struct seed_seg {
	const struct gmem *g;
	const struct gtype *gt;
	const struct clat_seg *sg;
	uint32_t nbuckets;
};

/* Slot s of bucket b: its context, or NULL past the segment's last service
 * (the device fences those slots: never used). */
static int seed_slot(const struct seed_seg *ss, uint32_t b, uint32_t s, uint32_t *svc,
		     struct clat_ctx **c)
{
	*svc = clat_slot_svc(ss->sg->base, b, s);
	*c = NULL;
	if (*svc - ss->sg->base > ss->sg->size)
		return 0;
	*c = gmem_ptr(ss->g, gtype_ctx_gpa(ss->gt, *svc), sizeof(**c));
	if (!*c) {
		pr_err("failed to seed: svc %u of type %u has no context in guest memory", *svc,
		     ss->gt->index);
		return -EIO;
	}
	return 0;
}

/* The service of bucket b's LIVE slot that holds key with tag, matched as
 * the device matches it (whole state word, then key); *found 0 if none. */
static int seed_find(const struct seed_seg *ss, uint32_t b, uint16_t tag,
		     const struct clat_flow_key *key, uint32_t *found)
{
	uint64_t live = (uint64_t)tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_LIVE;
	struct clat_ctx *c;
	uint32_t s, svc;
	int err;

	*found = 0;
	for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
		err = seed_slot(ss, b, s, &svc, &c);
		if (err)
			return err;
		if (c && __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE) == live &&
		    !memcmp(&c->key, key, sizeof(*key))) {
			*found = svc;
			return 0;
		}
	}
	return 0;
}

/* The device's lane order of a bucket's slots (context.h slot_bit): its
 * "lowest free slot" is the lowest in this order, not the lowest number. */
static uint32_t slot_rank(uint32_t s)
{
	return (s & 3) * 16 + (s >> 2);
}

/* Free slots of bucket b (EMPTY or RELEASED: the ones whose tag the device
 * keeps FREE), and the one a claim takes: the tag's home slot if free, else
 * the free slot lowest in lane order. */
static int seed_free(const struct seed_seg *ss, uint32_t b, uint16_t tag, uint32_t *nfree,
		     uint32_t *pick)
{
	uint32_t home = tag & (CLAT_BUCKET_SLOTS - 1), s, svc, best = CLAT_BUCKET_SLOTS;
	struct clat_ctx *c;
	uint64_t state;
	int err;

	*nfree = 0;
	for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
		err = seed_slot(ss, b, s, &svc, &c);
		if (err)
			return err;
		if (!c)
			continue;
		state = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE) & CLAT_SLOT_STATE_MASK;
		if (state != CLAT_SLOT_EMPTY && state != CLAT_SLOT_RELEASED)
			continue;
		(*nfree)++;
		if (best == CLAT_BUCKET_SLOTS || s == home ||
		    (best != home && slot_rank(s) < slot_rank(best)))
			best = s;
	}
	*pick = best;
	return 0;
}

static void seed_seg_init(struct seed_seg *ss, const struct gmem *g, const struct gtype *gt,
			  uint32_t k)
{
	ss->g = g;
	ss->gt = gt;
	ss->sg = &gt->e.seg[k];
	ss->nbuckets = clat_seg_buckets(ss->sg->size);
}

/* Places one flow like the datapath's find-then-claim (bpf/context.h), so
 * that either side finds what the other placed: the lookup tries both
 * candidate buckets of every segment, newest first; the insert goes to the
 * emptier candidate of the newest segment (ties: candidate 0). */
static int seed_one(const struct gmem *g, const struct gtype *gt, const struct clat_flow_key *key,
		    uint64_t now)
{
	uint64_t h = clat_flow_hash(gt->e.hash_seed, key);
	uint16_t tag = clat_tag_of(h);
	char vm[INET_ADDRSTRLEN], rem[INET_ADDRSTRLEN];
	uint32_t b[2], nfree[2] = { 0 }, pick[2] = { 0 }, found = 0, k, i, svc;
	struct seed_seg ss;
	struct clat_ctx *dst;
	int err = 0;

	inet_ntop(AF_INET, key->vm_addr + 12, vm, sizeof(vm));
	inet_ntop(AF_INET, key->remote_addr + 12, rem, sizeof(rem));
	for (k = gt->e.nsegs; !found && k-- > 0;) {
		seed_seg_init(&ss, g, gt, k);
		b[0] = clat_bucket_of(h, 0, ss.nbuckets);
		b[1] = clat_bucket_of(h, 1, ss.nbuckets);
		err = seed_find(&ss, b[0], tag, key, &found);
		if (!err && !found && b[1] != b[0])
			err = seed_find(&ss, b[1], tag, key, &found);
		if (err)
			return err;
	}
	if (found) {
		pr_err("failed to seed flow %s:%u <-> %s:%u: already present at svc %u", vm,
		     ntohs(key->vm_port), rem, ntohs(key->remote_port), found);
		return -EEXIST;
	}
	seed_seg_init(&ss, g, gt, gt->e.nsegs - 1);
	b[0] = clat_bucket_of(h, 0, ss.nbuckets);
	b[1] = clat_bucket_of(h, 1, ss.nbuckets);
	err = seed_free(&ss, b[0], tag, &nfree[0], &pick[0]);
	if (!err && b[1] != b[0])
		err = seed_free(&ss, b[1], tag, &nfree[1], &pick[1]);
	if (err)
		return err;
	if (!nfree[0] && !nfree[1]) {
		pr_err("failed to seed flow %s:%u <-> %s:%u: both candidate buckets (svc %u.. and "
		     "svc %u..) of segment %u are full", vm, ntohs(key->vm_port), rem,
		     ntohs(key->remote_port), clat_slot_svc(ss.sg->base, b[0], 0),
		     clat_slot_svc(ss.sg->base, b[1], 0), gt->e.nsegs - 1);
		return -ENOSPC;
	}
	i = nfree[1] > nfree[0];
	err = seed_slot(&ss, b[i], pick[i], &svc, &dst);
	if (err)
		return err;
	/* Everything but the state word, then LIVE|tag last. */
	memset((uint8_t *)dst + sizeof(dst->state_word), 0, sizeof(*dst) - sizeof(dst->state_word));
	dst->key = *key;
	dst->tcp_state = key->proto == IPPROTO_TCP ? CLAT_TCP_ESTABLISHED : CLAT_TCP_NONE;
	dst->type = (uint16_t)gt->index;
	dst->svc = svc;
	dst->first_seen_ns = dst->last_seen_ns = now;
	__atomic_store_n(&dst->state_word, (uint64_t)tag << CLAT_SLOT_TAG_SHIFT | CLAT_SLOT_LIVE,
			 __ATOMIC_RELEASE);
	return 0;
}

static int seed_type(const struct invocation *inv, struct gmem *g, const struct gtables *t,
		     const struct gtype *gt, void *arg)
{
	const struct seed_args *a = arg;
	struct clat_flow_key key;
	struct timespec ts;
	struct json j;
	uint64_t i, n = 0;
	int ret = 0;

	(void)t;
	if (!(gt->e.proto_mask & (a->proto == IPPROTO_TCP ? CLAT_PROTO_TCP : CLAT_PROTO_UDP))) {
		pr_err("failed to seed: type %u (%s) does not track %s flows", gt->index, gt->e.name,
		       a->proto == IPPROTO_TCP ? "tcp" : "udp");
		return -EUSAGE;
	}
	clock_gettime(CLOCK_TAI, &ts);
	memset(&key, 0, sizeof(key));
	memcpy(key.vm_addr, a->vm_addr, 16);
	memcpy(key.remote_addr, a->remote_addr, 16);
	key.vm_port = htons((uint16_t)a->vm_port);
	key.proto = a->proto;
	for (i = 0; !ret && i < a->count; i++) {
		key.remote_port = htons((uint16_t)(a->first_port + i));
		ret = seed_one(g, gt, &key, (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec);
		n += !ret;
	}
	if (ret && n)
		pr_err("seeded %" PRIu64 " of %" PRIu64 " flows before the failure", n, a->count);
	if (!ret && has_opt(inv, G_JSON)) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_u64(&j, "seeded", n);
		json_obj_close(&j);
		json_end(&j);
	} else if (!ret) {
		printf("seeded %" PRIu64 " contexts in type %u (%s)\n", n, gt->index, gt->e.name);
	}
	return ret;
}

int cg_seed(const struct invocation *inv)
{
	struct seed_args a = { 0 };
	int ret = seed_args(inv, &a);

	return ret ? ret : cg_on_type(inv, true, seed_type, &a);
}
