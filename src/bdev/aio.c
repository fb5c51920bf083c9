/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Linux AIO (libaio) back-end for files and block devices ("aio", SPDK's name): the fallback for
 * hosts where io_uring is missing or disabled. See docs/bdev-file.md.
 *
 * One AIO context per channel (per bdev and reactor). submit() takes an iocb from the channel's
 * preallocated pool (or queues the request when the pool is empty) and io_submit() runs once at
 * the end of the reactor iteration for the whole batch. poll() first peeks at the completion
 * ring the kernel maps into our address space, so an empty ring costs no system call, and
 * reaps with a zero-timeout io_getevents(). Every iocb signals the channel's eventfd, which wakes
 * the sleeping reactor.
 *
 * What AIO cannot do asynchronously runs synchronously in submit() and completes at the next
 * poll: fallocate (discard, write zeroes) and BLKDISCARD. Buffered (non-O_DIRECT) AIO is also
 * synchronous inside io_submit(): the kernel has no asynchronous buffered path for it.
 */
#include <errno.h>
#include <libaio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bdev/bdev_file.h"
#include "bdev/file_common.h"
#include "core/log.h"

#define AIO_DEPTH      256
#define AIO_REAP_BATCH 64

/*
 * The head of the completion ring the kernel maps at the io_context_t address (fs/aio.c,
 * struct aio_ring). Stable ABI since 2.6; the magic tells us when it is not what we expect, and
 * then we simply always ask the kernel.
 */
struct aio_ring_hdr {
	unsigned id;
	unsigned nr;
	unsigned head;
	unsigned tail;
	unsigned magic;
	unsigned compat_features;
	unsigned incompat_features;
	unsigned header_length;
};
#define AIO_RING_MAGIC 0xa10a10a1u

struct aio_ch {
	io_context_t ctx;
	struct vh_file *f;
	int efd;
	bool in_poll;
	bool dead;
	unsigned nfree;
	unsigned nbatch;
	struct vh_file_ioq pending;   /* waiting for an iocb, in arrival order */
	struct vh_file_ioq sync_done; /* finished synchronously; result in io->status */
	struct vh_deferred flush;     /* one io_submit per iteration */
	struct iocb *free_iocbs[AIO_DEPTH];
	struct iocb *batch[AIO_DEPTH]; /* prepared, not yet given to io_submit */
	struct iocb iocbs[AIO_DEPTH];
};

static void
ch_free(struct aio_ch *ch)
{
	io_destroy(ch->ctx);
	close(ch->efd);
	free(ch);
}

static bool
ch_reap_if_dead(struct aio_ch *ch)
{
	if (!ch->dead) {
		return false;
	}
	if (!ch->in_poll && !ch->flush.queued) {
		ch_free(ch);
	}
	return true;
}

/* True if the kernel surely has no completion for us (no system call needed). */
static bool
ring_empty(const struct aio_ch *ch)
{
	const struct aio_ring_hdr *r = (const void *)ch->ctx;

	if (r->magic != AIO_RING_MAGIC) {
		return false;
	}
	/* Acquire on tail pairs with the kernel's write barrier before it publishes tail. */
	return __atomic_load_n(&r->head, __ATOMIC_RELAXED) ==
	       __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

static bool
try_issue(struct aio_ch *ch, struct vh_bdev_io *io)
{
	struct vh_file_op op;
	struct iocb *cb;

	vh_file_req_next(ch->f, io, &op);
	switch (op.kind) {
	case VH_FOP_READV:
	case VH_FOP_WRITEV:
	case VH_FOP_FSYNC:
		break;
	default:
		/* No AIO opcode for these: run now, complete at the next poll. */
		io->status = (int)vh_file_sync_op(ch->f, &op);
		vh_file_ioq_push(&ch->sync_done, io);
		return true;
	}
	if (ch->nfree == 0) {
		return false;
	}
	cb = ch->free_iocbs[--ch->nfree];
	if (op.kind == VH_FOP_READV) {
		io_prep_preadv(cb, op.fd, op.iov, op.iovcnt, (long long)op.off);
	} else if (op.kind == VH_FOP_WRITEV) {
		io_prep_pwritev(cb, op.fd, op.iov, op.iovcnt, (long long)op.off);
	} else {
		io_prep_fdsync(cb, op.fd);
	}
	cb->data = io;
	io_set_eventfd(cb, ch->efd);
	ch->batch[ch->nbatch++] = cb;
	return true;
}

static void
issue(struct aio_ch *ch, struct vh_bdev_io *io)
{
	if (!vh_file_ioq_empty(&ch->pending) || !try_issue(ch, io)) {
		vh_file_ioq_push(&ch->pending, io);
	}
	vh_reactor_defer(&ch->flush);
}

/* io_submit refused the first iocb of the batch outright: finish its request by hand. */
static void
reject_first(struct aio_ch *ch, int rc)
{
	struct iocb *cb = ch->batch[0];
	struct vh_bdev_io *io = cb->data;

	memmove(&ch->batch[0], &ch->batch[1], (ch->nbatch - 1) * sizeof(ch->batch[0]));
	ch->nbatch--;
	ch->free_iocbs[ch->nfree++] = cb;
	if (cb->aio_lio_opcode == IO_CMD_FDSYNC && rc == -EINVAL) {
		/* Kernels before 4.18 have no AIO fsync. */
		io->status = fdatasync(cb->aio_fildes) < 0 ? -errno : 0;
	} else {
		io->status = rc;
	}
	vh_file_ioq_push(&ch->sync_done, io);
}

static void
aio_flush(struct vh_deferred *d)
{
	struct aio_ch *ch = VH_CONTAINER_OF(d, struct aio_ch, flush);
	int rc;

	if (ch_reap_if_dead(ch)) {
		return;
	}
	while (ch->nbatch > 0) {
		rc = io_submit(ch->ctx, (long)ch->nbatch, ch->batch);
		if (rc == -EAGAIN || rc == -EINTR || rc == 0) {
			/* Kernel back-pressure: poll() schedules another attempt. */
			return;
		}
		if (rc < 0) {
			reject_first(ch, rc);
			continue;
		}
		memmove(&ch->batch[0], &ch->batch[rc], (ch->nbatch - (unsigned)rc) * sizeof(ch->batch[0]));
		ch->nbatch -= (unsigned)rc;
	}
}

static void
complete_one(struct aio_ch *ch, struct vh_bdev_io *io, long res)
{
	int status = 0;

	if (vh_file_req_update(ch->f, io, res, &status) == VH_FILE_REQ_DONE) {
		vh_bdev_io_done(io, status);
	} else {
		issue(ch, io);
	}
}

static int
reap(struct aio_ch *ch)
{
	struct io_event ev[AIO_REAP_BATCH];
	struct timespec zero = {0, 0};
	int n, total = 0;

	while (!ch->dead && !ring_empty(ch)) {
		n = io_getevents(ch->ctx, 0, AIO_REAP_BATCH, ev, &zero);
		if (n <= 0) {
			break;
		}
		/* Give the iocbs back first: a callback may submit right away. */
		for (int i = 0; i < n; i++) {
			ch->free_iocbs[ch->nfree++] = ev[i].obj;
		}
		for (int i = 0; i < n && !ch->dead; i++) {
			complete_one(ch, ev[i].data, (long)ev[i].res);
		}
		total += n;
		if (n < AIO_REAP_BATCH) {
			break;
		}
	}
	return total;
}

static int
aio_poll(void *arg)
{
	struct aio_ch *ch = arg;
	struct vh_file_ioq sync;
	struct vh_bdev_io *io;
	int busy = VH_POLL_IDLE;

	ch->in_poll = true;
	if (reap(ch) > 0) {
		busy = VH_POLL_BUSY;
	}
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
	if (!ch->dead && ch->nbatch > 0) {
		vh_reactor_defer(&ch->flush);
	}
	ch->in_poll = false;
	ch_reap_if_dead(ch);
	return busy;
}

static int
aio_arm(void *arg)
{
	struct aio_ch *ch = arg;
	uint64_t v;

	/* Clear first, then look: a completion after the read signals the eventfd again. */
	if (read(ch->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was signalled. */
	}
	if (!ring_empty(ch) || ch->nbatch > 0 || !vh_file_ioq_empty(&ch->sync_done)) {
		return 1;
	}
	return !vh_file_ioq_empty(&ch->pending) && ch->nfree > 0;
}

static int
aio_wake_fd(void *arg)
{
	struct aio_ch *ch = arg;

	return ch->efd;
}

static int
aio_submit(void *arg, struct vh_bdev_io *io)
{
	struct aio_ch *ch = arg;
	int rc;

	rc = vh_file_req_init(ch->f, io);
	if (rc < 0) {
		return rc;
	}
	issue(ch, io);
	return 0;
}

static void *
aio_channel_create(struct vh_bdev *b)
{
	struct vh_file *f = b->ctx;
	struct aio_ch *ch;
	int rc;

	ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		return NULL;
	}
	ch->f = f;
	ch->flush.fn = aio_flush;
	vh_file_ioq_init(&ch->pending);
	vh_file_ioq_init(&ch->sync_done);
	for (unsigned i = 0; i < AIO_DEPTH; i++) {
		ch->free_iocbs[i] = &ch->iocbs[i];
	}
	ch->nfree = AIO_DEPTH;
	rc = io_setup(AIO_DEPTH, &ch->ctx);
	if (rc < 0) {
		/* EAGAIN: fs.aio-max-nr is exhausted. */
		VH_ERR("aio", "'%s': io_setup: %s", f->name, strerror(-rc));
		goto out_free;
	}
	ch->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ch->efd < 0) {
		VH_ERR("aio", "'%s': eventfd: %s", f->name, strerror(errno));
		goto out_destroy;
	}
	return ch;

out_destroy:
	io_destroy(ch->ctx);
out_free:
	free(ch);
	return NULL;
}

static void
aio_channel_destroy(void *arg)
{
	struct aio_ch *ch = arg;

	/* Consumers put their channel only after all their I/O completed (bdev.h). */
	ch->dead = true;
	ch_reap_if_dead(ch);
}

#define AIO_MODULE(modname)                                                                        \
	{                                                                                          \
		.name = modname, .channel_create = aio_channel_create,                             \
		.channel_destroy = aio_channel_destroy, .submit = aio_submit, .poll = aio_poll,    \
		.arm = aio_arm, .wake_fd = aio_wake_fd, .destruct = vh_file_bdev_destruct,         \
		.info_json = vh_file_bdev_info_json, .config_json = vh_file_bdev_config_json,      \
	}

static const struct vh_bdev_module aio_module = AIO_MODULE("aio");
/* bdev_uring_create on a host without io_uring: the aio engine under the uring name. */
static const struct vh_bdev_module aio_as_uring_module = AIO_MODULE("uring");

int
vh_file_aio_create(const char *module_name, const char *name, const char *filename,
		   uint32_t block_size, char *err, size_t errlen)
{
	const struct vh_bdev_module *m =
		strcmp(module_name, "uring") == 0 ? &aio_as_uring_module : &aio_module;

	return vh_file_bdev_create(m, "aio", name, filename, block_size, err, errlen);
}

int
vh_bdev_aio_create_ex(const char *name, const char *filename, uint32_t block_size, char *err,
		      size_t errlen)
{
	return vh_file_aio_create("aio", name, filename, block_size, err, errlen);
}

int
vh_bdev_aio_create(const char *name, const char *filename, uint32_t block_size)
{
	char err[256];
	int rc = vh_bdev_aio_create_ex(name, filename, block_size, err, sizeof(err));

	if (rc < 0) {
		VH_ERR("aio", "cannot create bdev '%s': %s", name != NULL ? name : "?", err);
	}
	return rc;
}

int
vh_bdev_aio_delete(const char *name)
{
	return vh_bdev_delete(name, "aio");
}
