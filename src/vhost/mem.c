/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory table: regions mapped from the front-end's fds, and address translation.
 *
 * Threat model: the front-end chooses every region field and the fd; the guest chooses every
 * address it puts in a descriptor. Nothing is trusted: sizes and addresses are checked with
 * overflow-safe arithmetic, an fd smaller than the region is refused (touching past its end
 * would SIGBUS), and a translation succeeds only if every byte of the range is mapped. A range
 * may cross from one region into an address-adjacent one: it is split.
 *
 * The front-end also keeps control of the memory after we mapped it:
 * - It can shrink the file (QEMU's memory-backend-file on /dev/shm or hugetlbfs cannot be
 *   sealed, so seals cannot be required). Every mapping is registered with core/sigbus.h: a
 *   SIGBUS in it costs the session, not the daemon (vh_mem_faulted, vh_vhost_close_faulted).
 * - Huge pages are taken on first touch: hugetlbfs mappings are made without MAP_NORESERVE,
 *   so the kernel reserves the pages at mmap time and a pool without free pages fails
 *   SET_MEM_TABLE/ADD_MEM_REG with -ENOMEM instead of faulting later.
 * - Only the region is mapped (its offset aligned down to the fd's page size), never the file
 *   from offset 0, and one session maps at most --max-guest-mem bytes: a 4 KiB region at a
 *   100 TiB offset costs 4 KiB of address space, not 100 TiB.
 * - A page fault on a file waits for its filesystem. On FUSE, NFS and the like, the peer (or a
 *   server) decides when it returns, and a reactor would hang with it. Only memory and local
 *   disk filesystems are accepted (fs_allowed, docs/security.md section 2.3).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/log.h"
#include "core/peerfd.h"
#include "core/sigbus.h"
#include "bdev/bdev.h"
#include "vhost/mem.h"
#include "vhost/vhost.h"

static uint64_t g_max_guest_mem = VH_VHOST_DEFAULT_MAX_GUEST_MEM;

void
vh_vhost_set_max_guest_mem(uint64_t bytes)
{
	g_max_guest_mem = bytes;
}

uint64_t
vh_vhost_max_guest_mem(void)
{
	return g_max_guest_mem;
}

/* Filesystems whose page faults cannot wait on another process (docs/security.md 2.3). */
static bool
fs_allowed(uint64_t type)
{
	switch (type) {
	case TMPFS_MAGIC:     /* memfd, /dev/shm, tmpfs mounts */
	case HUGETLBFS_MAGIC: /* MFD_HUGETLB memfds, hugetlbfs mounts */
	case RAMFS_MAGIC:
	case EXT4_SUPER_MAGIC: /* ext2, ext3, ext4 */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case F2FS_SUPER_MAGIC:
	case OVERLAYFS_SUPER_MAGIC: /* a writable file lives in the upper layer: never remote */
		return true;
	default:
		return false;
	}
}

/* The same list by the mount table's names, checked before we touch the file at all. */
static bool
fs_name_allowed(const char *type)
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

/* Checks on the fd: a regular file on an accepted filesystem, large enough. Sets *page. */
static int
check_fd(int fd, uint64_t end, uint64_t *page, unsigned *bdev_flags)
{
	struct statfs sfs;
	struct stat st;
	char type[64];
	int rc;

	/*
	 * Find the filesystem from the kernel's mount table first: fstat() and fstatfs() on a
	 * FUSE file are requests to its server, which may be the peer, and would block us.
	 */
	rc = vh_peerfd_fs_type(fd, type, sizeof(type));
	if (rc < 0) {
		/* -ENOENT: on no mount we know and not a memfd (a pipe, an eventfd, a socket). */
		return rc == -ENOENT ? -EINVAL : rc;
	}
	if (!fs_name_allowed(type)) {
		VH_LOG_RL(VH_LOG_ERROR, "vhost",
		          "guest memory on a '%s' filesystem refused: page faults on it could "
		          "wait on another process (accepted: memfd/tmpfs, hugetlbfs, ramfs, "
		          "ext2/3/4, xfs, btrfs, f2fs, overlayfs)",
		          type);
		return -EOPNOTSUPP;
	}
	if (fstat(fd, &st) < 0) {
		return -EBADF;
	}
	if (!S_ISREG(st.st_mode)) {
		return -EINVAL;
	}
	if (fstatfs(fd, &sfs) < 0) {
		return -errno;
	}
	if (!fs_allowed((uint64_t)sfs.f_type)) {
		VH_LOG_RL(VH_LOG_ERROR, "vhost",
		          "guest memory on filesystem type 0x%" PRIx64
		          " refused: page faults on it "
		          "could wait on another process (accepted: memfd/tmpfs, hugetlbfs, ramfs, "
		          "ext2/3/4, xfs, btrfs, f2fs, overlayfs)",
		          (uint64_t)sfs.f_type);
		return -EOPNOTSUPP;
	}
	/* Regular files, memfds and hugetlbfs have a size; refuse to map past it. */
	if ((uint64_t)st.st_size < end) {
		return -EINVAL;
	}
	*bdev_flags = 0;
	*page = (uint64_t)sysconf(_SC_PAGESIZE);
	if (sfs.f_type == HUGETLBFS_MAGIC) {
		/* hugetlbfs reports its page size as the block size (statfs and st_blksize). */
		*page = (uint64_t)st.st_blksize;
		*bdev_flags = VH_BDEV_MEM_HUGE;
	}
	if (!VH_IS_POW2(*page) || *page < 4096) {
		return -EINVAL;
	}
	return 0;
}

int
vh_mem_region_map(struct vh_mem_region *r, const struct vhost_user_memory_region *wire, int fd,
                  const void *owner)
{
	uint64_t end, page, map_off, map_size;
	unsigned bdev_flags;
	int area, rc;
	void *p;

	memset(r, 0, sizeof(*r));
	r->sigbus_area = -1;
	r->fd = -1;
	if (wire->memory_size == 0 ||
	    VH_ADD_OVERFLOW(wire->guest_phys_addr, wire->memory_size - 1, &end) ||
	    VH_ADD_OVERFLOW(wire->userspace_addr, wire->memory_size - 1, &end) ||
	    VH_ADD_OVERFLOW(wire->mmap_offset, wire->memory_size, &end)) {
		return -EINVAL;
	}
	rc = check_fd(fd, end, &page, &bdev_flags);
	if (rc < 0) {
		return rc;
	}
	/*
	 * Map the region only: from its offset aligned down to the page size (mmap needs that;
	 * mmap_offset itself need not be aligned) to its end rounded up (so munmap of a huge-page
	 * mapping takes whole pages).
	 */
	map_off = wire->mmap_offset & ~(page - 1);
	if (VH_ADD_OVERFLOW(end - map_off, page - 1, &map_size)) {
		return -EINVAL;
	}
	map_size &= ~(page - 1);
	if (map_size > g_max_guest_mem) {
		VH_LOG_RL(VH_LOG_ERROR, "vhost",
		          "guest memory region of %" PRIu64
		          " bytes refused: over the limit of %" PRIu64
		          " per session (--max-guest-mem)",
		          map_size, g_max_guest_mem);
		return -E2BIG;
	}
	/*
	 * MAP_NORESERVE on hugetlbfs would let the mapping succeed with no free huge page and
	 * SIGBUS on first touch; without it the kernel reserves the pages now (pages the file
	 * already has need no reservation) or fails with ENOMEM.
	 */
	p = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
	         MAP_SHARED | (bdev_flags & VH_BDEV_MEM_HUGE ? 0 : MAP_NORESERVE), fd,
	         (off_t)map_off);
	if (p == MAP_FAILED) {
		rc = -errno;
		if (rc == -ENOMEM && (bdev_flags & VH_BDEV_MEM_HUGE)) {
			VH_LOG_RL(VH_LOG_ERROR, "vhost",
			          "guest memory region of %" PRIu64
			          " bytes refused: not enough free "
			          "huge pages of %" PRIu64 " KiB",
			          map_size, page >> 10);
		}
		return rc;
	}
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (r->fd < 0) {
		rc = -errno;
		munmap(p, map_size);
		return rc;
	}
	area = vh_sigbus_register(p, map_size, page);
	if (area < 0) {
		close(r->fd);
		r->fd = -1;
		VH_LOG_RL(VH_LOG_ERROR, "vhost",
		          "guest memory region refused: %u guest mappings exist already",
		          VH_SIGBUS_MAX_AREAS);
		munmap(p, map_size);
		return area;
	}
	r->gpa = wire->guest_phys_addr;
	r->size = wire->memory_size;
	r->qva = wire->userspace_addr;
	r->mmap_offset = wire->mmap_offset;
	r->map_base = p;
	r->map_size = map_size;
	r->hva = (uint8_t *)p + (wire->mmap_offset - map_off);
	r->sigbus_area = area;
	/* The owner (the session) bounds how much of the shared fixed-buffer table it takes. */
	vh_bdev_mem_register_owned(owner, r->hva, r->size, bdev_flags);
	return 0;
}

