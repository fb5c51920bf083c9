/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade, the vfio-user side (docs/design.md, "Live upgrade by hand-over"): the old
 * process freezes every vfio-user session between two messages with no command in flight and
 * describes it; the new process adopts the same connection, DMA regions, doorbell page,
 * interrupt eventfds, registers and queue positions, and serves on. QEMU's vfio-user client
 * cannot reconnect, so nothing here may close the connection: the client sees a pause.
 *
 * Freeze, per controller with a client: stop reading the connection (bytes and hang-ups wait
 * in the socket for whichever process reads next), hold the admin queue (nvme.h frozen), wait
 * until no vfio-user message, admin command or reactor operation is under way, then pause
 * every I/O queue (fetched commands complete and post their completions) and put the bdev
 * channels. Thaw undoes that. The description then holds the controller's whole state; the
 * configuration replay recreated the controller itself and its namespaces, which the reader
 * checks against the description.
 *
 * Threat model: the description comes from the old worker, which runs the same user's code;
 * it is still checked field by field (a newer or older vhostd may have written it), and
 * everything that came from the client (the DMA fds) goes through the same checks as a
 * DMA_MAP. A bad description fails the upgrade; the old worker serves on.
 *
 * Rules: control thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/log.h"
#include "core/updesc.h"
#include "core/util.h"
#include "vfu/nvme.h"
#include "vfu/vfu.h"
#include "vfu/vfu_internal.h"

/* ---- old process: freeze, thaw ---- */

#define FZ_TICK_NS 1000000ull

static struct {
	bool active;   /* freezing or frozen */
	bool finished; /* done() was called */
	void (*done)(void *arg, int rc);
	void *arg;
	uint64_t deadline;
	struct vh_evsource *timer;
} g_fz;

static void fz_check(void);
static void thaw_ctrlr(struct vh_vfu_ctrlr *c);

static void
fz_paused(struct vfu_nvme *n)
{
	struct vh_vfu_ctrlr *c = (struct vh_vfu_ctrlr *)n;

	c->up_pausing = false;
	c->up_paused = true;
	if (!g_fz.active) {
		thaw_ctrlr(c); /* thawed while the pause ran */
		return;
	}
	fz_check();
}

/* One controller's step towards frozen; clears *all while it is not there yet. */
static int
fz_ctrlr(struct vh_vfu_ctrlr *c, void *arg)
{
	struct vfu_nvme *n = &c->n;
	struct vfu_session *s = n->session;
	bool *all = arg;

	n->frozen = true;
	if (c->dead != NULL || (s != NULL && s->closing)) {
		*all = false; /* a closing session finishes in this process */
		return 0;
	}
	if (s == NULL) {
		return 0;
	}
	if (s->src != NULL) {
		vfu_session_unwatch(s);
		c->up_unwatched = true;
	}
	if (c->up_paused) {
		return 0;
	}
	*all = false;
	if (c->up_pausing || s->async || n->busy || n->adm.waiting || n->disconnect_pending ||
	    n->after_op != NULL) {
		return 0; /* a message, admin command or operation finishes first */
	}
	c->up_pausing = true;
	c->up_stop_ns = vh_now_ns();
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_freeze, fz_paused);
	return 0;
}

static void
fz_finish(int rc)
{
	void (*done)(void *, int) = g_fz.done;
	void *arg = g_fz.arg;

	g_fz.finished = true;
	if (g_fz.timer != NULL) {
		vh_evloop_del(g_fz.timer);
		g_fz.timer = NULL;
	}
	if (rc < 0) {
		vh_vfu_thaw();
	}
	done(arg, rc);
}

static void
fz_check(void)
{
	bool all = true;

	if (!g_fz.active || g_fz.finished) {
		return;
	}
	vh_vfu_foreach(fz_ctrlr, &all);
	if (all) {
		fz_finish(0);
	}
}

static void
fz_tick(void *arg, uint32_t events)
{
	g_fz.timer = NULL;
	if (!g_fz.active || g_fz.finished) {
		return;
	}
	if (vh_now_ns() >= g_fz.deadline) {
		VH_ERR("upgrade", "vfio-user sessions did not settle in time");
		fz_finish(-ETIMEDOUT);
		return;
	}
	fz_check();
	if (!g_fz.finished) {
		g_fz.timer = vh_evloop_timer(vh_evloop_main(), FZ_TICK_NS, fz_tick, NULL);
	}
}

