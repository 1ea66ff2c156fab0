// SPDX-License-Identifier: GPL-2.0
/* `clat-load migrate`: a whole live migration between two emulated hosts
 * in one process, the VMM's part (the VM's move, its RAM copy and its
 * announcement) played by vf-emu's vmm.h; the rest is clat-load's own
 * migration code, as a real host runs it.
 *
 * It drives the same source and destination phases as migrate-out and
 * migrate-in, but not over the device-state channel: playing the VMM, it
 * knows the exact delta of blocks the stop-copy wrote and copies them
 * into the destination's RAM file, so nothing is lost, and the
 * destination can stage its shadow before the pause (migrate-in --listen
 * cannot: guest RAM may not have arrived before COMMIT).
 *
 * The report lists every phase; downtime_ns is exactly the sum of the
 * phases from the pause to the announcement (stop_copy, delta_copy,
 * vm_move, switch, announce), and names what it excludes. */
#include "cli.h"
#include "json.h"
#include "migrate.h"

#include <stdlib.h>
#include <string.h>

#include "netns.h"
#include "vmm.h"

/* ---- the VMM's part, played by vf-emu's vmm.h ------------------------------- */

struct move {
	struct vmm_vm vm;
	struct vmm_port src, dst;
};

/* The VMM's part: the VM leaves its VF on host A and lands on a VF of host B
 * with the same MAC and addresses.  It announces itself (announce_vm) only
 * once a device serves its MAC, as QEMU does after the VM resumes: before
 * the switch, B's spoof check would drop the announcement as a frame with
 * a MAC that is not its fn's, and the wire would keep sending to A. */
static int move_vm(struct move *mv)
{
	int err = vmm_move_vm(&mv->vm, &mv->src, &mv->dst);

	if (err)
		pr_err("failed to move the VM from %s VF %d to %s VF %d: %s", mv->src.pf, mv->src.vf,
		       mv->dst.pf, mv->dst.vf, strerror(-err));
	return err;
}

static int announce_vm(struct move *mv)
{
	int err = vmm_announce(&mv->vm);

	if (err)
		pr_err("failed to announce the VM's addresses: %s", strerror(-err));
	return err;
}

/* Undoes move_vm after a failed switch, so the resumed source reaches it. */
static int move_vm_back(struct move *mv)
{
	struct move back = *mv;

	back.src = mv->dst;
	back.dst = mv->src;
	return move_vm(&back);
}

/* DEVMAP updates resolve ifindexes in the caller's netns, so each host's
 * port changes run inside that host's namespace. */
struct commit_args {
	struct mig_dst *d;
	const uint8_t *mac;
	struct gpa_list *delta;
	uint64_t reloaded;
};

static int commit_cb(void *arg)
{
	struct commit_args *c = arg;

	return mig_dst_commit(c->d, c->mac, c->delta, &c->reloaded);
}

static int resume_cb(void *arg)
{
	return mig_src_set_state(arg, CLAT_FN_ACTIVE);
}

/* Phases back to back: each one's time runs from the previous one's end,
 * so the phases of the downtime add up to it exactly, report writing
 * included. */
struct lap {
	uint64_t last;
};

static uint64_t lap(struct lap *l)
{
	uint64_t now = mig_now_ns(), d = now - l->last;

	l->last = now;
	return d;
}

static void json_ns(struct json *j, const char *key, uint64_t ns)
{
	json_obj_open(j, key);
	json_u64(j, "ns", ns);
	json_obj_close(j);
}

/* Largest block size of the tables: delta entries are block GPAs of any
 * type, and copying that much is safe, the source file being the newer
 * copy of all of it. */
static uint64_t max_block(const struct gtables *t)
{
	uint64_t b = 0;

	for (unsigned int i = 0; i < t->ntypes; i++)
		if (t->types[i].e.block_size > b)
			b = t->types[i].e.block_size;
	return b;
}

