// SPDX-License-Identifier: GPL-2.0
/* libvirt reconcile: the function table and the guest tables of a PF follow
 * libvirt's running domains (watch: lvwatch.c; the qemu hook's parser:
 * lvhook.c; domains and the PCI -> fn table: lvdomain.c).
 *
 * The inventory is the domain XML: every <interface type='hostdev'> gives a
 * MAC (and an optional VLAN tag) and the VF's PCI address; an
 * <interface type='ethernet'> whose <target dev=.../> is the port of a fn
 * (a VF backed by a tap that QEMU opens) gives a MAC and that port.  One element
 * in the domain's <metadata>, in the namespace CLAT_XMLNS, names the guest
 * memory file and the BAT GPA:
 *
 *   <metadata>
 *     <clat:guest xmlns:clat="https://clat.dev/xmlns/guest/1"
 *                 mem="/abs/path/vm.mem" bat-gpa="0x..."/>
 *   </metadata>
 *
 * The metadata travels with the domain when libvirt migrates it.
 *
 * Only a running domain gets tables attached or its MAC set: a paused one
 * may be the destination of a migration whose RAM has not arrived yet, or
 * a source whose RAM is leaving.  A fn whose migration lock an orchestrator
 * holds (miglock.h) is left alone, and the tables of a domain that left by
 * migration are dropped without writing back: its RAM is gone. */
#include "cli.h"
#include "common.h"
#include "gtables.h"
#include "json.h"
#include "libvirt.h"
#include "lvdomain.h"
#include "miglock.h"
#include "resync.h"
#include "guest.h"
#include "maps.h"

#include <limits.h>
#include <net/if.h>
#include <stdlib.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

/* ---- Reconcile --------------------------------------------------------- */

struct want {
	const struct lv_domain *dom; /* NULL: no running domain uses the fn */
	const struct lv_iface *ifc;
	bool conflict;               /* two domains claim it: leave it alone */
	bool paused;                 /* QUIESCED by a migration, or its lock held: leave it alone */
	bool held;                   /* its domain is not running: leave it alone */
	bool departed;               /* its domain migrated away: drop, never write back */
	bool skip_attach;
	bool mem_known;              /* mem and id: the metadata's file, through gmem_intake */
	char mem[PATH_MAX];
	struct gmem_id id;
};

struct recon {
	const char *pf;
	const char *pin_dir;
	FILE *out;        /* text lines; NULL when j is set */
	struct json *j;
	int ndomains;
	bool *left;       /* per fn, from the watch: its domain migrated away (or NULL) */
	int changes;
	int errors;
	int first_err;
};

static void recon_fail(struct recon *r, int err)
{
	r->errors++;
	if (!r->first_err)
		r->first_err = err ? err : -EINVAL;
}

/* Fns of domains that migrated away, unless a running domain claims them. */
static void mark_departed(struct recon *r, const struct lv_domain *gone, int ngone,
			  const struct fn_table *t, struct want *w)
{
	const struct fn_entry *fe;
	uint32_t fn;
	int i, k;

	for (i = 0; i < ngone; i++)
		for (k = 0; k < gone[i].nif; k++) {
			fe = fn_lookup(t, &gone[i].ifs[k]);
			if (fe && fe->fn && fe->fn < CLAT_MAX_FN && !w[fe->fn].dom)
				w[fe->fn].departed = true;
		}
	for (fn = 1; r->left && fn < CLAT_MAX_FN; fn++)
		if (r->left[fn] && !w[fn].dom)
			w[fn].departed = true;
}

