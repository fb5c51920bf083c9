/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The emulated NVMe controller's registers (§3.1) and life cycle: enable (CC.EN 0→1), reset
 * (CC.EN 1→0, DEVICE_RESET, client gone), shutdown notification (CC.SHN), DMA table changes,
 * and the reactor operations everything that touches running queues goes through (nvme.h N3).
 *
 * Threat model: register writes come from the guest through the client (REGION_WRITE); the
 * admin queue addresses and sizes are checked when the controller is enabled, and a bad
 * configuration sets CSTS.CFS (controller fatal status) like a real controller would, instead
 * of failing the vfio-user message. Writes to read-only registers are ignored; accesses that
 * are not naturally aligned 4- or 8-byte ones are refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/log.h"
#include "vfu/nvme.h"

/* CAP: MQES, CQR, TO = 30 (15 s), DSTRD = 0, CSS = NVM, MPSMIN = MPSMAX = 0 (4 KiB). */
#define CAP_VALUE ((uint64_t)VFU_NVME_MQES | (1ull << 16) | (30ull << 24) | (1ull << 37))
#define VS_VALUE  0x00010400u /* NVMe 1.4 */

const struct vfu_dma *
vfu_nvme_dma(const struct vfu_nvme *n)
{
	return n->session != NULL ? &n->session->dma : NULL;
}

void *
vfu_nvme_queue_ptr(struct vfu_nvme *n, uint64_t gpa, uint64_t len)
{
	const struct vfu_dma *d = vfu_nvme_dma(n);

	return d != NULL ? vfu_dma_ptr(d, gpa, len, VFU_DMA_READ | VFU_DMA_WRITE) : NULL;
}

/* ---- reactor operations (N3) ---- */

static void
op_run(void *arg)
{
	struct vfu_rctx *x = arg;

	if (x->n->op_fn(x)) {
		vh_control_post(&x->done_node);
	} else {
		x->op_waits_drain = true; /* vfu_rctx_check_drained finishes it */
	}
}

static void after_op(struct vfu_nvme *n);

static void
op_done(void *arg)
{
	struct vfu_rctx *x = arg;
	struct vfu_nvme *n = x->n;
	struct vfu_session *held = n->op_held;
	vfu_op_done done;

	if (--n->op_pending > 0) {
		return;
	}
	n->op_held = NULL;
	done = n->op_done;
	n->busy = false;
	n->op_fn = NULL;
	n->op_done = NULL;
	/*
	 * Input resumes before done() runs: a new operation done() starts holds it again, and no
	 * message is read in between (we are the control thread).
	 */
	if (held != NULL && held == n->session) {
		vfu_session_release(held);
	}
	if (done != NULL) {
		done(n);
	}
	after_op(n);
	if (n->final != NULL) {
		n->final(n); /* frees the controller: nothing may touch it afterwards */
	}
}

void
vfu_rctx_check_drained(struct vfu_rctx *x)
{
	if (x->op_waits_drain && x->n->op_fn(x)) {
		x->op_waits_drain = false;
		vh_control_post(&x->done_node);
	}
}

void
vfu_nvme_op(struct vfu_nvme *n, unsigned target, vfu_op_fn fn, vfu_op_done done)
{
	n->busy = true;
	n->op_fn = fn;
	n->op_done = done;
	n->op_target = target;
	n->op_pending = target == UINT32_MAX ? n->nrctx : 1;
	n->op_held = n->session;
	if (n->session != NULL) {
		vfu_session_hold(n->session);
	}
	for (unsigned i = 0; i < n->nrctx; i++) {
		if (target == UINT32_MAX || target == i) {
			struct vfu_rctx *x = n->rctx[i];

			vh_msg_node_init(&x->op_node, op_run, x);
			vh_msg_node_init(&x->done_node, op_done, x);
			vh_reactor_post(x->r, &x->op_node);
		}
	}
}

/* ---- enable, reset, shutdown ---- */

