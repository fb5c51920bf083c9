/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * null back-end: every I/O succeeds at once; reads return zeroes, writes are dropped.
 * It measures the cost of everything above the storage.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bdev/bdev_module.h"

static void *
null_channel_create(struct vh_bdev *b)
{
	/* Stateless: any non-NULL token will do. */
	return b;
}

static void
null_channel_destroy(void *ch)
{
	(void)ch;
}

static int
null_submit(void *ch, struct vh_bdev_io *io)
{
	(void)ch;
	if (io->type == VH_BDEV_IO_READ) {
		for (int i = 0; i < io->iovcnt; i++) {
			memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
		}
	}
	vh_bdev_io_complete_deferred(io, 0);
	return 0;
}

static json_t *
null_config_json(struct vh_bdev *b)
{
	return json_pack("{s:s, s:{s:s, s:I, s:i, s:s}}", "method", "bdev_null_create", "params",
	                 "name", b->name, "num_blocks", (json_int_t)b->num_blocks, "block_size",
	                 (int)b->block_size, "uuid", b->uuid);
}

static const struct vh_bdev_module null_module = {
        .name = "null",
        .channel_create = null_channel_create,
        .channel_destroy = null_channel_destroy,
        .submit = null_submit,
        .config_json = null_config_json,
};

int
vh_bdev_null_create(const char *name, uint64_t num_blocks, uint32_t block_size)
{
	struct vh_bdev *b = calloc(1, sizeof(*b));
	int rc;

	if (b == NULL) {
		return -ENOMEM;
	}
	rc = vh_strlcpy_checked(b->name, name, sizeof(b->name));
	if (rc < 0) {
		free(b);
		return -EINVAL;
	}
	b->module = &null_module;
	b->block_size = block_size;
	b->num_blocks = num_blocks;
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	              (1u << VH_BDEV_IO_FLUSH) | (1u << VH_BDEV_IO_DISCARD) |
	              (1u << VH_BDEV_IO_WRITE_ZEROES);
	rc = vh_bdev_register(b);
	if (rc < 0) {
		free(b);
	}
	return rc;
}
