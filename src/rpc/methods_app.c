/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Application-wide methods: introspection, version, configuration snapshot and logging.
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
#include "core/log.h"
#include "rpc/rpc.h"
#include "rpc/rpc_internal.h"
#include "vhost/vhost.h"

struct get_methods_params {
	bool current;
	bool include_aliases;
};

static const struct vh_rpc_param get_methods_spec[] = {
        /* SPDK separates start-up-only methods; here every method is valid at any time. */
        {"current", VH_RPC_T_BOOL, 0, offsetof(struct get_methods_params, current)},
        {"include_aliases", VH_RPC_T_BOOL, 0, offsetof(struct get_methods_params, include_aliases)},
};

struct collect_ctx {
	json_t *arr;
	bool aliases;
};

static int
collect_method(const struct vh_rpc_method *m, void *arg)
{
	struct collect_ctx *ctx = arg;

	if ((m->flags & VH_RPC_F_ALIAS) && !ctx->aliases) {
		return 0;
	}
	return json_array_append_new(ctx->arr, json_string(m->name)) < 0 ? -ENOMEM : 0;
}

static json_t *
rpc_get_methods(const json_t *params, struct vh_rpc_error *err)
{
	struct get_methods_params p = {0};
	struct collect_ctx ctx;

	if (vh_rpc_decode_params(params, get_methods_spec, VH_ARRAY_SIZE(get_methods_spec), &p,
	                         err) < 0) {
		return NULL;
	}
	ctx.arr = json_array();
	ctx.aliases = p.include_aliases;
	if (ctx.arr == NULL || vh_rpc_method_foreach(collect_method, &ctx) < 0) {
		json_decref(ctx.arr);
		return NULL;
	}
	return ctx.arr;
}

static json_t *
spdk_get_version(const json_t *params, struct vh_rpc_error *err)
{
	unsigned major = 0, minor = 0, patch = 0;
	char suffix[32] = "";

	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	/* "1.2.3" or "1.2.3-rc1": the suffix keeps its dash, like SPDK's "-pre". */
	char version[64];

	if (sscanf(vh_version(), "%u.%u.%u%31s", &major, &minor, &patch, suffix) < 3) {
		suffix[0] = '\0';
	}
	snprintf(version, sizeof(version), "vhostd %s", vh_version());
	return json_pack("{s:s, s:{s:i, s:i, s:i, s:s}}", "version", version, "fields", "major",
	                 (int)major, "minor", (int)minor, "patch", (int)patch, "suffix", suffix);
}

static int
append_bdev_config(struct vh_bdev *b, void *arg)
{
	json_t *entry;

	/*
	 * No config_json, or NULL from it, means the bdev is re-created by something else (a
	 * parent controller's entry), so it has no entry of its own.
	 */
	if (b->module == NULL || b->module->config_json == NULL) {
		return 0;
	}
	entry = b->module->config_json(b);
	if (entry == NULL) {
		return 0;
	}
	return json_array_append_new(arg, entry) < 0 ? -ENOMEM : 0;
}

struct ctrlr_config_arg {
	json_t *config;
	const char *type; /* vh_vhost_ctrlr_type() of the controllers wanted */
};

static int
append_ctrlr_config(struct vh_vhost_ctrlr *c, void *arg)
{
	struct ctrlr_config_arg *a = arg;
	json_t *entry;
	int rc;

	if (strcmp(vh_vhost_ctrlr_type(c), a->type) != 0) {
		return 0;
	}
	entry = vh_vhost_ctrlr_config_json(c);
	if (entry == NULL) {
		return -ENOMEM;
	}
	/* A scsi controller is several entries: create, then one per target. */
	if (json_is_array(entry)) {
		rc = json_array_extend(a->config, entry);
		json_decref(entry);
		return rc < 0 ? -ENOMEM : 0;
	}
	return json_array_append_new(a->config, entry) < 0 ? -ENOMEM : 0;
}

static int
bdev_config(json_t *config)
{
	/* Ceph clusters before the rbd bdevs that name them. */
	int rc = vh_rpc_rbd_config(config);

	if (rc < 0) {
		return rc;
	}
	/* Creation order: a bdev stacked on another comes after it, as replay needs. */
	rc = vh_bdev_foreach(append_bdev_config, config);
	return rc < 0 ? rc : vh_rpc_bdev_qos_config(config);
}

