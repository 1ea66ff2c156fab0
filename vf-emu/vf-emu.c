// SPDX-License-Identifier: GPL-2.0
/* vf-emu: command-line front end of the emulated SR-IOV NIC library.
 * Exit codes: 0 ok, 1 runtime failure, 2 usage error.  Logs go to stderr,
 * data to stdout.  Never runs external commands. */
#define _GNU_SOURCE
#include "vfemu.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2

static const char usage_text[] =
	"Usage: vf-emu COMMAND ...\n"
	"  vf-emu create <pf> --numvfs N [--wire-netns NS] [--wire-port NAME]\n"
	"                     [--vm-netns-prefix P] [--vm netns|tap]\n"
	"        build PF <pf> with N (1..64) VFs out of veth pairs and netns; with\n"
	"        --vm tap, VF i is a persistent tap <pf>r<i> that a VMM (QEMU) opens\n"
	"  vf-emu list <pf> [--json]\n"
	"        show the VFs of <pf> (MACs read live from the VM namespaces)\n"
	"  vf-emu set <pf> vf <i> mac <MAC>\n"
	"        set the MAC address of VF <i> (unicast, non-zero)\n"
	"  vf-emu assign <pf> vf <i> netns <NS>\n"
	"        move VF <i>'s end (eth0) into an existing namespace: a VM moves in\n"
	"  vf-emu release <pf> vf <i>\n"
	"        move VF <i>'s end back into its own namespace <pf>-vm<i>\n"
	"  vf-emu tap add <pf> vf <i> <name>\n"
	"        a spare persistent tap <name> for VF <i> (e.g. for the destination\n"
	"        VMM of a hand-over on this host); 'clat-load vf set --port' moves to it\n"
	"  vf-emu tap del <pf> <name>\n"
	"        remove a spare tap of <pf>\n"
	"  vf-emu destroy <pf>\n"
	"        remove everything create built, spare taps too; a no-op if <pf> does\n"
	"        not exist\n"
	"Defaults: wire netns <pf>-wire (created if missing), wire port <pf>,\n"
	"VM netns <pf>-vm<i>.  Must run as root.  -h, --help: this text.\n";

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "vf-emu: %s%s%s\n%s", msg, arg ? ": " : "", arg ? arg : "", usage_text);
	return EXIT_USAGE;
}

static int parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* getopt_long permutes, so after the loop argv[optind..argc) holds the
 * positional arguments wherever they appeared. */
static const struct option no_opts[] = { { NULL, 0, NULL, 0 } };

static int only_positionals(int argc, char **argv)
{
	return getopt_long(argc, argv, "", no_opts, NULL) == -1 ? 0 : -EINVAL;
}

/* ---- create ----------------------------------------------------------- */

static int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "numvfs", required_argument, NULL, 'n' },
		{ "wire-netns", required_argument, NULL, 'w' },
		{ "wire-port", required_argument, NULL, 'p' },
		{ "vm-netns-prefix", required_argument, NULL, 'v' },
		{ "vm", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct vfemu_create_opts o = { 0 };
	int numvfs = 0, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_int(optarg, 1, VFEMU_MAX_VFS, &numvfs))
				return usage_error("--numvfs must be an integer in 1..64", optarg);
			break;
		case 'w':
			o.wire_netns = optarg;
			break;
		case 'p':
			o.wire_port = optarg;
			break;
		case 'v':
			o.vm_netns_prefix = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "tap") && strcmp(optarg, "netns"))
				return usage_error("--vm must be netns or tap", optarg);
			o.vm_tap = !strcmp(optarg, "tap");
			break;
		default:
			return usage_error("invalid option to create", NULL);
		}
	}
	if (argc - optind != 1)
		return usage_error(argc - optind ? "create takes exactly one <pf>" :
				   "create: missing <pf>", NULL);
	if (!numvfs)
		return usage_error("create: missing --numvfs N", NULL);
	return vfemu_create(argv[optind], numvfs, &o) ? 1 : 0;
}

/* ---- list ------------------------------------------------------------- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void list_json(const struct vfemu_pf *p)
{
	char mac[18];

	printf("{\"pf\": ");
	json_str(p->pf);
	printf(", \"wire_netns\": ");
	json_str(p->wire_netns);
	printf(", \"wire_port\": ");
	json_str(p->wire_port);
	vfemu_format_mac(p->host_mac, mac);
	printf(", \"host_port\": {\"fn\": 0, \"rep\": ");
	json_str(p->host_rep);
	printf(", \"rep_ifindex\": %d, \"dev\": ", p->host_rep_ifindex);
	json_str(p->host_dev);
	printf(", \"mac\": ");
	json_str(mac);
	printf("}, \"vm\": \"%s\", \"vfs\": [", p->vm_tap ? "tap" : "netns");
	for (int i = 0; i < p->numvfs; i++) {
		const struct vfemu_vf *v = &p->vfs[i];

		vfemu_format_mac(v->mac, mac);
		printf("%s{\"fn\": %d, \"vf\": %d, \"mac\": ", i ? ", " : "", v->fn, v->vf);
		json_str(mac);
		printf(", \"rep\": ");
		json_str(v->rep);
		printf(", \"rep_ifindex\": %d, \"netns\": ", v->rep_ifindex);
		json_str(v->netns);
		printf(", \"pci\": ");
		json_str(v->pci);
		printf(", \"kind\": \"%s\"}", v->tap ? "tap" : "netns");
	}
	printf("], \"taps\": [");
	for (int i = 0; i < p->ntaps; i++) {
		const struct vfemu_tap *t = &p->taps[i];

		vfemu_format_mac(t->mac, mac);
		printf("%s{\"name\": ", i ? ", " : "");
		json_str(t->name);
		printf(", \"ifindex\": %d, \"vf\": %d, \"mac\": ", t->ifindex, t->vf);
		json_str(mac);
		putchar('}');
	}
	printf("]}\n");
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

static int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct vfemu_pf *p;
	int json = 0, c, ret;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return usage_error("invalid option to list", NULL);
		json = 1;
	}
	if (argc - optind != 1)
		return usage_error(argc - optind ? "list takes exactly one <pf>" :
				   "list: missing <pf>", NULL);
	p = malloc(sizeof(*p));
	if (!p) {
		fprintf(stderr, "vf-emu: failed to allocate memory: %s\n", strerror(ENOMEM));
		return 1;
	}
	ret = vfemu_query(argv[optind], p);
	if (!ret) {
		if (json)
			list_json(p);
		else
			list_table(p);
	}
	free(p);
	return ret ? 1 : 0;
}

/* ---- set -------------------------------------------------------------- */

