/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost controller methods (blk and scsi), with SPDK's names and parameter names.
 *
 * Threat model: any local process that can reach the RPC socket (0600 by default). Parameters are
 * decoded against a spec (types, ranges, unknown keys refused); names are checked to be safe as
 * socket file names (no '/', not "." or ".."), and the cpumask against the reactors we run.
 */
#include <errno.h>
#include <string.h>

#include "bdev/bdev.h"
#include "core/reactor.h"
#include "rpc/rpc_internal.h"
#include "vhost/vhost.h"

struct create_blk_params {
	const char *ctrlr;
	const char *dev_name;
	const char *cpumask;
	const char *transport;
	bool readonly;
	bool packed_ring;
	bool packed_ring_recovery;
	uint16_t num_queues;
};

static const struct vh_rpc_param create_blk_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct create_blk_params, ctrlr)},
        {"dev_name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED,
         offsetof(struct create_blk_params, dev_name)},
        {"cpumask", VH_RPC_T_STRING, 0, offsetof(struct create_blk_params, cpumask)},
        {"transport", VH_RPC_T_STRING, 0, offsetof(struct create_blk_params, transport)},
        {"readonly", VH_RPC_T_BOOL, 0, offsetof(struct create_blk_params, readonly)},
        /* SPDK v23.05's rpc.py sends both on every call, false unless -p / -l is given. */
        {"packed_ring", VH_RPC_T_BOOL, 0, offsetof(struct create_blk_params, packed_ring)},
        {"packed_ring_recovery", VH_RPC_T_BOOL, 0,
         offsetof(struct create_blk_params, packed_ring_recovery)},
        /* vhostd extension: the queue count advertised to the front-end. */
        {"num_queues", VH_RPC_T_U16, 0, offsetof(struct create_blk_params, num_queues)},
};

/* Check what we can explain precisely before the vhost layer gives a bare -EINVAL. */
static int
precheck_blk(const struct create_blk_params *p, uint64_t *mask, struct vh_rpc_error *err)
{
	uint64_t reactors = vh_reactor_mask();
	struct vh_bdev *b;

	if (vh_name_check(p->ctrlr) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid ctrlr '%.64s': use 1-%d characters of [A-Za-z0-9_.:-]",
		                 p->ctrlr, VH_NAME_MAX - 1);
		return -EINVAL;
	}
	if (vh_vhost_find(p->ctrlr) != NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "name '%s' already exists", p->ctrlr);
		return -EEXIST;
	}
	b = vh_bdev_find(p->dev_name);
	if (b == NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found", p->dev_name);
		return -ENODEV;
	}
	if (vh_bdev_claimed_by(b) != NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%s' is in use by controller '%s'", p->dev_name,
		                 vh_bdev_claimed_by(b));
		return -EBUSY;
	}
	/* SPDK's default transport is the only one we have. */
	if (p->transport != NULL && strcmp(p->transport, "vhost_user_blk") != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "transport '%.32s' is not supported (only vhost_user_blk)",
		                 p->transport);
		return -EINVAL;
	}
	*mask = 0;
	if (p->cpumask != NULL) {
		if (vh_parse_cpumask(p->cpumask, mask) < 0) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "invalid cpumask '%.64s': use hex (\"0x3\") or a list "
			                 "(\"[0,2-3]\")",
			                 p->cpumask);
			return -EINVAL;
		}
		/* Before the reactors start (config replay) the mask is not known yet. */
		if (reactors != 0 && (*mask & ~reactors) != 0) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "cpumask '%s' is outside the reactor mask 0x%llx",
			                 p->cpumask, (unsigned long long)reactors);
			return -EINVAL;
		}
	}
	/* SPDK ignores it without packed_ring; a caller asking for it must learn it does nothing.
	 */
	if (p->packed_ring_recovery && !p->packed_ring) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "packed_ring_recovery needs packed_ring: split rings are always "
		                 "recovered");
		return -EINVAL;
	}
	if (p->num_queues > VH_VHOST_MAX_QUEUES) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "num_queues %u exceeds %d",
		                 p->num_queues, VH_VHOST_MAX_QUEUES);
		return -EINVAL;
	}
	return 0;
}