static void
free_queues(struct vfu_nvme *n)
{
	for (unsigned i = 1; i <= VFU_NVME_MAX_IOQ; i++) {
		if (n->sqs[i] != NULL) {
			vfu_sq_free(n->sqs[i]);
			n->sqs[i] = NULL;
		}
		if (n->cqs[i] != NULL) {
			free(n->cqs[i]);
			n->cqs[i] = NULL;
		}
	}
	n->nqueues = 0;
}

static void
reset_state(struct vfu_nvme *n)
{
	free_queues(n);
	vfu_nvme_admin_reset(n);
	n->csts = 0;
	n->enabled = false;
	n->fatal = false;
	n->dma_lost = false;
	VH_WRITE_ONCE(n->broken, 0);
	n->shutdown = false;
	n->nsqr = n->ncqr = 0xffff;
	n->dbbuf = n->eventidx = NULL;
	n->dbbuf_gpa = n->eventidx_gpa = 0;
	n->wce = true;
	n->feat_coalesce = 0;
	n->feat_aec = 0;
	n->feat_arb = 0;
	n->feat_pm = 0;
	n->feat_err = 0;
	n->feat_atomic = 0;
	n->feat_temp = 0x0157; /* 343 K over-temperature threshold */
	/* Doorbells go back to 0 with the controller (§7.3.2). */
	memset(n->db_page, 0, VFU_NVME_BAR0_SIZE - VFU_NVME_DB_OFFSET);
}

static void
reset_detached(struct vfu_nvme *n)
{
	vfu_op_done done = n->reset_done;

	n->reset_done = NULL;
	reset_state(n);
	if (done != NULL) {
		done(n);
	}
}

void
vfu_nvme_reset_queues(struct vfu_nvme *n, vfu_op_done done)
{
	n->reset_done = done;
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_detach_all, reset_detached);
}

static void
enable_done(struct vfu_nvme *n)
{
	n->enabled = true;
	n->csts |= VH_NVME_CSTS_RDY;
	VH_LOG_RL(VH_LOG_INFO, n->prefix, "controller enabled (admin queues %u/%u entries)",
	          n->adm.sq_size, n->adm.cq.size);
	/* Commands the guest queued before it saw RDY (it should not) are looked at now. */
	vfu_nvme_admin_kick(n);
}

static void
set_fatal(struct vfu_nvme *n, const char *why)
{
	if (!(n->csts & VH_NVME_CSTS_CFS)) {
		VH_LOG_RL(VH_LOG_ERROR, n->prefix, "controller fatal status: %s", why);
	}
	n->csts |= VH_NVME_CSTS_CFS;
	n->fatal = true;
	VH_WRITE_ONCE(n->broken, 1);
}

static void
enable(struct vfu_nvme *n)
{
	uint32_t cc = n->cc;
	uint16_t asqs = (uint16_t)((n->aqa & 0xfff) + 1);
	uint16_t acqs = (uint16_t)(((n->aqa >> 16) & 0xfff) + 1);

	if (NVME_CC_CSS(cc) != 0 || NVME_CC_MPS(cc) != 0 || NVME_CC_AMS(cc) != 0) {
		set_fatal(n, "unsupported CC (command set, page size or arbitration)");
		return;
	}
	if (asqs < 2 || acqs < 2 || (n->asq & 0xfff) || (n->acq & 0xfff)) {
		set_fatal(n, "admin queue sizes or addresses invalid");
		return;
	}
	vfu_nvme_admin_reset(n);
	n->adm.sq = vfu_nvme_queue_ptr(n, n->asq, (uint64_t)asqs * sizeof(struct vh_nvme_sqe));
	n->adm.cq.ring = vfu_nvme_queue_ptr(n, n->acq, (uint64_t)acqs * sizeof(struct vh_nvme_cqe));
	if (n->adm.sq == NULL || n->adm.cq.ring == NULL) {
		set_fatal(n, "admin queues outside guest memory the client shared");
		return;
	}
	n->adm.sq_size = asqs;
	n->adm.cq.size = acqs;
	vfu_nvme_op(n, 0, vfu_rctx_watch_admin, enable_done);
}

