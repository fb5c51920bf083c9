/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/rpc/methods_*.c against the stubbed bdev and vhost layers: results in SPDK's shape and
 * error messages that name the problem.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "stubs.h"

static json_t *
call_ok(const char *method, const char *params)
{
	struct vh_rpc_error err = {0};
	json_t *p = params != NULL ? json_loads(params, 0, NULL) : NULL;
	json_t *r;

	assert_true(params == NULL || p != NULL);
	r = vh_rpc_call(method, p, &err);
	if (r == NULL) {
		fail_msg("%s %s failed: %s (%d)", method, params ? params : "", err.msg, err.code);
	}
	json_decref(p);
	return r;
}

static void
call_ok_drop(const char *method, const char *params)
{
	json_decref(call_ok(method, params));
}

static void
call_err(const char *method, const char *params, int code, const char *msg)
{
	struct vh_rpc_error err = {0};
	json_t *p = params != NULL ? json_loads(params, 0, NULL) : NULL;
	json_t *r;

	assert_true(params == NULL || p != NULL);
	r = vh_rpc_call(method, p, &err);
	json_decref(p);
	if (r != NULL) {
		json_decref(r);
		fail_msg("%s %s succeeded", method, params ? params : "");
	}
	assert_int_equal(err.code, code);
	if (strstr(err.msg, msg) == NULL) {
		fail_msg("%s: message '%s' lacks '%s'", method, err.msg, msg);
	}
}

static int
reset(void **state)
{
	stub_reset();
	return 0;
}

static void
test_malloc_create(void **state)
{
	json_t *r;

	r = call_ok("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":64,\"block_size\":512}");
	assert_string_equal(json_string_value(r), "M");
	json_decref(r);
	/* SPDK's auto names. */
	r = call_ok("bdev_malloc_create", "{\"num_blocks\":64,\"block_size\":4096}");
	assert_string_equal(json_string_value(r), "Malloc0");
	json_decref(r);
	r = call_ok("bdev_malloc_create", "{\"num_blocks\":64,\"block_size\":4096}");
	assert_string_equal(json_string_value(r), "Malloc1");
	json_decref(r);
	r = call_ok("bdev_malloc_create", "{\"name\":\"U\",\"num_blocks\":1,\"block_size\":512,"
	                                  "\"uuid\":\"0123ABCD-0000-4000-8000-00000000000F\"}");
	json_decref(r);
	r = call_ok("bdev_get_bdevs", "{\"name\":\"U\"}");
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "uuid")),
	                    "0123abcd-0000-4000-8000-00000000000f");
	json_decref(r);
	/* What SPDK's rpc.py sends: unsupported options at their defaults. */
	r = call_ok("bdev_malloc_create", "{\"num_blocks\":8,\"block_size\":512,\"name\":\"R\","
	                                  "\"md_interleave\":false,\"dif_is_head_of_md\":false}");
	json_decref(r);
	r = call_ok("bdev_null_create", "{\"num_blocks\":8,\"block_size\":512,\"name\":\"RN\","
	                                "\"dif_is_head_of_md\":false,\"physical_block_size\":512}");
	json_decref(r);
	call_err("bdev_malloc_create", "{\"num_blocks\":8,\"block_size\":512,\"md_size\":8}",
	         VH_RPC_INVALID_PARAMS, "'md_size' is not supported");
	call_err("bdev_null_create",
	         "{\"name\":\"P\",\"num_blocks\":8,\"block_size\":512,"
	         "\"physical_block_size\":4096}",
	         VH_RPC_INVALID_PARAMS, "physical_block_size 4096");
	/* Reads left untouched unless read_zeroes asks for zeroes (vhostd's option). */
	assert_false(stub_null_read_zeroes("RN"));
	r = call_ok("bdev_null_create",
	            "{\"num_blocks\":8,\"block_size\":512,\"name\":\"Z\",\"read_zeroes\":true}");
	json_decref(r);
	assert_true(stub_null_read_zeroes("Z"));
	call_err("bdev_null_create",
	         "{\"name\":\"Q\",\"num_blocks\":8,\"block_size\":512,\"read_zeroes\":1}",
	         VH_RPC_INVALID_PARAMS, "read_zeroes");
	call_err("bdev_malloc_create",
	         "{\"name\":\"Q\",\"num_blocks\":8,\"block_size\":512,\"read_zeroes\":true}",
	         VH_RPC_INVALID_PARAMS, "read_zeroes");
	assert_int_equal(stub_bdev_count(), 7);
}

