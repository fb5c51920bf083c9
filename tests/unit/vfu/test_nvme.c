/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The emulated NVMe controller (src/vfu/nvme_*.c) without sockets or threads: messages go
 * through vfu_msg_dispatch() with a capturing sender, the "guest" writes queue entries into a
 * memfd the session DMA-maps and rings doorbells in the doorbell page, and nvme_stubs.c runs
 * the reactor side deterministically with an in-memory bdev whose completions the test holds
 * and releases. Covers the admin commands and their errors, verified I/O on two reactors, FUA
 * and a disabled write cache, Write Zeroes emulation, DSM ranges read once, CQ flow control,
 * retries, media errors, resets with commands in flight, doorbell abuse, asynchronous events,
 * shadow doorbells and the eventfd barrier.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "nvme_stubs.h"
#include "vfu/nvme.h"

#define MEM_IOVA 0x100000ull
#define MEM_SIZE (16u << 20)
#define PAGE     4096u
#define NVEC     5

static struct vfu_nvme *N;
static struct vfu_session S;
static int g_memfd, g_dbfd, g_efd[NVEC];
static uint8_t *g_mem, *g_dbmap;
static uint64_t g_alloc;
static struct vh_bdev *B1, *B2;
static int g_last_err;

struct q {
	uint16_t size, cq_size, tail, head, cid;
	uint8_t phase;
	uint64_t sq_iova, cq_iova;
	struct vh_nvme_sqe *sq;
	volatile struct vh_nvme_cqe *cq;
};
static struct q Q[8];
static bool g_shadow; /* ring I/O doorbells in the shadow buffer only */
static uint32_t *g_shadow_db;

/* ---- messages ---- */

static int
capture(struct vfu_session *s, const struct iovec *iov, int iovcnt, int fd)
{
	const struct vfio_user_header *h = iov[0].iov_base;

	g_last_err = (h->flags & VFIO_USER_F_ERROR) ? (int)h->error_no : 0;
	return 0;
}

static int
msg(uint16_t cmd, const void *p, uint32_t len, const int *fds, unsigned nfds)
{
	struct vfio_user_header h = {.cmd = cmd, .msg_size = (uint32_t)sizeof(h) + len};

	memcpy(S.buf, &h, sizeof(h));
	memcpy(S.buf + sizeof(h), p, len);
	S.got = h.msg_size;
	for (unsigned i = 0; i < nfds; i++) {
		S.fds[i] = fds[i];
	}
	S.nfds = nfds;
	g_last_err = -1;
	assert_int_equal(vfu_msg_dispatch(&S), 0);
	stub_pump(1000);
	return g_last_err;
}

static void
wreg(uint32_t off, uint32_t v)
{
	struct vfio_user_region_access a = {.offset = off, .region = 0, .count = 4};
	uint8_t m[20];

	memcpy(m, &a, 16);
	memcpy(m + 16, &v, 4);
	assert_int_equal(msg(VFIO_USER_REGION_WRITE, m, sizeof(m), NULL, 0), 0);
}

static uint32_t
rreg(uint32_t off)
{
	uint32_t v;

	assert_int_equal(vfu_nvme_bar0_access(N, off, &v, 4, false), 0);
	return v;
}

static uint64_t
alloc(uint64_t len, void **va)
{
	uint64_t off = (g_alloc + PAGE - 1) & ~(uint64_t)(PAGE - 1);

	g_alloc = off + len;
	assert_true(g_alloc <= MEM_SIZE);
	*va = g_mem + off;
	memset(*va, 0, len);
	return MEM_IOVA + off;
}

/* ---- queues ---- */

static volatile uint32_t *
db(uint16_t qid, bool cq)
{
	if (g_shadow && qid > 0) {
		return &g_shadow_db[2 * qid + (cq ? 1 : 0)];
	}
	return (volatile uint32_t *)(g_dbmap + VFU_NVME_DB_OFFSET + (2u * qid + (cq ? 1 : 0)) * 4);
}

static void
q_init(uint16_t qid, uint16_t size)
{
	struct q *q = &Q[qid];
	void *p;

	memset(q, 0, sizeof(*q));
	q->size = size;
	q->cq_size = size;
	q->phase = 1;
	q->sq_iova = alloc((uint64_t)size * 64, &p);
	q->sq = p;
	q->cq_iova = alloc((uint64_t)size * 16, &p);
	q->cq = p;
}

static uint16_t
queue_cmd(uint16_t qid, struct vh_nvme_sqe *c)
{
	struct q *q = &Q[qid];

	c->cid = ++q->cid;
	memcpy(&q->sq[q->tail], c, sizeof(*c));
	q->tail = (uint16_t)((q->tail + 1) % q->size);
	return c->cid;
}

static void
ring(uint16_t qid)
{
	*db(qid, false) = Q[qid].tail;
}

