/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The per-reactor channel the uring and aio engines share (file_common.h): request flow,
 * synchronous and inline operations, the once-per-iteration flush and deferred freeing. The
 * engines plug in only what talks to the kernel (struct vh_file_engine).
 *
 * Ordering: a request never overtakes one that waits for a slot (pending is a FIFO), and results
 * of synchronous operations are delivered at the next poll, never from submit(), so a consumer
 * sees the same completion contract whichever path ran its request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

#include "bdev/file_common.h"
#include "core/log.h"
#include "core/util.h"

#define FOP_BIT(k) (1u << (k))

uint64_t vh_file_inline_slow_ns = VH_FILE_INLINE_SLOW_NS;

static void ch_flush_deferred(struct vh_deferred *d);

void
vh_file_ch_init(struct vh_file_ch *ch, const struct vh_file_engine *eng, struct vh_file *f)
{
	ch->eng = eng;
	ch->f = f;
	ch->efd = -1;
	ch->in_poll = false;
	ch->dead = false;
	ch->inline_resume_ns = 0;
	ch->stall_window_ns = 0;
	ch->stalls = 0;
	ch->errors = (struct vh_log_burst){0};
	ch->flush.fn = ch_flush_deferred;
	vh_file_ioq_init(&ch->pending);
	vh_file_ioq_init(&ch->sync_done);
}

/* Free a destroyed channel once nothing on the stack or in the reactor refers to it. */
static bool
ch_reap_if_dead(struct vh_file_ch *ch)
{
	if (!ch->dead) {
		return false;
	}
	if (!ch->in_poll && !ch->flush.queued) {
		ch->eng->free(ch);
	}
	return true;
}

static void
ch_flush_deferred(struct vh_deferred *d)
{
	struct vh_file_ch *ch = VH_CONTAINER_OF(d, struct vh_file_ch, flush);

	if (ch_reap_if_dead(ch)) {
		return;
	}
	ch->eng->flush(ch);
}

static uint64_t
op_bytes(const struct vh_file_op *op)
{
	uint64_t n = 0;

	if (op->kind != VH_FOP_READV && op->kind != VH_FOP_WRITEV) {
		return 0;
	}
	for (int i = 0; i < op->iovcnt; i++) {
		n += op->iov[i].iov_len;
	}
	return n;
}

/*
 * Whether @op should be copied on the reactor now (memory-backed file, small, not suspended).
 * *bytes gets what it copies (op_bytes), for run_inline.
 */
static bool
want_inline(struct vh_file_ch *ch, const struct vh_file_op *op, uint64_t *bytes)
{
	if (!ch->f->inline_io || op->kind == VH_FOP_BLKDISCARD) {
		return false;
	}
	*bytes = op_bytes(op);
	if (*bytes > VH_FILE_INLINE_MAX_BYTES ||
	    (op->kind == VH_FOP_FALLOC && op->len > VH_FILE_INLINE_MAX_BYTES)) {
		return false;
	}
	if (ch->inline_resume_ns != 0) {
		if (vh_now_ns() < ch->inline_resume_ns) {
			return false;
		}
		ch->inline_resume_ns = 0;
		VH_LOG_RL(VH_LOG_NOTICE, ch->f->engine, "'%s': inline copies resumed", ch->f->name);
	}
	return true;
}

/* An inline operation took @dt ns, slow for its size: count it, suspend if they pile up. */
static void
note_stall(struct vh_file_ch *ch, uint64_t now, uint64_t dt)
{
	__atomic_fetch_add(&ch->f->inline_stalls, 1, __ATOMIC_RELAXED);
	if (now - ch->stall_window_ns > VH_FILE_INLINE_WINDOW_NS) {
		ch->stall_window_ns = now;
		ch->stalls = 0;
	}
	if (++ch->stalls < VH_FILE_INLINE_STALLS) {
		VH_LOG_RL(VH_LOG_DEBUG, ch->f->engine, "'%s': an inline copy took %" PRIu64 " us",
		          ch->f->name, dt / 1000);
		return;
	}
	/*
	 * The copies wait (reclaim, swap, a lock held by another process): do not stall every
	 * queue of this reactor on the next ones. The engine takes them for a while.
	 */
	ch->stalls = 0;
	ch->inline_resume_ns = now + VH_FILE_INLINE_SUSPEND_NS;
	__atomic_fetch_add(&ch->f->inline_suspends, 1, __ATOMIC_RELAXED);
	VH_LOG_RL(VH_LOG_WARN, ch->f->engine,
	          "'%s': %u inline copies stalled within %llu ms (the last took %" PRIu64
	          " us): using the %s engine for %llu ms",
	          ch->f->name, VH_FILE_INLINE_STALLS,
	          (unsigned long long)(VH_FILE_INLINE_WINDOW_NS / 1000000), dt / 1000,
	          ch->eng->name, (unsigned long long)(VH_FILE_INLINE_SUSPEND_NS / 1000000));
}

