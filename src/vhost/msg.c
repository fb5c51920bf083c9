/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user message table and handlers.
 *
 * Threat model: the front-end process controls every byte of every message and the fds attached.
 * Before any handler runs, the table checks the version bits, that the payload size matches the
 * request type exactly (variable-size messages are checked against their own count fields), the
 * number of fds, and that per-queue messages were preceded by SET_OWNER. Handlers then check
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
#include "vhost/vhost_internal.h"

#define PROTOCOL_FEATURES                                                                          \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |          \
	 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |    \
	 (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                                            \
	 (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |                                          \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                                     \
	 (1ull << VHOST_USER_PROTOCOL_F_STATUS))

enum size_rule {
	SZ_EXACT,     /* payload is exactly .size bytes */
	SZ_MEM_TABLE, /* 8 + nregions * 32 */
	SZ_CONFIG,    /* 12 + config.size */
};

#define F_REPLY 0x1 /* always answers with a payload (GET_*) */
#define F_OWNER 0x2 /* only after SET_OWNER */

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
	return reply_u64(s, m, vh_blk_features(s->c));
}

static int
h_set_features(struct vh_session *s, struct vhost_user_msg *m)
{
	uint64_t f = m->payload.u64, offered = vh_blk_features(s->c);

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
	/* Running queues read the features (INDIRECT, EVENT_IDX): no changes under them. */
	if (vh_session_any_started(s) && f != s->features) {
		return -EBUSY;
	}
	s->features = f;
	s->features_set = true;
	vh_blk_cache_mode_update(s);
	return 0;
}

static int
h_get_protocol_features(struct vh_session *s, struct vhost_user_msg *m)
{
	return reply_u64(s, m, PROTOCOL_FEATURES);
}

static int
h_set_protocol_features(struct vh_session *s, struct vhost_user_msg *m)
{
	if (m->payload.u64 & ~PROTOCOL_FEATURES) {
		return -EINVAL;
	}
	s->protocol_features = m->payload.u64;
	return 0;
}

static int
h_set_owner(struct vh_session *s, struct vhost_user_msg *m)
{
	s->owner_set = true;
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
	struct virtio_blk_config cfg;
	uint8_t full[VHOST_USER_MAX_CONFIG_SIZE] = {0};

	/* Any window inside the first 256 bytes: what we do not define reads as zero. */
	if (req->size == 0 || req->offset > VHOST_USER_MAX_CONFIG_SIZE ||
	    req->size > VHOST_USER_MAX_CONFIG_SIZE - req->offset) {
		return -EINVAL;
	}
	vh_blk_fill_config(s, &cfg);
	memcpy(full, &cfg, sizeof(cfg));
	rep.offset = req->offset;
	rep.size = req->size;
	rep.flags = 0;
	memcpy(rep.region, full + req->offset, req->size);
	return vh_sock_reply(s, m, &rep, VHOST_USER_CONFIG_HDR_SIZE + req->size);
}

static int
h_set_config(struct vh_session *s, struct vhost_user_msg *m)
{
	struct vhost_user_config *req = &m->payload.config;

	/* Only the writeback byte is writable (VIRTIO 1.2 §5.2.4, with CONFIG_WCE). */
	if (req->offset != offsetof(struct virtio_blk_config, wce) || req->size != 1 ||
	    !(s->features & (1ull << VIRTIO_BLK_F_CONFIG_WCE)) || req->region[0] > 1) {
		VH_LOG_RL(VH_LOG_WARN, s->prefix,
		          "SET_CONFIG of read-only field (offset %u size %u)", req->offset,
		          req->size);
		return -EINVAL;
	}
	s->wce = req->region[0];
	vh_blk_cache_mode_update(s);
	VH_LOG_RL(VH_LOG_INFO, s->prefix, "guest set write cache to %s",
	          s->wce ? "write back" : "write through");
	return 0;
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
	struct vh_vq *vq = get_vq(s, m->payload.addr.index);

	if (vq == NULL || vq->started) {
		return vq ? -EBUSY : -EINVAL;
	}
	if (m->payload.addr.flags != 0) {
		return -EINVAL; /* VHOST_VRING_F_LOG: we did not offer LOG_ALL */
	}
	vq->addr = m->payload.addr;
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
	if (m->payload.state.num > 0xffff) {
		return -EINVAL; /* split rings: a 16-bit free-running index */
	}
	vq->base = (uint16_t)m->payload.state.num;
	return 0;
}

