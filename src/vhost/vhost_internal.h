/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost internals shared by socket.c, msg.c, session.c, mem.c, vring.c and blk.c.
 *
 * Ownership (docs/design.md rules 7-10):
 * - struct vh_session and everything in it belong to the control thread, except a started
 *   virtqueue's "reactor-owned" fields, which belong to that queue's reactor from the start
 *   message until the reactor reports the queue stopped.
 * - The control thread changes a queue's configuration, and the session's memory table, only
 *   while the queue is stopped (it quiesces started queues first).
 */
#ifndef VH_VHOST_INTERNAL_H
#define VH_VHOST_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bdev/bdev.h"
#include "core/evloop.h"
#include "core/log.h"
#include "core/reactor.h"
#include "vhost/protocol.h"
#include "vhost/vhost.h"

#define VH_MAX_MEM_REGIONS 32 /* GET_MAX_MEM_SLOTS */
#define VH_MAX_QUEUE_SIZE  32768
#define VH_BLK_SEG_MAX     126           /* data segments advertised (seg_max) */
#define VH_BLK_SIZE_MAX    (128u * 1024) /* bytes per segment advertised (size_max) */
/* Header + data + status descriptors, plus room for buffers split at region boundaries. */
#define VH_BLK_MAX_IOV 136
#define VH_VQ_BATCH    64 /* requests fetched per queue per poll */
/*
 * Request slots per queue: in-flight requests are bounded by this, not by the queue size, so a
 * front-end asking for 64 queues of 32768 entries cannot make us allocate gigabytes. When all
 * slots are busy the queue simply stops fetching until completions free some.
 */
#define VH_VQ_MAX_SLOTS    512
#define VH_VQ_SCRATCH_DESC 128 /* indirect tables copied out when not contiguous */

/* ---- memory table (mem.c) ---- */

struct vh_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t qva; /* the front-end's virtual address (ring addresses use it) */
	uint64_t mmap_offset;
	void *map_base; /* what we mmap'ed */
	uint64_t map_size;
	uint8_t *hva;    /* host address of gpa: map_base + mmap_offset % page size */
	int sigbus_area; /* handle of map_base in the SIGBUS registry (core/sigbus.h), or -1 */
};

struct vh_mem {
	uint32_t nregions;
	struct vh_mem_region regions[VH_MAX_MEM_REGIONS];
};

/*
 * Map one region from @fd. Validates size, overflow of gpa/qva + size, that the fd is a
 * regular file on an accepted filesystem and large enough, and maps only the region (at most
 * the per-session limit), registered for SIGBUS recovery. Does not close @fd. Returns 0,
 * -EINVAL, -EBADF, -EOPNOTSUPP (filesystem refused), -E2BIG (over the limit), -ENOMEM (e.g. no
 * free huge pages), -ENOSPC (SIGBUS registry full) or another -errno from mmap. @owner (the
 * session, or NULL) is charged for the region in the bdev layer's shared tables. Control thread.
 */
int vh_mem_region_map(struct vh_mem_region *r, const struct vhost_user_memory_region *wire, int fd,
                      const void *owner);
void vh_mem_region_unmap(struct vh_mem_region *r);
/* -EINVAL if @r overlaps a region of @m in guest-physical or front-end virtual space. */
int vh_mem_check_overlap(const struct vh_mem *m, const struct vh_mem_region *r);
/*
 * May mapped region @r join table @m (NULL: empty)? -EINVAL if it overlaps (as above), -E2BIG
 * if the table's mappings would exceed the per-session limit (vh_vhost_set_max_guest_mem).
 * Control thread.
 */
int vh_mem_check_add(const struct vh_mem *m, const struct vh_mem_region *r);
/* True if a SIGBUS hit a mapping of @m (may be NULL): the session must close. Any thread. */
bool vh_mem_faulted(const struct vh_mem *m);
void vh_mem_unmap_all(struct vh_mem *m);

/*
 * Translate [gpa, gpa+len) into host iovecs, splitting at region boundaries. Appends at
 * iov[*n], never past @max. Returns 0, -EFAULT (some byte unmapped, or wrap) or -ENOBUFS.
 */
int vh_mem_gpa_to_iov(const struct vh_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov, int *n,
                      int max);
