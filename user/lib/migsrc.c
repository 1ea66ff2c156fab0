// SPDX-License-Identifier: GPL-2.0
/* The source's phases of a migration: RUNNING -> PRE_COPY -> STOP_COPY,
 * then COMMIT on the channel and the release, or an abort.
 *
 * Each round writes contexts back to their GPAs in the source's guest RAM
 * (the guest reads them there) and streams the blocks it wrote.  The bytes
 * are read back from the source's guest RAM mapping rather than taken from
 * the pool: a block is contiguous there (one record per block, whatever
 * the context stride and the pool's bucket layout), and it is exactly
 * what QEMU would have carried had its dirty log seen the write.
 *
 * Interruption: the source only changes VCT state (ACTIVE <-> QUIESCED)
 * before the release, so a killed source stays serving or resumable
 * (migrate-out --abort); the destination discards a stream that ends
 * before COMMIT. */
#include "migsrc.h"
#include "shadow.h"
#include "vct.h"
#include "maps.h"
#include "writeback.h"

#include <endian.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

uint64_t mig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int src_open(struct mig_src *s, const char *pf, const char *pin_dir, uint32_t fn)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->ch.fd = -1;
	s->fn = fn;
	err = open_attached(pf, pin_dir, s->dir, sizeof(s->dir), &s->m);
	if (err)
		return err;
	s->maps_open = true;
	bpf_map_lookup_elem(s->m.guests, &fn, &s->gi);
	bpf_map_lookup_elem(s->m.vct, &fn, &s->vct);
	s->have_mac = fn_macs(&s->m, fn, &s->mac, 1) == 1;
	s->resumed = s->vct.state == CLAT_FN_QUIESCED;
	return 0;
}

/* A frame from the destination before COMMIT is a refusal (DONE with an
 * error) or garbage: either way the migration cannot go on. */
static int peer_check(struct mig_src *s)
{
	struct ds_done d;
	char msg[256] = "";
	uint16_t type;
	uint32_t len;
	int err;

	if (s->ch.fd < 0 || !devstate_pending(&s->ch))
		return 0;
	err = devstate_recv(&s->ch, &type, &len, msg, sizeof(msg));
	if (!err && type == DS_DONE && len == sizeof(d)) {
		memcpy(&d, s->ch.buf, sizeof(d));
		ds_done_le(&d);
		d.msg[DS_MSG_MAX - 1] = 0;
		pr_err("the destination refused the migration: %s", d.msg);
		return d.status > 0 && d.status < 4096 ? -d.status : -EPROTO;
	}
	if (err == -EPIPE || (!err && type == DS_ABORT))
		pr_err("the destination closed the channel before COMMIT");
	else
		pr_err("failed to read the channel: %s", *msg ? msg : strerror(-err ? -err : EPROTO));
	return -ECONNABORTED;
}

int mig_src_begin(struct mig_src *s, const char *pf, const char *pin_dir, uint32_t fn,
		  const char *chan)
{
	struct ds_hello h = {};
	int err = src_open(s, pf, pin_dir, fn);

	if (err)
		return err;
	if (!s->gi.bat_gpa)
		return -ENOENT; /* the caller says whether that is an error */
	if (!chan)
		return 0;
	s->sendbuf = malloc(DS_FRAME_MAX);
	if (!s->sendbuf)
		return -ENOMEM;
	err = devstate_connect(&s->ch, chan, 0);
	if (err)
		return err;
	h.fn = fn;
	h.generation = s->gi.generation;
	h.bat_gpa = s->gi.bat_gpa;
	h.mem_size = s->gi.mem_size;
	if (s->have_mac)
		memcpy(h.mac, s->mac.mac, 6);
	h.block_max = DS_BLOCK_MAX;
	ds_hello_le(&h);
	err = devstate_send(&s->ch, DS_HELLO, &h, sizeof(h));
	if (err)
		pr_err("failed to send HELLO on %s: %s", chan, strerror(-err));
	return err;
}

