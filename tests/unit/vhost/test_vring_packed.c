/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vhost/vring_packed.c and the packed half of inflight.c, without a reactor: the queue is
 * prepared by the real vh_vq_prepare() over memfd "guest RAM", and the test thread calls the
 * reactor-side functions itself (fetch, walk, used descriptors) with a recording device, then
 * "crashes" by preparing the queue again over the same inflight region.
 *
 * Guest layout (region A, [0x10000, 0x20000)): the descriptor ring at A, the driver event
 * suppression area at A + 0x1000, the device's at A + 0x1100, buffers from A + 0x4000.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest.h"
#include "vhost/vring_packed.h"

#define A_GPA 0x10000ull
#define B_GPA 0x20000ull
#define RSIZE 0x10000ull
#define A_QVA 0x7f0000000000ull
#define B_QVA 0x7f0000100000ull

#define QSIZE  16
#define RING   (A_GPA)
#define DRIVER (A_GPA + 0x1000)
#define DEVICE (A_GPA + 0x1100)
#define HDR    (A_GPA + 0x4000)
#define DATA   (A_GPA + 0x5000)
#define STATUS (A_GPA + 0x6000)
#define ITABLE (A_GPA + 0x8000)

#define MAX_IOV 136

#define R  0
#define W  VRING_DESC_F_WRITE
#define N  VRING_DESC_F_NEXT
#define I  VRING_DESC_F_INDIRECT
#define FA VIRTQ_DESC_F_AVAIL
#define FU VIRTQ_DESC_F_USED

/* What the recording device saw of each request it was handed. */
struct seen {
	uint16_t head;
	int rc, nr, nw;
	struct iovec iov[MAX_IOV];
	struct vh_req *req;
};

struct fix {
	struct vh_mem mem;
	struct vh_vhost_ctrlr *c;
	struct vh_session *s;
	struct vh_vq *vq;
	struct seen seen[64];
	unsigned nseen;
	int ifl_fd;
	uint8_t *status;
};

static struct fix *g_f;

/* The device: walk the chain while it is handed over, keep the request for later. */
static void
rec_handle(struct vh_vq *vq, struct vh_req *req)
{
	struct seen *s = &g_f->seen[g_f->nseen++ % 64];
	uint8_t *last_w;

	s->head = req->head;
	s->req = req;
	s->rc = vh_vq_walk_chain(vq, vq->s->mem, req->head, s->iov, MAX_IOV, &s->nr, &s->nw,
	                         &last_w);
}

static const struct vh_dev_ops rec_ops = {
        .name = "rec",
        .req_size = sizeof(struct vh_req),
        .handle = rec_handle,
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	g_f = f;
	guest_add_region(&f->mem, A_GPA, RSIZE, A_QVA);
	guest_add_region(&f->mem, B_GPA, RSIZE, B_QVA);
	f->c = calloc(1, sizeof(*f->c));
	f->s = calloc(1, sizeof(*f->s));
	f->s->c = f->c;
	f->s->mem = &f->mem;
	f->s->features = (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_F_VERSION_1) |
	                 (1ull << VIRTIO_F_RING_PACKED) | (1ull << VIRTIO_RING_F_EVENT_IDX);
	f->vq = &f->s->vqs[0];
	f->vq->s = f->s;
	f->vq->ops = &rec_ops;
	f->vq->log_all = &f->s->log_all;
	f->vq->kickfd = f->vq->callfd = f->vq->errfd = -1;
	f->vq->cur_kickfd = f->vq->cur_callfd = -1;
	f->vq->size = QSIZE;
	f->vq->addr.desc_user_addr = A_QVA + (RING - A_GPA);
	f->vq->addr.avail_user_addr = A_QVA + (DRIVER - A_GPA);
	f->vq->addr.used_user_addr = A_QVA + (DEVICE - A_GPA);
	f->vq->addr_set = true;
	f->vq->kick_set = true;
	f->vq->enabled = true;
	f->ifl_fd = -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	vh_vq_free_reqs(f->vq);
	vh_inflight_unmap(&f->s->inflight);
	if (f->ifl_fd >= 0) {
		close(f->ifl_fd);
	}
	vh_mem_unmap_all(&f->mem);
	free(f->s);
	free(f->c);
	free(f);
	return 0;
}

/* Prepare the queue (control side), then pretend its reactor runs it (no deferred flush). */
static int
prepare(struct fix *f)
{
	int rc = vh_vq_prepare(f->vq);

	f->vq->flush.queued = true; /* vh_reactor_defer() would need a reactor */
	f->nseen = 0;
	return rc;
}

static struct pvirtq_desc *
ring(struct fix *f)
{
	return guest_ptr(&f->mem, RING);
}

/* A driver descriptor at ring index @i, made available for wrap counter @wrap. */
static void
PD(struct fix *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags, bool wrap)
{
	struct pvirtq_desc *d = &ring(f)[i];

	d->addr = addr;
	d->len = len;
	d->id = id;
	d->flags = flags | (wrap ? FA : FU);
}

/* An entry of an indirect table (packed layout: only WRITE counts). */
static void
IPD(struct fix *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags)
{
	struct pvirtq_desc d = {.addr = addr, .len = len, .id = 0, .flags = flags};

	guest_write(&f->mem, table + 16ull * i, &d, sizeof(d));
}

