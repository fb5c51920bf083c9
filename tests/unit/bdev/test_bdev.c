/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/bdev/bdev.c: name validation, the registry (register, find, foreach, claim, release,
 * delete), properties, per-reactor channels and the completion contract ("returns 0 and calls
 * cb exactly once, later, on the submitting reactor; or returns -errno and never calls cb"),
 * and VH_BDEV_IO_F_FUA: emulated with a FLUSH for back-ends that cannot, dropped where there is
 * no write cache or nothing to make durable, passed through to back-ends that can.
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

/* ---- FUA: a spy back-end with a write cache ---- */

#define SPY_LOG 16

struct spy {
	uint8_t types[SPY_LOG]; /* what submit() saw, in order */
	uint8_t flags[SPY_LOG];
	unsigned n;
	unsigned flush_eagain; /* refuse this many FLUSH submits with -EAGAIN */
	unsigned write_eagain; /* refuse this many WRITE submits with -EAGAIN */
	int write_status;      /* complete writes with this */
	int flush_status;      /* complete flushes with this */
};

static void *
spy_channel_create(struct vh_bdev *b)
{
	return b->ctx;
}

static void
spy_channel_destroy(void *ch)
{
	(void)ch;
}

static int
spy_submit(void *ch, struct vh_bdev_io *io)
{
	struct spy *s = ch;

	if (io->type == VH_BDEV_IO_FLUSH && s->flush_eagain > 0) {
		s->flush_eagain--;
		return -EAGAIN;
	}
	if (io->type == VH_BDEV_IO_WRITE && s->write_eagain > 0) {
		s->write_eagain--;
		return -EAGAIN;
	}
	if (s->n < SPY_LOG) {
		s->types[s->n] = io->type;
		s->flags[s->n] = io->flags;
		s->n++;
	}
	if (io->type == VH_BDEV_IO_FLUSH) {
		vh_bdev_io_complete_deferred(io, s->flush_status);
		return 0;
	}
	vh_bdev_io_complete_deferred(io, io->type == VH_BDEV_IO_WRITE ? s->write_status : 0);
	return 0;
}

static void
spy_destruct(struct vh_bdev *b)
{
	free(b->ctx);
}

static const struct vh_bdev_module spy_module = {
        .name = "spy",
        .channel_create = spy_channel_create,
        .channel_destroy = spy_channel_destroy,
        .submit = spy_submit,
        .destruct = spy_destruct,
};

static struct vh_bdev *
spy_create(const char *name, bool write_cache, bool fua, bool flush)
{
	struct vh_bdev *b = calloc(1, sizeof(*b));
	struct spy *s = calloc(1, sizeof(*s));

	assert_non_null(b);
	assert_non_null(s);
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->module = &spy_module;
	b->ctx = s;
	b->block_size = 512;
	b->num_blocks = 1024;
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	              (1u << VH_BDEV_IO_WRITE_ZEROES) | (1u << VH_BDEV_IO_DISCARD) |
	              (flush ? 1u << VH_BDEV_IO_FLUSH : 0);
	b->write_cache = write_cache;
	b->fua = fua;
	if (vh_bdev_register(b) != 0) {
		free(s);
		free(b);
		return NULL;
	}
	return b;
}

struct fua_run {
	struct vh_bdev *b;
	struct vh_bdev_channel *ch;
	struct bt_io io;
	uint8_t type_in_cb;
	unsigned spy_n_in_cb; /* requests the spy had taken when the callback ran */
	uint8_t buf[512];
	struct iovec iov;
};

static void
fua_cb(struct vh_bdev_io *io, int status)
{
	struct fua_run *r = VH_CONTAINER_OF(io, struct fua_run, io.io);
	struct spy *s = r->b->ctx;

	r->type_in_cb = io->type;
	r->spy_n_in_cb = s->n;
	bt_io_cb(io, status);
}

static void
fua_submit_msg(void *arg)
{
	struct fua_run *r = arg;

	r->ch = vh_bdev_channel_get(r->b);
	if (r->ch == NULL) {
		return;
	}
	r->io.submitter = vh_reactor_self();
	r->io.io.cb = fua_cb;
	g_bt_in_submit = true;
	r->io.submit_rc = vh_bdev_submit(r->ch, &r->io.io);
	g_bt_in_submit = false;
}

static void
fua_put_msg(void *arg)
{
	struct fua_run *r = arg;

	vh_bdev_channel_put(r->ch);
}

/* Submit one request of @type with @flags to @b; wait for its callback (unless refused). */
static struct fua_run *
fua_run(struct vh_bdev *b, uint8_t type, uint8_t flags)
{
	struct fua_run *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->b = b;
	r->iov = (struct iovec){r->buf, sizeof(r->buf)};
	r->io.io.type = type;
	r->io.io.flags = flags;
	r->io.io.offset = 4096;
	r->io.io.length = 512;
	if (type == VH_BDEV_IO_WRITE) {
		r->io.io.iov = &r->iov;
		r->io.io.iovcnt = 1;
	}
	assert_true(bt_on_reactor(fua_submit_msg, r));
	assert_non_null(r->ch);
	if (r->io.submit_rc == 0) {
		assert_true(WAIT_UNTIL(LOAD(r->io.cb_count) == 1, 5000));
	}
	/* More reactor iterations: nothing completes twice. */
	assert_true(bt_on_reactor(fua_put_msg, r));
	assert_int_equal(r->io.cb_count, r->io.submit_rc == 0 ? 1 : 0);
	assert_false(r->io.cb_inside_submit);
	assert_false(r->io.cb_on_other_thread);
	return r;
}

/* Emulation: the write, then a FLUSH, then the callback, which sees its own request again. */
static void
test_fua_emulated(void **state)
{
	struct vh_bdev *b = spy_create("spy0", true, false, true);
	struct spy *s;
	struct fua_run *r;

	(void)state;
	assert_non_null(b);
	s = b->ctx;
	r = fua_run(b, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA);
	assert_int_equal(r->io.status, 0);
	assert_int_equal(s->n, 2);
	assert_int_equal(s->types[0], VH_BDEV_IO_WRITE);
	assert_int_equal(s->types[1], VH_BDEV_IO_FLUSH);
	assert_int_equal(r->spy_n_in_cb, 2); /* the FLUSH had completed */
	assert_int_equal(r->type_in_cb, VH_BDEV_IO_WRITE);
	assert_ptr_equal(r->io.io.cb, fua_cb);
	free(r);

	/* Write zeroes are data too. */
	s->n = 0;
	r = fua_run(b, VH_BDEV_IO_WRITE_ZEROES, VH_BDEV_IO_F_FUA);
	assert_int_equal(r->io.status, 0);
	assert_int_equal(s->n, 2);
	assert_int_equal(s->types[0], VH_BDEV_IO_WRITE_ZEROES);
	assert_int_equal(s->types[1], VH_BDEV_IO_FLUSH);
	assert_int_equal(r->type_in_cb, VH_BDEV_IO_WRITE_ZEROES);
	free(r);

	/* Without the flag: no FLUSH. A discard has nothing to make durable: no FLUSH, flag gone.
	 */
	s->n = 0;
	free(fua_run(b, VH_BDEV_IO_WRITE, 0));
	assert_int_equal(s->n, 1);
	s->n = 0;
	free(fua_run(b, VH_BDEV_IO_DISCARD, VH_BDEV_IO_F_FUA));
	assert_int_equal(s->n, 1);
	assert_int_equal(s->types[0], VH_BDEV_IO_DISCARD);
	assert_int_equal(s->flags[0] & VH_BDEV_IO_F_FUA, 0);

	/* A FLUSH the back-end refuses for now is retried on later polls; then the callback. */
	s->n = 0;
	s->flush_eagain = 3;
	r = fua_run(b, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA);
	assert_int_equal(r->io.status, 0);
	assert_int_equal(s->flush_eagain, 0);
	assert_int_equal(s->n, 2);
	assert_int_equal(s->types[1], VH_BDEV_IO_FLUSH);
	free(r);
	assert_int_equal(vh_bdev_delete("spy0", "spy"), 0);
}

/* Errors: a failed write is not flushed; a failed FLUSH fails the write; -EAGAIN goes back. */
static void
test_fua_emulated_errors(void **state)
{
	struct vh_bdev *b = spy_create("spy1", true, false, true);
	struct spy *s;
	struct fua_run *r;

	(void)state;
	assert_non_null(b);
	s = b->ctx;
	s->write_status = -EIO;
	r = fua_run(b, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA);
	assert_int_equal(r->io.status, -EIO);
	assert_int_equal(s->n, 1);
	assert_ptr_equal(r->io.io.cb, fua_cb);
	free(r);

	s->n = 0;
	s->write_status = 0;
	s->flush_status = -ENOSPC;
	r = fua_run(b, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA);
	assert_int_equal(r->io.status, -ENOSPC);
	assert_int_equal(s->n, 2);
	assert_int_equal(r->type_in_cb, VH_BDEV_IO_WRITE);
	free(r);

	/* Refused at submit: the consumer gets -EAGAIN and its callback back, never a call. */
	s->n = 0;
	s->flush_status = 0;
	s->write_eagain = 1;
	r = fua_run(b, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA);
	assert_int_equal(r->io.submit_rc, -EAGAIN);
	assert_ptr_equal(r->io.io.cb, fua_cb);
	assert_int_equal(s->n, 0);
	free(r);
	assert_int_equal(vh_bdev_delete("spy1", "spy"), 0);
}

/* A back-end that does FUA itself gets the flag; one without a cache never sees it. */
static void
test_fua_native_and_no_cache(void **state)
{
	struct vh_bdev *native = spy_create("spy2", true, true, true);
	struct vh_bdev *nocache = spy_create("spy3", false, false, false);
	struct spy *s;

	(void)state;
	assert_non_null(native);
	assert_non_null(nocache);
	s = native->ctx;
	free(fua_run(native, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA));
	assert_int_equal(s->n, 1);
	assert_int_equal(s->types[0], VH_BDEV_IO_WRITE);
	assert_int_equal(s->flags[0] & VH_BDEV_IO_F_FUA, VH_BDEV_IO_F_FUA);
	s = nocache->ctx;
	free(fua_run(nocache, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA | VH_BDEV_IO_F_UNMAP));
	assert_int_equal(s->n, 1);
	assert_int_equal(s->flags[0], VH_BDEV_IO_F_UNMAP);
	assert_int_equal(vh_bdev_delete("spy2", "spy"), 0);
	assert_int_equal(vh_bdev_delete("spy3", "spy"), 0);
	/* A volatile cache nothing can flush is refused. */
	assert_null(spy_create("spy4", true, true, false));
	assert_null(vh_bdev_find("spy4"));
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
	        cmocka_unit_test(test_fua_emulated),
	        cmocka_unit_test(test_fua_emulated_errors),
	        cmocka_unit_test(test_fua_native_and_no_cache),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