int mig_src_set_state(struct mig_src *s, uint32_t state)
{
	int err = vct_set_state(&s->m, s->fn, state);

	vct_get(&s->m, s->fn, &s->vct);
	return err;
}

/* Validating the tables costs O(contexts): done once, before the first
 * round, so that a stop-copy costs only its scan and its dirty blocks. */
static int writeback_open(struct mig_src *s)
{
	int err = s->wb_open ? 0 : shadow_writeback_open(&s->m, s->fn, &s->wb);

	s->wb_open = !err;
	return err;
}

/* BLOCKS frames for the blocks of l, each frame at most DS_FRAME_MAX. */
static int stream_blocks(struct mig_src *s, const struct gpa_list *l)
{
	struct ds_blocks bh = { .round = htole32(s->round) };
	size_t i = 0, off;
	uint32_t count;
	int err = 0;

	if (s->round > DS_MAX_ROUNDS)
		return -E2BIG;
	while (!err && i < l->n) {
		off = sizeof(bh);
		for (count = 0; i < l->n; i++, count++) {
			struct ds_block b = { .gpa = htole64(l->gpa[i]), .len = htole32(l->len[i]) };
			const void *src = gmem_ptr(&s->wb.g, l->gpa[i], l->len[i]);

			if (!src || l->len[i] > DS_BLOCK_MAX)
				return -EFAULT;
			if (off + sizeof(b) + l->len[i] > DS_FRAME_MAX)
				break;
			memcpy(s->sendbuf + off, &b, sizeof(b));
			memcpy(s->sendbuf + off + sizeof(b), src, l->len[i]);
			off += sizeof(b) + l->len[i];
		}
		bh.count = htole32(count);
		memcpy(s->sendbuf, &bh, sizeof(bh));
		err = devstate_send(&s->ch, DS_BLOCKS, s->sendbuf, (uint32_t)off);
		s->blocks_sent += count;
	}
	s->round++;
	if (err)
		pr_err("failed to stream round %u to the destination: %s", s->round - 1,
		       strerror(-err));
	return err;
}

static int copy_round(struct mig_src *s, enum sync_mode mode, struct mig_copy_stats *cs)
{
	bool stream = s->ch.fd >= 0;
	uint64_t sent = s->ch.sent_bytes;
	int err = peer_check(s);

	s->scratch.n = 0;
	if (!err)
		err = writeback_open(s);
	if (!err)
		err = shadow_writeback_round(&s->wb, mode, &cs->contexts, &cs->bytes,
					     &s->scratch);
	cs->blocks = s->scratch.n;
	if (!err && stream) {
		err = stream_blocks(s, &s->scratch);
		if (err && peer_check(s)) /* says why the destination hung up */
			err = -ECONNABORTED;
	}
	cs->sent_bytes = s->ch.sent_bytes - sent;
	return err;
}

int mig_src_round(struct mig_src *s, bool first, struct mig_copy_stats *cs)
{
	uint64_t t0 = mig_now_ns();
	int err;

	memset(cs, 0, sizeof(*cs));
	err = copy_round(s, first ? SYNC_ALL_CLEAR : SYNC_DIRTY, cs);
	cs->ns = mig_now_ns() - t0;
	return err;
}

int mig_src_stop(struct mig_src *s, struct mig_copy_stats *cs)
{
	uint64_t t0 = mig_now_ns();
	struct ds_stopped st = {};
	int err;

	memset(cs, 0, sizeof(*cs));
	/* Tables the guest changed during the pre-copy fail here, before the
	 * pause, with the fn still serving. */
	err = writeback_open(s);
	if (!err)
		err = shadow_writeback_check(&s->wb);
	if (!err)
		err = peer_check(s);
	if (!err)
		err = mig_src_set_state(s, CLAT_FN_QUIESCED);
	if (err)
		goto out;
	/* An XDP program runs for microseconds; 2 ms covers any frame that saw
	 * ACTIVE just before the flip. */
	usleep(2000);
	test_stall("stop_copy");
	/* A killed run may have lost dirty marks: then everything goes again. */
	err = copy_round(s, s->resumed ? SYNC_ALL_CLEAR : SYNC_DIRTY, cs);
	if (!err && s->ch.fd >= 0) {
		st.rounds = htole32(s->round);
		st.blocks = htole64(s->blocks_sent);
		err = devstate_send(&s->ch, DS_STOPPED, &st, sizeof(st));
		if (err)
			pr_err("failed to send STOPPED: %s", strerror(-err));
	}
	s->stopped = !err;
out:
	cs->ns = mig_now_ns() - t0;
	return err;
}