static void build_wants(struct recon *r, const struct lv_domain *d, int nd,
			const struct fn_table *t, struct want *w)
{
	const struct fn_entry *fe;
	int i, k;

	for (i = 0; i < nd; i++) {
		const char *held = held_reason(&d[i]);

		if (held && d[i].nif)
			pr_info("domain %s: %s; its functions are left alone until it runs",
				d[i].name, held);
		for (k = 0; k < d[i].nif; k++) {
			const struct lv_iface *ifc = &d[i].ifs[k];
			struct want *x;

			fe = fn_lookup(t, ifc);
			if (!fe || fe->fn == 0 || fe->fn >= CLAT_MAX_FN) {
				pr_debug("domain %s: %s is not a VF of %s; ignored",
					 d[i].name, iface_name(ifc), r->pf);
				continue;
			}
			x = &w[fe->fn];
			if (x->dom) {
				pr_err("fn %u (%s) is claimed by domains %s and %s; leaving it alone",
				       fe->fn, iface_name(ifc), x->dom->name, d[i].name);
				x->conflict = true;
				recon_fail(r, -EEXIST);
				continue;
			}
			x->dom = &d[i];
			x->ifc = ifc;
			x->held = held != NULL;
			/* The same intake as guest attach: no symlink is resolved,
			 * no FIFO opened; the file is known by device and inode.
			 * A held domain's file may not exist yet: not looked at. */
			if (d[i].mem_ok && !x->held) {
				x->mem_known = !gmem_intake(d[i].mem, x->mem, sizeof(x->mem),
							    &x->id);
				if (!x->mem_known) {
					pr_err("domain %s: <clat:guest> mem=%s refused; fn %u gets no guest tables",
					       d[i].name, d[i].mem, fe->fn);
					recon_fail(r, -EINVAL);
				}
			}
		}
	}
	for (i = 0; i < nd; i++)
		if (d[i].meta == META_NONE && d[i].nif)
			pr_info("domain %s: no <clat:guest> metadata (namespace %s); its functions get no guest tables",
				d[i].name, CLAT_XMLNS);
}

static void action_open(struct recon *r, const char *act, uint32_t fn, const struct want *w)
{
	if (r->j) {
		json_obj_open(r->j, NULL);
		json_str(r->j, "action", act);
		json_u64(r->j, "fn", fn);
		if (w && w->dom)
			json_str(r->j, "domain", w->dom->name);
		if (w && w->ifc)
			json_str(r->j, w->ifc->pci[0] ? "pci" : "port", iface_name(w->ifc));
		return;
	}
	fprintf(r->out, "%-7s fn %u", act, fn);
	if (w && w->dom)
		fprintf(r->out, " (%s)", w->dom->name);
	fprintf(r->out, ":");
}

static void action_close(struct recon *r, int err)
{
	if (err)
		recon_fail(r, err);
	else
		r->changes++;
	if (r->j) {
		json_bool(r->j, "ok", !err);
		if (err)
			json_str(r->j, "error", strerror(-err));
		json_obj_close(r->j);
		return;
	}
	if (err)
		fprintf(r->out, " FAILED: %s", strerror(-err));
	fprintf(r->out, "\n");
}

static void report_tables(struct recon *r, const char *mem, uint64_t bat)
{
	if (r->j) {
		json_str(r->j, "mem", mem);
		json_u64(r->j, "bat_gpa", bat);
	} else {
		fprintf(r->out, " %s BAT 0x%llx", mem, (unsigned long long)bat);
	}
}

/* Why fn's attached tables must go, or NULL when they stay.  *force when
 * the fn changes owner (another guest memory file, or none): the old
 * owner's shadow goes even if it can no longer be written back, so that
 * the new owner's flows never land in the old owner's memory. */
static const char *detach_reason(const struct want *w, const struct clat_guest_info *gi,
				 bool *force)
{
	*force = true;
	if (w->conflict || w->held)
		return NULL;
	if (!w->dom && w->departed)
		return "its domain migrated away: its RAM has left, nothing written back";
	if (!w->dom)
		return "no running domain uses it";
	if (w->dom->meta == META_NONE)
		return "its domain has no clat metadata";
	if (!w->mem_known)
		return w->dom->meta == META_BAD && !w->dom->mem_ok
			       ? "its domain's guest memory is unusable"
			       : "its domain's guest memory file is refused";
	if (gi->mem_dev != w->id.dev || gi->mem_ino != w->id.ino)
		return "another guest memory file owns it";
	*force = false;
	if (w->dom->meta == META_BAD)
		return NULL; /* the same file: left alone until the metadata is fixed */
	if (gi->bat_gpa != w->dom->bat_gpa || strcmp(gi->mem_path, w->mem))
		return "the domain's guest tables changed";
	return NULL;
}

