/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * JSON-RPC 2.0 dispatch: validating the envelope, finding the method, decoding parameters,
 * mapping errors, and replaying a save_config file through the same handlers.
 *
 * Security: requests come from any process that can open the RPC socket (S5 in the threat
 * model), and config files from whoever wrote them. Nothing here trusts a type, a length or the
 * presence of a key: the envelope is checked member by member, parameters go through
 * vh_rpc_decode_params() (unknown keys refused, see SPDK issue #798), and every decode target is
 * zero-initialised by the caller before decoding (SPDK issue #1151).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"

static const struct {
	const struct vh_rpc_method *methods;
	const size_t *count;
} g_tables[] = {
        {vh_rpc_bdev_methods, &vh_rpc_bdev_methods_count},
        {vh_rpc_iostat_methods, &vh_rpc_iostat_methods_count},
        {vh_rpc_file_methods, &vh_rpc_file_methods_count},
        {vh_rpc_rbd_methods, &vh_rpc_rbd_methods_count},
        {vh_rpc_nvme_methods, &vh_rpc_nvme_methods_count},
        {vh_rpc_options_methods, &vh_rpc_options_methods_count},
        {vh_rpc_vhost_methods, &vh_rpc_vhost_methods_count},
        {vh_rpc_vfu_methods, &vh_rpc_vfu_methods_count},
        {vh_rpc_app_methods, &vh_rpc_app_methods_count},
};

void
vh_rpc_error_set(struct vh_rpc_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void
vh_rpc_error_errno(struct vh_rpc_error *err, int rc, const char *what)
{
	int code = VH_RPC_INTERNAL_ERROR;

	switch (-rc) {
	case EINVAL:
	case ENODEV:
	case ENOENT:
	case EEXIST:
	case EBUSY:
	case ENAMETOOLONG:
	case ERANGE:
	case ENOTSUP:
		code = VH_RPC_INVALID_PARAMS;
		break;
	default:
		break;
	}
	vh_rpc_error_set(err, code, "%s: %s", what, strerror(-rc));
}

const struct vh_rpc_method *
vh_rpc_method_find(const char *name)
{
	for (size_t t = 0; t < VH_ARRAY_SIZE(g_tables); t++) {
		for (size_t i = 0; i < *g_tables[t].count; i++) {
			if (strcmp(g_tables[t].methods[i].name, name) == 0) {
				return &g_tables[t].methods[i];
			}
		}
	}
	return NULL;
}

int
vh_rpc_method_foreach(int (*fn)(const struct vh_rpc_method *m, void *arg), void *arg)
{
	for (size_t t = 0; t < VH_ARRAY_SIZE(g_tables); t++) {
		for (size_t i = 0; i < *g_tables[t].count; i++) {
			int rc = fn(&g_tables[t].methods[i], arg);

			if (rc != 0) {
				return rc;
			}
		}
	}
	return 0;
}

/* ---- parameter decoding ---- */

static const char *
type_name(enum vh_rpc_type t)
{
	switch (t) {
	case VH_RPC_T_STRING:
		return "a string";
	case VH_RPC_T_BOOL:
		return "a boolean";
	case VH_RPC_T_U64:
	case VH_RPC_T_U32:
	case VH_RPC_T_U16:
		return "a non-negative integer";
	case VH_RPC_T_I32:
		return "an integer";
	}
	return "?";
}

static int
decode_one(const struct vh_rpc_param *p, const json_t *v, void *out, struct vh_rpc_error *err)
{
	char *dst = (char *)out + p->offset;
	json_int_t i;
	uint64_t max;

	switch (p->type) {
	case VH_RPC_T_STRING:
		if (!json_is_string(v)) {
			goto out_type;
		}
		if (json_string_length(v) == 0) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "parameter '%s' is empty",
			                 p->name);
			return -EINVAL;
		}
		/* A NUL inside the string would silently shorten names and paths. */
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "parameter '%s' contains a NUL byte", p->name);
			return -EINVAL;
		}
		*(const char **)(void *)dst = json_string_value(v);
		return 0;
	case VH_RPC_T_BOOL:
		if (!json_is_boolean(v)) {
			goto out_type;
		}
		*(bool *)(void *)dst = json_is_true(v);
		return 0;
	case VH_RPC_T_U64:
	case VH_RPC_T_U32:
	case VH_RPC_T_U16:
		if (!json_is_integer(v)) {
			goto out_type;
		}
		i = json_integer_value(v);
		max = p->type == VH_RPC_T_U64   ? (uint64_t)INT64_MAX
		      : p->type == VH_RPC_T_U32 ? UINT32_MAX
		                                : UINT16_MAX;
		if (i < 0 || (uint64_t)i > max) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "parameter '%s' is out of range (0..%llu)", p->name,
			                 (unsigned long long)max);
			return -EINVAL;
		}
		if (p->type == VH_RPC_T_U64) {
			*(uint64_t *)(void *)dst = (uint64_t)i;
		} else if (p->type == VH_RPC_T_U32) {
			*(uint32_t *)(void *)dst = (uint32_t)i;
		} else {
			*(uint16_t *)(void *)dst = (uint16_t)i;
		}
		return 0;
	case VH_RPC_T_I32:
		if (!json_is_integer(v)) {
			goto out_type;
		}
		i = json_integer_value(v);
		if (i < INT32_MIN || i > INT32_MAX) {
			vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
			                 "parameter '%s' is out of range (32-bit integer)",
			                 p->name);
			return -EINVAL;
		}
		*(int32_t *)(void *)dst = (int32_t)i;
		return 0;
	}