static long
run_inline(struct vh_file_ch *ch, const struct vh_file_op *op, uint64_t bytes)
{
	uint64_t t0 = vh_now_ns();
	long res = vh_file_sync_op(ch->f, op);
	uint64_t now = vh_now_ns();

	/* A zero threshold (tests) makes every copy slow, whatever its size. */
	if (now - t0 >= vh_file_inline_slow_ns + (vh_file_inline_slow_ns ? bytes : 0)) {
		note_stall(ch, now, now - t0);
	}
	return res;
}

/* Hand the next operation of @io on. False if there is no room (the caller queues it). */
static bool
try_issue(struct vh_file_ch *ch, struct vh_bdev_io *io)
{
	struct vh_file_op op;
	uint64_t bytes;

	vh_file_req_next(ch->f, io, &op);
	if (want_inline(ch, &op, &bytes)) {
		vh_file_ch_finish_sync(ch, io, (int)run_inline(ch, &op, bytes));
		return true;
	}
	if (!(ch->eng->async_kinds & FOP_BIT(op.kind))) {
		/* No asynchronous form (BLKDISCARD, NOP; fallocate on aio): run now. */
		vh_file_ch_finish_sync(ch, io, (int)vh_file_sync_op(ch->f, &op));
		return true;
	}
	return ch->eng->issue(ch, io, &op);
}

static void
issue(struct vh_file_ch *ch, struct vh_bdev_io *io)
{
	/* Behind queued requests, in order: nobody overtakes a request waiting for a slot. */
	if (!vh_file_ioq_empty(&ch->pending) || !try_issue(ch, io)) {
		vh_file_ioq_push(&ch->pending, io);
	}
	if (ch->eng->unsent(ch)) {
		vh_reactor_defer(&ch->flush);
	}
}

void
vh_file_ch_complete(struct vh_file_ch *ch, struct vh_bdev_io *io, long res)
{
	int status = 0;

	if (vh_file_req_update(ch->f, io, res, &status) == VH_FILE_REQ_DONE) {
		uint32_t suppressed;

		if (VH_UNLIKELY(status < 0) &&
		    vh_log_burst_allow(&ch->errors, vh_now_ns(), &suppressed)) {
			vh_file_log_error(ch->f, io, status, suppressed);
		}
		vh_bdev_io_done(io, status);
	} else {
		issue(ch, io);
	}
}

void
vh_file_ch_finish_sync(struct vh_file_ch *ch, struct vh_bdev_io *io, int status)
{
	io->status = status;
	vh_file_ioq_push(&ch->sync_done, io);
}

int
vh_file_ch_submit(void *arg, struct vh_bdev_io *io)
{
	struct vh_file_ch *ch = arg;
	int rc;

	rc = vh_file_req_init(ch->f, io);
	if (rc < 0) {
		return rc;
	}
	issue(ch, io);
	return 0;
}

int
vh_file_ch_poll(void *arg)
{
	struct vh_file_ch *ch = arg;
	struct vh_file_ioq sync;
	struct vh_bdev_io *io;
	int busy = VH_POLL_IDLE;

	ch->in_poll = true;
	if (ch->eng->reap(ch) > 0) {
		busy = VH_POLL_BUSY;
	}
	/* Synchronous results of the previous iteration; new ones wait for the next. */
	sync = ch->sync_done;
	if (sync.head == NULL) {
		sync.tail = &sync.head;
	}
	vh_file_ioq_init(&ch->sync_done);
	while (!ch->dead && (io = vh_file_ioq_pop(&sync)) != NULL) {
		vh_file_ch_complete(ch, io, io->status);
		busy = VH_POLL_BUSY;
	}
	while (!ch->dead && (io = vh_file_ioq_pop(&ch->pending)) != NULL) {
		if (!try_issue(ch, io)) {
			vh_file_ioq_unpop(&ch->pending, io);
			break;
		}
		busy = VH_POLL_BUSY;
	}
	if (!ch->dead && ch->eng->unsent(ch)) {
		vh_reactor_defer(&ch->flush);
	}
	ch->in_poll = false;
	ch_reap_if_dead(ch);
	return busy;
}

int
vh_file_ch_arm(void *arg)
{
	struct vh_file_ch *ch = arg;
	uint64_t v;

	/*
	 * Clear the eventfd first, then look: the kernel posts a completion, then signals, so one
	 * posted after the read signals again and the sleep cannot miss it.
	 */
	if (read(ch->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was signalled. */
	}
	if (ch->eng->ready(ch) || ch->eng->unsent(ch) || !vh_file_ioq_empty(&ch->sync_done)) {
		return 1;
	}
	/* Queued requests wait for a slot; a completion (which signals) frees one. */
	return !vh_file_ioq_empty(&ch->pending) && ch->eng->room(ch);
}

int
vh_file_ch_wake_fd(void *arg)
{
	struct vh_file_ch *ch = arg;

	return ch->efd;
}

void
vh_file_ch_destroy(void *arg)
{
	struct vh_file_ch *ch = arg;

	/* Consumers put their channel only after all their I/O completed (bdev.h). */
	ch->dead = true;
	ch_reap_if_dead(ch);
}