static void phase_detach(struct recon *r, const struct clat_maps *m, struct want *w)
{
	uint32_t fn;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_guest_info gi = {};
		const char *why;
		bool force;
		int err;

		if (w[fn].paused)
			continue;
		if (bpf_map_lookup_elem(m->guests, &fn, &gi) || !gi.bat_gpa) {
			if (r->left)
				r->left[fn] = false; /* nothing left to drop */
			continue;
		}
		why = detach_reason(&w[fn], &gi, &force);
		if (!why)
			continue;
		/* Writing contexts into RAM that has left is never right: the
		 * destination got them over the device channel, or not at all. */
		err = guest_detach_fn(r->pf, r->pin_dir, fn,
				      GUEST_F_QUIET | (force ? GUEST_F_FORCE : 0) |
					      (!w[fn].dom && w[fn].departed ? GUEST_F_NO_WRITEBACK : 0));
		action_open(r, "detach", fn, &w[fn]);
		report_tables(r, gi.mem_path, gi.bat_gpa);
		if (r->j) {
			json_str(r->j, "reason", why);
			json_bool(r->j, "forced", force);
		} else {
			fprintf(r->out, " (%s)", why);
		}
		action_close(r, err);
		if (err)
			w[fn].skip_attach = true;
	}
}

static bool macs_match(const struct clat_mac_key *k, int n, const struct lv_iface *ifc)
{
	return n == 1 && !memcmp(k[0].mac, ifc->mac, 6) && k[0].vlan == ifc->vlan;
}

static void phase_mac(struct recon *r, const struct clat_maps *m, struct want *w)
{
	struct clat_mac_key keys[8];
	char old[18], mac[18];
	uint32_t fn;
	int n, err;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_vct_entry e = {};

		if (!w[fn].dom || w[fn].conflict || w[fn].paused || w[fn].held)
			continue;
		bpf_map_lookup_elem(m->vct, &fn, &e);
		if (e.state == CLAT_FN_FREE) {
			pr_err("fn %u (%s, domain %s) is not in use on %s; add it with 'clat-load vf add' (or attach on vf-emu)",
			       fn, iface_name(w[fn].ifc), w[fn].dom->name, r->pf);
			recon_fail(r, -ENODEV);
			w[fn].skip_attach = true;
			continue;
		}
		n = fn_macs(m, fn, keys, ARRAY_SIZE(keys));
		if (macs_match(keys, n, w[fn].ifc))
			continue;
		err = fn_install(m, fn, w[fn].ifc->mac, w[fn].ifc->vlan, e.ifindex);
		if (err)
			pr_err("failed to set the MAC of fn %u: %s", fn, strerror(-err));
		format_mac(w[fn].ifc->mac, mac);
		if (n > 0)
			format_mac(keys[0].mac, old);
		action_open(r, "set-mac", fn, &w[fn]);
		if (r->j) {
			json_str(r->j, "mac", mac);
			json_u64(r->j, "vlan", w[fn].ifc->vlan);
			if (n > 0)
				json_str(r->j, "old_mac", old);
		} else {
			fprintf(r->out, " %s vlan %u (was %s)", mac, w[fn].ifc->vlan,
				n > 0 ? old : "none");
		}
		action_close(r, err);
	}
}

static void phase_attach(struct recon *r, const struct clat_maps *m, struct want *w)
{
	uint32_t fn;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_guest_info gi = {};
		int err;

		if (!w[fn].dom || w[fn].conflict || w[fn].paused || w[fn].held || w[fn].skip_attach ||
		    w[fn].dom->meta != META_OK || !w[fn].mem_known)
			continue;
		bpf_map_lookup_elem(m->guests, &fn, &gi);
		if (gi.bat_gpa)
			continue; /* the same tables, or a detach that failed */
		err = guest_attach_fn(r->pf, r->pin_dir, fn, w[fn].mem, w[fn].dom->bat_gpa,
				      GUEST_F_QUIET);
		action_open(r, "attach", fn, &w[fn]);
		report_tables(r, w[fn].mem, w[fn].dom->bat_gpa);
		action_close(r, err);
	}
}

/* A fn that migrate-out paused is between its stop-copy and its release:
 * a MAC change would make it ACTIVE again and a detach would drop the
 * contexts it is writing back.  It is left alone until it resumes or goes.
 * So is a fn whose migration lock an orchestrator holds: from its first
 * device round to the source's release, the orchestrator owns the fn (the
 * domain stops here while the device delta is still to be sent). */
static void mark_paused(const struct recon *r, const struct clat_maps *m, struct want *w)
{
	uint32_t fn;

	for (fn = 1; fn < CLAT_MAX_FN; fn++) {
		struct clat_vct_entry e = {};

		if (miglock_held(r->pf, fn)) {
			w[fn].paused = true;
			pr_info("fn %u is being migrated by an orchestrator: left alone until it releases it",
				fn);
			continue;
		}
		if (bpf_map_lookup_elem(m->vct, &fn, &e) || e.state != CLAT_FN_QUIESCED)
			continue;
		w[fn].paused = true;
		pr_info("fn %u is paused for a migration: left alone until it resumes or is released",
			fn);
	}
}

