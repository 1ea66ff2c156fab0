/* SPDX-License-Identifier: GPL-2.0 */
/* The VMM's part of a live migration between two emulated hosts, for
 * `clat-load migrate` and the tests: what QEMU does for a real VM (moves
 * it, copies its RAM, announces it) done to an emulated one, a network
 * namespace holding its NIC (eth0) on a vf-emu VF, with a file as its RAM.
 * clat-load's own migration code is what a real host runs; this is only
 * the part a real host's VMM plays.
 *
 * All functions return 0 or -errno and print nothing. */
#ifndef VFEMU_VMM_H
#define VFEMU_VMM_H

#include <stddef.h>
#include <stdint.h>

#include "nl.h"

#define VMM_MAX_ADDRS 16

/* The emulated VM: the netns holding its NIC, the NIC's MAC, and its
 * addresses (read by vmm_move_vm: a VF end's moves drop them). */
struct vmm_vm {
	const char *netns;
	uint8_t mac[6];
	struct nl_addr addrs[VMM_MAX_ADDRS];
	int naddrs;
};

/* A host's VF: PF name, VF index, and the netns the host's PF lives in
 * (NULL: the caller's). */
struct vmm_port {
	const char *pf;
	int vf;
	const char *host_netns;
};

/* The VM leaves VF `from` and lands on VF `to` with the same MAC (set on
 * `to` first) and the same addresses. */
int vmm_move_vm(struct vmm_vm *vm, const struct vmm_port *from, const struct vmm_port *to);
/* One gratuitous ARP request per IPv4 address of the VM, from its NIC, as
 * QEMU sends after a migration, so the switch learns the VM's new port. */
int vmm_announce(const struct vmm_vm *vm);
/* Guest RAM from file `from` to file `to`: with blocks NULL a full copy
 * that keeps holes (sparse stays sparse); else only the n blocks of
 * block_size bytes at the given offsets, into the existing copy. */
int vmm_copy_ram(const char *from, const char *to, const uint64_t *blocks, size_t n,
		 uint64_t block_size);

#endif
