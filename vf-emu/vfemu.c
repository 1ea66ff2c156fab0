// SPDX-License-Identifier: GPL-2.0
/* vf-emu library: builds, inspects and tears down an emulated SR-IOV NIC
 * (see vfemu.h for the topology).
 *
 * State is kept only in interface aliases (IFLA_IFALIAS).  Format: the
 * literal "clat-emu", a space, a record type, then space-separated
 * key=value tokens.  Values never contain spaces or '=' because every name
 * that goes into them is restricted to [A-Za-z0-9_.-].  Unknown keys are
 * ignored when parsing, so fields can be added later.
 *
 *   <pf>        "clat-emu pf wire_netns=<ns> wire_port=<if> vm_prefix=<p> numvfs=<N> own_wire=<0|1> vm=<netns|tap>"
 *   <pf>hp      "clat-emu hostport pf=<pf>"
 *   <pf>r<i>    "clat-emu vf pf=<pf> vf=<i> netns=<ns> pci=<0000:bb:dd.f>"
 *   <pf>r<i>    "clat-emu vf pf=<pf> vf=<i> kind=tap mac=<MAC> pci=<0000:bb:dd.f>" (--vm tap)
 *   <spare>     "clat-emu tap pf=<pf> vf=<i> mac=<MAC>"                          (tap add)
 * (a PF alias without vm= is from before taps: netns.)
 *
 * The PF alias is written last during create: it is the commit marker.
 */
#define _GNU_SOURCE
#include "vfemu.h"
#include "netns.h"
#include "nl.h"
#include "tap.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALIAS_TAG "clat-emu"

/* ---- error reporting -------------------------------------------------- */

/* Internal helpers return -errno and describe what they were doing in an
 * errctx; the public entry point prints exactly one line from it. */
struct errctx {
	char what[256];
	char reason[128]; /* overrides strerror() when set */
};

static int fail(struct errctx *e, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct errctx *e, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->what, sizeof(e->what), fmt, ap);
	va_end(ap);
	e->reason[0] = '\0';
	return ret;
}

static int fail_reason(struct errctx *e, int ret, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail_reason(struct errctx *e, int ret, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->what, sizeof(e->what), fmt, ap);
	va_end(ap);
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	return ret;
}

static int report(const struct errctx *e, int ret)
{
	if (ret < 0)
		fprintf(stderr, "vf-emu: failed to %s: %s\n", e->what,
			e->reason[0] ? e->reason : strerror(-ret));
	return ret;
}

/* ---- naming / addressing ---------------------------------------------- */

static int valid_ifname(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n >= 1 && n <= max && netns_valid_name(s);
}

static uint16_t pf_hash(const char *pf)
{
	uint32_t x = 2166136261u; /* FNV-1a 32 */

	for (const unsigned char *p = (const unsigned char *)pf; *p; p++) {
		x ^= *p;
		x *= 16777619u;
	}
	return (uint16_t)((x >> 16) ^ (x & 0xffff));
}

/* fn 0 is the host port <pf>h, fn i+1 is VF i. */
static void fn_mac(const char *pf, int fn, uint8_t mac[6])
{
	uint16_t h = pf_hash(pf);

	mac[0] = 0x02;
	mac[1] = 0xc1;
	mac[2] = h >> 8;
	mac[3] = h & 0xff;
	mac[4] = 0;
	mac[5] = (uint8_t)fn;
}

static void vf_pci(const char *pf, int vf, char *buf, size_t len)
{
	uint16_t h = pf_hash(pf);
	int fn = vf + 1;

	snprintf(buf, len, "0000:%02x:%02x.%u", 0xc0 | (h & 0x0f), fn >> 3, fn & 7);
}

/* Names are length-checked up front (check_names), so truncation cannot
 * happen here; going through vsnprintf keeps -Wformat-truncation quiet. */