int
vh_vfu_freeze(uint64_t timeout_ms, void (*done)(void *arg, int rc), void *arg)
{
	if (g_fz.active) {
		return -EALREADY;
	}
	memset(&g_fz, 0, sizeof(g_fz));
	g_fz.active = true;
	g_fz.done = done;
	g_fz.arg = arg;
	g_fz.deadline = vh_now_ns() + timeout_ms * 1000000ull;
	fz_check();
	if (!g_fz.finished) {
		g_fz.timer = vh_evloop_timer(vh_evloop_main(), FZ_TICK_NS, fz_tick, NULL);
		if (g_fz.timer == NULL) {
			vh_vfu_thaw();
			return -ENOMEM;
		}
	}
	return 0;
}

static void
thaw_ctrlr(struct vh_vfu_ctrlr *c)
{
	struct vfu_nvme *n = &c->n;
	struct vfu_session *s = n->session;

	if (c->up_pausing) {
		return; /* fz_paused() comes back here */
	}
	n->frozen = false;
	if (c->up_paused) {
		c->up_paused = false;
		/* Nothing else starts an operation while frozen: the controller is idle. */
		vfu_nvme_op(n, UINT32_MAX, vfu_rctx_resume, NULL);
	}
	if (c->up_unwatched) {
		c->up_unwatched = false;
		if (s != NULL && !s->closing && s->src == NULL && vfu_session_watch(s) < 0) {
			vfu_session_close(s, "cannot watch the connection again after the upgrade");
		}
	}
	if (n->admin_pending && !n->busy) {
		n->admin_pending = false;
		vfu_nvme_admin_kick(n);
	}
}

static int
thaw_one(struct vh_vfu_ctrlr *c, void *arg)
{
	thaw_ctrlr(c);
	return 0;
}

void
vh_vfu_thaw(void)
{
	if (g_fz.timer != NULL) {
		vh_evloop_del(g_fz.timer);
		g_fz.timer = NULL;
	}
	g_fz.active = false;
	vh_vfu_foreach(thaw_one, NULL);
}

/* ---- old process: describe ---- */

