/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to src/vfu: the controller object of vfu.c and what upgrade.c (the live upgrade's
 * hand-over of vfio-user sessions) needs of it. Control thread only.
 */
#ifndef VH_VFU_VFU_INTERNAL_H
#define VH_VFU_VFU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/msg.h"
#include "vfu/nvme.h"
#include "vfu/session.h"

struct vh_vfu_ctrlr {
	struct vfu_nvme n; /* first: the device pointer the session gets */
	char sock_path[108];
	uint64_t cpumask;
	int listen_fd;
	struct vh_evsource *listen_src;
	bool deleting;
	bool freeing;
	uint64_t stat_connections;
	struct vfu_session *dead; /* a closed session waiting to be freed */
	struct vh_msg_node session_free_node;
	struct vh_vfu_ctrlr *next;

	/* live upgrade (upgrade.c) */
	bool up_pausing;     /* old process: the freeze's pause operation runs */
	bool up_paused;      /* old process: its queues are paused for the hand-over */
	bool up_unwatched;   /* old process: the connection is not read while frozen */
	bool up_adopted;     /* new process: the session came from the old worker */
	uint64_t up_stop_ns; /* when the freeze paused its queues (CLOCK_MONOTONIC) */
};

/* session->on_closed of a controller's sessions (frees it from a message). */
void vfu_ctrlr_session_closed(struct vfu_session *s);

/*
 * Serve the doorbell page @fd (the old worker's, which the client has mapped) instead of our
 * own: checked (a sealed memfd of VFU_NVME_BAR0_SIZE bytes) and mapped; @fd is taken on
 * success. Returns 0, -EINVAL or -errno from mmap.
 */
int vfu_doorbells_adopt(struct vfu_nvme *n, int fd);

/* The limit on the guest memory one session maps (vh_vfu_init). */
uint64_t vfu_max_guest_mem(void);

/* An adopted controller keeps the ID its guest read: later controllers get other ones. */
void vfu_cntlid_taken(uint16_t cntlid);

#endif
