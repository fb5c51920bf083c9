/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An NVMe submission/completion queue pair and the requests in flight on it.
 *
 * Rules:
 * - An I/O qpair is owned by one reactor; only that thread submits, polls, halts, aborts and
 *   resumes it. No locks. The admin qpair is owned by the control thread.
 * - create/destroy run on the control thread while the owner does not use the qpair.
 * - Completion contract: a submit function returns 0 and calls cb exactly once, later, from
 *   vh_nvme_qpair_poll()/abort_all()/fail_all() on the owner; or returns -errno and never calls cb.
 *   -EAGAIN means "no free command slot or bounce page now: retry after a poll".
 * - Buffers (iovecs and what they point to) stay valid until the callback.
 * - Submissions are batched: the SQ tail doorbell is written by vh_nvme_qpair_ring() (called by
 *   poll, and by the bdev layer at the end of a reactor iteration), the CQ head doorbell once per
 *   poll.
 * - The device is semi-trusted: completions with an unknown or already completed command ID, or
 *   for another queue, are counted and dropped.
 */
#ifndef VH_BDEV_NVME_QPAIR_H
#define VH_BDEV_NVME_QPAIR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bdev/nvme/pci.h"
#include "bdev/nvme/spec.h"

struct vh_nvme_ctrlr;
struct vh_nvme_qpair;

/* @status is 0 or -errno; @cqe is the device's completion, or NULL when the driver failed it. */
typedef void (*vh_nvme_cmd_cb)(void *arg, int status, const struct vh_nvme_cqe *cqe);

struct vh_nvme_qpair_opts {
	uint16_t qid;          /* 0 = admin */
	uint16_t depth;        /* SQ and CQ entries, 2..4096 */
	uint32_t max_xfer;     /* bytes per command, <= VH_NVME_MAX_XFER */
	uint32_t bounce_pages; /* 4 KiB pages for bouncing; 0 = never bounce */
	uint64_t timeout_ns;   /* per command, 0 = no timeout */
	uint8_t max_retries;   /* for statuses without DNR, and across controller resets */
};

struct vh_nvme_qpair_stats {
	uint64_t submitted;
	uint64_t completed;
	uint64_t errors;
	uint64_t retries;
	uint64_t bounced;
	uint64_t timeouts;
	uint64_t bad_cqes; /* unknown/duplicate CID, wrong SQ id */
};

/* A PRP list is one 4 KiB page (512 entries) + PRP1: 513 pages, so 2 MiB at any alignment. */
#define VH_NVME_MAX_XFER   (2u << 20)
#define VH_NVME_PRP_BOUNCE 1 /* vh_nvme_prp_build(): the iovec cannot be expressed as PRPs */

/*
 * Build PRP1/PRP2 (and the list at @list/@list_iova, @list_max entries) for @len bytes of @iov
 * starting @skip bytes in, translating with @tr. Returns 0, VH_NVME_PRP_BOUNCE if the layout or
 * the translation rules it out (§4.3: only the first entry may have an offset, every other entry
 * starts a page, so inner segment edges must be page aligned; everything dword aligned),
 * -EINVAL if the iovec is shorter than @len, -E2BIG if it needs more than @list_max entries.
 * Any thread (pure function).
 */
int vh_nvme_prp_build(vh_nvme_translate_fn tr, void *tr_ctx, const struct iovec *iov, int iovcnt,
                      size_t skip, size_t len, struct vh_nvme_sqe *sqe, uint64_t *list,
                      uint64_t list_iova, unsigned list_max);

/* Map an NVMe status field (cqe.status >> 1) to 0 or -errno. Any thread. */
int vh_nvme_status_to_errno(uint16_t status);

/*
 * Create a qpair of @ctrlr's device with @opts: allocates the rings, request slots, PRP list
 * pages and bounce pages (DMA memory). It does not tell the controller (ctrlr.c does). Returns 0
 * and *out, -EINVAL or -ENOMEM. Control thread.
 */
int vh_nvme_qpair_create(struct vh_nvme_ctrlr *ctrlr, const struct vh_nvme_qpair_opts *opts,
                         struct vh_nvme_qpair **out);
/* Free a qpair with nothing in flight. NULL is a no-op. Control thread. */
void vh_nvme_qpair_destroy(struct vh_nvme_qpair *qp);

/* Ring addresses for Create I/O SQ/CQ and AQA/ASQ/ACQ. Any thread. */
uint16_t vh_nvme_qpair_id(const struct vh_nvme_qpair *qp);
uint16_t vh_nvme_qpair_depth(const struct vh_nvme_qpair *qp);
uint64_t vh_nvme_qpair_sq_iova(const struct vh_nvme_qpair *qp);
uint64_t vh_nvme_qpair_cq_iova(const struct vh_nvme_qpair *qp);

