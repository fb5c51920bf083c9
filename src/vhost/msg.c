/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user message table and handlers.
 *
 * Threat model: the front-end process controls every byte of every message and the fds attached.
 * Before any handler runs, the table checks the version bits, that the payload size matches the
 * request type exactly (variable-size messages are checked against their own count fields), the
 * number of fds. Handlers then check
 * queue indices against the number of queues, sizes against the limits, and addresses against
 * the memory table. A message that cannot be honoured gets an error ack when the front-end asked
 * for one (REPLY_ACK), and otherwise closes the session: silently ignoring it would leave the
 * front-end believing in a state we do not have.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/peerfd.h"
#include "vhost/device.h"
#include "vhost/session.h"

/* What every device gets; a device adds its own (device.h: protocol_features). */
#define PROTOCOL_FEATURES                                                                          \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |          \
	 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) |                                             \
	 (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                                            \
	 (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |                                          \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                                     \
	 (1ull << VHOST_USER_PROTOCOL_F_STATUS) | (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD))

/* Ring and transport features every device offers on top of its own. */
#define RING_FEATURES                                                                              \
	((1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX) |               \
	 (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |                 \
	 (1ull << VHOST_F_LOG_ALL))

static uint64_t
offered_features(const struct vh_session *s)
{
	return s->c->ops->features(s->c) | RING_FEATURES;
}

static uint64_t
offered_protocol(const struct vh_session *s)
{
	return PROTOCOL_FEATURES | s->c->ops->protocol_features;
}

enum size_rule {
	SZ_EXACT,     /* payload is exactly .size bytes */
	SZ_MEM_TABLE, /* 8 + nregions * 32 */
	SZ_CONFIG,    /* 12 + config.size */
};

#define F_REPLY 0x1 /* always answers with a payload (GET_*) */

struct msg_desc {
	const char *name;
	enum size_rule rule;
	uint32_t size;
	uint8_t min_fds;
	uint8_t max_fds;
	uint8_t flags;
	int (*handler)(struct vh_session *s, struct vhost_user_msg *m);
};

static bool
has_proto(const struct vh_session *s, unsigned bit)
{
	return (s->protocol_features & (1ull << bit)) != 0;
}

static int
reply_u64(struct vh_session *s, const struct vhost_user_msg *m, uint64_t v)
{
	return vh_sock_reply(s, m, &v, sizeof(v));
}

/* Take ownership of received fd number @i. */
static int
take_fd(struct vh_session *s, unsigned i)
{
	int fd = s->fds[i];

	s->fds[i] = -1;
	return fd;
}

/* VIRTIO_F_RING_PACKED acked: rings are packed, inflight regions in the packed layout. */
static bool
has_packed(const struct vh_session *s)
{
	return (s->features & (1ull << VIRTIO_F_RING_PACKED)) != 0;
}

static struct vh_vq *
get_vq(struct vh_session *s, uint32_t idx)
{
	if (idx >= s->nvqs) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "queue index %u out of range (%u queues)", idx,
		          s->nvqs);
		return NULL;
	}
	return &s->vqs[idx];
}

/* ---- features and ownership ---- */

static int
h_get_features(struct vh_session *s, struct vhost_user_msg *m)
{
	return reply_u64(s, m, offered_features(s));
}

static void
synced(struct vh_session *s)
{
	vh_msg_complete(s, 0);
}

