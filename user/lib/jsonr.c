// SPDX-License-Identifier: GPL-2.0
/* Strict JSON reader: recursive descent bounded by JR_MAX_DEPTH, one node per
 * value (and per object key) into the caller's array.  Everything a later
 * accessor relies on (escapes, surrogate pairs, UTF-8, number syntax) is
 * validated here, so the accessors cannot meet malformed text. */
#include "jsonr.h"

#include <errno.h>
#include <string.h>

struct parser {
	struct jr *d;
	const unsigned char *s;
	size_t len, pos;
};

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
				   p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static int new_node(struct parser *p, uint8_t type, int *idx)
{
	struct jr_node *n;

	if (p->d->used >= p->d->cap)
		return -E2BIG;
	*idx = (int)p->d->used++;
	n = &p->d->n[*idx];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->start = (uint32_t)p->pos;
	return 0;
}

static int hex4(const unsigned char *s, unsigned int *out)
{
	unsigned int v = 0, i;

	for (i = 0; i < 4; i++) {
		unsigned char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (at most avail bytes), or 0:
 * no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

static int parse_string(struct parser *p, int *idx)
{
	int err;

	p->pos++; /* the opening quote */
	err = new_node(p, JR_STR, idx);
	if (err)
		return err;
	while (p->pos < p->len) {
		unsigned char c = p->s[p->pos];
		unsigned int u, u2;
		size_t n;

		if (c == '"') {
			p->d->n[*idx].len = (uint32_t)(p->pos - p->d->n[*idx].start);
			p->pos++;
			p->d->n[*idx].end = p->d->used;
			return 0;
		}
		if (c < 0x20)
			return -EINVAL;
		if (c != '\\') {
			n = utf8_len(p->s + p->pos, p->len - p->pos);
			if (!n)
				return -EINVAL;
			p->pos += n;
			continue;
		}
		if (p->pos + 1 >= p->len)
			return -EINVAL;
		c = p->s[p->pos + 1];
		if (c && strchr("\"\\/bfnrt", c)) {
			p->pos += 2;
			continue;
		}
		if (c != 'u' || p->pos + 6 > p->len || hex4(p->s + p->pos + 2, &u))
			return -EINVAL;
		p->pos += 6;
		if (u >= 0xdc00 && u <= 0xdfff)
			return -EINVAL; /* a low surrogate alone */
		if (u >= 0xd800 && u <= 0xdbff) {
			if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
			    hex4(p->s + p->pos + 2, &u2) || u2 < 0xdc00 || u2 > 0xdfff)
				return -EINVAL;
			p->pos += 6;
		}
	}
	return -EINVAL; /* unterminated */
}

static bool digit(struct parser *p)
{
	return p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9';
}

static int parse_number(struct parser *p, int *idx)
{
	int err = new_node(p, JR_NUM, idx);

	if (err)
		return err;
	if (p->s[p->pos] == '-')
		p->pos++;
	if (!digit(p))
		return -EINVAL;
	if (p->s[p->pos] == '0')
		p->pos++; /* no leading zeros: a digit after it ends the number */
	else
		while (digit(p))
			p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		if (!digit(p))
			return -EINVAL;
		while (digit(p))
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (!digit(p))
			return -EINVAL;
		while (digit(p))
			p->pos++;
	}
	p->d->n[*idx].len = (uint32_t)(p->pos - p->d->n[*idx].start);
	p->d->n[*idx].end = p->d->used;
	return 0;
}

static int parse_literal(struct parser *p, const char *word, uint8_t type, int *idx)
{
	size_t n = strlen(word);
	int err;

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
		return -EINVAL;
	err = new_node(p, type, idx);
	if (err)
		return err;
	p->pos += n;
	p->d->n[*idx].len = (uint32_t)n;
	p->d->n[*idx].end = p->d->used;
	return 0;
}

static int parse_value(struct parser *p, int depth);

