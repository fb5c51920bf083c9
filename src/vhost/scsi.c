/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-scsi device (VIRTIO 1.2 §5.6) behind the device interface (device.h): a controller
 * with up to VH_SCSI_MAX_TARGETS hot-pluggable targets, LUN 0 each, every target a bdev.
 * Queue 0 is the control queue (task management), queue 1 the event queue (hot-plug and
 * capacity events), queues 2.. carry SCSI commands, spread over the controller's reactors like
 * blk queues. The SCSI commands themselves are scsi_cmd.c's.
 *
 * Targets come and go while queues run. A target slot is allocated on first use and lives as
 * long as the controller, so a reactor may always look at it; its generation `gen` is odd while
 * a bdev is attached and changes on every add and remove. A request queue opens a bdev channel
 * for a target lazily, on its first command there, taking a reference (`refs`) and checking the
 * generation again afterwards (a removal in between makes it back off). Removal bumps the
 * generation, tells every running request queue to look again (tgt_node), and releases the bdev
 * once the last queue closed its channel, i.e. once the I/O in flight there has completed;
 * commands arriving meanwhile get BAD_TARGET. The guest learns of both through
 * TRANSPORT_RESET events (RESCAN, REMOVED) on the event queue.
 *
 * Threat model: the guest writes the request headers, CDBs, LUN fields, parameter lists and
 * the event queue's buffers. Headers, CDBs, TMF and AN requests and UNMAP descriptors are
 * copied out before they are looked at; every length is checked against the buffers the chain
 * really has; a request without room for its response header is a broken ring (the session is
 * closed), anything else malformed gets a virtio-scsi or SCSI error and costs nothing else.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/reactor.h"
#include "vhost/device.h"
#include "vhost/mem.h"
#include "vhost/scsi.h"
#include "vhost/session.h"
#include "vhost/vring.h"

/* Request, response and data descriptors, with room for buffers split at region boundaries. */
#define SCSI_MAX_IOV   160
#define SCSI_RESP_IOV  8
#define SCSI_PAT_IOV   8  /* pieces of WRITE SAME's data block */
#define SCSI_EVT_RING  64 /* events waiting for the driver's buffers, per session */
#define SCSI_REQ_SIZE  ((uint32_t)sizeof(struct virtio_scsi_cmd_req))
#define SCSI_RESP_SIZE ((uint32_t)sizeof(struct virtio_scsi_cmd_resp))
/* What we put in the config space for front-ends that ask (QEMU 7.2 uses its own). */
#define SCSI_SEG_MAX     126
#define SCSI_CMD_PER_LUN 128

enum tgt_state {
	TGT_EMPTY = 0,
	TGT_ACTIVE,
	TGT_REMOVING, /* unlinked; the bdev goes once no queue holds a channel to it */
};

struct vh_scsi_ctrlr;

struct scsi_tgt {
	/* Read by the reactors. */
	uint64_t gen;             /* odd while a bdev is attached; bumped on add and on remove */
	struct vh_bdev *bdev;     /* stable while gen is odd (written before gen, release) */
	uint64_t naa;             /* VPD 83h designator, from the bdev's uuid */
	char serial[VH_NAME_MAX]; /* VPD 80h: the bdev's name */
	int refs;                 /* atomic: request queues holding a channel to it */
	int releasing;            /* atomic: a removal waits for refs to reach 0 */
	struct vh_msg_node release_node; /* reactor -> control: the last channel closed */

	/* Control thread. */
	struct vh_scsi_ctrlr *sc;
	uint8_t id;
	uint8_t state; /* enum tgt_state */
};

/* The controller's device state (c->dev). */
struct vh_scsi_ctrlr {
	struct vh_vhost_ctrlr *c;
	struct scsi_tgt *tgts[VH_SCSI_MAX_TARGETS]; /* allocated on first use; atomic pointers */
};

/* A queue's part of its session's device state (lives as long as the session). */
struct scsi_sq {
	struct vh_vq *vq;
	/* control -> the queue's reactor: the target table changed (request queues), or events
	 * are waiting (event queue). */
	struct vh_msg_node node;
	/* Commands in progress per target: written by the queue's reactor, read by the control
	 * queue's (task management waits for them). */
	uint32_t inflight[VH_SCSI_MAX_TARGETS];
};

struct scsi_evt {
	uint32_t event;
	uint32_t reason;
	uint8_t target;
};

/* The session's device state (s->dev). */
struct scsi_session {
	struct vh_session *s;
	uint32_t nq;
	struct scsi_sq *q; /* [nq] */
	/* Events: produced by the control thread, consumed by the event queue's reactor. */
	struct scsi_evt evts[SCSI_EVT_RING];
	uint32_t evt_head; /* control writes (release) */
	uint32_t evt_tail; /* event queue's reactor writes (release) */
	int evt_missed;    /* atomic: an event found the ring full */
};

/* A request queue's view of a target (reactor-owned, in struct scsi_dq). */
struct scsi_qtgt {
	uint64_t gen; /* the generation the channel was opened for */
	struct vh_bdev_channel *ch;
	struct vh_bdev *bdev;
	bool stale; /* the target went; close the channel when its last command completes */
	bool write_cache;
	bool unmap;
	bool write_zeroes;
	uint32_t block_size;
};

/* Per-queue device state (vq->dq), on the queue's reactor. */
struct scsi_dq {
	struct vh_scsi_ctrlr *sc;
	struct scsi_session *ss;
	struct scsi_sq *sq;
	uint32_t nopen; /* channels open */
	/*
	 * Commands answered but not yet published to the driver, per target: they leave
	 * sq->inflight only once the driver can see them (scsi_published()).
	 */
	uint16_t ndone_tids;
	uint8_t done_tids[VH_SCSI_MAX_TARGETS];
	uint32_t done[VH_SCSI_MAX_TARGETS];
	uint8_t scratch[VH_SCSI_BUF_SIZE];
	struct scsi_qtgt t[VH_SCSI_MAX_TARGETS];
};

/* What the next bdev completion of a command means. */
enum req_step {
	STEP_NONE = 0,
	STEP_READ,
	STEP_WRITE,
	STEP_FUA_FLUSH,
	STEP_FLUSH,
	STEP_UNMAP,
	STEP_WS_ZEROES,
	STEP_WS_PATTERN,
	STEP_TMF_WAIT, /* control queue: a TMF waits for the target's commands */
};

struct scsi_unmap_desc {
	uint64_t lba;
	uint64_t nblocks;
};

struct scsi_req {
	struct vh_req r; /* first: the ring code's part */
	struct vh_bdev_io io;
	struct scsi_qtgt *qt; /* target of a command in progress (counted in inflight), or NULL */
	uint16_t tid;
	uint8_t step;
	uint8_t nresp;
	uint32_t resp_len; /* bytes of response we write (<= SCSI_RESP_SIZE) */
	int dout, ndout;   /* data-out iovecs: iov[dout .. dout + ndout) */
	int din, ndin;     /* data-in iovecs */
	uint64_t dout_len; /* bytes the driver sent */
	uint64_t din_cap;  /* bytes the driver can take */
	uint64_t din_len;  /* bytes we wrote to data-in */
	uint64_t dout_used;
	struct vh_scsi_task task;
	uint8_t cdb[VH_SCSI_CDB_SIZE];
	/* Multi-step operations: UNMAP descriptors, WRITE SAME progress. */
	uint32_t ndesc, cur;
	uint64_t ws_lba, ws_left;
	int npat;
	struct iovec pat[SCSI_PAT_IOV];
	struct scsi_unmap_desc desc[VH_SCSI_MAX_UNMAP_DESC];
	struct iovec resp[SCSI_RESP_IOV];
	struct iovec iov[SCSI_MAX_IOV];
};

/* Zeroes for WRITE SAME on a bdev without write-zeroes (read by the bdev, never written). */
static const uint8_t g_zero_block[65536];

static inline struct vh_scsi_ctrlr *
ctrlr_of(const struct vh_vhost_ctrlr *c)
{
	return c->dev;
}

static inline struct scsi_tgt *
tgt_get(const struct vh_scsi_ctrlr *sc, unsigned id)
{
	/* Pairs with the release store that publishes a new slot (tgt_slot()). */
	return __atomic_load_n(&sc->tgts[id], __ATOMIC_ACQUIRE);
}

/* ---- iovec helpers ---- */

