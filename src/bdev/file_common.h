/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to src/bdev: what the uring and aio back-ends share. Opening and probing a file or
 * block device, the per-request state machine (short I/O, fallbacks, retries, errors) and the
 * bdev glue (registration, info/config JSON, rescan).
 *
 * Rules:
 * - vh_file_open/close/register/rescan and the JSON helpers run on the control thread.
 * - vh_file_req_* and vh_file_sync_op run on the reactor that owns the request's channel. They
 *   keep all per-request state in io->module_ctx: nothing is allocated per I/O.
 * - struct vh_file is shared by every channel of a bdev. Only `caps` changes after creation
 *   (reactors clear bits with relaxed atomics when the kernel refuses an operation; a stale read
 *   only costs one more refused attempt).
 */
#ifndef VH_BDEV_FILE_COMMON_H
#define VH_BDEV_FILE_COMMON_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <jansson.h>

#include "bdev/bdev_module.h"

/* Capabilities, cleared at run time when the kernel answers EOPNOTSUPP. */
#define VH_FILE_CAP_PUNCH      0x1u /* fallocate(PUNCH_HOLE|KEEP_SIZE) */
#define VH_FILE_CAP_ZERO_RANGE 0x2u /* fallocate(ZERO_RANGE|KEEP_SIZE) */
#define VH_FILE_CAP_NOHIDE     0x4u /* block device: discard by fallocate(...|NO_HIDE_STALE) */
#define VH_FILE_CAP_DISCARD    0x8u /* block device: BLKDISCARD */

/* Give up on a request that keeps getting -EAGAIN/-EINTR (a wedged device, not back-pressure). */
#define VH_FILE_MAX_RETRIES 100000u
/* Written-zeroes fallback: bytes per write. */
#define VH_FILE_ZERO_CHUNK (1u << 20)

struct vh_file {
	int fd;                 /* I/O fd: O_DIRECT when direct */
	int fd_buffered;        /* == fd when !direct; else a buffered open of the same file */
	bool is_blkdev;
	bool direct;
	bool write_cache;
	uint32_t block_size;    /* the bdev's */
	uint32_t dev_block;     /* device logical block size (512 when unknown) */
	uint32_t mem_align;     /* O_DIRECT buffer alignment */
	uint32_t off_align;     /* O_DIRECT offset/length alignment */
	uint32_t caps;          /* VH_FILE_CAP_*; relaxed atomics */
	uint64_t size;          /* bytes, as last probed */
	const char *engine;     /* "uring" or "aio": log component and info */
	struct vh_bdev *bdev;   /* set when registered */
	char name[VH_NAME_MAX];
	char path[PATH_MAX];
};

/*
 * Open and probe @filename for bdev @name: stat, open read-write (O_DIRECT, or buffered with a
 * warning where refused), size, logical block size, write cache, discard support. @block_size 0
 * means automatic. On failure returns -errno and writes the reason (naming the path) into @err.
 */
int vh_file_open(struct vh_file *f, const char *name, const char *filename, uint32_t block_size,
		 const char *engine, char *err, size_t errlen);
/* Close what vh_file_open opened. */
void vh_file_close(struct vh_file *f);

/* Size in bytes of an open file or block device. 0 or -errno. Any thread. */
int vh_file_get_size(int fd, bool is_blkdev, uint64_t *size);

/*
 * Create and register a file bdev of module @m (ops of one engine, under that module's name):
 * checks the name, opens and probes the file (vh_file_open), registers. On failure returns
 * -errno with the reason in @err. Control thread.
 */
int vh_file_bdev_create(const struct vh_bdev_module *m, const char *engine, const char *name,
			const char *filename, uint32_t block_size, char *err, size_t errlen);

/* Module callbacks shared by the engines (control thread). */
void vh_file_bdev_destruct(struct vh_bdev *b);
void vh_file_bdev_info_json(struct vh_bdev *b, json_t *driver_specific);
json_t *vh_file_bdev_config_json(struct vh_bdev *b);

