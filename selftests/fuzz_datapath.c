// SPDX-License-Identifier: GPL-2.0
/* Datapath fuzzing through BPF_PROG_TEST_RUN: the real clat object, real
 * guest tables (gbuild -> gtables_load -> shadow_install, as test_ctx does),
 * and frames that are built, cut at every header and mutated: VLAN stacks,
 * bogus IPv4 IHL/total length, IPv6 payload lengths and extension chains,
 * fragments, TCP flag soup.
 *
 * An oracle, written from the header formats and not from the BPF code,
 * predicts each frame's verdict, every counter it moves (so a frame counted
 * against the wrong fn, i.e. redirected to a VF whose MAC does not match,
 * shows up as a counter that moved where it must not) and, for frames that
 * reach the fn with a guest, the context outcome in the PF's context pool:
 * a hit if the flow is LIVE in one of its two candidate buckets, else a
 * claim of the emptier candidate's home slot (or its free slot lowest in
 * lane order), or FULL when both are full; that only the slot hit or
 * claimed changes, and every byte of it but the clock as a model of the
 * TCP rules says (the acknowledged window, the handshake, FIN/FIN/ACK,
 * restarts, window scale: see "the TCP model"), so a release (RELEASED,
 * tag cleared, CTX_RELEASE) is predicted, never read back; and that both
 * tag lines agree with their slots.  Eviction is off (evict_age_ns at its
 * maximum): test_ctx_attack covers it.  Some random TCP segments are
 * steered into the window the model expects, so flows get past their SYN
 * and close; an idle sweep, as the host's gc, keeps UDP flows from filling
 * the pool for good.
 *
 * Deterministic: the seed is printed, and --seed S --iterations N replays a
 * run.  Any frame that broke a rule is printed in hex; such frames belong
 * in the named fixtures of dp_frames.c (regressions), which run first, each
 * also cut at every length.  TAP out. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clat_abi.h"
#include "clat.skel.h"
#include "dp_frames.h"
#include "dp_oracle.h"
#include "common.h"
#include "lib/dp_env.h"
#include "tap.h"

/* ---- environment ---------------------------------------------------------- */

/* The counters as last read (one env per run). */
static int ncpu;
static uint64_t seen_stats[NFN][CLAT_STAT__MAX];

static int env_open(struct env *e)
{
	/* No eviction: the oracle does not model it (test_ctx_attack does). */
	const uint64_t no_evict = UINT64_MAX;
	uint32_t fn;
	int rc;

	ncpu = libbpf_num_possible_cpus();
	rc = dp_env_load(e, POOL_CONTEXTS, &no_evict);
	for (fn = 0; !rc && fn < 5; fn++)
		rc = dp_add_fn(&e->m, fn, FN_TABLE[fn].mac, FN_TABLE[fn].vlan, FN_TABLE[fn].state,
			       FN_TABLE[fn].port ? LO : 0);
	if (!rc)
		rc = dp_set_uplink(&e->m, LO, GUEST_FN);
	if (!rc)
		rc = dp_env_guest(e, GUEST_FN, "fuzz-dp", CAPACITY, 0xf022, 4 << 20);
	return rc;
}

static void read_stats(struct env *e, uint64_t out[NFN][CLAT_STAT__MAX])
{
	struct clat_stats v[ncpu];
	int i, c, s;

	for (i = 0; i < NFN; i++) {
		memset(out[i], 0, sizeof(out[i]));
		if (bpf_map_lookup_elem(e->m.stats, &FNS[i], v))
			continue;
		for (c = 0; c < ncpu; c++)
			for (s = 0; s < CLAT_STAT__MAX; s++)
				out[i][s] += v[c].slot[s];
	}
}

struct tally {
	uint64_t frames, aborted, verdict_bad, counter_bad, ctx_bad, delivered_guest;
	uint64_t outcome[CLAT_STAT__MAX];
	uint64_t released, rel_rst, rel_last_ack;
	uint64_t tcp_in, tcp_out, restarts; /* TCP hits: counted, not counted; restarts */
	uint64_t steered;
	int shown;
};

static void show(struct tally *t, const char *why, const char *name, const struct frame *f,
		 bool tx)
{
	uint32_t i;

	if (t->shown++ >= 8)
		return;
	printf("# VIOLATION (%s) %s frame '%s', %u bytes:\n# ", why, tx ? "clat_tx" : "clat_rx",
	       name, f->len);
	for (i = 0; i < f->len; i++)
		printf("%02x%s", f->buf[i], i + 1 < f->len && (i + 1) % 32 == 0 ? "\n# " : "");
	printf("\n");
}