static void
vring_base_done(struct vh_session *s)
{
	struct vh_vq *vq = &s->vqs[s->op_msg.payload.state.index];
	struct vhost_vring_state st = {.index = vq->idx, .num = vq->base};
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
	st.index = vq->idx;
	st.num = vq->base;
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
	fd = vh_inflight_create(rep.num_queues, rep.queue_size, &size);
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
	rc = vh_inflight_map(&s->inflight, &m->payload.inflight, s->fds[0]);
	if (rc < 0) {
		VH_LOG_RL(VH_LOG_ERROR, s->prefix, "SET_INFLIGHT_FD refused: %s", strerror(-rc));
	}
	return rc;
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
        E(RESET_OWNER, "RESET_OWNER", SZ_EXACT, 0, 0, 0, F_OWNER, h_reset_device),
        E(SET_MEM_TABLE, "SET_MEM_TABLE", SZ_MEM_TABLE, 0, 0, VHOST_MEMORY_MAX_REGIONS, F_OWNER,
          h_set_mem_table),
        E(SET_LOG_BASE, "SET_LOG_BASE", SZ_EXACT, 16, 1, 1, 0, NULL),
        E(SET_LOG_FD, "SET_LOG_FD", SZ_EXACT, 0, 1, 1, 0, NULL),
        E(SET_VRING_NUM, "SET_VRING_NUM", SZ_EXACT, 8, 0, 0, F_OWNER, h_set_vring_num),
        E(SET_VRING_ADDR, "SET_VRING_ADDR", SZ_EXACT, 40, 0, 0, F_OWNER, h_set_vring_addr),
        E(SET_VRING_BASE, "SET_VRING_BASE", SZ_EXACT, 8, 0, 0, F_OWNER, h_set_vring_base),
        E(GET_VRING_BASE, "GET_VRING_BASE", SZ_EXACT, 8, 0, 0, F_OWNER | F_REPLY, h_get_vring_base),
        E(SET_VRING_KICK, "SET_VRING_KICK", SZ_EXACT, 8, 0, 1, F_OWNER, h_set_vring_kick),
        E(SET_VRING_CALL, "SET_VRING_CALL", SZ_EXACT, 8, 0, 1, F_OWNER, h_set_vring_call),
        E(SET_VRING_ERR, "SET_VRING_ERR", SZ_EXACT, 8, 0, 1, F_OWNER, h_set_vring_err),
        E(GET_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES", SZ_EXACT, 0, 0, 0, F_REPLY,
          h_get_protocol_features),
        E(SET_PROTOCOL_FEATURES, "SET_PROTOCOL_FEATURES", SZ_EXACT, 8, 0, 0, 0,
          h_set_protocol_features),
        E(GET_QUEUE_NUM, "GET_QUEUE_NUM", SZ_EXACT, 0, 0, 0, F_REPLY, h_get_queue_num),
        E(SET_VRING_ENABLE, "SET_VRING_ENABLE", SZ_EXACT, 8, 0, 0, F_OWNER, h_set_vring_enable),
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
        E(GET_INFLIGHT_FD, "GET_INFLIGHT_FD", SZ_EXACT, 24, 0, 0, F_OWNER | F_REPLY,
          h_get_inflight_fd),
        E(SET_INFLIGHT_FD, "SET_INFLIGHT_FD", SZ_EXACT, 24, 1, 1, F_OWNER, h_set_inflight_fd),
        E(GPU_SET_SOCKET, "GPU_SET_SOCKET", SZ_EXACT, 0, 1, 1, 0, NULL),
        E(RESET_DEVICE, "RESET_DEVICE", SZ_EXACT, 0, 0, 0, 0, h_reset_device),
        E(VRING_KICK, "VRING_KICK", SZ_EXACT, 8, 0, 0, 0, NULL),
        E(GET_MAX_MEM_SLOTS, "GET_MAX_MEM_SLOTS", SZ_EXACT, 0, 0, 0, F_REPLY, h_get_max_mem_slots),
        E(ADD_MEM_REG, "ADD_MEM_REG", SZ_EXACT, 40, 1, 1, F_OWNER, h_add_mem_reg),
        /* QEMU may attach the region's fd to REM_MEM_REG; we do not need it (closed). */
        E(REM_MEM_REG, "REM_MEM_REG", SZ_EXACT, 40, 0, 1, F_OWNER, h_rem_mem_reg),
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
		return m->size >= VHOST_USER_CONFIG_HDR_SIZE &&
		       m->payload.config.size <= VHOST_USER_MAX_CONFIG_SIZE &&
		       m->size == VHOST_USER_CONFIG_HDR_SIZE + m->payload.config.size;
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
	if ((d->flags & F_OWNER) && !s->owner_set) {
		return "sent before SET_OWNER";
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