static uint64_t
iov_total(const struct iovec *iov, int cnt)
{
	uint64_t t = 0;

	for (int i = 0; i < cnt; i++) {
		t += iov[i].iov_len;
	}
	return t;
}

/*
 * Copy @len bytes from the front of iov[*first .. end), consuming them in place (our copy of
 * the iovecs, not guest memory). 0, or -1 if they hold fewer bytes.
 */
static int
iov_pull(struct iovec *iov, int *first, int end, void *dst, size_t len)
{
	uint8_t *d = dst;
	int i = *first;

	while (len > 0) {
		size_t chunk;

		if (i >= end) {
			return -1;
		}
		chunk = VH_MIN(len, iov[i].iov_len);
		memcpy(d, iov[i].iov_base, chunk);
		d += chunk;
		len -= chunk;
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + chunk;
		iov[i].iov_len -= chunk;
		if (iov[i].iov_len == 0) {
			i++;
		}
	}
	*first = i;
	return 0;
}

/* Scatter @len bytes into iov[0..cnt); returns how many fit. */
static uint64_t
iov_put(const struct iovec *iov, int cnt, const void *src, uint64_t len)
{
	const uint8_t *s = src;
	uint64_t done = 0;

	for (int i = 0; i < cnt && done < len; i++) {
		size_t chunk = (size_t)VH_MIN(len - done, (uint64_t)iov[i].iov_len);

		memcpy(iov[i].iov_base, s + done, chunk);
		done += chunk;
	}
	return done;
}

/* Cut iov[0..*cnt) down to @len bytes (it holds at least that many). */
static void
iov_trim(struct iovec *iov, int *cnt, uint64_t len)
{
	int i = 0;

	while (i < *cnt && len > 0) {
		if (iov[i].iov_len >= len) {
			iov[i].iov_len = (size_t)len;
			len = 0;
		} else {
			len -= iov[i].iov_len;
		}
		i++;
	}
	*cnt = i;
}

/*
 * Move the first @len bytes of iov[*first .. end) into out[0..max) (consuming them). Returns
 * the number of pieces, or -1 if they do not fit in @max pieces.
 */
static int
iov_carve(struct iovec *iov, int *first, int end, uint64_t len, struct iovec *out, int max)
{
	int n = 0, i = *first;

	while (len > 0 && i < end) {
		size_t chunk = (size_t)VH_MIN(len, (uint64_t)iov[i].iov_len);

		if (n == max) {
			return -1;
		}
		out[n].iov_base = iov[i].iov_base;
		out[n].iov_len = chunk;
		n++;
		len -= chunk;
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + chunk;
		iov[i].iov_len -= chunk;
		if (iov[i].iov_len == 0) {
			i++;
		}
	}
	*first = i;
	return n;
}

/*
 * Every buffer of guest memory the device wrote for a request (response, data-in, event),
 * reported before the request is answered: a live migration's dirty log learns about them here
 * (whole buffers: marking more than was written is harmless). One relaxed load when no
 * migration runs.
 */
static inline void
guest_written(struct vh_vq *vq, const struct iovec *iov, int n)
{
	vh_vq_log_iov(vq, iov, n);
}

/* ---- targets as the request queues see them (reactor) ---- */

static void
tgt_put_ref(struct scsi_tgt *t)
{
	/*
	 * The last channel gone while a removal waits: hand the bdev back on the control thread.
	 * Exactly one side wins the exchange (see scsi_remove_target()).
	 */
	if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_exchange_n(&t->releasing, 0, __ATOMIC_SEQ_CST) != 0) {
		vh_control_post(&t->release_node);
	}
}

static void
qtgt_close(struct scsi_dq *dq, unsigned id)
{
	struct scsi_qtgt *qt = &dq->t[id];

	/* The channel goes before the reference: once refs is 0 the bdev may be released. */
	vh_bdev_channel_put(qt->ch);
	qt->ch = NULL;
	qt->bdev = NULL;
	qt->stale = false;
	dq->nopen--;
	tgt_put_ref(tgt_get(dq->sc, id));
}

/* Open a channel to target @id for this queue. NULL if the target is not there. */
static struct scsi_qtgt *
qtgt_open(struct scsi_dq *dq, struct scsi_tgt *t, unsigned id, uint64_t gen)
{
	struct scsi_qtgt *qt = &dq->t[id];
	struct vh_bdev *b;

	__atomic_add_fetch(&t->refs, 1, __ATOMIC_SEQ_CST);
	/* Removed between our first look and the reference? Then the bdev may be going. */
	if (__atomic_load_n(&t->gen, __ATOMIC_SEQ_CST) != gen) {
		tgt_put_ref(t);
		return NULL;
	}
	b = t->bdev;
	qt->ch = vh_bdev_channel_get(b);
	if (qt->ch == NULL) {
		tgt_put_ref(t);
		return NULL;
	}
	qt->gen = gen;
	qt->bdev = b;
	qt->stale = false;
	qt->block_size = vh_bdev_block_size(b);
	qt->write_cache =
	        vh_bdev_has_write_cache(b) && vh_bdev_io_type_supported(b, VH_BDEV_IO_FLUSH);
	qt->unmap = vh_bdev_io_type_supported(b, VH_BDEV_IO_DISCARD);
	qt->write_zeroes = vh_bdev_io_type_supported(b, VH_BDEV_IO_WRITE_ZEROES);
	dq->nopen++;
	return qt;
}

/* The queue's channel to target @id, opened on first use; NULL if there is no such target. */
static struct scsi_qtgt *
qtgt_lookup(struct scsi_dq *dq, unsigned id, bool *nomem)
{
	struct scsi_tgt *t = tgt_get(dq->sc, id);
	struct scsi_qtgt *qt = &dq->t[id];
	uint64_t gen;

	*nomem = false;
	if (t == NULL) {
		return NULL;
	}
	gen = __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE); /* pairs with the add's release */
	if (VH_LIKELY(qt->ch != NULL)) {
		/* A channel to a removed target serves only the commands already running there. */
		return qt->gen == gen ? qt : NULL;
	}
	if (!(gen & 1)) {
		return NULL;
	}
	qt = qtgt_open(dq, t, id, gen);
	*nomem = qt == NULL && __atomic_load_n(&t->gen, __ATOMIC_RELAXED) == gen;
	return qt;
}

static inline uint32_t *
inflight_of(struct scsi_req *req)
{
	struct scsi_dq *dq = req->r.vq->dq;

	return &dq->sq->inflight[req->tid];
}

/* A command on @qt starts / ends: task management waits for these counts. */
static void
count_start(struct scsi_req *req, struct scsi_qtgt *qt)
{
	uint32_t *n = inflight_of(req);

	req->qt = qt;
	__atomic_store_n(n, *n + 1, __ATOMIC_RELAXED);
}

static void
count_end(struct vh_vq *vq, uint16_t tid)
{
	struct scsi_dq *dq = vq->dq;

	if (dq->done[tid]++ == 0) {
		dq->done_tids[dq->ndone_tids++] = (uint8_t)tid;
	}
}

/* Reactor: the answered commands are visible to the driver; only now do they stop counting. */
static void
scsi_published(struct vh_vq *vq)
{
	struct scsi_dq *dq = vq->dq;

	if (dq == NULL) {
		return;
	}
	for (uint16_t i = 0; i < dq->ndone_tids; i++) {
		unsigned tid = dq->done_tids[i];
		uint32_t *n = &dq->sq->inflight[tid];
		uint32_t left = *n - dq->done[tid];

		dq->done[tid] = 0;
		/* Release, pairs with target_busy(): the publish happened before the count drops.
		 */
		__atomic_store_n(n, left, __ATOMIC_RELEASE);
		if (left == 0 && dq->t[tid].stale) {
			qtgt_close(dq, tid);
		}
	}
	dq->ndone_tids = 0;
}

/* Reactor: the target table changed; close channels to targets that went. */
static void
tgt_changed_msg(void *arg)
{
	struct scsi_sq *sq = arg;
	struct vh_vq *vq = sq->vq;
	struct scsi_dq *dq = vq->dq;

	if (dq == NULL) {
		return; /* the queue failed to start */
	}
	for (unsigned id = 0; id < VH_SCSI_MAX_TARGETS && dq->nopen > 0; id++) {
		struct scsi_qtgt *qt = &dq->t[id];

		if (qt->ch == NULL || qt->stale ||
		    __atomic_load_n(&tgt_get(dq->sc, id)->gen, __ATOMIC_ACQUIRE) == qt->gen) {
			continue;
		}
		qt->stale = true;
		if (__atomic_load_n(&sq->inflight[id], __ATOMIC_RELAXED) == 0) {
			qtgt_close(dq, id);
		}
	}
}

