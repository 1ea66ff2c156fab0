// SPDX-License-Identifier: GPL-2.0
/* The strict JSON reader (user/lib/jsonr.c) against valid and hostile texts, then
 * a deterministic mutation fuzz over QMP-like seeds: every mutated text must
 * parse or be refused without touching memory outside the text and the node
 * array (run it under SANITIZE=1 for ASan).  TAP; selftests/run.sh counts. */
#include "jsonr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tests, failures;

static void ok(int cond, const char *what)
{
	tests++;
	if (!cond)
		failures++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", tests, what);
}

static int parse(const char *s, size_t len, struct jr *d, struct jr_node *n, uint32_t cap)
{
	/* A private copy with no terminator: the reader must honour len. */
	char *copy = malloc(len ? len : 1);
	int err;

	memcpy(copy, s, len);
	err = jr_parse(d, copy, len, n, cap, NULL);
	free(copy);
	return err;
}

static const char *const valid[] = {
	"{}", "[]", "0", "-0", "1.5e+3", "-12.25E-2", "true", "false", "null", "\"\"",
	" {\"a\" : [1, 2, {\"b\": null}] } \r\n",
	"\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
	"\"package\": \"Debian 1:7.2+dfsg-7+deb12u18\"}, \"capabilities\": [\"oob\"]}}",
};

static const char *const invalid[] = {
	"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{,}", "[,1]", "01", "-", "1.", ".5", "1e",
	"+1", "0x10", "NaN", "Infinity", "tru", "nul", "True", "'a'", "\"abc", "\"\\x\"",
	"\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"a\tb\"",
	"\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"\xff\"",
	"{} {}", "{}x", "[1 2]", "{\"a\" 1}", "{1:2}", "[\"a\":1]", "{\"a\":}", "[1]]",
	"/* c */ {}",
};

static void test_tables(void)
{
	struct jr_node n[64];
	char name[64];
	struct jr d;
	size_t i;

	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		snprintf(name, sizeof(name), "valid text %zu accepted", i);
		ok(parse(valid[i], strlen(valid[i]), &d, n, 64) == 0, name);
	}
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		snprintf(name, sizeof(name), "invalid text %zu refused", i);
		ok(parse(invalid[i], strlen(invalid[i]), &d, n, 64) == -EINVAL, name);
	}
	ok(parse("{\"a\":1}\0", 8, &d, n, 64) == -EINVAL, "a NUL after the value is refused");
	ok(parse("\"a\0b\"", 5, &d, n, 64) == -EINVAL, "a NUL inside a string is refused");
}

static void test_bounds(void)
{
	struct jr_node n[8], big[200];
	char deep[200];
	struct jr d;

	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	ok(parse(deep, 200, &d, big, 200) == -ELOOP, "100 nested arrays: -ELOOP");
	memset(deep, '[', 32);
	memset(deep + 32, ']', 32);
	ok(parse(deep, 64, &d, big, 200) == 0, "32 nested arrays accepted");
	memset(deep, '[', 33);
	memset(deep + 33, ']', 33);
	ok(parse(deep, 66, &d, big, 200) == -ELOOP, "33 nested arrays: -ELOOP");
	ok(parse("[1,2,3,4,5,6,7,8]", 17, &d, n, 8) == -E2BIG, "9 nodes into 8: -E2BIG");
	ok(parse("[1,2,3,4,5,6,7]", 15, &d, n, 8) == 0 && d.used == 8, "8 nodes into 8");
	ok(d.used == 8 && jr_index(&d, 0, 7) < 0 && jr_index(&d, 0, 6) == 7, "index bounds");
}

