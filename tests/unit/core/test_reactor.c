/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/core/reactor.c: one reactor thread with a short idle time. Messages, pollers registered
 * from a message, BUSY/IDLE accounting, deferred work, unregistering inside poll, and sleeping
 * and waking on a wake fd or a message. The test thread plays the control thread; it only
 * observes reactor-owned state through atomics, after waiting with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/reactor.h"

#define IDLE_NS 200000ull /* 200 us */
/* The reactor's epoll timeout is 1 s: a wake-up must come well before that. */
#define WAKE_DEADLINE_MS 500

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define INC(x)      __atomic_add_fetch(&(x), 1, __ATOMIC_ACQ_REL)

#define WAIT_UNTIL(cond, ms)                                                                       \
	({                                                                                         \
		uint64_t _dl = vh_now_ns() + (uint64_t)(ms)*1000000ull;                            \
		bool _ok;                                                                          \
		while (!(_ok = (cond)) && vh_now_ns() < _dl) {                                     \
			sched_yield();                                                             \
		}                                                                                  \
		_ok;                                                                               \
	})

static struct vh_reactor *g_r;

/* Run fn(arg) on the reactor and wait for it to finish. */
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

static int
group_setup(void **state)
{
	struct vh_reactor_opts bad = {.cpumask = 0, .idle_ns = IDLE_NS};
	struct vh_reactor_opts o = {.cpumask = 0x1, .idle_ns = IDLE_NS, .pin = false};

	(void)state;
	if (vh_reactors_start(&bad) != -EINVAL || vh_reactor_count() != 0) {
		return -1;
	}
	if (vh_reactors_start(&o) != 0) {
		return -1;
	}
	g_r = vh_reactor_get(0);
	return g_r == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	vh_reactors_stop();
	return vh_reactor_count() == 0 && vh_reactor_get(0) == NULL ? 0 : -1;
}

static void
test_topology(void **state)
{
	(void)state;
	assert_int_equal(vh_reactor_count(), 1);
	assert_int_equal(vh_reactor_mask(), 0x1);
	assert_ptr_equal(vh_reactor_by_core(0), g_r);
	assert_null(vh_reactor_by_core(1));
	assert_null(vh_reactor_get(1));
	assert_int_equal(vh_reactor_index(g_r), 0);
	assert_int_equal(vh_reactor_core(g_r), 0);
	/* The test thread is not a reactor: it cannot own pollers. */
	assert_null(vh_reactor_self());
	{
		static const struct vh_poller_ops ops = {.poll = NULL};

		assert_null(vh_poller_register(&ops, NULL, -1, "x"));
	}
}

/* ---- messages ---- */

struct self_check {
	struct vh_reactor *self;
	pthread_t tid;
	uint32_t order[64];
	unsigned n;
};

static void
self_msg(void *arg)
{
	struct self_check *c = arg;

	c->self = vh_reactor_self();
	c->tid = pthread_self();
}

static struct self_check g_sc;

static void
order_msg(void *arg)
{
	g_sc.order[g_sc.n++] = (uint32_t)(uintptr_t)arg;
}

static void
test_messages_run_on_reactor_in_order(void **state)
{
	struct self_check c = {0};

	(void)state;
	on_reactor(self_msg, &c);
	assert_ptr_equal(c.self, g_r);
	assert_false(pthread_equal(c.tid, pthread_self()));

	memset(&g_sc, 0, sizeof(g_sc));
	for (uintptr_t i = 0; i < 50; i++) {
		assert_int_equal(vh_reactor_send(g_r, order_msg, (void *)i), 0);
	}
	on_reactor(order_msg, (void *)1000);
	assert_int_equal(g_sc.n, 51);
	for (unsigned i = 0; i < 50; i++) {
		assert_int_equal(g_sc.order[i], i);
	}
	assert_int_equal(g_sc.order[50], 1000);
}

/* ---- pollers ---- */

struct tpoller {
	struct vh_poller *p;
	int busy_left; /* return BUSY this many more times */
	int polls;
	int unregister_at; /* unregister itself on this poll (0 = never) */
	int arm_ret;
	int arms, disarms;
	int work; /* set by the test thread before kicking the wake fd */
	int work_done;
	int wake_fd;
	struct vh_deferred d;
	int deferred_runs;
	int defer_mismatch; /* deferred work ran a different number of times than poll */
	bool defer_each_poll;
};

