// SPDX-License-Identifier: GPL-2.0
/* Helpers shared by the library and the tools: pin dirs, privileges, XDP
 * and TCX links, number and MAC parsing.  All return 0 or -errno and log a
 * "failed to X: <reason>" line themselves where the caller cannot add more. */
#include "common.h"
#include "parse.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>


/* Tests hold a command at a phase boundary, to kill it there or to act
 * meanwhile: CLAT_TEST_STALL=<phase>[:<seconds>][,<phase>[:<seconds>]...]
 * (default 30 s). */
void test_stall(const char *phase)
{
	const char *want = getenv("CLAT_TEST_STALL");
	size_t n = strlen(phase);

	for (; want && *want; want = strchr(want, ',') ? strchr(want, ',') + 1 : NULL) {
		if (strncmp(want, phase, n) || (want[n] && want[n] != ':' && want[n] != ','))
			continue;
		unsigned int secs = want[n] == ':' ? (unsigned int)atoi(want + n + 1) : 30;

		fprintf(stderr, "%s: stalled %us at %s (CLAT_TEST_STALL)\n", log_tool(), secs, phase);
		sleep(secs);
		return;
	}
}

int require_root(void)
{
	if (geteuid() != 0) {
		pr_err("must be run as root (needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)");
		return -EPERM;
	}
	return 0;
}

/* Mount bpffs on /sys/fs/bpf if nothing is there yet, as bpftool does. */
int ensure_bpffs(void)
{
	struct statfs st;

	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") < 0) {
		int err = -errno;

		pr_err("failed to mount bpffs on /sys/fs/bpf: %s", strerror(-err));
		return err;
	}
	return 0;
}

/* bpffs reserves '.' in names, so a PF such as eth0.100 pins as eth0_100. */
int pin_dir_for(const char *pf, const char *override, char *buf, size_t len)
{
	int n = override ? snprintf(buf, len, "%s", override)
			 : snprintf(buf, len, CLAT_PIN_BASE "/%s", pf);
	char *p;

	if (n < 0 || (size_t)n >= len) {
		pr_err("pin dir path too long");
		return -ENAMETOOLONG;
	}
	for (p = buf + (override ? 0 : strlen(CLAT_PIN_BASE)); !override && *p; p++)
		if (*p == '.')
			*p = '_';
	return 0;
}

int pin_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* A directory we may create names in: root's, and writable by nobody
 * else unless sticky (then others can neither rename nor remove our names,
 * as in a bpffs mounted mode 1777). */
static int check_parent(int fd, const char *parent)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != 0 || ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
		pr_err("failed to use pin dir parent %s: owned by uid %u with mode %04o; it must be root's and not writable by others unless sticky (refused)",
		       parent, (unsigned int)st.st_uid, (unsigned int)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* The checks on an existing pin dir, opened without following a link. */
static int check_pin_dir(int fd, const char *dir)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != 0) {
		pr_err("failed to use pin dir %s: owned by uid %u, not root (refused; remove it as root)",
		       dir, (unsigned int)st.st_uid);
		return -EPERM;
	}
	/* Ours: a mode someone loosened is put back, never trusted. */
	if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0) {
		int err = -errno;

		pr_err("failed to set mode 0700 on pin dir %s: %s", dir, strerror(-err));
		return err;
	}
	return 0;
}

static int refuse_non_dir(int pfd, const char *base, const char *dir, int err)
{
	struct stat st;

	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
		pr_err("failed to use pin dir %s: it is a symlink (refused; nothing is followed)", dir);
		return -ELOOP;
	}
	if (err == -ENOTDIR || err == -ELOOP) {
		pr_err("failed to use pin dir %s: not a directory (refused)", dir);
		return -ENOTDIR;
	}
	pr_err("failed to open pin dir %s: %s", dir, strerror(-err));
	return err;
}

void pin_dir_close(struct pin_dir *pd)
{
	if (pd->fd >= 0)
		close(pd->fd);
	if (pd->parent >= 0)
		close(pd->parent);
	pd->fd = pd->parent = -1;
}

