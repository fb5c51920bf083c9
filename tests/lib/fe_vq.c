/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Driver side of a split virtqueue (VIRTIO 1.2 §2.7) and virtio-blk requests (§5.2.6), as a
 * guest kernel would drive them. The ring lives in shared guest RAM; every index the driver
 * owns is kept in private memory and only written to the ring, never read back, so a device
 * scribbling on the ring cannot confuse our bookkeeping.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fe_internal.h"
#include "fe_msg.h"

/* One contiguous piece of a request before it is cut into descriptors. */
struct extent {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

static uint64_t
rng_next(struct vh_fe_vq *vq)
{
	/* xorshift64*: deterministic per seed, so a failing layout can be replayed. */
	vq->rng ^= vq->rng >> 12;
	vq->rng ^= vq->rng << 25;
	vq->rng ^= vq->rng >> 27;
	return vq->rng * 0x2545f4914f6cdd1dull;
}

static void *
gpa_ptr(struct vh_fe_vq *vq, uint64_t gpa, uint64_t len)
{
	return vh_fe_gpa_to_ptr(vq->fe->mem, gpa, len);
}

static uint64_t
alloc(struct vh_fe *fe, uint64_t len, uint64_t align)
{
	return vh_fe_mem_alloc(fe->mem, len, align);
}

int
fe_vq_setup(struct vh_fe *fe, struct vh_fe_vq *vq, unsigned int idx)
{
	uint16_t n = (uint16_t)fe->opts.queue_size;

	memset(vq, 0, sizeof(*vq));
	vq->fe = fe;
	vq->idx = idx;
	vq->size = n;
	vq->max_chain = fe->opts.max_chain;
	vq->kick_fd = vq->call_fd = vq->err_fd = -1;
	vq->rng = 0x9e3779b97f4a7c15ull + idx;
	vq->ring = fe->ring;
	/* +2 bytes on avail/used hold used_event/avail_event (EVENT_IDX). */
	if (vq->ring.legacy_layout) {
		/* vring_init(align 4096): avail right after desc, used on the next 4 KiB. */
		uint64_t used_off = (16ull * n + 6 + 2ull * n + 4095) & ~4095ull;
		uint64_t base = alloc(fe, used_off + 6 + 8ull * n, 4096);

		vq->desc_gpa = base;
		vq->avail_gpa = base == UINT64_MAX ? base : base + 16ull * n;
		vq->used_gpa = base == UINT64_MAX ? base : base + used_off;
	} else {
		vq->desc_gpa = alloc(fe, 16ull * n, 64);
		vq->avail_gpa = alloc(fe, 6 + 2ull * n, 64);
		vq->used_gpa = alloc(fe, 6 + 8ull * n, 64);
	}
	vq->slots_gpa = alloc(fe, (uint64_t)FE_SLOT_SIZE * n, 64);
	vq->ind_gpa = alloc(fe, 16ull * n * vq->max_chain, 64);
	if (vq->desc_gpa == UINT64_MAX || vq->avail_gpa == UINT64_MAX ||
	    vq->used_gpa == UINT64_MAX || vq->slots_gpa == UINT64_MAX ||
	    vq->ind_gpa == UINT64_MAX) {
		return -ENOMEM;
	}
	vq->desc = gpa_ptr(vq, vq->desc_gpa, 16ull * n);
	vq->avail = gpa_ptr(vq, vq->avail_gpa, 6 + 2ull * n);
	vq->used = gpa_ptr(vq, vq->used_gpa, 6 + 8ull * n);
	vq->slots = gpa_ptr(vq, vq->slots_gpa, (uint64_t)FE_SLOT_SIZE * n);
	vq->ind = gpa_ptr(vq, vq->ind_gpa, 16ull * n * vq->max_chain);
	vq->next = calloc(n, sizeof(*vq->next));
	vq->inflight = calloc(n, sizeof(*vq->inflight));
	vq->p_hold_idx = calloc(n, sizeof(*vq->p_hold_idx));
	vq->p_hold_flags = calloc(n, sizeof(*vq->p_hold_flags));
	if (!vq->next || !vq->inflight || !vq->p_hold_idx || !vq->p_hold_flags) {
		return -ENOMEM;
	}
	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->kick_fd < 0 || vq->call_fd < 0 || vq->err_fd < 0) {
		return -errno;
	}
	fe_vq_reset(vq);
	return 0;
}

