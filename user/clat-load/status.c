// SPDX-License-Identifier: GPL-2.0
/* status / stats: read the pinned state back. */
#include "cli.h"
#include "common.h"
#include "pool.h"
#include "json.h"
#include "rodata.h"
#include "maps.h"
#include "status.h"
#include "vf.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

/* Indexed by enum clat_stat, so names cannot drift from the ABI (also
 * the keys of metrics --json). */
const char *const stat_names[] = {
	[CLAT_STAT_RX_PACKETS] = "rx_packets",
	[CLAT_STAT_RX_BYTES] = "rx_bytes",
	[CLAT_STAT_TX_PACKETS] = "tx_packets",
	[CLAT_STAT_TX_BYTES] = "tx_bytes",
	[CLAT_STAT_HAIRPIN_PACKETS] = "hairpin_packets",
	[CLAT_STAT_HAIRPIN_BYTES] = "hairpin_bytes",
	[CLAT_STAT_FLOOD_RX] = "flood_rx",
	[CLAT_STAT_FLOOD_TX] = "flood_tx",
	[CLAT_STAT_PASS_UNKNOWN] = "pass_unknown",
	[CLAT_STAT_DROP_UNKNOWN] = "drop_unknown",
	[CLAT_STAT_DROP_MALFORMED] = "drop_malformed",
	[CLAT_STAT_DROP_QUIESCED] = "drop_quiesced",
	[CLAT_STAT_DROP_INACTIVE] = "drop_inactive",
	[CLAT_STAT_DROP_NO_PORT] = "drop_no_port",
	[CLAT_STAT_DROP_NO_FN] = "drop_no_fn",
	[CLAT_STAT_CTX_HIT] = "ctx_hit",
	[CLAT_STAT_CTX_CLAIM] = "ctx_claim",
	[CLAT_STAT_CTX_RELEASE] = "ctx_release",
	[CLAT_STAT_CTX_FULL] = "ctx_full",
	[CLAT_STAT_CTX_MISS] = "ctx_miss",
	[CLAT_STAT_CTX_SKIP] = "ctx_skip",
	[CLAT_STAT_CTX_BUSY] = "ctx_busy",
	[CLAT_STAT_DROP_SPOOF] = "drop_spoof",
	[CLAT_STAT_DROP_LINK_DOWN] = "drop_link_down",
	[CLAT_STAT_DROP_RATE] = "drop_rate",
	[CLAT_STAT_CTX_EVICT] = "ctx_evict",
};
_Static_assert(ARRAY_SIZE(stat_names) == CLAT_STAT__MAX, "a stat slot has no name");

static const char *ifname_or_dash(unsigned int ifindex, char buf[IF_NAMESIZE])
{
	if (!ifindex || !if_indextoname(ifindex, buf))
		return "-";
	return buf;
}

static const char *xdp_mode_name(unsigned int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query(ifindex, 0, &q))
		return "unknown";
	switch (q.attach_mode) {
	case XDP_ATTACHED_DRV: return "native";
	case XDP_ATTACHED_SKB: return "skb";
	case XDP_ATTACHED_HW: return "hw";
	case XDP_ATTACHED_MULTI: return "multi";
	default: return "none";
	}
}

struct port_link {
	unsigned int ifindex;
	__u32 link_id, prog_id;
	char tag[17];
};

static int read_link(const char *path, struct port_link *pl)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path), err = 0;

	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		err = -errno;
	close(fd);
	pl->ifindex = info.xdp.ifindex;
	pl->link_id = info.id;
	pl->prog_id = info.prog_id;
	strcpy(pl->tag, "-");
	fd = err ? -1 : bpf_prog_get_fd_by_id(info.prog_id);
	if (fd >= 0) {
		prog_ident(fd, &info.prog_id, pl->tag);
		close(fd);
	}
	return err;
}

/* What the verifier walked to accept the program: the datapath's budget
 * (1M), reported so every change sees its cost. */
uint32_t verified_insns(uint32_t prog_id)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(prog_id);
	uint32_t n = 0;

	if (fd < 0)
		return 0;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		n = info.verified_insns;
	close(fd);
	return n;
}

