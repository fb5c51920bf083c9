/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bdev methods, with SPDK's names and parameter names so SPDK's rpc.py works unchanged.
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
#include "bdev/bdev_module.h"
#include "rpc/rpc_internal.h"

/* The ram back-end registers under SPDK's module name so bdev_malloc_* maps onto it. */
#define MALLOC_MODULE "malloc"
#define NULL_MODULE   "null"

static int
check_name(const char *what, const char *name, struct vh_rpc_error *err)
{
	if (vh_name_check(name) < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid %s '%.64s': use 1-%d characters of [A-Za-z0-9_.:-]", what,
		                 name, VH_NAME_MAX - 1);
		return -EINVAL;
	}
	return 0;
}

/* Explain a failed delete: the messages operators see most. */
static void
delete_error(int rc, const char *name, const char *module, struct vh_rpc_error *err)
{
	struct vh_bdev *b = vh_bdev_find(name);
	const char *owner = b != NULL ? vh_bdev_claimed_by(b) : NULL;

	switch (rc) {
	case -ENODEV:
	case -ENOENT:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found", name);
		break;
	case -EBUSY:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%.64s' is in use by controller '%s'", name,
		                 owner != NULL ? owner : "?");
		break;
	case -EINVAL:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' is a %s bdev, not %s",
		                 name, b != NULL ? vh_bdev_module_name(b) : "different", module);
		break;
	default:
		vh_rpc_error_errno(err, rc, "delete failed");
		break;
	}
}

/*
 * Shared by the create methods: validate, then explain -errno from the back-end in the terms of
 * the request.
 */
static int
create_checks(const char *name, uint64_t num_blocks, uint32_t block_size, struct vh_rpc_error *err)
{
	uint64_t bytes;

	if (check_name("name", name, err) < 0) {
		return -EINVAL;
	}
	if (vh_bdev_find(name) != NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "name '%s' already exists", name);
		return -EEXIST;
	}
	if (block_size < 512 || !VH_IS_POW2(block_size)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "block_size %u must be a power of two >= 512", block_size);
		return -EINVAL;
	}
	if (num_blocks == 0 || VH_MUL_OVERFLOW(num_blocks, (uint64_t)block_size, &bytes)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "num_blocks %llu is out of range",
		                 (unsigned long long)num_blocks);
		return -EINVAL;
	}
	return 0;
}

static void
create_error(int rc, const char *name, uint64_t num_blocks, uint32_t block_size,
             struct vh_rpc_error *err)
{
	switch (rc) {
	case -EEXIST:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "name '%s' already exists", name);
		break;
	case -EINVAL:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid geometry for '%s': num_blocks %llu, block_size %u", name,
		                 (unsigned long long)num_blocks, block_size);
		break;
	case -ENOMEM:
		vh_rpc_error_set(err, VH_RPC_INTERNAL_ERROR,
		                 "out of memory creating '%s' (%llu x %u bytes)", name,
		                 (unsigned long long)num_blocks, block_size);
		break;
	default:
		vh_rpc_error_errno(err, rc, "create failed");
		break;
	}
}

struct create_params {
	const char *name;
	uint64_t num_blocks;
	uint32_t block_size;
	uint32_t physical_block_size;
	const char *uuid;
	bool read_zeroes; /* null only */
};

#define CREATE_PARAM(key, type, flags, member)                                                     \
	{                                                                                          \
		key, type, flags, offsetof(struct create_params, member), 0                        \
	}
/* Why SPDK's options for features we lack are accepted only at their defaults. */
#define WHY_MD  "vhostd bdevs have no per-block metadata (virtio-blk carries none)"
#define WHY_DIF "protection information (DIF/DIX) needs per-block metadata, which vhostd bdevs lack"
#define WHY_HINT                                                                                   \
	"vhostd reports no write or unmap alignment hints; the guest sees only the block size"