static int
h_set_features(struct vh_session *s, struct vhost_user_msg *m)
{
	uint64_t f = m->payload.u64, offered = offered_features(s);

	if (f & ~offered) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "features 0x%" PRIx64 " were not offered",
		          f & ~offered);
		return -EINVAL;
	}
	/* We implement only the VIRTIO 1.x layout (little-endian, no legacy quirks). */
	if (!(f & (1ull << VIRTIO_F_VERSION_1))) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix,
		          "legacy (non VERSION_1) drivers are not supported");
		return -EINVAL;
	}
	/*
	 * Running queues read the features (INDIRECT, EVENT_IDX): no changes under them, except
	 * LOG_ALL, which QEMU turns on and off around a live migration with the rings running.
	 */
	if (vh_session_any_started(s) && ((f ^ s->features) & ~(1ull << VHOST_F_LOG_ALL)) != 0) {
		return -EBUSY;
	}
	if ((f ^ s->features) & (1ull << VHOST_F_LOG_ALL)) {
		VH_LOG_RL(VH_LOG_NOTICE, s->prefix, "dirty logging %s",
		          f & (1ull << VHOST_F_LOG_ALL) ? "on (live migration)" : "off");
	}
	bool log_on = (f & ~s->features) & (1ull << VHOST_F_LOG_ALL);

	/*
	 * A front-end that acks PROTOCOL_FEATURES without ever negotiating them on this
	 * connection believes in an earlier connection's negotiation: QEMU 7.2 does this when its
	 * reconnect races with the close of the previous connection. It can only have acked what
	 * we offer, so we take the whole offer rather than fail messages it believes valid.
	 */
	if ((f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) && !s->protocol_features_set) {
		VH_LOG_RL(VH_LOG_INFO, s->prefix,
		          "protocol features acked but not negotiated on this connection: "
		          "assuming our offer 0x%" PRIx64 " until SET_PROTOCOL_FEATURES",
		          offered_protocol(s));
		s->protocol_features = offered_protocol(s);
		s->protocol_features_set = true;
	}

	/* Reactors read the features (INDIRECT, discard...) while LOG_ALL flips: atomically. */
	__atomic_store_n(&s->features, f, __ATOMIC_RELAXED);
	s->features_set = true;
	__atomic_store_n(&s->log_all, (f & (1ull << VHOST_F_LOG_ALL)) != 0, __ATOMIC_RELEASE);
	if (s->c->ops->features_set != NULL) {
		s->c->ops->features_set(s);
	}
	if (log_on && vh_session_any_started(s)) {
		/*
		 * QEMU waits for this reply, then copies all of RAM once: every reactor must log
		 * from before that copy on. The round trip also orders what the reactors wrote
		 * before (unlogged) ahead of our reply, so the copy sees it.
		 */
		vh_session_sync(s, NULL, synced);
		return VH_MSG_PENDING;
	}
	return 0;
}

static int
h_get_protocol_features(struct vh_session *s, struct vhost_user_msg *m)
{
	return reply_u64(s, m, offered_protocol(s));
}

static int
h_set_protocol_features(struct vh_session *s, struct vhost_user_msg *m)
{
	if (m->payload.u64 & ~offered_protocol(s)) {
		return -EINVAL;
	}
	s->protocol_features = m->payload.u64;
	s->protocol_features_set = true;
	return 0;
}

/*
 * SET_OWNER guards nothing here: the connection is the owner. We accept it and do not require
 * it, because QEMU 7.2 skips it (and the rest of the handshake) when its reconnect races with
 * the close of the previous connection, for instance when we restart during a live migration
 * (docs/design.md, "A crash during live migration").
 */
static int
h_set_owner(struct vh_session *s, struct vhost_user_msg *m)
{
	return 0;
}

static int
h_get_queue_num(struct vh_session *s, struct vhost_user_msg *m)
{
	return reply_u64(s, m, s->nvqs);
}

static int
h_get_max_mem_slots(struct vh_session *s, struct vhost_user_msg *m)
{
	return reply_u64(s, m, VH_MAX_MEM_REGIONS);
}

static int
h_set_backend_req_fd(struct vh_session *s, struct vhost_user_msg *m)
{
	/* We only ever send on it, with MSG_DONTWAIT (socket.c). */
	if (vh_peerfd_check_unix_socket(s->fds[0]) < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix,
		          "SET_BACKEND_REQ_FD: the fd is not a UNIX stream socket");
		return -EINVAL;
	}
	if (s->backend_fd >= 0) {
		close(s->backend_fd);
	}
	s->backend_fd = take_fd(s, 0);
	return 0;
}

static int
h_get_status(struct vh_session *s, struct vhost_user_msg *m)
{
	return reply_u64(s, m, s->status);
}

static int
h_set_status(struct vh_session *s, struct vhost_user_msg *m)
{
	if (m->payload.u64 > 0xff) {
		return -EINVAL;
	}
	s->status = (uint8_t)m->payload.u64;
	return 0;
}

/* ---- configuration space ---- */

static int
h_get_config(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vhost_user_config *req = &m->payload.config, rep;
	uint8_t full[VHOST_USER_MAX_CONFIG_SIZE] = {0};

	/* Any window inside the first 256 bytes: what we do not define reads as zero. */
	if (req->size == 0 || req->offset > VHOST_USER_MAX_CONFIG_SIZE ||
	    req->size > VHOST_USER_MAX_CONFIG_SIZE - req->offset || s->c->ops->get_config == NULL) {
		return -EINVAL;
	}
	s->c->ops->get_config(s, full);
	rep.offset = req->offset;
	rep.size = req->size;
	rep.flags = 0;
	memcpy(rep.region, full + req->offset, req->size);
	if (s->c->ops->config_read != NULL) {
		s->c->ops->config_read(s);
	}
	return vh_sock_reply(s, m, &rep, VHOST_USER_CONFIG_HDR_SIZE + req->size);
}

static int
h_set_config(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vhost_user_config *req = &m->payload.config;

	if (s->c->ops->set_config == NULL) {
		return -EINVAL;
	}
	/* size_ok() checked offset/size against the payload; the device checks the field. */
	return s->c->ops->set_config(s, req->offset, req->region, req->size);
}

