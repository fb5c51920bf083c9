/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-bdev I/O statistics and QoS rate limits: what the RPC layer (bdev_get_iostat,
 * bdev_set_qos_limit) and the metrics endpoint read and set.
 *
 * Rules:
 * - Everything here runs on the control thread: it owns the bdev registry, so a bdev cannot
 *   disappear while its statistics are read.
 * - Reactors count their own I/O in per-(bdev, reactor) blocks, with plain stores published as
 *   relaxed atomics (VH_STAT_ADD). Reading sums those blocks with relaxed loads: a reader never
 *   makes a reactor wait, and fields read a moment apart may be a few I/Os apart.
 * - Latencies are nanoseconds from vh_bdev_submit() to the completion callback, QoS waiting
 *   included (what the front-end sees). Only successful I/O is counted per type, as SPDK does;
 *   failed I/O is counted in `errors`.
 * - QoS limits take effect at once on running channels; requests over the limit wait in their
 *   channel and are never failed.
 */
#ifndef VH_BDEV_IOSTAT_H
#define VH_BDEV_IOSTAT_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"

/* Operation classes counted; DISCARD is SPDK's "unmap". */
enum vh_bdev_stat_op {
	VH_BDEV_STAT_READ = 0,
	VH_BDEV_STAT_WRITE,
	VH_BDEV_STAT_UNMAP,
	VH_BDEV_STAT_FLUSH,
	VH_BDEV_STAT_WRITE_ZEROES,
	VH_BDEV_STAT_NOPS,
};

/* "read", "write", "unmap", "flush", "write_zeroes". */
const char *vh_bdev_stat_op_name(enum vh_bdev_stat_op op);

struct vh_bdev_op_iostat {
	uint64_t ops;
	uint64_t bytes;
	uint64_t lat_ns;     /* sum */
	uint64_t lat_min_ns; /* UINT64_MAX when nothing was counted since the last reset */
	uint64_t lat_max_ns;
};

struct vh_bdev_iostat {
	struct vh_bdev_op_iostat op[VH_BDEV_STAT_NOPS];
	uint64_t errors;        /* completed with a non-zero status */
	uint64_t qos_throttled; /* requests that waited for their QoS limit */
	uint64_t qos_queued;    /* waiting right now */
};

/*
 * Statistics of @b: summed over its reactors (@reactor < 0) or of one reactor index. @raw
 * ignores bdev_reset_iostat (monotonic counters, for Prometheus). Returns 0, or -ENOENT when
 * @reactor never had a channel of @b (nothing to report).
 */
int vh_bdev_get_iostat(const struct vh_bdev *b, int reactor, bool raw, struct vh_bdev_iostat *st);

/*
 * SPDK's bdev_reset_iostat: counters read from 0 afterwards (for bdev_get_iostat; raw readers
 * are unaffected); @maxmin_only resets only the minimum and maximum latencies. The min/max
 * reset reaches each reactor at its next completion of @b.
 */
void vh_bdev_reset_iostat(struct vh_bdev *b, bool maxmin_only);

/*
 * Latency histograms: log-linear buckets of nanoseconds, 8 per power of two (each at most
 * 12.5 % wide) up to 2^36 ns (68.7 s), then one bucket for everything slower.
 */
#define VH_BDEV_HIST_SUB_BITS 3
#define VH_BDEV_HIST_MAX_MSB  35 /* values below 2^(MAX_MSB + 1) get their own bucket */
#define VH_BDEV_HIST_BUCKETS                                                                       \
	(((VH_BDEV_HIST_MAX_MSB - VH_BDEV_HIST_SUB_BITS + 2) << VH_BDEV_HIST_SUB_BITS) + 1)

/* The bucket of @ns. Any thread. */
static inline unsigned
vh_bdev_hist_bucket(uint64_t ns)
{
	unsigned msb;

	if (ns < (1u << VH_BDEV_HIST_SUB_BITS)) {
		return (unsigned)ns;
	}
	msb = 63u - (unsigned)__builtin_clzll(ns);
	if (msb > VH_BDEV_HIST_MAX_MSB) {
		return VH_BDEV_HIST_BUCKETS - 1;
	}
	return ((msb - VH_BDEV_HIST_SUB_BITS + 1) << VH_BDEV_HIST_SUB_BITS) |
	       (unsigned)((ns >> (msb - VH_BDEV_HIST_SUB_BITS)) &
	                  ((1u << VH_BDEV_HIST_SUB_BITS) - 1));
}

/* Exclusive upper bound of bucket @i in ns (UINT64_MAX for the last one). Any thread. */
uint64_t vh_bdev_hist_bucket_end(unsigned i);

/*
 * Add @b's histogram of @op, summed over its reactors, to out[0..VH_BDEV_HIST_BUCKETS). Counts
 * since @b was created (bdev_reset_iostat does not touch histograms).
 */
void vh_bdev_get_histogram(const struct vh_bdev *b, enum vh_bdev_stat_op op, uint64_t *out);

/* QoS limits, SPDK's four (bdev_set_qos_limit). */
enum vh_bdev_qos_limit {
	VH_BDEV_QOS_RW_IOPS = 0, /* reads + writes per second */
	VH_BDEV_QOS_RW_BPS,      /* read + written bytes per second */
	VH_BDEV_QOS_R_BPS,       /* read bytes per second */
	VH_BDEV_QOS_W_BPS,       /* written bytes per second */
	VH_BDEV_QOS_NLIMITS,
};

#define VH_BDEV_QOS_UNCHANGED UINT64_MAX
/* SPDK's granularity: IOPS in multiples of 1000, bandwidth in multiples of 1 MiB/s. */
#define VH_BDEV_QOS_IOPS_UNIT 1000ull
#define VH_BDEV_QOS_BPS_UNIT  (1024ull * 1024ull)
/* Burst allowance: this much time's worth of each limit may pass at once. */
#define VH_BDEV_QOS_BURST_MS 100u

/*
 * Set @b's limits: limits[VH_BDEV_QOS_*] in I/Os or bytes per second, 0 for none,
 * VH_BDEV_QOS_UNCHANGED to keep the current one. Values must be multiples of the units above
 * (the RPC layer rounds up as SPDK does). Running channels follow at once: a new limit starts
 * with a full burst allowance, and requests waiting under a removed limit are released.
 * Returns 0, -EINVAL (not a multiple) or -ENOMEM.
 */
int vh_bdev_qos_set(struct vh_bdev *b, const uint64_t limits[VH_BDEV_QOS_NLIMITS]);
/* Current limits (0 = none). */
void vh_bdev_qos_get(const struct vh_bdev *b, uint64_t limits[VH_BDEV_QOS_NLIMITS]);
/* True if any limit is set. */
bool vh_bdev_qos_enabled(const struct vh_bdev *b);

#endif
