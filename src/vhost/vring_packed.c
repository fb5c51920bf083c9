/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packed virtqueues (VIRTIO 1.2 §2.8): fetching chains, walking them, writing used descriptors,
 * event suppression both ways, and inflight tracking in the spec's packed layout. vring.c owns
 * the queue's life cycle (start/stop handshakes, request slots, the poller) and calls in here
 * when VIRTIO_F_RING_PACKED was negotiated (vring_packed.h).
 *
 * Threat model: as vring.c. The guest driver owns the descriptor ring and the driver event
 * suppression structure and may rewrite them while we read. Each field of a chain's descriptors
 * is read once, when the chain is fetched: each descriptor in two loads (len, id and flags as
 * one word, then addr) into a private copy that the device's walk reads (and, with an inflight
 * region, into the region's entries). The ring is overwritten by used descriptors while
 * requests run, and a used descriptor may land on a chain still in flight (completions are out
 * of order): nothing is read from a chain's descriptors after its fetch. Every buffer id is
 * checked against the ring size before it indexes anything (SPDK issue #3860 was a
 * guest-controlled id used as an array index) and against the ids in flight; a chain is at most the
 * ring's size, must be available in every descriptor, and may not make more descriptors outstanding
 * than the ring holds; indirect tables are bounded by their own length, allowed only alone, never
 * nested. A violation breaks the queue and closes the session. The inflight region is written here
 * and only read back by the next instance (inflight.c), which trusts none of it.
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

/*
 * A descriptor's second half, len | id << 32 | flags << 48 (the ring is little-endian, and so
 * is the host: protocol.h), read as one word. One aligned 8-byte load is single-copy atomic, so
 * the flags that make a descriptor available come with the len and id written before them.
 */
