/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The I/O queue pair against the mock: PRP building, data, phase wrap, back-pressure, bounce,
 * untrusted completions, error statuses and retries, timeouts, fatal status and hot-remove.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nvme_test.h"

#define PG 4096u

static uint8_t *
pages(unsigned n)
{
	uint8_t *p = aligned_alloc(PG, (size_t)n * PG);

	memset(p, 0, (size_t)n * PG);
	return p;
}

static void
fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
	}
}

static int64_t
identity(void *ctx, const void *va, size_t len, uint64_t *iova)
{
	*iova = (uintptr_t)va;
	return (int64_t)len;
}

/* ---- status mapping ------------------------------------------------------------------------- */

static void
test_status_mapping(void **state)
{
	assert_int_equal(vh_nvme_status_to_errno(0), 0);
	assert_int_equal(vh_nvme_status_to_errno(VH_NVME_SC_INVALID_OPCODE), -EOPNOTSUPP);
	assert_int_equal(vh_nvme_status_to_errno(VH_NVME_SC_INVALID_FIELD), -EINVAL);
	assert_int_equal(vh_nvme_status_to_errno(VH_NVME_SC_LBA_OUT_OF_RANGE), -ERANGE);
	assert_int_equal(vh_nvme_status_to_errno(VH_NVME_SC_CAP_EXCEEDED), -ENOSPC);
	assert_int_equal(vh_nvme_status_to_errno(VH_NVME_SC_INTERNAL), -EIO);
	assert_int_equal(vh_nvme_status_to_errno(VH_NVME_SC_ABORT_REQUESTED), -ECANCELED);
	assert_int_equal(vh_nvme_status_to_errno((2u << 8) | VH_NVME_SC_UNRECOVERED_READ), -EIO);
	assert_int_equal(vh_nvme_status_to_errno((2u << 8) | VH_NVME_SC_COMPARE_FAILURE), -EILSEQ);
	assert_int_equal(vh_nvme_status_to_errno((1u << 8) | 0x01), -EIO);
	assert_int_equal(vh_nvme_status_to_errno((7u << 8) | 0x42), -EIO);
}

/* ---- PRP building --------------------------------------------------------------------------- */

struct prp_case {
	struct vh_nvme_sqe sqe;
	uint64_t list[8];
	int ret;
};

static void
prp(struct prp_case *c, const struct iovec *iov, int n, size_t skip, size_t len, unsigned max)
{
	memset(c, 0, sizeof(*c));
	c->ret = vh_nvme_prp_build(identity, NULL, iov, n, skip, len, &c->sqe, c->list, 0xabc000,
	                           max);
}

static void
test_prp_simple(void **state)
{
	uint8_t *b = pages(4);
	uintptr_t a = (uintptr_t)b;
	struct prp_case c;
	struct iovec iov[1];

	/* One aligned page: PRP1 only. */
	iov[0] = (struct iovec){b, PG};
	prp(&c, iov, 1, 0, PG, 8);
	assert_int_equal(c.ret, 0);
	assert_int_equal(c.sqe.prp1, a);
	assert_int_equal(c.sqe.prp2, 0);
	/* Inside a page at an offset. */
	iov[0] = (struct iovec){b + 512, 512};
	prp(&c, iov, 1, 0, 512, 8);
	assert_int_equal(c.sqe.prp1, a + 512);
	assert_int_equal(c.sqe.prp2, 0);
	/* Crossing one page boundary: PRP2 is the second page itself. */
	iov[0] = (struct iovec){b + 3584, 1024};
	prp(&c, iov, 1, 0, 1024, 8);
	assert_int_equal(c.ret, 0);
	assert_int_equal(c.sqe.prp1, a + 3584);
	assert_int_equal(c.sqe.prp2, a + PG);
	/* Three pages: PRP2 points at the list. */
	iov[0] = (struct iovec){b, 3 * PG};
	prp(&c, iov, 1, 0, 3 * PG, 8);
	assert_int_equal(c.sqe.prp1, a);
	assert_int_equal(c.sqe.prp2, 0xabc000);
	assert_int_equal(c.list[0], a + PG);
	assert_int_equal(c.list[1], a + 2 * PG);
	/* Unaligned start spanning three pages. */
	iov[0] = (struct iovec){b + 512, 2 * PG};
	prp(&c, iov, 1, 0, 2 * PG, 8);
	assert_int_equal(c.sqe.prp1, a + 512);
	assert_int_equal(c.sqe.prp2, 0xabc000);
	assert_int_equal(c.list[0], a + PG);
	assert_int_equal(c.list[1], a + 2 * PG);
	free(b);
}

