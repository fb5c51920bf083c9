/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Driver side of a packed virtqueue (VIRTIO 1.2 §2.8), as Linux's virtio_ring drives one: buffer
 * ids from a free list, descriptors written in ring order with the first one's flags stored last
 * (release; vh_fe_vq_flush() stores them, so a queued request is not visible before, as on a
 * split ring), used descriptors reaped in order with the ring advanced by each buffer's
 * descriptor count, event suppression both ways. fe_vq.c hands a queue here when
 * VIRTIO_F_RING_PACKED was negotiated; the ring uses the same guest memory as the split layout (the
 * descriptor table is the descriptor ring, the first 4 bytes of the avail and used areas the driver
 * and device event suppression structures).
 *
 * Positions are free-running 16-bit counts, as in the back-end (src/vhost/vring_packed.h): count
 * p is index p & (size - 1) with wrap counter !(p & size), so 0 is index 0 with wrap 1.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fe_internal.h"

#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED  (1u << VRING_PACKED_DESC_F_USED)

static inline uint16_t
p_idx(const struct vh_fe_vq *vq, uint16_t pos)
{
	return (uint16_t)(pos & (vq->size - 1));
}

static inline bool
p_wrap(const struct vh_fe_vq *vq, uint16_t pos)
{
	return (pos & vq->size) == 0;
}

static inline struct vring_packed_desc *
p_ring(struct vh_fe_vq *vq)
{
	return (struct vring_packed_desc *)(void *)vq->desc;
}

static inline uint32_t *
p_driver_word(struct vh_fe_vq *vq)
{
	return (uint32_t *)(void *)vq->avail;
}

static inline const uint32_t *
p_device_word(const struct vh_fe_vq *vq)
{
	return (const uint32_t *)(const void *)vq->used;
}

/* The 16-bit event form of a position: bits 0-14 the index, bit 15 the wrap counter. */
static inline uint16_t
p_off_wrap(const struct vh_fe_vq *vq, uint16_t pos)
{
	return (uint16_t)(p_idx(vq, pos) | (p_wrap(vq, pos) ? 0x8000u : 0));
}

static inline uint16_t
p_pos(const struct vh_fe_vq *vq, uint16_t off_wrap)
{
	return (uint16_t)((off_wrap & 0x7fff) + ((off_wrap & 0x8000) ? 0 : vq->size));
}

void
fe_vq_packed_reset(struct vh_fe_vq *vq)
{
	uint16_t i;

	/* Buffer ids: a free list through vq->next[] (free_head, size = none). */
	for (i = 0; i < vq->size; i++) {
		vq->next[i] = (uint16_t)(i + 1);
	}
	vq->free_head = 0;
	vq->num_free = vq->size;
	vq->avail_idx = vq->avail_pub = vq->used_seen = 0;
	vq->p_nhold = 0;
}

void
fe_vq_packed_irq(struct vh_fe_vq *vq, bool want_irq)
{
	uint32_t v;

	if (!want_irq) {
		v = (uint32_t)VRING_PACKED_EVENT_FLAG_DISABLE << 16;
	} else if (vq->event_idx) {
		/* A call when the device uses the descriptor we look at next. */
		v = p_off_wrap(vq, vq->used_seen) | (uint32_t)VRING_PACKED_EVENT_FLAG_DESC << 16;
	} else {
		v = (uint32_t)VRING_PACKED_EVENT_FLAG_ENABLE << 16;
	}
	__atomic_store_n(p_driver_word(vq), htole32(v), __ATOMIC_RELAXED);
}

/* Descriptor flags for ring position @pos: AVAIL = the wrap counter, USED = its inverse. */
static inline uint16_t
avail_flags(const struct vh_fe_vq *vq, uint16_t pos, uint16_t flags)
{
	return (uint16_t)(flags | (p_wrap(vq, pos) ? F_AVAIL : F_USED));
}

