/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM for the test front-end: one shareable file (memfd or hugetlbfs), mapped once here,
 * described to the back-end as regions. GPA == file offset, so a buffer that straddles two
 * GPA-adjacent regions is contiguous for us but not for the back-end, which maps each region
 * on its own: exactly the case QEMU's pc layout produces.
 *
 * For the virtio-user personalities the same memory can instead use GPA == our virtual address
 * (gpa_is_va) and a file per region (fd_per_region), which is how SPDK and DPDK describe their
 * hugepages.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend.h"

#define QEMU_PC_LOW_END  0xa0000ull
#define QEMU_PC_HIGH_GPA 0xc0000ull

static uint64_t
round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static uint64_t
backing_page(const struct vh_fe_mem_opts *opts)
{
	return opts->hugetlbfs_dir ? 2ull << 20 : (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A new shareable file of len bytes: a memfd, or an unlinked file on hugetlbfs. */
static int
open_backing(const struct vh_fe_mem_opts *opts, uint64_t len)
{
	char path[PATH_MAX];
	int fd, rc;

	if (!opts->hugetlbfs_dir) {
		fd = memfd_create("vh-fe-guest-ram", MFD_CLOEXEC);
	} else {
		/* The back-end needs an fd it can mmap: an unlinked hugetlbfs file gives us that.
		 */
		snprintf(path, sizeof(path), "%s/vh-fe-XXXXXX", opts->hugetlbfs_dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0) {
			unlink(path);
		}
	}
	if (fd < 0) {
		return -errno;
	}
	if (ftruncate(fd, (off_t)len) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Regions as offsets into the mapping (gpa_base is added once the mapping exists). */
static int
layout_regions(struct vh_fe_mem *m, const struct vh_fe_mem_opts *opts, uint64_t main_size)
{
	unsigned int i, n = opts->nregions ? opts->nregions : 1;
	uint64_t each, off = 0;

	if (opts->layout == VH_FE_MEM_QEMU_PC) {
		if (main_size <= QEMU_PC_HIGH_GPA || opts->fd_per_region) {
			return -EINVAL;
		}
		m->regions[0] = (struct vh_fe_region){.size = QEMU_PC_LOW_END, .plugged = true};
		m->regions[1] = (struct vh_fe_region){.gpa = QEMU_PC_HIGH_GPA,
		                                      .size = main_size - QEMU_PC_HIGH_GPA,
		                                      .plugged = true};
		m->nregions = 2;
		return 0;
	}
	if (n >= VH_FE_MAX_REGIONS) {
		return -EINVAL;
	}
	each = round_up(main_size / n, m->page);
	for (i = 0; i < n; i++) {
		uint64_t sz = i == n - 1 ? main_size - off : each;

		if (sz == 0 || off + sz > main_size) {
			return -EINVAL;
		}
		m->regions[i] = (struct vh_fe_region){.gpa = off, .size = sz, .plugged = true};
		off += sz;
	}
	m->nregions = n;
	return 0;
}

/* One file for everything: region i is at file offset == its offset in the mapping. */
static int
map_single(struct vh_fe_mem *m, const struct vh_fe_mem_opts *opts)
{
	unsigned int i;
	int fd;

	fd = open_backing(opts, m->size);
	if (fd < 0) {
		return fd;
	}
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		close(fd);
		return -errno;
	}
	m->fd = fd;
	for (i = 0; i < m->nregions; i++) {
		m->regions[i].fd = fd;
		m->regions[i].offset = m->regions[i].gpa;
	}
	return 0;
}

/*
 * A file per region, mapped back to back into one reserved range (aligned to the backing's
 * page, as MAP_FIXED of hugetlbfs needs), so buffers may still straddle two regions.
 */
static int
map_per_region(struct vh_fe_mem *m, const struct vh_fe_mem_opts *opts)
{
	unsigned int i;
	void *p;

	m->resv_len = m->size + m->page;
	m->resv = mmap(NULL, m->resv_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	               -1, 0);
	if (m->resv == MAP_FAILED) {
		m->resv = NULL;
		return -errno;
	}
	m->base = (uint8_t *)(uintptr_t)round_up((uint64_t)(uintptr_t)m->resv, m->page);
	for (i = 0; i < m->nregions; i++) {
		struct vh_fe_region *r = &m->regions[i];
		int fd = open_backing(opts, r->size);

		if (fd < 0) {
			return fd;
		}
		r->fd = fd;
		r->offset = 0;
		p = mmap(m->base + r->gpa, r->size, PROT_READ | PROT_WRITE,
		         MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0);
		if (p == MAP_FAILED) {
			return -errno;
		}
	}
	m->fd = m->regions[0].fd;
	return 0;
}

int
vh_fe_mem_create(struct vh_fe_mem **out, const struct vh_fe_mem_opts *opts)
{
	struct vh_fe_mem *m;
	uint64_t main_size, hp;
	unsigned int i;
	int rc;

	m = calloc(1, sizeof(*m));
	if (!m) {
		return -ENOMEM;
	}
	m->fd = -1;
	for (i = 0; i < VH_FE_MAX_REGIONS; i++) {
		m->regions[i].fd = -1;
	}
	m->page = backing_page(opts);
	m->fd_per_region = opts->fd_per_region;
	main_size = round_up(opts->size ? opts->size : 64ull << 20, m->page);
	hp = round_up(opts->hotplug_size, m->page);
	m->size = main_size + hp;
	rc = layout_regions(m, opts, main_size);
	if (rc < 0) {
		goto out_free;
	}
	if (hp) {
		m->regions[m->nregions++] =
		        (struct vh_fe_region){.gpa = main_size, .size = hp, .plugged = false};
	}
	rc = opts->fd_per_region ? map_per_region(m, opts) : map_single(m, opts);
	if (rc < 0) {
		goto out_free;
	}
	m->gpa_base = opts->gpa_is_va ? (uint64_t)(uintptr_t)m->base : 0;
	for (i = 0; i < m->nregions; i++) {
		m->regions[i].gpa += m->gpa_base;
		m->regions[i].bump = m->regions[i].gpa;
	}
	*out = m;
	return 0;

out_free:
	vh_fe_mem_destroy(m);
	return rc;
}

void
vh_fe_mem_destroy(struct vh_fe_mem *mem)
{
	unsigned int i;

	if (!mem) {
		return;
	}
	if (mem->resv) {
		munmap(mem->resv, mem->resv_len);
	} else if (mem->base) {
		munmap(mem->base, mem->size);
	}
	if (mem->fd_per_region) {
		for (i = 0; i < VH_FE_MAX_REGIONS; i++) {
			if (mem->regions[i].fd >= 0) {
				close(mem->regions[i].fd);
			}
		}
	} else if (mem->fd >= 0) {
		close(mem->fd);
	}
	free(mem);
}

void *
vh_fe_gpa_to_ptr(const struct vh_fe_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t off = gpa - mem->gpa_base;

	if (gpa < mem->gpa_base || off > mem->size || len > mem->size - off) {
		return NULL;
	}
	return mem->base + off;
}

uint64_t
vh_fe_ptr_to_gpa(const struct vh_fe_mem *mem, const void *p)
{
	const uint8_t *b = p;

	if (b < mem->base || b >= mem->base + mem->size) {
		return UINT64_MAX;
	}
	return mem->gpa_base + (uint64_t)(b - mem->base);
}

uint64_t
vh_fe_mem_alloc_in(struct vh_fe_mem *mem, unsigned int region, uint64_t len, uint64_t align)
{
	struct vh_fe_region *r;
	uint64_t start;

	if (region >= mem->nregions || len == 0) {
		return UINT64_MAX;
	}
	if (align == 0) {
		align = 8;
	}
	r = &mem->regions[region];
	start = round_up(r->bump, align);
	if (start < r->bump || start > r->gpa + r->size || len > r->gpa + r->size - start) {
		return UINT64_MAX;
	}
	r->bump = start + len;
	return start;
}

uint64_t
vh_fe_mem_alloc(struct vh_fe_mem *mem, uint64_t len, uint64_t align)
{
	unsigned int i;
	uint64_t gpa;

	for (i = 0; i < mem->nregions; i++) {
		if (!mem->regions[i].plugged) {
			continue;
		}
		gpa = vh_fe_mem_alloc_in(mem, i, len, align);
		if (gpa != UINT64_MAX) {
			return gpa;
		}
	}
	return UINT64_MAX;
}

uint64_t
vh_fe_mem_alloc_across(struct vh_fe_mem *mem, unsigned int region, uint64_t len, uint64_t before)
{
	struct vh_fe_region *a, *b;
	uint64_t start;

	if (region + 1 >= mem->nregions || before == 0 || before >= len) {
		return UINT64_MAX;
	}
	a = &mem->regions[region];
	b = &mem->regions[region + 1];
	if (a->gpa + a->size != b->gpa || before > a->size || len - before > b->size) {
		return UINT64_MAX;
	}
	start = b->gpa - before;
	if (a->bump > start || b->bump != b->gpa) {
		return UINT64_MAX;
	}
	a->bump = b->gpa;
	b->bump = b->gpa + (len - before);
	return start;
}

void
vh_fe_mem_reset_alloc(struct vh_fe_mem *mem)
{
	unsigned int i;

	for (i = 0; i < mem->nregions; i++) {
		mem->regions[i].bump = mem->regions[i].gpa;
	}
}

int
vh_fe_slab_init(struct vh_fe_slab *s, struct vh_fe_mem *mem, uint32_t obj_size, uint32_t count,
                uint32_t align)
{
	uint32_t i;

	if (align == 0) {
		align = 64;
	}
	memset(s, 0, sizeof(*s));
	s->mem = mem;
	s->obj_size = (uint32_t)round_up(obj_size, align);
	s->count = count;
	s->base_gpa = vh_fe_mem_alloc(mem, (uint64_t)s->obj_size * count, align);
	if (s->base_gpa == UINT64_MAX) {
		return -ENOMEM;
	}
	s->free = calloc(count, sizeof(*s->free));
	if (!s->free) {
		return -ENOMEM;
	}
	/* Hand out low addresses first: keeps a benchmark's working set compact. */
	for (i = 0; i < count; i++) {
		s->free[i] = count - 1 - i;
	}
	s->nfree = count;
	return 0;
}

void
vh_fe_slab_fini(struct vh_fe_slab *s)
{
	free(s->free);
	s->free = NULL;
	s->nfree = 0;
}

uint64_t
vh_fe_slab_get(struct vh_fe_slab *s)
{
	if (s->nfree == 0) {
		return UINT64_MAX;
	}
	return s->base_gpa + (uint64_t)s->free[--s->nfree] * s->obj_size;
}

void
vh_fe_slab_put(struct vh_fe_slab *s, uint64_t gpa)
{
	s->free[s->nfree++] = (uint32_t)((gpa - s->base_gpa) / s->obj_size);
}
