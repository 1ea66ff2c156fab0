// SPDX-License-Identifier: GPL-2.0
/* The destination's phases of a migration: RESUMING.  Everything is built
 * before the switch, so a killed or refused migrate-in leaves nothing
 * visible to the datapath.
 *
 * With a channel (mig_dst_serve), the source's blocks are held in memory,
 * latest per GPA, until COMMIT says guest RAM has arrived: then they are
 * checked against the guest's tables (each must be one of its context
 * blocks, whole), written into guest RAM, and the shadow is built from
 * that RAM and switched in.  A stream that ends any other way is
 * discarded. */
#include "migdst.h"
#include "json.h"
#include "maps.h"
#include "writeback.h"

#include <endian.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <bpf/bpf.h>

int mig_dst_open(struct mig_dst *d, const char *pf, const char *pin_dir, uint32_t fn,
		 const char *mem)
{
	struct clat_guest_info gi = {};
	uint32_t other;
	int err;

	memset(d, 0, sizeof(*d));
	d->g.fd = -1;
	d->fn = fn;
	err = open_attached(pf, pin_dir, d->dir, sizeof(d->dir), &d->m);
	if (err)
		return err;
	d->maps_open = true;
	bpf_map_lookup_elem(d->m.vct, &fn, &d->vct);
	bpf_map_lookup_elem(d->m.guests, &fn, &gi);
	if (d->vct.state == CLAT_FN_FREE || !d->vct.ifindex) {
		pr_err("failed to migrate in: fn %u has no port on %s", fn, pf);
		return -ENODEV;
	}
	err = gmem_intake(mem, d->mem, sizeof(d->mem), &d->id);
	if (err)
		return err;
	if (guest_mem_user(&d->m, fn, &d->id, &other)) {
		pr_err("failed to migrate in fn %u: guest memory %s is already attached to fn %u",
		       fn, d->mem, other);
		return -EBUSY;
	}
	if (gi.bat_gpa || d->vct.bat_gpa) {
		/* Re-plugging under live traffic would roll contexts back to the file. */
		pr_err("failed to migrate in: fn %u already serves guest tables (%s); detach them first",
		       fn, gi.mem_path);
		return -EBUSY;
	}
	if (shadow_leftovers(&d->m, fn)) /* a killed attach or migrate-in */
		err = shadow_remove(&d->m, d->dir, fn);
	d->opened = !err;
	return err;
}

static int dst_load(struct mig_dst *d, uint64_t bat_gpa, bool writable, char *msg, size_t len)
{
	int err = gmem_open_id(d->mem, writable, &d->id, &d->g);

	if (err) {
		snprintf(msg, len, "failed to open guest memory %s: %s", d->mem, strerror(-err));
		return err;
	}
	err = gtables_load(&d->g, bat_gpa, &d->t, msg, len);
	if (err) {
		gmem_close(&d->g);
		return err;
	}
	d->loaded = true;
	return 0;
}

/* Straight into pool extents: no map to create, no RCU wait. */
static int dst_build(struct mig_dst *d)
{
	int err = shadow_stage_build(&d->st, &d->m, d->fn, d->mem, &d->g, &d->t);

	d->built = !err;
	return err;
}

int mig_dst_prepare(struct mig_dst *d, uint64_t bat_gpa)
{
	char msg[512];
	int err = dst_load(d, bat_gpa, false, msg, sizeof(msg));

	if (err) {
		pr_err("failed to migrate in fn %u: incoming guest tables refused: %s", d->fn, msg);
		return err;
	}
	return dst_build(d);
}

int mig_dst_commit(struct mig_dst *d, const uint8_t mac[6], const struct gpa_list *delta,
		   uint64_t *reloaded)
{
	int err = 0;

	*reloaded = 0;
	if (delta && delta->n)
		err = shadow_stage_reload(&d->st, &d->g, &d->t, delta->gpa, delta->n, reloaded);
	test_stall("commit");
	if (!err)
		err = shadow_stage_commit(&d->st, d->dir);
	if (!err) {
		err = fn_install(&d->m, d->fn, mac, 0, d->vct.ifindex);
		if (err) /* all or nothing: take the tables back off */
			shadow_remove(&d->m, d->dir, d->fn);
	}
	return err;
}

