/* SPDX-License-Identifier: GPL-2.0 */
/* The builder's geometry and layout of table objects in guest memory
 * (glayout.c), for gbuild.c. */
#ifndef CLAT_GLAYOUT_H
#define CLAT_GLAYOUT_H

#include <stdint.h>

#include "gbuild.h"

#define PAGE_SHIFT 12

/* Same rule as gtables.c: entries needed per level, pages per level. */
struct bgeom {
	uint64_t nblocks, npages;
	uint64_t need[CLAT_MAX_LEVELS];
	uint64_t pages[CLAT_MAX_LEVELS];
	uint64_t start[CLAT_MAX_LEVELS]; /* BFS index of a level's first page */
};

void bgeom_of(const struct gbuild_type *t, struct bgeom *g);

/* Objects are numbered: 0 = BAT, then per type its pages (BFS order) and
 * its blocks.  The layout permutes them and spreads the spare pages of the
 * file as gaps between them. */
struct layout {
	unsigned int ntypes;
	uint64_t base[CLAT_MAX_TYPES + 1];  /* first object of each type */
	struct bgeom geo[CLAT_MAX_TYPES];
	uint64_t *page_gpa[CLAT_MAX_TYPES];
	uint64_t *block_gpa[CLAT_MAX_TYPES];
	uint32_t block_pages[CLAT_MAX_TYPES];
	uint64_t bat_gpa;
};

int layout_init(struct layout *ly, const struct gbuild_type *types, unsigned int n);
void layout_free(struct layout *ly);
/* File mode: every object at a page of a seeded permutation, with random
 * gaps (page 0 never used). */
int layout_place(struct layout *ly, uint64_t file_pages, uint64_t seed);
/* Extent mode: file offsets, each object aligned to its size rounded up to
 * a power of two; -ENOSPC if they do not fit. */
int layout_place_aligned(struct layout *ly, uint64_t file_pages, uint64_t seed);
/* Extent mode: the layout was made in file offsets; the tables hold GPAs. */
void layout_to_gpa(const struct gmem *g, struct layout *ly);
/* Zeroes the pages of every object that is not in a hole. */
void layout_clear(struct gmem *g, struct layout *ly);
/* The layout seed when none is given, from the types' hash seeds. */
uint64_t layout_default_seed(const struct gbuild_type *types, unsigned int n);

#endif
