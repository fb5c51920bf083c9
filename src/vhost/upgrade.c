/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade, the vhost side (see upgrade.h and docs/design.md, "Live upgrade by hand-over").
 *
 * Threat model: the description comes from the process we replace, a trusted binary of ours,
 * possibly an older version: it is checked as carefully as a config file (types, ranges, fd
 * indices), and what it describes goes through the same validation as the vhost-user messages
 * that built it in the old process (memory regions are mapped with the same checks, inflight
 * regions are validated again). The front-end is as hostile as ever, so nothing here trusts
 * guest memory either: rings are prepared by the usual start path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/updesc.h"
#include "core/util.h"
#include "vhost/device.h"
#include "vhost/session.h"
#include "vhost/upgrade.h"

/* ---- old process: freeze, thaw ---- */

static struct {
	bool frozen;      /* no new message is read, no front-end accepted */
	bool quiescing;   /* queues are being stopped */
	bool finished;    /* done() was called */
	unsigned pending; /* sessions whose queues are stopping */
	void (*done)(void *arg, int rc);
	void *arg;
	struct vh_evsource *timer;
} g_fz;

static bool g_held; /* new process: listening sockets stay unpolled until commit */

bool
vh_vhost_frozen(void)
{
	return g_fz.frozen || g_held;
}

static int each_session(int (*fn)(struct vh_session *s, void *arg), void *arg);

struct iter {
	int (*fn)(struct vh_session *s, void *arg);
	void *arg;
};

static int
iter_ctrlr(struct vh_vhost_ctrlr *c, void *arg)
{
	struct iter *it = arg;

	for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
		if (c->sessions[i] != NULL) {
			int rc = it->fn(c->sessions[i], it->arg);

			if (rc != 0) {
				return rc;
			}
		}
	}
	return 0;
}

static int
each_session(int (*fn)(struct vh_session *s, void *arg), void *arg)
{
	struct iter it = {fn, arg};

	return vh_vhost_foreach(iter_ctrlr, &it);
}

static int
stop_listening(struct vh_vhost_ctrlr *c, void *arg)
{
	vh_sock_stop_listening(c);
	return 0;
}

static int
resume_listening(struct vh_vhost_ctrlr *c, void *arg)
{
	if (c->nsessions < VH_VHOST_MAX_SESSIONS) {
		vh_sock_resume_listening(c);
	}
	return 0;
}

static bool
op_pending(const struct vh_session *s)
{
	return s->op_done != NULL || s->pending_stops > 0 || s->pending_syncs > 0;
}

static int
logging(struct vh_session *s, void *arg)
{
	return __atomic_load_n(&s->log_all, __ATOMIC_RELAXED) ? 1 : 0;
}

/* A session that is neither closing nor in the middle of a message stops reading. */
static int
settle(struct vh_session *s, void *arg)
{
	bool *busy = arg;

	/*
	 * Sessions being closed go first (their in-flight I/O completes): what is left of them is
	 * the old process's to finish, and their front-end reconnects to the new one.
	 */
	if (s->closing || op_pending(s)) {
		*busy = true;
		return 0;
	}
	if (!s->paused) {
		vh_sock_pause(s);
	}
	return 0;
}

static void freeze_finish(int rc);

static void
quiesced(struct vh_session *s)
{
	if (--g_fz.pending > 0) {
		return;
	}
	if (g_fz.finished) {
		vh_vhost_thaw(); /* it failed while these stops were on their way */
	} else {
		freeze_finish(0);
	}
}

static int
quiesce(struct vh_session *s, void *arg)
{
	uint64_t now = vh_now_ns();
	bool any = false;

	for (uint32_t i = 0; i < s->nvqs; i++) {
		struct vh_vq *vq = &s->vqs[i];

		vq->upgrade_restart = vq->started;
		if (vq->started) {
			vq->upgrade_stop_ns = now;
			any = true;
		}
	}
	if (any) {
		g_fz.pending++;
		vh_session_quiesce(s, quiesced);
	}
	return 0;
}

