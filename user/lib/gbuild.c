// SPDX-License-Identifier: GPL-2.0
/* The guest side: builds BAT/CLAT/blocks in a guest memory file from type
 * specs.  Where each page and block goes is glayout.c's (scattered, so that
 * nothing downstream can assume the tables are contiguous); damaging them on
 * purpose for tests is gcorrupt.c's.
 */
#include "gbuild.h"
#include "glayout.h"
#include "gphys.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

#define MAX_BLOCK_SIZE (2U << 20)

int gbuild_say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf && len) {
		va_start(ap, fmt);
		vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- Parsing ------------------------------------------------------------- */

static int parse_proto(const char *v, size_t n, uint32_t *mask)
{
	if (n == 3 && !strncmp(v, "tcp", 3))
		*mask = CLAT_PROTO_TCP;
	else if (n == 3 && !strncmp(v, "udp", 3))
		*mask = CLAT_PROTO_UDP;
	else if (n == 3 && !strncmp(v, "any", 3))
		*mask = CLAT_PROTO_TCP | CLAT_PROTO_UDP;
	else
		return -EINVAL;
	return 0;
}

/* One "key=value" of a type spec. */
static int parse_kv(const char *kv, size_t n, struct gbuild_type *t, char *err, size_t errlen)
{
	static const struct {
		const char *key;
		bool suffix;
		uint64_t max;
		size_t off;
	} keys[] = {
		{ "ctx", true, UINT32_MAX, offsetof(struct gbuild_type, ctx_size) },
		{ "block", true, UINT32_MAX, offsetof(struct gbuild_type, block_size) },
		{ "services", false, UINT32_MAX, offsetof(struct gbuild_type, services) },
		{ "levels", false, CLAT_MAX_LEVELS, offsetof(struct gbuild_type, levels) },
		{ "entries", false, CLAT_MAX_CLAT_ENTRIES, offsetof(struct gbuild_type, clat_entries) },
		{ "seed", false, UINT32_MAX, offsetof(struct gbuild_type, hash_seed) },
	};
	const char *eq = memchr(kv, '=', n);
	size_t klen, i;
	uint64_t v;

	if (!eq)
		return gbuild_say(err, errlen, "'%.*s' is not key=value", (int)n, kv);
	klen = (size_t)(eq - kv);
	if (klen == 5 && !strncmp(kv, "proto", 5)) {
		if (parse_proto(eq + 1, n - klen - 1, &t->proto_mask))
			return gbuild_say(err, errlen, "proto '%.*s': expected tcp, udp or any",
					  (int)(n - klen - 1), eq + 1);
		return 0;
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strlen(keys[i].key) != klen || strncmp(kv, keys[i].key, klen))
			continue;
		if (parse_num(eq + 1, n - klen - 1, keys[i].suffix, keys[i].max, &v))
			return gbuild_say(err, errlen, "%s '%.*s': expected an integer 0..%" PRIu64 "%s",
					  keys[i].key, (int)(n - klen - 1), eq + 1, keys[i].max,
					  keys[i].suffix ? " (K/M suffix allowed)" : "");
		*(uint32_t *)((char *)t + keys[i].off) = (uint32_t)v;
		if (!strcmp(keys[i].key, "seed"))
			t->seed_set = true;
		return 0;
	}
	return gbuild_say(err, errlen, "unknown key '%.*s' (expected ctx, block, services, levels, "
			  "entries, proto or seed)", (int)klen, kv);
}

int gbuild_parse_type(const char *spec, struct gbuild_type *t, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':'), *p;
	size_t nlen, i;

	memset(t, 0, sizeof(*t));
	if (!colon)
		return gbuild_say(err, errlen, "expected NAME:ctx=A,block=B,services=S[,...]");
	nlen = (size_t)(colon - spec);
	if (nlen < 1 || nlen >= sizeof(t->name))
		return gbuild_say(err, errlen, "name '%.*s' must be 1..%zu characters", (int)nlen, spec,
				  sizeof(t->name) - 1);
	for (i = 0; i < nlen; i++)
		if (spec[i] <= 0x20 || spec[i] > 0x7e || spec[i] == ',' || spec[i] == '=')
			return gbuild_say(err, errlen, "name '%.*s': only printable characters other "
					  "than space, ',' and '='", (int)nlen, spec);
	memcpy(t->name, spec, nlen);
	for (p = colon + 1; *p;) {
		size_t n = strcspn(p, ",");
		int e = parse_kv(p, n, t, err, errlen);

		if (e)
			return e;
		p += n;
		if (*p == ',')
			p++;
	}
	if (!t->ctx_size || !t->block_size || !t->services)
		return gbuild_say(err, errlen, "type '%s': ctx=, block= and services= are required "
				  "and must be non-zero", t->name);
	return 0;
}

