/* SPDX-License-Identifier: GPL-2.0 */
/* What vf-emu's parts share (vf-emu/pfstate.c): the emulated PF's state as
 * it lives in interface aliases, the names and addresses derived from the
 * PF's name, and the error context every entry point reports from.
 *
 * Alias format: the literal "clat-emu", a space, a record type, then
 * space-separated key=value tokens.  Values never contain spaces or '='
 * because every name that goes into them is restricted to [A-Za-z0-9_.-].
 * Unknown keys are ignored when parsing, so fields can be added later.
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
#ifndef VFEMU_PFSTATE_H
#define VFEMU_PFSTATE_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "nl.h"
#include "vfemu.h"

#define ALIAS_TAG "clat-emu"

/* Internal helpers return -errno and describe what they were doing in an
 * errctx; the public entry point prints exactly one line from it. */
struct errctx {
	char what[256];
	char reason[128]; /* overrides strerror() when set */
};

int ve_fail(struct errctx *e, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int ve_fail_reason(struct errctx *e, int ret, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Prints the one "vf-emu: failed to ..." line of a failed entry point. */
int ve_report(const struct errctx *e, int ret);

/* ---- names and addresses, from the PF's name ---------------------------- */

int ve_valid_ifname(const char *s, size_t max);
uint16_t ve_pf_hash(const char *pf);
/* fn 0 is the host port <pf>h, fn i+1 is VF i. */
void ve_fn_mac(const char *pf, int fn, uint8_t mac[6]);
void ve_vf_pci(const char *pf, int vf, char *buf, size_t len);
void ve_fmt_name(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ve_rep_name(const char *pf, int vf, char buf[IF_NAMESIZE]);
void ve_hostrep_name(const char *pf, char buf[IF_NAMESIZE]);
void ve_hostdev_name(const char *pf, char buf[IF_NAMESIZE]);
void ve_vm_ns_name(const char *prefix, int vf, char buf[VFEMU_NETNS_MAX]);

/* ---- aliases ----------------------------------------------------------- */

/* True if alias is "clat-emu <type>" optionally followed by tokens. */
int ve_alias_is(const char *alias, const char *type);
/* Copy the value of token "key=value" into out; -ENOENT if missing. */
int ve_alias_get(const char *alias, const char *key, char *out, size_t outlen);
int ve_alias_get_int(const char *alias, const char *key, int min, int max, int *out);

/* Parsed PF alias. */
struct pf_state {
	char wire_netns[VFEMU_NETNS_MAX];
	char wire_port[IF_NAMESIZE];
	char vm_prefix[VFEMU_NETNS_MAX];
	int numvfs;
	int own_wire;
	int vm_tap;
};

int ve_parse_pf_alias(const char *alias, struct pf_state *st);
/* Look up a PF and its state; -ENODEV if absent, -ENOTTY if it exists but
 * is not a vf-emu PF, -EBADMSG if its alias is corrupt. */
int ve_load_pf(struct nl *host, const char *pf, struct nl_link *l, struct pf_state *st);
int ve_load_pf_err(struct nl *host, const char *op, const char *pf, struct nl_link *l,
		   struct pf_state *st, struct errctx *e);
/* The entry points that act on an existing PF: a name that cannot be a
 * vf-emu PF is refused, then rtnetlink in the caller's namespace. */
int ve_host_open(const char *pf, struct nl *host, struct errctx *e);

/* VF i of pf as it is now: its representor, its end's netns and MAC. */
int ve_query_vf(struct nl *host, const char *pf, int i, struct vfemu_vf *v, struct errctx *e);

/* True if link l is a spare tap of pf (alias "clat-emu tap pf=<pf> ..."),
 * with its VF and MAC in *t. */
int ve_spare_of(const struct nl_link *l, const char *pf, struct vfemu_tap *t);

/* A frame XDP-redirected into a veth is dropped unless the receiving peer
 * runs XDP (or GRO), so every far end gets this trivial program (an fd). */
int ve_load_xdp_pass(void);

#endif
