/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe controller bring-up, identify, queue creation, health, reset and shutdown.
 *
 * Trust: register values and identify data come from a semi-trusted device: every size and count
 * taken from them is clamped (queue sizes by what we asked for, namespace lists by their page,
 * LBA format indices by nlbaf) before use.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bdev/nvme/ctrlr.h"
#include "core/log.h"

#define COMP "nvme"

#define CSTS_REMOVED        0xffffffffu
#define NVME_VS_1_1         0x00010100u
#define MAX_NAMESPACES      1024
#define SHUTDOWN_TIMEOUT_NS (5ull * 1000000000ull)

static const struct vh_nvme_ctrlr_opts default_opts = {
        .num_io_queues = 1,
        .io_queue_depth = 256,
        .admin_queue_depth = 32,
        .io_timeout_ms = 30000,
        .admin_timeout_ms = 10000,
        .health_interval_us = 100000,
        .max_retries = 3,
};

static uint64_t
cnow(const struct vh_nvme_ctrlr *c)
{
	return c->opts.now_ns ? c->opts.now_ns() : vh_now_ns();
}

/* Back off while waiting for the device: spin briefly, then sleep 100 µs per round. */
static void
wait_a_bit(unsigned *round)
{
	struct timespec ts = {0, 100000};

	if (++*round < 1000) {
		vh_cpu_relax();
		return;
	}
	nanosleep(&ts, NULL);
}

static const char *
cname(const struct vh_nvme_ctrlr *c)
{
	return c->dev->bdf[0] ? c->dev->bdf : "mock";
}

int
vh_nvme_ctrlr_check_health(struct vh_nvme_ctrlr *c)
{
	uint32_t csts = vh_nvme_mmio_read32(c->dev, VH_NVME_REG_CSTS);

	if (csts == CSTS_REMOVED) {
		__atomic_store_n(&c->state, VH_NVME_CTRLR_REMOVED, __ATOMIC_RELAXED);
		return -ENODEV;
	}
	return (csts & VH_NVME_CSTS_CFS) ? -EIO : 0;
}

void
vh_nvme_ctrlr_notify(struct vh_nvme_ctrlr *c, enum vh_nvme_event ev)
{
	/* One FATAL/TIMEOUT report until the reset clears the flag (relaxed: only a filter). */
	if (ev != VH_NVME_EV_REMOVED &&
	    __atomic_exchange_n(&c->event_pending, 1, __ATOMIC_RELAXED) != 0) {
		return;
	}
	if (c->opts.event_cb != NULL) {
		c->opts.event_cb(c, ev, c->opts.event_arg);
	}
}

/* §3.1.6: wait for CSTS.RDY to equal @rdy within CAP.TO. */
static int
wait_ready(struct vh_nvme_ctrlr *c, bool rdy)
{
	uint64_t deadline = cnow(c) + c->ready_timeout_ns;
	unsigned round = 0;

	for (;;) {
		uint32_t csts = vh_nvme_mmio_read32(c->dev, VH_NVME_REG_CSTS);

		if (csts == CSTS_REMOVED) {
			return -ENODEV;
		}
		if (!!(csts & VH_NVME_CSTS_RDY) == rdy) {
			return 0;
		}
		/* CFS while enabling: the controller will not become ready (§7.6.1). */
		if (rdy && (csts & VH_NVME_CSTS_CFS)) {
			return -EIO;
		}
		if (cnow(c) > deadline) {
			VH_ERR(COMP,
			       "[%s] CSTS.RDY did not become %d within CAP.TO (%" PRIu64 " ms)",
			       cname(c), rdy, c->ready_timeout_ns / 1000000);
			return -ETIMEDOUT;
		}
		wait_a_bit(&round);
	}
}

/* §7.6.1 step 1 / §3.1.5: clear CC.EN and wait for the controller to report not ready. */
static int
disable(struct vh_nvme_ctrlr *c)
{
	uint32_t cc = vh_nvme_mmio_read32(c->dev, VH_NVME_REG_CC);
	uint32_t csts = vh_nvme_mmio_read32(c->dev, VH_NVME_REG_CSTS);
	int ret;

	if (cc == CSTS_REMOVED || csts == CSTS_REMOVED) {
		return -ENODEV;
	}
	/*
	 * Clearing EN while an enable is still in progress (EN=1, RDY=0) is not well defined for
	 * every controller; let the enable finish first unless the controller already failed.
	 */
	if ((cc & VH_NVME_CC_EN) && !(csts & VH_NVME_CSTS_RDY) && !(csts & VH_NVME_CSTS_CFS)) {
		ret = wait_ready(c, true);
		if (ret == -ENODEV) {
			return ret;
		}
	}
	if (cc & VH_NVME_CC_EN) {
		vh_nvme_mmio_write32(c->dev, VH_NVME_REG_CC, cc & ~VH_NVME_CC_EN);
	}
	return wait_ready(c, false);
}