static json_t *
save_dma(const struct vfu_dma *d, struct vh_fdvec *fds)
{
	json_t *a = json_array();

	for (unsigned i = 0; a != NULL && i < d->n; i++) {
		const struct vfu_dma_region *r = &d->r[i];

		if (json_array_append_new(a, json_pack("{s:o, s:o, s:i, s:o, s:i}", "addr",
		                                       vh_updesc_hex(r->addr), "size",
		                                       vh_updesc_hex(r->size), "prot", (int)r->prot,
		                                       "offset", vh_updesc_hex(r->offset), "fd",
		                                       vh_updesc_push_fd(fds, r->fd))) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *
save_queues(const struct vfu_nvme *n, bool sqs)
{
	json_t *a = json_array();

	for (unsigned i = 1; a != NULL && i <= VFU_NVME_MAX_IOQ; i++) {
		const struct vfu_sq *sq = n->sqs[i];
		const struct vfu_cq *cq = n->cqs[i];
		json_t *q = NULL;

		if (sqs && sq != NULL) {
			q = json_pack("{s:i, s:i, s:i, s:o, s:i}", "id", (int)sq->id, "size",
			              (int)sq->size, "cqid", (int)sq->cqid, "gpa",
			              vh_updesc_hex(sq->gpa), "head", (int)sq->head);
		} else if (!sqs && cq != NULL) {
			q = json_pack("{s:i, s:i, s:o, s:i, s:i, s:i, s:b, s:i}", "id", (int)cq->id,
			              "size", (int)cq->size, "gpa", vh_updesc_hex(cq->gpa), "tail",
			              (int)cq->tail, "head", (int)cq->head, "phase", (int)cq->phase,
			              "ien", cq->ien, "iv", (int)cq->iv);
		} else {
			continue;
		}
		if (json_array_append_new(a, q) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *
save_nvme(const struct vh_vfu_ctrlr *c, struct vh_fdvec *fds)
{
	const struct vfu_nvme *n = &c->n;
	json_t *msix = json_array(), *aer = json_array(), *nsc = json_array(), *nss = json_array();
	json_t *adm, *feat;

	for (unsigned i = 0; msix != NULL && i < n->nvec; i++) {
		json_array_append_new(msix, json_integer(vh_updesc_push_fd(fds, n->msix_fd[i])));
	}
	for (unsigned i = 0; aer != NULL && i < n->adm.naer; i++) {
		json_array_append_new(aer, json_integer(n->adm.aer_cid[i]));
	}
	for (unsigned i = 0; nsc != NULL && i < n->nns_changed; i++) {
		json_array_append_new(nsc, json_integer(n->ns_changed[i]));
	}
	for (unsigned i = 1; nss != NULL && i <= VFU_NVME_MAX_NS; i++) {
		const struct vfu_ns *ns = n->ns[i];

		if (ns != NULL && !ns->removing) {
			json_array_append_new(nss,
			                      json_pack("{s:i, s:i, s:o}", "nsid", (int)i,
			                                "block_size", (int)ns->block_size,
			                                "nblocks", vh_updesc_hex(ns->nblocks)));
		}
	}
	adm = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:o?}", "sq_size", (int)n->adm.sq_size,
	                "sq_head", (int)n->adm.sq_head, "cq_size", (int)n->adm.cq.size, "cq_tail",
	                (int)n->adm.cq.tail, "cq_head", (int)n->adm.cq.head, "cq_phase",
	                (int)n->adm.cq.phase, "aer", aer);
	feat = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}", "nsqr", (int)n->nsqr,
	                 "ncqr", (int)n->ncqr, "arb", (int)n->feat_arb, "pm", (int)n->feat_pm,
	                 "temp", (int)n->feat_temp, "err", (int)n->feat_err, "coalesce",
	                 (int)n->feat_coalesce, "atomic", (int)n->feat_atomic, "aec",
	                 (int)n->feat_aec, "wce", n->wce);
	return json_pack("{s:i, s:i, s:o?, s:o?, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:b, s:b, "
	                 "s:b, s:b, s:o?, s:i, s:i, s:o?, s:o?, s:b, s:b, s:o?, s:o?, s:o, s:o, "
	                 "s:o?, s:o}",
	                 "cntlid", (int)n->cntlid, "num_ioq", (int)n->num_ioq, "cfg",
	                 vh_updesc_bytes(n->cfg, sizeof(n->cfg)), "bar4",
	                 vh_updesc_bytes(n->bar4, sizeof(n->bar4)), "db_fd",
	                 vh_updesc_push_fd(fds, n->db_fd), "cc", (int)n->cc, "csts", (int)n->csts,
	                 "aqa", (int)n->aqa, "intms", (int)n->intms, "asq", vh_updesc_hex(n->asq),
	                 "acq", vh_updesc_hex(n->acq), "enabled", n->enabled, "fatal", n->fatal,
	                 "shutdown", n->shutdown, "dma_lost", n->dma_lost, "msix", msix, "err_fd",
	                 vh_updesc_push_fd(fds, n->err_fd), "req_fd",
	                 vh_updesc_push_fd(fds, n->req_fd), "adm", adm, "ns_changed", nsc,
	                 "aen_ns_pending", n->aen_ns_pending, "aen_ns_masked", n->aen_ns_masked,
	                 "feat", feat, "namespaces", nss, "dbbuf", vh_updesc_hex(n->dbbuf_gpa),
	                 "eventidx", vh_updesc_hex(n->eventidx_gpa), "sqs", save_queues(n, true),
	                 "cqs", save_queues(n, false));
}

struct save_ctx {
	struct vh_fdvec *fds;
	json_t *ctrlrs;
	int err;
};

static int
save_ctrlr(struct vh_vfu_ctrlr *c, void *arg)
{
	struct save_ctx *x = arg;
	struct vfu_session *s = c->n.session;
	json_t *msg = json_null(), *j;

	if (s == NULL) {
		return 0;
	}
	if (!c->up_paused || s->async || c->n.busy) {
		x->err = -EBUSY; /* cannot happen after a finished freeze */
		return 1;
	}
	if (s->got > 0 || s->nfds > 0) {
		/* A message the client has only partly sent: its bytes and fds come along. */
		msg = vh_updesc_msg(x->fds, s->buf, s->got, s->fds, s->nfds, s->fd_overflow);
	}
	j = json_pack("{s:s, s:o, s:{s:i, s:b, s:o?, s:I}, s:o?, s:o?}", "name", c->n.name,
	              "stop_ns", vh_updesc_hex(c->up_stop_ns), "session", "fd",
	              vh_updesc_push_fd(x->fds, s->fd), "versioned", s->versioned, "msg", msg,
	              "messages", (json_int_t)s->stat_msgs, "dma", save_dma(&s->dma, x->fds),
	              "nvme", save_nvme(c, x->fds));
	if (j == NULL || json_array_append_new(x->ctrlrs, j) < 0) {
		x->err = -ENOMEM;
		return 1;
	}
	return 0;
}

json_t *
vh_vfu_save_sessions(struct vh_fdvec *fds, int *err)
{
	struct save_ctx x = {.fds = fds, .ctrlrs = json_array()};

	if (x.ctrlrs == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	vh_vfu_foreach(save_ctrlr, &x);
	if (x.err < 0) {
		json_decref(x.ctrlrs);
		*err = x.err;
		return NULL;
	}
	return x.ctrlrs;
}

/* ---- new process: adopt ---- */

#define GET_INT(o, key, lo, hi, dst)                                                               \
	do {                                                                                       \
		int64_t v_;                                                                        \
		if (vh_updesc_get_int((o), (key), (lo), (hi), &v_) < 0) {                          \
			return vh_updesc_fail(rd, "%s: bad '%s'", n->name, (key));                 \
		}                                                                                  \
		(dst) = v_;                                                                        \
	} while (0)
#define GET_U64(o, key, dst)                                                                       \
	do {                                                                                       \
		if (vh_updesc_get_u64((o), (key), &(dst)) < 0) {                                   \
			return vh_updesc_fail(rd, "%s: bad '%s'", n->name, (key));                 \
		}                                                                                  \
	} while (0)
#define GET_BOOL(o, key, dst)                                                                      \
	do {                                                                                       \
		if (vh_updesc_get_bool((o), (key), &(dst)) < 0) {                                  \
			return vh_updesc_fail(rd, "%s: bad '%s'", n->name, (key));                 \
		}                                                                                  \
	} while (0)

/* The namespaces the guest knows must be the ones the configuration replay attached. */
static int
load_namespaces(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *a)
{
	unsigned have = 0;
	const json_t *v;
	size_t i;

	if (!json_is_array(a)) {
		return vh_updesc_fail(rd, "%s: bad 'namespaces'", n->name);
	}
	for (unsigned k = 1; k <= VFU_NVME_MAX_NS; k++) {
		have += n->ns[k] != NULL;
	}
	json_array_foreach(a, i, v)
	{
		uint64_t nblocks;
		uint32_t nsid, bs;

		GET_INT(v, "nsid", 1, VFU_NVME_MAX_NS, nsid);
		GET_INT(v, "block_size", 512, 65536, bs);
		GET_U64(v, "nblocks", nblocks);
		if (n->ns[nsid] == NULL || n->ns[nsid]->block_size != bs ||
		    n->ns[nsid]->nblocks != nblocks) {
			return vh_updesc_fail(rd,
			                      "%s: namespace %u (%" PRIu64
			                      " blocks of %u bytes in the "
			                      "old worker) differs here",
			                      n->name, nsid, nblocks, bs);
		}
	}
	if (json_array_size(a) != have) {
		return vh_updesc_fail(rd, "%s: %zu namespaces in the old worker, %u here", n->name,
		                      json_array_size(a), have);
	}
	return 0;
}

static int
load_session(struct vh_updesc_reader *rd, struct vh_vfu_ctrlr *c, const json_t *j)
{
	struct vfu_nvme *n = &c->n;
	const json_t *msg = json_object_get(j, "msg");
	struct vfu_session *s;
	int64_t msgs;
	long len;
	int fd;

	fd = vh_updesc_take_fd(rd, json_object_get(j, "fd"));
	if (fd < 0) {
		return vh_updesc_fail(rd, "%s: no connection fd", n->name);
	}
	s = malloc(sizeof(*s));
	if (s == NULL || vfu_session_init(s, fd, &vfu_nvme_dev_ops, n, vfu_session_send_sock,
	                                  vfu_max_guest_mem(), n->prefix) < 0) {
		free(s);
		close(fd);
		return vh_updesc_fail(rd, "%s: out of memory", n->name);
	}
	s->owner = c;
	s->on_closed = vfu_ctrlr_session_closed;
	n->session = s; /* from here the controller frees it with itself */
	GET_BOOL(j, "versioned", s->versioned);
	GET_INT(j, "messages", 0, INT64_MAX, msgs);
	s->stat_msgs = (uint64_t)msgs;
	if (msg == NULL || json_is_null(msg)) {
		return 0;
	}
	len = vh_updesc_get_msg(rd, msg, s->buf, VFU_MAX_MSG, s->fds, VFU_MAX_FDS, &s->nfds,
	                        &s->fd_overflow);
	if (len == -2) {
		return vh_updesc_fail(rd, "%s: bad partial message fd", n->name);
	}
	if (len < 0) {
		return vh_updesc_fail(rd, "%s: bad partial message", n->name);
	}
	/* Whole messages are always handled before a freeze: this one cannot be complete. */
	if ((size_t)len >= sizeof(struct vfio_user_header)) {
		struct vfio_user_header h;

		memcpy(&h, s->buf, sizeof(h));
		if (h.msg_size < sizeof(h) || h.msg_size > VFU_MAX_MSG ||
		    (uint32_t)len >= h.msg_size) {
			return vh_updesc_fail(rd, "%s: bad partial message", n->name);
		}
	}
	s->got = (uint32_t)len;
	return 0;
}

static int
load_dma(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *a)
{
	const json_t *v;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) > VFU_DMA_MAX_REGIONS) {
		return vh_updesc_fail(rd, "%s: bad 'dma'", n->name);
	}
	json_array_foreach(a, i, v)
	{
		struct vfio_user_dma_map m = {.argsz = sizeof(m)};
		int fd, rc;

		GET_U64(v, "addr", m.addr);
		GET_U64(v, "size", m.size);
		GET_U64(v, "offset", m.offset);
		GET_INT(v, "prot", 1, VFU_DMA_READ | VFU_DMA_WRITE, m.flags);
		fd = vh_updesc_take_fd(rd, json_object_get(v, "fd"));
		if (fd == -2) {
			return vh_updesc_fail(rd, "%s: bad DMA region fd", n->name);
		}
		/* The same checks as the client's DMA_MAP: the region keeps its own duplicate. */
		rc = vfu_dma_map(&n->session->dma, &m, fd);
		if (fd >= 0) {
			close(fd);
		}
		if (rc < 0) {
			return vh_updesc_fail(rd,
			                      "%s: DMA region [0x%" PRIx64 ", +0x%" PRIx64 "): %s",
			                      n->name, m.addr, m.size, strerror(-rc));
		}
	}
	return 0;
}

static int
load_cqs(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *a)
{
	const json_t *v;
	size_t i;

	if (!json_is_array(a)) {
		return vh_updesc_fail(rd, "%s: bad 'cqs'", n->name);
	}
	json_array_foreach(a, i, v)
	{
		struct vfu_cq *cq;
		uint16_t id;

		GET_INT(v, "id", 1, n->num_ioq, id);
		if (n->cqs[id] != NULL) {
			return vh_updesc_fail(rd, "%s: CQ %u twice", n->name, id);
		}
		cq = calloc(1, sizeof(*cq));
		if (cq == NULL) {
			return vh_updesc_fail(rd, "%s: out of memory", n->name);
		}
		n->cqs[id] = cq; /* freed with the controller from here */
		n->nqueues++;
		cq->id = id;
		GET_INT(v, "size", 2, VFU_NVME_MQES + 1, cq->size);
		GET_U64(v, "gpa", cq->gpa);
		GET_INT(v, "tail", 0, cq->size - 1, cq->tail);
		GET_INT(v, "head", 0, cq->size - 1, cq->head);
		GET_INT(v, "phase", 0, 1, cq->phase);
		GET_BOOL(v, "ien", cq->ien);
		GET_INT(v, "iv", 0, n->nvec - 1, cq->iv);
		if (cq->gpa & (VFU_NVME_PAGE - 1)) {
			return vh_updesc_fail(rd, "%s: CQ %u: bad address", n->name, id);
		}
		/* Where Create I/O CQ would put it (nvme_admin.c): completions stay on one thread.
		 */
		cq->rctx = n->rctx[(id - 1) % n->nrctx];
	}
	return 0;
}

static int
load_sqs(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *a)
{
	const json_t *v;
	size_t i;

	if (!json_is_array(a)) {
		return vh_updesc_fail(rd, "%s: bad 'sqs'", n->name);
	}
	json_array_foreach(a, i, v)
	{
		struct vfu_sq *sq;
		uint16_t id, size, cqid;

		GET_INT(v, "id", 1, n->num_ioq, id);
		GET_INT(v, "size", 2, VFU_NVME_MQES + 1, size);
		GET_INT(v, "cqid", 1, n->num_ioq, cqid);
		if (n->sqs[id] != NULL || n->cqs[cqid] == NULL) {
			return vh_updesc_fail(rd, "%s: SQ %u twice, or its CQ %u missing", n->name,
			                      id, cqid);
		}
		sq = calloc(1, sizeof(*sq));
		if (sq == NULL) {
			return vh_updesc_fail(rd, "%s: out of memory", n->name);
		}
		sq->size = size;
		if (vfu_sq_alloc(sq) < 0) {
			free(sq);
			return vh_updesc_fail(rd, "%s: out of memory", n->name);
		}
		n->sqs[id] = sq;
		n->nqueues++;
		sq->id = id;
		sq->cqid = cqid;
		sq->cq = n->cqs[cqid];
		sq->cq->nsq++;
		sq->rctx = sq->cq->rctx;
		GET_U64(v, "gpa", sq->gpa);
		GET_INT(v, "head", 0, size - 1, sq->head);
		if (sq->gpa & (VFU_NVME_PAGE - 1)) {
			return vh_updesc_fail(rd, "%s: SQ %u: bad address", n->name, id);
		}
	}
	return 0;
}

static int
load_admin(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *adm)
{
	const json_t *aer = json_object_get(adm, "aer"), *v;
	size_t i;

	GET_INT(adm, "sq_size", 0, VFU_NVME_ADMIN_MAX, n->adm.sq_size);
	GET_INT(adm, "cq_size", 0, VFU_NVME_ADMIN_MAX, n->adm.cq.size);
	GET_INT(adm, "sq_head", 0, VH_MAX(n->adm.sq_size, 1) - 1, n->adm.sq_head);
	GET_INT(adm, "cq_tail", 0, VH_MAX(n->adm.cq.size, 1) - 1, n->adm.cq.tail);
	GET_INT(adm, "cq_head", 0, VH_MAX(n->adm.cq.size, 1) - 1, n->adm.cq.head);
	GET_INT(adm, "cq_phase", 0, 1, n->adm.cq.phase);
	if ((n->adm.sq_size == 0) != (n->adm.cq.size == 0) ||
	    (n->adm.sq_size != 0 && (n->adm.sq_size != (n->aqa & 0xfff) + 1 ||
	                             n->adm.cq.size != ((n->aqa >> 16) & 0xfff) + 1))) {
		return vh_updesc_fail(rd, "%s: admin queue sizes disagree with AQA", n->name);
	}
	if (!json_is_array(aer) || json_array_size(aer) > VFU_NVME_AERL) {
		return vh_updesc_fail(rd, "%s: bad 'aer'", n->name);
	}
	json_array_foreach(aer, i, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > UINT16_MAX) {
			return vh_updesc_fail(rd, "%s: bad 'aer'", n->name);
		}
		n->adm.aer_cid[n->adm.naer++] = (uint16_t)json_integer_value(v);
	}
	return 0;
}