static void
reset_done(struct vfu_nvme *n)
{
	VH_LOG_RL(VH_LOG_INFO, n->prefix, "controller reset");
}

static void
shutdown_done(struct vfu_nvme *n)
{
	/* RDY stays set until the host clears CC.EN (§7.6.2). */
	n->csts = (n->csts & ~VH_NVME_CSTS_SHST_MASK) | VH_NVME_CSTS_SHST_DONE |
	          (n->enabled ? VH_NVME_CSTS_RDY : 0);
	VH_LOG_RL(VH_LOG_INFO, n->prefix, "shutdown complete");
}

static void
shutdown_detached(struct vfu_nvme *n)
{
	bool was = n->enabled;

	reset_state(n);
	n->enabled = was;
	n->shutdown = true;
	shutdown_done(n);
}

static void
cc_write(struct vfu_nvme *n, uint32_t v)
{
	uint32_t old = n->cc;

	if (!NVME_CC_EN(old) && NVME_CC_EN(v)) {
		n->cc = v;
		if (!n->fatal && n->csts == 0) {
			enable(n);
		}
	} else if (NVME_CC_EN(old) && !NVME_CC_EN(v)) {
		n->cc = v;
		/* RDY drops when every queue stopped; the guest polls CSTS meanwhile. */
		vfu_nvme_reset_queues(n, reset_done);
	} else if (NVME_CC_EN(old)) {
		/* Enabled: only a shutdown notification changes anything. */
		if (NVME_CC_SHN(v) != 0 && NVME_CC_SHN(old) == 0) {
			n->cc = (old & ~VH_NVME_CC_SHN_MASK) | (v & VH_NVME_CC_SHN_MASK);
			n->csts = (n->csts & ~VH_NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_OCCURRING;
			vfu_nvme_op(n, UINT32_MAX, vfu_rctx_detach_all, shutdown_detached);
		}
	} else {
		n->cc = v;
	}
}

static void
reg_image(const struct vfu_nvme *n, uint8_t img[NVME_REG_END])
{
	uint64_t cap = CAP_VALUE;
	uint32_t vs = VS_VALUE;

	memset(img, 0, NVME_REG_END);
	memcpy(img + VH_NVME_REG_CAP, &cap, 8);
	memcpy(img + VH_NVME_REG_VS, &vs, 4);
	memcpy(img + VH_NVME_REG_INTMS, &n->intms, 4);
	memcpy(img + VH_NVME_REG_INTMC, &n->intms, 4);
	memcpy(img + VH_NVME_REG_CC, &n->cc, 4);
	memcpy(img + VH_NVME_REG_CSTS, &n->csts, 4);
	memcpy(img + VH_NVME_REG_AQA, &n->aqa, 4);
	memcpy(img + VH_NVME_REG_ASQ, &n->asq, 8);
	memcpy(img + VH_NVME_REG_ACQ, &n->acq, 8);
}

static void
reg_write32(struct vfu_nvme *n, uint64_t off, uint32_t v)
{
	bool en = NVME_CC_EN(n->cc) != 0;

	switch (off) {
	case VH_NVME_REG_INTMS:
		n->intms |= v;
		break;
	case VH_NVME_REG_INTMC:
		n->intms &= ~v;
		break;
	case VH_NVME_REG_CC:
		cc_write(n, v);
		break;
	case VH_NVME_REG_AQA:
		if (!en) {
			n->aqa = v & 0x0fff0fffu;
		}
		break;
	case VH_NVME_REG_ASQ:
	case VH_NVME_REG_ASQ + 4:
	case VH_NVME_REG_ACQ:
	case VH_NVME_REG_ACQ + 4:
		/* Admin queue bases are read at enable; changes while enabled are ignored. */
		if (!en) {
			uint64_t *r = off < VH_NVME_REG_ACQ ? &n->asq : &n->acq;
			unsigned shift = (off & 4) ? 32 : 0;

			*r = (*r & ~(0xffffffffull << shift)) | ((uint64_t)v << shift);
		}
		break;
	default:
		break; /* CAP, VS, CSTS, NSSR (not supported) and reserved: read-only */
	}
}

int
vfu_nvme_bar0_access(struct vfu_nvme *n, uint64_t off, void *buf, uint32_t count, bool write)
{
	if (off >= VFU_NVME_DB_OFFSET) {
		/* The doorbell page through the trapped path (a client that did not mmap it). */
		uint64_t o = off - VFU_NVME_DB_OFFSET;

		if (write) {
			uint32_t v;

			if (count != 4 || (o & 3)) {
				return -EINVAL;
			}
			memcpy(&v, buf, 4);
			VH_WRITE_ONCE(*(uint32_t *)(n->db_page + o), v);
		} else {
			memcpy(buf, n->db_page + o, count);
		}
		return 0;
	}
	if (!write) {
		uint8_t img[NVME_REG_END];

		reg_image(n, img);
		memset(buf, 0, count);
		if (off < NVME_REG_END) {
			memcpy(buf, img + off, VH_MIN((uint64_t)count, NVME_REG_END - off));
		}
		return 0;
	}
	if ((count != 4 && count != 8) || (off & (count - 1))) {
		return -EINVAL;
	}
	for (uint32_t i = 0; i < count; i += 4) {
		uint32_t v;

		memcpy(&v, (uint8_t *)buf + i, 4);
		reg_write32(n, off + i, v);
	}
	return 0;
}

/* ---- fatal errors found by reactors ---- */

static void
fail_run(void *arg)
{
	struct vfu_nvme *n = arg;

	set_fatal(n, "the guest broke a queue (see the reactor's log line)");
}

void
vfu_nvme_fatal(struct vfu_nvme *n, const char *why)
{
	VH_LOG_RL(VH_LOG_ERROR, n->prefix, "%s", why);
	VH_WRITE_ONCE(n->broken, 1);
	vh_control_post(&n->fail_node);
}

/* ---- DMA table changes and device ops ---- */

bool
vfu_nvme_retranslate(struct vfu_nvme *n)
{
	bool ok = true;

	if (n->enabled && n->adm.sq_size > 0) {
		n->adm.sq = vfu_nvme_queue_ptr(n, n->asq, (uint64_t)n->adm.sq_size * 64);
		n->adm.cq.ring = vfu_nvme_queue_ptr(n, n->acq, (uint64_t)n->adm.cq.size * 16);
		ok = n->adm.sq != NULL && n->adm.cq.ring != NULL;
	}
	for (unsigned i = 1; i <= VFU_NVME_MAX_IOQ; i++) {
		struct vfu_sq *sq = n->sqs[i];
		struct vfu_cq *cq = n->cqs[i];

		if (sq != NULL) {
			sq->ring = vfu_nvme_queue_ptr(n, sq->gpa, (uint64_t)sq->size * 64);
			ok = ok && sq->ring != NULL;
		}
		if (cq != NULL) {
			cq->ring = vfu_nvme_queue_ptr(n, cq->gpa, (uint64_t)cq->size * 16);
			ok = ok && cq->ring != NULL;
		}
	}
	if (n->dbbuf_gpa != 0) {
		n->dbbuf = vfu_nvme_queue_ptr(n, n->dbbuf_gpa, VFU_NVME_PAGE);
		n->eventidx = vfu_nvme_queue_ptr(n, n->eventidx_gpa, VFU_NVME_PAGE);
		ok = ok && n->dbbuf != NULL && n->eventidx != NULL;
	}
	return ok;
}

static void
dma_quiesced(struct vfu_nvme *n)
{
	if (n->session != NULL) {
		vfu_session_dma_ready(n->session);
	}
}

int
vfu_nvme_dma_quiesce(void *dev)
{
	struct vfu_nvme *n = dev;

	if (n->nqueues == 0) {
		return 0; /* only the admin queue (control thread) uses guest memory */
	}
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_pause, dma_quiesced);
	return VFU_ASYNC;
}