static void
create_error(int rc, const struct create_blk_params *p, struct vh_rpc_error *err)
{
	struct vh_bdev *b = vh_bdev_find(p->dev_name);
	const char *owner = b != NULL ? vh_bdev_claimed_by(b) : NULL;

	switch (rc) {
	case -EEXIST:
		if (vh_vhost_find(p->ctrlr) != NULL) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "name '%s' already exists",
			                 p->ctrlr);
		} else {
			vh_rpc_error_set(
			        err, VH_RPC_INVALID_PARAMS,
			        "socket path for controller '%s' exists and is not a socket",
			        p->ctrlr);
		}
		break;
	case -EADDRINUSE:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "socket path for controller '%s' is in use: a server is listening "
		                 "there",
		                 p->ctrlr);
		break;
	case -ENODEV:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%s' not found", p->dev_name);
		break;
	case -EBUSY:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%s' is in use by controller '%s'", p->dev_name,
		                 owner != NULL ? owner : "?");
		break;
	case -ENAMETOOLONG:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "socket path for controller '%s' is too long", p->ctrlr);
		break;
	case -EINVAL:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "invalid options for controller '%s'",
		                 p->ctrlr);
		break;
	default:
		vh_rpc_error_errno(err, rc, "cannot create controller");
		break;
	}
}

static json_t *
vhost_create_blk_controller(const json_t *params, struct vh_rpc_error *err)
{
	struct create_blk_params p = {0};
	struct vh_vhost_blk_opts opts = {0};
	int rc;

	if (vh_rpc_decode_params(params, create_blk_spec, VH_ARRAY_SIZE(create_blk_spec), &p, err) <
	    0) {
		return NULL;
	}
	if (precheck_blk(&p, &opts.cpumask, err) < 0) {
		return NULL;
	}
	opts.name = p.ctrlr;
	opts.bdev_name = p.dev_name;
	opts.readonly = p.readonly;
	opts.num_queues = p.num_queues;
	opts.packed_ring = p.packed_ring;
	opts.packed_ring_recovery = p.packed_ring_recovery;
	rc = vh_vhost_blk_create(&opts);
	if (rc < 0) {
		create_error(rc, &p, err);
		return NULL;
	}
	return json_true();
}

struct ctrlr_params {
	const char *ctrlr;
};

static const struct vh_rpc_param ctrlr_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct ctrlr_params, ctrlr)},
};

static json_t *
vhost_delete_controller(const json_t *params, struct vh_rpc_error *err)
{
	struct ctrlr_params p = {0};
	int rc;

	if (vh_rpc_decode_params(params, ctrlr_spec, VH_ARRAY_SIZE(ctrlr_spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_vhost_delete(p.ctrlr);
	if (rc == -ENODEV) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%.64s' not found",
		                 p.ctrlr);
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "cannot delete controller");
		return NULL;
	}
	return json_true();
}

static int
append_ctrlr(struct vh_vhost_ctrlr *c, void *arg)
{
	json_t *o = vh_vhost_ctrlr_info_json(c);

	if (o == NULL) {
		return -ENOMEM;
	}
	return json_array_append_new(arg, o) < 0 ? -ENOMEM : 0;
}

struct get_ctrlrs_params {
	const char *name;
};

static const struct vh_rpc_param get_ctrlrs_spec[] = {
        {"name", VH_RPC_T_STRING, 0, offsetof(struct get_ctrlrs_params, name)},
};

static json_t *
vhost_get_controllers(const json_t *params, struct vh_rpc_error *err)
{
	struct get_ctrlrs_params p = {0};
	json_t *arr;
	int rc;

	if (vh_rpc_decode_params(params, get_ctrlrs_spec, VH_ARRAY_SIZE(get_ctrlrs_spec), &p, err) <
	    0) {
		return NULL;
	}
	arr = json_array();
	if (arr == NULL) {
		return NULL;
	}
	if (p.name != NULL) {
		struct vh_vhost_ctrlr *c = vh_vhost_find(p.name);

		if (c == NULL) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%.64s' not found",
			                 p.name);
			json_decref(arr);
			return NULL;
		}
		rc = append_ctrlr(c, arr);
	} else {
		rc = vh_vhost_foreach(append_ctrlr, arr);
	}
	if (rc < 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* ---- vhost-user-scsi ---- */

struct create_scsi_params {
	const char *ctrlr;
	const char *cpumask;
	uint16_t num_queues;
};

static const struct vh_rpc_param create_scsi_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct create_scsi_params, ctrlr)},
        {"cpumask", VH_RPC_T_STRING, 0, offsetof(struct create_scsi_params, cpumask)},
        /* vhostd extension: all queues (control + event + request queues). */
        {"num_queues", VH_RPC_T_U16, 0, offsetof(struct create_scsi_params, num_queues)},
};

