/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vhost/vring.c: the descriptor walker vh_vq_walk_chain() over memfd "guest RAM", and the
 * control-side checks of vh_vq_prepare(). No reactor: the walker is a pure function of the
 * queue, the memory table and guest memory.
 *
 * Guest layout: A [0x10000, 0x20000) and B [0x20000, 0x30000) are address-adjacent memfds,
 * then a hole, then C [0x100000, 0x101000).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest.h"

#define A_GPA 0x10000ull
#define B_GPA 0x20000ull
#define C_GPA 0x100000ull
#define HOLE  0x40000ull
#define RSIZE 0x10000ull
#define A_QVA 0x7f0000000000ull
#define B_QVA 0x7f0000100000ull
#define C_QVA 0x7f0000200000ull

#define QSIZE  16
#define DESC   (A_GPA) /* the queue's descriptor table */
#define AVAIL  (A_GPA + 0x1000)
#define USED   (A_GPA + 0x2000)
#define HDR    (A_GPA + 0x4000)
#define DATA   (A_GPA + 0x5000)
#define STATUS (A_GPA + 0x6000)
#define ITABLE (A_GPA + 0x8000) /* indirect tables */

#define MAX_IOV 136 /* the iovec array the walker fills (blk's size) */

#define R 0
#define W VRING_DESC_F_WRITE
#define N VRING_DESC_F_NEXT
#define I VRING_DESC_F_INDIRECT

struct fix {
	struct vh_mem mem;
	struct vh_session *s;
	struct vh_vq *vq;
	struct iovec iov[MAX_IOV];
	int nr, nw;
	uint8_t *status;
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	guest_add_region(&f->mem, A_GPA, RSIZE, A_QVA);
	guest_add_region(&f->mem, B_GPA, RSIZE, B_QVA);
	guest_add_region(&f->mem, C_GPA, 0x1000, C_QVA);
	f->s = calloc(1, sizeof(*f->s));
	f->vq = &f->s->vqs[0];
	f->vq->s = f->s;
	f->vq->ops = &vh_blk_ops;
	f->vq->log_all = &f->s->log_all;
	f->vq->kickfd = f->vq->callfd = f->vq->errfd = -1;
	f->s->features = (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_F_VERSION_1);
	f->vq->size = QSIZE;
	f->vq->desc = guest_ptr(&f->mem, DESC);
	f->vq->scratch = calloc(VH_VQ_SCRATCH_DESC, sizeof(struct vring_desc));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	vh_vq_free_reqs(f->vq);
	vh_mem_unmap_all(&f->mem);
	free(f->s);
	free(f);
	return 0;
}

static int
walk(struct fix *f, uint16_t head)
{
	f->nr = f->nw = -1;
	return vh_vq_walk_chain(f->vq, &f->mem, head, f->iov, MAX_IOV, &f->nr, &f->nw, &f->status);
}

static uint8_t *
P(struct fix *f, uint64_t gpa)
{
	return guest_ptr(&f->mem, gpa);
}

static void
D(struct fix *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	guest_set_desc(&f->mem, DESC, i, addr, len, flags, next);
}

static void
ID(struct fix *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
   uint16_t next)
{
	guest_set_desc(&f->mem, table, i, addr, len, flags, next);
}

static void
expect_iov(struct fix *f, int i, uint64_t gpa, size_t len)
{
	assert_ptr_equal(f->iov[i].iov_base, P(f, gpa));
	assert_int_equal(f->iov[i].iov_len, len);
}

/* ---- direct chains ---- */

static void
test_direct_chain(void **state)
{
	struct fix *f = *state;

	/* A typical read: header, data, status; head 5 chains out of order. */
	D(f, 5, HDR, 16, R | N, 9);
	D(f, 9, DATA, 4096, W | N, 2);
	D(f, 2, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 5), 0);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->nw, 2);
	expect_iov(f, 0, HDR, 16);
	expect_iov(f, 1, DATA, 4096);
	expect_iov(f, 2, STATUS, 1);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* A single writable descriptor: status is its last byte. */
	D(f, 0, DATA, 513, W, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, 0);
	assert_int_equal(f->nw, 1);
	assert_ptr_equal(f->status, P(f, DATA + 512));

	/* Only readable descriptors: no status byte. */
	D(f, 0, HDR, 16, R, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->nw, 0);
	assert_null(f->status);
}