static void fmt_name(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fmt_name(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void rep_name(const char *pf, int vf, char buf[IF_NAMESIZE])
{
	fmt_name(buf, IF_NAMESIZE, "%sr%d", pf, vf);
}

static void hostrep_name(const char *pf, char buf[IF_NAMESIZE])
{
	fmt_name(buf, IF_NAMESIZE, "%shp", pf);
}

static void hostdev_name(const char *pf, char buf[IF_NAMESIZE])
{
	fmt_name(buf, IF_NAMESIZE, "%sh", pf);
}

static void vm_ns_name(const char *prefix, int vf, char buf[VFEMU_NETNS_MAX])
{
	fmt_name(buf, VFEMU_NETNS_MAX, "%s%d", prefix, vf);
}

int vfemu_parse_mac(const char *s, uint8_t mac[6])
{
	uint8_t m[6];
	int any = 0;

	for (int i = 0; i < 6; i++) {
		char hex[3];
		char *end;

		if (!s[0] || !s[1] || !strchr("0123456789abcdefABCDEF", s[0]) ||
		    !strchr("0123456789abcdefABCDEF", s[1]))
			return -EINVAL;
		hex[0] = s[0];
		hex[1] = s[1];
		hex[2] = '\0';
		m[i] = (uint8_t)strtoul(hex, &end, 16);
		any |= m[i];
		s += 2;
		if (i < 5 && *s++ != ':')
			return -EINVAL;
	}
	if (*s || !any || (m[0] & 1)) /* trailing junk, all-zero, multicast */
		return -EINVAL;
	memcpy(mac, m, 6);
	return 0;
}

/* ---- alias parsing ---------------------------------------------------- */

/* True if alias is "clat-emu <type>" optionally followed by tokens. */
static int alias_is(const char *alias, const char *type)
{
	size_t tl = strlen(ALIAS_TAG), yl = strlen(type);

	return !strncmp(alias, ALIAS_TAG, tl) && alias[tl] == ' ' &&
	       !strncmp(alias + tl + 1, type, yl) &&
	       (alias[tl + 1 + yl] == ' ' || alias[tl + 1 + yl] == '\0');
}

/* Copy the value of token "key=value" into out; -ENOENT if missing. */
static int alias_get(const char *alias, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	const char *p = alias;

	while ((p = strchr(p, ' '))) {
		const char *end;
		size_t vl;

		p++;
		if (strncmp(p, key, kl) || p[kl] != '=')
			continue;
		p += kl + 1;
		end = strchr(p, ' ');
		vl = end ? (size_t)(end - p) : strlen(p);
		if (vl >= outlen)
			return -ENAMETOOLONG;
		memcpy(out, p, vl);
		out[vl] = '\0';
		return 0;
	}
	return -ENOENT;
}

static int alias_get_int(const char *alias, const char *key, int min, int max, int *out)
{
	char buf[16], *end;
	long v;
	int ret = alias_get(alias, key, buf, sizeof(buf));

	if (ret)
		return ret;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || *end || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* Parsed PF alias. */
struct pf_state {
	char wire_netns[VFEMU_NETNS_MAX];
	char wire_port[IF_NAMESIZE];
	char vm_prefix[VFEMU_NETNS_MAX];
	int numvfs;
	int own_wire;
	int vm_tap;
};

static int parse_pf_alias(const char *alias, struct pf_state *st)
{
	if (!alias_is(alias, "pf"))
		return -ENODEV;
	if (alias_get(alias, "wire_netns", st->wire_netns, sizeof(st->wire_netns)) ||
	    alias_get(alias, "wire_port", st->wire_port, sizeof(st->wire_port)) ||
	    alias_get(alias, "vm_prefix", st->vm_prefix, sizeof(st->vm_prefix)) ||
	    alias_get_int(alias, "numvfs", 1, VFEMU_MAX_VFS, &st->numvfs) ||
	    alias_get_int(alias, "own_wire", 0, 1, &st->own_wire))
		return -EBADMSG;
	char vm[8];
	int ret = alias_get(alias, "vm", vm, sizeof(vm));

	if (ret == -ENOENT)
		strcpy(vm, "netns");
	else if (ret || (strcmp(vm, "netns") && strcmp(vm, "tap")))
		return -EBADMSG;
	st->vm_tap = !strcmp(vm, "tap");
	return 0;
}

/* Look up a PF and its state; -ENODEV if absent, -ENOTTY if it exists but
 * is not a vf-emu PF, -EBADMSG if its alias is corrupt. */
static int load_pf(struct nl *host, const char *pf, struct nl_link *l, struct pf_state *st)
{
	int ret = nl_link_get(host, pf, l);

	if (ret)
		return ret;
	if (!alias_is(l->alias, "pf"))
		return -ENOTTY;
	return parse_pf_alias(l->alias, st);
}

static int load_pf_err(struct nl *host, const char *op, const char *pf,
		       struct nl_link *l, struct pf_state *st, struct errctx *e)
{
	int ret = load_pf(host, pf, l, st);

	if (ret == -ENOTTY)
		return fail_reason(e, -ENODEV, "not a vf-emu PF (no clat-emu alias)",
				   "%s %s", op, pf);
	if (ret == -EBADMSG)
		return fail_reason(e, ret, "corrupt clat-emu alias", "parse state of %s", pf);
	if (ret)
		return fail(e, ret, "find PF %s", pf);
	return 0;
}

/* ---- XDP_PASS program ------------------------------------------------- */

/* A frame XDP-redirected into a veth is dropped unless the receiving peer
 * runs XDP (or GRO), so every far end gets this trivial program. */
static int load_xdp_pass(void)
{
	struct bpf_insn insns[2] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "vfemu_pass", "GPL", insns, 2, NULL);

	return fd < 0 ? (errno ? -errno : fd) : fd;
}

/* ---- create ----------------------------------------------------------- */

struct create {
	const char *pf;
	int numvfs;
	char wire_netns[VFEMU_NETNS_MAX];
	char wire_port[IF_NAMESIZE];
	char vm_prefix[VFEMU_NETNS_MAX];
	int own_wire;
	int vm_tap;
	int prog_fd;
	struct nl host;
	struct errctx err;
	/* Undo log: host-ns veth ends (deleting one removes its peer) and
	 * namespaces we created, undone in reverse order. */
	int nlinks;
	char links[2 + VFEMU_MAX_VFS][IF_NAMESIZE];
	int nns;
	char ns[1 + VFEMU_MAX_VFS][VFEMU_NETNS_MAX];
};

static void rollback(struct create *c)
{
	while (c->nlinks > 0)
		nl_link_del_name(&c->host, c->links[--c->nlinks]);
	while (c->nns > 0)
		netns_del(c->ns[--c->nns]);
}

static int check_absent(struct create *c, const char *name)
{
	struct nl_link l;
	int ret = nl_link_get(&c->host, name, &l);

	if (ret == 0)
		return fail_reason(&c->err, -EEXIST, "interface already exists",
				   "create %s: %s", c->pf, name);
	if (ret != -ENODEV)
		return fail(&c->err, ret, "look up interface %s", name);
	return 0;
}

static int check_names(struct create *c, const struct vfemu_create_opts *o)
{
	const char *pf = c->pf;
	int n;

	if (!valid_ifname(pf, VFEMU_MAX_PF_NAME))
		return fail_reason(&c->err, -EINVAL,
				   "PF name must be 1..12 characters of [A-Za-z0-9_.-]",
				   "create '%s'", pf);
	if (c->numvfs < 1 || c->numvfs > VFEMU_MAX_VFS)
		return fail_reason(&c->err, -EINVAL, "numvfs must be 1..64",
				   "create %s with %d VFs", pf, c->numvfs);

	n = snprintf(c->wire_netns, sizeof(c->wire_netns), "%s", o && o->wire_netns ? o->wire_netns : "");
	if (!n)
		snprintf(c->wire_netns, sizeof(c->wire_netns), "%s-wire", pf);
	if (n >= (int)sizeof(c->wire_netns) || !netns_valid_name(c->wire_netns))
		return fail_reason(&c->err, -EINVAL,
				   "must be 1..63 characters of [A-Za-z0-9_.-]",
				   "use wire netns name '%s'", c->wire_netns);

	n = snprintf(c->wire_port, sizeof(c->wire_port), "%s", o && o->wire_port ? o->wire_port : pf);
	if (n >= (int)sizeof(c->wire_port) || !valid_ifname(c->wire_port, IF_NAMESIZE - 1))
		return fail_reason(&c->err, -EINVAL,
				   "must be 1..15 characters of [A-Za-z0-9_.-]",
				   "use wire port name '%s'", c->wire_port);

	n = snprintf(c->vm_prefix, sizeof(c->vm_prefix), "%s", o && o->vm_netns_prefix ? o->vm_netns_prefix : "");
	if (!n)
		snprintf(c->vm_prefix, sizeof(c->vm_prefix), "%s-vm", pf);
	/* Room for up to two digits of the VF index. */
	if (n > VFEMU_NETNS_MAX - 3 || !netns_valid_name(c->vm_prefix))
		return fail_reason(&c->err, -EINVAL,
				   "must be 1..61 characters of [A-Za-z0-9_.-]",
				   "use VM netns prefix '%s'", c->vm_prefix);
	return 0;
}

/* Refuse up front anything that would collide, so that the common failure
 * modes never need a rollback. */
static int check_free(struct create *c)
{
	char name[VFEMU_NETNS_MAX];
	int ret;

	ret = check_absent(c, c->pf);
	if (!ret) {
		hostrep_name(c->pf, name);
		ret = check_absent(c, name);
	}
	if (!ret) {
		hostdev_name(c->pf, name);
		ret = check_absent(c, name);
	}
	for (int i = 0; !ret && i < c->numvfs; i++) {
		rep_name(c->pf, i, name);
		ret = check_absent(c, name);
	}
	if (ret)
		return ret;
	for (int i = 0; !c->vm_tap && i < c->numvfs; i++) {
		vm_ns_name(c->vm_prefix, i, name);
		if (!strcmp(name, c->wire_netns))
			return fail_reason(&c->err, -EINVAL, "same as the wire netns",
					   "use VM netns %s", name);
		if (netns_exists(name))
			return fail_reason(&c->err, -EEXIST, "netns already exists",
					   "create %s: %s", c->pf, name);
	}
	return 0;
}

/* Create (or adopt) the wire netns and make sure the wire port name is free
 * in it. */
static int setup_wire_ns(struct create *c)
{
	struct nl wire;
	struct nl_link l;
	int ret;

	if (!netns_exists(c->wire_netns)) {
		ret = netns_add(c->wire_netns);
		if (ret == 0) {
			c->own_wire = 1;
			snprintf(c->ns[c->nns++], VFEMU_NETNS_MAX, "%s", c->wire_netns);
		} else if (ret != -EEXIST) {
			return fail(&c->err, ret, "create netns %s", c->wire_netns);
		}
	}
	ret = nl_open(&wire, c->wire_netns);
	if (ret)
		return fail(&c->err, ret, "enter netns %s", c->wire_netns);
	ret = nl_link_get(&wire, c->wire_port, &l);
	nl_close(&wire);
	if (ret == 0)
		return fail_reason(&c->err, -EEXIST, "interface already exists",
				   "create %s: %s in netns %s", c->pf, c->wire_port,
				   c->wire_netns);
	if (ret != -ENODEV)
		return fail(&c->err, ret, "look up %s in netns %s", c->wire_port, c->wire_netns);
	return 0;
}

/* veth <name> (host ns) <-> <peer> (netns peer_ns, or host ns if NULL). */
static int make_veth(struct create *c, const char *name, const uint8_t *mac,
		     const char *peer, const char *peer_ns, const uint8_t *peer_mac)
{
	int nsfd = -1, ret;

	if (peer_ns) {
		nsfd = netns_open(peer_ns);
		if (nsfd < 0)
			return fail(&c->err, nsfd, "open netns %s", peer_ns);
	}
	ret = nl_veth_create(&c->host, name, mac, peer, nsfd, peer_mac);
	if (nsfd >= 0)
		close(nsfd);
	if (ret)
		return fail(&c->err, ret, "create veth %s <-> %s%s%s", name, peer,
			    peer_ns ? " in netns " : "", peer_ns ? peer_ns : "");
	snprintf(c->links[c->nlinks++], IF_NAMESIZE, "%s", name);
	return 0;
}

/* A frame that an XDP program redirects loses the skb's CHECKSUM_PARTIAL
 * state, so the stack must put full checksums in what it sends towards
 * clat, or every TCP segment arrives with a bad checksum.  Software
 * checksums also turn TSO off, which keeps frames within the MTU. */
static int tx_csum_off(void *arg)
{
	struct ethtool_value ev = { .cmd = ETHTOOL_STXCSUM, .data = 0 };
	struct ifreq ifr = { 0 };
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", (const char *)arg);
	ifr.ifr_data = (void *)&ev;
	if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Bring up (and optionally alias / attach XDP to) a link reached via nl. */
static int finish_link(struct create *c, struct nl *nl, const char *name,
		       const char *ns, const char *alias, int xdp)
{
	struct nl_link l;
	const char *in = ns ? " in netns " : "", *nsn = ns ? ns : "";
	int ret;

	ret = nl_link_get(nl, name, &l);
	if (ret)
		return fail(&c->err, ret, "look up %s%s%s", name, in, nsn);
	if (alias) {
		ret = nl_link_set_alias(nl, l.ifindex, alias);
		if (ret)
			return fail(&c->err, ret, "set alias of %s", name);
	}
	if (xdp) {
		ret = nl_link_set_xdp(nl, l.ifindex, c->prog_fd, XDP_FLAGS_DRV_MODE);
		if (ret)
			return fail(&c->err, ret, "attach XDP to %s%s%s", name, in, nsn);
		ret = ns ? netns_run(ns, tx_csum_off, (void *)name) : tx_csum_off((void *)name);
		if (ret)
			return fail(&c->err, ret, "turn off tx checksum offload on %s%s%s", name, in,
				    nsn);
	}
	ret = nl_link_set_up(nl, l.ifindex);
	if (ret)
		return fail(&c->err, ret, "set %s%s%s up", name, in, nsn);
	return 0;
}

static int create_wire(struct create *c)
{
	struct nl wire;
	int ret;

	ret = make_veth(c, c->pf, NULL, c->wire_port, c->wire_netns, NULL);
	if (ret)
		return ret;
	ret = nl_open(&wire, c->wire_netns);
	if (ret)
		return fail(&c->err, ret, "enter netns %s", c->wire_netns);
	/* lo of an adopted wire ns is the owner's business. */
	ret = c->own_wire ? finish_link(c, &wire, "lo", c->wire_netns, NULL, 0) : 0;
	if (!ret)
		ret = finish_link(c, &wire, c->wire_port, c->wire_netns, NULL, 1);
	nl_close(&wire);
	return ret;
}

static int create_host_port(struct create *c)
{
	char rep[IF_NAMESIZE], dev[IF_NAMESIZE], alias[NL_ALIAS_MAX];
	uint8_t mac[6];
	int ret;

	hostrep_name(c->pf, rep);
	hostdev_name(c->pf, dev);
	fn_mac(c->pf, 0, mac);
	ret = make_veth(c, rep, NULL, dev, NULL, mac);
	if (ret)
		return ret;
	ret = finish_link(c, &c->host, dev, NULL, NULL, 1);
	if (ret)
		return ret;
	snprintf(alias, sizeof(alias), ALIAS_TAG " hostport pf=%s", c->pf);
	return finish_link(c, &c->host, rep, NULL, alias, 0);
}

/* VF i of a --vm tap PF: a persistent tap <pf>r<i> for a VMM to open. */
static int create_tap_vf(struct create *c, int i)
{
	char rep[IF_NAMESIZE], pci[16], alias[NL_ALIAS_MAX], macs[18];
	uint8_t mac[6];
	int ret;

	rep_name(c->pf, i, rep);
	vf_pci(c->pf, i, pci, sizeof(pci));
	fn_mac(c->pf, i + 1, mac);
	vfemu_format_mac(mac, macs);
	ret = tap_create(rep);
	if (ret)
		return fail(&c->err, ret, "create tap %s", rep);
	snprintf(c->links[c->nlinks++], IF_NAMESIZE, "%s", rep);
	snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d kind=tap mac=%s pci=%s", c->pf,
		 i, macs, pci);
	return finish_link(c, &c->host, rep, NULL, alias, 0);
}

static int create_vf(struct create *c, int i)
{
	char ns[VFEMU_NETNS_MAX], rep[IF_NAMESIZE], pci[16], alias[NL_ALIAS_MAX];
	struct nl vm;
	uint8_t mac[6];
	int ret;

	vm_ns_name(c->vm_prefix, i, ns);
	rep_name(c->pf, i, rep);
	vf_pci(c->pf, i, pci, sizeof(pci));
	fn_mac(c->pf, i + 1, mac);

	ret = netns_add(ns);
	if (ret)
		return fail(&c->err, ret, "create netns %s", ns);
	snprintf(c->ns[c->nns++], VFEMU_NETNS_MAX, "%s", ns);
	ret = make_veth(c, rep, NULL, "eth0", ns, mac);
	if (ret)
		return ret;

	ret = nl_open(&vm, ns);
	if (ret)
		return fail(&c->err, ret, "enter netns %s", ns);
	ret = finish_link(c, &vm, "lo", ns, NULL, 0);
	if (!ret)
		ret = finish_link(c, &vm, "eth0", ns, NULL, 1);
	nl_close(&vm);
	if (ret)
		return ret;

	snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d netns=%s pci=%s",
		 c->pf, i, ns, pci);
	return finish_link(c, &c->host, rep, NULL, alias, 0);
}

/* The PF alias is the commit record: written last, so a PF without it was
 * never completely created. */
static int commit_pf(struct create *c)
{
	char alias[NL_ALIAS_MAX];

	snprintf(alias, sizeof(alias),
		 ALIAS_TAG " pf wire_netns=%s wire_port=%s vm_prefix=%s numvfs=%d own_wire=%d vm=%s",
		 c->wire_netns, c->wire_port, c->vm_prefix, c->numvfs, c->own_wire,
		 c->vm_tap ? "tap" : "netns");
	return finish_link(c, &c->host, c->pf, NULL, alias, 0);
}

static int do_create(struct create *c, const struct vfemu_create_opts *opts)
{
	int ret;

	ret = check_names(c, opts);
	if (ret)
		return ret;
	ret = nl_open(&c->host, NULL);
	if (ret)
		return fail(&c->err, ret, "open rtnetlink socket");
	ret = check_free(c);
	if (ret)
		return ret;
	c->prog_fd = load_xdp_pass();
	if (c->prog_fd < 0)
		return fail(&c->err, c->prog_fd, "load XDP_PASS program");

	ret = setup_wire_ns(c);
	if (!ret)
		ret = create_wire(c);
	if (!ret)
		ret = create_host_port(c);
	for (int i = 0; !ret && i < c->numvfs; i++)
		ret = c->vm_tap ? create_tap_vf(c, i) : create_vf(c, i);
	if (!ret)
		ret = commit_pf(c);
	if (ret)
		rollback(c);
	return ret;
}

int vfemu_create(const char *pf, int numvfs, const struct vfemu_create_opts *opts)
{
	struct create *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		fprintf(stderr, "vf-emu: failed to allocate memory: %s\n", strerror(ENOMEM));
		return -ENOMEM;
	}
	c->pf = pf;
	c->numvfs = numvfs;
	c->vm_tap = opts && opts->vm_tap;
	c->prog_fd = -1;
	ret = do_create(c, opts);
	if (c->prog_fd >= 0)
		close(c->prog_fd);
	nl_close(&c->host);
	report(&c->err, ret);
	free(c);
	return ret;
}