/* §7.6.1 steps 3-6: admin queue registers, CC, then enable. */
static int
enable(struct vh_nvme_ctrlr *c)
{
	struct vh_nvme_qpair *aq = c->adminq;
	uint16_t d = vh_nvme_qpair_depth(aq);
	uint32_t cc;

	vh_nvme_mmio_write32(c->dev, VH_NVME_REG_AQA, VH_NVME_AQA(d, d));
	vh_nvme_mmio_write64(c->dev, VH_NVME_REG_ASQ, vh_nvme_qpair_sq_iova(aq));
	vh_nvme_mmio_write64(c->dev, VH_NVME_REG_ACQ, vh_nvme_qpair_cq_iova(aq));
	/* NVM command set, round robin, 4 KiB pages, 64-byte SQEs (2^6) and 16-byte CQEs (2^4). */
	cc = (0u << VH_NVME_CC_CSS_SHIFT) | (0u << VH_NVME_CC_MPS_SHIFT) |
	     (0u << VH_NVME_CC_AMS_SHIFT) | (6u << VH_NVME_CC_IOSQES_SHIFT) |
	     (4u << VH_NVME_CC_IOCQES_SHIFT);
	vh_nvme_mmio_write32(c->dev, VH_NVME_REG_CC, cc);
	/* The queue memory and registers above must be in place before EN starts the device. */
	vh_nvme_io_wmb();
	vh_nvme_mmio_write32(c->dev, VH_NVME_REG_CC, cc | VH_NVME_CC_EN);
	return wait_ready(c, true);
}

/*
 * One synchronous admin command. Heap-allocated because a command that timed out may still
 * complete (or be failed by a reset) after admin_sync() returned: then the callback frees it.
 */
struct admin_wait {
	bool done;
	bool abandoned;
	int status;
	struct vh_nvme_cqe cqe;
};

static void
admin_done(void *arg, int status, const struct vh_nvme_cqe *cqe)
{
	struct admin_wait *w = arg;

	if (w->abandoned) {
		free(w);
		return;
	}
	if (cqe != NULL) {
		w->cqe = *cqe;
	}
	w->status = status;
	w->done = true;
}

int
vh_nvme_ctrlr_admin_sync(struct vh_nvme_ctrlr *c, struct vh_nvme_sqe *sqe, struct vh_nvme_cqe *cqe)
{
	uint64_t deadline = cnow(c) + c->opts.admin_timeout_ms * 1000000ull;
	struct admin_wait *w;
	unsigned round = 0;
	int ret;

	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return -ENOMEM;
	}
	ret = vh_nvme_qpair_submit_raw(c->adminq, sqe, admin_done, w);
	if (ret < 0) {
		free(w);
		return ret;
	}
	vh_nvme_qpair_ring(c->adminq);
	for (;;) {
		vh_nvme_qpair_poll(c->adminq, 1);
		if (w->done) {
			break;
		}
		if (vh_nvme_ctrlr_check_health(c) == -ENODEV) {
			vh_nvme_qpair_fail_all(c->adminq, -ENODEV); /* completes w */
			break;
		}
		if (cnow(c) > deadline) {
			/* The slot stays busy until a reset reclaims it; the callback frees w. */
			VH_ERR(COMP, "[%s] admin command 0x%x timed out", cname(c), sqe->opc);
			w->abandoned = true;
			return -ETIMEDOUT;
		}
		wait_a_bit(&round);
	}
	if (cqe != NULL) {
		*cqe = w->cqe;
	}
	ret = w->status;
	free(w);
	return ret;
}

