/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bdev statistics and QoS methods with SPDK v23.05's names, parameters and result shapes:
 * bdev_set_qos_limit, bdev_get_iostat, bdev_reset_iostat; plus bdev_get_latency_histogram
 * (vhostd's own). docs/rpc.md has the fields.
 *
 * Threat model: any local process that can reach the RPC socket (0600 by default). Parameters
 * are decoded against a spec (types, ranges, unknown keys refused); limits are checked for
 * overflow before they are turned into bytes per second.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "bdev/bdev.h"
#include "bdev/iostat.h"
#include "core/log.h"
#include "core/reactor.h"
#include "rpc/rpc_internal.h"

/* SPDK's parameter names, in enum vh_bdev_qos_limit order. */
static const char *const g_qos_keys[VH_BDEV_QOS_NLIMITS] = {
        "rw_ios_per_sec",
        "rw_mbytes_per_sec",
        "r_mbytes_per_sec",
        "w_mbytes_per_sec",
};

static struct vh_bdev *
find_bdev(const char *name, struct vh_rpc_error *err)
{
	struct vh_bdev *b = vh_bdev_find(name);

	if (b == NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found", name);
	}
	return b;
}

/* ---- bdev_set_qos_limit ---- */

struct qos_params {
	const char *name;
	uint64_t v[VH_BDEV_QOS_NLIMITS]; /* as sent: I/Os or MiB per second; UINT64_MAX = absent */
};

static const struct vh_rpc_param qos_spec[] = {
        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct qos_params, name)},
        {"rw_ios_per_sec", VH_RPC_T_U64, 0, offsetof(struct qos_params, v[0])},
        {"rw_mbytes_per_sec", VH_RPC_T_U64, 0, offsetof(struct qos_params, v[1])},
        {"r_mbytes_per_sec", VH_RPC_T_U64, 0, offsetof(struct qos_params, v[2])},
        {"w_mbytes_per_sec", VH_RPC_T_U64, 0, offsetof(struct qos_params, v[3])},
};

/*
 * SPDK's rules (lib/bdev/bdev.c, spdk_bdev_set_qos_rate_limits): 0 removes a limit; an IOPS
 * limit that is not a multiple of 1000 is rounded up to the next one (logged, not refused:
 * scripts written for SPDK rely on it); bandwidth comes in MiB/s.
 */
static int
qos_limits(const struct qos_params *p, uint64_t *limits, struct vh_rpc_error *err)
{
	bool any = false;

	for (int k = 0; k < VH_BDEV_QOS_NLIMITS; k++) {
		uint64_t v = p->v[k];

		limits[k] = VH_BDEV_QOS_UNCHANGED;
		if (v == UINT64_MAX) {
			continue;
		}
		any = true;
		if (k == VH_BDEV_QOS_RW_IOPS) {
			uint64_t rem = v % VH_BDEV_QOS_IOPS_UNIT;

			if (rem != 0) {
				VH_NOTICE("rpc",
				          "bdev '%s': rw_ios_per_sec %" PRIu64 " is not a multiple "
				          "of 1000: rounded up to %" PRIu64,
				          p->name, v, (uint64_t)(v + VH_BDEV_QOS_IOPS_UNIT - rem));
				v += VH_BDEV_QOS_IOPS_UNIT - rem;
			}
		} else if (VH_MUL_OVERFLOW(v, VH_BDEV_QOS_BPS_UNIT, &v)) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "%s %" PRIu64 " is out of range", g_qos_keys[k], p->v[k]);
			return -EINVAL;
		}
		limits[k] = v;
	}
	if (!any) {
		vh_rpc_error_set(
		        err, VH_RPC_INVALID_PARAMS,
		        "no rate limits specified: give rw_ios_per_sec, rw_mbytes_per_sec, "
		        "r_mbytes_per_sec or w_mbytes_per_sec (0 removes one)");
		return -EINVAL;
	}
	return 0;
}

