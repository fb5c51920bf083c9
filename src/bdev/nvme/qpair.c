/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe queue pair: submission, PRP construction, completion polling, retries, timeouts.
 *
 * Trust: the device is semi-trusted. Every CQE is checked (SQ id, CID range, CID in flight)
 * before it touches a request; a bad one is counted, logged rate-limited and dropped. The device
 * cannot make us complete a request twice or complete one that is not in flight.
 *
 * Request slots: the qpair has depth - 1 slots, one per command ID (CID == slot index). An SQ of
 * N entries holds at most N - 1 commands (§4.1: full when head == tail + 1), and since every
 * command the device has not fetched is one we have not seen completed, never having more than
 * N - 1 commands in flight means the SQ cannot overflow and the CQ (also N entries) cannot
 * either. So we need no SQ head tracking to decide whether an entry is free.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/nvme/ctrlr.h"
#include "bdev/nvme/qpair.h"
#include "core/log.h"

#define COMP "nvme"

#define PAGE             VH_NVME_PAGE_SIZE
#define PAGE_OFF(x)      ((uintptr_t)(x) & (PAGE - 1))
#define PRP_LIST_ENTRIES (PAGE / 8)
#define CHUNK_PAGES      512u /* DMA allocation unit: 2 MiB, one huge page in UIO mode */
#define TIMEOUT_SCAN_NS  1000000ull

enum req_state {
	REQ_FREE = 0,
	REQ_ACTIVE, /* in the SQ (maybe not yet rung) or in the device */
	REQ_QUEUED, /* waiting in software for the qpair to resume */
};

struct req {
	vh_nvme_cmd_cb cb;
	void *cb_arg;
	struct vh_nvme_sqe sqe; /* kept for retries; sqe.cid == slot index */
	uint64_t deadline;
	const struct iovec *iov; /* bounce: where a read's data goes on completion */
	int iovcnt;
	size_t skip;
	size_t len;
	uint64_t *prp_list;
	uint64_t prp_list_iova;
	uint16_t *bounce; /* bounce page indices; nbounce used */
	uint16_t nbounce;
	uint8_t state;
	uint8_t retries;
	bool bounce_in; /* copy bounce pages to iov on success (a read) */
	bool timed_out;
	struct req *next; /* free list or queued list */
};

struct vh_nvme_qpair {
	struct vh_nvme_ctrlr *ctrlr;
	struct vh_nvme_dev *dev;
	struct vh_nvme_qpair_opts opts;
	struct vh_nvme_sqe *sq;
	struct vh_nvme_cqe *cq;
	struct vh_nvme_dma sq_mem;
	struct vh_nvme_dma cq_mem;
	uint32_t sq_db;
	uint32_t cq_db;
	uint16_t sq_tail;
	uint16_t cq_head;
	uint8_t phase;
	bool sq_dirty;
	bool halted;
	bool dead;
	bool fatal_seen;
	struct req *reqs;
	uint16_t nreqs;
	uint16_t nfree;
	struct req *free_list;
	struct req *queued_head;
	struct req *queued_tail;
	/* bounce pool: page i is at bounce_va[i] / bounce_iova[i] */
	uint32_t nbounce;
	uint32_t bounce_nfree;
	void **bounce_va;
	uint64_t *bounce_iova;
	uint16_t *bounce_free;
	uint16_t *bounce_idx; /* per request: max_pages entries */
	unsigned max_pages;
	struct vh_nvme_dma *chunks; /* PRP list and bounce pages */
	unsigned nchunks;
	vh_nvme_translate_fn translate;
	void *translate_ctx;
	uint64_t next_scan;
	uint64_t next_health;
	struct vh_nvme_qpair_stats stats;
};

static const char *
qname(const struct vh_nvme_qpair *qp)
{
	return qp->dev->bdf[0] ? qp->dev->bdf : "mock";
}

static uint64_t
now(const struct vh_nvme_qpair *qp)
{
	return qp->ctrlr->opts.now_ns ? qp->ctrlr->opts.now_ns() : vh_now_ns();
}

/* ---- status mapping ------------------------------------------------------------------------- */

