/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reactors: one pinned thread per core of --cpumask, each running pollers in a loop.
 *
 * Rules (docs/design.md, rules 2-6):
 * - A poller belongs to the reactor that registered it. Only that reactor's thread registers,
 *   runs and unregisters it. Reactors share no mutable state.
 * - Other threads reach a reactor only through vh_reactor_send().
 * - A poller returns VH_POLL_BUSY if it did work, VH_POLL_IDLE otherwise.
 * - Adaptive idle: after idle_ns of IDLE polls the reactor calls every poller's arm() (re-enable
 *   guest notifications, arm event fds). If none reports pending work it sleeps in epoll on the
 *   wake fds and its message eventfd; on wake it calls disarm() and polls again.
 * - Deferred work (vh_reactor_defer) runs once at the end of the current loop iteration: this is
 *   where virtqueues publish used entries and signal the guest, once per poll.
 */
#ifndef VH_CORE_REACTOR_H
#define VH_CORE_REACTOR_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/msg.h"

#define VH_MAX_REACTORS 64

enum { VH_POLL_IDLE = 0, VH_POLL_BUSY = 1 };

struct vh_reactor;
struct vh_poller;

struct vh_poller_ops {
	/* Do work; return VH_POLL_BUSY or VH_POLL_IDLE. Required. */
	int (*poll)(void *arg);
	/*
	 * Before sleeping: enable notifications and return > 0 if work is already pending (the
	 * reactor then keeps polling). Optional: without it the poller never blocks sleep.
	 */
	int (*arm)(void *arg);
	/* After waking: back to suppressed notifications. Optional. */
	void (*disarm)(void *arg);
};

struct vh_deferred {
	void (*fn)(struct vh_deferred *d);
	struct vh_deferred *next;
	bool queued;
};

struct vh_reactor_opts {
	uint64_t cpumask; /* cores to start reactors on */
	uint64_t idle_ns; /* idle time before sleeping; 0 = poll only, never sleep */
	bool pin;         /* pin each reactor to its core (default true) */
};

/* Start one reactor per core in opts->cpumask. Control thread. Returns 0 or -errno. */
int vh_reactors_start(const struct vh_reactor_opts *opts);

/* Stop and join all reactors. Their pollers must have been unregistered. Control thread. */
void vh_reactors_stop(void);

/* Number of reactors, and the i-th one (0 <= i < count). Any thread. */
unsigned vh_reactor_count(void);
struct vh_reactor *vh_reactor_get(unsigned i);
/* The reactor on core @core, or NULL. */
struct vh_reactor *vh_reactor_by_core(unsigned core);
/* Bit mask of the cores that run reactors. */
uint64_t vh_reactor_mask(void);

/* The calling thread's reactor, or NULL on a non-reactor thread. */
struct vh_reactor *vh_reactor_self(void);
unsigned vh_reactor_index(const struct vh_reactor *r);
unsigned vh_reactor_core(const struct vh_reactor *r);

/* Run fn(arg) on reactor @r. Any thread. Returns 0 or -ENOBUFS. */
int vh_reactor_send(struct vh_reactor *r, vh_msg_fn fn, void *arg);
/* Run node @n on reactor @r; cannot fail (see struct vh_msg_node). Any thread. */
void vh_reactor_post(struct vh_reactor *r, struct vh_msg_node *n);

/*
 * Register a poller on the calling reactor. @wake_fd (or -1) is watched for EPOLLIN while the
 * reactor sleeps. Reactor thread only. Returns NULL on allocation failure.
 */
struct vh_poller *vh_poller_register(const struct vh_poller_ops *ops, void *arg, int wake_fd,
                                     const char *name);
/* Change the wake fd (e.g. a new kick eventfd). Reactor thread only. Returns 0 or -errno. */
int vh_poller_set_wake_fd(struct vh_poller *p, int wake_fd);
/* Unregister and free; *p is set to NULL. Reactor thread only. Safe inside the poller's poll. */
void vh_poller_unregister(struct vh_poller **p);

/* Queue @d to run at the end of this loop iteration. Reactor thread only. */
void vh_reactor_defer(struct vh_deferred *d);

/*
 * Signal an eventfd a peer gave us (a virtqueue's call fd) without ever blocking for long. The
 * peer shares the open file description, so it can make the fd blocking and saturate the
 * counter: a full counter is refused (-EAGAIN) instead of written, and a write that blocks
 * anyway (the peer raced us) is interrupted by vh_reactors_peer_watchdog() (-EINTR). Both mean
 * the peer is hostile. Any thread; the watchdog covers reactor threads. Returns 0 or -errno.
 */
int vh_peer_eventfd_signal(int fd);

/*
 * write() to a peer's fd under the peer-call watchdog: on a reactor, a write that blocks for
 * two watchdog periods is interrupted (-EINTR). Returns the bytes written or -errno. Use it only
 * after checking the write cannot block in the normal case (vh_peer_eventfd_signal() does).
 */
ssize_t vh_peer_write(int fd, const void *buf, size_t len);

/* Signal used to interrupt a reactor blocked in a peer call (handler installed at start). */
#define VH_PEER_SIGNAL (SIGRTMIN + 3)

/*
 * Control thread, every few tens of milliseconds: a reactor found inside the same peer call
 * at two consecutive samples is interrupted with VH_PEER_SIGNAL. Returns how many were.
 */
unsigned vh_reactors_peer_watchdog(void);

/* Loop iterations so far (for the watchdog heartbeat); any thread, relaxed. */
uint64_t vh_reactor_heartbeat(const struct vh_reactor *r);
/* True while the reactor sleeps (then a stale heartbeat is not a hang). Any thread. */
bool vh_reactor_is_sleeping(const struct vh_reactor *r);

struct vh_reactor_stats {
	uint64_t busy_polls;
	uint64_t idle_polls;
	uint64_t sleeps;
	uint64_t busy_ticks; /* vh_ticks() spent in iterations that found work */
	uint64_t idle_ticks; /* ... that found none, sleeping included */
};
void vh_reactor_get_stats(const struct vh_reactor *r, struct vh_reactor_stats *st);

/*
 * vh_ticks() at the start of the calling reactor's current loop iteration: a timestamp that
 * costs nothing per I/O (bdev statistics and QoS read it). 0 on other threads.
 */
extern __thread uint64_t vh_reactor_iter_ticks;

/* The iteration's timestamp on a reactor, a fresh vh_ticks() elsewhere. Any thread. */
static inline uint64_t
vh_reactor_now_ticks(void)
{
	uint64_t t = vh_reactor_iter_ticks;

	return t != 0 ? t : vh_ticks();
}

#endif
