/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The emulated NVMe controller behind a vfio-user socket: shared state of nvme_pci.c (PCI
 * config space, regions, interrupts), nvme_ctrlr.c (registers, enable/reset/shutdown, reactor
 * operations), nvme_admin.c (the admin queue) and nvme_io.c (I/O queues on the reactors).
 *
 * Ownership (docs/design.md rules 1-8 apply; these add to them):
 * N1. Everything in struct vfu_nvme belongs to the control thread, except the fields marked
 *     "reactor": the I/O queues and the per-reactor contexts (struct vfu_rctx), which belong
 *     to their reactor from the message that attaches them until the message that detaches
 *     them. Message FIFO order makes every hand-over a happens-before edge.
 * N2. The admin queue runs on the control thread. A poller on the controller's first reactor
 *     watches its doorbells (guest writes to the mmap'ed doorbell page never trap) and posts
 *     n->admin_node when they change.
 * N3. One reactor operation at a time (n->op_*): a function run on every (or one) reactor
 *     context, which may complete later (after in-flight I/O drained). While one runs the
 *     session's input is held and the admin queue waits, so vfio-user messages, admin commands
 *     and resets are serialised.
 * N4. Reactors read the DMA table, the namespace table and the MSI-X eventfds without locks.
 *     The DMA table and namespaces change only while every reactor is quiesced (no fetching,
 *     nothing in flight); an eventfd that is replaced is closed only after every reactor passed
 *     a barrier operation, so no reactor can write to a closed (and reused) fd number.
 * N5. Every guest-memory structure (SQ entry, PRP list, SGL segment, DSM range, doorbell value)
 *     is read once into a local copy before it is checked; a bad value fails that command with
 *     an NVMe status, or, for queue-level damage (a doorbell out of range), makes the controller
 *     fatal (CSTS.CFS) until the guest resets it. Nothing the guest writes crashes the daemon.
 */
#ifndef VH_VFU_NVME_H
#define VH_VFU_NVME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bdev/bdev.h"
#include "core/msg.h"
#include "core/reactor.h"
#include "vfu/nvme_spec.h"
#include "vfu/session.h"

#define VFU_NVME_MAX_NS      32 /* namespace IDs 1..32 */
#define VFU_NVME_MAX_IOQ     64 /* I/O queue pairs */
#define VFU_NVME_DEFAULT_IOQ 32
#define VFU_NVME_MAX_VECTORS (VFU_NVME_MAX_IOQ + 1)
#define VFU_NVME_MQES        1023 /* CAP.MQES: 1024 entries per I/O queue (0's based) */
#define VFU_NVME_ADMIN_MAX   4096 /* entries of an admin queue */
#define VFU_NVME_MDTS        5    /* 2^5 pages: 128 KiB per command */
#define VFU_NVME_PAGE        4096u
#define VFU_NVME_MAX_XFER    (VFU_NVME_PAGE << VFU_NVME_MDTS)
#define VFU_NVME_MAX_IOV     64  /* data segments per command (PRP: 33 at most) */
#define VFU_NVME_SLOTS       256 /* requests in flight per SQ at most */
#define VFU_NVME_AERL        4   /* Asynchronous Event Requests outstanding */
#define VFU_NVME_FETCH_BATCH 32  /* SQ entries fetched per queue per poll */
/*
 * Doorbell poll period while the reactor sleeps: 1 ms after work, doubling while the wake-ups
 * find nothing, up to 8 ms (an idle controller then costs ~1 % of a core).
 */
#define VFU_NVME_IDLE_POLL_NS     1000000ull
#define VFU_NVME_IDLE_POLL_MAX_NS 8000000ull
/*
 * The reactor does not sleep until this long after the last command was fetched: a guest
 * that pauses for a moment (preempted, between two batches) finds it still polling, as a
 * vhost-user guest would find it woken by its kick.
 */
#define VFU_NVME_BUSY_GRACE_NS 2000000ull

/* Regions (VFIO PCI indices) and their layout. */
#define VFU_NVME_BAR0_SIZE  0x2000u /* registers page + doorbell page */
#define VFU_NVME_DB_OFFSET  0x1000u /* doorbells: mmap'ed by the client (sparse area) */
#define VFU_NVME_BAR4_SIZE  0x1000u /* MSI-X table at 0, PBA at 0x800 */
#define VFU_NVME_PBA_OFFSET 0x800u
#define VFU_NVME_CFG_SIZE   0x1000u /* PCIe configuration space */

struct vfu_nvme;
struct vfu_rctx;
struct vfu_sq;

/* A namespace: one bdev. Immutable while attached (N4), except `removing`. */
struct vfu_ns {
	uint32_t nsid;
	struct vh_bdev *bdev;
	uint32_t block_size;
	uint8_t lbads; /* log2(block_size) */
	uint64_t nblocks;
	bool removing; /* reactors fail new commands with Invalid Namespace */
	uint8_t uuid[16];
};

/* A completion queue. Reactor-owned while attached (or control-owned for the admin CQ). */
struct vfu_cq {
	uint16_t id;
	uint16_t size;
	uint64_t gpa;
	struct vh_nvme_cqe *ring; /* our mapping of gpa */
	uint16_t tail;
	uint16_t head; /* last valid head doorbell value seen */
	uint8_t phase;
	bool ien;
	uint16_t iv;
	uint32_t reserved; /* entries promised to fetched commands not yet completed */
	unsigned nsq;      /* SQs completing here (control's view) */
	bool irq_pending;  /* entries posted since the last interrupt */
	struct vfu_rctx *rctx;
	struct vfu_cq *next; /* in rctx->cqs */
};

/* One command in flight on an I/O SQ. */
struct vfu_req {
	struct vh_bdev_io io;
	struct vfu_sq *sq;
	struct vfu_ns *ns;
	struct vh_bdev_channel *ch;
	uint16_t cid;
	uint8_t opc;
	uint16_t status;   /* NVMe status so far (NVME_ST) */
	unsigned pending;  /* sub-I/Os still in flight */
	unsigned next_sub; /* DSM: next range to submit */
	unsigned nsub;     /* DSM: ranges */
	bool flush_after;  /* FUA or write cache off: a flush follows the write */
	uint64_t wz_off;   /* Write Zeroes emulated with writes: next offset */
	uint64_t wz_left;  /* and bytes left */
	struct vfu_req *next_free;
	struct vfu_req *next_retry;
	struct iovec iov[VFU_NVME_MAX_IOV];
};

/* A submission queue. Reactor-owned while attached. */
struct vfu_sq {
	uint16_t id;
	uint16_t size;
	uint16_t cqid;
	uint64_t gpa;
	const struct vh_nvme_sqe *ring;
	uint16_t head;
	bool stopping; /* Delete I/O SQ: fetch nothing more */
	unsigned inflight;
	struct vfu_cq *cq;
	struct vfu_rctx *rctx;
	struct vfu_req *reqs;
	struct vfu_req *free;
	struct vfu_req *retry_head, *retry_tail;
	struct vh_nvme_dsm_range *dsm; /* one DSM command at a time per SQ */
	bool dsm_busy;
	struct vfu_sq *next; /* in rctx->sqs */
};

/* Per (controller, reactor) context: one poller serves every queue of the controller there. */
struct vfu_rctx {
	struct vfu_nvme *n;
	struct vh_reactor *r;
	unsigned idx;
	/* reactor-owned */
	struct vh_poller *poller;
	int timerfd; /* wakes a sleeping reactor to look at the doorbells (no trap to wake on) */
	bool timer_armed;
	bool did_work;         /* a command was fetched since the last sleep */
	uint64_t last_work_ns; /* when one was last fetched */
	uint64_t idle_period;  /* current timer period (ns) */
	struct vfu_cq *cqs;
	struct vfu_sq *sqs;
	unsigned inflight;
	bool paused;
	bool op_waits_drain;
	bool watch_admin; /* this context watches the admin doorbells (N2) */
	uint32_t seen_sq0, seen_cq0;
	struct vh_bdev_channel *ch[VFU_NVME_MAX_NS + 1];
	struct vh_deferred irq_defer;
	struct vh_deferred drain_defer;
	/* statistics: written by the reactor, read by the control thread (relaxed) */
	uint64_t stat_reads, stat_writes, stat_read_bytes, stat_write_bytes;
	/* messages (nodes cannot fail, design rule in core/msg.h) */
	struct vh_msg_node op_node;   /* control → reactor: run n->op_fn */
	struct vh_msg_node done_node; /* reactor → control: op finished here */
	struct vh_msg_node fail_node; /* reactor → control: the guest broke the controller */
};

typedef bool (*vfu_op_fn)(struct vfu_rctx *x); /* true: done now; false: after drain */
typedef void (*vfu_op_done)(struct vfu_nvme *n);

struct vfu_nvme {
	char name[VH_NAME_MAX];
	char prefix[VH_NAME_MAX + 8];
	uint16_t cntlid;
	uint16_t num_ioq; /* queue pairs offered */
	uint16_t nvec;    /* MSI-X vectors: num_ioq + 1 */
	struct vfu_session *session;

	/* PCI */
	uint8_t cfg[VFU_NVME_CFG_SIZE];
	uint8_t cfg_wmask[VFU_NVME_CFG_SIZE];
	uint8_t bar4[VFU_NVME_BAR4_SIZE];
	int db_fd;        /* sealed memfd: the BAR0 page the client maps (doorbells) */
	uint8_t *db_page; /* our mapping of the doorbell page */

	/* registers */
	uint32_t cc, csts, aqa, intms;
	uint64_t asq, acq;
	bool enabled;  /* CSTS.RDY as set by us */
	bool fatal;    /* CSTS.CFS */
	bool shutdown; /* a shutdown notification completed */
	bool dma_lost; /* a queue's memory is unmapped: nothing runs until it is back */
	int broken;    /* reactors stop fetching (any thread: relaxed atomics) */

	/* interrupts: eventfds from SET_IRQS (read by reactors, N4) */
	int msix_fd[VFU_NVME_MAX_VECTORS];
	int err_fd, req_fd;
	int *closing_fds; /* replaced fds waiting for a barrier */
	unsigned nclosing;

	/* queues: the control thread's index of them */
	struct vfu_sq *sqs[VFU_NVME_MAX_IOQ + 1];
	struct vfu_cq *cqs[VFU_NVME_MAX_IOQ + 1];
	unsigned nqueues; /* attached I/O SQs + CQs */

	/* admin queue (control thread) */
	struct {
		const struct vh_nvme_sqe *sq;
		struct vfu_cq cq; /* cq.ring, tail, phase, head */
		uint16_t sq_size;
		uint16_t sq_head;
		bool waiting;           /* a command waits for a reactor operation */
		struct vh_nvme_sqe cmd; /* that command */
		uint16_t aer_cid[VFU_NVME_AERL];
		unsigned naer;
	} adm;
	struct vh_msg_node admin_node;

	/* namespaces (N4) */
	struct vfu_ns *ns[VFU_NVME_MAX_NS + 1];
	uint32_t ns_changed[VFU_NVME_MAX_NS]; /* Changed Namespace List log */
	unsigned nns_changed;
	bool aen_ns_pending; /* a namespace event waits for an AER */
	bool aen_ns_masked;  /* sent; masked until the log page is read */

	/* features */
	uint16_t nsqr, ncqr; /* Number of Queues granted (0's based); 0xffff: not set yet */
	uint32_t feat_arb, feat_pm, feat_temp, feat_err, feat_coalesce, feat_atomic, feat_aec;
	bool wce;
	/* shadow doorbells (Doorbell Buffer Config): guest-physical pages, 0 = off */
	uint64_t dbbuf_gpa, eventidx_gpa;
	volatile uint32_t *dbbuf, *eventidx;

	/* reactor operations (N3) */
	unsigned nrctx;
	struct vfu_rctx *rctx[VH_MAX_REACTORS];
	bool busy;
	unsigned op_pending;
	vfu_op_fn op_fn;
	vfu_op_done op_done;
	struct vfu_sq *op_sq; /* the queue an attach/detach operation is about */
	struct vfu_cq *op_cq;
	unsigned op_target;          /* rctx index for single-context ops, or UINT32_MAX for all */
	struct vfu_session *op_held; /* the session whose input the operation holds */
	void (*after_op)(struct vfu_nvme *n); /* continuation queued while busy */
	vfu_op_done reset_done;               /* after vfu_nvme_reset_queues */
	vfu_op_done final;                    /* frees the controller after its last operation */
	bool admin_pending;                   /* the admin queue was kicked while busy */
	bool frozen; /* live upgrade: admin commands wait (admin_pending) for the thaw or hand-over
	              */
	bool disconnect_pending;
	struct vh_msg_node fail_node;
	char fail_why[96];
};

/* ---- nvme_pci.c: configuration space, regions, interrupts (control thread) ---- */
void vfu_nvme_pci_init(struct vfu_nvme *n);
void vfu_nvme_pci_reset(struct vfu_nvme *n);
extern const struct vfu_dev_ops vfu_nvme_dev_ops;
/* Device ops of nvme_ctrlr.c that nvme_pci.c puts in the table (see vfu_dev_ops). */
int vfu_nvme_dma_quiesce(void *dev);
int vfu_nvme_dma_changed(void *dev);
int vfu_nvme_device_reset(void *dev);
void vfu_nvme_disconnect(void *dev, struct vfu_session *s);
/* Signal MSI-X vector @iv if it has an eventfd. Any thread (N4). */
void vfu_nvme_irq(struct vfu_nvme *n, uint16_t iv);
/* Close every interrupt eventfd (after the queues stopped). Control thread. */
void vfu_nvme_irq_close_all(struct vfu_nvme *n);

/* ---- nvme_ctrlr.c: registers and lifecycle (control thread) ---- */
/* Power-on state of the registers and nodes (after the PCI init). */
void vfu_nvme_ctrlr_init(struct vfu_nvme *n);
/* BAR0 access (registers; the doorbell page reads and writes the shared memory). */
int vfu_nvme_bar0_access(struct vfu_nvme *n, uint64_t off, void *buf, uint32_t count, bool write);
/* Run @fn on every reactor context (@target UINT32_MAX) or one; @done when all finished. */
void vfu_nvme_op(struct vfu_nvme *n, unsigned target, vfu_op_fn fn, vfu_op_done done);
/* Stop every queue and forget the controller state (CC.EN=0, reset, disconnect). */
void vfu_nvme_reset_queues(struct vfu_nvme *n, vfu_op_done done);
/* The guest broke the controller (from any thread: posts to the control thread). */
void vfu_nvme_fatal(struct vfu_nvme *n, const char *why);
/* Translate a queue's memory; NULL if not in one mapped region with read+write. */
void *vfu_nvme_queue_ptr(struct vfu_nvme *n, uint64_t gpa, uint64_t len);
/* Re-translate every queue after a DMA table change; false if one lost its memory. */
bool vfu_nvme_retranslate(struct vfu_nvme *n);
/* Control thread: the DMA table the reactors translate with (the session's). */
const struct vfu_dma *vfu_nvme_dma(const struct vfu_nvme *n);

/* ---- nvme_admin.c: the admin queue (control thread) ---- */
void vfu_nvme_admin_kick(void *arg); /* n->admin_node */
void vfu_nvme_admin_reset(struct vfu_nvme *n);
/* A namespace was attached or detached: log it and raise the event (if enabled). */
void vfu_nvme_ns_changed(struct vfu_nvme *n, uint32_t nsid);

/*
 * ---- nvme_io.c: the reactor side ----
 *
 * Reactor operations (vfu_op_fn, run by vfu_nvme_op on the context's reactor). Each returns
 * true when it is done, or false when it waits for the context's (or the queue's) in-flight
 * commands: it is then called again after completions until it returns true. The queue an
 * attach/detach is about is n->op_sq / n->op_cq, set by the control thread before the op.
 *   start / stop          create / remove the context's poller and timerfd (stop also puts
 *                         every bdev channel)
 *   attach_cq / attach_sq link the queue into the context (attach_sq takes the channels of
 *                         the namespaces there are)
 *   detach_sq             stop fetching, wait for the SQ's commands, unlink (the last SQ of the
 *                         context puts its channels)
 *   detach_cq             unlink
 *   detach_all            stop every queue, wait for every command, unlink all, stop watching
 *                         the admin doorbells, put the channels (reset, shutdown, disconnect)
 *   pause / resume        stop fetching and wait for every command (then put the channels of
 *                         namespaces being removed) / fetch again
 *   barrier               nothing: running it proves no poll is in progress there
 *   watch_admin           the first context watches the admin doorbells (N2); detach_all
 *                         stops it
 *   freeze                live upgrade, old process: pause, then put every bdev channel (the
 *                         new process opens its own; an NVMe bdev must have none open)
 *   adopt                 live upgrade, new process: link the queues the hand-over rebuilt
 *                         (n->sqs / n->cqs whose rctx is this one), take the channels, signal
 *                         the vectors of CQs holding entries the host has not consumed, and
 *                         the first context watches the admin doorbells if enabled
 */
bool vfu_rctx_start(struct vfu_rctx *x);
bool vfu_rctx_stop(struct vfu_rctx *x);
bool vfu_rctx_attach_cq(struct vfu_rctx *x);
bool vfu_rctx_attach_sq(struct vfu_rctx *x);
bool vfu_rctx_detach_sq(struct vfu_rctx *x);
bool vfu_rctx_detach_cq(struct vfu_rctx *x);
bool vfu_rctx_detach_all(struct vfu_rctx *x);
bool vfu_rctx_pause(struct vfu_rctx *x);
bool vfu_rctx_resume(struct vfu_rctx *x);
bool vfu_rctx_barrier(struct vfu_rctx *x);
bool vfu_rctx_watch_admin(struct vfu_rctx *x);
bool vfu_rctx_freeze(struct vfu_rctx *x);
bool vfu_rctx_adopt(struct vfu_rctx *x);
/* Reactor: an operation that waited for in-flight I/O may now finish. */
void vfu_rctx_check_drained(struct vfu_rctx *x);
/* Allocate an SQ's request slots and DSM buffer; free them. Control thread. */
int vfu_sq_alloc(struct vfu_sq *sq);
void vfu_sq_free(struct vfu_sq *sq);

/* ---- nvme_prp.c: data pointers → iovecs (pure; any thread) ---- */
/*
 * Map the data of a command: @len bytes described by PRP1/PRP2 (PSDT 00b) or the SGL in
 * PRP1/PRP2 (PSDT 01b/10b), into at most @max iovecs into guest memory that allows @prot.
 * Returns NVME_ST_OK and *niov, or the NVMe status to complete the command with.
 */
uint16_t vfu_nvme_map_data(const struct vfu_dma *dma, const struct vh_nvme_sqe *cmd, uint64_t len,
                           uint32_t prot, struct iovec *iov, unsigned max, unsigned *niov);
/* Copy @len bytes between @buf and the command's data buffer (admin data, DSM ranges). */
uint16_t vfu_nvme_copy_to_guest(const struct vfu_dma *dma, const struct vh_nvme_sqe *cmd,
                                const void *buf, uint64_t len);
uint16_t vfu_nvme_copy_from_guest(const struct vfu_dma *dma, const struct vh_nvme_sqe *cmd,
                                  void *buf, uint64_t len);

/* Doorbell of queue @qid: SQ tail (cq = false) or CQ head, as the guest last wrote it. */
static inline uint32_t
vfu_nvme_db_read(const struct vfu_nvme *n, unsigned qid, bool cq)
{
	const uint32_t *db = (const uint32_t *)n->db_page;

	return VH_READ_ONCE(db[2 * qid + (cq ? 1 : 0)]);
}

#endif
