/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueues (VIRTIO 1.2 §2.8): fetching chains, walking them, writing used descriptors,
 * event suppression both ways, and inflight tracking in the spec's packed layout. vring.c owns
 * the queue's life cycle (start/stop handshakes, request slots, the poller) and calls in here
 * when VIRTIO_F_RING_PACKED was negotiated (vring_packed.h).
 *
 * Threat model: as vring.c. The guest driver owns the descriptor ring and the driver event
 * suppression structure and may rewrite them while we read. Each field of a chain's descriptors
 * is read once: flags and the buffer id when the chain is fetched, addr and len when the device
 * walks it during the hand-over, translated into iovecs as they are read (or, when the inflight
 * region must record them first, at fetch into a private copy that the walk reads). The ring is
 * overwritten by used descriptors while requests run, and a used descriptor may land on a chain
 * still in flight (completions are out of order): nothing is read from the ring after the
 * hand-over (vring_packed.h: chain). Every buffer id is checked against
 * the ring size before it indexes anything (SPDK issue #3860 was a guest-controlled id used as
 * an array index) and against the ids in flight; a chain is at most the ring's size, must be
 * available in every descriptor, and may not make more descriptors outstanding than the ring
 * holds; indirect tables are bounded by their own length, allowed only alone, never nested. A
 * violation breaks the queue and closes the session. The inflight region is written here and
 * only read back by the next instance (inflight.c), which trusts none of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "vhost/device.h"
#include "vhost/inflight.h"
#include "vhost/mem.h"
#include "vhost/session.h"
#include "vhost/vring.h"
#include "vhost/vring_packed.h"

#define AVAIL_USED (VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED)

/* ---- request slots and buffer ids (vring.c's split-ring counterparts, inlined here) ---- */

static inline bool
id_test_and_set(struct vh_vq *vq, uint16_t id)
{
	uint64_t bit = 1ull << (id & 63);
	uint64_t *w = &vq->head_busy[id >> 6];

	if (*w & bit) {
		return true;
	}
	*w |= bit;
	return false;
}

static inline void
id_clear(struct vh_vq *vq, uint16_t id)
{
	vq->head_busy[id >> 6] &= ~(1ull << (id & 63));
}

static inline struct vh_req *
slot_get(struct vh_vq *vq, uint16_t id, uint16_t ndesc)
{
	struct vh_req *req = vh_vq_req(vq, vq->free_slots[--vq->nfree]);

	req->head = id;
	req->ndesc = ndesc;
	req->inflight = true;
	VH_STAT_ADD(vq->inflight, 1);
	VH_STAT_ADD(vq->stat_requests, 1);
	return req;
}

/* ---- inflight tracking (the spec's packed recipe; inflight.c recovers it) ---- */

/*
 * Commit a fetched chain whose descriptors read_chain() recorded in entries taken from the free
 * list (the first at pk->ifl_free, the last @last, the next free one @e): the head entry, then
 * the commit (old_free_head). Before the commit a crash leaves the entries on the free list and
 * the chain in the ring; after it, the chain is resubmitted from these copies.
 */
static inline void
ifl_fetch(struct vh_vq_packed *pk, struct vh_req *req, uint16_t n, uint16_t last, uint16_t e)
{
	struct inflight_packed_queue *q = pk->ifl;
	uint16_t head = pk->ifl_free;

	VH_WRITE_ONCE(q->desc[head].num, n);
	VH_WRITE_ONCE(q->desc[head].last, last);
	VH_WRITE_ONCE(q->desc[head].counter, ++pk->ifl_counter);
	VH_STORE_REL(q->desc[head].inflight, 1);
	pk->ifl_free = e;
	VH_WRITE_ONCE(q->free_head, e);
	/* The commit: everything above before it (release). */
	VH_STORE_REL(q->old_free_head, e);
	req->ifl_entry = head;
	req->ifl_last = last;
}

/*
 * Before the used descriptor goes out: the chain back on the free list, the new used position.
 * Inlined into push_used_ifl() only: the path without a region has none of this.
 */
