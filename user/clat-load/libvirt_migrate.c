// SPDX-License-Identifier: GPL-2.0
/* clat-load libvirt migrate: a libvirt live migration that carries the
 * fn's contexts over the device-state channel.
 *
 * Ordering.  libvirt has no pause-before-switchover: its job copies RAM,
 * stops the source vCPUs at the switchover, starts the destination and
 * kills the source QEMU, all inside one call.  So:
 *
 *   1. the fn's migration lock is taken (miglock.h): the qemu hook and
 *      'libvirt watch' leave the fn alone on this host from here on;
 *   2. virDomainMigrate3 runs in a thread with VIR_MIGRATE_LIVE |
 *      VIR_MIGRATE_PAUSED: the destination guest stays paused after the
 *      switchover, so it can never run before its device state is in;
 *   3. meanwhile this thread streams pre-copy rounds (a full write-back,
 *      then the blocks dirtied since) to the destination's migrate-in;
 *   4. when libvirt's job has ended, the source vCPUs have stopped (at
 *      libvirt's switchover, not ours): the device is stopped here
 *      (QUIESCE, final delta, STOPPED).  Frames that reached the fn after
 *      the switchover updated contexts that the final delta carries; their
 *      packets went to a stopped VM, as with any switchover;
 *   5. COMMIT: the destination writes the blocks into its guest RAM (which
 *      libvirt has loaded), builds its tables and switches (MAC last);
 *   6. virDomainResume on the destination; the source fn is released.
 *
 * Nothing relies on host writes to guest RAM being in QEMU's dirty log:
 * the blocks travel on the channel.  A failed libvirt job leaves the
 * source running: the device aborts (the fn serves here again).  A failed
 * commit after the job ended leaves the destination paused without its
 * device state and the source fn QUIESCED: libvirt has already killed the
 * source QEMU, so the operator decides (the report says so). */
#define _GNU_SOURCE
#include "cli.h"
#include "common.h"
#include "json.h"
#include "libvirt.h"
#include "miglock.h"
#include "migrate.h"
#include "lvdomain.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <libvirt/virterror.h>

#define LVM_ROUND_MS 100   /* pre-copy round interval while libvirt copies RAM */
#define LVM_MAX_ROUNDS 200 /* DS_MAX_ROUNDS leaves room for the stop-copy's */
#define LVM_MAX_XML (1 << 20)

struct lvm_job {
	virDomainPtr dom;          /* on the source */
	virConnectPtr dconn;
	virTypedParameterPtr params;
	int nparams;
	unsigned int flags;
	int pipe[2];               /* the thread writes one byte when libvirt returns */
	virDomainPtr ddom;         /* on the destination; NULL: the migration failed */
	char err[512];
	uint64_t t_start, t_end;
};

static void *lvm_thread(void *arg)
{
	struct lvm_job *jb = arg;
	char c = 1;

	jb->t_start = mig_now_ns();
	jb->ddom = virDomainMigrate3(jb->dom, jb->dconn, jb->params, (unsigned int)jb->nparams,
				     jb->flags);
	jb->t_end = mig_now_ns();
	if (!jb->ddom)
		snprintf(jb->err, sizeof(jb->err), "%s", lv_errmsg());
	if (write(jb->pipe[1], &c, 1) < 0) {
		/* the main thread also polls t_end */
	}
	return NULL;
}

static bool job_ended(struct lvm_job *jb, int ms)
{
	struct pollfd p = { .fd = jb->pipe[0], .events = POLLIN };

	return poll(&p, 1, ms) > 0;
}