void
vh_mem_region_unmap(struct vh_mem_region *r)
{
	if (r->map_base != NULL) {
		vh_bdev_mem_unregister(r->hva, r->size);
		/* Before munmap: the handler must not map over whatever takes the range next. */
		vh_sigbus_unregister(r->sigbus_area);
		r->sigbus_area = -1;
		munmap(r->map_base, r->map_size);
		r->map_base = NULL;
		close(r->fd);
		r->fd = -1;
	}
}

bool
vh_mem_faulted(const struct vh_mem *m)
{
	for (uint32_t i = 0; m != NULL && i < m->nregions; i++) {
		if (m->regions[i].map_base != NULL &&
		    vh_sigbus_faulted(m->regions[i].sigbus_area)) {
			return true;
		}
	}
	return false;
}

int
vh_mem_check_add(const struct vh_mem *m, const struct vh_mem_region *r)
{
	uint64_t total = r->map_size;

	if (m == NULL) {
		return 0;
	}
	if (vh_mem_check_overlap(m, r) < 0) {
		return -EINVAL;
	}
	for (uint32_t i = 0; i < m->nregions && total <= g_max_guest_mem; i++) {
		if (VH_ADD_OVERFLOW(total, m->regions[i].map_size, &total)) {
			total = UINT64_MAX;
		}
	}
	if (total > g_max_guest_mem) {
		VH_LOG_RL(VH_LOG_ERROR, "vhost",
		          "guest memory region refused: the session would map %" PRIu64
		          " bytes, over the limit of %" PRIu64 " (--max-guest-mem)",
		          total, g_max_guest_mem);
		return -E2BIG;
	}
	return 0;
}

