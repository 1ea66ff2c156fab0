/* SPDX-License-Identifier: GPL-2.0 */
/* Extent mode of guest memory: a hugetlbfs file seen from inside the guest,
 * where a GPA is where a huge page really is, not a file offset. */
#ifndef CLAT_GPHYS_H
#define CLAT_GPHYS_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"

/* Called once by a program that runs inside the guest (clat-guest): from
 * then on gmem_open maps a file on hugetlbfs in extent mode, finding each
 * huge page's GPA through /proc/self/pagemap.  Never called by clat-load:
 * on the host, a RAM file on hugetlbfs is still GPA = file offset. */
void gmem_guest_view(bool on);
bool gmem_guest_view_on(void);
/* Switches a mapped gmem to extent mode: hp_gpa[i] is the GPA of file bytes
 * [i * hpage, (i + 1) * hpage).  Refuses misaligned or duplicate GPAs.
 * Used by gmem_open and by tests with synthetic addresses. */
int gmem_ext_set(struct gmem *g, const uint64_t *hp_gpa, uint64_t n, uint64_t hpage);
/* Reads the GPA of every huge page of g's mapping from /proc/self/pagemap
 * and calls gmem_ext_set; message printed on failure. */
int gmem_ext_scan(struct gmem *g, const char *path, uint64_t hpage);
/* The GPA of file offset off (< map_len): off itself in file mode. */
uint64_t gmem_gpa_of(const struct gmem *g, uint64_t off);
void *gmem_ext_ptr(const struct gmem *g, uint64_t gpa, uint64_t len);
void gmem_ext_free(struct gmem *g);

#endif
