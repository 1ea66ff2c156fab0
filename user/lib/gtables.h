/* SPDX-License-Identifier: GPL-2.0 */
/* Guest memory and guest tables (BAT/CLAT/blocks), shared by clat-load and
 * clat-guest.  The guest memory file is a raw sparse file where file
 * offset = GPA, like QEMU's memory-backend-file.
 *
 * Everything read from the file is untrusted: gtables_load() validates the
 * tables the way an IOMMU would before anything else looks at them. */
#ifndef CLAT_GTABLES_H
#define CLAT_GTABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

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

/* ---- Extent mode (gphys.c) ---- */
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

/* An empty entry of the flattened tiers.  Userspace only since map layout
 * 4: the device no longer walks tiers, but the host still flattens the
 * guest's CLAT to check it and to find blocks. */
#define CLAT_TIER_NONE 0xffffffffU

/* One validated service type, with its CLAT flattened:
 * page 0 is the level-1 page; tiers[p * C + o] is the next page index (or at
 * the last level the block index), CLAT_TIER_NONE when the entry is empty. */
struct gtype {
	uint32_t index;
	struct clat_bat_entry e;   /* copy of the BAT entry */
	uint64_t entry_gpa;        /* where that BAT entry lives */
	uint32_t per_block;        /* P = B / A */
	uint32_t npages;
	uint64_t *page_gpa;        /* [npages] */
	uint32_t *tiers;           /* [npages * C] */
	uint32_t nblocks;
	uint64_t *block_gpa;       /* [nblocks]; block b holds services b*P+1 .. b*P+P */
};

struct gtables {
	uint64_t bat_gpa;
	struct clat_bat_hdr hdr;
	uint32_t ntypes;
	struct gtype types[CLAT_MAX_TYPES];
};

/* Validates and flattens the tables at bat_gpa.  On failure returns -EINVAL
 * (or -errno) and writes one message naming the bad entry and its GPA into
 * err, e.g. "type 0 (conn): level 2 page at GPA 0x5000 entry 3 -> 0x9000000:
 * outside guest memory (size 0x100000)".  Nothing is allocated on failure. */
int gtables_load(const struct gmem *g, uint64_t bat_gpa, struct gtables *t, char *err,
		 size_t errlen);
void gtables_free(struct gtables *t);

/* GPA of the context of service svc (walks the flattened tiers); 0 if svc is
 * out of range. */
uint64_t gtype_ctx_gpa(const struct gtype *t, uint32_t svc);
/* Block index and element of svc through the flattened tiers; -1 if absent. */
int gtype_walk(const struct gtype *t, uint32_t svc, uint32_t *block, uint32_t *element);

/* Every GPA the walk of svc visits, for `clat-guest locate`: at level x
 * (0-based) the page, the entry offset, the entry's own GPA and its value
 * (the next page, or at the last level the block).  0 or -1 if absent. */
struct gtype_path {
	uint64_t page_gpa[CLAT_MAX_LEVELS];
	uint32_t offset[CLAT_MAX_LEVELS];
	uint64_t entry_gpa[CLAT_MAX_LEVELS];
	uint64_t value[CLAT_MAX_LEVELS];
	uint32_t block;
	uint64_t block_gpa;
	uint32_t element;          /* 0-based; the patent's m is element + 1 */
	uint64_t ctx_gpa;
};
int gtype_path(const struct gtype *t, uint32_t svc, struct gtype_path *path);

/* The checks gtables_load makes of one BAT entry (gt->e and gt->index set),
 * before any walk: fields, segments, and a capacity that fits guest memory.
 * Sets gt->per_block. */
int gtype_check_entry(const struct gmem *g, struct gtype *gt, char *err, size_t errlen);

/* Checks the entry's capacity segments; one message into err. */
int gtype_check_segments(const struct gtype *t, char *err, size_t errlen);

/* Blocks [*first, *end) that hold segment sg's services. */
static inline void gseg_blocks(uint32_t per_block, const struct clat_seg *sg, uint32_t *first,
			       uint32_t *end)
{
	*first = sg->base / per_block;
	*end = (uint32_t)(((uint64_t)sg->base + sg->size + per_block - 1) / per_block);
}

#endif
