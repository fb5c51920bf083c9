/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/core/evloop.c: the control thread's epoll loop. Sources added and removed inside
 * callbacks (a removed source is never called again, even in the same batch), event masks,
 * one-shot timers and their cancellation, and vh_control_send() from other threads.
 * Every run is bounded by a watchdog timer so a broken loop fails instead of hanging.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/evloop.h"
#include "core/util.h"

static struct vh_evloop *g_loop;
static bool g_watchdog_fired;
static struct vh_evsource *g_watchdog;

static void
watchdog_cb(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	g_watchdog_fired = true;
	g_watchdog = NULL; /* the loop frees a fired timer */
	vh_evloop_stop(g_loop);
}

/* Run the loop until a callback stops it; fail if the 5 s watchdog had to. */
static void
run_loop(void)
{
	g_watchdog_fired = false;
	g_watchdog = vh_evloop_timer(g_loop, 5000000000ull, watchdog_cb, NULL);
	assert_non_null(g_watchdog);
	assert_int_equal(vh_evloop_run(g_loop), 0);
	if (g_watchdog != NULL) {
		vh_evloop_del(g_watchdog);
		g_watchdog = NULL;
	}
	assert_false(g_watchdog_fired);
}

static void
stop_msg(void *arg)
{
	(void)arg;
	vh_evloop_stop(g_loop);
}

static int
setup(void **state)
{
	(void)state;
	if (vh_control_send(stop_msg, NULL) != -ENODEV || vh_evloop_main() != NULL) {
		return -1;
	}
	g_loop = vh_evloop_create();
	return g_loop == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	vh_evloop_destroy(g_loop);
	g_loop = NULL;
	return vh_evloop_main() == NULL ? 0 : -1;
}

static void
make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void
close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

static void
poke(int fd)
{
	assert_int_equal(write(fd, "x", 1), 1);
}

static void
test_main_and_thread(void **state)
{
	(void)state;
	assert_ptr_equal(vh_evloop_main(), g_loop);
	assert_true(vh_on_control_thread());
}

/* ---- fd sources ---- */

struct src {
	int p[2];
	struct vh_evsource *s;
	int calls;
	uint32_t events;
	struct src *victim; /* deleted by this source's callback */
	struct src *spawn;  /* added by this source's callback */
	bool stop;
	bool del_self;
};

static void
src_cb(void *arg, uint32_t events)
{
	struct src *x = arg;
	char buf[16];

	x->calls++;
	x->events = events;
	if (read(x->p[0], buf, sizeof(buf)) < 0) {
		/* drained already */
	}
	if (x->victim != NULL && x->victim->s != NULL) {
		vh_evloop_del(x->victim->s);
		x->victim->s = NULL;
	}
	if (x->spawn != NULL && x->spawn->s == NULL) {
		x->spawn->s = vh_evloop_add(g_loop, x->spawn->p[0], EPOLLIN, src_cb, x->spawn);
	}
	if (x->del_self) {
		vh_evloop_del(x->s);
		x->s = NULL;
	}
	if (x->stop) {
		vh_evloop_stop(g_loop);
	}
}

static void
src_init(struct src *x)
{
	memset(x, 0, sizeof(*x));
	make_pipe(x->p);
}

static void
src_fini(struct src *x)
{
	if (x->s != NULL) {
		vh_evloop_del(x->s);
	}
	close_pipe(x->p);
}

static void
test_fd_source(void **state)
{
	struct src a;

	(void)state;
	src_init(&a);
	a.stop = true;
	a.s = vh_evloop_add(g_loop, a.p[0], EPOLLIN, src_cb, &a);
	assert_non_null(a.s);
	poke(a.p[1]);
	run_loop();
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.events, EPOLLIN);

	/* Masked out: no callback; back to EPOLLIN: called. */
	assert_int_equal(vh_evloop_mod(a.s, 0), 0);
	poke(a.p[1]);
	assert_int_equal(vh_control_send(stop_msg, NULL), 0);
	run_loop();
	assert_int_equal(a.calls, 1);
	assert_int_equal(vh_evloop_mod(a.s, EPOLLIN), 0);
	run_loop();
	assert_int_equal(a.calls, 2);

	/* A peer hang-up is reported with the event bits. */
	close(a.p[1]);
	a.p[1] = -1;
	run_loop();
	assert_int_equal(a.calls, 3);
	assert_true(a.events & EPOLLHUP);
	src_fini(&a);

	/* Bad fds are refused. */
	errno = 0;
	assert_null(vh_evloop_add(g_loop, -1, EPOLLIN, src_cb, NULL));
	assert_int_equal(errno, EBADF);
}

/* Two sources ready in the same batch, each deleting the other: exactly one callback runs. */
static void
test_del_other_in_same_batch(void **state)
{
	struct src a, b;

	(void)state;
	src_init(&a);
	src_init(&b);
	a.victim = &b;
	b.victim = &a;
	a.stop = b.stop = true;
	a.s = vh_evloop_add(g_loop, a.p[0], EPOLLIN, src_cb, &a);
	b.s = vh_evloop_add(g_loop, b.p[0], EPOLLIN, src_cb, &b);
	poke(a.p[1]);
	poke(b.p[1]);
	run_loop();
	assert_int_equal(a.calls + b.calls, 1);
	/* The deleted one stays deleted: still readable, never called. */
	assert_int_equal(vh_control_send(stop_msg, NULL), 0);
	run_loop();
	assert_int_equal(a.calls + b.calls, 1);
	src_fini(&a);
	src_fini(&b);
}