/* ---- SCSI commands (request queues, reactor) ---- */

static void
respond(struct vh_vq *vq, struct scsi_req *req, uint8_t response)
{
	struct virtio_scsi_cmd_resp resp;
	const struct vh_scsi_task *t = &req->task;
	uint32_t room = req->resp_len - VH_SCSI_RESP_HDR;

	memset(&resp, 0, sizeof(resp));
	resp.response = response;
	if (response == VIRTIO_SCSI_S_OK) {
		resp.status = t->status;
		resp.sense_len = VH_MIN((uint32_t)t->sense_len, room);
		memcpy(resp.sense, t->sense, resp.sense_len);
	}
	/* Residual of the direction the command used; all of it when nothing moved. */
	if (req->din_cap > 0) {
		resp.resid = (uint32_t)VH_MIN(req->din_cap - req->din_len, (uint64_t)UINT32_MAX);
	} else {
		resp.resid = (uint32_t)VH_MIN(req->dout_len - req->dout_used, (uint64_t)UINT32_MAX);
	}
	iov_put(req->resp, req->nresp, &resp, req->resp_len);
	req->r.used_len = (uint32_t)VH_MIN(req->resp_len + req->din_len, (uint64_t)UINT32_MAX);
	guest_written(vq, req->resp, req->nresp);
	if (req->din_len > 0) {
		guest_written(vq, &req->iov[req->din], req->ndin);
	}
	if (req->qt != NULL) {
		req->qt = NULL;
		count_end(vq, req->tid);
	}
	vh_vq_push_used(vq, &req->r);
}

static void
respond_sense(struct vh_vq *vq, struct scsi_req *req, uint8_t key, uint16_t asc)
{
	vh_scsi_task_sense(&req->task, key, asc);
	respond(vq, req, VIRTIO_SCSI_S_OK);
}

static void submit_step(struct vh_vq *vq, struct scsi_req *req);

static void
io_failed(struct vh_vq *vq, struct scsi_req *req, int rc)
{
	uint32_t suppressed;

	if (VH_LOG_ERROR <= vh_log_get_level() &&
	    vh_log_burst_allow(&vq->io_errors, vh_now_ns(), &suppressed)) {
		if (suppressed) {
			vh_log(VH_LOG_ERROR, vq->prefix,
			       "%u more failed command(s) since the last report", suppressed);
		}
		vh_log(VH_LOG_ERROR, vq->prefix,
		       "target %u: I/O error %d (opcode 0x%02x, offset %" PRIu64 ", length %" PRIu64
		       ")",
		       req->tid, rc, req->cdb[0], req->io.offset, req->io.length);
	}
	if (req->step == STEP_READ) {
		respond_sense(vq, req, VH_SCSI_SK_MEDIUM_ERROR, VH_SCSI_ASC_UNRECOVERED_READ);
	} else {
		respond_sense(vq, req, VH_SCSI_SK_MEDIUM_ERROR, VH_SCSI_ASC_WRITE_ERROR);
	}
}

/* Set up the next piece of a WRITE SAME of a non-zero pattern: as many blocks as iovecs fit. */
static void
ws_pattern_chunk(struct scsi_req *req)
{
	uint32_t bs = req->qt->block_size;
	uint64_t blocks = VH_MIN(req->ws_left, (uint64_t)(SCSI_MAX_IOV / req->npat));
	int n = 0;

	for (uint64_t b = 0; b < blocks; b++) {
		for (int p = 0; p < req->npat; p++) {
			req->iov[n++] = req->pat[p];
		}
	}
	req->io.type = VH_BDEV_IO_WRITE;
	req->io.flags = 0;
	req->io.offset = req->ws_lba * bs;
	req->io.length = blocks * bs;
	req->io.iov = req->iov;
	req->io.iovcnt = n;
	req->ws_lba += blocks;
	req->ws_left -= blocks;
}

/* Set up the next UNMAP descriptor with blocks in it; false when none is left. */
static bool
unmap_next(struct scsi_req *req)
{
	uint32_t bs = req->qt->block_size;

	while (req->cur < req->ndesc && req->desc[req->cur].nblocks == 0) {
		req->cur++;
	}
	if (req->cur == req->ndesc) {
		return false;
	}
	req->io.type = VH_BDEV_IO_DISCARD;
	req->io.flags = 0;
	req->io.offset = req->desc[req->cur].lba * bs;
	req->io.length = req->desc[req->cur].nblocks * bs;
	req->io.iov = NULL;
	req->io.iovcnt = 0;
	req->cur++;
	return true;
}

static void
set_flush(struct scsi_req *req, uint8_t step)
{
	req->step = step;
	req->io.type = VH_BDEV_IO_FLUSH;
	req->io.flags = 0;
	req->io.offset = 0;
	req->io.length = 0;
	req->io.iov = NULL;
	req->io.iovcnt = 0;
}

/* A bdev operation of @req finished: go on with the command or complete it. */
static void
io_done(struct vh_bdev_io *io, int rc)
{
	struct scsi_req *req = VH_CONTAINER_OF(io, struct scsi_req, io);
	struct vh_vq *vq = req->r.vq;

	if (VH_UNLIKELY(rc != 0)) {
		io_failed(vq, req, rc);
		return;
	}
	switch (req->step) {
	case STEP_READ:
		req->din_len = req->task.xfer;
		break;
	case STEP_WRITE:
		req->dout_used = req->task.xfer;
		if (req->task.fua && req->qt->write_cache) {
			set_flush(req, STEP_FUA_FLUSH); /* FUA: durable before GOOD */
			submit_step(vq, req);
			return;
		}
		break;
	case STEP_UNMAP:
		if (unmap_next(req)) {
			submit_step(vq, req);
			return;
		}
		break;
	case STEP_WS_PATTERN:
		if (req->ws_left > 0) {
			ws_pattern_chunk(req);
			submit_step(vq, req);
			return;
		}
		break;
	default:
		break;
	}
	vh_scsi_task_good(&req->task);
	respond(vq, req, VIRTIO_SCSI_S_OK);
}

static void
submit_step(struct vh_vq *vq, struct scsi_req *req)
{
	int rc = vh_bdev_submit(req->qt->ch, &req->io);

	if (VH_LIKELY(rc == 0)) {
		return;
	}
	if (rc == -EAGAIN || rc == -ENOMEM) {
		/* Back-pressure, not an error: try again on the next poll, in order. */
		vh_vq_defer_retry(vq, &req->r);
		return;
	}
	VH_LOG_RL(VH_LOG_ERROR, vq->prefix, "target %u: submit failed: %d", req->tid, rc);
	respond_sense(vq, req, VH_SCSI_SK_HARDWARE_ERROR, VH_SCSI_ASC_INTERNAL_FAILURE);
}

static void tmf_check(struct vh_vq *vq, struct scsi_req *req);

static int
scsi_resubmit(struct vh_vq *vq, struct vh_req *r)
{
	struct scsi_req *req = (struct scsi_req *)r;
	int rc;

	if (vq->idx == VH_SCSI_CTRLQ) {
		/* A task management function waiting for commands to finish. */
		tmf_check(vq, req);
		return req->step == STEP_TMF_WAIT ? -EAGAIN : 0;
	}
	rc = vh_bdev_submit(req->qt->ch, &req->io);
	if (rc == -EAGAIN || rc == -ENOMEM) {
		return -EAGAIN;
	}
	if (rc < 0) {
		respond_sense(vq, req, VH_SCSI_SK_HARDWARE_ERROR, VH_SCSI_ASC_INTERNAL_FAILURE);
	}
	return 0;
}

/* Whether the first @bs bytes of the data-out buffers are zero (each byte read once). */
static bool
block_is_zero(const struct iovec *iov, int cnt, uint32_t bs)
{
	uint64_t left = bs;

	for (int i = 0; i < cnt && left > 0; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t n = (size_t)VH_MIN(left, (uint64_t)iov[i].iov_len);

		for (size_t j = 0; j < n; j++) {
			if (VH_READ_ONCE(p[j]) != 0) {
				return false;
			}
		}
		left -= n;
	}
	return true;
}

