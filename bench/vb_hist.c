/* SPDX-License-Identifier: BSD-3-Clause */
/* Log-linear latency histogram (see vb_hist.h). */
#include <math.h>
#include <string.h>

#include "vb_hist.h"

void
vb_hist_reset(struct vb_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void
vb_hist_merge(struct vb_hist *dst, const struct vb_hist *src)
{
	unsigned int i;

	if (src->count == 0) {
		return;
	}
	for (i = 0; i < VB_HIST_N; i++) {
		dst->b[i] += src->b[i];
	}
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min) {
		dst->min = src->min;
	}
	if (src->max > dst->max) {
		dst->max = src->max;
	}
}

uint64_t
vb_hist_bucket_low(unsigned int idx)
{
	unsigned int k = idx >> VB_HIST_BITS;

	if (k == 0) {
		return idx;
	}
	return (uint64_t)(VB_HIST_SUB + (idx & (VB_HIST_SUB - 1))) << (k - 1);
}

uint64_t
vb_hist_bucket_width(unsigned int idx)
{
	unsigned int k = idx >> VB_HIST_BITS;

	return k == 0 ? 1 : 1ull << (k - 1);
}

uint64_t
vb_hist_percentile(const struct vb_hist *h, double pct)
{
	uint64_t rank, seen = 0, v;
	unsigned int i;

	if (h->count == 0) {
		return 0;
	}
	rank = (uint64_t)ceil(pct / 100.0 * (double)h->count);
	if (rank < 1) {
		rank = 1;
	}
	if (rank >= h->count) {
		return h->max; /* the largest sample is known exactly */
	}
	for (i = 0; i < VB_HIST_N; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			break;
		}
	}
	if (i == VB_HIST_N) {
		return h->max;
	}
	v = vb_hist_bucket_low(i) + vb_hist_bucket_width(i) / 2;
	if (v < h->min) {
		v = h->min;
	}
	if (v > h->max) {
		v = h->max;
	}
	return v;
}
