// SPDX-License-Identifier: GPL-2.0
/* Values from text (see parse.h). */
#include "parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int parse_num(const char *s, size_t n, bool suffix, uint64_t max, uint64_t *out)
{
	char buf[32], *end;
	unsigned long long v;
	uint64_t mult = 1;

	/* strtoull would take a sign or leading blanks: none of them is a count. */
	if (!n || n >= sizeof(buf) || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtoull(buf, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno || end == buf)
		return -EINVAL;
	if (suffix && *end) {
		switch (*end++) {
		case 'k': case 'K': mult = 1ULL << 10; break;
		case 'm': case 'M': mult = 1ULL << 20; break;
		case 'g': case 'G': mult = 1ULL << 30; break;
		default: return -EINVAL;
		}
	}
	if (*end)
		return -EINVAL;
	if (v > max / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int parse_port(const char *s)
{
	size_t i, n = strlen(s);
	unsigned long v = 0;

	/* Decimal, as getaddrinfo reads it ("08" is 8): not parse_num's base 0. */
	if (!n || n > 5 || strspn(s, "0123456789") != n)
		return -EINVAL;
	for (i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	return v >= 1 && v <= 65535 ? 0 : -EINVAL;
}

const char *parse_mac_reason(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;
	int i;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
				      &b[4], &b[5], &tail) != 6)
		return "expected xx:xx:xx:xx:xx:xx";
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	if (mac[0] & 1)
		return "multicast/broadcast addresses cannot identify a function";
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return "all-zero address";
	return NULL;
}
