/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rbd back-end's data path (rbd.c has the bdevs, rbd_cluster.c the clusters).
 *
 * A reactor's submit() calls rbd_aio_readv/writev/flush/discard/write_zeroes, which hand the
 * request to librbd's threads (we force rbd_non_blocking_aio, so this never waits for the
 * cluster). librbd calls us back on one of its threads; the callback stores the result in the
 * request's slot and posts the slot to the channel's lock-free queue (core/msg.h, the intrusive
 * MPSC part), which writes the channel's eventfd only when the reactor sleeps. The reactor runs
 * the queued completions in its poll. Slots are preallocated per channel: no allocation of ours
 * per request (librbd allocates its completion and request state).
 *
 * Channel teardown: a consumer puts its channel only after every request completed, but the
 * librbd thread that posted the last completion may still be inside vh_msgq_post() (reading the
 * sleep flag, writing the eventfd). So posters count themselves in ch->posting around the post,
 * and destroy waits for that count to drop, which takes microseconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <rbd/librbd.h>

#include "bdev/bdev_module.h"
#include "bdev/rbd_internal.h"
#include "core/log.h"

#define RBD_CH_SLOTS     1024 /* requests in flight per channel; more wait (-EAGAIN) */
#define RBD_REAP_BATCH   128
#define RBD_EBLOCKLISTED ESHUTDOWN /* librados' -EBLOCKLISTED */

struct rbd_ch;

struct rbd_slot {
	struct vh_msg_node node; /* posted by librbd's thread to ch->q */
	struct rbd_ch *ch;       /* published to librbd's thread with a release store */
	struct vh_bdev_io *io;
	uint64_t expect; /* bytes a read returns when it succeeds */
	int status;      /* librbd's thread, before posting */
	struct rbd_slot *next_free;
};

struct rbd_ch {
	struct vh_msgq q; /* completions (nodes only); 64-byte aligned members */
	struct rbd_disk *d;
	struct rbd_slot *free;
	unsigned inflight;
	bool sleep_armed; /* vh_msgq_prepare_sleep() said yes: undo at the next poll */
	int posting;      /* atomic: librbd threads inside vh_msgq_post() */
	struct vh_log_burst errors;
	struct rbd_slot slots[RBD_CH_SLOTS];
};

static void
rbd_aio_cb(rbd_completion_t c, void *arg)
{
	struct rbd_slot *s = arg;
	/* Pairs with the release store in rbd_submit(): the slot's fields are visible. */
	struct rbd_ch *ch = __atomic_load_n(&s->ch, __ATOMIC_ACQUIRE);
	ssize_t rv = rbd_aio_get_return_value(c);

	rbd_aio_release(c);
	if (rv < 0) {
		s->status = (int)rv;
	} else {
		/* A read returns its length; a short one means the image ended under us. */
		s->status = (s->expect != 0 && (uint64_t)rv != s->expect) ? -EIO : 0;
	}
	/* Counted before the node is visible: destroy waits for us to leave the queue. */
	__atomic_add_fetch(&ch->posting, 1, __ATOMIC_RELAXED);
	vh_msgq_post(&ch->q, &s->node);
	/* Pairs with the acquire load in rbd_channel_destroy(). */
	__atomic_sub_fetch(&ch->posting, 1, __ATOMIC_RELEASE);
}

static const char *
op_name(uint8_t type)
{
	static const char *const names[] = {"read", "write", "flush", "discard", "write-zeroes"};

	return type < VH_ARRAY_SIZE(names) ? names[type] : "?";
}

static void
note_error(struct rbd_ch *ch, const struct vh_bdev_io *io, int status)
{
	struct rbd_disk *d = ch->d;
	uint32_t suppressed;
	const char *hint = "";

	__atomic_add_fetch(&d->io_errors, 1, __ATOMIC_RELAXED);
	if (status == -ETIMEDOUT) {
		__atomic_add_fetch(&d->io_timeouts, 1, __ATOMIC_RELAXED);
		hint = " (the cluster did not answer within rados_osd_op_timeout)";
	} else if (status == -RBD_EBLOCKLISTED) {
		hint = " (this client is blocklisted: another client took the image's lock)";
	}
	if (vh_log_burst_allow(&ch->errors, vh_now_ns(), &suppressed)) {
		VH_ERR("rbd", "'%s': %s of %" PRIu64 " bytes at %" PRIu64 " failed: %s%s%s",
		       d->bdev != NULL ? d->bdev->name : d->rbd_name, op_name(io->type), io->length,
		       io->offset, strerror(-status), hint,
		       suppressed ? " (and earlier errors)" : "");
	}
}

static void
slot_done(void *arg)
{
	struct rbd_slot *s = arg;
	struct rbd_ch *ch = s->ch;
	struct vh_bdev_io *io = s->io;
	int status = s->status;

	s->next_free = ch->free;
	ch->free = s;
	ch->inflight--;
	if (VH_UNLIKELY(status < 0)) {
		note_error(ch, io, status);
	}
	vh_bdev_io_done(io, status);
}

