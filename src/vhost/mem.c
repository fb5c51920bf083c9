/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory table: regions mapped from the front-end's fds, and address translation.
 *
 * Threat model: the front-end chooses every region field and the fd; the guest chooses every
 * address it puts in a descriptor. Nothing is trusted: sizes and addresses are checked with
 * overflow-safe arithmetic, an fd smaller than the region is refused (touching past its end
 * would SIGBUS the whole daemon), and a translation succeeds only if every byte of the range is
 * mapped. A range may cross from one region into an address-adjacent one: it is split.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/log.h"
#include "vhost/vhost_internal.h"

int
vh_mem_region_map(struct vh_mem_region *r, const struct vhost_user_memory_region *wire, int fd)
{
	uint64_t end, map_size;
	struct statfs sfs;
	struct stat st;
	void *p;

	memset(r, 0, sizeof(*r));
	if (wire->memory_size == 0 ||
	    VH_ADD_OVERFLOW(wire->guest_phys_addr, wire->memory_size - 1, &end) ||
	    VH_ADD_OVERFLOW(wire->userspace_addr, wire->memory_size - 1, &end) ||
	    VH_ADD_OVERFLOW(wire->mmap_offset, wire->memory_size, &map_size)) {
		return -EINVAL;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		return -EBADF;
	}
	/* Regular files, memfds and hugetlbfs have a size; refuse to map past it. */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < map_size) {
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		return -EINVAL;
	}
	/*
	 * Map from offset 0: mmap_offset need not be aligned to the (huge) page size of the fd,
	 * so we map the prefix too and step over it.
	 */
	p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		return -errno;
	}
	r->gpa = wire->guest_phys_addr;
	r->size = wire->memory_size;
	r->qva = wire->userspace_addr;
	r->mmap_offset = wire->mmap_offset;
	r->map_base = p;
	r->map_size = map_size;
	r->hva = (uint8_t *)p + wire->mmap_offset;
	vh_bdev_mem_register(
	        r->hva, r->size,
	        fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC ? VH_BDEV_MEM_HUGE : 0);
	return 0;
}

void
vh_mem_region_unmap(struct vh_mem_region *r)
{
	if (r->map_base != NULL) {
		vh_bdev_mem_unregister(r->hva, r->size);
		munmap(r->map_base, r->map_size);
		r->map_base = NULL;
	}
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

int
vh_mem_gpa_to_iov(const struct vh_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov, int *n,
                  int max)
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
