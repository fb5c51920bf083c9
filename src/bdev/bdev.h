/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Block device layer: the consumer API (used by vhost controllers).
 *
 * Rules:
 * - The registry (create, find, claim, delete, foreach) lives on the control thread.
 * - I/O goes through a per-(bdev, reactor) channel: vh_bdev_channel_get/put and vh_bdev_submit
 *   run on the reactor that owns the channel, and only there.
 * - Completion contract: vh_bdev_submit() returns 0 and calls io->cb exactly once, later, on the
 *   submitting reactor; or returns -errno and never calls io->cb. -EAGAIN/-ENOMEM mean "retry
 *   on a later poll", never an error for the guest.
 * - A claimed bdev (used by a controller) cannot be deleted. Channels exist only while claimed.
 * - Offsets and lengths are in bytes and are multiples of the block size; the consumer checks
 *   the range against vh_bdev_size() before submitting.
 * - Durability: a completed WRITE or WRITE_ZEROES may sit in a volatile cache until a FLUSH
 *   completes, unless it carried VH_BDEV_IO_F_FUA (then it is durable when its callback runs).
 *   Bdevs without a write cache (vh_bdev_has_write_cache() false) are durable either way.
 */
#ifndef VH_BDEV_BDEV_H
#define VH_BDEV_BDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VH_NAME_MAX 64 /* bytes, including the NUL */

enum vh_bdev_io_type {
	VH_BDEV_IO_READ = 0,
	VH_BDEV_IO_WRITE,
	VH_BDEV_IO_FLUSH,
	VH_BDEV_IO_DISCARD,
	VH_BDEV_IO_WRITE_ZEROES,
	VH_BDEV_IO_NTYPES,
};

#define VH_BDEV_IO_F_UNMAP 0x1 /* WRITE_ZEROES may deallocate */
/*
 * WRITE and WRITE_ZEROES: complete only once the data is durable, where a FLUSH would have put
 * it (forced unit access). Back-ends with a write cache honour it themselves (RWF_DSYNC, the
 * NVMe FUA bit) or the layer emulates it with a FLUSH after the write. No effect on other
 * types: a DISCARD promises no contents, so there is nothing to make durable.
 */
#define VH_BDEV_IO_F_FUA 0x2

struct vh_bdev;
struct vh_bdev_channel;

struct vh_bdev_io {
	/* Set by the consumer before vh_bdev_submit(). */
	uint8_t type;    /* enum vh_bdev_io_type */
	uint8_t flags;   /* VH_BDEV_IO_F_* */
	uint64_t offset; /* bytes */
	uint64_t length; /* bytes; for READ/WRITE equals the iovec total */
	struct iovec *iov;
	int iovcnt;
	void (*cb)(struct vh_bdev_io *io, int status); /* status 0 or -errno */
	/* Owned by the bdev layer and the back-end while in flight. */
	struct vh_bdev_io *next;
	struct vh_bdev_channel *ch;
	int status;
	void (*user_cb)(struct vh_bdev_io *io, int status); /* test delay mode */
	uint64_t due_ns;                                    /* test delay mode */
	uint64_t submit_ticks;                              /* statistics: latency start */
	void (*fua_cb)(struct vh_bdev_io *io, int status);  /* FUA emulation: consumer's cb */
	uint8_t fua_type;                                   /* FUA emulation: the write's type */
	uint64_t module_ctx[4];
};

/*
 * Validate a bdev or controller name: 1..63 bytes of [A-Za-z0-9_.:-], not "." or "..", so it is
 * safe as a socket file name. Returns 0 or -EINVAL. Any thread.
 */
int vh_name_check(const char *name);

