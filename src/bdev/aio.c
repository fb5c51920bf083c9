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
	struct vh_file_ch base; /* first: the module callbacks get &base */
	io_context_t ctx;
	unsigned nfree;
	unsigned nbatch;
	struct iocb *free_iocbs[AIO_DEPTH];
	struct iocb *batch[AIO_DEPTH]; /* prepared, not yet given to io_submit */
	struct iocb iocbs[AIO_DEPTH];
};

static struct aio_ch *
to_aio(const struct vh_file_ch *ch)
{
	return VH_CONTAINER_OF(ch, struct aio_ch, base);
}

/* True if the kernel surely has no completion for us (no system call needed). */
static bool
ring_empty(const struct aio_ch *ac)
{
	const struct aio_ring_hdr *r = (const void *)ac->ctx;

	if (r->magic != AIO_RING_MAGIC) {
		return false;
	}
	/* Acquire on tail pairs with the kernel's write barrier before it publishes tail. */
	return __atomic_load_n(&r->head, __ATOMIC_RELAXED) ==
	       __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

static bool
aio_issue(struct vh_file_ch *ch, struct vh_bdev_io *io, const struct vh_file_op *op)
{
	struct aio_ch *ac = to_aio(ch);
	struct iocb *cb;

	if (ac->nfree == 0) {
		return false;
	}
	cb = ac->free_iocbs[--ac->nfree];
	if (op->kind == VH_FOP_READV) {
		io_prep_preadv(cb, op->fd, op->iov, op->iovcnt, (long long)op->off);
	} else if (op->kind == VH_FOP_WRITEV) {
		io_prep_pwritev(cb, op->fd, op->iov, op->iovcnt, (long long)op->off);
		if (op->dsync) {
			/* Linux >= 4.13; older ones refuse the iocb (EINVAL): file_common.c. */
			cb->aio_rw_flags = RWF_DSYNC;
		}
		if (cb->aio_rw_flags & RWF_DSYNC) {
			vh_file_count_dsync(ch->f); /* what the iocb carries (bdev_get_bdevs) */
		}
	} else {
		io_prep_fdsync(cb, op->fd);
	}
	cb->data = io;
	io_set_eventfd(cb, ch->efd);
	ac->batch[ac->nbatch++] = cb;
	return true;
}

/* io_submit refused the first iocb of the batch outright: finish its request by hand. */
static void
reject_first(struct aio_ch *ac, int rc)
{
	struct iocb *cb = ac->batch[0];
	struct vh_bdev_io *io = cb->data;

	memmove(&ac->batch[0], &ac->batch[1], (ac->nbatch - 1) * sizeof(ac->batch[0]));
	ac->nbatch--;
	ac->free_iocbs[ac->nfree++] = cb;
	if (cb->aio_lio_opcode == IO_CMD_FDSYNC && rc == -EINVAL) {
		/* Kernels before 4.18 have no AIO fsync. */
		rc = fdatasync(cb->aio_fildes) < 0 ? -errno : 0;
	}
	vh_file_ch_finish_sync(&ac->base, io, rc);
}

static void
aio_flush(struct vh_file_ch *ch)
{
	struct aio_ch *ac = to_aio(ch);
	int rc;

	while (ac->nbatch > 0) {
		rc = io_submit(ac->ctx, (long)ac->nbatch, ac->batch);
		if (rc == -EAGAIN || rc == -EINTR || rc == 0) {
			/* Kernel back-pressure: poll() schedules another attempt. */
			return;
		}
		if (rc < 0) {
			reject_first(ac, rc);
			continue;
		}
		memmove(&ac->batch[0], &ac->batch[rc],
		        (ac->nbatch - (unsigned)rc) * sizeof(ac->batch[0]));
		ac->nbatch -= (unsigned)rc;
	}
}

static int
aio_reap(struct vh_file_ch *ch)
{
	struct aio_ch *ac = to_aio(ch);
	struct io_event ev[AIO_REAP_BATCH];
	struct timespec zero = {0, 0};
	int n, total = 0;

	while (!ch->dead && !ring_empty(ac)) {
		n = io_getevents(ac->ctx, 0, AIO_REAP_BATCH, ev, &zero);
		if (n <= 0) {
			break;
		}
		/* Give the iocbs back first: a callback may submit right away. */
		for (int i = 0; i < n; i++) {
			ac->free_iocbs[ac->nfree++] = ev[i].obj;
		}
		for (int i = 0; i < n && !ch->dead; i++) {
			vh_file_ch_complete(ch, ev[i].data, (long)ev[i].res);
		}
		total += n;
		if (n < AIO_REAP_BATCH) {
			break;
		}
	}
	return total;
}

static bool
aio_unsent(const struct vh_file_ch *ch)
{
	return to_aio(ch)->nbatch > 0;
}

static bool
aio_ready(const struct vh_file_ch *ch)
{
	return !ring_empty(to_aio(ch));
}

static bool
aio_room(const struct vh_file_ch *ch)
{
	return to_aio(ch)->nfree > 0;
}

static void
aio_free(struct vh_file_ch *ch)
{
	struct aio_ch *ac = to_aio(ch);

	io_destroy(ac->ctx);
	close(ch->efd);
	free(ac);
}

/* fallocate and BLKDISCARD have no AIO opcode: the shared channel runs them synchronously. */
static const struct vh_file_engine aio_engine = {
        .name = "aio",
        .async_kinds = (1u << VH_FOP_READV) | (1u << VH_FOP_WRITEV) | (1u << VH_FOP_FSYNC),
        .issue = aio_issue,
        .reap = aio_reap,
        .flush = aio_flush,
        .unsent = aio_unsent,
        .ready = aio_ready,
        .room = aio_room,
        .free = aio_free,
};

static void *
aio_channel_create(struct vh_bdev *b)
{
	struct vh_file *f = b->ctx;
	struct aio_ch *ac;
	int rc;

	ac = calloc(1, sizeof(*ac));
	if (ac == NULL) {
		return NULL;
	}
	vh_file_ch_init(&ac->base, &aio_engine, f);
	for (unsigned i = 0; i < AIO_DEPTH; i++) {
		ac->free_iocbs[i] = &ac->iocbs[i];
	}
	ac->nfree = AIO_DEPTH;
	rc = io_setup(AIO_DEPTH, &ac->ctx);
	if (rc < 0) {
		/* EAGAIN: fs.aio-max-nr is exhausted. */
		VH_ERR("aio", "'%s': io_setup: %s", f->name, strerror(-rc));
		goto out_free;
	}
	ac->base.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ac->base.efd < 0) {
		VH_ERR("aio", "'%s': eventfd: %s", f->name, strerror(errno));
		goto out_destroy;
	}
	return &ac->base;

out_destroy:
	io_destroy(ac->ctx);
out_free:
	free(ac);
	return NULL;
}

