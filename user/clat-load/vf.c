// SPDX-License-Identifier: GPL-2.0
/* vf add / vf del: manage functions by hand, for a real SR-IOV NIC where
 * nothing comes from vf-emu. */
#include "cli.h"
#include "common.h"
#include "json.h"
#include "port.h"
#include "attach.h"
#include "maps.h"
#include "vf.h"

#include <dirent.h>
#include <limits.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>

static int parse_port(const struct invocation *inv, unsigned int *ifindex)
{
	uint32_t v = opt_u32(inv, OPT_IFINDEX);

	if (has_opt(inv, OPT_IFINDEX) == has_opt(inv, OPT_DEV)) {
		pr_err("vf add: give exactly one of --ifindex and --dev");
		return -EUSAGE;
	}
	if (has_opt(inv, OPT_DEV))
		return resolve_ifindex(inv->opt[OPT_DEV], ifindex);
	if (!if_indextoname(v, (char[IF_NAMESIZE]){ 0 })) {
		pr_err("failed to find interface with ifindex %u: %s", v, strerror(errno));
		return -ENODEV;
	}
	*ifindex = v;
	return 0;
}

/* clat_tx links whose representor belongs to no fn: what a vf add killed
 * between its link and its map updates leaves.  vf del removes them. */
static void reap_tx_links(const struct clat_maps *m, const char *dir)
{
	char path[PATH_MAX];
	struct clat_port_val pv;
	struct dirent *de;
	unsigned int ifindex;
	char tail;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, PIN_LINK_TX_FMT "%c", &ifindex, &tail) != 1 ||
		    bpf_map_lookup_elem(m->port_fn, &ifindex, &pv) == 0)
			continue;
		if (!pin_path(path, sizeof(path), dir, de->d_name) && unlink(path) == 0)
			pr_info("removed the clat_tx link of ifindex %u, which belongs to no fn",
				ifindex);
	}
	closedir(d);
}

/* --json of vf add and vf del: the fn and what changed. */
static void fn_json(const struct invocation *inv, uint32_t fn, bool changed, const char *mac,
		    uint32_t vlan, uint32_t ifindex)
{
	struct json j;

	if (!has_opt(inv, OPT_JSON))
		return;
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_u64(&j, "fn", fn);
	json_bool(&j, "changed", changed);
	if (mac) {
		json_str(&j, "mac", mac);
		json_u64(&j, "vlan", vlan);
		json_u64(&j, "ifindex", ifindex);
	}
	json_obj_close(&j);
	json_end(&j);
}

