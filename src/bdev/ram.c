/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RAM back-end ("malloc" in SPDK's RPC names): a memfd mapped shared. A memfd rather than
 * malloc so discard can give pages back (FALLOC_FL_PUNCH_HOLE) and a later io_uring back-end can
 * register the same memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bdev/bdev_module.h"
#include "core/handover.h"
#include "core/log.h"

struct ram_disk {
	int fd;
	uint8_t *base;
	uint64_t size;
	uint64_t page; /* 4 KiB, or 2 MiB when backed by huge pages */
};

static void *
ram_channel_create(struct vh_bdev *b)
{
	return b->ctx;
}

static void
ram_channel_destroy(void *ch)
{
	(void)ch;
}

static void
copy_out(struct vh_bdev_io *io, const uint8_t *src)
{
	for (int i = 0; i < io->iovcnt; i++) {
		memcpy(io->iov[i].iov_base, src, io->iov[i].iov_len);
		src += io->iov[i].iov_len;
	}
}

static void
copy_in(struct vh_bdev_io *io, uint8_t *dst)
{
	for (int i = 0; i < io->iovcnt; i++) {
		memcpy(dst, io->iov[i].iov_base, io->iov[i].iov_len);
		dst += io->iov[i].iov_len;
	}
}

/*
 * Zero a range. Whole pages are punched out of the memfd (reads then see zeroes and the memory
 * goes back to the host); the unaligned edges are cleared by hand.
 */
static int
zero_range(struct ram_disk *d, uint64_t off, uint64_t len)
{
	/* hugetlbfs only punches whole huge pages: the edges must be cleared by hand. */
	const uint64_t pg = d->page;
	uint64_t start = (off + pg - 1) & ~(pg - 1);
	uint64_t end = (off + len) & ~(pg - 1);

	if (end <= start || end - start < 16 * pg) {
		memset(d->base + off, 0, len);
		return 0;
	}
	memset(d->base + off, 0, start - off);
	memset(d->base + end, 0, off + len - end);
	if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)start,
	              (off_t)(end - start)) < 0) {
		memset(d->base + start, 0, end - start);
	}
	return 0;
}

static int
ram_submit(void *ch, struct vh_bdev_io *io)
{
	struct ram_disk *d = ch;
	int status = 0;

	/* The consumer checked the range; a bug above us must not become a host overflow. */
	if (io->offset > d->size || io->length > d->size - io->offset) {
		return -EINVAL;
	}
	switch (io->type) {
	case VH_BDEV_IO_READ:
		copy_out(io, d->base + io->offset);
		break;
	case VH_BDEV_IO_WRITE:
		copy_in(io, d->base + io->offset);
		break;
	case VH_BDEV_IO_FLUSH:
		break;
	case VH_BDEV_IO_DISCARD:
	case VH_BDEV_IO_WRITE_ZEROES:
		status = zero_range(d, io->offset, io->length);
		break;
	default:
		return -ENOTSUP;
	}
	vh_bdev_io_complete_deferred(io, status);
	return 0;
}

static void
ram_destruct(struct vh_bdev *b)
{
	struct ram_disk *d = b->ctx;
	char key[VH_HANDOVER_KEY_MAX];

	snprintf(key, sizeof(key), "bdev:%s", b->name);
	vh_handover_drop(key);
	munmap(d->base, d->size);
	close(d->fd);
	free(d);
}

static json_t *
ram_config_json(struct vh_bdev *b)
{
	return json_pack("{s:s, s:{s:s, s:I, s:i, s:s}}", "method", "bdev_malloc_create", "params",
	                 "name", b->name, "num_blocks", (json_int_t)b->num_blocks, "block_size",
	                 (int)b->block_size, "uuid", b->uuid);
}

static const struct vh_bdev_module ram_module = {
        .name = "malloc",
        .channel_create = ram_channel_create,
        .channel_destroy = ram_channel_destroy,
        .submit = ram_submit,
        .destruct = ram_destruct,
        .config_json = ram_config_json,
};

/*
 * Back the disk with 2 MiB huge pages when the host has enough reserved (as SPDK's malloc
 * bdev does): a random 4 KiB access then costs no TLB miss and no first-touch fault. The
 * mapping reserves the pages up front, so a shortage shows here, not as SIGBUS later; without
 * them we fall back to a plain memfd whose pages are allocated on first write.
 */
