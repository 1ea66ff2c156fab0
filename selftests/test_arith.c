// SPDX-License-Identifier: GPL-2.0
/* The offset arithmetic (clat_locate) against the patent's worked examples,
 * and against a brute-force walk of real tables built by gbuild; and the
 * placement helpers (flow hash, tag, candidate buckets) with a simulation
 * of the device's two-choice placement at the load the sizing assumes.
 *
 * The brute force shares nothing with the code under test: it follows the
 * raw GPAs in the file depth-first in entry order and numbers contexts as it
 * meets them, which is what "service number" means in the patent.  Output is
 * TAP; selftests/run.sh adds up the results.
 */
#include <errno.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clat_abi.h"
#include "gbuild.h"
#include "glookup.h"
#include "gtables.h"
#include "tap.h"


/* Diagnostics for the first failures of a group only. */
static int diag_left;

__attribute__((format(printf, 1, 2)))
static void diag(const char *fmt, ...)
{
	va_list ap;

	if (diag_left <= 0)
		return;
	diag_left--;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- The patent's worked examples (EP3211530, step 406) ------------------ */

static void test_patent_examples(void)
{
	struct clat_loc loc;
	int r;

	/* 1 KiB contexts, 4 KiB blocks, one level: svc 100 -> 100*1K/4K = 25
	 * remainder 0, so entry offset 24 and the last element of the block. */
	r = clat_locate(100, 4096 / 1024, 512, 1, &loc);
	check(r == 0 && loc.offset[0] == 24, "svc 100, A=1K B=4K N=1: L1 offset 24 (got %u)",
	   loc.offset[0]);
	check(r == 0 && loc.element + 1 == 4, "svc 100: element m=4, the last of 4 (got %u)",
	   loc.element + 1);

	/* Two levels, C=512: svc 2054 -> L1 offset 1, L2 offset 1, 2nd element. */
	r = clat_locate(2054, 4096 / 1024, 512, 2, &loc);
	check(r == 0 && loc.offset[0] == 1 && loc.offset[1] == 1,
	   "svc 2054, A=1K B=4K N=2 C=512: L1 offset 1, L2 offset 1 (got %u, %u)",
	   loc.offset[0], loc.offset[1]);
	check(r == 0 && loc.element + 1 == 2, "svc 2054: element m=2 (got %u)", loc.element + 1);
}

/* The patent's single-level rule, literally: svc*A/B gives quotient q and
 * remainder r; offset q, or q-1 when r is 0; m = r/A, or the last element
 * when r is 0.  It is exact for one level, so it must agree everywhere. */
static void test_patent_single_level_rule(void)
{
	const uint32_t a = 1024, b = 4096, c = 512, p = b / a;
	uint32_t svc, bad = 0;
	struct clat_loc loc;

	diag_left = 3;
	for (svc = 1; svc <= p * c; svc++) {
		uint64_t q = (uint64_t)svc * a / b, r = (uint64_t)svc * a % b;
		uint64_t off = r ? q : q - 1, m = r ? r / a : p;

		if (clat_locate(svc, p, c, 1, &loc) || loc.offset[0] != off ||
		    loc.element + 1 != m) {
			bad++;
			diag("svc %u: patent offset %" PRIu64 " m %" PRIu64 ", clat_locate %u m %u",
			     svc, off, m, loc.offset[0], loc.element + 1);
		}
	}
	check(!bad, "patent's one-level quotient/remainder rule agrees for svc 1..%u", p * c);
}

static void test_bounds(void)
{
	static const struct { uint32_t p, c, n; } g[] = {
		{ 4, 512, 1 }, { 4, 512, 2 }, { 1, 2, 3 }, { 16, 7, 3 }, { 1, 512, 4 }, { 30, 3, 4 },
	};
	struct clat_loc loc;
	unsigned int i;

	for (i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		uint64_t max = g[i].p, x;

		for (x = 0; x < g[i].n; x++)
			max *= g[i].c;
		check(clat_locate(0, g[i].p, g[i].c, g[i].n, &loc) == -1,
		   "P=%u C=%u N=%u: svc 0 refused", g[i].p, g[i].c, g[i].n);
		check(clat_locate(max, g[i].p, g[i].c, g[i].n, &loc) == 0,
		   "P=%u C=%u N=%u: svc %" PRIu64 " = P*C^N accepted", g[i].p, g[i].c, g[i].n, max);
		check(clat_locate(max + 1, g[i].p, g[i].c, g[i].n, &loc) == -1,
		   "P=%u C=%u N=%u: svc %" PRIu64 " = P*C^N+1 refused", g[i].p, g[i].c, g[i].n,
		   max + 1);
	}
	check(clat_locate(1, 0, 512, 1, &loc) == -1 && clat_locate(1, 4, 0, 1, &loc) == -1 &&
	   clat_locate(1, 4, 512, 0, &loc) == -1 && clat_locate(1, 4, 512, 5, &loc) == -1,
	   "P=0, C=0, N=0 and N=5 refused");
}

/* ---- Brute force over real tables ---------------------------------------- */

struct brute {
	const struct gmem *g;
	const struct gtype *t;
	uint32_t a, p, c, n, cap;
	uint32_t next_svc;           /* numbering as met, depth-first */
	uint32_t path[CLAT_MAX_LEVELS];
	uint64_t bad;
};

static uint64_t raw_u64(const struct gmem *g, uint64_t gpa)
{
	const uint64_t *p = gmem_ptr(g, gpa, sizeof(*p));

	return p ? *p : UINT64_MAX;
}

static void brute_block(struct brute *bf, uint64_t block)
{
	uint32_t e, x, blk, el;
	struct clat_loc loc;

	for (e = 0; e < bf->p && bf->next_svc <= bf->cap; e++) {
		uint32_t svc = bf->next_svc++;
		uint64_t want = block + (uint64_t)e * bf->a;
		uint64_t by_table = bf->t->block_gpa[(svc - 1) / bf->p] +
				    (uint64_t)((svc - 1) % bf->p) * bf->a;
		bool same = !clat_locate(svc, bf->p, bf->c, bf->n, &loc) && loc.element == e;

		for (x = 0; x < bf->n; x++)
			same = same && loc.offset[x] == bf->path[x];
		same = same && gtype_ctx_gpa(bf->t, svc) == want && by_table == want;
		same = same && !gtype_walk(bf->t, svc, &blk, &el) && blk == (svc - 1) / bf->p &&
		       el == e;
		if (!same) {
			bf->bad++;
			diag("svc %u: brute GPA 0x%" PRIx64 " element %u; gtype_ctx_gpa 0x%" PRIx64
			     ", block_gpa[(svc-1)/P] gives 0x%" PRIx64, svc, want, e,
			     gtype_ctx_gpa(bf->t, svc), by_table);
		}
	}
}

static void brute_page(struct brute *bf, uint64_t page, uint32_t level)
{
	uint32_t o;

	for (o = 0; o < bf->c; o++) {
		uint64_t v = raw_u64(bf->g, page + 8ULL * o);

		if (v == CLAT_GPA_NONE)
			continue;
		bf->path[level - 1] = o;
		if (level < bf->n)
			brute_page(bf, v, level + 1);
		else
			brute_block(bf, v);
	}
}

struct geo {
	uint32_t a, b;
};

static char tmpdir[256];

static int build(const char *path, struct gbuild_type *ty, uint64_t extra_pages, uint64_t seed,
		 uint64_t *bat)
{
	struct gbuild_opts o = { .layout_seed_set = true, .layout_seed = seed };
	char err[512];
	int ret;

	ret = gbuild_resolve(ty, err, sizeof(err));
	if (!ret) {
		o.size = (gbuild_pages_needed(ty, 1) + 1 + extra_pages) * CLAT_PAGE_SIZE;
		unlink(path);
		ret = gbuild_create(path, &o, ty, 1, bat, err, sizeof(err));
	}
	if (ret)
		printf("# build %s: %s\n", ty->name, err);
	return ret;
}

/* One geometry, one capacity: every svc through clat_locate, gtype_walk and
 * the raw GPAs must agree.  Returns the number of disagreements. */
static uint64_t brute_one(uint32_t n, uint32_t c, const struct geo *geo, uint32_t cap,
			  bool *scattered)
{
	struct gbuild_type ty = { .ctx_size = geo->a, .block_size = geo->b, .services = cap,
				  .levels = n, .clat_entries = c, .seed_set = true };
	struct brute bf = { .a = geo->a, .p = geo->b / geo->a, .c = c, .n = n, .cap = cap,
			    .next_svc = 1 };
	char path[300], err[512];
	struct gtables t;
	struct gmem g;
	uint64_t bat, bad = 0;
	uint32_t i;

	snprintf(ty.name, sizeof(ty.name), "t%u", n);
	snprintf(path, sizeof(path), "%s/mem", tmpdir);
	if (build(path, &ty, cap % 5 + 3, cap * 31 + c, &bat) || gmem_open(path, false, &g))
		return 1;
	if (gtables_load(&g, bat, &t, err, sizeof(err))) {
		printf("# load: %s\n", err);
		gmem_close(&g);
		return 1;
	}
	bf.g = &g;
	bf.t = &t.types[0];
	brute_page(&bf, raw_u64(&g, bat + sizeof(struct clat_bat_hdr)), 1);
	bad += bf.bad;
	if (bf.next_svc != cap + 1) {
		diag("walk met %u services, capacity %u", bf.next_svc - 1, cap);
		bad++;
	}
	if (gtype_ctx_gpa(bf.t, 0) || gtype_ctx_gpa(bf.t, cap + 1)) {
		diag("svc 0 or svc capacity+1 got a GPA");
		bad++;
	}
	for (i = 0; i + 1 < bf.t->nblocks; i++)
		if (bf.t->block_gpa[i + 1] != bf.t->block_gpa[i] + geo->b)
			*scattered = true;
	gtables_free(&t);
	gmem_close(&g);
	return bad;
}

/* Capacities around every block and page boundary. */
static unsigned int capacities(uint32_t p, uint32_t c, uint32_t n, uint32_t *out)
{
	uint64_t full = p, cand[12];
	unsigned int i, j, k = 0, m = 0;

	for (i = 0; i < n; i++)
		full *= c;
	cand[k++] = 1;
	cand[k++] = p;
	cand[k++] = p + 1;
	cand[k++] = (uint64_t)p * c;
	cand[k++] = (uint64_t)p * c + 1;
	cand[k++] = full / c;
	cand[k++] = full / c + 1;
	cand[k++] = full - p;
	cand[k++] = full - 1;
	cand[k++] = full;
	for (i = 0; i < k; i++) {
		if (cand[i] < 1 || cand[i] > full)
			continue;
		for (j = 0; j < m && out[j] != cand[i]; j++)
			;
		if (j == m)
			out[m++] = (uint32_t)cand[i];
	}
	return m;
}

static void test_brute_force(void)
{
	static const struct geo geos[] = {
		{ 1024, 4096 }, { 256, 4096 }, { 4096, 4096 }, { 512, 8192 }, { 128, 4096 },
		{ 136, 69632 },
	};
	static const uint32_t cs[] = { 2, 3, 4, 7 };
	bool scattered = false;
	uint32_t n, ci, gi, caps[12], k, m;

	for (n = 1; n <= 3; n++) {
		for (ci = 0; ci < sizeof(cs) / sizeof(cs[0]); ci++) {
			for (gi = 0; gi < sizeof(geos) / sizeof(geos[0]); gi++) {
				uint32_t p = geos[gi].b / geos[gi].a;
				uint32_t top = 0;
				uint64_t bad = 0;

				diag_left = 3;
				m = capacities(p, cs[ci], n, caps);
				for (k = 0; k < m; k++) {
					bad += brute_one(n, cs[ci], &geos[gi], caps[k], &scattered);
					top = caps[k] > top ? caps[k] : top;
				}
				check(!bad, "N=%u C=%u A=%u B=%u (P=%u), %u capacities up to %u: "
				   "clat_locate, gtype_walk and the raw GPAs agree for every svc", n,
				   cs[ci], geos[gi].a, geos[gi].b, p, m, top);
			}
		}
	}
	check(scattered, "gbuild scatters blocks (not one contiguous run)");
}

/* The patent's geometries at full size, through real tables. */
static void test_patent_tables(void)
{
	static const struct geo g = { 1024, 4096 };
	bool scattered = false;

	diag_left = 3;
	check(!brute_one(1, 512, &g, 2048, &scattered),
	   "patent one-level table (2K services, 512 blocks) agrees with brute force");
	check(!brute_one(2, 512, &g, 16384, &scattered),
	   "patent two-level table (16K services, 8 level-2 pages) agrees with brute force");
}

/* ---- Placement helpers ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void test_bucket_of(void)
{
	static const uint64_t edge_h[] = { 0, 1, 0xffffffffULL, 0xffffffff00000000ULL,
					   UINT64_MAX };
	static const uint32_t edge_n[] = { 1, 2, 3, 31, 32, 33, 65535, 1000000 };
	uint64_t rng = 1, bad = 0, i, h;
	uint32_t n, c, b, j, k;

	diag_left = 3;
	for (i = 0; i < 1000000; i++) {
		h = splitmix64(&rng);
		n = (uint32_t)(splitmix64(&rng) % 1000000) + 1;
		for (c = 0; c < CLAT_BUCKET_CHOICES; c++) {
			b = clat_bucket_of(h, c, n);
			if (b >= n) {
				bad++;
				diag("clat_bucket_of(0x%" PRIx64 ", %u, %u) = %u", h, c, n, b);
			}
		}
	}
	for (j = 0; j < sizeof(edge_h) / sizeof(edge_h[0]); j++)
		for (k = 0; k < sizeof(edge_n) / sizeof(edge_n[0]); k++)
			for (c = 0; c < CLAT_BUCKET_CHOICES; c++)
				if (clat_bucket_of(edge_h[j], c, edge_n[k]) >= edge_n[k]) {
					bad++;
					diag("clat_bucket_of(0x%" PRIx64 ", %u, %u) out of range",
					     edge_h[j], c, edge_n[k]);
				}
	check(!bad, "clat_bucket_of stays below nbuckets for 1M random hashes, nbuckets "
	      "1..1e6, and the extreme hashes");
}

/* The tag depends only on the top 16 bits of h * K, K odd: h = K^-1 * (t << 48)
 * reaches each of the 65536 values, so the check is exhaustive. */
static void test_tag_of(void)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	uint64_t inv = k, rng = 2, bad = 0, i;
	uint32_t t, seen = 0;
	uint16_t tag;
	int step;

	diag_left = 3;
	for (step = 0; step < 6; step++) /* Newton: each step doubles the good bits */
		inv *= 2 - k * inv;
	for (t = 0; t <= 0xffff; t++) {
		tag = clat_tag_of(inv * ((uint64_t)t << 48));
		if (tag == CLAT_TAG_FREE || tag == CLAT_TAG_FENCE) {
			bad++;
			diag("top bits 0x%04x give tag 0x%04x", t, tag);
		}
		seen += tag == 0xfffe;
	}
	for (i = 0; i < 1000000; i++) {
		tag = clat_tag_of(splitmix64(&rng));
		bad += tag == CLAT_TAG_FREE || tag == CLAT_TAG_FENCE;
	}
	check(inv * k == 1 && !bad && seen,
	      "clat_tag_of never returns FREE (0) or FENCE (0xffff): all 65536 top-bit values "
	      "and 1M random hashes; 0xfffe is reached");
}

