/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RAM back-end ("malloc" in SPDK's RPC names): a memfd mapped shared. A memfd rather than
 * malloc so discard can give pages back (FALLOC_FL_PUNCH_HOLE), the supervisor can keep the
 * data across a worker crash (core/handover.h) and a later io_uring back-end can register the
 * same memory.
 *
 * A RAM disk must never SIGBUS: a fault on its mapping kills every session of the daemon. A
 * hugetlbfs mapping does whenever a fault finds no huge page for it: the pool is shared with
 * other tenants, a hugetlb cgroup limit is enforced at fault time, and reservations ignore
 * cpusets. So a disk on huge pages has all of its pages from creation to deletion: created
 * populated (a shortage fails there, cleanly, and we fall back to a plain memfd), never punched
 * (discard zeroes in place), and a kept one that misses pages is populated again before it is
 * mapped, or copied. A plain memfd is sparse on purpose: a page it cannot get is the OOM
 * killer's business like any memory of ours (only under vm.overcommit_memory=2 is it a SIGBUS).
 * Both are sealed against shrinking, so no access inside the disk can fall past the file's end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <linux/memfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "bdev/bdev_module.h"
#include "core/handover.h"
#include "core/log.h"

#define RAM_PAGE  UINT64_C(4096)
#define RAM_HUGE  (UINT64_C(2) << 20)
#define RAM_CHUNK (UINT64_C(2) << 20) /* bounce buffer when copying a kept disk */

struct ram_disk {
	int fd;
	uint8_t *base;
	uint64_t size;
	bool huge; /* hugetlbfs: every page present for the disk's lifetime */
};

/*
 * Reads are copied with a look-ahead. A 4 KiB random read from a disk larger than the cache
 * starts with a miss to memory, and memcpy waits for that first line before it streams the rest:
 * under SPDK's bdevperf about half of the copy's time was that wait (perf annotate). So submit()
 * only prefetches the start of the source and queues the read; the copy runs when
 * RAM_READ_AHEAD later reads have been submitted, or at the channel's poll (the same reactor
 * iteration), by which time the line is on its way: 1.80 M to 2.28 M reads per second
 * (docs/performance.md). The hardware prefetcher follows on from the first lines; prefetching
 * 16 or 64 lines of the 4 KiB was slower than 8.
 *
 * A queued read is in flight until its callback, so a write to the same blocks submitted
 * meanwhile may show in what it returns: block devices order nothing between requests in flight
 * (virtio, SCSI and NVMe alike); a write that completed before the read was submitted always
 * shows.
 */
#define RAM_READ_AHEAD     8u
#define RAM_PREFETCH_LINES 8u

struct ram_channel {
	struct ram_disk *d;
	unsigned head, n; /* reads queued for their copy, oldest at head */
	struct vh_bdev_io *q[RAM_READ_AHEAD];
};

static void *
ram_channel_create(struct vh_bdev *b)
{
	struct ram_channel *c = calloc(1, sizeof(*c));

	if (c != NULL) {
		c->d = b->ctx;
	}
	return c;
}

static void
ram_channel_destroy(void *ch)
{
	struct ram_channel *c = ch;

	/* The layer closes a channel only once its I/O completed, and the poll copied them all. */
	if (c->n != 0) {
		VH_LOG(VH_LOG_ERROR, "bdev", "malloc channel closed with %u reads queued", c->n);
	}
	free(c);
}

static void
copy_out(struct vh_bdev_io *io, const uint8_t *src)
{
	for (int i = 0; i < io->iovcnt; i++) {
		memcpy(io->iov[i].iov_base, src, io->iov[i].iov_len);
		src += io->iov[i].iov_len;
	}
}

/*
 * Writes go into the disk with non-temporal stores. A plain copy first reads every destination
 * line into the cache (read-for-ownership): for a random write into a disk larger than the cache
 * that is a miss to memory per line, for a line nobody is about to read. Streaming stores fill
 * whole lines without reading them, which made 4 KiB random writes to a 256 MiB disk 1.43x
 * faster under SPDK's bdevperf (docs/performance.md). Reads keep memcpy: their destination is
 * guest memory the guest is about to read, and should stay in the cache.
 */
#if defined(__x86_64__)
static void
copy_stream(uint8_t *dst, const uint8_t *src, size_t len)
{
	size_t head = (16 - ((uintptr_t)dst & 15)) & 15;

	if (len < 256) {
		memcpy(dst, src, len);
		return;
	}
	memcpy(dst, src, head); /* movntdq wants a 16-byte aligned destination */
	dst += head;
	src += head;
	len -= head;
	for (; len >= 64; dst += 64, src += 64, len -= 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)src);
		__m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
		__m128i d = _mm_loadu_si128((const __m128i *)(src + 48));

		_mm_stream_si128((__m128i *)dst, a);
		_mm_stream_si128((__m128i *)(dst + 16), b);
		_mm_stream_si128((__m128i *)(dst + 32), c);
		_mm_stream_si128((__m128i *)(dst + 48), d);
	}
	memcpy(dst, src, len);
}

