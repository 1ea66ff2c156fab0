// SPDX-License-Identifier: GPL-2.0
/* The context table under attack, through BPF_PROG_TEST_RUN: a blind peer
 * on the wire cannot release a live TCP context (a segment never moves the
 * window a RST or FIN is checked against: only the other side's own
 * acknowledgements do), a frame whose IPv4 length reaches past it gets no
 * context, and a flood of flows that are never answered does not keep a
 * VM's new flows from getting contexts (they take over an unanswered
 * flow's slot once it is evict_age_ns old).  TAP out. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "lib/ctx_env.h"

#define CAPACITY 4096
#define SEQ_OFF (14 + 20 + 4) /* IPv4 TCP frame: the sequence number */

static void set_seq(struct frame *fr, uint32_t seq)
{
	put_be(fr->buf + SEQ_OFF, htonl(seq), 4);
}

static int established(struct env *e, const struct flow *a)
{
	int ia = claim_expect(e, "SYN from the wire claims", a, 0, build(a, 0, TH_SYN, 0, false));

	send_expect(e, "the VM's SYN-ACK finds it", build(a, 1, TH_SYN | TH_ACK, 0, false), 1,
		    CLAT_STAT_CTX_HIT, 1);
	send_expect(e, "the wire's ACK finds it", build(a, 0, TH_ACK, 0, false), 0,
		    CLAT_STAT_CTX_HIT, 1);
	check(ia >= 0 && pool_at(e, ia)->tcp_state == CLAT_TCP_ESTABLISHED &&
	      clat_ctx_window(pool_at(e, ia), CLAT_DIR_OUT) == 65536,
	      "ESTABLISHED, the VM's advertised 64 KiB window tracked (%u)",
	      ia >= 0 ? clat_ctx_window(pool_at(e, ia), CLAT_DIR_OUT) : 0);
	return ia;
}

/* The two-packet attack: a byte at a guessed sequence, then a RST right
 * after it.  Outside the window the VM acknowledged, neither counts. */
static void blind_rst(struct env *e)
{
	struct flow a = tcp4(41000);
	uint32_t guess = 1001 + (1 << 20), next;
	struct frame fr;
	int ia = established(e, &a);

	if (ia < 0)
		return;
	next = pool_at(e, ia)->seq_next[CLAT_DIR_IN];
	fr = build(&a, 0, TH_ACK, 1, false);
	set_seq(&fr, guess);
	send_expect(e, "a byte 1 MiB past the VM's window is delivered", fr, 0, CLAT_STAT_CTX_HIT,
		    1);
	check(pool_at(e, ia)->seq_next[CLAT_DIR_IN] == next,
	      "it does not move the tracked sequence (%u, was %u)",
	      pool_at(e, ia)->seq_next[CLAT_DIR_IN], next);
	fr = build(&a, 0, TH_RST, 0, false);
	set_seq(&fr, guess + 1);
	send_expect(e, "the RST right after it is delivered", fr, 0, CLAT_STAT_CTX_RELEASE, 0);
	fr = build(&a, 0, TH_FIN | TH_ACK, 0, false);
	set_seq(&fr, guess + 1);
	send_expect(e, "so is a FIN there", fr, 0, CLAT_STAT_CTX_HIT, 1);
	check(state_at(e, ia) == CLAT_SLOT_LIVE && pool_at(e, ia)->fin_mask == 0 &&
	      pool_at(e, ia)->tcp_state == CLAT_TCP_ESTABLISHED,
	      "the context is still LIVE and ESTABLISHED: the peer must guess inside the window");
	fr = build(&a, 0, TH_RST, 0, false);
	set_seq(&fr, 1001 + 65535);
	send_expect(e, "a RST at the window's last byte releases", fr, 0, CLAT_STAT_CTX_RELEASE, 1);
	check(state_at(e, ia) == CLAT_SLOT_RELEASED && meta_tag(e, ia) == CLAT_TAG_FREE,
	      "the slot is RELEASED, its tag cleared");
}

/* Before the VM answered, only a RST that acknowledges the SYN counts. */
static void rst_to_syn(struct env *e)
{
	struct flow a = tcp4(41002);
	struct frame fr;
	int ia = claim_expect(e, "a SYN from the VM claims", &a, 1, build(&a, 1, TH_SYN, 0, false));

	fr = build(&a, 0, TH_RST | TH_ACK, 0, false);
	put_be(fr.buf + SEQ_OFF + 4, htonl(4242), 4);
	send_expect(e, "a RST acknowledging something else releases nothing", fr, 0,
		    CLAT_STAT_CTX_RELEASE, 0);
	send_expect(e, "a bare RST releases nothing", build(&a, 0, TH_RST, 0, false), 0,
		    CLAT_STAT_CTX_RELEASE, 0);
	send_expect(e, "the RST that acknowledges the SYN releases",
		    build(&a, 0, TH_RST | TH_ACK, 0, false), 0, CLAT_STAT_CTX_RELEASE, 1);
	check(ia >= 0 && state_at(e, ia) == CLAT_SLOT_RELEASED, "the slot is RELEASED");
}

