/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * File and block-device back-ends: "uring" (io_uring, the default) and "aio" (libaio, the
 * fallback for kernels where io_uring is missing or disabled). See docs/bdev-file.md.
 *
 * Rules:
 * - Every function here runs on the control thread (they touch the bdev registry).
 * - A bdev created with vh_bdev_uring_create() on a host without io_uring runs on the aio engine
 *   but keeps the module name "uring", so bdev_uring_delete and save_config keep working.
 * - Resizing reaches the guest through the vhost layer: after a rescan that changed the size the
 *   caller (the RPC layer, which may depend on vhost) calls vh_vhost_bdev_resized().
 */
#ifndef VH_BDEV_FILE_H
#define VH_BDEV_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Creation options beyond name and path (RPC parameters of bdev_uring_create/bdev_aio_create). */
struct vh_bdev_file_opts {
	uint32_t block_size; /* 0: automatic */
	/*
	 * On a memory-backed file (tmpfs, ramfs), copy on the reactor instead of through the
	 * engine (see file_common.h). No effect elsewhere. Default true.
	 */
	bool inline_io;
};

/*
 * Create a bdev @name on @filename (a regular file or a block device, opened read-write,
 * O_DIRECT when the filesystem allows it). @block_size 0 picks the device's logical block size
 * (512 for a file on a filesystem that does not report one); a block size smaller than a block
 * device's logical block size is refused.
 * Returns 0, -EEXIST (name taken), -EINVAL (bad name, block size, empty file, not a file or
 * block device), or the -errno of open/stat (-ENOENT, -EACCES, -EISDIR, ...).
 */
int vh_bdev_uring_create(const char *name, const char *filename, uint32_t block_size);
int vh_bdev_aio_create(const char *name, const char *filename, uint32_t block_size);

/*
 * The same with options (@o NULL: the defaults, block size 0 and inline copies on) and a
 * human-readable reason in @err (always NUL-terminated, may be empty) that names the path and
 * the failing step, for RPC error messages.
 */
int vh_bdev_uring_create_ex(const char *name, const char *filename,
                            const struct vh_bdev_file_opts *o, char *err, size_t errlen);
int vh_bdev_aio_create_ex(const char *name, const char *filename, const struct vh_bdev_file_opts *o,
                          char *err, size_t errlen);

/* Delete. -ENODEV unknown name, -EINVAL not a bdev of this module, -EBUSY claimed. */
int vh_bdev_uring_delete(const char *name);
int vh_bdev_aio_delete(const char *name);

/*
 * Re-read the size of the file or device behind @name (a uring or aio bdev).
 * Returns 1 if num_blocks changed (grew), 0 if unchanged, -ENODEV (unknown), -EINVAL (not a
 * file bdev), -EBUSY (it shrank while claimed: refused, the old size stays), or the -errno of
 * the size query.
 */
int vh_bdev_file_rescan(const char *name);
/* Aliases with SPDK's per-module names; same returns. */
int vh_bdev_uring_rescan(const char *name);
int vh_bdev_aio_rescan(const char *name);

#endif
