// SPDX-License-Identifier: GPL-2.0
/* clat-load qemu migrate --recover: after the orchestrator was killed,
 * look at what QEMU (and, in copy mode, the destination's fn) reached and
 * either finish forward or roll back, so that exactly one side serves.
 *
 * Forward when the destination guest runs, or has loaded everything and
 * its device state is in place (shared mode: always, the pool is shared;
 * copy mode: the destination fn switched, seen through --dst-pin-dir).
 * Otherwise roll back: cancel, the source fn ACTIVE, the source guest
 * running, the destination QEMU gone (its migrate-in saw the channel close
 * and discarded everything). */
#include "cli.h"
#include "json.h"
#include "qemu_migrate.h"
#include "qemu_recover.h"
#include "maps.h"

#include <bpf/bpf.h>

/* Copy mode: whether the destination fn took the device state (its COMMIT
 * ran): ACTIVE with guest tables. -1 when unknown (no --dst-pin-dir). */
static int dst_committed(const struct invocation *inv, uint32_t fn)
{
	struct clat_guest_info gi = {};
	struct clat_vct_entry e = {};
	struct clat_maps m;
	uint32_t to = opt_u32_or(inv, OPT_TO_FN, fn);

	if (!has_opt(inv, OPT_DST_PIN_DIR))
		return -1;
	if (maps_open_pinned(inv->opt[OPT_DST_PIN_DIR], &m))
		return -1;
	bpf_map_lookup_elem(m.vct, &to, &e);
	bpf_map_lookup_elem(m.guests, &to, &gi);
	maps_close(&m);
	return e.state == CLAT_FN_ACTIVE && gi.bat_gpa;
}

static bool in_flight(const char *st)
{
	return !strcmp(st, "active") || !strcmp(st, "pre-switchover") || !strcmp(st, "setup") ||
	       !strcmp(st, "device");
}

/* Forward in copy mode: the source lets go of the fn. */
static int release_src(struct qm *qm)
{
	int err = mig_src_begin(&qm->ms, qm->pf, qm->pin_dir, qm->fn, NULL);

	qm->ms_open = true;
	if (err == -ENOENT)
		return 0; /* released already */
	return err ?: mig_src_release(&qm->ms);
}

int qm_recover(struct qm *qm, bool have_src, bool have_dst, const struct invocation *inv)
{
	char dst_run[32] = "", dst_mig[32] = "", src_mig[32] = "";
	int committed = qm->shared ? 1 : dst_committed(inv, qm->fn);
	bool forward, loaded;
	int err = 0;

	if (have_dst && (qmp_status(&qm->dst, dst_run, sizeof(dst_run)) ||
			 (qm_mig_status(qm, &qm->dst, dst_mig, sizeof(dst_mig)) && !dst_mig[0])))
		have_dst = false;
	if (have_src)
		qm_mig_status(qm, &qm->src, src_mig, sizeof(src_mig)); /* failed/cancelled print */
	loaded = have_dst && !strcmp(dst_run, "paused") && !strcmp(dst_mig, "completed");
	forward = have_dst && (!strcmp(dst_run, "running") || (loaded && committed == 1));
	if (loaded && committed < 0)
		pr_err("the destination has the guest's RAM, but whether its fn took the device "
		       "state is unknown (no --dst-pin-dir): rolling back");
	if (forward) {
		err = qm->shared ? qm_commit_shared(qm) : release_src(qm);
		if (!err && strcmp(dst_run, "running"))
			err = qmp_exec(&qm->dst, "cont", NULL, NULL);
		if (!err && have_src)
			err = qmp_quit(&qm->src);
	} else if (have_src) {
		qm->src_was_running = true;
		qm_roll_back(qm, in_flight(src_mig));
	} else {
		pr_err("neither QEMU can take the guest: the source is gone and the destination "
		       "is '%s'", dst_run[0] ? dst_run : "gone");
		return -ENOENT;
	}
	pr_info("fn %u: recovered, %s%s", qm->fn,
		forward ? "forward: the destination has the guest"
			: "rolled back: the source keeps the guest",
		err ? " (with errors)" : "");
	if (has_opt(inv, OPT_JSON)) {
		struct json j;

		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_u64(&j, "fn", qm->fn);
		json_str(&j, "mode", qm->shared ? "shared" : "copy");
		json_str(&j, "recovered", forward ? "forward" : "rollback");
		json_str(&j, "destination_was", dst_run[0] ? dst_run : "gone");
		json_str(&j, "source_migration_was", src_mig[0] ? src_mig : "gone");
		json_obj_close(&j);
		json_end(&j);
	}
	return err;
}
