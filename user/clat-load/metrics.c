// SPDX-License-Identifier: GPL-2.0
/* metrics: the PF's counters, context table occupancy, pool use and
 * verified instruction counts in the Prometheus text exposition format
 * (version 0.0.4) or as JSON; printed once (node_exporter's textfile
 * collector) or served on GET /metrics by a small single-threaded HTTP/1.1
 * server (--listen ADDR:PORT).
 *
 * Naming: every traffic counter of enum clat_stat is a metric of its own
 * (clat_rx_packets_total, ...), the drop counters are one metric with a
 * reason label (clat_drops_total{reason="spoof"}), the context counters
 * one metric each (clat_ctx_full_total, ...).  Every sample carries
 * pf="<pf>" and, per function, fn="<n>" (fn="none": frames that belong to
 * no function). */
#define _GNU_SOURCE /* ppoll, accept4 */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "pool.h"
#include "shadow.h"
#include "httpd.h"
#include "maps.h"
#include "status.h"
#include "writeback.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>

struct prom_stat {
	const char *family;  /* metric name, _total included */
	const char *reason;  /* value of the reason label, or NULL */
	const char *help;
};

/* Indexed by enum clat_stat: a new counter without a name fails the build
 * (the size) or shows up as a gap the ops test catches (the count). */
static const struct prom_stat prom_stats[] = {
	[CLAT_STAT_RX_PACKETS] = { "clat_rx_packets_total", NULL,
				   "Unicast frames from the wire redirected to the function." },
	[CLAT_STAT_RX_BYTES] = { "clat_rx_bytes_total", NULL,
				 "Bytes of the frames counted by clat_rx_packets_total." },
	[CLAT_STAT_TX_PACKETS] = { "clat_tx_packets_total", NULL,
				   "Frames from the function sent out the uplink." },
	[CLAT_STAT_TX_BYTES] = { "clat_tx_bytes_total", NULL,
				 "Bytes of the frames counted by clat_tx_packets_total." },
	[CLAT_STAT_HAIRPIN_PACKETS] = { "clat_hairpin_packets_total", NULL,
					"Frames from the function to another local function." },
	[CLAT_STAT_HAIRPIN_BYTES] = { "clat_hairpin_bytes_total", NULL,
				      "Bytes of the frames counted by clat_hairpin_packets_total." },
	[CLAT_STAT_FLOOD_RX] = { "clat_flood_rx_packets_total", NULL,
				 "Broadcast and multicast frames from the wire, flooded." },
	[CLAT_STAT_FLOOD_TX] = { "clat_flood_tx_packets_total", NULL,
				 "Broadcast and multicast frames from the function, flooded." },
	[CLAT_STAT_PASS_UNKNOWN] = { "clat_pass_unknown_packets_total", NULL,
				     "Unknown unicast frames handed to the host stack." },
	[CLAT_STAT_DROP_UNKNOWN] = { "clat_drops_total", "unknown", NULL },
	[CLAT_STAT_DROP_MALFORMED] = { "clat_drops_total", "malformed", NULL },
	[CLAT_STAT_DROP_QUIESCED] = { "clat_drops_total", "quiesced", NULL },
	[CLAT_STAT_DROP_INACTIVE] = { "clat_drops_total", "inactive", NULL },
	[CLAT_STAT_DROP_NO_PORT] = { "clat_drops_total", "no_port", NULL },
	[CLAT_STAT_DROP_NO_FN] = { "clat_drops_total", "no_fn", NULL },
	[CLAT_STAT_CTX_HIT] = { "clat_ctx_hit_total", NULL, "Frames that found their context." },
	[CLAT_STAT_CTX_CLAIM] = { "clat_ctx_claim_total", NULL,
				  "First frames of a flow that claimed a context slot." },
	[CLAT_STAT_CTX_RELEASE] = { "clat_ctx_release_total", NULL,
				    "Contexts released by the datapath (FIN both ways or RST)." },
	[CLAT_STAT_CTX_FULL] = { "clat_ctx_full_total", NULL,
				 "Frames delivered without a context: both candidate buckets full "
				 "(table pressure)." },
	[CLAT_STAT_CTX_MISS] = { "clat_ctx_miss_total", NULL,
				 "TCP frames mid-stream without a context, delivered without." },
	[CLAT_STAT_CTX_SKIP] = { "clat_ctx_skip_total", NULL,
				 "Frames not tracked: fragments, not TCP/UDP, or no service type." },
	[CLAT_STAT_CTX_BUSY] = { "clat_ctx_busy_total", NULL,
				 "Claims that lost every free slot to racing claims." },
	[CLAT_STAT_DROP_SPOOF] = { "clat_drops_total", "spoof", NULL },
	[CLAT_STAT_DROP_LINK_DOWN] = { "clat_drops_total", "link_down", NULL },
	[CLAT_STAT_DROP_RATE] = { "clat_drops_total", "rate", NULL },
	[CLAT_STAT_CTX_EVICT] = { "clat_ctx_evict_total", NULL,
				  "Claims that took the slot of a flow never answered." },
};
_Static_assert(ARRAY_SIZE(prom_stats) == CLAT_STAT__MAX, "a stat slot has no metric");