out_type:
	vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "parameter '%s' must be %s", p->name,
	                 type_name(p->type));
	return -EINVAL;
}

/*
 * An unsupported SPDK feature: only its neutral value passes. Anything else is refused with the
 * reason, never ignored: a caller who asked for metadata or packed rings must not get a device
 * without them.
 */
static int
check_unsupported(const struct vh_rpc_param *p, const json_t *v, struct vh_rpc_error *err)
{
	const char *why = p->why != NULL ? p->why : "vhostd does not have this feature";
	char only[32];

	switch (p->type) {
	case VH_RPC_T_BOOL:
		if (json_is_false(v)) {
			return 0;
		}
		snprintf(only, sizeof(only), " (only false)");
		break;
	case VH_RPC_T_STRING:
		only[0] = '\0'; /* no string is neutral: the key is refused whatever it says */
		break;
	default:
		if (json_is_integer(v) && json_integer_value(v) == p->neutral) {
			return 0;
		}
		snprintf(only, sizeof(only), " (only %lld)", p->neutral);
		break;
	}
	vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "parameter '%s' is not supported: %s%s",
	                 p->name, why, only);
	return -EINVAL;
}

int
vh_rpc_decode_params(const json_t *params, const struct vh_rpc_param *spec, size_t n, void *out,
                     struct vh_rpc_error *err)
{
	const char *key;
	json_t *v;