/* A read request (header, data, status) of 3 descriptors at ring index @i. */
static void
read_chain(struct fix *f, uint16_t i, uint16_t id, bool wrap)
{
	/* Later descriptors first: the driver flips the first one's flags last. */
	PD(f, (i + 1) % QSIZE, DATA, 512, id, W | N, ((i + 1) % QSIZE) ? wrap : !wrap);
	PD(f, (i + 2) % QSIZE, STATUS, 1, id, W, ((i + 2) % QSIZE) > i ? wrap : !wrap);
	PD(f, i, HDR, 16, id, R | N, wrap);
}

static struct vh_req *
fetch(struct fix *f)
{
	struct vh_req *req = vh_vq_fetch_one(f->vq);

	if (req != NULL) {
		rec_handle(f->vq, req);
	}
	return req;
}

static void
expect_iov(struct fix *f, const struct seen *s, int i, uint64_t gpa, size_t len)
{
	assert_ptr_equal(s->iov[i].iov_base, guest_ptr(&f->mem, gpa));
	assert_int_equal(s->iov[i].iov_len, len);
}

/* Answer @req: its used descriptor goes out, the call waits for flush(). */
static void
push(struct fix *f, struct vh_req *req, uint32_t len)
{
	req->used_len = len;
	vh_vq_push_used(f->vq, req);
}

/* The deferred flush of the reactor iteration (no call eventfd: publishes only). */
static void
flush(struct fix *f)
{
	vh_vq_packed_signal(f->vq);
}

/* Answer @req as a reactor iteration would: the push, then the flush. */
static void
complete(struct fix *f, struct vh_req *req, uint32_t len)
{
	push(f, req, len);
	flush(f);
}

/* The used descriptor at ring index @i: id, len, and AVAIL == USED == @wrap. */
static void
expect_used(struct fix *f, uint16_t i, uint16_t id, uint32_t len, bool wrap)
{
	struct pvirtq_desc *d = &ring(f)[i];

	assert_int_equal(d->id, id);
	assert_int_equal(d->len, len);
	assert_int_equal(d->flags & (FA | FU), wrap ? (FA | FU) : 0);
	assert_int_equal(!!(d->flags & W), len > 0);
}

/* ---- prepare ---- */

static void
test_prepare(void **state)
{
	struct fix *f = *state;
	struct vh_vq *vq = f->vq;

	/* No SET_VRING_BASE: a fresh ring, index 0, both wrap counters 1. */
	assert_int_equal(prepare(f), 0);
	assert_true(vq->packed);
	assert_int_equal(vq->last_avail, 0);
	assert_int_equal(vq->last_used, 0);
	assert_int_equal(vh_vq_packed_position(vq), VH_PK_FRESH_BASE);
	/* SET_VRING_BASE: avail index 5, wrap 0; the used half follows the avail half. */
	assert_int_equal(vh_vq_set_position(vq, 0x80030005u, true), 0);
	assert_int_equal(prepare(f), 0);
	assert_int_equal(vq->last_avail, 5 + QSIZE);
	assert_int_equal(vq->last_used, 5 + QSIZE);
	assert_int_equal(vh_vq_packed_position(vq), 0x00050005u);
	/* A DPDK-style 16-bit base works too. */
	assert_int_equal(vh_vq_set_position(vq, 0x8007u, true), 0);
	assert_int_equal(prepare(f), 0);
	assert_int_equal(vh_vq_packed_position(vq), 0x80078007u);
	/* An index past the ring is refused; a split ring refuses 32-bit bases outright. */
	assert_int_equal(vh_vq_set_position(vq, QSIZE, true), 0);
	assert_int_equal(prepare(f), -EINVAL);
	assert_int_equal(vh_vq_set_position(vq, 0x10000, false), -EINVAL);
	assert_int_equal(vh_vq_set_position(vq, 0, true), 0);
	/* Alignment (16 / 4 / 4) and translation. */
	vq->addr.desc_user_addr += 8;
	assert_int_equal(prepare(f), -EINVAL);
	vq->addr.desc_user_addr -= 8;
	vq->addr.avail_user_addr += 2;
	assert_int_equal(prepare(f), -EINVAL);
	vq->addr.avail_user_addr -= 2;
	vq->addr.used_user_addr += 1;
	assert_int_equal(prepare(f), -EINVAL);
	vq->addr.used_user_addr -= 1;
	vq->addr.desc_user_addr = A_QVA + RSIZE - 16 * (QSIZE / 2); /* half the ring outside */
	assert_int_equal(prepare(f), -EFAULT);
	vq->addr.desc_user_addr = A_QVA;
	vq->addr.used_user_addr = 0x1000;
	assert_int_equal(prepare(f), -EFAULT);
	vq->addr.used_user_addr = A_QVA + (DEVICE - A_GPA);
	assert_int_equal(prepare(f), 0);
	/* Features changed to split with a packed base left over: refused, not truncated. */
	assert_int_equal(vh_vq_set_position(vq, 0x80008000u, true), 0);
	f->s->features &= ~(1ull << VIRTIO_F_RING_PACKED);
	assert_int_equal(prepare(f), -EINVAL);
	assert_null(vq->pk);
}

/* ---- fetch and walk ---- */