/* ---- memory table ---- */

static void
mem_swap(struct vh_session *s)
{
	struct vh_mem *old = s->mem, *next = s->pending_mem;

	s->mem = next;
	s->pending_mem = NULL;
	if (old == NULL) {
		return;
	}
	/* Unmap what the new table no longer uses (queues are stopped, nothing points in). */
	for (uint32_t i = 0; i < old->nregions; i++) {
		bool kept = false;

		for (uint32_t j = 0; next != NULL && j < next->nregions; j++) {
			kept |= next->regions[j].map_base == old->regions[i].map_base;
		}
		if (!kept) {
			vh_mem_region_unmap(&old->regions[i]);
		}
	}
	free(old);
}

static void
mem_change_done(struct vh_session *s)
{
	int rc;

	mem_swap(s);
	rc = vh_session_start_ready(s);
	if (rc < 0) {
		/* A ring lived in the removed memory: the device cannot go on (design rule 10). */
		vh_session_close(s, "a running ring is no longer in guest memory");
		return;
	}
	vh_msg_complete(s, rc);
}

/* Install s->pending_mem now, or after stopping the queues that use the current table. */
static int
mem_commit(struct vh_session *s)
{
	if (!vh_session_any_started(s)) {
		mem_swap(s);
		return vh_session_start_ready(s);
	}
	vh_session_quiesce(s, mem_change_done);
	return VH_MSG_PENDING;
}

/*
 * While a migration logs, memory the log does not cover could be written and never copied:
 * refuse it. QEMU grows the log (SET_LOG_BASE) before it adds memory.
 */
static bool
log_covers(struct vh_session *s, const struct vh_mem *m)
{
	if (!__atomic_load_n(&s->log_all, __ATOMIC_RELAXED) || s->log.bits == NULL ||
	    vh_dlog_covers(&s->log, m)) {
		return true;
	}
	VH_LOG_RL(VH_LOG_ERROR, s->prefix,
	          "memory change refused: the dirty log (%" PRIu64 " bytes) would not cover it",
	          s->log.bytes);
	return false;
}

static struct vh_mem *
mem_clone(const struct vh_mem *m)
{
	struct vh_mem *n = calloc(1, sizeof(*n));

	if (n != NULL && m != NULL) {
		*n = *m;
	}
	return n;
}

static int
h_set_mem_table(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vhost_user_memory *wire = &m->payload.memory;
	struct vh_mem *n;
	int rc = 0;

	if (s->nfds != wire->nregions) {
		return -EINVAL;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < wire->nregions; i++) {
		struct vh_mem_region r;

		rc = vh_mem_region_map(&r, &wire->regions[i], s->fds[i], s);
		if (rc == 0 && (rc = vh_mem_check_add(n, &r)) < 0) {
			vh_mem_region_unmap(&r);
		}
		if (rc < 0) {
			VH_LOG_RL(VH_LOG_ERROR, s->prefix, "SET_MEM_TABLE region %u refused: %s", i,
			          strerror(-rc));
			vh_mem_unmap_all(n);
			free(n);
			return rc;
		}
		n->regions[n->nregions++] = r;
	}
	if (!log_covers(s, n)) {
		vh_mem_unmap_all(n);
		free(n);
		return -EINVAL;
	}
	/* A whole new table: every old mapping goes once the queues are quiet. */
	s->pending_mem = n;
	return mem_commit(s);
}

static int
h_add_mem_reg(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vh_mem_region r;
	struct vh_mem *n;
	int rc;

	if (s->mem != NULL && s->mem->nregions >= VH_MAX_MEM_REGIONS) {
		return -ENOSPC;
	}
	rc = vh_mem_region_map(&r, &m->payload.mem_reg.region, s->fds[0], s);
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "ADD_MEM_REG refused: %s", strerror(-rc));
		return rc;
	}
	rc = vh_mem_check_add(s->mem, &r);
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "ADD_MEM_REG refused: %s",
		          rc == -EINVAL ? "overlaps an existing region" : strerror(-rc));
		vh_mem_region_unmap(&r);
		return rc;
	}
	n = mem_clone(s->mem);
	if (n == NULL) {
		vh_mem_region_unmap(&r);
		return -ENOMEM;
	}
	n->regions[n->nregions++] = r;
	if (!log_covers(s, n)) {
		vh_mem_region_unmap(&r);
		free(n);
		return -EINVAL;
	}
	s->pending_mem = n;
	return mem_commit(s);
}

