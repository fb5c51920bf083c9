/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test doubles for the bdev and vhost layers, so the RPC layer is tested on its own: a small
 * in-memory registry with the real error codes, plus knobs to inject failures.
 */
#ifndef VH_TEST_RPC_STUBS_H
#define VH_TEST_RPC_STUBS_H

#include <stdbool.h>
#include <stdint.h>

/* Drop every fake bdev and controller; clear injected failures. */
void stub_reset(void);
/* stubs_iostat.c: forget every QoS limit (stub_reset() calls it). */
void stub_iostat_reset(void);

/* The next vh_vhost_blk_create() returns @rc (0 = behave normally). */
void stub_fail_next_vhost_create(int rc);

/* Number of fake bdevs / controllers. */
unsigned stub_bdev_count(void);
unsigned stub_ctrlr_count(void);

/* True if bdev_null_create asked null bdev @name to zero-fill its reads. */
bool stub_null_read_zeroes(const char *name);

#endif
