// SPDX-License-Identifier: GPL-2.0
/* vf-emu: command-line front end of the emulated SR-IOV NIC library, a
 * command table over the engine clat-load and clat-guest use (cmdline.h):
 * typed options, --help on every command, --json on every one that prints.
 * Exit codes: 0 ok, 1 runtime failure, 2 usage error.  Logs go to stderr,
 * data to stdout.  Never runs external commands. */
#define _GNU_SOURCE
#include "vfemu.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"
#include "json.h"
#include "log.h"

enum vopt {
	V_NONE = 0,
	V_NUMVFS,
	V_WIRE_NETNS,
	V_WIRE_PORT,
	V_VM_NETNS_PREFIX,
	V_VM,
	V_JSON,
	V__MAX,
};

static const struct opt_def opt_defs[V__MAX] = {
	[V_NUMVFS] = { "numvfs", "N", "number of VFs", U32(1, VFEMU_MAX_VFS) },
	[V_WIRE_NETNS] = { "wire-netns", "NS", "namespace of the wire end (default <pf>-wire, "
			   "created if missing)" },
	[V_WIRE_PORT] = { "wire-port", "NAME", "name of the wire end (default <pf>)", OT_IFNAME },
	[V_VM_NETNS_PREFIX] = { "vm-netns-prefix", "P", "VF i's namespace is P<i> "
				"(default <pf>-vm)" },
	[V_VM] = { "vm", NULL, "what a VF's far end is: a veth end in a namespace (default) or "
		   "a persistent tap <pf>r<i> that a VMM (QEMU) opens", ENUM("netns", "tap") },
	[V_JSON] = { "json", NULL, "print JSON on stdout" },
};

/* ---- Output -------------------------------------------------------------- */

