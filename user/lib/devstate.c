// SPDX-License-Identifier: GPL-2.0
/* The device-state channel: addresses, framing and bounded reads.  What the
 * frames mean is the migration's business (migsrc.c, migdst.c). */
#define _GNU_SOURCE /* accept4 */
#include "devstate.h"
#include "common.h"
#include "parse.h"

#include <endian.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

const char *devstate_type_name(uint16_t type)
{
	static const char *const names[] = {
		[DS_HELLO] = "HELLO",   [DS_BLOCKS] = "BLOCKS", [DS_STOPPED] = "STOPPED",
		[DS_COMMIT] = "COMMIT", [DS_DONE] = "DONE",     [DS_ABORT] = "ABORT",
	};

	return type < ARRAY_SIZE(names) && names[type] ? names[type] : "unknown";
}

void ds_hello_le(struct ds_hello *h)
{
	h->fn = htole32(h->fn);
	h->generation = htole32(h->generation);
	h->bat_gpa = htole64(h->bat_gpa);
	h->mem_size = htole64(h->mem_size);
	h->block_max = htole32(h->block_max);
	h->reserved = htole32(h->reserved);
}

void ds_done_le(struct ds_done *d)
{
	d->status = (int32_t)htole32((uint32_t)d->status);
	d->live_contexts = htole64(d->live_contexts);
	d->blocks = htole64(d->blocks);
	d->bytes = htole64(d->bytes);
	d->write_ns = htole64(d->write_ns);
	d->load_ns = htole64(d->load_ns);
	d->build_ns = htole64(d->build_ns);
	d->switch_ns = htole64(d->switch_ns);
}

/* ---- addresses ------------------------------------------------------------- */

struct chan_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
};

static int parse_unix(const char *path, struct chan_addr *a)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;

	if (!*path || strlen(path) >= sizeof(un->sun_path)) {
		pr_err("invalid channel unix:%s: the path must be 1..%zu bytes", path,
		       sizeof(un->sun_path) - 1);
		return -EINVAL;
	}
	memset(a, 0, sizeof(*a));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, strlen(path));
	a->len = sizeof(*un);
	a->family = AF_UNIX;
	return 0;
}

/* tcp:HOST:PORT or tcp:[V6]:PORT. */
static int parse_tcp(const char *spec, bool passive, struct chan_addr *a)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char host[256];
	const char *port, *h = spec;
	size_t hl;
	int rc;

	if (*h == '[') {
		const char *e = strchr(h, ']');

		if (!e || e[1] != ':')
			goto bad;
		h++;
		hl = (size_t)(e - h);
		port = e + 2;
	} else {
		const char *c = strrchr(h, ':');

		if (!c)
			goto bad;
		hl = (size_t)(c - h);
		port = c + 1;
	}
	if (!hl || hl >= sizeof(host) || parse_port(port))
		goto bad;
	memcpy(host, h, hl);
	host[hl] = 0;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		pr_err("failed to resolve channel tcp:%s: %s", spec, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	memset(a, 0, sizeof(*a));
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	a->family = res->ai_family;
	freeaddrinfo(res);
	return 0;
bad:
	pr_err("invalid channel tcp:%s: need tcp:HOST:PORT or tcp:[V6]:PORT", spec);
	return -EINVAL;
}

static int parse_chan(const char *chan, bool passive, struct chan_addr *a)
{
	if (!strncmp(chan, "unix:", 5))
		return parse_unix(chan + 5, a);
	if (!strncmp(chan, "tcp:", 4))
		return parse_tcp(chan + 4, passive, a);
	pr_err("invalid channel '%s': need unix:PATH or tcp:HOST:PORT", chan);
	return -EINVAL;
}

static int chan_socket(const struct chan_addr *a)
{
	int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	if (a->family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	return fd;
}

static void ch_init(struct devstate *ch, int fd, int wait_ms)
{
	struct timeval tv;

	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ch->wait_ms = wait_ms > 0 ? wait_ms : DS_DEFAULT_WAIT_MS;
	/* A peer that stops reading must fail a write in time, not hold a
	 * paused source forever; one that went away must not kill us. */
	tv.tv_sec = ch->wait_ms / 1000;
	tv.tv_usec = (ch->wait_ms % 1000) * 1000;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	signal(SIGPIPE, SIG_IGN);
}

int devstate_connect(struct devstate *ch, const char *chan, int wait_ms)
{
	struct chan_addr a;
	int fd, err = parse_chan(chan, false, &a);

	ch->fd = -1;
	if (err)
		return err;
	fd = chan_socket(&a);
	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
		err = -errno;
		pr_err("failed to connect to the destination's channel %s: %s", chan, strerror(-err));
		close(fd);
		return err;
	}
	ch_init(ch, fd, wait_ms);
	return 0;
}

/* A unix socket file nobody listens on (connect is refused): left by a
 * listener that was killed. */
static bool stale_unix(const struct chan_addr *a)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
	struct stat st;
	bool stale;
	int fd;

	if (lstat(un->sun_path, &st) || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	stale = connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno == ECONNREFUSED;
	close(fd);
	return stale;
}

int devstate_listen(const char *chan, int *lfd)
{
	struct chan_addr a;
	int fd, rc, err = parse_chan(chan, true, &a);

	*lfd = -1;
	if (err)
		return err;
	fd = chan_socket(&a);
	if (fd < 0)
		return fd;
	rc = bind(fd, (struct sockaddr *)&a.ss, a.len);
	if (rc < 0 && errno == EADDRINUSE && a.family == AF_UNIX && stale_unix(&a)) {
		unlink(chan + 5); /* a killed listener's socket file: nobody answers on it */
		rc = bind(fd, (struct sockaddr *)&a.ss, a.len);
	}
	if (rc < 0) {
		err = -errno;
		pr_err("failed to listen on channel %s: %s", chan, strerror(-err));
		close(fd);
		return err;
	}
	if (listen(fd, 1) < 0) {
		err = -errno;
		pr_err("failed to listen on channel %s: %s", chan, strerror(-err));
		close(fd);
		return err;
	}
	*lfd = fd;
	return 0;
}