static void
test_fetch_walk_direct(void **state)
{
	struct fix *f = *state;
	struct vh_req *req;

	assert_int_equal(prepare(f), 0);
	assert_null(fetch(f)); /* nothing available: descriptors are zero */
	read_chain(f, 0, 7, true);
	req = fetch(f);
	assert_non_null(req);
	assert_int_equal(req->head, 7);
	assert_int_equal(req->ndesc, 3);
	assert_int_equal(f->seen[0].rc, 0);
	assert_int_equal(f->seen[0].nr, 1);
	assert_int_equal(f->seen[0].nw, 2);
	expect_iov(f, &f->seen[0], 0, HDR, 16);
	expect_iov(f, &f->seen[0], 1, DATA, 512);
	expect_iov(f, &f->seen[0], 2, STATUS, 1);
	assert_int_equal(f->vq->last_avail, 3);
	assert_null(fetch(f));
	/* The walk is only valid while the chain is handed over. */
	assert_int_equal(vh_vq_walk_chain(f->vq, &f->mem, 8, f->seen[1].iov, MAX_IOV,
	                                  &f->seen[1].nr, &f->seen[1].nw, &f->status),
	                 -EINVAL);
	/* Used: at position 0, the id, the length, both wrap bits, WRITE. */
	complete(f, req, 513);
	expect_used(f, 0, 7, 513, true);
	assert_int_equal(f->vq->last_used, 3);
	assert_int_equal(vh_vq_packed_position(f->vq), 0x80038003u);
	assert_int_equal(f->vq->inflight, 0);
}

/*
 * The walk translates buffers in the region the last ones were in inline, the rest through the
 * memory table: a buffer in the other region, one across the two (two iovecs), then the first
 * region again. And a walk with fewer iovecs than the chain needs: no room, the status byte
 * still found.
 */
static void
test_walk_regions(void **state)
{
	struct fix *f = *state;
	struct vh_req *req;
	uint8_t *last_w;
	struct iovec iov[2];
	int nr, nw;

	assert_int_equal(prepare(f), 0);
	PD(f, 1, A_GPA + RSIZE - 0x100, 0x300, 0, W | N,
	   true); /* A's last 0x100, B's first 0x200 */
	PD(f, 2, B_GPA + 0x1000, 1, 4, W, true);
	PD(f, 0, B_GPA + 0x800, 16, 4, R | N, true);
	req = fetch(f);
	assert_non_null(req);
	assert_int_equal(f->seen[0].rc, 0);
	assert_int_equal(f->seen[0].nr, 1);
	assert_int_equal(f->seen[0].nw, 3);
	expect_iov(f, &f->seen[0], 0, B_GPA + 0x800, 16);
	expect_iov(f, &f->seen[0], 1, A_GPA + RSIZE - 0x100, 0x100);
	expect_iov(f, &f->seen[0], 2, B_GPA, 0x200);
	expect_iov(f, &f->seen[0], 3, B_GPA + 0x1000, 1);
	complete(f, req, 1);
	read_chain(f, 3, 5, true);
	req = fetch(f);
	assert_non_null(req);
	assert_int_equal(f->seen[1].rc, 0);
	expect_iov(f, &f->seen[1], 0, HDR, 16);
	expect_iov(f, &f->seen[1], 1, DATA, 512);
	expect_iov(f, &f->seen[1], 2, STATUS, 1);
	complete(f, req, 1);
	/* Two iovecs for three buffers. */
	read_chain(f, 6, 6, true);
	req = vh_vq_fetch_one(f->vq);
	assert_non_null(req);
	assert_int_equal(vh_vq_walk_chain(f->vq, &f->mem, 6, iov, 2, &nr, &nw, &last_w), -ENOBUFS);
	assert_ptr_equal(last_w, guest_ptr(&f->mem, STATUS));
	assert_ptr_equal(iov[1].iov_base, guest_ptr(&f->mem, DATA));
	/* Answered: its hand-over is over, the ring under it is the driver's again. */
	complete(f, req, 1);
	assert_int_equal(vh_vq_walk_chain(f->vq, &f->mem, 6, iov, 2, &nr, &nw, &last_w), -EINVAL);
	assert_null(last_w);
}

/* Walk the chain just made available at ring index @i (id @id) outside any device. */
static int
walk_at(struct fix *f, uint16_t id, int *nr, int *nw, uint8_t **last_w)
{
	struct vh_req *req = vh_vq_fetch_one(f->vq);
	struct iovec iov[8];
	int rc;

	assert_non_null(req);
	assert_int_equal(req->head, id);
	rc = vh_vq_walk_chain(f->vq, &f->mem, id, iov, 8, nr, nw, last_w);
	complete(f, req, 0);
	return rc;
}

/*
 * The last writable byte (virtio-blk's status) is found whatever happened to the buffers
 * before it: after a buffer outside guest memory, past an empty writable buffer, and not in a
 * buffer that wraps around the address space (the one before it, as the split walk).
 */
