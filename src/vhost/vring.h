/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Virtqueues (vring.c): the control side (prepare, start, stop, fd and enable updates) and the
 * reactor side (fetch, descriptor walk, used-ring publication, guest notification). Split rings
 * live in vring.c; packed rings (VIRTIO_F_RING_PACKED) in vring_packed.c, which vring.c
 * dispatches to. The ring code knows no device type: each fetched head (split) or buffer
 * (packed) becomes a request slot handed to the controller's device (device.h), which answers
 * it with vh_vq_push_used(), whatever the layout.
 *
 * Ownership (docs/design.md rules 7-9):
 * - The configuration fields are written by the control thread while the queue is stopped.
 * - The reactor-owned fields belong to the queue's reactor from the start message until the
 *   reactor reports the queue stopped; the control thread touches them only through the
 *   message nodes and the pend_* / enable_req atomics.
 */
#ifndef VH_VHOST_VRING_H
#define VH_VHOST_VRING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/log.h"
#include "core/msg.h"
#include "core/reactor.h"
#include "vhost/protocol.h"
#include "vhost/vhost.h"

#define VH_MAX_QUEUE_SIZE 32768
#define VH_VQ_BATCH       64 /* requests fetched per queue per poll */
/*
 * Request slots per queue: in-flight requests are bounded by this, not by the queue size, so a
 * front-end asking for 64 queues of 32768 entries cannot make us allocate gigabytes. When all
 * slots are busy the queue simply stops fetching until completions free some.
 */
#define VH_VQ_MAX_SLOTS    512
#define VH_VQ_SCRATCH_DESC 128 /* indirect tables copied out when not contiguous */
#define VH_VQ_FD_KEEP      (-2)

struct vh_session;
struct vh_vq;
struct vh_mem;
struct vh_dev_ops;
struct inflight_split_queue;
struct vh_vq_packed;

/*
 * One request slot. A device's request type starts with this (device.h: req_size); the ring
 * code fills the generic part, the device the rest.
 */
struct vh_req {
	struct vh_vq *vq;
	uint16_t head; /* split: the chain's head index; packed: the buffer id */
	uint16_t slot;
	bool inflight;
	uint16_t ndesc; /* packed: ring descriptors of the chain (the used position skips them) */
	uint32_t used_len; /* len of the used element: bytes written to device-writable buffers */
	uint16_t ifl_entry,
	        ifl_last; /* packed with inflight tracking: the chain's region entries */
	struct vh_req *next_retry;
};

struct vh_vq {
	struct vh_session *s;
	const struct vh_dev_ops *ops; /* the controller's device */
	const int *log_all;           /* &s->log_all: dirty logging on (atomic) */
	uint16_t idx;

	/* Configuration: written by the control thread while the queue is stopped. */
	uint32_t size;
	bool addr_set;
	struct vhost_vring_addr addr;
	uint32_t base; /* the ring's position (vh_vq_position()): where it starts, where it stopped
	                */
	bool base_set; /* SET_VRING_BASE seen on this connection */
	int kickfd;
	int callfd;
	int errfd;
	bool kick_set; /* SET_VRING_KICK seen (kickfd may be -1 with NOFD) */
	bool enabled;  /* SET_VRING_ENABLE (mirrored to the reactor when started) */
	bool started;  /* control's view: a start was sent and no stop completed */
	/* Live upgrade (upgrade.c): running when the freeze stopped it, and when. */
	bool upgrade_restart;
	uint64_t upgrade_stop_ns;
	struct vh_reactor *reactor;

	/*
	 * Lifecycle messages carry their own queue link, so sending one cannot fail and nobody
	 * spins on a full queue (a wedged reactor must not wedge the control thread).
	 */
	struct vh_msg_node start_node;   /* control -> reactor */
	struct vh_msg_node stop_node;    /* control -> reactor */
	struct vh_msg_node update_node;  /* control -> reactor: pend_* or enable_req changed */
	struct vh_msg_node stopped_node; /* reactor -> control */
	struct vh_msg_node broken_node;  /* reactor -> control */
	struct vh_msg_node sync_node;    /* control -> reactor -> control (vh_vq_sync) */
	void (*sync_done)(struct vh_vq *vq);
	/*
	 * New call/kick fds for a started queue: VH_VQ_FD_KEEP (no change), -1 (none) or an fd.
	 * Exchanged atomically: the control thread closes an fd the reactor never took, the
	 * reactor closes the one it replaces.
	 */
	int pend_callfd;
	int pend_kickfd;
	int enable_req; /* atomic: the latest SET_VRING_ENABLE for a started queue */
	/*
	 * VHOST_VRING_F_LOG: our used-ring writes are logged at used_log_gpa (SET_VRING_ADDR's
	 * log_guest_addr). Changed under a running queue: the address is stored before the flag
	 * (release), the reactor loads the flag with acquire.
	 */
	int used_log_on;
	uint64_t used_log_gpa;

