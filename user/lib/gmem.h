/* SPDX-License-Identifier: GPL-2.0 */
/* Guest memory, shared by clat-load and clat-guest.  The guest memory file
 * is a raw sparse file where file offset = GPA, like QEMU's
 * memory-backend-file (inside a guest, extent mode: gphys.h).
 *
 * Everything read from the file is untrusted: gtables_load() (gtables.h)
 * validates the tables the way an IOMMU would before anything else looks
 * at them. */
#ifndef CLAT_GMEM_H
#define CLAT_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clat_abi.h"

/* One run of guest-physical memory that is mapped contiguously. */
struct gmem_ext {
	uint64_t gpa, len;
	uint8_t *ptr;
};

struct gmem {
	int fd;
	uint64_t size;    /* every GPA is below it: the file's size, or in extent mode
			   * the end of the highest extent */
	uint8_t *base;    /* MAP_SHARED mapping of the whole file */
	bool writable;
	uint64_t dev, ino; /* st_dev and st_ino of the mapped file */
	uint64_t map_len; /* bytes mapped at base: the file's size */
	/* Extent mode (gphys.c): a hugetlbfs file seen from inside the guest,
	 * where a GPA is where a huge page really is, not a file offset.
	 * next == 0 in file mode. */
	uint32_t next;
	struct gmem_ext *ext;  /* [next] sorted by gpa, disjoint */
	uint64_t hpage;        /* huge page size */
	uint64_t *hp_gpa;      /* [map_len / hpage] GPA of each huge page, in file order */
};

/* Which file a guest memory is: recorded at attach, checked at every reopen. */
struct gmem_id {
	uint64_t dev, ino;
};

/* Opens a regular file without following a symlink in its last component
 * and without ever blocking (a FIFO, socket or device is refused before it
 * is opened), and maps it; -errno on failure (message printed). */
int gmem_open(const char *path, bool writable, struct gmem *g);
/* The one intake of a guest memory path given by a user or a domain: the
 * rules of gmem_open, then the absolute path of the file that was opened
 * (directory symlinks resolved, the last component never) into path, and
 * its identity into id.  Nothing stays open. */
int gmem_intake(const char *mem, char *path, size_t len, struct gmem_id *id);
/* gmem_open of path, refused ("... was replaced since attach") unless it is
 * still the file id names. */
int gmem_open_id(const char *path, bool writable, const struct gmem_id *id, struct gmem *g);
/* Reopens the guest memory of an attached fn by its recorded path and identity. */
int gmem_reopen(const struct clat_guest_info *gi, bool writable, struct gmem *g);
void gmem_close(struct gmem *g);
/* Bounds-checked pointer to [gpa, gpa+len) or NULL.  In extent mode the
 * range must lie inside one extent. */
void *gmem_ptr(const struct gmem *g, uint64_t gpa, uint64_t len);

/* The file shrank while mapped (a page read as zeroes instead of SIGBUS);
 * gmem_ptr() then refuses everything and callers must fail. */
bool gmem_shrunk(const struct gmem *g);

/* Where the file holds data, from SEEK_DATA/SEEK_HOLE.  Holes read as
 * zeroes, so a block inside a hole holds only EMPTY contexts and need not be
 * read (reading it would make the kernel allocate and zero page cache).
 * all_data when the file system cannot tell or the file is too fragmented
 * to be worth it. */
struct gmem_data {
	uint64_t n;
	uint64_t (*ext)[2];        /* [start, end) sorted, disjoint */
	bool all_data;
};

int gmem_data_scan(const struct gmem *g, struct gmem_data *d);
bool gmem_data_hole(const struct gmem_data *d, uint64_t gpa, uint64_t len);
void gmem_data_free(struct gmem_data *d);

#endif
