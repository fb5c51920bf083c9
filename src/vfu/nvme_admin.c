/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The admin queue (§5) of the emulated NVMe controller, processed on the control thread.
 *
 * Threat model: the guest writes the admin SQ and the data buffers its commands point to. Each
 * SQ entry is copied out once; every field is checked before use (queue IDs against the
 * granted count, sizes against CAP.MQES, interrupt vectors against the MSI-X table, queue
 * memory against the client's DMA regions, log page offsets and lengths against MDTS); data
 * returned to the guest is built in our memory and copied out through the command's PRPs,
 * which nvme_prp.c bounds. Unknown opcodes, CNS values, log pages and features get the status
 * the spec names, never a crash: an unknown Identify CNS is "Invalid Field in Command" (other
 * targets have been seen answering nothing at all, which hangs the host). A doorbell value out
 * of range makes the controller fatal (CSTS.CFS), which the host answers with a reset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/evloop.h"
#include "core/log.h"
#include "vfu/nvme.h"

#define ADMIN_BATCH 64      /* commands per kick; the rest after other events */
#define ADMIN_ASYNC 0xffffu /* the command completes from a reactor operation */

void
vfu_nvme_admin_reset(struct vfu_nvme *n)
{
	n->adm.sq = NULL;
	n->adm.sq_size = 0;
	n->adm.sq_head = 0;
	memset(&n->adm.cq, 0, sizeof(n->adm.cq));
	n->adm.cq.phase = 1;
	n->adm.waiting = false;
	n->adm.naer = 0;
	n->aen_ns_pending = false;
	n->aen_ns_masked = false;
}

/* ---- completion ---- */

static unsigned
admin_cq_room(struct vfu_nvme *n)
{
	struct vfu_cq *cq = &n->adm.cq;
	uint32_t head = vfu_nvme_db_read(n, 0, true);

	if (head >= cq->size) {
		vfu_nvme_fatal(n, "admin CQ head doorbell out of range");
		return 0;
	}
	cq->head = (uint16_t)head;
	return (unsigned)(cq->size - 1 - (uint16_t)((cq->tail - cq->head + cq->size) % cq->size));
}

static void
admin_post(struct vfu_nvme *n, uint16_t cid, uint16_t status, uint32_t dw0)
{
	struct vfu_cq *cq = &n->adm.cq;
	struct vh_nvme_cqe *e = &cq->ring[cq->tail];

	VH_WRITE_ONCE(e->dw0, dw0);
	VH_WRITE_ONCE(e->dw1, 0);
	VH_WRITE_ONCE(e->sqhd, n->adm.sq_head);
	VH_WRITE_ONCE(e->sqid, 0);
	VH_WRITE_ONCE(e->cid, cid);
	/* The phase bit last: it makes the entry visible (pairs with the host's read of it). */
	VH_STORE_REL(e->status, (uint16_t)((status << 1) | cq->phase));
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
	vfu_nvme_irq(n, 0);
}

/* An outstanding event goes out if an AER waits, the host enabled it and the CQ has room. */
static void
deliver_aen(struct vfu_nvme *n)
{
	uint32_t dw0 = NVME_AER_TYPE_NOTICE | (NVME_AER_INFO_NS_CHANGED << 8) |
	               ((uint32_t)NVME_LOG_CHANGED_NS << 16);

	if (!n->aen_ns_pending || n->aen_ns_masked || !(n->feat_aec & NVME_AEC_NS_ATTR) ||
	    n->adm.naer == 0 || !n->enabled || n->fatal || n->dma_lost || admin_cq_room(n) == 0) {
		return;
	}
	admin_post(n, n->adm.aer_cid[0], NVME_ST_OK, dw0);
	n->adm.naer--;
	memmove(&n->adm.aer_cid[0], &n->adm.aer_cid[1], n->adm.naer * sizeof(n->adm.aer_cid[0]));
	n->aen_ns_pending = false;
	n->aen_ns_masked = true; /* until the host reads the Changed Namespace List */
}

void
vfu_nvme_ns_changed(struct vfu_nvme *n, uint32_t nsid)
{
	bool known = false;

	for (unsigned i = 0; i < n->nns_changed; i++) {
		known = known || n->ns_changed[i] == nsid;
	}
	if (!known && n->nns_changed < VFU_NVME_MAX_NS) {
		n->ns_changed[n->nns_changed++] = nsid;
	}
	n->aen_ns_pending = true;
	deliver_aen(n);
}

/* ---- Identify ---- */

static void
put_str(uint8_t *dst, size_t len, const char *s)
{
	size_t l = strlen(s);

	memset(dst, ' ', len); /* ASCII, space padded, not terminated (§1.5) */
	memcpy(dst, s, VH_MIN(l, len));
}

static void
put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void
put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void
id_ctrl(struct vfu_nvme *n, uint8_t *d)
{
	char sn[32], nqn[256];

	put16(d + 0, 0x4e58);
	put16(d + 2, 0x4e58);
	snprintf(sn, sizeof(sn), "VHOSTD%04x%.10s", n->cntlid, n->name);
	put_str(d + 4, 20, sn);
	put_str(d + 24, 40, "vhostd vfio-user NVMe");
	put_str(d + 64, 8, VH_VERSION);
	d[72] = 6; /* RAB */
	d[77] = VFU_NVME_MDTS;
	put16(d + 78, n->cntlid);
	put32(d + 80, 0x00010400);
	put32(d + 92, 1u << 8);  /* OAES: namespace attribute notices */
	d[111] = 1;              /* CNTRLTYPE: I/O controller */
	put16(d + 256, 1u << 8); /* OACS: Doorbell Buffer Config */
	d[258] = 3;              /* ACL: 4 Aborts */
	d[259] = VFU_NVME_AERL - 1;
	d[260] = 0x03;          /* FRMW: one slot, read-only */
	d[261] = 0x06;          /* LPA: command effects log, extended Get Log Page */
	put16(d + 266, 0x0157); /* WCTEMP 343 K */
	put16(d + 268, 0x0175); /* CCTEMP 373 K */
	d[512] = 0x66;          /* SQES: 64 bytes */
	d[513] = 0x44;          /* CQES: 16 bytes */
	put32(d + 516, VFU_NVME_MAX_NS);
	put16(d + 520, VH_NVME_ONCS_DSM | VH_NVME_ONCS_WRITE_ZEROES);
	/* VWC present; bits 2:1 = 10b: Flush with NSID FFFFFFFFh not supported. */
	d[525] = 0x05;
	put32(d + 536, 0x1); /* SGLS: supported, no alignment requirement */
	snprintf(nqn, sizeof(nqn), "nqn.2026-01.io.vhostd:%s", n->name);
	memcpy(d + 768, nqn, strlen(nqn));
	put16(d + 2048, 2500); /* PSD0: max power 25 W */
}

static void
id_ns(const struct vfu_ns *ns, uint8_t *d)
{
	put64(d + 0, ns->nblocks);
	put64(d + 8, ns->nblocks);
	put64(d + 16, ns->nblocks);
	d[25] = 0;                     /* NLBAF: one format */
	d[26] = 0;                     /* FLBAS: format 0, no metadata */
	d[33] = 0x08;                  /* DLFEAT: Write Zeroes may deallocate */
	memcpy(d + 104, ns->uuid, 16); /* NGUID */
	put32(d + 128, (uint32_t)ns->lbads << 16);
}

static void
id_ns_descs(const struct vfu_ns *ns, uint8_t *d)
{
	d[0] = 0x02; /* NGUID */
	d[1] = 16;
	memcpy(d + 4, ns->uuid, 16);
	d[20] = 0x03; /* UUID */
	d[21] = 16;
	memcpy(d + 24, ns->uuid, 16);
	d[40] = 0x04; /* CSI: NVM */
	d[41] = 1;
	d[44] = 0;
}

static struct vfu_ns *
active_ns(struct vfu_nvme *n, uint32_t nsid)
{
	return nsid >= 1 && nsid <= VFU_NVME_MAX_NS && n->ns[nsid] != NULL && !n->ns[nsid]->removing
	               ? n->ns[nsid]
	               : NULL;
}

static uint16_t
identify(struct vfu_nvme *n, const struct vh_nvme_sqe *c)
{
	uint8_t d[4096];
	uint8_t cns = c->cdw10 & 0xff, csi = (uint8_t)(c->cdw11 >> 24);
	uint32_t nsid = c->nsid;
	struct vfu_ns *ns;

	memset(d, 0, sizeof(d));
	switch (cns) {
	case VH_NVME_CNS_CTRLR:
		id_ctrl(n, d);
		break;
	case VH_NVME_CNS_NS:
	case NVME_CNS_CS_NS:
		if (nsid == 0 || nsid > VFU_NVME_MAX_NS) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_NS);
		}
		if (cns == NVME_CNS_CS_NS && csi != 0) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
		}
		/* An inactive NSID in the valid range reads as zeros (§5.15.2.1). */
		ns = active_ns(n, nsid);
		if (ns != NULL && cns == VH_NVME_CNS_NS) {
			id_ns(ns, d);
		}
		break;
	case VH_NVME_CNS_ACTIVE_NS_LIST: {
		unsigned k = 0;

		if (nsid >= 0xfffffffe) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_NS);
		}
		for (uint32_t i = nsid + 1; i <= VFU_NVME_MAX_NS; i++) {
			if (active_ns(n, i) != NULL) {
				put32(d + 4 * k++, i);
			}
		}
		break;
	}
	case NVME_CNS_NS_DESC_LIST:
		ns = active_ns(n, nsid);
		if (ns == NULL) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_NS);
		}
		id_ns_descs(ns, d);
		break;
	case NVME_CNS_CS_CTRLR:
		/* NVM command set: no limits beyond MDTS, all zero (what Linux asks with VS>=1.1).
		 */
		if (csi != 0) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
		}
		break;
	default:
		VH_LOG_RL(VH_LOG_INFO, n->prefix, "Identify CNS 0x%02x not supported", cns);
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	return vfu_nvme_copy_to_guest(vfu_nvme_dma(n), c, d, sizeof(d));
}

