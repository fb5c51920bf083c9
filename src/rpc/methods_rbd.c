/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ceph RBD methods with SPDK's names and parameters (SPDK v23.05 python/spdk/rpc/bdev.py, plus
 * read_only from later SPDK): bdev_rbd_register_cluster, bdev_rbd_unregister_cluster,
 * bdev_rbd_get_clusters_info, bdev_rbd_create, bdev_rbd_delete, bdev_rbd_resize.
 *
 * Each may wait for the cluster on a helper thread, never longer than vh_bdev_rbd_wait_ms()
 * (bdev_rbd.h): a cluster that does not answer costs the control thread that much, once, and
 * the method fails with "timed out". Telling the guest about a new size is the vhost layer's
 * job, so the resize callback is installed here (bdev must not depend on vhost).
 *
 * Built without librbd, the table is empty: the methods are unknown (-32601), as in an SPDK
 * built without rbd.
 *
 * Threat model: any local process that can reach the RPC socket (0600 by default). Parameters
 * are decoded against a spec (types, ranges, unknown keys refused); config maps must be objects
 * of scalar values; names must be safe as file names. Paths (config_file, key_file) and Ceph
 * options are handed to librados, which validates them, as the daemon's user.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vh_config.h"

#include "core/log.h"
#include "rpc/rpc_internal.h"

#if VH_HAVE_RBD

#include "bdev/bdev.h"
#include "bdev/bdev_rbd.h"
#include "vhost/vhost.h"

#define RBD_MAX_CONFIG 128 /* keys in one config map */

/* A decoded config map: key, value, ..., NULL; values point into @strs or into the request. */
struct config_map {
	const char *kv[2 * RBD_MAX_CONFIG + 1];
	char *owned[RBD_MAX_CONFIG]; /* values we formatted (numbers, booleans) */
	unsigned nowned;
	bool present;
};

static void
config_map_free(struct config_map *m)
{
	for (unsigned i = 0; i < m->nowned; i++) {
		free(m->owned[i]);
	}
	m->nowned = 0;
}

/*
 * @v: SPDK's map of Ceph options to values. Strings as they are; numbers and booleans become
 * their text (Ceph parses every option from text), null an empty map, as SPDK. 0 or -EINVAL.
 */
static int
config_map_decode(const char *key, const json_t *v, struct config_map *m, struct vh_rpc_error *err)
{
	const char *k;
	json_t *val;
	size_t n = 0;

	m->present = true;
	if (json_is_null(v)) {
		m->kv[0] = NULL;
		return 0;
	}
	if (!json_is_object(v)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "parameter '%s' must be an object of Ceph options", key);
		return -EINVAL;
	}
	if (json_object_size(v) > RBD_MAX_CONFIG) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "parameter '%s' has more than %d keys",
		                 key, RBD_MAX_CONFIG);
		return -EINVAL;
	}
	json_object_foreach((json_t *)v, k, val)
	{
		char buf[64];
		const char *s = NULL;

		if (json_is_string(val)) {
			s = json_string_value(val);
			if (strlen(s) != json_string_length(val)) {
				s = NULL; /* an embedded NUL would cut the value short */
			}
		} else if (json_is_integer(val)) {
			snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(val));
			s = buf;
		} else if (json_is_boolean(val)) {
			s = json_is_true(val) ? "true" : "false";
		}
		if (s == NULL || k[0] == '\0') {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "parameter '%s': '%.64s' must have a string value", key,
			                 k);
			config_map_free(m);
			return -EINVAL;
		}
		if (s == buf) {
			m->owned[m->nowned] = strdup(buf);
			if (m->owned[m->nowned] == NULL) {
				config_map_free(m);
				vh_rpc_error_set(err, VH_RPC_INTERNAL_ERROR, "out of memory");
				return -ENOMEM;
			}
			s = m->owned[m->nowned++];
		}
		m->kv[n++] = k;
		m->kv[n++] = s;
	}
	m->kv[n] = NULL;
	return 0;
}

/*
 * Decode @params with @spec, except the object-valued key @map_key, which goes to @m. The
 * strings stay owned by @params.
 */
static int
decode_with_map(const json_t *params, const struct vh_rpc_param *spec, size_t n, void *out,
                const char *map_key, struct config_map *m, struct vh_rpc_error *err)
{
	const json_t *map =
	        params != NULL && json_is_object(params) ? json_object_get(params, map_key) : NULL;
	json_t *rest;
	int rc;

	m->present = false;
	m->nowned = 0;
	if (map == NULL) {
		return vh_rpc_decode_params(params, spec, n, out, err);
	}
	rest = json_copy((json_t *)params); /* shallow: values are shared, and live in params */
	if (rest == NULL) {
		vh_rpc_error_set(err, VH_RPC_INTERNAL_ERROR, "out of memory");
		return -ENOMEM;
	}
	json_object_del(rest, map_key);
	rc = vh_rpc_decode_params(rest, spec, n, out, err);
	json_decref(rest);
	if (rc < 0) {
		return rc;
	}
	return config_map_decode(map_key, map, m, err);
}

