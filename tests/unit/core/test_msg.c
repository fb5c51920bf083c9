/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/core/msg.c: the bounded MPSC message queue. FIFO per sender, -ENOBUFS when full, exact
 * counts under several concurrent producers, and the prepare_sleep/wake handshake.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/msg.h"

/* Every message appends its argument here (owner thread only). */
static uintptr_t *g_seen;
static size_t g_nseen, g_cap;

static void
record(void *arg)
{
	if (g_nseen < g_cap) {
		g_seen[g_nseen] = (uintptr_t)arg;
	}
	g_nseen++;
}

static void
reset_seen(size_t cap)
{
	free(g_seen);
	g_seen = calloc(cap, sizeof(*g_seen));
	assert_non_null(g_seen);
	g_cap = cap;
	g_nseen = 0;
}

static int
setup(void **state)
{
	struct vh_msgq *q;

	if (posix_memalign((void **)&q, VH_CACHE_LINE, sizeof(*q)) != 0) {
		return -1;
	}
	if (vh_msgq_init(q) != 0) {
		free(q);
		return -1;
	}
	*state = q;
	reset_seen(16);
	return 0;
}

static int
teardown(void **state)
{
	struct vh_msgq *q = *state;

	vh_msgq_fini(q);
	assert_int_equal(q->efd, -1);
	free(q);
	free(g_seen);
	g_seen = NULL;
	return 0;
}

/* Non-blocking read of the queue's eventfd: the counter, or 0 if it was not readable. */
static uint64_t
efd_take(struct vh_msgq *q)
{
	uint64_t v = 0;

	if (read(q->efd, &v, sizeof(v)) != sizeof(v)) {
		return 0;
	}
	return v;
}

static void
test_fifo_single_sender(void **state)
{
	struct vh_msgq *q = *state;

	reset_seen(100);
	assert_int_equal(vh_msgq_drain(q, 10), 0);
	for (uintptr_t i = 1; i <= 100; i++) {
		assert_int_equal(vh_msgq_send(q, record, (void *)i), 0);
	}
	/* Bounded drains: exactly max each time, in order. */
	assert_int_equal(vh_msgq_drain(q, 30), 30);
	assert_int_equal(g_nseen, 30);
	assert_int_equal(vh_msgq_drain(q, 0), 0);
	assert_int_equal(vh_msgq_drain(q, 1000), 70);
	assert_int_equal(vh_msgq_drain(q, 1000), 0);
	assert_int_equal(g_nseen, 100);
	for (size_t i = 0; i < 100; i++) {
		assert_int_equal(g_seen[i], i + 1);
	}
	/* Not sleeping: sends never touched the eventfd. */
	assert_int_equal(efd_take(q), 0);
}

static void
test_full_queue(void **state)
{
	struct vh_msgq *q = *state;

	reset_seen(VH_MSGQ_SIZE + 8);
	for (uintptr_t i = 0; i < VH_MSGQ_SIZE; i++) {
		assert_int_equal(vh_msgq_send(q, record, (void *)i), 0);
	}
	assert_int_equal(vh_msgq_send(q, record, (void *)1), -ENOBUFS);
	assert_int_equal(vh_msgq_send(q, record, (void *)2), -ENOBUFS);
	/* One slot freed: exactly one more message fits. */
	assert_int_equal(vh_msgq_drain(q, 1), 1);
	assert_int_equal(vh_msgq_send(q, record, (void *)VH_MSGQ_SIZE), 0);
	assert_int_equal(vh_msgq_send(q, record, (void *)3), -ENOBUFS);
	assert_int_equal(vh_msgq_drain(q, 100000), VH_MSGQ_SIZE);
	assert_int_equal(g_nseen, VH_MSGQ_SIZE + 1);
	for (size_t i = 0; i <= VH_MSGQ_SIZE; i++) {
		assert_int_equal(g_seen[i], i);
	}
	/* Wrapped around several times: still consistent. */
	for (int round = 0; round < 3; round++) {
		for (uintptr_t i = 0; i < VH_MSGQ_SIZE; i++) {
			assert_int_equal(vh_msgq_send(q, record, (void *)i), 0);
		}
		assert_int_equal(vh_msgq_send(q, record, NULL), -ENOBUFS);
		g_nseen = 0;
		assert_int_equal(vh_msgq_drain(q, 100000), VH_MSGQ_SIZE);
	}
}

