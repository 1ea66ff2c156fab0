// SPDX-License-Identifier: GPL-2.0
/* clat-guest agent: the guest end of the channel that carries the BAT GPA
 * to the host.  virtio-serial was chosen over the serial console: it is a
 * port of its own (no shell, no kernel messages mixed in), and the guest
 * sees when the host end connects and leaves.
 *
 * One request per line, bounded; one JSON line per answer.  The port is
 * non-blocking: a read of 0 means no host is connected (virtio_console's
 * convention), and an answer the host no longer waits for is dropped rather
 * than left queued for the next client. */
#include "gagent.h"
#include "gphys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gtables.h"

#define aerr(fmt, ...) fprintf(stderr, "clat-guest: agent: " fmt "\n", ##__VA_ARGS__)

#define PORTS_DIR "/sys/class/virtio-ports"
#define REQ_MAX 256            /* longest request line */
#define IDLE_US 200000         /* poll interval while no host is connected */
#define WRITE_TIMEOUT_MS 2000

static bool port_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (!n || n > 64)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] > 0x7e || s[i] == '/')
			return false;
	return true;
}

/* /dev/vportNpM whose sysfs name is want. */
static int find_port(const char *want, char *dev, size_t len)
{
	struct dirent *de;
	DIR *d = opendir(PORTS_DIR);
	int err = -ENOENT;

	if (!d) {
		err = -errno;
		aerr("failed to list %s: %s (is virtio_console loaded?)", PORTS_DIR, strerror(-err));
		return err;
	}
	while ((de = readdir(d))) {
		char path[512], name[128];
		ssize_t n;
		int fd;

		if (strncmp(de->d_name, "vport", 5))
			continue;
		snprintf(path, sizeof(path), PORTS_DIR "/%s/name", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, name, sizeof(name) - 1);
		close(fd);
		if (n <= 0)
			continue;
		name[n] = '\0';
		name[strcspn(name, "\n")] = '\0';
		if (!strcmp(name, want)) {
			snprintf(dev, len, "/dev/%s", de->d_name);
			err = 0;
			break;
		}
	}
	closedir(d);
	if (err)
		aerr("failed to find virtio-serial port '%s' under %s", want, PORTS_DIR);
	return err;
}

