/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueues (VIRTIO 1.2 §2.8), the half of the virtqueue code vring.c hands a queue to
 * when VIRTIO_F_RING_PACKED was negotiated. Private to src/vhost: vring.c dispatches to the
 * functions below, and they use a few of vring.c's helpers in return. Devices see no difference:
 * they get struct vh_req slots and answer them with vh_vq_push_used() (device.h).
 *
 * Positions. A packed ring position is a descriptor index and a one-bit wrap counter (both the
 * driver's and the device's start at 1 and flip at every lap). vring.c keeps vq->last_avail and
 * vq->last_used as free-running 16-bit counts for both layouts; for a packed ring of size n
 * (a power of two, at most 2^15) the count p stands for index p & (n - 1) and wrap counter
 * !(p & n): a lap adds n and flips the bit, and 2^16 is a multiple of 2n, so the encoding
 * survives the 16-bit wrap. vh_pk_pos() converts back.
 *
 * Ownership: as vring.h. vh_vq_packed_prepare()/free() run on the control thread while the queue
 * is stopped; everything else on the queue's reactor while it is started.
 */
#ifndef VH_VHOST_VRING_PACKED_H
#define VH_VHOST_VRING_PACKED_H

#include <stdbool.h>
#include <stdint.h>

#include "vhost/inflight.h"
#include "vhost/protocol.h"
#include "vhost/vring.h"

/* SET_VRING_BASE/GET_VRING_BASE of a fresh packed ring: both wrap counters 1, indices 0. */
#define VH_PK_FRESH_BASE 0x80008000u

static inline uint16_t
vh_pk_pos(uint16_t idx, bool wrap, uint32_t size)
{
	return (uint16_t)(idx + (wrap ? 0 : size));
}

static inline uint16_t
vh_pk_idx(uint16_t pos, uint32_t size)
{
	return (uint16_t)(pos & (size - 1));
}

static inline bool
vh_pk_wrap(uint16_t pos, uint32_t size)
{
	return (pos & size) == 0;
}

/* A position in SET_VRING_BASE's 16-bit half: bits 0-14 the index, bit 15 the wrap counter. */
static inline uint16_t
vh_pk_base16(uint16_t pos, uint32_t size)
{
	return (uint16_t)(vh_pk_idx(pos, size) | (vh_pk_wrap(pos, size) ? 0x8000u : 0));
}

/*
 * The inflight region's header word at offset 16: used_idx, old_used_idx, used_wrap_counter,
 * old_used_wrap_counter (and two bytes of padding), written with one store (inflight.c). Its
 * halves, from a position's index and wrap counter: the new position's, and the old one's.
 */
static inline uint64_t
vh_pk_used_new(uint64_t idx, uint64_t wrap)
{
	return idx | wrap << 32;
}

static inline uint64_t
vh_pk_used_old(uint64_t idx, uint64_t wrap)
{
	return idx << 16 | wrap << 40;
}

static inline uint64_t
vh_pk_used_word(uint16_t pos, uint16_t old, uint32_t size)
{
	return vh_pk_used_new(vh_pk_idx(pos, size), vh_pk_wrap(pos, size)) |
	       vh_pk_used_old(vh_pk_idx(old, size), vh_pk_wrap(old, size));
}

static inline uint64_t *
vh_pk_used_word_ptr(struct inflight_packed_queue *q)
{
	return (uint64_t *)(void *)&q->used_idx;
}

/* A packed queue's state beyond vring.h's (vq->pk, allocated by vh_vq_packed_prepare()). */
struct vh_vq_packed {
	struct pvirtq_desc *ring;                   /* the descriptor ring in guest memory */
	const struct pvirtq_event_suppress *driver; /* the driver's: our used notifications */
	struct pvirtq_event_suppress *device;       /* ours: the driver's kicks */
	/*
	 * The chain being handed to the device, walked by vh_vq_walk_chain() from ops->handle():
	 * the fetch copies each descriptor out of the ring (every field read once, in two loads)
	 * into chain_buf, which has room for a whole ring, and the walk reads only that copy (or,
	 * at start, a chain the inflight region recorded). The descriptors fetched and not used
	 * yet are not counted: they are the distance from vq->last_used to vq->last_avail.
	 */
	struct pvirtq_desc *chain_buf;
	const struct pvirtq_desc *chain;
	uint16_t chain_n;
	uint16_t chain_id;
	bool chain_valid;
	/* Inflight tracking (NULL without a packed-layout region). */
	struct inflight_packed_queue *ifl;
	uint16_t *ifl_next; /* private copy of the free list's links (size entries) */
	uint16_t ifl_free;  /* first free entry, == size when none */
	uint64_t ifl_counter;
	/* What a previous instance left in flight, resubmitted at start (then freed). */
	struct vh_inflight_resub *resub;
	struct pvirtq_desc *resub_descs;
	uint32_t nresub;
};

/* ---- vring_packed.c, for vring.c ---- */

/* Control: translate the ring, allocate vq->pk, set the positions and recover. 0 or -errno. */
int vh_vq_packed_prepare(struct vh_vq *vq);
/* Control: free vq->pk (queue stopped or never started). */
void vh_vq_packed_free(struct vh_vq *vq);
/* Reactor, at start: notifications off, resubmit what a previous instance left in flight. */
void vh_vq_packed_start(struct vh_vq *vq);
/* Reactor: fetch and hand to the device up to VH_VQ_BATCH chains (bounded by free slots). */
void vh_vq_packed_fetch(struct vh_vq *vq);
/* Reactor: vh_vq_fetch_one() of a packed ring (running, not stopping, checked by the caller). */
struct vh_req *vh_vq_packed_fetch_one(struct vh_vq *vq);
/*
 * Reactor: write @req's used descriptor, at once (with an inflight region, committed there before
 * the next one is written: vring_packed.c, ifl_used_begin()). The call waits for the flush.
 */
void vh_vq_packed_push_used(struct vh_vq *vq, struct vh_req *req);
/* Reactor, deferred flush: call the driver if its event suppression asks for it. */
void vh_vq_packed_signal(struct vh_vq *vq);
/* Reactor, before sleeping: ask the driver for kicks. */
void vh_vq_packed_enable_kicks(struct vh_vq *vq);
/* Reactor, polling again: no kicks. */
void vh_vq_packed_disable_kicks(struct vh_vq *vq);
/* Reactor: whether the next descriptor is available (one read of its flags). */
bool vh_vq_packed_avail(struct vh_vq *vq);
/* Reactor: the ring's position (vh_vq_position()'s format), taken when it stops. */
uint32_t vh_vq_packed_position(const struct vh_vq *vq);

/* ---- vring.c, for vring_packed.c ---- */

/* Write the call eventfd (never blocking; a misbehaving fd breaks the queue). */
void vh_vq_call(struct vh_vq *vq);
/*
 * A descriptor's indirect table of @len bytes at @gpa, in place when contiguous and aligned in
 * our mapping, else copied into vq->scratch (up to VH_VQ_SCRATCH_DESC entries). NULL if neither.
 */
const void *vh_vq_indirect_table(struct vh_vq *vq, const struct vh_mem *mem, uint64_t gpa,
                                 uint32_t len);

#endif
