// SPDX-License-Identifier: GPL-2.0
/* Context-path tests through BPF_PROG_TEST_RUN: slot claims, lookups past
 * collisions, tombstones, release on FIN/RST, a full window, frames that get
 * no context, and a two-CPU stress of rx and tx racing on the same new flows.
 * The guest tables are real: built by gbuild into a temporary guest memory
 * file, validated by gtables_load and shadowed by shadow_install.  TAP out. */
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
#define WINDOW 4
#define CAPACITY 4096

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

static int env_open(struct env *e, uint32_t window)
{
	struct gbuild_type ty = { .name = "conn", .ctx_size = 256, .block_size = 4096,
				  .services = CAPACITY, .probe_window = window,
				  .hash_seed = 0x5eed, .seed_set = true };
	struct gbuild_opts go = { .size = 8 << 20 };
	struct clat_vct_entry vct = { .state = CLAT_FN_ACTIVE, .ifindex = LO };
	struct clat_mac_key mk = { .vlan = 0 };
	struct clat_mac_val mv = { .fn = FN };
	struct clat_port_val pv = { .fn = FN };
	uint32_t fn = FN, lo = LO, uplink = CLAT_UPLINK_SLOT;
	char err[256];
	struct gtables t;
	uint64_t bat;
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
	e->skel = clat__open_and_load();
	if (!e->skel)
		return -errno;
	maps_from_skel(e->skel, &e->m);
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
		uint64_t live;

		rc = shadow_install(&e->m, NULL, FN, e->mem, &g, &t, NULL, &live);
		gtables_free(&t);
	} else {
		fprintf(stderr, "gtables: %s\n", err);
	}
	gmem_close(&g);
	return rc ? rc : shadow_view_open(&e->m, FN, 0, &e->v);
}

static void env_close(struct env *e)
{
	shadow_view_close(&e->v);
	clat__destroy(e->skel);
	unlink(e->mem);
}

static uint32_t svc_of(struct env *e, const struct flow *f, uint32_t p)
{
	struct clat_flow_key k;

	key_of(f, &k);
	return clat_probe_svc(clat_flow_hash(e->seed, &k), p, 0, CAPACITY);
}

static struct clat_ctx *ctx_at(struct env *e, uint32_t svc)
{
	return shadow_view_ctx(&e->v, svc, NULL);
}

static uint32_t slot_state_of(struct env *e, uint32_t svc)
{
	return ctx_at(e, svc)->state_word & CLAT_SLOT_STATE_MASK;
}

/* A flow whose first probe lands on the same service number as f's. */
static struct flow colliding(struct env *e, const struct flow *f, uint16_t from)
{
	struct flow c = *f;

	for (c.remote_port = from; c.remote_port < 65535; c.remote_port++)
		if (c.remote_port != f->remote_port && svc_of(e, &c, 0) == svc_of(e, f, 0))
			break;
	return c;
}

/* The next flow after counter *n (remote port, then VM port) whose first
 * probe is f's: enough of them to fill a window, however well the hash
 * spreads one port range. */
static struct flow colliding_next(struct env *e, const struct flow *f, uint32_t *n)
{
	struct flow c = *f;