static int
start_aio(struct rbd_disk *d, struct vh_bdev_io *io, rbd_completion_t c)
{
	switch (io->type) {
	case VH_BDEV_IO_READ:
		return rbd_aio_readv(d->image, io->iov, io->iovcnt, io->offset, c);
	case VH_BDEV_IO_WRITE:
		return rbd_aio_writev(d->image, io->iov, io->iovcnt, io->offset, c);
	case VH_BDEV_IO_FLUSH:
		return rbd_aio_flush(d->image, c);
	case VH_BDEV_IO_DISCARD:
		return rbd_aio_discard(d->image, io->offset, io->length, c);
	case VH_BDEV_IO_WRITE_ZEROES:
		/* As QEMU's rbd driver: without the guest's permission to unmap, keep the range
		 * allocated (librbd then writes zeroes instead of removing objects). */
		return rbd_aio_write_zeroes(d->image, io->offset, io->length, c,
		                            (io->flags & VH_BDEV_IO_F_UNMAP)
		                                    ? 0
		                                    : RBD_WRITE_ZEROES_FLAG_THICK_PROVISION,
		                            0);
	default:
		return -ENOTSUP;
	}
}

int
rbd_submit(void *arg, struct vh_bdev_io *io)
{
	struct rbd_ch *ch = arg;
	struct rbd_slot *s = ch->free;
	rbd_completion_t c;
	int rc;

	if (s == NULL) {
		return -EAGAIN; /* every slot in flight: the bdev layer retries at the next poll */
	}
	rc = rbd_aio_create_completion(s, rbd_aio_cb, &c);
	if (rc < 0) {
		return -ENOMEM;
	}
	s->io = io;
	s->expect = io->type == VH_BDEV_IO_READ ? io->length : 0;
	/*
	 * Publishes io, expect and the completion (which rbd_aio_cb frees) to the librbd thread
	 * that will run rbd_aio_cb(): librbd's own hand-over is invisible to ThreadSanitizer.
	 */
	__atomic_store_n(&s->ch, ch, __ATOMIC_RELEASE);
	rc = start_aio(ch->d, io, c);
	if (rc < 0) {
		rbd_aio_release(c);
		return rc == -ENOMEM ? -EAGAIN : rc;
	}
	ch->free = s->next_free;
	ch->inflight++;
	return 0;
}

int
rbd_poll(void *arg)
{
	struct rbd_ch *ch = arg;

	if (ch->sleep_armed) {
		vh_msgq_wake_done(&ch->q);
		ch->sleep_armed = false;
	}
	if (ch->inflight == 0) {
		return VH_POLL_IDLE;
	}
	return vh_msgq_drain(&ch->q, RBD_REAP_BATCH) > 0 ? VH_POLL_BUSY : VH_POLL_IDLE;
}

int
rbd_arm(void *arg)
{
	struct rbd_ch *ch = arg;

	if (ch->inflight == 0) {
		return 0; /* nothing can complete: no wake-up needed */
	}
	/* From here on a poster writes the eventfd; false if a completion is already queued. */
	if (!vh_msgq_prepare_sleep(&ch->q)) {
		return 1;
	}
	ch->sleep_armed = true;
	return 0;
}

int
rbd_wake_fd(void *arg)
{
	struct rbd_ch *ch = arg;

	return ch->q.efd;
}

void *
rbd_channel_create(struct vh_bdev *b)
{
	size_t size = (sizeof(struct rbd_ch) + VH_CACHE_LINE - 1) & ~(size_t)(VH_CACHE_LINE - 1);
	struct rbd_ch *ch = aligned_alloc(VH_CACHE_LINE, size);
	int rc;

	if (ch == NULL) {
		return NULL;
	}
	memset(ch, 0, sizeof(*ch));
	rc = vh_msgq_init(&ch->q);
	if (rc < 0) {
		VH_ERR("rbd", "'%s': no completion queue: %s", b->name, strerror(-rc));
		free(ch);
		return NULL;
	}
	ch->d = b->ctx;
	for (int i = RBD_CH_SLOTS - 1; i >= 0; i--) {
		struct rbd_slot *s = &ch->slots[i];

		vh_msg_node_init(&s->node, slot_done, s);
		s->ch = ch;
		s->next_free = ch->free;
		ch->free = s;
	}
	return ch;
}

void
rbd_channel_destroy(void *arg)
{
	struct rbd_ch *ch = arg;

	/* Every request completed (bdev.h); wait for the last poster to leave vh_msgq_post(). */
	while (__atomic_load_n(&ch->posting, __ATOMIC_ACQUIRE) != 0) {
		sched_yield();
	}
	vh_msgq_fini(&ch->q);
	free(ch);
}
