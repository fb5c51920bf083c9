/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the uring back-end (and, compiled again from test_aio.c, of the aio one): the
 * back-end is driven through a bdev channel on a real reactor, exactly as the vhost layer does.
 * The main thread plays the control thread (create, delete, rescan); request batches run in
 * reactor messages and the main thread waits for their callbacks with a deadline.
 *
 * Checked: every request type against a shadow copy and against the file afterwards, aligned
 * and unaligned buffers (the buffered fallback of O_DIRECT), more requests than the ring holds,
 * the completion contract (callback later, on the reactor, exactly once), the short-I/O state
 * machine, a file truncated under us (-EIO, no crash), create errors, rescan, delete while
 * claimed, a loop block device when one can be set up, and durable requests (VH_BDEV_IO_F_FUA):
 * the write handed to the kernel carries RWF_DSYNC exactly when asked (counted where the SQE or
 * iocb is filled), written pages are clean in the page cache when the callback runs (cachestat),
 * and what cannot carry the flag is followed by an fdatasync.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bdev/bdev_file.h"
#include "bdev/bdev_module.h"
#include "bdev/file_common.h"
#include "core/log.h"
#include "core/reactor.h"

#ifdef VH_TEST_ENGINE_AIO
#define ENGINE             "aio"
#define ENGINE_CREATE_OPTS vh_bdev_aio_create_ex
#define engine_delete      vh_bdev_aio_delete
#else
#define ENGINE             "uring"
#define ENGINE_CREATE_OPTS vh_bdev_uring_create_ex
#define engine_delete      vh_bdev_uring_delete
#endif

#define DISK_SIZE   (8u << 20)
#define MAX_BATCH   2048
#define MAX_IOV     8
#define DEADLINE_MS 20000

static char g_dir[64];
static char g_shm_dir[64]; /* on tmpfs, or empty when there is none */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll @flag with a deadline: the reactor runs on its own thread. */
static bool
wait_flag(const int *flag, int target)
{
	int64_t end = now_ms() + DEADLINE_MS;
	struct timespec ts = {0, 100000};

	while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < target) {
		if (now_ms() > end) {
			return false;
		}
		nanosleep(&ts, NULL);
	}
	return true;
}

/* A 4 KiB-aligned buffer (aligned_alloc wants a size that is a multiple of the alignment). */
static uint8_t *
abuf(uint64_t size)
{
	uint8_t *p = aligned_alloc(4096, (size + 4095) & ~4095ull);

	assert_non_null(p);
	return p;
}

/* --- running things on the reactor --- */

struct call {
	void (*fn)(void *arg);
	void *arg;
	int done;
};

static void
call_msg(void *p)
{
	struct call *c = p;

	c->fn(c->arg);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
}

static void
on_reactor(void (*fn)(void *arg), void *arg)
{
	struct call c = {fn, arg, 0};

	assert_int_equal(vh_reactor_send(vh_reactor_get(0), call_msg, &c), 0);
	assert_true(wait_flag(&c.done, 1));
}

/* --- requests --- */

struct tio {
	struct vh_bdev_io io;
	struct iovec iov[MAX_IOV];
	int status;
	int calls;
	bool in_reactor;
};

struct batch {
	struct vh_bdev_channel *ch;
	struct tio *t;
	unsigned n;
	int submit_rc[MAX_BATCH];
	bool submitting;
	int completed;
	int bad_context; /* callbacks inside submit or off the reactor */
};

static struct batch *g_batch;

static void
tio_cb(struct vh_bdev_io *io, int status)
{
	struct tio *t = VH_CONTAINER_OF(io, struct tio, io);

	t->status = status;
	t->calls++;
	t->in_reactor = vh_reactor_self() != NULL;
	if (g_batch->submitting || !t->in_reactor) {
		g_batch->bad_context++;
	}
	__atomic_fetch_add(&g_batch->completed, 1, __ATOMIC_RELEASE);
}

static void
submit_msg(void *arg)
{
	struct batch *b = arg;

	b->submitting = true;
	for (unsigned i = 0; i < b->n; i++) {
		b->submit_rc[i] = vh_bdev_submit(b->ch, &b->t[i].io);
		if (b->submit_rc[i] < 0) {
			__atomic_fetch_add(&b->completed, 1, __ATOMIC_RELEASE);
		}
	}
	b->submitting = false;
}

struct chan_op {
	struct vh_bdev *b;
	struct vh_bdev_channel *ch;
};

static void
get_msg(void *arg)
{
	struct chan_op *c = arg;

	c->ch = vh_bdev_channel_get(c->b);
}

static void
put_msg(void *arg)
{
	struct chan_op *c = arg;

	vh_bdev_channel_put(c->ch);
}

static struct vh_bdev_channel *
chan_get(struct vh_bdev *b)
{
	struct chan_op c = {b, NULL};

	on_reactor(get_msg, &c);
	assert_non_null(c.ch);
	return c.ch;
}

static void
chan_put(struct vh_bdev_channel *ch)
{
	struct chan_op c = {NULL, ch};

	on_reactor(put_msg, &c);
}

/* Submit t[0..n) in one reactor message and wait for every completion. */
static void
run_batch(struct vh_bdev_channel *ch, struct tio *t, unsigned n)
{
	struct batch b = {.ch = ch, .t = t, .n = n};

	assert_true(n <= MAX_BATCH);
	for (unsigned i = 0; i < n; i++) {
		t[i].status = 1;
		t[i].calls = 0;
		t[i].io.cb = tio_cb;
	}
	g_batch = &b;
	assert_int_equal(vh_reactor_send(vh_reactor_get(0), submit_msg, &b), 0);
	assert_true(wait_flag(&b.completed, (int)n));
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(b.submit_rc[i], 0);
		assert_int_equal(t[i].calls, 1);
	}
	assert_int_equal(b.bad_context, 0);
	g_batch = NULL;
}

static void
prep(struct tio *t, uint8_t type, uint64_t off, uint64_t len)
{
	memset(&t->io, 0, sizeof(t->io));
	t->io.type = type;
	t->io.offset = off;
	t->io.length = len;
	t->io.iov = t->iov;
}

/* Split @buf[0..len) into 1..MAX_IOV iovecs; cut points on 512-byte or odd boundaries. */
static void
prep_iov(struct tio *t, uint8_t *buf, uint64_t len, bool unaligned)
{
	unsigned n = 1 + (unsigned)(rnd() % MAX_IOV);
	uint64_t pos = 0;

	t->io.iovcnt = 0;
	for (unsigned i = 0; i < n && pos < len; i++) {
		uint64_t chunk = len - pos;

		if (i + 1 < n && chunk > 1) {
			chunk = 1 + rnd() % chunk;
			if (!unaligned) {
				chunk = (chunk + 511) & ~511ull;
				chunk = VH_MIN(chunk, len - pos);
			}
		}
		t->iov[i].iov_base = buf + pos;
		t->iov[i].iov_len = chunk;
		t->io.iovcnt++;
		pos += chunk;
	}
	if (pos < len) {
		t->iov[t->io.iovcnt - 1].iov_len += len - pos;
	}
}

/* --- fixtures --- */

static int
engine_create_ex(const char *name, const char *path, uint32_t block_size, char *err, size_t errlen)
{
	struct vh_bdev_file_opts o = {.block_size = block_size, .inline_io = true};

	return ENGINE_CREATE_OPTS(name, path, &o, err, errlen);
}

struct env {
	char path[128];
	bool inline_io;
	struct vh_bdev *b;
	struct vh_bdev_channel *ch;
	uint8_t *shadow;
	uint64_t size;
};

static void
make_file(const char *path, uint64_t size, uint8_t *shadow)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	if (shadow != NULL) {
		for (uint64_t i = 0; i < size; i++) {
			shadow[i] = (uint8_t)rnd();
		}
		assert_int_equal(pwrite(fd, shadow, size, 0), (ssize_t)size);
	} else {
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
	}
	close(fd);
}

