/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/rpc/methods_rbd.c against the rbd double (stubs_rbd.c): SPDK's parameter names and
 * types, config maps (strings, numbers and booleans as text, null as empty, nothing nested),
 * results in SPDK's shape, and save_config with the clusters ahead of the bdevs. The real
 * back-end against a real cluster is tests/func/rbd.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vh_config.h"

#include "rpc/rpc_internal.h"
#include "stubs.h"

#if VH_HAVE_RBD
#include "stubs_rbd.h"

static json_t *
call(const char *method, const char *params, struct vh_rpc_error *err)
{
	json_t *p = params != NULL ? json_loads(params, 0, NULL) : NULL;
	json_t *r;

	assert_true(params == NULL || p != NULL);
	memset(err, 0, sizeof(*err));
	r = vh_rpc_call(method, p, err);
	json_decref(p);
	return r;
}

static void
call_err(const char *method, const char *params, int code, const char *needle)
{
	struct vh_rpc_error err;
	json_t *r = call(method, params, &err);

	if (r != NULL) {
		json_decref(r);
		fail_msg("%s %s succeeded", method, params);
	}
	assert_int_equal(err.code, code);
	if (strstr(err.msg, needle) == NULL) {
		fail_msg("%s: '%s' lacks '%s'", method, err.msg, needle);
	}
}

static int
reset(void **state)
{
	stub_reset();
	stub_rbd_reset();
	return 0;
}

static void
test_register_cluster(void **state)
{
	struct vh_rpc_error err;
	json_t *r;

	r = call("bdev_rbd_register_cluster",
	         "{\"name\": \"c1\", \"user_id\": \"admin\", \"config_param\": {\"mon_host\": "
	         "\"127.0.0.1\", \"rados_osd_op_timeout\": 5, \"rbd_cache\": false}}",
	         &err);
	assert_non_null(r);
	assert_string_equal(json_string_value(r), "c1");
	json_decref(r);
	assert_true(g_stub_rbd.kv_present);
	assert_int_equal(g_stub_rbd.nkv, 6);
	/* Object order is not guaranteed: find each key. */
	for (unsigned i = 0; i < g_stub_rbd.nkv; i += 2) {
		const char *k = g_stub_rbd.kv[i], *v = g_stub_rbd.kv[i + 1];

		if (strcmp(k, "rados_osd_op_timeout") == 0) {
			assert_string_equal(v, "5");
		} else if (strcmp(k, "rbd_cache") == 0) {
			assert_string_equal(v, "false");
		} else {
			assert_string_equal(k, "mon_host");
			assert_string_equal(v, "127.0.0.1");
		}
	}
	assert_string_equal(g_stub_rbd.user_id, "admin");
	call_err("bdev_rbd_register_cluster", "{\"name\": \"c1\"}", VH_RPC_INVALID_PARAMS,
	         "already registered");
	call_err("bdev_rbd_register_cluster", "{\"config_file\": \"/x\"}", VH_RPC_INVALID_PARAMS,
	         "missing parameter 'name'");
	call_err("bdev_rbd_register_cluster", "{\"name\": \"c2\", \"config_param\": {\"a\": {}}}",
	         VH_RPC_INVALID_PARAMS, "must have a string value");
	call_err("bdev_rbd_register_cluster", "{\"name\": \"c2\", \"config_param\": [1]}",
	         VH_RPC_INVALID_PARAMS, "must be an object");
	call_err("bdev_rbd_register_cluster", "{\"name\": \"c2\", \"secret\": \"x\"}",
	         VH_RPC_INVALID_PARAMS, "unknown parameter 'secret'");
	/* null is SPDK's empty map. */
	r = call("bdev_rbd_register_cluster", "{\"name\": \"c3\", \"config_param\": null}", &err);
	assert_non_null(r);
	json_decref(r);
	assert_true(g_stub_rbd.kv_present);
	assert_int_equal(g_stub_rbd.nkv, 0);
}

static void
test_clusters_info_unregister(void **state)
{
	struct vh_rpc_error err;
	json_t *r;

	r = call("bdev_rbd_get_clusters_info", NULL, &err);
	assert_non_null(r);
	assert_int_equal(json_array_size(r), 0);
	json_decref(r);
	json_decref(call("bdev_rbd_register_cluster", "{\"name\": \"c1\"}", &err));
	r = call("bdev_rbd_get_clusters_info", "{\"name\": \"c1\"}", &err);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "cluster_name")), "c1");
	json_decref(r);
	call_err("bdev_rbd_get_clusters_info", "{\"name\": \"no\"}", VH_RPC_INVALID_PARAMS,
	         "not found");
	r = call("bdev_rbd_unregister_cluster", "{\"name\": \"c1\"}", &err);
	assert_true(json_is_true(r));
	json_decref(r);
	call_err("bdev_rbd_unregister_cluster", "{\"name\": \"c1\"}", VH_RPC_INVALID_PARAMS,
	         "not found");
}

