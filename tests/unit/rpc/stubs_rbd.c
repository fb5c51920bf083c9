/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * In-memory double of the rbd back-end (bdev_rbd.h) for the RPC unit tests: it records what
 * src/rpc/methods_rbd.c decoded and answers like the real one, without a cluster.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vh_config.h"

#if VH_HAVE_RBD
#include "bdev/bdev_rbd.h"
#include "stubs_rbd.h"

struct stub_rbd g_stub_rbd;

static void
copy_kv(char out[][64], unsigned *n, const char *const *kv)
{
	*n = 0;
	for (; kv != NULL && kv[0] != NULL && *n + 2 <= STUB_RBD_MAX_KV; kv += 2) {
		snprintf(out[(*n)++], 64, "%s", kv[0]);
		snprintf(out[(*n)++], 64, "%s", kv[1]);
	}
}

int
vh_bdev_rbd_register_cluster(const struct vh_rbd_cluster_opts *o, char *err, size_t errlen)
{
	err[0] = '\0';
	for (unsigned i = 0; i < g_stub_rbd.nclusters; i++) {
		if (strcmp(g_stub_rbd.clusters[i], o->name) == 0) {
			snprintf(err, errlen, "cluster '%s' is already registered", o->name);
			return -EEXIST;
		}
	}
	if (g_stub_rbd.nclusters >= STUB_RBD_MAX_CLUSTERS) {
		return -ENOMEM;
	}
	snprintf(g_stub_rbd.clusters[g_stub_rbd.nclusters++], 64, "%s", o->name);
	copy_kv(g_stub_rbd.kv, &g_stub_rbd.nkv, o->config_param);
	g_stub_rbd.kv_present = o->config_param != NULL;
	snprintf(g_stub_rbd.user_id, sizeof(g_stub_rbd.user_id), "%s",
	         o->user_id ? o->user_id : "");
	return 0;
}

int
vh_bdev_rbd_unregister_cluster(const char *name)
{
	for (unsigned i = 0; i < g_stub_rbd.nclusters; i++) {
		if (strcmp(g_stub_rbd.clusters[i], name) == 0) {
			memmove(g_stub_rbd.clusters[i], g_stub_rbd.clusters[i + 1],
			        (g_stub_rbd.nclusters - i - 1) * sizeof(g_stub_rbd.clusters[0]));
			g_stub_rbd.nclusters--;
			return 0;
		}
	}
	return -ENOENT;
}

int
vh_bdev_rbd_clusters_info(const char *name, json_t **out)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < g_stub_rbd.nclusters; i++) {
		if (name == NULL || strcmp(name, g_stub_rbd.clusters[i]) == 0) {
			json_t *o = json_pack("{s:s}", "cluster_name", g_stub_rbd.clusters[i]);

			if (name != NULL) {
				json_decref(arr);
				*out = o;
				return 0;
			}
			json_array_append_new(arr, o);
		}
	}
	if (name != NULL) {
		json_decref(arr);
		return -ENOENT;
	}
	*out = arr;
	return 0;
}

int
vh_bdev_rbd_clusters_config(json_t *config)
{
	for (unsigned i = 0; i < g_stub_rbd.nclusters; i++) {
		json_array_append_new(config, json_pack("{s:s, s:{s:s}}", "method",
		                                        "bdev_rbd_register_cluster", "params",
		                                        "name", g_stub_rbd.clusters[i]));
	}
	return 0;
}

int
vh_bdev_rbd_create(const struct vh_rbd_bdev_opts *o, char *name_out, size_t name_len, char *err,
                   size_t errlen)
{
	g_stub_rbd.creates++;
	g_stub_rbd.last_block_size = o->block_size;
	g_stub_rbd.last_read_only = o->read_only;
	copy_kv(g_stub_rbd.kv, &g_stub_rbd.nkv, o->config);
	g_stub_rbd.kv_present = o->config != NULL;
	if (o->cluster_name != NULL) {
		bool found = false;

		for (unsigned i = 0; i < g_stub_rbd.nclusters; i++) {
			found |= strcmp(g_stub_rbd.clusters[i], o->cluster_name) == 0;
		}
		if (!found) {
			snprintf(err, errlen, "cluster '%s' is not registered", o->cluster_name);
			return -ENOENT;
		}
	}
	if (g_stub_rbd.create_rc != 0) {
		snprintf(err, errlen, "stubbed failure");
		return g_stub_rbd.create_rc;
	}
	snprintf(name_out, name_len, "%s", o->name != NULL ? o->name : "Ceph0");
	return 0;
}

int
vh_bdev_rbd_delete(const char *name)
{
	(void)name;
	return -ENODEV;
}

int
vh_bdev_rbd_resize(const char *name, uint64_t new_size_mib, char *err, size_t errlen)
{
	g_stub_rbd.last_new_size = new_size_mib;
	snprintf(err, errlen, "bdev '%s' not found", name);
	return -ENODEV;
}

void
vh_bdev_rbd_set_resize_cb(void (*cb)(struct vh_bdev *b))
{
	(void)cb;
}

unsigned
vh_bdev_rbd_wait_ms(void)
{
	return VH_RBD_DEFAULT_WAIT_MS;
}

void
stub_rbd_reset(void)
{
	memset(&g_stub_rbd, 0, sizeof(g_stub_rbd));
}
#endif
