/* SPDX-License-Identifier: BSD-3-Clause */
/* Stubs for the file back-ends called by src/rpc/methods_file.c (RPC unit tests). */
#include <errno.h>
#include <stdio.h>

#include "bdev/bdev_file.h"
#include "vhost/vhost.h"

int
vh_bdev_uring_create_ex(const char *name, const char *filename, uint32_t block_size, char *err,
			size_t errlen)
{
	(void)name;
	(void)block_size;
	snprintf(err, errlen, "cannot access '%s': stubbed", filename);
	return -ENOENT;
}

int
vh_bdev_aio_create_ex(const char *name, const char *filename, uint32_t block_size, char *err,
		      size_t errlen)
{
	return vh_bdev_uring_create_ex(name, filename, block_size, err, errlen);
}

int
vh_bdev_file_rescan(const char *name)
{
	(void)name;
	return -ENODEV;
}

int
vh_vhost_bdev_resized(struct vh_bdev *b)
{
	(void)b;
	return 0;
}
