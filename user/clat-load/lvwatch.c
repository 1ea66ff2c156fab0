// SPDX-License-Identifier: GPL-2.0
/* libvirt watch: reconcile on every domain lifecycle event, every interval,
 * and resync guests that grew their tables, until SIGINT/SIGTERM. */
#define _GNU_SOURCE /* pipe2 */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "libvirt.h"
#include "lvdomain.h"
#include "resync.h"
#include "maps.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libvirt/virterror.h>

#define LV_ACTION_TIMEOUT_MS 10000
#define LV_DEFAULT_INTERVAL 60
#define LV_DEFAULT_RESYNC_MS 1000

/* ---- Watch ------------------------------------------------------------- */

#define NAMES(...) ((const char *const[]){ __VA_ARGS__ })

static const struct {
	const char *event;
	const char *const *detail;
	int ndetail;
} event_names[] = {
	[VIR_DOMAIN_EVENT_DEFINED] = { "DEFINED", NAMES("ADDED", "UPDATED", "RENAMED", "FROM_SNAPSHOT"), 4 },
	[VIR_DOMAIN_EVENT_UNDEFINED] = { "UNDEFINED", NAMES("REMOVED", "RENAMED"), 2 },
	[VIR_DOMAIN_EVENT_STARTED] = { "STARTED", NAMES("BOOTED", "MIGRATED", "RESTORED", "FROM_SNAPSHOT", "WAKEUP"), 5 },
	[VIR_DOMAIN_EVENT_SUSPENDED] = { "SUSPENDED",
		NAMES("PAUSED", "MIGRATED", "IOERROR", "WATCHDOG", "RESTORED", "FROM_SNAPSHOT",
		      "API_ERROR", "POSTCOPY", "POSTCOPY_FAILED"), 9 },
	[VIR_DOMAIN_EVENT_RESUMED] = { "RESUMED",
		NAMES("UNPAUSED", "MIGRATED", "FROM_SNAPSHOT", "POSTCOPY", "POSTCOPY_FAILED"), 5 },
	[VIR_DOMAIN_EVENT_STOPPED] = { "STOPPED",
		NAMES("SHUTDOWN", "DESTROYED", "CRASHED", "MIGRATED", "SAVED", "FAILED",
		      "FROM_SNAPSHOT"), 7 },
	[VIR_DOMAIN_EVENT_SHUTDOWN] = { "SHUTDOWN", NAMES("FINISHED", "GUEST", "HOST"), 3 },
	[VIR_DOMAIN_EVENT_PMSUSPENDED] = { "PMSUSPENDED", NAMES("MEMORY", "DISK"), 2 },
	[VIR_DOMAIN_EVENT_CRASHED] = { "CRASHED", NAMES("PANICKED", "CRASHLOADED"), 2 },
};

_Static_assert(VIR_DOMAIN_EVENT_STARTED_WAKEUP == 4 && VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT == 6 &&
		       VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED == 8 &&
		       VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED == 4,
	       "libvirt event detail numbering changed");

static void event_name(int event, int detail, char *buf, size_t len)
{
	if (event < 0 || (size_t)event >= ARRAY_SIZE(event_names) || !event_names[event].event)
		snprintf(buf, len, "EVENT_%d_%d", event, detail);
	else if (detail < 0 || detail >= event_names[event].ndetail)
		snprintf(buf, len, "%s_%d", event_names[event].event, detail);
	else
		snprintf(buf, len, "%s_%s", event_names[event].event,
			 event_names[event].detail[detail]);
}

/* What an event means for clat, for the log. */
static const char *event_note(virDomainPtr dom, int event, int detail)
{
	int state, reason;

	if (event == VIR_DOMAIN_EVENT_STARTED && detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED)
		return "incoming migration: this host is the destination";
	if (event == VIR_DOMAIN_EVENT_SUSPENDED && detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
		return "outgoing migration: paused for the switchover";
	if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
		return "outgoing migration done: the domain runs on the destination";
	if (event != VIR_DOMAIN_EVENT_RESUMED || detail != VIR_DOMAIN_EVENT_RESUMED_MIGRATED)
		return NULL;
	if (virDomainGetState(dom, &state, &reason, 0) == 0 &&
	    state == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_MIGRATION_CANCELED)
		return "migration cancelled or failed: the domain runs here again";
	return "migration done: running on this host (or back here after a cancelled migration)";
}

struct test_action {
	char op[16];
	char dom[256];
};

struct watch {
	const char *pf;
	const char *pin_dir;
	virConnectPtr conn;
	int cb_id;
	bool close_cb;
	int tick, kick, act_timer, guard, sig_watch, resync;
	uint32_t resync_ms;
	int sigpipe[2];
	bool quit;
	int status;
	struct test_action *acts;
	int nacts, next_act;
	struct lv_track *track;
	int meta_cb_id;
	bool awaiting_event; /* a test action ran; reconcile after its event, then go on */
	bool json;           /* --json: one object per event on stdout */
};

/* --json: a libvirt event as one line of JSON, before the reconcile it
 * causes (which prints its own object). */
static void event_json(const struct watch *w, const char *event, virDomainPtr dom,
		       const char *detail, const char *note)
{
	struct json j;

	if (!w->json)
		return;
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "event", event);
	json_str(&j, "pf", w->pf);
	json_str(&j, "domain", virDomainGetName(dom));
	if (detail)
		json_str(&j, "detail", detail);
	if (note)
		json_str(&j, "note", note);
	json_obj_close(&j);
	json_end(&j);
	fflush(stdout);
}

