/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/bdev/bdev.c: name validation, the registry (register, find, foreach, claim, release,
 * delete), properties, per-reactor channels and the completion contract ("returns 0 and calls
 * cb exactly once, later, on the submitting reactor; or returns -errno and never calls cb").
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bdev_test.h"

static void
test_name_check(void **state)
{
	char n63[64], n64[65];

	(void)state;
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'b', 64);
	n64[64] = '\0';
	assert_int_equal(vh_name_check("a"), 0);
	assert_int_equal(vh_name_check("Nvme0n1:p1_x-y.z"), 0);
	assert_int_equal(vh_name_check("-"), 0);
	assert_int_equal(vh_name_check("..."), 0);
	assert_int_equal(vh_name_check(".a"), 0);
	assert_int_equal(vh_name_check(n63), 0);
	assert_int_equal(vh_name_check(n64), -EINVAL);
	assert_int_equal(vh_name_check(NULL), -EINVAL);
	assert_int_equal(vh_name_check(""), -EINVAL);
	assert_int_equal(vh_name_check("."), -EINVAL);
	assert_int_equal(vh_name_check(".."), -EINVAL);
	assert_int_equal(vh_name_check("a/b"), -EINVAL);
	assert_int_equal(vh_name_check("/"), -EINVAL);
	assert_int_equal(vh_name_check("a b"), -EINVAL);
	assert_int_equal(vh_name_check("a\nb"), -EINVAL);
	assert_int_equal(vh_name_check("caf\xc3\xa9"), -EINVAL);
	assert_int_equal(vh_name_check("x;rm"), -EINVAL);
	assert_int_equal(vh_name_check("a*"), -EINVAL);
}

static int
collect(struct vh_bdev *b, void *arg)
{
	char *out = arg;

	strcat(out, vh_bdev_name(b));
	strcat(out, ",");
	return strcmp(vh_bdev_name(b), "stop") == 0 ? 42 : 0;
}

static void
test_registry(void **state)
{
	char names[256] = "";
	struct vh_bdev *b;
	char n64[65];

	(void)state;
	memset(n64, 'n', 64);
	n64[64] = '\0';
	assert_int_equal(vh_bdev_null_create("n1", 8, 512), 0);
	assert_int_equal(vh_bdev_ram_create("r1", 16, 4096), 0);
	assert_int_equal(vh_bdev_null_create("n1", 8, 512), -EEXIST);
	assert_int_equal(vh_bdev_ram_create("n1", 8, 512), -EEXIST);
	assert_int_equal(vh_bdev_null_create("r1", 8, 512), -EEXIST);
	/* Bad names and geometry. */
	assert_int_equal(vh_bdev_null_create("a/b", 8, 512), -EINVAL);
	assert_int_equal(vh_bdev_null_create("", 8, 512), -EINVAL);
	assert_int_equal(vh_bdev_null_create(n64, 8, 512), -EINVAL);
	assert_int_equal(vh_bdev_null_create("g", 8, 256), -EINVAL);
	assert_int_equal(vh_bdev_null_create("g", 8, 1000), -EINVAL);
	assert_int_equal(vh_bdev_null_create("g", 8, 131072), -EINVAL);
	assert_int_equal(vh_bdev_null_create("g", 0, 512), -EINVAL);
	assert_int_equal(vh_bdev_null_create("g", UINT64_MAX / 256, 512), -EINVAL);
	assert_null(vh_bdev_find("g"));

	b = vh_bdev_find("n1");
	assert_non_null(b);
	assert_string_equal(vh_bdev_name(b), "n1");
	assert_string_equal(vh_bdev_module_name(b), "null");
	assert_int_equal(vh_bdev_block_size(b), 512);
	assert_int_equal(vh_bdev_num_blocks(b), 8);
	assert_int_equal(vh_bdev_size(b), 4096);
	assert_false(vh_bdev_has_write_cache(b));
	for (int t = 0; t < VH_BDEV_IO_NTYPES; t++) {
		assert_true(vh_bdev_io_type_supported(b, (enum vh_bdev_io_type)t));
	}
	b = vh_bdev_find("r1");
	assert_non_null(b);
	assert_string_equal(vh_bdev_module_name(b), "malloc");
	assert_int_equal(vh_bdev_size(b), 65536);
	assert_null(vh_bdev_find("n2"));
	assert_null(vh_bdev_find(""));

	/* UUIDs: RFC 4122 version 4, distinct. */
	{
		const char *u1 = vh_bdev_uuid(vh_bdev_find("n1")), *u2 = vh_bdev_uuid(b);

		assert_int_equal(strlen(u1), 36);
		assert_int_equal(u1[8], '-');
		assert_int_equal(u1[13], '-');
		assert_int_equal(u1[14], '4');
		assert_non_null(strchr("89ab", u1[19]));
		assert_string_not_equal(u1, u2);
	}

	/* Creation order, and an early stop returns the callback's value. */
	assert_int_equal(vh_bdev_null_create("stop", 8, 512), 0);
	assert_int_equal(vh_bdev_null_create("after", 8, 512), 0);
	assert_int_equal(vh_bdev_foreach(collect, names), 42);
	assert_string_equal(names, "n1,r1,stop,");
	assert_int_equal(vh_bdev_delete("stop", NULL), 0);
	names[0] = '\0';
	assert_int_equal(vh_bdev_foreach(collect, names), 0);
	assert_string_equal(names, "n1,r1,after,");
	assert_int_equal(vh_bdev_delete("after", "null"), 0);
}

