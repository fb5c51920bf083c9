/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * I/O queues of the emulated NVMe controller, on the reactors: one poller per (controller,
 * reactor) reads the doorbells the guest writes into the mmap'ed doorbell page (or the shadow
 * doorbells, §5.8), fetches submission queue entries, turns Read, Write, Flush, Write Zeroes
 * and Dataset Management (deallocate) into bdev I/O, and posts completions with one interrupt
 * per completion queue per poll.
 *
 * Threat model: the guest writes the queues, the doorbells and every data pointer, and may
 * change them at any time. A doorbell value is read once per poll and must be below the queue
 * size (else the controller becomes fatal: CSTS.CFS, the host resets it); an SQ entry is copied
 * out once before any field is looked at; LBA ranges are checked against the namespace size
 * with overflow-safe arithmetic; data pointers go through nvme_prp.c. A completion is never
 * posted into a full CQ: an entry is reserved before the command is fetched, so a host that
 * stops consuming completions stops our fetching instead of having its CQ overwritten.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/log.h"
#include "vfu/nvme.h"

/* Source of Write Zeroes for back-ends without the operation. */
static uint8_t g_zero[VFU_NVME_PAGE] __attribute__((aligned(VFU_NVME_PAGE)));

static void complete(struct vfu_req *req, uint16_t status);

/* ---- doorbells ---- */

static uint32_t
db(const struct vfu_nvme *n, unsigned qid, bool cq)
{
	volatile uint32_t *shadow = n->dbbuf;

	/* Shadow doorbells cover the I/O queues only (the admin queue keeps its registers). */
	if (shadow != NULL && qid > 0) {
		return VH_READ_ONCE(shadow[2 * qid + (cq ? 1 : 0)]);
	}
	return vfu_nvme_db_read(n, qid, cq);
}

static unsigned
cq_room(const struct vfu_cq *cq)
{
	unsigned used = (unsigned)((cq->tail - cq->head + cq->size) % cq->size);

	return cq->size - 1u - used - cq->reserved;
}

/* ---- completion ---- */

static void
cq_post(struct vfu_cq *cq, struct vfu_sq *sq, uint16_t cid, uint16_t status)
{
	struct vh_nvme_cqe *e = &cq->ring[cq->tail];

	VH_WRITE_ONCE(e->dw0, 0);
	VH_WRITE_ONCE(e->dw1, 0);
	VH_WRITE_ONCE(e->sqhd, sq->head);
	VH_WRITE_ONCE(e->sqid, sq->id);
	VH_WRITE_ONCE(e->cid, cid);
	/* Phase last, with release: the host sees the whole entry once it sees the phase. */
	VH_STORE_REL(e->status, (uint16_t)((status << 1) | cq->phase));
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
	cq->reserved--;
	if (!cq->irq_pending) {
		cq->irq_pending = true;
		vh_reactor_defer(&cq->rctx->irq_defer);
	}
}

/* End of the loop iteration: one interrupt per CQ that got entries. */
static void
irq_flush(struct vh_deferred *d)
{
	struct vfu_rctx *x = VH_CONTAINER_OF(d, struct vfu_rctx, irq_defer);

	for (struct vfu_cq *cq = x->cqs; cq != NULL; cq = cq->next) {
		if (cq->irq_pending) {
			cq->irq_pending = false;
			if (cq->ien) {
				vfu_nvme_irq(x->n, cq->iv);
			}
		}
	}
}

/* End of the loop iteration: an operation waiting for in-flight I/O may finish. */
static void
drain_check(struct vh_deferred *d)
{
	vfu_rctx_check_drained(VH_CONTAINER_OF(d, struct vfu_rctx, drain_defer));
}

static void
complete(struct vfu_req *req, uint16_t status)
{
	struct vfu_sq *sq = req->sq;
	struct vfu_rctx *x = sq->rctx;

	cq_post(sq->cq, sq, req->cid, status);
	if (req->opc == VH_NVME_OPC_DSM) {
		sq->dsm_busy = false;
	}
	req->next_free = sq->free;
	sq->free = req;
	sq->inflight--;
	x->inflight--;
	if (x->op_waits_drain) {
		/* Not now: the caller may be walking the queue lists the operation changes. */
		vh_reactor_defer(&x->drain_defer);
	}
}

