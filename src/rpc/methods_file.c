/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * File and block-device bdev methods (uring and aio back-ends), with SPDK's names and parameter
 * names: bdev_uring_create/delete/rescan, bdev_aio_create/delete/rescan.
 *
 * Rescan lives here rather than in the bdev layer because telling the guest about a new size
 * is the vhost layer's job (vh_vhost_bdev_resized), and bdev must not depend on vhost.
 *
 * Threat model: any local process that can reach the RPC socket (0600 by default). Every
 * parameter is decoded against a spec (JSON types, integer ranges, unknown keys refused) before
 * a handler sees it; names must be safe as file names; paths are opened only as the daemon's
 * user and reported back only as error text.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bdev/bdev.h"
#include "bdev/bdev_file.h"
#include "bdev/bdev_module.h"
#include "core/log.h"
#include "rpc/rpc_internal.h"
#include "vhost/vhost.h"

struct file_create_params {
	const char *name;
	const char *filename;
	uint32_t block_size;
	const char *uuid;
	bool inline_io;
};

#define FC_PARAM(key, type, flags, member)                                                         \
	{                                                                                          \
		key, type, flags, offsetof(struct file_create_params, member), 0                   \
	}

static const struct vh_rpc_param uring_create_spec[] = {
        FC_PARAM("name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, name),
        FC_PARAM("filename", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, filename),
        FC_PARAM("block_size", VH_RPC_T_U32, 0, block_size),
        FC_PARAM("uuid", VH_RPC_T_STRING, 0, uuid),
        /* vhostd's: copy inline on tmpfs/ramfs (default true). */
        FC_PARAM("inline_io", VH_RPC_T_BOOL, 0, inline_io),
};

static const struct vh_rpc_param aio_create_spec[] = {
        FC_PARAM("name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, name),
        FC_PARAM("filename", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, filename),
        FC_PARAM("block_size", VH_RPC_T_U32, 0, block_size),
        FC_PARAM("uuid", VH_RPC_T_STRING, 0, uuid),
        FC_PARAM("inline_io", VH_RPC_T_BOOL, 0, inline_io),
        /* SPDK options, accepted at their defaults only (rpc.py sends them only when set). */
        VH_RPC_UNSUP_BOOL("readonly",
                          "file bdevs are always opened read-write; export it read-only with "
                          "vhost_create_blk_controller's readonly instead"),
        VH_RPC_UNSUP_BOOL("fallocate", "vhostd does not preallocate files"),
};

typedef int (*file_create_fn)(const char *name, const char *filename,
                              const struct vh_bdev_file_opts *o, char *err, size_t errlen);

static json_t *
file_create(const json_t *params, const struct vh_rpc_param *spec, size_t n, file_create_fn fn,
            struct vh_rpc_error *err)
{
	struct file_create_params p = {.inline_io = true};
	struct vh_bdev_file_opts o;
	char why[256];
	struct vh_bdev *b;
	int rc;

	if (vh_rpc_decode_params(params, spec, n, &p, err) < 0) {
		return NULL;
	}
	if (vh_name_check(p.name) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid name '%.64s': use 1-%d characters of [A-Za-z0-9_.:-]",
		                 p.name, VH_NAME_MAX - 1);
		return NULL;
	}
	if (p.uuid != NULL && !vh_uuid_valid(p.uuid)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "invalid uuid '%.64s'", p.uuid);
		return NULL;
	}
	o.block_size = p.block_size;
	o.inline_io = p.inline_io;
	rc = fn(p.name, p.filename, &o, why, sizeof(why));
	if (rc < 0) {
		/* Resource exhaustion is ours; anything about the path or geometry is the caller's.
		 */
		int code = (rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE)
		                   ? VH_RPC_INTERNAL_ERROR
		                   : VH_RPC_INVALID_PARAMS;

		vh_rpc_error_set(err, code, "%s", why[0] != '\0' ? why : strerror(-rc));
		return NULL;
	}
	b = vh_bdev_find(p.name);
	if (p.uuid != NULL && b != NULL) {
		/* Nothing holds the bdev yet, so its identity can still be set (checked above). */
		vh_bdev_set_uuid(b, p.uuid);
	}
	return json_string(p.name);
}