static void
test_walk_status(void **state)
{
	struct fix *f = *state;
	uint8_t *last_w;
	int nr, nw;

	assert_int_equal(prepare(f), 0);
	/* header, data outside guest memory, status: -EFAULT, the status still found. */
	PD(f, 1, 0x7000000000ull, 512, 1, W | N, true);
	PD(f, 2, STATUS, 1, 1, W, true);
	PD(f, 0, HDR, 16, 1, R | N, true);
	assert_int_equal(walk_at(f, 1, &nr, &nw, &last_w), -EFAULT);
	assert_ptr_equal(last_w, guest_ptr(&f->mem, STATUS));
	assert_int_equal(nr, 1);
	assert_int_equal(nw, 0);
	/* header, data, an empty writable buffer: the data's last byte. */
	PD(f, 4, DATA, 512, 2, W | N, true);
	PD(f, 5, STATUS, 0, 2, W, true);
	PD(f, 3, HDR, 16, 2, R | N, true);
	assert_int_equal(walk_at(f, 2, &nr, &nw, &last_w), 0);
	assert_ptr_equal(last_w, guest_ptr(&f->mem, DATA + 511));
	assert_int_equal(nr, 1);
	assert_int_equal(nw, 1);
	/* header, data, a buffer wrapping around the address space: the data's last byte. */
	PD(f, 7, DATA, 512, 3, W | N, true);
	PD(f, 8, UINT64_MAX, 2, 3, W, true);
	PD(f, 6, HDR, 16, 3, R | N, true);
	assert_int_equal(walk_at(f, 3, &nr, &nw, &last_w), -EFAULT);
	assert_ptr_equal(last_w, guest_ptr(&f->mem, DATA + 511));
	/* Readable buffers only: no writable byte. */
	PD(f, 10, DATA, 512, 4, R, true);
	PD(f, 9, HDR, 16, 4, R | N, true);
	assert_int_equal(walk_at(f, 4, &nr, &nw, &last_w), 0);
	assert_null(last_w);
	assert_int_equal(nr, 2);
	assert_int_equal(nw, 0);
}

static void
test_fetch_indirect(void **state)
{
	struct fix *f = *state;
	struct seen *s = &f->seen[0];

	assert_int_equal(prepare(f), 0);
	IPD(f, ITABLE, 0, HDR, 16, R | N | I); /* only WRITE counts in a table entry */
	IPD(f, ITABLE, 1, DATA, 4096, W);
	IPD(f, ITABLE, 2, STATUS, 1, W);
	PD(f, 0, ITABLE, 48, 3, I, true);
	assert_non_null(fetch(f));
	assert_int_equal(s->rc, 0);
	assert_int_equal(s->nr, 1);
	assert_int_equal(s->nw, 2);
	expect_iov(f, s, 1, DATA, 4096);
	/* Bad tables: empty, not a multiple of 16, with NEXT, without the feature, in a chain. */
	PD(f, 1, ITABLE, 0, 4, I, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[1].rc, -EBADMSG);
	PD(f, 2, ITABLE, 40, 5, I, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[2].rc, -EBADMSG);
	PD(f, 4, ITABLE, 48, 6, I, true);
	PD(f, 3, ITABLE, 48, 6, I | N, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[3].rc, -EBADMSG);
	PD(f, 6, ITABLE, 48, 7, I, true);
	PD(f, 5, HDR, 16, 7, R | N, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[4].rc, -EBADMSG);
	f->s->features &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	PD(f, 7, ITABLE, 48, 8, I, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[5].rc, -EBADMSG);
	/* A table of more than 32768 entries. */
	f->s->features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	PD(f, 8, ITABLE, 16u * 32769, 9, I, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[6].rc, -EBADMSG);
	assert_false(f->vq->broken); /* a bad chain is the device's call (blk breaks the queue) */
}

static void
test_fetch_across_the_end(void **state)
{
	struct fix *f = *state;
	struct vh_req *req;

	/* Start at index 14 of lap 1: the chain is 14, 15 (wrap 1), 0 (wrap 0). */
	assert_int_equal(vh_vq_set_position(f->vq, 0x800e800eu, true), 0);
	assert_int_equal(prepare(f), 0);
	read_chain(f, 14, 2, true);
	req = fetch(f);
	assert_non_null(req);
	assert_int_equal(f->seen[0].rc, 0);
	expect_iov(f, &f->seen[0], 2, STATUS, 1);
	assert_int_equal(vh_pk_idx(f->vq->last_avail, QSIZE), 1);
	assert_false(vh_pk_wrap(f->vq->last_avail, QSIZE));
	complete(f, req, 1);
	expect_used(f, 14, 2, 1, true);
	assert_int_equal(vh_vq_packed_position(f->vq), 0x00010001u);
	/* The next lap's descriptors carry the other wrap counter. */
	read_chain(f, 1, 3, false);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[1].rc, 0);
	/* A descriptor of the old lap is not available any more. */
	PD(f, 4, HDR, 16, 4, R, true);
	assert_null(fetch(f));
}

static void
test_out_of_order_used(void **state)
{
	struct fix *f = *state;
	struct vh_req *a, *b;

	assert_int_equal(prepare(f), 0);
	read_chain(f, 0, 10, true);
	a = fetch(f);
	PD(f, 3, DATA, 64, 11, W, true);
	b = fetch(f);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(b->ndesc, 1);
	/* b first: its used descriptor lands on a's first descriptor; positions skip a's 3. */
	complete(f, b, 64);
	expect_used(f, 0, 11, 64, true);
	assert_int_equal(f->vq->last_used, 1);
	complete(f, a, 0);
	expect_used(f, 1, 10, 0, true);
	assert_int_equal(f->vq->last_used, 4);
	assert_int_equal(f->vq->last_avail, 4);
	/* The id is free again once used: the driver may post it at once. */
	PD(f, 4, DATA, 64, 11, W, true);
	assert_non_null(fetch(f));
}

/* ---- the guest breaking the rules (each breaks the queue, nothing is read out of bounds) ---- */