static void v4_key(struct clat_flow_key *key, uint32_t vm, uint32_t remote, uint16_t vm_port,
		   uint16_t remote_port, uint8_t proto)
{
	memset(key, 0, sizeof(*key));
	key->vm_addr[10] = key->vm_addr[11] = 0xff;
	key->remote_addr[10] = key->remote_addr[11] = 0xff;
	vm = htonl(vm);
	remote = htonl(remote);
	memcpy(key->vm_addr + 12, &vm, 4);
	memcpy(key->remote_addr + 12, &remote, 4);
	key->vm_port = htons(vm_port);
	key->remote_port = htons(remote_port);
	key->proto = proto;
}

/* Every bit that carries information moves the hash: the ports and the
 * protocol, the IPv4 addresses of a mapped key, and every address bit of an
 * IPv6 key (whose prefix is not the mapping's, so all of it is hashed). */
static void test_flow_hash(void)
{
	struct clat_flow_key base, k;
	uint64_t rng = 3, h, same = 0, tries = 0;
	uint32_t r, bit, seed;
	uint8_t *bytes = (uint8_t *)&k;

	diag_left = 3;
	for (r = 0; r < 64; r++) {
		seed = (uint32_t)splitmix64(&rng);
		v4_key(&base, (uint32_t)splitmix64(&rng), (uint32_t)splitmix64(&rng),
		       (uint16_t)splitmix64(&rng), (uint16_t)splitmix64(&rng),
		       r & 1 ? IPPROTO_TCP : IPPROTO_UDP);
		h = clat_flow_hash(seed, &base);
		/* Bytes 12..15 and 28..31: the IPv4 addresses; 32..36: ports, proto. */
		for (bit = 0; bit < 8 * 37; bit++) {
			uint32_t byte = bit / 8;

			if (!((byte >= 12 && byte < 16) || byte >= 28))
				continue;
			k = base;
			bytes[byte] ^= 1 << (bit % 8);
			tries++;
			if (clat_flow_hash(seed, &k) == h) {
				same++;
				diag("seed 0x%x: flipping key bit %u leaves the hash", seed, bit);
			}
		}
		/* The same flow over IPv6: every address bit counts. */
		k = base;
		bytes[10] = 0x20; /* no longer ::ffff:0:0/96 */
		h = clat_flow_hash(seed, &k);
		base = k;
		for (bit = 0; bit < 8 * 32; bit++) {
			k = base;
			bytes[bit / 8] ^= 1 << (bit % 8);
			tries++;
			if (clat_flow_hash(seed, &k) == h) {
				same++;
				diag("seed 0x%x: IPv6 key bit %u leaves the hash", seed, bit);
			}
		}
	}
	check(!same, "clat_flow_hash changes with every port, protocol and address bit "
	      "(%" PRIu64 " one-bit flips of IPv4-mapped and IPv6 keys)", tries);
}

