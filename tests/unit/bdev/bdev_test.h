/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared by the bdev unit tests: one real reactor (core 0, not pinned) and a way to run a
 * function on it and wait, with a deadline, for it to finish. Bodies that run on the reactor
 * record results; assertions happen on the test thread (cmocka is not thread-safe).
 */
#ifndef VH_TEST_BDEV_TEST_H
#define VH_TEST_BDEV_TEST_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev_module.h"
#include "core/reactor.h"

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

#define WAIT_UNTIL(cond, ms)                                                                       \
	({                                                                                         \
		uint64_t _dl = vh_now_ns() + (uint64_t)(ms)*1000000ull;                            \
		bool _ok;                                                                          \
		while (!(_ok = (cond)) && vh_now_ns() < _dl) {                                     \
			sched_yield();                                                             \
		}                                                                                  \
		_ok;                                                                               \
	})

struct bt_call {
	void (*fn)(void *arg);
	void *arg;
	int done;
};

static inline void
bt_call_msg(void *arg)
{
	struct bt_call *c = arg;

	c->fn(c->arg);
	STORE(c->done, 1);
}

/* Run fn(arg) on reactor 0 and wait up to 5 s. Returns false on timeout. */
static inline bool
bt_on_reactor(void (*fn)(void *arg), void *arg)
{
	struct bt_call c = {.fn = fn, .arg = arg};

	if (vh_reactor_send(vh_reactor_get(0), bt_call_msg, &c) != 0) {
		return false;
	}
	return WAIT_UNTIL(LOAD(c.done), 5000);
}

static inline int
bt_start_reactor(void)
{
	struct vh_reactor_opts o = {.cpumask = 0x1, .idle_ns = 100000, .pin = false};

	return vh_reactors_start(&o);
}

/* An I/O with its own completion record. */
struct bt_io {
	struct vh_bdev_io io;
	int cb_count;
	int status;
	int submit_rc;
	bool cb_inside_submit;
	bool cb_on_other_thread;
	struct vh_reactor *submitter;
	int seq;
};

/* Set while the reactor is inside vh_bdev_submit(): a callback seeing it broke the contract. */
static bool g_bt_in_submit;
static int g_bt_completions;
static int g_bt_order[64];

static inline void
bt_io_cb(struct vh_bdev_io *io, int status)
{
	struct bt_io *b = VH_CONTAINER_OF(io, struct bt_io, io);

	if (g_bt_in_submit) {
		b->cb_inside_submit = true;
	}
	if (vh_reactor_self() != b->submitter) {
		b->cb_on_other_thread = true;
	}
	b->status = status;
	if (g_bt_completions < 64) {
		g_bt_order[g_bt_completions] = b->seq;
	}
	g_bt_completions++;
	__atomic_add_fetch(&b->cb_count, 1, __ATOMIC_ACQ_REL);
}

/* On the reactor: submit @b through @ch, recording the return code. */
static inline void
bt_submit(struct vh_bdev_channel *ch, struct bt_io *b)
{
	b->submitter = vh_reactor_self();
	b->io.cb = bt_io_cb;
	g_bt_in_submit = true;
	b->submit_rc = vh_bdev_submit(ch, &b->io);
	g_bt_in_submit = false;
}

#endif