void devstate_unlisten(int lfd, const char *chan)
{
	if (lfd < 0)
		return;
	close(lfd);
	if (!strncmp(chan, "unix:", 5))
		unlink(chan + 5);
}

int devstate_accept(struct devstate *ch, int lfd, const char *chan, int wait_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd, rc;

	ch->fd = -1;
	rc = poll(&p, 1, wait_ms > 0 ? wait_ms : DS_DEFAULT_WAIT_MS);
	if (rc <= 0) {
		rc = rc ? -errno : -ETIMEDOUT;
		pr_err("failed to accept the source on channel %s: %s", chan,
		       rc == -ETIMEDOUT ? "no source connected in time" : strerror(-rc));
		devstate_unlisten(lfd, chan);
		return rc;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	rc = fd < 0 ? -errno : 0;
	devstate_unlisten(lfd, chan); /* one source per migration */
	if (rc) {
		pr_err("failed to accept the source on channel %s: %s", chan, strerror(-rc));
		return rc;
	}
	ch_init(ch, fd, wait_ms);
	return 0;
}

void devstate_close(struct devstate *ch)
{
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	free(ch->buf);
	ch->buf = NULL;
	ch->cap = 0;
}

/* ---- framing ----------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -ETIMEDOUT; /* SO_SNDTIMEO: the peer stopped reading */
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int devstate_send(struct devstate *ch, uint16_t type, const void *payload, uint32_t len)
{
	struct ds_hdr h = { .magic = htole32(DS_MAGIC), .version = htole16(DS_VERSION),
			    .type = htole16(type), .len = htole32(len) };
	int err;

	if (ch->fd < 0)
		return -ENOTCONN;
	if (len > DS_FRAME_MAX)
		return -EMSGSIZE;
	err = write_all(ch->fd, &h, sizeof(h));
	if (!err && len)
		err = write_all(ch->fd, payload, len);
	if (!err)
		ch->sent_bytes += sizeof(h) + len;
	return err;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads exactly len bytes before the deadline.  *got says how many came:
 * 0 with -EPIPE is a clean EOF. */
static int read_full(int fd, void *buf, size_t len, uint64_t deadline, size_t *got)
{
	uint8_t *p = buf;

	*got = 0;
	while (*got < len) {
		uint64_t now = now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int rc;

		if (now >= deadline)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, (int)(deadline - now));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (!rc)
			return -ETIMEDOUT;
		n = recv(fd, p + *got, len - *got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -EPIPE;
		*got += (size_t)n;
	}
	return 0;
}

int devstate_recv(struct devstate *ch, uint16_t *type, uint32_t *len, char *err, size_t errlen)
{
	struct ds_hdr h;
	size_t got;
	int rc;

	*type = 0;
	*len = 0;
	if (ch->fd < 0)
		return -ENOTCONN;
	rc = read_full(ch->fd, &h, sizeof(h), now_ms() + (uint64_t)ch->wait_ms, &got);
	if (rc == -EPIPE && got) {
		snprintf(err, errlen, "truncated frame: the stream ended after %zu of %zu header bytes",
			 got, sizeof(h));
		return -EPROTO;
	}
	if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "the channel was silent for %d ms", ch->wait_ms);
	if (rc)
		return rc;
	h.magic = le32toh(h.magic);
	h.version = le16toh(h.version);
	h.type = le16toh(h.type);
	h.len = le32toh(h.len);
	if (h.magic != DS_MAGIC) {
		snprintf(err, errlen, "bad magic 0x%08x (want 0x%08x): not a clat device-state stream",
			 h.magic, DS_MAGIC);
		return -EPROTO;
	}
	if (h.version != DS_VERSION) {
		snprintf(err, errlen, "unsupported version %u (this side speaks %u)", h.version,
			 DS_VERSION);
		return -EPROTO;
	}
	if (h.type < DS_HELLO || h.type > DS_ABORT || h.reserved) {
		snprintf(err, errlen, "bad frame header: type %u, reserved 0x%x", h.type,
			 le32toh(h.reserved));
		return -EPROTO;
	}
	if (h.len > DS_FRAME_MAX) {
		snprintf(err, errlen, "%s frame of %u bytes: over the %u-byte limit",
			 devstate_type_name(h.type), h.len, DS_FRAME_MAX);
		return -EPROTO;
	}
	if (h.len > ch->cap) { /* bounded by the check above */
		uint8_t *b = realloc(ch->buf, h.len);

		if (!b)
			return -ENOMEM;
		ch->buf = b;
		ch->cap = h.len;
	}
	rc = read_full(ch->fd, ch->buf, h.len, now_ms() + DS_FRAME_MS, &got);
	if (rc == -EPIPE || rc == -ETIMEDOUT) {
		snprintf(err, errlen, "truncated %s frame: %zu of %u payload bytes %s",
			 devstate_type_name(h.type), got, h.len,
			 rc == -EPIPE ? "before the stream ended" : "in time");
		return -EPROTO;
	}
	if (rc)
		return rc;
	ch->recv_bytes += sizeof(h) + h.len;
	*type = h.type;
	*len = h.len;
	return 0;
}

bool devstate_pending(const struct devstate *ch)
{
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };

	return ch->fd >= 0 && poll(&p, 1, 0) > 0;
}
