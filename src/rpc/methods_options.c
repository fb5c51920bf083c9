/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SPDK's global tuning methods: bdev_set_options, bdev_nvme_set_options, bdev_nvme_set_hotplug.
 * An SPDK target's save_config writes all three, with its defaults, at the head of the bdev
 * subsystem, and SPDK's rpc.py load_config refuses a whole file that names a method the target
 * does not list. vhostd has none of the machinery they tune (no bdev_io pool, no NVMe-oF
 * transports, no command timeouts, no hot-plug monitor), so each key is handled by what its
 * value would ask of us (docs/rpc.md, "Tuning methods from SPDK"):
 * - a key that sizes or paces something vhostd does otherwise, or that only NVMe-oF uses, is
 *   accepted whatever its value and changes nothing; a NOTICE names the keys so treated;
 * - a key that would turn on a behaviour vhostd lacks is accepted only at its neutral value
 *   (SPDK's default for "off") and refused otherwise with the reason (VH_RPC_P_UNSUPPORTED).
 * Nothing is stored, so save_config writes none of these.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "rpc/rpc_internal.h"

/* Keys accepted without effect: their values are decoded (type and range checked) into here. */
struct inert_values {
	uint32_t u32[16];
	bool b[4];
};

/* One NOTICE naming the keys of @spec[0..n) present in @params that were accepted inert. */
static void
log_inert(const char *method, const json_t *params, const struct vh_rpc_param *spec, size_t n,
          const char *why)
{
	char keys[512];
	size_t off = 0;

	keys[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		/* Strings are only ever accepted at a neutral value, checked by the method. */
		if ((spec[i].flags & VH_RPC_P_UNSUPPORTED) || spec[i].type == VH_RPC_T_STRING ||
		    json_object_get(params, spec[i].name) == NULL) {
			continue;
		}
		int w = snprintf(keys + off, sizeof(keys) - off, "%s%s", off ? ", " : "",
		                 spec[i].name);

		if (w < 0 || (size_t)w >= sizeof(keys) - off) {
			break;
		}
		off += (size_t)w;
	}
	if (off > 0) {
		VH_NOTICE("rpc", "%s: accepted without effect (%s): %s", method, why, keys);
	}
}

#define INERT_U32(key, slot)                                                                       \
	{                                                                                          \
		key, VH_RPC_T_U32, 0,                                                              \
		        offsetof(struct inert_values, u32) + (slot) * sizeof(uint32_t)             \
	}
#define INERT_BOOL(key, slot)                                                                      \
	{                                                                                          \
		key, VH_RPC_T_BOOL, 0, offsetof(struct inert_values, b) + (slot) * sizeof(bool)    \
	}

static const struct vh_rpc_param bdev_options_spec[] = {
        INERT_U32("bdev_io_pool_size", 0),   INERT_U32("bdev_io_cache_size", 1),
        INERT_U32("small_buf_pool_size", 2), INERT_U32("large_buf_pool_size", 3),
        INERT_BOOL("bdev_auto_examine", 0),
};

/*
 * SPDK sizes a global pool of bdev_io structures (and a per-thread cache of them) here. vhostd
 * has no such pool: each queue owns a bounded set of request slots (docs/design.md), and no
 * bdev is ever examined or claimed by another module.
 */
static json_t *
bdev_set_options(const json_t *params, struct vh_rpc_error *err)
{
	struct inert_values v;

	if (vh_rpc_decode_params(params, bdev_options_spec, VH_ARRAY_SIZE(bdev_options_spec), &v,
	                         err) < 0) {
		return NULL;
	}
	log_inert("bdev_set_options", params, bdev_options_spec, VH_ARRAY_SIZE(bdev_options_spec),
	          "vhostd has no bdev_io pool and no examine step");
	return json_true();
}

#define NO_TIMEOUT "vhostd's NVMe driver has no command timeout"
#define NO_FABRICS "vhostd's NVMe driver is PCIe only"

struct nvme_options {
	struct inert_values v; /* first: the INERT_* offsets are relative to the struct */
	const char *action_on_timeout;
};

static const struct vh_rpc_param nvme_options_spec[] = {
        /* Paced or sized otherwise, or NVMe-oF only: any value, no effect. */
        INERT_U32("keep_alive_timeout_ms", 0),
        INERT_U32("retry_count", 1),
        INERT_U32("transport_retry_count", 2),
        INERT_U32("nvme_adminq_poll_period_us", 3),
        INERT_U32("bdev_retry_count", 4),
        INERT_U32("rdma_srq_size", 5),
        INERT_BOOL("delay_cmd_submit", 0),
        /* Behaviours vhostd lacks: only their "off" value. */
        /* Checked below: "none" only. */
        {"action_on_timeout", VH_RPC_T_STRING, 0, offsetof(struct nvme_options, action_on_timeout)},
        VH_RPC_UNSUP_INT("timeout_us", 0, NO_TIMEOUT),
        VH_RPC_UNSUP_INT("timeout_admin_us", 0, NO_TIMEOUT),
        VH_RPC_UNSUP_INT("arbitration_burst", 0, "queues are served round-robin"),
        VH_RPC_UNSUP_INT("low_priority_weight", 0, "queues are served round-robin"),
        VH_RPC_UNSUP_INT("medium_priority_weight", 0, "queues are served round-robin"),
        VH_RPC_UNSUP_INT("high_priority_weight", 0, "queues are served round-robin"),
        VH_RPC_UNSUP_INT("nvme_ioq_poll_period_us", 0, "I/O queues are polled on every pass"),
        VH_RPC_UNSUP_INT("io_queue_requests", 0, "each I/O queue pair is sized by vhostd"),
        VH_RPC_UNSUP_INT("transport_ack_timeout", 0, NO_FABRICS),
        {"ctrlr_loss_timeout_sec", VH_RPC_T_I32, VH_RPC_P_UNSUPPORTED, 0, 0, NO_FABRICS},
        VH_RPC_UNSUP_INT("reconnect_delay_sec", 0, NO_FABRICS),
        VH_RPC_UNSUP_INT("fast_io_fail_timeout_sec", 0, NO_FABRICS),
        VH_RPC_UNSUP_BOOL("disable_auto_failback", "vhostd has no multipath"),
        VH_RPC_UNSUP_BOOL("generate_uuids", "namespace bdevs take the namespace's own UUID"),
        VH_RPC_UNSUP_INT("transport_tos", 0, NO_FABRICS),
        VH_RPC_UNSUP_BOOL("nvme_error_stat", "vhostd keeps no per-status NVMe error counters"),
        VH_RPC_UNSUP_BOOL("io_path_stat", "vhostd has no multipath"),
};

static json_t *
bdev_nvme_set_options(const json_t *params, struct vh_rpc_error *err)
{
	struct nvme_options o = {.action_on_timeout = NULL};

	if (vh_rpc_decode_params(params, nvme_options_spec, VH_ARRAY_SIZE(nvme_options_spec), &o,
	                         err) < 0) {
		return NULL;
	}
	if (o.action_on_timeout != NULL && strcmp(o.action_on_timeout, "none") != 0) {
		vh_rpc_error_set(
		        err, VH_RPC_INVALID_PARAMS,
		        "parameter 'action_on_timeout' is not supported: %s (only \"none\")",
		        NO_TIMEOUT);
		return NULL;
	}
	log_inert("bdev_nvme_set_options", params, nvme_options_spec,
	          VH_ARRAY_SIZE(nvme_options_spec),
	          "vhostd's driver is PCIe only, uses its admin queue synchronously, submits once "
	          "per reactor pass and does not retry failed I/O");
	return json_true();
}

struct hotplug_params {
	bool enable;
	uint64_t period_us;
};

static const struct vh_rpc_param hotplug_spec[] = {
        {"enable", VH_RPC_T_BOOL, VH_RPC_P_REQUIRED, offsetof(struct hotplug_params, enable)},
        {"period_us", VH_RPC_T_U64, 0, offsetof(struct hotplug_params, period_us)},
};

/* SPDK polls for PCIe devices appearing and going; vhostd attaches only what it is told to. */
static json_t *
bdev_nvme_set_hotplug(const json_t *params, struct vh_rpc_error *err)
{
	struct hotplug_params p = {.enable = false};

	if (vh_rpc_decode_params(params, hotplug_spec, VH_ARRAY_SIZE(hotplug_spec), &p, err) < 0) {
		return NULL;
	}
	if (p.enable) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "parameter 'enable' is not supported: vhostd has no NVMe hot-plug "
		                 "monitor; attach controllers with bdev_nvme_attach_controller "
		                 "(only false)");
		return NULL;
	}
	return json_true();
}

const struct vh_rpc_method vh_rpc_options_methods[] = {
        {"bdev_set_options", bdev_set_options, 0},
        {"bdev_nvme_set_options", bdev_nvme_set_options, 0},
        {"bdev_nvme_set_hotplug", bdev_nvme_set_hotplug, 0},
};
const size_t vh_rpc_options_methods_count = VH_ARRAY_SIZE(vh_rpc_options_methods);
