/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inflight I/O tracking regions (vhost-user.rst, "Inflight I/O tracking"), in the spec's split
 * and packed layouts: the region we create for a front-end, map again after a restart, and
 * recover from. Control thread, except the per-descriptor updates the reactors make (vring.c
 * for split rings, vring_packed.c for packed ones).
 */
#ifndef VH_VHOST_INFLIGHT_H
#define VH_VHOST_INFLIGHT_H

#include <stdbool.h>
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
	bool packed;  /* the regions have the packed layout (struct inflight_packed_queue) */
};

/* Bytes per queue in the split layout: header + one entry per descriptor, cache-line aligned. */
uint64_t vh_inflight_queue_stride(uint16_t queue_size);
/* Bytes per queue in the split (@packed false) or the packed layout. */
uint64_t vh_inflight_stride(uint16_t queue_size, bool packed);
/*
 * GET_INFLIGHT_FD: a sealed, zeroed memfd for @nq queues of @qs, in the packed layout if
 * @packed (the front-end negotiated VIRTIO_F_RING_PACKED first, as QEMU >= 5.2 does). Returns the
 * fd or -errno.
 */
int vh_inflight_create(uint16_t nq, uint16_t qs, bool packed, uint64_t *size);
/*
 * SET_INFLIGHT_FD: validate and map; keeps a duplicate of @fd (not closed). The region must have
 * the layout of the rings (@packed), or, for packed rings, the split layout of a front-end that
 * asked for it before negotiating the features (ifl->packed then says false, and a packed ring
 * cannot use it). 0 or -errno.
 */
int vh_inflight_map(struct vh_inflight *ifl, const struct vhost_user_inflight *w, int fd,
                    bool packed);
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

/* One request a previous instance left in flight on a packed ring. */
struct vh_inflight_resub {
	uint64_t counter; /* fetch order */
	uint32_t off;     /* its descriptors: descs[off .. off + num) */
	uint16_t num;     /* ring descriptors of its chain */
	uint16_t id;      /* buffer id (< size) */
	uint16_t entry;   /* its head entry in the region */
	uint16_t last;    /* its last entry in the region */
};

/* Where a packed ring resumes, from its region (positions: vring_packed.h's encoding). */
struct vh_inflight_packed_state {
	uint16_t avail;     /* next descriptor to fetch */
	uint16_t used;      /* next used descriptor to write */
	uint16_t free_head; /* first free entry (== size: none) */
	uint64_t counter;   /* highest counter in use */
	uint32_t nresub;    /* requests to resubmit, oldest first in resub[] */
	uint32_t ndesc;     /* their descriptors in descs[] */
};

/*
 * Before a packed ring of @size entries starts: validate its region (room for @cap entries) and
 * recover. A fresh region (version 0) is initialised to start at position @start (SET_VRING_BASE's
 * avail half). Otherwise an update the previous instance left half-done is finished or rolled
 * back, judged by the descriptor @ring holds at the used position (the spec's recipe), every entry
 * on the free list is cleared, and the chains still in flight are copied out: resub[] (capacity
 * @max) and descs[] (capacity @size) get them, next[] (@size entries) a private copy of the free
 * list's links. Every field of the region is read once. Returns 0, or -EINVAL for a region that
 * cannot be trusted. Control thread, ring stopped.
 */
int vh_inflight_packed_recover(struct inflight_packed_queue *q, uint16_t size, uint16_t cap,
                               const struct pvirtq_desc *ring, uint16_t start, uint16_t *next,
                               struct vh_inflight_resub *resub, uint32_t max,
                               struct pvirtq_desc *descs, struct vh_inflight_packed_state *st);

#endif