static uint16_t
errno_status(int rc, uint8_t type)
{
	switch (rc) {
	case -EIO:
		return type == VH_BDEV_IO_READ ? NVME_ST_MEDIA(VH_NVME_SC_UNRECOVERED_READ)
		                               : NVME_ST_MEDIA(VH_NVME_SC_WRITE_FAULT);
	case -ENOSPC:
		return NVME_ST_GEN(VH_NVME_SC_CAP_EXCEEDED);
	case -EFAULT:
		return NVME_ST_GEN(VH_NVME_SC_DATA_XFER_ERROR);
	case -EROFS:
	case -EPERM:
	case -EACCES:
		return NVME_ST_GEN(0x20); /* Namespace is Write Protected */
	case -EINVAL:
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	default:
		return NVME_ST_GEN(VH_NVME_SC_INTERNAL);
	}
}

static void
submit(struct vfu_req *req)
{
	int rc = vh_bdev_submit(req->ch, &req->io);
	struct vfu_sq *sq = req->sq;

	if (rc == 0) {
		return;
	}
	if (rc == -EAGAIN || rc == -ENOMEM) {
		/* Retried first thing on the next poll, in order (design.md §3). */
		req->next_retry = NULL;
		if (sq->retry_tail != NULL) {
			sq->retry_tail->next_retry = req;
		} else {
			sq->retry_head = req;
		}
		sq->retry_tail = req;
		return;
	}
	complete(req, errno_status(rc, req->io.type));
}

static int
sq_retry(struct vfu_sq *sq)
{
	int did = 0;

	while (sq->retry_head != NULL) {
		struct vfu_req *req = sq->retry_head;
		int rc = vh_bdev_submit(req->ch, &req->io);

		if (rc == -EAGAIN || rc == -ENOMEM) {
			break;
		}
		sq->retry_head = req->next_retry;
		if (sq->retry_head == NULL) {
			sq->retry_tail = NULL;
		}
		did = 1;
		if (rc < 0) {
			complete(req, errno_status(rc, req->io.type));
		}
	}
	return did;
}

/* ---- commands ---- */

static void
set_io(struct vfu_req *req, uint8_t type, uint64_t offset, uint64_t length, unsigned niov)
{
	struct vh_bdev_io *io = &req->io;

	io->type = type;
	io->flags = 0;
	io->offset = offset;
	io->length = length;
	io->iov = niov > 0 ? req->iov : NULL;
	io->iovcnt = (int)niov;
}

/* Next deallocation range of a DSM command; completes it after the last. */
static void
dsm_next(struct vfu_req *req)
{
	const struct vh_nvme_dsm_range *r = req->sq->dsm;
	uint8_t lbads = req->ns->lbads;

	while (req->next_sub < req->nsub && r[req->next_sub].nlb == 0) {
		req->next_sub++;
	}
	if (req->next_sub == req->nsub) {
		complete(req, req->status);
		return;
	}
	set_io(req, VH_BDEV_IO_DISCARD, r[req->next_sub].slba << lbads,
	       (uint64_t)r[req->next_sub].nlb << lbads, 0);
	submit(req);
}

/* Write Zeroes emulated with writes of a zero page, MDTS at a time. */
static void
wz_next(struct vfu_req *req)
{
	uint64_t chunk = VH_MIN(req->wz_left, (uint64_t)VFU_NVME_MAX_XFER), left = chunk;
	unsigned n = 0;

	if (req->wz_left == 0) {
		complete(req, req->status);
		return;
	}
	while (left > 0) {
		req->iov[n].iov_base = g_zero;
		req->iov[n].iov_len = VH_MIN(left, (uint64_t)sizeof(g_zero));
		left -= req->iov[n].iov_len;
		n++;
	}
	set_io(req, VH_BDEV_IO_WRITE, req->wz_off, chunk, n);
	req->wz_off += chunk;
	req->wz_left -= chunk;
	submit(req);
}

