/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vhost/mem.c: region mapping checks, overlap detection and address translation, over
 * memfd "guest RAM"; mapping only the region, the per-session limit, refused filesystems,
 * huge pages reserved at map time, and a truncated region seen as faulted (core/sigbus.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/sigbus.h"
#include "guest.h"

#define A_GPA 0x10000ull
#define B_GPA 0x20000ull  /* address-adjacent to A */
#define C_GPA 0x100000ull /* after a hole */
#define RSIZE 0x10000ull
#define A_QVA 0x7f0000000000ull
#define B_QVA (A_QVA + RSIZE) /* adjacent in front-end space too */
#define C_QVA 0x7f5000000000ull

/* ---- vh_mem_region_map ---- */

static int
map_wire(struct vh_mem_region *r, uint64_t gpa, uint64_t size, uint64_t qva, uint64_t off, int fd)
{
	struct vhost_user_memory_region w = {
	        .guest_phys_addr = gpa,
	        .memory_size = size,
	        .userspace_addr = qva,
	        .mmap_offset = off,
	};

	return vh_mem_region_map(r, &w, fd, NULL);
}

static void
test_map_ok(void **state)
{
	struct vh_mem_region r;
	int fd = guest_memfd(0x4000);

	(void)state;
	assert_int_equal(map_wire(&r, 0x1000, 0x4000, 0x5000, 0, fd), 0);
	assert_int_equal(r.gpa, 0x1000);
	assert_int_equal(r.size, 0x4000);
	assert_int_equal(r.qva, 0x5000);
	assert_int_equal(r.mmap_offset, 0);
	assert_int_equal(r.map_size, 0x4000);
	assert_ptr_equal(r.hva, r.map_base);
	/* Shared with the fd: what the "guest" writes, we read. */
	assert_int_equal(pwrite(fd, "hello", 5, 0x3ffb), 5);
	assert_memory_equal(r.hva + 0x3ffb, "hello", 5);
	vh_mem_region_unmap(&r);
	assert_null(r.map_base);
	vh_mem_region_unmap(&r); /* idempotent */
	close(fd);
}

static void
test_map_offset(void **state)
{
	struct vh_mem_region r;
	int fd = guest_memfd(0x3000);

	(void)state;
	/* Page-aligned offset: the region starts 4 KiB into the fd; only it is mapped. */
	assert_int_equal(pwrite(fd, "ABCD", 4, 0x1000), 4);
	assert_int_equal(map_wire(&r, 0, 0x2000, 0x9000, 0x1000, fd), 0);
	assert_int_equal(r.map_size, 0x2000);
	assert_ptr_equal(r.hva, r.map_base);
	assert_memory_equal(r.hva, "ABCD", 4);
	vh_mem_region_unmap(&r);

	/* An offset that is not page aligned works too (mapped from the page it starts in). */
	assert_int_equal(pwrite(fd, "xyz", 3, 0x1010), 3);
	assert_int_equal(map_wire(&r, 0, 0x1ff0, 0x9000, 0x1010, fd), 0);
	assert_memory_equal(r.hva, "xyz", 3);
	assert_int_equal(r.mmap_offset, 0x1010);
	assert_ptr_equal(r.hva, (uint8_t *)r.map_base + 0x10);
	assert_int_equal(r.map_size, 0x2000);
	vh_mem_region_unmap(&r);
	/* Unaligned at both ends: whole pages around it. */
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x9000, 0x10, fd), 0);
	assert_int_equal(r.map_size, 0x2000);
	assert_ptr_equal(r.hva, (uint8_t *)r.map_base + 0x10);
	vh_mem_region_unmap(&r);

	/* offset + size past the end of the fd: refused (touching it would SIGBUS). */
	assert_int_equal(map_wire(&r, 0, 0x2000, 0x9000, 0x1001, fd), -EINVAL);
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x9000, 0x2001, fd), -EINVAL);
	/* Exactly fitting: accepted. */
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x9000, 0x2000, fd), 0);
	vh_mem_region_unmap(&r);
	/* offset + size overflows. */
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x9000, UINT64_MAX - 0x800, fd), -EINVAL);
	close(fd);
}

