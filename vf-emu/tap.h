/* SPDX-License-Identifier: GPL-2.0 */
/* Persistent tap devices: the port a VMM opens for a VF of a real VM. */
#ifndef VFEMU_TAP_H
#define VFEMU_TAP_H

/* Creates tap name in the calling thread's netns through /dev/net/tun
 * (TUNSETIFF, then TUNSETPERSIST so it outlives our fd).  Single queue and
 * no packet info, as QEMU's -netdev tap opens it.  0 or -errno (-EEXIST if
 * an interface of that name exists). */
int tap_create(const char *name);

#endif