static void
check_file(const char *path, const uint8_t *shadow, uint64_t size)
{
	uint8_t *buf = malloc(size);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	for (uint64_t i = 0; i < size; i++) {
		if (buf[i] != shadow[i]) {
			fail_msg("file differs from the shadow at byte %llu",
			         (unsigned long long)i);
		}
	}
	free(buf);
}

/* A disk file in @dir; @inline_io as the option asks (it only matters on tmpfs). */
static int
env_setup_in(void **state, const char *dir, bool inline_io)
{
	static unsigned seq;
	struct vh_bdev_file_opts o = {.block_size = 0, .inline_io = inline_io};
	struct env *e;
	char err[256];

	if (dir[0] == '\0') {
		skip(); /* no tmpfs here */
	}
	e = calloc(1, sizeof(*e));
	assert_non_null(e);
	e->size = DISK_SIZE;
	e->inline_io = inline_io && dir == g_shm_dir;
	e->shadow = malloc(e->size);
	assert_non_null(e->shadow);
	snprintf(e->path, sizeof(e->path), "%s/disk%u.img", dir, seq++);
	make_file(e->path, e->size, e->shadow);
	assert_int_equal(ENGINE_CREATE_OPTS("d0", e->path, &o, err, sizeof(err)), 0);
	e->b = vh_bdev_find("d0");
	assert_non_null(e->b);
	assert_string_equal(vh_bdev_module_name(e->b), ENGINE);
	e->ch = chan_get(e->b);
	*state = e;
	return 0;
}

static int
env_setup(void **state)
{
	return env_setup_in(state, g_dir, true);
}

/* tmpfs, reads and writes copied inline on the reactor. */
static int
env_setup_shm(void **state)
{
	return env_setup_in(state, g_shm_dir, true);
}

/* tmpfs with inline copies off: everything goes through the engine. */
static int
env_setup_shm_engine(void **state)
{
	return env_setup_in(state, g_shm_dir, false);
}

static json_int_t
info_int(struct env *e, const char *key)
{
	json_t *ds = json_object();
	json_int_t n;

	e->b->module->info_json(e->b, ds);
	n = json_integer_value(json_object_get(json_object_get(ds, ENGINE), key));
	json_decref(ds);
	return n;
}

/* One request on @buf (1 iovec, or 2 when @split), checked against the shadow. */
static void
rw_check(struct env *e, uint8_t *buf, uint64_t off, uint32_t len, uint8_t fill, bool split)
{
	struct tio t;

	memset(buf, fill, len);
	prep(&t, VH_BDEV_IO_WRITE, off, len);
	t.iov[0] = (struct iovec){buf, split ? len / 2 : len};
	t.iov[1] = (struct iovec){buf + len / 2, len / 2};
	t.io.iovcnt = split ? 2 : 1;
	run_batch(e->ch, &t, 1);
	assert_int_equal(t.status, 0);
	memcpy(e->shadow + off, buf, len);
	memset(buf, 0, len);
	prep(&t, VH_BDEV_IO_READ, off, len);
	t.iov[0] = (struct iovec){buf, split ? len / 2 : len};
	t.iov[1] = (struct iovec){buf + len / 2, len / 2};
	t.io.iovcnt = split ? 2 : 1;
	run_batch(e->ch, &t, 1);
	assert_int_equal(t.status, 0);
	assert_memory_equal(buf, e->shadow + off, len);
}

/*
 * Inline copies that stall are suspended: with a zero threshold every copy counts as slow, so
 * after VH_FILE_INLINE_STALLS of them the channel hands work to the engine, and the data stays
 * right across the switch.
 */
static void
test_inline_suspend(void **state)
{
	struct env *e = *state;
	uint8_t *buf = abuf(4096);

	vh_file_inline_slow_ns = 0;
	for (unsigned i = 0; i < 2 * VH_FILE_INLINE_STALLS; i++) {
		rw_check(e, buf, (uint64_t)i * 4096, 4096, (uint8_t)(0x40 + i), false);
	}
	vh_file_inline_slow_ns = VH_FILE_INLINE_SLOW_NS;
	/* Once suspended, the engine ran the rest: no more inline copies, so no more stalls. */
	assert_int_equal(info_int(e, "inline_suspends"), 1);
	assert_int_equal(info_int(e, "inline_stalls"), VH_FILE_INLINE_STALLS);
	check_file(e->path, e->shadow, e->size);
	free(buf);
}

/* Requests over VH_FILE_INLINE_MAX_BYTES go to the engine even on tmpfs; small ones do not. */
static void
test_inline_large(void **state)
{
	struct env *e = *state;
	uint32_t big = 2 * VH_FILE_INLINE_MAX_BYTES;
	uint8_t *buf = abuf(big);
	struct tio t;

	/* Every inline copy now counts as a stall, so the count tells which path ran. */
	vh_file_inline_slow_ns = 0;
	for (unsigned i = 0; i < 3; i++) {
		rw_check(e, buf, (uint64_t)i * big, big, (uint8_t)(0x60 + i), false);
	}
	assert_int_equal(info_int(e, "inline_stalls"), 0);
	memset(buf, 0x7e, 4096);
	prep(&t, VH_BDEV_IO_WRITE, 0, 4096);
	t.iov[0] = (struct iovec){buf, 4096};
	t.io.iovcnt = 1;
	run_batch(e->ch, &t, 1);
	vh_file_inline_slow_ns = VH_FILE_INLINE_SLOW_NS;
	assert_int_equal(t.status, 0);
	memcpy(e->shadow, buf, 4096);
	assert_int_equal(info_int(e, "inline_stalls"), 1);
	check_file(e->path, e->shadow, e->size);
	free(buf);
}

#ifndef VH_TEST_ENGINE_AIO
/* A string of bdev_get_bdevs' driver_specific for @e's bdev, copied into @out. */
static void
info_str(struct env *e, const char *key, char *out, size_t outlen)
{
	json_t *ds = json_object();
	const char *v;

	e->b->module->info_json(e->b, ds);
	v = json_string_value(json_object_get(json_object_get(ds, ENGINE), key));
	snprintf(out, outlen, "%s", v != NULL ? v : "");
	json_decref(ds);
}

/*
 * Huge-page guest memory becomes io_uring fixed buffers on O_DIRECT files: single-buffer
 * requests inside it use them, others (two iovecs, memory not registered, memory gone) do not,
 * and the data is right either way. Registered memory need not really be huge pages here: the
 * flag is the vhost layer's claim, and what matters is what the ring does with it.
 */
static void
test_fixed_buffers(void **state)
{
	struct env *e = *state;
	size_t len = 4u << 20;
	uint8_t *mem = abuf(len), *other = abuf(65536);
	json_int_t n0;
	char mode[16];

	info_str(e, "io_mode", mode, sizeof(mode));
	if (strcmp(mode, "direct") != 0) {
		skip(); /* buffered I/O never uses fixed buffers */
	}
	n0 = info_int(e, "fixed_buffer_ios");
	vh_bdev_mem_register(mem, len, VH_BDEV_MEM_HUGE);
	rw_check(e, mem + 8192, 4096, 8192, 0x5a, false);
	rw_check(e, mem + len - 65536, 1 << 20, 65536, 0x6b, false);
	assert_int_equal(info_int(e, "fixed_buffer_ios"), n0 + 4);
	rw_check(e, mem, 65536, 8192, 0x7c, true);      /* two iovecs: readv/writev */
	rw_check(e, other, 131072, 65536, 0x11, false); /* not registered */
	assert_int_equal(info_int(e, "fixed_buffer_ios"), n0 + 4);
	/* Memory that is not huge pages is left alone. */
	vh_bdev_mem_register(other, 65536, 0);
	rw_check(e, other, 131072, 65536, 0x22, false);
	assert_int_equal(info_int(e, "fixed_buffer_ios"), n0 + 4);
	vh_bdev_mem_unregister(other, 65536);
	vh_bdev_mem_unregister(mem, len);
	rw_check(e, mem + 8192, 4096, 8192, 0x33, false);
	assert_int_equal(info_int(e, "fixed_buffer_ios"), n0 + 4);
	/* Registered again (slots reused): fixed again. */
	vh_bdev_mem_register(mem, len, VH_BDEV_MEM_HUGE);
	rw_check(e, mem, 0, 4096, 0x44, false);
	assert_int_equal(info_int(e, "fixed_buffer_ios"), n0 + 6);
	vh_bdev_mem_unregister(mem, len);
	check_file(e->path, e->shadow, e->size);
	free(mem);
	free(other);
}