typedef uint64_t __attribute__((may_alias)) desc_word_t;

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
 * A completion with a region runs the spec's two phases around its used descriptor, each time:
 * ifl_used_begin() before it (the chain back on the free list, the new used position beside the
 * committed one), ifl_used_commit() after it (the head's mark cleared, the commit). A crash
 * between the two leaves one used descriptor beyond the committed state, at the committed used
 * position, and inflight.c judges the completion by it: finished if it is there, rolled back
 * (resubmitted) if not. Nothing else of ours is ever in the ring past that position.
 *
 * Completions are not batched here (they were, for a while: the batch's first used descriptor
 * held back until the flush, the others written at once). That broke recovery: the driver polls
 * one position, but a crash before the flush left the batch's other used descriptors in the ring
 * past the committed position, with valid flags for their laps. The next instance resubmits the
 * batch and answers it in its own order and its own batches; once the driver has taken a first
 * batch shorter than the dead one's, it reads on into the dead instance's descriptors: ids not in
 * flight, or in flight and not answered (a virtio-blk status never written). "The driver never
 * saw the batch" held for the position it polls only. One used descriptor at a time, each
 * committed before the next is written, keeps the ring past the committed position clean.
 */
static inline void
ifl_used_begin(struct vh_vq_packed *pk, uint16_t entry, uint16_t last, uint64_t word)
{
	struct inflight_packed_queue *q = pk->ifl;
	uint16_t free = pk->ifl_free;

	VH_WRITE_ONCE(q->desc[last].next, free);
	pk->ifl_next[last] = free;
	pk->ifl_free = entry;
	VH_WRITE_ONCE(q->free_head, entry);
	/* One store: the new used position, the committed one kept beside it (inflight.c). */
	VH_STORE_REL(*vh_pk_used_word_ptr(q), word);
}

/* Phase two, after the used descriptor went out: the head's mark cleared, then the commit. */
static inline void
ifl_used_commit(struct vh_vq_packed *pk, uint16_t entry, uint64_t word)
{
	struct inflight_packed_queue *q = pk->ifl;

	VH_STORE_REL(q->desc[entry].inflight, 0);
	/* old_free_head first: a crash between the two stores still finds used != old_used. */
	VH_STORE_REL(q->old_free_head, entry);
	VH_STORE_REL(*vh_pk_used_word_ptr(q), word);
}

/* ---- fetch (reactor) ---- */

#define W_FLAGS(w)  ((uint16_t)((w) >> 48))
#define W_ID(w)     ((uint16_t)((w) >> 32))
#define W_NEXT      ((uint64_t)VRING_DESC_F_NEXT << 48)
#define W_AVAILUSED ((uint64_t)AVAIL_USED << 48)

static inline uint64_t
desc_word(const struct pvirtq_desc *d, int order)
{
	return __atomic_load_n((const desc_word_t *)(const void *)&d->len, order);
}

/* The AVAIL/USED bits (in a desc_word()) of a descriptor the driver made available at @pos. */
static inline uint64_t
avail_bits(uint16_t pos, uint32_t size)
{
	return (pos & size) ? (uint64_t)VIRTQ_DESC_F_USED << 48
	                    : (uint64_t)VIRTQ_DESC_F_AVAIL << 48;
}

/*
 * Whether the driver made the descriptor at vq->last_avail available: its second half in *@w
 * (acquire: pairs with the driver's barrier before it flips the flags, so addr, read after it,
 * is the driver's too).
 */
static inline bool
next_avail(const struct vh_vq *vq, const struct vh_vq_packed *pk, uint64_t *w)
{
	uint16_t pos = vq->last_avail;

	*w = desc_word(&pk->ring[pos & vq->mask], __ATOMIC_ACQUIRE);
	return (*w & W_AVAILUSED) == avail_bits(pos, vq->size);
}

/*
 * Copy the chain at vq->last_avail (its first descriptor's second half @w, available) into
 * pk->chain_buf, each descriptor read once (two loads), checking each further descriptor's
 * AVAIL/USED bits. With @ifl also record each descriptor in an inflight region entry taken from
 * the free list (*ifl_last: the last one, *ifl_e: the next free one; ifl_fetch() commits them).
 * Returns the chain's length (*id: the buffer id, from its last descriptor), or 0 after
 * breaking the queue. Always inlined: @ifl is a constant.
 */
static inline __attribute__((always_inline)) uint32_t
read_chain(struct vh_vq *vq, const struct vh_vq_packed *pk, uint64_t w, uint16_t *id, bool ifl,
           uint16_t *ifl_last, uint16_t *ifl_e)
{
	struct pvirtq_desc *out = pk->chain_buf, *o = out;
	uint32_t size = vq->size, idx = vq->last_avail & vq->mask;
	/* Fetched and not used yet: the used position lags the fetch position by exactly those. */
	uint32_t outstanding = (uint16_t)(vq->last_avail - vq->last_used);
	const struct pvirtq_desc *d = &pk->ring[idx];
	/* The free list has one entry per descriptor not outstanding. */
	uint16_t e = ifl ? pk->ifl_free : 0;
	/* Locals: the word stores below may alias anything, these must not be reloaded. */
	struct inflight_desc_packed *rd = ifl ? pk->ifl->desc : NULL;
	const uint16_t *rnext = ifl ? pk->ifl_next : NULL;
	uint64_t want;
	uint32_t room, left;

	if (VH_UNLIKELY(outstanding >= size)) {
		vh_vq_broken(vq,
		             "guest violated the ring protocol: more descriptors made available "
		             "than the ring holds");
		return 0;
	}
	if (!(w & W_NEXT)) {
		/*
		 * One descriptor: an indirect table (every request of a Linux guest that negotiated
		 * VIRTIO_RING_F_INDIRECT_DESC) or a single buffer. The loop below, without its
		 * bookkeeping for further descriptors.
		 */
		uint64_t addr = VH_READ_ONCE(d->addr);

		out->addr = addr;
		*(desc_word_t *)(void *)&out->len = w;
		if (ifl) {
			VH_WRITE_ONCE(*(desc_word_t *)(void *)&rd[e].id, w >> 32 | w << 32);
			VH_WRITE_ONCE(rd[e].addr, addr);
			*ifl_last = e;
			*ifl_e = rnext[e];
		}
		*id = W_ID(w);
		return 1;
	}
	/*
	 * room: the descriptors not outstanding, a chain may not be longer; left: those up to the
	 * nearer of that and the ring's end, the one bound the loop checks (never 0 here).
	 */
	want = avail_bits(vq->last_avail, size);
	room = size - outstanding;
	left = VH_MIN(room, size - idx);
	for (;;) {
		uint64_t addr = VH_READ_ONCE(d->addr);

		o->addr = addr;
		*(desc_word_t *)(void *)&o->len = w;
		o++;
		if (ifl) {
			struct inflight_desc_packed *r = &rd[e];

			/* The entry's id, flags, len: the same three fields, rotated. */
			VH_WRITE_ONCE(*(desc_word_t *)(void *)&r->id, w >> 32 | w << 32);
			VH_WRITE_ONCE(r->addr, addr);
			*ifl_last = e;
			e = rnext[e];
		}
		if (!(w & W_NEXT)) {
			/* VIRTIO 1.2 §2.8.6: the buffer id is in the list's last descriptor. */
			*id = W_ID(w);
			if (ifl) {
				*ifl_e = e;
			}
			return (uint32_t)(o - out);
		}
		if (VH_UNLIKELY(--left == 0)) {
			uint32_t n = (uint32_t)(o - out);

			if (n == room) {
				/* Beyond that the driver reused descriptors we had not used. */
				vh_vq_broken(vq, room == size
				                         ? "guest violated the ring protocol: "
				                           "descriptor chain longer than the ring"
				                         : "guest violated the ring protocol: more "
				                           "descriptors made available than the "
				                           "ring holds");
				return 0;
			}
			/* Past the end of the ring the driver's wrap counter flips. */
			d = pk->ring;
			left = room - n;
			want ^= W_AVAILUSED;
		} else {
			d++;
		}
		w = desc_word(d, __ATOMIC_RELAXED);
		/* §2.8.6: AVAIL and USED must be right in every descriptor of a list. */
		if (VH_UNLIKELY((w & W_AVAILUSED) != want)) {
			vh_vq_broken(vq,
			             "guest violated the ring protocol: "
			             "descriptor chain runs into a descriptor not made available");
			return 0;
		}
	}
}

/*
 * Take the chain at vq->last_avail (its first descriptor's second half @w, available) into a
 * request slot; @ifl: the queue has an inflight region (pk->ifl), which records the chain. NULL
 * if the queue broke. Always inlined: @ifl is a constant (take_chain_ifl() is the region's
 * variant).
 */
static inline __attribute__((always_inline)) struct vh_req *
take_chain(struct vh_vq *vq, struct vh_vq_packed *pk, uint64_t w, bool ifl)
{
	struct vh_req *req;
	uint16_t id = 0, ifl_last = 0, ifl_e = 0;
	uint32_t n = read_chain(vq, pk, w, &id, ifl, &ifl_last, &ifl_e);

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
	if (ifl) {
		/* Recorded before the device sees it: a restart resubmits it from the copies. */
		ifl_fetch(pk, req, (uint16_t)n, ifl_last, ifl_e);
	}
	vq->last_avail = (uint16_t)(vq->last_avail + n);
	pk->chain_n = (uint16_t)n;
	pk->chain_id = id;
	pk->chain_valid = true;
	return req;
}

/*
 * The fetch loop for one layout (@ifl: with an inflight region), take_chain() inlined in it.
 * Returns after at most @n chains, or when none is available, or the queue broke.
 */
static inline __attribute__((always_inline)) void
fetch_chains(struct vh_vq *vq, struct vh_vq_packed *pk, uint64_t w, uint32_t n, bool ifl)
{
	for (uint32_t i = 0; i < n; i++) {
		struct vh_req *req;

		if (i > 0 && !next_avail(vq, pk, &w)) {
			return;
		}
		req = take_chain(vq, pk, w, ifl);
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

/* The fetch loops, out of line: an empty poll (most of them) stays a few instructions. */
static __attribute__((noinline)) void
fetch_loop(struct vh_vq *vq, uint64_t w)
{
	fetch_chains(vq, vq->pk, w, VH_MIN((uint32_t)VH_VQ_BATCH, vq->nfree), false);
}

static __attribute__((noinline)) void
fetch_loop_ifl(struct vh_vq *vq, uint64_t w)
{
	fetch_chains(vq, vq->pk, w, VH_MIN((uint32_t)VH_VQ_BATCH, vq->nfree), true);
}

/* take_chain() with an inflight region for vh_vq_packed_fetch_one(), out of line. */
static __attribute__((noinline)) struct vh_req *
take_chain_ifl(struct vh_vq *vq, struct vh_vq_packed *pk, uint64_t w)
{
	return take_chain(vq, pk, w, true);
}

void
vh_vq_packed_fetch(struct vh_vq *vq)
{
	uint64_t w;

	if (next_avail(vq, vq->pk, &w) && vq->nfree > 0) {
		if (vq->pk->ifl != NULL) {
			fetch_loop_ifl(vq, w);
		} else {
			fetch_loop(vq, w);
		}
	}
}

struct vh_req *
vh_vq_packed_fetch_one(struct vh_vq *vq)
{
	struct vh_vq_packed *pk = vq->pk;
	uint64_t w;

	if (!next_avail(vq, pk, &w)) {
		return NULL;
	}
	/* The chain stays valid for the device's walk until the next fetch. */
	return pk->ifl != NULL ? take_chain_ifl(vq, pk, w) : take_chain(vq, pk, w, false);
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

/*
 * The end of a walk: where the readable buffers end and the last writable byte (the status
 * byte for virtio-blk): the end of its translated iovec, or, if it was not translated (an
 * earlier buffer failed), its own translation, so that the request can still fail cleanly.
 */
static inline __attribute__((always_inline)) int
walk_end(const struct vh_mem *mem, struct walk st, const struct iovec *iov, int *nr, int *nw,
         uint8_t **last_w)
{
	if (!st.seen_write) {
		st.n_read = st.cnt;
	}
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

/*
 * A chain whose only descriptor is indirect (@d: the fetch's copy of it), walked whole: out of
 * line, so that the direct walk's state stays in registers.
 */
static __attribute__((noinline)) int
walk_indirect(struct vh_vq *vq, const struct vh_mem *mem, const struct vh_mem_region *hint,
              const struct pvirtq_desc *d, struct iovec *iov, int max, int *nr, int *nw,
              uint8_t **last_w)
{
	struct walk st = {0};
	const struct pvirtq_desc *t;
	uint64_t taddr = d->addr;
	uint32_t len = d->len, entries;

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

		if (add_buf(mem, vq, hint, &st, addr, l, f & VRING_DESC_F_WRITE, iov, max) < 0) {
			return -EBADMSG;
		}
	}
	return walk_end(mem, st, iov, nr, nw, last_w);
}

int
vh_vq_packed_walk(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head, struct iovec *iov,
                  int max, int *nr, int *nw, uint8_t **last_w)
{
	struct vh_vq_packed *pk = vq->pk;
	/* The fetch's private copy of the chain (vring_packed.h): nothing here reads the ring. */
	const struct pvirtq_desc *c = pk->chain, *end = c + pk->chain_n, *w0;
	/* The table does not change while the queue runs (design rule 10); checked anyway. */
	const struct vh_mem_region *hint = vh_mem_hint(mem, vq->mem_hint);
	int cnt = 0, err = 0, n_read;

	*last_w = NULL;
	if (VH_UNLIKELY(!pk->chain_valid || head != pk->chain_id)) {
		VH_LOG_RL(VH_LOG_ERROR, vq->prefix,
		          "device walked packed buffer %u outside its hand-over (a device bug)",
		          head);
		return -EINVAL;
	}
	if (VH_UNLIKELY(c->flags & VRING_DESC_F_INDIRECT)) {
		/* §2.8.10: alone (no NEXT), never nested. */
		if (end - c != 1) {
			return -EBADMSG;
		}
		return walk_indirect(vq, mem, hint, c, iov, max, nr, nw, last_w);
	}
	/*
	 * Two passes over the copy, readable buffers then writable ones: a readable buffer after a
	 * writable one, or an indirect descriptor inside a list, fails the second. After a failed
	 * translation the rest is only checked.
	 */
	for (; c < end && !(c->flags & (VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE)); c++) {
		if (c->len > 0 && err == 0) {
			err = vh_mem_gpa_to_iov_hinted(mem, hint, &vq->mem_hint, c->addr, c->len,
			                               iov, &cnt, max);
		}
	}
	n_read = cnt;
	for (w0 = c; c < end; c++) {
		if ((c->flags & (VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE)) !=
		    VRING_DESC_F_WRITE) {
			return -EBADMSG;
		}
		if (c->len > 0 && err == 0) {
			err = vh_mem_gpa_to_iov_hinted(mem, hint, &vq->mem_hint, c->addr, c->len,
			                               iov, &cnt, max);
		}
	}
	*nr = n_read;
	*nw = cnt - n_read;
	/*
	 * The last writable byte (the status byte for virtio-blk), in the last writable buffer
	 * that is not empty (and does not wrap around the address space, as the split walk): the
	 * end of the last iovec if every buffer was translated (that buffer was the last one
	 * translated), else its own translation, so that the request can still fail cleanly.
	 */
	while (c > w0) {
		uint64_t e;

		c--;
		if (c->len == 0 || VH_ADD_OVERFLOW(c->addr, (uint64_t)c->len, &e)) {
			continue;
		}
		if (err == 0) {
			*last_w = (uint8_t *)iov[cnt - 1].iov_base + iov[cnt - 1].iov_len - 1;
		} else {
			*last_w = vh_mem_gpa_to_hva(mem, e - 1, 1);
		}
		break;
	}
	return err;
}

/* ---- used descriptors and notifications (reactor) ---- */

/* Dirty logging of a used descriptor, then the deferral: out of line, push_used() needs no frame.
 */
static __attribute__((noinline)) void
push_used_log(struct vh_vq *vq, const struct pvirtq_desc *d)
{
	vh_vq_log_hva_slow(vq, d, sizeof(*d));
	vh_reactor_defer(&vq->flush);
}

/*
 * Write @req's used descriptor and release its id and slot. Always inlined: @ifl is a constant,
 * so the path without an inflight region has no region code and calls nothing but the deferral.
 */
static inline __attribute__((always_inline)) void
push_used(struct vh_vq *vq, struct vh_vq_packed *pk, struct vh_req *req, bool ifl)
{
	uint32_t size = vq->size;
	uint16_t pos = vq->last_used, next = (uint16_t)(pos + req->ndesc), head = req->head;
	struct pvirtq_desc *d = &pk->ring[vh_pk_idx(pos, size)];
	/* §2.8.1: a used descriptor has AVAIL == USED == the device's wrap counter. */
	uint64_t flags = vh_pk_wrap(pos, size) ? AVAIL_USED : 0;

	/*
	 * With a region: the entries, in locals before any store (a uint16_t store may alias them),
	 * and the new position's half of both used words (vh_pk_used_word()).
	 */
	uint16_t entry = ifl ? req->ifl_entry : 0, last = ifl ? req->ifl_last : 0;
	uint64_t nidx = vh_pk_idx(next, size), nwrap = vh_pk_wrap(next, size);
	uint64_t nword = vh_pk_used_new(nidx, nwrap);

	if (req->used_len > 0) {
		flags |= VRING_DESC_F_WRITE; /* §2.8.3: the device wrote into the buffer */
	}
	if (ifl) {
		ifl_used_begin(pk, entry, last,
		               nword | vh_pk_used_old(vh_pk_idx(pos, size), vh_pk_wrap(pos, size)));
	}
	/*
	 * len, id and the flags that hand the descriptor to the driver in one store: the driver
	 * sees all three at once, never flags without the rest (release: after the buffers and,
	 * with a region, after its first phase).
	 */
	VH_STORE_REL(*(desc_word_t *)(void *)&d->len,
	             (uint64_t)req->used_len | (uint64_t)head << 32 | flags << 48);
	if (ifl) {
		ifl_used_commit(pk, entry, nword | vh_pk_used_old(nidx, nwrap));
	}
	/* The driver may post this id again as soon as it sees the flags. */
	id_clear(vq, head);
	/* Answered during its hand-over: its chain is no longer the device's to walk. */
	if (VH_UNLIKELY(head == pk->chain_id)) {
		pk->chain_valid = false;
	}
	vq->last_used = next;
	req->inflight = false;
	vq->free_slots[vq->nfree++] = req->slot;
	VH_STAT_ADD(vq->inflight, -1);
	if (VH_UNLIKELY(vh_vq_logging(vq))) {
		push_used_log(vq, d);
		return;
	}
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

	/* A tail call with a region: no stack frame here. */
	if (pk->ifl == NULL) {
		push_used(vq, pk, req, false);
	} else {
		push_used_ifl(vq, pk, req);
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
	uint64_t w;

	return next_avail(vq, vq->pk, &w);
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
		pk->chain_valid = true;
		vq->ops->handle(vq, req);
		pk->chain_valid = false;
	}
	pk->chain = pk->chain_buf;
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
	pk->chain = pk->chain_buf;
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
