// SPDX-License-Identifier: GPL-2.0
/* Named network namespaces, created and deleted exactly like iproute2's
 * "ip netns add/del" so that both tools see the same namespaces. */
#define _GNU_SOURCE
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int ns_path(const char *name, char *buf, size_t len)
{
	if (!netns_valid_name(name))
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s", NETNS_RUN_DIR, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int netns_valid_name(const char *name)
{
	size_t n = strlen(name);

	/* Conservative charset: the name also ends up in interface aliases,
	 * where spaces or '=' would break parsing. */
	if (n == 0 || n > NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

int netns_exists(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (ns_path(name, path, sizeof(path)))
		return 0;
	return stat(path, &st) == 0;
}

/* /run/netns must be a shared mount point so that the bind mounts we put
 * under it propagate to other mount namespaces (same as iproute2). */
static int prepare_run_dir(void)
{
	if (mkdir(NETNS_RUN_DIR, 0755) && errno != EEXIST)
		return -errno;
	for (int tries = 0; tries < 2; tries++) {
		if (!mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL))
			return 0;
		if (errno != EINVAL || tries)
			return -errno;
		/* Not a mount point yet: make it one by binding it onto itself. */
		if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL))
			return -errno;
	}
	return -EINVAL;
}

/* Child side of netns_add: a fresh netns is pinned by bind-mounting it
 * onto the placeholder file.  A child is used so that the caller's own
 * thread never changes namespace.  The outcome (0 or errno) goes back over
 * a pipe rather than the exit status, which atexit-style wrappers such as
 * valgrind may rewrite.  Only async-signal-safe calls here. */
static void pin_new_netns(const char *path, int wfd)
{
	int err = 0;

	if (unshare(CLONE_NEWNET))
		err = errno;
	else if (mount("/proc/self/ns/net", path, "none", MS_BIND, NULL))
		err = errno;
	if (write(wfd, &err, sizeof(err)) != sizeof(err))
		_exit(1);
	_exit(0);
}

static int run_pin_child(const char *path)
{
	int fds[2], err = 0, ret;
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(fds[0]);
		close(fds[1]);
		return ret;
	}
	if (pid == 0)
		pin_new_netns(path, fds[1]);
	close(fds[1]);
	do
		n = read(fds[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(err))
		return -ECHILD; /* child died before reporting */
	return -err;
}

int netns_add(const char *name)
{
	char path[PATH_MAX];
	int fd, ret;

	ret = ns_path(name, path, sizeof(path));
	if (ret)
		return ret;
	ret = prepare_run_dir();
	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	close(fd);
	ret = run_pin_child(path);
	if (ret) {
		/* The mount may exist even if reporting failed. */
		umount2(path, MNT_DETACH);
		unlink(path);
	}
	return ret;
}

int netns_del(const char *name)
{
	char path[PATH_MAX];
	int ret = ns_path(name, path, sizeof(path));

	if (ret)
		return ret;
	/* EINVAL: not mounted (e.g. a stale placeholder); still unlink it. */
	if (umount2(path, MNT_DETACH) && errno != EINVAL && errno != ENOENT)
		return -errno;
	if (unlink(path))
		return -errno;
	return 0;
}

int netns_open(const char *name)
{
	char path[PATH_MAX];
	int fd, ret = ns_path(name, path, sizeof(path));

	if (ret)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int netns_enter(const char *name, int *saved)
{
	int fd, cur, ret;

	/* thread-self: setns() only moves the calling thread. */
	cur = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (cur < 0)
		cur = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (cur < 0)
		return -errno;
	fd = netns_open(name);
	if (fd < 0) {
		close(cur);
		return fd;
	}
	ret = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	if (ret) {
		close(cur);
		return ret;
	}
	*saved = cur;
	return 0;
}

int netns_leave(int saved)
{
	int ret = setns(saved, CLONE_NEWNET) ? -errno : 0;

	close(saved);
	return ret;
}

int netns_run(const char *name, int (*fn)(void *arg), void *arg)
{
	int saved, ret, ret2;

	ret = netns_enter(name, &saved);
	if (ret)
		return ret;
	ret = fn(arg);
	ret2 = netns_leave(saved);
	return ret ? ret : ret2;
}

int netns_run_in(const char *name, int (*fn)(void *arg), void *arg)
{
	return name ? netns_run(name, fn, arg) : fn(arg);
}
