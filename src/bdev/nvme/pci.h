/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PCI device access for the NVMe driver: BAR0 registers, DMA memory and address translation,
 * behind one interface with three back-ends:
 *
 * - VFIO (type1 IOMMU): container/group/device fds, BAR0 mmapped from the device fd, DMA
 *   memory mapped into the IOMMU with IOVA == process virtual address. Guest memory registered
 *   with vh_nvme_mem_register() is mapped the same way, so guest buffers reach the device with
 *   no copy.
 * - UIO (uio_pci_generic): BAR0 from sysfs resource0, bus mastering through the config file, DMA
 *   memory carved from hugetlbfs pages whose physical addresses come from /proc/self/pagemap
 *   (needs CAP_SYS_ADMIN). No IOMMU: the device sees physical addresses. Registered memory is
 *   used zero-copy only when it is backed by huge pages; anything else is bounced.
 * - MOCK: register accesses call function pointers (an in-process controller model for unit
 *   tests); DMA memory is ordinary heap memory with IOVA == virtual address.
 *
 * Rules:
 * - Opening, closing, DMA allocation and memory (un)registration run on the control thread.
 * - Register accessors and vh_nvme_dev_translate() may run on any thread: BAR0 is mapped for
 *   the device's lifetime and the registration table is read lock-free (a seqlock per slot).
 * - Memory must be unregistered only after every I/O touching it completed (the vhost layer
 *   quiesces its rings before it changes its memory table).
 */
#ifndef VH_BDEV_NVME_PCI_H
#define VH_BDEV_NVME_PCI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

enum vh_nvme_access {
	VH_NVME_ACCESS_VFIO = 0,
	VH_NVME_ACCESS_UIO,
	VH_NVME_ACCESS_MOCK,
};

/* Register access for the MOCK back-end: offsets into BAR0, 32-bit accesses only. */
struct vh_nvme_mock_ops {
	uint32_t (*read32)(void *ctx, uint32_t off);
	void (*write32)(void *ctx, uint32_t off, uint32_t val);
	/*
	 * Optional: translate a buffer for DMA (see vh_nvme_translate_fn). NULL means IOVA ==
	 * virtual address for everything.
	 */
	int64_t (*translate)(void *ctx, const void *vaddr, size_t len, uint64_t *iova);
};

struct vh_nvme_dev_opts {
	enum vh_nvme_access mode;
	/* Take the device even if the kernel nvme driver holds it (it is unbound first). */
	bool force;
	/* UIO: hugetlbfs mount for DMA memory; NULL means /dev/hugepages. */
	const char *hugepage_dir;
	/* MOCK only. */
	const struct vh_nvme_mock_ops *mock_ops;
	void *mock_ctx;
};

/* A DMA-able buffer: @vaddr for the CPU, @iova for the device; physically contiguous. */
struct vh_nvme_dma {
	void *vaddr;
	uint64_t iova;
	size_t size;
	/* Private to pci.c. */
	void *map_base;
	size_t map_len;
};

struct vh_nvme_uio_chunk;
struct vh_nvme_dma_rec;

struct vh_nvme_dev {
	enum vh_nvme_access mode;
	char bdf[16];           /* "0000:00:04.0", empty for MOCK */
	volatile uint8_t *bar0; /* NULL for MOCK */
	size_t bar0_len;
	const struct vh_nvme_mock_ops *mock;
	void *mock_ctx;
	/* VFIO */
	int container_fd;
	int group_fd;
	int device_fd;
	/* UIO */
	int config_fd;
	int resource_fd;
	/* VFIO and UIO: the sysfs device directory, flock()ed while we own the device */
	int lock_fd;
	char hugepage_dir[PATH_MAX];
	bool force;                       /* the open option, for vh_nvme_dev_resume() */
	bool suspended;                   /* vh_nvme_dev_suspend(): no fd, no lock, BAR0 a stub */
	struct vh_nvme_uio_chunk *chunks; /* huge pages carved for DMA memory */
	struct vh_nvme_dma_rec *dmas;     /* VFIO: live DMA buffers, re-mapped on resume */
	struct vh_nvme_dev *next;         /* all open devices (VFIO registration fan-out) */
};