/* One completion or -1; consumes it and rings the head doorbell. */
static int
reap(uint16_t qid, struct vh_nvme_cqe *out)
{
	struct q *q = &Q[qid];
	volatile struct vh_nvme_cqe *e = &q->cq[q->head];

	if ((e->status & 1) != q->phase) {
		return -1;
	}
	memcpy(out, (const void *)e, sizeof(*out));
	if (++q->head == q->cq_size) {
		q->head = 0;
		q->phase ^= 1;
	}
	*db(qid, true) = q->head;
	return 0;
}

/* Submit, run everything, return the status (without phase) of the completion. */
static int
cmd(uint16_t qid, struct vh_nvme_sqe *c, uint32_t *dw0)
{
	struct vh_nvme_cqe e;
	uint16_t cid = queue_cmd(qid, c);

	ring(qid);
	stub_pump(1000);
	while (reap(qid, &e) == 0) {
		if (e.cid == cid) {
			if (dw0 != NULL) {
				*dw0 = e.dw0;
			}
			return e.status >> 1;
		}
	}
	return -1; /* no completion */
}

static int
admin(uint8_t opc, uint32_t nsid, uint32_t cdw10, uint32_t cdw11, uint64_t prp1, uint32_t *dw0)
{
	struct vh_nvme_sqe c;

	memset(&c, 0, sizeof(c));
	c.opc = opc;
	c.nsid = nsid;
	c.cdw10 = cdw10;
	c.cdw11 = cdw11;
	c.prp1 = prp1;
	return cmd(0, &c, dw0);
}

static void
enable(void)
{
	q_init(0, 32);
	wreg(0x24, (31u << 16) | 31);
	wreg(0x28, (uint32_t)Q[0].sq_iova);
	wreg(0x2c, 0);
	wreg(0x30, (uint32_t)Q[0].cq_iova);
	wreg(0x34, 0);
	wreg(0x14, (6u << 16) | (4u << 20) | 1);
	assert_int_equal(rreg(0x1c) & 3, 1);
}

static void
create_io(uint16_t qid, uint16_t size, uint16_t iv)
{
	q_init(qid, size);
	assert_int_equal(admin(0x05, 0, ((uint32_t)(size - 1) << 16) | qid,
	                       ((uint32_t)iv << 16) | 3, Q[qid].cq_iova, NULL),
	                 0);
	assert_int_equal(admin(0x01, 0, ((uint32_t)(size - 1) << 16) | qid,
	                       ((uint32_t)qid << 16) | 1, Q[qid].sq_iova, NULL),
	                 0);
}

static void
add_ns(uint32_t nsid, struct vh_bdev *b)
{
	struct vfu_ns *ns = calloc(1, sizeof(*ns));

	ns->nsid = nsid;
	ns->bdev = b;
	ns->block_size = vh_bdev_block_size(b);
	ns->lbads = (uint8_t)__builtin_ctz(ns->block_size);
	ns->nblocks = vh_bdev_num_blocks(b);
	N->ns[nsid] = ns;
}

/* ---- fixture ---- */