	if (params != NULL && !json_is_object(params)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "params must be an object");
		return -EINVAL;
	}
	/* Unknown keys first: a misspelt optional key must not be silently ignored. */
	if (params != NULL) {
		json_object_foreach((json_t *)params, key, v)
		{
			size_t i;

			for (i = 0; i < n; i++) {
				if (strcmp(spec[i].name, key) == 0) {
					break;
				}
			}
			if (i == n) {
				vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
				                 "unknown parameter '%.64s'", key);
				return -EINVAL;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		v = params != NULL ? json_object_get(params, spec[i].name) : NULL;
		if (v == NULL) {
			if (spec[i].flags & VH_RPC_P_REQUIRED) {
				vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
				                 "missing parameter '%s'", spec[i].name);
				return -EINVAL;
			}
			continue;
		}
		if (spec[i].flags & VH_RPC_P_UNSUPPORTED) {
			if (check_unsupported(&spec[i], v, err) < 0) {
				return -EINVAL;
			}
			continue;
		}
		if (decode_one(&spec[i], v, out, err) < 0) {
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- dispatch ---- */

static bool g_frozen;

void
vh_rpc_freeze(bool frozen)
{
	g_frozen = frozen;
}

void
vh_rpc_wake(void)
{
	vh_rpc_server_wake();
}

json_t *
vh_rpc_call(const char *method, const json_t *params, struct vh_rpc_error *err)
{
	const struct vh_rpc_method *m = vh_rpc_method_find(method);
	json_t *result;

	if (m == NULL) {
		vh_rpc_error_set(err, VH_RPC_METHOD_NOT_FOUND, "method '%.64s' not found", method);
		return NULL;
	}
	if (g_frozen && (m->flags & VH_RPC_F_PERSIST)) {
		vh_rpc_error_errno(
		        err, -EBUSY,
		        "a live upgrade of vhostd is in progress; try again in a moment");
		return NULL;
	}
	err->code = 0;
	err->msg[0] = '\0';
	result = m->handler(params, err);
	if (result == NULL && err->code == 0) {
		/* A handler bug or an allocation failure while building the result. */
		vh_rpc_error_set(err, VH_RPC_INTERNAL_ERROR, "%s failed: out of memory", method);
	}
	if (result != NULL && (m->flags & VH_RPC_F_PERSIST)) {
		vh_rpc_persist_after(method, &result, err);
	}
	return result;
}

json_t *
vh_rpc_error_reply(const json_t *id, const struct vh_rpc_error *err)
{
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
	                 id != NULL ? id : json_null(), "error", "code", err->code, "message",
	                 err->msg);
}

static bool
id_valid(const json_t *id)
{
	if (json_is_string(id)) {
		return json_string_length(id) <= VH_RPC_MAX_ID_LEN;
	}
	return json_is_integer(id) || json_is_real(id) || json_is_null(id);
}

/*
 * Check the envelope of one request. Returns 0, or -EINVAL with @err filled in; *@id is the id to
 * reply with (NULL when the request has no usable id).
 */
static int
check_envelope(const json_t *req, const json_t **id, struct vh_rpc_error *err)
{
	const json_t *v;

	*id = NULL;
	if (!json_is_object(req)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_REQUEST, "request must be an object");
		return -EINVAL;
	}
	v = json_object_get(req, "id");
	if (v != NULL && !id_valid(v)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_REQUEST,
		                 "'id' must be a number, null or a string of at most %d bytes",
		                 VH_RPC_MAX_ID_LEN);
		return -EINVAL;
	}
	*id = v;
	v = json_object_get(req, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_REQUEST, "'jsonrpc' must be \"2.0\"");
		return -EINVAL;
	}
	v = json_object_get(req, "method");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_REQUEST,
		                 "'method' must be a non-empty string");
		return -EINVAL;
	}
	v = json_object_get(req, "params");
	if (v != NULL && !json_is_null(v) && !json_is_object(v) && !json_is_array(v)) {
		vh_rpc_error_set(err, VH_RPC_INVALID_REQUEST,
		                 "'params' must be an object, array or null");
		return -EINVAL;
	}
	return 0;
}

/*
 * The request being handled may wait (vh_rpc_wait) until g_wait_until_ns; 0 = it may not. Set
 * only around vh_rpc_handle_wait(), so config replay and batches never wait.
 */
static uint64_t g_wait_since_ns;
static uint64_t g_wait_until_ns;
static bool g_waited;

uint64_t
vh_rpc_wait_origin(void)
{
	return g_wait_since_ns;
}

bool
vh_rpc_wait(uint64_t timeout_ms, struct vh_rpc_error *err)
{
	uint64_t until;

	if (g_wait_since_ns == 0 || timeout_ms == 0) {
		return false;
	}
	until = g_wait_since_ns + timeout_ms * 1000000ull;
	if (until < g_wait_since_ns || vh_now_ns() >= until) {
		return false;
	}
	g_wait_until_ns = until;
	g_waited = true;
	err->code = 0;
	return true;
}