	/* Reactor-owned while started. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t mask;
	uint16_t last_avail; /* next avail entry to fetch */
	uint16_t last_used;  /* next used entry to fill (shadow of used->idx) */
	uint16_t published;  /* the used->idx value last stored */
	uint16_t signalled_used;
	uint32_t mem_hint; /* the memory region the last buffers were in (vh_mem_gpa_to_iov_hinted)
	                    */
	bool signalled_used_valid;
	bool event_idx;
	bool running; /* reactor's view of enabled */
	bool stopping;
	bool stop_reported; /* the stopped message went out */
	bool broken;
	bool no_fetch;        /* the device fetches on demand (vh_vq_fetch_one), not the poller */
	bool nofetch_waiting; /* no_fetch: the device has something waiting for a buffer */
	bool packed;          /* VIRTIO_F_RING_PACKED: the ring is vring_packed.c's (pk) */
	/*
	 * Poll pacing (vring.c, vq_poll): completions published that the driver has not answered
	 * with new requests yet, and until when (vh_ticks(), the reactor iteration's) the avail
	 * ring is left alone.
	 */
	uint32_t owed;
	uint64_t last_fetch; /* vh_ticks() of the last poll that found requests (pacing) */
	uint64_t pace_until; /* 0: not paced */
	uint64_t pace_len;   /* a polling driver's pause, adapted to its batches (vh_ticks()) */
	/* Publishes since the driver last wanted an interrupt (saturates). */
	uint16_t quiet_flushes;
	uint32_t inflight;
	uint32_t nslots;
	uint32_t req_size;    /* bytes per request slot (the device's request type) */
	uint8_t *reqs;        /* nslots slots of req_size bytes */
	uint16_t *free_slots; /* stack of free slot numbers */
	uint32_t nfree;
	uint64_t *head_busy;        /* bitmap: head is in flight (a reused head is a violation) */
	struct vring_desc *scratch; /* VH_VQ_SCRATCH_DESC entries */
	void (*stop_done)(struct vh_vq *vq);
	/* Inflight tracking (NULL when the front-end gave no region). */
	struct inflight_split_queue *ifl;
	uint64_t ifl_counter;
	/*
	 * With an inflight region: heads completed since the last publish, at most nslots (a full
	 * batch is published at once). They stay busy in head_busy until published, so a head
	 * cannot be in one batch twice (its desc.next link would be overwritten).
	 */
	uint16_t *batch;
	uint32_t nbatch;
	uint16_t *resubmit; /* heads to resubmit at start, oldest first (nslots) */
	uint32_t nresubmit;
	struct vh_vq_packed *pk;   /* packed rings: their state (vring_packed.h) */
	struct vh_req *retry_head; /* requests the device asked to retry next poll, in order */
	struct vh_req **retry_tail;
	struct vh_poller *poller;
	void *dq;        /* the device's per-queue state on its reactor (queue_start/queue_stop) */
	bool dq_started; /* queue_start succeeded: queue_stop is owed */
	struct vh_deferred flush;
	int cur_callfd; /* reactor's copy of callfd */
	int cur_kickfd; /* reactor's copy of kickfd */
	uint64_t stat_requests;
	uint64_t stat_kicks_sent;
	/* More counters (vhost/stats.c): one writer, the reactor (VH_STAT_ADD). */
	uint64_t stat_bytes;      /* data read or written by answered requests */
	uint64_t stat_errors;     /* requests answered with an error status */
	uint64_t stat_kicks_recv; /* times a guest notification woke the reactor for this queue */
	struct vh_log_burst io_errors; /* reactor's: failed requests, logged once per burst */
	char prefix[VH_NAME_MAX + 16];
};

/* ---- control thread ---- */

/* Set up a queue's message nodes (once, when its session is created). */
void vh_vq_init_nodes(struct vh_vq *vq);
/* Translate ring addresses and allocate per-request state. 0 or -errno. */
int vh_vq_prepare(struct vh_vq *vq);
/* Reset a stopped queue's configuration and close its fds. */
void vh_vq_reset(struct vh_vq *vq);
void vh_vq_free_reqs(struct vh_vq *vq);
/* Send the start message (cannot fail). */
void vh_vq_start(struct vh_vq *vq);
/*
 * Ask the reactor to stop fetching, finish in-flight requests and release the queue; then
 * done(vq) runs on the control thread with vq->base = the ring's position (vh_vq_position()).
 */
void vh_vq_stop(struct vh_vq *vq, void (*done)(struct vh_vq *vq));
/*
 * The ring's position, in GET_VRING_BASE's format (vhost-user.rst): for a split ring the next
 * avail index to fetch; for a packed ring bits 0-14 the next descriptor to fetch, bit 15 the
 * driver's wrap counter there, bits 16-30 the next used descriptor to write, bit 31 the device's
 * wrap counter. What SET_VRING_BASE set, or where the ring stopped. Control thread, queue
 * stopped. The live-upgrade hand-over carries rings in this format too.
 */
uint32_t vh_vq_position(const struct vh_vq *vq);
/*
 * SET_VRING_BASE: where the ring starts. A split ring takes 16 bits (-EINVAL above); a packed
 * one (@packed: VIRTIO_F_RING_PACKED acked) 32, checked against the size at start. A packed
 * ring's used half is only a hint: every start resumes with everything completed, so used and
 * avail positions are equal (what DPDK's initiators send, 16 bits, works too), and after a crash
 * the inflight region decides. Control thread, queue stopped. 0 or -EINVAL.
 */