static void
test_prp_multi_iov(void **state)
{
	uint8_t *b1 = pages(2), *b2 = pages(2), *b3 = pages(1);
	struct prp_case c;
	struct iovec iov[3] = {
	        {b1 + 3584, 512}, /* unaligned first, ends on a page boundary */
	        {b2, 2 * PG},     /* whole pages */
	        {b3, 1024},       /* last: starts a page, ends anywhere */
	};

	prp(&c, iov, 3, 0, 512 + 2 * PG + 1024, 8);
	assert_int_equal(c.ret, 0);
	assert_int_equal(c.sqe.prp1, (uintptr_t)b1 + 3584);
	assert_int_equal(c.sqe.prp2, 0xabc000);
	assert_int_equal(c.list[0], (uintptr_t)b2);
	assert_int_equal(c.list[1], (uintptr_t)b2 + PG);
	assert_int_equal(c.list[2], (uintptr_t)b3);
	/* Skip into the second iovec: it becomes the first entry. */
	prp(&c, iov, 3, 512 + PG, PG, 8);
	assert_int_equal(c.ret, 0);
	assert_int_equal(c.sqe.prp1, (uintptr_t)b2 + PG);
	assert_int_equal(c.sqe.prp2, 0);
	/* Skip into the middle of a page: allowed, it is the first entry. */
	prp(&c, iov, 3, 1024, 2 * PG - 512 + 1024, 8);
	assert_int_equal(c.ret, 0);
	assert_int_equal(c.sqe.prp1, (uintptr_t)b2 + 512);
	assert_int_equal(c.sqe.prp2, 0xabc000);
	assert_int_equal(c.list[0], (uintptr_t)b2 + PG);
	assert_int_equal(c.list[1], (uintptr_t)b3);
	/* Zero-length iovecs in between are harmless. */
	{
		struct iovec z[3] = {{b2, PG}, {b1, 0}, {b3, PG}};

		prp(&c, z, 3, 0, 2 * PG, 8);
		assert_int_equal(c.ret, 0);
		assert_int_equal(c.sqe.prp2, (uintptr_t)b3);
	}
	free(b1);
	free(b2);
	free(b3);
}

static int64_t
refuse_b2(void *ctx, const void *va, size_t len, uint64_t *iova)
{
	uint8_t *bad = ctx;

	if ((const uint8_t *)va >= bad && (const uint8_t *)va < bad + PG) {
		return -EFAULT;
	}
	*iova = (uintptr_t)va;
	return (int64_t)len;
}

/* Splits every page in two halves; the second half is contiguous unless @ctx says not. */
static int64_t
split_halves(void *ctx, const void *va, size_t len, uint64_t *iova)
{
	uintptr_t a = (uintptr_t)va;
	size_t to_half = 2048 - (a % 2048);

	*iova = a + ((ctx != NULL && a % PG >= 2048) ? 0x100000 : 0);
	return (int64_t)VH_MIN(len, to_half);
}

static void
test_prp_needs_bounce(void **state)
{
	uint8_t *b1 = pages(2), *b2 = pages(2);
	struct prp_case c;
	struct iovec iov[2];

	/* A middle segment that starts inside a page. */
	iov[0] = (struct iovec){b1, PG};
	iov[1] = (struct iovec){b2 + 512, 512};
	prp(&c, iov, 2, 0, PG + 512, 8);
	assert_int_equal(c.ret, VH_NVME_PRP_BOUNCE);
	/* A first segment that ends inside a page while more follows. */
	iov[0] = (struct iovec){b1, 512};
	iov[1] = (struct iovec){b2, 512};
	prp(&c, iov, 2, 0, 1024, 8);
	assert_int_equal(c.ret, VH_NVME_PRP_BOUNCE);
	/* Not dword aligned. */
	iov[0] = (struct iovec){b1 + 2, 512};
	prp(&c, iov, 1, 0, 512, 8);
	assert_int_equal(c.ret, VH_NVME_PRP_BOUNCE);
	/* Not translatable (e.g. guest memory UIO cannot resolve). */
	iov[0] = (struct iovec){b1, PG};
	iov[1] = (struct iovec){b2, PG};
	memset(&c, 0, sizeof(c));
	assert_int_equal(vh_nvme_prp_build(refuse_b2, b2, iov, 2, 0, 2 * PG, &c.sqe, c.list, 0, 8),
	                 VH_NVME_PRP_BOUNCE);
	/* A region edge inside a page: fine if contiguous for the device, bounce if not. */
	iov[0] = (struct iovec){b1, 2 * PG};
	assert_int_equal(
	        vh_nvme_prp_build(split_halves, NULL, iov, 1, 0, 2 * PG, &c.sqe, c.list, 0, 8), 0);
	assert_int_equal(c.sqe.prp2, (uintptr_t)b1 + PG);
	assert_int_equal(
	        vh_nvme_prp_build(split_halves, b1, iov, 1, 0, 2 * PG, &c.sqe, c.list, 0, 8),
	        VH_NVME_PRP_BOUNCE);
	/* Too short an iovec, and more entries than the list holds. */
	iov[0] = (struct iovec){b1, 512};
	prp(&c, iov, 1, 0, 1024, 8);
	assert_int_equal(c.ret, -EINVAL);
	iov[0] = (struct iovec){b1, 2 * PG};
	iov[1] = (struct iovec){b2, 2 * PG};
	prp(&c, iov, 2, 0, 4 * PG, 2);
	assert_int_equal(c.ret, -E2BIG);
	free(b1);
	free(b2);
}