/* Anonymous memory for regions (page aligned, so parts of it can be made inaccessible). */
static uint8_t *
region_mem(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

/* Fixed-buffer operations of one write + read-back of @len bytes at @buf: 2 or 0. */
static json_int_t
fixed_used(struct env *e, uint8_t *buf, uint64_t off, uint32_t len, uint8_t fill)
{
	json_int_t n0 = info_int(e, "fixed_buffer_ios");

	rw_check(e, buf, off, len, fill, false);
	return info_int(e, "fixed_buffer_ios") - n0;
}

static bool
direct_io(struct env *e)
{
	char mode[16];

	info_str(e, "io_mode", mode, sizeof(mode));
	return strcmp(mode, "direct") == 0;
}

#define CHUNK_SHIFT 16 /* 64 KiB chunks: regions of a few of them span several slots */
#define CHUNK       (1u << CHUNK_SHIFT)

static char g_owner_a, g_owner_b; /* two front-ends */

/*
 * One front-end cannot take the fixed-buffer slots of the others: it holds at most its share
 * of slots and of regions; what does not fit waits and gets slots when its owner frees some.
 * Memory registered without an owner (the legacy call) is bounded by the table alone.
 */
static void
test_fixed_owner_share(void **state)
{
	struct env *e = *state;
	size_t big_len = (size_t)VH_URING_OWNER_SLOTS * CHUNK;
	uint8_t *big = region_mem(big_len), *small[VH_URING_OWNER_REGIONS + 1];
	uint8_t *b_mem = region_mem(CHUNK), *legacy = region_mem(4 * CHUNK);

	if (!direct_io(e)) {
		skip(); /* buffered I/O never uses fixed buffers */
	}
	vh_uring_chunk_shift = CHUNK_SHIFT;
	for (unsigned i = 0; i <= VH_URING_OWNER_REGIONS; i++) {
		small[i] = region_mem(CHUNK);
	}

	/* A takes its whole share of slots; one more region of A waits; B is not affected. */
	vh_bdev_mem_register_owned(&g_owner_a, big, big_len, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, big + big_len - CHUNK, 0, 8192, 0x11), 2);
	vh_bdev_mem_register_owned(&g_owner_a, small[0], CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, small[0], 8192, 8192, 0x12), 0);
	vh_bdev_mem_register_owned(&g_owner_b, b_mem, CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, b_mem, 16384, 8192, 0x13), 2);
	vh_bdev_mem_register(legacy, 4 * CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, legacy + 3 * CHUNK, 24576, 4096, 0x14), 2);

	/* A's big region goes (a new memory table): the waiting one gets its slots. */
	vh_bdev_mem_unregister(big, big_len);
	assert_int_equal(fixed_used(e, big, 0, 4096, 0x15), 0);
	assert_int_equal(fixed_used(e, small[0], 8192, 8192, 0x16), 2);

	/* A's share of regions: the one past it is refused, B still gets one. */
	for (unsigned i = 1; i <= VH_URING_OWNER_REGIONS; i++) {
		vh_bdev_mem_register_owned(&g_owner_a, small[i], CHUNK, VH_BDEV_MEM_HUGE);
	}
	assert_int_equal(fixed_used(e, small[VH_URING_OWNER_REGIONS - 1], 32768, 4096, 0x17), 2);
	assert_int_equal(fixed_used(e, small[VH_URING_OWNER_REGIONS], 40960, 4096, 0x18), 0);
	vh_bdev_mem_unregister(b_mem, CHUNK);
	vh_bdev_mem_register_owned(&g_owner_b, b_mem, CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, b_mem, 16384, 8192, 0x19), 2);

	for (unsigned i = 0; i <= VH_URING_OWNER_REGIONS; i++) {
		vh_bdev_mem_unregister(small[i], CHUNK);
		munmap(small[i], CHUNK);
	}
	vh_bdev_mem_unregister(b_mem, CHUNK);
	vh_bdev_mem_unregister(legacy, 4 * CHUNK);
	vh_uring_chunk_shift = VH_URING_CHUNK_SHIFT;
	check_file(e->path, e->shadow, e->size);
	munmap(big, big_len);
	munmap(b_mem, CHUNK);
	munmap(legacy, 4 * CHUNK);
}

/*
 * A region a ring cannot take costs that region alone: here pages that cannot be pinned
 * (PROT_NONE while registering, readable again afterwards). Its requests take readv/writev
 * and succeed, including in the chunks the kernel had taken before it failed (those are given
 * back: a request on a half-registered region would get -EFAULT); the other regions, and ones
 * registered later, keep their fixed buffers.
 */
