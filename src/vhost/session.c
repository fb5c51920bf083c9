/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Controllers and sessions: the vhost.h API, queue placement on reactors, and the asynchronous
 * stop/quiesce/close sequences. Control thread only.
 *
 * Threat model: the front-end decides when sessions open and close, possibly in the middle of an
 * asynchronous operation (a GET_VRING_BASE, a memory change). A close supersedes whatever was
 * pending, waits for every queue to stop, and frees the session from a message, so no path
 * touches freed memory and no in-flight I/O writes into unmapped guest memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/log.h"
#include "core/reactor.h"
#include "vhost/device.h"
#include "vhost/session.h"
#include "vhost/upgrade.h"

static struct vh_vhost_ctrlr *g_ctrlrs;
static char g_sock_dir[108] = ".";
static gid_t g_sock_group = (gid_t)-1;
static unsigned g_live_sessions;
static void (*g_shutdown_done)(void *arg);
static void *g_shutdown_arg;

int
vh_vhost_init(const char *socket_dir, gid_t sock_group)
{
	if (vh_strlcpy_checked(g_sock_dir, socket_dir, sizeof(g_sock_dir)) < 0) {
		return -ENAMETOOLONG;
	}
	if (access(socket_dir, W_OK | X_OK) < 0) {
		return -errno;
	}
	g_sock_group = sock_group;
	return 0;
}

/* ---- sessions ---- */

static void session_free(void *arg);

struct vh_session *
vh_session_new(struct vh_vhost_ctrlr *c, int fd)
{
	struct vh_session *s;
	unsigned id = 0;

	while (id < VH_VHOST_MAX_SESSIONS && c->sessions[id] != NULL) {
		id++;
	}
	if (id == VH_VHOST_MAX_SESSIONS) {
		return NULL; /* callers stop accepting before this */
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return NULL;
	}
	s->c = c;
	s->id = id;
	s->fd = fd;
	s->backend_fd = -1;
	s->nvqs = c->num_queues;
	/* The first front-end logs as the controller; a second one (a migration) as <name>sN. */
	if (id == 0) {
		snprintf(s->prefix, sizeof(s->prefix), "%s", c->name);
	} else {
		snprintf(s->prefix, sizeof(s->prefix), "%ss%u", c->name, id);
	}
	for (unsigned i = 0; i < VHOST_USER_MAX_FDS; i++) {
		s->fds[i] = -1;
	}
	for (uint32_t i = 0; i < VH_VHOST_MAX_QUEUES; i++) {
		struct vh_vq *vq = &s->vqs[i];

		vq->s = s;
		vq->ops = c->ops;
		vq->log_all = &s->log_all;
		vq->idx = (uint16_t)i;
		vq->kickfd = vq->callfd = vq->errfd = -1;
		vq->cur_kickfd = vq->cur_callfd = -1;
		snprintf(vq->prefix, sizeof(vq->prefix), "%s/q%u", s->prefix, i);
		vh_vq_init_nodes(vq);
	}
	vh_msg_node_init(&s->free_node, session_free, s);
	if (c->ops->session_init != NULL && c->ops->session_init(s) < 0) {
		free(s);
		return NULL;
	}
	c->sessions[id] = s;
	c->nsessions++;
	g_live_sessions++;
	return s;
}

bool
vh_session_any_started(const struct vh_session *s)
{
	for (uint32_t i = 0; i < s->nvqs; i++) {
		if (s->vqs[i].started) {
			return true;
		}
	}
	return false;
}

/* Queue i goes to the i-th reactor of the controller's mask, round robin. */
static struct vh_reactor *
pick_reactor(const struct vh_vhost_ctrlr *c, uint16_t qidx)
{
	unsigned n = 0, want;
	uint64_t mask = c->cpumask;

	want = qidx % (unsigned)__builtin_popcountll(mask);
	for (unsigned core = 0; core < 64; core++) {
		if (!(mask & (1ull << core))) {
			continue;
		}
		if (n++ == want) {
			return vh_reactor_by_core(core);
		}
	}
	return vh_reactor_get(0);
}

