/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * JSON-RPC error paths with SPDK's method names: parse error, unknown method, bad params,
 * missing bdev, duplicate names, deleting a bdev a controller uses; and the listing methods.
 * The daemon must answer each with a JSON-RPC error object and stay up.
 */
#include <unistd.h>

#include "vh_test.h"

#define RPC_TIMEOUT_MS 5000

/* Call and expect an error object; returns its code (or 0 if the call did not fail). */
static int
expect_error(struct vh_target *t, const char *what, const char *method, json_t *params)
{
	char msg[256] = "";
	json_t *res = NULL;
	int code = 0, rc;

	rc = vh_rpc_call(t->d.rpc_path, method, params, &res, &code, msg, sizeof(msg),
	                 RPC_TIMEOUT_MS);
	json_decref(res);
	if (rc != -EREMOTEIO) {
		fprintf(stderr, "FAIL: %s: %s returned %s, expected an error object\n", what,
		        method, rc == 0 ? "success" : strerror(-rc));
		return 0;
	}
	fprintf(stderr, "ok: %s -> %d %s\n", what, code, msg);
	return code ? code : -1;
}

static int
expect_ok(struct vh_target *t, const char *method, json_t *params, json_t **res)
{
	return vh_target_rpc(t, method, params, res);
}

static int
check_lists(struct vh_target *t)
{
	json_t *res = NULL, *b;
	size_t i;
	bool found = false;

	T_OK(expect_ok(t, "bdev_get_bdevs", NULL, &res));
	T_CHECK(json_is_array(res), "bdev_get_bdevs: not an array");
	json_array_foreach(res, i, b)
	{
		if (strcmp(json_string_value(json_object_get(b, "name")) ?: "", "Malloc0") == 0) {
			found = true;
			T_CHECK(json_integer_value(json_object_get(b, "num_blocks")) == 8192,
			        "Malloc0 num_blocks");
			T_CHECK(json_integer_value(json_object_get(b, "block_size")) == 512,
			        "Malloc0 block_size");
		}
	}
	json_decref(res);
	T_CHECK(found, "bdev_get_bdevs lacks Malloc0");
	res = NULL;
	T_OK(expect_ok(t, "vhost_get_controllers", NULL, &res));
	T_CHECK(json_is_array(res) && json_array_size(res) == 1, "vhost_get_controllers: %zu",
	        json_array_size(res));
	T_CHECK(strcmp(json_string_value(json_object_get(json_array_get(res, 0), "ctrlr")) ?: "",
	               "vhost.0") == 0,
	        "controller name");
	json_decref(res);
	return 0;
}

static int
run(struct vh_target *t)
{
	json_t *reply = NULL;
	int code, fails = 0;

	/* Parse error: the server answers -32700 (or closes; both keep it alive). */
	if (vh_rpc_raw(t->d.rpc_path, "{\"jsonrpc\":\"2.0\",\"method\":", &reply, 1000) == 0) {
		code = (int)json_integer_value(
		        json_object_get(json_object_get(reply, "error"), "code"));
		json_decref(reply);
		reply = NULL;
		if (code != -32700) {
			fprintf(stderr, "FAIL: truncated JSON: error code %d, expected -32700\n",
			        code);
			fails++;
		}
	}
	if (vh_rpc_raw(t->d.rpc_path, "[1,2,3]\n", &reply, RPC_TIMEOUT_MS) == 0) {
		if (!json_object_get(reply, "error") && !json_is_array(reply)) {
			fprintf(stderr, "FAIL: non-object request did not get an error\n");
			fails++;
		}
		json_decref(reply);
		reply = NULL;
	}
	code = expect_error(t, "unknown method", "no_such_method", NULL);
	fails += code != -32601;
	if (code != -32601) {
		fprintf(stderr, "FAIL: unknown method code %d, expected -32601\n", code);
	}
	code = expect_error(t, "missing num_blocks", "bdev_malloc_create",
	                    json_pack("{s:s, s:i}", "name", "M1", "block_size", 512));
	fails += code != -32602;
	code = expect_error(t, "string num_blocks", "bdev_malloc_create",
	                    json_pack("{s:s, s:s, s:i}", "name", "M1", "num_blocks", "many",
	                              "block_size", 512));
	fails += code != -32602;
	fails += !expect_error(
	        t, "block_size 3", "bdev_malloc_create",
	        json_pack("{s:s, s:i, s:i}", "name", "M1", "num_blocks", 16, "block_size", 3));
	fails += !expect_error(
	        t, "num_blocks 0", "bdev_null_create",
	        json_pack("{s:s, s:i, s:i}", "name", "N1", "num_blocks", 0, "block_size", 512));
	fails +=
	        !expect_error(t, "params not an object", "bdev_malloc_create", json_pack("[i]", 1));
	fails += !expect_error(t, "missing bdev", "vhost_create_blk_controller",
	                       json_pack("{s:s, s:s}", "ctrlr", "vhost.1", "dev_name", "Nope0"));
	fails += !expect_error(t, "duplicate bdev", "bdev_malloc_create",
	                       json_pack("{s:s, s:i, s:i}", "name", "Malloc0", "num_blocks", 16,
	                                 "block_size", 512));
	fails +=
	        !expect_error(t, "bad controller name", "vhost_create_blk_controller",
	                      json_pack("{s:s, s:s}", "ctrlr", "../escape", "dev_name", "Malloc0"));
	T_OK(expect_ok(t, "bdev_null_create",
	               json_pack("{s:s, s:i, s:i}", "name", "Null1", "num_blocks", 1024,
	                         "block_size", 4096),
	               NULL));
	fails += !expect_error(t, "duplicate controller", "vhost_create_blk_controller",
	                       json_pack("{s:s, s:s}", "ctrlr", "vhost.0", "dev_name", "Null1"));
	fails += !expect_error(t, "bdev already claimed", "vhost_create_blk_controller",
	                       json_pack("{s:s, s:s}", "ctrlr", "vhost.2", "dev_name", "Malloc0"));
	fails += !expect_error(t, "delete bdev in use", "bdev_malloc_delete",
	                       json_pack("{s:s}", "name", "Malloc0"));
	fails += !expect_error(t, "delete unknown controller", "vhost_delete_controller",
	                       json_pack("{s:s}", "ctrlr", "vhost.9"));
	fails += !expect_error(t, "delete unknown bdev", "bdev_malloc_delete",
	                       json_pack("{s:s}", "name", "Nope0"));
	if (check_lists(t) < 0) {
		fails++;
	}
	/* Once the controller is gone the bdev can go, and its socket is removed. */
	T_OK(expect_ok(t, "vhost_delete_controller", json_pack("{s:s}", "ctrlr", "vhost.0"), NULL));
	T_CHECK(access(t->sock, F_OK) != 0, "socket %s still exists after delete", t->sock);
	T_OK(expect_ok(t, "bdev_malloc_delete", json_pack("{s:s}", "name", "Malloc0"), NULL));
	T_CHECK(vh_daemon_alive(&t->d), "daemon died");
	return fails ? -1 : 0;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 8192};
	struct vh_target t;
	int rc, fail;

	if (vh_test_qsd()) {
		return VH_TEST_SKIP;
	}
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	fail = run(&t) < 0;
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_rpc: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