static void
start_write_same(struct vh_vq *vq, struct scsi_req *req)
{
	struct scsi_qtgt *qt = req->qt;
	struct vh_scsi_task *t = &req->task;
	uint32_t bs = qt->block_size;
	int first = req->dout;

	if (!t->ws_ndob && !block_is_zero(&req->iov[req->dout], req->ndout, bs)) {
		/* A real pattern: write it block by block, straight from the guest's buffer. */
		req->npat = iov_carve(req->iov, &first, req->dout + req->ndout, bs, req->pat,
		                      SCSI_PAT_IOV);
		if (req->npat < 0) {
			vh_scsi_task_invalid_field(t, false, 0, -1);
			respond(vq, req, VIRTIO_SCSI_S_OK);
			return;
		}
		req->dout_used = bs;
		req->ws_lba = t->lba;
		req->ws_left = t->nblocks;
		req->step = STEP_WS_PATTERN;
		ws_pattern_chunk(req);
		submit_step(vq, req);
		return;
	}
	req->dout_used = t->xfer;
	if (qt->write_zeroes) {
		req->step = STEP_WS_ZEROES;
		req->io.type = VH_BDEV_IO_WRITE_ZEROES;
		req->io.flags = t->ws_unmap && qt->unmap ? VH_BDEV_IO_F_UNMAP : 0;
		req->io.offset = t->lba * bs;
		req->io.length = t->nblocks * bs;
		req->io.iov = NULL;
		req->io.iovcnt = 0;
		submit_step(vq, req);
		return;
	}
	/* No write-zeroes in the back-end: write zero blocks from a static buffer. */
	req->pat[0].iov_base = (void *)g_zero_block;
	req->pat[0].iov_len = bs;
	req->npat = 1;
	req->ws_lba = t->lba;
	req->ws_left = t->nblocks;
	req->step = STEP_WS_PATTERN;
	ws_pattern_chunk(req);
	submit_step(vq, req);
}

static void
start_unmap(struct vh_vq *vq, struct scsi_req *req)
{
	struct vh_scsi_task *t = &req->task;
	int first = req->dout, end = req->dout + req->ndout, n;
	uint8_t hdr[8], d[16];

	if (iov_pull(req->iov, &first, end, hdr, sizeof(hdr)) < 0) {
		memset(hdr, 0, sizeof(hdr)); /* vh_scsi_unmap_header() refuses it by the length */
	}
	n = vh_scsi_unmap_header(t, hdr, req->dout_len);
	if (n < 0) {
		respond(vq, req, VIRTIO_SCSI_S_OK);
		return;
	}
	/* Every descriptor copied and checked before the first block goes (SBC-3 §5.25). */
	for (int i = 0; i < n; i++) {
		if (iov_pull(req->iov, &first, end, d, sizeof(d)) < 0) {
			/* Cannot happen: the header's count is bounded by what was sent. */
			vh_scsi_task_sense(t, VH_SCSI_SK_ILLEGAL_REQUEST,
			                   VH_SCSI_ASC_PARAM_LIST_LENGTH);
			respond(vq, req, VIRTIO_SCSI_S_OK);
			return;
		}
		if (vh_scsi_unmap_desc(t, d, &req->desc[i].lba, &req->desc[i].nblocks) < 0) {
			respond(vq, req, VIRTIO_SCSI_S_OK);
			return;
		}
	}
	req->dout_used = VH_MIN(t->xfer, req->dout_len);
	req->ndesc = (uint32_t)n;
	req->cur = 0;
	req->step = STEP_UNMAP;
	if (!unmap_next(req)) {
		vh_scsi_task_good(t);
		respond(vq, req, VIRTIO_SCSI_S_OK);
		return;
	}
	submit_step(vq, req);
}

/* Turn the command layer's decision into bdev I/O. */
static void
start_io(struct vh_vq *vq, struct scsi_req *req, struct scsi_qtgt *qt)
{
	struct vh_scsi_task *t = &req->task;
	uint32_t bs = qt->block_size;

	count_start(req, qt);
	req->io.cb = io_done;
	switch (t->op) {
	case VH_SCSI_OP_READ:
	case VH_SCSI_OP_WRITE: {
		bool rd = t->op == VH_SCSI_OP_READ;
		int *cnt = rd ? &req->ndin : &req->ndout;

		/* The buffers must hold the whole transfer (SAM: overrun otherwise). */
		if (t->xfer > (rd ? req->din_cap : req->dout_len)) {
			respond(vq, req, VIRTIO_SCSI_S_OVERRUN);
			return;
		}
		iov_trim(&req->iov[rd ? req->din : req->dout], cnt, t->xfer);
		req->step = rd ? STEP_READ : STEP_WRITE;
		req->io.type = rd ? VH_BDEV_IO_READ : VH_BDEV_IO_WRITE;
		req->io.flags = 0;
		req->io.offset = t->lba * bs;
		req->io.length = t->xfer;
		req->io.iov = &req->iov[rd ? req->din : req->dout];
		req->io.iovcnt = *cnt;
		break;
	}
	case VH_SCSI_OP_FLUSH:
		set_flush(req, STEP_FLUSH);
		break;
	case VH_SCSI_OP_UNMAP:
		start_unmap(vq, req);
		return;
	case VH_SCSI_OP_WRITE_SAME:
		if (t->xfer > req->dout_len) {
			respond(vq, req, VIRTIO_SCSI_S_OVERRUN);
			return;
		}
		start_write_same(vq, req);
		return;
	default:
		respond_sense(vq, req, VH_SCSI_SK_HARDWARE_ERROR, VH_SCSI_ASC_INTERNAL_FAILURE);
		return;
	}
	submit_step(vq, req);
}

/* Run one command for target @qt (NULL: no logical unit at this LUN). */
static void
run_command(struct vh_vq *vq, struct scsi_req *req, struct scsi_qtgt *qt, bool lun0)
{
	struct scsi_dq *dq = vq->dq;
	struct scsi_tgt *tgt = tgt_get(dq->sc, req->tid);
	struct vh_scsi_task *t = &req->task;
	struct vh_scsi_lu lu;

	lu.num_blocks = vh_bdev_num_blocks(qt->bdev);
	lu.block_size = qt->block_size;
	lu.write_cache = qt->write_cache;
	lu.unmap = qt->unmap;
	lu.naa = tgt->naa;
	lu.serial = tgt->serial;
	t->cdb = req->cdb;
	t->lu = lun0 ? &lu : NULL;
	vh_scsi_exec(t, dq->scratch, sizeof(dq->scratch));
	if (t->op == VH_SCSI_OP_DONE) {
		if (t->data_len > 0 && req->ndin > 0) {
			req->din_len =
			        iov_put(&req->iov[req->din], req->ndin, dq->scratch, t->data_len);
		}
		respond(vq, req, VIRTIO_SCSI_S_OK);
		return;
	}
	start_io(vq, req, qt);
}

/*
 * Split the chain into the request header, data-out, the response and data-in. Returns 0, or
 * -1 if there is no room for a response at all (a broken ring: the caller closes the session).
 */
static int
split_chain(struct scsi_req *req, int nr, int nw, uint32_t hdr_size, uint32_t resp_size, void *hdr,
            bool *hdr_ok)
{
	int first = nr, end = nr + nw;
	uint64_t wtotal = iov_total(&req->iov[nr], nw);

	if (wtotal < VH_SCSI_RESP_HDR) {
		return -1; /* not even the response's fixed part fits */
	}
	req->resp_len = (uint32_t)VH_MIN(wtotal, (uint64_t)resp_size);
	req->nresp = 0;
	{
		int n = iov_carve(req->iov, &first, end, req->resp_len, req->resp, SCSI_RESP_IOV);

		if (n < 0) {
			return -1;
		}
		req->nresp = (uint8_t)n;
	}
	req->din = first;
	req->ndin = end - first;
	req->din_cap = iov_total(&req->iov[req->din], req->ndin);
	first = 0;
	*hdr_ok = iov_pull(req->iov, &first, nr, hdr, hdr_size) == 0;
	req->dout = first;
	req->ndout = nr - first;
	req->dout_len = iov_total(&req->iov[req->dout], req->ndout);
	return 0;
}

