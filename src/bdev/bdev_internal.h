/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to src/bdev: the channel structure and the hooks that bdev.c, iostat.c and qos.c
 * share. Back-ends do not include this (they use bdev_module.h).
 *
 * Rules (bdev.h): a channel and its statistics block belong to the channel's reactor; the QoS
 * buckets of a bdev are shared by its reactors through lock-free compare-and-swap only.
 */
#ifndef VH_BDEV_INTERNAL_H
#define VH_BDEV_INTERNAL_H

#include "bdev/bdev_module.h"
#include "bdev/iostat.h"
#include "core/util.h"

struct vh_bdev_channel {
	struct vh_bdev *bdev;
	void *mctx; /* the back-end's channel */
	unsigned refs;
	unsigned reactor_idx;
	struct vh_poller *poller;
	/* Inline completions waiting for the next poll (FIFO). */
	struct vh_bdev_io *done_head;
	struct vh_bdev_io **done_tail;
	/* Test delay mode: completions held until their due time (unordered list). */
	struct vh_bdev_io *delayed;
	uint64_t rng;
	/* FUA emulation: written requests whose FLUSH the back-end could not take yet (FIFO). */
	struct vh_bdev_io *fua_head;
	struct vh_bdev_io **fua_tail;
	/* Statistics (iostat.c). */
	struct vh_bdev_rstat *rs;
	uint64_t ns_mult;  /* vh_ticks_ns_mult() */
	uint64_t poll_now; /* vh_ticks() of this channel poll's completions, 0 = not taken yet */
	/* QoS (qos.c): requests waiting for their limit, oldest first. */
	struct vh_bdev_io *qos_head;
	struct vh_bdev_io **qos_tail;
	bool qos_head_paid; /* the head already took its tokens (its submit said -EAGAIN) */
	uint32_t qos_gen;   /* the QoS configuration the credits below belong to */
	uint64_t qos_due;   /* vh_ticks() at which the head may try again */
	uint64_t qos_credit[VH_BDEV_QOS_NLIMITS];
	struct vh_poller *qos_poller;
	int qos_tfd; /* timerfd that wakes the sleeping reactor for the head, or -1 */
};

/*
 * Per-(bdev, reactor) counters: one writer (the reactor), read with relaxed loads. Allocated
 * cache-line aligned, so no other reactor's data shares its lines.
 */
struct vh_bdev_rstat {
	struct vh_bdev_op_iostat op[VH_BDEV_STAT_NOPS];
	uint64_t errors;
	uint64_t qos_throttled;
	uint64_t qos_queued;
	uint32_t gen; /* bdev->stat_gen the min/max belong to */
	uint64_t hist[VH_BDEV_STAT_NOPS][VH_BDEV_HIST_BUCKETS];
};

/*
 * Internal to the layer: the request is in the middle of FUA emulation (write, then FLUSH);
 * its completions are not counted until the emulation gives it back to the consumer.
 */
#define VH_BDEV_IO_F_NOSTAT 0x80

/* ---- iostat.c ---- */

/* Reactor: the calling reactor's block for @b, allocated on first use. NULL on ENOMEM. */
struct vh_bdev_rstat *vh_bdev_rstat_get(struct vh_bdev *b, unsigned reactor_idx);
/* Control: free the blocks (the bdev is being freed: no channel is left). */
void vh_bdev_rstat_free(struct vh_bdev *b);

/* enum vh_bdev_io_type -> enum vh_bdev_stat_op (a table: this runs per I/O). */
static const int8_t vh_bdev_stat_op_of[VH_BDEV_IO_NTYPES] = {
        [VH_BDEV_IO_READ] = VH_BDEV_STAT_READ,
        [VH_BDEV_IO_WRITE] = VH_BDEV_STAT_WRITE,
        [VH_BDEV_IO_FLUSH] = VH_BDEV_STAT_FLUSH,
        [VH_BDEV_IO_DISCARD] = VH_BDEV_STAT_UNMAP,
        [VH_BDEV_IO_WRITE_ZEROES] = VH_BDEV_STAT_WRITE_ZEROES,
};

/*
 * Reactor, once per channel poll: a min/max reset asked by the control thread (a new
 * stat_gen) starts this reactor's min/max over. Kept out of the per-I/O path.
 */
