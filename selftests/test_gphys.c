// SPDX-License-Identifier: GPL-2.0
/* Extent mode of guest memory on the host: a plain file given synthetic
 * huge-page GPAs (what pagemap would say inside a guest), then the
 * translation and refusal rules of gmem_ptr, a build placed in the extents,
 * hostile tables that point between them, and a grow. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gbuild.h"
#include "ggrow.h"
#include "gphys.h"
#include "glookup.h"
#include "gtables.h"
#include "tap.h"

#define HP (2ULL << 20)
#define NHP 4

/* File huge page i sits at GPA hp[i]: 0 and 1 are adjacent in both the
 * file and GPA space (one merged extent), 2 and 3 lie elsewhere, and
 * [0x400000, 0x1000000) is a gap whose offsets exist in the file. */
static const uint64_t hp[NHP] = { 0x6000000, 0x6200000, 0x200000, 0x1000000 };

static int open_synthetic(char *path, struct gmem *g)
{
	int fd = mkstemp(path);

	if (fd < 0 || ftruncate(fd, NHP * HP) < 0)
		return -errno;
	close(fd);
	if (gmem_open(path, true, g))
		return -EIO;
	return gmem_ext_set(g, hp, NHP, HP);
}

static void test_translation(struct gmem *g)
{
	uint64_t bad[NHP];

	check(g->next == 3, "extents merged where GPA and mapping are contiguous: %u", g->next);
	check(g->size == 0x6400000, "size is the end of the highest extent: 0x%" PRIx64, g->size);
	check(gmem_ptr(g, 0x6000000, 4096) == g->base, "GPA of file page 0 maps to offset 0");
	check(gmem_ptr(g, 0x201000, 8) == g->base + 2 * HP + 0x1000, "GPA inside huge page 2");
	check(gmem_ptr(g, 0x61ff000, 0x2000) == g->base + 0x1ff000,
	      "range across a merged boundary is one extent");
	check(!gmem_ptr(g, 0x3ff000, 0x2000), "range leaving an extent is refused");
	check(!gmem_ptr(g, 0x400000, 8), "GPA in a gap (a valid file offset) is refused");
	check(!gmem_ptr(g, 0, 8), "GPA 0 is refused");
	check(!gmem_ptr(g, 0x100000, 8), "GPA below every extent is refused");
	check(!gmem_ptr(g, 0x6400000, 1), "GPA just past the last extent is refused");
	check(gmem_ptr(g, 0x6400000, 0) != NULL, "empty range at the end is allowed");
	check(!gmem_ptr(g, UINT64_MAX - 3, 8), "wrapping range is refused");
	check(!gmem_ptr(g, 0x1000000, UINT64_MAX), "huge length is refused");
	check(gmem_gpa_of(g, 3 * HP + 0x10) == 0x1000010, "offset to GPA");
	memcpy(bad, hp, sizeof(bad));
	bad[1] = hp[0];
	check(gmem_ext_set(g, bad, NHP, HP) == -EINVAL, "two huge pages at one GPA refused");
	bad[1] = hp[1] + 4096;
	check(gmem_ext_set(g, bad, NHP, HP) == -EINVAL, "misaligned huge page refused");
	bad[1] = 0;
	check(gmem_ext_set(g, bad, NHP, HP) == -EINVAL, "huge page at GPA 0 refused");
	check(gmem_ext_set(g, hp, NHP - 1, HP) == -EINVAL, "extents not covering the file refused");
	check(g->next == 3 && gmem_ptr(g, 0x201000, 8), "a refused set leaves the extents alone");
}

static bool inside_one_hp(uint64_t gpa, uint64_t len)
{
	return gpa / HP == (gpa + len - 1) / HP;
}

