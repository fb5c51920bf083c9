/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vfu/nvme_prp.c and src/vfu/dma.c: NVMe data pointers (PRP entries and lists, SGLs)
 * turned into iovecs over a DMA table of memfd regions, and the table itself. Every malformed
 * pointer gets the status the spec names; loops end; permissions are enforced; buffers crossing
 * into an adjacent region are split.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vfu/nvme.h"

#define PAGE 4096ull
#define A    0x100000ull /* RW, 1 MiB */
#define B    0x200000ull /* RW, 1 MiB, adjacent to A (a separate mapping) */
#define C    0x400000ull /* read-only for the device, 64 KiB */

static struct vfu_dma g_dma;
static int g_fd;
static uint8_t *g_mem; /* the test's own view of the memfd: A at 0, B at 1 MiB, C at 2 MiB */

static uint8_t *
va(uint64_t iova)
{
	if (iova >= C) {
		return g_mem + (2u << 20) + (iova - C);
	}
	return g_mem + (iova - A);
}

static int
setup(void **state)
{
	struct vfio_user_dma_map m = {.argsz = 32};

	g_fd = memfd_create("guest", MFD_CLOEXEC);
	assert_int_equal(ftruncate(g_fd, 3 << 20), 0);
	g_mem = mmap(NULL, 3 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, 0);
	assert_true(g_mem != MAP_FAILED);
	vfu_dma_init(&g_dma, NULL, 1ull << 30, "t");
	m.flags = VFU_DMA_READ | VFU_DMA_WRITE;
	m.addr = A;
	m.size = 1 << 20;
	assert_int_equal(vfu_dma_map(&g_dma, &m, g_fd), 0);
	m.addr = B;
	m.offset = 1 << 20;
	assert_int_equal(vfu_dma_map(&g_dma, &m, g_fd), 0);
	m.addr = C;
	m.offset = 2 << 20;
	m.size = 64 << 10;
	m.flags = VFU_DMA_READ;
	assert_int_equal(vfu_dma_map(&g_dma, &m, g_fd), 0);
	return 0;
}

static int
teardown(void **state)
{
	vfu_dma_unmap_all(&g_dma);
	munmap(g_mem, 3 << 20);
	close(g_fd);
	return 0;
}

static uint16_t
map(struct vh_nvme_sqe *c, uint64_t len, uint32_t prot, struct iovec *iov, unsigned *n)
{
	return vfu_nvme_map_data(&g_dma, c, len, prot, iov, VFU_NVME_MAX_IOV, n);
}

static uint64_t
total(const struct iovec *iov, unsigned n)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < n; i++) {
		t += iov[i].iov_len;
	}
	return t;
}

static void
test_dma_table(void **state)
{
	struct vfio_user_dma_map m = {.argsz = 32, .flags = VFU_DMA_READ | VFU_DMA_WRITE};
	uint64_t got;

	/* Overlaps on either side, zero size, wrap, unknown flags, no permission. */
	m.addr = A + PAGE;
	m.size = PAGE;
	assert_int_equal(vfu_dma_map(&g_dma, &m, -1), -EEXIST);
	m.addr = A - PAGE;
	m.size = 2 * PAGE;
	assert_int_equal(vfu_dma_map(&g_dma, &m, -1), -EEXIST);
	m.addr = 0x800000;
	m.size = 0;
	assert_int_equal(vfu_dma_map(&g_dma, &m, -1), -EINVAL);
	m.addr = ~0ull - PAGE + 2;
	m.size = PAGE;
	assert_int_equal(vfu_dma_map(&g_dma, &m, -1), -EINVAL);
	m.addr = 0x800000;
	m.flags = 0x4 | VFU_DMA_READ;
	assert_int_equal(vfu_dma_map(&g_dma, &m, -1), -EINVAL);
	m.flags = 0;
	assert_int_equal(vfu_dma_map(&g_dma, &m, -1), -EINVAL);
	/* An fd shorter than offset + size. */
	m.flags = VFU_DMA_READ | VFU_DMA_WRITE;
	m.offset = 3 << 20;
	assert_int_equal(vfu_dma_map(&g_dma, &m, g_fd), -EINVAL);
	/* Without an fd: known, not accessible. */
	m.offset = 0;
	assert_int_equal(vfu_dma_map(&g_dma, &m, -1), 0);
	assert_null(vfu_dma_ptr(&g_dma, 0x800000, 16, VFU_DMA_READ));
	/* Translation: inside, across the A/B boundary (prefix only), permissions, holes. */
	assert_non_null(vfu_dma_ptr(&g_dma, A + 100, 8, VFU_DMA_READ));
	assert_ptr_equal(vfu_dma_ptr(&g_dma, A + 100, 8, VFU_DMA_READ),
	                 vfu_dma_ptr(&g_dma, A + 100, 8, VFU_DMA_WRITE | VFU_DMA_READ));
	assert_null(vfu_dma_ptr(&g_dma, B - 4, 8, VFU_DMA_READ));
	assert_non_null(vfu_dma_ptr_prefix(&g_dma, B - 4, 8, VFU_DMA_READ, &got));
	assert_int_equal(got, 4);
	assert_non_null(vfu_dma_ptr(&g_dma, C, 16, VFU_DMA_READ));
	assert_null(vfu_dma_ptr(&g_dma, C, 16, VFU_DMA_WRITE));
	assert_null(vfu_dma_ptr(&g_dma, 0x300000, 16, VFU_DMA_READ));
	assert_null(vfu_dma_ptr(&g_dma, A, 0, VFU_DMA_READ));
	/* Unmap needs the exact range. */
	assert_int_equal(vfu_dma_unmap(&g_dma, 0x800000, PAGE - 1), -ENOENT);
	assert_int_equal(vfu_dma_unmap(&g_dma, 0x800000, PAGE), 0);
	assert_int_equal(vfu_dma_unmap(&g_dma, 0x800000, PAGE), -ENOENT);
}

