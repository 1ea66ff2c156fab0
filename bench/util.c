// SPDX-License-Identifier: GPL-2.0
/* What the benchmark's parts share (see util.h). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "util.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double median(double *v, int n, double *lo, double *hi)
{
	qsort(v, n, sizeof(*v), cmp_double);
	*lo = v[0];
	*hi = v[n - 1];
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void json_stat(FILE *out, const char *key, double *v, int n)
{
	double lo, hi, m = median(v, n, &lo, &hi);

	fprintf(out, "\"%s\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f, \"runs\": %d}", key, m,
		lo, hi, n);
}

uint64_t map_memlock(int fd)
{
	char path[64], line[256];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Files to remove on any exit: guest memory files can be hundreds of MB. */
static char *cleanup[16];

static void cleanup_all(void)
{
	for (size_t i = 0; i < sizeof(cleanup) / sizeof(cleanup[0]); i++)
		if (cleanup[i])
			unlink(cleanup[i]);
}

static void on_signal(int sig)
{
	cleanup_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

void cleanup_file(const char *path)
{
	static bool armed;

	if (!armed) {
		atexit(cleanup_all);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
		armed = true;
	}
	for (size_t i = 0; i < sizeof(cleanup) / sizeof(cleanup[0]); i++)
		if (cleanup[i] && !strcmp(cleanup[i], path))
			return;
	for (size_t i = 0; i < sizeof(cleanup) / sizeof(cleanup[0]); i++)
		if (!cleanup[i]) {
			cleanup[i] = strdup(path);
			return;
		}
}

/* Connection i: remote 11.x.y.z:(1024 + i % 16384) -> VM 198.18.0.10:4789,
 * then a Fisher-Yates shuffle so consecutive frames hit unrelated slots. */
void gen_keys(struct bench_key *k, uint32_t n)
{
	uint64_t s = 0x2545f4914f6cdd1dULL;
	uint32_t i, j;

	for (i = 0; i < n; i++) {
		k[i].vm4 = htonl(0xc612000a);
		k[i].remote4 = htonl(0x0b000000 | (i >> 14));
		k[i].vm_port = htons(4789);
		k[i].remote_port = htons(1024 + (i & 16383));
	}
	for (i = n - 1; i > 0; i--) {
		struct bench_key t;

		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		j = s % (i + 1);
		t = k[i];
		k[i] = k[j];
		k[j] = t;
	}
}