static void print_links(const char *dir, struct json *j)
{
	char path[PATH_MAX], name[IF_NAMESIZE];
	struct port_link pl = {};
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		bool rx = !strcmp(de->d_name, PIN_LINK_RX);
		bool tc = !strcmp(de->d_name, PIN_LINK_FLOOD_TC);
		const char *prog = rx ? "clat_rx" : tc ? "clat_flood_tc" : "clat_tx";

		if (!rx && !tc && strncmp(de->d_name, "link_tx_", 8))
			continue;
		/* A TCX link's ifindex sits where an XDP link's does. */
		if (pin_path(path, sizeof(path), dir, de->d_name) || read_link(path, &pl))
			continue;
		if (j) {
			json_obj_open(j, NULL);
			json_str(j, "prog", prog);
			json_str(j, "dev", ifname_or_dash(pl.ifindex, name));
			json_u64(j, "ifindex", pl.ifindex);
			json_u64(j, "link_id", pl.link_id);
			json_u64(j, "prog_id", pl.prog_id);
			json_str(j, "tag", pl.tag);
			json_u64(j, "verified_insns", verified_insns(pl.prog_id));
			json_obj_close(j);
		} else {
			printf("  %-8s on %-15s ifindex %-5u link %-5u prog %-6u tag %s verified %u insns\n",
			       prog, ifname_or_dash(pl.ifindex, name), pl.ifindex,
			       pl.link_id, pl.prog_id, pl.tag, verified_insns(pl.prog_id));
		}
	}
	closedir(d);
}

int prog_links(const char *dir, struct prog_link *out, int max)
{
	char path[PATH_MAX];
	struct port_link pl = {};
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < max) {
		bool rx = !strcmp(de->d_name, PIN_LINK_RX);
		bool tc = !strcmp(de->d_name, PIN_LINK_FLOOD_TC);

		if (!rx && !tc && strncmp(de->d_name, "link_tx_", 8))
			continue;
		if (pin_path(path, sizeof(path), dir, de->d_name) || read_link(path, &pl))
			continue;
		snprintf(out[n].prog, sizeof(out[n].prog), "%s",
			 rx ? "clat_rx" : tc ? "clat_flood_tc" : "clat_tx");
		if (!pl.ifindex || !if_indextoname(pl.ifindex, out[n].dev))
			strcpy(out[n].dev, "-");
		out[n].ifindex = pl.ifindex;
		out[n].prog_id = pl.prog_id;
		out[n].verified_insns = verified_insns(pl.prog_id);
		n++;
	}
	closedir(d);
	return n;
}

static void print_fns(const struct clat_maps *m, const struct pool_usage *u, const char *pf,
		      struct json *j)
{
	struct clat_mac_key keys[16];
	char name[IF_NAMESIZE], mac[18];
	uint32_t fn;
	int n, i;