static void
test_dma_limit(void **state)
{
	struct vfu_dma d;
	struct vfio_user_dma_map m = {.argsz = 32, .flags = 3, .addr = 0, .size = 1 << 20};

	vfu_dma_init(&d, NULL, 512 << 10, "t");
	assert_int_equal(vfu_dma_map(&d, &m, g_fd), -E2BIG);
	m.size = 256 << 10;
	assert_int_equal(vfu_dma_map(&d, &m, g_fd), 0);
	m.addr = 1 << 20;
	assert_int_equal(vfu_dma_map(&d, &m, g_fd), 0);
	m.addr = 2 << 20;
	assert_int_equal(vfu_dma_map(&d, &m, g_fd), -E2BIG);
	/* A table full of fd-less regions. */
	vfu_dma_unmap_all(&d);
	m.size = PAGE;
	for (unsigned i = 0; i < VFU_DMA_MAX_REGIONS; i++) {
		m.addr = (uint64_t)i * 2 * PAGE;
		assert_int_equal(vfu_dma_map(&d, &m, -1), 0);
	}
	m.addr = 1ull << 40;
	assert_int_equal(vfu_dma_map(&d, &m, -1), -ENOSPC);
	vfu_dma_unmap_all(&d);
}

static void
test_prp(void **state)
{
	struct vh_nvme_sqe c;
	struct iovec iov[VFU_NVME_MAX_IOV];
	uint64_t *list;
	unsigned n;

	memset(&c, 0, sizeof(c));
	/* One entry, with an offset. */
	c.prp1 = A + 512;
	assert_int_equal(map(&c, 2048, VFU_DMA_WRITE, iov, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, vfu_dma_ptr(&g_dma, A + 512, 1, VFU_DMA_WRITE));
	/* Two pages: PRP2 is data. Contiguous pages merge into one iovec. */
	c.prp1 = A + 3072;
	c.prp2 = A + PAGE;
	assert_int_equal(map(&c, 4096, VFU_DMA_WRITE, iov, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(iov[0].iov_len, 4096);
	c.prp2 = A + 8 * PAGE;
	assert_int_equal(map(&c, 4096, VFU_DMA_WRITE, iov, &n), 0);
	assert_int_equal(n, 2);
	/* PRP2 with an offset, PRP1 not dword aligned. */
	c.prp2 = A + 8 * PAGE + 8;
	assert_int_equal(map(&c, 4096, VFU_DMA_WRITE, iov, &n), NVME_ST_GEN(0x13));
	c.prp1 = A + 2;
	assert_int_equal(map(&c, 512, VFU_DMA_WRITE, iov, &n), NVME_ST_GEN(0x13));
	/* A list: 8 scattered pages. */
	list = (uint64_t *)va(A + 16 * PAGE);
	for (unsigned i = 0; i < 8; i++) {
		list[i] = A + (32 + 2 * i) * PAGE;
	}
	c.prp1 = A + 20 * PAGE + 1024;
	c.prp2 = A + 16 * PAGE;
	assert_int_equal(map(&c, 3072 + 8 * PAGE, VFU_DMA_READ, iov, &n), 0);
	assert_int_equal(n, 9);
	assert_int_equal(total(iov, n), 3072 + 8 * PAGE);
	/* A list entry with an offset; one outside memory; data into a read-only region. */
	list[3] += 16;
	assert_int_equal(map(&c, 3072 + 8 * PAGE, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x13));
	list[3] = 0x3000000;
	assert_int_equal(map(&c, 3072 + 8 * PAGE, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x04));
	list[3] = C;
	assert_int_equal(map(&c, 3072 + 8 * PAGE, VFU_DMA_READ, iov, &n), 0);
	assert_int_equal(map(&c, 3072 + 8 * PAGE, VFU_DMA_WRITE, iov, &n), NVME_ST_GEN(0x04));
	/* A page crossing from A into B is split into two iovecs. */
	c.prp1 = B - 1024;
	c.prp2 = 0;
	assert_int_equal(map(&c, 1024, VFU_DMA_READ, iov, &n), 0);
	assert_int_equal(n, 1);
	c.prp1 = B - PAGE; /* page aligned: ends exactly at the boundary */
	c.prp2 = B;
	assert_int_equal(map(&c, 2 * PAGE, VFU_DMA_READ, iov, &n), 0);
	assert_int_equal(n, 2);
}

static void
test_prp_chain(void **state)
{
	struct vh_nvme_sqe c;
	struct iovec iov[VFU_NVME_MAX_IOV];
	uint64_t *l1, *l2;
	unsigned n;

	/* A list starting 2 slots before the end of its page: 1 entry + pointer to the next. */
	memset(&c, 0, sizeof(c));
	l1 = (uint64_t *)va(A + 40 * PAGE + PAGE - 16);
	l2 = (uint64_t *)va(A + 41 * PAGE);
	l1[0] = A + 50 * PAGE;
	l1[1] = A + 41 * PAGE; /* next list page */
	for (unsigned i = 0; i < 4; i++) {
		l2[i] = A + (60 + 2 * i) * PAGE;
	}
	c.prp1 = A + 49 * PAGE;
	c.prp2 = A + 40 * PAGE + PAGE - 16;
	assert_int_equal(map(&c, 6 * PAGE, VFU_DMA_WRITE, iov, &n), 0);
	assert_int_equal(total(iov, n), 6 * PAGE);
	/* A chain that points at itself: ends with an error, no loop. */
	l1[1] = A + 40 * PAGE + PAGE - 16;
	l1[0] = A + 50 * PAGE;
	c.prp2 = A + 40 * PAGE + PAGE - 8; /* one slot: the pointer only */
	l1[1] = c.prp2;
	assert_true(map(&c, 6 * PAGE, VFU_DMA_WRITE, iov, &n) != 0);
	/* A misaligned list pointer. */
	c.prp2 = A + 40 * PAGE + 4;
	assert_int_equal(map(&c, 6 * PAGE, VFU_DMA_WRITE, iov, &n), NVME_ST_GEN(0x13));
	/* More pages than iovecs (no merging): refused, not overflowed. */
	l1 = (uint64_t *)va(A + 100 * PAGE);
	for (unsigned i = 0; i < 200; i++) {
		l1[i] = A + (120 + 2 * (i % 100)) * PAGE;
	}
	c.prp1 = A + 110 * PAGE;
	c.prp2 = A + 100 * PAGE;
	assert_int_equal(map(&c, 80 * PAGE, VFU_DMA_WRITE, iov, &n), NVME_ST_GEN(0x02));
}

/* Fill an SGL descriptor. */
static void
desc(void *p, uint64_t addr, uint32_t len, uint8_t type)
{
	struct nvme_sgl_desc d = {.addr = addr, .len = len, .type = type};

	memcpy(p, &d, sizeof(d));
}

static void
test_sgl(void **state)
{
	struct vh_nvme_sqe c;
	struct iovec iov[VFU_NVME_MAX_IOV];
	uint8_t *seg = va(A + 200 * PAGE), *seg2 = va(A + 201 * PAGE);
	unsigned n;

	memset(&c, 0, sizeof(c));
	c.fuse_psdt = 1u << 6;
	/* One Data Block in the command. */
	desc(&c.prp1, A + 7, 1000, 0x00);
	assert_int_equal(map(&c, 1000, VFU_DMA_WRITE, iov, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(map(&c, 1001, VFU_DMA_WRITE, iov, &n), NVME_ST_GEN(0x0f));
	assert_int_equal(map(&c, 999, VFU_DMA_WRITE, iov, &n), NVME_ST_GEN(0x0f));
	/* A Last Segment of three blocks. */
	desc(seg, A + 300 * PAGE, 100, 0x00);
	desc(seg + 16, A + 310 * PAGE, 200, 0x00);
	desc(seg + 32, B + 5, 300, 0x00);
	desc(&c.prp1, A + 200 * PAGE, 48, 0x30);
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), 0);
	assert_int_equal(n, 3);
	/* A Segment ending with a pointer to a Last Segment. */
	desc(seg + 32, A + 201 * PAGE, 16, 0x30);
	desc(seg2, B + 5, 300, 0x00);
	desc(&c.prp1, A + 200 * PAGE, 48, 0x20);
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), 0);
	assert_int_equal(n, 3);
	/* A segment pointer inside a Last Segment; a segment pointer not last; bad types. */
	desc(&c.prp1, A + 200 * PAGE, 48, 0x30);
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x0d));
	desc(seg, A + 201 * PAGE, 16, 0x30);
	desc(&c.prp1, A + 200 * PAGE, 48, 0x20);
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x0d));
	desc(&c.prp1, A + 7, 1000, 0x10); /* bit bucket: not offered */
	assert_int_equal(map(&c, 1000, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x11));
	desc(&c.prp1, A + 7, 1000, 0x01); /* data block with the "offset" subtype */
	assert_int_equal(map(&c, 1000, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x11));
	desc(&c.prp1, A + 200 * PAGE, 20, 0x30); /* a length that is not whole descriptors */
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x0d));
	/* A Segment that ends in a Data Block (no pointer onwards). */
	desc(seg, A + 300 * PAGE, 100, 0x00);
	desc(seg + 16, A + 310 * PAGE, 200, 0x00);
	desc(seg + 32, B + 5, 300, 0x00);
	desc(&c.prp1, A + 200 * PAGE, 48, 0x20);
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x0d));
	/* A segment that points at itself: bounded by the descriptor budget. */
	desc(seg, A + 200 * PAGE, 16, 0x20);
	desc(&c.prp1, A + 200 * PAGE, 16, 0x20);
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x0e));
	/* A segment outside memory. */
	desc(&c.prp1, 0x7000000, 48, 0x30);
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x04));
	/* PSDT 11b is reserved. */
	c.fuse_psdt = 3u << 6;
	assert_int_equal(map(&c, 600, VFU_DMA_READ, iov, &n), NVME_ST_GEN(0x02));
}

