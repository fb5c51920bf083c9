/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of src/bdev/qos.c and src/bdev/iostat.c without reactors: the GCRA bucket on a
 * synthetic clock (rate, burst, debt of a large request, no limit), limit validation, the
 * histogram's bucket arithmetic, and counting into a statistics block and summing it (reset
 * baseline, min/max reset generation).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bdev/bdev_internal.h"

#define HZ 1000000000ull /* a 1 GHz synthetic clock: one tick per ns */

static void
test_bucket_burst_then_rate(void **state)
{
	struct vh_qos_bucket bk;
	uint64_t now = 1000000, retry = 0, n = 0;

	vh_qos_bucket_set(&bk, 1000, HZ, now); /* 1000 units/s: 1 ms each */
	/* A full bucket lets the burst allowance (100 ms = 100 units) through at once, plus one. */
	while (vh_qos_bucket_take(&bk, now, 1, &retry)) {
		n++;
	}
	assert_int_equal(n, 101);
	/* The refusal says exactly when the next unit fits. */
	assert_int_equal(retry, now + 1000000);
	assert_false(vh_qos_bucket_take(&bk, retry - 1, 1, &retry));
	assert_true(vh_qos_bucket_take(&bk, retry, 1, &retry));

	/* A greedy taker that retries when told gets the rate, to the unit, over 5 s. */
	n = 0;
	now = retry;
	while (now < retry + 5 * HZ) {
		uint64_t r;

		if (vh_qos_bucket_take(&bk, now, 1, &r)) {
			n++;
		} else {
			now = r;
		}
	}
	assert_in_range(n, 4999, 5001);
}

static void
test_bucket_large_request_debt(void **state)
{
	struct vh_qos_bucket bk;
	uint64_t now = 5000, retry = 0;

	vh_qos_bucket_set(&bk, 1024 * 1024, HZ, now); /* 1 MiB/s */
	/* 4 MiB in one request: more than the burst, still passes when the bucket is full... */
	assert_true(vh_qos_bucket_take(&bk, now, 4u << 20, &retry));
	/* ...and the next waits until the debt is paid, less the burst allowance. */
	assert_false(vh_qos_bucket_take(&bk, now + HZ, 4096, &retry));
	assert_in_range(retry, now + 4 * HZ - HZ / 10 - 2, now + 4 * HZ - HZ / 10 + 2);
}

static void
test_bucket_unlimited_and_reset(void **state)
{
	struct vh_qos_bucket bk;
	uint64_t retry = 0;

	vh_qos_bucket_set(&bk, 0, HZ, 0);
	for (int i = 0; i < 100000; i++) {
		assert_true(vh_qos_bucket_take(&bk, 7, 1u << 30, &retry));
	}
	/* A new limit starts with a full allowance at the time it is set. */
	vh_qos_bucket_set(&bk, 1000, HZ, 10 * HZ);
	assert_true(vh_qos_bucket_take(&bk, 10 * HZ, 100, &retry));
	assert_true(vh_qos_bucket_take(&bk, 10 * HZ, 1, &retry)); /* tat == now + tau: still in */
	assert_false(vh_qos_bucket_take(&bk, 10 * HZ, 1, &retry));
}

static void
test_qos_set_validation(void **state)
{
	struct vh_bdev *b = calloc(1, sizeof(*b));
	uint64_t set[VH_BDEV_QOS_NLIMITS] = {1500, VH_BDEV_QOS_UNCHANGED, VH_BDEV_QOS_UNCHANGED,
	                                     VH_BDEV_QOS_UNCHANGED};
	uint64_t got[VH_BDEV_QOS_NLIMITS];

	assert_non_null(b);
	strcpy(b->name, "q0");
	/* Not multiples of SPDK's units (the RPC layer rounds before it calls). */
	assert_int_equal(vh_bdev_qos_set(b, set), -EINVAL);
	set[0] = VH_BDEV_QOS_UNCHANGED;
	set[1] = 1000;
	assert_int_equal(vh_bdev_qos_set(b, set), -EINVAL);
	assert_false(vh_bdev_qos_enabled(b));
	/* Removing limits that were never set allocates nothing. */
	set[1] = 0;
	assert_int_equal(vh_bdev_qos_set(b, set), 0);
	assert_null(b->qos);

	set[0] = 3000;
	set[1] = VH_BDEV_QOS_UNCHANGED;
	set[3] = 7 * VH_BDEV_QOS_BPS_UNIT;
	assert_int_equal(vh_bdev_qos_set(b, set), 0);
	assert_true(vh_bdev_qos_enabled(b));
	vh_bdev_qos_get(b, got);
	assert_int_equal(got[0], 3000);
	assert_int_equal(got[1], 0);
	assert_int_equal(got[3], 7 * VH_BDEV_QOS_BPS_UNIT);
	/* Unchanged keeps, 0 removes; the last one removed turns QoS off. */
	set[0] = 0;
	set[3] = VH_BDEV_QOS_UNCHANGED;
	assert_int_equal(vh_bdev_qos_set(b, set), 0);
	assert_true(vh_bdev_qos_enabled(b));
	set[3] = 0;
	assert_int_equal(vh_bdev_qos_set(b, set), 0);
	assert_false(vh_bdev_qos_enabled(b));
	vh_bdev_qos_free(b);
	free(b);
}

