/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user DMA regions: the client's memory (guest RAM) that the device may read and write,
 * announced with DMA_MAP (with an fd we mmap, or without one: not accessible to us) and
 * withdrawn with DMA_UNMAP, and the translation of device (IOVA = guest-physical) addresses.
 *
 * Rules:
 * - A table belongs to one session. vfu_dma_map/unmap run on the control thread, and only while
 *   no reactor translates with the table (the controller quiesces its queues around a change).
 * - vfu_dma_ptr() may run on any thread while the table is not being changed.
 * - Every mapping is registered with core/sigbus.h and announced to the bdev layer
 *   (vh_bdev_mem_register_owned) until it is unmapped.
 */
#ifndef VH_VFU_DMA_H
#define VH_VFU_DMA_H

#include <stdbool.h>
#include <stdint.h>

#include "vfu/protocol.h"

/* Regions one session may have: QEMU maps a handful (RAM below and above 4 GiB, ROMs). */
#define VFU_DMA_MAX_REGIONS 64

#define VFU_DMA_READ  VFIO_USER_F_DMA_REGION_READ  /* the device may read (guest → device) */
#define VFU_DMA_WRITE VFIO_USER_F_DMA_REGION_WRITE /* the device may write (device → guest) */

struct vfu_dma_region {
	uint64_t addr;  /* IOVA of the first byte */
	uint64_t size;  /* bytes, > 0 */
	uint8_t *va;    /* our mapping of addr, or NULL when the client gave no fd */
	void *map_base; /* what mmap returned (page aligned), or NULL */
	uint64_t map_len;
	uint32_t prot;   /* VFU_DMA_READ | VFU_DMA_WRITE */
	int sigbus;      /* core/sigbus.h handle, or -1 */
	int fd;          /* our duplicate of the client's fd (a live upgrade hands it on), or -1 */
	uint64_t offset; /* where addr lies in that file */
};

struct vfu_dma {
	unsigned n;                                   /* regions in use */
	struct vfu_dma_region r[VFU_DMA_MAX_REGIONS]; /* sorted by addr, disjoint */
	uint64_t mapped;                              /* bytes mapped (sum of map_len) */
	uint64_t max_mapped;                          /* limit on mapped */
	const void *owner;                            /* for vh_bdev_mem_register_owned */
	const char *log_prefix;                       /* for messages */
};

/* Start empty. @owner identifies the session to the bdev layer; @max_mapped bounds mappings. */
void vfu_dma_init(struct vfu_dma *d, const void *owner, uint64_t max_mapped, const char *prefix);

/*
 * DMA_MAP: add [m->addr, m->addr + m->size). With @fd >= 0 the fd (the caller keeps and closes
 * it; the region keeps a duplicate until it is unmapped, for a live upgrade) is checked (a regular
 * file on a memory or local filesystem, at least offset + size long) and mapped with the protection
 * the flags allow. Returns 0, -EINVAL (bad fields, bad fd), -EEXIST (overlaps a region), -ENOSPC
 * (too many regions), -E2BIG (over max_mapped), -EOPNOTSUPP (a filesystem whose page faults could
 * wait on another process), or another -errno from mmap. Control thread.
 */
int vfu_dma_map(struct vfu_dma *d, const struct vfio_user_dma_map *m, int fd);

/*
 * DMA_UNMAP: remove the region that is exactly [addr, addr + size). Returns 0 or -ENOENT.
 * Control thread, with no translation in use.
 */
int vfu_dma_unmap(struct vfu_dma *d, uint64_t addr, uint64_t size);

/* Remove every region. Control thread. */
void vfu_dma_unmap_all(struct vfu_dma *d);

/*
 * Our address for [addr, addr + len), which must lie inside one mapped region that allows
 * @prot (VFU_DMA_READ for data the device reads, VFU_DMA_WRITE for data it writes). Returns
 * NULL otherwise (unmapped, not mappable, crosses a region end, wrong permission, len 0). Any
 * thread (see the rules above).
 */
void *vfu_dma_ptr(const struct vfu_dma *d, uint64_t addr, uint64_t len, uint32_t prot);

/*
 * The longest prefix of [addr, addr + len) that one region covers with @prot: returns our
 * address and sets *got (1..len), or NULL. For buffers that may cross into an adjacent region.
 */
void *vfu_dma_ptr_prefix(const struct vfu_dma *d, uint64_t addr, uint64_t len, uint32_t prot,
                         uint64_t *got);

/* True if a SIGBUS replaced any mapping (the session must be closed). Any thread. */
bool vfu_dma_faulted(const struct vfu_dma *d);

#endif