void
fe_vq_teardown(struct vh_fe_vq *vq)
{
	free(vq->next);
	free(vq->inflight);
	free(vq->p_hold_idx);
	free(vq->p_hold_flags);
	if (vq->kick_fd >= 0) {
		close(vq->kick_fd);
	}
	if (vq->call_fd >= 0) {
		close(vq->call_fd);
	}
	if (vq->err_fd >= 0) {
		close(vq->err_fd);
	}
}

void
fe_vq_reset(struct vh_fe_vq *vq)
{
	uint16_t i;

	memset(vq->desc, 0, 16ull * vq->size);
	memset(vq->avail, 0, 6 + 2ull * vq->size);
	memset(vq->used, 0, 6 + 8ull * vq->size);
	for (i = 0; i < vq->size; i++) {
		vq->next[i] = (uint16_t)(i + 1);
		vq->inflight[i] = NULL;
	}
	vq->free_head = 0;
	vq->num_free = vq->size;
	vq->avail_idx = vq->avail_pub = vq->used_seen = vq->base = 0;
	vq->ninflight = 0;
	vq->fresh = true;
	if (vq->packed) {
		fe_vq_packed_reset(vq);
	}
}

static bool
used_event_far(const struct vh_fe_vq *vq)
{
	return vq->event_idx && vq->ring.used_event_far && vq->mode == VH_FE_POLL;
}

/* Tell the device whether we want interrupts, in the form the negotiated features use. */
static void
set_irq_suppression(struct vh_fe_vq *vq, bool want_irq)
{
	uint16_t *used_event = &vq->avail->ring[vq->size];

	if (vq->packed) {
		fe_vq_packed_irq(vq, want_irq);
		return;
	}
	if (used_event_far(vq)) {
		/* SPDK's ring init: the highest index, so the first lap never triggers. */
		__atomic_store_n(used_event, htole16(0xffff), __ATOMIC_RELAXED);
		return;
	}
	if (vq->event_idx) {
		/*
		 * used_event = used_seen asks for a call at the next completion; used_seen - 1 puts
		 * the trigger a full lap (65535 completions) away, i.e. "no interrupt".
		 */
		__atomic_store_n(used_event, htole16(want_irq ? vq->used_seen : vq->used_seen - 1),
		                 __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&vq->avail->flags,
		                 htole16(want_irq ? 0 : VRING_AVAIL_F_NO_INTERRUPT),
		                 __ATOMIC_RELAXED);
	}
}

