/* SPDX-License-Identifier: GPL-2.0 */
/* guest attach/detach as functions (guest.c), for the CLI and libvirt.c.
 * They print errors; GUEST_F_QUIET drops the informational lines and
 * GUEST_F_JSON prints the command's JSON on stdout. */
#ifndef CLAT_GUEST_H
#define CLAT_GUEST_H

#include <stdint.h>

enum {
	GUEST_F_JSON = 1 << 0,
	GUEST_F_QUIET = 1 << 1,
	GUEST_F_FORCE = 1 << 2, /* detach even if the write-back fails (warns) */
	/* detach without writing back: the guest's RAM has left this host */
	GUEST_F_NO_WRITEBACK = 1 << 3,
};
int guest_attach_fn(const char *pf, const char *pin_dir_opt, uint32_t fn, const char *mem,
		    uint64_t bat_gpa, unsigned int flags);
int guest_detach_fn(const char *pf, const char *pin_dir_opt, uint32_t fn, unsigned int flags);

#endif