static inline void
ifl_used_begin(struct vh_vq_packed *pk, const struct vh_req *req, uint16_t pos, uint16_t next,
               uint32_t size)
{
	struct inflight_packed_queue *q = pk->ifl;

	VH_WRITE_ONCE(q->desc[req->ifl_last].next, pk->ifl_free);
	pk->ifl_next[req->ifl_last] = pk->ifl_free;
	pk->ifl_free = req->ifl_entry;
	VH_WRITE_ONCE(q->free_head, req->ifl_entry);
	/* One store: the new used position, the committed one kept beside it (inflight.c). */
	VH_STORE_REL(*vh_pk_used_word_ptr(q), vh_pk_used_word(next, pos, size));
}

/* After it went out: the head's mark cleared, then the commit. */
static inline void
ifl_used_commit(struct vh_vq_packed *pk, const struct vh_req *req, uint16_t next, uint32_t size)
{
	struct inflight_packed_queue *q = pk->ifl;

	VH_STORE_REL(q->desc[req->ifl_entry].inflight, 0);
	/* old_free_head first: a crash between the two stores still finds used != old_used. */
	VH_STORE_REL(q->old_free_head, pk->ifl_free);
	VH_STORE_REL(*vh_pk_used_word_ptr(q), vh_pk_used_word(next, next, size));
}

/* ---- fetch (reactor) ---- */

/* The AVAIL/USED bits of a descriptor the driver made available at position @pos. */
static inline uint16_t
avail_bits(uint16_t pos, uint32_t size)
{
	return (pos & size) ? VIRTQ_DESC_F_USED : VIRTQ_DESC_F_AVAIL;
}

/*
 * The first descriptor's flags if the driver made the one at vq->last_avail available, else
 * -1. Acquire: pairs with the driver's barrier before it flips those flags.
 */
static inline int
next_avail_flags(const struct vh_vq *vq, const struct vh_vq_packed *pk)
{
	uint16_t pos = vq->last_avail;
	uint16_t flags = VH_LOAD_ACQ(pk->ring[pos & vq->mask].flags);

	return (flags & AVAIL_USED) == avail_bits(pos, vq->size) ? flags : -1;
}

/*
 * Scan the chain at vq->last_avail (its first descriptor available with @flags): each
 * descriptor's flags into pk->chain_buf, and with @copy its addr and len too, and the whole
 * descriptor into an inflight region entry taken from the free list (*ifl_last: the last one,
 * *ifl_e: the next free one; ifl_fetch() commits them), every field read once. Returns its
 * length (*id: the buffer id, from its last descriptor), or 0 after breaking the queue. Always
 * inlined: @copy is a constant.
 */
