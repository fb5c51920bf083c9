/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user DMA regions and address translation.
 *
 * Threat model: the client (QEMU, or anything that can connect to the socket) chooses every
 * field of DMA_MAP/DMA_UNMAP and the fd; the guest chooses every address it puts in a queue
 * entry, PRP or SGL. Sizes and addresses are checked with overflow-safe arithmetic; regions may
 * not overlap; an fd shorter than offset + size is refused (touching past its end would
 * SIGBUS); only memory and local-disk filesystems are accepted (a page fault on FUSE or NFS
 * waits for a server the peer may be); a translation succeeds only if every byte lies in one
 * mapped region with the needed permission (a write into a read-only mapping would SIGSEGV).
 * The client keeps control of the file after we mapped it and can truncate it: every mapping
 * is registered with core/sigbus.h, and a fault costs the session, not the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bdev/bdev.h"
#include "core/log.h"
#include "core/peerfd.h"
#include "core/sigbus.h"
#include "vfu/dma.h"

void
vfu_dma_init(struct vfu_dma *d, const void *owner, uint64_t max_mapped, const char *prefix)
{
	memset(d, 0, sizeof(*d));
	d->owner = owner;
	d->max_mapped = max_mapped;
	d->log_prefix = prefix != NULL ? prefix : "vfu";
}

/* Filesystems whose page faults never wait on another process (docs/security.md). */
static bool
fs_name_ok(const char *type)
{
	static const char *const ok[] = {"memfd", "tmpfs", "hugetlbfs", "ramfs", "ext2",   "ext3",
	                                 "ext4",  "xfs",   "btrfs",     "f2fs",  "overlay"};

	for (size_t i = 0; i < VH_ARRAY_SIZE(ok); i++) {
		if (strcmp(type, ok[i]) == 0) {
			return true;
		}
	}
	return false;
}

static bool
fs_magic_ok(uint64_t magic)
{
	switch (magic) {
	case TMPFS_MAGIC:
	case HUGETLBFS_MAGIC:
	case RAMFS_MAGIC:
	case EXT4_SUPER_MAGIC:
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case F2FS_SUPER_MAGIC:
	case OVERLAYFS_SUPER_MAGIC:
		return true;
	default:
		return false;
	}
}

/* The fd: a regular file on an accepted filesystem, at least @end bytes. Sets *page. */
static int
check_fd(struct vfu_dma *d, int fd, uint64_t end, uint64_t *page, unsigned *flags)
{
	struct statfs sfs;
	struct stat st;
	char type[64];
	int rc;

	/* The mount table first: fstat() on a FUSE file would be a request to its server. */
	rc = vh_peerfd_fs_type(fd, type, sizeof(type));
	if (rc < 0) {
		return rc == -ENOENT ? -EINVAL : rc;
	}
	if (!fs_name_ok(type)) {
		VH_LOG_RL(VH_LOG_ERROR, d->log_prefix,
		          "DMA region on a '%s' filesystem refused: page faults on it could wait "
		          "on another process",
		          type);
		return -EOPNOTSUPP;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		return -EINVAL;
	}
	if (fstatfs(fd, &sfs) < 0) {
		return -errno;
	}
	if (!fs_magic_ok((uint64_t)sfs.f_type)) {
		return -EOPNOTSUPP;
	}
	if ((uint64_t)st.st_size < end) {
		VH_LOG_RL(VH_LOG_ERROR, d->log_prefix,
		          "DMA region ends at file offset %" PRIu64 " but the file has %" PRIu64
		          " bytes",
		          end, (uint64_t)st.st_size);
		return -EINVAL;
	}
	*flags = 0;
	*page = (uint64_t)sysconf(_SC_PAGESIZE);
	if (sfs.f_type == HUGETLBFS_MAGIC) {
		*page = (uint64_t)st.st_blksize;
		*flags = VH_BDEV_MEM_HUGE;
	}
	return VH_IS_POW2(*page) && *page >= 4096 ? 0 : -EINVAL;
}

static int
map_fd(struct vfu_dma *d, struct vfu_dma_region *r, const struct vfio_user_dma_map *m, int fd)
{
	uint64_t end, page, map_off, map_len;
	unsigned flags;
	int prot = 0, rc;
	void *p;

	if (VH_ADD_OVERFLOW(m->offset, m->size, &end)) {
		return -EINVAL;
	}
	rc = check_fd(d, fd, end, &page, &flags);
	if (rc < 0) {
		return rc;
	}
	/* Map the region only, from its offset rounded down to a page to its end rounded up. */
	map_off = m->offset & ~(page - 1);
	if (VH_ADD_OVERFLOW(end - map_off, page - 1, &map_len)) {
		return -EINVAL;
	}
	map_len &= ~(page - 1);
	if (map_len > d->max_mapped || d->mapped + map_len > d->max_mapped) {
		VH_LOG_RL(VH_LOG_ERROR, d->log_prefix,
		          "DMA region of %" PRIu64 " bytes refused: over the limit of %" PRIu64
		          " per session (--max-guest-mem)",
		          map_len, d->max_mapped);
		return -E2BIG;
	}
	prot |= (m->flags & VFU_DMA_READ) ? PROT_READ : 0;
	prot |= (m->flags & VFU_DMA_WRITE) ? PROT_WRITE : 0;
	/*
	 * Without MAP_NORESERVE on hugetlbfs the kernel reserves the pages now, so an exhausted
	 * pool fails the map instead of SIGBUSing on first touch.
	 */
	p = mmap(NULL, map_len, prot, MAP_SHARED | ((flags & VH_BDEV_MEM_HUGE) ? 0 : MAP_NORESERVE),
	         fd, (off_t)map_off);
	if (p == MAP_FAILED) {
		return -errno;
	}
	/* Kept for a live upgrade: the new process maps the same file (app/upgrade.c). */
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (r->fd < 0) {
		rc = -errno;
		munmap(p, map_len);
		return rc;
	}
	r->offset = m->offset;
	r->sigbus = vh_sigbus_register(p, map_len, page);
	if (r->sigbus < 0) {
		rc = r->sigbus;
		close(r->fd);
		r->fd = -1;
		munmap(p, map_len);
		return rc;
	}
	r->map_base = p;
	r->map_len = map_len;
	r->va = (uint8_t *)p + (m->offset - map_off);
	d->mapped += map_len;
	/* I/O into this memory may go to back-ends that register or pin it (io_uring, NVMe). */
	if ((prot & PROT_WRITE) && (prot & PROT_READ)) {
		vh_bdev_mem_register_owned(d->owner, r->va, m->size, flags);
	}
	return 0;
}