static int
setup(void **state)
{
	struct vfio_user_dma_map m = {.argsz = 32, .flags = 3, .addr = MEM_IOVA, .size = MEM_SIZE};
	struct vfio_user_irq_set irq = {.argsz = 20,
	                                .flags = VFIO_IRQ_SET_DATA_EVENTFD |
	                                         VFIO_IRQ_SET_ACTION_TRIGGER,
	                                .index = VFIO_PCI_MSIX_IRQ_INDEX,
	                                .count = NVEC};
	uint16_t ver[2] = {0, 0};

	stub_reset();
	memset(Q, 0, sizeof(Q));
	g_shadow = false;
	g_alloc = PAGE;
	g_memfd = memfd_create("guest", MFD_CLOEXEC);
	assert_int_equal(ftruncate(g_memfd, MEM_SIZE), 0);
	g_mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g_memfd, 0);
	g_dbfd = memfd_create("db", MFD_CLOEXEC);
	assert_int_equal(ftruncate(g_dbfd, VFU_NVME_BAR0_SIZE), 0);
	g_dbmap = mmap(NULL, VFU_NVME_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g_dbfd, 0);

	N = calloc(1, sizeof(*N));
	snprintf(N->name, sizeof(N->name), "t");
	snprintf(N->prefix, sizeof(N->prefix), "[t]");
	N->num_ioq = NVEC - 1;
	N->nvec = NVEC;
	N->cntlid = 1;
	N->db_fd = g_dbfd;
	N->db_page = g_dbmap + VFU_NVME_DB_OFFSET;
	N->err_fd = N->req_fd = -1;
	for (unsigned i = 0; i < VFU_NVME_MAX_VECTORS; i++) {
		N->msix_fd[i] = -1;
	}
	N->closing_fds = calloc(VFU_NVME_MAX_VECTORS + 2, sizeof(int));
	for (unsigned i = 0; i < 2; i++) {
		struct vfu_rctx *x = calloc(1, sizeof(*x));

		x->n = N;
		x->r = (struct vh_reactor *)(uintptr_t)(i + 1);
		x->idx = i;
		x->timerfd = -1;
		N->rctx[N->nrctx++] = x;
	}
	vfu_nvme_pci_init(N);
	vfu_nvme_ctrlr_init(N);
	vfu_nvme_op(N, UINT32_MAX, vfu_rctx_start, NULL);
	stub_pump(10);

	assert_int_equal(vfu_session_init(&S, -1, &vfu_nvme_dev_ops, N, capture, 1ull << 30, "t"),
	                 0);
	N->session = &S;
	assert_int_equal(msg(VFIO_USER_VERSION, ver, 4, NULL, 0), 0);
	assert_int_equal(msg(VFIO_USER_DMA_MAP, &m, sizeof(m), &g_memfd, 1), 0);
	g_memfd = -1; /* the session took it */
	for (unsigned i = 0; i < NVEC; i++) {
		g_efd[i] = eventfd(0, EFD_CLOEXEC);
	}
	{
		int dup_fds[NVEC];

		for (unsigned i = 0; i < NVEC; i++) {
			dup_fds[i] = dup(g_efd[i]);
		}
		assert_int_equal(msg(VFIO_USER_DEVICE_SET_IRQS, &irq, 20, dup_fds, NVEC), 0);
	}
	B1 = stub_bdev_new("b1", 2048, 512,
	                   (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	                           (1u << VH_BDEV_IO_FLUSH) | (1u << VH_BDEV_IO_DISCARD) |
	                           (1u << VH_BDEV_IO_WRITE_ZEROES),
	                   true);
	B2 = stub_bdev_new("b2", 256, 4096,
	                   (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	                           (1u << VH_BDEV_IO_FLUSH),
	                   true);
	add_ns(1, B1);
	add_ns(2, B2);
	enable();
	return 0;
}

static int
teardown(void **state)
{
	vfu_session_close(&S, "test over");
	stub_hold(false);
	stub_pump(1000);
	assert_null(N->session);
	vfu_session_fini(&S);
	assert_int_equal(stub_channels(), 0);
	vfu_nvme_op(N, UINT32_MAX, vfu_rctx_stop, NULL);
	stub_pump(10);
	for (unsigned i = 1; i <= VFU_NVME_MAX_NS; i++) {
		free(N->ns[i]);
	}
	for (unsigned i = 0; i < N->nrctx; i++) {
		free(N->rctx[i]);
	}
	free(N->closing_fds);
	free(N);
	stub_bdev_free(B1);
	stub_bdev_free(B2);
	for (unsigned i = 0; i < NVEC; i++) {
		close(g_efd[i]);
	}
	munmap(g_mem, MEM_SIZE);
	munmap(g_dbmap, VFU_NVME_BAR0_SIZE);
	close(g_dbfd);
	return 0;
}

static void
grant_queues(uint16_t n)
{
	uint32_t dw0 = 0;

	assert_int_equal(admin(0x09, 0, 0x07, ((uint32_t)(n - 1) << 16) | (n - 1u), 0, &dw0), 0);
	assert_int_equal(dw0 & 0xffff, n - 1u);
}

/* ---- tests ---- */

static void
test_identify(void **state)
{
	uint8_t *d;
	uint64_t buf = alloc(PAGE, (void **)&d);
	uint32_t list[3];

	assert_int_equal(admin(0x06, 0, 1, 0, buf, NULL), 0);
	assert_memory_equal(d + 24, "vhostd vfio-user NVMe", 21);
	assert_int_equal(d[77], VFU_NVME_MDTS);
	assert_int_equal(d[111], 1); /* I/O controller */
	assert_int_equal(admin(0x06, 1, 0, 0, buf, NULL), 0);
	assert_int_equal(d[130], 9);
	assert_int_equal(admin(0x06, 2, 0, 0, buf, NULL), 0);
	assert_int_equal(d[130], 12);
	assert_int_equal(admin(0x06, 0, 2, 0, buf, NULL), 0);
	memcpy(list, d, sizeof(list));
	assert_int_equal(list[0], 1);
	assert_int_equal(list[1], 2);
	assert_int_equal(list[2], 0);
	assert_int_equal(admin(0x06, 1, 2, 0, buf, NULL), 0); /* list after NSID 1 */
	memcpy(list, d, sizeof(list));
	assert_int_equal(list[0], 2);
	assert_int_equal(admin(0x06, 3, 3, 0, buf, NULL), 0x400b); /* descriptors, inactive */
	assert_int_equal(admin(0x06, 0xffffffff, 0, 0, buf, NULL), 0x400b);
	assert_int_equal(admin(0x06, 0, 6, 1u << 24, buf, NULL), 0x4002); /* CSI 1 */
	assert_int_equal(admin(0x06, 0, 6, 0, buf, NULL), 0);
	for (unsigned cns = 0x07; cns < 0x20; cns++) {
		assert_int_equal(admin(0x06, 0, cns, 0, buf, NULL), 0x4002);
	}
	/* The data buffer outside guest memory. */
	assert_int_equal(admin(0x06, 0, 1, 0, 0x7000000000ull, NULL), 0x4004);
}

static void
test_admin_errors(void **state)
{
	void *p;
	uint64_t buf = alloc(PAGE, &p);
	uint32_t dw0 = 0;
	struct vh_nvme_sqe c;

	assert_int_equal(admin(0x7e, 0, 0, 0, 0, NULL), 0x4001);
	memset(&c, 0, sizeof(c));
	c.opc = 0x06;
	c.cdw10 = 1;
	c.prp1 = buf;
	c.fuse_psdt = 1; /* fused */
	assert_int_equal(cmd(0, &c, NULL), 0x4002);
	c.fuse_psdt = 1u << 6; /* SGL for an admin command */
	assert_int_equal(cmd(0, &c, NULL), 0x4002);
	/* Before Number of Queues every queue we offer may be created, not more. */
	assert_int_equal(admin(0x05, 0, (15u << 16) | 5, 1, buf, NULL), 0x4101);
	grant_queues(2);
	assert_int_equal(admin(0x05, 0, (15u << 16) | 3, 1, buf, NULL), 0x4101);   /* qid 3 */
	assert_int_equal(admin(0x05, 0, (15u << 16) | 0, 1, buf, NULL), 0x4101);   /* qid 0 */
	assert_int_equal(admin(0x05, 0, (0u << 16) | 1, 1, buf, NULL), 0x4102);    /* size 1 */
	assert_int_equal(admin(0x05, 0, (1024u << 16) | 1, 1, buf, NULL), 0x4102); /* > MQES */
	assert_int_equal(admin(0x05, 0, (15u << 16) | 1, 0, buf, NULL), 0x4002);   /* not PC */
	assert_int_equal(admin(0x05, 0, (15u << 16) | 1, (9u << 16) | 3, buf, NULL), 0x4108);
	assert_int_equal(admin(0x05, 0, (15u << 16) | 1, 1, buf + 8, NULL), 0x4013);
	assert_int_equal(admin(0x01, 0, (15u << 16) | 1, (1u << 16) | 1, buf, NULL), 0x4100);
	assert_int_equal(admin(0x00, 0, 1, 0, 0, NULL), 0x4101);
	assert_int_equal(admin(0x04, 0, 1, 0, 0, NULL), 0x4101);
	create_io(1, 16, 1);
	assert_int_equal(admin(0x04, 0, 1, 0, 0, NULL), 0x410c);    /* CQ with an SQ on it */
	assert_int_equal(admin(0x09, 0, 0x07, 0, 0, NULL), 0x400c); /* NQ after queue creation */
	/* Features: saveable, unknown, APST; get with SEL 3 and bad SEL. */
	assert_int_equal(admin(0x09, 0, 0x06 | (1u << 31), 0, 0, NULL), 0x410d);
	assert_int_equal(admin(0x09, 0, 0x0c, 0, 0, NULL), 0x4002);
	assert_int_equal(admin(0x09, 0, 0x02, 1, 0, NULL), 0x4002); /* power state 1 */
	assert_int_equal(admin(0x0a, 0, 0x08 | (3u << 8), 0, 0, &dw0), 0);
	assert_int_equal(dw0, 1u << 2);
	assert_int_equal(admin(0x0a, 0, 0x08 | (4u << 8), 0, 0, NULL), 0x4002);
	assert_int_equal(admin(0x0a, 0, 0x07, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0x00010001);
	/* Log pages: unknown, offset past the end, unaligned offset, beyond MDTS. */
	assert_int_equal(admin(0x02, 0, 0x80 | (127u << 16), 0, buf, NULL), 0x4109);
	{
		struct vh_nvme_sqe l;

		memset(&l, 0, sizeof(l));
		l.opc = 0x02;
		l.prp1 = buf;
		l.cdw10 = 0x02 | (127u << 16);
		l.cdw12 = 512;
		assert_int_equal(cmd(0, &l, NULL), 0x4002);
		l.cdw12 = 2;
		assert_int_equal(cmd(0, &l, NULL), 0x4002);
		l.cdw12 = 0;
		l.cdw11 = 0x10; /* NUMDU: 4 MiB */
		assert_int_equal(cmd(0, &l, NULL), 0x4002);
	}
	/* Asynchronous Event Request limit: the fifth is refused at once. */
	for (unsigned i = 0; i < VFU_NVME_AERL; i++) {
		memset(&c, 0, sizeof(c));
		c.opc = 0x0c;
		assert_int_equal(cmd(0, &c, NULL), -1); /* outstanding: no completion */
	}
	assert_int_equal(admin(0x0c, 0, 0, 0, 0, NULL), 0x4105);
}

/* Write @nlb blocks of @ns from a pattern, read them back; returns the read status. */
static int
rw_check(uint16_t qid, uint32_t nsid, uint64_t slba, uint32_t nlb, uint32_t bs, uint32_t extra,
         int psdt)
{
	uint8_t *w, *r;
	uint64_t len = (uint64_t)nlb * bs, wi = alloc(len + PAGE, (void **)&w),
	         ri = alloc(len + PAGE, (void **)&r);
	struct vh_nvme_sqe c;
	uint64_t *list;
	int st;

	for (uint64_t i = 0; i < len; i++) {
		w[512 + i] = (uint8_t)(i * 13 + slba + extra);
	}
	for (int op = 0; op < 2; op++) {
		uint64_t base = (op == 0 ? wi : ri) + 512, first = PAGE - 512;

		memset(&c, 0, sizeof(c));
		c.opc = op == 0 ? 0x01 : 0x02;
		c.nsid = nsid;
		c.cdw10 = (uint32_t)slba;
		c.cdw12 = (nlb - 1) | extra;
		if (psdt == 0) {
			c.prp1 = base;
			if (len > first + PAGE) {
				c.prp2 = alloc(PAGE, (void **)&list);
				for (uint64_t k = 0; first + k * PAGE < len; k++) {
					list[k] = base + first + k * PAGE;
				}
			} else if (len > first) {
				c.prp2 = base + first;
			}
		} else {
			struct nvme_sgl_desc d = {.addr = base, .len = (uint32_t)len, .type = 0};

			memcpy(&c.prp1, &d, sizeof(d));
			c.fuse_psdt = 1u << 6;
		}
		st = cmd(qid, &c, NULL);
		if (st != 0) {
			return st;
		}
	}
	assert_memory_equal(r + 512, w + 512, len);
	return 0;
}

static void
test_io(void **state)
{
	grant_queues(2);
	create_io(1, 32, 1);
	create_io(2, 32, 2);
	/* Queue 1 on the first reactor context, queue 2 on the second. */
	assert_ptr_equal(N->sqs[1]->rctx, N->rctx[0]);
	assert_ptr_equal(N->sqs[2]->rctx, N->rctx[1]);
	assert_int_equal(rw_check(1, 1, 0, 1, 512, 0, 0), 0);
	assert_int_equal(rw_check(2, 1, 100, 64, 512, 0, 0), 0); /* PRP list */
	assert_int_equal(rw_check(1, 2, 10, 16, 4096, 0, 0), 0);
	assert_int_equal(rw_check(2, 2, 30, 3, 4096, 0, 1), 0); /* SGL */
	assert_memory_not_equal(stub_bdev_data(B2) + 30 * 4096, g_mem, 16);
	/* Interrupts on each queue's vector. */
	assert_true(stub_signals(N->msix_fd[1]) > 0);
	assert_true(stub_signals(N->msix_fd[2]) > 0);
	/* Errors: LBA range (incl. 64-bit wrap), namespace, opcode, MDTS. */
	assert_int_equal(rw_check(1, 1, 2047, 2, 512, 0, 0), 0x4080);
	{
		struct vh_nvme_sqe c;
		void *p;

		memset(&c, 0, sizeof(c));
		c.opc = 0x02;
		c.nsid = 1;
		c.cdw10 = 0xffffffff;
		c.cdw11 = 0xffffffff;
		c.prp1 = alloc(PAGE, &p);
		assert_int_equal(cmd(1, &c, NULL), 0x4080);
		c.cdw10 = c.cdw11 = 0;
		c.nsid = 3;
		assert_int_equal(cmd(1, &c, NULL), 0x400b);
		c.nsid = 1;
		c.opc = 0x05; /* Compare */
		assert_int_equal(cmd(1, &c, NULL), 0x4001);
		c.opc = 0x02;
		c.cdw12 = 511; /* 256 KiB > MDTS */
		assert_int_equal(cmd(1, &c, NULL), 0x4002);
	}
	/* FUA on a write-cached bdev: a flush follows the write. */
	assert_int_equal(stub_count(VH_BDEV_IO_FLUSH), 0);
	assert_int_equal(rw_check(1, 1, 5, 1, 512, 1u << 30, 0), 0);
	assert_int_equal(stub_count(VH_BDEV_IO_FLUSH), 1);
	/* Volatile write cache disabled by the host: every write is followed by a flush. */
	assert_int_equal(admin(0x09, 0, 0x06, 0, 0, NULL), 0);
	assert_int_equal(rw_check(1, 1, 6, 1, 512, 0, 0), 0);
	assert_int_equal(stub_count(VH_BDEV_IO_FLUSH), 2);
	/* Flush command. */
	{
		struct vh_nvme_sqe c;

		memset(&c, 0, sizeof(c));
		c.opc = 0x00;
		c.nsid = 1;
		assert_int_equal(cmd(1, &c, NULL), 0);
		assert_int_equal(stub_count(VH_BDEV_IO_FLUSH), 3);
	}
}

static void
test_zeroes_dsm(void **state)
{
	struct vh_nvme_sqe c;
	struct vh_nvme_dsm_range *r;
	uint64_t off, len, ri;

	grant_queues(1);
	create_io(1, 16, 1);
	/* Write Zeroes on a bdev without the operation: emulated with writes of zeros. */
	memset(stub_bdev_data(B2), 0xab, 256 * 4096);
	memset(&c, 0, sizeof(c));
	c.opc = 0x08;
	c.nsid = 2;
	c.cdw10 = 10;
	c.cdw12 = 99; /* 100 blocks: 400 KiB, four chunks */
	assert_int_equal(cmd(1, &c, NULL), 0);
	assert_true(stub_bdev_data(B2)[10 * 4096] == 0 && stub_bdev_data(B2)[110 * 4096 - 1] == 0);
	assert_int_equal(stub_bdev_data(B2)[110 * 4096], 0xab);
	assert_int_equal(stub_bdev_data(B2)[10 * 4096 - 1], 0xab);
	assert_int_equal(stub_count(VH_BDEV_IO_WRITE), 4);
	/* Natively on b1, with DEAC. */
	c.nsid = 1;
	c.cdw12 = 7 | (1u << 25);
	assert_int_equal(cmd(1, &c, NULL), 0);
	assert_int_equal(stub_count(VH_BDEV_IO_WRITE_ZEROES), 1);
	/* DSM deallocate: the ranges are read once, when the command is fetched. */
	ri = alloc(PAGE, (void **)&r);
	r[0].slba = 100;
	r[0].nlb = 8;
	r[1].slba = 200;
	r[1].nlb = 0; /* skipped */
	r[2].slba = 300;
	r[2].nlb = 16;
	memset(&c, 0, sizeof(c));
	c.opc = 0x09;
	c.nsid = 1;
	c.cdw10 = 2;       /* three ranges */
	c.cdw11 = 1u << 2; /* AD */
	c.prp1 = ri;
	stub_hold(true);
	queue_cmd(1, &c);
	ring(1);
	stub_pump(100);
	r[2].slba = 1000; /* rewritten after the fetch: must not matter */
	stub_release();
	stub_hold(false);
	stub_pump(100);
	assert_int_equal(stub_count(VH_BDEV_IO_DISCARD), 2);
	stub_last_discard(&off, &len);
	assert_int_equal(off, 300 * 512);
	assert_int_equal(len, 16 * 512);
	/* A range out of the namespace; a bdev without discard (advisory: success). */
	r[0].slba = 2040;
	r[0].nlb = 9;
	c.cdw10 = 0;
	assert_int_equal(cmd(1, &c, NULL), 0x4080);
	r[0].slba = 0;
	r[0].nlb = 9;
	c.nsid = 2;
	assert_int_equal(cmd(1, &c, NULL), 0);
	/* Without AD: nothing to do. */
	c.cdw11 = 0;
	assert_int_equal(cmd(1, &c, NULL), 0);
}

static void
test_cq_flow_control(void **state)
{
	struct vh_nvme_sqe c;
	struct vh_nvme_cqe e;
	void *p;
	uint64_t buf = alloc(PAGE, &p);
	unsigned got = 0;

	grant_queues(1);
	/* CQ of 4 entries (3 usable), SQ of 16. */
	q_init(1, 16);
	Q[1].cq_size = 4;
	assert_int_equal(admin(0x05, 0, (3u << 16) | 1, (1u << 16) | 3, Q[1].cq_iova, NULL), 0);
	assert_int_equal(admin(0x01, 0, (15u << 16) | 1, (1u << 16) | 1, Q[1].sq_iova, NULL), 0);
	stub_hold(true);
	for (unsigned i = 0; i < 8; i++) {
		memset(&c, 0, sizeof(c));
		c.opc = 0x02;
		c.nsid = 1;
		c.prp1 = buf;
		queue_cmd(1, &c);
	}
	ring(1);
	stub_pump(100);
	/* Only as many fetched as the CQ can take. */
	assert_int_equal(stub_pending(), 3);
	stub_release();
	stub_pump(100);
	/* The CQ is full and the host consumed nothing: no overwrite, nothing more fetched. */
	assert_int_equal(stub_pending(), 0);
	assert_int_equal(N->sqs[1]->inflight, 0);
	assert_int_equal(N->sqs[1]->head, 3);
	stub_hold(false);
	while (got < 8) {
		int n = 0;

		while (reap(1, &e) == 0) {
			assert_int_equal(e.status >> 1, 0);
			n++;
		}
		assert_true(n > 0);
		got += (unsigned)n;
		stub_pump(100);
	}
	assert_int_equal(got, 8);
}

static void
test_retry_and_errors(void **state)
{
	struct vh_nvme_sqe c;
	void *p;

	grant_queues(1);
	create_io(1, 16, 1);
	memset(&c, 0, sizeof(c));
	c.opc = 0x02;
	c.nsid = 1;
	c.prp1 = alloc(PAGE, &p);
	/* -EAGAIN from the back-end twice: retried on later polls, then fine. */
	stub_fail_submit(-EAGAIN, 2);
	assert_int_equal(cmd(1, &c, NULL), 0);
	/* -EIO on a read: Unrecovered Read Error (media, retryable); on a write: Write Fault. */
	stub_fail_complete(-EIO, 1);
	assert_int_equal(cmd(1, &c, NULL), 0x281);
	c.opc = 0x01;
	stub_fail_complete(-EIO, 1);
	assert_int_equal(cmd(1, &c, NULL), 0x280);
	/* A hard submit failure. */
	stub_fail_submit(-ENOTSUP, 1);
	assert_int_equal(cmd(1, &c, NULL), 0x4006);
}

static void
test_reset_with_io(void **state)
{
	struct vh_nvme_sqe c;
	void *p;
	uint64_t buf = alloc(PAGE, &p);

	grant_queues(2);
	create_io(1, 16, 1);
	create_io(2, 16, 2);
	stub_hold(true);
	for (uint16_t q = 1; q <= 2; q++) {
		for (unsigned i = 0; i < 5; i++) {
			memset(&c, 0, sizeof(c));
			c.opc = 0x01;
			c.nsid = 1;
			c.prp1 = buf;
			queue_cmd(q, &c);
		}
		ring(q);
	}
	stub_pump(100);
	assert_int_equal(stub_pending(), 10);
	/* CC.EN = 0: RDY stays until the commands in flight completed; input is held. */
	wreg(0x14, 0);
	assert_int_equal(rreg(0x1c) & 1, 1);
	assert_true(S.holds > 0);
	stub_release();
	stub_hold(false);
	stub_pump(1000);
	assert_int_equal(rreg(0x1c), 0);
	assert_int_equal(S.holds, 0);
	assert_null(N->sqs[1]);
	assert_int_equal(N->nqueues, 0);
	assert_int_equal(stub_channels(), 0);
	/* Doorbells are back to 0, and the controller comes back. */
	assert_int_equal(*db(1, false), 0);
	enable();
	grant_queues(1);
	create_io(1, 16, 1);
	assert_int_equal(rw_check(1, 1, 0, 4, 512, 0, 0), 0);
	/* Shutdown: SHST complete, RDY still set until EN is cleared. */
	wreg(0x14, (6u << 16) | (4u << 20) | 1 | (1u << 14));
	assert_int_equal(rreg(0x1c) & 0xd, 0x9);
	wreg(0x14, 0);
	assert_int_equal(rreg(0x1c), 0);
}

static void
test_bad_doorbells(void **state)
{
	grant_queues(1);
	create_io(1, 16, 1);
	/* SQ tail at or beyond the size: controller fatal; the host's reset clears it. */
	*db(1, false) = 16;
	stub_pump(100);
	assert_int_equal(rreg(0x1c) & 2, 2);
	wreg(0x14, 0);
	assert_int_equal(rreg(0x1c), 0);
	enable();
	grant_queues(1);
	create_io(1, 16, 1);
	*db(1, true) = 40; /* CQ head */
	stub_pump(100);
	assert_int_equal(rreg(0x1c) & 2, 2);
	wreg(0x14, 0);
	enable();
	*db(0, false) = 99; /* admin SQ tail */
	stub_pump(100);
	assert_int_equal(rreg(0x1c) & 2, 2);
	wreg(0x14, 0);
	/* Enabling with a bad admin configuration: fatal at once. */
	wreg(0x24, 0);
	wreg(0x14, 1);
	assert_int_equal(rreg(0x1c) & 3, 2);
	wreg(0x14, 0);
	wreg(0x14, 1 | (1u << 7)); /* 8 KiB pages */
	assert_int_equal(rreg(0x1c) & 2, 2);
	wreg(0x14, 0);
	enable();
}

static void
test_aer(void **state)
{
	struct vh_nvme_sqe c;
	struct vh_nvme_cqe e;
	uint32_t *log;
	uint64_t li = alloc(PAGE, (void **)&log);
	uint16_t cid;

	assert_int_equal(admin(0x09, 0, 0x0b, 1u << 8, 0, NULL), 0);
	memset(&c, 0, sizeof(c));
	c.opc = 0x0c;
	cid = queue_cmd(0, &c);
	ring(0);
	stub_pump(100);
	assert_int_equal(reap(0, &e), -1);
	add_ns(5, B2); /* what vh_vfu_add_ns does, then: */
	vfu_nvme_ns_changed(N, 5);
	stub_pump(100);
	assert_int_equal(reap(0, &e), 0);
	assert_int_equal(e.cid, cid);
	assert_int_equal(e.dw0, 0x2 | (0x04u << 16));
	assert_true(stub_signals(N->msix_fd[0]) > 0);
	/* A second change is masked until the log page is read. */
	queue_cmd(0, &c);
	ring(0);
	stub_pump(100);
	vfu_nvme_ns_changed(N, 6);
	stub_pump(100);
	assert_int_equal(reap(0, &e), -1);
	assert_int_equal(admin(0x02, 0, 0x04 | (1023u << 16), 0, li, NULL), 0);
	assert_int_equal(log[0], 5);
	assert_int_equal(log[1], 6);
	/* The log told the host about both: nothing fires for them, but the next change does. */
	assert_int_equal(reap(0, &e), -1);
	vfu_nvme_ns_changed(N, 7);
	stub_pump(100);
	assert_int_equal(reap(0, &e), 0);
	assert_int_equal(e.dw0 & 0x7, 2);
}

static void
test_shadow_doorbells(void **state)
{
	void *sh, *ei;
	uint64_t shi = alloc(PAGE, &sh), eii = alloc(PAGE, &ei);

	assert_int_equal(admin(0x7c, 0, 0, 0, shi, NULL) == 0x4002, 1); /* PRP2 missing */
	{
		struct vh_nvme_sqe c;

		memset(&c, 0, sizeof(c));
		c.opc = 0x7c;
		c.prp1 = shi;
		c.prp2 = eii + 8; /* not page aligned */
		assert_int_equal(cmd(0, &c, NULL), 0x4002);
		c.prp2 = eii;
		assert_int_equal(cmd(0, &c, NULL), 0);
	}
	g_shadow = true;
	g_shadow_db = sh;
	grant_queues(1);
	create_io(1, 16, 1);
	/* I/O doorbells only in the shadow buffer: the MMIO doorbell stays 0. */
	assert_int_equal(rw_check(1, 1, 40, 8, 512, 0, 0), 0);
	assert_int_equal(*(volatile uint32_t *)(g_dbmap + VFU_NVME_DB_OFFSET + 8), 0);
	g_shadow = false;
}

static void
test_irq_barrier(void **state)
{
	struct vfio_user_irq_set irq = {.argsz = 20,
	                                .flags = VFIO_IRQ_SET_DATA_EVENTFD |
	                                         VFIO_IRQ_SET_ACTION_TRIGGER,
	                                .index = VFIO_PCI_MSIX_IRQ_INDEX,
	                                .start = 1,
	                                .count = 1};
	int old = N->msix_fd[1], nfd = eventfd(0, EFD_CLOEXEC), keep = dup(nfd);

	/* Replacing vector 1's eventfd: the old one is closed only after every reactor passed
	 * the barrier, and the reply comes after that. */
	struct vfio_user_header h = {.cmd = VFIO_USER_DEVICE_SET_IRQS, .msg_size = 16 + 20};

	memcpy(S.buf, &h, 16);
	memcpy(S.buf + 16, &irq, 20);
	S.got = h.msg_size;
	S.fds[0] = nfd;
	S.nfds = 1;
	g_last_err = -1;
	assert_int_equal(vfu_msg_dispatch(&S), 0);
	assert_int_equal(g_last_err, -1); /* no reply yet */
	assert_int_equal(N->msix_fd[1], nfd);
	assert_true(fcntl(old, F_GETFD) >= 0);
	stub_pump(100);
	assert_int_equal(g_last_err, 0);
	assert_false(fcntl(old, F_GETFD) >= 0);
	/* De-assign without fds; "disable all" with DATA_NONE and count 0. */
	assert_int_equal(msg(VFIO_USER_DEVICE_SET_IRQS, &irq, 20, NULL, 0), 0);
	assert_int_equal(N->msix_fd[1], -1);
	irq.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	irq.start = irq.count = 0;
	assert_int_equal(msg(VFIO_USER_DEVICE_SET_IRQS, &irq, 20, NULL, 0), 0);
	for (unsigned i = 0; i < NVEC; i++) {
		assert_int_equal(N->msix_fd[i], -1);
	}
	close(keep);
	/* Without vectors the queues still work (the host would poll). */
	grant_queues(1);
	create_io(1, 16, 1);
	assert_int_equal(rw_check(1, 1, 0, 1, 512, 0, 0), 0);
}

static void
test_config_space(void **state)
{
	uint8_t cfg[0x100];
	uint32_t v = 0xffffffff;
	struct vfio_user_region_access a = {
	        .offset = 0x10, .region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 4};
	uint8_t m[20];

	memcpy(m, &a, 16);
	memcpy(m + 16, &v, 4);

	memcpy(cfg, N->cfg, sizeof(cfg));
	assert_int_equal(cfg[0x34], 0x40);
	assert_int_equal(cfg[0x40], 0x01);
	assert_int_equal(cfg[0x41], 0x50);
	assert_int_equal(cfg[0x50], 0x11);
	assert_int_equal(cfg[0x51], 0x60);
	assert_int_equal(cfg[0x60], 0x10);
	/* BAR sizing: all ones written, the size mask reads back; type bits stay. */
	assert_int_equal(msg(VFIO_USER_REGION_WRITE, m, sizeof(m), NULL, 0), 0);
	memcpy(&v, &N->cfg[0x10], 4);
	assert_int_equal(v, ~(VFU_NVME_BAR0_SIZE - 1) | 0x4);
	/* Read-only bytes stay. */
	a.offset = 0;
	memcpy(m, &a, 16);
	assert_int_equal(msg(VFIO_USER_REGION_WRITE, m, sizeof(m), NULL, 0), 0);
	assert_int_equal(N->cfg[0], 0x58);
	/* BAR0 register accesses other than aligned 4/8 bytes are refused. */
	assert_int_equal(vfu_nvme_bar0_access(N, 0x15, &v, 4, true), -EINVAL);
	assert_int_equal(vfu_nvme_bar0_access(N, 0x14, &v, 2, true), -EINVAL);
	/* CAP reads as one 8-byte value. */
	{
		uint64_t cap;

		assert_int_equal(vfu_nvme_bar0_access(N, 0, &cap, 8, false), 0);
		assert_int_equal(cap & 0xffff, VFU_NVME_MQES);
		assert_int_equal((cap >> 37) & 1, 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_identify, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_admin_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_io, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_zeroes_dsm, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cq_flow_control, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_retry_and_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reset_with_io, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_doorbells, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_aer, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_shadow_doorbells, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_irq_barrier, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