static json_t *
bdev_set_qos_limit(const json_t *params, struct vh_rpc_error *err)
{
	struct qos_params p = {NULL, {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX}};
	uint64_t limits[VH_BDEV_QOS_NLIMITS];
	struct vh_bdev *b;
	int rc;

	if (vh_rpc_decode_params(params, qos_spec, VH_ARRAY_SIZE(qos_spec), &p, err) < 0) {
		return NULL;
	}
	b = find_bdev(p.name, err);
	if (b == NULL || qos_limits(&p, limits, err) < 0) {
		return NULL;
	}
	rc = vh_bdev_qos_set(b, limits);
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "Failed to configure rate limit");
		return NULL;
	}
	return json_true();
}

/* The per-second values bdev_set_qos_limit takes (and bdev_get_bdevs reports), 0 = none. */
static void
qos_spdk_units(const struct vh_bdev *b, uint64_t *out)
{
	vh_bdev_qos_get(b, out);
	for (int k = VH_BDEV_QOS_RW_BPS; k < VH_BDEV_QOS_NLIMITS; k++) {
		out[k] /= VH_BDEV_QOS_BPS_UNIT;
	}
}

json_t *
vh_rpc_bdev_rate_limits_json(const struct vh_bdev *b)
{
	uint64_t v[VH_BDEV_QOS_NLIMITS];
	json_t *o = json_object();

	qos_spdk_units(b, v);
	for (int k = 0; o != NULL && k < VH_BDEV_QOS_NLIMITS; k++) {
		json_object_set_new(o, g_qos_keys[k], json_integer((json_int_t)v[k]));
	}
	return o;
}

static int
append_qos_config(struct vh_bdev *b, void *arg)
{
	uint64_t v[VH_BDEV_QOS_NLIMITS];
	json_t *params;

	if (!vh_bdev_qos_enabled(b)) {
		return 0;
	}
	qos_spdk_units(b, v);
	params = json_pack("{s:s}", "name", vh_bdev_name(b));
	for (int k = 0; params != NULL && k < VH_BDEV_QOS_NLIMITS; k++) {
		/* As SPDK saves them: only the limits that are set. */
		if (v[k] != 0) {
			json_object_set_new(params, g_qos_keys[k], json_integer((json_int_t)v[k]));
		}
	}
	if (params == NULL) {
		return -ENOMEM;
	}
	return json_array_append_new(arg, json_pack("{s:s, s:o}", "method", "bdev_set_qos_limit",
	                                            "params", params)) < 0
	               ? -ENOMEM
	               : 0;
}

int
vh_rpc_bdev_qos_config(json_t *config)
{
	/* After every creation entry, so a bdev made by another's entry (NVMe) exists by then. */
	return vh_bdev_foreach(append_qos_config, config);
}

/* ---- bdev_get_iostat ---- */

static void
set_u64(json_t *o, const char *key, uint64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)(v > INT64_MAX ? INT64_MAX : v)));
}

/* SPDK's spdk_bdev_dump_io_stat_json() fields, then vhostd's. Latencies are in ns ("ticks"). */
static json_t *
iostat_json(const char *name, const struct vh_bdev_iostat *st)
{
	static const struct {
		enum vh_bdev_stat_op op;
		const char *bytes, *ops, *lat;
	} spdk[] = {
	        {VH_BDEV_STAT_READ, "bytes_read", "num_read_ops", "read"},
	        {VH_BDEV_STAT_WRITE, "bytes_written", "num_write_ops", "write"},
	        {VH_BDEV_STAT_UNMAP, "bytes_unmapped", "num_unmap_ops", "unmap"},
	};
	json_t *o = json_object();
	char key[48];

	if (o == NULL) {
		return NULL;
	}
	if (name != NULL) {
		json_object_set_new(o, "name", json_string(name)); /* first, as SPDK writes it */
	}
	for (size_t i = 0; i < VH_ARRAY_SIZE(spdk); i++) {
		set_u64(o, spdk[i].bytes, st->op[spdk[i].op].bytes);
		set_u64(o, spdk[i].ops, st->op[spdk[i].op].ops);
	}
	set_u64(o, "bytes_copied", 0); /* no copy command in virtio-blk */
	set_u64(o, "num_copy_ops", 0);
	for (size_t i = 0; i < VH_ARRAY_SIZE(spdk); i++) {
		const struct vh_bdev_op_iostat *op = &st->op[spdk[i].op];

		snprintf(key, sizeof(key), "%s_latency_ticks", spdk[i].lat);
		set_u64(o, key, op->lat_ns);
		snprintf(key, sizeof(key), "max_%s_latency_ticks", spdk[i].lat);
		set_u64(o, key, op->lat_max_ns);
		snprintf(key, sizeof(key), "min_%s_latency_ticks", spdk[i].lat);
		set_u64(o, key, op->lat_min_ns == UINT64_MAX ? 0 : op->lat_min_ns);
	}
	set_u64(o, "copy_latency_ticks", 0);
	set_u64(o, "max_copy_latency_ticks", 0);
	set_u64(o, "min_copy_latency_ticks", 0);
	/* SPDK lists only the error kinds that happened; ours are all "failed". */
	json_object_set_new(o, "io_error",
	                    st->errors ? json_pack("{s:I}", "failed", (json_int_t)st->errors)
	                               : json_object());
	/* vhostd: what SPDK does not count. */
	set_u64(o, "num_flush_ops", st->op[VH_BDEV_STAT_FLUSH].ops);
	set_u64(o, "num_write_zeroes_ops", st->op[VH_BDEV_STAT_WRITE_ZEROES].ops);
	set_u64(o, "bytes_write_zeroed", st->op[VH_BDEV_STAT_WRITE_ZEROES].bytes);
	set_u64(o, "qos_throttled_ops", st->qos_throttled);
	set_u64(o, "qos_queued_ops", st->qos_queued);
	return o;
}

