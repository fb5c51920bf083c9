/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest RAM for the test front-end: one shareable file (memfd or hugetlbfs), mapped once here,
 * described to the back-end as regions. GPA == file offset, so a buffer that straddles two
 * GPA-adjacent regions is contiguous for us but not for the back-end, which maps each region
 * on its own: exactly the case QEMU's pc layout produces.
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

static int
open_backing(const struct vh_fe_mem_opts *opts, uint64_t *page)
{
	char path[PATH_MAX];
	int fd;

	if (!opts->hugetlbfs_dir) {
		*page = (uint64_t)sysconf(_SC_PAGESIZE);
		fd = memfd_create("vh-fe-guest-ram", MFD_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	/* The back-end needs an fd it can mmap: an unlinked hugetlbfs file gives us that. */
	snprintf(path, sizeof(path), "%s/vh-fe-XXXXXX", opts->hugetlbfs_dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	unlink(path);
	*page = 2ull << 20;
	return fd;
}

static int
layout_regions(struct vh_fe_mem *m, const struct vh_fe_mem_opts *opts, uint64_t main_size)
{
	unsigned int i, n = opts->nregions ? opts->nregions : 1;
	uint64_t each, off = 0;

	if (opts->layout == VH_FE_MEM_QEMU_PC) {
		if (main_size <= QEMU_PC_HIGH_GPA) {
			return -EINVAL;
		}
		m->regions[0] = (struct vh_fe_region){0, QEMU_PC_LOW_END, 0, true};
		m->regions[1] = (struct vh_fe_region){
		        QEMU_PC_HIGH_GPA, main_size - QEMU_PC_HIGH_GPA, QEMU_PC_HIGH_GPA, true};
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
		m->regions[i] = (struct vh_fe_region){off, sz, off, true};
		off += sz;
	}
	m->nregions = n;
	return 0;
}

int
vh_fe_mem_create(struct vh_fe_mem **out, const struct vh_fe_mem_opts *opts)
{
	struct vh_fe_mem *m;
	uint64_t main_size, hp;
	int rc;

	m = calloc(1, sizeof(*m));
	if (!m) {
		return -ENOMEM;
	}
	rc = open_backing(opts, &m->page);
	if (rc < 0) {
		goto out_free;
	}
	m->fd = rc;
	main_size = round_up(opts->size ? opts->size : 64ull << 20, m->page);
	hp = round_up(opts->hotplug_size, m->page);
	m->size = main_size + hp;
	rc = layout_regions(m, opts, main_size);
	if (rc < 0) {
		goto out_close;
	}
	if (hp) {
		m->regions[m->nregions++] = (struct vh_fe_region){main_size, hp, main_size, false};
	}
	if (ftruncate(m->fd, (off_t)m->size) < 0) {
		rc = -errno;
		goto out_close;
	}
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, m->fd, 0);
	if (m->base == MAP_FAILED) {
		rc = -errno;
		goto out_close;
	}
	*out = m;
	return 0;

out_close:
	close(m->fd);
out_free:
	free(m);
	return rc;
}

void
vh_fe_mem_destroy(struct vh_fe_mem *mem)
{
	if (!mem) {
		return;
	}
	munmap(mem->base, mem->size);
	close(mem->fd);
	free(mem);
}

void *
vh_fe_gpa_to_ptr(const struct vh_fe_mem *mem, uint64_t gpa, uint64_t len)
{
	if (gpa > mem->size || len > mem->size - gpa) {
		return NULL;
	}
	return mem->base + gpa;
}

uint64_t
vh_fe_ptr_to_gpa(const struct vh_fe_mem *mem, const void *p)
{
	const uint8_t *b = p;

	if (b < mem->base || b >= mem->base + mem->size) {
		return UINT64_MAX;
	}
	return (uint64_t)(b - mem->base);
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