/* Host address of [gpa, gpa+len) if it lies in one region, else NULL. */
void *vh_mem_gpa_to_hva(const struct vh_mem *m, uint64_t gpa, uint64_t len);
/* Host address of front-end VA range [qva, qva+len) if it lies in one region, else NULL. */
void *vh_mem_qva_to_hva(const struct vh_mem *m, uint64_t qva, uint64_t len);
/* Copy @len bytes at @gpa out of guest memory (may span regions). 0 or -EFAULT. */
int vh_mem_copy_from_guest(const struct vh_mem *m, void *dst, uint64_t gpa, uint64_t len);

/* ---- inflight tracking region (inflight.c) ---- */

struct vh_inflight {
	void *map; /* whole mapping */
	uint64_t map_size;
	uint8_t *base; /* map + mmap_offset */
	uint16_t num_queues;
	uint16_t queue_size;
};

/* Bytes per queue in our layout: header + one entry per descriptor, cache-line aligned. */
uint64_t vh_inflight_queue_stride(uint16_t queue_size);
/* GET_INFLIGHT_FD: a sealed, zeroed memfd for @nq queues of @qs. Returns the fd or -errno. */
int vh_inflight_create(uint16_t nq, uint16_t qs, uint64_t *size);
/* SET_INFLIGHT_FD: validate and map. 0 or -errno. */
int vh_inflight_map(struct vh_inflight *ifl, const struct vhost_user_inflight *w, int fd);
void vh_inflight_unmap(struct vh_inflight *ifl);
/*
 * Before a queue of @size entries starts: validate its region (room for @cap entries) and
 * recover. Fills heads[] (capacity @max) with the requests to resubmit, oldest first, sets
 * *count, *next_avail (= used->idx + count) and *counter (highest counter seen). Returns 0, or
 * -EINVAL for a region that cannot be trusted.
 */
int vh_inflight_recover(struct inflight_split_queue *q, uint16_t size, uint16_t cap,
                        uint16_t used_idx, uint16_t *heads, uint32_t max, uint32_t *count,
                        uint16_t *next_avail, uint64_t *counter);

/* ---- virtqueue (vring.c: control side and reactor side) ---- */

struct vh_session;
struct vh_vq;

struct vh_blk_req {
	struct vh_vq *vq;
	uint16_t head;
	uint16_t slot;
	bool inflight;
	uint8_t *status;   /* the status byte in guest memory */
	uint32_t used_len; /* bytes written to device-writable buffers */
	struct vh_blk_req *next_retry;
	struct vh_bdev_io io;
	struct iovec iov[VH_BLK_MAX_IOV];
};

struct vh_vq {
	struct vh_session *s;
	uint16_t idx;

	/* Configuration: written by the control thread while the queue is stopped. */
	uint32_t size;
	bool addr_set;
	struct vhost_vring_addr addr;
	uint16_t base; /* SET_VRING_BASE: next avail index to fetch */
	int kickfd;
	int callfd;
	int errfd;
	bool kick_set; /* SET_VRING_KICK seen (kickfd may be -1 with NOFD) */
	bool enabled;  /* SET_VRING_ENABLE (mirrored to the reactor when started) */
	bool started;  /* control's view: a start was sent and no stop completed */
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
	/*
	 * New call/kick fds for a started queue: VH_VQ_FD_KEEP (no change), -1 (none) or an fd.
	 * Exchanged atomically: the control thread closes an fd the reactor never took, the
	 * reactor closes the one it replaces.
	 */
	int pend_callfd;
	int pend_kickfd;
	int enable_req; /* atomic: the latest SET_VRING_ENABLE for a started queue */

