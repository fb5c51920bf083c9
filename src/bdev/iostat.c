/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-bdev I/O statistics (iostat.h). Each reactor counts into its own block of each bdev it
 * serves (bdev_internal.h: vh_bdev_account()); the control thread sums the blocks when asked.
 * Nothing on the data path is shared between reactors, and nothing makes a reactor wait for a
 * reader: the blocks are written with plain stores published as relaxed atomics.
 *
 * A block outlives its channel (a queue restarting on the same reactor keeps counting where it
 * left off) and is freed with the bdev, when no channel is left.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev_internal.h"
#include "core/reactor.h"

static const char *const g_op_names[VH_BDEV_STAT_NOPS] = {
        [VH_BDEV_STAT_READ] = "read",
        [VH_BDEV_STAT_WRITE] = "write",
        [VH_BDEV_STAT_UNMAP] = "unmap",
        [VH_BDEV_STAT_FLUSH] = "flush",
        [VH_BDEV_STAT_WRITE_ZEROES] = "write_zeroes",
};

const char *
vh_bdev_stat_op_name(enum vh_bdev_stat_op op)
{
	return (unsigned)op < VH_BDEV_STAT_NOPS ? g_op_names[op] : "?";
}

struct vh_bdev_rstat *
vh_bdev_rstat_get(struct vh_bdev *b, unsigned reactor_idx)
{
	struct vh_bdev_rstat *rs = b->rstat[reactor_idx];

	if (rs != NULL) {
		return rs;
	}
	if (posix_memalign((void **)&rs, VH_CACHE_LINE, sizeof(*rs)) != 0) {
		return NULL;
	}
	memset(rs, 0, sizeof(*rs));
	rs->gen = __atomic_load_n(&b->stat_gen, __ATOMIC_RELAXED);
	for (int i = 0; i < VH_BDEV_STAT_NOPS; i++) {
		rs->op[i].lat_min_ns = UINT64_MAX;
	}
	/* Pairs with the acquire loads of the readers: they see an initialised block. */
	__atomic_store_n(&b->rstat[reactor_idx], rs, __ATOMIC_RELEASE);
	return rs;
}

void
vh_bdev_rstat_free(struct vh_bdev *b)
{
	for (unsigned i = 0; i < VH_MAX_REACTORS; i++) {
		free(b->rstat[i]);
		b->rstat[i] = NULL;
	}
	free(b->stat_base);
	b->stat_base = NULL;
}

static void
iostat_init(struct vh_bdev_iostat *st)
{
	memset(st, 0, sizeof(*st));
	for (int i = 0; i < VH_BDEV_STAT_NOPS; i++) {
		st->op[i].lat_min_ns = UINT64_MAX;
	}
}

static void
add_block(struct vh_bdev_iostat *st, const struct vh_bdev_rstat *rs, uint32_t gen)
{
	for (int i = 0; i < VH_BDEV_STAT_NOPS; i++) {
		const struct vh_bdev_op_iostat *o = &rs->op[i];
		struct vh_bdev_op_iostat *d = &st->op[i];

		d->ops += VH_STAT_GET(o->ops);
		d->bytes += VH_STAT_GET(o->bytes);
		d->lat_ns += VH_STAT_GET(o->lat_ns);
		/* A reactor that has not applied the last min/max reset yet has nothing newer. */
		if (VH_STAT_GET(rs->gen) == gen) {
			d->lat_min_ns = VH_MIN(d->lat_min_ns, VH_STAT_GET(o->lat_min_ns));
			d->lat_max_ns = VH_MAX(d->lat_max_ns, VH_STAT_GET(o->lat_max_ns));
		}
	}
	st->errors += VH_STAT_GET(rs->errors);
	st->qos_throttled += VH_STAT_GET(rs->qos_throttled);
	st->qos_queued += VH_STAT_GET(rs->qos_queued);
}

int
vh_bdev_get_iostat(const struct vh_bdev *b, int reactor, bool raw, struct vh_bdev_iostat *st)
{
	const struct vh_bdev_iostat *base = raw ? NULL : b->stat_base;
	uint32_t gen = __atomic_load_n(&b->stat_gen, __ATOMIC_RELAXED);
	bool found = false;

	iostat_init(st);
	for (unsigned i = 0; i < VH_MAX_REACTORS; i++) {
		const struct vh_bdev_rstat *rs;

		if (reactor >= 0 && (unsigned)reactor != i) {
			continue;
		}
		rs = __atomic_load_n(&b->rstat[i], __ATOMIC_ACQUIRE);
		if (rs != NULL) {
			add_block(st, rs, gen);
			found = true;
		}
	}
	if (reactor >= 0 && !found) {
		return -ENOENT;
	}
	if (base != NULL && reactor < 0) {
		for (int i = 0; i < VH_BDEV_STAT_NOPS; i++) {
			st->op[i].ops -= VH_MIN(st->op[i].ops, base->op[i].ops);
			st->op[i].bytes -= VH_MIN(st->op[i].bytes, base->op[i].bytes);
			st->op[i].lat_ns -= VH_MIN(st->op[i].lat_ns, base->op[i].lat_ns);
		}
		st->errors -= VH_MIN(st->errors, base->errors);
		st->qos_throttled -= VH_MIN(st->qos_throttled, base->qos_throttled);
	}
	return 0;
}

void
vh_bdev_reset_iostat(struct vh_bdev *b, bool maxmin_only)
{
	struct vh_bdev_iostat *base;

	/* Reactors see the new generation at their next completion and restart min/max. */
	__atomic_store_n(&b->stat_gen, b->stat_gen + 1, __ATOMIC_RELAXED);
	if (maxmin_only) {
		return;
	}
	base = b->stat_base;
	if (base == NULL) {
		base = calloc(1, sizeof(*base));
		if (base == NULL) {
			return; /* counters keep counting from creation: still correct, just not
			           reset */
		}
	}
	vh_bdev_get_iostat(b, -1, true, base);
	b->stat_base = base;
}

uint64_t
vh_bdev_hist_bucket_end(unsigned i)
{
	unsigned range = i >> VH_BDEV_HIST_SUB_BITS;
	uint64_t m = i & ((1u << VH_BDEV_HIST_SUB_BITS) - 1);

	if (i >= VH_BDEV_HIST_BUCKETS - 1) {
		return UINT64_MAX;
	}
	if (range == 0) {
		return m + 1;
	}
	return ((1ull << VH_BDEV_HIST_SUB_BITS) + m + 1) << (range - 1);
}

void
vh_bdev_get_histogram(const struct vh_bdev *b, enum vh_bdev_stat_op op, uint64_t *out)
{
	if ((unsigned)op >= VH_BDEV_STAT_NOPS) {
		return;
	}
	for (unsigned r = 0; r < VH_MAX_REACTORS; r++) {
		const struct vh_bdev_rstat *rs = __atomic_load_n(&b->rstat[r], __ATOMIC_ACQUIRE);

		if (rs == NULL) {
			continue;
		}
		for (unsigned i = 0; i < VH_BDEV_HIST_BUCKETS; i++) {
			out[i] += VH_STAT_GET(rs->hist[op][i]);
		}
	}
}