static int
h_rem_mem_reg(struct vh_session *s, struct vhost_user_msg *m)
{
	const struct vhost_user_memory_region *w = &m->payload.mem_reg.region;
	struct vh_mem *n;

	if (s->mem == NULL) {
		return -EINVAL;
	}
	for (uint32_t i = 0; i < s->mem->nregions; i++) {
		const struct vh_mem_region *r = &s->mem->regions[i];

		if (r->gpa != w->guest_phys_addr || r->size != w->memory_size ||
		    r->qva != w->userspace_addr) {
			continue;
		}
		n = mem_clone(s->mem);
		if (n == NULL) {
			return -ENOMEM;
		}
		n->regions[i] = n->regions[--n->nregions];
		s->pending_mem = n;
		return mem_commit(s);
	}
	VH_LOG_RL(VH_LOG_ERROR, s->prefix, "REM_MEM_REG: no such region");
	return -EINVAL;
}

/* ---- virtqueues ---- */

static int
h_set_vring_num(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vh_vq *vq = get_vq(s, m->payload.state.index);
	uint32_t num = m->payload.state.num;

	if (vq == NULL || vq->started) {
		return vq ? -EBUSY : -EINVAL;
	}
	if (!VH_IS_POW2(num) || num > VH_MAX_QUEUE_SIZE) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "queue %u: bad size %u", vq->idx, num);
		return -EINVAL;
	}
	vq->size = num;
	return 0;
}

static int
h_set_vring_addr(struct vh_session *s, struct vhost_user_msg *m)
{
	const struct vhost_vring_addr *a = &m->payload.addr;
	struct vh_vq *vq = get_vq(s, a->index);

	if (vq == NULL) {
		return -EINVAL;
	}
	if (a->flags & ~(uint32_t)VHOST_VRING_F_LOG) {
		return -EINVAL;
	}
	if (vq->started) {
		/*
		 * QEMU turns used-ring logging on and off on running rings (live migration); the
		 * ring itself cannot move while it runs.
		 */
		if (a->desc_user_addr != vq->addr.desc_user_addr ||
		    a->avail_user_addr != vq->addr.avail_user_addr ||
		    a->used_user_addr != vq->addr.used_user_addr) {
			return -EBUSY;
		}
		bool log_on =
		        (a->flags & VHOST_VRING_F_LOG) && !(vq->addr.flags & VHOST_VRING_F_LOG);

		vq->addr.flags = a->flags;
		vq->addr.log_guest_addr = a->log_guest_addr;
		__atomic_store_n(&vq->used_log_gpa, a->log_guest_addr, __ATOMIC_RELAXED);
		/* Pairs with the acquire in vring.c log_used(): address before flag. */
		__atomic_store_n(&vq->used_log_on, (a->flags & VHOST_VRING_F_LOG) != 0,
		                 __ATOMIC_RELEASE);
		if (log_on) {
			vh_session_sync(s, vq, synced); /* as for LOG_ALL: log from our reply on */
			return VH_MSG_PENDING;
		}
		return 0;
	}
	vq->addr = *a;
	vq->addr_set = true;
	/* Some front-ends (not QEMU) send the kick before the addresses. */
	return vh_session_try_start(s, vq);
}

static int
h_set_vring_base(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vh_vq *vq = get_vq(s, m->payload.state.index);

	if (vq == NULL || vq->started) {
		return vq ? -EBUSY : -EINVAL;
	}
	return vh_vq_set_position(vq, m->payload.state.num, has_packed(s));
}

static void
vring_base_done(struct vh_session *s)
{
	struct vh_vq *vq = &s->vqs[s->op_msg.payload.state.index];
	struct vhost_vring_state st = {.index = vq->idx, .num = vh_vq_position(vq)};
	int rc = vh_sock_reply(s, &s->op_msg, &st, sizeof(st));

	/* "Ring states": stopped now; only a new SET_VRING_KICK starts it again. */
	vq->kick_set = false;

	vh_msg_complete(s, rc);
}

static int
h_get_vring_base(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vh_vq *vq = get_vq(s, m->payload.state.index);
	struct vhost_vring_state st;

	if (vq == NULL) {
		return -EINVAL;
	}
	if (vq->started) {
		/* Reply only when the reactor stopped fetching and every request completed. */
		vh_session_stop_one(s, vq, vring_base_done);
		return VH_MSG_PENDING;
	}
	if (!vq->addr_set && !vq->base_set) {
		/*
		 * No ring was set up on this connection, so we have no base to give, and a made-up
		 * 0 would become the queue's state in QEMU (and in a migration stream). A front-end
		 * asks only because it lost track of the connection: QEMU 7.2 misses a back-end
		 * restart that happens while its device is stopped. Closing makes QEMU take the
		 * base from the used ring instead.
		 */
		VH_LOG_RL(VH_LOG_ERROR, s->prefix,
		          "GET_VRING_BASE for queue %u, which was never set up on this connection: "
		          "the front-end has lost track of the connection",
		          vq->idx);
		return -EPROTO;
	}
	st.index = vq->idx;
	st.num = vh_vq_position(vq);
	vq->kick_set = false;
	return vh_sock_reply(s, m, &st, sizeof(st));
}

