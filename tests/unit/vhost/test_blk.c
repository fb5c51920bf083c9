/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/vhost/blk.c: virtio-blk request decoding and the config space. Requests are built in
 * memfd "guest RAM" and handed to vh_blk_handle() on a real reactor (one thread, core 0), with
 * real ram/null bdevs underneath. The test thread plays the guest driver: it writes descriptors,
 * sends the head to the reactor, then waits (with a deadline) for used->idx to move.
 *
 * Write-through: a spy bdev with a write cache records the flags of what reaches it, and
 * SET_FEATURES / SET_CONFIG go through the real message handlers, so the test checks which
 * writes are asked to be durable (VH_BDEV_IO_F_FUA) for every negotiation a driver can make.
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

#include "bdev/bdev_module.h"
#include "guest.h"
#include "vhost/blk.h"

#define A_GPA 0x10000ull
#define B_GPA 0x20000ull
#define HOLE  0x40000ull
#define RSIZE 0x10000ull
#define A_QVA 0x7f0000000000ull
#define B_QVA 0x7f0000100000ull

#define QSIZE  16
#define DESC   (A_GPA)
#define AVAIL  (A_GPA + 0x1000)
#define USED   (A_GPA + 0x2000)
#define HDR    (A_GPA + 0x4000)
#define DATA   (A_GPA + 0x5000) /* 8 KiB */
#define DATA2  (A_GPA + 0x7000) /* 8 KiB */
#define STATUS (A_GPA + 0x9000)
#define SEG    (A_GPA + 0xa000)

#define R 0
#define W VRING_DESC_F_WRITE
#define N VRING_DESC_F_NEXT

#define OK     VIRTIO_BLK_S_OK
#define IOERR  VIRTIO_BLK_S_IOERR
#define UNSUPP VIRTIO_BLK_S_UNSUPP

#define CTRLR_NAME "vhost-blk-controller-0" /* 22 bytes: the serial keeps the first 20 */
#define RAM_BLOCKS 2048                     /* x 512 = 1 MiB */

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

struct ctx {
	struct vh_mem mem;
	struct vh_vhost_ctrlr *c;
	struct vh_blk_ctrlr *b; /* c->dev */
	struct vh_session *s;
	struct vh_vq *vq;
	uint16_t used_seen;
	struct vring_used *used;
};

static struct vh_reactor *g_r;

/* ---- a bdev with a write cache that records what reaches it ---- */

static uint8_t g_spy_type, g_spy_flags; /* of the last request; written on the reactor */
static unsigned g_spy_count;

static void *
spy_channel_create(struct vh_bdev *b)
{
	return b;
}

static void
spy_channel_destroy(void *ch)
{
	(void)ch;
}

static int
spy_submit(void *ch, struct vh_bdev_io *io)
{
	(void)ch;
	STORE(g_spy_type, io->type);
	STORE(g_spy_flags, io->flags);
	STORE(g_spy_count, LOAD(g_spy_count) + 1);
	vh_bdev_io_complete_deferred(io, 0);
	return 0;
}

static const struct vh_bdev_module spy_module = {
        .name = "spy",
        .channel_create = spy_channel_create,
        .channel_destroy = spy_channel_destroy,
        .submit = spy_submit,
};

/* @write_cache: completed writes are volatile until FLUSH; the spy does FUA itself. */
static int
spy_create(const char *name, bool write_cache)
{
	struct vh_bdev *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		return -ENOMEM;
	}
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->module = &spy_module;
	b->block_size = 512;
	b->num_blocks = 2048;
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	              (1u << VH_BDEV_IO_FLUSH) | (1u << VH_BDEV_IO_DISCARD) |
	              (1u << VH_BDEV_IO_WRITE_ZEROES);
	b->write_cache = write_cache;
	b->fua = true;
	return vh_bdev_register(b);
}

/* ---- running things on the reactor ---- */

struct call {
	void (*fn)(void *arg);
	void *arg;
	int done;
};

static void
call_msg(void *arg)
{
	struct call *c = arg;

	c->fn(c->arg);
	STORE(c->done, 1);
}

static void
on_reactor(void (*fn)(void *arg), void *arg)
{
	struct call c = {.fn = fn, .arg = arg};

	assert_int_equal(vh_reactor_send(g_r, call_msg, &c), 0);
	assert_true(WAIT_UNTIL(LOAD(c.done), 5000));
}

static void
get_channel(void *arg)
{
	struct ctx *x = arg;

	assert_int_equal(vh_blk_ops.queue_start(x->vq), 0);
}

static void
put_channel(void *arg)
{
	struct ctx *x = arg;

	vh_blk_ops.queue_stop(x->vq);
}

static uint16_t g_head;

/* What vq_fetch() does for one head, then the device's handle(). */
static void
handle_msg(void *arg)
{
	struct ctx *x = arg;
	struct vh_vq *vq = x->vq;
	struct vh_req *req = vh_vq_req(vq, vq->free_slots[--vq->nfree]);

	req->head = g_head;
	req->inflight = true;
	vq->inflight++;
	vh_blk_ops.handle(vq, req);
}

/* ---- fixtures ---- */