/* Walk @req's chain. Returns nr/nw, or -1 after dropping the request (session closing). */
static int
walk(struct vh_vq *vq, struct scsi_req *req, int *nr, int *nw)
{
	uint8_t *last_w;
	int rc = vh_vq_walk_chain(vq, vq->s->mem, req->r.head, req->iov, SCSI_MAX_IOV, nr, nw,
	                          &last_w);

	if (VH_UNLIKELY(rc == -EBADMSG)) {
		vh_vq_drop(vq, &req->r);
		vh_vq_broken(vq, "guest violated the ring protocol: malformed descriptor chain");
		return -1;
	}
	if (VH_UNLIKELY(rc < 0)) {
		/* Answer what we can (the buffers we have) with a failure below. */
		VH_LOG_RL(VH_LOG_WARN, vq->prefix, "request buffers %s",
		          rc == -EFAULT ? "outside guest memory" : "have too many segments");
		return 1;
	}
	return 0;
}

static void
no_room(struct vh_vq *vq, struct scsi_req *req)
{
	vh_vq_drop(vq, &req->r);
	vh_vq_broken(vq, "guest violated virtio-scsi: request without room for its response");
}

static void
reset_req(struct scsi_req *req)
{
	req->qt = NULL;
	req->step = STEP_NONE;
	req->din_len = 0;
	req->dout_used = 0;
	req->task.sense_len = 0;
	req->task.status = VH_SCSI_GOOD;
	req->io.flags = 0;
}

static void
cmd_handle(struct vh_vq *vq, struct scsi_req *req)
{
	struct scsi_dq *dq = vq->dq;
	struct virtio_scsi_cmd_req hdr;
	struct scsi_qtgt *qt;
	uint16_t lun_id;
	uint8_t tid;
	bool hdr_ok, nomem;
	int nr, nw, bad;

	bad = walk(vq, req, &nr, &nw);
	if (bad < 0) {
		return;
	}
	if (split_chain(req, nr, nw, SCSI_REQ_SIZE, SCSI_RESP_SIZE, &hdr, &hdr_ok) < 0) {
		no_room(vq, req);
		return;
	}
	if (VH_UNLIKELY(bad || !hdr_ok)) {
		respond(vq, req, VIRTIO_SCSI_S_FAILURE);
		return;
	}
	if (vh_scsi_lun_decode(hdr.lun, &tid, &lun_id) < 0) {
		respond(vq, req, VIRTIO_SCSI_S_BAD_TARGET);
		return;
	}
	req->tid = tid;
	qt = qtgt_lookup(dq, tid, &nomem);
	if (qt == NULL) {
		respond(vq, req, nomem ? VIRTIO_SCSI_S_BUSY : VIRTIO_SCSI_S_BAD_TARGET);
		return;
	}
	memcpy(req->cdb, hdr.cdb, sizeof(req->cdb));
	run_command(vq, req, qt, lun_id == 0);
}

/* ---- task management and asynchronous notification (control queue, reactor) ---- */

/* Commands in progress on target @tid across the session's request queues. */
static uint32_t
target_busy(const struct scsi_session *ss, unsigned tid)
{
	uint32_t n = 0;

	for (uint32_t q = VH_SCSI_REQQ0; q < ss->nq; q++) {
		/* Pairs with the release in count_end(). */
		n += __atomic_load_n(&ss->q[q].inflight[tid], __ATOMIC_ACQUIRE);
	}
	return n;
}

static void
ctrl_respond(struct vh_vq *vq, struct scsi_req *req, const void *resp, uint32_t len)
{
	uint64_t put = iov_put(req->resp, req->nresp, resp, VH_MIN(len, req->resp_len));

	req->r.used_len = (uint32_t)put;
	req->step = STEP_NONE;
	guest_written(vq, req->resp, req->nresp);
	vh_vq_push_used(vq, &req->r);
}

static void
tmf_respond(struct vh_vq *vq, struct scsi_req *req, uint8_t response)
{
	ctrl_respond(vq, req, &response, 1);
}

/*
 * A TMF waiting for the target's commands: VIRTIO 1.2 §5.6.6.2 has every command the function
 * affects completed before its response. We cannot abort a bdev request, so the functions
 * that abort complete when the commands they would abort have completed on their own.
 */
static void
tmf_check(struct vh_vq *vq, struct scsi_req *req)
{
	struct scsi_dq *dq = vq->dq;

	if (target_busy(dq->ss, req->tid) == 0) {
		tmf_respond(vq, req, VIRTIO_SCSI_S_FUNCTION_COMPLETE);
	}
}

static void
tmf_handle(struct vh_vq *vq, struct scsi_req *req, const struct virtio_scsi_ctrl_tmf_req *tmf)
{
	struct scsi_dq *dq = vq->dq;
	struct scsi_tgt *t;
	uint16_t lun_id;
	uint8_t tid;

	if (vh_scsi_lun_decode(tmf->lun, &tid, &lun_id) < 0 || (t = tgt_get(dq->sc, tid)) == NULL ||
	    !(__atomic_load_n(&t->gen, __ATOMIC_ACQUIRE) & 1)) {
		tmf_respond(vq, req, VIRTIO_SCSI_S_BAD_TARGET);
		return;
	}
	if (lun_id != 0) {
		tmf_respond(vq, req, VIRTIO_SCSI_S_INCORRECT_LUN);
		return;
	}
	req->tid = tid;
	switch (tmf->subtype) {
	case VIRTIO_SCSI_T_TMF_ABORT_TASK:
	case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:
	case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:
	case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
	case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET:
		VH_LOG_RL(VH_LOG_NOTICE, vq->prefix,
		          "target %u: task management function %u (%" PRIu32 " command(s) running)",
		          tid, tmf->subtype, target_busy(dq->ss, tid));
		req->step = STEP_TMF_WAIT;
		tmf_check(vq, req);
		if (req->step == STEP_TMF_WAIT) {
			vh_vq_defer_retry(vq, &req->r);
		}
		return;
	case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:
		tmf_respond(vq, req,
		            target_busy(dq->ss, tid) ? VIRTIO_SCSI_S_FUNCTION_SUCCEEDED
		                                     : VIRTIO_SCSI_S_FUNCTION_COMPLETE);
		return;
	default: /* CLEAR ACA (no ACA), QUERY TASK (we do not track tags), unknown */
		tmf_respond(vq, req, VIRTIO_SCSI_S_FUNCTION_REJECTED);
		return;
	}
}

static void
ctrl_handle(struct vh_vq *vq, struct scsi_req *req)
{
	union {
		uint32_t type;
		struct virtio_scsi_ctrl_tmf_req tmf;
		struct virtio_scsi_ctrl_an_req an;
	} u;
	struct virtio_scsi_ctrl_an_resp an = {0};
	int nr, nw, first = 0, bad;

	bad = walk(vq, req, &nr, &nw);
	if (bad < 0) {
		return;
	}
	if (nw == 0) {
		no_room(vq, req);
		return;
	}
	{
		int wfirst = nr;
		int n = iov_carve(req->iov, &wfirst, nr + nw, sizeof(an), req->resp, SCSI_RESP_IOV);

		if (n <= 0) {
			no_room(vq, req);
			return;
		}
		req->nresp = (uint8_t)n;
		req->resp_len = (uint32_t)iov_total(req->resp, n);
	}
	if (bad || iov_pull(req->iov, &first, nr, &u.type, sizeof(u.type)) < 0) {
		tmf_respond(vq, req, VIRTIO_SCSI_S_FAILURE);
		return;
	}
	switch (u.type) {
	case VIRTIO_SCSI_T_TMF:
		if (iov_pull(req->iov, &first, nr, (uint8_t *)&u.tmf + 4, sizeof(u.tmf) - 4) < 0) {
			tmf_respond(vq, req, VIRTIO_SCSI_S_FAILURE);
			return;
		}
		tmf_handle(vq, req, &u.tmf);
		return;
	case VIRTIO_SCSI_T_AN_QUERY:
	case VIRTIO_SCSI_T_AN_SUBSCRIBE:
		/* We report no asynchronous notifications: none is supported, none subscribed. */
		an.event_actual = 0;
		an.response =
		        iov_pull(req->iov, &first, nr, (uint8_t *)&u.an + 4, sizeof(u.an) - 4) < 0
		                ? VIRTIO_SCSI_S_FAILURE
		                : VIRTIO_SCSI_S_OK;
		ctrl_respond(vq, req, &an, sizeof(an));
		return;
	default:
		/* No response layout is defined for an unknown type: answer with nothing. */
		VH_LOG_RL(VH_LOG_WARN, vq->prefix, "unknown control request type %u", u.type);
		ctrl_respond(vq, req, NULL, 0);
		return;
	}
}