/* ---- query ------------------------------------------------------------ */

/* Fill the VM-side view of a VF: the VF end is the representor's veth peer,
 * whose ifindex (IFLA_LINK) is valid inside the VM netns. */
static void query_vf_end(struct vfemu_vf *v, int peer_ifindex)
{
	struct nl vm;
	struct nl_link l;
	int ret;

	if (!v->netns[0] || !netns_exists(v->netns) || nl_open(&vm, v->netns)) {
		v->netns[0] = '\0'; /* released / gone */
		return;
	}
	ret = peer_ifindex > 0 ? nl_link_get_index(&vm, peer_ifindex, &l) : -ENODEV;
	if (ret)
		ret = nl_link_get(&vm, "eth0", &l);
	if (!ret && l.has_mac)
		memcpy(v->mac, l.mac, 6);
	nl_close(&vm);
}

static int query_vf(struct nl *host, const char *pf, int i, struct vfemu_vf *v,
		    struct errctx *e)
{
	struct nl_link l;
	char buf[VFEMU_NETNS_MAX];
	int ret;

	memset(v, 0, sizeof(*v));
	v->vf = i;
	v->fn = i + 1;
	rep_name(pf, i, v->rep);
	ret = nl_link_get(host, v->rep, &l);
	if (ret)
		return fail(e, ret, "find representor %s of VF %d", v->rep, i);
	if (alias_is(l.alias, "vf") && !alias_get(l.alias, "kind", buf, sizeof(buf)) &&
	    !strcmp(buf, "tap")) {
		if (alias_get(l.alias, "pf", buf, sizeof(buf)) || strcmp(buf, pf) ||
		    alias_get(l.alias, "mac", buf, sizeof(buf)) || vfemu_parse_mac(buf, v->mac))
			return fail_reason(e, -EBADMSG, "missing or corrupt clat-emu alias",
					   "parse state of %s", v->rep);
		if (alias_get(l.alias, "pci", v->pci, sizeof(v->pci)))
			vf_pci(pf, i, v->pci, sizeof(v->pci));
		v->tap = 1;
		v->rep_ifindex = l.ifindex;
		return 0;
	}
	if (!alias_is(l.alias, "vf") || alias_get(l.alias, "pf", buf, sizeof(buf)) ||
	    strcmp(buf, pf) || alias_get(l.alias, "netns", v->netns, sizeof(v->netns)))
		return fail_reason(e, -EBADMSG, "missing or corrupt clat-emu alias",
				   "parse state of %s", v->rep);
	if (alias_get(l.alias, "pci", v->pci, sizeof(v->pci)))
		vf_pci(pf, i, v->pci, sizeof(v->pci));
	v->rep_ifindex = l.ifindex;
	query_vf_end(v, l.link);
	return 0;
}