static void
test_malloc_create_errors(void **state)
{
	call_ok_drop("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":8,\"block_size\":512}");
	call_err("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":8,\"block_size\":512}",
	         VH_RPC_INVALID_PARAMS, "name 'M' already exists");
	call_err("bdev_malloc_create", "{\"name\":\"N\",\"block_size\":512}", VH_RPC_INVALID_PARAMS,
	         "missing parameter 'num_blocks'");
	call_err("bdev_malloc_create", "{\"num_blocks\":8,\"block_size\":512,\"foo\":1}",
	         VH_RPC_INVALID_PARAMS, "unknown parameter 'foo'");
	call_err("bdev_malloc_create", "{\"num_blocks\":\"8\",\"block_size\":512}",
	         VH_RPC_INVALID_PARAMS, "parameter 'num_blocks' must be a non-negative integer");
	call_err("bdev_malloc_create", "{\"name\":\"a/b\",\"num_blocks\":8,\"block_size\":512}",
	         VH_RPC_INVALID_PARAMS, "invalid name 'a/b'");
	call_err("bdev_malloc_create", "{\"name\":\"N\",\"num_blocks\":8,\"block_size\":1000}",
	         VH_RPC_INVALID_PARAMS, "block_size 1000");
	call_err("bdev_malloc_create", "{\"name\":\"N\",\"num_blocks\":0,\"block_size\":512}",
	         VH_RPC_INVALID_PARAMS, "num_blocks 0");
	call_err("bdev_malloc_create",
	         "{\"name\":\"N\",\"num_blocks\":9223372036854775807,\"block_size\":4096}",
	         VH_RPC_INVALID_PARAMS, "out of range");
	call_err("bdev_malloc_create",
	         "{\"name\":\"N\",\"num_blocks\":8,\"block_size\":512,\"uuid\":\"nope\"}",
	         VH_RPC_INVALID_PARAMS, "invalid uuid 'nope'");
	assert_int_equal(stub_bdev_count(), 1);
}

static void
test_delete(void **state)
{
	call_ok_drop("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":8,\"block_size\":512}");
	call_ok_drop("bdev_null_create", "{\"name\":\"N\",\"num_blocks\":8,\"block_size\":512}");
	call_err("bdev_malloc_delete", "{\"name\":\"X\"}", VH_RPC_INVALID_PARAMS,
	         "bdev 'X' not found");
	call_err("bdev_malloc_delete", "{\"name\":\"N\"}", VH_RPC_INVALID_PARAMS,
	         "bdev 'N' is a null bdev, not malloc");
	call_err("bdev_null_delete", "{}", VH_RPC_INVALID_PARAMS, "missing parameter 'name'");
	call_ok_drop("vhost_create_blk_controller", "{\"ctrlr\":\"vhost.0\",\"dev_name\":\"M\"}");
	call_err("bdev_malloc_delete", "{\"name\":\"M\"}", VH_RPC_INVALID_PARAMS,
	         "bdev 'M' is in use by controller 'vhost.0'");
	call_ok_drop("vhost_delete_controller", "{\"ctrlr\":\"vhost.0\"}");
	call_ok_drop("bdev_malloc_delete", "{\"name\":\"M\"}");
	call_ok_drop("bdev_null_delete", "{\"name\":\"N\"}");
	assert_int_equal(stub_bdev_count(), 0);
}

