/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev.h"
#include "bdev/bdev_module.h"
#include "stubs.h"
#include "vhost/vhost.h"

#define MAX_FAKES 32

struct vh_vhost_ctrlr {
	char name[VH_NAME_MAX];
	char bdev[VH_NAME_MAX];
	uint64_t cpumask;
	bool readonly;
	bool scsi;
	char tgt[VH_VHOST_SCSI_MAX_TARGETS][VH_NAME_MAX]; /* scsi: bdev per target, "" = none */
	bool packed_ring;
};

static struct vh_bdev *g_bdevs[MAX_FAKES];
static unsigned g_nbdevs;
static struct vh_vhost_ctrlr *g_ctrlrs[MAX_FAKES];
static unsigned g_nctrlrs;
static int g_fail_vhost_create;

static json_t *
fake_config_json(struct vh_bdev *b)
{
	const char *m =
	        strcmp(b->module->name, "malloc") == 0 ? "bdev_malloc_create" : "bdev_null_create";

	return json_pack("{s:s, s:{s:s, s:I, s:i}}", "method", m, "params", "name", b->name,
	                 "num_blocks", (json_int_t)b->num_blocks, "block_size", (int)b->block_size);
}

static void
fake_info_json(struct vh_bdev *b, json_t *ds)
{
	json_object_set_new(ds, "fake", json_true());
}

static const struct vh_bdev_module g_malloc_mod = {
        .name = "malloc",
        .config_json = fake_config_json,
        .info_json = fake_info_json,
};
static const struct vh_bdev_module g_null_mod = {
        .name = "null",
        .config_json = fake_config_json,
};

void
stub_reset(void)
{
	stub_iostat_reset();
	for (unsigned i = 0; i < g_nbdevs; i++) {
		free(g_bdevs[i]);
	}
	for (unsigned i = 0; i < g_nctrlrs; i++) {
		free(g_ctrlrs[i]);
	}
	g_nbdevs = 0;
	g_nctrlrs = 0;
	g_fail_vhost_create = 0;
}

void
stub_fail_next_vhost_create(int rc)
{
	g_fail_vhost_create = rc;
}

unsigned
stub_bdev_count(void)
{
	return g_nbdevs;
}

unsigned
stub_ctrlr_count(void)
{
	return g_nctrlrs;
}

int
vh_name_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= VH_NAME_MAX) {
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == ':' || c == '-')) {
			return -EINVAL;
		}
	}
	return 0;
}

struct vh_bdev *
vh_bdev_find(const char *name)
{
	for (unsigned i = 0; i < g_nbdevs; i++) {
		if (strcmp(g_bdevs[i]->name, name) == 0) {
			return g_bdevs[i];
		}
	}
	return NULL;
}

int
vh_bdev_foreach(int (*fn)(struct vh_bdev *b, void *arg), void *arg)
{
	for (unsigned i = 0; i < g_nbdevs; i++) {
		int rc = fn(g_bdevs[i], arg);

		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

const char *
vh_bdev_claimed_by(const struct vh_bdev *b)
{
	return b->claimed_by[0] != '\0' ? b->claimed_by : NULL;
}

static int
fake_create(const struct vh_bdev_module *mod, const char *name, uint64_t num_blocks,
            uint32_t block_size)
{
	struct vh_bdev *b;

	if (vh_name_check(name) < 0 || num_blocks == 0 || block_size == 0) {
		return -EINVAL;
	}
	if (vh_bdev_find(name) != NULL) {
		return -EEXIST;
	}
	if (g_nbdevs == MAX_FAKES) {
		return -ENOMEM;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		return -ENOMEM;
	}
	snprintf(b->name, sizeof(b->name), "%s", name);
	snprintf(b->uuid, sizeof(b->uuid), "00000000-0000-0000-0000-%012u", g_nbdevs);
	b->module = mod;
	b->num_blocks = num_blocks;
	b->block_size = block_size;
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE);
	g_bdevs[g_nbdevs++] = b;
	return 0;
}

int
vh_bdev_ram_create(const char *name, uint64_t num_blocks, uint32_t block_size)
{
	return fake_create(&g_malloc_mod, name, num_blocks, block_size);
}

int
vh_bdev_null_create(const char *name, uint64_t num_blocks, uint32_t block_size)
{
	return fake_create(&g_null_mod, name, num_blocks, block_size);
}

int
vh_bdev_null_set_read_zeroes(struct vh_bdev *b, bool on)
{
	if (strcmp(b->module->name, "null") != 0) {
		return -EINVAL;
	}
	b->ctx = on ? (void *)&g_null_mod : NULL; /* a marker stub_null_read_zeroes() reads */
	return 0;
}

bool
stub_null_read_zeroes(const char *name)
{
	struct vh_bdev *b = vh_bdev_find(name);

	return b != NULL && b->ctx == (void *)&g_null_mod;
}

int
vh_bdev_delete(const char *name, const char *module)
{
	for (unsigned i = 0; i < g_nbdevs; i++) {
		struct vh_bdev *b = g_bdevs[i];

		if (strcmp(b->name, name) != 0) {
			continue;
		}
		if (b->claimed_by[0] != '\0') {
			return -EBUSY;
		}
		if (module != NULL && strcmp(b->module->name, module) != 0) {
			return -EINVAL;
		}
		free(b);
		memmove(&g_bdevs[i], &g_bdevs[i + 1], (g_nbdevs - i - 1) * sizeof(g_bdevs[0]));
		g_nbdevs--;
		return 0;
	}
	return -ENODEV;
}

const char *
vh_bdev_name(const struct vh_bdev *b)
{
	return b->name;
}

const char *
vh_bdev_module_name(const struct vh_bdev *b)
{
	return b->module->name;
}

uint32_t
vh_bdev_block_size(const struct vh_bdev *b)
{
	return b->block_size;
}

uint64_t
vh_bdev_num_blocks(const struct vh_bdev *b)
{
	return b->num_blocks;
}

const char *
vh_bdev_uuid(const struct vh_bdev *b)
{
	return b->uuid;
}

bool
vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t)
{
	return (b->io_types & (1u << t)) != 0;
}