/* A message that sends another one: it runs in the same drain, after the ones before it. */
static struct vh_msgq *g_q;

static void
resend(void *arg)
{
	record(arg);
	if ((uintptr_t)arg < 5) {
		assert_int_equal(vh_msgq_send(g_q, resend, (void *)((uintptr_t)arg + 10)), 0);
	}
}

static void
test_send_from_handler(void **state)
{
	struct vh_msgq *q = *state;

	g_q = q;
	reset_seen(16);
	assert_int_equal(vh_msgq_send(q, resend, (void *)1), 0);
	assert_int_equal(vh_msgq_send(q, resend, (void *)2), 0);
	assert_int_equal(vh_msgq_drain(q, 64), 4);
	assert_int_equal(g_nseen, 4);
	assert_int_equal(g_seen[0], 1);
	assert_int_equal(g_seen[1], 2);
	assert_int_equal(g_seen[2], 11);
	assert_int_equal(g_seen[3], 12);
}

static void
test_prepare_sleep_and_wake(void **state)
{
	struct vh_msgq *q = *state;

	reset_seen(16);
	/* Empty: the owner may sleep, and the next send writes the eventfd exactly once. */
	assert_true(vh_msgq_prepare_sleep(q));
	assert_int_equal(q->sleeping, 1);
	assert_int_equal(efd_take(q), 0);
	assert_int_equal(vh_msgq_send(q, record, (void *)7), 0);
	assert_int_equal(efd_take(q), 1);
	vh_msgq_wake_done(q);
	assert_int_equal(q->sleeping, 0);
	/* Awake: further sends do not write. */
	assert_int_equal(vh_msgq_send(q, record, (void *)8), 0);
	assert_int_equal(efd_take(q), 0);

	/* Messages waiting: do not sleep, and the sleeping flag is not left set. */
	assert_false(vh_msgq_prepare_sleep(q));
	assert_int_equal(q->sleeping, 0);
	assert_int_equal(vh_msgq_drain(q, 64), 2);
	assert_int_equal(g_seen[0], 7);
	assert_int_equal(g_seen[1], 8);

	/* A stale wake-up is cleared by prepare_sleep itself. */
	assert_int_equal(vh_msgq_send(q, record, (void *)9), 0);
	assert_int_equal(vh_msgq_drain(q, 64), 1);
	{
		uint64_t one = 1;

		assert_int_equal(write(q->efd, &one, sizeof(one)), sizeof(one));
	}
	assert_true(vh_msgq_prepare_sleep(q));
	assert_int_equal(efd_take(q), 0);
	vh_msgq_wake_done(q);

	/* Always-wake (an epoll owner): every send writes. */
	vh_msgq_set_always_wake(q);
	for (uintptr_t i = 0; i < 3; i++) {
		assert_int_equal(vh_msgq_send(q, record, (void *)i), 0);
	}
	assert_int_equal(efd_take(q), 3);
	assert_int_equal(vh_msgq_drain(q, 64), 3);
}

/* ---- multi-producer stress ---- */

#define STRESS_PER_THREAD  200000u
#define STRESS_MAX_THREADS 4

struct producer {
	struct vh_msgq *q;
	unsigned id;
	uint64_t full_retries;
	pthread_t tid;
};

/* Consumer-side state: next expected sequence per sender and error counters. */
static uint32_t g_next_seq[STRESS_MAX_THREADS];
static uint64_t g_order_errors, g_received;

