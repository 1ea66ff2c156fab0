/* SPDX-License-Identifier: GPL-2.0 */
/* What common.c defines (pin dirs, privileges, links, parsing), the pin
 * names every command agrees on, and the logging every file uses. */
#ifndef CLAT_COMMON_H
#define CLAT_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/types.h>

#include "clat_abi.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CLAT_PIN_BASE "/sys/fs/bpf/clat"

#include "errcode.h" /* EUSAGE: parse_u32 and friends */
#include "log.h" /* pr_err, pr_info: logs go to stderr, data to stdout */

/* Pin names inside a PF's pin dir; one place so every command agrees. */
#define PIN_MAP_MAC_FN   "mac_fn"
#define PIN_MAP_VCT      "vct"
#define PIN_MAP_VF_PORTS "vf_ports"
#define PIN_MAP_PORT_FN  "port_fn"
#define PIN_MAP_STATS    "stats"
#define PIN_MAP_FN_DESC  "fn_desc"
#define PIN_MAP_POOL_CTX "pool_ctx"
#define PIN_MAP_POOL_META "pool_meta"
#define PIN_MAP_POOL_DIRTY "pool_dirty"
#define PIN_MAP_POOL_ALLOC "pool_alloc"
#define PIN_MAP_CLOCK    "pf_clock"
#define PIN_MAP_CLAIM_LOCKS "claim_locks"
#define PIN_MAP_GUESTS   "guests"
#define PIN_MAP_GUEST_TYPES "guest_types"
#define PIN_MAP_FN_POLICY "fn_policy"
#define PIN_MAP_FN_RATE  "fn_rate"
#define PIN_MAP_FLOOD_PORTS "flood_ports"
/* clat_flood, the egress program of every fn's flood_ports entry. */
#define PIN_PROG_FLOOD   "prog_flood"
/* Guest pages the attached tables own (bit per page), for resync. */
#define PIN_OWNED_FMT    "owned_fn%u"
#define PIN_PROG_RX      "prog_rx"
#define PIN_PROG_TX      "prog_tx"
#define PIN_LINK_RX      "link_rx"
#define PIN_LINK_TX_FMT  "link_tx_%u" /* representor ifindex */
/* clat_flood_tc on the TCX ingress of a plain uplink (no vf-emu host port). */
#define PIN_LINK_FLOOD_TC "link_flood_tc"

int require_root(void);
/* CLAT_TEST_STALL=<phase>[:<seconds>]: tests hold a command there to kill it. */
void test_stall(const char *phase);
int ensure_bpffs(void);
int pin_dir_for(const char *pf, const char *override, char *buf, size_t len);
int pin_path(char *buf, size_t len, const char *dir, const char *name);
/* Pin dirs (CLAT_PIN_BASE included) are real directories, owned by root,
 * mode 0700 (a looser mode is fixed), opened without following a link;
 * their parent is root's and, if others may write it, sticky.  Refused
 * with a message otherwise; -ENOENT (no message) when missing. */
struct pin_dir {
	int fd, parent;
	char base[256];
};
int pin_dir_open(const char *dir, bool create, struct pin_dir *pd);
void pin_dir_close(struct pin_dir *pd);
int pin_dir_check(const char *dir);
int remove_pin_dir(const char *dir);
int resolve_ifindex(const char *dev, unsigned int *ifindex);
int parse_mac(const char *s, uint8_t mac[6]);
int attached_xdp_flags(unsigned int ifindex, uint32_t *flags);
void format_mac(const uint8_t mac[6], char buf[18]);

/* XDP links: attach prog to ifindex in mode, pin as name; returns 0 or -errno. */
int xdp_link_pin(int prog_fd, unsigned int ifindex, uint32_t xdp_flags, const char *dir,
		 const char *name);
int xdp_link_ifindex(int link_fd, unsigned int *ifindex);
/* TCX ingress link of prog on ifindex, pinned as name; 0 or -errno. */
int tcx_link_pin(int prog_fd, unsigned int ifindex, const char *dir, const char *name);

const char *fn_state_name(uint32_t state);

#endif
