// SPDX-License-Identifier: GPL-2.0
/* The context pool and its allocator (see pool.h). */
#include "pool.h"
#include "common.h"
#include "maps.h"

#include <stdlib.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) / pg * pg;
}

static void *map_all(int fd, size_t elem, uint32_t *n, size_t *len)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	void *p;

	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return NULL;
	*n = info.max_entries;
	*len = page_round((size_t)info.max_entries * elem);
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

int pool_map(const struct clat_maps *m, struct pool *p)
{
	uint32_t nctx, nmeta, ndirty;

	memset(p, 0, sizeof(*p));
	p->ctx = map_all(m->pool_ctx, sizeof(struct clat_ctx), &nctx, &p->ctx_len);
	p->meta = map_all(m->pool_meta, sizeof(struct clat_bucket), &nmeta, &p->meta_len);
	p->dirty = map_all(m->pool_dirty, sizeof(uint64_t), &ndirty, &p->dirty_len);
	if (!p->ctx || !p->meta || !p->dirty || nctx != nmeta * CLAT_BUCKET_SLOTS ||
	    (uint64_t)ndirty * 64 < nmeta) {
		int err = errno ? -errno : -EINVAL;

		pool_unmap(p);
		pr_err("failed to map the context pool: %s", strerror(-err));
		return err;
	}
	p->nbuckets = nmeta;
	return 0;
}

void pool_unmap(struct pool *p)
{
	if (p->ctx)
		munmap(p->ctx, p->ctx_len);
	if (p->meta)
		munmap(p->meta, p->meta_len);
	if (p->dirty)
		munmap(p->dirty, p->dirty_len);
	memset(p, 0, sizeof(*p));
}

int pool_lock(const struct clat_maps *m)
{
	if (m->lock_fd < 0)
		return 0;
	while (flock(m->lock_fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			int err = -errno;

			pr_err("failed to lock the context pool: %s", strerror(-err));
			return err;
		}
	return 0;
}

void pool_unlock(const struct clat_maps *m)
{
	if (m->lock_fd >= 0)
		flock(m->lock_fd, LOCK_UN);
}

/* Start time of pid in clock ticks after boot (field 22 of its stat), 0 if
 * it does not exist or is dead (a zombie not yet reaped). */
static uint64_t proc_start(uint32_t pid)
{
	char path[64], buf[1024], *p;
	uint64_t start = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return 0;
	for (field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		start = strtoull(p + 1, NULL, 10);
	return start;
}

/* The whole extent table in one batch: an allocation reads it twice
 * (reclaim, then the gaps), and a syscall per entry cost 20 ms. */
static int read_all(const struct clat_maps *m, struct clat_extent *ext)
{
	static uint32_t keys[CLAT_MAX_EXTENTS];
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	uint32_t out, n = 0, k;
	void *in = NULL;
	int err;

	while (n < CLAT_MAX_EXTENTS) {
		__u32 count = CLAT_MAX_EXTENTS - n;

		err = bpf_map_lookup_batch(m->pool_alloc, in, &out, keys + n, ext + n, &count, &o);
		if (err && errno != ENOENT)
			break;
		n += count;
		if (err) /* ENOENT: the last batch */
			return n == CLAT_MAX_EXTENTS ? 0 : -EIO;
		in = &out;
	}
	if (n == CLAT_MAX_EXTENTS)
		return 0;
	/* A kernel without batch lookups: one entry at a time. */
	for (k = 0; k < CLAT_MAX_EXTENTS; k++)
		if (bpf_map_lookup_elem(m->pool_alloc, &k, &ext[k]))
			return -errno;
	return 0;
}

static int nbuckets_of(const struct clat_maps *m, uint32_t *n)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);

	if (bpf_obj_get_info_by_fd(m->pool_meta, &info, &ilen))
		return -errno;
	*n = info.max_entries;
	return 0;
}

static int cmp_first(const void *a, const void *b)
{
	const struct clat_extent *x = *(struct clat_extent *const *)a;
	const struct clat_extent *y = *(struct clat_extent *const *)b;

	return x->first_bucket < y->first_bucket ? -1 : x->first_bucket > y->first_bucket;
}