static int
group_setup(void **state)
{
	struct vh_reactor_opts o = {.cpumask = 0x1, .idle_ns = 100000, .pin = false};

	(void)state;
	if (vh_reactors_start(&o) != 0) {
		return -1;
	}
	g_r = vh_reactor_get(0);
	if (vh_bdev_ram_create("ram512", RAM_BLOCKS, 512) != 0 ||
	    vh_bdev_ram_create("ram4k", 256, 4096) != 0 ||
	    vh_bdev_null_create("null0", 1024, 512) != 0 ||
	    vh_bdev_null_create("nullz", 1024, 512) != 0 ||
	    vh_bdev_null_set_read_zeroes(vh_bdev_find("nullz"), true) != 0 ||
	    spy_create("wc0", true) != 0 || spy_create("wt0", false) != 0) {
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	vh_reactors_stop();
	vh_bdev_fini();
	return 0;
}

static struct ctx *
ctx_new(const char *bdev, bool ro)
{
	struct ctx *x = calloc(1, sizeof(*x));
	struct vh_vq *vq;

	assert_non_null(x);
	guest_add_region(&x->mem, A_GPA, RSIZE, A_QVA);
	guest_add_region(&x->mem, B_GPA, RSIZE, B_QVA);
	x->c = calloc(1, sizeof(*x->c));
	snprintf(x->c->name, sizeof(x->c->name), "%s", CTRLR_NAME);
	x->b = calloc(1, sizeof(*x->b));
	assert_non_null(x->b);
	x->c->dev = x->b;
	x->c->ops = &vh_blk_ops;
	memcpy(x->b->serial, CTRLR_NAME, VIRTIO_BLK_ID_BYTES);
	x->b->bdev = vh_bdev_find(bdev);
	assert_non_null(x->b->bdev);
	assert_int_equal(vh_bdev_claim(x->b->bdev, CTRLR_NAME), 0);
	x->b->readonly = ro;
	x->c->num_queues = 4;
	x->c->cpumask = 1;
	x->c->listen_fd = -1;
	x->s = calloc(1, sizeof(*x->s));
	x->s->c = x->c;
	x->s->fd = -1;
	x->s->backend_fd = -1;
	x->s->mem = &x->mem;
	x->s->nvqs = 4;
	assert_int_equal(vh_blk_ops.session_init(x->s), 0);
	x->s->features = vh_blk_ops.features(x->c) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
	                 (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_F_VERSION_1) |
	                 (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	vq = x->vq = &x->s->vqs[0];
	vq->s = x->s;
	vq->ops = &vh_blk_ops;
	vq->log_all = &x->s->log_all;
	vq->kickfd = vq->callfd = vq->errfd = -1;
	snprintf(vq->prefix, sizeof(vq->prefix), "test/q0");
	vq->size = QSIZE;
	vq->addr.desc_user_addr = A_QVA + (DESC - A_GPA);
	vq->addr.avail_user_addr = A_QVA + (AVAIL - A_GPA);
	vq->addr.used_user_addr = A_QVA + (USED - A_GPA);
	vq->addr_set = true;
	vq->kick_set = true;
	vq->enabled = true;
	assert_int_equal(vh_vq_prepare(vq), 0);
	vq->reactor = g_r;
	x->used = vq->used;
	on_reactor(get_channel, x);
	assert_non_null(vq->dq);
	return x;
}

static int
ctx_free(void **state)
{
	struct ctx *x = *state;

	on_reactor(put_channel, x);
	vh_bdev_release(x->b->bdev);
	vh_blk_ops.session_fini(x->s);
	vh_vq_free_reqs(x->vq);
	vh_mem_unmap_all(&x->mem);
	free(x->s);
	free(x->b);
	free(x->c);
	free(x);
	return 0;
}

static int
setup_ram(void **state)
{
	*state = ctx_new("ram512", false);
	return 0;
}

static int
setup_ram4k(void **state)
{
	*state = ctx_new("ram4k", false);
	return 0;
}

static int
setup_ro(void **state)
{
	*state = ctx_new("ram512", true);
	return 0;
}

static int
setup_null(void **state)
{
	*state = ctx_new("null0", false);
	return 0;
}

static int
setup_nullz(void **state)
{
	*state = ctx_new("nullz", false);
	return 0;
}

static int
setup_wc(void **state)
{
	*state = ctx_new("wc0", false);
	return 0;
}

static int
setup_wt(void **state)
{
	*state = ctx_new("wt0", false);
	return 0;
}

/* ---- the guest side ---- */

static uint8_t *
P(struct ctx *x, uint64_t gpa)
{
	return guest_ptr(&x->mem, gpa);
}

static void
D(struct ctx *x, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	guest_set_desc(&x->mem, DESC, i, addr, len, flags, next);
}

static void
set_hdr(struct ctx *x, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {.type = type, .ioprio = 0, .sector = sector};

	guest_write(&x->mem, HDR, &h, sizeof(h));
}

static void
set_seg(struct ctx *x, uint64_t gpa, uint64_t sector, uint32_t num, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes s = {
	        .sector = sector, .num_sectors = num, .flags = flags};

	guest_write(&x->mem, gpa, &s, sizeof(s));
}

/*
 * Hand @head to the reactor and wait for its used entry. Returns the status byte at
 * @status_gpa; *used_len gets the used entry's len.
 */
static uint8_t
run_at(struct ctx *x, uint16_t head, uint64_t status_gpa, uint32_t *used_len)
{
	struct vring_used_elem *e;

	*P(x, status_gpa) = 0xee;
	g_head = head;
	on_reactor(handle_msg, x);
	if (!WAIT_UNTIL(LOAD(x->used->idx) == (uint16_t)(x->used_seen + 1), 5000)) {
		fail_msg("no used entry for head %u (used idx %u)", head, LOAD(x->used->idx));
	}
	e = &x->used->ring[x->used_seen % QSIZE];
	assert_int_equal(e->id, head);
	*used_len = e->len;
	x->used_seen++;
	/* The slot came back. */
	assert_int_equal(x->vq->inflight, 0);
	assert_int_equal(x->vq->nfree, x->vq->nslots);
	assert_false(x->vq->broken);
	return *P(x, status_gpa);
}

static uint8_t
run(struct ctx *x, uint32_t *used_len)
{
	return run_at(x, 0, STATUS, used_len);
}

/* Three-descriptor request: header, one data buffer, status. */
static uint8_t
req3(struct ctx *x, uint32_t type, uint64_t sector, uint64_t data, uint32_t len, bool data_w,
     uint32_t *used_len)
{
	set_hdr(x, type, sector);
	D(x, 0, HDR, 16, R | N, 1);
	D(x, 1, data, len, (data_w ? W : R) | N, 2);
	D(x, 2, STATUS, 1, W, 0);
	return run(x, used_len);
}

/* Two-descriptor request: header and status (FLUSH, or a request without data). */
static uint8_t
req2(struct ctx *x, uint32_t type, uint64_t sector, uint32_t *used_len)
{
	set_hdr(x, type, sector);
	D(x, 0, HDR, 16, R | N, 1);
	D(x, 1, STATUS, 1, W, 0);
	return run(x, used_len);
}

static void
fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(seed + i * 13 + (i >> 8));
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
expect_broken(struct ctx *x, uint16_t head)
{
	uint16_t idx = LOAD(x->used->idx);

	g_head = head;
	on_reactor(handle_msg, x);
	assert_true(x->vq->broken);
	/* No used entry for a malformed ring, and the slot was dropped, not leaked. */
	assert_int_equal(LOAD(x->used->idx), idx);
	assert_int_equal(x->vq->inflight, 0);
	assert_int_equal(x->vq->nfree, x->vq->nslots);
}

/* ---- IN / OUT ---- */

static void
test_out_in_roundtrip(void **state)
{
	struct ctx *x = *state;
	uint8_t pattern[1024];
	uint32_t len;

	fill(pattern, sizeof(pattern), 1);
	guest_write(&x->mem, DATA, pattern, sizeof(pattern));
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 8, DATA, 1024, false, &len), OK);
	assert_int_equal(len, 1);

	memset(P(x, DATA2), 0, 1024);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 8, DATA2, 1024, true, &len), OK);
	assert_int_equal(len, 1025);
	assert_memory_equal(P(x, DATA2), pattern, 1024);

	/* Read at a different sector: the second half. */
	memset(P(x, DATA2), 0, 1024);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 9, DATA2, 512, true, &len), OK);
	assert_int_equal(len, 513);
	assert_memory_equal(P(x, DATA2), pattern + 512, 512);
	/* Never written: zeroes. */
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 100, DATA2, 512, true, &len), OK);
	assert_true(all_zero(P(x, DATA2), 512));
}