/* The rbd layer's -errno and text, in JSON-RPC terms. */
static void
rbd_error(struct vh_rpc_error *err, int rc, const char *text)
{
	int code;

	switch (rc) {
	case -EINVAL:
	case -ENOENT:
	case -ENODEV:
	case -EEXIST:
	case -EBUSY:
	case -ERANGE:
		code = VH_RPC_INVALID_PARAMS;
		break;
	default:
		code = VH_RPC_INTERNAL_ERROR;
		break;
	}
	vh_rpc_error_set(err, code, "%s", text[0] != '\0' ? text : strerror(-rc));
}

static void
rbd_resized(struct vh_bdev *b)
{
	int told = vh_vhost_bdev_resized(b);

	VH_INFO("rpc", "bdev '%s' resized to %llu blocks, %d controller(s) notified",
	        vh_bdev_name(b), (unsigned long long)vh_bdev_num_blocks(b), told);
}

struct cluster_params {
	const char *name;
	const char *user_id;
	const char *config_file;
	const char *key_file;
	const char *core_mask;
};

#define CL_PARAM(key, flags, member)                                                               \
	{                                                                                          \
		key, VH_RPC_T_STRING, flags, offsetof(struct cluster_params, member), 0            \
	}

static const struct vh_rpc_param register_cluster_spec[] = {
        CL_PARAM("name", VH_RPC_P_REQUIRED, name), CL_PARAM("user_id", 0, user_id),
        CL_PARAM("config_file", 0, config_file),   CL_PARAM("key_file", 0, key_file),
        CL_PARAM("core_mask", 0, core_mask),
        /* config_param: an object, decoded apart. */
};

static json_t *
bdev_rbd_register_cluster(const json_t *params, struct vh_rpc_error *err)
{
	struct cluster_params p = {0};
	struct vh_rbd_cluster_opts o;
	struct config_map m;
	char why[256];
	int rc;

	if (decode_with_map(params, register_cluster_spec, VH_ARRAY_SIZE(register_cluster_spec), &p,
	                    "config_param", &m, err) < 0) {
		return NULL;
	}
	o.name = p.name;
	o.user_id = p.user_id;
	o.config_param = m.present ? m.kv : NULL;
	o.config_file = p.config_file;
	o.key_file = p.key_file;
	o.core_mask = p.core_mask;
	rc = vh_bdev_rbd_register_cluster(&o, why, sizeof(why));
	config_map_free(&m);
	if (rc < 0) {
		rbd_error(err, rc, why);
		return NULL;
	}
	return json_string(p.name);
}

struct name_params {
	const char *name;
};

static const struct vh_rpc_param name_spec[] = {
        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct name_params, name), 0},
};

static const struct vh_rpc_param opt_name_spec[] = {
        {"name", VH_RPC_T_STRING, 0, offsetof(struct name_params, name), 0},
};

static json_t *
bdev_rbd_unregister_cluster(const json_t *params, struct vh_rpc_error *err)
{
	struct name_params p = {0};
	int rc;

	if (vh_rpc_decode_params(params, name_spec, VH_ARRAY_SIZE(name_spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_bdev_rbd_unregister_cluster(p.name);
	if (rc == -ENOENT) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "cluster '%.64s' not found", p.name);
		return NULL;
	}
	if (rc == -EBUSY) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "cluster '%.64s' is used by rbd bdevs: delete them first", p.name);
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "unregister failed");
		return NULL;
	}
	return json_true();
}

static json_t *
bdev_rbd_get_clusters_info(const json_t *params, struct vh_rpc_error *err)
{
	struct name_params p = {0};
	json_t *out = NULL;
	int rc;

	if (vh_rpc_decode_params(params, opt_name_spec, VH_ARRAY_SIZE(opt_name_spec), &p, err) <
	    0) {
		return NULL;
	}
	rc = vh_bdev_rbd_clusters_info(p.name, &out);
	if (rc == -ENOENT) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "cluster '%.64s' not found", p.name);
		return NULL;
	}
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "cannot list clusters");
		return NULL;
	}
	return out;
}

struct create_params {
	const char *name;
	const char *user_id;
	const char *pool_name;
	const char *rbd_name;
	uint32_t block_size;
	const char *cluster_name;
	const char *uuid;
	bool read_only;
};

#define CR_PARAM(key, type, flags, member)                                                         \
	{                                                                                          \
		key, type, flags, offsetof(struct create_params, member), 0                        \
	}

