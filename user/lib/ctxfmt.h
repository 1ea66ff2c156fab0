/* SPDX-License-Identifier: GPL-2.0 */
/* Text and JSON forms of one context record, shared by `clat-guest show`
 * and `clat-load ctx list`. */
#ifndef CLAT_CTXFMT_H
#define CLAT_CTXFMT_H

#include <stdint.h>
#include <stdio.h>

#include "clat_abi.h"
#include "json.h"

const char *tcp_state_name(uint8_t state);   /* "established", ...; "invalid" */
const char *slot_state_name(uint64_t state_word); /* "empty", "claiming", "live", "released" */
const char *ctx_proto_name(uint8_t proto, char buf[8]); /* "tcp", "udp" or the number */
/* IPv4-mapped addresses as dotted quads, others as IPv6. */
void ctx_format_addr(const uint8_t addr[16], char buf[46]);

/* The record's fields (without svc), into an object the caller opened. */
void ctx_json_fields(struct json *j, const struct clat_ctx *c);
/* {"svc": svc, ...fields...} */
void ctx_json(struct json *j, const struct clat_ctx *c, uint32_t svc);
/* One line: svc, state, proto, both endpoints, TCP state, counters, times. */
void ctx_print(FILE *out, const struct clat_ctx *c, uint32_t svc);

#endif
