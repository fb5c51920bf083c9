/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/bdev/ram.c: read/write/discard/write-zeroes round trips through a channel on a reactor,
 * the back-end's own range check, creation parameters and the save_config entry.
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

#define BLOCKS 512 /* x 512 = 256 KiB */
#define DISK   (BLOCKS * 512u)

static struct vh_bdev_channel *g_ch;

static void
get_ch(void *arg)
{
	(void)arg;
	g_ch = vh_bdev_channel_get(vh_bdev_find("ram0"));
}

static void
put_ch(void *arg)
{
	(void)arg;
	vh_bdev_channel_put(g_ch);
	g_ch = NULL;
}

static int
group_setup(void **state)
{
	(void)state;
	if (bt_start_reactor() != 0 || vh_bdev_ram_create("ram0", BLOCKS, 512) != 0) {
		return -1;
	}
	if (!bt_on_reactor(get_ch, NULL) || g_ch == NULL) {
		return -1;
	}
	return 0;
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

static struct bt_io g_io;

static void
submit_msg(void *arg)
{
	(void)arg;
	bt_submit(g_ch, &g_io);
}

static void
noop(void *arg)
{
	(void)arg;
}

/* Run one I/O to completion. Returns the submit rc, or the completion status. */
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
	if (g_io.submit_rc != 0) {
		/* Refused: the callback must never run, not even on a later poll. */
		assert_true(bt_on_reactor(noop, NULL));
		assert_true(bt_on_reactor(noop, NULL));
		assert_int_equal(LOAD(g_io.cb_count), 0);
		return g_io.submit_rc;
	}
	assert_true(WAIT_UNTIL(LOAD(g_io.cb_count) == 1, 5000));
	assert_false(g_io.cb_inside_submit);
	assert_false(g_io.cb_on_other_thread);
	return g_io.status;
}

static int
rw(uint8_t type, uint64_t off, uint8_t *buf, uint64_t len)
{
	/* Three uneven iovecs over the buffer. */
	struct iovec iov[3];
	uint64_t a = len / 4, b = len / 2;

	iov[0] = (struct iovec){buf, a};
	iov[1] = (struct iovec){buf + a, b};
	iov[2] = (struct iovec){buf + a + b, len - a - b};
	return do_io(type, off, len, iov, 3);
}

static void
fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(seed ^ (i * 31) ^ (i >> 9));
	}
}

static bool
all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

static void
test_read_write(void **state)
{
	uint8_t *w = malloc(DISK), *r = malloc(DISK);

	(void)state;
	/* Fresh disk: zeroes. */
	memset(r, 0xff, DISK);
	assert_int_equal(rw(VH_BDEV_IO_READ, 0, r, DISK), 0);
	assert_true(all_zero(r, DISK));

	fill(w, DISK, 1);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 0, w, DISK), 0);
	memset(r, 0, DISK);
	assert_int_equal(rw(VH_BDEV_IO_READ, 0, r, DISK), 0);
	assert_memory_equal(r, w, DISK);

	/* A small write in the middle, read back with some context. */
	fill(w + 4096, 1024, 77);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 4096, w + 4096, 1024), 0);
	assert_int_equal(rw(VH_BDEV_IO_READ, 3584, r, 2048), 0);
	assert_memory_equal(r, w + 3584, 2048);

	/* The last block. */
	fill(w, 512, 5);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, DISK - 512, w, 512), 0);
	assert_int_equal(rw(VH_BDEV_IO_READ, DISK - 512, r, 512), 0);
	assert_memory_equal(r, w, 512);
	assert_int_equal(do_io(VH_BDEV_IO_FLUSH, 0, 0, NULL, 0), 0);
	free(w);
	free(r);
}

