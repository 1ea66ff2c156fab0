// SPDX-License-Identifier: GPL-2.0
/* Const volatile config by variable name; see rodata.h. */
#include "rodata.h"
#include "common.h"

#include <stdlib.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define RODATA_SUFFIX ".rodata"

static bool is_rodata_name(const char *name)
{
	size_t n = strlen(name), s = strlen(RODATA_SUFFIX);

	/* Kernel map names are "<obj prefix>.rodata", truncated at the
	 * front so the suffix survives; ".rodata.str1.1" and friends are not
	 * config. */
	return n >= s && !strcmp(name + n - s, RODATA_SUFFIX);
}

static int rodata_from_map(int map_fd, const struct bpf_map_info *mi, struct rodata *r)
{
	__u32 zero = 0;
	int err;

	r->btf = btf__load_from_kernel_by_id(mi->btf_id);
	if (!r->btf)
		return -errno;
	r->own_btf = true;
	r->sec = btf__type_by_id(r->btf, mi->btf_value_type_id);
	if (!r->sec || !btf_is_datasec(r->sec))
		return -ENOENT;
	r->size = mi->value_size;
	r->data = calloc(1, r->size);
	if (!r->data)
		return -ENOMEM;
	err = bpf_map_lookup_elem(map_fd, &zero, r->data);
	return err ? -errno : 0;
}

int rodata_of_prog(int prog_fd, struct rodata *r)
{
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi), ids[64], i;
	int err = -ENOENT;

	memset(r, 0, sizeof(*r));
	pi.nr_map_ids = ARRAY_SIZE(ids);
	pi.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len))
		return -errno;
	for (i = 0; i < pi.nr_map_ids && i < ARRAY_SIZE(ids) && err == -ENOENT; i++) {
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen) && is_rodata_name(mi.name) &&
		    mi.btf_id && mi.btf_value_type_id) {
			err = rodata_from_map(fd, &mi, r);
			if (err)
				rodata_free(r);
		}
		close(fd);
	}
	if (err)
		rodata_free(r);
	return err;
}

int rodata_of_obj(struct bpf_object *obj, struct rodata *r)
{
	struct bpf_map *map;
	const void *init;
	size_t size;
	int id;

	memset(r, 0, sizeof(*r));
	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map) && is_rodata_name(bpf_map__name(map)))
			break;
	}
	r->btf = bpf_object__btf(obj);
	if (!map || !r->btf)
		return -ENOENT;
	id = btf__find_by_name_kind(r->btf, RODATA_SUFFIX, BTF_KIND_DATASEC);
	init = bpf_map__initial_value(map, &size);
	if (id < 0 || !init)
		return -ENOENT;
	r->sec = btf__type_by_id(r->btf, id);
	r->data = malloc(size);
	if (!r->data)
		return -ENOMEM;
	memcpy(r->data, init, size);
	r->size = size;
	r->map = map;
	return 0;
}

int rodata_var(const struct rodata *r, const char *name, void **ptr, __u32 *size)
{
	const struct btf_var_secinfo *vi = btf_var_secinfos(r->sec);
	int i, n = btf_vlen(r->sec);

	for (i = 0; i < n; i++, vi++) {
		const struct btf_type *t = btf__type_by_id(r->btf, vi->type);

		if (!t || strcmp(btf__name_by_offset(r->btf, t->name_off), name))
			continue;
		if ((size_t)vi->offset + vi->size > r->size)
			return -EINVAL;
		*ptr = r->data + vi->offset;
		*size = vi->size;
		return 0;
	}
	return -ENOENT;
}

int rodata_u32(const struct rodata *r, const char *name, uint32_t *val)
{
	void *p;
	__u32 size;
	int err = rodata_var(r, name, &p, &size);

	if (!err && size != sizeof(*val))
		err = -EINVAL;
	if (!err)
		memcpy(val, p, sizeof(*val));
	return err;
}

int rodata_copy_vars(struct rodata *to, const struct rodata *from, const char *skip)
{
	const struct btf_var_secinfo *vi = btf_var_secinfos(from->sec);
	int i, n = btf_vlen(from->sec), copied = 0;

	for (i = 0; i < n; i++, vi++) {
		const struct btf_type *t = btf__type_by_id(from->btf, vi->type);
		const char *name = t ? btf__name_by_offset(from->btf, t->name_off) : NULL;
		void *dst;
		__u32 size;

		/* Options are global const volatile variables; static consts
		 * (lookup tables) are the object's own. */
		if (!name || !strcmp(name, skip) || (size_t)vi->offset + vi->size > from->size ||
		    !btf_is_var(t) || btf_var(t)->linkage == BTF_VAR_STATIC)
			continue;
		if (rodata_var(to, name, &dst, &size) || size != vi->size) {
			pr_info("running option '%s' has no match in the new object; dropped", name);
			continue;
		}
		memcpy(dst, from->data + vi->offset, size);
		copied++;
	}
	return copied;
}

int rodata_store(struct rodata *r)
{
	return bpf_map__set_initial_value(r->map, r->data, r->size);
}

void rodata_free(struct rodata *r)
{
	if (r->own_btf)
		btf__free(r->btf);
	free(r->data);
	memset(r, 0, sizeof(*r));
}

int prog_ident(int prog_fd, __u32 *id, char tag[17])
{
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);
	int i;

	if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len))
		return -errno;
	*id = pi.id;
	for (i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
	return 0;
}

int pinned_layout_version(const char *prog_pin, uint32_t *ver)
{
	struct rodata r;
	int fd = bpf_obj_get(prog_pin), err;

	*ver = 0;
	if (fd < 0)
		return -errno;
	err = rodata_of_prog(fd, &r);
	close(fd);
	if (!err) {
		err = rodata_u32(&r, "layout_version", ver);
		rodata_free(&r);
	}
	return err;
}
