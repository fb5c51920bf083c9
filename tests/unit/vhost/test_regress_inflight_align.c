/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Regression (issue 6, found by tests/func/test_hostile_state.c t_inflight_misaligned):
 * SET_INFLIGHT_FD accepted an odd mmap_offset, so vh_inflight_recover() and the reactor then
 * accessed struct inflight_split_queue (u16/u64 fields, atomics) at a misaligned address:
 * UBSan "member access within misaligned address" at inflight.c:138 and a daemon abort under
 * the sanitizer build; undefined behaviour in release builds. vh_inflight_map() must refuse an
 * offset that is not a multiple of the region's alignment.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost/device.h"
#include "vhost/session.h"

static int
sealed_memfd(uint64_t size)
{
	int fd = memfd_create("regress-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

static void
test_odd_offset_refused(void **state)
{
	uint64_t stride = vh_inflight_queue_stride(128);
	struct vhost_user_inflight w = {.mmap_size = stride, .num_queues = 1, .queue_size = 128};
	struct vh_inflight ifl = {0};
	int fd = sealed_memfd(stride + 4096);

	(void)state;
	for (uint64_t off = 1; off < 64; off++) {
		w.mmap_offset = off;
		if (vh_inflight_map(&ifl, &w, fd, false) == 0) {
			fail_msg("mmap_offset %llu accepted: region base %p is misaligned",
			         (unsigned long long)off, (void *)ifl.base);
		}
	}
	/* Aligned offsets still work. */
	w.mmap_offset = 64;
	assert_int_equal(vh_inflight_map(&ifl, &w, fd, false), 0);
	assert_int_equal((uintptr_t)ifl.base % _Alignof(struct inflight_split_queue), 0);
	vh_inflight_unmap(&ifl);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_odd_offset_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
