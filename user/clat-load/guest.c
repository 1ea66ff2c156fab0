// SPDX-License-Identifier: GPL-2.0
/* guest attach/sync/detach, ctx list and gc: the device side of the guest's
 * context tables. */
#include "cli.h"
#include "common.h"
#include "gchannel.h"
#include "ctxfmt.h"
#include "json.h"
#include "resync.h"
#include "shadow.h"
#include "guest.h"
#include "maps.h"
#include "writeback.h"

#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>

/* A TCG guest on shared cores answers in well under a second; allow for load. */
#define GUEST_CHANNEL_TIMEOUT_MS 10000
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Opens the PF's pinned state for a command that changes fn. */
static int open_fn(const struct invocation *inv, uint32_t *fn, char *dir, size_t len,
		   struct clat_maps *m)
{
	int err;

	*fn = opt_u32(inv, OPT_FN);
	err = open_attached(inv->arg[0], inv->opt[OPT_PIN_DIR], dir, len, m);
	return err;
}

static void print_attach_json(uint32_t fn, const char *path, uint64_t bat_gpa,
			      const struct gtables *t, uint64_t live, uint64_t dt)
{
	struct json j;
	uint32_t i;

	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_u64(&j, "fn", fn);
	json_str(&j, "mem", path);
	json_u64(&j, "bat_gpa", bat_gpa);
	json_u64(&j, "generation", t->hdr.generation);
	json_u64(&j, "live_contexts", live);
	json_u64(&j, "elapsed_ns", dt);
	json_arr_open(&j, "types");
	for (i = 0; i < t->ntypes; i++) {
		json_obj_open(&j, NULL);
		json_u64(&j, "type", t->types[i].index);
		json_str(&j, "name", t->types[i].e.name);
		json_u64(&j, "capacity", t->types[i].e.capacity);
		json_u64(&j, "blocks", t->types[i].nblocks);
		json_u64(&j, "pages", t->types[i].npages);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

/* Validates the tables in path (still the file id names) and installs the
 * shadow of fn. */
static int attach_tables(const struct clat_maps *m, const char *dir, uint32_t fn,
			 const char *path, const struct gmem_id *id, uint64_t bat_gpa,
			 unsigned int flags)
{
	uint64_t live, t0 = now_ns(CLOCK_MONOTONIC);
	struct gtables t;
	struct gmem g;
	char msg[512];
	int err;

	err = gmem_open_id(path, false, id, &g);
	if (err)
		return err;
	test_stall("guest_mapped"); /* tests shrink the file here */
	err = gtables_load(&g, bat_gpa, &t, msg, sizeof(msg));
	if (err) {
		pr_err("failed to attach guest tables of fn %u: %s%s", fn, msg,
		       gmem_shrunk(&g) ? " (guest memory shrank while being read)" : "");
		gmem_close(&g);
		return err;
	}
	err = shadow_install(m, dir, fn, path, &g, &t, &live);
	if (!err && gmem_shrunk(&g)) {
		/* Some of what was installed read as zeroes: all or nothing. */
		shadow_remove(m, dir, fn);
		pr_err("failed to attach guest tables of fn %u: guest memory %s shrank while being read",
		       fn, path);
		err = -EIO;
	}
	if (!err) {
		uint64_t dt = now_ns(CLOCK_MONOTONIC) - t0;

		if (flags & GUEST_F_JSON)
			print_attach_json(fn, path, bat_gpa, &t, live, dt);
		if (!(flags & GUEST_F_QUIET))
			pr_info("fn %u: guest tables at BAT 0x%llx attached, %u types, %llu live contexts (%.3f ms)",
				fn, (unsigned long long)bat_gpa, t.ntypes,
				(unsigned long long)live, dt / 1e6);
	}
	gtables_free(&t);
	gmem_close(&g);
	return err;
}

static bool same_file(const struct clat_guest_info *gi, const struct gmem_id *id)
{
	return gi->mem_dev == id->dev && gi->mem_ino == id->ino;
}

int guest_attach_fn(const char *pf, const char *pin_dir_opt, uint32_t fn, const char *mem,
		    uint64_t bat_gpa, unsigned int flags)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct clat_guest_info gi = {};
	struct clat_vct_entry v = {};
	struct gmem_id id;
	struct clat_maps m;
	uint32_t other;
	int err;

	err = open_attached(pf, pin_dir_opt, dir, sizeof(dir), &m);
	if (err)
		return err;
	/* Symlinks, FIFOs and devices are refused here, without blocking. */
	err = gmem_intake(mem, path, sizeof(path), &id);
	if (err)
		goto out;
	bpf_map_lookup_elem(m.vct, &fn, &v);
	if (v.state == CLAT_FN_FREE) {
		pr_err("failed to attach guest tables: fn %u is not in use on %s (add it with 'clat-load vf add')",
		       fn, pf);
		err = -ENODEV;
		goto out;
	}
	/* Two fns writing back into one file would overwrite each other's
	 * contexts, and one guest would see another's flows. */
	if (guest_mem_user(&m, fn, &id, &other)) {
		pr_err("failed to attach guest tables of fn %u: guest memory %s is already attached to fn %u",
		       fn, path, other);
		err = -EBUSY;
		goto out;
	}
	bpf_map_lookup_elem(m.guests, &fn, &gi);
	/* guests[fn] is written just before VCT[fn].bat_gpa turns tracking on;
	 * an attach killed in between is not attached, and is redone. */
	if (gi.bat_gpa && v.bat_gpa != gi.bat_gpa && gi.bat_gpa == bat_gpa &&
	    !strcmp(gi.mem_path, path) && same_file(&gi, &id))
		gi.bat_gpa = 0;
	if (gi.bat_gpa) {
		if (gi.bat_gpa == bat_gpa && !strcmp(gi.mem_path, path) && same_file(&gi, &id)) {
			if (!(flags & GUEST_F_QUIET))
				pr_info("fn %u already has these guest tables attached; nothing to do",
					fn);
			goto out;
		}
		pr_err("failed to attach guest tables: fn %u already has tables (%s, BAT 0x%llx%s); detach them first",
		       fn, gi.mem_path, (unsigned long long)gi.bat_gpa,
		       strcmp(gi.mem_path, path) || same_file(&gi, &id) ? "" : ", another file since");
		err = -EBUSY;
		goto out;
	}
	/* A killed attach or migration may have left device state behind:
	 * fn is not tracking, so it can go before anything is built. */
	if (!v.bat_gpa && shadow_leftovers(&m, fn))
		err = shadow_remove(&m, dir, fn);
	if (!err)
		err = attach_tables(&m, dir, fn, path, &id, bat_gpa, flags);
out:
	maps_close(&m);
	return err;
}

int cmd_guest_attach(const struct invocation *inv)
{
	uint32_t tmo = opt_u32_or(inv, OPT_CHANNEL_TIMEOUT, GUEST_CHANNEL_TIMEOUT_MS);
	uint64_t bat_gpa = opt_u64_or(inv, OPT_BAT_GPA, 0);
	uint32_t fn = opt_u32(inv, OPT_FN);
	int err = 0;

	if (has_opt(inv, OPT_BAT_GPA) == has_opt(inv, OPT_CHANNEL)) {
		pr_err("guest attach: exactly one of --bat-gpa and --channel is required");
		err = -EUSAGE;
	}
	if (!err && has_opt(inv, OPT_CHANNEL) && strncmp(inv->opt[OPT_CHANNEL], "unix:", 5)) {
		pr_err("invalid --channel '%s': expected unix:PATH", inv->opt[OPT_CHANNEL]);
		err = -EUSAGE;
	}
	if (!err && has_opt(inv, OPT_CHANNEL_TIMEOUT) && !has_opt(inv, OPT_CHANNEL)) {
		pr_err("guest attach: --channel-timeout needs --channel");
		err = -EUSAGE;
	}
	if (err)
		return err;
	/* The guest says where its BAT is; attach validates it like any other. */
	if (has_opt(inv, OPT_CHANNEL)) {
		err = guest_channel_query(inv->opt[OPT_CHANNEL], &bat_gpa, (int)tmo);
		if (err)
			return err;
	}
	return guest_attach_fn(inv->arg[0], inv->opt[OPT_PIN_DIR], fn, inv->opt[OPT_MEM], bat_gpa,
			       has_opt(inv, OPT_JSON) ? GUEST_F_JSON : 0);
}

static void print_sync(unsigned int flags, uint32_t fn, uint64_t written, uint64_t bytes,
		       const char *verb)
{
	if (flags & GUEST_F_JSON) {
		struct json j;

		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_u64(&j, "fn", fn);
		json_u64(&j, "contexts", written);
		json_u64(&j, "bytes", bytes);
		json_obj_close(&j);
		json_end(&j);
	}
	if (!(flags & GUEST_F_QUIET))
		pr_info("fn %u: %s %llu contexts (%llu bytes) to guest memory", fn, verb,
			(unsigned long long)written, (unsigned long long)bytes);
}

static unsigned int json_flag(const struct invocation *inv)
{
	return has_opt(inv, OPT_JSON) ? GUEST_F_JSON : 0;
}

int cmd_guest_sync(const struct invocation *inv)
{
	char dir[PATH_MAX];
	uint64_t written, bytes;
	struct clat_maps m;
	uint32_t fn;
	int err;

	err = open_fn(inv, &fn, dir, sizeof(dir), &m);
	if (err)
		return err;
	err = shadow_sync(&m, fn, SYNC_ALL, &written, &bytes, NULL);
	if (!err)
		print_sync(json_flag(inv), fn, written, bytes, "synced");
	maps_close(&m);
	return err;
}

static void print_resync(bool as_json, uint32_t fn, const struct resync_report *r)
{
	struct json j;

	if (!as_json) {
		if (r->gen_from == r->gen_to)
			printf("fn %u: guest tables unchanged (generation %u)\n", fn, r->gen_to);
		else
			printf("fn %u: generation %u -> %u: %u types grown, %u added, %u segments "
			       "added, %u folded; read %" PRIu64 " CLAT entries and %" PRIu64 " contexts, "
			       "%" PRIu64 " new pages, %" PRIu64 " new blocks\n", fn, r->gen_from,
			       r->gen_to, r->types_grown, r->types_added, r->segments_added,
			       r->segments_folded,
			       r->entries_read, r->contexts_read, r->pages_new, r->blocks_new);
		return;
	}
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_u64(&j, "fn", fn);
	json_u64(&j, "generation_from", r->gen_from);
	json_u64(&j, "generation", r->gen_to);
	json_bool(&j, "changed", r->gen_from != r->gen_to);
	json_u64(&j, "types_grown", r->types_grown);
	json_u64(&j, "types_added", r->types_added);
	json_u64(&j, "segments_added", r->segments_added);
	json_u64(&j, "segments_folded", r->segments_folded);
	json_u64(&j, "entries_read", r->entries_read);
	json_u64(&j, "contexts_read", r->contexts_read);
	json_u64(&j, "pages_new", r->pages_new);
	json_u64(&j, "blocks_new", r->blocks_new);
	json_u64(&j, "live_contexts_new", r->live);
	json_obj_close(&j);
	json_end(&j);
}

int cmd_guest_resync(const struct invocation *inv)
{
	struct resync_report r;
	char dir[PATH_MAX];
	struct clat_maps m;
	uint32_t fn;
	int err;

	err = open_fn(inv, &fn, dir, sizeof(dir), &m);
	if (err)
		return err;
	err = guest_resync(&m, dir, fn, &r);
	if (!err)
		print_resync(has_opt(inv, OPT_JSON), fn, &r);
	maps_close(&m);
	return err;
}

int guest_detach_fn(const char *pf, const char *pin_dir_opt, uint32_t fn, unsigned int flags)
{
	struct clat_guest_info gi = {};
	struct clat_vct_entry v = {};
	char dir[PATH_MAX];
	uint64_t written, bytes;
	struct clat_maps m;
	bool forced = false;
	int err;

	err = open_attached(pf, pin_dir_opt, dir, sizeof(dir), &m);
	if (err)
		return err;
	bpf_map_lookup_elem(m.guests, &fn, &gi);
	if (!gi.bat_gpa) {
		/* An attach killed before it published leaves STAGED extents. */
		pool_reclaim(&m);
		if (!(flags & GUEST_F_QUIET))
			pr_info("fn %u has no guest tables attached; nothing to do", fn);
		goto out;
	}
	/* Contexts go back to the guest first; nothing is freed if that fails.
	 * With tracking already off (a detach killed after it turned it off,
	 * or an attach killed before it turned it on), guest memory holds
	 * every context and the device's copy may be half gone: just finish. */
	bpf_map_lookup_elem(m.vct, &fn, &v);
	written = bytes = 0;
	err = v.bat_gpa != gi.bat_gpa || (flags & GUEST_F_NO_WRITEBACK)
		      ? 0
		      : shadow_sync(&m, fn, SYNC_ALL, &written, &bytes, NULL);
	/* Forced: the fn goes to another owner, and the old owner's broken or
	 * replaced tables must not keep the new owner's flows. */
	if (err && (flags & GUEST_F_FORCE)) {
		pr_err("warning: fn %u: contexts were NOT written back to guest memory %s (%s); "
		       "dropping its shadow anyway (--force)", fn, gi.mem_path, strerror(-err));
		err = 0;
		written = bytes = 0;
		forced = true;
	}
	if (!err)
		err = shadow_remove(&m, dir, fn);
	if (!err && (flags & GUEST_F_NO_WRITEBACK))
		print_sync(flags | GUEST_F_QUIET, fn, 0, 0, "");
	if (!err && (flags & GUEST_F_NO_WRITEBACK) && !(flags & GUEST_F_QUIET))
		pr_info("fn %u: detached without writing back: its guest's RAM has left this host",
			fn);
	else if (!err)
		print_sync(flags, fn, written, bytes,
			   forced ? "detached (forced), writing back" : "detached after writing back");
	else
		pr_err("failed to detach guest tables of fn %u: %s%s", fn, strerror(-err),
		       flags & GUEST_F_FORCE ? "" : " (--force drops them without writing back)");
out:
	maps_close(&m);
	return err;
}

int cmd_guest_detach(const struct invocation *inv)
{
	uint32_t fn = opt_u32(inv, OPT_FN);

	return guest_detach_fn(inv->arg[0], inv->opt[OPT_PIN_DIR], fn,
			       json_flag(inv) | (has_opt(inv, OPT_FORCE) ? GUEST_F_FORCE : 0));
}

int cmd_ctx_list(const struct invocation *inv)
{
	bool as_json = has_opt(inv, OPT_JSON);
	char dir[PATH_MAX];
	struct shadow_view v;
	struct clat_maps m;
	struct json j;
	uint32_t fn, t, k, i;
	int err;

	err = open_fn(inv, &fn, dir, sizeof(dir), &m);
	if (err)
		return err;
	if (as_json) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "pf", inv->arg[0]);
		json_u64(&j, "fn", fn);
		json_arr_open(&j, "contexts");
	}
	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		if (shadow_view_open(&m, fn, t, &v))
			continue;
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
			for (i = 0; (v.live & (1U << k)) && i < v.seg[k].n; i++) {
				const struct clat_ctx *c = &v.seg[k].ctx[i];

				if ((c->state_word & CLAT_SLOT_STATE_MASK) != CLAT_SLOT_LIVE)
					continue;
				if (as_json)
					ctx_json(&j, c, shadow_seg_svc(&v, k, i));
				else
					ctx_print(stdout, c, shadow_seg_svc(&v, k, i));
			}
		}
		shadow_view_close(&v);
	}
	if (as_json) {
		json_arr_close(&j);
		json_obj_close(&j);
		json_end(&j);
	}
	maps_close(&m);
	return 0;
}