static const struct vh_rpc_param malloc_create_spec[] = {
        CREATE_PARAM("name", VH_RPC_T_STRING, 0, name),
        CREATE_PARAM("num_blocks", VH_RPC_T_U64, VH_RPC_P_REQUIRED, num_blocks),
        CREATE_PARAM("block_size", VH_RPC_T_U32, VH_RPC_P_REQUIRED, block_size),
        CREATE_PARAM("physical_block_size", VH_RPC_T_U32, 0, physical_block_size),
        CREATE_PARAM("uuid", VH_RPC_T_STRING, 0, uuid),
        VH_RPC_UNSUP_INT("optimal_io_boundary", 0, "vhostd does not split I/O at a boundary"),
        VH_RPC_UNSUP_INT("md_size", 0, WHY_MD),
        VH_RPC_UNSUP_BOOL("md_interleave", WHY_MD),
        VH_RPC_UNSUP_INT("dif_type", 0, WHY_DIF),
        VH_RPC_UNSUP_BOOL("dif_is_head_of_md", WHY_DIF),
        VH_RPC_UNSUP_INT("dif_pi_format", 0, WHY_DIF),
        VH_RPC_UNSUP_INT("numa_id", -1, "vhostd does not place bdev memory on a NUMA node"),
};

static const struct vh_rpc_param null_create_spec[] = {
        CREATE_PARAM("name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, name),
        CREATE_PARAM("num_blocks", VH_RPC_T_U64, VH_RPC_P_REQUIRED, num_blocks),
        CREATE_PARAM("block_size", VH_RPC_T_U32, VH_RPC_P_REQUIRED, block_size),
        CREATE_PARAM("physical_block_size", VH_RPC_T_U32, 0, physical_block_size),
        CREATE_PARAM("uuid", VH_RPC_T_STRING, 0, uuid),
        /* vhostd's (QEMU null-co's read-zeroes): SPDK's null bdev leaves reads untouched. */
        CREATE_PARAM("read_zeroes", VH_RPC_T_BOOL, 0, read_zeroes),
        VH_RPC_UNSUP_INT("md_size", 0, WHY_MD),
        VH_RPC_UNSUP_INT("dif_type", 0, WHY_DIF),
        VH_RPC_UNSUP_BOOL("dif_is_head_of_md", WHY_DIF),
        VH_RPC_UNSUP_INT("dif_pi_format", 0, WHY_DIF),
        VH_RPC_UNSUP_INT("preferred_write_alignment", 0, WHY_HINT),
        VH_RPC_UNSUP_INT("preferred_write_granularity", 0, WHY_HINT),
        VH_RPC_UNSUP_INT("optimal_write_size", 0, WHY_HINT),
        VH_RPC_UNSUP_INT("preferred_unmap_alignment", 0, WHY_HINT),
        VH_RPC_UNSUP_INT("preferred_unmap_granularity", 0, WHY_HINT),
};

/* SPDK names unnamed malloc bdevs Malloc0, Malloc1, ...: take the first free one. */
static int
auto_name(char *buf, size_t size)
{
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(buf, size, "Malloc%u", i);
		if (vh_bdev_find(buf) == NULL) {
			return 0;
		}
	}
	return -ENOSPC;
}

/* Decode, validate, create with @create_fn, then apply what the back-end does not take. */
static json_t *
create_common(const json_t *params, const struct vh_rpc_param *spec, size_t n,
              int (*create_fn)(const char *, uint64_t, uint32_t), struct vh_rpc_error *err)
{
	struct create_params p = {0};
	char namebuf[VH_NAME_MAX];
	struct vh_bdev *b;
	int rc;

	if (vh_rpc_decode_params(params, spec, n, &p, err) < 0) {
		return NULL;
	}
	if (p.name == NULL) {
		if (auto_name(namebuf, sizeof(namebuf)) < 0) {
			vh_rpc_error_set(err, VH_RPC_INTERNAL_ERROR, "no free Malloc name");
			return NULL;
		}
		p.name = namebuf;
	}
	if (p.uuid != NULL && !vh_uuid_valid(p.uuid)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "invalid uuid '%.64s'", p.uuid);
		return NULL;
	}
	if (create_checks(p.name, p.num_blocks, p.block_size, err) < 0) {
		return NULL;
	}
	if (p.physical_block_size != 0 && p.physical_block_size != p.block_size) {
		/* The guest is told one block size; a larger physical block has no carrier. */
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "physical_block_size %u is not supported: vhostd reports no "
		                 "physical block size to the guest, so it must equal block_size %u",
		                 p.physical_block_size, p.block_size);
		return NULL;
	}
	rc = create_fn(p.name, p.num_blocks, p.block_size);
	if (rc < 0) {
		create_error(rc, p.name, p.num_blocks, p.block_size, err);
		return NULL;
	}
	b = vh_bdev_find(p.name);
	if (p.uuid != NULL && b != NULL) {
		/* Nothing holds the bdev yet, so its identity can still be set (checked above). */
		vh_bdev_set_uuid(b, p.uuid);
	}
	if (p.read_zeroes && b != NULL) {
		/* Only null_create_spec decodes it; no channel is open yet, so this cannot fail. */
		vh_bdev_null_set_read_zeroes(b, true);
	}
	return json_string(p.name);
}