static void
test_in_straddling_and_split(void **state)
{
	struct ctx *x = *state;
	uint8_t pattern[2048], got[2048];
	uint32_t len;

	fill(pattern, sizeof(pattern), 7);
	guest_write(&x->mem, DATA, pattern, sizeof(pattern));
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 40, DATA, 2048, false, &len), OK);

	/* One guest buffer across the A|B boundary, plus a second buffer. */
	set_hdr(x, VIRTIO_BLK_T_IN, 40);
	D(x, 0, HDR, 16, R | N, 3);
	D(x, 3, B_GPA - 512, 1536, W | N, 7);
	D(x, 7, DATA2, 512, W | N, 1);
	D(x, 1, STATUS, 1, W, 0);
	assert_int_equal(run(x, &len), OK);
	assert_int_equal(len, 2049);
	for (size_t i = 0; i < 1536; i++) {
		got[i] = *P(x, B_GPA - 512 + i);
	}
	memcpy(got + 1536, P(x, DATA2), 512);
	assert_memory_equal(got, pattern, 2048);

	/* Data and status in one writable buffer: the last byte is the status. */
	set_hdr(x, VIRTIO_BLK_T_IN, 41);
	D(x, 0, HDR, 16, R | N, 1);
	D(x, 1, DATA2, 513, W, 0);
	assert_int_equal(run_at(x, 0, DATA2 + 512, &len), OK);
	assert_int_equal(len, 513);
	assert_memory_equal(P(x, DATA2), pattern + 512, 512);

	/* The header split over two descriptors (8 + 8 bytes). */
	set_hdr(x, VIRTIO_BLK_T_IN, 42);
	D(x, 0, HDR, 8, R | N, 1);
	D(x, 1, HDR + 8, 8, R | N, 2);
	D(x, 2, DATA2, 512, W | N, 3);
	D(x, 3, STATUS, 1, W, 0);
	assert_int_equal(run(x, &len), OK);
	assert_int_equal(len, 513);
	assert_memory_equal(P(x, DATA2), pattern + 1024, 512);
}

static void
test_out_header_and_data_in_one_buffer(void **state)
{
	struct ctx *x = *state;
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_OUT, .sector = 60};
	uint8_t pattern[512];
	uint32_t len;

	/* VIRTIO 1.x: no assumptions about framing. Header and data share a descriptor. */
	fill(pattern, sizeof(pattern), 99);
	guest_write(&x->mem, DATA, &h, sizeof(h));
	guest_write(&x->mem, DATA + 16, pattern, sizeof(pattern));
	D(x, 0, DATA, 16 + 512, R | N, 1);
	D(x, 1, STATUS, 1, W, 0);
	assert_int_equal(run(x, &len), OK);
	assert_int_equal(len, 1);
	memset(P(x, DATA2), 0, 512);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 60, DATA2, 512, true, &len), OK);
	assert_memory_equal(P(x, DATA2), pattern, 512);
}

