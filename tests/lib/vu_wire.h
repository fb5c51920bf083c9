/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user wire format as the front-end writes it (QEMU docs/interop/vhost-user.rst, the
 * revision QEMU 7.2 implements). Host byte order, packed exactly as on the wire.
 *
 * Struct and constant names follow the spec so a reader can grep the spec for them. This header
 * is shared by the test front-end library, the functional tests (which build malformed
 * messages with it) and the benchmark.
 */
#ifndef VH_TESTS_VU_WIRE_H
#define VH_TESTS_VU_WIRE_H

#include <stdint.h>

/* Front-end -> back-end requests ("Front-end message types"). */
enum vhost_user_request {
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
};

/* Back-end -> front-end requests on the SET_BACKEND_REQ_FD channel. */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
};

/* Header flags: bits 0-1 version, bit 2 reply, bit 3 need-reply. */
#define VHOST_USER_VERSION         0x1u
#define VHOST_USER_VERSION_MASK    0x3u
#define VHOST_USER_REPLY_MASK      0x4u
#define VHOST_USER_NEED_REPLY_MASK 0x8u

/* QEMU never attaches more than this many fds to one message. */
#define VHOST_USER_MAX_FDS 8
/* SET_MEM_TABLE carries at most this many regions. */
#define VHOST_MEMORY_BASELINE_NREGIONS 8
/* GET_CONFIG/SET_CONFIG payload limit. */
#define VHOST_USER_MAX_CONFIG_SIZE 256

/* Virtio/vhost feature bits that are not virtio-blk specific. */
#define VHOST_F_LOG_ALL                26
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
#define VHOST_USER_PROTOCOL_F_MQ                   0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD            1
#define VHOST_USER_PROTOCOL_F_RARP                 2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK            3
#define VHOST_USER_PROTOCOL_F_NET_MTU              4
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ          5
#define VHOST_USER_PROTOCOL_F_CROSS_ENDIAN         6
#define VHOST_USER_PROTOCOL_F_CRYPTO_SESSION       7
#define VHOST_USER_PROTOCOL_F_PAGEFAULT            8
#define VHOST_USER_PROTOCOL_F_CONFIG               9
#define VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD      10
#define VHOST_USER_PROTOCOL_F_HOST_NOTIFIER        11
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD       12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE         13
#define VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS 14
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS  15
#define VHOST_USER_PROTOCOL_F_STATUS               16

/* SET_VRING_KICK/CALL/ERR payload: low byte = vring index, bit 8 = no fd attached. */
#define VHOST_USER_VRING_IDX_MASK  0xffu
#define VHOST_USER_VRING_NOFD_MASK 0x100u

/* virtio device status bits the front-end writes with SET_STATUS. */
#define VH_VIRTIO_S_ACKNOWLEDGE 0x1u
#define VH_VIRTIO_S_DRIVER      0x2u
#define VH_VIRTIO_S_DRIVER_OK   0x4u
#define VH_VIRTIO_S_FEATURES_OK 0x8u

struct vhost_user_header {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* payload bytes that follow */
} __attribute__((packed));

struct vhost_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct vhost_vring_addr {
	uint32_t index;
	uint32_t flags; /* bit 0: VHOST_VRING_F_LOG */
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
} __attribute__((packed));

struct vhost_user_memory_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));

struct vhost_user_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_memory_region regions[VHOST_MEMORY_BASELINE_NREGIONS];
} __attribute__((packed));

/* ADD_MEM_REG / REM_MEM_REG payload. */
struct vhost_user_mem_reg {
	uint64_t padding;
	struct vhost_user_memory_region region;
} __attribute__((packed));

struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
} __attribute__((packed));

#define VHOST_USER_CONFIG_HDR_SIZE 12u

/* GET_INFLIGHT_FD / SET_INFLIGHT_FD payload (24 bytes on the wire: 4 bytes of tail padding). */
struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

/* Largest payload any message of this protocol revision carries. */
union vhost_user_payload {
	uint64_t u64;
	struct vhost_vring_state state;
	struct vhost_vring_addr addr;
	struct vhost_user_memory memory;
	struct vhost_user_mem_reg mem_reg;
	struct vhost_user_config config;
	struct vhost_user_inflight inflight;
	uint8_t raw[512];
};

/*
 * virtio-blk config space offsets (VIRTIO 1.2 §5.2.4), little-endian fields. QEMU 7.2 reads the
 * first 57 bytes (up to write_zeroes_may_unmap).
 */
#define VH_BLK_CFG_CAPACITY         0
#define VH_BLK_CFG_SIZE_MAX         8
#define VH_BLK_CFG_SEG_MAX          12
#define VH_BLK_CFG_BLK_SIZE         20
#define VH_BLK_CFG_PHYS_BLOCK_EXP   24
#define VH_BLK_CFG_MIN_IO_SIZE      26
#define VH_BLK_CFG_OPT_IO_SIZE      28
#define VH_BLK_CFG_WCE              32
#define VH_BLK_CFG_NUM_QUEUES       34
#define VH_BLK_CFG_MAX_DISCARD_SECT 36
#define VH_BLK_CFG_MAX_DISCARD_SEG  40
#define VH_BLK_CFG_DISCARD_ALIGN    44
#define VH_BLK_CFG_MAX_WZ_SECT      48
#define VH_BLK_CFG_MAX_WZ_SEG       52
#define VH_BLK_CFG_WZ_MAY_UNMAP     56
#define VH_BLK_CFG_QEMU72_SIZE      57

#endif
