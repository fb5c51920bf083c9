/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the uring and aio back-ends share: opening and probing the file or block device, the
 * per-request state machine, and the bdev glue. The engines only move operations to the kernel
 * and results back (see file_common.h).
 *
 * The request state machine, in io->module_ctx:
 * - READ/WRITE issue readv/writev of the remaining iovecs. A short result advances the position:
 *   whole iovecs are skipped in place (io->iov is never modified), and a partly done iovec is
 *   finished from a one-entry copy (`seg`) before the next whole one. A zero result means end of
 *   file (the file was truncated under us) and fails the request with -EIO.
 * - O_DIRECT needs aligned buffers. Requests whose buffers are not aligned, or that the kernel
 *   refuses with -EINVAL, go through a second, buffered fd of the same file. Linux keeps the two
 *   coherent: a direct write invalidates the cached pages and a direct read writes dirty pages
 *   back first.
 * - DISCARD and WRITE_ZEROES walk a list of strategies (punch hole, zero range, written zeroes)
 *   and remember, per bdev, which ones the kernel refused.
 * - Durable requests (VH_BDEV_IO_F_FUA on a WRITE or WRITE_ZEROES, and any write a write-through
 *   block device takes through the page cache) complete only once fdatasync would have nothing
 *   left to do for them: a write carries RWF_DSYNC; what cannot carry it (fallocate, written
 *   zeroes, a kernel that refuses the flag) is followed by an fdatasync stage. A DISCARD is a
 *   hint whose result the guest may not rely on, so it is never made durable.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bdev/bdev_file.h"
#include "bdev/file_common.h"
#include "core/log.h"

/* Strategies (stages) of a request. */
enum {
	ST_RW = 0,       /* readv / writev of the caller's iovecs */
	ST_FSYNC,        /* fdatasync */
	ST_PUNCH,        /* fallocate(PUNCH_HOLE|KEEP_SIZE) */
	ST_NOHIDE,       /* block device discard via fallocate(...|NO_HIDE_STALE) */
	ST_BLKDISCARD,   /* ioctl(BLKDISCARD), synchronous */
	ST_ZERO_RANGE,   /* fallocate(ZERO_RANGE|KEEP_SIZE) */
	ST_WRITE_ZEROES, /* writes from the zero buffer */
	ST_NOP,          /* nothing to do (empty request, unsupported discard hint) */
};

#define RS_BUFFERED   0x1u /* use the buffered fd */
#define RS_FUA        0x2u /* the consumer asked for durability (VH_BDEV_IO_F_FUA) */
#define RS_SYNC_AFTER 0x4u /* an fdatasync stage follows the current one */
#define RS_DSYNC_OP   0x8u /* the last operation carried RWF_DSYNC */

/* Per-request state, kept in io->module_ctx (no allocation per I/O). */
struct req_state {
	struct iovec seg; /* rest of a partly transferred iovec, or the zero-buffer chunk */
	uint64_t done;    /* bytes of the request finished */
	uint32_t retries; /* -EAGAIN/-EINTR so far */
	uint16_t idx;     /* next whole iovec of io->iov */
	uint8_t stage;    /* ST_* */
	uint8_t flags;    /* RS_* */
};

_Static_assert(sizeof(struct req_state) <= sizeof(((struct vh_bdev_io *)0)->module_ctx),
               "request state must fit in module_ctx");
_Static_assert(_Alignof(struct req_state) <= _Alignof(uint64_t), "module_ctx alignment");

/*
 * Source of the written-zeroes fallback. Never written: the bss pages stay the shared zero page
 * until the kernel reads them for a write.
 */
static uint8_t g_zero_buf[VH_FILE_ZERO_CHUNK] __attribute__((aligned(4096)));
#define ZERO_BUF_ALIGN 4096u

static inline struct req_state *
req_state(struct vh_bdev_io *io)
{
	return (struct req_state *)(void *)io->module_ctx;
}

/* --- probing (control thread) --- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) VH_PRINTF(3, 4);

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Read a small sysfs attribute of the block device @dev into @buf. 0 or -errno. */
static int
sysfs_queue_attr(dev_t dev, const char *attr, char *buf, size_t len)
{
	/* A partition has no queue/ of its own: its parent disk's is one level up. */
	for (int i = 0; i < 2; i++) {
		char path[128];
		ssize_t n;
		int fd;

		if (i == 0) {
			snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s", major(dev),
			         minor(dev), attr);
		} else {
			snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../queue/%s", major(dev),
			         minor(dev), attr);
		}
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			continue;
		}
		n = read(fd, buf, len - 1);
		close(fd);
		if (n <= 0) {
			continue;
		}
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		return 0;
	}
	return -ENOENT;
}