/* ---- data path ------------------------------------------------------------------------------ */

static void
rw_sync(struct fixture *f, bool write, uint32_t nsid, uint64_t slba, uint32_t nlb,
        const struct iovec *iov, int n, size_t len, int expect)
{
	struct done d = {0};

	assert_int_equal(
	        vh_nvme_qpair_rw(f->qp, write, nsid, slba, nlb, iov, n, 0, len, done_cb, &d), 0);
	poll_until(f->qp, &d);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, expect);
}

static void
test_rw_data(void **state)
{
	uint8_t *src = pages(4), *dst = pages(5);
	struct vh_nvme_qpair_stats st;
	struct iovec wr[3], rd[2];
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	fill(src, 4 * PG, 1);
	/* Write 12 KiB from three segments: unaligned first, whole page, short last. */
	wr[0] = (struct iovec){src + 3072, 1024};
	wr[1] = (struct iovec){src + PG, PG};
	wr[2] = (struct iovec){src + 2 * PG, 7 * 1024};
	rw_sync(&f, true, 1, 10, 24, wr, 3, 12 * 1024, 0);
	assert_memory_equal(mock_ns_data(f.m, 1, 10 * 512), src + 3072, 1024);
	assert_memory_equal(mock_ns_data(f.m, 1, 10 * 512 + 1024), src + PG, PG + 7 * 1024);
	/* Read it back in a different shape. */
	rd[0] = (struct iovec){dst + 512, PG - 512};
	rd[1] = (struct iovec){dst + PG, 2 * PG + 512};
	rw_sync(&f, false, 1, 10, 24, rd, 2, 12 * 1024, 0);
	assert_memory_equal(dst + 512, src + 3072, 1024);
	assert_memory_equal(dst + 512 + 1024, src + PG, PG + 7 * 1024);
	/* 4 KiB namespace. */
	wr[0] = (struct iovec){src, 2 * PG};
	rw_sync(&f, true, 2, 3, 2, wr, 1, 2 * PG, 0);
	assert_memory_equal(mock_ns_data(f.m, 2, 3 * PG), src, 2 * PG);
	/* Out of range: the device says LBA Out of Range with DNR. */
	rw_sync(&f, false, 1, 1020, 8, wr, 1, PG, -ERANGE);
	vh_nvme_qpair_get_stats(f.qp, &st);
	assert_int_equal(st.bounced, 0);
	assert_int_equal(st.retries, 0);
	assert_int_equal(f.m->prp_errors, 0);
	/* Larger than max_xfer is refused up front. */
	assert_int_equal(
	        vh_nvme_qpair_rw(f.qp, false, 1, 0, 512, wr, 1, 0, 256 * 1024, done_cb, NULL),
	        -EINVAL);
	fixture_down(&f);
	free(src);
	free(dst);
}

