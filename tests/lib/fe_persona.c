/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-user initiators the test front-end can play besides QEMU 7.2 (frontend.h, enum
 * vh_fe_personality): SPDK v23.05's bdev_virtio_blk and DPDK 22.11's virtio-user PMD. Written
 * from their message sequences as read in their sources (lib/virtio/virtio_vhost_user.c,
 * lib/virtio/virtio.c, module/bdev/virtio/bdev_virtio_blk.c in SPDK;
 * drivers/net/virtio/virtio_user/vhost_user.c and virtio_user_dev.c in DPDK): the order,
 * payloads and flags of each message, their memory tables, and what they give up on.
 *
 * Both have no reconnect of their own: a new connection is a new device with zeroed rings.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "fe_internal.h"
#include "fe_msg.h"

#define S_FEATURES_OK 0x08u
#define S_DRIVER_OK   0x04u

static bool
acked(const struct vh_fe *fe, unsigned int bit)
{
	return fe_has(fe->info.features, bit);
}

/* Both zero a queue's ring when they (re)create it: nothing may be in flight then. */
static int
fresh_rings(struct vh_fe *fe, unsigned int nq)
{
	unsigned int q;

	for (q = 0; q < nq; q++) {
		if (fe->vqs[q].ninflight) {
			return -EBUSY;
		}
	}
	for (q = 0; q < nq; q++) {
		fe_vq_reset(&fe->vqs[q]);
	}
	return 0;
}

static unsigned int
queues_to_start(const struct vh_fe *fe, unsigned int nqueues)
{
	return nqueues && nqueues <= fe->opts.num_queues ? nqueues : fe->opts.num_queues;
}

static int
send_table(struct vh_fe *fe, struct vhost_user_memory *m, const int *fds, bool ack)
{
	return fe_msg(fe, VHOST_USER_SET_MEM_TABLE, m,
	              8 + m->nregions * (uint32_t)sizeof(struct vhost_user_memory_region), fds,
	              m->nregions, ack);
}

/* ---------------------------------------------------------------------------------------- */
/* SPDK v23.05                                                                               */
/* ---------------------------------------------------------------------------------------- */

/*
 * SPDK's table comes from /proc/self/maps: one region per hugepage file mapping, a mapping
 * merged with the previous one when it is the same file and virtually adjacent; GPA and
 * userspace address are both the virtual address and mmap_offset is always 0.
 */
static int
spdk_table(const struct vh_fe_mem *mem, struct vhost_user_memory *m, int *fds)
{
	struct vhost_user_memory_region *last = NULL;
	unsigned int i;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < mem->nregions; i++) {
		struct vhost_user_memory_region w;

		if (!mem->regions[i].plugged) {
			continue;
		}
		fe_wire_region(mem, i, &w);
		if (last && fds[m->nregions - 1] == mem->regions[i].fd &&
		    last->userspace_addr + last->memory_size == w.userspace_addr) {
			last->memory_size += w.memory_size;
			continue;
		}
		if (m->nregions == VHOST_MEMORY_BASELINE_NREGIONS) {
			return -E2BIG; /* "Exceed maximum of 8" */
		}
		w.guest_phys_addr = w.userspace_addr;
		w.mmap_offset = 0;
		last = &m->regions[m->nregions];
		*last = w;
		fds[m->nregions++] = mem->regions[i].fd;
	}
	return 0;
}

/*
 * Its memory map notifies once per virtually contiguous range of registered memory, and each
 * notification re-sends the whole table, then GET_FEATURES: a message that always has a reply,
 * so that the table is known to be in use without relying on REPLY_ACK.
 */
static int
spdk_mem_notify(struct vh_fe *fe)
{
	struct vhost_user_memory m;
	int fds[VHOST_MEMORY_BASELINE_NREGIONS];
	unsigned int i, ranges = 0;
	const uint8_t *end = NULL;
	uint64_t feat;
	int rc;

	for (i = 0; i < fe->mem->nregions; i++) {
		const struct vh_fe_region *r = &fe->mem->regions[i];
		const uint8_t *p = vh_fe_gpa_to_ptr(fe->mem, r->gpa, r->size);

		if (r->plugged) {
			ranges += p != end;
			end = p + r->size;
		}
	}
	rc = spdk_table(fe->mem, &m, fds);
	for (i = 0; rc == 0 && i < ranges; i++) {
		rc = send_table(fe, &m, fds, false);
		if (rc == 0) {
			rc = fe_get_u64(fe, VHOST_USER_GET_FEATURES, &feat);
		}
	}
	return rc;
}

