/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Stubs for the vfio-user layer called by src/rpc/methods_vfu.c (RPC unit tests): an in-memory
 * registry of controllers and namespaces with the real error codes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "vfu/vfu.h"

#define MAX_FAKES 8

struct vh_vfu_ctrlr {
	char name[VH_NAME_MAX];
	uint64_t cpumask;
	uint16_t queues;
	struct vh_bdev *ns[VH_VFU_MAX_NS + 1];
};

static struct vh_vfu_ctrlr *g_vfu[MAX_FAKES];
static unsigned g_nvfu;

void stub_vfu_reset(void);

void
stub_vfu_reset(void)
{
	for (unsigned i = 0; i < g_nvfu; i++) {
		free(g_vfu[i]);
	}
	g_nvfu = 0;
}

struct vh_vfu_ctrlr *
vh_vfu_find(const char *name)
{
	for (unsigned i = 0; i < g_nvfu; i++) {
		if (strcmp(g_vfu[i]->name, name) == 0) {
			return g_vfu[i];
		}
	}
	return NULL;
}

int
vh_vfu_nvme_create(const struct vh_vfu_nvme_opts *o)
{
	struct vh_vfu_ctrlr *c;

	if (vh_vfu_find(o->name) != NULL) {
		return -EEXIST;
	}
	if (g_nvfu == MAX_FAKES || o->num_io_queues > VH_VFU_MAX_IO_QUEUES) {
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -ENOMEM;
	}
	snprintf(c->name, sizeof(c->name), "%s", o->name);
	c->cpumask = o->cpumask;
	c->queues = o->num_io_queues ? o->num_io_queues : VH_VFU_DEFAULT_IO_QUEUES;
	g_vfu[g_nvfu++] = c;
	return 0;
}

int
vh_vfu_delete(const char *name)
{
	for (unsigned i = 0; i < g_nvfu; i++) {
		if (strcmp(g_vfu[i]->name, name) == 0) {
			for (unsigned k = 1; k <= VH_VFU_MAX_NS; k++) {
				if (g_vfu[i]->ns[k] != NULL) {
					g_vfu[i]->ns[k]->claimed_by[0] = '\0';
				}
			}
			free(g_vfu[i]);
			g_vfu[i] = g_vfu[--g_nvfu];
			return 0;
		}
	}
	return -ENODEV;
}

int
vh_vfu_add_ns(const char *ctrlr, const char *bdev_name, uint32_t nsid, uint32_t *nsid_out)
{
	struct vh_vfu_ctrlr *c = vh_vfu_find(ctrlr);
	struct vh_bdev *b;

	if (c == NULL) {
		return -ENODEV;
	}
	b = vh_bdev_find(bdev_name);
	if (b == NULL) {
		return -ENOENT;
	}
	if (b->claimed_by[0] != '\0') {
		return -EBUSY;
	}
	if (nsid == 0) {
		for (nsid = 1; nsid <= VH_VFU_MAX_NS && c->ns[nsid] != NULL; nsid++) {
		}
		if (nsid > VH_VFU_MAX_NS) {
			return -ENOSPC;
		}
	} else if (nsid > VH_VFU_MAX_NS) {
		return -ERANGE;
	} else if (c->ns[nsid] != NULL) {
		return -EEXIST;
	}
	snprintf(b->claimed_by, sizeof(b->claimed_by), "%s", ctrlr);
	c->ns[nsid] = b;
	*nsid_out = nsid;
	return 0;
}

int
vh_vfu_remove_ns(const char *ctrlr, uint32_t nsid)
{
	struct vh_vfu_ctrlr *c = vh_vfu_find(ctrlr);

	if (c == NULL) {
		return -ENODEV;
	}
	if (nsid == 0 || nsid > VH_VFU_MAX_NS || c->ns[nsid] == NULL) {
		return -ENOENT;
	}
	c->ns[nsid]->claimed_by[0] = '\0';
	c->ns[nsid] = NULL;
	return 0;
}

int
vh_vfu_foreach(int (*fn)(struct vh_vfu_ctrlr *c, void *arg), void *arg)
{
	for (unsigned i = 0; i < g_nvfu; i++) {
		int rc = fn(g_vfu[i], arg);

		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

json_t *
vh_vfu_ctrlr_info_json(const struct vh_vfu_ctrlr *c)
{
	json_t *nss = json_array();

	for (unsigned k = 1; k <= VH_VFU_MAX_NS; k++) {
		if (c->ns[k] != NULL) {
			json_array_append_new(nss, json_pack("{s:i, s:s}", "nsid", (int)k,
			                                     "bdev_name", c->ns[k]->name));
		}
	}
	return json_pack("{s:s, s:i, s:o}", "ctrlr", c->name, "num_io_queues", (int)c->queues,
	                 "namespaces", nss);
}

int
vh_vfu_ctrlr_config_json(const struct vh_vfu_ctrlr *c, json_t *config)
{
	json_array_append_new(config, json_pack("{s:s, s:{s:s, s:i}}", "method",
	                                        "vfu_create_nvme_controller", "params", "ctrlr",
	                                        c->name, "num_io_queues", (int)c->queues));
	for (unsigned k = 1; k <= VH_VFU_MAX_NS; k++) {
		if (c->ns[k] != NULL) {
			json_array_append_new(config,
			                      json_pack("{s:s, s:{s:s, s:s, s:i}}", "method",
			                                "vfu_controller_add_ns", "params", "ctrlr",
			                                c->name, "bdev_name", c->ns[k]->name,
			                                "nsid", (int)k));
		}
	}
	return 0;
}