static void
test_bounce(void **state)
{
	uint8_t *src = pages(3), *dst = pages(3);
	struct vh_nvme_qpair_stats st;
	struct iovec wr[3], rd[3];
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	fill(src, 3 * PG, 2);
	/* 512-byte pieces from the middle of pages: no PRP can say that. */
	wr[0] = (struct iovec){src + 100 * 4, 512};
	wr[1] = (struct iovec){src + PG + 1000, 1536};
	wr[2] = (struct iovec){src + 2 * PG + 8, 2048};
	rw_sync(&f, true, 1, 100, 8, wr, 3, 4096, 0);
	assert_memory_equal(mock_ns_data(f.m, 1, 100 * 512), src + 400, 512);
	assert_memory_equal(mock_ns_data(f.m, 1, 100 * 512 + 512), src + PG + 1000, 1536);
	assert_memory_equal(mock_ns_data(f.m, 1, 100 * 512 + 2048), src + 2 * PG + 8, 2048);
	rd[0] = (struct iovec){dst + 4, 2048};
	rd[1] = (struct iovec){dst + PG + 12, 1024};
	rd[2] = (struct iovec){dst + 2 * PG + 20, 1024};
	rw_sync(&f, false, 1, 100, 8, rd, 3, 4096, 0);
	assert_memory_equal(dst + 4, mock_ns_data(f.m, 1, 100 * 512), 2048);
	assert_memory_equal(dst + PG + 12, mock_ns_data(f.m, 1, 100 * 512 + 2048), 1024);
	assert_memory_equal(dst + 2 * PG + 20, mock_ns_data(f.m, 1, 100 * 512 + 3072), 1024);
	vh_nvme_qpair_get_stats(f.qp, &st);
	assert_int_equal(st.bounced, 2);
	/* Untranslatable memory bounces too, and a failed read leaves the buffer alone. */
	vh_nvme_qpair_set_translate(f.qp, refuse_b2, dst);
	memset(dst, 0x5a, PG);
	rd[0] = (struct iovec){dst, PG};
	rw_sync(&f, false, 1, 1023, 8, rd, 1, PG, -ERANGE);
	assert_int_equal(dst[0], 0x5a);
	rw_sync(&f, false, 1, 100, 8, rd, 1, PG, 0);
	assert_memory_equal(dst, mock_ns_data(f.m, 1, 100 * 512), PG);
	vh_nvme_qpair_get_stats(f.qp, &st);
	assert_int_equal(st.bounced, 4);
	assert_int_equal(f.m->prp_errors, 0);
	fixture_down(&f);
	free(src);
	free(dst);
}

static void
test_phase_wrap(void **state)
{
	struct vh_nvme_ctrlr_opts o;
	uint8_t *buf = pages(8), *chk = pages(1);
	struct done d[3];
	unsigned issued = 0, completed = 0;
	struct fixture f;

	fixture_opts(&f, &o);
	o.io_queue_depth = 4; /* 3 command slots, CQ of 4: a lap every 4 completions */
	assert_int_equal(fixture_up(&f, &o), 0);
	memset(d, 0, sizeof(d));
	fill(buf, 8 * PG, 3);
	while (completed < 2000) {
		for (unsigned i = 0; i < 3 && issued < 2000; i++) {
			struct iovec iov = {buf + (issued % 8) * PG, PG};

			if (d[i].calls != 0 || issued - completed >= 3 || i != issued % 3) {
				continue;
			}
			assert_int_equal(vh_nvme_qpair_rw(f.qp, true, 1, (issued % 100) * 8, 8,
			                                  &iov, 1, 0, PG, done_cb, &d[i]),
			                 0);
			issued++;
		}
		vh_nvme_qpair_poll(f.qp, 64);
		for (unsigned i = 0; i < 3; i++) {
			if (d[i].calls != 0) {
				assert_int_equal(d[i].calls, 1);
				assert_int_equal(d[i].status, 0);
				completed++;
				d[i].calls = 0;
			}
		}
	}
	assert_true(f.m->phase_flips >= 2000 / 4 - 1);
	/* The data of the last lap landed where it should. */
	{
		struct iovec iov = {chk, PG};

		rw_sync(&f, false, 1, (1999 % 100) * 8, 8, &iov, 1, PG, 0);
		assert_memory_equal(chk, buf + (1999 % 8) * PG, PG);
	}
	assert_int_equal(f.m->cq_overflows + f.m->bad_doorbells, 0);
	fixture_down(&f);
	free(buf);
	free(chk);
}