static void
test_claim_and_delete(void **state)
{
	struct vh_bdev *b = vh_bdev_find("n1");
	char n64[65];

	(void)state;
	memset(n64, 'o', 64);
	n64[64] = '\0';
	assert_non_null(b);
	assert_null(vh_bdev_claimed_by(b));
	assert_int_equal(vh_bdev_claim(b, n64), -ENAMETOOLONG);
	assert_null(vh_bdev_claimed_by(b));
	assert_int_equal(vh_bdev_claim(b, "ctrlr0"), 0);
	assert_string_equal(vh_bdev_claimed_by(b), "ctrlr0");
	assert_int_equal(vh_bdev_claim(b, "ctrlr1"), -EBUSY);
	assert_int_equal(vh_bdev_claim(b, "ctrlr0"), -EBUSY);
	assert_string_equal(vh_bdev_claimed_by(b), "ctrlr0");
	assert_int_equal(vh_bdev_delete("n1", NULL), -EBUSY);
	assert_int_equal(vh_bdev_delete("n1", "null"), -EBUSY);
	/* The wrong module is refused whatever the claim state. */
	assert_int_equal(vh_bdev_delete("n1", "malloc"), -EINVAL);
	assert_ptr_equal(vh_bdev_find("n1"), b);
	vh_bdev_release(b);
	assert_null(vh_bdev_claimed_by(b));
	assert_int_equal(vh_bdev_delete("n1", "malloc"), -EINVAL);
	assert_int_equal(vh_bdev_delete("nope", NULL), -ENODEV);
	assert_int_equal(vh_bdev_delete("n1", "null"), 0);
	assert_null(vh_bdev_find("n1"));
	assert_int_equal(vh_bdev_delete("n1", "null"), -ENODEV);
	/* The name is free again. */
	assert_int_equal(vh_bdev_null_create("n1", 16, 4096), 0);
	assert_int_equal(vh_bdev_size(vh_bdev_find("n1")), 65536);
	assert_int_equal(vh_bdev_delete("r1", "malloc"), 0);
}

/* ---- channels and the completion contract (on the reactor) ---- */

struct chan_test {
	struct vh_bdev *b;
	struct vh_bdev_channel *ch1, *ch2, *ch3;
	struct vh_bdev_channel *ch_main;
};

static void
chan_get_twice(void *arg)
{
	struct chan_test *t = arg;

	t->ch1 = vh_bdev_channel_get(t->b);
	t->ch2 = vh_bdev_channel_get(t->b);
}

static void
chan_put_one(void *arg)
{
	struct chan_test *t = arg;

	vh_bdev_channel_put(t->ch1);
	/* Still referenced: the same channel comes back. */
	t->ch3 = vh_bdev_channel_get(t->b);
}

static void
chan_put_all(void *arg)
{
	struct chan_test *t = arg;

	vh_bdev_channel_put(t->ch3);
	vh_bdev_channel_put(t->ch2);
	vh_bdev_channel_put(NULL);
}

static void
test_channels(void **state)
{
	struct chan_test t = {.b = vh_bdev_find("n1")};

	(void)state;
	/* Not a reactor thread. */
	assert_null(vh_bdev_channel_get(t.b));
	assert_true(bt_on_reactor(chan_get_twice, &t));
	assert_non_null(t.ch1);
	assert_ptr_equal(t.ch1, t.ch2);
	assert_ptr_equal(t.b->channels[0], t.ch1);
	assert_true(bt_on_reactor(chan_put_one, &t));
	assert_ptr_equal(t.ch3, t.ch1);
	assert_true(bt_on_reactor(chan_put_all, &t));
	assert_null(t.b->channels[0]);
}

struct contract {
	struct vh_bdev *b;
	struct vh_bdev_channel *ch;
	struct bt_io io[10];
	uint8_t buf[4096];
	struct iovec iov;
};