/* The candidate buckets after the frame, against the prediction: NULL,
 * or what differs. */
static const char *ctx_ok(struct env *e, const struct outcome *o)
{
	uint32_t j, s, idx;

	for (j = 0; j < o->nb; j++) {
		if (!tags_consistent(e, o->b[j]))
			return "a tag line disagrees with its slots";
		for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
			const struct clat_ctx *b = &o->before[j][s];
			const struct clat_ctx *a;
			struct clat_ctx x, y;
			bool ours;

			idx = o->b[j] * CLAT_BUCKET_SLOTS + s;
			a = pool_at(e, idx);
			ours = (o->result == CLAT_STAT_CTX_HIT || o->result == CLAT_STAT_CTX_CLAIM) &&
			       idx == o->idx;
			if (!ours) {
				/* Slots that are not ours keep every byte and their tag. */
				if (memcmp(a, b, sizeof(*a)))
					return "a slot the frame did not hit or claim changed";
				if (e->v.pool.meta[o->b[j]].tag[s] != o->meta[j].tag[s])
					return "the tag of a slot the frame did not hit or claim changed";
				continue;
			}
			if (shadow_view_ctx(&e->v, a->svc, NULL) != a)
				return "the record's svc is not where it lives";
			/* Released: RELEASED with the tag kept in the word, the tag
			 * line's entry cleared; else LIVE and tagged. */
			if (a->state_word != o->expect.state_word)
				return o->released ? "not released as predicted" : "released or not LIVE";
			if (e->v.pool.meta[o->b[j]].tag[s] != (o->released ? CLAT_TAG_FREE : o->tag))
				return "tag line entry";
			/* Every other byte as the model says, the clock aside. */
			x = o->expect;
			y = *a;
			x.first_seen_ns = y.first_seen_ns = x.last_seen_ns = y.last_seen_ns = 0;
			if (memcmp(&x, &y, sizeof(x))) {
				static char why[320];

				snprintf(why, sizeof(why),
					 "record: state %u/%u fin %u/%u init %u/%u lastfin %u/%u "
					 "seq_next %x,%x/%x,%x ack_last %x,%x/%x,%x wscale %02x/%02x "
					 "wlog %02x/%02x pk %llu,%llu/%llu,%llu (predicted/got)",
					 x.tcp_state, y.tcp_state, x.fin_mask, y.fin_mask, x.initiator,
					 y.initiator, x.last_fin_dir, y.last_fin_dir, x.seq_next[0],
					 x.seq_next[1], y.seq_next[0], y.seq_next[1], x.ack_last[0],
					 x.ack_last[1], y.ack_last[0], y.ack_last[1], x.wscale, y.wscale,
					 x.wlog, y.wlog, (unsigned long long)x.packets[0],
					 (unsigned long long)x.packets[1], (unsigned long long)y.packets[0],
					 (unsigned long long)y.packets[1]);
				return why;
			}
			/* A claim or a restart stamps first_seen with the frame's
			 * time, which last_seen also gets; the clock never goes back. */
			if (o->fresh ? a->first_seen_ns != a->last_seen_ns
				     : a->first_seen_ns != b->first_seen_ns)
				return "first_seen_ns";
			if (o->result == CLAT_STAT_CTX_HIT && a->last_seen_ns < b->last_seen_ns)
				return "last_seen_ns went back";
		}
	}
	return NULL;
}

