/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The mock NVMe controller (see mock_ctrlr.h). Written from the NVMe Base Specification 1.4;
 * behaviour the spec leaves open is chosen to be strict, so driver mistakes show up as errors.
 */
#include <stdlib.h>
#include <string.h>

#include "mock_ctrlr.h"

#define PAGE 4096u

struct mock_ctrlr *
mock_create(void)
{
	struct mock_ctrlr *m = calloc(1, sizeof(*m));

	m->mqes = 1023;
	m->dstrd = 0;
	m->to = 1;
	m->vs = 0x00010400;
	m->mdts = 5;
	m->oncs = VH_NVME_ONCS_DSM | VH_NVME_ONCS_WRITE_ZEROES;
	m->vwc = 1;
	m->max_io_queues = 4;
	m->auto_process = true;
	return m;
}

void
mock_destroy(struct mock_ctrlr *m)
{
	for (unsigned i = 0; i < m->num_ns; i++) {
		free(m->ns[i].data);
	}
	free(m);
}

void
mock_add_ns(struct mock_ctrlr *m, uint32_t nsid, uint64_t nsze, uint32_t lba_shift)
{
	struct mock_ns *ns = &m->ns[m->num_ns++];

	ns->nsid = nsid;
	ns->nsze = nsze;
	ns->lba_shift = lba_shift;
	ns->data = calloc(nsze, 1u << lba_shift);
}

static struct mock_ns *
find_ns(struct mock_ctrlr *m, uint32_t nsid)
{
	for (unsigned i = 0; i < m->num_ns; i++) {
		if (m->ns[i].nsid == nsid) {
			return &m->ns[i];
		}
	}
	return NULL;
}

uint8_t *
mock_ns_data(struct mock_ctrlr *m, uint32_t nsid, uint64_t off)
{
	return find_ns(m, nsid)->data + off;
}

static uint64_t
build_cap(const struct mock_ctrlr *m)
{
	return (uint64_t)m->mqes | (1ull << 16) /* CQR */ | ((uint64_t)m->to << 24) |
	       ((uint64_t)m->dstrd << 32) | (1ull << 37) /* CSS: NVM */;
}

/* ---- CQ posting ----------------------------------------------------------------------------- */

static void
post(struct mock_ctrlr *m, uint16_t cqid, uint16_t sqid, uint16_t cid, uint16_t status,
     uint32_t dw0)
{
	struct mock_cq *cq = &m->cq[cqid];
	struct vh_nvme_cqe e;

	if ((uint16_t)((cq->tail + 1) % cq->size) == cq->head) {
		m->cq_overflows++;
		return;
	}
	e.dw0 = dw0;
	e.dw1 = 0;
	e.sqhd = m->sq[sqid].head;
	e.sqid = sqid;
	e.cid = cid;
	/* Body first, phase tag last: the driver must not see a half-written entry. */
	e.status = (uint16_t)((status << 1) | (cq->phase ^ 1));
	cq->base[cq->tail] = e;
	__atomic_store_n(&cq->base[cq->tail].status, (uint16_t)((status << 1) | cq->phase),
	                 __ATOMIC_RELEASE);
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
		if (cqid != 0) {
			m->phase_flips++;
		}
	}
}

void
mock_post_cqe(struct mock_ctrlr *m, uint16_t cqid, uint16_t sqid, uint16_t cid, uint16_t status)
{
	post(m, cqid, sqid, cid, status, 0);
}

/* ---- PRP walking (§4.3) --------------------------------------------------------------------- */

/* Copy @len bytes between @buf and the memory described by PRP1/PRP2. 0 or an NVMe status. */
static uint16_t
prp_xfer(struct mock_ctrlr *m, uint64_t prp1, uint64_t prp2, uint8_t *buf, size_t len, bool to_host)
{
	uint64_t *list = NULL;
	size_t pos = 0, idx = 0, n;
	uint64_t addr = prp1;

	m->last_prp1 = prp1;
	m->last_prp2 = prp2;
	if ((prp1 & 3) != 0) {
		goto bad;
	}
	n = PAGE - (prp1 % PAGE);
	if (len > n && len - n > PAGE) {
		if (prp2 % 8 != 0 || prp2 == 0) {
			goto bad;
		}
		list = (uint64_t *)(uintptr_t)prp2;
	}
	while (pos < len) {
		n = len - pos < PAGE - (addr % PAGE) ? len - pos : PAGE - (addr % PAGE);
		if (to_host) {
			memcpy((void *)(uintptr_t)addr, buf + pos, n);
		} else {
			memcpy(buf + pos, (void *)(uintptr_t)addr, n);
		}
		pos += n;
		if (pos >= len) {
			break;
		}
		if (list == NULL) {
			addr = prp2;
		} else {
			/* Last entry of a list page chains to the next list when more remains. */
			if (((uintptr_t)&list[idx] % PAGE) == PAGE - 8 && len - pos > PAGE) {
				list = (uint64_t *)(uintptr_t)list[idx];
				idx = 0;
			}
			addr = list[idx++];
		}
		if (addr % PAGE != 0 || addr == 0) {
			goto bad;
		}
	}
	return 0;
bad:
	m->prp_errors++;
	return (VH_NVME_STATUS(0, VH_NVME_SC_INVALID_PRP_OFFSET) | VH_NVME_STATUS_DNR) >> 1;
}

