// SPDX-License-Identifier: GPL-2.0
/* Extent mode of guest memory: the guest's own view of a hugetlbfs file.
 *
 * Inside a VM, clat-guest builds its tables in huge pages of a hugetlbfs
 * file.  The device reads them at their guest-physical addresses, which
 * are wherever the guest kernel put each huge page: /proc/self/pagemap
 * names them (/dev/mem is refused by STRICT_DEVMEM).  gmem_ptr() then
 * translates a GPA through a sorted table of extents and refuses a range
 * that leaves one, so a table pointing anywhere else is refused here just
 * as the host refuses one pointing outside the RAM file.
 *
 * Why hugetlb: its pages are never migrated by compaction nor swapped
 * (unlike mlock'ed pages, which compaction may move unless
 * vm.compact_unevictable_allowed=0 is set everywhere, forever), and they
 * stay in the file when the process exits, so a later `show` or `agent`
 * finds the same pages at the same GPAs. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "gphys.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PM_PRESENT (1ULL << 63)
#define PM_PFN_MASK ((1ULL << 55) - 1)

static bool guest_view;

void gmem_guest_view(bool on)
{
	guest_view = on;
}

bool gmem_guest_view_on(void)
{
	return guest_view;
}

void gmem_ext_free(struct gmem *g)
{
	free(g->ext);
	free(g->hp_gpa);
	g->ext = NULL;
	g->hp_gpa = NULL;
	g->next = 0;
	g->hpage = 0;
}

static const uint64_t *sort_gpa;

static int by_gpa(const void *a, const void *b)
{
	uint64_t x = sort_gpa[*(const uint64_t *)a], y = sort_gpa[*(const uint64_t *)b];

	return x < y ? -1 : x > y;
}

int gmem_ext_set(struct gmem *g, const uint64_t *hp_gpa, uint64_t n, uint64_t hpage)
{
	uint64_t *order, *copy, i;
	struct gmem_ext *ext;
	uint32_t next = 0;

	if (!n || !hpage || hpage % CLAT_PAGE_SIZE || n > g->map_len / hpage ||
	    n * hpage != g->map_len || n > UINT32_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!hp_gpa[i] || hp_gpa[i] % hpage || hp_gpa[i] > UINT64_MAX - hpage)
			return -EINVAL;
	order = malloc(n * sizeof(*order));
	copy = malloc(n * sizeof(*copy));
	ext = calloc(n, sizeof(*ext));
	if (!order || !copy || !ext) {
		free(order);
		free(copy);
		free(ext);
		return -ENOMEM;
	}
	memcpy(copy, hp_gpa, n * sizeof(*copy));
	for (i = 0; i < n; i++)
		order[i] = i;
	sort_gpa = copy;
	qsort(order, n, sizeof(*order), by_gpa);
	for (i = 0; i < n; i++) {
		uint64_t f = order[i];
		uint8_t *ptr = g->base + f * hpage;
		struct gmem_ext *last = next ? &ext[next - 1] : NULL;

		if (last && copy[f] < last->gpa + last->len) {
			/* Two huge pages at one GPA: pagemap is lying or stale. */
			free(order);
			free(copy);
			free(ext);
			return -EINVAL;
		}
		/* Merge only what is contiguous both in GPA and in the mapping. */
		if (last && copy[f] == last->gpa + last->len && ptr == last->ptr + last->len)
			last->len += hpage;
		else
			ext[next++] = (struct gmem_ext){ copy[f], hpage, ptr };
	}
	free(order);
	gmem_ext_free(g);
	g->ext = ext;
	g->next = next;
	g->hp_gpa = copy;
	g->hpage = hpage;
	g->size = ext[next - 1].gpa + ext[next - 1].len;
	return 0;
}

int gmem_ext_scan(struct gmem *g, const char *path, uint64_t hpage)
{
	uint64_t n = g->map_len / hpage, i, *gpa;
	long pg = sysconf(_SC_PAGESIZE);
	int fd, err = 0;

	gpa = calloc(n ? n : 1, sizeof(*gpa));
	if (!gpa)
		return -ENOMEM;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_err("failed to open /proc/self/pagemap for %s: %s", path, strerror(-err));
		goto out;
	}
	for (i = 0; i < n; i++) {
		uintptr_t va = (uintptr_t)(g->base + i * hpage);
		uint64_t e;
		ssize_t r = pread(fd, &e, sizeof(e), (off_t)(va / (uintptr_t)pg * sizeof(e)));

		if (r != (ssize_t)sizeof(e)) {
			err = r < 0 ? -errno : -EIO;
			pr_err("failed to read /proc/self/pagemap for %s: %s", path,
				  strerror(-err));
			goto out;
		}
		if (!(e & PM_PRESENT)) {
			pr_err("failed to find the guest-physical address of %s huge page %" PRIu64
				  ": not present after MAP_POPULATE", path, i);
			err = -ENXIO;
			goto out;
		}
		if (!(e & PM_PFN_MASK)) {
			pr_err("failed to find the guest-physical address of %s: pagemap shows "
				  "PFN 0 (reading PFNs needs root, CAP_SYS_ADMIN)", path);
			err = -EPERM;
			goto out;
		}
		gpa[i] = (e & PM_PFN_MASK) * (uint64_t)pg;
	}
	err = gmem_ext_set(g, gpa, n, hpage);
	if (err)
		pr_err("failed to build the extents of %s: %s (a huge page not aligned to "
			  "%" PRIu64 " or two at one address)", path, strerror(-err), hpage);
out:
	if (fd >= 0)
		close(fd);
	free(gpa);
	return err;
}

uint64_t gmem_gpa_of(const struct gmem *g, uint64_t off)
{
	if (!g->next)
		return off;
	return g->hp_gpa[off / g->hpage] + off % g->hpage;
}

void *gmem_ext_ptr(const struct gmem *g, uint64_t gpa, uint64_t len)
{
	uint32_t lo = 0, hi = g->next;
	const struct gmem_ext *e;

	/* Last extent starting at or below gpa. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (g->ext[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || !g->base || gmem_shrunk(g))
		return NULL;
	e = &g->ext[lo - 1];
	/* Two comparisons: gpa + len never computed, so it cannot wrap. */
	if (gpa - e->gpa > e->len || len > e->len - (gpa - e->gpa))
		return NULL;
	return e->ptr + (gpa - e->gpa);
}