static void one(struct env *e, struct tally *t, const char *name, const struct frame *f, bool tx)
{
	uint64_t after[NFN][CLAT_STAT__MAX];
	static struct outcome o;
	uint32_t verdict;
	const char *why;
	bool bad = false;
	int i, s, rc;

	predict(e, &o, f, tx);
	t->frames++;
	rc = dp_run(bpf_program__fd(tx ? e->skel->progs.clat_tx : e->skel->progs.clat_rx), f,
		    tx ? LO : 0, &verdict);
	if (rc) {
		t->verdict_bad++;
		show(t, strerror(-rc), name, f, tx);
		return;
	}
	if (verdict == XDP_ABORTED) {
		t->aborted++;
		show(t, "XDP_ABORTED", name, f, tx);
	}
	if (verdict != o.verdict) {
		t->verdict_bad++;
		show(t, "verdict", name, f, tx);
	}
	read_stats(e, after);
	for (i = 0; i < NFN; i++)
		for (s = 0; s < CLAT_STAT__MAX; s++)
			bad |= (int64_t)(after[i][s] - seen_stats[i][s]) != o.d[i][s];
	if (bad) {
		t->counter_bad++;
		show(t, "counters: a counter moved that the oracle did not predict", name, f, tx);
	}
	if (o.tracked) {
		t->delivered_guest++;
		t->outcome[o.result]++;
		if (o.result == CLAT_STAT_CTX_HIT && o.fl.key.proto == IPPROTO_TCP) {
			t->tcp_in += o.step.in;
			t->tcp_out += !o.step.in;
			t->restarts += o.step.restart;
		}
		t->released += o.released;
		t->rel_rst += o.step.close == M_CLOSE_RST;
		t->rel_last_ack += o.step.close == M_CLOSE_LAST_ACK;
		why = ctx_ok(e, &o);
		if (why) {
			t->ctx_bad++;
			show(t, why, name, f, tx);
		}
	} else if (o.d[GUEST_FN][CLAT_STAT_CTX_SKIP]) {
		t->delivered_guest++;
		t->outcome[CLAT_STAT_CTX_SKIP]++;
	}
	memcpy(seen_stats, after, sizeof(after));
}

/* ---- steering: random segments that the model says count ---------------- *
 *
 * Random sequence numbers almost never land in a window, so without help
 * no random flow would get past its SYN and nothing but a SYN|RST would
 * ever release a context.  Some TCP frames that will reach the guest fn
 * are rewritten from the model's view of their context (the pool's record,
 * which every frame checks against the model): flags that move the state
 * machine on towards a FIN/FIN/ACK close or a RST, a sequence in the
 * acknowledged window (or on its edges, one in and one out), the ack the
 * other side expects, a window field of any size; and SYNs get a window
 * scale option.  The frame is rewritten in place, its lengths untouched:
 * the oracle then predicts it from its bytes like any other. */
#define STEER_PCT 60

static uint32_t rnd_below(uint32_t n)
{
	return n ? dp_rnd() % n : 0;
}

/* A SYN without options gets NOP, window scale (0..15: above 14 is taken
 * as 14) in its first 4 payload bytes: doff 5 -> 6, lengths kept. */
static void add_wscale(struct frame *f, const struct oflow *fl)
{
	uint32_t th = fl->l4off;

	if (fl->doff != 20 || fl->l4len < 24 || th + 24 > f->len)
		return;
	f->buf[th + 12] = (uint8_t)(0x60 | (f->buf[th + 12] & 0x0f));
	f->buf[th + 20] = 1;
	f->buf[th + 21] = 3;
	f->buf[th + 22] = 3;
	f->buf[th + 23] = (uint8_t)rnd_below(16);
}

static bool steer(struct env *e, struct frame *f, bool tx)
{
	static const uint8_t est[] = { O_TCP_ACK, O_TCP_ACK | O_TCP_PSH, O_TCP_ACK | O_TCP_FIN,
				       O_TCP_ACK | O_TCP_FIN, O_TCP_RST, O_TCP_RST | O_TCP_ACK };
	static struct outcome o;
	const struct clat_ctx *c;
	uint32_t w, seq, ack, r;
	uint8_t *th, flags;
	int dir, other;

	predict(e, &o, f, tx);
	if (!o.tracked || o.fl.key.proto != IPPROTO_TCP || !dp_chance(STEER_PCT))
		return false;
	th = f->buf + o.fl.l4off;
	if (o.result != CLAT_STAT_CTX_HIT) {
		/* A SYN that opens a flow: maybe with a window scale. */
		if ((o.fl.flags & O_TCP_SYN) && dp_chance(50))
			add_wscale(f, &o.fl);
		return true;
	}
	c = pool_at(e, o.idx);
	dir = o.dir;
	other = !dir;
	switch (c->tcp_state) {
	case CLAT_TCP_SYN_SENT:
		flags = dir != c->initiator ? O_TCP_SYN | O_TCP_ACK
					    : dp_chance(30) ? O_TCP_SYN : O_TCP_ACK;
		break;
	case CLAT_TCP_SYN_RECV:
		flags = dir == c->initiator ? O_TCP_ACK : O_TCP_SYN | O_TCP_ACK;
		break;
	case CLAT_TCP_ESTABLISHED:
		flags = est[rnd_below(sizeof(est))];
		break;
	case CLAT_TCP_FIN_WAIT:
		flags = c->fin_mask & (1 << dir) ? O_TCP_ACK : O_TCP_ACK | O_TCP_FIN;
		break;
	default: /* LAST_ACK */
		flags = dp_chance(80) ? O_TCP_ACK : O_TCP_ACK | O_TCP_FIN;
		break;
	}
	if (dp_chance(6)) /* a reset, or a new connection on the 5-tuple, anywhere */
		flags = dp_chance(50) ? O_TCP_RST | O_TCP_ACK : O_TCP_SYN;
	if (dp_chance(5))
		flags = (uint8_t)dp_rnd(); /* flag soup, in window */
	ack = dp_chance(90) ? c->seq_next[other] : dp_rnd();
	w = m_window(c->wlog, other);
	if (w) {
		r = rnd_below(20);
		seq = c->ack_last[other] + (r < 8 ? 0 : r < 16 ? rnd_below(w) : r < 18 ? w - 1 : w);
		if (r == 19)
			seq = c->ack_last[other] - 1;
	} else {
		seq = dp_chance(80) ? c->seq_next[dir] : dp_rnd();
	}
	wr32(th + 4, seq);
	wr32(th + 8, ack);
	th[13] = flags;
	r = rnd_below(10);
	if (r >= 6) { /* 65535 as built, else any window, a small one or a power of two */
		uint16_t win = (uint16_t)(r < 8 ? dp_rnd() : r < 9 ? rnd_below(4096)
						 : 1u << rnd_below(16));

		th[14] = (uint8_t)(win >> 8);
		th[15] = (uint8_t)win;
	}
	if ((flags & O_TCP_SYN) && dp_chance(50))
		add_wscale(f, &o.fl);
	return true;
}