/*
 * Another session of the controller is being closed and its queues are still completing
 * requests: they write the same rings (the front-end reconnected to the same guest).
 */
static bool
sibling_draining(const struct vh_session *s)
{
	for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
		const struct vh_session *o = s->c->sessions[i];

		if (o != NULL && o != s && o->closing && o->pending_stops > 0) {
			return true;
		}
	}
	return false;
}

void
vh_session_accepted(struct vh_session *s)
{
	struct vh_vhost_ctrlr *c = s->c;

	/*
	 * A front-end that reconnects has closed its previous connection first, but we may not
	 * have seen that EOF yet: look now (poll() with no wait), so the old session starts
	 * closing before the new one is read.
	 */
	for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
		struct vh_session *o = c->sessions[i];
		struct pollfd p;

		if (o == NULL || o == s || o->closing) {
			continue;
		}
		p = (struct pollfd){.fd = o->fd, .events = POLLRDHUP};
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			vh_session_close(o, "front-end hung up");
		}
	}
	/*
	 * While the old connection's requests still complete, the new one waits before its
	 * first message, as it did in the backlog when a controller had one session: a
	 * front-end restarts its rings from used->idx (QEMU does without an inflight region),
	 * which only holds still once they are done.
	 */
	if (sibling_draining(s)) {
		s->wait_sibling = true;
		vh_sock_pause(s);
	}
}

int
vh_session_try_start(struct vh_session *s, struct vh_vq *vq)
{
	int rc;

	if (vq->started || s->mem == NULL || !vq->addr_set || vq->size == 0 || !vq->kick_set) {
		return 0;
	}
	if (sibling_draining(s)) {
		/*
		 * A front-end that reconnects while its previous connection's requests still
		 * complete: starting now would fetch from a used index (and recover an inflight
		 * region) that the old session is still moving. Start when it has stopped.
		 */
		s->start_deferred = true;
		return 0;
	}
	/* Without PROTOCOL_FEATURES a ring is enabled as soon as it starts ("Ring states"). */
	if (!(s->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
		vq->enabled = true;
	}
	rc = vh_vq_prepare(vq);
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_ERROR, vq->prefix, "cannot start: ring %s",
		          rc == -EFAULT ? "outside guest memory" : strerror(-rc));
		return rc;
	}
	vq->reactor = pick_reactor(s->c, vq->idx);
	vh_vq_start(vq);
	return 0;
}