/* Walks the gaps between used extents, in pool order. */
static int gaps(const struct clat_extent *ext, uint32_t nbuckets,
		int (*fn)(void *arg, uint32_t first, uint32_t len), void *arg)
{
	const struct clat_extent **used = malloc(CLAT_MAX_EXTENTS * sizeof(*used));
	uint32_t n = 0, k, at = 0;
	int r = 0;

	if (!used)
		return -ENOMEM;
	for (k = 0; k < CLAT_MAX_EXTENTS; k++)
		if (ext[k].state != CLAT_EXTENT_FREE && ext[k].nbuckets)
			used[n++] = &ext[k];
	qsort(used, n, sizeof(*used), cmp_first);
	for (k = 0; !r && k <= n; k++) {
		uint32_t next = k < n ? used[k]->first_bucket : nbuckets;

		if (next > at)
			r = fn(arg, at, next - at);
		if (k < n && used[k]->first_bucket + used[k]->nbuckets > at)
			at = used[k]->first_bucket + used[k]->nbuckets;
	}
	free(used);
	return r < 0 ? r : 0;
}

struct fit {
	uint32_t want, first, free, largest;
	int found;
};

static int first_fit(void *arg, uint32_t first, uint32_t len)
{
	struct fit *f = arg;

	f->free += len;
	if (len > f->largest)
		f->largest = len;
	if (!f->found && len >= f->want) {
		f->first = first;
		f->found = 1;
	}
	return 0;
}

static bool desc_names(const struct clat_fn_desc *d, uint32_t key, const struct clat_extent *e)
{
	uint32_t t = key / CLAT_MAX_SEGMENTS % CLAT_MAX_TYPES, k = key % CLAT_MAX_SEGMENTS;
	const struct clat_type_desc *td = &d->type[t];

	return td->proto_mask && (td->seg_state & (1U << k)) &&
	       td->seg[k].first_bucket == e->first_bucket && td->seg[k].nbuckets == e->nbuckets;
}

int pool_reclaim_locked(const struct clat_maps *m)
{
	struct clat_extent *ext = calloc(CLAT_MAX_EXTENTS, sizeof(*ext));
	struct clat_fn_desc d;
	uint32_t k, fn = UINT32_MAX;
	int err, freed = 0, waited = 0;

	if (!ext)
		return -ENOMEM;
	err = read_all(m, ext);
	for (k = 0; !err && k < CLAT_MAX_EXTENTS; k++) {
		struct clat_extent *e = &ext[k];
		bool named;

		if (e->state == CLAT_EXTENT_FREE)
			continue;
		if (e->state == CLAT_EXTENT_STAGED && e->owner_pid &&
		    proc_start(e->owner_pid) == e->owner_start)
			continue; /* its builder is still at work */
		if (fn != k / (CLAT_MAX_TYPES * CLAT_MAX_SEGMENTS)) {
			fn = k / (CLAT_MAX_TYPES * CLAT_MAX_SEGMENTS);
			if (bpf_map_lookup_elem(m->fn_desc, &fn, &d)) {
				err = -errno;
				break;
			}
		}
		named = desc_names(&d, k, e);
		if (named && e->state == CLAT_EXTENT_LIVE)
			continue;
		if (named) { /* its owner died between publishing and marking it */
			e->state = CLAT_EXTENT_LIVE;
			e->owner_pid = 0;
		} else {
			/* A LIVE extent no one names may have been unpublished
			 * just before its owner died: wait out the datapath once. */
			if (e->state == CLAT_EXTENT_LIVE && !waited++)
				pool_quiesce();
			*e = (struct clat_extent){};
			freed++;
		}
		if (bpf_map_update_elem(m->pool_alloc, &k, e, BPF_ANY))
			err = -errno;
	}
	free(ext);
	return err ? err : freed;
}

int pool_reclaim(const struct clat_maps *m)
{
	int err = pool_lock(m);

	if (err)
		return err;
	err = pool_reclaim_locked(m);
	pool_unlock(m);
	return err;
}