/* Objects and arrays: members separated by commas, none trailing. */
static int parse_container(struct parser *p, int depth, bool obj)
{
	char close = obj ? '}' : ']';
	int idx, key, err = new_node(p, obj ? JR_OBJ : JR_ARR, &idx);

	if (err)
		return err;
	if (depth >= JR_MAX_DEPTH)
		return -ELOOP;
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		goto done;
	}
	for (;;) {
		if (obj) {
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return -EINVAL;
			err = parse_string(p, &key);
			if (err)
				return err;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return -EINVAL;
			p->pos++;
		}
		err = parse_value(p, depth + 1);
		if (err)
			return err;
		p->d->n[idx].count++;
		skip_ws(p);
		if (p->pos >= p->len)
			return -EINVAL;
		if (p->s[p->pos] == close) {
			p->pos++;
			break;
		}
		if (p->s[p->pos] != ',')
			return -EINVAL;
		p->pos++;
	}
done:
	p->d->n[idx].len = (uint32_t)(p->pos - p->d->n[idx].start);
	p->d->n[idx].end = p->d->used;
	return 0;
}

static int parse_value(struct parser *p, int depth)
{
	int idx;

	skip_ws(p);
	if (p->pos >= p->len)
		return -EINVAL;
	switch (p->s[p->pos]) {
	case '{':
		return parse_container(p, depth, true);
	case '[':
		return parse_container(p, depth, false);
	case '"':
		return parse_string(p, &idx);
	case 't':
		return parse_literal(p, "true", JR_TRUE, &idx);
	case 'f':
		return parse_literal(p, "false", JR_FALSE, &idx);
	case 'n':
		return parse_literal(p, "null", JR_NULL, &idx);
	default:
		if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
			return parse_number(p, &idx);
		return -EINVAL;
	}
}

int jr_parse(struct jr *d, const char *text, size_t len, struct jr_node *nodes, uint32_t cap,
	     size_t *errpos)
{
	struct parser p = { .d = d, .s = (const unsigned char *)text, .len = len };
	int err;

	d->text = text;
	d->n = nodes;
	d->cap = cap;
	d->used = 0;
	if (len > JR_MAX_TEXT)
		err = -E2BIG;
	else
		err = parse_value(&p, 0);
	if (!err) {
		skip_ws(&p);
		if (p.pos != len)
			err = -EINVAL; /* one value per text */
	}
	if (err)
		d->used = 0; /* nothing half-parsed is ever looked at */
	if (errpos)
		*errpos = p.pos;
	return err;
}

/* ---- accessors ----------------------------------------------------------------- */

static const struct jr_node *node_at(const struct jr *d, int node)
{
	return node >= 0 && (uint32_t)node < d->used ? &d->n[node] : NULL;
}

static void put_utf8(unsigned int u, char out[4], int *n)
{
	if (u < 0x80) {
		out[0] = (char)u, *n = 1;
	} else if (u < 0x800) {
		out[0] = (char)(0xc0 | u >> 6), out[1] = (char)(0x80 | (u & 0x3f)), *n = 2;
	} else if (u < 0x10000) {
		out[0] = (char)(0xe0 | u >> 12), out[1] = (char)(0x80 | (u >> 6 & 0x3f));
		out[2] = (char)(0x80 | (u & 0x3f)), *n = 3;
	} else {
		out[0] = (char)(0xf0 | u >> 18), out[1] = (char)(0x80 | (u >> 12 & 0x3f));
		out[2] = (char)(0x80 | (u >> 6 & 0x3f)), out[3] = (char)(0x80 | (u & 0x3f)), *n = 4;
	}
}

/* Next decoded piece of a validated string: up to 4 bytes into out. */
static int next_piece(const char *s, uint32_t len, uint32_t *i, char out[4])
{
	unsigned int u, u2;
	int n;

	if (s[*i] != '\\') {
		out[0] = s[(*i)++];
		return 1;
	}
	switch (s[*i + 1]) {
	case 'b': out[0] = '\b'; break;
	case 'f': out[0] = '\f'; break;
	case 'n': out[0] = '\n'; break;
	case 'r': out[0] = '\r'; break;
	case 't': out[0] = '\t'; break;
	case 'u':
		hex4((const unsigned char *)s + *i + 2, &u);
		*i += 6;
		if (u >= 0xd800 && u <= 0xdbff && *i + 6 <= len) {
			hex4((const unsigned char *)s + *i + 2, &u2);
			u = 0x10000 + ((u - 0xd800) << 10) + (u2 - 0xdc00);
			*i += 6;
		}
		put_utf8(u, out, &n);
		return n;
	default: out[0] = s[*i + 1]; break; /* " \ / */
	}
	*i += 2;
	return 1;
}