int
vfu_dma_map(struct vfu_dma *d, const struct vfio_user_dma_map *m, int fd)
{
	struct vfu_dma_region *r;
	uint64_t last;
	unsigned i;
	int rc;

	if (m->size == 0 || VH_ADD_OVERFLOW(m->addr, m->size - 1, &last) ||
	    (m->flags & ~(uint32_t)(VFU_DMA_READ | VFU_DMA_WRITE)) != 0 ||
	    (m->flags & (VFU_DMA_READ | VFU_DMA_WRITE)) == 0) {
		return -EINVAL;
	}
	/* Position in the sorted array; the neighbours must not overlap. */
	for (i = 0; i < d->n && d->r[i].addr < m->addr; i++) {
	}
	if (i > 0 && d->r[i - 1].addr + (d->r[i - 1].size - 1) >= m->addr) {
		return -EEXIST;
	}
	if (i < d->n && d->r[i].addr <= last) {
		return -EEXIST;
	}
	if (d->n == VFU_DMA_MAX_REGIONS) {
		return -ENOSPC;
	}
	memmove(&d->r[i + 1], &d->r[i], (d->n - i) * sizeof(d->r[0]));
	r = &d->r[i];
	memset(r, 0, sizeof(*r));
	r->sigbus = -1;
	r->fd = -1;
	r->addr = m->addr;
	r->size = m->size;
	r->prot = m->flags;
	if (fd >= 0) {
		rc = map_fd(d, r, m, fd);
		if (rc < 0) {
			memmove(&d->r[i], &d->r[i + 1], (d->n - i) * sizeof(d->r[0]));
			return rc;
		}
	}
	d->n++;
	return 0;
}

static void
release(struct vfu_dma *d, struct vfu_dma_region *r)
{
	if (r->map_base == NULL) {
		return;
	}
	if ((r->prot & VFU_DMA_READ) && (r->prot & VFU_DMA_WRITE)) {
		vh_bdev_mem_unregister(r->va, r->size);
	}
	/* Unregister before munmap: afterwards the range may belong to someone else. */
	vh_sigbus_unregister(r->sigbus);
	munmap(r->map_base, r->map_len);
	d->mapped -= r->map_len;
	r->map_base = NULL;
	r->va = NULL;
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
}

int
vfu_dma_unmap(struct vfu_dma *d, uint64_t addr, uint64_t size)
{
	for (unsigned i = 0; i < d->n; i++) {
		if (d->r[i].addr == addr && d->r[i].size == size) {
			release(d, &d->r[i]);
			memmove(&d->r[i], &d->r[i + 1], (d->n - i - 1) * sizeof(d->r[0]));
			d->n--;
			return 0;
		}
	}
	return -ENOENT;
}

void
vfu_dma_unmap_all(struct vfu_dma *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		release(d, &d->r[i]);
	}
	d->n = 0;
}

/* The region containing @addr, or NULL (binary search: the regions are sorted and disjoint). */
static const struct vfu_dma_region *
find(const struct vfu_dma *d, uint64_t addr)
{
	unsigned lo = 0, hi = d->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct vfu_dma_region *r = &d->r[mid];

		if (addr < r->addr) {
			hi = mid;
		} else if (addr - r->addr >= r->size) {
			lo = mid + 1;
		} else {
			return r;
		}
	}
	return NULL;
}

void *
vfu_dma_ptr_prefix(const struct vfu_dma *d, uint64_t addr, uint64_t len, uint32_t prot,
                   uint64_t *got)
{
	const struct vfu_dma_region *r;
	uint64_t off;

	if (len == 0) {
		return NULL;
	}
	r = find(d, addr);
	if (r == NULL || r->va == NULL || (r->prot & prot) != prot) {
		return NULL;
	}
	off = addr - r->addr;
	*got = VH_MIN(len, r->size - off);
	return r->va + off;
}

void *
vfu_dma_ptr(const struct vfu_dma *d, uint64_t addr, uint64_t len, uint32_t prot)
{
	uint64_t got;
	void *p = vfu_dma_ptr_prefix(d, addr, len, prot, &got);

	return p != NULL && got == len ? p : NULL;
}

bool
vfu_dma_faulted(const struct vfu_dma *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		if (d->r[i].sigbus >= 0 && vh_sigbus_faulted(d->r[i].sigbus)) {
			return true;
		}
	}
	return false;
}
