/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Regression (hardening review, item 6): vh_inflight_recover() checked the region's desc_num
 * and then read it again as a loop bound (the release build re-read it every iteration). The
 * front-end shares the region and can flip desc_num between a legal value and 0xffff while we
 * read: the loop walked past the mapping (SIGSEGV in under a second on the release build).
 *
 * Here the queue's descriptor array ends exactly at a PROT_NONE guard page, and a second thread
 * flips desc_num between 64 (legal: "the ring size changed", which walks desc_num entries) and
 * 0xffff while this thread recovers in a loop. Any read of the field after the check shows up
 * as a fault on the guard page. Also: the other shared fields (last_batch_head, desc[].next)
 * are read once, so a batch walk cannot be steered past the queue either.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost/device.h"
#include "vhost/session.h"

#define QSIZE 128u

struct guarded {
	uint8_t *map;
	size_t len;
	struct inflight_split_queue *q;
};

/* The queue header and QSIZE descriptors, ending at a PROT_NONE page. */
static void
guarded_queue(struct guarded *g)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t body =
	        sizeof(struct inflight_split_queue) + QSIZE * sizeof(struct inflight_desc_split);
	size_t pages = (body + page - 1) / page;

	g->len = (pages + 1) * page;
	g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->map != MAP_FAILED);
	assert_int_equal(mprotect(g->map + pages * page, page, PROT_NONE), 0);
	/* 64-byte aligned start, so the array still ends right at the guard page. */
	g->q = (struct inflight_split_queue *)(g->map + pages * page - body);
	assert_int_equal((uintptr_t)g->q % 16, 0);
}

struct flipper {
	uint16_t *field;
	uint16_t a, b;
	int stop;
};

static void *
flip(void *arg)
{
	struct flipper *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(f->field, f->a, __ATOMIC_RELAXED);
		__atomic_store_n(f->field, f->b, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void
run_flipping(struct guarded *g, uint16_t *field, uint16_t a, uint16_t b, uint16_t used, unsigned ms)
{
	struct flipper f = {.field = field, .a = a, .b = b};
	uint16_t heads[QSIZE];
	struct timespec t0, t;
	unsigned long calls = 0, ok = 0;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, flip, &f), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		uint32_t count;
		uint16_t next;
		uint64_t counter;

		/* Recovery may rewrite the header: put back a region that needs the walk. */
		g->q->version = 1;
		g->q->used_idx = 0;
		ok += vh_inflight_recover(g->q, QSIZE, QSIZE, used, heads, QSIZE, &count, &next,
		                          &counter) == 0;
		calls++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
	__atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	print_message("%lu recoveries under a flipping field, %lu accepted\n", calls, ok);
	assert_true(calls > 0);
}

static void
test_desc_num_flipped(void **state)
{
	struct guarded g;

	(void)state;
	guarded_queue(&g);
	run_flipping(&g, &g.q->desc_num, 64, 0xffff, 0, 1500);
	munmap(g.map, g.len);
}

static void
test_batch_walk_steered(void **state)
{
	struct guarded g;

	(void)state;
	guarded_queue(&g);
	/* A batch to walk: used_idx behind used->idx by the whole queue. */
	g.q->desc_num = QSIZE;
	for (unsigned i = 0; i < QSIZE; i++) {
		g.q->desc[i].next = (uint16_t)((i + 1) % QSIZE);
	}
	run_flipping(&g, &g.q->last_batch_head, 0, 0xffff, QSIZE, 500);
	munmap(g.map, g.len);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_desc_num_flipped),
	        cmocka_unit_test(test_batch_walk_steered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