int
vh_session_start_ready(struct vh_session *s)
{
	for (uint32_t i = 0; i < s->nvqs; i++) {
		int rc = vh_session_try_start(s, &s->vqs[i]);

		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* The pending operation's continuation runs once every stop and every sync came back. */
static void
op_check(struct vh_session *s)
{
	if (s->pending_stops == 0 && s->pending_syncs == 0 && s->op_done != NULL) {
		void (*done)(struct vh_session *) = s->op_done;

		s->op_done = NULL;
		done(s);
	}
}

static void
stop_done(struct vh_vq *vq)
{
	vq->s->pending_stops--;
	op_check(vq->s);
}

static void
sync_done(struct vh_vq *vq)
{
	vq->s->pending_syncs--;
	op_check(vq->s);
}

void
vh_session_sync(struct vh_session *s, struct vh_vq *only, void (*done)(struct vh_session *s))
{
	vh_sock_pause(s);
	s->op_done = done;
	for (uint32_t i = 0; i < s->nvqs; i++) {
		struct vh_vq *vq = &s->vqs[i];

		if (vq->started && (only == NULL || only == vq)) {
			s->pending_syncs++;
			vh_vq_sync(vq, sync_done);
		}
	}
	op_check(s);
}

static void
stop_vq(struct vh_session *s, struct vh_vq *vq)
{
	if (!vq->started || vq->stop_done != NULL) {
		return; /* not running, or a stop is already on its way */
	}
	s->pending_stops++;
	vh_vq_stop(vq, stop_done);
}

void
vh_session_stop_one(struct vh_session *s, struct vh_vq *vq, void (*done)(struct vh_session *s))
{
	vh_sock_pause(s);
	s->op_done = done;
	stop_vq(s, vq);
	op_check(s);
}

void
vh_session_quiesce(struct vh_session *s, void (*done)(struct vh_session *s))
{
	vh_sock_pause(s);
	s->op_done = done;
	for (uint32_t i = 0; i < s->nvqs; i++) {
		stop_vq(s, &s->vqs[i]);
	}
	op_check(s);
}

static void ctrlr_free(struct vh_vhost_ctrlr *c);

static void
session_free(void *arg)
{
	struct vh_session *s = arg;
	struct vh_vhost_ctrlr *c = s->c;

	vh_vhost_stats_absorb(s);
	for (uint32_t i = 0; i < VH_VHOST_MAX_QUEUES; i++) {
		vh_vq_reset(&s->vqs[i]);
		vh_vq_free_reqs(&s->vqs[i]);
	}
	if (s->pending_mem != NULL) {
		/* A table waiting for a quiesce shares most mappings with s->mem: unmap once. */
		for (uint32_t i = 0; i < s->pending_mem->nregions; i++) {
			struct vh_mem_region *r = &s->pending_mem->regions[i];
			bool shared = false;

			for (uint32_t j = 0; s->mem != NULL && j < s->mem->nregions; j++) {
				shared |= s->mem->regions[j].map_base == r->map_base;
			}
			if (!shared) {
				vh_mem_region_unmap(r);
			}
		}
		free(s->pending_mem);
	}
	if (s->mem != NULL) {
		vh_mem_unmap_all(s->mem);
		free(s->mem);
	}
	vh_sock_close_fds(s);
	vh_inflight_unmap(&s->inflight);
	vh_dlog_unmap(&s->log);
	if (s->pending_log != NULL) {
		vh_dlog_unmap(s->pending_log);
		free(s->pending_log);
	}
	if (s->backend_fd >= 0) {
		close(s->backend_fd);
	}
	close(s->fd);
	if (c->ops->session_fini != NULL) {
		c->ops->session_fini(s);
	}
	c->sessions[s->id] = NULL;
	c->nsessions--;
	free(s);
	g_live_sessions--;
	for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
		struct vh_session *o = c->sessions[i];

		if (o == NULL || o->closing || sibling_draining(o)) {
			continue;
		}
		if (o->start_deferred) {
			o->start_deferred = false;
			if (vh_session_start_ready(o) < 0) {
				vh_session_close(o, "cannot start the rings");
				continue;
			}
		}
		if (o->wait_sibling) {
			o->wait_sibling = false;
			vh_sock_resume(o);
		}
	}
	if (c->deleting) {
		if (c->nsessions == 0) {
			ctrlr_free(c);
		}
	} else {
		vh_sock_resume_listening(c);
	}
	vh_upgrade_poke(); /* a freeze may have been waiting for this session to go */
	if (g_live_sessions == 0 && g_shutdown_done != NULL) {
		void (*done)(void *) = g_shutdown_done;

		g_shutdown_done = NULL;
		done(g_shutdown_arg);
	}
}

static void
close_stopped(struct vh_session *s)
{
	/* Freed from a message: callers up the stack may still look at the session. */
	vh_control_post(&s->free_node);
}

void
vh_session_close(struct vh_session *s, const char *why)
{
	if (s->closing) {
		return;
	}
	s->closing = true;
	VH_LOG_RL(VH_LOG_NOTICE, s->prefix, "closing session: %s", why);
	if (s->src != NULL) {
		vh_evloop_del(s->src);
		s->src = NULL;
	}
	/* Whatever was pending (a GET_VRING_BASE, a quiesce) is superseded by the close. */
	s->op_done = close_stopped;
	for (uint32_t i = 0; i < s->nvqs; i++) {
		stop_vq(s, &s->vqs[i]);
	}
	if (s->pending_stops == 0) {
		s->op_done = NULL;
		close_stopped(s);
	}
}

void
vh_session_report_broken(struct vh_session *s)
{
	if (!s->broken_reported) {
		s->broken_reported = true;
		vh_session_close(s, "guest violated the virtqueue protocol");
	}
}

/* ---- controllers ---- */

static void
ctrlr_free(struct vh_vhost_ctrlr *c)
{
	c->ops->ctrlr_free(c);
	VH_NOTICE("vhost", "controller '%s' removed", c->name);
	free(c);
}

int
vh_ctrlr_create(const char *name, uint64_t cpumask, uint16_t num_queues,
                const struct vh_dev_ops *ops, void *dev, struct vh_vhost_ctrlr **out)
{
	struct vh_vhost_ctrlr *c, **pp;
	uint64_t mask = cpumask ? cpumask : vh_reactor_mask();
	int rc;

	if (vh_name_check(name) < 0 || num_queues > VH_VHOST_MAX_QUEUES) {
		return -EINVAL;
	}
	if (mask == 0 || (mask & ~vh_reactor_mask()) != 0) {
		return -EINVAL;
	}
	if (vh_vhost_find(name) != NULL) {
		return -EEXIST;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -ENOMEM;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->ops = ops;
	c->dev = dev;
	c->cpumask = mask;
	c->num_queues = num_queues ? num_queues : VH_VHOST_DEFAULT_QUEUES;
	c->listen_fd = -1;
	if ((size_t)snprintf(c->sock_path, sizeof(c->sock_path), "%s/%s", g_sock_dir, name) >=
	    sizeof(c->sock_path)) {
		rc = -ENAMETOOLONG;
		goto out_free;
	}
	rc = vh_sock_listen(c);
	if (rc < 0) {
		goto out_free;
	}
	if (g_sock_group != (gid_t)-1 &&
	    (chown(c->sock_path, (uid_t)-1, g_sock_group) < 0 || chmod(c->sock_path, 0660) < 0)) {
		VH_WARN(c->name, "cannot give the socket to group %u: %s", (unsigned)g_sock_group,
		        strerror(errno));
	}
	for (pp = &g_ctrlrs; *pp; pp = &(*pp)->next) {
	}
	*pp = c;
	*out = c;
	return 0;

out_free:
	free(c);
	return rc;
}

struct vh_vhost_ctrlr *
vh_vhost_find(const char *name)
{
	for (struct vh_vhost_ctrlr *c = g_ctrlrs; c; c = c->next) {
		if (strcmp(c->name, name) == 0) {
			return c;
		}
	}
	return NULL;
}

int
vh_vhost_foreach(int (*fn)(struct vh_vhost_ctrlr *c, void *arg), void *arg)
{
	for (struct vh_vhost_ctrlr *c = g_ctrlrs, *next; c; c = next) {
		next = c->next;
		int rc = fn(c, arg);

		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

const char *
vh_vhost_ctrlr_name(const struct vh_vhost_ctrlr *c)
{
	return c->name;
}

const char *
vh_vhost_ctrlr_type(const struct vh_vhost_ctrlr *c)
{
	return c->ops->name;
}

int
vh_vhost_delete(const char *name)
{
	struct vh_vhost_ctrlr **pp, *c = NULL;

	for (pp = &g_ctrlrs; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			c = *pp;
			*pp = c->next;
			break;
		}
	}
	if (c == NULL) {
		return -ENODEV;
	}
	c->deleting = true;
	vh_sock_stop_listening(c);
	if (c->listen_fd >= 0) {
		char key[VH_HANDOVER_KEY_MAX];

		close(c->listen_fd);
		c->listen_fd = -1;
		unlink(c->sock_path);
		snprintf(key, sizeof(key), "sock:%s", c->sock_path);
		vh_handover_drop(key);
	}
	if (c->nsessions > 0) {
		/* Each front-end sees a disconnect once its in-flight I/O has completed. */
		for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
			if (c->sessions[i] != NULL) {
				vh_session_close(c->sessions[i], "controller deleted");
			}
		}
		return 0;
	}
	ctrlr_free(c);
	return 0;
}

static json_t *
mask_json(uint64_t mask)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, mask);
	return json_string(buf);
}