int mig_src_commit(struct mig_src *s, struct mig_result *r)
{
	uint64_t t0;
	char msg[256] = "";
	struct ds_done d;
	uint16_t type;
	uint32_t len;
	int err;

	memset(r, 0, sizeof(*r));
	if (s->ch.fd < 0)
		return 0; /* no channel: the blocks are in the source's guest RAM */
	if (!s->stopped)
		return -EINVAL;
	test_stall("pre_commit");
	t0 = mig_now_ns();
	err = devstate_send(&s->ch, DS_COMMIT, NULL, 0);
	if (err) {
		pr_err("failed to send COMMIT: %s", strerror(-err));
		return err;
	}
	err = devstate_recv(&s->ch, &type, &len, msg, sizeof(msg));
	r->wait_ns = mig_now_ns() - t0;
	if (err) {
		pr_err("failed to get the destination's DONE: %s",
		       *msg ? msg : err == -EPIPE ? "the channel closed" : strerror(-err));
		return err == -EPIPE ? -ECONNABORTED : err;
	}
	if (type != DS_DONE || len != sizeof(d)) {
		pr_err("failed to get the destination's DONE: got %s of %u bytes",
		       devstate_type_name(type), len);
		return -EPROTO;
	}
	memcpy(&d, s->ch.buf, sizeof(d));
	ds_done_le(&d);
	if (d.status < 0 || d.status >= 4096 || !memchr(d.msg, 0, sizeof(d.msg))) {
		pr_err("failed to get the destination's DONE: malformed (status %d)", d.status);
		return -EPROTO;
	}
	r->status = -d.status;
	memcpy(r->msg, d.msg, sizeof(r->msg));
	r->live_contexts = d.live_contexts;
	r->blocks = d.blocks;
	r->bytes = d.bytes;
	r->write_ns = d.write_ns;
	r->load_ns = d.load_ns;
	r->build_ns = d.build_ns;
	r->switch_ns = d.switch_ns;
	if (r->status) {
		pr_err("the destination failed to commit: %s", *d.msg ? d.msg : strerror(d.status));
		return r->status;
	}
	s->done = true;
	return 0;
}

int mig_src_release(struct mig_src *s)
{
	char name[32], path[PATH_MAX];
	int err = shadow_remove(&s->m, s->dir, s->fn);

	if (!err)
		err = fn_remove(&s->m, s->fn);
	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, s->vct.ifindex);
	if (!err && !pin_path(path, sizeof(path), s->dir, name))
		unlink(path); /* the representor gets no more frames to steer */
	s->released = !err;
	return err;
}

int mig_src_abort(struct mig_src *s)
{
	static const char why[] = "the source aborted the migration";
	uint32_t fn = s->fn;

	if (s->ch.fd >= 0 && !s->done)
		devstate_send(&s->ch, DS_ABORT, why, sizeof(why) - 1); /* the peer may be gone */
	devstate_close(&s->ch);
	if (!s->maps_open || s->released || bpf_map_lookup_elem(s->m.vct, &fn, &s->vct))
		return 0;
	return s->vct.state == CLAT_FN_QUIESCED ? mig_src_set_state(s, CLAT_FN_ACTIVE) : 0;
}

void mig_src_close(struct mig_src *s)
{
	if (s->wb_open)
		shadow_writeback_close(&s->wb);
	s->wb_open = false;
	devstate_close(&s->ch);
	gpa_list_free(&s->scratch);
	free(s->sendbuf);
	s->sendbuf = NULL;
	if (s->maps_open)
		maps_close(&s->m);
	s->maps_open = false;
}