static void
test_get_bdevs(void **state)
{
	json_t *r, *b;

	call_ok_drop("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":8,\"block_size\":512}");
	call_ok_drop("bdev_null_create", "{\"name\":\"N\",\"num_blocks\":9,\"block_size\":4096}");
	call_ok_drop("vhost_create_blk_controller", "{\"ctrlr\":\"c0\",\"dev_name\":\"N\"}");
	r = call_ok("bdev_get_bdevs", NULL);
	assert_int_equal(json_array_size(r), 2);
	b = json_array_get(r, 0);
	assert_string_equal(json_string_value(json_object_get(b, "name")), "M");
	assert_string_equal(json_string_value(json_object_get(b, "product_name")), "Malloc disk");
	assert_int_equal(json_integer_value(json_object_get(b, "num_blocks")), 8);
	assert_int_equal(json_integer_value(json_object_get(b, "block_size")), 512);
	assert_true(json_is_false(json_object_get(b, "claimed")));
	assert_true(json_is_array(json_object_get(b, "aliases")));
	assert_true(
	        json_is_true(json_object_get(json_object_get(b, "supported_io_types"), "read")));
	assert_true(
	        json_is_false(json_object_get(json_object_get(b, "supported_io_types"), "reset")));
	assert_true(json_is_true(json_object_get(json_object_get(b, "driver_specific"), "fake")));
	b = json_array_get(r, 1);
	assert_string_equal(json_string_value(json_object_get(b, "product_name")), "Null disk");
	assert_true(json_is_true(json_object_get(b, "claimed")));
	assert_string_equal(json_string_value(json_object_get(b, "claimed_by")), "c0");
	json_decref(r);
	r = call_ok("bdev_get_bdevs", "{\"name\":\"N\",\"timeout\":5}");
	assert_int_equal(json_array_size(r), 1);
	json_decref(r);
	call_err("bdev_get_bdevs", "{\"name\":\"Z\"}", VH_RPC_INVALID_PARAMS, "bdev 'Z' not found");
	/* The old SPDK name still answers. */
	r = call_ok("get_bdevs", NULL);
	assert_int_equal(json_array_size(r), 2);
	json_decref(r);
}

static void
test_vhost_create(void **state)
{
	json_t *r;

	call_ok_drop("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":8,\"block_size\":512}");
	call_ok_drop("bdev_malloc_create", "{\"name\":\"M2\",\"num_blocks\":8,\"block_size\":512}");
	call_err("vhost_create_blk_controller", "{\"ctrlr\":\"c0\",\"dev_name\":\"Malloc9\"}",
	         VH_RPC_INVALID_PARAMS, "bdev 'Malloc9' not found");
	call_err("vhost_create_blk_controller",
	         "{\"ctrlr\":\"c0\",\"dev_name\":\"M\",\"cpumask\":\"zz\"}", VH_RPC_INVALID_PARAMS,
	         "invalid cpumask 'zz'");
	call_err("vhost_create_blk_controller", "{\"ctrlr\":\"c 0\",\"dev_name\":\"M\"}",
	         VH_RPC_INVALID_PARAMS, "invalid ctrlr 'c 0'");
	call_err("vhost_create_blk_controller",
	         "{\"ctrlr\":\"c0\",\"dev_name\":\"M\",\"transport\":\"vfio_user_virtio_blk\"}",
	         VH_RPC_INVALID_PARAMS, "transport 'vfio_user_virtio_blk' is not supported");
	call_err("vhost_create_blk_controller", "{\"ctrlr\":\"c0\"}", VH_RPC_INVALID_PARAMS,
	         "missing parameter 'dev_name'");
	call_err("vhost_create_blk_controller",
	         "{\"ctrlr\":\"c0\",\"dev_name\":\"M\",\"readonly\":\"yes\"}",
	         VH_RPC_INVALID_PARAMS, "parameter 'readonly' must be a boolean");
	call_err("vhost_create_blk_controller",
	         "{\"ctrlr\":\"c0\",\"dev_name\":\"M\",\"packed_ring\":1}", VH_RPC_INVALID_PARAMS,
	         "parameter 'packed_ring' must be a boolean");
	/* SPDK ignores it without packed_ring: refused here, so nobody believes it does something.
	 */
	call_err("vhost_create_blk_controller",
	         "{\"ctrlr\":\"c0\",\"dev_name\":\"M\",\"packed_ring\":false,"
	         "\"packed_ring_recovery\":true}",
	         VH_RPC_INVALID_PARAMS, "packed_ring_recovery needs packed_ring");
	stub_fail_next_vhost_create(-ENAMETOOLONG);
	call_err("vhost_create_blk_controller", "{\"ctrlr\":\"c0\",\"dev_name\":\"M\"}",
	         VH_RPC_INVALID_PARAMS, "socket path for controller 'c0' is too long");
	stub_fail_next_vhost_create(-EIO);
	call_err("vhost_create_blk_controller", "{\"ctrlr\":\"c0\",\"dev_name\":\"M\"}",
	         VH_RPC_INTERNAL_ERROR, "cannot create controller");
	r = call_ok("vhost_create_blk_controller", "{\"ctrlr\":\"c0\",\"dev_name\":\"M\","
	                                           "\"cpumask\":\"[0]\",\"readonly\":true}");
	assert_true(json_is_true(r));
	json_decref(r);
	call_err("vhost_create_blk_controller", "{\"ctrlr\":\"c0\",\"dev_name\":\"M2\"}",
	         VH_RPC_INVALID_PARAMS, "name 'c0' already exists");
	call_err("vhost_create_blk_controller", "{\"ctrlr\":\"c1\",\"dev_name\":\"M\"}",
	         VH_RPC_INVALID_PARAMS, "bdev 'M' is in use by controller 'c0'");
	r = call_ok("vhost_get_controllers", NULL);
	assert_int_equal(json_array_size(r), 1);
	json_decref(r);
	r = call_ok("vhost_get_controllers", "{\"name\":\"c0\"}");
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "ctrlr")),
	                    "c0");
	json_decref(r);
	call_err("vhost_get_controllers", "{\"name\":\"c9\"}", VH_RPC_INVALID_PARAMS,
	         "controller 'c9' not found");
	call_err("vhost_delete_controller", "{\"ctrlr\":\"c9\"}", VH_RPC_INVALID_PARAMS,
	         "controller 'c9' not found");
	/* Packed rings, as SPDK's rpc.py -p -l sends them. */
	call_ok_drop("vhost_create_blk_controller",
	             "{\"ctrlr\":\"p0\",\"dev_name\":\"M2\",\"packed_ring\":true,"
	             "\"packed_ring_recovery\":true}");
	assert_int_equal(stub_ctrlr_count(), 2);
	call_ok_drop("vhost_delete_controller", "{\"ctrlr\":\"p0\"}");
	call_ok_drop("vhost_delete_controller", "{\"ctrlr\":\"c0\"}");
	assert_int_equal(stub_ctrlr_count(), 0);
}