static void
io_done(struct vh_bdev_io *io, int status)
{
	struct vfu_req *req = VH_CONTAINER_OF(io, struct vfu_req, io);

	if (status < 0) {
		complete(req, errno_status(status, io->type));
		return;
	}
	if (req->opc == VH_NVME_OPC_WRITE && req->flush_after) {
		/* FUA (or write cache disabled by the host): the data must be durable first. */
		req->flush_after = false;
		set_io(req, VH_BDEV_IO_FLUSH, 0, 0, 0);
		submit(req);
		return;
	}
	if (req->opc == VH_NVME_OPC_DSM) {
		req->next_sub++;
		dsm_next(req);
		return;
	}
	if (req->opc == VH_NVME_OPC_WRITE_ZEROES && req->wz_left > 0) {
		wz_next(req);
		return;
	}
	complete(req, req->status);
}

static struct vfu_ns *
lookup_ns(struct vfu_nvme *n, uint32_t nsid)
{
	struct vfu_ns *ns;

	if (nsid == 0 || nsid > VFU_NVME_MAX_NS) {
		return NULL;
	}
	ns = VH_LOAD_ACQ(n->ns[nsid]); /* pairs with the control thread's VH_STORE_REL */
	return ns != NULL && !VH_READ_ONCE(ns->removing) ? ns : NULL;
}

static struct vh_bdev_channel *
channel(struct vfu_rctx *x, struct vfu_ns *ns)
{
	if (x->ch[ns->nsid] == NULL) {
		x->ch[ns->nsid] = vh_bdev_channel_get(ns->bdev);
	}
	return x->ch[ns->nsid];
}

/* Range [slba, slba + nlb) inside the namespace? */
static bool
range_ok(const struct vfu_ns *ns, uint64_t slba, uint64_t nlb)
{
	return slba < ns->nblocks && nlb <= ns->nblocks - slba;
}

static uint16_t
rw(struct vfu_req *req, const struct vh_nvme_sqe *c)
{
	struct vfu_ns *ns = req->ns;
	struct vfu_nvme *n = req->sq->rctx->n;
	uint64_t slba = ((uint64_t)c->cdw11 << 32) | c->cdw10, nlb = (c->cdw12 & 0xffff) + 1ull;
	uint64_t len = nlb << ns->lbads;
	bool read = c->opc == VH_NVME_OPC_READ;
	unsigned niov;
	uint16_t st;

	if (!range_ok(ns, slba, nlb)) {
		return NVME_ST_GEN(VH_NVME_SC_LBA_OUT_OF_RANGE);
	}
	if (len > VFU_NVME_MAX_XFER) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	/* A read writes into guest memory: the region must allow the device to write. */
	st = vfu_nvme_map_data(vfu_nvme_dma(n), c, len, read ? VFU_DMA_WRITE : VFU_DMA_READ,
	                       req->iov, VFU_NVME_MAX_IOV, &niov);
	if (st != NVME_ST_OK) {
		return st;
	}
	set_io(req, read ? VH_BDEV_IO_READ : VH_BDEV_IO_WRITE, slba << ns->lbads, len, niov);
	if (!read && ((c->cdw12 & NVME_RW_FUA) || !n->wce) && vh_bdev_has_write_cache(ns->bdev) &&
	    vh_bdev_io_type_supported(ns->bdev, VH_BDEV_IO_FLUSH)) {
		req->flush_after = true;
	}
	if (read) {
		VH_WRITE_ONCE(req->sq->rctx->stat_reads, req->sq->rctx->stat_reads + 1);
		VH_WRITE_ONCE(req->sq->rctx->stat_read_bytes, req->sq->rctx->stat_read_bytes + len);
	} else {
		VH_WRITE_ONCE(req->sq->rctx->stat_writes, req->sq->rctx->stat_writes + 1);
		VH_WRITE_ONCE(req->sq->rctx->stat_write_bytes,
		              req->sq->rctx->stat_write_bytes + len);
	}
	submit(req);
	return NVME_ST_OK;
}

