// SPDX-License-Identifier: GPL-2.0
/* The C tests' datapath environment (see dp_env.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "dp_env.h"
#include "gbuild.h"
#include "gtables.h"

struct clat *dp_load_sized(uint64_t contexts, const uint64_t *evict_age)
{
	uint32_t buckets = contexts / CLAT_BUCKET_SLOTS;
	struct clat *c = clat__open();
	struct clat_maps m;
	int err;

	if (!c)
		return NULL;
	if (evict_age)
		c->rodata->evict_age_ns = *evict_age;
	/* The skeleton's own pool is a placeholder: size it as attach does. */
	err = bpf_map__set_max_entries(c->maps.pool_ctx, buckets * CLAT_BUCKET_SLOTS) ||
	      bpf_map__set_max_entries(c->maps.pool_meta, buckets) ||
	      bpf_map__set_max_entries(c->maps.pool_dirty, (buckets + 63) / 64) ? -EINVAL : 0;
	if (!err)
		err = clat__load(c);
	if (!err) {
		maps_from_skel(c, &m);
		err = clock_refresh(&m);
	}
	if (err) {
		clat__destroy(c);
		errno = err < 0 ? -err : EINVAL;
		return NULL;
	}
	return c;
}

int dp_env_load(struct env *e, uint64_t contexts, const uint64_t *evict_age)
{
	memset(e, 0, sizeof(*e));
	e->skel = dp_load_sized(contexts, evict_age);
	if (!e->skel)
		return -errno;
	maps_from_skel(e->skel, &e->m);
	return 0;
}

int dp_add_fn(const struct clat_maps *m, uint32_t fn, const uint8_t mac[6], uint16_t vlan,
	      uint32_t state, uint32_t port_ifindex)
{
	struct clat_mac_key k = { .vlan = vlan };
	struct clat_mac_val mv = { .fn = fn };
	struct clat_vct_entry v = { .state = state, .ifindex = port_ifindex };

	memcpy(k.mac, mac, 6);
	if (bpf_map_update_elem(m->mac_fn, &k, &mv, BPF_ANY) ||
	    bpf_map_update_elem(m->vct, &fn, &v, BPF_ANY) ||
	    (port_ifindex && bpf_map_update_elem(m->vf_ports, &fn, &port_ifindex, BPF_ANY)))
		return -errno;
	return 0;
}

int dp_set_uplink(const struct clat_maps *m, uint32_t ifindex, uint32_t tx_fn)
{
	struct clat_port_val pv = { .fn = tx_fn };
	uint32_t uplink = CLAT_UPLINK_SLOT;

	if (bpf_map_update_elem(m->vf_ports, &uplink, &ifindex, BPF_ANY) ||
	    bpf_map_update_elem(m->port_fn, &ifindex, &pv, BPF_ANY))
		return -errno;
	return 0;
}

int dp_guest_file(const struct clat_maps *m, uint32_t fn, const char *path,
		  struct gbuild_type *ty, const struct gbuild_opts *go, uint64_t *bat)
{
	uint64_t live;
	char err[256];
	int rc;

	unlink(path);
	rc = gbuild_create(path, go, ty, 1, bat, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "failed to build guest tables: %s\n", err);
		return rc;
	}
	err[0] = 0;
	rc = shadow_install_file(m, NULL, fn, path, *bat, err, sizeof(err), &live);
	if (rc)
		fprintf(stderr, "failed to install guest tables: %s\n",
			err[0] ? err : strerror(-rc));
	return rc;
}

int dp_env_guest(struct env *e, uint32_t fn, const char *name, uint32_t capacity,
		 uint32_t hash_seed, uint64_t mem_size)
{
	struct gbuild_type ty = { .name = "conn", .ctx_size = 128, .block_size = 4096,
				  .services = capacity, .hash_seed = hash_seed, .seed_set = true };
	struct gbuild_opts go = { .size = mem_size };
	uint32_t newest;
	uint64_t bat;
	int rc;

	snprintf(e->mem, sizeof(e->mem), "/tmp/clat-%s.%d", name, (int)getpid());
	rc = dp_guest_file(&e->m, fn, e->mem, &ty, &go, &bat);
	e->seed = ty.hash_seed;
	if (!rc)
		rc = shadow_view_open(&e->m, fn, 0, &e->v);
	if (rc)
		return rc;
	newest = (e->v.td.seg_state >> CLAT_SEG_NEWEST_SHIFT) & (CLAT_MAX_SEGMENTS - 1);
	e->sg = e->v.td.seg[newest];
	if (e->v.td.seg_state != (1U | newest << CLAT_SEG_NEWEST_SHIFT) || e->sg.size != capacity ||
	    e->sg.nbuckets != clat_seg_buckets(capacity)) {
		fprintf(stderr, "unexpected device segments: state %#x, size %u, %u buckets\n",
			e->v.td.seg_state, e->sg.size, e->sg.nbuckets);
		return -EINVAL;
	}
	return 0;
}

void dp_env_close(struct env *e)
{
	shadow_view_close(&e->v);
	clat__destroy(e->skel);
	if (e->mem[0])
		unlink(e->mem);
	memset(e, 0, sizeof(*e));
}

int dp_run(int prog, const struct frame *f, uint32_t ingress, uint32_t *verdict)
{
	struct xdp_md ctx_in = { .data_end = f->len, .ingress_ifindex = ingress };
	uint8_t out[FRAME_MAX + 64]; /* room for pushed VLAN tags */
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->buf, .data_size_in = f->len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

	if (ingress) {
		o.ctx_in = &ctx_in;
		o.ctx_size_in = sizeof(ctx_in);
	}
	if (bpf_prog_test_run_opts(prog, &o))
		return -errno;
	*verdict = o.retval;
	return 0;
}

bool tags_consistent(struct env *e, uint32_t b)
{
	uint32_t s, idx, st;
	uint16_t t;

	for (s = 0; s < CLAT_BUCKET_SLOTS; s++) {
		idx = b * CLAT_BUCKET_SLOTS + s;
		st = pool_at(e, idx)->state_word & CLAT_SLOT_STATE_MASK;
		t = e->v.pool.meta[b].tag[s];
		if (svc_at(e, idx) - e->sg.base > e->sg.size) {
			if (t != CLAT_TAG_FENCE)
				return false;
		} else if (st == CLAT_SLOT_LIVE) {
			if (t != pool_at(e, idx)->state_word >> CLAT_SLOT_TAG_SHIFT)
				return false;
		} else if (t != CLAT_TAG_FREE) {
			return false;
		}
	}
	return true;
}