/* SPDK's attach/detach options: PCIe ones are checked, NVMe-oF ones refused with the reason. */
static void
test_nvme_params(void **state)
{
	const char *base = "\"name\":\"Nvme0\",\"trtype\":\"PCIe\",\"traddr\":\"0000:00:04.0\"";
	char buf[256];

	/* Accepted: the stub then has no device, so the error comes from the attach itself. */
	snprintf(buf, sizeof(buf),
	         "{%s,\"multipath\":\"failover\",\"max_bdevs\":4,"
	         "\"ctrlr_loss_timeout_sec\":0,\"prchk_guard\":false}",
	         base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS, "attach: ");
	snprintf(buf, sizeof(buf), "{%s,\"subnqn\":\"nqn.2016-06.io.spdk:cnode1\"}", base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS,
	         "parameter 'subnqn' is not supported: it applies to NVMe-oF transports");
	snprintf(buf, sizeof(buf), "{%s,\"priority\":\"1\"}", base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS,
	         "parameter 'priority' is not supported");
	snprintf(buf, sizeof(buf), "{%s,\"hdgst\":true}", base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS,
	         "parameter 'hdgst' is not supported");
	snprintf(buf, sizeof(buf), "{%s,\"prchk_reftag\":true}", base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS,
	         "parameter 'prchk_reftag' is not supported: end-to-end protection");
	snprintf(buf, sizeof(buf), "{%s,\"ctrlr_loss_timeout_sec\":-1}", base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS,
	         "parameter 'ctrlr_loss_timeout_sec' is not supported: the reconnect policy");
	snprintf(buf, sizeof(buf), "{%s,\"multipath\":\"sometimes\"}", base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS,
	         "multipath 'sometimes': expected disable, failover or multipath");
	snprintf(buf, sizeof(buf), "{%s,\"max_bdevs\":0}", base);
	call_err("bdev_nvme_attach_controller", buf, VH_RPC_INVALID_PARAMS,
	         "max_bdevs cannot be zero");
	call_err("bdev_nvme_attach_controller",
	         "{\"name\":\"N\",\"trtype\":\"tcp\",\"traddr\":\"127.0.0.1\"}",
	         VH_RPC_INVALID_PARAMS, "trtype 'tcp' is not supported (only PCIe)");
	call_err("bdev_nvme_detach_controller", "{\"name\":\"Nvme0\",\"trtype\":\"RDMA\"}",
	         VH_RPC_INVALID_PARAMS, "NVMe controller 'Nvme0' has no RDMA path (it is PCIe)");
	call_err("bdev_nvme_detach_controller",
	         "{\"name\":\"Nvme0\",\"trtype\":\"pcie\",\"traddr\":\"00:04.0\"}",
	         VH_RPC_INVALID_PARAMS, "NVMe controller 'Nvme0' not found");
	call_err("bdev_nvme_detach_controller", "{\"name\":\"Nvme0\",\"trsvcid\":\"4420\"}",
	         VH_RPC_INVALID_PARAMS, "parameter 'trsvcid' is not supported");
}