static uint16_t
write_zeroes(struct vfu_req *req, const struct vh_nvme_sqe *c)
{
	struct vfu_ns *ns = req->ns;
	uint64_t slba = ((uint64_t)c->cdw11 << 32) | c->cdw10, nlb = (c->cdw12 & 0xffff) + 1ull;

	if (!range_ok(ns, slba, nlb)) {
		return NVME_ST_GEN(VH_NVME_SC_LBA_OUT_OF_RANGE);
	}
	if (!vh_bdev_io_type_supported(ns->bdev, VH_BDEV_IO_WRITE_ZEROES)) {
		req->wz_off = slba << ns->lbads;
		req->wz_left = nlb << ns->lbads;
		wz_next(req);
		return NVME_ST_OK;
	}
	set_io(req, VH_BDEV_IO_WRITE_ZEROES, slba << ns->lbads, nlb << ns->lbads, 0);
	if (c->cdw12 & VH_NVME_WZ_DEAC) {
		req->io.flags = VH_BDEV_IO_F_UNMAP;
	}
	submit(req);
	return NVME_ST_OK;
}

static uint16_t
dsm(struct vfu_req *req, const struct vh_nvme_sqe *c)
{
	struct vfu_sq *sq = req->sq;
	struct vfu_ns *ns = req->ns;
	unsigned nr = (c->cdw10 & 0xff) + 1;
	uint16_t st;

	if (!(c->cdw11 & VH_NVME_DSM_AD)) {
		return NVME_ST_OK; /* only hints: nothing to do */
	}
	/* The ranges are copied out once; every later step uses the copy. */
	st = vfu_nvme_copy_from_guest(vfu_nvme_dma(sq->rctx->n), c, sq->dsm,
	                              (uint64_t)nr * sizeof(sq->dsm[0]));
	if (st != NVME_ST_OK) {
		return st;
	}
	sq->dsm_busy = true;
	for (unsigned i = 0; i < nr; i++) {
		if (sq->dsm[i].nlb != 0 && !range_ok(ns, sq->dsm[i].slba, sq->dsm[i].nlb)) {
			return NVME_ST_GEN(VH_NVME_SC_LBA_OUT_OF_RANGE);
		}
	}
	if (!vh_bdev_io_type_supported(ns->bdev, VH_BDEV_IO_DISCARD)) {
		return NVME_ST_OK; /* deallocation is advisory */
	}
	req->nsub = nr;
	req->next_sub = 0;
	dsm_next(req);
	return NVME_ST_OK;
}

static void
io_start(struct vfu_sq *sq, struct vfu_req *req, const struct vh_nvme_sqe *c)
{
	struct vfu_rctx *x = sq->rctx;
	uint16_t st;

	req->sq = sq;
	req->cid = c->cid;
	req->opc = c->opc;
	req->status = NVME_ST_OK;
	req->flush_after = false;
	req->nsub = req->next_sub = 0;
	req->wz_left = 0;
	req->io.cb = io_done;
	if (NVME_FUSE(c->fuse_psdt) != 0) {
		complete(req, NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD)); /* no fused operations */
		return;
	}
	switch (c->opc) {
	case VH_NVME_OPC_FLUSH:
	case VH_NVME_OPC_WRITE:
	case VH_NVME_OPC_READ:
	case VH_NVME_OPC_WRITE_ZEROES:
	case VH_NVME_OPC_DSM:
		break;
	default:
		complete(req, NVME_ST_GEN(VH_NVME_SC_INVALID_OPCODE));
		return;
	}
	req->ns = lookup_ns(x->n, c->nsid);
	if (req->ns == NULL) {
		complete(req, NVME_ST_GEN(VH_NVME_SC_INVALID_NS));
		return;
	}
	req->ch = channel(x, req->ns);
	if (req->ch == NULL) {
		complete(req, NVME_ST_GEN(VH_NVME_SC_INTERNAL));
		return;
	}
	switch (c->opc) {
	case VH_NVME_OPC_FLUSH:
		if (!vh_bdev_io_type_supported(req->ns->bdev, VH_BDEV_IO_FLUSH) ||
		    !vh_bdev_has_write_cache(req->ns->bdev)) {
			st = NVME_ST_OK;
			break;
		}
		set_io(req, VH_BDEV_IO_FLUSH, 0, 0, 0);
		submit(req);
		return;
	case VH_NVME_OPC_WRITE_ZEROES:
		st = write_zeroes(req, c);
		if (st == NVME_ST_OK) {
			return;
		}
		break;
	case VH_NVME_OPC_DSM:
		st = dsm(req, c);
		if (st == NVME_ST_OK && req->nsub > 0) {
			return;
		}
		break;
	default:
		st = rw(req, c);
		if (st == NVME_ST_OK) {
			return;
		}
		break;
	}
	complete(req, st);
}

