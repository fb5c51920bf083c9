/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Control side of the test front-end: the message sequences QEMU 7.2 sends for a
 * vhost-user-blk-pci device (reference/vhost-user-qemu72.md §1.9): A at connect, B at start,
 * C at stop, E on a back-end restart; and the entry points that hand the other personalities
 * to fe_persona.c.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fe_internal.h"
#include "fe_msg.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_CHAIN  64

bool
fe_proto(const struct vh_fe *fe, unsigned int bit)
{
	return fe_has(fe->info.protocol, bit);
}

/*
 * Send a request that has no natural reply. With REPLY_ACK, `ack` (or opts.ack_all) sets
 * NEED_REPLY and the u64 answer must be 0: a non-zero ack is the back-end refusing (-EREMOTEIO).
 */
int
fe_msg(struct vh_fe *fe, uint32_t request, const void *payload, uint32_t size, const int *fds,
       unsigned int nfds, bool ack)
{
	uint32_t flags = VHOST_USER_VERSION;
	uint64_t r = 0;
	int rc;

	if ((ack || fe->opts.ack_all) && fe_proto(fe, VHOST_USER_PROTOCOL_F_REPLY_ACK)) {
		flags |= VHOST_USER_NEED_REPLY_MASK;
	}
	rc = vh_fe_call(fe, request, flags, payload, size, fds, nfds, &r, sizeof(r));
	if (rc < 0) {
		return rc;
	}
	if (!(flags & VHOST_USER_NEED_REPLY_MASK)) {
		return 0;
	}
	if (rc != sizeof(uint64_t)) {
		return -EPROTO;
	}
	return r ? -EREMOTEIO : 0;
}

/* A request whose reply is one u64 (GET_FEATURES, GET_QUEUE_NUM, ...). */
int
fe_get_u64(struct vh_fe *fe, uint32_t request, uint64_t *val)
{
	int rc;

	rc = vh_fe_call(fe, request, VHOST_USER_VERSION, NULL, 0, NULL, 0, val, sizeof(*val));
	if (rc < 0) {
		return rc;
	}
	return rc == sizeof(uint64_t) ? 0 : -EPROTO;
}

int
fe_set_u64(struct vh_fe *fe, uint32_t request, uint64_t val, bool ack)
{
	return fe_msg(fe, request, &val, sizeof(val), NULL, 0, ack);
}

int
fe_set_state(struct vh_fe *fe, uint32_t request, uint32_t index, uint32_t num)
{
	struct vhost_vring_state s = {index, num};

	return fe_msg(fe, request, &s, sizeof(s), NULL, 0, false);
}

int
fe_set_vring_fd(struct vh_fe *fe, uint32_t request, unsigned int q, int fd)
{
	uint64_t v = q;

	return fe_msg(fe, request, &v, sizeof(v), &fd, 1, false);
}

/* What each initiator uses when the caller leaves a field 0. */
static const struct {
	const char *name;
	unsigned int queue_size;
	uint64_t features;
	uint64_t protocol;
	uint32_t config_size;
} personality_defaults[VH_FE_NPERSONALITIES] = {
        [VH_FE_QEMU72] = {"qemu-7.2", 128, VH_FE_LINUX_FEATURES, VH_FE_PROTOCOL_FEATURES,
                          VH_BLK_CFG_QEMU72_SIZE},
        /* bdev_virtio_attach_controller's default vq_size; it always reads 256 bytes. */
        [VH_FE_SPDK2305] = {"spdk-23.05", 512, VH_FE_SPDK_FEATURES, VH_FE_SPDK_PROTOCOL_FEATURES,
                            VHOST_USER_MAX_CONFIG_SIZE},
        /* VIRTIO_USER_DEF_Q_SZ; no config reads at all. */
        [VH_FE_DPDK2211] = {"dpdk-22.11", 256, VH_FE_DPDK_FEATURES, VH_FE_DPDK_PROTOCOL_FEATURES,
                            VHOST_USER_MAX_CONFIG_SIZE},
};

const char *
vh_fe_personality_name(enum vh_fe_personality p)
{
	return (unsigned int)p < VH_FE_NPERSONALITIES ? personality_defaults[p].name : "?";
}

