/* SPDX-License-Identifier: GPL-2.0 */
/* QMP client over a unix socket: greeting, qmp_capabilities, commands with
 * an id, asynchronous events skipped (the last ones kept), deadlines on
 * every wait, and errors that quote QEMU's "desc". */
#ifndef CLAT_QMP_H
#define CLAT_QMP_H

#include <stdint.h>

#include "jsonr.h"

#define QMP_MAX_MSG (64 * 1024)
#define QMP_MAX_NODES 2048
struct qmp {
	int fd;
	const char *who;    /* "source", "destination": in messages */
	int timeout_ms;
	uint64_t next_id;
	char buf[QMP_MAX_MSG + 1];
	size_t have;        /* bytes in buf */
	char msg[QMP_MAX_MSG + 1];
	struct jr doc;      /* the last reply, over msg */
	struct jr_node nodes[QMP_MAX_NODES];
	char err_class[64], err_desc[512];
};

/* Connects, reads the greeting and negotiates capabilities. */
int qmp_open(struct qmp *q, const char *path, const char *who, int timeout_ms);
void qmp_close(struct qmp *q);
/* Runs cmd with args (a JSON object text, or NULL).  On success *ret is the
 * node of "return" in q->doc (valid until the next call).  QEMU's error
 * reply: -EREMOTEIO, with class and desc in q->err_*, printed as
 * "<who> QEMU refused <cmd>: <desc>".  Other failures print
 * and return -ETIMEDOUT, -ECONNRESET, -EPROTO, -EMSGSIZE or -errno. */
int qmp_exec(struct qmp *q, const char *cmd, const char *args, int *ret);
/* Asks QEMU to exit and waits until it closes the connection. */
int qmp_quit(struct qmp *q);
/* "status" of query-status ("running", "paused", "inmigrate", "postmigrate"...). */
int qmp_status(struct qmp *q, char *buf, size_t len);

#endif