/* ---- the poller ---- */

static int
sq_fetch(struct vfu_nvme *n, struct vfu_sq *sq)
{
	struct vfu_cq *cq = sq->cq;
	uint32_t tail = db(n, sq->id, false);
	unsigned count = 0;

	if (tail >= sq->size) {
		vfu_nvme_fatal(n, "SQ tail doorbell out of range");
		return 0;
	}
	while (sq->head != tail && count < VFU_NVME_FETCH_BATCH) {
		struct vh_nvme_sqe c;
		struct vfu_req *req;

		if (sq->free == NULL || cq_room(cq) == 0) {
			break; /* flow control: fetch again when completions free room */
		}
		/* Read the entry once into a local; the guest may rewrite it under us. */
		memcpy(&c, (const void *)&sq->ring[sq->head], sizeof(c));
		if (c.opc == VH_NVME_OPC_DSM && sq->dsm_busy) {
			break; /* one DSM range buffer per queue; not consumed, fetched again */
		}
		sq->head = (uint16_t)(sq->head + 1 == sq->size ? 0 : sq->head + 1);
		req = sq->free;
		sq->free = req->next_free;
		cq->reserved++;
		sq->inflight++;
		sq->rctx->inflight++;
		io_start(sq, req, &c);
		count++;
	}
	return count > 0;
}

static void
cq_refresh(struct vfu_nvme *n, struct vfu_cq *cq)
{
	uint32_t head = db(n, cq->id, true);

	if (head >= cq->size) {
		vfu_nvme_fatal(n, "CQ head doorbell out of range");
		return;
	}
	cq->head = (uint16_t)head;
}

static int
watch_admin(struct vfu_rctx *x)
{
	uint32_t sq0 = vfu_nvme_db_read(x->n, 0, false), cq0 = vfu_nvme_db_read(x->n, 0, true);

	if (sq0 == x->seen_sq0 && cq0 == x->seen_cq0) {
		return 0;
	}
	x->seen_sq0 = sq0;
	x->seen_cq0 = cq0;
	vh_control_post(&x->n->admin_node); /* nvme.h N2 */
	return 1;
}

static int
rctx_poll(void *arg)
{
	struct vfu_rctx *x = arg;
	struct vfu_nvme *n = x->n;
	bool fetch = !x->paused && !VH_READ_ONCE(n->broken);
	int busy = 0;

	if (x->watch_admin) {
		busy |= watch_admin(x);
	}
	if (fetch) {
		for (struct vfu_cq *cq = x->cqs; cq != NULL; cq = cq->next) {
			cq_refresh(n, cq);
		}
	}
	for (struct vfu_sq *sq = x->sqs; sq != NULL; sq = sq->next) {
		if (sq->retry_head != NULL) {
			busy |= sq_retry(sq);
		}
		if (fetch && !sq->stopping && !VH_READ_ONCE(n->broken)) {
			busy |= sq_fetch(n, sq);
		}
	}
	if (busy) {
		x->did_work = true;
		x->last_work_ns = vh_now_ns();
	}
	return busy ? VH_POLL_BUSY : VH_POLL_IDLE;
}

/*
 * Before the reactor sleeps. Doorbell writes never trap, so nothing would wake it: while this
 * controller has queues here, a timer wakes it to look again, every VFU_NVME_IDLE_POLL_NS after
 * work and less often while the wake-ups find nothing (up to VFU_NVME_IDLE_POLL_MAX_NS).
 */
