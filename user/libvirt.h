/* SPDX-License-Identifier: GPL-2.0 */
/* What libvirt.c shares with the libvirt migration orchestrator. */
#ifndef CLAT_LIBVIRT_H
#define CLAT_LIBVIRT_H

#include <stdbool.h>
#include <stdint.h>
#include <libvirt/libvirt.h>

/* libvirt's last error message, never NULL. */
const char *lv_errmsg(void);
/* Connects (errors reported by clat, not printed by libvirt); NULL on failure. */
virConnectPtr lv_open(const char *uri, bool rw);
/* The fn of pf that dom's interface uses (a hostdev VF or an ethernet
 * interface on a fn's port): exactly one, else -ENOENT/-EEXIST (printed). */
int lv_domain_fn(virDomainPtr dom, const char *pf, const char *pin_dir, uint32_t *fn);

#endif