bool
vh_bdev_has_write_cache(const struct vh_bdev *b)
{
	return b->write_cache;
}

struct vh_vhost_ctrlr *
vh_vhost_find(const char *name)
{
	for (unsigned i = 0; i < g_nctrlrs; i++) {
		if (strcmp(g_ctrlrs[i]->name, name) == 0) {
			return g_ctrlrs[i];
		}
	}
	return NULL;
}

int
vh_vhost_blk_create(const struct vh_vhost_blk_opts *opts)
{
	struct vh_vhost_ctrlr *c;
	struct vh_bdev *b;
	int rc = g_fail_vhost_create;

	g_fail_vhost_create = 0;
	if (rc != 0) {
		return rc;
	}
	if (vh_vhost_find(opts->name) != NULL) {
		return -EEXIST;
	}
	b = vh_bdev_find(opts->bdev_name);
	if (b == NULL) {
		return -ENODEV;
	}
	if (b->claimed_by[0] != '\0') {
		return -EBUSY;
	}
	if ((opts->packed_ring_recovery && !opts->packed_ring) || g_nctrlrs == MAX_FAKES) {
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -ENOMEM;
	}
	snprintf(c->name, sizeof(c->name), "%s", opts->name);
	snprintf(c->bdev, sizeof(c->bdev), "%s", opts->bdev_name);
	c->cpumask = opts->cpumask;
	c->readonly = opts->readonly;
	c->packed_ring = opts->packed_ring;
	snprintf(b->claimed_by, sizeof(b->claimed_by), "%s", opts->name);
	g_ctrlrs[g_nctrlrs++] = c;
	return 0;
}

static void
unclaim(const char *bdev)
{
	struct vh_bdev *b = vh_bdev_find(bdev);

	if (b != NULL) {
		b->claimed_by[0] = '\0';
	}
}

int
vh_vhost_scsi_create(const struct vh_vhost_scsi_opts *opts)
{
	struct vh_vhost_ctrlr *c;

	if (vh_vhost_find(opts->name) != NULL) {
		return -EEXIST;
	}
	if (g_nctrlrs == MAX_FAKES) {
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return -ENOMEM;
	}
	snprintf(c->name, sizeof(c->name), "%s", opts->name);
	c->cpumask = opts->cpumask;
	c->scsi = true;
	g_ctrlrs[g_nctrlrs++] = c;
	return 0;
}

int
vh_vhost_scsi_add_target(const char *ctrlr, int target, const char *bdev_name)
{
	struct vh_vhost_ctrlr *c = vh_vhost_find(ctrlr);
	struct vh_bdev *b;

	if (c == NULL) {
		return -ENODEV;
	}
	if (!c->scsi) {
		return -ENOTTY;
	}
	if (target < -1 || target >= VH_VHOST_SCSI_MAX_TARGETS) {
		return -EINVAL;
	}
	if (target == -1) {
		for (target = 0; target < VH_VHOST_SCSI_MAX_TARGETS && c->tgt[target][0];
		     target++) {
		}
		if (target == VH_VHOST_SCSI_MAX_TARGETS) {
			return -ENOSPC;
		}
	} else if (c->tgt[target][0] != '\0') {
		return -EEXIST;
	}
	b = vh_bdev_find(bdev_name);
	if (b == NULL) {
		return -ENOENT;
	}
	if (b->claimed_by[0] != '\0') {
		return -EBUSY;
	}
	snprintf(b->claimed_by, sizeof(b->claimed_by), "%s", ctrlr);
	snprintf(c->tgt[target], sizeof(c->tgt[target]), "%s", bdev_name);
	return target;
}