/* Sequential ports (a scan, a NAT's port range) spread over every bucket
 * like random ones: a chi-square test of each candidate's counts. */
static void test_flow_hash_spread(void)
{
	enum { NB = 2048, FLOWS = 65536 };
	static uint32_t count[CLAT_BUCKET_CHOICES][NB];
	const double want = (double)FLOWS / NB;
	double chi2[CLAT_BUCKET_CHOICES] = { 0 }, worst = 0;
	struct clat_flow_key k;
	uint32_t i, c, empty = 0;
	uint64_t h;

	memset(count, 0, sizeof(count));
	for (i = 0; i < FLOWS; i++) {
		v4_key(&k, 0x0a000001, 0xc0000207, 80, (uint16_t)i, IPPROTO_TCP);
		h = clat_flow_hash(42, &k);
		for (c = 0; c < CLAT_BUCKET_CHOICES; c++)
			count[c][clat_bucket_of(h, c, NB)]++;
	}
	for (c = 0; c < CLAT_BUCKET_CHOICES; c++) {
		for (i = 0; i < NB; i++) {
			chi2[c] += (count[c][i] - want) * (count[c][i] - want) / want;
			empty += !count[c][i];
		}
		worst = chi2[c] > worst ? chi2[c] : worst;
	}
	/* NB - 1 degrees of freedom: mean 2047, sd 64; 6 sd is never chance. */
	check(!empty && worst < NB + 6 * 64, "65536 sequential remote ports over %u buckets: "
	      "every bucket reached, chi-square %.0f and %.0f (uniform: 2047 +- 64)", NB,
	      chi2[0], chi2[1]);
}