/* The host's idle GC, by frame count: every SWEEP_EVERY random frames, each
 * context still LIVE and untouched (same state word and packet counts)
 * since the previous sweep is released as clat-guest gc releases it
 * (shadow_view_release: RELEASED, then its tag cleared).  UDP flows never
 * close: without it they would fill the candidate buckets for good within
 * seconds, and every later SYN would find them FULL.  The oracle reads
 * each frame's "before" from the pool, so it needs no word of this. */
#define SWEEP_EVERY 65536

static uint64_t sweep(struct env *e)
{
	static struct {
		uint64_t sw, pk;
	} seen[CAPACITY];
	uint64_t n = 0, pk;
	uint32_t i, k;

	for (i = 0; i < e->sg.size && i < CAPACITY; i++) {
		struct clat_ctx *c = shadow_view_ctx(&e->v, e->sg.base + 1 + i, &k);

		if (!c)
			continue;
		pk = c->packets[0] + c->packets[1];
		if ((c->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE &&
		    c->state_word == seen[i].sw && pk == seen[i].pk)
			n += shadow_view_release(&e->v, k, e->sg.base + i - e->v.td.seg[k].base);
		seen[i].sw = c->state_word;
		seen[i].pk = pk;
	}
	return n;
}

static void truncations(struct env *e, struct tally *t)
{
	struct frame f;
	uint32_t i, n, len;
	char name[64];

	for (i = 0; i < dp_nfixtures; i++)
		for (n = 0; n < 2; n++) {
			if (!frame_from_hex(dp_fixtures[i].hex, &f)) {
				t->verdict_bad++;
				printf("# fixture %s does not parse\n", dp_fixtures[i].name);
				continue;
			}
			one(e, t, dp_fixtures[i].name, &f, n);
			for (len = f.len - 1; len >= 14; len--) {
				f.len = len;
				snprintf(name, sizeof(name), "%s cut at %u", dp_fixtures[i].name, len);
				one(e, t, name, &f, n);
			}
		}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *what, const struct tally *t)
{
	check(t->aborted == 0, "%s: %llu frames, none XDP_ABORTED (%llu)", what,
	      (unsigned long long)t->frames, (unsigned long long)t->aborted);
	check(t->verdict_bad == 0, "%s: every verdict as predicted (%llu wrong)", what,
	      (unsigned long long)t->verdict_bad);
	check(t->counter_bad == 0,
	      "%s: every counter move as predicted, so no frame went to a fn whose MAC/VLAN does "
	      "not match (%llu wrong)", what, (unsigned long long)t->counter_bad);
	check(t->ctx_bad == 0,
	      "%s: contexts as predicted: %llu frames reached the guest fn: hit %llu, claim %llu, "
	      "full %llu, miss %llu, skip %llu; TCP hits in window %llu, out of window %llu, "
	      "restarts %llu; released %llu (RST %llu, last ACK %llu); steered %llu (%llu wrong)",
	      what, (unsigned long long)t->delivered_guest,
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_HIT],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_CLAIM],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_FULL],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_MISS],
	      (unsigned long long)t->outcome[CLAT_STAT_CTX_SKIP], (unsigned long long)t->tcp_in,
	      (unsigned long long)t->tcp_out, (unsigned long long)t->restarts,
	      (unsigned long long)t->released, (unsigned long long)t->rel_rst,
	      (unsigned long long)t->rel_last_ack, (unsigned long long)t->steered,
	      (unsigned long long)t->ctx_bad);
}

