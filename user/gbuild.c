// SPDX-License-Identifier: GPL-2.0
/* The guest side: builds BAT/CLAT/blocks in a guest memory file, and damages
 * them on purpose for tests.
 *
 * Pages and blocks are scattered over the file in a seeded pseudo-random
 * order with random gaps, like a guest allocator would leave them, so that
 * nothing downstream can get away with assuming the tables are contiguous.
 */
#include "gbuild.h"
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
#define PAGE_SHIFT 12

__attribute__((format(printf, 3, 4)))
static int say(char *buf, size_t len, const char *fmt, ...)
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
		return say(err, errlen, "'%.*s' is not key=value", (int)n, kv);
	klen = (size_t)(eq - kv);
	if (klen == 5 && !strncmp(kv, "proto", 5)) {
		if (parse_proto(eq + 1, n - klen - 1, &t->proto_mask))
			return say(err, errlen, "proto '%.*s': expected tcp, udp or any",
				   (int)(n - klen - 1), eq + 1);
		return 0;
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strlen(keys[i].key) != klen || strncmp(kv, keys[i].key, klen))
			continue;
		if (parse_num(eq + 1, n - klen - 1, keys[i].suffix, keys[i].max, &v))
			return say(err, errlen, "%s '%.*s': expected an integer 0..%" PRIu64 "%s",
				   keys[i].key, (int)(n - klen - 1), eq + 1, keys[i].max,
				   keys[i].suffix ? " (K/M suffix allowed)" : "");
		*(uint32_t *)((char *)t + keys[i].off) = (uint32_t)v;
		if (!strcmp(keys[i].key, "seed"))
			t->seed_set = true;
		return 0;
	}
	return say(err, errlen, "unknown key '%.*s' (expected ctx, block, services, levels, "
		   "entries, proto or seed)", (int)klen, kv);
}

int gbuild_parse_type(const char *spec, struct gbuild_type *t, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':'), *p;
	size_t nlen, i;

	memset(t, 0, sizeof(*t));
	if (!colon)
		return say(err, errlen, "expected NAME:ctx=A,block=B,services=S[,...]");
	nlen = (size_t)(colon - spec);
	if (nlen < 1 || nlen >= sizeof(t->name))
		return say(err, errlen, "name '%.*s' must be 1..%zu characters", (int)nlen, spec,
			   sizeof(t->name) - 1);
	for (i = 0; i < nlen; i++)
		if (spec[i] <= 0x20 || spec[i] > 0x7e || spec[i] == ',' || spec[i] == '=')
			return say(err, errlen, "name '%.*s': only printable characters other "
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
		return say(err, errlen, "type '%s': ctx=, block= and services= are required "
			   "and must be non-zero", t->name);
	return 0;
}

/* ---- Geometry ------------------------------------------------------------ */

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static uint64_t cap_of(uint32_t per_block, uint32_t c, uint32_t levels)
{
	uint64_t cap = per_block;

	while (levels--)
		cap *= c;
	return cap;
}

/* Same rule as gtables.c: entries needed per level, pages per level. */
struct bgeom {
	uint64_t nblocks, npages;
	uint64_t need[CLAT_MAX_LEVELS];
	uint64_t pages[CLAT_MAX_LEVELS];
	uint64_t start[CLAT_MAX_LEVELS]; /* BFS index of a level's first page */
};

static void bgeom_of(const struct gbuild_type *t, struct bgeom *g)
{
	uint64_t span = 1;
	uint32_t x;

	memset(g, 0, sizeof(*g));
	g->nblocks = div_up(t->services, t->block_size / t->ctx_size);
	for (x = t->levels; x-- > 0;) {
		g->need[x] = div_up(g->nblocks, span);
		span *= t->clat_entries;
	}
	for (x = 0; x < t->levels; x++) {
		g->pages[x] = x ? g->need[x - 1] : 1;
		g->start[x] = g->npages;
		g->npages += g->pages[x];
	}
}