static bool
array_has(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
	{
		if (strcmp(json_string_value(v), s) == 0) {
			return true;
		}
	}
	return false;
}

static void
test_app_methods(void **state)
{
	json_t *r;

	r = call_ok("rpc_get_methods", NULL);
	assert_true(array_has(r, "bdev_malloc_create"));
	assert_true(array_has(r, "vhost_get_controllers"));
	assert_true(array_has(r, "log_set_level"));
	assert_false(array_has(r, "get_bdevs"));
	json_decref(r);
	r = call_ok("rpc_get_methods", "{\"include_aliases\":true,\"current\":true}");
	assert_true(array_has(r, "get_bdevs"));
	json_decref(r);
	call_err("rpc_get_methods", "{\"x\":1}", VH_RPC_INVALID_PARAMS, "unknown parameter 'x'");

	vh_version_set("1.2.3-rc4");
	r = call_ok("spdk_get_version", NULL);
	assert_string_equal(json_string_value(json_object_get(r, "version")), "vhostd 1.2.3-rc4");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "fields"), "patch")),
	                 3);
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(r, "fields"), "suffix")), "-rc4");
	assert_true(json_is_integer(json_object_get(json_object_get(r, "fields"), "major")));
	assert_true(json_is_string(json_object_get(json_object_get(r, "fields"), "suffix")));
	json_decref(r);

	r = call_ok("framework_get_subsystems", NULL);
	assert_int_equal(json_array_size(r), 4); /* bdev, vhost_blk, vhost_scsi, vfio_user */
	json_decref(r);
	r = call_ok("framework_get_config", "{\"name\":\"vhost_blk\",\"with_batches\":false}");
	assert_true(json_is_array(r));
	json_decref(r);
	call_err("framework_get_config", "{\"name\":\"iscsi\"}", VH_RPC_INVALID_PARAMS,
	         "subsystem 'iscsi' not found");

	call_ok_drop("log_set_level", "{\"level\":\"WARNING\"}");
	assert_int_equal(vh_log_get_level(), VH_LOG_WARN);
	call_ok_drop("vhostd_set_log_level", "{\"level\":\"debug\"}");
	assert_int_equal(vh_log_get_level(), VH_LOG_DEBUG);
	r = call_ok("log_get_level", NULL);
	assert_string_equal(json_string_value(r), "DEBUG");
	json_decref(r);
	call_err("log_set_level", "{\"level\":\"loud\"}", VH_RPC_INVALID_PARAMS,
	         "invalid level 'loud'");
	vh_log_set_level(VH_LOG_ERROR);
}