static void
dma_resumed(struct vfu_nvme *n)
{
	if (n->session != NULL) {
		vfu_session_async_done(n->session, 0);
	}
}

int
vfu_nvme_dma_changed(void *dev)
{
	struct vfu_nvme *n = dev;

	/*
	 * QEMU changes its memory map in transactions (SeaBIOS's PAM writes replace the RAM
	 * section the queues live in with smaller ones: an unmap, then maps). Queues whose memory
	 * is gone wait, fetching nothing, until a later change brings it back; only a reset or
	 * enable with the memory still missing is an error.
	 */
	if (!vfu_nvme_retranslate(n)) {
		if (!n->dma_lost) {
			VH_LOG_RL(VH_LOG_INFO, n->prefix,
			          "queue memory unmapped by the client: queues wait until it is "
			          "mapped again");
		}
		n->dma_lost = true;
		VH_WRITE_ONCE(n->broken, 1);
	} else if (n->dma_lost) {
		n->dma_lost = false;
		VH_WRITE_ONCE(n->broken, n->fatal ? 1 : 0);
		n->admin_pending = true; /* commands may have been queued meanwhile */
	}
	if (n->nqueues == 0) {
		if (n->admin_pending && !n->busy) {
			n->admin_pending = false;
			vfu_nvme_admin_kick(n);
		}
		return 0;
	}
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_resume, dma_resumed);
	return VFU_ASYNC;
}

