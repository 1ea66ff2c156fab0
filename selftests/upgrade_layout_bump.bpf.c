// SPDX-License-Identifier: GPL-2.0
/* TEST ONLY: the real dispatcher declaring a map layout it does not have,
 * so `clat-load upgrade --obj` must refuse it.  The product sets its config
 * through const volatile globals, never through -D. */
#include "vmlinux.h"
#include "clat_abi.h"
#undef CLAT_MAP_LAYOUT_VERSION
#define CLAT_MAP_LAYOUT_VERSION 999
#include "../bpf/clat.bpf.c"