static int query_host_port(struct nl *host, struct vfemu_pf *out, struct errctx *e)
{
	struct nl_link l;
	int ret;

	hostrep_name(out->pf, out->host_rep);
	hostdev_name(out->pf, out->host_dev);
	ret = nl_link_get(host, out->host_rep, &l);
	if (ret)
		return fail(e, ret, "find host-port representor %s", out->host_rep);
	out->host_rep_ifindex = l.ifindex;
	ret = nl_link_get(host, out->host_dev, &l);
	if (ret)
		return fail(e, ret, "find host port %s", out->host_dev);
	memcpy(out->host_mac, l.mac, 6);
	return 0;
}

/* Spare taps of a PF: links whose alias is "clat-emu tap pf=<pf> ...". */
struct spare_walk {
	const char *pf;
	struct vfemu_pf *out;
};

static int spare_of(const struct nl_link *l, const char *pf, struct vfemu_tap *t)
{
	char buf[24]; /* a PF name or a MAC */

	if (!alias_is(l->alias, "tap") || alias_get(l->alias, "pf", buf, sizeof(buf)) ||
	    strcmp(buf, pf))
		return 0;
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", l->name);
	t->ifindex = l->ifindex;
	if (alias_get_int(l->alias, "vf", 0, VFEMU_MAX_VFS - 1, &t->vf))
		t->vf = -1;
	if (alias_get(l->alias, "mac", buf, sizeof(buf)) || vfemu_parse_mac(buf, t->mac))
		memset(t->mac, 0, 6);
	return 1;
}

