/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * null back-end: every I/O succeeds at once and writes are dropped. Reads leave the buffers as
 * they are, as SPDK's null bdev and QEMU's null-co (read-zeroes=off) do, so that benchmarks
 * against them compare the same work; with read_zeroes (vh_bdev_null_set_read_zeroes) they are
 * zero-filled, which costs a memset of the whole request. It measures the cost of everything
 * above the storage.
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
	vh_bdev_io_complete_deferred(io, 0);
	return 0;
}

static int
null_submit_zeroes(void *ch, struct vh_bdev_io *io)
{
	if (io->type == VH_BDEV_IO_READ) {
		for (int i = 0; i < io->iovcnt; i++) {
			memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
		}
	}
	return null_submit(ch, io);
}

static json_t *null_config_json(struct vh_bdev *b);

/* Two modules with one name: the choice costs nothing per I/O. */
static const struct vh_bdev_module null_module = {
        .name = "null",
        .channel_create = null_channel_create,
        .channel_destroy = null_channel_destroy,
        .submit = null_submit,
        .config_json = null_config_json,
};

static const struct vh_bdev_module null_zeroes_module = {
        .name = "null",
        .channel_create = null_channel_create,
        .channel_destroy = null_channel_destroy,
        .submit = null_submit_zeroes,
        .config_json = null_config_json,
};

static json_t *
null_config_json(struct vh_bdev *b)
{
	json_t *j = json_pack("{s:s, s:{s:s, s:I, s:i, s:s}}", "method", "bdev_null_create",
	                      "params", "name", b->name, "num_blocks", (json_int_t)b->num_blocks,
	                      "block_size", (int)b->block_size, "uuid", b->uuid);

	/*
	 * Only when on: SPDK's bdev_null_create refuses unknown params, and a config without it
	 * stays loadable there.
	 */
	if (j != NULL && b->module == &null_zeroes_module) {
		json_object_set_new(json_object_get(j, "params"), "read_zeroes", json_true());
	}
	return j;
}

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

bool
vh_bdev_null_read_zeroes(const struct vh_bdev *b)
{
	return b->module == &null_zeroes_module;
}

int
vh_bdev_null_set_read_zeroes(struct vh_bdev *b, bool on)
{
	if (b->module != &null_module && b->module != &null_zeroes_module) {
		return -EINVAL;
	}
	for (unsigned i = 0; i < VH_MAX_REACTORS; i++) {
		if (__atomic_load_n(&b->channels[i], __ATOMIC_ACQUIRE) != NULL) {
			return -EBUSY; /* a reactor may be calling submit right now */
		}
	}
	b->module = on ? &null_zeroes_module : &null_module;
	return 0;
}