static json_t *
bdev_malloc_create(const json_t *params, struct vh_rpc_error *err)
{
	return create_common(params, malloc_create_spec, VH_ARRAY_SIZE(malloc_create_spec),
	                     vh_bdev_ram_create, err);
}

static json_t *
bdev_null_create(const json_t *params, struct vh_rpc_error *err)
{
	return create_common(params, null_create_spec, VH_ARRAY_SIZE(null_create_spec),
	                     vh_bdev_null_create, err);
}

struct name_params {
	const char *name;
};

static const struct vh_rpc_param name_spec[] = {
        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct name_params, name)},
};

static json_t *
delete_common(const json_t *params, const char *module, struct vh_rpc_error *err)
{
	struct name_params p = {0};
	int rc;

	if (vh_rpc_decode_params(params, name_spec, VH_ARRAY_SIZE(name_spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_bdev_delete(p.name, module);
	if (rc < 0) {
		delete_error(rc, p.name, module, err);
		return NULL;
	}
	return json_true();
}

static json_t *
bdev_malloc_delete(const json_t *params, struct vh_rpc_error *err)
{
	return delete_common(params, MALLOC_MODULE, err);
}

static json_t *
bdev_null_delete(const json_t *params, struct vh_rpc_error *err)
{
	return delete_common(params, NULL_MODULE, err);
}

/*
 * vhostd extension for crash-recovery tests: completions of this bdev are held for a random
 * 0..max_delay_us, so they come back out of order.
 */
struct test_delay_params {
	const char *name;
	uint32_t max_delay_us;
};

static json_t *
bdev_set_test_delay(const json_t *params, struct vh_rpc_error *err)
{
	static const struct vh_rpc_param spec[] = {
	        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED,
	         offsetof(struct test_delay_params, name), 0},
	        {"max_delay_us", VH_RPC_T_U32, VH_RPC_P_REQUIRED,
	         offsetof(struct test_delay_params, max_delay_us), 0},
	};
	struct test_delay_params p = {0};
	struct vh_bdev *b;

	if (vh_rpc_decode_params(params, spec, VH_ARRAY_SIZE(spec), &p, err) < 0) {
		return NULL;
	}
	if (p.max_delay_us > 1000000) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "max_delay_us must be at most 1000000");
		return NULL;
	}
	b = vh_bdev_find(p.name);
	if (b == NULL) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%s' not found", p.name);
		return NULL;
	}
	vh_bdev_set_test_delay(b, p.max_delay_us);
	return json_true();
}

static const char *
product_name(const struct vh_bdev *b)
{
	static const struct {
		const char *module;
		const char *product;
	} names[] = {
	        {MALLOC_MODULE, "Malloc disk"}, {NULL_MODULE, "Null disk"},
	        {"uring", "URING bdev"},        {"aio", "AIO disk"},
	        {"nvme", "NVMe disk"},          {"rbd", "Ceph Rbd Disk"},
	};
	const char *m = vh_bdev_module_name(b);

	for (size_t i = 0; i < VH_ARRAY_SIZE(names); i++) {
		if (strcmp(names[i].module, m) == 0) {
			return names[i].product;
		}
	}
	return m;
}

static json_t *
io_types_json(const struct vh_bdev *b)
{
	return json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}", "read",
	                 vh_bdev_io_type_supported(b, VH_BDEV_IO_READ), "write",
	                 vh_bdev_io_type_supported(b, VH_BDEV_IO_WRITE), "unmap",
	                 vh_bdev_io_type_supported(b, VH_BDEV_IO_DISCARD), "write_zeroes",
	                 vh_bdev_io_type_supported(b, VH_BDEV_IO_WRITE_ZEROES), "flush",
	                 vh_bdev_io_type_supported(b, VH_BDEV_IO_FLUSH), "reset", 0, "compare", 0,
	                 "compare_and_write", 0, "abort", 0, "nvme_admin", 0, "nvme_io", 0);
}