/* ---- events (event queue, reactor) ---- */

/* Put one event in a buffer the driver gave us. */
static void
evt_write(struct vh_vq *vq, struct scsi_req *req, uint32_t event, uint32_t reason, uint8_t tid)
{
	struct virtio_scsi_event ev;
	int nr, nw;

	if (walk(vq, req, &nr, &nw) < 0) {
		return;
	}
	if (iov_total(&req->iov[nr], nw) < sizeof(ev)) {
		vh_vq_drop(vq, &req->r);
		vh_vq_broken(vq, "guest violated virtio-scsi: event buffer too small");
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.event = event;
	ev.reason = reason;
	if ((event & ~VIRTIO_SCSI_T_EVENTS_MISSED) != VIRTIO_SCSI_T_NO_EVENT) {
		vh_scsi_lun_encode(tid, ev.lun);
	}
	req->r.used_len = (uint32_t)iov_put(&req->iov[nr], nw, &ev, sizeof(ev));
	guest_written(vq, &req->iov[nr], nw);
	vh_vq_push_used(vq, &req->r);
}

/* Deliver waiting events while the driver has buffers. True if some still wait. */
static bool
scsi_nofetch_poll(struct vh_vq *vq)
{
	struct scsi_dq *dq = vq->dq;
	struct scsi_session *ss;

	if (dq == NULL) {
		return false;
	}
	ss = dq->ss;
	for (;;) {
		uint32_t tail = ss->evt_tail;
		uint32_t head = __atomic_load_n(&ss->evt_head, __ATOMIC_ACQUIRE);
		bool missed = __atomic_load_n(&ss->evt_missed, __ATOMIC_RELAXED) != 0;
		const struct scsi_evt *e = &ss->evts[tail % SCSI_EVT_RING];
		struct vh_req *r;

		if (head == tail && !missed) {
			return false;
		}
		r = vh_vq_fetch_one(vq);
		if (r == NULL) {
			return !vq->broken;
		}
		missed = __atomic_exchange_n(&ss->evt_missed, 0, __ATOMIC_ACQ_REL) != 0;
		if (head == tail) {
			/* Only the overflow to report: the driver rescans (VIRTIO 1.2 §5.6.6.3). */
			evt_write(vq, (struct scsi_req *)r,
			          VIRTIO_SCSI_T_NO_EVENT | VIRTIO_SCSI_T_EVENTS_MISSED, 0, 0);
			continue;
		}
		evt_write(vq, (struct scsi_req *)r,
		          e->event | (missed ? VIRTIO_SCSI_T_EVENTS_MISSED : 0), e->reason,
		          e->target);
		/* Pairs with the acquire in evt_push(): the slot is free again. */
		__atomic_store_n(&ss->evt_tail, tail + 1, __ATOMIC_RELEASE);
		if (vq->broken) {
			return false;
		}
	}
}

static void
evt_wake_msg(void *arg)
{
	struct scsi_sq *sq = arg;

	/* Nothing to do here: the queue's next poll delivers. The message woke the reactor. */
	(void)sq;
}

/* ---- handle, start, stop (reactor) ---- */

static void
scsi_handle(struct vh_vq *vq, struct vh_req *r)
{
	struct scsi_req *req = (struct scsi_req *)r;

	reset_req(req);
	if (vq->idx >= VH_SCSI_REQQ0) {
		cmd_handle(vq, req);
	} else if (vq->idx == VH_SCSI_CTRLQ) {
		ctrl_handle(vq, req);
	} else {
		/*
		 * An event buffer left in flight by a previous instance (inflight resubmission):
		 * it must not be read as the event it carried last time.
		 */
		evt_write(vq, req, VIRTIO_SCSI_T_NO_EVENT, 0, 0);
	}
}

static int
scsi_queue_start(struct vh_vq *vq)
{
	struct scsi_session *ss = vq->s->dev;
	struct scsi_dq *dq = calloc(1, sizeof(*dq));

	if (dq == NULL) {
		return -ENOMEM;
	}
	dq->sc = ctrlr_of(vq->s->c);
	dq->ss = ss;
	dq->sq = &ss->q[vq->idx];
	vq->no_fetch = vq->idx == VH_SCSI_EVTQ;
	vq->dq = dq;
	return 0;
}

static void
scsi_queue_stop(struct vh_vq *vq)
{
	struct scsi_dq *dq = vq->dq;

	/* Every command has completed: no channel is in use. */
	for (unsigned id = 0; id < VH_SCSI_MAX_TARGETS && dq->nopen > 0; id++) {
		if (dq->t[id].ch != NULL) {
			qtgt_close(dq, id);
		}
	}
	free(dq);
	vq->dq = NULL;
}

/* ---- sessions (control) ---- */

static int
scsi_session_init(struct vh_session *s)
{
	struct scsi_session *ss = calloc(1, sizeof(*ss));

	if (ss == NULL) {
		return -ENOMEM;
	}
	ss->s = s;
	ss->nq = s->nvqs;
	ss->q = calloc(ss->nq, sizeof(*ss->q));
	if (ss->q == NULL) {
		free(ss);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < ss->nq; i++) {
		ss->q[i].vq = &s->vqs[i];
		vh_msg_node_init(&ss->q[i].node, i == VH_SCSI_EVTQ ? evt_wake_msg : tgt_changed_msg,
		                 &ss->q[i]);
	}
	s->dev = ss;
	return 0;
}

static void
scsi_session_fini(struct vh_session *s)
{
	struct scsi_session *ss = s->dev;

	free(ss->q);
	free(ss);
	s->dev = NULL;
}

static void
scsi_session_reset(struct vh_session *s)
{
	struct scsi_session *ss = s->dev;

	/* Every queue is stopped: nobody reads the ring. A reset driver rescans anyway. */
	ss->evt_head = 0;
	ss->evt_tail = 0;
	ss->evt_missed = 0;
}

/*
 * Live upgrade: the events still waiting for the driver's event buffers (and whether one was
 * dropped). The target table itself comes back with the config replay; these do not, and a
 * hot-plug the driver has not heard of yet would otherwise never reach it. Every queue is
 * stopped (frozen), so the ring holds still.
 */
static json_t *
scsi_session_save(const struct vh_session *s)
{
	const struct scsi_session *ss = s->dev;
	uint32_t tail = __atomic_load_n(&ss->evt_tail, __ATOMIC_ACQUIRE);
	uint32_t head = ss->evt_head;
	json_t *evts = json_array();

	for (uint32_t i = tail; evts != NULL && i != head; i++) {
		const struct scsi_evt *e = &ss->evts[i % SCSI_EVT_RING];

		if (json_array_append_new(evts, json_pack("[I, I, i]", (json_int_t)e->event,
		                                          (json_int_t)e->reason, (int)e->target)) <
		    0) {
			json_decref(evts);
			return NULL;
		}
	}
	return json_pack("{s:o?, s:b}", "events", evts, "events_missed",
	                 __atomic_load_n(&ss->evt_missed, __ATOMIC_RELAXED) != 0);
}

static bool
get_u32_at(const json_t *a, size_t i, uint32_t max, uint32_t *out)
{
	const json_t *v = json_array_get(a, i);

	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
		return false;
	}
	*out = (uint32_t)json_integer_value(v);
	return true;
}

/* The new process: the waiting events, delivered once the event queue runs. 0 or -EINVAL. */
static int
scsi_session_load(struct vh_session *s, const json_t *state)
{
	struct scsi_session *ss = s->dev;
	const json_t *evts = json_object_get(state, "events"), *e;
	const json_t *missed = json_object_get(state, "events_missed");
	size_t i;

	if (!json_is_array(evts) || json_array_size(evts) > SCSI_EVT_RING ||
	    !json_is_boolean(missed)) {
		return -EINVAL;
	}
	ss->evt_head = 0;
	ss->evt_tail = 0;
	json_array_foreach(evts, i, e)
	{
		uint32_t event, reason, target;

		if (!json_is_array(e) || json_array_size(e) != 3 ||
		    !get_u32_at(e, 0, UINT32_MAX, &event) ||
		    !get_u32_at(e, 1, UINT32_MAX, &reason) ||
		    !get_u32_at(e, 2, VH_SCSI_MAX_TARGETS - 1, &target)) {
			return -EINVAL;
		}
		ss->evts[i] = (struct scsi_evt){event, reason, (uint8_t)target};
	}
	/* Nothing runs yet: the event queue's first poll after the commit sees these. */
	ss->evt_head = (uint32_t)json_array_size(evts);
	ss->evt_missed = json_is_true(missed) ? 1 : 0;
	return 0;
}