static json_t *
vhost_create_scsi_controller(const json_t *params, struct vh_rpc_error *err)
{
	struct create_scsi_params p = {0};
	struct vh_vhost_scsi_opts opts = {0};
	uint64_t reactors = vh_reactor_mask();
	int rc;

	if (vh_rpc_decode_params(params, create_scsi_spec, VH_ARRAY_SIZE(create_scsi_spec), &p,
	                         err) < 0) {
		return NULL;
	}
	if (vh_name_check(p.ctrlr) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid ctrlr '%.64s': use 1-%d characters of [A-Za-z0-9_.:-]",
		                 p.ctrlr, VH_NAME_MAX - 1);
		return NULL;
	}
	if (p.cpumask != NULL) {
		if (vh_parse_cpumask(p.cpumask, &opts.cpumask) < 0) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "invalid cpumask '%.64s': use hex (\"0x3\") or a list "
			                 "(\"[0,2-3]\")",
			                 p.cpumask);
			return NULL;
		}
		if (reactors != 0 && (opts.cpumask & ~reactors) != 0) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "cpumask '%s' is outside the reactor mask 0x%llx",
			                 p.cpumask, (unsigned long long)reactors);
			return NULL;
		}
	}
	if (p.num_queues != 0 && (p.num_queues < 3 || p.num_queues > VH_VHOST_MAX_QUEUES)) {
		vh_rpc_error_set(
		        err, VH_RPC_INVALID_PARAMS,
		        "num_queues %u out of range: 3 (control, event, one request queue) "
		        "to %d",
		        p.num_queues, VH_VHOST_MAX_QUEUES);
		return NULL;
	}
	opts.name = p.ctrlr;
	opts.num_queues = p.num_queues;
	rc = vh_vhost_scsi_create(&opts);
	if (rc == -EEXIST && vh_vhost_find(p.ctrlr) != NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "name '%s' already exists", p.ctrlr);
		return NULL;
	}
	if (rc < 0) {
		/* The blk paths word the socket errors (EEXIST, EADDRINUSE, ...) for us. */
		struct create_blk_params bp = {.ctrlr = p.ctrlr, .dev_name = ""};

		create_error(rc, &bp, err);
		return NULL;
	}
	return json_true();
}

/* A -errno from the scsi target functions, worded for the operator. */
static void
target_error(int rc, const char *ctrlr, int target, const char *bdev, struct vh_rpc_error *err)
{
	struct vh_bdev *b = bdev != NULL ? vh_bdev_find(bdev) : NULL;
	const char *owner = b != NULL ? vh_bdev_claimed_by(b) : NULL;

	switch (rc) {
	case -ENODEV:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "controller '%.64s' not found", ctrlr);
		break;
	case -ENOTTY:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "controller '%s' is not a scsi controller", ctrlr);
		break;
	case -EINVAL:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "scsi_target_num %d out of range (0..%d%s)", target,
		                 VH_VHOST_SCSI_MAX_TARGETS - 1,
		                 bdev != NULL ? ", or -1 for any" : "");
		break;
	case -EEXIST:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "%s: target %d is already in use",
		                 ctrlr, target);
		break;
	case -EBUSY:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%s' is in use by controller '%s'",
		                 bdev != NULL ? bdev : "?", owner != NULL ? owner : "?");
		break;
	case -EAGAIN:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "%s: target %d is still being removed (I/O in flight): try again",
		                 ctrlr, target);
		break;
	case -ENOSPC:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "%s: all %d targets are in use", ctrlr,
		                 VH_VHOST_SCSI_MAX_TARGETS);
		break;
	case -ENOENT:
		if (bdev != NULL) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found",
			                 bdev);
		} else {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "%s: no target %d", ctrlr,
			                 target);
		}
		break;
	default:
		vh_rpc_error_errno(err, rc, "scsi target operation failed");
		break;
	}
}

