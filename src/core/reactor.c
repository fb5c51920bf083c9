/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"
#include "core/reactor.h"

struct vh_poller {
	struct vh_poller_ops ops;
	void *arg;
	int wake_fd;
	bool dead;
	bool armed;
	struct vh_poller *next;
	char name[32];
};

struct vh_reactor {
	struct vh_msgq msgq;    /* first: large and cache-aligned */
	uint64_t peer_seq;      /* odd while inside a syscall on a peer's fd; relaxed atomics */
	uint64_t peer_seq_seen; /* control thread: peer_seq at the last watchdog sample */
	unsigned peer_strikes;  /* control thread: samples in a row that found it in that call */
	unsigned idx;
	unsigned core;
	pthread_t tid;
	int epfd;
	bool stop;
	bool pin;
	uint64_t idle_ns;
	uint64_t idle_ticks; /* idle_ns in vh_ticks(), worked out when the reactor starts */
	struct vh_poller *pollers;
	unsigned npollers_dead;
	struct vh_deferred *deferred;
	uint64_t heartbeat;
	int sleeping;
	struct vh_reactor_stats stats;
};

static struct vh_reactor *g_reactors[VH_MAX_REACTORS];
static unsigned g_count;
static uint64_t g_mask;
static __thread struct vh_reactor *t_self;
__thread uint64_t vh_reactor_iter_ticks;

unsigned
vh_reactor_count(void)
{
	return g_count;
}

struct vh_reactor *
vh_reactor_get(unsigned i)
{
	return i < g_count ? g_reactors[i] : NULL;
}

struct vh_reactor *
vh_reactor_by_core(unsigned core)
{
	for (unsigned i = 0; i < g_count; i++) {
		if (g_reactors[i]->core == core) {
			return g_reactors[i];
		}
	}
	return NULL;
}

uint64_t
vh_reactor_mask(void)
{
	return g_mask;
}

struct vh_reactor *
vh_reactor_self(void)
{
	return t_self;
}

unsigned
vh_reactor_index(const struct vh_reactor *r)
{
	return r->idx;
}

unsigned
vh_reactor_core(const struct vh_reactor *r)
{
	return r->core;
}

int
vh_reactor_send(struct vh_reactor *r, vh_msg_fn fn, void *arg)
{
	return vh_msgq_send(&r->msgq, fn, arg);
}

void
vh_reactor_post(struct vh_reactor *r, struct vh_msg_node *n)
{
	vh_msgq_post(&r->msgq, n);
}

uint64_t
vh_reactor_heartbeat(const struct vh_reactor *r)
{
	return __atomic_load_n(&r->heartbeat, __ATOMIC_RELAXED);
}

bool
vh_reactor_is_sleeping(const struct vh_reactor *r)
{
	return __atomic_load_n(&r->sleeping, __ATOMIC_RELAXED) != 0;
}

void
vh_reactor_get_stats(const struct vh_reactor *r, struct vh_reactor_stats *st)
{
	st->busy_polls = __atomic_load_n(&r->stats.busy_polls, __ATOMIC_RELAXED);
	st->idle_polls = __atomic_load_n(&r->stats.idle_polls, __ATOMIC_RELAXED);
	st->sleeps = __atomic_load_n(&r->stats.sleeps, __ATOMIC_RELAXED);
	st->busy_ticks = __atomic_load_n(&r->stats.busy_ticks, __ATOMIC_RELAXED);
	st->idle_ticks = __atomic_load_n(&r->stats.idle_ticks, __ATOMIC_RELAXED);
}

/*
 * Wake fds are watched edge-triggered and never read by the reactor: a kick eventfd belongs to
 * the front-end, which shares its open file description and can make it blocking, so a read()
 * on it could block the reactor forever. An eventfd reports every write to an edge-triggered
 * watcher, and each poller's arm() looks at its real work source before the reactor sleeps.
 */
static int
epoll_watch(struct vh_reactor *r, int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};

	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		return -errno;
	}
	return 0;
}