/* SPDK's "sessions" array (vid, id, name, started, max_queues), plus what vhostd adds. */
static json_t *
sessions_json(const struct vh_vhost_ctrlr *c)
{
	json_t *arr = json_array();

	for (unsigned i = 0; arr != NULL && i < VH_VHOST_MAX_SESSIONS; i++) {
		const struct vh_session *s = c->sessions[i];
		char name[VH_NAME_MAX + 16];
		unsigned started = 0;

		if (s == NULL) {
			continue;
		}
		for (uint32_t q = 0; q < s->nvqs; q++) {
			started += s->vqs[q].started;
		}
		snprintf(name, sizeof(name), "%ss%u", c->name, s->id);
		json_array_append_new(arr, json_pack("{s:i, s:i, s:s, s:b, s:i, s:b}", "vid",
		                                     (int)s->id, "id", (int)s->id, "name", name,
		                                     "started", started > 0, "max_queues",
		                                     (int)started, "dirty_logging", s->log_all));
	}
	return arr;
}

json_t *
vh_vhost_ctrlr_info_json(const struct vh_vhost_ctrlr *c)
{
	json_t *dev = c->ops->info_json(c);

	if (dev == NULL) {
		return NULL;
	}
	return json_pack("{s:s, s:o, s:i, s:i, s:s, s:b, s:I, s:o, s:o, s:o}", "ctrlr", c->name,
	                 "cpumask", mask_json(c->cpumask), "delay_base_us", 0, "iops_threshold", 0,
	                 "socket", c->sock_path, "connected", c->nsessions > 0, "connections",
	                 (json_int_t)c->stat_connections, "sessions", sessions_json(c),
	                 "backend_specific", dev, "stats", vh_vhost_ctrlr_stats_json(c));
}

