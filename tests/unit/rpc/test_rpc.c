/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * src/rpc/rpc.c: the JSON-RPC envelope, batches, the parameter decoder, error mapping and config
 * replay.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "stubs.h"

/* Decode @text, hand it to vh_rpc_handle(), return the reply (or NULL). */
static json_t *
handle(const char *text)
{
	json_t *msg = json_loads(text, 0, NULL);
	json_t *reply;

	assert_non_null(msg);
	reply = vh_rpc_handle(msg);
	json_decref(msg);
	return reply;
}

static int
code_of(const json_t *reply)
{
	return (int)json_integer_value(json_object_get(json_object_get(reply, "error"), "code"));
}

static const char *
msg_of(const json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
}

static void
expect_error(const char *text, int code, const char *msg_part)
{
	json_t *r = handle(text);

	assert_non_null(r);
	assert_int_equal(code_of(r), code);
	if (msg_part != NULL && strstr(msg_of(r), msg_part) == NULL) {
		fail_msg("message '%s' lacks '%s'", msg_of(r), msg_part);
	}
	json_decref(r);
}

/* ---- envelope ---- */

static void
test_envelope_errors(void **state)
{
	expect_error("{\"method\":\"spdk_get_version\",\"id\":1}", VH_RPC_INVALID_REQUEST,
	             "jsonrpc");
	expect_error("{\"jsonrpc\":\"1.0\",\"method\":\"spdk_get_version\",\"id\":1}",
	             VH_RPC_INVALID_REQUEST, "jsonrpc");
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1}", VH_RPC_INVALID_REQUEST, "method");
	expect_error("{\"jsonrpc\":\"2.0\",\"method\":5,\"id\":1}", VH_RPC_INVALID_REQUEST,
	             "method");
	expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":{}}",
	             VH_RPC_INVALID_REQUEST, "id");
	expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1,"
	             "\"params\":5}",
	             VH_RPC_INVALID_REQUEST, "params");
	expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"no_such\",\"id\":1}",
	             VH_RPC_METHOD_NOT_FOUND, "no_such");
	/* null params mean none. */
	json_decref(handle("{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1,"
	                   "\"params\":null}"));
	/* Arrays are legal params in JSON-RPC; our methods take objects, so -32602. */
	expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1,"
	             "\"params\":[]}",
	             VH_RPC_INVALID_PARAMS, "object");
}

static void
test_envelope_ids(void **state)
{
	char req[512];
	json_t *r;

	/* id is echoed whatever its legal type; an over-long string id is refused. */
	r = handle("{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":null}");
	assert_true(json_is_null(json_object_get(r, "id")));
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	r = handle("{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":\"x\"}");
	assert_string_equal(json_string_value(json_object_get(r, "id")), "x");
	json_decref(r);
	snprintf(req, sizeof(req),
	         "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\","
	         "\"id\":\"%0*d\"}",
	         VH_RPC_MAX_ID_LEN, 0);
	r = handle(req);
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	snprintf(req, sizeof(req),
	         "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\","
	         "\"id\":\"%0*d\"}",
	         VH_RPC_MAX_ID_LEN + 1, 0);
	r = handle(req);
	assert_int_equal(code_of(r), VH_RPC_INVALID_REQUEST);
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
}

static void
test_notifications(void **state)
{
	assert_null(handle("{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\"}"));
	/* Even a failing notification stays silent. */
	assert_null(handle("{\"jsonrpc\":\"2.0\",\"method\":\"no_such\"}"));
	assert_null(handle("[{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\"}]"));
	/* But an invalid request is answered: we cannot know it was meant as a notification. */
	expect_error("{\"jsonrpc\":\"2.0\"}", VH_RPC_INVALID_REQUEST, NULL);
}

static void
test_batch(void **state)
{
	json_t *r = handle("[{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\",\"id\":1},"
	                   "{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\"},"
	                   "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":2}, 7]");

	assert_true(json_is_array(r));
	assert_int_equal(json_array_size(r), 3);
	assert_non_null(json_object_get(json_array_get(r, 0), "result"));
	assert_int_equal(code_of(json_array_get(r, 1)), VH_RPC_METHOD_NOT_FOUND);
	assert_int_equal(code_of(json_array_get(r, 2)), VH_RPC_INVALID_REQUEST);
	json_decref(r);
	expect_error("[]", VH_RPC_INVALID_REQUEST, "empty");
}