	if (!j)
		printf("%-4s %-9s %-15s %-8s %-18s %-5s %-5s %-5s %-8s %-6s %s\n", "fn", "state", "dev",
		       "ifindex", "bat_gpa", "vlan", "spoof", "trust", "link", "mbit", "macs");
	for (fn = 0; fn < CLAT_MAX_FN; fn++) {
		struct clat_vct_entry e;

		if (bpf_map_lookup_elem(m->vct, &fn, &e) || e.state == CLAT_FN_FREE)
			continue;
		n = fn_macs(m, fn, keys, ARRAY_SIZE(keys));
		if (j) {
			json_obj_open(j, NULL);
			json_u64(j, "fn", fn);
			json_str(j, "state", fn_state_name(e.state));
			json_str(j, "dev", ifname_or_dash(e.ifindex, name));
			json_u64(j, "ifindex", e.ifindex);
			json_u64(j, "bat_gpa", e.bat_gpa);
			json_u64(j, "generation", e.generation);
			json_u64(j, "pool_contexts", (uint64_t)u->fn_buckets[fn] * CLAT_BUCKET_SLOTS);
			{
				struct clat_fn_policy p = {};

				bpf_map_lookup_elem(m->fn_policy, &fn, &p);
				json_policy(j, &p, pf);
			}
			json_arr_open(j, "macs");
			for (i = 0; i < n; i++) {
				json_obj_open(j, NULL);
				json_mac(j, "mac", keys[i].mac);
				json_u64(j, "vlan", keys[i].vlan);
				json_obj_close(j);
			}
			json_arr_close(j);
			json_obj_close(j);
			continue;
		}
		{
			struct clat_fn_policy p = {};
			char oper[32], link[16];

			bpf_map_lookup_elem(m->fn_policy, &fn, &p);
			snprintf(link, sizeof(link), "%s", link_state_name(p.link_state));
			if (p.link_state == CLAT_LINK_AUTO)
				snprintf(link, sizeof(link), "auto:%s", pf_operstate(pf, oper, sizeof(oper)));
			printf("%-4u %-9s %-15s %-8u 0x%-16llx %-5u %-5s %-5s %-8s %-6u", fn,
			       fn_state_name(e.state), ifname_or_dash(e.ifindex, name), e.ifindex,
			       (unsigned long long)e.bat_gpa, p.vlan, p.spoofchk ? "on" : "off",
			       p.trust ? "on" : "off", link, p.max_rate_mbit);
		}
		for (i = 0; i < n; i++) {
			format_mac(keys[i].mac, mac);
			printf(" %s", mac);
			if (keys[i].vlan)
				printf("@%u", keys[i].vlan);
		}
		printf("\n");
	}
}

/* The id of the XDP program on ifindex, and whether it is a clat_rx. */
static __u32 xdp_prog_on(unsigned int ifindex, bool *is_clat_rx)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), id;
	int fd;

	*is_clat_rx = false;
	if (!ifindex || bpf_xdp_query(ifindex, 0, &q))
		return 0;
	id = q.prog_id ? q.prog_id : q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
	fd = id ? bpf_prog_get_fd_by_id(id) : -1;
	if (fd >= 0) {
		if (!bpf_obj_get_info_by_fd(fd, &info, &len))
			*is_clat_rx = !strcmp(info.name, "clat_rx");
		close(fd);
	}
	return id;
}

/* The prog id the pinned clat_rx link holds, 0 if none. */
static __u32 pinned_rx_prog(const char *dir)
{
	char path[PATH_MAX];
	struct port_link pl = {};

	if (pin_path(path, sizeof(path), dir, PIN_LINK_RX) || read_link(path, &pl))
		return 0;
	return pl.prog_id;
}

/* No pins, yet a clat_rx runs on the PF: its pin dir was renamed or
 * removed, and nothing clat-load does can reach that program any more. */
static int status_unpinned(const char *pf, const char *dir, bool as_json)
{
	bool is_rx;
	__u32 id = xdp_prog_on(if_nametoindex(pf), &is_rx);
	bool orphan = id && is_rx;
	struct json j;

	if (as_json) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "pf", pf);
		json_str(&j, "pin_dir", dir);
		json_bool(&j, "attached", false);
		json_bool(&j, "pin_dir_missing", orphan);
		if (orphan)
			json_u64(&j, "unpinned_prog_id", id);
		json_obj_close(&j);
		json_end(&j);
	} else if (orphan) {
		printf("%s: clat_rx attached (prog %u) but its pin dir %s is missing (renamed or removed?)\n",
		       pf, id, dir);
	} else {
		printf("%s: clat not attached (no pins in %s)\n", pf, dir);
	}
	if (orphan && as_json)
		pr_err("%s: clat_rx attached (prog %u) but its pin dir %s is missing (renamed or removed?)",
		       pf, id, dir);
	return 0;
}