int gbuild_resolve(struct gbuild_type *t, char *err, size_t errlen)
{
	uint32_t p;

	if (!t->name[0] || !memchr(t->name, 0, sizeof(t->name)))
		return say(err, errlen, "type name must be 1..%zu characters", sizeof(t->name) - 1);
	if (t->ctx_size < sizeof(struct clat_ctx) || t->ctx_size % 8)
		return say(err, errlen, "type '%s': ctx=%u must be a multiple of 8 and at least %zu",
			   t->name, t->ctx_size, sizeof(struct clat_ctx));
	if (!t->block_size || t->block_size % CLAT_PAGE_SIZE || t->block_size > MAX_BLOCK_SIZE)
		return say(err, errlen, "type '%s': block=%u must be a multiple of %u up to %u",
			   t->name, t->block_size, CLAT_PAGE_SIZE, MAX_BLOCK_SIZE);
	if (t->block_size % t->ctx_size)
		return say(err, errlen, "type '%s': context size A=%u does not divide block size "
			   "B=%u", t->name, t->ctx_size, t->block_size);
	if (!t->services)
		return say(err, errlen, "type '%s': services must be at least 1", t->name);
	if (!t->clat_entries)
		t->clat_entries = GBUILD_DEFAULT_ENTRIES;
	if (t->clat_entries > CLAT_MAX_CLAT_ENTRIES)
		return say(err, errlen, "type '%s': entries=%u out of range 1..%u", t->name,
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
		return say(err, errlen, "type '%s': levels=%u out of range 1..%u", t->name,
			   t->levels, CLAT_MAX_LEVELS);
	if (cap_of(p, t->clat_entries, t->levels) < t->services)
		return say(err, errlen, "type '%s': services=%u exceed P*C^N = %u*%u^%u = %" PRIu64,
			   t->name, t->services, p, t->clat_entries, t->levels,
			   cap_of(p, t->clat_entries, t->levels));
	if (!t->seed_set) {
		if (getrandom(&t->hash_seed, sizeof(t->hash_seed), 0) != sizeof(t->hash_seed)) {
			int e = errno;

			say(err, errlen, "getrandom: %s", strerror(e));
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

/* ---- Layout -------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

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

static uint64_t *obj_slot(struct layout *ly, uint64_t id, uint64_t *pages)
{
	unsigned int t;

	*pages = 1;
	if (id == 0)
		return &ly->bat_gpa;
	for (t = 0; t < ly->ntypes; t++) {
		uint64_t i = id - ly->base[t];

		if (id >= ly->base[t + 1])
			continue;
		if (i < ly->geo[t].npages)
			return &ly->page_gpa[t][i];
		*pages = ly->block_pages[t];
		return &ly->block_gpa[t][i - ly->geo[t].npages];
	}
	return NULL;
}

static void layout_free(struct layout *ly)
{
	unsigned int t;

	for (t = 0; t < CLAT_MAX_TYPES; t++) {
		free(ly->page_gpa[t]);
		free(ly->block_gpa[t]);
	}
}

static int layout_place(struct layout *ly, uint64_t file_pages, uint64_t seed)
{
	uint64_t nobj = ly->base[ly->ntypes], used = 0, slack, left, pos = 1, i, maxgap, pages;
	uint32_t *perm;

	perm = malloc(nobj * sizeof(*perm));
	if (!perm)
		return -ENOMEM;
	for (i = 0; i < nobj; i++) {
		obj_slot(ly, i, &pages);
		used += pages;
		perm[i] = (uint32_t)i;
	}
	for (i = nobj - 1; i > 0; i--) { /* Fisher-Yates */
		uint64_t j = splitmix64(&seed) % (i + 1);
		uint32_t tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	/* Page 0 is never used: GPA 0 means "empty". */
	slack = left = file_pages - 1 - used;
	maxgap = 2 * slack / (nobj + 1);
	for (i = 0; i < nobj; i++) {
		uint64_t gap, *slot = obj_slot(ly, perm[i], &pages);

		if (maxgap)
			gap = splitmix64(&seed) % (maxgap + 1);
		else
			gap = splitmix64(&seed) % (nobj + 1) < slack;
		gap = gap < left ? gap : left;
		left -= gap;
		pos += gap;
		*slot = pos << PAGE_SHIFT;
		pos += pages;
	}
	free(perm);
	return 0;
}

/* The power of two at or above n. */
static uint64_t pow2_up(uint64_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static uint32_t *perm_by_align;
static struct layout *sort_ly;

static int by_align(const void *a, const void *b)
{
	uint64_t pa, pb;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	obj_slot(sort_ly, x, &pa);
	obj_slot(sort_ly, y, &pb);
	pa = pow2_up(pa);
	pb = pow2_up(pb);
	if (pa != pb)
		return pa < pb ? -1 : 1;
	/* Equal alignment: keep the shuffled order (rank in perm_by_align). */
	return perm_by_align[x] < perm_by_align[y] ? -1 : perm_by_align[x] > perm_by_align[y];
}

/* Extent mode: file offsets, later turned into GPAs huge page by huge page.
 * The BAT is object 0 at offset 0 (so a later command finds it without
 * being told); every other object is aligned to its size rounded up to a
 * power of two, so none straddles a huge page.  Shuffled, then sorted by
 * alignment (stable on the shuffle): the only waste is that rounding and
 * at most one alignment step per size class.  No gaps: the huge pages
 * themselves are scattered over guest memory. */
static int layout_place_aligned(struct layout *ly, uint64_t file_pages, uint64_t seed)
{
	uint64_t nobj = ly->base[ly->ntypes], pos = 1, i, pages;
	uint32_t *perm, *rank;

	perm = malloc(nobj * sizeof(*perm));
	rank = malloc(nobj * sizeof(*rank));
	if (!perm || !rank) {
		free(perm);
		free(rank);
		return -ENOMEM;
	}
	ly->bat_gpa = 0;
	for (i = 0; i < nobj; i++)
		perm[i] = (uint32_t)i;
	for (i = nobj - 1; i > 1; i--) { /* Fisher-Yates over objects 1.. */
		uint64_t j = 1 + splitmix64(&seed) % i;
		uint32_t tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	for (i = 0; i < nobj; i++)
		rank[perm[i]] = (uint32_t)i;
	perm_by_align = rank;
	sort_ly = ly;
	qsort(perm + 1, nobj - 1, sizeof(*perm), by_align);
	for (i = 1; i < nobj; i++) {
		uint64_t *slot = obj_slot(ly, perm[i], &pages), align = pow2_up(pages);

		pos = (pos + align - 1) & ~(align - 1);
		if (pos + pages > file_pages)
			break;
		*slot = pos << PAGE_SHIFT;
		pos += pages;
	}
	free(perm);
	free(rank);
	return i < nobj ? -ENOSPC : 0;
}

static int layout_init(struct layout *ly, const struct gbuild_type *types, unsigned int n)
{
	unsigned int t;

	memset(ly, 0, sizeof(*ly));
	ly->ntypes = n;
	ly->base[0] = 1;
	for (t = 0; t < n; t++) {
		bgeom_of(&types[t], &ly->geo[t]);
		ly->block_pages[t] = types[t].block_size >> PAGE_SHIFT;
		ly->base[t + 1] = ly->base[t] + ly->geo[t].npages + ly->geo[t].nblocks;
		ly->page_gpa[t] = calloc(ly->geo[t].npages, sizeof(uint64_t));
		ly->block_gpa[t] = calloc(ly->geo[t].nblocks, sizeof(uint64_t));
		if (!ly->page_gpa[t] || !ly->block_gpa[t])
			return -ENOMEM;
	}
	/* The permutation holds 32-bit object ids. */
	return ly->base[n] > UINT32_MAX ? -E2BIG : 0;
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

/* Holes already read as zeroes: writing zeroes there would only fill the
 * file and the page cache. */
static void clear_objects(struct gmem *g, struct layout *ly)
{
	struct gmem_data d;
	uint64_t i, pages;

	gmem_data_scan(g, &d);
	for (i = 0; i < ly->base[ly->ntypes]; i++) {
		uint64_t *slot = obj_slot(ly, i, &pages), len = pages << PAGE_SHIFT;

		if (!gmem_data_hole(&d, *slot, len))
			memset(gmem_ptr(g, *slot, len), 0, len);
	}
	gmem_data_free(&d);
}

/* Extent mode: the layout was made in file offsets; the tables hold GPAs. */
static void layout_to_gpa(const struct gmem *g, struct layout *ly)
{
	uint64_t i, pages;

	for (i = 0; i < ly->base[ly->ntypes]; i++) {
		uint64_t *slot = obj_slot(ly, i, &pages);

		*slot = gmem_gpa_of(g, *slot);
	}
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
		return say(err, errlen, "%u types: expected 1..%u", ntypes, CLAT_MAX_TYPES);
	if (!g->writable)
		return say(err, errlen, "guest memory is read-only"), -EBADF;
	if (have < 1 || need > have - 1)
		return say(err, errlen, "guest memory too small: the tables need %" PRIu64
			   " pages (%" PRIu64 " bytes) but only %" PRIu64 " pages after page 0 "
			   "are available (size %" PRIu64 ")", need, need << PAGE_SHIFT,
			   have ? have - 1 : 0, g->map_len), -ENOSPC;
	ret = layout_init(&ly, types, ntypes);
	if (!ret)
		ret = ext ? layout_place_aligned(&ly, have, layout_seed)
			  : layout_place(&ly, have, layout_seed);
	if (ret == -ENOSPC) {
		layout_free(&ly);
		return say(err, errlen, "guest memory too small: the tables need %" PRIu64
			   " pages, more than the %" PRIu64 " pages of the file once every object "
			   "is aligned to its size (rounded up to a power of two) so that none "
			   "straddles a huge page", need, have), -ENOSPC;
	}
	if (ret) {
		layout_free(&ly);
		return say(err, errlen, "cannot lay out %" PRIu64 " tables: %s",
			   ly.base[ly.ntypes], strerror(-ret)), ret;
	}
	if (ext)
		layout_to_gpa(g, &ly);
	/* Only a few scattered pages are touched: no readahead around them. */
	madvise(g->base, g->map_len, MADV_RANDOM);
	if (!fresh)
		clear_objects(g, &ly);
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
	return say(err, errlen, "%s is on hugetlbfs: --size %" PRIu64 " must be a multiple of "
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
		return ret = -errno, say(err, errlen, "%s: %s", path, strerror(-ret)), ret;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return say(err, errlen, "%s: not a regular file", path), -EINVAL;
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
		return say(err, errlen, "%s exists with size %lld, not %" PRIu64 " (use --force "
			   "to resize it)", path, (long long)st.st_size, o->size), -EEXIST;
	}
	ret = ftruncate(fd, (off_t)o->size) < 0 ? -errno : 0;
out:
	if (ret)
		say(err, errlen, "%s: %s", path, strerror(-ret));
	close(fd);
	return ret;
}

static uint64_t default_layout_seed(const struct gbuild_type *types, unsigned int n)
{
	uint64_t s = 0x636c6174ULL; /* "clat" */
	unsigned int t;

	for (t = 0; t < n; t++) {
		s ^= types[t].hash_seed;
		s = splitmix64(&s);
	}
	return s;
}

static int check_types(struct gbuild_type *types, unsigned int ntypes, char *err, size_t errlen)
{
	unsigned int i, j;
	int ret;

	if (ntypes < 1 || ntypes > CLAT_MAX_TYPES)
		return say(err, errlen, "%u types: expected 1..%u", ntypes, CLAT_MAX_TYPES);
	for (i = 0; i < ntypes; i++) {
		ret = gbuild_resolve(&types[i], err, errlen);
		if (ret)
			return ret;
		for (j = 0; j < i; j++)
			if (!strcmp(types[i].name, types[j].name))
				return say(err, errlen, "type name '%s' used twice", types[i].name);
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
		return say(err, errlen, "size %" PRIu64 " is not a non-zero multiple of %u",
			   o->size, CLAT_PAGE_SIZE);
	ret = check_types(types, ntypes, err, errlen);
	if (ret)
		return ret;
	/* Refuse before touching the file. */
	need = gbuild_pages_needed(types, ntypes);
	if (need > (o->size >> PAGE_SHIFT) - 1)
		return say(err, errlen, "guest memory too small: the tables need %" PRIu64
			   " pages (%" PRIu64 " bytes) plus page 0, --size is %" PRIu64 " bytes",
			   need, need << PAGE_SHIFT, o->size), -ENOSPC;
	ret = open_file(path, o, &fresh, err, errlen);
	if (ret)
		return ret;
	ret = gmem_open(path, true, &g);
	if (ret) {
		say(err, errlen, "%s: %s", path, strerror(-ret));
		goto out;
	}
	seed = o->layout_seed_set ? o->layout_seed : default_layout_seed(types, ntypes);
	ret = gbuild_write(&g, fresh, seed, types, ntypes, bat_gpa, err, errlen);
	gmem_close(&g);
out:
	if (ret && fresh)
		unlink(path);
	return ret;
}

/* ---- Corruption ---------------------------------------------------------- */

const char *const gbuild_corrupt_kinds[] = {
	"gpa-out-of-range", "misaligned", "cycle", "shared-page", "too-many-levels",
	"ctx-not-dividing", "bad-magic", "bad-version", "truncated", "capacity-mismatch",
	"bad-ctx-state", "ctx-selfcheck", "shared-new-block", NULL,
};

struct corrupt {
	struct gmem *g;
	struct gtables t;
	struct gtype *gt;
	char *msg;
	size_t msglen;
};

/* Rewrites one 64-bit CLAT entry, logging old -> new. */
static int poke_entry(struct corrupt *c, uint32_t level, uint64_t entry_gpa, uint64_t v)
{
	uint64_t *p = gmem_ptr(c->g, entry_gpa, sizeof(*p));

	snprintf(c->msg, c->msglen, "type %u (%s): level %u entry at GPA 0x%" PRIx64
		 ": 0x%" PRIx64 " -> 0x%" PRIx64, c->gt->index, c->gt->e.name, level, entry_gpa,
		 *p, v);
	*p = v;
	return 0;
}

static struct clat_bat_entry *bat_entry(struct corrupt *c)
{
	return gmem_ptr(c->g, c->gt->entry_gpa, sizeof(struct clat_bat_entry));
}

static struct clat_ctx *ctx_of(struct corrupt *c, uint32_t svc)
{
	return gmem_ptr(c->g, gtype_ctx_gpa(c->gt, svc), sizeof(struct clat_ctx));
}

static int corrupt_walk(struct corrupt *c, const char *kind)
{
	struct gtype *gt = c->gt;
	uint32_t n = gt->e.levels;
	struct gtype_path a, b;

	gtype_path(gt, 1, &a);
	if (!strcmp(kind, "gpa-out-of-range")) {
		gtype_path(gt, gt->e.capacity, &b);
		return poke_entry(c, n, b.entry_gpa[n - 1], c->g->size);
	}
	if (!strcmp(kind, "shared-new-block")) {
		/* The last block (after a grow: a new one) aliases the first. */
		gtype_path(gt, gt->e.capacity, &b);
		return poke_entry(c, n, b.entry_gpa[n - 1], a.block_gpa);
	}
	if (!strcmp(kind, "misaligned"))
		return poke_entry(c, n, a.entry_gpa[n - 1], a.block_gpa + 8);
	if (!strcmp(kind, "cycle")) {
		/* Back to the level-1 page: from level 2 if that is not the last
		 * level, else level 1 points at itself. */
		if (n >= 3)
			return poke_entry(c, 2, a.entry_gpa[1], gt->page_gpa[0]);
		return poke_entry(c, 1, a.entry_gpa[0], gt->page_gpa[0]);
	}
	/* shared-page: two entries, one block; or a block that is a CLAT page. */
	if (gt->nblocks >= 2) {
		gtype_path(gt, gt->per_block + 1, &b);
		return poke_entry(c, n, b.entry_gpa[n - 1], a.block_gpa);
	}
	return poke_entry(c, n, a.entry_gpa[n - 1], gt->page_gpa[0]);
}

static int corrupt_bat(struct corrupt *c, const char *kind)
{
	struct clat_bat_hdr *h = gmem_ptr(c->g, c->t.bat_gpa, sizeof(*h));
	struct clat_bat_entry *e = bat_entry(c);
	uint32_t a;

	if (!strcmp(kind, "bad-magic")) {
		snprintf(c->msg, c->msglen, "BAT at GPA 0x%" PRIx64 ": magic 0x%08x -> 0xdeadbeef",
			 c->t.bat_gpa, h->magic);
		h->magic = 0xdeadbeef;
	} else if (!strcmp(kind, "bad-version")) {
		/* The version before: tables left by an older clat. */
		snprintf(c->msg, c->msglen, "BAT at GPA 0x%" PRIx64 ": version %u -> %u",
			 c->t.bat_gpa, h->version, CLAT_BAT_VERSION - 1);
		h->version = CLAT_BAT_VERSION - 1;
	} else if (!strcmp(kind, "too-many-levels")) {
		snprintf(c->msg, c->msglen, "type %u (%s): levels %u -> %u", c->gt->index,
			 e->name, e->levels, CLAT_MAX_LEVELS + 1);
		e->levels = CLAT_MAX_LEVELS + 1;
	} else if (!strcmp(kind, "ctx-not-dividing")) {
		for (a = e->ctx_size + 8; e->block_size % a == 0; a += 8)
			;
		snprintf(c->msg, c->msglen, "type %u (%s): ctx_size %u -> %u (block size %u)",
			 c->gt->index, e->name, e->ctx_size, a, e->block_size);
		e->ctx_size = a;
	} else { /* capacity-mismatch */
		uint64_t more = (uint64_t)c->gt->e.capacity + c->gt->per_block;
		uint64_t lim = c->gt->per_block;
		uint32_t cap = e->capacity, x;

		for (x = 0; x < e->levels; x++)
			lim *= e->clat_entries;
		/* One more block than the tables hold (an entry is missing), or
		 * one fewer (an entry is extra) when the tables are full. */
		if (more <= lim && more <= UINT32_MAX)
			e->capacity = (uint32_t)more;
		else if (cap > c->gt->per_block) {
			struct clat_seg *last = &e->seg[e->nsegs - 1];

			e->capacity = cap - c->gt->per_block;
			/* Keep the segments inside: the walk is what must fail. */
			if (last->base + last->size > e->capacity && last->size > c->gt->per_block)
				last->size -= c->gt->per_block;
		} else
			return say(c->msg, c->msglen, "capacity-mismatch needs a type with room "
				   "for one more block or more than one block");
		snprintf(c->msg, c->msglen, "type %u (%s): capacity %u -> %u", c->gt->index,
			 e->name, cap, e->capacity);
	}
	return 0;
}

static int corrupt_ctx(struct corrupt *c, const char *kind)
{
	uint32_t svc = c->gt->e.capacity / 2 + 1;
	struct clat_ctx *x = ctx_of(c, svc);
	uint64_t gpa = gtype_ctx_gpa(c->gt, svc);

	if (!strcmp(kind, "bad-ctx-state")) {
		snprintf(c->msg, c->msglen, "type %u (%s): context of svc %u at GPA 0x%" PRIx64
			 ": state word 0x%" PRIx64 " -> 0x7", c->gt->index, c->gt->e.name, svc, gpa,
			 (uint64_t)x->state_word);
		x->state_word = 7;
		return 0;
	}
	snprintf(c->msg, c->msglen, "type %u (%s): context of svc %u at GPA 0x%" PRIx64
		 ": made LIVE with svc field %u", c->gt->index, c->gt->e.name, svc, gpa, svc + 1);
	x->state_word = CLAT_SLOT_LIVE | (0x5eedULL << CLAT_SLOT_TAG_SHIFT);
	x->svc = svc + 1;
	x->type = (uint16_t)c->gt->index;
	return 0;
}

static int corrupt_truncate(struct corrupt *c)
{
	/* Cut the file at the BAT: its header now ends past the end. */
	uint64_t size = c->t.bat_gpa;

	if (ftruncate(c->g->fd, (off_t)size) < 0) {
		int e = errno;

		say(c->msg, c->msglen, "ftruncate: %s", strerror(e));
		return -e;
	}
	snprintf(c->msg, c->msglen, "guest memory truncated from %" PRIu64 " to %" PRIu64
		 " bytes, at the BAT (GPA 0x%" PRIx64 ")", c->g->size, size, c->t.bat_gpa);
	return 0;
}

static bool kind_fits(const char *kind, const struct gtype *gt)
{
	if (!strcmp(kind, "cycle"))
		return gt->e.levels >= 2;
	return true;
}

int gbuild_corrupt(struct gmem *g, uint64_t bat_gpa, const char *kind, int type, char *msg,
		   size_t msglen)
{
	struct corrupt c = { .g = g, .msg = msg, .msglen = msglen };
	char err[512];
	unsigned int i;
	int ret;

	for (i = 0; gbuild_corrupt_kinds[i] && strcmp(gbuild_corrupt_kinds[i], kind); i++)
		;
	if (!gbuild_corrupt_kinds[i])
		return say(msg, msglen, "unknown kind '%s'", kind);
	if (!g->writable)
		return say(msg, msglen, "guest memory is read-only"), -EBADF;
	ret = gtables_load(g, bat_gpa, &c.t, err, sizeof(err));
	if (ret)
		return say(msg, msglen, "the tables are not valid to begin with: %s", err), -EIO;
	if (type >= (int)c.t.ntypes) {
		gtables_free(&c.t);
		return say(msg, msglen, "no type %d: the BAT has %u", type, c.t.ntypes);
	}
	for (i = type < 0 ? 0 : (unsigned int)type; i < c.t.ntypes; i++)
		if (kind_fits(kind, &c.t.types[i]) || type >= 0)
			break;
	if (i == c.t.ntypes || !kind_fits(kind, &c.t.types[i])) {
		gtables_free(&c.t);
		return say(msg, msglen, "%s needs a type with at least 2 levels", kind), -ENOTSUP;
	}
	c.gt = &c.t.types[i];
	if (!strcmp(kind, "truncated"))
		ret = corrupt_truncate(&c);
	else if (!strcmp(kind, "bad-ctx-state") || !strcmp(kind, "ctx-selfcheck"))
		ret = corrupt_ctx(&c, kind);
	else if (!strcmp(kind, "gpa-out-of-range") || !strcmp(kind, "misaligned") ||
		 !strcmp(kind, "cycle") || !strcmp(kind, "shared-page") ||
		 !strcmp(kind, "shared-new-block"))
		ret = corrupt_walk(&c, kind);
	else
		ret = corrupt_bat(&c, kind);
	gtables_free(&c.t);
	return ret;
}