static int
generic_status_to_errno(unsigned sc)
{
	switch (sc) {
	case VH_NVME_SC_SUCCESS:
		return 0;
	case VH_NVME_SC_INVALID_OPCODE:
		return -EOPNOTSUPP;
	case VH_NVME_SC_INVALID_FIELD:
	case VH_NVME_SC_INVALID_PRP_OFFSET:
	case VH_NVME_SC_INVALID_NS:
		return -EINVAL;
	case VH_NVME_SC_ABORT_REQUESTED:
	case VH_NVME_SC_SQ_DELETION:
		return -ECANCELED;
	case VH_NVME_SC_LBA_OUT_OF_RANGE:
		return -ERANGE;
	case VH_NVME_SC_CAP_EXCEEDED:
		return -ENOSPC;
	case VH_NVME_SC_NS_NOT_READY:
		return -EBUSY;
	case VH_NVME_SC_RESERVATION_CONFLICT:
		return -EACCES;
	default:
		return -EIO;
	}
}

int
vh_nvme_status_to_errno(uint16_t status)
{
	unsigned sct = (status >> 8) & 0x7, sc = status & 0xff;

	if (sct == VH_NVME_SCT_GENERIC) {
		return generic_status_to_errno(sc);
	}
	if (sct == VH_NVME_SCT_MEDIA) {
		if (sc == VH_NVME_SC_COMPARE_FAILURE) {
			return -EILSEQ;
		}
		if (sc == VH_NVME_SC_ACCESS_DENIED) {
			return -EACCES;
		}
	}
	return -EIO;
}

/* ---- PRP construction (§4.3) ---------------------------------------------------------------- */

/* Translate one piece that lies inside a single page; it must be contiguous for the device. */
static int
translate_piece(vh_nvme_translate_fn tr, void *ctx, uintptr_t va, size_t n, uint64_t *iova)
{
	uint64_t first, next;
	int64_t got;

	got = tr(ctx, (const void *)va, n, &first);
	if (got <= 0) {
		return VH_NVME_PRP_BOUNCE;
	}
	/* A region boundary inside a page: fine only if the device sees it as contiguous. */
	while ((size_t)got < n) {
		int64_t more = tr(ctx, (const void *)(va + (size_t)got), n - (size_t)got, &next);

		if (more <= 0 || next != first + (uint64_t)got) {
			return VH_NVME_PRP_BOUNCE;
		}
		got += more;
	}
	*iova = first;
	return 0;
}

int
vh_nvme_prp_build(vh_nvme_translate_fn tr, void *tr_ctx, const struct iovec *iov, int iovcnt,
                  size_t skip, size_t len, struct vh_nvme_sqe *sqe, uint64_t *list,
                  uint64_t list_iova, unsigned list_max)
{
	size_t left = len, total = 0;
	unsigned n = 0;
	int i, ret;

	for (i = 0; i < iovcnt; i++) {
		if (VH_ADD_OVERFLOW(total, iov[i].iov_len, &total)) {
			return -EINVAL;
		}
	}
	if (total < skip || total - skip < len) {
		return -EINVAL;
	}
	for (i = 0; i < iovcnt && skip >= iov[i].iov_len; i++) {
		skip -= iov[i].iov_len;
	}
	for (; i < iovcnt && left > 0; i++, skip = 0) {
		uintptr_t va = (uintptr_t)iov[i].iov_base + skip;
		size_t seg = VH_MIN(iov[i].iov_len - skip, left);

		if (seg == 0) {
			continue;
		}
		/* Only the very first entry may start inside a page, and then dword aligned. */
		if ((va & 3) != 0 || (n > 0 && PAGE_OFF(va) != 0)) {
			return VH_NVME_PRP_BOUNCE;
		}
		/* Every segment but the last must end on a page boundary. */
		if (seg < left && PAGE_OFF(va + seg) != 0) {
			return VH_NVME_PRP_BOUNCE;
		}
		left -= seg;
		while (seg > 0) {
			size_t piece = VH_MIN(seg, PAGE - PAGE_OFF(va));
			uint64_t iova;

			ret = translate_piece(tr, tr_ctx, va, piece, &iova);
			if (ret != 0) {
				return ret;
			}
			if (n == 0) {
				sqe->prp1 = iova;
			} else if (n - 1 < list_max) {
				list[n - 1] = iova;
			} else {
				return -E2BIG;
			}
			n++;
			va += piece;
			seg -= piece;
		}
	}
	if (left > 0 || n == 0) {
		return -EINVAL;
	}
	/* §4.3: PRP2 is the second page itself when there are exactly two, else the list. */
	sqe->prp2 = n == 1 ? 0 : n == 2 ? list[0] : list_iova;
	return 0;
}

/* ---- bounce buffers ------------------------------------------------------------------------- */