static uint64_t
sysfs_queue_u64(dev_t dev, const char *attr, uint64_t dflt)
{
	char buf[64];
	char *end;
	unsigned long long v;

	if (sysfs_queue_attr(dev, attr, buf, sizeof(buf)) < 0) {
		return dflt;
	}
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf) {
		return dflt;
	}
	return v;
}

int
vh_file_get_size(int fd, bool is_blkdev, uint64_t *size)
{
	struct stat st;

	if (is_blkdev) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			return -errno;
		}
		return 0;
	}
	if (fstat(fd, &st) < 0) {
		return -errno;
	}
	*size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

/*
 * Direct-I/O alignment of an open file. statx(STATX_DIOALIGN) is authoritative where the
 * filesystem reports it (and a zero offset alignment there means "no O_DIRECT on this file");
 * otherwise assume the logical block size of the device under the filesystem. Returns false if
 * the file does not support O_DIRECT.
 */
static bool
probe_dio_align(struct vh_file *f, dev_t fs_dev)
{
	struct statx stx;

	if (statx(f->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) != 0) {
		if (stx.stx_dio_offset_align == 0) {
			return false;
		}
		f->off_align = stx.stx_dio_offset_align;
		f->mem_align = stx.stx_dio_mem_align ? stx.stx_dio_mem_align : 1;
		return true;
	}
	f->off_align = f->dev_block;
	f->mem_align = f->dev_block;
	if (!f->is_blkdev) {
		uint64_t lbs = sysfs_queue_u64(fs_dev, "logical_block_size", 512);

		f->off_align = VH_IS_POW2(lbs) && lbs <= 65536 ? (uint32_t)lbs : 512;
		f->mem_align = f->off_align;
	}
	return true;
}

/* The filesystem type (statfs f_type) of the open file, or 0 if unknown. */
static long
fs_type(const struct vh_file *f)
{
	struct statfs sfs;

	return fstatfs(f->fd, &sfs) == 0 ? (long)sfs.f_type : 0;
}

/* Give up O_DIRECT: reopen @f buffered, after the log line that says why. 0 or -errno. */
static int
reopen_buffered(struct vh_file *f, char *err, size_t errlen)
{
	int rc;

	close(f->fd);
	f->direct = false;
	f->fd = open(f->path, O_RDWR | O_CLOEXEC);
	if (f->fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open '%s' read-write: %s", f->path, strerror(-rc));
		return rc;
	}
	return 0;
}

/* Open read-write, O_DIRECT first. Sets f->fd, f->fd_buffered, f->direct. */
static int
open_fds(struct vh_file *f, char *err, size_t errlen)
{
	int rc;

	f->direct = true;
	f->fd = open(f->path, O_RDWR | O_CLOEXEC | O_DIRECT);
	if (f->fd < 0 && errno == EINVAL) {
		/* tmpfs before Linux 6.6 and some FUSE filesystems refuse O_DIRECT at open. */
		VH_WARN(f->engine, "'%s': O_DIRECT refused on %s (%s), using buffered I/O", f->name,
		        f->path, strerror(errno));
		f->direct = false;
		f->fd = open(f->path, O_RDWR | O_CLOEXEC);
	}
	if (f->fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open '%s' read-write: %s", f->path, strerror(-rc));
		return rc;
	}
	f->fd_buffered = f->fd;
	return 0;
}

static int
open_buffered_twin(struct vh_file *f, char *err, size_t errlen)
{
	int rc;

	if (!f->direct) {
		f->fd_buffered = f->fd;
		return 0;
	}
	f->fd_buffered = open(f->path, O_RDWR | O_CLOEXEC);
	if (f->fd_buffered < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open '%s' read-write: %s", f->path, strerror(-rc));
		return rc;
	}
	return 0;
}

static int
check_type(const struct vh_file *f, const struct stat *st, char *err, size_t errlen)
{
	if (S_ISDIR(st->st_mode)) {
		set_err(err, errlen, "'%s' is a directory", f->path);
		return -EISDIR;
	}
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
		set_err(err, errlen, "'%s' is not a regular file or a block device", f->path);
		return -EINVAL;
	}
	return 0;
}

static int
pick_block_size(struct vh_file *f, uint32_t block_size, char *err, size_t errlen)
{
	if (block_size == 0) {
		/*
		 * A file keeps 512-byte sectors wherever it is copied; a block device shows its
		 * own sector size (the guest must not write less than one sector of it).
		 */
		block_size = f->is_blkdev ? VH_MAX(f->dev_block, 512u) : 512u;
	}
	if (!VH_IS_POW2(block_size) || block_size < 512 || block_size > 65536) {
		set_err(err, errlen, "block_size %u must be a power of two from 512 to 65536",
		        block_size);
		return -EINVAL;
	}
	if (f->is_blkdev && block_size < f->dev_block) {
		set_err(err, errlen,
		        "block_size %u is smaller than the logical block size %u of '%s'",
		        block_size, f->dev_block, f->path);
		return -EINVAL;
	}
	f->block_size = block_size;
	return 0;
}