static int
identify(struct vh_nvme_ctrlr *c, uint8_t cns, uint32_t nsid)
{
	struct vh_nvme_sqe sqe = {
	        .opc = VH_NVME_ADM_IDENTIFY,
	        .nsid = nsid,
	        .prp1 = c->scratch.iova,
	        .cdw10 = cns,
	};

	memset(c->scratch.vaddr, 0, 4096);
	return vh_nvme_ctrlr_admin_sync(c, &sqe, NULL);
}

static int
identify_ctrlr(struct vh_nvme_ctrlr *c)
{
	const struct vh_nvme_id_ctrl *id = c->scratch.vaddr;
	uint64_t mdts_bytes;
	int ret;

	ret = identify(c, VH_NVME_CNS_CTRLR, 0);
	if (ret < 0) {
		VH_ERR(COMP, "[%s] Identify Controller failed: %s", cname(c), strerror(-ret));
		return ret;
	}
	c->cdata = *id;
	/* MDTS is in units of the minimum page size, 2^(12 + CAP.MPSMIN), and 0 means unlimited. */
	c->max_xfer = VH_NVME_MAX_XFER;
	if (id->mdts != 0 && id->mdts < 20) {
		mdts_bytes = (4096ull << VH_NVME_CAP_MPSMIN(c->cap)) << id->mdts;
		c->max_xfer = (uint32_t)VH_MIN(mdts_bytes, (uint64_t)VH_NVME_MAX_XFER);
	}
	VH_INFO(COMP, "[%s] %.40s fw %.8s, %u namespaces, max transfer %u KiB", cname(c), id->mn,
	        id->fr, id->nn, c->max_xfer / 1024);
	return 0;
}

/* Fill @ns from the Identify Namespace data in scratch. 0, or 1 to skip it. */
static int
parse_ns(struct vh_nvme_ctrlr *c, uint32_t nsid, struct vh_nvme_ns *ns)
{
	const struct vh_nvme_id_ns *id = c->scratch.vaddr;
	unsigned fmt = VH_NVME_FLBAS_INDEX(id->flbas);
	const struct vh_nvme_lbaf *lbaf;

	if (id->nsze == 0) {
		return 1; /* inactive */
	}
	if (fmt > id->nlbaf || fmt >= 16) {
		VH_WARN(COMP, "[%s] ns %u: LBA format %u beyond nlbaf, skipped", cname(c), nsid,
		        fmt);
		return 1;
	}
	lbaf = &id->lbaf[fmt];
	if (lbaf->lbads < 9 || lbaf->lbads > 16 || lbaf->ms != 0) {
		VH_WARN(COMP,
		        "[%s] ns %u: %u-byte blocks with %u metadata bytes unsupported, skipped",
		        cname(c), nsid, lbaf->lbads < 32 ? 1u << lbaf->lbads : 0, lbaf->ms);
		return 1;
	}
	ns->nsid = nsid;
	ns->nsze = id->nsze;
	ns->lba_shift = lbaf->lbads;
	ns->dlfeat = id->dlfeat;
	memcpy(ns->nguid, id->nguid, sizeof(ns->nguid));
	memcpy(ns->eui64, id->eui64, sizeof(ns->eui64));
	return 0;
}

static int
add_ns(struct vh_nvme_ctrlr *c, uint32_t nsid)
{
	int ret;

	if (c->num_ns >= MAX_NAMESPACES) {
		return 0;
	}
	ret = identify(c, VH_NVME_CNS_NS, nsid);
	if (ret < 0) {
		VH_ERR(COMP, "[%s] Identify Namespace %u failed: %s", cname(c), nsid,
		       strerror(-ret));
		return ret;
	}
	if (parse_ns(c, nsid, &c->ns[c->num_ns]) == 0) {
		c->num_ns++;
	}
	return 0;
}

/* §5.15.2.3 (CNS 02h): active NSIDs above @after, ascending, 0-terminated, 1024 per page. */
static int
scan_active_list(struct vh_nvme_ctrlr *c)
{
	uint32_t list[1024], after = 0, i;
	int ret;

	for (;;) {
		ret = identify(c, VH_NVME_CNS_ACTIVE_NS_LIST, after);
		if (ret < 0) {
			return ret;
		}
		memcpy(list, c->scratch.vaddr, sizeof(list));
		for (i = 0; i < 1024 && list[i] != 0; i++) {
			/* Out of order or out of range: a buggy list, stop rather than loop. */
			if (list[i] <= after || list[i] > c->cdata.nn) {
				return 0;
			}
			ret = add_ns(c, list[i]);
			if (ret < 0) {
				return ret;
			}
			after = list[i];
		}
		if (i < 1024 || c->num_ns >= MAX_NAMESPACES) {
			return 0;
		}
	}
}