/* Post @sq's node to its queue if the queue runs and no stop is on its way. */
static void
poke_queue(struct scsi_session *ss, uint32_t q)
{
	struct vh_vq *vq = &ss->s->vqs[q];

	/*
	 * A stop already sent would run before the node and free the queue's state; the stopped
	 * queue needs no telling (it re-reads the table when it starts again).
	 */
	if (vq->started && vq->stop_done == NULL && !ss->s->closing) {
		vh_reactor_post(vq->reactor, &ss->q[q].node);
	}
}

static void
evt_push(struct scsi_session *ss, uint32_t event, uint32_t reason, uint8_t tid)
{
	uint32_t head = ss->evt_head;

	/* Pairs with the release in scsi_nofetch_poll(): a slot is reused only once read. */
	if (head - __atomic_load_n(&ss->evt_tail, __ATOMIC_ACQUIRE) >= SCSI_EVT_RING) {
		__atomic_store_n(&ss->evt_missed, 1, __ATOMIC_RELEASE);
	} else {
		ss->evts[head % SCSI_EVT_RING] = (struct scsi_evt){event, reason, tid};
		__atomic_store_n(&ss->evt_head, head + 1, __ATOMIC_RELEASE);
	}
	if (ss->nq > VH_SCSI_EVTQ) {
		poke_queue(ss, VH_SCSI_EVTQ);
	}
}

/*
 * The controller's sessions with device state: @fn for each (several during a live migration:
 * every one of them is told). The one place that knows how a controller holds its sessions.
 */
static int
foreach_session(struct vh_scsi_ctrlr *sc, int (*fn)(struct scsi_session *ss, void *arg), void *arg)
{
	for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
		struct vh_session *s = sc->c->sessions[i];
		int rc;

		if (s == NULL || s->closing || s->dev == NULL) {
			continue;
		}
		rc = fn(s->dev, arg);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

struct notice {
	uint32_t event;
	uint32_t reason;
	uint8_t tid;
};

static int
notify_one(struct scsi_session *ss, void *arg)
{
	const struct notice *n = arg;

	/* TRANSPORT_RESET needs HOTPLUG; QEMU 7.2 never passes CHANGE on, so PARAM_CHANGE goes
	 * regardless (Linux handles it whatever it negotiated). */
	if (n->event == VIRTIO_SCSI_T_TRANSPORT_RESET &&
	    !(ss->s->features & (1ull << VIRTIO_SCSI_F_HOTPLUG))) {
		return 0;
	}
	evt_push(ss, n->event, n->reason, n->tid);
	return 1;
}

/* Tell the controller's front-ends about target @tid. Returns how many were told. */
static int
notify(struct vh_scsi_ctrlr *sc, uint32_t event, uint32_t reason, uint8_t tid)
{
	struct notice n = {event, reason, tid};

	return foreach_session(sc, notify_one, &n);
}

static int
poke_one(struct scsi_session *ss, void *arg)
{
	(void)arg;
	for (uint32_t q = VH_SCSI_REQQ0; q < ss->nq; q++) {
		poke_queue(ss, q);
	}
	return 0;
}

/* The target table changed: every running request queue looks at it again. */
static void
poke_request_queues(struct vh_scsi_ctrlr *sc)
{
	foreach_session(sc, poke_one, NULL);
}

/* ---- features and configuration space (control) ---- */

static uint64_t
scsi_features(const struct vh_vhost_ctrlr *c)
{
	return (1ull << VIRTIO_SCSI_F_HOTPLUG) | (1ull << VIRTIO_SCSI_F_CHANGE);
}

static void
scsi_get_config(const struct vh_session *s, uint8_t *out)
{
	struct virtio_scsi_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.num_queues = s->c->num_queues - VH_SCSI_REQQ0;
	cfg.seg_max = SCSI_SEG_MAX;
	cfg.max_sectors = VH_SCSI_MAX_XFER_BYTES / 512;
	cfg.cmd_per_lun = SCSI_CMD_PER_LUN;
	cfg.event_info_size = sizeof(struct virtio_scsi_event);
	cfg.sense_size = VH_SCSI_SENSE_SIZE;
	cfg.cdb_size = VH_SCSI_CDB_SIZE;
	cfg.max_channel = 0;
	cfg.max_target = VH_SCSI_MAX_TARGETS - 1;
	cfg.max_lun = 0;
	memcpy(out, &cfg, sizeof(cfg));
}

/* ---- targets (control) ---- */

/* A stable NAA 3 (locally assigned) identifier from the bdev's uuid: FNV-1a over its digits. */
static uint64_t
naa_from_uuid(const char *uuid)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = uuid; *p != '\0'; p++) {
		if (*p != '-') {
			h ^= (uint8_t)*p;
			h *= 0x100000001b3ull;
		}
	}
	return (3ull << 60) | (h & 0x0fffffffffffffffull);
}

static void tgt_release_msg(void *arg);

static struct scsi_tgt *
tgt_slot(struct vh_scsi_ctrlr *sc, unsigned id)
{
	struct scsi_tgt *t = sc->tgts[id];

	if (t != NULL) {
		return t;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		return NULL;
	}
	t->sc = sc;
	t->id = (uint8_t)id;
	vh_msg_node_init(&t->release_node, tgt_release_msg, t);
	/* Pairs with the acquire in tgt_get(): a reactor sees an initialised slot. */
	__atomic_store_n(&sc->tgts[id], t, __ATOMIC_RELEASE);
	return t;
}

static void
tgt_release(struct scsi_tgt *t)
{
	struct vh_scsi_ctrlr *sc = t->sc;

	VH_NOTICE(sc->c->name, "target %u removed: bdev '%s' released", t->id,
	          vh_bdev_name(t->bdev));
	vh_bdev_release(t->bdev);
	t->bdev = NULL;
	t->state = TGT_EMPTY;
}

static void
tgt_release_msg(void *arg)
{
	struct scsi_tgt *t = arg;

	if (t->state == TGT_REMOVING) {
		tgt_release(t);
	}
}

static int
scsi_bdev_resized(struct vh_vhost_ctrlr *c, struct vh_bdev *b)
{
	struct vh_scsi_ctrlr *sc = ctrlr_of(c);
	int told = 0;

	for (unsigned id = 0; id < VH_SCSI_MAX_TARGETS; id++) {
		struct scsi_tgt *t = sc->tgts[id];

		if (t != NULL && t->state == TGT_ACTIVE && t->bdev == b) {
			/* Reason: ASC in bits 0-7, ASCQ in 8-15: CAPACITY DATA HAS CHANGED. */
			told |= notify(sc, VIRTIO_SCSI_T_PARAM_CHANGE,
			               (VH_SCSI_ASC_CAPACITY_CHANGED >> 8) |
			                       ((VH_SCSI_ASC_CAPACITY_CHANGED & 0xff) << 8),
			               (uint8_t)id);
		}
	}
	return told;
}