static void
bounce_put(struct vh_nvme_qpair *qp, struct req *r)
{
	for (unsigned i = 0; i < r->nbounce; i++) {
		qp->bounce_free[qp->bounce_nfree++] = r->bounce[i];
	}
	r->nbounce = 0;
}

/* Copy between the request's bounce pages and its iovec. */
static void
bounce_copy(struct vh_nvme_qpair *qp, struct req *r, bool to_pages)
{
	size_t left = r->len, skip = r->skip, pos = 0;

	for (int i = 0; i < r->iovcnt && left > 0; i++) {
		size_t seg;
		uint8_t *p;

		if (skip >= r->iov[i].iov_len) {
			skip -= r->iov[i].iov_len;
			continue;
		}
		p = (uint8_t *)r->iov[i].iov_base + skip;
		seg = VH_MIN(r->iov[i].iov_len - skip, left);
		skip = 0;
		left -= seg;
		while (seg > 0) {
			uint8_t *page = qp->bounce_va[r->bounce[pos / PAGE]];
			size_t n = VH_MIN(seg, PAGE - pos % PAGE);

			if (to_pages) {
				memcpy(page + pos % PAGE, p, n);
			} else {
				memcpy(p, page + pos % PAGE, n);
			}
			p += n;
			pos += n;
			seg -= n;
		}
	}
}

/* Take bounce pages for @r and point its PRPs at them. -EAGAIN if the pool is short now. */
static int
bounce_setup(struct vh_nvme_qpair *qp, struct req *r, bool write)
{
	unsigned pages = (unsigned)((r->len + PAGE - 1) / PAGE);

	if (pages > qp->nbounce) {
		return -EINVAL;
	}
	if (pages > qp->bounce_nfree) {
		return -EAGAIN;
	}
	for (unsigned i = 0; i < pages; i++) {
		r->bounce[i] = qp->bounce_free[--qp->bounce_nfree];
		if (i > 0) {
			r->prp_list[i - 1] = qp->bounce_iova[r->bounce[i]];
		}
	}
	r->nbounce = (uint16_t)pages;
	r->sqe.prp1 = qp->bounce_iova[r->bounce[0]];
	r->sqe.prp2 = pages == 1 ? 0 : pages == 2 ? r->prp_list[0] : r->prp_list_iova;
	r->bounce_in = !write;
	if (write) {
		bounce_copy(qp, r, true);
	}
	qp->stats.bounced++;
	return 0;
}

/* ---- request slots -------------------------------------------------------------------------- */

static struct req *
req_get(struct vh_nvme_qpair *qp)
{
	struct req *r = qp->free_list;

	if (r == NULL) {
		return NULL;
	}
	qp->free_list = r->next;
	qp->nfree--;
	r->next = NULL;
	r->retries = 0;
	r->timed_out = false;
	r->bounce_in = false;
	r->nbounce = 0;
	r->iov = NULL;
	return r;
}

static void
req_put(struct vh_nvme_qpair *qp, struct req *r)
{
	r->state = REQ_FREE;
	r->next = qp->free_list;
	qp->free_list = r;
	qp->nfree++;
}

static void
sq_push(struct vh_nvme_qpair *qp, struct req *r)
{
	qp->sq[qp->sq_tail] = r->sqe;
	qp->sq_tail = (uint16_t)(qp->sq_tail + 1 == qp->opts.depth ? 0 : qp->sq_tail + 1);
	qp->sq_dirty = true;
	r->state = REQ_ACTIVE;
	r->deadline = qp->opts.timeout_ns ? now(qp) + qp->opts.timeout_ns : 0;
}

static void
queue_tail(struct vh_nvme_qpair *qp, struct req *r)
{
	r->state = REQ_QUEUED;
	r->next = NULL;
	if (qp->queued_tail != NULL) {
		qp->queued_tail->next = r;
	} else {
		qp->queued_head = r;
	}
	qp->queued_tail = r;
}

/* Put @r in the SQ now, or in the software queue while the controller is being reset. */
static void
issue(struct vh_nvme_qpair *qp, struct req *r)
{
	if (qp->halted) {
		queue_tail(qp, r);
	} else {
		sq_push(qp, r);
	}
}

static void
complete(struct vh_nvme_qpair *qp, struct req *r, int status, const struct vh_nvme_cqe *cqe)
{
	vh_nvme_cmd_cb cb = r->cb;
	void *arg = r->cb_arg;

	if (r->nbounce > 0) {
		if (status == 0 && r->bounce_in) {
			bounce_copy(qp, r, false);
		}
		bounce_put(qp, r);
	}
	qp->stats.completed++;
	if (status != 0) {
		qp->stats.errors++;
	}
	req_put(qp, r);
	cb(arg, status, cqe);
}