static void
test_queue_full(void **state)
{
	struct vh_nvme_ctrlr_opts o;
	uint8_t *buf = pages(4);
	struct done d[8];
	struct iovec iov = {buf, PG};
	struct fixture f;

	fixture_opts(&f, &o);
	o.io_queue_depth = 8;
	assert_int_equal(fixture_up(&f, &o), 0);
	f.m->auto_process = false;
	memset(d, 0, sizeof(d));
	assert_int_equal(vh_nvme_qpair_free_slots(f.qp), 7);
	for (unsigned i = 0; i < 7; i++) {
		assert_int_equal(
		        vh_nvme_qpair_rw(f.qp, false, 1, i, 1, &iov, 1, 0, 512, done_cb, &d[i]), 0);
	}
	/* An SQ of 8 holds 7: the 8th waits for a completion. */
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 7, 1, &iov, 1, 0, 512, done_cb, &d[7]),
	                 -EAGAIN);
	assert_int_equal(vh_nvme_qpair_flush(f.qp, 1, done_cb, &d[7]), -EAGAIN);
	/* Submissions are batched: nothing reached the device before the poll's single ring. */
	assert_int_equal(f.m->sq_db_writes[1], 0);
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(f.m->sq_db_writes[1], 1);
	assert_int_equal(mock_process(f.m, 1, 100), 7);
	assert_int_equal(vh_nvme_qpair_poll(f.qp, 64), 7);
	assert_int_equal(f.m->cq_db_writes[1], 1); /* one CQ head doorbell for 7 CQEs */
	for (unsigned i = 0; i < 7; i++) {
		assert_int_equal(d[i].calls, 1);
	}
	assert_int_equal(vh_nvme_qpair_free_slots(f.qp), 7);
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 7, 1, &iov, 1, 0, 512, done_cb, &d[7]),
	                 0);
	f.m->auto_process = true;
	poll_until(f.qp, &d[7]);
	fixture_down(&f);
	free(buf);
}

static void
test_bounce_pool_full(void **state)
{
	struct vh_nvme_ctrlr_opts o;
	uint8_t *buf = pages(4);
	struct done d[3];
	/* Offsets of 2 bytes: not dword aligned, so every one of these needs the bounce. */
	struct iovec iov[3] = {{buf + 2, 512}, {buf + PG + 2, 512}, {buf + 2 * PG + 2, 512}};
	struct iovec big = {buf + 2, 3 * PG};
	struct fixture f;

	fixture_opts(&f, &o);
	o.bounce_pages = 2;
	assert_int_equal(fixture_up(&f, &o), 0);
	f.m->auto_process = false;
	memset(d, 0, sizeof(d));
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov[0], 1, 0, 512, done_cb, &d[0]),
	                 0);
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov[1], 1, 0, 512, done_cb, &d[1]),
	                 0);
	/* Pool empty: back-pressure, and the command slot is given back. */
	assert_int_equal(vh_nvme_qpair_free_slots(f.qp), 61);
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov[2], 1, 0, 512, done_cb, &d[2]),
	                 -EAGAIN);
	assert_int_equal(vh_nvme_qpair_free_slots(f.qp), 61);
	/* Bigger than the whole pool: can never work. */
	assert_int_equal(
	        vh_nvme_qpair_rw(f.qp, false, 1, 0, 24, &big, 1, 0, 3 * PG, done_cb, &d[2]),
	        -EINVAL);
	f.m->auto_process = true;
	vh_nvme_qpair_poll(f.qp, 64);
	poll_until(f.qp, &d[1]);
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov[2], 1, 0, 512, done_cb, &d[2]),
	                 0);
	poll_until(f.qp, &d[2]);
	fixture_down(&f);
	free(buf);
}

static void
test_flush_wz_dsm(void **state)
{
	uint8_t *buf = pages(4);
	struct iovec iov = {buf, 4 * PG};
	struct vh_nvme_dsm_range r[2] = {
	        {.nlb = 4, .slba = 4},
	        {.nlb = 2, .slba = 10},
	};
	struct done d = {0};
	struct fixture f;
	uint8_t zero[4 * 512] = {0};

	assert_int_equal(fixture_up(&f, NULL), 0);
	memset(buf, 0xee, 4 * PG);
	rw_sync(&f, true, 1, 0, 32, &iov, 1, 4 * PG, 0);
	assert_int_equal(vh_nvme_qpair_write_zeroes(f.qp, 1, 0, 4, 0, done_cb, &d), 0);
	poll_until(f.qp, &d);
	assert_int_equal(d.status, 0);
	assert_memory_equal(mock_ns_data(f.m, 1, 0), zero, 4 * 512);
	assert_int_equal(*mock_ns_data(f.m, 1, 4 * 512), 0xee);
	d.calls = 0;
	assert_int_equal(vh_nvme_qpair_deallocate(f.qp, 1, r, 2, done_cb, &d), 0);
	poll_until(f.qp, &d);
	assert_int_equal(d.status, 0);
	assert_memory_equal(mock_ns_data(f.m, 1, 4 * 512), zero, 4 * 512);
	assert_memory_equal(mock_ns_data(f.m, 1, 10 * 512), zero, 2 * 512);
	assert_int_equal(*mock_ns_data(f.m, 1, 8 * 512), 0xee);
	assert_int_equal(*mock_ns_data(f.m, 1, 12 * 512), 0xee);
	d.calls = 0;
	assert_int_equal(vh_nvme_qpair_flush(f.qp, 1, done_cb, &d), 0);
	poll_until(f.qp, &d);
	assert_int_equal(d.status, 0);
	assert_int_equal(f.m->opc_count[1][VH_NVME_OPC_FLUSH], 1);
	assert_int_equal(vh_nvme_qpair_write_zeroes(f.qp, 1, 0, 65537, 0, done_cb, &d), -EINVAL);
	assert_int_equal(vh_nvme_qpair_deallocate(f.qp, 1, r, 0, done_cb, &d), -EINVAL);
	/* A controller without the optional command says Invalid Opcode. */
	f.m->oncs = 0;
	d.calls = 0;
	assert_int_equal(vh_nvme_qpair_write_zeroes(f.qp, 1, 0, 4, VH_NVME_CMD_DEAC, done_cb, &d),
	                 0);
	poll_until(f.qp, &d);
	assert_int_equal(d.status, -EOPNOTSUPP);
	fixture_down(&f);
	free(buf);
}