#define DROPS_HELP "Frames dropped, by reason (unknown, malformed, quiesced, inactive, " \
		   "no_port, no_fn, spoof, link_down, rate)."

struct type_use {
	uint32_t index;
	char name[20];       /* printable ASCII: a guest wrote it */
	uint64_t live, capacity;
};

struct fn_snap {
	uint32_t fn;
	uint32_t state;
	char dev[IF_NAMESIZE];
	struct clat_stats s;
	uint64_t pool_contexts;
	bool tables;
	uint32_t ntypes;
	struct type_use type[CLAT_MAX_TYPES];
};

#define MAX_LINKS (CLAT_MAX_FN + 4)

struct snapshot {
	const char *pf;
	uint32_t nfns;
	struct fn_snap fns[CLAT_MAX_FN + 1]; /* the last one listed is CLAT_FN_NONE */
	struct pool_usage u;
	int nlinks;
	struct prog_link links[MAX_LINKS];
};

/* A guest names its types: keep what is printable, so a label or a JSON
 * string never carries what the guest meant for a terminal. */
static void type_name(const struct clat_bat_entry *e, uint32_t t, char *out, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < sizeof(e->name) && e->name[i] && n + 1 < len; i++) {
		char c = e->name[i];

		out[n++] = (c >= 0x21 && c <= 0x7e && c != '"' && c != '\\') ? c : '_';
	}
	out[n] = '\0';
	if (!n)
		snprintf(out, len, "%u", t);
}

static void table_use(const struct clat_maps *m, struct fn_snap *f)
{
	struct shadow_view v;
	uint32_t t, k, i;

	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		struct type_use *tu = &f->type[f->ntypes];

		if (shadow_view_open(m, f->fn, t, &v))
			continue;
		memset(tu, 0, sizeof(*tu));
		tu->index = t;
		type_name(&v.e, t, tu->name, sizeof(tu->name));
		for (k = 0; k < CLAT_MAX_SEGMENTS; k++) {
			if (!(v.live & (1U << k)))
				continue;
			tu->capacity += v.seg[k].n;
			for (i = 0; i < v.seg[k].n; i++) {
				uint64_t sw = __atomic_load_n(&v.seg[k].ctx[i].state_word,
							      __ATOMIC_RELAXED);

				tu->live += (sw & CLAT_SLOT_STATE_MASK) == CLAT_SLOT_LIVE;
			}
		}
		shadow_view_close(&v);
		f->ntypes++;
	}
}

static int collect(const struct clat_maps *m, const char *dir, const char *pf,
		   struct snapshot *sn)
{
	uint32_t fn;
	int err;