/*
 * The aio engine registered under module name @module_name ("aio", or "uring" when
 * bdev_uring_create falls back). Same returns as vh_file_bdev_create(). Control thread.
 */
int vh_file_aio_create(const char *module_name, const char *name, const char *filename,
		       uint32_t block_size, char *err, size_t errlen);

/* What an engine must issue next for a request. */
enum vh_file_op_kind {
	VH_FOP_READV = 0,
	VH_FOP_WRITEV,
	VH_FOP_FSYNC,      /* fdatasync */
	VH_FOP_FALLOC,     /* fallocate(mode, off, len) */
	VH_FOP_BLKDISCARD, /* ioctl(BLKDISCARD): synchronous only */
	VH_FOP_NOP,        /* nothing to do: feed result 0 */
};

struct vh_file_op {
	enum vh_file_op_kind kind;
	int fd;                    /* f->fd or f->fd_buffered */
	bool buffered;             /* fd is f->fd_buffered (fixed-file index 1) */
	const struct iovec *iov;   /* READV/WRITEV; valid until the request completes */
	int iovcnt;
	uint64_t off;
	uint64_t len;              /* FALLOC/BLKDISCARD */
	int mode;                  /* FALLOC */
};

enum {
	VH_FILE_REQ_NEXT = 0, /* issue vh_file_req_next() again */
	VH_FILE_REQ_DONE = 1, /* finished: complete with *status */
};

/* Start a request: check it and reset its state. 0, or -errno to return from submit(). */
int vh_file_req_init(struct vh_file *f, struct vh_bdev_io *io);
/* The next operation for @io. */
void vh_file_req_next(struct vh_file *f, struct vh_bdev_io *io, struct vh_file_op *op);
/*
 * Feed the result of the last operation (>= 0 bytes or -errno, as from a CQE or io_event).
 * Returns VH_FILE_REQ_DONE with *status (0 or -errno; errors are logged, rate limited) or
 * VH_FILE_REQ_NEXT when another operation must be issued (short I/O remainder, a retry after
 * -EAGAIN, a fallback after EOPNOTSUPP or after O_DIRECT refused the buffers).
 */
int vh_file_req_update(struct vh_file *f, struct vh_bdev_io *io, long res, int *status);

/* Run @op synchronously (BLKDISCARD, FALLOC, FSYNC, READV, WRITEV). Returns like the kernel. */
long vh_file_sync_op(const struct vh_file *f, const struct vh_file_op *op);

/* A singly linked FIFO of requests through io->next (pending and finished lists). */
struct vh_file_ioq {
	struct vh_bdev_io *head;
	struct vh_bdev_io **tail;
};

static inline void
vh_file_ioq_init(struct vh_file_ioq *q)
{
	q->head = NULL;
	q->tail = &q->head;
}

static inline void
vh_file_ioq_push(struct vh_file_ioq *q, struct vh_bdev_io *io)
{
	io->next = NULL;
	*q->tail = io;
	q->tail = &io->next;
}

static inline struct vh_bdev_io *
vh_file_ioq_pop(struct vh_file_ioq *q)
{
	struct vh_bdev_io *io = q->head;

	if (io != NULL) {
		q->head = io->next;
		if (q->head == NULL) {
			q->tail = &q->head;
		}
	}
	return io;
}

/* Put @io back at the head (it could not be issued after all). */
static inline void
vh_file_ioq_unpop(struct vh_file_ioq *q, struct vh_bdev_io *io)
{
	io->next = q->head;
	q->head = io;
	if (io->next == NULL) {
		q->tail = &io->next;
	}
}

static inline bool
vh_file_ioq_empty(const struct vh_file_ioq *q)
{
	return q->head == NULL;
}

/* Whether the running kernel has io_uring disabled by sysctl (kernel.io_uring_disabled). */
bool vh_file_uring_disabled(void);

#endif