/* Idle timeouts by state, like conntrack's; --timeout overrides them all. */
static uint64_t idle_limit_ns(const struct clat_ctx *c, int64_t override_s)
{
	if (override_s >= 0)
		return (uint64_t)override_s * 1000000000ULL;
	if (c->key.proto == 17 /* UDP */)
		return 120ULL * 1000000000ULL;
	if (c->tcp_state == CLAT_TCP_ESTABLISHED)
		return 7200ULL * 1000000000ULL;
	return 120ULL * 1000000000ULL;
}

/* Releases one segment's idle contexts (the datapath's release, done by
 * the host: it loses cleanly to a frame that closes or touches it). */
static uint64_t gc_segment(struct shadow_view *v, uint32_t k, int64_t timeout_s, uint64_t now)
{
	struct shadow_seg_view *sv = &v->seg[k];
	uint64_t swept = 0;
	uint32_t i;

	for (i = 0; i < sv->n; i++) {
		struct clat_ctx *c = &sv->ctx[i];
		uint64_t sw = __atomic_load_n(&c->state_word, __ATOMIC_ACQUIRE);
		uint64_t last = __atomic_load_n(&c->last_seen_ns, __ATOMIC_RELAXED);

		if ((sw & CLAT_SLOT_STATE_MASK) != CLAT_SLOT_LIVE || now < last ||
		    now - last < idle_limit_ns(c, timeout_s))
			continue;
		swept += shadow_view_release(v, k, i);
	}
	return swept;
}