static inline __attribute__((always_inline)) uint32_t
read_chain(struct vh_vq *vq, const struct vh_vq_packed *pk, uint16_t flags, uint16_t *id, bool copy,
           uint16_t *ifl_last, uint16_t *ifl_e)
{
	const struct pvirtq_desc *ring = pk->ring;
	struct pvirtq_desc *out = pk->chain_buf;
	struct inflight_desc_packed *r = NULL;
	/* The descriptors not outstanding: a chain may not be longer (checked as it is read). */
	uint32_t size = vq->size, room = size - pk->outstanding, n = 0;
	uint16_t idx = vq->last_avail & vq->mask, want = avail_bits(vq->last_avail, size);
	/* The free list has room entries (one per descriptor not outstanding): checked first. */
	uint16_t e = copy ? pk->ifl_free : 0;

	for (;;) {
		const struct pvirtq_desc *d = &ring[idx];

		if (VH_UNLIKELY(n >= room)) {
			/* Beyond that the driver reused descriptors we had not used. */
			vh_vq_broken(vq, room == size ? "guest violated the ring protocol: "
			                                "descriptor chain longer than the ring"
			                              : "guest violated the ring protocol: more "
			                                "descriptors made available than the ring "
			                                "holds");
			return 0;
		}
		if (copy) {
			uint64_t addr = VH_READ_ONCE(d->addr);
			uint32_t len = VH_READ_ONCE(d->len);

			out[n].addr = addr;
			out[n].len = len;
			r = &pk->ifl->desc[e];
			VH_WRITE_ONCE(r->addr, addr);
			VH_WRITE_ONCE(r->len, len);
			VH_WRITE_ONCE(r->flags, flags);
			*ifl_last = e;
			e = pk->ifl_next[e];
		}
		out[n++].flags = flags;
		if (!(flags & VRING_DESC_F_NEXT)) {
			/* VIRTIO 1.2 §2.8.6: the buffer id is in the last descriptor of the list.
			 */
			*id = VH_READ_ONCE(d->id);
			if (copy) {
				out[n - 1].id = *id;
				VH_WRITE_ONCE(r->id, *id);
				*ifl_e = e;
			}
			return n;
		}
		if (copy) {
			VH_WRITE_ONCE(r->id, 0);
		}
		/* The next position; past the end of the ring the driver's wrap counter flips. */
		if (++idx == size) {
			idx = 0;
			want ^= AVAIL_USED;
		}
		flags = VH_READ_ONCE(ring[idx].flags);
		/* §2.8.6: AVAIL and USED must be right in every descriptor of a list. */
		if (VH_UNLIKELY((flags & AVAIL_USED) != want)) {
			vh_vq_broken(vq,
			             "guest violated the ring protocol: "
			             "descriptor chain runs into a descriptor not made available");
			return 0;
		}
	}
}

/*
 * Take the chain at vq->last_avail (its first descriptor available with @flags) into a request
 * slot; @copy: the queue has an inflight region (pk->ifl), which records the chain. NULL if the
 * queue broke. Always inlined: @copy is a constant (take_chain_ifl() is the region's variant).
 */
static inline __attribute__((always_inline)) struct vh_req *
take_chain(struct vh_vq *vq, struct vh_vq_packed *pk, uint16_t flags, bool copy)
{
	struct vh_req *req;
	uint16_t id = 0, idx = vq->last_avail & vq->mask, ifl_last = 0, ifl_e = 0;
	uint32_t n = read_chain(vq, pk, flags, &id, copy, &ifl_last, &ifl_e);

	if (VH_UNLIKELY(n == 0)) {
		return NULL;
	}
	if (VH_UNLIKELY(id >= vq->size)) {
		vh_vq_broken(vq, "guest violated the ring protocol: buffer id out of range");
		return NULL;
	}
	if (VH_UNLIKELY(id_test_and_set(vq, id))) {
		vh_vq_broken(vq, "guest violated the ring protocol: buffer id already in flight");
		return NULL;
	}
	req = slot_get(vq, id, (uint16_t)n);
	if (copy) {
		/* Recorded before the device sees it: a restart resubmits it from the copies. */
		ifl_fetch(pk, req, (uint16_t)n, ifl_last, ifl_e);
	}
	pk->outstanding += (uint32_t)n;
	vq->last_avail = (uint16_t)(vq->last_avail + n);
	pk->chain = pk->chain_buf;
	pk->chain_n = (uint16_t)n;
	pk->chain_id = id;
	pk->chain_idx = idx;
	pk->chain_ring = !copy;
	pk->chain_valid = true;
	return req;
}

/* take_chain() with an inflight region, out of line: the path without one stays lean. */
static __attribute__((noinline)) struct vh_req *
take_chain_ifl(struct vh_vq *vq, struct vh_vq_packed *pk, uint16_t flags)
{
	return take_chain(vq, pk, flags, true);
}

static inline struct vh_req *
take_next(struct vh_vq *vq, struct vh_vq_packed *pk, uint16_t flags)
{
	return pk->ifl != NULL ? take_chain_ifl(vq, pk, flags) : take_chain(vq, pk, flags, false);
}