	/* Reactor-owned while started. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t mask;
	uint16_t last_avail; /* next avail entry to fetch */
	uint16_t last_used;  /* next used entry to fill (shadow of used->idx) */
	uint16_t signalled_used;
	bool signalled_used_valid;
	bool event_idx;
	bool running; /* reactor's view of enabled */
	bool stopping;
	bool stop_reported; /* the stopped message went out */
	bool broken;
	uint32_t inflight;
	uint32_t nslots;
	struct vh_blk_req *reqs; /* nslots entries */
	uint16_t *free_slots;    /* stack of free slot numbers */
	uint32_t nfree;
	uint64_t *head_busy;        /* bitmap: head is in flight (a reused head is a violation) */
	struct vring_desc *scratch; /* VH_VQ_SCRATCH_DESC entries */
	void (*stop_done)(struct vh_vq *vq);
	/* Inflight tracking (NULL when the front-end gave no region). */
	struct inflight_split_queue *ifl;
	uint64_t ifl_counter;
	/*
	 * Heads completed since the last publish, at most nslots (a full batch is published at
	 * once). They stay busy in head_busy until published: a guest cannot post a head again
	 * before it saw it used.
	 */
	uint16_t *batch;
	uint32_t nbatch;
	uint16_t *resubmit; /* heads to resubmit at start, oldest first (nslots) */
	uint32_t nresubmit;
	struct vh_blk_req *retry_head;
	struct vh_blk_req **retry_tail;
	struct vh_poller *poller;
	struct vh_bdev_channel *ch;
	struct vh_deferred flush;
	int cur_callfd; /* reactor's copy of callfd */
	int cur_kickfd; /* reactor's copy of kickfd */
	uint64_t stat_requests;
	uint64_t stat_kicks_sent;
	struct vh_log_burst io_errors; /* reactor's: failed requests, logged once per burst */
	char prefix[VH_NAME_MAX + 16];
};

/* Control thread: translate ring addresses and allocate per-request state. 0 or -errno. */
int vh_vq_prepare(struct vh_vq *vq);
/* Control thread: reset a stopped queue's configuration and close its fds. */
void vh_vq_reset(struct vh_vq *vq);
#define VH_VQ_FD_KEEP (-2)

/* Control thread: set up a queue's message nodes (once, when its session is created). */
void vh_vq_init_nodes(struct vh_vq *vq);
/* Control thread: send the start message (cannot fail). */
void vh_vq_start(struct vh_vq *vq);
/*
 * Control thread: ask the reactor to stop fetching, finish in-flight requests and release the
 * queue; then done(vq) runs on the control thread with vq->base = the next avail index.
 */
void vh_vq_stop(struct vh_vq *vq, void (*done)(struct vh_vq *vq));
/*
 * Control thread: hand a new call/kick fd to a started queue. The reactor closes the old one
 * (it may be using it right now); the control thread just records the new one in vq->callfd or
 * vq->kickfd.
 */
void vh_vq_set_callfd_running(struct vh_vq *vq, int fd);
void vh_vq_set_kickfd_running(struct vh_vq *vq, int fd);
void vh_vq_set_enable_running(struct vh_vq *vq, bool enable);
void vh_vq_free_reqs(struct vh_vq *vq);

/* Reactor: used by blk.c. */
void vh_vq_push_used(struct vh_vq *vq, struct vh_blk_req *req);
/* Reactor: release a request that gets no used entry (its session is being closed). */
void vh_vq_drop(struct vh_vq *vq, struct vh_blk_req *req);
/* Reactor: the guest broke the ring's rules; log once, stop the queue, close the session. */
void vh_vq_broken(struct vh_vq *vq, const char *why);

/*
 * Reactor: walk the descriptor chain at @head into req->iov: device-readable buffers first
 * (*nr of them), then device-writable ones (*nw). Returns 0; -EBADMSG for a malformed chain
 * (loop, index out of range, bad indirect table: the session must be closed); -EFAULT for an
 * unmapped buffer; -ENOBUFS for too many segments. On -EFAULT/-ENOBUFS, *status points at the
 * last device-writable byte if it could be found (so the request can still fail cleanly).
 */
int vh_vq_walk_chain(struct vh_vq *vq, const struct vh_mem *mem, uint16_t head, struct iovec *iov,
                     int *nr, int *nw, uint8_t **status);

/* ---- virtio-blk (blk.c, reactor side) ---- */

/* Process one request whose head was just fetched. Reactor thread. */
void vh_blk_handle(struct vh_vq *vq, struct vh_blk_req *req);
/* Resubmit requests that got -EAGAIN/-ENOMEM from the bdev. */
void vh_blk_retry(struct vh_vq *vq);
/* Fill the config space (control thread). */
void vh_blk_fill_config(const struct vh_session *s, struct virtio_blk_config *cfg);
/* Recompute s->write_through from the acked features and wce (after either changes). Control. */
void vh_blk_cache_mode_update(struct vh_session *s);
uint64_t vh_blk_features(const struct vh_vhost_ctrlr *c);

/* ---- controller and session (session.c, socket.c, msg.c) ---- */