/*
 * Barriers around device-visible memory.
 *
 * vh_nvme_io_wmb(): stores to host memory that the device will read (SQ entries, PRP lists, write
 * data) must be visible before the MMIO store to the doorbell that makes the device read them.
 * x86 keeps stores in program order even to uncached MMIO, so only the compiler must be stopped
 * (a volatile store alone does not order the plain stores before it). Arm needs a DSB.
 *
 * vh_nvme_dma_rmb(): after seeing a CQE's phase tag flip, the other CQE fields must be read after
 * the phase tag, or we could read a stale CID from the previous lap of the ring.
 */
static inline void
vh_nvme_io_wmb(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("" ::: "memory");
#elif defined(__aarch64__)
	__asm__ __volatile__("dsb st" ::: "memory");
#else
	__sync_synchronize();
#endif
}

static inline void
vh_nvme_dma_rmb(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("" ::: "memory");
#elif defined(__aarch64__)
	__asm__ __volatile__("dmb oshld" ::: "memory");
#else
	__sync_synchronize();
#endif
}

/*
 * MMIO accessors. 64-bit registers (CAP, ASQ, ACQ) are accessed as two 32-bit halves, low first:
 * §3.1 allows it and some controllers do not implement 8-byte MMIO. ASQ/ACQ are written only
 * while CC.EN=0 and CAP is constant, so the split is never observable.
 */
static inline uint32_t
vh_nvme_mmio_read32(const struct vh_nvme_dev *dev, uint32_t off)
{
	if (VH_UNLIKELY(dev->mock != NULL)) {
		return dev->mock->read32(dev->mock_ctx, off);
	}
	return *(const volatile uint32_t *)(dev->bar0 + off);
}

static inline void
vh_nvme_mmio_write32(const struct vh_nvme_dev *dev, uint32_t off, uint32_t val)
{
	if (VH_UNLIKELY(dev->mock != NULL)) {
		dev->mock->write32(dev->mock_ctx, off, val);
		return;
	}
	*(volatile uint32_t *)(dev->bar0 + off) = val;
}

static inline uint64_t
vh_nvme_mmio_read64(const struct vh_nvme_dev *dev, uint32_t off)
{
	uint64_t lo = vh_nvme_mmio_read32(dev, off);
	uint64_t hi = vh_nvme_mmio_read32(dev, off + 4);

	return lo | (hi << 32);
}

static inline void
vh_nvme_mmio_write64(const struct vh_nvme_dev *dev, uint32_t off, uint64_t val)
{
	vh_nvme_mmio_write32(dev, off, (uint32_t)val);
	vh_nvme_mmio_write32(dev, off + 4, (uint32_t)(val >> 32));
}

/*
 * Open the device at PCI address @bdf ("0000:00:04.0"; ignored for MOCK) with @opts.
 * VFIO/UIO: binds the device to vfio-pci or uio_pci_generic if needed, maps BAR0 and enables bus
 * mastering. The device is ours alone until vh_nvme_dev_close(): another process (a live
 * upgrade's candidate, a second vhostd) that opens it meanwhile gets -EBUSY before it touches
 * anything, so it cannot reset a controller we drive (uio_pci_generic does not stop it).
 * Returns 0 and *out, or -ENODEV (no such device), -EBUSY (bound to the kernel nvme driver and
 * !opts->force, or open in another process), -EACCES, -ENOTSUP (no IOMMU group), -EINVAL,
 * -ENOMEM or another -errno from the kernel. Control thread.
 */
int vh_nvme_dev_open(const char *bdf, const struct vh_nvme_dev_opts *opts,
                     struct vh_nvme_dev **out);