/* The scsi controller methods: SPDK's parameters, -1 picks a number, errors say what. */
static void
test_scsi_methods(void **state)
{
	json_t *r;

	call_ok_drop("bdev_malloc_create", "{\"name\":\"M0\",\"num_blocks\":8,\"block_size\":512}");
	call_ok_drop("bdev_malloc_create", "{\"name\":\"M1\",\"num_blocks\":8,\"block_size\":512}");
	call_ok_drop("bdev_malloc_create", "{\"name\":\"M2\",\"num_blocks\":8,\"block_size\":512}");
	call_ok_drop("vhost_create_blk_controller", "{\"ctrlr\":\"b0\",\"dev_name\":\"M2\"}");
	r = call_ok("vhost_create_scsi_controller", "{\"ctrlr\":\"s0\",\"cpumask\":\"0x1\"}");
	assert_true(json_is_true(r));
	json_decref(r);
	call_err("vhost_create_scsi_controller", "{\"ctrlr\":\"s0\"}", VH_RPC_INVALID_PARAMS,
	         "already exists");
	call_err("vhost_create_scsi_controller", "{\"ctrlr\":\"s/1\"}", VH_RPC_INVALID_PARAMS,
	         "invalid ctrlr");
	call_err("vhost_create_scsi_controller", "{\"ctrlr\":\"s1\",\"num_queues\":2}",
	         VH_RPC_INVALID_PARAMS, "num_queues 2 out of range");
	call_err("vhost_create_scsi_controller", "{\"ctrlr\":\"s1\",\"cpumask\":\"zz\"}",
	         VH_RPC_INVALID_PARAMS, "invalid cpumask");

	/* -1 picks the lowest free number; the result is the number. */
	r = call_ok("vhost_scsi_controller_add_target",
	            "{\"ctrlr\":\"s0\",\"scsi_target_num\":-1,\"bdev_name\":\"M0\"}");
	assert_int_equal(json_integer_value(r), 0);
	json_decref(r);
	r = call_ok("vhost_scsi_controller_add_target",
	            "{\"ctrlr\":\"s0\",\"scsi_target_num\":5,\"bdev_name\":\"M1\"}");
	assert_int_equal(json_integer_value(r), 5);
	json_decref(r);
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":5,\"bdev_name\":\"M9\"}",
	         VH_RPC_INVALID_PARAMS, "target 5 is already in use");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":1,\"bdev_name\":\"M9\"}",
	         VH_RPC_INVALID_PARAMS, "bdev 'M9' not found");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":1,\"bdev_name\":\"M2\"}",
	         VH_RPC_INVALID_PARAMS, "in use by controller 'b0'");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":256,\"bdev_name\":\"M2\"}",
	         VH_RPC_INVALID_PARAMS, "out of range (0..255, or -1 for any)");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":-2,\"bdev_name\":\"M2\"}",
	         VH_RPC_INVALID_PARAMS, "out of range");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":4294967296,\"bdev_name\":\"M2\"}",
	         VH_RPC_INVALID_PARAMS, "out of range (32-bit integer)");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":\"1\",\"bdev_name\":\"M2\"}",
	         VH_RPC_INVALID_PARAMS, "must be an integer");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"b0\",\"scsi_target_num\":1,\"bdev_name\":\"M9\"}",
	         VH_RPC_INVALID_PARAMS, "'b0' is not a scsi controller");
	call_err("vhost_scsi_controller_add_target",
	         "{\"ctrlr\":\"zz\",\"scsi_target_num\":1,\"bdev_name\":\"M9\"}",
	         VH_RPC_INVALID_PARAMS, "controller 'zz' not found");
	call_err("vhost_scsi_controller_add_target", "{\"ctrlr\":\"s0\",\"bdev_name\":\"M2\"}",
	         VH_RPC_INVALID_PARAMS, "scsi_target_num");

	/* vhost_get_controllers in SPDK's shape. */
	r = call_ok("vhost_get_controllers", "{\"name\":\"s0\"}");
	{
		json_t *scsi = json_object_get(
		        json_object_get(json_array_get(r, 0), "backend_specific"), "scsi");

		assert_int_equal(json_array_size(scsi), 2);
		assert_int_equal(json_integer_value(
		                         json_object_get(json_array_get(scsi, 1), "scsi_dev_num")),
		                 5);
	}
	json_decref(r);

	call_err("vhost_scsi_controller_remove_target", "{\"ctrlr\":\"s0\",\"scsi_target_num\":3}",
	         VH_RPC_INVALID_PARAMS, "no target 3");
	call_err("vhost_scsi_controller_remove_target", "{\"ctrlr\":\"s0\",\"scsi_target_num\":-1}",
	         VH_RPC_INVALID_PARAMS, "out of range");
	call_err("vhost_scsi_controller_remove_target",
	         "{\"ctrlr\":\"s0\",\"scsi_target_num\":300}", VH_RPC_INVALID_PARAMS,
	         "300 out of range (0..255)");
	call_err("vhost_scsi_controller_remove_target", "{\"ctrlr\":\"b0\",\"scsi_target_num\":0}",
	         VH_RPC_INVALID_PARAMS, "not a scsi controller");
	r = call_ok("vhost_scsi_controller_remove_target",
	            "{\"ctrlr\":\"s0\",\"scsi_target_num\":0}");
	assert_true(json_is_true(r));
	json_decref(r);
	/* The number is free again, and the old SPDK names still work. */
	r = call_ok("add_vhost_scsi_lun",
	            "{\"ctrlr\":\"s0\",\"scsi_target_num\":-1,\"bdev_name\":\"M0\"}");
	assert_int_equal(json_integer_value(r), 0);
	json_decref(r);
	call_ok_drop("remove_vhost_scsi_target", "{\"ctrlr\":\"s0\",\"scsi_target_num\":0}");
	call_ok_drop("construct_vhost_scsi_controller", "{\"ctrlr\":\"s2\"}");
	call_ok_drop("vhost_delete_controller", "{\"ctrlr\":\"s2\"}");
}

