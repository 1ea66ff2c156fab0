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
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "lib/ctx_env.h"

#define CAPACITY 4096
#define LOAD_CAPACITY 32768

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
	/* The VM's answer to a SYN: a RST that acknowledges it. */
	send_expect(e, "a RST frees one slot", build(&f[i], 1, TH_RST | TH_ACK, 0, false), 1,
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
			uint32_t verdict = 0;

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
	/* A frame whose claim lock stayed taken past the bound (a descheduled
	 * vCPU) is delivered without its context and counted as ctx_busy. */
	busy = stat_of(e, CLAT_STAT_CTX_BUSY);
	printf("# %s stress: %llu frames could not take their claim lock in time\n",
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