void
vh_fe_personality_ring_opts(enum vh_fe_personality p, struct vh_fe_ring_opts *ro)
{
	memset(ro, 0, sizeof(*ro));
	switch (p) {
	case VH_FE_SPDK2305:
		/*
		 * bdev_virtio_blk: one direct descriptor for the header, one per data iovec, one
		 * for the status; avail->idx and the kick decision after every I/O; used_event
		 * parked out of reach because it polls; rings laid out by vring_init.
		 */
		ro->layout_force = VH_FE_L_NO_MERGE;
		ro->layout_deny = VH_FE_L_INDIRECT | VH_FE_L_INLINE_HDR | VH_FE_L_INLINE_STATUS |
		                  VH_FE_L_RANDOM_SPLIT;
		ro->kick_per_request = true;
		ro->used_event_far = true;
		ro->legacy_layout = true;
		break;
	case VH_FE_DPDK2211:
		/* Its tx path: an indirect table per request when negotiated; kicks per burst. */
		ro->layout_force = VH_FE_L_INDIRECT | VH_FE_L_NO_MERGE;
		ro->layout_deny = VH_FE_L_INLINE_HDR | VH_FE_L_INLINE_STATUS | VH_FE_L_RANDOM_SPLIT;
		ro->legacy_layout = true;
		break;
	default:
		break;
	}
}

void
vh_fe_personality_mem_opts(enum vh_fe_personality p, struct vh_fe_mem_opts *mo)
{
	switch (p) {
	case VH_FE_SPDK2305:
		mo->gpa_is_va = true;
		mo->fd_per_region = true;
		break;
	case VH_FE_DPDK2211:
		mo->gpa_is_va = true;
		break;
	default:
		break;
	}
}

int
vh_fe_create(struct vh_fe **out, struct vh_fe_mem *mem, const struct vh_fe_opts *opts)
{
	struct vh_fe *fe;
	unsigned int i;
	int rc;

	fe = calloc(1, sizeof(*fe));
	if (!fe) {
		return -ENOMEM;
	}
	fe->opts = *opts;
	fe->mem = mem;
	fe->sock = -1;
	fe->backend_fd = -1;
	fe->inflight_fd = -1;
	fe->log_fd = -1;
	fe->next_sock = fe->next_backend = -1;
	if (!fe->opts.timeout_ms) {
		fe->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
	}
	rc = -EINVAL;
	/* The virtio-user initiators put virtual addresses in their tables and descriptors. */
	if ((unsigned int)fe->opts.personality >= VH_FE_NPERSONALITIES ||
	    (fe->opts.personality != VH_FE_QEMU72 &&
	     (fe->opts.inflight || mem->gpa_base != (uint64_t)(uintptr_t)mem->base))) {
		goto out_free;
	}
	if (fe->opts.ring) {
		fe->ring = *fe->opts.ring;
	} else {
		vh_fe_personality_ring_opts(fe->opts.personality, &fe->ring);
	}
	fe->opts.ring = NULL; /* the caller's memory: not kept */
	if (!fe->opts.num_queues) {
		fe->opts.num_queues = 1;
	}
	if (!fe->opts.queue_size) {
		fe->opts.queue_size = personality_defaults[fe->opts.personality].queue_size;
	}
	if (!fe->opts.driver_features) {
		fe->opts.driver_features = personality_defaults[fe->opts.personality].features;
	}
	fe->opts.protocol_features =
	        fe->opts.protocol_features
	                ? fe->opts.protocol_features &
	                          personality_defaults[fe->opts.personality].protocol
	                : personality_defaults[fe->opts.personality].protocol;
	if (fe->opts.inflight) {
		fe->opts.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
	}
	if (fe->opts.log) {
		fe->opts.protocol_features |= 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD;
	}
	if (!fe->opts.config_size) {
		fe->opts.config_size = personality_defaults[fe->opts.personality].config_size;
	}
	if (!fe->opts.max_chain) {
		fe->opts.max_chain = DEFAULT_MAX_CHAIN;
	}
	if (fe->opts.num_queues > 256 || fe->opts.queue_size > 32768 ||
	    (fe->opts.queue_size & (fe->opts.queue_size - 1)) ||
	    fe->opts.config_size > VHOST_USER_MAX_CONFIG_SIZE) {
		goto out_free;
	}
	fe->vqs = calloc(fe->opts.num_queues, sizeof(*fe->vqs));
	if (!fe->vqs) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < fe->opts.num_queues; i++) {
		rc = fe_vq_setup(fe, &fe->vqs[i], i);
		if (rc < 0) {
			goto out_vqs;
		}
	}
	*out = fe;
	return 0;