/* ---- admin commands ------------------------------------------------------------------------- */

static uint16_t
sc(unsigned sct, unsigned code, bool dnr)
{
	return (uint16_t)((VH_NVME_STATUS(sct, code) | (dnr ? VH_NVME_STATUS_DNR : 0)) >> 1);
}

static uint16_t
identify(struct mock_ctrlr *m, const struct vh_nvme_sqe *sqe)
{
	static uint8_t page[4096];
	uint32_t maxns = 0;

	memset(page, 0, sizeof(page));
	for (unsigned i = 0; i < m->num_ns; i++) {
		maxns = m->ns[i].nsid > maxns ? m->ns[i].nsid : maxns;
	}
	switch (sqe->cdw10 & 0xff) {
	case VH_NVME_CNS_CTRLR: {
		struct vh_nvme_id_ctrl *id = (void *)page;

		id->vid = 0x1b36;
		memcpy(id->sn, "MOCK0001            ", 20);
		memcpy(id->mn, "vhostd mock controller                  ", 40);
		memcpy(id->fr, "1.0     ", 8);
		id->mdts = m->mdts;
		id->ver = m->vs;
		id->sqes = 0x66;
		id->cqes = 0x44;
		id->nn = maxns;
		id->oncs = m->oncs;
		id->vwc = m->vwc;
		break;
	}
	case VH_NVME_CNS_NS: {
		struct vh_nvme_id_ns *id = (void *)page;
		struct mock_ns *ns = find_ns(m, sqe->nsid);

		if (sqe->nsid == 0 || sqe->nsid > maxns) {
			return sc(0, VH_NVME_SC_INVALID_NS, true);
		}
		if (ns != NULL) {
			id->nsze = id->ncap = id->nuse = ns->nsze;
			id->nlbaf = 0;
			id->flbas = 0;
			id->lbaf[0].lbads = (uint8_t)ns->lba_shift;
			id->lbaf[0].ms = ns->ms;
			id->dlfeat = 1 | 8; /* deallocated blocks read as zeroes */
			id->nguid[0] = (uint8_t)ns->nsid;
		}
		break;
	}
	case VH_NVME_CNS_ACTIVE_NS_LIST: {
		uint32_t *list = (void *)page;
		unsigned k = 0;

		if (m->no_active_list) {
			return sc(0, VH_NVME_SC_INVALID_FIELD, true);
		}
		/* Ascending order, only NSIDs above the one given. */
		for (uint32_t id = sqe->nsid + 1; id <= maxns; id++) {
			if (find_ns(m, id) != NULL) {
				list[k++] = id;
			}
		}
		break;
	}
	default:
		return sc(0, VH_NVME_SC_INVALID_FIELD, true);
	}
	return prp_xfer(m, sqe->prp1, sqe->prp2, page, sizeof(page), true);
}

static uint16_t
create_cq(struct mock_ctrlr *m, const struct vh_nvme_sqe *sqe)
{
	uint16_t qid = sqe->cdw10 & 0xffff, size = (uint16_t)((sqe->cdw10 >> 16) + 1);
	struct mock_cq *cq = &m->cq[qid];

	if (qid == 0 || qid > m->max_io_queues || qid >= MOCK_MAX_QUEUES || cq->created) {
		return sc(1, 0x01, true); /* Invalid Queue Identifier */
	}
	if (size < 2 || size > m->mqes + 1) {
		return sc(1, 0x02, true); /* Invalid Queue Size */
	}
	if (!(sqe->cdw11 & VH_NVME_QUEUE_PC) || sqe->prp1 % PAGE != 0) {
		return sc(0, VH_NVME_SC_INVALID_FIELD, true);
	}
	*cq = (struct mock_cq){.created = true,
	                       .base = (void *)(uintptr_t)sqe->prp1,
	                       .size = size,
	                       .phase = 1,
	                       .pc = true,
	                       .ien = !!(sqe->cdw11 & VH_NVME_CQ_IEN)};
	return 0;
}

