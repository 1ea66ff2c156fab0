/* SPDX-License-Identifier: GPL-2.0 */
/* A domain as clat sees it: parsed from libvirt's domain XML (interfaces,
 * the <clat:guest> metadata), the PF's PCI address -> fn table, and the
 * libvirt connection helpers; shared by reconcile, watch, hook-parse and
 * the migration orchestrator. */
#ifndef CLAT_LVDOMAIN_H
#define CLAT_LVDOMAIN_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <libvirt/libvirt.h>

#include "clat_abi.h"

#define CLAT_XMLNS "https://clat.dev/xmlns/guest/1"
#define LV_MAX_IFACES 32
#define LV_MAX_XML (16 << 20)

enum meta_state {
	META_NONE, /* no <clat:guest>: the domain's fns get no guest tables */
	META_OK,
	META_BAD,  /* present but unusable: its fns' tables are left alone */
};

struct lv_iface {
	char pci[16]; /* "0000:bb:dd.f", as vf-emu and sysfs spell it; "" for a port */
	char dev[IF_NAMESIZE]; /* <interface type='ethernet'>: the port's name */
	uint8_t mac[6];
	uint16_t vlan;
};

struct lv_domain {
	char name[256];
	bool have_state;   /* from libvirt (not for a hook's XML) */
	int state, reason; /* virDomainGetState */
	bool departed;     /* shut off because it migrated away: its RAM has left */
	enum meta_state meta;
	bool mem_ok;       /* mem holds a clean absolute path (bat-gpa may still be bad) */
	char mem[PATH_MAX];
	uint64_t bat_gpa;
	int nif;
	int nerr; /* interfaces or metadata that could not be used */
	struct lv_iface ifs[LV_MAX_IFACES];
};

struct fn_entry {
	char pci[16];          /* "" for a port known only by its name */
	char dev[IF_NAMESIZE]; /* the fn's port (representor or tap); "" if unknown */
	uint32_t fn;
	unsigned int rep_ifindex; /* vf-emu only; 0 when unknown */
};

struct fn_table {
	int n;
	struct fn_entry e[CLAT_MAX_FN];
};

struct lv_domain;
/* Parses one domain XML (len bytes) into d; -EINVAL if it is not a domain. */
int lv_parse_domain(const char *xml, size_t len, struct lv_domain *d);
/* The PF's VFs by PCI address (sysfs, or vf-emu) and the fns' ports. */
int fn_table_load(const char *pf, const char *pin_dir, struct fn_table *t);
/* The fn an interface of a domain uses, or NULL. */
const struct fn_entry *fn_lookup(const struct fn_table *t, const struct lv_iface *ifc);
/* How an interface is named in messages: its PCI address or its port. */
const char *iface_name(const struct lv_iface *ifc);
/* Every domain of conn (running first, then *ngone that left), parsed; *nerr counts those that could not be. */
int lv_list(virConnectPtr conn, struct lv_domain **out, int *n, int *ngone, int *nerr);
/* Why a domain's fns are left alone now (paused, departed), or NULL. */
const char *held_reason(const struct lv_domain *d);

/* libvirt's last error message, never NULL. */
const char *lv_errmsg(void);
/* Connects (errors reported by clat, not printed by libvirt); NULL on failure. */
virConnectPtr lv_open(const char *uri, bool rw);
/* The fn of pf that dom's interface uses (a hostdev VF or an ethernet
 * interface on a fn's port): exactly one, else -ENOENT/-EEXIST (printed). */
int lv_domain_fn(virDomainPtr dom, const char *pf, const char *pin_dir, uint32_t *fn);

#endif