static int
append_iostat(struct vh_bdev *b, void *arg)
{
	struct vh_bdev_iostat st;
	json_t *o;

	vh_bdev_get_iostat(b, -1, false, &st);
	o = iostat_json(vh_bdev_name(b), &st);
	if (o == NULL) {
		return -ENOMEM;
	}
	return json_array_append_new(arg, o) < 0 ? -ENOMEM : 0;
}

/* SPDK's per_channel form: one entry per reactor that has served the bdev. */
static json_t *
per_channel_json(struct vh_bdev *b)
{
	json_t *arr = json_array();

	for (unsigned i = 0; arr != NULL && i < vh_reactor_count(); i++) {
		struct vh_bdev_iostat st;
		json_t *o;

		if (vh_bdev_get_iostat(b, (int)i, true, &st) < 0) {
			continue;
		}
		o = iostat_json(NULL, &st);
		if (o == NULL) {
			json_decref(arr);
			return NULL;
		}
		/* SPDK's thread id; ours is the reactor index. */
		json_object_set_new(o, "thread_id", json_integer(i));
		json_object_set_new(o, "core", json_integer(vh_reactor_core(vh_reactor_get(i))));
		json_array_append_new(arr, o);
	}
	return arr;
}

struct iostat_params {
	const char *name;
	bool per_channel;
};

static const struct vh_rpc_param iostat_spec[] = {
        {"name", VH_RPC_T_STRING, 0, offsetof(struct iostat_params, name)},
        {"per_channel", VH_RPC_T_BOOL, 0, offsetof(struct iostat_params, per_channel)},
};

static json_t *
bdev_get_iostat(const json_t *params, struct vh_rpc_error *err)
{
	struct iostat_params p = {0};
	struct vh_bdev *b = NULL;
	json_t *res, *arr;
	int rc;

	if (vh_rpc_decode_params(params, iostat_spec, VH_ARRAY_SIZE(iostat_spec), &p, err) < 0) {
		return NULL;
	}
	if (p.per_channel && p.name == NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "per_channel needs a bdev name (SPDK's rule)");
		return NULL;
	}
	if (p.name != NULL && (b = find_bdev(p.name, err)) == NULL) {
		return NULL;
	}
	/* Latencies are nanoseconds, so the "tick" rate is 1 GHz and "ticks" is the clock. */
	res = json_pack("{s:I, s:I}", "tick_rate", (json_int_t)1000000000, "ticks",
	                (json_int_t)vh_now_ns());
	if (res == NULL) {
		return NULL;
	}
	if (p.per_channel) {
		json_object_set_new(res, "name", json_string(p.name));
		arr = per_channel_json(b);
		if (arr == NULL || json_object_set_new(res, "channels", arr) < 0) {
			json_decref(res);
			return NULL;
		}
		return res;
	}
	arr = json_array();
	rc = arr == NULL ? -ENOMEM
	     : b != NULL ? append_iostat(b, arr)
	                 : vh_bdev_foreach(append_iostat, arr);
	if (rc < 0 || json_object_set_new(res, "bdevs", arr) < 0) {
		json_decref(res);
		return NULL;
	}
	return res;
}