struct vh_poller *
vh_poller_register(const struct vh_poller_ops *ops, void *arg, int wake_fd, const char *name)
{
	struct vh_reactor *r = t_self;
	struct vh_poller *p;

	if (r == NULL) {
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		return NULL;
	}
	p->ops = *ops;
	p->arg = arg;
	p->wake_fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "poller");
	if (wake_fd >= 0 && vh_poller_set_wake_fd(p, wake_fd) < 0) {
		free(p);
		return NULL;
	}
	/* Append: pollers run in registration order. */
	struct vh_poller **pp = &r->pollers;
	while (*pp) {
		pp = &(*pp)->next;
	}
	*pp = p;
	return p;
}

int
vh_poller_set_wake_fd(struct vh_poller *p, int wake_fd)
{
	struct vh_reactor *r = t_self;
	int rc = 0;

	if (p->wake_fd >= 0) {
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, p->wake_fd, NULL);
	}
	p->wake_fd = -1;
	if (wake_fd >= 0) {
		rc = epoll_watch(r, wake_fd, p, EPOLLIN | EPOLLET);
		if (rc == 0) {
			p->wake_fd = wake_fd;
		}
	}
	return rc;
}

void
vh_poller_unregister(struct vh_poller **pp)
{
	struct vh_poller *p = *pp;

	if (p == NULL) {
		return;
	}
	*pp = NULL;
	if (p->wake_fd >= 0) {
		epoll_ctl(t_self->epfd, EPOLL_CTL_DEL, p->wake_fd, NULL);
		p->wake_fd = -1;
	}
	/* Freed at the end of the iteration: we may be inside its own poll(). */
	p->dead = true;
	t_self->npollers_dead++;
}

void
vh_reactor_defer(struct vh_deferred *d)
{
	struct vh_reactor *r = t_self;

	if (d->queued) {
		return;
	}
	d->queued = true;
	d->next = r->deferred;
	r->deferred = d;
}

static void
reap_dead(struct vh_reactor *r)
{
	struct vh_poller **pp = &r->pollers;

	while (*pp) {
		struct vh_poller *p = *pp;

		if (p->dead) {
			*pp = p->next;
			free(p);
		} else {
			pp = &p->next;
		}
	}
	r->npollers_dead = 0;
}

static void
run_deferred(struct vh_reactor *r)
{
	while (r->deferred) {
		struct vh_deferred *d = r->deferred;

		r->deferred = d->next;
		d->queued = false;
		d->fn(d);
	}
}

/* ---- syscalls on fds a peer gave us ---- */

static void
peer_signal_handler(int sig)
{
	/* Nothing: delivery alone makes the blocked write return EINTR (no SA_RESTART). */
	(void)sig;
}