int
fe_vq_packed_queue(struct vh_fe_vq *vq, struct vh_fe_req *req)
{
	struct vring_desc d[VH_FE_MAX_CHAIN];
	struct vring_packed_desc *ring = p_ring(vq);
	unsigned int max, i;
	uint16_t id, first_flags = 0, pos = vq->avail_idx;
	bool indirect;
	int n;

	indirect = (req->layout & VH_FE_L_INDIRECT) && vq->indirect;
	if (vq->num_free == 0 || vq->free_head >= vq->size) {
		return -ENOSPC;
	}
	/* The buffer id names the request's header/status slot. */
	id = vq->free_head;
	req->head = id;
	max = indirect ? vq->max_chain : vq->size;
	if (max > VH_FE_MAX_CHAIN) {
		max = VH_FE_MAX_CHAIN;
	}
	n = fe_build_chain(vq, req, d, max);
	if (n < 0) {
		return n;
	}
	if (indirect) {
		struct vring_packed_desc *t =
		        (struct vring_packed_desc *)(void *)(vq->ind + (size_t)id * vq->max_chain);

		/* §2.8.10: an indirect table's entries carry WRITE only; they are walked in order.
		 */
		for (i = 0; i < (unsigned int)n; i++) {
			t[i].addr = d[i].addr;
			t[i].len = d[i].len;
			t[i].id = 0;
			t[i].flags = htole16(le16toh(d[i].flags) & VRING_DESC_F_WRITE);
		}
		ring[p_idx(vq, pos)].addr = htole64(vq->ind_gpa + 16ull * id * vq->max_chain);
		ring[p_idx(vq, pos)].len = htole32(16u * (uint32_t)n);
		ring[p_idx(vq, pos)].id = htole16(id);
		first_flags = avail_flags(vq, pos, VRING_DESC_F_INDIRECT);
		req->ndesc = 1;
	} else {
		if ((unsigned int)n > vq->num_free) {
			return -ENOSPC;
		}
		for (i = 0; i < (unsigned int)n; i++) {
			uint16_t p = (uint16_t)(pos + i);
			struct vring_packed_desc *r = &ring[p_idx(vq, p)];
			uint16_t f = (uint16_t)(le16toh(d[i].flags) & VRING_DESC_F_WRITE);

			if (i + 1 < (unsigned int)n) {
				f |= VRING_DESC_F_NEXT;
			}
			r->addr = d[i].addr;
			r->len = d[i].len;
			r->id = htole16(id); /* Linux puts it in every one; §2.8.6 reads the last */
			f = avail_flags(vq, p, f);
			if (i == 0) {
				first_flags = f;
			} else {
				r->flags = htole16(f);
			}
		}
		req->ndesc = (uint16_t)n;
	}
	vq->free_head = vq->next[id];
	vq->num_free -= req->ndesc;
	vq->inflight[id] = req;
	vq->ninflight++;
	req->inflight = true;
	req->status = 0xff;
	req->used_len = 0;
	vq->avail_idx = (uint16_t)(pos + req->ndesc);
	vq->st.submitted++;
	/* The first descriptor's flags make the list available: at the next flush. */
	vq->p_hold_idx[vq->p_nhold] = p_idx(vq, pos);
	vq->p_hold_flags[vq->p_nhold++] = first_flags;
	if (vq->ring.kick_per_request) {
		int rc = fe_vq_packed_flush(vq);

		return rc < 0 ? rc : 0;
	}
	return 0;
}

int
fe_vq_packed_flush(struct vh_fe_vq *vq)
{
	uint16_t old = vq->avail_pub, cur = vq->avail_idx, flags, ev_pos;
	uint32_t ev, m = 2u * vq->size - 1;
	uint64_t one = 1;
	bool kick;

	if (old == cur) {
		return 0;
	}
	/* Release: each whole list before the first descriptor's flags, lists in ring order. */
	for (unsigned int i = 0; i < vq->p_nhold; i++) {
		__atomic_store_n(&p_ring(vq)[vq->p_hold_idx[i]].flags, htole16(vq->p_hold_flags[i]),
		                 __ATOMIC_RELEASE);
	}
	vq->p_nhold = 0;
	vq->avail_pub = cur;
	/* The descriptors' flags before the device's suppression (store-load, lost-kick race). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ev = le32toh(__atomic_load_n(p_device_word(vq), __ATOMIC_RELAXED));
	flags = (uint16_t)(ev >> 16) & 3;
	if (flags == VRING_PACKED_EVENT_FLAG_DESC && vq->event_idx) {
		/* Linux's virtqueue_kick_prepare_packed(): the event position in [old, cur). */
		ev_pos = p_pos(vq, (uint16_t)ev);
		kick = ((uint16_t)(cur - ev_pos - 1) & m) < ((uint16_t)(cur - old) & m);
	} else {
		kick = flags != VRING_PACKED_EVENT_FLAG_DISABLE;
	}
	if (!kick && !vq->always_kick) {
		return 0;
	}
	if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one)) {
		return -errno;
	}
	vq->st.kicks++;
	return 1;
}