static void
test_range_checks(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, RAM_BLOCKS - 1, DATA, 512, true, &len), OK);
	assert_int_equal(len, 513);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, RAM_BLOCKS, DATA, 512, true, &len), IOERR);
	/* A failed read reports 1 byte written (the status), not data + 1. */
	assert_int_equal(len, 1);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, RAM_BLOCKS - 1, DATA, 1024, true, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, RAM_BLOCKS, DATA, 512, false, &len), IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, RAM_BLOCKS - 1, DATA, 1024, false, &len), IOERR);
	/* sector = 2^63; sector * 512 wrapping to 0; the largest shiftable sector. */
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 1ull << 63, DATA, 512, true, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 1ull << 55, DATA, 512, true, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 1ull << 55, DATA, 512, false, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, UINT64_MAX >> 9, DATA, 512, true, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, UINT64_MAX, DATA, 512, true, &len), IOERR);
	/* Not a whole number of 512-byte blocks. */
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 0, DATA, 100, true, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 0, DATA, 513, false, &len), IOERR);
}

static void
test_4k_alignment(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 8, DATA, 4096, true, &len), OK);
	assert_int_equal(len, 4097);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 1, DATA, 4096, true, &len), IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 8, DATA, 512, true, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 4, DATA, 4096, false, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 8, DATA, 4096 + 512, false, &len), IOERR);
	/* Capacity is 256 x 4 KiB = 2048 sectors. */
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 2040, DATA, 4096, true, &len), OK);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 2048, DATA, 4096, true, &len), IOERR);

	set_seg(x, SEG, 1, 8, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, 8, 4, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, 8, 8, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), OK);
	set_seg(x, SEG, 16, 12, 1);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), IOERR);
}

/* ---- FLUSH, GET_ID, unknown ---- */

static void
test_flush(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	assert_int_equal(req2(x, VIRTIO_BLK_T_FLUSH, 0, &len), OK);
	assert_int_equal(len, 1);
	/* The sector field of a flush is ignored. */
	assert_int_equal(req2(x, VIRTIO_BLK_T_FLUSH, 12345, &len), OK);
	assert_int_equal(len, 1);
}

static void
test_get_id(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	/* 20 bytes: the controller name cut at VIRTIO_BLK_ID_BYTES, no NUL. */
	memset(P(x, DATA), 0xaa, 64);
	assert_int_equal(req3(x, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true, &len), OK);
	assert_int_equal(len, 21);
	assert_memory_equal(P(x, DATA), "vhost-blk-controller", 20);
	assert_int_equal(*P(x, DATA + 20), 0xaa);

	/* A larger buffer: still 20 bytes, the rest untouched. */
	memset(P(x, DATA), 0xaa, 64);
	assert_int_equal(req3(x, VIRTIO_BLK_T_GET_ID, 0, DATA, 64, true, &len), OK);
	assert_int_equal(len, 21);
	assert_memory_equal(P(x, DATA), "vhost-blk-controller", 20);
	for (int i = 20; i < 64; i++) {
		assert_int_equal(*P(x, DATA + (uint64_t)i), 0xaa);
	}

	/* A short buffer gets a prefix. */
	memset(P(x, DATA), 0xaa, 64);
	assert_int_equal(req3(x, VIRTIO_BLK_T_GET_ID, 0, DATA, 8, true, &len), OK);
	assert_int_equal(len, 9);
	assert_memory_equal(P(x, DATA), "vhost-bl", 8);
	assert_int_equal(*P(x, DATA + 8), 0xaa);

	/* Split over two buffers. */
	memset(P(x, DATA), 0xaa, 64);
	memset(P(x, DATA2), 0xaa, 64);
	set_hdr(x, VIRTIO_BLK_T_GET_ID, 0);
	D(x, 0, HDR, 16, R | N, 1);
	D(x, 1, DATA, 5, W | N, 2);
	D(x, 2, DATA2, 30, W | N, 3);
	D(x, 3, STATUS, 1, W, 0);
	assert_int_equal(run(x, &len), OK);
	assert_int_equal(len, 21);
	assert_memory_equal(P(x, DATA), "vhost", 5);
	assert_memory_equal(P(x, DATA2), "-blk-controller", 15);
	assert_int_equal(*P(x, DATA2 + 15), 0xaa);

	/* No buffer at all: nothing copied. */
	assert_int_equal(req2(x, VIRTIO_BLK_T_GET_ID, 0, &len), OK);
	assert_int_equal(len, 1);
}

static void
test_unknown_type(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	assert_int_equal(req2(x, 99, 0, &len), UNSUPP);
	assert_int_equal(len, 1);
	assert_int_equal(req2(x, 2, 0, &len), UNSUPP); /* legacy SCSI command */
	assert_int_equal(req3(x, 0xffffffffu, 0, DATA, 512, true, &len), UNSUPP);
	assert_int_equal(len, 1);
	assert_int_equal(req3(x, 0x80000000u | VIRTIO_BLK_T_IN, 0, DATA, 512, true, &len), UNSUPP);
}

static void
test_header_errors(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	/* The header in a device-writable buffer. */
	set_hdr(x, VIRTIO_BLK_T_IN, 0);
	D(x, 0, HDR, 16, W | N, 1);
	D(x, 1, DATA, 512, W | N, 2);
	D(x, 2, STATUS, 1, W, 0);
	assert_int_equal(run(x, &len), IOERR);
	assert_int_equal(len, 1);
	/* Only 8 readable header bytes. */
	D(x, 0, HDR, 8, R | N, 1);
	assert_int_equal(run(x, &len), IOERR);
	assert_int_equal(len, 1);
	/* 8 readable, 8 writable. */
	D(x, 0, HDR, 8, R | N, 1);
	D(x, 1, HDR + 8, 8, W | N, 2);
	assert_int_equal(run(x, &len), IOERR);
}

static void
test_bad_buffers(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	/* Data in unmapped memory: IOERR, the status byte still written. */
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 0, HOLE, 512, true, &len), IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 0, HOLE, 512, false, &len), IOERR);
	assert_int_equal(len, 1);
	/* A wrapping address. */
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 0, UINT64_MAX - 0xff, 512, true, &len), IOERR);
}