void mig_dst_close(struct mig_dst *d)
{
	if (d->built)
		shadow_stage_free(&d->st);
	if (d->loaded) {
		gtables_free(&d->t);
		gmem_close(&d->g);
	}
	d->built = d->loaded = false;
	if (d->maps_open)
		maps_close(&d->m);
	d->maps_open = false;
}

/* ---- blocks held until COMMIT ------------------------------------------------ */

struct held {
	uint64_t gpa;     /* 0: free slot (GPA 0 is never a context block) */
	uint32_t len;
	uint8_t *data;
};

/* Bounded by guest RAM: at most one block per page, at most RAM's size in
 * bytes, and per round at most twice RAM (a round writes a block once; a
 * block at a segment boundary may come twice).  More is a flood. */
struct store {
	struct held *slot;
	size_t mask, n;
	uint64_t bytes, max_bytes, max_n;
	uint32_t round;
	uint64_t round_bytes, round_n, received;
};

static size_t slot_of(uint64_t gpa, size_t mask)
{
	return (size_t)(((gpa / CLAT_PAGE_SIZE) * 0x9e3779b97f4a7c15ULL) >> 20) & mask;
}

static void store_free(struct store *s)
{
	for (size_t i = 0; s->slot && i <= s->mask; i++)
		free(s->slot[i].data);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

static int store_grow(struct store *s)
{
	size_t size = s->slot ? (s->mask + 1) * 2 : 1024, i, j;
	struct held *old = s->slot, *nw = calloc(size, sizeof(*nw));

	if (!nw)
		return -ENOMEM;
	for (i = 0; old && i <= s->mask; i++) {
		if (!old[i].gpa)
			continue;
		for (j = slot_of(old[i].gpa, size - 1); nw[j].gpa; j = (j + 1) & (size - 1))
			;
		nw[j] = old[i];
	}
	free(old);
	s->slot = nw;
	s->mask = size - 1;
	return 0;
}

/* Keeps the latest bytes of block gpa. */
static int store_put(struct store *s, uint64_t gpa, uint32_t len, const uint8_t *data)
{
	struct held *h;
	size_t j;
	uint8_t *p;

	if ((!s->slot || 2 * (s->n + 1) > s->mask + 1) && store_grow(s))
		return -ENOMEM;
	for (j = slot_of(gpa, s->mask); s->slot[j].gpa && s->slot[j].gpa != gpa; j = (j + 1) & s->mask)
		;
	h = &s->slot[j];
	if (h->gpa && h->len == len) {
		memcpy(h->data, data, len);
		return 0;
	}
	if (s->bytes - (h->gpa ? h->len : 0) + len > s->max_bytes || (!h->gpa && s->n >= s->max_n))
		return -E2BIG;
	p = malloc(len); /* len was checked against DS_BLOCK_MAX and guest RAM */
	if (!p)
		return -ENOMEM;
	memcpy(p, data, len);
	if (h->gpa) {
		s->bytes -= h->len;
		free(h->data);
	} else {
		s->n++;
	}
	*h = (struct held){ gpa, len, p };
	s->bytes += len;
	return 0;
}

/* ---- the stream ------------------------------------------------------------ */

struct serve {
	struct mig_dst *d;
	struct devstate ch;
	struct ds_hello hello;
	uint64_t mem_size;
	struct store st;
	bool stopped;
	uint32_t rounds_seen;
	char msg[DS_MSG_MAX];
};

#define REFUSE(sv, ...) (snprintf((sv)->msg, sizeof((sv)->msg), __VA_ARGS__), -EPROTO)

static int on_hello(struct serve *sv, uint32_t len, const uint8_t mac[6])
{
	struct ds_hello *h = &sv->hello;
	static const uint8_t zero[6];

	if (len != sizeof(*h))
		return REFUSE(sv, "HELLO of %u bytes (want %zu)", len, sizeof(*h));
	memcpy(h, sv->ch.buf, sizeof(*h));
	ds_hello_le(h);
	if (h->reserved || h->pad[0] || h->pad[1])
		return REFUSE(sv, "HELLO with nonzero reserved bytes");
	if (h->mem_size != sv->mem_size)
		return REFUSE(sv, "guest RAM sizes differ: source %llu bytes, destination %s %llu",
			      (unsigned long long)h->mem_size, sv->d->mem,
			      (unsigned long long)sv->mem_size);
	if (!h->bat_gpa || h->bat_gpa % CLAT_PAGE_SIZE || h->bat_gpa >= sv->mem_size)
		return REFUSE(sv, "BAT GPA 0x%llx is not a page inside guest RAM",
			      (unsigned long long)h->bat_gpa);
	if (h->block_max < CLAT_PAGE_SIZE || h->block_max > DS_BLOCK_MAX ||
	    h->block_max % CLAT_PAGE_SIZE)
		return REFUSE(sv, "block size limit %u out of range", h->block_max);
	if (memcmp(h->mac, zero, 6) && memcmp(h->mac, mac, 6)) {
		char a[18], b[18];

		format_mac(h->mac, a);
		format_mac(mac, b);
		return REFUSE(sv, "the source serves MAC %s, not --mac %s", a, b);
	}
	sv->st.max_bytes = sv->mem_size;
	sv->st.max_n = sv->mem_size / CLAT_PAGE_SIZE;
	return 0;
}

static int on_blocks(struct serve *sv, uint32_t len)
{
	const uint8_t *p = sv->ch.buf, *end = p + len;
	struct ds_blocks bh;
	uint32_t i;
	int err;

	if (sv->stopped)
		return REFUSE(sv, "BLOCKS after STOPPED");
	if (len < sizeof(bh))
		return REFUSE(sv, "BLOCKS frame of %u bytes: shorter than its header", len);
	memcpy(&bh, p, sizeof(bh));
	p += sizeof(bh);
	bh.round = le32toh(bh.round);
	bh.count = le32toh(bh.count);
	if (bh.round > DS_MAX_ROUNDS || bh.round < sv->st.round)
		return REFUSE(sv, "BLOCKS round %u after round %u (rounds run 0..%u, in order)",
			      bh.round, sv->st.round, DS_MAX_ROUNDS);
	if (bh.round != sv->st.round || !sv->rounds_seen) {
		sv->st.round_bytes = sv->st.round_n = 0;
		sv->rounds_seen++;
	}
	sv->st.round = bh.round;
	for (i = 0; i < bh.count; i++) {
		struct ds_block b;

		if ((size_t)(end - p) < sizeof(b))
			return REFUSE(sv, "BLOCKS frame holds %u of its %u blocks", i, bh.count);
		memcpy(&b, p, sizeof(b));
		p += sizeof(b);
		b.gpa = le64toh(b.gpa);
		b.len = le32toh(b.len);
		if (b.reserved)
			return REFUSE(sv, "block %u of round %u: nonzero reserved field", i, bh.round);
		if (!b.len || b.len % CLAT_PAGE_SIZE || b.len > sv->hello.block_max)
			return REFUSE(sv, "block at GPA 0x%llx: length %u is not a multiple of 4 KiB up to %u",
				      (unsigned long long)b.gpa, b.len, sv->hello.block_max);
		if (!b.gpa || b.gpa % CLAT_PAGE_SIZE || b.gpa > sv->mem_size ||
		    b.len > sv->mem_size - b.gpa)
			return REFUSE(sv, "block at GPA 0x%llx (+%u) is outside guest RAM (size 0x%llx)",
				      (unsigned long long)b.gpa, b.len,
				      (unsigned long long)sv->mem_size);
		if ((size_t)(end - p) < b.len)
			return REFUSE(sv, "block at GPA 0x%llx: %u bytes overrun its frame",
				      (unsigned long long)b.gpa, b.len);
		sv->st.round_bytes += b.len;
		if (++sv->st.round_n > 2 * sv->st.max_n || sv->st.round_bytes > 2 * sv->mem_size)
			return REFUSE(sv, "flood: round %u sent more than twice guest RAM in blocks",
				      bh.round);
		err = store_put(&sv->st, b.gpa, b.len, p);
		if (err == -E2BIG)
			return REFUSE(sv, "flood: blocks held would exceed guest RAM (%llu bytes)",
				      (unsigned long long)sv->mem_size);
		if (err)
			return err;
		sv->st.received++;
		p += b.len;
	}
	if (p != end)
		return REFUSE(sv, "BLOCKS frame: %zu bytes after its %u blocks", (size_t)(end - p),
			      bh.count);
	return 0;
}

static int on_stopped(struct serve *sv, uint32_t len)
{
	struct ds_stopped s;

	if (sv->stopped || len != sizeof(s))
		return REFUSE(sv, "unexpected STOPPED (%u bytes)", len);
	memcpy(&s, sv->ch.buf, sizeof(s));
	if (le64toh(s.blocks) != sv->st.received || s.reserved)
		return REFUSE(sv, "STOPPED says %llu blocks were sent, %llu arrived",
			      (unsigned long long)le64toh(s.blocks),
			      (unsigned long long)sv->st.received);
	sv->stopped = true;
	return 0;
}

static int cmp_block(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Every held block must be one whole context block of the tables: the
 * stream may write contexts, never the guest's tables or other memory. */
static int check_held(struct serve *sv)
{
	const struct gtables *t = &sv->d->t;
	uint64_t (*blk)[2], n = 0, i;
	uint32_t ty, b;
	int err = 0;

	for (ty = 0; ty < t->ntypes; ty++)
		n += t->types[ty].nblocks;
	blk = calloc(n ? n : 1, sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	for (n = 0, ty = 0; ty < t->ntypes; ty++)
		for (b = 0; b < t->types[ty].nblocks; b++)
			if (t->types[ty].block_gpa[b] != CLAT_GPA_NONE) {
				blk[n][0] = t->types[ty].block_gpa[b];
				blk[n++][1] = t->types[ty].e.block_size;
			}
	qsort(blk, n, sizeof(*blk), cmp_block);
	for (i = 0; !err && i <= sv->st.mask; i++) {
		const struct held *h = &sv->st.slot[i];
		uint64_t key[2] = { h->gpa, 0 }, *hit;

		if (!h->gpa)
			continue;
		hit = bsearch(key, blk, n, sizeof(*blk), cmp_block);
		if (!hit || hit[1] != h->len)
			err = REFUSE(sv, "block at GPA 0x%llx (+%u) is no context block of the guest's tables",
				     (unsigned long long)h->gpa, h->len);
	}
	free(blk);
	return err;
}

/* COMMIT: guest RAM has arrived.  Load the tables, write the blocks, build,
 * switch.  Before the switch nothing is visible; a failure frees the stage. */
static int on_commit(struct serve *sv, const uint8_t mac[6], struct mig_result *r)
{
	struct mig_dst *d = sv->d;
	uint64_t t = mig_now_ns(), reloaded;
	char msg[512];
	size_t i;
	int err;

	if (!sv->stopped)
		return REFUSE(sv, "COMMIT before STOPPED");
	err = dst_load(d, sv->hello.bat_gpa, true, msg, sizeof(msg));
	if (err)
		return REFUSE(sv, "incoming guest tables refused: %.150s", msg);
	if (d->t.hdr.generation != sv->hello.generation)
		return REFUSE(sv, "guest tables are at generation %u, the source served %u",
			      d->t.hdr.generation, sv->hello.generation);
	err = sv->st.slot ? check_held(sv) : 0;
	r->load_ns = mig_now_ns() - t;
	if (err)
		return err;
	t = mig_now_ns();
	for (i = 0; sv->st.slot && i <= sv->st.mask; i++) {
		const struct held *h = &sv->st.slot[i];
		uint8_t *dst = h->gpa ? gmem_ptr(&d->g, h->gpa, h->len) : NULL;

		if (!h->gpa)
			continue;
		if (!dst)
			return REFUSE(sv, "guest RAM %s shrank under the migration", d->mem);
		memcpy(dst, h->data, h->len);
		r->blocks++;
		r->bytes += h->len;
	}
	r->write_ns = mig_now_ns() - t;
	t = mig_now_ns();
	err = dst_build(d);
	r->build_ns = mig_now_ns() - t;
	if (err)
		return REFUSE(sv, "failed to build the shadow: %s", strerror(-err));
	t = mig_now_ns();
	err = mig_dst_commit(d, mac, NULL, &reloaded);
	r->switch_ns = mig_now_ns() - t;
	if (err)
		return REFUSE(sv, "failed to switch: %s", strerror(-err));
	r->live_contexts = d->st.live;
	return 0;
}

static int send_done(struct serve *sv, int err, const struct mig_result *r)
{
	struct ds_done done = {
		.status = -err, .live_contexts = r->live_contexts, .blocks = r->blocks,
		.bytes = r->bytes, .write_ns = r->write_ns, .load_ns = r->load_ns,
		.build_ns = r->build_ns, .switch_ns = r->switch_ns,
	};

	if (err && !*sv->msg)
		snprintf(sv->msg, sizeof(sv->msg), "%s", strerror(-err));
	snprintf(done.msg, sizeof(done.msg), "%s", err ? sv->msg : "");
	ds_done_le(&done);
	return devstate_send(&sv->ch, DS_DONE, &done, sizeof(done));
}

/* The ABORT text goes into our log: printable ASCII only. */
static void abort_text(struct serve *sv, uint32_t len)
{
	uint32_t i, n = len < 120 ? len : 120;
	char why[121];

	for (i = 0; i < n; i++)
		why[i] = sv->ch.buf[i] >= 0x20 && sv->ch.buf[i] < 0x7f ? (char)sv->ch.buf[i] : '?';
	why[n] = 0;
	snprintf(sv->msg, sizeof(sv->msg), "the source sent ABORT (%s)", n ? why : "no reason");
}

static int serve_loop(struct serve *sv, const uint8_t mac[6], struct mig_result *r)
{
	bool hello = false;
	uint16_t type;
	uint32_t len;
	int err;

	for (;;) {
		err = devstate_recv(&sv->ch, &type, &len, sv->msg, sizeof(sv->msg));
		if (err == -EPIPE)
			return REFUSE(sv, "the source closed the channel before COMMIT");
		if (err)
			return err;
		if (!hello && type != DS_HELLO)
			return REFUSE(sv, "%s before HELLO", devstate_type_name(type));
		switch (type) {
		case DS_HELLO:
			err = hello ? REFUSE(sv, "a second HELLO") : on_hello(sv, len, mac);
			hello = true;
			break;
		case DS_BLOCKS:
			err = on_blocks(sv, len);
			break;
		case DS_STOPPED:
			err = on_stopped(sv, len);
			break;
		case DS_COMMIT:
			return len ? REFUSE(sv, "COMMIT with a payload") : on_commit(sv, mac, r);
		case DS_ABORT:
			abort_text(sv, len);
			return -ECANCELED;
		default:
			return REFUSE(sv, "unexpected %s from the source", devstate_type_name(type));
		}
		if (err)
			return err;
	}
}

int mig_dst_serve(struct mig_dst *d, const char *chan, int wait_ms, const uint8_t mac[6],
		  struct mig_result *r, struct json *j)
{
	struct serve sv = { .d = d };
	struct stat st;
	int lfd, err;

	memset(r, 0, sizeof(*r));
	sv.ch.fd = -1;
	if (stat(d->mem, &st) < 0)
		return -errno;
	sv.mem_size = (uint64_t)st.st_size;
	err = devstate_listen(chan, &lfd);
	if (err)
		return err;
	pr_info("fn %u: waiting for the source on %s", d->fn, chan);
	err = devstate_accept(&sv.ch, lfd, chan, wait_ms);
	if (err)
		return err;
	err = serve_loop(&sv, mac, r);
	if (err != -ECANCELED) /* the source is gone after an ABORT */
		send_done(&sv, err, r); /* best effort: a source that died reads nothing */
	if (j) {
		json_u64(j, "rounds", sv.rounds_seen);
		json_u64(j, "blocks_received", sv.st.received);
		json_u64(j, "blocks_held", sv.st.n);
		json_u64(j, "bytes_received", sv.ch.recv_bytes);
		json_u64(j, "blocks_written", r->blocks);
		json_u64(j, "live_contexts", r->live_contexts);
		mig_json_steps(j, "ns", r);
	}
	if (err) {
		r->status = err;
		snprintf(r->msg, sizeof(r->msg), "%s", *sv.msg ? sv.msg : strerror(-err));
	}
	store_free(&sv.st);
	devstate_close(&sv.ch);
	return err;
}

void mig_json_steps(struct json *j, const char *key, const struct mig_result *r)
{
	json_obj_open(j, key);
	json_u64(j, "load", r->load_ns);
	json_u64(j, "write", r->write_ns);
	json_u64(j, "build", r->build_ns);
	json_u64(j, "switch", r->switch_ns);
	json_obj_close(j);
}