static inline void
vh_bdev_stat_sync_gen(struct vh_bdev_channel *ch)
{
	struct vh_bdev_rstat *rs = ch->rs;
	uint32_t gen = __atomic_load_n(&ch->bdev->stat_gen, __ATOMIC_RELAXED);

	if (VH_LIKELY(rs == NULL || rs->gen == gen)) {
		return;
	}
	for (int i = 0; i < VH_BDEV_STAT_NOPS; i++) {
		__atomic_store_n(&rs->op[i].lat_min_ns, UINT64_MAX, __ATOMIC_RELAXED);
		__atomic_store_n(&rs->op[i].lat_max_ns, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&rs->gen, gen, __ATOMIC_RELAXED);
}

/* Reactor: the timestamp for completions of this channel poll (one vh_ticks() per poll). */
static inline uint64_t
vh_bdev_ch_now(struct vh_bdev_channel *ch)
{
	if (ch->poll_now == 0) {
		ch->poll_now = vh_ticks();
	}
	return ch->poll_now;
}

/* Reactor: count @io, completing with @status, in its channel's block. */
static inline void
vh_bdev_account(struct vh_bdev_channel *ch, const struct vh_bdev_io *io, int status)
{
	struct vh_bdev_rstat *rs = ch->rs;
	struct vh_bdev_op_iostat *o;
	uint64_t ns;
	int op;

	if (VH_UNLIKELY(rs == NULL || (io->flags & VH_BDEV_IO_F_NOSTAT))) {
		return;
	}
	if (VH_UNLIKELY(status != 0)) {
		VH_STAT_ADD(rs->errors, 1);
		return;
	}
	if (VH_UNLIKELY(io->type >= VH_BDEV_IO_NTYPES)) {
		return;
	}
	op = vh_bdev_stat_op_of[io->type];
	ns = vh_ticks_to_ns(vh_bdev_ch_now(ch) - io->submit_ticks, ch->ns_mult);
	/* A timestamp from another core's TSC may be a hair ahead: never a huge latency. */
	if (VH_UNLIKELY((int64_t)ns < 0)) {
		ns = 0;
	}
	o = &rs->op[op];
	VH_STAT_ADD(o->ops, 1);
	VH_STAT_ADD(o->bytes, io->length);
	VH_STAT_ADD(o->lat_ns, ns);
	if (ns < o->lat_min_ns) {
		__atomic_store_n(&o->lat_min_ns, ns, __ATOMIC_RELAXED);
	}
	if (ns > o->lat_max_ns) {
		__atomic_store_n(&o->lat_max_ns, ns, __ATOMIC_RELAXED);
	}
	VH_STAT_ADD(rs->hist[op][vh_bdev_hist_bucket(ns)], 1);
}

/* ---- qos.c ---- */

/*
 * One limit of one bdev, shared by all its channels: a GCRA (virtual scheduling) token bucket.
 * `tat` is the theoretical arrival time of the next unit; a lease of n units succeeds when
 * tat <= now + tau and moves tat to max(tat, now) + n * ticks-per-unit, with one
 * compare-and-swap. Channels lease about a millisecond's worth at a time and spend it locally,
 * so reactors meet on this cache line about once per millisecond, not per I/O.
 */
struct vh_qos_bucket {
	uint64_t tat;     /* vh_ticks(); compare-and-swap by reactors, reset by control */
	uint64_t tpu_q32; /* ticks per unit, 32.32 fixed point; 0 = no limit */
	uint64_t tau;     /* burst tolerance, ticks */
	uint64_t quantum; /* units a channel leases at a time */
} VH_ALIGNED(VH_CACHE_LINE);

struct vh_bdev_qos {
	struct vh_qos_bucket bk[VH_BDEV_QOS_NLIMITS];
	uint64_t limits[VH_BDEV_QOS_NLIMITS]; /* configured, per second (control thread) */
	uint32_t gen; /* bumped at each change: channels drop credit leased under the old one */
};

/* Control: (re)configure @bk for @rate units per second (0 = none) at @hz ticks per second. */
void vh_qos_bucket_set(struct vh_qos_bucket *bk, uint64_t rate, uint64_t hz, uint64_t now);
/*
 * Any thread: lease @units from @bk at time @now. True if granted; false with *@retry_at the
 * earliest time a retry can succeed.
 */
bool vh_qos_bucket_take(struct vh_qos_bucket *bk, uint64_t now, uint64_t units, uint64_t *retry_at);
/* Reactor, from channel_poll() when requests wait: submit those whose time has come. */
int vh_bdev_qos_dispatch(struct vh_bdev_channel *ch);
/* Reactor, before sleeping with requests waiting: arm the wake-up timer. > 0: do not sleep. */
int vh_bdev_qos_arm(struct vh_bdev_channel *ch);

/* Reactor: set up / tear down a channel's QoS state (the wait list must be empty). */
void vh_bdev_qos_channel_init(struct vh_bdev_channel *ch);
void vh_bdev_qos_channel_fini(struct vh_bdev_channel *ch);
/*
 * Reactor, from vh_bdev_submit() when the bdev has limits or the channel has waiters: 0 if @io
 * may go to the back-end now, 1 if it was queued (it will be submitted later, or completed
 * with the back-end's error: the caller returns 0), -errno never.
 */
int vh_bdev_qos_admit(struct vh_bdev_channel *ch, struct vh_bdev_io *io);
/* Control: free the QoS state of a bdev that is being freed. */
void vh_bdev_qos_free(struct vh_bdev *b);

/* bdev.c: hand @io to the back-end (test delay mode included). 0 or -errno. */
int vh_bdev_backend_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io);

#endif
