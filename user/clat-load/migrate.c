// SPDX-License-Identifier: GPL-2.0
/* migrate-out and migrate-in: thin commands over the source's phases
 * (migsrc.c) and the destination's (migdst.c).  Each reports its phases in
 * --json; a downtime is the sum of the phases listed under it. */
#include "cli.h"
#include "json.h"
#include "migrate.h"

#include <stdlib.h>

FILE *mig_report_stream(const struct invocation *inv)
{
	FILE *f = has_opt(inv, OPT_JSON) ? stdout : fopen("/dev/null", "w");

	return f ? f : stdout;
}

void mig_report_close(const struct invocation *inv, FILE *f)
{
	if (!has_opt(inv, OPT_JSON) && f != stdout)
		fclose(f);
}

void mig_json_copy(struct json *j, const char *key, const struct mig_copy_stats *cs)
{
	json_obj_open(j, key);
	json_u64(j, "contexts", cs->contexts);
	json_u64(j, "bytes", cs->bytes);
	json_u64(j, "blocks", cs->blocks);
	json_u64(j, "sent_bytes", cs->sent_bytes);
	json_u64(j, "ns", cs->ns);
	json_obj_close(j);
}

/* PRE_COPY: a full write-back, then rounds of dirty blocks while traffic runs. */
int mig_precopy(struct mig_src *s, unsigned int rounds, struct json *j)
{
	struct mig_copy_stats cs;
	unsigned int r;
	int err;

	json_arr_open(j, "pre_copy");
	err = mig_src_round(s, true, &cs);
	mig_json_copy(j, NULL, &cs);
	for (r = 1; !err && r <= rounds; r++) {
		err = mig_src_round(s, false, &cs);
		mig_json_copy(j, NULL, &cs);
		if (cs.blocks <= MIG_DIRTY_CONVERGED)
			break;
	}
	json_arr_close(j);
	return err;
}

static int write_delta(const char *path, const struct gpa_list *delta)
{
	FILE *f = fopen(path, "w");
	size_t i;

	if (!f) {
		pr_err("failed to write delta %s: %s", path, strerror(errno));
		return -errno;
	}
	for (i = 0; i < delta->n; i++)
		fprintf(f, "0x%llx\n", (unsigned long long)delta->gpa[i]);
	return fclose(f) ? -errno : 0;
}

void mig_json_commit(struct json *j, const struct mig_result *r)
{
	json_obj_open(j, "commit");
	json_u64(j, "ns", r->wait_ns);
	json_u64(j, "live_contexts", r->live_contexts);
	json_u64(j, "blocks_written", r->blocks);
	mig_json_steps(j, "destination_ns", r);
	json_obj_close(j);
}

static int migrate_out_abort(struct mig_src *s)
{
	int err = s->vct.state == CLAT_FN_QUIESCED ? mig_src_set_state(s, CLAT_FN_ACTIVE) : 0;

	if (!err)
		pr_info("fn %u: %s", s->fn, s->vct.state == CLAT_FN_ACTIVE && s->gi.bat_gpa
						   ? "serving (migration aborted)"
						   : "nothing to abort");
	return err;
}

/* The source, whole: PRE_COPY, STOP_COPY, COMMIT (with a channel: for a
 * caller that already moved guest RAM), release.  Downtime = stop_copy +
 * commit; the release comes after the destination serves. */
int cmd_migrate_out(const struct invocation *inv)
{
	const char *chan = inv->opt[OPT_TO];
	struct mig_copy_stats cs = {};
	struct mig_result res = {};
	bool done = false;
	unsigned int rounds = opt_u32_or(inv, OPT_ROUNDS, MIG_DEFAULT_ROUNDS);
	uint64_t t0 = mig_now_ns(), t;
	struct mig_src s;
	struct json j;
	uint32_t fn = opt_u32(inv, OPT_FN);
	int err = 0;

	if (chan && (has_opt(inv, OPT_ABORT) || has_opt(inv, OPT_DELTA))) {
		pr_err("migrate-out: --to does not go with --abort or --delta");
		err = -EUSAGE;
	}
	if (!err)
		err = require_root();
	if (err)
		return err;
	err = mig_src_begin(&s, inv->arg[0], inv->opt[OPT_PIN_DIR], fn,
			    has_opt(inv, OPT_ABORT) ? NULL : chan);
	if (has_opt(inv, OPT_ABORT) && (!err || err == -ENOENT)) {
		err = migrate_out_abort(&s);
		goto out;
	}
	if (err == -ENOENT && !chan) {
		pr_info("fn %u has no guest tables on %s: nothing to migrate out", fn, inv->arg[0]);
		err = 0;
		goto out;
	}
	if (err == -ENOENT)
		pr_err("failed to migrate out fn %u: it has no guest tables on %s", fn, inv->arg[0]);
	if (err)
		goto fail;
	json_init(&j, mig_report_stream(inv));
	json_obj_open(&j, NULL);
	json_u64(&j, "fn", fn);
	json_str(&j, "mem", s.gi.mem_path);
	json_u64(&j, "bat_gpa", s.gi.bat_gpa);
	if (chan)
		json_str(&j, "to", chan);
	if (!s.resumed) {
		err = mig_precopy(&s, rounds, &j);
		test_stall("pre_copy");
	}
	if (!err)
		err = mig_src_stop(&s, &cs);
	mig_json_copy(&j, "stop_copy", &cs);
	if (!err && chan) {
		err = mig_src_commit(&s, &res);
		mig_json_commit(&j, &res);
	}
	json_u64(&j, "downtime_ns", cs.ns + res.wait_ns);
	done = !err;
	t = mig_now_ns();
	if (!err)
		err = mig_src_release(&s);
	json_obj_open(&j, "release");
	json_u64(&j, "ns", mig_now_ns() - t);
	json_obj_close(&j);
	json_u64(&j, "total_ns", mig_now_ns() - t0);
	json_obj_close(&j);
	json_end(&j);
	mig_report_close(inv, j.out);
	if (!err && has_opt(inv, OPT_DELTA))
		err = write_delta(inv->opt[OPT_DELTA], &s.scratch);
fail:
	if (err && chan && !done) {
		int e2 = mig_src_abort(&s);

		pr_err("failed to migrate out fn %u: %s; %s", fn, strerror(-err),
		       e2 ? "and failed to resume it (run 'migrate-out --abort')"
			  : "the fn is serving again on this host");
	} else if (err && chan) {
		pr_err("migrated fn %u, but failed to release it: %s (run 'clat-load vf del')", fn,
		       strerror(-err));
	} else if (err) {
		pr_err("failed to migrate out fn %u: %s (run again, or --abort to resume)", fn,
		       strerror(-err));
	} else if (chan) {
		pr_info("fn %u: %llu live contexts serving on the destination; fn released", fn,
			(unsigned long long)res.live_contexts);
	} else {
		pr_info("fn %u: contexts written back to %s; fn released", fn, s.gi.mem_path);
	}
out:
	mig_src_close(&s);
	return err;
}