/* The fetch loop, out of line: an empty poll (most of them) stays a few instructions. */
static __attribute__((noinline)) void
fetch_loop(struct vh_vq *vq, int flags)
{
	struct vh_vq_packed *pk = vq->pk;
	uint32_t n = VH_MIN((uint32_t)VH_VQ_BATCH, vq->nfree);

	for (uint32_t i = 0; i < n; i++) {
		struct vh_req *req;

		if (i > 0 && (flags = next_avail_flags(vq, pk)) < 0) {
			return;
		}
		req = take_next(vq, pk, (uint16_t)flags);
		if (VH_UNLIKELY(req == NULL)) {
			return;
		}
		vq->ops->handle(vq, req);
		pk->chain_valid = false;
		if (VH_UNLIKELY(vq->broken)) {
			return;
		}
	}
}

void
vh_vq_packed_fetch(struct vh_vq *vq)
{
	int flags = next_avail_flags(vq, vq->pk);

	if (flags >= 0 && vq->nfree > 0) {
		fetch_loop(vq, flags);
	}
}

struct vh_req *
vh_vq_packed_fetch_one(struct vh_vq *vq)
{
	int flags = next_avail_flags(vq, vq->pk);

	/* The chain stays valid for the device's walk until the next fetch. */
	return flags < 0 ? NULL : take_next(vq, vq->pk, (uint16_t)flags);
}

/* ---- descriptor walk (reactor, from ops->handle) ---- */

/* The walk's state: iovecs so far, where the writable ones start, the last writable byte. */
struct walk {
	int cnt, n_read, err;
	int last_w_n;        /* iovecs up to the end of the last writable buffer, if translated */
	uint64_t last_w_end; /* end of the last writable buffer (0: none) */
	bool seen_write;
};

/*
 * One buffer of the chain: order (readable before writable), iovecs (through the queue's
 * region hint, vh_mem_gpa_to_iov_hinted()), and where the last writable byte is (the end of its
 * translation: no second lookup). -EBADMSG if out of order.
 */
static inline __attribute__((always_inline)) int
add_buf(const struct vh_mem *mem, struct vh_vq *vq, const struct vh_mem_region *hint,
        struct walk *st, uint64_t addr, uint32_t len, bool w, struct iovec *iov, int max)
{
	bool w_end = false;
	uint64_t end;

	if (w) {
		if (!st->seen_write) {
			st->seen_write = true;
			st->n_read = st->cnt;
		}
		if (len > 0 && !VH_ADD_OVERFLOW(addr, (uint64_t)len, &end)) {
			st->last_w_end = end;
			st->last_w_n = 0;
			w_end = true;
		}
	} else if (st->seen_write) {
		return -EBADMSG; /* device-readable after device-writable */
	}
	if (st->err == 0 && len > 0) {
		int cnt = st->cnt; /* a local: @st stays in registers */

		st->err = vh_mem_gpa_to_iov_hinted(mem, hint, &vq->mem_hint, addr, len, iov, &cnt,
		                                   max);
		st->cnt = cnt;
		if (w_end && st->err == 0) {
			st->last_w_n = cnt;
		}
	}
	return 0;
}

/* A chain whose only descriptor is indirect (@d: its addr and len, read once here). */
static __attribute__((noinline)) int
walk_indirect(struct vh_vq *vq, const struct vh_mem *mem, const struct vh_mem_region *hint,
              const struct pvirtq_desc *d, struct iovec *iov, int max, struct walk *st)
{
	const struct pvirtq_desc *t;
	uint64_t taddr = VH_READ_ONCE(d->addr);
	uint32_t len = VH_READ_ONCE(d->len), entries;

	/* §2.8.10: only with INDIRECT_DESC negotiated. */
	if (!(__atomic_load_n(&vq->s->features, __ATOMIC_RELAXED) &
	      (1ull << VIRTIO_RING_F_INDIRECT_DESC))) {
		return -EBADMSG;
	}
	if (len == 0 || len % sizeof(struct pvirtq_desc) != 0 ||
	    len / sizeof(struct pvirtq_desc) > VH_MAX_QUEUE_SIZE) {
		return -EBADMSG;
	}
	t = vh_vq_indirect_table(vq, mem, taddr, len);
	if (t == NULL) {
		return -EBADMSG;
	}
	entries = len / sizeof(struct pvirtq_desc);
	for (uint32_t i = 0; i < entries; i++) {
		/* Only WRITE means anything in an indirect entry (§2.8.10): the rest is ignored. */
		uint64_t addr = VH_READ_ONCE(t[i].addr);
		uint32_t l = VH_READ_ONCE(t[i].len);
		uint16_t f = VH_READ_ONCE(t[i].flags);

		if (add_buf(mem, vq, hint, st, addr, l, f & VRING_DESC_F_WRITE, iov, max) < 0) {
			return -EBADMSG;
		}
	}
	return 0;
}