static void
test_hostile_ids(void **state)
{
	struct fix *f = *state;

	/* SPDK #3860: the buffer id is guest data; QSIZE must not index anything. */
	assert_int_equal(prepare(f), 0);
	PD(f, 0, DATA, 64, QSIZE, W, true);
	assert_null(fetch(f));
	assert_true(f->vq->broken);
	assert_int_equal(f->vq->inflight, 0);
	assert_int_equal(prepare(f), 0);
	PD(f, 0, DATA, 64, 0xffff, W, true);
	assert_null(fetch(f));
	assert_true(f->vq->broken);
	/* An id already in flight. */
	assert_int_equal(prepare(f), 0);
	PD(f, 0, DATA, 64, 5, W, true);
	PD(f, 1, DATA, 64, 5, W, true);
	assert_non_null(fetch(f));
	assert_null(fetch(f));
	assert_true(f->vq->broken);
}

static void
test_hostile_chains(void **state)
{
	struct fix *f = *state;
	unsigned i;

	/* NEXT on every descriptor: bounded by the ring, then broken (SPDK spins forever). */
	assert_int_equal(prepare(f), 0);
	for (i = 0; i < QSIZE; i++) {
		PD(f, (uint16_t)i, DATA, 64, 1, W | N, true);
	}
	assert_null(fetch(f));
	assert_true(f->vq->broken);
	/* A chain running into a descriptor the driver did not make available. */
	assert_int_equal(prepare(f), 0);
	memset(ring(f), 0, 16 * QSIZE);
	PD(f, 0, HDR, 16, 1, R | N, true);
	assert_null(fetch(f));
	assert_true(f->vq->broken);
	/* ... or one made available for the other lap. */
	assert_int_equal(prepare(f), 0);
	PD(f, 1, DATA, 64, 1, W, false);
	assert_null(fetch(f));
	assert_true(f->vq->broken);
	/* Readable after writable: the walk refuses it. */
	assert_int_equal(prepare(f), 0);
	PD(f, 1, HDR, 16, 1, R, true);
	PD(f, 0, DATA, 64, 1, W | N, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[0].rc, -EBADMSG);
	/* An indirect descriptor inside a list. */
	assert_int_equal(prepare(f), 0);
	PD(f, 1, ITABLE, 48, 1, I, true);
	PD(f, 0, HDR, 16, 1, R | N, true);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[0].rc, -EBADMSG);
}

static void
test_hostile_overcommit(void **state)
{
	struct fix *f = *state;
	unsigned i;

	/*
	 * The driver fills the ring, then makes the first descriptors available again before we
	 * used them: more outstanding than the ring holds.
	 */
	assert_int_equal(prepare(f), 0);
	for (i = 0; i < QSIZE; i += 2) {
		PD(f, (uint16_t)(i + 1), DATA, 64, (uint16_t)i, W, true);
		PD(f, (uint16_t)i, HDR, 16, (uint16_t)i, R | N, true);
	}
	for (i = 0; i < QSIZE / 2; i++) {
		assert_non_null(fetch(f));
	}
	/* Outstanding: the distance from the used position to the fetch position. */
	assert_int_equal((uint16_t)(f->vq->last_avail - f->vq->last_used), QSIZE);
	assert_true(f->vq->nfree > 0); /* slots left: only the ring is full */
	PD(f, 0, DATA, 64, 15, W, false);
	assert_null(fetch(f));
	assert_true(f->vq->broken);
}

/* ---- inflight tracking and recovery ---- */

static void
attach_region(struct fix *f, bool packed)
{
	struct vhost_user_inflight w = {.num_queues = 1, .queue_size = QSIZE};
	uint64_t size;

	f->ifl_fd = vh_inflight_create(1, QSIZE, packed, &size);
	assert_true(f->ifl_fd >= 0);
	w.mmap_size = size;
	assert_int_equal(vh_inflight_map(&f->s->inflight, &w, f->ifl_fd, true), 0);
	assert_int_equal(f->s->inflight.packed, packed);
}

static struct inflight_packed_queue *
region(struct fix *f)
{
	return (struct inflight_packed_queue *)f->s->inflight.base;
}

/* Crash: the next instance prepares the queue over the same region (the base is stale). */
static void
crash(struct fix *f)
{
	assert_int_equal(vh_vq_set_position(f->vq, VH_PK_FRESH_BASE, true), 0);
	assert_int_equal(prepare(f), 0);
}

static void
test_inflight_resubmit(void **state)
{
	struct fix *f = *state;
	struct vh_req *a, *b, *c;
	struct vh_vq_packed *pk;

	attach_region(f, true);
	assert_int_equal(prepare(f), 0);
	assert_int_equal(region(f)->version, 1);
	read_chain(f, 0, 4, true); /* a: 3 descriptors */
	PD(f, 3, DATA, 64, 9, W, true);
	PD(f, 4, DATA, 128, 2, W, true);
	a = fetch(f);
	b = fetch(f);
	c = fetch(f);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	complete(f, b, 64); /* out of order: b used at position 0 */
	crash(f);
	pk = f->vq->pk;
	/* a and c were in flight: resubmitted oldest first, from the region's copies. */
	assert_int_equal(pk->nresub, 2);
	assert_int_equal(pk->resub[0].id, 4);
	assert_int_equal(pk->resub[0].num, 3);
	assert_int_equal(pk->resub[1].id, 2);
	assert_int_equal(pk->resub[1].num, 1);
	/* used at 1 (b's), avail = used + 3 + 1 = 5: fetching resumes after c. */
	assert_int_equal(f->vq->last_used, 1);
	assert_int_equal(f->vq->last_avail, 5);
	assert_int_equal((uint16_t)(f->vq->last_avail - f->vq->last_used), 4);
	/* The driver meanwhile overwrote a's ring descriptors: the copies are what counts. */
	memset(ring(f) + 1, 0xee, 16 * 2);
	vh_vq_packed_start(f->vq);
	assert_int_equal(f->nseen, 2);
	assert_int_equal(f->seen[0].head, 4);
	assert_int_equal(f->seen[0].rc, 0);
	expect_iov(f, &f->seen[0], 1, DATA, 512);
	assert_int_equal(f->seen[1].head, 2);
	expect_iov(f, &f->seen[1], 0, DATA, 128);
	/* Complete them; a second crash finds nothing in flight and the same positions. */
	complete(f, f->seen[1].req, 128);
	expect_used(f, 1, 2, 128, true);
	complete(f, f->seen[0].req, 513);
	expect_used(f, 2, 4, 513, true);
	crash(f);
	assert_int_equal(f->vq->pk->nresub, 0);
	assert_int_equal(f->vq->last_used, 5);
	assert_int_equal(f->vq->last_avail, 5);
	assert_int_equal((uint16_t)(f->vq->last_avail - f->vq->last_used), 0);
}