/* ---- Get Log Page ---- */

static void
smart_log(struct vfu_nvme *n, uint8_t *d)
{
	uint64_t ur = 0, uw = 0, hr = 0, hw = 0;

	for (unsigned i = 0; i < n->nrctx; i++) {
		const struct vfu_rctx *x = n->rctx[i];

		ur += VH_READ_ONCE(x->stat_read_bytes);
		uw += VH_READ_ONCE(x->stat_write_bytes);
		hr += VH_READ_ONCE(x->stat_reads);
		hw += VH_READ_ONCE(x->stat_writes);
	}
	put16(d + 1, 0x0141); /* composite temperature 321 K */
	d[3] = 100;           /* available spare */
	d[4] = 10;            /* threshold */
	/* Data units are thousands of 512-byte units, rounded up (§5.14.1.2). */
	put64(d + 32, (ur / 512 + 999) / 1000);
	put64(d + 48, (uw / 512 + 999) / 1000);
	put64(d + 64, hr);
	put64(d + 80, hw);
	put64(d + 112, 1); /* power cycles */
}

static void
effects_log(uint8_t *d)
{
	static const uint8_t admin[] = {0x00, 0x01, 0x02, 0x04, 0x05, 0x06,
	                                0x08, 0x09, 0x0a, 0x0c, 0x7c};
	static const uint8_t io[] = {0x00, 0x01, 0x02, 0x08, 0x09};

	for (size_t i = 0; i < sizeof(admin); i++) {
		put32(d + 4 * admin[i], 1u); /* CSUPP */
	}
	for (size_t i = 0; i < sizeof(io); i++) {
		/* CSUPP; writes, zeroes and deallocation change logical block content (LBCC). */
		put32(d + 1024 + 4 * io[i], io[i] == 0x00 || io[i] == 0x02 ? 1u : 3u);
	}
}

