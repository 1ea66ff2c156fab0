/* SPDX-License-Identifier: GPL-2.0 */
/* The device-side shadow of a guest's tables: per-fn inner maps (tiers,
 * contexts, dirty bits) plugged into the ARRAY_OF_MAPS slots of fn, the BAT
 * cache, and VCT[fn].bat_gpa as the switch that turns tracking on. */
#ifndef CLAT_SHADOW_H
#define CLAT_SHADOW_H

#include "common.h"
#include "gtables.h"

/* BTF of the running programs, so inner maps dump typed in bpftool. */
struct shadow_btf {
	int fd;
	__u32 u32_id;
	__u32 u64_id; /* tiers and dirty words */
	__u32 ctx_id;
};

int shadow_btf_from_prog(const char *dir, struct shadow_btf *b);
void shadow_btf_close(struct shadow_btf *b);

/* Builds and installs the shadow of t for fn; all or nothing.  dir (may be
 * NULL) receives pins of the inner maps; mem_path is recorded for sync;
 * *live counts the LIVE contexts that came from guest memory. */
int shadow_install(const struct clat_maps *m, const char *dir, uint32_t fn,
		   const char *mem_path, const struct gmem *g, const struct gtables *t,
		   const struct shadow_btf *btf, uint64_t *live);
/* Turns tracking off for fn and frees its shadow (no sync). */
int shadow_remove(const struct clat_maps *m, const char *dir, uint32_t fn);

/* Mapped view of one type's contexts (read-write, shared with the datapath). */
struct shadow_view {
	struct clat_bat_cache bc;
	struct clat_ctx *ctx;   /* [nctx]; index i holds svc i + 1 */
	uint32_t nctx;
	uint8_t *dirty;         /* [nblocks] */
	size_t ctx_len, dirty_len;
};

/* -ENOENT if fn has no guest of that type. */
int shadow_view_open(const struct clat_maps *m, uint32_t fn, uint32_t type, struct shadow_view *v);
void shadow_view_close(struct shadow_view *v);

/* Writes fn's contexts back to their GPAs in the guest memory file; counts
 * the contexts written.  only_dirty limits it to blocks marked dirty, and
 * clears those marks. */
int shadow_sync(const struct clat_maps *m, uint32_t fn, bool only_dirty, uint64_t *written,
		uint64_t *bytes);

#endif
