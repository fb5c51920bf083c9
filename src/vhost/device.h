/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device interface under the vhost-user protocol. The protocol code (msg.c, socket.c,
 * session.c) and the rings (vring.c) know no device type; a controller names its device's ops
 * table, and everything virtio-blk (blk.c) or virtio-scsi specific lives behind it. The same
 * idea as libvhost-user's VuDevIface and SPDK's vhost backend ops.
 *
 * Threads: the ops marked "control" run on the control thread, the ones marked "reactor" on
 * the reactor of the queue they are given. Every op may assume the state rules of vring.h and
 * session.h (a queue's device state is set up by queue_start and torn down by queue_stop on
 * its reactor; nothing else touches it in between).
 */
#ifndef VH_VHOST_DEVICE_H
#define VH_VHOST_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bdev/bdev.h"
#include "vhost/protocol.h"

struct vh_vhost_ctrlr;
struct vh_session;
struct vh_vq;
struct vh_req;

struct vh_dev_ops {
	const char *name; /* "blk", "scsi": logs and vhost_get_controllers */

	/* Control: virtio feature bits the device offers (the ring and transport bits are added).
	 */
	uint64_t (*features)(const struct vh_vhost_ctrlr *c);
	/* vhost-user protocol features the device needs beyond the common set (e.g. CONFIG). */
	uint64_t protocol_features;

	/* Control: per-session device state (s->dev). 0 or -errno. Optional. */
	int (*session_init)(struct vh_session *s);
	void (*session_fini)(struct vh_session *s);
	/* Control: the front-end acked its features (s->features) or reset the device. Optional. */
	void (*features_set)(struct vh_session *s);
	void (*session_reset)(struct vh_session *s);
	/*
	 * Control: the device configuration space, VHOST_USER_MAX_CONFIG_SIZE bytes (zeroed by the
	 * caller; what the device does not define reads as zero). Optional: without it GET_CONFIG
	 * is refused.
	 */
	void (*get_config)(const struct vh_session *s, uint8_t *cfg);
	/*
	 * Control: GET_CONFIG answered from get_config(); the front-end may keep that copy and
	 * never ask again, even across a reconnect (QEMU does). Optional.
	 */
	void (*config_read)(struct vh_session *s);
	/* Control: SET_CONFIG of [offset, offset + size). 0 or -EINVAL. Optional (refused). */
	int (*set_config)(struct vh_session *s, uint32_t offset, const uint8_t *data,
	                  uint32_t size);

	/* Bytes per request slot: the device's request type, which starts with struct vh_req. */
	size_t req_size;
	/* Reactor: acquire per-queue resources (vq->dq) at start. 0 or -errno (queue broken). */
	int (*queue_start)(struct vh_vq *vq);
	/* Reactor: release them; runs once every request of the queue has been answered. */
	void (*queue_stop)(struct vh_vq *vq);
	/*
	 * Reactor: a request was fetched (or resubmitted after a restart): process it, and answer
	 * it exactly once with vh_vq_push_used() (now or later), or vh_vq_drop() + vh_vq_broken()
	 * for a malformed chain.
	 */
	void (*handle)(struct vh_vq *vq, struct vh_req *req);
	/*
	 * Reactor: try a request the device put on the retry list (vh_vq_defer_retry()) again.
	 * Returns -EAGAIN to stay first on the list, 0 once the device has taken it over.
	 */
	int (*resubmit)(struct vh_vq *vq, struct vh_req *req);
	/*
	 * Reactor, optional: the poll of a no_fetch queue (vring.h), every time the queue is
	 * polled while it runs. Take buffers with vh_vq_fetch_one() if there is something to put
	 * in them. Returns true while something still waits for a buffer: only then does a buffer
	 * the driver adds keep the reactor awake (and a kick wake it).
	 */
	bool (*nofetch_poll)(struct vh_vq *vq);
	/*
	 * Reactor, optional: the used entries pushed so far are now visible to the driver (once
	 * per poll that completed something). For state that must change only after the guest
	 * can see a completion, e.g. virtio-scsi's task management waiting for commands.
	 */
	void (*published)(struct vh_vq *vq);

	/*
	 * Control, live upgrade (upgrade.c): the device's per-session state as JSON (new
	 * reference), and the same given back to a new process's session, after its features were
	 * set (0 or -EINVAL). Optional: without them the state is what session_init and
	 * features_set make.
	 */
	json_t *(*session_save)(const struct vh_session *s);
	int (*session_load)(struct vh_session *s, const json_t *state);

	/* Control: a bdev changed size; tell the front-ends of @c if it uses it. Returns how many.
	 */
	int (*bdev_resized)(struct vh_vhost_ctrlr *c, struct vh_bdev *b);
	/* Control: vhost_get_controllers' backend_specific object and save_config's entry. */
	json_t *(*info_json)(const struct vh_vhost_ctrlr *c);
	json_t *(*config_json)(const struct vh_vhost_ctrlr *c);
	/* Control: the controller is being freed: release the device state (c->dev). */
	void (*ctrlr_free)(struct vh_vhost_ctrlr *c);
};

extern const struct vh_dev_ops vh_blk_ops;
/* virtio-scsi (scsi.c): queue 0 control, 1 event (no_fetch), 2.. requests. */
extern const struct vh_dev_ops vh_scsi_ops;

#endif