int pool_alloc_locked(const struct clat_maps *m, const struct pool *p, uint32_t key,
		      uint32_t nbuckets, uint32_t *first_bucket)
{
	struct clat_extent *ext = calloc(CLAT_MAX_EXTENTS, sizeof(*ext));
	struct fit f = { .want = nbuckets };
	struct clat_extent e;
	uint32_t b;
	int err;

	if (!ext)
		return -ENOMEM;
	err = key < CLAT_MAX_EXTENTS && nbuckets ? read_all(m, ext) : -EINVAL;
	if (!err && ext[key].state != CLAT_EXTENT_FREE) {
		/* Reclaim ran first: its holder is alive, or it is published. */
		pr_err("failed to allocate context memory for fn %u type %u segment %u: already %s%s",
		       key / (CLAT_MAX_TYPES * CLAT_MAX_SEGMENTS), key / CLAT_MAX_SEGMENTS % CLAT_MAX_TYPES,
		       key % CLAT_MAX_SEGMENTS, ext[key].state == CLAT_EXTENT_LIVE ? "in use" :
		       "being filled by another clat-load", "");
		err = -EBUSY;
	}
	if (!err)
		err = gaps(ext, p->nbuckets, first_fit, &f);
	free(ext);
	if (err)
		return err;
	if (!f.found) {
		pr_err("context memory: %llu free, %llu needed (largest free extent %llu); "
		       "attach with a larger --pool-contexts or shrink the guest's tables",
		       (unsigned long long)f.free * CLAT_BUCKET_SLOTS,
		       (unsigned long long)nbuckets * CLAT_BUCKET_SLOTS,
		       (unsigned long long)f.largest * CLAT_BUCKET_SLOTS);
		return -ENOSPC;
	}
	e = (struct clat_extent){ .first_bucket = f.first, .nbuckets = nbuckets,
				  .state = CLAT_EXTENT_STAGED, .owner_pid = (uint32_t)getpid(),
				  .owner_start = proc_start((uint32_t)getpid()) };
	if (bpf_map_update_elem(m->pool_alloc, &key, &e, BPF_ANY))
		return -errno;
	for (b = f.first; b < f.first + nbuckets; b++) {
		memset(&p->meta[b], 0, sizeof(p->meta[b]));
		__atomic_fetch_and(&p->dirty[b / 64], ~(1ULL << (b % 64)), __ATOMIC_RELAXED);
	}
	*first_bucket = f.first;
	return 0;
}

int pool_set_live(const struct clat_maps *m, uint32_t key)
{
	struct clat_extent e;

	if (bpf_map_lookup_elem(m->pool_alloc, &key, &e))
		return -errno;
	e.state = CLAT_EXTENT_LIVE;
	e.owner_pid = 0;
	e.owner_start = 0;
	return bpf_map_update_elem(m->pool_alloc, &key, &e, BPF_ANY) ? -errno : 0;
}

int pool_free(const struct clat_maps *m, uint32_t key)
{
	struct clat_extent e = {};

	return bpf_map_update_elem(m->pool_alloc, &key, &e, BPF_ANY) ? -errno : 0;
}

/* Deleting from a map-in-map waits for an RCU grace period
 * (synchronize_rcu): every XDP run that began before it has ended.  A
 * throwaway pair of maps buys exactly that wait. */
int pool_quiesce(void)
{
	int inner, outer, err = 0;
	__u32 key = 0;
	LIBBPF_OPTS(bpf_map_create_opts, o);

	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "clat_q_in", 4, 4, 1, NULL);
	if (inner < 0)
		return -errno;
	o.inner_map_fd = inner;
	outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "clat_quiesce", 4, 4, 1, &o);
	if (outer < 0 || bpf_map_update_elem(outer, &key, &inner, BPF_ANY) ||
	    bpf_map_delete_elem(outer, &key))
		err = -errno;
	if (outer >= 0)
		close(outer);
	close(inner);
	return err;
}

int pool_usage(const struct clat_maps *m, struct pool_usage *u)
{
	struct clat_extent *ext = calloc(CLAT_MAX_EXTENTS, sizeof(*ext));
	struct fit f = { .want = UINT32_MAX };
	uint32_t k;
	int err;

	memset(u, 0, sizeof(*u));
	if (!ext)
		return -ENOMEM;
	err = nbuckets_of(m, &u->nbuckets);
	if (!err)
		err = read_all(m, ext);
	if (!err)
		err = gaps(ext, u->nbuckets, first_fit, &f);
	for (k = 0; !err && k < CLAT_MAX_EXTENTS; k++) {
		if (ext[k].state == CLAT_EXTENT_LIVE)
			u->fn_buckets[k / (CLAT_MAX_TYPES * CLAT_MAX_SEGMENTS)] += ext[k].nbuckets;
		else if (ext[k].state == CLAT_EXTENT_STAGED)
			u->staged_buckets += ext[k].nbuckets;
	}
	u->free_buckets = f.free;
	u->largest_free = f.largest;
	free(ext);
	return err;
}