static int sigpipe_wr = -1;

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;

	if (sigpipe_wr >= 0 && write(sigpipe_wr, &c, 1) < 0) {
		/* nothing to do: the loop is woken by the EINTR anyway */
	}
	errno = saved;
}

static void watch_stop(struct watch *w, int status)
{
	w->quit = true;
	if (status && !w->status)
		w->status = status;
}

static void on_sigpipe(int watch_id, int fd, int events, void *opaque)
{
	struct watch *w = opaque;
	unsigned char c = 0;

	(void)watch_id;
	(void)events;
	if (read(fd, &c, 1) == 1)
		pr_info("watch: %s, exiting", strsignal(c));
	watch_stop(w, 0);
}

static void watch_reconcile(struct watch *w, bool quiet_noop)
{
	int err = lv_reconcile_once(w->conn, w->pf, w->pin_dir, stderr, w->json,
				 quiet_noop ? "tick" : "reconcile", quiet_noop, w->track);

	/* Errors are logged and retried at the next event or tick; only a
	 * scripted test run reports them in its exit status. */
	if (err && w->nacts && !w->status)
		w->status = err;
}

/* Guests grow their tables at run time: pick up new generations. */
static void on_resync(int timer, void *opaque)
{
	struct watch *w = opaque;
	struct clat_maps m;
	char dir[PATH_MAX];
	uint32_t n;

	(void)timer;
	if (open_attached(w->pf, w->pin_dir, dir, sizeof(dir), &m))
		return; /* not attached (yet): the reconcile reports it */
	guest_resync_changed(&m, dir, &n);
	maps_close(&m);
}

static void on_tick(int timer, void *opaque)
{
	(void)timer;
	watch_reconcile(opaque, true);
}

static void arm(int timer, int ms)
{
	if (timer >= 0)
		virEventUpdateTimeout(timer, ms);
}

/* Runs after the lifecycle callback returns: reconcile, then the next action. */
static void on_kick(int timer, void *opaque)
{
	struct watch *w = opaque;

	arm(timer, -1);
	watch_reconcile(w, false);
	if (!w->awaiting_event)
		return;
	w->awaiting_event = false;
	arm(w->guard, -1);
	if (w->next_act < w->nacts)
		arm(w->act_timer, 0);
	else
		watch_stop(w, 0);
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail,
			void *opaque)
{
	struct watch *w = opaque;
	const char *note = event_note(dom, event, detail);
	char name[64];

	(void)conn;
	event_name(event, detail, name, sizeof(name));
	pr_info("watch: domain %s: %s%s%s", virDomainGetName(dom), name, note ? " - " : "",
		note ? note : "");
	event_json(w, "lifecycle", dom, name, note);
	if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
		lv_track_departed(w->track, virDomainGetName(dom));
	arm(w->kick, 0);
	return 0;
}

/* A guest publishes its BAT GPA at run time (virsh metadata --live). */
static void metadata_cb(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
			void *opaque)
{
	struct watch *w = opaque;

	(void)conn;
	if (type != VIR_DOMAIN_METADATA_ELEMENT || !nsuri || strcmp(nsuri, CLAT_XMLNS))
		return;
	pr_info("watch: domain %s: clat metadata changed", virDomainGetName(dom));
	event_json(w, "metadata", dom, NULL, NULL);
	arm(w->kick, 0);
}

/* libvirtd went away: exit non-zero so that a service manager restarts us. */
static void on_conn_close(virConnectPtr conn, int reason, void *opaque)
{
	static const char *const why[] = { "error", "end of file", "keepalive timeout",
					   "client closed it" };

	(void)conn;
	pr_err("libvirt connection closed (%s); exiting",
	       reason >= 0 && (size_t)reason < ARRAY_SIZE(why) ? why[reason] : "unknown reason");
	watch_stop(opaque, -ECONNRESET);
}

