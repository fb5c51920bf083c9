/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-bdev QoS rate limits (SPDK's bdev_set_qos_limit), enforced in the bdev layer so every
 * front-end gets them.
 *
 * Each limit is one GCRA token bucket per bdev (struct vh_qos_bucket), shared by the bdev's
 * channels on every reactor without a lock: a channel leases about 1 ms of the limit at a time
 * with one compare-and-swap and spends it locally, so the aggregate over all reactors is the
 * limit, exactly, and the shared cache line is touched about a thousand times a second per
 * reactor, not per I/O. SPDK instead sends every I/O of a limited bdev to one "QoS thread";
 * we keep queues on their own reactors (docs/design.md rule 8).
 *
 * Burst: a bucket lets VH_BDEV_QOS_BURST_MS worth of its limit pass at once (GCRA tolerance),
 * so a guest under its limit never waits, even when its I/O comes in clumps. An I/O larger
 * than the burst still passes when the bucket is full, and the debt delays the ones after it.
 *
 * Waiting: an I/O over the limit is queued in its channel (FIFO; later ones queue behind it)
 * and submitted from the channel's poll once its tokens are available. A timerfd wakes the
 * reactor if it went to sleep meanwhile. A waiting I/O is never failed; if the back-end then
 * refuses it with -EAGAIN/-ENOMEM it stays first in line (it keeps its tokens).
 *
 * Only reads and writes are limited, as in SPDK; flush, discard and write-zeroes pass.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bdev/bdev_internal.h"
#include "core/log.h"
#include "core/reactor.h"

/* ---- the shared buckets ---- */

void
vh_qos_bucket_set(struct vh_qos_bucket *bk, uint64_t rate, uint64_t hz, uint64_t now)
{
	uint64_t tpu = rate ? (uint64_t)(((unsigned __int128)hz << 32) / rate) : 0;

	__atomic_store_n(&bk->tau, hz * VH_BDEV_QOS_BURST_MS / 1000, __ATOMIC_RELAXED);
	__atomic_store_n(&bk->quantum, rate / 1000 ? rate / 1000 : 1, __ATOMIC_RELAXED);
	/* A new limit starts now with a full burst allowance: a change takes effect at once. */
	__atomic_store_n(&bk->tat, now, __ATOMIC_RELAXED);
	__atomic_store_n(&bk->tpu_q32, tpu, __ATOMIC_RELAXED);
}

bool
vh_qos_bucket_take(struct vh_qos_bucket *bk, uint64_t now, uint64_t units, uint64_t *retry_at)
{
	uint64_t tpu = __atomic_load_n(&bk->tpu_q32, __ATOMIC_RELAXED);
	uint64_t tau = __atomic_load_n(&bk->tau, __ATOMIC_RELAXED);
	uint64_t inc = (uint64_t)(((unsigned __int128)units * tpu) >> 32);
	uint64_t tat = __atomic_load_n(&bk->tat, __ATOMIC_RELAXED);
	uint64_t start;

	/* Relaxed is enough: tat is the only shared datum, and the CAS orders updates to it. */
	do {
		start = tat > now ? tat : now;
		if (start - now > tau) {
			*retry_at = start - tau;
			return false;
		}
	} while (!__atomic_compare_exchange_n(&bk->tat, &tat, start + inc, true, __ATOMIC_RELAXED,
	                                      __ATOMIC_RELAXED));
	return true;
}

/* ---- channels (reactor) ---- */

static bool
limited(const struct vh_bdev_io *io)
{
	return io->type == VH_BDEV_IO_READ || io->type == VH_BDEV_IO_WRITE;
}

/* Units of limit @k that @io costs. */
static uint64_t
cost(enum vh_bdev_qos_limit k, const struct vh_bdev_io *io)
{
	switch (k) {
	case VH_BDEV_QOS_RW_IOPS:
		return 1;
	case VH_BDEV_QOS_RW_BPS:
		return io->length;
	case VH_BDEV_QOS_R_BPS:
		return io->type == VH_BDEV_IO_READ ? io->length : 0;
	case VH_BDEV_QOS_W_BPS:
		return io->type == VH_BDEV_IO_WRITE ? io->length : 0;
	default:
		return 0;
	}
}

/* Credit leased under an older configuration is dropped: the new limits apply at once. */
static void
sync_gen(struct vh_bdev_channel *ch, const struct vh_bdev_qos *q)
{
	uint32_t gen = __atomic_load_n(&q->gen, __ATOMIC_RELAXED);

	if (VH_UNLIKELY(ch->qos_gen != gen)) {
		ch->qos_gen = gen;
		ch->qos_due = 0;
		memset(ch->qos_credit, 0, sizeof(ch->qos_credit));
	}
}

/* Take @io's tokens from the local credit, leasing what is missing. False: wait (qos_due). */
static bool
take_tokens(struct vh_bdev_channel *ch, struct vh_bdev_qos *q, const struct vh_bdev_io *io,
            uint64_t now)
{
	uint64_t c[VH_BDEV_QOS_NLIMITS];

	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		struct vh_qos_bucket *bk = &q->bk[k];
		uint64_t lease;

		c[k] = 0;
		if (__atomic_load_n(&bk->tpu_q32, __ATOMIC_RELAXED) == 0) {
			continue;
		}
		c[k] = cost(k, io);
		if (c[k] <= ch->qos_credit[k]) {
			continue;
		}
		/* What a lease got is kept even if another limit says wait: nothing is lost. */
		lease = VH_MAX(c[k] - ch->qos_credit[k],
		               __atomic_load_n(&bk->quantum, __ATOMIC_RELAXED));
		if (!vh_qos_bucket_take(bk, now, lease, &ch->qos_due)) {
			return false;
		}
		ch->qos_credit[k] += lease;
	}
	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		ch->qos_credit[k] -= c[k];
	}
	return true;
}

