/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio-user NVMe controller methods (docs/rpc.md "vfio-user NVMe controllers"). SPDK expresses
 * the same thing with its NVMe-oF RPCs (nvmf_create_transport -t VFIOUSER, nvmf_create_subsystem,
 * nvmf_subsystem_add_ns, nvmf_subsystem_add_listener with a directory); vhostd has one socket
 * per VM like its vhost-user controllers, so the methods follow those instead.
 *
 * Threat model: any local process that can reach the RPC socket (0600 by default). Parameters
 * are decoded against a spec (types, ranges, unknown keys refused); names are checked to be safe
 * as socket file names and unique among vhost-user and vfio-user controllers (both live in the
 * socket directory); the cpumask must be within the reactors we run.
 */
#include <errno.h>
#include <string.h>

#include "bdev/bdev.h"
#include "core/reactor.h"
#include "rpc/rpc_internal.h"
#include "vfu/vfu.h"
#include "vhost/vhost.h"

struct create_params {
	const char *ctrlr;
	const char *cpumask;
	uint16_t num_io_queues;
};

static const struct vh_rpc_param create_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct create_params, ctrlr)},
        {"cpumask", VH_RPC_T_STRING, 0, offsetof(struct create_params, cpumask)},
        {"num_io_queues", VH_RPC_T_U16, 0, offsetof(struct create_params, num_io_queues)},
};

static json_t *
vfu_create_nvme_controller(const json_t *params, struct vh_rpc_error *err)
{
	struct create_params p = {0};
	struct vh_vfu_nvme_opts o = {0};
	uint64_t reactors = vh_reactor_mask();
	int rc;

	if (vh_rpc_decode_params(params, create_spec, VH_ARRAY_SIZE(create_spec), &p, err) < 0) {
		return NULL;
	}
	if (vh_name_check(p.ctrlr) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid ctrlr '%.64s': use 1-%d characters of [A-Za-z0-9_.:-]",
		                 p.ctrlr, VH_NAME_MAX - 1);
		return NULL;
	}
	if (vh_vfu_find(p.ctrlr) != NULL || vh_vhost_find(p.ctrlr) != NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "name '%s' already exists", p.ctrlr);
		return NULL;
	}
	if (p.cpumask != NULL) {
		if (vh_parse_cpumask(p.cpumask, &o.cpumask) < 0) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "invalid cpumask '%.64s': use hex (\"0x3\") or a list "
			                 "(\"[0,2-3]\")",
			                 p.cpumask);
			return NULL;
		}
		if (o.cpumask == 0 || (reactors != 0 && (o.cpumask & ~reactors) != 0)) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "cpumask '%s' is outside the reactor mask 0x%llx",
			                 p.cpumask, (unsigned long long)reactors);
			return NULL;
		}
	}
	if (p.num_io_queues > VH_VFU_MAX_IO_QUEUES) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "num_io_queues %u exceeds %d",
		                 p.num_io_queues, VH_VFU_MAX_IO_QUEUES);
		return NULL;
	}
	o.name = p.ctrlr;
	o.num_io_queues = p.num_io_queues;
	rc = vh_vfu_nvme_create(&o);
	switch (rc) {
	case 0:
		return json_true();
	case -EEXIST:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "socket path for controller '%s' exists and is not a socket",
		                 p.ctrlr);
		return NULL;
	case -EADDRINUSE:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "socket path for controller '%s' is in use: a server is listening "
		                 "there",
		                 p.ctrlr);
		return NULL;
	case -ENAMETOOLONG:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "socket path for controller '%s' is too long", p.ctrlr);
		return NULL;
	default:
		vh_rpc_error_errno(err, rc, "cannot create controller");
		return NULL;
	}
}

struct ctrlr_params {
	const char *ctrlr;
};

static const struct vh_rpc_param ctrlr_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct ctrlr_params, ctrlr)},
};

static json_t *
vfu_delete_controller(const json_t *params, struct vh_rpc_error *err)
{
	struct ctrlr_params p = {0};

	if (vh_rpc_decode_params(params, ctrlr_spec, VH_ARRAY_SIZE(ctrlr_spec), &p, err) < 0) {
		return NULL;
	}
	if (vh_vfu_delete(p.ctrlr) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%.64s' not found",
		                 p.ctrlr);
		return NULL;
	}
	return json_true();
}

struct add_ns_params {
	const char *ctrlr;
	const char *bdev_name;
	uint32_t nsid;
};

static const struct vh_rpc_param add_ns_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct add_ns_params, ctrlr)},
        {"bdev_name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED,
         offsetof(struct add_ns_params, bdev_name)},
        {"nsid", VH_RPC_T_U32, 0, offsetof(struct add_ns_params, nsid)},
};