int cmd_vf_add(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	char dir[PATH_MAX], path[PATH_MAX];
	unsigned int ifindex, pf_ifindex;
	struct clat_port_val owner;
	struct clat_maps m;
	uint32_t fn = opt_u32(inv, OPT_FN), vlan = opt_u32_or(inv, OPT_VLAN, 0), flags;
	const uint8_t *mac = opt_mac(inv, OPT_MAC);
	int err, prog_fd;

	err = require_root();
	if (!err)
		err = parse_port(inv, &ifindex);
	if (!err)
		err = resolve_ifindex(pf, &pf_ifindex);
	if (err)
		return err;
	if (ifindex == pf_ifindex) {
		pr_err("vf add: the PF uplink cannot be a function's port");
		return -EUSAGE;
	}
	err = open_attached(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	if (bpf_map_lookup_elem(m.port_fn, &ifindex, &owner) == 0 && owner.fn != fn) {
		pr_err("failed to add fn %u: ifindex %u already belongs to fn %u", fn, ifindex,
		       owner.fn);
		err = -EBUSY;
		goto out;
	}
	err = attached_xdp_flags(pf_ifindex, &flags);
	prog_fd = err ? -1 : (pin_path(path, sizeof(path), dir, PIN_PROG_TX) ? -1 : bpf_obj_get(path));
	if (!err && prog_fd < 0) {
		err = -errno;
		pr_err("failed to open %s: %s", path, strerror(-err));
	}
	if (!err) {
		err = port_install(&m, prog_fd, flags, dir, fn, mac, (uint16_t)vlan, ifindex);
		close(prog_fd);
	}
	if (!err) {
		pr_info("fn %u: %s vlan %u -> ifindex %u", fn, inv->opt[OPT_MAC], vlan, ifindex);
		fn_json(inv, fn, true, inv->opt[OPT_MAC], vlan, ifindex);
	}
out:
	maps_close(&m);
	return err;
}

int cmd_vf_del(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	char dir[PATH_MAX], name[32], path[PATH_MAX];
	struct clat_vct_entry e = {};
	struct clat_maps m;
	uint32_t fn = opt_u32(inv, OPT_FN);
	int err;

	err = open_attached(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	bpf_map_lookup_elem(m.vct, &fn, &e);
	if (e.state == CLAT_FN_FREE) {
		reap_tx_links(&m, dir);
		pr_info("fn %u is not in use on %s; nothing to do", fn, pf);
		fn_json(inv, fn, false, NULL, 0, 0);
		goto out;
	}
	/* The link goes first: a del killed in between is still ACTIVE, so
	 * its rerun finds the ifindex again (the VCT entry holds it). */
	snprintf(name, sizeof(name), PIN_LINK_TX_FMT, e.ifindex);
	if (!pin_path(path, sizeof(path), dir, name) && unlink(path) < 0 && errno != ENOENT) {
		err = -errno;
		pr_err("failed to detach clat_tx from ifindex %u: %s", e.ifindex, strerror(-err));
		goto out;
	}
	err = fn_remove(&m, fn);
	if (err) {
		pr_err("failed to remove fn %u: %s", fn, strerror(-err));
		goto out;
	}
	reap_tx_links(&m, dir);
	pr_info("fn %u removed from %s", fn, pf);
	fn_json(inv, fn, true, NULL, 0, 0);
out:
	maps_close(&m);
	return err;
}

/* ---- vf set: per-VF port policy, the knobs of `ip link set PF vf N` ------- */

static const char *const link_state_names[] = {
	[CLAT_LINK_AUTO] = "auto",
	[CLAT_LINK_ENABLE] = "enable",
	[CLAT_LINK_DISABLE] = "disable",
};

const char *link_state_name(uint32_t s)
{
	return s < ARRAY_SIZE(link_state_names) ? link_state_names[s] : "unknown";
}

/* The PF's operational state from sysfs ("up", "down", ...), for auto. */
const char *pf_operstate(const char *pf, char *buf, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", pf);
	f = fopen(path, "re");
	if (!f || !fgets(buf, (int)len, f)) {
		if (f)
			fclose(f);
		return "unknown";
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* One fn's policy, as `status --json` and `vf set --json` print it. */
void json_policy(struct json *j, const struct clat_fn_policy *p, const char *pf)
{
	char oper[32];

	json_u64(j, "vlan", p->vlan);
	json_bool(j, "spoofchk", p->spoofchk);
	json_bool(j, "trust", p->trust);
	json_str(j, "link_state", link_state_name(p->link_state));
	/* The datapath treats auto as up; what the PF itself says, for the reader. */
	if (p->link_state == CLAT_LINK_AUTO)
		json_str(j, "pf_operstate", pf_operstate(pf, oper, sizeof(oper)));
	json_u64(j, "max_rate_mbit", p->max_rate_mbit);
}

#define VF_SET_MAX_MACS 64

struct vf_set_req {
	struct clat_fn_policy p;
	bool add, del;
	uint8_t add_mac[6], del_mac[6];
};

/* Everything from the command line, before any map is touched. */
static void vf_set_parse(const struct invocation *inv, const struct clat_fn_policy *cur,
			struct vf_set_req *r)
{
	r->p = *cur;
	/* Typed and bounded by the table; enums by index: on|off, auto|enable|disable. */
	if (has_opt(inv, OPT_VLAN))
		r->p.vlan = (uint16_t)opt_u32(inv, OPT_VLAN);
	if (has_opt(inv, OPT_SPOOFCHK))
		r->p.spoofchk = opt_u32(inv, OPT_SPOOFCHK) == 0;
	if (has_opt(inv, OPT_TRUST))
		r->p.trust = opt_u32(inv, OPT_TRUST) == 0;
	if (has_opt(inv, OPT_STATE))
		r->p.link_state = (uint8_t)opt_u32(inv, OPT_STATE);
	if (has_opt(inv, OPT_MAX_RATE))
		r->p.max_rate_mbit = opt_u32(inv, OPT_MAX_RATE);
	r->add = has_opt(inv, OPT_ADD_MAC);
	r->del = has_opt(inv, OPT_DEL_MAC);
	if (r->add)
		memcpy(r->add_mac, opt_mac(inv, OPT_ADD_MAC), 6);
	if (r->del)
		memcpy(r->del_mac, opt_mac(inv, OPT_DEL_MAC), 6);
}

static int find_mac(const struct clat_mac_key *keys, int n, const uint8_t mac[6])
{
	int i;

	for (i = 0; i < n; i++)
		if (!memcmp(keys[i].mac, mac, 6))
			return i;
	return -1;
}

/* The checks that need the maps: a refused request changes nothing. */
static int vf_set_check(const struct clat_maps *m, uint32_t fn, const struct vf_set_req *r,
			const struct clat_mac_key *keys, int n, uint16_t key_vlan)
{
	struct clat_mac_key k = { .vlan = key_vlan };
	struct clat_mac_val owner;
	char mac[18];
	int after = n, i;

	if (r->add && find_mac(keys, n, r->add_mac) < 0) {
		format_mac(r->add_mac, mac);
		if (n > 0 && !r->p.trust) {
			pr_err("failed to add MAC %s to fn %u: fn %u is not trusted; a VF may have "
			       "more than one MAC only with --trust on", mac, fn, fn);
			return -EPERM;
		}
		memcpy(k.mac, r->add_mac, 6);
		if (bpf_map_lookup_elem(m->mac_fn, &k, &owner) == 0 && owner.fn != fn) {
			pr_err("failed to add MAC %s to fn %u: it belongs to fn %u", mac, fn,
			       owner.fn);
			return -EBUSY;
		}
		after++;
	}
	if (r->del) {
		format_mac(r->del_mac, mac);
		if (find_mac(keys, n, r->del_mac) < 0) {
			pr_err("failed to delete MAC %s from fn %u: not a MAC of fn %u", mac, fn, fn);
			return -ENOENT;
		}
		if (--after < 1) {
			pr_err("failed to delete MAC %s from fn %u: it is its only MAC; "
			       "use 'vf del' to remove the function", mac, fn);
			return -EINVAL;
		}
	}
	if (!r->p.trust && after > 1) {
		pr_err("failed to set fn %u: it has %d MACs and an untrusted VF may have one; "
		       "remove the extra ones with --del-mac first", fn, after);
		return -EPERM;
	}
	/* Re-keying under a new port VLAN must not take another fn's entry. */
	for (i = 0; r->p.vlan && i < n; i++) {
		k = keys[i];
		k.vlan = r->p.vlan;
		if (bpf_map_lookup_elem(m->mac_fn, &k, &owner) == 0 && owner.fn != fn) {
			format_mac(k.mac, mac);
			pr_err("failed to set port VLAN %u on fn %u: MAC %s on VLAN %u belongs to fn %u",
			       r->p.vlan, fn, mac, r->p.vlan, owner.fn);
			return -EBUSY;
		}
	}
	return 0;
}

/* Moves fn's MAC entries to VLAN vlan: each new key is written before its
 * old one goes, so every frame finds the fn under one of them. */
static int rekey_macs(const struct clat_maps *m, uint32_t fn, const struct clat_mac_key *keys,
		      int n, uint16_t vlan)
{
	struct clat_mac_val mv = { .fn = fn };
	int i;

	for (i = 0; i < n; i++) {
		struct clat_mac_key k = keys[i];

		if (k.vlan == vlan)
			continue;
		k.vlan = vlan;
		if (bpf_map_update_elem(m->mac_fn, &k, &mv, BPF_ANY))
			return -errno;
		bpf_map_delete_elem(m->mac_fn, &keys[i]);
	}
	return 0;
}

/* vf set --port IFNAME: port_move, reported like the rest of vf set. */
static int vf_set_port(const struct invocation *inv)
{
	static const int others[] = { OPT_VLAN, OPT_SPOOFCHK, OPT_TRUST, OPT_STATE,
				      OPT_MAX_RATE, OPT_ADD_MAC, OPT_DEL_MAC };
	const char *pf = inv->arg[0], *port = inv->opt[OPT_PORT];
	struct clat_vct_entry e = {};
	unsigned int ifindex;
	char dir[PATH_MAX];
	struct clat_maps m;
	uint32_t fn = opt_u32(inv, OPT_FN);
	int err;

	for (size_t i = 0; i < ARRAY_SIZE(others); i++)
		if (has_opt(inv, others[i])) {
			pr_err("vf set: --port moves the port alone; set the policy in another call");
			return -EUSAGE;
		}
	err = require_root();
	if (!err)
		err = resolve_ifindex(port, &ifindex);
	if (!err)
		err = open_attached(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	bpf_map_lookup_elem(m.vct, &fn, &e);
	err = port_move(&m, dir, fn, ifindex);
	maps_close(&m);
	if (err)
		return err;
	if (has_opt(inv, OPT_JSON)) {
		struct json j;

		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "pf", pf);
		json_u64(&j, "fn", fn);
		json_str(&j, "port", port);
		json_u64(&j, "ifindex", ifindex);
		json_u64(&j, "old_ifindex", e.ifindex);
		json_obj_close(&j);
		json_end(&j);
	} else {
		pr_info("fn %u: port %s (ifindex %u), was ifindex %u", fn, port, ifindex, e.ifindex);
	}
	return 0;
}

int cmd_vf_set(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	struct clat_mac_key keys[VF_SET_MAX_MACS], k;
	struct clat_mac_val mv;
	struct clat_fn_policy cur = {};
	struct clat_vct_entry e = {};
	struct vf_set_req r;
	char dir[PATH_MAX], mac[18];
	struct clat_maps m;
	uint16_t key_vlan;
	uint32_t fn = opt_u32(inv, OPT_FN);
	int err, n;

	if (has_opt(inv, OPT_PORT))
		return vf_set_port(inv);
	/* Bad input was refused by the engine, before anything is opened. */
	err = open_attached(pf, inv->opt[OPT_PIN_DIR], dir, sizeof(dir), &m);
	if (err)
		return err;
	bpf_map_lookup_elem(m.vct, &fn, &e);
	if (e.state == CLAT_FN_FREE) {
		pr_err("failed to set fn %u: fn %u is not in use on %s; add it first ('vf add')", fn,
		       fn, pf);
		err = -ENOENT;
		goto out;
	}
	if (bpf_map_lookup_elem(m.fn_policy, &fn, &cur)) {
		err = -errno;
		pr_err("failed to read the policy of fn %u: %s", fn, strerror(-err));
		goto out;
	}
	vf_set_parse(inv, &cur, &r); /* again, on the fn's current policy */
	n = fn_macs(&m, fn, keys, ARRAY_SIZE(keys));
	/* Under a port VLAN every MAC is keyed with it; without one, a new MAC
	 * joins the VLAN the fn's MACs are on. */
	key_vlan = r.p.vlan ? r.p.vlan : (cur.vlan || n == 0) ? 0 : keys[0].vlan;
	err = vf_set_check(&m, fn, &r, keys, n, key_vlan);
	if (err)
		goto out;

	if (r.p.vlan != cur.vlan) {
		err = rekey_macs(&m, fn, keys, n, r.p.vlan);
		if (err) {
			pr_err("failed to move fn %u's MACs to VLAN %u: %s", fn, r.p.vlan,
			       strerror(-err));
			goto out;
		}
	}
	if (r.p.max_rate_mbit != cur.max_rate_mbit)
		policer_reset(&m, fn);
	if (bpf_map_update_elem(m.fn_policy, &fn, &r.p, BPF_ANY)) {
		err = -errno;
		pr_err("failed to write the policy of fn %u: %s", fn, strerror(-err));
		goto out;
	}
	if (r.add) {
		k = (struct clat_mac_key){ .vlan = key_vlan };
		memcpy(k.mac, r.add_mac, 6);
		mv.fn = fn;
		if (bpf_map_update_elem(m.mac_fn, &k, &mv, BPF_ANY)) {
			err = -errno;
			pr_err("failed to add MAC %s to fn %u: %s", inv->opt[OPT_ADD_MAC], fn,
			       strerror(-err));
			goto out;
		}
	}
	if (r.del) {
		n = fn_macs(&m, fn, keys, ARRAY_SIZE(keys));
		for (int i = 0; i < n; i++)
			if (!memcmp(keys[i].mac, r.del_mac, 6))
				bpf_map_delete_elem(m.mac_fn, &keys[i]);
	}

	n = fn_macs(&m, fn, keys, ARRAY_SIZE(keys));
	if (has_opt(inv, OPT_JSON)) {
		struct json j;

		json_init(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "pf", pf);
		json_u64(&j, "fn", fn);
		json_policy(&j, &r.p, pf);
		json_arr_open(&j, "macs");
		for (int i = 0; i < n; i++) {
			json_obj_open(&j, NULL);
			json_mac(&j, "mac", keys[i].mac);
			json_u64(&j, "vlan", keys[i].vlan);
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_obj_close(&j);
		json_end(&j);
	} else {
		pr_info("fn %u: vlan %u spoofchk %s trust %s state %s max-rate %u Mbit/s, %d MAC%s", fn,
			r.p.vlan, r.p.spoofchk ? "on" : "off", r.p.trust ? "on" : "off",
			link_state_name(r.p.link_state), r.p.max_rate_mbit, n, n == 1 ? "" : "s");
		for (int i = 0; i < n; i++) {
			format_mac(keys[i].mac, mac);
			pr_info("  %s vlan %u", mac, keys[i].vlan);
		}
	}
out:
	maps_close(&m);
	return err;
}