static void
test_map_refused(void **state)
{
	struct vh_mem_region r;
	int fd = guest_memfd(0x2000);
	int p[2], efd;

	(void)state;
	/* Size 0. */
	assert_int_equal(map_wire(&r, 0x1000, 0, 0x1000, 0, fd), -EINVAL);
	/* gpa + size wraps. */
	assert_int_equal(map_wire(&r, UINT64_MAX - 0xfff, 0x2000, 0x1000, 0, fd), -EINVAL);
	assert_int_equal(map_wire(&r, UINT64_MAX, 2, 0x1000, 0, fd), -EINVAL);
	/* qva + size wraps. */
	assert_int_equal(map_wire(&r, 0x1000, 0x2000, UINT64_MAX - 0xfff, 0, fd), -EINVAL);
	/* The last byte of the address space is fine (inclusive end does not wrap). */
	assert_int_equal(map_wire(&r, UINT64_MAX - 0x1fff, 0x2000, UINT64_MAX - 0x1fff, 0, fd), 0);
	vh_mem_region_unmap(&r);
	/* fd smaller than the region. */
	assert_int_equal(map_wire(&r, 0, 0x3000, 0x1000, 0, fd), -EINVAL);
	assert_int_equal(map_wire(&r, 0, 0x2001, 0x1000, 0, fd), -EINVAL);
	/* Not a file: a pipe, an eventfd. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x1000, 0, p[0]), -EINVAL);
	efd = eventfd(0, 0);
	assert_true(efd >= 0);
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x1000, 0, efd), -EINVAL);
	/* No fd, or a closed one. */
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x1000, 0, -1), -EBADF);
	close(p[0]);
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x1000, 0, p[0]), -EBADF);
	/* Every refusal leaves nothing mapped. */
	assert_null(r.map_base);
	close(p[1]);
	close(efd);
	close(fd);
}

/* VmSize of this process, in KiB. */
static long
vm_size_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "re");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmSize: %ld kB", &kib) == 1) {
			break;
		}
	}
	fclose(f);
	return kib;
}

/* A 4 KiB region 100 TiB into a sparse memfd costs 4 KiB of address space, not 100 TiB. */
static void
test_map_region_only(void **state)
{
	const uint64_t off = 100ull << 40;
	struct vh_mem_region r;
	int fd = guest_memfd(off + 0x2000);
	long vm0;

	(void)state;
	assert_int_equal(pwrite(fd, "far", 3, (off_t)(off + 0x1ff0)), 3);
	vm0 = vm_size_kib();
	assert_int_equal(map_wire(&r, 0, 0x1000, 0x9000, off + 0x1000, fd), 0);
	assert_int_equal(r.map_size, 0x1000);
	assert_true(vm_size_kib() - vm0 < 1024);
	assert_memory_equal(r.hva + 0xff0, "far", 3);
	vh_mem_region_unmap(&r);
	/* Unaligned: the page before is mapped too, nothing more. */
	assert_int_equal(map_wire(&r, 0, 0x20, 0x9000, off + 0x1fe0, fd), 0);
	assert_int_equal(r.map_size, 0x1000);
	assert_memory_equal(r.hva + 0x10, "far", 3);
	vh_mem_region_unmap(&r);
	close(fd);
}