static int
rctx_arm(void *arg)
{
	struct vfu_rctx *x = arg;
	struct itimerspec its;

	if (x->sqs == NULL && !x->watch_admin) {
		return 0;
	}
	VH_SMP_MB(); /* our later sleep decision must see doorbell writes made before this */
	if (x->watch_admin && (vfu_nvme_db_read(x->n, 0, false) != x->seen_sq0 ||
	                       vfu_nvme_db_read(x->n, 0, true) != x->seen_cq0)) {
		return 1;
	}
	for (struct vfu_sq *sq = x->sqs; sq != NULL; sq = sq->next) {
		if (sq->retry_head != NULL ||
		    (!x->paused && !sq->stopping && db(x->n, sq->id, false) != sq->head)) {
			return 1;
		}
	}
	if (vh_now_ns() - x->last_work_ns < VFU_NVME_BUSY_GRACE_NS) {
		return 1;
	}
	if (x->did_work || x->idle_period == 0) {
		x->idle_period = VFU_NVME_IDLE_POLL_NS;
	} else {
		x->idle_period = VH_MIN(x->idle_period * 2, VFU_NVME_IDLE_POLL_MAX_NS);
	}
	x->did_work = false;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(x->idle_period / 1000000000ull);
	its.it_value.tv_nsec = (long)(x->idle_period % 1000000000ull);
	its.it_interval = its.it_value;
	if (x->timerfd < 0 || timerfd_settime(x->timerfd, 0, &its, NULL) < 0) {
		return 1; /* nothing could wake us: do not sleep */
	}
	x->timer_armed = true;
	return 0;
}

static void
rctx_disarm(void *arg)
{
	struct vfu_rctx *x = arg;
	struct itimerspec off = {0};
	uint64_t v;

	if (x->timer_armed) {
		timerfd_settime(x->timerfd, 0, &off, NULL);
		x->timer_armed = false;
		if (read(x->timerfd, &v, sizeof(v)) < 0) {
			/* EAGAIN: it had not expired yet; nothing to clear */
		}
	}
}

static const struct vh_poller_ops g_rctx_ops = {
        .poll = rctx_poll,
        .arm = rctx_arm,
        .disarm = rctx_disarm,
};

/* ---- operations (nvme.h N3): each runs on the context's reactor ---- */

static void
put_channels(struct vfu_rctx *x, bool only_removing)
{
	for (unsigned i = 1; i <= VFU_NVME_MAX_NS; i++) {
		struct vfu_ns *ns = VH_LOAD_ACQ(x->n->ns[i]);

		if (x->ch[i] != NULL && (!only_removing || ns == NULL || ns->removing)) {
			vh_bdev_channel_put(x->ch[i]);
			x->ch[i] = NULL;
		}
	}
}

bool
vfu_rctx_start(struct vfu_rctx *x)
{
	x->irq_defer.fn = irq_flush;
	x->drain_defer.fn = drain_check;
	x->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	x->poller = vh_poller_register(&g_rctx_ops, x, x->timerfd, x->n->prefix);
	if (x->poller == NULL) {
		VH_ERR(x->n->prefix, "cannot register the queue poller on reactor %u", x->idx);
	}
	return true;
}

bool
vfu_rctx_stop(struct vfu_rctx *x)
{
	put_channels(x, false);
	if (x->poller != NULL) {
		vh_poller_unregister(&x->poller);
	}
	if (x->timerfd >= 0) {
		close(x->timerfd);
		x->timerfd = -1;
	}
	return true;
}

bool
vfu_rctx_attach_cq(struct vfu_rctx *x)
{
	struct vfu_cq *cq = x->n->op_cq;

	cq->next = x->cqs;
	x->cqs = cq;
	return true;
}

bool
vfu_rctx_attach_sq(struct vfu_rctx *x)
{
	struct vfu_sq *sq = x->n->op_sq, **pp = &x->sqs;

	while (*pp != NULL) {
		pp = &(*pp)->next; /* append: queues are served in creation order */
	}
	sq->next = NULL;
	*pp = sq;
	/* Channels now rather than on the first command (namespaces added later: on first use). */
	for (unsigned i = 1; i <= VFU_NVME_MAX_NS; i++) {
		struct vfu_ns *ns = VH_LOAD_ACQ(x->n->ns[i]);

		if (ns != NULL && !VH_READ_ONCE(ns->removing)) {
			channel(x, ns);
		}
	}
	return true;
}

bool
vfu_rctx_detach_sq(struct vfu_rctx *x)
{
	struct vfu_sq *sq = x->n->op_sq;

	sq->stopping = true;
	if (sq->inflight > 0) {
		return false;
	}
	for (struct vfu_sq **pp = &x->sqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == sq) {
			*pp = sq->next;
			break;
		}
	}
	if (x->sqs == NULL) {
		put_channels(x, false);
	}
	return true;
}