/* One GET_CONFIG(0, 256) per field: it reads the whole window and keeps the field. */
static int
spdk_read_field(struct vh_fe *fe)
{
	struct vh_fe_info *in = &fe->info;
	int rc;

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

/* virtio_blk_dev_init(): the reads, in its order, and what makes it refuse the device. */
static int
spdk_read_config(struct vh_fe *fe)
{
	uint32_t bs = 512;
	uint64_t cap;
	int rc;

	if (acked(fe, VIRTIO_BLK_F_BLK_SIZE)) {
		rc = spdk_read_field(fe);
		if (rc < 0) {
			return rc;
		}
		bs = vh_fe_cfg_u32(fe, VH_BLK_CFG_BLK_SIZE);
		if (bs == 0 || bs % 512) {
			return -EPROTO;
		}
	}
	rc = spdk_read_field(fe);
	if (rc < 0) {
		return rc;
	}
	cap = vh_fe_cfg_u64(fe, VH_BLK_CFG_CAPACITY);
	if (cap * 512 / bs == 0) {
		return -EPROTO;
	}
	if (acked(fe, VIRTIO_BLK_F_MQ)) {
		rc = spdk_read_field(fe);
		if (rc < 0) {
			return rc;
		}
		/* It would use fewer queues; we were asked for num_queues. */
		if (vh_fe_cfg_u16(fe, VH_BLK_CFG_NUM_QUEUES) < fe->opts.num_queues) {
			return -ENOTSUP;
		}
	} else if (fe->opts.num_queues > 1) {
		return -ENOTSUP;
	}
	if (acked(fe, VIRTIO_BLK_F_SIZE_MAX)) {
		rc = spdk_read_field(fe);
		if (rc < 0) {
			return rc;
		}
	}
	if (acked(fe, VIRTIO_BLK_F_SEG_MAX)) {
		rc = spdk_read_field(fe);
		if (rc < 0) {
			return rc;
		}
		if (vh_fe_cfg_u32(fe, VH_BLK_CFG_SEG_MAX) == 0) {
			return -EPROTO; /* "virtio blk SEG_MAX can't be 0" */
		}
	}
	return 0;
}

/* virtio_user_dev_init() + virtio_dev_reset() (+ the config reads of virtio_blk_dev_init()). */
int
fe_spdk_init(struct vh_fe *fe, bool get_config)
{
	struct vh_fe_info *in = &fe->info;
	uint64_t feat;
	int rc;

	in->protocol = 0;
	in->queue_num = 0;
	in->max_mem_slots = 0;
	rc = fe_msg(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, false);
	if (rc == 0) {
		rc = fe_get_u64(fe, VHOST_USER_GET_FEATURES, &in->backend_features);
	}
	if (rc < 0) {
		return rc;
	}
	/* virtio_dev_reset() always adds VERSION_1 to what it asks for. */
	feat = (fe->opts.driver_features | (1ull << 32)) & in->backend_features;
	rc = fe_set_u64(fe, VHOST_USER_SET_FEATURES, feat, false);
	if (rc < 0) {
		return rc;
	}
	in->features = feat;
	if (!fe_has(feat, 32)) {
		return -ENOTSUP;
	}
	if (fe_has(feat, VHOST_USER_F_PROTOCOL_FEATURES)) {
		rc = fe_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &in->backend_protocol);
		if (rc < 0) {
			return rc;
		}
		in->protocol = in->backend_protocol & fe->opts.protocol_features;
		rc = fe_set_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, in->protocol, false);
		if (rc < 0) {
			return rc;
		}
	}
	return get_config ? spdk_read_config(fe) : 0;
}