/* --max-guest-mem: per region at map time, per table when a region joins it. */
static void
test_map_limit(void **state)
{
	struct vh_mem m = {0};
	struct vh_mem_region r;
	int fd = guest_memfd(4 << 20);

	(void)state;
	assert_int_equal(vh_vhost_max_guest_mem(), 1ull << 40);
	vh_vhost_set_max_guest_mem(1 << 20);
	assert_int_equal(map_wire(&r, 0, (1 << 20) + 1, 0x100000, 0, fd), -E2BIG);
	assert_null(r.map_base);
	/* An unaligned offset rounds the mapping up to whole pages: that counts. */
	assert_int_equal(map_wire(&r, 0, 1 << 20, 0x100000, 0x10, fd), -E2BIG);
	assert_int_equal(map_wire(&m.regions[0], 0, 1 << 19, 0x100000, 0, fd), 0);
	m.nregions = 1;
	assert_int_equal(vh_mem_check_add(NULL, &m.regions[0]), 0);
	/* 512 KiB + 768 KiB > 1 MiB; 512 KiB + 512 KiB fits. */
	assert_int_equal(map_wire(&r, 1 << 20, 3 << 18, 0x900000, 0, fd), 0);
	assert_int_equal(vh_mem_check_add(&m, &r), -E2BIG);
	vh_mem_region_unmap(&r);
	assert_int_equal(map_wire(&r, 1 << 20, 1 << 19, 0x900000, 1 << 20, fd), 0);
	assert_int_equal(vh_mem_check_add(&m, &r), 0);
	vh_mem_region_unmap(&r);
	/* Overlap is still -EINVAL. */
	assert_int_equal(map_wire(&r, 0x1000, 0x1000, 0x900000, 0, fd), 0);
	assert_int_equal(vh_mem_check_add(&m, &r), -EINVAL);
	vh_mem_region_unmap(&r);
	vh_mem_unmap_all(&m);
	vh_vhost_set_max_guest_mem(VH_VHOST_DEFAULT_MAX_GUEST_MEM);
	close(fd);
}