static void
test_create(void **state)
{
	struct vh_rpc_error err;
	json_t *r;

	/* SPDK's required three; the name comes back. */
	r = call("bdev_rbd_create",
	         "{\"pool_name\": \"rbd\", \"rbd_name\": \"img\", \"block_size\": 4096, "
	         "\"config\": {\"mon_host\": \"h\"}, \"read_only\": true}",
	         &err);
	assert_non_null(r);
	assert_string_equal(json_string_value(r), "Ceph0");
	json_decref(r);
	assert_int_equal(g_stub_rbd.last_block_size, 4096);
	assert_true(g_stub_rbd.last_read_only);
	assert_int_equal(g_stub_rbd.nkv, 2);
	call_err("bdev_rbd_create", "{\"pool_name\": \"rbd\", \"block_size\": 512}",
	         VH_RPC_INVALID_PARAMS, "missing parameter 'rbd_name'");
	call_err("bdev_rbd_create",
	         "{\"pool_name\": \"rbd\", \"rbd_name\": \"i\", \"block_size\": \"512\"}",
	         VH_RPC_INVALID_PARAMS, "'block_size' must be");
	call_err("bdev_rbd_create",
	         "{\"pool_name\": \"rbd\", \"rbd_name\": \"i\", \"block_size\": 512, "
	         "\"cluster_name\": \"none\"}",
	         VH_RPC_INVALID_PARAMS, "not registered");
	g_stub_rbd.create_rc = -ETIMEDOUT;
	call_err("bdev_rbd_create",
	         "{\"pool_name\": \"rbd\", \"rbd_name\": \"i\", \"block_size\": 512}",
	         VH_RPC_INTERNAL_ERROR, "stubbed failure");
	/* The old name still works. */
	g_stub_rbd.create_rc = 0;
	r = call("construct_rbd_bdev",
	         "{\"name\": \"R\", \"pool_name\": \"rbd\", \"rbd_name\": \"i\", \"block_size\": "
	         "512}",
	         &err);
	assert_string_equal(json_string_value(r), "R");
	json_decref(r);
}

static void
test_resize_delete(void **state)
{
	call_err("bdev_rbd_resize", "{\"name\": \"R\", \"new_size\": 64}", VH_RPC_INVALID_PARAMS,
	         "not found");
	assert_int_equal(g_stub_rbd.last_new_size, 64);
	call_err("bdev_rbd_resize", "{\"name\": \"R\", \"new_size\": -1}", VH_RPC_INVALID_PARAMS,
	         "out of range");
	call_err("bdev_rbd_resize", "{\"name\": \"R\"}", VH_RPC_INVALID_PARAMS,
	         "missing parameter 'new_size'");
	call_err("bdev_rbd_delete", "{\"name\": \"R\"}", VH_RPC_INVALID_PARAMS, "not found");
}

static void
test_save_config_order(void **state)
{
	struct vh_rpc_error err;
	json_t *cfg, *bdevs, *first;

	json_decref(call("bdev_rbd_register_cluster", "{\"name\": \"c1\"}", &err));
	json_decref(call("bdev_malloc_create",
	                 "{\"name\":\"M\",\"num_blocks\":64,\"block_size\":512}", &err));
	cfg = call("save_config", NULL, &err);
	assert_non_null(cfg);
	bdevs = json_object_get(json_array_get(json_object_get(cfg, "subsystems"), 0), "config");
	assert_int_equal(json_array_size(bdevs), 2);
	first = json_array_get(bdevs, 0);
	/* A cluster must exist before any bdev that names it is replayed. */
	assert_string_equal(json_string_value(json_object_get(first, "method")),
	                    "bdev_rbd_register_cluster");
	json_decref(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_register_cluster, reset, reset),
	        cmocka_unit_test_setup_teardown(test_clusters_info_unregister, reset, reset),
	        cmocka_unit_test_setup_teardown(test_create, reset, reset),
	        cmocka_unit_test_setup_teardown(test_resize_delete, reset, reset),
	        cmocka_unit_test_setup_teardown(test_save_config_order, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int
main(void)
{
	return 77; /* built without librbd: no rbd methods to test */
}
#endif