static int
tp_poll(void *arg)
{
	struct tpoller *t = arg;
	int polls = INC(t->polls);

	if (t->defer_each_poll) {
		/* Twice: the second is a no-op, the work runs once at the end of the iteration. */
		vh_reactor_defer(&t->d);
		vh_reactor_defer(&t->d);
	}
	if (t->unregister_at != 0 && polls == t->unregister_at) {
		vh_poller_unregister(&t->p);
		return VH_POLL_BUSY;
	}
	if (LOAD(t->work)) {
		STORE(t->work, 0);
		INC(t->work_done);
		return VH_POLL_BUSY;
	}
	if (t->busy_left > 0) {
		t->busy_left--;
		return VH_POLL_BUSY;
	}
	return VH_POLL_IDLE;
}

static int
tp_arm(void *arg)
{
	struct tpoller *t = arg;

	INC(t->arms);
	return LOAD(t->arm_ret);
}

static void
tp_disarm(void *arg)
{
	struct tpoller *t = arg;

	INC(t->disarms);
}

static void
tp_deferred(struct vh_deferred *d)
{
	struct tpoller *t = VH_CONTAINER_OF(d, struct tpoller, d);
	int runs = INC(t->deferred_runs);

	if (runs != LOAD(t->polls)) {
		INC(t->defer_mismatch);
	}
}

static const struct vh_poller_ops tp_ops = {
        .poll = tp_poll,
        .arm = tp_arm,
        .disarm = tp_disarm,
};

static const struct vh_poller_ops tp_ops_noarm = {
        .poll = tp_poll,
};

static void
reg_msg(void *arg)
{
	struct tpoller *t = arg;

	t->p = vh_poller_register(t->wake_fd == -2 ? &tp_ops_noarm : &tp_ops, t,
	                          t->wake_fd >= 0 ? t->wake_fd : -1, "tp");
}

static void
unreg_msg(void *arg)
{
	struct tpoller *t = arg;

	vh_poller_unregister(&t->p);
	assert_null(t->p);
}

static void
tp_init(struct tpoller *t)
{
	memset(t, 0, sizeof(*t));
	t->wake_fd = -1;
	t->d.fn = tp_deferred;
}

static void
test_poller_busy_idle(void **state)
{
	struct tpoller t;
	struct vh_reactor_stats s0, s1;

	(void)state;
	tp_init(&t);
	t.busy_left = 1000;
	t.wake_fd = -2; /* no arm: never blocks sleep, never sleeps on its own */
	vh_reactor_get_stats(g_r, &s0);
	on_reactor(reg_msg, &t);
	assert_non_null(t.p);
	assert_true(WAIT_UNTIL(LOAD(t.polls) > 1010, 5000));
	vh_reactor_get_stats(g_r, &s1);
	/* 1000 busy polls of the poller, plus the iterations that ran a message. */
	assert_true(s1.busy_polls - s0.busy_polls >= 1000);
	assert_true(s1.busy_polls - s0.busy_polls <= 1000 + 4);
	assert_true(s1.idle_polls - s0.idle_polls >= 9);
	on_reactor(unreg_msg, &t);
}

static void
test_deferred_once_per_iteration(void **state)
{
	struct tpoller t;

	(void)state;
	tp_init(&t);
	t.defer_each_poll = true;
	t.busy_left = 500;
	on_reactor(reg_msg, &t);
	assert_true(WAIT_UNTIL(LOAD(t.polls) >= 500, 5000));
	on_reactor(unreg_msg, &t);
	assert_int_equal(LOAD(t.defer_mismatch), 0);
	assert_int_equal(LOAD(t.deferred_runs), LOAD(t.polls));
	assert_false(t.d.queued);
}

static void
test_unregister_inside_poll(void **state)
{
	struct tpoller t, witness;
	int polls;

	(void)state;
	tp_init(&t);
	tp_init(&witness);
	t.unregister_at = 5;
	t.busy_left = 100000;
	witness.wake_fd = -2;
	witness.busy_left = 1 << 30;
	on_reactor(reg_msg, &t);
	on_reactor(reg_msg, &witness);
	assert_true(WAIT_UNTIL(LOAD(t.polls) >= 5, 5000));
	/* Let the reactor run many more iterations: the dead poller is never polled again. */
	polls = LOAD(witness.polls);
	assert_true(WAIT_UNTIL(LOAD(witness.polls) > polls + 1000, 5000));
	assert_int_equal(LOAD(t.polls), 5);
	assert_null(t.p);
	on_reactor(unreg_msg, &witness);
}