/* Files whose page faults could wait on another process are refused. */
static void
test_map_filesystems(void **state)
{
	char path[] = "/tmp/vh-test-mem-XXXXXX";
	struct vh_mem_region r;
	struct statfs sfs;
	int fd;

	(void)state;
	/* procfs: a regular file, but no disk and no page cache we could trust. */
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(map_wire(&r, 0, 0x10, 0x1000, 0, fd), -EOPNOTSUPP);
	assert_null(r.map_base);
	close(fd);
	/* A file on a local disk filesystem (if /tmp is one) is fine. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, 0x2000), 0);
	assert_int_equal(fstatfs(fd, &sfs), 0);
	if (sfs.f_type == EXT4_SUPER_MAGIC || sfs.f_type == XFS_SUPER_MAGIC ||
	    sfs.f_type == BTRFS_SUPER_MAGIC || sfs.f_type == TMPFS_MAGIC) {
		assert_int_equal(map_wire(&r, 0, 0x2000, 0x1000, 0, fd), 0);
		vh_mem_region_unmap(&r);
	}
	close(fd);
}

static long
read_long(const char *dir, const char *file)
{
	char path[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (f != NULL) {
		if (fscanf(f, "%ld", &v) != 1) {
			v = -1;
		}
		fclose(f);
	}
	return v;
}

/*
 * The size of a huge page pool with no page to give (none free but reserved, no surplus
 * allowed), e.g. the 1 GiB pool on most machines; 0 if every pool has pages.
 */
static uint64_t
empty_huge_pool(void)
{
	static const unsigned kib[] = {2048, 1048576};

	for (size_t i = 0; i < sizeof(kib) / sizeof(kib[0]); i++) {
		char dir[96];

		snprintf(dir, sizeof(dir), "/sys/kernel/mm/hugepages/hugepages-%ukB", kib[i]);
		if (read_long(dir, "free_hugepages") >= 0 &&
		    read_long(dir, "free_hugepages") == read_long(dir, "resv_hugepages") &&
		    read_long(dir, "nr_overcommit_hugepages") == 0) {
			return (uint64_t)kib[i] << 10;
		}
	}
	return 0;
}

/*
 * A huge-page memfd while its pool has no free page: refused at map time (it used to be
 * mapped MAP_NORESERVE and SIGBUS on first touch). A unit test does not change the system's
 * pools: it uses one that is empty already, or skips (tests/func/test_hostile_mem empties one).
 */
static void
test_map_hugetlb_no_pages(void **state)
{
	uint64_t huge = empty_huge_pool();
	struct vh_mem_region r;
	int fd = -1;

	(void)state;
	if (huge != 0) {
		fd = memfd_create("guest-huge", MFD_CLOEXEC | MFD_HUGETLB |
		                                        (__builtin_ctzll(huge) << MAP_HUGE_SHIFT));
	}
	if (fd < 0 || ftruncate(fd, (off_t)huge) < 0) {
		if (fd >= 0) {
			close(fd);
		}
		skip();
	}
	assert_int_equal(map_wire(&r, 0, huge, 0x40000000, 0, fd), -ENOMEM);
	assert_null(r.map_base);
	close(fd);
}

/* A region whose file shrank: the access is survived and the table reports the fault. */
static void
test_faulted(void **state)
{
	struct vh_mem m = {0};
	int fd = guest_memfd(0x4000);
	uint8_t *p;

	(void)state;
	assert_int_equal(vh_sigbus_init(), 0);
	assert_int_equal(map_wire(&m.regions[0], 0, 0x4000, 0x10000, 0, fd), 0);
	m.nregions = 1;
	assert_true(m.regions[0].sigbus_area >= 0);
	assert_false(vh_mem_faulted(&m));
	assert_false(vh_mem_faulted(NULL));
	assert_int_equal(ftruncate(fd, 0), 0);
	p = vh_mem_gpa_to_hva(&m, 0x3000, 1);
	assert_non_null(p);
	assert_int_equal(*(volatile uint8_t *)p, 0);
	assert_true(vh_mem_faulted(&m));
	assert_int_equal(vh_sigbus_ack(), 1);
	vh_mem_unmap_all(&m);
	assert_int_equal(m.regions[0].sigbus_area, -1);
	vh_sigbus_fini();
	close(fd);
}

/* ---- overlap ---- */

static struct vh_mem_region
reg(uint64_t gpa, uint64_t size, uint64_t qva)
{
	return (struct vh_mem_region){.gpa = gpa, .size = size, .qva = qva};
}

static void
test_overlap(void **state)
{
	struct vh_mem m = {.nregions = 2};
	struct vh_mem_region r;

	(void)state;
	m.regions[0] = reg(0x10000, 0x10000, 0x100000);
	m.regions[1] = reg(0x40000, 0x1000, 0x300000);

	r = reg(0x20000, 0x10000, 0x200000); /* adjacent above, both spaces */
	assert_int_equal(vh_mem_check_overlap(&m, &r), 0);
	r = reg(0x0, 0x10000, 0x0f0000); /* adjacent below, both spaces */
	assert_int_equal(vh_mem_check_overlap(&m, &r), 0);
	r = reg(0x1ffff, 1, 0x200000); /* last byte of gpa */
	assert_int_equal(vh_mem_check_overlap(&m, &r), -EINVAL);
	r = reg(0x0, 0x10001, 0x500000); /* first byte of gpa */
	assert_int_equal(vh_mem_check_overlap(&m, &r), -EINVAL);
	r = reg(0x0, 0x100000, 0x500000); /* encloses both */
	assert_int_equal(vh_mem_check_overlap(&m, &r), -EINVAL);
	r = reg(0x18000, 0x10, 0x500000); /* inside */
	assert_int_equal(vh_mem_check_overlap(&m, &r), -EINVAL);
	r = reg(0x40fff, 0x10, 0x500000); /* the second region's last byte */
	assert_int_equal(vh_mem_check_overlap(&m, &r), -EINVAL);
	r = reg(0x80000, 0x1000, 0x10ffff); /* distinct gpa, overlapping qva */
	assert_int_equal(vh_mem_check_overlap(&m, &r), -EINVAL);
	r = reg(0x80000, 0x1000, 0x2ff001); /* qva runs into the second region */
	assert_int_equal(vh_mem_check_overlap(&m, &r), -EINVAL);
	r = reg(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX - 0xfff); /* top of the address space */
	assert_int_equal(vh_mem_check_overlap(&m, &r), 0);
	m.nregions = 0;
	r = reg(0x10000, 0x10000, 0x100000);
	assert_int_equal(vh_mem_check_overlap(&m, &r), 0);
}

/* ---- translation over a real table: A | B adjacent, hole, C ---- */

static int
mem_setup(void **state)
{
	struct vh_mem *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		return -1;
	}
	guest_add_region(m, A_GPA, RSIZE, A_QVA);
	guest_add_region(m, B_GPA, RSIZE, B_QVA);
	guest_add_region(m, C_GPA, 0x1000, C_QVA);
	*state = m;
	return 0;
}