/* Shared by KICK/CALL/ERR: returns the queue and the fd (-1 with NOFD), or NULL. */
static struct vh_vq *
vring_fd_msg(struct vh_session *s, struct vhost_user_msg *m, int *fd)
{
	uint64_t v = m->payload.u64;
	bool nofd = (v & VHOST_USER_VRING_NOFD) != 0;
	struct vh_vq *vq;

	if ((v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD)) != 0 ||
	    (nofd ? s->nfds != 0 : s->nfds != 1)) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s: fd count does not match the NOFD flag",
		          vh_msg_name(m->request));
		return NULL;
	}
	vq = get_vq(s, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK));
	if (vq == NULL) {
		return NULL;
	}
	/*
	 * We write call fds and wait on kick fds from a reactor: anything but an eventfd (a pipe
	 * nobody drains, a file on a FUSE mount the peer serves) could block it.
	 */
	if (!nofd && vh_peerfd_check_eventfd(s->fds[0]) < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s: the fd is not an eventfd",
		          vh_msg_name(m->request));
		return NULL;
	}
	*fd = nofd ? -1 : take_fd(s, 0);
	return vq;
}

static int
h_set_vring_kick(struct vh_session *s, struct vhost_user_msg *m)
{
	int fd = -1;
	struct vh_vq *vq = vring_fd_msg(s, m, &fd);

	if (vq == NULL) {
		return -EINVAL;
	}
	if (vq->started) {
		vh_vq_set_kickfd_running(vq, fd);
		vq->kickfd = fd; /* the reactor closes the previous one */
		return 0;
	}
	if (vq->kickfd >= 0) {
		close(vq->kickfd);
	}
	vq->kickfd = fd;
	vq->kick_set = true;
	/* VIRTIO/vhost-user "Ring states": a ring starts when it gets its kick. */
	return vh_session_try_start(s, vq);
}

static int
h_set_vring_call(struct vh_session *s, struct vhost_user_msg *m)
{
	int fd = -1;
	struct vh_vq *vq = vring_fd_msg(s, m, &fd);

	if (vq == NULL) {
		return -EINVAL;
	}
	if (vq->started) {
		vh_vq_set_callfd_running(vq, fd);
		vq->callfd = fd; /* the reactor closes the previous one */
		return 0;
	}
	if (vq->callfd >= 0) {
		close(vq->callfd);
	}
	vq->callfd = fd;
	return 0;
}

static int
h_set_vring_err(struct vh_session *s, struct vhost_user_msg *m)
{
	int fd = -1;
	struct vh_vq *vq = vring_fd_msg(s, m, &fd);

	if (vq == NULL) {
		return -EINVAL;
	}
	/* Stored only: we report errors by closing the session. The reactor never uses it. */
	if (vq->errfd >= 0) {
		close(vq->errfd);
	}
	vq->errfd = fd;
	return 0;
}

static int
h_set_vring_enable(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vh_vq *vq = get_vq(s, m->payload.state.index);
	/*
	 * vhost-user.rst says 0 or 1, but SPDK's virtio-user initiator sends the queue size, and
	 * libvhost-user and DPDK treat any non-zero value as "enable". Refusing it protects
	 * nothing and locks out a real initiator.
	 */
	bool en = m->payload.state.num != 0;

	if (vq == NULL) {
		return -EINVAL;
	}
	vq->enabled = en;
	if (vq->started) {
		vh_vq_set_enable_running(vq, en);
	}
	/* QEMU 7.2 enables every queue, configured or not: that alone starts nothing. */
	return 0;
}

/* ---- inflight tracking ---- */

static int
h_get_inflight_fd(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vhost_user_inflight rep = m->payload.inflight;
	uint64_t size;
	int fd, rc;

	if (rep.num_queues > s->nvqs) {
		return -EINVAL;
	}
	/* QEMU >= 5.2 acks the features first, so the layout matches the rings. */
	fd = vh_inflight_create(rep.num_queues, rep.queue_size, has_packed(s), &size);
	if (fd < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "GET_INFLIGHT_FD(%u queues of %u): %s",
		          rep.num_queues, rep.queue_size, strerror(-fd));
		return fd;
	}
	rep.mmap_size = size;
	rep.mmap_offset = 0;
	/* The front-end keeps the only reference; it maps it back to us with SET_INFLIGHT_FD. */
	rc = vh_sock_reply_fd(s, m, &rep, sizeof(rep), fd);
	close(fd);
	return rc;
}

