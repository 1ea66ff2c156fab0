/* SPDX-License-Identifier: GPL-2.0 */
/* vf-emu: an emulated SR-IOV NIC built from veth pairs and network namespaces.
 *
 * Topology for PF <pf> with N VFs:
 *   host ns:  <pf>          PF uplink (clat_rx attaches here); peer = wire port in the wire ns
 *             <pf>hp        host-port representor, fn 0 (clat_tx); peer = <pf>h
 *             <pf>h         host-stack end of the host port (XDP_PASS attached)
 *             <pf>r<i>      representor of VF i, fn i+1 (clat_tx); peer = VF end
 *   wire ns:  <wire_port>   far end of the PF (XDP_PASS attached)
 *   vm ns i:  eth0          VF end of VF i (XDP_PASS attached, deterministic MAC)
 *
 * With --vm tap (a real VM per VF) there are no VM namespaces: <pf>r<i> is a
 * persistent tap that a VMM opens, the representor and the VF's port at
 * once; the VF's MAC (the one to give the VM's NIC) is kept in its alias.
 * Spare taps for a VF (the destination VMM of a one-host hand-over opens
 * one) are added with vfemu_tap_add and carry their own alias.
 *
 * All state lives in the kernel, in interface aliases (IFLA_IFALIAS), so that
 * nothing can go stale in a file.  This header is shared with clat-load, which
 * discovers the VFs of a vf-emu PF through vfemu_query().
 */
#ifndef VFEMU_H
#define VFEMU_H

#include <net/if.h>
#include <stdint.h>

#define VFEMU_MAX_VFS 64 /* documented maximum of --numvfs */
#define VFEMU_MAX_PF_NAME 12 /* "<pf>r63" must fit in IFNAMSIZ-1 */
#define VFEMU_NETNS_MAX 64

struct vfemu_vf {
	int vf;                     /* VF index, 0-based */
	int fn;                     /* function number = vf + 1 */
	uint8_t mac[6];             /* live MAC of the VF end (read from the VM ns) */
	char rep[IF_NAMESIZE];      /* representor name in the host ns */
	int rep_ifindex;
	char netns[VFEMU_NETNS_MAX];/* VM namespace holding the VF end ("" if released) */
	char pci[16];               /* fake PCI address, "0000:bb:dd.f" */
	int tap;                    /* 1: rep is a tap a VMM opens (mac from its alias) */
};

#define VFEMU_MAX_TAPS 16 /* spare taps listed per PF */

struct vfemu_tap {
	char name[IF_NAMESIZE];
	int ifindex;
	int vf;
	uint8_t mac[6];
};

struct vfemu_pf {
	char pf[IF_NAMESIZE];
	int pf_ifindex;
	char wire_netns[VFEMU_NETNS_MAX];
	char wire_port[IF_NAMESIZE];
	char host_rep[IF_NAMESIZE]; /* fn 0 representor, "<pf>hp" */
	int host_rep_ifindex;
	char host_dev[IF_NAMESIZE]; /* host-stack end, "<pf>h" */
	uint8_t host_mac[6];        /* MAC of <pf>h: the host's own address, fn 0 */
	int numvfs;
	int vm_tap;                 /* created with --vm tap */
	struct vfemu_vf vfs[VFEMU_MAX_VFS];
	int ntaps;                  /* spare taps (vfemu_tap_add), up to VFEMU_MAX_TAPS */
	struct vfemu_tap taps[VFEMU_MAX_TAPS];
};

struct vfemu_create_opts {
	const char *wire_netns;     /* NULL: "<pf>-wire"; created if missing */
	const char *wire_port;      /* NULL: same name as the PF */
	const char *vm_netns_prefix;/* NULL: "<pf>-vm"; VM ns i is "<prefix><i>" */
	int vm_tap;                 /* 1: VF ports are taps for real VMs, no VM netns */
};

/* All functions return 0 or -errno and print nothing on success; on failure
 * they print one "vf-emu: failed to X: <reason>" line to stderr. */
int vfemu_create(const char *pf, int numvfs, const struct vfemu_create_opts *opts);
int vfemu_destroy(const char *pf);                 /* 0 also when pf is absent */
int vfemu_query(const char *pf, struct vfemu_pf *out); /* -ENODEV: not a vf-emu PF */
int vfemu_set_mac(const char *pf, int vf, const uint8_t mac[6]);
int vfemu_parse_mac(const char *s, uint8_t mac[6]); /* -EINVAL unless unicast, non-zero */

/* Additions (print nothing): */
int vfemu_exists(const char *pf);  /* 1: an interface named pf exists, 0: none, or -errno */
void vfemu_format_mac(const uint8_t mac[6], char buf[18]); /* "xx:xx:xx:xx:xx:xx" */

/* Live migration of the emulated VM: move VF i's end (named eth0) out of
 * whatever namespace holds it into netns (assign), or back into the VF's
 * own namespace (release).  The VF end keeps its MAC and XDP_PASS program;
 * IP configuration belongs to the VM and is not carried. */
int vfemu_assign(const char *pf, int vf, const char *netns);
int vfemu_release(const char *pf, int vf);

/* A spare persistent tap for VF vf, named name, in this netns (alias
 * "clat-emu tap pf=<pf> vf=<i> mac=<MAC>"); del removes only such a tap of
 * pf (0 if it is already gone).  vfemu_destroy removes the spares too. */
int vfemu_tap_add(const char *pf, int vf, const char *name);
int vfemu_tap_del(const char *pf, const char *name);

#endif