/* The used descriptor at @pos, if the device wrote one there: AVAIL == USED == wrap. */
static bool
used_at(struct vh_fe_vq *vq, uint16_t pos, uint16_t *id, uint32_t *len)
{
	struct vring_packed_desc *r = &p_ring(vq)[p_idx(vq, pos)];
	/* Acquire: id and len are read only after the flags that publish them. */
	uint16_t f = le16toh(__atomic_load_n(&r->flags, __ATOMIC_ACQUIRE));
	uint16_t want = p_wrap(vq, pos) ? (F_AVAIL | F_USED) : 0;

	if ((f & (F_AVAIL | F_USED)) != want) {
		return false;
	}
	if (id) {
		*id = le16toh(r->id);
		*len = le32toh(r->len);
	}
	return true;
}

int
fe_vq_packed_poll(struct vh_fe_vq *vq, struct vh_fe_req **done, unsigned int max)
{
	unsigned int n = 0;
	uint16_t id;
	uint32_t len;

	while ((!done || n < max) && vq->ninflight > 0 && used_at(vq, vq->used_seen, &id, &len)) {
		struct vh_fe_req *req;

		if (id >= vq->size || !vq->inflight[id]) {
			/* We cannot know how far to skip: everything after is suspect. */
			vq->st.bad_used++;
			return -EPROTO;
		}
		req = vq->inflight[id];
		vq->inflight[id] = NULL;
		vq->ninflight--;
		vq->used_seen = (uint16_t)(vq->used_seen + req->ndesc);
		vq->num_free += req->ndesc;
		vq->next[id] = vq->free_head;
		vq->free_head = id;
		req->used_len = len;
		req->status = req->status_ptr != NULL ? *req->status_ptr : 0xff;
		req->inflight = false;
		vq->st.completed++;
		if (done) {
			done[n] = req;
		}
		n++;
		if (req->cb) {
			req->cb(req, req->cb_arg);
		}
	}
	/* A used descriptor while nothing is in flight: a duplicate or an invented one. */
	if (vq->ninflight == 0 && used_at(vq, vq->used_seen, &id, &len)) {
		vq->st.bad_used++;
		return -EPROTO;
	}
	if (vq->mode == VH_FE_INTERRUPT && vq->event_idx) {
		fe_vq_packed_irq(vq, true); /* DESC follows what we reaped */
	}
	return (int)n;
}

int
fe_vq_packed_arm(struct vh_fe_vq *vq)
{
	if (vq->mode == VH_FE_INTERRUPT) {
		fe_vq_packed_irq(vq, true);
	}
	/* Re-check after arming: a completion between poll and arming raised no call. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vq->ninflight > 0 && used_at(vq, vq->used_seen, NULL, NULL);
}

unsigned int
fe_vq_packed_pending(struct vh_fe_vq *vq)
{
	uint16_t pos = vq->used_seen, id;
	uint32_t len;
	unsigned int done = 0;

	/* Walk the used descriptors not reaped yet (in flight ones only, in ring order). */
	while (done < vq->ninflight && used_at(vq, pos, &id, &len) && id < vq->size &&
	       vq->inflight[id]) {
		pos = (uint16_t)(pos + vq->inflight[id]->ndesc);
		done++;
	}
	return vq->ninflight - done;
}

struct vring_packed_desc *
vh_fe_vq_packed_ring(struct vh_fe_vq *vq)
{
	return p_ring(vq);
}

struct vring_packed_desc_event *
vh_fe_vq_driver_event(struct vh_fe_vq *vq)
{
	return (struct vring_packed_desc_event *)(void *)vq->avail;
}

struct vring_packed_desc_event *
vh_fe_vq_device_event(struct vh_fe_vq *vq)
{
	return (struct vring_packed_desc_event *)(void *)vq->used;
}

uint16_t
vh_fe_vq_next_avail(const struct vh_fe_vq *vq)
{
	return vq->avail_idx;
}

uint16_t
vh_fe_vq_next_used(const struct vh_fe_vq *vq)
{
	return vq->used_seen;
}