static int
ram_map_new(struct ram_disk *d, const char *name)
{
	const uint64_t huge = 2u << 20;

	if (d->size % huge == 0) {
		d->fd = memfd_create(name, MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
		if (d->fd >= 0) {
			d->base = MAP_FAILED;
			if (ftruncate(d->fd, (off_t)d->size) == 0) {
				d->base = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED,
				               d->fd, 0);
			}
			if (d->base != MAP_FAILED) {
				d->page = huge;
				VH_INFO("bdev", "'%s': RAM disk on 2 MiB huge pages", name);
				return 0;
			}
			close(d->fd);
		}
	}
	d->fd = memfd_create(name, MFD_CLOEXEC);
	if (d->fd < 0) {
		return -errno;
	}
	if (ftruncate(d->fd, (off_t)d->size) < 0) {
		goto out_err;
	}
	/* MAP_NORESERVE: a sparse disk costs only what is written. */
	d->base = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, d->fd, 0);
	if (d->base == MAP_FAILED) {
		goto out_err;
	}
	return 0;

out_err:;
	int rc = -errno;

	close(d->fd);
	d->fd = -1;
	return rc;
}

int
vh_bdev_ram_create(const char *name, uint64_t num_blocks, uint32_t block_size)
{
	char key[VH_HANDOVER_KEY_MAX];
	struct vh_bdev *b;
	struct ram_disk *d;
	int rc = -ENOMEM;

	if (num_blocks == 0 || !VH_IS_POW2(block_size) || block_size < 512 || block_size > 65536 ||
	    num_blocks > (UINT64_MAX >> 1) / block_size) {
		return -EINVAL;
	}
	/* Checked before the supervisor is told to keep anything under this name. */
	if (vh_name_check(name) < 0) {
		return -EINVAL;
	}
	if (vh_bdev_find(name) != NULL) {
		return -EEXIST;
	}
	b = calloc(1, sizeof(*b));
	d = calloc(1, sizeof(*d));
	if (b == NULL || d == NULL) {
		goto out_free;
	}
	if (vh_strlcpy_checked(b->name, name, sizeof(b->name)) < 0) {
		rc = -EINVAL;
		goto out_free;
	}
	d->size = num_blocks * block_size;
	snprintf(key, sizeof(key), "bdev:%s", name);
	d->fd = vh_handover_take(key);
	if (d->fd >= 0) {
		/* A previous worker's disk, kept by the supervisor: same data, if the same size. */
		struct stat st;

		if (fstat(d->fd, &st) < 0 || (uint64_t)st.st_size != d->size) {
			VH_WARN("bdev", "'%s': the kept RAM disk has another size; starting empty",
			        name);
			close(d->fd);
			d->fd = -1;
		} else {
			VH_NOTICE("bdev", "'%s': RAM disk contents recovered from the supervisor",
			          name);
		}
	}
	d->page = 4096;
	if (d->fd >= 0) {
		struct statfs sfs;

		if (fstatfs(d->fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC) {
			d->page = (uint64_t)sfs.f_bsize;
		}
		/* MAP_NORESERVE: a sparse disk costs only what is written. */
		d->base = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		               d->fd, 0);
		if (d->base == MAP_FAILED) {
			rc = -errno;
			goto out_close;
		}
	} else {
		rc = ram_map_new(d, name);
		if (rc < 0) {
			goto out_free;
		}
		vh_handover_keep(key, d->fd);
	}
	b->module = &ram_module;
	b->ctx = d;
	b->block_size = block_size;
	b->num_blocks = num_blocks;
	b->io_types = (1u << VH_BDEV_IO_READ) | (1u << VH_BDEV_IO_WRITE) |
	              (1u << VH_BDEV_IO_FLUSH) | (1u << VH_BDEV_IO_DISCARD) |
	              (1u << VH_BDEV_IO_WRITE_ZEROES);
	rc = vh_bdev_register(b);
	if (rc < 0) {
		goto out_unmap;
	}
	return 0;

out_unmap:
	munmap(d->base, d->size);
out_close:
	close(d->fd);
out_free:
	free(d);
	free(b);
	return rc;
}
