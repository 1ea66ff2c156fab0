/* SPDX-License-Identifier: GPL-2.0 */
/* The VCT's one owner.  VCT[fn] (struct clat_vct_entry) is read by the
 * datapath and written only here: each setter is a read-modify-write of its
 * own fields under the PF's VCT lock, so two clat-load processes never write
 * back a field the other changed in between (a resync's generation over a
 * migration's QUIESCE, say, would make a paused fn ACTIVE again).
 *
 * The lock is a lock file, /run/clat/vct-<dev>-<ino>.lock, named after the
 * pin dir's inode (so a renamed or custom pin dir keeps its lock), held for
 * one read and one write and removed on release (lockfile.h).  Maps that are
 * not pinned (test fixtures) need no lock.
 * Every function returns 0 or -errno. */
#ifndef CLAT_VCT_H
#define CLAT_VCT_H

#include <stdint.h>

#include "maps.h"

int vct_get(const struct clat_maps *m, uint32_t fn, struct clat_vct_entry *e);
/* state, with vf_ports and flood_ports to match: a QUIESCED fn is in
 * neither (no frame, no flood), an ACTIVE one in both, at VCT.ifindex. */
int vct_set_state(const struct clat_maps *m, uint32_t fn, uint32_t state);
/* The guest tables the device serves: bat_gpa 0 = none (generation too). */
int vct_set_tables(const struct clat_maps *m, uint32_t fn, uint64_t bat_gpa,
		   uint32_t generation);
int vct_set_generation(const struct clat_maps *m, uint32_t fn, uint32_t generation);
int vct_set_ifindex(const struct clat_maps *m, uint32_t fn, uint32_t ifindex);
/* ACTIVE on port ifindex, keeping any guest tables. */
int vct_activate(const struct clat_maps *m, uint32_t fn, uint32_t ifindex);
/* All zero: the fn is FREE. */
int vct_clear(const struct clat_maps *m, uint32_t fn);

#endif