static void
test_batch_limit(void **state)
{
	json_t *batch = json_array();
	json_t *r;

	for (int i = 0; i <= VH_RPC_MAX_BATCH; i++) {
		json_array_append_new(batch, json_pack("{s:s, s:s, s:i}", "jsonrpc", "2.0",
		                                       "method", "spdk_get_version", "id", i));
	}
	r = vh_rpc_handle(batch);
	assert_true(json_is_object(r));
	assert_int_equal(code_of(r), VH_RPC_INVALID_REQUEST);
	json_decref(r);
	json_array_remove(batch, 0);
	r = vh_rpc_handle(batch);
	assert_int_equal(json_array_size(r), VH_RPC_MAX_BATCH);
	json_decref(r);
	json_decref(batch);
}

/* ---- parameter decoder ---- */

struct dec {
	const char *s;
	bool b;
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;
};

static const struct vh_rpc_param dec_spec[] = {
        {"s", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct dec, s)},
        {"b", VH_RPC_T_BOOL, 0, offsetof(struct dec, b)},
        {"u64", VH_RPC_T_U64, 0, offsetof(struct dec, u64)},
        {"u32", VH_RPC_T_U32, 0, offsetof(struct dec, u32)},
        {"u16", VH_RPC_T_U16, 0, offsetof(struct dec, u16)},
};

static int
decode(const char *text, struct dec *d, struct vh_rpc_error *err)
{
	/* JSON_ALLOW_NUL: the server's parser refuses \u0000, the decoder must too on its own. */
	json_t *p = text != NULL ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
	int rc;

	memset(d, 0, sizeof(*d));
	d->u32 = 99; /* an optional default that must survive absence */
	rc = vh_rpc_decode_params(p, dec_spec, VH_ARRAY_SIZE(dec_spec), d, err);
	if (rc == 0 && d->s != NULL) {
		/* The string points into p: copy the check before freeing. */
		assert_true(strlen(d->s) > 0);
	}
	json_decref(p);
	return rc;
}

static void
expect_decode_error(const char *text, const char *msg_part)
{
	struct vh_rpc_error err = {0};
	struct dec d;

	assert_int_equal(decode(text, &d, &err), -EINVAL);
	assert_int_equal(err.code, VH_RPC_INVALID_PARAMS);
	if (strstr(err.msg, msg_part) == NULL) {
		fail_msg("message '%s' lacks '%s'", err.msg, msg_part);
	}
}

static void
test_decode_ok(void **state)
{
	struct vh_rpc_error err = {0};
	json_t *p = json_loads("{\"s\":\"abc\",\"b\":true,\"u64\":9223372036854775807,"
	                       "\"u16\":65535}",
	                       0, NULL);
	struct dec d = {.u32 = 99};

	assert_int_equal(vh_rpc_decode_params(p, dec_spec, VH_ARRAY_SIZE(dec_spec), &d, &err), 0);
	assert_string_equal(d.s, "abc");
	assert_true(d.b);
	assert_true(d.u64 == (uint64_t)INT64_MAX);
	assert_int_equal(d.u32, 99);
	assert_int_equal(d.u16, 65535);
	json_decref(p);
}

static void
test_decode_errors(void **state)
{
	expect_decode_error(NULL, "missing parameter 's'");
	expect_decode_error("{}", "missing parameter 's'");
	expect_decode_error("{\"s\":\"x\",\"foo\":1}", "unknown parameter 'foo'");
	expect_decode_error("{\"s\":1}", "parameter 's' must be a string");
	expect_decode_error("{\"s\":\"\"}", "parameter 's' is empty");
	expect_decode_error("{\"s\":\"a\\u0000b\"}", "NUL");
	expect_decode_error("{\"s\":\"x\",\"b\":1}", "parameter 'b' must be a boolean");
	expect_decode_error("{\"s\":\"x\",\"u64\":-1}", "parameter 'u64' is out of range");
	expect_decode_error("{\"s\":\"x\",\"u64\":1.5}", "must be a non-negative integer");
	expect_decode_error("{\"s\":\"x\",\"u64\":\"12\"}", "must be a non-negative integer");
	expect_decode_error("{\"s\":\"x\",\"u32\":4294967296}", "'u32' is out of range");
	expect_decode_error("{\"s\":\"x\",\"u16\":65536}", "'u16' is out of range");
	expect_decode_error("[\"x\"]", "params must be an object");
}

struct unsup {
	uint32_t x;
};