int
vh_vq_packed_walk(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head, struct iovec *iov,
                  int max, int *nr, int *nw, uint8_t **last_w)
{
	struct vh_vq_packed *pk = vq->pk;
	const struct pvirtq_desc *c = pk->chain;
	/* The table does not change while the queue runs (design rule 10); checked anyway. */
	const struct vh_mem_region *hint = vh_mem_hint(mem, vq->mem_hint);
	/* addr and len: from the ring (read here, once) or from the fetch's copy (vring_packed.h).
	 */
	const struct pvirtq_desc *src = pk->chain_ring ? pk->ring : c;
	uint16_t sidx = pk->chain_ring ? pk->chain_idx : 0;
	uint16_t smask = pk->chain_ring ? vq->mask : 0xffff; /* a copy: n <= 2^15, never wraps */
	uint32_t n = pk->chain_n;
	struct walk st = {0};

	*last_w = NULL;
	if (VH_UNLIKELY(!pk->chain_valid || head != pk->chain_id)) {
		VH_LOG_RL(VH_LOG_ERROR, vq->prefix,
		          "device walked packed buffer %u outside its hand-over (a device bug)",
		          head);
		return -EINVAL;
	}
	if (VH_UNLIKELY(c[0].flags & VRING_DESC_F_INDIRECT)) {
		/* §2.8.10: alone (no NEXT), never nested. */
		if (n != 1) {
			return -EBADMSG;
		}
		if (walk_indirect(vq, mem, hint, &src[sidx & smask], iov, max, &st) < 0) {
			return -EBADMSG;
		}
	} else {
		for (uint32_t i = 0; i < n; i++) {
			const struct pvirtq_desc *d = &src[(uint16_t)(sidx + i) & smask];
			uint16_t f = c[i].flags;

			if (VH_UNLIKELY(f & VRING_DESC_F_INDIRECT)) {
				return -EBADMSG; /* an indirect descriptor inside a list */
			}
			if (add_buf(mem, vq, hint, &st, VH_READ_ONCE(d->addr), VH_READ_ONCE(d->len),
			            f & VRING_DESC_F_WRITE, iov, max) < 0) {
				return -EBADMSG;
			}
		}
	}
	if (!st.seen_write) {
		st.n_read = st.cnt;
	}
	/*
	 * The last writable byte (the status byte for virtio-blk): the end of its translated iovec,
	 * or, if it was not translated (an earlier buffer failed), its own translation, so that
	 * the request can still fail cleanly.
	 */
	if (st.last_w_n > 0) {
		*last_w =
		        (uint8_t *)iov[st.last_w_n - 1].iov_base + iov[st.last_w_n - 1].iov_len - 1;
	} else if (st.last_w_end != 0) {
		*last_w = vh_mem_gpa_to_hva(mem, st.last_w_end - 1, 1);
	}
	*nr = st.n_read;
	*nw = st.cnt - st.n_read;
	return st.err;
}

/* ---- used descriptors and notifications (reactor) ---- */

/*
 * Write @req's used descriptor and release its id and slot. Always inlined: @ifl is a constant,
 * so the path without an inflight region has no region code and calls nothing but the deferral.
 */