static void
probe_caps(struct vh_file *f, dev_t rdev)
{
	if (f->is_blkdev) {
		/* Block-device fallocate: PUNCH_HOLE zeroes with unmap, ZERO_RANGE zeroes. */
		f->caps = VH_FILE_CAP_PUNCH | VH_FILE_CAP_ZERO_RANGE;
		if (sysfs_queue_u64(rdev, "discard_max_bytes", 0) > 0) {
			f->caps |= VH_FILE_CAP_NOHIDE | VH_FILE_CAP_DISCARD;
		}
		return;
	}
	f->caps = VH_FILE_CAP_ZERO_RANGE;
	/*
	 * Probe hole punching past the end of the file with KEEP_SIZE: the range holds no data,
	 * so the probe changes nothing, but the filesystem still tells whether it can punch.
	 */
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)f->size,
	              (off_t)f->block_size) == 0) {
		f->caps |= VH_FILE_CAP_PUNCH;
	}
}

static void
probe_write_cache(struct vh_file *f, dev_t rdev)
{
	char buf[32];

	/*
	 * Buffered I/O completes into the page cache, and a file's block allocations are
	 * metadata: both need fdatasync to be durable, whatever the disk does. Only a block
	 * device under O_DIRECT can be write-through, when its queue says so.
	 */
	f->write_cache = true;
	if (f->is_blkdev && f->direct &&
	    sysfs_queue_attr(rdev, "write_cache", buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "write through") == 0) {
		f->write_cache = false;
	}
}

int
vh_file_open(struct vh_file *f, const char *name, const char *filename,
             const struct vh_bdev_file_opts *o, const char *engine, char *err, size_t errlen)
{
	static const struct vh_bdev_file_opts defaults = {.block_size = 0, .inline_io = true};
	struct stat st;
	long fstype;
	int rc;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->fd_buffered = -1;
	f->engine = engine;
	if (o == NULL) {
		o = &defaults;
	}
	set_err(err, errlen, "%s", "");
	if (vh_strlcpy_checked(f->name, name, sizeof(f->name)) < 0 ||
	    vh_strlcpy_checked(f->path, filename, sizeof(f->path)) < 0) {
		set_err(err, errlen, "name or filename too long");
		return -ENAMETOOLONG;
	}
	/* Check the type before opening: open(O_RDWR) of a tty or a FIFO has side effects. */
	if (stat(f->path, &st) < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot access '%s': %s", f->path, strerror(-rc));
		return rc;
	}
	rc = check_type(f, &st, err, errlen);
	if (rc < 0) {
		return rc;
	}
	rc = open_fds(f, err, errlen);
	if (rc < 0) {
		return rc;
	}
	/* The path may have been replaced between stat and open: check what we opened. */
	if (fstat(f->fd, &st) < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot stat '%s': %s", f->path, strerror(-rc));
		goto out_close;
	}
	rc = check_type(f, &st, err, errlen);
	if (rc < 0) {
		goto out_close;
	}
	f->is_blkdev = S_ISBLK(st.st_mode);
	f->dev_block = 512;
	if (f->is_blkdev) {
		int lbs = 0;

		if (ioctl(f->fd, BLKSSZGET, &lbs) == 0 && lbs >= 512 && VH_IS_POW2((unsigned)lbs)) {
			f->dev_block = (uint32_t)lbs;
		}
	}
	/* A device node lives on devtmpfs, whose magic is tmpfs's: only files count. */
	fstype = f->is_blkdev ? 0 : fs_type(f);
	f->mem_backed = fstype == TMPFS_MAGIC || fstype == RAMFS_MAGIC;
	f->inline_allowed = o->inline_io;
	f->inline_io = f->mem_backed && o->inline_io;
	if (f->direct && fstype == TMPFS_MAGIC) {
		/*
		 * tmpfs is the page cache: O_DIRECT there bypasses nothing, and io_uring hands such
		 * I/O to worker threads (measured: 3x slower writes than buffered). Linux >= 6.6
		 * accepts O_DIRECT on tmpfs; we use buffered I/O as on older kernels.
		 */
		VH_NOTICE(f->engine, "'%s': %s is on tmpfs, using buffered I/O", f->name, f->path);
		rc = reopen_buffered(f, err, errlen);
		if (rc < 0) {
			return rc;
		}
	}
	if (f->direct && !probe_dio_align(f, st.st_dev)) {
		VH_WARN(f->engine, "'%s': %s does not support O_DIRECT, using buffered I/O",
		        f->name, f->path);
		rc = reopen_buffered(f, err, errlen);
		if (rc < 0) {
			return rc;
		}
	}
	rc = open_buffered_twin(f, err, errlen);
	if (rc < 0) {
		goto out_close;
	}
	rc = pick_block_size(f, o->block_size, err, errlen);
	if (rc < 0) {
		goto out_close;
	}
	rc = vh_file_get_size(f->fd, f->is_blkdev, &f->size);
	if (rc < 0) {
		set_err(err, errlen, "cannot get the size of '%s': %s", f->path, strerror(-rc));
		goto out_close;
	}
	if (f->size < f->block_size) {
		set_err(err, errlen, "'%s' is smaller than one block (%" PRIu64 " < %u bytes)",
		        f->path, f->size, f->block_size);
		rc = -EINVAL;
		goto out_close;
	}
	if (f->size % f->block_size != 0) {
		VH_NOTICE(f->engine, "'%s': the last %" PRIu64 " bytes of %s are not a whole block",
		          f->name, f->size % f->block_size, f->path);
	}
	probe_caps(f, st.st_rdev);
	/* Linux >= 4.7 (pwritev2), 4.13 (AIO): older kernels refuse it once, then we fdatasync. */
	f->caps |= VH_FILE_CAP_DSYNC;
	probe_write_cache(f, st.st_rdev);
	return 0;

out_close:
	vh_file_close(f);
	return rc;
}