static void
test_fixed_region_failure(void **state)
{
	struct env *e = *state;
	uint8_t *good = region_mem(2 * CHUNK), *half = region_mem(4 * CHUNK);
	uint8_t *bad = region_mem(2 * CHUNK), *later = region_mem(CHUNK);

	if (!direct_io(e)) {
		skip();
	}
	vh_uring_chunk_shift = CHUNK_SHIFT;
	vh_bdev_mem_register_owned(&g_owner_a, good, 2 * CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, good + CHUNK, 0, 8192, 0x21), 2);

	/* Chunks 0 and 1 pin, chunk 2 does not: the kernel stops there. */
	assert_int_equal(mprotect(half + 2 * CHUNK, CHUNK, PROT_NONE), 0);
	vh_bdev_mem_register_owned(&g_owner_b, half, 4 * CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(mprotect(half + 2 * CHUNK, CHUNK, PROT_READ | PROT_WRITE), 0);
	for (unsigned c = 0; c < 4; c++) {
		assert_int_equal(fixed_used(e, half + c * CHUNK, 65536 + c * 8192, 8192,
		                            (uint8_t)(0x30 + c)),
		                 0);
	}
	assert_int_equal(fixed_used(e, good, 8192, 8192, 0x22), 2);
	/* Nothing of it pins at all. */
	assert_int_equal(mprotect(bad, 2 * CHUNK, PROT_NONE), 0);
	vh_bdev_mem_register_owned(&g_owner_b, bad, 2 * CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(mprotect(bad, 2 * CHUNK, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(fixed_used(e, bad + CHUNK, 131072, 8192, 0x26), 0);
	assert_int_equal(fixed_used(e, good, 8192, 8192, 0x23), 2);
	vh_bdev_mem_register_owned(&g_owner_b, later, CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, later, 16384, 4096, 0x24), 2);

	/* Gone and back, pinnable this time: fixed. */
	vh_bdev_mem_unregister(half, 4 * CHUNK);
	vh_bdev_mem_register_owned(&g_owner_b, half, 4 * CHUNK, VH_BDEV_MEM_HUGE);
	assert_int_equal(fixed_used(e, half + 3 * CHUNK, 196608, 8192, 0x25), 2);

	vh_bdev_mem_unregister(good, 2 * CHUNK);
	vh_bdev_mem_unregister(half, 4 * CHUNK);
	vh_bdev_mem_unregister(bad, 2 * CHUNK);
	vh_bdev_mem_unregister(later, CHUNK);
	vh_uring_chunk_shift = VH_URING_CHUNK_SHIFT;
	check_file(e->path, e->shadow, e->size);
	munmap(good, 2 * CHUNK);
	munmap(half, 4 * CHUNK);
	munmap(bad, 2 * CHUNK);
	munmap(later, CHUNK);
}
#endif

static int
env_teardown(void **state)
{
	struct env *e = *state;

	chan_put(e->ch);
	assert_int_equal(engine_delete("d0"), 0);
	unlink(e->path);
	free(e->shadow);
	free(e);
	return 0;
}

/* --- tests --- */

/* Random non-overlapping reads and writes, aligned and not, checked against the shadow. */
static void
test_rw_verify(void **state)
{
	struct env *e = *state;
	const unsigned n = 64, rounds = 40;
	const uint64_t slot = e->size / n;
	struct tio *t = calloc(n, sizeof(*t));
	uint8_t *bufs = abuf((size_t)n * (slot + 4096));

	assert_non_null(t);
	assert_non_null(bufs);
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned i = 0; i < n; i++) {
			/* Each request stays inside its own slot, so none overlap. */
			uint64_t blocks = 1 + rnd() % 32;
			uint64_t len = blocks * 512;
			uint64_t off = i * slot + (rnd() % (slot / 512 - blocks + 1)) * 512;
			bool unaligned = (rnd() % 4) == 0;
			uint8_t *buf = bufs + (size_t)i * (slot + 4096) +
			               (unaligned ? 1 + rnd() % 511 : 0);
			bool write = rnd() % 2;

			prep(&t[i], write ? VH_BDEV_IO_WRITE : VH_BDEV_IO_READ, off, len);
			if (write) {
				for (uint64_t k = 0; k < len; k++) {
					buf[k] = (uint8_t)rnd();
				}
				memcpy(e->shadow + off, buf, len);
			} else {
				memset(buf, 0xa5, len);
			}
			prep_iov(&t[i], buf, len, unaligned);
		}
		run_batch(e->ch, t, n);
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(t[i].status, 0);
			if (t[i].io.type == VH_BDEV_IO_READ) {
				uint64_t pos = t[i].io.offset;

				for (int k = 0; k < t[i].io.iovcnt; k++) {
					assert_memory_equal(t[i].iov[k].iov_base, e->shadow + pos,
					                    t[i].iov[k].iov_len);
					pos += t[i].iov[k].iov_len;
				}
			}
		}
	}
	/* FLUSH, then the file itself must hold what the shadow says. */
	prep(&t[0], VH_BDEV_IO_FLUSH, 0, 0);
	run_batch(e->ch, t, 1);
	assert_int_equal(t[0].status, 0);
	check_file(e->path, e->shadow, e->size);
	free(bufs);
	free(t);
}

static void
zero_case(struct env *e, uint8_t type, uint8_t flags, uint64_t off, uint64_t len)
{
	struct tio t[2];
	uint8_t *buf = abuf(len);

	assert_non_null(buf);
	prep(&t[0], type, off, len);
	t[0].io.flags = flags;
	run_batch(e->ch, t, 1);
	assert_int_equal(t[0].status, 0);
	memset(e->shadow + off, 0, len);
	prep(&t[1], VH_BDEV_IO_READ, off, len);
	t[1].iov[0].iov_base = buf;
	t[1].iov[0].iov_len = len;
	t[1].io.iovcnt = 1;
	memset(buf, 0xa5, len);
	run_batch(e->ch, &t[1], 1);
	assert_int_equal(t[1].status, 0);
	/* A discarded range of a file reads back as zeroes (a punched hole). */
	assert_memory_equal(buf, e->shadow + off, len);
	free(buf);
}

static void
test_discard_write_zeroes(void **state)
{
	struct env *e = *state;

	assert_true(vh_bdev_io_type_supported(e->b, VH_BDEV_IO_WRITE_ZEROES));
	zero_case(e, VH_BDEV_IO_WRITE_ZEROES, 0, 4096, 65536);
	zero_case(e, VH_BDEV_IO_WRITE_ZEROES, VH_BDEV_IO_F_UNMAP, 1 << 20, 3 << 20);
	zero_case(e, VH_BDEV_IO_WRITE_ZEROES, 0, 512, 1024);
	if (vh_bdev_io_type_supported(e->b, VH_BDEV_IO_DISCARD)) {
		zero_case(e, VH_BDEV_IO_DISCARD, 0, 5 << 20, 1 << 20);
		zero_case(e, VH_BDEV_IO_DISCARD, 0, 7 << 20, 512);
	}
	check_file(e->path, e->shadow, e->size);
}

/* More requests than the ring (and the AIO context) holds: all complete, none refused. */
static void
test_overflow(void **state)
{
	struct env *e = *state;
	const unsigned n = MAX_BATCH;
	struct tio *t = calloc(n, sizeof(*t));
	uint8_t *buf = abuf((size_t)n * 4096);

	assert_non_null(t);
	assert_non_null(buf);
	for (unsigned i = 0; i < n; i++) {
		uint64_t off = (uint64_t)(i % (e->size / 4096)) * 4096;

		/* Reads only: overlapping reads are fine. Every 16th is a flush. */
		if (i % 16 == 15) {
			prep(&t[i], VH_BDEV_IO_FLUSH, 0, 0);
			continue;
		}
		prep(&t[i], VH_BDEV_IO_READ, off, 4096);
		t[i].iov[0].iov_base = buf + (size_t)i * 4096;
		t[i].iov[0].iov_len = 4096;
		t[i].io.iovcnt = 1;
	}
	run_batch(e->ch, t, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(t[i].status, 0);
		if (t[i].io.type == VH_BDEV_IO_READ) {
			assert_memory_equal(buf + (size_t)i * 4096, e->shadow + t[i].io.offset,
			                    4096);
		}
	}
	free(buf);
	free(t);
}

/* The file shrinks under us: reads past the new end fail with -EIO, the rest works. */
static void
test_truncated(void **state)
{
	struct env *e = *state;
	uint8_t *buf = abuf(1 << 20);
	struct tio t[3];

	assert_non_null(buf);
	assert_int_equal(truncate(e->path, 64 << 10), 0);
	prep(&t[0], VH_BDEV_IO_READ, 1 << 20, 1 << 20);
	/* Straddles the new end: one short read, then end of file. */
	prep(&t[1], VH_BDEV_IO_READ, 60 << 10, 8 << 10);
	prep(&t[2], VH_BDEV_IO_READ, 0, 4096);
	for (int i = 0; i < 3; i++) {
		t[i].iov[0].iov_base = buf;
		t[i].iov[0].iov_len = t[i].io.length;
		t[i].io.iovcnt = 1;
	}
	run_batch(e->ch, t, 2);
	assert_int_equal(t[0].status, -EIO);
	assert_int_equal(t[1].status, -EIO);
	run_batch(e->ch, &t[2], 1);
	assert_int_equal(t[2].status, 0);
	assert_memory_equal(buf, e->shadow, 4096);
	/* Rescan: it shrank, not claimed, so the new size is taken. */
	assert_int_equal(vh_bdev_file_rescan("d0"), 1);
	assert_int_equal(vh_bdev_num_blocks(e->b), (64 << 10) / 512);
	/* Out of range now: refused at submit, no callback. */
	prep(&t[0], VH_BDEV_IO_READ, 1 << 20, 4096);
	t[0].iov[0].iov_base = buf;
	t[0].iov[0].iov_len = 4096;
	t[0].io.iovcnt = 1;
	{
		struct batch b = {.ch = e->ch, .t = t, .n = 1};

		t[0].io.cb = tio_cb;
		t[0].calls = 0;
		g_batch = &b;
		assert_int_equal(vh_reactor_send(vh_reactor_get(0), submit_msg, &b), 0);
		assert_true(wait_flag(&b.completed, 1));
		assert_int_equal(b.submit_rc[0], -EINVAL);
		assert_int_equal(t[0].calls, 0);
		g_batch = NULL;
	}
	/* Restore the size for the teardown's sake. */
	assert_int_equal(truncate(e->path, (off_t)e->size), 0);
	free(buf);
}

