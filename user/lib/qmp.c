// SPDX-License-Identifier: GPL-2.0
/* QMP client.  QEMU sends one JSON object per line ("\r\n"): the greeting,
 * replies ({"return"} or {"error"}, with the id we sent) and asynchronous
 * events ({"event"}) that may come before any reply.  Every message is
 * parsed strictly and bounded (QMP_MAX_MSG bytes, QMP_MAX_NODES values);
 * a message that is not QMP ends the session with a clear error. */
#include "qmp.h"
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One line into q->msg, parsed into q->doc, before deadline (ms). */
static int read_msg(struct qmp *q, int64_t deadline, const char *waiting_for)
{
	char *nl;
	size_t n;
	ssize_t r;
	int err;

	while (!(nl = memchr(q->buf, '\n', q->have))) {
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		int64_t left = deadline - now_ms();

		if (q->have >= QMP_MAX_MSG) {
			pr_err("%s QMP: a message longer than %d bytes", q->who, QMP_MAX_MSG);
			return -EMSGSIZE;
		}
		if (left <= 0) {
			pr_err("%s QMP: no reply to %s within %d ms", q->who, waiting_for, q->timeout_ms);
			return -ETIMEDOUT;
		}
		err = poll(&p, 1, (int)left);
		if (err < 0 && errno != EINTR)
			return -errno;
		if (err <= 0)
			continue;
		r = read(q->fd, q->buf + q->have, QMP_MAX_MSG - q->have);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -ECONNRESET;
			pr_err("%s QMP: connection closed while waiting for %s%s%s", q->who, waiting_for,
			       r < 0 ? ": " : " (QEMU exited?)", r < 0 ? strerror(errno) : "");
			return err;
		}
		q->have += (size_t)r;
	}
	n = (size_t)(nl - q->buf);
	memcpy(q->msg, q->buf, n);
	q->msg[n] = '\0';
	q->have -= n + 1;
	memmove(q->buf, nl + 1, q->have);
	err = jr_parse(&q->doc, q->msg, n, q->nodes, QMP_MAX_NODES, NULL);
	if (!err && jr_type(&q->doc, 0) != JR_OBJ)
		err = -EINVAL;
	if (err) {
		pr_err("%s QMP: not a QMP message (%s) while waiting for %s", q->who,
		       err == -EINVAL ? "invalid JSON" : strerror(-err), waiting_for);
		return -EPROTO;
	}
	return 0;
}

/* Events (MIGRATION, STOP, RESUME...) between replies: nothing waits on
 * them (status is polled), but -vv shows them. */
static void log_event(struct qmp *q, int ev)
{
	char name[48] = "", status[32] = "";

	jr_str(&q->doc, ev, name, sizeof(name));
	jr_str(&q->doc, jr_path(&q->doc, 0, "data.status"), status, sizeof(status));
	pr_debug("%s QMP event %s %s", q->who, name, status);
}

static bool valid_cmd(const char *cmd)
{
	size_t i, n = strlen(cmd);

	for (i = 0; i < n; i++)
		if (!((cmd[i] >= 'a' && cmd[i] <= 'z') || (cmd[i] >= '0' && cmd[i] <= '9') ||
		      cmd[i] == '-' || cmd[i] == '_'))
			return false;
	return n > 0 && n < 64;
}

static int send_all(struct qmp *q, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w < 0 ? -errno : -EIO;

			pr_err("%s QMP: failed to send: %s", q->who, strerror(-err));
			return err;
		}
		s += w, n -= (size_t)w;
	}
	return 0;
}