static int
peer_guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = peer_signal_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* not SA_RESTART: an interrupted eventfd write must fail, not resume */
	return sigaction(VH_PEER_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

int
vh_peer_eventfd_signal(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	uint64_t one = 1;
	ssize_t n;

	/*
	 * An eventfd write blocks only while the counter is at 2^64 - 2, and only if the file is
	 * in blocking mode, which the front-end controls. A counter that high never happens with a
	 * legitimate front-end: report it instead of writing. A peer that fills the counter
	 * between this check and the write is caught by the watchdog (vh_reactors_peer_watchdog).
	 */
	if (poll(&pfd, 1, 0) < 0) {
		return -errno;
	}
	if (pfd.revents & (POLLERR | POLLNVAL)) {
		return -EBADF;
	}
	if (!(pfd.revents & POLLOUT)) {
		return -EAGAIN;
	}
	n = vh_peer_write(fd, &one, sizeof(one));
	return n == (ssize_t)sizeof(one) ? 0 : n < 0 ? (int)n : -EIO;
}

ssize_t
vh_peer_write(int fd, const void *buf, size_t len)
{
	struct vh_reactor *r = t_self;
	ssize_t n;

	if (r != NULL) {
		__atomic_store_n(&r->peer_seq, r->peer_seq + 1, __ATOMIC_RELAXED); /* odd: inside */
	}
	n = write(fd, buf, len);
	if (r != NULL) {
		__atomic_store_n(&r->peer_seq, r->peer_seq + 1, __ATOMIC_RELAXED);
	}
	return n < 0 ? -errno : n;
}

unsigned
vh_reactors_peer_watchdog(void)
{
	unsigned kicked = 0;

	for (unsigned i = 0; i < g_count; i++) {
		struct vh_reactor *r = g_reactors[i];
		uint64_t seq = __atomic_load_n(&r->peer_seq, __ATOMIC_RELAXED);

		/*
		 * Inside the same peer call at three samples in a row: it blocked. Interrupt it.
		 * One sample is not enough: on a loaded host a reactor can be preempted inside a
		 * write that does not block for longer than a period (an interrupt then does
		 * nothing, but the log would cry wolf).
		 */
		r->peer_strikes =
		        (seq & 1) != 0 && seq == r->peer_seq_seen ? r->peer_strikes + 1 : 0;
		if (r->peer_strikes >= 3) {
			VH_LOG_RL(VH_LOG_ERROR, "reactor",
			          "reactor %u blocked in a write to a front-end's fd; "
			          "interrupting it",
			          i);
			pthread_kill(r->tid, VH_PEER_SIGNAL);
			kicked++;
		}
		r->peer_seq_seen = seq;
	}
	return kicked;
}

static int
poll_once(struct vh_reactor *r)
{
	int busy = VH_POLL_IDLE;

	if (vh_msgq_drain(&r->msgq, 64) > 0) {
		busy = VH_POLL_BUSY;
	}
	for (struct vh_poller *p = r->pollers; p; p = p->next) {
		if (!p->dead && p->ops.poll(p->arg) == VH_POLL_BUSY) {
			busy = VH_POLL_BUSY;
		}
	}
	run_deferred(r);
	if (r->npollers_dead) {
		reap_dead(r);
	}
	return busy;
}

static void
disarm_all(struct vh_reactor *r)
{
	for (struct vh_poller *p = r->pollers; p; p = p->next) {
		if (p->armed) {
			p->armed = false;
			if (!p->dead && p->ops.disarm) {
				p->ops.disarm(p->arg);
			}
		}
	}
}

/* Returns true if every poller armed without finding work. */
static bool
arm_all(struct vh_reactor *r)
{
	for (struct vh_poller *p = r->pollers; p; p = p->next) {
		if (p->dead || p->ops.arm == NULL) {
			continue;
		}
		p->armed = true;
		if (p->ops.arm(p->arg) > 0) {
			disarm_all(r);
			return false;
		}
	}
	return true;
}

static void
sleep_once(struct vh_reactor *r)
{
	struct epoll_event evs[32];

	if (!arm_all(r)) {
		return;
	}
	if (!vh_msgq_prepare_sleep(&r->msgq)) {
		disarm_all(r);
		return;
	}
	__atomic_store_n(&r->sleeping, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&r->stats.sleeps, r->stats.sleeps + 1, __ATOMIC_RELAXED);
	/* The timeout bounds how stale the heartbeat can get, not correctness. */
	/* The events only end the sleep: pollers find their work themselves (epoll_watch()). */
	(void)epoll_wait(r->epfd, evs, VH_ARRAY_SIZE(evs), 1000);
	__atomic_store_n(&r->sleeping, 0, __ATOMIC_RELAXED);
	vh_msgq_wake_done(&r->msgq);
	disarm_all(r);
}

static void *
reactor_main(void *arg)
{
	struct vh_reactor *r = arg;
	uint64_t idle_since = 0;
	bool was_busy = false;
	char name[16];

	t_self = r;
	snprintf(name, sizeof(name), "reactor_%u", r->core);
	pthread_setname_np(pthread_self(), name);
	if (r->pin) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(r->core, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
			VH_WARN("reactor", "cannot pin reactor to core %u", r->core);
		}
	}
	VH_INFO("reactor", "reactor %u running on core %u", r->idx, r->core);
	r->idle_ticks = vh_ns_to_ticks(r->idle_ns);
	vh_reactor_iter_ticks = vh_ticks();
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint64_t t = vh_ticks();

		/* One timestamp per iteration: busy/idle time, and the I/O timestamps of its work.
		 */
		if (was_busy) {
			VH_STAT_ADD(r->stats.busy_ticks, t - vh_reactor_iter_ticks);
		} else {
			VH_STAT_ADD(r->stats.idle_ticks, t - vh_reactor_iter_ticks);
		}
		vh_reactor_iter_ticks = t;
		__atomic_store_n(&r->heartbeat, r->heartbeat + 1, __ATOMIC_RELAXED);
		was_busy = poll_once(r) == VH_POLL_BUSY;
		if (was_busy) {
			/* Single writer; relaxed atomics so other threads may read the counters. */
			__atomic_store_n(&r->stats.busy_polls, r->stats.busy_polls + 1,
			                 __ATOMIC_RELAXED);
			idle_since = 0;
			continue;
		}
		__atomic_store_n(&r->stats.idle_polls, r->stats.idle_polls + 1, __ATOMIC_RELAXED);
		if (r->idle_ns == 0) {
			continue;
		}
		/*
		 * The iteration's own timestamp: an idle iteration reads no clock of its own
		 * (clock_gettime() was a fifth of a paced reactor's samples in a VM).
		 */
		if (idle_since == 0) {
			idle_since = t;
		} else if (t - idle_since >= r->idle_ticks) {
			sleep_once(r);
			idle_since = 0;
		}
	}
	/* Last messages (e.g. teardown of pollers) still run before exit. */
	while (vh_msgq_drain(&r->msgq, 64) > 0) {
	}
	run_deferred(r);
	reap_dead(r);
	return NULL;
}