/* Override the translation for user buffers (default: the device's). Owner thread. */
void vh_nvme_qpair_set_translate(struct vh_nvme_qpair *qp, vh_nvme_translate_fn tr, void *ctx);

/*
 * Submit a raw command (admin, or anything whose PRPs the caller already set). The CID is ours.
 * Owner thread. 0, -EAGAIN, -ENODEV (queue dead).
 */
int vh_nvme_qpair_submit_raw(struct vh_nvme_qpair *qp, const struct vh_nvme_sqe *sqe,
                             vh_nvme_cmd_cb cb, void *arg);

/*
 * Read (@write false) or write @nlb blocks at @slba of namespace @nsid; the data is @len bytes of
 * @iov from @skip on, len == nlb << lba_shift. Owner thread. 0, -EAGAIN, -EINVAL (bad length,
 * too large: see vh_nvme_qpair_max_xfer()), -ENODEV.
 */
int vh_nvme_qpair_rw(struct vh_nvme_qpair *qp, bool write, uint32_t nsid, uint64_t slba,
                     uint32_t nlb, const struct iovec *iov, int iovcnt, size_t skip, size_t len,
                     vh_nvme_cmd_cb cb, void *arg);
/*
 * Command options (VH_NVME_CMD_*), for the _opts variants. FUA: the command completes only
 * once its data is on non-volatile media (CDW12 FUA). DEAC: Write Zeroes may deallocate.
 */
#define VH_NVME_CMD_FUA  0x1u
#define VH_NVME_CMD_DEAC 0x2u
/* vh_nvme_qpair_rw() with options (VH_NVME_CMD_FUA); same returns. Owner thread. */
int vh_nvme_qpair_rw_opts(struct vh_nvme_qpair *qp, bool write, uint32_t nsid, uint64_t slba,
                          uint32_t nlb, const struct iovec *iov, int iovcnt, size_t skip,
                          size_t len, unsigned opts, vh_nvme_cmd_cb cb, void *arg);
int vh_nvme_qpair_flush(struct vh_nvme_qpair *qp, uint32_t nsid, vh_nvme_cmd_cb cb, void *arg);
/* Write Zeroes of 1..65536 blocks; @opts VH_NVME_CMD_DEAC and/or VH_NVME_CMD_FUA. */
int vh_nvme_qpair_write_zeroes(struct vh_nvme_qpair *qp, uint32_t nsid, uint64_t slba, uint32_t nlb,
                               unsigned opts, vh_nvme_cmd_cb cb, void *arg);
/* Dataset Management, deallocate, for @nr (1..256) ranges (copied). */
int vh_nvme_qpair_deallocate(struct vh_nvme_qpair *qp, uint32_t nsid,
                             const struct vh_nvme_dsm_range *ranges, unsigned nr, vh_nvme_cmd_cb cb,
                             void *arg);

/* Write the SQ tail doorbell if commands were queued since the last one. Owner thread. */
void vh_nvme_qpair_ring(struct vh_nvme_qpair *qp);

/*
 * Reap up to @max completions, call their callbacks, write the CQ head doorbell once, ring the SQ
 * doorbell, then check timeouts and controller health. Returns the number of CQEs consumed.
 * Owner thread.
 */
int vh_nvme_qpair_poll(struct vh_nvme_qpair *qp, unsigned max);

/* Free command slots (submissions that would not get -EAGAIN). Owner thread. */
unsigned vh_nvme_qpair_free_slots(const struct vh_nvme_qpair *qp);
/* Commands submitted and not yet completed. Owner thread. */
unsigned vh_nvme_qpair_outstanding(const struct vh_nvme_qpair *qp);
uint32_t vh_nvme_qpair_max_xfer(const struct vh_nvme_qpair *qp);
void vh_nvme_qpair_get_stats(const struct vh_nvme_qpair *qp, struct vh_nvme_qpair_stats *st);

/*
 * Controller reset, in this order (ctrlr.c sequences it):
 * 1. halt: stop writing doorbells; new and retried commands wait in a software queue.
 * 2. (controller disabled: the device no longer touches memory)
 * 3. abort_all: reap what the device completed; every other command is queued for re-issue if it
 *    has retries left, or completed with -EIO (-ETIMEDOUT if it had timed out); rings reset.
 * 4. (controller enabled, queues re-created)
 * 5. resume: re-issue the queued commands.
 * fail_all completes everything with @status and kills the qpair (hot-remove, failed reset).
 * All on the owner thread.
 */
void vh_nvme_qpair_halt(struct vh_nvme_qpair *qp);
void vh_nvme_qpair_abort_all(struct vh_nvme_qpair *qp);
void vh_nvme_qpair_resume(struct vh_nvme_qpair *qp);
void vh_nvme_qpair_fail_all(struct vh_nvme_qpair *qp, int status);
bool vh_nvme_qpair_is_dead(const struct vh_nvme_qpair *qp);

#endif