void
vh_file_close(struct vh_file *f)
{
	if (f->fd_buffered >= 0 && f->fd_buffered != f->fd) {
		close(f->fd_buffered);
	}
	if (f->fd >= 0) {
		close(f->fd);
	}
	f->fd = -1;
	f->fd_buffered = -1;
}

static int
file_register(struct vh_bdev *b, struct vh_file *f, const struct vh_bdev_module *m)
{
	uint32_t caps = f->caps;

	b->module = m;
	b->ctx = f;
	f->bdev = b;
	b->block_size = f->block_size;
	b->num_blocks = f->size / f->block_size;
	b->write_cache = f->write_cache;
	b->fua = true; /* RWF_DSYNC, or an fdatasync stage (vh_file_req_*) */
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	              (1u << VH_BDEV_IO_FLUSH) | (1u << VH_BDEV_IO_WRITE_ZEROES);
	/*
	 * Discard only where something is really deallocated; WRITE_ZEROES always works (it
	 * falls back to writing zeroes).
	 */
	if ((!f->is_blkdev && (caps & VH_FILE_CAP_PUNCH)) ||
	    (f->is_blkdev && (caps & VH_FILE_CAP_DISCARD))) {
		b->io_types |= 1u << VH_BDEV_IO_DISCARD;
	}
	return vh_bdev_register(b);
}

