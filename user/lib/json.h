/* SPDX-License-Identifier: GPL-2.0 */
/* A tiny streaming JSON writer for --json output (stdout only). */
#ifndef CLAT_JSON_H
#define CLAT_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *out;
	int depth;
	bool need_comma[16];
};

void json_init(struct json *j, FILE *out);
void json_obj_open(struct json *j, const char *key);   /* key NULL inside arrays/top */
void json_obj_close(struct json *j);
void json_arr_open(struct json *j, const char *key);
void json_arr_close(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t val);
void json_i64(struct json *j, const char *key, int64_t val);
void json_bool(struct json *j, const char *key, bool val);
void json_mac(struct json *j, const char *key, const uint8_t mac[6]);
void json_end(struct json *j); /* newline after the top-level value */

#endif