static void
test_rescan_claimed(void **state)
{
	struct env *e = *state;

	assert_int_equal(vh_bdev_file_rescan("d0"), 0);
	assert_int_equal(truncate(e->path, (off_t)e->size * 2), 0);
	assert_int_equal(vh_bdev_uring_rescan("d0"), 1);
	assert_int_equal(vh_bdev_size(e->b), e->size * 2);
	assert_int_equal(vh_bdev_claim(e->b, "ctrl0"), 0);
	/* Claimed: deleting and shrinking are refused. */
	assert_int_equal(engine_delete("d0"), -EBUSY);
	assert_int_equal(truncate(e->path, (off_t)e->size), 0);
	assert_int_equal(vh_bdev_aio_rescan("d0"), -EBUSY);
	assert_int_equal(vh_bdev_size(e->b), e->size * 2);
	vh_bdev_release(e->b);
	assert_int_equal(vh_bdev_file_rescan("d0"), 1);
	assert_int_equal(vh_bdev_size(e->b), e->size);
	assert_int_equal(vh_bdev_file_rescan("nope"), -ENODEV);
}

static void
test_info_config(void **state)
{
	struct env *e = *state;
	json_t *ds = json_object(), *cfg, *o;

	e->b->module->info_json(e->b, ds);
	o = json_object_get(ds, ENGINE);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "filename")), e->path);
	/* "direct" where the filesystem takes O_DIRECT (ext4, xfs, tmpfs since 6.6). */
	assert_true(strcmp(json_string_value(json_object_get(o, "io_mode")), "direct") == 0 ||
	            strcmp(json_string_value(json_object_get(o, "io_mode")), "buffered") == 0);
	assert_true(vh_bdev_has_write_cache(e->b));
	assert_int_equal(json_is_true(json_object_get(o, "inline_io")), e->inline_io);
	assert_int_equal(json_integer_value(json_object_get(o, "inline_stalls")), 0);
	cfg = e->b->module->config_json(e->b);
	assert_string_equal(json_string_value(json_object_get(cfg, "method")),
	                    "bdev_" ENGINE "_create");
	o = json_object_get(cfg, "params");
	assert_string_equal(json_string_value(json_object_get(o, "filename")), e->path);
	assert_int_equal(json_integer_value(json_object_get(o, "block_size")), 512);
	/* Saved only when switched off, so the config replays the same choice. */
	if (strstr(e->path, g_shm_dir) == e->path && g_shm_dir[0] != '\0' && !e->inline_io) {
		assert_true(json_is_false(json_object_get(o, "inline_io")));
	} else {
		assert_null(json_object_get(o, "inline_io"));
	}
	json_decref(cfg);
	json_decref(ds);
}