static void test_access(void)
{
	static const char *t =
		"{\"return\": {\"status\": \"completed\", \"total-time\": 244, \"downtime\": 3,"
		" \"ram\": {\"transferred\": 18446744073709551615, \"neg\": -9223372036854775808,"
		" \"big\": 18446744073709551616, \"f\": 1.5}}, \"k\\u0065y\": true, \"d\": 1, \"d\": 2,"
		" \"arr\": [\"x\", {\"y\": false}], \"e\": \"a\\u0000b\"}";
	struct jr_node n[64];
	uint64_t u = 0;
	int64_t i = 0;
	bool b = false;
	char buf[8];
	struct jr d;

	ok(parse(t, strlen(t), &d, n, 64) == 0, "query-migrate-like reply parses");
	/* the text was freed by parse(): re-parse on a live copy for accessors */
	ok(jr_parse(&d, t, strlen(t), n, 64, NULL) == 0, "parses in place");
	ok(jr_str_eq(&d, jr_path(&d, 0, "return.status"), "completed"), "path to a string");
	ok(!jr_u64(&d, jr_path(&d, 0, "return.total-time"), &u) && u == 244, "u64");
	ok(!jr_u64(&d, jr_path(&d, 0, "return.ram.transferred"), &u) && u == UINT64_MAX,
	   "u64 max");
	ok(jr_u64(&d, jr_path(&d, 0, "return.ram.big"), &u) == -ERANGE, "u64 overflow refused");
	ok(jr_u64(&d, jr_path(&d, 0, "return.ram.f"), &u) == -EINVAL, "fraction is not u64");
	ok(jr_u64(&d, jr_path(&d, 0, "return.ram.neg"), &u) == -EINVAL, "negative is not u64");
	ok(!jr_i64(&d, jr_path(&d, 0, "return.ram.neg"), &i) && i == INT64_MIN, "i64 min");
	ok(!jr_bool(&d, jr_member(&d, 0, "key"), &b) && b, "escaped key matches decoded");
	ok(!jr_u64(&d, jr_member(&d, 0, "d"), &u) && u == 2, "duplicate key: last wins");
	ok(jr_path(&d, 0, "return.nope") < 0 && jr_path(&d, 0, "return.status.x") < 0 &&
		   jr_path(&d, -1, "a") < 0,
	   "absent paths give -1");
	ok(jr_str_eq(&d, jr_path(&d, jr_index(&d, jr_member(&d, 0, "arr"), 0), ""), "x"),
	   "array element");
	ok(jr_type(&d, jr_path(&d, jr_index(&d, jr_member(&d, 0, "arr"), 1), "y")) == JR_FALSE,
	   "object inside array");
	ok(jr_str(&d, jr_path(&d, 0, "return.status"), buf, sizeof(buf)) == 9 &&
		   !strcmp(buf, "complet"),
	   "jr_str truncates and reports the full length");
	ok(!jr_str_eq(&d, jr_member(&d, 0, "e"), "a"), "an embedded NUL never equals a prefix");
	ok(jr_str(&d, jr_member(&d, 0, "d"), buf, sizeof(buf)) == -EINVAL, "number is not a string");
}

/* xorshift: the same mutations on every run, so a failure reproduces. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_mutations(void)
{
	static const char *const seeds[] = {
		"{\"return\": {\"status\": \"active\", \"ram\": {\"transferred\": 123, \"remaining\": 4}}}",
		"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"pre-switchover\"}, "
		"\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}",
		"{\"error\": {\"class\": \"GenericError\", \"desc\": \"x-ignore-shared \\u00e9\"}}",
		"[[[[{\"a\":[true,false,null,-1.5e-3,\"\\ud83d\\ude00\"]}]]]]",
	};
	static const char alphabet[] = "{}[]\",:\\u0123456789abcdefeE+-.tnr \t\r\n\xc3\xa9\xed\xff";
	struct jr_node n[32];
	char buf[256], out[64];
	unsigned long accepted = 0, rounds = 200000, r;
	struct jr d;

	for (r = 0; r < rounds; r++) {
		const char *s = seeds[rnd() % 4];
		size_t len = strlen(s), k, edits = 1 + rnd() % 4;

		memcpy(buf, s, len);
		for (k = 0; k < edits; k++) {
			size_t at = rnd() % (len + 1);

			switch (rnd() % 3) {
			case 0: /* replace */
				if (at < len)
					buf[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
				break;
			case 1: /* insert */
				if (len < sizeof(buf) - 1) {
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
					len++;
				}
				break;
			default: /* delete */
				if (at < len) {
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
				}
			}
		}
		if (parse(buf, len, &d, n, 32) == 0)
			accepted++;
		/* Accessors on whatever parsed (d.used is 0 after a refusal). */
		if (!jr_parse(&d, buf, len, n, 32, NULL)) {
			uint64_t u;

			for (uint32_t i = 0; i < d.used; i++) {
				jr_str(&d, (int)i, out, sizeof(out));
				jr_u64(&d, (int)i, &u);
				jr_member(&d, (int)i, "status");
				jr_index(&d, (int)i, 3);
			}
			jr_path(&d, 0, "return.ram.transferred");
		}
	}
	printf("# %lu of %lu mutated texts were valid JSON\n", accepted, rounds);
	ok(accepted > 0 && accepted < rounds, "mutation fuzz: no crash, both outcomes seen");
}

int main(void)
{
	printf("TAP version 13\n");
	test_tables();
	test_bounds();
	test_access();
	test_mutations();
	printf("1..%d\n", tests);
	return failures ? 1 : 0;
}
