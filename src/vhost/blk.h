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

/* The controller's device state (c->dev). */
struct vh_blk_ctrlr {
	struct vh_bdev *bdev;
	char serial[VIRTIO_BLK_ID_BYTES]; /* the name cut at 20 bytes, no NUL if full */
	bool readonly;
	bool packed_ring; /* VIRTIO_F_RING_PACKED offered (the controller's packed_recovery too) */
};

/* The session's device state (s->dev). */
struct vh_blk_session {
	uint8_t wce;        /* config-space writeback byte */
	bool write_through; /* writes durable at completion; relaxed atomics (reactors read it) */
};

/* Recompute write_through from the acked features and wce (after either changes). Control. */
void vh_blk_cache_mode_update(struct vh_session *s);

#endif