/* A completion that died half-way: finished if the ring shows it, rolled back if not. */
static void
test_inflight_half_done(void **state)
{
	struct fix *f = *state;
	struct inflight_packed_queue *q;
	struct vh_req *a;
	uint16_t entry, last;

	attach_region(f, true);
	assert_int_equal(prepare(f), 0);
	read_chain(f, 0, 6, true);
	a = fetch(f);
	assert_non_null(a);
	entry = a->ifl_entry;
	last = a->ifl_last;
	q = region(f);
	/* Phase 1 only (free list, used word), the used descriptor never went out. */
	q->desc[last].next = q->free_head;
	q->free_head = entry;
	*vh_pk_used_word_ptr(q) = vh_pk_used_word(3, 0, QSIZE);
	crash(f);
	assert_int_equal(f->vq->pk->nresub, 1); /* rolled back: resubmitted */
	assert_int_equal(f->vq->last_used, 0);
	assert_int_equal(f->vq->last_avail, 3);
	/* The same, but the used descriptor is in the ring: finished, not resubmitted. */
	q = region(f);
	entry = f->vq->pk->resub[0].entry;
	last = f->vq->pk->resub[0].last;
	q->desc[last].next = q->free_head;
	q->free_head = entry;
	*vh_pk_used_word_ptr(q) = vh_pk_used_word(3, 0, QSIZE);
	ring(f)[0].id = 6;
	ring(f)[0].flags = FA | FU | W;
	crash(f);
	assert_int_equal(f->vq->pk->nresub, 0);
	assert_int_equal(f->vq->last_used, 3);
	assert_int_equal(f->vq->last_avail, 3);
	assert_int_equal(region(f)->desc[entry].inflight, 0); /* free list entries are cleared */
	/* A fetch that died before its commit: the chain is still in the ring, fetched again. */
	read_chain(f, 3, 1, true);
	assert_non_null(fetch(f));
	q = region(f);
	q->old_free_head = (uint16_t)f->seen[0].req->ifl_entry; /* uncommit it */
	crash(f);
	assert_int_equal(f->vq->pk->nresub, 0);
	assert_int_equal(f->vq->last_avail, 3);
	assert_non_null(fetch(f));
	assert_int_equal(f->seen[0].head, 1);
}

/*
 * With a region, each used descriptor goes out at its completion and is committed before the
 * next one is written: a crash between completions resubmits only what was not answered, and
 * the ring holds nothing of ours past the committed used position.
 */
static void
test_inflight_each_committed(void **state)
{
	struct fix *f = *state;
	struct vh_req *a, *b, *c;
	struct inflight_packed_queue *q;

	attach_region(f, true);
	assert_int_equal(prepare(f), 0);
	PD(f, 0, DATA, 64, 5, W, true);
	PD(f, 1, DATA, 64, 6, W, true);
	PD(f, 2, DATA, 64, 7, W, true);
	a = fetch(f);
	b = fetch(f);
	c = fetch(f);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	/* c then a, no flush: both out at once, both committed. */
	push(f, c, 64);
	expect_used(f, 0, 7, 64, true);
	push(f, a, 0);
	expect_used(f, 1, 5, 0, true);
	q = region(f);
	assert_int_equal(q->old_free_head, q->free_head);
	assert_int_equal(*vh_pk_used_word_ptr(q), vh_pk_used_word(2, 2, QSIZE));
	assert_int_equal(q->desc[c->ifl_entry].inflight, 0);
	assert_int_equal(q->desc[a->ifl_entry].inflight, 0);
	assert_int_equal(q->desc[b->ifl_entry].inflight, 1);
	/* Died before the flush: only b is resubmitted, the ring resumes after the two. */
	crash(f);
	assert_int_equal(f->vq->pk->nresub, 1);
	assert_int_equal(f->vq->pk->resub[0].id, 6);
	assert_int_equal(f->vq->last_used, 2);
	assert_int_equal(f->vq->last_avail, 3);
	assert_int_equal(ring(f)[2].flags & (FA | FU), FA); /* still the driver's */
	vh_vq_packed_start(f->vq);
	assert_int_equal(f->nseen, 1);
	push(f, f->seen[0].req, 64);
	expect_used(f, 2, 6, 64, true);
	/* Nothing in flight after a crash now. */
	crash(f);
	assert_int_equal(f->vq->pk->nresub, 0);
	assert_int_equal(f->vq->last_used, 3);
	assert_int_equal(f->vq->last_avail, 3);
}