int cmd_migrate(const struct invocation *inv)
{
	const char *src_ns = inv->opt[OPT_SRC_NETNS], *dst_ns = inv->opt[OPT_DST_NETNS];
	bool moved = false, switched = false;
	struct mig_copy_stats cs = {};
	struct move mv = {};
	uint64_t t0 = mig_now_ns(), down = 0, ns, reloaded = 0, bsize;
	unsigned int rounds = opt_u32_or(inv, OPT_ROUNDS, MIG_DEFAULT_ROUNDS);
	struct mig_dst d = {};
	struct mig_src s = { .ch.fd = -1 };
	struct lap l;
	struct json j;
	uint32_t fn = opt_u32(inv, OPT_FN), to_fn = opt_u32(inv, OPT_TO_FN);
	int err = 0;

	if (fn == 0 || to_fn == 0) {
		pr_err("migrate: fn 0 is the host port, not a VF");
		err = -EUSAGE;
	}
	if (!err)
		err = require_root();
	if (err)
		return err;
	err = mig_src_begin(&s, inv->arg[0], inv->opt[OPT_SRC_PIN_DIR], fn, NULL);
	if (err == -ENOENT || (!err && !s.have_mac)) {
		pr_err("failed to migrate: fn %u on %s has no guest tables or no MAC", fn, inv->arg[0]);
		err = -ENOENT;
	}
	if (err)
		goto out;
	json_init(&j, mig_report_stream(inv));
	json_obj_open(&j, NULL);
	json_str(&j, "src_pf", inv->arg[0]);
	json_str(&j, "dst_pf", inv->arg[1]);
	json_u64(&j, "fn", fn);
	json_u64(&j, "to_fn", to_fn);

	/* PRE_COPY on A while the VM runs; the VMM copies guest RAM meanwhile. */
	err = mig_precopy(&s, rounds, &j);
	test_stall("pre_copy");
	l.last = mig_now_ns();
	if (!err)
		err = vmm_copy_ram(s.gi.mem_path, inv->opt[OPT_DST_MEM], NULL, 0, 0);
	json_ns(&j, "ram_copy", lap(&l));

	/* RESUMING, staged on B while A still serves. */
	if (!err)
		err = mig_dst_open(&d, inv->arg[1], inv->opt[OPT_DST_PIN_DIR], to_fn,
				   inv->opt[OPT_DST_MEM]);
	if (!err)
		err = mig_dst_prepare(&d, s.gi.bat_gpa);
	json_obj_open(&j, "prepare");
	json_u64(&j, "ns", lap(&l));
	json_u64(&j, "live_contexts", d.st.live);
	json_obj_close(&j);
	if (err) {
		json_obj_close(&j);
		json_end(&j);
		goto out; /* A was never paused: it keeps serving */
	}

	/* Downtime starts: STOP_COPY on A, the last dirty blocks to B's RAM. */
	lap(&l); /* the pause starts now */
	err = mig_src_stop(&s, &cs);
	ns = lap(&l);
	cs.ns = ns;
	down += ns;
	mig_json_copy(&j, "stop_copy", &cs);
	bsize = max_block(&d.t);
	if (!err)
		err = vmm_copy_ram(s.gi.mem_path, inv->opt[OPT_DST_MEM], s.scratch.gpa, s.scratch.n,
				   bsize);
	json_obj_open(&j, "delta_copy");
	json_u64(&j, "blocks", s.scratch.n);
	json_u64(&j, "bytes", s.scratch.n * bsize);
	json_u64(&j, "ns", ns = lap(&l));
	json_obj_close(&j);
	down += ns;

	/* The VM moves, then B switches in one step, then the VM announces. */
	mv = (struct move){ .vm.netns = inv->opt[OPT_VM_NETNS],
			    .src = { inv->arg[0], (int)fn - 1, src_ns },
			    .dst = { inv->arg[1], (int)to_fn - 1, dst_ns } };
	memcpy(mv.vm.mac, s.mac.mac, 6);
	if (!err) {
		err = move_vm(&mv);
		moved = !err;
	}
	json_ns(&j, "vm_move", ns = lap(&l));
	down += ns;
	if (!err) {
		struct commit_args ca = { &d, mv.vm.mac, &s.scratch, 0 };

		err = netns_run_in(dst_ns, commit_cb, &ca);
		reloaded = ca.reloaded;
	}
	json_obj_open(&j, "switch");
	json_u64(&j, "blocks_reloaded", reloaded);
	json_u64(&j, "ns", ns = lap(&l));
	json_obj_close(&j);
	down += ns;
	if (!err)
		announce_vm(&mv); /* a lost announcement does not fail the migration */
	json_ns(&j, "announce", ns = lap(&l));
	down += ns;
	json_u64(&j, "downtime_ns", down);
	json_str(&j, "downtime_is", "stop_copy + delta_copy + vm_move + switch + announce");
	json_str(&j, "downtime_excludes", "pre_copy, ram_copy and prepare (before the pause), "
		 "release (after B serves)");

	/* A lets go of the fn: its maps are gone. */
	if (!err) {
		switched = true;
		err = mig_src_release(&s);
	}
	json_ns(&j, "release", lap(&l));
	json_u64(&j, "total_ns", mig_now_ns() - t0);
	json_obj_close(&j);
	json_end(&j);
	if (err && switched) {
		/* B serves the VM; only A's cleanup failed: never resume A. */
		pr_err("migrated fn %u, but failed to release it on %s: %s (run 'clat-load vf del')",
		       fn, inv->arg[0], strerror(-err));
	} else if (err) {
		pr_err("failed to migrate fn %u: %s; resuming it on %s", fn, strerror(-err),
		       inv->arg[0]);
		if (moved && move_vm_back(&mv))
			pr_err("the VM could not be moved back to %s VF %d", mv.src.pf, mv.src.vf);
		netns_run_in(src_ns, resume_cb, &s);
		if (moved)
			announce_vm(&mv);
	} else {
		pr_info("migrated fn %u on %s to fn %u on %s: %llu live contexts, downtime %.3f ms "
			"(pause to announcement; excludes pre-copy, RAM copy, prepare, release)",
			fn, inv->arg[0], to_fn, inv->arg[1], (unsigned long long)d.st.live,
			(double)down / 1e6);
	}
	mig_report_close(inv, j.out);
out:
	mig_dst_close(&d);
	mig_src_close(&s);
	return err;
}
