// SPDX-License-Identifier: GPL-2.0
/* Guest memory: a raw file where file offset = GPA, mapped whole.
 *
 * The file belongs to the guest, so nothing read from it is trusted: every
 * access goes through gmem_ptr(), which refuses ranges that leave the file. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "gmem.h"
#include "gphys.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/* A guest can truncate its memory file while it is mapped here; touching a
 * page past the new end raises SIGBUS.  The handler puts a zero page over
 * the faulting one (the access then completes and reads zeroes) and marks
 * the mapping shrunk: from then on gmem_ptr() refuses every range, and the
 * command fails cleanly instead of dying.  Chosen over pread() copies, which
 * would mean reading whole guest memories, and over siglongjmp, which would
 * unwind through code holding maps and fds. */
#define GMEM_MAX_MAPS 16

static struct gmem_map {
	uint8_t *volatile base;
	volatile size_t size;
	volatile sig_atomic_t shrunk;
} gmem_maps[GMEM_MAX_MAPS];
static struct sigaction gmem_old_bus;

static void gmem_sigbus(int sig, siginfo_t *si, void *uc)
{
	static const char fatal[] = ": guest memory shrank while mapped and no zero page could "
				    "be mapped over it; exiting\n";
	uint8_t *addr = si->si_addr;
	long pg = CLAT_PAGE_SIZE;
	int i;

	(void)uc;
	for (i = 0; i < GMEM_MAX_MAPS; i++) {
		struct gmem_map *m = &gmem_maps[i];

		if (!m->base || addr < m->base || addr >= m->base + m->size)
			continue;
		m->shrunk = 1;
		if (mmap((void *)((uintptr_t)addr & ~(uintptr_t)(pg - 1)), pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED)
			return;
		/* Returning would fault again and die of the signal: exit 1
		 * instead, like any failed command (a rerun cleans up). */
		if (write(STDERR_FILENO, log_tool(),
			  strlen(log_tool())) < 0 ||
		    write(STDERR_FILENO, fatal, sizeof(fatal) - 1) < 0) {
			/* nothing more to say: exit anyway */
		}
		_exit(1);
	}
	/* Not a guest mapping: the previous disposition decides. */
	sigaction(sig, &gmem_old_bus, NULL);
}

/* A mapping the handler does not know would kill the loader on a shrink:
 * refuse to map instead. */
static int gmem_track(uint8_t *base, size_t size)
{
	static bool installed;
	int i;

	if (!installed) {
		struct sigaction sa = { .sa_sigaction = gmem_sigbus,
					.sa_flags = SA_SIGINFO | SA_NODEFER };

		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &gmem_old_bus) < 0)
			return -errno;
		installed = true;
	}
	for (i = 0; i < GMEM_MAX_MAPS; i++)
		if (__sync_bool_compare_and_swap(&gmem_maps[i].base, NULL, (uint8_t *)-1)) {
			gmem_maps[i].size = size;
			gmem_maps[i].shrunk = 0;
			__atomic_store_n(&gmem_maps[i].base, base, __ATOMIC_RELEASE);
			return 0;
		}
	return -EMFILE;
}

static struct gmem_map *gmem_map_of(const uint8_t *base)
{
	int i;

	for (i = 0; base && i < GMEM_MAX_MAPS; i++)
		if (gmem_maps[i].base == base)
			return &gmem_maps[i];
	return NULL;
}

bool gmem_shrunk(const struct gmem *g)
{
	struct gmem_map *m = gmem_map_of(g->base);

	return m && m->shrunk;
}

static int gmem_refuse(const char *path, mode_t mode)
{
	const char *what = S_ISLNK(mode)    ? "a symlink"
			   : S_ISFIFO(mode) ? "a FIFO"
			   : S_ISSOCK(mode) ? "a socket"
			   : S_ISCHR(mode)  ? "a character device"
			   : S_ISBLK(mode)  ? "a block device"
			   : S_ISDIR(mode)  ? "a directory"
					    : "of an unknown type";

	if (S_ISLNK(mode)) {
		pr_err("failed to open guest memory %s: it is a symlink (symlinks are refused: give the file itself)",
			 path);
		return -ELOOP;
	}
	pr_err("failed to open guest memory %s: it is %s, not a regular file (refused)", path,
		 what);
	return -EINVAL;
}

/* Opens path as a regular file, never blocking and never following a
 * symlink in its last component.  lstat first, so that a FIFO or a device
 * is not even opened; O_NONBLOCK in case one is swapped in meanwhile (a
 * FIFO would block the open forever); fstat must then find the same
 * regular file.  Returns the fd (blocking again) or -errno, message printed. */