static void
contract_submit(void *arg)
{
	struct contract *c = arg;

	c->ch = vh_bdev_channel_get(c->b);
	if (c->ch == NULL) {
		return;
	}
	g_bt_completions = 0;
	for (int i = 0; i < 10; i++) {
		struct bt_io *b = &c->io[i];

		b->seq = i;
		b->io.type = VH_BDEV_IO_READ;
		b->io.offset = 512ull * (uint64_t)i;
		b->io.length = 512;
		b->io.iov = &c->iov;
		b->io.iovcnt = 1;
		bt_submit(c->ch, b);
	}
}

static void
contract_put(void *arg)
{
	struct contract *c = arg;

	vh_bdev_channel_put(c->ch);
}

static void
test_completion_contract(void **state)
{
	struct contract *c = calloc(1, sizeof(*c));

	(void)state;
	c->b = vh_bdev_find("n1");
	c->iov.iov_base = c->buf;
	c->iov.iov_len = 512;
	assert_true(bt_on_reactor(contract_submit, c));
	assert_non_null(c->ch);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(c->io[i].submit_rc, 0);
	}
	assert_true(WAIT_UNTIL(LOAD(c->io[9].cb_count) == 1, 5000));
	/* Give the reactor more iterations: nothing completes twice. */
	assert_true(bt_on_reactor(contract_put, c));
	for (int i = 0; i < 10; i++) {
		assert_int_equal(c->io[i].cb_count, 1);
		assert_int_equal(c->io[i].status, 0);
		assert_false(c->io[i].cb_inside_submit);
		assert_false(c->io[i].cb_on_other_thread);
		/* In submission order. */
		assert_int_equal(g_bt_order[i], i);
	}
	assert_int_equal(g_bt_completions, 10);
	free(c);
}

/* A callback that submits again: the new I/O completes on a later poll, not inside this one. */
struct chain {
	struct vh_bdev_channel *ch;
	struct bt_io a, b;
	int depth, max_depth;
	int b_rc;
};

static struct chain g_chain;

static void
chain_b_cb(struct vh_bdev_io *io, int status)
{
	g_chain.depth++;
	if (g_chain.depth > g_chain.max_depth) {
		g_chain.max_depth = g_chain.depth;
	}
	bt_io_cb(io, status);
	g_chain.depth--;
}

static void
chain_a_cb(struct vh_bdev_io *io, int status)
{
	g_chain.depth++;
	if (g_chain.depth > g_chain.max_depth) {
		g_chain.max_depth = g_chain.depth;
	}
	bt_io_cb(io, status);
	g_chain.b.submitter = vh_reactor_self();
	g_chain.b.io.type = VH_BDEV_IO_FLUSH;
	g_chain.b.io.cb = chain_b_cb;
	g_chain.b_rc = vh_bdev_submit(g_chain.ch, &g_chain.b.io);
	g_chain.depth--;
}

static void
chain_start(void *arg)
{
	(void)arg;
	g_chain.ch = vh_bdev_channel_get(vh_bdev_find("n1"));
	g_chain.a.submitter = vh_reactor_self();
	g_chain.a.io.type = VH_BDEV_IO_FLUSH;
	g_chain.a.io.cb = chain_a_cb;
	g_chain.a.submit_rc = vh_bdev_submit(g_chain.ch, &g_chain.a.io);
}

static void
chain_put(void *arg)
{
	(void)arg;
	vh_bdev_channel_put(g_chain.ch);
}

static void
test_submit_from_callback(void **state)
{
	(void)state;
	memset(&g_chain, 0, sizeof(g_chain));
	assert_true(bt_on_reactor(chain_start, NULL));
	assert_int_equal(g_chain.a.submit_rc, 0);
	assert_true(WAIT_UNTIL(LOAD(g_chain.b.cb_count) == 1, 5000));
	assert_true(bt_on_reactor(chain_put, NULL));
	assert_int_equal(g_chain.b_rc, 0);
	assert_int_equal(g_chain.a.cb_count, 1);
	assert_int_equal(g_chain.max_depth, 1);
}

static int
group_setup(void **state)
{
	(void)state;
	return bt_start_reactor();
}

static int
group_teardown(void **state)
{
	(void)state;
	vh_reactors_stop();
	vh_bdev_fini();
	return vh_bdev_find("n1") == NULL ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_name_check),
	        cmocka_unit_test(test_registry),
	        cmocka_unit_test(test_claim_and_delete),
	        cmocka_unit_test(test_channels),
	        cmocka_unit_test(test_completion_contract),
	        cmocka_unit_test(test_submit_from_callback),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
