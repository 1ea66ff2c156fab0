/* SPDX-License-Identifier: GPL-2.0 */
/* What status/stats share with metrics (status.c): counters and the
 * programs pinned as links. */
#ifndef CLAT_STATUS_H
#define CLAT_STATUS_H

#include <stdint.h>

struct clat_stats;
extern const char *const stat_names[]; /* by enum clat_stat */
int read_stats(int fd, uint32_t key, struct clat_stats *sum);
uint32_t verified_insns(uint32_t prog_id);
struct prog_link {
	char prog[16];  /* clat_rx, clat_tx, clat_flood_tc */
	char dev[16];   /* IF_NAMESIZE; "-" if gone */
	uint32_t ifindex, prog_id, verified_insns;
};
/* The programs pinned as links in dir: up to max, their number or -errno. */
int prog_links(const char *dir, struct prog_link *out, int max);

#endif