static int run_test_action(virConnectPtr conn, const struct test_action *a)
{
	virDomainPtr dom = virDomainLookupByName(conn, a->dom);
	int ret = -1;

	if (!dom) {
		pr_err("failed to run test action %s:%s: %s", a->op, a->dom, lv_errmsg());
		return -ENOENT;
	}
	if (!strcmp(a->op, "create"))
		ret = virDomainCreate(dom);
	else if (!strcmp(a->op, "destroy"))
		ret = virDomainDestroy(dom);
	else if (!strcmp(a->op, "shutdown"))
		ret = virDomainShutdown(dom);
	else if (!strcmp(a->op, "suspend"))
		ret = virDomainSuspend(dom);
	else if (!strcmp(a->op, "resume"))
		ret = virDomainResume(dom);
	if (ret < 0)
		pr_err("failed to run test action %s:%s: %s", a->op, a->dom, lv_errmsg());
	virDomainFree(dom);
	return ret < 0 ? -EIO : 0;
}

static void on_act(int timer, void *opaque)
{
	struct watch *w = opaque;
	const struct test_action *a = &w->acts[w->next_act++];
	int err;

	arm(timer, -1);
	pr_info("watch: test action %s:%s", a->op, a->dom);
	err = run_test_action(w->conn, a);
	if (err) {
		watch_stop(w, err);
		return;
	}
	w->awaiting_event = true;
	arm(w->guard, LV_ACTION_TIMEOUT_MS);
}

static void on_guard(int timer, void *opaque)
{
	struct watch *w = opaque;

	arm(timer, -1);
	pr_err("failed to run test actions: no lifecycle event within %d ms of %s:%s",
	       LV_ACTION_TIMEOUT_MS, w->acts[w->next_act - 1].op, w->acts[w->next_act - 1].dom);
	watch_stop(w, -ETIMEDOUT);
}

static int parse_test_actions(const char *s, struct test_action **out, int *n)
{
	static const char *const ops[] = { "create", "destroy", "shutdown", "suspend", "resume" };
	char *copy = strdup(s), *tok, *save = NULL;
	struct test_action *a;
	int cap = 1, k = 0;
	size_t i;

	for (i = 0; s[i]; i++)
		cap += s[i] == ',';
	a = calloc(cap, sizeof(*a));
	if (!copy || !a) {
		free(copy);
		free(a);
		return -ENOMEM;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		bool known = false;

		for (i = 0; colon && i < ARRAY_SIZE(ops); i++)
			known |= (size_t)(colon - tok) == strlen(ops[i]) &&
				 !strncmp(tok, ops[i], colon - tok);
		if (!known || !colon[1] || strlen(colon + 1) >= sizeof(a[k].dom)) {
			pr_err("invalid --test-actions item '%s': expected OP:DOMAIN with OP one of create, destroy, shutdown, suspend, resume",
			       tok);
			free(copy);
			free(a);
			return -EUSAGE;
		}
		*colon = '\0';
		snprintf(a[k].op, sizeof(a[k].op), "%s", tok);
		snprintf(a[k].dom, sizeof(a[k].dom), "%s", colon + 1);
		k++;
	}
	free(copy);
	if (!k) {
		free(a);
		pr_err("invalid --test-actions '%s': no actions", s);
		return -EUSAGE;
	}
	*out = a;
	*n = k;
	return 0;
}

static int watch_parse(const struct invocation *inv, struct watch *w, uint32_t *interval)
{
	int err = 0;

	*interval = opt_u32_or(inv, OPT_INTERVAL, LV_DEFAULT_INTERVAL);
	w->resync_ms = opt_u32_or(inv, OPT_RESYNC_MS, LV_DEFAULT_RESYNC_MS);
	w->json = has_opt(inv, OPT_JSON);
	if (has_opt(inv, OPT_TEST_ACTIONS))
		err = parse_test_actions(inv->opt[OPT_TEST_ACTIONS], &w->acts, &w->nacts);
	if (!err)
		err = require_root();
	return err;
}

static int add_timer(struct watch *w, int ms, virEventTimeoutCallback cb, int *id)
{
	*id = virEventAddTimeout(ms, cb, w, NULL);
	if (*id < 0) {
		pr_err("failed to add a libvirt event timer");
		return -EIO;
	}
	return 0;
}