json_t *
vh_vhost_ctrlr_config_json(const struct vh_vhost_ctrlr *c)
{
	return c->ops->config_json(c);
}

json_t *
vh_vhost_cpumask_json(uint64_t mask)
{
	return mask_json(mask);
}

int
vh_session_config_changed(struct vh_session *s)
{
	int rc;

	if (s->backend_fd < 0) {
		return -ENOTCONN;
	}
	rc = vh_sock_send_backend(s, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, NULL, 0);
	if (rc < 0) {
		/* Never waited for: the guest sees the new config at its next read. */
		VH_LOG_RL(VH_LOG_WARN, s->prefix,
		          "cannot send the config-change notice: %s (the front-end %s)",
		          strerror(-rc),
		          rc == -EAGAIN ? "does not read its back-end channel"
		                        : "closed its back-end channel");
	}
	return rc;
}

int
vh_vhost_bdev_resized(struct vh_bdev *b)
{
	int told = 0;

	for (struct vh_vhost_ctrlr *c = g_ctrlrs; c; c = c->next) {
		if (c->ops->bdev_resized != NULL) {
			told += c->ops->bdev_resized(c, b);
		}
	}
	return told;
}

void
vh_vhost_shutdown(void (*done)(void *arg), void *arg)
{
	while (g_ctrlrs != NULL) {
		vh_vhost_delete(g_ctrlrs->name);
	}
	if (g_live_sessions == 0) {
		done(arg);
		return;
	}
	g_shutdown_done = done;
	g_shutdown_arg = arg;
}

void
vh_vhost_close_faulted(void)
{
	/* Controllers being deleted are off the list, but their sessions are closing already. */
	for (struct vh_vhost_ctrlr *c = g_ctrlrs; c; c = c->next) {
		for (unsigned i = 0; i < VH_VHOST_MAX_SESSIONS; i++) {
			struct vh_session *s = c->sessions[i];

			if (s != NULL && !s->closing &&
			    (vh_mem_faulted(s->mem) || vh_mem_faulted(s->pending_mem))) {
				vh_session_close(s, "guest memory became inaccessible (SIGBUS)");
			}
		}
	}
}
