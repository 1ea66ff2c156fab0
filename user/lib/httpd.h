/* SPDX-License-Identifier: GPL-2.0 */
/* A minimal HTTP server for one generated page (see httpd.c). */
#ifndef CLAT_HTTPD_H
#define CLAT_HTTPD_H

#include <stdio.h>
#include <sys/socket.h>

struct http_page {
	const char *path;                 /* e.g. "/metrics" */
	const char *type;                 /* Content-Type */
	int (*body)(void *arg, FILE *out); /* writes the page; -errno: 503 */
	void *arg;
};

/* ADDR:PORT or [V6]:PORT, numeric only; -EUSAGE if malformed. */
int http_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Serves page until SIGINT or SIGTERM (then returns 0); where names the
 * address in messages. */
int http_serve(const struct sockaddr_storage *ss, socklen_t len, const char *where,
	       const struct http_page *page);

#endif