static uint64_t gc_fn(const struct clat_maps *m, uint32_t fn, int64_t timeout_s, uint64_t now,
		      uint32_t *folded)
{
	struct shadow_view v;
	uint64_t swept = 0;
	uint32_t t, k;

	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		if (shadow_view_open(m, fn, t, &v))
			continue;
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++)
			if (v.live & (1U << k))
				swept += gc_segment(&v, k, timeout_s, now);
		shadow_view_close(&v);
	}
	/* A guest that grew stops paying for an older segment once it drains. */
	if (shadow_fold(m, fn, folded))
		*folded = 0;
	return swept;
}

int cmd_gc(const struct invocation *inv)
{
	uint64_t now = now_ns(CLOCK_TAI), swept, total = 0;
	uint32_t folded, folded_total = 0;
	int64_t timeout_s = -1;
	char dir[PATH_MAX];
	struct clat_maps m;
	uint32_t fn, first = opt_u32_or(inv, OPT_FN, 0);
	uint32_t last = has_opt(inv, OPT_FN) ? first : CLAT_MAX_FN - 1;
	struct json j;
	int err;

	if (has_opt(inv, OPT_TIMEOUT))
		timeout_s = opt_u32(inv, OPT_TIMEOUT);
	err = open_attached(inv->arg[0], inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	if (has_opt(inv, OPT_JSON)) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_arr_open(&j, "fns");
	}
	for (fn = first; fn <= last; fn++) {
		struct clat_guest_info gi = {};

		if (bpf_map_lookup_elem(m.guests, &fn, &gi) || !gi.bat_gpa)
			continue;
		swept = gc_fn(&m, fn, timeout_s, now, &folded);
		total += swept;
		folded_total += folded;
		if (has_opt(inv, OPT_JSON)) {
			json_obj_open(&j, NULL);
			json_u64(&j, "fn", fn);
			json_u64(&j, "swept", swept);
			json_u64(&j, "segments_folded", folded);
			json_obj_close(&j);
		}
	}
	if (has_opt(inv, OPT_JSON)) {
		json_arr_close(&j);
		json_u64(&j, "swept", total);
		json_u64(&j, "segments_folded", folded_total);
		json_obj_close(&j);
		json_end(&j);
	}
	clock_refresh(&m);
	pr_info("gc: %llu idle contexts released, %u drained segments folded on %s",
		(unsigned long long)total, folded_total, inv->arg[0]);
	maps_close(&m);
	return 0;
}