int cmd_status(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	bool as_json = has_opt(inv, OPT_JSON);
	char dir[PATH_MAX], path[PATH_MAX];
	uint32_t layout = 0;
	struct pool_usage u;
	unsigned int pf_ifindex;
	__u32 pf_prog, rx_prog;
	bool is_rx;
	struct clat_maps m;
	struct json j;
	int err;

	err = require_root();
	if (!err)
		err = pin_dir_for(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir));
	if (err)
		return err;
	err = maps_open_pinned(dir, &m);
	if (err == -ENOENT)
		return status_unpinned(pf, dir, as_json);
	if (err) {
		pr_err("failed to open pinned maps in %s: %s", dir, strerror(-err));
		return err;
	}
	pool_usage(&m, &u);
	pf_ifindex = if_nametoindex(pf);
	/* 0 when the running program predates recorded layout versions. */
	if (!pin_path(path, sizeof(path), dir, PIN_PROG_RX))
		pinned_layout_version(path, &layout);
	/* The program on the PF must be the one these pins hold. */
	pf_prog = xdp_prog_on(pf_ifindex, &is_rx);
	rx_prog = pinned_rx_prog(dir);
	if (pf_ifindex && pf_prog != rx_prog)
		pr_err("warning: the XDP program on %s (id %u%s) is not the pinned clat_rx (id %u)",
		       pf, pf_prog, is_rx ? ", a clat_rx: another pin dir?" : "", rx_prog);
	if (as_json) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "pf", pf);
		json_str(&j, "pin_dir", dir);
		json_bool(&j, "attached", true);
		json_str(&j, "mode", pf_ifindex ? xdp_mode_name(pf_ifindex) : "none");
		json_u64(&j, "layout_version", layout);
		json_bool(&j, "pf_prog_pinned", pf_ifindex && pf_prog == rx_prog);
		json_arr_open(&j, "programs");
		print_links(dir, &j);
		json_arr_close(&j);
		json_arr_open(&j, "fns");
		print_fns(&m, &u, pf, &j);
		json_arr_close(&j);
		json_obj_open(&j, "pool");
		json_u64(&j, "contexts", (uint64_t)u.nbuckets * CLAT_BUCKET_SLOTS);
		json_u64(&j, "used", (uint64_t)(u.nbuckets - u.free_buckets) * CLAT_BUCKET_SLOTS);
		json_u64(&j, "free", (uint64_t)u.free_buckets * CLAT_BUCKET_SLOTS);
		json_u64(&j, "largest_free", (uint64_t)u.largest_free * CLAT_BUCKET_SLOTS);
		json_u64(&j, "staged", (uint64_t)u.staged_buckets * CLAT_BUCKET_SLOTS);
		json_u64(&j, "bytes_per_context", sizeof(struct clat_ctx));
		json_obj_close(&j);
		json_obj_close(&j);
		json_end(&j);
	} else {
		printf("%s: clat attached, %s mode, map layout %u, pins in %s\nprograms:\n", pf,
		       pf_ifindex ? xdp_mode_name(pf_ifindex) : "none", layout, dir);
		print_links(dir, NULL);
		printf("functions:\n");
		print_fns(&m, &u, pf, NULL);
		printf("context memory: %llu contexts, %llu free (largest extent %llu), %llu staged\n",
		       (unsigned long long)u.nbuckets * CLAT_BUCKET_SLOTS,
		       (unsigned long long)u.free_buckets * CLAT_BUCKET_SLOTS,
		       (unsigned long long)u.largest_free * CLAT_BUCKET_SLOTS,
		       (unsigned long long)u.staged_buckets * CLAT_BUCKET_SLOTS);
	}
	maps_close(&m);
	return 0;
}

/* Sum one key of the per-CPU stats map over every possible CPU. */
int read_stats(int fd, uint32_t key, struct clat_stats *sum)
{
	int ncpu = libbpf_num_possible_cpus(), c, i;
	struct clat_stats *percpu;

	if (ncpu < 0)
		return ncpu;
	percpu = calloc(ncpu, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(fd, &key, percpu)) {
		free(percpu);
		return -errno;
	}
	for (c = 0; c < ncpu; c++)
		for (i = 0; i < CLAT_STAT__MAX; i++)
			sum->slot[i] += percpu[c].slot[i];
	free(percpu);
	return 0;
}