/* ---- submission ----------------------------------------------------------------------------- */

static int
submit_check(struct vh_nvme_qpair *qp)
{
	return VH_UNLIKELY(qp->dead) ? -ENODEV : 0;
}

static struct req *
req_start(struct vh_nvme_qpair *qp, uint8_t opc, uint32_t nsid, vh_nvme_cmd_cb cb, void *arg)
{
	struct req *r = req_get(qp);

	if (r == NULL) {
		return NULL;
	}
	memset(&r->sqe, 0, sizeof(r->sqe));
	r->sqe.opc = opc;
	r->sqe.cid = (uint16_t)(r - qp->reqs);
	r->sqe.nsid = nsid;
	r->cb = cb;
	r->cb_arg = arg;
	return r;
}

static void
req_go(struct vh_nvme_qpair *qp, struct req *r)
{
	qp->stats.submitted++;
	issue(qp, r);
}

int
vh_nvme_qpair_submit_raw(struct vh_nvme_qpair *qp, const struct vh_nvme_sqe *sqe, vh_nvme_cmd_cb cb,
                         void *arg)
{
	struct req *r;
	uint16_t cid;
	int ret;

	ret = submit_check(qp);
	if (ret < 0) {
		return ret;
	}
	r = req_start(qp, sqe->opc, sqe->nsid, cb, arg);
	if (r == NULL) {
		return -EAGAIN;
	}
	cid = r->sqe.cid;
	r->sqe = *sqe;
	r->sqe.cid = cid;
	req_go(qp, r);
	return 0;
}

int
vh_nvme_qpair_rw(struct vh_nvme_qpair *qp, bool write, uint32_t nsid, uint64_t slba, uint32_t nlb,
                 const struct iovec *iov, int iovcnt, size_t skip, size_t len, vh_nvme_cmd_cb cb,
                 void *arg)
{
	return vh_nvme_qpair_rw_opts(qp, write, nsid, slba, nlb, iov, iovcnt, skip, len, 0, cb,
	                             arg);
}

int
vh_nvme_qpair_rw_opts(struct vh_nvme_qpair *qp, bool write, uint32_t nsid, uint64_t slba,
                      uint32_t nlb, const struct iovec *iov, int iovcnt, size_t skip, size_t len,
                      unsigned opts, vh_nvme_cmd_cb cb, void *arg)
{
	struct req *r;
	int ret;

	if (nlb == 0 || len == 0 || len > qp->opts.max_xfer || iovcnt < 0) {
		return -EINVAL;
	}
	ret = submit_check(qp);
	if (ret < 0) {
		return ret;
	}
	r = req_start(qp, write ? VH_NVME_OPC_WRITE : VH_NVME_OPC_READ, nsid, cb, arg);
	if (r == NULL) {
		return -EAGAIN;
	}
	r->sqe.cdw10 = (uint32_t)slba;
	r->sqe.cdw11 = (uint32_t)(slba >> 32);
	r->sqe.cdw12 = nlb - 1; /* NLB is 0's based */
	if (opts & VH_NVME_CMD_FUA) {
		r->sqe.cdw12 |= VH_NVME_RW_FUA;
	}
	r->iov = iov;
	r->iovcnt = iovcnt;
	r->skip = skip;
	r->len = len;
	ret = vh_nvme_prp_build(qp->translate, qp->translate_ctx, iov, iovcnt, skip, len, &r->sqe,
	                        r->prp_list, r->prp_list_iova, PRP_LIST_ENTRIES);
	if (ret == VH_NVME_PRP_BOUNCE) {
		ret = qp->nbounce > 0 ? bounce_setup(qp, r, write) : -EINVAL;
	}
	if (ret != 0) {
		req_put(qp, r);
		return ret;
	}
	req_go(qp, r);
	return 0;
}

int
vh_nvme_qpair_flush(struct vh_nvme_qpair *qp, uint32_t nsid, vh_nvme_cmd_cb cb, void *arg)
{
	struct req *r;
	int ret;

	ret = submit_check(qp);
	if (ret < 0) {
		return ret;
	}
	r = req_start(qp, VH_NVME_OPC_FLUSH, nsid, cb, arg);
	if (r == NULL) {
		return -EAGAIN;
	}
	req_go(qp, r);
	return 0;
}