static json_t *
handle_one(const json_t *req)
{
	struct vh_rpc_error err = {0};
	const json_t *id;
	const char *method;
	json_t *result;
	json_t *params;

	if (check_envelope(req, &id, &err) < 0) {
		/* Spec section 5: an invalid request is answered even without an id. */
		return vh_rpc_error_reply(id, &err);
	}
	method = json_string_value(json_object_get(req, "method"));
	params = json_object_get(req, "params");
	if (json_is_null(params)) {
		params = NULL; /* some clients send null for "no params" */
	}
	VH_DEBUG("rpc", "call %s", method);
	result = vh_rpc_call(method, params, &err);
	if (result == NULL && g_waited) {
		return NULL; /* run again later: vh_rpc_handle_wait() tells the caller */
	}
	if (id == NULL) {
		/* A notification: the client asked for no reply, even on error. */
		if (result == NULL) {
			VH_INFO("rpc", "notification %s failed: %s", method, err.msg);
		}
		json_decref(result);
		return NULL;
	}
	if (result == NULL) {
		VH_INFO("rpc", "%s failed: %s", method, err.msg);
		return vh_rpc_error_reply(id, &err);
	}
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

static json_t *
handle_batch(const json_t *batch)
{
	struct vh_rpc_error err = {0};
	size_t i, n = json_array_size(batch);
	json_t *replies;
	json_t *req;

	if (n == 0) {
		vh_rpc_error_set(&err, VH_RPC_INVALID_REQUEST, "empty batch");
		return vh_rpc_error_reply(NULL, &err);
	}
	if (n > VH_RPC_MAX_BATCH) {
		vh_rpc_error_set(&err, VH_RPC_INVALID_REQUEST, "batch of %zu requests (limit %d)",
		                 n, VH_RPC_MAX_BATCH);
		return vh_rpc_error_reply(NULL, &err);
	}
	replies = json_array();
	if (replies == NULL) {
		return NULL;
	}
	json_array_foreach(batch, i, req)
	{
		json_t *reply = handle_one(req);

		if (reply != NULL) {
			json_array_append_new(replies, reply);
		}
	}
	if (json_array_size(replies) == 0) {
		json_decref(replies);
		return NULL;
	}
	return replies;
}

json_t *
vh_rpc_handle(const json_t *msg)
{
	if (json_is_array(msg)) {
		return handle_batch(msg);
	}
	return handle_one(msg);
}

json_t *
vh_rpc_handle_wait(const json_t *msg, uint64_t since_ns, bool *waiting, uint64_t *deadline_ns)
{
	json_t *reply;

	if (json_is_array(msg)) {
		*waiting = false;
		return handle_batch(msg);
	}
	g_wait_since_ns = since_ns != 0 ? since_ns : 1;
	g_waited = false;
	reply = handle_one(msg);
	*waiting = g_waited;
	*deadline_ns = g_wait_until_ns;
	g_wait_since_ns = 0;
	g_waited = false;
	return reply;
}

/* ---- config replay ---- */

static int
read_file(const char *path, char **data, size_t *len)
{
	struct stat st;
	size_t off = 0;
	char *buf;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	rc = vh_rpc_config_trusted(path, &st);
	if (rc < 0) {
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > VH_RPC_MAX_CONFIG_FILE) {
		rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto out_close;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO; /* shrank under us: treat as truncated I/O */
			free(buf);
			goto out_close;
		}
		off += (size_t)n;
	}
	*data = buf;
	*len = off;
	rc = 0;
out_close:
	close(fd);
	return rc;
}

