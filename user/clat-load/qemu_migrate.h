/* SPDX-License-Identifier: GPL-2.0 */
/* clat-load qemu migrate: the orchestrator's state, shared by the forward
 * path (qemu_migrate.c) and --recover (qemu_recover.c). */
#ifndef CLAT_QEMU_MIGRATE_H
#define CLAT_QEMU_MIGRATE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "migrate.h"
#include "qmp.h"
#include "maps.h"

#define QMP_TIMEOUT_MS 10000
#define MIGRATE_TIMEOUT_MS 120000
#define POLL_US 5000

enum phase { PH_CONNECT, PH_SETUP, PH_PRECOPY, PH_STOP, PH_SWITCHOVER, PH_COMMIT, PH_RESUME,
	     PH_RELEASE, PH__MAX };
static const char *const phase_names[PH__MAX] = {
	"connect", "setup", "pre_copy", "device_stop", "switchover", "commit", "resume", "release",
};

struct qm {
	const char *pf, *uri, *port;
	uint32_t fn, old_ifindex;
	unsigned int port_ifindex;
	bool shared, src_was_running;
	bool resumed;                /* the destination guest runs: forward only */
	uint64_t downtime_limit;
	char dir[PATH_MAX];
	struct clat_maps m;
	bool maps_open;
	const char *pin_dir, *chan;
	struct qmp src, dst;
	/* copy mode: the device-state channel's source side */
	struct mig_src ms;
	bool ms_open;
	struct mig_copy_stats rounds[MIG_DEFAULT_ROUNDS + 1], stop;
	unsigned int nrounds;
	struct mig_result res;
	uint64_t ns[PH__MAX];
	uint64_t t_quiesce, t_active, t_paused, t_resumed; /* fn and guest downtime */
	/* query-migrate of the source once completed: QEMU's own figures */
	uint64_t q_total, q_down, q_setup, q_bytes;
	char q_status[32];
};

struct invocation;
uint64_t qm_now_ns(void);
int qm_mig_status(struct qm *qm, struct qmp *q, char *st, size_t len);
void qm_roll_back(struct qm *qm, bool migrating);
int qm_commit_shared(struct qm *qm);

#endif