static inline __attribute__((always_inline)) void
push_used(struct vh_vq *vq, struct vh_vq_packed *pk, struct vh_req *req, bool ifl)
{
	uint32_t size = vq->size;
	uint16_t pos = vq->last_used, next = (uint16_t)(pos + req->ndesc);
	struct pvirtq_desc *d = &pk->ring[vh_pk_idx(pos, size)];
	/* §2.8.1: a used descriptor has AVAIL == USED == the device's wrap counter. */
	uint16_t flags = vh_pk_wrap(pos, size) ? AVAIL_USED : 0;

	if (req->used_len > 0) {
		flags |= VRING_DESC_F_WRITE; /* §2.8.3: the device wrote into the buffer */
	}
	if (ifl) {
		ifl_used_begin(pk, req, pos, next, size);
	}
	VH_WRITE_ONCE(d->id, req->head);
	VH_WRITE_ONCE(d->len, req->used_len);
	/* Release: id and len before the flags that hand the descriptor to the driver. */
	VH_STORE_REL(d->flags, flags);
	vh_vq_log_hva(vq, d, sizeof(*d));
	if (ifl) {
		ifl_used_commit(pk, req, next, size);
	}
	/* The driver may post this id again as soon as it sees the flags. */
	id_clear(vq, req->head);
	/* Answered during its hand-over: the ring under its chain is no longer ours to read. */
	if (VH_UNLIKELY(req->head == pk->chain_id)) {
		pk->chain_valid = false;
	}
	vq->last_used = next;
	pk->outstanding -= req->ndesc;
	req->inflight = false;
	vq->free_slots[vq->nfree++] = req->slot;
	VH_STAT_ADD(vq->inflight, -1);
	vh_reactor_defer(&vq->flush);
}

static __attribute__((noinline)) void
push_used_ifl(struct vh_vq *vq, struct vh_vq_packed *pk, struct vh_req *req)
{
	push_used(vq, pk, req, true);
}

void
vh_vq_packed_push_used(struct vh_vq *vq, struct vh_req *req)
{
	struct vh_vq_packed *pk = vq->pk;

	if (pk->ifl != NULL) {
		push_used_ifl(vq, pk, req);
	} else {
		push_used(vq, pk, req, false);
	}
}

void
vh_vq_packed_signal(struct vh_vq *vq)
{
	const struct vh_vq_packed *pk = vq->pk;
	uint32_t size = vq->size, ev;
	uint16_t old = vq->signalled_used, cur = vq->last_used, used = (uint16_t)(cur - old);
	bool valid = vq->signalled_used_valid;
	uint16_t flags, off_wrap;

	if (vq->cur_callfd < 0) {
		return;
	}
	vq->signalled_used = cur;
	vq->signalled_used_valid = true;
	/* Order the used descriptors' flags before reading the driver's suppression (store-load).
	 */
	VH_SMP_MB();
	/* Both fields in one read: the driver updates them together. */
	ev = __atomic_load_n((const uint32_t *)(const void *)pk->driver, __ATOMIC_RELAXED);
	off_wrap = (uint16_t)ev;
	flags = (uint16_t)(ev >> 16) & 3;
	if (flags == RING_EVENT_FLAGS_DISABLE) {
		return;
	}
	/*
	 * RING_EVENT_FLAGS_DESC (with EVENT_IDX): call only if the descriptor the driver named,
	 * (offset, wrap) as a position, is among those used since the last call, [old, cur). The
	 * arithmetic is modulo 2 * size, the positions' period. A value we cannot judge (first call
	 * after start, a lap or more used, an offset past the ring, 0x3) gets a call.
	 */
	if (flags == RING_EVENT_FLAGS_DESC && vq->event_idx && valid && used < size &&
	    (off_wrap & 0x7fff) < size) {
		uint16_t e = vh_pk_pos(off_wrap & 0x7fff, off_wrap >> RING_EVENT_WRAP_SHIFT, size);
		uint32_t m = 2 * size - 1;

		if (((uint16_t)(cur - e - 1) & m) >= used) {
			return;
		}
	}
	VH_STAT_ADD(vq->stat_kicks_sent, 1);
	vh_vq_call(vq);
}