bool
vfu_rctx_detach_cq(struct vfu_rctx *x)
{
	struct vfu_cq *cq = x->n->op_cq;

	for (struct vfu_cq **pp = &x->cqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cq) {
			*pp = cq->next;
			break;
		}
	}
	return true;
}

bool
vfu_rctx_detach_all(struct vfu_rctx *x)
{
	for (struct vfu_sq *sq = x->sqs; sq != NULL; sq = sq->next) {
		sq->stopping = true;
	}
	x->watch_admin = false;
	if (x->inflight > 0) {
		return false;
	}
	x->sqs = NULL;
	x->cqs = NULL;
	x->paused = false;
	put_channels(x, false);
	return true;
}

bool
vfu_rctx_pause(struct vfu_rctx *x)
{
	x->paused = true;
	if (x->inflight > 0) {
		return false;
	}
	put_channels(x, true); /* namespaces being removed lose their channels here */
	return true;
}

bool
vfu_rctx_resume(struct vfu_rctx *x)
{
	x->paused = false;
	return true;
}

bool
vfu_rctx_barrier(struct vfu_rctx *x)
{
	return true; /* running at all proves no poll of ours is in progress on this reactor */
}

bool
vfu_rctx_watch_admin(struct vfu_rctx *x)
{
	x->seen_sq0 = 0;
	x->seen_cq0 = 0;
	x->watch_admin = true;
	return true;
}

bool
vfu_rctx_freeze(struct vfu_rctx *x)
{
	x->paused = true;
	if (x->inflight > 0) {
		return false;
	}
	put_channels(x, false); /* vfu_rctx_resume: channel() takes them again on first use */
	return true;
}

bool
vfu_rctx_adopt(struct vfu_rctx *x)
{
	struct vfu_nvme *n = x->n;
	struct vfu_sq **tail = &x->sqs;

	/* Written by the control thread before it posted this operation (nvme.h N1). */
	for (unsigned i = 1; i <= VFU_NVME_MAX_IOQ; i++) {
		struct vfu_cq *cq = n->cqs[i];
		struct vfu_sq *sq = n->sqs[i];

		if (cq != NULL && cq->rctx == x) {
			cq->next = x->cqs;
			x->cqs = cq;
		}
		if (sq != NULL && sq->rctx == x) {
			sq->next = NULL;
			*tail = sq;
			tail = &sq->next;
		}
	}
	for (unsigned i = 1; x->sqs != NULL && i <= VFU_NVME_MAX_NS; i++) {
		struct vfu_ns *ns = VH_LOAD_ACQ(n->ns[i]);

		if (ns != NULL && !VH_READ_ONCE(ns->removing)) {
			channel(x, ns);
		}
	}
	/*
	 * An interrupt the old worker raised may have been lost in the switch: signal each queue
	 * with completions the host has not consumed (one too many is harmless to the host).
	 */
	for (struct vfu_cq *cq = x->cqs; cq != NULL; cq = cq->next) {
		if (cq->ien && cq->tail != vfu_nvme_db_read(n, cq->id, true)) {
			vfu_nvme_irq(n, cq->iv);
		}
	}
	if (x->idx == 0 && n->enabled && !n->shutdown) {
		/* 0 is never what the guest's doorbells say once it used them: look at once. */
		x->seen_sq0 = UINT32_MAX;
		x->seen_cq0 = UINT32_MAX;
		x->watch_admin = true;
	}
	x->paused = false;
	x->did_work = true;
	x->last_work_ns = vh_now_ns();
	return true;
}

/* ---- SQ resources (control thread) ---- */

int
vfu_sq_alloc(struct vfu_sq *sq)
{
	unsigned nslots = VH_MIN((unsigned)sq->size, (unsigned)VFU_NVME_SLOTS);

	sq->reqs = calloc(nslots, sizeof(*sq->reqs));
	sq->dsm = aligned_alloc(64, VH_NVME_DSM_MAX_RANGES * sizeof(*sq->dsm));
	if (sq->reqs == NULL || sq->dsm == NULL) {
		free(sq->reqs);
		free(sq->dsm);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nslots; i++) {
		sq->reqs[i].next_free = sq->free;
		sq->free = &sq->reqs[i];
	}
	return 0;
}

void
vfu_sq_free(struct vfu_sq *sq)
{
	free(sq->reqs);
	free(sq->dsm);
	free(sq);
}
