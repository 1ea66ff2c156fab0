/* SPDX-License-Identifier: GPL-2.0 */
/* What vf add shares with attach (attach.c). */
#ifndef CLAT_ATTACH_H
#define CLAT_ATTACH_H

#include <stdint.h>

#include "maps.h"

/* Install fn and attach clat_tx to its representor (pinned in dir). */
int port_install(const struct clat_maps *m, int prog_tx_fd, uint32_t xdp_flags,
		 const char *dir, uint32_t fn, const uint8_t mac[6], uint16_t vlan,
		 unsigned int ifindex);

#endif