static void
stress_msg(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	unsigned id = (unsigned)(v >> 32);
	uint32_t seq = (uint32_t)v;

	if (id >= STRESS_MAX_THREADS || g_next_seq[id] != seq) {
		g_order_errors++;
	} else {
		g_next_seq[id]++;
	}
	g_received++;
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;

	for (uint32_t seq = 0; seq < STRESS_PER_THREAD; seq++) {
		void *m = (void *)(((uintptr_t)p->id << 32) | seq);

		while (vh_msgq_send(p->q, stress_msg, m) == -ENOBUFS) {
			p->full_retries++;
			sched_yield();
		}
	}
	return NULL;
}

static void
run_stress(struct vh_msgq *q, unsigned nthreads, bool sleepy)
{
	struct producer prod[STRESS_MAX_THREADS];
	uint64_t total = (uint64_t)nthreads * STRESS_PER_THREAD;
	uint64_t deadline = vh_now_ns() + 30ull * 1000000000ull;
	uint64_t sleeps = 0;

	memset(g_next_seq, 0, sizeof(g_next_seq));
	g_order_errors = 0;
	g_received = 0;
	for (unsigned i = 0; i < nthreads; i++) {
		prod[i] = (struct producer){.q = q, .id = i};
		assert_int_equal(pthread_create(&prod[i].tid, NULL, producer_main, &prod[i]), 0);
	}
	while (g_received < total && vh_now_ns() < deadline) {
		if (vh_msgq_drain(q, 256) > 0) {
			continue;
		}
		if (!sleepy) {
			sched_yield();
			continue;
		}
		/* Sleep as a reactor would: a lost wake-up shows as a poll timeout. */
		if (vh_msgq_prepare_sleep(q)) {
			struct pollfd pfd = {.fd = q->efd, .events = POLLIN};
			int n = poll(&pfd, 1, 2000);

			vh_msgq_wake_done(q);
			if (n == 0 && g_received < total && vh_msgq_drain(q, 1) > 0) {
				fail_msg("lost wake-up: a message was queued but the eventfd "
				         "stayed quiet");
			}
			sleeps++;
		}
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(prod[i].tid, NULL);
	}
	vh_msgq_drain(q, VH_MSGQ_SIZE);
	assert_int_equal(g_order_errors, 0);
	assert_int_equal(g_received, total);
	for (unsigned i = 0; i < nthreads; i++) {
		assert_int_equal(g_next_seq[i], STRESS_PER_THREAD);
	}
	assert_int_equal(vh_msgq_drain(q, 10), 0);
	(void)sleeps;
}

static void
test_stress_2_producers(void **state)
{
	run_stress(*state, 2, false);
}

static void
test_stress_4_producers(void **state)
{
	run_stress(*state, 4, false);
}

static void
test_stress_3_producers_sleeping_owner(void **state)
{
	run_stress(*state, 3, true);
}

/* ---- intrusive nodes (vh_msgq_post) ---- */

static void
node_record(void *arg)
{
	record(arg);
}

static void
test_node_fifo_and_full_ring(void **state)
{
	struct vh_msgq *q = *state;
	struct vh_msg_node n[3];

	reset_seen(8);
	/* A full ring does not stop nodes: lifecycle messages cannot fail. */
	for (unsigned i = 0; i < VH_MSGQ_SIZE; i++) {
		assert_int_equal(vh_msgq_send(q, record, (void *)100), 0);
	}
	assert_int_equal(vh_msgq_send(q, record, (void *)100), -ENOBUFS);
	for (uintptr_t i = 0; i < 3; i++) {
		vh_msg_node_init(&n[i], node_record, (void *)(i + 1));
		vh_msgq_post(q, &n[i]);
	}
	/* Posting a node that is still queued is a no-op. */
	vh_msgq_post(q, &n[1]);
	assert_false(vh_msgq_prepare_sleep(q));
	while (vh_msgq_drain(q, 1024) > 0) {
	}
	assert_int_equal(g_nseen, VH_MSGQ_SIZE + 3);
	assert_int_equal(g_seen[0], 100);
	/* Nodes run after the ring's messages, in posting order, once each. */
	g_nseen = 0;
	for (uintptr_t i = 0; i < 3; i++) {
		vh_msgq_post(q, &n[i]);
	}
	vh_msgq_post(q, &n[0]);
	assert_int_equal(vh_msgq_drain(q, 100), 3);
	assert_int_equal(g_nseen, 3);
	assert_int_equal(g_seen[0], 1);
	assert_int_equal(g_seen[1], 2);
	assert_int_equal(g_seen[2], 3);
	assert_true(vh_msgq_prepare_sleep(q));
	vh_msgq_wake_done(q);
}

