// SPDX-License-Identifier: GPL-2.0
/* The VMM's part of a live migration between emulated hosts (see vmm.h). */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE */
#include "vmm.h"
#include "netns.h"
#include "vfemu.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
#include <netpacket/packet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the move ------------------------------------------------------------- */

static int keep_addr(const struct nl_addr *a, void *data)
{
	struct vmm_vm *vm = data;

	if (vm->naddrs < VMM_MAX_ADDRS)
		vm->addrs[vm->naddrs++] = *a;
	return 0;
}

static int addrs_get(struct vmm_vm *vm)
{
	struct nl_link l;
	struct nl nl;
	int err = nl_open(&nl, vm->netns);

	if (err)
		return err;
	vm->naddrs = 0;
	err = nl_link_get(&nl, "eth0", &l);
	if (!err)
		err = nl_addr_dump(&nl, l.ifindex, keep_addr, vm);
	nl_close(&nl);
	return err;
}

static int addrs_put(const struct vmm_vm *vm)
{
	struct nl_link l;
	struct nl nl;
	int err = nl_open(&nl, vm->netns), i;

	if (err)
		return err;
	err = nl_link_get(&nl, "eth0", &l);
	for (i = 0; !err && i < vm->naddrs; i++)
		err = nl_addr_add(&nl, l.ifindex, &vm->addrs[i]);
	nl_close(&nl);
	return err;
}

struct port_op {
	const struct vmm_port *p;
	const struct vmm_vm *vm;
};

static int release_cb(void *arg)
{
	const struct port_op *o = arg;

	return vfemu_release(o->p->pf, o->p->vf);
}

static int assign_cb(void *arg)
{
	const struct port_op *o = arg;
	int err = vfemu_set_mac(o->p->pf, o->p->vf, o->vm->mac);

	return err ? err : vfemu_assign(o->p->pf, o->p->vf, o->vm->netns);
}

int vmm_move_vm(struct vmm_vm *vm, const struct vmm_port *from, const struct vmm_port *to)
{
	struct port_op src = { from, vm }, dst = { to, vm };
	int err = addrs_get(vm);

	if (!err)
		err = netns_run_in(from->host_netns, release_cb, &src);
	if (!err)
		err = netns_run_in(to->host_netns, assign_cb, &dst);
	if (!err)
		err = addrs_put(vm);
	return err;
}

/* ---- the announcement ----------------------------------------------------- */

struct garp {
	struct ether_header eh;
	struct ether_arp arp;
};
_Static_assert(sizeof(struct garp) == ETH_HLEN + 28, "gratuitous ARP frame layout");

static int announce_cb(void *arg)
{
	const struct vmm_vm *vm = arg;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
				   .sll_halen = ETH_ALEN };
	struct garp f;
	int fd, i, err = 0;

	sll.sll_ifindex = (int)if_nametoindex("eth0");
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (fd < 0 || !sll.sll_ifindex) {
		err = -errno;
		goto out;
	}
	memset(sll.sll_addr, 0xff, ETH_ALEN);
	for (i = 0; i < vm->naddrs; i++) {
		if (vm->addrs[i].family != AF_INET)
			continue;
		memset(&f, 0, sizeof(f));
		memset(f.eh.ether_dhost, 0xff, ETH_ALEN);
		memcpy(f.eh.ether_shost, vm->mac, ETH_ALEN);
		f.eh.ether_type = htons(ETHERTYPE_ARP);
		f.arp.arp_hrd = htons(ARPHRD_ETHER);
		f.arp.arp_pro = htons(ETHERTYPE_IP);
		f.arp.arp_hln = ETH_ALEN;
		f.arp.arp_pln = 4;
		f.arp.arp_op = htons(ARPOP_REQUEST);
		memcpy(f.arp.arp_sha, vm->mac, ETH_ALEN);
		/* Gratuitous: sender and target are the VM's own address. */
		memcpy(f.arp.arp_spa, vm->addrs[i].addr, 4);
		memcpy(f.arp.arp_tpa, vm->addrs[i].addr, 4);
		if (sendto(fd, &f, sizeof(f), 0, (struct sockaddr *)&sll, sizeof(sll)) < 0)
			err = -errno;
	}
out:
	if (fd >= 0)
		close(fd);
	return err;
}

int vmm_announce(const struct vmm_vm *vm)
{
	return netns_run(vm->netns, announce_cb, (void *)vm);
}

/* ---- guest RAM ------------------------------------------------------------ */

/* Data extents only, so a sparse RAM file stays sparse. */
static int copy_sparse(int in, int out, char *buf, size_t bufsz)
{
	off_t size = lseek(in, 0, SEEK_END), pos, hole;
	ssize_t n;

	if (size < 0 || ftruncate(out, size) < 0)
		return -errno;
	for (pos = lseek(in, 0, SEEK_DATA); pos < size;) {
		if (pos < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
		hole = lseek(in, pos, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		for (; pos < hole; pos += n) {
			n = pread(in, buf, (size_t)(hole - pos) < bufsz ? (size_t)(hole - pos) : bufsz,
				  pos);
			if (n <= 0 || pwrite(out, buf, (size_t)n, pos) != n)
				return n < 0 ? -errno : -EIO;
		}
		pos = lseek(in, hole, SEEK_DATA);
	}
	return 0;
}

int vmm_copy_ram(const char *from, const char *to, const uint64_t *blocks, size_t n,
		 uint64_t block_size)
{
	static char buf[1 << 20];
	int in, out, err = 0;
	size_t i;

	if (blocks && (!block_size || block_size > sizeof(buf)))
		return -EINVAL;
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_CLOEXEC | (blocks ? 0 : O_TRUNC), 0600);
	if (out < 0) {
		err = -errno;
		close(in);
		return err;
	}
	if (!blocks)
		err = copy_sparse(in, out, buf, sizeof(buf));
	for (i = 0; blocks && i < n; i++) {
		ssize_t got = pread(in, buf, block_size, (off_t)blocks[i]);

		if (got != (ssize_t)block_size ||
		    pwrite(out, buf, block_size, (off_t)blocks[i]) != got) {
			err = -EIO;
			break;
		}
	}
	if (close(out) < 0 && !err)
		err = -errno;
	close(in);
	return err;
}