/* One bdev_get_bdevs entry, in SPDK's shape. */
static json_t *
bdev_info_json(struct vh_bdev *b)
{
	const char *owner = vh_bdev_claimed_by(b);
	json_t *driver = json_object();
	json_t *o;

	if (driver == NULL) {
		return NULL;
	}
	if (b->module != NULL && b->module->info_json != NULL) {
		b->module->info_json(b, driver);
	}
	o = json_pack("{s:s, s:[], s:s, s:I, s:I, s:s, s:o, s:b, s:b, s:o, s:o}", "name",
	              vh_bdev_name(b), "aliases", "product_name", product_name(b), "block_size",
	              (json_int_t)vh_bdev_block_size(b), "num_blocks",
	              (json_int_t)vh_bdev_num_blocks(b), "uuid", vh_bdev_uuid(b),
	              "assigned_rate_limits", vh_rpc_bdev_rate_limits_json(b), "claimed",
	              owner != NULL, "zoned", 0, "supported_io_types", io_types_json(b),
	              "driver_specific", driver);
	if (o != NULL && owner != NULL) {
		/* vhostd extension: who holds the claim (SPDK only says "claimed"). */
		json_object_set_new(o, "claimed_by", json_string(owner));
	}
	if (o != NULL) {
		json_object_set_new(o, "write_cache", json_boolean(vh_bdev_has_write_cache(b)));
	}
	return o;
}

static int
append_bdev(struct vh_bdev *b, void *arg)
{
	json_t *o = bdev_info_json(b);

	if (o == NULL) {
		return -ENOMEM;
	}
	return json_array_append_new(arg, o) < 0 ? -ENOMEM : 0;
}

struct get_bdevs_params {
	const char *name;
	uint32_t timeout;
};

static const struct vh_rpc_param get_bdevs_spec[] = {
        {"name", VH_RPC_T_STRING, 0, offsetof(struct get_bdevs_params, name)},
        /* rpc.py's -t: milliseconds to wait for the named bdev to appear. */
        {"timeout", VH_RPC_T_U32, 0, offsetof(struct get_bdevs_params, timeout)},
};

static json_t *
bdev_get_bdevs(const json_t *params, struct vh_rpc_error *err)
{
	struct get_bdevs_params p = {0};
	json_t *arr;
	int rc;

	if (vh_rpc_decode_params(params, get_bdevs_spec, VH_ARRAY_SIZE(get_bdevs_spec), &p, err) <
	    0) {
		return NULL;
	}
	arr = json_array();
	if (arr == NULL) {
		return NULL;
	}
	if (p.name != NULL) {
		struct vh_bdev *b = vh_bdev_find(p.name);

		if (b == NULL) {
			json_decref(arr);
			/* Another client may create it: run again after its requests. */
			if (vh_rpc_wait(p.timeout, err)) {
				return NULL;
			}
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found",
			                 p.name);
			return NULL;
		}
		rc = append_bdev(b, arr);
	} else {
		rc = vh_bdev_foreach(append_bdev, arr);
	}
	if (rc < 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* SPDK scripts call this after creating bdevs; there is no examine step here. */
static json_t *
bdev_wait_for_examine(const json_t *params, struct vh_rpc_error *err)
{
	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	return json_true();
}

const struct vh_rpc_method vh_rpc_bdev_methods[] = {
        {"bdev_malloc_create", bdev_malloc_create, VH_RPC_F_PERSIST},
        {"bdev_malloc_delete", bdev_malloc_delete, VH_RPC_F_PERSIST},
        {"bdev_null_create", bdev_null_create, VH_RPC_F_PERSIST},
        {"bdev_null_delete", bdev_null_delete, VH_RPC_F_PERSIST},
        {"bdev_set_test_delay", bdev_set_test_delay, 0},
        {"bdev_get_bdevs", bdev_get_bdevs, 0},
        {"bdev_wait_for_examine", bdev_wait_for_examine, 0},
        /* Names SPDK used before v20.x; old scripts still send them. */
        {"construct_malloc_bdev", bdev_malloc_create, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"delete_malloc_bdev", bdev_malloc_delete, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"construct_null_bdev", bdev_null_create, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"delete_null_bdev", bdev_null_delete, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"get_bdevs", bdev_get_bdevs, VH_RPC_F_ALIAS},
};

const size_t vh_rpc_bdev_methods_count = VH_ARRAY_SIZE(vh_rpc_bdev_methods);