static uint16_t
get_log_page(struct vfu_nvme *n, const struct vh_nvme_sqe *c)
{
	uint8_t lid = c->cdw10 & 0xff;
	bool rae = (c->cdw10 >> 15) & 1;
	uint64_t numd = (((uint64_t)(c->cdw11 & 0xffff) << 16) | (c->cdw10 >> 16)) + 1;
	uint64_t len = numd * 4, off = ((uint64_t)c->cdw13 << 32) | c->cdw12;
	uint8_t log[4096];
	size_t size;
	uint8_t *buf;
	uint16_t st;

	memset(log, 0, sizeof(log));
	switch (lid) {
	case NVME_LOG_ERROR:
		size = 64; /* ELPE = 0: one (empty) entry */
		break;
	case NVME_LOG_SMART:
		size = 512;
		smart_log(n, log);
		break;
	case NVME_LOG_FW_SLOT:
		size = 512;
		log[0] = 1; /* slot 1 active */
		put_str(log + 8, 8, VH_VERSION);
		break;
	case NVME_LOG_CHANGED_NS:
		size = 4096;
		if (n->nns_changed >= VFU_NVME_MAX_NS) {
			put32(log, 0xffffffffu);
		}
		for (unsigned i = 0; i < n->nns_changed && i < VFU_NVME_MAX_NS; i++) {
			put32(log + 4 * i, n->ns_changed[i]);
		}
		break;
	case NVME_LOG_CMD_EFFECTS:
		size = 4096;
		effects_log(log);
		break;
	default:
		return NVME_ST_CMD(NVME_SC_INVALID_LOG_PAGE);
	}
	if ((off & 3) || off >= size || len > VFU_NVME_MAX_XFER) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	/* Bytes past the end of the log read as zeros. */
	buf = calloc(1, len);
	if (buf == NULL) {
		return NVME_ST_GEN(VH_NVME_SC_INTERNAL);
	}
	memcpy(buf, log + off, VH_MIN(len, size - off));
	st = vfu_nvme_copy_to_guest(vfu_nvme_dma(n), c, buf, len);
	free(buf);
	if (st == NVME_ST_OK && lid == NVME_LOG_CHANGED_NS && !rae) {
		/* The host has read every change so far: nothing is pending, events unmasked. */
		n->nns_changed = 0;
		n->aen_ns_masked = false;
		n->aen_ns_pending = false;
	}
	return st;
}

