/* SPDX-License-Identifier: GPL-2.0 */
/* What libvirt.c shares with the libvirt migration orchestrator. */
#ifndef CLAT_LIBVIRT_H
#define CLAT_LIBVIRT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "clat_abi.h"
#include <libvirt/libvirt.h>

/* libvirt's last error message, never NULL. */
const char *lv_errmsg(void);
/* Connects (errors reported by clat, not printed by libvirt); NULL on failure. */
virConnectPtr lv_open(const char *uri, bool rw);
/* The fn of pf that dom's interface uses (a hostdev VF or an ethernet
 * interface on a fn's port): exactly one, else -ENOENT/-EEXIST (printed). */
int lv_domain_fn(virDomainPtr dom, const char *pf, const char *pin_dir, uint32_t *fn);

/* What libvirt.c's reconcile shares with the watch (lvwatch.c). */
/* What the watch remembers between passes: which domain each fn served,
 * and which fns' domains migrated away (a transient domain that left is
 * gone from libvirt's lists; only its STOPPED_MIGRATED event says so). */
struct lv_track {
	char owner[CLAT_MAX_FN][256];
	bool left[CLAT_MAX_FN];
};

/* One reconcile pass over conn.  Text lines go to out; with as_json one
 * object goes to stdout, reporting event (or none for a plain reconcile);
 * quiet_noop drops the summary line when nothing changed. */
int lv_reconcile_once(virConnectPtr conn, const char *pf, const char *pin_dir, FILE *out,
		      bool as_json, const char *event, bool quiet_noop, struct lv_track *track);
/* The domain name left by migration: its fns' tables go without write-back. */
void lv_track_departed(struct lv_track *tr, const char *name);

#endif
