/* SPDX-License-Identifier: GPL-2.0 */
/* Live migration, the destination's phases (the source's: migsrc.h): open,
 * prepare from guest RAM while nothing is visible, then commit in one step;
 * or serve a device-state channel that does all three at COMMIT. */
#ifndef CLAT_MIGDST_H
#define CLAT_MIGDST_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"
#include "gtables.h"
#include "maps.h"
#include "migsrc.h"
#include "shadow.h"
#include "writeback.h"

struct mig_dst {
	char dir[PATH_MAX];
	char mem[PATH_MAX];
	struct clat_maps m;
	bool maps_open;
	uint32_t fn;
	struct clat_vct_entry vct;
	struct gmem_id id;
	struct gmem g;
	struct gtables t;
	struct shadow_stage st;
	bool opened, loaded, built;
};

/* Checks that fn on pf can take a migration into mem (a port, no tables
 * yet, mem used by no other fn) and clears a killed run's leftovers.
 * Nothing is visible afterwards. */
int mig_dst_open(struct mig_dst *d, const char *pf, const char *pin_dir, uint32_t fn,
		 const char *mem);
/* Validates the tables at bat_gpa and stages every map from guest RAM,
 * invisible to the datapath. */
int mig_dst_prepare(struct mig_dst *d, uint64_t bat_gpa);
/* Re-reads the listed blocks, then switches in one step: tables live,
 * VCT[fn] ACTIVE, the MAC mapped to fn last.  All or nothing. */
int mig_dst_commit(struct mig_dst *d, const uint8_t mac[6], const struct gpa_list *delta,
		   uint64_t *reloaded);
void mig_dst_close(struct mig_dst *d);

/* migrate-in --listen: accepts one source on chan, keeps its blocks,
 * and on COMMIT writes them into guest RAM, prepares and commits; DONE
 * carries the result.  Anything else before COMMIT discards everything.
 * r gets the stats; json (may be NULL) the report. */
struct json;
int mig_dst_serve(struct mig_dst *d, const char *chan, int wait_ms, const uint8_t mac[6],
		  struct mig_result *r, struct json *j);

/* The destination's steps at COMMIT (ns): load, write, build, switch. */
void mig_json_steps(struct json *j, const char *key, const struct mig_result *r);

#endif