static int
scan_namespaces(struct vh_nvme_ctrlr *c)
{
	uint32_t nn = VH_MIN(c->cdata.nn, (uint32_t)MAX_NAMESPACES);
	int ret;

	free(c->ns);
	c->num_ns = 0;
	c->ns = calloc(VH_MAX(nn, 1u), sizeof(*c->ns));
	if (c->ns == NULL) {
		return -ENOMEM;
	}
	if (c->vs >= NVME_VS_1_1) {
		ret = scan_active_list(c);
		if (ret != -EINVAL && ret != -EOPNOTSUPP) {
			return ret;
		}
		c->num_ns = 0; /* CNS 2 unsupported after all: fall back to probing */
	}
	for (uint32_t nsid = 1; nsid <= nn; nsid++) {
		ret = add_ns(c, nsid);
		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

/* §5.21.1.7: ask for @want I/O queue pairs; returns how many we may create. */
static int
set_num_queues(struct vh_nvme_ctrlr *c, uint16_t want)
{
	struct vh_nvme_sqe sqe = {
	        .opc = VH_NVME_ADM_SET_FEATURES,
	        .cdw10 = VH_NVME_FEAT_NUM_QUEUES,
	        .cdw11 = ((uint32_t)(want - 1) << 16) | (uint32_t)(want - 1),
	};
	struct vh_nvme_cqe cqe;
	uint32_t nsqa, ncqa;
	int ret;

	ret = vh_nvme_ctrlr_admin_sync(c, &sqe, &cqe);
	if (ret < 0) {
		VH_ERR(COMP, "[%s] Set Features (Number of Queues) failed: %s", cname(c),
		       strerror(-ret));
		return ret;
	}
	nsqa = (cqe.dw0 & 0xffff) + 1;
	ncqa = (cqe.dw0 >> 16) + 1;
	return (int)VH_MIN(VH_MIN(nsqa, ncqa), (uint32_t)want);
}

/* §5.3 / §5.4: a CQ first, then the SQ that posts to it; polled, so no interrupts. */
static int
create_io_queue(struct vh_nvme_ctrlr *c, struct vh_nvme_qpair *qp)
{
	uint16_t qid = vh_nvme_qpair_id(qp), d = vh_nvme_qpair_depth(qp);
	struct vh_nvme_sqe cq = {
	        .opc = VH_NVME_ADM_CREATE_CQ,
	        .prp1 = vh_nvme_qpair_cq_iova(qp),
	        .cdw10 = ((uint32_t)(d - 1) << 16) | qid,
	        .cdw11 = VH_NVME_QUEUE_PC,
	};
	struct vh_nvme_sqe sq = {
	        .opc = VH_NVME_ADM_CREATE_SQ,
	        .prp1 = vh_nvme_qpair_sq_iova(qp),
	        .cdw10 = ((uint32_t)(d - 1) << 16) | qid,
	        .cdw11 = ((uint32_t)qid << 16) | VH_NVME_QUEUE_PC,
	};
	int ret;

	ret = vh_nvme_ctrlr_admin_sync(c, &cq, NULL);
	if (ret == 0) {
		ret = vh_nvme_ctrlr_admin_sync(c, &sq, NULL);
	}
	if (ret < 0) {
		VH_ERR(COMP, "[%s] creating I/O queue %u failed: %s", cname(c), qid,
		       strerror(-ret));
	}
	return ret;
}

static int
create_io_qpairs(struct vh_nvme_ctrlr *c, uint16_t n)
{
	struct vh_nvme_qpair_opts qo = {
	        .depth = c->io_queue_depth,
	        .max_xfer = c->max_xfer,
	        .bounce_pages = c->opts.bounce_pages ? c->opts.bounce_pages
	                                             : 2 * (c->max_xfer / VH_NVME_PAGE_SIZE + 1),
	        .timeout_ns = c->opts.io_timeout_ms * 1000000ull,
	        .max_retries = c->opts.max_retries,
	};
	int ret;

	c->ioq = calloc(n, sizeof(*c->ioq));
	if (c->ioq == NULL) {
		return -ENOMEM;
	}
	for (uint16_t i = 0; i < n; i++) {
		qo.qid = (uint16_t)(i + 1);
		ret = vh_nvme_qpair_create(c, &qo, &c->ioq[i]);
		if (ret == 0) {
			c->num_io_queues++;
			ret = create_io_queue(c, c->ioq[i]);
		}
		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

static int
read_caps(struct vh_nvme_ctrlr *c)
{
	c->cap = vh_nvme_mmio_read64(c->dev, VH_NVME_REG_CAP);
	c->vs = vh_nvme_mmio_read32(c->dev, VH_NVME_REG_VS);
	if (c->cap == UINT64_MAX || c->vs == CSTS_REMOVED) {
		return -ENODEV;
	}
	c->db_stride = 4u << VH_NVME_CAP_DSTRD(c->cap);
	/* CAP.TO is in 500 ms units; 0 would make every wait fail at once, so allow one unit. */
	c->ready_timeout_ns = VH_MAX(VH_NVME_CAP_TO(c->cap), 1u) * 500000000ull;
	if (!(VH_NVME_CAP_CSS(c->cap) & VH_NVME_CAP_CSS_NVM)) {
		VH_ERR(COMP, "[%s] controller lacks the NVM command set", cname(c));
		return -ENOTSUP;
	}
	if (VH_NVME_CAP_MPSMIN(c->cap) != 0) {
		VH_ERR(COMP, "[%s] minimum page size %u KiB is not 4 KiB", cname(c),
		       4u << VH_NVME_CAP_MPSMIN(c->cap));
		return -ENOTSUP;
	}
	c->io_queue_depth =
	        (uint16_t)VH_MIN((uint32_t)c->opts.io_queue_depth, VH_NVME_CAP_MQES(c->cap) + 1);
	return 0;
}

static void
apply_defaults(struct vh_nvme_ctrlr_opts *o, const struct vh_nvme_ctrlr_opts *in)
{
	*o = in ? *in : default_opts;
	o->num_io_queues = o->num_io_queues ? o->num_io_queues : default_opts.num_io_queues;
	o->io_queue_depth = o->io_queue_depth ? o->io_queue_depth : default_opts.io_queue_depth;
	o->io_queue_depth = VH_MIN(o->io_queue_depth, (uint16_t)4096);
	o->admin_queue_depth =
	        o->admin_queue_depth ? o->admin_queue_depth : default_opts.admin_queue_depth;
	o->admin_queue_depth = VH_MIN(o->admin_queue_depth, (uint16_t)4096);
	o->admin_timeout_ms = o->admin_timeout_ms ? o->admin_timeout_ms : 10000;
	o->health_interval_us = o->health_interval_us ? o->health_interval_us : 100000;
}

/* Disable, admin queue, enable (the part shared by init and reset). */
static int
bring_up(struct vh_nvme_ctrlr *c)
{
	int ret;

	ret = disable(c);
	if (ret < 0) {
		VH_ERR(COMP, "[%s] disabling the controller failed: %s", cname(c), strerror(-ret));
		return ret;
	}
	vh_nvme_qpair_abort_all(c->adminq);
	vh_nvme_qpair_resume(c->adminq);
	ret = enable(c);
	if (ret < 0) {
		VH_ERR(COMP, "[%s] enabling the controller failed: %s", cname(c), strerror(-ret));
	}
	return ret;
}

static int
create_adminq(struct vh_nvme_ctrlr *c)
{
	struct vh_nvme_qpair_opts ao = {
	        .qid = 0,
	        .depth = c->opts.admin_queue_depth,
	        .max_xfer = VH_NVME_PAGE_SIZE,
	        .timeout_ns = 0, /* admin_sync has its own deadline */
	};
	int ret;

	ret = vh_nvme_qpair_create(c, &ao, &c->adminq);
	if (ret == 0) {
		ret = vh_nvme_dma_alloc(c->dev, 4096, &c->scratch);
	}
	return ret;
}

int
vh_nvme_ctrlr_init(struct vh_nvme_dev *dev, const struct vh_nvme_ctrlr_opts *opts,
                   struct vh_nvme_ctrlr **out)
{
	struct vh_nvme_ctrlr *c;
	int ret, nq;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -ENOMEM;
	}
	c->dev = dev;
	apply_defaults(&c->opts, opts);
	ret = read_caps(c);
	if (ret == 0) {
		ret = create_adminq(c);
	}
	if (ret == 0) {
		ret = bring_up(c);
	}
	if (ret == 0) {
		ret = identify_ctrlr(c);
	}
	if (ret == 0) {
		ret = scan_namespaces(c);
	}
	if (ret < 0) {
		goto out_destroy;
	}
	nq = set_num_queues(c, c->opts.num_io_queues);
	if (nq < 0) {
		ret = nq;
		goto out_destroy;
	}
	ret = create_io_qpairs(c, (uint16_t)nq);
	if (ret < 0) {
		goto out_destroy;
	}
	*out = c;
	return 0;

out_destroy:
	vh_nvme_ctrlr_destroy(c);
	return ret;
}

struct vh_nvme_qpair *
vh_nvme_ctrlr_ioq(struct vh_nvme_ctrlr *c, unsigned i)
{
	return i < c->num_io_queues ? c->ioq[i] : NULL;
}

const struct vh_nvme_ns *
vh_nvme_ctrlr_ns(const struct vh_nvme_ctrlr *c, uint32_t nsid)
{
	for (uint32_t i = 0; i < c->num_ns; i++) {
		if (c->ns[i].nsid == nsid) {
			return &c->ns[i];
		}
	}
	return NULL;
}

/* ---- reset ---------------------------------------------------------------------------------- */

static int shutdown_ctrlr(struct vh_nvme_ctrlr *c);

/*
 * Take the controller from its users: RESETTING, the admin queue halted, then @stop (disable,
 * or a normal shutdown and then disable). A failure leaves it REMOVED (gone from the bus) or
 * FAILED; @what names the step in the log.
 */
static int
quiesce(struct vh_nvme_ctrlr *c, int (*stop)(struct vh_nvme_ctrlr *c), const char *what)
{
	int ret;

	__atomic_store_n(&c->state, VH_NVME_CTRLR_RESETTING, __ATOMIC_RELAXED);
	vh_nvme_qpair_halt(c->adminq);
	ret = stop(c);
	if (ret < 0) {
		VH_ERR(COMP, "[%s] %s failed: %s", cname(c), what, strerror(-ret));
		__atomic_store_n(&c->state,
		                 ret == -ENODEV ? VH_NVME_CTRLR_REMOVED : VH_NVME_CTRLR_FAILED,
		                 __ATOMIC_RELAXED);
	}
	return ret;
}

int
vh_nvme_ctrlr_reset_disable(struct vh_nvme_ctrlr *c)
{
	return quiesce(c, disable, "reset: disable");
}

int
vh_nvme_ctrlr_reset_enable(struct vh_nvme_ctrlr *c)
{
	int ret;

	/*
	 * The admin queue restarts empty and keeps its memory (UIO memory is only returned when
	 * the device closes): commands abandoned by a timed-out admin_sync fail here.
	 */
	vh_nvme_qpair_abort_all(c->adminq);
	vh_nvme_qpair_resume(c->adminq);
	ret = vh_nvme_qpair_is_dead(c->adminq) ? -ENODEV : 0;
	if (ret == 0) {
		ret = enable(c);
	}
	if (ret == 0) {
		ret = set_num_queues(c, c->num_io_queues);
		ret = ret < 0 ? ret : ret < c->num_io_queues ? -EIO : 0;
	}
	for (uint16_t i = 0; ret == 0 && i < c->num_io_queues; i++) {
		ret = create_io_queue(c, c->ioq[i]);
	}
	c->resets++;
	if (ret < 0) {
		VH_ERR(COMP, "[%s] reset failed: %s", cname(c), strerror(-ret));
		__atomic_store_n(&c->state, VH_NVME_CTRLR_FAILED, __ATOMIC_RELAXED);
		return ret;
	}
	VH_NOTICE(COMP, "[%s] controller reset done", cname(c));
	__atomic_store_n(&c->event_pending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->state, VH_NVME_CTRLR_READY, __ATOMIC_RELAXED);
	return 0;
}

int
vh_nvme_ctrlr_reset(struct vh_nvme_ctrlr *c)
{
	int ret;

	for (uint16_t i = 0; i < c->num_io_queues; i++) {
		vh_nvme_qpair_halt(c->ioq[i]);
	}
	ret = vh_nvme_ctrlr_reset_disable(c);
	for (uint16_t i = 0; i < c->num_io_queues; i++) {
		if (ret == 0) {
			vh_nvme_qpair_abort_all(c->ioq[i]);
		}
	}
	if (ret == 0) {
		ret = vh_nvme_ctrlr_reset_enable(c);
	}
	for (uint16_t i = 0; i < c->num_io_queues; i++) {
		if (ret == 0) {
			vh_nvme_qpair_resume(c->ioq[i]);
		} else {
			vh_nvme_qpair_fail_all(c->ioq[i], ret == -ENODEV ? -ENODEV : -EIO);
		}
	}
	return ret;
}

/* ---- teardown ------------------------------------------------------------------------------- */

static void
delete_io_queues(struct vh_nvme_ctrlr *c)
{
	for (uint16_t i = 0; i < c->num_io_queues; i++) {
		uint16_t qid = vh_nvme_qpair_id(c->ioq[i]);
		struct vh_nvme_sqe sq = {.opc = VH_NVME_ADM_DELETE_SQ, .cdw10 = qid};
		struct vh_nvme_sqe cq = {.opc = VH_NVME_ADM_DELETE_CQ, .cdw10 = qid};

		/* §5.6: an SQ goes before the CQ it posts to. */
		if (vh_nvme_ctrlr_admin_sync(c, &sq, NULL) < 0 ||
		    vh_nvme_ctrlr_admin_sync(c, &cq, NULL) < 0) {
			VH_WARN(COMP, "[%s] deleting I/O queue %u failed", cname(c), qid);
		}
	}
}

/* §7.6.2: normal shutdown lets the controller flush its caches before power goes away. */
static int
shutdown_ctrlr(struct vh_nvme_ctrlr *c)
{
	uint64_t deadline = cnow(c) + SHUTDOWN_TIMEOUT_NS;
	uint32_t cc = vh_nvme_mmio_read32(c->dev, VH_NVME_REG_CC);
	unsigned round = 0;

	if (cc == CSTS_REMOVED) {
		return -ENODEV;
	}
	if (!(cc & VH_NVME_CC_EN)) {
		return 0;
	}
	cc = (cc & ~VH_NVME_CC_SHN_MASK) | VH_NVME_CC_SHN_NORMAL;
	vh_nvme_mmio_write32(c->dev, VH_NVME_REG_CC, cc);
	for (;;) {
		uint32_t csts = vh_nvme_mmio_read32(c->dev, VH_NVME_REG_CSTS);

		if (csts == CSTS_REMOVED ||
		    (csts & VH_NVME_CSTS_SHST_MASK) == VH_NVME_CSTS_SHST_DONE) {
			break;
		}
		if (cnow(c) > deadline) {
			VH_WARN(COMP, "[%s] shutdown did not complete in time", cname(c));
			break;
		}
		wait_a_bit(&round);
	}
	return disable(c);
}

int
vh_nvme_ctrlr_release(struct vh_nvme_ctrlr *c)
{
	/* The queues go with CC.EN=0; the shutdown first lets the controller flush its cache. */
	return quiesce(c, shutdown_ctrlr, "release: shutdown");
}

void
vh_nvme_ctrlr_destroy(struct vh_nvme_ctrlr *c)
{
	bool healthy;

	if (c == NULL) {
		return;
	}
	healthy = c->adminq != NULL && !vh_nvme_qpair_is_dead(c->adminq) &&
	          vh_nvme_ctrlr_check_health(c) == 0 &&
	          __atomic_load_n(&c->state, __ATOMIC_RELAXED) == VH_NVME_CTRLR_READY;
	if (healthy) {
		delete_io_queues(c);
		shutdown_ctrlr(c);
	} else if (vh_nvme_ctrlr_check_health(c) != -ENODEV) {
		disable(c);
	}
	for (uint16_t i = 0; i < c->num_io_queues; i++) {
		vh_nvme_qpair_fail_all(c->ioq[i], -ENODEV);
		vh_nvme_qpair_destroy(c->ioq[i]);
	}
	if (c->adminq != NULL) {
		vh_nvme_qpair_fail_all(c->adminq, -ENODEV);
	}
	vh_nvme_qpair_destroy(c->adminq);
	vh_nvme_dma_free(c->dev, &c->scratch);
	free(c->ioq);
	free(c->ns);
	free(c);
}