static int
h_set_inflight_fd(struct vh_session *s, struct vhost_user_msg *m)
{
	int rc;

	if (vh_session_any_started(s)) {
		return -EBUSY;
	}
	if (m->payload.inflight.num_queues > s->nvqs) {
		return -EINVAL;
	}
	rc = vh_inflight_map(&s->inflight, &m->payload.inflight, s->fds[0], has_packed(s));
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "SET_INFLIGHT_FD refused: %s", strerror(-rc));
	}
	return rc;
}

/* ---- dirty logging (live migration) ---- */

/* The new log replaces the old one while no queue runs (reactors mark it without locks). */
static void
log_swap(struct vh_session *s, struct vh_dlog *next)
{
	vh_dlog_unmap(&s->log);
	s->log = *next;
}

static void
log_base_done(struct vh_session *s)
{
	struct vh_dlog *next = s->pending_log;
	uint64_t zero = 0;
	int rc;

	s->pending_log = NULL;
	log_swap(s, next);
	free(next);
	rc = vh_session_start_ready(s);
	if (rc < 0) {
		vh_session_close(s, "cannot restart the rings after a log change");
		return;
	}
	/* QEMU 7.2 waits for a reply to SET_LOG_BASE with LOG_SHMFD and checks its type only. */
	rc = vh_sock_reply(s, &s->op_msg, &zero, sizeof(zero));
	vh_msg_complete(s, rc);
}

static int
h_set_log_base(struct vh_session *s, struct vhost_user_msg *m)
{
	const struct vhost_user_log *w = &m->payload.log;
	struct vh_dlog next;
	uint64_t zero = 0;
	int rc;

	if (!has_proto(s, VHOST_USER_PROTOCOL_F_LOG_SHMFD)) {
		return -EINVAL;
	}
	rc = vh_dlog_map(&next, w->mmap_size, w->mmap_offset, s->fds[0]);
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "SET_LOG_BASE refused: %s",
		          rc == -EPERM ? "the log is not a memfd sealed against shrinking"
		                       : strerror(-rc));
		return rc;
	}
	if (!vh_dlog_covers(&next, s->mem)) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix,
		          "SET_LOG_BASE refused: a %" PRIu64
		          "-byte log does not cover guest memory",
		          w->mmap_size);
		vh_dlog_unmap(&next);
		return -EINVAL;
	}
	if (!vh_session_any_started(s)) {
		log_swap(s, &next);
		return vh_sock_reply(s, m, &zero, sizeof(zero));
	}
	/* Rings run (a migration starting, or memory growing during one): quiesce, swap. */
	s->pending_log = malloc(sizeof(*s->pending_log));
	if (s->pending_log == NULL) {
		vh_dlog_unmap(&next);
		return -ENOMEM;
	}
	*s->pending_log = next;
	vh_session_quiesce(s, log_base_done);
	return VH_MSG_PENDING;
}

static int
h_set_log_fd(struct vh_session *s, struct vhost_user_msg *m)
{
	/* The log-update notifier of the non-shared-memory log: we never need it (closed). */
	return 0;
}

static void
reset_done(struct vh_session *s)
{
	for (uint32_t i = 0; i < s->nvqs; i++) {
		vh_vq_reset(&s->vqs[i]);
	}
	s->features = 0;
	s->features_set = false;
	s->status = 0;
	__atomic_store_n(&s->log_all, 0, __ATOMIC_RELEASE);
	vh_dlog_unmap(&s->log);
	if (s->c->ops->session_reset != NULL) {
		s->c->ops->session_reset(s);
	}
	vh_inflight_unmap(&s->inflight);
	vh_msg_complete(s, 0);
}

static int
h_reset_device(struct vh_session *s, struct vhost_user_msg *m)
{
	/* Keep the memory table and the session; forget rings and negotiated features. */
	vh_session_quiesce(s, reset_done);
	return VH_MSG_PENDING;
}

#define E(req, n, rule, sz, minf, maxf, fl, h) [VHOST_USER_##req] = {n, rule, sz, minf, maxf, fl, h}