/* virtio_dev_start(): virtio_alloc_queues() then DRIVER_OK (virtio_user_start_device()). */
int
fe_spdk_start(struct vh_fe *fe, uint64_t features, unsigned int nqueues)
{
	struct vh_fe_info *in = &fe->info;
	unsigned int q, nq = queues_to_start(fe, nqueues);
	int rc;

	if (fe->running) {
		return -EBUSY;
	}
	if (features && features != in->features) {
		return -EINVAL; /* acked once, at init */
	}
	rc = fresh_rings(fe, nq);
	/* virtio_user_setup_queue(): enable (num = queue size) before the ring even exists. */
	for (q = 0; rc == 0 && q < nq; q++) {
		if (acked(fe, VHOST_USER_F_PROTOCOL_FEATURES)) {
			rc = fe_set_state(fe, VHOST_USER_SET_VRING_ENABLE, q, fe->vqs[q].size);
		}
		fe_vq_prepare(&fe->vqs[q], in->features);
	}
	/* Asked whether or not PROTOCOL_F_MQ was negotiated. */
	if (rc == 0) {
		rc = fe_get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &in->queue_num);
	}
	if (rc == 0 &&
	    ((!fe_proto(fe, VHOST_USER_PROTOCOL_F_MQ) && nq > 1) || nq > in->queue_num)) {
		rc = -ENOTSUP; /* it would quietly use fewer queues */
	}
	for (q = 0; rc == 0 && q < nq; q++) {
		rc = fe_set_vring_fd(fe, VHOST_USER_SET_VRING_CALL, q, fe->vqs[q].call_fd);
	}
	if (rc == 0) {
		rc = spdk_mem_notify(fe);
	}
	for (q = 0; rc == 0 && q < nq; q++) {
		rc = fe_start_queue(fe, &fe->vqs[q], 0);
	}
	if (rc == 0) {
		fe->running = true;
		fe->nstarted = nq;
		fe->mem_sent = true;
	}
	return rc;
}

/*
 * bdev_virtio_detach_controller: virtio_dev_stop() (GET_VRING_BASE per queue, giving up at the
 * first failure, then the memory map's unregistration, which sends the table again), then
 * virtio_dev_destruct() closes the socket.
 */
int
fe_spdk_stop(struct vh_fe *fe)
{
	unsigned int q;
	int rc = 0, r;

	if (fe->running) {
		for (q = 0; q < fe->nstarted; q++) {
			rc = fe_get_vring_base(fe, &fe->vqs[q]);
			if (rc < 0) {
				break;
			}
		}
		/* "A queue might fail to stop ... mustn't prevent us from freeing the mem map." */
		r = spdk_mem_notify(fe);
		if (rc == 0) {
			rc = r;
		}
	}
	vh_fe_disconnect(fe);
	for (q = 0; q < fe->opts.num_queues; q++) {
		fe->vqs[q].started = false;
	}
	fe->running = false;
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* DPDK 22.11                                                                                */
/* ---------------------------------------------------------------------------------------- */

/*
 * update_memory_region(): memsegs walked in address order; all memsegs of one fd become one
 * region from the lowest to the highest address, mmap_offset the lowest file offset.
 */
static int
dpdk_table(const struct vh_fe_mem *mem, struct vhost_user_memory *m, int *fds)
{
	unsigned int i, j;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < mem->nregions; i++) {
		const struct vh_fe_region *g = &mem->regions[i];
		struct vhost_user_memory_region w;

		if (!g->plugged) {
			continue;
		}
		fe_wire_region(mem, i, &w);
		for (j = 0; j < m->nregions && fds[j] != g->fd; j++) {
		}
		if (j < m->nregions) {
			struct vhost_user_memory_region *r = &m->regions[j];
			uint64_t end = w.userspace_addr + w.memory_size;

			if (r->userspace_addr + r->memory_size < end) {
				r->memory_size = end - r->userspace_addr;
			}
			if (r->userspace_addr > w.userspace_addr) {
				r->memory_size += r->userspace_addr - w.userspace_addr;
				r->userspace_addr = r->guest_phys_addr = w.userspace_addr;
			}
			if (r->mmap_offset > w.mmap_offset) {
				r->mmap_offset = w.mmap_offset;
			}
			continue;
		}
		if (m->nregions == VHOST_MEMORY_BASELINE_NREGIONS) {
			return -E2BIG; /* "Too many memory regions" */
		}
		w.guest_phys_addr = w.userspace_addr;
		m->regions[m->nregions] = w;
		fds[m->nregions++] = g->fd;
	}
	return 0;
}