static int
load_features(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *f)
{
	GET_INT(f, "nsqr", 0, UINT16_MAX, n->nsqr);
	GET_INT(f, "ncqr", 0, UINT16_MAX, n->ncqr);
	GET_INT(f, "arb", 0, UINT32_MAX, n->feat_arb);
	GET_INT(f, "pm", 0, UINT32_MAX, n->feat_pm);
	GET_INT(f, "temp", 0, UINT32_MAX, n->feat_temp);
	GET_INT(f, "err", 0, UINT32_MAX, n->feat_err);
	GET_INT(f, "coalesce", 0, UINT32_MAX, n->feat_coalesce);
	GET_INT(f, "atomic", 0, UINT32_MAX, n->feat_atomic);
	GET_INT(f, "aec", 0, UINT32_MAX, n->feat_aec);
	GET_BOOL(f, "wce", n->wce);
	return 0;
}

static int
load_irqs(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *j)
{
	const json_t *msix = json_object_get(j, "msix");
	int fd;

	if (!json_is_array(msix) || json_array_size(msix) != n->nvec) {
		return vh_updesc_fail(rd, "%s: bad 'msix' (this controller has %u vectors)",
		                      n->name, n->nvec);
	}
	for (unsigned i = 0; i < n->nvec; i++) {
		fd = vh_updesc_take_fd(rd, json_array_get(msix, i));
		if (fd == -2) {
			return vh_updesc_fail(rd, "%s: bad interrupt fd", n->name);
		}
		n->msix_fd[i] = fd;
	}
	n->err_fd = vh_updesc_take_fd(rd, json_object_get(j, "err_fd"));
	n->req_fd = vh_updesc_take_fd(rd, json_object_get(j, "req_fd"));
	if (n->err_fd == -2 || n->req_fd == -2) {
		n->err_fd = n->err_fd == -2 ? -1 : n->err_fd;
		n->req_fd = n->req_fd == -2 ? -1 : n->req_fd;
		return vh_updesc_fail(rd, "%s: bad error or request interrupt fd", n->name);
	}
	return 0;
}

