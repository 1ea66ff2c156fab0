// SPDX-License-Identifier: GPL-2.0
/* Seed corpus for fuzz_gtables: valid guest tables built by gbuild_write()
 * and every gbuild_corrupt() kind applied to them, small enough (64-256 KiB)
 * for the fuzzer to mutate quickly.
 *
 * Usage: fuzz_seeds DIR.  Each file is [8-byte bat_gpa LE][guest memory]. */
#define _GNU_SOURCE /* memfd_create */
#include "gbuild.h"
#include "gcorrupt.h"
#include "glookup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct tspec {
	const char *name;
	uint32_t ctx, block, services, levels, entries;
};

struct seedcfg {
	const char *tag;
	uint64_t size;
	unsigned int ntypes;
	struct tspec t[CLAT_MAX_TYPES];
	bool live; /* a consistent LIVE context in svc 1 of type 0 */
};

static const struct seedcfg cfgs[] = {
	{ "l1-c4", 64 << 10, 1, { { "conn", 256, 4096, 60, 1, 4 } }, false },
	{ "l1-c8-live", 64 << 10, 1, { { "conn", 256, 4096, 100, 1, 8 } }, true },
	/* A = 128, the record's size: one 32-slot bucket per 4K block. */
	{ "l1-a128-live", 64 << 10, 1, { { "conn", 128, 4096, 100, 1, 4 } }, true },
	{ "l2-c4", 128 << 10, 2, { { "conn", 256, 4096, 100, 2, 4 },
				   { "udp", 256, 4096, 20, 1, 4 } }, false },
	{ "l2-c8-2page-block", 128 << 10, 1, { { "big", 512, 8192, 80, 2, 8 } }, true },
	{ "l3-c4", 256 << 10, 2, { { "deep", 512, 4096, 100, 3, 4 },
				   { "flat", 256, 4096, 30, 1, 4 } }, false },
	{ "l3-c4-3types", 256 << 10, 3, { { "a", 256, 4096, 40, 3, 4 },
					   { "b", 256, 4096, 60, 2, 4 },
					   { "c", 1024, 8192, 16, 1, 8 } }, true },
	{ "l4-c4-4types", 256 << 10, 4, { { "w", 1024, 4096, 64, 4, 4 },
					   { "x", 256, 4096, 10, 1, 4 },
					   { "y", 256, 4096, 31, 2, 4 },
					   { "z", 2048, 4096, 2, 1, 4 } }, false },
};

/* Guest memory in a memfd, so that "truncated" can ftruncate it. */
static int mem_new(uint64_t size, struct gmem *g)
{
	memset(g, 0, sizeof(*g));
	g->fd = memfd_create("fuzz-seed", MFD_CLOEXEC);
	if (g->fd < 0 || ftruncate(g->fd, (off_t)size) < 0)
		return -errno;
	g->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	if (g->base == MAP_FAILED) {
		g->base = NULL;
		return -errno;
	}
	g->size = g->map_len = size;
	g->writable = true;
	return 0;
}

static int write_seed(const char *dir, const char *tag, const char *kind, const struct gmem *g,
		      uint64_t bat_gpa)
{
	char path[4096];
	struct stat st;
	uint8_t *buf;
	FILE *f;
	ssize_t n;
	int ret = 0;

	/* The file size, not g->size: "truncated" shrank it. */
	if (fstat(g->fd, &st) < 0)
		return -errno;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	n = pread(g->fd, buf, (size_t)st.st_size, 0);
	snprintf(path, sizeof(path), "%s/seed-%s-%s", dir, tag, kind);
	f = fopen(path, "wb");
	if (n != st.st_size || !f) {
		free(buf);
		if (f)
			fclose(f);
		return -EIO;
	}
	for (int i = 0; i < 8; i++)
		fputc((int)((bat_gpa >> (8 * i)) & 0xff), f);
	if (fwrite(buf, 1, (size_t)n, f) != (size_t)n)
		ret = -EIO;
	if (fclose(f))
		ret = -EIO;
	free(buf);
	return ret;
}

static int build(const struct seedcfg *c, struct gmem *g, uint64_t *bat_gpa)
{
	struct gbuild_type types[CLAT_MAX_TYPES];
	char err[512];
	unsigned int i;
	int ret;

	memset(types, 0, sizeof(types));
	for (i = 0; i < c->ntypes; i++) {
		snprintf(types[i].name, sizeof(types[i].name), "%s", c->t[i].name);
		types[i].ctx_size = c->t[i].ctx;
		types[i].block_size = c->t[i].block;
		types[i].services = c->t[i].services;
		types[i].levels = c->t[i].levels;
		types[i].clat_entries = c->t[i].entries;
		types[i].hash_seed = 0x1234 + i;
		types[i].seed_set = true;
		ret = gbuild_resolve(&types[i], err, sizeof(err));
		if (ret) {
			fprintf(stderr, "fuzz_seeds: %s: %s\n", c->tag, err);
			return ret;
		}
	}
	ret = mem_new(c->size, g);
	if (ret) {
		fprintf(stderr, "fuzz_seeds: memfd: %s\n", strerror(-ret));
		return ret;
	}
	ret = gbuild_write(g, true, 0x5eed ^ c->size ^ c->ntypes, types, c->ntypes, bat_gpa, err,
			   sizeof(err));
	if (ret) {
		fprintf(stderr, "fuzz_seeds: %s: %s\n", c->tag, err);
		return ret;
	}
	if (c->live) {
		struct gtables t;
		struct clat_ctx *x;

		ret = gtables_load(g, *bat_gpa, &t, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "fuzz_seeds: %s: %s\n", c->tag, err);
			return ret;
		}
		x = gmem_ptr(g, gtype_ctx_gpa(&t.types[0], 1), sizeof(*x));
		x->state_word = CLAT_SLOT_LIVE | (0xabcdULL << CLAT_SLOT_TAG_SHIFT);
		x->svc = 1;
		x->type = 0;
		x = gmem_ptr(g, gtype_ctx_gpa(&t.types[0], t.types[0].e.capacity), sizeof(*x));
		/* Released as the device leaves it: the tag stays in the word. */
		x->state_word = CLAT_SLOT_RELEASED | (0x1234ULL << CLAT_SLOT_TAG_SHIFT);
		x->svc = t.types[0].e.capacity;
		x->type = 0;
		gtables_free(&t);
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned int i, k, nseeds = 0;
	uint64_t bat_gpa;
	struct gmem g;
	char msg[512];
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		const struct seedcfg *c = &cfgs[i];

		if (build(c, &g, &bat_gpa) || write_seed(argv[1], c->tag, "valid", &g, bat_gpa))
			return 1;
		gmem_close(&g);
		nseeds++;
		for (k = 0; gbuild_corrupt_kinds[k]; k++) {
			const char *kind = gbuild_corrupt_kinds[k];

			if (build(c, &g, &bat_gpa))
				return 1;
			ret = gbuild_corrupt(&g, bat_gpa, kind, -1, msg, sizeof(msg));
			if (ret == 0) {
				/* "truncated" shrank the file under the mapping:
				 * write_seed reads through the fd. */
				if (write_seed(argv[1], c->tag, kind, &g, bat_gpa))
					return 1;
				nseeds++;
			} else if (ret != -ENOTSUP && ret != -EINVAL) {
				fprintf(stderr, "fuzz_seeds: %s %s: %s\n", c->tag, kind, msg);
				return 1;
			}
			gmem_close(&g);
		}
	}
	printf("fuzz_seeds: wrote %u seeds to %s\n", nseeds, argv[1]);
	return 0;
}