static void
test_read_then_write_split(void **state)
{
	struct fix *f = *state;

	D(f, 0, HDR, 16, R | N, 1);
	D(f, 1, DATA, 512, R | N, 2);
	D(f, 2, DATA + 0x1000, 512, W | N, 3);
	D(f, 3, DATA + 0x2000, 100, W | N, 4);
	D(f, 4, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, 2);
	assert_int_equal(f->nw, 3);
	expect_iov(f, 1, DATA, 512);
	expect_iov(f, 2, DATA + 0x1000, 512);
	expect_iov(f, 3, DATA + 0x2000, 100);
	assert_ptr_equal(f->status, P(f, STATUS));
}

static void
test_straddling_buffer_two_iovecs(void **state)
{
	struct fix *f = *state;

	D(f, 0, HDR, 16, R | N, 1);
	D(f, 1, B_GPA - 0x80, 0x100, W | N, 2);
	D(f, 2, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->nw, 3);
	expect_iov(f, 1, B_GPA - 0x80, 0x80);
	expect_iov(f, 2, B_GPA, 0x80);
	/* The status byte itself straddles nothing, but may sit right after the boundary. */
	D(f, 2, B_GPA - 1, 2, W, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_ptr_equal(f->status, P(f, B_GPA));
}

static void
test_loops_and_indices(void **state)
{
	struct fix *f = *state;

	/* next pointing back. */
	D(f, 0, HDR, 16, R | N, 1);
	D(f, 1, DATA, 16, R | N, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	/* A descriptor chained to itself. */
	D(f, 3, DATA, 16, W | N, 3);
	assert_int_equal(walk(f, 3), -EBADMSG);
	/* next >= queue size. */
	D(f, 0, HDR, 16, R | N, QSIZE);
	assert_int_equal(walk(f, 0), -EBADMSG);
	D(f, 0, HDR, 16, R | N, 0xffff);
	assert_int_equal(walk(f, 0), -EBADMSG);
	/* head >= queue size. */
	assert_int_equal(walk(f, QSIZE), -EBADMSG);

	/* The longest legal chain uses every descriptor once... */
	for (uint16_t i = 0; i < QSIZE; i++) {
		D(f, i, DATA + 0x10ull * i, 0x10, W | (i + 1 < QSIZE ? N : 0), (uint16_t)(i + 1));
	}
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nw, QSIZE);
	/* ...one more (a cycle through the whole table) is a loop. */
	D(f, QSIZE - 1, DATA, 0x10, W | N, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	assert_int_equal(walk(f, 7), -EBADMSG);
}

static void
test_readable_after_writable(void **state)
{
	struct fix *f = *state;

	D(f, 0, HDR, 16, R | N, 1);
	D(f, 1, DATA, 512, W | N, 2);
	D(f, 2, DATA + 0x1000, 512, R | N, 3);
	D(f, 3, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
}

static void
test_unmapped_buffer(void **state)
{
	struct fix *f = *state;

	/* Data in the hole: -EFAULT, but the status byte is still found. */
	D(f, 0, HDR, 16, R | N, 1);
	D(f, 1, HOLE, 512, W | N, 2);
	D(f, 2, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 0), -EFAULT);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* A readable buffer running off the end of B into the hole. */
	D(f, 1, B_GPA + RSIZE - 8, 16, R | N, 2);
	assert_int_equal(walk(f, 0), -EFAULT);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* The status byte itself unmapped: no status. */
	D(f, 1, DATA, 512, W | N, 2);
	D(f, 2, HOLE, 1, W, 0);
	assert_int_equal(walk(f, 0), -EFAULT);
	assert_null(f->status);

	/* A fault does not hide a malformed chain: the loop still wins. */
	D(f, 1, HOLE, 512, W | N, 2);
	D(f, 2, STATUS, 1, W | N, 1);
	assert_int_equal(walk(f, 0), -EBADMSG);
}

static void
test_len_zero_descriptors(void **state)
{
	struct fix *f = *state;

	D(f, 0, HDR, 16, R | N, 1);
	D(f, 1, HOLE, 0, R | N, 2); /* length 0: never translated, even if unmapped */
	D(f, 2, DATA, 0, W | N, 3);
	D(f, 3, STATUS, 1, W | N, 4);
	D(f, 4, DATA, 0, W, 0); /* a trailing empty writable buffer keeps the status */
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->nw, 1);
	expect_iov(f, 1, STATUS, 1);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* Only empty writable buffers: no status byte. */
	D(f, 3, DATA, 0, W, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_null(f->status);
}

static void
test_huge_and_wrapping_lengths(void **state)
{
	struct fix *f = *state;

	D(f, 0, HDR, 0xffffffff, R | N, 1);
	D(f, 1, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 0), -EFAULT);
	assert_ptr_equal(f->status, P(f, STATUS));

	D(f, 0, UINT64_MAX - 0xff, 0x200, R | N, 1);
	assert_int_equal(walk(f, 0), -EFAULT);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* A writable buffer whose end wraps: -EFAULT, and it is not taken as the status. */
	D(f, 0, HDR, 16, R | N, 1);
	D(f, 1, UINT64_MAX - 0xf, 0x20, W, 0);
	assert_int_equal(walk(f, 0), -EFAULT);
	assert_null(f->status);
	D(f, 1, A_GPA, 0xffffffff, W, 0);
	assert_int_equal(walk(f, 0), -EFAULT);
	assert_null(f->status);
}

/* ---- indirect tables ---- */

static void
test_indirect_valid(void **state)
{
	struct fix *f = *state;

	ID(f, ITABLE, 0, HDR, 16, R | N, 2);
	ID(f, ITABLE, 2, DATA, 1024, W | N, 1);
	ID(f, ITABLE, 1, STATUS, 1, W, 0);
	D(f, 4, ITABLE, 3 * 16, I, 0);
	assert_int_equal(walk(f, 4), 0);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->nw, 2);
	expect_iov(f, 0, HDR, 16);
	expect_iov(f, 1, DATA, 1024);
	expect_iov(f, 2, STATUS, 1);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* An indirect table longer than the queue is fine: it is bounded by its own length. */
	for (uint16_t i = 0; i < 40; i++) {
		ID(f, ITABLE, i, DATA + 0x10ull * i, 0x10, (i < 39 ? R | N : W), (uint16_t)(i + 1));
	}
	D(f, 4, ITABLE, 40 * 16, I, 0);
	assert_int_equal(walk(f, 4), 0);
	assert_int_equal(f->nr, 39);
	assert_int_equal(f->nw, 1);
}