/* ---- features ---- */

static uint16_t
set_features(struct vfu_nvme *n, const struct vh_nvme_sqe *c, uint32_t *dw0)
{
	uint8_t fid = c->cdw10 & 0xff;
	uint32_t v = c->cdw11;

	if (c->cdw10 & (1u << 31)) {
		return NVME_ST_CMD(NVME_SC_FEATURE_NOT_SAVEABLE);
	}
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		n->feat_arb = v;
		break;
	case NVME_FEAT_POWER_MGMT:
		if ((v & 0x1f) != 0) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD); /* one power state */
		}
		n->feat_pm = v;
		break;
	case NVME_FEAT_TEMP_THRESH:
		n->feat_temp = v & 0xffff;
		break;
	case NVME_FEAT_ERROR_RECOVERY:
		if (v & (1u << 16)) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD); /* no DULBE */
		}
		n->feat_err = v;
		break;
	case NVME_FEAT_VOLATILE_WC:
		n->wce = v & 1;
		break;
	case NVME_FEAT_NUM_QUEUES: {
		uint16_t nsq = v & 0xffff, ncq = v >> 16;

		if (nsq == 0xffff || ncq == 0xffff) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
		}
		if (n->nqueues > 0) {
			return NVME_ST_GEN(0x0c); /* Command Sequence Error */
		}
		n->nsqr = VH_MIN(nsq, n->num_ioq - 1);
		n->ncqr = VH_MIN(ncq, n->num_ioq - 1);
		*dw0 = ((uint32_t)n->ncqr << 16) | n->nsqr;
		break;
	}
	case NVME_FEAT_IRQ_COALESCE:
		n->feat_coalesce = v & 0xffff;
		break;
	case NVME_FEAT_IRQ_CONFIG:
		if ((v & 0xffff) >= n->nvec) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
		}
		break;
	case NVME_FEAT_WRITE_ATOMIC:
		n->feat_atomic = v & 1;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		n->feat_aec = v;
		deliver_aen(n);
		break;
	default:
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	return NVME_ST_OK;
}

