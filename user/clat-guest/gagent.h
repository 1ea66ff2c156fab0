/* SPDX-License-Identifier: GPL-2.0 */
/* The guest agent: tells the host where the guest's BAT is, over a
 * virtio-serial port (QEMU's chardev on the host side). */
#ifndef CLAT_GAGENT_H
#define CLAT_GAGENT_H

/* Finds /dev/vportNpM named port_name, then answers request lines until an
 * error: {"req":"bat"} -> {"bat_gpa":"0x..","generation":N,"ntypes":N}
 * (the tables in mem read and validated afresh each time), anything else
 * -> {"error":"..."}.  Returns -errno; messages on stderr. */
int gagent_run(const char *mem, const char *port_name);

#endif