int pin_dir_open(const char *dir, bool create, struct pin_dir *pd)
{
	char parent[PATH_MAX];
	size_t n = strlen(dir);
	char *slash;
	int err;

	pd->fd = pd->parent = -1;
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, dir, n);
	parent[n] = '\0';
	slash = strrchr(parent, '/');
	if (!slash || !slash[1] || !strcmp(slash + 1, ".") || !strcmp(slash + 1, "..")) {
		pr_err("failed to use pin dir %s: give an absolute path to a directory", dir);
		return -EINVAL;
	}
	if (strlen(slash + 1) >= sizeof(pd->base))
		return -ENAMETOOLONG;
	snprintf(pd->base, sizeof(pd->base), "%s", slash + 1);
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (!strcmp(parent, CLAT_PIN_BASE)) {
		struct pin_dir base;

		/* Our own base dir gets the same rules as a pin dir. */
		err = pin_dir_open(parent, create, &base);
		if (err)
			return err;
		pd->parent = base.fd;
		base.fd = -1;
		pin_dir_close(&base);
	} else {
		pd->parent = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pd->parent < 0)
			return -errno;
		err = check_parent(pd->parent, parent);
		if (err)
			goto fail;
	}
	if (create && mkdirat(pd->parent, pd->base, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		pr_err("failed to create %s: %s", dir, strerror(-err));
		goto fail;
	}
	pd->fd = openat(pd->parent, pd->base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (pd->fd < 0) {
		err = -errno;
		if (err != -ENOENT)
			err = refuse_non_dir(pd->parent, pd->base, dir, err);
		goto fail;
	}
	err = check_pin_dir(pd->fd, dir);
	if (err)
		goto fail;
	return 0;
fail:
	pin_dir_close(pd);
	return err;
}

int pin_dir_check(const char *dir)
{
	struct pin_dir pd;
	int err = pin_dir_open(dir, false, &pd);

	pin_dir_close(&pd);
	return err;
}

/* Unpinning a link detaches its program once no fd holds it.  Names are
 * removed relative to the checked dir fd: nothing is followed. */
int remove_pin_dir(const char *dir)
{
	struct pin_dir pd;
	struct dirent *de;
	int dfd, err;
	DIR *d;

	err = pin_dir_open(dir, false, &pd);
	if (err)
		return err == -ENOENT ? 0 : err;
	dfd = dup(pd.fd);
	d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		err = -errno;
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(pd.fd, de->d_name, 0) < 0 && errno != ENOENT && !err)
			err = -errno;
		test_stall("unpin"); /* crash tests: die with the dir half removed */
	}
	closedir(d);
	if (unlinkat(pd.parent, pd.base, AT_REMOVEDIR) < 0 && errno != ENOENT && !err)
		err = -errno;
out:
	if (err)
		pr_err("failed to remove %s: %s", dir, strerror(-err));
	pin_dir_close(&pd);
	return err;
}

int resolve_ifindex(const char *dev, unsigned int *ifindex)
{
	*ifindex = if_nametoindex(dev);
	if (!*ifindex) {
		int err = -errno;

		pr_err("failed to find interface %s: %s", dev, strerror(-err));
		return err;
	}
	return 0;
}

/* A MAC from outside the command line (domain XML, bench arguments). */
int parse_mac(const char *s, uint8_t mac[6])
{
	const char *why = parse_mac_reason(s, mac);

	if (!why)
		return 0;
	pr_err("invalid MAC '%s': %s", s, why);
	return -EUSAGE;
}

void format_mac(const uint8_t m[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

const char *fn_state_name(uint32_t state)
{
	switch (state) {
	case CLAT_FN_FREE: return "free";
	case CLAT_FN_ACTIVE: return "active";
	case CLAT_FN_QUIESCED: return "quiesced";
	default: return "invalid";
	}
}

int xdp_link_pin(int prog_fd, unsigned int ifindex, uint32_t xdp_flags, const char *dir,
		 const char *name)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = xdp_flags);
	char path[PATH_MAX];
	char ifname[IF_NAMESIZE] = "?";
	int fd, err;

	if_indextoname(ifindex, ifname);
	fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
	if (fd < 0) {
		err = fd;
		pr_err("failed to attach XDP program to %s: %s%s", ifname, strerror(-err),
		       err == -EBUSY || err == -EEXIST
			       ? " (another XDP program is attached; remove it first)"
			       : "");
		return err;
	}
	err = pin_path(path, sizeof(path), dir, name);
	if (!err && bpf_obj_pin(fd, path) < 0)
		err = -errno;
	if (err)
		pr_err("failed to pin XDP link of %s at %s/%s: %s", ifname, dir, name,
		       strerror(-err));
	/* Closing the only fd of an unpinned link detaches it: nothing half-done. */
	close(fd);
	return err;
}

/* The kernel's value; the UAPI headers this builds against predate TCX. */
#define CLAT_BPF_TCX_INGRESS 46

int tcx_link_pin(int prog_fd, unsigned int ifindex, const char *dir, const char *name)
{
	char path[PATH_MAX];
	char ifname[IF_NAMESIZE] = "?";
	int fd, err;

	if_indextoname(ifindex, ifname);
	fd = bpf_link_create(prog_fd, ifindex, (enum bpf_attach_type)CLAT_BPF_TCX_INGRESS, NULL);
	if (fd < 0) {
		err = fd;
		pr_err("failed to attach TCX ingress program to %s: %s", ifname, strerror(-err));
		return err;
	}
	err = pin_path(path, sizeof(path), dir, name);
	if (!err && bpf_obj_pin(fd, path) < 0)
		err = -errno;
	if (err)
		pr_err("failed to pin TCX link of %s at %s/%s: %s", ifname, dir, name,
		       strerror(-err));
	close(fd); /* unpinned, it detaches */
	return err;
}

int xdp_link_ifindex(int link_fd, unsigned int *ifindex)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) < 0)
		return -errno;
	if (info.type != BPF_LINK_TYPE_XDP)
		return -EINVAL;
	*ifindex = info.xdp.ifindex;
	return 0;
}

/* The mode clat_rx was attached in, so later ports get the same. */
int attached_xdp_flags(unsigned int ifindex, uint32_t *flags)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int err = bpf_xdp_query(ifindex, 0, &q);

	if (err)
		return err;
	*flags = q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	return 0;
}
