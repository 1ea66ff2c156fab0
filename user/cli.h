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
/* Port policy, for status and vf set (vf.c). */
struct json;
struct clat_fn_policy;
void json_policy(struct json *j, const struct clat_fn_policy *p, const char *pf);
const char *link_state_name(uint32_t s);
const char *pf_operstate(const char *pf, char *buf, size_t len);
/* Shared by status/stats and metrics (status.c). */
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

/* guest attach/detach as functions (guest.c), for the CLI and libvirt.c.
 * They print errors; GUEST_F_QUIET drops the informational lines and
 * GUEST_F_JSON prints the command's JSON on stdout. */
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
/* -EBUSY and *other when a fn other than fn has id's file attached. */
struct clat_maps;
struct gmem_id;
int guest_mem_user(const struct clat_maps *m, uint32_t fn, const struct gmem_id *id,
		   uint32_t *other);

#endif
