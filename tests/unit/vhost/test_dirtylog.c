/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vhost/dirtylog.c: the dirty-log writer against a reference bitmap. Page boundaries,
 * buffers spanning pages and regions, marks past the end of the log (never written), the
 * mapping of a front-end's log fd (sealed memfds only, offsets, sizes), and concurrent writers
 * setting bits of the same bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost/dirtylog.h"
#include "vhost/mem.h"

#define LOG_BYTES 64 /* 512 pages = 2 MiB of guest memory */

static uint8_t g_bits[LOG_BYTES + 16]; /* 16 guard bytes that must stay 0 */
static uint8_t g_ref[LOG_BYTES];

static void
reset(struct vh_dlog *l)
{
	memset(l, 0, sizeof(*l));
	memset(g_bits, 0, sizeof(g_bits));
	memset(g_ref, 0, sizeof(g_ref));
	l->bits = g_bits;
	l->bytes = LOG_BYTES;
}

static void
ref_mark(uint64_t gpa, uint64_t len)
{
	for (uint64_t p = gpa >> 12; len > 0 && p <= (gpa + len - 1) >> 12; p++) {
		if (p / 8 < LOG_BYTES) {
			g_ref[p / 8] |= (uint8_t)(1u << (p % 8));
		}
	}
}

static void
check(void)
{
	assert_memory_equal(g_bits, g_ref, LOG_BYTES);
	for (int i = LOG_BYTES; i < LOG_BYTES + 16; i++) {
		assert_int_equal(g_bits[i], 0);
	}
}

static void
test_page_boundaries(void **state)
{
	struct vh_dlog l;
	const struct {
		uint64_t gpa, len;
	} cases[] = {
	        {0, 1},        {4095, 1},     {4095, 2},          {4096, 4096},
	        {4097, 4095},  {8191, 4098},  {12345, 0},         {0, 4096 * 9},
	        {4096 * 7, 1}, {4096 * 8, 1}, {511 * 4096, 4096}, {510 * 4096 + 4000, 200},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		reset(&l);
		vh_dlog_mark(&l, cases[i].gpa, cases[i].len);
		ref_mark(cases[i].gpa, cases[i].len);
		check();
		assert_int_equal(l.missed, 0);
	}
}

static void
test_past_the_log(void **state)
{
	struct vh_dlog l;

	(void)state;
	reset(&l);
	/* The last page of the log and three beyond it: only the first is written. */
	vh_dlog_mark(&l, 511 * 4096, 4 * 4096);
	ref_mark(511 * 4096, 4096);
	check();
	assert_int_equal(l.missed, 3);
	/* Wrapping lengths and the top of the address space never write. */
	vh_dlog_mark(&l, UINT64_MAX - 10, 100);
	vh_dlog_mark(&l, 1ull << 62, 1);
	check();
	/* No log mapped: nothing happens. */
	l.bits = NULL;
	vh_dlog_mark(&l, 0, 4096);
	assert_int_equal(g_bits[0], 0);
}

static void
test_hva_across_regions(void **state)
{
	static uint8_t ram[3][64 * 1024] __attribute__((aligned(4096)));
	struct vh_mem m = {.nregions = 2};
	struct iovec iov[2];
	struct vh_dlog l;

	(void)state;
	/* Two regions whose host addresses are in the other order than their GPAs. */
	m.regions[0] =
	        (struct vh_mem_region){.gpa = 0x10000, .size = sizeof(ram[0]), .hva = ram[2]};
	m.regions[1] =
	        (struct vh_mem_region){.gpa = 0x20000, .size = sizeof(ram[0]), .hva = ram[0]};
	reset(&l);
	/* A buffer at the end of region 0 and one at the start of region 1 (as the walker splits
	 * a buffer crossing GPA-adjacent regions into two iovecs). */
	iov[0] = (struct iovec){.iov_base = ram[2] + sizeof(ram[0]) - 100, .iov_len = 100};
	iov[1] = (struct iovec){.iov_base = ram[0], .iov_len = 5000};
	vh_dlog_mark_iov(&l, &m, iov, 2);
	ref_mark(0x20000 - 100, 100);
	ref_mark(0x20000, 5000);
	check();
	/* Memory in no region (our own, say) is ignored. */
	vh_dlog_mark_hva(&l, &m, ram[1], 4096);
	check();
}