static void
test_del_self_and_add_in_callback(void **state)
{
	struct src a, b;

	(void)state;
	src_init(&a);
	src_init(&b);
	a.del_self = true;
	a.spawn = &b;
	b.stop = true;
	a.s = vh_evloop_add(g_loop, a.p[0], EPOLLIN, src_cb, &a);
	poke(a.p[1]);
	poke(a.p[1]);
	poke(b.p[1]);
	run_loop();
	assert_int_equal(a.calls, 1);
	assert_null(a.s);
	assert_int_equal(b.calls, 1);
	/* Re-adding the fd a callback deleted works. */
	a.del_self = false;
	a.spawn = NULL;
	a.stop = true;
	a.s = vh_evloop_add(g_loop, a.p[0], EPOLLIN, src_cb, &a);
	assert_non_null(a.s);
	poke(a.p[1]);
	run_loop();
	assert_int_equal(a.calls, 2);
	src_fini(&a);
	src_fini(&b);
}

/* ---- timers ---- */

struct tmr {
	int calls;
	uint32_t events;
	uint64_t fired_ns;
	int rearm; /* re-arm this many more times */
	bool stop;
	struct vh_evsource *h;
	int *order;
	int *norder;
	int id;
};

static void
tmr_cb(void *arg, uint32_t events)
{
	struct tmr *t = arg;

	t->calls++;
	t->events = events;
	t->fired_ns = vh_now_ns();
	t->h = NULL;
	if (t->order != NULL) {
		t->order[(*t->norder)++] = t->id;
	}
	if (t->rearm > 0) {
		t->rearm--;
		t->h = vh_evloop_timer(g_loop, 1000000, tmr_cb, t);
		assert_non_null(t->h);
		return;
	}
	if (t->stop) {
		vh_evloop_stop(g_loop);
	}
}

static void
test_timers(void **state)
{
	struct tmr a = {0}, b = {0}, c = {0}, z = {0};
	int order[8], n = 0;
	uint64_t t0 = vh_now_ns();

	(void)state;
	a.order = b.order = c.order = order;
	a.norder = b.norder = c.norder = &n;
	a.id = 1;
	b.id = 2;
	c.id = 3;
	c.stop = true;
	/* Created out of order; they fire by deadline. The cancelled one never fires. */
	c.h = vh_evloop_timer(g_loop, 30000000, tmr_cb, &c);
	a.h = vh_evloop_timer(g_loop, 2000000, tmr_cb, &a);
	b.h = vh_evloop_timer(g_loop, 10000000, tmr_cb, &b);
	z.h = vh_evloop_timer(g_loop, 5000000, tmr_cb, &z);
	assert_non_null(a.h);
	assert_non_null(z.h);
	vh_evloop_del(z.h);
	run_loop();
	assert_int_equal(n, 3);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 3);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.events, 0);
	assert_int_equal(z.calls, 0);
	assert_true(c.fired_ns - t0 >= 30000000ull);
	assert_true(a.fired_ns - t0 >= 2000000ull);

	/* ns = 0 still fires (as soon as possible), and a callback may re-arm. */
	memset(&a, 0, sizeof(a));
	a.rearm = 3;
	a.stop = true;
	a.h = vh_evloop_timer(g_loop, 0, tmr_cb, &a);
	assert_non_null(a.h);
	run_loop();
	assert_int_equal(a.calls, 4);
	assert_null(a.h);
}

/* ---- messages from other threads ---- */

#define NSENDERS   3
#define PER_SENDER 3000u

static uint32_t g_next[NSENDERS];
static unsigned g_bad_order, g_got;
static bool g_thread_flag[NSENDERS];

static void
count_msg(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	unsigned id = (unsigned)(v >> 32);

	if (!vh_on_control_thread()) {
		g_bad_order++;
	}
	if (id >= NSENDERS || g_next[id] != (uint32_t)v) {
		g_bad_order++;
	} else {
		g_next[id]++;
	}
	if (++g_got == NSENDERS * PER_SENDER) {
		vh_evloop_stop(g_loop);
	}
}

static void *
sender_main(void *arg)
{
	uintptr_t id = (uintptr_t)arg;

	g_thread_flag[id] = vh_on_control_thread();
	for (uint32_t i = 0; i < PER_SENDER; i++) {
		while (vh_control_send(count_msg, (void *)((id << 32) | i)) == -ENOBUFS) {
			sched_yield();
		}
	}
	return NULL;
}

static void
test_control_send_from_threads(void **state)
{
	pthread_t tid[NSENDERS];

	(void)state;
	memset(g_next, 0, sizeof(g_next));
	g_bad_order = 0;
	g_got = 0;
	for (uintptr_t i = 0; i < NSENDERS; i++) {
		g_thread_flag[i] = true;
		assert_int_equal(pthread_create(&tid[i], NULL, sender_main, (void *)i), 0);
	}
	run_loop();
	for (unsigned i = 0; i < NSENDERS; i++) {
		pthread_join(tid[i], NULL);
		assert_false(g_thread_flag[i]);
		assert_int_equal(g_next[i], PER_SENDER);
	}
	assert_int_equal(g_bad_order, 0);
	assert_int_equal(g_got, NSENDERS * PER_SENDER);
}

/* More than one drain batch (256) queued before the loop runs: all of them still run. */
static void
test_control_send_backlog(void **state)
{
	(void)state;
	memset(g_next, 0, sizeof(g_next));
	g_bad_order = 0;
	g_got = (NSENDERS - 1) * PER_SENDER;
	g_next[1] = g_next[2] = PER_SENDER;
	for (uintptr_t i = 0; i < PER_SENDER; i++) {
		assert_int_equal(vh_control_send(count_msg, (void *)i), 0);
	}
	run_loop();
	assert_int_equal(g_next[0], PER_SENDER);
	assert_int_equal(g_bad_order, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_main_and_thread, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fd_source, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_del_other_in_same_batch, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_del_self_and_add_in_callback, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_control_send_from_threads, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_control_send_backlog, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
