/* SPDX-License-Identifier: GPL-2.0 */
#ifndef CLAT_PORTMOVE_H
#define CLAT_PORTMOVE_H

#include <stdint.h>

struct clat_maps;

/* Moves fn's port to ifindex (clat_tx there, port_fn, VCT.ifindex, and
 * vf_ports/flood_ports if fn is ACTIVE), then drops the old port's link and
 * port_fn entry.  The fn keeps its state.  Idempotent: a rerun after a kill
 * finishes the move. */
int port_move(const struct clat_maps *m, const char *dir, uint32_t fn, unsigned int ifindex);
/* VCT[fn].state, with vf_ports and flood_ports to match (a QUIESCED fn has
 * neither, an ACTIVE one both, at VCT.ifindex). */
int fn_set_state(const struct clat_maps *m, uint32_t fn, uint32_t state);

#endif