struct vh_vhost_ctrlr {
	char name[VH_NAME_MAX];
	char sock_path[108];
	char serial[VIRTIO_BLK_ID_BYTES];
	struct vh_bdev *bdev;
	uint64_t cpumask;
	bool readonly;
	uint16_t num_queues;
	int listen_fd;
	struct vh_evsource *listen_src;
	struct vh_session *session;
	bool deleting;
	struct vh_vhost_ctrlr *next;
	uint64_t stat_connections;
};

/* A handler returns 0, -errno, or VH_MSG_PENDING (it finishes later via vh_msg_complete). */
#define VH_MSG_PENDING 1

struct vh_session {
	struct vh_vhost_ctrlr *c;
	int fd;
	struct vh_evsource *src;
	int backend_fd; /* BACKEND_REQ channel, or -1 */
	bool owner_set;
	bool closing;
	bool broken_reported;
	uint64_t features; /* acked virtio features */
	bool features_set;
	uint64_t protocol_features; /* acked protocol features */
	uint8_t status;             /* SET_STATUS */
	uint8_t wce;                /* config-space writeback byte */
	bool write_through;         /* writes durable at completion; relaxed atomics (blk.c) */
	struct vh_mem *mem;
	uint32_t nvqs; /* queues we accept indices for */
	struct vh_vq vqs[VH_VHOST_MAX_QUEUES];

	/* Message input state. */
	struct vhost_user_msg msg;
	uint32_t msg_got; /* bytes of msg received so far */
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
	bool fd_overflow; /* more than VHOST_USER_MAX_FDS arrived */
	bool paused;
	struct vh_mem *pending_mem; /* table waiting for a quiesce to finish */
	struct vh_inflight inflight;

	struct vh_msg_node free_node; /* control -> control: free once every queue stopped */

	/* Asynchronous operation in progress (quiesce for GET_VRING_BASE or memory changes). */
	unsigned pending_stops;
	void (*op_done)(struct vh_session *s);
	struct vhost_user_msg op_msg;
	char prefix[VH_NAME_MAX + 8];
};

/*
 * msg.c: validate and dispatch the complete message in s->msg. Handlers take the fds they keep
 * (setting s->fds[i] to -1); the caller closes the rest.
 */
void vh_msg_dispatch(struct vh_session *s);
/* Finish a message whose handler returned VH_MSG_PENDING: ack (if asked) with @rc, resume. */
void vh_msg_complete(struct vh_session *s, int rc);
/* Name of a request code for logs. */
const char *vh_msg_name(uint32_t request);

/* socket.c */
int vh_sock_listen(struct vh_vhost_ctrlr *c);
void vh_sock_stop_listening(struct vh_vhost_ctrlr *c);
void vh_sock_resume_listening(struct vh_vhost_ctrlr *c);
/* Send a reply to the current message; @size bytes of payload. 0 or -errno. */
int vh_sock_reply(struct vh_session *s, const struct vhost_user_msg *req, const void *payload,
                  uint32_t size);
/* Same, with one fd attached (GET_INFLIGHT_FD). */
int vh_sock_reply_fd(struct vh_session *s, const struct vhost_user_msg *req, const void *payload,
                     uint32_t size, int fd);
int vh_sock_send_backend(struct vh_session *s, uint32_t request, const void *payload,
                         uint32_t size);
void vh_sock_pause(struct vh_session *s);
/* Close fds received with the current (partial) message. */
void vh_sock_close_fds(struct vh_session *s);
void vh_sock_resume(struct vh_session *s);

/* session.c */
struct vh_session *vh_session_new(struct vh_vhost_ctrlr *c, int fd);
/* Begin closing: stop rings (async), then free and let the controller listen again. */
void vh_session_close(struct vh_session *s, const char *why);
/* Stop every started queue, then run done(s). Input is paused meanwhile. */
void vh_session_quiesce(struct vh_session *s, void (*done)(struct vh_session *s));
/* Stop one started queue, then run done(s). Input is paused meanwhile. */
void vh_session_stop_one(struct vh_session *s, struct vh_vq *vq,
                         void (*done)(struct vh_session *s));
/* Start every queue that is fully configured (after a quiesce or a kick). */
int vh_session_start_ready(struct vh_session *s);
/* Start one queue if it is fully configured. 0, or -errno if the start failed. */
int vh_session_try_start(struct vh_session *s, struct vh_vq *vq);
bool vh_session_any_started(const struct vh_session *s);
/* From a reactor: a queue saw a guest violation. */
void vh_session_report_broken(struct vh_session *s);
void vh_ctrlr_session_gone(struct vh_vhost_ctrlr *c);

#endif