/*
 * The driver's side of the ring after a restart: it polls one position at a time from where it
 * left off, as a driver does, and consumes every descriptor that looks used there. Each id it
 * takes must be final (answered, and not in flight in the new instance, which would answer it
 * again) and taken once. @pos, @wrap: the driver's next used position; @got: ids taken so far.
 */
static void
driver_reap(struct fix *f, uint16_t *pos, bool *wrap, const bool *final, bool *got)
{
	for (;;) {
		struct pvirtq_desc d = ring(f)[*pos];

		if ((d.flags & (FA | FU)) != (*wrap ? (FA | FU) : 0)) {
			return;
		}
		assert_true(d.id < QSIZE);
		/* A stale descriptor of the dead instance: an id in flight or taken already. */
		assert_true(final[d.id]);
		assert_false(got[d.id]);
		got[d.id] = true;
		/* Every chain of the test is one descriptor. */
		if (++*pos == QSIZE) {
			*pos = 0;
			*wrap = !*wrap;
		}
	}
}

/*
 * CI (TSan, test_crash_soak --packed): an instance answered three of four requests out of order
 * and died before its flush; the next one answered fewer at first than the dead one had (one of
 * those it resubmitted). The driver, reading on past the new used descriptors, must not find the
 * dead instance's: whatever it takes is final.
 */
static void
test_inflight_crash_then_shorter(void **state)
{
	struct fix *f = *state;
	struct vh_req *a, *b, *c, *d;
	bool final[QSIZE] = {false}, got[QSIZE] = {false};
	uint16_t pos = 0, nresub;
	bool wrap = true;

	attach_region(f, true);
	assert_int_equal(prepare(f), 0);
	PD(f, 0, DATA, 64, 5, W, true);
	PD(f, 1, DATA, 64, 6, W, true);
	PD(f, 2, DATA, 64, 7, W, true);
	PD(f, 3, DATA, 64, 8, W, true);
	a = fetch(f);
	b = fetch(f);
	c = fetch(f);
	d = fetch(f);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_non_null(d);
	/* a (5) stays in flight. */
	push(f, d, 64);
	push(f, c, 64);
	push(f, b, 64);
	final[6] = final[7] = final[8] = true;
	/* Died here, before any flush. */
	crash(f);
	nresub = (uint16_t)f->vq->pk->nresub;
	assert_true(nresub >= 1); /* a at least */
	for (uint16_t i = 0; i < nresub; i++) {
		final[f->vq->pk->resub[i].id] = false; /* in flight again: not answered yet */
	}
	assert_int_equal((uint16_t)(f->vq->last_avail - f->vq->last_used), nresub);
	vh_vq_packed_start(f->vq);
	assert_int_equal(f->nseen, nresub);
	/* The driver polls from its own position: what the dead instance published, if anything. */
	driver_reap(f, &pos, &wrap, final, got);
	assert_int_equal(pos, f->vq->last_used);
	/* One of the resubmitted requests answered, flushed: the driver reads on. */
	if (nresub > 0) {
		complete(f, f->seen[0].req, 64);
		final[f->seen[0].head] = true;
	}
	driver_reap(f, &pos, &wrap, final, got);
	/* The rest, then every id exactly once and the driver where the device is. */
	for (uint16_t i = 1; i < nresub; i++) {
		complete(f, f->seen[i].req, 64);
		final[f->seen[i].head] = true;
	}
	driver_reap(f, &pos, &wrap, final, got);
	assert_true(got[5] && got[6] && got[7] && got[8]);
	assert_int_equal(pos, 4);
	assert_int_equal(f->vq->last_used, 4);
	assert_int_equal(f->vq->last_avail, 4);
}

static void
test_inflight_layouts(void **state)
{
	struct fix *f = *state;

	/* A split-sized region (GET_INFLIGHT_FD before SET_FEATURES) for a packed ring. */
	attach_region(f, false);
	f->c->packed_recovery = true;
	assert_int_equal(prepare(f), -EINVAL); /* recovery required: refused */
	f->c->packed_recovery = false;
	assert_int_equal(prepare(f), 0); /* runs untracked */
	assert_null(f->vq->pk->ifl);
	/* A packed region for a split ring is refused. */
	vh_inflight_unmap(&f->s->inflight);
	close(f->ifl_fd);
	attach_region(f, true);
	f->s->features &= ~(1ull << VIRTIO_F_RING_PACKED);
	assert_int_equal(vh_vq_set_position(f->vq, 0, false), 0);
	assert_int_equal(prepare(f), -EINVAL);
}

/* ---- vh_inflight_packed_recover() on hostile regions ---- */

struct rfix {
	struct inflight_packed_queue *q;
	struct pvirtq_desc ring[QSIZE];
	uint16_t next[QSIZE];
	struct vh_inflight_resub resub[QSIZE];
	struct pvirtq_desc descs[QSIZE];
	struct vh_inflight_packed_state st;
};

static int
recover(struct rfix *r)
{
	return vh_inflight_packed_recover(r->q, QSIZE, QSIZE, r->ring, 0, r->next, r->resub, QSIZE,
	                                  r->descs, &r->st);
}