/* Registry: control thread only. */
struct vh_bdev *vh_bdev_find(const char *name);
/* Call fn for each bdev in creation order; stops early if fn returns non-zero (returned). */
int vh_bdev_foreach(int (*fn)(struct vh_bdev *b, void *arg), void *arg);
/* Claim for exclusive use by @owner (a controller name). -EBUSY if already claimed. */
int vh_bdev_claim(struct vh_bdev *b, const char *owner);
void vh_bdev_release(struct vh_bdev *b);
/* The claim holder's name, or NULL. */
const char *vh_bdev_claimed_by(const struct vh_bdev *b);
/* Delete by name. -ENODEV if unknown, -EBUSY if claimed, -EINVAL if @module does not match. */
int vh_bdev_delete(const char *name, const char *module);

/* Properties: any thread (immutable while claimed, except num_blocks on resize). */
const char *vh_bdev_name(const struct vh_bdev *b);
const char *vh_bdev_module_name(const struct vh_bdev *b);
uint32_t vh_bdev_block_size(const struct vh_bdev *b);
uint64_t vh_bdev_num_blocks(const struct vh_bdev *b);
uint64_t vh_bdev_size(const struct vh_bdev *b);
bool vh_bdev_io_type_supported(const struct vh_bdev *b, enum vh_bdev_io_type t);
/* True if completed writes may sit in a volatile cache until FLUSH. */
bool vh_bdev_has_write_cache(const struct vh_bdev *b);
const char *vh_bdev_uuid(const struct vh_bdev *b);
/*
 * Give an unclaimed bdev the identity an operator asked for (stored lower case). Returns 0,
 * -EINVAL for a malformed uuid, -EBUSY once a controller holds the bdev. Control thread.
 */
int vh_bdev_set_uuid(struct vh_bdev *b, const char *uuid);

/* Channels: reactor thread only. Refcounted per reactor. NULL on failure. */
struct vh_bdev_channel *vh_bdev_channel_get(struct vh_bdev *b);
void vh_bdev_channel_put(struct vh_bdev_channel *ch);

/* Submit: see the completion contract above. Reactor thread owning @ch. */
int vh_bdev_submit(struct vh_bdev_channel *ch, struct vh_bdev_io *io);

/*
 * Test mode: hold every completion of @b for a random 0..@max_delay_us before the callback runs,
 * so completions come back out of order (crash-recovery tests must not pass by in-order luck).
 * 0 turns it off. Control thread; applies to I/O submitted afterwards.
 */
void vh_bdev_set_test_delay(struct vh_bdev *b, uint32_t max_delay_us);
uint32_t vh_bdev_test_delay(const struct vh_bdev *b);

/*
 * Guest memory that I/O buffers may point into (a vhost memory region): back-ends that DMA
 * (user-space NVMe with VFIO) map it for the device, and the io_uring back-end registers huge-page
 * memory as fixed buffers. Register after mmap, unregister after the rings using it stopped (no
 * I/O into it is in flight) and before munmap. Errors only cost copies or page pinning per I/O.
 *
 * @owner: who announced the memory, one value per front-end connection (the vhost session; it
 * is compared, never dereferenced, and must stay unique while any of its memory is registered).
 * Back-ends with process-wide tables (io_uring's fixed-buffer slots) give each owner a bounded
 * share, so one front-end announcing many or huge regions cannot take every slot, and what
 * fails for one owner's region costs only that region. NULL is "no owner": only the global
 * limits apply, as before owners existed. @flags: VH_BDEV_MEM_*. Control thread.
 */
#define VH_BDEV_MEM_HUGE 0x1u /* backed by huge pages (hugetlbfs): resident, cheap to pin */
void vh_bdev_mem_register_owned(const void *owner, void *vaddr, size_t len, unsigned flags);
/* vh_bdev_mem_register_owned() with no owner: for callers not yet converted. */
void vh_bdev_mem_register(void *vaddr, size_t len, unsigned flags);
/* Unregister what was registered at @vaddr with @len (whoever the owner). Control thread. */
void vh_bdev_mem_unregister(void *vaddr, size_t len);

/* Tear down every bdev (shutdown). Control thread; all claims must be released. */
void vh_bdev_fini(void);

#endif