static uint16_t
get_features(struct vfu_nvme *n, const struct vh_nvme_sqe *c, uint32_t *dw0)
{
	uint8_t fid = c->cdw10 & 0xff, sel = (c->cdw10 >> 8) & 0x7;
	bool def = sel == 1 || sel == 2; /* nothing is saveable: saved = default */
	uint16_t maxq = (uint16_t)(n->num_ioq - 1);

	if (sel > 3) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		*dw0 = def ? 0 : n->feat_arb;
		break;
	case NVME_FEAT_POWER_MGMT:
		*dw0 = def ? 0 : n->feat_pm;
		break;
	case NVME_FEAT_TEMP_THRESH:
		*dw0 = def ? 0x0157 : n->feat_temp;
		break;
	case NVME_FEAT_ERROR_RECOVERY:
		*dw0 = def ? 0 : n->feat_err;
		break;
	case NVME_FEAT_VOLATILE_WC:
		*dw0 = def ? 1 : n->wce;
		break;
	case NVME_FEAT_NUM_QUEUES:
		*dw0 = def || n->nsqr == 0xffff ? ((uint32_t)maxq << 16) | maxq
		                                : ((uint32_t)n->ncqr << 16) | n->nsqr;
		break;
	case NVME_FEAT_IRQ_COALESCE:
		*dw0 = def ? 0 : n->feat_coalesce;
		break;
	case NVME_FEAT_IRQ_CONFIG:
		if ((c->cdw11 & 0xffff) >= n->nvec) {
			return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
		}
		*dw0 = c->cdw11 & 0xffff;
		break;
	case NVME_FEAT_WRITE_ATOMIC:
		*dw0 = def ? 0 : n->feat_atomic;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		*dw0 = def ? 0 : n->feat_aec;
		break;
	default:
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	if (sel == 3) {
		*dw0 = 1u << 2; /* changeable, not saveable, not namespace specific */
	}
	return NVME_ST_OK;
}

/* ---- queue creation and deletion (completed from the reactor operation) ---- */

/*
 * Queues the host may create: what Number of Queues granted, or everything we offer when it
 * never asked (the spec leaves that default to the controller; SeaBIOS creates its I/O queue
 * without asking).
 */
static unsigned
granted(const struct vfu_nvme *n, uint16_t nr)
{
	return nr == 0xffff ? n->num_ioq : nr + 1u;
}

static void admin_finish(struct vfu_nvme *n, uint16_t status, uint32_t dw0);

static void
cq_attached(struct vfu_nvme *n)
{
	struct vfu_cq *cq = n->op_cq;

	n->cqs[cq->id] = cq;
	n->nqueues++;
	admin_finish(n, NVME_ST_OK, 0);
}