static void
test_malformed_ring_breaks_queue(void **state)
{
	struct ctx *x = *state;

	D(x, 0, HDR, 16, R | N, 1);
	D(x, 1, DATA, 512, W | N, 0);
	expect_broken(x, 0);
}

static void
test_no_status_breaks_queue(void **state)
{
	struct ctx *x = *state;

	set_hdr(x, VIRTIO_BLK_T_OUT, 0);
	D(x, 0, HDR, 16, R | N, 1);
	D(x, 1, DATA, 512, R, 0);
	expect_broken(x, 0);
}

/* ---- DISCARD / WRITE_ZEROES ---- */

static void
write_pattern(struct ctx *x, uint64_t sector, uint32_t nsect, uint8_t seed)
{
	uint32_t len;

	fill(P(x, DATA), nsect * 512u, seed);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, sector, DATA, nsect * 512u, false, &len), OK);
}

static void
read_back(struct ctx *x, uint64_t sector, uint32_t nsect)
{
	uint32_t len;

	memset(P(x, DATA2), 0x55, nsect * 512u);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, sector, DATA2, nsect * 512u, true, &len), OK);
}

static void
test_discard_and_write_zeroes(void **state)
{
	struct ctx *x = *state;
	uint8_t expect[4096];
	uint32_t len;

	write_pattern(x, 16, 8, 3);
	memcpy(expect, P(x, DATA), 4096);
	set_seg(x, SEG, 17, 2, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), OK);
	assert_int_equal(len, 1);
	read_back(x, 16, 8);
	memset(expect + 512, 0, 1024);
	assert_memory_equal(P(x, DATA2), expect, 4096);

	write_pattern(x, 16, 8, 4);
	memcpy(expect, P(x, DATA), 4096);
	set_seg(x, SEG, 20, 4, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), OK);
	assert_int_equal(len, 1);
	read_back(x, 16, 8);
	memset(expect + 2048, 0, 2048);
	assert_memory_equal(P(x, DATA2), expect, 4096);

	/* WRITE_ZEROES may carry UNMAP. */
	write_pattern(x, 16, 8, 5);
	set_seg(x, SEG, 16, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), OK);
	read_back(x, 16, 8);
	assert_true(all_zero(P(x, DATA2), 4096));

	/* The segment split over two descriptors; the header's sector field is ignored. */
	write_pattern(x, 16, 8, 6);
	set_seg(x, SEG, 16, 8, 0);
	set_hdr(x, VIRTIO_BLK_T_DISCARD, 999999);
	D(x, 0, HDR, 16, R | N, 1);
	D(x, 1, SEG, 8, R | N, 2);
	D(x, 2, SEG + 8, 8, R | N, 3);
	D(x, 3, STATUS, 1, W, 0);
	assert_int_equal(run(x, &len), OK);
	read_back(x, 16, 8);
	assert_true(all_zero(P(x, DATA2), 4096));

	/* The whole disk (large enough for the back-end to punch pages out). */
	write_pattern(x, RAM_BLOCKS - 8, 8, 7);
	set_seg(x, SEG, 0, RAM_BLOCKS, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), OK);
	read_back(x, RAM_BLOCKS - 8, 8);
	assert_true(all_zero(P(x, DATA2), 4096));
}

static void
test_discard_errors(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	/* UNMAP is defined for WRITE_ZEROES only; other flag bits are reserved. */
	set_seg(x, SEG, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), UNSUPP);
	assert_int_equal(len, 1);
	set_seg(x, SEG, 0, 8, 2);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), UNSUPP);
	set_seg(x, SEG, 0, 8, 3);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), UNSUPP);
	set_seg(x, SEG, 0, 8, 0x80000000u);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), UNSUPP);

	/* 0 segments, 2 segments (max_discard_seg is 1), partial segments. */
	assert_int_equal(req2(x, VIRTIO_BLK_T_DISCARD, 0, &len), IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(req2(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, &len), IOERR);
	set_seg(x, SEG, 0, 8, 0);
	set_seg(x, SEG + 16, 8, 8, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 32, false, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 32, false, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 15, false, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 17, false, &len), IOERR);
	/* The segment in a device-writable buffer. */
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, true, &len), IOERR);

	/* Sector counts and ranges. */
	set_seg(x, SEG, 0, 0, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, 0, (1u << 22) + 1, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, 0, UINT32_MAX, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, RAM_BLOCKS, 1, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, RAM_BLOCKS - 1, 2, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, RAM_BLOCKS - 1, 1, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), OK);
	set_seg(x, SEG, 1ull << 63, 1, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, 1ull << 55, 8, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	set_seg(x, SEG, UINT64_MAX, 1, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), IOERR);

	/* Not negotiated: unsupported. */
	set_seg(x, SEG, 0, 8, 0);
	x->s->features &= ~(1ull << VIRTIO_BLK_F_DISCARD);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), UNSUPP);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), OK);
	x->s->features &= ~(1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), UNSUPP);
}

static void
test_readonly(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 0, DATA, 512, false, &len), IOERR);
	assert_int_equal(len, 1);
	set_seg(x, SEG, 0, 8, 0);
	assert_int_equal(req3(x, VIRTIO_BLK_T_DISCARD, 0, SEG, 16, false, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, SEG, 16, false, &len), IOERR);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 0, DATA, 512, true, &len), OK);
	assert_int_equal(len, 513);
	assert_int_equal(req2(x, VIRTIO_BLK_T_FLUSH, 0, &len), OK);
	assert_int_equal(req3(x, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true, &len), OK);
}