static void long_ipv4(struct env *e)
{
	struct flow u = udp4(41003);
	struct frame fr = build(&u, 0, 0, 10, false);

	put_be(fr.buf + 14 + 2, htons(1500), 2);
	send_expect(e, "an IPv4 length beyond the frame is delivered without a context", fr, 0,
		    CLAT_STAT_CTX_SKIP, 1);
	check(where(e, &u) < 0, "and takes no slot");
}

/* 64 flows fill both candidates of t: the odd ones answered by the VM,
 * the even ones never.  With evict_age_ns 0, t (opened by the VM) takes
 * over an unanswered flow's slot; every answered flow keeps its own. */
static void flood(struct env *e)
{
	struct flow t = udp4(50000), f[64];
	uint32_t n = 0, p, i, answered = 0, unanswered = 0;
	int got;

	for (p = 50000; cand(e, &t, 0) == cand(e, &t, 1); p++)
		t = udp4((uint16_t)p);
	for (i = 0; i < 64; i++) {
		f[i] = sharing_proto(e, &t, IPPROTO_UDP, &n, false, false);
		send_expect(e, "a flow from the wire claims", build(&f[i], 0, 0, 0, false), 0,
			    CLAT_STAT_CTX_CLAIM, 1);
		if (i & 1)
			send_expect(e, "the VM answers it", build(&f[i], 1, 0, 0, false), 1,
				    CLAT_STAT_CTX_HIT, 1);
	}
	check(!nfree(e, cand(e, &t, 0)) && !nfree(e, cand(e, &t, 1)),
	      "both of t's candidates are full");
	send_expect(e, "the VM's new flow gets a context: it takes an unanswered flow's slot",
		    build(&t, 1, 0, 0, false), 1, CLAT_STAT_CTX_EVICT, 1);
	got = where(e, &t);
	check(got >= 0 && pool_at(e, got)->packets[CLAT_DIR_OUT] == 1 && meta_tag(e, got) == tag_of(e, &t),
	      "t is LIVE in a candidate, counted, tagged");
	for (i = 0; i < 64; i++) {
		answered += (i & 1) && where(e, &f[i]) >= 0;
		unanswered += !(i & 1) && where(e, &f[i]) >= 0;
	}
	check(answered == 32 && unanswered == 31,
	      "every answered flow kept its slot (%u of 32), one unanswered lost it (%u of 32 left)",
	      answered, unanswered);
}

/* With the default age, a flow just seen keeps its slot: both full is FULL. */
static void no_evict_young(struct env *e)
{
	struct flow t = udp4(51000), f;
	uint32_t n = 0, p, i;

	for (p = 51000; cand(e, &t, 0) == cand(e, &t, 1); p++)
		t = udp4((uint16_t)p);
	for (i = 0; i < 64; i++) {
		f = sharing_proto(e, &t, IPPROTO_UDP, &n, false, false);
		send_expect(e, "a flow from the wire claims", build(&f, 0, 0, 0, false), 0,
			    CLAT_STAT_CTX_CLAIM, 1);
	}
	send_expect(e, "with the default age, fresh unanswered flows are not taken over",
		    build(&t, 1, 0, 0, false), 1, CLAT_STAT_CTX_FULL, 1);
	check(where(e, &t) < 0, "t got no context");
}

int main(void)
{
	struct env e;

	if (geteuid() != 0) {
		fprintf(stderr, "test_ctx_attack: must run as root\n");
		return 1;
	}
	if (env_open(&e, CAPACITY)) {
		printf("not ok 1 - set up guest tables and load clat\n");
		return 1;
	}
	blind_rst(&e);
	rst_to_syn(&e);
	long_ipv4(&e);
	env_close(&e);
	if (env_open(&e, 64)) {
		printf("not ok %d - set up a guest of capacity 64\n", ++tests_run);
		return 1;
	}
	no_evict_young(&e);
	env_close(&e);
	ctx_env_evict_age = 0;
	if (env_open(&e, 64)) {
		printf("not ok %d - set up a guest of capacity 64, evict age 0\n", ++tests_run);
		return 1;
	}
	flood(&e);
	env_close(&e);
	return tap_done();
}