static int
load_nvme(struct vh_updesc_reader *rd, struct vfu_nvme *n, const json_t *j)
{
	uint8_t cfg[VFU_NVME_CFG_SIZE];
	const json_t *nsc = json_object_get(j, "ns_changed"), *v;
	int64_t num_ioq;
	size_t i;
	int fd, rc;

	GET_INT(j, "num_ioq", 1, VFU_NVME_MAX_IOQ, num_ioq);
	if (num_ioq != n->num_ioq) {
		return vh_updesc_fail(rd, "%s: %" PRId64 " I/O queues in the old worker, %u here",
		                      n->name, num_ioq, n->num_ioq);
	}
	rc = load_namespaces(rd, n, json_object_get(j, "namespaces"));
	if (rc < 0) {
		return rc;
	}
	/* The guest read this in Identify: it must not change under it. */
	GET_INT(j, "cntlid", 1, UINT16_MAX, n->cntlid);
	vfu_cntlid_taken(n->cntlid);
	if (vh_updesc_get_bytes(json_object_get(j, "cfg"), cfg, sizeof(cfg)) != sizeof(cfg) ||
	    vh_updesc_get_bytes(json_object_get(j, "bar4"), n->bar4, sizeof(n->bar4)) !=
	            sizeof(n->bar4)) {
		return vh_updesc_fail(rd, "%s: bad configuration space or MSI-X table", n->name);
	}
	/*
	 * What the guest wrote (command register, BARs, MSI-X enable, ...) comes across; the rest
	 * (IDs, capabilities) stays what this binary builds.
	 */
	for (i = 0; i < sizeof(cfg); i++) {
		n->cfg[i] = (uint8_t)((n->cfg[i] & ~n->cfg_wmask[i]) | (cfg[i] & n->cfg_wmask[i]));
	}
	fd = vh_updesc_take_fd(rd, json_object_get(j, "db_fd"));
	if (fd < 0) {
		return vh_updesc_fail(rd, "%s: no doorbell page", n->name);
	}
	rc = vfu_doorbells_adopt(n, fd);
	if (rc < 0) {
		close(fd);
		return vh_updesc_fail(rd, "%s: doorbell page: %s", n->name, strerror(-rc));
	}
	GET_INT(j, "cc", 0, UINT32_MAX, n->cc);
	GET_INT(j, "csts", 0, UINT32_MAX, n->csts);
	GET_INT(j, "aqa", 0, UINT32_MAX, n->aqa);
	GET_INT(j, "intms", 0, UINT32_MAX, n->intms);
	GET_U64(j, "asq", n->asq);
	GET_U64(j, "acq", n->acq);
	GET_BOOL(j, "enabled", n->enabled);
	GET_BOOL(j, "fatal", n->fatal);
	GET_BOOL(j, "shutdown", n->shutdown);
	GET_BOOL(j, "dma_lost", n->dma_lost);
	GET_BOOL(j, "aen_ns_pending", n->aen_ns_pending);
	GET_BOOL(j, "aen_ns_masked", n->aen_ns_masked);
	GET_U64(j, "dbbuf", n->dbbuf_gpa);
	GET_U64(j, "eventidx", n->eventidx_gpa);
	if (!json_is_array(nsc) || json_array_size(nsc) > VFU_NVME_MAX_NS) {
		return vh_updesc_fail(rd, "%s: bad 'ns_changed'", n->name);
	}
	json_array_foreach(nsc, i, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > VFU_NVME_MAX_NS) {
			return vh_updesc_fail(rd, "%s: bad 'ns_changed'", n->name);
		}
		n->ns_changed[n->nns_changed++] = (uint32_t)json_integer_value(v);
	}
	rc = load_irqs(rd, n, j);
	if (rc == 0) {
		rc = load_features(rd, n, json_object_get(j, "feat"));
	}
	if (rc == 0) {
		rc = load_admin(rd, n, json_object_get(j, "adm"));
	}
	if (rc == 0) {
		rc = load_cqs(rd, n, json_object_get(j, "cqs"));
	}
	if (rc == 0) {
		rc = load_sqs(rd, n, json_object_get(j, "sqs"));
	}
	if (rc < 0) {
		return rc;
	}
	if ((n->nqueues > 0 || n->adm.sq_size > 0) && !n->enabled) {
		return vh_updesc_fail(rd, "%s: queues on a disabled controller", n->name);
	}
	/* Every queue's memory, as after a DMA change; missing memory is fine only if it was. */
	if (n->enabled && n->adm.sq_size > 0) {
		n->adm.sq = vfu_nvme_queue_ptr(n, n->asq, (uint64_t)n->adm.sq_size * 64);
		n->adm.cq.ring = vfu_nvme_queue_ptr(n, n->acq, (uint64_t)n->adm.cq.size * 16);
	}
	if (!vfu_nvme_retranslate(n) && !n->dma_lost) {
		return vh_updesc_fail(rd, "%s: a queue lies outside the DMA regions", n->name);
	}
	VH_WRITE_ONCE(n->broken, n->fatal || n->dma_lost ? 1 : 0);
	return 0;
}