/* Event handles, timers and the lifecycle callback, all on w->conn. */
static int watch_register(struct watch *w, uint32_t interval)
{
	int err = 0;

	if (pipe2(w->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	w->sig_watch = virEventAddHandle(w->sigpipe[0], VIR_EVENT_HANDLE_READABLE, on_sigpipe, w,
					 NULL);
	if (w->sig_watch < 0)
		err = -EIO;
	if (!err && interval)
		err = add_timer(w, (int)interval * 1000, on_tick, &w->tick);
	if (!err && w->resync_ms)
		err = add_timer(w, (int)w->resync_ms, on_resync, &w->resync);
	if (!err)
		err = add_timer(w, -1, on_kick, &w->kick);
	if (!err && w->nacts)
		err = add_timer(w, -1, on_act, &w->act_timer);
	if (!err && w->nacts)
		err = add_timer(w, -1, on_guard, &w->guard);
	if (err)
		return err;
	/* Both fail harmlessly on drivers without keepalive (test:///). */
	virConnectSetKeepAlive(w->conn, 5, 3);
	if (virConnectRegisterCloseCallback(w->conn, on_conn_close, w, NULL) == 0)
		w->close_cb = true;
	w->cb_id = virConnectDomainEventRegisterAny(w->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						    VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), w,
						    NULL);
	if (w->cb_id < 0) {
		pr_err("failed to register for domain lifecycle events: %s", lv_errmsg());
		return -EIO;
	}
	/* Optional: drivers without it still reconcile every interval. */
	w->meta_cb_id = virConnectDomainEventRegisterAny(
		w->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(metadata_cb), w, NULL);
	return 0;
}

static void drop_timer(int *id)
{
	if (*id >= 0)
		virEventRemoveTimeout(*id);
	*id = -1;
}

static void on_flush(int timer, void *opaque)
{
	(void)opaque;
	virEventRemoveTimeout(timer);
}

/* Removes everything; one more loop turn lets libvirt free what it holds. */
static void watch_unregister(struct watch *w)
{
	int flush;

	if (w->cb_id >= 0)
		virConnectDomainEventDeregisterAny(w->conn, w->cb_id);
	if (w->meta_cb_id >= 0)
		virConnectDomainEventDeregisterAny(w->conn, w->meta_cb_id);
	if (w->close_cb)
		virConnectUnregisterCloseCallback(w->conn, on_conn_close);
	if (w->sig_watch >= 0)
		virEventRemoveHandle(w->sig_watch);
	drop_timer(&w->tick);
	drop_timer(&w->kick);
	drop_timer(&w->act_timer);
	drop_timer(&w->guard);
	drop_timer(&w->resync);
	flush = virEventAddTimeout(0, on_flush, NULL, NULL);
	if (flush >= 0)
		virEventRunDefaultImpl();
	if (w->sigpipe[0] >= 0)
		close(w->sigpipe[0]);
	if (w->sigpipe[1] >= 0)
		close(w->sigpipe[1]);
}

static void set_signals(void (*handler)(int))
{
	struct sigaction sa = { .sa_handler = handler };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cmd_libvirt_watch(const struct invocation *inv)
{
	struct watch w = { .pf = inv->arg[0], .pin_dir = inv->opt[OPT_PIN_DIR], .cb_id = -1,
			   .meta_cb_id = -1,
			   .tick = -1, .kick = -1, .act_timer = -1, .guard = -1, .sig_watch = -1,
			   .resync = -1,
			   .sigpipe = { -1, -1 } };
	uint32_t interval;
	int err;

	err = watch_parse(inv, &w, &interval);
	if (!err) {
		w.track = calloc(1, sizeof(*w.track));
		err = w.track ? 0 : -ENOMEM;
	}
	if (err)
		goto out;
	if (virEventRegisterDefaultImpl() < 0) {
		pr_err("failed to set up libvirt's event loop: %s", lv_errmsg());
		err = -EIO;
		goto out;
	}
	/* Test actions change domains, so they need a read-write connection. */
	w.conn = lv_open(inv->opt[OPT_CONNECT], w.nacts > 0);
	if (!w.conn) {
		err = -EIO;
		goto out;
	}
	err = watch_register(&w, interval);
	if (!err) {
		sigpipe_wr = w.sigpipe[1];
		set_signals(on_signal);
		char *uri = virConnectGetURI(w.conn);

		pr_info("watch: %s on %s: reconciling on lifecycle events%s", w.pf,
			uri ? uri : "libvirt", interval ? " and every interval" : "");
		free(uri);
		watch_reconcile(&w, false);
		if (w.nacts)
			arm(w.act_timer, 0);
	}
	while (!err && !w.quit)
		if (virEventRunDefaultImpl() < 0 && errno != EINTR) {
			pr_err("libvirt event loop failed: %s", lv_errmsg());
			err = -EIO;
		}
	set_signals(SIG_DFL);
	sigpipe_wr = -1;
	watch_unregister(&w);
	virConnectClose(w.conn);
	if (!err)
		err = w.status;
out:
	free(w.track);
	free(w.acts);
	return err;
}