static int read_file(const char *path, char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
	char *buf = NULL;
	ssize_t n = 0, r;

	if (fd < 0)
		return -errno;
	buf = malloc(LVM_MAX_XML + 1);
	while (buf && (r = read(fd, buf + n, LVM_MAX_XML - n)) > 0)
		n += r;
	if (!buf)
		err = -ENOMEM;
	else if (r < 0)
		err = -errno;
	else if (n == LVM_MAX_XML)
		err = -EFBIG;
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

struct lvm_opts {
	const char *domain, *dest_uri, *pf, *chan;
	uint32_t fn;
	bool have_fn;
	char *dest_xml;
};

static int parse_opts(const struct invocation *inv, struct lvm_opts *o)
{
	int err = 0;

	memset(o, 0, sizeof(*o));
	o->domain = inv->arg[0];
	o->dest_uri = inv->arg[1];
	o->pf = inv->opt[OPT_PF];
	o->chan = inv->opt[OPT_DEV_CHANNEL];
	if (has_opt(inv, OPT_FN)) {
		o->fn = opt_u32(inv, OPT_FN);
		o->have_fn = true;
		if (!o->fn) {
			pr_err("invalid --fn 0: fn 0 is the PF's own port");
			err = -EUSAGE;
		}
	}
	if (!err && has_opt(inv, OPT_DEST_XML)) {
		err = read_file(inv->opt[OPT_DEST_XML], &o->dest_xml);
		if (err)
			pr_err("failed to read --dest-xml %s: %s", inv->opt[OPT_DEST_XML],
			       strerror(-err));
	}
	if (!err)
		err = require_root();
	return err;
}

static int build_params(const struct invocation *inv, const struct lvm_opts *o,
			struct lvm_job *jb)
{
	int max = 0;

	if (o->dest_xml &&
	    virTypedParamsAddString(&jb->params, &jb->nparams, &max, VIR_MIGRATE_PARAM_DEST_XML,
				    o->dest_xml) < 0)
		return -ENOMEM;
	if (has_opt(inv, OPT_MIGRATE_URI) &&
	    virTypedParamsAddString(&jb->params, &jb->nparams, &max, VIR_MIGRATE_PARAM_URI,
				    inv->opt[OPT_MIGRATE_URI]) < 0)
		return -ENOMEM;
	if (has_opt(inv, OPT_LISTEN_ADDRESS) &&
	    virTypedParamsAddString(&jb->params, &jb->nparams, &max,
				    VIR_MIGRATE_PARAM_LISTEN_ADDRESS,
				    inv->opt[OPT_LISTEN_ADDRESS]) < 0)
		return -ENOMEM;
	/* PAUSED: the destination guest must not run before the commit. */
	jb->flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PAUSED;
	return 0;
}

/* libvirt's own figures of the completed job (the destination keeps them). */
struct lv_stats {
	bool have;
	unsigned long long elapsed_ms, downtime_ms, setup_ms, mem_bytes, mem_total;
};

static void job_stats(virDomainPtr dom, struct lv_stats *st)
{
	virTypedParameterPtr p = NULL;
	int np = 0, type;

	memset(st, 0, sizeof(*st));
	if (!dom || virDomainGetJobStats(dom, &type, &p, &np, VIR_DOMAIN_JOB_STATS_COMPLETED) < 0)
		return;
	st->have = np > 0;
	virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_TIME_ELAPSED, &st->elapsed_ms);
	virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_DOWNTIME, &st->downtime_ms);
	virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_SETUP_TIME, &st->setup_ms);
	virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_MEMORY_PROCESSED, &st->mem_bytes);
	virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_MEMORY_TOTAL, &st->mem_total);
	virTypedParamsFree(p, np);
}

/* Pre-copy rounds until libvirt's job ends; the first is a full write-back. */
static int precopy(struct mig_src *s, struct lvm_job *jb, struct json *j, unsigned int *nr)
{
	struct mig_copy_stats cs, sum = {};
	int err;

	*nr = 0;
	err = mig_src_round(s, true, &cs);
	json_obj_open(j, "pre_copy");
	if (!err)
		mig_json_copy(j, "first", &cs);
	for (; !err && !job_ended(jb, LVM_ROUND_MS) && *nr < LVM_MAX_ROUNDS; (*nr)++) {
		err = mig_src_round(s, false, &cs);
		sum.contexts += cs.contexts;
		sum.bytes += cs.bytes;
		sum.blocks += cs.blocks;
		sum.sent_bytes += cs.sent_bytes;
		sum.ns += cs.ns;
	}
	json_u64(j, "dirty_rounds", *nr);
	mig_json_copy(j, "dirty", &sum);
	json_obj_close(j);
	return err;
}