static int collect_spare(const struct nl_link *l, void *data)
{
	struct spare_walk *w = data;
	struct vfemu_tap t;

	if (spare_of(l, w->pf, &t) && w->out->ntaps < VFEMU_MAX_TAPS)
		w->out->taps[w->out->ntaps++] = t;
	return 0;
}

static int do_query(struct nl *host, const char *pf, struct vfemu_pf *out, struct errctx *e)
{
	struct nl_link l;
	struct pf_state st;
	int ret;

	ret = load_pf_err(host, "query", pf, &l, &st, e);
	if (ret)
		return ret;
	snprintf(out->pf, sizeof(out->pf), "%s", pf);
	out->pf_ifindex = l.ifindex;
	snprintf(out->wire_netns, sizeof(out->wire_netns), "%s", st.wire_netns);
	snprintf(out->wire_port, sizeof(out->wire_port), "%s", st.wire_port);
	out->numvfs = st.numvfs;
	out->vm_tap = st.vm_tap;
	ret = query_host_port(host, out, e);
	for (int i = 0; !ret && i < st.numvfs; i++)
		ret = query_vf(host, pf, i, &out->vfs[i], e);
	if (!ret) {
		struct spare_walk w = { .pf = pf, .out = out };

		ret = nl_link_dump(host, collect_spare, &w);
		if (ret)
			fail(e, ret, "list the spare taps of %s", pf);
	}
	return ret;
}

