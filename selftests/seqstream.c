// SPDX-License-Identifier: GPL-2.0
/* seqstream: paced UDP and TCP streams whose receivers prove what arrived.
 *
 *   seqstream udp-send DST PORT COUNT RATE TAG   COUNT datagrams (0: until SIGTERM) at RATE/s
 *   seqstream udp-recv PORT TAG                  until SIGTERM, or 3 s idle after traffic
 *   seqstream tcp-send DST PORT BYTES RATE       BYTES (0: until SIGTERM) of a known pattern at RATE B/s
 *   seqstream tcp-recv PORT                      one connection, checks the pattern
 *   seqstream tap DEV MAC TAG                    every frame DEV receives, until SIGTERM
 *
 * Receivers print one JSON line when they stop.  A datagram carries
 * {magic, tag, seq}: udp-recv counts lost, duplicate and reordered seqs, tap
 * counts frames that are not for DEV's MAC or carry another receiver's tag.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x53455153u /* "SEQS" */
#define DGRAM_LEN 64

struct dgram {
	uint32_t magic, tag;
	uint64_t seq;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "seqstream: failed to %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Sleep until start + n / rate seconds: pacing that does not drift. */
static void pace(uint64_t start, uint64_t n, uint64_t rate)
{
	uint64_t t = start + n * 1000000000ull / rate;
	struct timespec ts = { t / 1000000000ull, t % 1000000000ull };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
		;
}

static struct sockaddr_in addr_of(const char *ip, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };

	if (ip && inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		fprintf(stderr, "seqstream: bad IPv4 address '%s'\n", ip);
		exit(2);
	}
	return a;
}

static void set_rcvtimeo(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int udp_send(char **av)
{
	struct sockaddr_in dst = addr_of(av[0], av[1]);
	uint64_t count = strtoull(av[2], NULL, 0), rate = strtoull(av[3], NULL, 0), i, start;
	unsigned char buf[DGRAM_LEN] = { 0 };
	struct dgram d = { MAGIC, (uint32_t)atoi(av[4]), 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		die("create socket");
	start = now_ns();
	for (i = 0; (!count || i < count) && !stop; i++) {
		pace(start, i, rate);
		d.seq = i;
		memcpy(buf, &d, sizeof(d));
		/* A full qdisc or a missing neighbour entry is the sender's
		 * problem, not a loss on the path: retry until it is taken. */
		while (sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
				die("send");
			usleep(1000);
		}
	}
	printf("{\"sent\":%llu}\n", (unsigned long long)i);
	return 0;
}

#define MAX_SEQ (1u << 24)

static int udp_recv(char **av)
{
	struct sockaddr_in me = addr_of(NULL, av[0]);
	uint64_t got = 0, dup = 0, reorder = 0, bad = 0, last = 0, top = 0, idle_since = 0;
	uint32_t tag = atoi(av[1]);
	unsigned char *seen = calloc(MAX_SEQ, 1), buf[2048];
	int fd = socket(AF_INET, SOCK_DGRAM, 0), big = 4 << 20;
	bool any = false;

	if (fd < 0 || !seen)
		die("create socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)))
		die("bind");
	set_rcvtimeo(fd, 200);
	while (!stop) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct dgram d;

		if (n < 0) {
			/* 3 s of silence after traffic started: the sender is done. */
			if (any && now_ns() - idle_since > 3000000000ull)
				break;
			continue;
		}
		idle_since = now_ns();
		memcpy(&d, buf, sizeof(d));
		if (n < (ssize_t)sizeof(d) || d.magic != MAGIC || d.tag != tag || d.seq >= MAX_SEQ) {
			bad++;
			continue;
		}
		if (seen[d.seq]) {
			dup++;
			continue;
		}
		if (any && d.seq < last)
			reorder++;
		seen[d.seq] = 1;
		last = d.seq;
		top = d.seq + 1 > top ? d.seq + 1 : top;
		any = true;
		got++;
	}
	free(seen);
	close(fd);
	/* gaps: seqs below the highest one seen that never arrived. */
	printf("{\"received\":%llu,\"highest\":%llu,\"gaps\":%llu,\"duplicates\":%llu,\"reordered\":%llu,\"foreign\":%llu}\n",
	       (unsigned long long)got, (unsigned long long)top, (unsigned long long)(top - got),
	       (unsigned long long)dup, (unsigned long long)reorder, (unsigned long long)bad);
	return 0;
}

static unsigned char pattern(uint64_t off)
{
	return (unsigned char)(off % 251);
}

static int tcp_send(char **av)
{
	struct sockaddr_in dst = addr_of(av[0], av[1]);
	uint64_t total = strtoull(av[2], NULL, 0), rate = strtoull(av[3], NULL, 0), off = 0, start;
	unsigned char buf[1024];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		die("create socket");
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)))
		die("connect");
	start = now_ns();
	while ((!total || off < total) && !stop) {
		size_t n = total && total - off < sizeof(buf) ? total - off : sizeof(buf), i;
		ssize_t w;

		pace(start, off, rate);
		for (i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue; /* SIGTERM: the loop ends */
		if (w <= 0)
			die("write");
		off += w;
	}
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0) /* until the receiver closes */
		;
	printf("{\"sent\":%llu}\n", (unsigned long long)off);
	return 0;
}

