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

#include "bdev/bdev_file.h"
#include "bdev/bdev_module.h"
#include "core/log.h"

/* Capabilities, cleared at run time when the kernel answers EOPNOTSUPP. */
#define VH_FILE_CAP_PUNCH      0x1u  /* fallocate(PUNCH_HOLE|KEEP_SIZE) */
#define VH_FILE_CAP_ZERO_RANGE 0x2u  /* fallocate(ZERO_RANGE|KEEP_SIZE) */
#define VH_FILE_CAP_NOHIDE     0x4u  /* block device: discard by fallocate(...|NO_HIDE_STALE) */
#define VH_FILE_CAP_DISCARD    0x8u  /* block device: BLKDISCARD */
#define VH_FILE_CAP_DSYNC      0x10u /* per-write RWF_DSYNC (else write, then fdatasync) */

/* Give up on a request that keeps getting -EAGAIN/-EINTR (a wedged device, not back-pressure). */
#define VH_FILE_MAX_RETRIES 100000u
/* Written-zeroes fallback: bytes per write. */
#define VH_FILE_ZERO_CHUNK (1u << 20)

struct vh_file {
	int fd;          /* I/O fd: O_DIRECT when direct */
	int fd_buffered; /* == fd when !direct; else a buffered open of the same file */
	bool is_blkdev;
	bool direct;
	bool write_cache;
	bool mem_backed;          /* tmpfs or ramfs: the file is the page cache, nothing below it */
	bool inline_allowed;      /* the inline_io option as asked (saved in the config) */
	bool inline_io;           /* copy synchronously on the reactor: mem_backed && allowed */
	uint32_t block_size;      /* the bdev's */
	uint32_t dev_block;       /* device logical block size (512 when unknown) */
	uint32_t mem_align;       /* O_DIRECT buffer alignment */
	uint32_t off_align;       /* O_DIRECT offset/length alignment */
	uint32_t caps;            /* VH_FILE_CAP_*; relaxed atomics */
	uint64_t size;            /* bytes, as last probed */
	uint64_t inline_stalls;   /* slow inline operations; relaxed atomics */
	uint64_t inline_suspends; /* times inline copies were suspended; relaxed atomics */
	uint64_t fixed_ios_closed; /* uring: fixed-buffer operations of channels gone; lock */
	const char *engine;        /* "uring" or "aio": log component and info */
	struct vh_bdev *bdev;      /* set when registered */
	char name[VH_NAME_MAX];
	char path[PATH_MAX];
	/* Durability (VH_BDEV_IO_F_FUA), relaxed atomics: see docs/bdev-file.md. */
	uint64_t fua_writes; /* durable WRITE/WRITE_ZEROES requests completed */
	uint64_t dsync_ops;  /* writes handed to the kernel with RWF_DSYNC */
	uint64_t fua_syncs;  /* fdatasync run to complete a durable request */
};

/*
 * Inline copies that stall (vh_file_ch): an operation is slow when it takes longer than
 * VH_FILE_INLINE_SLOW_NS plus 1 ns per byte (a 16 MiB request may take milliseconds). One slow
 * operation proves little, since the host may simply have preempted us; VH_FILE_INLINE_STALLS
 * of them within VH_FILE_INLINE_WINDOW_NS suspend inline copies on that channel for
 * VH_FILE_INLINE_SUSPEND_NS.
 */
#define VH_FILE_INLINE_SLOW_NS    (1000ull * 1000) /* 1 ms */
#define VH_FILE_INLINE_STALLS     4u
#define VH_FILE_INLINE_WINDOW_NS  (1000ull * 1000 * 1000) /* 1 s */
#define VH_FILE_INLINE_SUSPEND_NS (1000ull * 1000 * 1000) /* 1 s */
/*
 * Larger operations go to the engine even on tmpfs: their copy dwarfs the hand-off it saves,
 * and a guest sending 16 MiB requests must not keep its reactor (and every other queue on it)
 * copying for milliseconds at a time.
 */