static void test_build(struct gmem *g)
{
	struct gbuild_type ty[3];
	const char *specs[] = { "conn:ctx=128,block=4K,services=40000,seed=1",
				"dns:ctx=256,block=12K,services=3000,seed=2",
				"big:ctx=128,block=64K,services=2000,seed=3" };
	struct ggrow_result r;
	struct gtables t;
	uint64_t bat = 0, *entry;
	char err[512];
	bool ok = true;
	uint32_t i, k;
	int ret;

	for (i = 0; i < 3; i++)
		if (gbuild_parse_type(specs[i], &ty[i], err, sizeof(err)) ||
		    gbuild_resolve(&ty[i], err, sizeof(err)))
			check(false, "spec %s: %s", specs[i], err);
	ret = gbuild_write(g, true, 42, ty, 3, &bat, err, sizeof(err));
	check(!ret, "build in extents: %s", ret ? err : "ok");
	check(bat == hp[0], "BAT at the GPA of file offset 0: 0x%" PRIx64, bat);
	ret = gtables_load(g, bat, &t, err, sizeof(err));
	check(!ret, "extent-built tables validate: %s", ret ? err : "ok");
	if (ret)
		return;
	check(t.types[0].e.levels == 2, "conn needs a 2-level CLAT: %u", t.types[0].e.levels);
	for (i = 0; i < t.ntypes; i++) {
		const struct gtype *gt = &t.types[i];

		for (k = 0; k < gt->npages; k++)
			ok &= inside_one_hp(gt->page_gpa[k], CLAT_PAGE_SIZE);
		for (k = 0; k < gt->nblocks; k++)
			ok &= inside_one_hp(gt->block_gpa[k], gt->e.block_size) &&
			      gt->block_gpa[k] % (gt->e.block_size == 12288 ? 16384 : gt->e.block_size) == 0;
	}
	check(ok, "every page and block aligned, none straddles a huge page");

	/* Hostile: the last block's entry points into the gap, at a GPA that
	 * is a perfectly good offset of the file. */
	{
		struct gtype_path p;
		const struct gtype *gt = &t.types[0];

		gtype_path(gt, gt->e.capacity, &p);
		entry = gmem_ptr(g, p.entry_gpa[gt->e.levels - 1], 8);
		*entry = 0x400000;
		gtables_free(&t);
		ret = gtables_load(g, bat, &t, err, sizeof(err));
		check(ret == -EINVAL && strstr(err, "-> 0x400000: outside guest memory"),
		      "a block in the gap between extents is refused: %s", err);
		if (!ret)
			gtables_free(&t);
		*entry = p.block_gpa;
	}
	ret = gtables_load(g, 0x400000, &t, err, sizeof(err));
	check(ret == -EINVAL, "a BAT GPA in the gap is refused: %s", err);
	if (!ret)
		gtables_free(&t);
	ret = gtables_load(g, bat, &t, err, sizeof(err));
	check(!ret, "restored tables validate again");
	if (ret)
		return;
	ret = ggrow_capacity(g, &t, 0, 45000, 7, &r, err, sizeof(err));
	check(!ret, "grow in extent mode: %s", ret ? err : "ok");
	gtables_free(&t);
	ret = gtables_load(g, bat, &t, err, sizeof(err));
	check(!ret && t.types[0].e.capacity == 45000, "grown tables validate: %s",
	      ret ? err : "ok");
	if (ret)
		return;
	ok = true;
	for (k = 0; k < t.types[0].nblocks; k++)
		ok &= inside_one_hp(t.types[0].block_gpa[k], 4096);
	check(ok, "grown blocks inside the extents");
	gtables_free(&t);
}

int main(void)
{
	char path[] = "/dev/shm/clat-test-gphys-XXXXXX";
	struct gmem g;
	int ret;

	ret = open_synthetic(path, &g);
	check(!ret, "synthetic extents set: %d", ret);
	if (!ret) {
		test_translation(&g);
		test_build(&g);
	}
	gmem_close(&g);
	unlink(path);
	return tap_done();
}