static const struct msg_desc msg_table[VHOST_USER_MAX_REQUEST] = {
        E(GET_FEATURES, "GET_FEATURES", SZ_EXACT, 0, 0, 0, F_REPLY, h_get_features),
        E(SET_FEATURES, "SET_FEATURES", SZ_EXACT, 8, 0, 0, 0, h_set_features),
        E(SET_OWNER, "SET_OWNER", SZ_EXACT, 0, 0, 0, 0, h_set_owner),
        E(RESET_OWNER, "RESET_OWNER", SZ_EXACT, 0, 0, 0, 0, h_reset_device),
        E(SET_MEM_TABLE, "SET_MEM_TABLE", SZ_MEM_TABLE, 0, 0, VHOST_MEMORY_MAX_REGIONS, 0,
          h_set_mem_table),
        E(SET_LOG_BASE, "SET_LOG_BASE", SZ_EXACT, 16, 1, 1, F_REPLY, h_set_log_base),
        E(SET_LOG_FD, "SET_LOG_FD", SZ_EXACT, 0, 1, 1, 0, h_set_log_fd),
        E(SET_VRING_NUM, "SET_VRING_NUM", SZ_EXACT, 8, 0, 0, 0, h_set_vring_num),
        E(SET_VRING_ADDR, "SET_VRING_ADDR", SZ_EXACT, 40, 0, 0, 0, h_set_vring_addr),
        E(SET_VRING_BASE, "SET_VRING_BASE", SZ_EXACT, 8, 0, 0, 0, h_set_vring_base),
        E(GET_VRING_BASE, "GET_VRING_BASE", SZ_EXACT, 8, 0, 0, F_REPLY, h_get_vring_base),
        E(SET_VRING_KICK, "SET_VRING_KICK", SZ_EXACT, 8, 0, 1, 0, h_set_vring_kick),
        E(SET_VRING_CALL, "SET_VRING_CALL", SZ_EXACT, 8, 0, 1, 0, h_set_vring_call),
        E(SET_VRING_ERR, "SET_VRING_ERR", SZ_EXACT, 8, 0, 1, 0, h_set_vring_err),
        E(GET_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES", SZ_EXACT, 0, 0, 0, F_REPLY,
          h_get_protocol_features),
        E(SET_PROTOCOL_FEATURES, "SET_PROTOCOL_FEATURES", SZ_EXACT, 8, 0, 0, 0,
          h_set_protocol_features),
        E(GET_QUEUE_NUM, "GET_QUEUE_NUM", SZ_EXACT, 0, 0, 0, F_REPLY, h_get_queue_num),
        E(SET_VRING_ENABLE, "SET_VRING_ENABLE", SZ_EXACT, 8, 0, 0, 0, h_set_vring_enable),
        E(SEND_RARP, "SEND_RARP", SZ_EXACT, 8, 0, 0, 0, NULL),
        E(NET_SET_MTU, "NET_SET_MTU", SZ_EXACT, 8, 0, 0, 0, NULL),
        E(SET_BACKEND_REQ_FD, "SET_BACKEND_REQ_FD", SZ_EXACT, 0, 1, 1, 0, h_set_backend_req_fd),
        E(IOTLB_MSG, "IOTLB_MSG", SZ_EXACT, 0, 0, 0, 0, NULL),
        E(SET_VRING_ENDIAN, "SET_VRING_ENDIAN", SZ_EXACT, 8, 0, 0, 0, NULL),
        E(GET_CONFIG, "GET_CONFIG", SZ_CONFIG, 0, 0, 0, F_REPLY, h_get_config),
        E(SET_CONFIG, "SET_CONFIG", SZ_CONFIG, 0, 0, 0, 0, h_set_config),
        E(CREATE_CRYPTO_SESSION, "CREATE_CRYPTO_SESSION", SZ_EXACT, 0, 0, 0, 0, NULL),
        E(CLOSE_CRYPTO_SESSION, "CLOSE_CRYPTO_SESSION", SZ_EXACT, 8, 0, 0, 0, NULL),
        E(POSTCOPY_ADVISE, "POSTCOPY_ADVISE", SZ_EXACT, 0, 0, 0, 0, NULL),
        E(POSTCOPY_LISTEN, "POSTCOPY_LISTEN", SZ_EXACT, 0, 0, 0, 0, NULL),
        E(POSTCOPY_END, "POSTCOPY_END", SZ_EXACT, 0, 0, 0, 0, NULL),
        E(GET_INFLIGHT_FD, "GET_INFLIGHT_FD", SZ_EXACT, 24, 0, 0, F_REPLY, h_get_inflight_fd),
        E(SET_INFLIGHT_FD, "SET_INFLIGHT_FD", SZ_EXACT, 24, 1, 1, 0, h_set_inflight_fd),
        E(GPU_SET_SOCKET, "GPU_SET_SOCKET", SZ_EXACT, 0, 1, 1, 0, NULL),
        E(RESET_DEVICE, "RESET_DEVICE", SZ_EXACT, 0, 0, 0, 0, h_reset_device),
        E(VRING_KICK, "VRING_KICK", SZ_EXACT, 8, 0, 0, 0, NULL),
        E(GET_MAX_MEM_SLOTS, "GET_MAX_MEM_SLOTS", SZ_EXACT, 0, 0, 0, F_REPLY, h_get_max_mem_slots),
        E(ADD_MEM_REG, "ADD_MEM_REG", SZ_EXACT, 40, 1, 1, 0, h_add_mem_reg),
        /* QEMU may attach the region's fd to REM_MEM_REG; we do not need it (closed). */
        E(REM_MEM_REG, "REM_MEM_REG", SZ_EXACT, 40, 0, 1, 0, h_rem_mem_reg),
        E(SET_STATUS, "SET_STATUS", SZ_EXACT, 8, 0, 0, 0, h_set_status),
        E(GET_STATUS, "GET_STATUS", SZ_EXACT, 0, 0, 0, F_REPLY, h_get_status),
};