static const struct vh_rpc_param unsup_spec[] = {
        {"x", VH_RPC_T_U32, 0, offsetof(struct unsup, x)},
        {"md_size", VH_RPC_T_U32, VH_RPC_P_UNSUPPORTED, 0, 0},
        {"numa_id", VH_RPC_T_U32, VH_RPC_P_UNSUPPORTED, 0, -1},
        {"dif", VH_RPC_T_BOOL, VH_RPC_P_UNSUPPORTED, 0, 0},
        VH_RPC_UNSUP_BOOL("packed", "packed rings are not supported yet"),
        VH_RPC_UNSUP_STRING("subnqn", "NVMe-oF only"),
};

static int
decode_unsup(const char *text, struct vh_rpc_error *err)
{
	json_t *p = json_loads(text, 0, NULL);
	struct unsup u = {0};
	int rc;

	assert_non_null(p);
	rc = vh_rpc_decode_params(p, unsup_spec, VH_ARRAY_SIZE(unsup_spec), &u, err);
	json_decref(p);
	return rc;
}

/* SPDK clients send some unsupported options with their defaults: those must pass. */
static void
test_decode_unsupported(void **state)
{
	struct vh_rpc_error err = {0};

	assert_int_equal(decode_unsup("{\"md_size\":0,\"numa_id\":-1,\"dif\":false}", &err), 0);
	assert_int_equal(decode_unsup("{\"md_size\":8}", &err), -EINVAL);
	assert_string_equal(err.msg, "parameter 'md_size' is not supported: vhostd does not have "
	                             "this feature (only 0)");
	assert_int_equal(decode_unsup("{\"numa_id\":0}", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "(only -1)"));
	assert_int_equal(decode_unsup("{\"dif\":true}", &err), -EINVAL);
	assert_int_equal(decode_unsup("{\"dif\":0}", &err), -EINVAL);
	/* The reason is in the message, so the caller knows what to change. */
	assert_int_equal(decode_unsup("{\"packed\":false}", &err), 0);
	assert_int_equal(decode_unsup("{\"packed\":true}", &err), -EINVAL);
	assert_string_equal(err.msg, "parameter 'packed' is not supported: packed rings are not "
	                             "supported yet (only false)");
	/* No string is neutral: the key is refused whatever it says. */
	assert_int_equal(decode_unsup("{\"subnqn\":\"\"}", &err), -EINVAL);
	assert_string_equal(err.msg, "parameter 'subnqn' is not supported: NVMe-oF only");
}

static void
test_error_errno(void **state)
{
	struct vh_rpc_error err;

	vh_rpc_error_errno(&err, -ENODEV, "x");
	assert_int_equal(err.code, VH_RPC_INVALID_PARAMS);
	vh_rpc_error_errno(&err, -EIO, "disk");
	assert_int_equal(err.code, VH_RPC_INTERNAL_ERROR);
	assert_non_null(strstr(err.msg, "disk: "));
}

static void
test_method_table(void **state)
{
	assert_non_null(vh_rpc_method_find("bdev_malloc_create"));
	assert_non_null(vh_rpc_method_find("vhost_create_blk_controller"));
	assert_non_null(vh_rpc_method_find("save_config"));
	assert_null(vh_rpc_method_find("bdev_malloc"));
}

/* ---- config replay ---- */

static char g_cfg[64];

static int
cfg_setup(void **state)
{
	snprintf(g_cfg, sizeof(g_cfg), "/tmp/vh-rpc-cfg.XXXXXX");
	close(mkstemp(g_cfg));
	stub_reset();
	return 0;
}

static int
cfg_teardown(void **state)
{
	unlink(g_cfg);
	stub_reset();
	return 0;
}