static void
test_null_bdev_reads(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	fill(P(x, DATA), 4096, 9);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 0, DATA, 4096, false, &len), OK);
	/* By default (as SPDK's null bdev) a read succeeds and transfers nothing. */
	memset(P(x, DATA2), 0x77, 4096);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 0, DATA2, 4096, true, &len), OK);
	assert_int_equal(len, 4097);
	for (size_t i = 0; i < 4096; i++) {
		assert_int_equal(P(x, DATA2)[i], 0x77);
	}
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 1024, DATA2, 512, true, &len), IOERR);
}

static void
test_null_bdev_read_zeroes(void **state)
{
	struct ctx *x = *state;
	uint32_t len;

	fill(P(x, DATA), 4096, 9);
	assert_int_equal(req3(x, VIRTIO_BLK_T_OUT, 0, DATA, 4096, false, &len), OK);
	memset(P(x, DATA2), 0x77, 4096);
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 0, DATA2, 4096, true, &len), OK);
	assert_int_equal(len, 4097);
	assert_true(all_zero(P(x, DATA2), 4096));
	assert_int_equal(req3(x, VIRTIO_BLK_T_IN, 1024, DATA2, 512, true, &len), IOERR);
}

/* ---- write-through: which writes must be durable (VIRTIO 1.2 §5.2.6.2) ---- */

/* Run one message through the real handlers, as the control thread does; it must succeed. */
static void
send_msg(struct ctx *x, uint32_t request, const void *payload, uint32_t size)
{
	struct vh_session *s = x->s;

	memset(&s->msg, 0, sizeof(s->msg));
	s->msg.request = request;
	s->msg.flags = VHOST_USER_VERSION;
	s->msg.size = size;
	memcpy(&s->msg.payload, payload, size);
	s->nfds = 0;
	vh_msg_dispatch(s);
	assert_false(s->closing);
}

static void
set_features(struct ctx *x, uint64_t features)
{
	send_msg(x, VHOST_USER_SET_FEATURES, &features, sizeof(features));
}

/* The driver writes the writeback byte (QEMU forwards it as SET_CONFIG of offset 32, size 1). */
static void
set_wce(struct ctx *x, uint8_t wce)
{
	struct vhost_user_config c = {.offset = offsetof(struct virtio_blk_config, wce), .size = 1};

	c.region[0] = wce;
	send_msg(x, VHOST_USER_SET_CONFIG, &c, VHOST_USER_CONFIG_HDR_SIZE + 1);
}

static uint8_t
config_wce(struct ctx *x)
{
	uint8_t raw[VHOST_USER_MAX_CONFIG_SIZE] = {0};
	struct virtio_blk_config cfg;

	vh_blk_ops.get_config(x->s, raw);
	memcpy(&cfg, raw, sizeof(cfg));
	return cfg.wce;
}

/* GET_CONFIG as msg.c answers it: the front-end reads, and may keep, the configuration. */
static uint8_t
read_config(struct ctx *x)
{
	uint8_t wce = config_wce(x);

	vh_blk_ops.config_read(x->s);
	return wce;
}

/* The flags the bdev saw for a request of virtio type @type (OUT, IN, WRITE_ZEROES, ...). */
static uint8_t
flags_of(struct ctx *x, uint32_t type)
{
	unsigned n = LOAD(g_spy_count);
	uint32_t len;

	fill(P(x, DATA), 4096, 9);
	if (type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) {
		set_seg(x, SEG, 8, 8, 0);
		assert_int_equal(req3(x, type, 0, SEG, 16, false, &len), OK);
	} else if (type == VIRTIO_BLK_T_FLUSH) {
		assert_int_equal(req2(x, type, 0, &len), OK);
	} else {
		assert_int_equal(req3(x, type, 8, DATA, 4096, type == VIRTIO_BLK_T_IN, &len), OK);
	}
	assert_int_equal(LOAD(g_spy_count), n + 1);
	return LOAD(g_spy_flags) & VH_BDEV_IO_F_FUA;
}

static bool
durable_writes(struct ctx *x)
{
	return flags_of(x, VIRTIO_BLK_T_OUT) != 0;
}

#define FUA             VH_BDEV_IO_F_FUA
#define F_FLUSH         (1ull << VIRTIO_BLK_F_FLUSH)
#define F_CONFIG_WCE    (1ull << VIRTIO_BLK_F_CONFIG_WCE)
#define BLK_FEATURES(x) (vh_blk_ops.features((x)->c) | (1ull << VIRTIO_F_VERSION_1))
#define WT_FEATURES(x)  (BLK_FEATURES(x) & ~(F_FLUSH | F_CONFIG_WCE))
#define BLK_SESSION(x)  ((struct vh_blk_session *)(x)->s->dev)

/*
 * QEMU with a Linux guest: FLUSH and CONFIG_WCE, writeback 1 (the bdev has a cache): plain
 * writes. The guest switches to write-through at run time (echo "write through" >
 * /sys/block/vda/queue/write_cache): every write and write-zeroes is durable, discards, reads
 * and flushes are not flagged; and back to writeback.
 */
static void
test_write_through_config_wce(void **state)
{
	struct ctx *x = *state;

	BLK_SESSION(x)->wce = 1; /* as vh_session_new() starts it for a bdev with a write cache */
	assert_int_equal(read_config(x), 1); /* QEMU realizes the device */
	set_features(x, BLK_FEATURES(x));
	assert_int_equal(config_wce(x), 1);
	assert_false(durable_writes(x));
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_WRITE_ZEROES), 0);
	set_wce(x, 0);
	assert_int_equal(config_wce(x), 0);
	assert_true(durable_writes(x));
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_WRITE_ZEROES), FUA);
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_DISCARD), 0);
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_IN), 0);
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_FLUSH), 0);
	set_wce(x, 1);
	assert_false(durable_writes(x));
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_WRITE_ZEROES), 0);
}

/*
 * QEMU answers its guest from the configuration it read at realize, and does not read it again
 * when it reconnects. A new session of the controller (a reconnect) starts from what the last
 * front-end saw or set, so a guest that chose write-through keeps durable writes.
 */