#define VH_FILE_INLINE_MAX_BYTES (128u * 1024)
/* The slow threshold in use: VH_FILE_INLINE_SLOW_NS; tests set 0 (every copy is slow). */
extern uint64_t vh_file_inline_slow_ns;

/*
 * io_uring fixed buffers (uring.c): huge-page guest memory is cut in chunks of at most 1 GiB
 * (the kernel's limit per buffer), one slot each of a buffer table shared by every ring. Each
 * owner (front-end, bdev.h) may hold VH_URING_OWNER_SLOTS slots in VH_URING_OWNER_REGIONS
 * regions; the legacy owner NULL is bounded only by the table.
 */
#define VH_URING_CHUNK_SHIFT   30
#define VH_URING_SLOTS         1024
#define VH_URING_REGIONS       128
#define VH_URING_OWNER_SLOTS   256
#define VH_URING_OWNER_REGIONS 16
/* The chunk size in use: VH_URING_CHUNK_SHIFT; tests set less to span slots with little memory. */
extern unsigned vh_uring_chunk_shift;

/*
 * Open and probe @filename for bdev @name: stat, open read-write (O_DIRECT, or buffered with a
 * warning where refused), size, logical block size, write cache, discard support. @block_size 0
 * means automatic. On failure returns -errno and writes the reason (naming the path) into @err.
 */
int vh_file_open(struct vh_file *f, const char *name, const char *filename,
                 const struct vh_bdev_file_opts *o, const char *engine, char *err, size_t errlen);
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
                        const char *filename, const struct vh_bdev_file_opts *o, char *err,
                        size_t errlen);

/* Module callbacks shared by the engines (control thread). */
void vh_file_bdev_destruct(struct vh_bdev *b);
void vh_file_bdev_info_json(struct vh_bdev *b, json_t *driver_specific);
json_t *vh_file_bdev_config_json(struct vh_bdev *b);

/*
 * The aio engine registered under module name @module_name ("aio", or "uring" when
 * bdev_uring_create falls back). Same returns as vh_file_bdev_create(). Control thread.
 */
int vh_file_aio_create(const char *module_name, const char *name, const char *filename,
                       const struct vh_bdev_file_opts *o, char *err, size_t errlen);

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
	int fd;                  /* f->fd or f->fd_buffered */
	bool buffered;           /* fd is f->fd_buffered (fixed-file index 1) */
	const struct iovec *iov; /* READV/WRITEV; valid until the request completes */
	int iovcnt;
	uint64_t off;
	uint64_t len; /* FALLOC/BLKDISCARD */
	int mode;     /* FALLOC */
	bool dsync;   /* WRITEV: RWF_DSYNC (durable when it completes) */
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

/*
 * Log a request that failed with @status (-errno), naming the bdev and the request, after
 * @suppressed failures that were not logged (vh_log_burst_allow). Reactor.
 */
void vh_file_log_error(const struct vh_file *f, const struct vh_bdev_io *io, int status,
                       uint32_t suppressed);

/*
 * Run @op synchronously (BLKDISCARD, FALLOC, FSYNC, READV, WRITEV; a dsync WRITEV is pwritev2
 * with RWF_DSYNC, counted in f->dsync_ops). Returns like the kernel (-EOPNOTSUPP when it has no
 * pwritev2).
 */
long vh_file_sync_op(struct vh_file *f, const struct vh_file_op *op);

/* An engine handed a write with RWF_DSYNC to the kernel: count it. Any thread. */
static inline void
vh_file_count_dsync(struct vh_file *f)
{
	__atomic_fetch_add(&f->dsync_ops, 1, __ATOMIC_RELAXED);
}

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

