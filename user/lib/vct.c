// SPDX-License-Identifier: GPL-2.0
/* The VCT's one owner (see vct.h). */
#include "vct.h"
#include "common.h"
#include "lockfile.h"
#include "maps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>

static int lock_path(int pin_dir_fd, char *buf, size_t len)
{
	struct stat st;

	if (fstat(pin_dir_fd, &st))
		return -errno;
	snprintf(buf, len, LOCKFILE_DIR "/vct-%llx-%llx.lock", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	return 0;
}

struct vct_change {
	uint32_t set; /* VCT_F_* */
	uint32_t state, generation, ifindex;
	uint64_t bat_gpa;
};

enum {
	VCT_F_STATE = 1 << 0,
	VCT_F_GEN = 1 << 1,
	VCT_F_BAT = 1 << 2,
	VCT_F_IFINDEX = 1 << 3,
	VCT_F_CLEAR = 1 << 4,
};

static int vct_modify(const struct clat_maps *m, uint32_t fn, const struct vct_change *c,
		      struct clat_vct_entry *out)
{
	struct clat_vct_entry e = {};
	int lock = -1, err = 0;
	char path[128];

	if (fn >= CLAT_MAX_FN)
		return -ERANGE;
	/* Maps that are not pinned (test fixtures) have one writer. */
	if (m->lock_fd >= 0) {
		err = lock_path(m->lock_fd, path, sizeof(path));
		lock = err ? err : lockfile_take(path, true);
		if (lock < 0)
			return lock;
	}
	if (bpf_map_lookup_elem(m->vct, &fn, &e))
		err = -errno;
	if (!err) {
		if (c->set & VCT_F_CLEAR)
			memset(&e, 0, sizeof(e));
		if (c->set & VCT_F_STATE)
			e.state = c->state;
		if (c->set & VCT_F_GEN)
			e.generation = c->generation;
		if (c->set & VCT_F_BAT)
			e.bat_gpa = c->bat_gpa;
		if (c->set & VCT_F_IFINDEX)
			e.ifindex = c->ifindex;
		test_stall("vct_locked"); /* the race test holds a writer here */
		if (bpf_map_update_elem(m->vct, &fn, &e, BPF_ANY))
			err = -errno;
	}
	if (lock >= 0)
		lockfile_drop(path, lock); /* nothing stays in /run/clat */
	if (!err && out)
		*out = e;
	return err;
}

int vct_get(const struct clat_maps *m, uint32_t fn, struct clat_vct_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (fn >= CLAT_MAX_FN)
		return -ERANGE;
	return bpf_map_lookup_elem(m->vct, &fn, e) ? -errno : 0;
}

int vct_set_state(const struct clat_maps *m, uint32_t fn, uint32_t state)
{
	struct vct_change c = { .set = VCT_F_STATE, .state = state };
	struct clat_vct_entry e;
	int err = vct_modify(m, fn, &c, &e);

	if (err)
		return err;
	/* Floods reach exactly the ports in flood_ports: a paused fn gets none. */
	if (state != CLAT_FN_ACTIVE) {
		bpf_map_delete_elem(m->vf_ports, &fn);
		return flood_port_set(m, fn, 0);
	}
	if (bpf_map_update_elem(m->vf_ports, &fn, &e.ifindex, BPF_ANY))
		return -errno;
	return flood_port_set(m, fn, e.ifindex);
}

int vct_set_tables(const struct clat_maps *m, uint32_t fn, uint64_t bat_gpa, uint32_t generation)
{
	struct vct_change c = { .set = VCT_F_BAT | VCT_F_GEN,
				.bat_gpa = bat_gpa,
				.generation = bat_gpa ? generation : 0 };

	return vct_modify(m, fn, &c, NULL);
}

int vct_set_generation(const struct clat_maps *m, uint32_t fn, uint32_t generation)
{
	struct vct_change c = { .set = VCT_F_GEN, .generation = generation };

	return vct_modify(m, fn, &c, NULL);
}

int vct_set_ifindex(const struct clat_maps *m, uint32_t fn, uint32_t ifindex)
{
	struct vct_change c = { .set = VCT_F_IFINDEX, .ifindex = ifindex };

	return vct_modify(m, fn, &c, NULL);
}

int vct_activate(const struct clat_maps *m, uint32_t fn, uint32_t ifindex)
{
	struct vct_change c = { .set = VCT_F_STATE | VCT_F_IFINDEX,
				.state = CLAT_FN_ACTIVE,
				.ifindex = ifindex };

	return vct_modify(m, fn, &c, NULL);
}

int vct_clear(const struct clat_maps *m, uint32_t fn)
{
	struct vct_change c = { .set = VCT_F_CLEAR };

	return vct_modify(m, fn, &c, NULL);
}
