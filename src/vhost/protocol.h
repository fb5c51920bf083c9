/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user and virtio wire definitions (QEMU docs/interop/vhost-user.rst, VIRTIO 1.2).
 * Host byte order for vhost-user; little-endian for virtio (x86_64 only for now).
 */
#ifndef VH_VHOST_PROTOCOL_H
#define VH_VHOST_PROTOCOL_H

#include <stdint.h>

enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_SET_VRING_ENDIAN = 23,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_CREATE_CRYPTO_SESSION = 26,
	VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GPU_SET_SOCKET = 33,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_VRING_KICK = 35,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_MAX_REQUEST = 41,
};

/* Back-end -> front-end requests on the BACKEND_REQ channel. */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
};

#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_VERSION      0x1u
#define VHOST_USER_REPLY_MASK   0x4u
#define VHOST_USER_NEED_REPLY   0x8u

#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD     0x100u

#define VHOST_USER_HDR_SIZE        12u
#define VHOST_USER_MAX_FDS         8u
#define VHOST_MEMORY_MAX_REGIONS   8u /* SET_MEM_TABLE's fixed array */
#define VHOST_USER_CONFIG_HDR_SIZE 12u
#define VHOST_USER_MAX_CONFIG_SIZE 256u

/* Protocol feature bits. */
#define VHOST_USER_PROTOCOL_F_MQ                  0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD           1
#define VHOST_USER_PROTOCOL_F_REPLY_ACK           3
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ         5
#define VHOST_USER_PROTOCOL_F_CONFIG              9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD      12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE        13
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define VHOST_USER_PROTOCOL_F_STATUS              16

/* Virtio feature bits used here. */
#define VIRTIO_BLK_F_SIZE_MAX          1
#define VIRTIO_BLK_F_SEG_MAX           2
#define VIRTIO_BLK_F_RO                5
#define VIRTIO_BLK_F_BLK_SIZE          6
#define VIRTIO_BLK_F_FLUSH             9
#define VIRTIO_BLK_F_TOPOLOGY          10
#define VIRTIO_BLK_F_CONFIG_WCE        11
#define VIRTIO_BLK_F_MQ                12
#define VIRTIO_BLK_F_DISCARD           13
#define VIRTIO_BLK_F_WRITE_ZEROES      14
#define VIRTIO_F_NOTIFY_ON_EMPTY       24
#define VHOST_F_LOG_ALL                26 /* dirty logging of every device write (migration) */
#define VIRTIO_RING_F_INDIRECT_DESC    28
#define VIRTIO_RING_F_EVENT_IDX        29
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_VERSION_1             32
#define VIRTIO_F_RING_PACKED           34

struct vhost_vring_state {
	uint32_t index;
	uint32_t num;
};

#define VHOST_VRING_F_LOG 0x1 /* SET_VRING_ADDR: log used-ring writes at log_guest_addr */

struct vhost_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
};

struct vhost_user_memory_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

struct vhost_user_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_memory_region regions[VHOST_MEMORY_MAX_REGIONS];
};

struct vhost_user_mem_reg {
	uint64_t padding;
	struct vhost_user_memory_region region;
};

struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
};

/* SET_LOG_BASE (with LOG_SHMFD): the dirty log's size and offset in the attached fd. */
struct vhost_user_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

/*
 * Inflight I/O tracking, split rings (vhost-user.rst "Inflight I/O tracking"). The back-end
 * writes it; the front-end keeps it across back-end restarts and hands it back.
 */
struct inflight_desc_split {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

struct inflight_split_queue {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct inflight_desc_split desc[];
};

/*
 * Inflight I/O tracking, packed rings (vhost-user.rst "Inflight I/O tracking"). The region keeps
 * a copy of every descriptor fetched (the ring itself is overwritten by used descriptors) on a
 * free list of desc_num entries; inflight.c and vring_packed.c say how it is kept consistent.
 */
struct inflight_desc_packed {
	uint8_t inflight;
	uint8_t padding;
	uint16_t next; /* free list, or the next entry of a fetched chain */
	uint16_t last; /* head entry: the chain's last entry */
	uint16_t num;  /* head entry: descriptors in the chain */
	uint64_t counter;
	uint16_t id;
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

struct inflight_packed_queue {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;
	uint16_t old_free_head;
	uint16_t used_idx;
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[7];
	struct inflight_desc_packed desc[];
};

union vhost_user_payload {
	uint64_t u64;
	struct vhost_vring_state state;
	struct vhost_vring_addr addr;
	struct vhost_user_memory memory;
	struct vhost_user_mem_reg mem_reg;
	struct vhost_user_config config;
	struct vhost_user_inflight inflight;
	struct vhost_user_log log;
};

/*
 * On the wire the payload follows the 12-byte header directly. In memory we keep it 8-byte
 * aligned (offset 16) so handlers can use its u64 fields without unaligned access; the socket
 * code reads and writes the two parts separately.
 */
struct vhost_user_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint32_t reserved_; /* not on the wire */
	union vhost_user_payload payload;
};

/* Split virtqueue layout (VIRTIO 1.2 §2.7). */
#define VRING_DESC_F_NEXT          1
#define VRING_DESC_F_WRITE         2
#define VRING_DESC_F_INDIRECT      4
#define VRING_USED_F_NO_NOTIFY     1
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* then avail_event */
};

/*
 * Packed virtqueue layout (VIRTIO 1.2 §2.8): one descriptor ring, and the driver's and the
 * device's event suppression structures (SET_VRING_ADDR's avail and used addresses).
 */
#define VIRTQ_DESC_F_AVAIL       (1u << 7)
#define VIRTQ_DESC_F_USED        (1u << 15)
#define RING_EVENT_FLAGS_ENABLE  0x0
#define RING_EVENT_FLAGS_DISABLE 0x1
#define RING_EVENT_FLAGS_DESC    0x2
#define RING_EVENT_WRAP_SHIFT    15

struct pvirtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

struct pvirtq_event_suppress {
	uint16_t off_wrap; /* desc_event_off : 15, desc_event_wrap : 1 */
	uint16_t flags;    /* desc_event_flags : 2, reserved : 14 */
};

/* virtio-blk (VIRTIO 1.2 §5.2). */
#define VIRTIO_BLK_T_IN                    0
#define VIRTIO_BLK_T_OUT                   1
#define VIRTIO_BLK_T_FLUSH                 4
#define VIRTIO_BLK_T_GET_ID                8
#define VIRTIO_BLK_T_DISCARD               11
#define VIRTIO_BLK_T_WRITE_ZEROES          13
#define VIRTIO_BLK_S_OK                    0
#define VIRTIO_BLK_S_IOERR                 1
#define VIRTIO_BLK_S_UNSUPP                2
#define VIRTIO_BLK_ID_BYTES                20
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u

struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct virtio_blk_discard_write_zeroes {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct virtio_blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t wce;
	uint8_t unused;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

#endif
