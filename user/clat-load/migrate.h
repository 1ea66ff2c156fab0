/* SPDX-License-Identifier: GPL-2.0 */
/* What the migration commands (migrate.c, migemu.c) and orchestrators
 * (qemu_migrate.c, libvirt_migrate.c) share, over the library's source
 * (migsrc.h) and destination (migdst.h) phases. */
#ifndef CLAT_MIGRATE_H
#define CLAT_MIGRATE_H

#include <stdio.h>

#include "common.h"
#include "migdst.h"
#include "migsrc.h"

struct invocation;
struct json;
FILE *mig_report_stream(const struct invocation *inv); /* --json: stdout, else discarded */
void mig_report_close(const struct invocation *inv, FILE *f);
void mig_json_copy(struct json *j, const char *key, const struct mig_copy_stats *cs);
/* The destination's DONE, as the source reports it: key "commit". */
void mig_json_commit(struct json *j, const struct mig_result *r);
/* PRE_COPY: mig_src_round(first), then dirty rounds until one copies at
 * most MIG_DIRTY_CONVERGED blocks or rounds ran; into j's "pre_copy". */
int mig_precopy(struct mig_src *s, unsigned int rounds, struct json *j);

#endif
