// SPDX-License-Identifier: GPL-2.0
/* Page ownership: a bit per guest page that the attached tables own (the
 * BAT, CLAT pages, context blocks), in a pinned mmapable map per fn.  A
 * resync checks the pages and blocks a guest adds against it instead of
 * walking the old tables again.  Never read by the datapath. */
#include "owned.h"
#include "common.h"
#include "maps.h"

#include <limits.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) / pg * pg;
}

static void own(uint64_t *bits, uint64_t gpa, uint64_t len)
{
	uint64_t pfn;

	for (pfn = gpa / CLAT_PAGE_SIZE; pfn < (gpa + len) / CLAT_PAGE_SIZE; pfn++)
		bits[pfn / 64] |= 1ULL << (pfn % 64);
}

int shadow_owned_build(uint32_t fn, const struct gmem *g, const struct gtables *t,
		       struct shadow_owned *o)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
	char name[BPF_OBJ_NAME_LEN];
	uint32_t i, k;

	o->words = g->size / CLAT_PAGE_SIZE / 64 + 1;
	snprintf(name, sizeof(name), "owned%u", fn);
	o->fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32), sizeof(__u64),
			       (__u32)o->words, &opts);
	if (o->fd < 0)
		return -errno;
	o->len = page_round(o->words * sizeof(__u64));
	o->bits = mmap(NULL, o->len, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
	if (o->bits == MAP_FAILED) {
		o->bits = NULL;
		return -errno;
	}
	own(o->bits, t->bat_gpa, CLAT_PAGE_SIZE);
	for (i = 0; i < t->ntypes; i++) {
		const struct gtype *gt = &t->types[i];

		for (k = 0; k < gt->npages; k++)
			own(o->bits, gt->page_gpa[k], CLAT_PAGE_SIZE);
		for (k = 0; k < gt->nblocks; k++)
			own(o->bits, gt->block_gpa[k], gt->e.block_size);
	}
	return 0;
}

int shadow_owned_pin(const char *dir, uint32_t fn, int fd)
{
	char name[64], path[PATH_MAX];

	snprintf(name, sizeof(name), PIN_OWNED_FMT, fn);
	if (pin_path(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return fd >= 0 && bpf_obj_pin(fd, path) ? -errno : 0;
}

int shadow_owned_open(const char *dir, uint32_t fn, struct shadow_owned *o)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char name[64], path[PATH_MAX];

	*o = (struct shadow_owned){ .fd = -1 };
	snprintf(name, sizeof(name), PIN_OWNED_FMT, fn);
	if (pin_path(path, sizeof(path), dir, name))
		return -ENAMETOOLONG;
	o->fd = bpf_obj_get(path);
	if (o->fd < 0 || bpf_obj_get_info_by_fd(o->fd, &info, &ilen)) {
		shadow_owned_close(o);
		return -ENOENT;
	}
	o->words = info.max_entries;
	o->len = page_round(o->words * sizeof(__u64));
	o->bits = mmap(NULL, o->len, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
	if (o->bits == MAP_FAILED) {
		o->bits = NULL;
		shadow_owned_close(o);
		return -errno;
	}
	return 0;
}

void shadow_owned_close(struct shadow_owned *o)
{
	if (o->bits)
		munmap(o->bits, o->len);
	if (o->fd >= 0)
		close(o->fd);
	*o = (struct shadow_owned){ .fd = -1 };
}