static uint16_t
create_sq(struct mock_ctrlr *m, const struct vh_nvme_sqe *sqe)
{
	uint16_t qid = sqe->cdw10 & 0xffff, size = (uint16_t)((sqe->cdw10 >> 16) + 1);
	uint16_t cqid = (uint16_t)(sqe->cdw11 >> 16);

	if (qid == 0 || qid > m->max_io_queues || qid >= MOCK_MAX_QUEUES || m->sq[qid].created) {
		return sc(1, 0x01, true);
	}
	if (cqid >= MOCK_MAX_QUEUES || !m->cq[cqid].created || cqid == 0) {
		return sc(1, 0x00, true); /* Completion Queue Invalid */
	}
	if (size < 2 || size > m->mqes + 1) {
		return sc(1, 0x02, true);
	}
	m->sq[qid] = (struct mock_sq){
	        .created = true, .base = (void *)(uintptr_t)sqe->prp1, .size = size, .cqid = cqid};
	return 0;
}

static uint16_t
admin(struct mock_ctrlr *m, const struct vh_nvme_sqe *sqe, uint32_t *dw0)
{
	uint16_t qid = sqe->cdw10 & 0xffff;
	uint32_t n;

	switch (sqe->opc) {
	case VH_NVME_ADM_IDENTIFY:
		return identify(m, sqe);
	case VH_NVME_ADM_SET_FEATURES:
		if ((sqe->cdw10 & 0xff) != VH_NVME_FEAT_NUM_QUEUES) {
			return sc(0, VH_NVME_SC_INVALID_FIELD, true);
		}
		n = (uint32_t)m->max_io_queues - 1;
		*dw0 = n | (n << 16);
		return 0;
	case VH_NVME_ADM_CREATE_CQ:
		return create_cq(m, sqe);
	case VH_NVME_ADM_CREATE_SQ:
		return create_sq(m, sqe);
	case VH_NVME_ADM_DELETE_SQ:
		if (qid == 0 || qid >= MOCK_MAX_QUEUES || !m->sq[qid].created) {
			return sc(1, 0x01, true);
		}
		m->sq[qid].created = false;
		return 0;
	case VH_NVME_ADM_DELETE_CQ:
		if (qid == 0 || qid >= MOCK_MAX_QUEUES || !m->cq[qid].created) {
			return sc(1, 0x01, true);
		}
		for (unsigned i = 1; i < MOCK_MAX_QUEUES; i++) {
			if (m->sq[i].created && m->sq[i].cqid == qid) {
				return sc(1, 0x0c, true); /* Invalid Queue Deletion */
			}
		}
		m->cq[qid].created = false;
		return 0;
	case VH_NVME_ADM_ABORT:
		*dw0 = 1; /* not aborted */
		return 0;
	default:
		return sc(0, VH_NVME_SC_INVALID_OPCODE, true);
	}
}

/* ---- I/O commands --------------------------------------------------------------------------- */

static uint16_t
rw(struct mock_ns *ns, struct mock_ctrlr *m, const struct vh_nvme_sqe *sqe, bool write)
{
	uint64_t slba = sqe->cdw10 | ((uint64_t)sqe->cdw11 << 32);
	uint32_t nlb = (sqe->cdw12 & 0xffff) + 1;
	size_t len = (size_t)nlb << ns->lba_shift;

	if (slba + nlb > ns->nsze || slba + nlb < slba) {
		return sc(0, VH_NVME_SC_LBA_OUT_OF_RANGE, true);
	}
	if (m->mdts != 0 && len > (PAGE << m->mdts)) {
		return sc(0, VH_NVME_SC_INVALID_FIELD, true);
	}
	return prp_xfer(m, sqe->prp1, sqe->prp2, ns->data + (slba << ns->lba_shift), len, !write);
}

static uint16_t
zero_range(struct mock_ns *ns, uint64_t slba, uint64_t nlb)
{
	if (slba + nlb > ns->nsze || slba + nlb < slba) {
		return sc(0, VH_NVME_SC_LBA_OUT_OF_RANGE, true);
	}
	memset(ns->data + (slba << ns->lba_shift), 0, nlb << ns->lba_shift);
	return 0;
}