/* ---- untrusted completions ------------------------------------------------------------------ */

static void
test_bad_cids(void **state)
{
	struct vh_nvme_qpair_stats st;
	uint8_t *buf = pages(1);
	struct iovec iov = {buf, 512};
	struct done d = {0};
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	f.m->auto_process = false;
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov, 1, 0, 512, done_cb, &d), 0);
	vh_nvme_qpair_poll(f.qp, 64);
	/* The slot just used is the top of the free list: CID 0. The device lies three ways: */
	mock_post_cqe(f.m, 1, 1, 500, 0); /* CID beyond the queue */
	mock_post_cqe(f.m, 1, 1, 7, 0);   /* a CID that is not in flight */
	mock_post_cqe(f.m, 1, 2, 0, 0);   /* the right CID, but for another SQ */
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(d.calls, 0);
	vh_nvme_qpair_get_stats(f.qp, &st);
	assert_int_equal(st.bad_cqes, 3);
	/* The real completion, then the same one again: the callback runs once. */
	assert_int_equal(mock_process(f.m, 1, 10), 1);
	mock_post_cqe(f.m, 1, 1, 0, 0);
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, 0);
	vh_nvme_qpair_get_stats(f.qp, &st);
	assert_int_equal(st.bad_cqes, 4);
	assert_int_equal(st.completed, 1);
	assert_int_equal(vh_nvme_qpair_outstanding(f.qp), 0);
	fixture_down(&f);
	free(buf);
}

/* ---- error statuses ------------------------------------------------------------------------- */

struct fail_plan {
	unsigned remaining; /* I/O commands to fail */
	uint16_t status;
};

static enum mock_verdict
fail_hook(struct mock_ctrlr *m, uint16_t qid, const struct vh_nvme_sqe *sqe, uint16_t *status)
{
	struct fail_plan *p = m->hook_arg;

	if (qid == 0 || p->remaining == 0) {
		return MOCK_EXEC;
	}
	p->remaining--;
	*status = p->status;
	return MOCK_FAIL;
}

static void
test_error_retry(void **state)
{
	struct fail_plan plan;
	struct vh_nvme_qpair_stats st;
	uint8_t *buf = pages(1);
	struct iovec iov = {buf, 512};
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	f.m->hook = fail_hook;
	f.m->hook_arg = &plan;
	/* Internal Error without DNR, twice: retried, then it succeeds. */
	plan = (struct fail_plan){2, VH_NVME_STATUS(0, VH_NVME_SC_INTERNAL) >> 1};
	rw_sync(&f, false, 1, 0, 1, &iov, 1, 512, 0);
	vh_nvme_qpair_get_stats(f.qp, &st);
	assert_int_equal(st.retries, 2);
	assert_int_equal(f.m->opc_count[1][VH_NVME_OPC_READ], 3);
	/* Without DNR but failing every time: 1 + max_retries attempts, then -EIO. */
	plan = (struct fail_plan){100, VH_NVME_STATUS(0, VH_NVME_SC_DATA_XFER_ERROR) >> 1};
	rw_sync(&f, false, 1, 0, 1, &iov, 1, 512, -EIO);
	assert_int_equal(f.m->opc_count[1][VH_NVME_OPC_READ], 3 + 4);
	/* DNR: no retry, mapped status. */
	plan = (struct fail_plan){
	        1, (VH_NVME_STATUS(2, VH_NVME_SC_UNRECOVERED_READ) | VH_NVME_STATUS_DNR) >> 1};
	rw_sync(&f, false, 1, 0, 1, &iov, 1, 512, -EIO);
	assert_int_equal(f.m->opc_count[1][VH_NVME_OPC_READ], 7 + 1);
	plan = (struct fail_plan){
	        1, (VH_NVME_STATUS(0, VH_NVME_SC_INVALID_FIELD) | VH_NVME_STATUS_DNR) >> 1};
	rw_sync(&f, true, 1, 0, 1, &iov, 1, 512, -EINVAL);
	vh_nvme_qpair_get_stats(f.qp, &st);
	assert_int_equal(st.retries, 2 + 3);
	assert_int_equal(st.errors, 3);
	assert_int_equal(vh_nvme_qpair_outstanding(f.qp), 0);
	fixture_down(&f);
	free(buf);
}