/* ---- bdev_reset_iostat ---- */

struct reset_params {
	const char *name;
	const char *mode;
};

static int
reset_one(struct vh_bdev *b, void *arg)
{
	vh_bdev_reset_iostat(b, *(bool *)arg);
	return 0;
}

static json_t *
bdev_reset_iostat(const json_t *params, struct vh_rpc_error *err)
{
	static const struct vh_rpc_param spec[] = {
	        {"name", VH_RPC_T_STRING, 0, offsetof(struct reset_params, name)},
	        {"mode", VH_RPC_T_STRING, 0, offsetof(struct reset_params, mode)},
	};
	struct reset_params p = {0};
	bool maxmin = false;
	struct vh_bdev *b;

	if (vh_rpc_decode_params(params, spec, VH_ARRAY_SIZE(spec), &p, err) < 0) {
		return NULL;
	}
	if (p.mode != NULL && strcmp(p.mode, "all") != 0 && strcmp(p.mode, "maxmin") != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid mode '%.32s': use all or maxmin", p.mode);
		return NULL;
	}
	maxmin = p.mode != NULL && strcmp(p.mode, "maxmin") == 0;
	if (p.name != NULL) {
		b = find_bdev(p.name, err);
		if (b == NULL) {
			return NULL;
		}
		reset_one(b, &maxmin);
	} else {
		vh_bdev_foreach(reset_one, &maxmin);
	}
	return json_true();
}

/* ---- bdev_get_latency_histogram (vhostd) ---- */

static json_t *
histogram_json(const struct vh_bdev *b)
{
	static uint64_t h[VH_BDEV_HIST_BUCKETS]; /* control thread only */
	json_t *o = json_pack("{s:s, s:s}", "name", vh_bdev_name(b), "unit", "ns");

	for (int op = 0; o != NULL && op < VH_BDEV_STAT_NOPS; op++) {
		json_t *arr = json_array();
		uint64_t lo = 0;

		memset(h, 0, sizeof(h));
		vh_bdev_get_histogram(b, op, h);
		for (unsigned i = 0; arr != NULL && i < VH_BDEV_HIST_BUCKETS; i++) {
			uint64_t hi = vh_bdev_hist_bucket_end(i);

			/* Only buckets with something in them: [from, to, count], to exclusive. */
			if (h[i] != 0) {
				json_array_append_new(
				        arr,
				        json_pack("[I, I, I]", (json_int_t)lo,
				                  (json_int_t)(hi > INT64_MAX ? INT64_MAX : hi),
				                  (json_int_t)h[i]));
			}
			lo = hi;
		}
		json_object_set_new(o, vh_bdev_stat_op_name(op), arr ? arr : json_array());
	}
	return o;
}

static json_t *
bdev_get_latency_histogram(const json_t *params, struct vh_rpc_error *err)
{
	static const struct vh_rpc_param spec[] = {
	        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct reset_params, name)},
	};
	struct reset_params p = {0};
	struct vh_bdev *b;

	if (vh_rpc_decode_params(params, spec, VH_ARRAY_SIZE(spec), &p, err) < 0) {
		return NULL;
	}
	b = find_bdev(p.name, err);
	return b != NULL ? histogram_json(b) : NULL;
}

const struct vh_rpc_method vh_rpc_iostat_methods[] = {
        {"bdev_set_qos_limit", bdev_set_qos_limit, VH_RPC_F_PERSIST},
        {"bdev_get_iostat", bdev_get_iostat, 0},
        {"bdev_reset_iostat", bdev_reset_iostat, 0},
        {"bdev_get_latency_histogram", bdev_get_latency_histogram, 0},
        /* SPDK's name before v20.x. */
        {"set_bdev_qos_limit", bdev_set_qos_limit, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"get_bdevs_iostat", bdev_get_iostat, VH_RPC_F_ALIAS},
};

const size_t vh_rpc_iostat_methods_count = VH_ARRAY_SIZE(vh_rpc_iostat_methods);
