/* SPDX-License-Identifier: GPL-2.0 */
/* The host end of the guest agent's channel (clat-guest agent). */
#ifndef CLAT_GCHANNEL_H
#define CLAT_GCHANNEL_H

#include <stddef.h>
#include <stdint.h>

/* Asks the guest agent behind chan ("unix:PATH": QEMU's chardev socket of
 * the virtserialport, QEMU listening) for the BAT GPA: connects, sends
 * {"req":"bat","id":"ID"}, reads bounded lines within timeout_ms, skips
 * answers that do not echo ID (stale ones), and parses its own strictly.  -errno on failure, one message printed, e.g.
 * "failed to query the guest agent on unix:/x.sock: timed out". */
int guest_channel_query(const char *chan, uint64_t *bat_gpa, int timeout_ms);

/* One answer line without its newline, parsed strictly; id gets the
 * echoed request id ("" if none).  -EPROTO with a message in err. */
int guest_channel_parse(const char *line, uint64_t *bat_gpa, uint32_t *generation,
			uint32_t *ntypes, char *id, size_t idlen, char *err, size_t errlen);

#endif