int main(int argc, char **argv)
{
	double seconds = 20, start;
	uint64_t iterations = 0, seed = 0, i, live_pk = 0, hits_claims, swept = 0;
	struct tally fx = { 0 }, rn = { 0 };
	struct env e;
	int opt, err;

	while ((opt = getopt(argc, argv, "s:n:S:-:")) != -1) {
		const char *v = optarg;

		if (opt == '-') { /* --seconds=X style, and --seconds X */
			char *eq = strchr(optarg, '=');

			if (eq) {
				*eq = 0;
				v = eq + 1;
			} else if (optind < argc) {
				v = argv[optind++];
			}
			opt = !strcmp(optarg, "seconds") ? 's' : !strcmp(optarg, "iterations") ? 'n'
			      : !strcmp(optarg, "seed") ? 'S' : '?';
		}
		if (opt == 's')
			seconds = strtod(v, NULL);
		else if (opt == 'n')
			iterations = strtoull(v, NULL, 0);
		else if (opt == 'S')
			seed = strtoull(v, NULL, 0);
		else {
			fprintf(stderr, "usage: fuzz_datapath [--seconds S] [--iterations N] [--seed X]\n");
			return 2;
		}
	}
	if (geteuid() != 0) {
		fprintf(stderr, "fuzz_datapath: must run as root\n");
		return 1;
	}
	if (!seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid();
		seed |= 1;
	}
	err = env_open(&e);
	if (err) {
		printf("not ok 1 - set up guest tables and load clat: %s\n", strerror(-err));
		unlink(e.mem);
		return 1;
	}
	read_stats(&e, seen_stats);
	truncations(&e, &fx);
	report("named fixtures, cut at every byte", &fx);

	printf("# seed 0x%llx (replay: fuzz_datapath --seed 0x%llx --iterations N)\n",
	       (unsigned long long)seed, (unsigned long long)seed);
	dp_seed(seed);
	start = now_s();
	for (i = 0; iterations ? i < iterations : now_s() - start < seconds; i++) {
		struct frame f;
		bool tx = dp_chance(35);
		char name[48];

		dp_build(&f, tx);
		dp_mutate(&f);
		rn.steered += steer(&e, &f, tx);
		if (i && i % SWEEP_EVERY == 0)
			swept += sweep(&e);
		snprintf(name, sizeof(name), "seed 0x%llx #%llu", (unsigned long long)seed,
			 (unsigned long long)i);
		one(&e, &rn, name, &f, tx);
	}
	printf("# idle sweeps released %llu contexts\n", (unsigned long long)swept);
	report("random frames", &rn);

	/* Every packet a context ever counted came from a hit or a claim, and a
	 * context loses its counts only when a claim reuses its released slot. */
	hits_claims = fx.outcome[CLAT_STAT_CTX_HIT] + fx.outcome[CLAT_STAT_CTX_CLAIM] +
		      rn.outcome[CLAT_STAT_CTX_HIT] + rn.outcome[CLAT_STAT_CTX_CLAIM];
	for (i = 0; i < e.sg.size; i++) {
		const struct clat_ctx *c = shadow_view_ctx(&e.v, e.sg.base + 1 + (uint32_t)i, NULL);

		if (c && (c->state_word & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE)
			live_pk += c->packets[0] + c->packets[1];
	}
	check(live_pk <= hits_claims && seen_stats[GUEST_FN][CLAT_STAT_CTX_HIT] +
	      seen_stats[GUEST_FN][CLAT_STAT_CTX_CLAIM] == hits_claims &&
	      seen_stats[GUEST_FN][CLAT_STAT_CTX_BUSY] == 0,
	      "context totals: live contexts hold %llu packets <= %llu hits+claims, no ctx_busy",
	      (unsigned long long)live_pk, (unsigned long long)hits_claims);
	dp_env_close(&e);
	return tap_done();
}

