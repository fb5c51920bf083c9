/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe controller: bring-up (§7.6.1), identify, I/O queue creation, health, reset, shutdown.
 *
 * Rules:
 * - init, destroy, the admin queue and the reset steps marked "control" run on the control
 *   thread. Bring-up blocks that thread for at most CAP.TO (ready waits) and the admin timeout
 *   per command.
 * - Each I/O qpair (vh_nvme_ctrlr_ioq) belongs to one reactor from the moment it is handed out.
 * - Events (fatal status, hot-remove, command timeout) are reported through opts.event_cb on the
 *   thread that noticed them, usually a reactor: the callback must only post a message.
 * - A reset is: every owner halts its qpair, control disables the controller, every owner calls
 *   vh_nvme_qpair_abort_all(), control re-enables (vh_nvme_ctrlr_reset_enable), every owner
 *   resumes. vh_nvme_ctrlr_reset() does all of it on one thread (tests, single reactor).
 */
#ifndef VH_BDEV_NVME_CTRLR_H
#define VH_BDEV_NVME_CTRLR_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/nvme/pci.h"
#include "bdev/nvme/qpair.h"
#include "bdev/nvme/spec.h"

struct vh_nvme_ctrlr;

enum vh_nvme_event {
	VH_NVME_EV_FATAL = 0, /* CSTS.CFS: needs a reset */
	VH_NVME_EV_REMOVED,   /* registers read all-ones: the device is gone */
	VH_NVME_EV_TIMEOUT,   /* a command timed out: needs a reset to reclaim it */
};

enum vh_nvme_ctrlr_state {
	VH_NVME_CTRLR_READY = 0,
	VH_NVME_CTRLR_RESETTING,
	VH_NVME_CTRLR_FAILED,
	VH_NVME_CTRLR_REMOVED,
};

struct vh_nvme_ctrlr_opts {
	uint16_t num_io_queues;      /* requested (one per reactor); default 1 */
	uint16_t io_queue_depth;     /* default 256, capped by CAP.MQES + 1 */
	uint16_t admin_queue_depth;  /* default 32 */
	uint32_t io_timeout_ms;      /* default 30000; 0 = never */
	uint32_t admin_timeout_ms;   /* default 10000 */
	uint32_t health_interval_us; /* CSTS check period on busy qpairs; default 100000 */
	uint8_t max_retries;         /* default 3 */
	uint32_t bounce_pages;       /* per I/O qpair; default 2 max-size commands */
	uint64_t (*now_ns)(void);    /* clock; NULL = vh_now_ns (tests inject their own) */
	void (*event_cb)(struct vh_nvme_ctrlr *c, enum vh_nvme_event ev, void *arg);
	void *event_arg;
};

struct vh_nvme_ns {
	uint32_t nsid;
	uint64_t nsze; /* blocks */
	uint32_t lba_shift;
	uint8_t nguid[16];
	uint8_t eui64[8];
	uint8_t dlfeat;
};

struct vh_nvme_ctrlr {
	struct vh_nvme_dev *dev;
	struct vh_nvme_ctrlr_opts opts;
	uint64_t cap;
	uint32_t vs;
	uint32_t db_stride;        /* bytes between doorbells: 4 << CAP.DSTRD */
	uint64_t ready_timeout_ns; /* CAP.TO */
	struct vh_nvme_qpair *adminq;
	struct vh_nvme_dma scratch; /* identify data */
	struct vh_nvme_id_ctrl cdata;
	uint32_t max_xfer; /* bytes */
	uint16_t io_queue_depth;
	uint16_t num_io_queues; /* created */
	struct vh_nvme_qpair **ioq;
	uint32_t num_ns;
	struct vh_nvme_ns *ns;
	int state;         /* enum vh_nvme_ctrlr_state; atomic */
	int event_pending; /* a FATAL/TIMEOUT event was sent and not handled; atomic */
	uint32_t resets;
};

/*
 * Bring up the controller on @dev (which stays owned by the caller) with @opts (NULL: defaults):
 * disable, admin queue, enable, Identify Controller and Namespaces, Number of Queues, create the
 * I/O queue pairs. Returns 0 and *out, or -ENODEV (registers all-ones), -ETIMEDOUT (CAP.TO or an
 * admin command), -ENOTSUP (no NVM command set, page size), -EIO (admin command failed), -ENOMEM.
 * Control thread.
 */
int vh_nvme_ctrlr_init(struct vh_nvme_dev *dev, const struct vh_nvme_ctrlr_opts *opts,
                       struct vh_nvme_ctrlr **out);

/*
 * Delete the I/O queues, shut the controller down (CC.SHN) and free it. Every qpair must be idle
 * (or failed with vh_nvme_qpair_fail_all). NULL is a no-op. Control thread.
 */
void vh_nvme_ctrlr_destroy(struct vh_nvme_ctrlr *c);

/* I/O qpair @i (0 <= i < num_io_queues), or NULL. Any thread. */
struct vh_nvme_qpair *vh_nvme_ctrlr_ioq(struct vh_nvme_ctrlr *c, unsigned i);

/* Namespace by NSID, or NULL. Any thread (immutable after init). */
const struct vh_nvme_ns *vh_nvme_ctrlr_ns(const struct vh_nvme_ctrlr *c, uint32_t nsid);

/* Read CSTS: 0 healthy, -EIO fatal status, -ENODEV removed. Any thread. */
int vh_nvme_ctrlr_check_health(struct vh_nvme_ctrlr *c);

/*
 * Submit an admin command and wait for it (polls the admin queue). *cqe (if not NULL) gets the
 * completion. 0, -errno from the status, -ETIMEDOUT or -ENODEV. Control thread.
 */
int vh_nvme_ctrlr_admin_sync(struct vh_nvme_ctrlr *c, struct vh_nvme_sqe *sqe,
                             struct vh_nvme_cqe *cqe);

/* Reset, control side. disable: CC.EN=0 and wait. enable: bring up again and re-create queues. */
int vh_nvme_ctrlr_reset_disable(struct vh_nvme_ctrlr *c);
int vh_nvme_ctrlr_reset_enable(struct vh_nvme_ctrlr *c);
/* The whole reset on the calling thread, which must own every I/O qpair. 0 or -errno. */
int vh_nvme_ctrlr_reset(struct vh_nvme_ctrlr *c);

/*
 * Live upgrade, before the device is given up (vh_nvme_dev_suspend): normal shutdown (CC.SHN,
 * so the controller flushes its volatile cache), then CC.EN=0, which deletes every queue. Every
 * I/O qpair must be halted and idle. The state is RESETTING afterwards; the controller comes
 * back with vh_nvme_ctrlr_reset_disable() + vh_nvme_ctrlr_reset_enable() once the device is
 * ours again. 0, -ENODEV (gone) or -ETIMEDOUT (CAP.TO). Control thread.
 */
int vh_nvme_ctrlr_release(struct vh_nvme_ctrlr *c);

/* Called by qpairs: report @ev once (deduplicated until the reset). Any thread. */
void vh_nvme_ctrlr_notify(struct vh_nvme_ctrlr *c, enum vh_nvme_event ev);

/* Doorbell register offsets (§3.1.24/25). */
static inline uint32_t
vh_nvme_sq_doorbell(const struct vh_nvme_ctrlr *c, uint16_t qid)
{
	return VH_NVME_REG_DBS + (2u * qid) * c->db_stride;
}

static inline uint32_t
vh_nvme_cq_doorbell(const struct vh_nvme_ctrlr *c, uint16_t qid)
{
	return VH_NVME_REG_DBS + (2u * qid + 1) * c->db_stride;
}

#endif
