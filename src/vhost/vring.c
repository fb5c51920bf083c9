/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueues (VIRTIO 1.2 §2.7): start/stop handshakes between the control thread and a
 * queue's reactor, the descriptor walker, used-ring publishing and guest notifications. A packed
 * ring (VIRTIO_F_RING_PACKED) shares the handshakes, the request slots and the poller; its
 * fetch, walk, used descriptors and notifications are vring_packed.c's (dispatched on vq->packed).
 *
 * Threat model: the guest driver owns the rings and descriptor tables and may rewrite them while
 * we read. Every value is read exactly once from guest memory into a local copy before it is
 * checked and used. Chain walks are bounded by the table size; indirect tables by their own
 * length, and nesting is refused. A head index is checked against the queue size and against
 * the set of heads already in flight. A violation stops this queue and closes the session, never
 * the daemon. Memory reached through a checked translation stays mapped until the queue has
 * stopped: the control thread unmaps only after a stop completed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "vhost/device.h"
#include "vhost/dirtylog.h"
#include "vhost/inflight.h"
#include "vhost/mem.h"
#include "vhost/pace.h"
#include "vhost/session.h"
#include "vhost/vring.h"
#include "vhost/vring_packed.h"

/* ---- reactor side ---- */

static inline bool
head_test_and_set(struct vh_vq *vq, uint16_t head)
{
	uint64_t bit = 1ull << (head & 63);
	uint64_t *w = &vq->head_busy[head >> 6];

	if (*w & bit) {
		return true;
	}
	*w |= bit;
	return false;
}

static inline void
head_clear(struct vh_vq *vq, uint16_t head)
{
	vq->head_busy[head >> 6] &= ~(1ull << (head & 63));
}

/* Interrupt the guest through the front-end's call eventfd, never blocking on it. */
static void
kick_call(struct vh_vq *vq)
{
	int rc = vh_peer_eventfd_signal(vq->cur_callfd);

	if (VH_UNLIKELY(rc < 0)) {
		/* Saturated on purpose, made to block, or not usable: no legitimate front-end. */
		vh_vq_broken(vq, rc == -EAGAIN  ? "call eventfd counter saturated by the front-end"
		                 : rc == -EINTR ? "write to the call eventfd blocked"
		                                : "call eventfd unusable");
	}
}

void
vh_vq_call(struct vh_vq *vq)
{
	kick_call(vq);
}