static int
timer_poll(void *arg)
{
	(void)arg;
	return VH_POLL_IDLE; /* only a wake source: channel_poll() does the work */
}

static const struct vh_poller_ops timer_ops = {
        .poll = timer_poll,
};

/* The wake-up timer for a sleeping reactor, made the first time a request waits. */
static void
ensure_timer(struct vh_bdev_channel *ch)
{
	if (ch->qos_poller != NULL) {
		return;
	}
	if (ch->qos_tfd < 0) {
		ch->qos_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	}
	if (ch->qos_tfd >= 0) {
		ch->qos_poller = vh_poller_register(&timer_ops, ch, ch->qos_tfd, "qos");
	}
	/* Without it the reactor just keeps polling while requests wait (vh_bdev_qos_arm()). */
}

static void
enqueue(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	io->next = NULL;
	*ch->qos_tail = io;
	ch->qos_tail = &io->next;
	if (ch->rs != NULL) {
		VH_STAT_ADD(ch->rs->qos_throttled, 1);
		VH_STAT_ADD(ch->rs->qos_queued, 1);
	}
	ensure_timer(ch);
}

void
vh_bdev_qos_channel_init(struct vh_bdev_channel *ch)
{
	ch->qos_head = NULL;
	ch->qos_tail = &ch->qos_head;
	ch->qos_head_paid = false;
	ch->qos_gen = 0;
	ch->qos_due = 0;
	memset(ch->qos_credit, 0, sizeof(ch->qos_credit));
	ch->qos_poller = NULL;
	ch->qos_tfd = -1;
}

void
vh_bdev_qos_channel_fini(struct vh_bdev_channel *ch)
{
	vh_poller_unregister(&ch->qos_poller);
	if (ch->qos_tfd >= 0) {
		close(ch->qos_tfd);
		ch->qos_tfd = -1;
	}
}

int
vh_bdev_qos_admit(struct vh_bdev_channel *ch, struct vh_bdev_io *io)
{
	struct vh_bdev *b = ch->bdev;
	struct vh_bdev_qos *q;

	if (!limited(io)) {
		return 0;
	}
	if (ch->qos_head == NULL) {
		/* Pairs with the release store in vh_bdev_qos_set(): b->qos is set up. */
		if (!__atomic_load_n(&b->qos_on, __ATOMIC_ACQUIRE)) {
			return 0;
		}
		q = b->qos;
		sync_gen(ch, q);
		if (take_tokens(ch, q, io, vh_reactor_now_ticks())) {
			return 0;
		}
	}
	/* Behind the ones already waiting, so a channel serves its requests in order. */
	enqueue(ch, io);
	return 1;
}

