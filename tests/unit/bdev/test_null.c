/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/bdev/null.c: every I/O succeeds later (never inside submit), writes are dropped, reads leave
 * the buffers untouched (SPDK's behaviour) unless read_zeroes is set; the save_config entry.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bdev_test.h"

static struct vh_bdev_channel *g_ch;  /* null0: the default */
static struct vh_bdev_channel *g_zch; /* nullz: read_zeroes */
static struct vh_bdev_channel *g_cur;
static struct bt_io g_io;

static void
get_ch(void *arg)
{
	(void)arg;
	g_ch = vh_bdev_channel_get(vh_bdev_find("null0"));
	g_zch = vh_bdev_channel_get(vh_bdev_find("nullz"));
}

static void
put_ch(void *arg)
{
	(void)arg;
	vh_bdev_channel_put(g_ch);
	vh_bdev_channel_put(g_zch);
}

static void
submit_msg(void *arg)
{
	(void)arg;
	bt_submit(g_cur, &g_io);
}

static int
do_io_on(struct vh_bdev_channel *ch, uint8_t type, uint64_t off, uint64_t len, struct iovec *iov,
         int iovcnt)
{
	g_cur = ch;
	memset(&g_io, 0, sizeof(g_io));
	g_io.io.type = type;
	g_io.io.offset = off;
	g_io.io.length = len;
	g_io.io.iov = iov;
	g_io.io.iovcnt = iovcnt;
	assert_true(bt_on_reactor(submit_msg, NULL));
	assert_int_equal(g_io.submit_rc, 0);
	assert_true(WAIT_UNTIL(LOAD(g_io.cb_count) == 1, 5000));
	assert_false(g_io.cb_inside_submit);
	assert_false(g_io.cb_on_other_thread);
	return g_io.status;
}

static int
do_io(uint8_t type, uint64_t off, uint64_t len, struct iovec *iov, int iovcnt)
{
	return do_io_on(g_ch, type, off, len, iov, iovcnt);
}

static int
group_setup(void **state)
{
	(void)state;
	if (bt_start_reactor() != 0 || vh_bdev_null_create("null0", 1024, 4096) != 0 ||
	    vh_bdev_null_create("nullz", 1024, 4096) != 0 ||
	    vh_bdev_null_set_read_zeroes(vh_bdev_find("nullz"), true) != 0) {
		return -1;
	}
	return bt_on_reactor(get_ch, NULL) && g_ch != NULL && g_zch != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	bt_on_reactor(put_ch, NULL);
	vh_reactors_stop();
	vh_bdev_fini();
	return 0;
}

static bool
all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != v) {
			return false;
		}
	}
	return true;
}

static void
test_reads_untouched(void **state)
{
	uint8_t a[4096], b[8192];
	struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};

	(void)state;
	memset(a, 0xff, sizeof(a));
	memset(b, 0x5a, sizeof(b));
	assert_false(vh_bdev_null_read_zeroes(vh_bdev_find("null0")));
	/* By default a read succeeds and leaves the buffers as they were, like SPDK's null bdev. */
	assert_int_equal(do_io(VH_BDEV_IO_READ, 0, 12288, iov, 2), 0);
	assert_true(all_bytes(a, sizeof(a), 0xff));
	assert_true(all_bytes(b, sizeof(b), 0x5a));
}

static void
test_read_zeroes(void **state)
{
	uint8_t a[4096], b[8192], c[100];
	struct iovec iov[3] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};

	(void)state;
	memset(a, 0xff, sizeof(a));
	memset(b, 0xff, sizeof(b));
	memset(c, 0xff, sizeof(c));
	assert_true(vh_bdev_null_read_zeroes(vh_bdev_find("nullz")));
	/* Writes are dropped... */
	assert_int_equal(do_io_on(g_zch, VH_BDEV_IO_WRITE, 0, 12288 + 100, iov, 3), 0);
	assert_true(all_bytes(a, sizeof(a), 0xff));
	/* ...and with read_zeroes, reads fill every iovec with zeroes. */
	assert_int_equal(do_io_on(g_zch, VH_BDEV_IO_READ, 0, 12288 + 100, iov, 3), 0);
	assert_true(all_bytes(a, sizeof(a), 0));
	assert_true(all_bytes(b, sizeof(b), 0));
	assert_true(all_bytes(c, sizeof(c), 0));
}

static void
test_set_read_zeroes_errors(void **state)
{
	(void)state;
	/* A channel is open: a reactor may be in submit(), so the switch is refused. */
	assert_int_equal(vh_bdev_null_set_read_zeroes(vh_bdev_find("null0"), true), -EBUSY);
	assert_false(vh_bdev_null_read_zeroes(vh_bdev_find("null0")));
	assert_int_equal(vh_bdev_ram_create("ram0", 8, 512), 0);
	assert_int_equal(vh_bdev_null_set_read_zeroes(vh_bdev_find("ram0"), true), -EINVAL);
	assert_int_equal(vh_bdev_delete("ram0", "malloc"), 0);
}

static void
test_other_types_succeed(void **state)
{
	(void)state;
	assert_int_equal(do_io(VH_BDEV_IO_FLUSH, 0, 0, NULL, 0), 0);
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, 4096, 8192, NULL, 0), 0);
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, 0, 4096, NULL, 0), 0);
}

static void
test_properties_and_config(void **state)
{
	struct vh_bdev *b = vh_bdev_find("null0");
	json_t *j, *p;

	(void)state;
	assert_string_equal(vh_bdev_module_name(b), "null");
	assert_int_equal(vh_bdev_block_size(b), 4096);
	assert_int_equal(vh_bdev_num_blocks(b), 1024);
	assert_int_equal(vh_bdev_size(b), 4ull << 20);
	j = b->module->config_json(b);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "bdev_null_create");
	p = json_object_get(j, "params");
	assert_string_equal(json_string_value(json_object_get(p, "name")), "null0");
	assert_int_equal(json_integer_value(json_object_get(p, "num_blocks")), 1024);
	assert_int_equal(json_integer_value(json_object_get(p, "block_size")), 4096);
	assert_string_equal(json_string_value(json_object_get(p, "uuid")), vh_bdev_uuid(b));
	/* Absent when off: SPDK's bdev_null_create would refuse the unknown param. */
	assert_null(json_object_get(p, "read_zeroes"));
	json_decref(j);
	b = vh_bdev_find("nullz");
	j = b->module->config_json(b);
	p = json_object_get(j, "params");
	assert_true(json_is_true(json_object_get(p, "read_zeroes")));
	assert_string_equal(json_string_value(json_object_get(p, "name")), "nullz");
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_reads_untouched),
	        cmocka_unit_test(test_read_zeroes),
	        cmocka_unit_test(test_set_read_zeroes_errors),
	        cmocka_unit_test(test_other_types_succeed),
	        cmocka_unit_test(test_properties_and_config),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