void
vh_mem_unmap_all(struct vh_mem *m)
{
	for (uint32_t i = 0; i < m->nregions; i++) {
		vh_mem_region_unmap(&m->regions[i]);
	}
	m->nregions = 0;
}

static bool
ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Inclusive ends; the regions were checked not to wrap. */
	return a <= b + blen - 1 && b <= a + alen - 1;
}

int
vh_mem_check_overlap(const struct vh_mem *m, const struct vh_mem_region *r)
{
	for (uint32_t i = 0; i < m->nregions; i++) {
		const struct vh_mem_region *o = &m->regions[i];

		if (ranges_overlap(o->gpa, o->size, r->gpa, r->size) ||
		    ranges_overlap(o->qva, o->size, r->qva, r->size)) {
			return -EINVAL;
		}
	}
	return 0;
}

static const struct vh_mem_region *
find_gpa(const struct vh_mem *m, uint64_t gpa)
{
	for (uint32_t i = 0; i < m->nregions; i++) {
		const struct vh_mem_region *r = &m->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			return r;
		}
	}
	return NULL;
}

/* vh_mem_gpa_to_iov(), and the index of the region holding @gpa into *@first if there is one. */
static int
gpa_to_iov(const struct vh_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov, int *n, int max,
           uint32_t *first)
{
	uint64_t end;

	if (VH_ADD_OVERFLOW(gpa, len, &end)) {
		return -EFAULT;
	}
	while (len > 0) {
		const struct vh_mem_region *r = find_gpa(m, gpa);
		uint64_t off, chunk;

		if (r == NULL) {
			return -EFAULT;
		}
		if (first != NULL) {
			*first = (uint32_t)(r - m->regions);
			first = NULL;
		}
		if (*n >= max) {
			return -ENOBUFS;
		}
		off = gpa - r->gpa;
		chunk = VH_MIN(len, r->size - off);
		iov[*n].iov_base = r->hva + off;
		iov[*n].iov_len = chunk;
		(*n)++;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int
vh_mem_gpa_to_iov(const struct vh_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov, int *n,
                  int max)
{
	return gpa_to_iov(m, gpa, len, iov, n, max, NULL);
}

const struct vh_mem_region vh_mem_no_region; /* size 0: holds no address */

int
vh_mem_gpa_to_iov_search(const struct vh_mem *m, uint32_t *hint_idx, uint64_t gpa, uint64_t len,
                         struct iovec *iov, int *n, int max)
{
	return gpa_to_iov(m, gpa, len, iov, n, max, hint_idx);
}

void *
vh_mem_gpa_to_hva(const struct vh_mem *m, uint64_t gpa, uint64_t len)
{
	const struct vh_mem_region *r = find_gpa(m, gpa);
	uint64_t off;

	if (r == NULL) {
		return NULL;
	}
	off = gpa - r->gpa;
	if (len > r->size - off) {
		return NULL;
	}
	return r->hva + off;
}

void *
vh_mem_qva_to_hva(const struct vh_mem *m, uint64_t qva, uint64_t len)
{
	for (uint32_t i = 0; i < m->nregions; i++) {
		const struct vh_mem_region *r = &m->regions[i];

		if (qva >= r->qva && qva - r->qva < r->size) {
			uint64_t off = qva - r->qva;

			if (len > r->size - off) {
				return NULL;
			}
			return r->hva + off;
		}
	}
	return NULL;
}

int
vh_mem_copy_from_guest(const struct vh_mem *m, void *dst, uint64_t gpa, uint64_t len)
{
	uint8_t *d = dst;
	uint64_t end;

	if (VH_ADD_OVERFLOW(gpa, len, &end)) {
		return -EFAULT;
	}
	while (len > 0) {
		const struct vh_mem_region *r = find_gpa(m, gpa);
		uint64_t off, chunk;

		if (r == NULL) {
			return -EFAULT;
		}
		off = gpa - r->gpa;
		chunk = VH_MIN(len, r->size - off);
		memcpy(d, r->hva + off, chunk);
		d += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}