int
vh_vhost_scsi_remove_target(const char *ctrlr, unsigned target)
{
	struct vh_vhost_ctrlr *c = vh_vhost_find(ctrlr);

	if (c == NULL) {
		return -ENODEV;
	}
	if (!c->scsi) {
		return -ENOTTY;
	}
	if (target >= VH_VHOST_SCSI_MAX_TARGETS) {
		return -EINVAL;
	}
	if (c->tgt[target][0] == '\0') {
		return -ENOENT;
	}
	unclaim(c->tgt[target]);
	c->tgt[target][0] = '\0';
	return 0;
}

const char *
vh_vhost_ctrlr_type(const struct vh_vhost_ctrlr *c)
{
	return c->scsi ? "scsi" : "blk";
}

int
vh_vhost_delete(const char *name)
{
	for (unsigned i = 0; i < g_nctrlrs; i++) {
		struct vh_vhost_ctrlr *c = g_ctrlrs[i];

		if (strcmp(c->name, name) != 0) {
			continue;
		}
		unclaim(c->bdev);
		for (unsigned t = 0; c->scsi && t < VH_VHOST_SCSI_MAX_TARGETS; t++) {
			if (c->tgt[t][0] != '\0') {
				unclaim(c->tgt[t]);
			}
		}
		free(c);
		memmove(&g_ctrlrs[i], &g_ctrlrs[i + 1], (g_nctrlrs - i - 1) * sizeof(g_ctrlrs[0]));
		g_nctrlrs--;
		return 0;
	}
	return -ENODEV;
}

int
vh_vhost_foreach(int (*fn)(struct vh_vhost_ctrlr *c, void *arg), void *arg)
{
	for (unsigned i = 0; i < g_nctrlrs; i++) {
		int rc = fn(g_ctrlrs[i], arg);

		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

const char *
vh_vhost_ctrlr_name(const struct vh_vhost_ctrlr *c)
{
	return c->name;
}

json_t *
vh_vhost_ctrlr_info_json(const struct vh_vhost_ctrlr *c)
{
	if (c->scsi) {
		json_t *arr = json_array();

		for (unsigned t = 0; t < VH_VHOST_SCSI_MAX_TARGETS; t++) {
			if (c->tgt[t][0] != '\0') {
				json_array_append_new(arr,
				                      json_pack("{s:i, s:[{s:i, s:s}]}",
				                                "scsi_dev_num", (int)t, "luns",
				                                "id", 0, "bdev_name", c->tgt[t]));
			}
		}
		return json_pack("{s:s, s:s, s:{s:o}}", "ctrlr", c->name, "cpumask", "0x1",
		                 "backend_specific", "scsi", arr);
	}
	return json_pack("{s:s, s:s, s:{s:s, s:b}}", "ctrlr", c->name, "cpumask", "0x1",
	                 "backend_specific", "bdev", c->bdev, "readonly", c->readonly);
}

json_t *
vh_vhost_ctrlr_config_json(const struct vh_vhost_ctrlr *c)
{
	if (c->scsi) {
		json_t *arr = json_array();

		json_array_append_new(arr, json_pack("{s:s, s:{s:s}}", "method",
		                                     "vhost_create_scsi_controller", "params",
		                                     "ctrlr", c->name));
		for (unsigned t = 0; t < VH_VHOST_SCSI_MAX_TARGETS; t++) {
			if (c->tgt[t][0] != '\0') {
				json_array_append_new(
				        arr, json_pack("{s:s, s:{s:s, s:i, s:s}}", "method",
				                       "vhost_scsi_controller_add_target", "params",
				                       "ctrlr", c->name, "scsi_target_num", (int)t,
				                       "bdev_name", c->tgt[t]));
			}
		}
		return arr;
	}
	return json_pack("{s:s, s:{s:s, s:s, s:b, s:b}}", "method", "vhost_create_blk_controller",
	                 "params", "ctrlr", c->name, "dev_name", c->bdev, "readonly", c->readonly,
	                 "packed_ring", c->packed_ring);
}

void
vh_bdev_set_test_delay(struct vh_bdev *b, uint32_t max_delay_us)
{
	b->test_delay_us = max_delay_us;
}

int
vh_bdev_set_uuid(struct vh_bdev *b, const char *uuid)
{
	if (!vh_uuid_valid(uuid)) {
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(b->uuid) && uuid[i] != '\0'; i++) {
		b->uuid[i] = (char)tolower((unsigned char)uuid[i]);
	}
	b->uuid[36] = '\0';
	return 0;
}