void
fe_vq_prepare(struct vh_fe_vq *vq, uint64_t features)
{
	bool packed = fe_has(features, VIRTIO_F_RING_PACKED);

	vq->event_idx = fe_has(features, VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = fe_has(features, VIRTIO_RING_F_INDIRECT_DESC);
	if (vq->fresh) {
		/* A fresh packed ring starts with both wrap counters at 1 (VIRTIO 1.2 §2.8.1). */
		vq->packed = packed;
		vq->base = packed ? 0x80008000u : 0;
		if (packed) {
			fe_vq_packed_reset(vq);
		}
		vq->fresh = false;
	}
	if (vq->packed) {
		set_irq_suppression(vq, vq->mode == VH_FE_INTERRUPT);
		return;
	}
	/* Without EVENT_IDX the used_event slot is meaningless; flags carry the wish instead. */
	if (vq->event_idx) {
		vq->avail->flags = 0;
	}
	set_irq_suppression(vq, vq->mode == VH_FE_INTERRUPT);
}

struct vh_fe_vq *
vh_fe_vq(struct vh_fe *fe, unsigned int i)
{
	return i < fe->opts.num_queues ? &fe->vqs[i] : NULL;
}

void
vh_fe_vq_set_mode(struct vh_fe_vq *vq, enum vh_fe_irq mode)
{
	vq->mode = mode;
	set_irq_suppression(vq, mode == VH_FE_INTERRUPT);
}

void
vh_fe_vq_set_always_kick(struct vh_fe_vq *vq, bool on)
{
	vq->always_kick = on;
}

void
vh_fe_vq_seed(struct vh_fe_vq *vq, uint64_t seed)
{
	vq->rng = seed ? seed : 1;
}

static void
put_header(uint8_t *p, const struct vh_fe_req *req)
{
	uint32_t t = htole32(req->type), prio = htole32(req->ioprio);
	uint64_t s = htole64(req->sector);

	memcpy(p, &t, 4);
	memcpy(p + 4, &prio, 4);
	memcpy(p + 8, &s, 8);
}

static bool
data_is_write(const struct vh_fe_req *req)
{
	if (req->dir != VH_FE_DIR_AUTO) {
		return req->dir == VH_FE_DIR_IN;
	}
	return req->type == VIRTIO_BLK_T_IN || req->type == VIRTIO_BLK_T_GET_ID;
}

/* Lay the request out as extents: header, data, status. Returns the count or -errno. */
static int
build_extents(struct vh_fe_vq *vq, struct vh_fe_req *req, struct extent *ex, unsigned int max)
{
	bool w = data_is_write(req);
	uint64_t hdr_gpa, st_gpa;
	unsigned int i, n = 0;
	uint8_t *hp;

	if (req->niov + 2 > max) {
		return -E2BIG;
	}
	if (req->dir == VH_FE_DIR_RAW) {
		/* Any device: the caller's buffers, in its directions, and nothing else. */
		if ((req->layout & (VH_FE_L_INLINE_HDR | VH_FE_L_INLINE_STATUS)) ||
		    req->nout > req->niov || req->niov == 0) {
			return -EINVAL;
		}
		req->status_ptr = NULL;
		for (i = 0; i < req->niov; i++) {
			if (req->iov[i].len == 0 ||
			    !gpa_ptr(vq, req->iov[i].gpa, req->iov[i].len)) {
				return -EINVAL;
			}
			ex[n++] = (struct extent){req->iov[i].gpa, req->iov[i].len, i >= req->nout};
		}
		return (int)n;
	}
	if ((req->layout & (VH_FE_L_INLINE_HDR | VH_FE_L_INLINE_STATUS)) && req->niov == 0) {
		return -EINVAL;
	}
	hdr_gpa = vq->slots_gpa + (uint64_t)req->head * FE_SLOT_SIZE;
	st_gpa = hdr_gpa + 16;
	if (req->layout & VH_FE_L_INLINE_HDR) {
		hdr_gpa = req->iov[0].gpa - 16;
	}
	if (req->layout & VH_FE_L_INLINE_STATUS) {
		st_gpa = req->iov[req->niov - 1].gpa + req->iov[req->niov - 1].len;
	}
	hp = gpa_ptr(vq, hdr_gpa, 16);
	req->status_ptr = gpa_ptr(vq, st_gpa, 1);
	if (!hp || !req->status_ptr) {
		return -EINVAL;
	}
	put_header(hp, req);
	*req->status_ptr = 0xff;
	ex[n++] = (struct extent){hdr_gpa, 16, false};
	for (i = 0; i < req->niov; i++) {
		if (req->iov[i].len == 0 || !gpa_ptr(vq, req->iov[i].gpa, req->iov[i].len)) {
			return -EINVAL;
		}
		ex[n++] = (struct extent){req->iov[i].gpa, req->iov[i].len, w};
	}
	ex[n++] = (struct extent){st_gpa, 1, true};
	return (int)n;
}

/* Merge GPA-adjacent extents of one direction (VERSION_1 allows any layout). */
static unsigned int
merge_extents(struct extent *ex, unsigned int n)
{
	unsigned int i, out = 0;

	for (i = 0; i < n; i++) {
		struct extent *last = out ? &ex[out - 1] : NULL;

		if (last && last->write == ex[i].write && last->gpa + last->len == ex[i].gpa &&
		    (uint64_t)last->len + ex[i].len <= UINT32_MAX) {
			last->len += ex[i].len;
		} else {
			ex[out++] = ex[i];
		}
	}
	return out;
}

static int
emit(struct vring_desc *d, unsigned int *nd, unsigned int max, uint64_t gpa, uint32_t len, bool w)
{
	if (*nd >= max) {
		return -E2BIG;
	}
	d[*nd].addr = htole64(gpa);
	d[*nd].len = htole32(len);
	d[*nd].flags = htole16(w ? VRING_DESC_F_WRITE : 0);
	d[*nd].next = 0;
	(*nd)++;
	return 0;
}

/* Cut one extent into descriptors: max_desc_len, then optional random cuts. */
static int
cut_extent(struct vh_fe_vq *vq, const struct vh_fe_req *req, const struct extent *e,
           struct vring_desc *d, unsigned int *nd, unsigned int max)
{
	uint64_t gpa = e->gpa;
	uint32_t left = e->len;
	int rc;

	while (left) {
		uint32_t piece = left;

		if (req->max_desc_len && piece > req->max_desc_len) {
			piece = req->max_desc_len;
		}
		if ((req->layout & VH_FE_L_RANDOM_SPLIT) && piece > 1 && rng_next(vq) % 4) {
			piece = 1 + (uint32_t)(rng_next(vq) % piece);
		}
		rc = emit(d, nd, max, gpa, piece, e->write);
		if (rc < 0) {
			return rc;
		}
		gpa += piece;
		left -= piece;
	}
	return 0;
}

static void
link_chain(struct vring_desc *d, const uint16_t *idx, unsigned int n)
{
	unsigned int i;

	for (i = 0; i + 1 < n; i++) {
		d[idx ? idx[i] : i].flags |= htole16(VRING_DESC_F_NEXT);
		d[idx ? idx[i] : i].next = htole16(idx ? idx[i + 1] : (uint16_t)(i + 1));
	}
}

/* Build the chain into scratch descriptors d[]. Returns the count or -errno. */
int
fe_build_chain(struct vh_fe_vq *vq, struct vh_fe_req *req, struct vring_desc *d, unsigned int max)
{
	struct extent ex[VH_FE_MAX_IOV + 2];
	unsigned int i, nd = 0, n;
	int rc;

	rc = build_extents(vq, req, ex, VH_FE_MAX_IOV + 2);
	if (rc < 0) {
		return rc;
	}
	n = (unsigned int)rc;
	if (!(req->layout & VH_FE_L_NO_MERGE)) {
		n = merge_extents(ex, n);
	}
	for (i = 0; i < n; i++) {
		rc = cut_extent(vq, req, &ex[i], d, &nd, max);
		if (rc < 0) {
			return rc;
		}
	}
	return (int)nd;
}

int
vh_fe_req_queue(struct vh_fe_vq *vq, struct vh_fe_req *req)
{
	struct vring_desc d[VH_FE_MAX_CHAIN];
	bool indirect;
	unsigned int max, i;
	uint16_t head, cur = 0, chain[VH_FE_MAX_CHAIN];
	int n;

	if (req->inflight) {
		return -EBUSY;
	}
	if (!vq->started || req->niov > VH_FE_MAX_IOV) {
		return -EINVAL;
	}
	req->layout = (req->layout | vq->ring.layout_force) & ~vq->ring.layout_deny;
	if (vq->packed) {
		return fe_vq_packed_queue(vq, req);
	}
	indirect = (req->layout & VH_FE_L_INDIRECT) && vq->indirect;
	if (vq->num_free == 0) {
		return -ENOSPC;
	}
	/* The head (first free descriptor) names the request's header/status slot. */
	head = vq->free_head;
	req->head = head;
	max = indirect ? vq->max_chain : vq->size;
	if (max > VH_FE_MAX_CHAIN) {
		max = VH_FE_MAX_CHAIN;
	}
	n = fe_build_chain(vq, req, d, max);
	if (n < 0) {
		return n;
	}
	if (indirect) {
		struct vring_desc *t = vq->ind + (size_t)head * vq->max_chain;

		link_chain(d, NULL, (unsigned int)n);
		memcpy(t, d, sizeof(d[0]) * (size_t)n);
		vq->desc[head].addr = htole64(vq->ind_gpa + 16ull * head * vq->max_chain);
		vq->desc[head].len = htole32(16u * (uint32_t)n);
		vq->desc[head].flags = htole16(VRING_DESC_F_INDIRECT);
		vq->desc[head].next = 0;
		vq->free_head = vq->next[head];
		req->ndesc = 1;
	} else {
		if ((unsigned int)n > vq->num_free) {
			return -ENOSPC;
		}
		for (i = 0; i < (unsigned int)n; i++) {
			cur = i ? vq->next[cur] : head;
			chain[i] = cur;
			vq->desc[cur] = d[i];
		}
		link_chain(vq->desc, chain, (unsigned int)n);
		vq->free_head = vq->next[cur];
		req->ndesc = (uint16_t)n;
	}
	vq->num_free -= req->ndesc;
	vq->inflight[head] = req;
	vq->ninflight++;
	req->inflight = true;
	req->status = 0xff;
	req->used_len = 0;
	vq->avail->ring[vq->avail_idx & (vq->size - 1)] = htole16(head);
	vq->avail_idx++;
	vq->st.submitted++;
	if (vq->ring.kick_per_request) {
		int rc = vh_fe_vq_flush(vq);

		return rc < 0 ? rc : 0;
	}
	return 0;
}

static bool
need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

int
vh_fe_vq_flush(struct vh_fe_vq *vq)
{
	uint16_t old = vq->avail_pub, new_idx = vq->avail_idx;
	uint64_t one = 1;
	bool kick;

	if (vq->packed) {
		return fe_vq_packed_flush(vq);
	}
	if (old == new_idx) {
		return 0;
	}
	/* Release: ring entries and descriptors are visible before the index that covers them. */
	__atomic_store_n(&vq->avail->idx, htole16(new_idx), __ATOMIC_RELEASE);
	vq->avail_pub = new_idx;
	/*
	 * Full barrier: the index store must be visible before we read the device's suppression
	 * state, or we and a device going idle could each miss the other (lost kick).
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (used_event_far(vq)) {
		/* SPDK's flush: park used_event a ring and one behind what we reaped. */
		__atomic_store_n(&vq->avail->ring[vq->size],
		                 htole16((uint16_t)(vq->used_seen - vq->size - 1)),
		                 __ATOMIC_RELAXED);
	}
	if (vq->event_idx) {
		uint16_t *avail_event = (uint16_t *)&vq->used->ring[vq->size];
		uint16_t ev = le16toh(__atomic_load_n(avail_event, __ATOMIC_RELAXED));

		kick = need_event(ev, new_idx, old);
	} else {
		kick = !(le16toh(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED)) &
		         VRING_USED_F_NO_NOTIFY);
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

int
vh_fe_req_submit(struct vh_fe_vq *vq, struct vh_fe_req *req)
{
	int rc = vh_fe_req_queue(vq, req);

	if (rc < 0) {
		return rc;
	}
	rc = vh_fe_vq_flush(vq);
	return rc < 0 ? rc : 0;
}

static void
free_chain(struct vh_fe_vq *vq, uint16_t head, uint16_t ndesc)
{
	uint16_t last = head, i;

	for (i = 1; i < ndesc; i++) {
		last = vq->next[last];
	}
	vq->next[last] = vq->free_head;
	vq->free_head = head;
	vq->num_free += ndesc;
}

int
vh_fe_vq_poll(struct vh_fe_vq *vq, struct vh_fe_req **done, unsigned int max)
{
	uint16_t used_idx;
	unsigned int n = 0;
	bool bad = false;

	if (vq->packed) {
		return fe_vq_packed_poll(vq, done, max);
	}
	/* Acquire: used entries are read only after the index that publishes them. */
	used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	while (vq->used_seen != used_idx && (!done || n < max)) {
		struct vring_used_elem *e = &vq->used->ring[vq->used_seen & (vq->size - 1)];
		uint32_t id = le32toh(e->id), len = le32toh(e->len);
		struct vh_fe_req *req;

		vq->used_seen++;
		if (id >= vq->size || !vq->inflight[id]) {
			vq->st.bad_used++;
			bad = true;
			continue;
		}
		req = vq->inflight[id];
		vq->inflight[id] = NULL;
		vq->ninflight--;
		free_chain(vq, (uint16_t)id, req->ndesc);
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
	if (vq->event_idx && vq->mode == VH_FE_POLL && !used_event_far(vq)) {
		set_irq_suppression(vq, false);
	}
	return bad ? -EPROTO : (int)n;
}

enum vh_fe_irq
vh_fe_vq_mode(const struct vh_fe_vq *vq)
{
	return vq->mode;
}

int
vh_fe_vq_arm(struct vh_fe_vq *vq)
{
	if (vq->packed) {
		return fe_vq_packed_arm(vq);
	}
	if (vq->mode == VH_FE_INTERRUPT) {
		set_irq_suppression(vq, true);
	}
	/* Re-check after arming: a completion between poll and arming raised no call. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE)) != vq->used_seen;
}

int
vh_fe_vq_call_fd(const struct vh_fe_vq *vq)
{
	return vq->call_fd;
}

int
vh_fe_vq_kick_fd(const struct vh_fe_vq *vq)
{
	return vq->kick_fd;
}

int
vh_fe_vq_ack_call(struct vh_fe_vq *vq)
{
	uint64_t cnt;

	if (read(vq->call_fd, &cnt, sizeof(cnt)) == sizeof(cnt)) {
		vq->st.calls++;
		return 1;
	}
	return 0;
}

int
vh_fe_vq_wait(struct vh_fe_vq *vq, int timeout_ms)
{
	struct pollfd p = {.fd = vq->call_fd, .events = POLLIN};
	int64_t deadline = fe_now_ms() + timeout_ms;

	for (;;) {
		if (vh_fe_vq_arm(vq)) {
			return 1;
		}
		if (vq->mode == VH_FE_POLL) {
			if (fe_now_ms() >= deadline) {
				return 0;
			}
			sched_yield();
			continue;
		}
		if (poll(&p, 1, (int)(deadline - fe_now_ms() > 0 ? deadline - fe_now_ms() : 0)) <=
		    0) {
			return 0;
		}
		vh_fe_vq_ack_call(vq);
	}
}

int
vh_fe_vq_drain(struct vh_fe_vq *vq, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	int rc;

	while (vq->ninflight) {
		rc = vh_fe_vq_poll(vq, NULL, 0);
		if (rc < 0) {
			return rc;
		}
		if (rc == 0 && vq->ninflight) {
			int64_t left = deadline - fe_now_ms();

			if (left <= 0) {
				return -ETIMEDOUT;
			}
			vh_fe_vq_wait(vq, (int)left);
		}
	}
	return 0;
}

unsigned int
vh_fe_vq_pending(const struct vh_fe_vq *vq)
{
	uint16_t used;

	if (vq->packed) {
		return fe_vq_packed_pending((struct vh_fe_vq *)vq);
	}
	used = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));

	return (uint16_t)(vq->avail_pub - used);
}

unsigned int
vh_fe_vq_inflight(const struct vh_fe_vq *vq)
{
	return vq->ninflight;
}

void
vh_fe_vq_stats(const struct vh_fe_vq *vq, struct vh_fe_vq_stats *st)
{
	*st = vq->st;
}

struct vring_desc *
vh_fe_vq_desc(struct vh_fe_vq *vq)
{
	return vq->desc;
}

struct vring_avail *
vh_fe_vq_avail(struct vh_fe_vq *vq)
{
	return vq->avail;
}

struct vring_used *
vh_fe_vq_used(struct vh_fe_vq *vq)
{
	return vq->used;
}

uint16_t
vh_fe_vq_size(const struct vh_fe_vq *vq)
{
	return vq->size;
}

uint16_t
vh_fe_vq_base(const struct vh_fe_vq *vq)
{
	return (uint16_t)vq->base;
}

uint32_t
vh_fe_vq_base32(const struct vh_fe_vq *vq)
{
	return vq->base;
}

bool
vh_fe_vq_is_packed(const struct vh_fe_vq *vq)
{
	return vq->packed;
}

void
vh_fe_blk_dwz_seg(void *buf, uint64_t sector, uint32_t nsect, uint32_t flags)
{
	uint64_t s = htole64(sector);
	uint32_t n = htole32(nsect), f = htole32(flags);
	uint8_t *p = buf;

	memcpy(p, &s, 8);
	memcpy(p + 8, &n, 4);
	memcpy(p + 12, &f, 4);
}