static void
device_reset_done(struct vfu_nvme *n)
{
	n->cc = 0;
	n->aqa = 0;
	n->asq = n->acq = 0;
	n->intms = 0;
	vfu_nvme_pci_reset(n);
	if (n->session != NULL) {
		vfu_session_async_done(n->session, 0);
	}
}

int
vfu_nvme_device_reset(void *dev)
{
	struct vfu_nvme *n = dev;

	vfu_nvme_reset_queues(n, device_reset_done);
	return VFU_ASYNC;
}

static void
disconnect_done(struct vfu_nvme *n)
{
	struct vfu_session *s = n->session;

	/* No queue runs: nothing can signal the eventfds or touch the memory any more. */
	vfu_nvme_irq_close_all(n);
	for (unsigned i = 0; i < n->nclosing; i++) {
		close(n->closing_fds[i]);
	}
	n->nclosing = 0;
	n->cc = 0;
	n->aqa = 0;
	n->asq = n->acq = 0;
	n->intms = 0;
	vfu_nvme_pci_reset(n);
	n->session = NULL;
	n->disconnect_pending = false;
	vfu_session_disconnected(s);
}

void
vfu_nvme_disconnect(void *dev, struct vfu_session *s)
{
	struct vfu_nvme *n = dev;

	if (n->busy) {
		n->disconnect_pending = true; /* after the operation in progress (after_op) */
		return;
	}
	vfu_nvme_reset_queues(n, disconnect_done);
}

/* Work that waited for the reactor operation in progress. */
static void
after_op(struct vfu_nvme *n)
{
	if (n->busy) {
		return;
	}
	if (n->disconnect_pending) {
		vfu_nvme_reset_queues(n, disconnect_done);
		return;
	}
	if (n->after_op != NULL) {
		void (*fn)(struct vfu_nvme *) = n->after_op;

		n->after_op = NULL;
		fn(n);
		if (n->busy) {
			return;
		}
	}
	if (n->admin_pending) {
		n->admin_pending = false;
		vfu_nvme_admin_kick(n);
	}
}

void
vfu_nvme_ctrlr_init(struct vfu_nvme *n)
{
	vh_msg_node_init(&n->fail_node, fail_run, n);
	vh_msg_node_init(&n->admin_node, vfu_nvme_admin_kick, n);
	n->cc = 0;
	n->aqa = 0;
	n->asq = n->acq = 0;
	n->intms = 0;
	reset_state(n);
}