/* The device's claim, greedily: the emptier of the two candidates (ties:
 * candidate 0), failing only when both are full.  Returns the failures and
 * the fullest bucket.  Keys are distinct IPv4 flows, hashed for real. */
static uint64_t place_all(uint32_t slots, uint32_t flows, uint32_t seed, uint32_t *fullest)
{
	uint32_t nb = slots / CLAT_BUCKET_SLOTS, i, b0, b1, f0, f1, b;
	uint8_t *fill = calloc(nb, 1);
	struct clat_flow_key k;
	uint64_t fail = 0, h;

	*fullest = 0;
	if (!fill)
		return flows;
	for (i = 0; i < flows; i++) {
		v4_key(&k, 0x0a000001, 0xc0000000 | i >> 8, 443, (uint16_t)(1024 + (i & 0xff)),
		       IPPROTO_TCP);
		h = clat_flow_hash(seed, &k);
		b0 = clat_bucket_of(h, 0, nb);
		b1 = clat_bucket_of(h, 1, nb);
		f0 = CLAT_BUCKET_SLOTS - fill[b0];
		f1 = b1 == b0 ? 0 : CLAT_BUCKET_SLOTS - fill[b1];
		if (!f0 && !f1) {
			fail++;
			continue;
		}
		b = f1 > f0 ? b1 : b0;
		fill[b]++;
		*fullest = fill[b] > *fullest ? fill[b] : *fullest;
	}
	free(fill);
	return fail;
}