/* save_config, then replay it into an empty daemon: the same objects come back. */
static void
test_save_config_roundtrip(void **state)
{
	char path[] = "/tmp/vh-rpc-save.XXXXXX";
	json_t *cfg, *again;
	int fd;

	call_ok_drop("bdev_malloc_create", "{\"name\":\"M\",\"num_blocks\":8,\"block_size\":512}");
	call_ok_drop("bdev_null_create", "{\"name\":\"N\",\"num_blocks\":9,\"block_size\":4096}");
	call_ok_drop("vhost_create_blk_controller", "{\"ctrlr\":\"c0\",\"dev_name\":\"N\"}");
	call_ok_drop("vhost_create_scsi_controller", "{\"ctrlr\":\"s0\"}");
	call_ok_drop("vhost_scsi_controller_add_target",
	             "{\"ctrlr\":\"s0\",\"scsi_target_num\":7,\"bdev_name\":\"M\"}");
	cfg = call_ok("save_config", NULL);
	assert_string_equal(
	        json_string_value(json_object_get(
	                json_array_get(json_object_get(cfg, "subsystems"), 1), "subsystem")),
	        "vhost_blk");
	{
		json_t *scsi = json_array_get(json_object_get(cfg, "subsystems"), 2);

		assert_string_equal(json_string_value(json_object_get(scsi, "subsystem")),
		                    "vhost_scsi");
		/* Create, then the target: flattened into the subsystem's list. */
		assert_int_equal(json_array_size(json_object_get(scsi, "config")), 2);
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(json_dump_file(cfg, path, JSON_INDENT(2)), 0);
	stub_reset();
	assert_int_equal(vh_rpc_load_config(path), 0);
	unlink(path);
	assert_int_equal(stub_bdev_count(), 2);
	assert_int_equal(stub_ctrlr_count(), 2);
	again = call_ok("save_config", NULL);
	assert_true(json_equal(cfg, again));
	json_decref(cfg);
	json_decref(again);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_malloc_create, reset, reset),
	        cmocka_unit_test_setup_teardown(test_malloc_create_errors, reset, reset),
	        cmocka_unit_test_setup_teardown(test_delete, reset, reset),
	        cmocka_unit_test_setup_teardown(test_get_bdevs, reset, reset),
	        cmocka_unit_test_setup_teardown(test_vhost_create, reset, reset),
	        cmocka_unit_test_setup_teardown(test_nvme_params, reset, reset),
	        cmocka_unit_test_setup_teardown(test_app_methods, reset, reset),
	        cmocka_unit_test_setup_teardown(test_scsi_methods, reset, reset),
	        cmocka_unit_test_setup_teardown(test_save_config_roundtrip, reset, reset),
	};

	vh_log_set_level(VH_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