static json_t *
scsi_info_json(const struct vh_vhost_ctrlr *c)
{
	const struct vh_scsi_ctrlr *sc = ctrlr_of(c);
	json_t *arr = json_array();

	for (unsigned id = 0; arr != NULL && id < VH_SCSI_MAX_TARGETS; id++) {
		const struct scsi_tgt *t = sc->tgts[id];
		char name[32];
		json_t *o;

		if (t == NULL || t->state == TGT_EMPTY) {
			continue;
		}
		snprintf(name, sizeof(name), "Target %u", id);
		/* SPDK's shape; "removing" (vhostd) while the bdev waits for I/O in flight. */
		o = json_pack("{s:i, s:i, s:s, s:[{s:i, s:s}]}", "scsi_dev_num", (int)id, "id",
		              (int)id, "target_name", name, "luns", "id", 0, "bdev_name",
		              vh_bdev_name(t->bdev));
		if (o != NULL && t->state == TGT_REMOVING) {
			json_object_set_new(o, "removing", json_true());
		}
		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	if (arr == NULL) {
		return NULL;
	}
	return json_pack("{s:o, s:s, s:i}", "scsi", arr, "transport", "vhost_user_scsi",
	                 "num_queues", (int)c->num_queues);
}

static json_t *
scsi_config_json(const struct vh_vhost_ctrlr *c)
{
	const struct vh_scsi_ctrlr *sc = ctrlr_of(c);
	json_t *arr = json_array();

	/* num_queues (vhostd): a front-end started with more request queues cannot reconnect. */
	if (arr == NULL ||
	    json_array_append_new(arr,
	                          json_pack("{s:s, s:{s:s, s:o, s:i}}", "method",
	                                    "vhost_create_scsi_controller", "params", "ctrlr",
	                                    c->name, "cpumask", vh_vhost_cpumask_json(c->cpumask),
	                                    "num_queues", (int)c->num_queues)) < 0) {
		json_decref(arr);
		return NULL;
	}
	for (unsigned id = 0; id < VH_SCSI_MAX_TARGETS; id++) {
		const struct scsi_tgt *t = sc->tgts[id];

		if (t == NULL || t->state != TGT_ACTIVE) {
			continue;
		}
		if (json_array_append_new(arr,
		                          json_pack("{s:s, s:{s:s, s:i, s:s}}", "method",
		                                    "vhost_scsi_controller_add_target", "params",
		                                    "ctrlr", c->name, "scsi_target_num", (int)id,
		                                    "bdev_name", vh_bdev_name(t->bdev))) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static void
scsi_ctrlr_free(struct vh_vhost_ctrlr *c)
{
	struct vh_scsi_ctrlr *sc = ctrlr_of(c);

	/* No session is left, so no queue holds a channel: every bdev can go now. */
	for (unsigned id = 0; id < VH_SCSI_MAX_TARGETS; id++) {
		struct scsi_tgt *t = sc->tgts[id];

		if (t != NULL && t->state != TGT_EMPTY) {
			vh_bdev_release(t->bdev);
		}
		free(t);
	}
	free(sc);
	c->dev = NULL;
}

const struct vh_dev_ops vh_scsi_ops = {
        .name = "scsi",
        .features = scsi_features,
        /*
         * No PROTOCOL_F_CONFIG: QEMU takes a vhost-user-scsi device's config space from its
         * own properties (and warns about a back-end offering it); SPDK's target does not offer
         * it either. GET_CONFIG is still answered for front-ends that ask anyway.
         */
        .protocol_features = 0,
        .session_init = scsi_session_init,
        .session_fini = scsi_session_fini,
        .session_reset = scsi_session_reset,
        .session_save = scsi_session_save,
        .session_load = scsi_session_load,
        .get_config = scsi_get_config,
        .req_size = sizeof(struct scsi_req),
        .queue_start = scsi_queue_start,
        .queue_stop = scsi_queue_stop,
        .handle = scsi_handle,
        .resubmit = scsi_resubmit,
        .nofetch_poll = scsi_nofetch_poll,
        .published = scsi_published,
        .bdev_resized = scsi_bdev_resized,
        .info_json = scsi_info_json,
        .config_json = scsi_config_json,
        .ctrlr_free = scsi_ctrlr_free,
};

/* ---- the vhost.h API (control) ---- */

int
vh_vhost_scsi_create(const struct vh_vhost_scsi_opts *o)
{
	struct vh_vhost_ctrlr *c;
	struct vh_scsi_ctrlr *sc;
	int rc;

	if (vh_name_check(o->name) < 0 ||
	    (o->num_queues != 0 && o->num_queues < VH_SCSI_MIN_QUEUES)) {
		return -EINVAL;
	}
	if (vh_vhost_find(o->name) != NULL) {
		return -EEXIST;
	}
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL) {
		return -ENOMEM;
	}
	rc = vh_ctrlr_create(o->name, o->cpumask, o->num_queues, &vh_scsi_ops, sc, &c);
	if (rc < 0) {
		free(sc);
		return rc;
	}
	sc->c = c;
	VH_NOTICE("vhost",
	          "scsi controller '%s' listening at %s (%u queues: control, event, %u "
	          "request)",
	          c->name, c->sock_path, c->num_queues, c->num_queues - VH_SCSI_REQQ0);
	return 0;
}

/* The scsi controller called @name, or NULL with *rc set. */
static struct vh_scsi_ctrlr *
find_scsi(const char *name, int *rc)
{
	struct vh_vhost_ctrlr *c = vh_vhost_find(name);

	if (c == NULL) {
		*rc = -ENODEV;
		return NULL;
	}
	if (c->ops != &vh_scsi_ops) {
		*rc = -ENOTTY;
		return NULL;
	}
	return ctrlr_of(c);
}

int
vh_vhost_scsi_add_target(const char *ctrlr, int target, const char *bdev_name)
{
	struct vh_scsi_ctrlr *sc;
	struct vh_bdev *b;
	struct scsi_tgt *t;
	int rc = 0;

	sc = find_scsi(ctrlr, &rc);
	if (sc == NULL) {
		return rc;
	}
	if (target < -1 || target >= VH_SCSI_MAX_TARGETS) {
		return -EINVAL;
	}
	if (target == -1) {
		for (target = 0; target < VH_SCSI_MAX_TARGETS; target++) {
			if (sc->tgts[target] == NULL || sc->tgts[target]->state == TGT_EMPTY) {
				break;
			}
		}
		if (target == VH_SCSI_MAX_TARGETS) {
			return -ENOSPC;
		}
	} else if (sc->tgts[target] != NULL && sc->tgts[target]->state != TGT_EMPTY) {
		return sc->tgts[target]->state == TGT_REMOVING ? -EAGAIN : -EEXIST;
	}
	b = vh_bdev_find(bdev_name);
	if (b == NULL) {
		return -ENOENT;
	}
	t = tgt_slot(sc, (unsigned)target);
	if (t == NULL) {
		return -ENOMEM;
	}
	rc = vh_bdev_claim(b, sc->c->name);
	if (rc < 0) {
		return rc;
	}
	t->bdev = b;
	t->naa = naa_from_uuid(vh_bdev_uuid(b));
	snprintf(t->serial, sizeof(t->serial), "%s", vh_bdev_name(b));
	t->state = TGT_ACTIVE;
	/* Publish: the bdev and identity above are visible to a reactor that sees the odd gen. */
	__atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_RELEASE);
	VH_NOTICE(sc->c->name, "target %d: bdev '%s' (%" PRIu64 " blocks of %u bytes)", target,
	          vh_bdev_name(b), vh_bdev_num_blocks(b), vh_bdev_block_size(b));
	notify(sc, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_RESCAN, (uint8_t)target);
	return target;
}

int
vh_vhost_scsi_remove_target(const char *ctrlr, unsigned target)
{
	struct vh_scsi_ctrlr *sc;
	struct scsi_tgt *t;
	int rc = 0;

	sc = find_scsi(ctrlr, &rc);
	if (sc == NULL) {
		return rc;
	}
	if (target >= VH_SCSI_MAX_TARGETS) {
		return -EINVAL;
	}
	t = sc->tgts[target];
	if (t == NULL || t->state == TGT_EMPTY) {
		return -ENOENT;
	}
	if (t->state == TGT_REMOVING) {
		return -EBUSY;
	}
	t->state = TGT_REMOVING;
	/*
	 * Even generation: new commands get BAD_TARGET, and a queue opening a channel right now
	 * backs off (qtgt_open() checks gen after taking its reference).
	 */
	__atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_SEQ_CST);
	VH_NOTICE(sc->c->name, "target %u: removing (bdev '%s')", target, vh_bdev_name(t->bdev));
	notify(sc, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_REMOVED, (uint8_t)target);
	poke_request_queues(sc);
	/*
	 * Whoever sees refs at 0 with releasing set hands the bdev back: here if no queue holds a
	 * channel, else the reactor closing the last one (tgt_put_ref()).
	 */
	__atomic_store_n(&t->releasing, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&t->refs, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_exchange_n(&t->releasing, 0, __ATOMIC_SEQ_CST) != 0) {
		tgt_release(t);
	}
	return 0;
}