static void
test_wce_remembered_across_sessions(void **state)
{
	struct ctx *x = *state;

	BLK_SESSION(x)->wce = 1;
	assert_int_equal(read_config(x), 1);
	set_features(x, BLK_FEATURES(x));
	set_wce(x, 0);
	assert_true(durable_writes(x));
	/* The connection drops; the same QEMU reconnects: no GET_CONFIG this time. */
	vh_blk_ops.session_fini(x->s);
	assert_int_equal(vh_blk_ops.session_init(x->s), 0);
	set_features(x, BLK_FEATURES(x));
	assert_int_equal(config_wce(x), 0);
	assert_true(durable_writes(x));
	/* Back to writeback, then another reconnect: writeback again. */
	set_wce(x, 1);
	vh_blk_ops.session_fini(x->s);
	assert_int_equal(vh_blk_ops.session_init(x->s), 0);
	set_features(x, BLK_FEATURES(x));
	assert_false(durable_writes(x));
}

/*
 * A front-end that starts without reading the configuration, on a controller with no memory of
 * what it read before (created anew by a restart without a supervisor): its guest may believe
 * write-through, so it is served write-through. One that reads first gets writeback.
 */
static void
test_wce_unknown_is_write_through(void **state)
{
	struct ctx *x = *state;

	BLK_SESSION(x)->wce = 1;
	set_features(x, BLK_FEATURES(x));
	assert_int_equal(config_wce(x), 0);
	assert_true(durable_writes(x));
	/* The guest may still choose writeback; then it has it. */
	set_wce(x, 1);
	assert_false(durable_writes(x));

	vh_blk_ops.session_fini(x->s);
	x->b->wce_local.known = 0;
	assert_int_equal(vh_blk_ops.session_init(x->s), 0);
	assert_int_equal(read_config(x), 1);
	set_features(x, BLK_FEATURES(x));
	assert_false(durable_writes(x));
}

/*
 * A driver that cannot flush: SPDK's and DPDK's virtio-user (neither FLUSH nor CONFIG_WCE), or
 * one that acks CONFIG_WCE without FLUSH (writeback starts at 0 and stays there: writing 1 is
 * refused by keeping 0, since nothing could make such writes durable). FLUSH alone: writeback.
 */
static void
test_write_through_no_flush(void **state)
{
	struct ctx *x = *state;

	BLK_SESSION(x)->wce = 1; /* as vh_session_new() starts it for a bdev with a write cache */
	set_features(x, WT_FEATURES(x));
	assert_true(durable_writes(x));
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_WRITE_ZEROES), FUA);
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_DISCARD), 0);

	set_features(x, WT_FEATURES(x) | F_FLUSH);
	assert_false(durable_writes(x));

	assert_int_equal(config_wce(x), 1);
	set_features(x, WT_FEATURES(x) | F_CONFIG_WCE);
	assert_int_equal(config_wce(x), 0);
	assert_true(durable_writes(x));
	set_wce(x, 1);
	assert_int_equal(config_wce(x), 0);
	assert_true(durable_writes(x));

	/* Renegotiated with FLUSH (a new driver): writeback is the driver's again. */
	set_features(x, BLK_FEATURES(x));
	assert_true(durable_writes(x)); /* still 0 from before, as the driver reads it */
	set_wce(x, 1);
	assert_false(durable_writes(x));
}

/* A bdev without a write cache is durable anyway: nothing is flagged, whatever the driver. */
static void
test_write_through_no_cache(void **state)
{
	struct ctx *x = *state;

	set_features(x, WT_FEATURES(x));
	assert_false(durable_writes(x));
	assert_int_equal(flags_of(x, VIRTIO_BLK_T_WRITE_ZEROES), 0);
	set_features(x, BLK_FEATURES(x));
	set_wce(x, 0);
	assert_false(durable_writes(x));
}

/* A session before any SET_FEATURES (acked nothing, so no FLUSH): write-through. */
static void
test_write_through_initial(void **state)
{
	struct ctx *x = *state;

	x->s->features = 0;
	BLK_SESSION(x)->wce = 1;
	vh_blk_cache_mode_update(x->s);
	assert_true(LOAD(BLK_SESSION(x)->write_through));
	x->s->features = BLK_FEATURES(x);
	vh_blk_cache_mode_update(x->s);
	assert_false(LOAD(BLK_SESSION(x)->write_through));
}

/* ---- config space and features (control thread, no I/O) ---- */

static void
test_config_layout(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct virtio_blk_config), 60);
	assert_int_equal(offsetof(struct virtio_blk_config, size_max), 8);
	assert_int_equal(offsetof(struct virtio_blk_config, seg_max), 12);
	assert_int_equal(offsetof(struct virtio_blk_config, blk_size), 20);
	assert_int_equal(offsetof(struct virtio_blk_config, physical_block_exp), 24);
	assert_int_equal(offsetof(struct virtio_blk_config, min_io_size), 26);
	assert_int_equal(offsetof(struct virtio_blk_config, opt_io_size), 28);
	assert_int_equal(offsetof(struct virtio_blk_config, wce), 32);
	assert_int_equal(offsetof(struct virtio_blk_config, num_queues), 34);
	assert_int_equal(offsetof(struct virtio_blk_config, max_discard_sectors), 36);
	assert_int_equal(offsetof(struct virtio_blk_config, max_discard_seg), 40);
	assert_int_equal(offsetof(struct virtio_blk_config, discard_sector_alignment), 44);
	assert_int_equal(offsetof(struct virtio_blk_config, max_write_zeroes_sectors), 48);
	assert_int_equal(offsetof(struct virtio_blk_config, max_write_zeroes_seg), 52);
	assert_int_equal(offsetof(struct virtio_blk_config, write_zeroes_may_unmap), 56);
	assert_int_equal(sizeof(struct virtio_blk_outhdr), 16);
	assert_int_equal(sizeof(struct virtio_blk_discard_write_zeroes), 16);
}