void
vh_upgrade_poke(void)
{
	bool busy = false;

	if (!g_fz.frozen || g_fz.quiescing || g_fz.finished) {
		return;
	}
	each_session(settle, &busy);
	if (busy) {
		return; /* poked again when the operation completes or the session is freed */
	}
	if (each_session(logging, NULL) != 0) {
		VH_ERR("upgrade", "a session is being live-migrated (dirty logging is on)");
		freeze_finish(-EBUSY);
		return;
	}
	g_fz.quiescing = true;
	g_fz.pending = 1; /* ours, so a synchronous quiesce cannot finish early */
	each_session(quiesce, NULL);
	if (--g_fz.pending == 0) {
		freeze_finish(0);
	}
}

static void
freeze_timeout(void *arg, uint32_t events)
{
	g_fz.timer = NULL;
	if (!g_fz.finished) {
		VH_ERR("upgrade", "sessions did not settle in time (a request still in flight?)");
		freeze_finish(-ETIMEDOUT);
	}
}

static void
freeze_finish(int rc)
{
	void (*done)(void *, int) = g_fz.done;

	if (g_fz.finished) {
		return;
	}
	g_fz.finished = true;
	if (g_fz.timer != NULL) {
		vh_evloop_del(g_fz.timer);
		g_fz.timer = NULL;
	}
	/* Stops still on their way come back first; quiesced() thaws then. */
	if (rc < 0 && g_fz.pending == 0) {
		void *arg = g_fz.arg;

		vh_vhost_thaw();
		done(arg, rc);
		return;
	}
	done(g_fz.arg, rc);
}

int
vh_vhost_freeze(uint64_t timeout_ms, void (*done)(void *arg, int rc), void *arg)
{
	if (g_fz.frozen) {
		return -EALREADY;
	}
	if (each_session(logging, NULL) != 0) {
		return -EBUSY;
	}
	memset(&g_fz, 0, sizeof(g_fz));
	g_fz.frozen = true;
	g_fz.done = done;
	g_fz.arg = arg;
	vh_vhost_foreach(stop_listening, NULL);
	g_fz.timer =
	        vh_evloop_timer(vh_evloop_main(), timeout_ms * 1000000ull, freeze_timeout, NULL);
	vh_upgrade_poke();
	return 0;
}

static int
thaw_session(struct vh_session *s, void *arg)
{
	if (s->closing) {
		return 0;
	}
	for (uint32_t i = 0; i < s->nvqs; i++) {
		s->vqs[i].upgrade_restart = false;
	}
	if (vh_session_start_ready(s) < 0) {
		vh_session_close(s, "cannot restart the rings after a failed upgrade");
		return 0;
	}
	if (s->paused && !op_pending(s)) {
		vh_sock_resume(s);
	}
	return 0;
}

void
vh_vhost_thaw(void)
{
	if (!g_fz.frozen) {
		return;
	}
	if (g_fz.timer != NULL) {
		vh_evloop_del(g_fz.timer);
	}
	memset(&g_fz, 0, sizeof(g_fz));
	vh_vhost_foreach(resume_listening, NULL);
	each_session(thaw_session, NULL);
}

/* ---- old process: describe ---- */

static json_t *
save_vq(const struct vh_vq *vq, struct vh_fdvec *fds)
{
	return json_pack("{s:i, s:i, s:b, s:o, s:o, s:o, s:o, s:i, s:I, s:b, s:i, s:b, s:i, s:i, "
	                 "s:b, s:b, s:o}",
	                 "idx", (int)vq->idx, "size", (int)vq->size, "addr_set", vq->addr_set,
	                 "desc", vh_updesc_hex(vq->addr.desc_user_addr), "avail",
	                 vh_updesc_hex(vq->addr.avail_user_addr), "used",
	                 vh_updesc_hex(vq->addr.used_user_addr), "log",
	                 vh_updesc_hex(vq->addr.log_guest_addr), "flags", (int)vq->addr.flags,
	                 "base", (json_int_t)vq->base, "base_set", vq->base_set, "kick",
	                 vh_updesc_push_fd(fds, vq->kickfd), "kick_set", vq->kick_set, "call",
	                 vh_updesc_push_fd(fds, vq->callfd), "err",
	                 vh_updesc_push_fd(fds, vq->errfd), "enabled", vq->enabled, "running",
	                 vq->upgrade_restart, "stop_ns", vh_updesc_hex(vq->upgrade_stop_ns));
}

