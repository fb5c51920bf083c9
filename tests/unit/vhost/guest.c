/* SPDX-License-Identifier: BSD-3-Clause */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest.h"

int
guest_memfd(uint64_t size)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

void
guest_add_region(struct vh_mem *m, uint64_t gpa, uint64_t size, uint64_t qva)
{
	struct vhost_user_memory_region w = {
	        .guest_phys_addr = gpa,
	        .memory_size = size,
	        .userspace_addr = qva,
	        .mmap_offset = 0,
	};
	int fd = guest_memfd(size);

	assert_true(m->nregions < VH_MAX_MEM_REGIONS);
	assert_int_equal(vh_mem_region_map(&m->regions[m->nregions], &w, fd, NULL), 0);
	m->nregions++;
	close(fd);
}

void *
guest_ptr(const struct vh_mem *m, uint64_t gpa)
{
	void *p = vh_mem_gpa_to_hva(m, gpa, 1);

	assert_non_null(p);
	return p;
}

void
guest_write(const struct vh_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	const uint8_t *s = src;

	for (uint64_t i = 0; i < len; i++) {
		*(uint8_t *)guest_ptr(m, gpa + i) = s[i];
	}
}

void
guest_set_desc(const struct vh_mem *m, uint64_t table_gpa, uint16_t i, uint64_t addr, uint32_t len,
               uint16_t flags, uint16_t next)
{
	struct vring_desc d = {.addr = addr, .len = len, .flags = flags, .next = next};

	guest_write(m, table_gpa + 16ull * i, &d, sizeof(d));
}
