// SPDX-License-Identifier: GPL-2.0
/* Host end of the guest agent's channel: one request, one answer line.
 *
 * The answer comes from the guest, so it is parsed as hostile input: a
 * bounded line, a flat JSON object of known keys, each at most once, and
 * the BAT GPA as "0x" plus 1..16 hex digits, non-zero and page-aligned.
 * The tables behind it are validated by attach as always. */
#include "gchannel.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clat_abi.h"
#include "common.h"

#define LINE_MAX_LEN 1024
static const char request[] = "{\"req\":\"bat\"}\n";

__attribute__((format(printf, 3, 4)))
static int perr(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A JSON string without escapes (the agent never needs them except in
 * "error", whose text is only shown); into out, bounded. */
static const char *read_str(const char *p, char *out, size_t len)
{
	size_t n = 0;

	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			if (!p[1])
				return NULL;
			p++;
		}
		if (n + 1 >= len)
			return NULL;
		out[n++] = *p;
	}
	if (*p != '"')
		return NULL;
	out[n] = '\0';
	return p + 1;
}

static const char *read_u32(const char *p, uint32_t *v)
{
	uint64_t x = 0;
	int n = 0;

	for (; *p >= '0' && *p <= '9'; p++, n++) {
		x = x * 10 + (uint64_t)(*p - '0');
		if (x > UINT32_MAX)
			return NULL;
	}
	if (!n || (n > 1 && p[-n] == '0'))
		return NULL;
	*v = (uint32_t)x;
	return p;
}

static int parse_hex_gpa(const char *s, uint64_t *gpa, char *err, size_t len)
{
	uint64_t v = 0;
	size_t i, n = strlen(s);

	if (n < 3 || n > 18 || s[0] != '0' || s[1] != 'x')
		return perr(err, len, "bat_gpa \"%s\" is not 0x followed by 1..16 hex digits", s);
	for (i = 2; i < n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			return perr(err, len, "bat_gpa \"%s\" is not 0x followed by 1..16 hex "
				    "digits", s);
		v = v << 4 | (uint64_t)d;
	}
	if (!v || v % CLAT_PAGE_SIZE)
		return perr(err, len, "bat_gpa %s is zero or not a multiple of %u", s,
			    CLAT_PAGE_SIZE);
	*gpa = v;
	return 0;
}

int guest_channel_parse(const char *line, uint64_t *bat_gpa, uint32_t *generation,
			uint32_t *ntypes, char *err, size_t errlen)
{
	bool have_bat = false, have_gen = false, have_nt = false, have_err = false;
	char key[32], val[512], said[512] = "";
	const char *p = skip_ws(line);
	int ret;

	if (*p++ != '{')
		return perr(err, errlen, "the answer is not a JSON object");
	p = skip_ws(p);
	while (*p != '}') {
		p = read_str(p, key, sizeof(key));
		if (!p)
			return perr(err, errlen, "bad key in the answer");
		p = skip_ws(p);
		if (*p++ != ':')
			return perr(err, errlen, "no ':' after \"%s\"", key);
		p = skip_ws(p);
		if (!strcmp(key, "bat_gpa") && !have_bat) {
			p = read_str(p, val, sizeof(val));
			if (!p)
				return perr(err, errlen, "bat_gpa is not a string");
			ret = parse_hex_gpa(val, bat_gpa, err, errlen);
			if (ret)
				return ret;
			have_bat = true;
		} else if (!strcmp(key, "generation") && !have_gen) {
			p = read_u32(p, generation);
			have_gen = true;
		} else if (!strcmp(key, "ntypes") && !have_nt) {
			p = read_u32(p, ntypes);
			have_nt = true;
		} else if (!strcmp(key, "error") && !have_err) {
			p = read_str(p, said, sizeof(said));
			if (!p)
				return perr(err, errlen, "error is not a string");
			have_err = true;
		} else {
			return perr(err, errlen, "unexpected or repeated key \"%s\"", key);
		}
		if (!p)
			return perr(err, errlen, "bad value of \"%s\"", key);
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p != '}')
			return perr(err, errlen, "expected ',' or '}' after \"%s\"", key);
	}
	if (*skip_ws(p + 1))
		return perr(err, errlen, "trailing bytes after the object");
	if (have_err)
		return perr(err, errlen, "the agent says: %s", said);
	if (!have_bat || !have_gen || !have_nt)
		return perr(err, errlen, "the answer lacks bat_gpa, generation or ntypes");
	if (*ntypes < 1 || *ntypes > CLAT_MAX_TYPES)
		return perr(err, errlen, "ntypes %u out of range 1..%u", *ntypes, CLAT_MAX_TYPES);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects to PATH of "unix:PATH". */
static int chan_connect(const char *chan, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path;
	int fd;

	if (strncmp(chan, "unix:", 5) || !chan[5]) {
		snprintf(err, errlen, "expected unix:PATH");
		return -EINVAL;
	}
	path = chan + 5;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path longer than %zu bytes", sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "connect: %s", strerror(-e));
		return e;
	}
	return fd;
}

/* Sends the request and reads one line before the deadline. */
static int chan_exchange(int fd, char *line, size_t len, int64_t deadline, char *err,
			 size_t errlen)
{
	size_t sent = 0, n = 0;

	while (sent < sizeof(request) - 1 || !memchr(line, '\n', n)) {
		struct pollfd p = { .fd = fd,
				    .events = sent < sizeof(request) - 1 ? POLLOUT : POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			snprintf(err, errlen, "timed out");
			return -ETIMEDOUT;
		}
		if (p.events == POLLOUT) {
			r = send(fd, request + sent, sizeof(request) - 1 - sent, MSG_NOSIGNAL);
			if (r > 0)
				sent += (size_t)r;
		} else {
			r = recv(fd, line + n, len - 1 - n, 0);
			if (r == 0) {
				snprintf(err, errlen, "the channel closed before an answer");
				return -ECONNRESET;
			}
			if (r > 0) {
				n += (size_t)r;
				line[n] = '\0';
				if (n == len - 1 && !memchr(line, '\n', n)) {
					snprintf(err, errlen, "answer longer than %zu bytes", len - 1);
					return -EPROTO;
				}
			}
		}
		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			int e = -errno;

			snprintf(err, errlen, "%s", strerror(-e));
			return e;
		}
	}
	*(char *)memchr(line, '\n', n) = '\0';
	return 0;
}

int guest_channel_query(const char *chan, uint64_t *bat_gpa, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char line[LINE_MAX_LEN + 1] = "", err[600];
	uint32_t gen = 0, nt = 0;
	int fd, ret;

	fd = chan_connect(chan, err, sizeof(err));
	if (fd < 0) {
		pr_err("failed to query the guest agent on %s: %s", chan, err);
		return fd;
	}
	ret = chan_exchange(fd, line, sizeof(line), deadline, err, sizeof(err));
	close(fd);
	/* The line may hold a stale answer's leftovers: only the first counts. */
	if (!ret)
		ret = guest_channel_parse(line, bat_gpa, &gen, &nt, err, sizeof(err));
	if (ret) {
		pr_err("failed to query the guest agent on %s: %s", chan, err);
		return ret;
	}
	pr_info("guest agent on %s: BAT at GPA 0x%" PRIx64 ", generation %u, %u types", chan,
		*bat_gpa, gen, nt);
	return 0;
}
