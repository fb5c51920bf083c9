/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/rpc/methods_vfu.c against stubbed bdev, vhost and vfio-user layers: parameter checks,
 * error messages that name the problem, and the save_config entries that recreate controllers
 * and namespaces in order.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/rpc_internal.h"
#include "stubs.h"

void stub_vfu_reset(void);

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

static json_t *
call_ok(const char *method, const char *params)
{
	struct vh_rpc_error err;
	json_t *r = call(method, params, &err);

	if (r == NULL) {
		fail_msg("%s %s failed: %s", method, params ? params : "", err.msg);
	}
	return r;
}

static void
call_err(const char *method, const char *params, const char *msg)
{
	struct vh_rpc_error err;
	json_t *r = call(method, params, &err);

	if (r != NULL) {
		json_decref(r);
		fail_msg("%s %s succeeded", method, params);
	}
	assert_int_equal(err.code, VH_RPC_INVALID_PARAMS);
	if (strstr(err.msg, msg) == NULL) {
		fail_msg("%s: message '%s' lacks '%s'", method, err.msg, msg);
	}
}

static int
reset(void **state)
{
	stub_reset();
	stub_vfu_reset();
	return 0;
}

static void
test_create_delete(void **state)
{
	json_t *r;

	json_decref(call_ok("vfu_create_nvme_controller", "{\"ctrlr\":\"nvme0\"}"));
	call_err("vfu_create_nvme_controller", "{\"ctrlr\":\"nvme0\"}", "already exists");
	call_err("vfu_create_nvme_controller", "{\"ctrlr\":\"a/b\"}", "invalid ctrlr");
	call_err("vfu_create_nvme_controller", "{\"ctrlr\":\"x\",\"num_io_queues\":65}",
	         "num_io_queues 65 exceeds 64");
	call_err("vfu_create_nvme_controller", "{\"ctrlr\":\"x\",\"cpumask\":\"zz\"}",
	         "invalid cpumask");
	call_err("vfu_create_nvme_controller", "{\"ctrlr\":\"x\",\"queues\":2}",
	         "unknown parameter 'queues'");
	/* Names are shared with vhost-user controllers: both are sockets in one directory. */
	json_decref(call_ok("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":8,"
	                                          "\"block_size\":512}"));
	json_decref(
	        call_ok("vhost_create_blk_controller", "{\"ctrlr\":\"vh\",\"dev_name\":\"M\"}"));
	call_err("vfu_create_nvme_controller", "{\"ctrlr\":\"vh\"}", "already exists");

	r = call_ok("vfu_get_controllers", NULL);
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "ctrlr")),
	                    "nvme0");
	json_decref(r);
	call_err("vfu_get_controllers", "{\"name\":\"nope\"}", "controller 'nope' not found");
	json_decref(call_ok("vfu_delete_controller", "{\"ctrlr\":\"nvme0\"}"));
	call_err("vfu_delete_controller", "{\"ctrlr\":\"nvme0\"}", "controller 'nvme0' not found");
}

static void
test_namespaces(void **state)
{
	json_t *r;

	json_decref(call_ok("bdev_malloc_create", "{\"name\":\"A\",\"num_blocks\":8,"
	                                          "\"block_size\":512}"));
	json_decref(call_ok("bdev_malloc_create", "{\"name\":\"B\",\"num_blocks\":8,"
	                                          "\"block_size\":4096}"));
	json_decref(call_ok("vfu_create_nvme_controller", "{\"ctrlr\":\"c\"}"));
	r = call_ok("vfu_controller_add_ns", "{\"ctrlr\":\"c\",\"bdev_name\":\"A\"}");
	assert_int_equal(json_integer_value(r), 1); /* the lowest free NSID */
	json_decref(r);
	call_err("vfu_controller_add_ns", "{\"ctrlr\":\"c\",\"bdev_name\":\"A\"}",
	         "bdev 'A' is in use by 'c'");
	call_err("vfu_controller_add_ns", "{\"ctrlr\":\"c\",\"bdev_name\":\"B\",\"nsid\":1}",
	         "nsid 1 is in use");
	call_err("vfu_controller_add_ns", "{\"ctrlr\":\"c\",\"bdev_name\":\"B\",\"nsid\":33}",
	         "out of range");
	call_err("vfu_controller_add_ns", "{\"ctrlr\":\"c\",\"bdev_name\":\"Z\"}",
	         "bdev 'Z' not found");
	call_err("vfu_controller_add_ns", "{\"ctrlr\":\"d\",\"bdev_name\":\"B\"}",
	         "controller 'd' not found");
	r = call_ok("vfu_controller_add_ns", "{\"ctrlr\":\"c\",\"bdev_name\":\"B\",\"nsid\":7}");
	assert_int_equal(json_integer_value(r), 7);
	json_decref(r);

	/* save_config: the controller first, then its namespaces, in a subsystem of their own. */
	r = call_ok("framework_get_config", "{\"name\":\"vfio_user\"}");
	assert_int_equal(json_array_size(r), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "method")),
	                    "vfu_create_nvme_controller");
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 2), "method")),
	                    "vfu_controller_add_ns");
	assert_int_equal(json_integer_value(json_object_get(
	                         json_object_get(json_array_get(r, 2), "params"), "nsid")),
	                 7);
	json_decref(r);

	call_err("vfu_controller_remove_ns", "{\"ctrlr\":\"c\",\"nsid\":2}", "has no namespace 2");
	call_err("vfu_controller_remove_ns", "{\"ctrlr\":\"c\"}", "missing parameter 'nsid'");
	json_decref(call_ok("vfu_controller_remove_ns", "{\"ctrlr\":\"c\",\"nsid\":1}"));
	/* The bdev is free again. */
	json_decref(call_ok("vfu_controller_add_ns", "{\"ctrlr\":\"c\",\"bdev_name\":\"A\"}"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_create_delete, reset, reset),
	        cmocka_unit_test_setup_teardown(test_namespaces, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