/* The sizing claim: at 90% load of 32-slot buckets every flow finds a
 * slot.  Several hash seeds, since one could be lucky. */
static void test_two_choice_load(void)
{
	static const uint32_t sizes[] = { 1 << 16, 1 << 20 };
	uint32_t i, seed, fullest, worst;
	uint64_t fail;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fail = 0;
		worst = 0;
		for (seed = 1; seed <= 4; seed++) {
			fail += place_all(sizes[i], sizes[i] / 10 * 9, seed * 0x9e3779b9U, &fullest);
			worst = fullest > worst ? fullest : worst;
		}
		check(!fail, "two-choice placement of %u flows in %u slots (90%%, buckets of %u), "
		      "4 seeds: %" PRIu64 " failures, fullest bucket %u", sizes[i] / 10 * 9,
		      sizes[i], CLAT_BUCKET_SLOTS, fail, worst);
	}
}

static void test_too_small(void)
{
	struct gbuild_type ty = { .name = "x", .ctx_size = 1024, .block_size = 4096,
				  .services = 4096, .seed_set = true };
	struct gbuild_opts o = { .size = 16 * CLAT_PAGE_SIZE };
	char path[300], err[512];
	uint64_t bat;
	int ret;

	snprintf(path, sizeof(path), "%s/small", tmpdir);
	ret = gbuild_create(path, &o, &ty, 1, &bat, err, sizeof(err));
	check(ret == -ENOSPC && strstr(err, "too small") && access(path, F_OK) != 0,
	   "a file too small for the tables is refused and not left behind (%s)", err);
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_arith.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_patent_examples();
	test_patent_single_level_rule();
	test_bounds();
	test_patent_tables();
	test_brute_force();
	test_too_small();
	test_bucket_of();
	test_tag_of();
	test_flow_hash();
	test_flow_hash_spread();
	test_two_choice_load();
	{
		char path[300];

		snprintf(path, sizeof(path), "%s/mem", tmpdir);
		unlink(path);
		rmdir(tmpdir);
	}
	return tap_done();
}