/* ---- Geometry ------------------------------------------------------------ */

static uint64_t cap_of(uint32_t per_block, uint32_t c, uint32_t levels)
{
	uint64_t cap = per_block;

	while (levels--)
		cap *= c;
	return cap;
}

int gbuild_resolve(struct gbuild_type *t, char *err, size_t errlen)
{
	uint32_t p;

	if (!t->name[0] || !memchr(t->name, 0, sizeof(t->name)))
		return gbuild_say(err, errlen, "type name must be 1..%zu characters", sizeof(t->name) - 1);
	if (t->ctx_size < sizeof(struct clat_ctx) || t->ctx_size % 8)
		return gbuild_say(err, errlen, "type '%s': ctx=%u must be a multiple of 8 and at least %zu",
				  t->name, t->ctx_size, sizeof(struct clat_ctx));
	if (!t->block_size || t->block_size % CLAT_PAGE_SIZE || t->block_size > MAX_BLOCK_SIZE)
		return gbuild_say(err, errlen, "type '%s': block=%u must be a multiple of %u up to %u",
				  t->name, t->block_size, CLAT_PAGE_SIZE, MAX_BLOCK_SIZE);
	if (t->block_size % t->ctx_size)
		return gbuild_say(err, errlen, "type '%s': context size A=%u does not divide block size "
				  "B=%u", t->name, t->ctx_size, t->block_size);
	if (!t->services)
		return gbuild_say(err, errlen, "type '%s': services must be at least 1", t->name);
	if (!t->clat_entries)
		t->clat_entries = GBUILD_DEFAULT_ENTRIES;
	if (t->clat_entries > CLAT_MAX_CLAT_ENTRIES)
		return gbuild_say(err, errlen, "type '%s': entries=%u out of range 1..%u", t->name,
				  t->clat_entries, CLAT_MAX_CLAT_ENTRIES);
	if (!t->proto_mask)
		t->proto_mask = GBUILD_DEFAULT_PROTO;
	p = t->block_size / t->ctx_size;
	if (!t->levels) {
		for (t->levels = 1; t->levels < CLAT_MAX_LEVELS; t->levels++)
			if (cap_of(p, t->clat_entries, t->levels) >= t->services)
				break;
	}
	if (t->levels > CLAT_MAX_LEVELS)
		return gbuild_say(err, errlen, "type '%s': levels=%u out of range 1..%u", t->name,
				  t->levels, CLAT_MAX_LEVELS);
	if (cap_of(p, t->clat_entries, t->levels) < t->services)
		return gbuild_say(err, errlen, "type '%s': services=%u exceed P*C^N = %u*%u^%u = %" PRIu64,
				  t->name, t->services, p, t->clat_entries, t->levels,
				  cap_of(p, t->clat_entries, t->levels));
	if (!t->seed_set) {
		if (getrandom(&t->hash_seed, sizeof(t->hash_seed), 0) != sizeof(t->hash_seed)) {
			int e = errno;

			gbuild_say(err, errlen, "getrandom: %s", strerror(e));
			return -e;
		}
		t->seed_set = true;
	}
	return 0;
}

uint64_t gbuild_pages_needed(const struct gbuild_type *types, unsigned int ntypes)
{
	uint64_t pages = 1; /* the BAT */
	struct bgeom g;
	unsigned int i;

	for (i = 0; i < ntypes; i++) {
		bgeom_of(&types[i], &g);
		pages += g.npages + g.nblocks * (types[i].block_size >> PAGE_SHIFT);
	}
	return pages;
}

/* ---- Writing ------------------------------------------------------------- */

