/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Deterministic doubles for the NVMe controller unit test: the reactors, the control thread's
 * message queue and the bdev layer are replaced by one FIFO of message nodes, a list of
 * pollers and an in-memory block device whose completions the test releases when it likes.
 * stub_pump() runs queued messages, every poller and the deferred work until nothing moves.
 */
#ifndef VH_TEST_VFU_NVME_STUBS_H
#define VH_TEST_VFU_NVME_STUBS_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev/bdev.h"

/* A RAM block device; @io_types is a mask of 1 << VH_BDEV_IO_*. */
struct vh_bdev *stub_bdev_new(const char *name, uint64_t nblocks, uint32_t bs, unsigned io_types,
                              bool write_cache);
void stub_bdev_free(struct vh_bdev *b);
uint8_t *stub_bdev_data(struct vh_bdev *b);

/* Completions: held until stub_release() when hold is on (default off). */
void stub_hold(bool hold);
unsigned stub_pending(void);
void stub_release(void);
/* The next @n submissions return @rc (-EAGAIN) or complete with @status (-EIO). */
void stub_fail_submit(int rc, unsigned n);
void stub_fail_complete(int status, unsigned n);
/* Counters by type since the last reset. */
unsigned stub_count(enum vh_bdev_io_type t);
/* Last DISCARD (offset, length) seen. */
void stub_last_discard(uint64_t *off, uint64_t *len);
/* Channels currently held. */
int stub_channels(void);
/* eventfd signals seen per fd (fd < 1024). */
unsigned stub_signals(int fd);
void stub_reset(void);

/* Run messages, pollers and deferred work until quiet (at most @rounds loops). */
void stub_pump(unsigned rounds);

#endif
