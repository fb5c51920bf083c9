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
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bdev/bdev.h"
#include "bdev/nvme/bdev_nvme.h"
#include "bdev/nvme/pci.h"
#include "core/reactor.h"
#include "rpc/rpc_internal.h"

struct attach_params {
	const char *name;
	const char *trtype;
	const char *traddr;
	const char *mode;
	bool force;
	const char *hugepage_dir;
	const char *multipath;
	uint32_t num_io_queues;
	uint32_t max_bdevs;
};

#define AP(key, type, flags, member)                                                               \
	{                                                                                          \
		key, type, flags, offsetof(struct attach_params, member), 0                        \
	}

/* Why the NVMe-oF and PI options of SPDK's attach are accepted only at their defaults. */
#define WHY_FABRICS "it applies to NVMe-oF transports; vhostd attaches local PCIe controllers only"
#define WHY_PI      "end-to-end protection information checks are not supported"
#define WHY_RECONNECT                                                                              \
	"the reconnect policy is fixed: a PCIe controller is reset on failure, never reconnected"

/* SPDK's default for max_bdevs (the size of the name array it returns). */
#define DEFAULT_MAX_BDEVS 128

static const struct vh_rpc_param attach_spec[] = {
        AP("name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, name),
        AP("trtype", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, trtype),
        AP("traddr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, traddr),
        AP("multipath", VH_RPC_T_STRING, 0, multipath),
        AP("num_io_queues", VH_RPC_T_U32, 0, num_io_queues),
        AP("max_bdevs", VH_RPC_T_U32, 0, max_bdevs),
        /* vhostd extensions. */
        AP("mode", VH_RPC_T_STRING, 0, mode),
        AP("force", VH_RPC_T_BOOL, 0, force),
        AP("hugepage_dir", VH_RPC_T_STRING, 0, hugepage_dir),
        /* SPDK v23.05's rpc.py sends these only when the user gives the option. */
        VH_RPC_UNSUP_STRING("adrfam", WHY_FABRICS),
        VH_RPC_UNSUP_STRING("trsvcid", WHY_FABRICS),
        VH_RPC_UNSUP_STRING("priority", WHY_FABRICS),
        VH_RPC_UNSUP_STRING("subnqn", WHY_FABRICS),
        VH_RPC_UNSUP_STRING("hostnqn", WHY_FABRICS),
        VH_RPC_UNSUP_STRING("hostaddr", WHY_FABRICS),
        VH_RPC_UNSUP_STRING("hostsvcid", WHY_FABRICS),
        VH_RPC_UNSUP_STRING("psk", WHY_FABRICS),
        VH_RPC_UNSUP_BOOL("hdgst", WHY_FABRICS),
        VH_RPC_UNSUP_BOOL("ddgst", WHY_FABRICS),
        VH_RPC_UNSUP_INT("fabrics_connect_timeout_us", 0, WHY_FABRICS),
        VH_RPC_UNSUP_BOOL("prchk_reftag", WHY_PI),
        VH_RPC_UNSUP_BOOL("prchk_guard", WHY_PI),
        VH_RPC_UNSUP_INT("ctrlr_loss_timeout_sec", 0, WHY_RECONNECT),
        VH_RPC_UNSUP_INT("reconnect_delay_sec", 0, WHY_RECONNECT),
        VH_RPC_UNSUP_INT("fast_io_fail_timeout_sec", 0, WHY_RECONNECT),
};

static bool
controller_exists(const char *name)
{
	json_t *out = NULL;
	int rc = vh_bdev_nvme_get_controllers(name, &out);

	json_decref(out);
	return rc == 0;
}

/* The checks SPDK makes before attaching, with vhostd's limits. 0 or -EINVAL with @err. */
static int
attach_checks(const struct attach_params *p, struct vh_rpc_error *err)
{
	unsigned reactors = VH_MAX(vh_reactor_count(), 1u);

	if (strcasecmp(p->trtype, "PCIe") != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "trtype '%s' is not supported (only PCIe)", p->trtype);
		return -EINVAL;
	}
	if (vh_name_check(p->name) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "invalid controller name '%s'",
		                 p->name);
		return -EINVAL;
	}
	if (p->multipath != NULL && strcmp(p->multipath, "disable") != 0 &&
	    strcmp(p->multipath, "failover") != 0 && strcmp(p->multipath, "multipath") != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "multipath '%.32s': expected disable, failover or multipath",
		                 p->multipath);
		return -EINVAL;
	}
	/* SPDK's failover and multipath modes add a path to an existing controller. */
	if (controller_exists(p->name)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "NVMe controller '%s' already exists%s", p->name,
		                 p->multipath != NULL && strcmp(p->multipath, "disable") != 0
		                         ? ": a second path (multipath) is not supported for PCIe"
		                         : "");
		return -EINVAL;
	}
	if (p->max_bdevs == 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "max_bdevs cannot be zero");
		return -EINVAL;
	}
	/* Each reactor drives its own I/O queue pair, so fewer queues would idle reactors. */
	if (p->num_io_queues != 0 && p->num_io_queues < reactors) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "num_io_queues %u is not supported: vhostd creates one I/O queue "
		                 "per reactor (%u), so it must be at least %u",
		                 p->num_io_queues, reactors, reactors);
		return -EINVAL;
	}
	return 0;
}

