/* SPDX-License-Identifier: GPL-2.0 */
/* The C tests' datapath environment, set up in one place for the verdict
 * and context tests, the datapath fuzzer and the benchmark: a loaded clat
 * skeleton whose context pool is sized as `clat-load attach` sizes it, the
 * fns of a test's table, the uplink, and a guest of one type whose gbuild
 * tables sit in a memory file and are shadowed in the way
 * `clat-load guest attach` does.  Devmap ports point at lo: a non-live
 * BPF_PROG_TEST_RUN never transmits.  Functions return 0 or -errno. */
#ifndef CLAT_TEST_DP_ENV_H
#define CLAT_TEST_DP_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "clat_abi.h"
#include "clat.skel.h"
#include "common.h"
#include "shadow.h"
#include "frames.h"

struct env {
	struct clat *skel;
	struct clat_maps m;
	struct shadow_view v;     /* the guest's device view, once dp_env_guest ran */
	struct clat_dev_seg sg;   /* its newest (only) segment */
	char mem[64];             /* its memory file, removed by dp_env_close */
	uint32_t seed;            /* its hash seed */
};

/* A clat skeleton whose pool holds `contexts` (a multiple of
 * CLAT_BUCKET_SLOTS), loaded, its clock set; evict_age_ns from
 * *evict_age unless NULL.  NULL with errno set on failure. */
struct clat *dp_load_sized(uint64_t contexts, const uint64_t *evict_age);
int dp_env_load(struct env *e, uint64_t contexts, const uint64_t *evict_age);
/* A test fixture of fn: MAC/VLAN -> fn, its VCT entry (state, port) and,
 * with a port, its vf_ports entry.  Fixtures set states the control
 * plane would not (a QUIESCED fn that keeps its port), so the entry is
 * written whole rather than through vct.h. */
int dp_add_fn(const struct clat_maps *m, uint32_t fn, const uint8_t mac[6], uint16_t vlan,
	      uint32_t state, uint32_t port_ifindex);
/* The uplink at ifindex, which also plays the representor of tx_fn. */
int dp_set_uplink(const struct clat_maps *m, uint32_t ifindex, uint32_t tx_fn);
/* gbuild tables of type *ty (resolved by gbuild) in memory file path of
 * go->size bytes, shadowed into fn as `clat-load guest attach` does; *bat
 * gets their BAT.  Prints "failed to ..." on failure. */
struct gbuild_type;
struct gbuild_opts;
int dp_guest_file(const struct clat_maps *m, uint32_t fn, const char *path,
		  struct gbuild_type *ty, const struct gbuild_opts *go, uint64_t *bat);
/* A guest with `capacity` services of one 128-byte type on fn, in a
 * memory file of mem_size bytes named after `name`, shadowed and viewed. */
int dp_env_guest(struct env *e, uint32_t fn, const char *name, uint32_t capacity,
		 uint32_t hash_seed, uint64_t mem_size);
void dp_env_close(struct env *e);
/* Frame f once through prog (BPF_PROG_TEST_RUN), entering on ingress (0:
 * no xdp_md, as for clat_rx); *verdict gets the XDP action. */
int dp_run(int prog, const struct frame *f, uint32_t ingress, uint32_t *verdict);

/* ---- the guest's pool, as the device sees it ------------------------------ */

static inline struct clat_ctx *pool_at(struct env *e, uint32_t idx)
{
	return &e->v.pool.ctx[idx];
}

/* Service number of a pool index of the segment. */
static inline uint32_t svc_at(struct env *e, uint32_t idx)
{
	return clat_slot_svc(e->sg.base, idx / CLAT_BUCKET_SLOTS - e->sg.first_bucket,
			     idx % CLAT_BUCKET_SLOTS);
}

/* The order in which a claim tries a bucket's free slots after the home
 * slot: lane order (bpf/context.h slot_bit), slots 0, 4, .., 28, 1, 5, .. */
static inline uint32_t slot_rank(uint32_t s)
{
	return (s & 3) * 16 + (s >> 2);
}

/* Bucket b's tag line agrees with its slots: a LIVE slot's entry is its
 * tag, a free one's FREE, one past the segment's end FENCE. */
bool tags_consistent(struct env *e, uint32_t b);

#endif
