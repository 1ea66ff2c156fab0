/* SPDX-License-Identifier: GPL-2.0 */
/* The subcommand table: one entry per command generates its usage text,
 * its --help and its option parsing. */
#ifndef CLAT_CLI_H
#define CLAT_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "cmdline.h"
#include <stdint.h>

enum opt_id {
	OPT_NONE = 0, /* terminates a command's option list */
	OPT_JSON,
	OPT_MODE,
	OPT_PIN_DIR,
	OPT_FN,
	OPT_MAC,
	OPT_VLAN,
	OPT_IFINDEX,
	OPT_DEV,
	OPT_UNKNOWN_UNICAST,
	OPT_MEM,
	OPT_BAT_GPA,
	OPT_TIMEOUT,
	OPT_SVC,
	OPT_CTX_SIZE,
	OPT_BLOCK_SIZE,
	OPT_LEVELS,
	OPT_CLAT_ENTRIES,
	OPT_CONNECT,
	OPT_INTERVAL,
	OPT_TEST_ACTIONS,
	OPT_TO_FN,
	OPT_VM_NETNS,
	OPT_SRC_NETNS,
	OPT_DST_NETNS,
	OPT_DST_MEM,
	OPT_SRC_PIN_DIR,
	OPT_DST_PIN_DIR,
	OPT_ROUNDS,
	OPT_DELTA,
	OPT_ABORT,
	OPT_OBJ,
	OPT_RESYNC_MS,
	OPT_POOL_CONTEXTS,
	OPT_FORCE,
	OPT_SPOOFCHK,
	OPT_TRUST,
	OPT_STATE,
	OPT_MAX_RATE,
	OPT_ADD_MAC,
	OPT_DEL_MAC,
	OPT_LISTEN,
	OPT_SRC_QMP,
	OPT_DST_QMP,
	OPT_URI,
	OPT_CHANNEL,
	OPT_SHARED,
	OPT_PORT,
	OPT_DOWNTIME_LIMIT,
	OPT_RECOVER,
	OPT_TO,
	OPT_CHAN_LISTEN,
	OPT_WAIT,
	OPT_PF,
	OPT_DEV_CHANNEL,
	OPT_DEST_XML,
	OPT_MIGRATE_URI,
	OPT_LISTEN_ADDRESS,
	OPT_CHANNEL_TIMEOUT,
	OPT__MAX,
};

/* vf set --max-rate's bound: 400 Gbit/s. */
#define CLAT_MAX_RATE_MBIT 400000

_Static_assert(OPT__MAX <= CMD_MAX_OPT_IDS, "too many option ids");

int cmd_attach(const struct invocation *inv);
int cmd_detach(const struct invocation *inv);
int cmd_status(const struct invocation *inv);
int cmd_stats(const struct invocation *inv);
int cmd_vf_add(const struct invocation *inv);
int cmd_vf_del(const struct invocation *inv);
int cmd_vf_set(const struct invocation *inv);
int cmd_metrics(const struct invocation *inv);
int cmd_locate(const struct invocation *inv);
int cmd_guest_attach(const struct invocation *inv);
int cmd_guest_sync(const struct invocation *inv);
int cmd_guest_resync(const struct invocation *inv);
int cmd_guest_detach(const struct invocation *inv);
int cmd_ctx_list(const struct invocation *inv);
int cmd_gc(const struct invocation *inv);
int cmd_migrate_out(const struct invocation *inv);
int cmd_migrate_in(const struct invocation *inv);
int cmd_migrate(const struct invocation *inv);
int cmd_qemu_migrate(const struct invocation *inv);
int cmd_upgrade(const struct invocation *inv);
int cmd_libvirt_reconcile(const struct invocation *inv);
int cmd_libvirt_watch(const struct invocation *inv);
int cmd_libvirt_hook_parse(const struct invocation *inv);
int cmd_libvirt_migrate(const struct invocation *inv);

#endif