static int
vhost_blk_config(json_t *config)
{
	struct ctrlr_config_arg a = {config, "blk"};

	return vh_vhost_foreach(append_ctrlr_config, &a);
}

static int
vhost_scsi_config(json_t *config)
{
	struct ctrlr_config_arg a = {config, "scsi"};

	return vh_vhost_foreach(append_ctrlr_config, &a);
}

/* The subsystems save_config reports, in replay order, with what each depends on. */
static const struct {
	const char *name;
	const char *depends_on;
	int (*fill)(json_t *config);
} g_subsystems[] = {
        {"bdev", NULL, bdev_config},
        {"vhost_blk", "bdev", vhost_blk_config},
        /* SPDK's vhost_scsi depends on its scsi subsystem, which we do not have: on bdev. */
        {"vhost_scsi", "bdev", vhost_scsi_config},
        {"vfio_user", "bdev", vh_rpc_vfu_config},
};

/* The config array of subsystem @i. New reference or NULL with @err set. */
static json_t *
subsystem_config(size_t i, struct vh_rpc_error *err)
{
	json_t *config = json_array();
	int rc;

	if (config == NULL) {
		return NULL;
	}
	rc = g_subsystems[i].fill(config);
	if (rc < 0) {
		vh_rpc_error_errno(err, rc, "cannot build the configuration");
		json_decref(config);
		return NULL;
	}
	return config;
}

static json_t *
save_config(const json_t *params, struct vh_rpc_error *err)
{
	json_t *subs, *config;

	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	subs = json_array();
	if (subs == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < VH_ARRAY_SIZE(g_subsystems); i++) {
		config = subsystem_config(i, err);
		if (config == NULL ||
		    json_array_append_new(subs, json_pack("{s:s, s:o}", "subsystem",
		                                          g_subsystems[i].name, "config", config)) <
		            0) {
			json_decref(subs);
			return NULL;
		}
	}
	return json_pack("{s:o}", "subsystems", subs);
}

/* rpc.py builds save_config on the client side from these two. */
static json_t *
framework_get_subsystems(const json_t *params, struct vh_rpc_error *err)
{
	json_t *arr;

	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < VH_ARRAY_SIZE(g_subsystems); i++) {
		json_t *deps = json_array();

		if (g_subsystems[i].depends_on != NULL) {
			json_array_append_new(deps, json_string(g_subsystems[i].depends_on));
		}
		if (json_array_append_new(arr,
		                          json_pack("{s:s, s:o}", "subsystem", g_subsystems[i].name,
		                                    "depends_on", deps)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

struct get_config_params {
	const char *name;
	bool with_batches;
};

static const struct vh_rpc_param get_config_spec[] = {
        {"name", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct get_config_params, name)},
        /* We never group entries into batches, so either value gives the same answer. */
        {"with_batches", VH_RPC_T_BOOL, 0, offsetof(struct get_config_params, with_batches)},
};

static json_t *
framework_get_config(const json_t *params, struct vh_rpc_error *err)
{
	struct get_config_params p = {0};

	if (vh_rpc_decode_params(params, get_config_spec, VH_ARRAY_SIZE(get_config_spec), &p, err) <
	    0) {
		return NULL;
	}
	for (size_t i = 0; i < VH_ARRAY_SIZE(g_subsystems); i++) {
		if (strcmp(g_subsystems[i].name, p.name) == 0) {
			return subsystem_config(i, err);
		}
	}
	vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS, "subsystem '%.64s' not found", p.name);
	return NULL;
}

struct level_params {
	const char *level;
};

static const struct vh_rpc_param level_spec[] = {
        {"level", VH_RPC_T_STRING, VH_RPC_P_REQUIRED, offsetof(struct level_params, level)},
};

static json_t *
log_set_level(const json_t *params, struct vh_rpc_error *err)
{
	struct level_params p = {0};
	int level;

	if (vh_rpc_decode_params(params, level_spec, VH_ARRAY_SIZE(level_spec), &p, err) < 0) {
		return NULL;
	}
	/* SPDK spells them ERROR, WARNING, NOTICE, INFO, DEBUG; the parser ignores case. */
	level = vh_log_parse_level(p.level);
	if (level < 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_PARAMS,
		                 "invalid level '%.32s': use error, warning, notice, info or debug",
		                 p.level);
		return NULL;
	}
	vh_log_set_level((enum vh_log_level)level);
	VH_NOTICE("rpc", "log level set to %s", p.level);
	return json_true();
}