static void
test_indirect_bad_tables(void **state)
{
	struct fix *f = *state;

	ID(f, ITABLE, 0, HDR, 16, R | N, 1);
	ID(f, ITABLE, 1, STATUS, 1, W, 0);

	D(f, 0, ITABLE, 0, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	D(f, 0, ITABLE, 24, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	D(f, 0, ITABLE, 17, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	D(f, 0, ITABLE, 0xfffffff0, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	/* INDIRECT | NEXT. */
	D(f, 0, ITABLE, 32, I | N, 1);
	D(f, 1, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	/* The table in unmapped memory, or running off the end of C. */
	D(f, 0, HOLE, 32, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	D(f, 0, C_GPA + 0x1000 - 16, 32, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
	/* Sane again. */
	D(f, 0, ITABLE, 32, I, 0);
	assert_int_equal(walk(f, 0), 0);
}

static void
test_indirect_nested_and_feature(void **state)
{
	struct fix *f = *state;

	/* An INDIRECT descriptor inside an indirect table. */
	ID(f, ITABLE + 0x100, 0, STATUS, 1, W, 0);
	ID(f, ITABLE, 0, HDR, 16, R | N, 1);
	ID(f, ITABLE, 1, ITABLE + 0x100, 16, I, 0);
	D(f, 0, ITABLE, 32, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);

	/* A table pointing at itself. */
	ID(f, ITABLE, 1, ITABLE, 32, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);

	/* INDIRECT without VIRTIO_RING_F_INDIRECT_DESC negotiated. */
	ID(f, ITABLE, 1, STATUS, 1, W, 0);
	assert_int_equal(walk(f, 0), 0);
	f->s->features &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	assert_int_equal(walk(f, 0), -EBADMSG);
}

static void
test_indirect_loops_and_indices(void **state)
{
	struct fix *f = *state;

	D(f, 0, ITABLE, 3 * 16, I, 0);
	/* next beyond the table (but inside the queue size). */
	ID(f, ITABLE, 0, HDR, 16, R | N, 3);
	assert_int_equal(walk(f, 0), -EBADMSG);
	/* A loop inside the table. */
	ID(f, ITABLE, 0, HDR, 16, R | N, 1);
	ID(f, ITABLE, 1, DATA, 16, R | N, 2);
	ID(f, ITABLE, 2, STATUS, 1, W | N, 1);
	assert_int_equal(walk(f, 0), -EBADMSG);
	/* Readable after writable inside the table. */
	ID(f, ITABLE, 1, DATA, 16, W | N, 2);
	ID(f, ITABLE, 2, STATUS, 1, R, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
}

static void
test_indirect_straddling_table_copied(void **state)
{
	struct fix *f = *state;
	const uint64_t t = B_GPA - 32; /* entries 0-1 in A, 2-3 in B */

	ID(f, t, 0, HDR, 16, R | N, 1);
	ID(f, t, 1, DATA, 512, W | N, 2);
	ID(f, t, 2, B_GPA + 0x100, 512, W | N, 3);
	ID(f, t, 3, STATUS, 1, W, 0);
	D(f, 0, t, 4 * 16, I, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->nw, 3);
	expect_iov(f, 1, DATA, 512);
	expect_iov(f, 2, B_GPA + 0x100, 512);
	expect_iov(f, 3, STATUS, 1);
	assert_ptr_equal(f->status, P(f, STATUS));
	/* It went through the scratch copy. */
	assert_int_equal(f->vq->scratch[2].addr, B_GPA + 0x100);
}

static void
test_indirect_misaligned_table(void **state)
{
	struct fix *f = *state;
	const uint64_t t = ITABLE + 8;

	ID(f, t, 0, HDR, 16, R | N, 1);
	ID(f, t, 1, DATA, 64, W | N, 2);
	ID(f, t, 2, STATUS, 1, W, 0);
	D(f, 0, t, 3 * 16, I, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->nw, 2);
	expect_iov(f, 1, DATA, 64);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* Misaligned and straddling. */
	{
		const uint64_t t2 = B_GPA - 24;

		ID(f, t2, 0, HDR, 16, R | N, 1);
		ID(f, t2, 1, STATUS, 1, W, 0);
		D(f, 0, t2, 2 * 16, I, 0);
		assert_int_equal(walk(f, 0), 0);
		assert_int_equal(f->nr, 1);
		assert_int_equal(f->nw, 1);
	}

	/* A table that must be copied but does not fit the scratch area (128 entries). */
	D(f, 0, t, (VH_VQ_SCRATCH_DESC + 1) * 16, I, 0);
	assert_int_equal(walk(f, 0), -EBADMSG);
}

static void
test_too_many_segments(void **state)
{
	struct fix *f = *state;
	const uint16_t max = MAX_IOV;

	/* Exactly MAX_IOV segments: accepted. */
	for (uint16_t i = 0; i < max - 1; i++) {
		ID(f, ITABLE, i, DATA + 0x10ull * i, 8, R | N, (uint16_t)(i + 1));
	}
	ID(f, ITABLE, max - 1, STATUS, 1, W, 0);
	D(f, 0, ITABLE, max * 16u, I, 0);
	assert_int_equal(walk(f, 0), 0);
	assert_int_equal(f->nr, max - 1);
	assert_int_equal(f->nw, 1);

	/* One more: -ENOBUFS, with the status byte still found. */
	for (uint16_t i = 0; i < max; i++) {
		ID(f, ITABLE, i, DATA + 0x10ull * i, 8, R | N, (uint16_t)(i + 1));
	}
	ID(f, ITABLE, max, STATUS, 1, W, 0);
	D(f, 0, ITABLE, (max + 1) * 16u, I, 0);
	assert_int_equal(walk(f, 0), -ENOBUFS);
	assert_ptr_equal(f->status, P(f, STATUS));

	/* Straddling buffers count twice. */
	for (uint16_t i = 0; i < max / 2; i++) {
		ID(f, ITABLE, i, B_GPA - 4, 8, W | N, (uint16_t)(i + 1));
	}
	ID(f, ITABLE, max / 2, STATUS, 1, W, 0);
	D(f, 0, ITABLE, (max / 2 + 1) * 16u, I, 0);
	assert_int_equal(walk(f, 0), -ENOBUFS);
	assert_ptr_equal(f->status, P(f, STATUS));
}

/* ---- vh_vq_prepare ---- */

static uint64_t
qva_of(uint64_t gpa)
{
	return A_QVA + (gpa - A_GPA);
}

static void
prep_config(struct fix *f)
{
	struct vh_vq *vq = f->vq;

	f->s->mem = &f->mem;
	vq->size = QSIZE;
	vq->addr.desc_user_addr = qva_of(DESC);
	vq->addr.avail_user_addr = qva_of(AVAIL);
	vq->addr.used_user_addr = qva_of(USED);
	vq->addr_set = true;
	vq->kick_set = true;
	vq->base = 7;
	vq->enabled = true;
}

static void
test_prepare_ok(void **state)
{
	struct fix *f = *state;
	struct vh_vq *vq = f->vq;

	prep_config(f);
	vq->callfd = 42;
	vq->kickfd = 43;
	assert_int_equal(vh_vq_prepare(vq), 0);
	assert_ptr_equal(vq->desc, P(f, DESC));
	assert_ptr_equal(vq->avail, P(f, AVAIL));
	assert_ptr_equal(vq->used, P(f, USED));
	assert_int_equal(vq->mask, QSIZE - 1);
	assert_int_equal(vq->last_avail, 7);
	assert_int_equal(vq->nslots, QSIZE);
	assert_int_equal(vq->nfree, QSIZE);
	assert_false(vq->event_idx);
	assert_true(vq->running);
	assert_int_equal(vq->cur_callfd, 42);
	assert_int_equal(vq->cur_kickfd, 43);
	assert_int_equal(vq->inflight, 0);
	vq->callfd = vq->kickfd = -1;

	/* EVENT_IDX negotiated; the largest queue gets only VH_VQ_MAX_SLOTS request slots. */
	f->s->features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	vq->size = VH_MAX_QUEUE_SIZE;
	vq->addr.desc_user_addr = B_QVA;              /* 512 KiB of descriptors won't fit... */
	assert_int_equal(vh_vq_prepare(vq), -EFAULT); /* ...in a 64 KiB region */
	vq->size = 1024;
	vq->addr.desc_user_addr = B_QVA;
	vq->addr.avail_user_addr = qva_of(A_GPA + 0x8000);
	vq->addr.used_user_addr = qva_of(A_GPA + 0xa000);
	assert_int_equal(vh_vq_prepare(vq), 0);
	assert_true(vq->event_idx);
	assert_int_equal(vq->nslots, VH_VQ_MAX_SLOTS);
	assert_int_equal(vq->nfree, VH_VQ_MAX_SLOTS);
	assert_int_equal(vq->mask, 1023);
}

static void
test_prepare_not_ready(void **state)
{
	struct fix *f = *state;
	struct vh_vq *vq = f->vq;

	prep_config(f);
	f->s->mem = NULL;
	assert_int_equal(vh_vq_prepare(vq), -EAGAIN);
	prep_config(f);
	vq->addr_set = false;
	assert_int_equal(vh_vq_prepare(vq), -EAGAIN);
	prep_config(f);
	vq->size = 0;
	assert_int_equal(vh_vq_prepare(vq), -EAGAIN);
	prep_config(f);
	vq->kick_set = false;
	assert_int_equal(vh_vq_prepare(vq), -EAGAIN);
}

static void
test_prepare_alignment_and_bounds(void **state)
{
	struct fix *f = *state;
	struct vh_vq *vq = f->vq;

	/* VIRTIO 1.2 §2.7: desc 16, avail 2, used 4. */
	prep_config(f);
	vq->addr.desc_user_addr += 8;
	assert_int_equal(vh_vq_prepare(vq), -EINVAL);
	prep_config(f);
	vq->addr.avail_user_addr += 1;
	assert_int_equal(vh_vq_prepare(vq), -EINVAL);
	prep_config(f);
	vq->addr.avail_user_addr += 2;
	assert_int_equal(vh_vq_prepare(vq), 0);
	prep_config(f);
	vq->addr.used_user_addr += 2;
	assert_int_equal(vh_vq_prepare(vq), -EINVAL);
	prep_config(f);
	vq->addr.used_user_addr += 4;
	assert_int_equal(vh_vq_prepare(vq), 0);

	/* Ring addresses are front-end virtual addresses, not guest-physical ones. */
	prep_config(f);
	vq->addr.desc_user_addr = DESC;
	assert_int_equal(vh_vq_prepare(vq), -EFAULT);

	/* Each ring must lie inside one region: desc 16n, avail 6 + 2n, used 6 + 8n bytes. */
	prep_config(f);
	vq->addr.desc_user_addr = A_QVA + RSIZE - 16 * QSIZE;
	assert_int_equal(vh_vq_prepare(vq), 0);
	vq->addr.desc_user_addr = A_QVA + RSIZE - 16 * QSIZE + 16;
	assert_int_equal(vh_vq_prepare(vq), -EFAULT);
	prep_config(f);
	vq->addr.avail_user_addr = A_QVA + RSIZE - (6 + 2 * QSIZE);
	assert_int_equal(vh_vq_prepare(vq), 0);
	vq->addr.avail_user_addr += 2;
	assert_int_equal(vh_vq_prepare(vq), -EFAULT);
	prep_config(f);
	vq->addr.used_user_addr = A_QVA + RSIZE - (8 + 8 * QSIZE);
	assert_int_equal(vh_vq_prepare(vq), 0);
	vq->addr.used_user_addr += 4;
	assert_int_equal(vh_vq_prepare(vq), -EFAULT);
	prep_config(f);
	vq->addr.used_user_addr = 0x1000;
	assert_int_equal(vh_vq_prepare(vq), -EFAULT);
}

static void
test_reset_closes_fds(void **state)
{
	struct fix *f = *state;
	struct vh_vq *vq = f->vq;
	int k = eventfd(0, 0), c = eventfd(0, 0), e = eventfd(0, 0);

	prep_config(f);
	vq->kickfd = k;
	vq->callfd = c;
	vq->errfd = e;
	vh_vq_reset(vq);
	assert_int_equal(vq->kickfd, -1);
	assert_int_equal(vq->callfd, -1);
	assert_int_equal(vq->errfd, -1);
	assert_int_equal(vq->size, 0);
	assert_false(vq->addr_set);
	assert_false(vq->kick_set);
	assert_false(vq->enabled);
	assert_int_equal(vq->base, 0);
	assert_int_equal(fcntl(k, F_GETFD), -1);
	assert_int_equal(fcntl(c, F_GETFD), -1);
	assert_int_equal(fcntl(e, F_GETFD), -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_direct_chain),
	        T(test_read_then_write_split),
	        T(test_straddling_buffer_two_iovecs),
	        T(test_loops_and_indices),
	        T(test_readable_after_writable),
	        T(test_unmapped_buffer),
	        T(test_len_zero_descriptors),
	        T(test_huge_and_wrapping_lengths),
	        T(test_indirect_valid),
	        T(test_indirect_bad_tables),
	        T(test_indirect_nested_and_feature),
	        T(test_indirect_loops_and_indices),
	        T(test_indirect_straddling_table_copied),
	        T(test_indirect_misaligned_table),
	        T(test_too_many_segments),
	        T(test_prepare_ok),
	        T(test_prepare_not_ready),
	        T(test_prepare_alignment_and_bounds),
	        T(test_reset_closes_fds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