static void write_type(struct gmem *g, const struct layout *ly, unsigned int t,
		       const struct gbuild_type *ty)
{
	const struct bgeom *geo = &ly->geo[t];
	uint32_t c = ty->clat_entries, x;
	uint64_t k, o;

	for (x = 0; x < ty->levels; x++) {
		for (k = 0; k < geo->pages[x]; k++) {
			uint64_t *pg = gmem_ptr(g, ly->page_gpa[t][geo->start[x] + k], CLAT_PAGE_SIZE);

			for (o = 0; o < c && k * c + o < geo->need[x]; o++) {
				uint64_t j = k * c + o;

				pg[o] = x + 1 < ty->levels ? ly->page_gpa[t][geo->start[x + 1] + j]
							   : ly->block_gpa[t][j];
			}
		}
	}
}

static void write_bat(struct gmem *g, const struct layout *ly, const struct gbuild_type *types,
		      unsigned int n)
{
	struct clat_bat_hdr *h = gmem_ptr(g, ly->bat_gpa, CLAT_PAGE_SIZE);
	struct clat_bat_entry *e = (struct clat_bat_entry *)(h + 1);
	unsigned int t;

	for (t = 0; t < n; t++) {
		memset(&e[t], 0, sizeof(e[t]));
		e[t].clat_gpa = ly->page_gpa[t][0];
		e[t].ctx_size = types[t].ctx_size;
		e[t].block_size = types[t].block_size;
		e[t].levels = types[t].levels;
		e[t].clat_entries = types[t].clat_entries;
		e[t].capacity = types[t].services;
		e[t].hash_seed = types[t].hash_seed;
		e[t].proto_mask = (uint16_t)types[t].proto_mask;
		memcpy(e[t].name, types[t].name, sizeof(e[t].name));
		e[t].nsegs = 1;
		e[t].seg[0] = (struct clat_seg){ .base = 0, .size = types[t].services };
	}
	/* Header last: a reader that races the build sees no valid magic yet. */
	h->version = CLAT_BAT_VERSION;
	h->ntypes = (uint16_t)n;
	h->generation = 1;
	h->pad = 0;
	__atomic_store_n(&h->magic, CLAT_BAT_MAGIC, __ATOMIC_RELEASE);
}

int gbuild_write(struct gmem *g, bool fresh, uint64_t layout_seed,
		 const struct gbuild_type *types, unsigned int ntypes, uint64_t *bat_gpa,
		 char *err, size_t errlen)
{
	uint64_t need = gbuild_pages_needed(types, ntypes), have = g->map_len >> PAGE_SHIFT;
	bool ext = g->next != 0;
	struct layout ly;
	unsigned int t;
	int ret;

	if (ntypes < 1 || ntypes > CLAT_MAX_TYPES)
		return gbuild_say(err, errlen, "%u types: expected 1..%u", ntypes, CLAT_MAX_TYPES);
	if (!g->writable)
		return gbuild_say(err, errlen, "guest memory is read-only"), -EBADF;
	if (have < 1 || need > have - 1)
		return gbuild_say(err, errlen, "guest memory too small: the tables need %" PRIu64
				  " pages (%" PRIu64 " bytes) but only %" PRIu64 " pages after page 0 "
				  "are available (size %" PRIu64 ")", need, need << PAGE_SHIFT,
				  have ? have - 1 : 0, g->map_len), -ENOSPC;
	ret = layout_init(&ly, types, ntypes);
	if (!ret)
		ret = ext ? layout_place_aligned(&ly, have, layout_seed)
			  : layout_place(&ly, have, layout_seed);
	if (ret == -ENOSPC) {
		layout_free(&ly);
		return gbuild_say(err, errlen, "guest memory too small: the tables need %" PRIu64
				  " pages, more than the %" PRIu64 " pages of the file once every object "
				  "is aligned to its size (rounded up to a power of two) so that none "
				  "straddles a huge page", need, have), -ENOSPC;
	}
	if (ret) {
		layout_free(&ly);
		return gbuild_say(err, errlen, "cannot lay out %" PRIu64 " tables: %s",
				  ly.base[ly.ntypes], strerror(-ret)), ret;
	}
	if (ext)
		layout_to_gpa(g, &ly);
	/* Only a few scattered pages are touched: no readahead around them. */
	madvise(g->base, g->map_len, MADV_RANDOM);
	if (!fresh)
		layout_clear(g, &ly);
	for (t = 0; t < ntypes; t++)
		write_type(g, &ly, t, &types[t]);
	write_bat(g, &ly, types, ntypes);
	*bat_gpa = ly.bat_gpa;
	layout_free(&ly);
	return 0;
}