/*
 * The channel both engines build on: one per (bdev, reactor). It owns the request flow that does
 * not depend on the kernel interface: the FIFO of requests waiting for a slot, the requests
 * finished synchronously (delivered at the next poll, never from submit), the once-per-iteration
 * flush, deferred freeing (a channel destroyed from a completion callback), and inline copies.
 *
 * Inline copies: on a memory-backed file (tmpfs, ramfs) a read or write is a memcpy to or from
 * the page cache that never waits for a device, exactly like the RAM bdev's. Handing it to the
 * kernel's worker threads instead (io_uring punts files without FMODE_NOWAIT, which tmpfs lacks)
 * costs a thread hand-off per request, and on a busy core the workers compete with the reactor.
 * So such operations run synchronously in submit(). When they start to stall (memory pressure,
 * swap: see VH_FILE_INLINE_STALLS) the engine takes them for a while, so one file cannot hold up
 * every queue of the reactor. Measured in docs/performance.md.
 */
struct vh_file_ch;

struct vh_file_engine {
	const char *name;
	/* Kinds (bit 1 << VH_FOP_*) the engine runs asynchronously; the rest run synchronously. */
	uint32_t async_kinds;
	/* Prepare @op for the kernel. False when there is no room now (the request waits). */
	bool (*issue)(struct vh_file_ch *ch, struct vh_bdev_io *io, const struct vh_file_op *op);
	/* Reap finished operations, feeding each to vh_file_ch_complete(). Returns how many. */
	int (*reap)(struct vh_file_ch *ch);
	/* Give prepared operations to the kernel (once per reactor iteration). */
	void (*flush)(struct vh_file_ch *ch);
	/* Prepared operations not yet given to the kernel. */
	bool (*unsent)(const struct vh_file_ch *ch);
	/* Completions ready to reap, as far as user space can tell (may say true spuriously). */
	bool (*ready)(const struct vh_file_ch *ch);
	/* Room for another operation. */
	bool (*room)(const struct vh_file_ch *ch);
	/* Release the engine's resources and the channel (its container). */
	void (*free)(struct vh_file_ch *ch);
};

struct vh_file_ch {
	const struct vh_file_engine *eng;
	struct vh_file *f;
	int efd;                      /* signalled by the kernel on completion: the wake fd */
	bool in_poll;                 /* poll() is running (callbacks may destroy us) */
	bool dead;                    /* destroyed while in_poll or with the flush queued */
	uint64_t inline_resume_ns;    /* inline copies suspended until then; 0 = not */
	uint64_t stall_window_ns;     /* start of the current window of slow operations */
	unsigned stalls;              /* slow operations in that window */
	struct vh_log_burst errors;   /* failed requests: logged once per burst */
	struct vh_file_ioq pending;   /* waiting for a slot, in arrival order */
	struct vh_file_ioq sync_done; /* finished synchronously; result in io->status */
	struct vh_deferred flush;     /* one eng->flush per iteration */
};

/* Initialise the base of a new channel (the engine then sets up its kernel side and efd). */
void vh_file_ch_init(struct vh_file_ch *ch, const struct vh_file_engine *eng, struct vh_file *f);
/* Feed the result of an engine operation for @io (from eng->reap). */
void vh_file_ch_complete(struct vh_file_ch *ch, struct vh_bdev_io *io, long res);
/* A request the engine finished by itself (e.g. refused by the kernel): delivered at next poll. */
void vh_file_ch_finish_sync(struct vh_file_ch *ch, struct vh_bdev_io *io, int status);

/* Module callbacks on a channel (arg is the struct vh_file_ch at the start of the engine's). */
int vh_file_ch_submit(void *arg, struct vh_bdev_io *io);
int vh_file_ch_poll(void *arg);
int vh_file_ch_arm(void *arg);
int vh_file_ch_wake_fd(void *arg);
void vh_file_ch_destroy(void *arg);

/* Whether the running kernel has io_uring disabled by sysctl (kernel.io_uring_disabled). */
bool vh_file_uring_disabled(void);

#endif