static int
dpdk_set_mem_table(struct vh_fe *fe)
{
	struct vhost_user_memory m;
	int fds[VHOST_MEMORY_BASELINE_NREGIONS];
	int rc;

	rc = dpdk_table(fe->mem, &m, fds);
	/* NEED_REPLY whenever REPLY_ACK was negotiated (fe_msg() checks that). */
	return rc < 0 ? rc : send_table(fe, &m, fds, true);
}

/* Its queues come in rx/tx pairs: rx (even indexes) are set up first, then tx (odd). */
static unsigned int
dpdk_queue(unsigned int i, unsigned int nq)
{
	unsigned int neven = (nq + 1) / 2;

	return i < neven ? 2 * i : 2 * (i - neven) + 1;
}

/* enable_qp(): both queues of the pair (only those the device has, for a block device). */
static int
dpdk_enable_pair(struct vh_fe *fe, unsigned int pair, unsigned int nq, uint32_t on)
{
	unsigned int q;
	int rc = 0;

	for (q = 2 * pair; rc == 0 && q < 2 * pair + 2 && q < nq; q++) {
		rc = fe_set_state(fe, VHOST_USER_SET_VRING_ENABLE, q, on);
	}
	return rc;
}

/* virtio_user_dev_init(): connect, SET_OWNER, GET_FEATURES, protocol features. */
int
fe_dpdk_init(struct vh_fe *fe)
{
	struct vh_fe_info *in = &fe->info;
	int rc;

	in->protocol = 0;
	in->queue_num = 0;
	in->max_mem_slots = 0;
	rc = fe_msg(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, false);
	if (rc == 0) {
		rc = fe_get_u64(fe, VHOST_USER_GET_FEATURES, &in->backend_features);
	}
	if (rc < 0 || !fe_has(in->backend_features, VHOST_USER_F_PROTOCOL_FEATURES)) {
		return rc;
	}
	rc = fe_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &in->backend_protocol);
	if (rc < 0) {
		return rc;
	}
	in->protocol = in->backend_protocol & fe->opts.protocol_features;
	return fe_set_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, in->protocol, false);
}

/* virtio_user_set_status(): it keeps its own status and asks the device only with STATUS. */
static int
dpdk_status(struct vh_fe *fe, uint64_t *st)
{
	return fe_proto(fe, VHOST_USER_PROTOCOL_F_STATUS)
	               ? fe_get_u64(fe, VHOST_USER_GET_STATUS, st)
	               : 0;
}

/*
 * virtio_init_device(): FEATURES_OK (virtio_user_dev_set_features(): calls, then features),
 * DRIVER_OK (virtio_user_start_device(): table, rings, first pair enabled), then the port start
 * enables the other pairs through its control queue.
 */