static const struct vh_rpc_param create_spec[] = {
        CR_PARAM("name", VH_RPC_T_STRING, 0, name),
        CR_PARAM("user_id", VH_RPC_T_STRING, 0, user_id),
        CR_PARAM("pool_name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, pool_name),
        CR_PARAM("rbd_name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, rbd_name),
        CR_PARAM("block_size", VH_RPC_T_U32, VH_RPC_P_REQUIRED, block_size),
        CR_PARAM("cluster_name", VH_RPC_T_STRING, 0, cluster_name),
        CR_PARAM("uuid", VH_RPC_T_STRING, 0, uuid),
        CR_PARAM("read_only", VH_RPC_T_BOOL, 0, read_only),
        /* config: an object, decoded apart. */
};

static json_t *
bdev_rbd_create(const json_t *params, struct vh_rpc_error *err)
{
	struct create_params p = {0};
	struct vh_rbd_bdev_opts o;
	char name[VH_NAME_MAX], why[256];
	struct config_map m;
	int rc;

	if (decode_with_map(params, create_spec, VH_ARRAY_SIZE(create_spec), &p, "config", &m,
	                    err) < 0) {
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	o.name = p.name;
	o.pool_name = p.pool_name;
	o.rbd_name = p.rbd_name;
	o.block_size = p.block_size;
	o.cluster_name = p.cluster_name;
	o.user_id = p.user_id;
	o.config = m.present ? m.kv : NULL;
	o.uuid = p.uuid;
	o.read_only = p.read_only;
	vh_bdev_rbd_set_resize_cb(rbd_resized);
	rc = vh_bdev_rbd_create(&o, name, sizeof(name), why, sizeof(why));
	config_map_free(&m);
	if (rc < 0) {
		rbd_error(err, rc, why);
		return NULL;
	}
	/* SPDK returns the bdev's name (the generated one when none was given). */
	return json_string(name);
}

static json_t *
bdev_rbd_delete(const json_t *params, struct vh_rpc_error *err)
{
	struct name_params p = {0};
	struct vh_bdev *b;
	int rc;

	if (vh_rpc_decode_params(params, name_spec, VH_ARRAY_SIZE(name_spec), &p, err) < 0) {
		return NULL;
	}
	rc = vh_bdev_rbd_delete(p.name);
	if (rc == 0) {
		return json_true();
	}
	b = vh_bdev_find(p.name);
	switch (rc) {
	case -ENODEV:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' not found", p.name);
		break;
	case -EBUSY:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "bdev '%.64s' is in use by controller '%s'", p.name,
		                 b != NULL && vh_bdev_claimed_by(b) ? vh_bdev_claimed_by(b) : "?");
		break;
	case -EINVAL:
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "bdev '%.64s' is a %s bdev, not rbd",
		                 p.name, b != NULL ? vh_bdev_module_name(b) : "different");
		break;
	default:
		vh_rpc_error_errno(err, rc, "delete failed");
		break;
	}
	return NULL;
}

struct resize_params {
	const char *name;
	uint64_t new_size;
};

static const struct vh_rpc_param resize_spec[] = {
        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct resize_params, name), 0},
        /* MiB, as SPDK. */
        {"new_size", VH_RPC_T_U64, VH_RPC_P_REQUIRED, offsetof(struct resize_params, new_size), 0},
};

static json_t *
bdev_rbd_resize(const json_t *params, struct vh_rpc_error *err)
{
	struct resize_params p = {0};
	char why[256];
	int rc;

	if (vh_rpc_decode_params(params, resize_spec, VH_ARRAY_SIZE(resize_spec), &p, err) < 0) {
		return NULL;
	}
	vh_bdev_rbd_set_resize_cb(rbd_resized);
	rc = vh_bdev_rbd_resize(p.name, p.new_size, why, sizeof(why));
	if (rc < 0) {
		rbd_error(err, rc, why);
		return NULL;
	}
	return json_true();
}

int
vh_rpc_rbd_config(json_t *config)
{
	return vh_bdev_rbd_clusters_config(config);
}

const struct vh_rpc_method vh_rpc_rbd_methods[] = {
        {"bdev_rbd_register_cluster", bdev_rbd_register_cluster, VH_RPC_F_PERSIST},
        {"bdev_rbd_unregister_cluster", bdev_rbd_unregister_cluster, VH_RPC_F_PERSIST},
        {"bdev_rbd_get_clusters_info", bdev_rbd_get_clusters_info, 0},
        {"bdev_rbd_create", bdev_rbd_create, VH_RPC_F_PERSIST},
        {"bdev_rbd_delete", bdev_rbd_delete, VH_RPC_F_PERSIST},
        /* The size lives in the image, not in the saved configuration. */
        {"bdev_rbd_resize", bdev_rbd_resize, 0},
        /* Names SPDK used before v20.x; old scripts still send them. */
        {"construct_rbd_bdev", bdev_rbd_create, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
        {"delete_rbd_bdev", bdev_rbd_delete, VH_RPC_F_ALIAS | VH_RPC_F_PERSIST},
};

const size_t vh_rpc_rbd_methods_count = VH_ARRAY_SIZE(vh_rpc_rbd_methods);

#else /* !VH_HAVE_RBD */

int
vh_rpc_rbd_config(json_t *config)
{
	(void)config;
	return 0;
}

const struct vh_rpc_method vh_rpc_rbd_methods[] = {{NULL, NULL, 0}};
const size_t vh_rpc_rbd_methods_count = 0;

#endif