int
vh_nvme_qpair_write_zeroes(struct vh_nvme_qpair *qp, uint32_t nsid, uint64_t slba, uint32_t nlb,
                           unsigned opts, vh_nvme_cmd_cb cb, void *arg)
{
	struct req *r;
	int ret;

	if (nlb == 0 || nlb > VH_NVME_WZ_MAX_NLB) {
		return -EINVAL;
	}
	ret = submit_check(qp);
	if (ret < 0) {
		return ret;
	}
	r = req_start(qp, VH_NVME_OPC_WRITE_ZEROES, nsid, cb, arg);
	if (r == NULL) {
		return -EAGAIN;
	}
	r->sqe.cdw10 = (uint32_t)slba;
	r->sqe.cdw11 = (uint32_t)(slba >> 32);
	r->sqe.cdw12 = (nlb - 1) | (opts & VH_NVME_CMD_DEAC ? VH_NVME_WZ_DEAC : 0) |
	               (opts & VH_NVME_CMD_FUA ? VH_NVME_RW_FUA : 0);
	req_go(qp, r);
	return 0;
}

int
vh_nvme_qpair_deallocate(struct vh_nvme_qpair *qp, uint32_t nsid,
                         const struct vh_nvme_dsm_range *ranges, unsigned nr, vh_nvme_cmd_cb cb,
                         void *arg)
{
	struct req *r;
	int ret;

	if (nr == 0 || nr > VH_NVME_DSM_MAX_RANGES) {
		return -EINVAL;
	}
	ret = submit_check(qp);
	if (ret < 0) {
		return ret;
	}
	r = req_start(qp, VH_NVME_OPC_DSM, nsid, cb, arg);
	if (r == NULL) {
		return -EAGAIN;
	}
	/* The request's PRP list page doubles as the range buffer: 256 ranges fill it exactly. */
	memcpy(r->prp_list, ranges, nr * sizeof(*ranges));
	r->sqe.prp1 = r->prp_list_iova;
	r->sqe.cdw10 = nr - 1;
	r->sqe.cdw11 = VH_NVME_DSM_AD;
	req_go(qp, r);
	return 0;
}

void
vh_nvme_qpair_ring(struct vh_nvme_qpair *qp)
{
	if (!qp->sq_dirty || qp->halted || qp->dead) {
		return;
	}
	/* SQEs, PRP lists and bounced data must be in memory before the device is told. */
	vh_nvme_io_wmb();
	vh_nvme_mmio_write32(qp->dev, qp->sq_db, qp->sq_tail);
	qp->sq_dirty = false;
}

/* ---- completion ----------------------------------------------------------------------------- */

static bool
cqe_valid(struct vh_nvme_qpair *qp, const struct vh_nvme_cqe *cqe)
{
	if (cqe->sqid != qp->opts.qid || cqe->cid >= qp->nreqs ||
	    qp->reqs[cqe->cid].state != REQ_ACTIVE) {
		qp->stats.bad_cqes++;
		VH_LOG_RL(VH_LOG_ERROR, COMP,
		          "[%s/q%u] dropping completion for %s CID %u (SQ id %u, status 0x%x)",
		          qname(qp), qp->opts.qid, cqe->cid >= qp->nreqs ? "unknown" : "idle",
		          cqe->cid, cqe->sqid, cqe->status >> 1);
		return false;
	}
	return true;
}

static void
handle_cqe(struct vh_nvme_qpair *qp, const struct vh_nvme_cqe *cqe)
{
	uint16_t status = cqe->status >> 1;
	struct req *r;

	if (!cqe_valid(qp, cqe)) {
		return;
	}
	r = &qp->reqs[cqe->cid];
	if ((status & 0x7ff) == 0) {
		complete(qp, r, 0, cqe);
		return;
	}
	/* §4.6.1: DNR clear means the same command may succeed if submitted again. */
	if (!(cqe->status & VH_NVME_STATUS_DNR) && r->retries < qp->opts.max_retries &&
	    !r->timed_out) {
		r->retries++;
		qp->stats.retries++;
		issue(qp, r);
		return;
	}
	VH_LOG_RL(VH_LOG_WARN, COMP, "[%s/q%u] CID %u opc 0x%x failed: SCT %u SC 0x%x%s", qname(qp),
	          qp->opts.qid, cqe->cid, r->sqe.opc, VH_NVME_STATUS_SCT(cqe->status),
	          VH_NVME_STATUS_SC(cqe->status), cqe->status & VH_NVME_STATUS_DNR ? " DNR" : "");
	complete(qp, r, vh_nvme_status_to_errno(status), cqe);
}

