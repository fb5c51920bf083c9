/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-blk device's state (blk.c), for code that builds controllers and sessions by hand
 * (unit tests). Everything else reaches the device through vh_blk_ops (device.h). Control
 * thread, except what the reactors read while queues run (bdev, serial, readonly never change
 * then; wce is written by SET_CONFIG).
 */
#ifndef VH_VHOST_BLK_H
#define VH_VHOST_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"
#include "vhost/protocol.h"

struct vh_session;

/*
 * What front-ends of a controller believe the writeback byte is. QEMU reads the configuration
 * space once, when the device is realized, and answers the guest from that copy ever after: a
 * reconnecting QEMU does not read it again. So the value a driver set (or the value QEMU read)
 * must outlive the session, or a reconnect after a crash would turn a guest's write-through
 * disk into a writeback one behind its back, and writes it believes stable would not be.
 * Kept in a memfd page the supervisor holds ("blkwce:<ctrlr>"), so it survives a worker crash
 * and a live upgrade as well as a reconnect. Control thread.
 */
struct vh_blk_wce_memory {
	uint32_t magic;
	uint8_t known; /* a front-end read the byte, or a driver wrote it, since its creation */
	uint8_t wce;   /* that value */
};

/* The controller's device state (c->dev). */
struct vh_blk_ctrlr {
	struct vh_bdev *bdev;
	char serial[VIRTIO_BLK_ID_BYTES]; /* the name cut at 20 bytes, no NUL if full */
	bool readonly;
	bool packed_ring; /* VIRTIO_F_RING_PACKED offered (the controller's packed_recovery too) */
	/* The shared page above (NULL: controllers built by hand use @wce_local). */
	struct vh_blk_wce_memory *wce_mem;
	struct vh_blk_wce_memory wce_local;
};

/* The session's device state (s->dev). */
struct vh_blk_session {
	uint8_t wce;        /* config-space writeback byte */
	bool write_through; /* writes durable at completion; relaxed atomics (reactors read it) */
	bool wce_known; /* this front-end read the configuration space, or its state came over */
};

/* Recompute write_through from the acked features and wce (after either changes). Control. */
void vh_blk_cache_mode_update(struct vh_session *s);

#endif