static uint16_t
create_cq(struct vfu_nvme *n, const struct vh_nvme_sqe *c)
{
	uint16_t qid = c->cdw10 & 0xffff, size = (uint16_t)((c->cdw10 >> 16) + 1);
	uint16_t iv = c->cdw11 >> 16;
	struct vfu_cq *cq;

	if (qid == 0 || qid > granted(n, n->ncqr) || n->cqs[qid] != NULL) {
		return NVME_ST_CMD(NVME_SC_QID_INVALID);
	}
	if ((c->cdw10 >> 16) == 0 || (c->cdw10 >> 16) > VFU_NVME_MQES) {
		return NVME_ST_CMD(NVME_SC_QUEUE_SIZE_INVALID);
	}
	if (!(c->cdw11 & VH_NVME_QUEUE_PC) || NVME_PSDT(c->fuse_psdt) != 0) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD); /* CAP.CQR: contiguous only */
	}
	if ((c->cdw11 & VH_NVME_CQ_IEN) && iv >= n->nvec) {
		return NVME_ST_CMD(NVME_SC_INVALID_VECTOR);
	}
	if (c->prp1 & (VFU_NVME_PAGE - 1)) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_PRP_OFFSET);
	}
	cq = calloc(1, sizeof(*cq));
	if (cq == NULL) {
		return NVME_ST_GEN(VH_NVME_SC_INTERNAL);
	}
	cq->id = qid;
	cq->size = size;
	cq->gpa = c->prp1;
	cq->ring = vfu_nvme_queue_ptr(n, c->prp1, (uint64_t)size * sizeof(struct vh_nvme_cqe));
	cq->phase = 1;
	cq->ien = (c->cdw11 & VH_NVME_CQ_IEN) != 0;
	cq->iv = iv;
	cq->rctx = n->rctx[(qid - 1) % n->nrctx];
	if (cq->ring == NULL) {
		free(cq);
		return NVME_ST_GEN(VH_NVME_SC_DATA_XFER_ERROR);
	}
	n->op_cq = cq;
	vfu_nvme_op(n, cq->rctx->idx, vfu_rctx_attach_cq, cq_attached);
	return ADMIN_ASYNC;
}

static void
sq_attached(struct vfu_nvme *n)
{
	struct vfu_sq *sq = n->op_sq;

	n->sqs[sq->id] = sq;
	n->nqueues++;
	admin_finish(n, NVME_ST_OK, 0);
}

static uint16_t
create_sq(struct vfu_nvme *n, const struct vh_nvme_sqe *c)
{
	uint16_t qid = c->cdw10 & 0xffff, size = (uint16_t)((c->cdw10 >> 16) + 1);
	uint16_t cqid = c->cdw11 >> 16;
	struct vfu_sq *sq;
	struct vfu_cq *cq;

	if (qid == 0 || qid > granted(n, n->nsqr) || n->sqs[qid] != NULL) {
		return NVME_ST_CMD(NVME_SC_QID_INVALID);
	}
	if ((c->cdw10 >> 16) == 0 || (c->cdw10 >> 16) > VFU_NVME_MQES) {
		return NVME_ST_CMD(NVME_SC_QUEUE_SIZE_INVALID);
	}
	cq = cqid >= 1 && cqid <= VFU_NVME_MAX_IOQ ? n->cqs[cqid] : NULL;
	if (cq == NULL) {
		return NVME_ST_CMD(NVME_SC_CQ_INVALID);
	}
	if (!(c->cdw11 & VH_NVME_QUEUE_PC) || NVME_PSDT(c->fuse_psdt) != 0) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	if (c->prp1 & (VFU_NVME_PAGE - 1)) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_PRP_OFFSET);
	}
	sq = calloc(1, sizeof(*sq));
	if (sq == NULL) {
		return NVME_ST_GEN(VH_NVME_SC_INTERNAL);
	}
	sq->id = qid;
	sq->size = size;
	sq->cqid = cqid;
	sq->gpa = c->prp1;
	sq->ring = vfu_nvme_queue_ptr(n, c->prp1, (uint64_t)size * sizeof(struct vh_nvme_sqe));
	sq->cq = cq;
	sq->rctx = cq->rctx; /* an SQ runs where its CQ is: completions stay on one thread */
	if (sq->ring == NULL) {
		free(sq);
		return NVME_ST_GEN(VH_NVME_SC_DATA_XFER_ERROR);
	}
	if (vfu_sq_alloc(sq) < 0) {
		free(sq);
		return NVME_ST_GEN(VH_NVME_SC_INTERNAL);
	}
	cq->nsq++;
	n->op_sq = sq;
	vfu_nvme_op(n, sq->rctx->idx, vfu_rctx_attach_sq, sq_attached);
	return ADMIN_ASYNC;
}