static void
check_config(struct ctx *x, uint64_t capacity, uint32_t bs)
{
	struct vh_blk_session *bsess = x->s->dev;
	uint8_t raw[VHOST_USER_MAX_CONFIG_SIZE];
	struct virtio_blk_config cfg;

	memset(raw, 0xff, sizeof(raw));
	bsess->wce = 1;
	vh_blk_ops.get_config(x->s, raw);
	memcpy(&cfg, raw, sizeof(cfg));
	assert_int_equal(cfg.capacity, capacity);
	assert_int_equal(cfg.size_max, 128 * 1024);
	assert_int_equal(cfg.seg_max, 126);
	assert_int_equal(cfg.geometry.cylinders, 0);
	assert_int_equal(cfg.geometry.heads, 0);
	assert_int_equal(cfg.geometry.sectors, 0);
	assert_int_equal(cfg.blk_size, bs);
	assert_int_equal(cfg.physical_block_exp, 0);
	assert_int_equal(cfg.alignment_offset, 0);
	assert_int_equal(cfg.min_io_size, 1);
	assert_int_equal(cfg.opt_io_size, 0);
	assert_int_equal(cfg.wce, 1);
	assert_int_equal(cfg.unused, 0);
	assert_int_equal(cfg.num_queues, 4);
	assert_int_equal(cfg.max_discard_sectors, 1u << 22);
	assert_int_equal(cfg.max_discard_seg, 1);
	assert_int_equal(cfg.discard_sector_alignment, bs / 512);
	assert_int_equal(cfg.max_write_zeroes_sectors, 1u << 22);
	assert_int_equal(cfg.max_write_zeroes_seg, 1);
	assert_int_equal(cfg.write_zeroes_may_unmap, 1);
	assert_int_equal(cfg.unused1[0] | cfg.unused1[1] | cfg.unused1[2], 0);
	bsess->wce = 0;
	vh_blk_ops.get_config(x->s, raw);
	memcpy(&cfg, raw, sizeof(cfg));
	assert_int_equal(cfg.wce, 0);
}

static void
test_config_ram512(void **state)
{
	check_config(*state, RAM_BLOCKS, 512);
}

static void
test_config_ram4k(void **state)
{
	check_config(*state, 256 * 8, 4096);
}

#define BASE_FEATURES                                                                              \
	((1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                        \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |                          \
	 (1ull << VIRTIO_BLK_F_TOPOLOGY) | (1ull << VIRTIO_BLK_F_CONFIG_WCE) |                     \
	 (1ull << VIRTIO_BLK_F_MQ))

static void
test_features(void **state)
{
	struct vh_bdev fake = {.name = "fake", .block_size = 512, .num_blocks = 8};
	struct vh_blk_ctrlr b = {.bdev = vh_bdev_find("ram512")};
	struct vh_vhost_ctrlr c = {.dev = &b, .ops = &vh_blk_ops};

	(void)state;
	assert_int_equal(vh_blk_ops.features(&c), BASE_FEATURES | (1ull << VIRTIO_BLK_F_DISCARD) |
	                                                  (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	b.readonly = true;
	assert_int_equal(vh_blk_ops.features(&c), BASE_FEATURES | (1ull << VIRTIO_BLK_F_RO));

	/* Only what the bdev supports is offered. */
	b.bdev = &fake;
	b.readonly = false;
	fake.io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE);
	assert_int_equal(vh_blk_ops.features(&c), BASE_FEATURES);
	fake.io_types |= 1u << VH_BDEV_IO_WRITE_ZEROES;
	assert_int_equal(vh_blk_ops.features(&c),
	                 BASE_FEATURES | (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	fake.io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_DISCARD);
	assert_int_equal(vh_blk_ops.features(&c), BASE_FEATURES | (1ull << VIRTIO_BLK_F_DISCARD));
	b.readonly = true;
	assert_int_equal(vh_blk_ops.features(&c), BASE_FEATURES | (1ull << VIRTIO_BLK_F_RO));
}

#define T(fn, s) cmocka_unit_test_setup_teardown(fn, s, ctx_free)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_out_in_roundtrip, setup_ram),
	        T(test_in_straddling_and_split, setup_ram),
	        T(test_out_header_and_data_in_one_buffer, setup_ram),
	        T(test_range_checks, setup_ram),
	        T(test_4k_alignment, setup_ram4k),
	        T(test_flush, setup_ram),
	        T(test_get_id, setup_ram),
	        T(test_unknown_type, setup_ram),
	        T(test_header_errors, setup_ram),
	        T(test_bad_buffers, setup_ram),
	        T(test_malformed_ring_breaks_queue, setup_ram),
	        T(test_no_status_breaks_queue, setup_ram),
	        T(test_discard_and_write_zeroes, setup_ram),
	        T(test_discard_errors, setup_ram),
	        T(test_readonly, setup_ro),
	        T(test_null_bdev_reads, setup_null),
	        T(test_null_bdev_read_zeroes, setup_nullz),
	        T(test_write_through_config_wce, setup_wc),
	        T(test_wce_remembered_across_sessions, setup_wc),
	        T(test_wce_unknown_is_write_through, setup_wc),
	        T(test_write_through_no_flush, setup_wc),
	        T(test_write_through_no_cache, setup_wt),
	        T(test_write_through_initial, setup_wc),
	        cmocka_unit_test(test_config_layout),
	        T(test_config_ram512, setup_ram),
	        T(test_config_ram4k, setup_ram4k),
	        cmocka_unit_test(test_features),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