/* ---- timeouts, fatal status, removal -------------------------------------------------------- */

struct drop_plan {
	unsigned seen;
	unsigned drop; /* 1-based index of the I/O command to act on */
	enum mock_verdict verdict;
};

static enum mock_verdict
drop_hook(struct mock_ctrlr *m, uint16_t qid, const struct vh_nvme_sqe *sqe, uint16_t *status)
{
	struct drop_plan *p = m->hook_arg;

	if (qid == 0) {
		return MOCK_EXEC;
	}
	return ++p->seen == p->drop ? p->verdict : MOCK_EXEC;
}

static void
test_timeout(void **state)
{
	struct drop_plan plan = {0, 2, MOCK_DROP};
	uint8_t *buf = pages(1);
	struct iovec iov = {buf, 512};
	struct done d[3];
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	f.m->hook = drop_hook;
	f.m->hook_arg = &plan;
	memset(d, 0, sizeof(d));
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(
		        vh_nvme_qpair_rw(f.qp, false, 1, i, 1, &iov, 1, 0, 512, done_cb, &d[i]), 0);
	}
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(d[0].calls + d[2].calls, 2);
	assert_int_equal(d[1].calls, 0);
	/* Before the deadline nothing happens; after it, an event but still no callback. */
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(f.events[VH_NVME_EV_TIMEOUT], 0);
	fake_clock_ns += 2000000000ull;
	vh_nvme_qpair_poll(f.qp, 64);
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(f.events[VH_NVME_EV_TIMEOUT], 1);
	assert_int_equal(d[1].calls, 0);
	/* The reset stops the device; only then does the command complete, with -ETIMEDOUT. */
	assert_int_equal(vh_nvme_ctrlr_reset(f.c), 0);
	assert_int_equal(d[1].calls, 1);
	assert_int_equal(d[1].status, -ETIMEDOUT);
	assert_int_equal(vh_nvme_qpair_outstanding(f.qp), 0);
	/* And the queue keeps working. */
	d[0].calls = 0;
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov, 1, 0, 512, done_cb, &d[0]),
	                 0);
	poll_until(f.qp, &d[0]);
	assert_int_equal(d[0].status, 0);
	fixture_down(&f);
	free(buf);
}

static void
test_timeout_late_completion(void **state)
{
	struct drop_plan plan = {0, 1, MOCK_HOLD};
	uint8_t *buf = pages(1);
	struct iovec iov = {buf, 512};
	struct done d = {0};
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	f.m->hook = drop_hook;
	f.m->hook_arg = &plan;
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov, 1, 0, 512, done_cb, &d), 0);
	vh_nvme_qpair_poll(f.qp, 64);
	fake_clock_ns += 2000000000ull;
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(f.events[VH_NVME_EV_TIMEOUT], 1);
	/* The device answers after all: the real status wins, exactly once. */
	mock_release_held(f.m, 0);
	vh_nvme_qpair_poll(f.qp, 64);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, 0);
	assert_int_equal(vh_nvme_ctrlr_reset(f.c), 0);
	assert_int_equal(d.calls, 1);
	fixture_down(&f);
	free(buf);
}

#define NCFS 20