static int
load_ctrlr(struct vh_updesc_reader *rd, const json_t *j)
{
	const char *name = json_string_value(json_object_get(j, "name"));
	struct vh_vfu_ctrlr *c = name != NULL ? vh_vfu_find(name) : NULL;
	struct vfu_nvme *n;
	int rc;

	if (c == NULL) {
		return vh_updesc_fail(rd, "vfio-user controller '%s' is not in the configuration",
		                      name != NULL ? name : "?");
	}
	n = &c->n;
	if (n->session != NULL || c->up_adopted) {
		return vh_updesc_fail(rd, "%s: described twice", n->name);
	}
	GET_U64(j, "stop_ns", c->up_stop_ns);
	rc = load_session(rd, c, json_object_get(j, "session"));
	if (rc == 0) {
		rc = load_dma(rd, n, json_object_get(j, "dma"));
	}
	if (rc == 0) {
		rc = load_nvme(rd, n, json_object_get(j, "nvme"));
	}
	if (rc < 0) {
		return rc;
	}
	n->frozen = true; /* the admin queue waits for vh_vfu_commit() */
	c->up_adopted = true;
	VH_NOTICE(n->name,
	          "vfio-user session taken over: %u DMA region(s), %u I/O queue(s), controller "
	          "%s",
	          n->session->dma.n, n->nqueues / 2, n->enabled ? "enabled" : "disabled");
	return 0;
}

