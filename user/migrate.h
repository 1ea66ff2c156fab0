/* SPDX-License-Identifier: GPL-2.0 */
/* Live migration of a fn's contexts, following VFIO migration v2: the
 * source's phases (migsrc.c) and the destination's (migdst.c).  The
 * commands (migrate.c) and an orchestrator (QEMU, libvirt) call them
 * between the VMM's own steps: none of them assumes anything about when
 * guest RAM moves.  With a device-state channel, every block a write-back
 * round wrote goes to the destination over it; nothing relies on host
 * writes reaching the destination through guest RAM. */
#ifndef CLAT_MIGRATE_H
#define CLAT_MIGRATE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "devstate.h"
#include "shadow.h"

#define MIG_DEFAULT_ROUNDS 5
#define MIG_DIRTY_CONVERGED 8 /* blocks: stop pre-copy once a round copies this few */

uint64_t mig_now_ns(void);

struct mig_copy_stats {
	uint64_t contexts, bytes;  /* written back into the source's guest RAM */
	uint64_t blocks;           /* blocks of those (streamed when there is a channel) */
	uint64_t sent_bytes;       /* on the channel, headers included */
	uint64_t ns;
};

/* What the destination reported in DONE, and the source's own wait. */
struct mig_result {
	int status;                /* 0, or -errno of the destination */
	char msg[DS_MSG_MAX];
	uint64_t live_contexts, blocks, bytes;
	uint64_t write_ns, load_ns, build_ns, switch_ns;
	uint64_t wait_ns;          /* COMMIT sent -> DONE received, on the source */
};

struct mig_src {
	char dir[PATH_MAX];
	struct clat_maps m;
	bool maps_open;
	uint32_t fn;
	struct clat_guest_info gi;
	struct clat_vct_entry vct;
	struct clat_mac_key mac;
	bool have_mac;
	bool resumed;              /* found QUIESCED: a killed run's marks may be lost */
	bool stopped, done, released;
	struct shadow_writeback wb; /* open from the first round on */
	bool wb_open;
	struct devstate ch;         /* fd -1: no channel (blocks stay in guest RAM only) */
	uint32_t round;             /* next BLOCKS round number */
	uint64_t blocks_sent;
	struct gpa_list scratch;
	uint8_t *sendbuf;
};

/* Opens fn on pf and, if chan is not NULL, connects to the destination
 * and sends HELLO.  The fn keeps serving.  -ENOENT, with no message, when
 * fn has no guest tables (s is open: mig_src_abort/close work).  s must
 * be closed with mig_src_close whatever this returns. */
int mig_src_begin(struct mig_src *s, const char *pf, const char *pin_dir, uint32_t fn,
		  const char *chan);
/* One pre-copy round while the fn serves: first = a full write-back
 * (marks cleared), else the blocks dirtied since; streamed. */
int mig_src_round(struct mig_src *s, bool first, struct mig_copy_stats *cs);
/* STOP_COPY: QUIESCE the fn, let in-flight frames finish, write back and
 * stream the final delta, then STOPPED.  cs->ns covers all of it. */
int mig_src_stop(struct mig_src *s, struct mig_copy_stats *cs);
/* COMMIT (the caller says guest RAM has reached the destination), then
 * waits for DONE.  r->status is the destination's verdict; the return
 * value is 0 only when the destination switched.  Without a channel: 0,
 * nothing to do (the blocks are in the source's guest RAM). */
int mig_src_commit(struct mig_src *s, struct mig_result *r);
/* After DONE (or, without a channel, after the stop): the fn goes. */
int mig_src_release(struct mig_src *s);
/* Before DONE: ABORT to the destination (if connected) and the fn ACTIVE
 * again. */
int mig_src_abort(struct mig_src *s);
void mig_src_close(struct mig_src *s);

/* VCT state change with the flood/port bookkeeping that goes with it. */
int mig_src_set_state(struct mig_src *s, uint32_t state);

/* ---- destination ---------------------------------------------------------- */

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

/* ---- shared by the commands (migrate.c, migemu.c) ---------------------------- */

struct invocation;
FILE *mig_report_stream(const struct invocation *inv); /* --json: stdout, else discarded */
void mig_report_close(const struct invocation *inv, FILE *f);
void mig_json_copy(struct json *j, const char *key, const struct mig_copy_stats *cs);
/* The destination's steps at COMMIT (ns): load, write, build, switch. */
void mig_json_steps(struct json *j, const char *key, const struct mig_result *r);
/* The destination's DONE, as the source reports it: key "commit". */
void mig_json_commit(struct json *j, const struct mig_result *r);
/* PRE_COPY: mig_src_round(first), then dirty rounds until one copies at
 * most MIG_DIRTY_CONVERGED blocks or rounds ran; into j's "pre_copy". */
int mig_precopy(struct mig_src *s, unsigned int rounds, struct json *j);

#endif