	sn->pf = pf;
	sn->nfns = 0;
	err = pool_usage(m, &sn->u);
	if (err) {
		pr_err("failed to read the context pool of %s: %s", pf, strerror(-err));
		return err;
	}
	for (fn = 0; fn <= CLAT_FN_NONE; fn++) {
		struct fn_snap *f = &sn->fns[sn->nfns];
		struct clat_vct_entry e = {};
		struct clat_guest_info gi = {};
		bool zero = true;
		int i;

		memset(f, 0, sizeof(*f));
		f->fn = fn;
		err = read_stats(m->stats, fn, &f->s);
		if (err) {
			pr_err("failed to read stats of fn %u: %s", fn, strerror(-err));
			return err;
		}
		for (i = 0; i < CLAT_STAT__MAX; i++)
			zero &= !f->s.slot[i];
		if (fn < CLAT_MAX_FN)
			bpf_map_lookup_elem(m->vct, &fn, &e);
		if (fn != CLAT_FN_NONE && e.state == CLAT_FN_FREE && zero)
			continue;
		f->state = e.state;
		if (!e.ifindex || !if_indextoname(e.ifindex, f->dev))
			strcpy(f->dev, "-");
		if (fn < CLAT_MAX_FN) {
			f->pool_contexts = (uint64_t)sn->u.fn_buckets[fn] * CLAT_BUCKET_SLOTS;
			f->tables = !bpf_map_lookup_elem(m->guests, &fn, &gi) && gi.bat_gpa;
			if (f->tables)
				table_use(m, f);
		}
		sn->nfns++;
	}
	sn->nlinks = prog_links(dir, sn->links, MAX_LINKS);
	if (sn->nlinks < 0)
		sn->nlinks = 0;
	return 0;
}

/* ---- Prometheus text format ---------------------------------------------- */