static int cmd_set(int argc, char **argv)
{
	uint8_t mac[6];
	char **a;
	int vf;

	if (only_positionals(argc, argv))
		return usage_error("invalid option to set", NULL);
	a = argv + optind;
	if (argc - optind != 5 || strcmp(a[1], "vf") || strcmp(a[3], "mac"))
		return usage_error("usage: set <pf> vf <i> mac <MAC>", NULL);
	if (parse_int(a[2], 0, VFEMU_MAX_VFS - 1, &vf))
		return usage_error("VF index must be an integer in 0..63", a[2]);
	if (vfemu_parse_mac(a[4], mac))
		return usage_error("invalid MAC (need xx:xx:xx:xx:xx:xx, unicast, non-zero)", a[4]);
	return vfemu_set_mac(a[0], vf, mac) ? 1 : 0;
}

/* assign <pf> vf <i> netns <NS> | release <pf> vf <i> */
static int cmd_move(int argc, char **argv, bool assign)
{
	char **a;
	int vf;

	if (only_positionals(argc, argv))
		return usage_error("invalid option", NULL);
	a = argv + optind;
	if (argc - optind != (assign ? 5 : 3) || strcmp(a[1], "vf") ||
	    (assign && strcmp(a[3], "netns")))
		return usage_error(assign ? "usage: assign <pf> vf <i> netns <NS>"
					  : "usage: release <pf> vf <i>", NULL);
	if (parse_int(a[2], 0, VFEMU_MAX_VFS - 1, &vf))
		return usage_error("VF index must be an integer in 0..63", a[2]);
	return (assign ? vfemu_assign(a[0], vf, a[4]) : vfemu_release(a[0], vf)) ? 1 : 0;
}

static int cmd_assign(int argc, char **argv)
{
	return cmd_move(argc, argv, true);
}

static int cmd_release(int argc, char **argv)
{
	return cmd_move(argc, argv, false);
}

/* ---- tap add | tap del ------------------------------------------------ */

/* tap add <pf> vf <i> <name> | tap del <pf> <name> */
static int cmd_tap(int argc, char **argv)
{
	char **a;
	int n, vf;

	if (only_positionals(argc, argv))
		return usage_error("invalid option to tap", NULL);
	a = argv + optind;
	n = argc - optind;
	if (n == 5 && !strcmp(a[0], "add") && !strcmp(a[2], "vf")) {
		if (parse_int(a[3], 0, VFEMU_MAX_VFS - 1, &vf))
			return usage_error("VF index must be an integer in 0..63", a[3]);
		return vfemu_tap_add(a[1], vf, a[4]) ? 1 : 0;
	}
	if (n == 3 && !strcmp(a[0], "del"))
		return vfemu_tap_del(a[1], a[2]) ? 1 : 0;
	return usage_error("usage: tap add <pf> vf <i> <name> | tap del <pf> <name>", NULL);
}

/* ---- destroy ---------------------------------------------------------- */

static int cmd_destroy(int argc, char **argv)
{
	const char *pf;
	int ret;

	if (only_positionals(argc, argv))
		return usage_error("invalid option to destroy", NULL);
	if (argc - optind != 1)
		return usage_error(argc - optind ? "destroy takes exactly one <pf>" :
				   "destroy: missing <pf>", NULL);
	pf = argv[optind];
	ret = vfemu_exists(pf);
	if (ret == 0) {
		fprintf(stderr, "vf-emu: %s does not exist, nothing to destroy\n", pf);
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, "vf-emu: failed to look up %s: %s\n", pf, strerror(-ret));
		return 1;
	}
	return vfemu_destroy(pf) ? 1 : 0;
}

/* ---- main ------------------------------------------------------------- */

static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "create", cmd_create },
		{ "list", cmd_list },
		{ "set", cmd_set },
		{ "assign", cmd_assign },
		{ "release", cmd_release },
		{ "tap", cmd_tap },
		{ "destroy", cmd_destroy },
	};

	if (wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "vf-emu: must be run as root\n");
		return 1;
	}
	if (argc < 2)
		return usage_error("missing command", NULL);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			/* Sub-command sees argv[0] = its own name. */
			optind = 1;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	return usage_error("unknown command", argv[1]);
}
