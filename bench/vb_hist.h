/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Log-linear latency histogram for vhost-bench: 64 linear sub-buckets per power of two (at most
 * 1/64 = 1.6 % relative error), fixed size, no allocation. Values are in any unit (vhost-bench
 * records TSC ticks and converts when it reports).
 *
 * Rules: a histogram belongs to one thread; merge them after the threads have joined.
 */
#ifndef VB_HIST_H
#define VB_HIST_H

#include <stdint.h>

#define VB_HIST_BITS 6
#define VB_HIST_SUB  (1u << VB_HIST_BITS)
/* Highest value: msb 63 -> shift 57 -> index (58 << 6) + 63. */
#define VB_HIST_N ((64 - VB_HIST_BITS + 1) * VB_HIST_SUB)

struct vb_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t b[VB_HIST_N];
};

/* Bucket of value v: values below 64 are exact; above, 64 buckets per power of two. */
static inline unsigned int
vb_hist_index(uint64_t v)
{
	unsigned int msb, shift;

	if (v < VB_HIST_SUB) {
		return (unsigned int)v;
	}
	msb = 63u - (unsigned int)__builtin_clzll(v);
	shift = msb - VB_HIST_BITS;
	return ((shift + 1) << VB_HIST_BITS) + (unsigned int)((v >> shift) & (VB_HIST_SUB - 1));
}

static inline void
vb_hist_add(struct vb_hist *h, uint64_t v)
{
	h->b[vb_hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min) {
		h->min = v;
	}
	if (v > h->max) {
		h->max = v;
	}
}

/* Empty the histogram. */
void vb_hist_reset(struct vb_hist *h);
/* dst += src. */
void vb_hist_merge(struct vb_hist *dst, const struct vb_hist *src);
/* Lowest value that falls in bucket idx, and the bucket's width. */
uint64_t vb_hist_bucket_low(unsigned int idx);
uint64_t vb_hist_bucket_width(unsigned int idx);
/*
 * Value at percentile pct (0 < pct <= 100): the middle of the bucket holding the ceil(pct% *
 * count)-th smallest sample, clamped to [min, max]. 0 if the histogram is empty.
 */
uint64_t vb_hist_percentile(const struct vb_hist *h, double pct);

#endif