static void
write_cfg(const char *text)
{
	FILE *f = fopen(g_cfg, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *g_good_cfg =
        "{\"subsystems\": [\n"
        " {\"subsystem\": \"bdev\", \"config\": [\n"
        "  {\"method\": \"bdev_malloc_create\", \"params\": {\"name\": \"Malloc0\","
        " \"num_blocks\": 2048, \"block_size\": 512}},\n"
        "  {\"method\": \"bdev_null_create\", \"params\": {\"name\": \"Null0\","
        " \"num_blocks\": 100, \"block_size\": 4096}},\n"
        "  {\"method\": \"bdev_wait_for_examine\"}]},\n"
        " {\"subsystem\": \"accel\", \"config\": null},\n"
        " {\"subsystem\": \"vhost_blk\", \"config\": [\n"
        "  {\"method\": \"vhost_create_blk_controller\", \"params\": {\"ctrlr\": \"vhost.0\","
        " \"dev_name\": \"Malloc0\", \"cpumask\": \"0x1\"}}]}]}\n";

/* Run vh_rpc_load_config() with stderr captured into @log (the error line is the interface). */
static int
load_capture(const char *path, char *log, size_t size)
{
	char tmp[] = "/tmp/vh-rpc-log.XXXXXX";
	int fd = mkstemp(tmp);
	int saved = dup(2);
	ssize_t n;
	int rc;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	rc = vh_rpc_load_config(path);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, log, size - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(tmp);
	return rc;
}

static void
test_config_ok(void **state)
{
	write_cfg(g_good_cfg);
	assert_int_equal(vh_rpc_load_config(g_cfg), 0);
	assert_int_equal(stub_bdev_count(), 2);
	assert_int_equal(stub_ctrlr_count(), 1);
}

/* SPDK's with_batches output: an entry may be an array of entries. */
static void
test_config_batch_entry(void **state)
{
	write_cfg("{\"subsystems\": [{\"subsystem\": \"bdev\", \"config\": [["
	          "{\"method\": \"bdev_null_create\", \"params\": {\"name\": \"A\","
	          " \"num_blocks\": 8, \"block_size\": 512}},"
	          "{\"method\": \"bdev_null_create\", \"params\": {\"name\": \"B\","
	          " \"num_blocks\": 8, \"block_size\": 512}}]]}]}");
	assert_int_equal(vh_rpc_load_config(g_cfg), 0);
	assert_int_equal(stub_bdev_count(), 2);
}

static void
test_config_missing(void **state)
{
	assert_int_equal(vh_rpc_load_config("/nonexistent/vhostd.json"), -ENOENT);
}

static void
test_config_bad(void **state)
{
	static const char *const bad[] = {
	        "",
	        "garbage",
	        "{\"subsystems\": [",
	        "[]",
	        "{\"subsystems\": {}}",
	        "{\"subsystems\": [5]}",
	        "{\"subsystems\": [{\"subsystem\": \"bdev\", \"config\": {}}]}",
	        "{\"subsystems\": [{\"subsystem\": \"bdev\", \"config\": [5]}]}",
	        "{\"subsystems\": [{\"subsystem\": \"bdev\", \"config\": [{\"method\": \"x\"}]}]}",
	        "{\"subsystems\": [], \"subsystems\": []}",
	        "{\"subsystems\": []} trailing",
	};

	for (size_t i = 0; i < VH_ARRAY_SIZE(bad); i++) {
		char log[1024];

		write_cfg(bad[i]);
		if (load_capture(g_cfg, log, sizeof(log)) != -EINVAL) {
			fail_msg("config '%s' was accepted", bad[i]);
		}
		/* One line, naming the file. */
		assert_non_null(strstr(log, g_cfg));
		assert_ptr_equal(strchr(log, '\n'), log + strlen(log) - 1);
	}
	/* Every prefix of a good file is a truncated file. */
	for (size_t n = 0; n < strlen(g_good_cfg) - 2; n += 7) {
		char buf[2048], log[1024];

		snprintf(buf, sizeof(buf), "%.*s", (int)n, g_good_cfg);
		write_cfg(buf);
		stub_reset();
		if (load_capture(g_cfg, log, sizeof(log)) != -EINVAL) {
			fail_msg("truncated config (%zu bytes) was accepted", n);
		}
	}
}

static void
test_config_failing_entry(void **state)
{
	char log[1024], want[256];

	write_cfg("{\"subsystems\": [{\"subsystem\": \"vhost_blk\", \"config\": ["
	          "{\"method\": \"vhost_create_blk_controller\","
	          " \"params\": {\"ctrlr\": \"vhost.0\", \"dev_name\": \"Malloc9\"}}]}]}");
	assert_int_equal(load_capture(g_cfg, log, sizeof(log)), -EINVAL);
	assert_int_equal(stub_ctrlr_count(), 0);
	snprintf(want, sizeof(want),
	         "config %s: subsystems[0].config[0] "
	         "(vhost_create_blk_controller): bdev 'Malloc9' not found\n",
	         g_cfg);
	if (strstr(log, want) == NULL) {
		fail_msg("log '%s' lacks '%s'", log, want);
	}
}

/*
 * Whoever writes the config administers the daemon: a file someone else could have written is
 * refused before it is parsed, with one line naming the file and why.
 */
static void
expect_untrusted(const char *path, const char *why)
{
	char log[1024];

	stub_reset();
	assert_int_equal(load_capture(path, log, sizeof(log)), -EPERM);
	assert_int_equal(stub_bdev_count(), 0);
	if (strstr(log, path) == NULL || strstr(log, why) == NULL) {
		fail_msg("log '%s' does not name %s and '%s'", log, path, why);
	}
	assert_ptr_equal(strchr(log, '\n'), log + strlen(log) - 1);
}

static void
test_config_untrusted(void **state)
{
	char link[80];

	write_cfg(g_good_cfg);
	assert_int_equal(chmod(g_cfg, 0666), 0);
	expect_untrusted(g_cfg, "writable by everyone");
	/* Group-writable is the operator's choice of group: accepted. */
	assert_int_equal(chmod(g_cfg, 0660), 0);
	stub_reset();
	assert_int_equal(vh_rpc_load_config(g_cfg), 0);
	assert_int_equal(chmod(g_cfg, 0600), 0);
	/* Our own link is followed. */
	snprintf(link, sizeof(link), "%s.link", g_cfg);
	assert_int_equal(symlink(g_cfg, link), 0);
	stub_reset();
	assert_int_equal(vh_rpc_load_config(link), 0);
	if (geteuid() != 0) {
		unlink(link);
		print_message("not root: cannot make files owned by another user; skipped that\n");
		return;
	}
	/* Another user's link to our own file chooses what we replay: refused. */
	assert_int_equal(lchown(link, 65534, 65534), 0);
	expect_untrusted(link, "symbolic link owned by uid 65534");
	unlink(link);
	/* Another user's file. */
	assert_int_equal(chown(g_cfg, 65534, 65534), 0);
	expect_untrusted(g_cfg, "owned by uid 65534");
	assert_int_equal(chown(g_cfg, 0, 0), 0);
}

static char *
slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/*
 * Saving never writes through a link planted next to the config: not at the temp name the old
 * code used (<path>.tmp.<pid>, predictable), not at the config path itself.
 */
static void
test_persist_no_follow(void **state)
{
	char dir[] = "/tmp/vh-rpc-persist.XXXXXX", cfg[80], victim[80], planted[96];
	struct stat st;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(planted, sizeof(planted), "%s.tmp.%ld", cfg, (long)getpid());
	f = fopen(victim, "w");
	assert_non_null(f);
	fputs("precious\n", f);
	fclose(f);
	assert_int_equal(symlink(victim, planted), 0);
	vh_rpc_set_config_path(cfg);
	assert_int_equal(vh_rpc_save_config_file(), 0);
	assert_string_equal(slurp(victim), "precious\n");
	assert_int_equal(lstat(cfg, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_non_null(strstr(slurp(cfg), "subsystems"));
	assert_int_equal(lstat(planted, &st), 0);
	assert_true(S_ISLNK(st.st_mode)); /* left alone */
	/* A link at the config path itself is replaced, not written through. */
	unlink(cfg);
	assert_int_equal(symlink(victim, cfg), 0);
	assert_int_equal(vh_rpc_save_config_file(), 0);
	assert_string_equal(slurp(victim), "precious\n");
	assert_int_equal(lstat(cfg, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	vh_rpc_set_config_path(NULL);
	unlink(planted);
	unlink(victim);
	unlink(cfg);
	assert_int_equal(rmdir(dir), 0); /* nothing else left behind: no stray temp file */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_envelope_errors),
	        cmocka_unit_test(test_envelope_ids),
	        cmocka_unit_test(test_notifications),
	        cmocka_unit_test(test_batch),
	        cmocka_unit_test(test_batch_limit),
	        cmocka_unit_test(test_decode_ok),
	        cmocka_unit_test(test_decode_errors),
	        cmocka_unit_test(test_decode_unsupported),
	        cmocka_unit_test(test_error_errno),
	        cmocka_unit_test(test_method_table),
	        cmocka_unit_test_setup_teardown(test_config_ok, cfg_setup, cfg_teardown),
	        cmocka_unit_test_setup_teardown(test_config_batch_entry, cfg_setup, cfg_teardown),
	        cmocka_unit_test_setup_teardown(test_config_missing, cfg_setup, cfg_teardown),
	        cmocka_unit_test_setup_teardown(test_config_bad, cfg_setup, cfg_teardown),
	        cmocka_unit_test_setup_teardown(test_config_failing_entry, cfg_setup, cfg_teardown),
	        cmocka_unit_test_setup_teardown(test_config_untrusted, cfg_setup, cfg_teardown),
	        cmocka_unit_test_setup_teardown(test_persist_no_follow, cfg_setup, cfg_teardown),
	};

	vh_log_set_level(VH_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
