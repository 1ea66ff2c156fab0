// SPDX-License-Identifier: GPL-2.0
#include "bench.h"
int bench_mig(const struct bench_opts *o) { (void)o; return 0; }