int qmp_exec(struct qmp *q, const char *cmd, const char *args, int *ret)
{
	char line[4096], id[32];
	int64_t deadline;
	int n, err, r;

	q->err_class[0] = q->err_desc[0] = '\0';
	if (!valid_cmd(cmd)) {
		pr_err("invalid QMP command name '%s'", cmd);
		return -EINVAL;
	}
	/* Our own arguments, but checked: a malformed text would make QEMU
	 * drop the connection rather than answer. */
	if (args && (jr_parse(&q->doc, args, strlen(args), q->nodes, QMP_MAX_NODES, NULL) ||
		     jr_type(&q->doc, 0) != JR_OBJ)) {
		pr_err("invalid QMP arguments for %s: %s", cmd, args);
		return -EINVAL;
	}
	snprintf(id, sizeof(id), "clat-%llu", (unsigned long long)++q->next_id);
	n = snprintf(line, sizeof(line), "{\"execute\":\"%s\"%s%s,\"id\":\"%s\"}\n", cmd,
		     args ? ",\"arguments\":" : "", args ? args : "", id);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	err = send_all(q, line, (size_t)n);
	if (err)
		return err;
	deadline = now_ms() + q->timeout_ms;
	for (;;) {
		err = read_msg(q, deadline, cmd);
		if (err)
			return err;
		if ((r = jr_member(&q->doc, 0, "event")) >= 0) {
			log_event(q, r);
			continue;
		}
		if (!jr_str_eq(&q->doc, jr_member(&q->doc, 0, "id"), id))
			continue; /* a late reply to a command that timed out */
		if ((r = jr_member(&q->doc, 0, "return")) >= 0) {
			if (ret)
				*ret = r;
			return 0;
		}
		r = jr_member(&q->doc, 0, "error");
		if (r < 0) {
			pr_err("%s QMP: reply to %s has neither return nor error", q->who, cmd);
			return -EPROTO;
		}
		jr_str(&q->doc, jr_member(&q->doc, r, "class"), q->err_class, sizeof(q->err_class));
		jr_str(&q->doc, jr_member(&q->doc, r, "desc"), q->err_desc, sizeof(q->err_desc));
		pr_err("%s QEMU refused %s: %s (%s)", q->who, cmd, q->err_desc, q->err_class);
		return -EREMOTEIO;
	}
}

int qmp_status(struct qmp *q, char *buf, size_t len)
{
	int r, err = qmp_exec(q, "query-status", NULL, &r);

	if (err)
		return err;
	if (jr_str(&q->doc, jr_member(&q->doc, r, "status"), buf, len) < 0) {
		pr_err("%s QMP: query-status without a status", q->who);
		return -EPROTO;
	}
	return 0;
}

int qmp_open(struct qmp *q, const char *path, const char *who, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int err;

	memset(q, 0, sizeof(*q));
	q->who = who;
	q->timeout_ms = timeout_ms;
	q->fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		pr_err("%s QMP socket path too long: %s", who, path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		pr_err("failed to connect to the %s QMP socket %s: %s", who, path, strerror(-err));
		qmp_close(q);
		return err;
	}
	err = read_msg(q, now_ms() + timeout_ms, "the QMP greeting");
	if (!err && jr_member(&q->doc, 0, "QMP") < 0) {
		pr_err("%s QMP: the first message is not a QMP greeting", who);
		err = -EPROTO;
	}
	if (!err)
		err = qmp_exec(q, "qmp_capabilities", NULL, NULL);
	if (err)
		qmp_close(q);
	return err;
}

void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

int qmp_quit(struct qmp *q)
{
	static const char line[] = "{\"execute\":\"quit\"}\n";
	int64_t deadline = now_ms() + q->timeout_ms;
	char scratch[4096];

	if (q->fd < 0)
		return 0;
	if (send(q->fd, line, sizeof(line) - 1, MSG_NOSIGNAL) < 0)
		return errno == EPIPE || errno == ECONNRESET ? 0 : -errno; /* gone already */
	/* QEMU closes the socket as it exits: wait for that, not for a reply. */
	for (;;) {
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t r;

		if (left <= 0) {
			pr_err("%s QEMU did not exit within %d ms of quit", q->who, q->timeout_ms);
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = read(q->fd, scratch, sizeof(scratch));
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			qmp_close(q);
			return 0;
		}
	}
}
