/* SPDX-License-Identifier: GPL-2.0 */
/* Values from text, one parser each: numbers (with K/M/G suffixes for byte
 * counts) and MAC addresses.  Shared by the command-line engine, the type
 * spec parser of gbuild and the domain XML reader, so that a number or a MAC
 * means the same everywhere. */
#ifndef CLAT_PARSE_H
#define CLAT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first n characters of s as an unsigned integer (0x for hex, a leading
 * 0 for octal, as strtoull); with suffix, a K, M or G multiplies by 2^10,
 * 2^20, 2^30.  -EINVAL for anything else, -ERANGE if over max. */
int parse_num(const char *s, size_t n, bool suffix, uint64_t max, uint64_t *out);

/* A TCP/UDP port of a HOST:PORT: decimal digits only (what getaddrinfo
 * reads), 1..65535.  0 or -EINVAL. */
int parse_port(const char *s);

/* xx:xx:xx:xx:xx:xx, unicast and non-zero (a MAC that can name a function);
 * NULL, or why not. */
const char *parse_mac_reason(const char *s, uint8_t mac[6]);

#endif
