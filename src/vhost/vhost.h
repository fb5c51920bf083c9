/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user controllers: the public API used by the RPC layer and main().
 *
 * Rules:
 * - Every function here runs on the control thread.
 * - A controller owns one listening UNIX socket <socket_dir>/<name>, mode 0600 (group as
 *   configured), and serves one front-end at a time. It never accepts a connection it is not
 *   ready to serve: while a front-end is connected the listening socket is not polled, so a
 *   second front-end waits in the backlog.
 * - A controller claims its bdev for its whole life.
 */
#ifndef VH_VHOST_VHOST_H
#define VH_VHOST_VHOST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "bdev/bdev.h"

#define VH_VHOST_MAX_QUEUES     64
#define VH_VHOST_MAX_SESSIONS   4 /* front-ends per controller at once (live migration: 2) */
#define VH_VHOST_DEFAULT_QUEUES 32
/* Targets of a scsi controller: numbers 0..255, LUN 0 each (docs/security.md, "Limits"). */
#define VH_VHOST_SCSI_MAX_TARGETS 256
/* Guest memory one session may map (sum of its regions' mappings): 1 TiB. */
#define VH_VHOST_DEFAULT_MAX_GUEST_MEM (1ull << 40)

struct vh_vhost_ctrlr;

struct vh_vhost_blk_opts {
	const char *name; /* controller name; the socket is <socket_dir>/<name> */
	const char *bdev_name;
	uint64_t cpumask; /* reactors serving its queues; 0 = all */
	bool readonly;
	uint16_t num_queues; /* max queues advertised (GET_QUEUE_NUM); 0 = default */
	bool packed_ring;    /* offer VIRTIO_F_RING_PACKED (docs/design.md: opt-in) */
	/*
	 * Require crash recovery of packed rings: a front-end that cannot give an inflight region
	 * in the packed layout gets its ring start refused instead of an untracked ring. Packed
	 * rings are tracked whenever the region allows, with or without it. Needs packed_ring.
	 */
	bool packed_ring_recovery;
};

struct vh_vhost_scsi_opts {
	const char *name; /* controller name; the socket is <socket_dir>/<name> */
	uint64_t cpumask; /* reactors serving its queues; 0 = all */
	/* Queues in all (control + event + request queues, >= 3); 0 = VH_VHOST_DEFAULT_QUEUES. */
	uint16_t num_queues;
};

/*
 * Configure where sockets go (must exist) and their group (-1 = unchanged). Call once before
 * creating controllers. Returns 0 or -errno.
 */
int vh_vhost_init(const char *socket_dir, gid_t sock_group);

/*
 * Create a vhost-user-blk controller and start listening. Returns 0, or -EEXIST (name taken),
 * -ENODEV (no such bdev), -EBUSY (bdev claimed), -EINVAL (bad name/cpumask/options, or
 * packed_ring_recovery without packed_ring),
 * -ENAMETOOLONG (socket path too long), or another -errno from socket setup.
 */
int vh_vhost_blk_create(const struct vh_vhost_blk_opts *opts);

/*
 * Create a vhost-user-scsi controller with no targets and start listening. Returns 0, or
 * -EEXIST (name taken), -EINVAL (bad name, cpumask or queue count), -ENAMETOOLONG, or another
 * -errno from socket setup.
 */
int vh_vhost_scsi_create(const struct vh_vhost_scsi_opts *opts);

/*
 * Attach bdev @bdev_name (claimed for as long as it is attached) as LUN 0 of target @target
 * (0..VH_VHOST_SCSI_MAX_TARGETS-1, or -1 for the lowest free number) of scsi controller @ctrlr, and
 * tell a connected guest (TRANSPORT_RESET/RESCAN event). Returns the target number, or
 * -ENODEV (no such controller), -ENOTTY (not a scsi controller), -EINVAL (bad number),
 * -EEXIST (number in use), -EAGAIN (number still being removed: its bdev waits for I/O in
 * flight), -EBUSY (bdev claimed), -ENOSPC (no free number), -ENOENT (no such bdev), -ENOMEM.
 */
int vh_vhost_scsi_add_target(const char *ctrlr, int target, const char *bdev_name);

/*
 * Detach target @target: new commands to it fail at once (BAD_TARGET), the guest is told
 * (TRANSPORT_RESET/REMOVED event), and the bdev is released once the commands in flight have
 * completed, in the background (vhost_get_controllers shows the target as "removing" until
 * then). Returns 0, or -ENODEV (no such controller), -ENOTTY (not a scsi controller), -EINVAL
 * (bad number), -ENOENT (no target there), -EBUSY (already being removed).
 */
int vh_vhost_scsi_remove_target(const char *ctrlr, unsigned target);

/*
 * Delete a controller: stop listening, unlink the socket, stop the session's rings (waiting for
 * in-flight I/O in the background), close the connection, release the bdev.
 * Returns 0 or -ENODEV.
 */
int vh_vhost_delete(const char *name);

struct vh_vhost_ctrlr *vh_vhost_find(const char *name);
/* Call fn per controller in creation order; stops early if fn returns non-zero (returned). */
int vh_vhost_foreach(int (*fn)(struct vh_vhost_ctrlr *c, void *arg), void *arg);

const char *vh_vhost_ctrlr_name(const struct vh_vhost_ctrlr *c);
/* The controller's device type: "blk" or "scsi". */
const char *vh_vhost_ctrlr_type(const struct vh_vhost_ctrlr *c);

/* vhost_get_controllers entry (SPDK's shape). New reference. */
json_t *vh_vhost_ctrlr_info_json(const struct vh_vhost_ctrlr *c);
/*
 * save_config entry: {"method": "vhost_create_blk_controller", "params": {...}}, or for a scsi
 * controller an array of entries (vhost_create_scsi_controller, then one
 * vhost_scsi_controller_add_target per target). New reference.
 */
json_t *vh_vhost_ctrlr_config_json(const struct vh_vhost_ctrlr *c);

/*
 * The bdev under a controller changed size: update the config space and tell the connected
 * front-end (CONFIG_CHANGE_MSG on the back-end channel). Returns the number of controllers told.
 */
int vh_vhost_bdev_resized(struct vh_bdev *b);

/*
 * Shutdown: stop listening everywhere, quiesce every session (in-flight I/O completes), close
 * them, then call done(arg) on the control thread.
 */
void vh_vhost_shutdown(void (*done)(void *arg), void *arg);

/*
 * Limit on the guest memory one session maps (--max-guest-mem); a region or table over it is
 * refused. Applies to regions mapped afterwards. Default VH_VHOST_DEFAULT_MAX_GUEST_MEM.
 */
void vh_vhost_set_max_guest_mem(uint64_t bytes);
uint64_t vh_vhost_max_guest_mem(void);

/*
 * After core/sigbus.h reported a fault: close every session whose guest memory faulted
 * (the mappings already hold harmless zero pages). Cheap when none did.
 */
void vh_vhost_close_faulted(void);

#endif