#define AIO_MODULE(modname)                                                                        \
	{                                                                                          \
		.name = modname, .channel_create = aio_channel_create,                             \
		.channel_destroy = vh_file_ch_destroy, .submit = vh_file_ch_submit,                \
		.poll = vh_file_ch_poll, .arm = vh_file_ch_arm, .wake_fd = vh_file_ch_wake_fd,     \
		.destruct = vh_file_bdev_destruct, .info_json = vh_file_bdev_info_json,            \
		.config_json = vh_file_bdev_config_json,                                           \
	}

static const struct vh_bdev_module aio_module = AIO_MODULE("aio");
/* bdev_uring_create on a host without io_uring: the aio engine under the uring name. */
static const struct vh_bdev_module aio_as_uring_module = AIO_MODULE("uring");

int
vh_file_aio_create(const char *module_name, const char *name, const char *filename,
                   const struct vh_bdev_file_opts *o, char *err, size_t errlen)
{
	const struct vh_bdev_module *m =
	        strcmp(module_name, "uring") == 0 ? &aio_as_uring_module : &aio_module;

	return vh_file_bdev_create(m, "aio", name, filename, o, err, errlen);
}

int
vh_bdev_aio_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
                      char *err, size_t errlen)
{
	return vh_file_aio_create("aio", name, filename, o, err, errlen);
}

int
vh_bdev_aio_create(const char *name, const char *filename, uint32_t block_size)
{
	struct vh_bdev_file_opts o = {.block_size = block_size, .inline_io = true};
	char err[256];
	int rc = vh_bdev_aio_create_ex(name, filename, &o, err, sizeof(err));

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