/* A consistent region: chain {3 -> 5} (id 7) in flight, everything else free. */
static void
good_region(struct rfix *r)
{
	memset(r->q, 0, sizeof(*r->q) + QSIZE * sizeof(r->q->desc[0]));
	assert_int_equal(recover(r), 0); /* initialises it */
	/* Free list: 0 1 2 4 6 7 ... 15. */
	r->q->desc[2].next = 4;
	r->q->desc[4].next = 6;
	r->q->desc[3].next = 5;
	r->q->desc[3].inflight = 1;
	r->q->desc[3].num = 2;
	r->q->desc[3].last = 5;
	r->q->desc[3].counter = 9;
	r->q->desc[5].id = 7;
	r->q->desc[5].flags = W;
	assert_int_equal(recover(r), 0);
	assert_int_equal(r->st.nresub, 1);
}

static void
test_recover_hostile(void **state)
{
	struct rfix *r = calloc(1, sizeof(*r));

	r->q = calloc(1, sizeof(*r->q) + QSIZE * sizeof(r->q->desc[0]));
	good_region(r);
	assert_int_equal(r->st.avail, 2);
	assert_int_equal(r->st.counter, 9);
	/* Each corruption alone is refused. */
	good_region(r);
	r->q->version = 2;
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->free_head = r->q->old_free_head = QSIZE + 1;
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[15].next = 0; /* a cycle in the free list */
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[5].id = QSIZE; /* id out of range */
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[3].num = 0;
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[3].num = 0xffff;
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[3].last = 4; /* the walk does not end there */
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[3].next = 0xfff0; /* the chain leaves the ring */
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[3].next = 4; /* the chain runs into the free list */
	r->q->desc[3].last = 4;
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[3].inflight = 2;
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[5].inflight = 1; /* a mark inside another chain */
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	r->q->desc[4].next = 7; /* entry 6 leaked: neither free nor in flight */
	assert_int_equal(recover(r), -EINVAL);
	good_region(r);
	*vh_pk_used_word_ptr(r->q) = (uint64_t)2 << 32; /* wrap counter 2 */
	assert_int_equal(recover(r), -EINVAL);
	/* Two chains with the same id. */
	good_region(r);
	r->q->desc[4].next = 7; /* take 6 off the free list */
	r->q->desc[6].inflight = 1;
	r->q->desc[6].num = 1;
	r->q->desc[6].last = 6;
	r->q->desc[6].id = 7;
	assert_int_equal(recover(r), -EINVAL);
	r->q->desc[6].id = 8;
	assert_int_equal(recover(r), 0);
	assert_int_equal(r->st.nresub, 2);
	/* A ring size change with something in flight is refused; with nothing, a new ring. */
	good_region(r);
	r->q->desc_num = 8;
	assert_int_equal(recover(r), -EINVAL);
	r->q->desc[3].inflight = 0;
	assert_int_equal(recover(r), 0);
	assert_int_equal(r->q->desc_num, QSIZE);
	free(r->q);
	free(r);
}

/*
 * Every shared field is read once: a thread flips the free list's head and the chain links
 * between legal and wild values while this one recovers in a loop. The region's last entry ends
 * at a PROT_NONE page, so a second read of a checked value that walks off the region faults.
 */
struct flipper {
	uint16_t *fields[3];
	int stop;
};

static void *
flip(void *arg)
{
	struct flipper *fl = arg;

	while (!__atomic_load_n(&fl->stop, __ATOMIC_ACQUIRE)) {
		for (unsigned i = 0; i < 3; i++) {
			__atomic_store_n(fl->fields[i], 0xffff, __ATOMIC_RELAXED);
			__atomic_store_n(fl->fields[i], (uint16_t)(i == 0 ? 0 : QSIZE - 1),
			                 __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static void
test_recover_race(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t body =
	        sizeof(struct inflight_packed_queue) + QSIZE * sizeof(struct inflight_desc_packed);
	size_t pages = (body + page - 1) / page;
	uint8_t *map = mmap(NULL, (pages + 1) * page, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rfix *r = calloc(1, sizeof(*r));
	struct flipper fl;
	struct timespec t0, t;
	pthread_t th;
	unsigned long ok = 0, calls = 0;

	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pages * page, page, PROT_NONE), 0);
	r->q = (struct inflight_packed_queue *)(map + pages * page - body);
	good_region(r);
	fl.fields[0] = &r->q->free_head;
	fl.fields[1] = &r->q->desc[3].next;
	fl.fields[2] = &r->q->desc[3].num;
	fl.stop = 0;
	assert_int_equal(pthread_create(&th, NULL, flip, &fl), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		r->q->old_free_head = __atomic_load_n(&r->q->free_head, __ATOMIC_RELAXED);
		ok += recover(r) == 0;
		calls++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 300);
	__atomic_store_n(&fl.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	assert_true(calls > 0);
	(void)ok; /* any mix of refusals and recoveries; only a fault would fail */
	munmap(map, (pages + 1) * page);
	free(r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_prepare),
	        T(test_fetch_walk_direct),
	        T(test_walk_regions),
	        T(test_walk_status),
	        T(test_fetch_indirect),
	        T(test_fetch_across_the_end),
	        T(test_out_of_order_used),
	        T(test_hostile_ids),
	        T(test_hostile_chains),
	        T(test_hostile_overcommit),
	        T(test_inflight_resubmit),
	        T(test_inflight_half_done),
	        T(test_inflight_each_committed),
	        T(test_inflight_crash_then_shorter),
	        T(test_inflight_layouts),
	        cmocka_unit_test(test_recover_hostile),
	        cmocka_unit_test(test_recover_race),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
