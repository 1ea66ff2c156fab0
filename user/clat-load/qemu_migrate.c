// SPDX-License-Identifier: GPL-2.0
/* clat-load qemu migrate: live migration of a QEMU guest and its fn's
 * contexts, driven over QMP, each device phase at its one correct point.
 *
 * QEMU moves RAM; host writes into guest RAM are not in its dirty log, so
 * contexts travel on the device channel (copy mode) or not at all because
 * the destination maps the same RAM file (shared mode, x-ignore-shared: a
 * hand-over to a new VMM on this host).  The source pauses before the
 * switchover (pause-before-switchover): the final device delta is taken
 * there, while no vCPU runs.  The destination is kept paused after loading
 * RAM (QMP stop while it waits: autostart off), the device state lands,
 * then `cont`.  Until the destination runs, everything can be rolled back;
 * after it, only forward.  --recover decides which after a kill. */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "miglock.h"
#include "port.h"
#include "qemu_recover.h"
#include "qemu_migrate.h"
#include "vct.h"
#include "maps.h"

#include <limits.h>
#include <net/if.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

uint64_t qm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Runs phase p's work, timing it. */
#define TIMED(qm, p, expr)                            \
	({                                            \
		uint64_t _t0 = qm_now_ns();             \
		int _e = (expr);                      \
		(qm)->ns[p] += qm_now_ns() - _t0;       \
		_e;                                   \
	})

/* Every capability that must agree on both sides, set explicitly: a QEMU
 * that was a destination keeps what it had (real-vm-notes.md, section 6). */
static int set_caps(struct qmp *q, bool pause, bool shared)
{
	char args[512];

	snprintf(args, sizeof(args),
		 "{\"capabilities\":[{\"capability\":\"events\",\"state\":true},"
		 "{\"capability\":\"pause-before-switchover\",\"state\":%s},"
		 "{\"capability\":\"x-ignore-shared\",\"state\":%s},"
		 "{\"capability\":\"postcopy-ram\",\"state\":false},"
		 "{\"capability\":\"multifd\",\"state\":false}]}",
		 pause ? "true" : "false", shared ? "true" : "false");
	return qmp_exec(q, "migrate-set-capabilities", args, NULL);
}

/* query-migrate's status (and, once completed, QEMU's figures). */
int qm_mig_status(struct qm *qm, struct qmp *q, char *st, size_t len)
{
	int r, err = qmp_exec(q, "query-migrate", NULL, &r);
	struct jr *d = &q->doc;

	if (err)
		return err;
	st[0] = '\0';
	jr_str(d, jr_member(d, r, "status"), st, len); /* none yet: "" */
	if (q == &qm->src && !strcmp(st, "completed")) {
		jr_u64(d, jr_member(d, r, "total-time"), &qm->q_total);
		jr_u64(d, jr_member(d, r, "downtime"), &qm->q_down);
		jr_u64(d, jr_member(d, r, "setup-time"), &qm->q_setup);
		jr_u64(d, jr_path(d, r, "ram.transferred"), &qm->q_bytes);
	}
	if (!strcmp(st, "failed")) {
		char desc[256] = "";

		jr_str(d, jr_member(d, r, "error-desc"), desc, sizeof(desc));
		pr_err("%s QEMU: migration failed%s%s", q->who, desc[0] ? ": " : "", desc);
		return -EIO;
	}
	if (!strcmp(st, "cancelled") || !strcmp(st, "cancelling")) {
		pr_err("%s QEMU: migration %s", q->who, st);
		return -ECANCELED;
	}
	return 0;
}