static int gmem_open_fd(const char *path, bool writable, struct stat *st)
{
	int flags = (writable ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC;
	struct stat lst;
	int fd, fl, err;

	if (lstat(path, &lst) < 0) {
		err = -errno;
		pr_err("failed to open guest memory %s: %s", path, strerror(-err));
		return err;
	}
	if (!S_ISREG(lst.st_mode))
		return gmem_refuse(path, lst.st_mode);
	fd = open(path, flags);
	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP)
			return gmem_refuse(path, S_IFLNK);
		pr_err("failed to open guest memory %s: %s", path, strerror(-err));
		return err;
	}
	if (fstat(fd, st) < 0) {
		err = -errno;
		pr_err("failed to stat guest memory %s: %s", path, strerror(-err));
		goto fail;
	}
	if (!S_ISREG(st->st_mode)) {
		err = gmem_refuse(path, st->st_mode);
		goto fail;
	}
	if (st->st_dev != lst.st_dev || st->st_ino != lst.st_ino) {
		pr_err("failed to open guest memory %s: it was replaced while being opened", path);
		err = -ESTALE;
		goto fail;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		err = -errno;
		pr_err("failed to open guest memory %s: %s", path, strerror(-err));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return err;
}

static int gmem_check_size(const char *path, const struct stat *st, uint64_t *size)
{
	if (st->st_size <= 0 || st->st_size % CLAT_PAGE_SIZE) {
		pr_err("failed to open guest memory %s: size %lld is not a non-zero multiple of %u",
			 path, (long long)st->st_size, CLAT_PAGE_SIZE);
		return -EINVAL;
	}
	if ((uint64_t)st->st_size > SIZE_MAX) {
		pr_err("failed to open guest memory %s: too large to map", path);
		return -EFBIG;
	}
	*size = (uint64_t)st->st_size;
	return 0;
}

/* In the guest's view, a file on hugetlbfs: its huge page size, else 0.
 * Huge pages are never moved by compaction nor swapped, and stay in the
 * file after we exit, so the GPAs found now hold for later processes. */
static int gmem_hugetlb(const char *path, int fd, uint64_t size, uint64_t *hpage)
{
	struct statfs sfs;

	*hpage = 0;
	if (!gmem_guest_view_on())
		return 0;
	if (fstatfs(fd, &sfs) < 0) {
		int err = -errno;

		pr_err("failed to statfs guest memory %s: %s", path, strerror(-err));
		return err;
	}
	if ((unsigned long)sfs.f_type != HUGETLBFS_MAGIC)
		return 0;
	if (sfs.f_bsize <= 0 || sfs.f_bsize % CLAT_PAGE_SIZE || size % (uint64_t)sfs.f_bsize) {
		pr_err("failed to open guest memory %s: size %" PRIu64 " is not a multiple of "
			 "the huge page size %ld", path, size, (long)sfs.f_bsize);
		return -EINVAL;
	}
	*hpage = (uint64_t)sfs.f_bsize;
	return 0;
}

/* Maps the file open as fd (which g then owns) whole. */
static int gmem_map_fd(const char *path, int fd, const struct stat *st, bool writable,
		       struct gmem *g)
{
	int err, prot = PROT_READ | (writable ? PROT_WRITE : 0), flags = MAP_SHARED;
	uint64_t hpage;
	void *base;

	memset(g, 0, sizeof(*g));
	g->fd = fd;
	err = gmem_check_size(path, st, &g->size);
	if (!err)
		err = gmem_hugetlb(path, fd, g->size, &hpage);
	if (err)
		goto fail;
	/* Huge pages must exist before pagemap can name them. */
	if (hpage)
		flags |= MAP_POPULATE;
	base = mmap(NULL, (size_t)g->size, prot, flags, g->fd, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		pr_err("failed to map guest memory %s: %s%s", path, strerror(-err),
			 hpage && err == -ENOMEM ? " (not enough free huge pages?)" : "");
		goto fail;
	}
	err = gmem_track(base, (size_t)g->size);
	if (err) {
		pr_err("failed to map guest memory %s: %s", path,
			 err == -EMFILE ? "too many guest memories mapped at once" : strerror(-err));
		munmap(base, (size_t)g->size);
		goto fail;
	}
	g->base = base;
	g->map_len = g->size;
	g->writable = writable;
	g->dev = (uint64_t)st->st_dev;
	g->ino = (uint64_t)st->st_ino;
	if (hpage) {
		err = gmem_ext_scan(g, path, hpage);
		if (err) {
			gmem_close(g);
			return err;
		}
	}
	return 0;
fail:
	close(fd);
	g->fd = -1;
	g->size = 0;
	return err;
}

int gmem_open(const char *path, bool writable, struct gmem *g)
{
	struct stat st;
	int fd;

	memset(g, 0, sizeof(*g));
	g->fd = -1;
	fd = gmem_open_fd(path, writable, &st);
	return fd < 0 ? fd : gmem_map_fd(path, fd, &st, writable, g);
}