static int
mem_teardown(void **state)
{
	struct vh_mem *m = *state;

	vh_mem_unmap_all(m);
	if (m->nregions != 0) {
		return -1;
	}
	free(m);
	return 0;
}

static void
test_gpa_to_iov(void **state)
{
	struct vh_mem *m = *state;
	uint8_t *a = m->regions[0].hva, *b = m->regions[1].hva, *c = m->regions[2].hva;
	struct iovec iov[8];
	int n;

	/* Inside one region. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, A_GPA + 0x100, 0x200, iov, &n, 8), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, a + 0x100);
	assert_int_equal(iov[0].iov_len, 0x200);

	/* A buffer straddling A and B: two iovecs, split at the boundary. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, B_GPA - 0x100, 0x300, iov, &n, 8), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, a + RSIZE - 0x100);
	assert_int_equal(iov[0].iov_len, 0x100);
	assert_ptr_equal(iov[1].iov_base, b);
	assert_int_equal(iov[1].iov_len, 0x200);

	/* Appends after what is already there. */
	n = 2;
	assert_int_equal(vh_mem_gpa_to_iov(m, C_GPA + 0x10, 0x20, iov, &n, 8), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[2].iov_base, c + 0x10);
	assert_int_equal(iov[2].iov_len, 0x20);

	/* All of A and B. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, A_GPA, 2 * RSIZE, iov, &n, 8), 0);
	assert_int_equal(n, 2);
	assert_int_equal(iov[0].iov_len, RSIZE);
	assert_int_equal(iov[1].iov_len, RSIZE);

	/* Exactly the last byte of C. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, C_GPA + 0xfff, 1, iov, &n, 8), 0);
	assert_int_equal(n, 1);

	/* Length 0: nothing to map, nothing appended. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, 0x5, 0, iov, &n, 8), 0);
	assert_int_equal(n, 0);
}

static void
test_gpa_to_iov_errors(void **state)
{
	struct vh_mem *m = *state;
	struct iovec iov[8];
	int n;

	/* Running from B into the hole. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, B_GPA + RSIZE - 0x10, 0x20, iov, &n, 8), -EFAULT);
	/* Entirely in the hole, below everything, past C. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, 0x30000, 1, iov, &n, 8), -EFAULT);
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, 0x0, 0x10, iov, &n, 8), -EFAULT);
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, C_GPA + 0xfff, 2, iov, &n, 8), -EFAULT);
	/* One byte before A, running into A. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, A_GPA - 1, 0x10, iov, &n, 8), -EFAULT);

	/* addr + len wraps. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, UINT64_MAX - 0x10, 0x20, iov, &n, 8), -EFAULT);
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, A_GPA, UINT64_MAX, iov, &n, 8), -EFAULT);
	assert_int_equal(n, 0);
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, A_GPA, 0xffffffffull, iov, &n, 8), -EFAULT);

	/* Too many iovecs: the straddling buffer needs 2. */
	n = 0;
	assert_int_equal(vh_mem_gpa_to_iov(m, B_GPA - 0x100, 0x300, iov, &n, 1), -ENOBUFS);
	assert_true(n <= 1);
	n = 1;
	assert_int_equal(vh_mem_gpa_to_iov(m, B_GPA - 0x100, 0x300, iov, &n, 2), -ENOBUFS);
	assert_true(n <= 2);
	n = 8;
	assert_int_equal(vh_mem_gpa_to_iov(m, A_GPA, 1, iov, &n, 8), -ENOBUFS);
	assert_int_equal(n, 8);
}

/*
 * The walks' fast path: a buffer inside the hinted region is translated inline; anything else
 * (another region, a buffer straddling two, a hole, a stale or out-of-range hint, no room)
 * gives exactly what vh_mem_gpa_to_iov() gives, and moves the hint to where the buffer starts.
 */