static bool
vq_has_state(const struct vh_vq *vq)
{
	return vq->size != 0 || vq->addr_set || vq->base_set || vq->kickfd >= 0 ||
	       vq->callfd >= 0 || vq->errfd >= 0 || vq->kick_set || vq->enabled;
}

static json_t *
save_session(const struct vh_session *s, struct vh_fdvec *fds)
{
	json_t *mem = json_array(), *vqs = json_array(), *j, *dev = NULL, *ifl = json_null(),
	       *msg = json_null();

	if (mem == NULL || vqs == NULL) {
		goto fail;
	}
	for (uint32_t i = 0; s->mem != NULL && i < s->mem->nregions; i++) {
		const struct vh_mem_region *r = &s->mem->regions[i];

		if (json_array_append_new(mem, json_pack("{s:o, s:o, s:o, s:o, s:i}", "gpa",
		                                         vh_updesc_hex(r->gpa), "size",
		                                         vh_updesc_hex(r->size), "qva",
		                                         vh_updesc_hex(r->qva), "mmap_offset",
		                                         vh_updesc_hex(r->mmap_offset), "fd",
		                                         vh_updesc_push_fd(fds, r->fd))) < 0) {
			goto fail;
		}
	}
	for (uint32_t i = 0; i < s->nvqs; i++) {
		if (vq_has_state(&s->vqs[i]) &&
		    json_array_append_new(vqs, save_vq(&s->vqs[i], fds)) < 0) {
			goto fail;
		}
	}
	if (s->inflight.map != NULL) {
		const struct vhost_user_inflight *w = &s->inflight.wire;

		ifl = json_pack("{s:i, s:o, s:o, s:i, s:i, s:b}", "fd",
		                vh_updesc_push_fd(fds, s->inflight.fd), "mmap_size",
		                vh_updesc_hex(w->mmap_size), "mmap_offset",
		                vh_updesc_hex(w->mmap_offset), "num_queues", (int)w->num_queues,
		                "queue_size", (int)w->queue_size, "packed", s->inflight.packed);
	}
	if (s->msg_got > 0 || s->nfds > 0) {
		/* A message the front-end has only partly sent: its bytes and fds come along. */
		msg = vh_updesc_msg(fds, &s->msg, s->msg_got, s->fds, s->nfds, s->fd_overflow);
	}
	if (s->c->ops->session_save != NULL) {
		dev = s->c->ops->session_save(s);
	}
	j = json_pack("{s:i, s:i, s:i, s:o, s:b, s:o, s:b, s:i, s:i, s:o, s:o, s:o?, s:o?, s:o?}",
	              "slot", (int)s->id, "fd", vh_updesc_push_fd(fds, s->fd), "backend_fd",
	              vh_updesc_push_fd(fds, s->backend_fd), "features", vh_updesc_hex(s->features),
	              "features_set", s->features_set, "protocol_features",
	              vh_updesc_hex(s->protocol_features), "protocol_features_set",
	              s->protocol_features_set, "status", (int)s->status, "nvqs", (int)s->nvqs,
	              "mem", mem, "vqs", vqs, "inflight", ifl, "msg", msg, "device", dev);
	return j;

fail:
	json_decref(mem);
	json_decref(vqs);
	return NULL;
}

struct save_ctx {
	struct vh_fdvec *fds;
	json_t *ctrlrs;
	int err;
};

static int
save_ctrlr(struct vh_vhost_ctrlr *c, void *arg)
{
	struct save_ctx *x = arg;
	json_t *sessions = json_array();

	if (sessions == NULL) {
		x->err = -ENOMEM;
		return 1;
	}
	for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
		struct vh_session *s = c->sessions[i];
		json_t *j;

		if (s == NULL || s->closing) {
			continue;
		}
		if (__atomic_load_n(&s->log_all, __ATOMIC_RELAXED)) {
			x->err = -EBUSY;
			json_decref(sessions);
			return 1;
		}
		j = save_session(s, x->fds);
		if (j == NULL || json_array_append_new(sessions, j) < 0) {
			x->err = -ENOMEM;
			json_decref(sessions);
			return 1;
		}
	}
	if (json_array_append_new(x->ctrlrs, json_pack("{s:s, s:s, s:i, s:o}", "name", c->name,
	                                               "device", c->ops->name, "num_queues",
	                                               (int)c->num_queues, "sessions", sessions)) <
	    0) {
		x->err = -ENOMEM;
		return 1;
	}
	return 0;
}

