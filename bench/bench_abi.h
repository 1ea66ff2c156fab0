/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by bench.bpf.c and the benchmark driver. */
#ifndef CLAT_BENCH_ABI_H
#define CLAT_BENCH_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* One connection of the working set, as it appears on the wire (IN). */
struct bench_key {
	__be32 vm4;
	__be32 remote4;
	__be16 vm_port;
	__be16 remote_port;
};

/* Counters of the peers: hits, inserts, failures (table full). */
enum { CNT_HIT, CNT_INSERT, CNT_FAIL, CNT__MAX };

/* Tail-call slots of the driver: the case under test. */
enum { T_EMPTY, T_CLAT_RX, T_LRU, T_LITERAL, T__MAX };

_Static_assert(sizeof(struct bench_key) == 12, "bench_key layout");

#endif