static void
sq_detached(struct vfu_nvme *n)
{
	struct vfu_sq *sq = n->op_sq;

	n->sqs[sq->id] = NULL;
	sq->cq->nsq--;
	n->nqueues--;
	vfu_sq_free(sq);
	admin_finish(n, NVME_ST_OK, 0);
}

static uint16_t
delete_sq(struct vfu_nvme *n, const struct vh_nvme_sqe *c)
{
	uint16_t qid = c->cdw10 & 0xffff;
	struct vfu_sq *sq = qid >= 1 && qid <= VFU_NVME_MAX_IOQ ? n->sqs[qid] : NULL;

	if (sq == NULL) {
		return NVME_ST_CMD(NVME_SC_QID_INVALID);
	}
	/* In-flight commands complete (into the still existing CQ) before the deletion does. */
	n->op_sq = sq;
	vfu_nvme_op(n, sq->rctx->idx, vfu_rctx_detach_sq, sq_detached);
	return ADMIN_ASYNC;
}

static void
cq_detached(struct vfu_nvme *n)
{
	struct vfu_cq *cq = n->op_cq;

	n->cqs[cq->id] = NULL;
	n->nqueues--;
	free(cq);
	admin_finish(n, NVME_ST_OK, 0);
}

static uint16_t
delete_cq(struct vfu_nvme *n, const struct vh_nvme_sqe *c)
{
	uint16_t qid = c->cdw10 & 0xffff;
	struct vfu_cq *cq = qid >= 1 && qid <= VFU_NVME_MAX_IOQ ? n->cqs[qid] : NULL;

	if (cq == NULL) {
		return NVME_ST_CMD(NVME_SC_QID_INVALID);
	}
	if (cq->nsq > 0) {
		return NVME_ST_CMD(NVME_SC_QUEUE_DELETION_INVALID);
	}
	n->op_cq = cq;
	vfu_nvme_op(n, cq->rctx->idx, vfu_rctx_detach_cq, cq_detached);
	return ADMIN_ASYNC;
}

/* ---- Doorbell Buffer Config (shadow doorbells, §5.8) ---- */

static void
dbbuf_resumed(struct vfu_nvme *n)
{
	admin_finish(n, NVME_ST_OK, 0);
}

static void
dbbuf_paused(struct vfu_nvme *n)
{
	const struct vh_nvme_sqe *c = &n->adm.cmd;

	n->dbbuf_gpa = c->prp1;
	n->eventidx_gpa = c->prp2;
	n->dbbuf = vfu_nvme_queue_ptr(n, c->prp1, VFU_NVME_PAGE);
	n->eventidx = vfu_nvme_queue_ptr(n, c->prp2, VFU_NVME_PAGE);
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_resume, dbbuf_resumed);
}

static uint16_t
dbbuf_config(struct vfu_nvme *n, const struct vh_nvme_sqe *c)
{
	if (c->prp1 == 0 || c->prp2 == 0 || (c->prp1 & (VFU_NVME_PAGE - 1)) ||
	    (c->prp2 & (VFU_NVME_PAGE - 1)) || NVME_PSDT(c->fuse_psdt) != 0 ||
	    vfu_nvme_queue_ptr(n, c->prp1, VFU_NVME_PAGE) == NULL ||
	    vfu_nvme_queue_ptr(n, c->prp2, VFU_NVME_PAGE) == NULL) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	if (n->nqueues == 0) {
		n->dbbuf_gpa = c->prp1;
		n->eventidx_gpa = c->prp2;
		n->dbbuf = vfu_nvme_queue_ptr(n, c->prp1, VFU_NVME_PAGE);
		n->eventidx = vfu_nvme_queue_ptr(n, c->prp2, VFU_NVME_PAGE);
		return NVME_ST_OK;
	}
	/* Running queues switch doorbells only while paused (N4). */
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_pause, dbbuf_paused);
	return ADMIN_ASYNC;
}

/* ---- dispatch ---- */