/* Polls the source until its status is want. */
static int wait_src(struct qm *qm, const char *want, char *st, size_t len)
{
	uint64_t deadline = qm_now_ns() + MIGRATE_TIMEOUT_MS * 1000000ULL;
	int err;

	for (;;) {
		err = qm_mig_status(qm, &qm->src, st, len);
		if (err)
			return err;
		if (!strcmp(st, want))
			return 0;
		if (qm_now_ns() > deadline) {
			pr_err("source QEMU: still '%s' after %d s, waiting for '%s'", st,
			       MIGRATE_TIMEOUT_MS / 1000, want);
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
}

/* The destination has loaded everything and stays paused (autostart off). */
static int wait_dst_loaded(struct qm *qm)
{
	uint64_t deadline = qm_now_ns() + MIGRATE_TIMEOUT_MS * 1000000ULL;
	char st[32], run[32];
	int err;

	for (;;) {
		err = qm_mig_status(qm, &qm->dst, st, sizeof(st));
		if (!err)
			err = qmp_status(&qm->dst, run, sizeof(run));
		if (err)
			return err;
		if (!strcmp(st, "completed") && strcmp(run, "inmigrate")) {
			if (strcmp(run, "paused")) {
				pr_err("destination QEMU is '%s' after loading, not paused", run);
				return -EPROTO;
			}
			return 0;
		}
		if (qm_now_ns() > deadline) {
			pr_err("destination QEMU: incoming migration still '%s' (%s)", st, run);
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
}

static int check_qemus(struct qm *qm)
{
	char st[32];
	int err = qmp_status(&qm->src, st, sizeof(st));

	if (err)
		return err;
	qm->src_was_running = !strcmp(st, "running");
	if (!qm->src_was_running && strcmp(st, "paused")) {
		pr_err("source QEMU is '%s': nothing to migrate", st);
		return -EINVAL;
	}
	err = qmp_status(&qm->dst, st, sizeof(st));
	if (!err && strcmp(st, "inmigrate")) {
		pr_err("destination QEMU is '%s', not waiting for a migration: start it with "
		       "-incoming defer", st);
		err = -EINVAL;
	}
	return err;
}

/* Capabilities, parameters, then both ends of the stream. */
static int setup(struct qm *qm)
{
	char args[PATH_MAX + 64];
	int err;

	err = set_caps(&qm->src, true, qm->shared);
	if (!err)
		err = set_caps(&qm->dst, false, qm->shared);
	snprintf(args, sizeof(args), "{\"downtime-limit\":%llu,\"max-bandwidth\":%llu}",
		 (unsigned long long)qm->downtime_limit, 4ULL << 30);
	if (!err)
		err = qmp_exec(&qm->src, "migrate-set-parameters", args, NULL);
	/* stop while it waits clears autostart: the destination stays paused
	 * after loading, until the device state is in place. */
	if (!err)
		err = qmp_exec(&qm->dst, "stop", NULL, NULL);
	if (strpbrk(qm->uri, "\"\\") || strlen(qm->uri) > PATH_MAX) {
		pr_err("invalid --uri '%s'", qm->uri);
		return -EUSAGE;
	}
	snprintf(args, sizeof(args), "{\"uri\":\"%s\"}", qm->uri);
	if (!err)
		err = qmp_exec(&qm->dst, "migrate-incoming", args, NULL);
	if (!err)
		err = qmp_exec(&qm->src, "migrate", args, NULL);
	return err;
}

/* Before the destination runs: cancel, give the fn back to the source,
 * resume the source guest, and end the destination QEMU so that exactly
 * one side ever serves. */
void qm_roll_back(struct qm *qm, bool migrating)
{
	char st[32] = "";
	int err;

	if (migrating && qm->src.fd >= 0)
		qmp_exec(&qm->src, "migrate_cancel", NULL, NULL);
	/* ABORT to the destination's migrate-in: it discards what it got. */
	if (qm->ms_open)
		mig_src_abort(&qm->ms);
	if (qm->maps_open) {
		struct clat_vct_entry e = {};

		bpf_map_lookup_elem(qm->m.vct, &qm->fn, &e);
		if (qm->old_ifindex && e.ifindex != qm->old_ifindex)
			port_move(&qm->m, qm->dir, qm->fn, qm->old_ifindex);
		err = vct_set_state(&qm->m, qm->fn, CLAT_FN_ACTIVE);
		if (err)
			pr_err("failed to resume fn %u on %s: %s", qm->fn, qm->pf, strerror(-err));
	}
	/* A cancelled migration restarts the source's vCPUs itself (if they
	 * ran before); wait for that, then make sure. */
	for (int i = 0; qm->src.fd >= 0 && i < 200; i++) {
		if (qmp_status(&qm->src, st, sizeof(st)) || strcmp(st, "finish-migrate"))
			break;
		usleep(POLL_US);
	}
	if (qm->src_was_running && qm->src.fd >= 0 && strcmp(st, "running"))
		qmp_exec(&qm->src, "cont", NULL, NULL);
	if (qm->dst.fd >= 0)
		qmp_quit(&qm->dst);
}

/* Shared mode's commit: the fn moves to the new VMM's tap and serves. */
int qm_commit_shared(struct qm *qm)
{
	int err = port_move(&qm->m, qm->dir, qm->fn, qm->port_ifindex);

	if (!err)
		err = vct_set_state(&qm->m, qm->fn, CLAT_FN_ACTIVE);
	if (!err)
		qm->t_active = qm_now_ns();
	return err;
}

/* Copy mode, before QEMU starts: the channel, HELLO, and a full
 * write-back round streamed while the fn serves. */
static int device_begin(struct qm *qm)
{
	int err = mig_src_begin(&qm->ms, qm->pf, qm->pin_dir, qm->fn, qm->chan);

	qm->ms_open = true;
	if (err == -ENOENT) {
		pr_err("fn %u on %s has no guest tables: nothing for the device channel", qm->fn,
		       qm->pf);
		return err;
	}
	if (!err)
		err = mig_src_round(&qm->ms, true, &qm->rounds[qm->nrounds++]);
	return err;
}

/* Pre-copy: QEMU copies RAM while the device streams the blocks dirtied
 * since its last round, until one round is small or the rounds run out;
 * then only QEMU is waited for. */
static int precopy(struct qm *qm, char *st, size_t len)
{
	static const char *const past_pause[] = { "device", "completed", NULL };
	uint64_t deadline = qm_now_ns() + MIGRATE_TIMEOUT_MS * 1000000ULL;
	bool converged = qm->shared;
	int err, i;

	for (;;) {
		err = qm_mig_status(qm, &qm->src, st, len);
		if (err)
			return err;
		if (!strcmp(st, "pre-switchover"))
			return 0;
		for (i = 0; past_pause[i]; i++)
			if (!strcmp(st, past_pause[i])) {
				pr_err("source QEMU went past pre-switchover ('%s'): the capability "
				       "did not hold", st);
				return -EPROTO;
			}
		if (qm_now_ns() > deadline) {
			pr_err("source QEMU: still '%s' after %d s", st, MIGRATE_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		if (!converged && qm->nrounds < ARRAY_SIZE(qm->rounds)) {
			struct mig_copy_stats *cs = &qm->rounds[qm->nrounds++];

			err = mig_src_round(&qm->ms, false, cs);
			if (err)
				return err;
			converged = cs->blocks <= MIG_DIRTY_CONVERGED;
		} else {
			usleep(POLL_US);
		}
	}
}

static int run(struct qm *qm)
{
	bool migrating = false;
	char st[32];
	int err;

	err = TIMED(qm, PH_SETUP, check_qemus(qm));
	if (!err && !qm->shared)
		err = TIMED(qm, PH_PRECOPY, device_begin(qm));
	if (!err)
		err = TIMED(qm, PH_SETUP, setup(qm));
	migrating = !err;
	test_stall("qm_setup");
	/* Pre-copy: QEMU copies RAM; the source runs (and serves). */
	if (!err)
		err = TIMED(qm, PH_PRECOPY, precopy(qm, st, sizeof(st)));
	if (err)
		goto fail;
	/* The source's vCPUs are stopped: the device stops too, and in copy
	 * mode streams its final delta. */
	qm->t_paused = qm->t_quiesce = qm_now_ns();
	err = TIMED(qm, PH_STOP, qm->shared ? vct_set_state(&qm->m, qm->fn, CLAT_FN_QUIESCED)
					    : mig_src_stop(&qm->ms, &qm->stop));
	if (err)
		goto fail;
	test_stall("qm_switchover");
	err = TIMED(qm, PH_SWITCHOVER,
		    qmp_exec(&qm->src, "migrate-continue", "{\"state\":\"pre-switchover\"}", NULL) ?:
		    wait_src(qm, "completed", st, sizeof(st)) ?: wait_dst_loaded(qm));
	if (err)
		goto fail;
	test_stall("qm_completed");
	/* RAM is in the destination, which is paused: the device state lands
	 * (copy mode: written into its RAM, built, switched, DONE). */
	if (qm->shared) {
		err = TIMED(qm, PH_COMMIT, qm_commit_shared(qm));
	} else {
		err = TIMED(qm, PH_COMMIT, mig_src_commit(&qm->ms, &qm->res));
		if (!err)
			qm->t_active = qm_now_ns();
		else if (qm->res.status)
			pr_err("the destination refused the device state: %s", qm->res.msg);
		else /* the DONE was lost: its verdict is unknown */
			pr_err("no verdict from the destination: if its fn %u switched anyway, remove it "
			       "there ('clat-load guest detach --force', 'vf del')", qm->fn);
	}
	if (err)
		goto fail;
	test_stall("qm_committed");
	/* Point of no return: the destination guest runs. */
	err = TIMED(qm, PH_RESUME, qmp_exec(&qm->dst, "cont", NULL, NULL));
	qm->t_resumed = qm_now_ns();
	if (err)
		goto fail;
	qm->resumed = true;
	test_stall("qm_resumed");
	/* Forward only from here: the destination guest runs. */
	if (!qm->shared) {
		err = TIMED(qm, PH_RELEASE, mig_src_release(&qm->ms));
		if (err)
			pr_err("the destination serves fn %u; failed to release it on %s: %s (run "
			       "'clat-load vf del')", qm->fn, qm->pf, strerror(-err));
	}
	if (TIMED(qm, PH_RELEASE, qmp_quit(&qm->src))) {
		pr_err("the destination runs; the source QEMU did not quit: stop it by hand");
		err = err ?: -ETIMEDOUT;
	}
	return err;
fail:
	pr_err("failed to migrate fn %u: rolling back, the source keeps serving", qm->fn);
	qm_roll_back(qm, migrating);
	return err ?: -EIO;
}

static void report(struct qm *qm, const struct invocation *inv, int err, uint64_t t0)
{
	struct json j;
	int i;

	pr_info("fn %u: %s (%s mode): QEMU total %llu ms, downtime %llu ms, %llu bytes; "
		"fn stopped %.3f ms, guest paused %.3f ms",
		qm->fn, !qm->resumed ? "migration failed, rolled back" :
		err ? "migrated (with errors after the switch)" : "migrated",
		qm->shared ? "shared" : "copy", (unsigned long long)qm->q_total,
		(unsigned long long)qm->q_down, (unsigned long long)qm->q_bytes,
		qm->t_active > qm->t_quiesce ? (qm->t_active - qm->t_quiesce) / 1e6 : 0.0,
		qm->t_resumed > qm->t_paused ? (qm->t_resumed - qm->t_paused) / 1e6 : 0.0);
	if (!has_opt(inv, OPT_JSON))
		return;
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "pf", qm->pf);
	json_u64(&j, "fn", qm->fn);
	json_str(&j, "mode", qm->shared ? "shared" : "copy");
	json_bool(&j, "migrated", qm->resumed);
	json_obj_open(&j, "phases_ns");
	for (i = 0; i < PH__MAX; i++)
		json_u64(&j, phase_names[i], qm->ns[i]);
	json_obj_close(&j);
	json_u64(&j, "fn_stopped_ns", qm->t_active > qm->t_quiesce ? qm->t_active - qm->t_quiesce : 0);
	json_u64(&j, "guest_paused_ns", qm->t_resumed > qm->t_paused ? qm->t_resumed - qm->t_paused : 0);
	if (!qm->shared) {
		json_obj_open(&j, "device");
		json_arr_open(&j, "pre_copy");
		for (i = 0; i < (int)qm->nrounds; i++)
			mig_json_copy(&j, NULL, &qm->rounds[i]);
		json_arr_close(&j);
		mig_json_copy(&j, "stop_copy", &qm->stop);
		json_obj_open(&j, "commit");
		json_u64(&j, "live_contexts", qm->res.live_contexts);
		json_u64(&j, "blocks", qm->res.blocks);
		json_u64(&j, "bytes", qm->res.bytes);
		json_u64(&j, "write_ns", qm->res.write_ns);
		json_u64(&j, "load_ns", qm->res.load_ns);
		json_u64(&j, "build_ns", qm->res.build_ns);
		json_u64(&j, "switch_ns", qm->res.switch_ns);
		json_u64(&j, "wait_ns", qm->res.wait_ns);
		json_obj_close(&j);
		json_obj_close(&j);
	}
	json_obj_open(&j, "qemu");
	json_u64(&j, "total_time_ms", qm->q_total);
	json_u64(&j, "downtime_ms", qm->q_down);
	json_u64(&j, "setup_time_ms", qm->q_setup);
	json_u64(&j, "transferred_bytes", qm->q_bytes);
	json_obj_close(&j);
	json_u64(&j, "total_ns", qm_now_ns() - t0);
	json_obj_close(&j);
	json_end(&j);
}

static int parse_args(const struct invocation *inv, struct qm *qm)
{
	int err = 0;

	qm->pf = inv->arg[0];
	qm->shared = has_opt(inv, OPT_SHARED);
	qm->uri = inv->opt[OPT_URI];
	qm->port = inv->opt[OPT_PORT];
	qm->chan = inv->opt[OPT_CHANNEL];
	qm->pin_dir = inv->opt[OPT_PIN_DIR];
	qm->fn = opt_u32(inv, OPT_FN);
	qm->downtime_limit = opt_u32_or(inv, OPT_DOWNTIME_LIMIT, 10);
	if (!qm->uri && !has_opt(inv, OPT_RECOVER)) {
		pr_err("qemu migrate: --uri is required (unless --recover)");
		return -EUSAGE;
	}
	if (qm->fn == 0) {
		pr_err("qemu migrate: fn 0 is the host port, not a VF");
		err = -EUSAGE;
	}
	if (!err && qm->shared == has_opt(inv, OPT_CHANNEL)) {
		pr_err("qemu migrate: give either --channel (copy RAM) or --shared --port (same RAM file)");
		err = -EUSAGE;
	}
	if (!err && qm->shared && !qm->port) {
		pr_err("qemu migrate: --shared needs --port (the new VMM's tap)");
		err = -EUSAGE;
	}
	if (!err)
		err = require_root();
	if (!err && qm->port)
		err = resolve_ifindex(qm->port, &qm->port_ifindex);
	return err;
}

int cmd_qemu_migrate(const struct invocation *inv)
{
	struct clat_vct_entry e = {};
	uint64_t t0 = qm_now_ns();
	struct qm qm = { .src.fd = -1, .dst.fd = -1 };
	int err, lock;

	err = parse_args(inv, &qm);
	if (!err)
		err = open_attached(qm.pf, inv->opt[OPT_PIN_DIR], qm.dir, sizeof(qm.dir), &qm.m);
	if (err)
		return err;
	qm.maps_open = true;
	/* The hook and 'libvirt watch' leave a locked fn alone: this command
	 * owns the migration (recover included) until it returns. */
	lock = miglock_take(qm.pf, qm.fn);
	if (lock < 0) {
		pr_err("failed to take fn %u's migration lock on %s: %s", qm.fn, qm.pf,
		       lock == -EBUSY ? "another migration of it is running" : strerror(-lock));
		maps_close(&qm.m);
		return lock;
	}
	bpf_map_lookup_elem(qm.m.vct, &qm.fn, &e);
	qm.old_ifindex = e.ifindex;
	if (has_opt(inv, OPT_RECOVER)) {
		/* Either QEMU may be gone: that is part of what recover looks at. */
		bool s = !qmp_open(&qm.src, inv->opt[OPT_SRC_QMP], "source", QMP_TIMEOUT_MS);
		bool d = !qmp_open(&qm.dst, inv->opt[OPT_DST_QMP], "destination", QMP_TIMEOUT_MS);

		err = qm_recover(&qm, s, d, inv);
		goto out;
	}
	err = TIMED(&qm, PH_CONNECT,
		    qmp_open(&qm.src, inv->opt[OPT_SRC_QMP], "source", QMP_TIMEOUT_MS) ?:
		    qmp_open(&qm.dst, inv->opt[OPT_DST_QMP], "destination", QMP_TIMEOUT_MS));
	if (err)
		goto out;
	if (e.state != CLAT_FN_ACTIVE) {
		pr_err("fn %u on %s is %s, not serving: nothing to migrate (after a kill: --recover)",
		       qm.fn, qm.pf, fn_state_name(e.state));
		err = -EINVAL;
		goto out;
	}
	if (qm.shared && e.ifindex == qm.port_ifindex) {
		pr_err("fn %u's port is %s already: --port is the new VMM's tap", qm.fn, qm.port);
		err = -EINVAL;
		goto out;
	}
	err = run(&qm);
	report(&qm, inv, err, t0);
out:
	qmp_close(&qm.src);
	qmp_close(&qm.dst);
	if (qm.ms_open)
		mig_src_close(&qm.ms);
	maps_close(&qm.m);
	miglock_drop(qm.pf, qm.fn, lock);
	return err;
}