static void
test_out_of_range_refused(void **state)
{
	uint8_t buf[1024];
	struct iovec iov = {buf, sizeof(buf)};

	(void)state;
	/* A consumer bug must not become a host overflow: refused in submit, no callback. */
	assert_int_equal(do_io(VH_BDEV_IO_READ, DISK, 512, &iov, 1), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_WRITE, DISK - 512, 1024, &iov, 1), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_READ, UINT64_MAX - 511, 1024, &iov, 1), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, 512, UINT64_MAX, NULL, 0), -EINVAL);
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, DISK + 512, 0, NULL, 0), -EINVAL);
	/* An unknown type. */
	assert_int_equal(do_io(VH_BDEV_IO_NTYPES, 0, 512, &iov, 1), -ENOTSUP);
	/* Exactly the end is fine. */
	assert_int_equal(do_io(VH_BDEV_IO_READ, DISK - 1024, 1024, &iov, 1), 0);
}

static void
test_discard_and_write_zeroes(void **state)
{
	uint8_t *w = malloc(DISK), *r = malloc(DISK), *expect = malloc(DISK);

	(void)state;
	fill(w, DISK, 9);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 0, w, DISK), 0);
	memcpy(expect, w, DISK);

	/* Small, unaligned to pages: cleared by hand. */
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, 1536, 1024, NULL, 0), 0);
	memset(expect + 1536, 0, 1024);
	/* Large with unaligned edges: the middle is punched out of the memfd. */
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, 8192 + 512, 20 * 4096 + 1024, NULL, 0), 0);
	memset(expect + 8192 + 512, 0, 20 * 4096 + 1024);
	/* Large and page aligned. */
	assert_int_equal(do_io(VH_BDEV_IO_DISCARD, 128 * 1024, 64 * 1024, NULL, 0), 0);
	memset(expect + 128 * 1024, 0, 64 * 1024);
	/* Zero length: nothing happens. */
	assert_int_equal(do_io(VH_BDEV_IO_WRITE_ZEROES, 4096, 0, NULL, 0), 0);

	assert_int_equal(rw(VH_BDEV_IO_READ, 0, r, DISK), 0);
	for (size_t i = 0; i < DISK; i += 512) {
		if (memcmp(r + i, expect + i, 512) != 0) {
			fail_msg("block at byte %zu differs after discard", i);
		}
	}

	/* Punched pages are writable again. */
	fill(w, 4096, 3);
	assert_int_equal(rw(VH_BDEV_IO_WRITE, 12288, w, 4096), 0);
	assert_int_equal(rw(VH_BDEV_IO_READ, 12288, r, 4096), 0);
	assert_memory_equal(r, w, 4096);
	free(w);
	free(r);
	free(expect);
}

static void
test_create_params(void **state)
{
	struct vh_bdev *b;
	json_t *j;

	(void)state;
	assert_int_equal(vh_bdev_ram_create("x", 0, 512), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", 8, 256), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", 8, 768), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", 8, 131072), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("x", UINT64_MAX / 512, 512), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("a/b", 8, 512), -EINVAL);
	assert_int_equal(vh_bdev_ram_create("ram0", 8, 512), -EEXIST);
	assert_null(vh_bdev_find("x"));

	b = vh_bdev_find("ram0");
	assert_string_equal(vh_bdev_module_name(b), "malloc");
	assert_int_equal(vh_bdev_size(b), DISK);
	j = b->module->config_json(b);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "bdev_malloc_create");
	{
		json_t *p = json_object_get(j, "params");

		assert_string_equal(json_string_value(json_object_get(p, "name")), "ram0");
		assert_int_equal(json_integer_value(json_object_get(p, "num_blocks")), BLOCKS);
		assert_int_equal(json_integer_value(json_object_get(p, "block_size")), 512);
		assert_string_equal(json_string_value(json_object_get(p, "uuid")), vh_bdev_uuid(b));
	}
	json_decref(j);

	/* Create and delete a second disk (its memory is released: ASan checks). */
	assert_int_equal(vh_bdev_ram_create("tmp", 64, 4096), 0);
	assert_int_equal(vh_bdev_delete("tmp", "null"), -EINVAL);
	assert_int_equal(vh_bdev_delete("tmp", "malloc"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_read_write),
	        cmocka_unit_test(test_out_of_range_refused),
	        cmocka_unit_test(test_discard_and_write_zeroes),
	        cmocka_unit_test(test_create_params),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