static json_t *
bdev_uring_create(const json_t *params, struct vh_rpc_error *err)
{
	return file_create(params, uring_create_spec, VH_ARRAY_SIZE(uring_create_spec),
	                   vh_bdev_uring_create_ex, err);
}

static json_t *
bdev_aio_create(const json_t *params, struct vh_rpc_error *err)
{
	return file_create(params, aio_create_spec, VH_ARRAY_SIZE(aio_create_spec),
	                   vh_bdev_aio_create_ex, err);
}

struct name_params {
	const char *name;
};

static const struct vh_rpc_param name_spec[] = {
        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct name_params, name), 0},
};

static json_t *
file_delete(const json_t *params, const char *module, struct vh_rpc_error *err)
{
	struct name_params p = {0};
	struct vh_bdev *b;
	const char *owner;
	int rc;

	if (vh_rpc_decode_params(params, name_spec, VH_ARRAY_SIZE(name_spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_bdev_delete(p.name, module);
	if (rc == 0) {
		return json_true();
	}
	b = vh_bdev_find(p.name);
	owner = b != NULL ? vh_bdev_claimed_by(b) : NULL;
	switch (rc) {
	case -ENODEV:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found", p.name);
		break;
	case -EBUSY:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%.64s' is in use by controller '%s'", p.name,
		                 owner != NULL ? owner : "?");
		break;
	case -EINVAL:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' is a %s bdev, not %s",
		                 p.name, b != NULL ? vh_bdev_module_name(b) : "different", module);
		break;
	default:
		vh_rpc_error_errno(err, rc, "delete failed");
		break;
	}
	return NULL;
}

static json_t *
bdev_uring_delete(const json_t *params, struct vh_rpc_error *err)
{
	return file_delete(params, "uring", err);
}

static json_t *
bdev_aio_delete(const json_t *params, struct vh_rpc_error *err)
{
	return file_delete(params, "aio", err);
}

static json_t *
file_rescan(const json_t *params, const char *module, struct vh_rpc_error *err)
{
	struct name_params p = {0};
	struct vh_bdev *b;
	int rc;

	if (vh_rpc_decode_params(params, name_spec, VH_ARRAY_SIZE(name_spec), &p, err) < 0) {
		return NULL;
	}
	b = vh_bdev_find(p.name);
	if (b == NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found", p.name);
		return NULL;
	}
	if (strcmp(vh_bdev_module_name(b), module) != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' is a %s bdev, not %s",
		                 p.name, vh_bdev_module_name(b), module);
		return NULL;
	}
	rc = vh_bdev_file_rescan(p.name);
	if (rc == -EBUSY) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%.64s' shrank while in use by controller '%s': refused",
		                 p.name, vh_bdev_claimed_by(b) ? vh_bdev_claimed_by(b) : "?");
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "rescan failed");
		return NULL;
	}
	if (rc > 0) {
		int told = vh_vhost_bdev_resized(b);

		VH_INFO("rpc", "bdev '%s' resized to %llu blocks, %d controller(s) notified",
		        p.name, (unsigned long long)vh_bdev_num_blocks(b), told);
	}
	return json_true();
}

static json_t *
bdev_uring_rescan(const json_t *params, struct vh_rpc_error *err)
{
	return file_rescan(params, "uring", err);
}

static json_t *
bdev_aio_rescan(const json_t *params, struct vh_rpc_error *err)
{
	return file_rescan(params, "aio", err);
}

const struct vh_rpc_method vh_rpc_file_methods[] = {
        {"bdev_uring_create", bdev_uring_create, VH_RPC_F_PERSIST},
        {"bdev_uring_delete", bdev_uring_delete, VH_RPC_F_PERSIST},
        /* The size is not part of the saved configuration: rescan changes nothing to save. */
        {"bdev_uring_rescan", bdev_uring_rescan, 0},
        {"bdev_aio_create", bdev_aio_create, VH_RPC_F_PERSIST},
        {"bdev_aio_delete", bdev_aio_delete, VH_RPC_F_PERSIST},
        {"bdev_aio_rescan", bdev_aio_rescan, 0},
        /* Names SPDK used before v20.x; old scripts still send them. */
        {"construct_aio_bdev", bdev_aio_create, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"delete_aio_bdev", bdev_aio_delete, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
};

const size_t vh_rpc_file_methods_count = VH_ARRAY_SIZE(vh_rpc_file_methods);