int
vh_file_bdev_create(const struct vh_bdev_module *m, const char *engine, const char *name,
                    const char *filename, const struct vh_bdev_file_opts *o, char *err,
                    size_t errlen)
{
	struct vh_bdev *b;
	struct vh_file *f;
	int rc;

	set_err(err, errlen, "%s", "");
	if (vh_name_check(name) < 0) {
		set_err(err, errlen, "invalid bdev name");
		return -EINVAL;
	}
	/* Before opening anything: a duplicate must not probe (punch) someone else's file. */
	if (vh_bdev_find(name) != NULL) {
		set_err(err, errlen, "bdev '%s' already exists", name);
		return -EEXIST;
	}
	if (filename == NULL || filename[0] == '\0') {
		set_err(err, errlen, "empty filename");
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	f = calloc(1, sizeof(*f));
	if (b == NULL || f == NULL) {
		rc = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto out_free;
	}
	rc = vh_file_open(f, name, filename, o, engine, err, errlen);
	if (rc < 0) {
		goto out_free;
	}
	memcpy(b->name, f->name, sizeof(b->name));
	rc = file_register(b, f, m);
	if (rc < 0) {
		set_err(err, errlen, "cannot register bdev '%s': %s", name, strerror(-rc));
		goto out_close;
	}
	VH_INFO(engine, "'%s': %s, %s I/O%s, %s cache, block size %u", name, f->path,
	        f->direct ? "direct" : "buffered", f->inline_io ? " (inline copies)" : "",
	        f->write_cache ? "write-back" : "write-through", f->block_size);
	return 0;

out_close:
	vh_file_close(f);
out_free:
	free(f);
	free(b);
	return rc;
}

void
vh_file_bdev_destruct(struct vh_bdev *b)
{
	struct vh_file *f = b->ctx;

	vh_file_close(f);
	free(f);
}

void
vh_file_bdev_info_json(struct vh_bdev *b, json_t *driver_specific)
{
	const struct vh_file *f = b->ctx;
	json_t *o = json_pack(
	        "{s:s, s:s, s:s, s:b, s:I, s:b, s:b, s:I, s:I, s:I, s:I, s:I}", "filename", f->path,
	        "io_mode", f->direct ? "direct" : "buffered", "engine", f->engine, "block_device",
	        f->is_blkdev, "device_block_size", (json_int_t)f->dev_block, "memory_backed",
	        f->mem_backed, "inline_io", f->inline_io, "inline_stalls",
	        (json_int_t)__atomic_load_n(&f->inline_stalls, __ATOMIC_RELAXED), "inline_suspends",
	        (json_int_t)__atomic_load_n(&f->inline_suspends, __ATOMIC_RELAXED), "fua_writes",
	        (json_int_t)__atomic_load_n(&f->fua_writes, __ATOMIC_RELAXED), "dsync_ops",
	        (json_int_t)__atomic_load_n(&f->dsync_ops, __ATOMIC_RELAXED), "fua_syncs",
	        (json_int_t)__atomic_load_n(&f->fua_syncs, __ATOMIC_RELAXED));

	if (o != NULL) {
		json_object_set_new(driver_specific, b->module->name, o);
	}
}

json_t *
vh_file_bdev_config_json(struct vh_bdev *b)
{
	const struct vh_file *f = b->ctx;
	char method[32];

	snprintf(method, sizeof(method), "bdev_%s_create", b->module->name);
	json_t *c = json_pack("{s:s, s:{s:s, s:s, s:i, s:s}}", "method", method, "params", "name",
	                      b->name, "filename", f->path, "block_size", (int)b->block_size,
	                      "uuid", b->uuid);

	/* Only when not the default, so configs stay readable by SPDK's tools. */
	if (c != NULL && !f->inline_allowed) {
		json_object_set_new(json_object_get(c, "params"), "inline_io", json_false());
	}
	return c;
}

static int
file_rescan(struct vh_bdev *b, struct vh_file *f)
{
	uint64_t size, nb, old;
	int rc;

	rc = vh_file_get_size(f->fd, f->is_blkdev, &size);
	if (rc < 0) {
		VH_ERR(f->engine, "'%s': cannot get the size of %s: %s", f->name, f->path,
		       strerror(-rc));
		return rc;
	}
	nb = size / f->block_size;
	old = vh_bdev_num_blocks(b);
	if (nb == old) {
		return 0;
	}
	if (nb < old && vh_bdev_claimed_by(b) != NULL) {
		VH_WARN(f->engine,
		        "'%s': %s shrank from %" PRIu64 " to %" PRIu64
		        " blocks while in use: keeping the old size",
		        f->name, f->path, old, nb);
		return -EBUSY;
	}
	if (nb == 0) {
		VH_WARN(f->engine, "'%s': %s is now smaller than one block", f->name, f->path);
		return -EINVAL;
	}
	/*
	 * Relaxed: readers (range checks on the reactors, GET_CONFIG on the control thread)
	 * need only an untorn value; a request checked against the old size is still inside
	 * a grown file.
	 */
	__atomic_store_n(&f->size, size, __ATOMIC_RELAXED);
	__atomic_store_n(&b->num_blocks, nb, __ATOMIC_RELAXED);
	VH_NOTICE(f->engine, "'%s': resized from %" PRIu64 " to %" PRIu64 " blocks", f->name, old,
	          nb);
	return 1;
}

int
vh_bdev_file_rescan(const char *name)
{
	struct vh_bdev *b = vh_bdev_find(name);

	if (b == NULL) {
		return -ENODEV;
	}
	/* Every file bdev, whatever its engine, is torn down by vh_file_bdev_destruct. */
	if (b->module->destruct != vh_file_bdev_destruct) {
		return -EINVAL;
	}
	return file_rescan(b, b->ctx);
}

int
vh_bdev_uring_rescan(const char *name)
{
	return vh_bdev_file_rescan(name);
}

int
vh_bdev_aio_rescan(const char *name)
{
	return vh_bdev_file_rescan(name);
}

bool
vh_file_uring_disabled(void)
{
	char buf[16] = "";
	ssize_t n;
	int fd;

	fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return false; /* kernels before 6.6 have no such switch */
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && buf[0] != '0';
}

/* --- requests (reactor) --- */

static const char *
io_type_name(uint8_t t)
{
	static const char *const names[] = {"read", "write", "flush", "discard", "write_zeroes"};

	return t < VH_ARRAY_SIZE(names) ? names[t] : "?";
}

/* Whether O_DIRECT can take @io's buffers and range as they are. */
static bool
direct_ok(const struct vh_file *f, const struct vh_bdev_io *io)
{
	uintptr_t mmask = f->mem_align - 1, omask = f->off_align - 1;

	if (((io->offset | io->length) & omask) != 0) {
		return false;
	}
	if (io->type != VH_BDEV_IO_READ && io->type != VH_BDEV_IO_WRITE) {
		/* Written zeroes come from the zero buffer. */
		return f->mem_align <= ZERO_BUF_ALIGN;
	}
	for (int i = 0; i < io->iovcnt; i++) {
		if ((((uintptr_t)io->iov[i].iov_base & mmask) | (io->iov[i].iov_len & omask)) !=
		    0) {
			return false;
		}
	}
	return true;
}

static uint64_t
iov_total(const struct vh_bdev_io *io)
{
	uint64_t n = 0;

	for (int i = 0; i < io->iovcnt; i++) {
		n += io->iov[i].iov_len;
	}
	return n;
}

static uint8_t
first_zero_stage(const struct vh_file *f, const struct vh_bdev_io *io)
{
	uint32_t caps = __atomic_load_n(&f->caps, __ATOMIC_RELAXED);

	if (io->type == VH_BDEV_IO_DISCARD) {
		if (f->is_blkdev) {
			return (caps & VH_FILE_CAP_NOHIDE)    ? ST_NOHIDE
			       : (caps & VH_FILE_CAP_DISCARD) ? ST_BLKDISCARD
			                                      : ST_NOP;
		}
		return (caps & VH_FILE_CAP_PUNCH) ? ST_PUNCH : ST_NOP;
	}
	/* WRITE_ZEROES: deallocate only when the guest allowed it
	 * (VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP). */
	if ((io->flags & VH_BDEV_IO_F_UNMAP) && (caps & VH_FILE_CAP_PUNCH)) {
		return ST_PUNCH;
	}
	return (caps & VH_FILE_CAP_ZERO_RANGE) ? ST_ZERO_RANGE : ST_WRITE_ZEROES;
}

int
vh_file_req_init(struct vh_file *f, struct vh_bdev_io *io)
{
	struct req_state *st = req_state(io);
	uint64_t end;

	memset(st, 0, sizeof(*st));
	switch (io->type) {
	case VH_BDEV_IO_READ:
	case VH_BDEV_IO_WRITE:
		if (io->iovcnt < 0 || io->iovcnt > UINT16_MAX || iov_total(io) != io->length) {
			return -EINVAL;
		}
		st->stage = io->length == 0 ? ST_NOP : ST_RW;
		break;
	case VH_BDEV_IO_FLUSH:
		st->stage = ST_FSYNC;
		break;
	case VH_BDEV_IO_DISCARD:
	case VH_BDEV_IO_WRITE_ZEROES:
		st->stage = io->length == 0 ? ST_NOP : first_zero_stage(f, io);
		break;
	default:
		return -ENOTSUP;
	}
	/* The consumer checked the range; a bug above us must not become a write past the disk. */
	if (io->type != VH_BDEV_IO_FLUSH &&
	    (VH_ADD_OVERFLOW(io->offset, io->length, &end) || end > vh_bdev_size(f->bdev))) {
		return -EINVAL;
	}
	if (!f->direct || !direct_ok(f, io)) {
		st->flags |= RS_BUFFERED;
	}
	if ((io->flags & VH_BDEV_IO_F_FUA) &&
	    (io->type == VH_BDEV_IO_WRITE || io->type == VH_BDEV_IO_WRITE_ZEROES)) {
		st->flags |= RS_FUA;
	}
	return 0;
}

/*
 * Whether @io must be durable when it completes: the consumer asked, or the bdev promised a
 * write-through device (no write cache) and this write goes through the page cache instead.
 */
static bool
req_durable(const struct vh_file *f, const struct vh_bdev_io *io, const struct req_state *st)
{
	if (st->flags & RS_FUA) {
		return true;
	}
	return !f->write_cache && (st->flags & RS_BUFFERED) &&
	       (io->type == VH_BDEV_IO_WRITE || io->type == VH_BDEV_IO_WRITE_ZEROES);
}

/*
 * Make @op of a durable request durable: a readv/writev of the caller's data carries RWF_DSYNC;
 * anything else (fallocate, written zeroes: one fdatasync for all the chunks) or a kernel that
 * refused the flag gets an fdatasync stage after it.
 */
static void
make_durable(struct vh_file *f, struct req_state *st, struct vh_file_op *op)
{
	if (st->stage == ST_RW &&
	    (__atomic_load_n(&f->caps, __ATOMIC_RELAXED) & VH_FILE_CAP_DSYNC)) {
		op->dsync = true;
		st->flags |= RS_DSYNC_OP;
		return;
	}
	st->flags |= RS_SYNC_AFTER;
}

void
vh_file_req_next(struct vh_file *f, struct vh_bdev_io *io, struct vh_file_op *op)
{
	struct req_state *st = req_state(io);

	memset(op, 0, sizeof(*op));
	op->buffered = (st->flags & RS_BUFFERED) != 0;
	op->fd = op->buffered ? f->fd_buffered : f->fd;
	op->off = io->offset + st->done;
	op->len = io->length - st->done;
	switch (st->stage) {
	case ST_RW:
		op->kind = io->type == VH_BDEV_IO_READ ? VH_FOP_READV : VH_FOP_WRITEV;
		if (st->seg.iov_len > 0) {
			op->iov = &st->seg;
			op->iovcnt = 1;
		} else {
			op->iov = &io->iov[st->idx];
			op->iovcnt = VH_MIN(io->iovcnt - st->idx, IOV_MAX);
		}
		break;
	case ST_WRITE_ZEROES:
		st->seg.iov_base = g_zero_buf;
		st->seg.iov_len = VH_MIN(op->len, (uint64_t)VH_FILE_ZERO_CHUNK);
		op->kind = VH_FOP_WRITEV;
		op->iov = &st->seg;
		op->iovcnt = 1;
		break;
	case ST_FSYNC:
		op->kind = VH_FOP_FSYNC;
		break;
	case ST_PUNCH:
		op->kind = VH_FOP_FALLOC;
		op->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		break;
	case ST_NOHIDE:
		op->kind = VH_FOP_FALLOC;
		op->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE | FALLOC_FL_NO_HIDE_STALE;
		break;
	case ST_ZERO_RANGE:
		op->kind = VH_FOP_FALLOC;
		op->mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		break;
	case ST_BLKDISCARD:
		op->kind = VH_FOP_BLKDISCARD;
		break;
	default:
		op->kind = VH_FOP_NOP;
		break;
	}
	st->flags &= (uint8_t)~RS_DSYNC_OP;
	if ((op->kind == VH_FOP_WRITEV || op->kind == VH_FOP_FALLOC) && req_durable(f, io, st)) {
		make_durable(f, st, op);
	}
}

/* Account @res bytes of a readv/writev. 0, or -EIO if the kernel reported more than asked. */
static int
advance(struct vh_bdev_io *io, struct req_state *st, uint64_t res)
{
	st->done += res;
	if (st->stage == ST_WRITE_ZEROES) {
		return st->done <= io->length ? 0 : -EIO;
	}
	if (st->seg.iov_len > 0) {
		if (res > st->seg.iov_len) {
			return -EIO;
		}
		st->seg.iov_base = (uint8_t *)st->seg.iov_base + res;
		st->seg.iov_len -= res;
		return 0;
	}
	while (res > 0) {
		const struct iovec *v;

		if (st->idx >= io->iovcnt) {
			return -EIO;
		}
		v = &io->iov[st->idx++];
		if (res < v->iov_len) {
			st->seg.iov_base = (uint8_t *)v->iov_base + res;
			st->seg.iov_len = v->iov_len - res;
			return 0;
		}
		res -= v->iov_len;
	}
	return 0;
}

static bool
unsupported(long res)
{
	return res == -EOPNOTSUPP || res == -ENOSYS || res == -ENOTTY || res == -EINVAL;
}

static void
clear_cap(struct vh_file *f, uint32_t cap)
{
	__atomic_fetch_and(&f->caps, ~cap, __ATOMIC_RELAXED);
}

/* The kernel refused a discard/zeroing strategy: pick the next one. */
static void
fall_back(struct vh_file *f, struct vh_bdev_io *io, struct req_state *st, long res)
{
	VH_DEBUG(f->engine, "'%s': %s stage %u refused (%s), falling back", f->name,
	         io_type_name(io->type), st->stage, strerror((int)-res));
	switch (st->stage) {
	case ST_PUNCH:
		clear_cap(f, VH_FILE_CAP_PUNCH);
		/* A discard is a hint: if nothing can be deallocated there is nothing to do. */
		st->stage = io->type == VH_BDEV_IO_DISCARD ? ST_NOP : first_zero_stage(f, io);
		break;
	case ST_NOHIDE:
		clear_cap(f, VH_FILE_CAP_NOHIDE);
		st->stage = ST_BLKDISCARD;
		break;
	case ST_BLKDISCARD:
		clear_cap(f, VH_FILE_CAP_DISCARD);
		st->stage = ST_NOP;
		break;
	case ST_ZERO_RANGE:
		clear_cap(f, VH_FILE_CAP_ZERO_RANGE);
		st->stage = ST_WRITE_ZEROES;
		break;
	default:
		st->stage = ST_NOP;
		break;
	}
}

/*
 * The current stage succeeded. A durable request that still owes an fdatasync goes on to it;
 * otherwise it is done.
 */
static int
succeed(struct vh_file *f, struct vh_bdev_io *io, struct req_state *st, int *status)
{
	if (st->flags & RS_SYNC_AFTER) {
		st->flags &= (uint8_t)~RS_SYNC_AFTER;
		st->stage = ST_FSYNC;
		__atomic_fetch_add(&f->fua_syncs, 1, __ATOMIC_RELAXED);
		return VH_FILE_REQ_NEXT;
	}
	if (req_durable(f, io, st)) {
		__atomic_fetch_add(&f->fua_writes, 1, __ATOMIC_RELAXED);
	}
	*status = 0;
	return VH_FILE_REQ_DONE;
}

/* Finish with error @res. The channel logs it, once per burst (vh_file_log_error). */
static int
fail(long res, int *status)
{
	*status = (int)res;
	return VH_FILE_REQ_DONE;
}

void
vh_file_log_error(const struct vh_file *f, const struct vh_bdev_io *io, int status,
                  uint32_t suppressed)
{
	if (VH_LOG_ERROR > vh_log_get_level()) {
		return;
	}
	if (suppressed > 0) {
		vh_log(VH_LOG_ERROR, f->engine,
		       "'%s': %u more failed request(s) since the last report", f->name,
		       suppressed);
	}
	vh_log(VH_LOG_ERROR, f->engine,
	       "'%s': %s of %" PRIu64 " bytes at offset %" PRIu64 " failed: %s", f->name,
	       io_type_name(io->type), io->length, io->offset, strerror(-status));
}

int
vh_file_req_update(struct vh_file *f, struct vh_bdev_io *io, long res, int *status)
{
	struct req_state *st = req_state(io);
	bool rw = st->stage == ST_RW || st->stage == ST_WRITE_ZEROES;

	if (res == -EAGAIN || res == -EINTR) {
		if (++st->retries > VH_FILE_MAX_RETRIES) {
			return fail(-EIO, status);
		}
		return VH_FILE_REQ_NEXT;
	}
	if (res == -EINVAL && rw && !(st->flags & RS_BUFFERED)) {
		/* O_DIRECT refused these buffers after all: the buffered fd takes anything. */
		st->flags |= RS_BUFFERED;
		return VH_FILE_REQ_NEXT;
	}
	if ((res == -EOPNOTSUPP || res == -EINVAL) && (st->flags & RS_DSYNC_OP)) {
		/*
		 * Past the O_DIRECT fallback above, the buffered fd takes any buffer: what it
		 * refuses is RWF_DSYNC (an old kernel). Write plainly, then fdatasync, from now on.
		 */
		VH_LOG_RL(VH_LOG_NOTICE, f->engine,
		          "'%s': the kernel refused RWF_DSYNC (%s): durable writes use fdatasync",
		          f->name, strerror((int)-res));
		clear_cap(f, VH_FILE_CAP_DSYNC);
		st->flags |= RS_SYNC_AFTER;
		return VH_FILE_REQ_NEXT;
	}
	if (res < 0 && !rw && st->stage != ST_FSYNC && unsupported(res)) {
		fall_back(f, io, st, res);
		return VH_FILE_REQ_NEXT;
	}
	if (res < 0) {
		return fail(res, status);
	}
	if (!rw) {
		return succeed(f, io, st, status);
	}
	if (res == 0) {
		/* End of file inside the disk: the file was truncated under us. */
		return fail(-EIO, status);
	}
	if (advance(io, st, (uint64_t)res) < 0) {
		return fail(-EIO, status);
	}
	if (st->done == io->length) {
		return succeed(f, io, st, status);
	}
	return VH_FILE_REQ_NEXT;
}

long
vh_file_sync_op(struct vh_file *f, const struct vh_file_op *op)
{
	ssize_t n;

	switch (op->kind) {
	case VH_FOP_READV:
		n = preadv(op->fd, op->iov, op->iovcnt, (off_t)op->off);
		return n < 0 ? -errno : (long)n;
	case VH_FOP_WRITEV:
		if (op->dsync) {
			vh_file_count_dsync(f);
			n = pwritev2(op->fd, op->iov, op->iovcnt, (off_t)op->off, RWF_DSYNC);
			/* No pwritev2 (Linux < 4.6): the request falls back to fdatasync. */
			return n >= 0 ? (long)n : errno == ENOSYS ? -EOPNOTSUPP : -errno;
		}
		n = pwritev(op->fd, op->iov, op->iovcnt, (off_t)op->off);
		return n < 0 ? -errno : (long)n;
	case VH_FOP_FSYNC:
		return fdatasync(op->fd) < 0 ? -errno : 0;
	case VH_FOP_FALLOC:
		return fallocate(op->fd, op->mode, (off_t)op->off, (off_t)op->len) < 0 ? -errno : 0;
	case VH_FOP_BLKDISCARD: {
		uint64_t range[2] = {op->off, op->len};

		return ioctl(op->fd, BLKDISCARD, range) < 0 ? -errno : 0;
	}
	default:
		return 0;
	}
}