static void
test_histogram_buckets(void **state)
{
	uint64_t prev_end = 0;

	/* Buckets tile [0, 2^36) without gaps, each at most 1/8 of its start wide. */
	for (unsigned i = 0; i < VH_BDEV_HIST_BUCKETS - 1; i++) {
		uint64_t end = vh_bdev_hist_bucket_end(i);

		assert_true(end > prev_end);
		assert_int_equal(vh_bdev_hist_bucket(prev_end), i);
		assert_int_equal(vh_bdev_hist_bucket(end - 1), i);
		if (prev_end >= 8) {
			assert_true((end - prev_end) * 8 <= prev_end);
		}
		prev_end = end;
	}
	assert_int_equal(prev_end, 1ull << (VH_BDEV_HIST_MAX_MSB + 1));
	assert_int_equal(vh_bdev_hist_bucket(prev_end), VH_BDEV_HIST_BUCKETS - 1);
	assert_int_equal(vh_bdev_hist_bucket(UINT64_MAX), VH_BDEV_HIST_BUCKETS - 1);
	assert_true(vh_bdev_hist_bucket_end(VH_BDEV_HIST_BUCKETS - 1) == UINT64_MAX);
	/* Every power of two is a bucket boundary (Prometheus "le" bounds are exact). */
	for (unsigned k = 3; k <= VH_BDEV_HIST_MAX_MSB; k++) {
		unsigned i = vh_bdev_hist_bucket(1ull << k);

		assert_int_equal(vh_bdev_hist_bucket_end(i - 1), 1ull << k);
	}
}

static void
test_accounting(void **state)
{
	struct vh_bdev *b = calloc(1, sizeof(*b));
	struct vh_bdev_channel ch = {0};
	struct vh_bdev_io io = {0};
	struct vh_bdev_iostat st;
	uint64_t h[VH_BDEV_HIST_BUCKETS] = {0};

	assert_non_null(b);
	ch.bdev = b;
	ch.rs = vh_bdev_rstat_get(b, 3);
	assert_non_null(ch.rs);
	assert_ptr_equal(vh_bdev_rstat_get(b, 3), ch.rs);
	ch.ns_mult = 1ull << 32; /* ticks are ns */
	assert_int_equal(vh_bdev_get_iostat(b, 2, false, &st), -ENOENT);

	io.type = VH_BDEV_IO_READ;
	io.length = 4096;
	ch.poll_now = 1000;
	io.submit_ticks = 900; /* 100 ns */
	vh_bdev_account(&ch, &io, 0);
	io.submit_ticks = 700; /* 300 ns */
	vh_bdev_account(&ch, &io, 0);
	io.type = VH_BDEV_IO_DISCARD;
	io.length = 1 << 20;
	vh_bdev_account(&ch, &io, 0);
	vh_bdev_account(&ch, &io, -EIO); /* failed: an error, not an unmap */
	io.type = VH_BDEV_IO_FLUSH;
	io.length = 0;
	vh_bdev_account(&ch, &io, 0);

	assert_int_equal(vh_bdev_get_iostat(b, -1, false, &st), 0);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].ops, 2);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].bytes, 8192);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].lat_ns, 400);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].lat_min_ns, 100);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].lat_max_ns, 300);
	assert_int_equal(st.op[VH_BDEV_STAT_UNMAP].ops, 1);
	assert_int_equal(st.op[VH_BDEV_STAT_UNMAP].bytes, 1 << 20);
	assert_int_equal(st.op[VH_BDEV_STAT_FLUSH].ops, 1);
	assert_int_equal(st.errors, 1);
	vh_bdev_get_histogram(b, VH_BDEV_STAT_READ, h);
	assert_int_equal(h[vh_bdev_hist_bucket(100)], 1);
	assert_int_equal(h[vh_bdev_hist_bucket(300)], 1);

	/* Reset: bdev_get_iostat starts over, raw readers (Prometheus) do not. */
	vh_bdev_reset_iostat(b, false);
	assert_int_equal(vh_bdev_get_iostat(b, -1, false, &st), 0);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].ops, 0);
	assert_int_equal(st.errors, 0);
	/* Min/max restart at the reactor's next completion; until then they are not reported. */
	assert_int_equal(st.op[VH_BDEV_STAT_READ].lat_max_ns, 0);
	assert_int_equal(vh_bdev_get_iostat(b, -1, true, &st), 0);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].ops, 2);
	io.type = VH_BDEV_IO_READ;
	io.length = 512;
	io.submit_ticks = 950;
	vh_bdev_stat_sync_gen(&ch); /* what the channel poll does first */
	vh_bdev_account(&ch, &io, 0);
	assert_int_equal(vh_bdev_get_iostat(b, 3, false, &st), 0);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].lat_min_ns, 50);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].lat_max_ns, 50);
	assert_int_equal(vh_bdev_get_iostat(b, -1, false, &st), 0);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].ops, 1);
	assert_int_equal(st.op[VH_BDEV_STAT_READ].bytes, 512);
	vh_bdev_rstat_free(b);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bucket_burst_then_rate),
	        cmocka_unit_test(test_bucket_large_request_debt),
	        cmocka_unit_test(test_bucket_unlimited_and_reset),
	        cmocka_unit_test(test_qos_set_validation),
	        cmocka_unit_test(test_histogram_buckets),
	        cmocka_unit_test(test_accounting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
