// SPDX-License-Identifier: GPL-2.0
/* A minimal HTTP/1.1 server for one page (GET or HEAD of one path), for
 * `clat-load metrics --listen`: single-threaded, one request per
 * connection, stopped cleanly by SIGINT or SIGTERM. */
#define _GNU_SOURCE /* ppoll, accept4 */
#include "httpd.h"
#include "common.h"
#include "parse.h"

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

/* ADDR:PORT, [V6]:PORT; numeric addresses only. */
int http_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *port;
	size_t hl;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			goto bad;
		hl = rb - s - 1;
		s++;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', colon - s))
			goto bad;
		hl = colon - s;
	}
	port = colon + 1;
	if (!hl || hl >= sizeof(host) || parse_port(port))
		goto bad;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		goto bad;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
bad:
	return -EUSAGE;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static void respond(int fd, int code, const char *reason, const char *type, const char *body,
		    size_t len, bool head)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 code, reason, type, len);

	if (send_all(fd, hdr, n) == 0 && !head)
		send_all(fd, body, len);
}

static void respond_text(int fd, int code, const char *reason, const char *body)
{
	respond(fd, code, reason, "text/plain; charset=utf-8", body, strlen(body), false);
}

/* Reads the request head (up to 8 KiB, 5 s) and answers it. */
static void serve_one(int fd, const struct http_page *page)
{
	bool head;
	struct timeval tv = { .tv_sec = 5 };
	char req[8192], method[16], path[1024];
	size_t have = 0;
	char *body = NULL, *q;
	size_t blen = 0;
	FILE *mem;
	int err;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (have < sizeof(req) - 1) {
		ssize_t n = recv(fd, req + have, sizeof(req) - 1 - have, 0);

		if (n < 0 && errno == EINTR && !stop_signal)
			continue;
		if (n <= 0)
			return;
		have += n;
		req[have] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[have] = '\0';
	if (sscanf(req, "%15s %1023s", method, path) != 2) {
		respond_text(fd, 400, "Bad Request", "bad request\n");
		return;
	}
	head = !strcmp(method, "HEAD");
	if (strcmp(method, "GET") && !head) {
		respond_text(fd, 405, "Method Not Allowed", "only GET and HEAD\n");
		return;
	}
	q = strchr(path, '?');
	if (q)
		*q = '\0';
	if (strcmp(path, page->path)) {
		char msg[1100];

		snprintf(msg, sizeof(msg), "not found; the page is at %s\n", page->path);
		respond_text(fd, 404, "Not Found", msg);
		return;
	}
	mem = open_memstream(&body, &blen);
	if (!mem) {
		respond_text(fd, 500, "Internal Server Error", "out of memory\n");
		return;
	}
	err = page->body(page->arg, mem);
	fclose(mem);
	if (err)
		respond_text(fd, 503, "Service Unavailable",
			     "clat state unreadable (not attached?); see clat-load's stderr\n");
	else
		respond(fd, 200, "OK", page->type, body, blen, head);
	free(body);
}

int http_serve(const struct sockaddr_storage *ss, socklen_t len, const char *where,
	       const struct http_page *page)
{
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t block, orig;
	int one = 1, lfd, err = 0;

	lfd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		err = -errno;
		pr_err("failed to open a socket: %s", strerror(-err));
		return err;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (const struct sockaddr *)ss, len) || listen(lfd, 16)) {
		err = -errno;
		pr_err("failed to listen on %s: %s", where, strerror(-err));
		close(lfd);
		return err;
	}
	/* The signals are only let in while waiting in ppoll: none is lost
	 * between the check and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop_signal) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int n = ppoll(&p, 1, NULL, &orig), cfd;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			pr_err("failed to wait for a connection: %s", strerror(-err));
			break;
		}
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue; /* the client went away, or EMFILE: try again */
		serve_one(cfd, page);
		close(cfd);
	}
	close(lfd);
	if (stop_signal)
		pr_info("%s, exiting", strsignal(stop_signal));
	sigprocmask(SIG_SETMASK, &orig, NULL);
	return err;
}

