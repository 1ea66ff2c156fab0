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
#define MAX_STALE 8 /* answers for earlier clients skipped before giving up */

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
			uint32_t *ntypes, char *id, size_t idlen, char *err, size_t errlen)
{
	bool have_bat = false, have_gen = false, have_nt = false, have_err = false, have_id = false;
	char key[32], val[512], said[512] = "";
	const char *p = skip_ws(line);
	int bad = 0;

	if (idlen)
		id[0] = '\0';
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
			/* A bad value is reported after the id is known: the
			 * caller must tell its own bad answer from a stale one. */
			if (!bad)
				bad = parse_hex_gpa(val, bat_gpa, err, errlen);
			have_bat = true;
		} else if (!strcmp(key, "generation") && !have_gen) {
			p = read_u32(p, generation);
			have_gen = true;
		} else if (!strcmp(key, "ntypes") && !have_nt) {
			p = read_u32(p, ntypes);
			have_nt = true;
		} else if (!strcmp(key, "id") && !have_id) {
			p = read_str(p, id, idlen);
			have_id = true;
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
	if (bad)
		return bad;
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

/* Sends req and reads up to one line (without its newline) before the
 * deadline; *pending keeps what came after it. */
static int chan_send(int fd, const char *req, int64_t deadline, char *err, size_t errlen)
{
	size_t sent = 0, n = strlen(req);

	while (sent < n) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int64_t left = deadline - now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			snprintf(err, errlen, "timed out");
			return -ETIMEDOUT;
		}
		r = send(fd, req + sent, n - sent, MSG_NOSIGNAL);
		if (r > 0)
			sent += (size_t)r;
		else if (r < 0 && errno != EAGAIN && errno != EINTR) {
			int e = -errno;

			snprintf(err, errlen, "%s", strerror(-e));
			return e;
		}
	}
	return 0;
}

struct chan_buf {
	char b[LINE_MAX_LEN + 1];
	size_t n;
};

/* The next line into line (NUL-terminated, newline dropped). */
static int chan_line(int fd, struct chan_buf *cb, char *line, int64_t deadline, char *err,
		     size_t errlen)
{
	char *nl;

	while (!(nl = memchr(cb->b, '\n', cb->n))) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t r;

		if (cb->n == LINE_MAX_LEN) {
			snprintf(err, errlen, "answer longer than %d bytes", LINE_MAX_LEN);
			return -EPROTO;
		}
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			snprintf(err, errlen, "timed out");
			return -ETIMEDOUT;
		}
		r = recv(fd, cb->b + cb->n, LINE_MAX_LEN - cb->n, 0);
		if (r == 0) {
			snprintf(err, errlen, "the channel closed before an answer");
			return -ECONNRESET;
		}
		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			int e = -errno;

			snprintf(err, errlen, "%s", strerror(-e));
			return e;
		}
		if (r > 0)
			cb->n += (size_t)r;
	}
	*nl = '\0';
	strcpy(line, cb->b);
	cb->n -= (size_t)(nl + 1 - cb->b);
	memmove(cb->b, nl + 1, cb->n);
	return 0;
}

int guest_channel_query(const char *chan, uint64_t *bat_gpa, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char line[LINE_MAX_LEN + 1], err[600], req[80], want[24], id[40];
	static struct chan_buf cb;
	struct timespec ts;
	uint32_t gen = 0, nt = 0;
	int fd, ret, i;

	/* An id of our own: an answer meant for an earlier client that left
	 * (a timed-out attach) is told apart and skipped. */
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(want, sizeof(want), "%x-%lx", (unsigned int)getpid(), (long)ts.tv_nsec);
	snprintf(req, sizeof(req), "{\"req\":\"bat\",\"id\":\"%s\"}\n", want);
	cb.n = 0;
	fd = chan_connect(chan, err, sizeof(err));
	if (fd < 0) {
		pr_err("failed to query the guest agent on %s: %s", chan, err);
		return fd;
	}
	ret = chan_send(fd, req, deadline, err, sizeof(err));
	for (i = 0; !ret; i++) {
		id[0] = '\0';
		ret = chan_line(fd, &cb, line, deadline, err, sizeof(err));
		if (!ret)
			ret = guest_channel_parse(line, bat_gpa, &gen, &nt, id, sizeof(id), err,
						  sizeof(err));
		/* Stale (another id, or none), good or bad alike: skip it. */
		if ((!ret || ret == -EPROTO) && strcmp(id, want) && i < MAX_STALE) {
			ret = 0;
			continue;
		}
		if (!ret && strcmp(id, want)) {
			snprintf(err, sizeof(err), "only answers to other requests");
			ret = -EPROTO;
		}
		break;
	}
	close(fd);
	if (ret) {
		pr_err("failed to query the guest agent on %s: %s", chan, err);
		return ret;
	}
	pr_info("guest agent on %s: BAT at GPA 0x%" PRIx64 ", generation %u, %u types", chan,
		*bat_gpa, gen, nt);
	return 0;
}