static void
wait_sleeping(void)
{
	assert_true(WAIT_UNTIL(vh_reactor_is_sleeping(g_r), 5000));
}

static void
test_sleep_and_wake_on_fd(void **state)
{
	struct tpoller t;
	struct vh_reactor_stats s0, s1;
	uint64_t one = 1, v;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	(void)state;
	assert_true(efd >= 0);
	tp_init(&t);
	t.wake_fd = efd;
	/*
	 * Before the registration: the reactor is awake while it runs the message, so every
	 * sleep the rounds below wait for begins after s0. Read after it, s0 could already count
	 * the first of them (the reactor may go to sleep before this thread reads the stats).
	 */
	vh_reactor_get_stats(g_r, &s0);
	on_reactor(reg_msg, &t);
	assert_non_null(t.p);
	wait_sleeping();
	assert_true(LOAD(t.arms) >= 1);

	for (int round = 0; round < 3; round++) {
		int done = LOAD(t.work_done), disarms;

		wait_sleeping();
		disarms = LOAD(t.disarms);
		STORE(t.work, 1);
		assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
		if (!WAIT_UNTIL(LOAD(t.work_done) == done + 1, WAKE_DEADLINE_MS)) {
			fail_msg("round %d: reactor did not wake on its poller's fd", round);
		}
		/*
		 * Woken and disarmed, but the counter is untouched: a wake fd may be a front-end's
		 * kick eventfd, which it can make blocking, so the reactor never reads one. Edge
		 * triggering wakes it on every write although the counter stays readable.
		 */
		assert_true(LOAD(t.disarms) > disarms);
	}
	/* Never read: every write is still counted, and rounds 1-2 woke a readable fd. */
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 3);
	vh_reactor_get_stats(g_r, &s1);
	assert_true(s1.sleeps - s0.sleeps >= 3);
	on_reactor(unreg_msg, &t);
	close(efd);
}

static int g_woke_by_msg;

static void
mark_msg(void *arg)
{
	(void)arg;
	STORE(g_woke_by_msg, 1);
}

static void
test_sleep_and_wake_on_message(void **state)
{
	(void)state;
	for (int round = 0; round < 3; round++) {
		STORE(g_woke_by_msg, 0);
		wait_sleeping();
		assert_int_equal(vh_reactor_send(g_r, mark_msg, NULL), 0);
		if (!WAIT_UNTIL(LOAD(g_woke_by_msg), WAKE_DEADLINE_MS)) {
			fail_msg("round %d: sleeping reactor did not run a message", round);
		}
	}
}

static void
test_arm_with_pending_work_prevents_sleep(void **state)
{
	struct tpoller t;
	struct vh_reactor_stats s0, s1;

	(void)state;
	tp_init(&t);
	STORE(t.arm_ret, 1);
	on_reactor(reg_msg, &t);
	vh_reactor_get_stats(g_r, &s0);
	/* arm() is only called once the idle time ran out: wait for several of those. */
	assert_true(WAIT_UNTIL(LOAD(t.arms) >= 10, 5000));
	vh_reactor_get_stats(g_r, &s1);
	assert_int_equal(s1.sleeps, s0.sleeps);
	assert_false(vh_reactor_is_sleeping(g_r));
	/* Every arm that found work was undone right away. */
	assert_true(LOAD(t.disarms) >= LOAD(t.arms) - 1);

	/* Now nothing is pending: the reactor goes to sleep. */
	STORE(t.arm_ret, 0);
	wait_sleeping();
	on_reactor(unreg_msg, &t);
}