int
vh_bdev_qos_dispatch(struct vh_bdev_channel *ch)
{
	struct vh_bdev *b = ch->bdev;
	struct vh_bdev_qos *q = NULL;
	uint64_t now = vh_reactor_now_ticks();
	struct vh_bdev_io *io;
	int busy = VH_POLL_IDLE;

	if (__atomic_load_n(&b->qos_on, __ATOMIC_ACQUIRE)) {
		q = b->qos;
		sync_gen(ch, q);
	}
	while ((io = ch->qos_head) != NULL) {
		int rc;

		/* q == NULL: every limit was removed, so everything waiting goes now. */
		if (!ch->qos_head_paid && q != NULL &&
		    (now < ch->qos_due || !take_tokens(ch, q, io, now))) {
			break;
		}
		ch->qos_head = io->next;
		if (ch->qos_head == NULL) {
			ch->qos_tail = &ch->qos_head;
		}
		io->next = NULL;
		rc = vh_bdev_backend_submit(ch, io);
		if (rc == -EAGAIN || rc == -ENOMEM) {
			/* Back-pressure: first in line again, with the tokens it already has. */
			io->next = ch->qos_head;
			ch->qos_head = io;
			if (io->next == NULL) {
				ch->qos_tail = &io->next;
			}
			ch->qos_head_paid = true;
			break;
		}
		ch->qos_head_paid = false;
		if (ch->rs != NULL) {
			VH_STAT_ADD(ch->rs->qos_queued, (uint64_t)-1);
		}
		busy = VH_POLL_BUSY;
		if (VH_UNLIKELY(rc < 0)) {
			/* We accepted it, so it completes (later than its submit, as promised). */
			vh_bdev_account(ch, io, rc);
			io->cb(io, rc);
		}
	}
	return busy;
}

int
vh_bdev_qos_arm(struct vh_bdev_channel *ch)
{
	struct itimerspec its = {{0, 0}, {0, 0}};
	uint64_t now = vh_ticks(), ns;

	if (ch->qos_head_paid || !__atomic_load_n(&ch->bdev->qos_on, __ATOMIC_RELAXED) ||
	    ch->qos_due <= now || ch->qos_tfd < 0 || ch->qos_poller == NULL) {
		return 1;
	}
	ns = vh_ticks_to_ns(ch->qos_due - now, ch->ns_mult) + 1;
	its.it_value.tv_sec = (time_t)(ns / 1000000000u);
	its.it_value.tv_nsec = (long)(ns % 1000000000u);
	if (timerfd_settime(ch->qos_tfd, 0, &its, NULL) < 0) {
		return 1;
	}
	return 0;
}

/* ---- configuration (control thread) ---- */

int
vh_bdev_qos_set(struct vh_bdev *b, const uint64_t limits[VH_BDEV_QOS_NLIMITS])
{
	struct vh_bdev_qos *q = b->qos;
	uint64_t next[VH_BDEV_QOS_NLIMITS], hz, now;
	bool any = false;

	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		uint64_t unit =
		        k == VH_BDEV_QOS_RW_IOPS ? VH_BDEV_QOS_IOPS_UNIT : VH_BDEV_QOS_BPS_UNIT;

		next[k] = q != NULL ? q->limits[k] : 0;
		if (limits[k] == VH_BDEV_QOS_UNCHANGED) {
			continue;
		}
		if (limits[k] % unit != 0) {
			return -EINVAL;
		}
		next[k] = limits[k];
	}
	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		any |= next[k] != 0;
	}
	if (q == NULL) {
		if (!any) {
			return 0;
		}
		/* Never freed before the bdev: reactors read it without taking a reference. */
		if (posix_memalign((void **)&q, VH_CACHE_LINE, sizeof(*q)) != 0) {
			return -ENOMEM;
		}
		memset(q, 0, sizeof(*q));
		b->qos = q;
	}
	hz = vh_ticks_hz();
	now = vh_ticks();
	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		q->limits[k] = next[k];
		vh_qos_bucket_set(&q->bk[k], next[k], hz, now);
	}
	__atomic_store_n(&q->gen, q->gen + 1, __ATOMIC_RELAXED);
	/* Pairs with the acquire loads in admit/dispatch: the buckets are set before. */
	__atomic_store_n(&b->qos_on, any, __ATOMIC_RELEASE);
	VH_INFO("bdev", "'%s': QoS %s", b->name, any ? "limits set" : "off");
	return 0;
}

void
vh_bdev_qos_get(const struct vh_bdev *b, uint64_t limits[VH_BDEV_QOS_NLIMITS])
{
	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		limits[k] = b->qos != NULL ? b->qos->limits[k] : 0;
	}
}

bool
vh_bdev_qos_enabled(const struct vh_bdev *b)
{
	return __atomic_load_n(&b->qos_on, __ATOMIC_RELAXED);
}

void
vh_bdev_qos_free(struct vh_bdev *b)
{
	free(b->qos);
	b->qos = NULL;
}