static void
cfs_run(uint8_t max_retries, bool poll_before_reset)
{
	struct vh_nvme_ctrlr_opts o;
	uint8_t *buf = pages(NCFS);
	struct iovec iov[NCFS];
	struct done d[NCFS];
	unsigned ok = 0, failed = 0;
	struct fixture f;

	fixture_opts(&f, &o);
	o.max_retries = max_retries;
	assert_int_equal(fixture_up(&f, &o), 0);
	f.m->auto_process = false;
	memset(d, 0, sizeof(d));
	fill(buf, NCFS * PG, 9);
	for (unsigned i = 0; i < NCFS; i++) {
		iov[i] = (struct iovec){buf + i * PG, PG};
		assert_int_equal(vh_nvme_qpair_rw(f.qp, true, 1, i * 8, 8, &iov[i], 1, 0, PG,
		                                  done_cb, &d[i]),
		                 0);
	}
	vh_nvme_qpair_ring(f.qp);
	/* Five complete, then the controller dies with the rest in flight. */
	assert_int_equal(mock_process(f.m, 1, 5), 5);
	mock_set_fatal(f.m);
	if (poll_before_reset) {
		vh_nvme_qpair_poll(f.qp, 64);
		assert_int_equal(f.events[VH_NVME_EV_FATAL], 1);
		vh_nvme_qpair_poll(f.qp, 64);
		assert_int_equal(f.events[VH_NVME_EV_FATAL], 1); /* reported once */
	}
	f.m->auto_process = true;
	assert_int_equal(vh_nvme_ctrlr_reset(f.c), 0);
	for (unsigned i = 0; i < 1000 && vh_nvme_qpair_outstanding(f.qp) > 0; i++) {
		vh_nvme_qpair_poll(f.qp, 64);
	}
	for (unsigned i = 0; i < NCFS; i++) {
		assert_int_equal(d[i].calls, 1); /* every I/O completes exactly once */
		if (d[i].status == 0) {
			ok++;
			assert_memory_equal(mock_ns_data(f.m, 1, i * 8 * 512), buf + i * PG, PG);
		} else {
			assert_int_equal(d[i].status, -EIO);
			failed++;
		}
	}
	if (max_retries > 0) {
		assert_int_equal(ok, NCFS);
		/* The five the device finished were not sent again. */
		assert_int_equal(f.m->opc_count[1][VH_NVME_OPC_WRITE], NCFS);
	} else {
		assert_int_equal(ok, 5);
		assert_int_equal(failed, NCFS - 5);
	}
	assert_int_equal(f.c->resets, 1);
	fixture_down(&f);
	free(buf);
}

static void
test_cfs_mid_io_retry(void **state)
{
	cfs_run(3, true);
}

static void
test_cfs_mid_io_unreaped(void **state)
{
	cfs_run(3, false);
}

static void
test_cfs_mid_io_fail(void **state)
{
	cfs_run(0, true);
}

static void
test_hot_remove(void **state)
{
	uint8_t *buf = pages(1);
	struct iovec iov = {buf, 512};
	struct done d[4];
	struct fixture f;

	assert_int_equal(fixture_up(&f, NULL), 0);
	f.m->auto_process = false;
	memset(d, 0, sizeof(d));
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(
		        vh_nvme_qpair_rw(f.qp, false, 1, i, 1, &iov, 1, 0, 512, done_cb, &d[i]), 0);
	}
	vh_nvme_qpair_poll(f.qp, 64);
	f.m->removed = true;
	fake_clock_ns += 10000000ull;
	vh_nvme_qpair_poll(f.qp, 64);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].status, -ENODEV);
	}
	assert_int_equal(f.events[VH_NVME_EV_REMOVED], 1);
	assert_true(vh_nvme_qpair_is_dead(f.qp));
	assert_int_equal(vh_nvme_qpair_rw(f.qp, false, 1, 0, 1, &iov, 1, 0, 512, done_cb, &d[0]),
	                 -ENODEV);
	/* A reset of a removed controller fails and leaves every queue dead. */
	assert_int_equal(vh_nvme_ctrlr_reset(f.c), -ENODEV);
	fixture_down(&f);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_status_mapping),
	        cmocka_unit_test(test_prp_simple),
	        cmocka_unit_test(test_prp_multi_iov),
	        cmocka_unit_test(test_prp_needs_bounce),
	        cmocka_unit_test(test_rw_data),
	        cmocka_unit_test(test_bounce),
	        cmocka_unit_test(test_phase_wrap),
	        cmocka_unit_test(test_queue_full),
	        cmocka_unit_test(test_bounce_pool_full),
	        cmocka_unit_test(test_flush_wz_dsm),
	        cmocka_unit_test(test_bad_cids),
	        cmocka_unit_test(test_error_retry),
	        cmocka_unit_test(test_timeout),
	        cmocka_unit_test(test_timeout_late_completion),
	        cmocka_unit_test(test_cfs_mid_io_retry),
	        cmocka_unit_test(test_cfs_mid_io_unreaped),
	        cmocka_unit_test(test_cfs_mid_io_fail),
	        cmocka_unit_test(test_hot_remove),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