static void
test_create_errors(void **state)
{
	char path[128], err[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.img", g_dir);
	assert_int_equal(engine_create_ex("x0", path, 0, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_int_equal(engine_create_ex("x0", g_dir, 0, err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, "directory"));
	assert_int_equal(engine_create_ex("x0", "/dev/null", 0, err, sizeof(err)), -EINVAL);
	snprintf(path, sizeof(path), "%s/empty.img", g_dir);
	make_file(path, 0, NULL);
	assert_int_equal(engine_create_ex("x0", path, 0, err, sizeof(err)), -EINVAL);
	make_file(path, 1 << 20, NULL);
	assert_int_equal(engine_create_ex("x0", path, 1000, err, sizeof(err)), -EINVAL);
	assert_int_equal(engine_create_ex("x0", path, 256, err, sizeof(err)), -EINVAL);
	assert_int_equal(engine_create_ex("bad/name", path, 0, err, sizeof(err)), -EINVAL);
	if (geteuid() != 0) {
		assert_int_equal(chmod(path, 0400), 0);
		assert_int_equal(engine_create_ex("x0", path, 0, err, sizeof(err)), -EACCES);
		assert_int_equal(chmod(path, 0600), 0);
	}
	assert_int_equal(engine_create_ex("x0", path, 4096, err, sizeof(err)), 0);
	assert_int_equal(vh_bdev_num_blocks(vh_bdev_find("x0")), 256);
	assert_int_equal(engine_create_ex("x0", path, 0, err, sizeof(err)), -EEXIST);
	assert_int_equal(engine_delete("nope"), -ENODEV);
#ifdef VH_TEST_ENGINE_AIO
	assert_int_equal(vh_bdev_uring_delete("x0"), -EINVAL);
#else
	assert_int_equal(vh_bdev_aio_delete("x0"), -EINVAL);
#endif
	assert_int_equal(engine_delete("x0"), 0);
	unlink(path);
}

/* The short-I/O state machine, fed by hand: partial results resume where they stopped. */
static void
test_short_io_state(void **state)
{
	struct vh_file f;
	struct vh_bdev b;
	struct vh_bdev_io io;
	struct iovec iov[3];
	struct vh_file_op op;
	static uint8_t buf[3 * 4096] __attribute__((aligned(4096)));
	int status = 1;

	(void)state;
	memset(&f, 0, sizeof(f));
	memset(&b, 0, sizeof(b));
	f.fd = 10;
	f.fd_buffered = 11;
	f.direct = true;
	f.mem_align = 512;
	f.off_align = 512;
	f.engine = "test";
	f.bdev = &b;
	b.block_size = 512;
	b.num_blocks = 1024;
	for (int i = 0; i < 3; i++) {
		iov[i].iov_base = buf + i * 4096;
		iov[i].iov_len = 4096;
	}
	memset(&io, 0, sizeof(io));
	io.type = VH_BDEV_IO_READ;
	io.offset = 8192;
	io.length = 3 * 4096;
	io.iov = iov;
	io.iovcnt = 3;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_READV);
	assert_int_equal(op.fd, 10);
	assert_ptr_equal(op.iov, iov);
	assert_int_equal(op.iovcnt, 3);
	/* 1.5 iovecs done: the rest of iov[1] comes from the copy, the caller's array untouched. */
	assert_int_equal(vh_file_req_update(&f, &io, 6144, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.iovcnt, 1);
	assert_ptr_equal(op.iov[0].iov_base, buf + 6144);
	assert_int_equal(op.iov[0].iov_len, 2048);
	assert_int_equal(op.off, 8192 + 6144);
	assert_int_equal(iov[1].iov_len, 4096);
	/* -EAGAIN: the same operation again. */
	assert_int_equal(vh_file_req_update(&f, &io, -EAGAIN, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_ptr_equal(op.iov[0].iov_base, buf + 6144);
	assert_int_equal(vh_file_req_update(&f, &io, 2048, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_ptr_equal(op.iov, &iov[2]);
	assert_int_equal(op.iovcnt, 1);
	assert_int_equal(op.off, 8192 + 8192);
	/* O_DIRECT refuses: the same range through the buffered fd. */
	assert_int_equal(vh_file_req_update(&f, &io, -EINVAL, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.fd, 11);
	assert_true(op.buffered);
	assert_int_equal(vh_file_req_update(&f, &io, 4096, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, 0);

	/* End of file in the middle: -EIO. Any other error: passed through. */
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	assert_int_equal(vh_file_req_update(&f, &io, 512, &status), VH_FILE_REQ_NEXT);
	assert_int_equal(vh_file_req_update(&f, &io, 0, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, -EIO);
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	assert_int_equal(vh_file_req_update(&f, &io, -ENOSPC, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, -ENOSPC);
	/* A result larger than asked is a kernel bug, not a reason to run off the array. */
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	assert_int_equal(vh_file_req_update(&f, &io, 4 * 4096, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, -EIO);

	/* Unaligned buffers go buffered from the start. */
	iov[0].iov_base = buf + 1;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_true(op.buffered);
	iov[0].iov_base = buf;

	/* Write zeroes where ZERO_RANGE is refused: written zeroes in chunks. */
	f.caps = VH_FILE_CAP_ZERO_RANGE;
	memset(&io, 0, sizeof(io));
	io.type = VH_BDEV_IO_WRITE_ZEROES;
	io.offset = 0;
	io.length = VH_FILE_ZERO_CHUNK + 4096;
	b.num_blocks = (VH_FILE_ZERO_CHUNK * 2) / 512;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_FALLOC);
	assert_int_equal(vh_file_req_update(&f, &io, -EOPNOTSUPP, &status), VH_FILE_REQ_NEXT);
	assert_int_equal(f.caps & VH_FILE_CAP_ZERO_RANGE, 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_WRITEV);
	assert_int_equal(op.iov[0].iov_len, VH_FILE_ZERO_CHUNK);
	assert_int_equal(vh_file_req_update(&f, &io, VH_FILE_ZERO_CHUNK, &status),
	                 VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.iov[0].iov_len, 4096);
	assert_int_equal(op.off, VH_FILE_ZERO_CHUNK);
	assert_int_equal(vh_file_req_update(&f, &io, 4096, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, 0);

	/* A discard nobody can honour is a hint: success, nothing done. */
	io.type = VH_BDEV_IO_DISCARD;
	f.caps = VH_FILE_CAP_PUNCH;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_FALLOC);
	assert_int_equal(vh_file_req_update(&f, &io, -EOPNOTSUPP, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_NOP);
	assert_int_equal(vh_file_req_update(&f, &io, 0, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, 0);

	/* Past the end of the disk: refused before anything is issued. */
	io.type = VH_BDEV_IO_WRITE_ZEROES;
	io.offset = b.num_blocks * 512;
	io.length = 512;
	assert_int_equal(vh_file_req_init(&f, &io), -EINVAL);
}

/* --- durability (VH_BDEV_IO_F_FUA) --- */

/* One request on @buf[0..len) (one iovec; none for write zeroes and discard). */
static int
one_io(struct env *e, uint8_t type, uint8_t flags, uint64_t off, uint32_t len, uint8_t *buf)
{
	struct tio t;

	prep(&t, type, off, len);
	t.io.flags = flags;
	if (type == VH_BDEV_IO_WRITE || type == VH_BDEV_IO_READ) {
		t.iov[0] = (struct iovec){buf, len};
		t.io.iovcnt = 1;
	}
	run_batch(e->ch, &t, 1);
	return t.status;
}

struct fua_counts {
	json_int_t fua_writes, dsync_ops, fua_syncs;
};

static struct fua_counts
fua_counts(struct env *e)
{
	return (struct fua_counts){info_int(e, "fua_writes"), info_int(e, "dsync_ops"),
	                           info_int(e, "fua_syncs")};
}

/* The counters moved by exactly (@writes, @dsync, @syncs) since @c0. */
static void
assert_fua_delta(struct env *e, struct fua_counts c0, int writes, int dsync, int syncs)
{
	struct fua_counts c = fua_counts(e);

	assert_int_equal(c.fua_writes - c0.fua_writes, writes);
	assert_int_equal(c.dsync_ops - c0.dsync_ops, dsync);
	assert_int_equal(c.fua_syncs - c0.fua_syncs, syncs);
}

/*
 * A FUA write reaches the kernel with RWF_DSYNC (io_uring SQE rw_flags, AIO aio_rw_flags, or
 * pwritev2 for inline copies), a plain one without; write zeroes (fallocate or written zeroes)
 * get one fdatasync after them; a discard with the flag is a plain discard. Without RWF_DSYNC
 * (a kernel that refused it) a FUA write is followed by an fdatasync instead.
 */
static void
test_fua(void **state)
{
	struct env *e = *state;
	uint8_t *buf = abuf(8192 + 4096);
	struct fua_counts c0;

	memset(buf, 0x3c, 8192 + 4096);
	c0 = fua_counts(e);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE, 0, 4096, 8192, buf), 0);
	assert_fua_delta(e, c0, 0, 0, 0);
	memcpy(e->shadow + 4096, buf, 8192);

	c0 = fua_counts(e);
	memset(buf, 0x4d, 8192);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA, 16384, 8192, buf), 0);
	assert_fua_delta(e, c0, 1, 1, 0);
	memcpy(e->shadow + 16384, buf, 8192);

	/* Unaligned memory: the buffered fd, still RWF_DSYNC. */
	c0 = fua_counts(e);
	memset(buf + 1, 0x5e, 4096);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA, 32768, 4096, buf + 1), 0);
	assert_fua_delta(e, c0, 1, 1, 0);
	memcpy(e->shadow + 32768, buf + 1, 4096);

	c0 = fua_counts(e);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE_ZEROES, VH_BDEV_IO_F_FUA, 65536, 65536, NULL),
	                 0);
	assert_fua_delta(e, c0, 1, 0, 1);
	memset(e->shadow + 65536, 0, 65536);
	c0 = fua_counts(e);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE_ZEROES, VH_BDEV_IO_F_FUA | VH_BDEV_IO_F_UNMAP,
	                        131072, 65536, NULL),
	                 0);
	assert_fua_delta(e, c0, 1, 0, 1);
	memset(e->shadow + 131072, 0, 65536);
	c0 = fua_counts(e);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE_ZEROES, 0, 196608, 4096, NULL), 0);
	assert_fua_delta(e, c0, 0, 0, 0);
	memset(e->shadow + 196608, 0, 4096);
	if (vh_bdev_io_type_supported(e->b, VH_BDEV_IO_DISCARD)) {
		c0 = fua_counts(e);
		assert_int_equal(
		        one_io(e, VH_BDEV_IO_DISCARD, VH_BDEV_IO_F_FUA, 262144, 65536, NULL), 0);
		assert_fua_delta(e, c0, 0, 0, 0);
		memset(e->shadow + 262144, 0, 65536); /* a punched hole in a file reads zeroes */
	}

	/* As after a kernel refused RWF_DSYNC: write, then fdatasync. */
	__atomic_fetch_and(&((struct vh_file *)e->b->ctx)->caps, ~VH_FILE_CAP_DSYNC,
	                   __ATOMIC_RELAXED);
	c0 = fua_counts(e);
	memset(buf, 0x6f, 8192);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA, 327680, 8192, buf), 0);
	assert_fua_delta(e, c0, 1, 0, 1);
	memcpy(e->shadow + 327680, buf, 8192);
	check_file(e->path, e->shadow, e->size);
	free(buf);
}

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* Linux 6.5, the same number on every architecture */
#endif
struct vh_cachestat_range {
	uint64_t off;
	uint64_t len;
};
struct vh_cachestat {
	uint64_t nr_cache;
	uint64_t nr_dirty;
	uint64_t nr_writeback;
	uint64_t nr_evicted;
	uint64_t nr_recently_evicted;
};

/* Dirty pages of [off, off + len) of @path, or -errno (-ENOSYS before Linux 6.5). */
static long
dirty_pages(const char *path, uint64_t off, uint64_t len)
{
	struct vh_cachestat_range r = {off, len};
	struct vh_cachestat cs;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long rc;

	if (fd < 0) {
		return -errno;
	}
	rc = syscall(__NR_cachestat, fd, &r, &cs, 0);
	rc = rc < 0 ? -errno : (long)(cs.nr_dirty + cs.nr_writeback);
	close(fd);
	return rc;
}