static int tcp_recv(char **av)
{
	struct sockaddr_in me = addr_of(NULL, av[0]);
	uint64_t off = 0, corrupt = 0;
	unsigned char buf[4096];
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), fd;
	ssize_t n, i;

	if (lfd < 0)
		die("create socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&me, sizeof(me)) || listen(lfd, 1))
		die("listen");
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++)
			corrupt += buf[i] != pattern(off + i);
		off += n;
	}
	printf("{\"bytes\":%llu,\"corrupt\":%llu,\"eof\":%s}\n", (unsigned long long)off,
	       (unsigned long long)corrupt, n == 0 ? "true" : "false");
	close(fd);
	return 0;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
		      &mac[4], &mac[5]) == 6 ? 0 : -1;
}

/* Every frame DEV receives: is it for this VM? */
static int tap(char **av)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	uint64_t frames = 0, mine = 0, wrong_mac = 0, wrong_tag = 0;
	uint32_t tag = atoi(av[2]);
	unsigned char mac[6], buf[2048];
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));

	if (fd < 0)
		die("create packet socket");
	if (parse_mac(av[1], mac)) {
		fprintf(stderr, "seqstream: bad MAC '%s'\n", av[1]);
		return 2;
	}
	ll.sll_ifindex = if_nametoindex(av[0]);
	if (!ll.sll_ifindex || bind(fd, (struct sockaddr *)&ll, sizeof(ll)))
		die("bind packet socket");
	set_rcvtimeo(fd, 200);
	while (!stop) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		struct iphdr ip; /* copied: buf + 14 is not 4-byte aligned */
		struct dgram d;
		size_t l4;

		if (n < 14 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		frames++;
		if (!(buf[0] & 1) && memcmp(buf, mac, 6))
			wrong_mac++;
		if (n < 14 + 20 || buf[12] != 0x08 || buf[13] != 0)
			continue;
		memcpy(&ip, buf + 14, sizeof(ip));
		if (ip.protocol != IPPROTO_UDP)
			continue;
		l4 = 14 + ip.ihl * 4 + 8;
		if ((size_t)n < l4 + sizeof(d))
			continue;
		memcpy(&d, buf + l4, sizeof(d));
		if (d.magic != MAGIC)
			continue;
		if (d.tag == tag)
			mine++;
		else
			wrong_tag++;
	}
	printf("{\"frames\":%llu,\"mine\":%llu,\"wrong_mac\":%llu,\"wrong_tag\":%llu}\n",
	       (unsigned long long)frames, (unsigned long long)mine,
	       (unsigned long long)wrong_mac, (unsigned long long)wrong_tag);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int nargs;
		int (*run)(char **av);
	} modes[] = {
		{ "udp-send", 5, udp_send }, { "udp-recv", 2, udp_recv },
		{ "tcp-send", 4, tcp_send }, { "tcp-recv", 1, tcp_recv },
		{ "tap", 3, tap },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	size_t i;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; argc > 1 && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[1], modes[i].name) && argc - 2 == modes[i].nargs)
			return modes[i].run(argv + 2);
	fprintf(stderr, "usage: see the comment at the top of selftests/seqstream.c\n");
	return 2;
}