static void json_libvirt(struct json *j, const struct lvm_job *jb, const struct lv_stats *st)
{
	json_obj_open(j, "libvirt");
	json_u64(j, "ns", jb->t_end - jb->t_start);
	if (st->have) {
		json_u64(j, "elapsed_ms", st->elapsed_ms);
		json_u64(j, "downtime_ms", st->downtime_ms);
		json_u64(j, "setup_ms", st->setup_ms);
		json_u64(j, "memory_processed_bytes", st->mem_bytes);
		json_u64(j, "memory_total_bytes", st->mem_total);
	}
	json_obj_close(j);
}

struct lvm_run {
	struct lvm_opts o;
	virConnectPtr sconn, dconn;
	struct lvm_job jb;
	pthread_t thr;
	bool thr_started;
	struct mig_src s;
	bool s_open;
	int lock;
};

static int connect_both(const struct invocation *inv, struct lvm_run *r)
{
	int state, reason;

	r->sconn = lv_open(inv->opt[OPT_CONNECT], true);
	r->dconn = r->sconn ? lv_open(r->o.dest_uri, true) : NULL;
	if (!r->dconn)
		return -EIO;
	r->jb.dom = virDomainLookupByName(r->sconn, r->o.domain);
	if (!r->jb.dom) {
		pr_err("failed to find domain %s: %s", r->o.domain, lv_errmsg());
		return -ENOENT;
	}
	if (virDomainGetState(r->jb.dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_RUNNING) {
		pr_err("domain %s is not running: nothing to migrate live", r->o.domain);
		return -EINVAL;
	}
	r->jb.dconn = r->dconn;
	return 0;
}

static void run_close(struct lvm_run *r)
{
	if (r->thr_started)
		pthread_join(r->thr, NULL);
	if (r->s_open)
		mig_src_close(&r->s);
	miglock_drop(r->o.pf, r->o.fn, r->lock);
	if (r->jb.ddom)
		virDomainFree(r->jb.ddom);
	if (r->jb.dom)
		virDomainFree(r->jb.dom);
	if (r->jb.pipe[0] >= 0)
		close(r->jb.pipe[0]);
	if (r->jb.pipe[1] >= 0)
		close(r->jb.pipe[1]);
	virTypedParamsFree(r->jb.params, r->jb.nparams);
	if (r->dconn)
		virConnectClose(r->dconn);
	if (r->sconn)
		virConnectClose(r->sconn);
	free(r->o.dest_xml);
}

/* After a failure before the commit: the device serves here again. */
static void abort_device(struct lvm_run *r, int err, const char *what)
{
	int e2 = mig_src_abort(&r->s);

	pr_err("failed to migrate domain %s: %s: %s; %s", r->o.domain, what, strerror(-err),
	       e2 ? "and failed to resume fn (run 'clat-load migrate-out --abort')"
		  : "fn serving again on this host");
}

int cmd_libvirt_migrate(const struct invocation *inv)
{
	struct lvm_run r = { .lock = -1, .jb = { .pipe = { -1, -1 } } };
	struct mig_copy_stats stop = {};
	struct mig_result res = {};
	uint64_t t0 = mig_now_ns(), t_resume = 0, t;
	unsigned int rounds = 0;
	struct lv_stats st;
	struct json j;
	int err;

	err = parse_opts(inv, &r.o);
	if (!err)
		err = connect_both(inv, &r);
	if (!err && !r.o.have_fn)
		err = lv_domain_fn(r.jb.dom, r.o.pf, inv->opt[OPT_PIN_DIR], &r.o.fn);
	if (!err) {
		r.lock = miglock_take(r.o.pf, r.o.fn);
		err = r.lock < 0 ? r.lock : 0;
		if (err)
			pr_err("failed to take the migration lock of fn %u on %s: %s", r.o.fn, r.o.pf,
			       err == -EBUSY ? "another migration of it is running"
					     : strerror(-err));
	}
	if (!err)
		err = build_params(inv, &r.o, &r.jb);
	if (!err && pipe2(r.jb.pipe, O_CLOEXEC) < 0)
		err = -errno;
	if (err)
		goto out;
	err = mig_src_begin(&r.s, r.o.pf, inv->opt[OPT_PIN_DIR], r.o.fn, r.o.chan);
	r.s_open = true;
	if (err) {
		pr_err("failed to start the device migration of fn %u on %s: %s", r.o.fn, r.o.pf,
		       err == -ENOENT ? "it has no guest tables" : strerror(-err));
		goto out;
	}
	json_init(&j, mig_report_stream(inv));
	json_obj_open(&j, NULL);
	json_str(&j, "domain", r.o.domain);
	json_str(&j, "pf", r.o.pf);
	json_u64(&j, "fn", r.o.fn);
	json_str(&j, "channel", r.o.chan);
	err = pthread_create(&r.thr, NULL, lvm_thread, &r.jb);
	if (err) {
		err = -err;
		abort_device(&r, err, "thread");
		goto report;
	}
	r.thr_started = true;
	err = precopy(&r.s, &r.jb, &j, &rounds);
	if (err) {
		/* The device state cannot follow: cancel libvirt's job so that
		 * the domain keeps running here, with its fn. */
		if (virDomainAbortJob(r.jb.dom) < 0)
			pr_err("failed to cancel libvirt's migration job: %s", lv_errmsg());
		pthread_join(r.thr, NULL);
		r.thr_started = false;
		if (r.jb.ddom) {
			pr_err("libvirt's job finished anyway: domain %s stays paused on the destination without its device state, the source fn stays quiesced",
			       r.o.domain);
			goto report;
		}
		abort_device(&r, err, "pre-copy");
		goto report;
	}
	pthread_join(r.thr, NULL);
	r.thr_started = false;
	job_stats(r.jb.ddom, &st);
	json_libvirt(&j, &r.jb, &st);
	if (!r.jb.ddom) {
		err = -EIO;
		pr_err("libvirt migration of %s failed: %s", r.o.domain, r.jb.err);
		abort_device(&r, err, "libvirt's job");
		goto report;
	}
	/* libvirt's job is over: the source vCPUs stopped at its switchover
	 * and the destination holds the RAM, paused. */
	err = mig_src_stop(&r.s, &stop);
	mig_json_copy(&j, "stop_copy", &stop);
	if (!err)
		err = mig_src_commit(&r.s, &res);
	mig_json_commit(&j, &res);
	if (err) {
		pr_err("failed to commit fn %u on the destination: %s%s%s; the domain stays paused there "
		       "without its device state and the source fn stays quiesced",
		       r.o.fn, strerror(-err), res.msg[0] ? ": " : "", res.msg);
		goto report;
	}
	t = mig_now_ns();
	if (virDomainResume(r.jb.ddom) < 0) {
		err = -EIO;
		pr_err("failed to resume domain %s on the destination: %s", r.o.domain,
		       lv_errmsg());
	}
	t_resume = mig_now_ns() - t;
	json_obj_open(&j, "resume");
	json_u64(&j, "ns", t_resume);
	json_obj_close(&j);
	t = mig_now_ns();
	if (mig_src_release(&r.s))
		pr_err("failed to release fn %u on %s (run 'clat-load vf del')", r.o.fn, r.o.pf);
	json_obj_open(&j, "release");
	json_u64(&j, "ns", mig_now_ns() - t);
	json_obj_close(&j);
	/* The guest's pause: libvirt's downtime, then clat's share after the
	 * job (stop-copy, commit, resume); libvirt's finish steps in between
	 * are in libvirt.ns, not here. */
	json_obj_open(&j, "downtime");
	if (st.have)
		json_u64(&j, "libvirt_ms", st.downtime_ms);
	json_u64(&j, "clat_ns", stop.ns + res.wait_ns + t_resume);
	json_u64(&j, "after_job_ns", mig_now_ns() - r.jb.t_end);
	json_obj_close(&j);
	if (!err)
		pr_info("domain %s: migrated with fn %u's %llu live contexts; libvirt %.0f ms "
			"(downtime %llu ms), then clat %.3f ms (stop %.3f, commit %.3f, resume %.3f)",
			r.o.domain, r.o.fn, (unsigned long long)res.live_contexts,
			(r.jb.t_end - r.jb.t_start) / 1e6, st.downtime_ms,
			(stop.ns + res.wait_ns + t_resume) / 1e6, stop.ns / 1e6, res.wait_ns / 1e6,
			t_resume / 1e6);
report:
	json_bool(&j, "ok", !err);
	json_u64(&j, "total_ns", mig_now_ns() - t0);
	json_obj_close(&j);
	json_end(&j);
	mig_report_close(inv, j.out);
out:
	run_close(&r);
	return err;
}