/* Unmap and close everything, free all DMA memory of @dev. NULL is a no-op. Control thread. */
void vh_nvme_dev_close(struct vh_nvme_dev *dev);

/*
 * Live upgrade: give the device up without forgetting it. vh_nvme_dev_suspend() closes every fd
 * (VFIO container/group/device, UIO resource/config) and then the lock, so another process may
 * open the device; BAR0 is replaced by an anonymous stub that reads all-ones (a stray access
 * sees "removed" instead of faulting). DMA memory stays allocated at the same addresses (VFIO:
 * unmapped from the IOMMU with the container; UIO: the huge pages, hence their physical
 * addresses, stay ours). The controller must be disabled first and nothing may touch it until
 * vh_nvme_dev_resume(), which takes the device again: lock, fds, BAR0 (at a new address), bus
 * mastering, and (VFIO) the IOMMU mappings of every DMA buffer and registered region, with the
 * same IOVAs as before. resume returns 0, -EBUSY (another process holds the device: retry
 * later; nothing is held), or an open error (see vh_nvme_dev_open); the device stays suspended
 * on failure. Both are no-ops for MOCK (suspended is tracked). Control thread.
 */
int vh_nvme_dev_suspend(struct vh_nvme_dev *dev);
int vh_nvme_dev_resume(struct vh_nvme_dev *dev);

/*
 * Allocate @size bytes (rounded up to 4 KiB) of zeroed, physically contiguous, 4 KiB-aligned DMA
 * memory. UIO limits @size to one huge page. Returns 0 or -ENOMEM/-EINVAL/-errno. Control thread.
 */
int vh_nvme_dma_alloc(struct vh_nvme_dev *dev, size_t size, struct vh_nvme_dma *dma);

/* Free a buffer from vh_nvme_dma_alloc(); zeroes *dma. Control thread. */
void vh_nvme_dma_free(struct vh_nvme_dev *dev, struct vh_nvme_dma *dma);

/*
 * Translate a buffer the driver did not allocate (a guest's) for DMA: on success *iova is the
 * device address of @vaddr and the return value is how many bytes from @vaddr (1..@len) are
 * contiguous for the device. -EFAULT means "not DMA-able here: bounce it".
 */
typedef int64_t (*vh_nvme_translate_fn)(void *ctx, const void *vaddr, size_t len, uint64_t *iova);

/* The device's translation (VFIO: registered regions; UIO: registered huge pages). Any thread. */
int64_t vh_nvme_dev_translate(void *dev, const void *vaddr, size_t len, uint64_t *iova);

/*
 * Guest memory hand-off: the vhost layer registers each memory region it maps (after mmap, before
 * the first request that uses it) and unregisters it after quiescing the rings that use it.
 * VFIO maps the region into every open container (IOVA == vaddr) and into containers opened
 * later; UIO records the physical address of each huge page when the region is hugepage-backed.
 * Returns 0, -ENOSPC (too many regions), -EINVAL or a VFIO -errno. Control thread.
 */
int vh_nvme_mem_register(void *vaddr, size_t len);
int vh_nvme_mem_unregister(void *vaddr, size_t len);

/*
 * Sysfs helpers (root under vh_nvme_sysfs_root, "/sys" unless a test changes it).
 * vh_nvme_pci_driver(): the bound driver's name into @buf, "" when unbound; 0 or -ENODEV.
 * vh_nvme_pci_bind(): bind @bdf to @driver through driver_override, unbinding it from its current
 * driver first; refuses (-EBUSY) to take it from "nvme" unless @force. 0 or -errno.
 */
extern const char *vh_nvme_sysfs_root;
int vh_nvme_pci_driver(const char *bdf, char *buf, size_t size);
int vh_nvme_pci_bind(const char *bdf, const char *driver, bool force);

/* Parse and normalise a PCI address ("00:04.0" or "0000:00:04.0"). 0 or -EINVAL. */
int vh_nvme_pci_parse_bdf(const char *in, char *out, size_t size);

#endif