static json_t *
log_get_level(const json_t *params, struct vh_rpc_error *err)
{
	static const char *const names[] = {"ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"};
	unsigned level = (unsigned)vh_log_get_level();

	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	return json_string(level < VH_ARRAY_SIZE(names) ? names[level] : "DEBUG");
}

/* SPDK scripts call this before configuring; vhostd is fully up before it listens. */
static json_t *
framework_wait_init(const json_t *params, struct vh_rpc_error *err)
{
	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	return json_true();
}

/* ---- vhostd_upgrade ---- */

static const struct vh_rpc_upgrade_ops *g_upgrade;
static uint64_t g_upgrade_origin; /* the waiting request that started it (its first run) */

void
vh_rpc_set_upgrade_ops(const struct vh_rpc_upgrade_ops *ops)
{
	g_upgrade = ops;
}

/*
 * Replace the running vhostd by the binary installed now, keeping every connection (docs:
 * README "Live upgrade"). The request waits until the new process serves (or the upgrade
 * failed and the old one serves on) and answers with both pids and versions and the longest
 * time a queue stood still.
 */
static json_t *
vhostd_upgrade(const json_t *params, struct vh_rpc_error *err)
{
	uint64_t origin = vh_rpc_wait_origin();
	json_t *result = NULL;
	char why[256] = "";
	int rc;

	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	if (g_upgrade == NULL) {
		vh_rpc_error_errno(err, -ENOTSUP, "live upgrade needs vhostd --supervise");
		return NULL;
	}
	if (origin == 0) {
		vh_rpc_error_set(err, VH_RPC_INVALID_REQUEST,
		                 "vhostd_upgrade waits for the new process: not in a batch");
		return NULL;
	}
	if (origin != g_upgrade_origin) {
		rc = g_upgrade->start();
		if (rc < 0) {
			vh_rpc_error_errno(err, rc,
			                   rc == -ENOTSUP ? "live upgrade needs vhostd --supervise"
			                   : rc == -EALREADY ? "an upgrade is already in progress"
			                                     : "cannot start the upgrade");
			return NULL;
		}
		g_upgrade_origin = origin;
	}
	rc = g_upgrade->poll(&result, why, sizeof(why));
	if (rc > 0) {
		if (vh_rpc_wait(300000, err)) {
			return NULL;
		}
		vh_rpc_error_errno(err, -ETIMEDOUT, "the upgrade did not finish in 300 s");
		return NULL;
	}
	g_upgrade_origin = 0;
	if (rc < 0) {
		vh_rpc_error_set(err, -rc == EBUSY ? VH_RPC_INVALID_REQUEST : VH_RPC_INTERNAL_ERROR,
		                 "upgrade failed: %s", why);
		return NULL;
	}
	return result;
}

/* Whether this process was started by a live upgrade, from what, and the pause it caused. */
static json_t *
vhostd_get_upgrade_info(const json_t *params, struct vh_rpc_error *err)
{
	if (vh_rpc_decode_params(params, NULL, 0, NULL, err) < 0) {
		return NULL;
	}
	if (g_upgrade == NULL || g_upgrade->info == NULL) {
		return json_pack("{s:n, s:s}", "upgraded_from", "version", vh_version());
	}
	return g_upgrade->info();
}

const struct vh_rpc_method vh_rpc_app_methods[] = {
        {"vhostd_upgrade", vhostd_upgrade, 0},
        {"vhostd_get_upgrade_info", vhostd_get_upgrade_info, 0},
        {"rpc_get_methods", rpc_get_methods, 0},
        {"spdk_get_version", spdk_get_version, 0},
        {"save_config", save_config, 0},
        {"framework_get_subsystems", framework_get_subsystems, 0},
        {"framework_get_config", framework_get_config, 0},
        {"log_set_level", log_set_level, 0},
        {"log_get_level", log_get_level, 0},
        {"vhostd_set_log_level", log_set_level, 0},
        {"framework_wait_init", framework_wait_init, 0},
        {"get_rpc_methods", rpc_get_methods, VH_RPC_F_ALIAS},
        {"get_spdk_version", spdk_get_version, VH_RPC_F_ALIAS},
        {"set_log_level", log_set_level, VH_RPC_F_ALIAS},
};

const size_t vh_rpc_app_methods_count = VH_ARRAY_SIZE(vh_rpc_app_methods);