int vfemu_query(const char *pf, struct vfemu_pf *out)
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!valid_ifname(pf, VFEMU_MAX_PF_NAME)) {
		ret = fail_reason(&e, -ENODEV, "not a valid vf-emu PF name", "query '%s'", pf);
		return report(&e, ret);
	}
	ret = nl_open(&host, NULL);
	if (ret)
		return report(&e, fail(&e, ret, "open rtnetlink socket"));
	ret = do_query(&host, pf, out, &e);
	nl_close(&host);
	return report(&e, ret);
}

/* ---- set_mac ---------------------------------------------------------- */

static int do_set_mac(struct nl *host, const char *pf, int vf, const uint8_t mac[6],
		      struct errctx *e)
{
	struct nl_link l;
	struct pf_state st;
	struct vfemu_vf v;
	struct nl vm;
	int ret;

	ret = load_pf_err(host, "set MAC on", pf, &l, &st, e);
	if (ret)
		return ret;
	if (vf < 0 || vf >= st.numvfs) {
		snprintf(e->reason, sizeof(e->reason), "%s has VFs 0..%d", pf, st.numvfs - 1);
		snprintf(e->what, sizeof(e->what), "set MAC of VF %d", vf);
		return -EINVAL;
	}
	ret = query_vf(host, pf, vf, &v, e);
	if (ret)
		return ret;
	if (v.tap) {
		/* The VMM gives the VM's NIC this MAC; the record is all we keep. */
		char alias[NL_ALIAS_MAX], macs[18];

		vfemu_format_mac(mac, macs);
		snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d kind=tap mac=%s pci=%s",
			 pf, vf, macs, v.pci);
		ret = nl_link_set_alias(host, v.rep_ifindex, alias);
		return ret ? fail(e, ret, "record the MAC of VF %d", vf) : 0;
	}
	if (!v.netns[0])
		return fail_reason(e, -ENODEV, "its VM netns is gone", "set MAC of VF %d", vf);
	ret = nl_open(&vm, v.netns);
	if (ret)
		return fail(e, ret, "enter netns %s", v.netns);
	ret = nl_link_get(&vm, "eth0", &l);
	if (!ret)
		ret = nl_link_set_mac(&vm, l.ifindex, mac);
	nl_close(&vm);
	if (ret)
		return fail(e, ret, "set MAC of VF %d (eth0 in netns %s)", vf, v.netns);
	return 0;
}

/* The entry points that act on an existing PF: a name that cannot be a
 * vf-emu PF is refused, then rtnetlink in the caller's namespace. */
static int host_open(const char *pf, struct nl *host, struct errctx *e)
{
	int ret;

	if (!valid_ifname(pf, VFEMU_MAX_PF_NAME))
		return fail_reason(e, -ENODEV, "not a valid vf-emu PF name", "use '%s'", pf);
	ret = nl_open(host, NULL);
	return ret ? fail(e, ret, "open rtnetlink socket") : 0;
}

int vfemu_set_mac(const char *pf, int vf, const uint8_t mac[6])
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	if (!mac[0] && !mac[1] && !mac[2] && !mac[3] && !mac[4] && !mac[5])
		return report(&e, fail_reason(&e, -EINVAL, "all-zero address", "set MAC"));
	if (mac[0] & 1)
		return report(&e, fail_reason(&e, -EINVAL, "multicast address", "set MAC"));
	ret = host_open(pf, &host, &e);
	if (ret)
		return report(&e, ret);
	ret = do_set_mac(&host, pf, vf, mac, &e);
	nl_close(&host);
	return report(&e, ret);
}

/* ---- destroy ---------------------------------------------------------- */

static int del_link_if(struct nl *nl, const char *name, const char *type,
		       const char *pf, struct errctx *e)
{
	struct nl_link l;
	char owner[IF_NAMESIZE];
	int ret = nl_link_get(nl, name, &l);

	if (ret == -ENODEV)
		return 0;
	if (ret)
		return fail(e, ret, "look up %s", name);
	/* Only delete what carries our own alias: never someone else's link. */
	if (!alias_is(l.alias, type) || alias_get(l.alias, "pf", owner, sizeof(owner)) ||
	    strcmp(owner, pf))
		return 0;
	ret = nl_link_del(nl, l.ifindex);
	if (ret && ret != -ENODEV)
		return fail(e, ret, "delete %s", name);
	return 0;
}

static int del_ns(const char *ns, struct errctx *e)
{
	int ret = netns_del(ns);

	if (ret && ret != -ENOENT)
		return fail(e, ret, "delete netns %s", ns);
	return 0;
}

static int count_non_lo(const struct nl_link *l, void *data)
{
	if (strcmp(l->name, "lo"))
		++*(int *)data;
	return 0;
}

/* The wire ns goes only if we created it and nothing but lo is left. */
static int del_wire_ns(const struct pf_state *st, struct errctx *e)
{
	struct nl wire;
	int others = 0, ret;

	if (!st->own_wire || !netns_exists(st->wire_netns))
		return 0;
	ret = nl_open(&wire, st->wire_netns);
	if (ret)
		return fail(e, ret, "enter netns %s", st->wire_netns);
	ret = nl_link_dump(&wire, count_non_lo, &others);
	nl_close(&wire);
	if (ret)
		return fail(e, ret, "list links in netns %s", st->wire_netns);
	if (others) {
		fprintf(stderr, "vf-emu: keeping netns %s: %d interface(s) besides lo remain\n",
			st->wire_netns, others);
		return 0;
	}
	return del_ns(st->wire_netns, e);
}