/* --listen: the stream's blocks, then one commit. */
static int migrate_in_listen(const struct invocation *inv, struct mig_dst *d, const uint8_t mac[6])
{
	struct mig_result r;
	struct json j;
	int wait_ms = (int)opt_u32_or(inv, OPT_WAIT, DS_DEFAULT_WAIT_MS / 1000) * 1000, err;

	json_init(&j, mig_report_stream(inv));
	json_obj_open(&j, NULL);
	json_u64(&j, "fn", d->fn);
	json_str(&j, "listen", inv->opt[OPT_CHAN_LISTEN]);
	err = mig_dst_serve(d, inv->opt[OPT_CHAN_LISTEN], wait_ms, mac, &r, &j);
	json_bool(&j, "committed", !err);
	if (err)
		json_str(&j, "error", r.msg);
	json_obj_close(&j);
	json_end(&j);
	mig_report_close(inv, j.out);
	if (err)
		pr_err("failed to migrate in fn %u: %s; everything received was discarded, "
		       "nothing is visible", d->fn, *r.msg ? r.msg : strerror(-err));
	else
		pr_info("fn %u: migrated in, %llu live contexts, %llu blocks written, switch took %.3f ms",
			d->fn, (unsigned long long)r.live_contexts, (unsigned long long)r.blocks,
			r.switch_ns / 1e6);
	return err;
}

int cmd_migrate_in(const struct invocation *inv)
{
	uint64_t t0 = mig_now_ns(), t1, bat = opt_u64_or(inv, OPT_BAT_GPA, 0), reloaded;
	bool listen = has_opt(inv, OPT_CHAN_LISTEN);
	const uint8_t *mac = opt_mac(inv, OPT_MAC);
	struct mig_dst d = {};
	struct json j;
	uint32_t fn = opt_u32(inv, OPT_FN);
	int err = 0;

	if (listen == has_opt(inv, OPT_BAT_GPA)) {
		pr_err("migrate-in: one of --listen or --bat-gpa is required");
		err = -EUSAGE;
	}
	if (!err)
		err = require_root();
	if (err)
		return err;
	err = mig_dst_open(&d, inv->arg[0], inv->opt[OPT_PIN_DIR], fn, inv->opt[OPT_MEM]);
	if (!err && listen) {
		err = migrate_in_listen(inv, &d, mac);
		goto out;
	}
	if (!err)
		err = mig_dst_prepare(&d, bat);
	t1 = mig_now_ns();
	if (!err)
		err = mig_dst_commit(&d, mac, NULL, &reloaded);
	if (!err && has_opt(inv, OPT_JSON)) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_u64(&j, "fn", fn);
		json_u64(&j, "live_contexts", d.st.live);
		json_obj_open(&j, "prepare");
		json_u64(&j, "ns", t1 - t0);
		json_obj_close(&j);
		json_obj_open(&j, "commit");
		json_u64(&j, "ns", mig_now_ns() - t1);
		json_obj_close(&j);
		json_obj_close(&j);
		json_end(&j);
	}
	if (!err)
		pr_info("fn %u: migrated in, %llu live contexts, switch took %.3f ms", fn,
			(unsigned long long)d.st.live, (mig_now_ns() - t1) / 1e6);
	else
		pr_err("failed to migrate in fn %u: %s", fn, strerror(-err));
out:
	mig_dst_close(&d);
	return err;
}