static void
reactor_free(struct vh_reactor *r)
{
	if (r->epfd >= 0) {
		close(r->epfd);
	}
	vh_msgq_fini(&r->msgq);
	free(r);
}

static struct vh_reactor *
reactor_new(unsigned idx, unsigned core, const struct vh_reactor_opts *opts)
{
	struct vh_reactor *r;

	if (posix_memalign((void **)&r, VH_CACHE_LINE, sizeof(*r)) != 0) {
		return NULL;
	}
	memset(r, 0, sizeof(*r));
	r->epfd = -1;
	if (vh_msgq_init(&r->msgq) < 0) {
		free(r);
		return NULL;
	}
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0 || epoll_watch(r, r->msgq.efd, NULL, EPOLLIN) < 0) {
		reactor_free(r);
		return NULL;
	}
	r->idx = idx;
	r->core = core;
	r->idle_ns = opts->idle_ns;
	r->pin = opts->pin;
	return r;
}

int
vh_reactors_start(const struct vh_reactor_opts *opts)
{
	int rc;

	if (opts->cpumask == 0) {
		return -EINVAL;
	}
	rc = peer_guard_install();
	if (rc < 0) {
		return rc;
	}
	/* Calibrate the tick rate here, so no reactor ever waits for it (vh_ticks_hz()). */
	vh_ticks_hz();
	for (unsigned core = 0; core < 64; core++) {
		if (!(opts->cpumask & (1ull << core))) {
			continue;
		}
		struct vh_reactor *r = reactor_new(g_count, core, opts);
		if (r == NULL) {
			rc = -ENOMEM;
			goto out_stop;
		}
		g_reactors[g_count++] = r;
		rc = -pthread_create(&r->tid, NULL, reactor_main, r);
		if (rc < 0) {
			g_count--;
			reactor_free(r);
			goto out_stop;
		}
	}
	g_mask = opts->cpumask;
	return 0;

out_stop:
	vh_reactors_stop();
	return rc;
}

static void
wake_for_stop(void *arg)
{
	(void)arg;
}

void
vh_reactors_stop(void)
{
	for (unsigned i = 0; i < g_count; i++) {
		__atomic_store_n(&g_reactors[i]->stop, true, __ATOMIC_RELEASE);
		vh_reactor_send(g_reactors[i], wake_for_stop, NULL);
	}
	for (unsigned i = 0; i < g_count; i++) {
		pthread_join(g_reactors[i]->tid, NULL);
		reactor_free(g_reactors[i]);
		g_reactors[i] = NULL;
	}
	g_count = 0;
	g_mask = 0;
}
