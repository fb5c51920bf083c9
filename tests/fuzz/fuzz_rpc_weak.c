/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dry-run fallbacks for RPC back-end functions that tests/unit/rpc/stubs.c does not (yet)
 * provide. Weak: when stubs.c gains a double, it wins. Nothing touches files or devices.
 */
#include <errno.h>
#include <stdio.h>

#include "bdev/bdev.h"
#include "bdev/bdev_file.h"
#include "vhost/vhost.h"

#define WEAK __attribute__((weak))

WEAK int
vh_bdev_uring_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
                        char *err, size_t errlen)
{
	snprintf(err, errlen, "dry run");
	return -ENOTSUP;
}

WEAK int
vh_bdev_aio_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
                      char *err, size_t errlen)
{
	snprintf(err, errlen, "dry run");
	return -ENOTSUP;
}

WEAK int
vh_bdev_file_rescan(const char *name)
{
	return -ENODEV;
}

WEAK int
vh_vhost_bdev_resized(struct vh_bdev *b)
{
	return 0;
}