static void
hinted_like_search(const struct vh_mem *m, uint32_t *hint_idx, uint64_t gpa, uint64_t len, int n0,
                   int max)
{
	struct iovec want[8], got[8];
	int nw = n0, ng = n0, rw, rg;

	memset(want, 0, sizeof(want));
	memset(got, 0, sizeof(got));
	rw = vh_mem_gpa_to_iov(m, gpa, len, want, &nw, max);
	rg = vh_mem_gpa_to_iov_hinted(m, vh_mem_hint(m, *hint_idx), hint_idx, gpa, len, got, &ng,
	                              max);
	assert_int_equal(rg, rw);
	assert_int_equal(ng, nw);
	assert_memory_equal(got, want, sizeof(want));
}

/* One buffer inside one region through the hint: one iovec at @want, the hint then @hint_after. */
static void
hinted_one(const struct vh_mem *m, uint32_t *h, uint64_t gpa, uint64_t len, const uint8_t *want,
           uint32_t hint_after)
{
	struct iovec iov[8];
	int n = 0;

	assert_int_equal(vh_mem_gpa_to_iov_hinted(m, vh_mem_hint(m, *h), h, gpa, len, iov, &n, 8),
	                 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, want);
	assert_int_equal(iov[0].iov_len, len);
	assert_int_equal(*h, hint_after);
}

static void
test_gpa_to_iov_hinted(void **state)
{
	struct vh_mem *m = *state;
	uint8_t *a = m->regions[0].hva, *b = m->regions[1].hva;
	uint32_t h = 0;

	/* A hit in the hinted region: one iovec, the hint stays. */
	hinted_one(m, &h, A_GPA + 0x10, 0x20, a + 0x10, 0);
	/* A miss in B: found by the search, and the hint moves to B. */
	hinted_one(m, &h, B_GPA + 0x40, 0x10, b + 0x40, 1);

	/* The hinted region's last byte, and one past it (B's first: adjacent, not in A). */
	h = 0;
	hinted_like_search(m, &h, B_GPA - 1, 1, 0, 8);
	assert_int_equal(h, 0);
	hinted_like_search(m, &h, B_GPA, 1, 0, 8);
	assert_int_equal(h, 1);

	/* Straddling A and B from an A hint: not inline (two iovecs), split like the search. */
	h = 0;
	hinted_like_search(m, &h, B_GPA - 0x100, 0x300, 0, 8);
	/* Into the hole, below everything, wrapping, too long: the search's errors. */
	h = 1;
	hinted_like_search(m, &h, B_GPA + RSIZE - 0x10, 0x20, 0, 8);
	assert_int_equal(h, 1);
	hinted_like_search(m, &h, 0x30000, 1, 0, 8);
	hinted_like_search(m, &h, UINT64_MAX - 0x10, 0x20, 0, 8);
	h = 0;
	hinted_like_search(m, &h, A_GPA, UINT64_MAX, 0, 8);
	hinted_like_search(m, &h, A_GPA + 1, RSIZE, 0, 8);
	/* No room left: -ENOBUFS even on a hit, nothing written. */
	h = 0;
	hinted_like_search(m, &h, A_GPA, 1, 8, 8);
	/* A hint past the table (it shrank): a region that holds nothing, then a normal search. */
	h = 7;
	assert_int_equal(vh_mem_hint(m, h)->size, 0);
	hinted_like_search(m, &h, C_GPA + 0x10, 0x10, 0, 8);
	assert_int_equal(h, 2);
	h = UINT32_MAX;
	hinted_like_search(m, &h, A_GPA, 0x10, 3, 8);
	assert_int_equal(h, 0);
}