	for (;; (*n)++) {
		c.remote_port = (uint16_t)(*n & 0xffff);
		c.vm_port = (uint16_t)(f->vm_port + 1 + (*n >> 16));
		if (svc_of(e, &c, 0) == svc_of(e, f, 0))
			break;
	}
	(*n)++;
	return c;
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

static void verdict_tests(struct env *e)
{
	struct flow a = tcp4(40000), b, c, u = udp4(5353), f6 = tcp4(40001);
	struct clat_flow_key ka, kb;
	uint32_t sa, sb, i, fill = 0;
	struct frame fr;

	key_of(&a, &ka);
	sa = svc_of(e, &a, 0);
	send_expect(e, "SYN claims a slot", build(&a, 0, TH_SYN, 0, false), 0,
		    CLAT_STAT_CTX_CLAIM, 1);
	check(slot_state_of(e, sa) == CLAT_SLOT_LIVE && !memcmp(&ctx_at(e, sa)->key, &ka, sizeof(ka)) &&
	      ctx_at(e, sa)->svc == sa && ctx_at(e, sa)->tcp_state == CLAT_TCP_SYN_SENT,
	      "the claimed context at svc %u holds the key, its svc and SYN_SENT", sa);
	send_expect(e, "SYN-ACK from the VM finds the same context (tx)",
		    build(&a, 1, TH_SYN | TH_ACK, 0, false), 1, CLAT_STAT_CTX_HIT, 1);
	send_expect(e, "ACK with 100 bytes finds it (rx)", build(&a, 0, TH_ACK, 100, false), 0,
		    CLAT_STAT_CTX_HIT, 1);
	fr = build(&a, 0, TH_ACK, 100, false);
	check(ctx_at(e, sa)->packets[CLAT_DIR_IN] == 2 && ctx_at(e, sa)->packets[CLAT_DIR_OUT] == 1 &&
	      ctx_at(e, sa)->bytes[CLAT_DIR_IN] == 54 + fr.len &&
	      ctx_at(e, sa)->tcp_state == CLAT_TCP_ESTABLISHED,
	      "per-direction counters 2/1, bytes %llu, ESTABLISHED",
	      (unsigned long long)ctx_at(e, sa)->bytes[CLAT_DIR_IN]);

	b = colliding(e, &a, 41000);
	key_of(&b, &kb);
	sb = svc_of(e, &b, 1);
	send_expect(e, "a colliding SYN claims the next slot", build(&b, 0, TH_SYN, 0, false), 0,
		    CLAT_STAT_CTX_CLAIM, 1);
	check(svc_of(e, &b, 0) == sa && !memcmp(&ctx_at(e, sb)->key, &kb, sizeof(kb)),
	      "colliding flow lives at probe 1 (svc %u)", sb);
	send_expect(e, "the colliding flow is found past the collision",
		    build(&b, 0, TH_ACK, 0, false), 0, CLAT_STAT_CTX_HIT, 1);

	fr = build(&a, 1, TH_RST, 0, false);
	put_be(fr.buf + 14 + 20 + 4, htonl(1000 + 0x40000000), 4);
	send_expect(e, "a RST far outside the sender's sequence is counted but releases nothing",
		    fr, 1, CLAT_STAT_CTX_HIT, 1);
	check(stat_of(e, CLAT_STAT_CTX_RELEASE) == 0 && slot_state_of(e, sa) == CLAT_SLOT_LIVE,
	      "after a spoofed RST the slot is still LIVE");
	send_expect(e, "RST releases", build(&a, 1, TH_RST, 0, false), 1, CLAT_STAT_CTX_RELEASE, 1);
	check(slot_state_of(e, sa) == CLAT_SLOT_TOMBSTONE, "the released slot is a tombstone");
	send_expect(e, "a lookup passes over the tombstone", build(&b, 1, TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
	send_expect(e, "a SYN of the flow behind the tombstone does not claim a second slot",
		    build(&b, 0, TH_SYN, 0, false), 0, CLAT_STAT_CTX_HIT, 1);
	c = colliding(e, &a, (uint16_t)(b.remote_port + 1));
	send_expect(e, "a new colliding flow reuses the tombstone", build(&c, 0, TH_SYN, 0, false),
		    0, CLAT_STAT_CTX_CLAIM, 1);
	check(slot_state_of(e, sa) == CLAT_SLOT_LIVE && ctx_at(e, sa)->key.remote_port == htons(c.remote_port),
	      "the tombstone at svc %u now holds the new flow", sa);

	/* FIN from both sides, then the last ACK, closes the flow. */
	send_expect(e, "FIN from the VM", build(&c, 1, TH_FIN | TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
	send_expect(e, "FIN from the wire", build(&c, 0, TH_FIN | TH_ACK, 0, false), 0,
		    CLAT_STAT_CTX_HIT, 1);
	check(ctx_at(e, sa)->tcp_state == CLAT_TCP_LAST_ACK, "both FINs: LAST_ACK");
	send_expect(e, "the last ACK releases", build(&c, 1, TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_RELEASE, 1);
	check(slot_state_of(e, sa) == CLAT_SLOT_TOMBSTONE, "after FIN/FIN/ACK the slot is a tombstone");

	/* Fill a window: WINDOW flows on one first probe, then one more. */
	for (i = 0; i < WINDOW; i++) {
		c = colliding_next(e, &a, &fill);
		fr = build(&c, 0, TH_SYN, 0, false);
		run(e, &fr, 0, &(uint32_t){ 0 });
	}
	c = colliding_next(e, &a, &fill);
	send_expect(e, "a full window delivers without a context", build(&c, 0, TH_SYN, 0, false),
		    0, CLAT_STAT_CTX_FULL, 1);

	send_expect(e, "TCP mid-stream without a context is delivered, no claim",
		    build(&f6, 0, TH_ACK, 10, false), 0, CLAT_STAT_CTX_MISS, 1);
	send_expect(e, "an IPv4 fragment gets no context and is delivered",
		    build(&u, 0, 0, 10, true), 0, CLAT_STAT_CTX_SKIP, 1);
	fr = build(&u, 0, 0, 10, false);
	fr.buf[14 + 9] = 1; /* ICMP */
	send_expect(e, "a non-TCP/UDP packet gets no context and is delivered", fr, 0,
		    CLAT_STAT_CTX_SKIP, 1);

	send_expect(e, "UDP from the VM claims (tx)", build(&u, 1, 0, 20, false), 1,
		    CLAT_STAT_CTX_CLAIM, 1);
	send_expect(e, "the UDP reply finds the same context (rx)", build(&u, 0, 0, 20, false), 0,
		    CLAT_STAT_CTX_HIT, 1);
	check(ctx_at(e, svc_of(e, &u, 0))->packets[CLAT_DIR_OUT] == 1 &&
	      ctx_at(e, svc_of(e, &u, 0))->packets[CLAT_DIR_IN] == 1,
	      "both directions of the UDP flow count in one context");

	f6.v6 = true;
	f6.vm6[0] = 0xfd;
	f6.vm6[15] = 0x10;
	f6.remote6[0] = 0xfd;
	f6.remote6[15] = 0x01;
	send_expect(e, "IPv6 TCP SYN claims", build(&f6, 0, TH_SYN, 0, false), 0,
		    CLAT_STAT_CTX_CLAIM, 1);
	send_expect(e, "IPv6 reply finds it", build(&f6, 1, TH_SYN | TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
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
	uint32_t i, live = 0, dup = 0, missing = 0;
	uint64_t pin = 0, pout = 0, busy;
	pthread_t a, b;
	uint8_t *seen = calloc(STRESS_FLOWS, 1);

	pthread_create(&a, NULL, race, &rx);
	pthread_create(&b, NULL, race, &tx);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	for (i = 0; i < e->v.seg[0].n; i++) {
		struct clat_ctx *c = &e->v.seg[0].ctx[i];
		uint16_t port = ntohs(c->key.remote_port);

		if ((c->state_word & CLAT_SLOT_STATE_MASK) != CLAT_SLOT_LIVE ||
		    c->key.proto != (tcp ? IPPROTO_TCP : IPPROTO_UDP) ||
		    ntohs(c->key.vm_port) != (tcp ? 443 : 53))
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
	check(rx.failures == 0 && tx.failures == 0, "%s stress: every frame redirected",
	      tcp ? "TCP" : "UDP");
	check(stat_of(e, CLAT_STAT_CTX_FULL) == 0, "%s stress: no full window (%llu)",
	      tcp ? "TCP" : "UDP", (unsigned long long)stat_of(e, CLAT_STAT_CTX_FULL));
	/* A frame that meets a claim stalled past the bound (a descheduled vCPU)
	 * is delivered without its context and counted as ctx_busy. */
	busy = stat_of(e, CLAT_STAT_CTX_BUSY);
	printf("# %s stress: %llu frames met a claim that did not settle in time\n",
	       tcp ? "TCP" : "UDP", (unsigned long long)busy);
	check(live == STRESS_FLOWS && dup == 0 && missing == 0,
	      "%s stress: %u flows raced from two CPUs -> %u contexts, %u duplicates, %u missing",
	      tcp ? "TCP" : "UDP", STRESS_FLOWS, live, dup, missing);
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
	err = env_open(&e, WINDOW);
	if (err) {
		printf("not ok 1 - set up guest tables and load clat: %s\n", strerror(-err));
		return 1;
	}
	verdict_tests(&e);
	env_close(&e);
	for (int tcp = 0; tcp < 2; tcp++) {
		err = env_open(&e, 16);
		if (err) {
			printf("not ok %d - set up for the stress test\n", ++tests_run);
			return 1;
		}
		stress(&e, tcp);
		env_close(&e);
	}
	return tap_done();
}