static bool all_zero(const struct clat_stats *s)
{
	int i;

	for (i = 0; i < CLAT_STAT__MAX; i++)
		if (s->slot[i])
			return false;
	return true;
}

static uint64_t drops(const struct clat_stats *s)
{
	return s->slot[CLAT_STAT_DROP_UNKNOWN] + s->slot[CLAT_STAT_DROP_MALFORMED] +
	       s->slot[CLAT_STAT_DROP_QUIESCED] + s->slot[CLAT_STAT_DROP_INACTIVE] +
	       s->slot[CLAT_STAT_DROP_NO_PORT] + s->slot[CLAT_STAT_DROP_NO_FN] +
	       s->slot[CLAT_STAT_DROP_SPOOF] + s->slot[CLAT_STAT_DROP_LINK_DOWN] +
	       s->slot[CLAT_STAT_DROP_RATE];
}

static void json_counters(struct json *j, const char *key, const struct clat_stats *s)
{
	int i;

	json_obj_open(j, key);
	for (i = 0; i < CLAT_STAT__MAX; i++)
		json_u64(j, stat_names[i], s->slot[i]);
	json_obj_close(j);
}

int cmd_stats(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	bool as_json = has_opt(inv, OPT_JSON);
	struct clat_stats s, total = {};
	char dir[PATH_MAX], name[IF_NAMESIZE];
	struct clat_maps m;
	struct json j;
	uint32_t fn;
	int err, i;

	err = open_attached(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	if (as_json) {
		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "pf", pf);
		json_arr_open(&j, "fns");
	} else {
		printf("%-5s %-15s %10s %12s %10s %12s %9s %8s %8s\n", "fn", "dev", "rx_pkts",
		       "rx_bytes", "tx_pkts", "tx_bytes", "hairpin", "flood", "drops");
	}
	for (fn = 0; fn <= CLAT_FN_NONE; fn++) {
		struct clat_vct_entry e = {};

		err = read_stats(m.stats, fn, &s);
		if (err) {
			pr_err("failed to read stats of fn %u: %s", fn, strerror(-err));
			goto out;
		}
		for (i = 0; i < CLAT_STAT__MAX; i++)
			total.slot[i] += s.slot[i];
		if (fn < CLAT_MAX_FN)
			bpf_map_lookup_elem(m.vct, &fn, &e);
		if (fn == CLAT_FN_NONE || (e.state == CLAT_FN_FREE && all_zero(&s)))
			continue;
		if (as_json) {
			json_obj_open(&j, NULL);
			json_u64(&j, "fn", fn);
			json_str(&j, "dev", ifname_or_dash(e.ifindex, name));
			json_str(&j, "state", fn_state_name(e.state));
			json_counters(&j, "counters", &s);
			json_obj_close(&j);
		} else {
			printf("%-5u %-15s %10llu %12llu %10llu %12llu %9llu %8llu %8llu\n", fn,
			       ifname_or_dash(e.ifindex, name),
			       (unsigned long long)s.slot[CLAT_STAT_RX_PACKETS],
			       (unsigned long long)s.slot[CLAT_STAT_RX_BYTES],
			       (unsigned long long)s.slot[CLAT_STAT_TX_PACKETS],
			       (unsigned long long)s.slot[CLAT_STAT_TX_BYTES],
			       (unsigned long long)s.slot[CLAT_STAT_HAIRPIN_PACKETS],
			       (unsigned long long)s.slot[CLAT_STAT_FLOOD_TX],
			       (unsigned long long)drops(&s));
		}
	}
	/* s still holds the CLAT_FN_NONE slot: frames that belong to no fn. */
	if (as_json) {
		json_arr_close(&j);
		json_counters(&j, "no_fn", &s);
		json_counters(&j, "totals", &total);
		json_obj_close(&j);
		json_end(&j);
	} else {
		printf("\nper-reason totals:\n");
		for (i = 0; i < CLAT_STAT__MAX; i++)
			if (total.slot[i])
				printf("  %-18s %llu\n", stat_names[i],
				       (unsigned long long)total.slot[i]);
	}
out:
	maps_close(&m);
	return err;
}