/*
 * Streaming stores are weakly ordered: fenced before the completion, after which another
 * reactor (or the supervisor's copy) may read the disk.
 */
static inline void
copy_stream_fence(void)
{
	_mm_sfence();
}
#else
#define copy_stream memcpy
static inline void
copy_stream_fence(void)
{
}
#endif

static void
copy_in(struct vh_bdev_io *io, uint8_t *dst)
{
	for (int i = 0; i < io->iovcnt; i++) {
		copy_stream(dst, io->iov[i].iov_base, io->iov[i].iov_len);
		dst += io->iov[i].iov_len;
	}
	copy_stream_fence();
}

/*
 * Zero a range. On a plain memfd, whole pages are punched out (reads then see zeroes and the
 * memory goes back to the host); the unaligned edges and small ranges are cleared by hand.
 */
static int
zero_range(struct ram_disk *d, uint64_t off, uint64_t len)
{
	uint64_t start = (off + RAM_PAGE - 1) & ~(RAM_PAGE - 1);
	uint64_t end = (off + len) & ~(RAM_PAGE - 1);

	/*
	 * Huge pages are zeroed in place, never punched. Punching would also drop the pages'
	 * reservation, and once another tenant took them the next access to the range (a read
	 * too: a hugetlbfs hole has no zero page) would find no page and SIGBUS the daemon.
	 * Punching and then reserving again (fallocate) leaves that window open and zeroes the
	 * new pages anyway, so the memset costs no more and cannot fail.
	 */
	if (d->huge || end <= start || end - start < 16 * RAM_PAGE) {
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

/* Copy the oldest queued read; returns it. */
static struct vh_bdev_io *
read_one(struct ram_channel *c)
{
	struct vh_bdev_io *io = c->q[c->head];

	c->head = (c->head + 1) % RAM_READ_AHEAD;
	c->n--;
	copy_out(io, c->d->base + io->offset);
	return io;
}

static void
read_queue(struct ram_channel *c, struct vh_bdev_io *io)
{
	const char *src = (const char *)c->d->base + io->offset;
	uint64_t lines = VH_MIN((io->length + 63) / 64, (uint64_t)RAM_PREFETCH_LINES);

	for (uint64_t i = 0; i < lines; i++) {
		__builtin_prefetch(src + 64 * i, 0, 3);
	}
	if (c->n == RAM_READ_AHEAD) {
		/* submit() may not call back: the poll completes it. */
		vh_bdev_io_complete_deferred(read_one(c), 0);
	}
	c->q[(c->head + c->n) % RAM_READ_AHEAD] = io;
	c->n++;
}

/* The channel's poll: copy and complete the queued reads. */
static int
ram_poll(void *ch)
{
	struct ram_channel *c = ch;
	unsigned n = c->n; /* a callback may queue more: those wait for the next poll */

	if (n == 0) {
		return VH_POLL_IDLE;
	}
	while (n-- > 0) {
		vh_bdev_io_done(read_one(c), 0);
	}
	return VH_POLL_BUSY;
}

static int
ram_arm(void *ch)
{
	const struct ram_channel *c = ch;

	return c->n != 0;
}

static int
ram_submit(void *ch, struct vh_bdev_io *io)
{
	struct ram_channel *c = ch;
	struct ram_disk *d = c->d;
	int status = 0;

	/* The consumer checked the range; a bug above us must not become a host overflow. */
	if (io->offset > d->size || io->length > d->size - io->offset) {
		return -EINVAL;
	}
	switch (io->type) {
	case VH_BDEV_IO_READ:
		read_queue(c, io);
		return 0;
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

static void
ram_info_json(struct vh_bdev *b, json_t *driver_specific)
{
	const struct ram_disk *d = b->ctx;
	json_t *o = json_pack("{s:b}", "huge_pages", d->huge);

	if (o != NULL) {
		json_object_set_new(driver_specific, b->module->name, o);
	}
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
        .poll = ram_poll,
        .arm = ram_arm,
        .destruct = ram_destruct,
        .info_json = ram_info_json,
        .config_json = ram_config_json,
};

/* Nobody who holds the memfd (the supervisor keeps a copy) can cut it short under our mapping. */
static void
seal_size(int fd)
{
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		VH_DEBUG("bdev", "memfd not sealed: %s", strerror(errno));
	}
}

/*
 * Map d->fd, a hugetlbfs file of d->size bytes, with every page present. Without MAP_NORESERVE
 * the mmap reserves the pages (-ENOMEM when the pool is short); fallocate then instantiates
 * them, where a hugetlb cgroup limit or a cpuset without free pages fails cleanly (-ENOSPC)
 * instead of at some later fault. Pages already in the file are kept with their data. The
 * kernel zeroes each new page here, on the control thread (0.2 to 0.5 s per GiB measured on
 * this VM, the same work the first writes would otherwise do on the reactors).
 */
static int
huge_map(struct ram_disk *d)
{
	int rc;

	d->base = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
	if (d->base == MAP_FAILED) {
		d->base = NULL;
		return -errno;
	}
	if (fallocate(d->fd, 0, 0, (off_t)d->size) < 0) {
		rc = -errno;
		munmap(d->base, d->size);
		d->base = NULL;
		return rc;
	}
	d->huge = true;
	return 0;
}

/* A new sparse plain memfd: pages are allocated on first write and given back on discard. */
static int
plain_map_new(struct ram_disk *d, const char *name)
{
	int rc;

	d->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (d->fd < 0) {
		return -errno;
	}
	if (ftruncate(d->fd, (off_t)d->size) < 0) {
		goto out_err;
	}
	seal_size(d->fd);
	/* MAP_NORESERVE: a sparse disk costs only what is written. */
	d->base = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, d->fd, 0);
	if (d->base == MAP_FAILED) {
		goto out_err;
	}
	return 0;

out_err:
	rc = -errno;
	d->base = NULL;
	close(d->fd);
	d->fd = -1;
	return rc;
}

/*
 * Back the disk with 2 MiB huge pages when the host has enough free (as SPDK's malloc bdev
 * does): a random 4 KiB access then costs no TLB miss and no first-touch fault. Without them
 * we fall back to a plain memfd (docs/design.md).
 */
static int
ram_map_new(struct ram_disk *d, const char *name)
{
	int rc;

	if (d->size % RAM_HUGE == 0) {
		d->fd = memfd_create(name,
		                     MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB | MFD_ALLOW_SEALING);
		if (d->fd >= 0) {
			rc = ftruncate(d->fd, (off_t)d->size) < 0 ? -errno : huge_map(d);
			if (rc == 0) {
				seal_size(d->fd);
				VH_INFO("bdev", "'%s': RAM disk on 2 MiB huge pages", name);
				return 0;
			}
			VH_INFO("bdev",
			        "'%s': %" PRIu64 " huge pages not available (%s): plain memory",
			        name, d->size / RAM_HUGE, strerror(-rc));
			close(d->fd);
		}
	}
	return plain_map_new(d, name);
}

static bool
all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/*
 * A kept huge-page disk that cannot have all its pages now (holes an older worker punched, and
 * the pool taken since): its data moves to a plain memfd. read() returns a hugetlbfs hole as
 * zeroes without allocating, where touching the mapping would SIGBUS; zero chunks are not
 * written, so the copy stays sparse. Closes @old on success.
 */
static int
copy_to_plain(struct ram_disk *d, int old, const char *name)
{
	uint8_t *buf = malloc(RAM_CHUNK);
	int rc = -ENOMEM;

	if (buf == NULL) {
		return rc;
	}
	rc = plain_map_new(d, name);
	for (uint64_t off = 0; rc == 0 && off < d->size; off += RAM_CHUNK) {
		size_t len = (size_t)VH_MIN(RAM_CHUNK, d->size - off);
		ssize_t n = pread(old, buf, len, (off_t)off);

		if (n != (ssize_t)len) {
			rc = n < 0 ? -errno : -EIO;
		} else if (!all_zero(buf, len)) {
			memcpy(d->base + off, buf, len);
		}
	}
	free(buf);
	if (rc < 0) {
		if (d->fd >= 0) {
			munmap(d->base, d->size);
			close(d->fd);
			d->fd = -1;
		}
		return rc;
	}
	close(old);
	return 0;
}

/*
 * Map the disk a previous worker left with the supervisor (d->fd, of the right size). Returns
 * 0, 1 when the data moved to a new memfd that the supervisor must keep instead, or -errno.
 */
static int
ram_map_kept(struct ram_disk *d, const char *name)
{
	struct statfs sfs;
	int rc, old = d->fd;

	if (fstatfs(d->fd, &sfs) < 0 || sfs.f_type != HUGETLBFS_MAGIC) {
		seal_size(d->fd);
		d->base = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		               d->fd, 0);
		if (d->base == MAP_FAILED) {
			d->base = NULL;
			return -errno;
		}
		return 0;
	}
	rc = huge_map(d);
	if (rc == 0) {
		seal_size(d->fd);
		return 0;
	}
	VH_WARN("bdev",
	        "'%s': the kept RAM disk misses huge pages the host cannot give (%s): "
	        "copying it to plain memory",
	        name, strerror(-rc));
	rc = copy_to_plain(d, old, name);
	if (rc < 0) {
		VH_ERR("bdev", "'%s': cannot copy the kept RAM disk: %s", name, strerror(-rc));
		d->fd = old;
		return rc;
	}
	return 1;
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
		}
	}
	if (d->fd >= 0) {
		rc = ram_map_kept(d, name);
		if (rc < 0) {
			goto out_close;
		}
		if (rc == 1) {
			vh_handover_keep(key, d->fd);
		}
		VH_NOTICE("bdev", "'%s': RAM disk contents recovered from the supervisor", name);
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