struct spare_list {
	const char *pf;
	int n;
	char names[VFEMU_MAX_VFS * 4][IF_NAMESIZE];
};

static int list_spare(const struct nl_link *l, void *data)
{
	struct spare_list *sl = data;
	struct vfemu_tap t;

	if (spare_of(l, sl->pf, &t) && sl->n < (int)(sizeof(sl->names) / sizeof(sl->names[0])))
		snprintf(sl->names[sl->n++], IF_NAMESIZE, "%s", t.name);
	return 0;
}

/* Every spare tap of pf (collected first: deleting during a dump would
 * disturb it). */
static int del_spares(struct nl *host, const char *pf, struct errctx *e)
{
	struct spare_list *sl = calloc(1, sizeof(*sl));
	int ret;

	if (!sl)
		return fail(e, -ENOMEM, "list the spare taps of %s", pf);
	sl->pf = pf;
	ret = nl_link_dump(host, list_spare, sl);
	if (ret)
		fail(e, ret, "list the spare taps of %s", pf);
	for (int i = 0; !ret && i < sl->n; i++)
		ret = del_link_if(host, sl->names[i], "tap", pf, e);
	free(sl);
	return ret;
}

static int do_destroy(struct nl *host, const char *pf, struct errctx *e)
{
	char name[VFEMU_NETNS_MAX];
	struct nl_link l;
	struct pf_state st;
	int ret, first = 0;

	ret = load_pf(host, pf, &l, &st);
	if (ret == -ENODEV)
		return 0; /* idempotent */
	if (ret)
		return load_pf_err(host, "destroy", pf, &l, &st, e);

	/* VFs first, PF last: the PF alias holds the state, so an interrupted
	 * destroy can be completed by running it again. */
	for (int i = 0; i < st.numvfs; i++) {
		/* Best effort over all VFs; report the first failure. */
		struct errctx tmp;

		rep_name(pf, i, name);
		ret = del_link_if(host, name, "vf", pf, first ? &tmp : e);
		if (ret && !first)
			first = ret;
		if (st.vm_tap)
			continue; /* a tap PF made no VM namespaces: never delete one */
		vm_ns_name(st.vm_prefix, i, name);
		ret = del_ns(name, first ? &tmp : e);
		if (ret && !first)
			first = ret;
	}
	if (!first)
		first = del_spares(host, pf, e);
	if (first)
		return first;
	hostrep_name(pf, name);
	ret = del_link_if(host, name, "hostport", pf, e);
	if (ret)
		return ret;
	ret = nl_link_del(host, l.ifindex); /* also removes the wire port */
	if (ret && ret != -ENODEV)
		return fail(e, ret, "delete %s", pf);
	return del_wire_ns(&st, e);
}

int vfemu_destroy(const char *pf)
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	if (!valid_ifname(pf, VFEMU_MAX_PF_NAME))
		return 0; /* cannot exist as a vf-emu PF */
	ret = nl_open(&host, NULL);
	if (ret)
		return report(&e, fail(&e, ret, "open rtnetlink socket"));
	ret = do_destroy(&host, pf, &e);
	nl_close(&host);
	return report(&e, ret);
}

/* ---- extras ----------------------------------------------------------- */

int vfemu_exists(const char *pf)
{
	struct nl host;
	struct nl_link l;
	int ret;

	if (!valid_ifname(pf, IF_NAMESIZE - 1))
		return 0;
	ret = nl_open(&host, NULL);
	if (ret)
		return ret;
	ret = nl_link_get(&host, pf, &l);
	nl_close(&host);
	if (ret == -ENODEV)
		return 0;
	return ret ? ret : 1;
}