static void
test_gpa_qva_to_hva(void **state)
{
	struct vh_mem *m = *state;
	uint8_t *a = m->regions[0].hva, *b = m->regions[1].hva;

	assert_ptr_equal(vh_mem_gpa_to_hva(m, A_GPA, 0x10), a);
	assert_ptr_equal(vh_mem_gpa_to_hva(m, A_GPA + RSIZE - 0x10, 0x10), a + RSIZE - 0x10);
	assert_ptr_equal(vh_mem_gpa_to_hva(m, B_GPA, RSIZE), b);
	/* One region only: a straddling range has no single host address. */
	assert_null(vh_mem_gpa_to_hva(m, A_GPA + RSIZE - 0x10, 0x11));
	assert_null(vh_mem_gpa_to_hva(m, B_GPA, RSIZE + 1));
	assert_null(vh_mem_gpa_to_hva(m, 0x30000, 1));
	assert_null(vh_mem_gpa_to_hva(m, A_GPA, UINT64_MAX));

	assert_ptr_equal(vh_mem_qva_to_hva(m, A_QVA, 16), a);
	assert_ptr_equal(vh_mem_qva_to_hva(m, A_QVA + 0x100, RSIZE - 0x100), a + 0x100);
	assert_ptr_equal(vh_mem_qva_to_hva(m, B_QVA + 8, 8), b + 8);
	assert_null(vh_mem_qva_to_hva(m, A_QVA + 0x100, RSIZE - 0xff));
	/* Adjacent in front-end space too, but a ring must lie in one mapping. */
	assert_null(vh_mem_qva_to_hva(m, B_QVA - 8, 16));
	assert_null(vh_mem_qva_to_hva(m, A_QVA - 1, 1));
	assert_null(vh_mem_qva_to_hva(m, C_QVA + 0x1000, 1));
	assert_null(vh_mem_qva_to_hva(m, A_QVA, UINT64_MAX));
	assert_null(vh_mem_qva_to_hva(m, UINT64_MAX, 2));
	/* A guest-physical address is not a front-end address. */
	assert_null(vh_mem_qva_to_hva(m, A_GPA, 1));
}

static void
test_copy_from_guest(void **state)
{
	struct vh_mem *m = *state;
	uint8_t src[0x300], dst[0x300];

	for (size_t i = 0; i < sizeof(src); i++) {
		src[i] = (uint8_t)(i * 7 + 3);
	}
	guest_write(m, B_GPA - 0x100, src, sizeof(src));
	/* The bytes landed in the two separate memfds. */
	assert_memory_equal(m->regions[0].hva + RSIZE - 0x100, src, 0x100);
	assert_memory_equal(m->regions[1].hva, src + 0x100, 0x200);

	memset(dst, 0, sizeof(dst));
	assert_int_equal(vh_mem_copy_from_guest(m, dst, B_GPA - 0x100, sizeof(dst)), 0);
	assert_memory_equal(dst, src, sizeof(src));
	assert_int_equal(vh_mem_copy_from_guest(m, dst, B_GPA + RSIZE - 0x10, 0x20), -EFAULT);
	assert_int_equal(vh_mem_copy_from_guest(m, dst, UINT64_MAX - 4, 0x10), -EFAULT);
	assert_int_equal(vh_mem_copy_from_guest(m, dst, 0x30000, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_map_ok),
	        cmocka_unit_test(test_map_offset),
	        cmocka_unit_test(test_map_refused),
	        cmocka_unit_test(test_map_region_only),
	        cmocka_unit_test(test_map_limit),
	        cmocka_unit_test(test_map_filesystems),
	        cmocka_unit_test(test_map_hugetlb_no_pages),
	        cmocka_unit_test(test_faulted),
	        cmocka_unit_test(test_overlap),
	        cmocka_unit_test_setup_teardown(test_gpa_to_iov, mem_setup, mem_teardown),
	        cmocka_unit_test_setup_teardown(test_gpa_to_iov_errors, mem_setup, mem_teardown),
	        cmocka_unit_test_setup_teardown(test_gpa_to_iov_hinted, mem_setup, mem_teardown),
	        cmocka_unit_test_setup_teardown(test_gpa_qva_to_hva, mem_setup, mem_teardown),
	        cmocka_unit_test_setup_teardown(test_copy_from_guest, mem_setup, mem_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