json_t *
vh_vhost_save_sessions(struct vh_fdvec *fds, int *err)
{
	struct save_ctx x = {.fds = fds, .ctrlrs = json_array()};

	if (x.ctrlrs == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	if (vh_vhost_foreach(save_ctrlr, &x) != 0) {
		json_decref(x.ctrlrs);
		*err = x.err;
		return NULL;
	}
	return json_pack("{s:i, s:o}", "format", VH_UPGRADE_FORMAT, "controllers", x.ctrlrs);
}

/* ---- new process: hold, load, commit ---- */

void
vh_vhost_hold(void)
{
	g_held = true;
}

/* Sessions adopted from the old process: they get their input source at commit. */
static struct vh_session **g_adopted;
static unsigned g_nadopted;

static int
load_mem(struct vh_updesc_reader *ld, struct vh_session *s, const json_t *mem)
{
	const json_t *r;
	size_t i;

	if (!json_is_array(mem) || json_array_size(mem) > VH_MAX_MEM_REGIONS) {
		return vh_updesc_fail(ld, "%s: bad memory table", s->prefix);
	}
	if (json_array_size(mem) == 0) {
		return 0;
	}
	s->mem = calloc(1, sizeof(*s->mem));
	if (s->mem == NULL) {
		return -ENOMEM;
	}
	json_array_foreach(mem, i, r)
	{
		struct vhost_user_memory_region w = {0};
		struct vh_mem_region reg;
		int fd = vh_updesc_take_fd(ld, json_object_get(r, "fd")), rc;

		if (fd < 0 || vh_updesc_get_u64(r, "gpa", &w.guest_phys_addr) < 0 ||
		    vh_updesc_get_u64(r, "size", &w.memory_size) < 0 ||
		    vh_updesc_get_u64(r, "qva", &w.userspace_addr) < 0 ||
		    vh_updesc_get_u64(r, "mmap_offset", &w.mmap_offset) < 0) {
			if (fd >= 0) {
				close(fd);
			}
			return vh_updesc_fail(ld, "%s: bad memory region %zu", s->prefix, i);
		}
		rc = vh_mem_region_map(&reg, &w, fd, s);
		close(fd);
		if (rc == 0 && (rc = vh_mem_check_add(s->mem, &reg)) < 0) {
			vh_mem_region_unmap(&reg);
		}
		if (rc < 0) {
			vh_updesc_fail(ld, "%s: memory region %zu: %s", s->prefix, i,
			               strerror(-rc));
			return rc;
		}
		s->mem->regions[s->mem->nregions++] = reg;
	}
	return 0;
}

static int
load_vq(struct vh_updesc_reader *ld, struct vh_session *s, const json_t *j)
{
	int64_t idx, size, flags, base;
	struct vh_vq *vq;
	bool running;
	int fd;

	if (vh_updesc_get_int(j, "idx", 0, (int64_t)s->nvqs - 1, &idx) < 0 ||
	    vh_updesc_get_int(j, "size", 0, VH_MAX_QUEUE_SIZE, &size) < 0 ||
	    vh_updesc_get_int(j, "flags", 0, UINT32_MAX, &flags) < 0 ||
	    vh_updesc_get_int(j, "base", 0, UINT32_MAX, &base) ||
	    (size != 0 && !VH_IS_POW2((uint64_t)size))) {
		return vh_updesc_fail(ld, "%s: bad queue entry", s->prefix);
	}
	vq = &s->vqs[idx];
	vq->size = (uint32_t)size;
	vq->addr.index = (uint32_t)idx;
	vq->addr.flags = (uint32_t)flags;
	vq->base = (uint32_t)base; /* a packed ring's position has its wrap counters in it */
	if (vh_updesc_get_bool(j, "addr_set", &vq->addr_set) < 0 ||
	    vh_updesc_get_bool(j, "base_set", &vq->base_set) ||
	    vh_updesc_get_bool(j, "kick_set", &vq->kick_set) < 0 ||
	    vh_updesc_get_bool(j, "enabled", &vq->enabled) ||
	    vh_updesc_get_bool(j, "running", &running) < 0 ||
	    vh_updesc_get_u64(j, "desc", &vq->addr.desc_user_addr) < 0 ||
	    vh_updesc_get_u64(j, "avail", &vq->addr.avail_user_addr) < 0 ||
	    vh_updesc_get_u64(j, "used", &vq->addr.used_user_addr) < 0 ||
	    vh_updesc_get_u64(j, "log", &vq->addr.log_guest_addr) < 0 ||
	    vh_updesc_get_u64(j, "stop_ns", &vq->upgrade_stop_ns) < 0) {
		return vh_updesc_fail(ld, "%s/q%" PRId64 ": bad queue entry", s->prefix, idx);
	}
	vq->upgrade_restart = running;
	fd = vh_updesc_take_fd(ld, json_object_get(j, "kick"));
	if (fd == -2) {
		return vh_updesc_fail(ld, "%s/q%" PRId64 ": bad kick fd", s->prefix, idx);
	}
	vq->kickfd = fd;
	fd = vh_updesc_take_fd(ld, json_object_get(j, "call"));
	if (fd == -2) {
		return vh_updesc_fail(ld, "%s/q%" PRId64 ": bad call fd", s->prefix, idx);
	}
	vq->callfd = fd;
	fd = vh_updesc_take_fd(ld, json_object_get(j, "err"));
	if (fd == -2) {
		return vh_updesc_fail(ld, "%s/q%" PRId64 ": bad err fd", s->prefix, idx);
	}
	vq->errfd = fd;
	return 0;
}

static int
load_inflight(struct vh_updesc_reader *ld, struct vh_session *s, const json_t *j)
{
	struct vhost_user_inflight w = {0};
	bool packed = false; /* absent: a split region (written before packed rings existed) */
	int64_t nq, qs;
	int fd, rc;

	if (json_is_null(j)) {
		return 0;
	}
	fd = vh_updesc_take_fd(ld, json_object_get(j, "fd"));
	if (fd < 0 || vh_updesc_get_u64(j, "mmap_size", &w.mmap_size) < 0 ||
	    vh_updesc_get_u64(j, "mmap_offset", &w.mmap_offset) < 0 ||
	    vh_updesc_get_int(j, "num_queues", 1, s->nvqs, &nq) < 0 ||
	    vh_updesc_get_int(j, "queue_size", 1, VH_MAX_QUEUE_SIZE, &qs) < 0 ||
	    (json_object_get(j, "packed") != NULL &&
	     vh_updesc_get_bool(j, "packed", &packed) < 0)) {
		if (fd >= 0) {
			close(fd);
		}
		return vh_updesc_fail(ld, "%s: bad inflight region", s->prefix);
	}
	w.num_queues = (uint16_t)nq;
	w.queue_size = (uint16_t)qs;
	/* The layout the old process found (a packed ring may use a split region, see inflight.h).
	 */
	rc = vh_inflight_map(&s->inflight, &w, fd, packed);
	close(fd);
	if (rc < 0) {
		vh_updesc_fail(ld, "%s: inflight region: %s", s->prefix, strerror(-rc));
	}
	return rc;
}

/* The bytes and fds of a message the front-end had only partly sent. */
static int
load_msg(struct vh_updesc_reader *ld, struct vh_session *s, const json_t *j)
{
	long len;

	if (json_is_null(j)) {
		return 0;
	}
	len = vh_updesc_get_msg(ld, j, &s->msg, sizeof(s->msg), s->fds, VHOST_USER_MAX_FDS,
	                        &s->nfds, &s->fd_overflow);
	if (len == -2) {
		return vh_updesc_fail(ld, "%s: bad partial message fd", s->prefix);
	}
	/* Complete messages are always handled before a freeze: this one cannot be whole. */
	if (len < 0 || ((size_t)len >= VHOST_USER_HDR_SIZE &&
	                (s->msg.size > sizeof(s->msg.payload) ||
	                 (size_t)len >= VHOST_USER_HDR_SIZE + s->msg.size))) {
		return vh_updesc_fail(ld, "%s: bad partial message", s->prefix);
	}
	s->msg_got = (uint32_t)len;
	return 0;
}

static int
load_session(struct vh_updesc_reader *ld, struct vh_vhost_ctrlr *c, const json_t *j)
{
	struct vh_session *s, **adopted;
	int64_t nvqs, status;
	const json_t *v;
	size_t i;
	int fd, rc;

	fd = vh_updesc_take_fd(ld, json_object_get(j, "fd"));
	if (fd < 0) {
		return vh_updesc_fail(ld, "%s: a session without its connection", c->name);
	}
	if (vh_fd_set_nonblock(fd) < 0) {
		close(fd);
		return -EBADF;
	}
	s = vh_session_new(c, fd);
	if (s == NULL) {
		close(fd);
		return vh_updesc_fail(ld, "%s: cannot create a session", c->name);
	}
	adopted = realloc(g_adopted, (g_nadopted + 1) * sizeof(*g_adopted));
	if (adopted == NULL) {
		return -ENOMEM;
	}
	g_adopted = adopted;
	g_adopted[g_nadopted++] = s;
	s->backend_fd = vh_updesc_take_fd(ld, json_object_get(j, "backend_fd"));
	if (s->backend_fd == -2) {
		s->backend_fd = -1;
		return vh_updesc_fail(ld, "%s: bad back-end channel fd", s->prefix);
	}
	if (vh_updesc_get_u64(j, "features", &s->features) < 0 ||
	    vh_updesc_get_u64(j, "protocol_features", &s->protocol_features) < 0 ||
	    vh_updesc_get_bool(j, "features_set", &s->features_set) < 0 ||
	    vh_updesc_get_bool(j, "protocol_features_set", &s->protocol_features_set) < 0 ||
	    vh_updesc_get_int(j, "status", 0, 0xff, &status) < 0 ||
	    vh_updesc_get_int(j, "nvqs", 1, c->num_queues, &nvqs) < 0) {
		return vh_updesc_fail(ld, "%s: bad session", s->prefix);
	}
	s->status = (uint8_t)status;
	s->nvqs = (uint32_t)nvqs;
	__atomic_store_n(&s->log_all, 0, __ATOMIC_RELAXED);
	rc = load_mem(ld, s, json_object_get(j, "mem"));
	if (rc < 0) {
		return rc;
	}
	rc = load_inflight(ld, s, json_object_get(j, "inflight"));
	if (rc < 0) {
		return rc;
	}
	v = json_object_get(j, "vqs");
	if (!json_is_array(v)) {
		return vh_updesc_fail(ld, "%s: bad queue list", s->prefix);
	}
	for (i = 0; i < json_array_size(v); i++) {
		rc = load_vq(ld, s, json_array_get(v, i));
		if (rc < 0) {
			return rc;
		}
	}
	rc = load_msg(ld, s, json_object_get(j, "msg"));
	if (rc < 0) {
		return rc;
	}
	if (c->ops->features_set != NULL && s->features_set) {
		c->ops->features_set(s);
	}
	v = json_object_get(j, "device");
	if (v != NULL && c->ops->session_load != NULL) {
		rc = c->ops->session_load(s, v);
		if (rc < 0) {
			return vh_updesc_fail(ld, "%s: bad device state", s->prefix);
		}
	}
	VH_INFO(s->prefix, "adopted from the previous vhostd (%zu queue(s) with state)",
	        json_array_size(json_object_get(j, "vqs")));
	return 0;
}

int
vh_vhost_load_sessions(const json_t *state, int *fds, unsigned nfds, char *why, size_t whylen)
{
	struct vh_updesc_reader ld = {fds, nfds, why, whylen};
	const json_t *ctrlrs = json_object_get(state, "controllers"), *cj;
	int64_t format;
	size_t i;

	why[0] = '\0';
	if (vh_updesc_get_int(state, "format", 0, INT32_MAX, &format) < 0 ||
	    format != VH_UPGRADE_FORMAT) {
		return vh_updesc_fail(
		        &ld, "state format %" PRId64 " (this vhostd reads format %d)",
		        json_is_integer(json_object_get(state, "format"))
		                ? (int64_t)json_integer_value(json_object_get(state, "format"))
		                : (int64_t)-1,
		        VH_UPGRADE_FORMAT);
	}
	if (!json_is_array(ctrlrs)) {
		return vh_updesc_fail(&ld, "no controller list");
	}
	json_array_foreach(ctrlrs, i, cj)
	{
		const char *name = json_string_value(json_object_get(cj, "name"));
		const char *dev = json_string_value(json_object_get(cj, "device"));
		const json_t *sessions = json_object_get(cj, "sessions"), *sj;
		struct vh_vhost_ctrlr *c = name != NULL ? vh_vhost_find(name) : NULL;
		size_t k;

		if (c == NULL) {
			return vh_updesc_fail(&ld, "controller '%s' is not in the configuration",
			                      name != NULL ? name : "?");
		}
		if (dev == NULL || strcmp(dev, c->ops->name) != 0 || !json_is_array(sessions) ||
		    json_array_size(sessions) > VH_VHOST_MAX_SESSIONS) {
			return vh_updesc_fail(&ld, "controller '%s': bad entry", name);
		}
		json_array_foreach(sessions, k, sj)
		{
			int rc = load_session(&ld, c, sj);

			if (rc < 0) {
				if (why[0] == '\0') {
					vh_updesc_fail(&ld, "controller '%s': %s", name,
					               strerror(-rc));
				}
				return rc;
			}
		}
	}
	return 0;
}

static struct {
	void (*started)(void *arg, uint64_t stop_ns, uint64_t start_ns);
	void *arg;
	unsigned pending;
	uint64_t oldest_stop_ns;
} g_commit;

static void
commit_synced(struct vh_session *s)
{
	/*
	 * The sync paused the connection's input (as every queue operation does); the front-end's
	 * next message is ours to read now. Without this the rings ran but the session never read
	 * another message, and QEMU hung in its next GET_VRING_BASE.
	 */
	if (s != NULL && !s->closing) {
		vh_sock_resume(s);
	}
	if (--g_commit.pending == 0 && g_commit.started != NULL) {
		g_commit.started(g_commit.arg, g_commit.oldest_stop_ns, vh_now_ns());
	}
}

static void session_input_adopted(struct vh_session *s);

void
vh_vhost_commit(void (*started)(void *arg, uint64_t stop_ns, uint64_t start_ns), void *arg)
{
	g_held = false;
	g_commit.started = started;
	g_commit.arg = arg;
	g_commit.pending = 1;
	g_commit.oldest_stop_ns = 0;
	for (unsigned i = 0; i < g_nadopted; i++) {
		struct vh_session *s = g_adopted[i];

		for (uint32_t q = 0; q < s->nvqs; q++) {
			struct vh_vq *vq = &s->vqs[q];

			if (vq->upgrade_restart && vq->upgrade_stop_ns != 0 &&
			    (g_commit.oldest_stop_ns == 0 ||
			     vq->upgrade_stop_ns < g_commit.oldest_stop_ns)) {
				g_commit.oldest_stop_ns = vq->upgrade_stop_ns;
			}
			vq->upgrade_restart = false;
		}
		if (vh_session_start_ready(s) < 0) {
			vh_session_close(s, "cannot start the adopted rings");
			continue;
		}
		session_input_adopted(s);
		if (!s->closing) {
			/* A round trip through every reactor serving it: its queues run. */
			g_commit.pending++;
			vh_session_sync(s, NULL, commit_synced);
		}
	}
	free(g_adopted);
	g_adopted = NULL;
	g_nadopted = 0;
	vh_vhost_foreach(resume_listening, NULL);
	commit_synced(NULL);
}

static void
session_input_adopted(struct vh_session *s)
{
	if (vh_sock_watch(s) < 0) {
		vh_session_close(s, "cannot watch the adopted connection");
	}
}
