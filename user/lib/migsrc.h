/* SPDX-License-Identifier: GPL-2.0 */
/* Live migration of a fn's contexts, following VFIO migration v2: the
 * source's phases (here) and the destination's (migdst.h).  The commands
 * (clat-load's migrate.c) and an orchestrator (QEMU, libvirt) call them
 * between the VMM's own steps: none of them assumes anything about when
 * guest RAM moves.  With a device-state channel, every block a write-back
 * round wrote goes to the destination over it; nothing relies on host
 * writes reaching the destination through guest RAM. */
#ifndef CLAT_MIGSRC_H
#define CLAT_MIGSRC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "devstate.h"
#include "maps.h"
#include "writeback.h"

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

#endif
