/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inflight I/O tracking regions for split rings (vhost-user.rst, "Inflight I/O tracking"): the
 * region we create for a front-end, map again after a restart, and recover from. Control thread,
 * except the per-descriptor updates the reactors make (vring.c).
 */
#ifndef VH_VHOST_INFLIGHT_H
#define VH_VHOST_INFLIGHT_H

#include <stdint.h>

#include "vhost/protocol.h"

struct vh_inflight {
	void *map; /* whole mapping */
	uint64_t map_size;
	uint8_t *base; /* map + mmap_offset */
	uint16_t num_queues;
	uint16_t queue_size;
	int fd; /* our duplicate of the region's fd (valid while mapped) */
	struct vhost_user_inflight
	        wire; /* what SET_INFLIGHT_FD said (a live upgrade maps it again) */
};

/* Bytes per queue in our layout: header + one entry per descriptor, cache-line aligned. */
uint64_t vh_inflight_queue_stride(uint16_t queue_size);
/* GET_INFLIGHT_FD: a sealed, zeroed memfd for @nq queues of @qs. Returns the fd or -errno. */
int vh_inflight_create(uint16_t nq, uint16_t qs, uint64_t *size);
/* SET_INFLIGHT_FD: validate and map; keeps a duplicate of @fd (not closed). 0 or -errno. */
int vh_inflight_map(struct vh_inflight *ifl, const struct vhost_user_inflight *w, int fd);
void vh_inflight_unmap(struct vh_inflight *ifl);
/*
 * Before a queue of @size entries starts: validate its region (room for @cap entries) and
 * recover. Fills heads[] (capacity @max) with the requests to resubmit, oldest first, sets
 * *count, *next_avail (= used->idx + count) and *counter (highest counter seen). Returns 0, or
 * -EINVAL for a region that cannot be trusted.
 */
int vh_inflight_recover(struct inflight_split_queue *q, uint16_t size, uint16_t cap,
                        uint16_t used_idx, uint16_t *heads, uint32_t max, uint32_t *count,
                        uint16_t *next_avail, uint64_t *counter);

#endif