/* A label value: backslash, double quote and newline escaped. */
static void label_value(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{pf="..",fn=".."[,extra]} */
static void sample_start(FILE *out, const char *name, const char *pf, const struct fn_snap *f)
{
	fprintf(out, "%s{pf=\"", name);
	label_value(out, pf);
	if (f && f->fn == CLAT_FN_NONE)
		fputs("\",fn=\"none", out);
	else if (f)
		fprintf(out, "\",fn=\"%u", f->fn);
	fputc('"', out);
}

static void prom_counters(FILE *out, const struct snapshot *sn)
{
	uint32_t i, j, k, f;

	for (i = 0; i < CLAT_STAT__MAX; i++) {
		bool seen = false;

		for (j = 0; j < i; j++)
			seen |= !strcmp(prom_stats[j].family, prom_stats[i].family);
		if (seen)
			continue;
		family(out, prom_stats[i].family, "counter",
		       prom_stats[i].help ? prom_stats[i].help : DROPS_HELP);
		for (f = 0; f < sn->nfns; f++) {
			for (k = i; k < CLAT_STAT__MAX; k++) {
				if (strcmp(prom_stats[k].family, prom_stats[i].family))
					continue;
				sample_start(out, prom_stats[k].family, sn->pf, &sn->fns[f]);
				if (prom_stats[k].reason)
					fprintf(out, ",reason=\"%s\"", prom_stats[k].reason);
				fprintf(out, "} %llu\n", (unsigned long long)sn->fns[f].s.slot[k]);
			}
		}
	}
}

enum table_metric { TM_LIVE, TM_CAPACITY, TM_RATIO };

static void prom_tables(FILE *out, const struct snapshot *sn)
{
	static const struct {
		const char *name, *help;
	} tm[] = {
		[TM_LIVE] = { "clat_ctx_live", "LIVE contexts in the function's table of a service type." },
		[TM_CAPACITY] = { "clat_ctx_capacity",
				  "Context slots of the type on the device (its live segments)." },
		[TM_RATIO] = { "clat_ctx_occupancy_ratio", "clat_ctx_live / clat_ctx_capacity." },
	};
	uint32_t m, f, t;

	for (m = 0; m < ARRAY_SIZE(tm); m++) {
		family(out, tm[m].name, "gauge", tm[m].help);
		for (f = 0; f < sn->nfns; f++) {
			for (t = 0; t < sn->fns[f].ntypes; t++) {
				const struct type_use *tu = &sn->fns[f].type[t];

				sample_start(out, tm[m].name, sn->pf, &sn->fns[f]);
				fprintf(out, ",type=\"%s\",type_index=\"%u\"} ", tu->name, tu->index);
				if (m == TM_LIVE)
					fprintf(out, "%llu\n", (unsigned long long)tu->live);
				else if (m == TM_CAPACITY)
					fprintf(out, "%llu\n", (unsigned long long)tu->capacity);
				else
					fprintf(out, "%.6g\n", tu->capacity ?
						(double)tu->live / (double)tu->capacity : 0.0);
			}
		}
	}
}

static void prom_pool(FILE *out, const struct snapshot *sn)
{
	const struct pool_usage *u = &sn->u;
	const struct {
		const char *name, *help;
		uint64_t v;
	} pm[] = {
		{ "clat_pool_contexts", "Contexts in the PF's context pool.", u->nbuckets },
		{ "clat_pool_used_contexts", "Contexts of the pool held by functions' tables (live "
		  "or staged extents).", u->nbuckets - u->free_buckets },
		{ "clat_pool_free_contexts", "Free contexts of the pool.", u->free_buckets },
		{ "clat_pool_largest_free_contexts", "Contexts in the largest free extent.",
		  u->largest_free },
		{ "clat_pool_staged_contexts", "Contexts in extents staged by a running attach or "
		  "migration.", u->staged_buckets },
	};
	uint32_t i, f;

	for (i = 0; i < ARRAY_SIZE(pm); i++) {
		family(out, pm[i].name, "gauge", pm[i].help);
		sample_start(out, pm[i].name, sn->pf, NULL);
		fprintf(out, "} %llu\n", (unsigned long long)pm[i].v * CLAT_BUCKET_SLOTS);
	}
	family(out, "clat_pool_fn_contexts", "gauge",
	       "Contexts of the pool the function's live extents hold.");
	for (f = 0; f < sn->nfns; f++) {
		if (sn->fns[f].fn == CLAT_FN_NONE)
			continue;
		sample_start(out, "clat_pool_fn_contexts", sn->pf, &sn->fns[f]);
		fprintf(out, "} %llu\n", (unsigned long long)sn->fns[f].pool_contexts);
	}
}

static void prom_fn_info(FILE *out, const struct snapshot *sn)
{
	uint32_t f;

	family(out, "clat_fn_info", "gauge",
	       "1 for every function in use: its state, representor and whether it has guest "
	       "tables.");
	for (f = 0; f < sn->nfns; f++) {
		const struct fn_snap *fs = &sn->fns[f];

		if (fs->fn == CLAT_FN_NONE)
			continue;
		sample_start(out, "clat_fn_info", sn->pf, fs);
		fputs(",state=\"", out);
		label_value(out, fn_state_name(fs->state));
		fputs("\",dev=\"", out);
		label_value(out, fs->dev);
		fprintf(out, "\",guest_tables=\"%s\"} 1\n", fs->tables ? "yes" : "no");
	}
}

static void prom_progs(FILE *out, const struct snapshot *sn)
{
	int i;

	family(out, "clat_prog_verified_insns", "gauge",
	       "Instructions the verifier walked to accept the attached program (budget 1M).");
	for (i = 0; i < sn->nlinks; i++) {
		const struct prog_link *l = &sn->links[i];

		sample_start(out, "clat_prog_verified_insns", sn->pf, NULL);
		fprintf(out, ",prog=\"%s\",dev=\"", l->prog);
		label_value(out, l->dev);
		fprintf(out, "\",prog_id=\"%u\"} %u\n", l->prog_id, l->verified_insns);
	}
}

static void print_prom(FILE *out, const struct snapshot *sn)
{
	prom_fn_info(out, sn);
	prom_counters(out, sn);
	prom_tables(out, sn);
	prom_pool(out, sn);
	prom_progs(out, sn);
}

/* ---- JSON: the same data ------------------------------------------------- */

static void json_stat_obj(struct json *j, const char *key, const struct clat_stats *s)
{
	int i;

	json_obj_open(j, key);
	for (i = 0; i < CLAT_STAT__MAX; i++)
		json_u64(j, stat_names[i], s->slot[i]);
	json_obj_close(j);
}

static void print_json(FILE *out, const struct snapshot *sn)
{
	const struct pool_usage *u = &sn->u;
	struct json j;
	uint32_t f, t;
	int i;

	json_init(&j, out);
	json_obj_open(&j, NULL);
	json_str(&j, "pf", sn->pf);
	json_arr_open(&j, "fns");
	for (f = 0; f < sn->nfns; f++) {
		const struct fn_snap *fs = &sn->fns[f];

		if (fs->fn == CLAT_FN_NONE)
			continue;
		json_obj_open(&j, NULL);
		json_u64(&j, "fn", fs->fn);
		json_str(&j, "dev", fs->dev);
		json_str(&j, "state", fn_state_name(fs->state));
		json_stat_obj(&j, "counters", &fs->s);
		json_u64(&j, "pool_contexts", fs->pool_contexts);
		json_bool(&j, "guest_tables", fs->tables);
		json_arr_open(&j, "types");
		for (t = 0; t < fs->ntypes; t++) {
			json_obj_open(&j, NULL);
			json_u64(&j, "type_index", fs->type[t].index);
			json_str(&j, "type", fs->type[t].name);
			json_u64(&j, "live", fs->type[t].live);
			json_u64(&j, "capacity", fs->type[t].capacity);
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	/* collect() always lists CLAT_FN_NONE, last. */
	json_stat_obj(&j, "no_fn", &sn->fns[sn->nfns - 1].s);
	json_obj_open(&j, "pool");
	json_u64(&j, "contexts", (uint64_t)u->nbuckets * CLAT_BUCKET_SLOTS);
	json_u64(&j, "used", (uint64_t)(u->nbuckets - u->free_buckets) * CLAT_BUCKET_SLOTS);
	json_u64(&j, "free", (uint64_t)u->free_buckets * CLAT_BUCKET_SLOTS);
	json_u64(&j, "largest_free", (uint64_t)u->largest_free * CLAT_BUCKET_SLOTS);
	json_u64(&j, "staged", (uint64_t)u->staged_buckets * CLAT_BUCKET_SLOTS);
	json_obj_close(&j);
	json_arr_open(&j, "programs");
	for (i = 0; i < sn->nlinks; i++) {
		json_obj_open(&j, NULL);
		json_str(&j, "prog", sn->links[i].prog);
		json_str(&j, "dev", sn->links[i].dev);
		json_u64(&j, "prog_id", sn->links[i].prog_id);
		json_u64(&j, "verified_insns", sn->links[i].verified_insns);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

/* One scrape: opens the pins afresh, so a detach and re-attach between
 * two scrapes is seen. */
static int render(const char *pf, const char *pin_dir_opt, bool as_json, FILE *out)
{
	struct snapshot *sn = calloc(1, sizeof(*sn));
	char dir[PATH_MAX];
	struct clat_maps m;
	int err;

	if (!sn)
		return -ENOMEM;
	err = open_attached(pf, pin_dir_opt, dir, sizeof(dir), &m);
	if (!err) {
		err = collect(&m, dir, pf, sn);
		maps_close(&m);
	}
	if (!err) {
		if (as_json)
			print_json(out, sn);
		else
			print_prom(out, sn);
	}
	free(sn);
	return err;
}

struct scrape {
	const char *pf, *pin_dir;
	bool as_json;
};

static int scrape_body(void *arg, FILE *out)
{
	const struct scrape *sc = arg;

	return render(sc->pf, sc->pin_dir, sc->as_json, out);
}

int cmd_metrics(const struct invocation *inv)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int err = 0;

	if (has_opt(inv, OPT_LISTEN) && http_parse_listen(inv->opt[OPT_LISTEN], &ss, &len)) {
		pr_err("metrics: invalid --listen '%s': expected ADDR:PORT with a numeric address "
		       "and a port 1..65535, e.g. 127.0.0.1:9435 or [::1]:9435",
		       inv->opt[OPT_LISTEN]);
		return -EUSAGE;
	}
	err = require_root();
	if (err)
		return err;
	if (!has_opt(inv, OPT_LISTEN))
		return render(inv->arg[0], inv->opt[OPT_PIN_DIR], has_opt(inv, OPT_JSON), stdout);
	/* Refuse to serve a PF that is not attached: the check a unit's
	 * start-up should fail on. */
	{
		char dir[PATH_MAX];
		struct clat_maps m;

		err = open_attached(inv->arg[0], inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
		if (err)
			return err;
		maps_close(&m);
	}
	{
		struct scrape sc = { inv->arg[0], inv->opt[OPT_PIN_DIR], has_opt(inv, OPT_JSON) };
		struct http_page page = {
			.path = "/metrics",
			.type = sc.as_json ? "application/json"
					   : "text/plain; version=0.0.4; charset=utf-8",
			.body = scrape_body,
			.arg = &sc,
		};

		pr_info("metrics: serving %s on http://%s/metrics", inv->arg[0],
			inv->opt[OPT_LISTEN]);
		return http_serve(&ss, len, inv->opt[OPT_LISTEN], &page);
	}
}