struct add_target_params {
	const char *ctrlr;
	int32_t scsi_target_num;
	const char *bdev_name;
};

static const struct vh_rpc_param add_target_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct add_target_params, ctrlr)},
        {"scsi_target_num", VH_RPC_T_I32, VH_RPC_P_REQUIRED,
         offsetof(struct add_target_params, scsi_target_num)},
        {"bdev_name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED,
         offsetof(struct add_target_params, bdev_name)},
};

static json_t *
vhost_scsi_controller_add_target(const json_t *params, struct vh_rpc_error *err)
{
	struct add_target_params p = {0};
	int rc;

	if (vh_rpc_decode_params(params, add_target_spec, VH_ARRAY_SIZE(add_target_spec), &p, err) <
	    0) {
		return NULL;
	}
	rc = vh_vhost_scsi_add_target(p.ctrlr, p.scsi_target_num, p.bdev_name);
	if (rc < 0) {
		target_error(rc, p.ctrlr, p.scsi_target_num, p.bdev_name, err);
		return NULL;
	}
	/* SPDK answers with the target number (the one picked for -1). */
	return json_integer(rc);
}

struct remove_target_params {
	const char *ctrlr;
	uint32_t scsi_target_num;
};

static const struct vh_rpc_param remove_target_spec[] = {
        {"ctrlr", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct remove_target_params, ctrlr)},
        {"scsi_target_num", VH_RPC_T_U32, VH_RPC_P_REQUIRED,
         offsetof(struct remove_target_params, scsi_target_num)},
};

static json_t *
vhost_scsi_controller_remove_target(const json_t *params, struct vh_rpc_error *err)
{
	struct remove_target_params p = {0};
	int rc;

	if (vh_rpc_decode_params(params, remove_target_spec, VH_ARRAY_SIZE(remove_target_spec), &p,
	                         err) < 0) {
		return NULL;
	}
	if (p.scsi_target_num >= VH_VHOST_SCSI_MAX_TARGETS) {
		target_error(-EINVAL, p.ctrlr, (int)VH_MIN(p.scsi_target_num, (uint32_t)INT32_MAX),
		             NULL, err);
		return NULL;
	}
	rc = vh_vhost_scsi_remove_target(p.ctrlr, p.scsi_target_num);
	if (rc == -EBUSY) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "%s: target %u is already being removed", p.ctrlr,
		                 p.scsi_target_num);
		return NULL;
	}
	if (rc < 0) {
		target_error(rc, p.ctrlr, (int)p.scsi_target_num, NULL, err);
		return NULL;
	}
	return json_true();
}

const struct vh_rpc_method vh_rpc_vhost_methods[] = {
        {"vhost_create_blk_controller", vhost_create_blk_controller, VH_RPC_F_PERSIST},
        {"vhost_delete_controller", vhost_delete_controller, VH_RPC_F_PERSIST},
        {"vhost_get_controllers", vhost_get_controllers, 0},
        {"vhost_create_scsi_controller", vhost_create_scsi_controller, VH_RPC_F_PERSIST},
        {"vhost_scsi_controller_add_target", vhost_scsi_controller_add_target, VH_RPC_F_PERSIST},
        {"vhost_scsi_controller_remove_target", vhost_scsi_controller_remove_target,
         VH_RPC_F_PERSIST},
        {"construct_vhost_blk_controller", vhost_create_blk_controller,
         VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"remove_vhost_controller", vhost_delete_controller, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"get_vhost_controllers", vhost_get_controllers, VH_RPC_F_ALIAS},
        /* Names SPDK used before v19.10. */
        {"construct_vhost_scsi_controller", vhost_create_scsi_controller,
         VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"add_vhost_scsi_lun", vhost_scsi_controller_add_target, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"remove_vhost_scsi_target", vhost_scsi_controller_remove_target,
         VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
};

const size_t vh_rpc_vhost_methods_count = VH_ARRAY_SIZE(vh_rpc_vhost_methods);
