/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * User-space NVMe methods with SPDK's names: bdev_nvme_attach_controller (PCIe only),
 * bdev_nvme_detach_controller, bdev_nvme_get_controllers. "mode" ("vfio" | "uio") and "force"
 * (take the device from the kernel nvme driver) are vhostd extensions.
 *
 * Threat model: any local process that can reach the RPC socket (0600 by default). Every
 * parameter is decoded against a spec (JSON types, integer ranges, unknown keys refused) before
 * a handler sees it; names must be safe as file names; paths are opened only as the daemon's
 * user and reported back only as error text.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "bdev/bdev.h"
#include "bdev/nvme/bdev_nvme.h"
#include "rpc/rpc_internal.h"

struct attach_params {
	const char *name;
	const char *trtype;
	const char *traddr;
	const char *mode;
	bool force;
	const char *hugepage_dir;
};

#define AP(key, type, flags, member)                                                               \
	{                                                                                          \
		key, type, flags, offsetof(struct attach_params, member), 0                        \
	}

static const struct vh_rpc_param attach_spec[] = {
        AP("name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, name),
        AP("trtype", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, trtype),
        AP("traddr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, traddr),
        AP("mode", VH_RPC_T_STRING, 0, mode),
        AP("force", VH_RPC_T_BOOL, 0, force),
        AP("hugepage_dir", VH_RPC_T_STRING, 0, hugepage_dir),
        /* rpc.py sends these with neutral values for PCIe. */
        {"prchk_reftag", VH_RPC_T_BOOL, VH_RPC_P_UNSUPPORTED, 0, 0},
        {"prchk_guard", VH_RPC_T_BOOL, VH_RPC_P_UNSUPPORTED, 0, 0},
        {"hdgst", VH_RPC_T_BOOL, VH_RPC_P_UNSUPPORTED, 0, 0},
        {"ddgst", VH_RPC_T_BOOL, VH_RPC_P_UNSUPPORTED, 0, 0},
};

static json_t *
bdev_nvme_attach_controller(const json_t *params, struct vh_rpc_error *err)
{
	struct attach_params p = {0};
	struct vh_bdev_nvme_opts opts = {0};
	enum vh_nvme_access mode;
	json_t *bdevs = NULL;
	int rc;

	if (vh_rpc_decode_params(params, attach_spec, VH_ARRAY_SIZE(attach_spec), &p, err) < 0) {
		return NULL;
	}
	if (strcasecmp(p.trtype, "PCIe") != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "trtype '%s' is not supported (only PCIe)", p.trtype);
		return NULL;
	}
	if (vh_name_check(p.name) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "invalid controller name '%s'",
		                 p.name);
		return NULL;
	}
	if (p.mode == NULL) {
		mode = vh_nvme_access_auto(p.traddr);
	} else if (vh_nvme_access_parse(p.mode, &mode) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "mode '%s': expected vfio or uio",
		                 p.mode);
		return NULL;
	}
	opts.force = p.force;
	opts.hugepage_dir = p.hugepage_dir;
	rc = vh_bdev_nvme_attach(p.name, p.traddr, mode, &opts, &bdevs);
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "attach");
		return NULL;
	}
	return bdevs;
}

struct name_only {
	const char *name;
	const char *trtype; /* accepted for rpc.py compatibility; the name identifies it */
	const char *traddr;
};

static json_t *
bdev_nvme_detach_controller(const json_t *params, struct vh_rpc_error *err)
{
	static const struct vh_rpc_param spec[] = {
	        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct name_only, name), 0},
	        {"trtype", VH_RPC_T_STRING, 0, offsetof(struct name_only, trtype), 0},
	        {"traddr", VH_RPC_T_STRING, 0, offsetof(struct name_only, traddr), 0},
	};
	struct name_only p = {0};
	int rc;

	if (vh_rpc_decode_params(params, spec, VH_ARRAY_SIZE(spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_bdev_nvme_detach(p.name);
	if (rc == -ENODEV) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "NVMe controller '%s' not found",
		                 p.name);
		return NULL;
	}
	if (rc == -EBUSY) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "NVMe controller '%s' has a bdev in use by a vhost controller",
		                 p.name);
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "detach");
		return NULL;
	}
	return json_true();
}

static json_t *
bdev_nvme_get_controllers(const json_t *params, struct vh_rpc_error *err)
{
	static const struct vh_rpc_param spec[] = {
	        {"name", VH_RPC_T_STRING, 0, offsetof(struct name_only, name), 0},
	};
	struct name_only p = {0};
	json_t *out = NULL;
	int rc;

	if (vh_rpc_decode_params(params, spec, VH_ARRAY_SIZE(spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_bdev_nvme_get_controllers(p.name, &out);
	if (rc == -ENODEV) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "NVMe controller '%s' not found",
		                 p.name);
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "get_controllers");
		return NULL;
	}
	return out;
}

const struct vh_rpc_method vh_rpc_nvme_methods[] = {
        {"bdev_nvme_attach_controller", bdev_nvme_attach_controller, VH_RPC_F_PERSIST},
        {"bdev_nvme_detach_controller", bdev_nvme_detach_controller, VH_RPC_F_PERSIST},
        {"bdev_nvme_get_controllers", bdev_nvme_get_controllers, 0},
        {"construct_nvme_bdev", bdev_nvme_attach_controller, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"delete_nvme_controller", bdev_nvme_detach_controller, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"get_nvme_controllers", bdev_nvme_get_controllers, VH_RPC_F_ALIAS},
};
const size_t vh_rpc_nvme_methods_count = VH_ARRAY_SIZE(vh_rpc_nvme_methods);
