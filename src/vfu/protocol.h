/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user wire format: QEMU's docs/interop/vfio-user.rst (protocol 0.x). Field names are the
 * spec's. Everything is in host byte order (the spec's rule for AF_UNIX); like the rest of
 * vhostd we build for little-endian hosts only. The VFIO structures the messages reuse keep the
 * layout of <linux/vfio.h>, whose constants we take from the kernel header.
 *
 * This header only describes bytes; every check on them is in msg.c.
 */
#ifndef VH_VFU_PROTOCOL_H
#define VH_VFU_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include <linux/vfio.h>

/* Commands (spec "Commands"). */
enum {
	VFIO_USER_VERSION = 1,
	VFIO_USER_DMA_MAP = 2,
	VFIO_USER_DMA_UNMAP = 3,
	VFIO_USER_DEVICE_GET_INFO = 4,
	VFIO_USER_DEVICE_GET_REGION_INFO = 5,
	VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
	VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
	VFIO_USER_DEVICE_SET_IRQS = 8,
	VFIO_USER_REGION_READ = 9,
	VFIO_USER_REGION_WRITE = 10,
	VFIO_USER_DMA_READ = 11,
	VFIO_USER_DMA_WRITE = 12,
	VFIO_USER_DEVICE_RESET = 13,
	VFIO_USER_DIRTY_PAGES = 14,
	VFIO_USER_REGION_WRITE_MULTI = 15,
	VFIO_USER_DEVICE_FEATURE = 16,
	VFIO_USER_MIG_DATA_READ = 17,
	VFIO_USER_MIG_DATA_WRITE = 18,
	VFIO_USER_MAX_COMMAND,
};

/* Header (spec "Header"): 16 bytes before every command and reply. */
struct vfio_user_header {
	uint16_t msg_id;
	uint16_t cmd;
	uint32_t msg_size; /* the whole message, header included */
	uint32_t flags;
	uint32_t error_no; /* replies with VFIO_USER_F_ERROR: an errno */
};
_Static_assert(sizeof(struct vfio_user_header) == 16, "vfio-user header is 16 bytes");

#define VFIO_USER_F_TYPE_MASK    0xfu
#define VFIO_USER_F_TYPE_COMMAND 0x0u
#define VFIO_USER_F_TYPE_REPLY   0x1u
#define VFIO_USER_F_NO_REPLY     0x10u
#define VFIO_USER_F_ERROR        0x20u

/* VERSION: major/minor, then optional NUL-terminated JSON capabilities. */
struct vfio_user_version {
	uint16_t major;
	uint16_t minor;
	/* char capabilities[]; */
};
#define VFIO_USER_MAJOR 0
#define VFIO_USER_MINOR 0

/* DMA_MAP (32 bytes) and DMA_UNMAP (24 bytes). */
struct vfio_user_dma_map {
	uint32_t argsz;
	uint32_t flags; /* VFIO_USER_F_DMA_REGION_READ | _WRITE */
	uint64_t offset;
	uint64_t addr;
	uint64_t size;
};
_Static_assert(sizeof(struct vfio_user_dma_map) == 32, "DMA_MAP payload is 32 bytes");
#define VFIO_USER_F_DMA_REGION_READ  (1u << 0)
#define VFIO_USER_F_DMA_REGION_WRITE (1u << 1)

struct vfio_user_dma_unmap {
	uint32_t argsz;
	uint32_t flags; /* VFIO_DMA_UNMAP_FLAG_ALL; the dirty bitmap flag is refused */
	uint64_t addr;
	uint64_t size;
};
_Static_assert(sizeof(struct vfio_user_dma_unmap) == 24, "DMA_UNMAP payload is 24 bytes");

/* DEVICE_GET_INFO: struct vfio_device_info's first 16 bytes. */
struct vfio_user_device_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
};
_Static_assert(sizeof(struct vfio_user_device_info) == 16, "device info is 16 bytes");

/* DEVICE_GET_REGION_INFO: struct vfio_region_info (32 bytes), capabilities after it. */
struct vfio_user_region_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t cap_offset;
	uint64_t size;
	uint64_t offset;
};
_Static_assert(sizeof(struct vfio_user_region_info) == 32, "region info is 32 bytes");

/* DEVICE_GET_IRQ_INFO: struct vfio_irq_info (16 bytes). */
struct vfio_user_irq_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
};
_Static_assert(sizeof(struct vfio_user_irq_info) == 16, "irq info is 16 bytes");

/* DEVICE_SET_IRQS: struct vfio_irq_set (20 bytes) + bools for DATA_BOOL; eventfds as SCM_RIGHTS. */
struct vfio_user_irq_set {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t start;
	uint32_t count;
};
_Static_assert(sizeof(struct vfio_user_irq_set) == 20, "irq set is 20 bytes");

/* REGION_READ / REGION_WRITE (16 bytes, then data). */
struct vfio_user_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
};
_Static_assert(sizeof(struct vfio_user_region_access) == 16, "region access is 16 bytes");

/* REGION_WRITE_MULTI: wr_cnt, then wr_cnt of these. */
#define VFIO_USER_MULTI_DATA 8
#define VFIO_USER_MULTI_MAX  200
struct vfio_user_write_one {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[VFIO_USER_MULTI_DATA];
};
_Static_assert(sizeof(struct vfio_user_write_one) == 24, "write multi entry is 24 bytes");

/* Region capability headers (struct vfio_info_cap_header) and the sparse mmap capability. */
struct vfio_user_cap_header {
	uint16_t id;
	uint16_t version;
	uint32_t next;
};
struct vfio_user_sparse_area {
	uint64_t offset;
	uint64_t size;
};
struct vfio_user_cap_sparse_mmap {
	struct vfio_user_cap_header header;
	uint32_t nr_areas;
	uint32_t reserved;
	/* struct vfio_user_sparse_area areas[]; */
};
_Static_assert(sizeof(struct vfio_user_cap_sparse_mmap) == 16, "sparse mmap cap is 16 bytes");

#endif