out_vqs:
	while (i--) {
		fe_vq_teardown(&fe->vqs[i]);
	}
	free(fe->vqs);
out_free:
	free(fe);
	return rc;
}

void
vh_fe_destroy(struct vh_fe *fe)
{
	unsigned int i;

	if (!fe) {
		return;
	}
	vh_fe_disconnect(fe);
	vh_fe_inflight_free(fe);
	fe_log_free(fe);
	if (fe->next_sock >= 0) {
		close(fe->next_sock);
	}
	if (fe->next_backend >= 0) {
		close(fe->next_backend);
	}
	for (i = 0; i < fe->opts.num_queues; i++) {
		fe_vq_teardown(&fe->vqs[i]);
	}
	free(fe->vqs);
	free(fe);
}

int
vh_fe_connect(struct vh_fe *fe, int timeout_ms)
{
	int fd;

	vh_fe_disconnect(fe);
	fd = fe_connect_path(fe->opts.path, timeout_ms ? timeout_ms : fe->opts.timeout_ms);
	if (fd < 0) {
		return fd;
	}
	fe->sock = fd;
	fe->mem_sent = false;
	return 0;
}

void
vh_fe_disconnect(struct vh_fe *fe)
{
	if (fe->sock >= 0) {
		close(fe->sock);
		fe->sock = -1;
	}
	if (fe->backend_fd >= 0) {
		close(fe->backend_fd);
		fe->backend_fd = -1;
	}
}

int
vh_fe_sock(const struct vh_fe *fe)
{
	return fe->sock;
}

int
vh_fe_backend_fd(const struct vh_fe *fe)
{
	return fe->backend_fd;
}

const struct vh_fe_info *
vh_fe_info(const struct vh_fe *fe)
{
	return &fe->info;
}

uint64_t
vh_fe_cfg_u64(const struct vh_fe *fe, unsigned int off)
{
	uint64_t v = 0;

	if (off + 8 <= sizeof(fe->info.config)) {
		memcpy(&v, fe->info.config + off, 8);
	}
	return le64toh(v);
}

uint32_t
vh_fe_cfg_u32(const struct vh_fe *fe, unsigned int off)
{
	uint32_t v = 0;

	if (off + 4 <= sizeof(fe->info.config)) {
		memcpy(&v, fe->info.config + off, 4);
	}
	return le32toh(v);
}

uint16_t
vh_fe_cfg_u16(const struct vh_fe *fe, unsigned int off)
{
	uint16_t v = 0;

	if (off + 2 <= sizeof(fe->info.config)) {
		memcpy(&v, fe->info.config + off, 2);
	}
	return le16toh(v);
}

int
vh_fe_get_config(struct vh_fe *fe, uint32_t size, void *buf, uint32_t cap)
{
	struct vhost_user_config c = {.offset = 0, .size = size, .flags = 0};
	struct vhost_user_config r;
	uint32_t len;
	int rc;

	if (size > VHOST_USER_MAX_CONFIG_SIZE) {
		return -EINVAL;
	}
	/* The virtio-user initiators check the protocol feature before they ask. */
	if (fe->opts.personality != VH_FE_QEMU72 && !fe_proto(fe, VHOST_USER_PROTOCOL_F_CONFIG)) {
		return -ENOTSUP;
	}
	len = VHOST_USER_CONFIG_HDR_SIZE + size;
	rc = vh_fe_call(fe, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, &c, len, NULL, 0, &r,
	                sizeof(r));
	if (rc < 0) {
		return rc;
	}
	/* The reply echoes our header; its size field says how much config follows. */
	if ((uint32_t)rc < VHOST_USER_CONFIG_HDR_SIZE ||
	    r.size > (uint32_t)rc - VHOST_USER_CONFIG_HDR_SIZE) {
		return -EPROTO;
	}
	/* SPDK compares the reply's size with the request it sent, byte for byte. */
	if (fe->opts.personality != VH_FE_QEMU72 && (uint32_t)rc != len) {
		return -EPROTO;
	}
	memcpy(buf, r.region, r.size < cap ? r.size : cap);
	return (int)r.size;
}