static void
test_idle_zero_never_sleeps(void **state)
{
	/* A separate check of poll-only mode: restart with idle_ns = 0. */
	struct vh_reactor_opts o = {.cpumask = 0x1, .idle_ns = 0, .pin = false};
	struct vh_reactor_stats st;
	uint64_t hb;

	(void)state;
	vh_reactors_stop();
	assert_int_equal(vh_reactor_count(), 0);
	assert_int_equal(vh_reactors_start(&o), 0);
	g_r = vh_reactor_get(0);
	hb = vh_reactor_heartbeat(g_r);
	assert_true(WAIT_UNTIL(vh_reactor_heartbeat(g_r) > hb + 100000, 10000));
	vh_reactor_get_stats(g_r, &st);
	assert_int_equal(st.sleeps, 0);
	assert_false(vh_reactor_is_sleeping(g_r));
	STORE(g_woke_by_msg, 0);
	assert_int_equal(vh_reactor_send(g_r, mark_msg, NULL), 0);
	assert_true(WAIT_UNTIL(LOAD(g_woke_by_msg), WAKE_DEADLINE_MS));
}

/* ---- the peer-call watchdog ---- */

struct blocked_write {
	int fd;
	ssize_t rc;
	int done;
};

static void
blocked_write_msg(void *arg)
{
	struct blocked_write *b = arg;
	char c = 'x';

	STORE(b->rc, vh_peer_write(b->fd, &c, 1));
	STORE(b->done, 1);
}

/*
 * A write to a peer's fd that blocks (here: a full pipe in blocking mode, standing in for an
 * eventfd the front-end saturated after our check) is interrupted by the watchdog when four
 * samples in a row found it there, and the reactor goes on. A reactor not in a peer call is
 * never signalled.
 */
static void
test_peer_watchdog_interrupts_blocked_write(void **state)
{
	struct blocked_write b = {.rc = 1};
	char buf[4096] = {0};
	struct tpoller t;
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	while (write(p[1], buf, sizeof(buf)) > 0) {
	}
	assert_int_equal(fcntl(p[1], F_SETFL, 0), 0); /* blocking again, and full */
	/* Idle reactor: two samples, nothing to interrupt. */
	assert_int_equal(vh_reactors_peer_watchdog(), 0);
	assert_int_equal(vh_reactors_peer_watchdog(), 0);
	b.fd = p[1];
	assert_int_equal(vh_reactor_send(g_r, blocked_write_msg, &b), 0);
	/*
	 * The reactor is stuck in write(): the first sample notes it, the next two find it
	 * still there (a preempted reactor would have moved on), the fourth interrupts.
	 */
	poll(NULL, 0, 20);
	assert_false(LOAD(b.done));
	assert_int_equal(vh_reactors_peer_watchdog(), 0);
	for (int i = 0; i < 2; i++) {
		poll(NULL, 0, 20);
		assert_int_equal(vh_reactors_peer_watchdog(), 0);
		assert_false(LOAD(b.done));
	}
	poll(NULL, 0, 20);
	assert_int_equal(vh_reactors_peer_watchdog(), 1);
	assert_true(WAIT_UNTIL(LOAD(b.done), 2000));
	assert_int_equal(LOAD(b.rc), -EINTR);
	/* The reactor still works. */
	tp_init(&t);
	on_reactor(reg_msg, &t);
	on_reactor(unreg_msg, &t);
	close(p[0]);
	close(p[1]);
}

/* A saturated eventfd is reported, not written: the write would block. */
static void
test_peer_eventfd_saturated(void **state)
{
	uint64_t big = 0xfffffffffffffffeull, v;
	int efd = eventfd(0, EFD_CLOEXEC); /* blocking */

	(void)state;
	assert_int_equal(vh_peer_eventfd_signal(efd), 0);
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 1);
	assert_int_equal(write(efd, &big, sizeof(big)), sizeof(big));
	assert_int_equal(vh_peer_eventfd_signal(efd), -EAGAIN);
	close(efd);
	assert_int_equal(vh_peer_eventfd_signal(efd), -EBADF);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_topology),
	        cmocka_unit_test(test_messages_run_on_reactor_in_order),
	        cmocka_unit_test(test_poller_busy_idle),
	        cmocka_unit_test(test_deferred_once_per_iteration),
	        cmocka_unit_test(test_unregister_inside_poll),
	        cmocka_unit_test(test_sleep_and_wake_on_fd),
	        cmocka_unit_test(test_sleep_and_wake_on_message),
	        cmocka_unit_test(test_arm_with_pending_work_prevents_sleep),
	        cmocka_unit_test(test_peer_watchdog_interrupts_blocked_write),
	        cmocka_unit_test(test_peer_eventfd_saturated),
	        /* Last: it restarts the reactor in poll-only mode. */
	        cmocka_unit_test(test_idle_zero_never_sleeps),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