int
fe_dpdk_start(struct vh_fe *fe, uint64_t features, unsigned int nqueues)
{
	struct vh_fe_info *in = &fe->info;
	unsigned int i, nq = queues_to_start(fe, nqueues);
	uint64_t st = 0x03, wire; /* ACKNOWLEDGE | DRIVER, as cached before FEATURES_OK */
	int rc;

	if (fe->running) {
		return -EBUSY;
	}
	if (!features) {
		features = fe->opts.driver_features;
	}
	/* Bit 30 comes from what the device offers, not from the driver's set. */
	wire = (features & in->backend_features) |
	       (in->backend_features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	in->features = wire;
	rc = fresh_rings(fe, nq);
	for (i = 0; rc == 0 && i < nq; i++) {
		unsigned int q = dpdk_queue(i, nq);

		rc = fe_set_vring_fd(fe, VHOST_USER_SET_VRING_CALL, q, fe->vqs[q].call_fd);
	}
	if (rc == 0) {
		rc = fe_set_u64(fe, VHOST_USER_SET_FEATURES, wire, false);
	}
	if (rc == 0 && fe_proto(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		st |= S_FEATURES_OK;
		rc = fe_set_u64(fe, VHOST_USER_SET_STATUS, st, true);
		if (rc == 0) {
			rc = dpdk_status(fe, &st);
		}
		if (rc == 0 && !(st & S_FEATURES_OK)) {
			rc = -EREMOTEIO; /* "Failed to set FEATURES_OK status!" */
		}
		/* virtio_set_status(DRIVER_OK) reads the status first and ORs DRIVER_OK in. */
		if (rc == 0) {
			rc = dpdk_status(fe, &st);
		}
	}
	if (rc == 0) {
		rc = dpdk_set_mem_table(fe);
	}
	for (i = 0; rc == 0 && i < nq; i++) {
		struct vh_fe_vq *vq = &fe->vqs[dpdk_queue(i, nq)];

		fe_vq_prepare(vq, wire);
		rc = fe_start_queue(fe, vq, 0);
	}
	if (rc == 0) {
		rc = dpdk_enable_pair(fe, 0, nq, 1);
	}
	if (rc == 0 && fe_proto(fe, VHOST_USER_PROTOCOL_F_STATUS)) {
		rc = fe_set_u64(fe, VHOST_USER_SET_STATUS, st | S_DRIVER_OK, true);
	}
	for (i = 1; rc == 0 && 2 * i < nq; i++) {
		rc = dpdk_enable_pair(fe, i, nq, 1);
	}
	if (rc == 0) {
		fe->running = true;
		fe->nstarted = nq;
		fe->mem_sent = true;
	}
	return rc;
}

/*
 * virtio_user_stop_device() (device reset): disable every enabled pair, then GET_VRING_BASE for
 * every queue, giving up at the first failure. Its cached status is already 0 by then, so no
 * SET_STATUS(0) is sent.
 */
int
fe_dpdk_stop(struct vh_fe *fe)
{
	unsigned int i, nq = fe->nstarted;
	int rc = 0;

	if (!fe->running) {
		return 0;
	}
	for (i = 0; rc == 0 && 2 * i < nq; i++) {
		rc = dpdk_enable_pair(fe, i, nq, 0);
	}
	for (i = 0; rc == 0 && i < nq; i++) {
		rc = fe_get_vring_base(fe, &fe->vqs[i]);
	}
	if (rc == 0) {
		fe->running = false;
	}
	return rc;
}

/* virtio_user_mem_event_cb(): pause the active pairs around the new table. */
int
fe_dpdk_mem_event(struct vh_fe *fe)
{
	unsigned int i, nq = fe->nstarted;
	int rc = 0;

	if (!fe->running) {
		return 0; /* the next start sends the table */
	}
	for (i = 0; rc == 0 && 2 * i < nq; i++) {
		rc = dpdk_enable_pair(fe, i, nq, 0);
	}
	if (rc == 0) {
		rc = dpdk_set_mem_table(fe);
	}
	for (i = 0; rc == 0 && 2 * i < nq; i++) {
		rc = dpdk_enable_pair(fe, i, nq, 1);
	}
	return rc;
}

/* ---------------------------------------------------------------------------------------- */

int
fe_persona_reconnect(struct vh_fe *fe, int timeout_ms)
{
	bool was_running = fe->running;
	unsigned int q, n = fe->nstarted;
	uint64_t f = fe->opts.personality == VH_FE_DPDK2211 ? fe->info.features : 0;
	int rc;

	for (q = 0; q < fe->opts.num_queues; q++) {
		if (fe->vqs[q].ninflight) {
			return -EBUSY;
		}
	}
	/* Detach / close the port as it would; the back-end may be gone, so errors do not count. */
	if (was_running && fe->sock >= 0) {
		(void)vh_fe_stop(fe);
	}
	vh_fe_disconnect(fe);
	for (q = 0; q < fe->opts.num_queues; q++) {
		fe->vqs[q].started = false;
	}
	fe->running = false;
	rc = vh_fe_connect(fe, timeout_ms);
	if (rc == 0) {
		rc = vh_fe_init(fe, true);
	}
	if (rc == 0 && was_running) {
		rc = vh_fe_start(fe, f, n);
	}
	return rc;
}