static void
test_covers(void **state)
{
	struct vh_mem m = {.nregions = 1};
	struct vh_dlog l;

	(void)state;
	reset(&l);
	m.regions[0] = (struct vh_mem_region){.gpa = 0, .size = 512 * 4096};
	assert_true(vh_dlog_covers(&l, &m));
	m.regions[0].size++;
	assert_false(vh_dlog_covers(&l, &m));
	m.regions[0] = (struct vh_mem_region){.gpa = 1ull << 40, .size = 4096};
	assert_false(vh_dlog_covers(&l, &m));
	assert_true(vh_dlog_covers(&l, NULL));
}

static int
memfd(uint64_t size, bool seal)
{
	int fd = memfd_create("dlog", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seal) {
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	}
	return fd;
}

static void
test_map(void **state)
{
	int sealed = memfd(3 * 4096, true), open_fd = memfd(4096, false), p[2];
	struct vh_dlog l;

	(void)state;
	assert_int_equal(vh_dlog_map(&l, 4096, 0, sealed), 0);
	vh_dlog_mark(&l, 0, 1);
	assert_int_equal(l.bits[0], 1);
	vh_dlog_unmap(&l);
	/* An offset inside the file, not page aligned: the bitmap starts exactly there. */
	assert_int_equal(vh_dlog_map(&l, 4096, 4096 + 64, sealed), 0);
	vh_dlog_mark(&l, 8 * 4096, 1);
	assert_int_equal(l.bits[1], 1);
	vh_dlog_unmap(&l);
	/* Past the end of the file, zero size, overflow. */
	assert_int_equal(vh_dlog_map(&l, 4096, 2 * 4096 + 1, sealed), -EINVAL);
	assert_int_equal(vh_dlog_map(&l, 0, 0, sealed), -EINVAL);
	assert_int_equal(vh_dlog_map(&l, UINT64_MAX, 2, sealed), -EINVAL);
	/* Not sealed against shrinking (a truncate would SIGBUS us), not a memfd at all. */
	assert_int_equal(vh_dlog_map(&l, 4096, 0, open_fd), -EPERM);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(vh_dlog_map(&l, 1, 0, p[0]), -EPERM);
	assert_null(l.map);
	close(sealed);
	close(open_fd);
	close(p[0]);
	close(p[1]);
}

/* Two "reactors" setting different bits of the same bytes: no update is lost. */
struct writer {
	struct vh_dlog *l;
	unsigned parity;
};

static void *
writer_thread(void *arg)
{
	struct writer *w = arg;

	for (int round = 0; round < 200; round++) {
		for (uint64_t p = w->parity; p < LOG_BYTES * 8; p += 2) {
			vh_dlog_mark(w->l, p * 4096, 1);
		}
	}
	return NULL;
}

static void
test_concurrent_writers(void **state)
{
	struct vh_dlog l;
	struct writer w[2];
	pthread_t t[2];

	(void)state;
	for (int iter = 0; iter < 20; iter++) {
		reset(&l);
		for (int i = 0; i < 2; i++) {
			w[i] = (struct writer){.l = &l, .parity = (unsigned)i};
			assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
		}
		for (int i = 0; i < 2; i++) {
			pthread_join(t[i], NULL);
		}
		ref_mark(0, LOG_BYTES * 8 * 4096ull);
		check();
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_page_boundaries),
	        cmocka_unit_test(test_past_the_log),
	        cmocka_unit_test(test_hva_across_regions),
	        cmocka_unit_test(test_covers),
	        cmocka_unit_test(test_map),
	        cmocka_unit_test(test_concurrent_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