/*
 * The kernel's view: a write through the page cache (unaligned memory takes the buffered fd) is
 * clean when a FUA request completes, and still dirty after a plain one. Files on a disk
 * filesystem only (on tmpfs the page cache is the storage: its pages are never clean).
 */
static void
test_fua_page_cache(void **state)
{
	struct env *e = *state;
	uint8_t *buf = abuf(65536 + 4096);
	long dirty = 0;

	if (dirty_pages(e->path, 0, 4096) == -ENOSYS) {
		free(buf);
		skip(); /* no cachestat(2) */
	}
	memset(buf + 1, 0x71, 65536);
	assert_int_equal(one_io(e, VH_BDEV_IO_WRITE, VH_BDEV_IO_F_FUA, 1 << 20, 65536, buf + 1), 0);
	memcpy(e->shadow + (1 << 20), buf + 1, 65536);
	assert_int_equal(dirty_pages(e->path, 1 << 20, 65536), 0);
	{
		/* The synchronous path (inline copies): pwritev2 with RWF_DSYNC. */
		struct vh_file *f = e->b->ctx;
		struct iovec v = {buf + 1, 65536};
		struct vh_file_op op = {.kind = VH_FOP_WRITEV,
		                        .fd = f->fd_buffered,
		                        .buffered = true,
		                        .iov = &v,
		                        .iovcnt = 1,
		                        .off = 3 << 20,
		                        .dsync = true};

		assert_int_equal(vh_file_sync_op(f, &op), 65536);
		memcpy(e->shadow + (3 << 20), buf + 1, 65536);
		assert_int_equal(dirty_pages(e->path, 3 << 20, 65536), 0);
	}
	/*
	 * The control: a plain write leaves dirty pages (the flusher waits 30 s). A sync(2) by
	 * another process right between the write and the look could clean them: try thrice.
	 */
	for (int i = 0; i < 3 && dirty <= 0; i++) {
		memset(buf + 1, 0x72 + i, 65536);
		assert_int_equal(one_io(e, VH_BDEV_IO_WRITE, 0, 2 << 20, 65536, buf + 1), 0);
		memcpy(e->shadow + (2 << 20), buf + 1, 65536);
		dirty = dirty_pages(e->path, 2 << 20, 65536);
	}
	assert_true(dirty > 0);
	check_file(e->path, e->shadow, e->size);
	free(buf);
}

/* A disk filesystem: skipped where TMPDIR is tmpfs (nothing is ever clean there). */
static int
env_setup_disk(void **state)
{
	struct statfs sfs;

	if (statfs(g_dir, &sfs) != 0 || sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC) {
		skip();
	}
	return env_setup_in(state, g_dir, true);
}

