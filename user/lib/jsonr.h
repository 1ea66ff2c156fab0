/* SPDX-License-Identifier: GPL-2.0 */
/* A small strict JSON reader (RFC 8259): parses one text into a caller-sized
 * node array, never allocates, bounds depth and size, and refuses anything
 * that is not JSON (trailing commas, leading zeros, control characters or
 * bad escapes in strings, invalid UTF-8, text after the value).  Strings
 * stay in the input; jr_str() decodes them.  For QMP replies and events. */
#ifndef CLAT_JSONR_H
#define CLAT_JSONR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JR_MAX_DEPTH 32
#define JR_MAX_TEXT (1u << 20)

enum jr_type { JR_OBJ = 1, JR_ARR, JR_STR, JR_NUM, JR_TRUE, JR_FALSE, JR_NULL };

/* An object's children alternate key (JR_STR), value.  end: the index just
 * past this node's subtree, so siblings are found without recursion. */
struct jr_node {
	uint8_t type;
	uint32_t start, len; /* in the text; a string's without its quotes */
	uint32_t end;
	uint32_t count;      /* members of an object, elements of an array */
};

struct jr {
	const char *text;
	struct jr_node *n;
	uint32_t cap, used;
};

/* Parses text[0..len) into nodes[0..cap); node 0 is the root.  Returns 0, or
 * -EINVAL (not JSON), -E2BIG (more nodes than cap or text too long),
 * -ELOOP (nested deeper than JR_MAX_DEPTH).  err (may be NULL) gets the byte
 * offset of the failure. */
int jr_parse(struct jr *d, const char *text, size_t len, struct jr_node *nodes, uint32_t cap,
	     size_t *err);

/* Member key of object node obj, or -1.  Keys compare decoded. */
int jr_member(const struct jr *d, int obj, const char *key);
/* Dotted path from node, e.g. "return.ram.transferred"; -1 if absent or if
 * a step is not an object.  node < 0 gives -1, so lookups chain. */
int jr_path(const struct jr *d, int node, const char *path);
/* Element i of array node arr, or -1. */
int jr_index(const struct jr *d, int arr, uint32_t i);

/* Decodes string node into buf (NUL-terminated, truncated to size).  Returns
 * the decoded length, or -EINVAL if node is not a string. */
int jr_str(const struct jr *d, int node, char *buf, size_t size);
bool jr_str_eq(const struct jr *d, int node, const char *s);
/* A non-negative integer that fits in uint64 (no fraction, no exponent). */
int jr_u64(const struct jr *d, int node, uint64_t *out);
int jr_i64(const struct jr *d, int node, int64_t *out);
/* JR_TRUE / JR_FALSE. */
int jr_bool(const struct jr *d, int node, bool *out);
static inline int jr_type(const struct jr *d, int node)
{
	return node >= 0 && (uint32_t)node < d->used ? d->n[node].type : 0;
}

#endif