static inline void
set_device_event(struct vh_vq *vq, uint16_t off_wrap, uint16_t flags)
{
	struct pvirtq_event_suppress *dev = vq->pk->device;

	/* One store: the driver reads both fields at once (Linux reads them as one u32). */
	__atomic_store_n((uint32_t *)(void *)dev, (uint32_t)off_wrap | (uint32_t)flags << 16,
	                 __ATOMIC_RELAXED);
	vh_vq_log_hva(vq, dev, sizeof(*dev));
}

void
vh_vq_packed_enable_kicks(struct vh_vq *vq)
{
	/* With EVENT_IDX: a kick when the driver makes our next descriptor available. */
	if (vq->event_idx) {
		set_device_event(vq, vh_pk_base16(vq->last_avail, vq->size), RING_EVENT_FLAGS_DESC);
	} else {
		set_device_event(vq, 0, RING_EVENT_FLAGS_ENABLE);
	}
}

void
vh_vq_packed_disable_kicks(struct vh_vq *vq)
{
	set_device_event(vq, 0, RING_EVENT_FLAGS_DISABLE);
}

bool
vh_vq_packed_avail(struct vh_vq *vq)
{
	return next_avail_flags(vq, vq->pk) >= 0;
}

uint32_t
vh_vq_packed_position(const struct vh_vq *vq)
{
	return (uint32_t)vh_pk_base16(vq->last_avail, vq->size) |
	       (uint32_t)vh_pk_base16(vq->last_used, vq->size) << 16;
}

/* ---- start: resubmission (reactor) ---- */

void
vh_vq_packed_start(struct vh_vq *vq)
{
	struct vh_vq_packed *pk = vq->pk;

	if (pk->nresub > 0) {
		VH_LOG_RL(VH_LOG_NOTICE, vq->prefix,
		          "resubmitting %u request(s) left in flight by a previous instance",
		          pk->nresub);
	}
	for (uint32_t i = 0; i < pk->nresub && !vq->broken; i++) {
		const struct vh_inflight_resub *r = &pk->resub[i];
		struct vh_req *req;

		/* Unique and < size (inflight.c); the bitmap is empty at start. */
		if (id_test_and_set(vq, r->id)) {
			vh_vq_broken(vq, "inflight region holds a buffer id twice");
			break;
		}
		req = slot_get(vq, r->id, r->num);
		req->ifl_entry = r->entry;
		req->ifl_last = r->last;
		/* A new counter keeps the order if we die again before it completes. */
		VH_WRITE_ONCE(pk->ifl->desc[r->entry].counter, ++pk->ifl_counter);
		pk->chain = &pk->resub_descs[r->off];
		pk->chain_n = r->num;
		pk->chain_id = r->id;
		pk->chain_ring = false;
		pk->chain_valid = true;
		vq->ops->handle(vq, req);
		pk->chain_valid = false;
	}
	pk->nresub = 0;
}

/* ---- control side ---- */

void
vh_vq_packed_free(struct vh_vq *vq)
{
	struct vh_vq_packed *pk = vq->pk;

	if (pk == NULL) {
		return;
	}
	free(pk->chain_buf);
	free(pk->ifl_next);
	free(pk->resub);
	free(pk->resub_descs);
	free(pk);
	vq->pk = NULL;
}

/*
 * Attach the queue's inflight region, if any, and recover what a previous instance left: the
 * region, not SET_VRING_BASE, says where the ring resumes (QEMU 7.2 keeps a packed ring's
 * position from its last start when the back-end dies: there is no index in memory to restore
 * it from).
 */