int
vh_vfu_load_sessions(const json_t *state, int *fds, unsigned nfds, char *why, size_t whylen)
{
	struct vh_updesc_reader rd = {fds, nfds, why, whylen};
	const json_t *j;
	size_t i;

	if (state == NULL) {
		return 0; /* an old worker without vfio-user clients (or without this code) */
	}
	if (!json_is_array(state)) {
		return vh_updesc_fail(&rd, "bad vfio-user session list");
	}
	json_array_foreach(state, i, j)
	{
		int rc = load_ctrlr(&rd, j);

		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* ---- new process: serve ---- */

static struct {
	void (*started)(void *arg, uint64_t stop_ns, uint64_t start_ns);
	void *arg;
	unsigned pending;
	uint64_t stop_ns;
} g_commit;

static void
commit_one_done(void)
{
	if (--g_commit.pending == 0 && g_commit.started != NULL) {
		g_commit.started(g_commit.arg, g_commit.stop_ns, vh_now_ns());
	}
}

static void
adopt_done(struct vfu_nvme *n)
{
	struct vfu_session *s = n->session;

	if (s != NULL && vfu_session_watch(s) < 0) {
		vfu_session_close(s, "cannot watch the adopted connection");
	}
	/* As vfu_rctx_adopt() did for the I/O queues: an interrupt may have been lost. */
	if (n->enabled && n->adm.cq.ring != NULL &&
	    n->adm.cq.tail != vfu_nvme_db_read(n, 0, true)) {
		vfu_nvme_irq(n, 0);
	}
	n->frozen = false;
	n->admin_pending = false;
	vfu_nvme_admin_kick(n); /* commands the guest queued during the switch */
	commit_one_done();
}

static void
adopt_start(struct vfu_nvme *n)
{
	vfu_nvme_op(n, UINT32_MAX, vfu_rctx_adopt, adopt_done);
}

static int
commit_ctrlr(struct vh_vfu_ctrlr *c, void *arg)
{
	struct vfu_nvme *n = &c->n;

	if (!c->up_adopted) {
		return 0;
	}
	c->up_adopted = false;
	if (c->up_stop_ns != 0 && (g_commit.stop_ns == 0 || c->up_stop_ns < g_commit.stop_ns)) {
		g_commit.stop_ns = c->up_stop_ns;
	}
	g_commit.pending++;
	if (n->busy) {
		n->after_op = adopt_start; /* the pollers are still starting */
	} else {
		adopt_start(n);
	}
	return 0;
}

void
vh_vfu_commit(void (*started)(void *arg, uint64_t stop_ns, uint64_t start_ns), void *arg)
{
	memset(&g_commit, 0, sizeof(g_commit));
	g_commit.started = started;
	g_commit.arg = arg;
	g_commit.pending = 1;
	vh_vfu_foreach(commit_ctrlr, NULL);
	commit_one_done();
}
