// SPDX-License-Identifier: GPL-2.0
/* Guest memory: a raw file where file offset = GPA, mapped whole.
 *
 * The file belongs to the guest, so nothing read from it is trusted: every
 * access goes through gmem_ptr(), which refuses ranges that leave the file. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "gtables.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The library is shared by clat-load, clat-guest and the tests: log under
 * whichever program is running. */
#define gmem_err(fmt, ...) \
	fprintf(stderr, "%s: " fmt "\n", program_invocation_short_name, ##__VA_ARGS__)

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
		break;
	}
	/* Not ours (or the remap failed): the previous disposition decides. */
	sigaction(sig, &gmem_old_bus, NULL);
}

static void gmem_track(uint8_t *base, size_t size)
{
	static bool installed;
	int i;

	if (!installed) {
		struct sigaction sa = { .sa_sigaction = gmem_sigbus,
					.sa_flags = SA_SIGINFO | SA_NODEFER };

		sigemptyset(&sa.sa_mask);
		installed = sigaction(SIGBUS, &sa, &gmem_old_bus) == 0;
	}
	for (i = 0; i < GMEM_MAX_MAPS; i++)
		if (__sync_bool_compare_and_swap(&gmem_maps[i].base, NULL, (uint8_t *)-1)) {
			gmem_maps[i].size = size;
			gmem_maps[i].shrunk = 0;
			__atomic_store_n(&gmem_maps[i].base, base, __ATOMIC_RELEASE);
			return;
		}
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

static int gmem_check_file(const char *path, int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int err = -errno;

		gmem_err("failed to stat guest memory %s: %s", path, strerror(-err));
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		gmem_err("failed to open guest memory %s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_size <= 0 || st.st_size % CLAT_PAGE_SIZE) {
		gmem_err("failed to open guest memory %s: size %lld is not a non-zero multiple of %u",
			 path, (long long)st.st_size, CLAT_PAGE_SIZE);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		gmem_err("failed to open guest memory %s: too large to map", path);
		return -EFBIG;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int gmem_open(const char *path, bool writable, struct gmem *g)
{
	int flags = (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC;
	int err, prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *base;

	memset(g, 0, sizeof(*g));
	g->fd = -1;
	g->fd = open(path, flags);
	if (g->fd < 0) {
		err = -errno;
		gmem_err("failed to open guest memory %s: %s%s", path, strerror(-err),
			 err == -ELOOP ? " (symlinks are refused)" : "");
		return err;
	}
	err = gmem_check_file(path, g->fd, &g->size);
	if (err)
		goto fail;
	base = mmap(NULL, (size_t)g->size, prot, MAP_SHARED, g->fd, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		gmem_err("failed to map guest memory %s: %s", path, strerror(-err));
		goto fail;
	}
	g->base = base;
	g->writable = writable;
	gmem_track(base, (size_t)g->size);
	return 0;
fail:
	close(g->fd);
	g->fd = -1;
	g->size = 0;
	return err;
}

void gmem_close(struct gmem *g)
{
	struct gmem_map *m = gmem_map_of(g->base);

	if (g->base)
		munmap(g->base, (size_t)g->size);
	if (m)
		__atomic_store_n(&m->base, NULL, __ATOMIC_RELEASE);
	if (g->fd >= 0)
		close(g->fd);
	g->base = NULL;
	g->fd = -1;
	g->size = 0;
}

void *gmem_ptr(const struct gmem *g, uint64_t gpa, uint64_t len)
{
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