static void
signal_guest(struct vh_vq *vq, uint16_t new_used)
{
	uint16_t old = vq->signalled_used;
	bool valid = vq->signalled_used_valid, wanted;

	if (vq->cur_callfd < 0) {
		vq->quiet_flushes = UINT16_MAX; /* a driver with no interrupt polls */
		return;
	}
	vq->signalled_used = new_used;
	vq->signalled_used_valid = true;
	/* Order the used->idx store before reading the driver's suppression fields (store-load). */
	VH_SMP_MB();
	if (vq->event_idx) {
		uint16_t ev = VH_READ_ONCE(vq->avail->ring[vq->size]);

		/* vring_need_event(): notify if ev lies in (old, new]. */
		wanted = !valid || (uint16_t)(new_used - ev - 1) < (uint16_t)(new_used - old);
	} else {
		wanted = !(VH_READ_ONCE(vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	}
	if (!wanted) {
		vq->quiet_flushes += vq->quiet_flushes != UINT16_MAX; /* vq_poll() paces on it */
		return;
	}
	vq->quiet_flushes = 0;
	VH_STAT_ADD(vq->stat_kicks_sent, 1);
	kick_call(vq);
}

static void vq_check_stopped(struct vh_vq *vq);

/* ---- dirty logging (live migration) ---- */

void
vh_vq_log_iov_slow(struct vh_vq *vq, const struct iovec *iov, int n)
{
	vh_dlog_mark_iov(&vq->s->log, vq->s->mem, iov, n);
}

void
vh_vq_log_hva_slow(struct vh_vq *vq, const void *hva, uint64_t len)
{
	vh_dlog_mark_hva(&vq->s->log, vq->s->mem, hva, len);
}

/* Our write to bytes [off, off + len) of the used ring, logged if the front-end asked. */
static inline void
log_used(struct vh_vq *vq, uint64_t off, uint64_t len)
{
	if (VH_UNLIKELY(__atomic_load_n(vq->log_all, __ATOMIC_RELAXED)) &&
	    __atomic_load_n(&vq->used_log_on, __ATOMIC_ACQUIRE)) {
		vh_dlog_mark(&vq->s->log,
		             __atomic_load_n(&vq->used_log_gpa, __ATOMIC_RELAXED) + off, len);
	}
}

#define USED_RING_OFF        4 /* flags, idx */
#define USED_ELEM_SIZE       8
#define USED_AVAIL_EVENT(vq) (USED_RING_OFF + USED_ELEM_SIZE * (uint64_t)(vq)->size)

/* Log the used elements written since the last publish, and the index. */
static void
log_used_published(struct vh_vq *vq)
{
	uint16_t count = (uint16_t)(vq->last_used - vq->published);
	uint32_t start = vq->published & vq->mask, first;

	if (count >= vq->size) {
		log_used(vq, 0, USED_AVAIL_EVENT(vq));
		return;
	}
	first = VH_MIN((uint32_t)count, vq->size - start);
	log_used(vq, 0, USED_RING_OFF);
	log_used(vq, USED_RING_OFF + USED_ELEM_SIZE * (uint64_t)start, USED_ELEM_SIZE * first);
	if (count > first) {
		log_used(vq, USED_RING_OFF, USED_ELEM_SIZE * (uint64_t)(count - first));
	}
}

/* Make the used entries written so far visible to the guest, and release their heads. */
static void
publish_used(struct vh_vq *vq)
{
	struct inflight_split_queue *ifl = vq->ifl;

	if (ifl != NULL && vq->nbatch > 0) {
		/* Recovery must be able to find this batch if we die after publishing it. */
		VH_STORE_REL(ifl->last_batch_head, vq->batch[0]);
	}
	/* The driver answers completions with new requests: vq_poll() paces itself on them. */
	vq->owed += (uint16_t)(vq->last_used - vq->published);
	/* Pairs with the driver's read barrier after it reads used->idx: entries first. */
	VH_STORE_REL(vq->used->idx, vq->last_used);
	/* The ranges are worked out only while logging (log_used() checks again, with acquire). */
	if (VH_UNLIKELY(vh_vq_logging(vq))) {
		log_used_published(vq);
	}
	vq->published = vq->last_used;
	if (ifl == NULL) {
		return;
	}
	for (uint32_t i = 0; i < vq->nbatch; i++) {
		uint16_t head = vq->batch[i];

		VH_STORE_REL(ifl->desc[head].inflight, 0);
		head_clear(vq, head); /* the guest may post it again from now on */
	}
	VH_STORE_REL(ifl->used_idx, vq->last_used);
	vq->nbatch = 0;
}

/* Deferred to the end of the reactor iteration: one used->idx store and one signal per poll. */
static void
vq_flush(struct vh_deferred *d)
{
	struct vh_vq *vq = VH_CONTAINER_OF(d, struct vh_vq, flush);

	if (VH_UNLIKELY(vq->packed)) {
		vh_vq_packed_signal(vq); /* its used descriptors went out as they completed */
	} else {
		publish_used(vq);
		signal_guest(vq, vq->last_used);
	}
	if (vq->ops->published != NULL) {
		vq->ops->published(vq);
	}
	if (VH_UNLIKELY(vq->stopping)) {
		vq_check_stopped(vq);
	}
}

void
vh_vq_push_used(struct vh_vq *vq, struct vh_req *req)
{
	struct vring_used_elem *e;

	if (VH_UNLIKELY(vq->packed)) {
		vh_vq_packed_push_used(vq, req);
		return;
	}
	if (vq->ifl != NULL) {
		/*
		 * More completions in one reactor iteration than there are slots (slots are reused
		 * within the iteration: synchronous completions, resubmissions, a burst from the
		 * back-end): publish what we have so the batch never outgrows its array.
		 */
		if (VH_UNLIKELY(vq->nbatch == vq->nslots)) {
			publish_used(vq);
		}
		/* Link the batch so recovery can walk it (vhost-user.rst: desc.next). */
		if (vq->nbatch > 0) {
			VH_WRITE_ONCE(vq->ifl->desc[vq->batch[vq->nbatch - 1]].next, req->head);
		}
		/* Busy until published: a head twice in one batch would break that link. */
		vq->batch[vq->nbatch++] = req->head;
	} else {
		head_clear(vq, req->head);
	}
	e = &vq->used->ring[vq->last_used & vq->mask];
	VH_WRITE_ONCE(e->id, (uint32_t)req->head);
	VH_WRITE_ONCE(e->len, req->used_len);
	vq->last_used++;
	req->inflight = false;
	vq->free_slots[vq->nfree++] = req->slot;
	VH_STAT_ADD(vq->inflight, -1);
	vh_reactor_defer(&vq->flush);
}

static void
broken_msg(void *arg)
{
	struct vh_vq *vq = arg;

	vh_session_report_broken(vq->s);
}

void
vh_vq_broken(struct vh_vq *vq, const char *why)
{
	if (vq->broken) {
		return;
	}
	vq->broken = true;
	VH_LOG_RL(VH_LOG_ERROR, vq->prefix, "%s; closing session", why);
	/* Runs before this queue's stopped message: same sender, FIFO. */
	vh_control_post(&vq->broken_node);
}

/* Read one descriptor once, field by field: the guest may be rewriting it. */
static inline void
read_desc(const struct vring_desc *src, struct vring_desc *d)
{
	d->addr = VH_READ_ONCE(src->addr);
	d->len = VH_READ_ONCE(src->len);
	d->flags = VH_READ_ONCE(src->flags);
	d->next = VH_READ_ONCE(src->next);
}

/* Find an indirect table in guest memory; copy it out if it is not contiguous and aligned. */
const void *
vh_vq_indirect_table(struct vh_vq *vq, const struct vh_mem *mem, uint64_t gpa, uint32_t len)
{
	const void *t = vh_mem_gpa_to_hva(mem, gpa, len);

	/* Used in place only if aligned in *our* mapping (mmap_offset is the front-end's). */
	if (t != NULL && ((uintptr_t)t & 15) == 0) {
		return t;
	}
	if (len / sizeof(struct vring_desc) > VH_VQ_SCRATCH_DESC) {
		return NULL;
	}
	if (vh_mem_copy_from_guest(mem, vq->scratch, gpa, len) < 0) {
		return NULL;
	}
	return vq->scratch;
}

int
vh_vq_split_walk(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head, struct iovec *iov,
                 int max, int *nr, int *nw, uint8_t **last_w)
{
	const struct vring_desc *table = vq->desc;
	const struct vh_mem_region *hint = vh_mem_hint(mem, vq->mem_hint);
	uint32_t table_size = vq->size;
	uint32_t idx = head, count = 0;
	bool indirect = false, seen_write = false;
	uint64_t last_w_end = 0; /* end of the last device-writable buffer (0: none) */
	int n = 0, n_read = 0, err = 0;
	int last_w_n = 0; /* iovecs up to its end, when it was translated (else 0) */

	*last_w = NULL;
	for (;;) {
		struct vring_desc d;
		bool w_end = false; /* this descriptor ends the writable buffers so far */
		uint64_t end;

		if (idx >= table_size || ++count > table_size) {
			return -EBADMSG; /* index out of range, or a loop */
		}
		read_desc(&table[idx], &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (indirect || (d.flags & VRING_DESC_F_NEXT) ||
			    !(__atomic_load_n(&vq->s->features, __ATOMIC_RELAXED) &
			      (1ull << VIRTIO_RING_F_INDIRECT_DESC))) {
				return -EBADMSG;
			}
			if (d.len == 0 || d.len % sizeof(struct vring_desc) != 0 ||
			    d.len / sizeof(struct vring_desc) > VH_MAX_QUEUE_SIZE) {
				return -EBADMSG;
			}
			table = vh_vq_indirect_table(vq, mem, d.addr, d.len);
			if (table == NULL) {
				return -EBADMSG;
			}
			table_size = d.len / sizeof(struct vring_desc);
			indirect = true;
			idx = 0;
			count = 0;
			continue;
		}
		if (d.flags & VRING_DESC_F_WRITE) {
			if (!seen_write) {
				seen_write = true;
				n_read = n;
			}
			if (d.len > 0 && !VH_ADD_OVERFLOW(d.addr, (uint64_t)d.len, &end)) {
				last_w_end = end;
				last_w_n = 0;
				w_end = true;
			}
		} else if (seen_write) {
			return -EBADMSG; /* device-readable after device-writable */
		}
		if (err == 0 && d.len > 0) {
			err = vh_mem_gpa_to_iov_hinted(mem, hint, &vq->mem_hint, d.addr, d.len, iov,
			                               &n, max);
			if (w_end && err == 0) {
				last_w_n = n;
			}
		}
		if (!(d.flags & VRING_DESC_F_NEXT)) {
			break;
		}
		idx = d.next;
	}
	if (!seen_write) {
		n_read = n;
	}
	/*
	 * The last writable byte (the status byte for virtio-blk): the end of its translated iovec,
	 * or, if it was not translated (an earlier buffer failed), its own translation, so that
	 * the request can still fail cleanly.
	 */
	if (last_w_n > 0) {
		*last_w = (uint8_t *)iov[last_w_n - 1].iov_base + iov[last_w_n - 1].iov_len - 1;
	} else if (last_w_end != 0) {
		*last_w = vh_mem_gpa_to_hva(mem, last_w_end - 1, 1);
	}
	*nr = n_read;
	*nw = n - n_read;
	return err;
}

/* Claim a slot for @head (checked, marked in flight). NULL if the head breaks the rules. */
static struct vh_req *
take_head(struct vh_vq *vq, uint16_t head)
{
	struct vh_req *req;

	if (VH_UNLIKELY(head >= vq->size)) {
		vh_vq_broken(vq, "guest violated the ring protocol: "
		                 "head index out of range");
		return NULL;
	}
	if (VH_UNLIKELY(head_test_and_set(vq, head))) {
		vh_vq_broken(vq, "guest violated the ring protocol: "
		                 "head index already in flight");
		return NULL;
	}
	if (vq->ifl != NULL) {
		/* Marked before it is processed: a restart resubmits it (inflight.c). */
		VH_WRITE_ONCE(vq->ifl->desc[head].counter, ++vq->ifl_counter);
		VH_STORE_REL(vq->ifl->desc[head].inflight, 1);
	}
	req = vh_vq_req(vq, vq->free_slots[--vq->nfree]);
	req->head = head;
	req->inflight = true;
	VH_STAT_ADD(vq->inflight, 1);
	VH_STAT_ADD(vq->stat_requests, 1);
	return req;
}

/* Take one head (fetched from the avail ring, or resubmitted after a restart) and run it. */
static int
submit_head(struct vh_vq *vq, uint16_t head)
{
	struct vh_req *req = take_head(vq, head);

	if (VH_UNLIKELY(req == NULL)) {
		return -1;
	}
	vq->ops->handle(vq, req);
	return vq->broken ? -1 : 0;
}

/* The avail entries not fetched yet, or -1 (queue broken) if the driver's index is garbage. */
static int
avail_count(struct vh_vq *vq)
{
	uint16_t avail_idx = VH_LOAD_ACQ(vq->avail->idx); /* pairs with the driver's wmb */
	uint16_t n = (uint16_t)(avail_idx - vq->last_avail);

	if (VH_UNLIKELY(n > vq->size)) {
		vh_vq_broken(vq, "guest violated the ring protocol: "
		                 "avail index moved by more than the queue size");
		return -1;
	}
	return n;
}

struct vh_req *
vh_vq_fetch_one(struct vh_vq *vq)
{
	struct vh_req *req;

	if (!vq->running || vq->stopping || vq->broken || vq->nfree == 0) {
		return NULL;
	}
	if (vq->packed) {
		return vh_vq_packed_fetch_one(vq);
	}
	if (avail_count(vq) <= 0) {
		return NULL;
	}
	req = take_head(vq, VH_READ_ONCE(vq->avail->ring[vq->last_avail & vq->mask]));
	if (req != NULL) {
		vq->last_avail++;
	}
	return req;
}

void
vh_vq_defer_retry(struct vh_vq *vq, struct vh_req *req)
{
	req->next_retry = NULL;
	*vq->retry_tail = req;
	vq->retry_tail = &req->next_retry;
}

/* Resubmit what the device deferred, in order, until it asks to wait again. */
static void
run_retries(struct vh_vq *vq)
{
	while (vq->retry_head != NULL) {
		struct vh_req *req = vq->retry_head;

		if (vq->ops->resubmit(vq, req) == -EAGAIN) {
			return;
		}
		vq->retry_head = req->next_retry;
		if (vq->retry_head == NULL) {
			vq->retry_tail = &vq->retry_head;
		}
	}
}

static void
vq_fetch(struct vh_vq *vq)
{
	int avail = avail_count(vq);
	uint16_t n;

	if (avail <= 0) {
		return;
	}
	n = (uint16_t)VH_MIN((uint32_t)avail, VH_MIN((uint32_t)VH_VQ_BATCH, vq->nfree));
	for (uint16_t i = 0; i < n; i++) {
		uint16_t head = VH_READ_ONCE(vq->avail->ring[vq->last_avail & vq->mask]);

		if (submit_head(vq, head) < 0) {
			return;
		}
		vq->last_avail++;
	}
}

/* A no_fetch queue: the device takes buffers itself, when it has something to put in them. */
static int
vq_poll_nofetch(struct vh_vq *vq)
{
	uint16_t before = vq->last_avail;

	vq->nofetch_waiting = vq->ops->nofetch_poll != NULL && vq->ops->nofetch_poll(vq);
	return vq->last_avail != before ? VH_POLL_BUSY : VH_POLL_IDLE;
}

/*
 * Poll pacing (docs/performance.md). A driver that publishes its requests one at a time (SPDK's
 * virtio-blk writes avail->idx after every request) while we read avail->idx flat out gets that
 * cache line pulled away between any two of its stores: every request costs it a cache-line
 * transfer, and the driver's core is the one that limits throughput. So when the driver holds
 * many of our completions (owed: it answers them with new requests), we leave the avail ring
 * alone for a while after a poll, and the next poll takes a batch.
 *
 * - A driver that polls the used ring (it wanted no interrupt for PACE_POLLING publishes in a
 *   row, or has no call eventfd) is paced after every poll, for a pause adapted to its batches
 *   (pace.h).
 * - Any other driver (interrupt-driven: Linux, QEMU's guests) is paced only after a poll found a
 *   trickle, for PACE_NS: one that publishes whole batches is never paced, and a longer pause
 *   cost the Linux pattern 12 % (docs/performance.md).
 *
 * One that waits for us (low queue depth, owed < PACE_OWED) is never paced. The count of what
 * the driver owes is halved on evidence that it holds less (pace.h: an empty poll after a pause
 * or after PACE_IDLE_NS without requests, a pause that produced little) and forgotten before
 * the reactor sleeps, so a driver that stops or lowers its depth is not waited for.
 */
#define PACE_OWED    32u   /* completions in the driver's hands before pacing is considered */
#define PACE_TRICKLE 32u   /* a poll that took fewer requests than this found a trickle */
#define PACE_NS      4000u /* how long the avail ring is then left alone */
#define PACE_MIN_NS  1000u /* a polling driver's pause: pace.h adapts it within these */
#define PACE_MAX_NS  16000u
#define PACE_POLLING 16u    /* publishes in a row without an interrupt wanted: a polling driver */
#define PACE_IDLE_NS 50000u /* no requests for this long: the driver stopped (owed halves) */

/* A duration in vh_ticks(), worked out once: pacing reads the iteration's timestamp. */
static uint64_t
ns_ticks_cached(uint64_t *cache, uint32_t ns)
{
	uint64_t t = __atomic_load_n(cache, __ATOMIC_RELAXED);

	if (VH_UNLIKELY(t == 0)) {
		t = vh_ns_to_ticks(ns);
		t = t ? t : 1; /* 0 means not worked out yet */
		__atomic_store_n(cache, t, __ATOMIC_RELAXED);
	}
	return t;
}

static uint64_t
pace_ticks(void)
{
	static uint64_t t;

	return ns_ticks_cached(&t, PACE_NS);
}

static uint64_t
pace_max_ticks(void)
{
	static uint64_t t;

	return ns_ticks_cached(&t, PACE_MAX_NS);
}

static uint64_t
pace_idle_ticks(void)
{
	static uint64_t t;

	return ns_ticks_cached(&t, PACE_IDLE_NS);
}

/* A polling driver's pause (pace.h), adapted to what this poll found; 0: none now. */
static uint64_t
pace_polling(struct vh_vq *vq, uint32_t owed_before, uint16_t got)
{
	static uint64_t lo;
	struct vh_pace_limits l = {.lo = ns_ticks_cached(&lo, PACE_MIN_NS),
	                           .hi = pace_max_ticks(),
	                           .batch = VH_VQ_BATCH};

	return vh_pace_adapt(&vq->pace_len, &l, pace_ticks(), owed_before, got);
}

static int
vq_poll(void *arg)
{
	struct vh_vq *vq = arg;
	uint16_t before = vq->last_avail, got;
	uint32_t owed_before;
	bool after_pause;

	if (vq->retry_head != NULL) {
		run_retries(vq);
		if (vq->retry_head != NULL) {
			return VH_POLL_BUSY;
		}
	}
	if (VH_UNLIKELY(vq->stopping || vq->broken || !vq->running || vq->no_fetch)) {
		if (vq->stopping) {
			vq_check_stopped(vq);
		} else if (vq->no_fetch && vq->running && !vq->broken) {
			return vq_poll_nofetch(vq);
		}
		return VH_POLL_IDLE;
	}
	if (VH_UNLIKELY(vq->packed)) {
		vh_vq_packed_fetch(vq); /* not paced: pacing is measured on split rings only */
		return vq->last_avail != before ? VH_POLL_BUSY : VH_POLL_IDLE;
	}
	after_pause = vq->pace_until != 0;
	if (after_pause) {
		if (vh_reactor_now_ticks() < vq->pace_until) {
			return VH_POLL_IDLE;
		}
		vq->pace_until = 0;
	}
	vq_fetch(vq);
	got = (uint16_t)(vq->last_avail - before);
	if (got == 0) {
		/* Below PACE_OWED the count decides nothing: a shallow driver polls free. */
		if (vq->owed >= PACE_OWED) {
			bool idle = vh_reactor_now_ticks() - vq->last_fetch > pace_idle_ticks();

			vq->owed = vh_pace_owed(vq->owed, 0, after_pause, false, idle);
		}
		return VH_POLL_IDLE;
	}
	vq->last_fetch = vh_reactor_now_ticks();
	owed_before = vq->owed;
	if (after_pause) {
		owed_before = vh_pace_owed(owed_before, got, true, vq->pace_len >= pace_max_ticks(),
		                           false);
	}
	vq->owed = owed_before > got ? owed_before - got : 0;
	/* Low depth (both rules need owed_before >= PACE_OWED), or nothing more could be fetched.
	 */
	if (owed_before < PACE_OWED || vq->nfree == 0) {
		return VH_POLL_BUSY;
	}
	if (vq->quiet_flushes >= PACE_POLLING) {
		uint64_t len = pace_polling(vq, owed_before, got);

		if (len != 0) {
			vq->pace_until = vh_reactor_now_ticks() + len;
		}
	} else if (vq->owed >= PACE_OWED && got < PACE_TRICKLE) {
		vq->pace_until = vh_reactor_now_ticks() + pace_ticks();
	}
	return VH_POLL_BUSY;
}

/* Before the reactor sleeps: ask the guest to kick us, then look once more. */
static int
vq_arm(void *arg)
{
	struct vh_vq *vq = arg;

	if (vq->retry_head != NULL) {
		return 1;
	}
	if (!vq->running || vq->stopping || vq->broken) {
		return 0;
	}
	if (vq->cur_kickfd < 0) {
		return 1; /* a front-end that never kicks (NOFD) must be polled: no sleeping */
	}
	/* After a sleep the next request is waited for: no pacing. */
	vq->owed = 0;
	vq->pace_until = 0;
	if (vq->packed) {
		vh_vq_packed_enable_kicks(vq);
		/* The event suppression store before the descriptor read (store-load). */
		VH_SMP_MB();
		return vh_vq_packed_avail(vq);
	}
	if (vq->event_idx) {
		/* avail_event sits right after the used ring (validated in vh_vq_prepare). */
		VH_WRITE_ONCE(*(uint16_t *)&vq->used->ring[vq->size], vq->last_avail);
		log_used(vq, USED_AVAIL_EVENT(vq), 2);
	} else {
		VH_WRITE_ONCE(vq->used->flags, 0);
		log_used(vq, 0, 2);
	}
	/* Order the flag/avail_event store before re-reading avail->idx (store-load). */
	VH_SMP_MB();
	if (vq->no_fetch && !vq->nofetch_waiting) {
		return 0; /* buffers the device does not want yet are no reason to stay awake */
	}
	return VH_READ_ONCE(vq->avail->idx) != vq->last_avail;
}

static void
vq_disarm(void *arg)
{
	struct vh_vq *vq = arg;

	/*
	 * Polling again: suppress kicks. With EVENT_IDX we leave avail_event behind; the guest
	 * kicks at most once per 2^16 requests until we arm again.
	 */
	if (vq->packed) {
		vh_vq_packed_disable_kicks(vq);
	} else if (!vq->event_idx) {
		VH_WRITE_ONCE(vq->used->flags, VRING_USED_F_NO_NOTIFY);
		log_used(vq, 0, 2);
	}
	/* Work that arrived while we slept with notifications on came with a kick. */
	if (vq->running && !vq->broken &&
	    (vq->packed ? vh_vq_packed_avail(vq)
	                : VH_READ_ONCE(vq->avail->idx) != vq->last_avail)) {
		VH_STAT_ADD(vq->stat_kicks_recv, 1);
	}
}

static const struct vh_poller_ops vq_ops = {
        .poll = vq_poll,
        .arm = vq_arm,
        .disarm = vq_disarm,
};

/* Reactor: take the call/kick fds and enable state the control thread left for us. */
static void
apply_updates(struct vh_vq *vq)
{
	int fd = __atomic_exchange_n(&vq->pend_callfd, VH_VQ_FD_KEEP, __ATOMIC_ACQ_REL);

	if (fd != VH_VQ_FD_KEEP) {
		int old = vq->cur_callfd;

		vq->cur_callfd = fd;
		if (old >= 0 && old != fd) {
			close(old);
		}
	}
	fd = __atomic_exchange_n(&vq->pend_kickfd, VH_VQ_FD_KEEP, __ATOMIC_ACQ_REL);
	if (fd != VH_VQ_FD_KEEP) {
		int old = vq->cur_kickfd;

		/* Re-register before closing: the old fd must leave our epoll set first. */
		vq->cur_kickfd = fd;
		if (vq->poller != NULL && vh_poller_set_wake_fd(vq->poller, fd) < 0) {
			VH_LOG_RL(VH_LOG_WARN, vq->prefix,
			          "cannot watch the new kick fd: polling only");
		}
		if (old >= 0 && old != fd) {
			close(old);
		}
	}
	vq->running = __atomic_load_n(&vq->enable_req, __ATOMIC_ACQUIRE) != 0;
}

static void
update_msg(void *arg)
{
	struct vh_vq *vq = arg;
	int callfd = vq->cur_callfd;

	/* Stopped in between: vh_vq_prepare() takes the control thread's values directly. */
	if (!vq->stop_reported) {
		apply_updates(vq);
		/*
		 * A new call fd: a signal sent on the old one may be lost (QEMU starts a device
		 * with its masked notifiers as call fds and, when it unmasks them right after,
		 * drops what they caught), and with EVENT_IDX no later completion would signal
		 * again until the driver moves used_event. Signal once on the new fd; a spurious
		 * interrupt costs the driver one look at the used ring.
		 */
		if (vq->cur_callfd != callfd && vq->cur_callfd >= 0 && vq->running) {
			vq->signalled_used_valid = false;
			kick_call(vq);
		}
	}
}

static void
start_msg(void *arg)
{
	struct vh_vq *vq = arg;

	vq->dq = NULL;
	vq->dq_started = vq->ops->queue_start(vq) == 0;
	vq->poller = vh_poller_register(&vq_ops, vq, vq->cur_kickfd, vq->prefix);
	if (!vq->dq_started || vq->poller == NULL) {
		VH_LOG_RL(VH_LOG_ERROR, vq->prefix, "cannot start queue: out of memory");
		/* The stop that follows the session close releases what we got. */
		vh_vq_broken(vq, "queue start failed");
		return;
	}
	vq->signalled_used_valid = false;
	vq->owed = 0;
	vq->pace_until = 0;
	vq->pace_len = 0;
	vq->quiet_flushes = 0;
	if (vq->packed) {
		vh_vq_packed_disable_kicks(vq);
	} else {
		vq->last_used = VH_READ_ONCE(vq->used->idx);
		vq->published = vq->last_used;
		if (!vq->event_idx) {
			VH_WRITE_ONCE(vq->used->flags, VRING_USED_F_NO_NOTIFY);
			log_used(vq, 0, 2);
		}
	}
	/*
	 * One interrupt at every start: a completion published by a previous instance just
	 * before it died may never have been signalled.
	 */
	if (vq->cur_callfd >= 0) {
		kick_call(vq);
	}
	VH_DEBUG(vq->prefix, "started: size %u, avail %u, used %u, reactor %u", vq->size,
	         vq->last_avail, vq->last_used, vh_reactor_index(vq->reactor));
	if (vq->packed) {
		vh_vq_packed_start(vq);
		return;
	}
	if (vq->nresubmit > 0) {
		VH_LOG_RL(VH_LOG_NOTICE, vq->prefix,
		          "resubmitting %u request(s) left in flight by a previous instance",
		          vq->nresubmit);
	}
	for (uint32_t i = 0; i < vq->nresubmit && !vq->broken; i++) {
		submit_head(vq, vq->resubmit[i]);
	}
	vq->nresubmit = 0;
}

static void
stopped_msg(void *arg)
{
	struct vh_vq *vq = arg;
	void (*done)(struct vh_vq *) = vq->stop_done;

	vq->started = false;
	vq->stop_done = NULL;
	VH_DEBUG(vq->prefix, "stopped at position 0x%x", vq->base);
	if (done) {
		done(vq);
	}
}

static void
vq_check_stopped(struct vh_vq *vq)
{
	if (vq->inflight > 0 || vq->flush.queued || vq->stop_reported) {
		return;
	}
	vq->stop_reported = true;
	vh_poller_unregister(&vq->poller);
	if (vq->dq_started) {
		vq->ops->queue_stop(vq);
		vq->dq_started = false;
	}
	/* What the control thread sent last is what it will own from now on. */
	apply_updates(vq);
	vq->stopping = false;
	vq->base = vq->packed ? vh_vq_packed_position(vq) : vq->last_avail;
	/* The control thread owns the queue again from here (release via the message queue). */
	vh_control_post(&vq->stopped_node);
}

static void
stop_msg(void *arg)
{
	struct vh_vq *vq = arg;

	vq->stopping = true;
	vq_check_stopped(vq);
}

/* ---- control side ---- */

void
vh_vq_free_reqs(struct vh_vq *vq)
{
	free(vq->reqs);
	free(vq->free_slots);
	free(vq->head_busy);
	free(vq->scratch);
	free(vq->batch);
	free(vq->resubmit);
	vh_vq_packed_free(vq);
	vq->batch = NULL;
	vq->resubmit = NULL;
	vq->reqs = NULL;
	vq->free_slots = NULL;
	vq->head_busy = NULL;
	vq->scratch = NULL;
	vq->nslots = 0;
}

static int
alloc_reqs(struct vh_vq *vq)
{
	uint32_t nslots = VH_MIN(vq->size, (uint32_t)VH_VQ_MAX_SLOTS);
	/* Slots stay aligned for the device's request type (it holds pointers and u64s). */
	uint32_t req_size = (uint32_t)((vq->ops->req_size + 15) & ~(size_t)15);

	if (vq->reqs != NULL && vq->nslots == nslots && vq->req_size == req_size &&
	    vq->head_busy != NULL) {
		goto reset;
	}
	vh_vq_free_reqs(vq);
	vq->req_size = req_size;
	vq->reqs = calloc(nslots, req_size);
	vq->free_slots = calloc(nslots, sizeof(*vq->free_slots));
	vq->head_busy = calloc((VH_MAX_QUEUE_SIZE + 63) / 64, sizeof(uint64_t));
	vq->scratch = calloc(VH_VQ_SCRATCH_DESC, sizeof(struct vring_desc));
	vq->batch = calloc(nslots, sizeof(*vq->batch));
	vq->resubmit = calloc(nslots, sizeof(*vq->resubmit));
	if (!vq->reqs || !vq->free_slots || !vq->head_busy || !vq->scratch || !vq->batch ||
	    !vq->resubmit) {
		vh_vq_free_reqs(vq);
		return -ENOMEM;
	}
	vq->nslots = nslots;
reset:
	memset(vq->head_busy, 0, (VH_MAX_QUEUE_SIZE + 63) / 64 * sizeof(uint64_t));
	for (uint32_t i = 0; i < nslots; i++) {
		struct vh_req *req = vh_vq_req(vq, i);

		req->vq = vq;
		req->slot = (uint16_t)i;
		req->inflight = false;
		vq->free_slots[i] = (uint16_t)(nslots - 1 - i);
	}
	vq->nfree = nslots;
	vq->nbatch = 0;
	vq->nresubmit = 0;
	return 0;
}

/* Attach the queue's inflight region, if any, and recover what a previous instance left. */
static int
attach_inflight(struct vh_vq *vq)
{
	struct vh_inflight *ifl = &vq->s->inflight;
	uint16_t next_avail;
	int rc;

	vq->ifl = NULL;
	if (ifl->map == NULL) {
		return 0;
	}
	/* The driver may use a smaller ring than QEMU's queue-size (SeaBIOS does). */
	if (vq->idx >= ifl->num_queues || vq->size > ifl->queue_size || ifl->packed) {
		return -EINVAL;
	}
	vq->ifl = (struct inflight_split_queue *)(ifl->base + vq->idx * vh_inflight_queue_stride(
	                                                                        ifl->queue_size));
	rc = vh_inflight_recover(vq->ifl, (uint16_t)vq->size, ifl->queue_size,
	                         VH_READ_ONCE(vq->used->idx), vq->resubmit, vq->nslots,
	                         &vq->nresubmit, &next_avail, &vq->ifl_counter);
	if (rc < 0) {
		vq->ifl = NULL;
		return rc;
	}
	/*
	 * The region, not SET_VRING_BASE, knows how far we fetched: QEMU restores the base from
	 * used->idx after a crash, which would fetch the in-flight requests a second time.
	 */
	vq->last_avail = next_avail;
	return 0;
}

/* A split ring's addresses and request state, and where it resumes. 0 or -errno. */
static int
prepare_split(struct vh_vq *vq)
{
	const struct vh_mem *mem = vq->s->mem;
	uint64_t n = vq->size;
	int rc;

	vh_vq_packed_free(vq); /* the driver may have used a packed ring before a reset */
	/* Alignment from VIRTIO 1.2 §2.7: desc 16, avail 2, used 4. */
	if ((vq->addr.desc_user_addr & 15) || (vq->addr.avail_user_addr & 1) ||
	    (vq->addr.used_user_addr & 3)) {
		return -EINVAL;
	}
	vq->desc = vh_mem_qva_to_hva(mem, vq->addr.desc_user_addr, 16 * n);
	vq->avail = vh_mem_qva_to_hva(mem, vq->addr.avail_user_addr, 6 + 2 * n);
	vq->used = vh_mem_qva_to_hva(mem, vq->addr.used_user_addr, 6 + 8 * n);
	if (vq->desc == NULL || vq->avail == NULL || vq->used == NULL) {
		return -EFAULT;
	}
	/*
	 * The host addresses too: a region's mmap_offset is the front-end's choice, so an aligned
	 * front-end address can land misaligned in our mapping (found by fuzz_vhost_msg).
	 */
	if (((uintptr_t)vq->desc & 15) || ((uintptr_t)vq->avail & 1) || ((uintptr_t)vq->used & 3)) {
		return -EINVAL;
	}
	if (vq->base > 0xffff) {
		return -EINVAL; /* a packed ring's position, and the features changed since */
	}
	rc = alloc_reqs(vq);
	if (rc < 0) {
		return rc;
	}
	vq->mask = (uint16_t)(n - 1);
	vq->last_avail = (uint16_t)vq->base;
	return attach_inflight(vq);
}

int
vh_vq_prepare(struct vh_vq *vq)
{
	int rc;

	if (vq->s->mem == NULL || !vq->addr_set || vq->size == 0 || !vq->kick_set) {
		return -EAGAIN; /* not fully configured yet */
	}
	vq->event_idx = (vq->s->features & (1ull << VIRTIO_RING_F_EVENT_IDX)) != 0;
	vq->packed = (vq->s->features & (1ull << VIRTIO_F_RING_PACKED)) != 0;
	if (vq->packed) {
		rc = alloc_reqs(vq);
		if (rc == 0) {
			rc = vh_vq_packed_prepare(vq);
		}
	} else {
		rc = prepare_split(vq);
	}
	if (rc < 0) {
		return rc;
	}
	vq->used_log_gpa = vq->addr.log_guest_addr;
	vq->used_log_on = (vq->addr.flags & VHOST_VRING_F_LOG) != 0;
	vq->running = vq->enabled;
	vq->enable_req = vq->enabled;
	vq->pend_callfd = VH_VQ_FD_KEEP;
	vq->pend_kickfd = VH_VQ_FD_KEEP;
	vq->stopping = false;
	vq->stop_reported = false;
	vq->broken = false;
	vq->inflight = 0;
	vq->retry_head = NULL;
	vq->retry_tail = &vq->retry_head;
	vq->flush.fn = vq_flush;
	vq->flush.queued = false;
	vq->cur_callfd = vq->callfd;
	vq->cur_kickfd = vq->kickfd;
	return 0;
}

/* The same node goes there and back: the reactor re-posts it to the control thread. */
static void
sync_msg(void *arg)
{
	struct vh_vq *vq = arg;

	if (vh_reactor_self() != NULL) {
		vh_control_post(&vq->sync_node);
		return;
	}
	void (*done)(struct vh_vq *) = vq->sync_done;

	vq->sync_done = NULL;
	done(vq);
}

void
vh_vq_sync(struct vh_vq *vq, void (*done)(struct vh_vq *vq))
{
	vq->sync_done = done;
	vh_reactor_post(vq->reactor, &vq->sync_node);
}

void
vh_vq_init_nodes(struct vh_vq *vq)
{
	vh_msg_node_init(&vq->start_node, start_msg, vq);
	vh_msg_node_init(&vq->stop_node, stop_msg, vq);
	vh_msg_node_init(&vq->update_node, update_msg, vq);
	vh_msg_node_init(&vq->stopped_node, stopped_msg, vq);
	vh_msg_node_init(&vq->broken_node, broken_msg, vq);
	vh_msg_node_init(&vq->sync_node, sync_msg, vq);
	vq->pend_callfd = VH_VQ_FD_KEEP;
	vq->pend_kickfd = VH_VQ_FD_KEEP;
}

void
vh_vq_start(struct vh_vq *vq)
{
	/* vh_vq_prepare() initialised the reactor-owned fields; the node publishes them. */
	vq->started = true;
	vh_reactor_post(vq->reactor, &vq->start_node);
}

void
vh_vq_stop(struct vh_vq *vq, void (*done)(struct vh_vq *vq))
{
	vq->stop_done = done;
	vh_reactor_post(vq->reactor, &vq->stop_node);
}

/* Leave @fd for the reactor; an fd it never took is ours to close. */
static void
hand_fd(struct vh_vq *vq, int *slot, int fd)
{
	int stale = __atomic_exchange_n(slot, fd, __ATOMIC_ACQ_REL);

	if (stale >= 0) {
		close(stale);
	}
	vh_reactor_post(vq->reactor, &vq->update_node);
}

void
vh_vq_set_callfd_running(struct vh_vq *vq, int fd)
{
	hand_fd(vq, &vq->pend_callfd, fd);
}

void
vh_vq_set_kickfd_running(struct vh_vq *vq, int fd)
{
	hand_fd(vq, &vq->pend_kickfd, fd);
}

void
vh_vq_set_enable_running(struct vh_vq *vq, bool enable)
{
	__atomic_store_n(&vq->enable_req, enable ? 1 : 0, __ATOMIC_RELEASE);
	vh_reactor_post(vq->reactor, &vq->update_node);
}

void
vh_vq_drop(struct vh_vq *vq, struct vh_req *req)
{
	/* A request we will never answer (the session is closing): just release its slot. */
	head_clear(vq, req->head);
	req->inflight = false;
	vq->free_slots[vq->nfree++] = req->slot;
	VH_STAT_ADD(vq->inflight, -1);
}

void
vh_vq_reset(struct vh_vq *vq)
{
	int *fds[] = {&vq->kickfd, &vq->callfd, &vq->errfd};

	for (size_t i = 0; i < VH_ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0) {
			close(*fds[i]);
		}
		*fds[i] = -1;
	}
	vq->size = 0;
	vq->addr_set = false;
	vq->kick_set = false;
	vq->enabled = false;
	vq->base = 0;
	vq->base_set = false;
}

uint32_t
vh_vq_position(const struct vh_vq *vq)
{
	return vq->base;
}

int
vh_vq_set_position(struct vh_vq *vq, uint32_t pos, bool packed)
{
	if (!packed && pos > 0xffff) {
		return -EINVAL; /* split rings: a 16-bit free-running index */
	}
	vq->base = pos;
	vq->base_set = true;
	return 0;
}
