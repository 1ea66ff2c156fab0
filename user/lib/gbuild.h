/* SPDX-License-Identifier: GPL-2.0 */
/* Builds guest tables (BAT, CLAT pages, blocks) in a guest memory file, as a
 * VM driver would at boot (damaging them on purpose for tests: gcorrupt.h).
 *
 * Every function returns 0 or -errno and describes a failure in err:
 * -EINVAL for a bad spec or argument (a usage error for the CLI), anything
 * else for a failure to carry out a valid request. */
#ifndef CLAT_GBUILD_H
#define CLAT_GBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gtables.h"

/* How the builder's files (gbuild, glayout, gcorrupt) report a failure:
 * the message into err when there is one; returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
int gbuild_say(char *err, size_t errlen, const char *fmt, ...);

#define GBUILD_DEFAULT_ENTRIES CLAT_MAX_CLAT_ENTRIES
#define GBUILD_DEFAULT_PROTO (CLAT_PROTO_TCP | CLAT_PROTO_UDP)

/* One service type to build.  Zero means "default" where noted;
 * gbuild_resolve() replaces every default by the value it chose. */
struct gbuild_type {
	char name[16];
	uint32_t ctx_size;      /* A */
	uint32_t block_size;    /* B */
	uint32_t services;      /* S: becomes the capacity */
	uint32_t levels;        /* N; 0 = the smallest N with P * C^N >= S */
	uint32_t clat_entries;  /* C; 0 = 512 */
	uint32_t proto_mask;    /* enum clat_proto_mask; 0 = tcp|udp */
	uint32_t hash_seed;
	bool seed_set;          /* else a random seed from getrandom() */
};

struct gbuild_opts {
	uint64_t size;          /* guest memory size, a multiple of CLAT_PAGE_SIZE */
	bool force;             /* resize an existing file of another size */
	bool layout_seed_set;   /* else derived from the hash seeds */
	uint64_t layout_seed;   /* permutes where pages and blocks go */
};

/* "NAME:ctx=A,block=B,services=S[,levels=N][,entries=C][,proto=tcp|udp|any]
 *  [,seed=X]"; A and B take K/M suffixes.  A = 128 (the record's size)
 *  with B = 4K puts one 32-slot bucket in each block. */
int gbuild_parse_type(const char *spec, struct gbuild_type *t, char *err, size_t errlen);
/* Checks a spec and fills in its defaults (levels, C, proto, seed). */
int gbuild_resolve(struct gbuild_type *t, char *err, size_t errlen);
/* Guest pages the tables of these (resolved) types take, BAT included. */
uint64_t gbuild_pages_needed(const struct gbuild_type *types, unsigned int ntypes);

/* Creates the file (sparse) or reuses one of exactly o->size bytes (any size
 * with o->force), then writes the tables scattered over it.  A file this
 * call created is removed again on failure. */
int gbuild_create(const char *path, const struct gbuild_opts *o, struct gbuild_type *types,
		  unsigned int ntypes, uint64_t *bat_gpa, char *err, size_t errlen);
/* Writes the tables into open, writable guest memory; fresh means the file
 * is known to be all zeroes (else the pages used are cleared first). */
int gbuild_write(struct gmem *g, bool fresh, uint64_t layout_seed,
		 const struct gbuild_type *types, unsigned int ntypes, uint64_t *bat_gpa,
		 char *err, size_t errlen);

#endif