static struct vh_msg_node g_self_node;
static unsigned g_self_runs;

static void
self_repost(void *arg)
{
	struct vh_msgq *q = arg;

	if (++g_self_runs < 5) {
		vh_msgq_post(q, &g_self_node); /* its own node, from its own run */
	}
}

static void
test_node_repost_from_handler(void **state)
{
	struct vh_msgq *q = *state;

	g_self_runs = 0;
	vh_msg_node_init(&g_self_node, self_repost, q);
	vh_msgq_post(q, &g_self_node);
	while (vh_msgq_drain(q, 16) > 0) {
	}
	assert_int_equal(g_self_runs, 5);
}

/* Producers re-post their nodes; every change a producer makes before posting is seen. */
#define NODE_PRODUCERS 3
#define NODE_ROUNDS    20000

struct node_prod {
	struct vh_msgq *q;
	struct vh_msg_node node;
	uint64_t want; /* written by the producer before each post */
	uint64_t seen; /* highest 'want' the owner saw (owner only) */
	uint64_t runs;
};

static void
node_check(void *arg)
{
	struct node_prod *p = arg;
	uint64_t w = __atomic_load_n(&p->want, __ATOMIC_RELAXED);

	assert_true(w >= p->seen);
	p->seen = w;
	p->runs++;
}

static void *
node_producer(void *arg)
{
	struct node_prod *p = arg;

	for (uint64_t i = 1; i <= NODE_ROUNDS; i++) {
		__atomic_store_n(&p->want, i, __ATOMIC_RELAXED);
		vh_msgq_post(p->q, &p->node);
		if ((i & 255) == 0) {
			sched_yield();
		}
	}
	return NULL;
}

static void
test_node_stress(void **state)
{
	struct vh_msgq *q = *state;
	struct node_prod p[NODE_PRODUCERS];
	pthread_t t[NODE_PRODUCERS];
	bool done = false;

	for (int i = 0; i < NODE_PRODUCERS; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].q = q;
		vh_msg_node_init(&p[i].node, node_check, &p[i]);
		assert_int_equal(pthread_create(&t[i], NULL, node_producer, &p[i]), 0);
	}
	while (!done) {
		vh_msgq_drain(q, 64);
		done = true;
		for (int i = 0; i < NODE_PRODUCERS; i++) {
			done &= p[i].seen == NODE_ROUNDS;
		}
		if (!done && vh_msgq_prepare_sleep(q)) {
			struct pollfd pfd = {.fd = q->efd, .events = POLLIN};

			/* Every final post must wake us: a lost wakeup hangs here (test timeout).
			 */
			poll(&pfd, 1, 1000);
			vh_msgq_wake_done(q);
		}
	}
	for (int i = 0; i < NODE_PRODUCERS; i++) {
		pthread_join(t[i], NULL);
		assert_true(p[i].runs >= 1 && p[i].runs <= NODE_ROUNDS);
	}
	while (vh_msgq_drain(q, 64) > 0) {
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_fifo_single_sender, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_full_queue, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_send_from_handler, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prepare_sleep_and_wake, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stress_2_producers, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stress_4_producers, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_node_fifo_and_full_ring, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_node_repost_from_handler, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_node_stress, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stress_3_producers_sleeping_owner, setup,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
