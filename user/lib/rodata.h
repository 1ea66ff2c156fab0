/* SPDX-License-Identifier: GPL-2.0 */
/* The const volatile config of a BPF object (its .rodata), read and written
 * by variable name through BTF: from a loaded program, so a running
 * instance's options and layout version are recoverable from its pins, and
 * in an opened object before load. */
#ifndef CLAT_RODATA_H
#define CLAT_RODATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

struct btf;
struct btf_type;
struct bpf_object;
struct bpf_map;

struct rodata {
	struct btf *btf;
	const struct btf_type *sec; /* the .rodata DATASEC */
	unsigned char *data;        /* a private copy of the section */
	size_t size;
	bool own_btf;
	struct bpf_map *map;        /* the object's .rodata map (from an object only) */
};

/* The .rodata of a loaded program; -ENOENT if it has none with BTF. */
int rodata_of_prog(int prog_fd, struct rodata *r);
/* The .rodata of an opened, not yet loaded object; -ENOENT if none. */
int rodata_of_obj(struct bpf_object *obj, struct rodata *r);
/* Variable name's bytes in r->data; -ENOENT if absent. */
int rodata_var(const struct rodata *r, const char *name, void **ptr, __u32 *size);
int rodata_u32(const struct rodata *r, const char *name, uint32_t *val);
/* Copies every variable of from that to has with the same size, except
 * skip; returns how many were copied. */
int rodata_copy_vars(struct rodata *to, const struct rodata *from, const char *skip);
/* Writes r->data back as the object's initial .rodata. */
int rodata_store(struct rodata *r);
void rodata_free(struct rodata *r);

/* Program id and tag (16 hex digits) of a program fd. */
int prog_ident(int prog_fd, __u32 *id, char tag[17]);
/* Layout version of the running instance whose clat_rx is pinned at path;
 * 0 with -ENOENT if the program records none. */
int pinned_layout_version(const char *prog_pin, uint32_t *ver);

#endif
