// SPDX-License-Identifier: GPL-2.0
/* Persistent taps through /dev/net/tun: no external command (ip tuntap). */
#define _GNU_SOURCE
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int tap_create(const char *name)
{
	struct ifreq ifr = { 0 };
	int fd, ret = 0;

	if (!name[0] || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	/* TUNSETIFF would attach to an existing tap: refuse it instead. */
	if (if_nametoindex(name))
		return -EEXIST;
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
		ret = -errno;
	close(fd);
	return ret;
}