static json_t *
vfu_controller_add_ns(const json_t *params, struct vh_rpc_error *err)
{
	struct add_ns_params p = {0};
	struct vh_bdev *b;
	uint32_t nsid = 0;
	int rc;

	if (vh_rpc_decode_params(params, add_ns_spec, VH_ARRAY_SIZE(add_ns_spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_vfu_add_ns(p.ctrlr, p.bdev_name, p.nsid, &nsid);
	switch (rc) {
	case 0:
		return json_integer(nsid);
	case -ENODEV:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%.64s' not found",
		                 p.ctrlr);
		break;
	case -ENOENT:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found", p.bdev_name);
		break;
	case -EBUSY:
		b = vh_bdev_find(p.bdev_name);
		vh_rpc_error_set(
		        err, VH_RPC_INVALID_PARAMS, "bdev '%s' is in use by '%s'", p.bdev_name,
		        b != NULL && vh_bdev_claimed_by(b) != NULL ? vh_bdev_claimed_by(b) : "?");
		break;
	case -EEXIST:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "nsid %u is in use on '%s'", p.nsid,
		                 p.ctrlr);
		break;
	case -ERANGE:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "nsid %u is out of range (1-%d)",
		                 p.nsid, VH_VFU_MAX_NS);
		break;
	case -ENOSPC:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%s' has %d namespaces",
		                 p.ctrlr, VH_VFU_MAX_NS);
		break;
	case -EINVAL:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%s': block size not usable by NVMe (a power of two in "
		                 "512-65536)",
		                 p.bdev_name);
		break;
	default:
		vh_rpc_error_errno(err, rc, "cannot add namespace");
		break;
	}
	return NULL;
}

struct remove_ns_params {
	const char *ctrlr;
	uint32_t nsid;
};

static const struct vh_rpc_param remove_ns_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct remove_ns_params, ctrlr)},
        {"nsid", VH_RPC_T_U32, VH_RPC_P_REQUIRED, offsetof(struct remove_ns_params, nsid)},
};

static json_t *
vfu_controller_remove_ns(const json_t *params, struct vh_rpc_error *err)
{
	struct remove_ns_params p = {0};
	int rc;

	if (vh_rpc_decode_params(params, remove_ns_spec, VH_ARRAY_SIZE(remove_ns_spec), &p, err) <
	    0) {
		return NULL;
	}
	rc = vh_vfu_remove_ns(p.ctrlr, p.nsid);
	if (rc == -ENODEV) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%.64s' not found",
		                 p.ctrlr);
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%s' has no namespace %u",
		                 p.ctrlr, p.nsid);
		return NULL;
	}
	return json_true();
}

static int
append_info(struct vh_vfu_ctrlr *c, void *arg)
{
	json_t *o = vh_vfu_ctrlr_info_json(c);

	return o != NULL && json_array_append_new(arg, o) == 0 ? 0 : -ENOMEM;
}

struct get_params {
	const char *name;
};

static const struct vh_rpc_param get_spec[] = {
        {"name", VH_RPC_T_STRING, 0, offsetof(struct get_params, name)},
};

static json_t *
vfu_get_controllers(const json_t *params, struct vh_rpc_error *err)
{
	struct get_params p = {0};
	json_t *arr;
	int rc;

	if (vh_rpc_decode_params(params, get_spec, VH_ARRAY_SIZE(get_spec), &p, err) < 0) {
		return NULL;
	}
	arr = json_array();
	if (arr == NULL) {
		return NULL;
	}
	if (p.name != NULL) {
		struct vh_vfu_ctrlr *c = vh_vfu_find(p.name);

		if (c == NULL) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%.64s' not found",
			                 p.name);
			json_decref(arr);
			return NULL;
		}
		rc = append_info(c, arr);
	} else {
		rc = vh_vfu_foreach(append_info, arr);
	}
	if (rc < 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static int
append_config(struct vh_vfu_ctrlr *c, void *arg)
{
	return vh_vfu_ctrlr_config_json(c, arg);
}

int
vh_rpc_vfu_config(json_t *config)
{
	return vh_vfu_foreach(append_config, config);
}

const struct vh_rpc_method vh_rpc_vfu_methods[] = {
        {"vfu_create_nvme_controller", vfu_create_nvme_controller, VH_RPC_F_PERSIST},
        {"vfu_delete_controller", vfu_delete_controller, VH_RPC_F_PERSIST},
        {"vfu_controller_add_ns", vfu_controller_add_ns, VH_RPC_F_PERSIST},
        {"vfu_controller_remove_ns", vfu_controller_remove_ns, VH_RPC_F_PERSIST},
        {"vfu_get_controllers", vfu_get_controllers, 0},
};

const size_t vh_rpc_vfu_methods_count = VH_ARRAY_SIZE(vh_rpc_vfu_methods);
