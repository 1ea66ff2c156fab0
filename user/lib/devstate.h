/* SPDX-License-Identifier: GPL-2.0 */
/* The device-state channel of a live migration: a framed stream from the
 * source host's clat-load to the destination's, in the spirit of VFIO
 * migration v2 device state.  It carries the context blocks each
 * write-back round wrote, so that nothing depends on host writes to guest
 * RAM reaching the destination through the VMM (QEMU's dirty log does not
 * see them).
 *
 * Wire format: every frame is a 16-byte little-endian header, then len
 * bytes of payload.  The destination listens, the source connects:
 *
 *   source -> destination: HELLO, BLOCKS*, STOPPED, BLOCKS*?, COMMIT | ABORT
 *   destination -> source: DONE (after COMMIT, or at once on a refusal)
 *
 * Everything received is untrusted: sizes are checked against the limits
 * below before any allocation, and a frame must be read whole within
 * DS_FRAME_MS once its header has arrived. */
#ifndef CLAT_DEVSTATE_H
#define CLAT_DEVSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_MAGIC 0x5344434cU      /* "LCDS" little-endian on the wire */
#define DS_VERSION 1
#define DS_BLOCK_MAX (2U << 20)   /* largest context block a guest may have */
#define DS_FRAME_MAX (DS_BLOCK_MAX + 4096) /* one payload; a BLOCKS frame may hold several blocks */
#define DS_MSG_MAX 200            /* text in DONE/ABORT */
#define DS_MAX_ROUNDS 255         /* BLOCKS round numbers 0 .. DS_MAX_ROUNDS */
#define DS_FRAME_MS 10000         /* a started frame must arrive whole within this */
#define DS_DEFAULT_WAIT_MS 60000  /* silence between frames (and the accept) before giving up */

enum ds_type {
	DS_HELLO = 1,
	DS_BLOCKS = 2,
	DS_STOPPED = 3,
	DS_COMMIT = 4,
	DS_DONE = 5,
	DS_ABORT = 6,
};

/* All multi-byte fields are little-endian. */
struct ds_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len;       /* payload bytes after this header, <= DS_FRAME_MAX */
	uint32_t reserved;  /* 0 */
};
_Static_assert(sizeof(struct ds_hdr) == 16, "ds_hdr is 16 bytes on the wire");

struct ds_hello {
	uint32_t fn;          /* the source's fn (informational) */
	uint32_t generation;  /* of the guest tables the source serves */
	uint64_t bat_gpa;
	uint64_t mem_size;    /* the source's guest RAM; the destination's must match */
	uint8_t mac[6];       /* the VM's MAC on the source; all zero if none */
	uint8_t pad[2];
	uint32_t block_max;   /* largest block the source will send, <= DS_BLOCK_MAX */
	uint32_t reserved;
};
_Static_assert(sizeof(struct ds_hello) == 40, "ds_hello is 40 bytes on the wire");

/* BLOCKS payload: this, then count times {ds_block, len bytes}. */
struct ds_blocks {
	uint32_t round;       /* 0 = the first full write-back; nondecreasing */
	uint32_t count;
};
_Static_assert(sizeof(struct ds_blocks) == 8, "ds_blocks is 8 bytes on the wire");

struct ds_block {
	uint64_t gpa;         /* page aligned, gpa + len inside guest RAM */
	uint32_t len;         /* a multiple of 4 KiB, <= hello.block_max */
	uint32_t reserved;
};
_Static_assert(sizeof(struct ds_block) == 16, "ds_block is 16 bytes on the wire");

struct ds_stopped {
	uint32_t rounds;      /* rounds sent, the stop-copy's included */
	uint32_t reserved;
	uint64_t blocks;      /* blocks sent in all BLOCKS frames: the destination checks */
};
_Static_assert(sizeof(struct ds_stopped) == 16, "ds_stopped is 16 bytes on the wire");

/* COMMIT has no payload.  ABORT's payload is 0..DS_MSG_MAX bytes of text. */

struct ds_done {
	int32_t status;       /* 0, or a positive errno: nothing was made visible */
	uint32_t reserved;
	uint64_t live_contexts;
	uint64_t blocks;      /* distinct blocks written into guest RAM */
	uint64_t bytes;
	uint64_t write_ns;    /* blocks into guest RAM */
	uint64_t load_ns;     /* guest tables validated */
	uint64_t build_ns;    /* shadow staged into pool extents */
	uint64_t switch_ns;   /* commit: tables live, VCT ACTIVE, MAC last */
	char msg[DS_MSG_MAX]; /* NUL-terminated; why, when status != 0 */
};
_Static_assert(sizeof(struct ds_done) == 264, "ds_done is 264 bytes on the wire");

/* An open channel.  Received frames land in buf (grown up to DS_FRAME_MAX
 * only after the header's len was checked). */
struct devstate {
	int fd;
	int wait_ms;         /* idle timeout between frames */
	uint8_t *buf;
	size_t cap;
	uint64_t sent_bytes, recv_bytes;
};

/* "unix:PATH" or "tcp:HOST:PORT" (numeric or resolvable host; [v6]:port). */
int devstate_connect(struct devstate *ch, const char *chan, int wait_ms);
/* Binds and listens (a unix path is created fresh and removed by
 * devstate_unlisten); *lfd receives the listening socket. */
int devstate_listen(const char *chan, int *lfd);
/* Accepts one peer within wait_ms, then closes lfd and removes a unix path. */
int devstate_accept(struct devstate *ch, int lfd, const char *chan, int wait_ms);
void devstate_unlisten(int lfd, const char *chan);
void devstate_close(struct devstate *ch);

/* Sends one frame: header + payload (payload may be NULL when len is 0). */
int devstate_send(struct devstate *ch, uint16_t type, const void *payload, uint32_t len);
/* Receives one frame: checks magic, version, reserved, len; *type and
 * *len, payload in ch->buf.  -ETIMEDOUT, -EPIPE at a clean EOF between
 * frames, -EPROTO (message in err) for anything malformed. */
int devstate_recv(struct devstate *ch, uint16_t *type, uint32_t *len, char *err, size_t errlen);
/* A frame (or EOF) is waiting: poll with no wait. */
bool devstate_pending(const struct devstate *ch);

const char *devstate_type_name(uint16_t type);

/* Host <-> little-endian for the wire structs. */
void ds_hello_le(struct ds_hello *h);
void ds_done_le(struct ds_done *d);

#endif