/* Consume CQEs whose phase tag matches ours (§4.6: the device flips it on every lap). */
static unsigned
reap(struct vh_nvme_qpair *qp, unsigned max)
{
	unsigned n = 0;

	while (n < max) {
		struct vh_nvme_cqe *slot = &qp->cq[qp->cq_head];
		struct vh_nvme_cqe cqe;

		if ((VH_READ_ONCE(slot->status) & VH_NVME_STATUS_P) != qp->phase) {
			break;
		}
		vh_nvme_dma_rmb(); /* read the body only after seeing the phase tag */
		cqe = *slot;
		if (++qp->cq_head == qp->opts.depth) {
			qp->cq_head = 0;
			qp->phase ^= 1;
		}
		n++;
		handle_cqe(qp, &cqe);
	}
	return n;
}

static void
check_timeouts(struct vh_nvme_qpair *qp, uint64_t t)
{
	for (unsigned i = 0; i < qp->nreqs; i++) {
		struct req *r = &qp->reqs[i];

		if (r->state != REQ_ACTIVE || r->timed_out || r->deadline == 0 || t < r->deadline) {
			continue;
		}
		/*
		 * The device may still write the buffer, so the request cannot complete yet: it
		 * completes with -ETIMEDOUT when a reset has stopped the device, or normally if
		 * its completion still arrives first.
		 */
		r->timed_out = true;
		qp->stats.timeouts++;
		VH_LOG_RL(VH_LOG_ERROR, COMP, "[%s/q%u] CID %u opc 0x%x timed out", qp->dev->bdf,
		          qp->opts.qid, i, r->sqe.opc);
		vh_nvme_ctrlr_notify(qp->ctrlr, VH_NVME_EV_TIMEOUT);
	}
}

static void
check_health(struct vh_nvme_qpair *qp)
{
	int ret = vh_nvme_ctrlr_check_health(qp->ctrlr);

	if (ret == -ENODEV) {
		/* Surprise removal: nothing can DMA any more, so failing everything is safe. */
		VH_LOG_RL(VH_LOG_ERROR, COMP, "[%s/q%u] device removed", qname(qp), qp->opts.qid);
		vh_nvme_qpair_fail_all(qp, -ENODEV);
		vh_nvme_ctrlr_notify(qp->ctrlr, VH_NVME_EV_REMOVED);
	} else if (ret < 0 && !qp->fatal_seen) {
		qp->fatal_seen = true;
		vh_nvme_ctrlr_notify(qp->ctrlr, VH_NVME_EV_FATAL);
	}
}

static void
periodic(struct vh_nvme_qpair *qp)
{
	uint64_t t;

	if (qp->nfree == qp->nreqs || qp->halted || qp->dead) {
		return;
	}
	t = now(qp);
	if (t >= qp->next_scan) {
		qp->next_scan = t + TIMEOUT_SCAN_NS;
		check_timeouts(qp, t);
	}
	if (t >= qp->next_health) {
		qp->next_health = t + qp->ctrlr->opts.health_interval_us * 1000ull;
		check_health(qp);
	}
}

int
vh_nvme_qpair_poll(struct vh_nvme_qpair *qp, unsigned max)
{
	unsigned n;

	if (qp->dead) {
		return 0;
	}
	vh_nvme_qpair_ring(qp);
	n = reap(qp, max);
	if (n > 0 && !qp->halted) {
		/* One head doorbell for the batch: the CQ slots we consumed are free again. */
		vh_nvme_mmio_write32(qp->dev, qp->cq_db, qp->cq_head);
	}
	vh_nvme_qpair_ring(qp); /* retries and commands submitted by callbacks */
	periodic(qp);
	return (int)n;
}

/* ---- reset and teardown --------------------------------------------------------------------- */

void
vh_nvme_qpair_halt(struct vh_nvme_qpair *qp)
{
	qp->halted = true;
}

void
vh_nvme_qpair_abort_all(struct vh_nvme_qpair *qp)
{
	/* Completions the device posted before it stopped are real: take them first. */
	reap(qp, qp->opts.depth);
	for (unsigned i = 0; i < qp->nreqs; i++) {
		struct req *r = &qp->reqs[i];

		if (r->state != REQ_ACTIVE) {
			continue;
		}
		if (r->timed_out) {
			complete(qp, r, -ETIMEDOUT, NULL);
		} else if (r->retries < qp->opts.max_retries) {
			r->retries++;
			qp->stats.retries++;
			queue_tail(qp, r);
		} else {
			complete(qp, r, -EIO, NULL);
		}
	}
	/* The re-created queues start empty: tail/head 0, expecting phase 1 (§4.6). */
	memset(qp->cq, 0, qp->cq_mem.size);
	qp->sq_tail = 0;
	qp->cq_head = 0;
	qp->phase = 1;
	qp->sq_dirty = false;
}