static int
attach_inflight(struct vh_vq *vq, struct vh_vq_packed *pk, uint16_t *avail, uint16_t *used)
{
	struct vh_inflight *ifl = &vq->s->inflight;
	struct vh_inflight_packed_state st;
	struct inflight_packed_queue *q;
	uint32_t size = vq->size;
	int rc;

	if (ifl->map == NULL) {
		return 0;
	}
	if (vq->idx >= ifl->num_queues || size > ifl->queue_size) {
		return -EINVAL;
	}
	if (!ifl->packed) {
		if (vq->s->c->packed_recovery) {
			VH_LOG_RL(
			        VH_LOG_ERROR, vq->prefix,
			        "the inflight region has the split layout (the front-end asked for "
			        "it before negotiating packed rings): no crash recovery for a "
			        "packed "
			        "ring, which packed_ring_recovery requires");
			return -EINVAL;
		}
		VH_LOG_RL(VH_LOG_WARN, vq->prefix,
		          "the inflight region has the split layout: this packed ring runs without "
		          "crash recovery");
		return 0;
	}
	q = (struct inflight_packed_queue *)(ifl->base +
	                                     vq->idx * vh_inflight_stride(ifl->queue_size, true));
	pk->ifl_next = calloc(size, sizeof(*pk->ifl_next));
	pk->resub = calloc(vq->nslots, sizeof(*pk->resub));
	pk->resub_descs = calloc(size, sizeof(*pk->resub_descs));
	if (pk->ifl_next == NULL || pk->resub == NULL || pk->resub_descs == NULL) {
		return -ENOMEM;
	}
	rc = vh_inflight_packed_recover(q, (uint16_t)size, ifl->queue_size, pk->ring, *avail,
	                                pk->ifl_next, pk->resub, vq->nslots, pk->resub_descs, &st);
	if (rc < 0) {
		return rc;
	}
	pk->ifl = q;
	pk->ifl_free = st.free_head;
	pk->ifl_counter = st.counter;
	pk->nresub = st.nresub;
	pk->outstanding = st.ndesc;
	*avail = st.avail;
	*used = st.used;
	return 0;
}

int
vh_vq_packed_prepare(struct vh_vq *vq)
{
	const struct vh_mem *mem = vq->s->mem;
	uint32_t size = vq->size;
	uint32_t base = vq->base_set ? vq->base : VH_PK_FRESH_BASE;
	struct vh_vq_packed *pk;
	uint16_t avail, used;
	int rc;

	vh_vq_packed_free(vq);
	/* Alignment from VIRTIO 1.2 §2.8.2: descriptor ring 16, event suppression areas 4. */
	if ((vq->addr.desc_user_addr & 15) || (vq->addr.avail_user_addr & 3) ||
	    (vq->addr.used_user_addr & 3)) {
		return -EINVAL;
	}
	/* SET_VRING_BASE's avail half; the used half follows it (vring.h: vh_vq_set_position). */
	if ((base & 0x7fff) >= size) {
		return -EINVAL;
	}
	pk = calloc(1, sizeof(*pk));
	if (pk == NULL) {
		return -ENOMEM;
	}
	pk->ring = vh_mem_qva_to_hva(mem, vq->addr.desc_user_addr, 16ull * size);
	pk->driver = vh_mem_qva_to_hva(mem, vq->addr.avail_user_addr, 4);
	pk->device = vh_mem_qva_to_hva(mem, vq->addr.used_user_addr, 4);
	if (pk->ring == NULL || pk->driver == NULL || pk->device == NULL) {
		rc = -EFAULT;
		goto out_free;
	}
	/* In our mapping too (mmap_offset is the front-end's): 32-bit event stores and loads. */
	if (((uintptr_t)pk->ring & 15) || ((uintptr_t)pk->driver & 3) ||
	    ((uintptr_t)pk->device & 3)) {
		rc = -EINVAL;
		goto out_free;
	}
	pk->chain_buf = calloc(size, sizeof(*pk->chain_buf));
	if (pk->chain_buf == NULL) {
		rc = -ENOMEM;
		goto out_free;
	}
	avail = vh_pk_pos(base & 0x7fff, (base & 0x8000) != 0, size);
	used = avail;
	rc = attach_inflight(vq, pk, &avail, &used);
	if (rc < 0) {
		goto out_free;
	}
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->ifl = NULL;
	vq->mask = (uint16_t)(size - 1);
	vq->last_avail = avail;
	vq->last_used = used;
	vq->pk = pk;
	return 0;

out_free:
	vq->pk = pk;
	vh_vq_packed_free(vq);
	return rc;
}
