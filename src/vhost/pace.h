/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Poll pacing for a polling driver (vring.c, vq_poll): how long to leave the avail ring alone
 * after a poll. A pure function of what the polls saw, so that tests/unit/vhost/test_pace.c
 * can run it against a simulated driver.
 *
 * Why pace at all: a driver that publishes requests one at a time (SPDK's virtio-blk writes
 * avail->idx and fences after every request) pays a cache-line transfer for each of its stores
 * to a line we read since its last store: descriptors, avail entries, avail->idx. The fewer
 * times we read those lines per request, the fewer transfers; the driver's core, not ours, sets
 * the rate (docs/performance.md). So we read them in batches, and the larger the batch, the
 * cheaper each request is for the driver, as long as the driver never runs out of work while
 * it waits for us.
 *
 * A driver that polls the used ring (it wants no interrupts) answers each batch of completions
 * with new requests as fast as it can. What it holds (owed: completions not yet answered, plus
 * requests published but not yet fetched) is its queue depth as far as we can see it. If each
 * poll takes about 3/8 of that, the other 5/8 are being answered while we wait, so the driver
 * stays busy. The pause grows by a quarter while polls find fewer requests than that aim, and
 * shrinks by a fifth when they find more (or a full fetch batch, when more may be waiting),
 * within [lo, hi]. A driver that answers at once keeps the pause at lo; one that is slow (or
 * rate-limited, and so not short of CPU) lets it reach hi, which bounds the latency pacing
 * adds: at a depth of PACE_OWED or more, a request's latency is already at least that depth
 * times the driver's time per request.
 */
#ifndef VH_VHOST_PACE_H
#define VH_VHOST_PACE_H

#include <stdint.h>

struct vh_pace_limits {
	uint64_t lo, hi; /* the pause's bounds, in whatever unit the caller counts time */
	uint32_t batch;  /* the most requests one poll fetches */
};

/*
 * One poll took @got requests while the driver held @owed_before: adapt the pause kept in *len
 * (0: not adapted yet, start from @start) and return the pause to leave now: none after a full
 * fetch (@got == batch), when the driver is ahead of us and more may be waiting.
 */
static inline uint64_t
vh_pace_adapt(uint64_t *len, const struct vh_pace_limits *l, uint64_t start, uint32_t owed_before,
              uint32_t got)
{
	uint32_t aim = owed_before * 3 / 8;
	uint64_t cur = *len ? *len : start;

	if (aim > l->batch * 3 / 4) {
		aim = l->batch * 3 / 4;
	}
	if (got >= l->batch || got > aim + aim / 8) {
		cur -= cur / 5;
	} else if (got < aim - aim / 8) {
		cur += cur / 4;
	}
	*len = cur < l->lo ? l->lo : cur > l->hi ? l->hi : cur;
	return got >= l->batch ? 0 : *len;
}

/*
 * What the driver holds (owed) is counted, not seen: completions we published, less requests we
 * fetched since. The count only errs low (requests fetched that answered nothing, such as a
 * driver's first burst, are subtracted all the same), except when the driver lowers its depth:
 * then it keeps completions it will never answer, and the count errs high. So it is cut in half
 * only on evidence that the driver holds less:
 * - a poll found nothing right after a pause (@after_pause): the pause produced nothing;
 * - a poll found nothing and none found anything for a long while (@idle): the driver stopped,
 *   and is not to be waited for when it starts again;
 * - the longest pause (@at_max) produced less than the aim (3/8 of the count, vh_pace_adapt).
 * A poll that merely finds the ring empty is no evidence: a driver at depth 128 whose core
 * limits it leaves the ring empty between most of our polls, and halving the count there kept
 * pacing off for nine polls in ten (docs/performance.md).
 *
 * Returns the count to go by for a poll that found @got requests (0: an empty poll).
 */
static inline uint32_t
vh_pace_owed(uint32_t owed, uint32_t got, bool after_pause, bool at_max, bool idle)
{
	if (got == 0) {
		return after_pause || idle ? owed / 2 : owed;
	}
	return after_pause && at_max && got < owed * 3 / 8 ? owed / 2 : owed;
}

#endif