int
vh_fe_config_learned(struct vh_fe *fe, const void *cfg, uint32_t len)
{
	if (len > sizeof(fe->info.config)) {
		return -EINVAL;
	}
	memset(fe->info.config, 0, sizeof(fe->info.config));
	memcpy(fe->info.config, cfg, len);
	fe->info.config_size = len;
	return 0;
}

static int
open_backend_channel(struct vh_fe *fe)
{
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		return -errno;
	}
	/* QEMU 7.2 always asks for an ack here when it can [reference §1.2 id 21]. */
	rc = fe_msg(fe, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1, true);
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		return rc;
	}
	fe->backend_fd = sv[0];
	return 0;
}

static int
negotiate(struct vh_fe *fe)
{
	struct vh_fe_info *in = &fe->info;
	uint64_t want;
	int rc;

	rc = fe_get_u64(fe, VHOST_USER_GET_FEATURES, &in->backend_features);
	if (rc < 0) {
		return rc;
	}
	/* Neither device works without protocol features (bit 30): blk needs CONFIG, scsi MQ. */
	if (!fe_has(in->backend_features, VHOST_USER_F_PROTOCOL_FEATURES)) {
		return -ENOTSUP;
	}
	rc = fe_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &in->backend_protocol);
	if (rc < 0) {
		return rc;
	}
	in->protocol = 0;
	/* QEMU 7.2 masks CONFIG for vhost-user-scsi (the config space is its own). */
	want = fe->opts.protocol_features;
	if (fe->opts.scsi) {
		want &= ~(1ull << VHOST_USER_PROTOCOL_F_CONFIG);
	}
	rc = fe_set_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, in->backend_protocol & want, false);
	if (rc < 0) {
		return rc;
	}
	/* Only now may we use REPLY_ACK ourselves. */
	in->protocol = in->backend_protocol & want;
	if (!fe->opts.scsi && !fe_proto(fe, VHOST_USER_PROTOCOL_F_CONFIG)) {
		return -ENOTSUP;
	}
	in->queue_num = 1;
	if (fe_proto(fe, VHOST_USER_PROTOCOL_F_MQ)) {
		rc = fe_get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &in->queue_num);
		if (rc < 0) {
			return rc;
		}
	}
	if (in->queue_num < fe->opts.num_queues) {
		return -ENOTSUP;
	}
	if (fe_proto(fe, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		rc = fe_get_u64(fe, VHOST_USER_GET_MAX_MEM_SLOTS, &in->max_mem_slots);
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

static int
qemu_init(struct vh_fe *fe, bool get_config)
{
	struct vh_fe_info *in = &fe->info;
	uint64_t feat;
	unsigned int q;
	int rc;

	rc = negotiate(fe);
	if (rc < 0) {
		return rc;
	}
	if (fe_proto(fe, VHOST_USER_PROTOCOL_F_BACKEND_REQ)) {
		rc = open_backend_channel(fe);
		if (rc < 0) {
			return rc;
		}
	}
	rc = fe_msg(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, false);
	if (rc < 0) {
		return rc;
	}
	rc = fe_get_u64(fe, VHOST_USER_GET_FEATURES, &feat);
	if (rc < 0) {
		return rc;
	}
	if (feat != in->backend_features || !fe_has(feat, 32)) {
		return feat != in->backend_features ? -EPROTO : -ENOTSUP;
	}
	for (q = 0; q < fe->opts.num_queues; q++) {
		rc = fe_set_vring_fd(fe, VHOST_USER_SET_VRING_CALL, q, fe->vqs[q].call_fd);
		if (rc == 0) {
			rc = fe_set_vring_fd(fe, VHOST_USER_SET_VRING_ERR, q, fe->vqs[q].err_fd);
		}
		if (rc < 0) {
			return rc;
		}
	}
	if (!get_config) {
		return 0;
	}
	memset(in->config, 0, sizeof(in->config));
	rc = vh_fe_get_config(fe, fe->opts.config_size, in->config, sizeof(in->config));
	if (rc < 0) {
		return rc;
	}
	if ((uint32_t)rc != fe->opts.config_size) {
		return -EPROTO;
	}
	in->config_size = (uint32_t)rc;
	return 0;
}

int
vh_fe_init(struct vh_fe *fe, bool get_config)
{
	switch (fe->opts.personality) {
	case VH_FE_SPDK2305:
		return fe_spdk_init(fe, get_config);
	case VH_FE_DPDK2211:
		return fe_dpdk_init(fe);
	default:
		return qemu_init(fe, get_config);
	}
}

void
fe_wire_region(const struct vh_fe_mem *m, unsigned int i, struct vhost_user_memory_region *r)
{
	const struct vh_fe_region *g = &m->regions[i];

	r->guest_phys_addr = g->gpa;
	r->memory_size = g->size;
	r->userspace_addr = (uint64_t)(uintptr_t)vh_fe_gpa_to_ptr(m, g->gpa, g->size);
	r->mmap_offset = g->offset;
}

static int
mem_reg(struct vh_fe *fe, uint32_t request, unsigned int i)
{
	struct vhost_user_mem_reg mr = {0};

	fe_wire_region(fe->mem, i, &mr.region);
	/* ADD carries the region's fd; REM carries none [reference §1.2 id 37/38]. */
	if (request == VHOST_USER_ADD_MEM_REG) {
		return fe_msg(fe, request, &mr, sizeof(mr), &fe->mem->regions[i].fd, 1, true);
	}
	return fe_msg(fe, request, &mr, sizeof(mr), NULL, 0, true);
}

static bool
use_mem_slots(const struct vh_fe *fe)
{
	return fe_proto(fe, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) &&
	       !fe->opts.use_set_mem_table;
}

static int
qemu_set_mem_table(struct vh_fe *fe)
{
	struct vhost_user_memory m = {0};
	int fds[VHOST_MEMORY_BASELINE_NREGIONS];
	unsigned int i;

	for (i = 0; i < fe->mem->nregions; i++) {
		if (!fe->mem->regions[i].plugged) {
			continue;
		}
		if (m.nregions == VHOST_MEMORY_BASELINE_NREGIONS) {
			return -E2BIG;
		}
		fe_wire_region(fe->mem, i, &m.regions[m.nregions]);
		fds[m.nregions++] = fe->mem->regions[i].fd;
	}
	/* QEMU sends only the used part of the region array. */
	return fe_msg(fe, VHOST_USER_SET_MEM_TABLE, &m,
	              8 + m.nregions * (uint32_t)sizeof(struct vhost_user_memory_region), fds,
	              m.nregions, true);
}

static int
send_mem(struct vh_fe *fe)
{
	unsigned int i;
	int rc;

	if (!use_mem_slots(fe)) {
		return qemu_set_mem_table(fe);
	}
	for (i = 0; i < fe->mem->nregions; i++) {
		if (fe->mem->regions[i].plugged) {
			rc = mem_reg(fe, VHOST_USER_ADD_MEM_REG, i);
			if (rc < 0) {
				return rc;
			}
		}
	}
	return 0;
}

int
vh_fe_set_mem_table(struct vh_fe *fe)
{
	switch (fe->opts.personality) {
	case VH_FE_SPDK2305:
		/* "Memory map change with active virtio_user_devs not allowed." */
		return -ENOTSUP;
	case VH_FE_DPDK2211:
		return fe_dpdk_mem_event(fe);
	default:
		return qemu_set_mem_table(fe);
	}
}

/* Plug/unplug with a virtio-user personality: its whole table again, its way. */
static int
persona_mem_change(struct vh_fe *fe, unsigned int region, bool plugged)
{
	if (fe->opts.personality == VH_FE_SPDK2305) {
		return -ENOTSUP;
	}
	fe->mem->regions[region].plugged = plugged;
	return fe_dpdk_mem_event(fe);
}

int
vh_fe_mem_plug(struct vh_fe *fe, unsigned int region)
{
	if (region >= fe->mem->nregions) {
		return -EINVAL;
	}
	if (fe->opts.personality != VH_FE_QEMU72) {
		return persona_mem_change(fe, region, true);
	}
	fe->mem->regions[region].plugged = true;
	if (fe->sock < 0 || !fe->mem_sent) {
		return 0;
	}
	return use_mem_slots(fe) ? mem_reg(fe, VHOST_USER_ADD_MEM_REG, region)
	                         : qemu_set_mem_table(fe);
}

int
vh_fe_mem_unplug(struct vh_fe *fe, unsigned int region)
{
	if (region >= fe->mem->nregions) {
		return -EINVAL;
	}
	if (fe->opts.personality != VH_FE_QEMU72) {
		return persona_mem_change(fe, region, false);
	}
	fe->mem->regions[region].plugged = false;
	if (fe->sock < 0 || !fe->mem_sent) {
		return 0;
	}
	return use_mem_slots(fe) ? mem_reg(fe, VHOST_USER_REM_MEM_REG, region)
	                         : qemu_set_mem_table(fe);
}

int
fe_start_queue(struct vh_fe *fe, struct vh_fe_vq *vq, uint64_t log_guest_addr)
{
	struct vhost_vring_addr a = {
	        .index = vq->idx,
	        .flags = 0,
	        /* Ring addresses are in the front-end's address space, not GPAs [spec]. */
	        .desc_user_addr = (uint64_t)(uintptr_t)vq->desc,
	        .used_user_addr = (uint64_t)(uintptr_t)vq->used,
	        .avail_user_addr = (uint64_t)(uintptr_t)vq->avail,
	        .log_guest_addr = log_guest_addr,
	};
	int rc;

	rc = fe_set_state(fe, VHOST_USER_SET_VRING_NUM, vq->idx, vq->size);
	if (rc == 0) {
		rc = fe_set_state(fe, VHOST_USER_SET_VRING_BASE, vq->idx, vq->base);
	}
	if (rc == 0) {
		rc = fe_msg(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, false);
	}
	if (rc == 0) {
		rc = fe_set_vring_fd(fe, VHOST_USER_SET_VRING_KICK, vq->idx, vq->kick_fd);
	}
	if (rc == 0) {
		vq->started = true;
	}
	return rc;
}

static int
status_step(struct vh_fe *fe, bool set, uint64_t val)
{
	uint64_t cur;
	int rc;

	if (!fe_proto(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		return 0;
	}
	rc = fe_get_u64(fe, VHOST_USER_GET_STATUS, &cur);
	if (rc < 0 || !set) {
		return rc;
	}
	return fe_set_u64(fe, VHOST_USER_SET_STATUS, val, false);
}

int
vh_fe_inflight_fd(const struct vh_fe *fe)
{
	return fe->inflight_fd;
}

void *
vh_fe_inflight_map(const struct vh_fe *fe, uint64_t *size)
{
	if (size) {
		*size = fe->inflight_addr ? fe->inflight.mmap_size : 0;
	}
	return fe->inflight_addr;
}

void
vh_fe_inflight_free(struct vh_fe *fe)
{
	if (fe->inflight_addr) {
		munmap(fe->inflight_addr, fe->inflight.mmap_size);
		fe->inflight_addr = NULL;
	}
	if (fe->inflight_fd >= 0) {
		close(fe->inflight_fd);
		fe->inflight_fd = -1;
	}
	memset(&fe->inflight, 0, sizeof(fe->inflight));
}

/*
 * QEMU 7.2's vhost_dev_get_inflight(): GET_INFLIGHT_FD {mmap_size 0, offset 0, all queues,
 * queue-size}; the back-end answers with the geometry and the fd, which we map and keep.
 */
static int
get_inflight(struct vh_fe *fe)
{
	struct vhost_user_inflight req = {
	        .num_queues = (uint16_t)fe->opts.num_queues,
	        .queue_size = (uint16_t)fe->opts.queue_size,
	};
	struct vhost_user_header hdr;
	union vhost_user_payload rep;
	void *addr;
	int rc, fd = -1;

	rc = fe_send(fe->sock, VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION, sizeof(req), &req,
	             sizeof(req), NULL, 0);
	if (rc < 0) {
		return rc;
	}
	rc = fe_recv_fd(fe->sock, &hdr, &rep, sizeof(rep), fe->opts.timeout_ms, &fd);
	if (rc < 0) {
		return rc;
	}
	if (hdr.request != VHOST_USER_GET_INFLIGHT_FD ||
	    (hdr.flags & (VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK)) !=
	            (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK) ||
	    rc != (int)sizeof(struct vhost_user_inflight) || fd < 0) {
		rc = -EPROTO;
		goto fail;
	}
	/* QEMU: a zero mmap_size means the back-end does not track; nothing to keep. */
	if (rep.inflight.mmap_size == 0) {
		close(fd);
		return 0;
	}
	addr = mmap(NULL, rep.inflight.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	            (off_t)rep.inflight.mmap_offset);
	if (addr == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	fe->inflight_fd = fd;
	fe->inflight_addr = addr;
	fe->inflight = rep.inflight;
	return 0;

fail:
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}

/* QEMU 7.2's vhost_dev_set_inflight(): every start, same fd, no reply asked. */
static int
set_inflight(struct vh_fe *fe)
{
	struct vhost_user_inflight w = fe->inflight;

	if (fe->inflight_fd < 0) {
		return 0;
	}
	w.num_queues = (uint16_t)fe->opts.num_queues;
	w.queue_size = (uint16_t)fe->opts.queue_size;
	return fe_msg(fe, VHOST_USER_SET_INFLIGHT_FD, &w, sizeof(w), &fe->inflight_fd, 1, false);
}

static int
send_calls(struct vh_fe *fe)
{
	unsigned int q;
	int rc;

	for (q = 0; q < fe->opts.num_queues; q++) {
		rc = fe_set_vring_fd(fe, VHOST_USER_SET_VRING_CALL, q, fe->vqs[q].call_fd);
		if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

static int
qemu_start(struct vh_fe *fe, uint64_t features, unsigned int nqueues)
{
	uint64_t acked;
	unsigned int q;
	int rc;

	if (!features) {
		features = fe->opts.driver_features;
	}
	if (!nqueues || nqueues > fe->opts.num_queues) {
		nqueues = fe->opts.num_queues;
	}
	/* QEMU forwards only what the back-end offers and keeps bit 30 set. */
	acked = (features & fe->info.backend_features) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	fe->info.features = acked;
	rc = fe_set_u64(fe, VHOST_USER_SET_FEATURES, acked, false);
	if (rc == 0) {
		rc = status_step(fe, true, VH_VIRTIO_S_FEATURES_OK);
	}
	/* [reference §1.9 B]: GET_INFLIGHT_FD only while we hold no buffer, SET every start. */
	if (rc == 0 && fe_proto(fe, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)) {
		if (fe->inflight_fd < 0) {
			rc = get_inflight(fe);
		}
		if (rc == 0) {
			rc = set_inflight(fe);
		}
	}
	if (rc == 0) {
		rc = send_calls(fe);
	}
	if (rc == 0) {
		rc = fe_set_u64(fe, VHOST_USER_SET_FEATURES, acked, false);
	}
	if (rc == 0) {
		rc = status_step(fe, false, 0);
	}
	if (rc == 0 && !fe->mem_sent) {
		rc = send_mem(fe);
		fe->mem_sent = rc == 0;
	}
	for (q = 0; rc == 0 && q < nqueues; q++) {
		fe_vq_prepare(&fe->vqs[q], acked);
		rc = fe_start_queue(fe, &fe->vqs[q], fe->vqs[q].used_gpa);
	}
	/* Enable goes to every queue, also those never configured [reference §1.9]. */
	for (q = 0; rc == 0 && q < fe->opts.num_queues; q++) {
		rc = fe_set_state(fe, VHOST_USER_SET_VRING_ENABLE, q, 1);
	}
	if (rc == 0) {
		rc = status_step(fe, true, 0xf);
	}
	if (rc == 0) {
		fe->running = true;
		fe->nstarted = nqueues;
	}
	return rc;
}

int
vh_fe_start(struct vh_fe *fe, uint64_t features, unsigned int nqueues)
{
	switch (fe->opts.personality) {
	case VH_FE_SPDK2305:
		return fe_spdk_start(fe, features, nqueues);
	case VH_FE_DPDK2211:
		return fe_dpdk_start(fe, features, nqueues);
	default:
		return qemu_start(fe, features, nqueues);
	}
}

int
fe_get_vring_base(struct vh_fe *fe, struct vh_fe_vq *vq)
{
	struct vhost_vring_state s = {vq->idx, 0};
	int rc;

	rc = vh_fe_call(fe, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &s, sizeof(s), NULL, 0,
	                &s, sizeof(s));
	if (rc >= 0) {
		rc = rc == sizeof(s) && s.index == vq->idx ? 0 : -EPROTO;
	}
	if (rc == 0) {
		vq->base = s.num;
		vq->started = false;
	}
	return rc;
}

static int
qemu_stop(struct vh_fe *fe)
{
	unsigned int q;
	int rc = 0;

	if (fe_proto(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		rc = fe_set_u64(fe, VHOST_USER_SET_STATUS, 0, false);
	}
	for (q = 0; rc == 0 && q < fe->opts.num_queues; q++) {
		rc = fe_set_state(fe, VHOST_USER_SET_VRING_ENABLE, q, 0);
	}
	for (q = 0; rc == 0 && q < fe->opts.num_queues; q++) {
		if (fe->vqs[q].started) {
			rc = fe_get_vring_base(fe, &fe->vqs[q]);
		}
	}
	if (rc == 0) {
		fe->running = false;
	}
	return rc;
}

int
vh_fe_stop(struct vh_fe *fe)
{
	switch (fe->opts.personality) {
	case VH_FE_SPDK2305:
		return fe_spdk_stop(fe);
	case VH_FE_DPDK2211:
		return fe_dpdk_stop(fe);
	default:
		return qemu_stop(fe);
	}
}

int
vh_fe_reset_rings(struct vh_fe *fe)
{
	unsigned int q;

	for (q = 0; q < fe->opts.num_queues; q++) {
		if (fe->vqs[q].ninflight) {
			return -EBUSY;
		}
	}
	for (q = 0; q < fe->opts.num_queues; q++) {
		fe_vq_reset(&fe->vqs[q]);
	}
	/* QEMU's vhost_user_blk_reset() frees the buffer: the next start gets a fresh one. */
	vh_fe_inflight_free(fe);
	return 0;
}

static int
qemu_reconnect(struct vh_fe *fe, int timeout_ms, bool handshake)
{
	bool was_running = fe->running, restore[256] = {false};
	unsigned int q;
	int rc;

	vh_fe_disconnect(fe);
	for (q = 0; q < fe->opts.num_queues; q++) {
		restore[q] = fe->vqs[q].started;
		fe->vqs[q].started = false;
	}
	fe->running = false;
	rc = vh_fe_connect(fe, timeout_ms);
	if (rc == 0 && handshake) {
		rc = vh_fe_init(fe, false);
	}
	/*
	 * QEMU 7.2 cannot ask a dead back-end for its ring bases, so it restarts every queue at
	 * used->idx: whatever was available but not used gets processed again. We read used->idx
	 * only once the new session answers: a back-end that is alive (it closed, or we did) may
	 * still complete the old session's requests until it accepts the next front-end. A packed
	 * ring has no index in memory: QEMU keeps the base of its previous start
	 * (virtio_queue_packed_restore_last_avail_idx() does nothing), and so do we.
	 */
	for (q = 0; q < fe->opts.num_queues; q++) {
		if (restore[q] && !fe->vqs[q].packed) {
			fe->vqs[q].base =
			        le16toh(__atomic_load_n(&fe->vqs[q].used->idx, __ATOMIC_ACQUIRE));
		}
	}
	if (rc == 0 && was_running) {
		rc = vh_fe_start(fe, fe->info.features, fe->nstarted);
	}
	return rc;
}

int
vh_fe_reconnect(struct vh_fe *fe, int timeout_ms)
{
	if (fe->opts.personality != VH_FE_QEMU72) {
		return fe_persona_reconnect(fe, timeout_ms);
	}
	return qemu_reconnect(fe, timeout_ms, true);
}

int
vh_fe_reconnect_raced(struct vh_fe *fe, int timeout_ms)
{
	if (fe->opts.personality != VH_FE_QEMU72) {
		return -EINVAL;
	}
	return qemu_reconnect(fe, timeout_ms, false);
}

int
vh_fe_backend_handle(struct vh_fe *fe, int timeout_ms)
{
	struct vhost_user_header hdr;
	union vhost_user_payload p;
	uint64_t ack = 0;
	int rc;

	if (fe->backend_fd < 0) {
		return -ENOTCONN;
	}
	rc = fe_recv(fe->backend_fd, &hdr, &p, sizeof(p), timeout_ms);
	if (rc < 0) {
		return rc;
	}
	if (hdr.flags & VHOST_USER_NEED_REPLY_MASK) {
		rc = fe_send(fe->backend_fd, hdr.request,
		             VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, sizeof(ack), &ack,
		             sizeof(ack), NULL, 0);
		if (rc < 0) {
			return rc;
		}
	}
	return (int)hdr.request;
}