/* s as the inside of a JSON string (quotes, backslashes, controls escaped). */
static void json_escape(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, len - o, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

static void answer_error(char *out, size_t len, const char *msg)
{
	char esc[600];

	json_escape(msg, esc, sizeof(esc));
	snprintf(out, len, "{\"error\":\"%s\"}\n", esc);
}

/* The tables as they are now: a rebuilt table is announced right. */
static void answer_bat(const char *mem, char *out, size_t len)
{
	struct gtables t;
	struct gmem g;
	char err[512], msg[640];
	uint64_t bat;
	int ret;

	ret = gmem_open(mem, false, &g);
	if (ret) {
		snprintf(msg, sizeof(msg), "cannot open %s: %s", mem, strerror(-ret));
		answer_error(out, len, msg);
		return;
	}
	if (!g.next) {
		gmem_close(&g);
		snprintf(msg, sizeof(msg), "%s is not on hugetlbfs: its GPAs are unknown", mem);
		answer_error(out, len, msg);
		return;
	}
	bat = gmem_gpa_of(&g, 0);
	ret = gtables_load(&g, bat, &t, err, sizeof(err));
	if (ret) {
		snprintf(msg, sizeof(msg), "invalid tables at GPA 0x%" PRIx64 ": %s", bat, err);
		answer_error(out, len, msg);
	} else {
		snprintf(out, len, "{\"bat_gpa\":\"0x%" PRIx64 "\",\"generation\":%u,\"ntypes\":%u}\n",
			 bat, t.hdr.generation, t.ntypes);
		gtables_free(&t);
	}
	gmem_close(&g);
}

/* {"req":"bat"} or {"req":"bat","id":"ID"}, whitespace outside the strings
 * ignored.  The id (1..32 of [0-9A-Za-z_-]) is echoed so that a host can
 * tell its answer from a stale one.  Returns false for anything else. */
static bool is_bat_request(const char *line, char *id, size_t idlen)
{
	static const char head[] = "{\"req\":\"bat\"", idkey[] = ",\"id\":\"";
	char compact[REQ_MAX + 1];
	const char *p;
	size_t o = 0, n;

	for (; *line && o < REQ_MAX; line++)
		if (*line != ' ' && *line != '\t' && *line != '\r')
			compact[o++] = *line;
	compact[o] = '\0';
	id[0] = '\0';
	if (strncmp(compact, head, sizeof(head) - 1))
		return false;
	p = compact + sizeof(head) - 1;
	if (!strcmp(p, "}"))
		return true;
	if (strncmp(p, idkey, sizeof(idkey) - 1))
		return false;
	p += sizeof(idkey) - 1;
	n = strspn(p, "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ_-");
	if (!n || n > 32 || n >= idlen || strcmp(p + n, "\"}"))
		return false;
	memcpy(id, p, n);
	id[n] = '\0';
	return true;
}

/* Whole answer or nothing useful: a host that left gets nothing queued. */
static int send_answer(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;

	while (off < n) {
		ssize_t w = write(fd, s + off, n - off);
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		/* The host left: its answer must not go to the next one. */
		if (poll(&p, 1, WRITE_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		if (p.revents & (POLLHUP | POLLERR))
			return -ENOTCONN;
	}
	return 0;
}

static void handle_line(int fd, const char *mem, const char *line)
{
	char out[1024], id[40];
	int err;

	if (!line)
		answer_error(out, sizeof(out), "request line too long");
	else if (!*line)
		return;
	else if (is_bat_request(line, id, sizeof(id))) {
		answer_bat(mem, out, sizeof(out));
		/* Echo the id inside the object: out ends in "}\n". */
		if (id[0] && strlen(out) + strlen(id) + 10 < sizeof(out))
			sprintf(out + strlen(out) - 2, ",\"id\":\"%s\"}\n", id);
	} else
		answer_error(out, sizeof(out), "unknown request: expected {\"req\":\"bat\"}");
	err = send_answer(fd, out);
	if (err)
		aerr("failed to answer the host: %s (answer dropped)", strerror(-err));
}

int gagent_run(const char *mem, const char *port_name)
{
	char dev[300], buf[REQ_MAX + 1];
	size_t n = 0;
	bool skipping = false;
	int fd, err;

	if (!port_name_ok(port_name)) {
		aerr("invalid --port '%s': 1..64 printable characters, no '/' or space", port_name);
		return -EINVAL;
	}
	err = find_port(port_name, dev, sizeof(dev));
	if (err)
		return err;
	fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		aerr("failed to open %s: %s", dev, strerror(-err));
		return err;
	}
	aerr("serving %s (%s) for %s", dev, port_name, mem);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;
		char *nl;

		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			err = -errno;
			break;
		}
		r = read(fd, buf + n, REQ_MAX - n);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0) {
			err = -errno;
			aerr("failed to read %s: %s", dev, strerror(-err));
			break;
		}
		if (r == 0) {
			/* No host on the other end: a new one starts afresh. */
			n = 0;
			skipping = false;
			usleep(IDLE_US);
			continue;
		}
		n += (size_t)r;
		buf[n] = '\0';
		while ((nl = memchr(buf, '\n', n))) {
			*nl = '\0';
			if (!skipping)
				handle_line(fd, mem, buf);
			skipping = false;
			n -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, n);
			buf[n] = '\0';
		}
		if (n == REQ_MAX) {
			/* Overlong: answer once, drop the rest of the line. */
			if (!skipping)
				handle_line(fd, mem, NULL);
			skipping = true;
			n = 0;
		}
	}
	close(fd);
	return err;
}
