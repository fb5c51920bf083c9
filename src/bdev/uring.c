/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io_uring back-end for files and block devices ("uring", SPDK's name). See docs/bdev-file.md.
 *
 * One ring per channel, that is per (bdev, reactor): rings are never shared between threads, so
 * no locking. The data path:
 * - submit() prepares an SQE (or queues the request when the SQ or our in-flight budget is full)
 *   and schedules one io_uring_submit() for the end of the reactor iteration (vh_reactor_defer):
 *   every request of a poll goes to the kernel in one system call.
 * - poll() reaps the CQ in user space (no system call when it is empty), feeds each result to
 *   the shared state machine (short I/O, retries, fallbacks), then moves queued requests into
 *   the freed slots.
 * - An eventfd registered with the ring wakes the reactor from its sleep; arm() clears it and
 *   then reports pending CQEs, so a completion racing with the sleep re-signals it.
 * The in-flight budget is the CQ size, so the CQ never overflows.
 *
 * Discards on block devices that the kernel cannot take through fallocate fall back to the
 * BLKDISCARD ioctl, which is synchronous: it runs in submit() and its result is delivered at the
 * next poll (the completion contract holds).
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bdev/bdev_file.h"
#include "bdev/file_common.h"
#include "core/log.h"

#define URING_ENTRIES 256 /* SQ size; the CQ is twice that */
#define URING_REAP_BATCH 64

struct uring_ch {
	struct io_uring ring;
	struct vh_file *f;
	int efd;
	bool fixed;                   /* fds registered: 0 = f->fd, 1 = f->fd_buffered */
	bool in_poll;                 /* poll() is running (callbacks may destroy us) */
	bool dead;                    /* destroyed while in_poll or with flush queued */
	unsigned inflight;            /* SQEs prepared and not reaped */
	unsigned max_inflight;        /* CQ entries */
	struct vh_file_ioq pending;   /* waiting for a slot, in arrival order */
	struct vh_file_ioq sync_done; /* finished synchronously; result in io->status */
	struct vh_deferred flush;     /* one io_uring_submit per iteration */
};

static void uring_flush(struct vh_deferred *d);

static void
ch_free(struct uring_ch *ch)
{
	io_uring_queue_exit(&ch->ring);
	close(ch->efd);
	free(ch);
}

/* Free a destroyed channel once nothing on the stack or in the reactor refers to it. */
static bool
ch_reap_if_dead(struct uring_ch *ch)
{
	if (!ch->dead) {
		return false;
	}
	if (!ch->in_poll && !ch->flush.queued) {
		ch_free(ch);
	}
	return true;
}

static void
prep_sqe(struct uring_ch *ch, struct io_uring_sqe *sqe, const struct vh_file_op *op)
{
	int fd = ch->fixed ? (op->buffered ? 1 : 0) : op->fd;

	switch (op->kind) {
	case VH_FOP_READV:
		io_uring_prep_readv(sqe, fd, op->iov, (unsigned)op->iovcnt, op->off);
		break;
	case VH_FOP_WRITEV:
		io_uring_prep_writev(sqe, fd, op->iov, (unsigned)op->iovcnt, op->off);
		break;
	case VH_FOP_FSYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case VH_FOP_FALLOC:
		io_uring_prep_fallocate(sqe, fd, op->mode, (off_t)op->off, (off_t)op->len);
		break;
	default:
		io_uring_prep_nop(sqe);
		return;
	}
	if (ch->fixed) {
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

/* Hand the next operation of @io to the ring. False if there is no room (queue it). */
static bool
try_issue(struct uring_ch *ch, struct vh_bdev_io *io)
{
	struct io_uring_sqe *sqe;
	struct vh_file_op op;

	vh_file_req_next(ch->f, io, &op);
	if (op.kind == VH_FOP_BLKDISCARD || op.kind == VH_FOP_NOP) {
		io->status = (int)vh_file_sync_op(ch->f, &op);
		vh_file_ioq_push(&ch->sync_done, io);
		return true;
	}
	if (ch->inflight >= ch->max_inflight) {
		return false;
	}
	sqe = io_uring_get_sqe(&ch->ring);
	if (sqe == NULL) {
		return false;
	}
	prep_sqe(ch, sqe, &op);
	io_uring_sqe_set_data(sqe, io);
	ch->inflight++;
	return true;
}

static void
issue(struct uring_ch *ch, struct vh_bdev_io *io)
{
	/* Behind queued requests, in order: nobody overtakes a request waiting for a slot. */
	if (!vh_file_ioq_empty(&ch->pending) || !try_issue(ch, io)) {
		vh_file_ioq_push(&ch->pending, io);
	}
	vh_reactor_defer(&ch->flush);
}

static void
uring_flush(struct vh_deferred *d)
{
	struct uring_ch *ch = VH_CONTAINER_OF(d, struct uring_ch, flush);
	int rc;

	if (ch_reap_if_dead(ch)) {
		return;
	}
	if (io_uring_sq_ready(&ch->ring) == 0) {
		return;
	}
	rc = io_uring_submit(&ch->ring);
	/*
	 * On failure the SQEs stay in the ring and poll() schedules another attempt: -EAGAIN and
	 * -EBUSY are kernel back-pressure that the next reaping relieves.
	 */
	if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) {
		VH_LOG_RL(VH_LOG_ERROR, "uring", "'%s': io_uring_submit: %s", ch->f->name,
			  strerror(-rc));
	}
}

static void
complete_one(struct uring_ch *ch, struct vh_bdev_io *io, long res)
{
	int status = 0;

	if (vh_file_req_update(ch->f, io, res, &status) == VH_FILE_REQ_DONE) {
		vh_bdev_io_done(io, status);
	} else {
		issue(ch, io);
	}
}

static int
reap(struct uring_ch *ch)
{
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	struct {
		struct vh_bdev_io *io;
		int res;
	} done[URING_REAP_BATCH];
	unsigned n, total = 0;

	do {
		n = io_uring_peek_batch_cqe(&ch->ring, cqes, URING_REAP_BATCH);
		/* Copy out and release the CQ slots before callbacks submit more work. */
		for (unsigned i = 0; i < n; i++) {
			done[i].io = io_uring_cqe_get_data(cqes[i]);
			done[i].res = cqes[i]->res;
		}
		io_uring_cq_advance(&ch->ring, n);
		ch->inflight -= n;
		for (unsigned i = 0; i < n && !ch->dead; i++) {
			complete_one(ch, done[i].io, done[i].res);
		}
		total += n;
	} while (n == URING_REAP_BATCH && !ch->dead);
	return (int)total;
}

static int
uring_poll(void *arg)
{
	struct uring_ch *ch = arg;
	struct vh_file_ioq sync;
	struct vh_bdev_io *io;
	int busy = VH_POLL_IDLE;

	ch->in_poll = true;
	if (reap(ch) > 0) {
		busy = VH_POLL_BUSY;
	}
	/* Synchronous results of the previous iteration; new ones wait for the next. */
	sync = ch->sync_done;
	if (sync.head == NULL) {
		sync.tail = &sync.head;
	}
	vh_file_ioq_init(&ch->sync_done);
	while (!ch->dead && (io = vh_file_ioq_pop(&sync)) != NULL) {
		complete_one(ch, io, io->status);
		busy = VH_POLL_BUSY;
	}
	while (!ch->dead && (io = vh_file_ioq_pop(&ch->pending)) != NULL) {
		if (!try_issue(ch, io)) {
			vh_file_ioq_unpop(&ch->pending, io);
			break;
		}
		busy = VH_POLL_BUSY;
	}
	if (!ch->dead && io_uring_sq_ready(&ch->ring) > 0) {
		vh_reactor_defer(&ch->flush);
	}
	ch->in_poll = false;
	ch_reap_if_dead(ch);
	return busy;
}

static int
uring_arm(void *arg)
{
	struct uring_ch *ch = arg;
	uint64_t v;

	/*
	 * Clear the eventfd first, then look at the CQ: a CQE posted after the read signals the
	 * eventfd again (the kernel posts, then signals), so the sleep cannot miss it.
	 */
	if (read(ch->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was signalled. */
	}
	if (io_uring_cq_ready(&ch->ring) > 0 || io_uring_sq_ready(&ch->ring) > 0 ||
	    !vh_file_ioq_empty(&ch->sync_done)) {
		return 1;
	}
	/* Queued requests wait for a slot; a completion (which signals) frees one. */
	return !vh_file_ioq_empty(&ch->pending) && ch->inflight < ch->max_inflight;
}

static int
uring_wake_fd(void *arg)
{
	struct uring_ch *ch = arg;

	return ch->efd;
}

static int
uring_submit(void *arg, struct vh_bdev_io *io)
{
	struct uring_ch *ch = arg;
	int rc;

	rc = vh_file_req_init(ch->f, io);
	if (rc < 0) {
		return rc;
	}
	issue(ch, io);
	return 0;
}

static void *
uring_channel_create(struct vh_bdev *b)
{
	struct vh_file *f = b->ctx;
	struct uring_ch *ch;
	int fds[2];
	int rc;

	ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		return NULL;
	}
	ch->f = f;
	ch->flush.fn = uring_flush;
	vh_file_ioq_init(&ch->pending);
	vh_file_ioq_init(&ch->sync_done);
	rc = io_uring_queue_init(URING_ENTRIES, &ch->ring, 0);
	if (rc < 0) {
		VH_ERR("uring", "'%s': io_uring_queue_init: %s", f->name, strerror(-rc));
		goto out_free;
	}
	ch->max_inflight = ch->ring.cq.ring_entries;
	ch->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ch->efd < 0) {
		VH_ERR("uring", "'%s': eventfd: %s", f->name, strerror(errno));
		goto out_exit;
	}
	rc = io_uring_register_eventfd(&ch->ring, ch->efd);
	if (rc < 0) {
		VH_ERR("uring", "'%s': io_uring_register_eventfd: %s", f->name, strerror(-rc));
		goto out_close;
	}
	/* Registered files save an fget/fput per request; without them we still work. */
	fds[0] = f->fd;
	fds[1] = f->fd_buffered;
	rc = io_uring_register_files(&ch->ring, fds, 2);
	ch->fixed = rc == 0;
	if (rc < 0) {
		VH_DEBUG("uring", "'%s': io_uring_register_files: %s", f->name, strerror(-rc));
	}
	return ch;

out_close:
	close(ch->efd);
out_exit:
	io_uring_queue_exit(&ch->ring);
out_free:
	free(ch);
	return NULL;
}

static void
uring_channel_destroy(void *arg)
{
	struct uring_ch *ch = arg;

	/* Consumers put their channel only after all their I/O completed (bdev.h). */
	ch->dead = true;
	ch_reap_if_dead(ch);
}

static const struct vh_bdev_module uring_module = {
	.name = "uring",
	.channel_create = uring_channel_create,
	.channel_destroy = uring_channel_destroy,
	.submit = uring_submit,
	.poll = uring_poll,
	.arm = uring_arm,
	.wake_fd = uring_wake_fd,
	.destruct = vh_file_bdev_destruct,
	.info_json = vh_file_bdev_info_json,
	.config_json = vh_file_bdev_config_json,
};

/*
 * Whether this process can use io_uring: the sysctl (Linux 6.6+) and a real ring, since
 * seccomp filters and old kernels say no only when asked (ENOSYS, EPERM).
 */
static bool
uring_available(const char **why)
{
	struct io_uring r;
	int rc;

	if (vh_file_uring_disabled()) {
		*why = "kernel.io_uring_disabled is set";
		return false;
	}
	rc = io_uring_queue_init(2, &r, 0);
	if (rc == -ENOSYS || rc == -EPERM || rc == -EACCES) {
		*why = strerror(-rc);
		return false;
	}
	if (rc == 0) {
		io_uring_queue_exit(&r);
	}
	return true;
}

int
vh_bdev_uring_create_ex(const char *name, const char *filename, uint32_t block_size, char *err,
			size_t errlen)
{
	const char *why = NULL;

	if (!uring_available(&why)) {
		VH_NOTICE("uring", "io_uring unavailable (%s): bdev '%s' uses the aio engine",
			  why, name != NULL ? name : "?");
		return vh_file_aio_create("uring", name, filename, block_size, err, errlen);
	}
	return vh_file_bdev_create(&uring_module, "uring", name, filename, block_size, err,
				   errlen);
}

int
vh_bdev_uring_create(const char *name, const char *filename, uint32_t block_size)
{
	char err[256];
	int rc = vh_bdev_uring_create_ex(name, filename, block_size, err, sizeof(err));

	if (rc < 0) {
		VH_ERR("uring", "cannot create bdev '%s': %s", name != NULL ? name : "?", err);
	}
	return rc;
}

int
vh_bdev_uring_delete(const char *name)
{
	return vh_bdev_delete(name, "uring");
}