/* hugetlbfs takes only whole huge pages: say so before ftruncate fails
 * with a bare EINVAL. */
static int hugetlb_size_ok(int fd, const char *path, uint64_t size, char *err, size_t errlen)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) < 0 || (unsigned long)sfs.f_type != HUGETLBFS_MAGIC ||
	    sfs.f_bsize <= 0 || size % (uint64_t)sfs.f_bsize == 0)
		return 0;
	return gbuild_say(err, errlen, "%s is on hugetlbfs: --size %" PRIu64 " must be a multiple of "
			  "the huge page size %ld", path, size, (long)sfs.f_bsize);
}

/* Opens path for writing, creating it sparse if absent; *fresh if created. */
static int open_file(const char *path, const struct gbuild_opts *o, bool *fresh, char *err,
		     size_t errlen)
{
	struct stat st;
	int fd, ret;

	*fresh = true;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		*fresh = false;
		fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return ret = -errno, gbuild_say(err, errlen, "%s: %s", path, strerror(-ret)), ret;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return gbuild_say(err, errlen, "%s: not a regular file", path), -EINVAL;
	}
	ret = hugetlb_size_ok(fd, path, o->size, err, errlen);
	if (ret) {
		close(fd);
		if (*fresh)
			unlink(path);
		return ret;
	}
	if (!*fresh && (uint64_t)st.st_size != o->size && !o->force) {
		close(fd);
		return gbuild_say(err, errlen, "%s exists with size %lld, not %" PRIu64 " (use --force "
				  "to resize it)", path, (long long)st.st_size, o->size), -EEXIST;
	}
	ret = ftruncate(fd, (off_t)o->size) < 0 ? -errno : 0;
out:
	if (ret)
		gbuild_say(err, errlen, "%s: %s", path, strerror(-ret));
	close(fd);
	return ret;
}

static int check_types(struct gbuild_type *types, unsigned int ntypes, char *err, size_t errlen)
{
	unsigned int i, j;
	int ret;

	if (ntypes < 1 || ntypes > CLAT_MAX_TYPES)
		return gbuild_say(err, errlen, "%u types: expected 1..%u", ntypes, CLAT_MAX_TYPES);
	for (i = 0; i < ntypes; i++) {
		ret = gbuild_resolve(&types[i], err, errlen);
		if (ret)
			return ret;
		for (j = 0; j < i; j++)
			if (!strcmp(types[i].name, types[j].name))
				return gbuild_say(err, errlen, "type name '%s' used twice", types[i].name);
	}
	return 0;
}

int gbuild_create(const char *path, const struct gbuild_opts *o, struct gbuild_type *types,
		  unsigned int ntypes, uint64_t *bat_gpa, char *err, size_t errlen)
{
	uint64_t need, seed;
	struct gmem g;
	bool fresh;
	int ret;

	if (!o->size || o->size % CLAT_PAGE_SIZE)
		return gbuild_say(err, errlen, "size %" PRIu64 " is not a non-zero multiple of %u",
				  o->size, CLAT_PAGE_SIZE);
	ret = check_types(types, ntypes, err, errlen);
	if (ret)
		return ret;
	/* Refuse before touching the file. */
	need = gbuild_pages_needed(types, ntypes);
	if (need > (o->size >> PAGE_SHIFT) - 1)
		return gbuild_say(err, errlen, "guest memory too small: the tables need %" PRIu64
				  " pages (%" PRIu64 " bytes) plus page 0, --size is %" PRIu64 " bytes",
				  need, need << PAGE_SHIFT, o->size), -ENOSPC;
	ret = open_file(path, o, &fresh, err, errlen);
	if (ret)
		return ret;
	ret = gmem_open(path, true, &g);
	if (ret) {
		gbuild_say(err, errlen, "%s: %s", path, strerror(-ret));
		goto out;
	}
	seed = o->layout_seed_set ? o->layout_seed : layout_default_seed(types, ntypes);
	ret = gbuild_write(&g, fresh, seed, types, ntypes, bat_gpa, err, errlen);
	gmem_close(&g);
out:
	if (ret && fresh)
		unlink(path);
	return ret;
}