int jr_str(const struct jr *d, int node, char *buf, size_t size)
{
	const struct jr_node *n = node_at(d, node);
	uint32_t i = 0;
	size_t out = 0;
	char piece[4];
	int k, j;

	if (!n || n->type != JR_STR)
		return -EINVAL;
	while (i < n->len) {
		k = next_piece(d->text + n->start, n->len, &i, piece);
		for (j = 0; j < k; j++, out++)
			if (size && out < size - 1)
				buf[out] = piece[j];
	}
	if (size)
		buf[out < size ? out : size - 1] = '\0';
	return out > INT32_MAX ? -E2BIG : (int)out;
}

bool jr_str_eq(const struct jr *d, int node, const char *s)
{
	const struct jr_node *n = node_at(d, node);
	size_t want = strlen(s), out = 0;
	uint32_t i = 0;
	char piece[4];
	int k;

	if (!n || n->type != JR_STR)
		return false;
	while (i < n->len) {
		k = next_piece(d->text + n->start, n->len, &i, piece);
		if (out + (size_t)k > want || memcmp(s + out, piece, (size_t)k))
			return false;
		out += (size_t)k;
	}
	return out == want;
}

int jr_member(const struct jr *d, int obj, const char *key)
{
	const struct jr_node *n = node_at(d, obj);
	int found = -1;
	uint32_t k, i;

	if (!n || n->type != JR_OBJ)
		return -1;
	/* The last of duplicate keys wins, as in most readers. */
	for (k = (uint32_t)obj + 1, i = 0; i < n->count; i++) {
		uint32_t val = k + 1;

		if (jr_str_eq(d, (int)k, key))
			found = (int)val;
		k = d->n[val].end;
	}
	return found;
}

int jr_index(const struct jr *d, int arr, uint32_t idx)
{
	const struct jr_node *n = node_at(d, arr);
	uint32_t k, i;

	if (!n || n->type != JR_ARR || idx >= n->count)
		return -1;
	for (k = (uint32_t)arr + 1, i = 0; i < idx; i++)
		k = d->n[k].end;
	return (int)k;
}

int jr_path(const struct jr *d, int node, const char *path)
{
	char key[128];
	const char *dot;
	size_t n;

	while (node >= 0 && *path) {
		dot = strchr(path, '.');
		n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return -1;
		memcpy(key, path, n);
		key[n] = '\0';
		node = jr_member(d, node, key);
		path += n + (dot ? 1 : 0);
	}
	return node;
}

int jr_u64(const struct jr *d, int node, uint64_t *out)
{
	const struct jr_node *n = node_at(d, node);
	uint64_t v = 0;
	uint32_t i;

	if (!n || n->type != JR_NUM)
		return -EINVAL;
	for (i = 0; i < n->len; i++) {
		unsigned char c = (unsigned char)d->text[n->start + i];

		if (c < '0' || c > '9')
			return -EINVAL; /* a sign, fraction or exponent */
		if (v > (UINT64_MAX - (c - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (c - '0');
	}
	*out = v;
	return 0;
}

int jr_i64(const struct jr *d, int node, int64_t *out)
{
	const struct jr_node *n = node_at(d, node);
	struct jr_node tmp;
	struct jr sub;
	uint64_t v;
	bool neg;
	int err;

	if (!n || n->type != JR_NUM)
		return -EINVAL;
	neg = d->text[n->start] == '-';
	tmp = *n;
	tmp.start += neg, tmp.len -= neg;
	sub = (struct jr){ .text = d->text, .n = &tmp, .cap = 1, .used = 1 };
	err = jr_u64(&sub, 0, &v);
	if (err)
		return err;
	if (v > (uint64_t)INT64_MAX + neg)
		return -ERANGE;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int jr_bool(const struct jr *d, int node, bool *out)
{
	int t = jr_type(d, node);

	if (t != JR_TRUE && t != JR_FALSE)
		return -EINVAL;
	*out = t == JR_TRUE;
	return 0;
}
