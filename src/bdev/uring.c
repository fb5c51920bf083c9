/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io_uring back-end for files and block devices ("uring", SPDK's name). See docs/bdev-file.md.
 *
 * One ring per channel, that is per (bdev, reactor): rings are never shared between threads, so
 * no locking. The request flow (queueing, synchronous and inline operations, deferred freeing)
 * is the shared channel's (struct vh_file_ch, file_ch.c); this file only talks to io_uring:
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
 * next poll (the completion contract holds). On tmpfs, reads and writes are copied inline by the
 * shared channel and never reach the ring (file_common.h explains why).
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
	struct vh_file_ch base;       /* first: the module callbacks get &base */
	struct io_uring ring;
	bool fixed;                   /* fds registered: 0 = f->fd, 1 = f->fd_buffered */
	unsigned inflight;            /* SQEs prepared and not reaped */
	unsigned max_inflight;        /* CQ entries */
};

static struct uring_ch *
to_uring(const struct vh_file_ch *ch)
{
	return VH_CONTAINER_OF(ch, struct uring_ch, base);
}

static void
prep_sqe(struct uring_ch *uc, struct io_uring_sqe *sqe, const struct vh_file_op *op)
{
	int fd = uc->fixed ? (op->buffered ? 1 : 0) : op->fd;

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
	if (uc->fixed) {
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

static bool
uring_issue(struct vh_file_ch *ch, struct vh_bdev_io *io, const struct vh_file_op *op)
{
	struct uring_ch *uc = to_uring(ch);
	struct io_uring_sqe *sqe;

	if (uc->inflight >= uc->max_inflight) {
		return false;
	}
	sqe = io_uring_get_sqe(&uc->ring);
	if (sqe == NULL) {
		return false;
	}
	prep_sqe(uc, sqe, op);
	io_uring_sqe_set_data(sqe, io);
	uc->inflight++;
	return true;
}

static void
uring_flush(struct vh_file_ch *ch)
{
	struct uring_ch *uc = to_uring(ch);
	int rc;

	if (io_uring_sq_ready(&uc->ring) == 0) {
		return;
	}
	rc = io_uring_submit(&uc->ring);
	/*
	 * On failure the SQEs stay in the ring and poll() schedules another attempt: -EAGAIN and
	 * -EBUSY are kernel back-pressure that the next reaping relieves.
	 */
	if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) {
		VH_LOG_RL(VH_LOG_ERROR, "uring", "'%s': io_uring_submit: %s", ch->f->name,
			  strerror(-rc));
	}
}

static int
uring_reap(struct vh_file_ch *ch)
{
	struct uring_ch *uc = to_uring(ch);
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	struct {
		struct vh_bdev_io *io;
		int res;
	} done[URING_REAP_BATCH];
	unsigned n, total = 0;

	do {
		n = io_uring_peek_batch_cqe(&uc->ring, cqes, URING_REAP_BATCH);
		/* Copy out and release the CQ slots before callbacks submit more work. */
		for (unsigned i = 0; i < n; i++) {
			done[i].io = io_uring_cqe_get_data(cqes[i]);
			done[i].res = cqes[i]->res;
		}
		io_uring_cq_advance(&uc->ring, n);
		uc->inflight -= n;
		for (unsigned i = 0; i < n && !ch->dead; i++) {
			vh_file_ch_complete(ch, done[i].io, done[i].res);
		}
		total += n;
	} while (n == URING_REAP_BATCH && !ch->dead);
	return (int)total;
}

static bool
uring_unsent(const struct vh_file_ch *ch)
{
	return io_uring_sq_ready(&to_uring(ch)->ring) > 0;
}

static bool
uring_ready(const struct vh_file_ch *ch)
{
	return io_uring_cq_ready(&to_uring(ch)->ring) > 0;
}

static bool
uring_room(const struct vh_file_ch *ch)
{
	const struct uring_ch *uc = to_uring(ch);

	return uc->inflight < uc->max_inflight;
}

static void
uring_free(struct vh_file_ch *ch)
{
	struct uring_ch *uc = to_uring(ch);

	io_uring_queue_exit(&uc->ring);
	close(ch->efd);
	free(uc);
}

static const struct vh_file_engine uring_engine = {
	.name = "uring",
	.async_kinds = (1u << VH_FOP_READV) | (1u << VH_FOP_WRITEV) | (1u << VH_FOP_FSYNC) |
		       (1u << VH_FOP_FALLOC),
	.issue = uring_issue,
	.reap = uring_reap,
	.flush = uring_flush,
	.unsent = uring_unsent,
	.ready = uring_ready,
	.room = uring_room,
	.free = uring_free,
};

static void *
uring_channel_create(struct vh_bdev *b)
{
	struct vh_file *f = b->ctx;
	struct uring_ch *uc;
	int fds[2];
	int rc;

	uc = calloc(1, sizeof(*uc));
	if (uc == NULL) {
		return NULL;
	}
	vh_file_ch_init(&uc->base, &uring_engine, f);
	rc = io_uring_queue_init(URING_ENTRIES, &uc->ring, 0);
	if (rc < 0) {
		VH_ERR("uring", "'%s': io_uring_queue_init: %s", f->name, strerror(-rc));
		goto out_free;
	}
	uc->max_inflight = uc->ring.cq.ring_entries;
	uc->base.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (uc->base.efd < 0) {
		VH_ERR("uring", "'%s': eventfd: %s", f->name, strerror(errno));
		goto out_exit;
	}
	rc = io_uring_register_eventfd(&uc->ring, uc->base.efd);
	if (rc < 0) {
		VH_ERR("uring", "'%s': io_uring_register_eventfd: %s", f->name, strerror(-rc));
		goto out_close;
	}
	/* Registered files save an fget/fput per request; without them we still work. */
	fds[0] = f->fd;
	fds[1] = f->fd_buffered;
	rc = io_uring_register_files(&uc->ring, fds, 2);
	uc->fixed = rc == 0;
	if (rc < 0) {
		VH_DEBUG("uring", "'%s': io_uring_register_files: %s", f->name, strerror(-rc));
	}
	return &uc->base;

out_close:
	close(uc->base.efd);
out_exit:
	io_uring_queue_exit(&uc->ring);
out_free:
	free(uc);
	return NULL;
}

static const struct vh_bdev_module uring_module = {
	.name = "uring",
	.channel_create = uring_channel_create,
	.channel_destroy = vh_file_ch_destroy,
	.submit = vh_file_ch_submit,
	.poll = vh_file_ch_poll,
	.arm = vh_file_ch_arm,
	.wake_fd = vh_file_ch_wake_fd,
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
vh_bdev_uring_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
			char *err, size_t errlen)
{
	const char *why = NULL;

	if (!uring_available(&why)) {
		VH_NOTICE("uring", "io_uring unavailable (%s): bdev '%s' uses the aio engine",
			  why, name != NULL ? name : "?");
		return vh_file_aio_create("uring", name, filename, o, err, errlen);
	}
	return vh_file_bdev_create(&uring_module, "uring", name, filename, o, err, errlen);
}

int
vh_bdev_uring_create(const char *name, const char *filename, uint32_t block_size)
{
	struct vh_bdev_file_opts o = {.block_size = block_size, .inline_io = true};
	char err[256];
	int rc = vh_bdev_uring_create_ex(name, filename, &o, err, sizeof(err));

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