/* Refused in recorded paths: they end up in logs, JSON and hook lines. */
static bool has_control_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int gmem_intake(const char *mem, char *path, size_t len, struct gmem_id *id)
{
	char proc[64];
	struct stat st;
	ssize_t n;
	int fd, err = 0;

	if (has_control_char(mem)) {
		pr_err("failed to open guest memory: the path holds a control character (refused)");
		return -EINVAL;
	}
	fd = gmem_open_fd(mem, false, &st);
	if (fd < 0)
		return fd;
	/* The name of what was opened, not a second resolution of mem. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, path, len);
	if (n < 0) {
		err = -errno;
		pr_err("failed to resolve guest memory %s: %s", mem, strerror(-err));
	} else if ((size_t)n >= len) {
		err = -ENAMETOOLONG;
		pr_err("failed to resolve guest memory %s: path too long", mem);
	} else if (st.st_nlink == 0 || path[0] != '/') {
		err = -ENOENT;
		pr_err("failed to open guest memory %s: it was removed while being opened", mem);
	}
	if (!err) {
		path[n] = '\0';
		id->dev = (uint64_t)st.st_dev;
		id->ino = (uint64_t)st.st_ino;
	}
	close(fd);
	return err;
}

int gmem_open_id(const char *path, bool writable, const struct gmem_id *id, struct gmem *g)
{
	struct stat st;
	int fd;

	memset(g, 0, sizeof(*g));
	g->fd = -1;
	if (!id->dev && !id->ino) {
		pr_err("failed to reopen guest memory %s: no device and inode recorded at attach "
			 "(attached by an older clat-load?); detach and attach it again", path);
		return -ESTALE;
	}
	fd = gmem_open_fd(path, writable, &st);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_dev != id->dev || (uint64_t)st.st_ino != id->ino) {
		pr_err("failed to reopen guest memory: guest memory %s was replaced since attach "
			 "(device/inode changed)", path);
		close(fd);
		return -ESTALE;
	}
	return gmem_map_fd(path, fd, &st, writable, g);
}

int gmem_reopen(const struct clat_guest_info *gi, bool writable, struct gmem *g)
{
	struct gmem_id id = { gi->mem_dev, gi->mem_ino };
	char path[sizeof(gi->mem_path) + 1];

	/* mem_path comes from a map: never trust it to be terminated. */
	memcpy(path, gi->mem_path, sizeof(gi->mem_path));
	path[sizeof(gi->mem_path)] = '\0';
	return gmem_open_id(path, writable, &id, g);
}

void gmem_close(struct gmem *g)
{
	struct gmem_map *m = gmem_map_of(g->base);

	if (g->base)
		munmap(g->base, (size_t)g->map_len);
	if (m)
		__atomic_store_n(&m->base, NULL, __ATOMIC_RELEASE);
	if (g->fd >= 0)
		close(g->fd);
	gmem_ext_free(g);
	g->base = NULL;
	g->fd = -1;
	g->size = g->map_len = 0;
}

void *gmem_ptr(const struct gmem *g, uint64_t gpa, uint64_t len)
{
	/* The host path pays this one branch for extent mode. */
	if (__builtin_expect(g->next != 0, 0))
		return gmem_ext_ptr(g, gpa, len);
	/* Written as two comparisons so gpa + len can never wrap. */
	if (!g->base || gpa > g->size || len > g->size - gpa || gmem_shrunk(g))
		return NULL;
	return g->base + gpa;
}

/* Beyond this many extents a scan costs more than it saves. */
#define GMEM_MAX_EXTENTS 65536

static int data_add(struct gmem_data *d, uint64_t start, uint64_t end, uint64_t *cap)
{
	if (d->n == *cap) {
		uint64_t ncap = *cap ? *cap * 2 : 64;
		void *p = realloc(d->ext, ncap * sizeof(*d->ext));

		if (!p)
			return -ENOMEM;
		d->ext = p;
		*cap = ncap;
	}
	d->ext[d->n][0] = start;
	d->ext[d->n][1] = end;
	d->n++;
	return 0;
}

int gmem_data_scan(const struct gmem *g, struct gmem_data *d)
{
	uint64_t pos = 0, cap = 0;
	off_t data, hole;

	memset(d, 0, sizeof(*d));
	/* SEEK_DATA speaks file offsets, not GPAs. */
	if (g->next)
		goto all_data;
	while (pos < g->size) {
		data = lseek(g->fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only a hole up to the end */
		if (data < 0 || d->n == GMEM_MAX_EXTENTS)
			goto all_data;
		hole = lseek(g->fd, data, SEEK_HOLE);
		if (hole < 0)
			goto all_data;
		if ((uint64_t)hole > g->size)
			hole = (off_t)g->size;
		if (data_add(d, (uint64_t)data, (uint64_t)hole, &cap))
			goto all_data;
		pos = (uint64_t)hole;
	}
	return 0;
all_data:
	/* Not knowing is safe: everything is then read. */
	gmem_data_free(d);
	d->all_data = true;
	return 0;
}

bool gmem_data_hole(const struct gmem_data *d, uint64_t gpa, uint64_t len)
{
	uint64_t lo = 0, hi = d->n;

	if (d->all_data)
		return false;
	/* First extent ending after gpa; a hole if it starts at or past gpa+len. */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (d->ext[mid][1] <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == d->n || d->ext[lo][0] >= gpa + len;
}

void gmem_data_free(struct gmem_data *d)
{
	free(d->ext);
	memset(d, 0, sizeof(*d));
}
