/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test doubles for bdev/iostat.h: QoS limits kept per fake bdev (validated like the real
 * layer), statistics that count nothing.
 */
#include <errno.h>
#include <string.h>

#include "bdev/bdev_module.h"
#include "bdev/iostat.h"
#include "stubs.h"

#define MAX_QOS 32

static struct {
	const struct vh_bdev *b;
	uint64_t limits[VH_BDEV_QOS_NLIMITS];
} g_qos[MAX_QOS];

void
stub_iostat_reset(void)
{
	memset(g_qos, 0, sizeof(g_qos));
}

static uint64_t *
limits_of(const struct vh_bdev *b, bool create)
{
	for (unsigned i = 0; i < MAX_QOS; i++) {
		if (g_qos[i].b == b) {
			return g_qos[i].limits;
		}
	}
	for (unsigned i = 0; create && i < MAX_QOS; i++) {
		if (g_qos[i].b == NULL) {
			g_qos[i].b = b;
			return g_qos[i].limits;
		}
	}
	return NULL;
}

int
vh_bdev_qos_set(struct vh_bdev *b, const uint64_t limits[VH_BDEV_QOS_NLIMITS])
{
	uint64_t *l = limits_of(b, true);

	if (l == NULL) {
		return -ENOMEM;
	}
	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		uint64_t unit =
		        k == VH_BDEV_QOS_RW_IOPS ? VH_BDEV_QOS_IOPS_UNIT : VH_BDEV_QOS_BPS_UNIT;

		if (limits[k] != VH_BDEV_QOS_UNCHANGED && limits[k] % unit != 0) {
			return -EINVAL;
		}
	}
	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		if (limits[k] != VH_BDEV_QOS_UNCHANGED) {
			l[k] = limits[k];
		}
	}
	return 0;
}

void
vh_bdev_qos_get(const struct vh_bdev *b, uint64_t limits[VH_BDEV_QOS_NLIMITS])
{
	const uint64_t *l = limits_of(b, false);

	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		limits[k] = l != NULL ? l[k] : 0;
	}
}

bool
vh_bdev_qos_enabled(const struct vh_bdev *b)
{
	uint64_t l[VH_BDEV_QOS_NLIMITS];

	vh_bdev_qos_get(b, l);
	return l[0] || l[1] || l[2] || l[3];
}

int
vh_bdev_get_iostat(const struct vh_bdev *b, int reactor, bool raw, struct vh_bdev_iostat *st)
{
	memset(st, 0, sizeof(*st));
	for (int i = 0; i < VH_BDEV_STAT_NOPS; i++) {
		st->op[i].lat_min_ns = UINT64_MAX;
	}
	return reactor < 0 ? 0 : -ENOENT;
}

void
vh_bdev_reset_iostat(struct vh_bdev *b, bool maxmin_only)
{
}

uint64_t
vh_bdev_hist_bucket_end(unsigned i)
{
	return i + 1;
}

void
vh_bdev_get_histogram(const struct vh_bdev *b, enum vh_bdev_stat_op op, uint64_t *out)
{
}

const char *
vh_bdev_stat_op_name(enum vh_bdev_stat_op op)
{
	static const char *const n[] = {"read", "write", "unmap", "flush", "write_zeroes"};

	return (unsigned)op < VH_BDEV_STAT_NOPS ? n[op] : "?";
}
