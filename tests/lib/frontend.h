/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A vhost-user-blk *front-end* for tests and benchmarks: it plays QEMU 7.2 (the control
 * messages, in QEMU's order) and the guest's virtio-blk driver (split rings in shared "guest
 * RAM", request chains, kicks and interrupts), so a back-end can be driven without a VM.
 * Other initiators can be played too (vh_fe_opts.personality): SPDK v23.05's and DPDK
 * 22.11's virtio-user, with their message orders, memory tables and ring habits.
 *
 * Objects:
 * - struct vh_fe_mem: guest RAM (memfd or hugetlbfs file) mapped once, contiguously, in this
 *   process and described to the back-end as one or more regions. Guest-physical address (GPA)
 *   == offset in the file, and the region table's userspace_addr == our mapping of it (QEMU's
 *   "QEMU virtual address" space); the virtio-user personalities use GPA == our address and
 *   may have a file per region. Buffers come from a per-region bump allocator or a slab.
 * - struct vh_fe: one vhost-user connection (one device), with its virtqueues.
 * - struct vh_fe_vq: one virtqueue of the device (driver side): split, or packed when the start
 *   negotiated VIRTIO_F_RING_PACKED (put it in the driver features; the back-end must offer it).
 * - struct vh_fe_req: one virtio-blk request, owned and preallocated by the caller (embed it in
 *   your own per-I/O context): the library never allocates per I/O.
 *
 * Rules:
 * - Nothing here is thread-safe. One thread drives a struct vh_fe and its control messages.
 *   Different virtqueues may be driven from different threads only between vh_fe_start() and
 *   vh_fe_stop() and only through the vh_fe_vq_* / vh_fe_req_* functions (each vq touches only
 *   its own state); control calls must not run concurrently with them.
 * - Every blocking call is bounded by the connection's timeout (opts.timeout_ms): a silent peer
 *   gives -ETIMEDOUT, a closed one -ECONNRESET. Nothing aborts on peer input.
 * - Functions return 0 (or a count) on success, -errno on failure: -EREMOTEIO when the back-end
 *   refused a request (REPLY_ACK answer != 0), -EPROTO for a malformed reply. A failed control call
 * leaves the connection usable for raw messages (so tests can inspect what happened).
 * - The library keeps no global state; everything hangs off the objects above.
 */
#ifndef VH_TESTS_FRONTEND_H
#define VH_TESTS_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "vu_wire.h"

/* ---------------------------------------------------------------------------------------- */
/* Guest RAM                                                                                 */
/* ---------------------------------------------------------------------------------------- */

#define VH_FE_MAX_REGIONS 8

/* Layouts for vh_fe_mem_opts.layout. */
enum vh_fe_mem_layout {
	/* size split in nregions equal regions with adjacent GPAs (a buffer can straddle). */
	VH_FE_MEM_SPLIT = 0,
	/*
	 * QEMU pc machine: gpa 0..0xa0000 and 0xc0000..size, both from the same fd (the legacy
	 * VGA hole is in no region). nregions is ignored.
	 */
	VH_FE_MEM_QEMU_PC,
};

struct vh_fe_mem_opts {
	uint64_t size;         /* bytes of guest RAM (rounded up to the page size) */
	unsigned int nregions; /* VH_FE_MEM_SPLIT: 1..VH_FE_MAX_REGIONS-1, 0 means 1 */
	enum vh_fe_mem_layout layout;
	/*
	 * Extra region appended after the others, not announced at start ("unplugged"): for
	 * memory hotplug tests (vh_fe_mem_plug()). 0 = none.
	 */
	uint64_t hotplug_size;
	/* Directory on a hugetlbfs mount: use a file there instead of a memfd. NULL = memfd. */
	const char *hugetlbfs_dir;
	/*
	 * GPA == our virtual address, as SPDK's and DPDK's virtio-user send it (guest_phys_addr
	 * == userspace_addr == where the front-end mapped the hugepages; descriptors carry those
	 * addresses). Default: GPA == offset in the mapping (QEMU's guest-physical space).
	 */
	bool gpa_is_va;
	/*
	 * One file per region, each mapped from its offset 0 (mmap_offset 0 on the wire), the
	 * regions still adjacent in our address space: SPDK v23.05 sends one region per hugepage
	 * file it finds in /proc/self/maps. Not with VH_FE_MEM_QEMU_PC. Default: one file.
	 */
	bool fd_per_region;
};

struct vh_fe_region {
	uint64_t gpa; /* mem->gpa_base + offset in the mapping */
	uint64_t size;
	uint64_t bump;   /* next free GPA inside the region */
	bool plugged;    /* announced to the back-end */
	int fd;          /* file backing the region (== mem->fd unless fd_per_region) */
	uint64_t offset; /* offset of the region's first byte in fd (the wire's mmap_offset) */
};

struct vh_fe_mem {
	int fd;            /* the file (fd_per_region: region 0's, closed with the others) */
	uint8_t *base;     /* our mapping of all the memory; GPA x lives at base + (x - gpa_base) */
	uint64_t size;     /* bytes mapped */
	uint64_t page;     /* page size of the backing (4 KiB or huge) */
	uint64_t gpa_base; /* GPA of base: 0, or (uintptr_t)base with gpa_is_va */
	bool fd_per_region;
	/* Private: the range reserved for fd_per_region's mappings. */
	uint8_t *resv;
	uint64_t resv_len;
	unsigned int nregions;
	struct vh_fe_region regions[VH_FE_MAX_REGIONS];
};

/* Create guest RAM. Returns 0 or -errno (-EINVAL bad opts, -ENOMEM, errors from memfd/mmap). */
int vh_fe_mem_create(struct vh_fe_mem **out, const struct vh_fe_mem_opts *opts);
void vh_fe_mem_destroy(struct vh_fe_mem *mem);

/* Pointer for a GPA range, or NULL if [gpa, gpa+len) is not inside the file. */
void *vh_fe_gpa_to_ptr(const struct vh_fe_mem *mem, uint64_t gpa, uint64_t len);
/* GPA of a pointer into the mapping (no check beyond the mapping bounds; ~0 if outside). */
uint64_t vh_fe_ptr_to_gpa(const struct vh_fe_mem *mem, const void *p);

/*
 * Allocate len bytes aligned to align (power of two, 0 = 8) from the first plugged region with
 * room. Returns the GPA, or 0 with errno-style failure reported as UINT64_MAX. Bump allocation:
 * memory is given back only by vh_fe_mem_reset_alloc().
 */
uint64_t vh_fe_mem_alloc(struct vh_fe_mem *mem, uint64_t len, uint64_t align);
/* Same, but from region `region` (plugged or not). UINT64_MAX if it does not fit. */
uint64_t vh_fe_mem_alloc_in(struct vh_fe_mem *mem, unsigned int region, uint64_t len,
                            uint64_t align);
/*
 * Allocate a buffer that straddles the end of region `region` and the start of region+1 (their
 * GPAs must be adjacent): `before` bytes in the first, len-before in the second. UINT64_MAX if
 * either side is already used.
 */
uint64_t vh_fe_mem_alloc_across(struct vh_fe_mem *mem, unsigned int region, uint64_t len,
                                uint64_t before);
/* Forget every allocation (rings included: only between devices). */
void vh_fe_mem_reset_alloc(struct vh_fe_mem *mem);

/*
 * Fixed-size buffer pool in guest RAM, for benchmarks: O(1) get/put, no allocation after init.
 */
struct vh_fe_slab {
	struct vh_fe_mem *mem;
	uint64_t base_gpa;
	uint32_t obj_size; /* rounded up to the alignment */
	uint32_t count;
	uint32_t nfree;
	uint32_t *free; /* stack of free object indexes (private memory) */
};

/* Carve count objects of obj_size bytes (align-aligned) out of mem. 0 or -ENOMEM. */
int vh_fe_slab_init(struct vh_fe_slab *s, struct vh_fe_mem *mem, uint32_t obj_size, uint32_t count,
                    uint32_t align);
void vh_fe_slab_fini(struct vh_fe_slab *s);
/* GPA of a free object, or UINT64_MAX if none is left. */
uint64_t vh_fe_slab_get(struct vh_fe_slab *s);
void vh_fe_slab_put(struct vh_fe_slab *s, uint64_t gpa);

/* ---------------------------------------------------------------------------------------- */
/* Connection and device                                                                     */
/* ---------------------------------------------------------------------------------------- */

struct vh_fe;
struct vh_fe_vq;
struct vh_fe_req;

/* Virtio-blk feature bits a Linux 6.1 guest accepts (the default driver feature set). */
#define VH_FE_LINUX_FEATURES                                                                       \
	((1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                        \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |                          \
	 (1ull << VIRTIO_BLK_F_TOPOLOGY) | (1ull << VIRTIO_BLK_F_CONFIG_WCE) |                     \
	 (1ull << VIRTIO_BLK_F_MQ) | (1ull << VIRTIO_BLK_F_DISCARD) |                              \
	 (1ull << VIRTIO_BLK_F_WRITE_ZEROES) | (1ull << VIRTIO_BLK_F_RO) |                         \
	 (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX) |               \
	 (1ull << 32 /* VERSION_1 */))
/* What SeaBIOS acks: queue 0 only, no indirect, no event index [reference §1.4]. */
#define VH_FE_SEABIOS_FEATURES                                                                     \
	((1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                        \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << 32 /* VERSION_1 */))
/*
 * Protocol features this front-end implements by default (QEMU 7.2's set minus
 * log/inflight/notifiers). INFLIGHT_SHMFD is added with vh_fe_opts.inflight.
 */
#define VH_FE_PROTOCOL_FEATURES                                                                    \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |          \
	 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |    \
	 (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                                            \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |                                     \
	 (1ull << VHOST_USER_PROTOCOL_F_STATUS))

/*
 * Initiator personalities: which real front-end the library plays. Each one fixes the control
 * message order and payloads, the memory table it builds, which features it acks, and how its
 * driver uses the rings (struct vh_fe_ring_opts). Observed or read in the initiators' sources;
 * docs/vhost-user.md ("Initiators we test against") lists the sequences side by side.
 *
 * VH_FE_QEMU72 (default): QEMU 7.2 vhost-user-blk-pci with a Linux 6.1 guest, sequences A/B/C/E
 *   of the reference (§1.9), the existing behaviour of this library.
 *
 * VH_FE_SPDK2305: SPDK v23.05 bdev_virtio_blk over virtio-user (lib/virtio/virtio_vhost_user.c).
 *   init:  SET_OWNER (the first message) → GET_FEATURES → SET_FEATURES(ours & offered; ours =
 *          VH_FE_SPDK_FEATURES: EVENT_IDX yes, FLUSH/INDIRECT/WRITE_ZEROES/CONFIG_WCE no) →
 *          GET_PROTOCOL_FEATURES → SET_PROTOCOL_FEATURES(offered & (MQ|CONFIG)) → one
 *          GET_CONFIG(offset 0, size 256) per config field it reads (blk_size, capacity,
 *          num_queues, size_max, seg_max: each when its feature was acked).
 *   start: per queue SET_VRING_ENABLE(q, num = queue size) (before anything else about the
 *          ring), GET_QUEUE_NUM (sent even without PROTOCOL_F_MQ), SET_VRING_CALL per queue,
 *          SET_MEM_TABLE (no NEED_REPLY) followed by GET_FEATURES as a barrier, once per
 *          virtually contiguous range of registered memory, then per queue SET_VRING_NUM,
 *          SET_VRING_BASE(0), SET_VRING_ADDR(log 0), SET_VRING_KICK. No SET_VRING_ERR, no
 *          back-end channel, no REPLY_ACK, no STATUS, no inflight, no SET_VRING_ENABLE(0).
 *   stop:  the bdev's detach: GET_VRING_BASE per queue (up to the first failure), then the
 *          memory unregistration re-sends SET_MEM_TABLE + GET_FEATURES, then the socket is
 *          closed: vh_fe_stop() leaves the connection closed.
 *   reconnect: SPDK has none; the operator detaches and attaches the controller again, so
 *          vh_fe_reconnect() is stop (if still connected) + a fresh attach (init with config
 *          reads, start) on zeroed rings at index 0. Requests must not be in flight (-EBUSY).
 *   memory: GPA == virtual address, one region per hugepage file, mmap_offset always 0
 *          (vh_fe_personality_mem_opts()); no memory changes while attached (-ENOTSUP).
 *   replies: flags must be exactly 0x5, header and payload are each read with one recv(), a
 *          GET_CONFIG reply must be 12 + 256 bytes: anything else is -EPROTO here.
 *
 * VH_FE_DPDK2211: DPDK 22.11 virtio-user PMD (drivers/net/virtio/virtio_user/) in client mode,
 *   playing its control plane in front of a blk device (the PMD itself is net only).
 *   init:  SET_OWNER → GET_FEATURES → GET_PROTOCOL_FEATURES → SET_PROTOCOL_FEATURES(offered &
 *          (MQ|REPLY_ACK|STATUS)). No GET_CONFIG (no PROTOCOL_F_CONFIG: the geometry must come
 *          from elsewhere, see vh_fe_config_learned()), no GET_QUEUE_NUM.
 *   start: (FEATURES_OK) SET_VRING_CALL for every queue, even indexes first then odd ones (its
 *          rx queues, then tx) → SET_FEATURES(acked | offered bit 30) → [STATUS] SET_STATUS(0x0b)
 *          → GET_STATUS → (DRIVER_OK) [STATUS] GET_STATUS → SET_MEM_TABLE (NEED_REPLY with
 *          REPLY_ACK) → per queue, same order, SET_VRING_NUM, SET_VRING_BASE(0),
 *          SET_VRING_ADDR(log 0), SET_VRING_KICK → SET_VRING_ENABLE(0,1), (1,1) (its first
 *          queue pair) → [STATUS] SET_STATUS(0x0f) → SET_VRING_ENABLE(q,1) for the other pairs
 *          (its multiqueue setup). SET_STATUS carries NEED_REPLY with REPLY_ACK. Rings are
 *          zeroed and restart at 0 on every start (so also after a stop: DPDK's re-init).
 *   stop:  (device reset) SET_VRING_ENABLE(q,0) for every enabled pair, GET_VRING_BASE for every
 *          queue in order. No SET_STATUS(0). The connection stays open.
 *   reconnect: none in client mode (only a DPDK *server* reconnects, and vhostd only listens):
 *          the port is closed and probed again, so vh_fe_reconnect() is stop + close + init +
 *          start on zeroed rings. Requests must not be in flight (-EBUSY).
 *   memory: GPA == virtual address; one region per file (all regions of one fd merge into one,
 *          from the lowest to the highest address, mmap_offset = the lowest file offset). A
 *          memory change while running is SET_VRING_ENABLE(0) for the active pairs,
 *          SET_MEM_TABLE, SET_VRING_ENABLE(1) (vh_fe_set_mem_table(), vh_fe_mem_plug()).
 *   wire:  every message carries an SCM_RIGHTS control message, empty when there is no fd;
 *          replies are read as for SPDK (exact flags, one recv() each).
 */
enum vh_fe_personality {
	VH_FE_QEMU72 = 0,
	VH_FE_SPDK2305,
	VH_FE_DPDK2211,
	VH_FE_NPERSONALITIES,
};

/* "qemu-7.2", "spdk-23.05", "dpdk-22.11" (or "?"). */
const char *vh_fe_personality_name(enum vh_fe_personality p);

/* Virtio features SPDK v23.05's bdev_virtio_blk asks for (VIRTIO_BLK_DEV_SUPPORTED_FEATURES). */
#define VH_FE_SPDK_FEATURES                                                                        \
	((1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                        \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_TOPOLOGY) |                       \
	 (1ull << VIRTIO_BLK_F_MQ) | (1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_DISCARD) |  \
	 (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |            \
	 (1ull << 32 /* VERSION_1 */))
#define VH_FE_SPDK_PROTOCOL_FEATURES                                                               \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_CONFIG))
/*
 * DPDK's PMD acks INDIRECT_DESC and VERSION_1 and never EVENT_IDX; for a block device we add MQ
 * (several queues) and nothing that needs config space, which it cannot read.
 */
#define VH_FE_DPDK_FEATURES                                                                        \
	((1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_BLK_F_MQ) |                       \
	 (1ull << 32 /* VERSION_1 */))
#define VH_FE_DPDK_PROTOCOL_FEATURES                                                               \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |          \
	 (1ull << VHOST_USER_PROTOCOL_F_STATUS))

/*
 * How the driver uses its rings. Each personality has its defaults
 * (vh_fe_personality_ring_opts()); QEMU 7.2's Linux guest is all zero.
 */
struct vh_fe_ring_opts {
	unsigned int layout_force; /* VH_FE_L_* bits added to every request's layout */
	unsigned int layout_deny;  /* VH_FE_L_* bits removed from every request's layout */
	/*
	 * Publish avail->idx and decide on a kick after every request (SPDK flushes per I/O),
	 * instead of once per vh_fe_vq_flush() batch (Linux blk-mq, DPDK bursts).
	 */
	bool kick_per_request;
	/*
	 * With EVENT_IDX and VH_FE_POLL, do what SPDK does to never get an interrupt: used_event
	 * = 0xffff when the ring starts, then used_seen - size - 1 at every flush (and never
	 * re-armed when polling). Without it, polling writes used_seen - 1 after each poll.
	 */
	bool used_event_far;
	/* desc, avail and used in one 4 KiB-aligned block as vring_init(align 4096) lays them out.
	 */
	bool legacy_layout;
};

/*
 * SPDK: header / data / status as separate direct descriptors (one per iov: a 3-descriptor
 * chain for one buffer), no indirect, no inline header or status, kick per request, used_event
 * far ahead, legacy layout. DPDK: indirect whenever negotiated, no inline header or status,
 * kick per batch, legacy layout. QEMU 7.2: all zero (any layout, kick per batch).
 */
void vh_fe_personality_ring_opts(enum vh_fe_personality p, struct vh_fe_ring_opts *ro);
/*
 * Adjust guest RAM options to what the initiator's memory looks like: SPDK gpa_is_va +
 * fd_per_region, DPDK gpa_is_va, QEMU unchanged. Other fields are left alone.
 */
void vh_fe_personality_mem_opts(enum vh_fe_personality p, struct vh_fe_mem_opts *mo);

struct vh_fe_opts {
	const char *path;        /* back-end's UNIX socket */
	int timeout_ms;          /* bound on every reply wait and on connect; 0 = 5000 */
	unsigned int num_queues; /* device queues (QEMU num-queues); 0 = 1 */
	/* Power of two; 0 = the personality's default: 128 (QEMU), 512 (SPDK), 256 (DPDK). */
	unsigned int queue_size;
	/* Which initiator to play (see enum vh_fe_personality). Default QEMU 7.2. */
	enum vh_fe_personality personality;
	/* Ring usage; NULL = the personality's defaults. Copied at create. */
	const struct vh_fe_ring_opts *ring;
	/*
	 * Virtio features the "guest" accepts; 0 = the personality's: VH_FE_LINUX_FEATURES,
	 * VH_FE_SPDK_FEATURES, VH_FE_DPDK_FEATURES.
	 */
	uint64_t driver_features;
	/*
	 * Protocol features we accept, ANDed with the personality's set (VH_FE_PROTOCOL_FEATURES,
	 * VH_FE_SPDK_PROTOCOL_FEATURES, VH_FE_DPDK_PROTOCOL_FEATURES); 0 = all of that set.
	 */
	uint64_t protocol_features;
	/* GET_CONFIG size at init; 0 = 57 (QEMU 7.2), 256 (SPDK). DPDK never sends GET_CONFIG. */
	uint32_t config_size;
	bool use_set_mem_table; /* SET_MEM_TABLE even when CONFIGURE_MEM_SLOTS is negotiated */
	/* Set NEED_REPLY on every request without a natural reply (needs REPLY_ACK). */
	bool ack_all;
	/* Entries of each request's indirect table (max descriptors per chain); 0 = 64. */
	unsigned int max_chain;
	/*
	 * Also offer VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (added to protocol_features, whatever
	 * it says) and, when the back-end has it, keep an inflight buffer as QEMU 7.2 does
	 * [reference §1.9 B, §2.1]: GET_INFLIGHT_FD(num_queues, queue_size) on a start while we
	 * hold no buffer, SET_INFLIGHT_FD with that same fd on every start (so also after
	 * vh_fe_reconnect()). The buffer survives disconnects; vh_fe_reset_rings() (a VM reset)
	 * and vh_fe_inflight_free() drop it. Default off. QEMU personality only (neither SPDK
	 * v23.05 nor DPDK 22.11 virtio-user implements inflight tracking): -EINVAL otherwise.
	 */
	bool inflight;
	/*
	 * Also offer VHOST_USER_PROTOCOL_F_LOG_SHMFD, so the device can be migrated with
	 * vh_fe_log_start() (QEMU personality). Default off.
	 */
	bool log;
	/*
	 * The device is vhost-user-scsi-pci (fe_scsi.h), not -blk: as QEMU 7.2 does, do not
	 * negotiate PROTOCOL_F_CONFIG (QEMU keeps that config space itself) nor require it.
	 * QEMU personality only.
	 */
	bool scsi;
};

/*
 * Allocate a front-end for guest RAM mem (not owned; must outlive fe) and carve its rings,
 * request headers and indirect tables out of mem's first region. No I/O happens.
 * Returns 0, -EINVAL (bad opts) or -ENOMEM.
 */
int vh_fe_create(struct vh_fe **out, struct vh_fe_mem *mem, const struct vh_fe_opts *opts);
/* Close everything (no messages are sent). fe may be NULL. */
void vh_fe_destroy(struct vh_fe *fe);

/*
 * Connect to opts.path, retrying while the socket does not exist or refuses, until timeout_ms
 * (0 = opts.timeout_ms). Returns 0, -ETIMEDOUT, or -errno of a hard failure.
 */
int vh_fe_connect(struct vh_fe *fe, int timeout_ms);
/* Close the connection (the back-end sees EOF). Ring state in guest RAM is kept. */
void vh_fe_disconnect(struct vh_fe *fe);
/* The connected socket, or -1. */
int vh_fe_sock(const struct vh_fe *fe);

/*
 * Connect-time handshake. QEMU: sequence A of QEMU 7.2 (reference §1.9): features, protocol
 * features, queue count, memory slots, back-end channel, SET_OWNER, SET_VRING_CALL/ERR for all
 * queues, and GET_CONFIG (unless get_config is false, as on a reconnect). SPDK and DPDK: their
 * init (enum vh_fe_personality; SPDK also acks the virtio features here and reads config when
 * get_config). Negotiates only what both sides offer.
 * Returns 0, -EPROTO (bad reply, or config the initiator would refuse), -ENOTSUP (back-end lacks
 * CONFIG (QEMU, SPDK), or has fewer queues than asked, or lacks VERSION_1), or a transport
 * error.
 */
int vh_fe_init(struct vh_fe *fe, bool get_config);

/*
 * Start the device. QEMU: sequence B with driver feature set `features` (0 =
 * opts.driver_features; always ANDed with what the back-end offers) and `nqueues` started
 * queues (0 = all). Queues are started from their current ring state (fresh after create or
 * vh_fe_reset_rings(), resumed after vh_fe_stop()). Memory regions are sent on the first start
 * of a connection. SPDK: features were acked at init (`features` must be 0 or those); DPDK acks
 * them here. Both zero the rings of the started queues and start them at index 0 (-EBUSY if a
 * request is in flight) and send their memory table on every start.
 * Returns 0, -EREMOTEIO when the back-end NACKs (REPLY_ACK u64 != 0), -EPROTO on a malformed
 * reply, -ENOTSUP (SPDK: fewer queues than asked), -EBUSY (already running), or a transport
 * error.
 */
int vh_fe_start(struct vh_fe *fe, uint64_t features, unsigned int nqueues);

/*
 * Stop. QEMU: sequence C: [SET_STATUS 0], SET_VRING_ENABLE(0) for all, GET_VRING_BASE per
 * started queue. The back-end's answers become each queue's base for the next start. Requests
 * still in flight stay in flight (check vh_fe_vq_pending() to see whether the back-end drained
 * them). SPDK: its detach, which ends with the socket closed. DPDK: its device reset (the
 * socket stays open; a vh_fe_start() after it is DPDK's re-init).
 */
int vh_fe_stop(struct vh_fe *fe);

/*
 * Device reset as a guest driver does it between SeaBIOS and Linux: the device must be stopped
 * and idle; rings are zeroed and every queue restarts at index 0. The inflight buffer, if any,
 * is dropped (QEMU frees it on reset; the next start gets a fresh one).
 * Returns 0 or -EBUSY if a request is still in flight.
 */
int vh_fe_reset_rings(struct vh_fe *fe);

/*
 * Reconnect as the initiator does. QEMU: back-end restart as QEMU 7.2 handles it (reference
 * §1.9 E): drop the connection, connect (within timeout_ms), replay A without GET_CONFIG, set
 * each started queue's base to used->idx (requests not yet used become available again) and,
 * if the device was started, replay B (with SET_INFLIGHT_FD of the buffer we kept, if
 * opts.inflight). used->idx is read after A, i.e. once the back-end serves the new session and
 * so (for a live back-end) has finished with the old one.
 * SPDK and DPDK have no reconnect: their stop (when still connected; failures ignored, the
 * back-end may be gone), close, then a fresh connect + init + start on zeroed rings: -EBUSY if
 * a request is still in flight (they would lose it).
 */
int vh_fe_reconnect(struct vh_fe *fe, int timeout_ms);
/*
 * QEMU 7.2's reconnect when it races with the handling of the previous connection's close
 * (seen when the back-end restarts during a live migration): QEMU still believes the old
 * connection's handshake, so it connects and goes straight to sequence B: SET_FEATURES with
 * PROTOCOL_FEATURES acked, but no GET_FEATURES, protocol negotiation, SET_OWNER, back-end
 * channel or A's SET_VRING_CALL/ERR; NEED_REPLY and inflight as negotiated before. Otherwise as
 * vh_fe_reconnect(). QEMU personality only (-EINVAL).
 */
int vh_fe_reconnect_raced(struct vh_fe *fe, int timeout_ms);

/*
 * The inflight buffer (vh_fe_opts.inflight): its fd (-1 if we hold none), and our mapping of
 * it (NULL if none; *size gets its length, the queue regions start at offset 0 of the mapping).
 */
int vh_fe_inflight_fd(const struct vh_fe *fe);
void *vh_fe_inflight_map(const struct vh_fe *fe, uint64_t *size);
/* Drop the buffer (as QEMU does on a VM reset): the next start asks GET_INFLIGHT_FD again. */
void vh_fe_inflight_free(struct vh_fe *fe);

/*
 * Live migration, as QEMU 7.2 starts and stops it (vhost_migration_log): a sealed memfd log of
 * one bit per 4 KiB page covering guest RAM, SET_LOG_BASE (QEMU waits for its reply),
 * SET_FEATURES with VHOST_F_LOG_ALL, then SET_VRING_ADDR with VHOST_VRING_F_LOG and the used
 * ring's GPA for every started queue. Needs opts.log. Returns 0, -ENOTSUP (no LOG_SHMFD or
 * LOG_ALL from the back-end), or a transport error / -EREMOTEIO.
 */
int vh_fe_log_start(struct vh_fe *fe);
/* Logging off: SET_FEATURES without LOG_ALL, SET_VRING_ADDR without the flag. The log stays. */
int vh_fe_log_stop(struct vh_fe *fe);
/*
 * QEMU's log sync: take every byte of the log and clear it, atomically, into out[0..cap).
 * Returns the log's size in bytes (0 without a log).
 */
uint64_t vh_fe_log_sync(struct vh_fe *fe, uint8_t *out, uint64_t cap);

/*
 * A live migration to a second connection of the same device, sharing this object's guest RAM
 * and rings (QEMU's destination with x-ignore-shared, or RAM already copied):
 * vh_fe_migrate_prepare() connects the destination and runs sequence A on it while this
 * connection keeps running; after vh_fe_stop() (GET_VRING_BASE on the source),
 * vh_fe_migrate_finish() drops the source connection and starts the rings on the destination
 * at the source's bases (without dirty logging, with a fresh inflight region).
 */
int vh_fe_migrate_prepare(struct vh_fe *fe, int timeout_ms);
int vh_fe_migrate_finish(struct vh_fe *fe);

/*
 * Memory table changes while the device runs (rings keep going). DPDK sends its table
 * bracketed by SET_VRING_ENABLE(0)/(1) of the active queue pairs, and nothing when not running
 * (its start sends the table); SPDK refuses (-ENOTSUP), as SPDK does.
 */
/* Announce region i (ADD_MEM_REG with NEED_REPLY when REPLY_ACK). 0, -EREMOTEIO, -errno. */
int vh_fe_mem_plug(struct vh_fe *fe, unsigned int region);
/* Withdraw region i (REM_MEM_REG). The caller must have no request using it in flight. */
int vh_fe_mem_unplug(struct vh_fe *fe, unsigned int region);
/* Re-send the whole table of plugged regions with SET_MEM_TABLE. */
int vh_fe_set_mem_table(struct vh_fe *fe);

/* Negotiation results and device facts. */
struct vh_fe_info {
	uint64_t backend_features; /* GET_FEATURES reply */
	uint64_t backend_protocol; /* GET_PROTOCOL_FEATURES reply */
	uint64_t protocol;         /* negotiated protocol features */
	uint64_t features;         /* acked virtio features of the last start */
	uint64_t queue_num;        /* GET_QUEUE_NUM reply (1 without MQ) */
	uint64_t max_mem_slots;    /* GET_MAX_MEM_SLOTS reply (0 if not asked) */
	uint32_t config_size;      /* bytes of config read */
	uint8_t config[VHOST_USER_MAX_CONFIG_SIZE];
};
const struct vh_fe_info *vh_fe_info(const struct vh_fe *fe);
/* Little-endian config field readers (offsets VH_BLK_CFG_*). */
uint64_t vh_fe_cfg_u64(const struct vh_fe *fe, unsigned int off);
uint32_t vh_fe_cfg_u32(const struct vh_fe *fe, unsigned int off);
uint16_t vh_fe_cfg_u16(const struct vh_fe *fe, unsigned int off);

/*
 * GET_CONFIG(offset 0, size) now. On success returns the reply's payload size field (should be
 * size) and copies min(reply, cap) bytes into buf. -EPROTO if the reply is malformed (SPDK and
 * DPDK: also if its size is not 12 + size), -ENOTSUP (SPDK, DPDK) if CONFIG was not negotiated:
 * they never send it then.
 */
int vh_fe_get_config(struct vh_fe *fe, uint32_t size, void *buf, uint32_t cap);
/*
 * Install config space the test learned out of band (vh_fe_info().config, for
 * vh_fe_cfg_*() and io_engine): for an initiator that never reads it (DPDK's virtio-user has no
 * PROTOCOL_F_CONFIG). len <= 256. Returns 0 or -EINVAL. Nothing is sent.
 */
int vh_fe_config_learned(struct vh_fe *fe, const void *cfg, uint32_t len);

/* The front-end end of the back-end request channel (SET_BACKEND_REQ_FD), or -1. */
int vh_fe_backend_fd(const struct vh_fe *fe);
/*
 * Receive one back-end request (within timeout_ms), answer NEED_REPLY with ack 0, and return
 * its request code (e.g. VHOST_USER_BACKEND_CONFIG_CHANGE_MSG). -ETIMEDOUT, -ECONNRESET.
 */
int vh_fe_backend_handle(struct vh_fe *fe, int timeout_ms);

/* ---------------------------------------------------------------------------------------- */
/* Raw messages (malformed-input tests)                                                       */
/* ---------------------------------------------------------------------------------------- */

/*
 * Send a header {request, flags, size} followed by payload_len bytes of payload, with nfds fds
 * in SCM_RIGHTS (not closed). size and payload_len may differ on purpose.
 * Returns 0, -EPIPE/-ECONNRESET when the peer is gone, or -errno.
 */
int vh_fe_send_raw(struct vh_fe *fe, uint32_t request, uint32_t flags, uint32_t size,
                   const void *payload, uint32_t payload_len, const int *fds, unsigned int nfds);
/*
 * Receive one message within timeout_ms (<0 = opts.timeout_ms): header into *hdr, up to cap
 * payload bytes into payload (the rest is discarded). Received fds are closed.
 * Returns the payload size from the header, -ETIMEDOUT, -ECONNRESET (EOF), or -EPROTO.
 */
int vh_fe_recv_raw(struct vh_fe *fe, struct vhost_user_header *hdr, void *payload, uint32_t cap,
                   int timeout_ms);
/*
 * Send a request and, if it has a reply or NEED_REPLY is in flags, receive it.
 * *reply (may be NULL) gets the u64 or the first 8 bytes of the reply payload.
 * Returns the reply payload size, 0 if no reply was expected, or -errno as above. A reply for
 * another request code gives -EPROTO.
 */
int vh_fe_call(struct vh_fe *fe, uint32_t request, uint32_t flags, const void *payload,
               uint32_t size, const int *fds, unsigned int nfds, void *reply, uint32_t reply_cap);
/*
 * Wait up to timeout_ms for the peer to close the connection. Returns 0 if it did, -ETIMEDOUT
 * if it is still open, -EPROTO if a message arrived instead.
 */
int vh_fe_wait_closed(struct vh_fe *fe, int timeout_ms);

/* ---------------------------------------------------------------------------------------- */
/* Virtqueues and requests                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Bounds of one request: data iovecs, and descriptors after cutting. */
#define VH_FE_MAX_IOV   256
#define VH_FE_MAX_CHAIN 512

/*
 * Descriptor layout options for vh_fe_req.layout. vh_fe_req_queue() rewrites req->layout with
 * what it used: the request's bits plus the queue's layout_force minus its layout_deny
 * (struct vh_fe_ring_opts).
 */
#define VH_FE_L_INDIRECT (1u << 0) /* chain in an indirect table (if negotiated) */
/*
 * The header sits in the 16 bytes just before iov[0] (the caller reserved them), so a readable
 * request becomes a single descriptor for header+data.
 */
#define VH_FE_L_INLINE_HDR (1u << 1)
/* The status byte sits just after the last iov (caller reserved 1 byte): IN data + status merge. */
#define VH_FE_L_INLINE_STATUS (1u << 2)
/* Cut every contiguous extent into 1..4 descriptors at random points (vq's PRNG). */
#define VH_FE_L_RANDOM_SPLIT (1u << 3)
/* Do not merge GPA-adjacent extents of the same direction into one descriptor. */
#define VH_FE_L_NO_MERGE (1u << 4)

/* Data direction of a request's buffers. */
enum vh_fe_dir {
	VH_FE_DIR_AUTO = 0, /* from the type: IN and GET_ID write, the rest read */
	VH_FE_DIR_OUT,      /* device-readable */
	VH_FE_DIR_IN,       /* device-writable */
	/*
	 * Any device type: no header and no status byte are added; iov[0..nout) are
	 * device-readable and iov[nout..niov) device-writable, as given (type and sector are
	 * ignored, status stays 0xff). tests/lib/fe_scsi.h builds virtio-scsi requests this way.
	 */
	VH_FE_DIR_RAW,
};

struct vh_fe_iov {
	uint64_t gpa;
	uint32_t len;
};

struct vh_fe_req {
	/* Filled by the caller before vh_fe_req_queue(). */
	uint32_t type; /* VIRTIO_BLK_T_* or anything */
	uint32_t ioprio;
	uint64_t sector;
	const struct vh_fe_iov *iov; /* read only during vh_fe_req_queue() */
	unsigned int niov;
	unsigned int layout; /* VH_FE_L_* */
	enum vh_fe_dir dir;
	unsigned int nout;     /* VH_FE_DIR_RAW: how many of iov are device-readable (first) */
	uint32_t max_desc_len; /* cut descriptors to at most this many bytes; 0 = no limit */
	void (*cb)(struct vh_fe_req *req, void *arg); /* optional, called from vh_fe_vq_poll() */
	void *cb_arg;

	/* Results, valid after completion. */
	uint8_t status;    /* VIRTIO_BLK_S_*, or 0xff if the device did not write it */
	uint32_t used_len; /* len of the used element */

	/* Private. */
	uint16_t head;
	uint16_t ndesc;
	uint8_t *status_ptr;
	bool inflight;
	/*
	 * The device is vhost-user-scsi-pci (fe_scsi.h), not -blk: as QEMU 7.2 does, do not
	 * negotiate PROTOCOL_F_CONFIG (QEMU keeps that config space itself) nor require it.
	 * QEMU personality only.
	 */
	bool scsi;
};

/* Queue i of the device (i < opts.num_queues), or NULL. */
struct vh_fe_vq *vh_fe_vq(struct vh_fe *fe, unsigned int i);

/* Notification modes of a queue. */
enum vh_fe_irq {
	VH_FE_POLL = 0,  /* driver polls the used ring; asks for no interrupts */
	VH_FE_INTERRUPT, /* driver asks for interrupts and waits on the call eventfd */
};
void vh_fe_vq_set_mode(struct vh_fe_vq *vq, enum vh_fe_irq mode);
enum vh_fe_irq vh_fe_vq_mode(const struct vh_fe_vq *vq);
/* Kick after every flush, ignoring the device's notification suppression. */
void vh_fe_vq_set_always_kick(struct vh_fe_vq *vq, bool on);
/* Seed the queue's PRNG used by VH_FE_L_RANDOM_SPLIT. */
void vh_fe_vq_seed(struct vh_fe_vq *vq, uint64_t seed);

/*
 * Build req's descriptor chain, write its header and put it in the avail ring without
 * publishing (call vh_fe_vq_flush()); with the queue's kick_per_request it is published (and
 * kicked if the device wants it) at once. Returns 0, -ENOSPC (not enough free descriptors: poll
 * first), -E2BIG (chain longer than allowed), -EINVAL (bad iov / not started), -EBUSY (req is
 * already in flight), or the kick's -errno (kick_per_request; the request is queued anyway).
 */
int vh_fe_req_queue(struct vh_fe_vq *vq, struct vh_fe_req *req);
/* Publish queued requests (avail->idx) and kick the device if it wants it. Returns kicks (0/1). */
int vh_fe_vq_flush(struct vh_fe_vq *vq);
/* vh_fe_req_queue() + vh_fe_vq_flush(). */
int vh_fe_req_submit(struct vh_fe_vq *vq, struct vh_fe_req *req);

/*
 * Reap completed requests: fills done[0..max) (may be NULL with max 0 when using callbacks),
 * calls each req's cb, and returns how many completed, or -EPROTO if the device put a bad or
 * duplicate id in the used ring (counted in vh_fe_vq_stats().bad_used).
 */
int vh_fe_vq_poll(struct vh_fe_vq *vq, struct vh_fe_req **done, unsigned int max);
/*
 * Interrupt mode: re-arm interrupts and wait up to timeout_ms for the call eventfd (returns at
 * once if completions are already there). Returns 1 if something is ready, 0 on timeout.
 */
int vh_fe_vq_wait(struct vh_fe_vq *vq, int timeout_ms);
/*
 * For waiting on several queues at once: re-arm interrupts (interrupt mode) and return 1 if
 * completions are already pending (do not sleep then), else 0; then poll() the fds of
 * vh_fe_vq_call_fd() and call vh_fe_vq_ack_call() on the readable ones.
 */
int vh_fe_vq_arm(struct vh_fe_vq *vq);
int vh_fe_vq_call_fd(const struct vh_fe_vq *vq);
/*
 * The queue's kick eventfd (for drivers that run the rings themselves, e.g. bench/vhost-bench:
 * write 1 to it to notify the back-end).
 */
int vh_fe_vq_kick_fd(const struct vh_fe_vq *vq);
/* Consume the call eventfd; returns 1 if it had been signalled. */
int vh_fe_vq_ack_call(struct vh_fe_vq *vq);
/*
 * Poll (or wait, in interrupt mode) until no request is in flight or timeout_ms passes.
 * Returns 0, -ETIMEDOUT or -EPROTO.
 */
int vh_fe_vq_drain(struct vh_fe_vq *vq, int timeout_ms);

/* Requests queued to the device (published) minus those in the used ring. */
unsigned int vh_fe_vq_pending(const struct vh_fe_vq *vq);
/* Requests the driver submitted and has not reaped. */
unsigned int vh_fe_vq_inflight(const struct vh_fe_vq *vq);

struct vh_fe_vq_stats {
	uint64_t submitted;
	uint64_t completed;
	uint64_t kicks;
	uint64_t calls;    /* call eventfd reads that returned a count */
	uint64_t bad_used; /* used elements with an invalid or duplicate id */
};
void vh_fe_vq_stats(const struct vh_fe_vq *vq, struct vh_fe_vq_stats *st);

/* Ring internals, for tests that check or corrupt them. */
struct vring_desc *vh_fe_vq_desc(struct vh_fe_vq *vq);
struct vring_avail *vh_fe_vq_avail(struct vh_fe_vq *vq);
struct vring_used *vh_fe_vq_used(struct vh_fe_vq *vq);
uint16_t vh_fe_vq_size(const struct vh_fe_vq *vq);
/* Base the queue starts from on its next start (last GET_VRING_BASE answer). */
uint16_t vh_fe_vq_base(const struct vh_fe_vq *vq);
/* The same in full: a packed ring's has both positions and wrap counters (32 bits). */
uint32_t vh_fe_vq_base32(const struct vh_fe_vq *vq);

/*
 * Packed rings (the queue's last start negotiated VIRTIO_F_RING_PACKED). The descriptor ring
 * lives where vh_fe_vq_desc() points, the driver and device event suppression structures at
 * vh_fe_vq_avail() and vh_fe_vq_used(). Positions are free-running 16-bit counts: index
 * p & (size - 1), wrap counter !(p & size).
 */
bool vh_fe_vq_is_packed(const struct vh_fe_vq *vq);
struct vring_packed_desc *vh_fe_vq_packed_ring(struct vh_fe_vq *vq);
struct vring_packed_desc_event *vh_fe_vq_driver_event(struct vh_fe_vq *vq);
struct vring_packed_desc_event *vh_fe_vq_device_event(struct vh_fe_vq *vq);
/* Where the driver puts its next descriptor, and where it expects the next used one. */
uint16_t vh_fe_vq_next_avail(const struct vh_fe_vq *vq);
uint16_t vh_fe_vq_next_used(const struct vh_fe_vq *vq);

/* Whether feature bit `bit` is set in `features`. */
static inline bool
vh_fe_has(uint64_t features, unsigned int bit)
{
	return (features >> bit) & 1;
}

/* CLOCK_MONOTONIC in milliseconds (for deadlines). */
int64_t vh_fe_now_ms(void);

/* Fill buf with one discard/write-zeroes segment (16 bytes). */
void vh_fe_blk_dwz_seg(void *buf, uint64_t sector, uint32_t nsect, uint32_t flags);

#endif