int vh_vq_set_position(struct vh_vq *vq, uint32_t pos, bool packed);
/*
 * A round trip through the queue's reactor: done(vq) runs on the control thread after the
 * reactor processed everything sent before (a barrier, not a stop). One at a time per queue.
 */
void vh_vq_sync(struct vh_vq *vq, void (*done)(struct vh_vq *vq));
/*
 * Hand a new call/kick fd to a started queue. The reactor closes the old one (it may be using
 * it right now); the control thread just records the new one in vq->callfd or vq->kickfd.
 */
void vh_vq_set_callfd_running(struct vh_vq *vq, int fd);
void vh_vq_set_kickfd_running(struct vh_vq *vq, int fd);
void vh_vq_set_enable_running(struct vh_vq *vq, bool enable);

/* ---- reactor ---- */

/* Request slot @i of the queue. */
static inline struct vh_req *
vh_vq_req(const struct vh_vq *vq, uint32_t i)
{
	return (struct vh_req *)(vq->reqs + (size_t)i * vq->req_size);
}

/* Answer @req: its used element (req->used_len) goes out with the next publish. */
void vh_vq_push_used(struct vh_vq *vq, struct vh_req *req);
/* Release a request that gets no used entry (its session is being closed). */
void vh_vq_drop(struct vh_vq *vq, struct vh_req *req);
/* Retry @req on the next poll (the device's resubmit() runs then), after earlier retries. */
void vh_vq_defer_retry(struct vh_vq *vq, struct vh_req *req);
/* True while the front-end has dirty logging on (one relaxed load). */
static inline bool
vh_vq_logging(const struct vh_vq *vq)
{
	return __atomic_load_n(vq->log_all, __ATOMIC_RELAXED) != 0;
}

void vh_vq_log_iov_slow(struct vh_vq *vq, const struct iovec *iov, int n);
void vh_vq_log_hva_slow(struct vh_vq *vq, const void *hva, uint64_t len);

/*
 * Live migration: while the front-end has dirty logging on, mark the guest pages behind what
 * the device wrote (host iovecs into guest memory, or one byte range). Call after the write,
 * before answering the request. One relaxed load when logging is off.
 */
static inline void
vh_vq_log_iov(struct vh_vq *vq, const struct iovec *iov, int n)
{
	if (VH_UNLIKELY(__atomic_load_n(vq->log_all, __ATOMIC_RELAXED))) {
		vh_vq_log_iov_slow(vq, iov, n);
	}
}

static inline void
vh_vq_log_hva(struct vh_vq *vq, const void *hva, uint64_t len)
{
	if (VH_UNLIKELY(__atomic_load_n(vq->log_all, __ATOMIC_RELAXED))) {
		vh_vq_log_hva_slow(vq, hva, len);
	}
}
/* The guest or front-end broke the queue's rules: log once, stop the queue, close the session. */
void vh_vq_broken(struct vh_vq *vq, const char *why);
/*
 * For a no_fetch queue (the device takes buffers only when it has something to put in them,
 * like virtio-scsi's event queue): fetch the next available head into a request slot, or NULL
 * if none is available (or the queue is not running). The request is then the device's, like
 * any fetched one.
 */
struct vh_req *vh_vq_fetch_one(struct vh_vq *vq);

/*
 * Walk the descriptor chain at @head into iov[0..max): device-readable buffers first (*nr of
 * them), then device-writable ones (*nw). Returns 0; -EBADMSG for a malformed chain (loop,
 * index out of range, bad indirect table: the session must be closed); -EFAULT for an unmapped
 * buffer; -ENOBUFS for too many segments. *last_w points at the last device-writable byte if
 * there is one (also on -EFAULT/-ENOBUFS, so the request can still fail cleanly), else NULL.
 * A packed ring keeps a request's chain only while it is handed over: call this from
 * ops->handle(), or right after vh_vq_fetch_one() (@head is req->head); -EINVAL otherwise.
 */
static inline int vh_vq_walk_chain(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head,
                                   struct iovec *iov, int max, int *nr, int *nw, uint8_t **last_w);
/* The two layouts' walkers behind vh_vq_walk_chain(). */
int vh_vq_split_walk(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head, struct iovec *iov,
                     int max, int *nr, int *nw, uint8_t **last_w);
int vh_vq_packed_walk(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head, struct iovec *iov,
                      int max, int *nr, int *nw, uint8_t **last_w);

/* Inline: the split ring's hot path pays one test for the packed one's existence. */
static inline int
vh_vq_walk_chain(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head, struct iovec *iov,
                 int max, int *nr, int *nw, uint8_t **last_w)
{
	if (VH_UNLIKELY(vq->packed)) {
		return vh_vq_packed_walk(vq, mem, head, iov, max, nr, nw, last_w);
	}
	return vh_vq_split_walk(vq, mem, head, iov, max, nr, nw, last_w);
}

#endif
