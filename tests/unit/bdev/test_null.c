/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/bdev/null.c: every I/O succeeds later (never inside submit), reads return zeroes, writes
 * are dropped; the save_config entry.
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

static struct vh_bdev_channel *g_ch;
static struct bt_io g_io;

static void
get_ch(void *arg)
{
	(void)arg;
	g_ch = vh_bdev_channel_get(vh_bdev_find("null0"));
}

static void
put_ch(void *arg)
{
	(void)arg;
	vh_bdev_channel_put(g_ch);
}

static void
submit_msg(void *arg)
{
	(void)arg;
	bt_submit(g_ch, &g_io);
}

static int
do_io(uint8_t type, uint64_t off, uint64_t len, struct iovec *iov, int iovcnt)
{
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
group_setup(void **state)
{
	(void)state;
	if (bt_start_reactor() != 0 || vh_bdev_null_create("null0", 1024, 4096) != 0) {
		return -1;
	}
	return bt_on_reactor(get_ch, NULL) && g_ch != NULL ? 0 : -1;
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

static void
test_reads_zeroes(void **state)
{
	uint8_t a[4096], b[8192], c[100];
	struct iovec iov[3] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};

	(void)state;
	memset(a, 0xff, sizeof(a));
	memset(b, 0xff, sizeof(b));
	memset(c, 0xff, sizeof(c));
	/* Writes are dropped... */
	assert_int_equal(do_io(VH_BDEV_IO_WRITE, 0, 12288 + 100, iov, 3), 0);
	/* ...and reads fill every iovec with zeroes. */
	assert_int_equal(do_io(VH_BDEV_IO_READ, 0, 12288 + 100, iov, 3), 0);
	for (size_t i = 0; i < sizeof(a); i++) {
		assert_int_equal(a[i], 0);
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		assert_int_equal(b[i], 0);
	}
	for (size_t i = 0; i < sizeof(c); i++) {
		assert_int_equal(c[i], 0);
	}
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
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_reads_zeroes),
	        cmocka_unit_test(test_other_types_succeed),
	        cmocka_unit_test(test_properties_and_config),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