static void list_json(const struct vfemu_pf *p)
{
	struct json j;
	char mac[18];

	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "pf", p->pf);
	json_str(&j, "wire_netns", p->wire_netns);
	json_str(&j, "wire_port", p->wire_port);
	vfemu_format_mac(p->host_mac, mac);
	json_obj_open(&j, "host_port");
	json_u64(&j, "fn", 0);
	json_str(&j, "rep", p->host_rep);
	json_i64(&j, "rep_ifindex", p->host_rep_ifindex);
	json_str(&j, "dev", p->host_dev);
	json_str(&j, "mac", mac);
	json_obj_close(&j);
	json_str(&j, "vm", p->vm_tap ? "tap" : "netns");
	json_arr_open(&j, "vfs");
	for (int i = 0; i < p->numvfs; i++) {
		const struct vfemu_vf *v = &p->vfs[i];

		vfemu_format_mac(v->mac, mac);
		json_obj_open(&j, NULL);
		json_i64(&j, "fn", v->fn);
		json_i64(&j, "vf", v->vf);
		json_str(&j, "mac", mac);
		json_str(&j, "rep", v->rep);
		json_i64(&j, "rep_ifindex", v->rep_ifindex);
		json_str(&j, "netns", v->netns);
		json_str(&j, "pci", v->pci);
		json_str(&j, "kind", v->tap ? "tap" : "netns");
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_arr_open(&j, "taps");
	for (int i = 0; i < p->ntaps; i++) {
		const struct vfemu_tap *t = &p->taps[i];

		vfemu_format_mac(t->mac, mac);
		json_obj_open(&j, NULL);
		json_str(&j, "name", t->name);
		json_i64(&j, "ifindex", t->ifindex);
		json_i64(&j, "vf", t->vf);
		json_str(&j, "mac", mac);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

static void list_table(const struct vfemu_pf *p)
{
	char mac[18];

	printf("%-3s %-3s %-17s %-15s %-11s %-20s %-14s %s\n",
	       "fn", "vf", "mac", "rep", "rep_ifindex", "netns", "pci", "kind");
	for (int i = 0; i < p->numvfs; i++) {
		const struct vfemu_vf *v = &p->vfs[i];

		vfemu_format_mac(v->mac, mac);
		printf("%-3d %-3d %-17s %-15s %-11d %-20s %-14s %s\n", v->fn, v->vf, mac,
		       v->rep, v->rep_ifindex, v->netns[0] ? v->netns : "-", v->pci,
		       v->tap ? "tap" : "netns");
	}
	for (int i = 0; i < p->ntaps; i++) {
		vfemu_format_mac(p->taps[i].mac, mac);
		printf("spare tap %s (ifindex %d) for vf %d, mac %s\n", p->taps[i].name,
		       p->taps[i].ifindex, p->taps[i].vf, mac);
	}
}

/* Prints pf as list does (--json: its object); 0 or -errno. */
static int show_pf(const char *pf, bool json)
{
	struct vfemu_pf *p = malloc(sizeof(*p));
	int ret;

	if (!p) {
		pr_err("failed to allocate memory: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	ret = vfemu_query(pf, p);
	if (!ret)
		(json ? list_json : list_table)(p);
	free(p);
	return ret;
}

/* What a changing command did, with --json: {"pf", "verb", key: val...}. */
static void report(const struct invocation *inv, const char *verb, int vf, const char *key,
		   const char *val)
{
	struct json j;

	if (!has_opt(inv, V_JSON))
		return;
	json_init(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "pf", inv->arg[0]);
	json_str(&j, "done", verb);
	if (vf >= 0)
		json_i64(&j, "vf", vf);
	if (key)
		json_str(&j, key, val);
	json_obj_close(&j);
	json_end(&j);
}

/* ---- Commands ------------------------------------------------------------ */

/* The library's own messages say why; a failure is exit 1. */
static int lib(int ret)
{
	return ret ? (ret < 0 && ret != -EUSAGE ? ret : -EIO) : 0;
}

/* A positional form "<pf> vf <i> ...": its literal words (want[k], "" for
 * a value) at their places, and the VF index <i> in 0..63. */
static int vf_form(const struct invocation *inv, const char *const *want, int *vf)
{
	uint32_t v = 0;
	int err = 0;

	for (int i = 0; want[i] && !err; i++) {
		if (*want[i] && strcmp(inv->arg[i], want[i])) {
			pr_err("%s: expected '%s' where '%s' is: %s %s", inv->cmd->name, want[i],
			       inv->arg[i], inv->cmd->name, inv->cmd->args);
			err = -EUSAGE;
		}
	}
	if (!err)
		err = arg_u32(inv->arg[2], "VF index", 0, VFEMU_MAX_VFS - 1, &v);
	*vf = (int)v;
	return err;
}

static int cmd_create(const struct invocation *inv)
{
	struct vfemu_create_opts o = {
		.wire_netns = opt_str(inv, V_WIRE_NETNS),
		.wire_port = opt_str(inv, V_WIRE_PORT),
		.vm_netns_prefix = opt_str(inv, V_VM_NETNS_PREFIX),
		.vm_tap = opt_u32(inv, V_VM) == 1,
	};
	int ret = lib(vfemu_create(inv->arg[0], (int)opt_u32(inv, V_NUMVFS), &o));

	/* --json: what was built, as list shows it. */
	return !ret && has_opt(inv, V_JSON) ? lib(show_pf(inv->arg[0], true)) : ret;
}

static int cmd_list(const struct invocation *inv)
{
	return lib(show_pf(inv->arg[0], has_opt(inv, V_JSON)));
}

static int cmd_set(const struct invocation *inv)
{
	uint8_t mac[6];
	int vf, err;

	err = vf_form(inv, (const char *const[]){ "", "vf", "", "mac", NULL }, &vf);
	if (!err && vfemu_parse_mac(inv->arg[4], mac)) {
		pr_err("invalid MAC '%s': expected xx:xx:xx:xx:xx:xx, unicast, non-zero",
		       inv->arg[4]);
		err = -EUSAGE;
	}
	err = err ?: lib(vfemu_set_mac(inv->arg[0], vf, mac));
	if (!err)
		report(inv, "set", vf, "mac", inv->arg[4]);
	return err;
}

static int cmd_assign(const struct invocation *inv)
{
	int vf, err = vf_form(inv, (const char *const[]){ "", "vf", "", "netns", NULL }, &vf);

	err = err ?: lib(vfemu_assign(inv->arg[0], vf, inv->arg[4]));
	if (!err)
		report(inv, "assign", vf, "netns", inv->arg[4]);
	return err;
}

static int cmd_release(const struct invocation *inv)
{
	int vf, err = vf_form(inv, (const char *const[]){ "", "vf", NULL }, &vf);

	err = err ?: lib(vfemu_release(inv->arg[0], vf));
	if (!err)
		report(inv, "release", vf, NULL, NULL);
	return err;
}

static int cmd_tap_add(const struct invocation *inv)
{
	int vf, err = vf_form(inv, (const char *const[]){ "", "vf", NULL }, &vf);

	err = err ?: lib(vfemu_tap_add(inv->arg[0], vf, inv->arg[3]));
	if (!err)
		report(inv, "tap add", vf, "tap", inv->arg[3]);
	return err;
}

static int cmd_tap_del(const struct invocation *inv)
{
	int err = lib(vfemu_tap_del(inv->arg[0], inv->arg[1]));

	if (!err)
		report(inv, "tap del", -1, "tap", inv->arg[1]);
	return err;
}

static int cmd_destroy(const struct invocation *inv)
{
	const char *pf = inv->arg[0];
	int ret = vfemu_exists(pf);

	if (ret < 0) {
		pr_err("failed to look up %s: %s", pf, strerror(-ret));
		return ret;
	}
	if (ret == 0)
		pr_info("vf-emu: %s does not exist, nothing to destroy", pf);
	else if (vfemu_destroy(pf))
		return -EIO;
	report(inv, ret ? "destroy" : "nothing", -1, NULL, NULL);
	return 0;
}

static const struct command commands[] = {
	{ "create", cmd_create, "<pf>", 1,
	  { REQ(V_NUMVFS), V_WIRE_NETNS, V_WIRE_PORT, V_VM_NETNS_PREFIX, V_VM, V_JSON },
	  "build PF <pf> with N VFs out of veth pairs and netns; with --vm tap, VF i is a "
	  "persistent tap <pf>r<i> that a VMM (QEMU) opens" },
	{ "list", cmd_list, "<pf>", 1, { V_JSON },
	  "show the VFs of <pf> (MACs read live from the VM namespaces)" },
	{ "set", cmd_set, "<pf> vf <i> mac <MAC>", 5, { V_JSON },
	  "set the MAC address of VF <i> (unicast, non-zero)" },
	{ "assign", cmd_assign, "<pf> vf <i> netns <NS>", 5, { V_JSON },
	  "move VF <i>'s end (eth0) into an existing namespace: a VM moves in" },
	{ "release", cmd_release, "<pf> vf <i>", 3, { V_JSON },
	  "move VF <i>'s end back into its own namespace <pf>-vm<i>" },
	{ "tap add", cmd_tap_add, "<pf> vf <i> <name>", 4, { V_JSON },
	  "a spare persistent tap <name> for VF <i> (e.g. for the destination VMM of a "
	  "hand-over on this host); 'clat-load vf set --port' moves to it" },
	{ "tap del", cmd_tap_del, "<pf> <name>", 2, { V_JSON },
	  "remove a spare tap of <pf>" },
	{ "destroy", cmd_destroy, "<pf>", 1, { V_JSON },
	  "remove everything create built, spare taps too; a no-op if <pf> does not exist" },
};

/* After parsing, so that --help and usage errors need no privileges. */
static int need_root(const struct invocation *inv)
{
	(void)inv;
	if (geteuid() == 0)
		return 0;
	pr_err("must be run as root");
	return -EPERM;
}

static const struct tool vf_emu = {
	.prog = "vf-emu",
	.opts = opt_defs,
	.cmds = commands,
	.ncmds = sizeof(commands) / sizeof(commands[0]),
	.global_flags = "[-v|-q] ",
	.footer = "\nDefaults: wire netns <pf>-wire (created if missing), wire port <pf>,\n"
		  "VM netns <pf>-vm<i>.  Must run as root.\n",
	.prepare = need_root,
};

int main(int argc, char **argv)
{
	return tool_main(&vf_emu, argc - 1, argv + 1);
}