/* The request state machine: which operations a durable request issues, and the fallbacks. */
static void
test_fua_state(void **state)
{
	static uint8_t buf[8192 + 4096] __attribute__((aligned(4096)));
	struct iovec iov = {buf, 8192};
	struct vh_file f;
	struct vh_bdev b;
	struct vh_bdev_io io;
	struct vh_file_op op;
	int status = 1;

	(void)state;
	memset(&f, 0, sizeof(f));
	memset(&b, 0, sizeof(b));
	f.fd = 10;
	f.fd_buffered = 11;
	f.direct = true;
	f.write_cache = true;
	f.mem_align = 512;
	f.off_align = 512;
	f.engine = "test";
	f.bdev = &b;
	f.caps = VH_FILE_CAP_DSYNC | VH_FILE_CAP_ZERO_RANGE;
	b.block_size = 512;
	b.num_blocks = 1024;
	memset(&io, 0, sizeof(io));
	io.type = VH_BDEV_IO_WRITE;
	io.flags = VH_BDEV_IO_F_FUA;
	io.offset = 4096;
	io.length = 8192;
	io.iov = &iov;
	io.iovcnt = 1;

	/* A short write: both pieces carry the flag; no fdatasync. */
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_WRITEV);
	assert_true(op.dsync);
	assert_int_equal(vh_file_req_update(&f, &io, 4096, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_true(op.dsync);
	assert_int_equal(vh_file_req_update(&f, &io, 4096, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, 0);
	assert_int_equal(f.fua_writes, 1);

	/* Reads, plain writes and flushes never carry it. */
	io.flags = 0;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_false(op.dsync);
	io.type = VH_BDEV_IO_READ;
	io.flags = VH_BDEV_IO_F_FUA;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_false(op.dsync);
	assert_int_equal(vh_file_req_update(&f, &io, 8192, &status), VH_FILE_REQ_DONE);
	io.type = VH_BDEV_IO_WRITE;

	/*
	 * The kernel refuses the flag: O_DIRECT's -EINVAL first means "try the buffered fd"; the
	 * buffered fd's -EINVAL (or -EOPNOTSUPP) means "no RWF_DSYNC": plain write, then fdatasync,
	 * and later requests do the same without asking again.
	 */
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_true(op.dsync);
	assert_int_equal(vh_file_req_update(&f, &io, -EINVAL, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_true(op.buffered);
	assert_true(op.dsync);
	assert_int_equal(vh_file_req_update(&f, &io, -EINVAL, &status), VH_FILE_REQ_NEXT);
	assert_int_equal(f.caps & VH_FILE_CAP_DSYNC, 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_WRITEV);
	assert_false(op.dsync);
	assert_int_equal(vh_file_req_update(&f, &io, 8192, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_FSYNC);
	assert_int_equal(vh_file_req_update(&f, &io, 0, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, 0);
	assert_int_equal(f.fua_syncs, 1);
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_false(op.dsync);
	assert_int_equal(vh_file_req_update(&f, &io, 8192, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_FSYNC);
	/* A failed fdatasync fails the write: it is not durable. */
	assert_int_equal(vh_file_req_update(&f, &io, -EIO, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, -EIO);
	assert_int_equal(f.fua_writes, 2);

	/* Write zeroes: fallocate, then fdatasync; the zero range refused: written zeroes, same. */
	memset(&io, 0, sizeof(io));
	io.type = VH_BDEV_IO_WRITE_ZEROES;
	io.flags = VH_BDEV_IO_F_FUA;
	io.offset = 0;
	io.length = 4096;
	f.caps = VH_FILE_CAP_DSYNC | VH_FILE_CAP_ZERO_RANGE;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_FALLOC);
	assert_int_equal(vh_file_req_update(&f, &io, -EOPNOTSUPP, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_WRITEV);
	assert_false(op.dsync); /* one fdatasync after all the chunks instead */
	assert_int_equal(vh_file_req_update(&f, &io, 4096, &status), VH_FILE_REQ_NEXT);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_FSYNC);
	assert_int_equal(vh_file_req_update(&f, &io, 0, &status), VH_FILE_REQ_DONE);
	assert_int_equal(status, 0);
	assert_int_equal(f.fua_writes, 3);

	/* A discard is a hint: no fdatasync, flag or not. */
	io.type = VH_BDEV_IO_DISCARD;
	f.caps = VH_FILE_CAP_PUNCH;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_int_equal(op.kind, VH_FOP_FALLOC);
	assert_int_equal(vh_file_req_update(&f, &io, 0, &status), VH_FILE_REQ_DONE);
	assert_int_equal(f.fua_writes, 3);

	/*
	 * A write-through device (no write cache) is durable under O_DIRECT without asking; a
	 * write it takes through the page cache (unaligned memory) is made durable all the same.
	 */
	f.write_cache = false;
	f.caps = VH_FILE_CAP_DSYNC;
	memset(&io, 0, sizeof(io));
	io.type = VH_BDEV_IO_WRITE;
	io.offset = 4096;
	io.length = 8192;
	io.iov = &iov;
	io.iovcnt = 1;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_false(op.buffered);
	assert_false(op.dsync);
	iov.iov_base = buf + 1;
	assert_int_equal(vh_file_req_init(&f, &io), 0);
	vh_file_req_next(&f, &io, &op);
	assert_true(op.buffered);
	assert_true(op.dsync);
}

/* A loop device: block-device geometry, I/O, discard, then the file behind it. */
static void
test_loop_device(void **state)
{
	char path[128], dev[32], err[256];
	struct loop_info64 info;
	uint8_t *shadow = malloc(DISK_SIZE);
	struct vh_bdev_channel *ch;
	struct vh_bdev *b;
	struct tio t[2];
	uint8_t *buf = abuf(1 << 20);
	int ctl, fd = -1, lfd = -1, nr;

	(void)state;
	assert_non_null(shadow);
	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/loop.img", g_dir);
	make_file(path, DISK_SIZE, shadow);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	/* Another test process may grab the same free device: try a few. */
	for (int attempt = 0; attempt < 8 && ctl >= 0 && fd >= 0 && lfd < 0; attempt++) {
		nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0) {
			break;
		}
		snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd >= 0 && ioctl(lfd, LOOP_SET_FD, fd) < 0) {
			close(lfd);
			lfd = -1;
		}
	}
	if (ctl >= 0) {
		close(ctl);
	}
	if (lfd < 0) {
		if (fd >= 0) {
			close(fd);
		}
		free(shadow);
		free(buf);
		unlink(path);
		skip();
	}
	memset(&info, 0, sizeof(info));
	info.lo_flags = LO_FLAGS_AUTOCLEAR;
	ioctl(lfd, LOOP_SET_STATUS64, &info);
	assert_int_equal(engine_create_ex("l0", dev, 256, err, sizeof(err)), -EINVAL);
	assert_int_equal(engine_create_ex("l0", dev, 0, err, sizeof(err)), 0);
	b = vh_bdev_find("l0");
	assert_int_equal(vh_bdev_size(b), DISK_SIZE);
	{
		/* O_DIRECT: the device node is on devtmpfs, which must not count as tmpfs. */
		json_t *ds = json_object();

		b->module->info_json(b, ds);
		assert_string_equal(
		        json_string_value(json_object_get(json_object_get(ds, ENGINE), "io_mode")),
		        "direct");
		json_decref(ds);
	}
	ch = chan_get(b);
	memset(buf, 0x5a, 1 << 20);
	memcpy(shadow + (2 << 20), buf, 1 << 20);
	prep(&t[0], VH_BDEV_IO_WRITE, 2 << 20, 1 << 20);
	t[0].iov[0].iov_base = buf;
	t[0].iov[0].iov_len = 1 << 20;
	t[0].io.iovcnt = 1;
	prep(&t[1], VH_BDEV_IO_WRITE_ZEROES, 4 << 20, 1 << 20);
	memset(shadow + (4 << 20), 0, 1 << 20);
	run_batch(ch, t, 2);
	assert_int_equal(t[0].status, 0);
	assert_int_equal(t[1].status, 0);
	if (vh_bdev_io_type_supported(b, VH_BDEV_IO_DISCARD)) {
		/* Discarded loop blocks are holes in the file: zeroes. */
		prep(&t[0], VH_BDEV_IO_DISCARD, 6 << 20, 1 << 20);
		memset(shadow + (6 << 20), 0, 1 << 20);
		run_batch(ch, t, 1);
		assert_int_equal(t[0].status, 0);
	}
	prep(&t[0], VH_BDEV_IO_FLUSH, 0, 0);
	run_batch(ch, t, 1);
	assert_int_equal(t[0].status, 0);
	prep(&t[0], VH_BDEV_IO_READ, 2 << 20, 1 << 20);
	t[0].iov[0].iov_base = buf;
	t[0].iov[0].iov_len = 1 << 20;
	t[0].io.iovcnt = 1;
	memset(buf, 0, 1 << 20);
	run_batch(ch, t, 1);
	assert_int_equal(t[0].status, 0);
	assert_memory_equal(buf, shadow + (2 << 20), 1 << 20);
	chan_put(ch);
	assert_int_equal(engine_delete("l0"), 0);
	ioctl(lfd, LOOP_CLR_FD, 0);
	close(lfd);
	close(fd);
	check_file(path, shadow, DISK_SIZE);
	unlink(path);
	free(buf);
	free(shadow);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_short_io_state),
	        cmocka_unit_test(test_fua_state),
	        cmocka_unit_test(test_create_errors),
	        cmocka_unit_test_setup_teardown(test_rw_verify, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_discard_write_zeroes, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_overflow, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_truncated, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_rescan_claimed, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_info_config, env_setup, env_teardown),
	        cmocka_unit_test(test_loop_device),
	        cmocka_unit_test_setup_teardown(test_fua, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_fua_page_cache, env_setup_disk, env_teardown),
#ifndef VH_TEST_ENGINE_AIO
	        cmocka_unit_test_setup_teardown(test_fixed_buffers, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_fixed_owner_share, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_fixed_region_failure, env_setup, env_teardown),
#endif
	        /* The same on tmpfs, inline copies on and then off. */
	        cmocka_unit_test_setup_teardown(test_rw_verify, env_setup_shm, env_teardown),
	        cmocka_unit_test_setup_teardown(test_discard_write_zeroes, env_setup_shm,
	                                        env_teardown),
	        cmocka_unit_test_setup_teardown(test_overflow, env_setup_shm, env_teardown),
	        cmocka_unit_test_setup_teardown(test_truncated, env_setup_shm, env_teardown),
	        cmocka_unit_test_setup_teardown(test_info_config, env_setup_shm, env_teardown),
	        cmocka_unit_test_setup_teardown(test_inline_suspend, env_setup_shm, env_teardown),
	        cmocka_unit_test_setup_teardown(test_inline_large, env_setup_shm, env_teardown),
	        cmocka_unit_test_setup_teardown(test_fua, env_setup_shm, env_teardown),
	        cmocka_unit_test_setup_teardown(test_rw_verify, env_setup_shm_engine, env_teardown),
	        cmocka_unit_test_setup_teardown(test_discard_write_zeroes, env_setup_shm_engine,
	                                        env_teardown),
	        cmocka_unit_test_setup_teardown(test_overflow, env_setup_shm_engine, env_teardown),
	        cmocka_unit_test_setup_teardown(test_info_config, env_setup_shm_engine,
	                                        env_teardown),
	        cmocka_unit_test_setup_teardown(test_fua, env_setup_shm_engine, env_teardown),
	};
	/* A short idle time: the reactor sleeps between batches, so wake-ups are exercised. */
	struct vh_reactor_opts ro = {.cpumask = 0x1, .idle_ns = 20000, .pin = false};
	const char *tmp = getenv("TMPDIR");
	struct statfs sfs;
	int rc;

	vh_log_set_level(VH_LOG_WARN);
	snprintf(g_dir, sizeof(g_dir), "%s/vh-" ENGINE "-XXXXXX",
	         tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
	if (mkdtemp(g_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(g_shm_dir, sizeof(g_shm_dir), "/dev/shm/vh-" ENGINE "-XXXXXX");
	if (statfs("/dev/shm", &sfs) != 0 || sfs.f_type != TMPFS_MAGIC ||
	    mkdtemp(g_shm_dir) == NULL) {
		fprintf(stderr, "no tmpfs at /dev/shm: the inline-copy cases are skipped\n");
		g_shm_dir[0] = '\0';
	}
	if (vh_reactors_start(&ro) < 0) {
		fprintf(stderr, "cannot start a reactor\n");
		return 1;
	}
	rc = cmocka_run_group_tests_name(ENGINE, tests, NULL, NULL);
	vh_reactors_stop();
	vh_bdev_fini();
	rmdir(g_dir);
	if (g_shm_dir[0] != '\0') {
		rmdir(g_shm_dir);
	}
	return rc;
}