static json_t *
bdev_nvme_attach_controller(const json_t *params, struct vh_rpc_error *err)
{
	struct attach_params p = {.max_bdevs = DEFAULT_MAX_BDEVS};
	struct vh_bdev_nvme_opts opts = {0};
	enum vh_nvme_access mode;
	json_t *bdevs = NULL;
	int rc;

	if (vh_rpc_decode_params(params, attach_spec, VH_ARRAY_SIZE(attach_spec), &p, err) < 0 ||
	    attach_checks(&p, err) < 0) {
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
	if (rc == -EEXIST) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "attach: address '%.32s' is already attached", p.traddr);
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "attach");
		return NULL;
	}
	/* SPDK fails the call when the names do not fit; leave nothing half-attached. */
	if (json_array_size(bdevs) > p.max_bdevs) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "controller '%s' has %zu namespaces, more than max_bdevs %u: "
		                 "detached again",
		                 p.name, json_array_size(bdevs), p.max_bdevs);
		json_decref(bdevs);
		vh_bdev_nvme_detach(p.name);
		return NULL;
	}
	return bdevs;
}

struct detach_params {
	const char *name;
	const char *trtype;
	const char *traddr;
};

/*
 * SPDK's trtype/traddr select one path of the controller to remove. A PCIe controller has one
 * path, so they must name that path. Returns 0, or -EINVAL/-ENODEV with @err filled in.
 */
static int
check_path(const struct detach_params *p, struct vh_rpc_error *err)
{
	char want[32], have[32];
	json_t *out = NULL;
	const char *addr;

	if (p->trtype != NULL && strcasecmp(p->trtype, "PCIe") != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "NVMe controller '%s' has no %.16s path (it is PCIe)", p->name,
		                 p->trtype);
		return -EINVAL;
	}
	if (p->traddr == NULL) {
		return 0;
	}
	if (vh_bdev_nvme_get_controllers(p->name, &out) < 0) {
		return 0; /* the detach itself reports the unknown name */
	}
	addr = json_string_value(json_object_get(
	        json_object_get(
	                json_array_get(json_object_get(json_array_get(out, 0), "ctrlrs"), 0),
	                "trid"),
	        "traddr"));
	snprintf(have, sizeof(have), "%s", addr != NULL ? addr : "?");
	json_decref(out);
	if (vh_nvme_pci_parse_bdf(p->traddr, want, sizeof(want)) < 0 || strcmp(want, have) != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "NVMe controller '%s' has no path at traddr '%.32s' (it is at %s)",
		                 p->name, p->traddr, have);
		return -EINVAL;
	}
	return 0;
}

static json_t *
bdev_nvme_detach_controller(const json_t *params, struct vh_rpc_error *err)
{
	static const struct vh_rpc_param spec[] = {
	        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct detach_params, name)},
	        {"trtype", VH_RPC_T_STRING, 0, offsetof(struct detach_params, trtype)},
	        {"traddr", VH_RPC_T_STRING, 0, offsetof(struct detach_params, traddr)},
	        VH_RPC_UNSUP_STRING("adrfam", WHY_FABRICS),
	        VH_RPC_UNSUP_STRING("trsvcid", WHY_FABRICS),
	        VH_RPC_UNSUP_STRING("subnqn", WHY_FABRICS),
	        VH_RPC_UNSUP_STRING("hostaddr", WHY_FABRICS),
	        VH_RPC_UNSUP_STRING("hostsvcid", WHY_FABRICS),
	};
	struct detach_params p = {0};
	int rc;

	if (vh_rpc_decode_params(params, spec, VH_ARRAY_SIZE(spec), &p, err) < 0 ||
	    check_path(&p, err) < 0) {
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
	        {"name", VH_RPC_T_STRING, 0, offsetof(struct detach_params, name), 0},
	};
	struct detach_params p = {0};
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
