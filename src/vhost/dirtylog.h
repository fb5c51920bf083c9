/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dirty log of a live migration (vhost-user.rst, "Migration"; VHOST_F_LOG_ALL with
 * VHOST_USER_PROTOCOL_F_LOG_SHMFD): a bitmap in memory the front-end shares with us, one bit per
 * 4 KiB page of guest-physical address space. While LOG_ALL is acked, every byte the device
 * writes into guest memory (read data, status bytes, used-ring entries) has its page marked,
 * after the write, so that QEMU copies the page again.
 *
 * Threat model: the front-end chooses the log's fd, size and offset. The fd must be sealed
 * against shrinking (a truncated log would SIGBUS us), only the bitmap is mapped, its size is
 * checked against the memory table when it is set, and every mark is bounds-checked: a page
 * the log does not cover is never written (it is counted, and the memory table may not grow
 * past the log while logging is on).
 *
 * Threads: set and unmapped by the control thread while no queue of the session runs (design
 * rule 10); marked by reactors, concurrently (atomic OR per byte).
 */
#ifndef VH_VHOST_DIRTYLOG_H
#define VH_VHOST_DIRTYLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define VH_DLOG_PAGE_SHIFT 12 /* one bit per 4 KiB page (VHOST_LOG_PAGE) */

struct vh_mem;

struct vh_dlog {
	void *map; /* our mapping (offset aligned down to the page size) */
	uint64_t map_size;
	uint8_t *bits;   /* the bitmap: bit (page % 8) of byte (page / 8) */
	uint64_t bytes;  /* bitmap size */
	uint64_t missed; /* marks outside the bitmap (a front-end bug); relaxed atomic */
};

/*
 * SET_LOG_BASE: validate and map @size bytes at @offset of @fd (not closed). 0, -EINVAL (sizes,
 * overflow, not a sealed memfd), -EPERM (not sealed against shrinking) or -errno from mmap.
 * Control thread.
 */
int vh_dlog_map(struct vh_dlog *l, uint64_t size, uint64_t offset, int fd);
void vh_dlog_unmap(struct vh_dlog *l);
/* True if @l covers every guest-physical page of @m (NULL: no table). Control thread. */
bool vh_dlog_covers(const struct vh_dlog *l, const struct vh_mem *m);
/* Mark the pages of guest-physical range [gpa, gpa + len). Any thread. */
void vh_dlog_mark(struct vh_dlog *l, uint64_t gpa, uint64_t len);
/*
 * Mark the guest pages behind host range [hva, hva + len) of table @m (a buffer we wrote through
 * our mapping). Ranges in no region are ignored. Any thread.
 */
void vh_dlog_mark_hva(struct vh_dlog *l, const struct vh_mem *m, const void *hva, uint64_t len);
/* The same for iovecs. */
void vh_dlog_mark_iov(struct vh_dlog *l, const struct vh_mem *m, const struct iovec *iov, int n);

#endif