/* Run one {method, params} entry; @where names it in the error line. */
static int
replay_entry(const char *path, const char *where, const json_t *entry)
{
	struct vh_rpc_error err = {0};
	const json_t *method = json_object_get(entry, "method");
	const json_t *params = json_object_get(entry, "params");
	const char *mname;
	json_t *result;

	if (!json_is_object(entry) || !json_is_string(method)) {
		VH_ERR("rpc", "config %s: %s: entry must be an object with a 'method' string", path,
		       where);
		return -EINVAL;
	}
	mname = json_string_value(method);
	if (params != NULL && !json_is_object(params) && !json_is_null(params)) {
		VH_ERR("rpc", "config %s: %s (%.64s): 'params' must be an object", path, where,
		       mname);
		return -EINVAL;
	}
	if (json_is_null(params)) {
		params = NULL;
	}
	result = vh_rpc_call(mname, params, &err);
	if (result == NULL) {
		VH_ERR("rpc", "config %s: %s (%.64s): %s", path, where, mname, err.msg);
		return -EINVAL;
	}
	json_decref(result);
	return 0;
}

/* An entry, or (SPDK's with_batches) an array of entries run in order. */
static int
replay_elem(const char *path, size_t si, size_t ci, const json_t *elem, size_t *count)
{
	char where[96];
	const json_t *item;
	size_t k;
	int rc;

	if (!json_is_array(elem)) {
		snprintf(where, sizeof(where), "subsystems[%zu].config[%zu]", si, ci);
		rc = replay_entry(path, where, elem);
		*count += rc == 0;
		return rc;
	}
	json_array_foreach(elem, k, item)
	{
		snprintf(where, sizeof(where), "subsystems[%zu].config[%zu][%zu]", si, ci, k);
		rc = replay_entry(path, where, item);
		if (rc < 0) {
			return rc;
		}
		(*count)++;
	}
	return 0;
}

static int
replay(const char *path, const json_t *root)
{
	const json_t *subsystems = json_object_get(root, "subsystems");
	const json_t *sub;
	size_t si, ci, entries = 0;

	if (!json_is_object(root) || !json_is_array(subsystems)) {
		VH_ERR("rpc", "config %s: top level must be an object with a 'subsystems' array",
		       path);
		return -EINVAL;
	}
	json_array_foreach(subsystems, si, sub)
	{
		const json_t *config = json_object_get(sub, "config");
		const json_t *entry;

		if (!json_is_object(sub) || !json_is_string(json_object_get(sub, "subsystem"))) {
			VH_ERR("rpc",
			       "config %s: subsystems[%zu]: must be an object with a "
			       "'subsystem' string",
			       path, si);
			return -EINVAL;
		}
		/* SPDK writes "config": null for a subsystem with nothing to restore. */
		if (config == NULL || json_is_null(config)) {
			continue;
		}
		if (!json_is_array(config)) {
			VH_ERR("rpc", "config %s: subsystems[%zu].config: must be an array", path,
			       si);
			return -EINVAL;
		}
		json_array_foreach(config, ci, entry)
		{
			int rc = replay_elem(path, si, ci, entry, &entries);

			if (rc < 0) {
				return rc;
			}
		}
	}
	VH_NOTICE("rpc", "config %s: %zu entries applied", path, entries);
	return 0;
}

int
vh_rpc_load_config(const char *path)
{
	json_error_t jerr;
	json_t *root;
	size_t len = 0;
	char *data = NULL;
	int rc;

	rc = read_file(path, &data, &len);
	if (rc == -ENOENT) {
		return rc; /* the caller decides whether a missing config is an error */
	}
	if (rc < 0) {
		if (rc != -EPERM) { /* vh_rpc_config_trusted() said why */
			VH_ERR("rpc", "config %s: cannot read: %s", path, strerror(-rc));
		}
		return rc;
	}
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	free(data);
	if (root == NULL) {
		VH_ERR("rpc", "config %s: line %d column %d: %s", path, jerr.line, jerr.column,
		       jerr.text);
		return -EINVAL;
	}
	/* Replaying the file must not rewrite it half-way. */
	vh_rpc_persist_suspend(true);
	rc = replay(path, root);
	vh_rpc_persist_suspend(false);
	json_decref(root);
	return rc;
}