void
vh_nvme_qpair_resume(struct vh_nvme_qpair *qp)
{
	struct req *r;

	qp->halted = false;
	qp->fatal_seen = false;
	while ((r = qp->queued_head) != NULL) {
		qp->queued_head = r->next;
		sq_push(qp, r);
	}
	qp->queued_tail = NULL;
	vh_nvme_qpair_ring(qp);
}

void
vh_nvme_qpair_fail_all(struct vh_nvme_qpair *qp, int status)
{
	qp->dead = true;
	qp->queued_head = qp->queued_tail = NULL;
	for (unsigned i = 0; i < qp->nreqs; i++) {
		if (qp->reqs[i].state != REQ_FREE) {
			complete(qp, &qp->reqs[i], status, NULL);
		}
	}
}

bool
vh_nvme_qpair_is_dead(const struct vh_nvme_qpair *qp)
{
	return qp->dead;
}

/* ---- accessors ------------------------------------------------------------------------------ */

uint16_t
vh_nvme_qpair_id(const struct vh_nvme_qpair *qp)
{
	return qp->opts.qid;
}

uint16_t
vh_nvme_qpair_depth(const struct vh_nvme_qpair *qp)
{
	return qp->opts.depth;
}

uint64_t
vh_nvme_qpair_sq_iova(const struct vh_nvme_qpair *qp)
{
	return qp->sq_mem.iova;
}

uint64_t
vh_nvme_qpair_cq_iova(const struct vh_nvme_qpair *qp)
{
	return qp->cq_mem.iova;
}

unsigned
vh_nvme_qpair_free_slots(const struct vh_nvme_qpair *qp)
{
	return qp->nfree;
}

unsigned
vh_nvme_qpair_outstanding(const struct vh_nvme_qpair *qp)
{
	return (unsigned)(qp->nreqs - qp->nfree);
}

uint32_t
vh_nvme_qpair_max_xfer(const struct vh_nvme_qpair *qp)
{
	return qp->opts.max_xfer;
}

void
vh_nvme_qpair_get_stats(const struct vh_nvme_qpair *qp, struct vh_nvme_qpair_stats *st)
{
	*st = qp->stats;
}

void
vh_nvme_qpair_set_translate(struct vh_nvme_qpair *qp, vh_nvme_translate_fn tr, void *ctx)
{
	qp->translate = tr ? tr : vh_nvme_dev_translate;
	qp->translate_ctx = tr ? ctx : qp->dev;
}

/* ---- creation ------------------------------------------------------------------------------- */

/* Allocate @n pages of DMA memory in chunks; page i at va[i]/iova[i]. */
static int
alloc_pages(struct vh_nvme_qpair *qp, unsigned n, void **va, uint64_t *iova)
{
	for (unsigned done = 0; done < n;) {
		unsigned k = VH_MIN(n - done, CHUNK_PAGES);
		struct vh_nvme_dma *d = &qp->chunks[qp->nchunks];
		int ret;

		ret = vh_nvme_dma_alloc(qp->dev, (size_t)k * PAGE, d);
		if (ret < 0) {
			return ret;
		}
		qp->nchunks++;
		for (unsigned i = 0; i < k; i++, done++) {
			va[done] = (uint8_t *)d->vaddr + (size_t)i * PAGE;
			iova[done] = d->iova + (uint64_t)i * PAGE;
		}
	}
	return 0;
}

static int
alloc_reqs(struct vh_nvme_qpair *qp)
{
	void **va;
	uint64_t *iova;
	int ret;

	qp->reqs = calloc(qp->nreqs, sizeof(*qp->reqs));
	qp->bounce_idx = calloc((size_t)qp->nreqs * qp->max_pages, sizeof(uint16_t));
	va = calloc(qp->nreqs, sizeof(*va));
	iova = calloc(qp->nreqs, sizeof(*iova));
	ret = -ENOMEM;
	if (qp->reqs != NULL && qp->bounce_idx != NULL && va != NULL && iova != NULL) {
		ret = alloc_pages(qp, qp->nreqs, va, iova);
	}
	for (unsigned i = 0; ret == 0 && i < qp->nreqs; i++) {
		struct req *r = &qp->reqs[i];

		r->prp_list = va[i];
		r->prp_list_iova = iova[i];
		r->bounce = qp->bounce_idx + (size_t)i * qp->max_pages;
	}
	for (unsigned i = qp->nreqs; ret == 0 && i-- > 0;) {
		req_put(qp, &qp->reqs[i]);
	}
	free(va);
	free(iova);
	return ret;
}