static uint16_t
dsm(struct mock_ns *ns, struct mock_ctrlr *m, const struct vh_nvme_sqe *sqe)
{
	struct vh_nvme_dsm_range r[256];
	unsigned nr = (sqe->cdw10 & 0xff) + 1;
	uint16_t st;

	st = prp_xfer(m, sqe->prp1, sqe->prp2, (uint8_t *)r, nr * sizeof(r[0]), false);
	if (st != 0 || !(sqe->cdw11 & VH_NVME_DSM_AD)) {
		return st;
	}
	for (unsigned i = 0; i < nr; i++) {
		st = zero_range(ns, r[i].slba, r[i].nlb);
		if (st != 0) {
			return st;
		}
	}
	return 0;
}

static uint16_t
io(struct mock_ctrlr *m, const struct vh_nvme_sqe *sqe)
{
	struct mock_ns *ns = find_ns(m, sqe->nsid);

	if (ns == NULL) {
		return sc(0, VH_NVME_SC_INVALID_NS, true);
	}
	switch (sqe->opc) {
	case VH_NVME_OPC_READ:
		return rw(ns, m, sqe, false);
	case VH_NVME_OPC_WRITE:
		return rw(ns, m, sqe, true);
	case VH_NVME_OPC_FLUSH:
		return 0;
	case VH_NVME_OPC_WRITE_ZEROES:
		if (!(m->oncs & VH_NVME_ONCS_WRITE_ZEROES)) {
			break;
		}
		return zero_range(ns, sqe->cdw10 | ((uint64_t)sqe->cdw11 << 32),
		                  (sqe->cdw12 & 0xffff) + 1ull);
	case VH_NVME_OPC_DSM:
		if (!(m->oncs & VH_NVME_ONCS_DSM)) {
			break;
		}
		return dsm(ns, m, sqe);
	default:
		break;
	}
	return sc(0, VH_NVME_SC_INVALID_OPCODE, true);
}

static void
execute(struct mock_ctrlr *m, uint16_t qid, const struct vh_nvme_sqe *sqe, uint16_t status)
{
	uint32_t dw0 = 0;

	if (status == 0) {
		status = qid == 0 ? admin(m, sqe, &dw0) : io(m, sqe);
	}
	post(m, m->sq[qid].cqid, qid, sqe->cid, status, dw0);
}

unsigned
mock_process(struct mock_ctrlr *m, uint16_t qid, unsigned max)
{
	struct mock_sq *sq = &m->sq[qid];
	unsigned n = 0;

	while (n < max && sq->created && sq->head != sq->tail && !(m->csts & VH_NVME_CSTS_CFS) &&
	       (m->cc & VH_NVME_CC_EN)) {
		struct vh_nvme_sqe sqe = sq->base[sq->head];
		enum mock_verdict v = MOCK_EXEC;
		uint16_t status = 0;

		sq->head = (uint16_t)((sq->head + 1) % sq->size);
		n++;
		m->opc_count[qid != 0][sqe.opc]++;
		if (m->hook != NULL) {
			v = m->hook(m, qid, &sqe, &status);
		}
		switch (v) {
		case MOCK_EXEC:
			execute(m, qid, &sqe, 0);
			break;
		case MOCK_FAIL:
			post(m, sq->cqid, qid, sqe.cid, status, 0);
			break;
		case MOCK_DROP:
			break;
		case MOCK_HOLD:
			m->held[m->num_held++] = (struct mock_held){qid, sqe};
			break;
		case MOCK_FATAL:
			mock_set_fatal(m);
			break;
		}
	}
	return n;
}

void
mock_release_held(struct mock_ctrlr *m, uint16_t status)
{
	for (unsigned i = 0; i < m->num_held; i++) {
		struct mock_held *h = &m->held[i];

		if (m->sq[h->qid].created) {
			execute(m, h->qid, &h->sqe, status);
		}
	}
	m->num_held = 0;
}

void
mock_set_fatal(struct mock_ctrlr *m)
{
	m->csts |= VH_NVME_CSTS_CFS;
}

/* ---- registers ------------------------------------------------------------------------------ */