const char *
vh_msg_name(uint32_t request)
{
	if (request < VHOST_USER_MAX_REQUEST && msg_table[request].name != NULL) {
		return msg_table[request].name;
	}
	return "UNKNOWN";
}

static bool
size_ok(const struct msg_desc *d, const struct vhost_user_msg *m)
{
	switch (d->rule) {
	case SZ_EXACT:
		return m->size == d->size;
	case SZ_MEM_TABLE:
		if (m->size < 8) {
			return false;
		}
		return m->payload.memory.nregions <= VHOST_MEMORY_MAX_REGIONS &&
		       m->size == 8 + m->payload.memory.nregions *
		                                  sizeof(struct vhost_user_memory_region);
	case SZ_CONFIG:
		/*
		 * config.size bytes are used; SPDK's initiator pads the payload to the whole
		 * 256-byte window, which is harmless: the rest is ignored.
		 */
		return m->size >= VHOST_USER_CONFIG_HDR_SIZE &&
		       m->payload.config.size <= VHOST_USER_MAX_CONFIG_SIZE &&
		       m->size >= VHOST_USER_CONFIG_HDR_SIZE + m->payload.config.size &&
		       m->size <= VHOST_USER_CONFIG_HDR_SIZE + VHOST_USER_MAX_CONFIG_SIZE;
	}
	return false;
}

/* Why a message is refused before its handler runs, or NULL if it may run. */
static const char *
precheck(struct vh_session *s, const struct vhost_user_msg *m, const struct msg_desc **out)
{
	const struct msg_desc *d;

	if ((m->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
	    (m->flags & VHOST_USER_REPLY_MASK)) {
		return "bad version or reply flag";
	}
	if (m->request >= VHOST_USER_MAX_REQUEST || msg_table[m->request].name == NULL) {
		return "unknown request";
	}
	d = &msg_table[m->request];
	*out = d;
	if (d->handler == NULL) {
		return "request not supported (its feature was not offered)";
	}
	if (!size_ok(d, m)) {
		return "wrong payload size";
	}
	if (s->fd_overflow || s->nfds < d->min_fds || s->nfds > d->max_fds) {
		return "wrong number of file descriptors";
	}
	return NULL;
}

static bool
wants_ack(const struct vh_session *s, const struct vhost_user_msg *m)
{
	const struct msg_desc *d = &msg_table[m->request];

	return has_proto(s, VHOST_USER_PROTOCOL_F_REPLY_ACK) &&
	       (m->flags & VHOST_USER_NEED_REPLY) && !(d->flags & F_REPLY);
}

static void
finish(struct vh_session *s, const struct vhost_user_msg *m, int rc)
{
	if (wants_ack(s, m)) {
		/* REPLY_ACK: 0 is success, anything else a failure the front-end reports. */
		if (reply_u64(s, m, rc == 0 ? 0 : 1) < 0) {
			vh_session_close(s, "cannot send reply");
		}
		return;
	}
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s failed: %s; closing session",
		          vh_msg_name(m->request), strerror(-rc));
		vh_session_close(s, "message failed");
	}
}

void
vh_msg_dispatch(struct vh_session *s)
{
	struct vhost_user_msg *m = &s->msg;
	const struct msg_desc *d = NULL;
	const char *why = precheck(s, m, &d);
	int rc;

	VH_DEBUG(s->prefix, "<- %s size %u fds %u flags 0x%x", vh_msg_name(m->request), m->size,
	         s->nfds, m->flags);
	if (why != NULL) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "%s (request %u, size %u, %u fds): %s",
		          vh_msg_name(m->request), m->request, m->size, s->nfds, why);
		vh_session_close(s, "malformed message");
		return;
	}
	/* Saved first: an asynchronous handler may also complete before it returns. */
	s->op_msg = *m;
	rc = d->handler(s, m);
	if (rc == VH_MSG_PENDING) {
		return;
	}
	finish(s, m, rc);
}

void
vh_msg_complete(struct vh_session *s, int rc)
{
	if (s->closing) {
		return;
	}
	finish(s, &s->op_msg, rc);
	if (!s->closing) {
		vh_sock_resume(s);
	}
}