static uint16_t
admin_cmd(struct vfu_nvme *n, const struct vh_nvme_sqe *c, uint32_t *dw0, bool *no_cqe)
{
	if (NVME_FUSE(c->fuse_psdt) != 0) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	/* Admin commands use PRPs (§4.2: SGLs are for I/O commands on PCIe). */
	if (NVME_PSDT(c->fuse_psdt) != 0) {
		return NVME_ST_GEN(VH_NVME_SC_INVALID_FIELD);
	}
	switch (c->opc) {
	case VH_NVME_ADM_IDENTIFY:
		return identify(n, c);
	case NVME_ADM_GET_LOG_PAGE:
		return get_log_page(n, c);
	case VH_NVME_ADM_SET_FEATURES:
		return set_features(n, c, dw0);
	case VH_NVME_ADM_GET_FEATURES:
		return get_features(n, c, dw0);
	case VH_NVME_ADM_CREATE_CQ:
		return create_cq(n, c);
	case VH_NVME_ADM_CREATE_SQ:
		return create_sq(n, c);
	case VH_NVME_ADM_DELETE_SQ:
		return delete_sq(n, c);
	case VH_NVME_ADM_DELETE_CQ:
		return delete_cq(n, c);
	case VH_NVME_ADM_ABORT:
		*dw0 = 1; /* not aborted: commands in flight are in the back-end's hands */
		return NVME_ST_OK;
	case NVME_ADM_ASYNC_EVENT:
		if (n->adm.naer == VFU_NVME_AERL) {
			return NVME_ST_CMD(NVME_SC_AER_LIMIT);
		}
		n->adm.aer_cid[n->adm.naer++] = c->cid;
		*no_cqe = true; /* completes when an event happens */
		return NVME_ST_OK;
	case NVME_ADM_DBBUF_CONFIG:
		return dbbuf_config(n, c);
	default:
		VH_LOG_RL(VH_LOG_INFO, n->prefix, "admin opcode 0x%02x not supported", c->opc);
		return NVME_ST_GEN(VH_NVME_SC_INVALID_OPCODE);
	}
}

/* A command that waited for a reactor operation is done: complete it and go on. */
static void
admin_finish(struct vfu_nvme *n, uint16_t status, uint32_t dw0)
{
	n->adm.waiting = false;
	if (n->enabled && n->adm.cq.ring != NULL) {
		admin_post(n, n->adm.cmd.cid, status, dw0);
	}
	vfu_nvme_admin_kick(n);
}

void
vfu_nvme_admin_kick(void *arg)
{
	struct vfu_nvme *n = arg;

	if (n->busy || n->frozen) {
		/* After the operation (nvme_ctrlr.c after_op), or the upgrade's thaw or commit. */
		n->admin_pending = true;
		return;
	}
	for (unsigned i = 0; i < ADMIN_BATCH; i++) {
		uint32_t tail, dw0 = 0;
		bool no_cqe = false;
		uint16_t st;

		if (!n->enabled || n->fatal || n->shutdown || n->adm.waiting || n->busy ||
		    n->dma_lost || n->adm.sq == NULL) {
			return;
		}
		tail = vfu_nvme_db_read(n, 0, false);
		if (tail >= n->adm.sq_size) {
			vfu_nvme_fatal(n, "admin SQ tail doorbell out of range");
			return;
		}
		if (tail == n->adm.sq_head || admin_cq_room(n) == 0) {
			deliver_aen(n);
			return;
		}
		/* Read the entry once; everything below looks at the copy only. */
		memcpy(&n->adm.cmd, (const void *)&n->adm.sq[n->adm.sq_head], sizeof(n->adm.cmd));
		n->adm.sq_head = (uint16_t)((n->adm.sq_head + 1) % n->adm.sq_size);
		st = admin_cmd(n, &n->adm.cmd, &dw0, &no_cqe);
		if (st == ADMIN_ASYNC) {
			n->adm.waiting = true; /* admin_finish() completes it */
			return;
		}
		if (!no_cqe) {
			admin_post(n, n->adm.cmd.cid, st, dw0);
		} else {
			deliver_aen(n);
		}
	}
	/* More may be waiting: look again after other events. */
	vh_control_post(&n->admin_node);
}