static void
cc_write(struct mock_ctrlr *m, uint32_t val)
{
	bool was = m->cc & VH_NVME_CC_EN, en = val & VH_NVME_CC_EN;

	m->cc = val;
	if (!was && en) {
		m->enables++;
		/* §7.6.1: the admin queue comes from AQA/ASQ/ACQ at enable time. */
		m->sq[0] = (struct mock_sq){.created = true,
		                            .base = (void *)(uintptr_t)m->asq,
		                            .size = (uint16_t)((m->aqa & 0xfff) + 1),
		                            .cqid = 0};
		m->cq[0] = (struct mock_cq){.created = true,
		                            .base = (void *)(uintptr_t)m->acq,
		                            .size = (uint16_t)(((m->aqa >> 16) & 0xfff) + 1),
		                            .phase = 1};
		if (!m->never_ready && ((val >> 16) & 0xf) == 6 && ((val >> 20) & 0xf) == 4) {
			m->csts |= VH_NVME_CSTS_RDY;
		}
	} else if (was && !en) {
		/* Controller reset: all queues gone, fatal status cleared. */
		m->disables++;
		memset(m->sq, 0, sizeof(m->sq));
		memset(m->cq, 0, sizeof(m->cq));
		m->num_held = 0;
		m->csts &= ~(VH_NVME_CSTS_RDY | VH_NVME_CSTS_CFS | VH_NVME_CSTS_SHST_MASK);
	}
	if ((val & VH_NVME_CC_SHN_MASK) != 0 && en) {
		m->shutdowns++;
		m->csts = (m->csts & ~VH_NVME_CSTS_SHST_MASK) | VH_NVME_CSTS_SHST_DONE;
	}
}

static void
doorbell(struct mock_ctrlr *m, uint32_t off, uint32_t val)
{
	uint32_t idx = (off - VH_NVME_REG_DBS) / (4u << m->dstrd);
	uint16_t qid = (uint16_t)(idx / 2);

	if ((off - VH_NVME_REG_DBS) % (4u << m->dstrd) != 0 || qid >= MOCK_MAX_QUEUES) {
		m->bad_doorbells++;
		return;
	}
	if (idx % 2 == 1) {
		if (!m->cq[qid].created || val >= m->cq[qid].size) {
			m->bad_doorbells++;
			return;
		}
		m->cq[qid].head = (uint16_t)val;
		m->cq_db_writes[qid]++;
		return;
	}
	if (!m->sq[qid].created || val >= m->sq[qid].size) {
		m->bad_doorbells++;
		return;
	}
	m->sq[qid].tail = (uint16_t)val;
	m->sq_db_writes[qid]++;
	if (m->auto_process || qid == 0) {
		mock_process(m, qid, ~0u);
	}
}

static uint32_t
mock_read32(void *ctx, uint32_t off)
{
	struct mock_ctrlr *m = ctx;

	if (m->removed) {
		return 0xffffffffu;
	}
	m->cap = build_cap(m);
	switch (off) {
	case VH_NVME_REG_CAP:
		return (uint32_t)m->cap;
	case VH_NVME_REG_CAP + 4:
		return (uint32_t)(m->cap >> 32);
	case VH_NVME_REG_VS:
		return m->vs;
	case VH_NVME_REG_CC:
		return m->cc;
	case VH_NVME_REG_CSTS:
		return m->csts;
	case VH_NVME_REG_AQA:
		return m->aqa;
	case VH_NVME_REG_ASQ:
		return (uint32_t)m->asq;
	case VH_NVME_REG_ASQ + 4:
		return (uint32_t)(m->asq >> 32);
	case VH_NVME_REG_ACQ:
		return (uint32_t)m->acq;
	case VH_NVME_REG_ACQ + 4:
		return (uint32_t)(m->acq >> 32);
	default:
		return 0;
	}
}

static void
mock_write32(void *ctx, uint32_t off, uint32_t val)
{
	struct mock_ctrlr *m = ctx;

	if (m->removed) {
		return;
	}
	if (off >= VH_NVME_REG_DBS) {
		if ((m->cc & VH_NVME_CC_EN) && !(m->csts & VH_NVME_CSTS_CFS)) {
			doorbell(m, off, val);
		}
		return;
	}
	switch (off) {
	case VH_NVME_REG_CC:
		cc_write(m, val);
		break;
	case VH_NVME_REG_AQA:
		m->aqa = val;
		break;
	case VH_NVME_REG_ASQ:
		m->asq = (m->asq & ~0xffffffffull) | val;
		break;
	case VH_NVME_REG_ASQ + 4:
		m->asq = (m->asq & 0xffffffffull) | ((uint64_t)val << 32);
		break;
	case VH_NVME_REG_ACQ:
		m->acq = (m->acq & ~0xffffffffull) | val;
		break;
	case VH_NVME_REG_ACQ + 4:
		m->acq = (m->acq & 0xffffffffull) | ((uint64_t)val << 32);
		break;
	default:
		break;
	}
}

const struct vh_nvme_mock_ops mock_ops = {
        .read32 = mock_read32,
        .write32 = mock_write32,
};
