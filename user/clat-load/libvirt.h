/* SPDX-License-Identifier: GPL-2.0 */
/* What libvirt.c's reconcile shares with the watch (lvwatch.c). */
#ifndef CLAT_LIBVIRT_H
#define CLAT_LIBVIRT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "clat_abi.h"
#include <libvirt/libvirt.h>

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