/* Detach first (fns released or changed), then MACs, then attach. */
static int reconcile_apply(struct recon *r, struct want *w)
{
	char dir[PATH_MAX];
	struct clat_maps m;
	int err;

	err = open_attached(r->pf, r->pin_dir, dir, sizeof(dir), &m);
	if (err)
		return err;
	mark_paused(r, &m, w);
	phase_detach(r, &m, w);
	phase_mac(r, &m, w);
	phase_attach(r, &m, w);
	maps_close(&m);
	return 0;
}

static void recon_summary(const struct recon *r, FILE *out)
{
	fprintf(out, "reconcile %s: %d running domain%s, ", r->pf, r->ndomains,
		r->ndomains == 1 ? "" : "s");
	if (r->changes)
		fprintf(out, "%d change%s", r->changes, r->changes == 1 ? "" : "s");
	else
		fprintf(out, "nothing to do");
	if (r->errors)
		fprintf(out, ", %d error%s", r->errors, r->errors == 1 ? "" : "s");
	fprintf(out, "\n");
}

/* One reconcile pass over conn.  Text lines go to out (NULL with as_json);
 * quiet_noop drops the summary line when nothing changed. */

static void track_update(struct lv_track *tr, const struct want *w)
{
	uint32_t fn;

	for (fn = 1; tr && fn < CLAT_MAX_FN; fn++)
		if (w[fn].dom && !w[fn].conflict) {
			snprintf(tr->owner[fn], sizeof(tr->owner[fn]), "%s", w[fn].dom->name);
			tr->left[fn] = false;
		}
}

void lv_track_departed(struct lv_track *tr, const char *name)
{
	uint32_t fn;

	for (fn = 1; tr && fn < CLAT_MAX_FN; fn++)
		if (!strcmp(tr->owner[fn], name))
			tr->left[fn] = true;
}

/* event: with as_json, the "event" the object reports (libvirt watch --json
 * prints one object per event), or NULL for a plain reconcile. */
int lv_reconcile_once(virConnectPtr conn, const char *pf, const char *pin_dir, FILE *out,
			  bool as_json, const char *event, bool quiet_noop, struct lv_track *track)
{
	struct recon r = { .pf = pf, .pin_dir = pin_dir, .out = out,
			   .left = track ? track->left : NULL };
	struct lv_domain *d = NULL;
	struct fn_table *t;
	struct want *w;
	struct json j;
	int nd = 0, ngone = 0, err;

	t = calloc(1, sizeof(*t));
	w = calloc(CLAT_MAX_FN, sizeof(*w));
	err = (t && w) ? 0 : -ENOMEM;
	if (!err)
		err = lv_list(conn, &d, &nd, &ngone, &r.errors);
	if (!err)
		err = fn_table_load(pf, pin_dir, t);
	if (err)
		goto out;
	if (r.errors)
		r.first_err = -EINVAL;
	r.ndomains = nd;
	build_wants(&r, d, nd, t, w);
	mark_departed(&r, d + nd, ngone, t, w);
	if (as_json) {
		r.j = &j;
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		if (event)
			json_str(&j, "event", event);
		json_str(&j, "pf", pf);
		json_u64(&j, "domains", (uint64_t)nd);
		json_arr_open(&j, "actions");
	}
	err = reconcile_apply(&r, w);
	if (!err)
		track_update(track, w);
	if (as_json) {
		json_arr_close(&j);
		json_u64(&j, "changes", (uint64_t)r.changes);
		json_u64(&j, "errors", (uint64_t)r.errors);
		json_obj_close(&j);
		json_end(&j);
	}
	if (!err && (r.changes || r.errors || !quiet_noop))
		recon_summary(&r, as_json ? stderr : out);
	if (!err)
		err = r.first_err;
	fflush(stdout);
out:
	free(d);
	free(w);
	free(t);
	return err;
}

int cmd_libvirt_reconcile(const struct invocation *inv)
{
	virConnectPtr conn;
	int err;

	err = require_root();
	if (err)
		return err;
	conn = lv_open(inv->opt[OPT_CONNECT], false);
	if (!conn)
		return -EIO;
	err = lv_reconcile_once(conn, inv->arg[0], inv->opt[OPT_PIN_DIR], stdout,
			     has_opt(inv, OPT_JSON), NULL, false, NULL);
	virConnectClose(conn);
	return err;
}