static int
alloc_bounce(struct vh_nvme_qpair *qp)
{
	qp->nbounce = qp->opts.bounce_pages;
	if (qp->nbounce == 0) {
		return 0;
	}
	qp->bounce_va = calloc(qp->nbounce, sizeof(*qp->bounce_va));
	qp->bounce_iova = calloc(qp->nbounce, sizeof(*qp->bounce_iova));
	qp->bounce_free = calloc(qp->nbounce, sizeof(*qp->bounce_free));
	if (qp->bounce_va == NULL || qp->bounce_iova == NULL || qp->bounce_free == NULL) {
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < qp->nbounce; i++) {
		qp->bounce_free[qp->bounce_nfree++] = (uint16_t)(qp->nbounce - 1 - i);
	}
	return alloc_pages(qp, qp->nbounce, qp->bounce_va, qp->bounce_iova);
}

static int
check_opts(const struct vh_nvme_qpair_opts *o)
{
	if (o->depth < 2 || o->depth > 4096 || o->max_xfer > VH_NVME_MAX_XFER ||
	    o->bounce_pages > 65535) {
		return -EINVAL;
	}
	return 0;
}

int
vh_nvme_qpair_create(struct vh_nvme_ctrlr *ctrlr, const struct vh_nvme_qpair_opts *opts,
                     struct vh_nvme_qpair **out)
{
	struct vh_nvme_qpair *qp;
	unsigned max_chunks;
	int ret;

	ret = check_opts(opts);
	if (ret < 0) {
		return ret;
	}
	qp = calloc(1, sizeof(*qp));
	if (qp == NULL) {
		return -ENOMEM;
	}
	qp->ctrlr = ctrlr;
	qp->dev = ctrlr->dev;
	qp->opts = *opts;
	qp->nreqs = (uint16_t)(opts->depth - 1);
	qp->max_pages = opts->max_xfer / PAGE + 1;
	qp->phase = 1;
	qp->sq_db = vh_nvme_sq_doorbell(ctrlr, opts->qid);
	qp->cq_db = vh_nvme_cq_doorbell(ctrlr, opts->qid);
	vh_nvme_qpair_set_translate(qp, NULL, NULL);
	max_chunks = (qp->nreqs + CHUNK_PAGES - 1) / CHUNK_PAGES +
	             (opts->bounce_pages + CHUNK_PAGES - 1) / CHUNK_PAGES;
	qp->chunks = calloc(max_chunks + 1, sizeof(*qp->chunks));
	if (qp->chunks == NULL) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = vh_nvme_dma_alloc(qp->dev, (size_t)opts->depth * sizeof(struct vh_nvme_sqe),
	                        &qp->sq_mem);
	if (ret == 0) {
		ret = vh_nvme_dma_alloc(qp->dev, (size_t)opts->depth * sizeof(struct vh_nvme_cqe),
		                        &qp->cq_mem);
	}
	if (ret == 0) {
		ret = alloc_reqs(qp);
	}
	if (ret == 0) {
		ret = alloc_bounce(qp);
	}
	if (ret < 0) {
		goto out_free;
	}
	qp->sq = qp->sq_mem.vaddr;
	qp->cq = qp->cq_mem.vaddr;
	*out = qp;
	return 0;

out_free:
	vh_nvme_qpair_destroy(qp);
	return ret;
}

void
vh_nvme_qpair_destroy(struct vh_nvme_qpair *qp)
{
	if (qp == NULL) {
		return;
	}
	if (qp->chunks != NULL) {
		for (unsigned i = 0; i < qp->nchunks; i++) {
			vh_nvme_dma_free(qp->dev, &qp->chunks[i]);
		}
	}
	vh_nvme_dma_free(qp->dev, &qp->sq_mem);
	vh_nvme_dma_free(qp->dev, &qp->cq_mem);
	free(qp->chunks);
	free(qp->reqs);
	free(qp->bounce_idx);
	free(qp->bounce_va);
	free(qp->bounce_iova);
	free(qp->bounce_free);
	free(qp);
}
