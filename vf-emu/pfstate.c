// SPDX-License-Identifier: GPL-2.0
/* vf-emu's shared parts (see pfstate.h): error reports, the names and
 * addresses derived from a PF's name, and the PF's state in its aliases. */
#define _GNU_SOURCE
#include "pfstate.h"
#include "netns.h"

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

/* ---- error reporting -------------------------------------------------- */


int ve_fail(struct errctx *e, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->what, sizeof(e->what), fmt, ap);
	va_end(ap);
	e->reason[0] = '\0';
	return ret;
}

int ve_fail_reason(struct errctx *e, int ret, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->what, sizeof(e->what), fmt, ap);
	va_end(ap);
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	return ret;
}

int ve_report(const struct errctx *e, int ret)
{
	if (ret < 0)
		fprintf(stderr, "vf-emu: failed to %s: %s\n", e->what,
			e->reason[0] ? e->reason : strerror(-ret));
	return ret;
}

/* ---- naming / addressing ---------------------------------------------- */

int ve_valid_ifname(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n >= 1 && n <= max && netns_valid_name(s);
}

uint16_t ve_pf_hash(const char *pf)
{
	uint32_t x = 2166136261u; /* FNV-1a 32 */

	for (const unsigned char *p = (const unsigned char *)pf; *p; p++) {
		x ^= *p;
		x *= 16777619u;
	}
	return (uint16_t)((x >> 16) ^ (x & 0xffff));
}

/* fn 0 is the host port <pf>h, fn i+1 is VF i. */
void ve_fn_mac(const char *pf, int fn, uint8_t mac[6])
{
	uint16_t h = ve_pf_hash(pf);

	mac[0] = 0x02;
	mac[1] = 0xc1;
	mac[2] = h >> 8;
	mac[3] = h & 0xff;
	mac[4] = 0;
	mac[5] = (uint8_t)fn;
}

void ve_vf_pci(const char *pf, int vf, char *buf, size_t len)
{
	uint16_t h = ve_pf_hash(pf);
	int fn = vf + 1;

	snprintf(buf, len, "0000:%02x:%02x.%u", 0xc0 | (h & 0x0f), fn >> 3, fn & 7);
}

/* Names are length-checked up front (check_names), so truncation cannot
 * happen here; going through vsnprintf keeps -Wformat-truncation quiet. */
void ve_fmt_name(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

void ve_rep_name(const char *pf, int vf, char buf[IF_NAMESIZE])
{
	ve_fmt_name(buf, IF_NAMESIZE, "%sr%d", pf, vf);
}

void ve_hostrep_name(const char *pf, char buf[IF_NAMESIZE])
{
	ve_fmt_name(buf, IF_NAMESIZE, "%shp", pf);
}

void ve_hostdev_name(const char *pf, char buf[IF_NAMESIZE])
{
	ve_fmt_name(buf, IF_NAMESIZE, "%sh", pf);
}

void ve_vm_ns_name(const char *prefix, int vf, char buf[VFEMU_NETNS_MAX])
{
	ve_fmt_name(buf, VFEMU_NETNS_MAX, "%s%d", prefix, vf);
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
int ve_alias_is(const char *alias, const char *type)
{
	size_t tl = strlen(ALIAS_TAG), yl = strlen(type);

	return !strncmp(alias, ALIAS_TAG, tl) && alias[tl] == ' ' &&
	       !strncmp(alias + tl + 1, type, yl) &&
	       (alias[tl + 1 + yl] == ' ' || alias[tl + 1 + yl] == '\0');
}

/* Copy the value of token "key=value" into out; -ENOENT if missing. */
int ve_alias_get(const char *alias, const char *key, char *out, size_t outlen)
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

int ve_alias_get_int(const char *alias, const char *key, int min, int max, int *out)
{
	char buf[16], *end;
	long v;
	int ret = ve_alias_get(alias, key, buf, sizeof(buf));

	if (ret)
		return ret;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || *end || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}


int ve_parse_pf_alias(const char *alias, struct pf_state *st)
{
	if (!ve_alias_is(alias, "pf"))
		return -ENODEV;
	if (ve_alias_get(alias, "wire_netns", st->wire_netns, sizeof(st->wire_netns)) ||
	    ve_alias_get(alias, "wire_port", st->wire_port, sizeof(st->wire_port)) ||
	    ve_alias_get(alias, "vm_prefix", st->vm_prefix, sizeof(st->vm_prefix)) ||
	    ve_alias_get_int(alias, "numvfs", 1, VFEMU_MAX_VFS, &st->numvfs) ||
	    ve_alias_get_int(alias, "own_wire", 0, 1, &st->own_wire))
		return -EBADMSG;
	char vm[8];
	int ret = ve_alias_get(alias, "vm", vm, sizeof(vm));

	if (ret == -ENOENT)
		strcpy(vm, "netns");
	else if (ret || (strcmp(vm, "netns") && strcmp(vm, "tap")))
		return -EBADMSG;
	st->vm_tap = !strcmp(vm, "tap");
	return 0;
}

/* Look up a PF and its state; -ENODEV if absent, -ENOTTY if it exists but
 * is not a vf-emu PF, -EBADMSG if its alias is corrupt. */
int ve_load_pf(struct nl *host, const char *pf, struct nl_link *l, struct pf_state *st)
{
	int ret = nl_link_get(host, pf, l);

	if (ret)
		return ret;
	if (!ve_alias_is(l->alias, "pf"))
		return -ENOTTY;
	return ve_parse_pf_alias(l->alias, st);
}

int ve_load_pf_err(struct nl *host, const char *op, const char *pf,
		       struct nl_link *l, struct pf_state *st, struct errctx *e)
{
	int ret = ve_load_pf(host, pf, l, st);

	if (ret == -ENOTTY)
		return ve_fail_reason(e, -ENODEV, "not a vf-emu PF (no clat-emu alias)",
				   "%s %s", op, pf);
	if (ret == -EBADMSG)
		return ve_fail_reason(e, ret, "corrupt clat-emu alias", "parse state of %s", pf);
	if (ret)
		return ve_fail(e, ret, "find PF %s", pf);
	return 0;
}

/* ---- XDP_PASS program ------------------------------------------------- */

/* A frame XDP-redirected into a veth is dropped unless the receiving peer
 * runs XDP (or GRO), so every far end gets this trivial program. */
int ve_load_xdp_pass(void)
{
	struct bpf_insn insns[2] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "vfemu_pass", "GPL", insns, 2, NULL);

	return fd < 0 ? (errno ? -errno : fd) : fd;
}

/* The entry points that act on an existing PF: a name that cannot be a
 * vf-emu PF is refused, then rtnetlink in the caller's namespace. */
int ve_host_open(const char *pf, struct nl *host, struct errctx *e)
{
	int ret;

	if (!ve_valid_ifname(pf, VFEMU_MAX_PF_NAME))
		return ve_fail_reason(e, -ENODEV, "not a valid vf-emu PF name", "use '%s'", pf);
	ret = nl_open(host, NULL);
	return ret ? ve_fail(e, ret, "open rtnetlink socket") : 0;
}
/* ---- extras ----------------------------------------------------------- */

int vfemu_exists(const char *pf)
{
	struct nl host;
	struct nl_link l;
	int ret;

	if (!ve_valid_ifname(pf, IF_NAMESIZE - 1))
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