void vfemu_format_mac(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* ---- assign / release --------------------------------------------------- */

/* Moves VF vf's end from its current netns into target as eth0, re-arms its
 * XDP_PASS program (a netns move detaches it) and records the new home in
 * the representor's alias. */
static int do_move(struct nl *host, const char *pf, int vf, const char *target,
		   struct errctx *e)
{
	char alias[NL_ALIAS_MAX];
	struct nl from, to;
	struct nl_link rep, l;
	struct pf_state st;
	struct vfemu_vf v;
	int ret, nsfd, prog_fd;

	ret = load_pf_err(host, "move a VF of", pf, &l, &st, e);
	if (ret)
		return ret;
	if (vf < 0 || vf >= st.numvfs)
		return fail_reason(e, -EINVAL, "no such VF", "move VF %d of %s", vf, pf);
	ret = query_vf(host, pf, vf, &v, e);
	if (ret)
		return ret;
	if (v.tap)
		return fail_reason(e, -EOPNOTSUPP, "it is a tap that a VMM opens, not a netns end",
				   "move VF %d of %s", vf, pf);
	if (!v.netns[0])
		return fail_reason(e, -ENODEV, "its namespace is gone", "move VF %d", vf);
	if (!strcmp(v.netns, target))
		return 0; /* already there */
	if (!netns_valid_name(target) || !netns_exists(target))
		return fail_reason(e, -ENOENT, "no such network namespace", "move VF %d to %s",
				   vf, target);
	ret = nl_open(&to, target);
	if (ret)
		return fail(e, ret, "enter netns %s", target);
	if (nl_link_get(&to, "eth0", &l) == 0) {
		nl_close(&to);
		return fail_reason(e, -EEXIST, "it already has an eth0", "move VF %d to %s", vf,
				   target);
	}
	ret = nl_open(&from, v.netns);
	if (ret) {
		nl_close(&to);
		return fail(e, ret, "enter netns %s", v.netns);
	}
	nsfd = netns_open(target);
	ret = nsfd < 0 ? nsfd : nl_link_get(&from, "eth0", &l);
	if (!ret)
		ret = nl_link_set_netns(&from, l.ifindex, nsfd, "eth0");
	if (nsfd >= 0)
		close(nsfd);
	nl_close(&from);
	if (ret) {
		nl_close(&to);
		return fail(e, ret, "move VF %d's end from %s to %s", vf, v.netns, target);
	}
	prog_fd = load_xdp_pass();
	ret = prog_fd < 0 ? prog_fd : nl_link_get(&to, "eth0", &l);
	if (!ret)
		ret = nl_link_set_xdp(&to, l.ifindex, prog_fd, XDP_FLAGS_DRV_MODE);
	if (!ret)
		ret = nl_link_set_up(&to, l.ifindex);
	if (prog_fd >= 0)
		close(prog_fd);
	nl_close(&to);
	if (ret)
		return fail(e, ret, "bring up VF %d's end in %s", vf, target);
	snprintf(alias, sizeof(alias), ALIAS_TAG " vf pf=%s vf=%d netns=%s pci=%s", pf, vf,
		 target, v.pci);
	ret = nl_link_get(host, v.rep, &rep);
	if (!ret)
		ret = nl_link_set_alias(host, rep.ifindex, alias);
	return ret ? fail(e, ret, "record VF %d's namespace", vf) : 0;
}

static int move_vf(const char *pf, int vf, const char *target)
{
	struct errctx e = { 0 };
	char home[VFEMU_NETNS_MAX];
	struct nl_link l;
	struct pf_state st;
	struct nl host;
	int ret;

	ret = nl_open(&host, NULL);
	if (ret)
		return report(&e, fail(&e, ret, "open rtnetlink socket"));
	if (!target) {
		ret = load_pf_err(&host, "release a VF of", pf, &l, &st, &e);
		if (!ret && st.vm_tap)
			ret = fail_reason(&e, -EOPNOTSUPP, "its VFs are taps that a VMM opens",
					  "release a VF of %s", pf);
		vm_ns_name(st.vm_prefix, vf, home);
		target = home;
	}
	if (!ret)
		ret = do_move(&host, pf, vf, target, &e);
	nl_close(&host);
	return report(&e, ret);
}

int vfemu_assign(const char *pf, int vf, const char *netns)
{
	return move_vf(pf, vf, netns);
}

int vfemu_release(const char *pf, int vf)
{
	return move_vf(pf, vf, NULL);
}

/* ---- spare taps ------------------------------------------------------- */

static int do_tap_add(struct nl *host, const char *pf, int vf, const char *name,
		      struct errctx *e)
{
	char alias[NL_ALIAS_MAX], macs[18];
	struct nl_link l;
	struct pf_state st;
	struct vfemu_vf v;
	int ret;

	ret = load_pf_err(host, "add a tap to", pf, &l, &st, e);
	if (ret)
		return ret;
	if (vf < 0 || vf >= st.numvfs)
		return fail_reason(e, -EINVAL, "no such VF", "add a tap for VF %d of %s", vf, pf);
	if (!valid_ifname(name, IF_NAMESIZE - 1))
		return fail_reason(e, -EINVAL, "must be 1..15 characters of [A-Za-z0-9_.-]",
				   "use tap name '%s'", name);
	ret = query_vf(host, pf, vf, &v, e);
	if (ret)
		return ret;
	ret = nl_link_get(host, name, &l);
	if (ret == 0)
		return fail_reason(e, -EEXIST, "interface already exists", "add tap %s", name);
	if (ret != -ENODEV)
		return fail(e, ret, "look up interface %s", name);
	ret = tap_create(name);
	if (ret)
		return fail(e, ret, "create tap %s", name);
	vfemu_format_mac(v.mac, macs);
	snprintf(alias, sizeof(alias), ALIAS_TAG " tap pf=%s vf=%d mac=%s", pf, vf, macs);
	ret = nl_link_get(host, name, &l);
	if (!ret)
		ret = nl_link_set_alias(host, l.ifindex, alias);
	if (!ret)
		ret = nl_link_set_up(host, l.ifindex);
	if (ret) {
		nl_link_del_name(host, name);
		return fail(e, ret, "set up tap %s", name);
	}
	return 0;
}

int vfemu_tap_add(const char *pf, int vf, const char *name)
{
	struct errctx e = { 0 };
	struct nl host;
	int ret;

	ret = host_open(pf, &host, &e);
	if (ret)
		return report(&e, ret);
	ret = do_tap_add(&host, pf, vf, name, &e);
	nl_close(&host);
	return report(&e, ret);
}

int vfemu_tap_del(const char *pf, const char *name)
{
	struct errctx e = { 0 };
	struct vfemu_tap t;
	struct nl_link l;
	struct nl host;
	int ret;

	if (!valid_ifname(pf, VFEMU_MAX_PF_NAME) || !valid_ifname(name, IF_NAMESIZE - 1))
		return report(&e, fail_reason(&e, -EINVAL, "not a valid interface name",
					      "delete tap '%s' of '%s'", name, pf));
	ret = nl_open(&host, NULL);
	if (ret)
		return report(&e, fail(&e, ret, "open rtnetlink socket"));
	ret = nl_link_get(&host, name, &l);
	if (ret == -ENODEV)
		ret = 0; /* already gone */
	else if (ret)
		fail(&e, ret, "look up %s", name);
	else if (!spare_of(&l, pf, &t))
		ret = fail_reason(&e, -EPERM, "it is not a spare tap of that PF (no clat-emu tap alias)",
				  "delete %s", name);
	else if ((ret = nl_link_del(&host, l.ifindex)) && ret != -ENODEV)
		fail(&e, ret, "delete tap %s", name);
	else
		ret = 0;
	nl_close(&host);
	return report(&e, ret);
}
