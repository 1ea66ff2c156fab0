/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CLAT_PORT_H
#define CLAT_PORT_H

#include <stdint.h>

struct clat_maps;

/* Moves fn's port (any state but FREE) to ifindex on this host: clat_tx is
 * attached there and pinned in dir as link_tx_<ifindex>, then port_fn,
 * vf_ports, flood_ports and the VCT's ifindex point at it, then the old
 * port's port_fn entry and clat_tx link go.  All or nothing: on failure the
 * old port is left as it was.  0 (also when ifindex is already fn's port)
 * or -errno, with a message. */
int port_move(const struct clat_maps *m, const char *dir, uint32_t fn, unsigned int ifindex);

#endif