static void
test_copy(void **state)
{
	struct vh_nvme_sqe c;
	uint8_t buf[5000], back[5000];

	memset(&c, 0, sizeof(c));
	for (unsigned i = 0; i < sizeof(buf); i++) {
		buf[i] = (uint8_t)(i * 7);
	}
	c.prp1 = A + 240 * PAGE + 3000;
	c.prp2 = A + 250 * PAGE; /* 1096 + 3904 bytes: PRP2 is the second data page */
	assert_int_equal(vfu_nvme_copy_to_guest(&g_dma, &c, buf, sizeof(buf)), 0);
	assert_memory_equal(va(c.prp1), buf, PAGE - 3000);
	assert_memory_equal(va(c.prp2), buf + PAGE - 3000, sizeof(buf) - (PAGE - 3000));
	assert_int_equal(vfu_nvme_copy_from_guest(&g_dma, &c, back, sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));
	/* Into read-only memory: refused. */
	c.prp1 = C;
	c.prp2 = 0;
	assert_int_equal(vfu_nvme_copy_to_guest(&g_dma, &c, buf, 100), NVME_ST_GEN(0x04));
	assert_int_equal(vfu_nvme_copy_from_guest(&g_dma, &c, back, 100), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_dma_table, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_dma_limit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prp, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prp_chain, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sgl, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
